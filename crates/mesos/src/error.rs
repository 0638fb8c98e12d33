//! The crate's error enum: failed Marathon operations, each with the error class that drives
//! the engine's backoff.

use converged_core::{ErrorClass, ReconcileError};

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
    #[error("refused to contact {url}: {reason}")]
    AddressNotAllowed { url: String, reason: String },
    #[error("could not read the Marathon credentials: {message}")]
    Credentials { message: String },
}

impl MesosError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unreachable { .. }
            | Self::Locked { .. }
            | Self::Unavailable { .. }
            | Self::Decode { .. } => ErrorClass::Transient,
            Self::Throttled { .. } => ErrorClass::Throttled,
            Self::Rejected { .. } | Self::Unauthorized { .. } | Self::Credentials { .. } => {
                ErrorClass::Invalid
            }
            Self::AddressNotAllowed { .. } => ErrorClass::Unsafe,
        }
    }

    pub fn into_observe(self) -> ReconcileError {
        ReconcileError::Observe {
            kind: "marathon_app",
            class: self.class(),
            message: self.to_string(),
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
