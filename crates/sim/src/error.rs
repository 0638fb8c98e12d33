//! The simulator's error type.

use std::net::SocketAddr;

/// Everything that can go wrong when starting or running a simulated process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("failed to bind {addr}")]
    Bind {
        /// Address that was requested.
        addr: SocketAddr,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server stopped with an I/O error.
    #[error("failed to serve HTTP")]
    Serve(#[source] std::io::Error),
    /// A `--resources` or `--attributes` string was malformed.
    #[error("failed to parse {what} {input:?}: {reason}")]
    Parse {
        /// Which flag was being parsed.
        what: &'static str,
        /// The offending input.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A `--master` or `--zk` URL was malformed.
    #[error("failed to parse URL {url:?}: {reason}")]
    Url {
        /// The offending URL.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A ZooKeeper operation failed.
    #[error("failed to {op} in ZooKeeper at {path}")]
    Zk {
        /// What was attempted.
        op: &'static str,
        /// Znode path involved.
        path: String,
        /// Underlying client error.
        #[source]
        source: zookeeper_client::Error,
    },
    /// Another Marathon wrote the stored state since this one last read or wrote it.
    #[error("another leader wrote the state at {path}")]
    StateSuperseded {
        /// Znode path of the state.
        path: String,
    },
    /// An HTTP call to another simulated process failed.
    #[error("failed to call {url}")]
    Http {
        /// URL that was called.
        url: String,
        /// Underlying client error.
        #[source]
        source: reqwest::Error,
    },
    /// A peer answered with an unexpected status.
    #[error("peer {url} answered {status}")]
    PeerStatus {
        /// URL that was called.
        url: String,
        /// Status it answered.
        status: u16,
    },
    /// The HTTP client could not be built.
    #[error("failed to build HTTP client")]
    Client(#[source] reqwest::Error),
}
