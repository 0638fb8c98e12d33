//! Error classes that drive backoff, and the error type reconcilers return (no I/O).

use std::fmt;

use serde::Serialize;

/// How the engine reacts to a failed action or observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Network blips, 5xx, timeouts: retried with exponential backoff.
    Transient,
    /// The peer asked us to slow down: retried with backoff, and the whole kind waits.
    Throttled,
    /// The request can never succeed as written (bad parameter, access denied): not retried
    /// until the desired state changes or an operator asks for a reconcile.
    Invalid,
    /// Continuing could cause harm (changed host key, create outcome unknown): the resource is
    /// held until an operator intervenes.
    Unsafe,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::Invalid => "invalid",
            Self::Unsafe => "unsafe",
        }
    }

    /// Whether the engine schedules an automatic retry for this class.
    pub fn retries_automatically(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled)
    }
}

/// A crate's error enum: each variant knows its class, and the error turns into the engine's
/// `ReconcileError` for the observation or action that failed.
pub trait Classified: fmt::Display + Sized {
    fn class(&self) -> ErrorClass;

    fn into_observe(self, kind: &'static str) -> ReconcileError {
        ReconcileError::Observe {
            kind,
            class: self.class(),
            message: self.to_string(),
        }
    }

    fn into_apply(self, action: &'static str) -> ReconcileError {
        ReconcileError::Apply {
            action,
            class: self.class(),
            message: self.to_string(),
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error every reconciler's `observe` and `apply` return. Provider crates keep their own
/// error enums and convert into this at the trait boundary, choosing the class.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReconcileError {
    #[error("failed to observe {kind}: {message}")]
    Observe {
        kind: &'static str,
        class: ErrorClass,
        message: String,
    },
    #[error("failed to {action}: {message}")]
    Apply {
        action: &'static str,
        class: ErrorClass,
        message: String,
    },
    #[error("{action} did not finish within {seconds} s")]
    DeadlineExceeded { action: &'static str, seconds: u64 },
    #[error("could not resolve secret {reference}: {message}")]
    ResolveSecret { reference: String, message: String },
}

impl ReconcileError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Observe { class, .. } | Self::Apply { class, .. } => *class,
            Self::DeadlineExceeded { .. } => ErrorClass::Transient,
            Self::ResolveSecret { .. } => ErrorClass::Invalid,
        }
    }
}
