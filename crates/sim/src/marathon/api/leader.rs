//! `/v2/leader` [`MAR@HEAD:M/api/v2/LeaderResource.scala`]: who leads, and abdicating, which
//! leaves and rejoins the election (through ZooKeeper with `--zk`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, message};

/// GET /v2/leader.
pub(super) async fn show(State(marathon): State<Shared>) -> Response {
    match marathon.election.state().leader {
        Some(leader) => Json(json!({"leader": leader})).into_response(),
        None => message(StatusCode::NOT_FOUND, "There is no leader"),
    }
}

/// DELETE /v2/leader.
pub(super) async fn abdicate(State(marathon): State<Shared>) -> Response {
    if !marathon.election.state().elected {
        return message(StatusCode::NOT_FOUND, "There is no leader");
    }
    marathon.election.abdicate(Duration::from_millis(500)).await;
    Json(json!({"message": "Leadership abdicated"})).into_response()
}
