//! A third-party client, the PyPI `marathon` library, drives the simulator without errors.
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Cluster;

const SCRIPT: &str = r#"
import collections, collections.abc, sys, time
# marathon 0.13.0 still uses `collections.Iterable`, removed in Python 3.10: a client-side shim.
collections.Iterable = collections.abc.Iterable
from marathon import MarathonClient
from marathon.models import MarathonApp
c = MarathonClient(sys.argv[1])
c.create_app('py-app', MarathonApp(cmd='sleep 100', mem=16, cpus=0.1, instances=1))
assert [a.id for a in c.list_apps()] == ['/py-app']
deadline = time.time() + 20
while c.list_deployments() and time.time() < deadline:
    time.sleep(0.1)
c.scale_app('py-app', instances=2)
while c.list_deployments() and time.time() < deadline:
    time.sleep(0.1)
app = c.get_app('py-app')
assert app.instances == 2 and app.tasks_running == 2, (app.instances, app.tasks_running)
app.cmd = 'sleep 200'
c.update_app('py-app', app)
assert isinstance(c.list_deployments(), list)
while c.list_deployments() and time.time() < deadline:
    time.sleep(0.1)
assert c.get_app('py-app').cmd == 'sleep 200'
assert len(c.list_tasks('py-app')) == 2
c.delete_app('py-app')
while c.list_apps() and time.time() < deadline:
    time.sleep(0.1)
assert c.list_apps() == []
print('ok')
"#;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONVERGED_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        p.exists(),
        "no Python venv at {}: python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt",
        p.display()
    );
    p
}

#[test]
fn marathon_python_client_round_trip() {
    let c = Cluster::start(
        "1.10",
        &[("agent-1", "cpus:4;mem:4096;ports:[31000-32000]", "")],
        &[],
    );
    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(&c.marathon.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {stderr}\nsim log: {}",
        c.marathon.log()
    );
}
