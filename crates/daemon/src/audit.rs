//! The audit log: one JSON line per action attempted and per outcome, in the state directory,
//! written and synced to disk before the outcome is reported; rotated by size.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::DaemonError;

pub const AUDIT_FILE: &str = "audit.jsonl";
const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
const KEPT_ROTATIONS: u32 = 3;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry<'a> {
    /// RFC 3339.
    pub at: &'a str,
    /// `attempt` or `outcome`.
    pub event: &'static str,
    pub kind: &'static str,
    pub resource: &'a str,
    pub action: &'static str,
    pub reason: &'a str,
    pub desired_revision: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<&'static str>,
}

pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    file: Mutex<Option<File>>,
}

impl AuditLog {
    pub fn open(state_dir: &Path) -> Result<Self, DaemonError> {
        Self::with_max_bytes(state_dir, DEFAULT_MAX_BYTES)
    }

    pub fn with_max_bytes(state_dir: &Path, max_bytes: u64) -> Result<Self, DaemonError> {
        let path = state_dir.join(AUDIT_FILE);
        std::fs::create_dir_all(state_dir).map_err(|source| DaemonError::WriteAuditLog {
            path: path.clone(),
            source,
        })?;
        let file = open_append(&path)?;
        Ok(Self {
            path,
            max_bytes,
            file: Mutex::new(Some(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and syncs it to disk.
    pub fn record(&self, entry: &AuditEntry<'_>) -> Result<(), DaemonError> {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let mut guard = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(open_append(&self.path)?);
        }
        let write_error = |source| DaemonError::WriteAuditLog {
            path: self.path.clone(),
            source,
        };
        if let Some(file) = guard.as_mut() {
            file.write_all(&line).map_err(write_error)?;
            file.sync_data().map_err(write_error)?;
            let size = file.metadata().map_err(write_error)?.len();
            if size >= self.max_bytes {
                *guard = None;
                self.rotate().map_err(write_error)?;
            }
        }
        Ok(())
    }

    /// `audit.jsonl` → `audit.jsonl.1` → … → `audit.jsonl.3` (dropped).
    fn rotate(&self) -> std::io::Result<()> {
        for index in (1..KEPT_ROTATIONS).rev() {
            let from = rotated(&self.path, index);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, index + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))
    }
}

fn rotated(path: &Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> Result<File, DaemonError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| DaemonError::WriteAuditLog {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(event: &'static str) -> AuditEntry<'static> {
        AuditEntry {
            at: "2026-01-01T00:00:00Z",
            event,
            kind: "marathon_app",
            resource: "/a",
            action: "update",
            reason: "instances 1 → 2",
            desired_revision: "abc",
            result: None,
            error: None,
            error_class: None,
        }
    }

    #[test]
    fn lines_are_json_and_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::with_max_bytes(dir.path(), 600).unwrap();
        for _ in 0..6 {
            log.record(&entry("attempt")).unwrap();
        }
        let rotated_file = dir.path().join("audit.jsonl.1");
        assert!(rotated_file.exists(), "the log rotated");
        let text = std::fs::read_to_string(rotated_file).unwrap();
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["event"], "attempt");
        }
        log.record(&entry("outcome")).unwrap();
        let current = std::fs::read_to_string(log.path()).unwrap();
        assert!(current.lines().last().unwrap().contains("\"outcome\""));
        for _ in 0..40 {
            log.record(&entry("attempt")).unwrap();
        }
        assert!(
            !dir.path().join("audit.jsonl.4").exists(),
            "at most three rotations are kept"
        );
    }
}
