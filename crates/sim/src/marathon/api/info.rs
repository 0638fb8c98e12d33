//! `/v2/info` [`MAR@HEAD:M/api/v2/InfoResource.scala`]: version, leadership, framework id and the
//! configuration this Marathon runs with. No I/O beyond answering.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::Shared;
use crate::marathon::app::Profile;

/// GET /v2/info.
pub(super) async fn show(State(marathon): State<Shared>) -> Json<Value> {
    let leadership = marathon.leadership();
    let config = &marathon.cfg;
    let zk = config.zk.clone();
    let mut info = json!({
        "name": "marathon",
        "version": config.profile.version(),
        "elected": leadership.elected,
        "leader": leadership.leader,
        "frameworkId": marathon.framework_id(),
        "marathon_config": {
            "master": config.master, "framework_name": "marathon", "ha": zk.is_some(), "checkpoint": true,
            "failover_timeout": 604800, "hostname": config.hostname, "local_port_min": 10000, "local_port_max": 20000,
            "executor": "//cmd", "webui_url": null, "mesos_role": config.roles.mesos_role, "mesos_user": "root",
            "task_launch_timeout": 300000, "reconciliation_initial_delay": 15000, "reconciliation_interval": 600000,
            "leader_proxy_connection_timeout_ms": 5000, "leader_proxy_read_timeout_ms": 10000,
        },
        "zookeeper_config": {"zk": zk, "zk_timeout": 10000, "zk_session_timeout": config.zk_session_timeout.as_millis() as u64, "zk_max_versions": 50},
        "http_config": {"http_port": config.addr.port(), "https_port": 8443},
    });
    match config.profile {
        Profile::V110 => info["buildref"] = json!("unknown"),
        Profile::V11 => info["event_subscriber"] = Value::Null,
    }
    Json(info)
}
