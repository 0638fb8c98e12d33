//! The `mesos_agent` kind: every node with the `mesos-agent` role has an active agent
//! registered with the leading master; one missing or inactive past a grace period gets its
//! service restarted through the host layer. Only agents of the desired state's nodes, or of
//! nodes converged managed before and remembers, are converged's; the others are unmanaged.

pub mod api;
pub mod diff;
pub mod memory;
pub mod reconciler;
