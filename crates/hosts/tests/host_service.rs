//! The `host_service` kind with the exec runtime against three real sshd test hosts: start
//! from nothing, a second pass that only reads, a killed process restarted, a changed host key
//! refused with nothing run, an unreachable host isolated, and an address outside
//! `allowed_networks` refused without being dialled. A read-only registry (`converged plan`)
//! meeting hosts for the first time pins no key, says which keys it would pin, and runs
//! nothing that changes a host.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use converged_core::plan::Verdict;
use converged_core::reconciler::Registry;
use converged_core::{DesiredState, ErrorClass, Kind, load_desired_state};
use converged_hosts::ssh::CommandCounts;
use converged_hosts::{
    Access, AllowedNetworks, HostLayer, HostServices, OverrideAddresses, Runtime, RuntimeKind,
    SshPool, SshSettings,
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

fn setup(extra_overrides: &[(&str, String)], access: Access) -> Setup {
    let hosts = TestHosts::start(&HOSTS, &HostOptions::default());
    let state = tempfile::tempdir().unwrap();
    let (driver, counts) = driver_for(&hosts, state.path(), extra_overrides, access);
    Setup {
        hosts,
        driver,
        counts,
        state,
    }
}

/// A `host_service` registry over `hosts`, pinning keys in `<state>/known_hosts`.
fn driver_for(
    hosts: &TestHosts,
    state: &Path,
    extra_overrides: &[(&str, String)],
    access: Access,
) -> (Driver, Arc<CommandCounts>) {
    let mut overrides: BTreeMap<String, String> = hosts
        .hosts
        .iter()
        .map(|host| (host.name.clone(), host.ssh.to_string()))
        .collect();
    for (node, address) in extra_overrides {
        overrides.insert((*node).to_owned(), address.clone());
    }
    let allowed = AllowedNetworks::new(vec!["127.0.21.0/24".parse().unwrap()]);
    let mut settings = SshSettings::new("root", hosts.key_file.clone(), state.join("known_hosts"));
    settings.allowed_networks = allowed.clone();
    settings.connect_timeout = Duration::from_secs(3);
    settings.access = access;
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
    (Driver::new(registry), counts)
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
    } = setup(&[], Access::ReadWrite);
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
    } = setup(&[("delta", address)], Access::ReadWrite);
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

/// Each resource's verdict with the reason of its first action (or its own), observed and
/// planned through `registry` without applying anything.
async fn plan_reasons(registry: &Registry, desired: &DesiredState) -> BTreeMap<String, String> {
    let plan = registry
        .get(Kind::HostService)
        .unwrap()
        .observe_and_plan(desired)
        .await
        .unwrap();
    plan.resources
        .into_iter()
        .map(|resource| {
            let summary = match &resource.verdict {
                Verdict::Act { actions } => format!("{}: {}", actions[0].verb, actions[0].reason),
                Verdict::InSync => "in_sync".to_owned(),
                other => format!("{other:?}"),
            };
            (resource.id.name, summary)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_observation_of_new_hosts_pins_nothing_and_names_the_keys_it_would_pin() {
    let Setup {
        hosts,
        driver: reading,
        counts,
        state,
    } = setup(&[], Access::ReadOnly);
    let secret = state.path().join("token");
    std::fs::write(&secret, "x").unwrap();
    let desired = write_desired(&state.path().join("desired"), &secret, "");
    let known_hosts = state.path().join("known_hosts");

    let preview = plan_reasons(&reading.registry, &desired).await;
    assert!(
        !known_hosts.exists(),
        "no key pinned by a read-only observation"
    );
    assert!(!known_hosts.with_extension("tmp").exists());
    let mut would_pin = BTreeMap::new();
    for (name, _) in HOSTS {
        let summary = &preview[&format!("{name}/marathon")];
        let (_, key) = summary
            .split_once("would pin host key ")
            .unwrap_or_else(|| panic!("{summary}"));
        let key = key
            .strip_suffix(&format!(" for {name}"))
            .unwrap_or_else(|| panic!("{summary}"));
        assert!(
            key.starts_with("ssh-ed25519 SHA256:"),
            "type and fingerprint: {key}"
        );
        assert!(
            summary.starts_with("start: not running on the host; "),
            "{summary}"
        );
        would_pin.insert(name, key.to_owned());
    }

    // A read-only registry cannot change a host, even when asked to.
    let plan = reading
        .registry
        .get(Kind::HostService)
        .unwrap()
        .observe_and_plan(&desired)
        .await
        .unwrap();
    let start = plan.resources[0].actions()[0].clone();
    let refused = reading
        .registry
        .get(Kind::HostService)
        .unwrap()
        .apply(&start)
        .await
        .unwrap_err();
    assert_eq!(refused.class(), ErrorClass::Unsafe, "{refused}");
    assert!(refused.to_string().contains("read-only"), "{refused}");
    assert_eq!(counts.writes(), 0, "no command that changes a host ran");
    assert!(!hosts.path(0, "marathon/pid").exists());
    assert!(!known_hosts.exists());

    // The daemon's registry pins exactly the keys the plan named, and plans the same actions.
    let (writing, _) = driver_for(&hosts, state.path(), &[], Access::ReadWrite);
    let planned = plan_reasons(&writing.registry, &desired).await;
    let pins = std::fs::read_to_string(&known_hosts).unwrap();
    let mut pinned = BTreeMap::new();
    for line in pins.lines() {
        let (address, key) = line.split_once(' ').unwrap();
        let key = russh::keys::PublicKey::from_openssh(key).unwrap();
        let host = hosts
            .hosts
            .iter()
            .find(|host| host.ssh.to_string() == address)
            .unwrap();
        pinned.insert(
            host.name.as_str(),
            format!(
                "{} {}",
                key.algorithm().as_str(),
                key.fingerprint(russh::keys::HashAlg::Sha256)
            ),
        );
    }
    let pinned: BTreeMap<&str, String> = pinned.into_iter().collect();
    assert_eq!(
        pinned,
        would_pin.into_iter().collect::<BTreeMap<&str, String>>(),
        "the keys the plan said it would pin"
    );
    for (name, summary) in &planned {
        let without_note = preview[name]
            .split("; would pin host key")
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(summary, &without_note, "{name}: the same plan, pins aside");
    }
    let again = plan_reasons(&reading.registry, &desired).await;
    assert_eq!(again, planned, "once pinned, there is nothing left to pin");
}
