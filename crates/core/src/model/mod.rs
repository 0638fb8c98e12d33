//! The desired-state model: what `cluster.toml` and `apps/*.json` say, as typed values (no I/O).
//! Every struct rejects unknown fields so a typo is an error, not a silently ignored setting.

pub mod app;
pub mod schema;

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::resource::Kind;

/// The file of a desired-state folder that describes the cluster.
pub const CLUSTER_FILE: &str = "cluster.toml";
/// The folder of a desired-state folder that holds one Marathon app per file.
pub const APPS_DIR: &str = "apps";
use crate::secret::MaybeSecret;

pub use app::MarathonApp;

/// The whole desired state, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredState {
    /// Content hash of every file that was loaded; changes whenever any of them changes.
    pub revision: String,
    pub cluster: ClusterSpec,
    pub network: Option<Network>,
    pub nodes: Vec<Node>,
    pub dns: Option<Dns>,
    pub services: Services,
    pub kinds: BTreeMap<Kind, KindPolicy>,
    pub apps: Vec<AppFile>,
}

impl DesiredState {
    /// The effective mode of a kind: its own setting, else the cluster-wide one.
    pub fn mode(&self, kind: Kind) -> Mode {
        self.kinds
            .get(&kind)
            .and_then(|policy| policy.mode)
            .unwrap_or(self.cluster.mode)
    }

    pub fn kind_policy(&self, kind: Kind) -> KindPolicy {
        self.kinds.get(&kind).cloned().unwrap_or_default()
    }

    pub fn nodes_with_role(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(move |node| node.roles.contains(&role))
    }
}

/// `cluster.toml` as written. Converted into `DesiredState` after validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub cluster: ClusterSpec,
    pub network: Option<Network>,
    #[serde(default)]
    pub nodes: Vec<Node>,
    pub dns: Option<Dns>,
    #[serde(default)]
    pub services: Services,
    /// By kind name as written, so a misspelt kind is reported with its line and a
    /// suggestion (validation checks each is a [`Kind`]).
    #[serde(default)]
    pub kinds: BTreeMap<String, KindPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Lowercase letters, digits and `-`; used in tags, labels and the ownership records.
    pub name: String,
    /// AWS region; required once there are nodes or DNS records.
    pub region: Option<String>,
    /// The mode of every kind that does not set its own.
    #[serde(default)]
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Observe, plan and act.
    #[default]
    Enforce,
    /// Observe and plan; report drift, never act.
    Observe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindPolicy {
    pub mode: Option<Mode>,
    /// Delete what converged owns but the desired state no longer lists.
    #[serde(default)]
    pub prune: bool,
    /// The largest share of a kind's owned resources one cycle may delete.
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: f64,
}

impl Default for KindPolicy {
    fn default() -> Self {
        Self {
            mode: None,
            prune: false,
            max_delete_fraction: default_max_delete_fraction(),
        }
    }
}

fn default_max_delete_fraction() -> f64 {
    0.5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub vpc_id: String,
    pub subnet_id: String,
    /// Sources allowed to reach SSH and the Mesos and Marathon UIs.
    #[serde(default)]
    pub admin_cidrs: Vec<IpNetText>,
}

/// A CIDR kept as written (so errors can quote it) and checked during validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IpNetText(pub String);

impl IpNetText {
    pub fn parse(&self) -> Option<IpNet> {
        self.0.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub instance_type: String,
    pub ami: String,
    #[serde(default = "default_volume_size_gb")]
    pub volume_size_gb: u32,
    pub key_pair: Option<String>,
    pub roles: Vec<Role>,
    /// Mesos agent attributes, e.g. `{ env = "staging" }`; app constraints refer to them.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub policy: NodePolicy,
}

fn default_volume_size_gb() -> u32 {
    20
}

/// What converged may do to a node's instance when the desired state changes under it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePolicy {
    /// Stop, modify and start the instance for an instance type change.
    #[serde(default)]
    pub allow_resize: bool,
    /// Replace the instance for an AMI or subnet change (one node at a time).
    #[serde(default)]
    pub allow_replace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Zookeeper,
    MesosMaster,
    MesosAgent,
    Marathon,
    /// Runs the public edge (Traefik): opens 80/443 to the world on this node.
    Edge,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Zookeeper => "zookeeper",
            Role::MesosMaster => "mesos-master",
            Role::MesosAgent => "mesos-agent",
            Role::Marathon => "marathon",
            Role::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// The Route 53 hosted zone, fully qualified with the trailing dot.
    pub zone: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// An A record `<node>.<zone>` for every node.
    #[serde(default = "default_true")]
    pub node_records: bool,
    #[serde(default)]
    pub records: Vec<DnsRecordSpec>,
}

fn default_ttl() -> u32 {
    300
}

fn default_true() -> bool {
    true
}

/// A service name pointing at the node that runs the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecordSpec {
    pub name: String,
    pub node: String,
    pub ttl: Option<u32>,
}

/// How to run each cluster service on a node, per runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub zookeeper: Option<ServiceSpec>,
    #[serde(rename = "mesos-master")]
    pub mesos_master: Option<ServiceSpec>,
    #[serde(rename = "mesos-agent")]
    pub mesos_agent: Option<ServiceSpec>,
    pub marathon: Option<ServiceSpec>,
}

impl Services {
    pub fn for_role(&self, role: Role) -> Option<&ServiceSpec> {
        match role {
            Role::Zookeeper => self.zookeeper.as_ref(),
            Role::MesosMaster => self.mesos_master.as_ref(),
            Role::MesosAgent => self.mesos_agent.as_ref(),
            Role::Marathon => self.marathon.as_ref(),
            Role::Edge => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Container image for the `docker` runtime.
    pub image: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, MaybeSecret>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub ports: Vec<u16>,
    /// `host:container[:ro]` bind mounts for the `docker` runtime.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The command line for the `exec` runtime.
    pub exec: Option<ExecSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    pub command: Vec<String>,
}

/// One app file: where it came from and what it says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppFile {
    /// Relative to the desired-state folder, e.g. `apps/gitlab.json`.
    pub path: String,
    pub app: MarathonApp,
}
