//! The crate's error enum: failed host operations, each with the error class that drives the
//! engine's backoff. No message ever holds a command line, an environment value or a secret.

use converged_core::{Classified, ErrorClass};

use crate::address::Outside;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostsError {
    #[error("refused to contact node {node} at {address}: {outside}")]
    AddressNotAllowed {
        node: String,
        address: String,
        #[source]
        outside: Outside,
    },
    #[error("no address for node {node}: {reason}")]
    ResolveAddress { node: String, reason: String },
    #[error("failed to load the SSH key {path}: {message}")]
    LoadKey { path: String, message: String },
    #[error("failed to connect to node {node} at {address}: {message}")]
    Connect {
        node: String,
        address: String,
        message: String,
    },
    #[error(
        "the host key of node {node} at {address} changed (pinned {pinned}, offered {offered}); refusing to connect: if the host was rebuilt on purpose, remove its line from {known_hosts}"
    )]
    HostKeyChanged {
        node: String,
        address: String,
        pinned: String,
        offered: String,
        known_hosts: String,
    },
    #[error("failed to record the host key of node {node} in {path}: {message}")]
    PinHostKey {
        node: String,
        path: String,
        message: String,
    },
    #[error("failed to authenticate to node {node} as {user}: {message}")]
    Authenticate {
        node: String,
        user: String,
        message: String,
    },
    #[error("failed to {operation} on node {node}: timed out after {seconds} s")]
    CommandTimeout {
        node: String,
        operation: &'static str,
        seconds: u64,
    },
    #[error("failed to {operation} on node {node}: exit status {status}: {stderr}")]
    CommandFailed {
        node: String,
        operation: &'static str,
        status: u32,
        stderr: String,
    },
    #[error("failed to {operation} on node {node}: {message}")]
    Exec {
        node: String,
        operation: &'static str,
        message: String,
    },
    #[error("failed to understand the output of {operation} on node {node}: {message}")]
    ParseOutput {
        node: String,
        operation: &'static str,
        message: String,
    },
    #[error("failed to render service {service} for node {node}: {reason}")]
    RenderService {
        node: String,
        service: String,
        reason: String,
    },
    #[error("refused to {operation} on node {node}: this registry is read-only (converged plan)")]
    ReadOnly {
        node: String,
        operation: &'static str,
    },
    #[error("failed to read or write {what} in the state directory: {message}")]
    StateFile { what: &'static str, message: String },
}

impl Classified for HostsError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::ResolveAddress { .. }
            | Self::Connect { .. }
            | Self::PinHostKey { .. }
            | Self::CommandTimeout { .. }
            | Self::CommandFailed { .. }
            | Self::Exec { .. }
            | Self::ParseOutput { .. }
            | Self::StateFile { .. } => ErrorClass::Transient,
            Self::LoadKey { .. } | Self::Authenticate { .. } | Self::RenderService { .. } => {
                ErrorClass::Invalid
            }
            Self::AddressNotAllowed { .. }
            | Self::HostKeyChanged { .. }
            | Self::ReadOnly { .. } => ErrorClass::Unsafe,
        }
    }
}
