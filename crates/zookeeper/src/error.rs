//! The crate's error enum: failed ensemble operations, each with the error class that drives
//! the engine's backoff.

use converged_core::{Classified, ErrorClass};
use converged_hosts::{HostsError, Outside};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZookeeperError {
    #[error("failed to read or write the ZooKeeper ids in {path}: {message}")]
    StoreIds { path: String, message: String },
    #[error("failed to send `{word}` to member {node} at {address}: {message}")]
    FourLetterWord {
        word: &'static str,
        node: String,
        address: String,
        message: String,
    },
    #[error("refused to probe member {node} at {address}: {outside}")]
    AddressNotAllowed {
        node: String,
        address: String,
        #[source]
        outside: Outside,
    },
    #[error("failed to restart member {node}: {source}")]
    RestartMember {
        node: String,
        #[source]
        source: Box<HostsError>,
    },
}

impl Classified for ZookeeperError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::StoreIds { .. } | Self::FourLetterWord { .. } => ErrorClass::Transient,
            Self::AddressNotAllowed { .. } => ErrorClass::Unsafe,
            Self::RestartMember { source, .. } => source.class(),
        }
    }
}
