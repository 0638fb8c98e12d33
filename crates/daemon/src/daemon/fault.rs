//! A fault for the supervision tests, compiled into debug builds only (does no I/O of its own):
//! with `CONVERGED_TEST_PANIC_IN=observe` in its environment, the daemon's first kind panics
//! when it observes, so a test can watch the real binary's engine die. A release build has no
//! such code and ignores the variable.

use std::sync::Arc;

use async_trait::async_trait;
use converged_core::reconciler::{DynReconciler, ErasedAction, ErasedKindPlan, Registry};
use converged_core::{DesiredState, Kind, ReconcileError};

pub const VARIABLE: &str = "CONVERGED_TEST_PANIC_IN";

/// The registry, with its first kind replaced by one that panics when it observes if the
/// environment asks for it.
pub fn inject_from_env(mut registry: Registry) -> Registry {
    let Some(stage) = std::env::var_os(VARIABLE) else {
        return registry;
    };
    if stage != "observe" {
        tracing::warn!(
            variable = VARIABLE,
            value = %stage.to_string_lossy(),
            "ignored: the only fault is `observe`"
        );
        return registry;
    }
    let first = registry.iter().next().cloned();
    if let Some(inner) = first {
        tracing::warn!(
            variable = VARIABLE,
            kind = inner.kind().as_str(),
            "this kind's observation will panic on purpose"
        );
        registry.register_dyn(Arc::new(PanicsOnObserve(inner)));
    }
    registry
}

struct PanicsOnObserve(Arc<dyn DynReconciler>);

#[async_trait]
impl DynReconciler for PanicsOnObserve {
    fn kind(&self) -> Kind {
        self.0.kind()
    }

    async fn observe_and_plan(
        &self,
        _desired: &DesiredState,
    ) -> Result<ErasedKindPlan, ReconcileError> {
        panic!("{VARIABLE}=observe: {} panicked on purpose", self.0.kind());
    }

    async fn apply(&self, action: &ErasedAction) -> Result<(), ReconcileError> {
        self.0.apply(action).await
    }
}
