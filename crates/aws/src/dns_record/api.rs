//! What the `dns_record` reconciler needs from Route 53 (a narrow trait over our types) and its
//! SDK adapter (I/O).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_route53::types::{Change, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};

use super::{ChangeAction, ChangeStatus, RecordChange, RecordSet};
use crate::error::AwsError;
use crate::operation::Operation;
use crate::sdk::AwsContext;

#[async_trait]
pub trait DnsApi: Send + Sync {
    /// The id of the hosted zone named `zone` (public preferred), if there is one.
    async fn find_zone(&self, region: &str, zone: &str) -> Result<Option<String>, AwsError>;
    /// Every record set of the zone, every page.
    async fn list_records(&self, region: &str, zone_id: &str) -> Result<Vec<RecordSet>, AwsError>;
    /// One ChangeResourceRecordSets request with all of `changes`; returns the id of the
    /// change to follow (Route 53 always gives one).
    async fn change_records(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
    ) -> Result<Option<String>, AwsError>;
    /// Whether Route 53 has propagated a change to all its name servers (GetChange).
    async fn change_status(&self, region: &str, change_id: &str) -> Result<ChangeStatus, AwsError>;
}

/// `DnsApi` over the Route 53 SDK.
pub struct Route53Records {
    context: Arc<AwsContext>,
}

impl Route53Records {
    pub fn new(context: Arc<AwsContext>) -> Self {
        Self { context }
    }
}

/// Route 53 escapes some characters in names (`*` as `\052`) and ends them with a dot.
fn normalize(name: &str) -> String {
    let name = name.replace("\\052", "*").to_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

fn record_set(set: &ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: normalize(set.name()),
        record_type: set.r#type().as_str().to_owned(),
        ttl: set.ttl(),
        values: set
            .resource_records()
            .iter()
            .map(|record| record.value().to_owned())
            .collect(),
        alias: set.alias_target().is_some(),
        set_identifier: set.set_identifier().map(str::to_owned),
    }
}

fn sdk_change(change: &RecordChange) -> Result<Change, aws_sdk_route53::error::BuildError> {
    let record = &change.record;
    let mut set = ResourceRecordSet::builder()
        .name(&record.name)
        .r#type(RrType::from(record.record_type.as_str()))
        .set_ttl(record.ttl)
        .set_set_identifier(record.set_identifier.clone());
    for value in &record.values {
        set = set.resource_records(ResourceRecord::builder().value(value).build()?);
    }
    Change::builder()
        .action(match change.action {
            ChangeAction::Upsert => aws_sdk_route53::types::ChangeAction::Upsert,
            ChangeAction::Delete => aws_sdk_route53::types::ChangeAction::Delete,
        })
        .resource_record_set(set.build()?)
        .build()
}

#[async_trait]
impl DnsApi for Route53Records {
    async fn find_zone(&self, region: &str, zone: &str) -> Result<Option<String>, AwsError> {
        let clients = self.context.clients(region).await;
        let found = self
            .context
            .call(Operation::ListHostedZonesByName, || {
                clients
                    .route53
                    .list_hosted_zones_by_name()
                    .dns_name(zone)
                    .max_items(10)
                    .send()
            })
            .await
            .map_err(|source| AwsError::FindZone {
                zone: zone.to_owned(),
                source,
            })?;
        let wanted = normalize(zone);
        let mut matching: Vec<_> = found
            .hosted_zones()
            .iter()
            .filter(|hosted| normalize(hosted.name()) == wanted)
            .collect();
        matching.sort_by_key(|hosted| hosted.config().is_some_and(|c| c.private_zone()));
        Ok(matching
            .first()
            .map(|hosted| hosted.id().trim_start_matches("/hostedzone/").to_owned()))
    }

    async fn list_records(&self, region: &str, zone_id: &str) -> Result<Vec<RecordSet>, AwsError> {
        let clients = self.context.clients(region).await;
        let mut records = Vec::new();
        let mut next: Option<(String, RrType, Option<String>)> = None;
        loop {
            let page = self
                .context
                .call(Operation::ListResourceRecordSets, || {
                    let mut request = clients
                        .route53
                        .list_resource_record_sets()
                        .hosted_zone_id(zone_id);
                    if let Some((name, record_type, identifier)) = &next {
                        request = request
                            .start_record_name(name)
                            .start_record_type(record_type.clone())
                            .set_start_record_identifier(identifier.clone());
                    }
                    request.send()
                })
                .await
                .map_err(|source| AwsError::ListRecords {
                    zone_id: zone_id.to_owned(),
                    source,
                })?;
            records.extend(page.resource_record_sets().iter().map(record_set));
            next = match (
                page.is_truncated(),
                page.next_record_name(),
                page.next_record_type(),
            ) {
                (true, Some(name), Some(record_type)) => Some((
                    name.to_owned(),
                    record_type.clone(),
                    page.next_record_identifier().map(str::to_owned),
                )),
                _ => return Ok(records),
            };
        }
    }

    async fn change_records(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
    ) -> Result<Option<String>, AwsError> {
        let clients = self.context.current().await?;
        let built: Result<Vec<Change>, _> = changes.iter().map(sdk_change).collect();
        let batch = built
            .and_then(|changes| {
                ChangeBatch::builder()
                    .comment("converged")
                    .set_changes(Some(changes))
                    .build()
            })
            .map_err(|err| AwsError::BuildChange {
                message: err.to_string(),
            })?;
        self.context
            .call(Operation::ChangeResourceRecordSets, || {
                clients
                    .route53
                    .change_resource_record_sets()
                    .hosted_zone_id(zone_id)
                    .change_batch(batch.clone())
                    .send()
            })
            .await
            .map(|changed| changed.change_info().map(|info| change_id(info.id())))
            .map_err(|source| AwsError::ChangeRecords {
                zone_id: zone_id.to_owned(),
                source,
            })
    }

    async fn change_status(&self, region: &str, change_id: &str) -> Result<ChangeStatus, AwsError> {
        let clients = self.context.clients(region).await;
        let answer = self
            .context
            .call(Operation::GetChange, || {
                clients.route53.get_change().id(change_id).send()
            })
            .await;
        match answer {
            Ok(found) => Ok(
                match found.change_info().map(|info| info.status().as_str()) {
                    Some("PENDING") => ChangeStatus::Pending,
                    _ => ChangeStatus::InSync,
                },
            ),
            // Route 53 forgets old changes; one it no longer knows has nothing left to wait for.
            Err(failure) if failure.has_code("NoSuchChange") => Ok(ChangeStatus::InSync),
            Err(source) => Err(AwsError::GetChange {
                change_id: change_id.to_owned(),
                source,
            }),
        }
    }
}

/// Route 53 answers change ids as `/change/C…` and takes them back without the prefix.
fn change_id(id: &str) -> String {
    id.trim_start_matches("/change/").to_owned()
}
