//! Secret references (`env:NAME`, `file:/path`) and the redacting `Secret` value. Resolution
//! reads the environment or a file, at use time only.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::ReconcileError;

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
                    message: err.kind().to_string(),
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
}
