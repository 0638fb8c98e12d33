//! The decision core (pure: no I/O, no clock, no randomness; time is passed in): every kind's
//! plan, the daemon's memory of each resource (holds, backoff) and the policy in force (mode,
//! pause, prune, deletion budget) → what the daemon does with each resource this cycle, and
//! why. The engine, `converged plan`, `GET /v1/plan` and the test driver all call [`decide`],
//! so a plan is the daemon's own decision, not a second opinion.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::model::{DesiredState, Mode};
use crate::plan::{FieldChange, KindPlan, PlannedAction, Readiness, Verdict};
use crate::resource::{Kind, ResourceId};

/// Why a failed resource is not retried on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "until", rename_all = "snake_case")]
pub enum Hold {
    /// An invalid-class error: retried once the desired state is another revision than this.
    DesiredChanges { revision: String },
    /// An unsafe-class error: retried only when an operator asks for a reconcile.
    Operator,
}

/// What the daemon remembers of one resource between cycles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMemory<T> {
    /// Backoff: no action before this.
    pub retry_at: Option<T>,
    pub hold: Option<Hold>,
    /// The message of the last failure, for the reason of a held resource.
    pub last_error: Option<String>,
}

impl<T> Default for ResourceMemory<T> {
    fn default() -> Self {
        Self {
            retry_at: None,
            hold: None,
            last_error: None,
        }
    }
}

/// Everything the daemon carries from one cycle to the next that changes its decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory<T> {
    pub resources: BTreeMap<ResourceId, ResourceMemory<T>>,
    /// Kinds whose actions wait (a throttled API) until then.
    pub kinds_retry_at: BTreeMap<Kind, T>,
}

impl<T> Default for Memory<T> {
    fn default() -> Self {
        Self {
            resources: BTreeMap::new(),
            kinds_retry_at: BTreeMap::new(),
        }
    }
}

/// The policy of this cycle that is not in the desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CyclePolicy {
    /// `POST /v1/pause`: report, act on nothing.
    pub paused: bool,
    /// An operator asked: holds are released.
    pub release_holds: bool,
    /// An operator asked for deletions past `max_delete_fraction`.
    pub allow_mass_deletion: bool,
}

/// The policy that leaves a drifted resource alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftAloneBy {
    /// The kind's mode is `observe`.
    ObserveMode,
    /// Acting is paused.
    Paused,
    /// The resource is not in the desired state and prune is off for its kind.
    PruneOff,
    /// The reconciler's own policy (a change that needs a replacement the desired state does
    /// not allow).
    Reconciler,
}

impl LeftAloneBy {
    /// The words the plan's summary uses, e.g. `prune is off for instance`.
    pub fn describe(self, kind: Kind) -> String {
        match self {
            LeftAloneBy::ObserveMode => format!("{kind} is in observe mode"),
            LeftAloneBy::Paused => "acting is paused".into(),
            LeftAloneBy::PruneOff => format!("prune is off for {kind}"),
            LeftAloneBy::Reconciler => format!("{kind}'s own policy"),
        }
    }
}

/// What the daemon does with one resource this cycle.
#[derive(Debug, Clone)]
pub enum Decision<A> {
    InSync,
    /// These actions are taken now, in order.
    Apply {
        actions: Vec<PlannedAction<A>>,
    },
    /// An earlier action is still taking effect.
    Converging {
        reason: String,
    },
    /// Waits for a dependency.
    Blocked {
        on: ResourceId,
        reason: String,
    },
    /// Differs, and policy says report only. `actions` are what would be taken otherwise.
    Drifted {
        reason: String,
        by: LeftAloneBy,
        actions: Vec<PlannedAction<A>>,
        changes: Vec<FieldChange>,
    },
    /// Failed before and not retried this cycle (backoff, a hold, a throttled kind).
    Held {
        reason: String,
    },
    /// Would be acted on, but the action is refused for a reason known now (a mass deletion).
    Refused {
        reason: String,
        actions: Vec<PlannedAction<A>>,
    },
    /// The reconciler says it cannot fix this by itself (an unresolvable secret, a stuck
    /// deployment).
    Failed {
        reason: String,
    },
    /// Not ours: left alone whatever prune says.
    Unmanaged {
        reason: String,
    },
}

impl<A> Decision<A> {
    /// The condition `/status` shows after the cycle, assuming applied actions succeed.
    pub fn condition(&self) -> Condition {
        match self {
            Decision::InSync => Condition::InSync,
            Decision::Apply { .. } | Decision::Converging { .. } => Condition::Converging,
            Decision::Blocked { .. } => Condition::Blocked,
            Decision::Drifted { .. } => Condition::Drifted,
            Decision::Held { .. } | Decision::Refused { .. } | Decision::Failed { .. } => {
                Condition::Failed
            }
            Decision::Unmanaged { .. } => Condition::Unmanaged,
        }
    }

    /// The reason `/status` shows after the cycle (for `Apply`, once its actions succeeded).
    pub fn reason(&self) -> String {
        match self {
            Decision::InSync => String::new(),
            Decision::Apply { actions } => actions
                .last()
                .map(|last| applied_reason(last.verb, &last.reason))
                .unwrap_or_default(),
            Decision::Converging { reason }
            | Decision::Blocked { reason, .. }
            | Decision::Drifted { reason, .. }
            | Decision::Held { reason }
            | Decision::Refused { reason, .. }
            | Decision::Failed { reason }
            | Decision::Unmanaged { reason } => reason.clone(),
        }
    }

    /// The actions taken now, or that policy holds back.
    pub fn actions(&self) -> &[PlannedAction<A>] {
        match self {
            Decision::Apply { actions }
            | Decision::Drifted { actions, .. }
            | Decision::Refused { actions, .. } => actions,
            _ => &[],
        }
    }
}

/// The reason a resource shows once its actions were applied, the last being `verb`.
pub fn applied_reason(verb: &str, reason: &str) -> String {
    format!("{verb} applied ({reason}); waiting to observe the effect")
}

/// One resource's decision.
#[derive(Debug, Clone)]
pub struct ResourceDecision<A> {
    pub id: ResourceId,
    /// Whether the plan found it different from the desired state (it wanted actions, or
    /// reported drift), whatever policy then decided: what counts as drift detected.
    pub differs: bool,
    pub decision: Decision<A>,
}

/// A batch of resources of one kind acted on together. Batches run in order.
#[derive(Debug, Clone)]
pub struct ApplyBatch {
    pub kind: Kind,
    pub deletions: bool,
    /// Indexes into [`CycleDecision::resources`].
    pub resources: Vec<usize>,
}

/// Every resource's decision, and the order the `Apply` ones run in: creations and updates
/// kind by kind in dependency order, then deletions in reverse dependency order.
#[derive(Debug, Clone)]
pub struct CycleDecision<A> {
    pub resources: Vec<ResourceDecision<A>>,
    pub batches: Vec<ApplyBatch>,
}

impl<A> CycleDecision<A> {
    /// The decisions of one kind, in plan order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &ResourceDecision<A>> {
        self.resources.iter().filter(move |r| r.id.kind == kind)
    }
}

/// Decides one cycle. `running` lists every kind the daemon runs (observed this cycle or not);
/// `plans` holds the kinds observed this cycle, in any order.
pub fn decide<A, T: Ord + Copy>(
    desired: &DesiredState,
    running: &[Kind],
    plans: Vec<(Kind, KindPlan<A>)>,
    memory: &Memory<T>,
    policy: CyclePolicy,
    now: T,
) -> CycleDecision<A> {
    let mut plans = plans;
    plans.sort_by_key(|(kind, _)| *kind);
    let mut ready = Readiness::new(running.iter().copied());
    for (kind, plan) in &plans {
        ready.observed(*kind, plan);
    }
    let mut resources = Vec::new();
    let mut creations = Vec::new();
    let mut deletions = Vec::new();
    for (kind, plan) in plans {
        let managed = plan
            .resources
            .iter()
            .filter(|r| !matches!(r.verdict, Verdict::Unmanaged { .. }))
            .count();
        let deleting = plan
            .resources
            .iter()
            .filter(|r| r.actions().iter().any(|a| a.deletes))
            .count();
        let refusal = deletion_refusal(desired, kind, deleting, managed, policy);
        let kind_waits = memory.kinds_retry_at.get(&kind).is_some_and(|at| *at > now);
        let mut creating = Vec::new();
        let mut removing = Vec::new();
        for resource in plan.resources {
            let id = resource.id;
            let differs = matches!(
                resource.verdict,
                Verdict::Act { .. } | Verdict::Drifted { .. }
            );
            let decision = match resource.verdict {
                Verdict::InSync => Decision::InSync,
                Verdict::Converging { reason } => Decision::Converging { reason },
                Verdict::Blocked { on, reason } => Decision::Blocked { on, reason },
                Verdict::Unmanaged { reason } => Decision::Unmanaged { reason },
                Verdict::Failed { reason } => Decision::Failed { reason },
                Verdict::Drifted { reason, changes } => Decision::Drifted {
                    reason,
                    by: LeftAloneBy::Reconciler,
                    actions: Vec::new(),
                    changes,
                },
                Verdict::Act { actions } => {
                    let deletes = actions.iter().any(|a| a.deletes);
                    let refused = refusal.as_ref().filter(|_| deletes);
                    let remembered = memory.resources.get(&id);
                    decide_actions(ActionContext {
                        desired,
                        kind,
                        actions,
                        refused,
                        depends_on: &resource.depends_on,
                        ready: &ready,
                        remembered,
                        kind_waits,
                        policy,
                        now,
                    })
                }
            };
            if let Decision::Apply { actions } = &decision {
                let index = resources.len();
                if actions.iter().any(|a| a.deletes) {
                    removing.push(index);
                } else {
                    creating.push(index);
                }
            }
            resources.push(ResourceDecision {
                id,
                differs,
                decision,
            });
        }
        if !creating.is_empty() {
            creations.push(ApplyBatch {
                kind,
                deletions: false,
                resources: creating,
            });
        }
        if !removing.is_empty() {
            deletions.push(ApplyBatch {
                kind,
                deletions: true,
                resources: removing,
            });
        }
    }
    deletions.reverse();
    creations.extend(deletions);
    CycleDecision {
        resources,
        batches: creations,
    }
}

/// Why deletions of this kind are refused this cycle, if they are: the prune policy, or the
/// deletion budget (`max_delete_fraction` of the kind's managed resources).
enum Refusal {
    PruneOff(String),
    OverBudget(String),
}

fn deletion_refusal(
    desired: &DesiredState,
    kind: Kind,
    count: usize,
    managed: usize,
    policy: CyclePolicy,
) -> Option<Refusal> {
    if count == 0 {
        return None;
    }
    let kind_policy = desired.kind_policy(kind);
    if !kind_policy.prune {
        return Some(Refusal::PruneOff(format!(
            "not in the desired state; left in place because prune is off for {kind}"
        )));
    }
    let limit = kind_policy.max_delete_fraction * managed as f64;
    if count as f64 > limit && !policy.allow_mass_deletion {
        return Some(Refusal::OverBudget(format!(
            "deletion refused: this cycle would delete {count} of {managed} managed {kind} resources, more than max_delete_fraction {}; ask for a reconcile with the mass-deletion override to proceed",
            kind_policy.max_delete_fraction
        )));
    }
    None
}

struct ActionContext<'a, A, T> {
    desired: &'a DesiredState,
    kind: Kind,
    actions: Vec<PlannedAction<A>>,
    refused: Option<&'a Refusal>,
    depends_on: &'a [ResourceId],
    ready: &'a Readiness,
    remembered: Option<&'a ResourceMemory<T>>,
    kind_waits: bool,
    policy: CyclePolicy,
    now: T,
}

/// A resource the plan wants acted on: the policy checks, in the order that decides which
/// reason the operator sees.
fn decide_actions<A, T: Ord + Copy>(context: ActionContext<'_, A, T>) -> Decision<A> {
    let ActionContext {
        desired,
        kind,
        actions,
        refused,
        depends_on,
        ready,
        remembered,
        kind_waits,
        policy,
        now,
    } = context;
    match refused {
        Some(Refusal::PruneOff(reason)) => {
            return Decision::Drifted {
                reason: reason.clone(),
                by: LeftAloneBy::PruneOff,
                actions,
                changes: Vec::new(),
            };
        }
        Some(Refusal::OverBudget(reason)) => {
            return Decision::Refused {
                reason: reason.clone(),
                actions,
            };
        }
        None => {}
    }
    let summary = summarize(&actions);
    if desired.mode(kind) == Mode::Observe {
        return Decision::Drifted {
            reason: format!("observe mode: would {summary}"),
            by: LeftAloneBy::ObserveMode,
            actions,
            changes: Vec::new(),
        };
    }
    if policy.paused {
        return Decision::Drifted {
            reason: format!("paused: would {summary}"),
            by: LeftAloneBy::Paused,
            actions,
            changes: Vec::new(),
        };
    }
    if let Some((dependency, why)) = ready.blocker(depends_on, &actions) {
        return Decision::Blocked {
            on: dependency.clone(),
            reason: why,
        };
    }
    let last_error = remembered
        .and_then(|r| r.last_error.as_deref())
        .unwrap_or_default();
    let held = |why: &str| Decision::Held {
        reason: format!("{why}; last error: {last_error}"),
    };
    let hold = remembered
        .and_then(|r| r.hold.as_ref())
        .filter(|_| !policy.release_holds)
        .filter(|hold| match hold {
            Hold::DesiredChanges { revision } => *revision == desired.revision,
            Hold::Operator => true,
        });
    match hold {
        Some(Hold::DesiredChanges { .. }) => {
            return held(
                "held after an invalid request: fix the desired state or ask for a reconcile",
            );
        }
        Some(Hold::Operator) => {
            return held("held after an unsafe error: check the error, then ask for a reconcile");
        }
        None => {}
    }
    let backing_off = !policy.release_holds
        && remembered
            .and_then(|r| r.retry_at)
            .is_some_and(|at| at > now);
    if backing_off || (kind_waits && !policy.release_holds) {
        return held("waiting for the next retry");
    }
    Decision::Apply { actions }
}

/// `verb (reason), then verb (reason)`.
fn summarize<A>(actions: &[PlannedAction<A>]) -> String {
    actions
        .iter()
        .map(|action| format!("{} ({})", action.verb, action.reason))
        .collect::<Vec<_>>()
        .join(", then ")
}

/// What a resource's actions do, as a plan shows it: `+` create, `~` change, `-` delete, `-/+`
/// replace. Verbs are a bounded vocabulary (they are metric labels): `create` creates,
/// `replace` or a deletion followed by anything else replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Create,
    Change,
    Delete,
    Replace,
}

impl Effect {
    pub fn of<A>(actions: &[PlannedAction<A>]) -> Effect {
        let deletes = actions.iter().filter(|a| a.deletes).count();
        if actions.iter().any(|a| a.verb == "replace") || (deletes > 0 && deletes < actions.len()) {
            Effect::Replace
        } else if deletes > 0 {
            Effect::Delete
        } else if actions.first().is_some_and(|a| a.verb == "create") {
            Effect::Create
        } else {
            Effect::Change
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Effect::Create => "+",
            Effect::Change => "~",
            Effect::Delete => "-",
            Effect::Replace => "-/+",
        }
    }
}

#[cfg(test)]
mod tests;
