//! The `marathon_app` plan (pure, no client): desired app files × what Marathon reports →
//! create, replace, delete, roll back, or a reason to wait or report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use converged_core::model::app::MarathonApp;
use converged_core::plan::{FieldChange, KindPlan, PlannedAction, ResourcePlan, Verdict};
use converged_core::secret::{MaybeSecret, Secret, SecretRef};
use converged_core::{DesiredState, Kind, ResourceId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::{AppBody, Deployment, ObservedApp, QueuedLaunch};
use super::normalize::{
    Difference, Profile, accept_assigned_ports, canonical, canonical_id, differences,
    is_host_network, pointer_key,
};

/// The label that makes an app ours: its value is the cluster name.
pub const OWNER_LABEL: &str = "converged.cluster";
/// `"true"` in a file: manage an existing app that lacks the owner label.
pub const ADOPT_LABEL: &str = "converged.adopt";
/// `"rollback"` in a file: roll back a deployment stuck past the deadline instead of only
/// reporting it.
pub const STUCK_DEPLOYMENT_LABEL: &str = "converged.on-stuck-deployment";

/// Everything `plan` needs, gathered by `observe`.
#[derive(Debug, Clone)]
pub struct MarathonObserved {
    pub profile: Profile,
    pub apps: Vec<ObservedApp>,
    pub deployments: Vec<Deployment>,
    pub queue: Vec<QueuedLaunch>,
    /// The secret references the desired apps use, resolved (or why they could not be).
    pub secrets: BTreeMap<SecretRef, Result<Secret, String>>,
    /// The env keys converged sent as secrets, read from the state directory.
    pub sent_secrets: SentSecrets,
    /// When the observation was made, and how long a deployment may run before it counts
    /// as stuck: the clock is read in `observe`, never in `plan`.
    pub observed_at: SystemTime,
    pub deployment_deadline: Duration,
}

/// Per app id, the env keys converged sent to Marathon as secrets and whose values Marathon may
/// still hold. Kept in the state directory, so a value that stopped being secret in the files
/// (turned plain, or removed) is still never shown while Marathon has it. Key names only,
/// never values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentSecrets {
    pub apps: BTreeMap<String, BTreeSet<String>>,
}

impl SentSecrets {
    pub fn of(&self, app: &str) -> impl Iterator<Item = &String> {
        self.apps.get(app).into_iter().flatten()
    }
}

#[derive(Debug, Clone)]
pub enum MarathonAction {
    /// `secret_keys`: what to remember for the app before the body leaves.
    Create {
        id: String,
        body: AppBody,
        secret_keys: BTreeSet<String>,
    },
    Replace {
        id: String,
        body: AppBody,
        full_replacement: bool,
        secret_keys: BTreeSet<String>,
    },
    Delete {
        id: String,
    },
    Rollback {
        id: String,
        deployment: String,
    },
}

pub fn plan(desired: &DesiredState, observed: &MarathonObserved) -> KindPlan<MarathonAction> {
    let cluster = desired.cluster.name.as_str();
    let by_id: BTreeMap<&str, &ObservedApp> = observed
        .apps
        .iter()
        .map(|app| (app.id.as_str(), app))
        .collect();
    let mut resources = Vec::new();
    let mut declared = BTreeSet::new();
    for file in &desired.apps {
        let id = canonical_id(&file.app.id);
        declared.insert(id.clone());
        let resource = ResourceId::new(Kind::MarathonApp, &id);
        let verdict = match by_id.get(id.as_str()) {
            None => match request_body(&file.app, cluster, observed.profile, &observed.secrets) {
                Ok(body) => Verdict::Act {
                    actions: vec![PlannedAction::new(
                        MarathonAction::Create {
                            // A create answered "already exists" leaves whatever Marathon held,
                            // so what was remembered stays remembered.
                            secret_keys: secret_keys(&file.app)
                                .chain(observed.sent_secrets.of(&id).cloned())
                                .collect(),
                            id: id.clone(),
                            body,
                        },
                        "create",
                        format!("not in Marathon (from {})", file.path),
                    )],
                },
                Err(reason) => Verdict::Failed { reason },
            },
            Some(app) => plan_existing(&file.app, app, cluster, observed),
        };
        resources.push(ResourcePlan::new(resource, verdict));
    }
    for app in &observed.apps {
        if declared.contains(&app.id)
            || app.labels.get(OWNER_LABEL).map(String::as_str) != Some(cluster)
        {
            continue;
        }
        let action = PlannedAction::new(
            MarathonAction::Delete { id: app.id.clone() },
            "delete",
            "labelled as ours, but no file in apps/ declares it",
        )
        .deleting();
        resources.push(ResourcePlan::act(
            ResourceId::new(Kind::MarathonApp, &app.id),
            vec![action],
        ));
    }
    KindPlan::new(resources)
}

fn plan_existing(
    app: &MarathonApp,
    observed_app: &ObservedApp,
    cluster: &str,
    observed: &MarathonObserved,
) -> Verdict<MarathonAction> {
    let no_labels = BTreeMap::new();
    let labels = app.labels.as_ref().unwrap_or(&no_labels);
    let owner = observed_app.labels.get(OWNER_LABEL);
    let adopting = labels.get(ADOPT_LABEL).map(String::as_str) == Some("true");
    if owner.map(String::as_str) != Some(cluster) && !adopting {
        let reason = match owner {
            Some(other) => {
                format!("owned by cluster `{other}` ({OWNER_LABEL}={other}); left alone")
            }
            None => format!(
                "exists in Marathon without the {OWNER_LABEL}={cluster} label; left alone (add \"{ADOPT_LABEL}\": \"true\" to the file's labels to manage it)"
            ),
        };
        return Verdict::Unmanaged { reason };
    }
    if let Some(deployment) = running_deployment(observed_app, &observed.deployments) {
        return deployment_verdict(&observed_app.id, deployment, labels, observed);
    }
    let body = match request_body(app, cluster, observed.profile, &observed.secrets) {
        Ok(body) => body,
        Err(reason) => return Verdict::Failed { reason },
    };
    let mut want = canonical(&body.0, observed.profile);
    let have = canonical(&observed_app.definition, observed.profile);
    accept_assigned_ports(&mut want, &have);
    let found = differences(&want, &have);
    if found.is_empty() {
        return tasks_verdict(&want, observed_app);
    }
    let scale_only = found.iter().all(|d| d.path == "/instances");
    let redaction = Redaction::new(app, observed_app, observed);
    let changes = found.iter().map(|d| redaction.change(d)).collect();
    let reason = if scale_only {
        "instances differ: Marathon scales without restarting tasks".to_owned()
    } else {
        let paths: Vec<&str> = found.iter().map(|d| d.path.as_str()).collect();
        format!(
            "{} changed: Marathon restarts the tasks (rolling, per upgradeStrategy)",
            paths.join(", ")
        )
    };
    let verb = if scale_only { "scale" } else { "update" };
    Verdict::Act {
        actions: vec![
            PlannedAction::new(
                MarathonAction::Replace {
                    secret_keys: keys_to_remember(app, observed_app, &body, observed),
                    id: observed_app.id.clone(),
                    body,
                    full_replacement: observed.profile == Profile::Current,
                },
                verb,
                reason,
            )
            .with_changes(changes),
        ],
    }
}

fn running_deployment<'a>(
    app: &ObservedApp,
    deployments: &'a [Deployment],
) -> Option<&'a Deployment> {
    deployments
        .iter()
        .find(|d| d.affected_apps.contains(&app.id) || app.deployment_ids.contains(&d.id))
}

fn deployment_verdict(
    id: &str,
    deployment: &Deployment,
    labels: &BTreeMap<String, String>,
    observed: &MarathonObserved,
) -> Verdict<MarathonAction> {
    let step = format!(
        "deployment {} at step {}/{}{}",
        deployment.id,
        deployment.current_step,
        deployment.total_steps,
        if deployment.current_actions.is_empty() {
            String::new()
        } else {
            format!(" ({})", deployment.current_actions.join(", "))
        }
    );
    let running_for = deployment
        .started_at
        .and_then(|started| observed.observed_at.duration_since(started).ok())
        .unwrap_or_default();
    if running_for <= observed.deployment_deadline {
        return Verdict::Converging { reason: step };
    }
    let waiting = observed
        .queue
        .iter()
        .find(|q| q.app_id == id)
        .map(|q| {
            let declined = if q.declined_for.is_empty() {
                String::new()
            } else {
                format!("; offers declined for {}", q.declined_for.join(", "))
            };
            format!(
                "; {} task(s) still waiting for a matching agent with enough resources{declined}",
                q.count
            )
        })
        .unwrap_or_default();
    let reason = format!(
        "{step} has run for {} s, past the {} s deadline{waiting}",
        running_for.as_secs(),
        observed.deployment_deadline.as_secs()
    );
    if labels.get(STUCK_DEPLOYMENT_LABEL).map(String::as_str) == Some("rollback") {
        return Verdict::Act {
            actions: vec![PlannedAction::new(
                MarathonAction::Rollback {
                    id: id.to_owned(),
                    deployment: deployment.id.clone(),
                },
                "rollback",
                reason,
            )],
        };
    }
    Verdict::Failed {
        reason: format!(
            "{reason} (set the label {STUCK_DEPLOYMENT_LABEL}=rollback to roll such deployments back)"
        ),
    }
}

/// In sync once enough tasks run, and are healthy when the app has health checks.
fn tasks_verdict(want: &Value, app: &ObservedApp) -> Verdict<MarathonAction> {
    let instances = want["instances"].as_f64().unwrap_or(1.0) as u32;
    let checked = want["healthChecks"]
        .as_array()
        .is_some_and(|hc| !hc.is_empty());
    let (ready, what) = if checked {
        (app.tasks_healthy, "healthy")
    } else {
        (app.tasks_running, "running")
    };
    if ready >= instances {
        Verdict::InSync
    } else {
        Verdict::Converging {
            reason: format!("{ready} of {instances} task(s) {what}"),
        }
    }
}

/// The body sent to Marathon: the file, with secrets resolved, the owner label added and
/// every removable field given explicitly, so that a field removed from the file is removed in
/// Marathon even by servers that merge updates (1.1) instead of replacing.
pub fn request_body(
    app: &MarathonApp,
    cluster: &str,
    profile: Profile,
    secrets: &BTreeMap<SecretRef, Result<Secret, String>>,
) -> Result<AppBody, String> {
    let mut body = serde_json::to_value(app).map_err(|err| err.to_string())?;
    body["id"] = json!(canonical_id(&app.id));
    let mut env = serde_json::Map::new();
    for (key, value) in &app.env {
        let text = match value {
            MaybeSecret::Plain(text) => text.clone(),
            MaybeSecret::Secret { secret } => match secrets.get(secret) {
                Some(Ok(resolved)) => resolved.expose().to_owned(),
                Some(Err(why)) => {
                    return Err(format!(
                        "secret {secret} for /env/{key} cannot be read: {why}"
                    ));
                }
                None => return Err(format!("secret {secret} for /env/{key} was not resolved")),
            },
        };
        env.insert(key.clone(), json!(text));
    }
    body["env"] = Value::Object(env);
    let mut labels = app.labels.clone().unwrap_or_default();
    labels.insert(OWNER_LABEL.to_owned(), cluster.to_owned());
    body["labels"] = json!(labels);
    let defaults = [
        ("instances", json!(1)),
        ("cpus", json!(1.0)),
        ("mem", json!(128.0)),
        ("disk", json!(0.0)),
        ("constraints", json!([])),
        ("healthChecks", json!([])),
        ("dependencies", json!([])),
        ("requirePorts", json!(false)),
        ("backoffSeconds", json!(1)),
        ("backoffFactor", json!(1.15)),
        (
            "maxLaunchDelaySeconds",
            json!(if profile == Profile::Legacy {
                3600
            } else {
                300
            }),
        ),
        (
            "upgradeStrategy",
            json!({"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}),
        ),
    ];
    let object = body.as_object_mut().ok_or("the app is not a JSON object")?;
    for (field, default) in defaults {
        object.entry(field).or_insert(default);
    }
    if !object.contains_key("fetch") && !object.contains_key("uris") {
        object.insert("fetch".into(), json!([]));
    }
    let host_network = is_host_network(object);
    if host_network && !object.contains_key("portDefinitions") && !object.contains_key("ports") {
        let definition = match profile {
            Profile::Legacy => json!({"port": 0, "protocol": "tcp"}),
            Profile::Current => json!({"port": 0, "protocol": "tcp", "name": "default"}),
        };
        object.insert("portDefinitions".into(), json!([definition]));
    }
    Ok(AppBody(body))
}

/// The env keys the file marks secret.
fn secret_keys(app: &MarathonApp) -> impl Iterator<Item = String> + '_ {
    app.env
        .iter()
        .filter(|(_, value)| value.is_secret())
        .map(|(key, _)| key.clone())
}

/// What to remember for an app about to be replaced: the keys sent as secrets now, and the
/// remembered ones whose old value Marathon still holds (it differs from what is sent). A key
/// Marathon already holds the sent plain value for, or no longer holds, is forgotten; until
/// the request is answered, what Marathon holds is still covered.
fn keys_to_remember(
    app: &MarathonApp,
    observed_app: &ObservedApp,
    body: &AppBody,
    observed: &MarathonObserved,
) -> BTreeSet<String> {
    let held = &observed_app.definition["env"];
    let sent = &body.0["env"];
    let still_held = observed
        .sent_secrets
        .of(&observed_app.id)
        .filter(|key| {
            held.get(key.as_str())
                .is_some_and(|value| sent.get(key.as_str()) != Some(value))
        })
        .cloned();
    secret_keys(app).chain(still_held).collect()
}

/// Which differences of one app are shown as `<redacted>`: env keys the file marks secret or
/// converged sent as secret, and any value that contains a secret resolved for this cycle,
/// whichever key holds it. When in doubt, redact.
struct Redaction<'a> {
    secret_paths: BTreeSet<String>,
    resolved: Vec<&'a str>,
}

impl<'a> Redaction<'a> {
    fn new(app: &MarathonApp, observed_app: &ObservedApp, observed: &'a MarathonObserved) -> Self {
        let secret_paths = secret_keys(app)
            .chain(observed.sent_secrets.of(&observed_app.id).cloned())
            .map(|key| format!("/env/{}", pointer_key(&key)))
            .collect();
        let resolved = observed
            .secrets
            .values()
            .filter_map(|secret| secret.as_ref().ok())
            .map(Secret::expose)
            .filter(|value| !value.is_empty())
            .collect();
        Self {
            secret_paths,
            resolved,
        }
    }

    fn change(&self, difference: &Difference) -> FieldChange {
        let sides = [&difference.observed, &difference.desired];
        if self.secret_paths.contains(&difference.path)
            || sides
                .iter()
                .filter_map(|side| side.as_ref())
                .any(|value| self.mentions_a_secret(value))
        {
            return FieldChange::redacted(&difference.path);
        }
        let render = |value: &Option<Value>| value.as_ref().map(|v| v.to_string());
        FieldChange::new(
            &difference.path,
            render(&difference.observed),
            render(&difference.desired),
        )
    }

    fn mentions_a_secret(&self, value: &Value) -> bool {
        let contains = |text: &str| self.resolved.iter().any(|secret| text.contains(secret));
        match value {
            Value::String(text) => contains(text),
            Value::Array(items) => items.iter().any(|item| self.mentions_a_secret(item)),
            Value::Object(map) => map
                .iter()
                .any(|(key, item)| contains(key) || self.mentions_a_secret(item)),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
}

/// The secret references the desired apps use, for `observe` to resolve.
pub fn secret_refs(desired: &DesiredState) -> BTreeSet<SecretRef> {
    desired
        .apps
        .iter()
        .flat_map(|file| file.app.env.values())
        .filter_map(|value| match value {
            MaybeSecret::Secret { secret } => Some(secret.clone()),
            MaybeSecret::Plain(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use converged_core::load::parse_sources;

    const CLUSTER: &str = "[cluster]\nname = \"prod\"\n";

    fn desired(apps: &[(&str, &str)]) -> DesiredState {
        let mut sources = vec![("cluster.toml".to_owned(), CLUSTER.to_owned())];
        sources.extend(
            apps.iter()
                .map(|(name, json)| (format!("apps/{name}"), (*json).to_owned())),
        );
        parse_sources(&sources, "r".into()).expect("valid")
    }

    fn observed(apps: Vec<ObservedApp>) -> MarathonObserved {
        let mut secrets = BTreeMap::new();
        secrets.insert(SecretRef::Env("PW".into()), Ok(Secret::new("hunter2")));
        MarathonObserved {
            profile: Profile::Current,
            apps,
            deployments: Vec::new(),
            queue: Vec::new(),
            secrets,
            sent_secrets: SentSecrets::default(),
            observed_at: SystemTime::UNIX_EPOCH + Duration::from_secs(10_000),
            deployment_deadline: Duration::from_secs(600),
        }
    }

    /// What Marathon would report after accepting `file` as is, with `running` tasks.
    fn as_marathon(file: &str, running: u32) -> ObservedApp {
        let app: MarathonApp = serde_json::from_str(file).unwrap();
        let body = request_body(&app, "prod", Profile::Current, &observed(vec![]).secrets).unwrap();
        ObservedApp {
            id: canonical_id(&app.id),
            labels: [(OWNER_LABEL.to_owned(), "prod".to_owned())].into(),
            definition: body.0,
            tasks_running: running,
            tasks_healthy: 0,
            deployment_ids: Vec::new(),
        }
    }

    fn verdict_name(plan: &ResourcePlan<MarathonAction>) -> String {
        match &plan.verdict {
            Verdict::InSync => "in_sync".into(),
            Verdict::Act { actions } => {
                actions.iter().map(|a| a.verb).collect::<Vec<_>>().join("+")
            }
            Verdict::Converging { .. } => "converging".into(),
            Verdict::Blocked { .. } => "blocked".into(),
            Verdict::Drifted { .. } => "drifted".into(),
            Verdict::Unmanaged { .. } => "unmanaged".into(),
            Verdict::Failed { .. } => "failed".into(),
        }
    }

    const WEB: &str = r#"{"id": "/web", "cmd": "serve", "instances": 2, "env": {"PW": {"secret": "env:PW"}, "MODE": "a"}}"#;

    #[test]
    fn verdicts_for_each_situation() {
        let mut scaled = as_marathon(WEB, 2);
        scaled.definition["instances"] = json!(5);
        let mut foreign = as_marathon(WEB, 2);
        foreign.labels.clear();
        let mut other_cluster = as_marathon(WEB, 2);
        other_cluster
            .labels
            .insert(OWNER_LABEL.into(), "staging".into());
        let mut changed = as_marathon(WEB, 2);
        changed.definition["cmd"] = json!("old");
        let mut deploying = as_marathon(WEB, 1);
        deploying.deployment_ids = vec!["d1".into()];
        let cases: Vec<(&str, Vec<ObservedApp>, &str)> = vec![
            ("absent", vec![], "create"),
            ("converged", vec![as_marathon(WEB, 2)], "in_sync"),
            (
                "tasks still starting",
                vec![as_marathon(WEB, 1)],
                "converging",
            ),
            ("scaled by hand", vec![scaled], "scale"),
            ("config changed", vec![changed], "update"),
            ("no owner label", vec![foreign], "unmanaged"),
            ("another cluster's", vec![other_cluster], "unmanaged"),
            ("a deployment running", vec![deploying], "converging"),
        ];
        let state = desired(&[("web.json", WEB)]);
        for (name, apps, expected) in cases {
            let plan = plan(&state, &observed(apps));
            assert_eq!(plan.resources.len(), 1, "{name}");
            assert_eq!(verdict_name(&plan.resources[0]), expected, "{name}");
        }
    }

    #[test]
    fn orphans_of_ours_are_deleted_and_others_ignored() {
        let mut stranger = as_marathon(r#"{"id": "/stranger", "cmd": "x"}"#, 1);
        stranger.labels.clear();
        let ours = as_marathon(r#"{"id": "/old", "cmd": "x"}"#, 1);
        let plan = plan(&desired(&[]), &observed(vec![stranger, ours]));
        assert_eq!(plan.resources.len(), 1);
        assert_eq!(plan.resources[0].id.name, "/old");
        assert!(plan.resources[0].actions()[0].deletes);
    }

    #[test]
    fn secret_changes_are_redacted_and_never_printed() {
        let mut drifted = as_marathon(WEB, 2);
        drifted.definition["env"]["PW"] = json!("old-password");
        let plan = plan(&desired(&[("web.json", WEB)]), &observed(vec![drifted]));
        let action = &plan.resources[0].actions()[0];
        assert_eq!(action.changes, vec![FieldChange::redacted("/env/PW")]);
        let printed = format!("{:?} {}", plan, serde_json::to_string(&plan).unwrap());
        assert!(
            !printed.contains("hunter2") && !printed.contains("old-password"),
            "{printed}"
        );
    }

    fn replace_of(plan: &KindPlan<MarathonAction>) -> (&[FieldChange], &BTreeSet<String>) {
        let action = &plan.resources[0].actions()[0];
        let MarathonAction::Replace { secret_keys, .. } = &action.action else {
            panic!("{:?}", action.action)
        };
        (&action.changes, secret_keys)
    }

    /// Marathon holds what converged sent for WEB (PW = hunter2) and OLD_KEY from an earlier
    /// revision, both remembered as sent secrets; then the file turns PW plain.
    #[test]
    fn values_once_sent_as_secrets_stay_redacted_after_the_file_stops_saying_secret() {
        let mut held = as_marathon(WEB, 2);
        held.definition["env"]["OLD_KEY"] = json!("old-secret-5d1");
        let mut seen = observed(vec![held]);
        seen.sent_secrets
            .apps
            .insert("/web".into(), ["PW".into(), "OLD_KEY".into()].into());
        let plain = r#"{"id": "/web", "cmd": "serve", "instances": 2, "env": {"PW": "now-plain", "MODE": "a"}}"#;
        let first = plan(&desired(&[("web.json", plain)]), &seen);
        let (changes, remember) = replace_of(&first);
        assert_eq!(
            changes,
            [
                FieldChange::redacted("/env/OLD_KEY"),
                FieldChange::redacted("/env/PW")
            ]
        );
        let printed = format!("{first:?} {}", serde_json::to_string(&first).unwrap());
        assert!(
            !printed.contains("hunter2") && !printed.contains("old-secret-5d1"),
            "{printed}"
        );
        assert_eq!(
            remember,
            &BTreeSet::from(["OLD_KEY".to_owned(), "PW".to_owned()]),
            "Marathon still holds both old values until the update is answered"
        );

        // Once Marathon holds the plain value and no OLD_KEY, the next update forgets both.
        let mut updated = as_marathon(plain, 2);
        updated.definition["cmd"] = json!("old");
        let mut seen = observed(vec![updated]);
        seen.sent_secrets
            .apps
            .insert("/web".into(), ["PW".into(), "OLD_KEY".into()].into());
        let second = plan(&desired(&[("web.json", plain)]), &seen);
        assert_eq!(replace_of(&second).1, &BTreeSet::new());
    }

    #[test]
    fn a_value_equal_to_a_resolved_secret_is_redacted_under_any_key() {
        let mut drifted = as_marathon(WEB, 2);
        drifted.definition["env"]["COPY"] = json!("hunter2");
        drifted.definition["labels"]["note"] = json!("pw=hunter2;");
        let plan = plan(&desired(&[("web.json", WEB)]), &observed(vec![drifted]));
        let (changes, remember) = replace_of(&plan);
        assert_eq!(
            changes,
            [
                FieldChange::redacted("/env/COPY"),
                FieldChange::redacted("/labels/note")
            ]
        );
        assert_eq!(remember, &BTreeSet::from(["PW".to_owned()]));
    }

    #[test]
    fn a_create_remembers_the_secret_keys_it_sends_and_those_remembered() {
        let mut seen = observed(vec![]);
        seen.sent_secrets
            .apps
            .insert("/web".into(), ["GONE".into()].into());
        let plan = plan(&desired(&[("web.json", WEB)]), &seen);
        let MarathonAction::Create { secret_keys, .. } = &plan.resources[0].actions()[0].action
        else {
            panic!("a create")
        };
        assert_eq!(
            secret_keys,
            &BTreeSet::from(["GONE".to_owned(), "PW".to_owned()])
        );
    }

    #[test]
    fn an_unreadable_secret_fails_the_app_only() {
        let mut observed = observed(vec![]);
        observed
            .secrets
            .insert(SecretRef::Env("PW".into()), Err("not set".into()));
        let state = desired(&[("web.json", WEB), ("b.json", r#"{"id": "/b", "cmd": "x"}"#)]);
        let plan = plan(&state, &observed);
        let names: Vec<String> = plan.resources.iter().map(verdict_name).collect();
        assert_eq!(names, vec!["failed", "create"]);
    }

    #[test]
    fn a_stuck_deployment_is_failed_or_rolled_back_by_policy() {
        let mut app = as_marathon(WEB, 0);
        app.deployment_ids = vec!["d1".into()];
        let deployment = Deployment {
            id: "d1".into(),
            started_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)),
            affected_apps: vec!["/web".into()],
            current_step: 2,
            total_steps: 2,
            current_actions: vec!["ScaleApplication /web".into()],
        };
        let mut seen = observed(vec![app]);
        seen.deployments = vec![deployment];
        seen.queue = vec![QueuedLaunch {
            app_id: "/web".into(),
            count: 2,
            declined_for: vec!["InsufficientMemory".into()],
        }];
        let plan1 = plan(&desired(&[("web.json", WEB)]), &seen);
        let Verdict::Failed { reason } = &plan1.resources[0].verdict else {
            panic!("{:?}", plan1.resources[0].verdict)
        };
        assert!(
            reason.contains(
                "step 2/2 (ScaleApplication /web) has run for 9000 s, past the 600 s deadline"
            ),
            "{reason}"
        );
        assert!(
            reason.contains("2 task(s) still waiting") && reason.contains("InsufficientMemory"),
            "{reason}"
        );

        let rollback = WEB.replace(
            "\"instances\": 2",
            "\"instances\": 2, \"labels\": {\"converged.on-stuck-deployment\": \"rollback\"}",
        );
        let plan2 = plan(&desired(&[("web.json", &rollback)]), &seen);
        assert_eq!(verdict_name(&plan2.resources[0]), "rollback");
    }

    #[test]
    fn the_body_spells_out_removable_fields_and_the_owner_label() {
        let app: MarathonApp = serde_json::from_str(r#"{"id": "a/b", "cmd": "x"}"#).unwrap();
        let body = request_body(&app, "prod", Profile::Legacy, &BTreeMap::new())
            .unwrap()
            .0;
        assert_eq!(body["id"], "/a/b");
        assert_eq!(body["labels"][OWNER_LABEL], "prod");
        assert_eq!(body["env"], json!({}));
        assert_eq!(body["constraints"], json!([]));
        assert_eq!(body["maxLaunchDelaySeconds"], 3600);
        assert_eq!(
            body["portDefinitions"],
            json!([{"port": 0, "protocol": "tcp"}])
        );
    }
}
