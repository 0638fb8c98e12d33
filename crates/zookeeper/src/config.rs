//! Ensemble configuration (pure, no I/O): id assignment for new members and the rendered
//! `zoo.cfg` every member shares, with its own `myid`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Env keys of the zookeeper service spec with this prefix are `zoo.cfg` settings:
/// `ZOOCFG_tickTime = "2000"` renders `tickTime=2000`.
pub const SETTING_PREFIX: &str = "ZOOCFG_";

/// The persisted id assignment. Ids are never derived from list order and never reused:
/// a node keeps its id for good, and a new node gets `next_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    pub next_id: u32,
    pub ids: BTreeMap<String, u32>,
}

impl Ids {
    /// Gives every member without an id a fresh one, in name order; says whether anything
    /// changed.
    pub fn assign<'a>(&mut self, members: impl IntoIterator<Item = &'a str>) -> bool {
        let mut new: Vec<&str> = members
            .into_iter()
            .filter(|member| !self.ids.contains_key(*member))
            .collect();
        new.sort_unstable();
        new.dedup();
        let floor = self.ids.values().copied().max().unwrap_or(0) + 1;
        self.next_id = self.next_id.max(floor);
        for member in &new {
            self.ids.insert((*member).to_owned(), self.next_id);
            self.next_id += 1;
        }
        !new.is_empty()
    }
}

/// The ports of the zookeeper service: `ports = [client, quorum, election]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub client: u16,
    pub quorum: u16,
    pub election: u16,
}

impl Ports {
    pub fn from_spec(ports: &[u16]) -> Self {
        Self {
            client: ports.first().copied().unwrap_or(2181),
            quorum: ports.get(1).copied().unwrap_or(2888),
            election: ports.get(2).copied().unwrap_or(3888),
        }
    }
}

/// The server list every member gets: id → `ip:quorum:election`.
pub fn servers(members: &BTreeMap<u32, IpAddr>, ports: Ports) -> BTreeMap<u32, String> {
    members
        .iter()
        .map(|(id, ip)| (*id, format!("{ip}:{}:{}", ports.quorum, ports.election)))
        .collect()
}

/// `zoo.cfg`: defaults, then the spec's `ZOOCFG_` settings, then the server list.
/// `{{service_dir}}` is filled in by the host layer.
pub fn zoo_cfg(
    members: &BTreeMap<u32, IpAddr>,
    ports: Ports,
    settings: &BTreeMap<String, String>,
) -> String {
    let mut values: BTreeMap<String, String> = [
        ("tickTime", "2000".to_owned()),
        ("initLimit", "10".to_owned()),
        ("syncLimit", "5".to_owned()),
        ("dataDir", "{{service_dir}}/data".to_owned()),
        ("clientPort", ports.client.to_string()),
        ("4lw.commands.whitelist", "srvr,mntr,conf,ruok".to_owned()),
        ("admin.enableServer", "false".to_owned()),
        ("reconfigEnabled", "false".to_owned()),
        ("standaloneEnabled", "false".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    values.extend(settings.clone());
    let mut text =
        String::from("# Rendered by converged: every member has the same server list.\n");
    for (key, value) in values {
        text.push_str(&format!("{key}={value}\n"));
    }
    for (id, server) in servers(members, ports) {
        text.push_str(&format!("server.{id}={server}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, stored ids, members, expected ids, expected next id)
    type Case = (
        &'static str,
        Ids,
        Vec<&'static str>,
        Vec<(&'static str, u32)>,
        u32,
    );

    #[test]
    fn ids_are_stable_fresh_and_never_reused() {
        let cases: Vec<Case> = vec![
            (
                "first assignment is by name, not list order",
                Ids::default(),
                vec!["c", "a", "b"],
                vec![("a", 1), ("b", 2), ("c", 3)],
                4,
            ),
            (
                "reordering changes nothing",
                Ids {
                    next_id: 4,
                    ids: BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]),
                },
                vec!["b", "c", "a"],
                vec![("a", 1), ("b", 2), ("c", 3)],
                4,
            ),
            (
                "a removed member's id is not reused",
                Ids {
                    next_id: 4,
                    ids: BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]),
                },
                vec!["a", "c", "d"],
                vec![("a", 1), ("b", 2), ("c", 3), ("d", 4)],
                5,
            ),
            (
                "a hand-edited file cannot make ids collide",
                Ids {
                    next_id: 1,
                    ids: BTreeMap::from([("a".into(), 7)]),
                },
                vec!["a", "b"],
                vec![("a", 7), ("b", 8)],
                9,
            ),
        ];
        for (name, mut ids, members, expected, next) in cases {
            let before = ids.clone();
            let changed = ids.assign(members);
            let expected: BTreeMap<String, u32> = expected
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            assert_eq!(ids.ids, expected, "{name}");
            assert_eq!(ids.next_id, next, "{name}");
            assert_eq!(changed, before.ids != ids.ids, "{name}");
        }
    }

    #[test]
    fn zoo_cfg_lists_every_member_by_id_with_settings_applied() {
        let members = BTreeMap::from([
            (3, "127.0.0.3".parse().unwrap()),
            (1, "127.0.0.1".parse().unwrap()),
        ]);
        let settings = BTreeMap::from([
            ("tickTime".to_owned(), "500".to_owned()),
            ("maxClientCnxns".to_owned(), "100".to_owned()),
        ]);
        let text = zoo_cfg(&members, Ports::from_spec(&[]), &settings);
        assert_eq!(
            text,
            "# Rendered by converged: every member has the same server list.\n\
             4lw.commands.whitelist=srvr,mntr,conf,ruok\nadmin.enableServer=false\nclientPort=2181\n\
             dataDir={{service_dir}}/data\ninitLimit=10\nmaxClientCnxns=100\nreconfigEnabled=false\n\
             standaloneEnabled=false\nsyncLimit=5\ntickTime=500\n\
             server.1=127.0.0.1:2888:3888\nserver.3=127.0.0.3:2888:3888\n"
        );
    }
}
