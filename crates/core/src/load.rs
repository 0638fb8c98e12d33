//! Loading the desired-state folder: reads `cluster.toml` and `apps/*.json` (the only file I/O
//! in this crate), parses them strictly, validates them and reports every problem at once with
//! file, line, column and field path. Only regular files inside the folder, within a size
//! limit, are ever opened: a pipe, socket or device dropped into the folder is reported, never
//! waited on.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::locate::{FieldPath, Segment, line_column, locate_json, locate_toml};
use crate::model::app::{STATUS_FIELDS, known_fields};
use crate::model::{AppFile, ClusterFile, DesiredState, MarathonApp};
use crate::validate::{Finding, validate};

pub const CLUSTER_FILE: &str = "cluster.toml";
pub const APPS_DIR: &str = "apps";

/// One thing wrong with the desired state, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Problem {
    /// Relative to the desired-state folder, e.g. `apps/gitlab.json`.
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// `nodes[2].instance_type` in TOML, `/container/docker/image` in JSON.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the desired state in {dir} is invalid ({} problem(s))", problems.len())]
pub struct LoadError {
    pub dir: PathBuf,
    /// The content hash of what was read, when the folder could be read at all.
    pub revision: Option<String>,
    pub problems: Vec<Problem>,
}

/// Reads, parses and validates the desired-state folder. Only regular files inside the folder
/// within their size limits are opened (see [`MAX_APP_FILE_BYTES`], [`MAX_CLUSTER_FILE_BYTES`]);
/// anything else is a problem naming the file, so whatever sits in the folder, this returns
/// without waiting on a pipe, socket or device.
pub fn load_desired_state(dir: &Path) -> Result<DesiredState, LoadError> {
    let fail = |revision, problems| LoadError {
        dir: dir.to_owned(),
        revision,
        problems,
    };
    let Walk {
        files,
        mut problems,
    } = walk(dir).map_err(|problem| fail(None, vec![problem]))?;
    let mut sources = Vec::new();
    for (relative, inspected) in files {
        let limit = limit_for(&relative);
        match inspected.and_then(|file| read_bounded(&file, limit)) {
            Ok(text) => sources.push((relative, text)),
            Err(Unreadable::Io(err)) if relative == CLUSTER_FILE => problems.push(whole_file(
                CLUSTER_FILE,
                &format!(
                    "cannot read it ({}): every desired state needs at least `[cluster]` with a `name`",
                    err.kind()
                ),
            )),
            Err(Unreadable::Io(err)) => {
                problems.push(whole_file(&relative, &format!("cannot read it: {err}")));
            }
            Err(Unreadable::Refused(message)) => problems.push(whole_file(&relative, &message)),
        }
    }
    let revision = revision_of(&sources);
    match parse_sources(&sources, revision.clone()) {
        Ok(state) if problems.is_empty() => Ok(state),
        Ok(_) => Err(fail(Some(revision), problems)),
        Err(mut found) => {
            problems.append(&mut found);
            Err(fail(Some(revision), problems))
        }
    }
}

/// Parses and validates already-read sources: `cluster.toml` and `apps/*.json`, by relative
/// path. Separate from the folder walk so it can be tested on strings.
pub fn parse_sources(
    sources: &[(String, String)],
    revision: String,
) -> Result<DesiredState, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut cluster = None;
    let mut apps = Vec::new();
    for (path, text) in sources {
        if path == CLUSTER_FILE {
            cluster = parse_cluster(path, text, &mut problems);
        } else if let Some(app) = parse_app(path, text, &mut problems) {
            apps.push(AppFile {
                path: path.clone(),
                app,
            });
        }
    }
    if let Some(cluster) = &cluster {
        for Finding {
            file,
            path,
            message,
        } in validate(cluster, &apps)
        {
            let text = sources
                .iter()
                .find(|(name, _)| *name == file)
                .map_or("", |(_, text)| text.as_str());
            problems.push(located(&file, text, &path, message));
        }
    }
    match cluster {
        Some(cluster) if problems.is_empty() => Ok(DesiredState {
            revision,
            cluster: cluster.cluster,
            network: cluster.network,
            nodes: cluster.nodes,
            dns: cluster.dns,
            services: cluster.services,
            kinds: cluster.kinds,
            apps,
        }),
        _ => {
            // Files in the order they were read (cluster.toml first), each top to bottom.
            let order = |file: &str| sources.iter().position(|(name, _)| name == file);
            problems.sort_by_key(|p| (order(&p.file), p.line, p.column));
            Err(problems)
        }
    }
}

fn parse_cluster(path: &str, text: &str, problems: &mut Vec<Problem>) -> Option<ClusterFile> {
    let value = match toml::from_str::<toml::Table>(text) {
        Ok(table) => serde_json::to_value(table).ok()?,
        Err(err) => {
            let (line, column) = err.span().map_or((None, None), |span| {
                let (line, column) = line_column(text, span.start);
                (Some(line), Some(column))
            });
            problems.push(Problem {
                file: path.to_owned(),
                line,
                column,
                field: None,
                message: format!("not valid TOML: {}", err.message()),
            });
            return None;
        }
    };
    deserialize_reporting(value, problems, &|field_path, message| {
        located(path, text, field_path, message)
    })
}

fn parse_app(path: &str, text: &str, problems: &mut Vec<Problem>) -> Option<MarathonApp> {
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value) => value,
        Err(err) => {
            problems.push(Problem {
                file: path.to_owned(),
                line: Some(u32::try_from(err.line()).unwrap_or(u32::MAX)),
                column: Some(u32::try_from(err.column()).unwrap_or(u32::MAX)),
                field: None,
                message: format!("not valid JSON: {}", json_error_message(&err)),
            });
            return None;
        }
    };
    if !value.is_object() {
        problems.push(whole_file(
            path,
            "an app file holds one JSON object, the app definition",
        ));
        return None;
    }
    deserialize_reporting(value, problems, &|field_path, message| {
        located(path, text, field_path, message)
    })
}

/// Deserializes strictly, but keeps going past unknown fields (dropping each after reporting
/// it) so that one typo does not hide every other problem in the file.
fn deserialize_reporting<T: DeserializeOwned>(
    mut value: Value,
    problems: &mut Vec<Problem>,
    locate: &dyn Fn(&FieldPath, String) -> Problem,
) -> Option<T> {
    const MAX_UNKNOWN_FIELDS: usize = 50;
    for _ in 0..MAX_UNKNOWN_FIELDS {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => return Some(parsed),
            Err(err) => {
                let mut parent = FieldPath::from_serde(err.path());
                let message = err.inner().to_string();
                let unknown = unknown_field_name(&message);
                if let (Some(field), Some(Segment::Key(last))) = (&unknown, parent.0.last())
                    && field == last
                {
                    parent.0.pop();
                }
                match unknown {
                    Some(field) => {
                        let path = parent.clone().key(field.clone());
                        let suggestion = suggest_field(&field, &message);
                        if !take_key(&mut value, &parent, &field, suggestion) {
                            problems.push(locate(&parent, improve_message(&message)));
                            return None;
                        }
                        problems.push(locate(&path, describe_unknown_field(&field, &message)));
                    }
                    _ => {
                        problems.push(locate(&parent, improve_message(&message)));
                        return None;
                    }
                }
            }
        }
    }
    None
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_owned)
}

/// Removes an unknown key so parsing can go on. When it is a near miss of a field the object
/// lacks, its value moves to that field, so a typo in a required field does not also report
/// the field as missing and stop every later check.
fn take_key(value: &mut Value, parent: &FieldPath, key: &str, suggestion: Option<&str>) -> bool {
    let mut current = value;
    for segment in &parent.0 {
        current = match (segment, current) {
            (Segment::Key(name), Value::Object(map)) => match map.get_mut(name) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Index(index), Value::Array(items)) => match items.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    let Some(map) = current.as_object_mut() else {
        return false;
    };
    let Some(taken) = map.remove(key) else {
        return false;
    };
    if let Some(suggestion) = suggestion
        && !map.contains_key(suggestion)
    {
        map.insert(suggestion.to_owned(), taken);
    }
    true
}

fn suggest_field<'a>(field: &str, message: &'a str) -> Option<&'a str> {
    let candidates = backticked(message).into_iter().skip(1).collect::<Vec<_>>();
    closest(field, &candidates)
}

fn describe_unknown_field(field: &str, message: &str) -> String {
    if STATUS_FIELDS.contains(&field) {
        return format!(
            "`{field}` is reported by Marathon, not configured: remove it from the app file"
        );
    }
    let candidates = backticked(message).into_iter().skip(1).collect::<Vec<_>>();
    let candidates = if candidates.is_empty() && message.contains("expected one of") {
        known_fields()
    } else {
        candidates
    };
    match closest(field, &candidates) {
        Some(suggestion) => format!("unknown field `{field}` (did you mean `{suggestion}`?)"),
        None if candidates.is_empty() => format!("unknown field `{field}`"),
        None => format!(
            "unknown field `{field}`; the fields allowed here are {}",
            candidates
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn improve_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        let candidates = backticked(message).into_iter().skip(1).collect::<Vec<_>>();
        let allowed = candidates
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return match closest(value, &candidates) {
            Some(suggestion) => {
                format!(
                    "`{value}` is not allowed here (did you mean `{suggestion}`?); allowed: {allowed}"
                )
            }
            None => format!("`{value}` is not allowed here; allowed: {allowed}"),
        };
    }
    if let Some(field) = message.strip_prefix("missing field `") {
        let field = field.split('`').next().unwrap_or_default();
        return format!("the required field `{field}` is missing");
    }
    message.to_owned()
}

fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

fn closest<'a>(wanted: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| {
            (
                edit_distance(&wanted.to_lowercase(), &candidate.to_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

fn json_error_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(index) => text[..index].to_owned(),
        None => text,
    }
}

fn located(file: &str, text: &str, path: &FieldPath, message: String) -> Problem {
    let json = file.ends_with(".json");
    let position = if json {
        locate_json(text, path)
    } else {
        locate_toml(text, path)
    };
    let field = match (path.0.is_empty(), json) {
        (true, _) => None,
        (false, true) => Some(path.pointer()),
        (false, false) => Some(path.dotted()),
    };
    Problem {
        file: file.to_owned(),
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        field,
        message,
    }
}

fn whole_file(file: &str, message: &str) -> Problem {
    Problem {
        file: file.to_owned(),
        line: None,
        column: None,
        field: None,
        message: message.to_owned(),
    }
}

/// What the folder looks like on disk without reading any file: every file that would be
/// loaded with its size, modification time and inode (of the file a symlink leads to). Equal
/// fingerprints mean a reload would read the same bytes (editors that replace a file change its
/// inode), so a cycle can skip it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(String, u64, Option<std::time::SystemTime>, u64)>);

impl Fingerprint {
    /// Whether every file was last modified well before `time`. File timestamps are coarse
    /// (a few milliseconds), so a file written just before a load could change again within
    /// the same tick and keep its fingerprint: such a folder is always read again.
    pub fn settled_before(&self, time: std::time::SystemTime) -> bool {
        const TIMESTAMP_SLACK: std::time::Duration = std::time::Duration::from_secs(2);
        self.0.iter().all(|(_, _, modified, _)| {
            modified.is_some_and(|modified| modified + TIMESTAMP_SLACK < time)
        })
    }
}

/// The folder's fingerprint, from metadata alone (nothing is opened, so nothing can block), by
/// the same rules as [`load_desired_state`]. `None` when the folder cannot load as it stands (no
/// `cluster.toml`, a file that would be refused): there is nothing to skip, and each load then
/// reports why, cheaply, since refused files are never read.
pub fn fingerprint(dir: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let walk = walk(dir).ok()?;
    if !walk.problems.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for (relative, inspected) in walk.files {
        let metadata = inspected.ok()?.metadata;
        entries.push((
            relative,
            metadata.len(),
            metadata.modified().ok(),
            metadata.ino(),
        ));
    }
    Some(Fingerprint(entries))
}

/// The largest app file read. Marathon keeps an app definition in one ZooKeeper node, which its
/// `--zk_max_node_size` limits to 1 MiB by default: a larger definition could never be stored.
pub const MAX_APP_FILE_BYTES: u64 = MIB;

/// The largest `cluster.toml` read: far above any real cluster (a thousand nodes take about
/// 200 KiB), low enough that a wrong or runaway file cannot fill the daemon's memory.
pub const MAX_CLUSTER_FILE_BYTES: u64 = 4 * MIB;

/// A size limit and the reason given when a file exceeds it.
struct Limit {
    bytes: u64,
    what: &'static str,
    why: &'static str,
}

const APP_LIMIT: Limit = Limit {
    bytes: MAX_APP_FILE_BYTES,
    what: "an app file",
    why: "Marathon keeps an app definition in one ZooKeeper node, 1 MiB by default (`--zk_max_node_size`)",
};

const CLUSTER_LIMIT: Limit = Limit {
    bytes: MAX_CLUSTER_FILE_BYTES,
    what: "cluster.toml",
    why: "no real cluster comes near it; the limit keeps a wrong or runaway file out of memory",
};

fn limit_for(relative: &str) -> &'static Limit {
    if relative == CLUSTER_FILE {
        &CLUSTER_LIMIT
    } else {
        &APP_LIMIT
    }
}

/// Why a file of the desired state is not read.
enum Unreadable {
    /// It could not be looked at or read (missing, no permission): the system's reason.
    Io(std::io::Error),
    /// It was looked at and breaks a rule: what it is and the rule.
    Refused(String),
}

impl From<std::io::Error> for Unreadable {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err)
    }
}

/// A file that may be read: a regular file inside the folder, within its limit, as its
/// metadata said before anything opened it.
struct Readable {
    /// With every symlink resolved, so opening it follows none.
    path: PathBuf,
    metadata: std::fs::Metadata,
}

/// The files of the desired state (`cluster.toml` first, then `apps/*.json` by name), each
/// inspected from its metadata but none opened.
struct Walk {
    files: Vec<(String, Result<Readable, Unreadable>)>,
    /// Problems with `apps/` itself, which hide its files.
    problems: Vec<Problem>,
}

/// Finds and inspects the folder's files. Fails only when the folder itself is missing.
fn walk(dir: &Path) -> Result<Walk, Problem> {
    let root = match std::fs::canonicalize(dir) {
        Ok(root) if root.is_dir() => root,
        _ => {
            return Err(whole_file(
                &dir.display().to_string(),
                "the desired-state folder does not exist or is not a directory",
            ));
        }
    };
    let mut files = vec![(
        CLUSTER_FILE.to_owned(),
        inspect(&root, &root.join(CLUSTER_FILE), &CLUSTER_LIMIT),
    )];
    let mut problems = Vec::new();
    match apps_folder(&root) {
        Ok(None) => {}
        Ok(Some(apps)) => match list_app_files(&apps) {
            Ok(names) => {
                for name in names {
                    let inspected = inspect(&root, &apps.join(&name), &APP_LIMIT);
                    files.push((format!("{APPS_DIR}/{name}"), inspected));
                }
            }
            Err(err) => problems.push(whole_file(APPS_DIR, &format!("cannot list it: {err}"))),
        },
        Err(Unreadable::Io(err)) => {
            problems.push(whole_file(APPS_DIR, &format!("cannot list it: {err}")));
        }
        Err(Unreadable::Refused(message)) => problems.push(whole_file(APPS_DIR, &message)),
    }
    Ok(Walk { files, problems })
}

/// `apps/` with symlinks resolved, `None` when there is none (no apps).
fn apps_folder(root: &Path) -> Result<Option<PathBuf>, Unreadable> {
    let path = root.join(APPS_DIR);
    let (resolved, metadata) = match resolve_inside(root, &path) {
        Err(Unreadable::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        other => other?,
    };
    if metadata.is_dir() {
        return Ok(Some(resolved));
    }
    Err(Unreadable::Refused(format!(
        "{}, not a directory; app files go directly in `{APPS_DIR}/`",
        describe(&path, &resolved, &metadata)
    )))
}

/// Decides from metadata alone (lstat, readlink, stat: nothing that opens the file, so nothing
/// that can wait on a writer) whether the file at `path` may be read.
fn inspect(root: &Path, path: &Path, limit: &Limit) -> Result<Readable, Unreadable> {
    let (resolved, metadata) = resolve_inside(root, path)?;
    if !metadata.is_file() {
        return Err(Unreadable::Refused(format!(
            "{}; only regular files are read",
            describe(path, &resolved, &metadata)
        )));
    }
    check_size(metadata.len(), limit)?;
    Ok(Readable {
        path: resolved,
        metadata,
    })
}

/// Follows `path`'s symlinks, refusing one that leads outside the folder, and returns where it
/// leads with that file's metadata.
fn resolve_inside(root: &Path, path: &Path) -> Result<(PathBuf, std::fs::Metadata), Unreadable> {
    let own = std::fs::symlink_metadata(path)?;
    if !own.file_type().is_symlink() {
        return Ok((path.to_owned(), own));
    }
    let resolved = match std::fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let target = std::fs::read_link(path)?;
            return Err(Unreadable::Refused(format!(
                "is a symlink to {}, which does not exist",
                target.display()
            )));
        }
        Err(err) => return Err(err.into()),
    };
    if !resolved.starts_with(root) {
        return Err(Unreadable::Refused(format!(
            "is a symlink to {}, outside the desired-state folder",
            resolved.display()
        )));
    }
    let metadata = std::fs::metadata(&resolved)?;
    Ok((resolved, metadata))
}

/// "is a named pipe", or "is a symlink to X, which is a named pipe".
fn describe(path: &Path, resolved: &Path, metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    let what = if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    };
    if path == resolved {
        format!("is {what}")
    } else {
        format!("is a symlink to {}, which is {what}", resolved.display())
    }
}

fn check_size(bytes: u64, limit: &Limit) -> Result<(), Unreadable> {
    if bytes <= limit.bytes {
        return Ok(());
    }
    Err(Unreadable::Refused(format!(
        "is {}; {}",
        size(bytes),
        limit.rule()
    )))
}

impl Limit {
    /// "an app file may be at most 1 MiB: Marathon keeps …"
    fn rule(&self) -> String {
        format!(
            "{} may be at most {} MiB: {}",
            self.what,
            self.bytes / MIB,
            self.why
        )
    }
}

const MIB: u64 = 1024 * 1024;

/// `2.0 MiB (2097152 bytes)`: the rounded size to compare with the limit, the exact one to
/// compare with `ls -l`.
fn size(bytes: u64) -> String {
    format!(
        "{}.{} MiB ({bytes} bytes)",
        bytes / MIB,
        bytes % MIB * 10 / MIB
    )
}

/// Opens an inspected file and reads at most its limit. The opened handle is checked again, as
/// the file may have been replaced since it was inspected, and the read stops one byte past the
/// limit, so a file growing meanwhile cannot make it read more.
fn read_bounded(file: &Readable, limit: &Limit) -> Result<String, Unreadable> {
    // The path was a regular file an instant ago; a pipe put in its place in between would make
    // a plain open wait for a writer. Opened non-blocking, it returns at once and the check of
    // the handle below refuses it (reads of a regular file ignore the flag).
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&file.path)?;
    let metadata = opened.metadata()?;
    if !metadata.is_file() {
        return Err(Unreadable::Refused(format!(
            "{} now (it was replaced while being read); only regular files are read",
            describe(&file.path, &file.path, &metadata)
        )));
    }
    check_size(metadata.len(), limit)?;
    read_at_most(opened, limit)
}

fn read_at_most(reader: impl std::io::Read, limit: &Limit) -> Result<String, Unreadable> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader.take(limit.bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit.bytes {
        return Err(Unreadable::Refused(format!(
            "grew while being read; {}",
            limit.rule()
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Unreadable::Refused("is not UTF-8 text; it cannot be parsed".to_owned()))
}

/// `*.json` names in `apps/`, sorted. Listing a directory never opens its entries.
fn list_app_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn revision_of(sources: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (path, text) in sources {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(text.len().to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_file_swapped_for_a_pipe_after_its_inspection_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        std::fs::write(&path, "{}").unwrap();
        let inspected = Readable {
            metadata: std::fs::metadata(&path).unwrap(),
            path: path.clone(),
        };
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || sent.send(read_bounded(&inspected, &APP_LIMIT)));
        // Without the non-blocking open the reader would wait for a writer that never comes.
        let result = received
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the open of a pipe returned");
        match result {
            Err(Unreadable::Refused(message)) => {
                assert!(message.contains("replaced while being read"), "{message}")
            }
            Ok(text) => panic!("read {text:?} from a pipe"),
            Err(_) => panic!("the pipe was not refused as replaced"),
        }
    }

    #[test]
    fn a_read_stops_one_byte_past_the_limit_of_an_endless_file() {
        let endless = std::io::repeat(b' ');
        match read_at_most(endless, &APP_LIMIT) {
            Err(Unreadable::Refused(message)) => assert_eq!(
                message,
                "grew while being read; an app file may be at most 1 MiB: Marathon keeps an app \
                 definition in one ZooKeeper node, 1 MiB by default (`--zk_max_node_size`)"
            ),
            Err(Unreadable::Io(err)) => panic!("{err}"),
            Ok(text) => panic!("read {} bytes", text.len()),
        }
        let exact = std::io::repeat(b' ').take(MAX_APP_FILE_BYTES);
        assert!(matches!(read_at_most(exact, &APP_LIMIT), Ok(text) if text.len() == 1 << 20));
    }

    #[test]
    fn sizes_read_rounded_and_exact() {
        for (bytes, text) in [
            (2 * MIB, "2.0 MiB (2097152 bytes)"),
            (MIB + 1, "1.0 MiB (1048577 bytes)"),
            (5 * MIB + MIB / 2, "5.5 MiB (5767168 bytes)"),
            (12, "0.0 MiB (12 bytes)"),
        ] {
            assert_eq!(size(bytes), text);
        }
    }
}
