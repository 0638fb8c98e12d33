//! The `zookeeper_ensemble` reconciler (glue, does I/O): observe the members' services through
//! the host layer and their four-letter words, plan with `diff::plan`, restart one member.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use converged_core::model::Role;
use converged_core::plan::KindPlan;
use converged_core::reconciler::Reconciler;
use converged_core::{Classified, DesiredState, Kind, ReconcileError};
use converged_hosts::render::service_port;
use converged_hosts::{HostAction, HostLayer};

use crate::diff::{self, EnsembleAction, EnsembleObserved, MemberObserved};
use crate::error::ZookeeperError;
use crate::fourlw;
use crate::ids::{self, IdStore};

pub struct Ensemble {
    layer: Arc<HostLayer>,
    ids: Arc<IdStore>,
}

impl Ensemble {
    /// `layer` must have been built with `EnsembleFiles` over the same `ids` and with
    /// `zookeeper` as a rolling service.
    pub fn new(layer: Arc<HostLayer>, ids: Arc<IdStore>) -> Self {
        Self { layer, ids }
    }
}

#[async_trait]
impl Reconciler for Ensemble {
    type Observed = EnsembleObserved;
    type Action = EnsembleAction;
    const KIND: Kind = Kind::ZookeeperEnsemble;

    async fn observe(&self, desired: &DesiredState) -> Result<EnsembleObserved, ReconcileError> {
        let names = ids::members(desired);
        let hosts = self.layer.observe(desired).await;
        if names.is_empty() {
            return Ok(EnsembleObserved {
                hosts,
                members: BTreeMap::new(),
            });
        }
        // The same assignment the host layer's extras made (a read-only store computes it
        // without recording it, and the plan says so).
        let assigned = self
            .ids
            .assign(&names)
            .map_err(|err| ReconcileError::Observe {
                kind: "zookeeper_ensemble",
                class: err.class(),
                message: err.to_string(),
            })?;
        let port = service_port(desired, Role::Zookeeper);
        let allowed = self.layer.allowed_networks();
        let probes = names.iter().map(|node| {
            let address = hosts
                .nodes
                .get(*node)
                .and_then(|host| host.address.as_ref().ok());
            let client = address.map(|a| SocketAddr::new(a.ip, port));
            let ssh = address.map(|a| a.ssh);
            let id = assigned.ids.ids.get(*node).copied();
            let unrecorded = assigned.unrecorded.contains(*node);
            async move {
                let status = match client {
                    Some(client) => fourlw::member_status(node, client, allowed)
                        .await
                        .map_err(|err| err.to_string()),
                    None => Err("no address".to_owned()),
                };
                (
                    (*node).to_owned(),
                    MemberObserved {
                        id,
                        unrecorded,
                        ssh,
                        status,
                    },
                )
            }
        });
        let members = futures::future::join_all(probes)
            .await
            .into_iter()
            .collect();
        Ok(EnsembleObserved { hosts, members })
    }

    fn plan(desired: &DesiredState, observed: &EnsembleObserved) -> KindPlan<EnsembleAction> {
        diff::plan(desired, observed)
    }

    async fn apply(&self, action: &EnsembleAction) -> Result<(), ReconcileError> {
        match action {
            EnsembleAction::RestartMember { service, ssh } => {
                let node = service.node.clone();
                self.layer
                    .apply(&HostAction::Replace {
                        service: service.clone(),
                        ssh: *ssh,
                    })
                    .await
                    .map_err(|source| {
                        ZookeeperError::RestartMember {
                            node: node.clone(),
                            source: Box::new(source),
                        }
                        .into_apply("restart_member")
                    })?;
                tracing::info!(node = %node, hash = %service.hash, "restarted ZooKeeper member with its new configuration");
            }
        }
        Ok(())
    }
}
