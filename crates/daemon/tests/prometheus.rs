//! A real Prometheus (Debian's package) scrapes a running `converged` that manages one app on
//! the simulator; a query through Prometheus' HTTP API returns the per-condition counts.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use converged_testkit::{SimProcess, free_port};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Killed {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot start {program} ({err}): install Debian's prometheus package")
        });
    Killed(child)
}

#[test]
fn prometheus_scrapes_the_per_condition_resource_counts() {
    let master = SimProcess::mesos_master("127.0.0.1:0", &[]);
    let _agent = SimProcess::mesos_agent(
        "127.0.0.1:0",
        &[
            "--master",
            &master.url,
            "--hostname",
            "a1",
            "--heartbeat-interval",
            "200ms",
        ],
    );
    let marathon = SimProcess::marathon(
        "127.0.0.1:0",
        &[
            "--master",
            &master.url,
            "--staging-delay",
            "100ms",
            "--tick",
            "50ms",
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(desired.join("apps")).unwrap();
    std::fs::write(
        desired.join("cluster.toml"),
        "[cluster]\nname = \"metrics\"\n",
    )
    .unwrap();
    std::fs::write(
        desired.join("apps/web.json"),
        r#"{"id": "/web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32}"#,
    )
    .unwrap();
    let daemon_port = free_port("127.0.0.1");
    let config = dir.path().join("converged.toml");
    std::fs::write(
        &config,
        format!(
            "desired_state = {desired:?}\nstate_dir = {:?}\nresync_interval = \"1s\"\n[http]\nlisten = \"127.0.0.1:{daemon_port}\"\n[marathon]\nurl = \"{}\"\n",
            dir.path().join("state"),
            marathon.url
        ),
    )
    .unwrap();
    let _daemon = spawn(
        env!("CARGO_BIN_EXE_converged"),
        &["run", "--config", config.to_str().unwrap()],
        &dir.path().join("converged.log"),
    );

    let prometheus_port = free_port("127.0.0.1");
    let prometheus_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: converged\n    static_configs:\n      - targets: ['127.0.0.1:{daemon_port}']\n"
        ),
    )
    .unwrap();
    let _prometheus = spawn(
        "prometheus",
        &[
            &format!("--config.file={}", prometheus_config.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ],
        &dir.path().join("prometheus.log"),
    );

    let query = format!(
        "http://127.0.0.1:{prometheus_port}/api/v1/query?query=sum%20by%20(condition)%20(converged_resources%7Bkind%3D%22marathon_app%22%7D)"
    );
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Ok(response) = reqwest::blocking::get(&query)
            && let Ok(body) = response.json::<serde_json::Value>()
        {
            let results = body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let in_sync = results
                .iter()
                .find(|r| r["metric"]["condition"] == "in_sync")
                .and_then(|r| r["value"][1].as_str())
                .map(str::to_owned);
            if in_sync.as_deref() == Some("1") {
                assert_eq!(results.len(), 6, "one series per condition: {body}");
                return;
            }
            last = body.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus never reported the app in sync; last answer: {last}\nconverged log:\n{}\nprometheus log:\n{}",
            std::fs::read_to_string(dir.path().join("converged.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
