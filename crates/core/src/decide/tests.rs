use super::*;
use crate::plan::ResourcePlan;

/// Times are plain numbers: the core never reads a clock.
const NOW: u32 = 100;

fn desired(kinds: &str) -> DesiredState {
    crate::load::parse_sources(
        &[(
            "cluster.toml".to_owned(),
            format!("[cluster]\nname = \"t\"\nregion = \"eu-west-1\"\n{kinds}"),
        )],
        "rev-1".to_owned(),
    )
    .unwrap_or_else(|problems| panic!("{problems:#?}"))
}

fn id(kind: Kind, name: &str) -> ResourceId {
    ResourceId::new(kind, name)
}

fn update() -> Vec<PlannedAction<()>> {
    vec![PlannedAction::new((), "update", "type changed")]
}

fn delete() -> Vec<PlannedAction<()>> {
    vec![PlannedAction::new((), "terminate", "not in the desired state").deleting()]
}

/// The decision's name, and its reason, for table rows.
fn named(decision: &Decision<()>) -> (&'static str, String) {
    let name = match decision {
        Decision::InSync => "in_sync",
        Decision::Apply { .. } => "apply",
        Decision::Converging { .. } => "converging",
        Decision::Blocked { .. } => "blocked",
        Decision::Drifted { .. } => "drifted",
        Decision::Held { .. } => "held",
        Decision::Refused { .. } => "refused",
        Decision::Failed { .. } => "failed",
        Decision::Unmanaged { .. } => "unmanaged",
    };
    (name, decision.reason())
}

struct Case {
    name: &'static str,
    kinds: &'static str,
    /// `instance/a` wants these actions; `instance/b` and `instance/c` are in sync.
    actions: Vec<PlannedAction<()>>,
    /// `instance/a` depends on `security_group/sg`, whose plan says this.
    dependency: Option<Verdict<()>>,
    memory: ResourceMemory<u32>,
    kind_retry_at: Option<u32>,
    policy: CyclePolicy,
    expected: &'static str,
    reason: &'static str,
}

fn case(name: &'static str, expected: &'static str, reason: &'static str) -> Case {
    Case {
        name,
        kinds: "",
        actions: update(),
        dependency: None,
        memory: ResourceMemory::default(),
        kind_retry_at: None,
        policy: CyclePolicy::default(),
        expected,
        reason,
    }
}

fn held_after(hold: Hold) -> ResourceMemory<u32> {
    ResourceMemory {
        retry_at: None,
        hold: Some(hold),
        last_error: Some("InvalidParameterValue".into()),
    }
}

fn backing_off(until: u32) -> ResourceMemory<u32> {
    ResourceMemory {
        retry_at: Some(until),
        hold: None,
        last_error: Some("RequestLimitExceeded".into()),
    }
}

const PRUNE: &str = "[kinds.instance]\nprune = true\nmax_delete_fraction = 0.5\n";
const PRUNE_TIGHT: &str = "[kinds.instance]\nprune = true\nmax_delete_fraction = 0.2\n";
const OBSERVE: &str = "[kinds.instance]\nmode = \"observe\"\nprune = true\n";

fn paused() -> CyclePolicy {
    CyclePolicy {
        paused: true,
        ..CyclePolicy::default()
    }
}

fn operator(allow_mass_deletion: bool) -> CyclePolicy {
    CyclePolicy {
        release_holds: true,
        allow_mass_deletion,
        ..CyclePolicy::default()
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "an update applies",
            "apply",
            "update applied (type changed)",
        ),
        Case {
            kinds: OBSERVE,
            ..case(
                "observe mode reports",
                "drifted",
                "observe mode: would update (type changed)",
            )
        },
        Case {
            policy: paused(),
            ..case(
                "pause reports",
                "drifted",
                "paused: would update (type changed)",
            )
        },
        Case {
            kinds: OBSERVE,
            policy: paused(),
            ..case("observe mode wins over pause", "drifted", "observe mode")
        },
        Case {
            actions: delete(),
            ..case(
                "prune off leaves a deletion",
                "drifted",
                "left in place because prune is off for instance",
            )
        },
        Case {
            actions: delete(),
            kinds: OBSERVE,
            ..case(
                "prune off is not the reason in observe mode with prune",
                "drifted",
                "observe mode: would terminate",
            )
        },
        Case {
            actions: delete(),
            kinds: "[kinds.instance]\nmode = \"observe\"\n",
            ..case(
                "prune off wins over observe mode",
                "drifted",
                "prune is off for instance",
            )
        },
        Case {
            actions: delete(),
            kinds: PRUNE,
            ..case("prune within budget deletes", "apply", "terminate applied")
        },
        Case {
            actions: delete(),
            kinds: PRUNE_TIGHT,
            ..case(
                "over budget is refused",
                "refused",
                "would delete 1 of 3 managed instance resources, more than max_delete_fraction 0.2",
            )
        },
        Case {
            actions: delete(),
            kinds: PRUNE_TIGHT,
            policy: operator(true),
            ..case(
                "the mass-deletion override deletes",
                "apply",
                "terminate applied",
            )
        },
        Case {
            actions: delete(),
            kinds: PRUNE_TIGHT,
            policy: paused(),
            ..case(
                "a refusal shows even when paused",
                "refused",
                "deletion refused",
            )
        },
        Case {
            actions: delete(),
            kinds: PRUNE,
            policy: paused(),
            ..case(
                "pause holds a permitted deletion",
                "drifted",
                "paused: would terminate",
            )
        },
        Case {
            dependency: Some(Verdict::Converging {
                reason: "creating".into(),
            }),
            ..case(
                "a dependency not ready blocks",
                "blocked",
                "waiting for security_group/sg to be ready",
            )
        },
        Case {
            dependency: Some(Verdict::InSync),
            ..case(
                "a ready dependency lets it apply",
                "apply",
                "update applied",
            )
        },
        Case {
            dependency: Some(Verdict::Converging {
                reason: "creating".into(),
            }),
            policy: paused(),
            ..case("pause is reported before blocked", "drifted", "paused")
        },
        Case {
            dependency: Some(Verdict::Converging {
                reason: "creating".into(),
            }),
            memory: held_after(Hold::Operator),
            ..case(
                "blocked is reported before a hold",
                "blocked",
                "waiting for",
            )
        },
        Case {
            memory: held_after(Hold::DesiredChanges {
                revision: "rev-1".into(),
            }),
            ..case(
                "an invalid error holds until an edit",
                "held",
                "held after an invalid request: fix the desired state or ask for a reconcile; last error: InvalidParameterValue",
            )
        },
        Case {
            memory: held_after(Hold::DesiredChanges {
                revision: "rev-0".into(),
            }),
            ..case(
                "an edit releases an invalid hold",
                "apply",
                "update applied",
            )
        },
        Case {
            memory: held_after(Hold::Operator),
            ..case(
                "an unsafe error holds until an operator",
                "held",
                "held after an unsafe error",
            )
        },
        Case {
            memory: held_after(Hold::Operator),
            policy: operator(false),
            ..case("an operator releases a hold", "apply", "update applied")
        },
        Case {
            memory: held_after(Hold::Operator),
            kinds: OBSERVE,
            ..case(
                "observe mode is reported before a hold",
                "drifted",
                "observe mode",
            )
        },
        Case {
            memory: backing_off(NOW + 5),
            ..case(
                "backoff waits",
                "held",
                "waiting for the next retry; last error: RequestLimitExceeded",
            )
        },
        Case {
            memory: backing_off(NOW),
            ..case("a backoff that ended retries", "apply", "update applied")
        },
        Case {
            memory: backing_off(NOW + 5),
            policy: operator(false),
            ..case("an operator skips the backoff", "apply", "update applied")
        },
        Case {
            kind_retry_at: Some(NOW + 5),
            ..case(
                "a throttled kind waits",
                "held",
                "waiting for the next retry",
            )
        },
        Case {
            kind_retry_at: Some(NOW - 1),
            ..case(
                "a throttle that ended lets it apply",
                "apply",
                "update applied",
            )
        },
    ]
}

#[test]
fn every_policy_branch_decides_as_documented() {
    for case in cases() {
        let desired = desired(case.kinds);
        let sg = id(Kind::SecurityGroup, "sg");
        let a = id(Kind::Instance, "a");
        let mut resource = ResourcePlan::act(a.clone(), case.actions);
        let mut plans = vec![(
            Kind::Instance,
            KindPlan::new(vec![
                ResourcePlan::in_sync(id(Kind::Instance, "b")),
                ResourcePlan::in_sync(id(Kind::Instance, "c")),
            ]),
        )];
        if let Some(verdict) = case.dependency {
            resource = resource.depends_on([sg.clone()]);
            plans.push((
                Kind::SecurityGroup,
                KindPlan::new(vec![ResourcePlan::new(sg, verdict)]),
            ));
        }
        plans[0].1.resources.insert(0, resource);
        let mut memory = Memory::default();
        memory.resources.insert(a.clone(), case.memory);
        if let Some(at) = case.kind_retry_at {
            memory.kinds_retry_at.insert(Kind::Instance, at);
        }
        let running = [Kind::SecurityGroup, Kind::Instance];
        let decided = decide(&desired, &running, plans, &memory, case.policy, NOW);
        let decision = &decided
            .resources
            .iter()
            .find(|r| r.id == a)
            .expect("instance/a is decided")
            .decision;
        let (name, reason) = named(decision);
        assert_eq!(name, case.expected, "{}: {reason}", case.name);
        assert!(
            reason.contains(case.reason),
            "{}: `{reason}` lacks `{}`",
            case.name,
            case.reason
        );
        let batched = decided.batches.iter().any(|batch| {
            batch
                .resources
                .iter()
                .any(|i| decided.resources[*i].id == a)
        });
        assert_eq!(batched, name == "apply", "{}: batches", case.name);
    }
}

#[test]
fn verdicts_without_actions_pass_through_and_unmanaged_is_never_deleted() {
    let desired = desired(PRUNE);
    let plan = KindPlan::new(vec![
        ResourcePlan::in_sync(id(Kind::Instance, "a")),
        ResourcePlan::new(
            id(Kind::Instance, "b"),
            Verdict::Converging {
                reason: "booting".into(),
            },
        ),
        ResourcePlan::new(
            id(Kind::Instance, "c"),
            Verdict::Unmanaged {
                reason: "no cluster tag".into(),
            },
        ),
        ResourcePlan::new(
            id(Kind::Instance, "d"),
            Verdict::Failed {
                reason: "secret env:X is not set".into(),
            },
        ),
        ResourcePlan::new(
            id(Kind::Instance, "e"),
            Verdict::Drifted {
                reason: "needs a replacement".into(),
                changes: vec![],
            },
        ),
        ResourcePlan::new(
            id(Kind::Instance, "f"),
            Verdict::Blocked {
                on: id(Kind::SecurityGroup, "sg"),
                reason: "no address".into(),
            },
        ),
    ]);
    let decided = decide(
        &desired,
        &[Kind::Instance],
        vec![(Kind::Instance, plan)],
        &Memory::<u32>::default(),
        CyclePolicy::default(),
        NOW,
    );
    let got: Vec<(&str, Condition)> = decided
        .resources
        .iter()
        .map(|r| (named(&r.decision).0, r.decision.condition()))
        .collect();
    assert_eq!(
        got,
        [
            ("in_sync", Condition::InSync),
            ("converging", Condition::Converging),
            ("unmanaged", Condition::Unmanaged),
            ("failed", Condition::Failed),
            ("drifted", Condition::Drifted),
            ("blocked", Condition::Blocked),
        ]
    );
    assert!(decided.batches.is_empty());
}

#[test]
fn deletions_run_last_in_reverse_dependency_order() {
    let desired = desired(
        "[kinds.instance]\nprune = true\nmax_delete_fraction = 1.0\n[kinds.dns_record]\nprune = true\nmax_delete_fraction = 1.0\n",
    );
    let plans = vec![
        (
            Kind::DnsRecord,
            KindPlan::new(vec![
                ResourcePlan::act(id(Kind::DnsRecord, "old"), delete()),
                ResourcePlan::act(id(Kind::DnsRecord, "new"), update()),
            ]),
        ),
        (
            Kind::Instance,
            KindPlan::new(vec![
                ResourcePlan::act(id(Kind::Instance, "old"), delete()),
                ResourcePlan::act(id(Kind::Instance, "new"), update()),
            ]),
        ),
    ];
    let decided = decide(
        &desired,
        &[Kind::Instance, Kind::DnsRecord],
        plans,
        &Memory::<u32>::default(),
        CyclePolicy::default(),
        NOW,
    );
    let order: Vec<String> = decided
        .batches
        .iter()
        .flat_map(|batch| {
            batch
                .resources
                .iter()
                .map(|i| decided.resources[*i].id.to_string())
        })
        .collect();
    assert_eq!(
        order,
        [
            "instance/new",
            "dns_record/new",
            "dns_record/old",
            "instance/old"
        ]
    );
    assert!(decided.batches[2].deletions && !decided.batches[1].deletions);
}

#[test]
fn the_budget_counts_managed_resources_only() {
    let desired = desired(PRUNE);
    let plan = |unmanaged: usize| {
        let mut resources = vec![
            ResourcePlan::act(id(Kind::Instance, "old"), delete()),
            ResourcePlan::in_sync(id(Kind::Instance, "kept")),
        ];
        for n in 0..unmanaged {
            resources.push(ResourcePlan::new(
                id(Kind::Instance, &format!("foreign-{n}")),
                Verdict::Unmanaged {
                    reason: "not ours".into(),
                },
            ));
        }
        KindPlan::new(resources)
    };
    for unmanaged in [0, 5] {
        let decided = decide(
            &desired,
            &[Kind::Instance],
            vec![(Kind::Instance, plan(unmanaged))],
            &Memory::<u32>::default(),
            CyclePolicy::default(),
            NOW,
        );
        assert_eq!(
            named(&decided.resources[0].decision).0,
            "apply",
            "1 of 2 managed is within 0.5 whatever the {unmanaged} unmanaged"
        );
    }
}

#[test]
fn effects_follow_the_verbs() {
    let action = |verb: &'static str, deletes: bool| {
        let action = PlannedAction::new((), verb, "r");
        if deletes { action.deleting() } else { action }
    };
    let cases = [
        (vec![action("create", false)], Effect::Create, "+"),
        (vec![action("update", false)], Effect::Change, "~"),
        (vec![action("terminate", true)], Effect::Delete, "-"),
        (
            vec![action("terminate", true), action("create", false)],
            Effect::Replace,
            "-/+",
        ),
        (vec![action("replace", false)], Effect::Replace, "-/+"),
        (
            vec![action("stop", false), action("start", false)],
            Effect::Change,
            "~",
        ),
    ];
    for (actions, effect, symbol) in cases {
        assert_eq!(Effect::of(&actions), effect, "{actions:?}");
        assert_eq!(effect.symbol(), symbol);
    }
}
