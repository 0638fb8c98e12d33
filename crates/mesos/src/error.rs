//! The crate's error enum: failed Marathon and Mesos master operations, each with the error
//! class that drives the engine's backoff.

use converged_core::{Classified, ErrorClass};
use converged_hosts::{HostsError, Outside};

#[derive(Debug, Clone, thiserror::Error)]
pub enum MesosError {
    #[error("failed to {operation} on Marathon at {url}: {message}")]
    Unreachable {
        operation: &'static str,
        url: String,
        message: String,
    },
    #[error("Marathon refused {operation}: {status} {message}")]
    Rejected {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error(
        "Marathon rejected the credentials for {operation} (401): check marathon.credentials_file"
    )]
    Unauthorized { operation: &'static str },
    #[error(
        "{operation}: app {app} is locked by deployment(s) {deployments}; waiting for them to finish"
    )]
    Locked {
        operation: &'static str,
        app: String,
        deployments: String,
    },
    #[error("Marathon is busy or has no leader ({status}) during {operation}: {message}")]
    Unavailable {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("Marathon asked to slow down (429) during {operation}")]
    Throttled { operation: &'static str },
    #[error("Marathon's answer to {operation} was not understood: {message}")]
    Decode {
        operation: &'static str,
        message: String,
    },
    #[error("refused to contact {url}: {outside}")]
    AddressNotAllowed {
        url: String,
        #[source]
        outside: Outside,
    },
    #[error("failed to resolve the host of {url}: {message}")]
    Unresolved { url: String, message: String },
    #[error("refused to contact {url}: not a URL with a host: {message}")]
    InvalidUrl { url: String, message: String },
    #[error("could not read the Marathon credentials: {message}")]
    Credentials { message: String },
    #[error("failed to {operation} on the Mesos master at {url}: {message}")]
    MasterUnreachable {
        operation: &'static str,
        url: String,
        message: String,
    },
    #[error("the Mesos master refused {operation}: {status} {message}")]
    MasterRejected {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("the Mesos master's answer to {operation} was not understood: {message}")]
    MasterDecode {
        operation: &'static str,
        message: String,
    },
    #[error("failed to read or write the Mesos agents converged manages in {path}: {message}")]
    AgentMemory { path: String, message: String },
    #[error(
        "failed to read or write the env keys converged sent to Marathon as secrets in {path}: {message}"
    )]
    SecretKeyMemory { path: String, message: String },
    #[error("failed to restart the agent on node {node}: {source}")]
    RestartAgent {
        node: String,
        #[source]
        source: Box<HostsError>,
    },
}

impl Classified for MesosError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Unreachable { .. }
            | Self::Locked { .. }
            | Self::Unavailable { .. }
            | Self::Decode { .. }
            | Self::MasterUnreachable { .. }
            | Self::MasterRejected { .. }
            | Self::MasterDecode { .. }
            | Self::Unresolved { .. }
            | Self::AgentMemory { .. }
            | Self::SecretKeyMemory { .. } => ErrorClass::Transient,
            Self::Throttled { .. } => ErrorClass::Throttled,
            Self::Rejected { .. }
            | Self::Unauthorized { .. }
            | Self::Credentials { .. }
            | Self::InvalidUrl { .. } => ErrorClass::Invalid,
            Self::AddressNotAllowed { .. } => ErrorClass::Unsafe,
            Self::RestartAgent { source, .. } => source.class(),
        }
    }
}
