//! Marathon's REST API: the router over the per-resource handlers (`/v2/apps`, `/v2/deployments`,
//! `/v2/tasks`, `/v2/queue`, `/v2/groups`, `/v2/info`, `/v2/leader`, `/ping`, `/metrics`, the
//! admin routes) and what they share: the query-string extractor, body parsing and the upstream
//! error answers. The handlers do no I/O beyond answering; `gateway` proxies to the leader.

mod admin;
mod apps;
mod deployments;
mod gateway;
mod groups;
mod info;
mod leader;
mod queue;
mod render;
mod system;
mod tasks;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use serde_json::{Value, json};

use crate::marathon::Marathon;
use crate::marathon::app::{Profile, Rejection, Violation};
use crate::marathon::state::{Deployed, Refusal};
use crate::server::with_admin;

type Shared = Arc<Marathon>;

/// The query string as decoded `(name, value)` pairs, in order, repeats kept.
struct QueryPairs(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or("")))
    }
}

impl QueryPairs {
    fn parse(query: &str) -> Self {
        Self(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(name), decode(value))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A boolean parameter: present without a value, or `true`, is true.
    fn flag(&self, name: &str, default: bool) -> bool {
        self.first(name)
            .map(|value| value.is_empty() || value == "true")
            .unwrap_or(default)
    }
}

/// Percent-decoding with `+` as a space, as Jersey decodes query parameters.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 2;
                    }
                    None => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"message": text}))).into_response()
}

fn details(violations: &[Violation]) -> Value {
    json!(
        violations
            .iter()
            .map(|violation| json!({"path": violation.path, "errors": violation.errors}))
            .collect::<Vec<_>>()
    )
}

/// Maps a rejected body to the upstream status and body [`MAR@HEAD:M/api/MarathonExceptionMapper.scala`;
/// `MAR@HEAD:M/api/v2/Validation.scala#failureWrites`].
fn rejection(profile: Profile, rejected: &Rejection) -> Response {
    match rejected {
        Rejection::Types(violations) => {
            let status = match profile {
                Profile::V11 => StatusCode::BAD_REQUEST,
                Profile::V110 => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (
                status,
                Json(json!({"message": "Invalid JSON", "details": details(violations)})),
            )
                .into_response()
        }
        Rejection::Invalid(violations) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Object is not valid", "details": details(violations)})),
        )
            .into_response(),
    }
}

/// A body rejected because an app id does not match [`app::ID_PATTERN`](crate::marathon::app::ID_PATTERN).
fn invalid_id(profile: Profile, path: String) -> Response {
    rejection(
        profile,
        &Rejection::Invalid(vec![Violation {
            path,
            errors: vec![format!(
                "must fully match regular expression '{}'",
                crate::marathon::app::ID_PATTERN
            )],
        }]),
    )
}

/// The answer to a change the state refused [`MAR@HEAD:M/api/MarathonExceptionMapper.scala`].
fn refused(profile: Profile, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Locked { ref deployments } => (
            StatusCode::CONFLICT,
            Json(json!({
                "message": refusal.to_string(),
                "deployments": deployments.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Refusal::AppExists(_) => message(StatusCode::CONFLICT, &refusal.to_string()),
        Refusal::Rejected(rejected) => rejection(profile, &rejected),
        Refusal::UnknownApp(_)
        | Refusal::UnknownVersion { .. }
        | Refusal::UnknownTask(_)
        | Refusal::UnknownDeployment(_)
        | Refusal::NotQueued(_) => message(StatusCode::NOT_FOUND, &refusal.to_string()),
    }
}

/// The 404 of an app id that is not known.
fn unknown_app(id: String) -> Response {
    message(StatusCode::NOT_FOUND, &Refusal::UnknownApp(id).to_string())
}

/// Parses a request body like Jackson would: empty and malformed bodies are 400s.
fn parse_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Box::new((
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Please specify data in JSON format", "details": "No content to map due to end-of-input"})),
        )
            .into_response()));
    }
    serde_json::from_slice(body).map_err(|error| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": "Invalid JSON", "details": error.to_string()})),
            )
                .into_response(),
        )
    })
}

/// The answer to a change that started a deployment: its id and version, with the
/// `Marathon-Deployment-Id` header [HEAD] and `Location` of a created app.
fn deployment_result(
    profile: Profile,
    status: StatusCode,
    deployed: &Deployed,
    location: Option<&str>,
) -> Response {
    let mut response = (
        status,
        Json(json!({"deploymentId": deployed.plan, "version": deployed.version})),
    )
        .into_response();
    if profile == Profile::V110
        && let Ok(plan) = HeaderValue::from_str(&deployed.plan)
    {
        response
            .headers_mut()
            .insert("Marathon-Deployment-Id", plan);
    }
    if let Some(location) = location.and_then(|location| HeaderValue::from_str(location).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn method_not_allowed() -> Response {
    message(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

async fn uri_not_found(State(marathon): State<Shared>, uri: Uri) -> Response {
    match marathon.cfg.profile {
        // [HEAD] maps Jersey's NotFoundException to 500; [1.1.1] 404 with the path (API-SPEC A11).
        Profile::V110 => message(StatusCode::INTERNAL_SERVER_ERROR, "URI not found"),
        Profile::V11 => message(
            StatusCode::NOT_FOUND,
            &format!("URI not found: {}", uri.path()),
        ),
    }
}

/// Marathon's router.
pub fn router(marathon: Shared) -> Router {
    let routes = Router::new()
        .route(
            "/v2/apps",
            get(apps::list).post(apps::create).put(apps::update_many),
        )
        .route(
            "/v2/apps/",
            get(apps::list).post(apps::create).put(apps::update_many),
        )
        .route("/v2/apps/{*path}", any(apps::by_path))
        .route("/v2/deployments", get(deployments::list))
        .route("/v2/deployments/{id}", delete(deployments::cancel))
        .route("/v2/tasks", get(tasks::list))
        .route("/v2/tasks/delete", post(tasks::kill))
        .route("/v2/queue", get(queue::list))
        .route("/v2/queue/{*path}", delete(queue::reset_delay))
        .route("/v2/groups", get(groups::root))
        .route("/v2/groups/", get(groups::root))
        .route("/v2/groups/{*path}", get(groups::show))
        .route("/v2/info", get(info::show))
        .route("/v2/leader", get(leader::show).delete(leader::abdicate))
        .route("/ping", get(system::ping))
        .route("/metrics", get(system::metrics))
        .fallback(uri_not_found)
        .with_state(marathon.clone());
    let admin = marathon.cfg.admin.then(|| admin::routes(marathon.clone()));
    with_admin(routes, admin).layer(axum::middleware::from_fn_with_state(
        marathon,
        gateway::gateway,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn query_flags_and_repeats() {
        let query = QueryPairs::parse("force&scale=false&embed=a&embed=b");
        assert!(query.flag("force", false));
        assert!(!query.flag("scale", true));
        assert!(query.flag("wipe", true));
        assert_eq!(query.all("embed").collect::<Vec<_>>(), ["a", "b"]);
    }
}
