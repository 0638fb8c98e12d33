//! Mesos maintenance on the master's state [`MES@HEAD:MS/maintenance.cpp`]: validating and
//! storing the schedule, machine modes (DRAINING while scheduled, DOWN once brought down), and
//! bringing machines down (their agents shut down) and up (out of the schedule). No I/O.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::state::MasterState;

/// A machine's maintenance mode; machines in neither are UP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MachineMode {
    /// In a maintenance window, not yet down.
    Draining,
    /// Brought down: its agents may not register.
    Down,
}

/// Why the master refused a maintenance change or an agent's registration. Each message is the
/// one Mesos answers with.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    /// The schedule's `windows` is not a list.
    #[error("Failed to convert JSON into Schedule protobuf: 'windows' is not an array")]
    WindowsNotArray,
    /// A window without machines.
    #[error("List of machines in the maintenance window is empty")]
    EmptyWindow,
    /// A machine id with neither hostname nor ip.
    #[error("Both 'hostname' and 'ip' for a machine are empty")]
    UnnamedMachine,
    /// A machine in two windows, or twice in one.
    #[error("Machine '{0}' appears more than once in the schedule")]
    RepeatedMachine(Value),
    /// A window with a negative duration.
    #[error("Unavailability 'duration' is negative")]
    NegativeDuration,
    /// A new schedule leaves out a DOWN machine.
    #[error("Machine '{0}' is deactivated and cannot be removed from the schedule")]
    DownMachineUnscheduled(Value),
    /// Bringing down a machine in no window.
    #[error("Machine '{0}' is not part of a maintenance schedule")]
    NotScheduled(Value),
    /// Bringing down a machine that is already down.
    #[error("Machine '{0}' is not in DRAINING mode and cannot be brought down")]
    NotDraining(Value),
    /// Bringing up a machine that is not down.
    #[error("Machine '{0}' is not in DOWN mode and cannot be brought up")]
    NotDown(Value),
    /// An agent registering from a DOWN machine.
    #[error("Agent attempted to register while its machine is DOWN")]
    MachineDown,
}

/// A MachineID as the key machines are compared by: (lowercased hostname, ip).
pub(super) fn machine_key(machine: &Value) -> (String, String) {
    (
        machine["hostname"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase(),
        machine["ip"].as_str().unwrap_or_default().to_string(),
    )
}

/// A MachineID as JSON::protobuf renders it: empty fields are left out.
pub(super) fn machine_json(hostname: &str, ip: &str) -> Value {
    let mut machine = Map::new();
    if !hostname.is_empty() {
        machine.insert("hostname".into(), json!(hostname));
    }
    if !ip.is_empty() {
        machine.insert("ip".into(), json!(ip));
    }
    Value::Object(machine)
}

/// Validates a Schedule like `MES@HEAD:MS/maintenance.cpp` `validation::schedule`; returns its
/// windows.
fn validate_schedule(
    body: &Value,
    down: &BTreeSet<(String, String)>,
) -> Result<Vec<Value>, Refusal> {
    let windows = match body.get("windows") {
        None => Vec::new(),
        Some(Value::Array(windows)) => windows.clone(),
        Some(_) => return Err(Refusal::WindowsNotArray),
    };
    let mut seen = BTreeSet::new();
    for window in &windows {
        let machines = window["machine_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if machines.is_empty() {
            return Err(Refusal::EmptyWindow);
        }
        for machine in &machines {
            let (hostname, ip) = machine_key(machine);
            if hostname.is_empty() && ip.is_empty() {
                return Err(Refusal::UnnamedMachine);
            }
            if !seen.insert((hostname, ip)) {
                return Err(Refusal::RepeatedMachine(machine.clone()));
            }
        }
        if window["unavailability"]["duration"]["nanoseconds"]
            .as_i64()
            .unwrap_or(0)
            < 0
        {
            return Err(Refusal::NegativeDuration);
        }
    }
    if let Some((hostname, ip)) = down.iter().find(|machine| !seen.contains(*machine)) {
        return Err(Refusal::DownMachineUnscheduled(
            json!({"hostname": hostname, "ip": ip}),
        ));
    }
    Ok(windows)
}

impl MasterState {
    /// The maintenance mode of the machine `hostname`/`ip`, if it has one.
    pub(super) fn machine_mode(&self, hostname: &str, ip: &str) -> Option<MachineMode> {
        let key = (hostname.to_lowercase(), ip.to_string());
        if self.down.contains(&key) {
            return Some(MachineMode::Down);
        }
        let scheduled = self.schedule.iter().any(|window| {
            window["machine_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|machine| machine_key(machine) == key)
        });
        scheduled.then_some(MachineMode::Draining)
    }

    /// Replaces the schedule with a valid one (POST /maintenance/schedule).
    pub(super) fn set_schedule(&mut self, body: &Value) -> Result<(), Refusal> {
        self.schedule = validate_schedule(body, &self.down)?;
        tracing::info!(
            windows = self.schedule.len(),
            "Updated maintenance schedule"
        );
        Ok(())
    }

    /// Brings DRAINING machines down; their agents are told to shut down
    /// [`MES@HEAD:MS/http.cpp#_startMaintenance`]. All or nothing.
    pub(super) fn bring_down(&mut self, machines: Vec<(String, String)>) -> Result<(), Refusal> {
        for (hostname, ip) in &machines {
            match self.machine_mode(hostname, ip) {
                Some(MachineMode::Draining) => {}
                Some(MachineMode::Down) => {
                    return Err(Refusal::NotDraining(machine_json(hostname, ip)));
                }
                None => return Err(Refusal::NotScheduled(machine_json(hostname, ip))),
            }
        }
        for key in machines {
            self.down.insert(key.clone());
            let gone: Vec<String> = self
                .agents
                .values()
                .filter(|agent| {
                    (
                        agent.registration.hostname.to_lowercase(),
                        agent.registration.ip.clone(),
                    ) == key
                })
                .map(|agent| agent.id.clone())
                .collect();
            for id in gone {
                self.agents.remove(&id);
                tracing::info!(agent_id = %id, "Shut down agent on DOWN machine");
            }
        }
        Ok(())
    }

    /// Brings DOWN machines up, which takes them out of the schedule
    /// [`MES@HEAD:MS/http.cpp#_stopMaintenance`]. All or nothing.
    pub(super) fn bring_up(&mut self, machines: &[(String, String)]) -> Result<(), Refusal> {
        if let Some((hostname, ip)) = machines.iter().find(|key| !self.down.contains(*key)) {
            return Err(Refusal::NotDown(machine_json(hostname, ip)));
        }
        for key in machines {
            self.down.remove(key);
        }
        let schedule = std::mem::take(&mut self.schedule);
        self.schedule = schedule
            .into_iter()
            .filter_map(|mut window| {
                let kept: Vec<Value> = window["machine_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|machine| !machines.contains(&machine_key(machine)))
                    .cloned()
                    .collect();
                (!kept.is_empty()).then(|| {
                    window["machine_ids"] = json!(kept);
                    window
                })
            })
            .collect();
        Ok(())
    }
}
