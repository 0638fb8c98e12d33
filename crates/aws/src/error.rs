//! The crate's error type: one variant per failed operation, each with the class that tells the
//! engine whether to retry, slow down, or wait for an operator (no I/O).

use std::path::PathBuf;

use converged_core::api::ApiOutcome;
use converged_core::{Classified, ErrorClass};

use crate::operation::Operation;

/// What went wrong with one AWS request, already classified. Carries the AWS error code and
/// message, never request parameters or credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} answered {detail}", .operation.name())]
pub struct ApiFailure {
    pub operation: Operation,
    /// The AWS error code, e.g. `RequestLimitExceeded`, when there was an answer.
    pub code: Option<String>,
    pub detail: String,
    pub class: ErrorClass,
    pub outcome: ApiOutcome,
}

impl ApiFailure {
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("failed to list the security groups: {0}")]
    ListGroups(#[source] ApiFailure),
    #[error("failed to create security group {name}: {source}")]
    CreateGroup { name: String, source: ApiFailure },
    #[error("security group {name} exists in {vpc_id} but is not tagged as this cluster's")]
    ForeignGroup { name: String, vpc_id: String },
    #[error("security group {name} does not exist yet in {vpc_id}")]
    GroupMissing { name: String, vpc_id: String },
    #[error("failed to authorize rules on {group_id}: {source}")]
    AuthorizeRules {
        group_id: String,
        source: ApiFailure,
    },
    #[error("failed to revoke rules on {group_id}: {source}")]
    RevokeRules {
        group_id: String,
        source: ApiFailure,
    },
    #[error("failed to delete security group {group_id}: {source}")]
    DeleteGroup {
        group_id: String,
        source: ApiFailure,
    },
    #[error("failed to list the instances: {0}")]
    ListInstances(#[source] ApiFailure),
    #[error("failed to look up image {ami}: {source}")]
    DescribeImage { ami: String, source: ApiFailure },
    #[error("image {ami} does not exist or is not visible to this account")]
    ImageMissing { ami: String },
    #[error("failed to launch the instance of node {node}: {source}")]
    LaunchInstance { node: String, source: ApiFailure },
    #[error("failed to stop {instance_id}: {source}")]
    StopInstance {
        instance_id: String,
        source: ApiFailure,
    },
    #[error("failed to start {instance_id}: {source}")]
    StartInstance {
        instance_id: String,
        source: ApiFailure,
    },
    #[error("failed to change the type of {instance_id}: {source}")]
    ResizeInstance {
        instance_id: String,
        source: ApiFailure,
    },
    #[error("failed to terminate {instance_ids:?}: {source}")]
    TerminateInstances {
        instance_ids: Vec<String>,
        source: ApiFailure,
    },
    #[error("failed to find hosted zone {zone}: {source}")]
    FindZone { zone: String, source: ApiFailure },
    #[error("hosted zone {zone} does not exist; converged manages records, not zones")]
    ZoneMissing { zone: String },
    #[error("failed to list the records of zone {zone_id}: {source}")]
    ListRecords { zone_id: String, source: ApiFailure },
    #[error("failed to change records in zone {zone_id}: {source}")]
    ChangeRecords { zone_id: String, source: ApiFailure },
    #[error("failed to follow record change {change_id}: {source}")]
    GetChange {
        change_id: String,
        source: ApiFailure,
    },
    #[error("failed to list the root volumes: {0}")]
    ListVolumes(#[source] ApiFailure),
    #[error("a record change was not sent: {message}")]
    BuildChange { message: String },
    #[error("failed to write the intent record {}: {source}", .path.display())]
    WriteIntent {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read the intent records in {}: {source}", .path.display())]
    ReadIntents {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no AWS region is known yet: the kind was not observed")]
    NotObserved,
}

impl Classified for AwsError {
    fn class(&self) -> ErrorClass {
        match self {
            AwsError::ListGroups(source)
            | AwsError::CreateGroup { source, .. }
            | AwsError::AuthorizeRules { source, .. }
            | AwsError::RevokeRules { source, .. }
            | AwsError::DeleteGroup { source, .. }
            | AwsError::ListInstances(source)
            | AwsError::DescribeImage { source, .. }
            | AwsError::LaunchInstance { source, .. }
            | AwsError::StopInstance { source, .. }
            | AwsError::StartInstance { source, .. }
            | AwsError::ResizeInstance { source, .. }
            | AwsError::TerminateInstances { source, .. }
            | AwsError::FindZone { source, .. }
            | AwsError::ListRecords { source, .. }
            | AwsError::ChangeRecords { source, .. }
            | AwsError::GetChange { source, .. }
            | AwsError::ListVolumes(source) => source.class,
            AwsError::ForeignGroup { .. }
            | AwsError::ImageMissing { .. }
            | AwsError::ZoneMissing { .. }
            | AwsError::BuildChange { .. } => ErrorClass::Invalid,
            AwsError::GroupMissing { .. }
            | AwsError::WriteIntent { .. }
            | AwsError::ReadIntents { .. }
            | AwsError::NotObserved => ErrorClass::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(class: ErrorClass) -> ApiFailure {
        ApiFailure {
            operation: Operation::RunInstances,
            code: Some("Code".into()),
            detail: "Code: message".into(),
            class,
            outcome: ApiOutcome::Error,
        }
    }

    #[test]
    fn classes_follow_the_answer_or_the_cause() {
        let cases = [
            (
                AwsError::LaunchInstance {
                    node: "a".into(),
                    source: failure(ErrorClass::Throttled),
                },
                ErrorClass::Throttled,
            ),
            (
                AwsError::ListInstances(failure(ErrorClass::Invalid)),
                ErrorClass::Invalid,
            ),
            (
                AwsError::ZoneMissing {
                    zone: "example.org.".into(),
                },
                ErrorClass::Invalid,
            ),
            (
                AwsError::GroupMissing {
                    name: "converged-a".into(),
                    vpc_id: "vpc-1".into(),
                },
                ErrorClass::Transient,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
        }
        let err = AwsError::ListInstances(failure(ErrorClass::Invalid)).into_observe("instance");
        assert_eq!(err.class(), ErrorClass::Invalid);
        assert_eq!(
            err.to_string(),
            "failed to observe instance: failed to list the instances: RunInstances answered Code: message"
        );
    }
}
