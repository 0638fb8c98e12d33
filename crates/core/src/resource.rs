//! Resource identities and the closed set of kinds, in dependency order (no I/O).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every kind converged manages, declared in dependency order: a kind may depend only on kinds
/// before it, and deletions run in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SecurityGroup,
    Instance,
    DnsRecord,
    HostService,
    ZookeeperEnsemble,
    MesosAgent,
    MarathonApp,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::SecurityGroup,
        Kind::Instance,
        Kind::DnsRecord,
        Kind::HostService,
        Kind::ZookeeperEnsemble,
        Kind::MesosAgent,
        Kind::MarathonApp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SecurityGroup => "security_group",
            Kind::Instance => "instance",
            Kind::DnsRecord => "dns_record",
            Kind::HostService => "host_service",
            Kind::ZookeeperEnsemble => "zookeeper_ensemble",
            Kind::MesosAgent => "mesos_agent",
            Kind::MarathonApp => "marathon_app",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `kind/name`, e.g. `instance/staging` or `marathon_app//click-count/production`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceId {
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_are_ordered() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        let mut sorted = Kind::ALL;
        sorted.sort();
        assert_eq!(sorted, Kind::ALL, "declaration order is dependency order");
        assert_eq!(Kind::parse("nope"), None);
    }

    #[test]
    fn ids_print_as_kind_slash_name() {
        let id = ResourceId::new(Kind::MarathonApp, "/click-count/production");
        assert_eq!(id.to_string(), "marathon_app//click-count/production");
    }
}
