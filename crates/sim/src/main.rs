//! The `converged-sim` binary: `mesos-master`, `mesos-agent` or `marathon`.
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = converged_sim::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match converged_sim::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "converged-sim failed");
            std::process::ExitCode::FAILURE
        }
    }
}
