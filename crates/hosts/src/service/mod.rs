//! The `host_service` kind: every node runs one service per role that has a spec, under the
//! configured runtime.

pub mod diff;
pub mod reconciler;
