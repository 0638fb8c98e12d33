//! The `host_service` reconciler (glue, does I/O): observe through the host layer, plan with
//! `diff::plan`, apply one host action.

use std::sync::Arc;

use async_trait::async_trait;
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{Classified, DesiredState, Kind, ReconcileError};

use super::diff;
use crate::layer::{HostAction, HostLayer, HostsObserved};

pub struct HostServices {
    layer: Arc<HostLayer>,
}

impl HostServices {
    pub fn new(layer: Arc<HostLayer>) -> Self {
        Self { layer }
    }
}

#[async_trait]
impl Reconciler for HostServices {
    type Observed = HostsObserved;
    type Action = HostAction;
    const KIND: Kind = Kind::HostService;

    async fn observe(&self, desired: &DesiredState) -> Result<HostsObserved, ReconcileError> {
        Ok(self.layer.observe(desired).await)
    }

    fn plan(desired: &DesiredState, observed: &HostsObserved) -> KindPlan<HostAction> {
        diff::plan(desired, observed)
    }

    async fn apply(&self, action: &HostAction) -> Result<(), ReconcileError> {
        let verb = match action {
            HostAction::Start { .. } => "start",
            HostAction::Replace { .. } => "replace",
            HostAction::Restart { .. } => "restart",
            HostAction::Stop { .. } => "stop",
            HostAction::Reach { .. } => "reach",
        };
        self.layer
            .apply(action)
            .await
            .map_err(|err| err.into_apply(verb))
    }
}
