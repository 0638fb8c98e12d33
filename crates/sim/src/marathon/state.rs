//! Marathon's in-memory state and scheduler: apps with versions, deployment plans with upstream
//! step structure, task placement on agents (constraints, roles, cpus/mem/disk/ports), rolling
//! restarts per upgradeStrategy, staged→running, simulated health checks and launch backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::marathon::app::{self, Profile};
use crate::mesos::protocol::{OfferedAgent, TaskReport};
use crate::resources::{Bundle, DEFAULT_ROLE, Ranges, Resources};
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
                .filter_map(|r| r.as_str().map(String::from))
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

/// Mesos task id [`MAR@1.1.1:M/core/task/Task.scala#Id.forApp`; `MAR@HEAD:M/core/instance/Instance.scala`].
fn task_id(profile: Profile, app_id: &str) -> String {
    let safe = app_id.trim_start_matches('/').replace('/', "_");
    let node: [u8; 6] = rand::random();
    let uuid = uuid::Uuid::now_v1(&node);
    match profile {
        Profile::V11 => format!("{safe}.{uuid}"),
        Profile::V110 => format!("{safe}.instance-{uuid}._app.1"),
    }
}

/// Mesos task name: path segments reversed and joined by `.` [`MAR@1.1.1:M/state/PathId.scala#toHostname`].
pub fn task_name(app_id: &str) -> String {
    let mut segs: Vec<&str> = app_id.split('/').filter(|s| !s.is_empty()).collect();
    segs.reverse();
    segs.join(".")
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
    pub fn taken_service_ports(&self, except: &str) -> BTreeSet<u32> {
        self.apps
            .values()
            .filter(|a| a.def["id"] != json!(except))
            .flat_map(|a| app::service_ports(&a.def))
            .collect()
    }

    /// Deployments that touch any of `ids`.
    pub fn conflicts(&self, ids: &[String]) -> Vec<String> {
        self.deployments
            .iter()
            .filter(|d| d.affected.iter().any(|a| ids.contains(a)))
            .map(|d| d.id.clone())
            .collect()
    }

    /// Cancels deployments by id (no rollback).
    pub fn cancel(&mut self, ids: &[String]) {
        self.deployments.retain(|d| !ids.contains(&d.id));
    }

    /// Starts a plan; returns its id.
    pub fn start_deployment(
        &mut self,
        version: &str,
        steps: Vec<Vec<(ActionKind, String)>>,
        original: BTreeMap<String, Option<AppEntry>>,
    ) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let affected: Vec<String> = original.keys().cloned().collect();
        let steps: Vec<Vec<Action>> = steps
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.into_iter()
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
        self.tasks.values().filter(|t| t.app_id == app_id).collect()
    }

    fn has_health_checks(&self, app_id: &str) -> bool {
        self.apps
            .get(app_id)
            .and_then(|a| a.def["healthChecks"].as_array())
            .is_some_and(|h| !h.is_empty())
    }

    fn ready(&self, t: &Task) -> bool {
        t.started_at.is_some()
            && (!self.has_health_checks(&t.app_id) || t.health.as_ref().is_some_and(|h| h.alive))
    }

    /// Kills a task; `failed` marks it as a failure (backoff, lastTaskFailure).
    pub fn kill(&mut self, task_id: &str, failed: bool, message: &str) -> Option<Task> {
        let t = self.tasks.remove(task_id)?;
        let state = if failed { "TASK_FAILED" } else { "TASK_KILLED" };
        let now = SystemTime::now();
        self.finished.push(TaskReport {
            id: t.id.clone(),
            name: task_name(&t.app_id),
            agent_id: t.agent_id.clone(),
            state: state.into(),
            resources: t.resources.total(),
            statuses: vec![(state.into(), epoch_secs(now))],
            healthy: None,
        });
        if failed {
            self.last_failure.insert(
                t.app_id.clone(),
                json!({"appId": t.app_id, "host": t.host, "message": message, "state": state,
                       "taskId": t.id, "timestamp": iso(now), "version": t.version, "slaveId": t.agent_id}),
            );
            if let Some(app) = self.apps.get(&t.app_id) {
                let base = app.def["backoffSeconds"].as_f64().unwrap_or(1.0);
                let factor = app.def["backoffFactor"].as_f64().unwrap_or(1.15);
                let max = app.def["maxLaunchDelaySeconds"].as_f64().unwrap_or(300.0);
                let delay = match self.backoff.get(&t.app_id) {
                    Some(b) => Duration::from_secs_f64((b.delay.as_secs_f64() * factor).min(max)),
                    None => Duration::from_secs_f64(base.min(max)),
                };
                let until = Instant::now() + scaled(delay.as_secs_f64(), self.timing.time_scale);
                self.backoff
                    .insert(t.app_id.clone(), Backoff { delay, until });
            }
        }
        tracing::info!(task_id = %t.id, app_id = %t.app_id, state, "Task ended");
        Some(t)
    }

    /// What is left of an agent's resources of `role` after the tasks placed on it.
    fn free_on(&self, agent: &OfferedAgent, role: &str) -> Bundle {
        let total = agent.resources.0.get(role).cloned().unwrap_or_default();
        self.tasks
            .values()
            .filter(|t| t.agent_id == agent.id)
            .filter_map(|t| t.resources.0.get(role))
            .fold(total, |free, used| free.minus(used))
    }

    fn attribute(agent: &OfferedAgent, field: &str) -> Option<String> {
        if field == "hostname" {
            return Some(agent.hostname.clone());
        }
        agent.attributes.get(field).map(|a| a.as_text())
    }

    /// Marathon constraint matching [`MAR@1.1.1:src/main/scala/mesosphere/mesos/Constraints.scala`].
    fn constraints_ok(&self, app: &Value, agent: &OfferedAgent) -> bool {
        let siblings: Vec<&Task> = self.tasks_of(app["id"].as_str().unwrap_or_default());
        let agent_of = |t: &Task| self.agents.iter().find(|a| a.id == t.agent_id).cloned();
        for c in app["constraints"].as_array().into_iter().flatten() {
            let parts: Vec<&str> = c
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let (field, op, value) = (parts[0], parts[1], parts.get(2).copied());
            let mine = Self::attribute(agent, field);
            let full_match = |pattern: &str, s: &str| glob_regex_match(pattern, s);
            let ok = match op {
                "UNIQUE" => {
                    mine.is_some()
                        && siblings
                            .iter()
                            .all(|t| agent_of(t).and_then(|a| Self::attribute(&a, field)) != mine)
                }
                "CLUSTER" => match value {
                    Some(v) if !v.is_empty() => mine.as_deref() == Some(v),
                    _ => siblings
                        .first()
                        .and_then(|t| agent_of(t))
                        .is_none_or(|a| Self::attribute(&a, field) == mine),
                },
                "IS" => mine.as_deref() == value,
                "LIKE" => mine
                    .as_deref()
                    .is_some_and(|m| full_match(value.unwrap_or(""), m)),
                "UNLIKE" => mine
                    .as_deref()
                    .is_none_or(|m| !full_match(value.unwrap_or(""), m)),
                "MAX_PER" => {
                    let max: usize = value.and_then(|v| v.parse().ok()).unwrap_or(0);
                    mine.is_some()
                        && siblings
                            .iter()
                            .filter(|t| {
                                agent_of(t).and_then(|a| Self::attribute(&a, field)) == mine
                            })
                            .count()
                            < max
                }
                "GROUP_BY" => {
                    // Spread evenly: place on a value with the fewest instances among known values.
                    let Some(m) = mine else { return false };
                    let mut counts: BTreeMap<String, usize> = self
                        .agents
                        .iter()
                        .filter_map(|a| Self::attribute(a, field))
                        .map(|v| (v, 0))
                        .collect();
                    for t in &siblings {
                        if let Some(v) = agent_of(t).and_then(|a| Self::attribute(&a, field)) {
                            *counts.entry(v).or_default() += 1;
                        }
                    }
                    let min = counts.values().copied().min().unwrap_or(0);
                    counts.get(&m).copied().unwrap_or(0) == min
                }
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// Tries to place one instance of `app`; returns the task if an agent fits.
    fn place(&self, app: &Value) -> Option<Task> {
        let app_id = app["id"].as_str().unwrap_or_default();
        let need = Bundle {
            cpus: app["cpus"].as_f64().unwrap_or(1.0),
            mem: app["mem"].as_f64().unwrap_or(128.0),
            disk: app["disk"].as_f64().unwrap_or(0.0),
            ports: Ranges::default(),
        };
        let roles = self.roles.usable_by(app);
        let host_net = app::network_mode(app) == "host";
        let require_ports = app["requirePorts"].as_bool().unwrap_or(false);
        let wanted: Vec<u32> = if host_net {
            app::service_ports(app)
        } else {
            app["container"]["portMappings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p["hostPort"].as_u64().map(|h| h as u32))
                        .collect()
                })
                .unwrap_or_default()
        };
        for agent in self.agents.iter().filter(|a| a.active && !a.draining) {
            if !self.constraints_ok(app, agent) {
                continue;
            }
            let free: Vec<(&str, Bundle)> = roles
                .iter()
                .map(|role| (role.as_str(), self.free_on(agent, role)))
                .collect();
            let Some((ports, resources)) = take(&free, &need, &wanted, host_net, require_ports)
            else {
                continue;
            };
            let now = SystemTime::now();
            return Some(Task {
                id: task_id(self.profile, app_id),
                app_id: app_id.to_string(),
                agent_id: agent.id.clone(),
                host: agent.hostname.clone(),
                ports,
                service_ports: app::service_ports(app),
                staged_at: now,
                staged_instant: Instant::now(),
                started_at: None,
                started_instant: None,
                version: app["version"].as_str().unwrap_or_default().to_string(),
                resources,
                health: None,
                next_check: None,
            });
        }
        None
    }

    /// Launches one instance of `app_id` unless backed off or nothing fits; true if launched.
    fn launch(&mut self, app_id: &str) -> bool {
        if self
            .backoff
            .get(app_id)
            .is_some_and(|b| b.until > Instant::now())
        {
            return false;
        }
        let Some(app) = self.apps.get(app_id).map(|a| a.def.clone()) else {
            return false;
        };
        match self.place(&app) {
            Some(t) => {
                tracing::info!(task_id = %t.id, app_id, agent_id = %t.agent_id, "Launched task");
                self.tasks.insert(t.id.clone(), t);
                true
            }
            None => {
                self.queued_since
                    .entry(app_id.to_string())
                    .or_insert_with(SystemTime::now);
                false
            }
        }
    }

    fn kill_youngest(&mut self, app_id: &str, n: usize, version: Option<&str>) {
        let mut ts: Vec<(SystemTime, String)> = self
            .tasks_of(app_id)
            .into_iter()
            .filter(|t| version.is_none_or(|v| t.version != v))
            .map(|t| (t.staged_at, t.id.clone()))
            .collect();
        ts.sort();
        ts.reverse();
        for (_, id) in ts.into_iter().take(n) {
            self.kill(&id, false, "killed by deployment");
        }
    }

    /// Applies the master's agent list. Tasks on an agent that this master had listed and no longer
    /// lists are LOST; after a master change (`same_master` false) agents get time to re-register.
    pub fn set_agents(&mut self, agents: Vec<OfferedAgent>, same_master: bool) {
        if !same_master {
            self.seen_agents.clear();
        }
        let known: BTreeSet<String> = agents.iter().map(|a| a.id.clone()).collect();
        self.agents = agents;
        let lost: Vec<String> = self
            .tasks
            .values()
            .filter(|t| self.seen_agents.contains(&t.agent_id) && !known.contains(&t.agent_id))
            .map(|t| t.id.clone())
            .collect();
        self.seen_agents.extend(known);
        for id in lost {
            self.kill(&id, true, "Agent removed");
        }
    }

    /// Advances tasks, health checks, deployments and instance upkeep by one tick.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let scale = self.timing.time_scale;
        let staging = self.timing.staging_delay;
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for id in ids {
            let Some(t) = self.tasks.get(&id) else {
                continue;
            };
            let hcs = self
                .apps
                .get(&t.app_id)
                .and_then(|a| a.def["healthChecks"].as_array().cloned())
                .unwrap_or_default();
            let failing = self.failing_health.contains(&t.app_id);
            let mut kill = false;
            if let Some(t) = self.tasks.get_mut(&id) {
                if t.started_at.is_none() && now.duration_since(t.staged_instant) >= staging {
                    t.started_at = Some(SystemTime::now());
                    t.started_instant = Some(now);
                    if let Some(hc) = hcs.first() {
                        let interval = hc["intervalSeconds"].as_f64().unwrap_or(10.0);
                        t.next_check = Some(now + scaled(interval, scale));
                    }
                }
                if let (Some(hc), Some(next), Some(started)) =
                    (hcs.first(), t.next_check, t.started_instant)
                    && now >= next
                {
                    let interval = hc["intervalSeconds"].as_f64().unwrap_or(10.0);
                    let grace = hc["gracePeriodSeconds"].as_f64().unwrap_or(15.0);
                    let max_failures = hc["maxConsecutiveFailures"].as_u64().unwrap_or(3) as u32;
                    t.next_check = Some(now + scaled(interval, scale));
                    let h = t.health.get_or_insert_with(Health::default);
                    let ts = iso(SystemTime::now());
                    if failing {
                        // Failures inside the grace period are ignored until the first success
                        // [`v1.1.1/resource-docs/AppsResource_create.md` gracePeriodSeconds].
                        let in_grace = now.duration_since(started) < scaled(grace, scale)
                            && h.first_success.is_none();
                        if !in_grace {
                            h.alive = false;
                            h.consecutive_failures += 1;
                            h.last_failure = Some(ts);
                            kill = max_failures > 0 && h.consecutive_failures >= max_failures;
                        }
                    } else {
                        h.alive = true;
                        h.consecutive_failures = 0;
                        h.first_success.get_or_insert(ts.clone());
                        h.last_success = Some(ts);
                    }
                }
            }
            if kill {
                self.kill(&id, true, "Task was killed since health check failed");
            }
        }
        self.advance_deployments();
        self.upkeep();
    }

    fn advance_deployments(&mut self) {
        let mut i = 0;
        while i < self.deployments.len() {
            let mut d = self.deployments[i].clone();
            let mut finished = false;
            loop {
                let Some(step) = d.steps.get_mut(d.current) else {
                    finished = true;
                    break;
                };
                let mut all_done = true;
                for action in step.iter_mut() {
                    if !self.run_action(action) {
                        all_done = false;
                    }
                }
                if all_done {
                    d.current += 1;
                } else {
                    break;
                }
            }
            if finished {
                tracing::info!(deployment_id = %d.id, "Deployment finished");
                self.deployments.remove(i);
            } else {
                self.deployments[i] = d;
                i += 1;
            }
        }
    }

    /// Runs one action for a tick; true when complete.
    fn run_action(&mut self, action: &mut Action) -> bool {
        let app_id = action.app.clone();
        match action.kind {
            ActionKind::Start => true,
            ActionKind::Stop => {
                let ids: Vec<String> = self
                    .tasks_of(&app_id)
                    .iter()
                    .map(|t| t.id.clone())
                    .collect();
                for id in ids {
                    self.kill(&id, false, "app deleted");
                }
                true
            }
            ActionKind::Scale => {
                let Some(target) = self
                    .apps
                    .get(&app_id)
                    .and_then(|a| a.def["instances"].as_u64())
                else {
                    return true;
                };
                let target = target as usize;
                let current = self.tasks_of(&app_id).len();
                if current > target {
                    self.kill_youngest(&app_id, current - target, None);
                }
                while self.tasks_of(&app_id).len() < target {
                    if !self.launch(&app_id) {
                        break;
                    }
                }
                let tasks = self.tasks_of(&app_id);
                tasks.len() == target && tasks.iter().all(|t| self.ready(t))
            }
            ActionKind::Restart => self.restart_step(action),
        }
    }

    /// Rolling replacement [`MAR@HEAD:M/core/deployment/impl/TaskReplaceActor.scala#computeRestartStrategy`].
    fn restart_step(&mut self, action: &mut Action) -> bool {
        let app_id = action.app.clone();
        let Some(app) = self.apps.get(&app_id).map(|a| a.def.clone()) else {
            return true;
        };
        let version = app["version"].as_str().unwrap_or_default().to_string();
        let n = app["instances"].as_u64().unwrap_or(0) as usize;
        let mhc = app["upgradeStrategy"]["minimumHealthCapacity"]
            .as_f64()
            .unwrap_or(1.0);
        let moc = app["upgradeStrategy"]["maximumOverCapacity"]
            .as_f64()
            .unwrap_or(1.0);
        let min_healthy = (n as f64 * mhc).ceil() as usize;
        let mut max_capacity = (n as f64 * (1.0 + moc)).floor() as usize;
        let old: Vec<String> = self
            .tasks_of(&app_id)
            .iter()
            .filter(|t| t.version != version)
            .map(|t| t.id.clone())
            .collect();
        if min_healthy == max_capacity && max_capacity <= old.len() {
            max_capacity += 1;
        }
        if !action.restart_started {
            action.restart_started = true;
            let kill_now = old.len().saturating_sub(min_healthy);
            self.kill_youngest(&app_id, kill_now, Some(&version));
        }
        let new_ready = self
            .tasks_of(&app_id)
            .iter()
            .filter(|t| t.version == version && self.ready(t))
            .count();
        let old_alive = self
            .tasks_of(&app_id)
            .iter()
            .filter(|t| t.version != version)
            .count();
        let keep_old = min_healthy.saturating_sub(new_ready);
        if old_alive > keep_old {
            self.kill_youngest(&app_id, old_alive - keep_old, Some(&version));
        }
        loop {
            let tasks = self.tasks_of(&app_id);
            let new_total = tasks.iter().filter(|t| t.version == version).count();
            if new_total >= n || tasks.len() >= max_capacity || !self.launch(&app_id) {
                break;
            }
        }
        let tasks = self.tasks_of(&app_id);
        let new_ready = tasks
            .iter()
            .filter(|t| t.version == version && self.ready(t))
            .count();
        let old_alive = tasks.iter().filter(|t| t.version != version).count();
        new_ready >= n && old_alive == 0
    }

    /// Outside deployments, keeps each app at its instance count (replacing lost/failed tasks).
    fn upkeep(&mut self) {
        let locked: BTreeSet<String> = self
            .deployments
            .iter()
            .flat_map(|d| d.affected.clone())
            .collect();
        let ids: Vec<String> = self.apps.keys().cloned().collect();
        for id in ids {
            if locked.contains(&id) {
                continue;
            }
            let target = self.apps[&id].def["instances"].as_u64().unwrap_or(0) as usize;
            while self.tasks_of(&id).len() < target {
                if !self.launch(&id) {
                    break;
                }
            }
            if self.tasks_of(&id).len() >= target {
                self.queued_since.remove(&id);
            }
        }
    }

    /// Instances still to launch per app (the launch queue).
    pub fn queue(&self) -> Vec<(String, usize)> {
        self.apps
            .iter()
            .filter_map(|(id, a)| {
                let target = a.def["instances"].as_u64().unwrap_or(0) as usize;
                let have = self
                    .tasks_of(id)
                    .iter()
                    .filter(|t| t.version == a.def["version"].as_str().unwrap_or_default())
                    .count();
                let restarting = self.deployments.iter().any(|d| d.affected.contains(id));
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
        let mut out: Vec<TaskReport> = self
            .tasks
            .values()
            .map(|t| {
                let mut statuses = vec![("TASK_STAGING".to_string(), epoch_secs(t.staged_at))];
                if let Some(s) = t.started_at {
                    statuses.push(("TASK_RUNNING".to_string(), epoch_secs(s)));
                }
                TaskReport {
                    id: t.id.clone(),
                    name: task_name(&t.app_id),
                    agent_id: t.agent_id.clone(),
                    state: t.state().into(),
                    resources: t.resources.total(),
                    statuses,
                    healthy: t.health.as_ref().map(|h| h.alive),
                }
            })
            .collect();
        out.extend(self.finished.iter().cloned());
        out
    }
}

/// Takes one instance's resources from what is free in each usable role, in order: scalars from
/// as many roles as it takes, each port from the role that offers it. Returns the host ports in
/// the order wanted and what was taken from each role.
fn take(
    free: &[(&str, Bundle)],
    need: &Bundle,
    wanted: &[u32],
    host_net: bool,
    require_ports: bool,
) -> Option<(Vec<u32>, Resources)> {
    let mut taken: BTreeMap<String, Bundle> = BTreeMap::new();
    let scalars = |b: &Bundle| [b.cpus, b.mem, b.disk];
    for (index, mut needed) in scalars(need).into_iter().enumerate() {
        for (role, bundle) in free {
            let amount = needed.min(scalars(bundle)[index]);
            if amount > 0.0 {
                let from_role = taken.entry(role.to_string()).or_default();
                *[&mut from_role.cpus, &mut from_role.mem, &mut from_role.disk][index] += amount;
                needed -= amount;
            }
        }
        if needed > 1e-9 {
            return None;
        }
    }
    let offered = free
        .iter()
        .fold(Bundle::default(), |all, (_, bundle)| all.plus(bundle))
        .ports;
    let ports = pick_ports(&offered, wanted, host_net, require_ports)?;
    for &port in &ports {
        if let Some((role, _)) = free.iter().find(|(_, bundle)| bundle.ports.contains(port)) {
            let from_role = taken.entry(role.to_string()).or_default();
            from_role.ports = from_role.ports.plus_port(port);
        }
    }
    Some((ports, Resources(taken)))
}

/// Picks host ports: fixed ones must be free; `0` (or non-required service ports) take free ones.
fn pick_ports(free: &Ranges, wanted: &[u32], host_net: bool, require: bool) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    let mut avail = free.clone();
    for &w in wanted {
        let fixed = if host_net { require && w != 0 } else { w != 0 };
        if fixed {
            if !avail.contains(w) {
                return None;
            }
            out.push(w);
            avail = avail.without(&[w]);
        } else {
            // Marathon picks non-fixed host ports at random from the offer [`MAR@1.1.1:src/main/scala/mesosphere/mesos/PortsMatcher.scala`].
            let p = avail.random()?;
            out.push(p);
            avail = avail.without(&[p]);
        }
    }
    Some(out)
}

/// Full-string match of a Java-style regex subset used in LIKE/UNLIKE (literals, `.`, `.*`, `|`,
/// character classes are not supported and match literally).
fn glob_regex_match(pattern: &str, s: &str) -> bool {
    pattern
        .split('|')
        .any(|alt| wildcard(alt.as_bytes(), s.as_bytes()))
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'.', b'*', rest @ ..] => (0..=s.len()).any(|i| wildcard(rest, &s[i..])),
        [b'.', rest @ ..] => !s.is_empty() && wildcard(rest, &s[1..]),
        [c, rest @ ..] => s.first() == Some(c) && wildcard(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Resources, parse_attributes};

    fn agent(id: &str, host: &str, res: &str, attrs: &str) -> OfferedAgent {
        OfferedAgent {
            id: id.into(),
            hostname: host.into(),
            resources: Resources::parse(res).unwrap(),
            attributes: parse_attributes(attrs).unwrap(),
            active: true,
            draining: false,
        }
    }

    fn state() -> MarathonState {
        state_with(RolePolicy::default())
    }

    fn state_with(roles: RolePolicy) -> MarathonState {
        MarathonState::new(
            Profile::V110,
            Timing {
                staging_delay: Duration::ZERO,
                time_scale: 0.0,
            },
            roles,
        )
    }

    fn add_app(s: &mut MarathonState, body: Value) -> String {
        let mut def = app::normalize(Profile::V110, &body).unwrap();
        def["version"] = json!(iso(SystemTime::now()));
        let id = def["id"].as_str().unwrap().to_string();
        s.apps.insert(
            id.clone(),
            AppEntry {
                def,
                last_scaling_at: String::new(),
                last_config_change_at: String::new(),
                versions: Vec::new(),
            },
        );
        id
    }

    #[test]
    fn unique_hostname_and_cluster_constraints() {
        let mut s = state();
        s.set_agents(
            vec![
                agent("a", "h1", "cpus:4;mem:1000;ports:[31000-31010]", "env:prod"),
                agent(
                    "b",
                    "h2",
                    "cpus:4;mem:1000;ports:[31000-31010]",
                    "env:staging",
                ),
            ],
            true,
        );
        let id = add_app(
            &mut s,
            json!({"id": "/u", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 3,
            "constraints": [["hostname", "UNIQUE"]]}),
        );
        s.tick();
        assert_eq!(s.tasks_of(&id).len(), 2, "only two hosts for UNIQUE");
        let id = add_app(
            &mut s,
            json!({"id": "/c", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2,
            "constraints": [["env", "CLUSTER", "staging"]]}),
        );
        s.tick();
        assert!(s.tasks_of(&id).iter().all(|t| t.host == "h2"));
    }

    #[test]
    fn memory_and_ports_are_accounted() {
        let mut s = state();
        s.set_agents(
            vec![agent("a", "h1", "cpus:1;mem:497;ports:[31000-31001]", "")],
            true,
        );
        let id = add_app(
            &mut s,
            json!({"id": "/m", "cmd": "x", "cpus": 0.1, "mem": 300, "instances": 2}),
        );
        s.tick();
        assert_eq!(s.tasks_of(&id).len(), 1);
        let id = add_app(
            &mut s,
            json!({"id": "/p", "cmd": "x", "cpus": 0.1, "mem": 1, "instances": 3}),
        );
        s.tick();
        assert_eq!(s.tasks_of(&id).len(), 1, "two ports only, one taken");
    }

    #[test]
    fn ports_reserved_for_marathons_role_go_only_to_apps_that_accept_it() {
        let mut s = state_with(RolePolicy {
            mesos_role: Some("slave_public".into()),
            default_accepted: Some(vec!["*".into()]),
        });
        s.set_agents(
            vec![agent(
                "a",
                "h1",
                "cpus:4;mem:1000;ports(slave_public):[80-80];ports:[31000-31000]",
                "",
            )],
            true,
        );
        let random = add_app(
            &mut s,
            json!({"id": "/random", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2}),
        );
        s.tick();
        let placed = s.tasks_of(&random);
        assert_eq!(placed.len(), 1, "port 80 is not offered to it");
        assert_eq!(placed[0].ports, vec![31000]);

        let edge = add_app(
            &mut s,
            json!({"id": "/edge", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2,
            "acceptedResourceRoles": ["*", "slave_public"], "requirePorts": true,
            "portDefinitions": [{"port": 80}]}),
        );
        s.tick();
        let placed = s.tasks_of(&edge);
        assert_eq!(placed.len(), 1, "the reserved port 80 is taken once");
        assert_eq!(placed[0].ports, vec![80]);
        let taken = &placed[0].resources.0;
        assert_eq!(taken["slave_public"].ports, Ranges(vec![(80, 80)]));
        assert_eq!(taken["*"].cpus, 0.1, "cpus are unreserved only");
    }

    #[test]
    fn a_role_marathon_is_not_registered_with_is_never_offered() {
        let mut s = state();
        s.set_agents(
            vec![agent(
                "a",
                "h1",
                "cpus(slave_public):4;mem(slave_public):1000;ports(slave_public):[80-80]",
                "",
            )],
            true,
        );
        let id = add_app(
            &mut s,
            json!({"id": "/edge", "cmd": "x", "cpus": 0.1, "mem": 10,
            "acceptedResourceRoles": ["slave_public"]}),
        );
        s.tick();
        assert!(s.tasks_of(&id).is_empty());
    }

    #[test]
    fn regex_subset() {
        assert!(glob_regex_match("rack-.*", "rack-1"));
        assert!(glob_regex_match("a|b", "b"));
        assert!(!glob_regex_match("a.", "a"));
    }
}
