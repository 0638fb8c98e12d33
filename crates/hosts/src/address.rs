//! Where each node is reached (the `NodeAddresses` trait and its implementation from
//! `ssh.address_overrides`) and the `allowed_networks` rule every dial goes through. Pure
//! except for what an implementation of `NodeAddresses` chooses to read and the DNS lookup in
//! `AllowedNetworks::resolve`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

/// How long a hostname may take to resolve before the dial is given up (and retried later):
/// the lookup runs on tokio's blocking pool, so a slow resolver delays only this dial.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// `ssh.allowed_networks`: when not empty, no connection is made to an address outside, and a
/// hostname is dialled only when every address it resolves to is inside. Empty allows every
/// address. SSH, the ZooKeeper probes and the Marathon and Mesos clients all check here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

/// An address the policy refuses. Each client wraps it in its own error, always of class
/// `unsafe`: something (the config, an instance, DNS) points outside the cluster's networks,
/// which an operator should look at before anything is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address}{} is outside ssh.allowed_networks ({networks})", resolved_from(.host))]
pub struct Outside {
    /// The hostname `address` was resolved from; `None` when the address was given as such.
    pub host: Option<String>,
    pub address: IpAddr,
    /// The allowed networks, comma-separated.
    pub networks: String,
}

fn resolved_from(host: &Option<String>) -> String {
    host.as_ref()
        .map(|host| format!(" (an address of {host})"))
        .unwrap_or_default()
}

/// Why a host has no address that may be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error(transparent)]
    Outside(#[from] Outside),
    /// DNS gave no answer (in time): transient, the next attempt asks again.
    #[error("cannot resolve {host}: {message}")]
    Unresolved { host: String, message: String },
}

impl AllowedNetworks {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// The rule itself (pure): every one of `addresses` must be inside a network. `host` is
    /// the name they were resolved from, for the message.
    pub fn check_addresses(&self, host: Option<&str>, addresses: &[IpAddr]) -> Result<(), Outside> {
        if self.0.is_empty() {
            return Ok(());
        }
        match addresses
            .iter()
            .find(|address| !self.0.iter().any(|net| net.contains(*address)))
        {
            None => Ok(()),
            Some(address) => Err(Outside {
                host: host.map(str::to_owned),
                address: *address,
                networks: self
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Checked before every SSH dial; the error names the node, the address and the networks.
    pub fn check(&self, node: &str, address: SocketAddr) -> Result<(), HostsError> {
        self.check_addresses(None, &[address.ip()])
            .map_err(|outside| HostsError::AddressNotAllowed {
                node: node.to_owned(),
                address: address.to_string(),
                outside,
            })
    }

    /// Checks `host` (an IP address, bracketed or not, or a hostname to resolve) before a
    /// dial to it. With no networks set nothing is looked up.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), DialError> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.resolve(host, port).await.map(drop)
    }

    /// The addresses of `host` that may be dialled: all of them, or an error when any is
    /// outside. An IP address is not looked up; a hostname is, within `RESOLVE_TIMEOUT`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DialError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.check_addresses(None, &[ip])?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let unresolved = |message: String| DialError::Unresolved {
            host: host.to_owned(),
            message,
        };
        let addresses: Vec<SocketAddr> =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| {
                    unresolved(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()))
                })?
                .map_err(|err| unresolved(err.to_string()))?
                .collect();
        if addresses.is_empty() {
            return Err(unresolved("no address".into()));
        }
        let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
        self.check_addresses(Some(host), &ips)?;
        Ok(addresses)
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
    fn allowed_networks_hold_every_address_inside() {
        let allowed = AllowedNetworks::new(vec![
            "127.0.21.0/24".parse().unwrap(),
            "fd00:21::/64".parse().unwrap(),
        ]);
        // (hostname resolved from, addresses, the address refused)
        let cases: [(Option<&str>, &[&str], Option<&str>); 11] = [
            (None, &["127.0.21.5"], None),
            (None, &["127.0.22.5"], Some("127.0.22.5")),
            (None, &["10.0.0.1"], Some("10.0.0.1")),
            (None, &["fd00:21::5"], None),
            (None, &["::1"], Some("::1")),
            (None, &["fd00:22::5"], Some("fd00:22::5")),
            // An IPv4-mapped address is not taken for its IPv4 network: refused, never guessed.
            (None, &["::ffff:127.0.21.5"], Some("::ffff:127.0.21.5")),
            (Some("zk.example"), &["127.0.21.1", "fd00:21::1"], None),
            (
                Some("zk.example"),
                &["127.0.21.1", "10.0.0.1"],
                Some("10.0.0.1"),
            ),
            (Some("zk.example"), &["fd00:21::1", "::1"], Some("::1")),
            (Some("zk.example"), &["10.0.0.1"], Some("10.0.0.1")),
        ];
        for (host, addresses, refused) in cases {
            let addresses: Vec<IpAddr> = addresses.iter().map(|a| a.parse().unwrap()).collect();
            let result = allowed.check_addresses(host, &addresses);
            let refused: Option<IpAddr> = refused.map(|a| a.parse().unwrap());
            assert_eq!(
                result.as_ref().err().map(|outside| outside.address),
                refused,
                "{host:?} {addresses:?}"
            );
            if let Err(outside) = result {
                assert_eq!(outside.host.as_deref(), host);
                let message = outside.to_string();
                assert!(
                    message.contains("outside ssh.allowed_networks (127.0.21.0/24, fd00:21::/64)"),
                    "{message}"
                );
                if let Some(host) = host {
                    assert!(
                        message.contains(&format!("(an address of {host})")),
                        "{message}"
                    );
                }
            }
            // No networks set: nothing is refused, as before the networks existed.
            assert!(
                AllowedNetworks::default()
                    .check_addresses(host, &addresses)
                    .is_ok()
            );
        }
    }

    #[test]
    fn a_refused_ssh_dial_names_node_address_and_networks_and_is_unsafe() {
        let allowed = AllowedNetworks::new(vec!["127.0.21.0/24".parse().unwrap()]);
        assert!(allowed.check("n", "127.0.21.5:22".parse().unwrap()).is_ok());
        let err = allowed
            .check("n", "127.0.22.5:2222".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused to contact node n at 127.0.22.5:2222: 127.0.22.5 is outside ssh.allowed_networks (127.0.21.0/24)"
        );
        assert_eq!(
            converged_core::Classified::class(&err),
            converged_core::ErrorClass::Unsafe
        );
    }

    #[tokio::test]
    async fn hostnames_are_resolved_and_every_address_checked() {
        let loopback = AllowedNetworks::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        let elsewhere = AllowedNetworks::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let resolved = loopback.resolve("localhost", 8080).await.unwrap();
        assert!(!resolved.is_empty());
        assert!(
            resolved
                .iter()
                .all(|address| address.ip().is_loopback() && address.port() == 8080),
            "{resolved:?}"
        );
        assert!(loopback.check_host("localhost", 8080).await.is_ok());
        match elsewhere.check_host("localhost", 8080).await {
            Err(DialError::Outside(outside)) => {
                assert_eq!(outside.host.as_deref(), Some("localhost"));
                assert!(outside.address.is_loopback());
            }
            other => panic!("{other:?}"),
        }
        // Addresses are not looked up, bracketed (as in a URL) or not.
        assert_eq!(
            loopback.resolve("[::1]", 5050).await.unwrap(),
            ["[::1]:5050".parse().unwrap()]
        );
        assert!(matches!(
            elsewhere.resolve("127.0.0.5", 5050).await,
            Err(DialError::Outside(Outside { host: None, .. }))
        ));
        // `.invalid` never resolves (RFC 6761); without networks nothing is looked up at all.
        assert!(matches!(
            loopback.check_host("node.invalid", 80).await,
            Err(DialError::Unresolved { .. })
        ));
        assert!(
            AllowedNetworks::default()
                .check_host("node.invalid", 80)
                .await
                .is_ok()
        );
    }
}
