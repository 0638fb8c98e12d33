//! A fault-injecting HTTP reverse proxy in front of one real peer (test I/O): it forwards every
//! request unchanged until told to answer chosen requests with a canned error, to answer late
//! (after the peer has acted, past the client's timeout), or to go down (stop listening, so
//! connections are refused) and come back on the same address. It runs on its own runtime, so
//! blocking tests and async tests use it alike.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

/// What the proxy does with a request a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answers with this status and body; the peer never sees the request.
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Forwards the request, then holds the peer's answer this long: the peer has acted, the
    /// client sees nothing until then.
    Late(Duration),
}

impl Fault {
    /// A plain-text error answer with `status`.
    pub fn status(status: u16) -> Self {
        Fault::Answer {
            status,
            content_type: "text/plain",
            body: format!("injected by the fault proxy: {status}"),
        }
    }
}

/// A fault for the requests whose path starts with `path_prefix` (`""` matches every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path_prefix: &'static str,
    pub fault: Fault,
}

impl Rule {
    /// `fault` for every request.
    pub fn all(fault: Fault) -> Self {
        Rule {
            path_prefix: "",
            fault,
        }
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    /// The first rule whose prefix matches a request decides; no rule, no fault.
    rules: Mutex<Vec<Rule>>,
    forwarded: AtomicU64,
    injected: AtomicU64,
}

/// A running proxy. Dropping it stops it.
pub struct FaultProxy {
    /// `http://<addr>`: where clients should send their requests.
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Stops the listener while it is up.
    stop: Option<oneshot::Sender<()>>,
}

impl FaultProxy {
    /// Starts a proxy for `upstream` (`http://host:port`) listening on `listen` (an address of
    /// 127.0.0.0/8; port 0 picks a free one).
    pub fn start(listen: &str, upstream: &str) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the fault proxy");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(listen))
            .unwrap_or_else(|err| panic!("the fault proxy cannot listen on {listen}: {err}"));
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            // A redirect is the peer's answer to pass on (a standby naming its leader).
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            rules: Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        });
        let mut proxy = FaultProxy {
            url: format!("http://{addr}"),
            addr,
            shared,
            runtime: Some(runtime),
            stop: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the proxy's runtime runs until drop")
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&self.shared));
        self.runtime().spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.stop = Some(stop);
    }

    /// Replaces the rules; an empty list forwards everything again.
    pub fn set(&self, rules: Vec<Rule>) {
        *self.shared.rules.lock().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// Forwards everything again.
    pub fn clear(&self) {
        self.set(Vec::new());
    }

    /// Stops listening: new connections are refused and idle ones closed, as a stopped peer's.
    pub fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let addr = self.addr;
            // The listener is dropped once the server has seen the signal.
            crate::wait_for(
                "the fault proxy to stop listening",
                Duration::from_secs(10),
                || {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                        .is_err()
                        .then_some(())
                },
            );
        }
    }

    /// Listens again on the same address.
    pub fn up(&mut self) {
        if self.stop.is_some() {
            return;
        }
        let addr = self.addr;
        let listener = self.runtime().block_on(async {
            let mut last = None;
            for _ in 0..100 {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(listener) => return listener,
                    Err(err) => last = Some(err),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the fault proxy cannot listen on {addr} again: {last:?}");
        });
        self.serve(listener);
    }

    /// Requests forwarded to the peer so far (a late answer counts: the peer saw it).
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }

    /// Requests answered with an injected error so far.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Also fine inside an async test: nothing waits for the proxy's tasks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let fault = shared
        .rules
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|rule| path.starts_with(rule.path_prefix))
        .map(|rule| rule.fault.clone());
    let late = match fault {
        Some(Fault::Answer {
            status,
            content_type,
            body,
        }) => {
            shared.injected.fetch_add(1, Ordering::Relaxed);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, [("content-type", content_type)], body).into_response();
        }
        Some(Fault::Late(delay)) => Some(delay),
        None => None,
    };
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
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
    shared.forwarded.fetch_add(1, Ordering::Relaxed);
    let forwarded = shared
        .client
        .request(
            parts.method.clone(),
            format!("{}{path}{query}", shared.upstream),
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
    let mut headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    for hop in ["content-length", "transfer-encoding", "connection"] {
        headers.remove(hop);
    }
    if !headers.contains_key("content-type") {
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
