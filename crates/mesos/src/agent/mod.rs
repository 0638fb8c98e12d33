//! The `mesos_agent` kind: every node with the `mesos-agent` role has an active agent
//! registered with the leading master; one missing or inactive past a grace period gets its
//! service restarted through the host layer.

pub mod api;
pub mod diff;
pub mod reconciler;
