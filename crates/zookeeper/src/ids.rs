//! The id store (does file I/O: `<state_dir>/zookeeper_ids.json`) and the ensemble's
//! contribution to the zookeeper services: `zookeeper_myid` and `zookeeper_servers` template
//! variables, `zoo.cfg` and `data/myid` files.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use converged_core::DesiredState;
use converged_core::model::Role;
use converged_core::secret::MaybeSecret;
use converged_hosts::render::{Extras, ServiceFile};
use converged_hosts::{HostsError, ServiceExtras};

use crate::config::{self, Ids, Ports, SETTING_PREFIX};
use crate::error::ZookeeperError;

pub const IDS_FILE: &str = "zookeeper_ids.json";

#[derive(Debug)]
pub struct IdStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl IdStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(IDS_FILE),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl ToString) -> ZookeeperError {
        ZookeeperError::StoreIds {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    pub fn load(&self) -> Result<Ids, ZookeeperError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|err| self.error(err)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Ids::default()),
            Err(err) => Err(self.error(err)),
        }
    }

    /// Loads the ids, gives new members fresh ones and records them (written to a temporary
    /// file, synced and renamed) before any configuration naming them is rendered.
    pub fn assign(&self, members: &[&str]) -> Result<Ids, ZookeeperError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut ids = self.load()?;
        if ids.assign(members.iter().copied()) {
            let text = serde_json::to_string_pretty(&ids).map_err(|err| self.error(err))?;
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent).map_err(|err| self.error(err))?;
            }
            let temporary = self.path.with_extension("tmp");
            let mut file = std::fs::File::create(&temporary).map_err(|err| self.error(err))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|err| self.error(err))?;
            std::fs::rename(&temporary, &self.path).map_err(|err| self.error(err))?;
            tracing::info!(ids = ?ids.ids, "assigned ZooKeeper ids");
        }
        Ok(ids)
    }
}

/// The `zoo.cfg` settings the zookeeper service spec carries as `ZOOCFG_<key>` env entries.
pub fn settings(desired: &DesiredState) -> BTreeMap<String, String> {
    desired
        .services
        .zookeeper
        .iter()
        .flat_map(|spec| spec.env.iter())
        .filter_map(|(key, value)| match value {
            MaybeSecret::Plain(value) => key
                .strip_prefix(SETTING_PREFIX)
                .map(|setting| (setting.to_owned(), value.clone())),
            MaybeSecret::Secret { .. } => None,
        })
        .collect()
}

/// The zookeeper nodes' names, in name order.
pub fn members(desired: &DesiredState) -> Vec<&str> {
    let mut members: Vec<&str> = desired
        .nodes_with_role(Role::Zookeeper)
        .map(|node| node.name.as_str())
        .collect();
    members.sort_unstable();
    members
}

/// Adds the ensemble's ids and rendered configuration to the zookeeper services.
pub struct EnsembleFiles {
    store: std::sync::Arc<IdStore>,
}

impl EnsembleFiles {
    pub fn new(store: std::sync::Arc<IdStore>) -> Self {
        Self { store }
    }
}

impl ServiceExtras for EnsembleFiles {
    fn extras(
        &self,
        desired: &DesiredState,
        addresses: &BTreeMap<String, IpAddr>,
    ) -> Result<Extras, HostsError> {
        let members = members(desired);
        if members.is_empty() {
            return Ok(Extras::default());
        }
        let ids = self
            .store
            .assign(&members)
            .map_err(|err| HostsError::StateFile {
                what: "the ZooKeeper ids",
                message: err.to_string(),
            })?;
        let mut by_id = BTreeMap::new();
        for member in &members {
            let ip = addresses
                .get(*member)
                .ok_or_else(|| HostsError::RenderService {
                    node: (*member).to_owned(),
                    service: Role::Zookeeper.as_str().to_owned(),
                    reason: format!(
                        "the address of ensemble member {member} is not known yet, so no member's server list can be rendered"
                    ),
                })?;
            by_id.insert(ids.ids[*member], *ip);
        }
        let ports = Ports::from_spec(
            desired
                .services
                .zookeeper
                .as_ref()
                .map(|spec| spec.ports.as_slice())
                .unwrap_or_default(),
        );
        let zoo_cfg = config::zoo_cfg(&by_id, ports, &settings(desired));
        let servers = by_id
            .values()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut extras = Extras::default();
        for node in &desired.nodes {
            extras
                .vars
                .entry(node.name.clone())
                .or_default()
                .insert("zookeeper_servers".into(), servers.clone());
        }
        for member in members {
            let id = ids.ids[member];
            extras
                .vars
                .entry(member.to_owned())
                .or_default()
                .insert("zookeeper_myid".into(), id.to_string());
            extras.files.insert(
                (member.to_owned(), Role::Zookeeper.as_str().to_owned()),
                vec![
                    ServiceFile {
                        path: "zoo.cfg".into(),
                        content: zoo_cfg.clone(),
                    },
                    ServiceFile {
                        path: "data/myid".into(),
                        content: format!("{id}\n"),
                    },
                ],
            );
        }
        Ok(extras)
    }
}
