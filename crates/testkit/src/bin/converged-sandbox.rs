//! `converged-sandbox`: the whole example cluster on one machine (see
//! `converged_testkit::sandbox`), with progress on the terminal until Ctrl-C, which stops
//! everything it started.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use converged_testkit::sandbox::{Sandbox, all_in_sync};

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binaries = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .expect("the sandbox knows where it runs from");
    let started = Instant::now();
    say(
        "starting moto (EC2 and Route 53), three SSH test hosts (127.0.30.1-3) and `converged run`",
    );
    let sandbox = Sandbox::start(
        &workspace,
        &binaries.join("converged"),
        &binaries.join("converged-sim"),
    );
    let interrupted = ctrl_c();
    let mut announced = false;
    let mut last_line = String::new();
    while !interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(1));
        let Some(status) = sandbox.status() else {
            continue;
        };
        let line = progress(&status);
        if line != last_line {
            println!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last_line = line;
        }
        if all_in_sync(&status) && !announced {
            announced = true;
            println!();
            say(&format!(
                "converged in {:.1} s: every resource is in sync",
                started.elapsed().as_secs_f64()
            ));
            print_hints(&sandbox);
        }
    }
    say("stopping converged, the hosts and moto");
    drop(sandbox);
}

fn say(text: &str) {
    println!("==> {text}");
    let _ = std::io::stdout().flush();
}

/// Sets a flag on SIGINT or SIGTERM.
fn ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let set = std::sync::Arc::clone(&flag);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        });
        set.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    flag
}

/// `in sync 12/30 | security_group 1/1 instance 3/3 ... | now: <a converging or failed reason>`
fn progress(status: &serde_json::Value) -> String {
    let resources = status["resources"].as_array().cloned().unwrap_or_default();
    let mut per_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for kind in status["kinds"].as_array().into_iter().flatten() {
        per_kind
            .entry(kind["kind"].as_str().unwrap_or_default().to_owned())
            .or_default();
    }
    let mut busy = None;
    for resource in &resources {
        let entry = per_kind
            .entry(resource["kind"].as_str().unwrap_or_default().to_owned())
            .or_default();
        entry.1 += 1;
        if resource["condition"] == "in_sync" {
            entry.0 += 1;
        } else if busy.is_none() {
            busy = Some(format!(
                "{}/{} {}: {}",
                resource["kind"].as_str().unwrap_or_default(),
                resource["name"].as_str().unwrap_or_default(),
                resource["condition"].as_str().unwrap_or_default(),
                resource["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(90)
                    .collect::<String>()
            ));
        }
    }
    let in_sync: usize = per_kind.values().map(|(ok, _)| ok).sum();
    let total: usize = per_kind.values().map(|(_, all)| all).sum();
    let kinds: Vec<String> = per_kind
        .iter()
        .filter(|(_, (_, all))| *all > 0)
        .map(|(kind, (ok, all))| format!("{kind} {ok}/{all}"))
        .collect();
    let now = busy.map(|b| format!(" | now: {b}")).unwrap_or_default();
    format!("in sync {in_sync}/{total} | {}{now}", kinds.join(" "))
}

fn print_hints(sandbox: &Sandbox) {
    let base = &sandbox.base_url;
    let token = sandbox.work.path().join("token");
    println!(
        r#"
  /status   {base}/status
  /metrics  {base}/metrics
  try:
    target/release/converged status --url {base}
    AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_EC2_METADATA_DISABLED=true \
      target/release/converged plan --config {config}      # exit 0: nothing to do
    $EDITOR {desired}/apps/click-count-production.json   # e.g. "instances": 2, then watch /status
    curl -X POST -H "Authorization: Bearer $(cat {token})" {base}/v1/reconcile
  logs: {log}
  Ctrl-C stops everything the sandbox started.
"#,
        config = sandbox.config.display(),
        desired = sandbox.desired.display(),
        token = token.display(),
        log = sandbox.log_path().display(),
    );
}
