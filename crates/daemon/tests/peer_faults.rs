//! Peers failing under the `converged` binary: the sandbox's whole example cluster (moto, three
//! SSH test hosts running real ZooKeeper and the simulated Mesos and Marathon) with a fault
//! proxy in front of moto, of every Marathon and of every Mesos master; then one fault at a
//! time, each while a change waits to be applied through the failing peer. Every case checks
//! that nothing is duplicated or lost, that the backoff shows in `/status` and in the metrics,
//! that the kinds which do not need the failing peer stay in sync, and that the world converges
//! once the peer is back; and prints one `fault:` line for `scripts/reliability.sh` (the figures
//! are reported, never asserted against a time).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use converged_testkit::fault_proxy::{Fault, FaultProxy, Rule};
use converged_testkit::sandbox::{HOSTS, Sandbox, all_in_sync};
use converged_testkit::{sim_binary, srvr_mode};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(240);
const RECOVER: Duration = Duration::from_secs(150);
/// The longest a fault is held while waiting for the daemon to show its backoff.
const FAULT_AT_MOST: Duration = Duration::from_secs(90);
const AWS_KINDS: &[&str] = &["security_group", "instance", "dns_record"];
const HOST_KINDS: &[&str] = &["host_service", "zookeeper_ensemble", "mesos_agent"];
/// The processes of each service in the example, told apart by their command lines.
const SERVICE_COMMANDS: [(&str, &str); 4] = [
    ("zookeeper", "QuorumPeerMain"),
    ("mesos-master", " mesos-master --listen"),
    ("mesos-agent", " mesos-agent --listen"),
    ("marathon", " marathon --listen"),
];

/// The sandbox, its daemon reaching moto, Marathon and the Mesos masters only through proxies.
struct Cluster {
    sandbox: Sandbox,
    moto: FaultProxy,
    marathons: Vec<FaultProxy>,
    masters: Vec<FaultProxy>,
}

impl Cluster {
    fn start() -> Self {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut sandbox = Sandbox::start(
            &workspace,
            Path::new(env!("CARGO_BIN_EXE_converged")),
            &sim_binary(),
        );
        // The sandbox's daemon has just started and acted on nothing: restarted on the
        // proxies, it reaches every HTTP peer through a proxy from its first cycle on.
        sandbox.stop_daemon();
        let moto = FaultProxy::start("127.0.30.120:0", &sandbox.moto.url);
        let proxies = |first: u8, port: u16| -> Vec<FaultProxy> {
            HOSTS
                .iter()
                .enumerate()
                .map(|(i, (_, ip))| {
                    FaultProxy::start(
                        &format!("127.0.30.{}:0", first as usize + i),
                        &format!("http://{ip}:{port}"),
                    )
                })
                .collect()
        };
        let marathons = proxies(101, 8080);
        let masters = proxies(111, 5050);
        let urls = |proxies: &[FaultProxy]| {
            proxies
                .iter()
                .map(|p| p.url.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        let direct_marathons = HOSTS
            .iter()
            .map(|(_, ip)| format!("http://{ip}:8080"))
            .collect::<Vec<_>>()
            .join(",");
        let config = std::fs::read_to_string(&sandbox.config).expect("the sandbox configuration");
        let proxied = config
            .replace(
                &format!("endpoint_url = \"{}\"", sandbox.moto.url),
                &format!("endpoint_url = \"{}\"", moto.url),
            )
            .replace(&direct_marathons, &urls(&marathons))
            // Faults show within seconds, not at the sandbox's 10 s resync.
            .replace("resync_interval = \"10s\"", "resync_interval = \"3s\"");
        assert!(
            proxied.contains(&moto.url)
                && proxied.contains(&marathons[0].url)
                && proxied.contains("\"3s\""),
            "the sandbox configuration changed shape:\n{config}"
        );
        let proxied = format!("{proxied}\n[mesos]\nurl = \"{}\"\n", urls(&masters));
        std::fs::write(&sandbox.config, proxied).expect("the proxied configuration");
        sandbox.start_daemon();
        Cluster {
            sandbox,
            moto,
            marathons,
            masters,
        }
    }

    fn metrics(&self) -> String {
        reqwest::blocking::Client::new()
            .get(format!("{}/metrics", self.sandbox.base_url))
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// Everything a fault could duplicate or lose, read from the peers directly.
    fn world(&self) -> World {
        World {
            aws: serde_json::from_str(&self.sandbox.aws(AWS_WORLD)).expect("the AWS world as JSON"),
            apps: marathon_apps(),
            agents: mesos_agents(),
            services: (0..HOSTS.len())
                .map(|i| (HOSTS[i].0.to_owned(), service_processes(&self.sandbox, i)))
                .collect(),
        }
    }

    fn edit_app(&self, file: &str, edit: impl FnOnce(&mut Value)) {
        let path = self.sandbox.desired.join("apps").join(file);
        let mut app: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("an app file"))
                .expect("an app as JSON");
        edit(&mut app);
        std::fs::write(path, serde_json::to_string_pretty(&app).expect("JSON"))
            .expect("the edited app");
    }

    /// Deletes one of converged's A records behind its back, through moto directly.
    fn delete_record(&self, name: &str) {
        self.sandbox.aws(&format!(
                "rs = [r for r in r53.list_resource_record_sets(HostedZoneId=zone)['ResourceRecordSets'] if r['Name'] == '{name}' and r['Type'] == 'A'][0]\nr53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={{'Changes': [{{'Action': 'DELETE', 'ResourceRecordSet': rs}}]}})"
            ),
        );
    }
}

/// Live instances by node, the cluster's security groups, and the values of every A record.
const AWS_WORLD: &str = r#"
tag = [{'Name': 'tag:converged:cluster', 'Values': ['clickcount']}]
nodes = {}
for res in ec2.describe_instances(Filters=tag)['Reservations']:
    for i in res['Instances']:
        if i['State']['Name'] not in ('terminated', 'shutting-down'):
            node = [t['Value'] for t in i.get('Tags', []) if t['Key'] == 'converged:node'][0]
            nodes.setdefault(node, []).append(i['InstanceId'])
groups = {}
for g in ec2.describe_security_groups(Filters=tag)['SecurityGroups']:
    groups.setdefault(g['GroupName'], []).append(g['GroupId'])
records = {}
for r in r53.list_resource_record_sets(HostedZoneId=zone)['ResourceRecordSets']:
    if r['Type'] == 'A':
        records.setdefault(r['Name'], []).extend(v['Value'] for v in r.get('ResourceRecords', []))
print(json.dumps({'instances': nodes, 'groups': groups, 'records': records}))
"#;

#[derive(Debug, Clone, serde::Deserialize)]
struct AwsWorld {
    /// Node name → live instance ids.
    instances: BTreeMap<String, Vec<String>>,
    /// Group name → group ids.
    groups: BTreeMap<String, Vec<String>>,
    /// Record name → values.
    records: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
struct World {
    aws: AwsWorld,
    /// App id → (instances wanted, tasks running).
    apps: BTreeMap<String, (u64, u64)>,
    /// Agent hostname → active agents of that name.
    agents: BTreeMap<String, usize>,
    /// Host → service → processes running it.
    services: BTreeMap<String, BTreeMap<&'static str, usize>>,
}

impl World {
    /// How many things exist more than once (or run more tasks than wanted) that existed once
    /// in `baseline`.
    fn duplicates(&self, baseline: &World) -> usize {
        let extra = |ids: &Vec<String>| ids.len().saturating_sub(1);
        self.aws.instances.values().map(extra).sum::<usize>()
            + self.aws.groups.values().map(extra).sum::<usize>()
            + self
                .aws
                .records
                .iter()
                .map(|(name, values)| {
                    let before = baseline.aws.records.get(name).map_or(1, Vec::len);
                    values.len().saturating_sub(before)
                })
                .sum::<usize>()
            + self
                .apps
                .keys()
                .filter(|id| !baseline.apps.contains_key(*id))
                .count()
            + self
                .apps
                .values()
                .map(|(wanted, running)| running.saturating_sub(*wanted) as usize)
                .sum::<usize>()
            + self
                .agents
                .values()
                .map(|n| n.saturating_sub(1))
                .sum::<usize>()
            + self
                .services
                .values()
                .flat_map(BTreeMap::values)
                .map(|n| n.saturating_sub(1))
                .sum::<usize>()
    }

    /// How many things of `baseline` are gone (an instance replaced counts: its node's id
    /// changed; a service or agent not running; an app missing).
    fn lost(&self, baseline: &World) -> usize {
        let instances = baseline
            .aws
            .instances
            .iter()
            .filter(|(node, ids)| self.aws.instances.get(*node) != Some(ids))
            .count();
        let groups = baseline
            .aws
            .groups
            .keys()
            .filter(|name| !self.aws.groups.contains_key(*name))
            .count();
        let records = baseline
            .aws
            .records
            .iter()
            .filter(|(name, values)| self.aws.records.get(*name) != Some(values))
            .count();
        let apps = baseline
            .apps
            .keys()
            .filter(|id| !self.apps.contains_key(*id))
            .count();
        let agents = baseline
            .agents
            .keys()
            .filter(|name| self.agents.get(*name).copied().unwrap_or(0) == 0)
            .count();
        let services = baseline
            .services
            .iter()
            .flat_map(|(host, services)| services.keys().map(move |s| (host, s)))
            .filter(|(host, service)| {
                self.services
                    .get(*host)
                    .and_then(|s| s.get(*service))
                    .copied()
                    .unwrap_or(0)
                    == 0
            })
            .count();
        instances + groups + records + apps + agents + services
    }
}

fn get_json(url: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

/// The apps of the simulated Marathon, asked directly (any member answers for the leader).
fn marathon_apps() -> BTreeMap<String, (u64, u64)> {
    get_json(&format!("http://{}:8080/v2/apps", HOSTS[0].1))["apps"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|app| {
            (
                app["id"].as_str().unwrap_or_default().to_owned(),
                (
                    app["instances"].as_u64().unwrap_or(0),
                    app["tasksRunning"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// The active agents the leading Mesos master knows, by hostname.
fn mesos_agents() -> BTreeMap<String, usize> {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let leader = client
        .get(format!("http://{}:5050/master/redirect", HOSTS[0].1))
        .send()
        .ok()
        .and_then(|r| {
            r.headers()
                .get("location")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let state = get_json(&format!("http:{leader}/master/state"));
    let mut agents = BTreeMap::new();
    for agent in state["slaves"].as_array().cloned().unwrap_or_default() {
        if agent["active"] == true {
            *agents
                .entry(agent["hostname"].as_str().unwrap_or_default().to_owned())
                .or_insert(0) += 1;
        }
    }
    agents
}

/// The command lines of every process of host `i`, one a line.
fn command_lines(sandbox: &Sandbox, i: usize) -> String {
    let out = sandbox.hosts.exec(
        i,
        "for d in /proc/[0-9]*; do tr '\\0' ' ' < \"$d/cmdline\" 2>/dev/null; echo; done",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many processes run each example service on host `i`.
fn service_processes(sandbox: &Sandbox, i: usize) -> BTreeMap<&'static str, usize> {
    let lines = command_lines(sandbox, i);
    SERVICE_COMMANDS
        .iter()
        .map(|(service, pattern)| {
            (
                *service,
                lines.lines().filter(|l| l.contains(pattern)).count(),
            )
        })
        .collect()
}

fn of_kind<'a>(status: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    status["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |r| r["kind"] == kind)
}

fn kind_status<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["kinds"]
        .as_array()
        .and_then(|all| all.iter().find(|k| k["kind"] == kind))
        .unwrap_or(&Value::Null)
}

/// A retry of `kinds` is scheduled in `/status`: a kind whose observation failed, or one of its
/// resources whose action failed.
fn backoff_in_status(status: &Value, kinds: &[&str]) -> bool {
    kinds.iter().any(|kind| {
        kind_status(status, kind)["next_retry"].is_string()
            || of_kind(status, kind)
                .any(|r| r["condition"] == "failed" && r["next_retry"].is_string())
    })
}

/// Every kind but `affected`: observed without error and no resource failed or blocked (an
/// edit in flight may leave one drifted or converging for a moment).
fn unaffected(status: &Value, affected: &[&str]) -> Result<(), String> {
    let other = |v: &Value| !affected.contains(&v["kind"].as_str().unwrap_or_default());
    let resources = status["resources"].as_array().cloned().unwrap_or_default();
    if let Some(resource) = resources
        .iter()
        .find(|r| other(r) && (r["condition"] == "failed" || r["condition"] == "blocked"))
    {
        return Err(format!(
            "{} {}: {resource}",
            resource["kind"], resource["name"]
        ));
    }
    let kinds = status["kinds"].as_array().cloned().unwrap_or_default();
    if let Some(kind) = kinds
        .iter()
        .find(|k| other(k) && !k["observe_error"].is_null())
    {
        return Err(format!("kind {kind}"));
    }
    Ok(())
}

/// Whether a sample line has one of `values` for the label `key`.
fn labelled(line: &str, key: &str, values: &[&str]) -> bool {
    values
        .iter()
        .any(|value| line.contains(&format!("{key}=\"{value}\"")))
}

fn sample(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// Failed observations and actions of `kinds`, and unsuccessful requests to `services`.
fn failures_in_metrics(text: &str, kinds: &[&str], services: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            let of_kinds = (l.starts_with("converged_reconcile_total{")
                || l.starts_with("converged_actions_total{"))
                && labelled(l, "kind", kinds)
                && l.contains("result=\"error\"");
            let of_services = l.starts_with("converged_api_requests_total{")
                && labelled(l, "service", services)
                && !l.contains("outcome=\"success\"");
            of_kinds || of_services
        })
        .map(sample)
        .sum()
}

/// The resources gauge counts a resource of `kinds` that is not in sync.
fn waiting(text: &str, kinds: &[&str]) -> bool {
    text.lines()
        .filter(|l| l.starts_with("converged_resources{") && !l.contains("condition=\"in_sync\""))
        .filter(|l| labelled(l, "kind", kinds))
        .any(|l| sample(l) > 0.0)
}

/// What one case saw.
struct Outcome {
    fault: &'static str,
    kind: &'static str,
    recovered_after: Duration,
    duplicates: usize,
    lost: usize,
    backoff_in_status: bool,
    backoff_in_metrics: bool,
    /// The first time another kind was disturbed, if it was.
    others_disturbed: Option<String>,
}

impl Outcome {
    /// Prints the report line, then insists on the outcome an operator is promised.
    fn report(self) {
        let yes = |b: bool| if b { "yes" } else { "no" };
        println!(
            "fault: {} kind={} recovered_after={:.1}s duplicates={} lost={} backoff_seen={} others_unaffected={}",
            self.fault,
            self.kind,
            self.recovered_after.as_secs_f64(),
            self.duplicates,
            self.lost,
            yes(self.backoff_in_status && self.backoff_in_metrics),
            yes(self.others_disturbed.is_none()),
        );
        assert_eq!(self.duplicates, 0, "{}: duplicates", self.fault);
        assert_eq!(self.lost, 0, "{}: lost", self.fault);
        assert!(
            self.backoff_in_status,
            "{}: no retry in /status",
            self.fault
        );
        assert!(
            self.backoff_in_metrics,
            "{}: no failure in the metrics",
            self.fault
        );
        assert!(
            self.others_disturbed.is_none(),
            "{}: another kind was disturbed: {:?}",
            self.fault,
            self.others_disturbed
        );
    }
}

/// One fault case: which kinds may suffer from it and through which API services.
struct Case {
    fault: &'static str,
    kind: &'static str,
    affected: &'static [&'static str],
    services: &'static [&'static str],
    /// The fault is held at least this long (past the timeout it is about).
    at_least: Duration,
    /// And at most this long, waiting for `/status` to show the daemon holding back.
    at_most: Duration,
    /// What shows the daemon holding back in `/status` (by default a scheduled retry).
    held: fn(&Value, &[&str]) -> bool,
    /// The daemon's own requests fail (so the failure counters rise); when the peer fails on
    /// its own, the metrics show the affected kinds waiting instead.
    requests_fail: bool,
}

impl Case {
    fn new(fault: &'static str, kind: &'static str, affected: &'static [&'static str]) -> Self {
        Case {
            fault,
            kind,
            affected,
            services: &[],
            at_least: Duration::from_secs(6),
            at_most: FAULT_AT_MOST,
            held: backoff_in_status,
            requests_fail: true,
        }
    }

    fn services(mut self, services: &'static [&'static str]) -> Self {
        self.services = services;
        self
    }

    fn at_least(mut self, at_least: Duration) -> Self {
        self.at_least = at_least;
        self
    }

    fn at_most(mut self, at_most: Duration) -> Self {
        self.at_most = at_most;
        self
    }

    /// `inject`s the fault, holds it until `/status` shows the daemon holding back (at least
    /// `at_least`), `clear`s it (which may report a disturbance seen at the end of the fault),
    /// then waits until the whole world is in sync and `done` holds.
    fn run(
        self,
        cluster: &mut Cluster,
        inject: impl FnOnce(&mut Cluster),
        clear: impl FnOnce(&mut Cluster) -> Option<String>,
        done: impl Fn(&Cluster) -> bool,
    ) -> Outcome {
        let baseline = cluster.world();
        let failures_before = failures_in_metrics(&cluster.metrics(), self.affected, self.services);
        inject(cluster);
        let injected = Instant::now();
        let mut backoff = false;
        let mut others_disturbed = None;
        let mut waiting_in_metrics = false;
        while injected.elapsed() < self.at_most && !(backoff && injected.elapsed() >= self.at_least)
        {
            if let Some(status) = cluster.sandbox.status() {
                backoff |= (self.held)(&status, self.affected);
                if others_disturbed.is_none() {
                    others_disturbed = unaffected(&status, self.affected).err();
                }
            }
            waiting_in_metrics |= waiting(&cluster.metrics(), self.affected);
            std::thread::sleep(Duration::from_millis(250));
        }
        let backoff_in_metrics = if self.requests_fail {
            failures_in_metrics(&cluster.metrics(), self.affected, self.services) > failures_before
        } else {
            waiting_in_metrics
        };
        let at_the_end = clear(cluster);
        others_disturbed = others_disturbed.or(at_the_end);
        let cleared = Instant::now();
        let cluster: &Cluster = cluster;
        cluster
            .sandbox
            .wait_for(&format!("recovered from {}", self.fault), RECOVER, |s| {
                all_in_sync(s) && done(cluster)
            });
        let recovered_after = cleared.elapsed();
        let after = settled_world(cluster, &baseline);
        Outcome {
            fault: self.fault,
            kind: self.kind,
            recovered_after,
            duplicates: after.duplicates(&baseline),
            lost: after.lost(&baseline),
            backoff_in_status: backoff,
            backoff_in_metrics,
            others_disturbed,
        }
    }
}

/// The world once Marathon's tasks match what was asked (a scale takes a moment after the
/// app is in sync), for at most 30 s.
fn settled_world(cluster: &Cluster, baseline: &World) -> World {
    let started = Instant::now();
    loop {
        let world = cluster.world();
        let settled = world
            .apps
            .values()
            .all(|(wanted, running)| wanted == running)
            && world.duplicates(baseline) == 0
            && world.lost(baseline) == 0;
        if settled || started.elapsed() > Duration::from_secs(30) {
            return world;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Marathon asks for `wanted` instances of `app`.
fn scaled(app: &str, wanted: u64) -> bool {
    marathon_apps().get(app).map(|(instances, _)| *instances) == Some(wanted)
}

/// Each of `records` is back in Route 53 (asked of moto directly).
fn restored(cluster: &Cluster, records: &[&str]) -> bool {
    let world: AwsWorld = serde_json::from_str(&cluster.sandbox.aws(AWS_WORLD)).expect("JSON");
    records.iter().all(|r| world.records.contains_key(*r))
}

/// EC2's and Route 53's own error documents, so the SDK classifies the answer as AWS would.
fn aws_errors(status: u16, ec2_code: &str, route53_code: &str) -> Vec<Rule> {
    vec![
        Rule {
            path_prefix: "/2013-04-01/",
            fault: Fault::Answer {
                status: if route53_code == "Throttling" {
                    400
                } else {
                    status
                },
                content_type: "text/xml",
                body: format!(
                    "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{route53_code}</Code><Message>injected</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
                ),
            },
        },
        Rule::all(Fault::Answer {
            status,
            content_type: "text/xml",
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{ec2_code}</Code><Message>injected</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
            ),
        }),
    ]
}

/// Sends `signal` to `pids` inside host `i`.
fn signal(cluster: &Cluster, i: usize, signal: &str, pids: &str) {
    let out = cluster
        .sandbox
        .hosts
        .exec(i, &format!("kill -{signal} {pids}"));
    assert!(
        out.status.success(),
        "kill -{signal} {pids}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The index of the ZooKeeper member that leads, asked with `srvr`.
fn zookeeper_leader() -> Option<usize> {
    HOSTS.iter().position(|(_, ip)| {
        converged_testkit::four_letter(format!("{ip}:2181").parse().expect("an address"), "srvr")
            .ok()
            .is_some_and(|reply| srvr_mode(&reply) == Some("leader"))
    })
}

fn ensemble_serves() -> bool {
    let modes: Vec<Option<String>> = HOSTS
        .iter()
        .map(|(_, ip)| {
            converged_testkit::four_letter(
                format!("{ip}:2181").parse().expect("an address"),
                "srvr",
            )
            .ok()
            .and_then(|reply| srvr_mode(&reply).map(str::to_owned))
        })
        .collect();
    modes
        .iter()
        .filter(|m| m.as_deref() == Some("leader"))
        .count()
        == 1
        && modes
            .iter()
            .filter(|m| m.as_deref() == Some("follower"))
            .count()
            == 2
}

/// The agents' kind does not retry an observation when no master answers: its agents wait,
/// converging, until a master can be read again (it must not restart an agent it cannot see).
fn agents_wait_for_the_masters(status: &Value, _: &[&str]) -> bool {
    of_kind(status, "mesos_agent").any(|r| {
        r["condition"] == "converging"
            && r["reason"].as_str().is_some_and(|reason| {
                reason.contains("the masters cannot be read")
                    || reason.contains("no leading master")
            })
    })
}

/// The ensemble waits for a member that is down before it restarts the next.
fn roll_waits(status: &Value, _: &[&str]) -> bool {
    of_kind(status, "zookeeper_ensemble").any(|r| {
        r["condition"] == "converging"
            && r["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("not running") || reason.contains("waiting"))
    })
}

fn set_all(proxies: &[FaultProxy], rules: Vec<Rule>) {
    for proxy in proxies {
        proxy.set(rules.clone());
    }
}

fn clear_all(proxies: &[FaultProxy]) -> Option<String> {
    for proxy in proxies {
        proxy.clear();
    }
    None
}

fn scale(cluster: &Cluster, file: &str, instances: u64) {
    cluster.edit_app(file, |app| app["instances"] = instances.into());
}

const MESOS_UI: (&str, &str) = ("mesos-ui.json", "/mesos-ui");

#[test]
fn every_peer_failing_for_a_while_duplicates_and_loses_nothing_and_heals() {
    let mut cluster = Cluster::start();
    cluster
        .sandbox
        .wait_for("the example cluster in sync", CONVERGE, all_in_sync);
    let (ui_file, ui) = MESOS_UI;

    // moto throttles every request (EC2 503 RequestLimitExceeded, Route 53 Throttling) while
    // a deleted record waits to be restored.
    let record = "gitlab.clickcount.example.org.";
    Case::new("moto_throttling", "dns_record", AWS_KINDS)
        .services(&["ec2", "route53"])
        .run(
            &mut cluster,
            |c| {
                c.moto
                    .set(aws_errors(503, "RequestLimitExceeded", "Throttling"));
                c.delete_record(record);
            },
            |c| {
                c.moto.clear();
                None
            },
            |c| restored(c, &[record]),
        )
        .report();

    // moto fails every request with a 500 (InternalError, InternalFailure).
    let record = "traefik.clickcount.example.org.";
    Case::new("moto_500", "dns_record", AWS_KINDS)
        .services(&["ec2", "route53"])
        .run(
            &mut cluster,
            |c| {
                c.moto
                    .set(aws_errors(500, "InternalError", "InternalFailure"));
                c.delete_record(record);
            },
            |c| {
                c.moto.clear();
                None
            },
            |c| restored(c, &[record]),
        )
        .report();

    // Every Marathon answers 503 while an app waits to be scaled.
    Case::new("marathon_503", "marathon_app", &["marathon_app"])
        .services(&["marathon"])
        .run(
            &mut cluster,
            |c| {
                set_all(&c.marathons, vec![Rule::all(Fault::status(503))]);
                scale(c, ui_file, 2);
            },
            |c| clear_all(&c.marathons),
            |_| scaled(ui, 2),
        )
        .report();

    // Every Marathon down (connections refused) while the app waits to be scaled back.
    Case::new("marathon_down", "marathon_app", &["marathon_app"])
        .services(&["marathon"])
        .run(
            &mut cluster,
            |c| {
                c.marathons.iter_mut().for_each(FaultProxy::down);
                scale(c, ui_file, 1);
            },
            |c| {
                c.marathons.iter_mut().for_each(FaultProxy::up);
                None
            },
            |_| scaled(ui, 1),
        )
        .report();

    // Every Mesos master answers 503, then every one is down: the agents' kind cannot tell
    // which agents run and must not restart any.
    Case {
        held: agents_wait_for_the_masters,
        ..Case::new("mesos_master_503", "mesos_agent", &["mesos_agent"]).services(&["mesos"])
    }
    .run(
        &mut cluster,
        |c| set_all(&c.masters, vec![Rule::all(Fault::status(503))]),
        |c| clear_all(&c.masters),
        |_| true,
    )
    .report();
    Case {
        held: agents_wait_for_the_masters,
        ..Case::new("mesos_master_down", "mesos_agent", &["mesos_agent"]).services(&["mesos"])
    }
    .run(
        &mut cluster,
        |c| c.masters.iter_mut().for_each(FaultProxy::down),
        |c| {
            c.masters.iter_mut().for_each(FaultProxy::up);
            None
        },
        |_| true,
    )
    .report();

    // Every HTTP peer answers, but only after the client's timeout (moto 30 s, Marathon 15 s,
    // Mesos 5 s), and only after acting: a retried write must not act twice.
    let record = "mesos.clickcount.example.org.";
    Case::new(
        "slow_past_timeouts",
        "all_http",
        &[
            "security_group",
            "instance",
            "dns_record",
            "marathon_app",
            "mesos_agent",
        ],
    )
    .services(&["ec2", "route53", "marathon", "mesos"])
    .at_least(Duration::from_secs(35))
    // A cycle publishes its status once every kind is observed, and converged sends an
    // unanswered AWS read four times (4 × 30 s) before the observation fails: the retry shows
    // after about two minutes, not after one timeout.
    .at_most(Duration::from_secs(200))
    .run(
        &mut cluster,
        |c| {
            c.moto
                .set(vec![Rule::all(Fault::Late(Duration::from_secs(32)))]);
            set_all(
                &c.marathons,
                vec![Rule::all(Fault::Late(Duration::from_secs(17)))],
            );
            set_all(
                &c.masters,
                vec![Rule::all(Fault::Late(Duration::from_secs(7)))],
            );
            scale(c, ui_file, 2);
            c.delete_record(record);
        },
        |c| {
            c.moto.clear();
            clear_all(&c.marathons);
            clear_all(&c.masters)
        },
        |c| scaled(ui, 2) && restored(c, &[record]),
    )
    .report();

    // A ZooKeeper member killed while a configuration change rolls through the ensemble: the
    // roll waits for it (its host_service starts it again) and finishes without losing quorum.
    Case {
        held: roll_waits,
        requests_fail: false,
        ..Case::new(
            "zookeeper_member_killed_mid_roll",
            "zookeeper_ensemble",
            &[
                "zookeeper_ensemble",
                "host_service",
                "mesos_agent",
                "marathon_app",
            ],
        )
        .services(&["zookeeper"])
    }
    .run(
        &mut cluster,
        |c| {
            let cluster_toml = c.sandbox.desired.join("cluster.toml");
            let text = std::fs::read_to_string(&cluster_toml).expect("cluster.toml");
            let changed = text.replace(
                "ZOOCFG_syncLimit = \"10\"",
                "ZOOCFG_syncLimit = \"10\", ZOOCFG_maxClientCnxns = \"100\"",
            );
            assert_ne!(
                text, changed,
                "the sandbox's zookeeper service changed shape"
            );
            std::fs::write(&cluster_toml, changed).expect("the edited cluster.toml");
            c.sandbox
                .wait_for("the roll's first restart", CONVERGE, |s| {
                    of_kind(s, "zookeeper_ensemble")
                        .any(|r| r["last_action"]["verb"] == "restart_member")
                });
            let leader = zookeeper_leader().expect("a ZooKeeper leader");
            let pid = std::fs::read_to_string(c.sandbox.hosts.path(leader, "zookeeper/pid"))
                .expect("the leader's pid file");
            let pid = pid.split_whitespace().next().expect("a pid").to_owned();
            signal(c, leader, "KILL", &pid);
        },
        |_| None,
        |c| {
            ensemble_serves()
                && (0..HOSTS.len()).all(|i| {
                    std::fs::read_to_string(c.sandbox.hosts.path(i, "zookeeper/zoo.cfg"))
                        .is_ok_and(|cfg| cfg.contains("maxClientCnxns=100"))
                })
        },
    )
    .report();

    // production's sshd stops answering, its listener and its open sessions (a command on
    // the pooled session hangs, a new connection gets no banner) while an app waits to be
    // scaled: the host's kinds retry with backoff within the SSH deadlines, and the apps do
    // not wait for the host.
    let production = 2;
    Case::new("ssh_host_hanging", "host_service", HOST_KINDS)
        .services(&["ssh"])
        .at_least(Duration::from_secs(35))
        .run(
            &mut cluster,
            |c| {
                c.sandbox.hosts.signal_sshd(production, "STOP");
                scale(c, ui_file, 1);
            },
            |c| {
                let applied = scaled(ui, 1);
                c.sandbox.hosts.signal_sshd(production, "CONT");
                (!applied).then(|| "the app edit waited for the hanging host".to_owned())
            },
            |_| scaled(ui, 1),
        )
        .report();
}
