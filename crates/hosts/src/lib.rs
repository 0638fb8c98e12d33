//! converged-hosts: SSH sessions with pinned host keys and `allowed_networks`, the `docker`
//! and `exec` service runtimes, and the `host_service` kind. The ZooKeeper ensemble and the
//! Mesos agents act on hosts through the `HostLayer` defined here.

pub mod access;
pub mod address;
pub mod error;
pub mod known_hosts;
pub mod layer;
pub mod render;
pub mod runtime;
pub mod service;
pub mod shell;
pub mod ssh;

pub use access::Access;
pub use address::{
    AllowedNetworks, DialError, NodeAddress, NodeAddresses, Outside, OverrideAddresses,
};
pub use error::HostsError;
pub use layer::{HostAction, HostLayer, HostsObserved, ServiceExtras};
pub use runtime::{Runtime, RuntimeKind};
pub use service::reconciler::HostServices;
pub use ssh::{HostRunner, SshPool, SshSettings};
