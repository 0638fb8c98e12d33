//! `/ping` and `/metrics` [`MAR@HEAD:M/api/SystemResource.scala`]: liveness and the gauges of
//! apps, deployments and instances. No I/O beyond answering.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use crate::marathon::app::Profile;

/// GET /ping: [HEAD] answers by `Accept` [`MAR@HEAD:M/api/SystemResource.scala#ping`].
pub(super) async fn ping(State(marathon): State<Shared>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .unwrap_or("*/*");
    if marathon.cfg.profile == Profile::V110 {
        if accept.contains("application/json") {
            return Json(json!("pong")).into_response();
        }
        if !(accept.contains("text/") || accept.contains("*/*")) {
            return StatusCode::NO_CONTENT.into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain")], "pong").into_response()
}

/// GET /metrics.
pub(super) async fn metrics(State(marathon): State<Shared>) -> Json<Value> {
    let state = marathon.lock();
    let running = state
        .tasks
        .values()
        .filter(|task| task.started_at.is_some())
        .count();
    Json(json!({
        "version": "4.0.0",
        "gauges": {
            "marathon.apps.active.gauge": {"value": state.apps.len()},
            "marathon.deployments.active.gauge": {"value": state.deployments.len()},
            "marathon.instances.running.gauge": {"value": running},
            "marathon.instances.staged.gauge": {"value": state.tasks.len() - running},
        },
        "counters": {}, "histograms": {}, "meters": {}, "timers": {},
    }))
}
