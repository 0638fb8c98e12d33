//! Failed Mesos master operations, each with the error class that drives the engine's backoff.
//! (`MesosError` speaks of Marathon; these speak of the Mesos master.)

use converged_core::{ErrorClass, ReconcileError};
use converged_hosts::HostsError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("refused to contact the Mesos master at {url}: {reason}")]
    AddressNotAllowed { url: String, reason: String },
    #[error("failed to {operation} on the Mesos master at {url}: {message}")]
    Request {
        operation: &'static str,
        url: String,
        message: String,
    },
    #[error("failed to understand the Mesos master's answer to {operation}: {message}")]
    Decode {
        operation: &'static str,
        message: String,
    },
    #[error("failed to restart the agent on node {node}: {source}")]
    RestartAgent {
        node: String,
        #[source]
        source: Box<HostsError>,
    },
}

impl AgentError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::AddressNotAllowed { .. } => ErrorClass::Unsafe,
            Self::Request { .. } | Self::Decode { .. } => ErrorClass::Transient,
            Self::RestartAgent { source, .. } => source.class(),
        }
    }

    pub fn into_apply(self, action: &'static str) -> ReconcileError {
        ReconcileError::Apply {
            action,
            class: self.class(),
            message: self.to_string(),
        }
    }
}
