//! The daemon configuration: `/etc/converged/converged.toml` (or `--config`), every key
//! overridable by `CONVERGED__<SECTION>__<KEY>`. Reads files and the environment once, at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use converged_aws::{BucketShape, RateLimits};
use serde::{Deserialize, Deserializer};

use crate::error::DaemonError;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/converged/converged.toml";
const ENV_PREFIX: &str = "CONVERGED";
const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(default = "default_desired_state")]
    pub desired_state: PathBuf,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_resync_interval", deserialize_with = "duration")]
    pub resync_interval: Duration,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub aws: AwsConfig,
    #[serde(default)]
    pub ssh: SshConfig,
    #[serde(default)]
    pub marathon: MarathonConfig,
    #[serde(default)]
    pub mesos: MesosConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// POST endpoints are refused while this is unset.
    #[serde(default, deserialize_with = "optional_path")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `converged=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Overrides the AWS endpoint (moto in tests and the sandbox); empty means real AWS.
    #[serde(default)]
    pub endpoint_url: String,
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
}

/// The token buckets every AWS request draws from: a burst (requests at once) and a refill
/// rate per bucket. Flat keys, so one environment variable overrides one number.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    pub ec2_describe_burst: f64,
    pub ec2_describe_per_second: f64,
    pub ec2_mutate_burst: f64,
    pub ec2_mutate_per_second: f64,
    pub ec2_run_instances_burst: f64,
    pub ec2_run_instances_per_second: f64,
    pub route53_burst: f64,
    pub route53_per_second: f64,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        let limits = RateLimits::default();
        Self {
            ec2_describe_burst: limits.ec2_describe.burst,
            ec2_describe_per_second: limits.ec2_describe.per_second,
            ec2_mutate_burst: limits.ec2_mutate.burst,
            ec2_mutate_per_second: limits.ec2_mutate.per_second,
            ec2_run_instances_burst: limits.ec2_run_instances.burst,
            ec2_run_instances_per_second: limits.ec2_run_instances.per_second,
            route53_burst: limits.route53.burst,
            route53_per_second: limits.route53.per_second,
        }
    }
}

impl RateLimitsConfig {
    /// The bucket shapes, or the first key whose value no bucket can work with: a burst below
    /// one request would never let a request through, and a rate must be above zero.
    pub fn limits(&self) -> Result<RateLimits, String> {
        let shape = |name: &str, burst: f64, per_second: f64| {
            if !(burst >= 1.0 && burst.is_finite()) {
                return Err(format!(
                    "aws.rate_limits.{name}_burst must be a number of requests of at least 1, not {burst}"
                ));
            }
            if !(per_second > 0.0 && per_second.is_finite()) {
                return Err(format!(
                    "aws.rate_limits.{name}_per_second must be a rate above 0, not {per_second}"
                ));
            }
            Ok(BucketShape::new(burst, per_second))
        };
        Ok(RateLimits {
            ec2_describe: shape(
                "ec2_describe",
                self.ec2_describe_burst,
                self.ec2_describe_per_second,
            )?,
            ec2_mutate: shape(
                "ec2_mutate",
                self.ec2_mutate_burst,
                self.ec2_mutate_per_second,
            )?,
            ec2_run_instances: shape(
                "ec2_run_instances",
                self.ec2_run_instances_burst,
                self.ec2_run_instances_per_second,
            )?,
            route53: shape("route53", self.route53_burst, self.route53_per_second)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    #[serde(default = "default_ssh_user")]
    pub user: String,
    #[serde(default = "default_ssh_key_file")]
    pub key_file: PathBuf,
    #[serde(default = "default_known_hosts")]
    pub known_hosts: PathBuf,
    /// Node name → `host:port`, used instead of the instance's address.
    #[serde(default)]
    pub address_overrides: BTreeMap<String, String>,
    /// When set, no SSH or HTTP connection is made to a node address outside these CIDRs.
    #[serde(default)]
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Which address of a node's instance to use: `private` (inside the VPC) or `public`.
    #[serde(default)]
    pub address: AddressKind,
    /// How services run on the nodes: `docker` (production) or `exec` (supervised processes,
    /// for hosts without docker: the sandbox and the tests).
    #[serde(default)]
    pub runtime: RuntimeChoice,
    /// Where each service keeps its files on a node (exec runtime: pid, spec hash, log).
    #[serde(default = "default_service_root")]
    pub service_root: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    #[default]
    Private,
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    #[default]
    Docker,
    Exec,
}

fn default_service_root() -> String {
    "/var/lib/converged-services".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarathonConfig {
    /// Comma-separated base URLs; empty means the nodes running marathon.
    #[serde(default)]
    pub url: String,
    /// A file holding `user:password`.
    #[serde(default, deserialize_with = "optional_path")]
    pub credentials_file: Option<PathBuf>,
    /// A deployment running longer than this is reported failed (or rolled back by policy).
    #[serde(default = "default_deployment_deadline", deserialize_with = "duration")]
    pub deployment_deadline: Duration,
}

impl Default for MarathonConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            credentials_file: None,
            deployment_deadline: default_deployment_deadline(),
        }
    }
}

impl MarathonConfig {
    pub fn urls(&self) -> Vec<String> {
        split_urls(&self.url)
    }
}

fn default_deployment_deadline() -> Duration {
    Duration::from_secs(600)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MesosConfig {
    /// Comma-separated master URLs; empty means the nodes running mesos-master.
    #[serde(default)]
    pub url: String,
    /// How long an agent may be missing or inactive before its service is restarted.
    #[serde(default = "default_agent_grace", deserialize_with = "duration")]
    pub agent_grace: Duration,
}

impl Default for MesosConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            agent_grace: default_agent_grace(),
        }
    }
}

impl MesosConfig {
    pub fn urls(&self) -> Vec<String> {
        split_urls(&self.url)
    }
}

fn default_agent_grace() -> Duration {
    Duration::from_secs(60)
}

fn split_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            token_file: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            user: default_ssh_user(),
            key_file: default_ssh_key_file(),
            known_hosts: default_known_hosts(),
            address_overrides: BTreeMap::new(),
            allowed_networks: Vec::new(),
            address: AddressKind::default(),
            runtime: RuntimeChoice::default(),
            service_root: default_service_root(),
        }
    }
}

fn default_desired_state() -> PathBuf {
    "/etc/converged/desired-state".into()
}

fn default_state_dir() -> PathBuf {
    "/var/lib/converged".into()
}

fn default_resync_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9797))
}

fn default_log_level() -> String {
    "info".into()
}

fn default_ssh_user() -> String {
    "admin".into()
}

fn default_ssh_key_file() -> PathBuf {
    "/etc/converged/ssh/id_ed25519".into()
}

fn default_known_hosts() -> PathBuf {
    "/var/lib/converged/known_hosts".into()
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    let parsed = humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration such as `30s` or `2m`: {err}"
        ))
    })?;
    if parsed.is_zero() {
        return Err(serde::de::Error::custom(
            "the interval must be longer than zero",
        ));
    }
    Ok(parsed)
}

fn optional_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

impl DaemonConfig {
    /// Reads the file (required when given explicitly, optional at the default path) and the
    /// `CONVERGED__*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Self, DaemonError> {
        Self::load_with_env(path, None)
    }

    /// As `load`, with the environment given as a map instead of read from the process.
    /// An error names the environment variable when one set the value at fault, else the file.
    pub fn load_with_env(
        path: Option<&Path>,
        env: Option<config::Map<String, String>>,
    ) -> Result<Self, DaemonError> {
        let (file, required) = match path {
            Some(path) => (path.to_owned(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        if required && !file.is_file() {
            return Err(DaemonError::Config {
                path: file.clone(),
                message: "the file does not exist".into(),
            });
        }
        let origins = Origins::new(file.clone(), env.as_ref());
        let built = config::Config::builder()
            .add_source(
                config::File::from(file.clone())
                    .format(config::FileFormat::Toml)
                    .required(required),
            )
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator(ENV_SEPARATOR)
                    .separator(ENV_SEPARATOR)
                    .list_separator(",")
                    .with_list_parse_key("ssh.allowed_networks")
                    .try_parsing(true)
                    .source(env),
            )
            .build()
            .and_then(config::Config::try_deserialize::<Self>);
        let loaded = built.map_err(|err| origins.error(failed_key(&err), err.to_string()))?;
        if let Err(message) = loaded.aws.rate_limits.limits() {
            return Err(origins.error(None, message));
        }
        check_log_level(&loaded.log.level)
            .map_err(|message| origins.error(Some(LOG_LEVEL_KEY), message))?;
        Ok(loaded)
    }
}

const LOG_LEVEL_KEY: &str = "log.level";
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A log level (`debug`) or a tracing filter of comma-separated directives, each a level or
/// `target=level` (`converged=debug,info`). A bare word that is no level would be taken by
/// tracing as a target name and silence every other line, so it is refused.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    let is_level = |word: &str| LEVELS.contains(&word.trim().to_ascii_lowercase().as_str());
    if filter.trim().is_empty() {
        return Err(format!(
            "log.level is empty: give one of {}, or target=level such as converged=debug",
            LEVELS.join(", ")
        ));
    }
    for directive in filter.split(',').filter(|d| !d.trim().is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !is_level(level) {
            return Err(format!(
                "log.level `{filter}` is not a log level: `{}` should be one of {}, or target=level such as converged=debug",
                directive.trim(),
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|err| format!("log.level `{filter}` is not a tracing filter: {err}"))
}

/// The dotted key a configuration error is about, when it says.
fn failed_key(err: &config::ConfigError) -> Option<&str> {
    match err {
        config::ConfigError::Type { key, .. } | config::ConfigError::At { key, .. } => {
            key.as_deref()
        }
        config::ConfigError::NotFound(key) => Some(key),
        _ => None,
    }
}

/// Which `CONVERGED__*` variable set which dotted key, so an error names the variable rather
/// than the file when the value at fault came from the environment.
struct Origins {
    file: PathBuf,
    /// `http.listen` → `CONVERGED__HTTP__LISTEN`.
    variables: BTreeMap<String, String>,
}

impl Origins {
    fn new(file: PathBuf, env: Option<&config::Map<String, String>>) -> Self {
        let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
        let names: Vec<String> = match env {
            Some(env) => env.keys().cloned().collect(),
            None => std::env::vars_os()
                .filter_map(|(name, _)| name.into_string().ok())
                .collect(),
        };
        let variables = names
            .into_iter()
            .filter_map(|name| {
                let key = name
                    .get(prefix.len()..)
                    .filter(|_| name[..prefix.len()].eq_ignore_ascii_case(&prefix))?
                    .to_ascii_lowercase()
                    .replace(ENV_SEPARATOR, ".");
                Some((key, name))
            })
            .collect();
        Self { file, variables }
    }

    /// The variable behind `key`, or behind the unknown field a message about `key` names
    /// (`unknown field `typo`` under `http` is `http.typo`), or behind a key the message
    /// spells out (the rate limit checks name theirs).
    fn variable(&self, key: Option<&str>, message: &str) -> Option<&str> {
        let key = key.unwrap_or_default();
        let unknown = message
            .split_once("unknown field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(field, _)| match key {
                "" => field.to_owned(),
                _ => format!("{key}.{field}"),
            });
        self.variables
            .iter()
            .find(|(set, _)| {
                let under = |parent: &str| {
                    set.strip_prefix(parent)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
                };
                (!key.is_empty() && set.as_str() == key)
                    || unknown.as_deref().is_some_and(under)
                    || mentions_key(message, set)
            })
            .map(|(_, variable)| variable.as_str())
    }

    fn error(&self, key: Option<&str>, message: String) -> DaemonError {
        match self.variable(key, &message) {
            Some(variable) => DaemonError::ConfigVariable {
                variable: variable.to_owned(),
                message,
            },
            None => DaemonError::Config {
                path: self.file.clone(),
                message,
            },
        }
    }
}

/// Whether `message` spells out the dotted `key` as a whole (not as part of a longer key). A
/// key of one segment is not looked for: messages list the expected field names.
fn mentions_key(message: &str, key: &str) -> bool {
    if !key.contains('.') {
        return false;
    }
    let part_of_key = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    message.match_indices(key).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + key.len()..].chars().next();
        !before.is_some_and(part_of_key) && !after.is_some_and(|c| part_of_key(c) && c != '.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn defaults_apply_when_the_default_file_is_absent() {
        let config = DaemonConfig::load_with_env(None, env(&[])).unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:9797");
        assert_eq!(config.resync_interval, Duration::from_secs(30));
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/converged"));
        assert_eq!(config.http.token_file, None);
        assert_eq!(config.ssh.user, "admin");
    }

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/converged.toml");
        let config = DaemonConfig::load_with_env(Some(&example), env(&[])).unwrap();
        let mut defaults = DaemonConfig::load_with_env(None, env(&[])).unwrap();
        defaults.http.token_file = Some("/etc/converged/token".into());
        assert_eq!(config, defaults);
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = write("resync_interval = \"10s\"\n[http]\nlisten = \"127.0.0.1:1\"\n");
        let config = DaemonConfig::load_with_env(
            Some(file.path()),
            env(&[
                ("CONVERGED__HTTP__LISTEN", "127.0.0.1:9999"),
                ("CONVERGED__DESIRED_STATE", "/srv/desired"),
                (
                    "CONVERGED__SSH__ALLOWED_NETWORKS",
                    "127.0.0.0/8,10.0.0.0/16",
                ),
                (
                    "CONVERGED__SSH__ADDRESS_OVERRIDES__STAGING",
                    "127.0.0.22:22",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(config.resync_interval, Duration::from_secs(10));
        assert_eq!(config.desired_state, PathBuf::from("/srv/desired"));
        assert_eq!(config.ssh.allowed_networks.len(), 2);
        assert_eq!(config.ssh.address_overrides["staging"], "127.0.0.22:22");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let cases = [
            ("listen = \"127.0.0.1:1\"\n", "listen"),
            ("[http]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
            ("resync_interval = \"soon\"\n", "soon"),
            ("[log]\nformat = \"xml\"\n", "xml"),
        ];
        for (text, needle) in cases {
            let file = write(text);
            let err = DaemonConfig::load_with_env(Some(file.path()), env(&[])).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
        let err =
            DaemonConfig::load_with_env(None, env(&[("CONVERGED__HTTP__TYPO", "x")])).unwrap_err();
        assert!(err.to_string().contains("typo"), "{err}");
        let missing = DaemonConfig::load_with_env(Some(Path::new("/nonexistent.toml")), env(&[]));
        assert!(missing.unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn rate_limits_are_read_and_unusable_ones_rejected_by_key() {
        let file = write("[aws.rate_limits]\nec2_describe_burst = 80\nroute53_per_second = 2.5\n");
        let config = DaemonConfig::load_with_env(
            Some(file.path()),
            env(&[(
                "CONVERGED__AWS__RATE_LIMITS__EC2_RUN_INSTANCES_PER_SECOND",
                "0.5",
            )]),
        )
        .unwrap();
        let limits = config.aws.rate_limits.limits().unwrap();
        assert_eq!(limits.ec2_describe, BucketShape::new(80.0, 10.0));
        assert_eq!(limits.route53, BucketShape::new(25.0, 2.5));
        assert_eq!(limits.ec2_run_instances, BucketShape::new(2.5, 0.5));
        assert_eq!(limits.ec2_mutate, RateLimits::default().ec2_mutate);

        let cases = [
            (
                "ec2_describe_per_second = 0",
                "aws.rate_limits.ec2_describe_per_second",
            ),
            (
                "ec2_mutate_per_second = -1",
                "aws.rate_limits.ec2_mutate_per_second",
            ),
            ("route53_burst = 0", "aws.rate_limits.route53_burst"),
            (
                "ec2_run_instances_burst = 0.5",
                "aws.rate_limits.ec2_run_instances_burst",
            ),
        ];
        for (line, key) in cases {
            let file = write(&format!("[aws.rate_limits]\n{line}\n"));
            let err = DaemonConfig::load_with_env(Some(file.path()), env(&[])).unwrap_err();
            assert!(err.to_string().contains(key), "{line}: {err}");
        }
        let err = DaemonConfig::load_with_env(
            None,
            env(&[("CONVERGED__AWS__RATE_LIMITS__ROUTE53_PER_SECOND", "0")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("aws.rate_limits.route53_per_second"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_environment_variable_that_set_the_value() {
        let file = write("resync_interval = \"10s\"\n[http]\nlisten = \"127.0.0.1:1\"\n");
        let file_name = file.path().display().to_string();
        let cases = [
            ("CONVERGED__HTTP__LISTEN", "not-an-address"),
            ("CONVERGED__RESYNC_INTERVAL", "soon"),
            ("CONVERGED__HTTP__TYPO", "x"),
            ("CONVERGED__TYPO", "x"),
            ("CONVERGED__LOG__FORMAT", "xml"),
            ("CONVERGED__LOG__LEVEL", "verbose"),
            ("CONVERGED__SSH__ALLOWED_NETWORKS", "10.0.0.0/99"),
            ("CONVERGED__AWS__RATE_LIMITS__ROUTE53_PER_SECOND", "0"),
        ];
        for (variable, value) in cases {
            let err = DaemonConfig::load_with_env(
                Some(file.path()),
                env(&[(variable, value), ("CONVERGED__STATE_DIR", "/srv/state")]),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(variable) && !err.contains(&file_name),
                "{variable}: {err}"
            );
        }
        let in_file = write("[log]\nlevel = \"verbose\"\n");
        let err = DaemonConfig::load_with_env(
            Some(in_file.path()),
            env(&[("CONVERGED__HTTP__LISTEN", "127.0.0.1:2")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&in_file.path().display().to_string()) && !err.contains("CONVERGED__"),
            "{err}"
        );
    }

    #[test]
    fn a_log_level_that_is_no_level_is_an_error_not_a_fallback() {
        for good in [
            "info",
            "DEBUG",
            "converged=debug,info",
            "warn,converged_mesos=trace",
            "info,",
        ] {
            assert_eq!(check_log_level(good), Ok(()), "{good}");
        }
        for bad in ["verbose", "", " ", "debgu", "converged=loud", "converged"] {
            let err = check_log_level(bad).unwrap_err();
            assert!(
                err.contains("log.level") && err.contains("debug"),
                "{bad}: {err}"
            );
        }
        let file = write("[log]\nlevel = \"inf\"\n");
        let err = DaemonConfig::load_with_env(Some(file.path()), env(&[])).unwrap_err();
        assert!(err.to_string().contains("log.level `inf`"), "{err}");
    }
}
