//! Shared helpers for the simulator's integration tests: a small cluster of real processes and
//! JSON HTTP calls.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use converged_testkit::SimProcess;
use serde_json::Value;

/// Fast timings for tests: agents deactivate after 300 ms of silence and are removed after 900 ms.
pub const MASTER_FAST: &[&str] = &[
    "--agent-ping-timeout",
    "300ms",
    "--max-agent-ping-timeouts",
    "3",
    "--admin",
];

/// A master, some agents and one Marathon.
pub struct Cluster {
    pub master: SimProcess,
    pub agents: Vec<SimProcess>,
    pub marathon: SimProcess,
}

/// One agent: hostname, resources, attributes.
pub type AgentSpec<'a> = (&'a str, &'a str, &'a str);

pub fn agent(master: &str, ip: &str, (host, res, attrs): AgentSpec<'_>) -> SimProcess {
    SimProcess::mesos_agent(
        &format!("{ip}:0"),
        &[
            "--master",
            master,
            "--hostname",
            host,
            "--resources",
            res,
            "--attributes",
            attrs,
            "--heartbeat-interval",
            "100ms",
        ],
    )
}

impl Cluster {
    pub fn start(profile: &str, agents: &[AgentSpec<'_>], marathon_extra: &[&str]) -> Self {
        let master = SimProcess::mesos_master("127.0.0.1:0", MASTER_FAST);
        let agents: Vec<SimProcess> = agents
            .iter()
            .enumerate()
            .map(|(i, spec)| agent(&master.url, &format!("127.0.0.{}", 50 + i), *spec))
            .collect();
        let mut args = vec![
            "--master",
            &master.url,
            "--profile",
            profile,
            "--staging-delay",
            "100ms",
            "--time-scale",
            "0.01",
            "--tick",
            "50ms",
            "--admin",
        ];
        args.extend_from_slice(marathon_extra);
        let marathon = SimProcess::marathon("127.0.0.1:0", &args);
        Self {
            master,
            agents,
            marathon,
        }
    }

    pub fn m(&self, path: &str) -> String {
        format!("{}{path}", self.marathon.url)
    }
}

/// Calls `method url` with an optional JSON body; returns status, headers and the parsed body
/// (`Value::Null` for an empty or non-JSON body, the text as a string otherwise).
pub async fn call(
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut rb = client.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let resp = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, value)
}

pub async fn get(url: &str) -> Value {
    let (s, _, v) = call("GET", url, None).await;
    assert_eq!(s, 200, "GET {url}: {v}");
    v
}

/// Polls `check` every 50 ms until it yields `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no deployment is running (the failure message shows what is left).
pub async fn deployments_done(c: &Cluster) {
    let url = c.m("/v2/deployments");
    let start = Instant::now();
    loop {
        let deps = get(&url).await;
        if deps.as_array().unwrap().is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let queue = get(&c.m("/v2/queue")).await;
            panic!("deployments still running after 20s: {deps}\nqueue: {queue}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Loads a desired-state app and replaces converged's `{"secret": ...}` env values by plain strings.
pub fn desired_app(name: &str) -> Value {
    let path = format!(
        "{}/../../desired-state/apps/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    if let Some(env) = v.get_mut("env").and_then(Value::as_object_mut) {
        for (_, val) in env.iter_mut() {
            if val.is_object() {
                *val = Value::String("test-secret".into());
            }
        }
    }
    v
}
