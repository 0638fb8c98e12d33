//! The master's leadership: the MasterInfo it contends with, joining the election (ZooKeeper
//! with `--zk`, else leading alone), and what a non-leader answers instead of serving. The
//! election's ZooKeeper I/O runs in `crate::leader`; this module only starts and reads it.

use axum::Json;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Master, MasterConfig, text};
use crate::Error;
use crate::leader::{Election, ZkGroup, parse_zk_url};

/// The MasterInfo of master `id`, as JSON::protobuf renders it; `ip` is the uint32 in network
/// order [`MES@HEAD:include/mesos/mesos.proto` MasterInfo; `MS/contender/zookeeper.cpp:158`].
pub(super) fn master_info(id: &str, cfg: &MasterConfig) -> Value {
    let ip = cfg.addr.ip().to_string();
    let ip_number = match cfg.addr.ip() {
        std::net::IpAddr::V4(ipv4) => u32::from_le_bytes(ipv4.octets()),
        std::net::IpAddr::V6(_) => 0,
    };
    json!({
        "id": id,
        "ip": ip_number,
        "port": cfg.addr.port(),
        "pid": format!("master@{ip}:{}", cfg.addr.port()),
        "hostname": cfg.hostname,
        "version": cfg.profile.version(),
        "address": {"hostname": cfg.hostname, "ip": ip, "port": cfg.addr.port()},
    })
}

/// Joins the election as master `id`: a `json.info_` candidate under the `--zk` path, or the
/// only master when there is no ZooKeeper.
pub(super) fn join(cfg: &MasterConfig, id: &str) -> Result<Election, Error> {
    let info = master_info(id, cfg).to_string();
    Ok(match &cfg.zk {
        Some(url) => {
            let (servers, path) = parse_zk_url(url)?;
            Election::zookeeper(
                ZkGroup {
                    servers,
                    path,
                    prefix: "json.info_".into(),
                    marker: "json.info_".into(),
                    session_timeout: cfg.zk_session_timeout,
                },
                Some(info),
            )
        }
        None => Election::fixed(info),
    })
}

impl Master {
    pub(super) fn elected(&self) -> bool {
        self.election.state().elected
    }

    /// The leader's MasterInfo, if one is known.
    pub(super) fn leader(&self) -> Option<Value> {
        self.election
            .state()
            .leader
            .and_then(|info| serde_json::from_str(&info).ok())
    }
}

/// The 307 a non-leader answers with: protocol-relative `//host:port<path>`
/// [`MES@HEAD:MS/http.cpp#redirect`].
pub(super) fn redirect_to(leader: &Value, path_and_query: &str) -> Response {
    let host = leader["hostname"].as_str().unwrap_or_default();
    let port = leader["port"].as_u64().unwrap_or_default();
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, format!("//{host}:{port}{path_and_query}"))],
    )
        .into_response()
}

/// [≥1.0] non-leaders redirect to the leader or answer 503 [`MES@HEAD:MS/http.cpp#state` `if
/// (!master->elected()) return redirect(request)`]; [0.28] they serve their own view.
pub(super) fn gate(master: &Master, uri: &Uri) -> Option<Response> {
    if !master.cfg.profile.current() || master.elected() {
        return None;
    }
    let path_and_query = uri
        .path_and_query()
        .map(|path_and_query| path_and_query.as_str())
        .unwrap_or("/");
    Some(match master.leader() {
        Some(leader) => redirect_to(&leader, path_and_query),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
    })
}

/// What a non-leader answers agents and frameworks: 409 naming the leader, or 503.
pub(super) fn not_leader(master: &Master) -> Response {
    match master.leader() {
        Some(leader) => (StatusCode::CONFLICT, Json(json!({"leader": leader}))).into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
    }
}
