//! Contract tests: simulator responses validate against the Marathon JSON schemas, and the
//! Marathon example requests are accepted and answered in the examples' shapes. Both come from
//! the fixtures in `tests/contract/` (our reduction of the upstream files, see its README), so
//! these tests run in any checkout; `contract_upstream.rs` checks the fixtures against upstream.
mod common;

use common::{Cluster, call, deployments_done, get};
use serde_json::{Value, json};

const AGENT: (&str, &str, &str) = (
    "agent-1",
    "cpus:8;mem:8192;disk:20000;ports:[31000-32000]",
    "env:staging",
);

/// One fixture of `tests/contract/`, parsed.
fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/contract/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The request body of an example fixture.
fn example_body(name: &str) -> Value {
    fixture(name)["body"].clone()
}

/// The sorted key list of a keys fixture.
fn example_keys(name: &str) -> Vec<String> {
    serde_json::from_value(fixture(name)["keys"].clone()).unwrap()
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// AppInfo minus the status fields, which the AppDefinition schema does not describe.
fn definition_part(app: &Value, extra: &[&str]) -> Value {
    let mut app = app.clone();
    let o = app.as_object_mut().unwrap();
    for k in [
        "tasksStaged",
        "tasksRunning",
        "tasksHealthy",
        "tasksUnhealthy",
        "deployments",
        "tasks",
        "lastTaskFailure",
    ] {
        o.remove(k);
    }
    for k in extra {
        o.remove(*k);
    }
    // 1.1.1 writes absent optionals as null [`MAR@1.1.1:Formats.scala#AppDefinitionWrites`], which
    // its own request schema does not allow: the schema is checked on the non-null fields.
    o.retain(|_, v| !v.is_null());
    app
}

/// Validates `instance` against a schema fixture. The fixture keeps only the top-level
/// properties the simulator answers with and `additionalProperties` stays false, so a property
/// it starts answering with fails here until its upstream schema is added to the fixture.
fn assert_valid(schema_fixture: &str, instance: &Value) {
    let schema = fixture(schema_fixture)["schema"].clone();
    // The fixtures leave out upstream's `$schema`, the unversioned
    // `http://json-schema.org/schema`: they are draft-04.
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema_fixture} rejects {instance}:\n{}",
        errors.join("\n")
    );
}

fn sample_apps() -> Vec<Value> {
    vec![
        json!({"id": "/cmd", "cmd": "sleep 100", "cpus": 0.1, "mem": 16, "labels": {"a": "b"}, "env": {"X": "1"},
               "constraints": [["hostname", "UNIQUE"]],
               "healthChecks": [{"protocol": "HTTP", "path": "/health"}, {"protocol": "TCP"},
                                {"protocol": "COMMAND", "command": {"value": "true"}}]}),
        json!({"id": "/docker/bridge", "cpus": 0.1, "mem": 16, "container": {"type": "DOCKER", "docker": {"image": "nginx",
               "network": "BRIDGE", "portMappings": [{"containerPort": 80, "hostPort": 0}]},
               "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RW"}]}}),
        json!({"id": "/docker/host", "cpus": 0.1, "mem": 16, "args": ["--x"], "uris": ["http://example.org/a.tgz"],
               "container": {"type": "DOCKER", "docker": {"image": "traefik", "network": "HOST"}},
               "portDefinitions": [{"port": 0, "name": "http"}]}),
    ]
}

async fn check_profile(profile: &str, schema: &str, extra: &[&str]) {
    let c = Cluster::start(profile, &[AGENT], &[]);
    for app in sample_apps() {
        let (s, _, body) = call("POST", &c.m("/v2/apps"), Some(&app)).await;
        assert_eq!(s, 201, "{body}");
        assert_valid(schema, &definition_part(&body, extra));
    }
    deployments_done(&c).await;
    let list = get(&c.m("/v2/apps?embed=apps.tasks")).await;
    for app in list["apps"].as_array().unwrap() {
        assert_valid(schema, &definition_part(app, extra));
        for k in [
            "tasksStaged",
            "tasksRunning",
            "tasksHealthy",
            "tasksUnhealthy",
        ] {
            assert!(app[k].is_u64(), "{k} is an integer");
        }
        assert!(app["deployments"].is_array());
        for t in app["tasks"].as_array().unwrap() {
            for k in [
                "id",
                "appId",
                "host",
                "slaveId",
                "stagedAt",
                "startedAt",
                "version",
            ] {
                assert!(t[k].is_string(), "task {k}: {t}");
            }
            assert!(t["ports"].is_array() && t["servicePorts"].is_array());
        }
    }
    let version = list["apps"][0]["version"].as_str().unwrap().to_string();
    let id = list["apps"][0]["id"].as_str().unwrap().to_string();
    let old = get(&c.m(&format!("/v2/apps{id}/versions/{version}"))).await;
    assert_valid(schema, &definition_part(&old, extra));
}

#[tokio::test]
async fn responses_match_the_1_7_schema_on_the_current_profile() {
    // `role` (1.9+) postdates the last published JSON schema (1.7.236).
    check_profile("1.10", "app-definition-1.7.236.schema.json", &["role"]).await;
}

#[tokio::test]
async fn responses_match_the_1_1_1_schema_on_the_legacy_profile() {
    check_profile("1.1", "app-definition-1.1.1.schema.json", &[]).await;
}

#[tokio::test]
async fn upstream_examples_are_accepted_and_shaped_like_raml() {
    let c = Cluster::start("1.10", &[AGENT], &[]);
    // `apps_create.json` is the bulk PUT /v2/apps body.
    let bulk = example_body("apps-create.example.json");
    let (s, _, body) = call("PUT", &c.m("/v2/apps"), Some(&bulk)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        sorted_keys(&body),
        example_keys("deployments-result.keys.json")
    );
    // The 1.1.1 `app.json` example has two missing commas upstream; the fixture has them.
    let mut app = example_body("app-1.1.1.example.json");
    app["id"] = json!("/example/app");
    let (s, _, body) = call("POST", &c.m("/v2/apps"), Some(&app)).await;
    assert_eq!(s, 201, "{body}");
    let head_app = example_body("app-head.example.json");
    let (s, _, body) = call("PUT", &c.m("/v2/apps/example/head"), Some(&head_app)).await;
    assert_eq!(s, 201, "{body}");
    // GET /v2/deployments items carry the example's fields.
    let deps = get(&c.m("/v2/deployments")).await;
    let d = deps
        .as_array()
        .unwrap()
        .first()
        .expect("a deployment is running");
    assert_eq!(sorted_keys(d), example_keys("deployments.keys.json"));
    // Invalid variants of the example get upstream-shaped 422s.
    let mut bad = bulk[0].clone();
    bad["id"] = json!("/bad");
    bad["instances"] = json!(-1);
    let (s, _, body) = call("POST", &c.m("/v2/apps"), Some(&bad)).await;
    assert_eq!(s, 422);
    assert_eq!(body["message"], "Object is not valid");
    assert_eq!(body["details"][0]["path"], "/instances");
    assert!(body["details"][0]["errors"][0].is_string());
    // /v2/info carries the example's top-level fields.
    let info = get(&c.m("/v2/info")).await;
    for k in example_keys("info.keys.json") {
        assert!(info.get(&k).is_some(), "/v2/info lacks {k}");
    }
}
