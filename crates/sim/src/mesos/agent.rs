//! The simulated Mesos agent: registers with the leading master, re-registers after a master change,
//! sends heartbeats, and serves `/state` and `/health`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::mesos::locator::MasterLocator;
use crate::mesos::master::MesosProfile;
use crate::mesos::protocol::{Heartbeat, INTERNAL, RegisterAgent, Registered};
use crate::resources::{AttrValue, Resources, attributes_json};
use crate::{Error, server};

/// Configuration of one agent process.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Address the HTTP server is bound to.
    pub addr: SocketAddr,
    /// `--master`.
    pub master: String,
    /// `--hostname`.
    pub hostname: String,
    /// `--resources`.
    pub resources: Resources,
    /// `--attributes`.
    pub attributes: BTreeMap<String, AttrValue>,
    /// How often the agent reports to the master.
    pub heartbeat_interval: Duration,
    /// Release imitated.
    pub profile: MesosProfile,
    /// ZooKeeper session timeout for master detection.
    pub zk_session_timeout: Duration,
}

struct Agent {
    cfg: AgentConfig,
    id: Mutex<Option<String>>,
}

fn registration(cfg: &AgentConfig, id: Option<String>) -> RegisterAgent {
    RegisterAgent {
        id,
        hostname: cfg.hostname.clone(),
        ip: cfg.addr.ip().to_string(),
        port: cfg.addr.port(),
        resources: cfg.resources.clone(),
        attributes: cfg.attributes.clone(),
        version: cfg.profile.version().to_string(),
    }
}

async fn report_loop(agent: Arc<Agent>, locator: MasterLocator) {
    let client = reqwest::Client::new();
    let mut last_master: Option<String> = None;
    loop {
        let current = locator.current();
        let id = agent.id.lock().map(|g| g.clone()).unwrap_or(None);
        let master_changed = current != last_master;
        let result = match (&id, master_changed) {
            (Some(id), false) => locator
                .post::<_, Value>(
                    &client,
                    &format!("{INTERNAL}/agent/heartbeat"),
                    &Heartbeat { id: id.clone() },
                )
                .await
                .map(|r| r.is_some()),
            _ => Ok(false),
        };
        let needs_register = match result {
            Ok(ok) => !ok,
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed");
                true
            }
        };
        if needs_register && current.is_some() {
            let reg = registration(&agent.cfg, id.clone());
            match locator
                .post::<_, Registered>(&client, &format!("{INTERNAL}/agent/register"), &reg)
                .await
            {
                Ok(Some(r)) => {
                    if id.as_deref() != Some(r.id.as_str()) || master_changed {
                        tracing::info!(agent_id = %r.id, master = ?current, "Registered with master");
                    }
                    if let Ok(mut g) = agent.id.lock() {
                        *g = Some(r.id);
                    }
                    last_master = current;
                }
                Ok(None) => tracing::debug!("master did not accept registration"),
                Err(e) => tracing::debug!(error = %e, "registration failed"),
            }
        }
        tokio::time::sleep(agent.cfg.heartbeat_interval).await;
    }
}

async fn state(State(agent): State<Arc<Agent>>) -> Json<Value> {
    let id = agent.id.lock().map(|g| g.clone()).unwrap_or(None);
    let cfg = &agent.cfg;
    let gpus = cfg.profile == MesosProfile::V111;
    Json(json!({
        "version": cfg.profile.version(),
        "id": id.unwrap_or_default(),
        "pid": format!("slave(1)@{}:{}", cfg.addr.ip(), cfg.addr.port()),
        "hostname": cfg.hostname,
        "resources": cfg.resources.total().to_json(gpus),
        "attributes": attributes_json(&cfg.attributes),
        "flags": {"master": cfg.master, "hostname": cfg.hostname, "port": cfg.addr.port().to_string()},
        "frameworks": [],
        "completed_frameworks": [],
    }))
}

async fn health() -> StatusCode {
    StatusCode::OK
}

/// Runs an agent on `listener` until the process ends.
pub async fn run(cfg: AgentConfig, listener: tokio::net::TcpListener) -> Result<(), Error> {
    let locator = MasterLocator::new(&cfg.master, cfg.zk_session_timeout)?;
    let agent = Arc::new(Agent {
        cfg,
        id: Mutex::new(None),
    });
    tokio::spawn(report_loop(agent.clone(), locator));
    let router = Router::new()
        .route("/state", get(state))
        .route("/state.json", get(state))
        .route("/slave(1)/state", get(state))
        .route("/slave(1)/state.json", get(state))
        .route("/health", get(health))
        .route("/slave(1)/health", get(health))
        .with_state(agent);
    server::serve(listener, router).await
}
