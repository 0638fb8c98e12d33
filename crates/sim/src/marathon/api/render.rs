//! The JSON several resources answer with: tasks with their health, and an app with its task
//! counts, deployments and the embeds asked for (`AppInfo`). No I/O.

use serde_json::{Value, json};

use super::QueryPairs;
use crate::marathon::app::{self, Profile};
use crate::marathon::state::{AppEntry, MarathonState, Task};
use crate::server::iso;

fn health_json(profile: Profile, task: &Task) -> Option<Value> {
    let health = task.health.as_ref()?;
    let mut rendered = json!({
        "alive": health.alive,
        "consecutiveFailures": health.consecutive_failures,
        "firstSuccess": health.first_success,
        "lastFailure": health.last_failure,
        "lastSuccess": health.last_success,
        "lastFailureCause": health.last_failure.as_ref().map(|_| "simulated failure"),
    });
    match profile {
        Profile::V11 => rendered["taskId"] = json!(task.id),
        Profile::V110 => {
            rendered["instanceId"] = json!(task.id.trim_end_matches("._app.1"));
        }
    }
    Some(rendered)
}

/// Task JSON [`MAR@1.1.1:Formats.scala#TaskWrites:117-162`; `head/raml/v2/types/task.raml`].
pub(super) fn task_json(profile: Profile, task: &Task) -> Value {
    let mut rendered = json!({
        "id": task.id,
        "appId": task.app_id,
        "host": task.host,
        "slaveId": task.agent_id,
        "ports": task.ports,
        "servicePorts": task.service_ports,
        "stagedAt": iso(task.staged_at),
        "startedAt": task.started_at.map(iso),
        "version": task.version,
    });
    if let Some(health) = health_json(profile, task) {
        rendered["healthCheckResults"] = json!([health]);
    }
    match profile {
        Profile::V11 => {
            rendered["ipAddresses"] = json!([]);
        }
        Profile::V110 => {
            rendered["state"] = json!(task.state());
            rendered["role"] = json!("*");
            if task.started_at.is_none() {
                rendered
                    .as_object_mut()
                    .map(|fields| fields.remove("startedAt"));
            }
        }
    }
    rendered
}

/// Which optional parts an app's JSON embeds.
#[derive(Clone, Copy, Default)]
pub(super) struct Embed {
    pub(super) tasks: bool,
    pub(super) last_failure: bool,
    pub(super) readiness: bool,
}

impl Embed {
    /// The `embed` parameters, each with or without `prefix` (`apps.`, `app.`).
    pub(super) fn from_query(query: &QueryPairs, prefix: &str) -> Self {
        let mut embed = Self::default();
        for wanted in query.all("embed") {
            match wanted.strip_prefix(prefix).unwrap_or(wanted) {
                "tasks" => embed.tasks = true,
                "lastTaskFailure" => embed.last_failure = true,
                "readiness" => embed.readiness = true,
                _ => {}
            }
        }
        embed
    }
}

/// AppInfo = App + counts + deployments (+ embeds) [`AppsResource.scala#index,show`; `TaskForStatistics.scala:36-41`].
pub(super) fn app_info(
    state: &MarathonState,
    entry: &AppEntry,
    embed: Embed,
    with_version_info: bool,
) -> Value {
    let id = entry.def["id"].as_str().unwrap_or_default();
    let version_info = with_version_info.then_some((
        entry.last_scaling_at.as_str(),
        entry.last_config_change_at.as_str(),
    ));
    let mut rendered = app::render(state.profile, &entry.def, version_info);
    let tasks = state.tasks_of(id);
    let staged = tasks
        .iter()
        .filter(|task| task.started_at.is_none())
        .count();
    let running = tasks.len() - staged;
    let healthy = tasks
        .iter()
        .filter(|task| task.health.as_ref().is_some_and(|health| health.alive))
        .count();
    let unhealthy = tasks
        .iter()
        .filter(|task| task.health.as_ref().is_some_and(|health| !health.alive))
        .count();
    rendered["tasksStaged"] = json!(staged);
    rendered["tasksRunning"] = json!(running);
    rendered["tasksHealthy"] = json!(healthy);
    rendered["tasksUnhealthy"] = json!(unhealthy);
    rendered["deployments"] = json!(
        state
            .deployments
            .iter()
            .filter(|deployment| deployment.affected.iter().any(|affected| affected == id))
            .map(|deployment| json!({"id": deployment.id}))
            .collect::<Vec<_>>()
    );
    if embed.tasks {
        rendered["tasks"] = json!(
            tasks
                .iter()
                .map(|task| task_json(state.profile, task))
                .collect::<Vec<_>>()
        );
    }
    if embed.last_failure
        && let Some(failure) = state.last_failure.get(id)
    {
        rendered["lastTaskFailure"] = failure.clone();
    }
    if embed.readiness {
        rendered["readinessCheckResults"] = json!([]);
    }
    rendered
}
