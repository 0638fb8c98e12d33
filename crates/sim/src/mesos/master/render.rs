//! The JSON of the master's operator endpoints as Mesos renders it: `/master/state`, `/slaves`,
//! `/frameworks`, `/tasks`, `/metrics/snapshot` and the maintenance status, per profile. No I/O.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Master;
use super::election::master_info;
use super::maintenance::{machine_json, machine_key};
use super::state::{Agent, Framework, MasterState, live};
use crate::mesos::protocol::TaskReport;
use crate::resources::{Bundle, DEFAULT_ROLE, attributes_json};

/// What the tasks hold together.
fn resources_of(tasks: &[&TaskReport]) -> Bundle {
    tasks
        .iter()
        .fold(Bundle::default(), |total, task| total.plus(&task.resources))
}

/// Resource protos of one role, as `/slaves` renders the `*_full` fields.
fn resource_protos(bundle: &Bundle, role: &str) -> Vec<Value> {
    let mut protos = Vec::new();
    for (name, value) in [
        ("cpus", bundle.cpus),
        ("mem", bundle.mem),
        ("disk", bundle.disk),
    ] {
        if value > 0.0 {
            protos.push(
                json!({"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": role}),
            );
        }
    }
    if !bundle.ports.0.is_empty() {
        let ranges: Vec<Value> = bundle
            .ports
            .0
            .iter()
            .map(|(begin, end)| json!({"begin": begin, "end": end}))
            .collect();
        protos.push(
            json!({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}, "role": role}),
        );
    }
    protos
}

/// An agent as `/master/state` lists it; `full` adds the Resource-proto forms of `/slaves`.
pub(super) fn agent_json(master: &Master, state: &MasterState, agent: &Agent, full: bool) -> Value {
    let current = master.cfg.profile.current();
    let registration = &agent.registration;
    let used = resources_of(&state.live_tasks_on(&agent.id));
    let mut reserved = Map::new();
    for (role, bundle) in &registration.resources.0 {
        if role != DEFAULT_ROLE {
            reserved.insert(role.clone(), bundle.to_json(current));
        }
    }
    let unreserved = registration
        .resources
        .0
        .get(DEFAULT_ROLE)
        .cloned()
        .unwrap_or_default();
    let mut rendered = json!({
        "id": agent.id,
        "pid": format!("slave(1)@{}:{}", registration.ip, registration.port),
        "hostname": registration.hostname,
        "registered_time": agent.registered_time,
        "resources": registration.resources.total().to_json(current),
        "used_resources": used.to_json(current),
        "offered_resources": Bundle::default().to_json(current),
        "reserved_resources": reserved,
        "unreserved_resources": unreserved.to_json(current),
        "attributes": attributes_json(&registration.attributes),
        "active": agent.active,
        "version": registration.version,
    });
    if let Some(reregistered) = agent.reregistered_time {
        rendered["reregistered_time"] = json!(reregistered);
    }
    if current {
        rendered["port"] = json!(registration.port);
        rendered["deactivated"] = json!(false);
        rendered["capabilities"] =
            json!(["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]);
    }
    if full {
        // `/slaves` adds the Resource-proto forms [`MES@HEAD:MS/readonly_handler.cpp#SlavesWriter`].
        rendered["used_resources_full"] = json!(resource_protos(&used, DEFAULT_ROLE));
        rendered["offered_resources_full"] = json!([]);
        let reserved_full: Map<String, Value> = registration
            .resources
            .0
            .iter()
            .filter(|(role, _)| role.as_str() != DEFAULT_ROLE)
            .map(|(role, bundle)| (role.clone(), json!(resource_protos(bundle, role))))
            .collect();
        rendered["reserved_resources_full"] = Value::Object(reserved_full);
        if current {
            rendered["unreserved_resources_full"] =
                json!(resource_protos(&unreserved, DEFAULT_ROLE));
        }
    }
    rendered
}

/// A task as a framework reported it.
pub(super) fn task_json(master: &Master, framework: &Framework, task: &TaskReport) -> Value {
    let statuses: Vec<Value> = task
        .statuses
        .iter()
        .map(|(status, timestamp)| {
            let mut rendered = json!({"state": status, "timestamp": timestamp});
            if status == "TASK_RUNNING"
                && let Some(healthy) = task.healthy
            {
                rendered["healthy"] = json!(healthy);
            }
            rendered
        })
        .collect();
    let mut rendered = json!({
        "id": task.id,
        "name": task.name,
        "framework_id": framework.id,
        "executor_id": "",
        "slave_id": task.agent_id,
        "state": task.state,
        "resources": task.resources.to_json(master.cfg.profile.current()),
        "statuses": statuses,
    });
    if master.cfg.profile.current() {
        rendered["role"] = json!(framework.sync.role);
    }
    rendered
}

/// A framework with its live and completed tasks.
pub(super) fn framework_json(master: &Master, framework: &Framework) -> Value {
    let current = master.cfg.profile.current();
    let live_tasks: Vec<&TaskReport> = framework
        .sync
        .tasks
        .iter()
        .filter(|task| live(&task.state))
        .collect();
    let used = resources_of(&live_tasks);
    let tasks: Vec<Value> = live_tasks
        .iter()
        .map(|task| task_json(master, framework, task))
        .collect();
    let completed: Vec<Value> = framework
        .sync
        .tasks
        .iter()
        .filter(|task| !live(&task.state))
        .map(|task| task_json(master, framework, task))
        .collect();
    let sync = &framework.sync;
    let mut rendered = json!({
        "id": framework.id,
        "name": sync.name,
        "pid": sync.pid,
        "used_resources": used.to_json(current),
        "offered_resources": Bundle::default().to_json(current),
        "capabilities": sync.capabilities,
        "hostname": sync.hostname,
        "webui_url": sync.webui_url,
        "active": true,
        "user": "root",
        "failover_timeout": 604800.0,
        "checkpoint": true,
        "role": sync.role,
        "registered_time": framework.registered_time,
        "unregistered_time": 0.0,
        "resources": used.to_json(current),
        "tasks": tasks,
        "completed_tasks": completed,
        "offers": [],
        "executors": [],
    });
    if let Some(reregistered) = framework.reregistered_time {
        rendered["reregistered_time"] = json!(reregistered);
    }
    if current {
        rendered["connected"] = json!(true);
        rendered["recovered"] = json!(false);
        rendered["unreachable_tasks"] = json!([]);
    }
    rendered
}

/// The master's flags; [0.28] names the ping flags `slave_*`.
fn flags_json(master: &Master) -> Value {
    let cfg = &master.cfg;
    let secs = |duration: Duration| format!("{}secs", duration.as_secs_f64());
    let (ping_key, max_key) = if cfg.profile.current() {
        ("agent_ping_timeout", "max_agent_ping_timeouts")
    } else {
        ("slave_ping_timeout", "max_slave_ping_timeouts")
    };
    let mut flags = json!({
        "hostname": cfg.hostname,
        "ip": cfg.addr.ip().to_string(),
        "port": cfg.addr.port().to_string(),
        "quorum": cfg.quorum.unwrap_or(1).to_string(),
        "registry": if cfg.zk.is_some() { "replicated_log" } else { "in_memory" },
        "zk_session_timeout": secs(cfg.zk_session_timeout),
        "authenticate_http": "false",
    });
    flags[ping_key] = json!(secs(cfg.agent_ping_timeout));
    flags[max_key] = json!(cfg.max_agent_ping_timeouts.to_string());
    if let Some(zk) = &cfg.zk {
        flags["zk"] = json!(zk);
    }
    flags
}

/// `/master/state`.
pub(super) fn state_json(master: &Master, state: &MasterState) -> Value {
    let current = master.cfg.profile.current();
    let info = master_info(&master.id, &master.cfg);
    let mut rendered = json!({
        "version": master.cfg.profile.version(),
        "build_date": "2016-05-05 17:07:04",
        "build_time": 1_462_468_024.0,
        "build_user": "root",
        "start_time": master.start_time,
        "id": master.id,
        "pid": info["pid"],
        "hostname": master.cfg.hostname,
        "activated_slaves": state.agents.values().filter(|agent| agent.active).count() as f64,
        "deactivated_slaves": state.agents.values().filter(|agent| !agent.active).count() as f64,
        "flags": flags_json(master),
        "slaves": state.agents.values().map(|agent| agent_json(master, state, agent, false)).collect::<Vec<_>>(),
        "frameworks": state.frameworks.values().map(|framework| framework_json(master, framework)).collect::<Vec<_>>(),
        "completed_frameworks": [],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    if let Some(elected) = state.elected_time {
        rendered["elected_time"] = json!(elected);
    }
    if let Some(leader) = master.leader() {
        rendered["leader"] = leader["pid"].clone();
        if current {
            rendered["leader_info"] = json!({"id": leader["id"], "pid": leader["pid"], "port": leader["port"], "hostname": leader["hostname"]});
        }
    }
    if current {
        rendered["unreachable_slaves"] = json!(state.unreachable as f64);
        rendered["capabilities"] = json!(["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"]);
        rendered["recovered_slaves"] = json!([]);
    }
    rendered
}

/// `/metrics/snapshot`.
pub(super) fn metrics_json(master: &Master, state: &MasterState) -> Value {
    let total = state
        .agents
        .values()
        .fold(Bundle::default(), |total, agent| {
            total.plus(&agent.registration.resources.total())
        });
    let all_tasks: Vec<&TaskReport> = state
        .frameworks
        .values()
        .flat_map(|framework| framework.sync.tasks.iter())
        .collect();
    let used = resources_of(
        &all_tasks
            .iter()
            .copied()
            .filter(|task| live(&task.state))
            .collect::<Vec<_>>(),
    );
    let count = |wanted: &str| all_tasks.iter().filter(|task| task.state == wanted).count() as f64;
    let percent = |used: f64, total: f64| if total > 0.0 { used / total } else { 0.0 };
    let active = state.agents.values().filter(|agent| agent.active).count() as f64;
    let inactive = state.agents.len() as f64 - active;
    let mut rendered = json!({
        "master/elected": if master.elected() { 1.0 } else { 0.0 },
        "master/uptime_secs": master.started.elapsed().as_secs_f64(),
        "master/slaves_active": active,
        "master/slaves_inactive": inactive,
        "master/slaves_connected": active,
        "master/slaves_disconnected": inactive,
        "master/frameworks_active": state.frameworks.len() as f64,
        "master/frameworks_inactive": 0.0,
        "master/frameworks_connected": state.frameworks.len() as f64,
        "master/frameworks_disconnected": 0.0,
        "master/tasks_staging": count("TASK_STAGING"),
        "master/tasks_starting": count("TASK_STARTING"),
        "master/tasks_running": count("TASK_RUNNING"),
        "master/tasks_killing": count("TASK_KILLING"),
        "master/tasks_finished": count("TASK_FINISHED"),
        "master/tasks_failed": count("TASK_FAILED"),
        "master/tasks_killed": count("TASK_KILLED"),
        "master/tasks_lost": count("TASK_LOST"),
        "master/tasks_error": count("TASK_ERROR"),
        "master/cpus_total": total.cpus,
        "master/cpus_used": used.cpus,
        "master/cpus_percent": percent(used.cpus, total.cpus),
        "master/mem_total": total.mem,
        "master/mem_used": used.mem,
        "master/mem_percent": percent(used.mem, total.mem),
        "master/disk_total": total.disk,
        "master/disk_used": used.disk,
        "master/disk_percent": percent(used.disk, total.disk),
        "master/outstanding_offers": 0.0,
    });
    if master.cfg.profile.current() {
        rendered["master/slaves_unreachable"] = json!(state.unreachable as f64);
        rendered["master/tasks_unreachable"] = json!(0.0);
        rendered["master/gpus_total"] = json!(0.0);
        rendered["master/gpus_used"] = json!(0.0);
        rendered["master/gpus_percent"] = json!(0.0);
    }
    rendered
}

/// `/maintenance/schedule`: an empty repeated field is omitted by JSON::protobuf, so no windows
/// renders as `{}`.
pub(super) fn schedule_json(state: &MasterState) -> Value {
    if state.schedule.is_empty() {
        json!({})
    } else {
        json!({"windows": state.schedule})
    }
}

/// `/maintenance/status`: scheduled machines not yet down are draining.
pub(super) fn maintenance_status_json(state: &MasterState) -> Value {
    let mut draining = Vec::new();
    for window in &state.schedule {
        for machine in window["machine_ids"].as_array().into_iter().flatten() {
            if !state.down.contains(&machine_key(machine)) {
                draining.push(json!({"id": machine}));
            }
        }
    }
    let down: Vec<Value> = state
        .down
        .iter()
        .map(|(hostname, ip)| machine_json(hostname, ip))
        .collect();
    let mut status = Map::new();
    if !draining.is_empty() {
        status.insert("draining_machines".into(), json!(draining));
    }
    if !down.is_empty() {
        status.insert("down_machines".into(), json!(down));
    }
    Value::Object(status)
}
