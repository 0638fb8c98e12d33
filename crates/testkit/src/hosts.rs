//! SSH test hosts: one Debian `sshd` per host on its own loopback address, each in its own
//! mount, UTS and PID namespaces (`unshare`), so every host has its own hostname, its own
//! service directory (a private bind mount over the same path) and its own process tree, which
//! dies with the host. Key-only auth with generated ed25519 keys. A missing `sshd` or
//! `unshare` is a panic naming the package to install.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, free_port, io, require};

const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// One test host.
#[derive(Debug)]
pub struct TestHost {
    pub name: String,
    pub ip: String,
    pub ssh: SocketAddr,
    /// The host's private directory on the real filesystem; `TestHosts::root` inside the host
    /// shows this directory.
    pub dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A set of test hosts sharing one client key, removed (with every process they run) on drop.
#[derive(Debug)]
pub struct TestHosts {
    pub hosts: Vec<TestHost>,
    /// The client's private key (authorized on every host as root).
    pub key_file: PathBuf,
    /// The path every host sees its own service directory at.
    pub root: PathBuf,
    dir: tempfile::TempDir,
}

/// Extra set-up of a host before its sshd starts.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// A script bound over `/usr/local/bin/docker` inside the host (a recording fake).
    pub docker_script: Option<String>,
}

fn keygen(path: &Path) -> Result<(), Error> {
    let status = Command::new(SSH_KEYGEN)
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "converged-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .map_err(io("run ssh-keygen"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::NotReady {
            what: "ssh-keygen".into(),
            after: Duration::ZERO,
            detail: format!("exit {status}"),
        })
    }
}

impl TestHosts {
    /// Starts one host per `(name, ip)`; panics when a peer is missing or a host does not
    /// come up within 10 s.
    pub fn start(hosts: &[(&str, &str)], options: &HostOptions) -> Self {
        Self::try_start(hosts, options)
            .unwrap_or_else(|e| panic!("test hosts failed to start: {e}"))
    }

    pub fn try_start(hosts: &[(&str, &str)], options: &HostOptions) -> Result<Self, Error> {
        let hint = "apt-get install -y openssh-server";
        require(SSHD, "sshd", hint)?;
        require(SSH_KEYGEN, "ssh-keygen", hint)?;
        require(
            "/usr/bin/unshare",
            "unshare",
            "apt-get install -y util-linux",
        )?;
        require(
            "/usr/bin/nsenter",
            "nsenter",
            "apt-get install -y util-linux",
        )?;
        std::fs::create_dir_all("/run/sshd").map_err(io("create /run/sshd"))?;
        let dir = tempfile::tempdir().map_err(io("create the hosts' tempdir"))?;
        let key_file = dir.path().join("id_ed25519");
        keygen(&key_file)?;
        let public = std::fs::read_to_string(key_file.with_extension("pub"))
            .map_err(io("read the client public key"))?;
        let root = dir.path().join("srv");
        std::fs::create_dir_all(&root).map_err(io("create the mount point"))?;
        let mut started = Self {
            hosts: Vec::new(),
            key_file,
            root,
            dir,
        };
        for (name, ip) in hosts {
            let host_dir = started.dir.path().join("hosts").join(name);
            let srv = host_dir.join("srv");
            std::fs::create_dir_all(&srv).map_err(io("create a host directory"))?;
            keygen(&host_dir.join("ssh_host_ed25519_key"))?;
            std::fs::write(host_dir.join("authorized_keys"), &public)
                .map_err(io("write authorized_keys"))?;
            let port = free_port(ip);
            let ssh: SocketAddr = format!("{ip}:{port}")
                .parse()
                .map_err(|_| Error::NotReady {
                    what: "address".into(),
                    after: Duration::ZERO,
                    detail: format!("bad address {ip}:{port}"),
                })?;
            let config = host_dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress {ssh}\nHostKey {hd}/ssh_host_ed25519_key\nPidFile {hd}/sshd.pid\n\
                     AuthorizedKeysFile {hd}/authorized_keys\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
                     StrictModes no\nMaxSessions 64\nMaxStartups 64\n",
                    hd = host_dir.display()
                ),
            )
            .map_err(io("write sshd_config"))?;
            if let Some(script) = &options.docker_script {
                let path = host_dir.join("docker");
                std::fs::write(&path, script).map_err(io("write the docker script"))?;
                let status = Command::new("chmod")
                    .arg("755")
                    .arg(&path)
                    .status()
                    .map_err(io("chmod the docker script"))?;
                assert!(status.success(), "chmod failed");
            }
            started.hosts.push(TestHost {
                name: (*name).to_owned(),
                ip: (*ip).to_owned(),
                ssh,
                dir: host_dir.clone(),
                config,
                log: host_dir.join("sshd.log"),
                child: None,
            });
            started.launch(started.hosts.len() - 1)?;
        }
        Ok(started)
    }

    /// (Re)starts host `i`'s namespaces and sshd and waits until it accepts connections.
    pub fn launch(&mut self, i: usize) -> Result<(), Error> {
        let root = self.root.clone();
        let host = &mut self.hosts[i];
        let srv = host.dir.join("srv");
        let docker = host.dir.join("docker");
        let bind_docker = if docker.exists() {
            format!(
                "mount --bind '{}' /usr/local/bin/docker && ",
                docker.display()
            )
        } else {
            String::new()
        };
        let log = std::fs::File::create(&host.log).map_err(io("create the sshd log"))?;
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "sh",
                "-c",
            ])
            .arg(format!(
                "mount --bind '{}' '{}' && {bind_docker}hostname '{}' && exec {SSHD} -D -e -f '{}'",
                srv.display(),
                root.display(),
                host.name,
                host.config.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("spawn unshare + sshd"))?;
        host.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect_timeout(&host.ssh, Duration::from_millis(200)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(Error::NotReady {
                    what: format!("sshd of {}", host.name),
                    after: start.elapsed(),
                    detail: std::fs::read_to_string(&host.log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills host `i` and every process it runs (its PID namespace dies with it).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.hosts[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills host `i` and empties its disk, as a lost machine replaced by a fresh one would
    /// be: `launch` then starts it with nothing installed (same address and host key).
    pub fn lose(&mut self, i: usize) -> Result<(), Error> {
        self.stop(i);
        let srv = self.hosts[i].dir.join("srv");
        std::fs::remove_dir_all(&srv).map_err(io("empty the lost host's disk"))?;
        std::fs::create_dir_all(&srv).map_err(io("empty the lost host's disk"))
    }

    /// Gives host `i` a new host key (as a rebuilt machine would have).
    pub fn replace_host_key(&mut self, i: usize) -> Result<(), Error> {
        let key = self.hosts[i].dir.join("ssh_host_ed25519_key");
        std::fs::remove_file(&key).map_err(io("remove the old host key"))?;
        std::fs::remove_file(key.with_extension("pub")).map_err(io("remove the old host key"))?;
        keygen(&key)
    }

    /// Runs `sh -c script` inside host `i` (its mount, PID and UTS namespaces), as someone
    /// acting behind converged's back would.
    pub fn exec(&self, i: usize, script: &str) -> Output {
        let init = self.init_pid(i);
        Command::new("nsenter")
            .args(["-t", &init, "-m", "-u", "-p", "sh", "-c", script])
            .output()
            .unwrap_or_else(|e| panic!("nsenter into {} failed: {e}", self.hosts[i].name))
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to every sshd process of host `i`, the listener
    /// and each session, from outside the host: inside its PID namespace the listener is
    /// init, which ignores a SIGSTOP sent from there.
    pub fn signal_sshd(&self, i: usize, signal: &str) {
        let host = &self.hosts[i];
        let namespace_of = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let namespace = namespace_of(&self.init_pid(i));
        let pids: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
            .filter(|pid| namespace_of(pid) == namespace)
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "sshd")
            })
            .collect();
        assert!(!pids.is_empty(), "host {} runs no sshd", host.name);
        let out = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .output()
            .expect("kill");
        assert!(
            out.status.success(),
            "kill -{signal} {pids:?} on {}: {}",
            host.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pid, seen from outside, of the first process inside host `i` (its sshd).
    fn init_pid(&self, i: usize) -> String {
        let host = &self.hosts[i];
        let unshare = host
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("host {} is not running", host.name))
            .id();
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("host {} has no init process", host.name))
            .to_owned()
    }

    /// A path inside host `i`'s service directory, on the real filesystem.
    pub fn path(&self, i: usize, relative: &str) -> PathBuf {
        self.hosts[i].dir.join("srv").join(relative)
    }

    /// The sshd log of host `i`.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.hosts[i].log).unwrap_or_default()
    }

    /// The directory holding keys, configs and every host's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for i in 0..self.hosts.len() {
            self.stop(i);
        }
    }
}
