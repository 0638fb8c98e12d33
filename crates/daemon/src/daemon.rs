//! `converged run` (does I/O): wires the engine, the file watch, signals, the HTTP server and
//! the systemd notifier together as supervised tasks, drains cleanly on SIGTERM, and ends with
//! an error when any of them fails, so that systemd restarts the daemon.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use converged_core::api::ApiRecorder;
use converged_core::secret::Secret;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::config::DaemonConfig;
use crate::engine::{Engine, EngineSettings, Trigger};
use crate::error::DaemonError;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::planner::{DaemonView, Planner};
use crate::status::{Probe, ProbeLimits, Shared};
use crate::{kinds, watch};

#[cfg(debug_assertions)]
pub(crate) mod fault;

/// How long in-flight actions may run on after SIGTERM before the process exits anyway.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// How often the notifier looks at the engine's progress when systemd runs no watchdog.
const NOTIFY_PERIOD: Duration = Duration::from_secs(10);

pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let token = config
        .http
        .token_file
        .as_deref()
        .map(read_token)
        .transpose()?;
    if token.is_none() {
        tracing::warn!(
            "http.token_file is not set: POST /v1/reconcile, /v1/pause and /v1/resume are refused"
        );
    }
    let audit = Arc::new(AuditLog::open(&config.state_dir)?);
    let metrics = Metrics::new()?;
    let recorder: Arc<dyn ApiRecorder> = Arc::new(metrics.clone());
    #[cfg(debug_assertions)]
    let recorder: Arc<dyn ApiRecorder> = Arc::new(fault::WatchRequests(recorder));
    let registry = kinds::registry(&config, recorder, kinds::Access::ReadWrite)?;
    let planning = kinds::registry(&config, Arc::new(metrics.clone()), kinds::Access::ReadOnly)?;
    #[cfg(debug_assertions)]
    let registry = fault::inject_from_env(registry);
    let settings = EngineSettings::new(config.desired_state.clone(), config.resync_interval);
    let shared = Arc::new(Shared::new(metrics).with_probe_limits(ProbeLimits::new(
        settings.resync_interval,
        settings.action_deadline,
    )));
    let (triggers, trigger_rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| DaemonError::BindHttp {
            address: config.http.listen,
            source,
        })?;
    let engine = Engine::new(
        settings,
        registry,
        Arc::clone(&shared),
        Some(audit),
        shutdown.clone(),
    );
    let daemon_view = DaemonView {
        shared: Arc::clone(&shared),
        memory: engine.live_memory(),
    };
    let planner = Planner::new(planning, config.desired_state.clone()).of_daemon(daemon_view);
    let state = AppState {
        shared: Arc::clone(&shared),
        triggers: triggers.clone(),
        planner: Arc::new(planner),
        token: token.map(Arc::new),
    };
    let mut tasks = Essentials::new(shutdown.clone());
    tasks.spawn("engine", async move {
        engine.run(trigger_rx).await;
        Ok(())
    });
    // The watch's own task sends into this channel: when it ends (or panics), the channel
    // closes and the forwarder reports it.
    let (watch_tx, watch_rx) = mpsc::channel(8);
    let _watch = match watch::watch(&config.desired_state, watch_tx) {
        Ok(watch) => {
            tasks.spawn(
                "desired-state watch",
                forward_edits(watch_rx, triggers.clone(), shutdown.clone()),
            );
            Some(watch)
        }
        Err(err) => {
            tracing::warn!(error = %err, "edits will be picked up at the next resync only");
            None
        }
    };
    tasks.spawn(
        "signal handling",
        handle_signals(triggers, shutdown.clone()),
    );
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tasks.spawn("HTTP server", async move {
        server.await.map_err(|err| err.to_string())
    });
    tasks.spawn(
        "systemd notifier",
        notify_systemd(Arc::clone(&shared), shutdown.clone()),
    );
    tracing::info!(
        listen = %config.http.listen,
        desired_state = %config.desired_state.display(),
        resync_interval_s = config.resync_interval.as_secs(),
        "started converged"
    );
    tasks.supervise().await
}

/// The tasks the daemon cannot do without. Any of them ending before shutdown, or failing or
/// panicking at any time, shuts the daemon down and makes `run` return an error.
struct Essentials {
    set: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
    shutdown: CancellationToken,
}

impl Essentials {
    fn new(shutdown: CancellationToken) -> Self {
        Self {
            set: JoinSet::new(),
            names: HashMap::new(),
            shutdown,
        }
    }

    fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), String>> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits for every task to end: until shutdown, for the first that ends; then for the
    /// rest to drain, at most `DRAIN_DEADLINE` (in-flight actions finish rather than be cut).
    async fn supervise(mut self) -> Result<(), DaemonError> {
        let mut failure: Option<(&'static str, String)> = None;
        let shutdown = self.shutdown.clone();
        let drain = async {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN_DEADLINE).await;
        };
        tokio::pin!(drain);
        loop {
            let joined = tokio::select! {
                joined = self.set.join_next_with_id() => joined,
                () = &mut drain => {
                    tracing::warn!(
                        deadline_s = DRAIN_DEADLINE.as_secs(),
                        still_running = ?self.names.values().collect::<Vec<_>>(),
                        "in-flight actions did not finish before the drain deadline; exiting"
                    );
                    break;
                }
            };
            let Some(joined) = joined else {
                tracing::info!("drained; exiting");
                break;
            };
            let (task, outcome) = match joined {
                Ok((id, outcome)) => (self.names.remove(&id), outcome),
                Err(err) => (
                    self.names.remove(&err.id()),
                    Err(if err.is_panic() {
                        format!("panicked: {}", panic_message(err.into_panic()))
                    } else {
                        err.to_string()
                    }),
                ),
            };
            let task = task.unwrap_or("unnamed task");
            let why = match outcome {
                Ok(()) if self.shutdown.is_cancelled() => continue,
                Ok(()) => "ended before shutdown".to_owned(),
                Err(why) => why,
            };
            tracing::error!(
                task,
                reason = %why,
                "an essential task failed; shutting down so that the daemon is restarted"
            );
            failure.get_or_insert((task, why));
            self.shutdown.cancel();
        }
        match failure {
            None => Ok(()),
            Some((task, reason)) => Err(DaemonError::EssentialTask { task, reason }),
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or("(a panic without a message)".to_owned(), |m| {
                (*m).to_owned()
            }),
    }
}

async fn handle_signals(
    triggers: mpsc::Sender<Trigger>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let install = |kind: SignalKind| {
        signal(kind).map_err(|err| format!("failed to install a signal handler: {err}"))
    };
    let mut terminate = install(SignalKind::terminate())?;
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut hangup = install(SignalKind::hangup())?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                tracing::info!("received SIGHUP: reconciling now");
                let _ = triggers.try_send(Trigger::Signal);
            }
        }
    }
    tracing::info!("shutting down: no new actions; in-flight ones may finish");
    shutdown.cancel();
    Ok(())
}

/// Hands the watch's triggers to the engine; the watch's channel closing means its task ended.
async fn forward_edits(
    mut edits: mpsc::Receiver<Trigger>,
    triggers: mpsc::Sender<Trigger>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    loop {
        let edit = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            edit = edits.recv() => edit,
        };
        match edit {
            // A full queue already holds a cycle that will read the edit.
            Some(trigger) => {
                let _ = triggers.try_send(trigger);
            }
            None => return Err("the watch of the desired-state folder stopped".into()),
        }
    }
}

/// Tells systemd (when `NOTIFY_SOCKET` is set; otherwise every call is a no-op) `READY=1` once
/// the first cycle finished, `WATCHDOG=1` every half watchdog period only while `/healthz`
/// passes, so a stuck engine is killed and restarted, and `STOPPING=1` on shutdown. Until
/// ready, a start-up that is still making progress extends systemd's start timeout.
async fn notify_systemd(shared: Arc<Shared>, shutdown: CancellationToken) -> Result<(), String> {
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(NOTIFY_PERIOD, |timeout| timeout / 2);
    let extension = u32::try_from(period.saturating_mul(3).as_micros()).unwrap_or(u32::MAX);
    let mut progress = shared.watch_progress();
    let mut ticks = tokio::time::interval(period);
    let mut ready = false;
    let mut stalled = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                tell_systemd(&[NotifyState::Stopping]);
                return Ok(());
            }
            changed = progress.changed() => if changed.is_err() {
                return Err("the engine's progress is no longer published".into());
            },
            _ = ticks.tick() => {}
        }
        if !ready && shared.progress().last_finished.is_some() {
            tell_systemd(&[NotifyState::Ready]);
            tracing::info!(
                "the first cycle finished: ready (READY=1 to systemd, if it runs the daemon)"
            );
            ready = true;
        }
        match shared.health() {
            Probe::Pass => {
                if stalled {
                    tracing::info!("the engine is making progress again: feeding the watchdog");
                    stalled = false;
                }
                if !ready {
                    tell_systemd(&[NotifyState::ExtendTimeoutUsec(extension)]);
                } else if watchdog.is_some() {
                    tell_systemd(&[NotifyState::Watchdog]);
                }
            }
            Probe::Fail(why) => {
                if !stalled {
                    tracing::error!(
                        reason = %why,
                        "the engine is stuck: stopped feeding the systemd watchdog"
                    );
                    stalled = true;
                }
            }
        }
    }
}

fn tell_systemd(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(error = %err, "failed to notify systemd");
    }
}

pub fn read_token(path: &std::path::Path) -> Result<Secret, DaemonError> {
    let text = std::fs::read_to_string(path).map_err(|source| DaemonError::ReadTokenFile {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(DaemonError::EmptyTokenFile {
            path: path.to_owned(),
        });
    }
    Ok(Secret::new(token))
}
