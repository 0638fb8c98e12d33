//! The `instance` kind: one EC2 instance per desired node, found by its tags. This file holds
//! the kind's vocabulary (pure data); `diff` plans, `api` talks to EC2, `reconciler` glues.

pub mod api;
pub mod diff;
pub mod reconciler;

pub use reconciler::InstanceReconciler;

use std::collections::BTreeMap;

use crate::intent::IntentView;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    pub fn parse(text: &str) -> InstanceState {
        match text {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            _ => InstanceState::Terminated,
        }
    }

    /// Neither terminated nor on its way there.
    pub fn is_live(&self) -> bool {
        !matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }
}

/// An instance carrying the cluster tag, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInstance {
    pub id: String,
    /// The `converged:node` tag.
    pub node: Option<String>,
    /// The `converged:generation` tag (0 when absent).
    pub generation: u32,
    pub state: InstanceState,
    pub instance_type: String,
    pub ami: String,
    pub subnet_id: Option<String>,
    pub key_pair: Option<String>,
    pub security_groups: Vec<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    /// The EBS volume mapped at the instance's root device.
    pub root_volume_id: Option<String>,
}

/// Everything the plan needs: the tagged instances, the sizes of their root volumes and the
/// intent records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceObservation {
    pub instances: Vec<ObservedInstance>,
    pub intents: Vec<IntentView>,
    /// Volume id → size in GiB, for the volumes carrying the cluster tag.
    pub root_volume_sizes: BTreeMap<String, u32>,
}

/// How to launch one node's instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub cluster: String,
    pub node: String,
    pub generation: u32,
    pub client_token: String,
    pub instance_type: String,
    pub ami: String,
    pub subnet_id: String,
    pub vpc_id: String,
    /// Resolved to its id by name and cluster tag at launch.
    pub security_group: String,
    pub key_pair: Option<String>,
    pub volume_size_gb: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceAction {
    /// Writes the intent record, then RunInstances with the spec's client token.
    Launch(LaunchSpec),
    Stop {
        instance_id: String,
    },
    /// Changes the type of a stopped instance.
    Resize {
        instance_id: String,
        instance_type: String,
    },
    Start {
        instance_id: String,
    },
    Terminate {
        instance_ids: Vec<String>,
    },
}
