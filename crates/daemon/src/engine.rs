//! The reconcile engine (does I/O, through the registered reconcilers): one cycle loads the
//! desired state, observes every kind concurrently, hands the plans to the decision core
//! (`converged_core::decide`), applies what it decided in the order it decided, and records
//! conditions, metrics and the audit trail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use converged_core::backoff::BackoffPolicy;
use converged_core::condition::{Condition, LastAction, LastError, ResourceStatus};
use converged_core::decide::{
    CyclePolicy, Decision, Hold, Memory, ResourceDecision, ResourceMemory, applied_reason, decide,
};
use converged_core::load::Fingerprint;
use converged_core::model::Mode;
use converged_core::reconciler::{
    DynReconciler, ErasedAction, ErasedKindPlan, ErasedPayload, Registry,
};
use converged_core::{DesiredState, ErrorClass, Kind, ReconcileError, ResourceId};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditEntry, AuditLog};
#[cfg(debug_assertions)]
use crate::daemon::fault;
use crate::desired;
use crate::planner::LiveMemory;
use crate::status::{
    AuditStatus, CycleStatus, DesiredStateStatus, KindStatus, Shared, StatusDocument, rfc3339,
    unix_seconds,
};

/// How soon an action refused because the audit log took no writes is tried again.
const AUDIT_RETRY: Duration = Duration::from_secs(5);

/// Triggers closer together than this run as one cycle.
const COALESCE_WINDOW: Duration = Duration::from_millis(100);

/// How soon a cycle that acted is followed by one that observes the effect. The delay doubles
/// with each follow-up until it reaches the resync interval, where the resyncs take over, so a
/// long convergence (an instance booting, a deployment rolling) or a resource something else
/// keeps changing back costs a few cycles, not one a second.
const FIRST_FOLLOW_UP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub desired_state: PathBuf,
    pub resync_interval: Duration,
    /// An action still running after this long counts as failed (transient).
    pub action_deadline: Duration,
    pub backoff: BackoffPolicy,
    /// Resources of one kind acted on at the same time.
    pub max_parallel_actions: usize,
}

impl EngineSettings {
    pub fn new(desired_state: PathBuf, resync_interval: Duration) -> Self {
        Self {
            desired_state,
            resync_interval,
            action_deadline: Duration::from_secs(300),
            backoff: BackoffPolicy::default(),
            max_parallel_actions: 8,
        }
    }
}

/// Why a cycle runs. Several triggers that arrive together merge into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Resync,
    /// Before the resync: a retry that backoff allows now, or a look at what the last cycles
    /// applied while resources converge.
    FollowUp,
    DesiredStateChanged,
    Signal,
    /// `POST /v1/reconcile`: also releases resources held after invalid or unsafe errors.
    Operator {
        allow_mass_deletion: bool,
    },
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Resync => "resync",
            Trigger::FollowUp => "follow_up",
            Trigger::DesiredStateChanged => "desired_state_changed",
            Trigger::Signal => "sighup",
            Trigger::Operator { .. } => "operator",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleRequest {
    pub trigger: Trigger,
    pub release_holds: bool,
    pub allow_mass_deletion: bool,
}

impl CycleRequest {
    pub fn from_trigger(trigger: Trigger) -> Self {
        let (release_holds, allow_mass_deletion) = match trigger {
            Trigger::Operator {
                allow_mass_deletion,
            } => (true, allow_mass_deletion),
            _ => (false, false),
        };
        Self {
            trigger,
            release_holds,
            allow_mass_deletion,
        }
    }

    fn merge(&mut self, other: Trigger) {
        let other = Self::from_trigger(other);
        if other.release_holds {
            self.trigger = other.trigger;
        }
        self.release_holds |= other.release_holds;
        self.allow_mass_deletion |= other.allow_mass_deletion;
    }
}

/// What one cycle did, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    pub applied: usize,
    pub failed: usize,
}

#[derive(Debug, Clone)]
struct Record {
    condition: Condition,
    reason: String,
    blocked_on: Option<ResourceId>,
    attempts: u32,
    retry_at: Option<Instant>,
    hold: Option<Hold>,
    last_action: Option<LastAction>,
    last_error: Option<LastError>,
}

impl Record {
    fn new() -> Self {
        Self {
            condition: Condition::Converging,
            reason: String::new(),
            blocked_on: None,
            attempts: 0,
            retry_at: None,
            hold: None,
            last_action: None,
            last_error: None,
        }
    }

    fn set(&mut self, condition: Condition, reason: impl Into<String>) {
        self.condition = condition;
        self.reason = reason.into();
        self.blocked_on = None;
    }

    fn succeeded(&mut self) {
        self.attempts = 0;
        self.retry_at = None;
        self.hold = None;
    }
}

#[derive(Debug, Clone, Default)]
struct KindRecord {
    attempts: u32,
    retry_at: Option<Instant>,
    observe_error: Option<LastError>,
}

struct ApplyOutcome {
    id: ResourceId,
    applied: Vec<(&'static str, String)>,
    failure: Option<(&'static str, String, ReconcileError)>,
    skipped_for_shutdown: bool,
    /// Not attempted because the attempt could not be recorded in the audit log.
    unrecorded: bool,
    /// Why the outcome of the last action could not be recorded (it is held back).
    outcome_unrecorded: Option<String>,
}

pub struct Engine {
    settings: EngineSettings,
    registry: Registry,
    shared: Arc<Shared>,
    audit: Option<Arc<AuditLog>>,
    desired: Option<Arc<DesiredState>>,
    /// What the folder looked like at the last load; an unchanged folder is not read again.
    loaded_fingerprint: Option<(Fingerprint, SystemTime)>,
    desired_status: DesiredStateStatus,
    records: BTreeMap<ResourceId, Record>,
    kinds: BTreeMap<Kind, KindRecord>,
    sample: Box<dyn FnMut() -> f64 + Send>,
    shutdown: CancellationToken,
    cycles: u64,
    /// The holds and backoff after the last cycle, for `GET /v1/plan`.
    live_memory: Arc<LiveMemory>,
}

impl Engine {
    pub fn new(
        settings: EngineSettings,
        registry: Registry,
        shared: Arc<Shared>,
        audit: Option<Arc<AuditLog>>,
        shutdown: CancellationToken,
    ) -> Self {
        let desired_status = DesiredStateStatus {
            path: settings.desired_state.display().to_string(),
            ..DesiredStateStatus::default()
        };
        Self {
            settings,
            registry,
            shared,
            audit,
            desired: None,
            loaded_fingerprint: None,
            desired_status,
            records: BTreeMap::new(),
            kinds: BTreeMap::new(),
            sample: Box::new(rand::random::<f64>),
            shutdown,
            cycles: 0,
            live_memory: Arc::default(),
        }
    }

    /// Where the engine publishes its memory after each cycle, so a plan asked of the running
    /// daemon decides with the same holds and backoff.
    pub fn live_memory(&self) -> Arc<LiveMemory> {
        Arc::clone(&self.live_memory)
    }

    /// Replaces the source of jitter samples in `[0, 1)` (tests make it deterministic).
    pub fn with_jitter(mut self, sample: impl FnMut() -> f64 + Send + 'static) -> Self {
        self.sample = Box::new(sample);
        self
    }

    /// Runs cycles until shutdown: at start, on every resync, on triggers (merging those that
    /// arrive together), when a backoff allows a retry, and to follow up on what it applied.
    pub async fn run(mut self, triggers: mpsc::Receiver<Trigger>) {
        let mut triggers = Some(triggers);
        let mut next_resync = Instant::now();
        let mut next_cycle = next_resync;
        let mut follow_up: Option<Duration> = None;
        loop {
            let first = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                received = recv(&mut triggers) => match received {
                    Some(trigger) => trigger,
                    None => {
                        triggers = None;
                        continue;
                    }
                },
                () = tokio::time::sleep_until(next_cycle) => if next_cycle < next_resync {
                    Trigger::FollowUp
                } else {
                    Trigger::Resync
                },
            };
            let mut request = CycleRequest::from_trigger(first);
            if !matches!(first, Trigger::Resync | Trigger::FollowUp) {
                tokio::select! {
                    () = self.shutdown.cancelled() => break,
                    () = tokio::time::sleep(COALESCE_WINDOW) => {}
                }
            }
            if let Some(receiver) = triggers.as_mut() {
                while let Ok(more) = receiver.try_recv() {
                    request.merge(more);
                }
            }
            let trigger = request.trigger;
            let report = self.run_cycle(request).await;
            if self.shutdown.is_cancelled() {
                break;
            }
            let now = Instant::now();
            let spread = 0.9 + 0.2 * (self.sample)();
            next_resync = now + self.settings.resync_interval.mul_f64(spread);
            let converging = self
                .records
                .values()
                .any(|record| record.condition == Condition::Converging);
            follow_up = next_follow_up(
                follow_up,
                trigger,
                report.applied > 0,
                converging,
                self.settings.resync_interval,
            );
            next_cycle = follow_up
                .map(|delay| now + delay)
                .into_iter()
                .chain(self.retries_due_after(now))
                .fold(next_resync, Instant::min);
        }
        tracing::info!("engine stopped");
    }

    /// When failed resources and kinds may be tried again, as backoff set it; held ones wait
    /// for an edit or an operator instead.
    fn retries_due_after(&self, now: Instant) -> impl Iterator<Item = Instant> + '_ {
        let resources = self
            .records
            .values()
            .filter(|record| record.hold.is_none())
            .filter_map(|record| record.retry_at);
        let kinds = self.kinds.values().filter_map(|kind| kind.retry_at);
        resources.chain(kinds).filter(move |at| *at > now)
    }

    pub async fn run_cycle(&mut self, request: CycleRequest) -> CycleReport {
        self.cycles += 1;
        self.shared.cycle_started();
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let span = tracing::info_span!(
            "cycle",
            number = self.cycles,
            trigger = request.trigger.as_str()
        );
        let _entered = span.enter();
        self.reload_desired_state().await;
        if request.release_holds {
            // Held and backed-off resources are released by the decision core; the
            // observation of a kind that failed is retried here.
            for kind in self.kinds.values_mut() {
                kind.retry_at = None;
            }
        }
        let mut report = CycleReport::default();
        let mut all_observed = false;
        if let Some(desired) = self.desired.clone() {
            let plans = self.observe(&desired).await;
            all_observed = plans.len() == self.registry.kinds().len();
            report = self.act(&desired, plans, request).await;
        }
        let finished_wall = SystemTime::now();
        let elapsed = started.elapsed();
        let metrics = &self.shared.metrics;
        metrics.cycles_total.inc();
        metrics
            .cycle_duration_seconds
            .observe(elapsed.as_secs_f64());
        if all_observed && self.desired_status.valid {
            metrics
                .last_successful_cycle_timestamp_seconds
                .set(unix_seconds(finished_wall));
        }
        self.publish(Some(CycleStatus {
            number: self.cycles,
            trigger: request.trigger.as_str(),
            started_at: rfc3339(started_wall),
            finished_at: rfc3339(finished_wall),
            duration_seconds: elapsed.as_secs_f64(),
            actions_applied: report.applied,
            actions_failed: report.failed,
        }));
        self.shared.cycle_finished(crate::status::CycleOutcome {
            desired_state_valid: self.desired_status.valid,
            every_kind_observed: all_observed,
        });
        tracing::info!(
            applied = report.applied,
            failed = report.failed,
            duration_ms = elapsed.as_millis() as u64,
            "finished cycle"
        );
        report
    }

    async fn reload_desired_state(&mut self) {
        let dir = self.settings.desired_state.clone();
        let fingerprint = desired::fingerprint_of(&dir, desired::READ_DEADLINE).await;
        if let Some((loaded, loaded_at)) = &self.loaded_fingerprint
            && fingerprint.as_ref() == Some(loaded)
            && loaded.settled_before(*loaded_at)
        {
            return;
        }
        self.loaded_fingerprint = fingerprint.map(|f| (f, SystemTime::now()));
        let metrics = &self.shared.metrics;
        match desired::load(&dir, desired::READ_DEADLINE).await {
            Ok(state) => {
                let changed = self
                    .desired
                    .as_ref()
                    .is_none_or(|current| current.revision != state.revision);
                if changed {
                    tracing::info!(revision = %state.revision, "loaded desired state");
                    metrics
                        .desired_state_revision_timestamp_seconds
                        .set(unix_seconds(SystemTime::now()));
                }
                self.desired_status.valid = true;
                self.desired_status.revision = Some(state.revision.clone());
                self.desired_status.revision_in_force = Some(state.revision.clone());
                self.desired_status.errors.clear();
                self.desired = Some(Arc::new(state));
                metrics.desired_state_valid.set(1);
            }
            Err(err) => {
                if self.desired_status.valid || self.desired_status.revision != err.revision {
                    for problem in &err.problems {
                        tracing::warn!(problem = %problem, "desired state is invalid; the last valid one stays in force");
                    }
                }
                self.desired_status.valid = false;
                self.desired_status.revision = err.revision;
                self.desired_status.errors = err.problems;
                metrics.desired_state_valid.set(0);
            }
        }
    }

    /// Observes and plans every kind whose observation is not waiting for a retry.
    async fn observe(&mut self, desired: &Arc<DesiredState>) -> BTreeMap<Kind, ErasedKindPlan> {
        let now = Instant::now();
        let due: Vec<Arc<dyn DynReconciler>> = self
            .registry
            .iter()
            .filter(|reconciler| {
                self.kinds
                    .get(&reconciler.kind())
                    .and_then(|record| record.retry_at)
                    .is_none_or(|at| at <= now)
            })
            .cloned()
            .collect();
        let mut observations = Vec::with_capacity(due.len());
        for reconciler in due {
            let desired = Arc::clone(desired);
            observations.push(async move {
                let kind = reconciler.kind();
                (kind, reconciler.observe_and_plan(&desired).await)
            });
        }
        let results = futures::future::join_all(observations).await;
        let mut plans = BTreeMap::new();
        for (kind, result) in results {
            let record = self.kinds.entry(kind).or_default();
            match result {
                Ok(plan) => {
                    self.shared
                        .metrics
                        .reconcile_total
                        .with_label_values(&[kind.as_str(), "success"])
                        .inc();
                    *record = KindRecord::default();
                    plans.insert(kind, plan);
                }
                Err(err) => {
                    self.shared
                        .metrics
                        .reconcile_total
                        .with_label_values(&[kind.as_str(), "error"])
                        .inc();
                    record.attempts += 1;
                    let delay = self
                        .settings
                        .backoff
                        .delay(record.attempts, (self.sample)());
                    record.retry_at = Some(Instant::now() + delay);
                    record.observe_error = Some(LastError {
                        message: err.to_string(),
                        class: err.class(),
                        at: rfc3339(SystemTime::now()),
                    });
                    tracing::warn!(kind = kind.as_str(), error = %err, attempts = record.attempts, retry_in_ms = delay.as_millis() as u64, "failed to observe");
                }
            }
        }
        for (kind, record) in &self.kinds {
            if plans.contains_key(kind) {
                continue;
            }
            if let Some(error) = &record.observe_error {
                let reason = format!("observation failed: {}", error.message);
                for (_, resource) in self.records.iter_mut().filter(|(id, _)| id.kind == *kind) {
                    resource.set(Condition::Failed, reason.clone());
                }
            }
        }
        plans
    }

    async fn act(
        &mut self,
        desired: &DesiredState,
        plans: BTreeMap<Kind, ErasedKindPlan>,
        request: CycleRequest,
    ) -> CycleReport {
        // A record of an observed kind whose resource no plan mentions any more is gone.
        self.records.retain(|id, _| {
            plans
                .get(&id.kind)
                .is_none_or(|plan| plan.resources.iter().any(|r| r.id == *id))
        });
        let policy = CyclePolicy {
            paused: self.shared.is_paused(),
            release_holds: request.release_holds,
            allow_mass_deletion: request.allow_mass_deletion,
        };
        let decided = decide(
            desired,
            &self.registry.kinds(),
            plans.into_iter().collect(),
            &self.memory(),
            policy,
            Instant::now(),
        );
        let mut decisions: Vec<Option<ResourceDecision<ErasedPayload>>> = Vec::new();
        for resource in decided.resources {
            let previous = self.records.get(&resource.id).map(|r| r.condition);
            if resource.differs {
                note_drift(&self.shared, resource.id.kind, previous);
            }
            let record = self.record_for(&resource.id);
            match &resource.decision {
                Decision::Apply { .. } => {
                    decisions.push(Some(resource));
                    continue;
                }
                Decision::InSync => record.succeeded(),
                Decision::Blocked { on, .. } => {
                    let on = on.clone();
                    record.set(resource.decision.condition(), resource.decision.reason());
                    record.blocked_on = Some(on);
                    decisions.push(None);
                    continue;
                }
                _ => {}
            }
            record.set(resource.decision.condition(), resource.decision.reason());
            decisions.push(None);
        }
        let mut report = CycleReport::default();
        for batch in decided.batches {
            let actions = batch
                .resources
                .iter()
                .filter_map(|index| decisions[*index].take())
                .filter_map(|resource| match resource.decision {
                    Decision::Apply { actions } => Some((resource.id, actions)),
                    _ => None,
                })
                .collect();
            let outcome = self.apply_batch(desired, batch.kind, actions).await;
            report.applied += outcome.applied;
            report.failed += outcome.failed;
        }
        self.live_memory.publish(self.memory());
        report
    }

    /// What the decision core needs of the records: backoff, holds and the last error of
    /// every resource that has them, and the kinds that are throttled.
    fn memory(&self) -> Memory<Instant> {
        let resources = self
            .records
            .iter()
            .filter(|(_, record)| record.retry_at.is_some() || record.hold.is_some())
            .map(|(id, record)| {
                let memory = ResourceMemory {
                    retry_at: record.retry_at,
                    hold: record.hold.clone(),
                    last_error: record.last_error.as_ref().map(|e| e.message.clone()),
                };
                (id.clone(), memory)
            })
            .collect();
        let kinds_retry_at = self
            .kinds
            .iter()
            .filter_map(|(kind, record)| record.retry_at.map(|at| (*kind, at)))
            .collect();
        Memory {
            resources,
            kinds_retry_at,
        }
    }

    fn record_for(&mut self, id: &ResourceId) -> &mut Record {
        self.records.entry(id.clone()).or_insert_with(Record::new)
    }

    /// Applies what the decision core decided for one batch of a kind, concurrently. A kind
    /// throttled by an earlier batch of this cycle waits for its retry instead.
    async fn apply_batch(
        &mut self,
        desired: &DesiredState,
        kind: Kind,
        to_apply: Vec<(ResourceId, Vec<ErasedAction>)>,
    ) -> CycleReport {
        let throttled = self
            .kinds
            .get(&kind)
            .and_then(|k| k.retry_at)
            .is_some_and(|at| at > Instant::now());
        if throttled {
            for (id, _) in &to_apply {
                self.record_for(id).set(
                    Condition::Failed,
                    format!(
                        "waiting for the next retry: {kind} was throttled earlier in this cycle"
                    ),
                );
            }
            return CycleReport::default();
        }
        let Some(reconciler) = self.registry.get(kind).cloned() else {
            return CycleReport::default();
        };
        let revision = desired.revision.clone();
        let mut tasks = Vec::with_capacity(to_apply.len());
        for (id, actions) in to_apply {
            tasks.push(apply_resource(
                Arc::clone(&reconciler),
                id,
                actions,
                self.settings.action_deadline,
                self.audit.clone(),
                Arc::clone(&self.shared),
                revision.clone(),
                self.shutdown.clone(),
            ));
        }
        let outcomes: Vec<ApplyOutcome> = futures::stream::iter(tasks)
            .buffer_unordered(self.settings.max_parallel_actions.max(1))
            .collect()
            .await;
        let mut report = CycleReport::default();
        for outcome in outcomes {
            report.applied += outcome.applied.len();
            self.record_outcome(kind, outcome, &revision, &mut report);
        }
        report
    }

    fn record_outcome(
        &mut self,
        kind: Kind,
        outcome: ApplyOutcome,
        revision: &str,
        report: &mut CycleReport,
    ) {
        let at = rfc3339(SystemTime::now());
        let backoff = self.settings.backoff;
        let sample = (self.sample)();
        let record = self.record_for(&outcome.id);
        if let Some((verb, reason)) = outcome.applied.last() {
            record.last_action = Some(LastAction {
                verb,
                reason: reason.clone(),
                result: "succeeded",
                at: at.clone(),
            });
        }
        match outcome.failure {
            None if outcome.skipped_for_shutdown && outcome.applied.is_empty() => {
                record.set(
                    Condition::Drifted,
                    "not acted on: converged is shutting down",
                );
            }
            None => {
                record.succeeded();
                let (verb, reason) = outcome
                    .applied
                    .last()
                    .cloned()
                    .unwrap_or(("apply", String::new()));
                record.set(Condition::Converging, applied_reason(verb, &reason));
            }
            Some((verb, reason, err)) => {
                report.failed += 1;
                // Refused for want of an audit log is no attempt: it is retried as soon as
                // the log may take writes again, not backed off.
                if !outcome.unrecorded {
                    record.attempts += 1;
                }
                let class = err.class();
                record.last_action = Some(LastAction {
                    verb,
                    reason,
                    result: "failed",
                    at: at.clone(),
                });
                record.last_error = Some(LastError {
                    message: err.to_string(),
                    class,
                    at,
                });
                let delay = if outcome.unrecorded {
                    AUDIT_RETRY
                } else {
                    backoff.delay(record.attempts, sample)
                };
                match class {
                    ErrorClass::Transient | ErrorClass::Throttled => {
                        record.retry_at = Some(Instant::now() + delay);
                    }
                    ErrorClass::Invalid => {
                        record.hold = Some(Hold::DesiredChanges {
                            revision: revision.to_owned(),
                        });
                    }
                    ErrorClass::Unsafe => record.hold = Some(Hold::Operator),
                }
                record.set(Condition::Failed, err.to_string());
                let attempts = record.attempts;
                tracing::warn!(resource = %outcome.id, action = verb, class = class.as_str(), attempts, retry_in_ms = delay.as_millis() as u64, error = %err, "action failed");
                if class == ErrorClass::Throttled {
                    let kind_record = self.kinds.entry(kind).or_default();
                    kind_record.retry_at = Some(Instant::now() + delay);
                }
            }
        }
        if let Some(why) = outcome.outcome_unrecorded {
            let record = self.record_for(&outcome.id);
            record.reason = format!(
                "{}; its outcome is not in the audit log yet: {why}",
                record.reason
            );
        }
    }

    fn publish(&mut self, last_cycle: Option<CycleStatus>) {
        let now_instant = Instant::now();
        let now_wall = SystemTime::now();
        let wall = |at: Instant| rfc3339(now_wall + at.saturating_duration_since(now_instant));
        let metrics = &self.shared.metrics;
        let mut counts: BTreeMap<(Kind, Condition), i64> = BTreeMap::new();
        for kind in self.registry.kinds() {
            for condition in Condition::ALL {
                counts.insert((kind, condition), 0);
            }
        }
        let mut resources = Vec::with_capacity(self.records.len());
        for (id, record) in &self.records {
            *counts.entry((id.kind, record.condition)).or_default() += 1;
            resources.push(ResourceStatus {
                kind: id.kind.as_str(),
                name: id.name.clone(),
                condition: record.condition,
                reason: record.reason.clone(),
                blocked_on: record.blocked_on.clone(),
                last_action: record.last_action.clone(),
                last_error: record.last_error.clone(),
                attempts: record.attempts,
                next_retry: record
                    .retry_at
                    .filter(|_| record.condition == Condition::Failed)
                    .map(wall),
            });
        }
        for ((kind, condition), count) in counts {
            metrics
                .resources
                .with_label_values(&[kind.as_str(), condition.as_str()])
                .set(count);
        }
        let kinds = self
            .registry
            .kinds()
            .into_iter()
            .map(|kind| {
                let record = self.kinds.get(&kind);
                KindStatus {
                    kind: kind.as_str(),
                    mode: match self.desired.as_ref().map(|d| d.mode(kind)) {
                        Some(Mode::Observe) => "observe",
                        _ => "enforce",
                    },
                    observe_error: record.and_then(|r| r.observe_error.clone()),
                    next_retry: record.and_then(|r| r.retry_at).map(wall),
                }
            })
            .collect();
        let audit = self.audit.as_ref().map(|log| {
            let health = log.health();
            metrics
                .audit_log_writable
                .set(i64::from(health.error.is_none()));
            metrics
                .audit_unrecorded_outcomes
                .set(i64::try_from(health.unrecorded_outcomes).unwrap_or(i64::MAX));
            AuditStatus::from(health)
        });
        self.shared.publish(StatusDocument {
            audit,
            desired_state: self.desired_status.clone(),
            paused: false,
            ready: false,
            last_cycle,
            kinds,
            resources,
        });
    }
}

/// The delay of the next follow-up cycle, if any, after a cycle started by `trigger`: 1 s after
/// a cycle that acted, doubling with each follow-up while anything converges, and none once the
/// delay reaches the resync interval.
fn next_follow_up(
    previous: Option<Duration>,
    trigger: Trigger,
    acted: bool,
    converging: bool,
    resync_interval: Duration,
) -> Option<Duration> {
    if !acted && !converging {
        None
    } else if trigger == Trigger::FollowUp {
        previous
            .map(|delay| delay * 2)
            .filter(|delay| *delay < resync_interval)
    } else if acted {
        Some(FIRST_FOLLOW_UP)
    } else {
        previous
    }
}

async fn recv(triggers: &mut Option<mpsc::Receiver<Trigger>>) -> Option<Trigger> {
    match triggers {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

fn note_drift(shared: &Shared, kind: Kind, previous: Option<Condition>) {
    if previous == Some(Condition::InSync) {
        shared
            .metrics
            .drift_detected_total
            .with_label_values(&[kind.as_str()])
            .inc();
    }
}

fn audit_write_failed(shared: &Shared, event: &'static str) {
    shared
        .metrics
        .audit_write_failures_total
        .with_label_values(&[event])
        .inc();
}

#[allow(clippy::too_many_arguments)]
async fn apply_resource(
    reconciler: Arc<dyn DynReconciler>,
    id: ResourceId,
    actions: Vec<ErasedAction>,
    deadline: Duration,
    audit: Option<Arc<AuditLog>>,
    shared: Arc<Shared>,
    revision: String,
    shutdown: CancellationToken,
) -> ApplyOutcome {
    let kind = id.kind.as_str();
    let resource = id.to_string();
    let mut outcome = ApplyOutcome {
        id,
        applied: Vec::new(),
        failure: None,
        skipped_for_shutdown: false,
        unrecorded: false,
        outcome_unrecorded: None,
    };
    for action in &actions {
        if shutdown.is_cancelled() {
            outcome.skipped_for_shutdown = true;
            break;
        }
        if let Some(audit) = &audit {
            let at = rfc3339(SystemTime::now());
            let attempt = AuditEntry {
                at: &at,
                event: "attempt",
                kind,
                resource: &resource,
                action: action.verb,
                reason: &action.reason,
                desired_revision: &revision,
                result: None,
                error: None,
                error_class: None,
            };
            if let Err(err) = audit.record(&attempt) {
                audit_write_failed(&shared, "attempt");
                let failure = ReconcileError::Apply {
                    action: action.verb,
                    class: ErrorClass::Transient,
                    message: format!("not attempted: it could not be recorded: {err}"),
                };
                tracing::error!(resource = %resource, action = action.verb, error = %err, "refused to act: the attempt could not be recorded in the audit log");
                outcome.failure = Some((action.verb, action.reason.clone(), failure));
                outcome.unrecorded = true;
                break;
            }
        }
        #[cfg(debug_assertions)]
        fault::reached(kind, action.verb, fault::Point::BeforeRequest);
        tracing::debug!(resource = %resource, action = action.verb, reason = %action.reason, "applying");
        let result = {
            #[cfg(debug_assertions)]
            let _in_flight = fault::applying(kind, action.verb);
            match tokio::time::timeout(deadline, reconciler.apply(action)).await {
                Ok(result) => result,
                Err(_) => Err(ReconcileError::DeadlineExceeded {
                    action: action.verb,
                    seconds: deadline.as_secs(),
                }),
            }
        };
        #[cfg(debug_assertions)]
        fault::reached(kind, action.verb, fault::Point::AfterAnswer);
        let label = if result.is_ok() { "success" } else { "error" };
        shared
            .metrics
            .actions_total
            .with_label_values(&[kind, action.verb, label])
            .inc();
        if let Some(audit) = &audit {
            let at = rfc3339(SystemTime::now());
            let message = result.as_ref().err().map(ToString::to_string);
            let finished = AuditEntry {
                at: &at,
                event: "outcome",
                kind,
                resource: &resource,
                action: action.verb,
                reason: &action.reason,
                desired_revision: &revision,
                result: Some(if result.is_ok() {
                    "succeeded"
                } else {
                    "failed"
                }),
                error: message.as_deref(),
                error_class: result.as_ref().err().map(|err| err.class().as_str()),
            };
            if let Err(err) = audit.record(&finished) {
                audit_write_failed(&shared, "outcome");
                tracing::error!(resource = %resource, action = action.verb, error = %err, "the outcome could not be recorded in the audit log: held back until the log takes writes; no new action until then");
                outcome.outcome_unrecorded = Some(err.to_string());
            }
        }
        #[cfg(debug_assertions)]
        fault::reached(kind, action.verb, fault::Point::AfterAudit);
        match result {
            Ok(()) => {
                tracing::info!(resource = %resource, action = action.verb, reason = %action.reason, "applied action");
                outcome.applied.push((action.verb, action.reason.clone()));
            }
            Err(err) => {
                outcome.failure = Some((action.verb, action.reason.clone(), err));
                break;
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_start_after_acting_double_and_end_at_the_resync() {
        let resync = Duration::from_secs(30);
        let secs = Duration::from_secs;
        let cases = [
            (
                "a resync that acted",
                None,
                Trigger::Resync,
                true,
                false,
                Some(secs(1)),
            ),
            (
                "an edit that acted restarts",
                Some(secs(8)),
                Trigger::DesiredStateChanged,
                true,
                true,
                Some(secs(1)),
            ),
            (
                "a follow-up doubles while converging",
                Some(secs(2)),
                Trigger::FollowUp,
                false,
                true,
                Some(secs(4)),
            ),
            (
                "a follow-up that acted still doubles",
                Some(secs(2)),
                Trigger::FollowUp,
                true,
                true,
                Some(secs(4)),
            ),
            (
                "the resyncs take over at 30 s",
                Some(secs(16)),
                Trigger::FollowUp,
                true,
                true,
                None,
            ),
            (
                "nothing converging ends them",
                Some(secs(2)),
                Trigger::FollowUp,
                false,
                false,
                None,
            ),
            (
                "a trigger with nothing to do keeps the schedule",
                Some(secs(4)),
                Trigger::Signal,
                false,
                true,
                Some(secs(4)),
            ),
            (
                "converging alone starts none",
                None,
                Trigger::Resync,
                false,
                true,
                None,
            ),
        ];
        for (name, previous, trigger, acted, converging, expected) in cases {
            assert_eq!(
                next_follow_up(previous, trigger, acted, converging, resync),
                expected,
                "{name}"
            );
        }
    }
}
