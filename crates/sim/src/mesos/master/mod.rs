//! The simulated Mesos master: its configuration, the process wiring (the election, the task
//! that follows leadership and applies agent ping timeouts) and the router over the operator
//! endpoints, the maintenance API and the internal agent and framework protocol. Does I/O: it
//! serves HTTP and runs the election.

mod admin;
mod agents;
mod election;
mod maintenance;
mod operator;
mod render;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::leader::Election;
use crate::mesos::protocol::INTERNAL;
use crate::server::{epoch_secs, with_admin};
use crate::{Error, server};
use state::MasterState;

/// Which Mesos release the master imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MesosProfile {
    /// Mesos 0.28.1 (the mesoscloud image): no redirects from non-leaders, `/redirect` never 503s.
    #[value(name = "0.28")]
    V028,
    /// Mesos 1.11 (current): non-leaders answer 307/503, `gpus`, `unreachable_slaves`, `leader_info`.
    #[value(name = "1.11")]
    V111,
}

impl MesosProfile {
    /// The version string the master and agents report.
    pub fn version(self) -> &'static str {
        match self {
            MesosProfile::V028 => "0.28.1",
            MesosProfile::V111 => "1.11.0",
        }
    }

    fn current(self) -> bool {
        self == MesosProfile::V111
    }
}

/// Configuration of one master process.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Address the HTTP server is bound to.
    pub addr: SocketAddr,
    /// Hostname advertised in MasterInfo (defaults to the IP).
    pub hostname: String,
    /// `zk://.../mesos` for leader election, or none for a single leading master.
    pub zk: Option<String>,
    /// `--quorum` (reported in flags only).
    pub quorum: Option<u32>,
    /// Release imitated.
    pub profile: MesosProfile,
    /// `--agent_ping_timeout`.
    pub agent_ping_timeout: Duration,
    /// `--max_agent_ping_timeouts`.
    pub max_agent_ping_timeouts: u32,
    /// ZooKeeper session timeout.
    pub zk_session_timeout: Duration,
    /// Serve the `/__sim/` admin API.
    pub admin: bool,
}

/// A running master.
pub struct Master {
    cfg: MasterConfig,
    id: String,
    start_time: f64,
    started: Instant,
    election: Election,
    state: Mutex<MasterState>,
}

type Shared = Arc<Master>;

impl Master {
    /// Starts the election and the ping-timeout monitor; returns the shared master.
    pub fn start(cfg: MasterConfig) -> Result<Arc<Self>, Error> {
        let id = uuid::Uuid::new_v4().to_string();
        let election = election::join(&cfg, &id)?;
        let master = Arc::new(Self {
            cfg,
            id,
            start_time: epoch_secs(SystemTime::now()),
            started: Instant::now(),
            election,
            state: Mutex::new(MasterState::default()),
        });
        tokio::spawn(monitor(master.clone()));
        Ok(master)
    }

    fn lock(&self) -> MutexGuard<'_, MasterState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn agent_ping_deadline(&self) -> Duration {
        self.cfg.agent_ping_timeout * self.cfg.max_agent_ping_timeouts.max(1)
    }
}

/// Keeps state in step with leadership and applies agent ping timeouts.
async fn monitor(master: Shared) {
    let mut leadership = master.election.subscribe();
    let mut was_elected = false;
    loop {
        let elected = leadership.borrow_and_update().elected;
        if elected != was_elected {
            master.lock().start_term(elected);
            tracing::info!(elected, master_id = %master.id, "Master leadership changed");
            was_elected = elected;
        }
        master.lock().expire_silent_agents(
            Instant::now(),
            master.cfg.agent_ping_timeout,
            master.agent_ping_deadline(),
        );
        tokio::select! {
            _ = leadership.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// A plain-text answer, as libprocess gives its errors.
fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// The master's router (upstream endpoints under both `/X` and `/master/X`, plus the internal protocol).
pub fn router(master: Shared) -> Router {
    let mut routes = Router::new();
    for prefix in ["", "/master"] {
        routes = routes
            .route(&format!("{prefix}/state"), get(operator::state))
            .route(&format!("{prefix}/state.json"), get(operator::state))
            .route(&format!("{prefix}/slaves"), get(operator::slaves))
            .route(&format!("{prefix}/frameworks"), get(operator::frameworks))
            .route(&format!("{prefix}/tasks"), get(operator::tasks))
            .route(&format!("{prefix}/tasks.json"), get(operator::tasks))
            .route(&format!("{prefix}/health"), get(operator::health))
            .route(&format!("{prefix}/redirect"), get(operator::redirect))
            .route(
                &format!("{prefix}/maintenance/schedule"),
                get(operator::schedule).post(operator::set_schedule),
            )
            .route(
                &format!("{prefix}/maintenance/status"),
                get(operator::maintenance_status),
            )
            .route(
                &format!("{prefix}/machine/down"),
                post(operator::machine_down),
            )
            .route(&format!("{prefix}/machine/up"), post(operator::machine_up));
    }
    let routes = routes
        .route("/metrics/snapshot", get(operator::metrics))
        .route("/version", get(operator::version))
        .route(
            &format!("{INTERNAL}/agent/register"),
            post(agents::register),
        )
        .route(
            &format!("{INTERNAL}/agent/heartbeat"),
            post(agents::heartbeat),
        )
        .route(
            &format!("{INTERNAL}/framework/sync"),
            post(agents::framework_sync),
        )
        .fallback(not_found)
        .with_state(master.clone());
    let admin = master.cfg.admin.then(|| admin::routes(master.clone()));
    with_admin(routes, admin)
}

/// Runs a master on `listener` until the process ends.
pub async fn run(cfg: MasterConfig, listener: tokio::net::TcpListener) -> Result<(), Error> {
    let master = Master::start(cfg)?;
    server::serve(listener, router(master)).await
}
