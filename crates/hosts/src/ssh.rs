//! SSH sessions (I/O): key authentication with russh, one pooled session per host reused
//! across commands, host keys pinned through `KnownHosts`, timeouts on connect and on every
//! command, exit status and stderr captured. Nothing is dialled outside `allowed_networks`.
//! A read-only pool (`converged plan`) pins no key and runs no command that changes a host.

use converged_core::Classified;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use converged_core::api::{ApiOutcome, ApiRecorder};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::sync::{Mutex, OnceCell};

use crate::access::Access;
use crate::address::AllowedNetworks;
use crate::error::HostsError;
use crate::known_hosts::{KeyCheck, KnownHosts};
use crate::shell::Script;

const SERVICE: &str = "ssh";
const STDERR_LIMIT: usize = 400;

/// How to reach hosts over SSH.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub user: String,
    pub key_file: PathBuf,
    /// The pinned host keys (`ssh.known_hosts`, in the state directory).
    pub known_hosts: PathBuf,
    pub allowed_networks: AllowedNetworks,
    /// Whether first contact pins host keys and commands may change hosts.
    pub access: Access,
    pub connect_timeout: Duration,
    /// The default limit for one command; a command may ask for longer.
    pub command_timeout: Duration,
}

impl SshSettings {
    pub fn new(user: impl Into<String>, key_file: PathBuf, known_hosts: PathBuf) -> Self {
        Self {
            user: user.into(),
            key_file,
            known_hosts,
            allowed_networks: AllowedNetworks::default(),
            access: Access::ReadWrite,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// One command to run on a host. `script` and `stdin` may hold resolved secrets (an env
/// file's content), so neither is ever printed: errors and metrics name `operation`.
#[derive(Clone)]
pub struct RemoteCommand {
    /// A bounded verb phrase: `observe services`, `start a service`... (also a metric label).
    pub operation: &'static str,
    /// Whether the command changes nothing on the host.
    pub read_only: bool,
    pub script: Script,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
}

impl RemoteCommand {
    pub fn read(operation: &'static str, script: Script) -> Self {
        Self {
            operation,
            read_only: true,
            script,
            stdin: None,
            timeout: None,
        }
    }

    pub fn write(operation: &'static str, script: Script) -> Self {
        Self {
            read_only: false,
            ..Self::read(operation, script)
        }
    }

    pub fn with_stdin(mut self, stdin: Vec<u8>) -> Self {
        self.stdin = Some(stdin);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl fmt::Debug for RemoteCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteCommand")
            .field("operation", &self.operation)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs commands on hosts. `SshPool` is the real one; tests may record instead.
#[async_trait]
pub trait HostRunner: Send + Sync {
    /// Runs `command` on `node` at `address`; a non-zero exit status is an error.
    async fn run(
        &self,
        node: &str,
        address: SocketAddr,
        command: &RemoteCommand,
    ) -> Result<CommandOutput, HostsError>;

    /// The host key (type and SHA-256 fingerprint) a read-only runner accepted from `address`
    /// without pinning it: what the daemon would pin on first contact.
    fn unpinned_key(&self, node: &str, address: SocketAddr) -> Option<String>;
}

/// Counts of commands run, to prove that a converged world only sees reads.
#[derive(Debug, Default)]
pub struct CommandCounts {
    reads: AtomicU64,
    writes: AtomicU64,
    connects: AtomicU64,
}

impl CommandCounts {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::SeqCst)
    }
}

/// A host's pooled session, empty until first use or after it dropped.
type Slot = Arc<Mutex<Option<Handle<Pinning>>>>;

/// One SSH session per host address, opened on first use and reopened when it drops.
pub struct SshPool {
    settings: SshSettings,
    known_hosts: Arc<KnownHosts>,
    key: OnceCell<Arc<PrivateKey>>,
    sessions: StdMutex<HashMap<SocketAddr, Slot>>,
    counts: Arc<CommandCounts>,
    recorder: Arc<dyn ApiRecorder>,
}

impl SshPool {
    pub fn new(settings: SshSettings, recorder: Arc<dyn ApiRecorder>) -> Self {
        let known_hosts = Arc::new(KnownHosts::new(
            settings.known_hosts.clone(),
            settings.access,
        ));
        Self {
            settings,
            known_hosts,
            key: OnceCell::new(),
            sessions: StdMutex::new(HashMap::new()),
            counts: Arc::new(CommandCounts::default()),
            recorder,
        }
    }

    pub fn counts(&self) -> Arc<CommandCounts> {
        Arc::clone(&self.counts)
    }

    pub fn allowed_networks(&self) -> &AllowedNetworks {
        &self.settings.allowed_networks
    }

    async fn key(&self) -> Result<Arc<PrivateKey>, HostsError> {
        let path = self.settings.key_file.clone();
        self.key
            .get_or_try_init(|| async move {
                russh::keys::load_secret_key(&path, None)
                    .map(Arc::new)
                    .map_err(|err| HostsError::LoadKey {
                        path: path.display().to_string(),
                        message: err.to_string(),
                    })
            })
            .await
            .cloned()
    }

    fn slot(&self, address: SocketAddr) -> Slot {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(sessions.entry(address).or_default())
    }

    /// Takes `address`'s session out of the pool after a command timed out on it: the session
    /// may be wedged, and another command may still hold its slot (waiting for that slot could
    /// take as long again), so the next command connects anew.
    fn forget_session(&self, address: SocketAddr) {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&address);
    }

    /// Opens a channel on the pooled session, connecting (again) when there is none.
    async fn channel(
        &self,
        node: &str,
        address: SocketAddr,
    ) -> Result<russh::Channel<client::Msg>, HostsError> {
        self.settings.allowed_networks.check(node, address)?;
        let slot = self.slot(address);
        let mut session = slot.lock().await;
        // A frozen host keeps the TCP session open and never answers: ask for the channel
        // within the connect deadline, then connect anew (which fails as fast).
        if let Some(handle) = session.as_ref().filter(|handle| !handle.is_closed())
            && let Ok(Ok(channel)) =
                tokio::time::timeout(self.settings.connect_timeout, handle.channel_open_session())
                    .await
        {
            return Ok(channel);
        }
        *session = None;
        let handle = self.connect(node, address).await?;
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|err| HostsError::Connect {
                node: node.to_owned(),
                address: address.to_string(),
                message: format!("could not open a channel: {err}"),
            })?;
        *session = Some(handle);
        Ok(channel)
    }

    async fn connect(
        &self,
        node: &str,
        address: SocketAddr,
    ) -> Result<Handle<Pinning>, HostsError> {
        let key = self.key().await?;
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(300)),
            keepalive_interval: Some(Duration::from_secs(30)),
            nodelay: true,
            ..client::Config::default()
        });
        let handler = Pinning {
            node: node.to_owned(),
            address,
            known_hosts: Arc::clone(&self.known_hosts),
            refusal: Arc::new(StdMutex::new(None)),
        };
        let refusal = Arc::clone(&handler.refusal);
        let started = Instant::now();
        self.counts.connects.fetch_add(1, Ordering::SeqCst);
        let connected = tokio::time::timeout(
            self.settings.connect_timeout,
            client::connect(config, address, handler),
        )
        .await;
        let connect_error = |message: String| HostsError::Connect {
            node: node.to_owned(),
            address: address.to_string(),
            message,
        };
        let mut handle = match connected {
            Ok(Ok(handle)) => handle,
            Ok(Err(err)) => {
                self.record("connect", ApiOutcome::Unreachable, started);
                let refused = refusal
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take();
                return Err(refused.unwrap_or_else(|| connect_error(err.to_string())));
            }
            Err(_) => {
                self.record("connect", ApiOutcome::Unreachable, started);
                return Err(connect_error(format!(
                    "no answer within {} s",
                    self.settings.connect_timeout.as_secs()
                )));
            }
        };
        let authenticated = tokio::time::timeout(self.settings.connect_timeout, async {
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten();
            handle
                .authenticate_publickey(
                    self.settings.user.clone(),
                    PrivateKeyWithHashAlg::new(key, hash),
                )
                .await
        })
        .await;
        let auth_error = |message: String| HostsError::Authenticate {
            node: node.to_owned(),
            user: self.settings.user.clone(),
            message,
        };
        match authenticated {
            Ok(Ok(result)) if result.success() => {
                self.record("connect", ApiOutcome::Success, started);
                tracing::debug!(node, %address, "opened SSH session");
                Ok(handle)
            }
            Ok(Ok(_)) => {
                self.record("connect", ApiOutcome::Error, started);
                Err(auth_error("the host refused the key".into()))
            }
            Ok(Err(err)) => {
                self.record("connect", ApiOutcome::Error, started);
                Err(auth_error(err.to_string()))
            }
            Err(_) => {
                self.record("connect", ApiOutcome::Unreachable, started);
                Err(connect_error(
                    "authentication did not finish in time".into(),
                ))
            }
        }
    }

    fn record(&self, operation: &'static str, outcome: ApiOutcome, started: Instant) {
        self.recorder
            .record(SERVICE, operation, outcome, started.elapsed().as_secs_f64());
    }

    async fn exec(
        &self,
        node: &str,
        address: SocketAddr,
        command: &RemoteCommand,
    ) -> Result<CommandOutput, HostsError> {
        let exec_error = |message: String| HostsError::Exec {
            node: node.to_owned(),
            operation: command.operation,
            message,
        };
        let mut channel = self.channel(node, address).await?;
        if command.read_only {
            self.counts.reads.fetch_add(1, Ordering::SeqCst);
        } else {
            self.counts.writes.fetch_add(1, Ordering::SeqCst);
        }
        channel
            .exec(true, command.script.as_str())
            .await
            .map_err(|err| exec_error(err.to_string()))?;
        if let Some(stdin) = &command.stdin {
            channel
                .data(&stdin[..])
                .await
                .map_err(|err| exec_error(err.to_string()))?;
        }
        channel
            .eof()
            .await
            .map_err(|err| exec_error(err.to_string()))?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut status = None;
        // The exit status may arrive before the last data: read until the channel closes.
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    return Err(exec_error(format!("killed by signal {signal_name:?}")));
                }
                _ => {}
            }
        }
        let status =
            status.ok_or_else(|| exec_error("the channel closed without an exit status".into()))?;
        Ok(CommandOutput {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

#[async_trait]
impl HostRunner for SshPool {
    async fn run(
        &self,
        node: &str,
        address: SocketAddr,
        command: &RemoteCommand,
    ) -> Result<CommandOutput, HostsError> {
        if !command.read_only && !self.settings.access.writes() {
            // A read-only pool may hold a session to a host whose key it accepted unpinned.
            return Err(HostsError::ReadOnly {
                node: node.to_owned(),
                operation: command.operation,
            });
        }
        let limit = command.timeout.unwrap_or(self.settings.command_timeout);
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, self.exec(node, address, command)).await {
            Ok(result) => result,
            Err(_) => {
                self.forget_session(address);
                Err(HostsError::CommandTimeout {
                    node: node.to_owned(),
                    operation: command.operation,
                    seconds: limit.as_secs(),
                })
            }
        };
        let result = result.and_then(|output| {
            if output.status == 0 {
                Ok(output)
            } else {
                Err(HostsError::CommandFailed {
                    node: node.to_owned(),
                    operation: command.operation,
                    status: output.status,
                    stderr: truncate(output.stderr.trim(), STDERR_LIMIT),
                })
            }
        });
        let outcome = match &result {
            Ok(_) => ApiOutcome::Success,
            Err(HostsError::CommandFailed { .. }) => ApiOutcome::Error,
            Err(err) if err.class() == converged_core::ErrorClass::Transient => {
                ApiOutcome::Unreachable
            }
            Err(_) => ApiOutcome::Error,
        };
        self.record(command.operation, outcome, started);
        result
    }

    fn unpinned_key(&self, node: &str, address: SocketAddr) -> Option<String> {
        let key = self.known_hosts.would_pin(node, address)?;
        Some(match russh::keys::PublicKey::from_openssh(&key) {
            Ok(parsed) => format!(
                "{} {}",
                parsed.algorithm().as_str(),
                parsed.fingerprint(HashAlg::Sha256)
            ),
            Err(_) => key,
        })
    }
}

fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The russh handler: accepts a host only with its pinned key (or pins the first one).
pub struct Pinning {
    node: String,
    address: SocketAddr,
    known_hosts: Arc<KnownHosts>,
    refusal: Arc<StdMutex<Option<HostsError>>>,
}

impl Pinning {
    fn refuse(&self, error: HostsError) -> Result<bool, russh::Error> {
        *self
            .refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
        Ok(false)
    }
}

impl client::Handler for Pinning {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            return self.refuse(HostsError::Connect {
                node: self.node.clone(),
                address: self.address.to_string(),
                message: "the host offered a certificate; only pinned plain keys are accepted"
                    .into(),
            });
        };
        let mut offered = key.clone();
        offered.set_comment("");
        let text = match offered.to_openssh() {
            Ok(text) => text.trim().to_owned(),
            Err(err) => {
                return self.refuse(HostsError::Connect {
                    node: self.node.clone(),
                    address: self.address.to_string(),
                    message: format!("unreadable host key: {err}"),
                });
            }
        };
        match self.known_hosts.check(&self.node, self.address, &text) {
            Ok(KeyCheck::Matches) => Ok(true),
            Ok(KeyCheck::Pinned) => {
                tracing::info!(node = %self.node, address = %self.address, fingerprint = %key.fingerprint(HashAlg::Sha256), "pinned host key on first use");
                Ok(true)
            }
            Ok(KeyCheck::WouldPin) => {
                tracing::info!(node = %self.node, address = %self.address, fingerprint = %key.fingerprint(HashAlg::Sha256), "accepted an unpinned host key for a read-only observation, without pinning it");
                Ok(true)
            }
            Ok(KeyCheck::Changed { pinned }) => {
                tracing::error!(node = %self.node, address = %self.address, offered = %key.fingerprint(HashAlg::Sha256), "refused host: its key differs from the pinned one");
                let pinned_fingerprint = russh::keys::PublicKey::from_openssh(&pinned)
                    .map(|key| key.fingerprint(HashAlg::Sha256).to_string())
                    .unwrap_or(pinned);
                self.refuse(HostsError::HostKeyChanged {
                    node: self.node.clone(),
                    address: self.address.to_string(),
                    pinned: pinned_fingerprint,
                    offered: key.fingerprint(HashAlg::Sha256).to_string(),
                    known_hosts: self.known_hosts.path().display().to_string(),
                })
            }
            Err(err) => self.refuse(err),
        }
    }
}
