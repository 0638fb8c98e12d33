//! The simulator's internal master↔agent and master↔framework messages (a JSON stand-in for libprocess).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::{AttrValue, Bundle, Resources};

/// Path prefix of the internal messages; not part of any upstream API.
pub const INTERNAL: &str = "/__sim_internal";

/// An agent (re-)registering with the master.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterAgent {
    /// Agent id when re-registering.
    pub id: Option<String>,
    /// `--hostname`.
    pub hostname: String,
    /// IP the agent listens on.
    pub ip: String,
    /// Port the agent listens on.
    pub port: u16,
    /// `--resources`.
    pub resources: Resources,
    /// `--attributes`.
    pub attributes: BTreeMap<String, AttrValue>,
    /// Mesos version the agent reports.
    pub version: String,
}

/// The master's answer to a registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registered {
    /// Assigned agent id.
    pub id: String,
}

/// A heartbeat from an agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Agent id.
    pub id: String,
}

/// A task as the framework reports it to the master.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskReport {
    /// Mesos task id.
    pub id: String,
    /// Mesos task name.
    pub name: String,
    /// Agent the task runs on.
    pub agent_id: String,
    /// Mesos task state, e.g. `TASK_RUNNING`.
    pub state: String,
    /// Resources the task uses (ports as ranges).
    pub resources: Bundle,
    /// Status updates `(state, timestamp)`.
    pub statuses: Vec<(String, f64)>,
    /// Latest health check verdict, if any.
    pub healthy: Option<bool>,
}

/// A framework's periodic (re-)registration and task reconciliation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FrameworkSync {
    /// Framework id once assigned.
    pub id: Option<String>,
    /// Framework name.
    pub name: String,
    /// Scheduler hostname.
    pub hostname: String,
    /// Scheduler pid, e.g. `scheduler-<uuid>@127.0.0.1:8080`.
    pub pid: String,
    /// Web UI URL.
    pub webui_url: String,
    /// The role the framework registered with (`*` when none).
    pub role: String,
    /// Framework capabilities.
    pub capabilities: Vec<String>,
    /// Every task the framework knows about.
    pub tasks: Vec<TaskReport>,
}

/// An agent as a framework sees it (the offer view).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OfferedAgent {
    /// Agent id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// Total resources by role.
    pub resources: Resources,
    /// Attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// Whether the agent is active (offers are only made for active agents).
    pub active: bool,
    /// Whether the machine is DRAINING under a maintenance schedule.
    pub draining: bool,
}

/// The master's answer to a framework sync.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncReply {
    /// The framework id.
    pub framework_id: String,
    /// Registered agents.
    pub agents: Vec<OfferedAgent>,
    /// Which leadership term of the master answered. A master that lost leadership and won it
    /// back starts from an empty view, as a restarted Mesos master would, at the same address:
    /// a framework tells the two apart by the term.
    pub master_term: u64,
}
