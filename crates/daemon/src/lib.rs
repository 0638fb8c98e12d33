//! converged: the daemon that keeps a Mesos + Marathon cluster on AWS matching its desired
//! state. This library holds everything but `main`, so the CLI, the engine and the HTTP router
//! can be tested without a process or a socket.

pub mod addresses;
pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod desired;
pub mod engine;
pub mod error;
pub mod http;
pub mod kinds;
pub mod metrics;
pub mod planner;
pub mod status;
pub mod telemetry;
pub mod watch;
