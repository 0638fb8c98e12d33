//! What every request outside `/__sim/` passes first: basic auth, then waiting for a leader and
//! proxying to it from a standby, then the leader's response headers. Does I/O: it forwards
//! requests over HTTP to the leader.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::Shared;
use crate::marathon::Marathon;
use crate::marathon::app::Profile;

/// The HTML error page Marathon's Jetty answers with outside its API handlers.
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

/// Whether the request carries the `--http_credentials` user and password.
fn authorized(request: &Request, user: &str, password: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Basic ")
                .or_else(|| value.strip_prefix("basic "))
        })
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .is_some_and(|decoded| decoded == format!("{user}:{password}").as_bytes())
}

/// Basic auth on every path [`MAR@HEAD:M/api/HttpModule.scala#createSecurityHandler`], then the
/// leader proxy [`MAR@HEAD:M/api/LeaderProxyFilter.scala`], then the leader's response headers.
pub(super) async fn gateway(
    State(marathon): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/__sim") {
        return next.run(request).await;
    }
    if let Some((user, password)) = &marathon.cfg.http_credentials
        && !authorized(&request, user, password)
    {
        let mut response = jetty_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("basic realm=\"Mesosphere\""),
        );
        return response;
    }
    let own_address = marathon.host_port();
    // Not the leader: wait up to 10 × 250 ms for one, then proxy or give up.
    let mut leadership = marathon.leadership();
    for _ in 0..10 {
        if leadership.elected
            || leadership
                .leader
                .as_ref()
                .is_some_and(|leader| *leader != own_address)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        leadership = marathon.leadership();
    }
    if !leadership.elected {
        return match leadership.leader.filter(|leader| *leader != own_address) {
            Some(leader) => proxy(&marathon, &leader, request).await,
            None => {
                let status = match marathon.cfg.profile {
                    Profile::V11 => StatusCode::SERVICE_UNAVAILABLE,
                    Profile::V110 => StatusCode::BAD_GATEWAY,
                };
                jetty_error(status, "Could not determine the current leader")
            }
        };
    }
    let mut response = next.run(request).await;
    if let Ok(leader) = HeaderValue::from_str(&format!("http://{own_address}")) {
        response.headers_mut().insert("X-Marathon-Leader", leader);
    }
    if marathon.cfg.profile == Profile::V110 {
        response
            .headers_mut()
            .insert("X-Frame-Options", HeaderValue::from_static("DENY"));
        response.headers_mut().insert(
            "X-XSS-Protection",
            HeaderValue::from_static("1; mode=block"),
        );
    }
    response
}

/// Forwards a request to the leader and its answer back, marked with `X-Marathon-Via`.
async fn proxy(marathon: &Marathon, leader: &str, request: Request) -> Response {
    let via = format!("1.1 {}", marathon.host_port());
    if request
        .headers()
        .get_all("X-Marathon-Via")
        .iter()
        .any(|hop| hop.to_str().is_ok_and(|hop| hop == via))
    {
        return jetty_error(StatusCode::BAD_GATEWAY, "Detected proxying loop.");
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|path_and_query| path_and_query.as_str().to_string())
        .unwrap_or_default();
    let url = format!("http://{leader}{path_and_query}");
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return jetty_error(StatusCode::BAD_REQUEST, "Bad Request");
    };
    let client = reqwest::Client::new();
    let mut forwarded = client
        .request(parts.method.clone(), &url)
        .body(bytes.to_vec());
    for (name, value) in parts.headers.iter() {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            forwarded = forwarded.header(name, value);
        }
    }
    forwarded = forwarded.header("X-Marathon-Via", via.clone());
    match forwarded.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            for (name, value) in headers.iter() {
                if name != header::TRANSFER_ENCODING
                    && name != header::CONNECTION
                    && name != header::CONTENT_LENGTH
                {
                    response.headers_mut().append(name, value.clone());
                }
            }
            if let Ok(via) = HeaderValue::from_str(&via) {
                response.headers_mut().append("X-Marathon-Via", via);
            }
            response
        }
        Err(error) => {
            tracing::warn!(error = %error, leader, "proxy to leader failed");
            jetty_error(StatusCode::BAD_GATEWAY, "Connection to leader refused.")
        }
    }
}
