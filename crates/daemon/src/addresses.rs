//! Where converged reaches each node (does I/O): `ssh.address_overrides` first, else the
//! private or public address of the node's running instance, found with one tagged listing.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use converged_aws::instance::InstanceState;
use converged_aws::instance::api::InstanceApi;
use converged_core::model::Node;
use converged_core::{DesiredState, Kind, ResourceId};
use converged_hosts::{HostsError, NodeAddress, NodeAddresses, OverrideAddresses};

use crate::config::AddressKind;

const SSH_PORT: u16 = 22;

pub struct InstanceAddresses {
    overrides: OverrideAddresses,
    overridden: Vec<String>,
    instances: Arc<dyn InstanceApi>,
    address: AddressKind,
}

impl InstanceAddresses {
    pub fn new(
        overrides: BTreeMap<String, String>,
        instances: Arc<dyn InstanceApi>,
        address: AddressKind,
    ) -> Self {
        Self {
            overridden: overrides.keys().cloned().collect(),
            overrides: OverrideAddresses::new(overrides),
            instances,
            address,
        }
    }
}

#[async_trait]
impl NodeAddresses for InstanceAddresses {
    async fn resolve(
        &self,
        desired: &DesiredState,
        nodes: &[Node],
    ) -> BTreeMap<String, Result<NodeAddress, HostsError>> {
        let (overridden, looked_up): (Vec<Node>, Vec<Node>) = nodes
            .iter()
            .cloned()
            .partition(|node| self.overridden.contains(&node.name));
        let mut resolved = self.overrides.resolve(desired, &overridden).await;
        if looked_up.is_empty() {
            return resolved;
        }
        let listing = match &desired.cluster.region {
            Some(region) => self
                .instances
                .list_instances(region, &desired.cluster.name)
                .await
                .map_err(|err| err.to_string()),
            None => Err("the desired state names no region".into()),
        };
        for node in looked_up {
            let address = match &listing {
                Err(why) => Err(format!("cannot list the instances: {why}")),
                Ok(instances) => instances
                    .iter()
                    .find(|i| {
                        i.node.as_deref() == Some(node.name.as_str())
                            && i.state == InstanceState::Running
                    })
                    .ok_or_else(|| "no running instance yet".to_owned())
                    .and_then(|instance| {
                        let text = match self.address {
                            AddressKind::Private => instance.private_ip.as_deref(),
                            AddressKind::Public => instance.public_ip.as_deref(),
                        };
                        text.and_then(|ip| ip.parse::<IpAddr>().ok())
                            .ok_or_else(|| "the instance has no such address yet".to_owned())
                    }),
            };
            let entry = address
                .map(|ip| NodeAddress {
                    ip,
                    ssh: SocketAddr::new(ip, SSH_PORT),
                    depends_on: Some(ResourceId::new(Kind::Instance, &node.name)),
                })
                .map_err(|reason| HostsError::ResolveAddress {
                    node: node.name.clone(),
                    reason,
                });
            resolved.insert(node.name.clone(), entry);
        }
        resolved
    }
}
