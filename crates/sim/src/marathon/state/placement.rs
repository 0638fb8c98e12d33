//! Where one instance of an app may run: Marathon's constraints, the roles it may take resources
//! from, and cpus/mem/disk/ports still free on each offered agent. No I/O.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use serde_json::Value;

use super::{MarathonState, Task};
use crate::marathon::app::{self, Profile};
use crate::mesos::protocol::OfferedAgent;
use crate::resources::{Bundle, Ranges, Resources};

/// Mesos task id [`MAR@1.1.1:M/core/task/Task.scala#Id.forApp`; `MAR@HEAD:M/core/instance/Instance.scala`].
fn task_id(profile: Profile, app_id: &str) -> String {
    let safe = app_id.trim_start_matches('/').replace('/', "_");
    let node: [u8; 6] = rand::random();
    let uuid = uuid::Uuid::now_v1(&node);
    match profile {
        Profile::V11 => format!("{safe}.{uuid}"),
        Profile::V110 => format!("{safe}.instance-{uuid}._app.1"),
    }
}

impl MarathonState {
    /// What is left of an agent's resources of `role` after the tasks placed on it.
    fn free_on(&self, agent: &OfferedAgent, role: &str) -> Bundle {
        let total = agent.resources.0.get(role).cloned().unwrap_or_default();
        self.tasks
            .values()
            .filter(|task| task.agent_id == agent.id)
            .filter_map(|task| task.resources.0.get(role))
            .fold(total, |free, used| free.minus(used))
    }

    fn attribute(agent: &OfferedAgent, field: &str) -> Option<String> {
        if field == "hostname" {
            return Some(agent.hostname.clone());
        }
        agent
            .attributes
            .get(field)
            .map(|attribute| attribute.as_text())
    }

    /// Marathon constraint matching [`MAR@1.1.1:src/main/scala/mesosphere/mesos/Constraints.scala`].
    fn constraints_ok(&self, app: &Value, agent: &OfferedAgent) -> bool {
        let siblings: Vec<&Task> = self.tasks_of(app["id"].as_str().unwrap_or_default());
        let agent_of = |task: &Task| {
            self.agents
                .iter()
                .find(|known| known.id == task.agent_id)
                .cloned()
        };
        let value_of = |task: &Task, field: &str| {
            agent_of(task).and_then(|sibling_agent| Self::attribute(&sibling_agent, field))
        };
        for constraint in app["constraints"].as_array().into_iter().flatten() {
            let parts: Vec<&str> = constraint
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let (field, operator, value) = (parts[0], parts[1], parts.get(2).copied());
            let mine = Self::attribute(agent, field);
            let satisfied = match operator {
                "UNIQUE" => {
                    mine.is_some() && siblings.iter().all(|task| value_of(task, field) != mine)
                }
                "CLUSTER" => match value {
                    Some(wanted) if !wanted.is_empty() => mine.as_deref() == Some(wanted),
                    _ => siblings
                        .first()
                        .and_then(|task| agent_of(task))
                        .is_none_or(|first| Self::attribute(&first, field) == mine),
                },
                "IS" => mine.as_deref() == value,
                "LIKE" => mine
                    .as_deref()
                    .is_some_and(|text| glob_regex_match(value.unwrap_or(""), text)),
                "UNLIKE" => mine
                    .as_deref()
                    .is_none_or(|text| !glob_regex_match(value.unwrap_or(""), text)),
                "MAX_PER" => {
                    let max: usize = value.and_then(|limit| limit.parse().ok()).unwrap_or(0);
                    mine.is_some()
                        && siblings
                            .iter()
                            .filter(|task| value_of(task, field) == mine)
                            .count()
                            < max
                }
                "GROUP_BY" => {
                    // Spread evenly: place on a value with the fewest instances among known values.
                    let Some(mine) = mine else { return false };
                    let mut counts: BTreeMap<String, usize> = self
                        .agents
                        .iter()
                        .filter_map(|known| Self::attribute(known, field))
                        .map(|known_value| (known_value, 0))
                        .collect();
                    for task in &siblings {
                        if let Some(sibling_value) = value_of(task, field) {
                            *counts.entry(sibling_value).or_default() += 1;
                        }
                    }
                    let fewest = counts.values().copied().min().unwrap_or(0);
                    counts.get(&mine).copied().unwrap_or(0) == fewest
                }
                _ => false,
            };
            if !satisfied {
                return false;
            }
        }
        true
    }

    /// Tries to place one instance of `app`; returns the task if an agent fits.
    pub(super) fn place(&self, app: &Value) -> Option<Task> {
        let app_id = app["id"].as_str().unwrap_or_default();
        let need = Bundle {
            cpus: app["cpus"].as_f64().unwrap_or(1.0),
            mem: app["mem"].as_f64().unwrap_or(128.0),
            disk: app["disk"].as_f64().unwrap_or(0.0),
            ports: Ranges::default(),
        };
        let roles = self.roles.usable_by(app);
        let host_net = app::network_mode(app) == "host";
        let require_ports = app["requirePorts"].as_bool().unwrap_or(false);
        let wanted: Vec<u32> = if host_net {
            app::service_ports(app)
        } else {
            app["container"]["portMappings"]
                .as_array()
                .map(|mappings| {
                    mappings
                        .iter()
                        .filter_map(|mapping| mapping["hostPort"].as_u64().map(|port| port as u32))
                        .collect()
                })
                .unwrap_or_default()
        };
        for agent in self
            .agents
            .iter()
            .filter(|agent| agent.active && !agent.draining)
        {
            if !self.constraints_ok(app, agent) {
                continue;
            }
            let free: Vec<(&str, Bundle)> = roles
                .iter()
                .map(|role| (role.as_str(), self.free_on(agent, role)))
                .collect();
            let Some((ports, resources)) = take(&free, &need, &wanted, host_net, require_ports)
            else {
                continue;
            };
            let now = SystemTime::now();
            return Some(Task {
                id: task_id(self.profile, app_id),
                app_id: app_id.to_string(),
                agent_id: agent.id.clone(),
                host: agent.hostname.clone(),
                ports,
                service_ports: app::service_ports(app),
                staged_at: now,
                staged_instant: Instant::now(),
                started_at: None,
                started_instant: None,
                version: app["version"].as_str().unwrap_or_default().to_string(),
                resources,
                health: None,
                next_check: None,
            });
        }
        None
    }
}

/// Takes one instance's resources from what is free in each usable role, in order: scalars from
/// as many roles as it takes, each port from the role that offers it. Returns the host ports in
/// the order wanted and what was taken from each role.
fn take(
    free: &[(&str, Bundle)],
    need: &Bundle,
    wanted: &[u32],
    host_net: bool,
    require_ports: bool,
) -> Option<(Vec<u32>, Resources)> {
    let mut taken: BTreeMap<String, Bundle> = BTreeMap::new();
    let scalars = |bundle: &Bundle| [bundle.cpus, bundle.mem, bundle.disk];
    for (index, mut needed) in scalars(need).into_iter().enumerate() {
        for (role, bundle) in free {
            let amount = needed.min(scalars(bundle)[index]);
            if amount > 0.0 {
                let from_role = taken.entry(role.to_string()).or_default();
                *[&mut from_role.cpus, &mut from_role.mem, &mut from_role.disk][index] += amount;
                needed -= amount;
            }
        }
        if needed > 1e-9 {
            return None;
        }
    }
    let offered = free
        .iter()
        .fold(Bundle::default(), |all, (_, bundle)| all.plus(bundle))
        .ports;
    let ports = pick_ports(&offered, wanted, host_net, require_ports)?;
    for &port in &ports {
        if let Some((role, _)) = free.iter().find(|(_, bundle)| bundle.ports.contains(port)) {
            let from_role = taken.entry(role.to_string()).or_default();
            from_role.ports = from_role.ports.plus_port(port);
        }
    }
    Some((ports, Resources(taken)))
}

/// Picks host ports: fixed ones must be free; `0` (or non-required service ports) take free ones.
fn pick_ports(free: &Ranges, wanted: &[u32], host_net: bool, require: bool) -> Option<Vec<u32>> {
    let mut picked = Vec::new();
    let mut available = free.clone();
    for &port in wanted {
        let fixed = if host_net {
            require && port != 0
        } else {
            port != 0
        };
        if fixed {
            if !available.contains(port) {
                return None;
            }
            picked.push(port);
            available = available.without(&[port]);
        } else {
            // Marathon picks non-fixed host ports at random from the offer [`MAR@1.1.1:src/main/scala/mesosphere/mesos/PortsMatcher.scala`].
            let random = available.random()?;
            picked.push(random);
            available = available.without(&[random]);
        }
    }
    Some(picked)
}

/// Full-string match of a Java-style regex subset used in LIKE/UNLIKE (literals, `.`, `.*`, `|`,
/// character classes are not supported and match literally).
fn glob_regex_match(pattern: &str, text: &str) -> bool {
    pattern
        .split('|')
        .any(|alternative| wildcard(alternative.as_bytes(), text.as_bytes()))
}

fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match pattern {
        [] => text.is_empty(),
        [b'.', b'*', rest @ ..] => (0..=text.len()).any(|skip| wildcard(rest, &text[skip..])),
        [b'.', rest @ ..] => !text.is_empty() && wildcard(rest, &text[1..]),
        [literal, rest @ ..] => text.first() == Some(literal) && wildcard(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::marathon::state::{AppEntry, RolePolicy, Timing};
    use crate::resources::parse_attributes;
    use crate::server::iso;

    fn agent(id: &str, host: &str, resources: &str, attributes: &str) -> OfferedAgent {
        OfferedAgent {
            id: id.into(),
            hostname: host.into(),
            resources: Resources::parse(resources).unwrap(),
            attributes: parse_attributes(attributes).unwrap(),
            active: true,
            draining: false,
        }
    }

    fn state() -> MarathonState {
        state_with(RolePolicy::default())
    }

    fn state_with(roles: RolePolicy) -> MarathonState {
        MarathonState::new(
            Profile::V110,
            Timing {
                staging_delay: Duration::ZERO,
                time_scale: 0.0,
            },
            roles,
        )
    }

    fn add_app(state: &mut MarathonState, body: Value) -> String {
        let mut def = app::normalize(Profile::V110, &body).unwrap();
        def["version"] = json!(iso(SystemTime::now()));
        let id = def["id"].as_str().unwrap().to_string();
        state.apps.insert(
            id.clone(),
            AppEntry {
                def,
                last_scaling_at: String::new(),
                last_config_change_at: String::new(),
                versions: Vec::new(),
            },
        );
        id
    }

    #[test]
    fn unique_hostname_and_cluster_constraints() {
        let mut state = state();
        state.set_agents(
            vec![
                agent("a", "h1", "cpus:4;mem:1000;ports:[31000-31010]", "env:prod"),
                agent(
                    "b",
                    "h2",
                    "cpus:4;mem:1000;ports:[31000-31010]",
                    "env:staging",
                ),
            ],
            true,
        );
        let id = add_app(
            &mut state,
            json!({"id": "/u", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 3,
            "constraints": [["hostname", "UNIQUE"]]}),
        );
        state.tick();
        assert_eq!(state.tasks_of(&id).len(), 2, "only two hosts for UNIQUE");
        let id = add_app(
            &mut state,
            json!({"id": "/c", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2,
            "constraints": [["env", "CLUSTER", "staging"]]}),
        );
        state.tick();
        assert!(state.tasks_of(&id).iter().all(|task| task.host == "h2"));
    }

    #[test]
    fn memory_and_ports_are_accounted() {
        let mut state = state();
        state.set_agents(
            vec![agent("a", "h1", "cpus:1;mem:497;ports:[31000-31001]", "")],
            true,
        );
        let id = add_app(
            &mut state,
            json!({"id": "/m", "cmd": "x", "cpus": 0.1, "mem": 300, "instances": 2}),
        );
        state.tick();
        assert_eq!(state.tasks_of(&id).len(), 1);
        let id = add_app(
            &mut state,
            json!({"id": "/p", "cmd": "x", "cpus": 0.1, "mem": 1, "instances": 3}),
        );
        state.tick();
        assert_eq!(state.tasks_of(&id).len(), 1, "two ports only, one taken");
    }

    #[test]
    fn ports_reserved_for_marathons_role_go_only_to_apps_that_accept_it() {
        let mut state = state_with(RolePolicy {
            mesos_role: Some("slave_public".into()),
            default_accepted: Some(vec!["*".into()]),
        });
        state.set_agents(
            vec![agent(
                "a",
                "h1",
                "cpus:4;mem:1000;ports(slave_public):[80-80];ports:[31000-31000]",
                "",
            )],
            true,
        );
        let random = add_app(
            &mut state,
            json!({"id": "/random", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2}),
        );
        state.tick();
        let placed = state.tasks_of(&random);
        assert_eq!(placed.len(), 1, "port 80 is not offered to it");
        assert_eq!(placed[0].ports, vec![31000]);

        let edge = add_app(
            &mut state,
            json!({"id": "/edge", "cmd": "x", "cpus": 0.1, "mem": 10, "instances": 2,
            "acceptedResourceRoles": ["*", "slave_public"], "requirePorts": true,
            "portDefinitions": [{"port": 80}]}),
        );
        state.tick();
        let placed = state.tasks_of(&edge);
        assert_eq!(placed.len(), 1, "the reserved port 80 is taken once");
        assert_eq!(placed[0].ports, vec![80]);
        let taken = &placed[0].resources.0;
        assert_eq!(taken["slave_public"].ports, Ranges(vec![(80, 80)]));
        assert_eq!(taken["*"].cpus, 0.1, "cpus are unreserved only");
    }

    #[test]
    fn a_role_marathon_is_not_registered_with_is_never_offered() {
        let mut state = state();
        state.set_agents(
            vec![agent(
                "a",
                "h1",
                "cpus(slave_public):4;mem(slave_public):1000;ports(slave_public):[80-80]",
                "",
            )],
            true,
        );
        let id = add_app(
            &mut state,
            json!({"id": "/edge", "cmd": "x", "cpus": 0.1, "mem": 10,
            "acceptedResourceRoles": ["slave_public"]}),
        );
        state.tick();
        assert!(state.tasks_of(&id).is_empty());
    }

    #[test]
    fn regex_subset() {
        assert!(glob_regex_match("rack-.*", "rack-1"));
        assert!(glob_regex_match("a|b", "b"));
        assert!(!glob_regex_match("a.", "a"));
    }
}
