//! Where each node is reached (the `NodeAddresses` trait and its implementation from
//! `ssh.address_overrides`) and the `allowed_networks` rule every dial goes through. Pure
//! except for what an implementation of `NodeAddresses` chooses to read.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use converged_core::model::Node;
use converged_core::{DesiredState, ResourceId};
use ipnet::IpNet;

use crate::error::HostsError;

/// How converged reaches one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// The node's address: SSH goes to `ssh`, and services on the node are reached at this IP.
    pub ip: IpAddr,
    pub ssh: SocketAddr,
    /// The resource that must be ready before the node's services are acted on (its
    /// instance), when there is one.
    pub depends_on: Option<ResourceId>,
}

/// Resolves node names to addresses. The daemon combines the overrides from its config with
/// the addresses of the nodes' instances.
#[async_trait]
pub trait NodeAddresses: Send + Sync {
    /// One entry per node asked for; an error says why the node cannot be reached yet.
    async fn resolve(
        &self,
        desired: &DesiredState,
        nodes: &[Node],
    ) -> BTreeMap<String, Result<NodeAddress, HostsError>>;
}

/// Addresses from `ssh.address_overrides` (node name → `host:port`, or an IP alone for port
/// 22). Nodes without an override have no address.
#[derive(Debug, Clone, Default)]
pub struct OverrideAddresses {
    overrides: BTreeMap<String, String>,
}

impl OverrideAddresses {
    pub fn new(overrides: BTreeMap<String, String>) -> Self {
        Self { overrides }
    }

    fn lookup(&self, node: &str) -> Result<NodeAddress, HostsError> {
        let text = self
            .overrides
            .get(node)
            .ok_or_else(|| HostsError::ResolveAddress {
                node: node.to_owned(),
                reason: "no entry in ssh.address_overrides".into(),
            })?;
        let ssh = parse_endpoint(text).ok_or_else(|| HostsError::ResolveAddress {
            node: node.to_owned(),
            reason: format!(
                "ssh.address_overrides has {text:?}: write an IP address with an optional :port"
            ),
        })?;
        Ok(NodeAddress {
            ip: ssh.ip(),
            ssh,
            depends_on: None,
        })
    }
}

fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 22))
    })
}

#[async_trait]
impl NodeAddresses for OverrideAddresses {
    async fn resolve(
        &self,
        _desired: &DesiredState,
        nodes: &[Node],
    ) -> BTreeMap<String, Result<NodeAddress, HostsError>> {
        nodes
            .iter()
            .map(|node| (node.name.clone(), self.lookup(&node.name)))
            .collect()
    }
}

/// `ssh.allowed_networks`: when not empty, no connection is made to an address outside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Checked before every dial; the error names the node and the rule.
    pub fn check(&self, node: &str, address: SocketAddr) -> Result<(), HostsError> {
        if self.0.is_empty() || self.0.iter().any(|net| net.contains(&address.ip())) {
            return Ok(());
        }
        let networks = self
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(HostsError::AddressNotAllowed {
            node: node.to_owned(),
            address: address.to_string(),
            reason: format!("outside ssh.allowed_networks ({networks})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_with_and_without_port() {
        let addresses = OverrideAddresses::new(BTreeMap::from([
            ("a".to_owned(), "127.0.0.21:2222".to_owned()),
            ("b".to_owned(), "127.0.0.22".to_owned()),
            ("c".to_owned(), "node-c.example".to_owned()),
        ]));
        assert_eq!(
            addresses.lookup("a").unwrap().ssh,
            "127.0.0.21:2222".parse().unwrap()
        );
        assert_eq!(
            addresses.lookup("b").unwrap().ssh,
            "127.0.0.22:22".parse().unwrap()
        );
        assert!(matches!(
            addresses.lookup("c"),
            Err(HostsError::ResolveAddress { .. })
        ));
        assert!(matches!(
            addresses.lookup("d"),
            Err(HostsError::ResolveAddress { .. })
        ));
    }

    #[test]
    fn allowed_networks_refuse_outside_addresses() {
        let allowed = AllowedNetworks::new(vec!["127.0.21.0/24".parse().unwrap()]);
        let cases = [
            ("127.0.21.5:22", true),
            ("127.0.22.5:22", false),
            ("10.0.0.1:22", false),
            ("[::1]:22", false),
        ];
        for (address, ok) in cases {
            let result = allowed.check("n", address.parse().unwrap());
            assert_eq!(result.is_ok(), ok, "{address}");
            if let Err(err) = result {
                assert_eq!(
                    converged_core::Classified::class(&err),
                    converged_core::ErrorClass::Unsafe
                );
            }
        }
        assert!(
            AllowedNetworks::default()
                .check("n", "10.0.0.1:22".parse().unwrap())
                .is_ok()
        );
    }
}
