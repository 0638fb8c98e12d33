//! The id store (does file I/O: `<state_dir>/zookeeper_ids.json`; a read-only store only
//! reads it) and the ensemble's contribution to the zookeeper services: `zookeeper_myid` and
//! `zookeeper_servers` template variables, `zoo.cfg` and `data/myid` files.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use converged_core::DesiredState;
use converged_core::model::Role;
use converged_core::secret::MaybeSecret;
use converged_hosts::render::{Extras, ServiceFile};
use converged_hosts::{Access, HostsError, ServiceExtras};

use crate::config::{self, Ids, Ports, SETTING_PREFIX};
use crate::error::ZookeeperError;

pub const IDS_FILE: &str = "zookeeper_ids.json";

#[derive(Debug)]
pub struct IdStore {
    path: PathBuf,
    access: Access,
    lock: Mutex<()>,
}

/// The ids of the members, and which of them are not recorded (a read-only store computed
/// them the way the daemon will assign them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub ids: Ids,
    pub unrecorded: BTreeSet<String>,
}

impl Assignment {
    /// `myid 3 (would be assigned)` for a member whose id is not recorded yet.
    pub fn note(&self, member: &str) -> Option<String> {
        let id = self.ids.ids.get(member)?;
        self.unrecorded
            .contains(member)
            .then(|| format!("myid {id} (would be assigned)"))
    }
}

impl IdStore {
    pub fn new(state_dir: &Path, access: Access) -> Self {
        Self {
            path: state_dir.join(IDS_FILE),
            access,
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
    /// file, synced and renamed) before any configuration naming them is rendered. A read-only
    /// store computes the same ids and records nothing.
    pub fn assign(&self, members: &[&str]) -> Result<Assignment, ZookeeperError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut ids = self.load()?;
        let recorded = ids.clone();
        if !ids.assign(members.iter().copied()) {
            return Ok(Assignment {
                ids,
                unrecorded: BTreeSet::new(),
            });
        }
        if !self.access.writes() {
            let unrecorded = ids
                .ids
                .keys()
                .filter(|member| !recorded.ids.contains_key(*member))
                .cloned()
                .collect();
            return Ok(Assignment { ids, unrecorded });
        }
        let text = serde_json::to_string_pretty(&ids).map_err(|err| self.error(err))?;
        converged_core::durable::replace_file(&self.path, text.as_bytes())
            .map_err(|err| self.error(err))?;
        tracing::info!(ids = ?ids.ids, "assigned ZooKeeper ids");
        Ok(Assignment {
            ids,
            unrecorded: BTreeSet::new(),
        })
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
        let assignment = self
            .store
            .assign(&members)
            .map_err(|err| HostsError::StateFile {
                what: "the ZooKeeper ids",
                message: err.to_string(),
            })?;
        let ids = &assignment.ids;
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
            if let Some(note) = assignment.note(member) {
                extras.notes.insert(
                    (member.to_owned(), Role::Zookeeper.as_str().to_owned()),
                    vec![note],
                );
            }
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use converged_core::load_desired_state;

    use super::*;

    fn entries(dir: &Path) -> Vec<(PathBuf, String)> {
        let mut found: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                (path, text)
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_read_only_store_assigns_the_same_ids_and_records_nothing() {
        let recorded = Ids {
            next_id: 3,
            ids: BTreeMap::from([("a".into(), 1), ("gone".into(), 2)]),
        };
        /// (name, ids on file, members, expected unrecorded)
        type Case<'a> = (&'a str, Option<&'a Ids>, Vec<&'a str>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "no file yet",
                None,
                vec!["c", "a", "b"],
                vec!["a", "b", "c"],
            ),
            ("all recorded", Some(&recorded), vec!["a"], vec![]),
            ("a new member", Some(&recorded), vec!["a", "b"], vec!["b"]),
        ];
        for (name, on_file, members, unrecorded) in cases {
            let reading = tempfile::tempdir().unwrap();
            let writing = tempfile::tempdir().unwrap();
            for dir in [&reading, &writing] {
                if let Some(ids) = on_file {
                    std::fs::write(
                        dir.path().join(IDS_FILE),
                        serde_json::to_string(ids).unwrap(),
                    )
                    .unwrap();
                }
            }
            let before = entries(reading.path());
            let preview = IdStore::new(reading.path(), Access::ReadOnly)
                .assign(&members)
                .unwrap();
            let assigned = IdStore::new(writing.path(), Access::ReadWrite)
                .assign(&members)
                .unwrap();
            assert_eq!(preview.ids, assigned.ids, "{name}: the same ids");
            assert!(assigned.unrecorded.is_empty(), "{name}");
            assert_eq!(
                preview.unrecorded,
                unrecorded.iter().map(|m| (*m).to_owned()).collect(),
                "{name}"
            );
            assert_eq!(entries(reading.path()), before, "{name}: nothing written");
            assert_eq!(
                IdStore::new(writing.path(), Access::ReadOnly)
                    .load()
                    .unwrap(),
                assigned.ids,
                "{name}: the read-write store recorded them"
            );
        }
    }

    #[test]
    fn read_only_extras_render_the_same_files_and_note_the_ids_they_would_assign() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state");
        let desired = load_desired_state(&example).expect("the example is valid");
        let addresses: BTreeMap<String, IpAddr> = desired
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.name.clone(), IpAddr::from([10, 0, 1, 10 + i as u8])))
            .collect();
        let state = tempfile::tempdir().unwrap();
        let extras = |access| {
            EnsembleFiles::new(std::sync::Arc::new(IdStore::new(state.path(), access)))
                .extras(&desired, &addresses)
                .unwrap()
        };
        let preview = extras(Access::ReadOnly);
        assert!(entries(state.path()).is_empty(), "nothing written");
        let members = members(&desired);
        assert!(!members.is_empty(), "the example has an ensemble");
        let notes: Vec<(String, Vec<String>)> = preview
            .notes
            .iter()
            .map(|((node, _), notes)| (node.clone(), notes.clone()))
            .collect();
        let expected: Vec<(String, Vec<String>)> = members
            .iter()
            .enumerate()
            .map(|(i, member)| {
                (
                    (*member).to_owned(),
                    vec![format!("myid {} (would be assigned)", i + 1)],
                )
            })
            .collect();
        assert_eq!(notes, expected);

        let assigned = extras(Access::ReadWrite);
        assert!(assigned.notes.is_empty());
        assert_eq!(
            (&preview.vars, &preview.files),
            (&assigned.vars, &assigned.files),
            "the same variables and files either way"
        );
        assert!(
            extras(Access::ReadOnly).notes.is_empty(),
            "nothing left to assign once recorded"
        );
    }
}
