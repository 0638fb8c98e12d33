//! The registry of kinds the daemon runs, built from the daemon configuration. Every external
//! API request is reported to `recorder` (the daemon's metrics).

use std::sync::Arc;

use converged_core::api::ApiRecorder;
use converged_core::reconciler::Registry;
use converged_core::secret::SecretRef;
use converged_mesos::marathon::api::{HttpMarathon, MarathonEndpoint};
use converged_mesos::marathon::reconciler::MarathonApps;

use crate::config::DaemonConfig;
use crate::error::DaemonError;

pub fn registry(
    config: &DaemonConfig,
    recorder: Arc<dyn ApiRecorder>,
) -> Result<Registry, DaemonError> {
    let mut registry = Registry::default();

    // security_group, instance, dns_record: they ask AWS nothing unless the desired state has
    // nodes or a [dns] section.
    let mut aws = converged_aws::AwsSettings::new(&config.state_dir);
    aws.endpoint_url = Some(config.aws.endpoint_url.clone()).filter(|url| !url.is_empty());
    converged_aws::register(&mut registry, aws, Arc::clone(&recorder));

    let urls = config.marathon.urls();
    if !urls.is_empty() {
        let endpoint = MarathonEndpoint {
            urls,
            credentials: config
                .marathon
                .credentials_file
                .as_ref()
                .map(|path| SecretRef::File(path.display().to_string())),
            allowed_networks: config.ssh.allowed_networks.clone(),
        };
        let client = HttpMarathon::new(endpoint, recorder).map_err(|err| DaemonError::Kind {
            kind: "marathon_app",
            message: err.to_string(),
        })?;
        registry.register(MarathonApps::new(
            Arc::new(client),
            config.marathon.deployment_deadline,
        ));
    }
    Ok(registry)
}
