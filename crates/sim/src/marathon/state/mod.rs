//! Marathon's in-memory state: apps with their versions, deployment plans with upstream step
//! structure, tasks, the agents last offered, launch backoff and what the next leader restores.
//! Changes the REST API asks for are in `changes`, placement on agents in `placement`, and what a
//! scheduler tick advances in `progress`. No I/O.

mod changes;
mod placement;
mod progress;

pub use changes::{Deployed, Refusal, TaskKill, Updated};

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::marathon::app::{self, Profile};
use crate::mesos::protocol::{OfferedAgent, TaskReport};
use crate::resources::{DEFAULT_ROLE, Resources};
use crate::server::{epoch_secs, iso};

/// A deployment action kind [`MAR@HEAD:M/core/deployment/DeploymentPlan.scala`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionKind {
    /// `StartApplication` (scale to 0).
    Start,
    /// `StopApplication`.
    Stop,
    /// `ScaleApplication`.
    Scale,
    /// `RestartApplication`.
    Restart,
}

impl ActionKind {
    /// The upstream action name.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Start => "StartApplication",
            ActionKind::Stop => "StopApplication",
            ActionKind::Scale => "ScaleApplication",
            ActionKind::Restart => "RestartApplication",
        }
    }
}

/// One action of a step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// App id.
    pub app: String,
    restart_started: bool,
}

/// A running deployment plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployment {
    /// Plan id (UUID v4).
    pub id: String,
    /// Plan version (timestamp).
    pub version: String,
    /// Apps the plan touches.
    pub affected: Vec<String>,
    /// Steps of actions.
    pub steps: Vec<Vec<Action>>,
    /// Index of the step being executed.
    pub current: usize,
    /// App definitions before the plan, for rollback (`None` = app did not exist).
    pub original: BTreeMap<String, Option<AppEntry>>,
}

/// An app and its history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppEntry {
    /// Canonical definition (with `version`).
    pub def: Value,
    /// `versionInfo.lastScalingAt`.
    pub last_scaling_at: String,
    /// `versionInfo.lastConfigChangeAt`.
    pub last_config_change_at: String,
    /// Stored versions, oldest first.
    pub versions: Vec<(String, Value)>,
}

/// Health state of a task.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// Whether the last check passed.
    pub alive: bool,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// First success.
    pub first_success: Option<String>,
    /// Last success.
    pub last_success: Option<String>,
    /// Last failure.
    pub last_failure: Option<String>,
}

/// A task (one instance).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    /// Mesos task id.
    pub id: String,
    /// App id.
    pub app_id: String,
    /// Agent id.
    pub agent_id: String,
    /// Agent hostname.
    pub host: String,
    /// Host ports.
    pub ports: Vec<u32>,
    /// Service ports at launch.
    pub service_ports: Vec<u32>,
    /// When staged.
    pub staged_at: SystemTime,
    #[serde(skip, default = "Instant::now")]
    staged_instant: Instant,
    /// When it became running.
    pub started_at: Option<SystemTime>,
    #[serde(skip)]
    started_instant: Option<Instant>,
    /// Config version of the app it runs.
    pub version: String,
    /// Resources taken, by the role they were taken from.
    pub resources: Resources,
    /// Health (only with health checks, after the first check); not stored, as Marathon keeps
    /// health in memory and checks again after a failover.
    #[serde(skip)]
    pub health: Option<Health>,
    #[serde(skip)]
    next_check: Option<Instant>,
}

impl Task {
    /// `TASK_STAGING` or `TASK_RUNNING`.
    pub fn state(&self) -> &'static str {
        if self.started_at.is_some() {
            "TASK_RUNNING"
        } else {
            "TASK_STAGING"
        }
    }
}

/// Per-app launch backoff [`MAR@1.1.1:M/core/launchqueue/impl/RateLimiter.scala`].
#[derive(Clone, Debug)]
pub struct Backoff {
    /// Current delay.
    pub delay: Duration,
    /// Launches wait until this instant.
    pub until: Instant,
}

/// Simulation timing knobs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Time from launch to TASK_RUNNING.
    pub staging_delay: Duration,
    /// Multiplier for app-defined durations (health check intervals, grace periods, backoff).
    pub time_scale: f64,
}

/// Whose resources Marathon may launch on: unreserved ones (`*`) and those reserved for its
/// `--mesos_role`, the only roles Mesos offers it [`MAR@1.1.1:docs/command-line-flags.md`].
#[derive(Clone, Debug, Default)]
pub struct RolePolicy {
    /// `--mesos_role`.
    pub mesos_role: Option<String>,
    /// `--default_accepted_resource_roles`, for apps without `acceptedResourceRoles`; unset means
    /// every role Marathon is offered.
    pub default_accepted: Option<Vec<String>>,
}

impl RolePolicy {
    /// The roles an app's tasks take resources from, reserved roles before `*`.
    fn usable_by(&self, app: &Value) -> Vec<String> {
        let offered: Vec<String> = std::iter::once(DEFAULT_ROLE.to_string())
            .chain(self.mesos_role.clone())
            .collect();
        let accepted: Vec<String> = match app["acceptedResourceRoles"].as_array() {
            Some(roles) if !roles.is_empty() => roles
                .iter()
                .filter_map(|role| role.as_str().map(String::from))
                .collect(),
            _ => self
                .default_accepted
                .clone()
                .unwrap_or_else(|| offered.clone()),
        };
        let mut usable: Vec<String> = accepted
            .into_iter()
            .filter(|role| offered.contains(role))
            .collect();
        usable.sort_by_key(|role| (role == DEFAULT_ROLE, role.clone()));
        usable.dedup();
        usable
    }
}

/// What the leading Marathon keeps in ZooKeeper, so that the next leader carries on with the
/// same framework, apps, deployments and tasks (`--zk`, "ZooKeeper URL for storing state"
/// [`MAR@1.1.1:docs/command-line-flags.md`]). The layout is the simulator's own.
#[derive(Debug, Deserialize)]
pub struct Persisted {
    /// The Mesos framework id the next leader re-registers with.
    pub framework_id: Option<String>,
    apps: BTreeMap<String, AppEntry>,
    deployments: Vec<Deployment>,
    tasks: BTreeMap<String, Task>,
}

/// [`Persisted`] borrowed from the live state, for writing.
#[derive(Serialize)]
struct PersistedView<'a> {
    framework_id: Option<&'a str>,
    apps: &'a BTreeMap<String, AppEntry>,
    deployments: &'a [Deployment],
    tasks: &'a BTreeMap<String, Task>,
}

/// Marathon's whole state.
#[derive(Debug)]
pub struct MarathonState {
    /// Profile imitated.
    pub profile: Profile,
    /// Timing knobs.
    pub timing: Timing,
    /// Roles whose resources tasks may take.
    pub roles: RolePolicy,
    /// Apps by id.
    pub apps: BTreeMap<String, AppEntry>,
    /// Running deployments, oldest first.
    pub deployments: Vec<Deployment>,
    /// Live tasks by id.
    pub tasks: BTreeMap<String, Task>,
    /// Agents as last seen from the master.
    pub agents: Vec<OfferedAgent>,
    /// Apps whose health checks are forced to fail (admin).
    pub failing_health: BTreeSet<String>,
    /// Launch backoff by app.
    pub backoff: BTreeMap<String, Backoff>,
    /// Last task failure by app.
    pub last_failure: BTreeMap<String, Value>,
    /// Terminal statuses to report to the master once.
    pub finished: Vec<TaskReport>,
    /// When each app entered the launch queue.
    pub queued_since: BTreeMap<String, SystemTime>,
    seen_agents: BTreeSet<String>,
}

fn scaled(secs: f64, scale: f64) -> Duration {
    Duration::from_secs_f64((secs * scale).max(0.0))
}

/// A new version timestamp: now, in the ISO-8601 form Marathon writes versions in.
pub fn version_now() -> String {
    iso(SystemTime::now())
}

/// Mesos task name: path segments reversed and joined by `.` [`MAR@1.1.1:M/state/PathId.scala#toHostname`].
pub fn task_name(app_id: &str) -> String {
    let mut segments: Vec<&str> = app_id
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    segments.reverse();
    segments.join(".")
}

impl MarathonState {
    /// Empty state.
    pub fn new(profile: Profile, timing: Timing, roles: RolePolicy) -> Self {
        Self {
            profile,
            timing,
            roles,
            apps: BTreeMap::new(),
            deployments: Vec::new(),
            tasks: BTreeMap::new(),
            agents: Vec::new(),
            failing_health: BTreeSet::new(),
            backoff: BTreeMap::new(),
            last_failure: BTreeMap::new(),
            finished: Vec::new(),
            queued_since: BTreeMap::new(),
            seen_agents: BTreeSet::new(),
        }
    }

    /// What a next leader needs, serialized for ZooKeeper.
    pub fn persisted(&self, framework_id: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&PersistedView {
            framework_id,
            apps: &self.apps,
            deployments: &self.deployments,
            tasks: &self.tasks,
        })
        .expect("string-keyed maps of JSON values and plain structs serialize")
    }

    /// Takes over what the previous leader stored. Tasks count as just staged or started (their
    /// timers start again) and are health checked at once.
    pub fn restore(&mut self, stored: Persisted) {
        let now = Instant::now();
        self.apps = stored.apps;
        self.deployments = stored.deployments;
        self.tasks = stored.tasks;
        for task in self.tasks.values_mut() {
            task.staged_instant = now;
            task.started_instant = task.started_at.map(|_| now);
            task.next_check = task.started_instant;
        }
    }

    /// Service ports used by apps other than `except`.
    fn taken_service_ports(&self, except: &str) -> BTreeSet<u32> {
        self.apps
            .values()
            .filter(|entry| entry.def["id"] != json!(except))
            .flat_map(|entry| app::service_ports(&entry.def))
            .collect()
    }

    /// Deployments that touch any of `ids`.
    fn conflicts(&self, ids: &[String]) -> Vec<String> {
        self.deployments
            .iter()
            .filter(|deployment| deployment.affected.iter().any(|app| ids.contains(app)))
            .map(|deployment| deployment.id.clone())
            .collect()
    }

    /// Cancels deployments by id (no rollback).
    fn cancel(&mut self, ids: &[String]) {
        self.deployments
            .retain(|deployment| !ids.contains(&deployment.id));
    }

    /// Starts a plan; returns its id.
    fn start_deployment(
        &mut self,
        version: &str,
        steps: Vec<Vec<(ActionKind, String)>>,
        original: BTreeMap<String, Option<AppEntry>>,
    ) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let affected: Vec<String> = original.keys().cloned().collect();
        let steps: Vec<Vec<Action>> = steps
            .into_iter()
            .filter(|step| !step.is_empty())
            .map(|step| {
                step.into_iter()
                    .map(|(kind, app)| Action {
                        kind,
                        app,
                        restart_started: false,
                    })
                    .collect()
            })
            .collect();
        tracing::info!(deployment_id = %id, steps = steps.len(), apps = ?affected, "Started deployment");
        self.deployments.push(Deployment {
            id: id.clone(),
            version: version.to_string(),
            affected,
            steps,
            current: 0,
            original,
        });
        id
    }

    /// Live tasks of an app.
    pub fn tasks_of(&self, app_id: &str) -> Vec<&Task> {
        self.tasks
            .values()
            .filter(|task| task.app_id == app_id)
            .collect()
    }

    fn has_health_checks(&self, app_id: &str) -> bool {
        self.apps
            .get(app_id)
            .and_then(|entry| entry.def["healthChecks"].as_array())
            .is_some_and(|checks| !checks.is_empty())
    }

    /// Running and, with health checks, healthy: what a deployment step waits for.
    fn ready(&self, task: &Task) -> bool {
        task.started_at.is_some()
            && (!self.has_health_checks(&task.app_id)
                || task.health.as_ref().is_some_and(|health| health.alive))
    }

    /// Kills a task; `failed` marks it as a failure (backoff, lastTaskFailure).
    pub fn kill(&mut self, task_id: &str, failed: bool, message: &str) -> Option<Task> {
        let task = self.tasks.remove(task_id)?;
        let state = if failed { "TASK_FAILED" } else { "TASK_KILLED" };
        let now = SystemTime::now();
        self.finished.push(TaskReport {
            id: task.id.clone(),
            name: task_name(&task.app_id),
            agent_id: task.agent_id.clone(),
            state: state.into(),
            resources: task.resources.total(),
            statuses: vec![(state.into(), epoch_secs(now))],
            healthy: None,
        });
        if failed {
            self.last_failure.insert(
                task.app_id.clone(),
                json!({"appId": task.app_id, "host": task.host, "message": message, "state": state,
                       "taskId": task.id, "timestamp": iso(now), "version": task.version, "slaveId": task.agent_id}),
            );
            if let Some(app) = self.apps.get(&task.app_id) {
                let base = app.def["backoffSeconds"].as_f64().unwrap_or(1.0);
                let factor = app.def["backoffFactor"].as_f64().unwrap_or(1.15);
                let max = app.def["maxLaunchDelaySeconds"].as_f64().unwrap_or(300.0);
                let delay = match self.backoff.get(&task.app_id) {
                    Some(backoff) => {
                        Duration::from_secs_f64((backoff.delay.as_secs_f64() * factor).min(max))
                    }
                    None => Duration::from_secs_f64(base.min(max)),
                };
                let until = Instant::now() + scaled(delay.as_secs_f64(), self.timing.time_scale);
                self.backoff
                    .insert(task.app_id.clone(), Backoff { delay, until });
            }
        }
        tracing::info!(task_id = %task.id, app_id = %task.app_id, state, "Task ended");
        Some(task)
    }

    /// Applies the master's agent list. Tasks on an agent that this master had listed and no longer
    /// lists are LOST; after a master change (`same_master` false) agents get time to re-register.
    pub fn set_agents(&mut self, agents: Vec<OfferedAgent>, same_master: bool) {
        if !same_master {
            self.seen_agents.clear();
        }
        let known: BTreeSet<String> = agents.iter().map(|agent| agent.id.clone()).collect();
        self.agents = agents;
        let lost: Vec<String> = self
            .tasks
            .values()
            .filter(|task| {
                self.seen_agents.contains(&task.agent_id) && !known.contains(&task.agent_id)
            })
            .map(|task| task.id.clone())
            .collect();
        self.seen_agents.extend(known);
        for id in lost {
            self.kill(&id, true, "Agent removed");
        }
    }

    /// Forgets the agents while no master can be reached: nothing is placed until one answers.
    pub fn forget_agents(&mut self) {
        self.agents.clear();
    }

    /// Drops the first `count` terminal statuses, which the master has now been sent (statuses
    /// added since the reports were taken stay).
    pub fn drop_reported_finished(&mut self, count: usize) {
        let count = count.min(self.finished.len());
        self.finished.drain(..count);
    }

    /// Instances still to launch per app (the launch queue).
    pub fn queue(&self) -> Vec<(String, usize)> {
        self.apps
            .iter()
            .filter_map(|(id, entry)| {
                let target = entry.def["instances"].as_u64().unwrap_or(0) as usize;
                let have = self
                    .tasks_of(id)
                    .iter()
                    .filter(|task| {
                        task.version == entry.def["version"].as_str().unwrap_or_default()
                    })
                    .count();
                let restarting = self
                    .deployments
                    .iter()
                    .any(|deployment| deployment.affected.contains(id));
                let missing = if restarting {
                    target.saturating_sub(have)
                } else {
                    target.saturating_sub(self.tasks_of(id).len())
                };
                (missing > 0).then(|| (id.clone(), missing))
            })
            .collect()
    }

    /// Task reports for the master (live tasks plus terminal ones not yet reported).
    pub fn reports(&mut self) -> Vec<TaskReport> {
        let mut reports: Vec<TaskReport> = self
            .tasks
            .values()
            .map(|task| {
                let mut statuses = vec![("TASK_STAGING".to_string(), epoch_secs(task.staged_at))];
                if let Some(started) = task.started_at {
                    statuses.push(("TASK_RUNNING".to_string(), epoch_secs(started)));
                }
                TaskReport {
                    id: task.id.clone(),
                    name: task_name(&task.app_id),
                    agent_id: task.agent_id.clone(),
                    state: task.state().into(),
                    resources: task.resources.total(),
                    statuses,
                    healthy: task.health.as_ref().map(|health| health.alive),
                }
            })
            .collect();
        reports.extend(self.finished.iter().cloned());
        reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_reverse_segments() {
        assert_eq!(task_name("/prod/web"), "web.prod");
    }
}
