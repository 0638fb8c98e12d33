//! Plans the cluster's security group (pure: no client, no clock, no randomness). The rule set
//! is derived from the node roles: SSH and the admin UIs from the admin CIDRs, 80/443 from
//! anywhere only with an edge node, cluster-internal ports only from the group itself. Missing
//! rules are authorized before extra ones are revoked, and a rule that stays is never touched.

use std::collections::BTreeSet;

use converged_core::model::Role;
use converged_core::plan::{FieldChange, KindPlan, PlannedAction, ResourcePlan};
use converged_core::{DesiredState, Kind, ResourceId};

use super::{
    Direction, GroupAction, GroupObservation, GroupSpec, ObservedGroup, Peer, Protocol, Rule,
};

/// The name of the cluster's group, unique within its VPC.
pub fn group_name(cluster: &str) -> String {
    format!("converged-{cluster}")
}

pub fn resource_id(cluster: &str) -> ResourceId {
    ResourceId::new(Kind::SecurityGroup, group_name(cluster))
}

const ANYWHERE: &str = "0.0.0.0/0";
const ANYWHERE_V6: &str = "::/0";

/// The ingress rules the desired state calls for.
pub fn desired_ingress(desired: &DesiredState) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    let has = |role| desired.nodes_with_role(role).next().is_some();
    let admins: Vec<Peer> = desired
        .network
        .iter()
        .flat_map(|network| &network.admin_cidrs)
        .filter_map(|text| text.parse())
        .map(|net| match net {
            ipnet::IpNet::V4(v4) => Peer::Cidr(v4.trunc().to_string()),
            ipnet::IpNet::V6(v6) => Peer::Ipv6Cidr(v6.trunc().to_string()),
        })
        .collect();
    let mut admin_ports = vec![22];
    if has(Role::MesosMaster) {
        admin_ports.push(5050);
    }
    if has(Role::Marathon) {
        admin_ports.push(8080);
    }
    for peer in &admins {
        for port in &admin_ports {
            rules.insert(Rule::tcp(*port, *port, peer.clone()));
        }
    }
    if has(Role::Edge) {
        for port in [80, 443] {
            rules.insert(Rule::tcp(port, port, Peer::Cidr(ANYWHERE.into())));
        }
    }
    let mut internal: Vec<(i32, i32)> = Vec::new();
    if has(Role::Zookeeper) {
        internal.extend([(2181, 2181), (2888, 2888), (3888, 3888)]);
    }
    if has(Role::MesosMaster) {
        internal.push((5050, 5050));
    }
    if has(Role::MesosAgent) {
        internal.extend([(5051, 5051), (31000, 32000)]);
    }
    if has(Role::Marathon) {
        internal.push((8080, 8080));
    }
    for (from, to) in internal {
        rules.insert(Rule::tcp(from, to, Peer::OwnGroup));
    }
    rules.insert(Rule {
        protocol: Protocol::Icmp,
        ports: Some((-1, -1)),
        peer: Peer::OwnGroup,
    });
    rules
}

/// Outbound: everything over IPv4, which is also what EC2 gives a new group.
pub fn desired_egress() -> BTreeSet<Rule> {
    BTreeSet::from([all_to(ANYWHERE)])
}

fn all_to(cidr: &str) -> Rule {
    Rule {
        protocol: Protocol::All,
        ports: None,
        peer: if cidr.contains(':') {
            Peer::Ipv6Cidr(cidr.into())
        } else {
            Peer::Cidr(cidr.into())
        },
    }
}

pub fn plan(desired: &DesiredState, observed: &GroupObservation) -> KindPlan<GroupAction> {
    let cluster = &desired.cluster.name;
    let name = group_name(cluster);
    let wanted = desired
        .network
        .as_ref()
        .filter(|_| !desired.nodes.is_empty());
    let ours = wanted.and_then(|network| {
        observed
            .groups
            .iter()
            .find(|group| group.name == name && group.vpc_id == network.vpc_id)
    });
    let mut resources = Vec::new();
    if let Some(network) = wanted {
        let id = resource_id(cluster);
        let ingress = desired_ingress(desired);
        resources.push(match ours {
            None => ResourcePlan::act(
                id,
                vec![
                    PlannedAction::new(
                        GroupAction::Create {
                            spec: GroupSpec {
                                cluster: cluster.clone(),
                                name: name.clone(),
                                vpc_id: network.vpc_id.clone(),
                            },
                            ingress: ingress.iter().cloned().collect(),
                        },
                        "create",
                        format!("no group {name} in {}", network.vpc_id),
                    )
                    .with_changes(
                        ingress
                            .iter()
                            .map(|rule| added(Direction::Ingress, rule))
                            .collect(),
                    ),
                ],
            ),
            Some(group) => plan_rules(id, group, &ingress),
        });
    }
    for group in &observed.groups {
        if ours.is_some_and(|kept| kept.id == group.id) {
            continue;
        }
        resources.push(ResourcePlan::act(
            ResourceId::new(Kind::SecurityGroup, &group.id),
            vec![
                PlannedAction::new(
                    GroupAction::Delete {
                        group_id: group.id.clone(),
                    },
                    "delete",
                    format!(
                        "group {} in {} is tagged with this cluster but not wanted",
                        group.name, group.vpc_id
                    ),
                )
                .deleting(),
            ],
        ));
    }
    KindPlan::new(resources)
}

fn plan_rules(
    id: ResourceId,
    group: &ObservedGroup,
    ingress: &BTreeSet<Rule>,
) -> ResourcePlan<GroupAction> {
    let egress = desired_egress();
    // EC2 adds all-IPv6 egress to groups in IPv6 VPCs: accepted, never added or revoked.
    let tolerated_egress = BTreeSet::from([all_to(ANYWHERE_V6)]);
    let mut authorize = Vec::new();
    let mut revoke = Vec::new();
    for (direction, want, have, tolerated) in [
        (Direction::Ingress, ingress, &group.ingress, BTreeSet::new()),
        (Direction::Egress, &egress, &group.egress, tolerated_egress),
    ] {
        let missing: Vec<Rule> = want.difference(have).cloned().collect();
        let extra: Vec<Rule> = have
            .difference(want)
            .filter(|rule| !tolerated.contains(rule))
            .cloned()
            .collect();
        if !missing.is_empty() {
            authorize.push(
                PlannedAction::new(
                    GroupAction::Authorize {
                        group_id: group.id.clone(),
                        direction,
                        rules: missing.clone(),
                    },
                    "authorize",
                    format!("{} {} rule(s) missing", missing.len(), direction.as_str()),
                )
                .with_changes(missing.iter().map(|rule| added(direction, rule)).collect()),
            );
        }
        if !extra.is_empty() {
            revoke.push(
                PlannedAction::new(
                    GroupAction::Revoke {
                        group_id: group.id.clone(),
                        direction,
                        rules: extra.clone(),
                    },
                    "revoke",
                    format!(
                        "{} {} rule(s) not in the least-privilege set",
                        extra.len(),
                        direction.as_str()
                    ),
                )
                .with_changes(extra.iter().map(|rule| removed(direction, rule)).collect()),
            );
        }
    }
    let actions: Vec<_> = authorize.into_iter().chain(revoke).collect();
    if actions.is_empty() {
        ResourcePlan::in_sync(id)
    } else {
        ResourcePlan::act(id, actions).ready(true)
    }
}

fn added(direction: Direction, rule: &Rule) -> FieldChange {
    FieldChange::new(
        format!("/{}", direction.as_str()),
        None,
        Some(rule.to_string()),
    )
}

fn removed(direction: Direction, rule: &Rule) -> FieldChange {
    FieldChange::new(
        format!("/{}", direction.as_str()),
        Some(rule.to_string()),
        None,
    )
}

#[cfg(test)]
mod tests {
    use converged_core::plan::Verdict;

    use super::*;
    use crate::testing::desired_state;

    fn observed(ingress: BTreeSet<Rule>, egress: BTreeSet<Rule>) -> GroupObservation {
        GroupObservation {
            groups: vec![ObservedGroup {
                id: "sg-1".into(),
                name: "converged-test".into(),
                vpc_id: "vpc-0a1b2c3d".into(),
                ingress,
                egress,
            }],
        }
    }

    fn summary(plan: &KindPlan<GroupAction>) -> Vec<String> {
        plan.resources
            .iter()
            .map(|resource| match &resource.verdict {
                Verdict::InSync => format!("{}: in sync", resource.id),
                Verdict::Act { actions } => format!(
                    "{}: {}",
                    resource.id,
                    actions
                        .iter()
                        .map(|a| format!(
                            "{}[{}]{}",
                            a.verb,
                            a.changes
                                .iter()
                                .map(|c| c.to.clone().or(c.from.clone()).unwrap_or_default())
                                .collect::<Vec<_>>()
                                .join(", "),
                            if a.deletes { " deleting" } else { "" }
                        ))
                        .collect::<Vec<_>>()
                        .join(" then ")
                ),
                other => format!("{}: {other:?}", resource.id),
            })
            .collect()
    }

    const ALL_ROLES: &str = r#"roles = ["zookeeper", "mesos-master", "mesos-agent", "marathon"]"#;

    #[test]
    fn rules_follow_roles_and_admin_cidrs() {
        let cases = [
            (
                "a plain agent: ssh from admins, agent ports and icmp within the group",
                r#"roles = ["mesos-agent"]"#,
                r#"["198.51.100.7/24"]"#,
                vec![
                    "icmp within the group",
                    "tcp 22 with 198.51.100.0/24",
                    "tcp 5051 within the group",
                    "tcp 31000-32000 within the group",
                ],
            ),
            (
                "every role and an edge: UIs from admins (v4 and v6), web from anywhere",
                r#"roles = ["zookeeper", "mesos-master", "mesos-agent", "marathon", "edge"]"#,
                r#"["198.51.100.0/24", "2001:db8::/32"]"#,
                vec![
                    "icmp within the group",
                    "tcp 22 with 198.51.100.0/24",
                    "tcp 22 with 2001:db8::/32",
                    "tcp 80 with 0.0.0.0/0",
                    "tcp 443 with 0.0.0.0/0",
                    "tcp 2181 within the group",
                    "tcp 2888 within the group",
                    "tcp 3888 within the group",
                    "tcp 5050 with 198.51.100.0/24",
                    "tcp 5050 with 2001:db8::/32",
                    "tcp 5050 within the group",
                    "tcp 5051 within the group",
                    "tcp 8080 with 198.51.100.0/24",
                    "tcp 8080 with 2001:db8::/32",
                    "tcp 8080 within the group",
                    "tcp 31000-32000 within the group",
                ],
            ),
            (
                "no admin CIDRs: nothing reachable from outside",
                r#"roles = ["zookeeper"]"#,
                "[]",
                vec![
                    "icmp within the group",
                    "tcp 2181 within the group",
                    "tcp 2888 within the group",
                    "tcp 3888 within the group",
                ],
            ),
        ];
        for (name, roles, admins, want) in cases {
            let desired = desired_state(&format!(
                "[cluster]\nname = \"test\"\nregion = \"eu-west-1\"\n[network]\nvpc_id = \"vpc-0a1b2c3d\"\nsubnet_id = \"subnet-0a1b2c3d\"\nadmin_cidrs = {admins}\n[[nodes]]\nname = \"a\"\ninstance_type = \"t2.micro\"\nami = \"ami-1e749f67\"\n{roles}\n[services.zookeeper]\n[services.mesos-master]\n[services.mesos-agent]\n[services.marathon]\n"
            ));
            let got: BTreeSet<String> = desired_ingress(&desired)
                .iter()
                .map(ToString::to_string)
                .collect();
            let want: BTreeSet<String> = want.into_iter().map(String::from).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn plans_create_authorize_revoke_and_delete() {
        let desired = desired_state(&crate::testing::cluster_with_nodes(&[("a", ALL_ROLES)], ""));
        let ingress = desired_ingress(&desired);
        let allow_all = Rule::tcp(0, 65535, Peer::Cidr(ANYWHERE.into()));
        let ssh = Rule::tcp(22, 22, Peer::Cidr("198.51.100.0/24".into()));
        let mut with_extra = ingress.clone();
        with_extra.insert(allow_all.clone());
        let mut without_ssh = ingress.clone();
        without_ssh.remove(&ssh);
        let egress_v6 = BTreeSet::from([all_to(ANYWHERE), all_to(ANYWHERE_V6)]);
        let stray = ObservedGroup {
            id: "sg-old".into(),
            name: "converged-test".into(),
            vpc_id: "vpc-other".into(),
            ingress: BTreeSet::new(),
            egress: BTreeSet::new(),
        };
        let cases = [
            (
                "nothing yet: create with every rule",
                GroupObservation::default(),
                vec![format!(
                    "security_group/converged-test: create[{}]",
                    ingress
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
            ),
            (
                "converged",
                observed(ingress.clone(), desired_egress()),
                vec!["security_group/converged-test: in sync".to_owned()],
            ),
            (
                "EC2's IPv6 egress is tolerated",
                observed(ingress.clone(), egress_v6),
                vec!["security_group/converged-test: in sync".to_owned()],
            ),
            (
                "an allow-all rule added by hand is revoked, nothing else touched",
                observed(with_extra, desired_egress()),
                vec![
                    "security_group/converged-test: revoke[tcp 0-65535 with 0.0.0.0/0]"
                        .to_owned(),
                ],
            ),
            (
                "a needed rule removed by hand is authorized again; egress restored",
                observed(without_ssh, BTreeSet::new()),
                vec![
                    "security_group/converged-test: authorize[tcp 22 with 198.51.100.0/24] then authorize[all traffic with 0.0.0.0/0]"
                        .to_owned(),
                ],
            ),
            (
                "a group of ours in another VPC is proposed for deletion",
                GroupObservation {
                    groups: vec![
                        observed(ingress.clone(), desired_egress()).groups[0].clone(),
                        stray,
                    ],
                },
                vec![
                    "security_group/converged-test: in sync".to_owned(),
                    "security_group/sg-old: delete[] deleting".to_owned(),
                ],
            ),
        ];
        for (name, observed, want) in cases {
            assert_eq!(summary(&plan(&desired, &observed)), want, "{name}");
        }
    }

    #[test]
    fn authorizing_comes_before_revoking_and_the_group_stays_usable() {
        let desired = desired_state(&crate::testing::cluster_with_nodes(&[("a", ALL_ROLES)], ""));
        let mut ingress = desired_ingress(&desired);
        let ssh = Rule::tcp(22, 22, Peer::Cidr("198.51.100.0/24".into()));
        ingress.remove(&ssh);
        ingress.insert(Rule::tcp(22, 22, Peer::Cidr(ANYWHERE.into())));
        let plan = plan(&desired, &observed(ingress, desired_egress()));
        let resource = &plan.resources[0];
        let verbs: Vec<_> = resource.actions().iter().map(|a| a.verb).collect();
        assert_eq!(verbs, ["authorize", "revoke"]);
        assert!(
            resource.ready,
            "an existing group is usable while its rules change"
        );
    }

    #[test]
    fn without_nodes_nothing_is_wanted() {
        let desired = desired_state("[cluster]\nname = \"test\"\n");
        assert!(
            plan(&desired, &GroupObservation::default())
                .resources
                .is_empty()
        );
        let stray = observed(BTreeSet::new(), BTreeSet::new());
        let plan = plan(&desired, &stray);
        assert_eq!(
            summary(&plan),
            ["security_group/sg-1: delete[] deleting"],
            "a group left over when every node is gone is proposed for deletion (prune decides)"
        );
    }
}
