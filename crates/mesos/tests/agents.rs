//! The whole node stack from nothing, through SSH only, on three sshd test hosts with the exec
//! runtime: a real 3-member ZooKeeper ensemble, simulated Mesos masters electing through it,
//! agents and Marathon (`converged-sim`). Then a hung agent (SIGSTOP) turns inactive in the
//! master and the `mesos_agent` kind restarts its service. Last, a node loses the
//! `mesos-agent` role: its agent is drained (maintenance window, Marathon's tasks moved,
//! machine down) before its service is stopped.
//!
//! Then, without SSH, against a simulated master and agents converged did not build: an
//! apps-only desired state leaves every agent unmanaged and writes nothing; nodes in the
//! desired state are remembered, another cluster's agent stays unmanaged, and a remembered node
//! removed from the desired state altogether is still drained, then forgotten. A read-only
//! registry plans the same and writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use converged_core::plan::Verdict;
use converged_core::reconciler::Registry;
use converged_core::{DesiredState, load_desired_state};
use converged_hosts::{
    Access, AllowedNetworks, HostLayer, HostServices, OverrideAddresses, Runtime, RuntimeKind,
    SshPool, SshSettings,
};
use converged_mesos::agent::api::{Agent, HttpMesosMaster, MasterView, MesosMaster};
use converged_mesos::agent::diff::AgentMemory;
use converged_mesos::agent::memory::{AgentMemoryStore, MEMORY_FILE};
use converged_mesos::agent::reconciler::MesosAgents;
use converged_mesos::marathon::api::{AppBody, HttpMarathon, MarathonApi, MarathonEndpoint};
use converged_testkit::driver::{Driver, Outcome, Pass};
use converged_testkit::{HostOptions, NoMetrics, SimProcess, TestHosts, sim_binary};
use converged_zookeeper::{Ensemble, EnsembleFiles, IdStore};

const HOSTS: [(&str, &str); 3] = [
    ("services", "127.0.23.1"),
    ("staging", "127.0.23.2"),
    ("production", "127.0.23.3"),
];
const JARS: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";

fn write_desired(dir: &Path, sim: &Path, without_agent: Option<&str>) -> DesiredState {
    for path in ["/usr/bin/java", "/usr/share/java/zookeeper.jar"] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: apt-get install -y zookeeper"
        );
    }
    let mut nodes = String::new();
    for (name, _) in HOSTS {
        let agent = if without_agent == Some(name) {
            ""
        } else {
            "\"mesos-agent\", "
        };
        nodes.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\ninstance_type = \"t3.micro\"\nami = \"ami-1e749f67\"\n\
             roles = [\"zookeeper\", \"mesos-master\", {agent}\"marathon\"]\n\
             attributes = {{ env = \"{name}\" }}\n\n"
        ));
    }
    let sim = sim.display();
    let cluster = format!(
        r#"[cluster]
name = "stack-test"
region = "eu-west-1"

[network]
vpc_id = "vpc-0a1b2c3d4e5f60718"
subnet_id = "subnet-0a1b2c3d4e5f60718"

{nodes}
[kinds.mesos_agent]
prune = true

[kinds.host_service]
prune = true

[services.zookeeper]
ports = [2181, 2888, 3888]
env = {{ ZOOCFG_clientPortAddress = "{{{{address}}}}", ZOOCFG_tickTime = "500", ZOOCFG_initLimit = "20", ZOOCFG_syncLimit = "10" }}
exec = {{ command = ["java", "-Xmx128m", "-XX:+UseSerialGC", "-cp", "{JARS}", "org.apache.zookeeper.server.quorum.QuorumPeerMain", "{{{{service_dir}}}}/zoo.cfg"] }}

[services.mesos-master]
ports = [5050]
exec = {{ command = ["{sim}", "mesos-master", "--listen", "{{{{address}}}}:5050", "--zk", "zk://{{{{zookeeper_connect}}}}/mesos", "--quorum", "{{{{mesos_quorum}}}}", "--agent-ping-timeout", "1s", "--max-agent-ping-timeouts", "60", "--zk-session-timeout", "4s"] }}

[services.mesos-agent]
ports = [5051]
exec = {{ command = ["{sim}", "mesos-agent", "--listen", "{{{{address}}}}:5051", "--master", "zk://{{{{zookeeper_connect}}}}/mesos", "--hostname", "{{{{node}}}}", "--attributes", "{{{{mesos_attributes}}}}", "--heartbeat-interval", "250ms", "--zk-session-timeout", "4s"] }}

[services.marathon]
ports = [8080]
exec = {{ command = ["{sim}", "marathon", "--listen", "{{{{address}}}}:8080", "--master", "zk://{{{{zookeeper_connect}}}}/mesos", "--zk", "zk://{{{{zookeeper_connect}}}}/marathon"] }}
"#
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cluster.toml"), cluster).unwrap();
    load_desired_state(dir).unwrap_or_else(|err| panic!("invalid desired state: {err:?}"))
}

fn pid(hosts: &TestHosts, i: usize, service: &str) -> String {
    std::fs::read_to_string(hosts.path(i, &format!("{service}/pid")))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_comes_up_over_ssh_a_hung_agent_is_restarted_and_a_dropped_one_drained() {
    let sim = sim_binary();
    let hosts = TestHosts::start(&HOSTS, &HostOptions::default());
    let state = tempfile::tempdir().unwrap();
    let overrides: BTreeMap<String, String> = hosts
        .hosts
        .iter()
        .map(|host| (host.name.clone(), host.ssh.to_string()))
        .collect();
    let allowed = AllowedNetworks::new(vec!["127.0.23.0/24".parse().unwrap()]);
    let mut settings = SshSettings::new(
        "root",
        hosts.key_file.clone(),
        state.path().join("known_hosts"),
    );
    settings.allowed_networks = allowed.clone();
    let pool = Arc::new(SshPool::new(settings, Arc::new(NoMetrics)));
    let counts = pool.counts();
    let ids = Arc::new(IdStore::new(state.path(), Access::ReadWrite));
    let layer = Arc::new(
        HostLayer::new(
            pool,
            Arc::new(OverrideAddresses::new(overrides)),
            Runtime::new(RuntimeKind::Exec, hosts.root.display().to_string()),
            allowed.clone(),
        )
        .with_extras(Arc::new(EnsembleFiles::new(Arc::clone(&ids))))
        .with_rolling("zookeeper"),
    );
    let master = Arc::new(HttpMesosMaster::new(allowed.clone(), Arc::new(NoMetrics)).unwrap());
    let marathon: Arc<dyn MarathonApi> = Arc::new(
        HttpMarathon::new(
            MarathonEndpoint {
                urls: HOSTS
                    .iter()
                    .map(|(_, ip)| format!("http://{ip}:8080"))
                    .collect(),
                credentials: None,
                allowed_networks: allowed.clone(),
            },
            Arc::new(NoMetrics),
        )
        .unwrap(),
    );
    let mut registry = Registry::default();
    registry.register(HostServices::new(Arc::clone(&layer)));
    registry.register(Ensemble::new(Arc::clone(&layer), ids));
    registry.register(
        MesosAgents::new(
            layer,
            Arc::clone(&master) as Arc<dyn MesosMaster>,
            Vec::new(),
            Duration::from_secs(2),
            AgentMemoryStore::new(state.path(), Access::ReadWrite),
        )
        .with_marathon(Arc::clone(&marathon)),
    );
    let driver = Driver::new(registry);
    let desired = write_desired(&state.path().join("desired"), &sim, None);
    let step = Duration::from_millis(500);

    let started = Instant::now();
    let passes = driver
        .until(&desired, Duration::from_secs(120), step, |p| {
            p.all_in_sync()
        })
        .await;
    eprintln!(
        "bring-up: ZooKeeper, masters, agents and Marathon on 3 hosts in sync in {:?} ({} passes)",
        started.elapsed(),
        passes.len()
    );
    let last = passes.last().unwrap();
    assert_eq!(
        last.resources.len(),
        3 * 4 + 1 + 3,
        "12 services, the ensemble, 3 agents"
    );
    assert!(
        passes.iter().any(|p| p
            .resources
            .values()
            .any(|o| matches!(o, Outcome::Blocked(_)) || matches!(o, Outcome::Converging(_)))),
        "upper layers waited for lower ones"
    );
    let writes = counts.writes();
    assert!(driver.pass(&desired).await.all_in_sync());
    assert_eq!(counts.writes(), writes, "a converged pass must not write");

    // A hung agent: alive for its host service, inactive for the master.
    let old = pid(&hosts, 1, "mesos-agent");
    let stopped = hosts.exec(1, &format!("kill -STOP {old}"));
    assert!(stopped.status.success(), "{stopped:?}");
    let healed = Instant::now();
    // The master needs its ping timeout to notice: until then every pass is in sync.
    let restarted =
        |p: &Pass| p.get("mesos_agent/staging") == Some(&Outcome::Applied(vec!["restart_agent"]));
    let passes = driver
        .until(&desired, Duration::from_secs(90), step, restarted)
        .await;
    assert!(
        passes.iter().any(|p| matches!(
            p.get("mesos_agent/staging"),
            Some(Outcome::Converging(reason)) if reason.contains("inactive")
        )),
        "the master saw it inactive first"
    );
    driver
        .until(&desired, Duration::from_secs(90), step, |p| p.all_in_sync())
        .await;
    assert_ne!(pid(&hosts, 1, "mesos-agent"), old);
    eprintln!(
        "hung agent restarted and active again in {:?}",
        healed.elapsed()
    );

    drain_an_agent_holding_tasks(
        &driver,
        &hosts,
        &master,
        marathon.as_ref(),
        state.path(),
        &sim,
    )
    .await;
}

/// The leader's agents, once the masters agree on one.
async fn agents(master: &HttpMesosMaster) -> Vec<Agent> {
    let urls: Vec<String> = HOSTS
        .iter()
        .map(|(_, ip)| format!("http://{ip}:5050"))
        .collect();
    match master.view(&urls).await.unwrap() {
        MasterView::Led { agents, .. } => agents,
        MasterView::NoLeader { reason } => panic!("no leading master: {reason}"),
    }
}

async fn drain_an_agent_holding_tasks(
    driver: &Driver,
    hosts: &TestHosts,
    master: &HttpMesosMaster,
    marathon: &dyn MarathonApi,
    state: &Path,
    sim: &Path,
) {
    // 0.4 of each agent's 1 cpu: two tasks fit on an agent, so three need two agents, and the
    // two agents left after a drain still hold all three.
    let app = serde_json::json!({"id": "/web", "cmd": "sleep 1000", "instances": 3, "cpus": 0.4, "mem": 32});
    marathon.create_app(&AppBody(app)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let apps = marathon.list_apps().await.unwrap();
        if apps
            .iter()
            .any(|app| app.id == "/web" && app.tasks_running == 3)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/web never ran 3 tasks: {apps:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let holding = agents(master)
        .await
        .into_iter()
        .find(|agent| agent.active && !agent.tasks.is_empty())
        .expect("an agent runs /web's tasks");
    let node = holding.hostname.clone();
    let index = HOSTS.iter().position(|(name, _)| *name == node).unwrap();
    let agent_pid = pid(hosts, index, "mesos-agent");
    eprintln!(
        "draining {node}, which runs {} task(s)",
        holding.tasks.len()
    );

    let desired = write_desired(&state.join("desired"), sim, Some(&node));
    let started = Instant::now();
    let drained = format!("mesos_agent/{node}");
    let service = format!("host_service/{node}/mesos-agent");
    let passes = driver
        .until(
            &desired,
            Duration::from_secs(90),
            Duration::from_millis(500),
            |p| p.get(&drained).is_none() && p.get(&service).is_none() && p.all_in_sync(),
        )
        .await;
    let steps: Vec<String> = passes
        .iter()
        .flat_map(|pass| pass.applied())
        .filter(|applied| applied.contains(&node))
        .collect();
    assert_eq!(
        steps,
        [
            format!("{drained} schedule_maintenance"),
            format!("{drained} move_tasks"),
            format!("{drained} machine_down"),
            format!("{service} stop"),
        ],
        "drained step by step, the service stopped last"
    );
    assert!(
        passes
            .iter()
            .any(|pass| matches!(pass.get(&service), Some(Outcome::Blocked(on)) if on.to_string() == drained)),
        "the service waited for the drain"
    );
    let apps = marathon.list_apps().await.unwrap();
    let web = apps.iter().find(|app| app.id == "/web").unwrap();
    assert_eq!(
        web.tasks_running, 3,
        "Marathon ran the moved tasks elsewhere"
    );
    let left = agents(master).await;
    assert!(
        left.iter().all(|agent| agent.hostname != node),
        "the drained agent is gone: {left:?}"
    );
    assert_eq!(
        left.iter().map(|agent| agent.tasks.len()).sum::<usize>(),
        3,
        "all three tasks run on the remaining agents"
    );
    let alive = hosts.exec(index, &format!("kill -0 {agent_pid}"));
    assert!(!alive.status.success(), "the agent process was stopped");
    eprintln!(
        "agent on {node} drained and stopped in {:?}",
        started.elapsed()
    );
}

/// Agents of three machines on their own loopback addresses: two become nodes of the desired
/// state, the third belongs to nobody converged knows.
const MACHINES: [(&str, &str); 3] = [
    ("alpha", "127.0.24.1"),
    ("bravo", "127.0.24.2"),
    ("foreign", "127.0.24.3"),
];

/// A desired state with these nodes (role `mesos-agent` only), or none: apps only.
fn desired_with_nodes(dir: &Path, nodes: &[&str]) -> DesiredState {
    let mut text = String::from("[cluster]\nname = \"adopted\"\n");
    if !nodes.is_empty() {
        text.push_str(
            "region = \"eu-west-1\"\n\n[network]\nvpc_id = \"vpc-0a1b2c3d4e5f60718\"\nsubnet_id = \"subnet-0a1b2c3d4e5f60718\"\n",
        );
    }
    for node in nodes {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{node}\"\ninstance_type = \"t3.micro\"\nami = \"ami-1e749f67\"\nroles = [\"mesos-agent\"]\n"
        ));
    }
    // How the agents would run: no host_service kind runs here, so it never starts one.
    text.push_str(
        "\n[kinds.mesos_agent]\nprune = true\n\n[services.mesos-agent]\nexec = { command = [\"mesos-agent\"] }\n",
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cluster.toml"), text).unwrap();
    load_desired_state(dir).unwrap_or_else(|err| panic!("invalid desired state: {err:?}"))
}

/// A registry of the `mesos_agent` kind alone, asking `master` (no SSH is ever needed: the
/// agents stay active, so nothing is restarted).
fn agents_only(master: &SimProcess, state: &Path, access: Access) -> Registry {
    let allowed = AllowedNetworks::new(vec!["127.0.24.0/24".parse().unwrap()]);
    let mut settings = SshSettings::new("root", state.join("no-key"), state.join("known_hosts"));
    settings.allowed_networks = allowed.clone();
    settings.access = access;
    let overrides = MACHINES
        .iter()
        .map(|(name, ip)| ((*name).to_owned(), format!("{ip}:22")))
        .collect();
    let layer = Arc::new(HostLayer::new(
        Arc::new(SshPool::new(settings, Arc::new(NoMetrics))),
        Arc::new(OverrideAddresses::new(overrides)),
        Runtime::new(RuntimeKind::Exec, "/srv/converged"),
        allowed.clone(),
    ));
    let mut registry = Registry::default();
    registry.register(MesosAgents::new(
        layer,
        Arc::new(HttpMesosMaster::new(allowed, Arc::new(NoMetrics)).unwrap()),
        vec![master.url.clone()],
        Duration::from_secs(2),
        AgentMemoryStore::new(state, access),
    ));
    registry
}

/// Every resource's verdict (`in_sync`, `unmanaged`, or the first verb), observed and planned
/// without applying anything.
async fn plan_only(registry: &Registry, desired: &DesiredState) -> BTreeMap<String, String> {
    let mut verdicts = BTreeMap::new();
    for reconciler in registry.iter() {
        let plan = reconciler.observe_and_plan(desired).await.unwrap();
        for resource in plan.resources {
            let verdict = match &resource.verdict {
                Verdict::InSync => "in_sync".to_owned(),
                Verdict::Unmanaged { .. } => "unmanaged".to_owned(),
                Verdict::Act { actions } => actions[0].verb.to_owned(),
                other => format!("{other:?}"),
            };
            verdicts.insert(resource.id.to_string(), verdict);
        }
    }
    verdicts
}

/// What the state directory holds: every file and its content.
fn state_files(dir: &Path) -> BTreeMap<PathBuf, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (path, text)
        })
        .collect()
}

fn remembered(state: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(state.join(MEMORY_FILE)).unwrap();
    let memory: AgentMemory = serde_json::from_str(&text).unwrap();
    memory.nodes.into_keys().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_converged_did_not_build_are_left_alone_and_a_remembered_node_is_drained() {
    let master = SimProcess::mesos_master("127.0.24.10:0", &[]);
    let _agents: Vec<SimProcess> = MACHINES
        .iter()
        .map(|(name, ip)| {
            SimProcess::mesos_agent(
                &format!("{ip}:0"),
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
    let state = tempfile::tempdir().unwrap();
    let desired_dir = tempfile::tempdir().unwrap();
    let driver = Driver::new(agents_only(&master, state.path(), Access::ReadWrite));
    let planner = agents_only(&master, state.path(), Access::ReadOnly);
    let step = Duration::from_millis(200);
    let ids = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|name| format!("mesos_agent/{name}"))
            .collect()
    };

    // Apps only (no nodes), prune on: every agent is someone else's.
    let apps_only = desired_with_nodes(desired_dir.path(), &[]);
    let passes = driver
        .until(&apps_only, Duration::from_secs(20), step, |p| {
            p.resources.len() == MACHINES.len()
        })
        .await;
    let last = passes.last().unwrap();
    assert_eq!(
        last.resources
            .keys()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ids(&["alpha", "bravo", "foreign"])
    );
    for outcome in last.resources.values() {
        assert!(
            matches!(outcome, Outcome::Unmanaged(reason) if reason.contains("never managed by converged")),
            "{outcome:?}"
        );
    }
    assert!(
        passes
            .iter()
            .all(|p| p.applied().is_empty() && p.observe_errors.is_empty()),
        "nothing applied to agents converged does not own: {passes:#?}"
    );
    assert!(
        state_files(state.path()).is_empty(),
        "an apps-only desired state remembers no agent"
    );

    // Two nodes: their agents are converged's and remembered; the third is still nobody's.
    let two = desired_with_nodes(desired_dir.path(), &["alpha", "bravo"]);
    let preview = plan_only(&planner, &two).await;
    assert!(
        state_files(state.path()).is_empty(),
        "the read-only registry remembers nothing"
    );
    let pass = driver.pass(&two).await;
    assert_eq!(
        pass.get("mesos_agent/alpha"),
        Some(&Outcome::InSync),
        "{pass:#?}"
    );
    assert_eq!(pass.get("mesos_agent/bravo"), Some(&Outcome::InSync));
    assert!(matches!(
        pass.get("mesos_agent/foreign"),
        Some(Outcome::Unmanaged(_))
    ));
    assert_eq!(remembered(state.path()), ["alpha", "bravo"]);
    assert_eq!(
        preview,
        BTreeMap::from([
            ("mesos_agent/alpha".to_owned(), "in_sync".to_owned()),
            ("mesos_agent/bravo".to_owned(), "in_sync".to_owned()),
            ("mesos_agent/foreign".to_owned(), "unmanaged".to_owned()),
        ]),
        "the read-only plan said the same"
    );

    // bravo leaves the desired state altogether: remembered, so drained; foreign untouched.
    let one = desired_with_nodes(desired_dir.path(), &["alpha"]);
    let files = state_files(state.path());
    assert_eq!(
        plan_only(&planner, &one)
            .await
            .get("mesos_agent/bravo")
            .map(String::as_str),
        Some("schedule_maintenance"),
        "the read-only plan shows the drain"
    );
    assert_eq!(state_files(state.path()), files, "and writes nothing");
    let passes = driver
        .until(&one, Duration::from_secs(30), step, |p| {
            p.get("mesos_agent/bravo").is_none()
        })
        .await;
    let steps: Vec<String> = passes.iter().flat_map(|p| p.applied()).collect();
    assert_eq!(
        steps,
        [
            "mesos_agent/bravo schedule_maintenance",
            "mesos_agent/bravo machine_down"
        ],
        "only bravo was drained"
    );
    assert!(
        passes
            .iter()
            .all(|p| matches!(p.get("mesos_agent/foreign"), Some(Outcome::Unmanaged(_))))
    );
    assert_eq!(
        remembered(state.path()),
        ["alpha"],
        "bravo is forgotten once its agent is gone"
    );
    let urls = [master.url.clone()];
    let master_client = HttpMesosMaster::new(
        AllowedNetworks::new(vec!["127.0.24.0/24".parse().unwrap()]),
        Arc::new(NoMetrics),
    )
    .unwrap();
    let MasterView::Led { agents, .. } = master_client.view(&urls).await.unwrap() else {
        panic!("the master leads");
    };
    let mut left: Vec<(&str, bool)> = agents
        .iter()
        .map(|agent| (agent.hostname.as_str(), agent.active))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [("alpha", true), ("foreign", true)],
        "the foreign agent runs on"
    );
}
