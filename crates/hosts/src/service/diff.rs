//! The `host_service` plan (pure, no client): node roles × service specs × what each host
//! runs → start, replace, stop, reach, or a reason to wait or report. What a read-only
//! observation did not record (a host key it would pin) is added to the reasons.

use std::collections::BTreeSet;

use converged_core::model::Role;
use converged_core::plan::{FieldChange, KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::{Classified, DesiredState, ErrorClass, Kind, ResourceId};

use crate::layer::{HostAction, HostsObserved};
use crate::render::RenderedService;
use crate::runtime::{RuntimeKind, ServiceState};

/// `host_service/<node>/<service>`.
pub fn service_id(node: &str, service: &str) -> ResourceId {
    ResourceId::new(Kind::HostService, format!("{node}/{service}"))
}

pub fn plan(desired: &DesiredState, observed: &HostsObserved) -> KindPlan<HostAction> {
    // Everything but ZooKeeper itself needs a serving ensemble (masters elect through it).
    let ensemble = (desired.nodes_with_role(Role::Zookeeper).count() > 0)
        .then(|| ResourceId::new(Kind::ZookeeperEnsemble, &desired.cluster.name));
    let mut resources = Vec::new();
    let mut wanted = BTreeSet::new();
    for (node, role, rendered) in observed.desired_services(desired) {
        let name = role.as_str();
        wanted.insert((node.clone(), name.to_owned()));
        let id = service_id(&node, name);
        let Some(host) = observed.nodes.get(&node) else {
            resources.push(ResourcePlan::new(
                id,
                Verdict::Failed {
                    reason: format!("node {node} was not observed"),
                },
            ));
            continue;
        };
        let address = match &host.address {
            Ok(address) => address,
            Err(err) => {
                resources.push(ResourcePlan::new(
                    id,
                    Verdict::Failed {
                        reason: err.to_string(),
                    },
                ));
                continue;
            }
        };
        let mut depends_on: Vec<ResourceId> = address.depends_on.iter().cloned().collect();
        if role != Role::Zookeeper {
            depends_on.extend(ensemble.clone());
        }
        let verdict = match (&host.services, rendered) {
            (Err(err), _) if err.class() == ErrorClass::Unsafe => Verdict::Failed {
                reason: format!("nothing is run on this host: {err}"),
            },
            (Err(err), _) => Verdict::Act {
                actions: vec![PlannedAction::new(
                    HostAction::Reach {
                        node: node.clone(),
                        ssh: address.ssh,
                    },
                    "reach",
                    format!("host unreachable: {err}"),
                )],
            },
            (Ok(_), Err(reason)) => Verdict::Failed { reason },
            (Ok(running), Ok(service)) => match runnable(&service, observed.runtime.kind) {
                Err(reason) => Verdict::Failed { reason },
                Ok(()) => service_verdict(
                    service,
                    running.get(name),
                    address.ssh,
                    observed.rolling.contains(name),
                ),
            },
        };
        let verdict = with_notes(verdict, &observed.notes(&node, name));
        let rolling_drift = matches!(verdict, Verdict::Drifted { .. });
        let mut plan = ResourcePlan::new(id, verdict).depends_on(depends_on);
        if rolling_drift {
            // Running with an older spec: still usable while the roll-out proceeds.
            plan = plan.ready(true);
        }
        resources.push(plan);
    }
    for (node, host) in &observed.nodes {
        let (Ok(address), Ok(running)) = (&host.address, &host.services) else {
            continue;
        };
        for name in running.keys() {
            if wanted.contains(&(node.clone(), name.clone())) {
                continue;
            }
            let action = PlannedAction::new(
                HostAction::Stop {
                    node: node.clone(),
                    service: name.clone(),
                    ssh: address.ssh,
                },
                "stop",
                "runs on the host, but the node's roles no longer include it",
            )
            .deleting();
            let verdict = with_notes(
                Verdict::Act {
                    actions: vec![action],
                },
                &observed.notes(node, name),
            );
            // An agent is drained (its tasks moved, its machine down) before it is stopped.
            let drained_first = (name == Role::MesosAgent.as_str())
                .then(|| ResourceId::new(Kind::MesosAgent, node));
            resources
                .push(ResourcePlan::new(service_id(node, name), verdict).depends_on(drained_first));
        }
    }
    KindPlan::new(resources)
}

/// Appends what a read-only observation computed but did not record (a host key it would pin,
/// an id it would assign) to the verdict's reasons, so a plan shows it. An in-sync verdict has
/// no reason to carry it and stays as it is.
pub fn with_notes<A>(verdict: Verdict<A>, notes: &[String]) -> Verdict<A> {
    if notes.is_empty() {
        return verdict;
    }
    let noted = |reason: String| format!("{reason}; {}", notes.join("; "));
    match verdict {
        Verdict::InSync => Verdict::InSync,
        Verdict::Act { actions } => Verdict::Act {
            actions: actions
                .into_iter()
                .map(|mut action| {
                    action.reason = noted(action.reason);
                    action
                })
                .collect(),
        },
        Verdict::Converging { reason } => Verdict::Converging {
            reason: noted(reason),
        },
        Verdict::Blocked { on, reason } => Verdict::Blocked {
            on,
            reason: noted(reason),
        },
        Verdict::Drifted { reason, changes } => Verdict::Drifted {
            reason: noted(reason),
            changes,
        },
        Verdict::Unmanaged { reason } => Verdict::Unmanaged {
            reason: noted(reason),
        },
        Verdict::Failed { reason } => Verdict::Failed {
            reason: noted(reason),
        },
    }
}

fn runnable(service: &RenderedService, runtime: RuntimeKind) -> Result<(), String> {
    let missing = match runtime {
        RuntimeKind::Docker => service.image.is_none(),
        RuntimeKind::Exec => service.command.is_empty(),
    };
    if missing {
        let field = match runtime {
            RuntimeKind::Docker => "image",
            RuntimeKind::Exec => "exec.command",
        };
        return Err(format!(
            "services.{} has no {field}, which the {} runtime needs",
            service.name,
            runtime.as_str()
        ));
    }
    Ok(())
}

fn service_verdict(
    service: RenderedService,
    running: Option<&crate::runtime::ObservedService>,
    ssh: std::net::SocketAddr,
    rolling: bool,
) -> Verdict<HostAction> {
    let Some(running) = running else {
        return Verdict::Act {
            actions: vec![PlannedAction::new(
                HostAction::Start {
                    service: Box::new(service),
                    ssh,
                },
                "start",
                "not running on the host",
            )],
        };
    };
    if running.state == ServiceState::Stopped {
        return Verdict::Act {
            actions: vec![PlannedAction::new(
                HostAction::Start {
                    service: Box::new(service),
                    ssh,
                },
                "start",
                "stopped (exited or killed)",
            )],
        };
    }
    if running.hash.as_deref() == Some(service.hash.as_str()) {
        return Verdict::InSync;
    }
    let changes = vec![FieldChange::new(
        "/spec-hash",
        running.hash.clone(),
        Some(service.hash.clone()),
    )];
    if rolling {
        return Verdict::Drifted {
            reason: format!(
                "spec changed; {} is rolled out one node at a time by its ensemble",
                service.name
            ),
            changes,
        };
    }
    Verdict::Act {
        actions: vec![
            PlannedAction::new(
                HostAction::Replace {
                    service: Box::new(service),
                    ssh,
                },
                "replace",
                "spec changed",
            )
            .with_changes(changes),
        ],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use converged_core::model::{
        ClusterSpec, ExecSpec, Mode, Node, NodePolicy, ServiceSpec, Services,
    };

    use super::*;
    use crate::address::NodeAddress;
    use crate::error::HostsError;
    use crate::layer::NodeObservation;
    use crate::render::Extras;
    use crate::runtime::{ObservedService, Runtime};

    fn node(name: &str, roles: &[Role]) -> Node {
        Node {
            name: name.into(),
            instance_type: "t2.micro".into(),
            ami: "ami-1".into(),
            volume_size_gb: 20,
            key_pair: None,
            roles: roles.to_vec(),
            attributes: BTreeMap::new(),
            policy: NodePolicy::default(),
        }
    }

    fn spec(command: &str) -> ServiceSpec {
        ServiceSpec {
            exec: Some(ExecSpec {
                command: vec![command.into()],
            }),
            ..ServiceSpec::default()
        }
    }

    fn desired(command: &str) -> DesiredState {
        DesiredState {
            revision: "r".into(),
            cluster: ClusterSpec {
                name: "c".into(),
                region: None,
                mode: Mode::Enforce,
            },
            network: None,
            nodes: vec![node("a", &[Role::Zookeeper, Role::Marathon])],
            dns: None,
            services: Services {
                zookeeper: Some(spec(command)),
                marathon: Some(spec(command)),
                ..Services::default()
            },
            kinds: BTreeMap::new(),
            apps: Vec::new(),
        }
    }

    fn observed(services: Result<BTreeMap<String, ObservedService>, HostsError>) -> HostsObserved {
        HostsObserved {
            nodes: BTreeMap::from([(
                "a".to_owned(),
                NodeObservation {
                    address: Ok(NodeAddress {
                        ip: "127.0.0.21".parse().unwrap(),
                        ssh: "127.0.0.21:22".parse().unwrap(),
                        depends_on: Some(ResourceId::new(Kind::Instance, "a")),
                    }),
                    services,
                    would_pin: None,
                },
            )]),
            secrets: BTreeMap::new(),
            extras: Ok(Extras::default()),
            runtime: Runtime::new(RuntimeKind::Exec, "/srv"),
            rolling: BTreeSet::from(["zookeeper".to_owned()]),
        }
    }

    fn hash_of(state: &DesiredState, service: &str) -> String {
        observed(Ok(BTreeMap::new()))
            .desired_services(state)
            .into_iter()
            .find(|(_, role, _)| role.as_str() == service)
            .unwrap()
            .2
            .unwrap()
            .hash
    }

    type Case = (
        &'static str,
        Result<BTreeMap<String, ObservedService>, HostsError>,
        [&'static str; 2],
    );

    fn running(hash: &str) -> ObservedService {
        ObservedService {
            state: crate::runtime::ServiceState::Running,
            hash: Some(hash.into()),
        }
    }

    /// `<resource> <verdict or verbs> [ready]`, one per resource, sorted.
    fn summary(plan: &KindPlan<HostAction>) -> Vec<String> {
        let mut lines: Vec<String> = plan
            .resources
            .iter()
            .map(|resource| {
                let verdict = match &resource.verdict {
                    Verdict::Act { actions } => {
                        actions.iter().map(|a| a.verb).collect::<Vec<_>>().join("+")
                    }
                    Verdict::InSync => "in_sync".into(),
                    Verdict::Drifted { .. } => "drifted".into(),
                    Verdict::Failed { .. } => "failed".into(),
                    Verdict::Converging { .. } => "converging".into(),
                    Verdict::Blocked { .. } => "blocked".into(),
                    Verdict::Unmanaged { .. } => "unmanaged".into(),
                };
                let ready = if resource.ready { " ready" } else { "" };
                format!("{} {verdict}{ready}", resource.id.name)
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn verdicts_for_each_situation() {
        let state = desired("run");
        let zk = hash_of(&state, "zookeeper");
        let marathon = hash_of(&state, "marathon");
        let stopped = ObservedService {
            state: crate::runtime::ServiceState::Stopped,
            hash: Some(zk.clone()),
        };
        let unreachable = HostsError::Connect {
            node: "a".into(),
            address: "127.0.0.21:22".into(),
            message: "connection refused".into(),
        };
        let key_changed = HostsError::HostKeyChanged {
            node: "a".into(),
            address: "127.0.0.21:22".into(),
            pinned: "SHA256:old".into(),
            offered: "SHA256:new".into(),
            known_hosts: "/state/known_hosts".into(),
        };
        let cases: Vec<Case> = vec![
            (
                "nothing running",
                Ok(BTreeMap::new()),
                ["a/marathon start", "a/zookeeper start"],
            ),
            (
                "converged",
                Ok(BTreeMap::from([
                    ("zookeeper".into(), running(&zk)),
                    ("marathon".into(), running(&marathon)),
                ])),
                ["a/marathon in_sync ready", "a/zookeeper in_sync ready"],
            ),
            (
                "stale: replaced, except rolled services",
                Ok(BTreeMap::from([
                    ("zookeeper".into(), running("old")),
                    ("marathon".into(), running("old")),
                ])),
                ["a/marathon replace", "a/zookeeper drifted ready"],
            ),
            (
                "stopped or started by someone else",
                Ok(BTreeMap::from([
                    ("zookeeper".into(), stopped),
                    (
                        "marathon".into(),
                        ObservedService {
                            hash: None,
                            ..running("")
                        },
                    ),
                ])),
                ["a/marathon replace", "a/zookeeper start"],
            ),
            (
                "unreachable host",
                Err(unreachable),
                ["a/marathon reach", "a/zookeeper reach"],
            ),
            (
                "changed host key",
                Err(key_changed),
                ["a/marathon failed", "a/zookeeper failed"],
            ),
        ];
        for (name, services, expected) in cases {
            let plan = plan(&state, &observed(services));
            assert_eq!(summary(&plan), expected, "{name}");
            for resource in &plan.resources {
                let mut expected = vec![ResourceId::new(Kind::Instance, "a")];
                if resource.id.name == "a/marathon" {
                    expected.push(ResourceId::new(Kind::ZookeeperEnsemble, "c"));
                }
                assert_eq!(resource.depends_on, expected, "{name}");
            }
        }
    }

    #[test]
    fn services_of_dropped_roles_are_stopped_as_deletions() {
        let state = desired("run");
        let services = BTreeMap::from([
            (
                "zookeeper".to_owned(),
                running(&hash_of(&state, "zookeeper")),
            ),
            ("marathon".to_owned(), running(&hash_of(&state, "marathon"))),
            ("mesos-agent".to_owned(), running("x")),
        ]);
        let plan = plan(&state, &observed(Ok(services)));
        let stop = plan
            .resources
            .iter()
            .find(|r| r.id.name == "a/mesos-agent")
            .unwrap();
        assert!(stop.actions()[0].deletes);
        assert_eq!(stop.actions()[0].verb, "stop");
        assert_eq!(
            stop.depends_on,
            [ResourceId::new(Kind::MesosAgent, "a")],
            "the agent is drained before its service stops"
        );
        let marathon = plan
            .resources
            .iter()
            .find(|r| r.id.name == "a/marathon")
            .unwrap();
        assert!(
            !marathon
                .depends_on
                .contains(&ResourceId::new(Kind::MesosAgent, "a"))
        );
    }

    #[test]
    fn a_spec_the_runtime_cannot_run_fails_with_the_missing_field() {
        let mut state = desired("run");
        state.services.marathon = Some(ServiceSpec::default());
        let plan = plan(&state, &observed(Ok(BTreeMap::new())));
        let marathon = plan
            .resources
            .iter()
            .find(|r| r.id.name == "a/marathon")
            .unwrap();
        match &marathon.verdict {
            Verdict::Failed { reason } => assert!(reason.contains("exec.command"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_changed_command_changes_the_plan() {
        let before = desired("run");
        let after = desired("run-v2");
        let services = BTreeMap::from([
            (
                "zookeeper".to_owned(),
                running(&hash_of(&before, "zookeeper")),
            ),
            (
                "marathon".to_owned(),
                running(&hash_of(&before, "marathon")),
            ),
        ]);
        assert_eq!(
            summary(&plan(&before, &observed(Ok(services.clone())))),
            ["a/marathon in_sync ready", "a/zookeeper in_sync ready"]
        );
        assert_eq!(
            summary(&plan(&after, &observed(Ok(services)))),
            ["a/marathon replace", "a/zookeeper drifted ready"]
        );
    }

    /// The reason (of the first action, or of the verdict) a plan gives `resource`.
    fn reason_of(plan: &KindPlan<HostAction>, resource: &str) -> Option<String> {
        let found = plan.resources.iter().find(|r| r.id.name == resource)?;
        match &found.verdict {
            Verdict::Act { actions } => Some(actions[0].reason.clone()),
            Verdict::Converging { reason }
            | Verdict::Blocked { reason, .. }
            | Verdict::Drifted { reason, .. }
            | Verdict::Unmanaged { reason }
            | Verdict::Failed { reason } => Some(reason.clone()),
            Verdict::InSync => None,
        }
    }

    #[test]
    fn what_a_read_only_observation_did_not_record_is_in_the_reasons() {
        let state = desired("run");
        let zk = hash_of(&state, "zookeeper");
        let pin = "would pin host key ssh-ed25519 SHA256:abc for a";
        let myid = "myid 1 (would be assigned)";
        // (name, services on the host, key accepted unpinned, extras' notes for a/zookeeper,
        //  expected reasons of a/marathon and a/zookeeper)
        type NoteCase = (
            &'static str,
            BTreeMap<String, ObservedService>,
            Option<&'static str>,
            Vec<String>,
            [Option<String>; 2],
        );
        let cases: Vec<NoteCase> = vec![
            (
                "read-write: nothing to add",
                BTreeMap::new(),
                None,
                Vec::new(),
                [
                    Some("not running on the host".into()),
                    Some("not running on the host".into()),
                ],
            ),
            (
                "a first contact and a new member",
                BTreeMap::new(),
                Some("ssh-ed25519 SHA256:abc"),
                vec![myid.to_owned()],
                [
                    Some(format!("not running on the host; {pin}")),
                    Some(format!("not running on the host; {pin}; {myid}")),
                ],
            ),
            (
                "in sync says nothing; a stop carries the pin",
                BTreeMap::from([
                    ("zookeeper".to_owned(), running(&zk)),
                    ("mesos-agent".to_owned(), running("x")),
                ]),
                Some("ssh-ed25519 SHA256:abc"),
                Vec::new(),
                [Some(format!("not running on the host; {pin}")), None],
            ),
        ];
        for (name, services, would_pin, notes, expected) in cases {
            let mut world = observed(Ok(services));
            world.nodes.get_mut("a").unwrap().would_pin = would_pin.map(str::to_owned);
            let mut extras = Extras::default();
            extras.notes.insert(("a".into(), "zookeeper".into()), notes);
            world.extras = Ok(extras);
            let plan = plan(&state, &world);
            assert_eq!(
                [
                    reason_of(&plan, "a/marathon"),
                    reason_of(&plan, "a/zookeeper")
                ],
                expected,
                "{name}"
            );
            if name.contains("stop") {
                assert_eq!(
                    reason_of(&plan, "a/mesos-agent"),
                    Some(format!(
                        "runs on the host, but the node's roles no longer include it; {pin}"
                    )),
                    "{name}"
                );
            }
        }
    }
}
