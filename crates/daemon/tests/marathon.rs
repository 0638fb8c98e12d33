//! The marathon_app kind end to end: the engine and the real HTTP client against simulated
//! Mesos and Marathon processes (`converged-sim`), with the example apps.

use converged_core::Classified;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use converged::audit::AuditLog;
use converged::engine::{CycleRequest, Engine, EngineSettings, Trigger};
use converged::metrics::Metrics;
use converged::planner::{DaemonView, PlanReport, Planner};
use converged::status::Shared;
use converged_core::condition::{Condition, ResourceStatus};
use converged_core::reconciler::Registry;
use converged_core::secret::SecretRef;
use converged_hosts::AllowedNetworks;
use converged_mesos::marathon::api::{AppBody, HttpMarathon, MarathonApi, MarathonEndpoint};
use converged_mesos::marathon::reconciler::MarathonApps;
use converged_testkit::{EXAMPLE_MARATHON_ROLES, SimProcess, copy_dir};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WRITES: [&str; 4] = [
    "create_app",
    "replace_app",
    "delete_app",
    "rollback_deployment",
];

/// One Mesos master, three agents shaped like the example nodes, one Marathon.
struct Cluster {
    _master: SimProcess,
    _agents: Vec<SimProcess>,
    marathon: SimProcess,
}

impl Cluster {
    fn start(profile: &str, extra: &[&str]) -> Self {
        let master = SimProcess::mesos_master("127.0.0.1:0", &["--admin"]);
        let agents = [
            (
                "services",
                "cpus:4;mem:8192;disk:20000;ports(slave_public):[80-80,8081-8081];ports(*):[31000-32000]",
            ),
            ("staging", "cpus:1;mem:497;disk:20000;ports:[31000-32000]"),
            (
                "production",
                "cpus:1;mem:497;disk:20000;ports:[31000-32000]",
            ),
        ]
        .iter()
        .map(|(node, resources)| {
            SimProcess::mesos_agent(
                "127.0.0.1:0",
                &[
                    "--master",
                    &master.url,
                    "--hostname",
                    node,
                    "--resources",
                    resources,
                    "--attributes",
                    &format!("env:{node}"),
                    "--heartbeat-interval",
                    "200ms",
                ],
            )
        })
        .collect();
        let mut args = vec![
            "--master",
            master.url.as_str(),
            "--profile",
            profile,
            "--staging-delay",
            "100ms",
            "--time-scale",
            "0.01",
            "--tick",
            "50ms",
            "--admin",
        ];
        args.extend_from_slice(EXAMPLE_MARATHON_ROLES);
        args.extend_from_slice(extra);
        let marathon = SimProcess::marathon("127.0.0.1:0", &args);
        Self {
            _master: master,
            _agents: agents,
            marathon,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.marathon.url)
    }
}

/// The log lines of every test in this binary. One global subscriber: a per-test scoped one
/// races with the callsite interest cache when tests run in parallel.
fn captured_logs() -> &'static CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .init();
        logs
    })
}

/// Collects log lines in a buffer.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct Harness {
    cluster: Cluster,
    dir: tempfile::TempDir,
    metrics: Metrics,
    shared: Arc<Shared>,
    engine: Engine,
    registry: Registry,
    http: reqwest::Client,
}

/// The values written into the secret files the example apps refer to.
const SECRETS: [(&str, &str); 3] = [
    ("env:GITLAB_ROOT_PASSWORD", "root-pw-6f1c9a"),
    ("env:GITLAB_RUNNER_TOKEN", "runner-token-2b7e41"),
    (
        "file:/etc/converged/secrets/registry-password",
        "registry-pw-93d0c5",
    ),
];

impl Harness {
    fn new(profile: &str) -> Self {
        Self::with(profile, &[], None, Duration::from_secs(120))
    }

    fn with(
        profile: &str,
        marathon_extra: &[&str],
        credentials: Option<&str>,
        deadline: Duration,
    ) -> Self {
        captured_logs();
        let cluster = Cluster::start(profile, marathon_extra);
        let dir = tempfile::tempdir().unwrap();
        let desired = dir.path().join("desired");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state"),
            &desired,
        );
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        for (index, (reference, value)) in SECRETS.iter().enumerate() {
            let file = dir.path().join(format!("secrets/{index}"));
            std::fs::write(&file, value).unwrap();
            for app in std::fs::read_dir(desired.join("apps")).unwrap() {
                let path = app.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(
                    &path,
                    text.replace(reference, &format!("file:{}", file.display())),
                )
                .unwrap();
            }
        }
        let credentials_file = credentials.map(|text| {
            let path = dir.path().join("marathon-credentials");
            std::fs::write(&path, text).unwrap();
            path
        });
        let metrics = Metrics::new().unwrap();
        let endpoint = MarathonEndpoint {
            urls: vec![cluster.marathon.url.clone()],
            credentials: credentials_file.map(|p| SecretRef::File(p.display().to_string())),
            allowed_networks: AllowedNetworks::new(vec!["127.0.0.0/8".parse().unwrap()]),
        };
        let client = HttpMarathon::new(endpoint, Arc::new(metrics.clone())).unwrap();
        let mut registry = Registry::default();
        registry.register(MarathonApps::new(Arc::new(client), deadline));
        let shared = Arc::new(Shared::new(metrics.clone()));
        let audit = Arc::new(AuditLog::open(&dir.path().join("state")).unwrap());
        let engine = Engine::new(
            EngineSettings::new(desired, Duration::from_secs(30)),
            registry.clone(),
            Arc::clone(&shared),
            Some(audit),
            CancellationToken::new(),
        );
        Self {
            cluster,
            dir,
            metrics,
            shared,
            engine,
            registry,
            http: reqwest::Client::new(),
        }
    }

    fn desired(&self) -> PathBuf {
        self.dir.path().join("desired")
    }

    /// The plan `GET /v1/plan` of a daemon running this engine answers.
    async fn daemon_plan(&self) -> PlanReport {
        let view = DaemonView {
            shared: Arc::clone(&self.shared),
            memory: self.engine.live_memory(),
        };
        Planner::new(self.registry.clone(), self.desired())
            .of_daemon(view)
            .plan()
            .await
            .unwrap()
    }

    /// The daemon's plan once the world holds still: no deployment runs and two plans half a
    /// second apart agree (tasks that are still starting change what a plan says).
    async fn settled_daemon_plan(&self) -> PlanReport {
        let start = Instant::now();
        loop {
            self.wait_for_no_deployments().await;
            let first = self.daemon_plan().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let second = self.daemon_plan().await;
            if decisions(&first) == decisions(&second) {
                return second;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the world never held still: {}",
                second.render_text()
            );
        }
    }

    fn edit_app(&self, file: &str, edit: impl FnOnce(&mut Value)) {
        let path = self.desired().join("apps").join(file);
        let mut app: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut app);
        std::fs::write(&path, serde_json::to_string_pretty(&app).unwrap()).unwrap();
    }

    /// Rewrites `cluster.toml` as the example's, with `kinds` replacing its kind policies.
    fn set_kind_policies(&self, kinds: &str) {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state/cluster.toml");
        let cluster = std::fs::read_to_string(example).unwrap();
        let (head, _) = cluster
            .split_once("[kinds.marathon_app]")
            .expect("the example sets a policy");
        std::fs::write(
            self.desired().join("cluster.toml"),
            format!("{head}{kinds}"),
        )
        .unwrap();
    }

    fn writes(&self) -> u64 {
        WRITES
            .iter()
            .flat_map(|op| ["success", "error"].map(|outcome| (op, outcome)))
            .map(|(op, outcome)| {
                self.metrics
                    .api_requests_total
                    .with_label_values(&["marathon", op, outcome])
                    .get()
            })
            .sum()
    }

    async fn cycle(&mut self) {
        self.engine
            .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
            .await;
    }

    fn resources(&self) -> Vec<ResourceStatus> {
        self.shared.snapshot().resources
    }

    fn app(&self, id: &str) -> ResourceStatus {
        self.resources()
            .into_iter()
            .find(|r| r.name == id)
            .unwrap_or_else(|| panic!("no {id} in {:#?}", self.resources()))
    }

    /// Cycles until `done` holds for the resources, or panics with the status.
    async fn cycle_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[ResourceStatus]) -> bool,
    ) {
        let start = Instant::now();
        loop {
            self.cycle().await;
            if done(&self.resources()) {
                return;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "not {what} after {timeout:?}: {:#?}\nMarathon's queue: {}\nits tasks: {}",
                    self.resources(),
                    self.raw("/v2/queue").await,
                    self.raw("/v2/tasks").await
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn converge(&mut self) {
        self.cycle_until("all in sync", Duration::from_secs(90), |resources| {
            !resources.is_empty() && resources.iter().all(|r| r.condition == Condition::InSync)
        })
        .await;
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(self.cluster.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// What Marathon answers at `path`, as text, for a failure message.
    async fn raw(&self, path: &str) -> String {
        match self.http.get(self.cluster.url(path)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(err) => err.to_string(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::StatusCode {
        let mut request = self.http.request(method, self.cluster.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status()
    }

    async fn wait_for_no_deployments(&self) {
        let start = Instant::now();
        while self
            .get("/v2/deployments")
            .await
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "deployments never finished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn converge_then_nothing_to_do(profile: &str) {
    let mut h = Harness::new(profile);
    h.cycle().await;
    assert_eq!(h.writes(), 6, "one create per app file");
    h.converge().await;
    let after = h.writes();
    assert_eq!(
        after, 6,
        "converging after the creates needs no other write"
    );
    for _ in 0..3 {
        h.cycle().await;
    }
    assert_eq!(h.writes(), after, "a converged world sees no writes");
    let plan = Planner::new(h.registry.clone(), h.desired())
        .plan()
        .await
        .unwrap();
    assert_eq!(plan.exit_code(), 0, "{}", plan.render_text());
    let gitlab = h.get("/v2/apps/gitlab").await;
    assert_eq!(gitlab["app"]["labels"]["converged.cluster"], "clickcount");
    assert_eq!(
        gitlab["app"]["env"]["GITLAB_ROOT_PASSWORD"], SECRETS[0].1,
        "the secret reached Marathon"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_apps_converge_and_stay_put_on_marathon_1_10() {
    converge_then_nothing_to_do("1.10").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_apps_converge_and_stay_put_on_marathon_1_1() {
    converge_then_nothing_to_do("1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_scaling_is_restored_and_only_reported_in_observe_mode() {
    let mut h = Harness::new("1.10");
    h.converge().await;
    let scale = json!({"instances": 2});
    let status = h
        .send(
            reqwest::Method::PUT,
            "/v2/apps/mesos-ui",
            Some(scale.clone()),
        )
        .await;
    assert!(status.is_success(), "{status}");
    h.wait_for_no_deployments().await;
    let before = h.writes();
    h.set_kind_policies("[kinds.marathon_app]\nmode = \"observe\"\n");
    h.cycle().await;
    let drifted = h.app("/mesos-ui");
    assert_eq!(drifted.condition, Condition::Drifted);
    assert!(
        drifted.reason.starts_with("observe mode: would scale"),
        "{}",
        drifted.reason
    );
    assert_eq!(h.writes(), before, "observe mode sends nothing");

    h.set_kind_policies("");
    h.cycle().await;
    assert_eq!(h.writes(), before + 1);
    assert_eq!(h.app("/mesos-ui").last_action.unwrap().verb, "scale");
    h.converge().await;
    assert_eq!(h.get("/v2/apps/mesos-ui").await["app"]["instances"], 1);
    assert_eq!(
        h.metrics
            .drift_detected_total
            .with_label_values(&["marathon_app"])
            .get(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_removed_from_a_file_is_removed_in_marathon() {
    let mut h = Harness::new("1.10");
    h.converge().await;
    let labels = h.get("/v2/apps/click-count/staging").await["app"]["labels"].clone();
    assert!(labels.get("traefik.frontend.rule").is_some(), "{labels}");
    h.edit_app("click-count-staging.json", |app| {
        app.as_object_mut().unwrap().remove("labels");
    });
    h.converge().await;
    let labels = h.get("/v2/apps/click-count/staging").await["app"]["labels"].clone();
    assert_eq!(labels, json!({"converged.cluster": "clickcount"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_is_off_by_default_on_by_policy_and_bounded() {
    let mut h = Harness::new("1.10");
    h.converge().await;
    std::fs::remove_file(h.desired().join("apps/mesos-ui.json")).unwrap();
    h.cycle().await;
    let kept = h.app("/mesos-ui");
    assert_eq!(kept.condition, Condition::Drifted);
    assert!(kept.reason.contains("prune is off"), "{}", kept.reason);
    assert!(h.get("/v2/apps/mesos-ui").await.get("app").is_some());

    h.set_kind_policies("[kinds.marathon_app]\nprune = true\n");
    h.cycle().await;
    assert!(
        h.get("/v2/apps/mesos-ui").await.get("app").is_none(),
        "pruned"
    );

    for file in ["gitlab.json", "gitlab-runner.json", "traefik.json"] {
        std::fs::remove_file(h.desired().join("apps").join(file)).unwrap();
    }
    h.cycle().await;
    assert!(
        h.app("/gitlab").reason.contains("deletion refused"),
        "{}",
        h.app("/gitlab").reason
    );
    assert_eq!(
        h.get("/v2/apps").await["apps"].as_array().unwrap().len(),
        5,
        "three of five is over the budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_app_without_our_label_is_left_alone() {
    let mut h = Harness::new("1.10");
    let foreign =
        json!({"id": "/click-count/staging", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32});
    assert!(
        h.send(reqwest::Method::POST, "/v2/apps", Some(foreign))
            .await
            .is_success()
    );
    h.wait_for_no_deployments().await;
    h.cycle().await;
    let unmanaged = h.app("/click-count/staging");
    assert_eq!(unmanaged.condition, Condition::Unmanaged);
    assert!(
        unmanaged.reason.contains("converged.adopt"),
        "{}",
        unmanaged.reason
    );
    h.cycle_until("the others in sync", Duration::from_secs(90), |resources| {
        resources
            .iter()
            .filter(|r| r.condition == Condition::InSync)
            .count()
            == 5
    })
    .await;
    assert_eq!(
        h.get("/v2/apps/click-count/staging").await["app"]["cmd"],
        "sleep 1000",
        "untouched"
    );

    h.edit_app("click-count-staging.json", |app| {
        app["labels"]["converged.adopt"] = json!("true");
    });
    h.converge().await;
    let adopted = h.get("/v2/apps/click-count/staging").await;
    assert_eq!(adopted["app"]["labels"]["converged.cluster"], "clickcount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_deployment_is_waited_for_and_a_locked_write_is_retried() {
    let mut h = Harness::new("1.10");
    h.converge().await;
    assert!(
        h.send(reqwest::Method::POST, "/v2/apps/gitlab/restart", None)
            .await
            .is_success()
    );
    h.edit_app("gitlab.json", |app| {
        app["container"]["docker"]["image"] = json!("gitlab/gitlab-ce:8.9.0-ce.0")
    });
    h.cycle().await;
    let waiting = h.app("/gitlab");
    assert_eq!(waiting.condition, Condition::Converging, "{waiting:#?}");
    assert!(
        waiting.reason.contains("deployment") && waiting.reason.contains("step"),
        "{}",
        waiting.reason
    );
    h.converge().await;
    let image = h.get("/v2/apps/gitlab").await["app"]["container"]["docker"]["image"].clone();
    assert_eq!(image, "gitlab/gitlab-ce:8.9.0-ce.0");

    let client = HttpMarathon::new(
        MarathonEndpoint {
            urls: vec![h.cluster.marathon.url.clone()],
            credentials: None,
            allowed_networks: AllowedNetworks::default(),
        },
        Arc::new(h.metrics.clone()),
    )
    .unwrap();
    assert!(
        h.send(reqwest::Method::POST, "/v2/apps/gitlab/restart", None)
            .await
            .is_success()
    );
    let body = AppBody(h.get("/v2/apps/gitlab").await["app"].clone());
    let locked = client
        .replace_app("/gitlab", &body, true)
        .await
        .unwrap_err();
    assert!(
        locked.to_string().contains("locked by deployment"),
        "{locked}"
    );
    assert_eq!(
        locked.class(),
        converged_core::ErrorClass::Transient,
        "a lock is waited out, not given up on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_that_cannot_fit_is_reported_failed_with_a_reason() {
    let mut h = Harness::with("1.10", &[], None, Duration::from_secs(3));
    h.converge().await;
    h.edit_app("click-count-staging.json", |app| {
        app["upgradeStrategy"] = json!({"minimumHealthCapacity": 1, "maximumOverCapacity": 1});
        app["container"]["docker"]["image"] =
            json!("gitlab.clickcount.example.org:5000/xebia/click-count:1.1.0");
    });
    h.cycle_until(
        "the stuck upgrade reported",
        Duration::from_secs(30),
        |resources| {
            resources
                .iter()
                .any(|r| r.name == "/click-count/staging" && r.condition == Condition::Failed)
        },
    )
    .await;
    let failed = h.app("/click-count/staging");
    assert!(
        failed.reason.contains("past the 3 s deadline"),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains("waiting for a matching agent"),
        "{}",
        failed.reason
    );
    assert_eq!(
        h.app("/click-count/production").condition,
        Condition::InSync,
        "other apps are unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_marathon_backs_off_and_recovers() {
    let mut h = Harness::new("1.10");
    h.converge().await;
    let faults = json!({"count": 12, "status": 503});
    assert!(
        h.send(reqwest::Method::POST, "/__sim/faults", Some(faults))
            .await
            .is_success()
    );
    h.cycle().await;
    let document = h.shared.snapshot();
    let kind = document
        .kinds
        .iter()
        .find(|k| k.kind == "marathon_app")
        .unwrap();
    let error = kind.observe_error.as_ref().expect("the observation failed");
    assert!(error.message.contains("503"), "{}", error.message);
    assert!(kind.next_retry.is_some());
    assert!(
        h.resources()
            .iter()
            .all(|r| r.condition == Condition::Failed)
    );
    let failures = |h: &Harness| {
        h.metrics
            .reconcile_total
            .with_label_values(&["marathon_app", "error"])
            .get()
    };
    let first = failures(&h);
    for _ in 0..5 {
        h.cycle().await;
    }
    assert!(
        failures(&h) < first + 5,
        "cycles inside the backoff window do not hammer Marathon"
    );
    assert!(
        h.send(reqwest::Method::DELETE, "/__sim/faults", None)
            .await
            .is_success()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    h.converge().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_clear_error_that_never_prints_them() {
    let mut h = Harness::with(
        "1.10",
        &["--http-credentials", "ops:right-pass-81"],
        Some("ops:wrong-pass-42"),
        Duration::from_secs(60),
    );
    h.cycle().await;
    let document = serde_json::to_string(&h.shared.snapshot()).unwrap();
    assert!(document.contains("rejected the credentials"), "{document}");
    assert!(
        !document.contains("wrong-pass-42") && !document.contains("right-pass-81"),
        "{document}"
    );
    std::fs::write(
        h.dir.path().join("marathon-credentials"),
        "ops:right-pass-81\n",
    )
    .unwrap();
    h.engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Operator {
            allow_mass_deletion: false,
        }))
        .await;
    h.converge().await;
}

#[tokio::test]
async fn secret_values_never_reach_plans_status_audit_or_logs() {
    let logs = captured_logs();
    let mut h = Harness::new("1.10");
    let plan = Planner::new(h.registry.clone(), h.desired())
        .plan()
        .await
        .unwrap();
    let mut seen = serde_json::to_string(&plan).unwrap() + &plan.render_text();
    h.converge().await;
    h.edit_app("gitlab.json", |app| app["env"]["EXTRA"] = json!("1"));
    std::fs::write(h.dir.path().join("secrets/0"), "root-pw-rotated-77aa").unwrap();
    let plan = Planner::new(h.registry.clone(), h.desired())
        .plan()
        .await
        .unwrap();
    let rendered = plan.render_text();
    assert!(
        rendered.contains("/env/GITLAB_ROOT_PASSWORD: <redacted> → <redacted>"),
        "{rendered}"
    );
    seen += &(serde_json::to_string(&plan).unwrap() + &rendered);
    h.converge().await;
    seen += &serde_json::to_string(&h.shared.snapshot()).unwrap();
    seen += &std::fs::read_to_string(h.dir.path().join("state/audit.jsonl")).unwrap();
    seen += &String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(seen.contains("updated app"), "the logs were captured");
    for secret in SECRETS
        .iter()
        .map(|(_, value)| *value)
        .chain(["root-pw-rotated-77aa"])
    {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
}

/// Every resource of a plan as `(kind/name, condition, reason)`, sorted.
fn decisions(plan: &PlanReport) -> Vec<(String, String, String)> {
    let mut lines: Vec<_> = plan
        .kinds
        .iter()
        .flat_map(|kind| &kind.resources)
        .map(|r| (r.resource.clone(), r.condition.clone(), r.reason.clone()))
        .collect();
    lines.sort();
    lines
}

/// Property: over generated worlds (apps scaled behind converged's back, files edited and
/// removed, foreign apps, observe mode, prune and a tight budget, pause), the plan the running
/// daemon answers has, resource by resource, the condition and reason its `/status` shows
/// after the next cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_plan_is_what_its_next_cycle_does() {
    let mut h = Harness::new("1.10");
    h.converge().await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state/apps");
    let files = [
        ("mesos-ui.json", "/mesos-ui"),
        ("gitlab-runner.json", "/gitlab-runner"),
        ("click-count-staging.json", "/click-count/staging"),
        ("click-count-production.json", "/click-count/production"),
    ];
    let policies = [
        "",
        "[kinds.marathon_app]\nmode = \"observe\"\n",
        "[kinds.marathon_app]\nprune = true\n",
        "[kinds.marathon_app]\nprune = true\nmax_delete_fraction = 0.1\n",
    ];
    let mut sequence = converged_testkit::Sequence::new(0x5eed_0fc0_ffee);
    let mut pick = |n: usize| sequence.pick(n);
    let mut seen_conditions = std::collections::BTreeSet::new();
    for round in 0..12 {
        let (file, id) = files[pick(files.len())];
        // The first round puts a foreign app in place, so every run sees one; then chance
        // decides.
        let choice = if round == 0 { 4 } else { pick(7) };
        let world = match choice {
            0 => {
                // Scaled down: a world where every deployment can finish on the example agents.
                let scale = json!({"instances": 0});
                h.send(reqwest::Method::PUT, &format!("/v2/apps{id}"), Some(scale))
                    .await;
                format!("scaled {id} by hand")
            }
            1 if h.desired().join("apps").join(file).exists() => {
                let instances = pick(2);
                h.edit_app(file, |app| app["instances"] = json!(instances));
                format!("{file}: instances = {instances}")
            }
            2 => {
                let _ = std::fs::remove_file(h.desired().join("apps").join(file));
                format!("removed {file}")
            }
            3 => {
                std::fs::copy(example.join(file), h.desired().join("apps").join(file)).unwrap();
                format!("restored {file}")
            }
            4 => {
                // Someone else's app where a desired one was: unmanaged until adopted.
                h.send(reqwest::Method::DELETE, &format!("/v2/apps{id}"), None)
                    .await;
                h.wait_for_no_deployments().await;
                let foreign = json!({"id": id, "cmd": "sleep 1000", "cpus": 0.01, "mem": 8});
                h.send(reqwest::Method::POST, "/v2/apps", Some(foreign))
                    .await;
                format!("{id} replaced by a foreign app")
            }
            5 => {
                let policy = policies[pick(policies.len())];
                h.set_kind_policies(policy);
                format!("policy {policy:?}")
            }
            _ => {
                let paused = !h.shared.is_paused();
                h.shared.set_paused(paused);
                format!("paused = {paused}")
            }
        };
        let plan = h.settled_daemon_plan().await;
        h.cycle().await;
        let mut status: Vec<_> = h
            .resources()
            .into_iter()
            .map(|r| {
                (
                    format!("{}/{}", r.kind, r.name),
                    r.condition.as_str().to_owned(),
                    r.reason,
                )
            })
            .collect();
        status.sort();
        assert_eq!(
            decisions(&plan),
            status,
            "round {round} ({world}): the plan was\n{}",
            plan.render_text()
        );
        seen_conditions.extend(status.into_iter().map(|(_, condition, _)| condition));
    }
    for condition in ["in_sync", "converging", "drifted", "unmanaged"] {
        assert!(
            seen_conditions.contains(condition),
            "the generated worlds never showed {condition}: {seen_conditions:?}"
        );
    }
}

/// A secret the plan cannot resolve is a resource that would fail: `!` and exit 1, never a
/// change under exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_secret_is_planned_as_a_failure() {
    let h = Harness::new("1.10");
    std::fs::remove_file(h.dir.path().join("secrets/0")).unwrap();
    let plan = Planner::new(h.registry.clone(), h.desired())
        .plan()
        .await
        .unwrap();
    let text = plan.render_text();
    assert_eq!(plan.exit_code(), 1, "{text}");
    assert!(
        text.contains("! marathon_app//gitlab: would fail: "),
        "{text}"
    );
    assert!(text.contains("; 1 would fail"), "{text}");
    assert_eq!(
        plan.resource("marathon_app//gitlab").unwrap().condition,
        "failed"
    );
}
