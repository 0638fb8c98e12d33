//! HTTP plumbing shared by the three processes: binding, serving, time helpers and fault injection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::Error;

/// Binds `addr` (loopback only is the caller's duty).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, router: Router) -> Result<(), Error> {
    axum::serve(listener, router).await.map_err(Error::Serve)
}

/// Seconds since the epoch as a float, as Mesos reports times.
pub fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// ISO-8601 UTC with milliseconds, as Marathon reports times (`2015-09-25T15:13:48.343Z`).
pub fn iso(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One injected fault.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Status(StatusCode),
    Hang(Duration),
}

/// The queue of faults for the next requests.
#[derive(Debug, Default)]
pub struct Faults(Mutex<VecDeque<Fault>>);

/// Body of `POST /__sim/faults`.
#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    /// How many of the next requests are affected.
    pub count: usize,
    /// Answer with this status instead of serving.
    pub status: Option<u16>,
    /// Or delay the request by this many milliseconds before serving it.
    pub hang_ms: Option<u64>,
}

impl Faults {
    fn next(&self) -> Option<Fault> {
        self.0.lock().map(|mut q| q.pop_front()).unwrap_or(None)
    }
}

/// Middleware that applies queued faults to every request outside `/__sim/`.
pub async fn inject_faults(
    State(faults): State<Arc<Faults>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/__sim") {
        return next.run(req).await;
    }
    match faults.next() {
        Some(Fault::Status(s)) => {
            tracing::info!(status = s.as_u16(), path = %req.uri().path(), "Injected failure");
            (s, "injected failure").into_response()
        }
        Some(Fault::Hang(d)) => {
            tracing::info!(hang_ms = d.as_millis() as u64, path = %req.uri().path(), "Injected delay");
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        None => next.run(req).await,
    }
}

async fn add_faults(
    State(faults): State<Arc<Faults>>,
    Json(req): Json<FaultRequest>,
) -> Result<StatusCode, (StatusCode, String)> {
    let fault = match (req.status, req.hang_ms) {
        (Some(s), None) => Fault::Status(
            StatusCode::from_u16(s)
                .map_err(|_| (StatusCode::BAD_REQUEST, format!("bad status {s}")))?,
        ),
        (None, Some(ms)) => Fault::Hang(Duration::from_millis(ms)),
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "give exactly one of status or hang_ms".into(),
            ));
        }
    };
    if let Ok(mut q) = faults.0.lock() {
        q.extend(std::iter::repeat_n(fault, req.count));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_faults(State(faults): State<Arc<Faults>>) -> StatusCode {
    if let Ok(mut q) = faults.0.lock() {
        q.clear();
    }
    StatusCode::NO_CONTENT
}

/// `/__sim/faults` routes (POST adds, DELETE clears).
pub fn fault_routes(faults: Arc<Faults>) -> Router {
    Router::new()
        .route("/__sim/faults", post(add_faults).delete(clear_faults))
        .with_state(faults)
}

/// Wraps `router` with fault injection and the admin routes when `admin` is on.
pub fn with_admin(router: Router, admin: Option<Router>) -> Router {
    match admin {
        Some(extra) => {
            let faults = Arc::new(Faults::default());
            router
                .merge(extra)
                .merge(fault_routes(faults.clone()))
                .layer(axum::middleware::from_fn_with_state(faults, inject_faults))
        }
        None => router,
    }
}

/// Body of the admin `leadership/drop` calls.
#[derive(Debug, Deserialize)]
pub struct DropLeadership {
    /// How long to stay out of the election (default 0: compete again at once).
    #[serde(default)]
    pub for_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_millis_and_z() {
        let t = UNIX_EPOCH + Duration::from_millis(1_443_187_228_343);
        assert_eq!(iso(t), "2015-09-25T13:20:28.343Z");
    }
}
