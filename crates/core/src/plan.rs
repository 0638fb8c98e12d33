//! Plans: what a reconciler decided for each resource of its kind, with reasons and field-level
//! diffs (pure data, no I/O).

use serde::Serialize;

use std::collections::{BTreeSet, HashMap};

use crate::resource::{Kind, ResourceId};

/// One field that differs. Values are display strings: whoever builds a change from a secret
/// uses `FieldChange::redacted` so no secret can reach a plan, a log or `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl FieldChange {
    pub fn new(path: impl Into<String>, from: Option<String>, to: Option<String>) -> Self {
        Self {
            path: path.into(),
            from,
            to,
        }
    }

    /// A change to a secret value: shown, never printed.
    pub fn redacted(path: impl Into<String>) -> Self {
        Self::new(path, Some("<redacted>".into()), Some("<redacted>".into()))
    }
}

/// One step a reconciler wants taken. `action` is the reconciler's own typed payload and is
/// never serialized (it may carry resolved values); everything else is for people.
#[derive(Debug, Clone, Serialize)]
#[serde(bound(serialize = ""))]
pub struct PlannedAction<A> {
    #[serde(skip)]
    pub action: A,
    /// A short bounded name, also used as the `action` metric label: `create`, `update`, ...
    pub verb: &'static str,
    /// Deletions are held back by the prune policy and the deletion budget, and run after
    /// every creation and update, in reverse kind order.
    pub deletes: bool,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

impl<A> PlannedAction<A> {
    pub fn new(action: A, verb: &'static str, reason: impl Into<String>) -> Self {
        Self {
            action,
            verb,
            deletes: false,
            reason: reason.into(),
            changes: Vec::new(),
        }
    }

    pub fn deleting(mut self) -> Self {
        self.deletes = true;
        self
    }

    pub fn with_changes(mut self, changes: Vec<FieldChange>) -> Self {
        self.changes = changes;
        self
    }

    pub fn map<B>(self, f: impl FnOnce(A) -> B) -> PlannedAction<B> {
        PlannedAction {
            action: f(self.action),
            verb: self.verb,
            deletes: self.deletes,
            reason: self.reason,
            changes: self.changes,
        }
    }
}

/// What the plan concluded about one resource.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case", bound(serialize = ""))]
pub enum Verdict<A> {
    /// Observed matches desired.
    InSync,
    /// Differs, and these actions would fix it, in order.
    Act { actions: Vec<PlannedAction<A>> },
    /// An earlier action is still taking effect (an instance booting, a deployment running).
    Converging { reason: String },
    /// Cannot even be planned until a dependency is ready (a DNS record whose instance has no
    /// address yet). A plan that knows its actions uses `Act` with `depends_on` instead, and
    /// the engine blocks it while the dependency is not ready.
    Blocked { on: ResourceId, reason: String },
    /// Differs, but policy says report only (e.g. a change that needs a replacement).
    Drifted {
        reason: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        changes: Vec<FieldChange>,
    },
    /// Exists, is not ours, and is left alone.
    Unmanaged { reason: String },
    /// Stuck in a state the reconciler cannot fix by itself (a deployment past its deadline):
    /// reported as failed; nothing is retried until the world or the desired state changes.
    Failed { reason: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(bound(serialize = ""))]
pub struct ResourcePlan<A> {
    pub id: ResourceId,
    /// Resources that must be ready before this one is acted on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceId>,
    /// Whether dependents may proceed. Defaults to "in sync"; a plan may say a drifted
    /// resource is still usable (a running instance of the wrong type).
    pub ready: bool,
    #[serde(flatten)]
    pub verdict: Verdict<A>,
}

impl<A> ResourcePlan<A> {
    pub fn new(id: ResourceId, verdict: Verdict<A>) -> Self {
        let ready = matches!(verdict, Verdict::InSync);
        Self {
            id,
            depends_on: Vec::new(),
            ready,
            verdict,
        }
    }

    pub fn in_sync(id: ResourceId) -> Self {
        Self::new(id, Verdict::InSync)
    }

    pub fn act(id: ResourceId, actions: Vec<PlannedAction<A>>) -> Self {
        Self::new(id, Verdict::Act { actions })
    }

    pub fn depends_on(mut self, ids: impl IntoIterator<Item = ResourceId>) -> Self {
        self.depends_on.extend(ids);
        self
    }

    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    pub fn actions(&self) -> &[PlannedAction<A>] {
        match &self.verdict {
            Verdict::Act { actions } => actions,
            _ => &[],
        }
    }

    pub fn map_actions<B>(self, mut f: impl FnMut(A) -> B) -> ResourcePlan<B> {
        let verdict = match self.verdict {
            Verdict::InSync => Verdict::InSync,
            Verdict::Act { actions } => Verdict::Act {
                actions: actions.into_iter().map(|a| a.map(&mut f)).collect(),
            },
            Verdict::Converging { reason } => Verdict::Converging { reason },
            Verdict::Blocked { on, reason } => Verdict::Blocked { on, reason },
            Verdict::Drifted { reason, changes } => Verdict::Drifted { reason, changes },
            Verdict::Unmanaged { reason } => Verdict::Unmanaged { reason },
            Verdict::Failed { reason } => Verdict::Failed { reason },
        };
        ResourcePlan {
            id: self.id,
            depends_on: self.depends_on,
            ready: self.ready,
            verdict,
        }
    }
}

/// Every resource of one kind, desired or observed, each with its verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(bound(serialize = ""))]
pub struct KindPlan<A> {
    pub resources: Vec<ResourcePlan<A>>,
    /// False when the observation could not see every resource of the kind (a peer that knows
    /// them did not answer): what it does not list may still exist.
    #[serde(skip)]
    pub complete: bool,
}

impl<A> Default for KindPlan<A> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl<A> KindPlan<A> {
    pub fn new(resources: Vec<ResourcePlan<A>>) -> Self {
        Self {
            resources,
            complete: true,
        }
    }

    pub fn complete(mut self, complete: bool) -> Self {
        self.complete = complete;
        self
    }

    pub fn action_count(&self) -> usize {
        self.resources.iter().map(|r| r.actions().len()).sum()
    }
}

/// Which resources one cycle's plans found ready, and which kinds may hold resources no plan
/// shows: what decides whether an action waits for its dependencies.
#[derive(Debug)]
pub struct Readiness {
    resources: HashMap<ResourceId, bool>,
    /// Kinds that run but were not (completely) observed this cycle.
    unseen_kinds: BTreeSet<Kind>,
}

impl Readiness {
    /// Starts with every kind that runs unseen.
    pub fn new(running: impl IntoIterator<Item = Kind>) -> Self {
        Self {
            resources: HashMap::new(),
            unseen_kinds: running.into_iter().collect(),
        }
    }

    /// Notes a kind's plan: how ready each of its resources is, and, if the observation was
    /// complete, that nothing else of the kind exists.
    pub fn observed<A>(&mut self, kind: Kind, plan: &KindPlan<A>) {
        if plan.complete {
            self.unseen_kinds.remove(&kind);
        }
        self.resources
            .extend(plan.resources.iter().map(|r| (r.id.clone(), r.ready)));
    }

    /// Whether some plan this cycle mentions `id`.
    pub fn knows(&self, id: &ResourceId) -> bool {
        self.resources.contains_key(id)
    }

    /// The first dependency that holds `actions` back, and why. A tear-down waits only for
    /// what still stands: a dependency that a complete observation of its kind does not show,
    /// or of a kind that does not run, is gone, not pending.
    pub fn blocker<'a, A>(
        &self,
        depends_on: &'a [ResourceId],
        actions: &[PlannedAction<A>],
    ) -> Option<(&'a ResourceId, String)> {
        let tears_down = !actions.is_empty() && actions.iter().all(|action| action.deletes);
        depends_on.iter().find_map(|dependency| {
            match self.resources.get(dependency) {
                Some(true) => None,
                Some(false) => Some(format!("waiting for {dependency} to be ready")),
                None if tears_down && !self.unseen_kinds.contains(&dependency.kind) => None,
                None => Some(format!("waiting for {dependency}, which was not observed")),
            }
            .map(|why| (dependency, why))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tear_down_goes_ahead_without_a_dependency_that_is_gone() {
        let agent = ResourceId::new(Kind::MesosAgent, "gone");
        let instance = ResourceId::new(Kind::Instance, "gone");
        let create = [PlannedAction::new((), "create", "missing")];
        let delete = [PlannedAction::new((), "stop", "dropped").deleting()];
        let readiness = |agents: Option<Vec<ResourcePlan<()>>>| {
            let mut readiness = Readiness::new([Kind::MesosAgent, Kind::Instance]);
            if let Some(agents) = agents {
                readiness.observed(Kind::MesosAgent, &KindPlan::new(agents));
            }
            readiness
        };
        let draining = || vec![ResourcePlan::act(agent.clone(), create.to_vec())];
        let drained = || vec![ResourcePlan::new(agent.clone(), Verdict::InSync)];
        let partly = || {
            let mut readiness = Readiness::new([Kind::MesosAgent]);
            readiness.observed(Kind::MesosAgent, &KindPlan::<()>::default().complete(false));
            readiness
        };
        type Case<'a> = (&'a str, Readiness, &'a [PlannedAction<()>], Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "tear-down, dependency gone",
                readiness(Some(Vec::new())),
                &delete,
                None,
            ),
            (
                "tear-down, dependency not ready",
                readiness(Some(draining())),
                &delete,
                Some("to be ready"),
            ),
            (
                "tear-down, dependency ready",
                readiness(Some(drained())),
                &delete,
                None,
            ),
            (
                "tear-down, kind not observed",
                readiness(None),
                &delete,
                Some("not observed"),
            ),
            (
                "tear-down, kind observed in part",
                partly(),
                &delete,
                Some("not observed"),
            ),
            (
                "tear-down, kind not running",
                Readiness::new([Kind::Instance]),
                &delete,
                None,
            ),
            (
                "create, dependency unknown",
                readiness(Some(Vec::new())),
                &create,
                Some("not observed"),
            ),
        ];
        for (name, readiness, actions, expected) in cases {
            let blocker = readiness.blocker(std::slice::from_ref(&agent), actions);
            match (blocker, expected) {
                (None, None) => {}
                (Some((on, why)), Some(text)) => {
                    assert_eq!(on, &agent, "{name}");
                    assert!(why.contains(text), "{name}: {why}");
                }
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
        assert!(readiness(Some(drained())).knows(&agent));
        assert!(!readiness(Some(drained())).knows(&instance));
    }

    #[test]
    fn payloads_never_serialize() {
        let action = PlannedAction::new("SECRET-PAYLOAD", "update", "image changed")
            .with_changes(vec![FieldChange::redacted("/env/PASSWORD")]);
        let plan = ResourcePlan::act(ResourceId::new(Kind::MarathonApp, "/a"), vec![action]);
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("SECRET-PAYLOAD"), "{json}");
        assert!(json.contains("\"verdict\":\"act\""), "{json}");
        assert!(json.contains("<redacted>"), "{json}");
        assert!(!plan.ready);
    }

    #[test]
    fn only_in_sync_is_ready_by_default() {
        let id = ResourceId::new(Kind::Instance, "a");
        assert!(ResourcePlan::<()>::in_sync(id.clone()).ready);
        let drifted = ResourcePlan::<()>::new(
            id,
            Verdict::Drifted {
                reason: "type".into(),
                changes: vec![],
            },
        );
        assert!(!drifted.ready);
        assert!(drifted.ready(true).ready);
    }
}
