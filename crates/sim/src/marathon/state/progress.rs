//! What one scheduler tick advances: tasks from staged to running, simulated health checks,
//! the steps of running deployments (rolling restarts per upgradeStrategy) and keeping apps at
//! their instance count, launching within launch backoff. No I/O.

use std::collections::BTreeSet;
use std::time::{Instant, SystemTime};

use super::{Action, ActionKind, Health, MarathonState, scaled};
use crate::server::iso;

impl MarathonState {
    /// Launches one instance of `app_id` unless backed off or nothing fits; true if launched.
    fn launch(&mut self, app_id: &str) -> bool {
        if self
            .backoff
            .get(app_id)
            .is_some_and(|backoff| backoff.until > Instant::now())
        {
            return false;
        }
        let Some(app) = self.apps.get(app_id).map(|entry| entry.def.clone()) else {
            return false;
        };
        match self.place(&app) {
            Some(task) => {
                tracing::info!(task_id = %task.id, app_id, agent_id = %task.agent_id, "Launched task");
                self.tasks.insert(task.id.clone(), task);
                true
            }
            None => {
                self.queued_since
                    .entry(app_id.to_string())
                    .or_insert_with(SystemTime::now);
                false
            }
        }
    }

    /// Kills the `count` most recently staged tasks of an app, leaving those of `version` alone.
    fn kill_youngest(&mut self, app_id: &str, count: usize, version: Option<&str>) {
        let mut by_age: Vec<(SystemTime, String)> = self
            .tasks_of(app_id)
            .into_iter()
            .filter(|task| version.is_none_or(|kept| task.version != kept))
            .map(|task| (task.staged_at, task.id.clone()))
            .collect();
        by_age.sort();
        by_age.reverse();
        for (_, id) in by_age.into_iter().take(count) {
            self.kill(&id, false, "killed by deployment");
        }
    }

    /// Advances tasks, health checks, deployments and instance upkeep by one tick.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let scale = self.timing.time_scale;
        let staging = self.timing.staging_delay;
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for id in ids {
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            let checks = self
                .apps
                .get(&task.app_id)
                .and_then(|entry| entry.def["healthChecks"].as_array().cloned())
                .unwrap_or_default();
            let failing = self.failing_health.contains(&task.app_id);
            let mut kill = false;
            if let Some(task) = self.tasks.get_mut(&id) {
                if task.started_at.is_none() && now.duration_since(task.staged_instant) >= staging {
                    task.started_at = Some(SystemTime::now());
                    task.started_instant = Some(now);
                    if let Some(check) = checks.first() {
                        let interval = check["intervalSeconds"].as_f64().unwrap_or(10.0);
                        task.next_check = Some(now + scaled(interval, scale));
                    }
                }
                if let (Some(check), Some(next), Some(started)) =
                    (checks.first(), task.next_check, task.started_instant)
                    && now >= next
                {
                    let interval = check["intervalSeconds"].as_f64().unwrap_or(10.0);
                    let grace = check["gracePeriodSeconds"].as_f64().unwrap_or(15.0);
                    let max_failures = check["maxConsecutiveFailures"].as_u64().unwrap_or(3) as u32;
                    task.next_check = Some(now + scaled(interval, scale));
                    let health = task.health.get_or_insert_with(Health::default);
                    let checked_at = iso(SystemTime::now());
                    if failing {
                        // Failures inside the grace period are ignored until the first success
                        // [`v1.1.1/resource-docs/AppsResource_create.md` gracePeriodSeconds].
                        let in_grace = now.duration_since(started) < scaled(grace, scale)
                            && health.first_success.is_none();
                        if !in_grace {
                            health.alive = false;
                            health.consecutive_failures += 1;
                            health.last_failure = Some(checked_at);
                            kill = max_failures > 0 && health.consecutive_failures >= max_failures;
                        }
                    } else {
                        health.alive = true;
                        health.consecutive_failures = 0;
                        health.first_success.get_or_insert(checked_at.clone());
                        health.last_success = Some(checked_at);
                    }
                }
            }
            if kill {
                self.kill(&id, true, "Task was killed since health check failed");
            }
        }
        self.advance_deployments();
        self.upkeep();
    }

    fn advance_deployments(&mut self) {
        let mut index = 0;
        while index < self.deployments.len() {
            let mut deployment = self.deployments[index].clone();
            let mut finished = false;
            loop {
                let Some(step) = deployment.steps.get_mut(deployment.current) else {
                    finished = true;
                    break;
                };
                let mut all_done = true;
                for action in step.iter_mut() {
                    if !self.run_action(action) {
                        all_done = false;
                    }
                }
                if all_done {
                    deployment.current += 1;
                } else {
                    break;
                }
            }
            if finished {
                tracing::info!(deployment_id = %deployment.id, "Deployment finished");
                self.deployments.remove(index);
            } else {
                self.deployments[index] = deployment;
                index += 1;
            }
        }
    }

    /// Runs one action for a tick; true when complete.
    fn run_action(&mut self, action: &mut Action) -> bool {
        let app_id = action.app.clone();
        match action.kind {
            ActionKind::Start => true,
            ActionKind::Stop => {
                let ids: Vec<String> = self
                    .tasks_of(&app_id)
                    .iter()
                    .map(|task| task.id.clone())
                    .collect();
                for id in ids {
                    self.kill(&id, false, "app deleted");
                }
                true
            }
            ActionKind::Scale => {
                let Some(target) = self
                    .apps
                    .get(&app_id)
                    .and_then(|entry| entry.def["instances"].as_u64())
                else {
                    return true;
                };
                let target = target as usize;
                let current = self.tasks_of(&app_id).len();
                if current > target {
                    self.kill_youngest(&app_id, current - target, None);
                }
                while self.tasks_of(&app_id).len() < target {
                    if !self.launch(&app_id) {
                        break;
                    }
                }
                let tasks = self.tasks_of(&app_id);
                tasks.len() == target && tasks.iter().all(|task| self.ready(task))
            }
            ActionKind::Restart => self.restart_step(action),
        }
    }

    /// Rolling replacement [`MAR@HEAD:M/core/deployment/impl/TaskReplaceActor.scala#computeRestartStrategy`].
    fn restart_step(&mut self, action: &mut Action) -> bool {
        let app_id = action.app.clone();
        let Some(app) = self.apps.get(&app_id).map(|entry| entry.def.clone()) else {
            return true;
        };
        let version = app["version"].as_str().unwrap_or_default().to_string();
        let instances = app["instances"].as_u64().unwrap_or(0) as usize;
        let minimum_health_capacity = app["upgradeStrategy"]["minimumHealthCapacity"]
            .as_f64()
            .unwrap_or(1.0);
        let maximum_over_capacity = app["upgradeStrategy"]["maximumOverCapacity"]
            .as_f64()
            .unwrap_or(1.0);
        let min_healthy = (instances as f64 * minimum_health_capacity).ceil() as usize;
        let mut max_capacity = (instances as f64 * (1.0 + maximum_over_capacity)).floor() as usize;
        let old: Vec<String> = self
            .tasks_of(&app_id)
            .iter()
            .filter(|task| task.version != version)
            .map(|task| task.id.clone())
            .collect();
        if min_healthy == max_capacity && max_capacity <= old.len() {
            max_capacity += 1;
        }
        if !action.restart_started {
            action.restart_started = true;
            let kill_now = old.len().saturating_sub(min_healthy);
            self.kill_youngest(&app_id, kill_now, Some(&version));
        }
        let new_ready = self
            .tasks_of(&app_id)
            .iter()
            .filter(|task| task.version == version && self.ready(task))
            .count();
        let old_alive = self
            .tasks_of(&app_id)
            .iter()
            .filter(|task| task.version != version)
            .count();
        let keep_old = min_healthy.saturating_sub(new_ready);
        if old_alive > keep_old {
            self.kill_youngest(&app_id, old_alive - keep_old, Some(&version));
        }
        loop {
            let tasks = self.tasks_of(&app_id);
            let new_total = tasks.iter().filter(|task| task.version == version).count();
            if new_total >= instances || tasks.len() >= max_capacity || !self.launch(&app_id) {
                break;
            }
        }
        let tasks = self.tasks_of(&app_id);
        let new_ready = tasks
            .iter()
            .filter(|task| task.version == version && self.ready(task))
            .count();
        let old_alive = tasks.iter().filter(|task| task.version != version).count();
        new_ready >= instances && old_alive == 0
    }

    /// Outside deployments, keeps each app at its instance count (replacing lost/failed tasks).
    fn upkeep(&mut self) {
        let locked: BTreeSet<String> = self
            .deployments
            .iter()
            .flat_map(|deployment| deployment.affected.clone())
            .collect();
        let ids: Vec<String> = self.apps.keys().cloned().collect();
        for id in ids {
            if locked.contains(&id) {
                continue;
            }
            let target = self.apps[&id].def["instances"].as_u64().unwrap_or(0) as usize;
            while self.tasks_of(&id).len() < target {
                if !self.launch(&id) {
                    break;
                }
            }
            if self.tasks_of(&id).len() >= target {
                self.queued_since.remove(&id);
            }
        }
    }
}
