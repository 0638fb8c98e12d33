//! No secret, present or past, in any output of the `converged` binary: an app converged with
//! two secret env entries (a `file:` and an `env:` reference) against the simulated Mesos and
//! Marathon, then one turned plain and the other removed while Marathon still holds both old
//! values. Every output is searched for them: the plan as text and JSON (asked of the daemon
//! and made locally), `GET /v1/plan`, `/status`, the debug logs as text and as JSON, the audit
//! log and every file of the state directory. Also `converged validate --secrets`, and
//! configuration errors naming the environment variable that set the value at fault.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use converged_testkit::{SimProcess, wait_for};
use serde_json::{Value, json};
use support::{BINARY, Daemon};

const TOKEN_SECRET: &str = "tok-3f9a61c2e7d5";
const DB_SECRET: &str = "dbpw-b84d20e5aa17";
const DB_VARIABLE: &str = "SECRETS_TEST_DB_PASSWORD";
const CONVERGE: Duration = Duration::from_secs(90);

/// One Mesos master, one agent and Marathon, and a folder with the desired state, the state
/// directory, the secret file and the daemons' logs.
struct World {
    _master: SimProcess,
    _agent: SimProcess,
    marathon: SimProcess,
    root: tempfile::TempDir,
    /// Every output gathered so far: what it is, and its text.
    outputs: Vec<(String, String)>,
}

impl World {
    fn start() -> Self {
        let master = SimProcess::mesos_master("127.0.0.1:0", &[]);
        let agent = SimProcess::mesos_agent(
            "127.0.0.1:0",
            &[
                "--master",
                &master.url,
                "--hostname",
                "agent-1",
                "--resources",
                "cpus:2;mem:1024;disk:1000;ports:[31000-32000]",
                "--heartbeat-interval",
                "200ms",
            ],
        );
        let marathon = SimProcess::marathon(
            "127.0.0.1:0",
            &[
                "--master",
                &master.url,
                "--profile",
                "1.10",
                "--staging-delay",
                "100ms",
                "--time-scale",
                "0.01",
                "--tick",
                "50ms",
            ],
        );
        let root = tempfile::tempdir().unwrap();
        for dir in ["desired/apps", "state", "logs"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("api-token"), format!("{TOKEN_SECRET}\n")).unwrap();
        let world = Self {
            _master: master,
            _agent: agent,
            marathon,
            root,
            outputs: Vec::new(),
        };
        world.set_observe_mode(false);
        world.write_app(json!({
            "API_TOKEN": {"secret": format!("file:{}", world.path("api-token").display())},
            "DB_PASSWORD": {"secret": format!("env:{DB_VARIABLE}")},
            "MODE": "a",
        }));
        world
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn set_observe_mode(&self, observe: bool) {
        let policy = if observe {
            "\n[kinds.marathon_app]\nmode = \"observe\"\n"
        } else {
            ""
        };
        std::fs::write(
            self.path("desired/cluster.toml"),
            format!("[cluster]\nname = \"secrets\"\n{policy}"),
        )
        .unwrap();
    }

    fn write_app(&self, env: Value) {
        let app = json!({"id": "/api", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "env": env});
        std::fs::write(
            self.path("desired/apps/api.json"),
            serde_json::to_string_pretty(&app).unwrap(),
        )
        .unwrap();
    }

    /// The daemon's environment, also given to every `converged` command.
    fn environment(&self) -> Vec<(String, String)> {
        [
            ("CONVERGED__DESIRED_STATE", self.path("desired")),
            ("CONVERGED__STATE_DIR", self.path("state")),
        ]
        .into_iter()
        .map(|(name, path)| (name.to_owned(), path.display().to_string()))
        .chain([
            ("CONVERGED__MARATHON__URL".into(), self.marathon.url.clone()),
            ("CONVERGED__LOG__LEVEL".into(), "debug".into()),
            (DB_VARIABLE.into(), DB_SECRET.into()),
        ])
        .collect()
    }

    /// `converged run` with debug logs in `format` to `logs/<format>.log`, and the path of its
    /// configuration file.
    fn daemon(&self, format: &str) -> (Daemon, PathBuf) {
        let mut config = PathBuf::new();
        let log = std::fs::File::create(self.path(&format!("logs/{format}.log"))).unwrap();
        let daemon = Daemon::spawn("1s", |command, dir| {
            config = dir.join("converged.toml");
            command
                .envs(self.environment())
                .env("CONVERGED__LOG__FORMAT", format)
                .stdout(log.try_clone().unwrap())
                .stderr(log);
        });
        (daemon, config)
    }

    fn keep(&mut self, what: impl Into<String>, text: String) {
        self.outputs.push((what.into(), text));
    }

    /// `converged <args> --config <config>`: its exit code, and its output kept for the scan.
    fn converged(&mut self, config: &Path, args: &[&str]) -> Option<i32> {
        let output = Command::new(BINARY)
            .args(args)
            .arg("--config")
            .arg(config)
            .envs(self.environment())
            .env_remove("CONVERGED_CONFIG")
            .output()
            .expect("converged runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        self.keep(format!("converged {}", args.join(" ")), text);
        output.status.code()
    }

    /// Every plan: the daemon's and a local one, as text and JSON, and `GET /v1/plan`.
    fn gather_plans(&mut self, daemon: &Daemon, config: &Path, when: &str) {
        for args in [
            &["plan"][..],
            &["plan", "--json"],
            &["plan", "--local"],
            &["plan", "--local", "--json"],
        ] {
            self.converged(config, args);
        }
        self.gather(daemon, "/v1/plan", when);
        self.gather(daemon, "/status", when);
    }

    fn gather(&mut self, daemon: &Daemon, path: &str, when: &str) {
        let (_, body) = daemon.get(path).expect("the daemon answers");
        self.keep(format!("GET {path} ({when})"), body);
    }

    /// What Marathon holds for the app's env.
    fn marathon_env(&self) -> Value {
        reqwest::blocking::get(format!("{}/v2/apps/api", self.marathon.url))
            .and_then(|response| response.json::<Value>())
            .map(|app| app["app"]["env"].clone())
            .unwrap_or(Value::Null)
    }
}

/// The condition `/status` shows for the app, once it shows one.
fn condition(daemon: &Daemon) -> Option<String> {
    let (_, body) = daemon.get("/status")?;
    let status: Value = serde_json::from_str(&body).ok()?;
    status["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "marathon_app" && r["name"] == "/api")
        .and_then(|r| r["condition"].as_str().map(str::to_owned))
}

fn wait_for_condition(daemon: &Daemon, wanted: &str) {
    wait_for(&format!("/api {wanted}"), CONVERGE, || {
        (condition(daemon).as_deref() == Some(wanted)).then_some(())
    });
}

/// Every file under `dir`, with its text (bytes read lossily).
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            found.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    found
}

#[test]
fn old_secret_values_appear_in_no_output_after_a_secret_turns_plain_and_another_goes() {
    let mut world = World::start();

    // 1. Converge with both secrets: Marathon holds their values.
    let (mut text_daemon, config) = world.daemon("text");
    wait_for_condition(&text_daemon, "in_sync");
    let env = world.marathon_env();
    assert_eq!(env["API_TOKEN"], TOKEN_SECRET, "{env}");
    assert_eq!(env["DB_PASSWORD"], DB_SECRET, "{env}");
    world.gather_plans(&text_daemon, &config, "converged");

    // 2. In observe mode, one secret turns plain and the other is removed: every plan shows
    //    both changes, while Marathon still holds the old values.
    world.set_observe_mode(true);
    world.write_app(json!({"API_TOKEN": "now-plain", "MODE": "a"}));
    wait_for_condition(&text_daemon, "drifted");
    assert_eq!(world.converged(&config, &["plan"]), Some(2));
    let plan = &world.outputs.last().unwrap().1;
    for key in ["API_TOKEN", "DB_PASSWORD"] {
        assert!(
            plan.contains(&format!("      /env/{key}: ")),
            "a change line: {plan}"
        );
    }
    world.gather_plans(&text_daemon, &config, "drifted, text logs");
    assert!(text_daemon.terminate().is_some_and(|s| s.success()));

    // 3. A second daemon, logging JSON, knows from the state directory what was secret.
    let (mut json_daemon, config) = world.daemon("json");
    wait_for("its first cycle", CONVERGE, || json_daemon.last_cycle());
    assert_eq!(condition(&json_daemon).as_deref(), Some("drifted"));
    world.gather_plans(&json_daemon, &config, "drifted, JSON logs");

    // 4. Enforced: Marathon gets the plain value and loses the other.
    world.set_observe_mode(false);
    wait_for("Marathon to hold the new env", CONVERGE, || {
        let env = world.marathon_env();
        (env["API_TOKEN"] == "now-plain" && env.get("DB_PASSWORD").is_none()).then_some(())
    });
    wait_for_condition(&json_daemon, "in_sync");
    world.gather_plans(&json_daemon, &config, "converged again");
    assert!(json_daemon.terminate().is_some_and(|s| s.success()));

    // 5. The logs, the audit log and the state directory.
    let text_log = std::fs::read_to_string(world.path("logs/text.log")).unwrap();
    assert!(
        text_log.contains(" DEBUG ") && text_log.contains("created app"),
        "debug text logs: {text_log}"
    );
    let json_log = std::fs::read_to_string(world.path("logs/json.log")).unwrap();
    let lines: Vec<Value> = json_log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines.iter().any(|line| line["level"] == "DEBUG")
            && lines.iter().any(|line| line["message"] == "updated app"),
        "debug JSON logs: {json_log}"
    );
    world.keep("the text log", text_log);
    world.keep("the JSON log", json_log);
    let state = files_under(&world.path("state"));
    assert!(
        state
            .iter()
            .any(|(path, text)| path.ends_with("audit.jsonl") && !text.is_empty()),
        "an audit log: {state:?}"
    );
    for (path, text) in state {
        world.keep(path.display().to_string(), text);
    }

    let leaks: Vec<String> = world
        .outputs
        .iter()
        .flat_map(|(what, text)| {
            [TOKEN_SECRET, DB_SECRET]
                .into_iter()
                .filter(|secret| text.contains(secret))
                .map(move |secret| format!("{secret} in {what}:\n{text}"))
        })
        .collect();
    println!(
        "secret scan: {} outputs scanned, {} old secret values found",
        world.outputs.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
}

/// `converged validate <args> <dir>` with `env`: exit code, stdout, stderr.
fn validate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let output = Command::new(BINARY)
        .arg("validate")
        .args(args)
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .expect("converged runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn validate_with_secrets_lists_every_unresolvable_reference_by_line_and_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("present");
    std::fs::write(&present, "file-value-71be").unwrap();
    std::fs::create_dir_all(dir.path().join("desired/apps")).unwrap();
    std::fs::write(
        dir.path().join("desired/cluster.toml"),
        "[cluster]\nname = \"c\"\n",
    )
    .unwrap();
    let app = format!(
        "{{\n  \"id\": \"/a\",\n  \"cmd\": \"x\",\n  \"env\": {{\n    \"PRESENT\": {{\"secret\": \"file:{}\"}},\n    \"MISSING\": {{\"secret\": \"file:{}\"}},\n    \"SET\": {{\"secret\": \"env:SECRETS_TEST_SET\"}},\n    \"UNSET\": {{\"secret\": \"env:SECRETS_TEST_UNSET\"}}\n  }}\n}}\n",
        present.display(),
        dir.path().join("missing").display()
    );
    std::fs::write(dir.path().join("desired/apps/a.json"), app).unwrap();
    let desired = dir.path().join("desired");
    let set = [("SECRETS_TEST_SET", "env-value-c40d")];

    assert_eq!(
        validate(&desired, &[], &set).0,
        Some(0),
        "no flag, no check"
    );

    let (code, stdout, stderr) = validate(&desired, &["--secrets"], &set);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    for expected in [
        "2 problem(s)",
        "apps/a.json:6:17: /env/MISSING/secret: could not resolve secret file:",
        "apps/a.json:8:15: /env/UNSET/secret: could not resolve secret env:SECRETS_TEST_UNSET",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }

    let (code, stdout, _) = validate(&desired, &["--secrets", "--json"], &set);
    assert_eq!(code, Some(1));
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["secrets_resolved"], 2);
    let fields: Vec<(&str, u64)> = answer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["field"].as_str().unwrap(), p["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [("/env/MISSING/secret", 6), ("/env/UNSET/secret", 8)]
    );

    let all = [
        ("SECRETS_TEST_SET", "env-value-c40d"),
        ("SECRETS_TEST_UNSET", "other-value-2a9e"),
    ];
    std::fs::write(dir.path().join("missing"), "file-value-0f3a").unwrap();
    let (code, resolved, stderr) = validate(&desired, &["--secrets"], &all);
    assert_eq!(code, Some(0), "{resolved}{stderr}");
    assert!(
        resolved.contains("4 secret reference(s) resolved here"),
        "{resolved}"
    );
    let printed = format!("{stdout}{stderr}{resolved}");
    for value in [
        "file-value-71be",
        "env-value-c40d",
        "other-value-2a9e",
        "file-value-0f3a",
    ] {
        assert!(!printed.contains(value), "{value} printed: {printed}");
    }
}

#[test]
fn an_invalid_log_level_stops_the_daemon_with_an_error_naming_its_variable() {
    let mut log = PathBuf::new();
    let mut daemon = Daemon::spawn("1s", |command, dir| {
        log = dir.join("stderr");
        command
            .env("CONVERGED__LOG__LEVEL", "verbose")
            .stderr(std::fs::File::create(&log).unwrap());
    });
    let status = daemon.exit_within(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exits at once");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("the environment variable CONVERGED__LOG__LEVEL")
            && stderr.contains("log.level `verbose` is not a log level"),
        "{stderr}"
    );
}
