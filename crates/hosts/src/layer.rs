//! The host layer (does I/O): resolves node addresses, observes every node's services with
//! one read-only command per host, and carries out service actions. The `host_service`,
//! `zookeeper_ensemble` and `mesos_agent` reconcilers all act on hosts through it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use converged_core::DesiredState;
use converged_core::model::{Node, Role};
use converged_core::secret::{Secret, SecretRef};

use crate::address::{AllowedNetworks, NodeAddress, NodeAddresses};
use crate::error::HostsError;
use crate::render::{self, Extras, RenderContext, RenderedService};
use crate::runtime::{ObservedService, Runtime};
use crate::ssh::HostRunner;

/// Adds template variables and files to the services (implemented by the ZooKeeper crate).
/// Called during observe; may read the state directory.
pub trait ServiceExtras: Send + Sync {
    fn extras(
        &self,
        desired: &DesiredState,
        addresses: &BTreeMap<String, IpAddr>,
    ) -> Result<Extras, HostsError>;
}

/// What is known about one node after observing it.
#[derive(Debug, Clone)]
pub struct NodeObservation {
    pub address: Result<NodeAddress, HostsError>,
    /// The services converged manages there, by name; an error when the host could not be
    /// read (nothing else is known then).
    pub services: Result<BTreeMap<String, ObservedService>, HostsError>,
    /// The host key (type and fingerprint) a read-only observation accepted without pinning
    /// it: the daemon pins it on first contact.
    pub would_pin: Option<String>,
}

/// Everything the host plans need, gathered by `HostLayer::observe`.
#[derive(Debug, Clone)]
pub struct HostsObserved {
    pub nodes: BTreeMap<String, NodeObservation>,
    pub secrets: BTreeMap<SecretRef, Result<Secret, String>>,
    pub extras: Result<Extras, String>,
    pub runtime: Runtime,
    /// Services whose spec changes are rolled out by another kind (the ZooKeeper ensemble),
    /// one node at a time, instead of replaced everywhere at once.
    pub rolling: BTreeSet<String>,
}

impl HostsObserved {
    pub fn addresses(&self) -> BTreeMap<String, IpAddr> {
        self.nodes
            .iter()
            .filter_map(|(name, node)| node.address.as_ref().ok().map(|a| (name.clone(), a.ip)))
            .collect()
    }

    /// What a read-only observation did not record for `service` on `node`: the host key it
    /// would pin and what the extras would assign (pure).
    pub fn notes(&self, node: &str, service: &str) -> Vec<String> {
        let pin = self
            .nodes
            .get(node)
            .and_then(|host| host.would_pin.as_ref())
            .map(|key| format!("would pin host key {key} for {node}"));
        let extras = self
            .extras
            .as_ref()
            .ok()
            .and_then(|extras| extras.notes.get(&(node.to_owned(), service.to_owned())))
            .into_iter()
            .flatten()
            .cloned();
        pin.into_iter().chain(extras).collect()
    }

    /// Every wanted service rendered for its node (pure).
    pub fn desired_services(
        &self,
        desired: &DesiredState,
    ) -> Vec<(String, Role, Result<RenderedService, String>)> {
        let extras = self.extras.as_ref().ok();
        let context = RenderContext {
            addresses: self.addresses(),
            secrets: Some(&self.secrets),
            extras,
            root: self.runtime.root.clone(),
            runtime: self.runtime.kind.as_str(),
        };
        render::wanted(desired)
            .into_iter()
            .map(|(node, role, spec)| {
                let rendered = match &self.extras {
                    Err(reason) => Err(reason.clone()),
                    Ok(_) => render::render(desired, &context, &node, role, spec),
                };
                (node, role, rendered)
            })
            .collect()
    }
}

/// One step on one host.
#[derive(Clone)]
pub enum HostAction {
    /// Bring a missing or stopped service up.
    Start {
        service: Box<RenderedService>,
        ssh: SocketAddr,
    },
    /// Replace a running service whose spec changed.
    Replace {
        service: Box<RenderedService>,
        ssh: SocketAddr,
    },
    /// Restart a service as it is.
    Restart {
        node: String,
        service: String,
        ssh: SocketAddr,
    },
    /// Stop and remove a service the node should no longer run.
    Stop {
        node: String,
        service: String,
        ssh: SocketAddr,
    },
    /// Try to reach a host that could not be observed (fails until it answers).
    Reach { node: String, ssh: SocketAddr },
}

impl fmt::Debug for HostAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start { service, .. } => write!(f, "Start({}/{})", service.node, service.name),
            Self::Replace { service, .. } => {
                write!(f, "Replace({}/{})", service.node, service.name)
            }
            Self::Restart { node, service, .. } => write!(f, "Restart({node}/{service})"),
            Self::Stop { node, service, .. } => write!(f, "Stop({node}/{service})"),
            Self::Reach { node, .. } => write!(f, "Reach({node})"),
        }
    }
}

/// Reaches the hosts: address resolution, one runner for commands, the runtime.
pub struct HostLayer {
    runner: Arc<dyn HostRunner>,
    addresses: Arc<dyn NodeAddresses>,
    extras: Vec<Arc<dyn ServiceExtras>>,
    runtime: Runtime,
    rolling: BTreeSet<String>,
    allowed: AllowedNetworks,
}

impl HostLayer {
    pub fn new(
        runner: Arc<dyn HostRunner>,
        addresses: Arc<dyn NodeAddresses>,
        runtime: Runtime,
        allowed: AllowedNetworks,
    ) -> Self {
        Self {
            runner,
            addresses,
            extras: Vec::new(),
            runtime,
            rolling: BTreeSet::new(),
            allowed,
        }
    }

    /// Adds a source of template variables and files.
    pub fn with_extras(mut self, extras: Arc<dyn ServiceExtras>) -> Self {
        self.extras.push(extras);
        self
    }

    /// Marks a service as rolled out by another kind, one node at a time.
    pub fn with_rolling(mut self, service: impl Into<String>) -> Self {
        self.rolling.insert(service.into());
        self
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn allowed_networks(&self) -> &AllowedNetworks {
        &self.allowed
    }

    /// Resolves the addresses of `nodes` (no connection is made).
    pub async fn resolve(
        &self,
        desired: &DesiredState,
        nodes: &[Node],
    ) -> BTreeMap<String, Result<NodeAddress, HostsError>> {
        self.addresses.resolve(desired, nodes).await
    }

    /// Observes every node that runs at least one service: one command per host, all hosts
    /// at once. A host that cannot be read only marks its own services.
    pub async fn observe(&self, desired: &DesiredState) -> HostsObserved {
        let with_services: BTreeSet<String> = render::wanted(desired)
            .into_iter()
            .map(|(node, _, _)| node)
            .collect();
        let nodes: Vec<Node> = desired
            .nodes
            .iter()
            .filter(|node| with_services.contains(&node.name))
            .cloned()
            .collect();
        let resolved = self.addresses.resolve(desired, &nodes).await;
        let command = self.runtime.observe();
        let reads = resolved.into_iter().map(|(name, address)| {
            let command = command.clone();
            async move {
                let services = match &address {
                    Ok(address) => self.read_services(&name, address.ssh, &command).await,
                    Err(err) => Err(err.clone()),
                };
                let would_pin = address
                    .as_ref()
                    .ok()
                    .and_then(|address| self.runner.unpinned_key(&name, address.ssh));
                (
                    name,
                    NodeObservation {
                        address,
                        services,
                        would_pin,
                    },
                )
            }
        });
        let nodes: BTreeMap<String, NodeObservation> =
            futures::future::join_all(reads).await.into_iter().collect();
        let addresses: BTreeMap<String, IpAddr> = nodes
            .iter()
            .filter_map(|(name, node)| node.address.as_ref().ok().map(|a| (name.clone(), a.ip)))
            .collect();
        let mut extras = Ok(Extras::default());
        for source in &self.extras {
            extras = extras.and_then(|mut merged: Extras| {
                let more = source
                    .extras(desired, &addresses)
                    .map_err(|err| err.to_string())?;
                for (node, vars) in more.vars {
                    merged.vars.entry(node).or_default().extend(vars);
                }
                merged.files.extend(more.files);
                merged.notes.extend(more.notes);
                Ok(merged)
            });
        }
        let secrets = render::secret_refs(desired)
            .into_iter()
            .map(|reference| {
                let resolved = reference.resolve().map_err(|err| err.to_string());
                (reference, resolved)
            })
            .collect();
        HostsObserved {
            nodes,
            secrets,
            extras,
            runtime: self.runtime.clone(),
            rolling: self.rolling.clone(),
        }
    }

    async fn read_services(
        &self,
        node: &str,
        ssh: SocketAddr,
        command: &crate::ssh::RemoteCommand,
    ) -> Result<BTreeMap<String, ObservedService>, HostsError> {
        self.allowed.check(node, ssh)?;
        let output = self.runner.run(node, ssh, command).await?;
        self.runtime
            .parse_observed(&output.stdout)
            .map_err(|message| HostsError::ParseOutput {
                node: node.to_owned(),
                operation: command.operation,
                message,
            })
    }

    /// Carries out one action; every command of it must succeed.
    pub async fn apply(&self, action: &HostAction) -> Result<(), HostsError> {
        let (node, ssh, commands) = match action {
            HostAction::Start { service, ssh } => {
                (service.node.as_str(), *ssh, self.runtime.start(service))
            }
            HostAction::Replace { service, ssh } => {
                (service.node.as_str(), *ssh, self.runtime.replace(service))
            }
            HostAction::Restart { node, service, ssh } => {
                (node.as_str(), *ssh, vec![self.runtime.restart(service)])
            }
            HostAction::Stop { node, service, ssh } => {
                (node.as_str(), *ssh, vec![self.runtime.stop(service)])
            }
            HostAction::Reach { node, ssh } => (node.as_str(), *ssh, vec![self.runtime.observe()]),
        };
        self.allowed.check(node, ssh)?;
        for command in &commands {
            self.runner.run(node, ssh, command).await?;
        }
        match action {
            HostAction::Start { service, .. } => {
                tracing::info!(node, service = %service.name, hash = %service.hash, runtime = self.runtime.kind.as_str(), "started service");
            }
            HostAction::Replace { service, .. } => {
                tracing::info!(node, service = %service.name, hash = %service.hash, runtime = self.runtime.kind.as_str(), "replaced service");
            }
            HostAction::Restart { service, .. } => {
                tracing::info!(node, service = %service, "restarted service");
            }
            HostAction::Stop { service, .. } => {
                tracing::info!(node, service = %service, "stopped and removed service");
            }
            HostAction::Reach { .. } => tracing::info!(node, "reached host again"),
        }
        Ok(())
    }
}
