//! Intent records (I/O: the state directory). Before converged asks EC2 for an instance it
//! writes, durably, which node and generation it is about to create and with which client
//! token; once EC2 answers it adds the instance id. After a crash the next observation reads
//! them back, so the plan can tell "never created" from "created but not listed yet", and a
//! retried create reuses the same client token (idempotent on real EC2).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::AwsError;

/// How long after a launch an instance EC2 does not list yet is waited for rather than
/// recreated (EC2's read-after-write consistency window is seconds; this is generous).
pub const LISTING_GRACE: Duration = Duration::from_secs(600);

/// What converged was about to do, or did, for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub cluster: String,
    pub node: String,
    pub generation: u32,
    pub client_token: String,
    /// Set once RunInstances answered.
    pub instance_id: Option<String>,
    /// Unix seconds when the record was last written.
    pub written_at: u64,
}

/// An intent as the plan sees it: with its age reduced to "recent or not".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentView {
    pub node: String,
    pub generation: u32,
    pub client_token: String,
    pub instance_id: Option<String>,
    /// Written within `LISTING_GRACE`.
    pub recent: bool,
}

#[derive(Debug, Clone)]
pub struct IntentStore {
    dir: PathBuf,
}

impl IntentStore {
    /// Records live in `<state_dir>/aws-intents/`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("aws-intents"),
        }
    }

    fn path(&self, cluster: &str, node: &str) -> PathBuf {
        self.dir.join(format!("{cluster}.{node}.json"))
    }

    /// Writes the record and syncs it (and its directory) before returning.
    pub async fn write(&self, intent: &Intent) -> Result<(), AwsError> {
        let path = self.path(&intent.cluster, &intent.node);
        let mut record = intent.clone();
        record.written_at = unix_now();
        let write_path = path.clone();
        let outcome = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            converged_core::durable::replace_file(&write_path, &serde_json::to_vec_pretty(&record)?)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|result| result);
        outcome.map_err(|source| AwsError::WriteIntent { path, source })
    }

    /// Every record of `cluster`, with its age judged against the clock now.
    pub async fn load(&self, cluster: &str) -> Result<Vec<IntentView>, AwsError> {
        let dir = self.dir.clone();
        let prefix = format!("{cluster}.");
        let loaded = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Intent>> {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(err) => return Err(err),
            };
            let mut intents = Vec::new();
            for entry in entries {
                let path = entry?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !name.starts_with(&prefix) || !name.ends_with(".json") {
                    continue;
                }
                let intent: Intent = serde_json::from_slice(&std::fs::read(&path)?)?;
                intents.push(intent);
            }
            Ok(intents)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|result| result)
        .map_err(|source| AwsError::ReadIntents {
            path: self.dir.clone(),
            source,
        })?;
        let now = unix_now();
        let mut views: Vec<IntentView> = loaded
            .into_iter()
            .filter(|intent| intent.cluster == cluster)
            .map(|intent| IntentView {
                recent: now.saturating_sub(intent.written_at) < LISTING_GRACE.as_secs(),
                node: intent.node,
                generation: intent.generation,
                client_token: intent.client_token,
                instance_id: intent.instance_id,
            })
            .collect();
        views.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(views)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_round_trip_per_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let store = IntentStore::new(dir.path());
        assert!(
            store.load("a").await.unwrap().is_empty(),
            "no directory yet"
        );
        let mut intent = Intent {
            cluster: "a".into(),
            node: "web".into(),
            generation: 2,
            client_token: "token".into(),
            instance_id: None,
            written_at: 0,
        };
        store.write(&intent).await.unwrap();
        store
            .write(&Intent {
                cluster: "ab".into(),
                ..intent.clone()
            })
            .await
            .unwrap();
        intent.instance_id = Some("i-1".into());
        store.write(&intent).await.unwrap();
        let views = store.load("a").await.unwrap();
        assert_eq!(
            views,
            vec![IntentView {
                node: "web".into(),
                generation: 2,
                client_token: "token".into(),
                instance_id: Some("i-1".into()),
                recent: true,
            }]
        );
    }
}
