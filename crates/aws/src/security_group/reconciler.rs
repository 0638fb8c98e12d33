//! Glue between the engine and EC2 for the `security_group` kind (I/O in observe and apply;
//! the plan is `diff::plan`).

use std::sync::Arc;

use async_trait::async_trait;
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{Classified, DesiredState, Kind, ReconcileError};

use super::api::SecurityGroupApi;
use super::{GroupAction, GroupObservation, diff};

pub struct SecurityGroupReconciler {
    api: Arc<dyn SecurityGroupApi>,
}

impl SecurityGroupReconciler {
    pub fn new(api: Arc<dyn SecurityGroupApi>) -> Self {
        Self { api }
    }
}

#[async_trait]
impl Reconciler for SecurityGroupReconciler {
    type Observed = GroupObservation;
    type Action = GroupAction;
    const KIND: Kind = Kind::SecurityGroup;

    async fn observe(&self, desired: &DesiredState) -> Result<GroupObservation, ReconcileError> {
        // No region means no nodes and no DNS: this desired state manages nothing on AWS.
        let Some(region) = &desired.cluster.region else {
            return Ok(GroupObservation::default());
        };
        if desired.nodes.is_empty() && desired.network.is_none() {
            return Ok(GroupObservation::default());
        }
        let groups = self
            .api
            .list_groups(region, &desired.cluster.name)
            .await
            .map_err(|err| err.into_observe(Self::KIND.as_str()))?;
        Ok(GroupObservation { groups })
    }

    fn plan(desired: &DesiredState, observed: &GroupObservation) -> KindPlan<GroupAction> {
        diff::plan(desired, observed)
    }

    async fn apply(&self, action: &GroupAction) -> Result<(), ReconcileError> {
        match action {
            GroupAction::Create { spec, ingress } => {
                let group_id = self
                    .api
                    .create_group(spec)
                    .await
                    .map_err(|err| err.into_apply("create"))?;
                tracing::info!(group_id, name = %spec.name, vpc_id = %spec.vpc_id, "created security group");
                self.api
                    .authorize(&group_id, super::Direction::Ingress, ingress)
                    .await
                    .map_err(|err| err.into_apply("create"))?;
                tracing::info!(group_id, rules = ingress.len(), "authorized ingress rules");
            }
            GroupAction::Authorize {
                group_id,
                direction,
                rules,
            } => {
                self.api
                    .authorize(group_id, *direction, rules)
                    .await
                    .map_err(|err| err.into_apply("authorize"))?;
                tracing::info!(
                    group_id,
                    direction = direction.as_str(),
                    rules = rules.len(),
                    "authorized rules"
                );
            }
            GroupAction::Revoke {
                group_id,
                direction,
                rules,
            } => {
                self.api
                    .revoke(group_id, *direction, rules)
                    .await
                    .map_err(|err| err.into_apply("revoke"))?;
                tracing::info!(
                    group_id,
                    direction = direction.as_str(),
                    rules = rules.len(),
                    "revoked rules"
                );
            }
            GroupAction::Delete { group_id } => {
                self.api
                    .delete_group(group_id)
                    .await
                    .map_err(|err| err.into_apply("delete"))?;
                tracing::info!(group_id, "deleted security group");
            }
        }
        Ok(())
    }
}
