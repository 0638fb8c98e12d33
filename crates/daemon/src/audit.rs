//! The audit log (does I/O): one JSON line per action attempted and per outcome, in the state
//! directory, written and synced to disk before the action runs and before its outcome is
//! reported; whole lines only; rotated by size.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::DaemonError;

pub const AUDIT_FILE: &str = "audit.jsonl";
const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
const KEPT_ROTATIONS: u32 = 3;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry<'a> {
    /// RFC 3339.
    pub at: &'a str,
    /// `attempt` or `outcome` (or, written when the daemon starts, `interrupted`: an attempt
    /// with no outcome after it).
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
    inner: Mutex<Inner>,
}

struct Inner {
    file: Option<File>,
    /// Outcome lines that could not be written yet, oldest first: written before any other
    /// line once the log takes writes again (lost if the process dies first).
    backlog: Vec<Vec<u8>>,
    /// The last write error, while writes fail.
    failing: Option<String>,
}

/// Whether the log takes writes, for `/status` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHealth {
    pub path: PathBuf,
    /// The last write error, while the log cannot be written.
    pub error: Option<String>,
    /// Outcomes of actions that ran but are not in the log yet.
    pub unrecorded_outcomes: usize,
}

impl AuditLog {
    pub fn open(state_dir: &Path) -> Result<Self, DaemonError> {
        Self::with_max_bytes(state_dir, DEFAULT_MAX_BYTES)
    }

    /// Opens the log for appending; a torn last line (the process died while writing it) is
    /// cut off first, so every line in the log is whole. A log that cannot be opened is not
    /// fatal: the daemon starts, says so in `/status` and acts on nothing until it can be
    /// written (each write tries to open it again).
    pub fn with_max_bytes(state_dir: &Path, max_bytes: u64) -> Result<Self, DaemonError> {
        let path = state_dir.join(AUDIT_FILE);
        std::fs::create_dir_all(state_dir).map_err(|source| DaemonError::WriteAuditLog {
            path: path.clone(),
            source,
        })?;
        let (file, failing) = match open_append(&path).and_then(|file| {
            note_interrupted(&path, &file)?;
            Ok(file)
        }) {
            Ok(file) => (Some(file), None),
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "the audit log cannot be opened: no action is taken until it can");
                (None, Some(err.to_string()))
            }
        };
        Ok(Self {
            path,
            max_bytes,
            inner: Mutex::new(Inner {
                file,
                backlog: Vec::new(),
                failing,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn health(&self) -> AuditHealth {
        let inner = self.lock();
        AuditHealth {
            path: self.path.clone(),
            error: inner.failing.clone(),
            unrecorded_outcomes: inner.backlog.len(),
        }
    }

    /// Appends one line and syncs it to disk, after any outcome lines held back. A line that
    /// cannot be written whole is cut off again. An outcome that cannot be written is held
    /// back and written before the next line (the action ran: its outcome must not be lost);
    /// an attempt that cannot be written is not (the caller does not act).
    pub fn record(&self, entry: &AuditEntry<'_>) -> Result<(), DaemonError> {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let mut inner = self.lock();
        let mut pending = std::mem::take(&mut inner.backlog);
        pending.push(line);
        let mut written = 0;
        let mut result = Ok(());
        for line in &pending {
            if let Err(source) = self.append(&mut inner, line) {
                result = Err(source);
                break;
            }
            written += 1;
        }
        let unwritten = pending.split_off(written);
        match result {
            Ok(()) => {
                if inner.failing.take().is_some() {
                    tracing::info!(path = %self.path.display(), "the audit log takes writes again");
                }
                Ok(())
            }
            Err(source) => {
                inner.failing = Some(source.to_string());
                inner.backlog = unwritten;
                if entry.event != "outcome" {
                    inner.backlog.pop();
                }
                Err(DaemonError::WriteAuditLog {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    fn append(&self, inner: &mut Inner, line: &[u8]) -> std::io::Result<()> {
        // A log moved, deleted or replaced under the daemon is opened anew: lines written to
        // the old file would be lost to whoever reads the path.
        if inner
            .file
            .as_ref()
            .is_some_and(|file| !names(&self.path, file))
        {
            inner.file = None;
        }
        let file = match inner.file.take() {
            Some(file) => file,
            None => open_append(&self.path)?,
        };
        let file = inner.file.insert(file);
        let before = file.metadata()?.len();
        let written = file.write_all(line).and_then(|()| file.sync_data());
        if let Err(err) = written {
            // A full disk can take part of the line: cut it, or the next line would be glued
            // to half of this one.
            let _ = file.set_len(before).and_then(|()| file.sync_data());
            return Err(err);
        }
        if before + line.len() as u64 >= self.max_bytes {
            inner.file = None;
            // The line is written: a failed rotation only delays the rotation to the next one.
            if let Err(err) = self.rotate() {
                tracing::warn!(path = %self.path.display(), error = %err, "failed to rotate the audit log");
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// What an attempt without an outcome becomes when the daemon starts again: the action was
/// cut off (the process was killed, the machine went down) and nobody knows whether the peer
/// carried it out; the next observation shows what it did.
#[derive(Debug, Serialize, Deserialize)]
struct Interrupted {
    at: String,
    event: String,
    kind: String,
    resource: String,
    action: String,
    reason: String,
    desired_revision: String,
}

/// Appends an `interrupted` line for every attempt in the log that has no outcome after it.
fn note_interrupted(path: &Path, mut file: &File) -> std::io::Result<()> {
    let text = std::fs::read(path)?;
    let mut open: BTreeMap<(String, String), Interrupted> = BTreeMap::new();
    for line in text.split(|b| *b == b'\n') {
        let Ok(entry) = serde_json::from_slice::<Interrupted>(line) else {
            continue;
        };
        let key = (entry.kind.clone(), entry.resource.clone());
        match entry.event.as_str() {
            "attempt" => {
                open.insert(key, entry);
            }
            _ => {
                open.remove(&key);
            }
        }
    }
    let at = crate::status::rfc3339(std::time::SystemTime::now());
    for (_, mut entry) in open {
        tracing::warn!(kind = %entry.kind, resource = %entry.resource, action = %entry.action, attempted_at = %entry.at, "an action was cut off before its outcome was recorded: the next observation shows what it did");
        entry.event = "interrupted".to_owned();
        entry.at.clone_from(&at);
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        file.write_all(&line)?;
    }
    file.sync_data()
}

/// Cuts whatever follows the last newline: a line whose write never finished.
fn cut_torn_line(file: &File) -> std::io::Result<()> {
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(());
    }
    let mut reader = file;
    let mut keep = size;
    let mut chunk = vec![0; 4096];
    while keep > 0 {
        let start = keep.saturating_sub(chunk.len() as u64);
        let length = usize::try_from(keep - start).unwrap_or(chunk.len());
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut chunk[..length])?;
        if let Some(newline) = chunk[..length].iter().rposition(|b| *b == b'\n') {
            keep = start + newline as u64 + 1;
            break;
        }
        keep = start;
    }
    if keep < size {
        file.set_len(keep)?;
        file.sync_data()?;
    }
    Ok(())
}

fn rotated(path: &Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Opens the log for appending, cutting a torn last line.
fn open_append(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    cut_torn_line(&file)?;
    Ok(file)
}

/// Whether `path` still names the open `file`.
fn names(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
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

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is whole JSON"))
            .collect()
    }

    #[test]
    fn a_torn_last_line_is_cut_and_a_cut_off_attempt_is_noted_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(&entry("attempt")).unwrap();
        log.record(&entry("outcome")).unwrap();
        log.record(&entry("attempt")).unwrap();
        drop(log);
        let path = dir.path().join(AUDIT_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"at\":\"2026-01-01T00:00:01Z\",\"event\":\"att")
            .unwrap();
        drop(file);

        let log = AuditLog::open(dir.path()).unwrap();
        let events: Vec<_> = lines(&path)
            .iter()
            .map(|line| line["event"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events, ["attempt", "outcome", "attempt", "interrupted"]);
        let interrupted = &lines(&path)[3];
        assert_eq!(interrupted["resource"], "/a");
        assert_eq!(interrupted["action"], "update");
        log.record(&entry("attempt")).unwrap();
        assert_eq!(lines(&path).len(), 5, "appends after the repaired tail");
    }

    #[test]
    fn an_unwritable_log_refuses_attempts_and_holds_outcomes_back_until_it_takes_writes() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(&entry("attempt")).unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let aside = dir.path().join("aside.jsonl");
        std::fs::rename(&path, &aside).unwrap();
        std::fs::create_dir(&path).unwrap();

        assert!(log.record(&entry("outcome")).is_err());
        assert!(log.record(&entry("attempt")).is_err());
        let health = log.health();
        assert!(health.error.is_some(), "{health:?}");
        assert_eq!(health.unrecorded_outcomes, 1, "the attempt is not held");

        std::fs::remove_dir(&path).unwrap();
        std::fs::rename(&aside, &path).unwrap();
        log.record(&entry("attempt")).unwrap();
        assert_eq!(
            log.health(),
            AuditHealth {
                path: path.clone(),
                error: None,
                unrecorded_outcomes: 0
            }
        );
        let events: Vec<_> = lines(&path)
            .iter()
            .map(|line| line["event"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events, ["attempt", "outcome", "attempt"]);
    }

    #[test]
    fn a_log_that_cannot_be_opened_does_not_stop_the_daemon_starting() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(AUDIT_FILE)).unwrap();
        let log = AuditLog::open(dir.path()).expect("starts");
        assert!(log.health().error.is_some());
        assert!(log.record(&entry("attempt")).is_err());
        std::fs::remove_dir(dir.path().join(AUDIT_FILE)).unwrap();
        log.record(&entry("attempt")).unwrap();
        assert!(log.health().error.is_none());
    }
}
