//! Engine behaviour with in-memory kinds and a paused clock: convergence, idempotence, failure
//! isolation, backoff, dependencies, invalid desired states, modes, prune, triggers, shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use converged::audit::AuditLog;
use converged::engine::{CycleRequest, Engine, EngineSettings, Trigger};
use converged::metrics::Metrics;
use converged::planner::{DaemonView, PlanReport, Planner};
use converged::status::Shared;
use converged_core::condition::{Condition, ResourceStatus};
use converged_core::plan::{FieldChange, KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::reconciler::{Reconciler, Registry};
use converged_core::{DesiredState, ErrorClass, Kind, ReconcileError, ResourceId};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shared in-memory world both fake kinds act on, with fault switches.
#[derive(Default)]
struct World {
    apps: BTreeMap<String, u32>,
    instances: BTreeSet<String>,
    writes: u32,
    fail_apply: BTreeMap<String, ErrorClass>,
    fail_observe: bool,
    apply_delay: Option<Duration>,
    attempts_at: Vec<(String, Instant)>,
}

type SharedWorld = Arc<Mutex<World>>;

/// A kind over `desired.apps`: resource name = app id, value = instances. Ids starting with
/// `/foreign` are someone else's. A label `needs = <node>` makes the app depend on that node's
/// instance; so does an id `/on-<node>` when the app is deleted.
struct FakeApps(SharedWorld);

#[derive(Debug, Clone)]
enum AppAction {
    Put(String, u32),
    Delete(String),
}

#[async_trait]
impl Reconciler for FakeApps {
    type Observed = BTreeMap<String, u32>;
    type Action = AppAction;
    const KIND: Kind = Kind::MarathonApp;

    async fn observe(&self, _desired: &DesiredState) -> Result<Self::Observed, ReconcileError> {
        let world = self.0.lock().unwrap();
        if world.fail_observe {
            return Err(ReconcileError::Observe {
                kind: "marathon_app",
                class: ErrorClass::Transient,
                message: "connection refused".into(),
            });
        }
        Ok(world.apps.clone())
    }

    fn plan(desired: &DesiredState, observed: &Self::Observed) -> KindPlan<AppAction> {
        let mut resources = Vec::new();
        for file in &desired.apps {
            let app = &file.app;
            let want = app.instances.unwrap_or(1);
            let id = ResourceId::new(Kind::MarathonApp, &app.id);
            let depends_on: Vec<ResourceId> = app
                .labels
                .iter()
                .flatten()
                .filter(|(key, _)| *key == "needs")
                .map(|(_, node)| ResourceId::new(Kind::Instance, node))
                .collect();
            let plan = match observed.get(&app.id) {
                Some(have) if *have == want => ResourcePlan::in_sync(id),
                Some(have) => ResourcePlan::act(
                    id,
                    vec![
                        PlannedAction::new(
                            AppAction::Put(app.id.clone(), want),
                            "update",
                            "instances differ",
                        )
                        .with_changes(vec![FieldChange::new(
                            "/instances",
                            Some(have.to_string()),
                            Some(want.to_string()),
                        )]),
                    ],
                ),
                None => ResourcePlan::act(
                    id,
                    vec![PlannedAction::new(
                        AppAction::Put(app.id.clone(), want),
                        "create",
                        "not found",
                    )],
                ),
            };
            resources.push(plan.depends_on(depends_on));
        }
        for name in observed.keys() {
            if desired.apps.iter().any(|file| file.app.id == *name) {
                continue;
            }
            let id = ResourceId::new(Kind::MarathonApp, name);
            resources.push(if name.starts_with("/foreign") {
                ResourcePlan::new(
                    id,
                    Verdict::Unmanaged {
                        reason: "no converged label".into(),
                    },
                )
            } else {
                let runs_on = name
                    .strip_prefix("/on-")
                    .map(|node| ResourceId::new(Kind::Instance, node));
                ResourcePlan::act(
                    id,
                    vec![
                        PlannedAction::new(
                            AppAction::Delete(name.clone()),
                            "delete",
                            "not in the desired state",
                        )
                        .deleting(),
                    ],
                )
                .depends_on(runs_on)
            });
        }
        KindPlan::new(resources)
    }

    async fn apply(&self, action: &AppAction) -> Result<(), ReconcileError> {
        let (name, delay) = {
            let mut world = self.0.lock().unwrap();
            let name = match action {
                AppAction::Put(name, _) | AppAction::Delete(name) => name.clone(),
            };
            world.attempts_at.push((name.clone(), Instant::now()));
            if let Some(class) = world.fail_apply.get(&name) {
                return Err(ReconcileError::Apply {
                    action: "put",
                    class: *class,
                    message: format!("{class} failure injected"),
                });
            }
            (name, world.apply_delay)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut world = self.0.lock().unwrap();
        world.writes += 1;
        match action {
            AppAction::Put(_, instances) => {
                world.apps.insert(name, *instances);
            }
            AppAction::Delete(_) => {
                world.apps.remove(&name);
            }
        }
        Ok(())
    }
}

/// A kind over `desired.nodes`: an instance exists or not.
struct FakeInstances(SharedWorld);

#[async_trait]
impl Reconciler for FakeInstances {
    type Observed = BTreeSet<String>;
    type Action = String;
    const KIND: Kind = Kind::Instance;

    async fn observe(&self, _desired: &DesiredState) -> Result<Self::Observed, ReconcileError> {
        Ok(self.0.lock().unwrap().instances.clone())
    }

    fn plan(desired: &DesiredState, observed: &Self::Observed) -> KindPlan<String> {
        KindPlan::new(
            desired
                .nodes
                .iter()
                .map(|node| {
                    let id = ResourceId::new(Kind::Instance, &node.name);
                    if observed.contains(&node.name) {
                        ResourcePlan::in_sync(id)
                    } else {
                        ResourcePlan::act(
                            id,
                            vec![PlannedAction::new(node.name.clone(), "create", "not found")],
                        )
                    }
                })
                .collect(),
        )
    }

    async fn apply(&self, name: &String) -> Result<(), ReconcileError> {
        let mut world = self.0.lock().unwrap();
        world.writes += 1;
        world.instances.insert(name.clone());
        Ok(())
    }
}

const CLUSTER: &str = "[cluster]\nname = \"test\"\n";

const CLUSTER_WITH_NODE: &str = r#"[cluster]
name = "test"
region = "eu-west-1"
[network]
vpc_id = "vpc-0a1b2c3d"
subnet_id = "subnet-0a1b2c3d"
[[nodes]]
name = "alpha"
instance_type = "t2.micro"
ami = "ami-1e749f67"
roles = ["mesos-agent"]
[services.mesos-agent]
"#;

struct Harness {
    dir: tempfile::TempDir,
    world: SharedWorld,
    shared: Arc<Shared>,
    engine: Engine,
    registry: Registry,
    shutdown: CancellationToken,
}

impl Harness {
    fn new(cluster: &str) -> Self {
        Self::with_jitter(cluster, || 1.0)
    }

    fn with_jitter(cluster: &str, jitter: impl FnMut() -> f64 + Send + 'static) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("desired/apps")).unwrap();
        std::fs::write(dir.path().join("desired/cluster.toml"), cluster).unwrap();
        let world = SharedWorld::default();
        let mut registry = Registry::default();
        registry.register(FakeApps(Arc::clone(&world)));
        registry.register(FakeInstances(Arc::clone(&world)));
        let shared = Arc::new(Shared::new(Metrics::new().unwrap()));
        let shutdown = CancellationToken::new();
        let audit = Arc::new(AuditLog::open(&dir.path().join("state")).unwrap());
        let mut settings = EngineSettings::new(dir.path().join("desired"), Duration::from_secs(30));
        settings.action_deadline = Duration::from_secs(10);
        let engine = Engine::new(
            settings,
            registry.clone(),
            Arc::clone(&shared),
            Some(audit),
            shutdown.clone(),
        )
        .with_jitter(jitter);
        Self {
            dir,
            world,
            shared,
            engine,
            registry,
            shutdown,
        }
    }

    fn write_app(&self, file: &str, id: &str, instances: u32) {
        self.write_app_json(
            file,
            &format!(r#"{{"id": "{id}", "cmd": "sleep 1000", "instances": {instances}}}"#),
        );
    }

    fn write_app_json(&self, file: &str, json: &str) {
        std::fs::write(self.dir.path().join("desired/apps").join(file), json).unwrap();
    }

    fn remove_app(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join("desired/apps").join(file)).unwrap();
    }

    fn write_cluster(&self, text: &str) {
        std::fs::write(self.dir.path().join("desired/cluster.toml"), text).unwrap();
    }

    async fn cycle(&mut self) -> converged::engine::CycleReport {
        self.engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
            .await
    }

    async fn operator_cycle(
        &mut self,
        allow_mass_deletion: bool,
    ) -> converged::engine::CycleReport {
        self.engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Operator {
                allow_mass_deletion,
            }))
            .await
    }

    /// Makes every apply of `name` fail with `class` until cleared.
    fn fail_apply(&self, name: &str, class: ErrorClass) {
        self.world
            .lock()
            .unwrap()
            .fail_apply
            .insert(name.to_owned(), class);
    }

    fn writes(&self) -> u32 {
        self.world.lock().unwrap().writes
    }

    fn resource(&self, kind: Kind, name: &str) -> ResourceStatus {
        self.shared
            .snapshot()
            .resources
            .into_iter()
            .find(|r| r.kind == kind.as_str() && r.name == name)
            .unwrap_or_else(|| panic!("no {kind}/{name} in /status"))
    }

    /// The plan `GET /v1/plan` of a daemon running this engine answers now.
    async fn daemon_plan(&self) -> PlanReport {
        let view = DaemonView {
            shared: Arc::clone(&self.shared),
            memory: self.engine.live_memory(),
        };
        Planner::new(self.registry.clone(), self.dir.path().join("desired"))
            .of_daemon(view)
            .plan()
            .await
            .unwrap()
    }

    fn app(&self, name: &str) -> ResourceStatus {
        self.resource(Kind::MarathonApp, name)
    }

    fn metric(&self, line_prefix: &str) -> f64 {
        let text = self.shared.metrics.render();
        text.lines()
            .find(|line| line.starts_with(line_prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no metric `{line_prefix}` in:\n{text}"))
    }
}

#[tokio::test(start_paused = true)]
async fn converges_from_empty_then_a_second_cycle_plans_and_applies_nothing() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 2);
    h.write_app("b.json", "/b/c", 1);
    let first = h.cycle().await;
    assert_eq!(first.applied, 2);
    assert_eq!(h.app("/a").condition, Condition::Converging);
    assert_eq!(h.app("/a").last_action.as_ref().unwrap().verb, "create");
    assert_eq!(h.world.lock().unwrap().apps.get("/a"), Some(&2));

    let second = h.cycle().await;
    assert_eq!(second.applied, 0);
    assert_eq!(h.writes(), 2, "a converged world sees no writes");
    assert_eq!(h.app("/a").condition, Condition::InSync);
    assert_eq!(h.app("/b/c").condition, Condition::InSync);
    assert_eq!(
        h.metric("converged_resources{condition=\"in_sync\",kind=\"marathon_app\"}"),
        2.0
    );
    assert_eq!(
        h.metric(
            "converged_actions_total{action=\"create\",kind=\"marathon_app\",result=\"success\"}"
        ),
        2.0
    );
    assert!(h.shared.snapshot().ready);

    let audit = std::fs::read_to_string(h.dir.path().join("state/audit.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        4,
        "one attempt and one outcome per action:\n{audit}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "outcome" && e["result"] == "succeeded")
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_resource_does_not_stop_unrelated_ones() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.write_app("b.json", "/b", 1);
    h.fail_apply("/a", ErrorClass::Transient);
    let report = h.cycle().await;
    assert_eq!((report.applied, report.failed), (1, 1));
    let failed = h.app("/a");
    assert_eq!(failed.condition, Condition::Failed);
    assert_eq!(failed.attempts, 1);
    assert!(failed.next_retry.is_some());
    assert_eq!(
        failed.last_error.as_ref().unwrap().class,
        ErrorClass::Transient
    );
    assert_eq!(h.app("/b").condition, Condition::Converging);
    h.cycle().await;
    assert_eq!(h.app("/b").condition, Condition::InSync);
}

/// Cycles every 100 ms for `span` and returns the offsets (ms) at which `/a` was attempted.
async fn attempt_offsets(h: &mut Harness, span: Duration) -> Vec<u128> {
    let start = Instant::now();
    while start.elapsed() < span {
        h.cycle().await;
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let world = h.world.lock().unwrap();
    world
        .attempts_at
        .iter()
        .filter(|(name, _)| name == "/a")
        .map(|(_, at)| at.duration_since(start).as_millis())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_with_full_jitter_and_resets_after_success() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.fail_apply("/a", ErrorClass::Transient);
    let offsets = attempt_offsets(&mut h, Duration::from_millis(15_500)).await;
    assert_eq!(
        offsets,
        vec![0, 1000, 3000, 7000, 15000],
        "ceiling 1 s, 2 s, 4 s, 8 s with the top jitter sample"
    );
    assert_eq!(h.app("/a").attempts, 5);

    h.world.lock().unwrap().fail_apply.clear();
    tokio::time::advance(Duration::from_secs(16)).await;
    h.cycle().await;
    assert_eq!(h.app("/a").attempts, 0, "a success resets the count");
    assert_eq!(h.app("/a").condition, Condition::Converging);

    let mut half = Harness::with_jitter(CLUSTER, || 0.5);
    half.write_app("a.json", "/a", 1);
    half.fail_apply("/a", ErrorClass::Transient);
    let offsets = attempt_offsets(&mut half, Duration::from_millis(4_000)).await;
    assert_eq!(
        offsets,
        vec![0, 500, 1500, 3500],
        "the jitter sample scales the delay"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_at_five_minutes() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.fail_apply("/a", ErrorClass::Transient);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2_400) {
        h.cycle().await;
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    let times: Vec<Instant> = h
        .world
        .lock()
        .unwrap()
        .attempts_at
        .iter()
        .map(|(_, at)| *at)
        .collect();
    let gaps: Vec<u64> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs())
        .collect();
    let capped: Vec<u64> = gaps.iter().copied().filter(|gap| *gap >= 280).collect();
    assert!(capped.len() >= 3, "{gaps:?}");
    assert!(
        capped.iter().all(|gap| (300..=305).contains(gap)),
        "the ceiling stops at 300 s: {gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resource_waits_blocked_until_its_dependency_is_ready() {
    let mut h = Harness::new(CLUSTER_WITH_NODE);
    h.write_app_json(
        "a.json",
        r#"{"id": "/a", "cmd": "x", "labels": {"needs": "alpha"}}"#,
    );
    h.write_app("b.json", "/b", 1);
    h.cycle().await;
    let blocked = h.app("/a");
    assert_eq!(blocked.condition, Condition::Blocked);
    assert_eq!(
        blocked.blocked_on,
        Some(ResourceId::new(Kind::Instance, "alpha"))
    );
    assert!(
        blocked.reason.contains("instance/alpha"),
        "{}",
        blocked.reason
    );
    assert!(
        !h.world.lock().unwrap().apps.contains_key("/a"),
        "a blocked resource is not acted on"
    );
    assert_eq!(
        h.app("/b").condition,
        Condition::Converging,
        "unrelated resources go ahead"
    );
    assert_eq!(
        h.resource(Kind::Instance, "alpha").condition,
        Condition::Converging
    );

    h.cycle().await;
    assert_eq!(
        h.resource(Kind::Instance, "alpha").condition,
        Condition::InSync
    );
    assert_eq!(h.app("/a").condition, Condition::Converging);
    assert!(h.world.lock().unwrap().apps.contains_key("/a"));
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_was_not_observed_blocks_with_a_reason() {
    let mut h = Harness::new(CLUSTER);
    h.write_app_json(
        "a.json",
        r#"{"id": "/a", "cmd": "x", "labels": {"needs": "ghost"}}"#,
    );
    h.cycle().await;
    let blocked = h.app("/a");
    assert_eq!(blocked.condition, Condition::Blocked);
    assert!(
        blocked.reason.contains("not observed"),
        "{}",
        blocked.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_deletion_waits_for_a_dependency_that_stands_but_not_for_one_that_is_gone() {
    let mut h = Harness::new(&format!(
        "{CLUSTER_WITH_NODE}[kinds.marathon_app]\nprune = true\n"
    ));
    for name in ["/on-alpha", "/on-ghost"] {
        h.world.lock().unwrap().apps.insert(name.into(), 1);
    }
    for name in ["a", "b"] {
        h.write_app(&format!("{name}.json"), &format!("/{name}"), 1);
    }
    h.cycle().await;
    let apps = h.world.lock().unwrap().apps.clone();
    assert!(
        !apps.contains_key("/on-ghost"),
        "instance/ghost is not reported by its observed kind: nothing to wait for"
    );
    assert!(apps.contains_key("/on-alpha"));
    let waiting = h.app("/on-alpha");
    assert_eq!(waiting.condition, Condition::Blocked);
    assert!(
        waiting.reason.contains("instance/alpha to be ready"),
        "{}",
        waiting.reason
    );

    h.cycle().await;
    assert!(!h.world.lock().unwrap().apps.contains_key("/on-alpha"));
}

#[tokio::test(start_paused = true)]
async fn an_invalid_edit_keeps_the_last_good_state_in_force() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.cycle().await;
    h.cycle().await;
    let good = h
        .shared
        .snapshot()
        .desired_state
        .revision_in_force
        .clone()
        .unwrap();

    h.write_app("a.json", "/a", 5);
    h.write_app_json("broken.json", "{\n  \"id\": \"/broken\",\n  \"cmd\": \n}");
    let report = h.cycle().await;
    assert_eq!(report.applied, 0, "nothing new is acted on");
    assert_eq!(h.world.lock().unwrap().apps.get("/a"), Some(&1));
    let document = h.shared.snapshot();
    assert!(!document.desired_state.valid);
    assert_eq!(
        document.desired_state.revision_in_force.as_deref(),
        Some(good.as_str())
    );
    let problem = &document.desired_state.errors[0];
    assert_eq!(problem.file, "apps/broken.json");
    assert_eq!(problem.line, Some(4));
    assert_eq!(h.metric("converged_desired_state_valid"), 0.0);

    h.remove_app("broken.json");
    h.cycle().await;
    assert_eq!(
        h.world.lock().unwrap().apps.get("/a"),
        Some(&5),
        "fixing the file resumes"
    );
    assert_eq!(h.metric("converged_desired_state_valid"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn an_empty_or_missing_folder_never_deletes() {
    let prune = format!("{CLUSTER}[kinds.marathon_app]\nprune = true\n");
    let mut h = Harness::new(&prune);
    h.write_app("a.json", "/a", 1);
    h.cycle().await;
    std::fs::remove_dir_all(h.dir.path().join("desired")).unwrap();
    h.cycle().await;
    assert!(h.world.lock().unwrap().apps.contains_key("/a"));
    assert!(!h.shared.snapshot().desired_state.valid);

    std::fs::create_dir_all(h.dir.path().join("desired/apps")).unwrap();
    h.write_cluster(&prune);
    h.cycle().await;
    assert!(
        h.world.lock().unwrap().apps.contains_key("/a"),
        "an empty apps folder is a mass deletion: refused"
    );
    assert!(
        h.app("/a").reason.contains("deletion refused"),
        "{}",
        h.app("/a").reason
    );
}

#[tokio::test(start_paused = true)]
async fn prune_is_off_by_default_and_bounded_by_the_budget_when_on() {
    let mut h = Harness::new(CLUSTER);
    for name in ["a", "b", "c", "d"] {
        h.write_app(&format!("{name}.json"), &format!("/{name}"), 1);
    }
    h.world.lock().unwrap().apps.insert("/foreign/x".into(), 1);
    h.cycle().await;
    h.remove_app("d.json");
    h.cycle().await;
    assert!(h.world.lock().unwrap().apps.contains_key("/d"));
    let kept = h.app("/d");
    assert_eq!(kept.condition, Condition::Drifted);
    assert!(kept.reason.contains("prune is off"), "{}", kept.reason);
    assert_eq!(h.app("/foreign/x").condition, Condition::Unmanaged);

    h.write_cluster(&format!("{CLUSTER}[kinds.marathon_app]\nprune = true\n"));
    h.cycle().await;
    assert!(
        !h.world.lock().unwrap().apps.contains_key("/d"),
        "one of four is within the 50% budget"
    );

    for name in ["a", "b", "c"] {
        h.remove_app(&format!("{name}.json"));
    }
    h.cycle().await;
    assert_eq!(
        h.world.lock().unwrap().apps.len(),
        4,
        "three of three managed is beyond the budget"
    );
    assert!(h.app("/a").reason.contains("deletion refused"));
    assert_eq!(
        h.app("/a").condition,
        Condition::Failed,
        "a refusal needs an operator"
    );
    assert!(h.world.lock().unwrap().apps.contains_key("/foreign/x"));

    h.operator_cycle(true).await;
    let apps = h.world.lock().unwrap().apps.clone();
    assert_eq!(
        apps.keys().collect::<Vec<_>>(),
        vec!["/foreign/x"],
        "the override lets it through; foreign apps stay"
    );
}

#[tokio::test(start_paused = true)]
async fn observe_mode_and_pause_report_drift_and_never_apply() {
    let mut h = Harness::new(&format!(
        "{CLUSTER}[kinds.marathon_app]\nmode = \"observe\"\n"
    ));
    h.write_app("a.json", "/a", 1);
    h.cycle().await;
    assert_eq!(h.writes(), 0);
    let drifted = h.app("/a");
    assert_eq!(drifted.condition, Condition::Drifted);
    assert!(
        drifted.reason.starts_with("observe mode: would create"),
        "{}",
        drifted.reason
    );
    assert_eq!(
        h.shared
            .snapshot()
            .kinds
            .iter()
            .find(|k| k.kind == "marathon_app")
            .unwrap()
            .mode,
        "observe"
    );

    h.write_cluster(&format!("{CLUSTER}mode = \"observe\"\n"));
    h.cycle().await;
    assert_eq!(
        h.writes(),
        0,
        "a cluster-wide observe mode applies to every kind"
    );

    h.write_cluster(CLUSTER);
    h.shared.set_paused(true);
    h.cycle().await;
    assert_eq!(h.writes(), 0);
    assert!(
        h.app("/a").reason.starts_with("paused"),
        "{}",
        h.app("/a").reason
    );
    assert_eq!(h.metric("converged_paused"), 1.0);
    h.shared.set_paused(false);
    h.cycle().await;
    assert_eq!(h.writes(), 1);
}

#[tokio::test(start_paused = true)]
async fn drift_after_sync_is_counted() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.cycle().await;
    h.cycle().await;
    h.world.lock().unwrap().apps.insert("/a".into(), 3);
    h.cycle().await;
    assert_eq!(
        h.metric("converged_drift_detected_total{kind=\"marathon_app\"}"),
        1.0
    );
    assert_eq!(h.world.lock().unwrap().apps.get("/a"), Some(&1), "restored");
}

#[tokio::test(start_paused = true)]
async fn invalid_errors_wait_for_a_desired_change_and_unsafe_ones_for_an_operator() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.write_app("b.json", "/b", 1);
    {
        let mut world = h.world.lock().unwrap();
        world.fail_apply.insert("/a".into(), ErrorClass::Invalid);
        world.fail_apply.insert("/b".into(), ErrorClass::Unsafe);
    }
    h.cycle().await;
    tokio::time::advance(Duration::from_secs(600)).await;
    h.cycle().await;
    let attempts = |h: &Harness, name: &str| {
        h.world
            .lock()
            .unwrap()
            .attempts_at
            .iter()
            .filter(|(n, _)| n == name)
            .count()
    };
    assert_eq!(
        (attempts(&h, "/a"), attempts(&h, "/b")),
        (1, 1),
        "held resources are not retried on a timer"
    );
    assert!(
        h.app("/a").reason.contains("invalid"),
        "{}",
        h.app("/a").reason
    );
    assert!(h.app("/a").next_retry.is_none());

    h.write_app("a.json", "/a", 2);
    h.cycle().await;
    assert_eq!(
        (attempts(&h, "/a"), attempts(&h, "/b")),
        (2, 1),
        "a desired-state change releases invalid holds only"
    );

    h.operator_cycle(false).await;
    assert_eq!(
        (attempts(&h, "/a"), attempts(&h, "/b")),
        (3, 2),
        "an operator's reconcile releases every hold"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_observation_isolates_its_kind() {
    let mut h = Harness::new(CLUSTER_WITH_NODE);
    h.write_app("a.json", "/a", 1);
    h.cycle().await;
    h.cycle().await;
    h.world.lock().unwrap().fail_observe = true;
    h.world.lock().unwrap().instances.clear();
    h.cycle().await;
    assert_eq!(h.app("/a").condition, Condition::Failed);
    assert!(h.app("/a").reason.contains("connection refused"));
    assert_eq!(
        h.resource(Kind::Instance, "alpha").condition,
        Condition::Converging,
        "the other kind went on"
    );
    let document = h.shared.snapshot();
    let kind = document
        .kinds
        .iter()
        .find(|k| k.kind == "marathon_app")
        .unwrap();
    assert!(kind.observe_error.is_some() && kind.next_retry.is_some());
    assert_eq!(
        h.metric("converged_reconcile_total{kind=\"marathon_app\",result=\"error\"}"),
        1.0
    );

    h.world.lock().unwrap().fail_observe = false;
    tokio::time::advance(Duration::from_secs(2)).await;
    h.cycle().await;
    assert_eq!(h.app("/a").condition, Condition::InSync);
}

#[tokio::test(start_paused = true)]
async fn an_action_past_its_deadline_fails_as_transient() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.world.lock().unwrap().apply_delay = Some(Duration::from_secs(60));
    h.cycle().await;
    let failed = h.app("/a");
    assert_eq!(failed.condition, Condition::Failed);
    assert_eq!(
        failed.last_error.as_ref().unwrap().class,
        ErrorClass::Transient
    );
    assert!(
        failed.reason.contains("did not finish within 10 s"),
        "{}",
        failed.reason
    );
}

#[tokio::test(start_paused = true)]
async fn after_shutdown_no_new_action_starts() {
    let mut h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.shutdown.cancel();
    h.cycle().await;
    assert_eq!(h.writes(), 0);
    assert!(
        h.app("/a").reason.contains("shutting down"),
        "{}",
        h.app("/a").reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_triggers_runs_one_cycle() {
    let h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    let (triggers, receiver) = mpsc::channel(64);
    let shared = Arc::clone(&h.shared);
    let shutdown = h.shutdown.clone();
    let engine = h.engine;
    let task = tokio::spawn(engine.run(receiver));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let cycles = || shared.metrics.cycles_total.get();
    assert_eq!(cycles(), 1, "the first cycle runs at start");

    for _ in 0..20 {
        triggers.send(Trigger::DesiredStateChanged).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    triggers.send(Trigger::Signal).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cycles(),
        2,
        "twenty-one triggers within the coalescing window are one cycle"
    );

    tokio::time::sleep(Duration::from_secs(34)).await;
    assert_eq!(cycles(), 3, "the resync timer fires within 30 s ± 10%");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .unwrap()
        .unwrap();
}

/// The engine's run loop, spawned; the trigger sender keeps the loop's trigger source open and
/// the folder keeps the desired state on disk while the loop runs.
struct RunningLoop {
    task: tokio::task::JoinHandle<()>,
    _triggers: mpsc::Sender<Trigger>,
    _folder: tempfile::TempDir,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl RunningLoop {
    fn spawn(h: Harness) -> Self {
        let (triggers, receiver) = mpsc::channel(8);
        Self {
            task: tokio::spawn(h.engine.run(receiver)),
            _triggers: triggers,
            _folder: h.dir,
            shared: h.shared,
            shutdown: h.shutdown,
        }
    }

    fn cycles(&self) -> u64 {
        self.shared.metrics.cycles_total.get()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_cycle_that_acted_is_followed_up_before_the_resync() {
    let h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    let running = RunningLoop::spawn(h);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(running.cycles(), 1, "the first cycle creates /a");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        running.cycles(),
        2,
        "a follow-up 1 s later observes the effect"
    );
    let status = running.shared.snapshot();
    assert_eq!(
        status.last_cycle.map(|cycle| cycle.trigger),
        Some("follow_up")
    );
    let app = status
        .resources
        .iter()
        .find(|r| r.name == "/a")
        .expect("/a in /status");
    assert_eq!(app.condition, Condition::InSync);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        running.cycles(),
        2,
        "nothing converging: the next cycle is the resync"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_action_is_retried_when_its_backoff_ends_not_at_the_resync() {
    let h = Harness::new(CLUSTER);
    h.write_app("a.json", "/a", 1);
    h.fail_apply("/a", ErrorClass::Transient);
    let world = Arc::clone(&h.world);
    let start = Instant::now();
    let running = RunningLoop::spawn(h);
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    let offsets: Vec<u128> = world
        .lock()
        .unwrap()
        .attempts_at
        .iter()
        .map(|(_, at)| at.duration_since(start).as_millis())
        .collect();
    assert_eq!(
        offsets,
        vec![0, 1000, 3000, 7000],
        "each retry runs when its backoff (1 s, 2 s, 4 s) ends"
    );
    running.stop().await;
}

/// Property: over generated worlds (edits, removals and hand changes, foreign apps, failures of
/// every class, dependencies, observe mode, prune and budgets, pause, operator reconciles), the
/// plan the daemon answers before a cycle is what the cycle does. Every resource's line has the
/// condition and reason `/status` shows after it; one the plan applies shows that, or has
/// failed that very action.
#[tokio::test(start_paused = true)]
async fn the_daemons_plan_is_what_its_next_cycle_does() {
    let mut h = Harness::new(CLUSTER);
    let classes = [
        ErrorClass::Transient,
        ErrorClass::Throttled,
        ErrorClass::Invalid,
        ErrorClass::Unsafe,
    ];
    let policies = [
        "",
        "[kinds.marathon_app]\nmode = \"observe\"\n",
        "[kinds.marathon_app]\nprune = true\n",
        "[kinds.marathon_app]\nprune = true\nmax_delete_fraction = 0.1\n",
    ];
    let mut sequence = converged_testkit::Sequence::new(0x5eed_0fc0_ffee);
    let mut pick = |n: usize| sequence.pick(n);
    let mut seen = BTreeSet::new();
    for round in 0..200 {
        let app = ["a", "b", "c", "d", "e", "on-alpha"][pick(6)];
        let id = format!("/{app}");
        let change = match pick(10) {
            0 | 1 => {
                let instances = 1 + pick(3) as u32;
                // `/on-alpha` needs node alpha's instance, which only some worlds have.
                let labels = if app == "on-alpha" {
                    r#", "labels": {"needs": "alpha"}"#
                } else {
                    ""
                };
                h.write_app_json(
                    &format!("{app}.json"),
                    &format!(
                        r#"{{"id": "{id}", "cmd": "sleep 1000", "instances": {instances}{labels}}}"#
                    ),
                );
                format!("{app}.json: {instances} instance(s)")
            }
            2 => {
                let _ = std::fs::remove_file(h.dir.path().join(format!("desired/apps/{app}.json")));
                format!("removed {app}.json")
            }
            3 => {
                h.world.lock().unwrap().apps.insert(id.clone(), 9);
                format!("{id} changed by hand")
            }
            4 => {
                h.world
                    .lock()
                    .unwrap()
                    .apps
                    .insert(format!("/foreign-{round}"), 1);
                "a foreign app".to_owned()
            }
            5 => {
                let class = classes[pick(classes.len())];
                h.fail_apply(&id, class);
                format!("{id} fails {class}")
            }
            6 => {
                h.world.lock().unwrap().fail_apply.clear();
                "failures cleared".to_owned()
            }
            7 => {
                let policy = policies[pick(policies.len())];
                let node = if pick(2) == 0 {
                    CLUSTER
                } else {
                    CLUSTER_WITH_NODE
                };
                h.write_cluster(&format!("{node}{policy}"));
                format!(
                    "cluster {policy:?}, with node: {}",
                    node == CLUSTER_WITH_NODE
                )
            }
            8 => {
                let paused = !h.shared.is_paused();
                h.shared.set_paused(paused);
                format!("paused = {paused}")
            }
            _ => {
                tokio::time::advance(Duration::from_secs(1 + pick(400) as u64)).await;
                "time passed".to_owned()
            }
        };
        let plan = h.daemon_plan().await;
        h.cycle().await;
        let text = plan.render_text();
        let status = h.shared.snapshot().resources;
        assert_eq!(
            status.len(),
            plan.kinds.iter().map(|k| k.resources.len()).sum::<usize>(),
            "round {round} ({change}): {status:#?}\n{text}"
        );
        for resource in &status {
            let name = format!("{}/{}", resource.kind, resource.name);
            let planned = plan
                .resource(&name)
                .unwrap_or_else(|| panic!("round {round} ({change}): {name} not planned\n{text}"));
            let failed_its_action = planned.decision == "apply"
                && resource.condition == Condition::Failed
                && resource.last_action.as_ref().is_some_and(|last| {
                    last.result == "failed" && planned.actions.iter().any(|a| a.verb == last.verb)
                });
            if !failed_its_action {
                assert_eq!(
                    (planned.condition.as_str(), planned.reason.as_str()),
                    (resource.condition.as_str(), resource.reason.as_str()),
                    "round {round} ({change}): {name}\n{text}"
                );
            }
            seen.insert(planned.decision.clone());
        }
    }
    let every = [
        "in_sync",
        "apply",
        "blocked",
        "drifted",
        "held",
        "refused",
        "unmanaged",
    ];
    for decision in every {
        assert!(
            seen.contains(decision),
            "never decided {decision}: {seen:?}"
        );
    }
}
