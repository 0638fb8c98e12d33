//! `converged run` as a child process for the tests that watch the real binary: a minimal
//! desired state, a configuration on a free loopback port, and the ways to poll and stop it.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use converged_testkit::free_port;

pub const BINARY: &str = env!("CARGO_BIN_EXE_converged");

/// Whatever happened, AWS requests could only go to a closed loopback port with fake
/// credentials: no metadata probe, nothing leaves the machine.
const LOOPBACK_ONLY_AWS: [(&str, &str); 4] = [
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("CONVERGED__AWS__ENDPOINT_URL", "http://127.0.0.1:9"),
];

/// A daemon over a cluster without nodes or apps: every kind observes at once, nothing is
/// reached. Killed on drop.
pub struct Daemon {
    pub child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Spawns `converged run` resyncing every `resync`; `setup` sets the environment and the
    /// standard streams, and is handed a folder that lives as long as the daemon (for a log).
    pub fn spawn(resync: &str, setup: impl FnOnce(&mut Command, &Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let desired = dir.path().join("desired");
        std::fs::create_dir_all(desired.join("apps")).unwrap();
        std::fs::write(
            desired.join("cluster.toml"),
            "[cluster]\nname = \"supervised\"\n",
        )
        .unwrap();
        let port = free_port("127.0.0.1");
        let config = dir.path().join("converged.toml");
        std::fs::write(
            &config,
            format!(
                "desired_state = {:?}\nstate_dir = {:?}\nresync_interval = \"{resync}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
                desired,
                dir.path().join("state"),
            ),
        )
        .unwrap();
        let mut command = Command::new(BINARY);
        command
            .args(["run", "--config", config.to_str().unwrap()])
            .envs(LOOPBACK_ONLY_AWS)
            .env_remove("CONVERGED_CONFIG");
        setup(&mut command, dir.path());
        Self {
            child: command.spawn().expect("the converged binary starts"),
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The status code and body of `GET path`, or `None` while nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .ok()?;
        Some((response.status().as_u16(), response.text().ok()?))
    }

    /// The number of the last finished cycle in `/status`, once there is one.
    pub fn last_cycle(&self) -> Option<u64> {
        let (_, body) = self.get("/status")?;
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        status["last_cycle"]["number"].as_u64()
    }

    /// Waits for the process to exit on its own: its status, or `None` (and killed) after
    /// `timeout`.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// Sends SIGTERM and waits for the exit (the drain takes no time without actions).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.exit_within(Duration::from_secs(10))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
