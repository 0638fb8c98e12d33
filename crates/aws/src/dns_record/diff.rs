//! Plans the A records of `[dns]` (pure: no client, no clock, no randomness).
//!
//! Ownership: a record `name` is ours when the TXT record `_converged.name` holds
//! `"converged:cluster=<cluster>"`. Ours is created and kept together with it; a record at a
//! wanted name that is not ours (or a CNAME there) is a conflict, reported and never touched;
//! a record of ours no longer wanted is proposed for deletion with its marker. Records follow
//! the public address of their node's live instance; until it has one, the record is blocked
//! on that instance. A record whose last change Route 53 still propagates is converging.

use std::collections::{BTreeMap, BTreeSet};

use converged_core::plan::{FieldChange, KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::{DesiredState, Kind, ResourceId};

use super::{ChangeAction, DnsChange, DnsObservation, RecordChange, RecordSet, ZoneObservation};
use crate::instance::diff as instance;
use crate::instance::{InstanceState, ObservedInstance};

/// Route 53's limits for one ChangeResourceRecordSets request (an UPSERT counts twice).
pub const MAX_BATCH_RECORDS: usize = 1000;
pub const MAX_BATCH_VALUE_CHARS: usize = 32_000;

const OWNER_PREFIX: &str = "_converged.";
const OWNER_KEY: &str = "converged:cluster=";

/// The name of the ownership record of `name`.
pub fn owner_name(name: &str) -> String {
    format!("{OWNER_PREFIX}{name}")
}

/// The ownership value (a quoted TXT string).
pub fn owner_value(cluster: &str) -> String {
    format!("\"{OWNER_KEY}{cluster}\"")
}

fn owner_of(value: &str) -> Option<&str> {
    value.trim_matches('"').strip_prefix(OWNER_KEY)
}

/// One record the desired state asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedRecord {
    pub name: String,
    pub node: String,
    pub ttl: u32,
}

pub fn wanted_records(desired: &DesiredState) -> Vec<WantedRecord> {
    let Some(dns) = &desired.dns else {
        return Vec::new();
    };
    let zone = dns.zone.to_lowercase();
    let mut wanted = Vec::new();
    if dns.node_records {
        wanted.extend(desired.nodes.iter().map(|node| WantedRecord {
            name: format!("{}.{zone}", node.name),
            node: node.name.clone(),
            ttl: dns.ttl,
        }));
    }
    wanted.extend(dns.records.iter().map(|record| WantedRecord {
        name: record.name.to_lowercase(),
        node: record.node.clone(),
        ttl: record.ttl.unwrap_or(dns.ttl),
    }));
    wanted
}

/// Where a node's records should point, or why that is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAddress {
    Public(String),
    /// Expected to resolve by itself (the instance is being created or is booting).
    Waiting(String),
    /// Needs someone to act (no public address, duplicate instances).
    Unavailable(String),
}

pub fn node_address(instances: &[ObservedInstance], node: &str) -> NodeAddress {
    let live: Vec<&ObservedInstance> = instances
        .iter()
        .filter(|i| i.node.as_deref() == Some(node) && i.state.is_live())
        .collect();
    let resource = instance::resource_id(node);
    match live.as_slice() {
        [] => NodeAddress::Waiting(format!(
            "waiting for {resource}, which has no live instance"
        )),
        [one] => match (&one.public_ip, &one.state) {
            (Some(ip), InstanceState::Pending | InstanceState::Running) => {
                NodeAddress::Public(ip.clone())
            }
            (None, InstanceState::Running) => {
                NodeAddress::Unavailable(format!("{resource} ({}) has no public address", one.id))
            }
            (_, state) => NodeAddress::Waiting(format!(
                "waiting for {resource} ({} is {})",
                one.id,
                state.as_str()
            )),
        },
        _ => NodeAddress::Unavailable(format!(
            "{resource} has several live instances; the record would be ambiguous"
        )),
    }
}

fn describe(record: &RecordSet) -> String {
    if record.alias {
        format!("{} alias", record.record_type)
    } else {
        format!("{} {}", record.record_type, record.values.join(" "))
    }
}

pub fn plan(desired: &DesiredState, observed: &DnsObservation) -> KindPlan<DnsChange> {
    let Some(zone) = observed else {
        return KindPlan::default();
    };
    let cluster = &desired.cluster.name;
    let mut at_name: BTreeMap<&str, Vec<&RecordSet>> = BTreeMap::new();
    for record in &zone.records {
        at_name
            .entry(record.name.as_str())
            .or_default()
            .push(record);
    }
    let owner_at = |name: &str| -> Option<(&RecordSet, Option<&str>)> {
        at_name
            .get(owner_name(name).as_str())?
            .iter()
            .find(|r| r.record_type == "TXT")
            .map(|record| (*record, record.values.iter().find_map(|v| owner_of(v))))
    };
    let wanted = wanted_records(desired);
    let mut resources = Vec::new();
    for record in &wanted {
        let id = ResourceId::new(Kind::DnsRecord, &record.name);
        let depends = [instance::resource_id(&record.node)];
        let here: Vec<&RecordSet> = at_name
            .get(record.name.as_str())
            .cloned()
            .unwrap_or_default();
        let owner = owner_at(&record.name);
        let ours = owner.is_some_and(|(_, owner)| owner == Some(cluster.as_str()));
        let foreign = here.iter().find(|r| match r.record_type.as_str() {
            "CNAME" => true,
            "A" => !ours || r.alias || r.set_identifier.is_some(),
            _ => false,
        });
        let plan = match (owner, foreign) {
            (Some((marker, owner)), _) if !ours => conflict(
                id,
                match owner {
                    Some(other) => format!("{} is owned by converged cluster {other}", record.name),
                    None => format!(
                        "{} holds {} that is not converged's",
                        marker.name,
                        describe(marker)
                    ),
                },
            ),
            (_, Some(foreign)) => conflict(
                id,
                format!(
                    "{} holds {} that is not converged's",
                    record.name,
                    describe(foreign)
                ),
            ),
            _ => {
                let current = here.iter().find(|r| r.record_type == "A").copied();
                plan_owned(record, id, current, ours, cluster, zone)
            }
        };
        resources.push(plan.depends_on(depends));
    }
    let wanted_names: BTreeSet<&str> = wanted.iter().map(|r| r.name.as_str()).collect();
    for marker in zone.records.iter().filter(|r| r.record_type == "TXT") {
        let Some(name) = marker.name.strip_prefix(OWNER_PREFIX) else {
            continue;
        };
        let ours = marker
            .values
            .iter()
            .any(|v| owner_of(v) == Some(cluster.as_str()));
        if !ours || wanted_names.contains(name) {
            continue;
        }
        let mut changes: Vec<RecordChange> = at_name
            .get(name)
            .into_iter()
            .flatten()
            .filter(|r| r.record_type == "A" && r.set_identifier.is_none())
            .map(|r| RecordChange {
                action: ChangeAction::Delete,
                record: (*r).clone(),
            })
            .collect();
        changes.push(RecordChange {
            action: ChangeAction::Delete,
            record: marker.clone(),
        });
        resources.push(ResourcePlan::act(
            ResourceId::new(Kind::DnsRecord, name),
            vec![
                PlannedAction::new(
                    DnsChange {
                        zone_id: zone.zone_id.clone(),
                        changes,
                    },
                    "delete",
                    "owned by this cluster but no longer in the desired state",
                )
                .deleting(),
            ],
        ));
    }
    KindPlan::new(resources)
}

fn conflict(id: ResourceId, what: String) -> ResourcePlan<DnsChange> {
    ResourcePlan::new(
        id,
        Verdict::Drifted {
            reason: format!("conflict: {what}; it is left alone"),
            changes: Vec::new(),
        },
    )
}

fn plan_owned(
    wanted: &WantedRecord,
    id: ResourceId,
    current: Option<&RecordSet>,
    ours: bool,
    cluster: &str,
    zone: &ZoneObservation,
) -> ResourcePlan<DnsChange> {
    let exists = current.is_some();
    let ip = match node_address(&zone.instances, &wanted.node) {
        NodeAddress::Public(ip) => ip,
        NodeAddress::Unavailable(reason) => {
            return ResourcePlan::new(
                id,
                Verdict::Drifted {
                    reason,
                    changes: Vec::new(),
                },
            )
            .ready(exists);
        }
        NodeAddress::Waiting(reason) => {
            let on = instance::resource_id(&wanted.node);
            return ResourcePlan::new(id, Verdict::Blocked { on, reason }).ready(exists);
        }
    };
    let ttl = i64::from(wanted.ttl);
    let want = RecordSet {
        name: wanted.name.clone(),
        record_type: "A".into(),
        ttl: Some(ttl),
        values: vec![ip.clone()],
        alias: false,
        set_identifier: None,
    };
    if ours && current == Some(&want) {
        return match zone.propagating.get(&wanted.name) {
            Some(change_id) => ResourcePlan::new(
                id,
                Verdict::Converging {
                    reason: format!(
                        "change {change_id} is PENDING: Route 53 is still propagating it to its name servers"
                    ),
                },
            )
            .ready(true),
            None => ResourcePlan::in_sync(id),
        };
    }
    let mut changes = Vec::new();
    if !ours {
        changes.push(RecordChange {
            action: ChangeAction::Upsert,
            record: RecordSet {
                name: owner_name(&wanted.name),
                record_type: "TXT".into(),
                ttl: Some(ttl),
                values: vec![owner_value(cluster)],
                alias: false,
                set_identifier: None,
            },
        });
    }
    changes.push(RecordChange {
        action: ChangeAction::Upsert,
        record: want,
    });
    let (verb, reason) = match current {
        None if ours => ("upsert", "our record is missing; restoring it".to_owned()),
        None => ("create", "not found".to_owned()),
        Some(_) => ("upsert", format!("should point at {} ({ip})", wanted.node)),
    };
    ResourcePlan::act(
        id,
        vec![
            PlannedAction::new(
                DnsChange {
                    zone_id: zone.zone_id.clone(),
                    changes,
                },
                verb,
                reason,
            )
            .with_changes(vec![FieldChange::new(
                "/A",
                current.map(describe),
                Some(format!("A {ip} (ttl {ttl})")),
            )]),
        ],
    )
    .ready(exists)
}

/// How much of Route 53's per-request limits a change takes: (records, value characters).
fn weight(change: &RecordChange) -> (usize, usize) {
    let factor = match change.action {
        ChangeAction::Upsert => 2,
        ChangeAction::Delete => 1,
    };
    let records = change.record.values.len().max(1);
    let chars: usize = change.record.values.iter().map(String::len).sum();
    (records * factor, chars * factor)
}

/// Packs groups of changes (each group must stay in one request) into as few requests as
/// Route 53's limits allow, keeping their order. Returns the group indices of each request.
pub fn pack(groups: &[Vec<RecordChange>]) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let (mut records, mut chars) = (0, 0);
    for (index, group) in groups.iter().enumerate() {
        let (r, c) = group
            .iter()
            .map(weight)
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        let fits = records + r <= MAX_BATCH_RECORDS && chars + c <= MAX_BATCH_VALUE_CHARS;
        match batches.last_mut() {
            Some(batch) if fits => batch.push(index),
            _ => {
                batches.push(vec![index]);
                records = 0;
                chars = 0;
            }
        }
        records += r;
        chars += c;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cluster_with_nodes, desired_state};

    const DNS: &str = "[dns]\nzone = \"example.org.\"\nttl = 60\n[[dns.records]]\nname = \"web.example.org.\"\nnode = \"a\"\n";

    fn desired() -> DesiredState {
        desired_state(&cluster_with_nodes(&[("a", r#"roles = ["edge"]"#)], DNS))
    }

    fn record(name: &str, record_type: &str, value: &str) -> RecordSet {
        RecordSet {
            name: name.into(),
            record_type: record_type.into(),
            ttl: Some(60),
            values: vec![value.into()],
            alias: false,
            set_identifier: None,
        }
    }

    fn owned(name: &str, ip: &str, cluster: &str) -> Vec<RecordSet> {
        vec![
            record(name, "A", ip),
            record(&owner_name(name), "TXT", &owner_value(cluster)),
        ]
    }

    fn node(ip: Option<&str>, state: InstanceState) -> ObservedInstance {
        ObservedInstance {
            id: "i-1".into(),
            node: Some("a".into()),
            generation: 1,
            state,
            instance_type: "t2.micro".into(),
            ami: "ami-1e749f67".into(),
            subnet_id: None,
            key_pair: None,
            security_groups: vec![],
            public_ip: ip.map(String::from),
            private_ip: Some("10.0.0.1".into()),
            root_volume_id: None,
        }
    }

    fn zone(records: Vec<RecordSet>, instances: Vec<ObservedInstance>) -> DnsObservation {
        Some(ZoneObservation {
            zone_id: "Z1".into(),
            records,
            instances,
            propagating: BTreeMap::new(),
        })
    }

    /// One line per resource: verdict, then the changes as `ACTION type name value`.
    fn summary(plan: &KindPlan<DnsChange>) -> Vec<String> {
        plan.resources
            .iter()
            .map(|resource| {
                let verdict = match &resource.verdict {
                    Verdict::InSync => "in sync".to_owned(),
                    Verdict::Act { actions } => actions
                        .iter()
                        .map(|a| {
                            format!(
                                "{}{}: {}",
                                a.verb,
                                if a.deletes { " (deleting)" } else { "" },
                                a.action
                                    .changes
                                    .iter()
                                    .map(|c| format!(
                                        "{} {} {} {}",
                                        c.action.as_str(),
                                        c.record.record_type,
                                        c.record.name,
                                        c.record.values.join(",")
                                    ))
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" then "),
                    Verdict::Converging { reason } => format!("converging: {reason}"),
                    Verdict::Blocked { on, reason } => format!("blocked on {on}: {reason}"),
                    Verdict::Drifted { reason, .. } => format!("drifted: {reason}"),
                    Verdict::Unmanaged { reason } => format!("unmanaged: {reason}"),
                    Verdict::Failed { reason } => format!("failed: {reason}"),
                };
                format!("{} {verdict}", resource.id.name)
            })
            .collect()
    }

    #[test]
    fn records_are_created_kept_restored_and_never_taken_over() {
        let running = || vec![node(Some("203.0.113.1"), InstanceState::Running)];
        let mut both_owned = owned("a.example.org.", "203.0.113.1", "test");
        both_owned.extend(owned("web.example.org.", "203.0.113.1", "test"));
        let web_owned = owned("web.example.org.", "203.0.113.1", "test");
        let cases = [
            (
                "nothing yet: marker and record, together",
                zone(vec![], running()),
                vec![
                    "a.example.org. create: UPSERT TXT _converged.a.example.org. \"converged:cluster=test\"; UPSERT A a.example.org. 203.0.113.1",
                    "web.example.org. create: UPSERT TXT _converged.web.example.org. \"converged:cluster=test\"; UPSERT A web.example.org. 203.0.113.1",
                ],
            ),
            (
                "converged",
                zone(both_owned.clone(), running()),
                vec!["a.example.org. in sync", "web.example.org. in sync"],
            ),
            (
                "the instance was replaced: the record follows its new address",
                zone(
                    both_owned.clone(),
                    vec![
                        node(None, InstanceState::Terminated),
                        ObservedInstance {
                            id: "i-2".into(),
                            ..node(Some("203.0.113.2"), InstanceState::Pending)
                        },
                    ],
                ),
                vec![
                    "a.example.org. upsert: UPSERT A a.example.org. 203.0.113.2",
                    "web.example.org. upsert: UPSERT A web.example.org. 203.0.113.2",
                ],
            ),
            (
                "our record deleted by hand (marker left): restored",
                zone(
                    [
                        web_owned.clone(),
                        vec![record(
                            "_converged.a.example.org.",
                            "TXT",
                            "\"converged:cluster=test\"",
                        )],
                    ]
                    .concat(),
                    running(),
                ),
                vec![
                    "a.example.org. upsert: UPSERT A a.example.org. 203.0.113.1",
                    "web.example.org. in sync",
                ],
            ),
            (
                "a foreign record on a wanted name: a conflict, untouched; unrelated records ignored",
                zone(
                    [
                        web_owned.clone(),
                        vec![
                            record("a.example.org.", "A", "198.51.100.9"),
                            record("mail.example.org.", "MX", "10 mx.example.org."),
                        ],
                    ]
                    .concat(),
                    running(),
                ),
                vec![
                    "a.example.org. drifted: conflict: a.example.org. holds A 198.51.100.9 that is not converged's; it is left alone",
                    "web.example.org. in sync",
                ],
            ),
            (
                "a CNAME on a wanted name: a conflict",
                zone(
                    [
                        web_owned.clone(),
                        vec![record("a.example.org.", "CNAME", "elsewhere.example.net.")],
                    ]
                    .concat(),
                    running(),
                ),
                vec![
                    "a.example.org. drifted: conflict: a.example.org. holds CNAME elsewhere.example.net. that is not converged's; it is left alone",
                    "web.example.org. in sync",
                ],
            ),
            (
                "owned by another cluster: a conflict",
                zone(
                    [
                        web_owned.clone(),
                        owned("a.example.org.", "198.51.100.9", "other"),
                    ]
                    .concat(),
                    running(),
                ),
                vec![
                    "a.example.org. drifted: conflict: a.example.org. is owned by converged cluster other; it is left alone",
                    "web.example.org. in sync",
                ],
            ),
            (
                "ours but no longer wanted: deleted with its marker (prune decides)",
                zone(
                    [
                        both_owned.clone(),
                        owned("old.example.org.", "203.0.113.7", "test"),
                    ]
                    .concat(),
                    running(),
                ),
                vec![
                    "a.example.org. in sync",
                    "web.example.org. in sync",
                    "old.example.org. delete (deleting): DELETE A old.example.org. 203.0.113.7; DELETE TXT _converged.old.example.org. \"converged:cluster=test\"",
                ],
            ),
            (
                "the node is booting without an address yet: blocked on it",
                zone(vec![], vec![node(None, InstanceState::Pending)]),
                vec![
                    "a.example.org. blocked on instance/a: waiting for instance/a (i-1 is pending)",
                    "web.example.org. blocked on instance/a: waiting for instance/a (i-1 is pending)",
                ],
            ),
            (
                "the node has no instance yet: blocked on it",
                zone(vec![], vec![]),
                vec![
                    "a.example.org. blocked on instance/a: waiting for instance/a, which has no live instance",
                    "web.example.org. blocked on instance/a: waiting for instance/a, which has no live instance",
                ],
            ),
            (
                "the node was stopped: blocked on it, the record kept",
                zone(both_owned.clone(), vec![node(None, InstanceState::Stopped)]),
                vec![
                    "a.example.org. blocked on instance/a: waiting for instance/a (i-1 is stopped)",
                    "web.example.org. blocked on instance/a: waiting for instance/a (i-1 is stopped)",
                ],
            ),
            (
                "a change Route 53 still propagates: converging until GetChange says INSYNC",
                Some(ZoneObservation {
                    propagating: BTreeMap::from([(
                        "web.example.org.".to_owned(),
                        "C0123".to_owned(),
                    )]),
                    ..zone(both_owned.clone(), running()).unwrap()
                }),
                vec![
                    "a.example.org. in sync",
                    "web.example.org. converging: change C0123 is PENDING: Route 53 is still propagating it to its name servers",
                ],
            ),
            (
                "the node runs without a public address: reported",
                zone(both_owned, vec![node(None, InstanceState::Running)]),
                vec![
                    "a.example.org. drifted: instance/a (i-1) has no public address",
                    "web.example.org. drifted: instance/a (i-1) has no public address",
                ],
            ),
        ];
        let desired = desired();
        for (name, observed, want) in cases {
            assert_eq!(summary(&plan(&desired, &observed)), want, "{name}");
        }
    }

    #[test]
    fn records_depend_on_their_node_and_nothing_is_planned_without_dns() {
        let plan = plan(&desired(), &zone(vec![], vec![]));
        assert!(
            plan.resources
                .iter()
                .all(|r| r.depends_on == [instance::resource_id("a")])
        );
        let without = desired_state(&cluster_with_nodes(&[("a", r#"roles = ["edge"]"#)], ""));
        assert!(super::plan(&without, &None).resources.is_empty());
    }

    #[test]
    fn batches_respect_route53_limits_and_keep_groups_whole() {
        let upsert = |chars: usize| RecordChange {
            action: ChangeAction::Upsert,
            record: record("x.example.org.", "TXT", &"v".repeat(chars)),
        };
        let delete = RecordChange {
            action: ChangeAction::Delete,
            record: record("x.example.org.", "A", "203.0.113.1"),
        };
        type Case = (&'static str, Vec<Vec<RecordChange>>, Vec<Vec<usize>>);
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![]),
            (
                "a few groups: one request",
                vec![
                    vec![upsert(10), upsert(10)],
                    vec![delete.clone()],
                    vec![upsert(5)],
                ],
                vec![vec![0, 1, 2]],
            ),
            (
                "an UPSERT counts twice against the 1000 records",
                (0..501).map(|_| vec![upsert(1)]).collect(),
                vec![(0..500).collect(), vec![500]],
            ),
            (
                "deletes count once",
                (0..1000).map(|_| vec![delete.clone()]).collect(),
                vec![(0..1000).collect()],
            ),
            (
                "value characters are limited too",
                vec![vec![upsert(10_000)], vec![upsert(6_001)], vec![upsert(1)]],
                vec![vec![0], vec![1, 2]],
            ),
        ];
        for (name, groups, want) in cases {
            assert_eq!(pack(&groups), want, "{name}");
        }
    }
}
