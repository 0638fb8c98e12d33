//! The simulated Marathon: configuration, the scheduler loop talking to the leading master, and
//! the REST API.
pub mod api;
pub mod app;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::leader::{Election, LeaderState, ZkGroup, parse_zk_url};
use crate::mesos::locator::MasterLocator;
use crate::mesos::protocol::{FrameworkSync, INTERNAL, SyncReply};
use crate::resources::DEFAULT_ROLE;
use crate::{Error, server};
use app::Profile;
use state::{MarathonState, Persisted, RolePolicy, Timing};
use store::StateStore;

/// Configuration of one Marathon process.
#[derive(Clone, Debug)]
pub struct MarathonConfig {
    /// Address the HTTP server is bound to.
    pub addr: SocketAddr,
    /// Hostname advertised (defaults to the IP).
    pub hostname: String,
    /// `--master`.
    pub master: String,
    /// `--zk zk://.../marathon` for HA leader election.
    pub zk: Option<String>,
    /// `--http_credentials user:password`.
    pub http_credentials: Option<(String, String)>,
    /// Release imitated.
    pub profile: Profile,
    /// Timing knobs.
    pub timing: Timing,
    /// `--mesos_role` and `--default_accepted_resource_roles`.
    pub roles: RolePolicy,
    /// Scheduler tick.
    pub tick: Duration,
    /// ZooKeeper session timeout.
    pub zk_session_timeout: Duration,
    /// Serve the `/__sim/` admin API.
    pub admin: bool,
}

/// A running Marathon.
pub struct Marathon {
    /// Configuration.
    pub cfg: MarathonConfig,
    /// Leadership.
    pub election: Election,
    state: Mutex<MarathonState>,
    framework_id: Mutex<Option<String>>,
    /// Where the leader keeps its state, with `--zk`.
    store: Option<StateStore>,
    /// Whether this elected process has taken over the stored state.
    recovered: AtomicBool,
}

impl Marathon {
    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, MarathonState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `host:port` of this instance.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.cfg.hostname, self.cfg.addr.port())
    }

    /// The framework id, once registered.
    pub fn framework_id(&self) -> Option<String> {
        self.framework_id
            .lock()
            .map(|framework_id| framework_id.clone())
            .unwrap_or(None)
    }

    /// Leadership as the API sees it: with a store, an elected process leads only once it has
    /// read what the previous leader stored, as Marathon loads its state before it serves.
    pub fn leadership(&self) -> LeaderState {
        let mut state = self.election.state();
        if self.store.is_some() && !self.recovered.load(Ordering::SeqCst) {
            state.elected = false;
        }
        state
    }

    fn set_framework_id(&self, id: Option<String>) {
        if let Ok(mut framework_id) = self.framework_id.lock() {
            *framework_id = id;
        }
    }

    /// Takes over the state the previous leader stored; false if it could not be read, in which
    /// case this leader must not schedule yet.
    async fn take_over(&self, store: &StateStore) -> bool {
        let bytes = match store.load().await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return true,
            Err(error) => {
                tracing::warn!(error = %error, "failed to read the stored state; not scheduling yet");
                return false;
            }
        };
        match serde_json::from_slice::<Persisted>(&bytes) {
            Ok(stored) => {
                self.set_framework_id(stored.framework_id.clone());
                let mut state = self.lock();
                state.restore(stored);
                tracing::info!(
                    apps = state.apps.len(),
                    tasks = state.tasks.len(),
                    "Recovered stored state"
                );
                true
            }
            Err(error) => {
                tracing::error!(error = %error, "the stored state is unreadable; not scheduling");
                false
            }
        }
    }
}

async fn scheduler(marathon: Arc<Marathon>, locator: MasterLocator) {
    let client = reqwest::Client::new();
    // The master's address and term: a master re-elected at the same address is a new master
    // whose agents have yet to re-register.
    let mut last_master: Option<(String, u64)> = None;
    // What this process last read from or wrote to the store, to write only what changed.
    let mut stored: Vec<u8> = Vec::new();
    loop {
        tokio::time::sleep(marathon.cfg.tick).await;
        if !marathon.election.state().elected {
            marathon.recovered.store(false, Ordering::SeqCst);
            continue;
        }
        if let Some(store) = &marathon.store
            && !marathon.recovered.load(Ordering::SeqCst)
        {
            if !marathon.take_over(store).await {
                continue;
            }
            last_master = None;
            stored = marathon
                .lock()
                .persisted(marathon.framework_id().as_deref());
            marathon.recovered.store(true, Ordering::SeqCst);
        }
        let reports = {
            let mut state = marathon.lock();
            state.tick();
            state.reports()
        };
        let finished = reports
            .iter()
            .filter(|report| !matches!(report.state.as_str(), "TASK_STAGING" | "TASK_RUNNING"))
            .count();
        let sync = FrameworkSync {
            id: marathon.framework_id(),
            name: "marathon".into(),
            hostname: marathon.cfg.hostname.clone(),
            pid: format!(
                "scheduler-{}@{}",
                marathon.cfg.addr.port(),
                marathon.cfg.addr
            ),
            webui_url: format!("http://{}", marathon.host_port()),
            role: marathon
                .cfg
                .roles
                .mesos_role
                .clone()
                .unwrap_or_else(|| DEFAULT_ROLE.into()),
            capabilities: match marathon.cfg.profile {
                Profile::V110 => vec![
                    "PARTITION_AWARE".into(),
                    "TASK_KILLING_STATE".into(),
                    "REGION_AWARE".into(),
                ],
                Profile::V11 => Vec::new(),
            },
            tasks: reports,
        };
        let current = locator.current();
        match locator
            .post::<_, SyncReply>(&client, &format!("{INTERNAL}/framework/sync"), &sync)
            .await
        {
            Ok(Some(reply)) => {
                if marathon.framework_id().is_none() {
                    tracing::info!(framework_id = %reply.framework_id, "Registered with Mesos");
                }
                marathon.set_framework_id(Some(reply.framework_id));
                let master = current.map(|url| (url, reply.master_term));
                let same = master == last_master;
                let mut state = marathon.lock();
                state.set_agents(reply.agents, same);
                state.drop_reported_finished(finished);
                last_master = master;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(error = %error, "failed to sync with master");
                marathon.lock().forget_agents();
            }
        }
        if let Some(store) = &marathon.store {
            let now = marathon
                .lock()
                .persisted(marathon.framework_id().as_deref());
            if stored != now {
                match store.save(&now).await {
                    Ok(()) => stored = now,
                    Err(error @ Error::StateSuperseded { .. }) => {
                        // Whoever wrote it leads, or led after us: take over what it stored.
                        tracing::warn!(error = %error, "the stored state moved on; reading it again");
                        marathon.recovered.store(false, Ordering::SeqCst);
                    }
                    Err(error) => tracing::warn!(error = %error, "failed to store the state"),
                }
            }
        }
    }
}

/// Starts Marathon's election and scheduler; returns the shared instance.
pub fn start(cfg: MarathonConfig) -> Result<Arc<Marathon>, Error> {
    let locator = MasterLocator::new(&cfg.master, cfg.zk_session_timeout)?;
    let own_address = format!("{}:{}", cfg.hostname, cfg.addr.port());
    let election = match &cfg.zk {
        Some(url) => {
            let (servers, path) = parse_zk_url(url)?;
            // [1.1.1] Twitter-commons group `member_` under `<zk>/leader`; [HEAD] Curator latch under
            // `<zk>/leader-curator` [`MAR@1.1.1:M/ZookeeperConf.scala:55`; `MAR@HEAD:M/ZookeeperConf.scala:80-81`].
            let (dir, prefix, marker) = match cfg.profile {
                Profile::V11 => ("leader", "member_".to_string(), "member_"),
                Profile::V110 => (
                    "leader-curator",
                    format!("_c_{}-latch-", uuid::Uuid::new_v4()),
                    "-latch-",
                ),
            };
            Election::zookeeper(
                ZkGroup {
                    servers,
                    path: format!("{path}/{dir}"),
                    prefix,
                    marker: marker.to_string(),
                    session_timeout: cfg.zk_session_timeout,
                },
                Some(own_address),
            )
        }
        None => Election::fixed(own_address),
    };
    let store = match &cfg.zk {
        Some(url) => {
            let (servers, path) = parse_zk_url(url)?;
            Some(StateStore::new(servers, &path, cfg.zk_session_timeout))
        }
        None => None,
    };
    let marathon = Arc::new(Marathon {
        state: Mutex::new(MarathonState::new(
            cfg.profile,
            cfg.timing,
            cfg.roles.clone(),
        )),
        cfg,
        election,
        framework_id: Mutex::new(None),
        store,
        recovered: AtomicBool::new(false),
    });
    tokio::spawn(scheduler(marathon.clone(), locator));
    Ok(marathon)
}

/// Runs Marathon on `listener` until the process ends.
pub async fn run(cfg: MarathonConfig, listener: tokio::net::TcpListener) -> Result<(), Error> {
    let marathon = start(cfg)?;
    server::serve(listener, api::router(marathon)).await
}
