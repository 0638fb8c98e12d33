//! The `converged` binary as an operator runs it: validate, plan, run (with a real socket,
//! signals and `promtool check metrics` from Debian's prometheus package), status.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use converged_testkit::{copy_dir, wait_for};

const BINARY: &str = env!("CARGO_BIN_EXE_converged");

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state")
}

fn converged(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .envs(LOOPBACK_ONLY_AWS)
        .env_remove("CONVERGED_CONFIG")
        .output()
        .expect("the converged binary runs")
}

#[test]
fn validate_accepts_the_example_and_lists_every_problem_of_a_broken_copy() {
    let ok = converged(&["validate", example().to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid (revision"));

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example(), dir.path());
    let cluster = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    let broken = cluster
        .replacen(
            "instance_type = \"t2.micro\"",
            "instance_typ = \"t2.micro\"",
            1,
        )
        .replacen("name = \"production\"", "name = \"staging\"", 1)
        .replace("node = \"production\"", "node = \"staging\"")
        .replacen(
            "roles = [\"zookeeper\", \"mesos-master\", \"mesos-agent\", \"marathon\", \"edge\"]",
            "roles = [\"mesos-master\", \"mesos-agent\", \"marathon\", \"edge\"]",
            1,
        );
    std::fs::write(dir.path().join("cluster.toml"), broken).unwrap();
    std::fs::write(
        dir.path().join("apps/gitlab.json"),
        "{\"id\": \"/gitlab\",\n\"mem\": 4096,,}",
    )
    .unwrap();
    let failed = converged(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    for needle in [
        "4 problem(s)",
        "cluster.toml:26:1: nodes[1].instance_typ: unknown field `instance_typ` (did you mean `instance_type`?)",
        "cluster.toml:34:1: nodes[2].name: duplicate node name `staging`",
        "cluster.toml:30:1: nodes[1].roles: 2 nodes have the `zookeeper` role",
        "apps/gitlab.json:2:13: not valid JSON",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in:\n{stderr}");
    }
}

#[test]
fn version_names_the_git_revision() {
    let out = converged(&["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("converged 0.1.0 (git "), "{text}");
}

/// Whatever a test desired state says, AWS requests could only go to a closed loopback port
/// with fake credentials: no metadata probe, nothing leaves the machine.
const LOOPBACK_ONLY_AWS: [(&str, &str); 4] = [
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("CONVERGED__AWS__ENDPOINT_URL", "http://127.0.0.1:9"),
];

/// The example's apps under a cluster without nodes: the layers that would need AWS, SSH or a
/// Marathon are off.
fn apps_only_desired_state(dir: &Path) -> PathBuf {
    let desired = dir.join("desired");
    copy_dir(&example().join("apps"), &desired.join("apps"));
    std::fs::write(
        desired.join("cluster.toml"),
        "[cluster]\nname = \"clickcount\"\n",
    )
    .unwrap();
    desired
}

/// A running daemon on a free loopback port, stopped with SIGTERM on drop.
struct Daemon {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    state_dir: PathBuf,
    config: PathBuf,
}

impl Daemon {
    fn start(desired: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let token = dir.path().join("token");
        std::fs::write(&token, "test-token\n").unwrap();
        let state_dir = dir.path().join("state");
        let config = dir.path().join("converged.toml");
        let mut file = std::fs::File::create(&config).unwrap();
        write!(
            file,
            "desired_state = {:?}\nstate_dir = {:?}\nresync_interval = \"1h\"\n[http]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = {:?}\n[log]\nformat = \"json\"\n",
            desired, state_dir, token
        )
        .unwrap();
        let child = Command::new(BINARY)
            .args(["run", "--config", config.to_str().unwrap()])
            .envs(LOOPBACK_ONLY_AWS)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let daemon = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            state_dir,
            config,
        };
        daemon.wait_until("/readyz");
        daemon
    }

    fn wait_until(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(response) = reqwest::blocking::get(format!("{}{path}", self.base))
                && response.status().is_success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the daemon did not answer {path} within 20 s");
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::blocking::get(format!("{}{path}", self.base)).unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    fn post(&self, path: &str, token: Option<&str>) -> u16 {
        let mut request = reqwest::blocking::Client::new().post(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap().status().as_u16()
    }

    /// Sends SIGTERM and returns the exit code and everything logged.
    fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut logs = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut logs)
                    .unwrap();
                return (status.code(), logs);
            }
            assert!(Instant::now() < deadline, "the daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|path| path.is_file());
    found
        .expect("promtool is missing: install Debian's `prometheus` package (scripts/test.sh does)")
}

#[test]
fn run_serves_status_and_metrics_guards_posts_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let desired = apps_only_desired_state(dir.path());
    let daemon = Daemon::start(&desired);
    assert_eq!(daemon.get("/healthz").0, 200);

    let (code, body) = daemon.get("/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["desired_state"]["valid"], true, "{body}");
    let revision = status["desired_state"]["revision"]
        .as_str()
        .unwrap()
        .to_owned();
    let validate = converged(&["validate", "--json", desired.to_str().unwrap()]);
    let validated: serde_json::Value = serde_json::from_slice(&validate.stdout).unwrap();
    assert_eq!(
        validated["revision"],
        revision.as_str(),
        "/status reports the revision on disk"
    );

    let (code, metrics) = daemon.get("/metrics");
    assert_eq!(code, 200);
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    assert_eq!(daemon.post("/v1/reconcile", None), 401);
    assert_eq!(daemon.post("/v1/reconcile", Some("nope")), 403);
    assert_eq!(daemon.post("/v1/reconcile", Some("test-token")), 202);

    let table = Command::new(BINARY)
        .args(["status", "--url", &daemon.base])
        .output()
        .unwrap();
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("desired state") && table.contains("valid") && table.contains("KIND"),
        "{table}"
    );

    let plan = Command::new(BINARY)
        .args(["plan", "--config", daemon.config.to_str().unwrap()])
        .envs(LOOPBACK_ONLY_AWS)
        .output()
        .unwrap();
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let asked = String::from_utf8_lossy(&plan.stdout);
    assert!(asked.contains("planned by the running daemon"), "{asked}");
    assert!(
        asked.contains("Plan: 0 to create, 0 to change, 0 to delete"),
        "{asked}"
    );
    let local = Command::new(BINARY)
        .args([
            "plan",
            "--local",
            "--config",
            daemon.config.to_str().unwrap(),
        ])
        .envs(LOOPBACK_ONLY_AWS)
        .output()
        .unwrap();
    let local_text = String::from_utf8_lossy(&local.stdout);
    assert_eq!(local.status.code(), Some(0), "{local_text}");
    assert!(local_text.contains("planned locally"), "{local_text}");
    assert!(daemon.state_dir.join("audit.jsonl").exists());

    let (code, logs) = daemon.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        logs.contains("started converged") && logs.contains("drained"),
        "{logs}"
    );
    assert!(
        !logs.contains("test-token"),
        "the token never reaches the logs"
    );
}

#[test]
fn plan_exits_one_on_an_invalid_desired_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cluster.toml"),
        "[cluster]\nname = \"x\"\nbogus = 1\n",
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, format!("desired_state = {:?}\n", dir.path())).unwrap();
    let out = converged(&["plan", "--local", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cluster.toml:3:1: cluster.bogus: unknown field `bogus`")
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = converged(&["run", "--config", "/nonexistent/converged.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn validate_names_a_pipe_a_socket_a_large_file_and_a_symlink_out_within_two_seconds() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
    /// Puts one thing at the given path in `apps/`.
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make, &str); 4] = [
        (
            "pipe.json",
            &|path| mkfifo(path),
            "apps/pipe.json: is a named pipe; only regular files are read",
        ),
        (
            "socket.json",
            &|path| {
                std::os::unix::net::UnixListener::bind(path).unwrap();
            },
            "apps/socket.json: is a socket; only regular files are read",
        ),
        (
            "big.json",
            &|path| std::fs::write(path, format!("{{}}{}", " ".repeat(2 << 20))).unwrap(),
            "apps/big.json: is 2.0 MiB (2097154 bytes); an app file may be at most 1 MiB: \
             Marathon keeps an app definition in one ZooKeeper node",
        ),
        (
            "passwd.json",
            &|path| std::os::unix::fs::symlink(outside.path().join("passwd"), path).unwrap(),
            "apps/passwd.json: is a symlink to ",
        ),
    ];
    for (name, make, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let desired = apps_only_desired_state(dir.path());
        make(&desired.join("apps").join(name));
        let mut child = Command::new(BINARY)
            .args(["validate", desired.to_str().unwrap()])
            .env_remove("CONVERGED_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`converged validate` with apps/{name} had not exited after 2 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "apps/{name}: {stderr}");
        assert!(
            stderr.contains("1 problem(s)") && stderr.contains(expected),
            "apps/{name}: missing `{expected}` in:\n{stderr}"
        );
        assert!(!stderr.contains("root:x"), "nothing outside is read");
    }
}

#[test]
fn the_daemon_names_a_pipe_dropped_into_the_folder_and_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let desired = apps_only_desired_state(dir.path());
    let daemon = Daemon::start(&desired);
    mkfifo(&desired.join("apps/pipe.json"));
    assert_eq!(daemon.post("/v1/reconcile", Some("test-token")), 202);
    let errors = wait_for(
        "/status to report the folder invalid",
        Duration::from_secs(10),
        || {
            let status: serde_json::Value = serde_json::from_str(&daemon.get("/status").1).ok()?;
            (status["desired_state"]["valid"] == false)
                .then(|| status["desired_state"]["errors"].to_string())
        },
    );
    assert!(
        errors.contains(r#""file":"apps/pipe.json""#)
            && errors.contains("is a named pipe; only regular files are read"),
        "{errors}"
    );
    assert_eq!(daemon.get("/healthz").0, 200);
    let (code, logs) = daemon.terminate();
    assert_eq!(code, Some(0), "{logs}");
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Adopting one layer at a time: with no `[[nodes]]` and `[mesos] url` set, the agents of a
/// cluster converged never built are someone else's. `plan` lists them unmanaged and exits 0;
/// nothing is written to the state dir.
#[test]
fn agents_of_a_cluster_without_nodes_are_planned_unmanaged_and_plan_exits_0() {
    let master = converged_testkit::SimProcess::mesos_master("127.0.0.1:0", &[]);
    let _agents: Vec<_> = ["alpha", "bravo"]
        .iter()
        .map(|name| {
            converged_testkit::SimProcess::mesos_agent(
                "127.0.0.1:0",
                &[
                    "--master",
                    &master.url,
                    "--hostname",
                    name,
                    "--heartbeat-interval",
                    "200ms",
                ],
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(desired.join("cluster.toml"), "[cluster]\nname = \"x\"\n").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "desired_state = {desired:?}\nstate_dir = {state:?}\n[mesos]\nurl = {:?}\n[ssh]\nallowed_networks = [\"127.0.0.0/8\"]\n",
            master.url
        ),
    )
    .unwrap();
    let started = Instant::now();
    let text = loop {
        let out = converged(&["plan", "--local", "--config", config.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("2 unmanaged") || started.elapsed() > Duration::from_secs(20) {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for agent in ["alpha", "bravo"] {
        assert!(
            text.contains(&format!("= mesos_agent/{agent}: unmanaged: ")),
            "{text}"
        );
    }
    assert!(
        text.contains("Plan: 0 to create, 0 to change, 0 to delete; 2 unmanaged"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "plan wrote nothing"
    );
}
