//! `/v2/tasks` [`MAR@HEAD:M/api/v2/TasksResource.scala`] (list, as JSON or the text/plain
//! service-port table, and kill by id) and an app's tasks, `/v2/apps/{id}/tasks`
//! [`MAR@HEAD:M/api/v2/AppTasksResource.scala`]. No I/O beyond answering.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::render::task_json;
use super::{
    QueryPairs, Shared, deployment_result, message, method_not_allowed, parse_body, refused,
    unknown_app,
};
use crate::marathon::Marathon;
use crate::marathon::app;
use crate::marathon::state::{Task, TaskKill};

/// GET /v2/tasks, filtered by `status` (`running`, `staging`).
pub(super) async fn list(
    State(marathon): State<Shared>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Response {
    let statuses: Vec<String> = query
        .all("status")
        .chain(query.all("status[]"))
        .map(str::to_lowercase)
        .collect();
    let state = marathon.lock();
    let tasks: Vec<&Task> = state
        .tasks
        .values()
        .filter(|task| {
            statuses.is_empty()
                || statuses.iter().any(|status| {
                    (status == "running" && task.started_at.is_some())
                        || (status == "staging" && task.started_at.is_none())
                })
        })
        .collect();
    let wants_text = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.starts_with("text/plain"));
    if wants_text {
        // `appId servicePort host:port ...` per service port [`apps.raml` /tasks text/plain].
        let mut lines = Vec::new();
        for (id, entry) in &state.apps {
            for (index, service_port) in app::service_ports(&entry.def).iter().enumerate() {
                let mut line = format!(
                    "{}\t{service_port}\t",
                    id.trim_start_matches('/').replace('/', "_")
                );
                for task in tasks.iter().filter(|task| &task.app_id == id) {
                    if let Some(port) = task.ports.get(index) {
                        line.push_str(&format!("{}:{port}\t", task.host));
                    }
                }
                lines.push(line);
            }
        }
        return (
            [(header::CONTENT_TYPE, "text/plain")],
            lines.join("\n") + "\n",
        )
            .into_response();
    }
    let rendered: Vec<Value> = tasks
        .iter()
        .map(|task| task_json(state.profile, task))
        .collect();
    Json(json!({"tasks": rendered})).into_response()
}

/// POST /v2/tasks/delete with `{"ids": [...]}`.
pub(super) async fn kill(
    State(marathon): State<Shared>,
    query: QueryPairs,
    body: Bytes,
) -> Response {
    if query.flag("scale", false) && query.flag("wipe", false) {
        return message(
            StatusCode::BAD_REQUEST,
            "You cannot use scale and wipe at the same time.",
        );
    }
    let raw = match parse_body(&body) {
        Ok(raw) => raw,
        Err(response) => return *response,
    };
    let ids: Vec<String> = raw["ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut state = marathon.lock();
    let killed = state.kill_tasks(&ids);
    let rendered: Vec<Value> = killed
        .iter()
        .map(|task| task_json(state.profile, task))
        .collect();
    Json(json!({"tasks": rendered})).into_response()
}

/// GET or DELETE /v2/apps/{id}/tasks[/{taskId}]; `task_id` is empty for all of them.
pub(super) fn of_app(
    marathon: &Marathon,
    method: Method,
    path_id: &str,
    task_id: &str,
    query: &QueryPairs,
) -> Response {
    let id = app::canonical_id(path_id).unwrap_or(path_id.to_string());
    let mut state = marathon.lock();
    if !state.apps.contains_key(&id) {
        return unknown_app(id);
    }
    let profile = state.profile;
    match method {
        Method::GET => {
            let tasks: Vec<Value> = state
                .tasks_of(&id)
                .iter()
                .map(|task| task_json(profile, task))
                .collect();
            Json(json!({"tasks": tasks})).into_response()
        }
        Method::DELETE => {
            let one = (!task_id.is_empty()).then_some(task_id);
            let scale = query.flag("scale", false);
            match state.kill_app_tasks(&id, one, query.first("host"), scale) {
                Ok(TaskKill::Scaled(deployed)) => {
                    deployment_result(profile, StatusCode::OK, &deployed, None)
                }
                Ok(TaskKill::Killed(killed)) => {
                    let mut rendered = killed.iter().map(|task| task_json(profile, task));
                    if one.is_some() {
                        Json(json!({"task": rendered.next()})).into_response()
                    } else {
                        Json(json!({"tasks": rendered.collect::<Vec<_>>()})).into_response()
                    }
                }
                Err(refusal) => refused(profile, refusal),
            }
        }
        _ => method_not_allowed(),
    }
}
