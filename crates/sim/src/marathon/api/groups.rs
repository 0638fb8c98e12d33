//! `/v2/groups` [`MAR@HEAD:M/api/v2/GroupsResource.scala`]: the group tree implied by app ids,
//! read-only. No I/O beyond answering.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::render::{Embed, app_info};
use super::{Shared, message};
use crate::marathon::app::{self, Profile};
use crate::marathon::state::{MarathonState, version_now};

/// The group `id` with its apps and child groups, or `None` for an empty group other than `/`.
fn group_json(state: &MarathonState, id: &str) -> Option<Value> {
    let prefix = if id == "/" {
        "/".to_string()
    } else {
        format!("{id}/")
    };
    let mut apps = Vec::new();
    let mut children: BTreeSet<String> = BTreeSet::new();
    for (app_id, entry) in &state.apps {
        let Some(rest) = app_id.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            None => apps.push(app_info(state, entry, Embed::default(), true)),
            Some((child, _)) => {
                children.insert(format!("{prefix}{child}"));
            }
        }
    }
    if id != "/" && apps.is_empty() && children.is_empty() {
        return None;
    }
    let groups: Vec<Value> = children
        .iter()
        .filter_map(|child| group_json(state, child))
        .collect();
    let version = state
        .apps
        .values()
        .filter_map(|entry| entry.def["version"].as_str())
        .max()
        .map(String::from)
        .unwrap_or_else(version_now);
    let mut rendered =
        json!({"id": id, "apps": apps, "groups": groups, "dependencies": [], "version": version});
    if state.profile == Profile::V110 {
        rendered["pods"] = json!([]);
    }
    Some(rendered)
}

/// GET /v2/groups.
pub(super) async fn root(State(marathon): State<Shared>) -> Response {
    let state = marathon.lock();
    Json(group_json(&state, "/").unwrap_or(json!({}))).into_response()
}

/// GET /v2/groups/{id}.
pub(super) async fn show(State(marathon): State<Shared>, Path(path): Path<String>) -> Response {
    let id = app::canonical_id(&path).unwrap_or(format!("/{path}"));
    let state = marathon.lock();
    match group_json(&state, &id) {
        Some(group) => Json(group).into_response(),
        None => message(
            StatusCode::NOT_FOUND,
            &format!("Group '{id}' does not exist"),
        ),
    }
}
