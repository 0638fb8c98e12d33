//! The `marathon_app` kind: apps from `apps/*.json` kept in sync with Marathon.

pub mod api;
pub mod diff;
pub mod memory;
pub mod normalize;
pub mod reconciler;
