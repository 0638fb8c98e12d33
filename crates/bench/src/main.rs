//! `converged-bench`: measures converged against real peers (the simulator for Mesos and
//! Marathon) and prints one JSON object per measurement for `scripts/bench.sh` to tabulate.
//! Numbers about speed come only from here, never from tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use converged::engine::{CycleRequest, Engine, EngineSettings, Trigger};
use converged::metrics::Metrics;
use converged::status::Shared;
use converged_core::api::{ApiOutcome, ApiRecorder};
use converged_core::condition::Condition;
use converged_core::reconciler::{Reconciler, Registry};
use converged_hosts::AllowedNetworks;
use converged_mesos::marathon::api::{HttpMarathon, MarathonEndpoint};
use converged_mesos::marathon::reconciler::MarathonApps;
use converged_testkit::SimProcess;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Benchmarks for converged; prints JSON lines.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cost of a no-op cycle over N converged Marathon apps spread over the agents.
    MarathonNoop {
        #[arg(long)]
        apps: usize,
        #[arg(long, default_value_t = 100)]
        agents: usize,
        #[arg(long, default_value_t = 20)]
        cycles: usize,
    },
    /// Cost of a no-op cycle over N instances and M DNS records in moto.
    AwsNoop {
        #[arg(long)]
        instances: usize,
        #[arg(long)]
        records: usize,
        #[arg(long, default_value_t = 10)]
        cycles: usize,
        /// Launch the instances straight into moto instead of through converged, whose launch
        /// also looks the AMI up: moto scans its whole image catalogue for that (about 1 s of
        /// its CPU), so 300 launches take over 5 minutes. The no-op cycles measured afterwards
        /// are the same.
        #[arg(long)]
        seed_instances: bool,
    },
    /// Time from saving an app file to the first corrective request, and from a change made
    /// behind converged's back to its detection and correction.
    Reaction {
        #[arg(long, default_value_t = 20)]
        edits: usize,
        #[arg(long, default_value_t = 10)]
        drifts: usize,
        /// The resync interval used for the drift measurement.
        #[arg(long, default_value = "5")]
        resync_seconds: u64,
    },
    /// The example cluster from nothing in the sandbox set-up (moto, three SSH test hosts,
    /// ZooKeeper, the simulator): when each kind first had every resource in sync.
    ColdLayers {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The example's AWS resources: converged's cold convergence and no-op cycle against the
    /// playbook's first run and idempotent re-run, alternately on the same moto.
    VersusAnsible {
        /// The directory holding `ansible-playbook` (a venv's `bin`).
        #[arg(long)]
        ansible_bin: PathBuf,
        #[arg(long)]
        playbook: PathBuf,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long, default_value_t = 10)]
        noop_cycles: usize,
    },
}

/// Records every request with the moment it left (end minus duration), besides the metrics.
struct Timeline {
    metrics: Metrics,
    sent: Mutex<Vec<(&'static str, Instant)>>,
}

impl ApiRecorder for Timeline {
    fn record(
        &self,
        service: &'static str,
        operation: &'static str,
        outcome: ApiOutcome,
        seconds: f64,
    ) {
        self.metrics.record(service, operation, outcome, seconds);
        let sent = Instant::now() - Duration::from_secs_f64(seconds);
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((operation, sent));
    }
}

impl Timeline {
    fn first_after(&self, operation: &str, after: Instant) -> Option<Instant> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(op, at)| *op == operation && *at >= after)
            .map(|(_, at)| *at)
            .min()
    }
}

struct Peers {
    _master: SimProcess,
    _agents: Vec<SimProcess>,
    marathon: SimProcess,
}

fn start_peers(agents: usize) -> Peers {
    let master = SimProcess::mesos_master("127.0.0.1:0", &[]);
    let agents = (0..agents)
        .map(|index| {
            SimProcess::mesos_agent(
                "127.0.0.1:0",
                &[
                    "--master",
                    &master.url,
                    "--hostname",
                    &format!("agent-{index}"),
                    "--resources",
                    "cpus:16;mem:65536;disk:100000;ports:[31000-32000]",
                    "--attributes",
                    "env:bench",
                ],
            )
        })
        .collect();
    let marathon = SimProcess::marathon(
        "127.0.0.1:0",
        &[
            "--master",
            &master.url,
            "--staging-delay",
            "50ms",
            "--tick",
            "100ms",
            "--time-scale",
            "0.01",
        ],
    );
    Peers {
        _master: master,
        _agents: agents,
        marathon,
    }
}

fn write_desired(dir: &Path, apps: usize) -> anyhow::Result<PathBuf> {
    let desired = dir.join("desired");
    std::fs::create_dir_all(desired.join("apps"))?;
    std::fs::write(
        desired.join("cluster.toml"),
        "[cluster]\nname = \"bench\"\n",
    )?;
    for index in 0..apps {
        let app = json!({"id": format!("/bench/app-{index}"), "cmd": "sleep 100000", "cpus": 0.01, "mem": 8,
                         "instances": 1, "labels": {"index": index.to_string()}});
        std::fs::write(
            desired.join(format!("apps/app-{index}.json")),
            app.to_string(),
        )?;
    }
    Ok(desired)
}

struct Setup {
    timeline: Arc<Timeline>,
    /// The same reconciler as the registry's, for timing its phases one by one.
    apps: MarathonApps,
    shared: Arc<Shared>,
    registry: Registry,
    desired: PathBuf,
}

fn setup(peers: &Peers, dir: &Path, apps: usize) -> anyhow::Result<Setup> {
    let desired = write_desired(dir, apps)?;
    let metrics = Metrics::new()?;
    let timeline = Arc::new(Timeline {
        metrics: metrics.clone(),
        sent: Mutex::new(Vec::new()),
    });
    let endpoint = MarathonEndpoint {
        urls: vec![peers.marathon.url.clone()],
        credentials: None,
        allowed_networks: AllowedNetworks::new(vec!["127.0.0.0/8".parse()?]),
    };
    let client: Arc<HttpMarathon> = Arc::new(HttpMarathon::new(endpoint, timeline.clone())?);
    let deadline = Duration::from_secs(600);
    let mut registry = Registry::default();
    registry.register(MarathonApps::new(client.clone(), deadline));
    Ok(Setup {
        timeline,
        apps: MarathonApps::new(client, deadline),
        shared: Arc::new(Shared::new(metrics)),
        registry,
        desired,
    })
}

fn all_in_sync(shared: &Shared) -> bool {
    let resources = shared.snapshot().resources;
    !resources.is_empty() && resources.iter().all(|r| r.condition == Condition::InSync)
}

/// CPU time of this process (all threads, user and system), in seconds.
fn cpu_seconds() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// Peak resident set size of this process, in MiB.
fn peak_rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?;
    Ok(kib / 1024.0)
}

fn request_counts(metrics: &Metrics) -> serde_json::Value {
    let text = metrics.render();
    let mut counts = serde_json::Map::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("converged_api_requests_total{"))
    {
        let operation = line
            .split("operation=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let entry = counts.entry(operation.to_owned()).or_insert(json!(0.0));
        *entry = json!(entry.as_f64().unwrap_or(0.0) + value);
    }
    serde_json::Value::Object(counts)
}

fn request_seconds(metrics: &Metrics) -> f64 {
    metrics
        .api_request_duration_seconds
        .with_label_values(&["marathon"])
        .get_sample_sum()
}

/// One no-op cycle and what it cost: wall, converged's CPU, time in requests, requests by
/// operation, writes. `waited` sums the request time of the services measured.
async fn measured_cycle(
    engine: &mut Engine,
    metrics: &Metrics,
    waited: impl Fn(&Metrics) -> f64,
) -> anyhow::Result<serde_json::Value> {
    let before_requests = request_counts(metrics);
    let before_cpu = cpu_seconds();
    let before_wait = waited(metrics);
    let wall = Instant::now();
    let report = engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - before_cpu;
    let after = request_counts(metrics);
    let mut delta = serde_json::Map::new();
    for (operation, count) in after.as_object().into_iter().flatten() {
        let was = before_requests[operation].as_f64().unwrap_or(0.0);
        let now = count.as_f64().unwrap_or(0.0);
        if now > was {
            delta.insert(operation.clone(), json!(now - was));
        }
    }
    Ok(
        json!({"wall_seconds": wall, "cpu_seconds": cpu, "request_seconds": waited(metrics) - before_wait,
              "requests": delta, "writes": report.applied}),
    )
}

fn merged(mut measured: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(target), Some(source)) = (measured.as_object_mut(), extra.as_object()) {
        target.extend(source.clone());
    }
    measured
}

async fn marathon_noop(apps: usize, agents: usize, cycles: usize) -> anyhow::Result<()> {
    let peers = start_peers(agents);
    let dir = tempfile::tempdir()?;
    let written = tokio::time::Instant::now();
    let setup = setup(&peers, dir.path(), apps)?;
    let mut engine = Engine::new(
        EngineSettings::new(setup.desired.clone(), Duration::from_secs(3600)),
        setup.registry.clone(),
        setup.shared.clone(),
        None,
        CancellationToken::new(),
    );
    let started = Instant::now();
    while !all_in_sync(&setup.shared) {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{apps} apps did not converge in 10 minutes");
        }
        engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cold = started.elapsed();
    // The engine reads every file again while one is under 2 s old (file timestamps are
    // coarse). Between an operator's edits the folder is older: one cycle after that reads it
    // for the last time, and the cycles measured find it settled.
    tokio::time::sleep_until(written + Duration::from_secs(3)).await;
    engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    let metrics = &setup.timeline.metrics;
    for _ in 0..cycles {
        let measured = measured_cycle(&mut engine, metrics, request_seconds).await?;
        let context = json!({"bench": "marathon_noop", "apps": apps, "agents": agents,
                             "cold_convergence_seconds": cold.as_secs_f64()});
        println!("{}", merged(measured, context));
    }
    println!(
        "{}",
        json!({"bench": "marathon_noop_rss", "apps": apps, "peak_rss_mib": peak_rss_mib()?})
    );
    let desired = converged_core::load::load_desired_state(&setup.desired)?;
    for _ in 0..cycles {
        let started = cpu_seconds();
        let observed = setup.apps.observe(&desired).await?;
        let observed_at = cpu_seconds();
        let plan = MarathonApps::plan(&desired, &observed);
        let planned_at = cpu_seconds();
        drop((observed, plan));
        println!(
            "{}",
            json!({"bench": "marathon_phases", "apps": apps,
                   "observe_cpu_seconds": observed_at - started,
                   "plan_cpu_seconds": planned_at - observed_at,
                   "drop_cpu_seconds": cpu_seconds() - planned_at})
        );
    }
    Ok(())
}

/// A cluster of `instances` edge-only nodes (no host services) and `records` A records.
fn write_aws_desired(
    dir: &Path,
    vpc: &str,
    subnet: &str,
    instances: usize,
    records: usize,
) -> anyhow::Result<PathBuf> {
    let desired = dir.join("desired");
    std::fs::create_dir_all(&desired)?;
    let mut cluster = format!(
        "[cluster]\nname = \"bench\"\nregion = \"eu-west-1\"\n\n[network]\nvpc_id = \"{vpc}\"\nsubnet_id = \"{subnet}\"\nadmin_cidrs = [\"198.51.100.0/24\"]\n\n"
    );
    for index in 0..instances {
        cluster.push_str(&format!(
            "[[nodes]]\nname = \"node-{index}\"\ninstance_type = \"t2.micro\"\nami = \"ami-1e749f67\"\nkey_pair = \"clickcount-admin\"\nroles = [\"edge\"]\n\n"
        ));
    }
    cluster.push_str("[dns]\nzone = \"clickcount.example.org.\"\nnode_records = true\n\n");
    for index in 0..records.saturating_sub(instances) {
        cluster.push_str(&format!(
            "[[dns.records]]\nname = \"service-{index}.clickcount.example.org.\"\nnode = \"node-{}\"\n\n",
            index % instances.max(1)
        ));
    }
    std::fs::write(desired.join("cluster.toml"), cluster)?;
    Ok(desired)
}

/// An engine with the three AWS kinds pointed at moto, with static credentials.
fn aws_engine(
    desired: PathBuf,
    state_dir: &Path,
    moto_url: &str,
    limits: converged_aws::RateLimits,
) -> anyhow::Result<(Engine, Metrics, Arc<Shared>)> {
    let metrics = Metrics::new()?;
    let mut settings = converged_aws::AwsSettings::new(state_dir);
    settings.endpoint_url = Some(moto_url.to_owned());
    settings.credentials = Some(converged_aws::StaticCredentials {
        access_key_id: "bench".into(),
        secret_access_key: converged_core::secret::Secret::new("bench"),
    });
    settings.limits = limits;
    let mut registry = Registry::default();
    converged_aws::register(&mut registry, settings, Arc::new(metrics.clone()));
    let shared = Arc::new(Shared::new(metrics.clone()));
    let engine = Engine::new(
        EngineSettings::new(desired, Duration::from_secs(3600)),
        registry,
        shared.clone(),
        None,
        CancellationToken::new(),
    );
    Ok((engine, metrics, shared))
}

/// Runs cycles back to back until every resource is in sync: how long it took, in how many
/// cycles.
async fn converge(
    engine: &mut Engine,
    shared: &Shared,
    timeout: Duration,
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut cycles = 0;
    while !all_in_sync(shared) {
        if started.elapsed() > timeout {
            bail!("not converged after {timeout:?}");
        }
        engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
            .await;
        cycles += 1;
    }
    Ok((started.elapsed(), cycles))
}

/// Time spent waiting on EC2 and Route 53.
fn aws_request_seconds(metrics: &Metrics) -> f64 {
    ["ec2", "route53"]
        .iter()
        .map(|service| {
            metrics
                .api_request_duration_seconds
                .with_label_values(&[service])
                .get_sample_sum()
        })
        .sum()
}

/// A subnet for up to 4091 instances in the VPC at `argv[2]`; prints its id. The sandbox's
/// /24 holds 251, and moto answers a launch beyond that with a bare 500.
const WIDE_SUBNET: &str = r#"
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="eu-west-1", aws_access_key_id="bench", aws_secret_access_key="bench")
print(ec2.create_subnet(VpcId=sys.argv[2], CidrBlock="10.0.16.0/20")["Subnet"]["SubnetId"])
"#;

/// Launches `argv[4]` instances of the bench cluster's nodes straight into moto, as converged
/// would have: one RunInstances each (so DescribeInstances pages as it would), with the same
/// AMI, type, key pair, subnet, group, public address and tags.
const SEED_INSTANCES: &str = r#"
import sys, boto3
url, vpc, subnet, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ec2 = boto3.client("ec2", endpoint_url=url, region_name="eu-west-1", aws_access_key_id="bench", aws_secret_access_key="bench")
groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["converged-bench"]}, {"Name": "vpc-id", "Values": [vpc]}])
group = groups["SecurityGroups"][0]["GroupId"]
for index in range(count):
    tags = {"converged:cluster": "bench", "converged:node": f"node-{index}", "Name": f"bench-node-{index}"}
    ec2.run_instances(ImageId="ami-1e749f67", InstanceType="t2.micro", MinCount=1, MaxCount=1, KeyName="clickcount-admin",
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group], "AssociatePublicIpAddress": True}],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
"#;

/// Runs one of the scripts above with the venv's boto3; returns what it printed.
fn moto_script(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = std::process::Command::new(converged_testkit::moto::python())
        .args(["-c", script])
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()?;
    if !output.status.success() {
        bail!(
            "a moto script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

async fn aws_noop(
    instances: usize,
    records: usize,
    cycles: usize,
    seed: bool,
) -> anyhow::Result<()> {
    let moto = converged_testkit::moto::Moto::start();
    let (vpc, _) = converged_testkit::sandbox::prepare_moto(&moto.url);
    let subnet = moto_script(WIDE_SUBNET, &[&moto.url, &vpc])?;
    let dir = tempfile::tempdir()?;
    let desired = write_aws_desired(dir.path(), &vpc, &subnet, instances, records)?;
    // The cold phase creates hundreds of instances in moto: AWS's account limits would make
    // it minutes long and are not what is measured here.
    let fast = converged_aws::BucketShape::new(1000.0, 1000.0);
    let limits = converged_aws::RateLimits {
        ec2_describe: fast,
        ec2_mutate: fast,
        ec2_run_instances: fast,
        route53: fast,
    };
    let (mut engine, metrics, shared) =
        aws_engine(desired, &dir.path().join("state"), &moto.url, limits)?;
    if seed {
        // The first cycle creates the group; the instances wait for it.
        engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
            .await;
        moto_script(
            SEED_INSTANCES,
            &[&moto.url, &vpc, &subnet, &instances.to_string()],
        )?;
    }
    let (cold, _) = converge(&mut engine, &shared, Duration::from_secs(900)).await?;
    for _ in 0..cycles {
        let measured = measured_cycle(&mut engine, &metrics, aws_request_seconds).await?;
        let context = json!({"bench": "aws_noop", "instances": instances, "records": records,
                             "seeded": seed, "cold_convergence_seconds": cold.as_secs_f64()});
        println!("{}", merged(measured, context));
    }
    println!(
        "{}",
        json!({"bench": "aws_noop_rss", "instances": instances, "records": records, "peak_rss_mib": peak_rss_mib()?})
    );
    Ok(())
}

/// The example cluster's `cluster.toml` placed in moto's network, and no apps: with only the
/// AWS kinds registered, the security group, three instances and eight A records.
fn write_example_aws_desired(
    workspace: &Path,
    dir: &Path,
    vpc: &str,
    subnet: &str,
) -> anyhow::Result<PathBuf> {
    let desired = dir.join("desired");
    std::fs::create_dir_all(desired.join("apps"))?;
    let cluster = std::fs::read_to_string(workspace.join("desired-state/cluster.toml"))?
        .replace("vpc-0a1b2c3d4e5f60718", vpc)
        .replace("subnet-0a1b2c3d4e5f60718", subnet);
    std::fs::write(desired.join("cluster.toml"), cluster)?;
    Ok(desired)
}

/// Wipes moto and creates what both converged and the playbook expect to exist already.
async fn fresh_moto(url: &str) -> anyhow::Result<(String, String)> {
    let reset = reqwest::Client::new()
        .post(format!("{url}/moto-api/reset"))
        .send()
        .await?
        .status();
    if !reset.is_success() {
        bail!("moto refused the reset: {reset}");
    }
    Ok(converged_testkit::sandbox::prepare_moto(url))
}

/// converged's cold convergence of the example's AWS resources, then its no-op cycles.
async fn converged_round(
    workspace: &Path,
    moto_url: &str,
    round: usize,
    noop_cycles: usize,
) -> anyhow::Result<()> {
    let (vpc, subnet) = fresh_moto(moto_url).await?;
    let dir = tempfile::tempdir()?;
    let desired = write_example_aws_desired(workspace, dir.path(), &vpc, &subnet)?;
    let (mut engine, metrics, shared) = aws_engine(
        desired,
        &dir.path().join("state"),
        moto_url,
        converged_aws::RateLimits::default(),
    )?;
    let (cold, cycles) = converge(&mut engine, &shared, Duration::from_secs(300)).await?;
    let resources = shared.snapshot().resources.len();
    println!(
        "{}",
        json!({"bench": "converged_cold", "round": round, "seconds": cold.as_secs_f64(),
               "cycles": cycles, "resources": resources})
    );
    for _ in 0..noop_cycles {
        let measured = measured_cycle(&mut engine, &metrics, aws_request_seconds).await?;
        println!(
            "{}",
            merged(measured, json!({"bench": "converged_noop", "round": round}))
        );
    }
    Ok(())
}

/// One run of the playbook against moto: its wall time and the `changed` count of its recap.
fn run_playbook(
    ansible: &Path,
    playbook: &Path,
    moto_url: &str,
    vpc: &str,
    subnet: &str,
) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let output = std::process::Command::new(ansible.join("ansible-playbook"))
        .arg(playbook)
        .args(["-e", &format!("aws_endpoint_url={moto_url}")])
        .args([
            "-e",
            &format!("vpc_id={vpc}"),
            "-e",
            &format!("subnet_id={subnet}"),
        ])
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Ansible's own advice for speed: modules piped to the interpreter, no temp files.
        .env("ANSIBLE_PIPELINING", "true")
        .env("ANSIBLE_LOCALHOST_WARNING", "false")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
        .output()
        .with_context(|| format!("running {}", ansible.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("ansible-playbook failed ({}):\n{stdout}", output.status);
    }
    let changed = stdout
        .lines()
        .find(|line| line.starts_with("localhost"))
        .and_then(|recap| recap.split("changed=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .context("no PLAY RECAP in the playbook's output")?;
    Ok((seconds, changed))
}

/// The playbook's first run on a fresh moto, then its idempotent re-run.
async fn ansible_round(
    ansible: &Path,
    playbook: &Path,
    moto_url: &str,
    round: usize,
) -> anyhow::Result<()> {
    let (vpc, subnet) = fresh_moto(moto_url).await?;
    for bench in ["ansible_first", "ansible_rerun"] {
        let (seconds, changed) = run_playbook(ansible, playbook, moto_url, &vpc, &subnet)?;
        if (bench == "ansible_rerun") != (changed == 0) {
            bail!("{bench} reported changed={changed}");
        }
        println!(
            "{}",
            json!({"bench": bench, "round": round, "seconds": seconds, "changed": changed})
        );
    }
    Ok(())
}

/// converged and the playbook, alternately on one moto (reset before each cold run), the
/// order swapped every round.
async fn versus_ansible(
    ansible: &Path,
    playbook: &Path,
    rounds: usize,
    noop_cycles: usize,
) -> anyhow::Result<()> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let moto = converged_testkit::moto::Moto::start();
    for round in 0..rounds {
        if round % 2 == 0 {
            converged_round(&workspace, &moto.url, round, noop_cycles).await?;
            ansible_round(ansible, playbook, &moto.url, round).await?;
        } else {
            ansible_round(ansible, playbook, &moto.url, round).await?;
            converged_round(&workspace, &moto.url, round, noop_cycles).await?;
        }
    }
    Ok(())
}

async fn reaction(edits: usize, drifts: usize, resync_seconds: u64) -> anyhow::Result<()> {
    let peers = start_peers(2);
    let dir = tempfile::tempdir()?;
    let setup = setup(&peers, dir.path(), 3)?;
    let (triggers, receiver) = tokio::sync::mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let engine = Engine::new(
        EngineSettings::new(setup.desired.clone(), Duration::from_secs(resync_seconds)),
        setup.registry.clone(),
        setup.shared.clone(),
        None,
        shutdown.clone(),
    );
    let _watch = converged::watch::watch(&setup.desired, triggers.clone())?;
    let task = tokio::spawn(engine.run(receiver));
    wait_in_sync(&setup.shared).await?;
    let http = reqwest::Client::new();
    let app_file = setup.desired.join("apps/app-0.json");
    for edit in 0..edits {
        let instances = if edit % 2 == 0 { 2 } else { 1 };
        let app = json!({"id": "/bench/app-0", "cmd": "sleep 100000", "cpus": 0.01, "mem": 8,
                         "instances": instances, "labels": {"index": "0"}});
        let saved = Instant::now();
        std::fs::write(&app_file, app.to_string())?;
        let sent = wait_for_request(&setup.timeline, "replace_app", saved).await?;
        println!(
            "{}",
            json!({"bench": "edit_to_request", "seconds": sent.duration_since(saved).as_secs_f64()})
        );
        wait_deployed(&http, &peers.marathon.url, "bench/app-0", instances).await?;
    }
    for drift in 0..drifts {
        let instances = if drift % 2 == 0 { 3 } else { 4 };
        let changed = Instant::now();
        let status = http
            .put(format!("{}/v2/apps/bench/app-1", peers.marathon.url))
            .json(&json!({"instances": instances}))
            .send()
            .await?
            .status();
        if !status.is_success() {
            bail!("the hand change was refused: {status}");
        }
        let corrected = wait_for_request(&setup.timeline, "replace_app", changed).await?;
        let detected = setup
            .timeline
            .first_after("list_apps", changed)
            .context("no observation after the change")?;
        println!(
            "{}",
            json!({"bench": "drift_to_correction", "resync_seconds": resync_seconds,
                   "seconds": corrected.duration_since(changed).as_secs_f64(),
                   "detection_seconds": detected.duration_since(changed).as_secs_f64()})
        );
        wait_deployed(&http, &peers.marathon.url, "bench/app-1", 1).await?;
    }
    shutdown.cancel();
    let _ = task.await;
    Ok(())
}

async fn wait_for_request(
    timeline: &Timeline,
    operation: &str,
    after: Instant,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(at) = timeline.first_after(operation, after) {
            return Ok(at);
        }
        if Instant::now() > deadline {
            bail!("no {operation} request within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until Marathon runs `instances` tasks of `app` with no deployment left, so the next
/// change starts from a settled app (converged holds back while a deployment runs). Asks
/// Marathon rather than `/status`, which only says so after the next resync.
async fn wait_deployed(
    http: &reqwest::Client,
    marathon: &str,
    app: &str,
    instances: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body: serde_json::Value = http
            .get(format!("{marathon}/v2/apps/{app}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let app_now = &body["app"];
        if app_now["instances"] == instances
            && app_now["tasksRunning"] == instances
            && app_now["deployments"].as_array().is_some_and(Vec::is_empty)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{app} not deployed with {instances} tasks within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_in_sync(shared: &Shared) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while !all_in_sync(shared) {
        if Instant::now() > deadline {
            bail!("not in sync within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Starts the sandbox `runs` times (needs root, like `scripts/sandbox.sh`) and prints, per run,
/// the seconds from `converged run` starting to each kind first being all in sync. Blocking:
/// the sandbox drives processes and polls `/status` synchronously.
fn cold_layers(runs: usize) -> anyhow::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binaries = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("the bench binary has no directory"))?;
    for _ in 0..runs {
        let sandbox = converged_testkit::sandbox::Sandbox::start(
            &workspace,
            &binaries.join("converged"),
            &binaries.join("converged-sim"),
        );
        let started = Instant::now();
        let mut in_sync_after: BTreeMap<String, f64> = BTreeMap::new();
        loop {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the sandbox did not converge in 300 s"
            );
            let Some(status) = sandbox.status() else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let mut kinds: BTreeMap<String, bool> = BTreeMap::new();
            for resource in status["resources"].as_array().into_iter().flatten() {
                let kind = resource["kind"].as_str().unwrap_or_default().to_owned();
                let in_sync = resource["condition"] == "in_sync";
                *kinds.entry(kind).or_insert(true) &= in_sync;
            }
            for (kind, in_sync) in kinds {
                if in_sync {
                    in_sync_after
                        .entry(kind)
                        .or_insert_with(|| started.elapsed().as_secs_f64());
                }
            }
            if converged_testkit::sandbox::all_in_sync(&status) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "{}",
            json!({
                "bench": "cold_layers",
                "total_seconds": started.elapsed().as_secs_f64(),
                "kinds": in_sync_after,
            })
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::MarathonNoop {
            apps,
            agents,
            cycles,
        } => marathon_noop(apps, agents, cycles).await,
        Command::AwsNoop {
            instances,
            records,
            cycles,
            seed_instances,
        } => aws_noop(instances, records, cycles, seed_instances).await,
        Command::Reaction {
            edits,
            drifts,
            resync_seconds,
        } => reaction(edits, drifts, resync_seconds).await,
        Command::ColdLayers { runs } => {
            tokio::task::spawn_blocking(move || cold_layers(runs)).await?
        }
        Command::VersusAnsible {
            ansible_bin,
            playbook,
            rounds,
            noop_cycles,
        } => versus_ansible(&ansible_bin, &playbook, rounds, noop_cycles).await,
    }
}
