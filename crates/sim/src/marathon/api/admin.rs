//! The simulator's own `/__sim/` routes on Marathon (with `--admin`): kill a task as failed, make
//! an app's health checks fail or pass, drop leadership. Not upstream; no I/O beyond answering
//! and the election.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

use super::Shared;
use crate::marathon::app;
use crate::server::DropLeadership;

/// POST /__sim/tasks/{id}/kill: the task fails (backoff, lastTaskFailure).
async fn kill_task(State(marathon): State<Shared>, Path(id): Path<String>) -> StatusCode {
    match marathon.lock().kill(&id, true, "killed (admin)") {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

/// POST /__sim/apps/{id}/health with `{"healthy": bool}`.
async fn set_health(
    State(marathon): State<Shared>,
    Path(path): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    let Some(id) = path.strip_suffix("/health").and_then(app::canonical_id) else {
        return StatusCode::NOT_FOUND;
    };
    let healthy = body["healthy"].as_bool().unwrap_or(true);
    marathon.lock().set_health_failing(&id, !healthy);
    StatusCode::NO_CONTENT
}

/// POST /__sim/leadership/drop.
async fn drop_leadership(
    State(marathon): State<Shared>,
    Json(request): Json<DropLeadership>,
) -> StatusCode {
    marathon
        .election
        .abdicate(Duration::from_millis(request.for_ms))
        .await;
    StatusCode::NO_CONTENT
}

/// The admin routes.
pub(super) fn routes(marathon: Shared) -> Router {
    Router::new()
        .route("/__sim/tasks/{id}/kill", post(kill_task))
        .route("/__sim/apps/{*path}", post(set_health))
        .route("/__sim/leadership/drop", post(drop_leadership))
        .with_state(marathon)
}
