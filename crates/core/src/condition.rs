//! Resource conditions and the per-resource status record the engine keeps (pure data).

use serde::Serialize;

use crate::error::ErrorClass;
use crate::resource::ResourceId;

/// Where a resource stands, as `/status` and the `converged_resources` metric report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    InSync,
    /// Differs from the desired state and is not being acted on (observe mode, paused, policy).
    Drifted,
    /// An action was issued and its effect is not observed yet.
    Converging,
    /// The last action or observation failed; see the error and the next retry.
    Failed,
    /// Waits for a dependency to be ready.
    Blocked,
    /// Exists, is not ours, and is left alone.
    Unmanaged,
}

impl Condition {
    pub const ALL: [Condition; 6] = [
        Condition::InSync,
        Condition::Drifted,
        Condition::Converging,
        Condition::Failed,
        Condition::Blocked,
        Condition::Unmanaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::InSync => "in_sync",
            Condition::Drifted => "drifted",
            Condition::Converging => "converging",
            Condition::Failed => "failed",
            Condition::Blocked => "blocked",
            Condition::Unmanaged => "unmanaged",
        }
    }
}

/// The last action attempted on a resource and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastAction {
    pub verb: &'static str,
    pub reason: String,
    /// `succeeded` or `failed`.
    pub result: &'static str,
    /// RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub message: String,
    pub class: ErrorClass,
    pub at: String,
}

/// One resource as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceStatus {
    pub kind: &'static str,
    pub name: String,
    pub condition: Condition,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_on: Option<ResourceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Consecutive failures; 0 after a success.
    pub attempts: u32,
    /// RFC 3339; set while a failed resource waits for its retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry: Option<String>,
}
