//! Normalization of Marathon app definitions (pure, no client): desired files and the apps
//! Marathon reports are brought to one canonical form for the server's API generation, so a
//! diff only shows what an operator changed. Every rule answers an upstream behaviour, cited
//! from `shared/API-SPEC.md` (A2 unless noted).

use serde_json::{Map, Value, json};

/// Which generation of the v2 API the server speaks: the shapes changed in Marathon 1.5 (the
/// network API, health-check defaults, empty collections omitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Before 1.5, e.g. 1.1.1 (the 2016 mesoscloud images).
    Legacy,
    /// 1.5 and later, e.g. 1.10.
    Current,
}

impl Profile {
    /// From `/v2/info` `version` ("1.1.1", "1.10.26"); unknown shapes count as current.
    pub fn from_version(version: &str) -> Self {
        let mut parts = version
            .split('.')
            .map(|part| part.parse::<u32>().unwrap_or(0));
        match (parts.next(), parts.next()) {
            (Some(1), Some(minor)) if minor < 5 => Profile::Legacy,
            (Some(0), _) => Profile::Legacy,
            _ => Profile::Current,
        }
    }

    fn max_launch_delay_seconds(self) -> f64 {
        // [1.1.1] DefaultMaxLaunchDelay = 1 hour; [HEAD] RunSpec BackoffStrategy 5 minutes.
        match self {
            Profile::Legacy => 3600.0,
            Profile::Current => 300.0,
        }
    }
}

/// Top-level fields converged compares only when the desired file sets them: their server-side
/// defaults differ between versions and setups, so an absent field means "whatever Marathon
/// chose". Removing one from a file therefore does not reset it.
pub const COMPARED_ONLY_WHEN_SET: &[&str] = &[
    "secrets",
    "killSelection",
    "unreachableStrategy",
    "role",
    "residency",
    "ipAddress",
    "taskKillGracePeriodSeconds",
    "tty",
    "executorResources",
    "resourceLimits",
    "check",
];

/// The canonical form of an app definition, from a desired file (as JSON) or from Marathon.
/// Status fields (`version`, task counts, deployments) are dropped; defaults are filled; legacy
/// fields are translated; unordered collections are sorted; numbers are floats.
pub fn canonical(app: &Value, profile: Profile) -> Value {
    let empty = Map::new();
    let raw = app.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    let id = raw.get("id").and_then(Value::as_str).unwrap_or_default();
    out.insert("id".into(), json!(canonical_id(id)));
    out.insert("cmd".into(), non_null(raw, "cmd").unwrap_or(Value::Null));
    // `args: []` and a missing `args` launch the same task.
    out.insert(
        "args".into(),
        non_null(raw, "args")
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
            .unwrap_or(Value::Null),
    );
    out.insert("user".into(), non_null(raw, "user").unwrap_or(Value::Null));
    out.insert("env".into(), object(raw, "env"));
    out.insert("labels".into(), object(raw, "labels"));
    for (field, default) in [
        ("instances", 1.0),
        ("cpus", 1.0),
        ("mem", 128.0),
        ("disk", 0.0),
        ("gpus", 0.0),
    ] {
        out.insert(field.into(), number(raw.get(field), default));
    }
    out.insert(
        "executor".into(),
        json!(raw.get("executor").and_then(Value::as_str).unwrap_or("")),
    );
    // Constraints, accepted roles, health checks and dependencies are Scala Sets in
    // AppDefinition: Marathon does not keep their order.
    out.insert("constraints".into(), sorted(array(raw, "constraints")));
    let roles = sorted(array(raw, "acceptedResourceRoles"));
    out.insert(
        "acceptedResourceRoles".into(),
        if roles.as_array().is_some_and(Vec::is_empty) {
            Value::Null
        } else {
            roles
        },
    );
    out.insert(
        "dependencies".into(),
        sorted(
            array(raw, "dependencies")
                .into_iter()
                .map(|d| json!(canonical_id(d.as_str().unwrap_or_default())))
                .collect(),
        ),
    );
    let network = network_mode(raw);
    out.insert("network".into(), json!(network));
    out.insert("container".into(), container(raw));
    if network == "host" {
        out.insert("portDefinitions".into(), port_definitions(raw, profile));
    } else {
        out.insert("portMappings".into(), port_mappings(raw, network));
    }
    out.insert(
        "requirePorts".into(),
        json!(
            raw.get("requirePorts")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
    );
    out.insert(
        "healthChecks".into(),
        sorted(
            array(raw, "healthChecks")
                .iter()
                .map(|hc| health_check(hc, profile))
                .collect(),
        ),
    );
    out.insert(
        "readinessChecks".into(),
        Value::Array(array(raw, "readinessChecks")),
    );
    let strategy = raw.get("upgradeStrategy");
    out.insert(
        "upgradeStrategy".into(),
        json!({
            "minimumHealthCapacity": number(strategy.and_then(|s| s.get("minimumHealthCapacity")), 1.0),
            "maximumOverCapacity": number(strategy.and_then(|s| s.get("maximumOverCapacity")), 1.0),
        }),
    );
    out.insert(
        "backoffSeconds".into(),
        number(raw.get("backoffSeconds"), 1.0),
    );
    out.insert(
        "backoffFactor".into(),
        number(raw.get("backoffFactor"), 1.15),
    );
    out.insert(
        "maxLaunchDelaySeconds".into(),
        number(
            raw.get("maxLaunchDelaySeconds"),
            profile.max_launch_delay_seconds(),
        ),
    );
    out.insert("fetch".into(), fetch(raw));
    for field in COMPARED_ONLY_WHEN_SET {
        if let Some(value) = raw.get(*field).filter(|v| !v.is_null()) {
            out.insert((*field).into(), numbers_as_floats(value));
        }
    }
    Value::Object(out)
}

/// `/a/b` for `a/b`, `/a/b/` or `/a/b`: Marathon makes relative ids absolute (A1).
pub fn canonical_id(id: &str) -> String {
    let trimmed = id.trim_matches('/');
    format!("/{trimmed}")
}

fn non_null(raw: &Map<String, Value>, key: &str) -> Option<Value> {
    raw.get(key).filter(|v| !v.is_null()).cloned()
}

fn object(raw: &Map<String, Value>, key: &str) -> Value {
    Value::Object(
        raw.get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    )
}

fn array(raw: &Map<String, Value>, key: &str) -> Vec<Value> {
    raw.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn number(value: Option<&Value>, default: f64) -> Value {
    json!(value.and_then(Value::as_f64).unwrap_or(default))
}

fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap_or_default()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Makes every number a float, in place (`numbers_as_floats` for values already owned).
fn floats_in_place(value: &mut Value) {
    match value {
        Value::Number(n) => *value = json!(n.as_f64().unwrap_or_default()),
        Value::Array(items) => items.iter_mut().for_each(floats_in_place),
        Value::Object(map) => map.values_mut().for_each(floats_in_place),
        _ => {}
    }
}

fn sorted(mut items: Vec<Value>) -> Value {
    items.iter_mut().for_each(floats_in_place);
    // One rendering per item, not two per comparison.
    items.sort_by_cached_key(ToString::to_string);
    Value::Array(items)
}

/// Whether the app uses host networking (the default).
pub fn is_host_network(app: &Map<String, Value>) -> bool {
    network_mode(app) == "host"
}

/// `host`, `bridge`, `user` or `none`: [1.1.1] `container.docker.network`; [HEAD] `networks`
/// (`host`, `container/bridge`, `container`), the docker field being translated and dropped
/// (AppNormalization NetworkTranslation).
fn network_mode(raw: &Map<String, Value>) -> &'static str {
    let docker_network = raw
        .get("container")
        .and_then(|c| c.get("docker"))
        .and_then(|d| d.get("network"))
        .and_then(Value::as_str);
    if let Some(network) = docker_network {
        return match network {
            "BRIDGE" => "bridge",
            "USER" => "user",
            "NONE" => "none",
            _ => "host",
        };
    }
    let mode = raw
        .get("networks")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
        .and_then(|n| n.get("mode"))
        .and_then(Value::as_str);
    match mode {
        Some("container/bridge") => "bridge",
        Some("container") => "user",
        _ => "host",
    }
}

fn container(raw: &Map<String, Value>) -> Value {
    let Some(container) = raw.get("container").and_then(Value::as_object) else {
        return Value::Null;
    };
    let mut out = Map::new();
    out.insert(
        "type".into(),
        json!(
            container
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("DOCKER")
        ),
    );
    if let Some(docker) = container.get("docker").and_then(Value::as_object) {
        out.insert(
            "docker".into(),
            json!({
                "image": docker.get("image").cloned().unwrap_or(Value::Null),
                "privileged": docker.get("privileged").and_then(Value::as_bool).unwrap_or(false),
                "forcePullImage": docker.get("forcePullImage").and_then(Value::as_bool).unwrap_or(false),
                "parameters": Value::Array(array(docker, "parameters")),
            }),
        );
    }
    let volumes: Vec<Value> = array(container, "volumes")
        .iter()
        .map(|volume| {
            json!({
                "containerPath": volume.get("containerPath").cloned().unwrap_or(Value::Null),
                "hostPath": volume.get("hostPath").cloned().unwrap_or(Value::Null),
                "mode": volume.get("mode").and_then(Value::as_str).unwrap_or("RW"),
            })
        })
        .collect();
    out.insert("volumes".into(), Value::Array(volumes));
    Value::Object(out)
}

/// Host networking: `portDefinitions`, or the legacy `ports: [int]`; absent means one random
/// port, which [HEAD] names `default`. [1.1.1] answers with both `ports` (the assigned service
/// ports) and `portDefinitions`: the definitions win.
fn port_definitions(raw: &Map<String, Value>, profile: Profile) -> Value {
    let definitions = if let Some(definitions) =
        raw.get("portDefinitions").and_then(Value::as_array)
    {
        definitions
            .iter()
            .map(|d| {
                json!({
                    "port": number(d.get("port"), 0.0),
                    "protocol": d.get("protocol").and_then(Value::as_str).unwrap_or("tcp"),
                    "name": d.get("name").cloned().unwrap_or(Value::Null),
                    "labels": d.get("labels").filter(|l| l.is_object()).cloned().unwrap_or(json!({})),
                })
            })
            .collect()
    } else if let Some(ports) = raw.get("ports").and_then(Value::as_array) {
        ports
            .iter()
            .map(|p| json!({"port": number(Some(p), 0.0), "protocol": "tcp", "name": null, "labels": {}}))
            .collect()
    } else {
        let name = match profile {
            Profile::Legacy => Value::Null,
            Profile::Current => json!("default"),
        };
        vec![json!({"port": 0.0, "protocol": "tcp", "name": name, "labels": {}})]
    };
    Value::Array(definitions)
}

/// Non-host networking: [1.1.1] `container.docker.portMappings`, [HEAD] `container.portMappings`
/// (migrated by AppNormalization). BRIDGE mappings default `hostPort` to 0 (random).
fn port_mappings(raw: &Map<String, Value>, network: &str) -> Value {
    let container = raw.get("container");
    let mappings = container
        .and_then(|c| c.get("portMappings"))
        .and_then(Value::as_array)
        .or_else(|| {
            container
                .and_then(|c| c.get("docker"))
                .and_then(|d| d.get("portMappings"))
                .and_then(Value::as_array)
        })
        .cloned()
        .unwrap_or_default();
    let host_port_default = (network == "bridge").then_some(0.0);
    Value::Array(
        mappings
            .iter()
            .map(|m| {
                let host_port = m
                    .get("hostPort")
                    .and_then(Value::as_f64)
                    .or(host_port_default)
                    .map_or(Value::Null, |p| json!(p));
                json!({
                    "containerPort": number(m.get("containerPort"), 0.0),
                    "hostPort": host_port,
                    "servicePort": number(m.get("servicePort"), 0.0),
                    "protocol": m.get("protocol").and_then(Value::as_str).unwrap_or("tcp"),
                    "name": m.get("name").cloned().unwrap_or(Value::Null),
                    "labels": m.get("labels").filter(|l| l.is_object()).cloned().unwrap_or(json!({})),
                })
            })
            .collect(),
    )
}

/// Health-check defaults: [1.1.1] grace 15 s, interval 10 s, path `/`
/// (`v1.1.1/resource-docs/AppsResource_create.md`); [HEAD] grace 300 s, interval 60 s,
/// `delaySeconds` 15, `ipProtocol` IPv4 (`healthCheck.raml`); both: timeout 20 s,
/// 3 consecutive failures, `portIndex` 0 unless a `port` is given.
fn health_check(check: &Value, profile: Profile) -> Value {
    let protocol = check
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("HTTP");
    let (grace, interval) = match profile {
        Profile::Legacy => (15.0, 10.0),
        Profile::Current => (300.0, 60.0),
    };
    let mut out = Map::new();
    out.insert("protocol".into(), json!(protocol));
    out.insert(
        "gracePeriodSeconds".into(),
        number(check.get("gracePeriodSeconds"), grace),
    );
    out.insert(
        "intervalSeconds".into(),
        number(check.get("intervalSeconds"), interval),
    );
    out.insert(
        "timeoutSeconds".into(),
        number(check.get("timeoutSeconds"), 20.0),
    );
    out.insert(
        "maxConsecutiveFailures".into(),
        number(check.get("maxConsecutiveFailures"), 3.0),
    );
    if profile == Profile::Current {
        out.insert(
            "delaySeconds".into(),
            number(check.get("delaySeconds"), 15.0),
        );
    }
    if protocol == "COMMAND" {
        out.insert(
            "command".into(),
            check.get("command").cloned().unwrap_or(Value::Null),
        );
        return Value::Object(out);
    }
    match check.get("port").and_then(Value::as_f64) {
        Some(port) => out.insert("port".into(), json!(port)),
        None => out.insert("portIndex".into(), number(check.get("portIndex"), 0.0)),
    };
    if protocol.contains("HTTP") {
        let default_path = match profile {
            Profile::Legacy => json!("/"),
            Profile::Current => Value::Null,
        };
        out.insert(
            "path".into(),
            check
                .get("path")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or(default_path),
        );
        out.insert(
            "ignoreHttp1xx".into(),
            json!(
                check
                    .get("ignoreHttp1xx")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
        );
        if profile == Profile::Current {
            out.insert(
                "ipProtocol".into(),
                json!(
                    check
                        .get("ipProtocol")
                        .and_then(Value::as_str)
                        .unwrap_or("IPv4")
                ),
            );
        }
    }
    Value::Object(out)
}

/// `fetch`, or the deprecated `uris` translated into it (extract on, executable and cache off).
fn fetch(raw: &Map<String, Value>) -> Value {
    let entries: Vec<Value> = match raw.get("fetch").and_then(Value::as_array) {
        Some(fetch) => fetch
            .iter()
            .map(|f| {
                json!({
                    "uri": f.get("uri").cloned().unwrap_or(Value::Null),
                    "extract": f.get("extract").and_then(Value::as_bool).unwrap_or(true),
                    "executable": f.get("executable").and_then(Value::as_bool).unwrap_or(false),
                    "cache": f.get("cache").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect(),
        None => array(raw, "uris")
            .into_iter()
            .map(|uri| json!({"uri": uri, "extract": true, "executable": false, "cache": false}))
            .collect(),
    };
    Value::Array(entries)
}

/// Copies what Marathon assigned into the desired form where the file left it open: a service
/// port or port definition of 0 means "any", so the assigned one is not a difference.
pub fn accept_assigned_ports(desired: &mut Value, observed: &Value) {
    for (list, field) in [("portDefinitions", "port"), ("portMappings", "servicePort")] {
        let Some(wanted) = desired.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        let Some(have) = observed.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (want, got) in wanted.iter_mut().zip(have) {
            if want.get(field).and_then(Value::as_f64) == Some(0.0)
                && let Some(assigned) = got.get(field)
            {
                want[field] = assigned.clone();
            }
        }
    }
}

/// One difference between two canonical forms, at a JSON pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub path: String,
    pub desired: Option<Value>,
    pub observed: Option<Value>,
}

/// Field-level differences between canonical forms. Top-level fields in
/// `COMPARED_ONLY_WHEN_SET` that only the observed side has are not differences.
pub fn differences(desired: &Value, observed: &Value) -> Vec<Difference> {
    let mut found = Vec::new();
    let (Some(want), Some(have)) = (desired.as_object(), observed.as_object()) else {
        return found;
    };
    let mut keys: Vec<&String> = want.keys().chain(have.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        match (want.get(key), have.get(key)) {
            (None, Some(_)) if COMPARED_ONLY_WHEN_SET.contains(&key.as_str()) => {}
            // Equal subtrees hold no difference: skipping them spares a path per field of
            // every app in every cycle, which is most of a no-op cycle's allocations.
            (a, b) if a == b => {}
            (a, b) => compare(&format!("/{}", pointer_key(key)), a, b, &mut found),
        }
    }
    found
}

fn compare(
    path: &str,
    desired: Option<&Value>,
    observed: Option<&Value>,
    found: &mut Vec<Difference>,
) {
    match (desired, observed) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let (x, y) = (a.get(key), b.get(key));
                if x != y {
                    compare(&format!("{path}/{}", pointer_key(key)), x, y, found);
                }
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    compare(&format!("{path}/{index}"), Some(x), Some(y), found);
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => found.push(Difference {
            path: path.to_owned(),
            desired: a.cloned(),
            observed: b.cloned(),
        }),
    }
}

/// A key as one JSON pointer segment (`~` and `/` escaped).
pub fn pointer_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(profile: Profile, desired: Value, observed: Value) -> Vec<Difference> {
        let mut want = canonical(&desired, profile);
        let have = canonical(&observed, profile);
        accept_assigned_ports(&mut want, &have);
        differences(&want, &have)
    }

    #[test]
    fn versions_map_to_profiles() {
        for (version, profile) in [
            ("1.1.1", Profile::Legacy),
            ("1.4.12", Profile::Legacy),
            ("1.5.0", Profile::Current),
            ("1.10.26", Profile::Current),
            ("1.11.0-dev", Profile::Current),
            ("0.15.3", Profile::Legacy),
        ] {
            assert_eq!(Profile::from_version(version), profile, "{version}");
        }
    }

    /// Each case: what a file says, what Marathon answers for it, and that they are equal.
    #[test]
    fn server_side_rewrites_are_not_differences() {
        let cases: Vec<(&str, Profile, Value, Value)> = vec![
            (
                "defaults filled by the server",
                Profile::Current,
                json!({"id": "web", "cmd": "x"}),
                json!({"id": "/web", "cmd": "x", "instances": 1, "cpus": 1.0, "mem": 128.0, "disk": 0, "gpus": 0,
                       "executor": "", "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300,
                       "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
                       "portDefinitions": [{"port": 10000, "protocol": "tcp", "name": "default"}],
                       "requirePorts": false, "networks": [{"mode": "host"}], "killSelection": "YOUNGEST_FIRST",
                       "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}, "role": "*",
                       "version": "2026-01-01T00:00:00.000Z", "versionInfo": {"lastScalingAt": "x", "lastConfigChangeAt": "x"},
                       "tasksRunning": 1, "tasksStaged": 0, "tasksHealthy": 0, "tasksUnhealthy": 0, "deployments": []}),
            ),
            (
                "legacy output writes every field, nulls included, and echoes service ports",
                Profile::Legacy,
                json!({"id": "/web", "cmd": "x", "instances": 2}),
                json!({"id": "/web", "cmd": "x", "args": null, "user": null, "env": {}, "instances": 2, "cpus": 1, "mem": 128,
                       "disk": 0, "executor": "", "constraints": [], "uris": [], "fetch": [], "storeUrls": [],
                       "ports": [10001], "portDefinitions": [{"port": 10001, "protocol": "tcp", "labels": {}}],
                       "requirePorts": false, "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 3600,
                       "container": null, "healthChecks": [], "readinessChecks": [], "dependencies": [],
                       "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}, "labels": {},
                       "acceptedResourceRoles": null, "ipAddress": null, "residency": null, "version": "v"}),
            ),
            (
                "docker network translated into networks and port mappings moved (1.10)",
                Profile::Current,
                json!({"id": "/ui", "container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE",
                       "portMappings": [{"containerPort": 5000, "hostPort": 0, "servicePort": 0, "protocol": "tcp"}]}}}),
                json!({"id": "/ui", "networks": [{"mode": "container/bridge"}],
                       "container": {"type": "DOCKER", "docker": {"image": "i"},
                                     "portMappings": [{"containerPort": 5000, "hostPort": 0, "servicePort": 10004, "protocol": "tcp"}]}}),
            ),
            (
                "legacy uris are fetch entries",
                Profile::Current,
                json!({"id": "/a", "cmd": "x", "uris": ["http://h/a.tgz"]}),
                json!({"id": "/a", "cmd": "x", "fetch": [{"uri": "http://h/a.tgz", "extract": true, "executable": false, "cache": false}]}),
            ),
            (
                "legacy ports are port definitions",
                Profile::Legacy,
                json!({"id": "/a", "cmd": "x", "ports": [0, 0]}),
                json!({"id": "/a", "cmd": "x", "ports": [10000, 10001],
                       "portDefinitions": [{"port": 10000, "protocol": "tcp", "labels": {}}, {"port": 10001, "protocol": "tcp", "labels": {}}]}),
            ),
            (
                "sets keep no order",
                Profile::Current,
                json!({"id": "/a", "cmd": "x", "constraints": [["hostname", "UNIQUE"], ["env", "CLUSTER", "a"]],
                       "acceptedResourceRoles": ["slave_public", "*"]}),
                json!({"id": "/a", "cmd": "x", "constraints": [["env", "CLUSTER", "a"], ["hostname", "UNIQUE"]],
                       "acceptedResourceRoles": ["*", "slave_public"]}),
            ),
            (
                "health-check defaults per generation (1.10)",
                Profile::Current,
                json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "HTTP", "path": "/h"}]}),
                json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "HTTP", "path": "/h", "portIndex": 0,
                       "gracePeriodSeconds": 300, "intervalSeconds": 60, "timeoutSeconds": 20, "maxConsecutiveFailures": 3,
                       "delaySeconds": 15, "ipProtocol": "IPv4"}]}),
            ),
            (
                "health-check defaults per generation (1.1)",
                Profile::Legacy,
                json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]}),
                json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"},
                       "gracePeriodSeconds": 15, "intervalSeconds": 10, "timeoutSeconds": 20, "maxConsecutiveFailures": 3}]}),
            ),
            (
                "empty args and absent args launch the same task",
                Profile::Current,
                json!({"id": "/a", "cmd": "x", "args": []}),
                json!({"id": "/a", "cmd": "x"}),
            ),
        ];
        for (name, profile, desired, observed) in cases {
            let found = both(profile, desired, observed);
            assert!(found.is_empty(), "{name}: {found:#?}");
        }
    }

    #[test]
    fn real_changes_are_differences_with_their_paths() {
        let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
            (
                "scaled by hand",
                json!({"id": "/a", "cmd": "x", "instances": 2}),
                json!({"id": "/a", "cmd": "x", "instances": 1}),
                vec!["/instances"],
            ),
            (
                "a label removed from the file",
                json!({"id": "/a", "cmd": "x"}),
                json!({"id": "/a", "cmd": "x", "labels": {"team": "web"}}),
                vec!["/labels/team"],
            ),
            (
                "a fixed service port",
                json!({"id": "/a", "cmd": "x", "portDefinitions": [{"port": 8080}]}),
                json!({"id": "/a", "cmd": "x", "portDefinitions": [{"port": 10000}]}),
                vec!["/portDefinitions/0/port"],
            ),
            (
                "an image tag",
                json!({"id": "/a", "container": {"docker": {"image": "i:2"}}}),
                json!({"id": "/a", "container": {"type": "DOCKER", "docker": {"image": "i:1"}}}),
                vec!["/container/docker/image"],
            ),
            (
                "an explicitly set server-side field",
                json!({"id": "/a", "cmd": "x", "killSelection": "OLDEST_FIRST"}),
                json!({"id": "/a", "cmd": "x", "killSelection": "YOUNGEST_FIRST"}),
                vec!["/killSelection"],
            ),
            (
                "a health check added",
                json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "TCP"}]}),
                json!({"id": "/a", "cmd": "x"}),
                vec!["/healthChecks"],
            ),
        ];
        for (name, desired, observed, paths) in cases {
            let found: Vec<String> = both(Profile::Current, desired, observed)
                .into_iter()
                .map(|d| d.path)
                .collect();
            assert_eq!(found, paths, "{name}");
        }
    }
}
