//! The memory of the Mesos agents converged manages (does file I/O:
//! `<state_dir>/mesos-agents.json`, written to a temporary file, synced and renamed into place).
//! It outlives the desired state, so the agent of a node removed from it is still recognized
//! as converged's and drained. A read-only store (`converged plan`) reads it and writes nothing.

use std::path::{Path, PathBuf};

use converged_hosts::Access;

use super::diff::AgentMemory;
use crate::error::MesosError;

pub const MEMORY_FILE: &str = "mesos-agents.json";

#[derive(Debug, Clone)]
pub struct AgentMemoryStore {
    path: PathBuf,
    access: Access,
}

impl AgentMemoryStore {
    pub fn new(state_dir: &Path, access: Access) -> Self {
        Self {
            path: state_dir.join(MEMORY_FILE),
            access,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(path: &Path, err: impl ToString) -> MesosError {
        MesosError::AgentMemory {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }

    /// What is remembered; nothing before the first write.
    pub async fn load(&self) -> Result<AgentMemory, MesosError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|err| Self::error(&path, err)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(AgentMemory::default()),
            Err(err) => Err(Self::error(&path, err)),
        })
        .await
        .map_err(|err| Self::error(&self.path, err))?
    }

    /// Records `memory` in place of what is on file, saying whether it did: a read-only store
    /// records nothing.
    pub async fn record(&self, memory: &AgentMemory) -> Result<bool, MesosError> {
        if !self.access.writes() {
            return Ok(false);
        }
        let path = self.path.clone();
        let text = serde_json::to_vec_pretty(memory).map_err(|err| Self::error(&path, err))?;
        // A crash leaves the old memory or the new one, never half of either.
        tokio::task::spawn_blocking(move || -> Result<(), MesosError> {
            converged_core::durable::replace_file(&path, &text)
                .map_err(|err| Self::error(&path, err))
        })
        .await
        .map_err(|err| Self::error(&self.path, err))??;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn entries(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut found: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap_or_default();
                (path, bytes)
            })
            .collect();
        found.sort();
        found
    }

    #[tokio::test]
    async fn a_read_only_store_reads_what_the_daemon_wrote_and_writes_nothing() {
        let memory = AgentMemory {
            nodes: BTreeMap::from([
                ("a".to_owned(), BTreeSet::from(["a".to_owned()])),
                ("b".to_owned(), BTreeSet::from(["ip-10-0-0-2".to_owned()])),
            ]),
        };
        let dir = tempfile::tempdir().unwrap();
        let reading = AgentMemoryStore::new(dir.path(), Access::ReadOnly);
        let writing = AgentMemoryStore::new(dir.path(), Access::ReadWrite);
        assert_eq!(reading.load().await.unwrap(), AgentMemory::default());
        assert!(!reading.record(&memory).await.unwrap());
        assert!(entries(dir.path()).is_empty(), "nothing written read-only");

        assert!(writing.record(&memory).await.unwrap());
        let written = entries(dir.path());
        assert_eq!(written.len(), 1, "the file alone, no temporary left");
        assert_eq!(reading.load().await.unwrap(), memory, "the same answer");
        assert_eq!(writing.load().await.unwrap(), memory);

        assert!(!reading.record(&AgentMemory::default()).await.unwrap());
        assert_eq!(
            entries(dir.path()),
            written,
            "unchanged by a read-only store"
        );
    }

    #[tokio::test]
    async fn an_unreadable_memory_is_an_error_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MEMORY_FILE), "{not json").unwrap();
        let store = AgentMemoryStore::new(dir.path(), Access::ReadOnly);
        let err = store.load().await.unwrap_err();
        assert!(err.to_string().contains(MEMORY_FILE), "{err}");
    }
}
