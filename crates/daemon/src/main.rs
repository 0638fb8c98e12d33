//! The `converged` binary (does I/O): parse the command line, run it on a tokio runtime, and
//! never let a task stuck in blocking code hold the process open once the command is done.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// How long tasks still running when the command returns get before the process exits anyway:
/// a daemon that failed must exit (to be restarted) even with a reconciler wedged in a
/// blocking call.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = converged::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: failed to start tokio: {err}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(converged::cli::main(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    code
}
