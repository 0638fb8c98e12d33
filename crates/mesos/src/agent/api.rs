//! The Mesos master client (I/O): a narrow trait answering "who leads, and which agents does
//! it know", and its HTTP implementation: `/master/redirect` on any master, following to the
//! leader, then the leader's `/master/state`; and the maintenance calls that drain an agent
//! (schedule, status, machine down). Nothing is dialled outside `allowed_networks` (`dial`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use converged_core::api::{ApiOutcome, ApiRecorder};
use converged_hosts::AllowedNetworks;
use reqwest::StatusCode;
use serde_json::Value;

use crate::dial;
use crate::error::MesosError;

const SERVICE: &str = "mesos";
const TIMEOUT: Duration = Duration::from_secs(5);

/// One agent as the leading master reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub hostname: String,
    /// From its pid, `slave(1)@<ip>:<port>`.
    pub ip: Option<IpAddr>,
    pub active: bool,
    /// Attribute values as text (`{"env": "staging", "rack": "3"}`).
    pub attributes: BTreeMap<String, String>,
    /// Tasks not yet terminal on this agent, of every framework.
    pub tasks: Vec<AgentTask>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTask {
    /// The Mesos task id, which Marathon's `/v2/tasks` also uses.
    pub id: String,
    pub framework: String,
}

/// A machine as the maintenance API names it: the hostname and IP its agent announces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Machine {
    pub hostname: String,
    pub ip: String,
}

/// Where the masters' maintenance schedule puts machines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceStatus {
    pub draining: Vec<Machine>,
    pub down: Vec<Machine>,
}

/// What the masters say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterView {
    Led {
        /// `host:port` of the leading master.
        leader: String,
        agents: Vec<Agent>,
    },
    /// No master answered with a leader; why.
    NoLeader { reason: String },
}

#[async_trait]
pub trait MesosMaster: Send + Sync {
    /// Asks the masters at `urls` (any of them) for the leader's view.
    async fn view(&self, urls: &[String]) -> Result<MasterView, MesosError>;
    /// The leading master's (`host:port`) maintenance status.
    async fn maintenance_status(&self, leader: &str) -> Result<MaintenanceStatus, MesosError>;
    /// Adds a window for `machine`, starting now, to the leader's schedule (the API replaces
    /// the whole schedule, so the windows already there are kept). A machine already scheduled
    /// counts as done.
    async fn schedule_maintenance(&self, leader: &str, machine: &Machine)
    -> Result<(), MesosError>;
    /// Brings a DRAINING machine down: the master shuts its agent down.
    async fn machine_down(&self, leader: &str, machine: &Machine) -> Result<(), MesosError>;
}

/// How long a maintenance window asks for: long enough that an unfinished drain is not
/// mistaken for a finished one; the machine leaves the schedule when its instance goes.
const MAINTENANCE_WINDOW: Duration = Duration::from_secs(24 * 3600);

pub struct HttpMesosMaster {
    client: reqwest::Client,
    allowed: AllowedNetworks,
    recorder: Arc<dyn ApiRecorder>,
}

impl HttpMesosMaster {
    pub fn new(
        allowed: AllowedNetworks,
        recorder: Arc<dyn ApiRecorder>,
    ) -> Result<Self, MesosError> {
        let client = dial::client(&allowed, TIMEOUT, Duration::from_secs(3)).map_err(|err| {
            MesosError::MasterUnreachable {
                operation: "build the HTTP client",
                url: String::new(),
                message: err.to_string(),
            }
        })?;
        Ok(Self {
            client,
            allowed,
            recorder,
        })
    }

    async fn get(
        &self,
        operation: &'static str,
        url: &str,
    ) -> Result<(StatusCode, Option<String>, String), MesosError> {
        self.send(operation, self.client.get(url), url).await
    }

    /// POSTs JSON to the leader and insists on success: a standby answers with a redirect,
    /// which is an error here (leadership moved; the next cycle asks again).
    async fn post(
        &self,
        operation: &'static str,
        leader: &str,
        path: &str,
        body: &Value,
    ) -> Result<(), MesosError> {
        let url = format!("http://{leader}{path}");
        let request = self.client.post(&url).json(body);
        let (status, _, text) = self.send(operation, request, &url).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(MesosError::MasterRejected {
            operation,
            status: status.as_u16(),
            message: text.trim().to_owned(),
        })
    }

    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(StatusCode, Option<String>, String), MesosError> {
        dial::check_url(&self.allowed, url).await?;
        let started = Instant::now();
        let result = request.send().await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(response) => {
                let status = response.status();
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let body = response.text().await.unwrap_or_default();
                let outcome = if status.is_success() || status.is_redirection() {
                    ApiOutcome::Success
                } else {
                    ApiOutcome::Error
                };
                self.recorder.record(SERVICE, operation, outcome, seconds);
                Ok((status, location, body))
            }
            Err(err) => {
                self.recorder
                    .record(SERVICE, operation, ApiOutcome::Unreachable, seconds);
                Err(MesosError::MasterUnreachable {
                    operation,
                    url: url.to_owned(),
                    message: err.to_string(),
                })
            }
        }
    }

    async fn get_json(&self, operation: &'static str, url: &str) -> Result<Value, MesosError> {
        let (status, _, body) = self.get(operation, url).await?;
        if !status.is_success() {
            return Err(MesosError::MasterRejected {
                operation,
                status: status.as_u16(),
                message: body.trim().to_owned(),
            });
        }
        serde_json::from_str(&body).map_err(|err| MesosError::MasterDecode {
            operation,
            message: err.to_string(),
        })
    }

    /// The leader's base URL according to the master at `base`, if it knows one.
    async fn leader(&self, base: &str) -> Result<Option<String>, MesosError> {
        let (status, location, body) = self
            .get("redirect", &format!("{base}/master/redirect"))
            .await?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Ok(None);
        }
        let location = location.ok_or_else(|| MesosError::MasterDecode {
            operation: "redirect",
            message: format!("status {status} without a Location: {}", body.trim()),
        })?;
        // Protocol-relative: `//host:port`.
        let leader = location
            .trim_start_matches("http:")
            .trim_start_matches("//");
        let leader = leader.split('/').next().unwrap_or_default();
        Ok(Some(format!("http://{leader}")))
    }
}

/// Task states after which a task holds nothing on its agent (`mesos.proto` TaskState).
const TERMINAL_TASK_STATES: [&str; 8] = [
    "TASK_FINISHED",
    "TASK_GONE",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE_BY_OPERATOR",
];

/// Parses `/master/state` into the leader's view (a state without `leader` means none).
pub fn parse_state(body: &str) -> Result<MasterView, MesosError> {
    let decode = |message: String| MesosError::MasterDecode {
        operation: "state",
        message,
    };
    let state: Value = serde_json::from_str(body).map_err(|err| decode(err.to_string()))?;
    let Some(leader) = state.get("leader").and_then(Value::as_str) else {
        return Ok(MasterView::NoLeader {
            reason: "the master knows no leader".into(),
        });
    };
    let leader = leader.rsplit('@').next().unwrap_or(leader).to_owned();
    let mut tasks: BTreeMap<String, Vec<AgentTask>> = BTreeMap::new();
    for framework in state
        .get("frameworks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = framework.get("name").and_then(Value::as_str).unwrap_or("");
        for task in framework
            .get("tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = |key: &str| task.get(key).and_then(Value::as_str).unwrap_or("");
            if TERMINAL_TASK_STATES.contains(&field("state")) {
                continue;
            }
            tasks
                .entry(field("slave_id").to_owned())
                .or_default()
                .push(AgentTask {
                    id: field("id").to_owned(),
                    framework: name.to_owned(),
                });
        }
    }
    let agents = state
        .get("slaves")
        .and_then(Value::as_array)
        .map(|slaves| {
            slaves
                .iter()
                .map(|slave| {
                    let text = |key: &str| {
                        slave
                            .get(key)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let pid = text("pid");
                    let ip = pid
                        .rsplit('@')
                        .next()
                        .and_then(|address| address.parse::<SocketAddr>().ok())
                        .map(|address| address.ip());
                    let attributes = slave
                        .get("attributes")
                        .and_then(Value::as_object)
                        .map(|attributes| {
                            attributes
                                .iter()
                                .map(|(key, value)| {
                                    let value = match value {
                                        Value::String(text) => text.clone(),
                                        other => other.to_string(),
                                    };
                                    (key.clone(), value)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let id = text("id");
                    Agent {
                        tasks: tasks.get(&id).cloned().unwrap_or_default(),
                        id,
                        hostname: text("hostname"),
                        ip,
                        active: slave.get("active").and_then(Value::as_bool) == Some(true),
                        attributes,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(MasterView::Led { leader, agents })
}

#[async_trait]
impl MesosMaster for HttpMesosMaster {
    async fn view(&self, urls: &[String]) -> Result<MasterView, MesosError> {
        let mut last_error = None;
        let mut no_leader = 0;
        for base in urls {
            let base = base.trim_end_matches('/');
            let leader = match self.leader(base).await {
                Ok(Some(leader)) => leader,
                Ok(None) => {
                    no_leader += 1;
                    continue;
                }
                Err(err @ MesosError::AddressNotAllowed { .. }) => return Err(err),
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            let (status, _, body) = match self.get("state", &format!("{leader}/master/state")).await
            {
                Ok(answer) => answer,
                Err(err @ MesosError::AddressNotAllowed { .. }) => return Err(err),
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            if status.is_redirection() || status == StatusCode::SERVICE_UNAVAILABLE {
                // Leadership moved between the two requests: ask the next master.
                no_leader += 1;
                continue;
            }
            return parse_state(&body);
        }
        match last_error {
            Some(err) if no_leader == 0 => Err(err),
            _ => Ok(MasterView::NoLeader {
                reason: format!("{no_leader} of {} masters know no leader", urls.len()),
            }),
        }
    }

    async fn maintenance_status(&self, leader: &str) -> Result<MaintenanceStatus, MesosError> {
        let url = format!("http://{leader}/master/maintenance/status");
        let status = self.get_json("maintenance_status", &url).await?;
        Ok(parse_maintenance_status(&status))
    }

    async fn schedule_maintenance(
        &self,
        leader: &str,
        machine: &Machine,
    ) -> Result<(), MesosError> {
        let url = format!("http://{leader}/master/maintenance/schedule");
        let mut schedule = self.get_json("maintenance_schedule", &url).await?;
        let scheduled = schedule["windows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|window| window["machine_ids"].as_array().into_iter().flatten())
            .any(|id| machine_of(id).as_ref() == Some(machine));
        if scheduled {
            return Ok(());
        }
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let window = serde_json::json!({
            "machine_ids": [machine_json(machine)],
            "unavailability": {
                "start": {"nanoseconds": u64::try_from(start).unwrap_or(u64::MAX)},
                "duration": {"nanoseconds": MAINTENANCE_WINDOW.as_nanos() as u64},
            },
        });
        let mut windows = schedule["windows"].as_array().cloned().unwrap_or_default();
        windows.push(window);
        schedule["windows"] = Value::Array(windows);
        self.post(
            "schedule_maintenance",
            leader,
            "/master/maintenance/schedule",
            &schedule,
        )
        .await
    }

    async fn machine_down(&self, leader: &str, machine: &Machine) -> Result<(), MesosError> {
        let body = Value::Array(vec![machine_json(machine)]);
        self.post("machine_down", leader, "/master/machine/down", &body)
            .await
    }
}

fn machine_json(machine: &Machine) -> Value {
    serde_json::json!({"hostname": machine.hostname, "ip": machine.ip})
}

/// A `MachineID`; the master matches hostnames case-insensitively.
fn machine_of(id: &Value) -> Option<Machine> {
    Some(Machine {
        hostname: id.get("hostname")?.as_str()?.to_lowercase(),
        ip: id
            .get("ip")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    })
}

/// Parses `/master/maintenance/status` (`ClusterStatus`).
pub fn parse_maintenance_status(status: &Value) -> MaintenanceStatus {
    let draining = status["draining_machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|machine| machine_of(&machine["id"]))
        .collect();
    let down = status["down_machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(machine_of)
        .collect();
    MaintenanceStatus { draining, down }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_parses_agents_and_the_leader() {
        let body = r#"{"leader":"master@127.0.23.2:5050","slaves":[
            {"id":"M-S0","hostname":"staging","pid":"slave(1)@127.0.23.2:5051","active":true,"attributes":{"env":"staging","rack":3}},
            {"id":"M-S1","hostname":"services","pid":"slave(1)@127.0.23.1:5051","active":false,"attributes":{}}],
            "frameworks":[{"name":"marathon","tasks":[
                {"id":"web.1","slave_id":"M-S0","state":"TASK_RUNNING"},
                {"id":"web.2","slave_id":"M-S0","state":"TASK_KILLED"},
                {"id":"web.3","slave_id":"M-S1","state":"TASK_STAGING"}]}]}"#;
        let MasterView::Led { leader, agents } = parse_state(body).unwrap() else {
            panic!("no leader")
        };
        assert_eq!(leader, "127.0.23.2:5050");
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0].ip, Some("127.0.23.2".parse().unwrap()));
        assert_eq!(agents[0].attributes["rack"], "3");
        assert!(agents[0].active && !agents[1].active);
        let task = |id: &str| AgentTask {
            id: id.into(),
            framework: "marathon".into(),
        };
        assert_eq!(
            agents[0].tasks,
            [task("web.1")],
            "terminal tasks hold nothing"
        );
        assert_eq!(agents[1].tasks, [task("web.3")]);
        assert!(matches!(
            parse_state(r#"{"slaves":[]}"#).unwrap(),
            MasterView::NoLeader { .. }
        ));
        assert!(parse_state("<html>").is_err());
    }

    #[test]
    fn maintenance_status_lists_draining_and_down_machines() {
        let status = serde_json::json!({
            "draining_machines": [{"id": {"hostname": "Staging", "ip": "127.0.23.2"}, "statuses": []}],
            "down_machines": [{"hostname": "production", "ip": "127.0.23.3"}],
        });
        let machine = |hostname: &str, ip: &str| Machine {
            hostname: hostname.into(),
            ip: ip.into(),
        };
        assert_eq!(
            parse_maintenance_status(&status),
            MaintenanceStatus {
                draining: vec![machine("staging", "127.0.23.2")],
                down: vec![machine("production", "127.0.23.3")],
            }
        );
        assert_eq!(
            parse_maintenance_status(&serde_json::json!({})),
            MaintenanceStatus::default()
        );
    }
}
