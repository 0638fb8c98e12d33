//! Marathon REST API behaviour of the simulator against real master/agent/marathon processes.
mod common;

use std::time::Duration;

use common::{Cluster, call, deployments_done, eventually, get};
use serde_json::{Value, json};

const AGENT: (&str, &str, &str) = (
    "agent-1",
    "cpus:4;mem:4096;disk:20000;ports:[31000-32000]",
    "env:staging",
);

#[tokio::test]
async fn create_applies_1_10_defaults_and_runs() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    let (s, h, body) = call(
        "POST",
        &c.m("/v2/apps"),
        Some(&json!({"id": "web", "cmd": "sleep 100"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(h["location"], "/web");
    let plan = body["deployments"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(h["marathon-deployment-id"], plan.as_str());
    assert_eq!(body["id"], "/web");
    assert_eq!(body["cpus"], json!(1.0));
    assert_eq!(body["mem"], json!(128.0));
    assert_eq!(body["instances"], json!(1));
    assert_eq!(body["maxLaunchDelaySeconds"], json!(300));
    assert_eq!(
        body["upgradeStrategy"],
        json!({"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0})
    );
    assert_eq!(
        body["portDefinitions"],
        json!([{"port": 10000, "protocol": "tcp", "name": "default"}])
    );
    assert!(
        body.get("versionInfo").is_none(),
        "POST answer has a bare version"
    );
    assert_eq!(body["tasksStaged"], json!(0));
    // The plan is observable with the upstream step structure.
    let deps = get(&c.m("/v2/deployments")).await;
    let d = deps
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == plan.as_str())
        .expect("plan visible while staging");
    {
        assert_eq!(d["totalSteps"], json!(2));
        assert_eq!(d["steps"][0]["actions"][0]["action"], "StartApplication");
        assert_eq!(d["steps"][1]["actions"][0]["action"], "ScaleApplication");
        assert_eq!(d["affectedPods"], json!([]));
    }
    deployments_done(&c).await;
    let app = get(&c.m("/v2/apps/web")).await["app"].clone();
    assert_eq!(app["tasksRunning"], json!(1));
    assert!(app["versionInfo"]["lastConfigChangeAt"].is_string());
    let tasks = get(&c.m("/v2/tasks")).await;
    let t = &tasks["tasks"][0];
    assert!(t["id"].as_str().unwrap().starts_with("web.instance-"));
    assert_eq!(t["state"], "TASK_RUNNING");
    assert_eq!(t["host"], "agent-1");
    // The master sees Marathon's task.
    let state = get(&format!("{}/master/state", c.master.url)).await;
    assert_eq!(state["frameworks"][0]["name"], "marathon");
    assert_eq!(state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING");
    let metrics = get(&format!("{}/metrics/snapshot", c.master.url)).await;
    assert_eq!(metrics["master/tasks_running"], json!(1.0));
}

#[tokio::test]
async fn legacy_profile_renders_2016_shapes() {
    let c = Cluster::start("1.1", &[AGENT], &[]);
    let app = json!({"id": "/b", "container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE",
        "portMappings": [{"containerPort": 80}]}}});
    let (s, h, body) = call("POST", &c.m("/v2/apps"), Some(&app)).await;
    assert_eq!(s, 201, "{body}");
    assert!(
        h.get("marathon-deployment-id").is_none(),
        "1.1.1 has no deployment header"
    );
    assert_eq!(body["tasks"], json!([]));
    assert_eq!(body["maxLaunchDelaySeconds"], json!(3600));
    assert_eq!(body["container"]["docker"]["network"], "BRIDGE");
    assert_eq!(
        body["container"]["docker"]["portMappings"][0]["servicePort"],
        json!(10000)
    );
    assert_eq!(body["ports"], json!([10000]));
    assert_eq!(body["env"], json!({}));
    assert_eq!(body["ipAddress"], Value::Null);
    assert!(body.get("networks").is_none());
    let deps = get(&c.m("/v2/deployments")).await;
    {
        let d = deps
            .as_array()
            .unwrap()
            .first()
            .expect("plan visible while staging");
        assert!(
            d["steps"][0]["actions"][0].get("type").is_some(),
            "1.1.1 steps use `type`: {d}"
        );
        assert!(d.get("affectedPods").is_none());
    }
    let (s, _, body) = call("GET", &c.m("/v2/nope"), None).await;
    assert_eq!(
        (s, body),
        (404, json!({"message": "URI not found: /v2/nope"}))
    );
    // Wrong JSON types are 400 in 1.1.1.
    let (s, _, body) = call(
        "POST",
        &c.m("/v2/apps"),
        Some(&json!({"id": 5, "cmd": "x"})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(body["message"], "Invalid JSON");
}

#[tokio::test]
async fn validation_conflicts_and_not_found() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    let (s, _, body) = call(
        "POST",
        &c.m("/v2/apps"),
        Some(&json!({"id": "/x", "cmd": "a",
        "upgradeStrategy": {"minimumHealthCapacity": 1.5}})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        body,
        json!({"message": "Object is not valid", "details": [
        {"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["is greater than 1"]}]})
    );
    let (s, _, body) = call("POST", &c.m("/v2/apps"), Some(&json!({"id": "/x"}))).await;
    assert_eq!(s, 422);
    assert_eq!(
        body["details"][0]["errors"][0],
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
    );
    let (s, _, body) = call(
        "POST",
        &c.m("/v2/apps"),
        Some(&json!({"id": "/x", "cmd": "a",
        "constraints": [["hostname", "SOMETIMES"]]})),
    )
    .await;
    assert_eq!(
        (s, body["details"][0]["path"].clone()),
        (422, json!("/constraints(0)"))
    );
    let (s, _, body) = call(
        "POST",
        &c.m("/v2/apps"),
        Some(&json!({"id": "/Upper", "cmd": "a"})),
    )
    .await;
    assert_eq!((s, body["details"][0]["path"].clone()), (422, json!("/id")));
    // Malformed and empty JSON.
    let client = reqwest::Client::new();
    let r = client
        .post(c.m("/v2/apps"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Invalid JSON");
    assert!(v["details"].is_string());
    let r = client.post(c.m("/v2/apps")).body("").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Duplicate create and the lock.
    let app = json!({"id": "/big", "cmd": "a", "mem": 100000});
    assert_eq!(call("POST", &c.m("/v2/apps"), Some(&app)).await.0, 201);
    let (s, _, body) = call("POST", &c.m("/v2/apps"), Some(&app)).await;
    assert_eq!(
        (s, body),
        (
            409,
            json!({"message": "An app with id [/big] already exists."})
        )
    );
    let (s, _, body) = call("PUT", &c.m("/v2/apps/big"), Some(&json!({"cmd": "b"}))).await;
    assert_eq!(s, 409);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("App is locked by one or more deployments.")
    );
    let dep = body["deployments"][0]["id"].as_str().unwrap().to_string();
    let (s, _, body) = call(
        "PUT",
        &c.m("/v2/apps/big?force=true"),
        Some(&json!({"cmd": "b"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["deploymentId"].is_string() && body["version"].is_string());
    assert!(
        !get(&c.m("/v2/deployments"))
            .await
            .to_string()
            .contains(&dep),
        "forced update cancels the old plan"
    );
    // Unknown app / deployment.
    let (s, _, body) = call("GET", &c.m("/v2/apps/none"), None).await;
    assert_eq!(
        (s, body),
        (404, json!({"message": "App '/none' does not exist"}))
    );
    let (s, _, _) = call("DELETE", &c.m("/v2/apps/none"), None).await;
    assert_eq!(s, 404);
    let (s, _, body) = call("DELETE", &c.m("/v2/deployments/abc"), None).await;
    assert_eq!(
        (s, body),
        (404, json!({"message": "DeploymentPlan abc does not exist"}))
    );
    // DELETE defaults to force=true, so a locked app is deleted.
    let (s, _, body) = call("DELETE", &c.m("/v2/apps/big"), None).await;
    assert_eq!(s, 200, "{body}");
    let (s, _, body) = call("GET", &c.m("/v2/nope"), None).await;
    assert_eq!((s, body), (500, json!({"message": "URI not found"})));
}

#[tokio::test]
async fn updates_scale_restart_versions_and_rollback() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    let app = json!({"id": "/svc", "cmd": "a", "cpus": 0.1, "mem": 32, "labels": {"tier": "web"}});
    assert_eq!(call("POST", &c.m("/v2/apps"), Some(&app)).await.0, 201);
    deployments_done(&c).await;
    // PUT of an unknown id creates (201 + Location).
    let (s, h, _) = call(
        "PUT",
        &c.m("/v2/apps/other"),
        Some(&json!({"cmd": "z", "cpus": 0.1, "mem": 16})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(h["location"], "/other");
    deployments_done(&c).await;
    // Scale-only change: one ScaleApplication step; partial update keeps other fields.
    let (s, _, body) = call("PUT", &c.m("/v2/apps/svc"), Some(&json!({"instances": 3}))).await;
    assert_eq!(s, 200);
    let plan = body["deploymentId"].as_str().unwrap().to_string();
    let deps = get(&c.m("/v2/deployments")).await;
    {
        let d = deps
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == plan.as_str())
            .expect("plan visible while staging");
        assert_eq!(
            d["steps"],
            json!([{"actions": [{"action": "ScaleApplication", "app": "/svc"}]}])
        );
        assert_eq!(d["currentStep"], json!(1));
    }
    deployments_done(&c).await;
    let a = get(&c.m("/v2/apps/svc")).await["app"].clone();
    assert_eq!(
        (a["tasksRunning"].clone(), a["labels"].clone()),
        (json!(3), json!({"tier": "web"}))
    );
    // No-op change: still a deployment, with zero steps.
    let (s, _, _) = call("PUT", &c.m("/v2/apps/svc"), Some(&json!({"instances": 3}))).await;
    assert_eq!(s, 200);
    deployments_done(&c).await;
    // partialUpdate=false resets absent fields to defaults.
    let (s, _, _) = call(
        "PUT",
        &c.m("/v2/apps/svc?partialUpdate=false"),
        Some(&json!({"cmd": "b", "cpus": 0.1, "mem": 32})),
    )
    .await;
    assert_eq!(s, 200);
    deployments_done(&c).await;
    let a = get(&c.m("/v2/apps/svc")).await["app"].clone();
    assert_eq!(a["instances"], json!(1));
    assert!(
        a.get("labels").is_none(),
        "labels reset and omitted when empty: {a}"
    );
    let versions = get(&c.m("/v2/apps/svc/versions")).await["versions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(versions.len() >= 4);
    let first = versions.last().unwrap().as_str().unwrap().to_string();
    let old = get(&c.m(&format!("/v2/apps/svc/versions/{first}"))).await;
    assert_eq!(old["cmd"], "a");
    // Rollback through a version in the body.
    let (s, _, _) = call(
        "PUT",
        &c.m("/v2/apps/svc"),
        Some(&json!({"version": first})),
    )
    .await;
    assert_eq!(s, 200);
    deployments_done(&c).await;
    assert_eq!(get(&c.m("/v2/apps/svc")).await["app"]["cmd"], "a");
    // Restart produces a RestartApplication plan.
    let (s, _, body) = call("POST", &c.m("/v2/apps/svc/restart"), None).await;
    assert_eq!(s, 200, "{body}");
    deployments_done(&c).await;
    // Label selectors and embeds.
    let list = get(&c.m("/v2/apps?label=tier==web&embed=apps.tasks&embed=apps.counts")).await;
    let apps = list["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["tasks"].as_array().unwrap().len(), 1);
    let list = get(&c.m("/v2/apps?label=tier!=web")).await;
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);
    assert!(list["apps"][0].get("tasks").is_none());
    // Groups and the group wildcard.
    let root = get(&c.m("/v2/groups")).await;
    assert_eq!(root["id"], "/");
    assert_eq!(root["apps"].as_array().unwrap().len(), 2);
    let (s, _, _) = call("GET", &c.m("/v2/apps/nogroup/*"), None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn deployment_cancel_rolls_back_or_forces() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    let (_, _, body) = call(
        "POST",
        &c.m("/v2/apps"),
        Some(&json!({"id": "/huge", "cmd": "a", "mem": 99999})),
    )
    .await;
    let plan = body["deployments"][0]["id"].as_str().unwrap().to_string();
    // Never fits: the deployment stays and the app is queued.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let q = get(&c.m("/v2/queue")).await;
    assert_eq!(q["queue"][0]["count"], json!(1));
    assert_eq!(q["queue"][0]["app"]["id"], "/huge");
    let (s, _, body) = call("DELETE", &c.m(&format!("/v2/deployments/{plan}")), None).await;
    assert_eq!(s, 200, "rollback: {body}");
    deployments_done(&c).await;
    let (s, _, _) = call("GET", &c.m("/v2/apps/huge"), None).await;
    assert_eq!(s, 404, "rolling back a create removes the app");
    let (_, _, body) = call(
        "POST",
        &c.m("/v2/apps"),
        Some(&json!({"id": "/huge", "cmd": "a", "mem": 99999})),
    )
    .await;
    let plan = body["deployments"][0]["id"].as_str().unwrap().to_string();
    let (s, _, body) = call(
        "DELETE",
        &c.m(&format!("/v2/deployments/{plan}?force=true")),
        None,
    )
    .await;
    assert_eq!((s, body), (202, Value::Null));
    assert_eq!(call("GET", &c.m("/v2/apps/huge"), None).await.0, 200);
}

#[tokio::test]
async fn info_leader_ping_metrics() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    let info = get(&c.m("/v2/info")).await;
    assert_eq!(info["name"], "marathon");
    assert_eq!(info["elected"], json!(true));
    assert_eq!(info["version"], "1.10.26");
    eventually("framework id", Duration::from_secs(5), || async {
        get(&c.m("/v2/info")).await["frameworkId"]
            .as_str()
            .map(String::from)
    })
    .await;
    let leader = get(&c.m("/v2/leader")).await;
    assert_eq!(
        leader["leader"].as_str().unwrap(),
        c.marathon.addr.to_string()
    );
    let (s, h, body) = call("GET", &c.m("/ping"), None).await;
    assert_eq!((s, body), (200, json!("pong")));
    assert_eq!(
        h["x-marathon-leader"],
        format!("http://{}", c.marathon.addr).as_str()
    );
    let m = get(&c.m("/metrics")).await;
    assert!(m["gauges"].is_object());
}

#[tokio::test]
async fn basic_auth_guards_every_path() {
    let c = Cluster::start("1.10", &[AGENT], &["--http-credentials", "ops:secret"]);
    for path in ["/ping", "/v2/apps", "/v2/info", "/v2/leader"] {
        let (s, h, _) = call("GET", &c.m(path), None).await;
        assert_eq!(s, 401, "{path}");
        assert_eq!(h["www-authenticate"], "basic realm=\"Mesosphere\"");
    }
    let client = reqwest::Client::new();
    let r = client
        .get(c.m("/v2/apps"))
        .basic_auth("ops", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(c.m("/v2/apps"))
        .basic_auth("ops", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn health_checks_failures_and_replacement() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    let app = json!({"id": "/hc", "cmd": "a", "cpus": 0.1, "mem": 16, "backoffSeconds": 1,
        "healthChecks": [{"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 1, "intervalSeconds": 1, "maxConsecutiveFailures": 2}]});
    assert_eq!(call("POST", &c.m("/v2/apps"), Some(&app)).await.0, 201);
    deployments_done(&c).await;
    let a = get(&c.m("/v2/apps/hc")).await["app"].clone();
    assert_eq!(
        (a["tasksHealthy"].clone(), a["tasksUnhealthy"].clone()),
        (json!(1), json!(0))
    );
    let first = a["tasks"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(a["tasks"][0]["healthCheckResults"][0]["alive"], json!(true));
    // Admin: make the checks fail; the task turns unhealthy, is killed and replaced.
    let (s, _, _) = call(
        "POST",
        &c.m("/__sim/apps/hc/health"),
        Some(&json!({"healthy": false})),
    )
    .await;
    assert_eq!(s, 204);
    eventually("task replaced", Duration::from_secs(10), || async {
        let a = get(&c.m("/v2/apps/hc?embed=app.lastTaskFailure")).await["app"].clone();
        let replaced = a["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["id"] != first.as_str()) && !t.is_empty());
        (replaced && a["lastTaskFailure"]["taskId"] == first.as_str()).then_some(())
    })
    .await;
    call(
        "POST",
        &c.m("/__sim/apps/hc/health"),
        Some(&json!({"healthy": true})),
    )
    .await;
    // Admin kill: replaced after backoff.
    let t = get(&c.m("/v2/apps/hc/tasks")).await["tasks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        call("POST", &c.m(&format!("/__sim/tasks/{t}/kill")), None)
            .await
            .0,
        204
    );
    eventually("killed task replaced", Duration::from_secs(10), || async {
        let tasks = get(&c.m("/v2/apps/hc/tasks")).await["tasks"]
            .as_array()
            .unwrap()
            .clone();
        (tasks.len() == 1 && tasks[0]["id"] != t.as_str()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn admin_faults_fail_next_requests() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    let (s, _, _) = call(
        "POST",
        &c.m("/__sim/faults"),
        Some(&json!({"count": 2, "status": 503})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(call("GET", &c.m("/v2/apps"), None).await.0, 503);
    assert_eq!(call("GET", &c.m("/v2/apps"), None).await.0, 503);
    assert_eq!(call("GET", &c.m("/v2/apps"), None).await.0, 200);
    call(
        "POST",
        &c.m("/__sim/faults"),
        Some(&json!({"count": 1, "hang_ms": 300})),
    )
    .await;
    let start = std::time::Instant::now();
    assert_eq!(call("GET", &c.m("/v2/apps"), None).await.0, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
}
