//! One read-only pass (does I/O: reads the folder, observes every kind, acts on nothing): the
//! plans go through the same decision core the engine uses, with the running daemon's holds,
//! backoff and pause when there is one. Serves `converged plan` and `GET /v1/plan`; the report
//! and its rendering are plain data so the CLI can print a plan the daemon sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use converged_core::Problem;
use converged_core::decide::{CyclePolicy, Decision, Effect, LeftAloneBy, Memory, decide};
use converged_core::model::{DesiredState, Mode};
use converged_core::plan::FieldChange;
use converged_core::reconciler::{ErasedPayload, Registry};
use converged_core::{Kind, ResourceId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::desired;
use crate::status::Shared;

/// The engine's memory after its last cycle: what a plan asked of the daemon decides with.
#[derive(Debug, Default)]
pub struct LiveMemory {
    memory: RwLock<Memory<Instant>>,
}

impl LiveMemory {
    pub fn publish(&self, memory: Memory<Instant>) {
        *self
            .memory
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = memory;
    }

    pub fn snapshot(&self) -> Memory<Instant> {
        self.memory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The running daemon's state a plan takes into account.
#[derive(Clone)]
pub struct DaemonView {
    pub shared: Arc<Shared>,
    pub memory: Arc<LiveMemory>,
}

/// Where a plan was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    /// By the running daemon, with its environment, holds, backoff and pause.
    Daemon,
    /// In this process: the daemon's holds, backoff and pause are not known, and secrets
    /// resolve from this process's environment.
    Local,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReport {
    pub revision: String,
    pub source: PlanSource,
    pub kinds: Vec<KindPlanReport>,
    pub summary: PlanSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindPlanReport {
    pub kind: String,
    pub mode: String,
    pub prune: bool,
    /// The kind could not be observed: nothing of it is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub resources: Vec<ResourceReport>,
}

/// One resource: what the daemon will do with it and what `/status` will show after its
/// next cycle (for `apply`, once the actions succeeded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceReport {
    /// `kind/name`.
    pub resource: String,
    /// `in_sync`, `apply`, `converging`, `blocked`, `drifted`, `held`, `refused`, `failed`,
    /// `unmanaged`.
    pub decision: String,
    /// `+` create, `~` change, `-` delete, `-/+` replace, `!` would fail, `=` left alone,
    /// `.` waits (converging, blocked), ` ` in sync.
    pub symbol: String,
    pub condition: String,
    pub reason: String,
    /// What leaves a drifted resource alone: `observe_mode`, `paused`, `prune_off`,
    /// `reconciler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_alone_by: Option<LeftAloneBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_on: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionReport>,
    /// Field changes of a drift the reconciler reports without actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionReport {
    pub verb: String,
    pub reason: String,
    pub deletes: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeReport {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl From<&FieldChange> for ChangeReport {
    fn from(change: &FieldChange) -> Self {
        Self {
            path: change.path.clone(),
            from: change.from.clone(),
            to: change.to.clone(),
        }
    }
}

/// The counts behind the plan's closing line and its exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub to_create: usize,
    pub to_change: usize,
    pub to_delete: usize,
    pub to_replace: usize,
    /// Drifted and left alone, by the policy's words (`prune is off for instance`).
    pub drifted: BTreeMap<String, usize>,
    /// Blocked, by the kind they wait for.
    pub blocked: BTreeMap<String, usize>,
    pub converging: usize,
    /// Held, refused or failed: the daemon would report them failed.
    pub failing: usize,
    pub unmanaged: usize,
    pub in_sync: usize,
    /// Kinds that could not be observed.
    pub unobserved: usize,
}

impl PlanSummary {
    /// `0` nothing would be acted on and nothing differs; `2` the daemon would act, or
    /// something drifted, waits or converges; `1` a kind cannot be observed or a resource
    /// would fail for a reason known now.
    pub fn exit_code(&self) -> u8 {
        if self.unobserved > 0 || self.failing > 0 {
            1
        } else if self.to_create + self.to_change + self.to_delete + self.to_replace > 0
            || !self.drifted.is_empty()
            || !self.blocked.is_empty()
            || self.converging > 0
        {
            2
        } else {
            0
        }
    }

    /// `Plan: 2 to create, 1 to change, 0 to delete; 1 drifted and left alone (prune is off
    /// for instance); 3 blocked on zookeeper_ensemble`.
    pub fn closing_line(&self) -> String {
        let mut line = format!(
            "Plan: {} to create, {} to change, {} to delete",
            self.to_create, self.to_change, self.to_delete
        );
        if self.to_replace > 0 {
            line.push_str(&format!(", {} to replace", self.to_replace));
        }
        let mut clauses = Vec::new();
        if !self.drifted.is_empty() {
            let total: usize = self.drifted.values().sum();
            let policies: Vec<&str> = self.drifted.keys().map(String::as_str).collect();
            clauses.push(format!(
                "{total} drifted and left alone ({})",
                policies.join(", ")
            ));
        }
        for (kind, count) in &self.blocked {
            clauses.push(format!("{count} blocked on {kind}"));
        }
        if self.converging > 0 {
            clauses.push(format!("{} converging", self.converging));
        }
        if self.failing > 0 {
            clauses.push(format!("{} would fail", self.failing));
        }
        if self.unobserved > 0 {
            clauses.push(format!("{} kind(s) cannot be observed", self.unobserved));
        }
        if self.unmanaged > 0 {
            clauses.push(format!("{} unmanaged", self.unmanaged));
        }
        for clause in clauses {
            line.push_str("; ");
            line.push_str(&clause);
        }
        line
    }
}

#[derive(Debug)]
pub enum PlanFailure {
    Invalid(Vec<Problem>),
}

#[derive(Clone)]
pub struct Planner {
    registry: Registry,
    desired_state: PathBuf,
    daemon: Option<DaemonView>,
}

impl Planner {
    /// A planner of this process, without a daemon's memory.
    pub fn new(registry: Registry, desired_state: PathBuf) -> Self {
        Self {
            registry,
            desired_state,
            daemon: None,
        }
    }

    /// The running daemon's planner: it decides with the engine's holds, backoff and pause.
    pub fn of_daemon(mut self, daemon: DaemonView) -> Self {
        self.daemon = Some(daemon);
        self
    }

    pub async fn plan(&self) -> Result<PlanReport, PlanFailure> {
        let desired = desired::load(&self.desired_state, desired::READ_DEADLINE)
            .await
            .map_err(|err| PlanFailure::Invalid(err.problems))?;
        let results = futures::future::join_all(self.registry.iter().map(|reconciler| {
            let desired = &desired;
            async move {
                (
                    reconciler.kind(),
                    reconciler.observe_and_plan(desired).await,
                )
            }
        }))
        .await;
        let mut plans = Vec::new();
        let mut errors = BTreeMap::new();
        for (kind, result) in results {
            match result {
                Ok(plan) => plans.push((kind, plan)),
                Err(err) => {
                    errors.insert(kind, err.to_string());
                }
            }
        }
        let (memory, policy, source) = match &self.daemon {
            Some(daemon) => (
                daemon.memory.snapshot(),
                CyclePolicy {
                    paused: daemon.shared.is_paused(),
                    ..CyclePolicy::default()
                },
                PlanSource::Daemon,
            ),
            None => (Memory::default(), CyclePolicy::default(), PlanSource::Local),
        };
        let kinds = self.registry.kinds();
        let decided = decide(&desired, &kinds, plans, &memory, policy, Instant::now());
        let mut report = PlanReport {
            revision: desired.revision.clone(),
            source,
            kinds: Vec::new(),
            summary: PlanSummary::default(),
        };
        for kind in kinds {
            let resources = decided
                .of_kind(kind)
                .map(|r| resource_report(&r.id, &r.decision, &mut report.summary))
                .collect();
            let error = errors.remove(&kind);
            report.summary.unobserved += usize::from(error.is_some());
            report
                .kinds
                .push(kind_report(&desired, kind, error, resources));
        }
        Ok(report)
    }
}

fn kind_report(
    desired: &DesiredState,
    kind: Kind,
    error: Option<String>,
    resources: Vec<ResourceReport>,
) -> KindPlanReport {
    KindPlanReport {
        kind: kind.as_str().to_owned(),
        mode: match desired.mode(kind) {
            Mode::Enforce => "enforce",
            Mode::Observe => "observe",
        }
        .to_owned(),
        prune: desired.kind_policy(kind).prune,
        error,
        resources,
    }
}

fn resource_report(
    id: &ResourceId,
    decision: &Decision<ErasedPayload>,
    summary: &mut PlanSummary,
) -> ResourceReport {
    let (name, symbol) = match decision {
        Decision::InSync => {
            summary.in_sync += 1;
            ("in_sync", " ")
        }
        Decision::Apply { actions } => {
            let effect = Effect::of(actions);
            *match effect {
                Effect::Create => &mut summary.to_create,
                Effect::Change => &mut summary.to_change,
                Effect::Delete => &mut summary.to_delete,
                Effect::Replace => &mut summary.to_replace,
            } += 1;
            ("apply", effect.symbol())
        }
        Decision::Converging { .. } => {
            summary.converging += 1;
            ("converging", ".")
        }
        Decision::Blocked { on, .. } => {
            *summary
                .blocked
                .entry(on.kind.as_str().to_owned())
                .or_default() += 1;
            ("blocked", ".")
        }
        Decision::Drifted { by, .. } => {
            *summary.drifted.entry(by.describe(id.kind)).or_default() += 1;
            ("drifted", "=")
        }
        Decision::Held { .. } => ("held", "!"),
        Decision::Refused { .. } => ("refused", "!"),
        Decision::Failed { .. } => ("failed", "!"),
        Decision::Unmanaged { .. } => {
            summary.unmanaged += 1;
            ("unmanaged", "=")
        }
    };
    if symbol == "!" {
        summary.failing += 1;
    }
    let changes = match decision {
        Decision::Drifted { changes, .. } => changes.iter().map(ChangeReport::from).collect(),
        _ => Vec::new(),
    };
    ResourceReport {
        resource: id.to_string(),
        decision: name.to_owned(),
        symbol: symbol.to_owned(),
        condition: decision.condition().as_str().to_owned(),
        reason: decision.reason(),
        left_alone_by: match decision {
            Decision::Drifted { by, .. } => Some(*by),
            _ => None,
        },
        blocked_on: match decision {
            Decision::Blocked { on, .. } => Some(on.to_string()),
            _ => None,
        },
        actions: decision
            .actions()
            .iter()
            .map(|action| ActionReport {
                verb: action.verb.to_owned(),
                reason: action.reason.clone(),
                deletes: action.deletes,
                changes: action.changes.iter().map(ChangeReport::from).collect(),
            })
            .collect(),
        changes,
    }
}

impl PlanReport {
    pub fn exit_code(&self) -> u8 {
        self.summary.exit_code()
    }

    /// The line of one resource, by `kind/name`.
    pub fn resource(&self, resource: &str) -> Option<&ResourceReport> {
        self.kinds
            .iter()
            .flat_map(|kind| &kind.resources)
            .find(|r| r.resource == resource)
    }

    /// The plan for people: a line per resource that is not in sync, its field changes
    /// indented, and the closing summary.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "desired state revision {} ({})\n",
            self.revision,
            match self.source {
                PlanSource::Daemon => "planned by the running daemon",
                PlanSource::Local => {
                    "planned locally: a running daemon's holds, backoff and pause are not known"
                }
            }
        );
        if self.kinds.is_empty() {
            out.push_str("no kinds are enabled: nothing to plan\n");
        }
        for kind in &self.kinds {
            let prune = if kind.prune { "prune on" } else { "prune off" };
            out.push_str(&format!("\n{} ({}, {prune})\n", kind.kind, kind.mode));
            if let Some(error) = &kind.error {
                out.push_str(&format!("  ! cannot observe: {error}\n"));
                continue;
            }
            let mut in_sync = 0;
            for resource in &kind.resources {
                if resource.decision == "in_sync" {
                    in_sync += 1;
                    continue;
                }
                out.push_str(&format!(
                    "  {} {}: {}\n",
                    resource.symbol,
                    resource.resource,
                    describe(resource)
                ));
                let changes = resource
                    .actions
                    .iter()
                    .flat_map(|a| a.changes.iter())
                    .chain(&resource.changes);
                for change in changes {
                    out.push_str(&format!(
                        "      {}: {} → {}\n",
                        change.path,
                        change.from.as_deref().unwrap_or("(none)"),
                        change.to.as_deref().unwrap_or("(none)")
                    ));
                }
            }
            out.push_str(&format!("  {in_sync} in sync\n"));
        }
        out.push('\n');
        out.push_str(&self.summary.closing_line());
        out.push('\n');
        out
    }
}

/// What one line says after the resource: the actions to take, or the decision and reason.
fn describe(resource: &ResourceReport) -> String {
    let actions = || {
        resource
            .actions
            .iter()
            .map(|a| format!("{} ({})", a.verb, a.reason))
            .collect::<Vec<_>>()
            .join(", then ")
    };
    match resource.decision.as_str() {
        "apply" => actions(),
        "blocked" => format!(
            "blocked on {}: {}",
            resource.blocked_on.as_deref().unwrap_or("?"),
            resource.reason
        ),
        "drifted" => format!("drifted, left alone: {}", resource.reason),
        "held" => format!("would fail (held): {}", resource.reason),
        "refused" => format!("would fail: {}", resource.reason),
        "failed" => format!("would fail: {}", resource.reason),
        other => format!("{other}: {}", resource.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(change: impl FnOnce(&mut PlanSummary)) -> PlanSummary {
        let mut summary = PlanSummary::default();
        change(&mut summary);
        summary
    }

    #[test]
    fn exit_codes_and_closing_lines_follow_the_counts() {
        let cases: Vec<(&str, PlanSummary, u8, &str)> = vec![
            (
                "all in sync",
                summary(|s| s.in_sync = 3),
                0,
                "Plan: 0 to create, 0 to change, 0 to delete",
            ),
            (
                "unmanaged only",
                summary(|s| s.unmanaged = 2),
                0,
                "Plan: 0 to create, 0 to change, 0 to delete; 2 unmanaged",
            ),
            (
                "changes",
                summary(|s| {
                    s.to_create = 2;
                    s.to_change = 1;
                }),
                2,
                "Plan: 2 to create, 1 to change, 0 to delete",
            ),
            (
                "replacements",
                summary(|s| s.to_replace = 1),
                2,
                "Plan: 0 to create, 0 to change, 0 to delete, 1 to replace",
            ),
            (
                "drift left alone and blocked",
                summary(|s| {
                    s.to_create = 2;
                    s.to_change = 1;
                    s.drifted.insert("prune is off for instance".into(), 1);
                    s.blocked.insert("zookeeper_ensemble".into(), 3);
                }),
                2,
                "Plan: 2 to create, 1 to change, 0 to delete; 1 drifted and left alone (prune is off for instance); 3 blocked on zookeeper_ensemble",
            ),
            (
                "converging",
                summary(|s| s.converging = 1),
                2,
                "Plan: 0 to create, 0 to change, 0 to delete; 1 converging",
            ),
            (
                "a failure wins over changes",
                summary(|s| {
                    s.to_change = 1;
                    s.failing = 1;
                }),
                1,
                "Plan: 0 to create, 1 to change, 0 to delete; 1 would fail",
            ),
            (
                "an unobserved kind",
                summary(|s| s.unobserved = 1),
                1,
                "Plan: 0 to create, 0 to change, 0 to delete; 1 kind(s) cannot be observed",
            ),
        ];
        for (name, summary, code, line) in cases {
            assert_eq!(summary.exit_code(), code, "{name}");
            assert_eq!(summary.closing_line(), line, "{name}");
        }
    }
}
