//! The `dns_record` kind: A records for nodes and services in the Route 53 zone of `[dns]`,
//! each marked as ours by an ownership TXT record beside it. This file holds the kind's
//! vocabulary (pure data); `diff` plans, `api` talks to Route 53, `reconciler` glues and
//! batches.

pub mod api;
pub mod diff;
pub mod reconciler;

pub use reconciler::DnsRecordReconciler;

use std::collections::BTreeMap;

use crate::instance::ObservedInstance;

/// One record set as Route 53 lists it; names are lowercase and fully qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    pub name: String,
    pub record_type: String,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    /// An alias record (no values of its own).
    pub alias: bool,
    /// Set on weighted, latency and other routing-policy records.
    pub set_identifier: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    Upsert,
    Delete,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Upsert => "UPSERT",
            ChangeAction::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    pub action: ChangeAction,
    pub record: RecordSet,
}

/// Where a change sent to Route 53 stands (GetChange).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeStatus {
    /// Accepted, not yet on every Route 53 name server.
    Pending,
    InSync,
}

/// The zone's records, the cluster's instances (for their addresses), and the records whose
/// last change Route 53 still propagates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneObservation {
    pub zone_id: String,
    pub records: Vec<RecordSet>,
    pub instances: Vec<ObservedInstance>,
    /// Record name → the id of its change that GetChange last answered `PENDING`.
    pub propagating: BTreeMap<String, String>,
}

/// `None` when the desired state has no `[dns]` section: Route 53 is not asked anything.
pub type DnsObservation = Option<ZoneObservation>;

/// The changes for one name (its A record and its ownership record), sent in the zone's
/// batch of the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsChange {
    pub zone_id: String,
    pub changes: Vec<RecordChange>,
}
