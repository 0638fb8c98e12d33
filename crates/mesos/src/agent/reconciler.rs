//! The `mesos_agent` reconciler (glue, does I/O): resolve node addresses, ask the masters for
//! the leader's view, track how long each agent has been missing, restart agent services
//! through the host layer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use converged_core::model::{Node, Role};
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{DesiredState, Kind, ReconcileError};
use converged_hosts::render::service_port;
use converged_hosts::{HostAction, HostLayer};

use super::api::{MasterView, MesosMaster};
use super::diff::{self, AgentAction, AgentsObserved, find_agent};
use super::error::AgentError;

pub struct MesosAgents {
    layer: Arc<HostLayer>,
    master: Arc<dyn MesosMaster>,
    /// `[mesos] url` split on commas; empty means the nodes with the `mesos-master` role.
    master_urls: Vec<String>,
    grace: Duration,
    missing_since: Mutex<BTreeMap<String, Instant>>,
}

impl MesosAgents {
    pub fn new(
        layer: Arc<HostLayer>,
        master: Arc<dyn MesosMaster>,
        master_urls: Vec<String>,
        grace: Duration,
    ) -> Self {
        Self {
            layer,
            master,
            master_urls,
            grace,
            missing_since: Mutex::new(BTreeMap::new()),
        }
    }
}

#[async_trait]
impl Reconciler for MesosAgents {
    type Observed = AgentsObserved;
    type Action = AgentAction;
    const KIND: Kind = Kind::MesosAgent;

    async fn observe(&self, desired: &DesiredState) -> Result<AgentsObserved, ReconcileError> {
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
        let view = if agents.is_empty() {
            Ok(MasterView::NoLeader {
                reason: "no agent nodes".into(),
            })
        } else {
            match self.master.view(&urls).await {
                Ok(view) => Ok(view),
                Err(err @ AgentError::AddressNotAllowed { .. }) => {
                    return Err(ReconcileError::Observe {
                        kind: "mesos_agent",
                        class: err.class(),
                        message: err.to_string(),
                    });
                }
                Err(err) => Err(err.to_string()),
            }
        };
        let now = Instant::now();
        let mut missing_since = self
            .missing_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut missing_for = BTreeMap::new();
        if let Ok(MasterView::Led { agents: known, .. }) = &view {
            for node in &agents {
                let ip = resolved
                    .get(&node.name)
                    .and_then(|address| address.as_ref().ok())
                    .map(|address| address.ip);
                let active = find_agent(known, &node.name, ip).is_some_and(|agent| agent.active);
                if active {
                    missing_since.remove(&node.name);
                } else {
                    let since = *missing_since.entry(node.name.clone()).or_insert(now);
                    missing_for.insert(node.name.clone(), now.duration_since(since));
                }
            }
        }
        drop(missing_since);
        Ok(AgentsObserved {
            view,
            addresses: resolved
                .into_iter()
                .map(|(node, address)| (node, address.map_err(|err| err.to_string())))
                .collect(),
            missing_for,
            grace: self.grace,
        })
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
                        AgentError::RestartAgent {
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
        }
        Ok(())
    }
}
