//! The Marathon client (I/O): a narrow trait over our own types, and its HTTP implementation
//! with basic auth from a secret, timeouts, leader fail-over across configured URLs, non-JSON
//! error bodies, and a record of every request for `converged_api_requests_total`. Nothing is
//! dialled outside `allowed_networks` (`dial`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use converged_core::api::{ApiOutcome, ApiRecorder};
use converged_core::secret::{Secret, SecretRef};
use converged_hosts::AllowedNetworks;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::dial;
use crate::error::MesosError;

const SERVICE: &str = "marathon";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What `/v2/info` says about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarathonInfo {
    pub version: String,
    pub leader: Option<String>,
}

/// An app as Marathon reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedApp {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// The definition as Marathon wrote it (normalized before any comparison).
    pub definition: Value,
    pub tasks_running: u32,
    pub tasks_healthy: u32,
    pub deployment_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub started_at: Option<SystemTime>,
    pub affected_apps: Vec<String>,
    pub current_step: u32,
    pub total_steps: u32,
    /// `ScaleApplication /web`, ...
    pub current_actions: Vec<String>,
}

/// An app waiting in Marathon's launch queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedLaunch {
    pub app_id: String,
    pub count: u32,
    /// Why offers were declined, from [HEAD] `processedOffersSummary.rejectSummaryLastOffers`.
    pub declined_for: Vec<String>,
}

/// A request body that may carry resolved secrets: never printed.
#[derive(Clone, PartialEq)]
pub struct AppBody(pub Value);

impl fmt::Debug for AppBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppBody(<redacted>)")
    }
}

#[async_trait]
pub trait MarathonApi: Send + Sync {
    async fn info(&self) -> Result<MarathonInfo, MesosError>;
    /// Every app with task counts and deployments, in one request.
    async fn list_apps(&self) -> Result<Vec<ObservedApp>, MesosError>;
    async fn list_deployments(&self) -> Result<Vec<Deployment>, MesosError>;
    async fn launch_queue(&self) -> Result<Vec<QueuedLaunch>, MesosError>;
    /// POST; an app that already exists counts as created.
    async fn create_app(&self, body: &AppBody) -> Result<(), MesosError>;
    /// PUT with full-replacement semantics.
    async fn replace_app(
        &self,
        id: &str,
        body: &AppBody,
        full_replacement: bool,
    ) -> Result<(), MesosError>;
    /// DELETE; an app that is already gone counts as deleted.
    async fn delete_app(&self, id: &str) -> Result<(), MesosError>;
    /// DELETE /v2/deployments/{id} without force: Marathon rolls the change back.
    async fn rollback_deployment(&self, id: &str) -> Result<(), MesosError>;
    /// Kills tasks without scaling their apps down, so Marathon launches replacements
    /// wherever offers allow. Tasks already gone are ignored by Marathon.
    async fn kill_tasks(&self, task_ids: &[String]) -> Result<(), MesosError>;
}

/// Where and how to reach Marathon.
#[derive(Clone)]
pub struct MarathonEndpoint {
    /// Tried in order; a standby proxies to the leader, so any live one will do.
    pub urls: Vec<String>,
    /// Where `user:password` for basic auth is read from, at every request.
    pub credentials: Option<SecretRef>,
    /// `ssh.allowed_networks`: each URL is checked before every request (`dial::check_url`).
    pub allowed_networks: AllowedNetworks,
}

pub struct HttpMarathon {
    endpoint: MarathonEndpoint,
    client: reqwest::Client,
    recorder: Arc<dyn ApiRecorder>,
}

impl HttpMarathon {
    pub fn new(
        endpoint: MarathonEndpoint,
        recorder: Arc<dyn ApiRecorder>,
    ) -> Result<Self, MesosError> {
        let client = dial::client(&endpoint.allowed_networks, REQUEST_TIMEOUT, CONNECT_TIMEOUT)
            .map_err(|err| MesosError::Unreachable {
                operation: "build the HTTP client",
                url: String::new(),
                message: err.to_string(),
            })?;
        Ok(Self {
            endpoint,
            client,
            recorder,
        })
    }

    /// Sends one request, trying each URL until one answers at all.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, String), MesosError> {
        let credentials = self.credentials()?;
        let mut last_error = None;
        for base in &self.endpoint.urls {
            let url = format!("{}{path}", base.trim_end_matches('/'));
            // A URL outside the networks ends the request rather than falling over to the
            // next: the refusal must show, not hide behind a standby that answers.
            match dial::check_url(&self.endpoint.allowed_networks, &url).await {
                Ok(()) => {}
                Err(err @ MesosError::Unresolved { .. }) => {
                    last_error = Some(err);
                    continue;
                }
                Err(err) => return Err(err),
            }
            let mut request = self
                .client
                .request(method.clone(), &url)
                .header("Accept", "application/json");
            if let Some((user, password)) = &credentials {
                request = request.basic_auth(user, Some(password.expose()));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let outcome = match status {
                        s if s.is_success() => ApiOutcome::Success,
                        StatusCode::TOO_MANY_REQUESTS => ApiOutcome::Throttled,
                        _ => ApiOutcome::Error,
                    };
                    self.recorder.record(
                        SERVICE,
                        operation,
                        outcome,
                        started.elapsed().as_secs_f64(),
                    );
                    return Ok((status, text));
                }
                Err(err) => {
                    self.recorder.record(
                        SERVICE,
                        operation,
                        ApiOutcome::Unreachable,
                        started.elapsed().as_secs_f64(),
                    );
                    last_error = Some(MesosError::Unreachable {
                        operation,
                        url: base.clone(),
                        message: describe_transport_error(&err),
                    });
                }
            }
        }
        Err(last_error.unwrap_or(MesosError::Unreachable {
            operation,
            url: String::new(),
            message: "no Marathon URL is configured".into(),
        }))
    }

    fn credentials(&self) -> Result<Option<(String, Secret)>, MesosError> {
        let Some(reference) = &self.endpoint.credentials else {
            return Ok(None);
        };
        let secret = reference.resolve().map_err(|err| MesosError::Credentials {
            message: err.to_string(),
        })?;
        match secret.expose().split_once(':') {
            Some((user, password)) if !user.is_empty() => {
                Ok(Some((user.to_owned(), Secret::new(password))))
            }
            _ => Err(MesosError::Credentials {
                message: format!("{reference} must hold `user:password`"),
            }),
        }
    }

    async fn get_json(&self, operation: &'static str, path: &str) -> Result<Value, MesosError> {
        let (status, text) = self.send(operation, Method::GET, path, None).await?;
        if !status.is_success() {
            return Err(error_for(operation, status, &text, None));
        }
        serde_json::from_str(&text).map_err(|err| MesosError::Decode {
            operation,
            message: err.to_string(),
        })
    }
}

#[async_trait]
impl MarathonApi for HttpMarathon {
    async fn info(&self) -> Result<MarathonInfo, MesosError> {
        let info = self.get_json("info", "/v2/info").await?;
        Ok(MarathonInfo {
            version: info["version"].as_str().unwrap_or_default().to_owned(),
            leader: info["leader"].as_str().map(str::to_owned),
        })
    }

    async fn list_apps(&self) -> Result<Vec<ObservedApp>, MesosError> {
        let mut body = self
            .get_json(
                "list_apps",
                "/v2/apps?embed=apps.counts&embed=apps.deployments",
            )
            .await?;
        let Some(Value::Array(apps)) = body.as_object_mut().and_then(|b| b.remove("apps")) else {
            return Err(MesosError::Decode {
                operation: "list_apps",
                message: "no `apps` array in the answer".into(),
            });
        };
        Ok(apps.into_iter().map(observed_app).collect())
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>, MesosError> {
        let body = self.get_json("list_deployments", "/v2/deployments").await?;
        Ok(body
            .as_array()
            .map(|items| items.iter().map(deployment).collect())
            .unwrap_or_default())
    }

    async fn launch_queue(&self) -> Result<Vec<QueuedLaunch>, MesosError> {
        let body = self.get_json("launch_queue", "/v2/queue").await?;
        Ok(body["queue"]
            .as_array()
            .map(|items| items.iter().map(queued_launch).collect())
            .unwrap_or_default())
    }

    async fn create_app(&self, body: &AppBody) -> Result<(), MesosError> {
        let (status, text) = self
            .send("create_app", Method::POST, "/v2/apps", Some(&body.0))
            .await?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT if !text.contains("\"deployments\"") => Ok(()),
            _ => Err(error_for(
                "create_app",
                status,
                &text,
                body.0["id"].as_str(),
            )),
        }
    }

    async fn replace_app(
        &self,
        id: &str,
        body: &AppBody,
        full_replacement: bool,
    ) -> Result<(), MesosError> {
        let query = if full_replacement {
            "?partialUpdate=false"
        } else {
            ""
        };
        let path = format!("/v2/apps{id}{query}");
        let (status, text) = self
            .send("replace_app", Method::PUT, &path, Some(&body.0))
            .await?;
        if status.is_success() {
            return Ok(());
        }
        Err(error_for("replace_app", status, &text, Some(id)))
    }

    async fn delete_app(&self, id: &str) -> Result<(), MesosError> {
        let (status, text) = self
            .send("delete_app", Method::DELETE, &format!("/v2/apps{id}"), None)
            .await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(error_for("delete_app", status, &text, Some(id))),
        }
    }

    async fn rollback_deployment(&self, id: &str) -> Result<(), MesosError> {
        let path = format!("/v2/deployments/{id}");
        let (status, text) = self
            .send("rollback_deployment", Method::DELETE, &path, None)
            .await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(error_for("rollback_deployment", status, &text, None)),
        }
    }

    async fn kill_tasks(&self, task_ids: &[String]) -> Result<(), MesosError> {
        let body = serde_json::json!({ "ids": task_ids });
        let (status, text) = self
            .send(
                "kill_tasks",
                Method::POST,
                "/v2/tasks/delete?scale=false",
                Some(&body),
            )
            .await?;
        if status.is_success() {
            return Ok(());
        }
        Err(error_for("kill_tasks", status, &text, None))
    }
}

/// Takes the app's JSON over as its `definition`: a copy of every app, every cycle, was a
/// large share of a no-op cycle at scale.
fn observed_app(app: Value) -> ObservedApp {
    let count = |field: &str| u32::try_from(app[field].as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
    ObservedApp {
        id: app["id"].as_str().unwrap_or_default().to_owned(),
        labels: app["labels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        tasks_running: count("tasksRunning"),
        tasks_healthy: count("tasksHealthy"),
        deployment_ids: app["deployments"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|d| d["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        definition: app,
    }
}

fn deployment(item: &Value) -> Deployment {
    let number = |field: &str| u32::try_from(item[field].as_u64().unwrap_or(0)).unwrap_or(0);
    Deployment {
        id: item["id"].as_str().unwrap_or_default().to_owned(),
        started_at: item["version"]
            .as_str()
            .and_then(|v| humantime::parse_rfc3339_weak(v).ok()),
        affected_apps: item["affectedApps"]
            .as_array()
            .map(|apps| {
                apps.iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        current_step: number("currentStep"),
        total_steps: number("totalSteps"),
        current_actions: item["currentActions"]
            .as_array()
            .map(|actions| {
                actions
                    .iter()
                    .map(|a| {
                        format!(
                            "{} {}",
                            a["action"].as_str().unwrap_or("?"),
                            a["app"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn queued_launch(item: &Value) -> QueuedLaunch {
    let app = item
        .get("app")
        .or_else(|| item.get("run"))
        .unwrap_or(&Value::Null);
    QueuedLaunch {
        app_id: app["id"].as_str().unwrap_or_default().to_owned(),
        count: u32::try_from(item["count"].as_u64().unwrap_or(0)).unwrap_or(0),
        declined_for: item["processedOffersSummary"]["rejectSummaryLastOffers"]
            .as_array()
            .map(|reasons| {
                reasons
                    .iter()
                    .filter(|r| r["declined"].as_u64().unwrap_or(0) > 0)
                    .filter_map(|r| r["reason"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Maps a non-2xx answer to an error. Bodies may be Marathon JSON or a Jetty HTML page.
fn error_for(
    operation: &'static str,
    status: StatusCode,
    body: &str,
    app: Option<&str>,
) -> MesosError {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let message = json
        .as_ref()
        .map(|v| {
            let mut text = v["message"].as_str().unwrap_or_default().to_owned();
            if let Some(details) = v["details"].as_array() {
                let rendered: Vec<String> = details
                    .iter()
                    .map(|d| {
                        let errors: Vec<&str> = d["errors"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        format!(
                            "{}: {}",
                            d["path"].as_str().unwrap_or("/"),
                            errors.join(", ")
                        )
                    })
                    .collect();
                text = format!("{text} ({})", rendered.join("; "));
            } else if let Some(details) = v["details"].as_str() {
                text = format!("{text} ({details})");
            }
            text
        })
        .unwrap_or_else(|| summarize_body(body));
    match status {
        StatusCode::UNAUTHORIZED => MesosError::Unauthorized { operation },
        StatusCode::TOO_MANY_REQUESTS => MesosError::Throttled { operation },
        StatusCode::CONFLICT => {
            let deployments: Vec<&str> = json
                .as_ref()
                .and_then(|v| v["deployments"].as_array())
                .map(|ds| ds.iter().filter_map(|d| d["id"].as_str()).collect())
                .unwrap_or_default();
            if deployments.is_empty() {
                MesosError::Rejected {
                    operation,
                    status: status.as_u16(),
                    message,
                }
            } else {
                MesosError::Locked {
                    operation,
                    app: app.unwrap_or("?").to_owned(),
                    deployments: deployments.join(", "),
                }
            }
        }
        s if s.is_server_error() => MesosError::Unavailable {
            operation,
            status: s.as_u16(),
            message,
        },
        s => MesosError::Rejected {
            operation,
            status: s.as_u16(),
            message,
        },
    }
}

/// The first meaningful text of an HTML or plain body, without tags, at most 200 characters.
fn summarize_body(body: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return "(empty body)".into();
    }
    collapsed.chars().take(200).collect()
}

fn describe_transport_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converged_core::Classified;

    #[test]
    fn error_bodies_become_clear_errors() {
        let locked = r#"{"message":"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.","deployments":[{"id":"d1"}]}"#;
        let cases: Vec<(u16, &str, &str)> = vec![
            (409, locked, "locked by deployment(s) d1"),
            (
                422,
                r#"{"message":"Object is not valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}"#,
                "Object is not valid (/upgradeStrategy/minimumHealthCapacity: is greater than 1)",
            ),
            (
                503,
                "<html><head><title>Error 503</title></head><body><h2>HTTP ERROR 503</h2><p>Could not determine the current leader</p></body></html>",
                "Could not determine the current leader",
            ),
            (401, "<html>Unauthorized</html>", "rejected the credentials"),
            (
                400,
                r#"{"message":"Invalid JSON","details":"Unexpected end-of-input"}"#,
                "Invalid JSON (Unexpected end-of-input)",
            ),
        ];
        for (status, body, needle) in cases {
            let err = error_for(
                "replace_app",
                StatusCode::from_u16(status).unwrap(),
                body,
                Some("/a"),
            );
            assert!(err.to_string().contains(needle), "{status}: {err}");
        }
        let unavailable = error_for("list_apps", StatusCode::BAD_GATEWAY, "", None);
        assert_eq!(unavailable.class(), converged_core::ErrorClass::Transient);
        let unauthorized = error_for("list_apps", StatusCode::UNAUTHORIZED, "", None);
        assert_eq!(unauthorized.class(), converged_core::ErrorClass::Invalid);
    }

    #[tokio::test]
    async fn a_marathon_url_outside_the_allowed_networks_is_never_dialled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let marathon = HttpMarathon::new(
            MarathonEndpoint {
                urls: vec![format!("http://{}", listener.local_addr().unwrap())],
                credentials: None,
                allowed_networks: AllowedNetworks::new(vec!["10.0.0.0/8".parse().unwrap()]),
            },
            Arc::new(converged_testkit::NoMetrics),
        )
        .unwrap();
        let err = marathon.info().await.unwrap_err();
        assert!(matches!(err, MesosError::AddressNotAllowed { .. }), "{err}");
        assert_eq!(err.class(), converged_core::ErrorClass::Unsafe);
        assert!(listener.accept().is_err(), "nothing may connect");
    }

    #[test]
    fn bodies_with_secrets_never_print() {
        let body = AppBody(serde_json::json!({"env": {"PW": "hunter2"}}));
        assert!(!format!("{body:?}").contains("hunter2"));
    }
}
