//! The `host_service` kind with the exec runtime against three real sshd test hosts: start
//! from nothing, a second pass that only reads, a killed process restarted, a changed host key
//! refused with nothing run, an unreachable host isolated, and an address outside
//! `allowed_networks` refused without being dialled.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use converged_core::reconciler::Registry;
use converged_core::{DesiredState, ErrorClass, load_desired_state};
use converged_hosts::ssh::CommandCounts;
use converged_hosts::{
    AllowedNetworks, HostLayer, HostServices, OverrideAddresses, Runtime, RuntimeKind, SshPool,
    SshSettings,
};
use converged_testkit::driver::{Driver, Outcome};
use converged_testkit::{HostOptions, NoMetrics, TestHosts};

const HOSTS: [(&str, &str); 3] = [
    ("alpha", "127.0.21.1"),
    ("bravo", "127.0.21.2"),
    ("charlie", "127.0.21.3"),
];

fn write_desired(dir: &Path, secret_file: &Path, extra_node: &str) -> DesiredState {
    let mut nodes = String::new();
    for (name, _) in HOSTS {
        nodes.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\ninstance_type = \"t3.micro\"\nami = \"ami-1e749f67\"\nroles = [\"marathon\"]\n\n"
        ));
    }
    nodes.push_str(extra_node);
    let cluster = format!(
        r#"[cluster]
name = "hosts-test"
region = "eu-west-1"

[network]
vpc_id = "vpc-0a1b2c3d4e5f60718"
subnet_id = "subnet-0a1b2c3d4e5f60718"

{nodes}
[services.marathon]
env = {{ GREETING = "hello 'quoted' $(world)", TOKEN = {{ secret = "file:{secret}" }} }}
exec = {{ command = ["sh", "-c", "echo \"started on {{{{node}}}} at {{{{address}}}}: $GREETING\"; exec sleep 600"] }}
"#,
        secret = secret_file.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cluster.toml"), cluster).unwrap();
    load_desired_state(dir).unwrap_or_else(|err| panic!("invalid desired state: {err:?}"))
}

struct Setup {
    hosts: TestHosts,
    driver: Driver,
    counts: Arc<CommandCounts>,
    state: tempfile::TempDir,
}

fn setup(extra_overrides: &[(&str, String)]) -> Setup {
    let hosts = TestHosts::start(&HOSTS, &HostOptions::default());
    let state = tempfile::tempdir().unwrap();
    let mut overrides: BTreeMap<String, String> = hosts
        .hosts
        .iter()
        .map(|host| (host.name.clone(), host.ssh.to_string()))
        .collect();
    for (node, address) in extra_overrides {
        overrides.insert((*node).to_owned(), address.clone());
    }
    let allowed = AllowedNetworks::new(vec!["127.0.21.0/24".parse().unwrap()]);
    let mut settings = SshSettings::new(
        "root",
        hosts.key_file.clone(),
        state.path().join("known_hosts"),
    );
    settings.allowed_networks = allowed.clone();
    settings.connect_timeout = Duration::from_secs(3);
    let pool = Arc::new(SshPool::new(settings, Arc::new(NoMetrics)));
    let counts = pool.counts();
    let layer = HostLayer::new(
        pool,
        Arc::new(OverrideAddresses::new(overrides)),
        Runtime::new(RuntimeKind::Exec, hosts.root.display().to_string()),
        allowed,
    );
    let mut registry = Registry::default();
    registry.register(HostServices::new(Arc::new(layer)));
    Setup {
        hosts,
        driver: Driver::new(registry),
        counts,
        state,
    }
}

fn pid(hosts: &TestHosts, i: usize) -> String {
    let recorded = std::fs::read_to_string(hosts.path(i, "marathon/pid")).unwrap();
    recorded.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_start_stay_up_and_survive_faults_in_isolation() {
    let Setup {
        mut hosts,
        driver,
        counts,
        state,
    } = setup(&[]);
    let secret = state.path().join("token");
    std::fs::write(&secret, "s3cret-token\n").unwrap();
    let desired = write_desired(&state.path().join("desired"), &secret, "");

    let started = Instant::now();
    let first = driver.pass(&desired).await;
    assert_eq!(
        first.applied(),
        [
            "host_service/alpha/marathon start",
            "host_service/bravo/marathon start",
            "host_service/charlie/marathon start"
        ],
        "{first:#?}"
    );
    let second = driver.pass(&desired).await;
    assert!(second.all_in_sync(), "{second:#?}");
    eprintln!(
        "three hosts started and observed in {:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(hosts.path(1, "marathon/log")).unwrap();
    assert_eq!(
        log,
        "started on bravo at 127.0.21.2: hello 'quoted' $(world)\n"
    );
    let run = std::fs::read_to_string(hosts.path(1, "marathon/run.sh")).unwrap();
    assert!(run.contains("s3cret-token"), "the secret reaches the host");
    let hostname = hosts.exec(1, "hostname");
    assert_eq!(String::from_utf8_lossy(&hostname.stdout), "bravo\n");

    // A converged world sees only reads, over the pooled sessions.
    let (writes, connects) = (counts.writes(), counts.connects());
    let reads = counts.reads();
    for _ in 0..2 {
        assert!(driver.pass(&desired).await.all_in_sync());
    }
    assert_eq!(counts.writes(), writes, "a converged pass must not write");
    assert_eq!(counts.reads(), reads + 6, "one read per host per pass");
    assert_eq!(counts.connects(), connects, "sessions are reused");

    // Killed behind converged's back: restarted, with a new pid.
    let old = pid(&hosts, 0);
    let killed = hosts.exec(0, &format!("kill -9 {old}"));
    assert!(killed.status.success(), "{killed:?}");
    let restarted = driver.pass(&desired).await;
    assert_eq!(
        restarted.get("host_service/alpha/marathon"),
        Some(&Outcome::Applied(vec!["start"])),
        "{restarted:#?}"
    );
    assert_eq!(
        restarted.get("host_service/bravo/marathon"),
        Some(&Outcome::InSync)
    );
    assert_ne!(pid(&hosts, 0), old);
    assert!(driver.pass(&desired).await.all_in_sync());

    // A rebuilt host with a new key: refused before anything runs; the others carry on.
    let before = pid(&hosts, 1);
    hosts.stop(1);
    hosts.replace_host_key(1).unwrap();
    hosts.launch(1).unwrap();
    let reads = counts.reads();
    let writes = counts.writes();
    let refused = driver.pass(&desired).await;
    match refused.get("host_service/bravo/marathon") {
        Some(Outcome::Failed(reason)) => {
            assert!(reason.contains("host key"), "{reason}");
            assert!(reason.contains("nothing is run"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refused.get("host_service/alpha/marathon"),
        Some(&Outcome::InSync)
    );
    assert_eq!(counts.reads(), reads + 2, "no command ran on bravo");
    assert_eq!(counts.writes(), writes);
    assert_eq!(
        pid(&hosts, 1),
        before,
        "nothing restarted the service on bravo"
    );

    // An unreachable host: its services fail with a transient error (so the engine backs
    // off), the other hosts are unaffected.
    hosts.stop(2);
    let unreachable = driver.pass(&desired).await;
    match unreachable.get("host_service/charlie/marathon") {
        Some(Outcome::ActionFailed {
            verb,
            class,
            message,
        }) => {
            assert_eq!(*verb, "reach");
            assert_eq!(*class, ErrorClass::Transient);
            assert!(message.contains("charlie"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        unreachable.get("host_service/alpha/marathon"),
        Some(&Outcome::InSync)
    );
    hosts.launch(2).unwrap();
    let back = driver.pass(&desired).await;
    assert_eq!(
        back.get("host_service/charlie/marathon"),
        Some(&Outcome::Applied(vec!["start"])),
        "the host came back empty (its processes died with it): {back:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_outside_allowed_networks_is_never_dialled() {
    let outside = TcpListener::bind("127.0.99.1:0").unwrap();
    outside.set_nonblocking(true).unwrap();
    let address = outside.local_addr().unwrap().to_string();
    let Setup {
        hosts: _hosts,
        driver,
        state,
        ..
    } = setup(&[("delta", address)]);
    let secret = state.path().join("token");
    std::fs::write(&secret, "x").unwrap();
    let desired = write_desired(
        &state.path().join("desired"),
        &secret,
        "[[nodes]]\nname = \"delta\"\ninstance_type = \"t3.micro\"\nami = \"ami-1e749f67\"\nroles = [\"marathon\"]\n",
    );
    let pass = driver.pass(&desired).await;
    match pass.get("host_service/delta/marathon") {
        Some(Outcome::Failed(reason)) => {
            assert!(reason.contains("outside ssh.allowed_networks"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pass.get("host_service/alpha/marathon"),
        Some(&Outcome::Applied(vec!["start"]))
    );
    assert!(
        outside.accept().is_err(),
        "nothing may connect to an address outside allowed_networks"
    );
}
