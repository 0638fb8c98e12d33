//! The memory of which env keys converged sent to Marathon as secrets (does file I/O:
//! `<state_dir>/marathon-secret-keys.json`, written to a temporary file, synced, renamed into
//! place and its directory synced). It is written before the request that sends the secrets
//! leaves, so no crash can leave Marathon holding a secret converged does not know to redact.
//! Key names only, never values. A read-only store (`converged plan`) reads it and writes
//! nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use converged_hosts::Access;

use super::diff::SentSecrets;
use crate::error::MesosError;

pub const MEMORY_FILE: &str = "marathon-secret-keys.json";

#[derive(Debug)]
pub struct SecretKeyStore {
    path: PathBuf,
    access: Access,
    /// Actions run in parallel: one read-modify-write at a time.
    writing: tokio::sync::Mutex<()>,
}

impl SecretKeyStore {
    pub fn new(state_dir: &Path, access: Access) -> Self {
        Self {
            path: state_dir.join(MEMORY_FILE),
            access,
            writing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(path: &Path, err: impl ToString) -> MesosError {
        MesosError::SecretKeyMemory {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }

    /// What is remembered; nothing before the first write.
    pub async fn load(&self) -> Result<SentSecrets, MesosError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read(&path))
            .await
            .map_err(|err| Self::error(&self.path, err))?
    }

    /// Remembers `keys` for `app` in place of what was remembered for it (an empty set forgets
    /// the app), durably, before returning. Writes nothing when that is already on file, or
    /// when the store is read-only.
    pub async fn remember(&self, app: &str, keys: &BTreeSet<String>) -> Result<(), MesosError> {
        if !self.access.writes() {
            return Ok(());
        }
        let _writing = self.writing.lock().await;
        let path = self.path.clone();
        let (app, keys) = (app.to_owned(), keys.clone());
        tokio::task::spawn_blocking(move || {
            let mut memory = read(&path)?;
            let changed = if keys.is_empty() {
                memory.apps.remove(&app).is_some()
            } else {
                memory.apps.insert(app, keys.clone()).as_ref() != Some(&keys)
            };
            if changed {
                write(&path, &memory).map_err(|err| Self::error(&path, err))?;
            }
            Ok(())
        })
        .await
        .map_err(|err| Self::error(&self.path, err))?
    }
}

fn read(path: &Path) -> Result<SentSecrets, MesosError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|err| SecretKeyStore::error(path, err)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(SentSecrets::default()),
        Err(err) => Err(SecretKeyStore::error(path, err)),
    }
}

fn write(path: &Path, memory: &SentSecrets) -> std::io::Result<()> {
    converged_core::durable::replace_file(path, &serde_json::to_vec_pretty(memory)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[tokio::test]
    async fn keys_are_remembered_per_app_replaced_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretKeyStore::new(dir.path(), Access::ReadWrite);
        assert_eq!(store.load().await.unwrap(), SentSecrets::default());
        store.remember("/a", &keys(&["PW", "TOKEN"])).await.unwrap();
        store.remember("/b", &keys(&["KEY"])).await.unwrap();
        store.remember("/a", &keys(&["TOKEN"])).await.unwrap();
        let memory = store.load().await.unwrap();
        assert_eq!(memory.of("/a").collect::<Vec<_>>(), ["TOKEN"]);
        assert_eq!(memory.of("/b").collect::<Vec<_>>(), ["KEY"]);
        store.remember("/b", &BTreeSet::new()).await.unwrap();
        assert_eq!(store.load().await.unwrap().of("/b").count(), 0);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "the file alone, no temporary left");
    }

    #[tokio::test]
    async fn a_read_only_store_writes_nothing_and_a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let reading = SecretKeyStore::new(dir.path(), Access::ReadOnly);
        reading.remember("/a", &keys(&["PW"])).await.unwrap();
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
        std::fs::write(dir.path().join(MEMORY_FILE), "{not json").unwrap();
        let err = reading.load().await.unwrap_err();
        assert!(err.to_string().contains(MEMORY_FILE), "{err}");
    }
}
