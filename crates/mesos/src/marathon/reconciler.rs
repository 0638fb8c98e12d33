//! The `marathon_app` reconciler (glue, does I/O): observe through the client and the memory of
//! env keys sent as secrets, plan with `diff::plan`, apply one action (recording the keys a
//! request sends as secrets before it leaves).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{Classified, DesiredState, Kind, ReconcileError};

use super::api::MarathonApi;
use super::diff::{self, MarathonAction, MarathonObserved, SentSecrets};
use super::memory::SecretKeyStore;
use super::normalize::Profile;

pub struct MarathonApps {
    api: Arc<dyn MarathonApi>,
    deployment_deadline: Duration,
    /// Without one (tests without a state directory), nothing is remembered: only keys secret
    /// in the files are redacted.
    sent_secrets: Option<Arc<SecretKeyStore>>,
}

impl MarathonApps {
    pub fn new(api: Arc<dyn MarathonApi>, deployment_deadline: Duration) -> Self {
        Self {
            api,
            deployment_deadline,
            sent_secrets: None,
        }
    }

    /// Remembers the env keys sent as secrets in `store`, and redacts what Marathon holds for
    /// them even once the files no longer say secret.
    pub fn remembering_secrets_in(mut self, store: SecretKeyStore) -> Self {
        self.sent_secrets = Some(Arc::new(store));
        self
    }

    async fn remember(
        &self,
        id: &str,
        keys: &BTreeSet<String>,
        action: &'static str,
    ) -> Result<(), ReconcileError> {
        let Some(store) = &self.sent_secrets else {
            return Ok(());
        };
        store
            .remember(id, keys)
            .await
            .map_err(|err| err.into_apply(action))?;
        tracing::debug!(app = %id, keys = ?keys, path = %store.path().display(), "recorded the env keys sent as secrets");
        Ok(())
    }
}

#[async_trait]
impl Reconciler for MarathonApps {
    type Observed = MarathonObserved;
    type Action = MarathonAction;
    const KIND: Kind = Kind::MarathonApp;

    async fn observe(&self, desired: &DesiredState) -> Result<MarathonObserved, ReconcileError> {
        let (info, apps, deployments) = tokio::try_join!(
            self.api.info(),
            self.api.list_apps(),
            self.api.list_deployments()
        )
        .map_err(|err| err.into_observe("marathon_app"))?;
        let observed_at = SystemTime::now();
        let overdue = deployments.iter().any(|d| {
            d.started_at
                .and_then(|started| observed_at.duration_since(started).ok())
                .is_some_and(|running| running > self.deployment_deadline)
        });
        // The queue only explains stuck deployments, so it is read only when one is overdue.
        let queue = if overdue {
            self.api
                .launch_queue()
                .await
                .map_err(|err| err.into_observe("marathon_app"))?
        } else {
            Vec::new()
        };
        let sent_secrets = match &self.sent_secrets {
            Some(store) => store
                .load()
                .await
                .map_err(|err| err.into_observe("marathon_app"))?,
            None => SentSecrets::default(),
        };
        let secrets = diff::secret_refs(desired)
            .into_iter()
            .map(|reference| {
                let resolved = reference.resolve().map_err(|err| err.to_string());
                (reference, resolved)
            })
            .collect();
        Ok(MarathonObserved {
            profile: Profile::from_version(&info.version),
            apps,
            deployments,
            queue,
            secrets,
            sent_secrets,
            observed_at,
            deployment_deadline: self.deployment_deadline,
        })
    }

    fn plan(desired: &DesiredState, observed: &MarathonObserved) -> KindPlan<MarathonAction> {
        diff::plan(desired, observed)
    }

    async fn apply(&self, action: &MarathonAction) -> Result<(), ReconcileError> {
        match action {
            MarathonAction::Create {
                id,
                body,
                secret_keys,
            } => {
                self.remember(id, secret_keys, "create").await?;
                self.api
                    .create_app(body)
                    .await
                    .map_err(|e| e.into_apply("create"))?;
                tracing::info!(app = %id, "created app");
            }
            MarathonAction::Replace {
                id,
                body,
                full_replacement,
                secret_keys,
            } => {
                self.remember(id, secret_keys, "update").await?;
                self.api
                    .replace_app(id, body, *full_replacement)
                    .await
                    .map_err(|e| e.into_apply("update"))?;
                tracing::info!(app = %id, "updated app");
            }
            MarathonAction::Delete { id } => {
                self.api
                    .delete_app(id)
                    .await
                    .map_err(|e| e.into_apply("delete"))?;
                tracing::info!(app = %id, "deleted app");
                // Marathon holds nothing of the app any more. Failing to forget only redacts
                // too much, should the app come back.
                if let Err(err) = self.remember(id, &BTreeSet::new(), "delete").await {
                    tracing::warn!(app = %id, error = %err, "failed to forget the env keys sent as secrets");
                }
            }
            MarathonAction::Rollback { id, deployment } => {
                self.api
                    .rollback_deployment(deployment)
                    .await
                    .map_err(|e| e.into_apply("rollback"))?;
                tracing::info!(app = %id, deployment = %deployment, "rolled back deployment");
            }
        }
        Ok(())
    }
}
