//! Loading the desired-state folder: reads `cluster.toml` and `apps/*.json` (the only file I/O
//! in this crate), parses them strictly, validates them and reports every problem at once with
//! file, line, column and field path.

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Reads, parses and validates the desired-state folder.
pub fn load_desired_state(dir: &Path) -> Result<DesiredState, LoadError> {
    let fail = |revision, problems| LoadError {
        dir: dir.to_owned(),
        revision,
        problems,
    };
    if !dir.is_dir() {
        return Err(fail(
            None,
            vec![whole_file(
                &dir.display().to_string(),
                "the desired-state folder does not exist or is not a directory",
            )],
        ));
    }
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    match std::fs::read_to_string(dir.join(CLUSTER_FILE)) {
        Ok(text) => sources.push((CLUSTER_FILE.to_owned(), text)),
        Err(err) => problems.push(whole_file(
            CLUSTER_FILE,
            &format!(
                "cannot read it ({}): every desired state needs at least `[cluster]` with a `name`",
                err.kind()
            ),
        )),
    }
    match list_app_files(&dir.join(APPS_DIR)) {
        Ok(names) => {
            for name in names {
                let relative = format!("{APPS_DIR}/{name}");
                match std::fs::read_to_string(dir.join(&relative)) {
                    Ok(text) => sources.push((relative, text)),
                    Err(err) => {
                        problems.push(whole_file(&relative, &format!("cannot read it: {err}")));
                    }
                }
            }
        }
        Err(err) => problems.push(whole_file(APPS_DIR, &format!("cannot list it: {err}"))),
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
/// loaded with its size, modification time and inode. Equal fingerprints mean a reload would
/// read the same bytes (editors that replace a file change its inode), so a cycle can skip it.
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

pub fn fingerprint(dir: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let mut entries = Vec::new();
    let mut add = |relative: String| -> Option<()> {
        let metadata = std::fs::metadata(dir.join(&relative)).ok()?;
        entries.push((
            relative,
            metadata.len(),
            metadata.modified().ok(),
            metadata.ino(),
        ));
        Some(())
    };
    add(CLUSTER_FILE.to_owned())?;
    for name in list_app_files(&dir.join(APPS_DIR)).ok()? {
        add(format!("{APPS_DIR}/{name}"))?;
    }
    Some(Fingerprint(entries))
}

/// `*.json` file names in `apps/`, sorted; a missing folder means no apps.
fn list_app_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut names = Vec::new();
    for entry in entries {
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
