//! The HTTP router without a socket: probes, /status, /metrics, /v1/plan and token checks.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use converged::engine::{CycleRequest, Engine, EngineSettings, Trigger};
use converged::http::{AppState, router};
use converged::metrics::Metrics;
use converged::planner::Planner;
use converged::status::Shared;
use converged_core::reconciler::Registry;
use converged_core::secret::Secret;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    triggers: mpsc::Receiver<Trigger>,
    engine: Engine,
}

fn fixture(token: Option<&str>, cluster: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(desired.join("apps")).unwrap();
    std::fs::write(desired.join("cluster.toml"), cluster).unwrap();
    let shared = Arc::new(Shared::new(Metrics::new().unwrap()));
    let (tx, rx) = mpsc::channel(4);
    let engine = Engine::new(
        EngineSettings::new(desired.clone(), Duration::from_secs(30)),
        Registry::default(),
        Arc::clone(&shared),
        None,
        CancellationToken::new(),
    );
    Fixture {
        _dir: dir,
        state: AppState {
            shared,
            triggers: tx,
            planner: Arc::new(Planner::new(Registry::default(), desired)),
            token: token.map(|t| Arc::new(Secret::new(t))),
        },
        triggers: rx,
        engine,
    }
}

const VALID: &str = "[cluster]\nname = \"web\"\n";

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn probes_report_health_and_readiness_after_the_first_cycle() {
    let mut f = fixture(None, VALID);
    assert_eq!(
        call(&f.state, "GET", "/healthz", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&f.state, "GET", "/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    f.engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    assert_eq!(
        call(&f.state, "GET", "/readyz", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn healthz_fails_once_the_engine_stalls_and_passes_when_it_cycles_again() {
    let mut f = fixture(None, VALID);
    f.engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    assert_eq!(
        call(&f.state, "GET", "/healthz", None).await.0,
        StatusCode::OK
    );
    // The default limit between cycles: 3x the 30 s resync interval.
    tokio::time::advance(Duration::from_secs(91)).await;
    let (code, body) = call(&f.state, "GET", "/healthz", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.starts_with("unhealthy: no cycle has started for 91 s"),
        "{body}"
    );
    let (code, body) = call(&f.state, "GET", "/readyz", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("not ready: not live"), "{body}");

    f.engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    assert_eq!(
        call(&f.state, "GET", "/healthz", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&f.state, "GET", "/readyz", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn readyz_follows_the_last_cycle_not_the_first() {
    let mut f = fixture(None, VALID);
    let cluster = f._dir.path().join("desired/cluster.toml");
    let mut cycle_with = async |text: &str| {
        std::fs::write(&cluster, text).unwrap();
        f.engine
            .run_cycle(CycleRequest::from_trigger(Trigger::DesiredStateChanged))
            .await;
        let (code, body) = call(&f.state, "GET", "/readyz", None).await;
        let (_, status) = call(&f.state, "GET", "/status", None).await;
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(
            status["ready"],
            code == StatusCode::OK,
            "/status agrees with /readyz"
        );
        (code, body)
    };
    assert_eq!(cycle_with(VALID).await.0, StatusCode::OK);
    let (code, body) = cycle_with("[cluster]\nname = \"Bad Name\"\n").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.starts_with("not ready: the desired state on disk is invalid"),
        "{body}"
    );
    assert_eq!(cycle_with(VALID).await, (StatusCode::OK, "ready\n".into()));
}

#[tokio::test]
async fn status_shows_the_revision_and_filters_by_kind() {
    let mut f = fixture(None, VALID);
    f.engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    let (code, body) = call(&f.state, "GET", "/status", None).await;
    assert_eq!(code, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["desired_state"]["valid"], true);
    assert_eq!(
        document["desired_state"]["revision"]
            .as_str()
            .unwrap()
            .len(),
        16
    );
    assert_eq!(document["last_cycle"]["number"], 1);
    assert_eq!(document["last_cycle"]["trigger"], "resync");
    assert!(document["resources"].as_array().unwrap().is_empty());

    assert_eq!(
        call(&f.state, "GET", "/status?kind=marathon_app", None)
            .await
            .0,
        StatusCode::OK
    );
    let (code, body) = call(&f.state, "GET", "/status?kind=nonsense", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("marathon_app"), "{body}");
}

#[tokio::test]
async fn status_lists_every_problem_of_an_invalid_desired_state() {
    let mut f = fixture(None, "[cluster]\nname = \"Bad Name\"\nregion = \"mars\"\n");
    f.engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    let (_, body) = call(&f.state, "GET", "/status", None).await;
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["desired_state"]["valid"], false);
    let errors = document["desired_state"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["file"], "cluster.toml");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["field"], "cluster.name");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_documented_families() {
    let mut f = fixture(None, VALID);
    f.engine
        .run_cycle(CycleRequest::from_trigger(Trigger::Resync))
        .await;
    let (code, body) = call(&f.state, "GET", "/metrics", None).await;
    assert_eq!(code, StatusCode::OK);
    for family in [
        "converged_cycles_total 1",
        "converged_cycle_duration_seconds_bucket",
        "converged_desired_state_valid 1",
        "converged_desired_state_revision_timestamp_seconds",
        "converged_last_successful_cycle_timestamp_seconds",
        "converged_paused 0",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(family), "missing {family} in:\n{body}");
    }
}

#[tokio::test]
async fn post_endpoints_need_the_right_bearer_token() {
    let mut f = fixture(Some("s3cret-token"), VALID);
    let (code, body) = call(&f.state, "POST", "/v1/reconcile", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("s3cret"));
    assert_eq!(
        call(&f.state, "POST", "/v1/reconcile", Some("wrong"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert!(
        f.triggers.try_recv().is_err(),
        "refused requests trigger nothing"
    );

    let (code, _) = call(
        &f.state,
        "POST",
        "/v1/reconcile?allow_mass_deletion=true",
        Some("s3cret-token"),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(
        f.triggers.try_recv().unwrap(),
        Trigger::Operator {
            allow_mass_deletion: true
        }
    );

    assert_eq!(
        call(&f.state, "POST", "/v1/pause", Some("s3cret-token"))
            .await
            .0,
        StatusCode::OK
    );
    assert!(f.state.shared.is_paused());
    let (_, status) = call(&f.state, "GET", "/status", None).await;
    assert!(status.contains("\"paused\":true"));
    assert_eq!(
        call(&f.state, "POST", "/v1/resume", Some("s3cret-token"))
            .await
            .0,
        StatusCode::OK
    );
    assert!(!f.state.shared.is_paused());
    assert_eq!(
        call(&f.state, "GET", "/v1/reconcile", Some("s3cret-token"))
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn without_a_token_file_post_endpoints_are_refused() {
    let f = fixture(None, VALID);
    for path in ["/v1/reconcile", "/v1/pause", "/v1/resume"] {
        let (code, body) = call(&f.state, "POST", path, Some("anything")).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("token_file"), "{body}");
    }
    assert!(!f.state.shared.is_paused());
}

#[tokio::test]
async fn the_plan_endpoint_reports_problems_or_the_plan() {
    let f = fixture(None, VALID);
    let (code, body) = call(&f.state, "GET", "/v1/plan", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(plan["summary"]["to_create"], 0, "{body}");
    assert!(plan["kinds"].is_array(), "{body}");

    let broken = fixture(None, "[cluster]\nnam = \"x\"\n");
    let (code, body) = call(&broken.state, "GET", "/v1/plan", None).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("unknown field `nam`"), "{body}");
}
