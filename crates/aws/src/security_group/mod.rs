//! The `security_group` kind: one group per cluster with a least-privilege rule set. This file
//! holds the kind's vocabulary (pure data); `diff` plans, `api` talks to EC2, `reconciler` glues.

pub mod api;
pub mod diff;
pub mod reconciler;

use std::collections::BTreeSet;
use std::fmt;

pub use reconciler::SecurityGroupReconciler;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// Every protocol (`-1`).
    All,
    /// Any other IP protocol number, as AWS reports it.
    Other(String),
}

impl Protocol {
    /// Reads AWS's `IpProtocol`, which may be a name or a number.
    pub fn parse(text: &str) -> Protocol {
        match text {
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            "icmp" | "1" => Protocol::Icmp,
            "-1" | "all" => Protocol::All,
            other => Protocol::Other(other.to_owned()),
        }
    }

    pub fn as_aws(&self) -> &str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::All => "-1",
            Protocol::Other(number) => number,
        }
    }
}

/// Where traffic may come from (ingress) or go to (egress).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Cidr(String),
    Ipv6Cidr(String),
    /// The group the rule belongs to.
    OwnGroup,
    Group(String),
    PrefixList(String),
}

/// One permission: a protocol, a port range (or ICMP type and code) and one peer. AWS's
/// `IpPermission`s are expanded into these so sets can be compared rule by rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub protocol: Protocol,
    /// `(from, to)`; `None` for `All`.
    pub ports: Option<(i32, i32)>,
    pub peer: Peer,
}

impl Rule {
    pub fn tcp(from: i32, to: i32, peer: Peer) -> Rule {
        Rule {
            protocol: Protocol::Tcp,
            ports: Some((from, to)),
            peer,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.protocol, self.ports) {
            (Protocol::All, _) => f.write_str("all traffic")?,
            (Protocol::Icmp, Some((-1, -1))) => f.write_str("icmp")?,
            (protocol, Some((from, to))) if from == to => {
                write!(f, "{} {from}", protocol.as_aws())?
            }
            (protocol, Some((from, to))) => write!(f, "{} {from}-{to}", protocol.as_aws())?,
            (protocol, None) => f.write_str(protocol.as_aws())?,
        }
        match &self.peer {
            Peer::Cidr(cidr) | Peer::Ipv6Cidr(cidr) => write!(f, " with {cidr}"),
            Peer::OwnGroup => f.write_str(" within the group"),
            Peer::Group(id) => write!(f, " with group {id}"),
            Peer::PrefixList(id) => write!(f, " with prefix list {id}"),
        }
    }
}

/// A security group as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    pub ingress: BTreeSet<Rule>,
    pub egress: BTreeSet<Rule>,
}

/// What observation found: the groups tagged with the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupObservation {
    pub groups: Vec<ObservedGroup>,
}

/// A group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub cluster: String,
    pub name: String,
    pub vpc_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAction {
    /// Creates the group (an existing one of ours is reused), then authorizes `ingress`.
    Create {
        spec: GroupSpec,
        ingress: Vec<Rule>,
    },
    Authorize {
        group_id: String,
        direction: Direction,
        rules: Vec<Rule>,
    },
    Revoke {
        group_id: String,
        direction: Direction,
        rules: Vec<Rule>,
    },
    Delete {
        group_id: String,
    },
}
