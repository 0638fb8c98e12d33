//! Leader election through a real 3-node ZooKeeper ensemble: masters publish MasterInfo in
//! `json.info_*` znodes, agents follow the leader, and killing the leader moves leadership;
//! Marathon's stored state carries over to the next leader and fences out a deposed one.
mod common;

use std::time::Duration;

use common::{agent, call, eventually, get};
use converged_sim::Error;
use converged_sim::marathon::store::StateStore;
use converged_testkit::{SimProcess, ZkEnsemble};
use serde_json::{Value, json};

async fn elected(url: &str) -> Option<bool> {
    let (s, _, v) = call("GET", &format!("{url}/metrics/snapshot"), None).await;
    (s == 200).then(|| v["master/elected"] == json!(1.0))
}

#[tokio::test]
async fn masters_elect_through_zookeeper_and_fail_over() {
    let mut zk = ZkEnsemble::start();
    let url = zk.url("/mesos");
    let args = [
        "--zk",
        url.as_str(),
        "--quorum",
        "2",
        "--zk-session-timeout",
        "2s",
        "--agent-ping-timeout",
        "300ms",
        "--max-agent-ping-timeouts",
        "3",
    ];
    let mut masters = [
        SimProcess::mesos_master("127.0.0.41:0", &args),
        SimProcess::mesos_master("127.0.0.42:0", &args),
    ];
    let _agents: Vec<SimProcess> = (0..2)
        .map(|i| {
            SimProcess::mesos_agent(
                &format!("127.0.0.{}:0", 43 + i),
                &[
                    "--master",
                    url.as_str(),
                    "--hostname",
                    &format!("node-{i}"),
                    "--heartbeat-interval",
                    "100ms",
                    "--zk-session-timeout",
                    "2s",
                ],
            )
        })
        .collect();
    let leader = eventually("a leading master", Duration::from_secs(20), || async {
        for (i, m) in masters.iter().enumerate() {
            if elected(&m.url).await == Some(true) {
                return Some(i);
            }
        }
        None
    })
    .await;
    let other = 1 - leader;
    // The znodes are the upstream ones: json.info_<seq> holding MasterInfo JSON.
    let client = zookeeper_client::Client::connect(&zk.connect_string())
        .await
        .unwrap();
    let children = client.list_children("/mesos").await.unwrap();
    assert_eq!(children.len(), 2, "{children:?}");
    assert!(
        children
            .iter()
            .all(|c| c.starts_with("json.info_") && c.len() == "json.info_".len() + 10)
    );
    let mut sorted = children.clone();
    sorted.sort();
    let (data, _) = client
        .get_data(&format!("/mesos/{}", sorted[0]))
        .await
        .unwrap();
    let info: Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        info["pid"],
        format!("master@{}", masters[leader].addr).as_str()
    );
    // Agents register with the leader; the standby redirects.
    let state = eventually("agents on the leader", Duration::from_secs(10), || async {
        let (_, _, s) = call(
            "GET",
            &format!("{}/master/state", masters[leader].url),
            None,
        )
        .await;
        (s["slaves"].as_array().map(Vec::len) == Some(2)).then_some(s)
    })
    .await;
    let ids: Vec<Value> = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    let (s, h, _) = call("GET", &format!("{}/master/state", masters[other].url), None).await;
    assert_eq!(s, 307);
    assert_eq!(
        h["location"],
        format!("//{}/master/state", masters[leader].addr).as_str()
    );
    // Kill the leader: the standby takes over and the agents re-register with their ids.
    masters[leader].kill();
    let state = eventually(
        "failover with re-registered agents",
        Duration::from_secs(20),
        || async {
            if elected(&masters[other].url).await != Some(true) {
                return None;
            }
            let (_, _, s) =
                call("GET", &format!("{}/master/state", masters[other].url), None).await;
            (s["slaves"].as_array().map(Vec::len) == Some(2)).then_some(s)
        },
    )
    .await;
    for s in state["slaves"].as_array().unwrap() {
        assert!(ids.contains(&s["id"]), "agent kept its id: {s}");
        assert!(s["reregistered_time"].is_number());
    }
    // Losing ZooKeeper quorum loses the leader. Until the surviving member notices it is alone,
    // the session can reconnect to it and the master lead again for a moment, so the leaderless
    // state is waited for as a whole.
    zk.kill_member(0);
    zk.kill_member(1);
    eventually(
        "leader lost without quorum",
        Duration::from_secs(20),
        || async {
            let (redirect, _, _) = call(
                "GET",
                &format!("{}/master/redirect", masters[other].url),
                None,
            )
            .await;
            (elected(&masters[other].url).await == Some(false) && redirect == 503).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn marathons_elect_through_curator_latch_and_standby_proxies() {
    let zk = ZkEnsemble::start_on(&["127.0.0.34", "127.0.0.35", "127.0.0.36"]).unwrap();
    let master = SimProcess::mesos_master("127.0.0.1:0", &[]);
    let _agent = agent(
        &master.url,
        "127.0.0.48",
        ("a1", "cpus:1;mem:512;ports:[31000-31010]", "rack:r1"),
    );
    let zk_url = zk.url("/marathon");
    let args = [
        "--master",
        master.url.as_str(),
        "--zk",
        zk_url.as_str(),
        "--zk-session-timeout",
        "2s",
    ];
    let mut marathons = [
        SimProcess::marathon("127.0.0.46:0", &args),
        SimProcess::marathon("127.0.0.47:0", &args),
    ];
    // `/v2/info` on a standby is proxied too (its `elected` is the leader's), so ask `/v2/leader`.
    let leader = eventually("a leading Marathon", Duration::from_secs(20), || async {
        let (s, _, v) = call("GET", &format!("{}/v2/leader", marathons[0].url), None).await;
        let addr = v["leader"].as_str().filter(|_| s == 200)?.to_string();
        marathons.iter().position(|m| m.addr.to_string() == addr)
    })
    .await;
    let standby = 1 - leader;
    let client = zookeeper_client::Client::connect(&zk.connect_string())
        .await
        .unwrap();
    let latches = client
        .list_children("/marathon/leader-curator")
        .await
        .unwrap();
    assert_eq!(latches.len(), 2);
    assert!(
        latches
            .iter()
            .all(|c| c.starts_with("_c_") && c.contains("-latch-")),
        "{latches:?}"
    );
    // A write on the standby is proxied to the leader.
    let app = json!({"id": "/via", "cmd": "sleep 1", "mem": 16, "cpus": 0.1});
    let (s, h, body) = call(
        "POST",
        &format!("{}/v2/apps", marathons[standby].url),
        Some(&app),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let via = h["x-marathon-via"].to_str().unwrap();
    assert_eq!(via, format!("1.1 {}", marathons[standby].addr));
    assert_eq!(
        h["x-marathon-leader"],
        format!("http://{}", marathons[leader].addr).as_str()
    );
    let (s, _, _) = call(
        "GET",
        &format!("{}/v2/apps/via", marathons[leader].url),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (_, _, l) = call(
        "GET",
        &format!("{}/v2/leader", marathons[standby].url),
        None,
    )
    .await;
    assert_eq!(l["leader"], marathons[leader].addr.to_string().as_str());
    let running = eventually(
        "the app's task running",
        Duration::from_secs(20),
        || async {
            let app = get(&format!("{}/v2/apps/via", marathons[leader].url)).await;
            (app["app"]["tasksRunning"] == json!(1)).then(|| app["app"]["tasks"][0]["id"].clone())
        },
    )
    .await;
    let framework = get(&format!("{}/v2/info", marathons[leader].url)).await["frameworkId"].clone();
    assert!(framework.is_string(), "registered: {framework}");
    // Killing the leader moves leadership; the new leader carries on from the state the old one
    // stored: same app, same task, same framework.
    marathons[leader].kill();
    eventually("standby elected", Duration::from_secs(20), || async {
        let (s, h, v) = call("GET", &format!("{}/v2/info", marathons[standby].url), None).await;
        (s == 200 && v["elected"] == json!(true) && h.get("x-marathon-via").is_none()).then_some(())
    })
    .await;
    let app = get(&format!("{}/v2/apps/via", marathons[standby].url)).await;
    assert_eq!(app["app"]["tasks"][0]["id"], running, "{app}");
    eventually(
        "re-registered as the same framework",
        Duration::from_secs(20),
        || async {
            let info = get(&format!("{}/v2/info", marathons[standby].url)).await;
            let frameworks = get(&format!("{}/master/frameworks", master.url)).await;
            let ids: Vec<&Value> = frameworks["frameworks"]
                .as_array()?
                .iter()
                .map(|f| &f["id"])
                .collect();
            (info["frameworkId"] == framework && ids == [&framework]).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_deposed_marathon_cannot_overwrite_what_its_successor_stored() {
    let zk = ZkEnsemble::start_on(&["127.0.0.37", "127.0.0.38", "127.0.0.39"]).unwrap();
    let store = || StateStore::new(zk.connect_string(), "/marathon", Duration::from_secs(2));
    let (deposed, successor) = (store(), store());
    assert_eq!(deposed.load().await.unwrap(), None);
    deposed.save(b"first").await.unwrap();
    assert_eq!(
        successor.load().await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    successor.save(b"second").await.unwrap();
    assert!(matches!(
        deposed.save(b"stale").await,
        Err(Error::StateSuperseded { .. })
    ));
    assert_eq!(
        store().load().await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(
        deposed.load().await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    deposed.save(b"third").await.unwrap();
}
