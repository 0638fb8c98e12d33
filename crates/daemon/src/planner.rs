//! One read-only pass: load the desired state, observe and plan every kind, act on nothing.
//! Serves `converged plan` and `GET /v1/plan`.

use std::path::PathBuf;

use converged_core::Problem;
use converged_core::load_desired_state;
use converged_core::model::Mode;
use converged_core::plan::{ResourcePlan, Verdict};
use converged_core::reconciler::{ErasedPayload, Registry};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub revision: String,
    /// Resources that differ from the desired state (to act on, or reported only).
    pub pending_changes: usize,
    pub kinds: Vec<KindPlanReport>,
}

#[derive(Debug, Serialize)]
pub struct KindPlanReport {
    pub kind: &'static str,
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub resources: Vec<ResourcePlan<ErasedPayload>>,
}

#[derive(Debug)]
pub enum PlanFailure {
    Invalid(Vec<Problem>),
}

#[derive(Clone)]
pub struct Planner {
    registry: Registry,
    desired_state: PathBuf,
}

impl Planner {
    pub fn new(registry: Registry, desired_state: PathBuf) -> Self {
        Self {
            registry,
            desired_state,
        }
    }

    pub async fn plan(&self) -> Result<PlanReport, PlanFailure> {
        let desired = load_desired_state(&self.desired_state)
            .map_err(|err| PlanFailure::Invalid(err.problems))?;
        let results = futures::future::join_all(self.registry.iter().map(|reconciler| {
            let desired = &desired;
            async move {
                (
                    reconciler.kind(),
                    reconciler.observe_and_plan(desired).await,
                )
            }
        }))
        .await;
        let mut pending_changes = 0;
        let kinds = results
            .into_iter()
            .map(|(kind, result)| {
                let mode = match desired.mode(kind) {
                    Mode::Enforce => "enforce",
                    Mode::Observe => "observe",
                };
                match result {
                    Ok(plan) => {
                        pending_changes += plan
                            .resources
                            .iter()
                            .filter(|r| {
                                matches!(r.verdict, Verdict::Act { .. } | Verdict::Drifted { .. })
                            })
                            .count();
                        KindPlanReport {
                            kind: kind.as_str(),
                            mode,
                            error: None,
                            resources: plan.resources,
                        }
                    }
                    Err(err) => KindPlanReport {
                        kind: kind.as_str(),
                        mode,
                        error: Some(err.to_string()),
                        resources: Vec::new(),
                    },
                }
            })
            .collect();
        Ok(PlanReport {
            revision: desired.revision.clone(),
            pending_changes,
            kinds,
        })
    }
}

impl PlanReport {
    pub fn has_errors(&self) -> bool {
        self.kinds.iter().any(|kind| kind.error.is_some())
    }

    /// The plan for people: one line per resource that differs, its field changes indented.
    pub fn render_text(&self) -> String {
        let mut out = format!("desired state revision {}\n", self.revision);
        if self.kinds.is_empty() {
            out.push_str("no kinds are enabled: nothing to plan\n");
        }
        for kind in &self.kinds {
            out.push_str(&format!("\n{} ({})\n", kind.kind, kind.mode));
            if let Some(error) = &kind.error {
                out.push_str(&format!("  ! cannot observe: {error}\n"));
                continue;
            }
            let mut in_sync = 0;
            for resource in &kind.resources {
                let (marker, text) = match &resource.verdict {
                    Verdict::InSync => {
                        in_sync += 1;
                        continue;
                    }
                    Verdict::Act { actions } => {
                        let described: Vec<String> = actions
                            .iter()
                            .map(|a| format!("{} ({})", a.verb, a.reason))
                            .collect();
                        ("~", described.join(", then "))
                    }
                    Verdict::Converging { reason } => (".", format!("converging: {reason}")),
                    Verdict::Blocked { on, reason } => (".", format!("blocked on {on}: {reason}")),
                    Verdict::Drifted { reason, .. } => {
                        ("!", format!("drifted, not acted on: {reason}"))
                    }
                    Verdict::Unmanaged { reason } => ("?", format!("unmanaged: {reason}")),
                    Verdict::Failed { reason } => ("!", format!("failed: {reason}")),
                };
                out.push_str(&format!("  {marker} {}: {text}\n", resource.id));
                let changes = match &resource.verdict {
                    Verdict::Act { actions } => {
                        actions.iter().flat_map(|a| a.changes.iter()).collect()
                    }
                    Verdict::Drifted { changes, .. } => changes.iter().collect(),
                    _ => Vec::new(),
                };
                for change in changes {
                    out.push_str(&format!(
                        "      {}: {} → {}\n",
                        change.path,
                        change.from.as_deref().unwrap_or("(none)"),
                        change.to.as_deref().unwrap_or("(none)")
                    ));
                }
            }
            out.push_str(&format!("  = {in_sync} in sync\n"));
        }
        out.push_str(&format!("\n{} pending change(s)\n", self.pending_changes));
        out
    }
}
