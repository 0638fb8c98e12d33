//! Faults for the supervision and fault-injection tests, compiled into debug builds only (no
//! I/O of its own beyond one line to stderr). A release build has no such code and ignores
//! the variables.
//!
//! - `CONVERGED_TEST_PANIC_IN=observe`: the daemon's first kind panics when it observes, so a
//!   test can watch the real binary's engine die.
//! - `CONVERGED_TEST_FAULT=<kind>:<action>:<point>`: the first time an action `<action>` of
//!   `<kind>` reaches `<point>`, the daemon prints `converged-test-fault reached <spec>` to
//!   stderr and freezes the thread that got there, so the engine goes no further; the test then
//!   kills the process with SIGKILL. The points, in the order an action passes them:
//!   - `before_request`: the attempt line is in the audit log; nothing was sent.
//!   - `in_flight`: the first request the action made reached the peer, which carried it out
//!     and answered; the reconciler has not read the answer (the freeze happens where the
//!     client reports the request, before it returns to the reconciler).
//!   - `after_answer`: the reconciler's apply returned; no outcome line was written.
//!   - `after_audit`: the outcome line is in the audit log.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use converged_core::api::{ApiOutcome, ApiRecorder};
use converged_core::reconciler::{DynReconciler, ErasedAction, ErasedKindPlan, Registry};
use converged_core::{DesiredState, Kind, ReconcileError};

pub const VARIABLE: &str = "CONVERGED_TEST_PANIC_IN";
pub const FAULT_VARIABLE: &str = "CONVERGED_TEST_FAULT";
/// What the daemon prints to stderr when it freezes at an armed point.
pub const REACHED: &str = "converged-test-fault reached";

/// Where an action can be interrupted (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    BeforeRequest,
    InFlight,
    AfterAnswer,
    AfterAudit,
}

impl Point {
    const ALL: [Point; 4] = [
        Point::BeforeRequest,
        Point::InFlight,
        Point::AfterAnswer,
        Point::AfterAudit,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Point::BeforeRequest => "before_request",
            Point::InFlight => "in_flight",
            Point::AfterAnswer => "after_answer",
            Point::AfterAudit => "after_audit",
        }
    }
}

#[derive(Debug)]
struct Armed {
    kind: String,
    action: String,
    point: Point,
}

impl Armed {
    fn matches(&self, kind: &str, action: &str, point: Point) -> bool {
        self.kind == kind && self.action == action && self.point == point
    }

    fn spec(&self) -> String {
        format!("{}:{}:{}", self.kind, self.action, self.point.as_str())
    }
}

/// The armed fault, read from the environment once.
fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(FAULT_VARIABLE).ok()?;
            let parsed = parse(&value);
            match &parsed {
                Some(armed) => tracing::warn!(
                    variable = FAULT_VARIABLE,
                    fault = %armed.spec(),
                    "the daemon will freeze at this point on purpose"
                ),
                None => tracing::warn!(
                    variable = FAULT_VARIABLE,
                    value = %value,
                    "ignored: expected <kind>:<action>:<point> with point one of before_request, in_flight, after_answer, after_audit"
                ),
            }
            parsed
        })
        .as_ref()
}

fn parse(value: &str) -> Option<Armed> {
    let mut parts = value.split(':');
    let (kind, action, point) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || kind.is_empty() || action.is_empty() {
        return None;
    }
    let point = Point::ALL.into_iter().find(|p| p.as_str() == point)?;
    Some(Armed {
        kind: kind.to_owned(),
        action: action.to_owned(),
        point,
    })
}

/// The engine passes `point` for an action: freezes here if that is the armed fault.
pub fn reached(kind: &str, action: &str, point: Point) {
    if let Some(armed) = armed().filter(|armed| armed.matches(kind, action, point)) {
        freeze(armed);
    }
}

/// Applies of the armed in-flight action running now.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Held by the engine while it applies an action: when the action is the armed `in_flight`
/// one, the first external request reported meanwhile freezes the daemon.
pub struct InFlight(bool);

pub fn applying(kind: &str, action: &str) -> InFlight {
    let armed = armed().is_some_and(|armed| armed.matches(kind, action, Point::InFlight));
    if armed {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    }
    InFlight(armed)
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0 {
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The daemon's request recorder, watched for the armed in-flight point.
pub struct WatchRequests(pub Arc<dyn ApiRecorder>);

impl ApiRecorder for WatchRequests {
    fn record(
        &self,
        service: &'static str,
        operation: &'static str,
        outcome: ApiOutcome,
        seconds: f64,
    ) {
        if IN_FLIGHT.load(Ordering::SeqCst) > 0
            && let Some(armed) = armed()
        {
            freeze(armed);
        }
        self.0.record(service, operation, outcome, seconds);
    }
}

/// Says so on stderr (unbuffered, so the line is out before the kill) and blocks this thread
/// until the test's SIGKILL ends the process. Blocking a runtime thread is deliberate and
/// harmless here: only a debug build armed by a test gets here, the in-flight point is reached
/// inside the synchronous request recorder where no await is possible, and the process is
/// killed within seconds; the runtime's other threads keep serving `/status` meanwhile.
fn freeze(armed: &Armed) -> ! {
    let _ = writeln!(std::io::stderr(), "{REACHED} {}", armed.spec());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The registry, with its first kind replaced by one that panics when it observes if the
/// environment asks for it.
pub fn inject_from_env(mut registry: Registry) -> Registry {
    let Some(stage) = std::env::var_os(VARIABLE) else {
        return registry;
    };
    if stage != "observe" {
        tracing::warn!(
            variable = VARIABLE,
            value = %stage.to_string_lossy(),
            "ignored: the only fault is `observe`"
        );
        return registry;
    }
    let first = registry.iter().next().cloned();
    if let Some(inner) = first {
        tracing::warn!(
            variable = VARIABLE,
            kind = inner.kind().as_str(),
            "this kind's observation will panic on purpose"
        );
        registry.register_dyn(Arc::new(PanicsOnObserve(inner)));
    }
    registry
}

struct PanicsOnObserve(Arc<dyn DynReconciler>);

#[async_trait]
impl DynReconciler for PanicsOnObserve {
    fn kind(&self) -> Kind {
        self.0.kind()
    }

    async fn observe_and_plan(
        &self,
        _desired: &DesiredState,
    ) -> Result<ErasedKindPlan, ReconcileError> {
        panic!("{VARIABLE}=observe: {} panicked on purpose", self.0.kind());
    }

    async fn apply(&self, action: &ErasedAction) -> Result<(), ReconcileError> {
        self.0.apply(action).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_kind_an_action_and_one_of_four_points() {
        let armed = parse("marathon_app:scale:in_flight").expect("valid");
        assert!(armed.matches("marathon_app", "scale", Point::InFlight));
        assert!(!armed.matches("marathon_app", "scale", Point::AfterAnswer));
        assert!(!armed.matches("marathon_app", "create", Point::InFlight));
        assert_eq!(armed.spec(), "marathon_app:scale:in_flight");
        for invalid in [
            "",
            "marathon_app:scale",
            "marathon_app:scale:later",
            ":scale:in_flight",
            "a:b:in_flight:extra",
        ] {
            assert!(parse(invalid).is_none(), "{invalid:?}");
        }
    }
}
