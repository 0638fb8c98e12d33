//! converged-aws: the EC2 and Route 53 reconcilers (`security_group`, `instance`,
//! `dns_record`). Each kind has a pure `diff` (the plan), a narrow `api` trait over our own
//! types with its SDK adapter, and a `reconciler` that glues them to the engine. Requests go
//! through one `AwsContext` per process: shared clients, token buckets and the request metric.

pub mod dns_record;
pub mod error;
pub mod instance;
pub mod intent;
pub mod operation;
pub mod ratelimit;
pub mod sdk;
pub mod security_group;
#[cfg(test)]
mod testing;

use std::path::PathBuf;
use std::sync::Arc;

use converged_core::api::ApiRecorder;
use converged_core::reconciler::Registry;

pub use error::{ApiFailure, AwsError};
pub use ratelimit::{BucketShape, RateLimits};
pub use sdk::{AwsContext, StaticCredentials};

/// Every AWS resource converged creates carries this tag, with the cluster name.
pub const CLUSTER_TAG: &str = "converged:cluster";
/// Instances carry the name of their node.
pub const NODE_TAG: &str = "converged:node";
/// Instances carry their replacement generation, which is part of their client token.
pub const GENERATION_TAG: &str = "converged:generation";
pub const NAME_TAG: &str = "Name";

/// How to reach AWS and where to keep intent records.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Overrides the endpoint of every service (moto in tests and the sandbox).
    pub endpoint_url: Option<String>,
    /// The daemon's state directory; intent records go to `aws-intents/` inside it.
    pub state_dir: PathBuf,
    pub limits: RateLimits,
    /// Explicit credentials instead of the standard chain (environment, profile, instance
    /// metadata).
    pub credentials: Option<StaticCredentials>,
}

impl AwsSettings {
    /// Real AWS, the standard credential chain and the default rate limits.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            endpoint_url: None,
            state_dir: state_dir.into(),
            limits: RateLimits::default(),
            credentials: None,
        }
    }
}

/// Adds the three AWS kinds to `registry`, sharing one context. Returns the instance client,
/// which the daemon also uses to find the nodes' addresses.
pub fn register(
    registry: &mut Registry,
    settings: AwsSettings,
    recorder: Arc<dyn ApiRecorder>,
) -> Arc<dyn instance::api::InstanceApi> {
    let intents = intent::IntentStore::new(&settings.state_dir);
    let context = Arc::new(AwsContext::new(settings, recorder));
    let instances = Arc::new(instance::api::Ec2Instances::new(Arc::clone(&context)));
    registry.register(security_group::SecurityGroupReconciler::new(Arc::new(
        security_group::api::Ec2SecurityGroups::new(Arc::clone(&context)),
    )));
    registry.register(instance::InstanceReconciler::new(
        Arc::clone(&instances) as Arc<dyn instance::api::InstanceApi>,
        intents,
    ));
    registry.register(dns_record::DnsRecordReconciler::new(
        Arc::new(dns_record::api::Route53Records::new(context)),
        Arc::clone(&instances) as Arc<dyn instance::api::InstanceApi>,
    ));
    instances
}
