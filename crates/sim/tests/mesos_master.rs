//! Mesos master endpoints and agent lifecycle against real master and agent processes.
mod common;

use std::time::Duration;

use common::{MASTER_FAST, agent, call, eventually, get};
use converged_testkit::SimProcess;
use serde_json::json;

#[tokio::test]
async fn state_slaves_metrics_and_agent_timeout() {
    let master = SimProcess::mesos_master("127.0.0.1:0", MASTER_FAST);
    let mut a1 = agent(
        &master.url,
        "127.0.0.61",
        (
            "node-a",
            "cpus:1;mem:497;disk:20000;ports:[31000-32000]",
            "env:staging",
        ),
    );
    let _a2 = agent(
        &master.url,
        "127.0.0.62",
        (
            "node-b",
            "cpus:2;mem:1024;ports:[31000-31999];cpus(slave_public):1",
            "env:production",
        ),
    );
    let state = eventually("two agents", Duration::from_secs(5), || async {
        let s = get(&format!("{}/master/state", master.url)).await;
        (s["slaves"].as_array().unwrap().len() == 2).then_some(s)
    })
    .await;
    assert_eq!(state["activated_slaves"], json!(2.0));
    assert_eq!(state["version"], "1.11.0");
    assert_eq!(state["leader"], state["pid"]);
    assert!(state["elected_time"].is_number());
    let a = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["hostname"] == "node-a")
        .unwrap()
        .clone();
    assert_eq!(
        a["resources"],
        json!({"cpus": 1.0, "disk": 20000.0, "gpus": 0.0, "mem": 497.0, "ports": "[31000-32000]"})
    );
    assert_eq!(a["attributes"], json!({"env": "staging"}));
    assert_eq!(
        a["pid"],
        "slave(1)@127.0.0.61:".to_string() + &a["port"].to_string()
    );
    assert!(
        a["id"]
            .as_str()
            .unwrap()
            .starts_with(state["id"].as_str().unwrap())
    );
    let b = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["hostname"] == "node-b")
        .unwrap()
        .clone();
    assert_eq!(b["reserved_resources"]["slave_public"]["cpus"], json!(1.0));
    let slaves = get(&format!("{}/master/slaves", master.url)).await;
    assert!(slaves["slaves"][0]["used_resources_full"].is_array());
    let legacy = get(&format!("{}/state.json", master.url)).await;
    assert_eq!(legacy["id"], state["id"]);
    let (s, _, body) = call("GET", &format!("{}/master/health", master.url), None).await;
    assert_eq!((s, body), (200, serde_json::Value::Null));
    let (s, h, _) = call("GET", &format!("{}/master/redirect", master.url), None).await;
    assert_eq!(s, 307);
    assert_eq!(
        h["location"],
        format!("//127.0.0.1:{}", master.addr.port()).as_str()
    );
    let m = get(&format!("{}/metrics/snapshot", master.url)).await;
    assert_eq!(m["master/elected"], json!(1.0));
    assert_eq!(m["master/slaves_active"], json!(2.0));
    assert_eq!(m["master/mem_total"], json!(1521.0));
    // A killed agent is deactivated after the ping timeout, then removed.
    a1.kill();
    eventually("agent inactive", Duration::from_secs(5), || async {
        let s = get(&format!("{}/master/state", master.url)).await;
        s["slaves"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["hostname"] == "node-a" && s["active"] == json!(false))
            .then_some(())
    })
    .await;
    eventually("agent removed", Duration::from_secs(5), || async {
        let m = get(&format!("{}/metrics/snapshot", master.url)).await;
        (m["master/slaves_unreachable"] == json!(1.0) && m["master/slaves_active"] == json!(1.0))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn maintenance_schedule_down_and_up() {
    let master = SimProcess::mesos_master("127.0.0.1:0", MASTER_FAST);
    let _a = agent(&master.url, "127.0.0.63", ("node-m", "cpus:1;mem:497", ""));
    let base = master.url.clone();
    assert_eq!(
        get(&format!("{base}/master/maintenance/schedule")).await,
        json!({})
    );
    assert_eq!(
        get(&format!("{base}/master/maintenance/status")).await,
        json!({})
    );
    let machine = json!({"hostname": "node-m", "ip": "127.0.0.63"});
    let (s, _, body) = call(
        "POST",
        &format!("{base}/master/machine/down"),
        Some(&json!([machine])),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        body.as_str()
            .unwrap()
            .contains("is not part of a maintenance schedule")
    );
    let (s, _, body) = call(
        "POST",
        &format!("{base}/master/maintenance/schedule"),
        Some(&json!({"windows": [{"machine_ids": []}]})),
    )
    .await;
    assert_eq!(
        (s, body),
        (
            400,
            json!("List of machines in the maintenance window is empty")
        )
    );
    let schedule = json!({"windows": [{"machine_ids": [machine],
        "unavailability": {"start": {"nanoseconds": 1}, "duration": {"nanoseconds": 3_600_000_000_000u64}}}]});
    let (s, _, _) = call(
        "POST",
        &format!("{base}/master/maintenance/schedule"),
        Some(&schedule),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        get(&format!("{base}/master/maintenance/schedule")).await,
        schedule
    );
    assert_eq!(
        get(&format!("{base}/master/maintenance/status")).await,
        json!({"draining_machines": [{"id": machine}]})
    );
    let (s, _, body) = call(
        "POST",
        &format!("{base}/master/machine/up"),
        Some(&json!([machine])),
    )
    .await;
    assert_eq!(s, 400);
    assert!(body.as_str().unwrap().contains("is not in DOWN mode"));
    assert_eq!(
        call(
            "POST",
            &format!("{base}/master/machine/down"),
            Some(&json!([machine]))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get(&format!("{base}/master/maintenance/status")).await,
        json!({"down_machines": [machine]})
    );
    let state = get(&format!("{base}/master/state")).await;
    assert_eq!(
        state["slaves"],
        json!([]),
        "agents on DOWN machines are shut down"
    );
    assert_eq!(
        call(
            "POST",
            &format!("{base}/master/machine/up"),
            Some(&json!([machine]))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get(&format!("{base}/master/maintenance/schedule")).await,
        json!({})
    );
    eventually("agent back after up", Duration::from_secs(5), || async {
        let s = get(&format!("{base}/master/state")).await;
        (s["slaves"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn admin_deregister_and_leadership_drop() {
    let master = SimProcess::mesos_master("127.0.0.1:0", MASTER_FAST);
    let _a = agent(&master.url, "127.0.0.64", ("node-d", "cpus:1;mem:497", ""));
    let id = eventually("agent", Duration::from_secs(5), || async {
        get(&format!("{}/master/state", master.url)).await["slaves"][0]["id"]
            .as_str()
            .map(String::from)
    })
    .await;
    let (s, _, _) = call(
        "POST",
        &format!("{}/__sim/agents/{id}/deregister", master.url),
        None,
    )
    .await;
    assert_eq!(s, 204);
    // The agent notices (heartbeat rejected) and re-registers with its id.
    eventually("agent re-registered", Duration::from_secs(5), || async {
        let s = get(&format!("{}/master/state", master.url)).await;
        (s["slaves"][0]["id"] == id.as_str() && s["slaves"][0]["reregistered_time"].is_number())
            .then_some(())
    })
    .await;
    let (s, _, _) = call(
        "POST",
        &format!("{}/__sim/leadership/drop", master.url),
        Some(&json!({"for_ms": 800})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _, body) = call("GET", &format!("{}/master/state", master.url), None).await;
    assert_eq!((s, body), (503, json!("No leader elected")));
    let (s, _, _) = call("GET", &format!("{}/master/redirect", master.url), None).await;
    assert_eq!(s, 503);
    assert_eq!(
        get(&format!("{}/metrics/snapshot", master.url)).await["master/elected"],
        json!(0.0)
    );
    eventually("re-elected", Duration::from_secs(5), || async {
        (call("GET", &format!("{}/master/state", master.url), None)
            .await
            .0
            == 200)
            .then_some(())
    })
    .await;
    // Agent ids stay unique across the master's terms: the agent that re-registers keeps its
    // id, and one registering anew after the re-election gets another.
    let _b = agent(&master.url, "127.0.0.65", ("node-e", "cpus:1;mem:497", ""));
    let slaves = eventually("both agents", Duration::from_secs(5), || async {
        let s = get(&format!("{}/master/state", master.url)).await;
        let slaves = s["slaves"].as_array().cloned().unwrap_or_default();
        (slaves.len() == 2 && slaves.iter().all(|a| a["active"] == true)).then_some(slaves)
    })
    .await;
    let ids: Vec<&str> = slaves.iter().filter_map(|a| a["id"].as_str()).collect();
    assert!(ids.contains(&id.as_str()), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn legacy_master_serves_without_leader() {
    let mut args = MASTER_FAST.to_vec();
    args.extend(["--profile", "0.28"]);
    let master = SimProcess::mesos_master("127.0.0.1:0", &args);
    let state = get(&format!("{}/master/state.json", master.url)).await;
    assert_eq!(state["version"], "0.28.1");
    assert!(state.get("leader_info").is_none());
    assert_eq!(state["flags"]["slave_ping_timeout"], "0.3secs");
    call(
        "POST",
        &format!("{}/__sim/leadership/drop", master.url),
        Some(&json!({"for_ms": 2000})),
    )
    .await;
    // 0.28: no redirects; /redirect points at itself when no leader is known.
    let (s, _, _) = call("GET", &format!("{}/master/state", master.url), None).await;
    assert_eq!(s, 200);
    let (s, h, _) = call("GET", &format!("{}/master/redirect", master.url), None).await;
    assert_eq!(s, 307);
    assert_eq!(
        h["location"],
        format!("//127.0.0.1:{}", master.addr.port()).as_str()
    );
}
