//! Reads the desired-state folder on a blocking thread with a deadline (does file I/O): a slow
//! disk or a hostile file in the folder cannot stall the async runtime, and so cannot stop
//! `/healthz`, `/status` or SIGTERM from being answered.

use std::path::{Path, PathBuf};
use std::time::Duration;

use converged_core::load::{Fingerprint, LoadError, fingerprint};
use converged_core::{DesiredState, Problem, load_desired_state};

/// A read of the whole folder that takes longer than this counts as failed.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Loads the desired state; a read past `deadline` is an error naming the folder. The blocking
/// thread of a read that overran finishes on its own (the loader only opens regular files of
/// bounded size, so it cannot hang for ever).
pub async fn load(dir: &Path, deadline: Duration) -> Result<DesiredState, LoadError> {
    let owned = dir.to_owned();
    match run_blocking(deadline, move || load_desired_state(&owned)).await {
        Some(result) => result,
        None => Err(LoadError {
            dir: dir.to_owned(),
            revision: None,
            problems: vec![overran(dir, deadline)],
        }),
    }
}

/// The folder's fingerprint, or `None` when it cannot be taken (within `deadline`): the
/// caller then reads the folder again.
pub async fn fingerprint_of(dir: &Path, deadline: Duration) -> Option<Fingerprint> {
    let owned: PathBuf = dir.to_owned();
    run_blocking(deadline, move || fingerprint(&owned))
        .await
        .flatten()
}

async fn run_blocking<T: Send + 'static>(
    deadline: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Ok(Err(_)) | Err(_) => None,
    }
}

fn overran(dir: &Path, deadline: Duration) -> Problem {
    Problem {
        file: dir.display().to_string(),
        line: None,
        column: None,
        field: None,
        message: format!(
            "reading the desired-state folder took longer than {} s; the last valid desired state stays in force",
            deadline.as_secs()
        ),
    }
}
