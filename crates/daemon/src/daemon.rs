//! `converged run`: wires the engine, the file watch, signals and the HTTP server together,
//! and drains cleanly on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use converged_core::secret::Secret;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::config::DaemonConfig;
use crate::engine::{Engine, EngineSettings, Trigger};
use crate::error::DaemonError;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::planner::Planner;
use crate::status::Shared;
use crate::{kinds, watch};

/// How long in-flight actions may run on after SIGTERM before the process exits anyway.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

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
    let registry = kinds::registry(&config, Arc::new(metrics.clone()), kinds::Access::ReadWrite)?;
    let planning = kinds::registry(&config, Arc::new(metrics.clone()), kinds::Access::ReadOnly)?;
    let shared = Arc::new(Shared::new(metrics));
    let (triggers, trigger_rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| DaemonError::BindHttp {
            address: config.http.listen,
            source,
        })?;
    let state = AppState {
        shared: Arc::clone(&shared),
        triggers: triggers.clone(),
        planner: Arc::new(Planner::new(planning, config.desired_state.clone())),
        token: token.map(Arc::new),
    };
    let settings = EngineSettings::new(config.desired_state.clone(), config.resync_interval);
    let engine = Engine::new(
        settings,
        registry,
        Arc::clone(&shared),
        Some(audit),
        shutdown.clone(),
    );
    let engine_task = tokio::spawn(engine.run(trigger_rx));
    let _watch = match watch::watch(&config.desired_state, triggers.clone()) {
        Ok(watch) => Some(watch),
        Err(err) => {
            tracing::warn!(error = %err, "edits will be picked up at the next resync only");
            None
        }
    };
    tokio::spawn(handle_signals(triggers, shutdown.clone()));
    tracing::info!(
        listen = %config.http.listen,
        desired_state = %config.desired_state.display(),
        resync_interval_s = config.resync_interval.as_secs(),
        "started converged"
    );
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    if let Err(err) = server.await {
        tracing::error!(error = %err, "the HTTP server failed");
        shutdown.cancel();
    }
    match tokio::time::timeout(DRAIN_DEADLINE, engine_task).await {
        Ok(_) => tracing::info!("drained; exiting"),
        Err(_) => tracing::warn!(
            deadline_s = DRAIN_DEADLINE.as_secs(),
            "in-flight actions did not finish before the drain deadline; exiting"
        ),
    }
    Ok(())
}

async fn handle_signals(triggers: mpsc::Sender<Trigger>, shutdown: CancellationToken) {
    let (Ok(mut terminate), Ok(mut interrupt), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("failed to install signal handlers");
        return;
    };
    loop {
        tokio::select! {
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
