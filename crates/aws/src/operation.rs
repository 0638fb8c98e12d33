//! The closed set of AWS operations converged can call (pure data). Every SDK request goes
//! through `AwsContext::call` with one of these, so this list is what the rate limiter, the
//! request metric and `deploy/iam-policy.json` are checked against.

/// An AWS API operation, named as AWS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    DescribeSecurityGroups,
    CreateSecurityGroup,
    AuthorizeSecurityGroupIngress,
    AuthorizeSecurityGroupEgress,
    RevokeSecurityGroupIngress,
    RevokeSecurityGroupEgress,
    DeleteSecurityGroup,
    DescribeInstances,
    DescribeImages,
    RunInstances,
    StopInstances,
    StartInstances,
    ModifyInstanceAttribute,
    TerminateInstances,
    ListHostedZonesByName,
    ListResourceRecordSets,
    ChangeResourceRecordSets,
    GetChange,
    DescribeVolumes,
}

/// The token bucket an operation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Ec2Describe,
    Ec2Mutate,
    Ec2RunInstances,
    Route53,
}

impl Operation {
    pub const ALL: [Operation; 19] = [
        Operation::DescribeSecurityGroups,
        Operation::CreateSecurityGroup,
        Operation::AuthorizeSecurityGroupIngress,
        Operation::AuthorizeSecurityGroupEgress,
        Operation::RevokeSecurityGroupIngress,
        Operation::RevokeSecurityGroupEgress,
        Operation::DeleteSecurityGroup,
        Operation::DescribeInstances,
        Operation::DescribeImages,
        Operation::RunInstances,
        Operation::StopInstances,
        Operation::StartInstances,
        Operation::ModifyInstanceAttribute,
        Operation::TerminateInstances,
        Operation::ListHostedZonesByName,
        Operation::ListResourceRecordSets,
        Operation::ChangeResourceRecordSets,
        Operation::GetChange,
        Operation::DescribeVolumes,
    ];

    /// The operation name, also the `operation` label of `converged_api_requests_total`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::DescribeSecurityGroups => "DescribeSecurityGroups",
            Operation::CreateSecurityGroup => "CreateSecurityGroup",
            Operation::AuthorizeSecurityGroupIngress => "AuthorizeSecurityGroupIngress",
            Operation::AuthorizeSecurityGroupEgress => "AuthorizeSecurityGroupEgress",
            Operation::RevokeSecurityGroupIngress => "RevokeSecurityGroupIngress",
            Operation::RevokeSecurityGroupEgress => "RevokeSecurityGroupEgress",
            Operation::DeleteSecurityGroup => "DeleteSecurityGroup",
            Operation::DescribeInstances => "DescribeInstances",
            Operation::DescribeImages => "DescribeImages",
            Operation::RunInstances => "RunInstances",
            Operation::StopInstances => "StopInstances",
            Operation::StartInstances => "StartInstances",
            Operation::ModifyInstanceAttribute => "ModifyInstanceAttribute",
            Operation::TerminateInstances => "TerminateInstances",
            Operation::ListHostedZonesByName => "ListHostedZonesByName",
            Operation::ListResourceRecordSets => "ListResourceRecordSets",
            Operation::ChangeResourceRecordSets => "ChangeResourceRecordSets",
            Operation::GetChange => "GetChange",
            Operation::DescribeVolumes => "DescribeVolumes",
        }
    }

    /// The service, also the `service` label and the IAM action prefix.
    pub fn service(self) -> &'static str {
        match self {
            Operation::ListHostedZonesByName
            | Operation::ListResourceRecordSets
            | Operation::ChangeResourceRecordSets
            | Operation::GetChange => "route53",
            _ => "ec2",
        }
    }

    /// The IAM action that allows it, e.g. `ec2:DescribeInstances`.
    pub fn iam_action(self) -> String {
        format!("{}:{}", self.service(), self.name())
    }

    /// Whether the operation changes anything.
    pub fn is_mutating(self) -> bool {
        !matches!(
            self,
            Operation::DescribeSecurityGroups
                | Operation::DescribeInstances
                | Operation::DescribeImages
                | Operation::DescribeVolumes
                | Operation::ListHostedZonesByName
                | Operation::ListResourceRecordSets
                | Operation::GetChange
        )
    }

    pub fn bucket(self) -> Bucket {
        match self {
            Operation::RunInstances => Bucket::Ec2RunInstances,
            Operation::ListHostedZonesByName
            | Operation::ListResourceRecordSets
            | Operation::ChangeResourceRecordSets
            | Operation::GetChange => Bucket::Route53,
            op if op.is_mutating() => Bucket::Ec2Mutate,
            _ => Bucket::Ec2Describe,
        }
    }

    /// Whether a request that got no answer (timeout, 5xx) may be sent again at once. Reads
    /// and requests whose repetition has the same effect may; a create whose outcome is
    /// unknown is left to the next cycle, which looks for what it made first.
    pub fn retry_unanswered(self) -> bool {
        !matches!(
            self,
            Operation::RunInstances
                | Operation::CreateSecurityGroup
                | Operation::ChangeResourceRecordSets
        )
    }

    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// IAM actions needed beside the operations themselves: tagging at creation (`RunInstances`
/// and `CreateSecurityGroup` with `TagSpecifications`) is authorized as `ec2:CreateTags`.
pub const IMPLIED_IAM_ACTIONS: [&str; 1] = ["ec2:CreateTags"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_buckets_follow_aws() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        let cases = [
            (Operation::DescribeInstances, Bucket::Ec2Describe, false),
            (Operation::DescribeImages, Bucket::Ec2Describe, false),
            (Operation::DescribeVolumes, Bucket::Ec2Describe, false),
            (Operation::RunInstances, Bucket::Ec2RunInstances, true),
            (Operation::StopInstances, Bucket::Ec2Mutate, true),
            (
                Operation::RevokeSecurityGroupIngress,
                Bucket::Ec2Mutate,
                true,
            ),
            (Operation::ListResourceRecordSets, Bucket::Route53, false),
            (Operation::ChangeResourceRecordSets, Bucket::Route53, true),
            (Operation::GetChange, Bucket::Route53, false),
        ];
        for (op, bucket, mutating) in cases {
            assert_eq!(op.bucket(), bucket, "{op:?}");
            assert_eq!(op.is_mutating(), mutating, "{op:?}");
        }
        assert_eq!(
            Operation::ChangeResourceRecordSets.iam_action(),
            "route53:ChangeResourceRecordSets"
        );
        assert_eq!(Operation::from_name("CreateTags"), None);
    }
}
