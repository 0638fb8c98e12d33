//! The master's operator HTTP endpoints [`MES@HEAD:MS/http.cpp`]: `/state`, `/slaves`,
//! `/frameworks`, `/tasks`, `/health`, `/redirect`, `/metrics/snapshot`, `/version` and the
//! maintenance API (`/maintenance/schedule`, `/maintenance/status`, `/machine/down|up`).
//! Handlers check leadership, parse, call the state and render. No I/O beyond answering.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::election::{gate, master_info, redirect_to};
use super::maintenance::machine_key;
use super::{Shared, render, text};

/// GET /master/state.
pub(super) async fn state(State(master): State<Shared>, uri: Uri) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    let state = master.lock();
    Json(render::state_json(&master, &state)).into_response()
}

/// GET /master/slaves, optionally only `slave_id`.
pub(super) async fn slaves(State(master): State<Shared>, uri: Uri) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    let state = master.lock();
    let wanted = uri.query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("slave_id="))
            .map(str::to_string)
    });
    let list: Vec<Value> = state
        .agents
        .values()
        .filter(|agent| wanted.as_ref().is_none_or(|wanted| *wanted == agent.id))
        .map(|agent| render::agent_json(&master, &state, agent, true))
        .collect();
    let mut rendered = json!({"slaves": list});
    if master.cfg.profile.current() {
        rendered["recovered_slaves"] = json!([]);
    }
    Json(rendered).into_response()
}

/// GET /master/frameworks.
pub(super) async fn frameworks(State(master): State<Shared>, uri: Uri) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    let state = master.lock();
    let list: Vec<Value> = state
        .frameworks
        .values()
        .map(|framework| render::framework_json(&master, framework))
        .collect();
    Json(json!({"frameworks": list, "completed_frameworks": [], "unregistered_frameworks": []}))
        .into_response()
}

/// GET /master/tasks.
pub(super) async fn tasks(State(master): State<Shared>, uri: Uri) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    let state = master.lock();
    let list: Vec<Value> = state
        .frameworks
        .values()
        .flat_map(|framework| {
            framework
                .sync
                .tasks
                .iter()
                .map(|task| render::task_json(&master, framework, task))
        })
        .collect();
    Json(json!({"tasks": list})).into_response()
}

/// GET /master/health.
pub(super) async fn health() -> StatusCode {
    StatusCode::OK
}

/// [≥1.0] 307 to the leader or 503; the leader redirects to itself. [0.28] never 503: with no
/// leader it redirects to itself [`MES@HEAD:MS/http.cpp#redirect:1746-1800`; `MES@0.28.1:MS/http.cpp#redirect`].
pub(super) async fn redirect(State(master): State<Shared>) -> Response {
    match master.leader() {
        Some(leader) => redirect_to(&leader, ""),
        None if master.cfg.profile.current() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected")
        }
        None => redirect_to(&master_info(&master.id, &master.cfg), ""),
    }
}

/// GET /metrics/snapshot.
pub(super) async fn metrics(State(master): State<Shared>) -> Json<Value> {
    let state = master.lock();
    Json(render::metrics_json(&master, &state))
}

/// GET /version.
pub(super) async fn version(State(master): State<Shared>) -> Json<Value> {
    Json(
        json!({"version": master.cfg.profile.version(), "build_user": "root", "build_date": "2016-05-05 17:07:04", "build_time": 1_462_468_024.0}),
    )
}

/// GET /master/maintenance/schedule.
pub(super) async fn schedule(State(master): State<Shared>, uri: Uri) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    Json(render::schedule_json(&master.lock())).into_response()
}

fn unparsable(error: &serde_json::Error) -> Response {
    text(
        StatusCode::BAD_REQUEST,
        &format!("Failed to parse body into JSON: {error}"),
    )
}

/// POST /master/maintenance/schedule.
pub(super) async fn set_schedule(State(master): State<Shared>, uri: Uri, body: String) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    let parsed: Value = match serde_json::from_str(&body) {
        Ok(parsed) => parsed,
        Err(error) => return unparsable(&error),
    };
    match master.lock().set_schedule(&parsed) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => text(StatusCode::BAD_REQUEST, &refusal.to_string()),
    }
}

/// GET /master/maintenance/status.
pub(super) async fn maintenance_status(State(master): State<Shared>, uri: Uri) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    Json(render::maintenance_status_json(&master.lock())).into_response()
}

/// A MachineIDs body: a list of `{"hostname", "ip"}`.
fn parse_machines(body: &str) -> Result<Vec<(String, String)>, Box<Response>> {
    let parsed: Value = serde_json::from_str(body).map_err(|error| Box::new(unparsable(&error)))?;
    let machines = parsed.as_array().ok_or_else(|| {
        Box::new(text(
            StatusCode::BAD_REQUEST,
            "Failed to convert JSON into MachineIDs protobuf: not an array",
        ))
    })?;
    Ok(machines.iter().map(machine_key).collect())
}

/// POST /master/machine/down.
pub(super) async fn machine_down(State(master): State<Shared>, uri: Uri, body: String) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    let machines = match parse_machines(&body) {
        Ok(machines) => machines,
        Err(response) => return *response,
    };
    match master.lock().bring_down(machines) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => text(StatusCode::BAD_REQUEST, &refusal.to_string()),
    }
}

/// POST /master/machine/up.
pub(super) async fn machine_up(State(master): State<Shared>, uri: Uri, body: String) -> Response {
    if let Some(response) = gate(&master, &uri) {
        return response;
    }
    let machines = match parse_machines(&body) {
        Ok(machines) => machines,
        Err(response) => return *response,
    };
    match master.lock().bring_up(&machines) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => text(StatusCode::BAD_REQUEST, &refusal.to_string()),
    }
}
