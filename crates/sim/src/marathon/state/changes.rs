//! The changes Marathon's REST API asks of the state: creating, updating, rolling back,
//! restarting and deleting apps, killing tasks, cancelling deployments, resetting launch delays
//! and forcing health checks to fail, each refused the way upstream's resources refuse it. No I/O.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{ActionKind, AppEntry, MarathonState, Task, version_now};
use crate::marathon::app::{self, Rejection};

/// Why the state refused a change. Each message is the one Marathon answers with.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Running deployments touch the app and the request did not force
    /// [`MAR@HEAD:M/Exception.scala#AppLockedException`]; the literal `<DEPLOYMENT_ID>` is upstream's.
    #[error(
        "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'."
    )]
    Locked {
        /// Ids of the deployments holding the lock.
        deployments: Vec<String>,
    },
    /// No app has this id.
    #[error("App '{0}' does not exist")]
    UnknownApp(String),
    /// A rollback named a version the app never had.
    #[error("App '{app}' does not exist in version {version}")]
    UnknownVersion {
        /// App id.
        app: String,
        /// The version asked for.
        version: String,
    },
    /// POST of an id that is taken.
    #[error("An app with id [{0}] already exists.")]
    AppExists(String),
    /// The definition, merged with the stored one, did not validate.
    #[error("the app definition was rejected")]
    Rejected(Rejection),
    /// A task id the app does not have.
    #[error("Task '{0}' does not exist")]
    UnknownTask(String),
    /// No running deployment has this id.
    #[error("DeploymentPlan {0} does not exist")]
    UnknownDeployment(String),
    /// The app has no instances waiting to launch.
    #[error("Application {0} not found in tasks queue.")]
    NotQueued(String),
}

/// The deployment plan a change started.
#[derive(Debug)]
pub struct Deployed {
    /// Plan id.
    pub plan: String,
    /// Version the change wrote.
    pub version: String,
}

/// What a PUT of app definitions did.
#[derive(Debug)]
pub struct Updated {
    /// Whether an app was created (PUT of an unknown id).
    pub created: bool,
    /// The plan that rolls the change out.
    pub deployed: Deployed,
}

/// What killing an app's tasks did.
#[derive(Debug)]
pub enum TaskKill {
    /// The tasks killed; the app keeps its instance count, so they are replaced.
    Killed(Vec<Task>),
    /// The app was scaled down by the tasks killed, with this plan.
    Scaled(Deployed),
}

/// What an update did to one app.
struct AppUpdate {
    created: bool,
    steps: Vec<(ActionKind, String)>,
    original: Option<AppEntry>,
}

impl MarathonState {
    /// Refuses with [`Refusal::Locked`] if deployments touch `id` and the request does not force;
    /// with force, cancels them (no rollback).
    fn take_lock(&mut self, id: &str, force: bool) -> Result<(), Refusal> {
        let conflicts = self.conflicts(&[id.to_string()]);
        if !conflicts.is_empty() {
            if !force {
                return Err(Refusal::Locked {
                    deployments: conflicts,
                });
            }
            self.cancel(&conflicts);
        }
        Ok(())
    }

    /// Stores a new app at `version` (POST /v2/apps and PUT of an unknown id).
    fn insert_app(&mut self, mut def: Value, version: &str) -> AppEntry {
        let id = def["id"].as_str().unwrap_or_default().to_string();
        let mut taken = self.taken_service_ports(&id);
        app::assign_service_ports(&mut def, &mut taken);
        def["version"] = json!(version);
        let entry = AppEntry {
            def: def.clone(),
            last_scaling_at: version.to_string(),
            last_config_change_at: version.to_string(),
            versions: vec![(version.to_string(), def)],
        };
        self.apps.insert(id.clone(), entry.clone());
        self.backoff.remove(&id);
        entry
    }

    /// Creates an app from a validated definition and starts deploying it (POST /v2/apps).
    pub fn create_app(&mut self, def: Value, force: bool) -> Result<(AppEntry, Deployed), Refusal> {
        let id = def["id"].as_str().unwrap_or_default().to_string();
        if self.apps.contains_key(&id) {
            return Err(Refusal::AppExists(id));
        }
        self.take_lock(&id, force)?;
        let version = version_now();
        let entry = self.insert_app(def, &version);
        let plan = self.start_deployment(
            &version,
            vec![
                vec![(ActionKind::Start, id.clone())],
                vec![(ActionKind::Scale, id.clone())],
            ],
            BTreeMap::from([(id, None)]),
        );
        Ok((entry, Deployed { plan, version }))
    }

    /// Applies one app's update at `version`; changes nothing when it refuses.
    fn update_one(
        &mut self,
        id: &str,
        raw: &Value,
        partial: bool,
        version: &str,
    ) -> Result<AppUpdate, Refusal> {
        let existing = self.apps.get(id).cloned();
        if let (Some(existing), Some(wanted)) =
            (&existing, raw.get("version").and_then(Value::as_str))
        {
            // A `version` in the body is a rollback to that version; the rest is ignored.
            let Some((_, old)) = existing.versions.iter().find(|(kept, _)| kept == wanted) else {
                return Err(Refusal::UnknownVersion {
                    app: id.to_string(),
                    version: wanted.to_string(),
                });
            };
            let mut def = old.clone();
            def["version"] = json!(version);
            let entry = self
                .apps
                .get_mut(id)
                .ok_or_else(|| Refusal::UnknownApp(id.to_string()))?;
            entry.def = def.clone();
            entry.last_config_change_at = version.to_string();
            entry.last_scaling_at = version.to_string();
            entry.versions.push((version.to_string(), def));
            return Ok(AppUpdate {
                created: false,
                steps: vec![(ActionKind::Restart, id.to_string())],
                original: Some(existing.clone()),
            });
        }
        let mut merged = match (&existing, partial) {
            (Some(existing), true) => {
                let mut base = existing.def.clone();
                if let (Some(base), Some(update)) = (base.as_object_mut(), raw.as_object()) {
                    if update
                        .get("container")
                        .is_some_and(|container| container["docker"].get("network").is_some())
                        && update.get("networks").is_none()
                    {
                        base.remove("networks");
                    }
                    if update.contains_key("ports") && !update.contains_key("portDefinitions") {
                        base.remove("portDefinitions");
                    }
                    if update.contains_key("uris") && !update.contains_key("fetch") {
                        base.remove("fetch");
                    }
                    for (key, value) in update {
                        base.insert(key.clone(), value.clone());
                    }
                }
                base
            }
            _ => raw.clone(),
        };
        merged["id"] = json!(id);
        let mut def = app::normalize(self.profile, &merged).map_err(Refusal::Rejected)?;
        let Some(existing) = existing else {
            self.insert_app(def, version);
            return Ok(AppUpdate {
                created: true,
                steps: vec![
                    (ActionKind::Start, id.to_string()),
                    (ActionKind::Scale, id.to_string()),
                ],
                original: None,
            });
        };
        let mut taken = self.taken_service_ports(id);
        app::assign_service_ports(&mut def, &mut taken);
        let mut old = existing.def.clone();
        old["version"] = Value::Null;
        let mut compared = def.clone();
        compared["version"] = Value::Null;
        let kind = if old == compared {
            None
        } else if app::only_scale_change(&old, &compared) {
            Some(ActionKind::Scale)
        } else {
            Some(ActionKind::Restart)
        };
        def["version"] = json!(version);
        let entry = self
            .apps
            .get_mut(id)
            .ok_or_else(|| Refusal::UnknownApp(id.to_string()))?;
        entry.def = def.clone();
        match kind {
            Some(ActionKind::Scale) => entry.last_scaling_at = version.to_string(),
            Some(_) => {
                entry.last_scaling_at = version.to_string();
                entry.last_config_change_at = version.to_string();
            }
            None => {}
        }
        entry.versions.push((version.to_string(), def));
        if kind == Some(ActionKind::Restart) {
            self.backoff.remove(id);
        }
        Ok(AppUpdate {
            created: false,
            steps: kind
                .map(|kind| (kind, id.to_string()))
                .into_iter()
                .collect(),
            original: Some(existing),
        })
    }

    /// Creates, updates or rolls back apps by `(id, body)` in one plan (PUT /v2/apps and
    /// /v2/apps/{id}); `partial` merges each body into the stored definition. All or nothing:
    /// a refused app leaves every definition as it was.
    pub fn update_apps(
        &mut self,
        updates: &[(String, Value)],
        partial: bool,
        force: bool,
    ) -> Result<Updated, Refusal> {
        let ids: Vec<String> = updates.iter().map(|(id, _)| id.clone()).collect();
        let conflicts = self.conflicts(&ids);
        if !conflicts.is_empty() && !force {
            return Err(Refusal::Locked {
                deployments: conflicts,
            });
        }
        let snapshot = self.apps.clone();
        let version = version_now();
        let mut created = false;
        let mut starts = Vec::new();
        let mut rest = Vec::new();
        let mut original = BTreeMap::new();
        for (id, raw) in updates {
            match self.update_one(id, raw, partial, &version) {
                Ok(update) => {
                    created |= update.created;
                    original.insert(id.clone(), update.original);
                    for step in update.steps {
                        if step.0 == ActionKind::Start {
                            starts.push(step)
                        } else {
                            rest.push(step)
                        }
                    }
                }
                Err(refusal) => {
                    self.apps = snapshot;
                    return Err(refusal);
                }
            }
        }
        self.cancel(&conflicts);
        let plan = self.start_deployment(&version, vec![starts, rest], original);
        Ok(Updated {
            created,
            deployed: Deployed { plan, version },
        })
    }

    /// Deletes an app and starts stopping its tasks (DELETE /v2/apps/{id}).
    pub fn delete_app(&mut self, id: &str, force: bool) -> Result<Deployed, Refusal> {
        let Some(entry) = self.apps.get(id).cloned() else {
            return Err(Refusal::UnknownApp(id.to_string()));
        };
        self.take_lock(id, force)?;
        self.apps.remove(id);
        self.backoff.remove(id);
        self.failing_health.remove(id);
        let version = version_now();
        let plan = self.start_deployment(
            &version,
            vec![vec![(ActionKind::Stop, id.to_string())]],
            BTreeMap::from([(id.to_string(), Some(entry))]),
        );
        Ok(Deployed { plan, version })
    }

    /// Writes a new version of an app's definition and starts replacing its tasks
    /// (POST /v2/apps/{id}/restart).
    pub fn restart_app(&mut self, id: &str, force: bool) -> Result<Deployed, Refusal> {
        let Some(entry) = self.apps.get(id).cloned() else {
            return Err(Refusal::UnknownApp(id.to_string()));
        };
        self.take_lock(id, force)?;
        let version = version_now();
        if let Some(restarted) = self.apps.get_mut(id) {
            restarted.def["version"] = json!(version);
            restarted.last_config_change_at = version.clone();
            restarted
                .versions
                .push((version.clone(), restarted.def.clone()));
        }
        let plan = self.start_deployment(
            &version,
            vec![vec![(ActionKind::Restart, id.to_string())]],
            BTreeMap::from([(id.to_string(), Some(entry))]),
        );
        Ok(Deployed { plan, version })
    }

    /// Kills an app's tasks: the one named `task_id`, or with `None` all of them, on `host` if
    /// given; with `scale` the app's instance count drops by the tasks killed
    /// (DELETE /v2/apps/{id}/tasks[/{taskId}]).
    pub fn kill_app_tasks(
        &mut self,
        app_id: &str,
        task_id: Option<&str>,
        host: Option<&str>,
        scale: bool,
    ) -> Result<TaskKill, Refusal> {
        if !self.apps.contains_key(app_id) {
            return Err(Refusal::UnknownApp(app_id.to_string()));
        }
        let victims: Vec<String> = self
            .tasks_of(app_id)
            .iter()
            .filter(|task| {
                task_id.is_none_or(|wanted| task.id == wanted)
                    && host.is_none_or(|wanted| task.host == wanted)
            })
            .map(|task| task.id.clone())
            .collect();
        if let Some(wanted) = task_id
            && victims.is_empty()
        {
            return Err(Refusal::UnknownTask(wanted.to_string()));
        }
        let killed: Vec<Task> = victims
            .iter()
            .filter_map(|victim| self.kill(victim, false, "killed via API"))
            .collect();
        if !scale {
            return Ok(TaskKill::Killed(killed));
        }
        let version = version_now();
        if let Some(entry) = self.apps.get_mut(app_id) {
            let instances = entry.def["instances"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(killed.len() as u64);
            entry.def["instances"] = json!(instances);
            entry.def["version"] = json!(version);
            entry.last_scaling_at = version.clone();
            entry.versions.push((version.clone(), entry.def.clone()));
        }
        let plan = self.start_deployment(
            &version,
            vec![vec![(ActionKind::Scale, app_id.to_string())]],
            BTreeMap::from([(app_id.to_string(), None)]),
        );
        Ok(TaskKill::Scaled(Deployed { plan, version }))
    }

    /// Kills tasks by id, whatever their app (POST /v2/tasks/delete); returns those that lived.
    pub fn kill_tasks(&mut self, ids: &[String]) -> Vec<Task> {
        ids.iter()
            .filter_map(|id| self.kill(id, false, "killed via API"))
            .collect()
    }

    /// Cancels a running deployment (DELETE /v2/deployments/{id}). With `force` it just stops;
    /// otherwise a new plan rolls its apps back to their definitions before it, and that plan is
    /// returned [`DeploymentsResource.scala#cancel`].
    pub fn cancel_deployment(
        &mut self,
        id: &str,
        force: bool,
    ) -> Result<Option<Deployed>, Refusal> {
        let Some(cancelled) = self
            .deployments
            .iter()
            .find(|deployment| deployment.id == id)
            .cloned()
        else {
            return Err(Refusal::UnknownDeployment(id.to_string()));
        };
        self.cancel(&[id.to_string()]);
        if force {
            return Ok(None);
        }
        let version = version_now();
        let mut steps = Vec::new();
        let mut original = BTreeMap::new();
        for (app_id, before) in &cancelled.original {
            let now = self.apps.get(app_id).cloned();
            original.insert(app_id.clone(), now.clone());
            match before {
                None => {
                    self.apps.remove(app_id);
                    steps.push((ActionKind::Stop, app_id.clone()));
                }
                Some(previous) => {
                    let mut def = previous.def.clone();
                    def["version"] = json!(version);
                    let scale_only = now
                        .as_ref()
                        .is_some_and(|current| app::only_scale_change(&current.def, &previous.def));
                    let mut entry = previous.clone();
                    entry.def = def.clone();
                    entry.versions = now.map(|current| current.versions).unwrap_or_default();
                    entry.versions.push((version.clone(), def));
                    self.apps.insert(app_id.clone(), entry);
                    steps.push((
                        if scale_only {
                            ActionKind::Scale
                        } else {
                            ActionKind::Restart
                        },
                        app_id.clone(),
                    ));
                }
            }
        }
        let plan = self.start_deployment(&version, vec![steps], original);
        Ok(Some(Deployed { plan, version }))
    }

    /// Lets a queued app launch at once (DELETE /v2/queue/{id}/delay).
    pub fn reset_delay(&mut self, app_id: &str) -> Result<(), Refusal> {
        if !self.queue().iter().any(|(queued, _)| queued == app_id) {
            return Err(Refusal::NotQueued(app_id.to_string()));
        }
        self.backoff.remove(app_id);
        Ok(())
    }

    /// Makes an app's simulated health checks fail, or pass again (admin).
    pub fn set_health_failing(&mut self, app_id: &str, failing: bool) {
        if failing {
            self.failing_health.insert(app_id.to_string());
        } else {
            self.failing_health.remove(app_id);
        }
    }
}
