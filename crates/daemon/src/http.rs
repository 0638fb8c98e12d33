//! The HTTP API: probes, `/status`, `/metrics`, the plan, and the token-protected operator
//! endpoints. `router()` builds everything without a socket so tests can call it directly.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use converged_core::Kind;
use converged_core::secret::Secret;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::engine::Trigger;
use crate::planner::{PlanFailure, Planner};
use crate::status::{Probe, Shared};

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub triggers: mpsc::Sender<Trigger>,
    pub planner: Arc<Planner>,
    /// The bearer token for POST endpoints; `None` refuses them all.
    pub token: Option<Arc<Secret>>,
}

pub fn router(state: AppState) -> Router {
    let operator = Router::new()
        .route("/v1/reconcile", post(reconcile))
        .route("/v1/pause", post(pause))
        .route("/v1/resume", post(resume))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/plan", get(plan))
        .merge(operator)
        .with_state(state)
}

/// 200 while the engine makes progress (see `status::health`), else 503 with the reason.
async fn healthz(State(state): State<AppState>) -> Response {
    probe(state.shared.health(), "ok", "unhealthy")
}

/// 200 while the desired state is valid and the last cycle observed every kind (see
/// `status::readiness`), else 503 with the reason.
async fn readyz(State(state): State<AppState>) -> Response {
    probe(state.shared.readiness(), "ready", "not ready")
}

fn probe(answer: Probe, pass: &str, fail: &str) -> Response {
    match answer {
        Probe::Pass => (StatusCode::OK, format!("{pass}\n")).into_response(),
        Probe::Fail(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{fail}: {why}\n")).into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    kind: Option<String>,
}

async fn status(State(state): State<AppState>, Query(query): Query<StatusQuery>) -> Response {
    let mut document = state.shared.snapshot();
    if let Some(wanted) = query.kind {
        let Some(kind) = Kind::parse(&wanted) else {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unknown kind `{wanted}`; kinds are {}", known.join(", ")),
            );
        };
        document
            .resources
            .retain(|resource| resource.kind == kind.as_str());
        document.kinds.retain(|status| status.kind == kind.as_str());
    }
    Json(document).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.shared.metrics.render(),
    )
        .into_response()
}

async fn plan(State(state): State<AppState>) -> Response {
    match state.planner.plan().await {
        Ok(report) => Json(report).into_response(),
        Err(PlanFailure::Invalid(problems)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": "the desired state is invalid", "problems": problems })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileQuery {
    #[serde(default)]
    allow_mass_deletion: bool,
}

async fn reconcile(State(state): State<AppState>, Query(query): Query<ReconcileQuery>) -> Response {
    let trigger = Trigger::Operator {
        allow_mass_deletion: query.allow_mass_deletion,
    };
    match state.triggers.try_send(trigger) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {
            (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
        }
        Err(mpsc::error::TrySendError::Closed(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine is shutting down",
        ),
    }
}

async fn pause(State(state): State<AppState>) -> Json<serde_json::Value> {
    state.shared.set_paused(true);
    tracing::info!("paused acting");
    Json(json!({ "paused": true }))
}

async fn resume(State(state): State<AppState>) -> Json<serde_json::Value> {
    state.shared.set_paused(false);
    tracing::info!("resumed acting");
    let _ = state.triggers.try_send(Trigger::Operator {
        allow_mass_deletion: false,
    });
    Json(json!({ "paused": false }))
}

async fn require_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.token else {
        return error(
            StatusCode::FORBIDDEN,
            "operator endpoints are disabled: set http.token_file in the configuration",
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        None => {
            let mut response = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes())) => {
            next.run(request).await
        }
        Some(_) => error(StatusCode::FORBIDDEN, "the bearer token is wrong"),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
