//! The Marathon app normalizer on arbitrary JSON: every document that parses has a canonical
//! form in every profile, without panicking, and that form serializes.
#![no_main]

use converged_mesos::marathon::normalize::{Profile, canonical};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(app) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for profile in [Profile::Legacy, Profile::Current] {
        let form = canonical(&app, profile);
        serde_json::to_string(&form).expect("a canonical form serializes");
    }
});
