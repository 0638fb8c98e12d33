//! The `mesos_agent` reconciler (glue, does I/O): resolve node addresses, ask the masters for
//! the leader's view, remember which nodes' agents converged manages (in the state directory,
//! unless the registry is read-only), track how long each agent has been missing, restart
//! agent services through the host layer, and drain departing agents through the maintenance
//! API and Marathon.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use converged_core::model::{Node, Role};
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{Classified, DesiredState, Kind, ReconcileError};
use converged_hosts::render::service_port;
use converged_hosts::{HostAction, HostLayer, HostsError, NodeAddress};

use super::api::{Agent, MaintenanceStatus, MasterView, MesosMaster};
use super::diff::{self, AgentAction, AgentsObserved, find_agent};
use super::memory::AgentMemoryStore;
use crate::error::MesosError;
use crate::marathon::api::MarathonApi;

pub struct MesosAgents {
    layer: Arc<HostLayer>,
    master: Arc<dyn MesosMaster>,
    /// `[mesos] url` split on commas; empty means the nodes with the `mesos-master` role.
    master_urls: Vec<String>,
    grace: Duration,
    missing_since: Mutex<BTreeMap<String, Instant>>,
    marathon: Option<Arc<dyn MarathonApi>>,
    memory: AgentMemoryStore,
}

impl MesosAgents {
    pub fn new(
        layer: Arc<HostLayer>,
        master: Arc<dyn MesosMaster>,
        master_urls: Vec<String>,
        grace: Duration,
        memory: AgentMemoryStore,
    ) -> Self {
        Self {
            layer,
            master,
            master_urls,
            grace,
            missing_since: Mutex::new(BTreeMap::new()),
            marathon: None,
            memory,
        }
    }

    /// How long each agent node has gone without an active agent, remembering when each was
    /// first seen missing.
    fn track_missing(
        &self,
        nodes: &[&Node],
        known: &[Agent],
        resolved: &BTreeMap<String, Result<NodeAddress, HostsError>>,
    ) -> BTreeMap<String, Duration> {
        let now = Instant::now();
        let mut missing_since = self
            .missing_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut missing_for = BTreeMap::new();
        for node in nodes {
            let ip = resolved
                .get(&node.name)
                .and_then(|address| address.as_ref().ok())
                .map(|address| address.ip);
            if find_agent(known, &node.name, ip).is_some_and(|agent| agent.active) {
                missing_since.remove(&node.name);
            } else {
                let since = *missing_since.entry(node.name.clone()).or_insert(now);
                missing_for.insert(node.name.clone(), now.duration_since(since));
            }
        }
        missing_for
    }

    /// Lets a drain move Marathon's tasks off a departing agent before its machine goes down;
    /// without it, the master kills them at machine down and Marathon replaces them then.
    pub fn with_marathon(mut self, marathon: Arc<dyn MarathonApi>) -> Self {
        self.marathon = Some(marathon);
        self
    }
}

#[async_trait]
impl Reconciler for MesosAgents {
    type Observed = AgentsObserved;
    type Action = AgentAction;
    const KIND: Kind = Kind::MesosAgent;

    async fn observe(&self, desired: &DesiredState) -> Result<AgentsObserved, ReconcileError> {
        let remembered = self
            .memory
            .load()
            .await
            .map_err(|err| err.into_observe("mesos_agent"))?;
        let nodes: Vec<Node> = desired
            .nodes
            .iter()
            .filter(|node| {
                node.roles.contains(&Role::MesosAgent) || node.roles.contains(&Role::MesosMaster)
            })
            .cloned()
            .collect();
        let resolved = self.layer.resolve(desired, &nodes).await;
        let urls = if self.master_urls.is_empty() {
            let port = service_port(desired, Role::MesosMaster);
            desired
                .nodes_with_role(Role::MesosMaster)
                .filter_map(|node| resolved.get(&node.name)?.as_ref().ok())
                .map(|address| format!("http://{}", std::net::SocketAddr::new(address.ip, port)))
                .collect()
        } else {
            self.master_urls.clone()
        };
        let agents: Vec<&Node> = desired.nodes_with_role(Role::MesosAgent).collect();
        let masters_exist = !self.master_urls.is_empty()
            || desired.nodes_with_role(Role::MesosMaster).next().is_some();
        // Asked even without agent nodes: agents of nodes dropped from the desired state are
        // drained before their nodes go.
        let view = if !masters_exist {
            Ok(MasterView::NoLeader {
                reason: "no masters".into(),
            })
        } else if urls.is_empty() {
            Err("no master address is known yet".to_owned())
        } else {
            match self.master.view(&urls).await {
                Ok(view) => Ok(view),
                Err(err @ MesosError::AddressNotAllowed { .. }) => {
                    return Err(err.into_observe("mesos_agent"));
                }
                Err(err) => Err(err.to_string()),
            }
        };
        let missing_for = match &view {
            Ok(MasterView::Led { agents: known, .. }) => {
                self.track_missing(&agents, known, &resolved)
            }
            _ => BTreeMap::new(),
        };
        let addresses: BTreeMap<String, Result<NodeAddress, String>> = resolved
            .into_iter()
            .map(|(node, address)| (node, address.map_err(|err| err.to_string())))
            .collect();
        let memory = diff::remember(desired, &view, &addresses, &remembered);
        if memory != remembered
            && self
                .memory
                .record(&memory)
                .await
                .map_err(|err| err.into_observe("mesos_agent"))?
        {
            let nodes: Vec<&String> = memory.nodes.keys().collect();
            let forgotten: Vec<&String> = remembered
                .nodes
                .keys()
                .filter(|node| !memory.nodes.contains_key(*node))
                .collect();
            tracing::info!(nodes = ?nodes, forgotten = ?forgotten, path = %self.memory.path().display(), "recorded the Mesos agents converged manages");
        }
        let mut observed = AgentsObserved {
            view,
            addresses,
            missing_for,
            grace: self.grace,
            maintenance: Ok(MaintenanceStatus::default()),
            can_move_tasks: self.marathon.is_some(),
            masters_asked: masters_exist,
            memory,
        };
        if let Ok(MasterView::Led { leader, .. }) = &observed.view
            && !diff::departing_agents(desired, &observed).is_empty()
        {
            observed.maintenance = self
                .master
                .maintenance_status(leader)
                .await
                .map_err(|err| err.to_string());
        }
        Ok(observed)
    }

    fn plan(desired: &DesiredState, observed: &AgentsObserved) -> KindPlan<AgentAction> {
        diff::plan(desired, observed)
    }

    async fn apply(&self, action: &AgentAction) -> Result<(), ReconcileError> {
        match action {
            AgentAction::Restart { node, ssh } => {
                self.layer
                    .apply(&HostAction::Restart {
                        node: node.clone(),
                        service: Role::MesosAgent.as_str().to_owned(),
                        ssh: *ssh,
                    })
                    .await
                    .map_err(|source| {
                        MesosError::RestartAgent {
                            node: node.clone(),
                            source: Box::new(source),
                        }
                        .into_apply("restart_agent")
                    })?;
                // A restarted agent gets a fresh grace period to register.
                self.missing_since
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(node.clone(), Instant::now());
                tracing::info!(node = %node, "restarted Mesos agent service");
            }
            AgentAction::ScheduleMaintenance { leader, machine } => {
                self.master
                    .schedule_maintenance(leader, machine)
                    .await
                    .map_err(|err| err.into_apply("schedule_maintenance"))?;
                tracing::info!(hostname = %machine.hostname, ip = %machine.ip, "scheduled maintenance for a departing agent");
            }
            AgentAction::MoveTasks { task_ids } => {
                let Some(marathon) = &self.marathon else {
                    return Ok(());
                };
                marathon
                    .kill_tasks(task_ids)
                    .await
                    .map_err(|err| err.into_apply("move_tasks"))?;
                tracing::info!(
                    tasks = task_ids.len(),
                    "killed Marathon tasks on a draining agent for Marathon to replace elsewhere"
                );
            }
            AgentAction::MachineDown { leader, machine } => {
                self.master
                    .machine_down(leader, machine)
                    .await
                    .map_err(|err| err.into_apply("machine_down"))?;
                tracing::info!(hostname = %machine.hostname, ip = %machine.ip, "brought a drained machine down");
            }
        }
        Ok(())
    }
}
