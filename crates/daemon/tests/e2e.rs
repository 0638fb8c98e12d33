//! End to end: the `converged` binary brings the whole example cluster up in the sandbox set-up
//! (moto, three SSH test hosts, real ZooKeeper, simulated Mesos and Marathon), then survives
//! edits, a broken edit, changes behind its back and a restart.

use std::path::Path;
use std::time::Duration;

use converged_testkit::sandbox::{Sandbox, all_in_sync};
use converged_testkit::sim_binary;
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(240);

const LIVE_INSTANCES: &str = "r = ec2.describe_instances(Filters=[{'Name': 'tag:converged:cluster', 'Values': ['clickcount']}])\nprint(sorted(i['InstanceId'] + ' ' + [t['Value'] for t in i['Tags'] if t['Key'] == 'converged:node'][0] for res in r['Reservations'] for i in res['Instances'] if i['State']['Name'] not in ('terminated', 'shutting-down')))";

fn resource<'a>(status: &'a Value, kind: &str, name: &str) -> &'a Value {
    status["resources"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["kind"] == kind && r["name"] == name))
        .unwrap_or(&Value::Null)
}

fn actions_applied(sandbox: &Sandbox) -> f64 {
    let metrics = reqwest::blocking::get(format!("{}/metrics", sandbox.base_url))
        .and_then(|r| r.text())
        .unwrap_or_default();
    metrics
        .lines()
        .filter(|l| l.starts_with("converged_actions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn reconcile_and_wait_two_cycles(sandbox: &Sandbox) {
    let number = sandbox
        .status()
        .map(|s| s["last_cycle"]["number"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/v1/reconcile", sandbox.base_url))
        .bearer_auth(sandbox.token())
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    sandbox.wait_for("two more cycles", Duration::from_secs(60), |s| {
        s["last_cycle"]["number"].as_u64().unwrap_or(0) >= number + 2
    });
}

fn marathon_app(id: &str) -> Value {
    reqwest::blocking::get(format!("http://127.0.30.1:8080/v2/apps{id}"))
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn edit_app(sandbox: &Sandbox, file: &str, edit: impl FnOnce(&mut Value)) {
    let path = sandbox.desired.join("apps").join(file);
    let mut app: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut app);
    std::fs::write(path, serde_json::to_string_pretty(&app).unwrap()).unwrap();
}

#[test]
fn the_example_cluster_converges_and_stays_converged() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut sandbox = Sandbox::start(
        &workspace,
        Path::new(env!("CARGO_BIN_EXE_converged")),
        &sim_binary(),
    );

    // 1. From nothing to fully converged, then a cycle with zero writes anywhere.
    sandbox.wait_for("all in sync", CONVERGE, all_in_sync);
    let applied = actions_applied(&sandbox);
    reconcile_and_wait_two_cycles(&sandbox);
    assert_eq!(
        actions_applied(&sandbox),
        applied,
        "a converged world sees no action"
    );
    let instances = sandbox.aws(LIVE_INSTANCES);
    assert_eq!(instances.matches("i-").count(), 3, "{instances}");

    // 2. Edits: scale click-count production to 2 and bump the gitlab image.
    edit_app(&sandbox, "click-count-production.json", |app| {
        app["instances"] = 2.into()
    });
    edit_app(&sandbox, "gitlab.json", |app| {
        app["container"]["docker"]["image"] = "gitlab/gitlab-ce:8.9.0-ce.0".into();
    });
    sandbox.wait_for("the edits applied", CONVERGE, |s| {
        all_in_sync(s)
            && resource(s, "marathon_app", "/click-count/production")["last_action"]["verb"]
                == "scale"
    });
    assert_eq!(
        marathon_app("/click-count/production")["app"]["instances"],
        2
    );
    assert_eq!(
        marathon_app("/gitlab")["app"]["container"]["docker"]["image"],
        "gitlab/gitlab-ce:8.9.0-ce.0"
    );

    // 3. Behind converged's back: a deleted record is restored, a terminated instance recreated.
    sandbox.aws("name = 'gitlab.clickcount.example.org.'\nrs = [r for r in r53.list_resource_record_sets(HostedZoneId=zone)['ResourceRecordSets'] if r['Name'] == name and r['Type'] == 'A'][0]\nr53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={'Changes': [{'Action': 'DELETE', 'ResourceRecordSet': rs}]})",
    );
    let staging = instances
        .split('\'')
        .find(|entry| entry.ends_with(" staging"))
        .and_then(|entry| entry.split(' ').next())
        .expect("the staging instance")
        .to_owned();
    // The staging machine is lost with its instance: its processes and its disk are gone.
    let staging_host = 1;
    let zookeeper_id = |sandbox: &Sandbox| {
        std::fs::read_to_string(sandbox.hosts.path(staging_host, "zookeeper/data/myid"))
            .map(|id| id.trim().to_owned())
    };
    let id_before = zookeeper_id(&sandbox).expect("staging's ZooKeeper myid");
    sandbox.aws(&format!(
        "ec2.terminate_instances(InstanceIds=['{staging}'])"
    ));
    sandbox.hosts.lose(staging_host).unwrap();
    let lost = sandbox.wait_for("the lost host reported", CONVERGE, |s| {
        let service = resource(s, "host_service", "staging/mesos-agent");
        service["condition"] == "failed" && service["next_retry"].is_string()
    });
    let service = resource(&lost, "host_service", "staging/mesos-agent");
    assert_eq!(service["last_error"]["class"], "transient", "{service:#}");
    assert!(
        service["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("staging"),
        "the reason names the host: {service:#}"
    );
    assert_eq!(
        resource(&lost, "host_service", "production/mesos-agent")["condition"],
        "in_sync",
        "other hosts unaffected"
    );
    sandbox.hosts.launch(staging_host).unwrap();
    reconcile_and_wait_two_cycles(&sandbox);
    let healed = sandbox.wait_for(
        "the record, the instance and the host back",
        CONVERGE,
        |s| all_in_sync(s) && marathon_app("/click-count/staging")["app"]["tasksRunning"] == 1,
    );
    for service in ["zookeeper", "mesos-master", "mesos-agent", "marathon"] {
        let status = resource(&healed, "host_service", &format!("staging/{service}"));
        assert_eq!(
            status["last_action"]["verb"], "start",
            "reinstalled over SSH: {status:#}"
        );
    }
    assert_eq!(
        zookeeper_id(&sandbox).expect("myid rewritten"),
        id_before,
        "the ensemble healed with the same id for staging"
    );
    assert_eq!(
        resource(&healed, "mesos_agent", "staging")["condition"],
        "in_sync"
    );
    let restored = sandbox.aws("print([r['Name'] for r in r53.list_resource_record_sets(HostedZoneId=zone)['ResourceRecordSets'] if r['Type'] == 'A'])",
    );
    assert!(
        restored.contains("gitlab.clickcount.example.org."),
        "{restored}"
    );
    let after = sandbox.aws(LIVE_INSTANCES);
    assert_eq!(after.matches("i-").count(), 3, "{after}");
    assert!(
        !after.contains(&staging),
        "staging runs on a new instance: {after}"
    );

    // 4. A broken edit changes nothing and is reported with file and line; fixing it resumes.
    let gitlab = sandbox.desired.join("apps/gitlab.json");
    let good = std::fs::read_to_string(&gitlab).unwrap();
    std::fs::write(&gitlab, "{\n  \"id\": \"/gitlab\",\n  \"mem\": ,\n}\n").unwrap();
    let invalid = sandbox.wait_for("the broken file reported", Duration::from_secs(60), |s| {
        s["desired_state"]["valid"] == false
    });
    let problem = &invalid["desired_state"]["errors"][0];
    assert_eq!(problem["file"], "apps/gitlab.json");
    assert_eq!(problem["line"], 3);
    let metrics = reqwest::blocking::get(format!("{}/metrics", sandbox.base_url))
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("converged_desired_state_valid 0"));
    assert!(all_in_sync(&invalid), "the last good state stays in force");
    std::fs::write(&gitlab, good).unwrap();
    sandbox.wait_for("the fix picked up", Duration::from_secs(60), |s| {
        s["desired_state"]["valid"] == true
    });

    // 5. SIGTERM in the middle of converging, then a restart: nothing duplicated or lost.
    edit_app(&sandbox, "gitlab-runner.json", |app| {
        app["instances"] = 2.into()
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(sandbox.stop_daemon(), Some(0), "SIGTERM drains and exits 0");
    edit_app(&sandbox, "mesos-ui.json", |app| app["instances"] = 2.into());
    let (code, plan) = sandbox.plan();
    assert_eq!(code, Some(2), "changes are pending:\n{plan}");
    assert!(plan.contains("marathon_app//mesos-ui: scale"), "{plan}");
    sandbox.start_daemon();
    sandbox.wait_for("converged again after the restart", CONVERGE, |s| {
        all_in_sync(s) && resource(s, "marathon_app", "/gitlab-runner")["condition"] == "in_sync"
    });
    assert_eq!(
        sandbox.aws(LIVE_INSTANCES).matches("i-").count(),
        3,
        "no duplicate instance"
    );
    let apps = reqwest::blocking::get("http://127.0.30.1:8080/v2/apps")
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(
        apps["apps"].as_array().map(Vec::len),
        Some(6),
        "no app lost"
    );
    for id in ["/gitlab-runner", "/mesos-ui"] {
        let started = std::time::Instant::now();
        while marathon_app(id)["app"]["instances"] != 2 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{id} never reached 2 instances in Marathon: {:#}\n/status: {:#}",
                marathon_app(id),
                resource(&sandbox.status().unwrap_or_default(), "marathon_app", id)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let (code, plan) = sandbox.plan();
    assert_eq!(code, Some(0), "nothing left to do:\n{plan}");
}
