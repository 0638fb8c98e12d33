//! The `converged` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    converged::cli::main(converged::cli::Cli::parse()).await
}
