//! The simulator's own `/__sim/` routes on the master (with `--admin`): deregister an agent,
//! drop leadership. Not upstream; no I/O beyond answering and the election.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;

use super::Shared;
use crate::server::DropLeadership;

/// POST /__sim/agents/{id}/deregister.
async fn deregister_agent(State(master): State<Shared>, Path(id): Path<String>) -> StatusCode {
    if master.lock().deregister_agent(&id) {
        tracing::info!(agent_id = %id, "Deregistered agent (admin)");
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// POST /__sim/leadership/drop.
async fn drop_leadership(
    State(master): State<Shared>,
    Json(request): Json<DropLeadership>,
) -> StatusCode {
    master
        .election
        .abdicate(Duration::from_millis(request.for_ms))
        .await;
    StatusCode::NO_CONTENT
}

/// The admin routes.
pub(super) fn routes(master: Shared) -> Router {
    Router::new()
        .route("/__sim/agents/{id}/deregister", post(deregister_agent))
        .route("/__sim/leadership/drop", post(drop_leadership))
        .with_state(master)
}
