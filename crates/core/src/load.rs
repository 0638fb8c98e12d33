//! Loading the desired-state folder: reads `cluster.toml` and `apps/*.json` (the only file I/O
//! in this crate), parses them strictly, validates them and reports every problem at once with
//! file, line, column and field path. Only regular files inside the folder, within a size
//! limit, are ever opened: a pipe, socket or device dropped into the folder is reported, never
//! waited on.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::digest::FieldDigest;
use crate::locate::{
    DuplicateKey, FieldPath, Segment, json_duplicate_keys, line_column, locate_json, locate_toml,
    toml_entries,
};
use crate::model::app::{STATUS_FIELDS, known_fields};
use crate::model::schema::check_nested;
use crate::model::{AppFile, ClusterFile, DesiredState, MarathonApp};
use crate::resource::Kind;
use crate::suggest::{closest, not_allowed, unknown_name};
use crate::validate::{Finding, validate, validate_apps_alone};

pub use crate::model::{APPS_DIR, CLUSTER_FILE};

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
            Err(unreadable) => problems.push(unreadable.problem(&relative)),
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

/// The most problems listed for one file; a last line counts the rest.
pub const MAX_PROBLEMS_PER_FILE: usize = 50;

/// The most times one file is parsed again after a problem (each retry steps past one).
const MAX_RETRIES: usize = 200;

/// Parses and validates already-read sources: `cluster.toml` and `apps/*.json`, by relative
/// path. Separate from the folder walk so it can be tested on strings. A problem in one place
/// never hides the others: after a wrong value the file is parsed again with a stand-in for
/// it, and the semantic checks run on whatever could be parsed (except on the stand-ins).
pub fn parse_sources(
    sources: &[(String, String)],
    revision: String,
) -> Result<DesiredState, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut cluster = None;
    let mut apps = Vec::new();
    let mut replaced: Vec<(String, FieldPath)> = Vec::new();
    for (path, text) in sources {
        let text = without_bom(path, text, &mut problems);
        let mut stand_ins = Vec::new();
        if path == CLUSTER_FILE {
            cluster = parse_cluster(path, &text, &mut stand_ins, &mut problems);
        } else if let Some(app) = parse_app(path, &text, &mut stand_ins, &mut problems) {
            apps.push(AppFile {
                path: path.clone(),
                app,
            });
        }
        replaced.extend(stand_ins.into_iter().map(|field| (path.clone(), field)));
    }
    let findings = match &cluster {
        Some(cluster) => validate(cluster, &apps),
        None => validate_apps_alone(&apps),
    };
    for Finding {
        file,
        path,
        message,
    } in findings
    {
        if replaced
            .iter()
            .any(|(in_file, field)| *in_file == file && hides(field, &path))
        {
            continue;
        }
        let text = sources
            .iter()
            .find(|(name, _)| *name == file)
            .map_or("", |(_, text)| text.as_str());
        problems.push(located(&file, text, &path, message));
    }
    match cluster {
        Some(cluster) if problems.is_empty() => Ok(DesiredState {
            revision,
            cluster: cluster.cluster,
            network: cluster.network,
            nodes: cluster.nodes,
            dns: cluster.dns,
            services: cluster.services,
            kinds: cluster
                .kinds
                .into_iter()
                .filter_map(|(name, policy)| Some((Kind::parse(&name)?, policy)))
                .collect(),
            apps,
        }),
        _ => {
            // Files in the order they were read (cluster.toml first), each top to bottom.
            let order = |file: &str| sources.iter().position(|(name, _)| name == file);
            problems.sort_by_key(|p| (order(&p.file), p.line, p.column));
            Err(capped(problems))
        }
    }
}

/// Whether a finding at `path` is about a value that was replaced by a stand-in: the value
/// itself, anything inside it, or the list holding it (whose contents the stand-in changed).
/// Its real problem was reported already.
fn hides(replaced: &FieldPath, path: &FieldPath) -> bool {
    path.0.starts_with(&replaced.0)
        || matches!(replaced.0.split_last(), Some((Segment::Index(_), list)) if list == path.0.as_slice())
}

/// At most [`MAX_PROBLEMS_PER_FILE`] problems per file (already in file order), the rest
/// counted in one line so nobody takes the list for complete.
fn capped(problems: Vec<Problem>) -> Vec<Problem> {
    let mut kept: Vec<Problem> = Vec::new();
    let mut index = 0;
    while index < problems.len() {
        let file = problems[index].file.clone();
        let count = problems[index..]
            .iter()
            .take_while(|problem| problem.file == file)
            .count();
        kept.extend(
            problems[index..index + count.min(MAX_PROBLEMS_PER_FILE)]
                .iter()
                .cloned(),
        );
        if count > MAX_PROBLEMS_PER_FILE {
            kept.push(whole_file(
                &file,
                &format!(
                    "and {} more problem(s) in this file",
                    count - MAX_PROBLEMS_PER_FILE
                ),
            ));
        }
        index += count;
    }
    kept
}

/// The text with a leading byte order mark replaced by a space (one character, so every line
/// and column stays where it was), after reporting it.
fn without_bom<'a>(path: &str, text: &'a str, problems: &mut Vec<Problem>) -> Cow<'a, str> {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            problems.push(Problem {
                file: path.to_owned(),
                line: Some(1),
                column: Some(1),
                field: None,
                message: "starts with a UTF-8 byte order mark (BOM, bytes EF BB BF): save the file as UTF-8 without one".to_owned(),
            });
            Cow::Owned(format!(" {rest}"))
        }
        None => Cow::Borrowed(text),
    }
}

fn parse_cluster(
    path: &str,
    text: &str,
    stand_ins: &mut Vec<FieldPath>,
    problems: &mut Vec<Problem>,
) -> Option<ClusterFile> {
    let table = parse_toml(path, text, problems)?;
    let mut report = |field_path: &FieldPath, message: String| {
        problems.push(located(path, text, field_path, message));
    };
    let value = toml_to_json(
        toml::Value::Table(table),
        &mut FieldPath::default(),
        stand_ins,
        &mut report,
    );
    deserialize_reporting(value, stand_ins, &mut report, "a table")
}

/// Parses TOML, going on past repeated keys (each reported with its first line, then left
/// out) so that one does not hide the rest of the file. Any other syntax error ends the file.
fn parse_toml(path: &str, text: &str, problems: &mut Vec<Problem>) -> Option<toml::Table> {
    let mut text = Cow::Borrowed(text);
    for _ in 0..MAX_RETRIES {
        let err = match toml::from_str::<toml::Table>(&text) {
            Ok(table) => return Some(table),
            Err(err) => err,
        };
        let Some(span) = err.span() else {
            problems.push(whole_file(
                path,
                &format!("not valid TOML: {}", err.message()),
            ));
            return None;
        };
        let (line, column) = line_column(&text, span.start);
        if err.message() == "duplicate key"
            && let Some(duplicate) = duplicate_toml_key(&text, span)
        {
            problems.push(Problem {
                file: path.to_owned(),
                line: Some(line),
                column: Some(column),
                field: Some(duplicate.path.dotted()),
                message: duplicate.message,
            });
            text = Cow::Owned(blanked(&text, duplicate.left_out));
            continue;
        }
        problems.push(Problem {
            file: path.to_owned(),
            line: Some(line),
            column: Some(column),
            field: None,
            message: format!("not valid TOML: {}", err.message()),
        });
        return None;
    }
    problems.push(whole_file(
        path,
        "checking stopped here: too many repeated keys",
    ));
    None
}

struct TomlDuplicate {
    path: FieldPath,
    message: String,
    /// The bytes to leave out to parse on: the repeated line, or a repeated table's header and
    /// body.
    left_out: std::ops::Range<usize>,
}

/// Explains a repeated key the TOML parser found at `span`: its full path and the line where
/// it was first given.
fn duplicate_toml_key(text: &str, span: std::ops::Range<usize>) -> Option<TomlDuplicate> {
    let key = text.get(span.clone())?.trim_matches(['"', '\'']).to_owned();
    let entries = toml_entries(text);
    let at = entries
        .iter()
        .rposition(|entry| entry.offset <= span.start)?;
    let entry = &entries[at];
    let path = match entry.path.0.last() {
        Some(Segment::Key(last)) if *last == key => entry.path.clone(),
        // A key repeated inside an inline table, on the line of its table's key.
        _ => entry.path.clone().key(key.clone()),
    };
    let first_line = entries[..at]
        .iter()
        .find(|earlier| earlier.path == path)
        .map(|earlier| line_column(text, earlier.offset).0)
        .or_else(|| {
            let line_start = text[..span.start].rfind('\n').map_or(0, |index| index + 1);
            let before = &text[line_start..span.start];
            before.find(&key).map(|_| line_column(text, span.start).0)
        });
    let message = match first_line {
        Some(line) => format!("duplicate key `{key}` (first at line {line})"),
        None => format!("duplicate key `{key}`"),
    };
    let line_start = text[..entry.offset]
        .rfind('\n')
        .map_or(0, |index| index + 1);
    let end = if entry.header {
        entries[at + 1..]
            .iter()
            .find(|later| later.header)
            .map_or(text.len(), |later| {
                text[..later.offset]
                    .rfind('\n')
                    .map_or(0, |index| index + 1)
            })
    } else {
        text[entry.offset..]
            .find('\n')
            .map_or(text.len(), |index| entry.offset + index)
    };
    Some(TomlDuplicate {
        path,
        message,
        left_out: line_start..end,
    })
}

/// The text with every byte in `range` but line breaks turned into spaces, so lines and
/// columns elsewhere stay where they were.
fn blanked(text: &str, range: std::ops::Range<usize>) -> String {
    text.char_indices()
        .map(|(index, ch)| {
            if range.contains(&index) && ch != '\n' {
                " ".repeat(ch.len_utf8())
            } else {
                ch.to_string()
            }
        })
        .collect()
}

/// TOML to JSON for the typed model. JSON has no NaN, infinity or date-time: each is reported
/// and becomes a null stand-in, rather than a null the model would misreport as a type error.
fn toml_to_json(
    value: toml::Value,
    path: &mut FieldPath,
    stand_ins: &mut Vec<FieldPath>,
    report: &mut dyn FnMut(&FieldPath, String),
) -> Value {
    match value {
        toml::Value::String(text) => Value::String(text),
        toml::Value::Integer(number) => Value::from(number),
        toml::Value::Float(number) => match serde_json::Number::from_f64(number) {
            Some(number) => Value::Number(number),
            None => {
                let written = if number.is_nan() {
                    "nan".to_owned()
                } else if number > 0.0 {
                    "inf".to_owned()
                } else {
                    "-inf".to_owned()
                };
                let wanted = match path.0.last() {
                    Some(Segment::Key(key)) if key == "max_delete_fraction" => "a number in [0, 1]",
                    _ => "a finite number",
                };
                report(path, format!("must be {wanted}, got {written}"));
                stand_ins.push(path.clone());
                Value::Null
            }
        },
        toml::Value::Boolean(flag) => Value::Bool(flag),
        toml::Value::Datetime(datetime) => {
            report(
                path,
                format!(
                    "`{datetime}` is a date-time; no setting here takes one (quote it to make it a string)"
                ),
            );
            stand_ins.push(path.clone());
            Value::Null
        }
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    path.0.push(Segment::Index(index));
                    let converted = toml_to_json(item, path, stand_ins, report);
                    path.0.pop();
                    converted
                })
                .collect(),
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(key, item)| {
                    path.0.push(Segment::Key(key.clone()));
                    let converted = toml_to_json(item, path, stand_ins, report);
                    path.0.pop();
                    (key, converted)
                })
                .collect(),
        ),
    }
}

fn parse_app(
    path: &str,
    text: &str,
    stand_ins: &mut Vec<FieldPath>,
    problems: &mut Vec<Problem>,
) -> Option<MarathonApp> {
    if text.trim().is_empty() {
        problems.push(whole_file(
            path,
            "is empty; an app file holds one JSON object, the app definition",
        ));
        return None;
    }
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
        let (line, column) = line_column(text, text.len() - text.trim_start().len());
        problems.push(Problem {
            file: path.to_owned(),
            line: Some(line),
            column: Some(column),
            field: None,
            message: "an app file holds one JSON object, the app definition".to_owned(),
        });
        return None;
    }
    for DuplicateKey {
        path: field,
        first,
        repeated,
    } in json_duplicate_keys(text)
    {
        let (line, column) = line_column(text, repeated);
        let key = match field.0.last() {
            Some(Segment::Key(key)) => key.clone(),
            _ => String::new(),
        };
        problems.push(Problem {
            file: path.to_owned(),
            line: Some(line),
            column: Some(column),
            field: Some(field.pointer()),
            message: format!(
                "duplicate key `{key}` (first at line {}); JSON parsers disagree on which one counts",
                line_column(text, first).0
            ),
        });
    }
    let nested = check_nested(&value);
    let mut report = |field_path: &FieldPath, message: String| {
        problems.push(located(path, text, field_path, message));
    };
    let app = deserialize_reporting(value, stand_ins, &mut report, "an object");
    // A nested field of the wrong type altogether was reported by the typed model already.
    for (field, message) in nested {
        if !stand_ins.iter().any(|at| hides(at, &field)) {
            report(&field, message);
        }
    }
    app
}

/// Deserializes strictly, but keeps going past every problem so that one does not hide the
/// others: an unknown field is dropped (or moved to the field it nearly names), a missing or
/// wrong value is replaced by a stand-in of the type wanted. Each problem is reported once;
/// the stand-ins' paths are recorded so no later check reports on them.
fn deserialize_reporting<T: DeserializeOwned>(
    mut value: Value,
    stand_ins: &mut Vec<FieldPath>,
    report: &mut dyn FnMut(&FieldPath, String),
    object_word: &str,
) -> Option<T> {
    // The stand-ins tried at each path, so none is tried twice.
    let mut tried: Vec<(FieldPath, Vec<Value>)> = Vec::new();
    // The keys left out because no stand-in fitted them.
    let mut removed: Vec<FieldPath> = Vec::new();
    for _ in 0..MAX_RETRIES {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => return Some(parsed),
            Err(err) => err,
        };
        let mut path = FieldPath::from_serde(err.path());
        let message = err.inner().to_string();
        if let Some(field) = unknown_field_name(&message) {
            if let Some(Segment::Key(last)) = path.0.last()
                && *last == field
            {
                path.0.pop();
            }
            let suggestion = suggest_field(&field, &message);
            if !take_key(&mut value, &path, &field, suggestion) {
                report(&path, improve_message(&message, object_word));
                return None;
            }
            report(
                &path.key(field.clone()),
                describe_unknown_field(&field, &message),
            );
            continue;
        }
        // A required field left out after no stand-in fitted it: the object holding it gets
        // the stand-in instead, without a second report.
        let mut left_out = false;
        if let Some(field) = missing_field_name(&message) {
            let target = path.clone().key(field);
            left_out = removed.contains(&target);
            if !left_out {
                if !stand_ins.contains(&target) {
                    // Inside a stand-in every field is missing, and none of it was written.
                    if !stand_ins.iter().any(|at| path.0.starts_with(&at.0)) {
                        report(&path, improve_message(&message, object_word));
                    }
                    stand_ins.push(target.clone());
                }
                match value_at(&mut value, &path).and_then(Value::as_object_mut) {
                    Some(object) => {
                        object.insert(field.to_owned(), Value::Null);
                    }
                    None => return None,
                }
                continue;
            }
        }
        if !stand_ins.contains(&path) {
            if !left_out {
                report(&path, improve_message(&message, object_word));
            }
            stand_ins.push(path.clone());
        }
        let current = value_at(&mut value, &path)?;
        let tried = match tried.iter_mut().find(|(at, _)| *at == path) {
            Some((_, tried)) => tried,
            None => {
                tried.push((path.clone(), Vec::new()));
                &mut tried.last_mut()?.1
            }
        };
        tried.push(current.clone());
        match stand_in(&message, tried) {
            Some(stand_in) => *current = stand_in,
            // No shape fits (a custom check refuses them all): go on without the key, which
            // the stand-in list hides from later checks.
            None => {
                let (Some(Segment::Key(key)), parent) =
                    (path.0.last().cloned(), &path.0[..path.0.len() - 1])
                else {
                    return None;
                };
                let parent = FieldPath(parent.to_vec());
                if removed.contains(&path) || !take_key(&mut value, &parent, &key, None) {
                    return None;
                }
                removed.push(path);
            }
        }
    }
    report(
        &FieldPath::default(),
        "checking of this file stopped here: too many problems".to_owned(),
    );
    None
}

/// A value of the type a deserialization error asked for, to parse on with. When the error
/// names none (or its choice failed already), the next untried of a fixed sequence of shapes.
fn stand_in(message: &str, tried: &[Value]) -> Option<Value> {
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        let candidates = backticked(message).into_iter().skip(1).collect::<Vec<_>>();
        return closest(value, &candidates)
            .or(candidates.first().copied())
            .map(|variant| Value::String(variant.to_owned()))
            .filter(|variant| !tried.contains(variant));
    }
    let expected = message
        .rsplit_once(", expected ")
        .map_or("", |(_, expected)| expected);
    let wanted = if expected.starts_with(['u', 'i', 'f']) && expected.len() <= 4 {
        Some(Value::from(0))
    } else if expected.starts_with("a string") || expected.starts_with("a borrowed string") {
        Some(Value::String(String::new()))
    } else if expected.starts_with("a boolean") {
        Some(Value::Bool(false))
    } else if expected.starts_with("a sequence") {
        Some(Value::Array(Vec::new()))
    } else if expected.starts_with("struct ") || expected.contains("map") {
        Some(Value::Object(serde_json::Map::new()))
    } else {
        None
    };
    [
        wanted,
        Some(Value::Null),
        Some(Value::String(String::new())),
        Some(Value::Object(serde_json::Map::new())),
        Some(Value::Array(Vec::new())),
        Some(Value::from(0)),
        Some(Value::Bool(false)),
    ]
    .into_iter()
    .flatten()
    .find(|shape| !tried.contains(shape))
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_owned)
}

fn missing_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// The value at `path`, if the document has one there.
fn value_at<'a>(value: &'a mut Value, path: &FieldPath) -> Option<&'a mut Value> {
    let mut current = value;
    for segment in &path.0 {
        current = match (segment, current) {
            (Segment::Key(name), Value::Object(map)) => map.get_mut(name)?,
            (Segment::Index(index), Value::Array(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Removes an unknown key so parsing can go on. When it is a near miss of a field the object
/// lacks, its value moves to that field, so a typo in a required field does not also report
/// the field as missing.
fn take_key(value: &mut Value, parent: &FieldPath, key: &str, suggestion: Option<&str>) -> bool {
    let Some(map) = value_at(value, parent).and_then(Value::as_object_mut) else {
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
    unknown_name("field", field, &candidates)
}

fn improve_message(message: &str, object_word: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        let candidates = backticked(message).into_iter().skip(1).collect::<Vec<_>>();
        return not_allowed(value, &candidates);
    }
    if let Some(field) = missing_field_name(message) {
        return format!("the required field `{field}` is missing");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.rsplit_once(", expected ")
        {
            return format!(
                "expected {}, got {}",
                describe_expected(expected, object_word),
                describe_got(got, object_word)
            );
        }
    }
    if message.starts_with("data did not match any variant of untagged enum MaybeSecret") {
        return "expected a string or a secret reference such as {\"secret\": \"env:NAME\"}"
            .to_owned();
    }
    message.to_owned()
}

/// serde's name of a wanted type, in the operator's words.
fn describe_expected(expected: &str, object_word: &str) -> String {
    let whole = |max: u64| format!("a whole number from 0 to {max}");
    match expected {
        "u8" => whole(u8::MAX.into()),
        "u16" => whole(u16::MAX.into()),
        "u32" => whole(u32::MAX.into()),
        "u64" => whole(u64::MAX),
        "i8" | "i16" | "i32" | "i64" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => object_word.to_owned(),
        other if other.starts_with("struct ") => object_word.to_owned(),
        other => other.to_owned(),
    }
}

/// serde's description of a value it could not take, in the operator's words: `the string
/// "50"`, `5`, `a list`.
fn describe_got(got: &str, object_word: &str) -> String {
    let quoted = |text: &str| text.trim_matches('`').to_owned();
    if let Some(text) = got.strip_prefix("string ") {
        return format!("the string {text}");
    }
    for prefix in ["integer ", "floating point ", "boolean ", "character "] {
        if let Some(text) = got.strip_prefix(prefix) {
            return quoted(text);
        }
    }
    match got {
        "sequence" => "a list".to_owned(),
        "map" => object_word.to_owned(),
        other => other.to_owned(),
    }
}

fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
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
    /// It was read and is not UTF-8 text.
    NotUtf8(NotUtf8),
}

impl Unreadable {
    fn problem(self, file: &str) -> Problem {
        match self {
            Self::Io(err) => whole_file(file, &format!("cannot read it: {err}")),
            Self::Refused(message) => whole_file(file, &message),
            Self::NotUtf8(at) => at.problem(file),
        }
    }
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
        Err(unreadable) => problems.push(unreadable.problem(APPS_DIR)),
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
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        Unreadable::NotUtf8(NotUtf8::at(valid))
    })
}

/// Where a file stops being UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NotUtf8 {
    /// 0-based offset of the first byte that is not part of a UTF-8 character.
    byte: usize,
    line: u32,
    column: u32,
}

impl NotUtf8 {
    /// From the text before the offending byte (which is valid UTF-8).
    fn at(valid: &[u8]) -> Self {
        let text = std::str::from_utf8(valid).unwrap_or_default();
        let (line, column) = line_column(text, text.len());
        Self {
            byte: valid.len(),
            line,
            column,
        }
    }

    fn problem(self, file: &str) -> Problem {
        Problem {
            file: file.to_owned(),
            line: Some(self.line),
            column: Some(self.column),
            field: None,
            message: format!(
                "not valid UTF-8 at byte {} (line {}, column {}); save the file as UTF-8",
                self.byte, self.line, self.column
            ),
        }
    }
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
    let mut digest = FieldDigest::default();
    for (path, text) in sources {
        digest.field(path, text.as_bytes());
    }
    digest.short_hex(8)
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
            Err(other) => panic!("{}", other.problem("app.json")),
            Ok(text) => panic!("read {} bytes", text.len()),
        }
        let exact = std::io::repeat(b' ').take(MAX_APP_FILE_BYTES);
        assert!(matches!(read_at_most(exact, &APP_LIMIT), Ok(text) if text.len() == 1 << 20));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_named_with_their_offset_line_and_column() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"\xff",
                "1:1: not valid UTF-8 at byte 0 (line 1, column 1); save the file as UTF-8",
            ),
            (
                b"[cluster]\nname = \"caf\xe9\"\n",
                "2:12: not valid UTF-8 at byte 21 (line 2, column 12); save the file as UTF-8",
            ),
            // A character cut short, after a whole multi-byte one (column counts characters).
            (
                "\u{e9}\u{e9}"
                    .as_bytes()
                    .iter()
                    .chain(b"\xc3")
                    .copied()
                    .collect::<Vec<u8>>()
                    .leak(),
                "1:3: not valid UTF-8 at byte 4 (line 1, column 3); save the file as UTF-8",
            ),
            (
                b"a\nb\nc\x80",
                "3:2: not valid UTF-8 at byte 5 (line 3, column 2); save the file as UTF-8",
            ),
        ];
        for (bytes, expected) in cases {
            match read_at_most(bytes, &CLUSTER_LIMIT) {
                Err(unreadable) => assert_eq!(
                    unreadable.problem("f").to_string(),
                    format!("f:{expected}"),
                    "{bytes:?}"
                ),
                Ok(text) => panic!("{text:?} was read as text"),
            }
        }
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
