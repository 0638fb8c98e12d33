//! Test harness for real peers: a ZooKeeper ensemble on loopback aliases (Debian's jar) and
//! `converged-sim` processes, SSH test hosts (`hosts`), an HTTP fault proxy (`fault_proxy`)
//! and a reconcile driver (`driver`). A missing peer binary is a panic with a clear message,
//! never a skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod driver;
pub mod fault_proxy;
pub mod hosts;
pub mod moto;
pub mod sandbox;
pub mod sequence;

pub use hosts::{HostOptions, TestHost, TestHosts};
pub use sequence::Sequence;

/// The simulated Marathon's flags for the example's `MARATHON_MESOS_ROLE` and
/// `MARATHON_DEFAULT_ACCEPTED_RESOURCE_ROLES`: agents reserve traefik's fixed ports for this role.
pub const EXAMPLE_MARATHON_ROLES: &[&str] = &[
    "--mesos-role",
    "slave_public",
    "--default-accepted-resource-roles",
    "*",
];

/// An API recorder for tests that do not look at metrics.
pub struct NoMetrics;

impl converged_core::api::ApiRecorder for NoMetrics {
    fn record(&self, _: &'static str, _: &'static str, _: converged_core::api::ApiOutcome, _: f64) {
    }
}

/// Errors of the harness (most are turned into panics by the convenience constructors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A peer binary or jar is not installed.
    #[error("peer {what} is missing at {path}: {hint}")]
    MissingPeer {
        /// What is missing.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How to install it.
        hint: &'static str,
    },
    /// An I/O operation failed.
    #[error("failed to {op}")]
    Io {
        /// What was attempted.
        op: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A peer did not get ready in time.
    #[error("{what} not ready after {after:?}: {detail}")]
    NotReady {
        /// Which peer.
        what: String,
        /// How long we waited.
        after: Duration,
        /// Last observation.
        detail: String,
    },
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |source| Error::Io { op, source }
}

/// A free TCP port on `ip` (bound then released).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

/// Sends a ZooKeeper four-letter word and returns the reply.
pub fn four_letter(addr: SocketAddr, word: &str) -> Result<String, Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(io(format!("connect to {addr}")))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io("set timeout"))?;
    s.write_all(word.as_bytes())
        .map_err(io(format!("send {word} to {addr}")))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(io(format!("read {word} from {addr}")))?;
    Ok(out)
}

/// `Mode:` of a `srvr` reply, if the server is serving.
pub fn srvr_mode(reply: &str) -> Option<&str> {
    reply
        .lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::trim)
}

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// One ZooKeeper member.
#[derive(Debug)]
pub struct ZkMember {
    /// Server id (`myid`).
    pub id: u32,
    /// Client address.
    pub client: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A ZooKeeper ensemble of real `QuorumPeerMain` JVMs, killed on drop.
#[derive(Debug)]
pub struct ZkEnsemble {
    /// Members, by position (`id` = position + 1).
    pub members: Vec<ZkMember>,
    dir: tempfile::TempDir,
}

fn require(path: &str, what: &'static str, hint: &'static str) -> Result<(), Error> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(Error::MissingPeer {
            what,
            path: path.into(),
            hint,
        })
    }
}

impl ZkEnsemble {
    /// Starts a 3-member ensemble on 127.0.0.31–33 and waits for quorum; panics if ZooKeeper is
    /// not installed or no quorum forms within 60 s.
    pub fn start() -> Self {
        Self::start_on(&["127.0.0.31", "127.0.0.32", "127.0.0.33"])
            .unwrap_or_else(|e| panic!("ZooKeeper ensemble failed to start: {e}"))
    }

    /// Starts one member per loopback address and waits for quorum.
    pub fn start_on(ips: &[&str]) -> Result<Self, Error> {
        let hint = "apt-get install -y zookeeper (Debian; needs Java)";
        require(ZK_JAR, "ZooKeeper jar", hint)?;
        require(SLF4J_JAR, "slf4j-simple jar", hint)?;
        require(
            "/usr/bin/java",
            "java",
            "apt-get install -y default-jre-headless",
        )?;
        let dir = tempfile::tempdir().map_err(io("create ZooKeeper tempdir"))?;
        let ports: Vec<(u16, u16, u16)> = ips
            .iter()
            .map(|ip| (free_port(ip), free_port(ip), free_port(ip)))
            .collect();
        let servers: String = ips
            .iter()
            .zip(&ports)
            .enumerate()
            .map(|(i, (ip, (c, q, e)))| format!("server.{}={ip}:{q}:{e};{ip}:{c}\n", i + 1))
            .collect();
        let mut members = Vec::new();
        for (i, (ip, (client, _, _))) in ips.iter().zip(&ports).enumerate() {
            let id = i as u32 + 1;
            let data = dir.path().join(format!("zk{id}"));
            std::fs::create_dir_all(&data).map_err(io("create dataDir"))?;
            std::fs::write(data.join("myid"), format!("{id}\n")).map_err(io("write myid"))?;
            let config = dir.path().join(format!("zoo{id}.cfg"));
            let cfg = format!(
                "tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={client}\nclientPortAddress={ip}\n\
                 4lw.commands.whitelist=*\nadmin.enableServer=false\nreconfigEnabled=false\nstandaloneEnabled=false\n\
                 minSessionTimeout=1000\nmaxSessionTimeout=60000\n{servers}",
                data.display()
            );
            std::fs::write(&config, cfg).map_err(io("write zoo.cfg"))?;
            members.push(ZkMember {
                id,
                client: format!("{ip}:{client}")
                    .parse()
                    .map_err(|_| Error::NotReady {
                        what: "address".into(),
                        after: Duration::ZERO,
                        detail: format!("bad address {ip}:{client}"),
                    })?,
                log: dir.path().join(format!("zk{id}.log")),
                config,
                child: None,
            });
        }
        let mut ens = Self { members, dir };
        for i in 0..ens.members.len() {
            ens.start_member(i)?;
        }
        ens.wait_for_quorum(Duration::from_secs(60))?;
        Ok(ens)
    }

    /// (Re)starts member `i` (0-based).
    pub fn start_member(&mut self, i: usize) -> Result<(), Error> {
        let m = &mut self.members[i];
        let log = std::fs::File::create(&m.log).map_err(io("create ZooKeeper log"))?;
        let err = log.try_clone().map_err(io("clone log handle"))?;
        let child = Command::new("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp"])
            .arg(format!("{ZK_JAR}:{SLF4J_JAR}"))
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&m.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io("spawn ZooKeeper"))?;
        m.child = Some(child);
        Ok(())
    }

    /// Kills member `i` (0-based) with SIGKILL.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `srvr` modes of every member (`None` = not serving or down).
    pub fn modes(&self) -> Vec<Option<String>> {
        self.members
            .iter()
            .map(|m| {
                four_letter(m.client, "srvr")
                    .ok()
                    .and_then(|r| srvr_mode(&r).map(str::to_string))
            })
            .collect()
    }

    /// Waits until exactly one leader and every other running member follows.
    pub fn wait_for_quorum(&self, timeout: Duration) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            let modes = self.modes();
            let running: Vec<&Option<String>> = modes
                .iter()
                .zip(&self.members)
                .filter(|(_, m)| m.child.is_some())
                .map(|(mode, _)| mode)
                .collect();
            let leaders = running
                .iter()
                .filter(|m| m.as_deref() == Some("leader"))
                .count();
            let followers = running
                .iter()
                .filter(|m| m.as_deref() == Some("follower"))
                .count();
            if leaders == 1 && leaders + followers == running.len() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let logs: String = self
                    .members
                    .iter()
                    .map(|m| std::fs::read_to_string(&m.log).unwrap_or_default())
                    .map(|l| l.lines().rev().take(5).collect::<Vec<_>>().join("\n"))
                    .collect::<Vec<_>>()
                    .join("\n---\n");
                return Err(Error::NotReady {
                    what: "ZooKeeper quorum".into(),
                    after: timeout,
                    detail: format!("modes {modes:?}; log tails:\n{logs}"),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Connect string `ip:port,ip:port,...`.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `zk://<connect string><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("zk://{}{path}", self.connect_string())
    }

    /// The directory holding configs, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ZkEnsemble {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }
}

/// Path of the `converged-sim` binary: `CONVERGED_SIM_BIN`, else next to the running test's
/// target dir (`target/<profile>/converged-sim`). Panics with a build hint if it is missing.
pub fn sim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CONVERGED_SIM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("converged-sim"))
        .unwrap_or_default();
    if !candidate.exists() {
        panic!(
            "converged-sim binary not found at {}: run `cargo build -p converged-sim` or set CONVERGED_SIM_BIN",
            candidate.display()
        );
    }
    candidate
}

/// A running `converged-sim` process, killed on drop.
#[derive(Debug)]
pub struct SimProcess {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Bound address.
    pub addr: SocketAddr,
    /// Time from spawn to the listening announcement.
    pub startup: Duration,
    child: Child,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl SimProcess {
    /// Spawns `bin <args...>` and waits (up to 10 s) for its `listening on` line.
    pub fn spawn(bin: &Path, args: &[String]) -> Result<Self, Error> {
        if !bin.exists() {
            return Err(Error::MissingPeer {
                what: "converged-sim",
                path: bin.to_path_buf(),
                hint: "cargo build -p converged-sim",
            });
        }
        let logdir = tempfile::tempdir().map_err(io("create log dir"))?;
        let log = logdir.path().join("stderr.log");
        let err = std::fs::File::create(&log).map_err(io("create log"))?;
        let start = Instant::now();
        let mut child = Command::new(bin)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(io(format!("spawn {}", bin.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| Error::NotReady {
            what: "converged-sim".into(),
            after: Duration::ZERO,
            detail: "no stdout".into(),
        })?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let timeout = Duration::from_secs(10);
        let line = match rx.recv_timeout(timeout) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::NotReady {
                    what: format!("converged-sim {args:?}"),
                    after: timeout,
                    detail: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
        };
        let startup = start.elapsed();
        let url = line
            .strip_prefix("converged-sim listening on ")
            .unwrap_or_default()
            .to_string();
        let addr = url
            .trim_start_matches("http://")
            .parse()
            .map_err(|_| Error::NotReady {
                what: "converged-sim".into(),
                after: startup,
                detail: format!("unexpected first line {line:?}"),
            })?;
        Ok(Self {
            url,
            addr,
            startup,
            child,
            log,
            _logdir: logdir,
        })
    }

    fn kind(kind: &str, listen: &str, extra: &[&str]) -> Self {
        let mut args = vec![kind.to_string(), "--listen".into(), listen.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(&sim_binary(), &args)
            .unwrap_or_else(|e| panic!("converged-sim {kind} failed: {e}"))
    }

    /// `converged-sim mesos-master --listen <listen> <extra...>`.
    pub fn mesos_master(listen: &str, extra: &[&str]) -> Self {
        Self::kind("mesos-master", listen, extra)
    }

    /// `converged-sim mesos-agent --listen <listen> <extra...>`.
    pub fn mesos_agent(listen: &str, extra: &[&str]) -> Self {
        Self::kind("mesos-agent", listen, extra)
    }

    /// `converged-sim marathon --listen <listen> <extra...>`.
    pub fn marathon(listen: &str, extra: &[&str]) -> Self {
        Self::kind("marathon", listen, extra)
    }

    /// The process' stderr log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a directory tree (test fixtures such as the example desired state).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|err| panic!("create {}: {err}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|err| panic!("read {}: {err}", from.display()));
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|err| panic!("copy {}: {err}", entry.path().display()));
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, panicking with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_srvr_mode() {
        let reply = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(srvr_mode(reply), Some("follower"));
        assert_eq!(
            srvr_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    #[test]
    fn missing_binary_is_an_error() {
        let e = SimProcess::spawn(Path::new("/nonexistent/converged-sim"), &[]).unwrap_err();
        assert!(matches!(e, Error::MissingPeer { .. }));
    }
}
