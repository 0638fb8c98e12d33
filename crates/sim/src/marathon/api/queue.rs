//! `/v2/queue` [`MAR@HEAD:M/api/v2/QueueResource.scala`]: apps with instances waiting to launch
//! and their launch delay, and resetting that delay. No I/O beyond answering.

use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Shared, message, refused};
use crate::marathon::app::{self, Profile};
use crate::server::iso;

/// GET /v2/queue.
pub(super) async fn list(State(marathon): State<Shared>) -> Json<Value> {
    let state = marathon.lock();
    let items: Vec<Value> = state
        .queue()
        .into_iter()
        .filter_map(|(id, count)| {
            let entry = state.apps.get(&id)?;
            let left = state
                .backoff
                .get(&id)
                .map(|backoff| backoff.until.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::ZERO);
            let mut item = json!({
                "app": app::render(state.profile, &entry.def, Some((&entry.last_scaling_at, &entry.last_config_change_at))),
                "count": count,
                "delay": {"timeLeftSeconds": left.as_secs(), "overdue": left.is_zero()},
            });
            if state.profile == Profile::V110 {
                let since = state
                    .queued_since
                    .get(&id)
                    .copied()
                    .unwrap_or_else(SystemTime::now);
                item["role"] = json!("*");
                item["since"] = json!(iso(since));
                item["processedOffersSummary"] = json!({"processedOffersCount": 0, "unusedOffersCount": 0,
                    "rejectSummaryLastOffers": [], "rejectSummaryLaunchAttempt": []});
            }
            Some(item)
        })
        .collect();
    Json(json!({"queue": items}))
}

/// DELETE /v2/queue/{id}/delay.
pub(super) async fn reset_delay(
    State(marathon): State<Shared>,
    Path(path): Path<String>,
) -> Response {
    let Some(id) = path.strip_suffix("/delay").and_then(app::canonical_id) else {
        return message(StatusCode::NOT_FOUND, "URI not found");
    };
    match marathon.lock().reset_delay(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refusal) => refused(marathon.cfg.profile, refusal),
    }
}
