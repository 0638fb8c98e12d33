//! `/v2/apps` [`MAR@HEAD:M/api/v2/AppsResource.scala`]: list, create, show, update, delete and
//! restart apps, and an app's versions; `/v2/apps/{id}/tasks` is dispatched to `tasks`. The
//! handlers parse and render; the state makes the changes. No I/O beyond answering.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::render::{Embed, app_info};
use super::{
    QueryPairs, Shared, deployment_result, invalid_id, message, method_not_allowed, parse_body,
    refused, rejection, tasks, unknown_app,
};
use crate::marathon::Marathon;
use crate::marathon::app::{self, Profile, Rejection, Violation};
use crate::marathon::state::{Refusal, Updated};

/// Label selector [`MAR@HEAD:M/api/v2/LabelSelectorParsers.scala`]: `k`, `k==v`, `k!=v`,
/// `k in (a,b)`, `k notin (a,b)`, comma = AND.
fn label_matches(selector: &str, labels: &Value) -> bool {
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for character in selector.chars() {
        match character {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if character == ',' && depth == 0 {
            terms.push(std::mem::take(&mut current));
        } else {
            current.push(character);
        }
    }
    terms.push(current);
    terms.iter().all(|term| {
        let term = term.trim();
        let label = |key: &str| labels.get(key.trim()).and_then(Value::as_str);
        let set = |list: &str| -> Vec<String> {
            list.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|member| member.trim().to_string())
                .collect()
        };
        if let Some((key, value)) = term.split_once("==") {
            label(key) == Some(value.trim())
        } else if let Some((key, value)) = term.split_once("!=") {
            label(key) != Some(value.trim())
        } else if let Some((key, list)) = term.split_once(" notin ") {
            label(key).is_none_or(|found| !set(list).iter().any(|member| member == found))
        } else if let Some((key, list)) = term.split_once(" in ") {
            label(key).is_some_and(|found| set(list).iter().any(|member| member == found))
        } else {
            label(term).is_some()
        }
    })
}

/// GET /v2/apps with the `cmd`, `id` and `label` filters and `embed`.
pub(super) async fn list(State(marathon): State<Shared>, query: QueryPairs) -> Response {
    let embed = Embed::from_query(&query, "apps.");
    let cmd = query.first("cmd").map(str::to_lowercase);
    let id = query.first("id").map(str::to_lowercase);
    let label = query.first("label");
    let state = marathon.lock();
    let apps: Vec<Value> = state
        .apps
        .values()
        .filter(|entry| {
            cmd.as_ref().is_none_or(|wanted| {
                entry.def["cmd"]
                    .as_str()
                    .is_some_and(|cmd| cmd.to_lowercase().contains(wanted))
            }) && id.as_ref().is_none_or(|wanted| {
                entry.def["id"]
                    .as_str()
                    .is_some_and(|id| id.to_lowercase().contains(wanted))
            }) && label.is_none_or(|selector| label_matches(selector, &entry.def["labels"]))
        })
        .map(|entry| app_info(&state, entry, embed, true))
        .collect();
    Json(json!({"apps": apps})).into_response()
}

/// POST /v2/apps.
pub(super) async fn create(
    State(marathon): State<Shared>,
    query: QueryPairs,
    body: Bytes,
) -> Response {
    let force = query.flag("force", false);
    let raw = match parse_body(&body) {
        Ok(raw) => raw,
        Err(response) => return *response,
    };
    let profile = marathon.cfg.profile;
    let def = match app::normalize(profile, &raw) {
        Ok(def) => def,
        Err(rejected) => return rejection(profile, &rejected),
    };
    let id = def["id"].as_str().unwrap_or_default().to_string();
    let mut state = marathon.lock();
    let (entry, deployed) = match state.create_app(def, force) {
        Ok(created) => created,
        Err(refusal) => return refused(profile, refusal),
    };
    // The POST answer has only a bare version, so no versionInfo [`MAR@1.1.1:Formats.scala#VersionInfoWrites`].
    let mut body = app_info(&state, &entry, Embed::default(), false);
    body["deployments"] = json!([{"id": deployed.plan}]);
    if profile == Profile::V11 {
        body["tasks"] = json!([]);
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if profile == Profile::V110
        && let Ok(plan) = HeaderValue::from_str(&deployed.plan)
    {
        response
            .headers_mut()
            .insert("Marathon-Deployment-Id", plan);
    }
    response
}

/// Whether a PUT merges into the stored definition: [1.1.1] has no partialUpdate and always
/// merges.
fn partial_update(profile: Profile, query: &QueryPairs) -> bool {
    profile == Profile::V11 || query.flag("partialUpdate", true)
}

/// PUT /v2/apps/{id}: update, roll back (a `version` in the body) or create.
fn update(marathon: &Marathon, path_id: &str, query: &QueryPairs, body: &Bytes) -> Response {
    let profile = marathon.cfg.profile;
    let force = query.flag("force", false);
    let partial = partial_update(profile, query);
    let raw = match parse_body(body) {
        Ok(raw) => raw,
        Err(response) => return *response,
    };
    let Some(id) = app::canonical_id(path_id) else {
        return invalid_id(profile, "/id".into());
    };
    let mut state = marathon.lock();
    match state.update_apps(&[(id.clone(), raw)], partial, force) {
        Ok(Updated { created, deployed }) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            deployment_result(profile, status, &deployed, created.then_some(id.as_str()))
        }
        Err(refusal) => refused(profile, refusal),
    }
}

/// PUT /v2/apps: several apps in one deployment; every body is checked before any changes.
pub(super) async fn update_many(
    State(marathon): State<Shared>,
    query: QueryPairs,
    body: Bytes,
) -> Response {
    let profile = marathon.cfg.profile;
    let force = query.flag("force", false);
    let partial = partial_update(profile, &query);
    let raw = match parse_body(&body) {
        Ok(raw) => raw,
        Err(response) => return *response,
    };
    let Some(items) = raw.as_array() else {
        return rejection(
            profile,
            &Rejection::Types(vec![Violation {
                path: "".into(),
                errors: vec!["error.expected.jsarray".into()],
            }]),
        );
    };
    let mut updates = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item["id"].as_str().and_then(app::canonical_id) {
            Some(id) => updates.push((id, item.clone())),
            None => return invalid_id(profile, format!("({index})/id")),
        }
    }
    if !partial {
        for item in items {
            if let Err(rejected) = app::normalize(profile, item) {
                return rejection(profile, &rejected);
            }
        }
    }
    let mut state = marathon.lock();
    match state.update_apps(&updates, partial, force) {
        Ok(Updated { deployed, .. }) => deployment_result(profile, StatusCode::OK, &deployed, None),
        Err(refusal) => refused(profile, refusal),
    }
}

/// DELETE /v2/apps/{id}.
fn remove(marathon: &Marathon, path_id: &str, query: &QueryPairs) -> Response {
    // DELETE defaults to force=true [`MAR@1.1.1:...AppsResource.scala#delete` @DefaultValue("true")].
    let force = query.flag("force", true);
    let id = app::canonical_id(path_id).unwrap_or(path_id.to_string());
    let mut state = marathon.lock();
    match state.delete_app(&id, force) {
        Ok(deployed) => deployment_result(marathon.cfg.profile, StatusCode::OK, &deployed, None),
        Err(refusal) => refused(marathon.cfg.profile, refusal),
    }
}

/// POST /v2/apps/{id}/restart.
fn restart(marathon: &Marathon, path_id: &str, query: &QueryPairs) -> Response {
    let force = query.flag("force", false);
    let id = app::canonical_id(path_id).unwrap_or(path_id.to_string());
    let mut state = marathon.lock();
    match state.restart_app(&id, force) {
        Ok(deployed) => deployment_result(marathon.cfg.profile, StatusCode::OK, &deployed, None),
        Err(refusal) => refused(marathon.cfg.profile, refusal),
    }
}

/// GET /v2/apps/{id}, or every app under a group with `/v2/apps/{group}/*`.
fn show(marathon: &Marathon, path_id: &str, query: &QueryPairs) -> Response {
    let state = marathon.lock();
    if let Some(group) = path_id.strip_suffix('*') {
        let prefix = format!("/{}", group.trim_matches('/'));
        let prefix = if prefix == "/" {
            prefix
        } else {
            format!("{prefix}/")
        };
        let embed = Embed {
            tasks: true,
            last_failure: true,
            readiness: false,
        };
        let apps: Vec<Value> = state
            .apps
            .values()
            .filter(|entry| {
                entry.def["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(&prefix))
            })
            .map(|entry| app_info(&state, entry, embed, true))
            .collect();
        if apps.is_empty() {
            return message(
                StatusCode::NOT_FOUND,
                &format!("Group '{}' does not exist", prefix.trim_end_matches('/')),
            );
        }
        return Json(json!({"*": apps})).into_response();
    }
    let id = app::canonical_id(path_id).unwrap_or(path_id.to_string());
    match state.apps.get(&id) {
        Some(entry) => {
            let mut embed = Embed::from_query(query, "app.");
            embed.tasks = true;
            embed.last_failure = true;
            Json(json!({"app": app_info(&state, entry, embed, true)})).into_response()
        }
        None => unknown_app(id),
    }
}

/// GET /v2/apps/{id}/versions[/{version}] [`MAR@HEAD:M/api/v2/AppVersionsResource.scala`].
fn versions(marathon: &Marathon, path_id: &str, version: &str) -> Response {
    let id = app::canonical_id(path_id).unwrap_or(path_id.to_string());
    let state = marathon.lock();
    let Some(entry) = state.apps.get(&id) else {
        return unknown_app(id);
    };
    if version.is_empty() {
        let mut versions: Vec<&String> = entry.versions.iter().map(|(kept, _)| kept).collect();
        versions.reverse();
        return Json(json!({"versions": versions})).into_response();
    }
    match entry.versions.iter().find(|(kept, _)| kept == version) {
        Some((_, def)) => Json(app::render(state.profile, def, None)).into_response(),
        None => refused(
            state.profile,
            Refusal::UnknownVersion {
                app: id,
                version: version.to_string(),
            },
        ),
    }
}

/// Everything under `/v2/apps/`: app ids contain slashes, so the sub-resource is found by its
/// suffix (`/restart`, `/versions`, `/tasks`).
pub(super) async fn by_path(
    State(marathon): State<Shared>,
    method: Method,
    Path(path): Path<String>,
    query: QueryPairs,
    body: Bytes,
) -> Response {
    let path = path.trim_end_matches('/');
    let with_slash = format!("/{path}");
    if method == Method::POST
        && let Some(id) = with_slash.strip_suffix("/restart")
    {
        return restart(&marathon, id, &query);
    }
    if let Some((id, version)) = with_slash.split_once("/versions") {
        if method != Method::GET {
            return method_not_allowed();
        }
        return versions(&marathon, id, version.trim_start_matches('/'));
    }
    if let Some((id, task)) = with_slash.split_once("/tasks") {
        return tasks::of_app(&marathon, method, id, task.trim_start_matches('/'), &query);
    }
    match method {
        Method::GET => show(&marathon, path, &query),
        Method::PUT => update(&marathon, path, &query, &body),
        Method::DELETE => remove(&marathon, path, &query),
        _ => method_not_allowed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let labels = json!({"env": "prod", "tier": "web"});
        assert!(label_matches("env", &labels));
        assert!(label_matches("env==prod,tier in (web, db)", &labels));
        assert!(!label_matches("env!=prod", &labels));
        assert!(label_matches("tier notin (db)", &labels));
        assert!(!label_matches("missing", &labels));
    }
}
