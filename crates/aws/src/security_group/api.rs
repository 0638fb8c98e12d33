//! What the `security_group` reconciler needs from EC2 (a narrow trait over our types) and its
//! SDK adapter (I/O). Every write tolerates the state it wants already being there.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, Tag, TagSpecification,
    UserIdGroupPair,
};

use super::{Direction, GroupSpec, ObservedGroup, Peer, Protocol, Rule};
use crate::error::{ApiFailure, AwsError};
use crate::operation::Operation;
use crate::sdk::AwsContext;
use crate::{CLUSTER_TAG, NAME_TAG};

#[async_trait]
pub trait SecurityGroupApi: Send + Sync {
    /// Every group tagged with `cluster`, in any VPC.
    async fn list_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<ObservedGroup>, AwsError>;
    /// Creates the group with its tags; returns the id of the one that exists if it is ours.
    async fn create_group(&self, spec: &GroupSpec) -> Result<String, AwsError>;
    /// Adds rules; rules already present are fine.
    async fn authorize(
        &self,
        group_id: &str,
        direction: Direction,
        rules: &[Rule],
    ) -> Result<(), AwsError>;
    /// Removes rules; rules already gone are fine.
    async fn revoke(
        &self,
        group_id: &str,
        direction: Direction,
        rules: &[Rule],
    ) -> Result<(), AwsError>;
    /// Deletes the group; a group already gone is fine.
    async fn delete_group(&self, group_id: &str) -> Result<(), AwsError>;
}

/// `SecurityGroupApi` over the EC2 SDK.
pub struct Ec2SecurityGroups {
    context: Arc<AwsContext>,
}

impl Ec2SecurityGroups {
    pub fn new(context: Arc<AwsContext>) -> Self {
        Self { context }
    }

    async fn describe(
        &self,
        client: &aws_sdk_ec2::Client,
        filters: Vec<Filter>,
    ) -> Result<Vec<ObservedGroup>, ApiFailure> {
        let mut groups = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .context
                .call(Operation::DescribeSecurityGroups, || {
                    client
                        .describe_security_groups()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(token.clone())
                        .max_results(1000)
                        .send()
                })
                .await?;
            groups.extend(page.security_groups().iter().map(observed_group));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(groups);
            }
        }
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn observed_group(group: &aws_sdk_ec2::types::SecurityGroup) -> ObservedGroup {
    let id = group.group_id().unwrap_or_default().to_owned();
    ObservedGroup {
        name: group.group_name().unwrap_or_default().to_owned(),
        vpc_id: group.vpc_id().unwrap_or_default().to_owned(),
        ingress: expand(group.ip_permissions(), &id),
        egress: expand(group.ip_permissions_egress(), &id),
        id,
    }
}

/// Splits AWS permissions (several peers each) into one rule per peer.
fn expand(permissions: &[IpPermission], own_id: &str) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for permission in permissions {
        let protocol = Protocol::parse(permission.ip_protocol().unwrap_or("-1"));
        let ports = match protocol {
            Protocol::All => None,
            _ => Some((
                permission.from_port().unwrap_or(-1),
                permission.to_port().unwrap_or(-1),
            )),
        };
        let mut push = |peer| {
            rules.insert(Rule {
                protocol: protocol.clone(),
                ports,
                peer,
            });
        };
        for range in permission.ip_ranges() {
            push(Peer::Cidr(range.cidr_ip().unwrap_or_default().to_owned()));
        }
        for range in permission.ipv6_ranges() {
            push(Peer::Ipv6Cidr(
                range.cidr_ipv6().unwrap_or_default().to_owned(),
            ));
        }
        for pair in permission.user_id_group_pairs() {
            let group = pair.group_id().unwrap_or_default();
            push(if group == own_id {
                Peer::OwnGroup
            } else {
                Peer::Group(group.to_owned())
            });
        }
        for list in permission.prefix_list_ids() {
            push(Peer::PrefixList(
                list.prefix_list_id().unwrap_or_default().to_owned(),
            ));
        }
    }
    rules
}

fn permission(rule: &Rule, own_id: &str) -> IpPermission {
    let mut builder = IpPermission::builder().ip_protocol(rule.protocol.as_aws());
    if let Some((from, to)) = rule.ports {
        builder = builder.from_port(from).to_port(to);
    }
    let builder = match &rule.peer {
        Peer::Cidr(cidr) => builder.ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
        Peer::Ipv6Cidr(cidr) => builder.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build()),
        Peer::OwnGroup => {
            builder.user_id_group_pairs(UserIdGroupPair::builder().group_id(own_id).build())
        }
        Peer::Group(id) => {
            builder.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
        }
        Peer::PrefixList(id) => {
            builder.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build())
        }
    };
    builder.build()
}

/// The four rule-changing requests.
#[derive(Debug, Clone, Copy)]
enum RuleCall {
    AuthorizeIngress,
    AuthorizeEgress,
    RevokeIngress,
    RevokeEgress,
}

impl RuleCall {
    fn new(authorize: bool, direction: Direction) -> RuleCall {
        match (authorize, direction) {
            (true, Direction::Ingress) => RuleCall::AuthorizeIngress,
            (true, Direction::Egress) => RuleCall::AuthorizeEgress,
            (false, Direction::Ingress) => RuleCall::RevokeIngress,
            (false, Direction::Egress) => RuleCall::RevokeEgress,
        }
    }

    /// The answer meaning "already as wanted".
    fn tolerated(self) -> &'static str {
        match self {
            RuleCall::AuthorizeIngress | RuleCall::AuthorizeEgress => "InvalidPermission.Duplicate",
            RuleCall::RevokeIngress | RuleCall::RevokeEgress => "InvalidPermission.NotFound",
        }
    }
}

impl Ec2SecurityGroups {
    async fn send_rules(
        &self,
        client: &aws_sdk_ec2::Client,
        call: RuleCall,
        group_id: &str,
        permissions: Vec<IpPermission>,
    ) -> Result<(), ApiFailure> {
        let permissions = Some(permissions);
        match call {
            RuleCall::AuthorizeIngress => self
                .context
                .call(Operation::AuthorizeSecurityGroupIngress, || {
                    client
                        .authorize_security_group_ingress()
                        .group_id(group_id)
                        .set_ip_permissions(permissions.clone())
                        .send()
                })
                .await
                .map(drop),
            RuleCall::AuthorizeEgress => self
                .context
                .call(Operation::AuthorizeSecurityGroupEgress, || {
                    client
                        .authorize_security_group_egress()
                        .group_id(group_id)
                        .set_ip_permissions(permissions.clone())
                        .send()
                })
                .await
                .map(drop),
            RuleCall::RevokeIngress => self
                .context
                .call(Operation::RevokeSecurityGroupIngress, || {
                    client
                        .revoke_security_group_ingress()
                        .group_id(group_id)
                        .set_ip_permissions(permissions.clone())
                        .send()
                })
                .await
                .map(drop),
            RuleCall::RevokeEgress => self
                .context
                .call(Operation::RevokeSecurityGroupEgress, || {
                    client
                        .revoke_security_group_egress()
                        .group_id(group_id)
                        .set_ip_permissions(permissions.clone())
                        .send()
                })
                .await
                .map(drop),
        }
    }

    /// Sends `rules` in one request; if AWS refuses the batch because some rule is already as
    /// wanted, sends them one by one and skips those.
    async fn change_rules(
        &self,
        call: RuleCall,
        group_id: &str,
        rules: &[Rule],
    ) -> Result<(), AwsError> {
        let clients = self.context.current().await?;
        let client = &clients.ec2;
        let tolerated = call.tolerated();
        let all: Vec<IpPermission> = rules.iter().map(|r| permission(r, group_id)).collect();
        let result = match self.send_rules(client, call, group_id, all).await {
            Err(failure) if failure.has_code(tolerated) && rules.len() > 1 => {
                let mut outcome = Ok(());
                for rule in rules {
                    match self
                        .send_rules(client, call, group_id, vec![permission(rule, group_id)])
                        .await
                    {
                        Err(failure) if failure.has_code(tolerated) => {}
                        Err(failure) => {
                            outcome = Err(failure);
                            break;
                        }
                        Ok(()) => {}
                    }
                }
                outcome
            }
            Err(failure) if failure.has_code(tolerated) => Ok(()),
            other => other,
        };
        result.map_err(|source| match call {
            RuleCall::AuthorizeIngress | RuleCall::AuthorizeEgress => AwsError::AuthorizeRules {
                group_id: group_id.to_owned(),
                source,
            },
            RuleCall::RevokeIngress | RuleCall::RevokeEgress => AwsError::RevokeRules {
                group_id: group_id.to_owned(),
                source,
            },
        })
    }
}

#[async_trait]
impl SecurityGroupApi for Ec2SecurityGroups {
    async fn list_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<ObservedGroup>, AwsError> {
        let clients = self.context.clients(region).await;
        self.describe(
            &clients.ec2,
            vec![filter(&format!("tag:{CLUSTER_TAG}"), cluster)],
        )
        .await
        .map_err(AwsError::ListGroups)
    }

    async fn create_group(&self, spec: &GroupSpec) -> Result<String, AwsError> {
        let clients = self.context.current().await?;
        let client = &clients.ec2;
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::SecurityGroup)
            .tags(Tag::builder().key(CLUSTER_TAG).value(&spec.cluster).build())
            .tags(Tag::builder().key(NAME_TAG).value(&spec.name).build())
            .build();
        let created = self
            .context
            .call(Operation::CreateSecurityGroup, || {
                client
                    .create_security_group()
                    .group_name(&spec.name)
                    .description(format!("converged: cluster {}", spec.cluster))
                    .vpc_id(&spec.vpc_id)
                    .tag_specifications(tags.clone())
                    .send()
            })
            .await;
        match created {
            Ok(output) => Ok(output.group_id().unwrap_or_default().to_owned()),
            Err(failure) if failure.has_code("InvalidGroup.Duplicate") => {
                let existing = self
                    .describe(
                        client,
                        vec![
                            filter("group-name", &spec.name),
                            filter("vpc-id", &spec.vpc_id),
                            filter(&format!("tag:{CLUSTER_TAG}"), &spec.cluster),
                        ],
                    )
                    .await
                    .map_err(AwsError::ListGroups)?;
                existing
                    .into_iter()
                    .next()
                    .map(|group| group.id)
                    .ok_or_else(|| AwsError::ForeignGroup {
                        name: spec.name.clone(),
                        vpc_id: spec.vpc_id.clone(),
                    })
            }
            Err(source) => Err(AwsError::CreateGroup {
                name: spec.name.clone(),
                source,
            }),
        }
    }

    async fn authorize(
        &self,
        group_id: &str,
        direction: Direction,
        rules: &[Rule],
    ) -> Result<(), AwsError> {
        self.change_rules(RuleCall::new(true, direction), group_id, rules)
            .await
    }

    async fn revoke(
        &self,
        group_id: &str,
        direction: Direction,
        rules: &[Rule],
    ) -> Result<(), AwsError> {
        self.change_rules(RuleCall::new(false, direction), group_id, rules)
            .await
    }

    async fn delete_group(&self, group_id: &str) -> Result<(), AwsError> {
        let clients = self.context.current().await?;
        let deleted = self
            .context
            .call(Operation::DeleteSecurityGroup, || {
                clients
                    .ec2
                    .delete_security_group()
                    .group_id(group_id)
                    .send()
            })
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(failure) if failure.has_code("InvalidGroup.NotFound") => Ok(()),
            Err(source) => Err(AwsError::DeleteGroup {
                group_id: group_id.to_owned(),
                source,
            }),
        }
    }
}
