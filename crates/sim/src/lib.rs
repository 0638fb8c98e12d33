//! Simulated Mesos master, Mesos agent and Marathon that honour the upstream HTTP contracts.
//!
//! Each process is started from [`cli::Cli`]; the library entry points (`mesos::master::run`,
//! `mesos::agent::run`, `marathon::run`) take a bound listener so tests can run them in-process.
pub mod cli;
mod error;
pub mod leader;
pub mod marathon;
pub mod mesos;
pub mod resources;
pub mod server;

pub use error::Error;
