//! The Marathon app normalizer on arbitrary JSON: every document that parses has a canonical
//! form in every profile, without panicking, and that form serializes.
#![no_main]

// The normalizer is a pure module that needs nothing but serde_json. It is compiled in from its
// one source file rather than through converged-mesos, whose HTTP client, SSH and tokio would
// otherwise be built again under nightly for every cold fuzz run (most of the fuzz build time).
#[path = "../../crates/mesos/src/marathon/normalize.rs"]
#[allow(dead_code)] // the daemon's other entry points into the module are not fuzzed here
mod normalize;

use libfuzzer_sys::fuzz_target;
use normalize::{Profile, canonical};

fuzz_target!(|data: &[u8]| {
    let Ok(app) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for profile in [Profile::Legacy, Profile::Current] {
        let form = canonical(&app, profile);
        serde_json::to_string(&form).expect("a canonical form serializes");
    }
});
