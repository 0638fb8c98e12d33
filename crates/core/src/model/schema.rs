//! The shapes of the Marathon app fields the typed model keeps as raw JSON (`fetch`,
//! `readinessChecks`, `networks`, `check`, …), written after Marathon's app schema, and the
//! check of an app file against them: unknown keys, missing required keys, wrong types and
//! out-of-range numbers, each with its JSON path. Pure, no I/O.

use serde_json::Value;

use crate::locate::FieldPath;
use crate::suggest::{closest, not_allowed, unknown_name};

/// What a JSON value must look like.
#[derive(Debug)]
pub enum Shape {
    Bool,
    Text,
    /// A string, one of these.
    OneOf(&'static [&'static str]),
    /// A whole number within the bounds (inclusive).
    Integer(i64, i64),
    /// A number within the bounds (inclusive).
    Number(f64, f64),
    /// An object with exactly these keys allowed.
    Object(&'static [Field]),
    /// An object with any keys, each value of one shape.
    Map(&'static Shape),
    List(&'static Shape),
    /// The first shape, or else the second.
    Either(&'static Shape, &'static Shape),
}

/// One key of an [`Shape::Object`].
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
}

const fn optional(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        shape,
        required: false,
    }
}

const fn required(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        shape,
        required: true,
    }
}

const PORT: Shape = Shape::Integer(0, 65_535);
const COUNT: Shape = Shape::Integer(0, i64::MAX);
/// An interval or timeout: zero would mean checking without pause or never waiting.
const PERIOD: Shape = Shape::Integer(1, i64::MAX);
const AMOUNT: Shape = Shape::Number(0.0, f64::MAX);
const LABELS: Shape = Shape::Map(&Shape::Text);
/// A number, or `"unlimited"` for a task allowed whatever the agent has spare.
const RESOURCE_LIMIT: Shape = Shape::Either(&AMOUNT, &Shape::OneOf(&["unlimited"]));

static ARTIFACT: Shape = Shape::Object(&[
    required("uri", Shape::Text),
    optional("executable", Shape::Bool),
    optional("extract", Shape::Bool),
    optional("cache", Shape::Bool),
    optional("destPath", Shape::Text),
]);

static READINESS_CHECK: Shape = Shape::Object(&[
    optional("name", Shape::Text),
    optional("protocol", Shape::OneOf(&["HTTP", "HTTPS"])),
    optional("path", Shape::Text),
    optional("portName", Shape::Text),
    optional("intervalSeconds", PERIOD),
    optional("timeoutSeconds", PERIOD),
    optional(
        "httpStatusCodesForReady",
        Shape::List(&Shape::Integer(100, 999)),
    ),
    optional("preserveLastResponse", Shape::Bool),
]);

static NETWORK: Shape = Shape::Object(&[
    optional("name", Shape::Text),
    optional(
        "mode",
        Shape::OneOf(&["container", "container/bridge", "host"]),
    ),
    optional("labels", LABELS),
]);

static RESIDENCY: Shape = Shape::Object(&[
    optional("relaunchEscalationTimeoutSeconds", COUNT),
    optional(
        "taskLostBehavior",
        Shape::OneOf(&["WAIT_FOREVER", "RELAUNCH_AFTER_TIMEOUT"]),
    ),
]);

static SECRETS: Shape = Shape::Map(&Shape::Object(&[required("source", Shape::Text)]));

static IP_ADDRESS: Shape = Shape::Object(&[
    optional(
        "discovery",
        Shape::Object(&[optional(
            "ports",
            Shape::List(&Shape::Object(&[
                optional("number", PORT),
                optional("name", Shape::Text),
                optional("protocol", Shape::OneOf(&["tcp", "udp"])),
                optional("labels", LABELS),
            ])),
        )]),
    ),
    optional("groups", Shape::List(&Shape::Text)),
    optional("labels", LABELS),
    optional("networkName", Shape::Text),
]);

static UNREACHABLE_STRATEGY: Shape = Shape::Either(
    &Shape::Object(&[
        optional("inactiveAfterSeconds", COUNT),
        optional("expungeAfterSeconds", AMOUNT),
    ]),
    &Shape::OneOf(&["disabled"]),
);

static EXECUTOR_RESOURCES: Shape = Shape::Object(&[
    optional("cpus", AMOUNT),
    optional("mem", AMOUNT),
    optional("disk", AMOUNT),
]);

static RESOURCE_LIMITS: Shape = Shape::Object(&[
    optional("cpus", RESOURCE_LIMIT),
    optional("mem", RESOURCE_LIMIT),
]);

static CHECK: Shape = Shape::Object(&[
    optional(
        "http",
        Shape::Object(&[
            optional("portIndex", PORT),
            optional("port", PORT),
            optional("path", Shape::Text),
            optional("scheme", Shape::OneOf(&["HTTP", "HTTPS"])),
        ]),
    ),
    optional(
        "tcp",
        Shape::Object(&[optional("portIndex", PORT), optional("port", PORT)]),
    ),
    optional(
        "exec",
        Shape::Object(&[required(
            "command",
            Shape::Object(&[
                optional("shell", Shape::Text),
                optional("argv", Shape::List(&Shape::Text)),
            ]),
        )]),
    ),
    optional("intervalSeconds", PERIOD),
    optional("timeoutSeconds", PERIOD),
    optional("delaySeconds", COUNT),
]);

static LINUX_INFO: Shape = Shape::Object(&[
    optional(
        "seccomp",
        Shape::Object(&[
            optional("profileName", Shape::Text),
            optional("unconfined", Shape::Bool),
        ]),
    ),
    optional(
        "ipcInfo",
        Shape::Object(&[
            required("mode", Shape::OneOf(&["PRIVATE", "SHARE_PARENT"])),
            optional("shmSize", COUNT),
        ]),
    ),
]);

static CREDENTIAL: Shape = Shape::Object(&[
    required("principal", Shape::Text),
    optional("secret", Shape::Text),
]);

static PULL_CONFIG: Shape = Shape::Object(&[required("secret", Shape::Text)]);

static PERSISTENT_VOLUME: Shape = Shape::Object(&[
    optional("type", Shape::OneOf(&["root", "path", "mount"])),
    required("size", COUNT),
    optional("maxSize", COUNT),
    optional("profileName", Shape::Text),
    optional("constraints", Shape::List(&Shape::List(&Shape::Text))),
]);

static EXTERNAL_VOLUME: Shape = Shape::Object(&[
    optional("size", COUNT),
    optional("name", Shape::Text),
    optional("provider", Shape::Text),
    optional("options", Shape::Map(&Shape::Text)),
]);

/// The fields of an app object kept as raw JSON by the typed model, by their key.
static APP_FIELDS: [(&str, &Shape); 10] = [
    ("fetch", &Shape::List(&ARTIFACT)),
    ("readinessChecks", &Shape::List(&READINESS_CHECK)),
    ("residency", &RESIDENCY),
    ("secrets", &SECRETS),
    ("ipAddress", &IP_ADDRESS),
    ("networks", &Shape::List(&NETWORK)),
    ("unreachableStrategy", &UNREACHABLE_STRATEGY),
    ("executorResources", &EXECUTOR_RESOURCES),
    ("resourceLimits", &RESOURCE_LIMITS),
    ("check", &CHECK),
];

/// Checks every part of an app definition that the typed model passes through as raw JSON.
/// Parts of the wrong type altogether (a `container` that is no object) are left to the typed
/// model, which reports them.
pub fn check_nested(app: &Value) -> Vec<(FieldPath, String)> {
    let mut found = Vec::new();
    let root = FieldPath::default();
    for (key, shape) in &APP_FIELDS {
        check_field(app, &root, key, shape, &mut found);
    }
    let container = root.clone().key("container");
    if let Some(value) = app.get("container") {
        check_field(value, &container, "linuxInfo", &LINUX_INFO, &mut found);
        let docker = container.clone().key("docker");
        if let Some(value) = value.get("docker") {
            check_field(value, &docker, "credential", &CREDENTIAL, &mut found);
            check_field(value, &docker, "pullConfig", &PULL_CONFIG, &mut found);
        }
        if let Some(Value::Array(volumes)) = value.get("volumes") {
            for (index, volume) in volumes.iter().enumerate() {
                let path = container.clone().key("volumes").index(index);
                check_field(volume, &path, "persistent", &PERSISTENT_VOLUME, &mut found);
                check_field(volume, &path, "external", &EXTERNAL_VOLUME, &mut found);
            }
        }
    }
    found
}

/// Checks `object[key]` when present (a null counts as absent, as for the typed model).
fn check_field(
    object: &Value,
    path: &FieldPath,
    key: &str,
    shape: &Shape,
    found: &mut Vec<(FieldPath, String)>,
) {
    if let Some(value) = object.get(key).filter(|value| !value.is_null()) {
        check(value, shape, &path.clone().key(key), found);
    }
}

fn check(value: &Value, shape: &Shape, path: &FieldPath, found: &mut Vec<(FieldPath, String)>) {
    if let Err(message) = fits(value, shape) {
        found.push((path.clone(), message));
        return;
    }
    match (shape, value) {
        (Shape::Object(fields), Value::Object(object)) => {
            let names: Vec<&str> = fields.iter().map(|field| field.name).collect();
            // A near miss of a required field is reported once, as the typo it is.
            let mut meant = Vec::new();
            for key in object.keys() {
                if !names.contains(&key.as_str()) {
                    meant.extend(closest(key, &names));
                    found.push((
                        path.clone().key(key.clone()),
                        unknown_name("field", key, &names),
                    ));
                }
            }
            for field in fields.iter() {
                match object.get(field.name).filter(|value| !value.is_null()) {
                    Some(value) => check(value, &field.shape, &path.clone().key(field.name), found),
                    None if field.required && !meant.contains(&field.name) => found.push((
                        path.clone(),
                        format!("the required field `{}` is missing", field.name),
                    )),
                    None => {}
                }
            }
        }
        (Shape::Map(shape), Value::Object(object)) => {
            for (key, value) in object {
                check(value, shape, &path.clone().key(key.clone()), found);
            }
        }
        (Shape::List(shape), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                check(item, shape, &path.clone().index(index), found);
            }
        }
        (Shape::Either(first, second), _) => {
            let chosen = if fits(value, first).is_ok() {
                first
            } else {
                second
            };
            check(value, chosen, path, found);
        }
        _ => {}
    }
}

/// Whether the value itself (not what it contains) has the shape; else why not.
fn fits(value: &Value, shape: &Shape) -> Result<(), String> {
    let wrong = || {
        Err(format!(
            "expected {}, got {}",
            wanted(shape),
            described(value)
        ))
    };
    match (shape, value) {
        (Shape::Bool, Value::Bool(_))
        | (Shape::Text, Value::String(_))
        | (Shape::Object(_) | Shape::Map(_), Value::Object(_))
        | (Shape::List(_), Value::Array(_)) => Ok(()),
        (Shape::OneOf(allowed), Value::String(text)) => {
            if allowed.contains(&text.as_str()) {
                Ok(())
            } else {
                Err(not_allowed(text, allowed))
            }
        }
        (Shape::Integer(min, max), Value::Number(number)) => match number.as_i64() {
            Some(whole) if (*min..=*max).contains(&whole) => Ok(()),
            _ => wrong(),
        },
        (Shape::Number(min, max), Value::Number(number)) => match number.as_f64() {
            Some(amount) if (*min..=*max).contains(&amount) => Ok(()),
            _ => wrong(),
        },
        (Shape::Either(first, second), _) => match fits(value, first) {
            Ok(()) => Ok(()),
            Err(_) if fits(value, second).is_ok() => Ok(()),
            Err(_) => wrong(),
        },
        _ => wrong(),
    }
}

/// "a whole number from 0 to 65535", "an object", …
fn wanted(shape: &Shape) -> String {
    match shape {
        Shape::Bool => "true or false".to_owned(),
        Shape::Text => "a string".to_owned(),
        Shape::OneOf(allowed) => format!(
            "one of {}",
            allowed
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Shape::Integer(min, i64::MAX) => format!("a whole number of at least {min}"),
        Shape::Integer(min, max) => format!("a whole number from {min} to {max}"),
        Shape::Number(min, max) if *max == f64::MAX => format!("a number of at least {min}"),
        Shape::Number(min, max) => format!("a number from {min} to {max}"),
        Shape::Object(_) | Shape::Map(_) => "an object".to_owned(),
        Shape::List(_) => "a list".to_owned(),
        Shape::Either(first, second) => format!("{} or {}", wanted(first), wanted(second)),
    }
}

/// A value as an error message quotes it: `70000`, `the string "x"`, `an object`.
fn described(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("the string {text:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(app: &str) -> Vec<(String, String)> {
        let value: Value = serde_json::from_str(app).unwrap();
        check_nested(&value)
            .into_iter()
            .map(|(path, message)| (path.pointer(), message))
            .collect()
    }

    #[test]
    fn well_formed_nested_fields_pass() {
        let app = r#"{"id": "/a",
            "fetch": [{"uri": "https://example.org/a.tgz", "extract": true, "destPath": "a"}],
            "readinessChecks": [{"name": "ready", "protocol": "HTTP", "path": "/", "portName": "http",
                "intervalSeconds": 30, "timeoutSeconds": 10, "httpStatusCodesForReady": [200]}],
            "networks": [{"mode": "container/bridge", "name": "n", "labels": {"a": "b"}}],
            "residency": {"relaunchEscalationTimeoutSeconds": 3600, "taskLostBehavior": "WAIT_FOREVER"},
            "secrets": {"db": {"source": "db-password"}},
            "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
            "resourceLimits": {"cpus": "unlimited", "mem": 512},
            "check": {"http": {"portIndex": 0, "path": "/", "scheme": "HTTP"}, "intervalSeconds": 60},
            "container": {"linuxInfo": {"ipcInfo": {"mode": "PRIVATE", "shmSize": 64}},
                "docker": {"image": "x", "pullConfig": {"secret": "s"}},
                "volumes": [{"containerPath": "d", "persistent": {"size": 10, "type": "root"}}]}}"#;
        assert_eq!(found(app), []);
        assert_eq!(found(r#"{"unreachableStrategy": "disabled"}"#), []);
        assert_eq!(found(r#"{"fetch": null, "check": null}"#), []);
    }

    #[test]
    fn every_nested_mistake_is_named_with_its_path() {
        let cases = [
            (
                r#"{"fetch": [{"uri": "u", "extrat": true}]}"#,
                "/fetch/0/extrat",
                "unknown field `extrat` (did you mean `extract`?)",
            ),
            (
                r#"{"fetch": [{"cache": true}]}"#,
                "/fetch/0",
                "the required field `uri` is missing",
            ),
            (
                r#"{"fetch": [{"uri": 5}]}"#,
                "/fetch/0/uri",
                "expected a string, got 5",
            ),
            (
                r#"{"readinessChecks": [{"protocol": "TCP"}]}"#,
                "/readinessChecks/0/protocol",
                "`TCP` is not allowed here (did you mean `HTTP`?); allowed: `HTTP`, `HTTPS`",
            ),
            (
                r#"{"readinessChecks": [{"intervalSeconds": 0}]}"#,
                "/readinessChecks/0/intervalSeconds",
                "expected a whole number of at least 1, got 0",
            ),
            (
                r#"{"readinessChecks": [{"httpStatusCodesForReady": [200, 1000]}]}"#,
                "/readinessChecks/0/httpStatusCodesForReady/1",
                "expected a whole number from 100 to 999, got 1000",
            ),
            (
                r#"{"networks": [{"mode": "host", "nmae": "x"}]}"#,
                "/networks/0/nmae",
                "unknown field `nmae` (did you mean `name`?)",
            ),
            (
                r#"{"networks": [{"mode": "bridge"}]}"#,
                "/networks/0/mode",
                "`bridge` is not allowed here; allowed: `container`, `container/bridge`, `host`",
            ),
            (
                r#"{"residency": {"taskLostBehaviour": "WAIT_FOREVER"}}"#,
                "/residency/taskLostBehaviour",
                "unknown field `taskLostBehaviour` (did you mean `taskLostBehavior`?)",
            ),
            (
                r#"{"secrets": {"db": {"sauce": "x"}}}"#,
                "/secrets/db/sauce",
                "unknown field `sauce` (did you mean `source`?)",
            ),
            (
                r#"{"ipAddress": {"discovery": {"ports": [{"number": 70000}]}}}"#,
                "/ipAddress/discovery/ports/0/number",
                "expected a whole number from 0 to 65535, got 70000",
            ),
            (
                r#"{"unreachableStrategy": "never"}"#,
                "/unreachableStrategy",
                "expected an object or one of `disabled`, got the string \"never\"",
            ),
            (
                r#"{"unreachableStrategy": {"expungeAfterSeconds": -1}}"#,
                "/unreachableStrategy/expungeAfterSeconds",
                "expected a number of at least 0, got -1",
            ),
            (
                r#"{"executorResources": {"cpu": 1}}"#,
                "/executorResources/cpu",
                "unknown field `cpu` (did you mean `cpus`?)",
            ),
            (
                r#"{"resourceLimits": {"mem": "lots"}}"#,
                "/resourceLimits/mem",
                "expected a number of at least 0 or one of `unlimited`, got the string \"lots\"",
            ),
            (
                r#"{"check": {"http": {"port": 65536}}}"#,
                "/check/http/port",
                "expected a whole number from 0 to 65535, got 65536",
            ),
            (
                r#"{"check": {"exec": {}}}"#,
                "/check/exec",
                "the required field `command` is missing",
            ),
            (
                r#"{"container": {"linuxInfo": {"ipcInfo": {"mode": "SHARED"}}}}"#,
                "/container/linuxInfo/ipcInfo/mode",
                "`SHARED` is not allowed here; allowed: `PRIVATE`, `SHARE_PARENT`",
            ),
            (
                r#"{"container": {"docker": {"credential": {"secret": "s"}}}}"#,
                "/container/docker/credential",
                "the required field `principal` is missing",
            ),
            (
                r#"{"container": {"docker": {"pullConfig": "s"}}}"#,
                "/container/docker/pullConfig",
                "expected an object, got the string \"s\"",
            ),
            (
                r#"{"container": {"volumes": [{}, {"persistent": {"size": -5}}]}}"#,
                "/container/volumes/1/persistent/size",
                "expected a whole number of at least 0, got -5",
            ),
            (
                r#"{"container": {"volumes": [{"external": {"size": 1, "driver": "x"}}]}}"#,
                "/container/volumes/0/external/driver",
                "unknown field `driver`; allowed here: `size`, `name`, `provider`, `options`",
            ),
        ];
        for (app, path, message) in cases {
            assert_eq!(found(app), [(path.to_owned(), message.to_owned())], "{app}");
        }
    }
}
