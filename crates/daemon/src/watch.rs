//! Watches the desired-state folder and turns bursts of file events into one trigger.

use std::path::Path;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::engine::Trigger;
use crate::error::DaemonError;

/// Events closer together than this are one edit (editors write, rename and chmod in bursts).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Keeps the watch alive; dropping it stops watching.
pub struct DesiredStateWatch {
    _watcher: RecommendedWatcher,
}

pub fn watch(
    dir: &Path,
    triggers: mpsc::Sender<Trigger>,
) -> Result<DesiredStateWatch, DaemonError> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
    let fail = |err: notify::Error| DaemonError::WatchDesiredState {
        path: dir.to_owned(),
        message: err.to_string(),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && is_edit(&event.kind)
        {
            let _ = events_tx.send(());
        }
    })
    .map_err(fail)?;
    watcher.watch(dir, RecursiveMode::Recursive).map_err(fail)?;
    tokio::spawn(async move {
        while events_rx.recv().await.is_some() {
            loop {
                match tokio::time::timeout(DEBOUNCE, events_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            tracing::debug!("desired state changed on disk");
            if triggers.send(Trigger::DesiredStateChanged).await.is_err() {
                return;
            }
        }
    });
    Ok(DesiredStateWatch { _watcher: watcher })
}

/// Reading the folder must not count as an edit, or every cycle would trigger the next.
fn is_edit(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_writes_is_one_trigger_and_reads_are_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cluster.toml"), "x").unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let _watch = watch(dir.path(), tx).unwrap();
        for index in 0..5 {
            std::fs::write(dir.path().join("cluster.toml"), format!("edit {index}")).unwrap();
        }
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(first, Some(Trigger::DesiredStateChanged));
        let _ = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
        let quiet = tokio::time::timeout(DEBOUNCE * 3, rx.recv()).await;
        assert!(
            quiet.is_err(),
            "a read or a finished burst must not trigger again: {quiet:?}"
        );
    }
}
