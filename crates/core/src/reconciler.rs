//! The `Reconciler` trait each kind implements, and its type-erased form the engine holds in a
//! registry. `observe` and `apply` do I/O; `plan` is pure by construction (no `self`).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::ReconcileError;
use crate::model::DesiredState;
use crate::plan::{KindPlan, PlannedAction};
use crate::resource::Kind;

#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// Everything of this kind that exists, as one value.
    type Observed: Send + Sync + 'static;
    /// One idempotent step `apply` knows how to take.
    type Action: Send + Sync + 'static;

    const KIND: Kind;

    /// Reads the world: a bounded number of list calls that does not grow with the number of
    /// resources. Never writes.
    async fn observe(&self, desired: &DesiredState) -> Result<Self::Observed, ReconcileError>;

    /// Desired × observed → a verdict per resource. Pure: no client, no clock, no randomness.
    fn plan(desired: &DesiredState, observed: &Self::Observed) -> KindPlan<Self::Action>;

    /// Takes one step. Must be idempotent: creating what exists or deleting what is gone
    /// succeeds.
    async fn apply(&self, action: &Self::Action) -> Result<(), ReconcileError>;
}

/// An action payload with its type erased, so the engine can hold every kind's plan together.
pub type ErasedPayload = Arc<dyn Any + Send + Sync>;
pub type ErasedAction = PlannedAction<ErasedPayload>;
pub type ErasedKindPlan = KindPlan<ErasedPayload>;

/// The object-safe face of a `Reconciler`.
#[async_trait]
pub trait DynReconciler: Send + Sync {
    fn kind(&self) -> Kind;
    async fn observe_and_plan(
        &self,
        desired: &DesiredState,
    ) -> Result<ErasedKindPlan, ReconcileError>;
    async fn apply(&self, action: &ErasedAction) -> Result<(), ReconcileError>;
}

/// Wraps a `Reconciler` as a `DynReconciler`.
pub struct Erased<R>(pub R);

#[async_trait]
impl<R: Reconciler> DynReconciler for Erased<R> {
    fn kind(&self) -> Kind {
        R::KIND
    }

    async fn observe_and_plan(
        &self,
        desired: &DesiredState,
    ) -> Result<ErasedKindPlan, ReconcileError> {
        let observed = self.0.observe(desired).await?;
        let plan = R::plan(desired, &observed);
        Ok(KindPlan::new(
            plan.resources
                .into_iter()
                .map(|resource| resource.map_actions(|action| Arc::new(action) as ErasedPayload))
                .collect(),
        )
        .complete(plan.complete))
    }

    async fn apply(&self, action: &ErasedAction) -> Result<(), ReconcileError> {
        let typed = action
            .action
            .downcast_ref::<R::Action>()
            .ok_or(ReconcileError::Apply {
                action: action.verb,
                class: crate::error::ErrorClass::Unsafe,
                message: format!("the engine handed {} an action of another kind", R::KIND),
            })?;
        self.0.apply(typed).await
    }
}

/// The kinds the daemon runs, in dependency order.
#[derive(Default, Clone)]
pub struct Registry {
    reconcilers: Vec<Arc<dyn DynReconciler>>,
}

impl Registry {
    /// Adds a reconciler; the registry keeps kinds sorted in dependency order whatever the
    /// order of registration.
    pub fn register<R: Reconciler>(&mut self, reconciler: R) -> &mut Self {
        self.register_dyn(Arc::new(Erased(reconciler)))
    }

    pub fn register_dyn(&mut self, reconciler: Arc<dyn DynReconciler>) -> &mut Self {
        self.reconcilers
            .retain(|existing| existing.kind() != reconciler.kind());
        self.reconcilers.push(reconciler);
        self.reconcilers.sort_by_key(|r| r.kind());
        self
    }

    pub fn kinds(&self) -> Vec<Kind> {
        self.reconcilers.iter().map(|r| r.kind()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DynReconciler>> {
        self.reconcilers.iter()
    }

    pub fn get(&self, kind: Kind) -> Option<&Arc<dyn DynReconciler>> {
        self.reconcilers.iter().find(|r| r.kind() == kind)
    }

    pub fn is_empty(&self) -> bool {
        self.reconcilers.is_empty()
    }
}
