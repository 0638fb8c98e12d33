//! Glue between the engine and Route 53 for the `dns_record` kind (I/O in observe and apply;
//! the plan is `diff::plan`).
//!
//! Observation: the zone id (looked up once, then kept), one paginated record listing, one
//! DescribeInstances for the nodes' addresses (the instance kind makes its own; sharing one
//! would couple the kinds' observations), and one GetChange per change sent earlier that was
//! not yet seen INSYNC (none in a cycle after a cycle without writes). Propagation is followed
//! across cycles, never waited for inside apply: a record whose change is still PENDING shows
//! `converging` with the change id. The changes followed live in memory; after a restart the
//! listing alone decides.
//!
//! The engine applies each record's change separately and concurrently; changes for a zone
//! that arrive close together are sent as one ChangeResourceRecordSets request (split only at
//! Route 53's limits). If a combined request fails, each record's change is sent alone, so one
//! bad record cannot fail the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{Classified, DesiredState, Kind, ReconcileError};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::api::DnsApi;
use super::{
    ChangeAction, ChangeStatus, DnsChange, DnsObservation, RecordChange, ZoneObservation, diff,
};
use crate::error::AwsError;
use crate::instance::api::InstanceApi;

/// A batch is sent once no change has joined it for this long...
const BATCH_QUIET: Duration = Duration::from_millis(25);
/// ...or once it has waited this long.
const BATCH_MAX_WAIT: Duration = Duration::from_millis(500);

pub struct DnsRecordReconciler {
    api: Arc<dyn DnsApi>,
    instances: Arc<dyn InstanceApi>,
    /// (zone name, zone id) of the last successful lookup.
    zone: Mutex<Option<(String, String)>>,
    batcher: Arc<Batcher>,
    /// Changes sent and not yet seen INSYNC: change id → the names of the records it changed.
    sent: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl DnsRecordReconciler {
    pub fn new(api: Arc<dyn DnsApi>, instances: Arc<dyn InstanceApi>) -> Self {
        Self {
            batcher: Arc::new(Batcher {
                api: Arc::clone(&api),
                pending: Mutex::new(HashMap::new()),
            }),
            api,
            instances,
            zone: Mutex::new(None),
            sent: Mutex::new(BTreeMap::new()),
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks Route 53 about every change not yet seen INSYNC, forgets those that are, and
    /// returns record name → change id for the others.
    async fn follow_changes(&self, region: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let change_ids: Vec<String> = self.sent().keys().cloned().collect();
        let mut propagating = BTreeMap::new();
        for change_id in change_ids {
            match self.api.change_status(region, &change_id).await? {
                ChangeStatus::InSync => {
                    if let Some(names) = self.sent().remove(&change_id) {
                        tracing::info!(
                            change_id,
                            records = names.len(),
                            "record change propagated"
                        );
                    }
                }
                ChangeStatus::Pending => {
                    for name in self.sent().get(&change_id).into_iter().flatten() {
                        propagating.insert(name.clone(), change_id.clone());
                    }
                }
            }
        }
        Ok(propagating)
    }

    fn cached_zone(&self, name: &str) -> Option<String> {
        self.zone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|(cached, _)| cached == name)
            .map(|(_, id)| id.clone())
    }

    fn remember_zone(&self, zone: Option<(String, String)>) {
        *self
            .zone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = zone;
    }

    async fn observe_zone(&self, desired: &DesiredState) -> Result<DnsObservation, AwsError> {
        let (Some(dns), Some(region)) = (&desired.dns, &desired.cluster.region) else {
            return Ok(None);
        };
        let zone_id = match self.cached_zone(&dns.zone) {
            Some(id) => id,
            None => {
                let id = self
                    .api
                    .find_zone(region, &dns.zone)
                    .await?
                    .ok_or_else(|| AwsError::ZoneMissing {
                        zone: dns.zone.clone(),
                    })?;
                self.remember_zone(Some((dns.zone.clone(), id.clone())));
                id
            }
        };
        // Listed concurrently, so the instance kind's listing in flight is joined, not repeated.
        let list_instances = async {
            if diff::wanted_records(desired).is_empty() {
                Ok(Vec::new())
            } else {
                self.instances
                    .list_instances(region, &desired.cluster.name)
                    .await
            }
        };
        let (records, instances) =
            tokio::join!(self.api.list_records(region, &zone_id), list_instances);
        let records = match records {
            Ok(records) => records,
            Err(err) => {
                // The zone may have been deleted and recreated under a new id.
                self.remember_zone(None);
                return Err(err);
            }
        };
        let instances = instances?;
        let propagating = self.follow_changes(region).await?;
        Ok(Some(ZoneObservation {
            zone_id,
            records,
            instances,
            propagating,
        }))
    }
}

#[async_trait]
impl Reconciler for DnsRecordReconciler {
    type Observed = DnsObservation;
    type Action = DnsChange;
    const KIND: Kind = Kind::DnsRecord;

    async fn observe(&self, desired: &DesiredState) -> Result<DnsObservation, ReconcileError> {
        self.observe_zone(desired)
            .await
            .map_err(|err| err.into_observe(Self::KIND.as_str()))
    }

    fn plan(desired: &DesiredState, observed: &DnsObservation) -> KindPlan<DnsChange> {
        diff::plan(desired, observed)
    }

    async fn apply(&self, action: &DnsChange) -> Result<(), ReconcileError> {
        let verb = if action
            .changes
            .iter()
            .all(|change| change.action == ChangeAction::Delete)
        {
            "delete"
        } else {
            "upsert"
        };
        let change_id = Arc::clone(&self.batcher)
            .submit(&action.zone_id, action.changes.clone())
            .await
            .map_err(|err| err.into_apply(verb))?;
        for change in &action.changes {
            tracing::info!(
                zone_id = %action.zone_id,
                name = %change.record.name,
                record_type = %change.record.record_type,
                change = change.action.as_str(),
                change_id = change_id.as_deref().unwrap_or("none"),
                "changed record"
            );
        }
        if let Some(change_id) = change_id {
            self.sent()
                .entry(change_id)
                .or_default()
                .extend(action.changes.iter().map(|c| c.record.name.clone()));
        }
        Ok(())
    }
}

/// The id of the change that carried a submission, or `None` when nothing had to change (the
/// records it deletes were already gone).
type Submitted = Result<Option<String>, AwsError>;

struct Submission {
    changes: Vec<RecordChange>,
    done: oneshot::Sender<Submitted>,
}

/// Collects the changes for each zone that arrive close together into one request.
struct Batcher {
    api: Arc<dyn DnsApi>,
    pending: Mutex<HashMap<String, Vec<Submission>>>,
}

impl Batcher {
    fn pending_count(&self, zone_id: &str) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(zone_id)
            .map_or(0, Vec::len)
    }

    async fn submit(self: Arc<Self>, zone_id: &str, changes: Vec<RecordChange>) -> Submitted {
        let (done, result) = oneshot::channel();
        let first = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let queue = pending.entry(zone_id.to_owned()).or_default();
            queue.push(Submission { changes, done });
            queue.len() == 1
        };
        if first {
            let zone_id = zone_id.to_owned();
            tokio::spawn(async move { self.flush_when_quiet(zone_id).await });
        }
        result.await.unwrap_or(Err(AwsError::BuildChange {
            message: "the batch was dropped before it was sent".into(),
        }))
    }

    async fn flush_when_quiet(&self, zone_id: String) {
        let started = Instant::now();
        let mut seen = 0;
        loop {
            tokio::time::sleep(BATCH_QUIET).await;
            let count = self.pending_count(&zone_id);
            if count == seen || started.elapsed() >= BATCH_MAX_WAIT {
                break;
            }
            seen = count;
        }
        let submissions = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&zone_id)
            .unwrap_or_default();
        let groups: Vec<Vec<RecordChange>> =
            submissions.iter().map(|s| s.changes.clone()).collect();
        let mut submissions: Vec<Option<Submission>> = submissions.into_iter().map(Some).collect();
        for batch in diff::pack(&groups) {
            let members: Vec<Submission> = batch
                .iter()
                .filter_map(|index| submissions[*index].take())
                .collect();
            self.send(&zone_id, members).await;
        }
    }

    async fn send(&self, zone_id: &str, members: Vec<Submission>) {
        let changes: Vec<RecordChange> = members
            .iter()
            .flat_map(|member| member.changes.iter().cloned())
            .collect();
        match self.api.change_records(zone_id, &changes).await {
            Ok(change_id) => {
                tracing::debug!(
                    zone_id,
                    change_id = change_id.as_deref().unwrap_or("none"),
                    changes = changes.len(),
                    "sent a batch of record changes"
                );
                for member in members {
                    let _ = member.done.send(Ok(change_id.clone()));
                }
            }
            Err(err) if members.len() == 1 => {
                if let Some(member) = members.into_iter().next() {
                    let _ = member.done.send(tolerate_gone(&member.changes, err));
                }
            }
            Err(err) => {
                tracing::debug!(zone_id, error = %err, "a batch of record changes failed; sending each record's alone");
                for member in members {
                    let result = self
                        .api
                        .change_records(zone_id, &member.changes)
                        .await
                        .or_else(|err| tolerate_gone(&member.changes, err));
                    let _ = member.done.send(result);
                }
            }
        }
    }
}

/// Deleting records that are already gone is a success, with no change to follow.
fn tolerate_gone(changes: &[RecordChange], err: AwsError) -> Submitted {
    let only_deletes = changes.iter().all(|c| c.action == ChangeAction::Delete);
    match &err {
        AwsError::ChangeRecords { source, .. }
            if only_deletes
                && source.has_code("InvalidChangeBatch")
                && source.detail.contains("not found") =>
        {
            Ok(None)
        }
        _ => Err(err),
    }
}
