//! `/v2/deployments` [`MAR@HEAD:M/api/v2/DeploymentsResource.scala`]: running plans with their
//! steps, and cancelling one (with rollback unless forced). No I/O beyond answering.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{QueryPairs, Shared, deployment_result, refused};
use crate::marathon::app::Profile;
use crate::marathon::state::Deployment;

fn deployment_json(profile: Profile, deployment: &Deployment) -> Value {
    // [1.1.1] steps use "type", currentActions use "action" [`MAR@1.1.1:Formats.scala:355-378`];
    // [HEAD] both use "action" [`MAR@HEAD:M/raml/DeploymentPlanConversion.scala`].
    let key = match profile {
        Profile::V11 => "type",
        Profile::V110 => "action",
    };
    let steps: Vec<Value> = deployment
        .steps
        .iter()
        .map(|step| {
            json!({"actions": step.iter().map(|action| json!({key: action.kind.name(), "app": action.app})).collect::<Vec<_>>()})
        })
        .collect();
    let current: Vec<Value> = deployment
        .steps
        .get(deployment.current)
        .map(|step| {
            step.iter()
                .map(|action| {
                    json!({"action": action.kind.name(), "app": action.app, "readinessCheckResults": []})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut rendered = json!({
        "id": deployment.id,
        "version": deployment.version,
        "affectedApps": deployment.affected,
        "steps": steps,
        "currentActions": current,
        "currentStep": (deployment.current + 1).min(deployment.steps.len().max(1)),
        "totalSteps": deployment.steps.len(),
    });
    if profile == Profile::V110 {
        rendered["affectedPods"] = json!([]);
    }
    rendered
}

/// GET /v2/deployments.
pub(super) async fn list(State(marathon): State<Shared>) -> Json<Value> {
    let state = marathon.lock();
    Json(json!(
        state
            .deployments
            .iter()
            .map(|deployment| deployment_json(state.profile, deployment))
            .collect::<Vec<_>>()
    ))
}

/// DELETE /v2/deployments/{id}: 202 when forced, else the rollback plan.
pub(super) async fn cancel(
    State(marathon): State<Shared>,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Response {
    let force = query.flag("force", false);
    let profile = marathon.cfg.profile;
    let mut state = marathon.lock();
    match state.cancel_deployment(&id, force) {
        Ok(None) => StatusCode::ACCEPTED.into_response(),
        Ok(Some(rollback)) => deployment_result(profile, StatusCode::OK, &rollback, None),
        Err(refusal) => refused(profile, refusal),
    }
}
