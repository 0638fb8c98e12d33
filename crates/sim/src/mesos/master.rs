//! The simulated Mesos master: leader election, agent registry with ping timeouts, framework task
//! view, and the operator HTTP endpoints (`/master/state`, `/slaves`, `/redirect`, maintenance, metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::leader::{Election, ZkGroup, parse_zk_url};
use crate::mesos::protocol::{
    FrameworkSync, Heartbeat, INTERNAL, OfferedAgent, RegisterAgent, Registered, SyncReply,
    TaskReport,
};
use crate::resources::{Bundle, DEFAULT_ROLE, attributes_json};
use crate::server::{DropLeadership, epoch_secs, with_admin};
use crate::{Error, server};

/// Which Mesos release the master imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MesosProfile {
    /// Mesos 0.28.1 (the mesoscloud image): no redirects from non-leaders, `/redirect` never 503s.
    #[value(name = "0.28")]
    V028,
    /// Mesos 1.11 (current): non-leaders answer 307/503, `gpus`, `unreachable_slaves`, `leader_info`.
    #[value(name = "1.11")]
    V111,
}

impl MesosProfile {
    /// The version string the master and agents report.
    pub fn version(self) -> &'static str {
        match self {
            MesosProfile::V028 => "0.28.1",
            MesosProfile::V111 => "1.11.0",
        }
    }

    fn current(self) -> bool {
        self == MesosProfile::V111
    }
}

/// Configuration of one master process.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Address the HTTP server is bound to.
    pub addr: SocketAddr,
    /// Hostname advertised in MasterInfo (defaults to the IP).
    pub hostname: String,
    /// `zk://.../mesos` for leader election, or none for a single leading master.
    pub zk: Option<String>,
    /// `--quorum` (reported in flags only).
    pub quorum: Option<u32>,
    /// Release imitated.
    pub profile: MesosProfile,
    /// `--agent_ping_timeout`.
    pub agent_ping_timeout: Duration,
    /// `--max_agent_ping_timeouts`.
    pub max_agent_ping_timeouts: u32,
    /// ZooKeeper session timeout.
    pub zk_session_timeout: Duration,
    /// Serve the `/__sim/` admin API.
    pub admin: bool,
}

#[derive(Clone, Debug)]
struct Agent {
    reg: RegisterAgent,
    id: String,
    registered_time: f64,
    reregistered_time: Option<f64>,
    last_heartbeat: Instant,
    active: bool,
}

#[derive(Clone, Debug)]
struct Framework {
    sync: FrameworkSync,
    id: String,
    registered_time: f64,
    reregistered_time: Option<f64>,
}

#[derive(Debug, Default)]
struct MasterState {
    agents: BTreeMap<String, Agent>,
    next_agent: u64,
    unreachable: u64,
    frameworks: BTreeMap<String, Framework>,
    next_framework: u64,
    elected_time: Option<f64>,
    /// Counts the terms this master has led, across the resets.
    term: u64,
    schedule: Vec<Value>,
    down: BTreeSet<(String, String)>,
}

/// A running master.
pub struct Master {
    cfg: MasterConfig,
    id: String,
    start_time: f64,
    started: Instant,
    election: Election,
    state: Mutex<MasterState>,
}

type Shared = Arc<Master>;

fn master_info(id: &str, cfg: &MasterConfig) -> Value {
    let ip = cfg.addr.ip().to_string();
    let ip_num = match cfg.addr.ip() {
        std::net::IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        std::net::IpAddr::V6(_) => 0,
    };
    // MasterInfo as JSON::protobuf renders it; `ip` is the uint32 in network order
    // [`MES@HEAD:include/mesos/mesos.proto` MasterInfo; `MS/contender/zookeeper.cpp:158`].
    json!({
        "id": id,
        "ip": ip_num,
        "port": cfg.addr.port(),
        "pid": format!("master@{ip}:{}", cfg.addr.port()),
        "hostname": cfg.hostname,
        "version": cfg.profile.version(),
        "address": {"hostname": cfg.hostname, "ip": ip, "port": cfg.addr.port()},
    })
}

impl Master {
    /// Starts the election and the ping-timeout monitor; returns the shared master.
    pub fn start(cfg: MasterConfig) -> Result<Arc<Self>, Error> {
        let id = uuid::Uuid::new_v4().to_string();
        let info = master_info(&id, &cfg).to_string();
        let election = match &cfg.zk {
            Some(url) => {
                let (servers, path) = parse_zk_url(url)?;
                Election::zookeeper(
                    ZkGroup {
                        servers,
                        path,
                        prefix: "json.info_".into(),
                        marker: "json.info_".into(),
                        session_timeout: cfg.zk_session_timeout,
                    },
                    Some(info),
                )
            }
            None => Election::fixed(info),
        };
        let master = Arc::new(Self {
            cfg,
            id,
            start_time: epoch_secs(SystemTime::now()),
            started: Instant::now(),
            election,
            state: Mutex::new(MasterState::default()),
        });
        tokio::spawn(monitor(master.clone()));
        Ok(master)
    }

    fn lock(&self) -> MutexGuard<'_, MasterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn elected(&self) -> bool {
        self.election.state().elected
    }

    /// The leader's MasterInfo, if one is known.
    fn leader(&self) -> Option<Value> {
        self.election
            .state()
            .leader
            .and_then(|s| serde_json::from_str(&s).ok())
    }

    fn agent_ping_deadline(&self) -> Duration {
        self.cfg.agent_ping_timeout * self.cfg.max_agent_ping_timeouts.max(1)
    }
}

/// Keeps state in step with leadership and applies agent ping timeouts.
async fn monitor(master: Shared) {
    let mut leadership = master.election.subscribe();
    let mut was_elected = false;
    loop {
        let elected = leadership.borrow_and_update().elected;
        if elected != was_elected {
            let mut st = master.lock();
            // A new leader starts from an empty in-memory view; agents and frameworks re-register
            // (the registry's `recovered_slaves` is not simulated). Ids it hands out stay unique
            // across its terms, as a restarted Mesos master's would under a new master id: an
            // agent re-registering with its id must never meet another agent holding it.
            *st = MasterState {
                elected_time: elected.then(|| epoch_secs(SystemTime::now())),
                next_agent: st.next_agent,
                next_framework: st.next_framework,
                term: st.term + u64::from(elected),
                ..MasterState::default()
            };
            tracing::info!(elected, master_id = %master.id, "Master leadership changed");
            was_elected = elected;
        }
        {
            let mut st = master.lock();
            let now = Instant::now();
            let ping = master.cfg.agent_ping_timeout;
            let deadline = master.agent_ping_deadline();
            let mut removed = Vec::new();
            for agent in st.agents.values_mut() {
                let silent = now.duration_since(agent.last_heartbeat);
                if silent >= deadline {
                    removed.push(agent.id.clone());
                } else if silent >= ping && agent.active {
                    agent.active = false;
                    tracing::info!(agent_id = %agent.id, "Agent disconnected: deactivated");
                }
            }
            for id in removed {
                st.agents.remove(&id);
                st.unreachable += 1;
                tracing::info!(agent_id = %id, "Agent missed too many pings: removed");
            }
        }
        tokio::select! {
            _ = leadership.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The 307 a non-leader answers with: protocol-relative `//host:port<path>`
/// [`MES@HEAD:MS/http.cpp#redirect`].
fn redirect_to(leader: &Value, path_and_query: &str) -> Response {
    let host = leader["hostname"].as_str().unwrap_or_default();
    let port = leader["port"].as_u64().unwrap_or_default();
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, format!("//{host}:{port}{path_and_query}"))],
    )
        .into_response()
}

/// [≥1.0] non-leaders redirect to the leader or answer 503 [`MES@HEAD:MS/http.cpp#state` `if
/// (!master->elected()) return redirect(request)`]; [0.28] they serve their own view.
fn gate(m: &Master, uri: &Uri) -> Option<Response> {
    if !m.cfg.profile.current() || m.elected() {
        return None;
    }
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Some(match m.leader() {
        Some(l) => redirect_to(&l, pq),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
    })
}

fn ranges_of_tasks(tasks: &[&TaskReport]) -> Bundle {
    tasks
        .iter()
        .fold(Bundle::default(), |acc, t| acc.plus(&t.resources))
}

fn live(state: &str) -> bool {
    matches!(
        state,
        "TASK_STAGING" | "TASK_STARTING" | "TASK_RUNNING" | "TASK_KILLING"
    )
}

impl MasterState {
    fn live_tasks_on(&self, agent_id: &str) -> Vec<&TaskReport> {
        self.frameworks
            .values()
            .flat_map(|f| f.sync.tasks.iter())
            .filter(|t| t.agent_id == agent_id && live(&t.state))
            .collect()
    }

    fn machine_mode(&self, hostname: &str, ip: &str) -> Option<&'static str> {
        let key = (hostname.to_lowercase(), ip.to_string());
        if self.down.contains(&key) {
            return Some("DOWN");
        }
        let scheduled = self.schedule.iter().any(|w| {
            w["machine_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| machine_key(m) == key)
        });
        scheduled.then_some("DRAINING")
    }
}

fn machine_key(m: &Value) -> (String, String) {
    (
        m["hostname"].as_str().unwrap_or_default().to_lowercase(),
        m["ip"].as_str().unwrap_or_default().to_string(),
    )
}

fn agent_json(m: &Master, st: &MasterState, a: &Agent, full: bool) -> Value {
    let gpus = m.cfg.profile.current();
    let used = ranges_of_tasks(&st.live_tasks_on(&a.id));
    let mut reserved = Map::new();
    for (role, b) in &a.reg.resources.0 {
        if role != DEFAULT_ROLE {
            reserved.insert(role.clone(), b.to_json(gpus));
        }
    }
    let unreserved = a
        .reg
        .resources
        .0
        .get(DEFAULT_ROLE)
        .cloned()
        .unwrap_or_default();
    let mut o = json!({
        "id": a.id,
        "pid": format!("slave(1)@{}:{}", a.reg.ip, a.reg.port),
        "hostname": a.reg.hostname,
        "registered_time": a.registered_time,
        "resources": a.reg.resources.total().to_json(gpus),
        "used_resources": used.to_json(gpus),
        "offered_resources": Bundle::default().to_json(gpus),
        "reserved_resources": reserved,
        "unreserved_resources": unreserved.to_json(gpus),
        "attributes": attributes_json(&a.reg.attributes),
        "active": a.active,
        "version": a.reg.version,
    });
    if let Some(t) = a.reregistered_time {
        o["reregistered_time"] = json!(t);
    }
    if m.cfg.profile.current() {
        o["port"] = json!(a.reg.port);
        o["deactivated"] = json!(false);
        o["capabilities"] = json!(["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]);
    }
    if full {
        // `/slaves` adds the Resource-proto forms [`MES@HEAD:MS/readonly_handler.cpp#SlavesWriter`].
        o["used_resources_full"] = json!(resource_protos(&used, DEFAULT_ROLE));
        o["offered_resources_full"] = json!([]);
        let reserved_full: Map<String, Value> = a
            .reg
            .resources
            .0
            .iter()
            .filter(|(r, _)| r.as_str() != DEFAULT_ROLE)
            .map(|(r, b)| (r.clone(), json!(resource_protos(b, r))))
            .collect();
        o["reserved_resources_full"] = Value::Object(reserved_full);
        if m.cfg.profile.current() {
            o["unreserved_resources_full"] = json!(resource_protos(&unreserved, DEFAULT_ROLE));
        }
    }
    o
}

fn resource_protos(b: &Bundle, role: &str) -> Vec<Value> {
    let mut v = Vec::new();
    for (name, value) in [("cpus", b.cpus), ("mem", b.mem), ("disk", b.disk)] {
        if value > 0.0 {
            v.push(
                json!({"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": role}),
            );
        }
    }
    if !b.ports.0.is_empty() {
        let ranges: Vec<Value> = b
            .ports
            .0
            .iter()
            .map(|(s, e)| json!({"begin": s, "end": e}))
            .collect();
        v.push(
            json!({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}, "role": role}),
        );
    }
    v
}

fn task_json(m: &Master, f: &Framework, t: &TaskReport) -> Value {
    let statuses: Vec<Value> = t
        .statuses
        .iter()
        .map(|(s, ts)| {
            let mut o = json!({"state": s, "timestamp": ts});
            if s == "TASK_RUNNING"
                && let Some(h) = t.healthy
            {
                o["healthy"] = json!(h);
            }
            o
        })
        .collect();
    let mut o = json!({
        "id": t.id,
        "name": t.name,
        "framework_id": f.id,
        "executor_id": "",
        "slave_id": t.agent_id,
        "state": t.state,
        "resources": t.resources.to_json(m.cfg.profile.current()),
        "statuses": statuses,
    });
    if m.cfg.profile.current() {
        o["role"] = json!(f.sync.role);
    }
    o
}

fn framework_json(m: &Master, f: &Framework) -> Value {
    let gpus = m.cfg.profile.current();
    let live_tasks: Vec<&TaskReport> = f.sync.tasks.iter().filter(|t| live(&t.state)).collect();
    let used = ranges_of_tasks(&live_tasks);
    let tasks: Vec<Value> = live_tasks.iter().map(|t| task_json(m, f, t)).collect();
    let completed: Vec<Value> = f
        .sync
        .tasks
        .iter()
        .filter(|t| !live(&t.state))
        .map(|t| task_json(m, f, t))
        .collect();
    let mut o = json!({
        "id": f.id,
        "name": f.sync.name,
        "pid": f.sync.pid,
        "used_resources": used.to_json(gpus),
        "offered_resources": Bundle::default().to_json(gpus),
        "capabilities": f.sync.capabilities,
        "hostname": f.sync.hostname,
        "webui_url": f.sync.webui_url,
        "active": true,
        "user": "root",
        "failover_timeout": 604800.0,
        "checkpoint": true,
        "role": f.sync.role,
        "registered_time": f.registered_time,
        "unregistered_time": 0.0,
        "resources": used.to_json(gpus),
        "tasks": tasks,
        "completed_tasks": completed,
        "offers": [],
        "executors": [],
    });
    if let Some(t) = f.reregistered_time {
        o["reregistered_time"] = json!(t);
    }
    if m.cfg.profile.current() {
        o["connected"] = json!(true);
        o["recovered"] = json!(false);
        o["unreachable_tasks"] = json!([]);
    }
    o
}

fn flags_json(m: &Master) -> Value {
    let secs = |d: Duration| format!("{}secs", d.as_secs_f64());
    let (ping_key, max_key) = if m.cfg.profile.current() {
        ("agent_ping_timeout", "max_agent_ping_timeouts")
    } else {
        ("slave_ping_timeout", "max_slave_ping_timeouts")
    };
    let mut f = json!({
        "hostname": m.cfg.hostname,
        "ip": m.cfg.addr.ip().to_string(),
        "port": m.cfg.addr.port().to_string(),
        "quorum": m.cfg.quorum.unwrap_or(1).to_string(),
        "registry": if m.cfg.zk.is_some() { "replicated_log" } else { "in_memory" },
        "zk_session_timeout": secs(m.cfg.zk_session_timeout),
        "authenticate_http": "false",
    });
    f[ping_key] = json!(secs(m.cfg.agent_ping_timeout));
    f[max_key] = json!(m.cfg.max_agent_ping_timeouts.to_string());
    if let Some(zk) = &m.cfg.zk {
        f["zk"] = json!(zk);
    }
    f
}

async fn state(State(m): State<Shared>, uri: Uri) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let st = m.lock();
    let current = m.cfg.profile.current();
    let info = master_info(&m.id, &m.cfg);
    let mut o = json!({
        "version": m.cfg.profile.version(),
        "build_date": "2016-05-05 17:07:04",
        "build_time": 1_462_468_024.0,
        "build_user": "root",
        "start_time": m.start_time,
        "id": m.id,
        "pid": info["pid"],
        "hostname": m.cfg.hostname,
        "activated_slaves": st.agents.values().filter(|a| a.active).count() as f64,
        "deactivated_slaves": st.agents.values().filter(|a| !a.active).count() as f64,
        "flags": flags_json(&m),
        "slaves": st.agents.values().map(|a| agent_json(&m, &st, a, false)).collect::<Vec<_>>(),
        "frameworks": st.frameworks.values().map(|f| framework_json(&m, f)).collect::<Vec<_>>(),
        "completed_frameworks": [],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    if let Some(t) = st.elected_time {
        o["elected_time"] = json!(t);
    }
    if let Some(l) = m.leader() {
        o["leader"] = l["pid"].clone();
        if current {
            o["leader_info"] = json!({"id": l["id"], "pid": l["pid"], "port": l["port"], "hostname": l["hostname"]});
        }
    }
    if current {
        o["unreachable_slaves"] = json!(st.unreachable as f64);
        o["capabilities"] = json!(["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"]);
        o["recovered_slaves"] = json!([]);
    }
    Json(o).into_response()
}

async fn slaves(State(m): State<Shared>, uri: Uri) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let st = m.lock();
    let wanted = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("slave_id="))
            .map(str::to_string)
    });
    let list: Vec<Value> = st
        .agents
        .values()
        .filter(|a| wanted.as_ref().is_none_or(|w| *w == a.id))
        .map(|a| agent_json(&m, &st, a, true))
        .collect();
    let mut o = json!({"slaves": list});
    if m.cfg.profile.current() {
        o["recovered_slaves"] = json!([]);
    }
    Json(o).into_response()
}

async fn frameworks(State(m): State<Shared>, uri: Uri) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let st = m.lock();
    let list: Vec<Value> = st
        .frameworks
        .values()
        .map(|f| framework_json(&m, f))
        .collect();
    Json(json!({"frameworks": list, "completed_frameworks": [], "unregistered_frameworks": []}))
        .into_response()
}

async fn tasks(State(m): State<Shared>, uri: Uri) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let st = m.lock();
    let list: Vec<Value> = st
        .frameworks
        .values()
        .flat_map(|f| f.sync.tasks.iter().map(|t| task_json(&m, f, t)))
        .collect();
    Json(json!({"tasks": list})).into_response()
}

async fn health() -> StatusCode {
    StatusCode::OK
}

/// [≥1.0] 307 to the leader or 503; the leader redirects to itself. [0.28] never 503: with no
/// leader it redirects to itself [`MES@HEAD:MS/http.cpp#redirect:1746-1800`; `MES@0.28.1:MS/http.cpp#redirect`].
async fn redirect(State(m): State<Shared>) -> Response {
    match m.leader() {
        Some(l) => redirect_to(&l, ""),
        None if m.cfg.profile.current() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected")
        }
        None => redirect_to(&master_info(&m.id, &m.cfg), ""),
    }
}

async fn metrics(State(m): State<Shared>) -> Json<Value> {
    let st = m.lock();
    let total = st.agents.values().fold(Bundle::default(), |acc, a| {
        acc.plus(&a.reg.resources.total())
    });
    let all_tasks: Vec<&TaskReport> = st
        .frameworks
        .values()
        .flat_map(|f| f.sync.tasks.iter())
        .collect();
    let used = ranges_of_tasks(
        &all_tasks
            .iter()
            .copied()
            .filter(|t| live(&t.state))
            .collect::<Vec<_>>(),
    );
    let count = |s: &str| all_tasks.iter().filter(|t| t.state == s).count() as f64;
    let pct = |u: f64, t: f64| if t > 0.0 { u / t } else { 0.0 };
    let active = st.agents.values().filter(|a| a.active).count() as f64;
    let inactive = st.agents.len() as f64 - active;
    let mut o = json!({
        "master/elected": if m.elected() { 1.0 } else { 0.0 },
        "master/uptime_secs": m.started.elapsed().as_secs_f64(),
        "master/slaves_active": active,
        "master/slaves_inactive": inactive,
        "master/slaves_connected": active,
        "master/slaves_disconnected": inactive,
        "master/frameworks_active": st.frameworks.len() as f64,
        "master/frameworks_inactive": 0.0,
        "master/frameworks_connected": st.frameworks.len() as f64,
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
        "master/cpus_percent": pct(used.cpus, total.cpus),
        "master/mem_total": total.mem,
        "master/mem_used": used.mem,
        "master/mem_percent": pct(used.mem, total.mem),
        "master/disk_total": total.disk,
        "master/disk_used": used.disk,
        "master/disk_percent": pct(used.disk, total.disk),
        "master/outstanding_offers": 0.0,
    });
    if m.cfg.profile.current() {
        o["master/slaves_unreachable"] = json!(st.unreachable as f64);
        o["master/tasks_unreachable"] = json!(0.0);
        o["master/gpus_total"] = json!(0.0);
        o["master/gpus_used"] = json!(0.0);
        o["master/gpus_percent"] = json!(0.0);
    }
    Json(o)
}

async fn get_schedule(State(m): State<Shared>, uri: Uri) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let st = m.lock();
    // An empty repeated field is omitted by JSON::protobuf, so no windows renders as `{}`.
    if st.schedule.is_empty() {
        Json(json!({})).into_response()
    } else {
        Json(json!({"windows": st.schedule})).into_response()
    }
}

/// Validates a Schedule like `MES@HEAD:MS/maintenance.cpp` `validation::schedule`.
fn validate_schedule(
    body: &Value,
    down: &BTreeSet<(String, String)>,
) -> Result<Vec<Value>, String> {
    let windows = match body.get("windows") {
        None => Vec::new(),
        Some(Value::Array(w)) => w.clone(),
        Some(_) => {
            return Err(
                "Failed to convert JSON into Schedule protobuf: 'windows' is not an array".into(),
            );
        }
    };
    let mut seen = BTreeSet::new();
    for w in &windows {
        let machines = w["machine_ids"].as_array().cloned().unwrap_or_default();
        if machines.is_empty() {
            return Err("List of machines in the maintenance window is empty".into());
        }
        for mid in &machines {
            let (h, ip) = machine_key(mid);
            if h.is_empty() && ip.is_empty() {
                return Err("Both 'hostname' and 'ip' for a machine are empty".into());
            }
            if !seen.insert((h, ip)) {
                return Err(format!(
                    "Machine '{mid}' appears more than once in the schedule"
                ));
            }
        }
        if w["unavailability"]["duration"]["nanoseconds"]
            .as_i64()
            .unwrap_or(0)
            < 0
        {
            return Err("Unavailability 'duration' is negative".into());
        }
    }
    if let Some((h, ip)) = down.iter().find(|k| !seen.contains(*k)) {
        return Err(format!(
            "Machine '{}' is deactivated and cannot be removed from the schedule",
            json!({"hostname": h, "ip": ip})
        ));
    }
    Ok(windows)
}

async fn post_schedule(State(m): State<Shared>, uri: Uri, body: String) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let parsed: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Failed to parse body into JSON: {e}"),
            );
        }
    };
    let mut st = m.lock();
    match validate_schedule(&parsed, &st.down) {
        Ok(windows) => {
            st.schedule = windows;
            tracing::info!(windows = st.schedule.len(), "Updated maintenance schedule");
            StatusCode::OK.into_response()
        }
        Err(e) => text(StatusCode::BAD_REQUEST, &e),
    }
}

async fn maintenance_status(State(m): State<Shared>, uri: Uri) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let st = m.lock();
    let mut draining = Vec::new();
    for w in &st.schedule {
        for mid in w["machine_ids"].as_array().into_iter().flatten() {
            if !st.down.contains(&machine_key(mid)) {
                draining.push(json!({"id": mid}));
            }
        }
    }
    let down: Vec<Value> = st.down.iter().map(|(h, ip)| machine_json(h, ip)).collect();
    let mut o = Map::new();
    if !draining.is_empty() {
        o.insert("draining_machines".into(), json!(draining));
    }
    if !down.is_empty() {
        o.insert("down_machines".into(), json!(down));
    }
    Json(Value::Object(o)).into_response()
}

fn machine_json(h: &str, ip: &str) -> Value {
    let mut o = Map::new();
    if !h.is_empty() {
        o.insert("hostname".into(), json!(h));
    }
    if !ip.is_empty() {
        o.insert("ip".into(), json!(ip));
    }
    Value::Object(o)
}

fn parse_machines(body: &str) -> Result<Vec<(String, String)>, Box<Response>> {
    let v: Value = serde_json::from_str(body).map_err(|e| {
        Box::new(text(
            StatusCode::BAD_REQUEST,
            &format!("Failed to parse body into JSON: {e}"),
        ))
    })?;
    let arr = v.as_array().ok_or_else(|| {
        Box::new(text(
            StatusCode::BAD_REQUEST,
            "Failed to convert JSON into MachineIDs protobuf: not an array",
        ))
    })?;
    Ok(arr.iter().map(machine_key).collect())
}

async fn machine_down(State(m): State<Shared>, uri: Uri, body: String) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let machines = match parse_machines(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut st = m.lock();
    for (h, ip) in &machines {
        match st.machine_mode(h, ip) {
            Some("DRAINING") => {}
            Some(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Machine '{}' is not in DRAINING mode and cannot be brought down",
                        machine_json(h, ip)
                    ),
                );
            }
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Machine '{}' is not part of a maintenance schedule",
                        machine_json(h, ip)
                    ),
                );
            }
        }
    }
    for key in machines {
        st.down.insert(key.clone());
        // Agents on a DOWN machine are told to shut down [`MES@HEAD:MS/http.cpp#_startMaintenance`].
        let gone: Vec<String> = st
            .agents
            .values()
            .filter(|a| (a.reg.hostname.to_lowercase(), a.reg.ip.clone()) == key)
            .map(|a| a.id.clone())
            .collect();
        for id in gone {
            st.agents.remove(&id);
            tracing::info!(agent_id = %id, "Shut down agent on DOWN machine");
        }
    }
    StatusCode::OK.into_response()
}

async fn machine_up(State(m): State<Shared>, uri: Uri, body: String) -> Response {
    if let Some(r) = gate(&m, &uri) {
        return r;
    }
    let machines = match parse_machines(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut st = m.lock();
    if let Some((h, ip)) = machines.iter().find(|k| !st.down.contains(*k)) {
        return text(
            StatusCode::BAD_REQUEST,
            &format!(
                "Machine '{}' is not in DOWN mode and cannot be brought up",
                machine_json(h, ip)
            ),
        );
    }
    for key in &machines {
        st.down.remove(key);
    }
    // Machines brought up are removed from the schedule [`MES@HEAD:MS/http.cpp#_stopMaintenance`].
    let schedule = std::mem::take(&mut st.schedule);
    st.schedule = schedule
        .into_iter()
        .filter_map(|mut w| {
            let kept: Vec<Value> = w["machine_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|mid| !machines.contains(&machine_key(mid)))
                .cloned()
                .collect();
            (!kept.is_empty()).then(|| {
                w["machine_ids"] = json!(kept);
                w
            })
        })
        .collect();
    StatusCode::OK.into_response()
}

async fn version(State(m): State<Shared>) -> Json<Value> {
    Json(
        json!({"version": m.cfg.profile.version(), "build_user": "root", "build_date": "2016-05-05 17:07:04", "build_time": 1_462_468_024.0}),
    )
}

fn not_leader(m: &Master) -> Response {
    match m.leader() {
        Some(l) => (StatusCode::CONFLICT, Json(json!({"leader": l}))).into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
    }
}

async fn register_agent(State(m): State<Shared>, Json(reg): Json<RegisterAgent>) -> Response {
    if !m.elected() {
        return not_leader(&m);
    }
    let mut st = m.lock();
    if st.machine_mode(&reg.hostname, &reg.ip) == Some("DOWN") {
        return text(
            StatusCode::FORBIDDEN,
            "Agent attempted to register while its machine is DOWN",
        );
    }
    let now = epoch_secs(SystemTime::now());
    let known = reg.id.clone().filter(|id| st.agents.contains_key(id));
    let id = match (known, reg.id.clone()) {
        (Some(id), _) => id,
        (None, Some(id)) => {
            // Re-registration with a master that does not know the agent (failover).
            st.agents.insert(
                id.clone(),
                Agent {
                    reg: reg.clone(),
                    id: id.clone(),
                    registered_time: now,
                    reregistered_time: Some(now),
                    last_heartbeat: Instant::now(),
                    active: true,
                },
            );
            tracing::info!(agent_id = %id, hostname = %reg.hostname, "Re-registered agent");
            return Json(Registered { id }).into_response();
        }
        (None, None) => {
            let id = format!("{}-S{}", m.id, st.next_agent);
            st.next_agent += 1;
            st.agents.insert(
                id.clone(),
                Agent {
                    reg: reg.clone(),
                    id: id.clone(),
                    registered_time: now,
                    reregistered_time: None,
                    last_heartbeat: Instant::now(),
                    active: true,
                },
            );
            tracing::info!(agent_id = %id, hostname = %reg.hostname, "Registered agent");
            return Json(Registered { id }).into_response();
        }
    };
    if let Some(a) = st.agents.get_mut(&id) {
        a.reg = reg;
        a.reregistered_time = Some(now);
        a.last_heartbeat = Instant::now();
        a.active = true;
    }
    Json(Registered { id }).into_response()
}

async fn heartbeat(State(m): State<Shared>, Json(hb): Json<Heartbeat>) -> Response {
    if !m.elected() {
        return not_leader(&m);
    }
    let mut st = m.lock();
    match st.agents.get_mut(&hb.id) {
        Some(a) => {
            a.last_heartbeat = Instant::now();
            if !a.active {
                a.active = true;
                tracing::info!(agent_id = %hb.id, "Agent reconnected: reactivated");
            }
            Json(json!({})).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn framework_sync(State(m): State<Shared>, Json(sync): Json<FrameworkSync>) -> Response {
    if !m.elected() {
        return not_leader(&m);
    }
    let mut st = m.lock();
    let now = epoch_secs(SystemTime::now());
    let id = match sync.id.clone() {
        Some(id) => id,
        None => {
            let id = format!("{}-{:04}", m.id, st.next_framework);
            st.next_framework += 1;
            tracing::info!(framework_id = %id, name = %sync.name, "Registered framework");
            id
        }
    };
    match st.frameworks.get_mut(&id) {
        Some(f) => f.sync = sync,
        None => {
            let rereg = sync.id.is_some().then_some(now);
            st.frameworks.insert(
                id.clone(),
                Framework {
                    sync,
                    id: id.clone(),
                    registered_time: now,
                    reregistered_time: rereg,
                },
            );
        }
    }
    let agents = st
        .agents
        .values()
        .map(|a| OfferedAgent {
            id: a.id.clone(),
            hostname: a.reg.hostname.clone(),
            resources: a.reg.resources.clone(),
            attributes: a.reg.attributes.clone(),
            active: a.active,
            draining: st.machine_mode(&a.reg.hostname, &a.reg.ip) == Some("DRAINING"),
        })
        .collect();
    Json(SyncReply {
        framework_id: id,
        agents,
        master_term: st.term,
    })
    .into_response()
}

async fn admin_deregister(State(m): State<Shared>, Path(id): Path<String>) -> StatusCode {
    let mut st = m.lock();
    match st.agents.remove(&id) {
        Some(_) => {
            tracing::info!(agent_id = %id, "Deregistered agent (admin)");
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn admin_drop(State(m): State<Shared>, Json(req): Json<DropLeadership>) -> StatusCode {
    m.election.abdicate(Duration::from_millis(req.for_ms)).await;
    StatusCode::NO_CONTENT
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// The master's router (upstream endpoints under both `/X` and `/master/X`, plus the internal protocol).
pub fn router(master: Shared) -> Router {
    let mut r = Router::new();
    for prefix in ["", "/master"] {
        r = r
            .route(&format!("{prefix}/state"), get(state))
            .route(&format!("{prefix}/state.json"), get(state))
            .route(&format!("{prefix}/slaves"), get(slaves))
            .route(&format!("{prefix}/frameworks"), get(frameworks))
            .route(&format!("{prefix}/tasks"), get(tasks))
            .route(&format!("{prefix}/tasks.json"), get(tasks))
            .route(&format!("{prefix}/health"), get(health))
            .route(&format!("{prefix}/redirect"), get(redirect))
            .route(
                &format!("{prefix}/maintenance/schedule"),
                get(get_schedule).post(post_schedule),
            )
            .route(
                &format!("{prefix}/maintenance/status"),
                get(maintenance_status),
            )
            .route(&format!("{prefix}/machine/down"), post(machine_down))
            .route(&format!("{prefix}/machine/up"), post(machine_up));
    }
    let r = r
        .route("/metrics/snapshot", get(metrics))
        .route("/version", get(version))
        .route(&format!("{INTERNAL}/agent/register"), post(register_agent))
        .route(&format!("{INTERNAL}/agent/heartbeat"), post(heartbeat))
        .route(&format!("{INTERNAL}/framework/sync"), post(framework_sync))
        .fallback(not_found)
        .with_state(master.clone());
    let admin = master.cfg.admin.then(|| {
        Router::new()
            .route("/__sim/agents/{id}/deregister", post(admin_deregister))
            .route("/__sim/leadership/drop", post(admin_drop))
            .with_state(master.clone())
    });
    with_admin(r, admin)
}

/// Runs a master on `listener` until the process ends.
pub async fn run(cfg: MasterConfig, listener: tokio::net::TcpListener) -> Result<(), Error> {
    let master = Master::start(cfg)?;
    server::serve(listener, router(master)).await
}
