//! The contract fixtures in `tests/contract/` against the upstream Marathon files they were
//! derived from, when those sit beside the checkout (`../shared`, or the directory named by
//! `CONVERGED_UPSTREAM_CONTRACTS`): every fixture must equal what its reduction rule (see the
//! fixtures' README) makes of its `source`. Without them the check passes with a note on
//! stderr, except under `CI=true`: CI always has `../shared`, so there it fails.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

/// One fixture file, by what it holds.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Fixture {
    /// A draft-04 schema: upstream's without `$schema` and `description`, keeping only the
    /// top-level properties listed in the fixture.
    Schema { source: String, schema: Value },
    /// A request body: upstream's text, after the listed fixes, parsed.
    Example {
        source: String,
        #[serde(default)]
        upstream_text_fixes: Vec<TextFix>,
        body: Value,
    },
    /// The sorted keys of the object at `pointer` in upstream's document.
    Keys {
        source: String,
        pointer: String,
        keys: Vec<String>,
    },
}

/// A replacement that turns an upstream example that is not strict JSON into one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextFix {
    from: String,
    to: String,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

/// The directory holding `marathon-api/`: `CONVERGED_UPSTREAM_CONTRACTS` when set, else
/// `../shared` beside the repository.
fn upstream_dir() -> PathBuf {
    match std::env::var_os("CONVERGED_UPSTREAM_CONTRACTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// `Some(dir)` when the upstream files are there. When they are not: `None` with a note, or a
/// panic under `CI=true`.
fn upstream_if_present() -> Option<PathBuf> {
    let dir = upstream_dir();
    if dir.join("marathon-api").is_dir() {
        return Some(dir);
    }
    let absent = format!(
        "{} has no marathon-api/: the contract fixtures are not compared with upstream",
        dir.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{absent}, and CI=true (CI always has ../shared)"
    );
    note(&absent);
    None
}

/// A line on stderr itself: libtest captures `eprintln!` of passing tests, and whether the
/// comparison was made must show in every run.
fn note(line: &str) {
    // Nothing to do when stderr is gone: the note is informational.
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(path: &Path, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Drops every `description` keyword, walking into subschemas only: the keys of `properties`,
/// `patternProperties` and `definitions` are names, so a property called `description` stays.
fn without_descriptions(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| *k != "description")
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("properties" | "patternProperties" | "definitions", Value::Object(m)) => {
                            Value::Object(
                                m.iter()
                                    .map(|(n, s)| (n.clone(), without_descriptions(s)))
                                    .collect(),
                            )
                        }
                        _ => without_descriptions(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_descriptions).collect()),
        other => other.clone(),
    }
}

/// What the schema fixture `ours` must be, from `upstream`: the reduction rule applied with the
/// top-level properties `ours` keeps. A property upstream lacks is reported, not dropped.
fn reduced_schema(upstream: &Value, ours: &Value) -> Result<Value, String> {
    let mut reduced = without_descriptions(upstream);
    let object = reduced.as_object_mut().ok_or("upstream is not an object")?;
    object.remove("$schema");
    let kept: Vec<&String> = ours["properties"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    let properties = object
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .ok_or("upstream has no properties")?;
    if let Some(missing) = kept.iter().find(|k| !properties.contains_key(k.as_str())) {
        return Err(format!("upstream has no property {missing}"));
    }
    properties.retain(|name, _| kept.contains(&name));
    Ok(reduced)
}

/// The problem with one fixture, if it disagrees with upstream.
fn disagreement(upstream: &Path, fixture: &Fixture) -> Option<String> {
    let (source, expected, ours) = match fixture {
        Fixture::Schema { source, schema } => {
            let path = upstream.join(source);
            let reduced = reduced_schema(&parse(&path, &read(&path)), schema);
            match reduced {
                Ok(reduced) => (source, reduced, schema.clone()),
                Err(problem) => return Some(format!("{source}: {problem}")),
            }
        }
        Fixture::Example {
            source,
            upstream_text_fixes,
            body,
        } => {
            let path = upstream.join(source);
            let mut text = read(&path);
            for fix in upstream_text_fixes {
                if !text.contains(&fix.from) {
                    return Some(format!("{source}: the fix of {:?} finds nothing", fix.from));
                }
                text = text.replace(&fix.from, &fix.to);
            }
            (source, parse(&path, &text), body.clone())
        }
        Fixture::Keys {
            source,
            pointer,
            keys,
        } => {
            let path = upstream.join(source);
            let document = parse(&path, &read(&path));
            let Some(Value::Object(object)) = document.pointer(pointer) else {
                return Some(format!("{source}: no object at {pointer:?}"));
            };
            let mut upstream_keys: Vec<&String> = object.keys().collect();
            upstream_keys.sort();
            (source, json!(upstream_keys), json!(keys))
        }
    };
    first_difference("", &ours, &expected).map(|at| format!("{source}: {at}"))
}

/// Where `ours` first differs from `upstream`, as a JSON pointer with both values.
fn first_difference(pointer: &str, ours: &Value, upstream: &Value) -> Option<String> {
    match (ours, upstream) {
        (Value::Object(a), Value::Object(b)) => {
            let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            names.into_iter().find_map(|name| {
                let at = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                match (a.get(name), b.get(name)) {
                    (Some(x), Some(y)) => first_difference(&at, x, y),
                    (x, y) => Some(describe(&at, x, y)),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{pointer}/{i}"), x, y)),
        _ => (ours != upstream).then(|| describe(pointer, Some(ours), Some(upstream))),
    }
}

fn describe(pointer: &str, ours: Option<&Value>, upstream: Option<&Value>) -> String {
    let show = |v: Option<&Value>| v.map_or("nothing".to_string(), Value::to_string);
    format!(
        "at {pointer:?} the fixture has {}, upstream {}",
        show(ours),
        show(upstream)
    )
}

#[test]
fn contract_fixtures_agree_with_upstream() {
    let Some(upstream) = upstream_if_present() else {
        return;
    };
    let mut checked = 0;
    let mut problems = Vec::new();
    let entries = std::fs::read_dir(fixtures_dir()).expect("tests/contract/ is readable");
    for entry in entries {
        let path = entry.expect("tests/contract/ is readable").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let fixture: Fixture = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(problem) = disagreement(&upstream, &fixture) {
            problems.push(format!("{}: {problem}", path.display()));
        }
        checked += 1;
    }
    assert!(checked > 0, "no fixtures in tests/contract/");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    note(&format!(
        "{checked} contract fixtures agree with {}",
        upstream.display()
    ));
}
