//! The desired-state loader on arbitrary sources: the input is `cluster.toml`, then, after each
//! NUL byte, one app file. Whatever the bytes, parsing and validation answer (a state or
//! problems) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&byte| byte == 0);
    let cluster = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut sources = vec![(converged_core::load::CLUSTER_FILE.to_owned(), cluster)];
    for (index, app) in parts.enumerate() {
        sources.push((
            format!("{}/fuzz-{index}.json", converged_core::load::APPS_DIR),
            String::from_utf8_lossy(app).into_owned(),
        ));
    }
    let _ = converged_core::load::parse_sources(&sources, "fuzz".to_owned());
});
