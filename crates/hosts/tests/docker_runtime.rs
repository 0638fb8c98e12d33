//! The docker runtime end to end against an sshd test host whose `docker` is a recording
//! script that keeps container state: start, a read-only second pass (one `docker ps`),
//! replace on a spec change (pull first, then stop, remove, run), start of an exited container.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use converged_core::reconciler::Registry;
use converged_core::{DesiredState, load_desired_state};
use converged_hosts::{
    AllowedNetworks, HostLayer, HostServices, OverrideAddresses, Runtime, RuntimeKind, SshPool,
    SshSettings,
};
use converged_testkit::driver::{Driver, Outcome};
use converged_testkit::{HostOptions, NoMetrics, TestHosts};

/// A fake `docker` that appends every call to `<base>/<hostname>/calls` and keeps one
/// `service \t state \t hash` line per container, printed by `ps`.
fn recording_docker(base: &Path) -> String {
    format!(
        r#"#!/bin/sh
dir="{base}/$(hostname)"; mkdir -p "$dir/c"
printf '%s\n' "$*" >> "$dir/calls"
cmd=$1; shift
case "$cmd" in
ps) for f in "$dir"/c/*; do [ -f "$f" ] && cat "$f"; done; exit 0;;
pull|restart) exit 0;;
stop) [ -f "$dir/c/$1" ] && sed -i 's/\trunning\t/\texited\t/' "$dir/c/$1"; exit 0;;
rm) [ "$1" = -f ] && shift; [ -f "$dir/c/$1" ] || exit 1; rm -f "$dir/c/$1"; exit 0;;
run) name=; svc=; hash=
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) name=$2; shift;;
      --label) case "$2" in converged.service=*) svc=${{2#*=}};; converged.spec-hash=*) hash=${{2#*=}};; esac; shift;;
    esac
    shift
  done
  printf '%s\trunning\t%s\n' "$svc" "$hash" > "$dir/c/$name"; echo 0123abcd; exit 0;;
esac
echo "unexpected docker $cmd" >&2; exit 1
"#,
        base = base.display()
    )
}

fn write_desired(dir: &Path, image: &str) -> DesiredState {
    let cluster = format!(
        r#"[cluster]
name = "docker-test"
region = "eu-west-1"

[network]
vpc_id = "vpc-0a1b2c3d4e5f60718"
subnet_id = "subnet-0a1b2c3d4e5f60718"

[[nodes]]
name = "edge"
instance_type = "t3.micro"
ami = "ami-1e749f67"
roles = ["marathon"]

[services.marathon]
image = "{image}"
args = ["--master", "zk://{{{{zookeeper_connect}}}}/mesos"]
env = {{ MARATHON_HOSTNAME = "{{{{address}}}}", NOTE = "it's $(quoted)" }}
volumes = ["/var/run/docker.sock:/var/run/docker.sock"]
"#
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cluster.toml"), cluster).unwrap();
    load_desired_state(dir).unwrap_or_else(|err| panic!("invalid desired state: {err:?}"))
}

fn take_calls(calls: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(calls).unwrap_or_default();
    std::fs::remove_file(calls).ok();
    text.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runtime_observes_starts_and_replaces_through_a_recording_docker() {
    let record = tempfile::tempdir().unwrap();
    let options = HostOptions {
        docker_script: Some(recording_docker(record.path())),
    };
    let hosts = TestHosts::start(&[("edge", "127.0.24.1")], &options);
    let state = tempfile::tempdir().unwrap();
    let allowed = AllowedNetworks::new(vec!["127.0.24.0/24".parse().unwrap()]);
    let mut settings = SshSettings::new(
        "root",
        hosts.key_file.clone(),
        state.path().join("known_hosts"),
    );
    settings.allowed_networks = allowed.clone();
    let root = hosts.root.display().to_string();
    let layer = HostLayer::new(
        Arc::new(SshPool::new(settings, Arc::new(NoMetrics))),
        Arc::new(OverrideAddresses::new(BTreeMap::from([(
            "edge".to_owned(),
            hosts.hosts[0].ssh.to_string(),
        )]))),
        Runtime::new(RuntimeKind::Docker, root.clone()),
        allowed,
    );
    let mut registry = Registry::default();
    registry.register(HostServices::new(Arc::new(layer)));
    let driver = Driver::new(registry);
    let desired_dir = state.path().join("desired");
    let calls = record.path().join("edge/calls");
    let ps = "ps -a --filter label=converged.service --format {{.Label \"converged.service\"}}\t{{.State}}\t{{.Label \"converged.spec-hash\"}}";

    let desired = write_desired(&desired_dir, "mesoscloud/marathon:1.1.1-centos-7");
    let first = driver.pass(&desired).await;
    assert_eq!(first.applied(), ["host_service/edge/marathon start"]);
    let started = take_calls(&calls);
    assert_eq!(started.len(), 3, "{started:#?}");
    assert_eq!(started[0], ps);
    assert_eq!(started[1], "rm -f converged-marathon");
    let run = &started[2];
    assert!(
        run.starts_with("run -d --name converged-marathon --restart unless-stopped --net host --label converged.service=marathon --label converged.spec-hash="),
        "{run}"
    );
    assert!(
        run.ends_with(&format!(
            "--env-file {root}/marathon/env -v /var/run/docker.sock:/var/run/docker.sock mesoscloud/marathon:1.1.1-centos-7 --master zk:///mesos"
        )),
        "{run}"
    );
    assert_eq!(
        std::fs::read_to_string(hosts.path(0, "marathon/env")).unwrap(),
        "MARATHON_HOSTNAME=127.0.24.1\nNOTE=it's $(quoted)\n"
    );

    // Converged: one `docker ps` per pass, nothing else.
    assert!(driver.pass(&desired).await.all_in_sync());
    assert_eq!(take_calls(&calls), [ps]);

    // A new image: pull first, then stop, remove, run with the new hash label.
    let bumped = write_desired(&desired_dir, "mesoscloud/marathon:1.1.2-centos-7");
    let replaced = driver.pass(&bumped).await;
    assert_eq!(
        replaced.get("host_service/edge/marathon"),
        Some(&Outcome::Applied(vec!["replace"]))
    );
    let replace_calls = take_calls(&calls);
    let verbs: Vec<&str> = replace_calls
        .iter()
        .map(|call| call.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        verbs,
        ["ps", "pull", "stop", "rm", "run"],
        "{replace_calls:#?}"
    );
    assert_eq!(replace_calls[1], "pull mesoscloud/marathon:1.1.2-centos-7");
    assert_ne!(replace_calls[4], started[2], "the hash label changed");
    assert!(driver.pass(&bumped).await.all_in_sync());
    take_calls(&calls);

    // An exited container is started again.
    let container = record.path().join("edge/c/converged-marathon");
    let line = std::fs::read_to_string(&container).unwrap();
    std::fs::write(&container, line.replace("\trunning\t", "\texited\t")).unwrap();
    let restarted = driver.pass(&bumped).await;
    assert_eq!(
        restarted.get("host_service/edge/marathon"),
        Some(&Outcome::Applied(vec!["start"]))
    );
    assert!(driver.pass(&bumped).await.all_in_sync());
}
