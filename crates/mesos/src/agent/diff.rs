//! The `mesos_agent` plan (pure, no client): agent nodes × the leading master's view → in
//! sync, waiting (no leader, grace period, attributes still rolling out), or restart; and
//! agents converged owns of nodes no longer desired as agents → drained (schedule, move
//! tasks, machine down) before anything below them is torn down. An agent is converged's only
//! when its hostname is a node of the desired state or a node converged remembers managing;
//! every other agent is unmanaged and never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use converged_core::model::Role;
use converged_core::plan::{KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::{DesiredState, Kind, ResourceId};
use converged_hosts::NodeAddress;
use converged_hosts::service::diff::service_id;
use serde::{Deserialize, Serialize};

use super::api::{Agent, Machine, MaintenanceStatus, MasterView};

/// The framework name Marathon registers with unless `--framework_name` says otherwise.
pub const MARATHON_FRAMEWORK: &str = "marathon";

#[derive(Debug, Clone)]
pub struct AgentsObserved {
    pub view: Result<MasterView, String>,
    pub addresses: BTreeMap<String, Result<NodeAddress, String>>,
    /// How long each agent node has been seen without an active agent.
    pub missing_for: BTreeMap<String, Duration>,
    pub grace: Duration,
    /// Read only while some agent is departing; otherwise `Ok(default)`.
    pub maintenance: Result<MaintenanceStatus, String>,
    /// Whether a Marathon client is configured to move tasks off a draining agent.
    pub can_move_tasks: bool,
    /// Whether the cluster has masters to ask (without masters there can be no agent).
    pub masters_asked: bool,
    /// The nodes converged manages or managed, as remembered after this observation.
    pub memory: AgentMemory,
}

/// The nodes whose agents converged manages, remembered in the state directory so the agent of
/// a node removed from the desired state is still known as converged's: node name → the
/// hostnames its agent registered under (the node name, or another one matched by address).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMemory {
    pub nodes: BTreeMap<String, BTreeSet<String>>,
}

impl AgentMemory {
    /// The remembered node whose agent registers as `hostname`.
    pub fn node_of(&self, hostname: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(node, hostnames)| *node == hostname || hostnames.contains(hostname))
            .map(|(node, _)| node.as_str())
    }
}

/// What converged remembers after observing `view`: every node with the `mesos-agent` role,
/// with the hostname its agent registered under once one did; a node no longer desired as an
/// agent is forgotten once the leader lists no agent of it (its tear-down is complete). Without
/// the leader's view nothing is forgotten.
pub fn remember(
    desired: &DesiredState,
    view: &Result<MasterView, String>,
    addresses: &BTreeMap<String, Result<NodeAddress, String>>,
    before: &AgentMemory,
) -> AgentMemory {
    let mut memory = before.clone();
    let known = match view {
        Ok(MasterView::Led { agents, .. }) => Some(agents),
        _ => None,
    };
    let mut desired_agents = BTreeSet::new();
    for node in desired.nodes_with_role(Role::MesosAgent) {
        desired_agents.insert(node.name.as_str());
        let hostnames = memory.nodes.entry(node.name.clone()).or_default();
        hostnames.insert(node.name.clone());
        let ip = addresses
            .get(&node.name)
            .and_then(|address| address.as_ref().ok())
            .map(|address| address.ip);
        if let Some(agent) = known.and_then(|agents| find_agent(agents, &node.name, ip)) {
            hostnames.insert(agent.hostname.clone());
        }
    }
    if let Some(agents) = known {
        memory.nodes.retain(|node, hostnames| {
            desired_agents.contains(node.as_str())
                || agents
                    .iter()
                    .any(|agent| hostnames.contains(&agent.hostname) || agent.hostname == *node)
        });
    }
    memory
}

/// Whose an agent that no desired agent node accounts for is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Its hostname is a node of the desired state that no longer has the `mesos-agent` role.
    NodeWithoutRole,
    /// Its node left the desired state; converged managed it and remembers it.
    Remembered,
    /// Neither: another cluster's or another tool's agent.
    Foreign,
}

#[derive(Debug, Clone)]
pub enum AgentAction {
    /// Restart the node's `mesos-agent` service as it is.
    Restart { node: String, ssh: SocketAddr },
    /// Put the machine into a maintenance window: the master stops offering its resources.
    ScheduleMaintenance { leader: String, machine: Machine },
    /// Kill Marathon's tasks on a draining machine without scaling down, so Marathon runs
    /// them elsewhere.
    MoveTasks { task_ids: Vec<String> },
    /// Bring the drained machine down: the master shuts its agent down.
    MachineDown { leader: String, machine: Machine },
}

/// The agent registered for `node` (by hostname, else by address), preferring an active one:
/// after a restart the master lists the new registration next to the old, inactive one.
pub fn find_agent<'a>(
    agents: &'a [Agent],
    node: &str,
    ip: Option<std::net::IpAddr>,
) -> Option<&'a Agent> {
    let by_name = |agent: &&Agent| agent.hostname == node;
    let by_ip = |agent: &&Agent| ip.is_some() && agent.ip == ip;
    let matching: Vec<&Agent> = if agents.iter().any(|agent| by_name(&agent)) {
        agents.iter().filter(by_name).collect()
    } else {
        agents.iter().filter(by_ip).collect()
    };
    matching
        .iter()
        .find(|agent| agent.active)
        .or_else(|| matching.first())
        .copied()
}

/// Agents converged owns that the leader knows and no desired agent node accounts for: to be
/// drained.
pub fn departing_agents<'a>(
    desired: &DesiredState,
    observed: &'a AgentsObserved,
) -> Vec<&'a Agent> {
    other_agents(desired, observed)
        .into_iter()
        .filter(|(_, ownership)| *ownership != Ownership::Foreign)
        .map(|(agent, _)| agent)
        .collect()
}

/// Agents the leader knows that belong to no desired agent node (by hostname or address), one
/// per hostname, the active registration preferred, each with whose it is.
pub fn other_agents<'a>(
    desired: &DesiredState,
    observed: &'a AgentsObserved,
) -> Vec<(&'a Agent, Ownership)> {
    let Ok(MasterView::Led { agents, .. }) = &observed.view else {
        return Vec::new();
    };
    let names: Vec<&str> = desired
        .nodes_with_role(Role::MesosAgent)
        .map(|node| node.name.as_str())
        .collect();
    let addresses: Vec<std::net::IpAddr> = names
        .iter()
        .filter_map(|name| observed.addresses.get(*name)?.as_ref().ok())
        .map(|address| address.ip)
        .collect();
    let mut by_host: BTreeMap<&str, &Agent> = BTreeMap::new();
    for agent in agents {
        let desired_here = names.contains(&agent.hostname.as_str())
            || agent.ip.is_some_and(|ip| addresses.contains(&ip));
        if desired_here {
            continue;
        }
        let chosen = by_host.entry(agent.hostname.as_str()).or_insert(agent);
        if agent.active && !chosen.active {
            *chosen = agent;
        }
    }
    by_host
        .into_values()
        .map(|agent| {
            let ownership = if desired.nodes.iter().any(|node| node.name == agent.hostname) {
                Ownership::NodeWithoutRole
            } else if observed.memory.node_of(&agent.hostname).is_some() {
                Ownership::Remembered
            } else {
                Ownership::Foreign
            };
            (agent, ownership)
        })
        .collect()
}

/// The machine a departing agent runs on, as the maintenance API names it.
pub fn machine_of(agent: &Agent) -> Machine {
    Machine {
        hostname: agent.hostname.to_lowercase(),
        ip: agent.ip.map(|ip| ip.to_string()).unwrap_or_default(),
    }
}

/// One agent no desired agent node accounts for: someone else's is left alone; converged's
/// own is drained.
fn other_plan(
    agent: &Agent,
    ownership: Ownership,
    leader: &str,
    observed: &AgentsObserved,
) -> Option<ResourcePlan<AgentAction>> {
    let why = match ownership {
        Ownership::Foreign => {
            return Some(ResourcePlan::new(
                ResourceId::new(Kind::MesosAgent, &agent.hostname),
                Verdict::Unmanaged {
                    reason:
                        "not a node of the desired state and never managed by converged: left alone"
                            .into(),
                },
            ));
        }
        Ownership::NodeWithoutRole => "the node no longer has the mesos-agent role",
        Ownership::Remembered => "the node left the desired state, and converged managed its agent",
    };
    drain_plan(agent, why, leader, observed)
}

/// One departing agent's next drain step. It is ready (its node may be released) only once its
/// machine is down.
fn drain_plan(
    agent: &Agent,
    why: &str,
    leader: &str,
    observed: &AgentsObserved,
) -> Option<ResourcePlan<AgentAction>> {
    let id = ResourceId::new(Kind::MesosAgent, &agent.hostname);
    let machine = machine_of(agent);
    let maintenance = match &observed.maintenance {
        Ok(maintenance) => maintenance,
        Err(reason) => {
            return Some(ResourcePlan::new(
                id,
                Verdict::Converging {
                    reason: format!(
                        "no longer desired; the maintenance status cannot be read: {reason}"
                    ),
                },
            ));
        }
    };
    let act = |action: AgentAction, verb: &'static str, reason: String| {
        ResourcePlan::act(
            id.clone(),
            vec![PlannedAction::new(action, verb, reason).deleting()],
        )
    };
    if maintenance.down.contains(&machine) {
        return Some(ResourcePlan::new(id, Verdict::InSync));
    }
    if maintenance.draining.contains(&machine) {
        let marathon_tasks: Vec<String> = agent
            .tasks
            .iter()
            .filter(|task| task.framework == MARATHON_FRAMEWORK)
            .map(|task| task.id.clone())
            .collect();
        if observed.can_move_tasks && !marathon_tasks.is_empty() {
            let count = marathon_tasks.len();
            return Some(act(
                AgentAction::MoveTasks {
                    task_ids: marathon_tasks,
                },
                "move_tasks",
                format!("draining: Marathon still runs {count} task(s) on the agent"),
            ));
        }
        return Some(act(
            AgentAction::MachineDown {
                leader: leader.to_owned(),
                machine,
            },
            "machine_down",
            "drained: no Marathon task left on the agent".into(),
        ));
    }
    // A dead registration of a node already gone holds nothing to drain.
    agent.active.then(|| {
        act(
            AgentAction::ScheduleMaintenance {
                leader: leader.to_owned(),
                machine,
            },
            "schedule_maintenance",
            format!("{why}: draining its agent"),
        )
    })
}

pub fn plan(desired: &DesiredState, observed: &AgentsObserved) -> KindPlan<AgentAction> {
    let mut resources = Vec::new();
    if let Ok(MasterView::Led { leader, .. }) = &observed.view {
        resources.extend(
            other_agents(desired, observed)
                .into_iter()
                .filter_map(|(agent, ownership)| other_plan(agent, ownership, leader, observed)),
        );
    }
    let ensemble = (desired.nodes_with_role(Role::Zookeeper).count() > 0)
        .then(|| ResourceId::new(Kind::ZookeeperEnsemble, &desired.cluster.name));
    for node in desired.nodes_with_role(Role::MesosAgent) {
        let id = ResourceId::new(Kind::MesosAgent, &node.name);
        let depends_on: Vec<ResourceId> = ensemble
            .iter()
            .cloned()
            .chain([service_id(&node.name, Role::MesosAgent.as_str())])
            .collect();
        let address = match observed.addresses.get(&node.name) {
            Some(Ok(address)) => address,
            Some(Err(reason)) => {
                resources.push(ResourcePlan::new(
                    id,
                    Verdict::Failed {
                        reason: reason.clone(),
                    },
                ));
                continue;
            }
            None => {
                resources.push(ResourcePlan::new(
                    id,
                    Verdict::Failed {
                        reason: "the node's address was not resolved".into(),
                    },
                ));
                continue;
            }
        };
        let verdict = match &observed.view {
            Err(reason) => Verdict::Converging {
                reason: format!("the masters cannot be read: {reason}"),
            },
            Ok(MasterView::NoLeader { reason }) => Verdict::Converging {
                reason: format!("no leading master: {reason}"),
            },
            Ok(MasterView::Led { leader, agents }) => {
                match find_agent(agents, &node.name, Some(address.ip)) {
                    Some(agent) if agent.active => {
                        let differs: Vec<String> = node
                            .attributes
                            .iter()
                            .filter(|(key, value)| agent.attributes.get(*key) != Some(*value))
                            .map(|(key, value)| format!("{key}={value}"))
                            .collect();
                        if differs.is_empty() {
                            Verdict::InSync
                        } else {
                            Verdict::Drifted {
                                reason: format!(
                                    "the agent announces other attributes than {}; its service is replaced by host_service",
                                    differs.join(", ")
                                ),
                                changes: Vec::new(),
                            }
                        }
                    }
                    found => {
                        let what = if found.is_some() {
                            "inactive"
                        } else {
                            "not registered"
                        };
                        let missing = observed
                            .missing_for
                            .get(&node.name)
                            .copied()
                            .unwrap_or_default();
                        if missing < observed.grace {
                            Verdict::Converging {
                                reason: format!(
                                    "agent {what} with leader {leader} for {} s (grace {} s)",
                                    missing.as_secs(),
                                    observed.grace.as_secs()
                                ),
                            }
                        } else {
                            Verdict::Act {
                                actions: vec![PlannedAction::new(
                                    AgentAction::Restart {
                                        node: node.name.clone(),
                                        ssh: address.ssh,
                                    },
                                    "restart_agent",
                                    format!(
                                        "agent {what} with leader {leader} for {} s, past the {} s grace period",
                                        missing.as_secs(),
                                        observed.grace.as_secs()
                                    ),
                                )],
                            }
                        }
                    }
                }
            }
        };
        resources.push(ResourcePlan::new(id, verdict).depends_on(depends_on));
    }
    // Without the leader's view, agents of dropped nodes may exist unseen: what waits for
    // their drain keeps waiting.
    let complete = !observed.masters_asked || matches!(observed.view, Ok(MasterView::Led { .. }));
    KindPlan::new(resources).complete(complete)
}

#[cfg(test)]
mod tests {
    use converged_core::model::{ClusterSpec, Mode, Node, NodePolicy, Services};

    use super::*;
    use crate::agent::api::AgentTask;

    fn node(name: &str, roles: &[Role]) -> Node {
        Node {
            name: name.into(),
            instance_type: "t2.micro".into(),
            ami: "ami-1".into(),
            volume_size_gb: 20,
            key_pair: None,
            roles: roles.to_vec(),
            attributes: BTreeMap::from([("env".to_owned(), name.to_owned())]),
            policy: NodePolicy::default(),
        }
    }

    fn desired() -> DesiredState {
        DesiredState {
            revision: "r".into(),
            cluster: ClusterSpec {
                name: "c".into(),
                region: None,
                mode: Mode::Enforce,
            },
            network: None,
            nodes: vec![node("a", &[Role::Zookeeper, Role::MesosAgent])],
            dns: None,
            services: Services::default(),
            kinds: BTreeMap::new(),
            apps: Vec::new(),
        }
    }

    fn agent(hostname: &str, active: bool, env: &str) -> Agent {
        Agent {
            id: "S0".into(),
            hostname: hostname.into(),
            ip: Some("127.0.0.9".parse().unwrap()),
            active,
            attributes: BTreeMap::from([("env".to_owned(), env.to_owned())]),
            tasks: Vec::new(),
        }
    }

    fn observed(view: Result<MasterView, String>, missing: u64) -> AgentsObserved {
        AgentsObserved {
            view,
            addresses: BTreeMap::from([(
                "a".to_owned(),
                Ok(NodeAddress {
                    ip: "127.0.0.1".parse().unwrap(),
                    ssh: "127.0.0.1:22".parse().unwrap(),
                    depends_on: None,
                }),
            )]),
            missing_for: BTreeMap::from([("a".to_owned(), Duration::from_secs(missing))]),
            grace: Duration::from_secs(10),
            maintenance: Ok(MaintenanceStatus::default()),
            can_move_tasks: true,
            masters_asked: true,
            memory: AgentMemory::default(),
        }
    }

    fn memory(nodes: &[(&str, &[&str])]) -> AgentMemory {
        AgentMemory {
            nodes: nodes
                .iter()
                .map(|(node, hostnames)| {
                    (
                        (*node).to_owned(),
                        hostnames.iter().map(|h| (*h).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn led(agents: Vec<Agent>) -> Result<MasterView, String> {
        Ok(MasterView::Led {
            leader: "m:5050".into(),
            agents,
        })
    }

    #[test]
    fn verdicts_for_each_situation() {
        let cases: Vec<(&str, AgentsObserved, &str)> = vec![
            (
                "active with its attributes",
                observed(led(vec![agent("a", true, "a")]), 0),
                "in_sync",
            ),
            (
                "active with other attributes",
                observed(led(vec![agent("a", true, "b")]), 0),
                "drifted",
            ),
            (
                "inactive within grace",
                observed(led(vec![agent("a", false, "a")]), 3),
                "converging",
            ),
            (
                "inactive past grace",
                observed(led(vec![agent("a", false, "a")]), 10),
                "restart_agent",
            ),
            (
                "missing past grace",
                observed(led(vec![agent("other", true, "a")]), 30),
                "restart_agent",
            ),
            (
                "no leader",
                observed(
                    Ok(MasterView::NoLeader {
                        reason: "election".into(),
                    }),
                    60,
                ),
                "converging",
            ),
            (
                "masters unreadable",
                observed(Err("refused".into()), 60),
                "converging",
            ),
        ];
        for (name, world, expected) in cases {
            let plan = plan(&desired(), &world);
            let resource = plan
                .resources
                .iter()
                .find(|r| r.id == ResourceId::new(Kind::MesosAgent, "a"))
                .unwrap();
            let got = match &resource.verdict {
                Verdict::InSync => "in_sync",
                Verdict::Drifted { .. } => "drifted",
                Verdict::Converging { .. } => "converging",
                Verdict::Act { actions } => actions[0].verb,
                _ => "other",
            };
            assert_eq!(got, expected, "{name}");
            assert_eq!(
                plan.complete,
                !matches!(name, "no leader" | "masters unreadable"),
                "{name}: complete only with the leader's view"
            );
            assert_eq!(
                resource.depends_on,
                [
                    ResourceId::new(Kind::ZookeeperEnsemble, "c"),
                    ResourceId::new(Kind::HostService, "a/mesos-agent")
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn agents_match_by_hostname_then_address() {
        let agents = vec![agent("x", true, "a")];
        assert!(find_agent(&agents, "a", Some("127.0.0.9".parse().unwrap())).is_some());
        assert!(find_agent(&agents, "a", Some("127.0.0.8".parse().unwrap())).is_none());
        assert!(find_agent(&agents, "x", None).is_some());
        let restarted = vec![agent("a", false, "a"), agent("a", true, "a")];
        assert!(
            find_agent(&restarted, "a", None).unwrap().active,
            "the new registration wins"
        );
    }

    fn departing(tasks: &[(&str, &str)]) -> Agent {
        let mut agent = agent("Gone", true, "gone");
        agent.ip = Some("127.0.0.7".parse().unwrap());
        agent.tasks = tasks
            .iter()
            .map(|(id, framework)| AgentTask {
                id: (*id).into(),
                framework: (*framework).into(),
            })
            .collect();
        agent
    }

    #[test]
    fn departing_agents_are_drained_step_by_step() {
        let gone = Machine {
            hostname: "gone".into(),
            ip: "127.0.0.7".into(),
        };
        let draining = MaintenanceStatus {
            draining: vec![gone.clone()],
            down: Vec::new(),
        };
        let down = MaintenanceStatus {
            draining: Vec::new(),
            down: vec![gone.clone()],
        };
        let with_marathon_task = departing(&[("web.1", "marathon"), ("job.1", "chronos")]);
        let with_other_task = departing(&[("job.1", "chronos")]);
        let mut dead = departing(&[]);
        dead.active = false;
        let cases: Vec<(&str, Agent, MaintenanceStatus, bool, Option<&str>)> = vec![
            (
                "active, not scheduled",
                with_marathon_task.clone(),
                MaintenanceStatus::default(),
                true,
                Some("schedule_maintenance"),
            ),
            (
                "draining with a Marathon task",
                with_marathon_task.clone(),
                draining.clone(),
                true,
                Some("move_tasks"),
            ),
            (
                "draining, no Marathon client",
                with_marathon_task,
                draining.clone(),
                false,
                Some("machine_down"),
            ),
            (
                "draining, only other frameworks' tasks",
                with_other_task,
                draining,
                true,
                Some("machine_down"),
            ),
            ("down", departing(&[]), down, true, Some("in_sync")),
            (
                "a dead registration, not scheduled",
                dead,
                MaintenanceStatus::default(),
                true,
                None,
            ),
        ];
        for (name, gone_agent, maintenance, can_move_tasks, expected) in cases {
            let mut world = observed(led(vec![agent("a", true, "a"), gone_agent]), 0);
            world.memory = memory(&[("gone", &["Gone"])]);
            world.maintenance = Ok(maintenance);
            world.can_move_tasks = can_move_tasks;
            let plan = plan(&desired(), &world);
            let drain = plan
                .resources
                .iter()
                .find(|r| r.id == ResourceId::new(Kind::MesosAgent, "Gone"));
            let got = drain.map(|resource| match &resource.verdict {
                Verdict::InSync => "in_sync",
                Verdict::Act { actions } => {
                    assert!(actions.iter().all(|a| a.deletes), "{name}: a drain deletes");
                    actions[0].verb
                }
                _ => "other",
            });
            assert_eq!(got, expected, "{name}");
            if let Some(resource) = drain {
                assert_eq!(
                    resource.ready,
                    got == Some("in_sync"),
                    "{name}: ready once down"
                );
            }
        }
    }

    #[test]
    fn agents_of_desired_nodes_are_never_drained() {
        let mut by_address = agent("ip-10-0-0-1", true, "a");
        by_address.ip = Some("127.0.0.1".parse().unwrap());
        let world = observed(led(vec![agent("a", true, "a"), by_address]), 0);
        assert!(departing_agents(&desired(), &world).is_empty());
        let unreadable = AgentsObserved {
            maintenance: Err("refused".into()),
            memory: memory(&[("gone", &["Gone"])]),
            ..observed(led(vec![departing(&[])]), 0)
        };
        let plan = plan(&desired(), &unreadable);
        assert!(matches!(
            plan.resources[0].verdict,
            Verdict::Converging { ref reason } if reason.contains("maintenance status")
        ));
    }

    /// `<resource> <verdict or first verb>: <reason>`, one per resource other than node `a`'s.
    fn others(plan: &KindPlan<AgentAction>) -> Vec<String> {
        plan.resources
            .iter()
            .filter(|r| r.id.name != "a")
            .map(|resource| {
                let (verdict, reason) = match &resource.verdict {
                    Verdict::Act { actions } => (actions[0].verb, actions[0].reason.as_str()),
                    Verdict::Unmanaged { reason } => ("unmanaged", reason.as_str()),
                    Verdict::InSync => ("in_sync", ""),
                    other => panic!("{other:?}"),
                };
                format!("{} {verdict}: {reason}", resource.id.name)
            })
            .collect()
    }

    #[test]
    fn only_agents_of_desired_or_remembered_nodes_are_converged_s() {
        let no_nodes = DesiredState {
            nodes: Vec::new(),
            ..desired()
        };
        let mut without_role = desired();
        without_role
            .nodes
            .push(node("b", &[Role::Zookeeper, Role::Marathon]));
        let mut aliased = agent("ip-10-0-0-7", true, "gone");
        aliased.ip = Some("127.0.0.7".parse().unwrap());
        let foreign = "not a node of the desired state and never managed by converged: left alone";
        // (name, desired, agents listed besides a's, remembered, expected for the others)
        type Case = (
            &'static str,
            DesiredState,
            Vec<Agent>,
            AgentMemory,
            Vec<String>,
        );
        let cases: Vec<Case> = vec![
            (
                "another cluster's agent is left alone",
                desired(),
                vec![agent("x", true, "x")],
                AgentMemory::default(),
                vec![format!("x unmanaged: {foreign}")],
            ),
            (
                "an inactive foreign registration too",
                desired(),
                vec![agent("x", false, "x")],
                AgentMemory::default(),
                vec![format!("x unmanaged: {foreign}")],
            ),
            (
                "a remembered node that left the desired state is drained",
                desired(),
                vec![agent("gone", true, "gone"), agent("x", true, "x")],
                memory(&[("a", &["a"]), ("gone", &["gone"])]),
                vec![
                    "gone schedule_maintenance: the node left the desired state, and converged managed its agent: draining its agent".into(),
                    format!("x unmanaged: {foreign}"),
                ],
            ),
            (
                "remembered under the hostname its agent registered with",
                desired(),
                vec![aliased],
                memory(&[("gone", &["gone", "ip-10-0-0-7"])]),
                vec!["ip-10-0-0-7 schedule_maintenance: the node left the desired state, and converged managed its agent: draining its agent".into()],
            ),
            (
                "a desired node without the role is drained, remembered or not",
                without_role,
                vec![agent("b", true, "b")],
                AgentMemory::default(),
                vec!["b schedule_maintenance: the node no longer has the mesos-agent role: draining its agent".into()],
            ),
            (
                "no nodes and no memory: nothing is converged's",
                no_nodes.clone(),
                vec![agent("a", true, "a"), agent("x", true, "x")],
                AgentMemory::default(),
                vec![format!("x unmanaged: {foreign}")],
            ),
            (
                "no nodes, but a remembered one: it alone is drained",
                no_nodes,
                vec![agent("x", true, "x")],
                memory(&[("a", &["a"])]),
                vec![format!("x unmanaged: {foreign}")],
            ),
        ];
        for (name, state, listed, remembered, expected) in cases {
            let mut agents = vec![agent("a", true, "a")];
            agents.extend(listed);
            let mut world = observed(led(agents), 0);
            world.memory = remembered;
            let plan = plan(&state, &world);
            assert_eq!(others(&plan), expected, "{name}");
            let a = plan.resources.iter().find(|r| r.id.name == "a");
            let a_verdict = a.map(|r| match &r.verdict {
                Verdict::InSync => "in_sync".to_owned(),
                Verdict::Act { actions } => actions[0].verb.to_owned(),
                Verdict::Unmanaged { .. } => "unmanaged".to_owned(),
                other => format!("{other:?}"),
            });
            let expected_a = if state.nodes.iter().any(|n| n.name == "a") {
                "in_sync"
            } else if world.memory.node_of("a").is_some() {
                "schedule_maintenance"
            } else {
                "unmanaged"
            };
            assert_eq!(a_verdict.as_deref(), Some(expected_a), "{name}: node a");
            for resource in &plan.resources {
                if matches!(resource.verdict, Verdict::Unmanaged { .. }) {
                    assert!(!resource.ready, "{name}: nothing waits on a foreign agent");
                }
            }
            let departing: Vec<&str> = departing_agents(&state, &world)
                .iter()
                .map(|agent| agent.hostname.as_str())
                .collect();
            let drained: Vec<&str> = plan
                .resources
                .iter()
                .filter(|r| r.actions().iter().any(|a| a.deletes))
                .map(|r| r.id.name.as_str())
                .collect();
            assert_eq!(
                departing, drained,
                "{name}: the maintenance status is read for exactly the drained"
            );
        }
    }

    #[test]
    fn the_memory_keeps_agent_nodes_until_their_tear_down_is_complete() {
        let mut by_address = agent("ip-10-0-0-1", true, "a");
        by_address.ip = Some("127.0.0.1".parse().unwrap());
        let no_nodes = DesiredState {
            nodes: Vec::new(),
            ..desired()
        };
        // (name, desired, the leader's view, remembered before, remembered after)
        type Case = (
            &'static str,
            DesiredState,
            Result<MasterView, String>,
            AgentMemory,
            AgentMemory,
        );
        let cases: Vec<Case> = vec![
            (
                "a desired agent node is remembered at once, registered or not",
                desired(),
                led(vec![]),
                AgentMemory::default(),
                memory(&[("a", &["a"])]),
            ),
            (
                "with the hostname its agent registered under",
                desired(),
                led(vec![by_address]),
                AgentMemory::default(),
                memory(&[("a", &["a", "ip-10-0-0-1"])]),
            ),
            (
                "a foreign agent is never remembered",
                no_nodes.clone(),
                led(vec![agent("x", true, "x")]),
                AgentMemory::default(),
                AgentMemory::default(),
            ),
            (
                "a removed node is kept while its agent is listed",
                no_nodes.clone(),
                led(vec![agent("a", false, "a")]),
                memory(&[("a", &["a"])]),
                memory(&[("a", &["a"])]),
            ),
            (
                "and forgotten once the leader lists it no more",
                no_nodes.clone(),
                led(vec![agent("x", true, "x")]),
                memory(&[("a", &["a"])]),
                AgentMemory::default(),
            ),
            (
                "without the leader's view nothing is forgotten",
                no_nodes,
                Err("refused".into()),
                memory(&[("a", &["a"])]),
                memory(&[("a", &["a"])]),
            ),
        ];
        for (name, state, view, before, after) in cases {
            let world = observed(view, 0);
            assert_eq!(
                remember(&state, &world.view, &world.addresses, &before),
                after,
                "{name}"
            );
        }
    }
}
