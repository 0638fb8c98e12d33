//! Benchmark: start-up time of the three processes and latency of a 1,000-app `/v2/apps` listing.
//! Run with `cargo run --release -p converged-sim --example bench` (set `CONVERGED_SIM_BIN` to the
//! matching `converged-sim` binary when the example and binary are in different target dirs).

use std::time::{Duration, Instant};

use converged_testkit::SimProcess;
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let master = SimProcess::mesos_master("127.0.0.1:0", &[]);
    let agent = SimProcess::mesos_agent(
        "127.0.0.2:0",
        &[
            "--master",
            &master.url,
            "--hostname",
            "bench",
            "--resources",
            "cpus:64;mem:65536;ports:[31000-32000]",
        ],
    );
    let marathon = SimProcess::marathon("127.0.0.1:0", &["--master", &master.url]);
    println!(
        "startup (spawn to listening): mesos-master {:?}, mesos-agent {:?}, marathon {:?}",
        master.startup, agent.startup, marathon.startup
    );
    let client = reqwest::Client::new();
    let start = Instant::now();
    for i in 0..1000 {
        let app = json!({"id": format!("/bench/app-{i}"), "cmd": "sleep 1000", "instances": 0,
            "labels": {"n": i.to_string()}, "env": {"A": "b"}});
        let r = client
            .post(format!("{}/v2/apps", marathon.url))
            .json(&app)
            .send()
            .await
            .expect("create");
        assert_eq!(r.status().as_u16(), 201);
    }
    println!("created 1000 apps in {:?}", start.elapsed());
    let mut samples = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let body = client
            .get(format!("{}/v2/apps", marathon.url))
            .send()
            .await
            .expect("list")
            .bytes()
            .await
            .expect("body");
        samples.push(t.elapsed());
        assert!(body.len() > 100_000);
    }
    println!(
        "GET /v2/apps with 1000 apps: median {:?}, max {:?} (30 samples, client-side wall time)",
        median(samples.clone()),
        samples.iter().max().copied().unwrap_or_default()
    );
}
