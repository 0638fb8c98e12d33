//! The daemon's error enum: configuration, state directory, audit log and HTTP client failures.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("failed to load the configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("failed to load the configuration: the environment variable {variable}: {message}")]
    ConfigVariable { variable: String, message: String },
    #[error("failed to set up logging with the filter `{filter}`: {message}")]
    LogFilter { filter: String, message: String },
    #[error("failed to read the token file {path}: {source}")]
    ReadTokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token file {path} is empty")]
    EmptyTokenFile { path: PathBuf },
    #[error("failed to write the audit log {path}: {source}")]
    WriteAuditLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to register metric {name}: {source}")]
    RegisterMetric {
        name: &'static str,
        source: prometheus::Error,
    },
    #[error("failed to watch {path}: {message}")]
    WatchDesiredState { path: PathBuf, message: String },
    #[error("failed to bind {address}: {source}")]
    BindHttp {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to set up the {kind} kind: {message}")]
    Kind { kind: &'static str, message: String },
    #[error("the daemon's {task} failed: {reason}")]
    EssentialTask { task: &'static str, reason: String },
}
