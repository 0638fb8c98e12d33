//! Plans one instance per desired node (pure: no client, no clock, no randomness; the intent
//! records' age comes in as a fact of the observation).
//!
//! - No live instance: launch one. The generation (part of the client token) goes up past
//!   every generation seen in EC2 or in the intent record, except when the intent record shows
//!   a launch whose outcome was never recorded: then the same generation and token are used
//!   again, which EC2 deduplicates. A recent launch EC2 does not list yet is waited for.
//! - Type change: stop, then modify and start, only with `policy.allow_resize`.
//! - AMI, subnet, key pair or root volume size change: terminate and launch anew only with
//!   `policy.allow_replace`; otherwise reported as needing replacement.
//! - Stopping or replacing is done to one node at a time, and only while every other node is
//!   running.
//! - Live instances with the cluster tag and no desired node are proposed for termination
//!   (the engine applies the prune policy and the deletion budget).

use std::collections::{BTreeMap, BTreeSet};

use converged_core::digest::short_sha256;
use converged_core::model::{Network, Node};
use converged_core::plan::{FieldChange, KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::{DesiredState, Kind, ResourceId};

use super::{InstanceAction, InstanceObservation, InstanceState, LaunchSpec, ObservedInstance};
use crate::security_group::diff as group;

pub fn resource_id(node: &str) -> ResourceId {
    ResourceId::new(Kind::Instance, node)
}

/// The RunInstances client token of a node's instance of one generation: the same inputs
/// always give the same token, so a retried launch is deduplicated by EC2.
pub fn client_token(cluster: &str, node: &str, generation: u32) -> String {
    short_sha256(
        format!("converged/{cluster}/{node}/{generation}").as_bytes(),
        24,
    )
}

/// The address dependents use: the public one, else the private one.
pub fn address(instance: &ObservedInstance) -> Option<&str> {
    instance
        .public_ip
        .as_deref()
        .or(instance.private_ip.as_deref())
}

struct Context<'a> {
    cluster: &'a str,
    network: &'a Network,
    observed: &'a InstanceObservation,
}

impl Context<'_> {
    fn history(&self, node: &str) -> Vec<&ObservedInstance> {
        self.observed
            .instances
            .iter()
            .filter(|instance| instance.node.as_deref() == Some(node))
            .collect()
    }

    fn live(&self, node: &str) -> Vec<&ObservedInstance> {
        self.history(node)
            .into_iter()
            .filter(|instance| instance.state.is_live())
            .collect()
    }

    fn next_generation(&self, node: &str) -> u32 {
        let seen = self.history(node).iter().map(|i| i.generation).max();
        let recorded = self
            .observed
            .intents
            .iter()
            .filter(|intent| intent.node == node)
            .map(|intent| intent.generation)
            .max();
        seen.max(recorded).map_or(1, |generation| generation + 1)
    }

    fn launch(&self, node: &Node, generation: u32, client_token: String) -> LaunchSpec {
        LaunchSpec {
            cluster: self.cluster.to_owned(),
            node: node.name.clone(),
            generation,
            client_token,
            instance_type: node.instance_type.clone(),
            ami: node.ami.clone(),
            subnet_id: self.network.subnet_id.clone(),
            vpc_id: self.network.vpc_id.clone(),
            security_group: group::group_name(self.cluster),
            key_pair: node.key_pair.clone(),
            volume_size_gb: node.volume_size_gb,
        }
    }

    fn fresh_launch(&self, node: &Node, reason: String) -> PlannedAction<InstanceAction> {
        let generation = self.next_generation(&node.name);
        let token = client_token(self.cluster, &node.name, generation);
        PlannedAction::new(
            InstanceAction::Launch(self.launch(node, generation, token)),
            "create",
            reason,
        )
        .with_changes(vec![FieldChange::new(
            "/instance",
            None,
            Some(format!(
                "{} {} (generation {generation})",
                node.instance_type, node.ami
            )),
        )])
    }
}

/// The fields that cannot change without a new instance, as changes.
fn immutable_changes(
    ctx: &Context<'_>,
    node: &Node,
    instance: &ObservedInstance,
) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    if instance.ami != node.ami {
        changes.push(FieldChange::new(
            "/ami",
            Some(instance.ami.clone()),
            Some(node.ami.clone()),
        ));
    }
    if instance.subnet_id.as_deref() != Some(ctx.network.subnet_id.as_str()) {
        changes.push(FieldChange::new(
            "/subnet_id",
            instance.subnet_id.clone(),
            Some(ctx.network.subnet_id.clone()),
        ));
    }
    if instance.key_pair != node.key_pair {
        changes.push(FieldChange::new(
            "/key_pair",
            instance.key_pair.clone(),
            node.key_pair.clone(),
        ));
    }
    // A root volume not listed (untagged, or gone between the two listings) is not compared.
    let size = instance
        .root_volume_id
        .as_ref()
        .and_then(|volume| ctx.observed.root_volume_sizes.get(volume));
    if let Some(size) = size.filter(|size| **size != node.volume_size_gb) {
        changes.push(FieldChange::new(
            "/volume_size_gb",
            Some(size.to_string()),
            Some(node.volume_size_gb.to_string()),
        ));
    }
    changes
}

fn type_change(node: &Node, instance: &ObservedInstance) -> Option<FieldChange> {
    (instance.instance_type != node.instance_type).then(|| {
        FieldChange::new(
            "/instance_type",
            Some(instance.instance_type.clone()),
            Some(node.instance_type.clone()),
        )
    })
}

/// `ami ami-1 → ami-2, volume_size_gb 20 → 40`: what changed, for reasons.
fn describe(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(|change| {
            format!(
                "{} {} → {}",
                change.path.trim_start_matches('/'),
                change.from.as_deref().unwrap_or("(none)"),
                change.to.as_deref().unwrap_or("(none)")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn drifted(
    id: ResourceId,
    reason: String,
    changes: Vec<FieldChange>,
) -> ResourcePlan<InstanceAction> {
    ResourcePlan::new(id, Verdict::Drifted { reason, changes })
}

pub fn plan(desired: &DesiredState, observed: &InstanceObservation) -> KindPlan<InstanceAction> {
    let mut resources = Vec::new();
    let wanted: BTreeSet<&str> = desired.nodes.iter().map(|n| n.name.as_str()).collect();
    if let Some(network) = &desired.network {
        let ctx = Context {
            cluster: &desired.cluster.name,
            network,
            observed,
        };
        // A node is busy while it has no single running instance; disruptive changes wait for
        // every other node to be running, and go to the first node that wants one.
        let busy: BTreeSet<&str> = desired
            .nodes
            .iter()
            .filter(|node| {
                let live = ctx.live(&node.name);
                live.len() != 1 || live[0].state != InstanceState::Running
            })
            .map(|node| node.name.as_str())
            .collect();
        let disruptor = desired.nodes.iter().find(|node| {
            let live = ctx.live(&node.name);
            live.len() == 1
                && live[0].state == InstanceState::Running
                && ((node.policy.allow_replace
                    && !immutable_changes(&ctx, node, live[0]).is_empty())
                    || (node.policy.allow_resize && type_change(node, live[0]).is_some()))
        });
        for node in &desired.nodes {
            let may_disrupt = disruptor.is_some_and(|d| d.name == node.name)
                && busy.iter().all(|name| *name == node.name);
            resources.push(
                plan_node(&ctx, node, may_disrupt).depends_on([group::resource_id(ctx.cluster)]),
            );
        }
    }
    let mut strays: BTreeMap<String, Vec<&ObservedInstance>> = BTreeMap::new();
    for instance in observed.instances.iter().filter(|i| i.state.is_live()) {
        match instance.node.as_deref() {
            Some(node) if wanted.contains(node) => {}
            Some(node) => strays.entry(node.to_owned()).or_default().push(instance),
            None => strays
                .entry(instance.id.clone())
                .or_default()
                .push(instance),
        }
    }
    for (name, instances) in strays {
        let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
        // The node's Mesos agent is drained (tasks moved, machine down) before it goes.
        let drained_first = ResourceId::new(Kind::MesosAgent, &name);
        resources.push(
            ResourcePlan::act(
                resource_id(&name),
                vec![
                    PlannedAction::new(
                        InstanceAction::Terminate {
                            instance_ids: ids.clone(),
                        },
                        "terminate",
                        format!(
                            "{} carries the cluster tag but no desired node",
                            ids.join(", ")
                        ),
                    )
                    .deleting(),
                ],
            )
            .depends_on([drained_first]),
        );
    }
    KindPlan::new(resources)
}

fn plan_node(ctx: &Context<'_>, node: &Node, may_disrupt: bool) -> ResourcePlan<InstanceAction> {
    let id = resource_id(&node.name);
    let live = ctx.live(&node.name);
    match live.as_slice() {
        [] => plan_missing(ctx, node, id),
        [instance] => plan_existing(ctx, node, id, instance, may_disrupt),
        many => drifted(
            id,
            format!(
                "{} live instances carry this node's tags ({}); converged will not choose one: terminate the extra ones",
                many.len(),
                many.iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Vec::new(),
        ),
    }
}

fn plan_missing(ctx: &Context<'_>, node: &Node, id: ResourceId) -> ResourcePlan<InstanceAction> {
    let history = ctx.history(&node.name);
    let intent = ctx
        .observed
        .intents
        .iter()
        .find(|intent| intent.node == node.name);
    if let Some(intent) = intent.filter(|i| !history.iter().any(|h| h.generation == i.generation)) {
        match &intent.instance_id {
            Some(launched) if intent.recent => {
                return ResourcePlan::new(
                    id,
                    Verdict::Converging {
                        reason: format!("launched {launched}; waiting for EC2 to list it"),
                    },
                );
            }
            None => {
                let generation = intent.generation;
                return ResourcePlan::act(
                    id,
                    vec![PlannedAction::new(
                        InstanceAction::Launch(ctx.launch(
                            node,
                            generation,
                            intent.client_token.clone(),
                        )),
                        "create",
                        format!(
                            "the launch of generation {generation} was interrupted before its outcome was recorded; retrying with the same client token"
                        ),
                    )],
                );
            }
            Some(_) => {}
        }
    }
    let reason = match history.last() {
        Some(gone) => format!("instance {} is {}", gone.id, gone.state.as_str()),
        None => "no instance carries this node's tags".to_owned(),
    };
    ResourcePlan::act(id, vec![ctx.fresh_launch(node, reason)])
}

fn plan_existing(
    ctx: &Context<'_>,
    node: &Node,
    id: ResourceId,
    instance: &ObservedInstance,
    may_disrupt: bool,
) -> ResourcePlan<InstanceAction> {
    let instance_id = instance.id.clone();
    let resize = type_change(node, instance);
    match instance.state {
        InstanceState::Pending | InstanceState::Stopping => ResourcePlan::new(
            id,
            Verdict::Converging {
                reason: format!("instance {instance_id} is {}", instance.state.as_str()),
            },
        ),
        InstanceState::Stopped => {
            let mut actions = Vec::new();
            if let Some(change) = resize.filter(|_| node.policy.allow_resize) {
                actions.push(
                    PlannedAction::new(
                        InstanceAction::Resize {
                            instance_id: instance_id.clone(),
                            instance_type: node.instance_type.clone(),
                        },
                        "resize",
                        format!(
                            "instance type {} → {}",
                            instance.instance_type, node.instance_type
                        ),
                    )
                    .with_changes(vec![change]),
                );
            }
            actions.push(PlannedAction::new(
                InstanceAction::Start { instance_id },
                "start",
                format!("instance {} is stopped", instance.id),
            ));
            ResourcePlan::act(id, actions)
        }
        InstanceState::Running => {
            let immutable = immutable_changes(ctx, node, instance);
            if !immutable.is_empty() {
                let what = describe(&immutable);
                let plan = if !node.policy.allow_replace {
                    drifted(
                        id,
                        format!("needs replacement ({what}); policy.allow_replace is off"),
                        immutable,
                    )
                } else if !may_disrupt {
                    drifted(
                        id,
                        format!(
                            "needs replacement ({what}); waiting: one node is disrupted at a time, while the others run"
                        ),
                        immutable,
                    )
                } else {
                    ResourcePlan::act(
                        id,
                        vec![
                            PlannedAction::new(
                                InstanceAction::Terminate {
                                    instance_ids: vec![instance_id.clone()],
                                },
                                "terminate",
                                format!("replacing {instance_id}: {what}"),
                            )
                            .with_changes(immutable),
                            ctx.fresh_launch(node, format!("replacement for {instance_id}")),
                        ],
                    )
                };
                return plan.ready(true);
            }
            if let Some(change) = resize {
                let reason = format!(
                    "instance type {} → {}",
                    instance.instance_type, node.instance_type
                );
                let plan = if !node.policy.allow_resize {
                    drifted(
                        id,
                        format!("{reason}; policy.allow_resize is off"),
                        vec![change],
                    )
                } else if !may_disrupt {
                    drifted(
                        id,
                        format!(
                            "{reason}; waiting: one node is disrupted at a time, while the others run"
                        ),
                        vec![change],
                    )
                } else {
                    ResourcePlan::act(
                        id,
                        vec![
                            PlannedAction::new(
                                InstanceAction::Stop { instance_id },
                                "stop",
                                format!("{reason}: stop, then change the type and start"),
                            )
                            .with_changes(vec![change]),
                        ],
                    )
                };
                return plan.ready(true);
            }
            let group = group::group_name(ctx.cluster);
            if !instance.security_groups.contains(&group) {
                return drifted(
                    id,
                    format!("instance {instance_id} is not in security group {group}"),
                    vec![FieldChange::new(
                        "/security_groups",
                        Some(instance.security_groups.join(", ")),
                        Some(group),
                    )],
                )
                .ready(address(instance).is_some());
            }
            ResourcePlan::in_sync(id).ready(address(instance).is_some())
        }
        InstanceState::ShuttingDown | InstanceState::Terminated => plan_missing(ctx, node, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::IntentView;
    use crate::testing::{cluster_with_nodes, desired_state};

    const ROLES: &str = r#"roles = ["mesos-agent"]"#;

    fn instance(id: &str, node: &str, generation: u32, state: InstanceState) -> ObservedInstance {
        ObservedInstance {
            id: id.into(),
            node: Some(node.into()),
            generation,
            state,
            instance_type: "t2.micro".into(),
            ami: "ami-1e749f67".into(),
            subnet_id: Some("subnet-0a1b2c3d".into()),
            key_pair: None,
            security_groups: vec!["converged-test".into()],
            public_ip: Some("203.0.113.10".into()),
            private_ip: Some("10.0.0.10".into()),
            root_volume_id: Some(format!("vol-{id}")),
        }
    }

    fn running(id: &str, node: &str) -> ObservedInstance {
        instance(id, node, 1, InstanceState::Running)
    }

    fn intent(node: &str, generation: u32, instance_id: Option<&str>, recent: bool) -> IntentView {
        IntentView {
            node: node.into(),
            generation,
            client_token: client_token("test", node, generation),
            instance_id: instance_id.map(String::from),
            recent,
        }
    }

    /// One line per resource: `id verdict: verb(generation)…` or the reason.
    fn summary(plan: &KindPlan<InstanceAction>) -> Vec<String> {
        plan.resources
            .iter()
            .map(|resource| {
                let verdict = match &resource.verdict {
                    Verdict::InSync => "in sync".to_owned(),
                    Verdict::Act { actions } => actions
                        .iter()
                        .map(|a| {
                            let detail = match &a.action {
                                InstanceAction::Launch(spec) => {
                                    format!("(gen {})", spec.generation)
                                }
                                InstanceAction::Terminate { instance_ids } => {
                                    format!("({})", instance_ids.join(","))
                                }
                                _ => String::new(),
                            };
                            format!(
                                "{}{detail}{}",
                                a.verb,
                                if a.deletes { " deleting" } else { "" }
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
                format!(
                    "{} {}{}",
                    resource.id,
                    if resource.ready { "ready " } else { "" },
                    verdict
                )
            })
            .collect()
    }

    fn check(cases: Vec<(&str, String, InstanceObservation, Vec<&str>)>) {
        for (name, cluster, observed, want) in cases {
            let desired = desired_state(&cluster);
            assert_eq!(summary(&plan(&desired, &observed)), want, "{name}");
        }
    }

    /// The instances with root volumes of the 20 GiB nodes get by default.
    fn world(instances: Vec<ObservedInstance>, intents: Vec<IntentView>) -> InstanceObservation {
        let root_volume_sizes = instances
            .iter()
            .filter_map(|i| i.root_volume_id.clone())
            .map(|volume| (volume, 20))
            .collect();
        InstanceObservation {
            instances,
            intents,
            root_volume_sizes,
        }
    }

    #[test]
    fn creates_recreates_and_survives_crashes() {
        let one = cluster_with_nodes(&[("a", ROLES)], "");
        check(vec![
            (
                "nothing yet: generation 1",
                one.clone(),
                world(vec![], vec![]),
                vec!["instance/a create(gen 1)"],
            ),
            (
                "converged and addressed: in sync and ready",
                one.clone(),
                world(vec![running("i-1", "a")], vec![]),
                vec!["instance/a ready in sync"],
            ),
            (
                "terminated by someone: a new generation",
                one.clone(),
                world(
                    vec![instance("i-1", "a", 1, InstanceState::Terminated)],
                    vec![],
                ),
                vec!["instance/a create(gen 2)"],
            ),
            (
                "crash after the intent, before the answer: the same generation and token again",
                one.clone(),
                world(vec![], vec![intent("a", 1, None, true)]),
                vec!["instance/a create(gen 1)"],
            ),
            (
                "crash after the intent, and EC2 made it: found by tag, nothing launched",
                one.clone(),
                world(
                    vec![instance("i-1", "a", 1, InstanceState::Pending)],
                    vec![intent("a", 1, None, true)],
                ),
                vec!["instance/a converging: instance i-1 is pending"],
            ),
            (
                "launched moments ago but not listed yet: wait",
                one.clone(),
                world(vec![], vec![intent("a", 3, Some("i-3"), true)]),
                vec!["instance/a converging: launched i-3; waiting for EC2 to list it"],
            ),
            (
                "launched long ago and gone from the listing: a generation past the record",
                one.clone(),
                world(vec![], vec![intent("a", 3, Some("i-3"), false)]),
                vec!["instance/a create(gen 4)"],
            ),
            (
                "two live instances for one node: reported, never guessed",
                one.clone(),
                world(vec![running("i-1", "a"), running("i-2", "a")], vec![]),
                vec![
                    "instance/a drifted: 2 live instances carry this node's tags (i-1, i-2); converged will not choose one: terminate the extra ones",
                ],
            ),
            (
                "running without an address: in sync but not ready",
                one.clone(),
                world(
                    vec![ObservedInstance {
                        public_ip: None,
                        private_ip: None,
                        ..running("i-1", "a")
                    }],
                    vec![],
                ),
                vec!["instance/a in sync"],
            ),
            (
                "stopped by hand: started",
                one.clone(),
                world(
                    vec![instance("i-1", "a", 1, InstanceState::Stopped)],
                    vec![],
                ),
                vec!["instance/a start"],
            ),
            (
                "an instance of ours without a desired node: terminate, as a deletion",
                one,
                world(vec![running("i-1", "a"), running("i-9", "old")], vec![]),
                vec![
                    "instance/a ready in sync",
                    "instance/old terminate(i-9) deleting",
                ],
            ),
        ]);
    }

    #[test]
    fn a_stray_instance_waits_for_its_agent_to_be_drained() {
        let desired = desired_state(&cluster_with_nodes(&[("a", ROLES)], ""));
        let plan = plan(
            &desired,
            &world(vec![running("i-1", "a"), running("i-9", "old")], vec![]),
        );
        let stray = plan
            .resources
            .iter()
            .find(|r| r.id == resource_id("old"))
            .unwrap();
        assert!(
            stray
                .depends_on
                .contains(&ResourceId::new(Kind::MesosAgent, "old"))
        );
    }

    #[test]
    fn type_and_image_changes_follow_the_policy_one_node_at_a_time() {
        let resize_on = r#"roles = ["mesos-agent"]
policy = { allow_resize = true, allow_replace = true }
instance_type = "t2.small""#;
        let small = |id: &str, node: &str| ObservedInstance {
            instance_type: "t2.small".into(),
            ..running(id, node)
        };
        let replace = |cluster: &str| cluster.replace("ami-1e749f67", "ami-0123abcd");
        let nodes = |a: &str, b: &str| cluster_with_nodes(&[("a", a), ("b", b)], "");
        check(vec![
            (
                "type change with the policy off: drifted, still ready",
                cluster_with_nodes(&[("a", ROLES)], "").replace("t2.micro", "t2.small"),
                world(vec![running("i-1", "a")], vec![]),
                vec![
                    "instance/a ready drifted: instance type t2.micro → t2.small; policy.allow_resize is off",
                ],
            ),
            (
                "type change with the policy on: stop first",
                nodes(resize_on, ROLES),
                world(vec![running("i-1", "a"), running("i-2", "b")], vec![]),
                vec!["instance/a ready stop", "instance/b ready in sync"],
            ),
            (
                "stopped for the resize: change the type, then start",
                nodes(resize_on, ROLES),
                world(
                    vec![
                        instance("i-1", "a", 1, InstanceState::Stopped),
                        running("i-2", "b"),
                    ],
                    vec![],
                ),
                vec!["instance/a resize then start", "instance/b ready in sync"],
            ),
            (
                "two nodes to resize: the second waits for the first",
                nodes(resize_on, resize_on),
                world(
                    vec![
                        instance("i-1", "a", 1, InstanceState::Stopping),
                        running("i-2", "b"),
                    ],
                    vec![],
                ),
                vec![
                    "instance/a converging: instance i-1 is stopping",
                    "instance/b ready drifted: instance type t2.micro → t2.small; waiting: one node is disrupted at a time, while the others run",
                ],
            ),
            (
                "resized: in sync",
                nodes(resize_on, ROLES),
                world(vec![small("i-1", "a"), running("i-2", "b")], vec![]),
                vec!["instance/a ready in sync", "instance/b ready in sync"],
            ),
            (
                "new AMI without the policy: needs replacement, reported",
                replace(&cluster_with_nodes(&[("a", ROLES)], "")),
                world(vec![running("i-1", "a")], vec![]),
                vec![
                    "instance/a ready drifted: needs replacement (ami ami-1e749f67 → ami-0123abcd); policy.allow_replace is off",
                ],
            ),
            (
                "a bigger root volume without the policy: needs replacement, reported",
                cluster_with_nodes(
                    &[("a", "roles = [\"mesos-agent\"]\nvolume_size_gb = 40")],
                    "",
                ),
                world(vec![running("i-1", "a")], vec![]),
                vec![
                    "instance/a ready drifted: needs replacement (volume_size_gb 20 → 40); policy.allow_replace is off",
                ],
            ),
            (
                "a bigger root volume with the policy: replaced like an AMI change",
                nodes(&format!("{resize_on}\nvolume_size_gb = 40"), ROLES),
                world(vec![small("i-1", "a"), running("i-2", "b")], vec![]),
                vec![
                    "instance/a ready terminate(i-1) then create(gen 2)",
                    "instance/b ready in sync",
                ],
            ),
            (
                "a root volume the listing did not show is not compared",
                cluster_with_nodes(
                    &[("a", "roles = [\"mesos-agent\"]\nvolume_size_gb = 40")],
                    "",
                ),
                world(
                    vec![ObservedInstance {
                        root_volume_id: None,
                        ..running("i-1", "a")
                    }],
                    vec![],
                ),
                vec!["instance/a ready in sync"],
            ),
            (
                "new AMI with the policy: terminate, then launch the next generation",
                replace(&nodes(resize_on, ROLES)),
                world(vec![small("i-1", "a"), running("i-2", "b")], vec![]),
                vec![
                    "instance/a ready terminate(i-1) then create(gen 2)",
                    "instance/b ready drifted: needs replacement (ami ami-1e749f67 → ami-0123abcd); policy.allow_replace is off",
                ],
            ),
            (
                "a replacement waits while another node boots",
                replace(&nodes(resize_on, ROLES)),
                world(
                    vec![
                        small("i-1", "a"),
                        instance("i-2", "b", 1, InstanceState::Pending),
                    ],
                    vec![],
                ),
                vec![
                    "instance/a ready drifted: needs replacement (ami ami-1e749f67 → ami-0123abcd); waiting: one node is disrupted at a time, while the others run",
                    "instance/b converging: instance i-2 is pending",
                ],
            ),
        ]);
    }

    #[test]
    fn tokens_are_deterministic_and_distinct_per_generation() {
        assert_eq!(client_token("c", "n", 1), client_token("c", "n", 1));
        assert_ne!(client_token("c", "n", 1), client_token("c", "n", 2));
        assert_ne!(client_token("c", "n", 1), client_token("c", "m", 1));
        assert_eq!(client_token("c", "n", 1).len(), 48, "EC2 accepts up to 64");
    }

    #[test]
    fn launches_carry_the_node_spec_and_depend_on_the_group() {
        let desired = desired_state(&cluster_with_nodes(
            &[(
                "a",
                "roles = [\"mesos-agent\"]\nkey_pair = \"admin\"\nvolume_size_gb = 40",
            )],
            "",
        ));
        let plan = plan(&desired, &InstanceObservation::default());
        let resource = &plan.resources[0];
        assert_eq!(
            resource.depends_on,
            [ResourceId::new(Kind::SecurityGroup, "converged-test")]
        );
        let InstanceAction::Launch(spec) = &resource.actions()[0].action else {
            panic!("expected a launch");
        };
        assert_eq!(
            spec,
            &LaunchSpec {
                cluster: "test".into(),
                node: "a".into(),
                generation: 1,
                client_token: client_token("test", "a", 1),
                instance_type: "t2.micro".into(),
                ami: "ami-1e749f67".into(),
                subnet_id: "subnet-0a1b2c3d".into(),
                vpc_id: "vpc-0a1b2c3d".into(),
                security_group: "converged-test".into(),
                key_pair: Some("admin".into()),
                volume_size_gb: 40,
            }
        );
    }
}
