//! Fault injection through the real `converged` binary against the real peers (moto, the SSH
//! test hosts, ZooKeeper, the simulated Mesos and Marathon):
//!
//! - SIGKILL at every boundary of an action (`CONVERGED_TEST_FAULT`, debug builds only: the
//!   binary freezes at the armed point and says so on stderr; the test then sends SIGKILL), for
//!   an action of every kind the sandbox's daemon acts on, then a restart without the fault:
//!   the world converges with no duplicate and nothing lost, and the audit log tells the
//!   attempt, its outcome when it was written, and that the action was cut off when not.
//!   `mesos_agent` acts only when a node leaves the desired state (drain, maintenance, down),
//!   which the example cluster does not do here: it is not covered.
//! - The state directory on a full tmpfs, and the audit log replaced by a directory: the
//!   daemon refuses to act, says so in `/status` and the metrics, and acts once it can record.
//!
//! Each case prints one `fault: ...` line with its figures for `scripts/reliability.sh`
//! (`cargo test -p converged --test faults -- --nocapture`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use converged_testkit::sandbox::{HOSTS, Sandbox, all_in_sync};
use converged_testkit::{SimProcess, free_port, sim_binary, srvr_mode, wait_for};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(240);
/// From the restart to converged, per case.
const RECOVER: Duration = Duration::from_secs(180);
/// From the armed start to the armed point.
const REACH: Duration = Duration::from_secs(90);
const FAULT: &str = "CONVERGED_TEST_FAULT";
const REACHED: &str = "converged-test-fault reached";
const POINTS: [&str; 4] = ["before_request", "in_flight", "after_answer", "after_audit"];
const SERVICES: [&str; 4] = ["zookeeper", "mesos-master", "mesos-agent", "marathon"];
const APPS: [&str; 6] = [
    "/click-count/production",
    "/click-count/staging",
    "/gitlab",
    "/gitlab-runner",
    "/mesos-ui",
    "/traefik",
];
const RECORDS: [&str; 8] = [
    "services.clickcount.example.org.",
    "staging.clickcount.example.org.",
    "production.clickcount.example.org.",
    "gitlab.clickcount.example.org.",
    "traefik.clickcount.example.org.",
    "mesos.clickcount.example.org.",
    "staging.app.clickcount.example.org.",
    "app.clickcount.example.org.",
];

/// One kind's action, how to make the daemon want it (round `n` of 4), and how to tell that
/// round's change took effect in the world.
struct Case {
    kind: &'static str,
    action: &'static str,
    provoke: fn(&Sandbox, usize),
    took_effect: fn(&Sandbox, usize) -> bool,
}

const CASES: [Case; 6] = [
    Case {
        kind: "marathon_app",
        action: "scale",
        provoke: scale_mesos_ui,
        took_effect: mesos_ui_scaled,
    },
    Case {
        kind: "dns_record",
        action: "upsert",
        provoke: delete_gitlab_record,
        took_effect: gitlab_record_back,
    },
    Case {
        kind: "security_group",
        action: "authorize",
        provoke: admit_another_cidr,
        took_effect: cidr_admitted,
    },
    Case {
        kind: "host_service",
        action: "start",
        provoke: kill_a_marathon,
        took_effect: marathon_back,
    },
    Case {
        kind: "zookeeper_ensemble",
        action: "restart_member",
        provoke: change_zookeeper_config,
        took_effect: zookeeper_config_rolled,
    },
    Case {
        kind: "instance",
        action: "create",
        provoke: terminate_an_instance,
        took_effect: instance_replaced,
    },
];

fn marathon_app(id: &str) -> Value {
    reqwest::blocking::get(format!("http://127.0.30.1:8080/v2/apps{id}"))
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn edit_app(sandbox: &Sandbox, file: &str, edit: impl FnOnce(&mut Value)) {
    let path = sandbox.desired.join("apps").join(file);
    let mut app: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut app);
    std::fs::write(path, serde_json::to_string_pretty(&app).unwrap()).unwrap();
}

fn edit_cluster(sandbox: &Sandbox, edit: impl FnOnce(String) -> String) {
    let path = sandbox.desired.join("cluster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed cluster.toml");
    std::fs::write(path, edited).unwrap();
}

fn mesos_ui_instances(round: usize) -> u64 {
    if round % 2 == 0 { 2 } else { 1 }
}

fn scale_mesos_ui(sandbox: &Sandbox, round: usize) {
    edit_app(sandbox, "mesos-ui.json", |app| {
        app["instances"] = mesos_ui_instances(round).into();
    });
}

fn mesos_ui_scaled(_: &Sandbox, round: usize) -> bool {
    let app = &marathon_app("/mesos-ui")["app"];
    let wanted = mesos_ui_instances(round);
    app["instances"] == wanted && app["tasksRunning"] == wanted
}

const GITLAB: &str = "gitlab.clickcount.example.org.";

fn delete_gitlab_record(sandbox: &Sandbox, _: usize) {
    sandbox.aws(&format!(
        "rs = [r for r in r53.list_resource_record_sets(HostedZoneId=zone)['ResourceRecordSets'] if r['Name'] == '{GITLAB}' and r['Type'] == 'A'][0]\nr53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={{'Changes': [{{'Action': 'DELETE', 'ResourceRecordSet': rs}}]}})"
    ));
}

fn a_records(sandbox: &Sandbox) -> Vec<String> {
    let listed = sandbox.aws(
        "print('\\n'.join(r['Name'] for r in r53.list_resource_record_sets(HostedZoneId=zone)['ResourceRecordSets'] if r['Type'] == 'A'))",
    );
    listed.lines().map(str::to_owned).collect()
}

fn gitlab_record_back(sandbox: &Sandbox, _: usize) -> bool {
    a_records(sandbox).iter().any(|name| name == GITLAB)
}

fn admitted_cidr(round: usize) -> String {
    format!("203.0.113.{}/32", round + 1)
}

fn admit_another_cidr(sandbox: &Sandbox, round: usize) {
    edit_cluster(sandbox, |text| {
        text.replace(
            "admin_cidrs = [\"198.51.100.0/24\"",
            &format!(
                "admin_cidrs = [\"198.51.100.0/24\", \"{}\"",
                admitted_cidr(round)
            ),
        )
    });
}

fn group_cidrs(sandbox: &Sandbox) -> String {
    sandbox.aws(
        "g = ec2.describe_security_groups(Filters=[{'Name': 'tag:converged:cluster', 'Values': ['clickcount']}])['SecurityGroups']\nprint(len(g), sorted(r['CidrIp'] for x in g for p in x['IpPermissions'] for r in p.get('IpRanges', [])))",
    )
}

fn cidr_admitted(sandbox: &Sandbox, round: usize) -> bool {
    group_cidrs(sandbox).contains(&admitted_cidr(round))
}

/// Staging and production in turn (their Marathon is not the one the test asks).
fn marathon_host(round: usize) -> usize {
    1 + round % 2
}

fn kill_a_marathon(sandbox: &Sandbox, round: usize) {
    let host = marathon_host(round);
    let pids = sandbox.service_processes(host, "marathon");
    assert_eq!(pids.len(), 1, "one Marathon on host {host}: {pids:?}");
    let status = Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the Marathon process gone", Duration::from_secs(10), || {
        sandbox
            .service_processes(host, "marathon")
            .is_empty()
            .then_some(())
    });
}

fn marathon_back(sandbox: &Sandbox, round: usize) -> bool {
    sandbox
        .service_processes(marathon_host(round), "marathon")
        .len()
        == 1
}

fn max_client_connections(round: usize) -> usize {
    61 + round
}

fn change_zookeeper_config(sandbox: &Sandbox, round: usize) {
    edit_cluster(sandbox, |text| {
        let setting = format!(
            "ZOOCFG_maxClientCnxns = \"{}\"",
            max_client_connections(round)
        );
        match text.find("ZOOCFG_maxClientCnxns = \"") {
            Some(start) => {
                let end = start + text[start..].find(" }").unwrap();
                format!("{}{setting}{}", &text[..start], &text[end..])
            }
            None => text.replace(
                "ZOOCFG_syncLimit = \"10\"",
                &format!("ZOOCFG_syncLimit = \"10\", {setting}"),
            ),
        }
    });
}

fn zookeeper_config_rolled(sandbox: &Sandbox, round: usize) -> bool {
    let line = format!("maxClientCnxns={}", max_client_connections(round));
    (0..HOSTS.len()).all(|host| {
        std::fs::read_to_string(sandbox.hosts.path(host, "zookeeper/zoo.cfg"))
            .is_ok_and(|cfg| cfg.lines().any(|l| l.trim() == line))
    }) && zookeeper_modes().iter().filter(|m| *m == "leader").count() == 1
}

fn zookeeper_modes() -> Vec<String> {
    HOSTS
        .iter()
        .filter_map(|(_, ip)| {
            let reply =
                converged_testkit::four_letter(format!("{ip}:2181").parse().ok()?, "srvr").ok()?;
            srvr_mode(&reply).map(str::to_owned)
        })
        .collect()
}

/// `node instance-id` of every live instance of the cluster.
fn live_instances(sandbox: &Sandbox) -> Vec<(String, String)> {
    let listed = sandbox.aws(
        "r = ec2.describe_instances(Filters=[{'Name': 'tag:converged:cluster', 'Values': ['clickcount']}])\nfor res in r['Reservations']:\n  for i in res['Instances']:\n    if i['State']['Name'] not in ('terminated', 'shutting-down'):\n      print([t['Value'] for t in i['Tags'] if t['Key'] == 'converged:node'][0], i['InstanceId'])",
    );
    listed
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(node, id)| (node.to_owned(), id.to_owned()))
        .collect()
}

fn instance_node(round: usize) -> &'static str {
    HOSTS[1 + round % 2].0
}

fn terminate_an_instance(sandbox: &Sandbox, round: usize) {
    let node = instance_node(round);
    let (_, id) = live_instances(sandbox)
        .into_iter()
        .find(|(n, _)| n == node)
        .expect("the node's instance");
    sandbox.aws(&format!("ec2.terminate_instances(InstanceIds=['{id}'])"));
    std::fs::write(terminated_marker(sandbox), id).unwrap();
}

fn terminated_marker(sandbox: &Sandbox) -> PathBuf {
    sandbox.work.path().join("terminated-instance")
}

fn instance_replaced(sandbox: &Sandbox, round: usize) -> bool {
    let terminated = std::fs::read_to_string(terminated_marker(sandbox)).unwrap_or_default();
    live_instances(sandbox)
        .iter()
        .any(|(node, id)| node == instance_node(round) && *id != terminated)
}

/// Duplicates and losses across every kind, with what they were.
#[derive(Debug, Default)]
struct Inventory {
    duplicates: Vec<String>,
    lost: Vec<String>,
}

impl Inventory {
    fn count(&mut self, what: String, found: usize) {
        match found {
            0 => self.lost.push(what),
            1 => {}
            _ => self.duplicates.push(format!("{what} ×{found}")),
        }
    }
}

fn inventory(sandbox: &Sandbox, zookeeper_ids: &[String]) -> Inventory {
    let mut inventory = Inventory::default();
    let instances = live_instances(sandbox);
    for (node, _) in HOSTS {
        let found = instances.iter().filter(|(n, _)| n == node).count();
        inventory.count(format!("instance of {node}"), found);
    }
    let groups: usize = group_cidrs(sandbox)
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    inventory.count("security group".into(), groups);
    let records = a_records(sandbox);
    for name in RECORDS {
        let found = records.iter().filter(|r| *r == name).count();
        inventory.count(format!("A record {name}"), found);
    }
    let apps = reqwest::blocking::get("http://127.0.30.1:8080/v2/apps")
        .and_then(|r| r.json::<Value>())
        .unwrap_or(Value::Null);
    let apps = apps["apps"].as_array().cloned().unwrap_or_default();
    for id in APPS {
        let found: Vec<&Value> = apps.iter().filter(|a| a["id"] == id).collect();
        inventory.count(format!("app {id}"), found.len());
        if let Some(app) = found.first() {
            let running = app["tasksRunning"].as_u64().unwrap_or(0)
                + app["tasksStaged"].as_u64().unwrap_or(0);
            if running > app["instances"].as_u64().unwrap_or(0) {
                inventory.duplicates.push(format!(
                    "app {id}: {running} tasks for {}",
                    app["instances"]
                ));
            }
        }
    }
    for (host, (node, _)) in HOSTS.iter().enumerate() {
        for service in SERVICES {
            let found = sandbox.service_processes(host, service).len();
            inventory.count(format!("{service} process on {node}"), found);
        }
        let id = std::fs::read_to_string(sandbox.hosts.path(host, "zookeeper/data/myid"))
            .map(|id| id.trim().to_owned())
            .unwrap_or_default();
        if id != zookeeper_ids[host] {
            inventory.lost.push(format!(
                "ZooKeeper id of {node}: {id:?}, was {:?}",
                zookeeper_ids[host]
            ));
        }
    }
    inventory
}

fn audit_lines(path: &Path, from: usize) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(from..).unwrap_or_default())
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("a torn audit line {line:?}: {err}"))
        })
        .collect()
}

#[test]
fn sigkill_at_every_action_boundary_neither_duplicates_nor_loses_anything() {
    let started = Instant::now();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut sandbox = Sandbox::start(
        &workspace,
        Path::new(env!("CARGO_BIN_EXE_converged")),
        &sim_binary(),
    );
    sandbox.wait_for("all in sync", CONVERGE, all_in_sync);
    let zookeeper_ids: Vec<String> = (0..HOSTS.len())
        .map(|host| {
            std::fs::read_to_string(sandbox.hosts.path(host, "zookeeper/data/myid"))
                .expect("a ZooKeeper id")
                .trim()
                .to_owned()
        })
        .collect();
    let audit = sandbox.state_dir().join("audit.jsonl");
    println!(
        "faults: sandbox up and converged in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    for case in &CASES {
        for (round, point) in POINTS.iter().enumerate() {
            let spec = format!("{}:{}:{point}", case.kind, case.action);
            assert_eq!(sandbox.stop_daemon(), Some(0), "{spec}: SIGTERM drains");
            (case.provoke)(&sandbox, round);
            let audit_from = std::fs::metadata(&audit).map_or(0, |m| m.len() as usize);
            let log_from = sandbox.log_len();
            sandbox.start_daemon_with(&[(FAULT, &spec)]);
            sandbox.wait_for_log(log_from, &format!("{REACHED} {spec}"), REACH);
            sandbox.kill_daemon();
            let killed = Instant::now();

            // What the audit log says of the cut-off action.
            let before = audit_lines(&audit, audit_from);
            let attempt = before
                .iter()
                .rposition(|l| {
                    l["event"] == "attempt" && l["kind"] == case.kind && l["action"] == case.action
                })
                .unwrap_or_else(|| panic!("{spec}: no attempt in the audit log: {before:#?}"));
            let resource = before[attempt]["resource"].clone();
            let outcome = before[attempt..]
                .iter()
                .any(|l| l["event"] == "outcome" && l["resource"] == resource);
            assert_eq!(
                outcome,
                *point == "after_audit",
                "{spec}: the outcome is in the log exactly when the kill came after it: {before:#?}"
            );

            let audit_after_kill = std::fs::metadata(&audit).map_or(0, |m| m.len() as usize);
            sandbox.start_daemon();
            let status = sandbox.wait_for(&format!("converged after {spec}"), RECOVER, |s| {
                all_in_sync(s) && (case.took_effect)(&sandbox, round)
            });
            let converged_after = killed.elapsed().as_secs_f64();
            let after = audit_lines(&audit, audit_after_kill);
            let noted = after
                .iter()
                .any(|l| l["event"] == "interrupted" && l["resource"] == resource);
            assert_eq!(
                noted,
                *point != "after_audit",
                "{spec}: the restart notes the cut-off action as interrupted: {after:#?}"
            );
            let found = inventory(&sandbox, &zookeeper_ids);
            println!(
                "fault: kill@{point} kind={} action={} converged_after={converged_after:.1}s duplicates={} lost={}",
                case.kind,
                case.action,
                found.duplicates.len(),
                found.lost.len()
            );
            assert!(
                found.duplicates.is_empty() && found.lost.is_empty(),
                "{spec}: {found:#?}\n/status: {status:#}"
            );
        }
    }
    println!(
        "faults: {} SIGKILL cases in {:.1}s",
        CASES.len() * POINTS.len(),
        started.elapsed().as_secs_f64()
    );
}

/// One app on the simulator, managed by `converged run` whose state directory is a tmpfs of
/// its own mount namespace (`unshare -m`): the mount goes away with the daemon whatever
/// happens to the test. The test reaches the tmpfs through `/proc/<pid>/root`.
struct SmallDisk {
    _master: SimProcess,
    _agent: SimProcess,
    marathon: SimProcess,
    dir: tempfile::TempDir,
    base_url: String,
    daemon: Child,
}

impl SmallDisk {
    /// The state directory starts full: a filler file takes all of its 512 KiB.
    fn start() -> Self {
        let master = SimProcess::mesos_master("127.0.0.1:0", &[]);
        let agent = SimProcess::mesos_agent(
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
        std::fs::write(desired.join("cluster.toml"), "[cluster]\nname = \"disk\"\n").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let port = free_port("127.0.0.1");
        let config = dir.path().join("converged.toml");
        std::fs::write(
            &config,
            format!(
                "desired_state = {desired:?}\nstate_dir = {state:?}\nresync_interval = \"2s\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[marathon]\nurl = \"{}\"\n",
                marathon.url
            ),
        )
        .unwrap();
        write_web_app(&desired, 1);
        let log = std::fs::File::create(dir.path().join("converged.log")).unwrap();
        let daemon = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=512k converged-test \"$0\" || exit 97; head -c 1048576 /dev/zero > \"$0/filler\" 2>/dev/null; exec \"$@\"")
            .arg(&state)
            .arg(env!("CARGO_BIN_EXE_converged"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("unshare runs (util-linux)");
        SmallDisk {
            _master: master,
            _agent: agent,
            marathon,
            base_url: format!("http://127.0.0.1:{port}"),
            daemon,
            dir,
        }
    }

    fn set_instances(&self, instances: u32) {
        write_web_app(&self.dir.path().join("desired"), instances);
    }

    /// A path in the daemon's state directory as the daemon sees it (on its tmpfs).
    fn state(&self, name: &str) -> PathBuf {
        let state = self.dir.path().join("state").join(name);
        Path::new(&format!("/proc/{}/root", self.daemon.id()))
            .join(state.strip_prefix("/").unwrap())
    }

    fn status(&self) -> Option<Value> {
        reqwest::blocking::get(format!("{}/status", self.base_url))
            .ok()?
            .json()
            .ok()
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::blocking::get(format!("{}/metrics", self.base_url))
            .ok()?
            .text()
            .ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    fn web(&self) -> Value {
        let status = self.status().unwrap_or_default();
        status["resources"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["name"] == "/web").cloned())
            .unwrap_or_default()
    }

    fn marathon_instances(&self) -> Option<u64> {
        let app: Value = reqwest::blocking::get(format!("{}/v2/apps/web", self.marathon.url))
            .ok()?
            .json()
            .ok()?;
        app["app"]["instances"].as_u64()
    }

    /// Duplicates and losses of the one app: more tasks than instances, or no app.
    fn inventory(&self) -> Inventory {
        let apps: Value = reqwest::blocking::get(format!("{}/v2/apps", self.marathon.url))
            .and_then(|r| r.json())
            .unwrap_or_default();
        let mut inventory = Inventory::default();
        let apps = apps["apps"].as_array().cloned().unwrap_or_default();
        let web: Vec<&Value> = apps.iter().filter(|app| app["id"] == "/web").collect();
        inventory.count("app /web".into(), web.len());
        for app in web {
            let tasks = app["tasksRunning"].as_u64().unwrap_or(0)
                + app["tasksStaged"].as_u64().unwrap_or(0);
            if tasks > app["instances"].as_u64().unwrap_or(0) {
                inventory.duplicates.push(format!("/web: {tasks} tasks"));
            }
        }
        inventory
    }

    fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) {
        wait_for(what, Duration::from_secs(60), || done(self).then_some(()));
    }

    /// The refusal as `/status` and the metrics show it, with `error` in the audit's error.
    fn assert_refusing(&self, error: &str) {
        self.wait("the refusal reported", |s| {
            s.status()
                .is_some_and(|status| status["audit"]["writable"] == false)
                && s.web()["condition"] == "failed"
        });
        let status = self.status().unwrap();
        let reason = self.web()["reason"].as_str().unwrap_or_default().to_owned();
        assert!(reason.contains("not attempted"), "{reason}");
        let audit = &status["audit"];
        assert!(
            audit["error"].as_str().unwrap_or_default().contains(error),
            "{audit:#}"
        );
        assert_eq!(self.metric("converged_audit_log_writable"), Some(0.0));
        assert!(
            self.metric("converged_audit_write_failures_total{event=\"attempt\"}")
                .is_some_and(|n| n >= 1.0)
        );
    }

    fn assert_resumed(&self, instances: u64) {
        self.wait("acting again", |s| {
            s.web()["condition"] == "in_sync" && s.marathon_instances() == Some(instances)
        });
        assert_eq!(self.status().unwrap()["audit"]["writable"], true);
        assert_eq!(self.metric("converged_audit_log_writable"), Some(1.0));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("converged.log")).unwrap_or_default()
    }
}

fn write_web_app(desired: &Path, instances: u32) {
    std::fs::write(
        desired.join("apps/web.json"),
        format!(
            r#"{{"id": "/web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "instances": {instances}}}"#
        ),
    )
    .unwrap();
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn a_full_state_dir_or_an_unwritable_audit_log_stops_acting_until_converged_can_record() {
    let small = SmallDisk::start();

    // Disk full from the start: nothing is created, and it says why.
    small.assert_refusing("No space left on device");
    assert_eq!(
        small.marathon_instances(),
        None,
        "no app created unrecorded:\n{}",
        small.log()
    );
    std::fs::remove_file(small.state("filler")).unwrap();
    let freed = Instant::now();
    small.assert_resumed(1);
    let found = small.inventory();
    println!(
        "fault: disk_full kind=marathon_app recovered_after={:.1}s duplicates={} lost={}",
        freed.elapsed().as_secs_f64(),
        found.duplicates.len(),
        found.lost.len()
    );
    assert!(
        found.duplicates.is_empty() && found.lost.is_empty(),
        "{found:#?}"
    );

    // The audit log replaced by a directory while running: the next attempt is refused.
    std::fs::rename(small.state("audit.jsonl"), small.state("audit.saved")).unwrap();
    std::fs::create_dir(small.state("audit.jsonl")).unwrap();
    small.set_instances(2);
    small.assert_refusing("Is a directory");
    assert_eq!(small.marathon_instances(), Some(1), "not scaled unrecorded");
    std::fs::remove_dir(small.state("audit.jsonl")).unwrap();
    std::fs::rename(small.state("audit.saved"), small.state("audit.jsonl")).unwrap();
    let restored = Instant::now();
    small.assert_resumed(2);
    let found = small.inventory();
    println!(
        "fault: audit_unwritable kind=marathon_app recovered_after={:.1}s duplicates={} lost={}",
        restored.elapsed().as_secs_f64(),
        found.duplicates.len(),
        found.lost.len()
    );
    assert!(
        found.duplicates.is_empty() && found.lost.is_empty(),
        "{found:#?}"
    );

    // Nothing half-written: every line whole, each attempt followed by its outcome.
    let lines = audit_lines(&small.state("audit.jsonl"), 0);
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["event"].as_str().unwrap(), l["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("attempt", "create"),
            ("outcome", "create"),
            ("attempt", "scale"),
            ("outcome", "scale")
        ],
        "{lines:#?}"
    );
}
