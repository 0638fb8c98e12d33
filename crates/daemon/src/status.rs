//! The `/status` document and the state shared between the engine and the HTTP server.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use converged_core::Problem;
use converged_core::condition::{LastError, ResourceStatus};
use serde::Serialize;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusDocument {
    pub desired_state: DesiredStateStatus,
    pub paused: bool,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_cycle: Option<CycleStatus>,
    pub kinds: Vec<KindStatus>,
    pub resources: Vec<ResourceStatus>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DesiredStateStatus {
    pub path: String,
    /// Whether the folder on disk is valid right now.
    pub valid: bool,
    /// The revision on disk (valid or not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The revision being enforced: the last valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_in_force: Option<String>,
    pub errors: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CycleStatus {
    pub number: u64,
    pub trigger: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub actions_applied: usize,
    pub actions_failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindStatus {
    pub kind: &'static str,
    pub mode: &'static str,
    /// The last observation failed: nothing of this kind is acted on until it succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observe_error: Option<LastError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry: Option<String>,
}

/// What the engine publishes and the HTTP handlers read.
pub struct Shared {
    pub status: RwLock<StatusDocument>,
    pub paused: AtomicBool,
    pub ready: AtomicBool,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            status: RwLock::new(StatusDocument::default()),
            paused: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn snapshot(&self) -> StatusDocument {
        let mut document = self
            .status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        document.paused = self.is_paused();
        document.ready = self.ready.load(Ordering::SeqCst);
        document
    }

    pub fn publish(&self, document: StatusDocument) {
        *self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = document;
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.metrics.paused.set(i64::from(paused));
    }
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}
