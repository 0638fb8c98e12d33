//! A small reconcile driver for kind tests that do not build the daemon (does I/O through the
//! reconcilers): one pass observes and plans every registered kind, hands the plans to the
//! daemon's decision core (`converged_core::decide`) with no memory, and applies what it
//! decided in the order it decided, as the engine does (without the engine's backoff and
//! records between passes: every pass starts afresh).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use converged_core::decide::{CyclePolicy, Decision, Memory, decide};
use converged_core::reconciler::{DynReconciler, ErasedAction, Registry};
use converged_core::{DesiredState, ErrorClass, ResourceId};

/// Where a resource stood after one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InSync,
    /// Actions were applied (their verbs).
    Applied(Vec<&'static str>),
    /// An action failed.
    ActionFailed {
        verb: &'static str,
        class: ErrorClass,
        message: String,
    },
    Blocked(ResourceId),
    Converging(String),
    Drifted(String),
    Failed(String),
    Unmanaged(String),
}

impl Outcome {
    /// A short name: `in_sync`, `applied`, `action_failed`, `blocked`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::InSync => "in_sync",
            Outcome::Applied(_) => "applied",
            Outcome::ActionFailed { .. } => "action_failed",
            Outcome::Blocked(_) => "blocked",
            Outcome::Converging(_) => "converging",
            Outcome::Drifted(_) => "drifted",
            Outcome::Failed(_) => "failed",
            Outcome::Unmanaged(_) => "unmanaged",
        }
    }
}

/// One pass's result: every resource's outcome, and the kinds whose observation failed.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    pub resources: BTreeMap<ResourceId, Outcome>,
    pub observe_errors: Vec<String>,
}

impl Pass {
    pub fn get(&self, kind_and_name: &str) -> Option<&Outcome> {
        self.resources
            .iter()
            .find(|(id, _)| id.to_string() == kind_and_name)
            .map(|(_, outcome)| outcome)
    }

    /// Whether nothing was applied, failed or waits.
    pub fn all_in_sync(&self) -> bool {
        self.observe_errors.is_empty()
            && self
                .resources
                .values()
                .all(|outcome| *outcome == Outcome::InSync)
    }

    /// Every applied action as `resource verb`.
    pub fn applied(&self) -> Vec<String> {
        self.resources
            .iter()
            .filter_map(|(id, outcome)| match outcome {
                Outcome::Applied(verbs) => Some(format!("{id} {}", verbs.join("+"))),
                _ => None,
            })
            .collect()
    }
}

/// Runs passes over a registry of reconcilers.
pub struct Driver {
    pub registry: Registry,
}

impl Driver {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    pub async fn pass(&self, desired: &DesiredState) -> Pass {
        let mut pass = Pass::default();
        let mut plans = Vec::new();
        for reconciler in self.registry.iter() {
            match reconciler.observe_and_plan(desired).await {
                Ok(plan) => plans.push((reconciler.kind(), plan)),
                Err(err) => pass.observe_errors.push(err.to_string()),
            }
        }
        let decided = decide(
            desired,
            &self.registry.kinds(),
            plans,
            &Memory::<()>::default(),
            CyclePolicy::default(),
            (),
        );
        let ids: Vec<ResourceId> = decided.resources.iter().map(|r| r.id.clone()).collect();
        let mut to_apply = BTreeMap::new();
        for resource in decided.resources {
            let outcome = match resource.decision {
                Decision::InSync => Outcome::InSync,
                Decision::Converging { reason } => Outcome::Converging(reason),
                Decision::Blocked { on, .. } => Outcome::Blocked(on),
                Decision::Drifted { reason, .. } => Outcome::Drifted(reason),
                Decision::Held { reason }
                | Decision::Refused { reason, .. }
                | Decision::Failed { reason } => Outcome::Failed(reason),
                Decision::Unmanaged { reason } => Outcome::Unmanaged(reason),
                Decision::Apply { actions } => {
                    to_apply.insert(resource.id.clone(), actions);
                    continue;
                }
            };
            pass.resources.insert(resource.id, outcome);
        }
        // In the decided order; one batch's resources one after another here (the engine
        // runs them concurrently).
        for batch in decided.batches {
            let Some(reconciler) = self.registry.get(batch.kind) else {
                continue;
            };
            for index in batch.resources {
                let id = &ids[index];
                if let Some(actions) = to_apply.remove(id) {
                    let outcome = apply_all(reconciler.as_ref(), &actions).await;
                    pass.resources.insert(id.clone(), outcome);
                }
            }
        }
        pass
    }

    /// Runs passes until `done` holds for one, pausing `interval` between them; panics after
    /// `timeout` with the last pass. Returns every pass run.
    pub async fn until(
        &self,
        desired: &DesiredState,
        timeout: Duration,
        interval: Duration,
        mut done: impl FnMut(&Pass) -> bool,
    ) -> Vec<Pass> {
        let started = Instant::now();
        let mut passes = Vec::new();
        loop {
            let pass = self.pass(desired).await;
            let finished = done(&pass);
            passes.push(pass);
            if finished {
                return passes;
            }
            if started.elapsed() > timeout {
                panic!(
                    "not done after {timeout:?} ({} passes); last pass: {:#?}",
                    passes.len(),
                    passes.last()
                );
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// Applies `actions` in order, stopping at the first failure.
async fn apply_all(reconciler: &dyn DynReconciler, actions: &[ErasedAction]) -> Outcome {
    let mut verbs = Vec::new();
    for action in actions {
        if let Err(err) = reconciler.apply(action).await {
            return Outcome::ActionFailed {
                verb: action.verb,
                class: err.class(),
                message: err.to_string(),
            };
        }
        verbs.push(action.verb);
    }
    Outcome::Applied(verbs)
}
