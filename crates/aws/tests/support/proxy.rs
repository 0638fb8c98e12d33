//! A fault-injecting reverse proxy in front of moto (which cannot throttle or fail on demand):
//! it answers a share of EC2 requests with `RequestLimitExceeded`, denies chosen operations,
//! forwards a request and then never answers (a crash "after the request was sent"), or says
//! a Route 53 change is still `PENDING` (moto answers `INSYNC` at once).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// What to inject. Changed at any time through `FaultProxy::set`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The share of EC2 requests answered with `RequestLimitExceeded` (HTTP 503).
    pub throttle_ec2: f64,
    /// Operations answered with `UnauthorizedOperation` (EC2) or `AccessDenied` (Route 53).
    pub deny: Vec<&'static str>,
    /// Operations forwarded to moto whose answers are never delivered.
    pub hold: Vec<&'static str>,
    /// GetChange answers `PENDING` instead of moto's `INSYNC`.
    pub changes_pending: bool,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<Faults>,
    /// Requests seen per operation: (forwarded, injected).
    seen: Mutex<BTreeMap<String, (u32, u32)>>,
    held: mpsc::UnboundedSender<String>,
}

pub struct FaultProxy {
    pub url: String,
    state: Arc<ProxyState>,
    held: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        let (held, held_rx) = mpsc::unbounded_channel();
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            faults: Mutex::new(Faults::default()),
            seen: Mutex::new(BTreeMap::new()),
            held,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultProxy {
            url,
            state,
            held: tokio::sync::Mutex::new(held_rx),
        }
    }

    pub fn set(&self, faults: Faults) {
        *self.state.faults.lock().unwrap() = faults;
    }

    /// (forwarded to moto, answered with an injected fault) for one operation.
    pub fn seen(&self, operation: &str) -> (u32, u32) {
        self.state
            .seen
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or_default()
    }

    /// Waits until moto has answered a held request (which the proxy keeps to itself).
    pub async fn next_held(&self) -> String {
        let mut held = self.held.lock().await;
        held.recv().await.expect("the proxy is running")
    }
}

/// The operation of a request: EC2's `Action` form field, or Route 53's REST route.
fn operation(method: &str, path: &str, body: &[u8]) -> String {
    if path.starts_with("/2013-04-01/") {
        return match (method, path) {
            (_, p) if p.starts_with("/2013-04-01/hostedzonesbyname") => "ListHostedZonesByName",
            ("GET", p) if p.starts_with("/2013-04-01/change/") => "GetChange",
            ("POST", p) if p.ends_with("/rrset") || p.ends_with("/rrset/") => {
                "ChangeResourceRecordSets"
            }
            ("GET", p) if p.ends_with("/rrset") || p.ends_with("/rrset/") => {
                "ListResourceRecordSets"
            }
            _ => "route53:other",
        }
        .to_owned();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_owned()
}

fn ec2_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
    );
    (status, [("content-type", "text/xml")], body).into_response()
}

fn route53_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    );
    (status, [("content-type", "text/xml")], body).into_response()
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let op = operation(&method, &path, &body);
    let route53 = path.starts_with("/2013-04-01/");
    let faults = state.faults.lock().unwrap().clone();
    let injected = if faults.deny.contains(&op.as_str()) {
        Some(if route53 {
            route53_error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "denied by the fault proxy",
            )
        } else {
            ec2_error(
                StatusCode::FORBIDDEN,
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            )
        })
    } else if !route53 && rand::random::<f64>() < faults.throttle_ec2 {
        Some(ec2_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        ))
    } else {
        None
    };
    {
        let mut seen = state.seen.lock().unwrap();
        let entry = seen.entry(op.clone()).or_default();
        if injected.is_some() {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
    }
    if let Some(response) = injected {
        return response;
    }
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            headers.insert(name.clone(), value.clone());
        }
    }
    let forwarded = state
        .client
        .request(
            parts.method.clone(),
            format!("{}{path}{query}", state.upstream),
        )
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await;
    let upstream = match forwarded {
        Ok(upstream) => upstream,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let status = upstream.status();
    let content_type = upstream.headers().get("content-type").cloned();
    let mut bytes = upstream.bytes().await.unwrap_or_default();
    if op == "GetChange" && faults.changes_pending {
        bytes = String::from_utf8_lossy(&bytes)
            .replace("<Status>INSYNC</Status>", "<Status>PENDING</Status>")
            .into_bytes()
            .into();
    }
    if faults.hold.contains(&op.as_str()) {
        let _ = state.held.send(op);
        std::future::pending::<()>().await;
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response.headers_mut().insert("content-type", content_type);
    } else {
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("text/xml"));
    }
    response
}
