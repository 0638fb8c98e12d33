//! Glue between the engine and EC2 for the `instance` kind (I/O in observe and apply; the plan
//! is `diff::plan`). Observation: one DescribeInstances by cluster tag and, while a live
//! instance has a root volume, one DescribeVolumes by cluster tag for their sizes. A launch
//! writes its intent record before RunInstances and records the instance id after it.

use std::sync::Arc;

use async_trait::async_trait;
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{Classified, DesiredState, Kind, ReconcileError};

use super::api::InstanceApi;
use super::{InstanceAction, InstanceObservation, LaunchSpec, diff};
use crate::error::AwsError;
use crate::intent::{Intent, IntentStore};

pub struct InstanceReconciler {
    api: Arc<dyn InstanceApi>,
    intents: IntentStore,
}

impl InstanceReconciler {
    pub fn new(api: Arc<dyn InstanceApi>, intents: IntentStore) -> Self {
        Self { api, intents }
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<(), AwsError> {
        let mut intent = Intent {
            cluster: spec.cluster.clone(),
            node: spec.node.clone(),
            generation: spec.generation,
            client_token: spec.client_token.clone(),
            instance_id: None,
            written_at: 0,
        };
        self.intents.write(&intent).await?;
        let instance_id = self.api.launch(spec).await?;
        tracing::info!(node = %spec.node, instance_id, generation = spec.generation, instance_type = %spec.instance_type, "launched instance");
        intent.instance_id = Some(instance_id);
        self.intents.write(&intent).await
    }
}

#[async_trait]
impl Reconciler for InstanceReconciler {
    type Observed = InstanceObservation;
    type Action = InstanceAction;
    const KIND: Kind = Kind::Instance;

    async fn observe(&self, desired: &DesiredState) -> Result<InstanceObservation, ReconcileError> {
        let Some(region) = &desired.cluster.region else {
            return Ok(InstanceObservation::default());
        };
        if desired.nodes.is_empty() && desired.network.is_none() {
            return Ok(InstanceObservation::default());
        }
        let observing = |err: AwsError| err.into_observe(Self::KIND.as_str());
        let intents = self
            .intents
            .load(&desired.cluster.name)
            .await
            .map_err(observing)?;
        let instances = self
            .api
            .list_instances(region, &desired.cluster.name)
            .await
            .map_err(observing)?;
        let root_volume_sizes = if instances
            .iter()
            .any(|i| i.state.is_live() && i.root_volume_id.is_some())
        {
            self.api
                .root_volume_sizes(region, &desired.cluster.name)
                .await
                .map_err(observing)?
        } else {
            Default::default()
        };
        Ok(InstanceObservation {
            instances,
            intents,
            root_volume_sizes,
        })
    }

    fn plan(desired: &DesiredState, observed: &InstanceObservation) -> KindPlan<InstanceAction> {
        diff::plan(desired, observed)
    }

    async fn apply(&self, action: &InstanceAction) -> Result<(), ReconcileError> {
        match action {
            InstanceAction::Launch(spec) => self
                .launch(spec)
                .await
                .map_err(|err| err.into_apply("create")),
            InstanceAction::Stop { instance_id } => {
                self.api
                    .stop(instance_id)
                    .await
                    .map_err(|err| err.into_apply("stop"))?;
                tracing::info!(instance_id, "stopped instance");
                Ok(())
            }
            InstanceAction::Resize {
                instance_id,
                instance_type,
            } => {
                self.api
                    .resize(instance_id, instance_type)
                    .await
                    .map_err(|err| err.into_apply("resize"))?;
                tracing::info!(instance_id, instance_type, "changed the instance type");
                Ok(())
            }
            InstanceAction::Start { instance_id } => {
                self.api
                    .start(instance_id)
                    .await
                    .map_err(|err| err.into_apply("start"))?;
                tracing::info!(instance_id, "started instance");
                Ok(())
            }
            InstanceAction::Terminate { instance_ids } => {
                self.api
                    .terminate(instance_ids)
                    .await
                    .map_err(|err| err.into_apply("terminate"))?;
                tracing::info!(instance_ids = ?instance_ids, "terminated instances");
                Ok(())
            }
        }
    }
}
