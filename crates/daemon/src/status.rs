//! The `/status` document and the state shared between the engine and the HTTP server (no
//! I/O), and the probes' decisions: pure functions of the engine's progress and `now`.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use converged_core::Problem;
use converged_core::condition::{LastError, ResourceStatus};
use serde::Serialize;

use crate::audit::AuditHealth;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusDocument {
    /// The audit log, when the daemon keeps one: while it cannot be written, nothing is acted
    /// on (an action that cannot be recorded is not attempted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditStatus>,
    pub desired_state: DesiredStateStatus,
    pub paused: bool,
    /// What `/readyz` answers right now (see [`readiness`]).
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
pub struct AuditStatus {
    pub path: String,
    /// Whether the last write succeeded. While false, actions are refused (`not attempted`).
    pub writable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Outcomes of actions that ran but could not be written yet; they are written first
    /// once the log takes writes again.
    pub unrecorded_outcomes: usize,
}

impl From<AuditHealth> for AuditStatus {
    fn from(health: AuditHealth) -> Self {
        Self {
            path: health.path.display().to_string(),
            writable: health.error.is_none(),
            error: health.error,
            unrecorded_outcomes: health.unrecorded_outcomes,
        }
    }
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
    pub metrics: Metrics,
    /// The engine's cycles as the probes and the systemd watchdog see them; a watch channel so
    /// the notifier hears of the first finished cycle at once.
    progress: watch::Sender<Progress>,
    probe_limits: ProbeLimits,
}

impl Shared {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            status: RwLock::new(StatusDocument::default()),
            paused: AtomicBool::new(false),
            metrics,
            progress: watch::Sender::new(Progress::new(Instant::now())),
            probe_limits: ProbeLimits::default(),
        }
    }

    /// The limits of the engine this daemon runs (the default is for the default settings).
    pub fn with_probe_limits(mut self, limits: ProbeLimits) -> Self {
        self.probe_limits = limits;
        self
    }

    pub fn probe_limits(&self) -> ProbeLimits {
        self.probe_limits
    }

    pub fn snapshot(&self) -> StatusDocument {
        let mut document = self
            .status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        document.paused = self.is_paused();
        document.ready = self.readiness() == Probe::Pass;
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

    /// The engine began a cycle.
    pub fn cycle_started(&self) {
        let now = Instant::now();
        self.progress.send_modify(|progress| progress.started(now));
    }

    /// The engine finished a cycle, with what the probes need to know of how it ended.
    pub fn cycle_finished(&self, outcome: CycleOutcome) {
        let now = Instant::now();
        self.progress
            .send_modify(|progress| progress.finished(now, outcome));
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Hears of every change of the progress (the systemd notifier waits on it).
    pub fn watch_progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// What `/healthz` answers now.
    pub fn health(&self) -> Probe {
        health(&self.progress(), &self.probe_limits, Instant::now())
    }

    /// What `/readyz` answers now.
    pub fn readiness(&self) -> Probe {
        readiness(&self.progress(), &self.probe_limits, Instant::now())
    }
}

/// The engine's cycles as far as the probes care: when they started and finished, and how the
/// last one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// When the daemon began waiting for its first cycle (which is due at once).
    pub since: Instant,
    pub cycles_started: u64,
    pub last_started: Option<Instant>,
    /// Whether the cycle that started last has not finished yet.
    pub running: bool,
    pub last_finished: Option<(Instant, CycleOutcome)>,
}

impl Progress {
    pub fn new(since: Instant) -> Self {
        Self {
            since,
            cycles_started: 0,
            last_started: None,
            running: false,
            last_finished: None,
        }
    }

    pub fn started(&mut self, now: Instant) {
        self.cycles_started += 1;
        self.last_started = Some(now);
        self.running = true;
    }

    pub fn finished(&mut self, now: Instant, outcome: CycleOutcome) {
        self.running = false;
        self.last_finished = Some((now, outcome));
    }

    /// The start of the cycle running now, if one is.
    pub fn running_since(&self) -> Option<Instant> {
        self.last_started.filter(|_| self.running)
    }
}

/// How a finished cycle ended, as readiness needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleOutcome {
    /// The folder on disk was valid, so what it says is what is in force.
    pub desired_state_valid: bool,
    /// Every registered kind was observed (none failed or waited for an observation retry).
    pub every_kind_observed: bool,
}

/// How long the engine may go without visible progress before `/healthz` says it is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeLimits {
    /// Between cycles: the longest time since a cycle last started or finished. The engine
    /// resyncs every interval (±10 %) at the latest, so 3× the interval is only ever exceeded
    /// by an engine that stopped scheduling cycles.
    pub idle: Duration,
    /// The longest a cycle may run. A cycle's time is bounded by its slowest action, which
    /// the engine abandons after the action deadline; observing and everything else a cycle
    /// does takes seconds, so the deadline is the action deadline plus the same margin as
    /// `idle`.
    pub cycle_deadline: Duration,
}

impl ProbeLimits {
    pub fn new(resync_interval: Duration, action_deadline: Duration) -> Self {
        let idle = resync_interval.saturating_mul(3);
        Self {
            idle,
            cycle_deadline: action_deadline.saturating_add(idle),
        }
    }
}

impl Default for ProbeLimits {
    /// The limits for the default settings: resync every 30 s, actions abandoned after 300 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(30), Duration::from_secs(300))
    }
}

/// A probe's answer: 200, or 503 with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Pass,
    Fail(String),
}

/// Whether the engine is making progress: a cycle is running within its deadline, or one
/// started or finished within the idle limit (before the first cycle: since the daemon began).
pub fn health(progress: &Progress, limits: &ProbeLimits, now: Instant) -> Probe {
    if let Some(started) = progress.running_since() {
        let running = now.saturating_duration_since(started);
        return if running <= limits.cycle_deadline {
            Probe::Pass
        } else {
            Probe::Fail(format!(
                "cycle {} has been running for {}, longer than its deadline of {}",
                progress.cycles_started,
                seconds(running),
                seconds(limits.cycle_deadline)
            ))
        };
    }
    let last_activity = [
        Some(progress.since),
        progress.last_started,
        progress.last_finished.map(|(at, _)| at),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(progress.since);
    let idle = now.saturating_duration_since(last_activity);
    if idle <= limits.idle {
        Probe::Pass
    } else {
        Probe::Fail(format!(
            "no cycle has started for {}, longer than 3× the resync interval ({})",
            seconds(idle),
            seconds(limits.idle)
        ))
    }
}

/// Whether the daemon enforces its desired state now: it is live, and its last finished cycle
/// had a valid desired state and observed every kind. A running cycle does not change the
/// answer until it finishes.
pub fn readiness(progress: &Progress, limits: &ProbeLimits, now: Instant) -> Probe {
    if let Probe::Fail(why) = health(progress, limits, now) {
        return Probe::Fail(format!("not live: {why}"));
    }
    match progress.last_finished {
        None => Probe::Fail("the first cycle has not finished".into()),
        Some((_, outcome)) if !outcome.desired_state_valid => Probe::Fail(
            "the desired state on disk is invalid (desired_state.errors in /status)".into(),
        ),
        Some((_, outcome)) if !outcome.every_kind_observed => Probe::Fail(
            "the last cycle could not observe every kind (kinds[].observe_error in /status)".into(),
        ),
        Some(_) => Probe::Pass,
    }
}

fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs())
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the engine reported, in seconds after the daemon began.
    enum Event {
        Start(u64),
        Finish(u64, bool, bool),
    }
    use Event::{Finish, Start};

    /// A name, what happened, when it is asked, and the expected health and readiness.
    type Case = (
        &'static str,
        Vec<Event>,
        u64,
        Option<&'static str>,
        Option<&'static str>,
    );

    /// resync 10 s: idle limit 30 s; action deadline 60 s: cycle deadline 90 s.
    fn limits() -> ProbeLimits {
        ProbeLimits::new(Duration::from_secs(10), Duration::from_secs(60))
    }

    fn probes(events: &[Event], now: u64) -> (Probe, Probe) {
        let since = Instant::now();
        let at = |secs: u64| since + Duration::from_secs(secs);
        let mut progress = Progress::new(since);
        for event in events {
            match *event {
                Start(secs) => progress.started(at(secs)),
                Finish(secs, desired_state_valid, every_kind_observed) => progress.finished(
                    at(secs),
                    CycleOutcome {
                        desired_state_valid,
                        every_kind_observed,
                    },
                ),
            }
        }
        (
            health(&progress, &limits(), at(now)),
            readiness(&progress, &limits(), at(now)),
        )
    }

    /// `None` is a pass; otherwise the failure's reason starts with the text.
    fn check(probe: &Probe, expected: Option<&str>) -> bool {
        match (probe, expected) {
            (Probe::Pass, None) => true,
            (Probe::Fail(why), Some(start)) => why.starts_with(start),
            _ => false,
        }
    }

    #[test]
    fn health_and_readiness_follow_the_engines_progress() {
        const STALE: Option<&str> = Some("no cycle has started for");
        const OVERDUE: Option<&str> = Some("cycle 1 has been running for 91 s");
        const FIRST: Option<&str> = Some("the first cycle has not finished");
        let good = |secs| Finish(secs, true, true);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("just started, no cycle yet", vec![], 5, None, FIRST),
            ("no cycle ever started", vec![], 31, STALE, Some("not live: no cycle has started")),
            ("first cycle running", vec![Start(1)], 20, None, FIRST),
            ("a cycle runs past the idle limit, within its deadline", vec![Start(1)], 91, None, FIRST),
            ("a cycle runs past its deadline", vec![Start(1)], 92, OVERDUE, Some("not live: cycle 1")),
            ("finished, valid, every kind observed", vec![Start(1), good(2)], 12, None, None),
            ("exactly at the idle limit", vec![Start(1), good(2)], 32, None, None),
            ("no cycle since the last one finished", vec![Start(1), good(2)], 33, STALE, Some("not live")),
            ("a long cycle finished just now", vec![Start(1), good(80)], 100, None, None),
            ("the desired state is invalid", vec![Start(1), Finish(2, false, false)], 5, None, Some("the desired state on disk is invalid")),
            ("a kind was not observed", vec![Start(1), Finish(2, true, false)], 5, None, Some("the last cycle could not observe every kind")),
            ("ready while the next cycle runs", vec![Start(1), good(2), Start(12)], 14, None, None),
            ("readiness is cleared by a worse cycle", vec![Start(1), good(2), Start(12), Finish(13, true, false)], 14, None, Some("the last cycle could not observe")),
            ("and restored by a good one", vec![Start(1), Finish(2, false, true), Start(12), good(13)], 14, None, None),
        ];
        for (name, events, now, health, ready) in cases {
            let (h, r) = probes(&events, now);
            assert!(
                check(&h, health),
                "{name}: health {h:?}, expected {health:?}"
            );
            assert!(
                check(&r, ready),
                "{name}: readiness {r:?}, expected {ready:?}"
            );
        }
    }

    #[test]
    fn the_cycle_deadline_is_the_action_deadline_plus_the_idle_margin() {
        let limits = ProbeLimits::new(Duration::from_secs(30), Duration::from_secs(300));
        assert_eq!(limits.idle, Duration::from_secs(90));
        assert_eq!(limits.cycle_deadline, Duration::from_secs(390));
        assert_eq!(limits, ProbeLimits::default());
    }
}
