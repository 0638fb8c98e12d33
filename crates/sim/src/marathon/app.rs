//! Marathon app definitions: server-side defaults, validation (422 details) and the per-profile
//! JSON rendering. The canonical form kept in memory uses the post-1.5 shape (`networks`,
//! `container.portMappings`); the 1.1 profile renders it back into the 2016 shape.

use serde_json::{Map, Value, json};

/// Which Marathon release the simulator imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Marathon 1.10 (current API shapes; `MAR@HEAD`).
    #[value(name = "1.10")]
    V110,
    /// Marathon 1.1.1 (2016 shapes, the mesoscloud image).
    #[value(name = "1.1")]
    V11,
}

impl Profile {
    /// The version `/v2/info` reports.
    pub fn version(self) -> &'static str {
        match self {
            Profile::V110 => "1.10.26",
            Profile::V11 => "1.1.1",
        }
    }
}

/// One validation failure: a JSON pointer-ish path and its messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Path such as `/upgradeStrategy/minimumHealthCapacity`.
    pub path: String,
    /// Messages for that path.
    pub errors: Vec<String>,
}

/// Why a body was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// JSON of the wrong types: 400 [1.1.1] / 422 [HEAD] `"Invalid JSON"` with details.
    Types(Vec<Violation>),
    /// Semantic validation: 422 `"Object is not valid"`.
    Invalid(Vec<Violation>),
}

fn v(path: &str, msg: &str) -> Violation {
    Violation {
        path: path.to_string(),
        errors: vec![msg.to_string()],
    }
}

/// The PathId segment rule [`marathon-api/head/raml/v2/types/stringTypes.raml` PathId].
pub const ID_PATTERN: &str = "^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$";

fn valid_segment(s: &str) -> bool {
    if s == "." || s == ".." {
        return true;
    }
    s.split('.').all(|label| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// Makes an id absolute and canonical (`foo/bar/` → `/foo/bar`); `None` if a segment is invalid.
pub fn canonical_id(id: &str) -> Option<String> {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() || !segments.iter().all(|s| valid_segment(s)) {
        return None;
    }
    Some(format!("/{}", segments.join("/")))
}

/// Constraint operators accepted by the profile [`constraint.raml`; IS since 1.8].
fn operators(profile: Profile) -> &'static [&'static str] {
    match profile {
        Profile::V110 => &[
            "UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
        ],
        Profile::V11 => &["UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER"],
    }
}

fn type_name(expected: &str) -> String {
    format!("error.expected.{expected}")
}

/// Checks JSON types of the fields we read; wrong types are not semantic errors.
fn check_types(raw: &Map<String, Value>) -> Vec<Violation> {
    let mut out = Vec::new();
    let expect = |out: &mut Vec<Violation>, key: &str, ok: bool, name: &str| {
        if !ok {
            out.push(v(&format!("/{key}"), &type_name(name)));
        }
    };
    for (key, val) in raw {
        if val.is_null() {
            continue;
        }
        match key.as_str() {
            "id" | "cmd" | "user" | "executor" | "version" => {
                expect(&mut out, key, val.is_string(), "jsstring")
            }
            "cpus" | "mem" | "disk" | "backoffFactor" => {
                expect(&mut out, key, val.is_number(), "jsnumber")
            }
            "instances" | "backoffSeconds" | "maxLaunchDelaySeconds" | "gpus" => {
                expect(&mut out, key, val.is_i64() || val.is_u64(), "jsnumber")
            }
            "requirePorts" => expect(&mut out, key, val.is_boolean(), "jsboolean"),
            "args" | "constraints" | "uris" | "fetch" | "portDefinitions" | "ports"
            | "healthChecks" | "dependencies" | "networks" | "readinessChecks" | "storeUrls" => {
                expect(&mut out, key, val.is_array(), "jsarray")
            }
            "env" | "labels" | "container" | "upgradeStrategy" | "secrets" => {
                expect(&mut out, key, val.is_object(), "jsobject")
            }
            "acceptedResourceRoles" => expect(&mut out, key, val.is_array(), "jsarray"),
            _ => {}
        }
    }
    if let Some(labels) = raw.get("labels").and_then(Value::as_object) {
        for (k, val) in labels {
            if !val.is_string() {
                out.push(v(&format!("/labels/{k}"), &type_name("jsstring")));
            }
        }
    }
    out
}

fn num(raw: &Map<String, Value>, key: &str, default: f64) -> f64 {
    raw.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn arr(raw: &Map<String, Value>, key: &str) -> Vec<Value> {
    raw.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn obj(raw: &Map<String, Value>, key: &str) -> Map<String, Value> {
    raw.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn non_null(raw: &Map<String, Value>, key: &str) -> Option<Value> {
    raw.get(key).filter(|v| !v.is_null()).cloned()
}

/// Network mode of the canonical form: `host`, `container/bridge` or `container`.
pub fn network_mode(app: &Value) -> &str {
    app["networks"][0]["mode"].as_str().unwrap_or("host")
}

fn normalize_health_check(profile: Profile, hc: &Value) -> Value {
    let protocol = hc["protocol"].as_str().unwrap_or("HTTP").to_string();
    // Defaults: [1.1.1] `v1.1.1/resource-docs/AppsResource_create.md` "Health Check Options";
    // [HEAD] `head/raml/v2/types/healthCheck.raml` AppHealthCheck.
    let (grace, interval) = match profile {
        Profile::V11 => (15, 10),
        Profile::V110 => (300, 60),
    };
    let mut o = Map::new();
    o.insert("protocol".into(), json!(protocol));
    o.insert(
        "gracePeriodSeconds".into(),
        json!(hc["gracePeriodSeconds"].as_i64().unwrap_or(grace)),
    );
    o.insert(
        "intervalSeconds".into(),
        json!(hc["intervalSeconds"].as_i64().unwrap_or(interval)),
    );
    o.insert(
        "timeoutSeconds".into(),
        json!(hc["timeoutSeconds"].as_i64().unwrap_or(20)),
    );
    o.insert(
        "maxConsecutiveFailures".into(),
        json!(hc["maxConsecutiveFailures"].as_i64().unwrap_or(3)),
    );
    if profile == Profile::V110 {
        o.insert(
            "delaySeconds".into(),
            json!(hc["delaySeconds"].as_i64().unwrap_or(15)),
        );
    }
    match protocol.as_str() {
        "COMMAND" => {
            o.insert("command".into(), hc["command"].clone());
        }
        _ => {
            if let Some(p) = hc["port"].as_i64() {
                o.insert("port".into(), json!(p));
            } else {
                o.insert(
                    "portIndex".into(),
                    json!(hc["portIndex"].as_i64().unwrap_or(0)),
                );
            }
            if protocol.starts_with("HTTP") || protocol.starts_with("MESOS_HTTP") {
                let default_path = (profile == Profile::V11).then(|| json!("/"));
                if let Some(p) =
                    non_null(hc.as_object().unwrap_or(&Map::new()), "path").or(default_path)
                {
                    o.insert("path".into(), p);
                }
                if profile == Profile::V110 {
                    o.insert(
                        "ipProtocol".into(),
                        json!(hc["ipProtocol"].as_str().unwrap_or("IPv4")),
                    );
                }
                o.insert(
                    "ignoreHttp1xx".into(),
                    json!(hc["ignoreHttp1xx"].as_bool().unwrap_or(false)),
                );
            }
        }
    }
    Value::Object(o)
}

fn normalize_port_mapping(pm: &Value, bridge: bool) -> Value {
    let mut o = Map::new();
    o.insert(
        "containerPort".into(),
        json!(pm["containerPort"].as_u64().unwrap_or(0)),
    );
    if let Some(h) = pm["hostPort"].as_u64() {
        o.insert("hostPort".into(), json!(h));
    } else if bridge {
        // BRIDGE mappings default hostPort to 0 (a random host port) [`AppNormalization.scala`].
        o.insert("hostPort".into(), json!(0));
    }
    o.insert(
        "servicePort".into(),
        json!(pm["servicePort"].as_u64().unwrap_or(0)),
    );
    o.insert(
        "protocol".into(),
        json!(pm["protocol"].as_str().unwrap_or("tcp")),
    );
    if let Some(n) = pm["name"].as_str() {
        o.insert("name".into(), json!(n));
    }
    o.insert(
        "labels".into(),
        pm.get("labels")
            .filter(|l| l.is_object())
            .cloned()
            .unwrap_or(json!({})),
    );
    Value::Object(o)
}

/// Fills in every server-side default and validates. `raw` is a request body (or a merge of an
/// update onto the canonical app). The id must already be canonical.
pub fn normalize(profile: Profile, raw: &Value) -> Result<Value, Rejection> {
    let Some(raw) = raw.as_object() else {
        return Err(Rejection::Types(vec![v("", &type_name("jsobject"))]));
    };
    let type_errors = check_types(raw);
    if !type_errors.is_empty() {
        return Err(Rejection::Types(type_errors));
    }
    let mut errors: Vec<Violation> = Vec::new();
    let id = raw.get("id").and_then(Value::as_str).unwrap_or_default();
    let id = match canonical_id(id) {
        Some(id) => id,
        None if id.is_empty() => {
            errors.push(v("/id", "error.path.missing"));
            String::new()
        }
        None => {
            errors.push(v(
                "/id",
                &format!("must fully match regular expression '{ID_PATTERN}'"),
            ));
            String::new()
        }
    };
    let cmd = non_null(raw, "cmd");
    let args = non_null(raw, "args").filter(|a| a.as_array().is_some_and(|a| !a.is_empty()));
    let container_in = non_null(raw, "container");
    if (cmd.is_some() == args.is_some()) && container_in.is_none() {
        // [`MAR@HEAD:src/test/.../MarathonExceptionMapperTest.scala`]
        errors.push(v(
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
        ));
    }
    if cmd.as_ref().and_then(Value::as_str) == Some("") {
        errors.push(v("/cmd", "error.minLength"));
    }
    let cpus = num(raw, "cpus", 1.0);
    let mem = num(raw, "mem", 128.0);
    let disk = num(raw, "disk", 0.0);
    let instances = raw.get("instances").and_then(Value::as_i64).unwrap_or(1);
    if cpus < 0.0 {
        errors.push(v("/cpus", &format!("got {cpus:?}, expected 0.0 or more")));
    }
    if mem < 0.0 {
        errors.push(v("/mem", &format!("got {mem:?}, expected 0.0 or more")));
    }
    if disk < 0.0 {
        errors.push(v("/disk", &format!("got {disk:?}, expected 0.0 or more")));
    }
    if instances < 0 {
        errors.push(v(
            "/instances",
            &format!("got {instances}, expected 0 or more"),
        ));
    }
    let us = obj(raw, "upgradeStrategy");
    let mhc = us
        .get("minimumHealthCapacity")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let moc = us
        .get("maximumOverCapacity")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    for (name, value) in [("minimumHealthCapacity", mhc), ("maximumOverCapacity", moc)] {
        // [`marathon-api/head/raml/traits.raml` objectValidator example; `MAR@1.1.1:M/state/UpgradeStrategy.scala`]
        if value > 1.0 {
            errors.push(v(&format!("/upgradeStrategy/{name}"), "is greater than 1"));
        } else if value < 0.0 {
            errors.push(v(&format!("/upgradeStrategy/{name}"), "is less than 0"));
        }
    }
    let constraints = arr(raw, "constraints");
    for (i, c) in constraints.iter().enumerate() {
        let parts: Vec<&str> = c
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let path = format!("/constraints({i})");
        if parts.len() < 2 || parts.len() > 3 {
            errors.push(v(&path, "Each constraint must have either 2 or 3 fields"));
            continue;
        }
        let op = parts[1];
        if !operators(profile).contains(&op) {
            errors.push(v(
                &path,
                &format!(
                    "Constraint operator must be one of the following: [{}]",
                    operators(profile).join(", ")
                ),
            ));
            continue;
        }
        let value = parts.get(2).copied();
        let needs_value = matches!(op, "LIKE" | "UNLIKE" | "MAX_PER" | "IS");
        if needs_value && value.is_none() {
            errors.push(v(&path, "Value was not specified"));
        }
        if op == "MAX_PER" && value.is_some_and(|v| v.parse::<u32>().is_err()) {
            errors.push(v(&path, "Value was not a number"));
        }
        if op == "GROUP_BY" && value.is_some_and(|v| !v.is_empty() && v.parse::<u32>().is_err()) {
            errors.push(v(&path, "Value was not a number"));
        }
    }

    // Networking and container (docker.network/portMappings translated [`AppNormalization.scala`]).
    let mut networks: Vec<Value> = arr(raw, "networks");
    let mut container = Value::Null;
    if let Some(c) = &container_in {
        let ctype = c["type"].as_str().unwrap_or("DOCKER").to_string();
        let docker = c["docker"].clone();
        if ctype == "DOCKER" && docker["image"].as_str().is_none_or(str::is_empty) {
            errors.push(v("/container/docker/image", "must not be empty"));
        }
        if let Some(net) = docker["network"].as_str() {
            networks = match net {
                "BRIDGE" => vec![json!({"mode": "container/bridge"})],
                "USER" => vec![json!({"mode": "container"})],
                _ => vec![json!({"mode": "host"})],
            };
        }
        let bridge = networks
            .first()
            .and_then(|n| n["mode"].as_str())
            .is_some_and(|m| m != "host");
        let mappings_in = c
            .get("portMappings")
            .filter(|p| p.is_array())
            .or_else(|| docker.get("portMappings").filter(|p| p.is_array()));
        let mappings: Vec<Value> = mappings_in
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|pm| normalize_port_mapping(pm, bridge))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Map::new();
        out.insert("type".into(), json!(ctype));
        out.insert(
            "volumes".into(),
            c.get("volumes")
                .filter(|x| x.is_array())
                .cloned()
                .unwrap_or(json!([])),
        );
        if docker.is_object() {
            out.insert(
                "docker".into(),
                json!({
                    "image": docker["image"],
                    "privileged": docker["privileged"].as_bool().unwrap_or(false),
                    "parameters": docker.get("parameters").filter(|x| x.is_array()).cloned().unwrap_or(json!([])),
                    "forcePullImage": docker["forcePullImage"].as_bool().unwrap_or(false),
                }),
            );
        }
        out.insert("portMappings".into(), json!(mappings));
        container = Value::Object(out);
    }
    if networks.is_empty() {
        networks = vec![json!({"mode": "host"})];
    }
    let host = networks[0]["mode"].as_str() == Some("host");

    // Ports: `portDefinitions`, or legacy `ports: [int]`; default one random port on host networking.
    let port_definitions: Vec<Value> = if !host {
        Vec::new()
    } else if let Some(pd) = raw.get("portDefinitions").and_then(Value::as_array) {
        pd.iter()
            .map(|p| {
                let mut o = Map::new();
                o.insert("port".into(), json!(p["port"].as_u64().unwrap_or(0)));
                o.insert(
                    "protocol".into(),
                    json!(p["protocol"].as_str().unwrap_or("tcp")),
                );
                if let Some(n) = p["name"].as_str() {
                    o.insert("name".into(), json!(n));
                }
                o.insert(
                    "labels".into(),
                    p.get("labels")
                        .filter(|l| l.is_object())
                        .cloned()
                        .unwrap_or(json!({})),
                );
                Value::Object(o)
            })
            .collect()
    } else if let Some(ports) = raw.get("ports").and_then(Value::as_array) {
        ports
            .iter()
            .map(|p| json!({"port": p.as_u64().unwrap_or(0), "protocol": "tcp", "labels": {}}))
            .collect()
    } else {
        // [HEAD] the default port definition is named "default" [`AppNormalization.scala`].
        match profile {
            Profile::V110 => {
                vec![json!({"port": 0, "protocol": "tcp", "name": "default", "labels": {}})]
            }
            Profile::V11 => vec![json!({"port": 0, "protocol": "tcp", "labels": {}})],
        }
    };
    let port_count = if host {
        port_definitions.len()
    } else {
        container["portMappings"].as_array().map_or(0, Vec::len)
    };
    let health_checks: Vec<Value> = arr(raw, "healthChecks")
        .iter()
        .map(|hc| normalize_health_check(profile, hc))
        .collect();
    for (i, hc) in health_checks.iter().enumerate() {
        if let Some(idx) = hc["portIndex"].as_u64()
            && idx as usize >= port_count
        {
            errors.push(v(
                &format!("/healthChecks({i})"),
                "Health check port indices must address an element of the ports array or container port mappings.",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Rejection::Invalid(errors));
    }

    let fetch: Vec<Value> = if let Some(f) = raw.get("fetch").and_then(Value::as_array) {
        f.iter()
            .map(|x| {
                json!({
                    "uri": x["uri"],
                    "extract": x["extract"].as_bool().unwrap_or(true),
                    "executable": x["executable"].as_bool().unwrap_or(false),
                    "cache": x["cache"].as_bool().unwrap_or(false),
                })
            })
            .collect()
    } else {
        arr(raw, "uris")
            .iter()
            .map(|u| json!({"uri": u, "extract": true, "executable": false, "cache": false}))
            .collect()
    };
    let max_launch_delay = match profile {
        Profile::V110 => 300,
        Profile::V11 => 3600,
    };
    let dependencies: Vec<Value> = arr(raw, "dependencies")
        .iter()
        .filter_map(Value::as_str)
        .map(|d| json!(canonical_id(d).unwrap_or_else(|| d.to_string())))
        .collect();
    Ok(json!({
        "id": id,
        "cmd": cmd,
        "args": args,
        "user": non_null(raw, "user"),
        "env": obj(raw, "env"),
        "instances": instances,
        "cpus": cpus,
        "mem": mem,
        "disk": disk,
        "gpus": raw.get("gpus").and_then(Value::as_i64).unwrap_or(0),
        "executor": raw.get("executor").and_then(Value::as_str).unwrap_or(""),
        "constraints": constraints,
        "fetch": fetch,
        "storeUrls": arr(raw, "storeUrls"),
        "portDefinitions": port_definitions,
        "requirePorts": raw.get("requirePorts").and_then(Value::as_bool).unwrap_or(false),
        "backoffSeconds": raw.get("backoffSeconds").and_then(Value::as_i64).unwrap_or(1),
        "backoffFactor": num(raw, "backoffFactor", 1.15),
        "maxLaunchDelaySeconds": raw.get("maxLaunchDelaySeconds").and_then(Value::as_i64).unwrap_or(max_launch_delay),
        "container": container,
        "healthChecks": health_checks,
        "readinessChecks": arr(raw, "readinessChecks"),
        "dependencies": dependencies,
        "upgradeStrategy": {"minimumHealthCapacity": mhc, "maximumOverCapacity": moc},
        "labels": obj(raw, "labels"),
        "acceptedResourceRoles": non_null(raw, "acceptedResourceRoles"),
        "networks": networks,
        "secrets": obj(raw, "secrets"),
        "killSelection": raw.get("killSelection").and_then(Value::as_str).unwrap_or("YOUNGEST_FIRST"),
        "unreachableStrategy": raw.get("unreachableStrategy").filter(|u| u.is_object()).cloned()
            .unwrap_or(json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0})),
        "role": raw.get("role").and_then(Value::as_str).unwrap_or("*"),
    }))
}

/// The fields that only differ by scaling.
pub fn only_scale_change(a: &Value, b: &Value) -> bool {
    let strip = |x: &Value| {
        let mut x = x.clone();
        if let Some(o) = x.as_object_mut() {
            o.remove("instances");
            o.remove("version");
        }
        x
    };
    strip(a) == strip(b)
}

/// Service ports of the canonical app (port definitions or container port mappings).
pub fn service_ports(app: &Value) -> Vec<u32> {
    if network_mode(app) == "host" {
        app["portDefinitions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["port"].as_u64())
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        app["container"]["portMappings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["servicePort"].as_u64())
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Assigns service ports for every `0`, from `10000` upwards (`--local_port_min`), avoiding `taken`.
pub fn assign_service_ports(app: &mut Value, taken: &mut std::collections::BTreeSet<u32>) {
    let mut next = 10000u32;
    let mut pick = |taken: &mut std::collections::BTreeSet<u32>| {
        while taken.contains(&next) {
            next += 1;
        }
        taken.insert(next);
        next
    };
    if network_mode(app) == "host" {
        if let Some(defs) = app["portDefinitions"].as_array_mut() {
            for d in defs {
                if d["port"].as_u64() == Some(0) {
                    d["port"] = json!(pick(taken));
                }
            }
        }
    } else if let Some(pms) = app["container"]["portMappings"].as_array_mut() {
        for pm in pms {
            if pm["servicePort"].as_u64() == Some(0) {
                pm["servicePort"] = json!(pick(taken));
            }
        }
    }
}

fn drop_empty(o: &mut Map<String, Value>, keep: &[&str]) {
    o.retain(|k, v| {
        keep.contains(&k.as_str())
            || !(v.is_null()
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(Map::is_empty))
    });
}

/// Renders the canonical app as the profile's `App` JSON (without status fields).
pub fn render(profile: Profile, app: &Value, version_info: Option<(&str, &str)>) -> Value {
    let mut o = app.as_object().cloned().unwrap_or_default();
    match profile {
        Profile::V110 => {
            // [HEAD] ports/uris/ipAddress are never written; portMappings only with non-host
            // networking, portDefinitions only with host networking [`MAR@HEAD:M/raml/AppConversion.scala#appWriter`];
            // empty collections and None are omitted by the generated serializer
            // [`MAR@HEAD:type-generator/.../treehugger/ObjectVisitor.scala` writerWithEmptyCheck].
            let host = network_mode(app) == "host";
            if let Some(c) = o.get_mut("container").and_then(Value::as_object_mut) {
                if host {
                    c.remove("portMappings");
                } else if let Some(pms) = c.get_mut("portMappings").and_then(Value::as_array_mut) {
                    for pm in pms.iter_mut().filter_map(Value::as_object_mut) {
                        drop_empty(pm, &[]);
                    }
                }
                if let Some(d) = c.get_mut("docker").and_then(Value::as_object_mut) {
                    drop_empty(d, &[]);
                }
                drop_empty(c, &[]);
            }
            if host {
                if let Some(defs) = o.get_mut("portDefinitions").and_then(Value::as_array_mut) {
                    for d in defs.iter_mut().filter_map(Value::as_object_mut) {
                        drop_empty(d, &[]);
                    }
                }
            } else {
                o.remove("portDefinitions");
            }
            if let Some(hcs) = o.get_mut("healthChecks").and_then(Value::as_array_mut) {
                for h in hcs.iter_mut().filter_map(Value::as_object_mut) {
                    if h.get("ignoreHttp1xx") == Some(&json!(false)) {
                        h.remove("ignoreHttp1xx");
                    }
                }
            }
            o.remove("storeUrls");
            drop_empty(&mut o, &["portDefinitions"]);
            if let Some((scaling, config)) = version_info {
                o.insert(
                    "versionInfo".into(),
                    json!({"lastScalingAt": scaling, "lastConfigChangeAt": config}),
                );
            }
        }
        Profile::V11 => {
            // [1.1.1] every field is written, null or empty included [`MAR@1.1.1:Formats.scala#AppDefinitionWrites:783-830`].
            let host = network_mode(app) == "host";
            if let Some(c) = o.get_mut("container").and_then(Value::as_object_mut) {
                let mappings = c.remove("portMappings").unwrap_or(json!([]));
                if let Some(d) = c.get_mut("docker").and_then(Value::as_object_mut) {
                    let net = match network_mode(app) {
                        "container/bridge" => "BRIDGE",
                        "container" => "USER",
                        _ => "HOST",
                    };
                    d.insert("network".into(), json!(net));
                    if !host {
                        d.insert("portMappings".into(), mappings);
                    }
                }
            }
            let ports: Vec<Value> = service_ports(app).into_iter().map(|p| json!(p)).collect();
            o.insert("ports".into(), json!(ports));
            let uris: Vec<Value> = app["fetch"]
                .as_array()
                .map(|f| f.iter().map(|x| x["uri"].clone()).collect())
                .unwrap_or_default();
            o.insert("uris".into(), json!(uris));
            for k in [
                "networks",
                "secrets",
                "killSelection",
                "unreachableStrategy",
                "role",
                "gpus",
            ] {
                o.remove(k);
            }
            o.insert("ipAddress".into(), Value::Null);
            o.insert("residency".into(), Value::Null);
            if let Some(hcs) = o.get_mut("healthChecks").and_then(Value::as_array_mut) {
                for h in hcs.iter_mut().filter_map(Value::as_object_mut) {
                    h.entry("portIndex").or_insert(json!(0));
                    if h.get("protocol") == Some(&json!("COMMAND")) {
                        h.remove("portIndex");
                    }
                }
            }
            if let Some((scaling, config)) = version_info {
                o.insert(
                    "versionInfo".into(),
                    json!({"lastScalingAt": scaling, "lastConfigChangeAt": config}),
                );
            }
        }
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_made_canonical_and_checked() {
        assert_eq!(canonical_id("foo/bar/").as_deref(), Some("/foo/bar"));
        assert_eq!(canonical_id("/a.b-c/d").as_deref(), Some("/a.b-c/d"));
        assert!(canonical_id("/Foo").is_none());
        assert!(canonical_id("/-x").is_none());
        assert!(canonical_id("/a_b").is_none());
    }

    #[test]
    fn defaults_1_10() {
        let a = normalize(Profile::V110, &json!({"id": "/x", "cmd": "sleep 1"})).unwrap();
        assert_eq!(a["cpus"], json!(1.0));
        assert_eq!(a["mem"], json!(128.0));
        assert_eq!(a["instances"], json!(1));
        assert_eq!(a["maxLaunchDelaySeconds"], json!(300));
        assert_eq!(a["backoffFactor"], json!(1.15));
        assert_eq!(
            a["upgradeStrategy"],
            json!({"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0})
        );
        assert_eq!(a["portDefinitions"][0]["name"], json!("default"));
        let r = render(Profile::V110, &a, None);
        assert!(r.get("env").is_none(), "empty env is omitted in 1.10");
        assert!(r.get("ports").is_none());
        assert_eq!(r["networks"], json!([{"mode": "host"}]));
    }

    #[test]
    fn defaults_1_1() {
        let a = normalize(Profile::V11, &json!({"id": "/x", "cmd": "sleep 1"})).unwrap();
        assert_eq!(a["maxLaunchDelaySeconds"], json!(3600));
        let r = render(Profile::V11, &a, None);
        assert_eq!(r["env"], json!({}));
        assert_eq!(r["ports"], json!([0]));
        assert_eq!(r["ipAddress"], Value::Null);
        assert!(r.get("networks").is_none());
    }

    #[test]
    fn docker_bridge_is_translated_in_1_10_and_kept_in_1_1() {
        let body = json!({"id": "/b", "container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE",
            "portMappings": [{"containerPort": 80}]}}});
        let a = normalize(Profile::V110, &body).unwrap();
        let r = render(Profile::V110, &a, None);
        assert_eq!(r["networks"], json!([{"mode": "container/bridge"}]));
        assert!(r["container"]["docker"].get("network").is_none());
        assert_eq!(r["container"]["portMappings"][0]["hostPort"], json!(0));
        assert!(r.get("portDefinitions").is_none());
        let a = normalize(Profile::V11, &body).unwrap();
        let r = render(Profile::V11, &a, None);
        assert_eq!(r["container"]["docker"]["network"], json!("BRIDGE"));
        assert_eq!(
            r["container"]["docker"]["portMappings"][0]["containerPort"],
            json!(80)
        );
        assert_eq!(r["portDefinitions"], json!([]));
    }

    #[test]
    fn validation_errors() {
        let bad = |body: Value| match normalize(Profile::V110, &body) {
            Err(Rejection::Invalid(v)) => v,
            other => panic!("expected invalid, got {other:?}"),
        };
        let v =
            bad(json!({"id": "/x", "cmd": "a", "upgradeStrategy": {"minimumHealthCapacity": 1.5}}));
        assert_eq!(v[0].path, "/upgradeStrategy/minimumHealthCapacity");
        assert_eq!(v[0].errors, vec!["is greater than 1"]);
        let v = bad(json!({"id": "/x"}));
        assert_eq!(v[0].path, "/");
        let v = bad(json!({"id": "/x", "cmd": "a", "constraints": [["hostname", "FOO"]]}));
        assert_eq!(v[0].path, "/constraints(0)");
        let v = bad(json!({"id": "/Bad", "cmd": "a"}));
        assert_eq!(v[0].path, "/id");
        assert!(matches!(
            normalize(Profile::V110, &json!({"id": 5, "cmd": "a"})),
            Err(Rejection::Types(_))
        ));
    }

    #[test]
    fn service_ports_are_assigned_from_10000() {
        let mut a = normalize(
            Profile::V110,
            &json!({"id": "/x", "cmd": "a", "portDefinitions": [{"port": 0}, {"port": 0}]}),
        )
        .unwrap();
        let mut taken = std::collections::BTreeSet::from([10000]);
        assign_service_ports(&mut a, &mut taken);
        assert_eq!(service_ports(&a), vec![10001, 10002]);
    }
}
