//! Secret references (`env:NAME`, `file:/path`) and the redacting `Secret` value. Resolution
//! reads the environment or a file, at use time only (and for `converged validate --secrets`,
//! which resolves every reference of a desired state where it runs).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::ReconcileError;
use crate::load::{CLUSTER_FILE, Problem};
use crate::locate::{FieldPath, locate_json, locate_toml};
use crate::model::{DesiredState, Role};

const REDACTED: &str = "<redacted>";

/// Where a secret lives. Never holds the secret itself, so it may be printed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:/absolute/path`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if valid {
                return Ok(Self::Env(name.to_owned()));
            }
            return Err(
                "not a valid environment variable reference: use env:NAME with letters, digits and underscores".into(),
            );
        }
        if let Some(path) = text.strip_prefix("file:") {
            if path.starts_with('/') {
                return Ok(Self::File(path.to_owned()));
            }
            return Err(
                "a file reference must name an absolute path, e.g. file:/etc/converged/secret"
                    .into(),
            );
        }
        // The text is not echoed: whatever sits where a reference belongs may be the secret.
        Err("not a secret reference: write env:NAME or file:/absolute/path".into())
    }

    /// Reads the secret now. File contents lose one trailing newline.
    pub fn resolve(&self) -> Result<Secret, ReconcileError> {
        match self {
            Self::Env(name) => {
                std::env::var(name)
                    .map(Secret)
                    .map_err(|_| ReconcileError::ResolveSecret {
                        reference: self.to_string(),
                        message: "the variable is not set in converged's environment".into(),
                    })
            }
            Self::File(path) => std::fs::read_to_string(path)
                .map(|text| {
                    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                    Secret(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned())
                })
                .map_err(|err| ReconcileError::ResolveSecret {
                    reference: self.to_string(),
                    message: err.to_string(),
                }),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A resolved secret. Debug, Display and Serialize all print `<redacted>`; the value is only
/// reachable through `expose`, which call sites use when building a request.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A configuration value that is either given inline or read from a secret reference:
/// `"value"` or `{ secret = "env:NAME" }` (TOML) / `{"secret": "file:/path"}` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum MaybeSecret {
    Plain(String),
    Secret { secret: SecretRef },
}

impl<'de> Deserialize<'de> for MaybeSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MaybeSecretVisitor)
    }
}

struct MaybeSecretVisitor;

impl<'de> serde::de::Visitor<'de> for MaybeSecretVisitor {
    type Value = MaybeSecret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a string, or a secret reference such as { "secret": "env:NAME" }"#)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<MaybeSecret, E> {
        Ok(MaybeSecret::Plain(value.to_owned()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<MaybeSecret, A::Error> {
        let mut secret = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "secret" {
                return Err(serde::de::Error::custom(format!(
                    "unknown field `{key}`: a secret reference has only `secret`"
                )));
            }
            secret = Some(map.next_value::<SecretRef>()?);
        }
        secret
            .map(|secret| MaybeSecret::Secret { secret })
            .ok_or_else(|| serde::de::Error::missing_field("secret"))
    }
}

impl MaybeSecret {
    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Secret { .. })
    }

    /// What plans and status may show: the plain value, or `<redacted>`.
    pub fn display_value(&self) -> &str {
        match self {
            Self::Plain(value) => value,
            Self::Secret { .. } => REDACTED,
        }
    }
}

/// One place a desired state refers to a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    /// Relative to the desired-state folder, e.g. `apps/gitlab.json`.
    pub file: String,
    /// `/env/API_TOKEN/secret` in an app file, `services.marathon.env.X.secret` in
    /// `cluster.toml`.
    pub field: FieldPath,
    pub reference: SecretRef,
}

impl SecretUse {
    fn is_json(&self) -> bool {
        self.file.ends_with(".json")
    }

    /// The field as the file's kind of path spells it.
    pub fn field_name(&self) -> String {
        if self.is_json() {
            self.field.pointer()
        } else {
            self.field.dotted()
        }
    }
}

/// Every secret reference of `state`: app env entries and service env entries.
pub fn secret_uses(state: &DesiredState) -> Vec<SecretUse> {
    let env_uses =
        |file: &str, base: FieldPath, env: &std::collections::BTreeMap<String, MaybeSecret>| {
            env.iter()
                .filter_map(|(key, value)| match value {
                    MaybeSecret::Secret { secret } => Some(SecretUse {
                        file: file.to_owned(),
                        field: base.clone().key("env").key(key.clone()).key("secret"),
                        reference: secret.clone(),
                    }),
                    MaybeSecret::Plain(_) => None,
                })
                .collect::<Vec<_>>()
        };
    let services = [
        Role::Zookeeper,
        Role::MesosMaster,
        Role::MesosAgent,
        Role::Marathon,
    ]
    .into_iter()
    .filter_map(|role| Some((role, state.services.for_role(role)?)))
    .flat_map(|(role, spec)| {
        env_uses(
            CLUSTER_FILE,
            FieldPath::default().key("services").key(role.as_str()),
            &spec.env,
        )
    });
    let apps = state
        .apps
        .iter()
        .flat_map(|file| env_uses(&file.path, FieldPath::default(), &file.app.env));
    services.chain(apps).collect()
}

/// What resolving every secret reference found: how many resolved, and a problem (file, line,
/// field, why) for each that did not. No value is ever part of it.
#[derive(Debug, Clone, Default)]
pub struct SecretCheck {
    pub resolved: usize,
    pub problems: Vec<Problem>,
}

/// Resolves every secret reference of `state` (loaded from `dir`) here and now, as the daemon
/// would: reads the environment and the referenced files.
pub fn check_secrets(dir: &Path, state: &DesiredState) -> SecretCheck {
    let mut check = SecretCheck::default();
    for use_ in secret_uses(state) {
        let Err(err) = use_.reference.resolve() else {
            check.resolved += 1;
            continue;
        };
        let text = std::fs::read_to_string(dir.join(&use_.file)).unwrap_or_default();
        let place = if use_.is_json() {
            locate_json(&text, &use_.field)
        } else {
            locate_toml(&text, &use_.field)
        };
        check.problems.push(Problem {
            file: use_.file.clone(),
            line: place.map(|(line, _)| line),
            column: place.map(|(_, column)| column),
            field: Some(use_.field_name()),
            message: err.to_string(),
        });
    }
    check
        .problems
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"<redacted>\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn references_parse_and_reject() {
        let cases = [
            (
                "env:MARATHON_PASSWORD",
                Ok(SecretRef::Env("MARATHON_PASSWORD".into())),
            ),
            (
                "file:/etc/converged/pw",
                Ok(SecretRef::File("/etc/converged/pw".into())),
            ),
            ("env:", Err(())),
            ("env:1ABC", Err(())),
            ("file:relative/path", Err(())),
            ("hunter2", Err(())),
        ];
        for (text, expected) in cases {
            assert_eq!(SecretRef::parse(text).map_err(|_| ()), expected, "{text}");
        }
    }

    #[test]
    fn file_secret_resolves_without_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("converged-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let reference = SecretRef::File(path.display().to_string());
        assert_eq!(reference.resolve().unwrap().expose(), "s3cret");
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = reference.resolve().unwrap_err();
        assert!(!missing.to_string().contains("s3cret"));
    }

    #[test]
    fn maybe_secret_reads_both_shapes() {
        let plain: MaybeSecret = serde_json::from_str("\"abc\"").unwrap();
        let secret: MaybeSecret = serde_json::from_str(r#"{"secret":"env:X"}"#).unwrap();
        assert_eq!(plain.display_value(), "abc");
        assert_eq!(secret.display_value(), REDACTED);
        assert!(secret.is_secret());
        assert!(serde_json::from_str::<MaybeSecret>(r#"{"secret":"oops"}"#).is_err());
    }

    #[test]
    fn every_unresolvable_reference_is_a_problem_at_its_line_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present");
        std::fs::write(&present, "value-9c2e\n").unwrap();
        let missing = dir.path().join("missing");
        std::fs::create_dir_all(dir.path().join("apps")).unwrap();
        std::fs::write(
            dir.path().join("cluster.toml"),
            "[cluster]\nname = \"c\"\n\n[services.marathon]\nimage = \"m\"\nenv.TOKEN = { secret = \"env:CONVERGED_TEST_NEVER_SET_41d\" }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("apps/a.json"),
            format!(
                "{{\n  \"id\": \"/a\",\n  \"cmd\": \"x\",\n  \"env\": {{\n    \"OK\": {{\"secret\": \"file:{}\"}},\n    \"GONE\": {{\"secret\": \"file:{}\"}}\n  }}\n}}\n",
                present.display(),
                missing.display()
            ),
        )
        .unwrap();
        let state = crate::load_desired_state(dir.path()).expect("valid");
        let check = check_secrets(dir.path(), &state);
        assert_eq!(check.resolved, 1);
        let found: Vec<String> = check.problems.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[1].starts_with("cluster.toml:6:")
                && found[1].contains("services.marathon.env.TOKEN.secret")
                && found[1].contains("env:CONVERGED_TEST_NEVER_SET_41d"),
            "{found:?}"
        );
        assert!(
            found[0].starts_with("apps/a.json:6:")
                && found[0].contains("/env/GONE/secret")
                && found[0].contains("No such file"),
            "{found:?}"
        );
        assert!(!found.concat().contains("value-9c2e"));
    }
}
