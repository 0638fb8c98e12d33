//! Shared harness for the tests against moto: a moto per test, the network and zone a cluster
//! needs, the real engine driving the AWS kinds, and request counts from the daemon's metrics.
//! Everything talks to 127.0.0.1 only, with static credentials.

pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::Credentials;
use converged::engine::{CycleReport, CycleRequest, Engine, EngineSettings, Trigger};
use converged::metrics::Metrics;
use converged::planner::{DaemonView, Planner};
use converged::status::Shared;
use converged_aws::operation::Operation;
use converged_aws::{AwsSettings, StaticCredentials};
use converged_core::condition::{Condition, ResourceStatus};
use converged_core::reconciler::Registry;
use converged_core::secret::Secret;
use tokio_util::sync::CancellationToken;

pub use converged_testkit::moto::Moto;

pub const REGION: &str = "eu-west-1";
pub const ZONE: &str = "clickcount.example.org.";
pub const KEY_PAIR: &str = "clickcount-admin";

pub async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

/// What a test cluster lives in: a VPC, a subnet, a key pair and a hosted zone in moto.
pub struct World {
    pub moto: Moto,
    pub ec2: aws_sdk_ec2::Client,
    pub route53: aws_sdk_route53::Client,
    pub vpc_id: String,
    pub subnet_id: String,
    pub zone_id: String,
}

impl World {
    pub async fn new() -> World {
        let moto = Moto::start();
        let config = sdk_config(&moto.url).await;
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let route53 = aws_sdk_route53::Client::new(&config);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block("10.0.1.0/24")
            .send()
            .await
            .unwrap();
        let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_owned();
        ec2.create_key_pair()
            .key_name(KEY_PAIR)
            .send()
            .await
            .unwrap();
        let zone = route53
            .create_hosted_zone()
            .name(ZONE)
            .caller_reference("converged-test")
            .send()
            .await
            .unwrap();
        let zone_id = zone
            .hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_owned();
        World {
            moto,
            ec2,
            route53,
            vpc_id,
            subnet_id,
            zone_id,
        }
    }

    /// The example cluster (`desired-state/cluster.toml`) placed in this world's network.
    pub fn example_cluster(&self) -> String {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state/cluster.toml");
        std::fs::read_to_string(example)
            .unwrap()
            .replace("vpc-0a1b2c3d4e5f60718", &self.vpc_id)
            .replace("subnet-0a1b2c3d4e5f60718", &self.subnet_id)
    }

    /// Live (not terminated) instances per node tag.
    pub async fn live_instances(&self) -> Vec<aws_sdk_ec2::types::Instance> {
        let out = self
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:converged:cluster")
                    .values("clickcount")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                !matches!(
                    i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                    Some("terminated" | "shutting-down")
                )
            })
            .cloned()
            .collect()
    }

    /// The size in GiB of the volume at the instance's first block device (its root).
    pub async fn root_volume_size(&self, instance: &aws_sdk_ec2::types::Instance) -> Option<i32> {
        let volume_id = instance.block_device_mappings()[0].ebs()?.volume_id()?;
        let volumes = self
            .ec2
            .describe_volumes()
            .volume_ids(volume_id)
            .send()
            .await
            .unwrap();
        volumes.volumes()[0].size()
    }

    pub async fn records(&self) -> Vec<aws_sdk_route53::types::ResourceRecordSet> {
        self.route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .send()
            .await
            .unwrap()
            .resource_record_sets()
            .to_vec()
    }

    pub async fn record_value(&self, name: &str, record_type: &str) -> Option<Vec<String>> {
        self.records()
            .await
            .iter()
            .find(|r| r.name() == name && r.r#type().as_str() == record_type)
            .map(|r| {
                r.resource_records()
                    .iter()
                    .map(|v| v.value().to_owned())
                    .collect()
            })
    }
}

pub fn tag<'a>(instance: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    instance
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The real engine over the three AWS kinds, with its own desired-state folder and state dir.
pub struct Harness {
    pub root: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub shared: Arc<Shared>,
    pub engine: Engine,
}

impl Harness {
    pub fn new(endpoint: &str, cluster_toml: &str) -> Harness {
        let temp = tempfile::tempdir().unwrap();
        let mut harness = Self::at(temp.path(), endpoint, cluster_toml);
        harness._temp = Some(temp);
        harness
    }

    /// A harness over an existing directory: a restart keeps the state dir.
    pub fn at(root: &Path, endpoint: &str, cluster_toml: &str) -> Harness {
        std::fs::create_dir_all(root.join("desired")).unwrap();
        std::fs::write(root.join("desired/cluster.toml"), cluster_toml).unwrap();
        let metrics = Metrics::new().unwrap();
        let registry = registry(endpoint, &root.join("state"), metrics.clone());
        let shared = Arc::new(Shared::new(metrics));
        let mut settings = EngineSettings::new(root.join("desired"), Duration::from_secs(30));
        settings.action_deadline = Duration::from_secs(60);
        let engine = Engine::new(
            settings,
            registry,
            Arc::clone(&shared),
            None,
            CancellationToken::new(),
        )
        .with_jitter(|| 0.0);
        Harness {
            root: root.to_owned(),
            _temp: None,
            shared,
            engine,
        }
    }

    pub fn desired_dir(&self) -> PathBuf {
        self.root.join("desired")
    }

    /// The plan `GET /v1/plan` of a daemon running this engine would answer: the engine's
    /// memory and pause, kinds observed through a registry of their own.
    pub fn daemon_planner(&self, endpoint: &str) -> Planner {
        let registry = registry(endpoint, &self.root.join("state"), Metrics::new().unwrap());
        Planner::new(registry, self.desired_dir()).of_daemon(DaemonView {
            shared: Arc::clone(&self.shared),
            memory: self.engine.live_memory(),
        })
    }

    pub fn write_cluster(&self, cluster_toml: &str) {
        std::fs::write(self.desired_dir().join("cluster.toml"), cluster_toml).unwrap();
    }

    pub async fn cycle(&mut self) -> CycleReport {
        self.engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
            .await
    }

    pub async fn operator_cycle(&mut self) -> CycleReport {
        self.engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Operator {
                allow_mass_deletion: false,
            }))
            .await
    }

    pub fn resources(&self) -> Vec<ResourceStatus> {
        self.shared.snapshot().resources
    }

    pub fn resource(&self, kind: &str, name: &str) -> ResourceStatus {
        self.resources()
            .into_iter()
            .find(|r| r.kind == kind && r.name == name)
            .unwrap_or_else(|| panic!("no {kind}/{name} in {:#?}", self.resources()))
    }

    /// Runs cycles until every resource is in sync (at most `max`); panics with the status
    /// otherwise. Returns the number of cycles run.
    pub async fn converge(&mut self, max: usize) -> usize {
        for cycle in 1..=max {
            self.cycle().await;
            let resources = self.resources();
            if !resources.is_empty() && resources.iter().all(|r| r.condition == Condition::InSync) {
                return cycle;
            }
        }
        panic!("not converged after {max} cycles: {:#?}", self.resources());
    }

    /// Requests counted in `converged_api_requests_total` for one operation and outcome.
    pub fn requests(&self, operation: Operation, outcome: &str) -> u64 {
        self.shared
            .metrics
            .api_requests_total
            .with_label_values(&[operation.service(), operation.name(), outcome])
            .get()
    }

    /// Every request of a mutating operation, whatever its outcome.
    pub fn mutating_requests(&self) -> u64 {
        Operation::ALL
            .into_iter()
            .filter(|op| op.is_mutating())
            .map(|op| self.all_requests(op))
            .sum()
    }

    pub fn all_requests(&self, operation: Operation) -> u64 {
        ["success", "error", "throttled", "unreachable"]
            .into_iter()
            .map(|outcome| self.requests(operation, outcome))
            .sum()
    }

    pub fn total_requests(&self) -> u64 {
        Operation::ALL
            .into_iter()
            .map(|op| self.all_requests(op))
            .sum()
    }

    /// Seconds spent waiting for AWS answers, from the request-duration histogram.
    pub fn seconds_in_requests(&self) -> f64 {
        ["ec2", "route53"]
            .into_iter()
            .map(|service| {
                self.shared
                    .metrics
                    .api_request_duration_seconds
                    .with_label_values(&[service])
                    .get_sample_sum()
            })
            .sum()
    }
}

/// The AWS settings of a test: `endpoint`, static test credentials.
pub fn settings(endpoint: &str, state_dir: &Path) -> AwsSettings {
    let mut settings = AwsSettings::new(state_dir);
    settings.endpoint_url = Some(endpoint.to_owned());
    settings.credentials = Some(StaticCredentials {
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
    });
    settings
}

pub fn registry(endpoint: &str, state_dir: &Path, metrics: Metrics) -> Registry {
    let mut registry = Registry::default();
    converged_aws::register(
        &mut registry,
        settings(endpoint, state_dir),
        Arc::new(metrics),
    );
    registry
}
