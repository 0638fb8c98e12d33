//! The master's in-memory view while it leads: registered agents with their last heartbeat,
//! frameworks with the tasks they last reported, the maintenance schedule and DOWN machines;
//! and the changes the agent and framework protocol makes to it. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::maintenance::{MachineMode, Refusal};
use crate::mesos::protocol::{FrameworkSync, OfferedAgent, RegisterAgent, SyncReply, TaskReport};
use crate::server::epoch_secs;

/// A registered agent.
#[derive(Clone, Debug)]
pub(super) struct Agent {
    /// What the agent registered with.
    pub(super) registration: RegisterAgent,
    pub(super) id: String,
    pub(super) registered_time: f64,
    pub(super) reregistered_time: Option<f64>,
    last_heartbeat: Instant,
    /// False once it missed a ping, until it is heard from again.
    pub(super) active: bool,
}

/// A framework as it last synced.
#[derive(Clone, Debug)]
pub(super) struct Framework {
    pub(super) sync: FrameworkSync,
    pub(super) id: String,
    pub(super) registered_time: f64,
    pub(super) reregistered_time: Option<f64>,
}

/// What the master knows in one term.
#[derive(Debug, Default)]
pub(super) struct MasterState {
    pub(super) agents: BTreeMap<String, Agent>,
    next_agent: u64,
    /// Agents removed for missing pings.
    pub(super) unreachable: u64,
    pub(super) frameworks: BTreeMap<String, Framework>,
    next_framework: u64,
    pub(super) elected_time: Option<f64>,
    /// Counts the terms this master has led, across the resets.
    term: u64,
    /// Maintenance windows as posted.
    pub(super) schedule: Vec<Value>,
    /// Machines brought DOWN, as (lowercased hostname, ip).
    pub(super) down: BTreeSet<(String, String)>,
}

/// Whether a task state still holds resources.
pub(super) fn live(state: &str) -> bool {
    matches!(
        state,
        "TASK_STAGING" | "TASK_STARTING" | "TASK_RUNNING" | "TASK_KILLING"
    )
}

impl MasterState {
    /// Starts afresh on a leadership change. A new leader starts from an empty in-memory view;
    /// agents and frameworks re-register (the registry's `recovered_slaves` is not simulated).
    /// Ids it hands out stay unique across its terms, as a restarted Mesos master's would under
    /// a new master id: an agent re-registering with its id must never meet another agent
    /// holding it.
    pub(super) fn start_term(&mut self, elected: bool) {
        *self = MasterState {
            elected_time: elected.then(|| epoch_secs(SystemTime::now())),
            next_agent: self.next_agent,
            next_framework: self.next_framework,
            term: self.term + u64::from(elected),
            ..MasterState::default()
        };
    }

    /// Deactivates agents silent for a `ping` timeout and removes those silent past `deadline`.
    pub(super) fn expire_silent_agents(
        &mut self,
        now: Instant,
        ping: Duration,
        deadline: Duration,
    ) {
        let mut removed = Vec::new();
        for agent in self.agents.values_mut() {
            let silent = now.duration_since(agent.last_heartbeat);
            if silent >= deadline {
                removed.push(agent.id.clone());
            } else if silent >= ping && agent.active {
                agent.active = false;
                tracing::info!(agent_id = %agent.id, "Agent disconnected: deactivated");
            }
        }
        for id in removed {
            self.agents.remove(&id);
            self.unreachable += 1;
            tracing::info!(agent_id = %id, "Agent missed too many pings: removed");
        }
    }

    /// Live tasks of every framework on an agent.
    pub(super) fn live_tasks_on(&self, agent_id: &str) -> Vec<&TaskReport> {
        self.frameworks
            .values()
            .flat_map(|framework| framework.sync.tasks.iter())
            .filter(|task| task.agent_id == agent_id && live(&task.state))
            .collect()
    }

    /// Registers an agent, or re-registers it under the id it brings; returns its id. An agent
    /// this master does not know that brings an id re-registers after a failover.
    pub(super) fn register_agent(
        &mut self,
        master_id: &str,
        registration: RegisterAgent,
    ) -> Result<String, Refusal> {
        if self.machine_mode(&registration.hostname, &registration.ip) == Some(MachineMode::Down) {
            return Err(Refusal::MachineDown);
        }
        let now = epoch_secs(SystemTime::now());
        if let Some(agent) = registration
            .id
            .as_ref()
            .and_then(|id| self.agents.get_mut(id))
        {
            agent.registration = registration;
            agent.reregistered_time = Some(now);
            agent.last_heartbeat = Instant::now();
            agent.active = true;
            return Ok(agent.id.clone());
        }
        let (id, reregistered_time) = match registration.id.clone() {
            Some(id) => {
                tracing::info!(agent_id = %id, hostname = %registration.hostname, "Re-registered agent");
                (id, Some(now))
            }
            None => {
                let id = format!("{master_id}-S{}", self.next_agent);
                self.next_agent += 1;
                tracing::info!(agent_id = %id, hostname = %registration.hostname, "Registered agent");
                (id, None)
            }
        };
        self.agents.insert(
            id.clone(),
            Agent {
                registration,
                id: id.clone(),
                registered_time: now,
                reregistered_time,
                last_heartbeat: Instant::now(),
                active: true,
            },
        );
        Ok(id)
    }

    /// Records a heartbeat, reactivating a deactivated agent; false if the agent is unknown.
    pub(super) fn heartbeat(&mut self, agent_id: &str) -> bool {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return false;
        };
        agent.last_heartbeat = Instant::now();
        if !agent.active {
            agent.active = true;
            tracing::info!(agent_id, "Agent reconnected: reactivated");
        }
        true
    }

    /// Takes a framework's sync (registering it on its first), and answers with its id, the
    /// agents it may use and this master's term.
    pub(super) fn sync_framework(&mut self, master_id: &str, sync: FrameworkSync) -> SyncReply {
        let now = epoch_secs(SystemTime::now());
        let id = match sync.id.clone() {
            Some(id) => id,
            None => {
                let id = format!("{master_id}-{:04}", self.next_framework);
                self.next_framework += 1;
                tracing::info!(framework_id = %id, name = %sync.name, "Registered framework");
                id
            }
        };
        match self.frameworks.get_mut(&id) {
            Some(framework) => framework.sync = sync,
            None => {
                let reregistered_time = sync.id.is_some().then_some(now);
                self.frameworks.insert(
                    id.clone(),
                    Framework {
                        sync,
                        id: id.clone(),
                        registered_time: now,
                        reregistered_time,
                    },
                );
            }
        }
        let agents = self
            .agents
            .values()
            .map(|agent| OfferedAgent {
                id: agent.id.clone(),
                hostname: agent.registration.hostname.clone(),
                resources: agent.registration.resources.clone(),
                attributes: agent.registration.attributes.clone(),
                active: agent.active,
                draining: self.machine_mode(&agent.registration.hostname, &agent.registration.ip)
                    == Some(MachineMode::Draining),
            })
            .collect();
        SyncReply {
            framework_id: id,
            agents,
            master_term: self.term,
        }
    }

    /// Forgets an agent; false if it was not registered.
    pub(super) fn deregister_agent(&mut self, agent_id: &str) -> bool {
        self.agents.remove(agent_id).is_some()
    }
}
