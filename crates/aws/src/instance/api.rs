//! What the `instance` reconciler (and the DNS observation) needs from EC2 (a narrow trait over
//! our types) and its SDK adapter (I/O). Stops, starts and terminations of what is already in
//! the wanted state succeed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeValue, BlockDeviceMapping, EbsBlockDevice, Filter,
    InstanceNetworkInterfaceSpecification, InstanceType, ResourceType, Tag, TagSpecification,
    VolumeType,
};
use futures::future::{BoxFuture, FutureExt, Shared};

use super::{InstanceState, LaunchSpec, ObservedInstance};
use crate::error::{ApiFailure, AwsError};
use crate::operation::Operation;
use crate::sdk::AwsContext;
use crate::{CLUSTER_TAG, GENERATION_TAG, NAME_TAG, NODE_TAG};

#[async_trait]
pub trait InstanceApi: Send + Sync {
    /// Every instance tagged with `cluster` (terminated ones included, while EC2 lists them),
    /// in one filtered, paginated listing.
    async fn list_instances(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<ObservedInstance>, AwsError>;
    /// The size in GiB of every volume tagged with `cluster` (the root volumes carry the tag
    /// from their launch), by volume id, in one filtered, paginated listing.
    async fn root_volume_sizes(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<BTreeMap<String, u32>, AwsError>;
    /// Launches one instance with its tags, security group and root volume; returns its id.
    async fn launch(&self, spec: &LaunchSpec) -> Result<String, AwsError>;
    async fn stop(&self, instance_id: &str) -> Result<(), AwsError>;
    async fn resize(&self, instance_id: &str, instance_type: &str) -> Result<(), AwsError>;
    async fn start(&self, instance_id: &str) -> Result<(), AwsError>;
    async fn terminate(&self, instance_ids: &[String]) -> Result<(), AwsError>;
}

/// A listing in flight, awaited by every caller that asks for the same region and cluster
/// meanwhile.
type Listing = Shared<BoxFuture<'static, Result<Arc<Vec<ObservedInstance>>, ApiFailure>>>;

/// `InstanceApi` over the EC2 SDK.
///
/// The instance, DNS and node-address observations all list the cluster's instances, and they
/// run concurrently: a listing asked for while the same one is in flight joins it instead of
/// sending its own DescribeInstances, so a cycle parses the (large) answer once. A listing
/// asked for after the last one finished is always a new request.
pub struct Ec2Instances {
    context: Arc<AwsContext>,
    listings: Mutex<BTreeMap<(String, String), Listing>>,
}

impl Ec2Instances {
    pub fn new(context: Arc<AwsContext>) -> Self {
        Self {
            context,
            listings: Mutex::new(BTreeMap::new()),
        }
    }

    fn listings(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Listing>> {
        // The map holds no invariant a panicking holder could break.
        self.listings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn group_id(
        &self,
        client: &aws_sdk_ec2::Client,
        spec: &LaunchSpec,
    ) -> Result<String, AwsError> {
        let filters = vec![
            filter("group-name", &spec.security_group),
            filter("vpc-id", &spec.vpc_id),
            filter(&format!("tag:{CLUSTER_TAG}"), &spec.cluster),
        ];
        let found = self
            .context
            .call(Operation::DescribeSecurityGroups, || {
                client
                    .describe_security_groups()
                    .set_filters(Some(filters.clone()))
                    .send()
            })
            .await
            .map_err(AwsError::ListGroups)?;
        found
            .security_groups()
            .iter()
            .find_map(|group| group.group_id().map(str::to_owned))
            .ok_or_else(|| AwsError::GroupMissing {
                name: spec.security_group.clone(),
                vpc_id: spec.vpc_id.clone(),
            })
    }

    /// The AMI's root device name, which the root volume mapping must use.
    async fn root_device(
        &self,
        client: &aws_sdk_ec2::Client,
        ami: &str,
    ) -> Result<String, AwsError> {
        let images = self
            .context
            .call(Operation::DescribeImages, || {
                client.describe_images().image_ids(ami).send()
            })
            .await
            .map_err(|source| AwsError::DescribeImage {
                ami: ami.to_owned(),
                source,
            })?;
        images
            .images()
            .iter()
            .find_map(|image| image.root_device_name().map(str::to_owned))
            .ok_or_else(|| AwsError::ImageMissing {
                ami: ami.to_owned(),
            })
    }
}

/// A caller's hold on a listing. When it ends (the answer came, or the caller was cancelled),
/// the listing is forgotten, so a later caller never resumes a request sent long before.
struct Joined<'a> {
    owner: &'a Ec2Instances,
    key: (String, String),
    listing: Listing,
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        let mut listings = self.owner.listings();
        if listings
            .get(&self.key)
            .is_some_and(|current| current.ptr_eq(&self.listing))
        {
            listings.remove(&self.key);
        }
    }
}

/// One paginated, filtered DescribeInstances listing of `cluster`'s instances.
async fn list_instances(
    context: Arc<AwsContext>,
    region: String,
    cluster: String,
) -> Result<Arc<Vec<ObservedInstance>>, ApiFailure> {
    let clients = context.clients(&region).await;
    let filters = vec![filter(&format!("tag:{CLUSTER_TAG}"), &cluster)];
    let mut instances = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = context
            .call(Operation::DescribeInstances, || {
                clients
                    .ec2
                    .describe_instances()
                    .set_filters(Some(filters.clone()))
                    .set_next_token(token.clone())
                    .max_results(1000)
                    .send()
            })
            .await?;
        instances.extend(
            page.reservations()
                .iter()
                .flat_map(|reservation| reservation.instances())
                .map(observed_instance),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(Arc::new(instances));
        }
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn observed_instance(instance: &aws_sdk_ec2::types::Instance) -> ObservedInstance {
    let tag_value = |key: &str| {
        instance
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(key))
            .and_then(|tag| tag.value())
            .map(str::to_owned)
    };
    ObservedInstance {
        id: instance.instance_id().unwrap_or_default().to_owned(),
        node: tag_value(NODE_TAG),
        generation: tag_value(GENERATION_TAG)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0),
        state: InstanceState::parse(
            instance
                .state()
                .and_then(|state| state.name())
                .map_or("terminated", |name| name.as_str()),
        ),
        instance_type: instance
            .instance_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        ami: instance.image_id().unwrap_or_default().to_owned(),
        subnet_id: instance.subnet_id().map(str::to_owned),
        key_pair: instance.key_name().map(str::to_owned),
        // EC2 lists the primary interface's groups on the instance; moto only on the
        // interfaces. Both are read.
        security_groups: instance
            .security_groups()
            .iter()
            .chain(
                instance
                    .network_interfaces()
                    .iter()
                    .flat_map(|interface| interface.groups()),
            )
            .filter_map(|group| group.group_name().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        public_ip: instance.public_ip_address().map(str::to_owned),
        private_ip: instance.private_ip_address().map(str::to_owned),
        root_volume_id: instance
            .block_device_mappings()
            .iter()
            .find(|mapping| mapping.device_name() == instance.root_device_name())
            .and_then(|mapping| mapping.ebs())
            .and_then(|ebs| ebs.volume_id())
            .map(str::to_owned),
    }
}

#[async_trait]
impl InstanceApi for Ec2Instances {
    async fn list_instances(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<ObservedInstance>, AwsError> {
        let key = (region.to_owned(), cluster.to_owned());
        let listing = self
            .listings()
            .entry(key.clone())
            .or_insert_with(|| {
                list_instances(Arc::clone(&self.context), key.0.clone(), key.1.clone())
                    .boxed()
                    .shared()
            })
            .clone();
        let joined = Joined {
            owner: self,
            key,
            listing,
        };
        joined
            .listing
            .clone()
            .await
            .map(|instances| instances.as_ref().clone())
            .map_err(AwsError::ListInstances)
    }

    async fn root_volume_sizes(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<BTreeMap<String, u32>, AwsError> {
        let clients = self.context.clients(region).await;
        let filters = vec![filter(&format!("tag:{CLUSTER_TAG}"), cluster)];
        let mut sizes = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .context
                .call(Operation::DescribeVolumes, || {
                    clients
                        .ec2
                        .describe_volumes()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(token.clone())
                        .max_results(500)
                        .send()
                })
                .await
                .map_err(AwsError::ListVolumes)?;
            sizes.extend(page.volumes().iter().filter_map(|volume| {
                let size = u32::try_from(volume.size()?).ok()?;
                Some((volume.volume_id()?.to_owned(), size))
            }));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(sizes);
            }
        }
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<String, AwsError> {
        let clients = self.context.current().await?;
        let client = &clients.ec2;
        let group_id = self.group_id(client, spec).await?;
        let root_device = self.root_device(client, &spec.ami).await?;
        let name = format!("{}-{}", spec.cluster, spec.node);
        let generation = spec.generation.to_string();
        let tags = |resource: ResourceType| {
            TagSpecification::builder()
                .resource_type(resource)
                .tags(tag(NAME_TAG, &name))
                .tags(tag(CLUSTER_TAG, &spec.cluster))
                .tags(tag(NODE_TAG, &spec.node))
                .tags(tag(GENERATION_TAG, &generation))
                .build()
        };
        let volume_size = i32::try_from(spec.volume_size_gb).unwrap_or(i32::MAX);
        let launched = self
            .context
            .call(Operation::RunInstances, || {
                client
                    .run_instances()
                    .image_id(&spec.ami)
                    .instance_type(InstanceType::from(spec.instance_type.as_str()))
                    .min_count(1)
                    .max_count(1)
                    .client_token(&spec.client_token)
                    .set_key_name(spec.key_pair.clone())
                    .block_device_mappings(
                        BlockDeviceMapping::builder()
                            .device_name(&root_device)
                            .ebs(
                                EbsBlockDevice::builder()
                                    .volume_size(volume_size)
                                    .volume_type(VolumeType::Gp3)
                                    .delete_on_termination(true)
                                    .build(),
                            )
                            .build(),
                    )
                    .network_interfaces(
                        InstanceNetworkInterfaceSpecification::builder()
                            .device_index(0)
                            .subnet_id(&spec.subnet_id)
                            .groups(&group_id)
                            .associate_public_ip_address(true)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .tag_specifications(tags(ResourceType::Instance))
                    .tag_specifications(tags(ResourceType::Volume))
                    .send()
            })
            .await
            .map_err(|source| AwsError::LaunchInstance {
                node: spec.node.clone(),
                source,
            })?;
        Ok(launched
            .instances()
            .iter()
            .find_map(|instance| instance.instance_id().map(str::to_owned))
            .unwrap_or_default())
    }

    async fn stop(&self, instance_id: &str) -> Result<(), AwsError> {
        let clients = self.context.current().await?;
        self.context
            .call(Operation::StopInstances, || {
                clients
                    .ec2
                    .stop_instances()
                    .instance_ids(instance_id)
                    .send()
            })
            .await
            .map(drop)
            .map_err(|source| AwsError::StopInstance {
                instance_id: instance_id.to_owned(),
                source,
            })
    }

    async fn resize(&self, instance_id: &str, instance_type: &str) -> Result<(), AwsError> {
        let clients = self.context.current().await?;
        self.context
            .call(Operation::ModifyInstanceAttribute, || {
                clients
                    .ec2
                    .modify_instance_attribute()
                    .instance_id(instance_id)
                    .instance_type(AttributeValue::builder().value(instance_type).build())
                    .send()
            })
            .await
            .map(drop)
            .map_err(|source| AwsError::ResizeInstance {
                instance_id: instance_id.to_owned(),
                source,
            })
    }

    async fn start(&self, instance_id: &str) -> Result<(), AwsError> {
        let clients = self.context.current().await?;
        self.context
            .call(Operation::StartInstances, || {
                clients
                    .ec2
                    .start_instances()
                    .instance_ids(instance_id)
                    .send()
            })
            .await
            .map(drop)
            .map_err(|source| AwsError::StartInstance {
                instance_id: instance_id.to_owned(),
                source,
            })
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        let clients = self.context.current().await?;
        let terminated = self
            .context
            .call(Operation::TerminateInstances, || {
                clients
                    .ec2
                    .terminate_instances()
                    .set_instance_ids(Some(instance_ids.to_vec()))
                    .send()
            })
            .await;
        match terminated {
            Ok(_) => Ok(()),
            Err(failure) if failure.has_code("InvalidInstanceID.NotFound") => Ok(()),
            Err(source) => Err(AwsError::TerminateInstances {
                instance_ids: instance_ids.to_vec(),
                source,
            }),
        }
    }
}
