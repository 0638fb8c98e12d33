//! The `zookeeper_ensemble` plan (pure, no client): members' services × their four-letter-word
//! answers → in sync, waiting, or the next member to restart. A configuration change rolls
//! out one member at a time, followers before the leader, only while every member serves
//! and only when the others still make a quorum. Ids a read-only observation would assign are
//! named in the reasons.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use converged_core::model::Role;
use converged_core::plan::{FieldChange, KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::{DesiredState, Kind, ResourceId};
use converged_hosts::HostsObserved;
use converged_hosts::render::RenderedService;
use converged_hosts::runtime::ServiceState;
use converged_hosts::service::diff::{service_id, with_notes};

use crate::fourlw::{MemberStatus, parse_conf};
use crate::ids;

/// One member as observed.
#[derive(Debug, Clone)]
pub struct MemberObserved {
    pub id: Option<u32>,
    /// The id is computed, not recorded (a read-only observation).
    pub unrecorded: bool,
    pub ssh: Option<SocketAddr>,
    /// The four-letter words' answers, or why there were none.
    pub status: Result<MemberStatus, String>,
}

#[derive(Debug, Clone)]
pub struct EnsembleObserved {
    pub hosts: HostsObserved,
    pub members: BTreeMap<String, MemberObserved>,
}

#[derive(Debug, Clone)]
pub enum EnsembleAction {
    /// Restart one member with its new configuration (through the host layer).
    RestartMember {
        service: Box<RenderedService>,
        ssh: SocketAddr,
    },
}

/// `zookeeper_ensemble/<cluster>`.
pub fn ensemble_id(desired: &DesiredState) -> ResourceId {
    ResourceId::new(Kind::ZookeeperEnsemble, &desired.cluster.name)
}

struct Member<'a> {
    node: &'a str,
    id: Option<u32>,
    service: RenderedService,
    running: bool,
    stale: Option<String>,
    status: Option<&'a MemberStatus>,
    ssh: Option<SocketAddr>,
}

impl Member<'_> {
    fn label(&self) -> String {
        let id = self.id.map(|id| id.to_string()).unwrap_or("?".into());
        let mode = self
            .status
            .and_then(|status| status.mode.as_deref())
            .unwrap_or("not serving");
        format!("{}({id}): {mode}", self.node)
    }

    fn serving(&self) -> bool {
        self.status.is_some_and(MemberStatus::serving)
    }

    fn leader(&self) -> bool {
        self.status.and_then(|s| s.mode.as_deref()) == Some("leader")
    }
}

pub fn plan(desired: &DesiredState, observed: &EnsembleObserved) -> KindPlan<EnsembleAction> {
    let names = ids::members(desired);
    if names.is_empty() {
        return KindPlan::default();
    }
    let id = ensemble_id(desired);
    let depends_on: Vec<ResourceId> = names
        .iter()
        .map(|node| service_id(node, Role::Zookeeper.as_str()))
        .collect();
    let (verdict, serves) = verdict(desired, observed, &names);
    let notes: Vec<String> = names
        .iter()
        .filter_map(|node| {
            let member = observed.members.get(*node).filter(|m| m.unrecorded)?;
            Some(format!(
                "myid {} (would be assigned) for {node}",
                member.id?
            ))
        })
        .collect();
    let verdict = with_notes(verdict, &notes);
    KindPlan::new(vec![
        ResourcePlan::new(id, verdict)
            .ready(serves)
            .depends_on(depends_on),
    ])
}

/// The ensemble's verdict, and whether it serves clients (a quorum serving with one leader):
/// what the layers above need, even while a member is down or the roll is under way.
fn verdict(
    desired: &DesiredState,
    observed: &EnsembleObserved,
    names: &[&str],
) -> (Verdict<EnsembleAction>, bool) {
    let mut rendered: BTreeMap<String, Result<RenderedService, String>> = observed
        .hosts
        .desired_services(desired)
        .into_iter()
        .filter(|(_, role, _)| *role == Role::Zookeeper)
        .map(|(node, _, service)| (node, service))
        .collect();
    let mut members = Vec::new();
    for node in names {
        let service = match rendered.remove(*node) {
            Some(Ok(service)) => service,
            Some(Err(reason)) => return (Verdict::Failed { reason }, false),
            None => {
                let reason = format!("member {node} has no zookeeper service to run");
                return (Verdict::Failed { reason }, false);
            }
        };
        let running = observed
            .hosts
            .nodes
            .get(*node)
            .and_then(|host| host.services.as_ref().ok())
            .and_then(|services| services.get(Role::Zookeeper.as_str()));
        let member_observed = observed.members.get(*node);
        let status = member_observed.and_then(|m| m.status.as_ref().ok());
        let wanted_membership = service
            .files
            .iter()
            .find(|file| file.path == "zoo.cfg")
            .map(|file| parse_conf(&file.content))
            .unwrap_or_default();
        let stale = match (running, status) {
            (Some(running), _) if running.hash.as_deref() != Some(service.hash.as_str()) => {
                Some("runs an older configuration".to_owned())
            }
            (_, Some(status))
                if status.serving()
                    && !status.membership.is_empty()
                    && status.membership != wanted_membership =>
            {
                Some(format!(
                    "believes in members {:?}, not {:?}",
                    status.membership, wanted_membership
                ))
            }
            _ => None,
        };
        members.push(Member {
            node,
            id: member_observed.and_then(|m| m.id),
            running: running.is_some_and(|r| r.state == ServiceState::Running),
            service,
            stale,
            status,
            ssh: member_observed.and_then(|m| m.ssh),
        });
    }
    let serving = members.iter().filter(|m| m.serving()).count();
    let quorum = members.len() / 2 + 1;
    let leaders = members.iter().filter(|m| m.leader()).count();
    let serves = serving >= quorum && (leaders == 1 || members.len() == 1);
    (rolling_verdict(&members, serving, quorum, leaders), serves)
}

fn rolling_verdict(
    members: &[Member<'_>],
    serving: usize,
    quorum: usize,
    leaders: usize,
) -> Verdict<EnsembleAction> {
    let modes = members
        .iter()
        .map(Member::label)
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(down) = members.iter().find(|m| !m.running) {
        return Verdict::Converging {
            reason: format!(
                "member {} is not running; its host_service starts it ({modes})",
                down.node
            ),
        };
    }
    let stale: Vec<&Member> = members.iter().filter(|m| m.stale.is_some()).collect();
    if stale.is_empty() {
        if serving == members.len() && (leaders == 1 || members.len() == 1) {
            return Verdict::InSync;
        }
        return Verdict::Converging {
            reason: format!("waiting for every member to serve with one leader ({modes})"),
        };
    }
    if serving < members.len() {
        return Verdict::Converging {
            reason: format!(
                "rolling restart: waiting for every member to serve before restarting the next ({modes})"
            ),
        };
    }
    if serving - 1 < quorum && members.len() > 1 {
        return Verdict::Converging {
            reason: format!(
                "restarting a member now would leave fewer than {quorum} serving ({modes})"
            ),
        };
    }
    let mut order = stale.clone();
    order.sort_by_key(|m| (m.leader(), m.id, m.node));
    let next = order[0];
    let Some(ssh) = next.ssh else {
        return Verdict::Failed {
            reason: format!("member {} has no address", next.node),
        };
    };
    let role = if next.leader() {
        "leader, last"
    } else {
        "follower"
    };
    let reason = format!(
        "member {} ({role}) {}; rolling one member at a time ({} of {} stale; {modes})",
        next.node,
        next.stale.as_deref().unwrap_or_default(),
        stale.len(),
        members.len()
    );
    Verdict::Act {
        actions: vec![
            PlannedAction::new(
                EnsembleAction::RestartMember {
                    service: Box::new(next.service.clone()),
                    ssh,
                },
                "restart_member",
                reason,
            )
            .with_changes(vec![FieldChange::new(
                format!("/members/{}/config", next.node),
                None,
                Some(next.service.hash.clone()),
            )]),
        ],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use converged_core::model::{
        ClusterSpec, ExecSpec, Mode, Node, NodePolicy, ServiceSpec, Services,
    };
    use converged_hosts::address::NodeAddress;
    use converged_hosts::layer::NodeObservation;
    use converged_hosts::render::{Extras, ServiceFile};
    use converged_hosts::runtime::{ObservedService, Runtime, RuntimeKind};

    use super::*;
    use crate::config::{Ports, zoo_cfg};

    const NODES: [&str; 3] = ["a", "b", "c"];

    fn desired(tick: &str) -> DesiredState {
        let node = |name: &str| Node {
            name: name.into(),
            instance_type: "t2.micro".into(),
            ami: "ami-1".into(),
            volume_size_gb: 20,
            key_pair: None,
            roles: vec![Role::Zookeeper],
            attributes: BTreeMap::new(),
            policy: NodePolicy::default(),
        };
        DesiredState {
            revision: "r".into(),
            cluster: ClusterSpec {
                name: "c".into(),
                region: None,
                mode: Mode::Enforce,
            },
            network: None,
            nodes: NODES.iter().map(|n| node(n)).collect(),
            dns: None,
            services: Services {
                zookeeper: Some(ServiceSpec {
                    env: BTreeMap::from([(
                        "ZOOCFG_tickTime".to_owned(),
                        converged_core::secret::MaybeSecret::Plain(tick.into()),
                    )]),
                    exec: Some(ExecSpec {
                        command: vec!["zk".into()],
                    }),
                    ..ServiceSpec::default()
                }),
                ..Services::default()
            },
            kinds: BTreeMap::new(),
            apps: Vec::new(),
        }
    }

    fn ip(i: usize) -> std::net::IpAddr {
        format!("127.0.0.{}", i + 1).parse().unwrap()
    }

    fn extras(state: &DesiredState) -> Extras {
        let members: BTreeMap<u32, std::net::IpAddr> =
            (0..3).map(|i| (i as u32 + 1, ip(i))).collect();
        let cfg = zoo_cfg(
            &members,
            Ports::from_spec(&[]),
            &crate::ids::settings(state),
        );
        let mut extras = Extras::default();
        for (i, node) in NODES.iter().enumerate() {
            extras.files.insert(
                ((*node).into(), "zookeeper".into()),
                vec![ServiceFile {
                    path: "zoo.cfg".into(),
                    content: cfg.clone(),
                }],
            );
            extras
                .vars
                .entry((*node).into())
                .or_default()
                .insert("zookeeper_myid".into(), (i + 1).to_string());
        }
        extras
    }

    /// Members as (hash of the given desired state or "old", mode or None).
    fn observed(state: &DesiredState, members: [(&str, Option<&str>); 3]) -> EnsembleObserved {
        let mut hosts = HostsObserved {
            nodes: BTreeMap::new(),
            secrets: BTreeMap::new(),
            extras: Ok(extras(state)),
            runtime: Runtime::new(RuntimeKind::Exec, "/srv"),
            rolling: BTreeSet::from(["zookeeper".to_owned()]),
        };
        for (i, node) in NODES.iter().enumerate() {
            hosts.nodes.insert(
                (*node).into(),
                NodeObservation {
                    address: Ok(NodeAddress {
                        ip: ip(i),
                        ssh: SocketAddr::new(ip(i), 22),
                        depends_on: None,
                    }),
                    services: Ok(BTreeMap::new()),
                    would_pin: None,
                },
            );
        }
        let wanted: BTreeMap<String, RenderedService> = hosts
            .desired_services(state)
            .into_iter()
            .map(|(node, _, service)| (node, service.unwrap()))
            .collect();
        let membership = parse_conf(&wanted["a"].files[0].content);
        let mut result = BTreeMap::new();
        for (i, (node, (hash, mode))) in NODES.iter().zip(members).enumerate() {
            let state = match hash {
                "down" => None,
                "old" => Some(ObservedService {
                    state: ServiceState::Running,
                    hash: Some("old".into()),
                }),
                _ => Some(ObservedService {
                    state: ServiceState::Running,
                    hash: Some(wanted[*node].hash.clone()),
                }),
            };
            if let (Some(state), Ok(services)) =
                (state, hosts.nodes.get_mut(*node).unwrap().services.as_mut())
            {
                services.insert("zookeeper".into(), state);
            }
            result.insert(
                (*node).to_owned(),
                MemberObserved {
                    id: Some(i as u32 + 1),
                    unrecorded: false,
                    ssh: Some(SocketAddr::new(ip(i), 22)),
                    status: Ok(MemberStatus {
                        mode: mode.map(str::to_owned),
                        zxid: None,
                        membership: if mode.is_some() {
                            membership.clone()
                        } else {
                            BTreeMap::new()
                        },
                        synced_followers: None,
                    }),
                },
            );
        }
        EnsembleObserved {
            hosts,
            members: result,
        }
    }

    fn summary(plan: &KindPlan<EnsembleAction>) -> String {
        let resource = &plan.resources[0];
        match &resource.verdict {
            Verdict::InSync => "in_sync".into(),
            Verdict::Act { actions } => match &actions[0].action {
                EnsembleAction::RestartMember { service, .. } => {
                    format!("restart {}", service.node)
                }
            },
            Verdict::Converging { .. } => "converging".into(),
            Verdict::Failed { reason } => format!("failed: {reason}"),
            other => format!("{other:?}"),
        }
    }

    /// (name, members as (hash, mode), expected, serves clients)
    type Case = (
        &'static str,
        [(&'static str, Option<&'static str>); 3],
        &'static str,
        bool,
    );

    #[test]
    fn rolling_restart_one_member_at_a_time_leader_last() {
        let state = desired("500");
        let l = Some("leader");
        let f = Some("follower");
        let cases: Vec<Case> = vec![
            (
                "healthy",
                [("new", f), ("new", l), ("new", f)],
                "in_sync",
                true,
            ),
            (
                "all stale: lowest-id follower first",
                [("old", f), ("old", l), ("old", f)],
                "restart a",
                true,
            ),
            (
                "then the next follower",
                [("new", f), ("old", l), ("old", f)],
                "restart c",
                true,
            ),
            (
                "leader last",
                [("new", f), ("old", l), ("new", f)],
                "restart b",
                true,
            ),
            (
                "wait for the restarted member to rejoin",
                [("new", None), ("old", l), ("old", f)],
                "converging",
                true,
            ),
            (
                "a member down: its service is restarted first",
                [("down", None), ("old", l), ("old", f)],
                "converging",
                true,
            ),
            (
                "no leader yet",
                [("new", f), ("new", f), ("new", f)],
                "converging",
                false,
            ),
            (
                "two members down: no quorum",
                [("down", None), ("down", None), ("new", l)],
                "converging",
                false,
            ),
        ];
        for (name, members, expected, serves) in cases {
            let plan = plan(&state, &observed(&state, members));
            assert_eq!(summary(&plan), expected, "{name}");
            assert_eq!(
                plan.resources[0].depends_on.len(),
                3,
                "the ensemble depends on its members' services"
            );
            assert_eq!(plan.resources[0].ready, serves, "{name}: ready");
        }
    }

    #[test]
    fn a_setting_change_makes_every_member_stale() {
        let before = desired("500");
        let after = desired("600");
        let l = Some("leader");
        let f = Some("follower");
        let world = observed(&before, [("new", f), ("new", l), ("new", f)]);
        assert_eq!(summary(&plan(&before, &world)), "in_sync");
        assert_eq!(summary(&plan(&after, &world)), "restart a");
    }

    #[test]
    fn a_member_believing_in_other_members_is_restarted() {
        let state = desired("500");
        let mut world = observed(
            &state,
            [
                ("new", Some("follower")),
                ("new", Some("leader")),
                ("new", Some("follower")),
            ],
        );
        if let Ok(status) = world.members.get_mut("c").unwrap().status.as_mut() {
            status.membership.remove(&1);
        }
        assert_eq!(summary(&plan(&state, &world)), "restart c");
    }

    #[test]
    fn no_zookeeper_nodes_no_resource() {
        let mut state = desired("500");
        state.nodes.clear();
        let world = observed(
            &desired("500"),
            [("new", None), ("new", None), ("new", None)],
        );
        assert!(plan(&state, &world).resources.is_empty());
    }

    #[test]
    fn ids_a_read_only_observation_would_assign_are_named() {
        let state = desired("500");
        let l = Some("leader");
        let f = Some("follower");
        // (name, members as (hash, mode), unrecorded members, expected reason, or None in sync)
        type NoteCase = (
            &'static str,
            [(&'static str, Option<&'static str>); 3],
            Vec<&'static str>,
            Option<&'static str>,
        );
        let cases: Vec<NoteCase> = vec![
            (
                "fresh: every id would be assigned",
                [("down", None), ("down", None), ("down", None)],
                vec!["a", "b", "c"],
                Some(
                    "member a is not running; its host_service starts it (a(1): not serving, b(2): not serving, c(3): not serving); myid 1 (would be assigned) for a; myid 2 (would be assigned) for b; myid 3 (would be assigned) for c",
                ),
            ),
            (
                "a new member, restarts named",
                [("new", f), ("old", l), ("old", f)],
                vec!["c"],
                Some(
                    "member c (follower) runs an older configuration; rolling one member at a time (2 of 3 stale; a(1): follower, b(2): leader, c(3): follower); myid 3 (would be assigned) for c",
                ),
            ),
            (
                "all recorded: nothing added",
                [("old", f), ("old", l), ("new", f)],
                vec![],
                Some(
                    "member a (follower) runs an older configuration; rolling one member at a time (2 of 3 stale; a(1): follower, b(2): leader, c(3): follower)",
                ),
            ),
            (
                "in sync has no reason to carry it",
                [("new", f), ("new", l), ("new", f)],
                vec!["a"],
                None,
            ),
        ];
        for (name, members, unrecorded, expected) in cases {
            let mut world = observed(&state, members);
            for member in unrecorded {
                world.members.get_mut(member).unwrap().unrecorded = true;
            }
            let plan = plan(&state, &world);
            let reason = match &plan.resources[0].verdict {
                Verdict::InSync => None,
                Verdict::Converging { reason } => Some(reason.clone()),
                Verdict::Act { actions } => Some(actions[0].reason.clone()),
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(reason.as_deref(), expected, "{name}");
        }
    }
}
