//! The simulator's internal protocol on the master (`/__sim_internal`): agents register and send
//! heartbeats, frameworks sync their tasks and learn the agents they may use. Only the leader
//! takes them; handlers parse, call the state and answer. No I/O beyond answering.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::election::not_leader;
use super::{Shared, text};
use crate::mesos::protocol::{FrameworkSync, Heartbeat, RegisterAgent, Registered};

/// POST /__sim_internal/agent/register.
pub(super) async fn register(
    State(master): State<Shared>,
    Json(registration): Json<RegisterAgent>,
) -> Response {
    if !master.elected() {
        return not_leader(&master);
    }
    match master.lock().register_agent(&master.id, registration) {
        Ok(id) => Json(Registered { id }).into_response(),
        Err(refusal) => text(StatusCode::FORBIDDEN, &refusal.to_string()),
    }
}

/// POST /__sim_internal/agent/heartbeat.
pub(super) async fn heartbeat(
    State(master): State<Shared>,
    Json(heartbeat): Json<Heartbeat>,
) -> Response {
    if !master.elected() {
        return not_leader(&master);
    }
    if master.lock().heartbeat(&heartbeat.id) {
        Json(json!({})).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// POST /__sim_internal/framework/sync.
pub(super) async fn framework_sync(
    State(master): State<Shared>,
    Json(sync): Json<FrameworkSync>,
) -> Response {
    if !master.elected() {
        return not_leader(&master);
    }
    Json(master.lock().sync_framework(&master.id, sync)).into_response()
}
