//! Scenario: the click-count cluster from `desired-state/apps/` converges on three agents, and
//! rolling upgrades obey upgradeStrategy on 497 MB agents.
mod common;

use std::time::Duration;

use common::{Cluster, call, deployments_done, desired_app, eventually, get};
use converged_testkit::{EXAMPLE_MARATHON_ROLES, SimProcess};
use serde_json::json;

const AGENTS: &[(&str, &str, &str)] = &[
    (
        "services",
        "cpus:4;mem:8192;disk:20000;ports(slave_public):[80-80, 8081-8081];ports(*):[31000-32000]",
        "env:services",
    ),
    (
        "staging",
        "cpus:1;mem:497;disk:20000;ports:[31000-32000]",
        "env:staging",
    ),
    (
        "production",
        "cpus:1;mem:497;disk:20000;ports:[31000-32000]",
        "env:production",
    ),
];

const APPS: &[&str] = &[
    "click-count-production",
    "click-count-staging",
    "gitlab",
    "gitlab-runner",
    "mesos-ui",
    "traefik",
];

#[tokio::test]
async fn click_count_cluster_converges_and_upgrades_obey_capacity() {
    let c = Cluster::start("1.10", AGENTS, EXAMPLE_MARATHON_ROLES);
    for name in APPS {
        let (s, _, body) = call("POST", &c.m("/v2/apps"), Some(&desired_app(name))).await;
        assert_eq!(s, 201, "{name}: {body}");
    }
    deployments_done(&c).await;
    let apps = get(&c.m("/v2/apps?embed=apps.tasks")).await;
    for app in apps["apps"].as_array().unwrap() {
        assert_eq!(app["tasksRunning"], json!(1), "{}", app["id"]);
        assert_eq!(app["tasksHealthy"], json!(1), "{}", app["id"]);
        let host = app["tasks"][0]["host"].as_str().unwrap();
        let env = app["constraints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c[0] == "env")
            .unwrap()[2]
            .clone();
        assert_eq!(
            json!(host),
            env,
            "{} placed by its env constraint",
            app["id"]
        );
    }
    let traefik = get(&c.m("/v2/apps/traefik")).await["app"].clone();
    assert_eq!(
        traefik["tasks"][0]["ports"],
        json!([80, 8081]),
        "requirePorts takes the fixed ports"
    );
    // The bridge networking of click-count is translated in the 1.10 profile.
    let staging = get(&c.m("/v2/apps/click-count/staging")).await["app"].clone();
    assert_eq!(staging["networks"], json!([{"mode": "container/bridge"}]));

    // minimumHealthCapacity 1 on a 497 MB agent: the new 300 MB task cannot start next to the old one.
    let mut upgrade = desired_app("click-count-staging");
    upgrade["container"]["docker"]["image"] =
        json!("gitlab.clickcount.example.org:5000/xebia/click-count:1.1.0");
    upgrade["upgradeStrategy"] = json!({"minimumHealthCapacity": 1, "maximumOverCapacity": 1});
    let (s, _, body) = call("PUT", &c.m("/v2/apps/click-count/staging"), Some(&upgrade)).await;
    assert_eq!(s, 200, "{body}");
    let stuck = body["deploymentId"].as_str().unwrap().to_string();
    // With 0, the old task is killed first and the upgrade completes.
    let mut upgrade = desired_app("click-count-production");
    upgrade["container"]["docker"]["image"] =
        json!("gitlab.clickcount.example.org:5000/xebia/click-count:1.1.0");
    let (s, _, body) = call(
        "PUT",
        &c.m("/v2/apps/click-count/production"),
        Some(&upgrade),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let done = body["deploymentId"].as_str().unwrap().to_string();
    eventually(
        "production upgrade to finish",
        Duration::from_secs(10),
        || async {
            let deps = get(&c.m("/v2/deployments")).await;
            (!deps.to_string().contains(&done)).then_some(())
        },
    )
    .await;
    let prod = get(&c.m("/v2/apps/click-count/production")).await["app"].clone();
    assert_eq!(prod["tasks"][0]["version"], prod["version"]);
    assert_eq!(prod["tasksHealthy"], json!(1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deps = get(&c.m("/v2/deployments")).await;
    let d = deps
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == stuck.as_str())
        .expect("staging upgrade still waiting");
    assert_eq!(d["currentActions"][0]["action"], "RestartApplication");
    let staging = get(&c.m("/v2/apps/click-count/staging")).await["app"].clone();
    assert_eq!(staging["tasksRunning"], json!(1), "old task keeps serving");
    assert_ne!(staging["tasks"][0]["version"], staging["version"]);
    let queue = get(&c.m("/v2/queue")).await;
    assert_eq!(queue["queue"][0]["app"]["id"], "/click-count/staging");
    // A killed agent's tasks are replaced elsewhere only where constraints allow: none here.
    deployments_done_or_stuck(&c, &stuck).await;
}

async fn deployments_done_or_stuck(c: &Cluster, stuck: &str) {
    let (s, _, _) = call(
        "DELETE",
        &c.m(&format!("/v2/deployments/{stuck}?force=true")),
        None,
    )
    .await;
    assert_eq!(s, 202);
    deployments_done(c).await;
}

/// A master that loses leadership and wins it back starts from an empty view, at the same
/// address. Marathon gives its agents time to re-register, as after any failover, instead of
/// declaring their tasks lost: the task keeps running under its id.
#[tokio::test]
async fn tasks_outlive_their_master_being_re_elected() {
    let master = SimProcess::mesos_master(
        "127.0.0.1:0",
        &[
            "--agent-ping-timeout",
            "2s",
            "--max-agent-ping-timeouts",
            "3",
            "--admin",
        ],
    );
    // The agent heartbeats slowly, so Marathon syncs with the re-elected master before the
    // agent is back in its list.
    let _agent = SimProcess::mesos_agent(
        "127.0.0.70:0",
        &[
            "--master",
            &master.url,
            "--hostname",
            "services",
            "--resources",
            "cpus:4;mem:8192;disk:20000;ports:[31000-32000]",
            "--heartbeat-interval",
            "1s",
        ],
    );
    let marathon = SimProcess::marathon(
        "127.0.0.1:0",
        &[
            "--master",
            &master.url,
            "--staging-delay",
            "100ms",
            "--tick",
            "50ms",
        ],
    );
    let app = json!({"id": "/sleeper", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32});
    let (s, _, body) = call("POST", &format!("{}/v2/apps", marathon.url), Some(&app)).await;
    assert_eq!(s, 201, "{body}");
    let running = |url: String| async move {
        let app = get(&url).await["app"].clone();
        (app["tasksRunning"] == 1).then(|| app["tasks"][0]["id"].clone())
    };
    let url = format!("{}/v2/apps/sleeper", marathon.url);
    let task = eventually("the task running", Duration::from_secs(10), || {
        running(url.clone())
    })
    .await;
    let (s, _, _) = call(
        "POST",
        &format!("{}/__sim/leadership/drop", master.url),
        Some(&json!({"for_ms": 200})),
    )
    .await;
    assert_eq!(s, 204);
    eventually(
        "the agent re-registered",
        Duration::from_secs(10),
        || async {
            let (_, _, state) = call("GET", &format!("{}/master/state", master.url), None).await;
            state["slaves"][0]["reregistered_time"]
                .is_number()
                .then_some(())
        },
    )
    .await;
    // Marathon syncs every 50 ms: ten syncs with the agent back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = eventually("the task running", Duration::from_secs(10), || {
        running(url.clone())
    })
    .await;
    assert_eq!(after, task, "the same task, never lost and relaunched");
}
