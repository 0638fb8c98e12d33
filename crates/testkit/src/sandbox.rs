//! The whole example cluster on one machine, for the sandbox and the end-to-end tests: moto
//! (EC2, Route 53) prepared with the network and zone the example expects, three SSH test
//! hosts, a copy of `desired-state/` whose services run as plain processes (ZooKeeper from
//! Debian's jar, Mesos and Marathon from `converged-sim`), a daemon configuration, and
//! `converged run` as a child process. Dropping it stops everything it started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::{Moto, python};
use crate::{HostOptions, TestHosts, free_port};

pub const HOSTS: [(&str, &str); 3] = [
    ("services", "127.0.30.1"),
    ("staging", "127.0.30.2"),
    ("production", "127.0.30.3"),
];
const ALLOWED: &str = "127.0.30.0/24";
const JARS: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";
/// Environment of the daemon: fake credentials for moto, the secrets the example apps refer to.
const DAEMON_ENV: [(&str, &str); 5] = [
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_ACCESS_KEY_ID", "sandbox"),
    ("AWS_SECRET_ACCESS_KEY", "sandbox"),
    ("GITLAB_ROOT_PASSWORD", "sandbox-root-password"),
    ("GITLAB_RUNNER_TOKEN", "sandbox-runner-token"),
];

/// Creates what the example cluster expects to exist already: a VPC, a subnet, the key pair and
/// the hosted zone. Prints `vpc subnet`.
const PREPARE_AWS: &str = r#"
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="eu-west-1", aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
ec2 = boto3.client("ec2", **kw)
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
ec2.create_key_pair(KeyName="clickcount-admin")
boto3.client("route53", **kw).create_hosted_zone(Name="clickcount.example.org.", CallerReference="sandbox")
print(vpc, subnet)
"#;

/// Creates the VPC, subnet, key pair and hosted zone the example expects in the moto at `url`;
/// returns the VPC and subnet ids.
pub fn prepare_moto(url: &str) -> (String, String) {
    let prepared = Command::new(python())
        .args(["-c", PREPARE_AWS, url])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("python runs");
    assert!(
        prepared.status.success(),
        "preparing moto failed: {}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let ids = String::from_utf8_lossy(&prepared.stdout).trim().to_owned();
    let (vpc, subnet) = ids.split_once(' ').expect("a vpc and a subnet id");
    (vpc.to_owned(), subnet.to_owned())
}

/// A running sandbox. Fields are public so tests can reach every peer.
pub struct Sandbox {
    pub moto: Moto,
    pub hosts: TestHosts,
    pub work: tempfile::TempDir,
    pub desired: PathBuf,
    pub config: PathBuf,
    pub base_url: String,
    converged: PathBuf,
    daemon: Option<Child>,
}

impl Sandbox {
    /// Starts every peer and `converged run`; panics when a peer is missing.
    pub fn start(workspace: &Path, converged: &Path, sim: &Path) -> Sandbox {
        for (path, hint) in [
            (converged, "cargo build -p converged"),
            (sim, "cargo build -p converged-sim"),
            (
                Path::new("/usr/share/java/zookeeper.jar"),
                "apt-get install zookeeper",
            ),
        ] {
            assert!(path.exists(), "{} is missing: {hint}", path.display());
        }
        let work = tempfile::Builder::new()
            .prefix("converged-sandbox-")
            .tempdir()
            .expect("a temporary directory");
        let moto = Moto::start();
        let (vpc, subnet) = prepare_moto(&moto.url);
        let (vpc, subnet) = (vpc.as_str(), subnet.as_str());
        let hosts = TestHosts::start(&HOSTS, &HostOptions::default());
        let desired = work.path().join("desired-state");
        write_desired_state(workspace, &desired, vpc, subnet, sim, work.path());
        let (config, port) = write_config(work.path(), &desired, &moto.url, &hosts);
        let mut sandbox = Sandbox {
            moto,
            hosts,
            work,
            desired,
            config,
            base_url: format!("http://127.0.0.1:{port}"),
            converged: converged.to_owned(),
            daemon: None,
        };
        sandbox.start_daemon();
        sandbox
    }

    /// Starts `converged run` (again); its log is appended to `converged.log`.
    pub fn start_daemon(&mut self) {
        self.start_daemon_with(&[]);
    }

    /// Starts `converged run` (again) with more environment, e.g. an armed test fault.
    pub fn start_daemon_with(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("a log file");
        let child = Command::new(&self.converged)
            .args(["run", "--config", self.config.to_str().unwrap_or_default()])
            .envs(DAEMON_ENV)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("converged starts");
        self.daemon = Some(child);
    }

    /// Kills the daemon with SIGKILL (no drain, no destructor runs) and reaps it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The daemon's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.work.path().join("state")
    }

    /// How much the daemon has logged so far, to wait for what it logs after.
    pub fn log_len(&self) -> usize {
        std::fs::metadata(self.log_path()).map_or(0, |m| m.len() as usize)
    }

    /// Waits until the log, after its first `from` bytes, has a line containing `needle`;
    /// panics with the log's tail after `timeout`.
    pub fn wait_for_log(&self, from: usize, needle: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let log = std::fs::read(self.log_path()).unwrap_or_default();
            let new = String::from_utf8_lossy(log.get(from..).unwrap_or_default());
            if new.contains(needle) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "no {needle:?} in the daemon's log after {timeout:?}; log tail:\n{}",
                tail(&new, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a Python snippet against moto itself (never through a proxy) with `json`, `ec2`,
    /// `r53` (boto3 clients) and `zone` (the hosted zone's id) defined; returns what it printed.
    pub fn aws(&self, script: &str) -> String {
        let prelude = "import sys, json, boto3\nkw = dict(endpoint_url=sys.argv[1], region_name='eu-west-1', aws_access_key_id='t', aws_secret_access_key='t')\nec2 = boto3.client('ec2', **kw)\nr53 = boto3.client('route53', **kw)\nzone = r53.list_hosted_zones()['HostedZones'][0]['Id']\n";
        let output = Command::new(python())
            .args(["-c", &format!("{prelude}{script}"), &self.moto.url])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The live processes of `service` on host `host` (an index into [`HOSTS`]): those whose
    /// working directory is the service's directory and whose program is the service's
    /// (java or the simulator), not a shell passing through.
    pub fn service_processes(&self, host: usize, service: &str) -> Vec<u32> {
        use std::os::unix::fs::MetadataExt;
        let Ok(dir) = std::fs::metadata(self.hosts.path(host, service)) else {
            return Vec::new();
        };
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let same_dir = std::fs::metadata(entry.path().join("cwd"))
                .is_ok_and(|cwd| cwd.dev() == dir.dev() && cwd.ino() == dir.ino());
            let program = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
            let name = program.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if same_dir && (name == "java" || name.starts_with("converged-sim")) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit code.
    pub fn stop_daemon(&mut self) -> Option<i32> {
        let mut child = self.daemon.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        child.wait().ok().and_then(|status| status.code())
    }

    /// Runs `converged plan` on the sandbox's configuration: its exit code and output.
    pub fn plan(&self) -> (Option<i32>, String) {
        let output = Command::new(&self.converged)
            .args(["plan", "--config", self.config.to_str().unwrap_or_default()])
            .envs(DAEMON_ENV)
            .output()
            .expect("converged plan runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    }

    pub fn log_path(&self) -> PathBuf {
        self.work.path().join("converged.log")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.work.path().join("token"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// `GET /status`, or `None` while the daemon does not answer.
    pub fn status(&self) -> Option<serde_json::Value> {
        fetch_status(&self.base_url)
    }

    /// Waits until `done` holds for `/status`; panics with the last status after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        let mut last = serde_json::Value::Null;
        while started.elapsed() < timeout {
            if let Some(status) = self.status() {
                if done(&status) {
                    return status;
                }
                last = status;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "not {what} after {timeout:?}; last /status: {last:#}\nlog tail:\n{}\n{}",
            tail(
                &std::fs::read_to_string(self.log_path()).unwrap_or_default(),
                40
            ),
            self.cluster_logs()
        );
    }

    /// The tails of the Mesos and Marathon logs on every host: what the cluster did while a
    /// wait ran out.
    fn cluster_logs(&self) -> String {
        let mut out = String::new();
        for (index, (name, _)) in HOSTS.iter().enumerate() {
            for service in ["mesos-master", "marathon"] {
                let log =
                    std::fs::read_to_string(self.hosts.path(index, &format!("{service}/log")))
                        .unwrap_or_default();
                out += &format!("{name} {service} log tail:\n{}\n", tail(&log, 30));
            }
        }
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_daemon();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether every resource of all seven kinds is in sync.
pub fn all_in_sync(status: &serde_json::Value) -> bool {
    let resources = status["resources"].as_array().cloned().unwrap_or_default();
    let kinds: std::collections::BTreeSet<&str> = resources
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    kinds.len() == 7 && resources.iter().all(|r| r["condition"] == "in_sync")
}

/// The example's nodes, DNS and apps, placed in moto's network, with every service run by the
/// exec runtime and agents large enough for the example apps.
fn write_desired_state(
    workspace: &Path,
    desired: &Path,
    vpc: &str,
    subnet: &str,
    sim: &Path,
    work: &Path,
) {
    let example = workspace.join("desired-state");
    std::fs::create_dir_all(desired.join("apps")).expect("the desired-state copy");
    let secret = work.join("registry-password");
    std::fs::write(&secret, "sandbox-registry-password\n").expect("the registry secret");
    for entry in std::fs::read_dir(example.join("apps")).expect("the example apps") {
        let entry = entry.expect("an app file");
        let text = std::fs::read_to_string(entry.path()).expect("an app file");
        let text = text.replace(
            "file:/etc/converged/secrets/registry-password",
            &format!("file:{}", secret.display()),
        );
        std::fs::write(desired.join("apps").join(entry.file_name()), text).expect("an app copy");
    }
    let cluster =
        std::fs::read_to_string(example.join("cluster.toml")).expect("the example cluster");
    let (head, _) = cluster
        .split_once("[services.zookeeper]")
        .expect("the example has service specs");
    let head = head
        .replace("vpc-0a1b2c3d4e5f60718", vpc)
        .replace("subnet-0a1b2c3d4e5f60718", subnet);
    let sim = sim.display();
    let marathon_roles = crate::EXAMPLE_MARATHON_ROLES
        .iter()
        .map(|flag| format!("{flag:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let services = format!(
        r#"[services.zookeeper]
ports = [2181, 2888, 3888]
env = {{ ZOOCFG_clientPortAddress = "{{{{address}}}}", ZOOCFG_tickTime = "500", ZOOCFG_initLimit = "20", ZOOCFG_syncLimit = "10" }}
exec = {{ command = ["java", "-Xmx128m", "-XX:+UseSerialGC", "-cp", "{JARS}", "org.apache.zookeeper.server.quorum.QuorumPeerMain", "{{{{service_dir}}}}/zoo.cfg"] }}

[services.mesos-master]
ports = [5050]
exec = {{ command = ["{sim}", "mesos-master", "--listen", "{{{{address}}}}:5050", "--zk", "zk://{{{{zookeeper_connect}}}}/mesos", "--quorum", "{{{{mesos_quorum}}}}", "--zk-session-timeout", "4s"] }}

[services.mesos-agent]
ports = [5051]
exec = {{ command = ["{sim}", "mesos-agent", "--listen", "{{{{address}}}}:5051", "--master", "zk://{{{{zookeeper_connect}}}}/mesos", "--hostname", "{{{{node}}}}", "--attributes", "{{{{mesos_attributes}}}}", "--resources", "cpus:4;mem:8192;disk:50000;ports(slave_public):[80-80,8081-8081];ports(*):[31000-32000]", "--zk-session-timeout", "4s"] }}

[services.marathon]
ports = [8080]
exec = {{ command = ["{sim}", "marathon", "--listen", "{{{{address}}}}:8080", "--master", "zk://{{{{zookeeper_connect}}}}/mesos", "--zk", "zk://{{{{zookeeper_connect}}}}/marathon", "--time-scale", "0.05", "--staging-delay", "200ms", {marathon_roles}] }}

[kinds.marathon_app]
mode = "enforce"
prune = false
"#
    );
    std::fs::write(desired.join("cluster.toml"), format!("{head}{services}"))
        .expect("the sandbox cluster.toml");
}

fn write_config(work: &Path, desired: &Path, moto: &str, hosts: &TestHosts) -> (PathBuf, u16) {
    let port = free_port("127.0.0.1");
    let token = work.join("token");
    std::fs::write(&token, format!("sandbox-{}\n", std::process::id())).expect("a token file");
    let overrides: BTreeMap<&str, String> = hosts
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.ssh.to_string()))
        .collect();
    let overrides: Vec<String> = overrides
        .iter()
        .map(|(node, ssh)| format!("{node} = \"{ssh}\""))
        .collect();
    let marathons: Vec<String> = HOSTS
        .iter()
        .map(|(_, ip)| format!("http://{ip}:8080"))
        .collect();
    let config = format!(
        r#"desired_state = "{desired}"
state_dir = "{state}"
resync_interval = "10s"

[http]
listen = "127.0.0.1:{port}"
token_file = "{token}"

[log]
level = "info"

[aws]
endpoint_url = "{moto}"

[ssh]
user = "root"
key_file = "{key}"
known_hosts = "{state}/known_hosts"
address_overrides = {{ {overrides} }}
allowed_networks = ["{ALLOWED}"]
runtime = "exec"
service_root = "{root}"

[marathon]
url = "{marathons}"
"#,
        desired = desired.display(),
        state = work.join("state").display(),
        token = token.display(),
        key = hosts.key_file.display(),
        overrides = overrides.join(", "),
        root = hosts.root.display(),
        marathons = marathons.join(","),
    );
    let path = work.join("converged.toml");
    std::fs::write(&path, config).expect("the sandbox configuration");
    (path, port)
}

fn fetch_status(base: &str) -> Option<serde_json::Value> {
    reqwest::blocking::Client::new()
        .get(format!("{base}/status"))
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?
        .json()
        .ok()
}
