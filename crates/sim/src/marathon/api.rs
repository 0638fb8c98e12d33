//! Marathon's REST API (`/v2/apps`, `/v2/deployments`, `/v2/tasks`, `/v2/queue`, `/v2/groups`,
//! `/v2/info`, `/v2/leader`, `/ping`, `/metrics`), basic auth, standby proxying and the admin routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use serde_json::{Value, json};

use crate::marathon::Marathon;
use crate::marathon::app::{self, Profile, Rejection, Violation};
use crate::marathon::state::{ActionKind, AppEntry, MarathonState, Task};
use crate::server::{DropLeadership, iso, with_admin};

type Shared = Arc<Marathon>;

fn message(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"message": msg}))).into_response()
}

fn details(v: &[Violation]) -> Value {
    json!(
        v.iter()
            .map(|x| json!({"path": x.path, "errors": x.errors}))
            .collect::<Vec<_>>()
    )
}

/// Maps a rejected body to the upstream status and body [`MAR@HEAD:M/api/MarathonExceptionMapper.scala`;
/// `MAR@HEAD:M/api/v2/Validation.scala#failureWrites`].
fn rejection(profile: Profile, r: &Rejection) -> Response {
    match r {
        Rejection::Types(v) => {
            let status = match profile {
                Profile::V11 => StatusCode::BAD_REQUEST,
                Profile::V110 => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (
                status,
                Json(json!({"message": "Invalid JSON", "details": details(v)})),
            )
                .into_response()
        }
        Rejection::Invalid(v) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Object is not valid", "details": details(v)})),
        )
            .into_response(),
    }
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
    serde_json::from_slice(body).map_err(|e| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": "Invalid JSON", "details": e.to_string()})),
            )
                .into_response(),
        )
    })
}

fn query_map(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn flag(q: &[(String, String)], name: &str, default: bool) -> bool {
    q.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.is_empty() || v == "true")
        .unwrap_or(default)
}

fn locked(ids: &[String]) -> Response {
    // [`MAR@HEAD:M/Exception.scala#AppLockedException`]; the literal `<DEPLOYMENT_ID>` is upstream's.
    (
        StatusCode::CONFLICT,
        Json(json!({
            "message": "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
            "deployments": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

fn unknown_app(id: &str) -> Response {
    message(StatusCode::NOT_FOUND, &format!("App '{id}' does not exist"))
}

fn deployment_result(
    m: &Marathon,
    status: StatusCode,
    id: &str,
    version: &str,
    location: Option<&str>,
) -> Response {
    let mut resp = (
        status,
        Json(json!({"deploymentId": id, "version": version})),
    )
        .into_response();
    if m.cfg.profile == Profile::V110
        && let Ok(v) = HeaderValue::from_str(id)
    {
        resp.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp
}

fn health_json(profile: Profile, t: &Task) -> Option<Value> {
    let h = t.health.as_ref()?;
    let mut o = json!({
        "alive": h.alive,
        "consecutiveFailures": h.consecutive_failures,
        "firstSuccess": h.first_success,
        "lastFailure": h.last_failure,
        "lastSuccess": h.last_success,
        "lastFailureCause": h.last_failure.as_ref().map(|_| "simulated failure"),
    });
    match profile {
        Profile::V11 => o["taskId"] = json!(t.id),
        Profile::V110 => {
            o["instanceId"] = json!(t.id.trim_end_matches("._app.1"));
        }
    }
    Some(o)
}

/// Task JSON [`MAR@1.1.1:Formats.scala#TaskWrites:117-162`; `head/raml/v2/types/task.raml`].
fn task_json(profile: Profile, t: &Task) -> Value {
    let mut o = json!({
        "id": t.id,
        "appId": t.app_id,
        "host": t.host,
        "slaveId": t.agent_id,
        "ports": t.ports,
        "servicePorts": t.service_ports,
        "stagedAt": iso(t.staged_at),
        "startedAt": t.started_at.map(iso),
        "version": t.version,
    });
    if let Some(h) = health_json(profile, t) {
        o["healthCheckResults"] = json!([h]);
    }
    match profile {
        Profile::V11 => {
            o["ipAddresses"] = json!([]);
        }
        Profile::V110 => {
            o["state"] = json!(t.state());
            o["role"] = json!("*");
            if t.started_at.is_none() {
                o.as_object_mut().map(|m| m.remove("startedAt"));
            }
        }
    }
    o
}

#[derive(Clone, Copy, Default)]
struct Embed {
    tasks: bool,
    last_failure: bool,
    readiness: bool,
}

fn embed_of(q: &[(String, String)], prefix: &str) -> Embed {
    let mut e = Embed::default();
    for (k, v) in q {
        if k == "embed" {
            let v = v.strip_prefix(prefix).unwrap_or(v);
            match v {
                "tasks" => e.tasks = true,
                "lastTaskFailure" => e.last_failure = true,
                "readiness" => e.readiness = true,
                _ => {}
            }
        }
    }
    e
}

/// AppInfo = App + counts + deployments (+ embeds) [`AppsResource.scala#index,show`; `TaskForStatistics.scala:36-41`].
fn app_info(st: &MarathonState, entry: &AppEntry, embed: Embed, with_version_info: bool) -> Value {
    let id = entry.def["id"].as_str().unwrap_or_default();
    let vi = with_version_info.then_some((
        entry.last_scaling_at.as_str(),
        entry.last_config_change_at.as_str(),
    ));
    let mut o = app::render(st.profile, &entry.def, vi);
    let tasks = st.tasks_of(id);
    let staged = tasks.iter().filter(|t| t.started_at.is_none()).count();
    let running = tasks.len() - staged;
    let healthy = tasks
        .iter()
        .filter(|t| t.health.as_ref().is_some_and(|h| h.alive))
        .count();
    let unhealthy = tasks
        .iter()
        .filter(|t| t.health.as_ref().is_some_and(|h| !h.alive))
        .count();
    o["tasksStaged"] = json!(staged);
    o["tasksRunning"] = json!(running);
    o["tasksHealthy"] = json!(healthy);
    o["tasksUnhealthy"] = json!(unhealthy);
    o["deployments"] = json!(
        st.deployments
            .iter()
            .filter(|d| d.affected.iter().any(|a| a == id))
            .map(|d| json!({"id": d.id}))
            .collect::<Vec<_>>()
    );
    if embed.tasks {
        o["tasks"] = json!(
            tasks
                .iter()
                .map(|t| task_json(st.profile, t))
                .collect::<Vec<_>>()
        );
    }
    if embed.last_failure
        && let Some(f) = st.last_failure.get(id)
    {
        o["lastTaskFailure"] = f.clone();
    }
    if embed.readiness {
        o["readinessCheckResults"] = json!([]);
    }
    o
}

/// Label selector [`MAR@HEAD:M/api/v2/LabelSelectorParsers.scala`]: `k`, `k==v`, `k!=v`,
/// `k in (a,b)`, `k notin (a,b)`, comma = AND.
fn label_matches(selector: &str, labels: &Value) -> bool {
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    terms.push(cur);
    terms.iter().all(|term| {
        let term = term.trim();
        let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
        let set = |s: &str| -> Vec<String> {
            s.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|x| x.trim().to_string())
                .collect()
        };
        if let Some((k, v)) = term.split_once("==") {
            get(k) == Some(v.trim())
        } else if let Some((k, v)) = term.split_once("!=") {
            get(k) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once(" notin ") {
            get(k).is_none_or(|x| !set(v).iter().any(|s| s == x))
        } else if let Some((k, v)) = term.split_once(" in ") {
            get(k).is_some_and(|x| set(v).iter().any(|s| s == x))
        } else {
            get(term).is_some()
        }
    })
}

async fn list_apps(State(m): State<Shared>, uri: Uri) -> Response {
    let q = query_map(&uri);
    let embed = embed_of(&q, "apps.");
    let cmd = q
        .iter()
        .find(|(k, _)| k == "cmd")
        .map(|(_, v)| v.to_lowercase());
    let idf = q
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.to_lowercase());
    let label = q.iter().find(|(k, _)| k == "label").map(|(_, v)| v.clone());
    let st = m.lock();
    let apps: Vec<Value> = st
        .apps
        .values()
        .filter(|a| {
            cmd.as_ref().is_none_or(|c| {
                a.def["cmd"]
                    .as_str()
                    .is_some_and(|x| x.to_lowercase().contains(c))
            }) && idf.as_ref().is_none_or(|i| {
                a.def["id"]
                    .as_str()
                    .is_some_and(|x| x.to_lowercase().contains(i))
            }) && label
                .as_ref()
                .is_none_or(|l| label_matches(l, &a.def["labels"]))
        })
        .map(|a| app_info(&st, a, embed, true))
        .collect();
    Json(json!({"apps": apps})).into_response()
}

fn now_version() -> String {
    iso(SystemTime::now())
}

/// Creates an app (POST /v2/apps and PUT of an unknown id).
fn create_app(st: &mut MarathonState, mut def: Value, version: &str) -> (String, AppEntry) {
    let id = def["id"].as_str().unwrap_or_default().to_string();
    let mut taken = st.taken_service_ports(&id);
    app::assign_service_ports(&mut def, &mut taken);
    def["version"] = json!(version);
    let entry = AppEntry {
        def: def.clone(),
        last_scaling_at: version.to_string(),
        last_config_change_at: version.to_string(),
        versions: vec![(version.to_string(), def)],
    };
    st.apps.insert(id.clone(), entry.clone());
    st.backoff.remove(&id);
    (id, entry)
}

async fn post_app(State(m): State<Shared>, uri: Uri, body: Bytes) -> Response {
    let q = query_map(&uri);
    let force = flag(&q, "force", false);
    let raw = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let profile = m.cfg.profile;
    let def = match app::normalize(profile, &raw) {
        Ok(d) => d,
        Err(r) => return rejection(profile, &r),
    };
    let id = def["id"].as_str().unwrap_or_default().to_string();
    let mut st = m.lock();
    if st.apps.contains_key(&id) {
        return message(
            StatusCode::CONFLICT,
            &format!("An app with id [{id}] already exists."),
        );
    }
    let conflicts = st.conflicts(std::slice::from_ref(&id));
    if !conflicts.is_empty() {
        if !force {
            return locked(&conflicts);
        }
        st.cancel(&conflicts);
    }
    let version = now_version();
    let (id, entry) = create_app(&mut st, def, &version);
    let plan = st.start_deployment(
        &version,
        vec![
            vec![(ActionKind::Start, id.clone())],
            vec![(ActionKind::Scale, id.clone())],
        ],
        BTreeMap::from([(id.clone(), None)]),
    );
    // The POST answer has only a bare version, so no versionInfo [`MAR@1.1.1:Formats.scala#VersionInfoWrites`].
    let mut body = app_info(&st, &entry, Embed::default(), false);
    body["deployments"] = json!([{"id": plan}]);
    if profile == Profile::V11 {
        body["tasks"] = json!([]);
    }
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if profile == Profile::V110
        && let Ok(v) = HeaderValue::from_str(&plan)
    {
        resp.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    resp
}

/// What an update did to one app.
struct Update {
    created: bool,
    steps: Vec<(ActionKind, String)>,
    original: Option<AppEntry>,
}

/// Applies an update to one app inside a state lock; returns the plan steps for it.
fn update_one(
    st: &mut MarathonState,
    profile: Profile,
    id: &str,
    raw: &Value,
    partial: bool,
    version: &str,
) -> Result<Update, Box<Response>> {
    let existing = st.apps.get(id).cloned();
    if let (Some(existing), Some(v)) = (&existing, raw.get("version").and_then(Value::as_str)) {
        // A `version` in the body is a rollback to that version; the rest is ignored.
        let Some((_, old)) = existing.versions.iter().find(|(ver, _)| ver == v) else {
            return Err(Box::new(message(
                StatusCode::NOT_FOUND,
                &format!("App '{id}' does not exist in version {v}"),
            )));
        };
        let mut def = old.clone();
        def["version"] = json!(version);
        let entry = st
            .apps
            .get_mut(id)
            .ok_or_else(|| Box::new(unknown_app(id)))?;
        entry.def = def.clone();
        entry.last_config_change_at = version.to_string();
        entry.last_scaling_at = version.to_string();
        entry.versions.push((version.to_string(), def));
        return Ok(Update {
            created: false,
            steps: vec![(ActionKind::Restart, id.to_string())],
            original: Some(existing.clone()),
        });
    }
    let mut merged = match (&existing, partial) {
        (Some(e), true) => {
            let mut base = e.def.clone();
            if let (Some(b), Some(r)) = (base.as_object_mut(), raw.as_object()) {
                if r.get("container")
                    .is_some_and(|c| c["docker"].get("network").is_some())
                    && r.get("networks").is_none()
                {
                    b.remove("networks");
                }
                if r.contains_key("ports") && !r.contains_key("portDefinitions") {
                    b.remove("portDefinitions");
                }
                if r.contains_key("uris") && !r.contains_key("fetch") {
                    b.remove("fetch");
                }
                for (k, v) in r {
                    b.insert(k.clone(), v.clone());
                }
            }
            base
        }
        _ => raw.clone(),
    };
    merged["id"] = json!(id);
    let mut def = app::normalize(profile, &merged).map_err(|r| Box::new(rejection(profile, &r)))?;
    match existing {
        None => {
            create_app(st, def, version);
            Ok(Update {
                created: true,
                steps: vec![
                    (ActionKind::Start, id.to_string()),
                    (ActionKind::Scale, id.to_string()),
                ],
                original: None,
            })
        }
        Some(e) => {
            let mut taken = st.taken_service_ports(id);
            app::assign_service_ports(&mut def, &mut taken);
            let mut old = e.def.clone();
            old["version"] = Value::Null;
            let mut cmp = def.clone();
            cmp["version"] = Value::Null;
            let kind = if old == cmp {
                None
            } else if app::only_scale_change(&old, &cmp) {
                Some(ActionKind::Scale)
            } else {
                Some(ActionKind::Restart)
            };
            def["version"] = json!(version);
            let entry = st
                .apps
                .get_mut(id)
                .ok_or_else(|| Box::new(unknown_app(id)))?;
            entry.def = def.clone();
            match kind {
                Some(ActionKind::Scale) => entry.last_scaling_at = version.to_string(),
                Some(_) => {
                    entry.last_scaling_at = version.to_string();
                    entry.last_config_change_at = version.to_string();
                }
                None => {}
            }
            entry.versions.push((version.to_string(), def));
            if kind == Some(ActionKind::Restart) {
                st.backoff.remove(id);
            }
            Ok(Update {
                created: false,
                steps: kind.map(|k| (k, id.to_string())).into_iter().collect(),
                original: Some(e),
            })
        }
    }
}

async fn put_app(m: Shared, id: String, uri: Uri, body: Bytes) -> Response {
    let q = query_map(&uri);
    let force = flag(&q, "force", false);
    // [1.1.1] has no partialUpdate: always merge semantics.
    let partial = m.cfg.profile == Profile::V11 || flag(&q, "partialUpdate", true);
    let raw = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(id) = app::canonical_id(&id) else {
        return rejection(
            m.cfg.profile,
            &Rejection::Invalid(vec![Violation {
                path: "/id".into(),
                errors: vec![format!(
                    "must fully match regular expression '{}'",
                    app::ID_PATTERN
                )],
            }]),
        );
    };
    let mut st = m.lock();
    let conflicts = st.conflicts(std::slice::from_ref(&id));
    if !conflicts.is_empty() && !force {
        return locked(&conflicts);
    }
    let version = now_version();
    let Update {
        created,
        steps,
        original,
    } = match update_one(&mut st, m.cfg.profile, &id, &raw, partial, &version) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    st.cancel(&conflicts);
    let (step1, step2): (Vec<_>, Vec<_>) = steps
        .into_iter()
        .partition(|(k, _)| *k == ActionKind::Start);
    let plan = st.start_deployment(
        &version,
        vec![step1, step2],
        BTreeMap::from([(id.clone(), original)]),
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    deployment_result(&m, status, &plan, &version, created.then_some(id.as_str()))
}

async fn put_apps(State(m): State<Shared>, uri: Uri, body: Bytes) -> Response {
    let q = query_map(&uri);
    let force = flag(&q, "force", false);
    let partial = m.cfg.profile == Profile::V11 || flag(&q, "partialUpdate", true);
    let raw = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(items) = raw.as_array() else {
        return rejection(
            m.cfg.profile,
            &Rejection::Types(vec![Violation {
                path: "".into(),
                errors: vec!["error.expected.jsarray".into()],
            }]),
        );
    };
    let mut ids = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item["id"].as_str().and_then(app::canonical_id) {
            Some(id) => ids.push(id),
            None => {
                return rejection(
                    m.cfg.profile,
                    &Rejection::Invalid(vec![Violation {
                        path: format!("({i})/id"),
                        errors: vec![format!(
                            "must fully match regular expression '{}'",
                            app::ID_PATTERN
                        )],
                    }]),
                );
            }
        }
    }
    // Validate everything before changing anything.
    for item in items {
        if let Err(r) = app::normalize(m.cfg.profile, item)
            && !partial
        {
            return rejection(m.cfg.profile, &r);
        }
    }
    let mut st = m.lock();
    let conflicts = st.conflicts(&ids);
    if !conflicts.is_empty() && !force {
        return locked(&conflicts);
    }
    let snapshot = st.apps.clone();
    let version = now_version();
    let mut starts = Vec::new();
    let mut rest = Vec::new();
    let mut original = BTreeMap::new();
    for (id, item) in ids.iter().zip(items) {
        match update_one(&mut st, m.cfg.profile, id, item, partial, &version) {
            Ok(Update {
                steps,
                original: orig,
                ..
            }) => {
                original.insert(id.clone(), orig);
                for s in steps {
                    if s.0 == ActionKind::Start {
                        starts.push(s)
                    } else {
                        rest.push(s)
                    }
                }
            }
            Err(r) => {
                st.apps = snapshot;
                return *r;
            }
        }
    }
    st.cancel(&conflicts);
    let plan = st.start_deployment(&version, vec![starts, rest], original);
    deployment_result(&m, StatusCode::OK, &plan, &version, None)
}

async fn delete_app(m: Shared, id: String, uri: Uri) -> Response {
    let q = query_map(&uri);
    // DELETE defaults to force=true [`MAR@1.1.1:...AppsResource.scala#delete` @DefaultValue("true")].
    let force = flag(&q, "force", true);
    let id = app::canonical_id(&id).unwrap_or(id);
    let mut st = m.lock();
    let Some(entry) = st.apps.get(&id).cloned() else {
        return unknown_app(&id);
    };
    let conflicts = st.conflicts(std::slice::from_ref(&id));
    if !conflicts.is_empty() {
        if !force {
            return locked(&conflicts);
        }
        st.cancel(&conflicts);
    }
    st.apps.remove(&id);
    st.backoff.remove(&id);
    st.failing_health.remove(&id);
    let version = now_version();
    let plan = st.start_deployment(
        &version,
        vec![vec![(ActionKind::Stop, id.clone())]],
        BTreeMap::from([(id, Some(entry))]),
    );
    deployment_result(&m, StatusCode::OK, &plan, &version, None)
}

async fn restart_app(m: Shared, id: String, uri: Uri) -> Response {
    let q = query_map(&uri);
    let force = flag(&q, "force", false);
    let id = app::canonical_id(&id).unwrap_or(id);
    let mut st = m.lock();
    let Some(entry) = st.apps.get(&id).cloned() else {
        return unknown_app(&id);
    };
    let conflicts = st.conflicts(std::slice::from_ref(&id));
    if !conflicts.is_empty() {
        if !force {
            return locked(&conflicts);
        }
        st.cancel(&conflicts);
    }
    let version = now_version();
    if let Some(e) = st.apps.get_mut(&id) {
        e.def["version"] = json!(version);
        e.last_config_change_at = version.clone();
        e.versions.push((version.clone(), e.def.clone()));
    }
    let plan = st.start_deployment(
        &version,
        vec![vec![(ActionKind::Restart, id.clone())]],
        BTreeMap::from([(id, Some(entry))]),
    );
    deployment_result(&m, StatusCode::OK, &plan, &version, None)
}

fn show_app(m: &Marathon, id: &str, uri: &Uri) -> Response {
    let q = query_map(uri);
    let st = m.lock();
    if let Some(group) = id.strip_suffix('*') {
        let prefix = format!("/{}", group.trim_matches('/'));
        let prefix = if prefix == "/" {
            prefix
        } else {
            format!("{prefix}/")
        };
        let apps: Vec<Value> = st
            .apps
            .values()
            .filter(|a| a.def["id"].as_str().is_some_and(|x| x.starts_with(&prefix)))
            .map(|a| {
                app_info(
                    &st,
                    a,
                    Embed {
                        tasks: true,
                        last_failure: true,
                        readiness: false,
                    },
                    true,
                )
            })
            .collect();
        if apps.is_empty() {
            return message(
                StatusCode::NOT_FOUND,
                &format!("Group '{}' does not exist", prefix.trim_end_matches('/')),
            );
        }
        return Json(json!({"*": apps})).into_response();
    }
    let id = app::canonical_id(id).unwrap_or(id.to_string());
    match st.apps.get(&id) {
        Some(a) => {
            let mut e = embed_of(&q, "app.");
            e.tasks = true;
            e.last_failure = true;
            Json(json!({"app": app_info(&st, a, e, true)})).into_response()
        }
        None => unknown_app(&id),
    }
}

async fn apps_path(
    State(m): State<Shared>,
    method: Method,
    Path(path): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = path.trim_end_matches('/').to_string();
    let with_slash = format!("/{path}");
    if method == Method::POST
        && let Some(id) = with_slash.strip_suffix("/restart")
    {
        return restart_app(m, id.to_string(), uri).await;
    }
    if let Some((id, rest)) = with_slash.split_once("/versions") {
        if method != Method::GET {
            return method_not_allowed();
        }
        let id = app::canonical_id(id).unwrap_or(id.to_string());
        let st = m.lock();
        let Some(entry) = st.apps.get(&id) else {
            return unknown_app(&id);
        };
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            let mut v: Vec<&String> = entry.versions.iter().map(|(v, _)| v).collect();
            v.reverse();
            return Json(json!({"versions": v})).into_response();
        }
        return match entry.versions.iter().find(|(v, _)| v == rest) {
            Some((_, def)) => Json(app::render(st.profile, def, None)).into_response(),
            None => message(
                StatusCode::NOT_FOUND,
                &format!("App '{id}' does not exist in version {rest}"),
            ),
        };
    }
    if let Some((id, rest)) = with_slash.split_once("/tasks") {
        return app_tasks(&m, method, id, rest.trim_start_matches('/'), &uri);
    }
    match method {
        Method::GET => show_app(&m, &path, &uri),
        Method::PUT => put_app(m, path, uri, body).await,
        Method::DELETE => delete_app(m, path, uri).await,
        _ => method_not_allowed(),
    }
}

fn method_not_allowed() -> Response {
    message(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

fn app_tasks(m: &Marathon, method: Method, id: &str, task: &str, uri: &Uri) -> Response {
    let id = app::canonical_id(id).unwrap_or(id.to_string());
    let q = query_map(uri);
    let mut st = m.lock();
    if !st.apps.contains_key(&id) {
        return unknown_app(&id);
    }
    match method {
        Method::GET => {
            let tasks: Vec<Value> = st
                .tasks_of(&id)
                .iter()
                .map(|t| task_json(st.profile, t))
                .collect();
            Json(json!({"tasks": tasks})).into_response()
        }
        Method::DELETE => {
            let scale = flag(&q, "scale", false);
            let host = q.iter().find(|(k, _)| k == "host").map(|(_, v)| v.clone());
            let victims: Vec<String> = st
                .tasks_of(&id)
                .iter()
                .filter(|t| {
                    (task.is_empty() || t.id == task) && host.as_ref().is_none_or(|h| &t.host == h)
                })
                .map(|t| t.id.clone())
                .collect();
            if !task.is_empty() && victims.is_empty() {
                return message(
                    StatusCode::NOT_FOUND,
                    &format!("Task '{task}' does not exist"),
                );
            }
            let profile = st.profile;
            let killed: Vec<Value> = victims
                .iter()
                .filter_map(|v| st.kill(v, false, "killed via API"))
                .map(|t| task_json(profile, &t))
                .collect();
            if scale {
                let version = now_version();
                if let Some(e) = st.apps.get_mut(&id) {
                    let n = e.def["instances"]
                        .as_u64()
                        .unwrap_or(0)
                        .saturating_sub(killed.len() as u64);
                    e.def["instances"] = json!(n);
                    e.def["version"] = json!(version);
                    e.last_scaling_at = version.clone();
                    e.versions.push((version.clone(), e.def.clone()));
                }
                let plan = st.start_deployment(
                    &version,
                    vec![vec![(ActionKind::Scale, id.clone())]],
                    BTreeMap::from([(id, None)]),
                );
                return deployment_result(m, StatusCode::OK, &plan, &version, None);
            }
            if task.is_empty() {
                Json(json!({"tasks": killed})).into_response()
            } else {
                Json(json!({"task": killed.first()})).into_response()
            }
        }
        _ => method_not_allowed(),
    }
}

fn deployment_json(profile: Profile, d: &crate::marathon::state::Deployment) -> Value {
    // [1.1.1] steps use "type", currentActions use "action" [`MAR@1.1.1:Formats.scala:355-378`];
    // [HEAD] both use "action" [`MAR@HEAD:M/raml/DeploymentPlanConversion.scala`].
    let key = match profile {
        Profile::V11 => "type",
        Profile::V110 => "action",
    };
    let steps: Vec<Value> = d
        .steps
        .iter()
        .map(|s| json!({"actions": s.iter().map(|a| json!({key: a.kind.name(), "app": a.app})).collect::<Vec<_>>()}))
        .collect();
    let current: Vec<Value> = d
        .steps
        .get(d.current)
        .map(|s| {
            s.iter()
                .map(
                    |a| json!({"action": a.kind.name(), "app": a.app, "readinessCheckResults": []}),
                )
                .collect()
        })
        .unwrap_or_default();
    let mut o = json!({
        "id": d.id,
        "version": d.version,
        "affectedApps": d.affected,
        "steps": steps,
        "currentActions": current,
        "currentStep": (d.current + 1).min(d.steps.len().max(1)),
        "totalSteps": d.steps.len(),
    });
    if profile == Profile::V110 {
        o["affectedPods"] = json!([]);
    }
    o
}

async fn list_deployments(State(m): State<Shared>) -> Json<Value> {
    let st = m.lock();
    Json(json!(
        st.deployments
            .iter()
            .map(|d| deployment_json(st.profile, d))
            .collect::<Vec<_>>()
    ))
}

async fn delete_deployment(State(m): State<Shared>, Path(id): Path<String>, uri: Uri) -> Response {
    let q = query_map(&uri);
    let force = flag(&q, "force", false);
    let mut st = m.lock();
    let Some(d) = st.deployments.iter().find(|d| d.id == id).cloned() else {
        return message(
            StatusCode::NOT_FOUND,
            &format!("DeploymentPlan {id} does not exist"),
        );
    };
    st.cancel(std::slice::from_ref(&id));
    if force {
        return StatusCode::ACCEPTED.into_response();
    }
    // Rollback: a new (forced) plan back to the definitions before `d` [`DeploymentsResource.scala#cancel`].
    let version = now_version();
    let mut steps = Vec::new();
    let mut original = BTreeMap::new();
    for (app_id, before) in &d.original {
        let now = st.apps.get(app_id).cloned();
        original.insert(app_id.clone(), now.clone());
        match before {
            None => {
                st.apps.remove(app_id);
                steps.push((ActionKind::Stop, app_id.clone()));
            }
            Some(prev) => {
                let mut def = prev.def.clone();
                def["version"] = json!(version);
                let scale_only = now
                    .as_ref()
                    .is_some_and(|n| app::only_scale_change(&n.def, &prev.def));
                let mut entry = prev.clone();
                entry.def = def.clone();
                entry.versions = now.map(|n| n.versions).unwrap_or_default();
                entry.versions.push((version.clone(), def));
                st.apps.insert(app_id.clone(), entry);
                steps.push((
                    if scale_only {
                        ActionKind::Scale
                    } else {
                        ActionKind::Restart
                    },
                    app_id.clone(),
                ));
            }
        }
    }
    let plan = st.start_deployment(&version, vec![steps], original);
    deployment_result(&m, StatusCode::OK, &plan, &version, None)
}

async fn list_tasks(State(m): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    let q = query_map(&uri);
    let statuses: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "status" || k == "status[]")
        .map(|(_, v)| v.to_lowercase())
        .collect();
    let st = m.lock();
    let tasks: Vec<&Task> = st
        .tasks
        .values()
        .filter(|t| {
            statuses.is_empty()
                || statuses.iter().any(|s| {
                    (s == "running" && t.started_at.is_some())
                        || (s == "staging" && t.started_at.is_none())
                })
        })
        .collect();
    let wants_text = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("text/plain"));
    if wants_text {
        // `appId servicePort host:port ...` per service port [`apps.raml` /tasks text/plain].
        let mut lines = Vec::new();
        for (id, a) in &st.apps {
            for (i, sp) in app::service_ports(&a.def).iter().enumerate() {
                let mut line = format!("{}\t{sp}\t", id.trim_start_matches('/').replace('/', "_"));
                for t in tasks.iter().filter(|t| &t.app_id == id) {
                    if let Some(p) = t.ports.get(i) {
                        line.push_str(&format!("{}:{p}\t", t.host));
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
    Json(json!({"tasks": tasks.iter().map(|t| task_json(st.profile, t)).collect::<Vec<_>>()}))
        .into_response()
}

async fn delete_tasks(State(m): State<Shared>, uri: Uri, body: Bytes) -> Response {
    let q = query_map(&uri);
    let scale = flag(&q, "scale", false);
    if scale && flag(&q, "wipe", false) {
        return message(
            StatusCode::BAD_REQUEST,
            "You cannot use scale and wipe at the same time.",
        );
    }
    let raw = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let ids: Vec<String> = raw["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut st = m.lock();
    let profile = st.profile;
    let killed: Vec<Value> = ids
        .iter()
        .filter_map(|id| st.kill(id, false, "killed via API"))
        .map(|t| task_json(profile, &t))
        .collect();
    Json(json!({"tasks": killed})).into_response()
}

async fn queue(State(m): State<Shared>) -> Json<Value> {
    let st = m.lock();
    let items: Vec<Value> = st
        .queue()
        .into_iter()
        .filter_map(|(id, count)| {
            let a = st.apps.get(&id)?;
            let left = st.backoff.get(&id).map(|b| b.until.saturating_duration_since(Instant::now())).unwrap_or(Duration::ZERO);
            let mut o = json!({
                "app": app::render(st.profile, &a.def, Some((&a.last_scaling_at, &a.last_config_change_at))),
                "count": count,
                "delay": {"timeLeftSeconds": left.as_secs(), "overdue": left.is_zero()},
            });
            if st.profile == Profile::V110 {
                let since = st.queued_since.get(&id).copied().unwrap_or_else(SystemTime::now);
                o["role"] = json!("*");
                o["since"] = json!(iso(since));
                o["processedOffersSummary"] = json!({"processedOffersCount": 0, "unusedOffersCount": 0,
                    "rejectSummaryLastOffers": [], "rejectSummaryLaunchAttempt": []});
            }
            Some(o)
        })
        .collect();
    Json(json!({"queue": items}))
}

async fn reset_delay(State(m): State<Shared>, Path(path): Path<String>) -> Response {
    let Some(id) = path.strip_suffix("/delay").and_then(app::canonical_id) else {
        return message(StatusCode::NOT_FOUND, "URI not found");
    };
    let mut st = m.lock();
    if st.queue().iter().any(|(a, _)| *a == id) {
        st.backoff.remove(&id);
        StatusCode::NO_CONTENT.into_response()
    } else {
        message(
            StatusCode::NOT_FOUND,
            &format!("Application {id} not found in tasks queue."),
        )
    }
}

fn group_json(st: &MarathonState, id: &str) -> Option<Value> {
    let prefix = if id == "/" {
        "/".to_string()
    } else {
        format!("{id}/")
    };
    let mut apps = Vec::new();
    let mut children: BTreeMap<String, ()> = BTreeMap::new();
    for (app_id, a) in &st.apps {
        let Some(rest) = app_id.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            None => apps.push(app_info(st, a, Embed::default(), true)),
            Some((child, _)) => {
                children.insert(format!("{prefix}{child}"), ());
            }
        }
    }
    if id != "/" && apps.is_empty() && children.is_empty() {
        return None;
    }
    let groups: Vec<Value> = children.keys().filter_map(|c| group_json(st, c)).collect();
    let version = st
        .apps
        .values()
        .filter_map(|a| a.def["version"].as_str())
        .max()
        .map(String::from)
        .unwrap_or_else(now_version);
    let mut o =
        json!({"id": id, "apps": apps, "groups": groups, "dependencies": [], "version": version});
    if st.profile == Profile::V110 {
        o["pods"] = json!([]);
    }
    Some(o)
}

async fn groups_root(State(m): State<Shared>) -> Response {
    let st = m.lock();
    Json(group_json(&st, "/").unwrap_or(json!({}))).into_response()
}

async fn group(State(m): State<Shared>, Path(path): Path<String>) -> Response {
    let id = app::canonical_id(&path).unwrap_or(format!("/{path}"));
    let st = m.lock();
    match group_json(&st, &id) {
        Some(g) => Json(g).into_response(),
        None => message(
            StatusCode::NOT_FOUND,
            &format!("Group '{id}' does not exist"),
        ),
    }
}

async fn info(State(m): State<Shared>) -> Json<Value> {
    let state = m.leadership();
    let zk = m.cfg.zk.clone();
    let mut o = json!({
        "name": "marathon",
        "version": m.cfg.profile.version(),
        "elected": state.elected,
        "leader": state.leader,
        "frameworkId": m.framework_id(),
        "marathon_config": {
            "master": m.cfg.master, "framework_name": "marathon", "ha": zk.is_some(), "checkpoint": true,
            "failover_timeout": 604800, "hostname": m.cfg.hostname, "local_port_min": 10000, "local_port_max": 20000,
            "executor": "//cmd", "webui_url": null, "mesos_role": m.cfg.roles.mesos_role, "mesos_user": "root",
            "task_launch_timeout": 300000, "reconciliation_initial_delay": 15000, "reconciliation_interval": 600000,
            "leader_proxy_connection_timeout_ms": 5000, "leader_proxy_read_timeout_ms": 10000,
        },
        "zookeeper_config": {"zk": zk, "zk_timeout": 10000, "zk_session_timeout": m.cfg.zk_session_timeout.as_millis() as u64, "zk_max_versions": 50},
        "http_config": {"http_port": m.cfg.addr.port(), "https_port": 8443},
    });
    match m.cfg.profile {
        Profile::V110 => o["buildref"] = json!("unknown"),
        Profile::V11 => o["event_subscriber"] = Value::Null,
    }
    Json(o)
}

async fn leader(State(m): State<Shared>) -> Response {
    match m.election.state().leader {
        Some(l) => Json(json!({"leader": l})).into_response(),
        None => message(StatusCode::NOT_FOUND, "There is no leader"),
    }
}

async fn abdicate(State(m): State<Shared>) -> Response {
    if !m.election.state().elected {
        return message(StatusCode::NOT_FOUND, "There is no leader");
    }
    m.election.abdicate(Duration::from_millis(500)).await;
    Json(json!({"message": "Leadership abdicated"})).into_response()
}

async fn ping(State(m): State<Shared>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if m.cfg.profile == Profile::V110 {
        // [`MAR@HEAD:M/api/SystemResource.scala#ping`]
        if accept.contains("application/json") {
            return Json(json!("pong")).into_response();
        }
        if !(accept.contains("text/") || accept.contains("*/*")) {
            return StatusCode::NO_CONTENT.into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain")], "pong").into_response()
}

async fn metrics(State(m): State<Shared>) -> Json<Value> {
    let st = m.lock();
    let running = st.tasks.values().filter(|t| t.started_at.is_some()).count();
    Json(json!({
        "version": "4.0.0",
        "gauges": {
            "marathon.apps.active.gauge": {"value": st.apps.len()},
            "marathon.deployments.active.gauge": {"value": st.deployments.len()},
            "marathon.instances.running.gauge": {"value": running},
            "marathon.instances.staged.gauge": {"value": st.tasks.len() - running},
        },
        "counters": {}, "histograms": {}, "meters": {}, "timers": {},
    }))
}

async fn uri_not_found(State(m): State<Shared>, uri: Uri) -> Response {
    match m.cfg.profile {
        // [HEAD] maps Jersey's NotFoundException to 500; [1.1.1] 404 with the path (API-SPEC A11).
        Profile::V110 => message(StatusCode::INTERNAL_SERVER_ERROR, "URI not found"),
        Profile::V11 => message(
            StatusCode::NOT_FOUND,
            &format!("URI not found: {}", uri.path()),
        ),
    }
}

fn jetty_error(status: StatusCode, reason: &str) -> Response {
    let code = status.as_u16();
    let body = format!(
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n<title>Error {code} {reason}</title>\n</head>\n<body><h2>HTTP ERROR {code}</h2>\n<p>Problem accessing {reason}. Reason:\n<pre>    {reason}</pre></p>\n</body>\n</html>\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html;charset=ISO-8859-1")],
        body,
    )
        .into_response()
}

/// Basic auth on every path [`MAR@HEAD:M/api/HttpModule.scala#createSecurityHandler`], then the
/// leader proxy [`MAR@HEAD:M/api/LeaderProxyFilter.scala`], then the leader's response headers.
async fn front(State(m): State<Shared>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/__sim") {
        return next.run(req).await;
    }
    if let Some((user, pass)) = &m.cfg.http_credentials {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .is_some_and(|d| d == format!("{user}:{pass}").as_bytes());
        if !ok {
            let mut r = jetty_error(StatusCode::UNAUTHORIZED, "Unauthorized");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("basic realm=\"Mesosphere\""),
            );
            return r;
        }
    }
    let me = m.host_port();
    // Not the leader: wait up to 10 × 250 ms for one, then proxy or give up.
    let mut state = m.leadership();
    for _ in 0..10 {
        if state.elected || state.leader.as_ref().is_some_and(|l| *l != me) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        state = m.leadership();
    }
    if !state.elected {
        return match state.leader.filter(|l| *l != me) {
            Some(leader) => proxy(&m, &leader, req).await,
            None => {
                let status = match m.cfg.profile {
                    Profile::V11 => StatusCode::SERVICE_UNAVAILABLE,
                    Profile::V110 => StatusCode::BAD_GATEWAY,
                };
                jetty_error(status, "Could not determine the current leader")
            }
        };
    }
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&format!("http://{me}")) {
        resp.headers_mut().insert("X-Marathon-Leader", v);
    }
    if m.cfg.profile == Profile::V110 {
        resp.headers_mut()
            .insert("X-Frame-Options", HeaderValue::from_static("DENY"));
        resp.headers_mut().insert(
            "X-XSS-Protection",
            HeaderValue::from_static("1; mode=block"),
        );
    }
    resp
}

async fn proxy(m: &Marathon, leader: &str, req: Request) -> Response {
    let via = format!("1.1 {}", m.host_port());
    if req
        .headers()
        .get_all("X-Marathon-Via")
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s == via))
    {
        return jetty_error(StatusCode::BAD_GATEWAY, "Detected proxying loop.");
    }
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let url = format!("http://{leader}{pq}");
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return jetty_error(StatusCode::BAD_REQUEST, "Bad Request");
    };
    let client = reqwest::Client::new();
    let mut rb = client
        .request(parts.method.clone(), &url)
        .body(bytes.to_vec());
    for (k, v) in parts.headers.iter() {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            rb = rb.header(k, v);
        }
    }
    rb = rb.header("X-Marathon-Via", via.clone());
    match rb.send().await {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let body = r.bytes().await.unwrap_or_default();
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            for (k, v) in headers.iter() {
                if k != header::TRANSFER_ENCODING
                    && k != header::CONNECTION
                    && k != header::CONTENT_LENGTH
                {
                    resp.headers_mut().append(k, v.clone());
                }
            }
            if let Ok(v) = HeaderValue::from_str(&via) {
                resp.headers_mut().append("X-Marathon-Via", v);
            }
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, leader, "proxy to leader failed");
            jetty_error(StatusCode::BAD_GATEWAY, "Connection to leader refused.")
        }
    }
}

async fn admin_kill(State(m): State<Shared>, Path(id): Path<String>) -> StatusCode {
    match m.lock().kill(&id, true, "killed (admin)") {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

async fn admin_health(
    State(m): State<Shared>,
    Path(path): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    let Some(id) = path.strip_suffix("/health").and_then(app::canonical_id) else {
        return StatusCode::NOT_FOUND;
    };
    let healthy = body["healthy"].as_bool().unwrap_or(true);
    let mut st = m.lock();
    if healthy {
        st.failing_health.remove(&id);
    } else {
        st.failing_health.insert(id);
    }
    StatusCode::NO_CONTENT
}

async fn admin_drop(State(m): State<Shared>, Json(req): Json<DropLeadership>) -> StatusCode {
    m.election.abdicate(Duration::from_millis(req.for_ms)).await;
    StatusCode::NO_CONTENT
}

/// Marathon's router.
pub fn router(m: Shared) -> Router {
    let r = Router::new()
        .route("/v2/apps", get(list_apps).post(post_app).put(put_apps))
        .route("/v2/apps/", get(list_apps).post(post_app).put(put_apps))
        .route("/v2/apps/{*path}", any(apps_path))
        .route("/v2/deployments", get(list_deployments))
        .route(
            "/v2/deployments/{id}",
            axum::routing::delete(delete_deployment),
        )
        .route("/v2/tasks", get(list_tasks))
        .route("/v2/tasks/delete", post(delete_tasks))
        .route("/v2/queue", get(queue))
        .route("/v2/queue/{*path}", axum::routing::delete(reset_delay))
        .route("/v2/groups", get(groups_root))
        .route("/v2/groups/", get(groups_root))
        .route("/v2/groups/{*path}", get(group))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader).delete(abdicate))
        .route("/ping", get(ping))
        .route("/metrics", get(metrics))
        .fallback(uri_not_found)
        .with_state(m.clone());
    let admin = m.cfg.admin.then(|| {
        Router::new()
            .route("/__sim/tasks/{id}/kill", post(admin_kill))
            .route("/__sim/apps/{*path}", post(admin_health))
            .route("/__sim/leadership/drop", post(admin_drop))
            .with_state(m.clone())
    });
    with_admin(r, admin).layer(axum::middleware::from_fn_with_state(m, front))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marathon::state::task_name;

    #[test]
    fn label_selectors() {
        let l = json!({"env": "prod", "tier": "web"});
        assert!(label_matches("env", &l));
        assert!(label_matches("env==prod,tier in (web, db)", &l));
        assert!(!label_matches("env!=prod", &l));
        assert!(label_matches("tier notin (db)", &l));
        assert!(!label_matches("missing", &l));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn task_names_reverse_segments() {
        assert_eq!(task_name("/prod/web"), "web.prod");
    }
}
