//! The registry of kinds the daemon runs, built from the daemon configuration. Every external
//! API request is reported to `recorder` (the daemon's metrics). The engine's registry writes
//! converged's state (ZooKeeper ids, host key pins, the Mesos agents it manages, the env keys it
//! sent to Marathon as secrets); the planner's is read-only and shows what it would have
//! written instead.

use std::sync::Arc;

use converged_core::api::ApiRecorder;
use converged_core::reconciler::Registry;
use converged_core::secret::SecretRef;
use converged_hosts::{
    AllowedNetworks, HostLayer, HostServices, Runtime, RuntimeKind, SshPool, SshSettings,
};
use converged_mesos::agent::api::HttpMesosMaster;
use converged_mesos::agent::memory::AgentMemoryStore;
use converged_mesos::agent::reconciler::MesosAgents;
use converged_mesos::marathon::api::{HttpMarathon, MarathonApi, MarathonEndpoint};
use converged_mesos::marathon::memory::SecretKeyStore;
use converged_mesos::marathon::reconciler::MarathonApps;
use converged_zookeeper::{Ensemble, EnsembleFiles, IdStore};

use crate::addresses::InstanceAddresses;
use crate::config::{DaemonConfig, RuntimeChoice};
use crate::error::DaemonError;

/// How the AWS kinds reach AWS: the endpoint override and the token buckets of `[aws]`.
fn aws_settings(config: &DaemonConfig) -> Result<converged_aws::AwsSettings, DaemonError> {
    let mut aws = converged_aws::AwsSettings::new(&config.state_dir);
    aws.endpoint_url = Some(config.aws.endpoint_url.clone()).filter(|url| !url.is_empty());
    aws.limits = config
        .aws
        .rate_limits
        .limits()
        .map_err(|message| DaemonError::Kind {
            kind: "aws",
            message,
        })?;
    Ok(aws)
}

/// The service whose restarts the ensemble kind rolls out itself, one member at a time.
const ROLLED_BY_ENSEMBLE: &str = "zookeeper";

pub use converged_hosts::Access;

pub fn registry(
    config: &DaemonConfig,
    recorder: Arc<dyn ApiRecorder>,
    access: Access,
) -> Result<Registry, DaemonError> {
    let mut registry = Registry::default();

    // security_group, instance, dns_record: they ask AWS nothing unless the desired state has
    // nodes or a [dns] section.
    let instances =
        converged_aws::register(&mut registry, aws_settings(config)?, Arc::clone(&recorder));

    // host_service, zookeeper_ensemble, mesos_agent: they reach nodes over SSH only when the
    // desired state has nodes with roles.
    let allowed = AllowedNetworks::new(config.ssh.allowed_networks.clone());
    let mut ssh = SshSettings::new(
        config.ssh.user.clone(),
        config.ssh.key_file.clone(),
        config.ssh.known_hosts.clone(),
    );
    ssh.allowed_networks = allowed.clone();
    ssh.access = access;
    let pool = Arc::new(SshPool::new(ssh, Arc::clone(&recorder)));
    let addresses = Arc::new(InstanceAddresses::new(
        config.ssh.address_overrides.clone(),
        instances,
        config.ssh.address,
    ));
    let runtime = match config.ssh.runtime {
        RuntimeChoice::Docker => RuntimeKind::Docker,
        RuntimeChoice::Exec => RuntimeKind::Exec,
    };
    let ids = Arc::new(IdStore::new(&config.state_dir, access));
    let layer = Arc::new(
        HostLayer::new(
            pool,
            addresses,
            Runtime::new(runtime, config.ssh.service_root.clone()),
            allowed.clone(),
        )
        .with_extras(Arc::new(EnsembleFiles::new(Arc::clone(&ids))))
        .with_rolling(ROLLED_BY_ENSEMBLE),
    );
    registry.register(HostServices::new(Arc::clone(&layer)));
    registry.register(Ensemble::new(Arc::clone(&layer), ids));
    let master = HttpMesosMaster::new(allowed.clone(), Arc::clone(&recorder)).map_err(|err| {
        DaemonError::Kind {
            kind: "mesos_agent",
            message: err.to_string(),
        }
    })?;
    let mut agents = MesosAgents::new(
        layer,
        Arc::new(master),
        config.mesos.urls(),
        config.mesos.agent_grace,
        AgentMemoryStore::new(&config.state_dir, access),
    );

    let urls = config.marathon.urls();
    if !urls.is_empty() {
        let endpoint = MarathonEndpoint {
            urls,
            credentials: config
                .marathon
                .credentials_file
                .as_ref()
                .map(|path| SecretRef::File(path.display().to_string())),
            allowed_networks: allowed,
        };
        let client: Arc<dyn MarathonApi> = Arc::new(
            HttpMarathon::new(endpoint, recorder).map_err(|err| DaemonError::Kind {
                kind: "marathon_app",
                message: err.to_string(),
            })?,
        );
        // Draining an agent moves its Marathon tasks before its machine goes down.
        agents = agents.with_marathon(Arc::clone(&client));
        registry.register(
            MarathonApps::new(client, config.marathon.deployment_deadline)
                .remembering_secrets_in(SecretKeyStore::new(&config.state_dir, access)),
        );
    }
    registry.register(agents);
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use converged_aws::BucketShape;

    use super::*;

    #[test]
    fn the_aws_buckets_take_their_shapes_from_the_configuration() {
        let env = [
            ("CONVERGED__AWS__RATE_LIMITS__EC2_DESCRIBE_BURST", "7"),
            ("CONVERGED__AWS__RATE_LIMITS__EC2_DESCRIBE_PER_SECOND", "3"),
            ("CONVERGED__AWS__RATE_LIMITS__EC2_MUTATE_BURST", "6"),
            ("CONVERGED__AWS__RATE_LIMITS__EC2_MUTATE_PER_SECOND", "1.5"),
            ("CONVERGED__AWS__RATE_LIMITS__EC2_RUN_INSTANCES_BURST", "2"),
            (
                "CONVERGED__AWS__RATE_LIMITS__EC2_RUN_INSTANCES_PER_SECOND",
                "0.25",
            ),
            ("CONVERGED__AWS__RATE_LIMITS__ROUTE53_BURST", "4"),
            ("CONVERGED__AWS__RATE_LIMITS__ROUTE53_PER_SECOND", "0.5"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let config = DaemonConfig::load_with_env(None, Some(env)).unwrap();
        let limits = aws_settings(&config).unwrap().limits;
        assert_eq!(limits.ec2_describe, BucketShape::new(7.0, 3.0));
        assert_eq!(limits.ec2_mutate, BucketShape::new(6.0, 1.5));
        assert_eq!(limits.ec2_run_instances, BucketShape::new(2.0, 0.25));
        assert_eq!(limits.route53, BucketShape::new(4.0, 0.5));
    }
}
