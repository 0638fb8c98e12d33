//! A small reconcile driver for kind tests that do not build the daemon: one pass observes
//! and plans every registered kind, then applies the actions of every resource whose
//! dependencies are ready, kind by kind in dependency order, as the engine does (without its
//! backoff, modes and prune policy).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use converged_core::plan::{Readiness, Verdict};
use converged_core::reconciler::Registry;
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
                Ok(plan) => plans.push((reconciler.clone(), plan)),
                Err(err) => pass.observe_errors.push(err.to_string()),
            }
        }
        let mut ready = Readiness::new(self.registry.kinds());
        for (reconciler, plan) in &plans {
            ready.observed(reconciler.kind(), plan);
        }
        for (reconciler, plan) in plans {
            for resource in plan.resources {
                let outcome = match resource.verdict {
                    Verdict::InSync => Outcome::InSync,
                    Verdict::Converging { reason } => Outcome::Converging(reason),
                    Verdict::Blocked { on, .. } => Outcome::Blocked(on),
                    Verdict::Drifted { reason, .. } => Outcome::Drifted(reason),
                    Verdict::Failed { reason } => Outcome::Failed(reason),
                    Verdict::Unmanaged { reason } => Outcome::Unmanaged(reason),
                    Verdict::Act { actions } => {
                        if let Some((dependency, _)) = ready.blocker(&resource.depends_on, &actions)
                        {
                            Outcome::Blocked(dependency.clone())
                        } else {
                            let mut verbs = Vec::new();
                            let mut failure = None;
                            for action in &actions {
                                match reconciler.apply(action).await {
                                    Ok(()) => verbs.push(action.verb),
                                    Err(err) => {
                                        failure = Some(Outcome::ActionFailed {
                                            verb: action.verb,
                                            class: err.class(),
                                            message: err.to_string(),
                                        });
                                        break;
                                    }
                                }
                            }
                            failure.unwrap_or(Outcome::Applied(verbs))
                        }
                    }
                };
                pass.resources.insert(resource.id, outcome);
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
