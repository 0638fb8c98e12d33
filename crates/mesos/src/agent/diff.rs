//! The `mesos_agent` plan (pure, no client): agent nodes × the leading master's view → in
//! sync, waiting (no leader, grace period, attributes still rolling out), or restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use converged_core::model::Role;
use converged_core::plan::{KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::{DesiredState, Kind, ResourceId};
use converged_hosts::NodeAddress;
use converged_hosts::service::diff::service_id;

use super::api::{Agent, MasterView};

#[derive(Debug, Clone)]
pub struct AgentsObserved {
    pub view: Result<MasterView, String>,
    pub addresses: BTreeMap<String, Result<NodeAddress, String>>,
    /// How long each agent node has been seen without an active agent.
    pub missing_for: BTreeMap<String, Duration>,
    pub grace: Duration,
}

#[derive(Debug, Clone)]
pub enum AgentAction {
    /// Restart the node's `mesos-agent` service as it is.
    Restart { node: String, ssh: SocketAddr },
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

pub fn plan(desired: &DesiredState, observed: &AgentsObserved) -> KindPlan<AgentAction> {
    let mut resources = Vec::new();
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
    KindPlan::new(resources)
}

#[cfg(test)]
mod tests {
    use converged_core::model::{ClusterSpec, Mode, Node, NodePolicy, Services};

    use super::*;

    fn desired() -> DesiredState {
        let node = |name: &str| Node {
            name: name.into(),
            instance_type: "t2.micro".into(),
            ami: "ami-1".into(),
            volume_size_gb: 20,
            key_pair: None,
            roles: vec![Role::Zookeeper, Role::MesosAgent],
            attributes: BTreeMap::from([("env".to_owned(), name.to_owned())]),
            policy: NodePolicy::default(),
        };
        DesiredState {
            revision: "r".into(),
            cluster: ClusterSpec {
                name: "c".into(),
                region: None,
                mode: Mode::Enforce,
            },
            network: None,
            nodes: vec![node("a")],
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
            let resource = &plan.resources[0];
            let got = match &resource.verdict {
                Verdict::InSync => "in_sync",
                Verdict::Drifted { .. } => "drifted",
                Verdict::Converging { .. } => "converging",
                Verdict::Act { actions } => actions[0].verb,
                _ => "other",
            };
            assert_eq!(got, expected, "{name}");
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
}
