//! The AWS kinds against a real moto server, driven by the real engine: convergence from
//! nothing, zero writes once converged, repairs after hand edits, policies, observe mode, the
//! plan, crash safety, throttling and denied requests.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{IpPermission, IpRange};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use converged::metrics::Metrics;
use converged::planner::Planner;
use converged_aws::operation::Operation;
use converged_core::condition::Condition;
use support::proxy::{FaultProxy, Faults};
use support::{Harness, REGION, World, tag};

const NODES: [&str; 3] = ["services", "staging", "production"];

/// Every ingress rule of the cluster's group as `protocol from-to peer`, the group itself as
/// `self`.
async fn ingress(world: &World) -> BTreeSet<String> {
    let groups = world
        .ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("converged-clickcount")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let group = &groups.security_groups()[0];
    let own = group.group_id().unwrap();
    let mut rules = BTreeSet::new();
    for permission in group.ip_permissions() {
        let head = format!(
            "{} {}-{}",
            permission.ip_protocol().unwrap(),
            permission.from_port().unwrap_or(-1),
            permission.to_port().unwrap_or(-1)
        );
        for range in permission.ip_ranges() {
            rules.insert(format!("{head} {}", range.cidr_ip().unwrap()));
        }
        for pair in permission.user_id_group_pairs() {
            let peer = if pair.group_id() == Some(own) {
                "self"
            } else {
                "other"
            };
            rules.insert(format!("{head} {peer}"));
        }
    }
    rules
}

fn least_privilege() -> BTreeSet<String> {
    [
        "tcp 22-22 198.51.100.0/24",
        "tcp 5050-5050 198.51.100.0/24",
        "tcp 8080-8080 198.51.100.0/24",
        "tcp 80-80 0.0.0.0/0",
        "tcp 443-443 0.0.0.0/0",
        "tcp 2181-2181 self",
        "tcp 2888-2888 self",
        "tcp 3888-3888 self",
        "tcp 5050-5050 self",
        "tcp 5051-5051 self",
        "tcp 8080-8080 self",
        "tcp 31000-32000 self",
        "icmp -1--1 self",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn record_names() -> Vec<&'static str> {
    vec![
        "services.clickcount.example.org.",
        "staging.clickcount.example.org.",
        "production.clickcount.example.org.",
        "gitlab.clickcount.example.org.",
        "traefik.clickcount.example.org.",
        "mesos.clickcount.example.org.",
        "staging.app.clickcount.example.org.",
        "app.clickcount.example.org.",
    ]
}

async fn change_record(
    world: &World,
    action: ChangeAction,
    name: &str,
    record_type: RrType,
    value: &str,
) {
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(record_type)
        .ttl(300)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap();
    world
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(&world.zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(action)
                        .resource_record_set(set)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn public_ip(world: &World, node: &str) -> String {
    let live = world.live_instances().await;
    let instance = live
        .iter()
        .find(|i| tag(i, "converged:node") == Some(node))
        .unwrap_or_else(|| panic!("no live instance for {node}"));
    instance
        .public_ip_address()
        .expect("a public address")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_cluster_converges_from_nothing_then_a_cycle_writes_nothing() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.cycle().await;
    for name in record_names() {
        let record = harness.resource("dns_record", name);
        assert_eq!(record.condition, Condition::Blocked, "{record:?}");
        let on = record.blocked_on.expect("blocked on its instance");
        assert_eq!(on.kind, converged_core::Kind::Instance, "{name}");
        assert!(
            record.reason.contains(&format!("waiting for {on}")),
            "{}",
            record.reason
        );
    }
    let cycles = 1 + harness.converge(8).await;
    assert!(cycles <= 6, "converged in {cycles} cycles");
    assert!(
        harness.requests(Operation::GetChange, "success") >= 1,
        "the record changes were followed until INSYNC"
    );

    assert_eq!(ingress(&world).await, least_privilege());

    let live = world.live_instances().await;
    assert_eq!(live.len(), 3, "{live:#?}");
    for (node, instance_type, volume_gb) in [
        ("services", "m4.large", 50),
        ("staging", "t2.micro", 20),
        ("production", "t2.micro", 20),
    ] {
        let instance = live
            .iter()
            .find(|i| tag(i, "converged:node") == Some(node))
            .unwrap_or_else(|| panic!("no instance for {node}"));
        assert_eq!(tag(instance, "converged:cluster"), Some("clickcount"));
        assert_eq!(
            tag(instance, "Name"),
            Some(format!("clickcount-{node}").as_str())
        );
        assert_eq!(tag(instance, "converged:generation"), Some("1"));
        assert_eq!(instance.instance_type().unwrap().as_str(), instance_type);
        assert_eq!(instance.key_name(), Some("clickcount-admin"));
        assert_eq!(instance.subnet_id(), Some(world.subnet_id.as_str()));
        assert_eq!(
            world.root_volume_size(instance).await,
            Some(volume_gb),
            "{node}"
        );
    }

    for name in record_names() {
        let node = match name {
            "services.clickcount.example.org."
            | "gitlab.clickcount.example.org."
            | "traefik.clickcount.example.org."
            | "mesos.clickcount.example.org." => "services",
            "staging.clickcount.example.org." | "staging.app.clickcount.example.org." => "staging",
            _ => "production",
        };
        assert_eq!(
            world.record_value(name, "A").await,
            Some(vec![public_ip(&world, node).await]),
            "{name}"
        );
        assert_eq!(
            world
                .record_value(&format!("_converged.{name}"), "TXT")
                .await,
            Some(vec!["\"converged:cluster=clickcount\"".to_owned()]),
            "{name}"
        );
    }

    let writes = harness.mutating_requests();
    let requests = harness.total_requests();
    let in_requests = harness.seconds_in_requests();
    let started = Instant::now();
    let report = harness.cycle().await;
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(report.applied, 0);
    assert_eq!(
        harness.mutating_requests(),
        writes,
        "a converged world gets no writes"
    );
    let no_op_requests = harness.total_requests() - requests;
    let moto_seconds = harness.seconds_in_requests() - in_requests;
    eprintln!(
        "no-op cycle of the example cluster: {no_op_requests} AWS requests, {wall:.3} s wall, {moto_seconds:.3} s of request latency summed (the kinds observe concurrently)"
    );
    assert_eq!(
        no_op_requests, 4,
        "DescribeSecurityGroups, DescribeInstances (shared by the instance and DNS observations), DescribeVolumes (root volume sizes), ListResourceRecordSets; no GetChange once every change was seen INSYNC"
    );
    assert!(
        harness
            .resources()
            .iter()
            .all(|r| r.condition == Condition::InSync)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_instance_is_recreated_and_its_records_follow() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.converge(8).await;
    let old_ip = public_ip(&world, "staging").await;
    let old = world
        .live_instances()
        .await
        .into_iter()
        .find(|i| tag(i, "converged:node") == Some("staging"))
        .unwrap();
    world
        .ec2
        .terminate_instances()
        .instance_ids(old.instance_id().unwrap())
        .send()
        .await
        .unwrap();

    harness.converge(6).await;
    let live = world.live_instances().await;
    assert_eq!(live.len(), 3);
    let new = live
        .iter()
        .find(|i| tag(i, "converged:node") == Some("staging"))
        .unwrap();
    assert_ne!(new.instance_id(), old.instance_id());
    assert_eq!(tag(new, "converged:generation"), Some("2"));
    let new_ip = new.public_ip_address().unwrap().to_owned();
    assert_ne!(new_ip, old_ip);
    for name in [
        "staging.clickcount.example.org.",
        "staging.app.clickcount.example.org.",
    ] {
        assert_eq!(
            world.record_value(name, "A").await,
            Some(vec![new_ip.clone()]),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_to_the_group_are_undone_without_touching_other_rules() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.converge(8).await;
    let group_id = world
        .ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("converged-clickcount")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .group_id()
        .unwrap()
        .to_owned();
    let rule = |from: i32, to: i32, cidr: &str| {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(from)
            .to_port(to)
            .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
            .build()
    };
    world
        .ec2
        .authorize_security_group_ingress()
        .group_id(&group_id)
        .ip_permissions(rule(0, 65535, "0.0.0.0/0"))
        .send()
        .await
        .unwrap();
    world
        .ec2
        .revoke_security_group_ingress()
        .group_id(&group_id)
        .ip_permissions(rule(22, 22, "198.51.100.0/24"))
        .send()
        .await
        .unwrap();
    assert_ne!(ingress(&world).await, least_privilege());

    harness.converge(3).await;
    assert_eq!(ingress(&world).await, least_privilege());
    assert_eq!(
        harness.requests(Operation::AuthorizeSecurityGroupIngress, "success"),
        2,
        "the create, then the missing SSH rule"
    );
    assert_eq!(
        harness.requests(Operation::RevokeSecurityGroupIngress, "success"),
        1,
        "only the allow-all rule"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_restored_foreign_ones_untouched_and_conflicts_reported() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.converge(8).await;
    let production = public_ip(&world, "production").await;
    change_record(
        &world,
        ChangeAction::Delete,
        "app.clickcount.example.org.",
        RrType::A,
        &production,
    )
    .await;
    change_record(
        &world,
        ChangeAction::Upsert,
        "gitlab.clickcount.example.org.",
        RrType::A,
        "198.51.100.50",
    )
    .await;
    change_record(
        &world,
        ChangeAction::Upsert,
        "foreign.clickcount.example.org.",
        RrType::A,
        "198.51.100.77",
    )
    .await;
    change_record(
        &world,
        ChangeAction::Upsert,
        "wiki.clickcount.example.org.",
        RrType::A,
        "198.51.100.88",
    )
    .await;
    let with_wiki = world.example_cluster().replacen(
        "\n[services.zookeeper]",
        "\n[[dns.records]]\nname = \"wiki.clickcount.example.org.\"\nnode = \"services\"\n\n[services.zookeeper]",
        1,
    );
    harness.write_cluster(&with_wiki);

    for _ in 0..3 {
        harness.cycle().await;
    }
    assert_eq!(
        world.record_value("app.clickcount.example.org.", "A").await,
        Some(vec![production])
    );
    assert_eq!(
        world
            .record_value("gitlab.clickcount.example.org.", "A")
            .await,
        Some(vec![public_ip(&world, "services").await])
    );
    assert_eq!(
        world
            .record_value("foreign.clickcount.example.org.", "A")
            .await,
        Some(vec!["198.51.100.77".to_owned()])
    );
    assert_eq!(
        world
            .record_value("wiki.clickcount.example.org.", "A")
            .await,
        Some(vec!["198.51.100.88".to_owned()])
    );
    assert_eq!(
        world
            .record_value("_converged.wiki.clickcount.example.org.", "TXT")
            .await,
        None
    );
    let wiki = harness.resource("dns_record", "wiki.clickcount.example.org.");
    assert_eq!(wiki.condition, Condition::Drifted);
    assert!(
        wiki.reason.contains("conflict") && wiki.reason.contains("198.51.100.88"),
        "{}",
        wiki.reason
    );
    assert!(
        harness.resources().iter().all(|r| r.kind != "dns_record"
            || r.name == "wiki.clickcount.example.org."
            || r.condition == Condition::InSync),
        "{:#?}",
        harness.resources()
    );
}

fn with_staging(cluster: &str, instance_type: &str, policy: &str) -> String {
    cluster
        .replacen(
            "instance_type = \"t2.micro\"",
            &format!("instance_type = \"{instance_type}\""),
            1,
        )
        .replace(
            "attributes = { env = \"staging\" }",
            &format!("attributes = {{ env = \"staging\" }}\n{policy}"),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_change_waits_for_the_policy_then_stops_modifies_and_starts() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.converge(8).await;
    let before = world.live_instances().await;

    harness.write_cluster(&with_staging(&world.example_cluster(), "t2.small", ""));
    harness.cycle().await;
    harness.cycle().await;
    let staging = harness.resource("instance", "staging");
    assert_eq!(staging.condition, Condition::Drifted);
    assert!(
        staging.reason.contains("t2.micro → t2.small")
            && staging.reason.contains("allow_resize is off"),
        "{}",
        staging.reason
    );
    assert_eq!(harness.all_requests(Operation::StopInstances), 0);

    harness.write_cluster(&with_staging(
        &world.example_cluster(),
        "t2.small",
        "policy = { allow_resize = true }",
    ));
    harness.converge(8).await;
    let after = world.live_instances().await;
    let staging = after
        .iter()
        .find(|i| tag(i, "converged:node") == Some("staging"))
        .unwrap();
    assert_eq!(staging.instance_type().unwrap().as_str(), "t2.small");
    assert!(
        before
            .iter()
            .any(|i| i.instance_id() == staging.instance_id()),
        "the same instance, resized"
    );
    assert_eq!(harness.requests(Operation::StopInstances, "success"), 1);
    assert_eq!(
        harness.requests(Operation::ModifyInstanceAttribute, "success"),
        1
    );
    assert_eq!(harness.requests(Operation::StartInstances, "success"), 1);
    assert_eq!(after.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_reports_drift_and_sends_no_writes() {
    let world = World::new().await;
    let observe = world.example_cluster().replace(
        "region = \"eu-west-1\"",
        "region = \"eu-west-1\"\nmode = \"observe\"",
    );
    let mut harness = Harness::new(&world.moto.url, &observe);
    for _ in 0..2 {
        harness.cycle().await;
    }
    assert_eq!(harness.mutating_requests(), 0);
    let group = harness.resource("security_group", "converged-clickcount");
    assert_eq!(group.condition, Condition::Drifted);
    assert!(
        group.reason.starts_with("observe mode: would create"),
        "{}",
        group.reason
    );
    assert_eq!(
        harness.resource("instance", "services").condition,
        Condition::Drifted
    );
    assert!(world.live_instances().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_shows_pending_changes_until_converged() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    let planner = Planner::new(
        support::registry(
            &world.moto.url,
            &harness.root.join("plan-state"),
            Metrics::new().unwrap(),
        ),
        harness.desired_dir(),
    );
    let before = planner.plan().await.unwrap();
    let text = before.render_text();
    // This cycle creates the group; the instances wait for it, the records for them.
    assert_eq!(before.summary.to_create, 1, "{text}");
    assert_eq!(before.summary.unobserved, 0, "{text}");
    assert_eq!(before.summary.blocked["security_group"], 3, "{text}");
    assert_eq!(before.summary.blocked["instance"], 8, "{text}");
    assert_eq!(before.exit_code(), 2, "{text}");
    assert!(
        text.contains("+ security_group/converged-clickcount: create"),
        "{text}"
    );
    assert!(
        text.contains(". instance/services: blocked on security_group/converged-clickcount"),
        "{text}"
    );
    harness.converge(8).await;
    let after = planner.plan().await.unwrap();
    assert_eq!(after.exit_code(), 0, "{}", after.render_text());
    assert_eq!(harness.all_requests(Operation::RunInstances), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_slows_down_shows_in_the_metric_and_never_duplicates() {
    let world = World::new().await;
    let proxy = FaultProxy::start(&world.moto.url).await;
    let mut harness = Harness::new(&proxy.url, &world.example_cluster());
    proxy.set(Faults {
        throttle_ec2: 0.3,
        ..Faults::default()
    });
    for _ in 0..6 {
        harness.cycle().await;
    }
    proxy.set(Faults::default());
    harness.converge(10).await;
    let throttled: u64 = Operation::ALL
        .into_iter()
        .map(|op| harness.requests(op, "throttled"))
        .sum();
    let injected: u32 = Operation::ALL
        .into_iter()
        .filter(|op| op.service() == "ec2")
        .map(|op| proxy.seen(op.name()).1)
        .sum();
    assert!(injected > 0, "the proxy throttled something");
    assert_eq!(
        throttled,
        u64::from(injected),
        "every throttled answer is counted"
    );
    assert_eq!(world.live_instances().await.len(), 3, "no duplicates");
    assert_eq!(
        proxy.seen("RunInstances").0,
        3,
        "exactly one launch per node reached EC2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_terminal_and_not_retried_in_a_loop() {
    let world = World::new().await;
    let proxy = FaultProxy::start(&world.moto.url).await;
    proxy.set(Faults {
        deny: vec!["RunInstances"],
        ..Faults::default()
    });
    let mut harness = Harness::new(&proxy.url, &world.example_cluster());
    for _ in 0..6 {
        harness.cycle().await;
    }
    assert_eq!(
        proxy.seen("RunInstances"),
        (0, 3),
        "one attempt per node, then held"
    );
    assert_eq!(harness.requests(Operation::RunInstances, "error"), 3);
    for node in NODES {
        let status = harness.resource("instance", node);
        assert_eq!(status.condition, Condition::Failed, "{status:?}");
        let error = status.last_error.unwrap();
        assert_eq!(error.class, converged_core::ErrorClass::Invalid);
        assert!(
            error.message.contains("UnauthorizedOperation"),
            "{}",
            error.message
        );
    }
    proxy.set(Faults::default());
    harness.operator_cycle().await;
    harness.converge(6).await;
    assert_eq!(world.live_instances().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instance_listings_share_one_request_and_later_ones_send_their_own() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.converge(8).await;
    let proxy = FaultProxy::start(&world.moto.url).await;
    let state = tempfile::tempdir().unwrap();
    let instances = converged_aws::register(
        &mut converged_core::reconciler::Registry::default(),
        support::settings(&proxy.url, state.path()),
        std::sync::Arc::new(Metrics::new().unwrap()),
    );

    let (first, second, third) = tokio::join!(
        instances.list_instances(REGION, "clickcount"),
        instances.list_instances(REGION, "clickcount"),
        instances.list_instances(REGION, "clickcount"),
    );
    let first = first.unwrap();
    assert_eq!(first.len(), NODES.len());
    assert_eq!(first, second.unwrap());
    assert_eq!(first, third.unwrap());
    assert_eq!(proxy.seen("DescribeInstances"), (1, 0));

    let (mine, other_cluster) = tokio::join!(
        instances.list_instances(REGION, "clickcount"),
        instances.list_instances(REGION, "someone-else"),
    );
    assert_eq!(mine.unwrap(), first, "a listing after the last one is new");
    assert!(other_cluster.unwrap().is_empty());
    assert_eq!(proxy.seen("DescribeInstances"), (3, 0));
}

const CRASH_CHILD: &str = "CONVERGED_AWS_CRASH_CHILD";
const CRASH_DIR: &str = "CONVERGED_AWS_CRASH_DIR";

/// Run twice: as the test, and (with `CONVERGED_AWS_CRASH_CHILD` set) as the "daemon" the
/// test kills with SIGKILL while its RunInstances requests are in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_during_launches_never_duplicates_an_instance() {
    if let Ok(endpoint) = std::env::var(CRASH_CHILD) {
        let root = std::path::PathBuf::from(std::env::var(CRASH_DIR).unwrap());
        let cluster = std::fs::read_to_string(root.join("desired/cluster.toml")).unwrap();
        let mut harness = Harness::at(&root, &endpoint, &cluster);
        harness.cycle().await;
        harness.cycle().await;
        panic!("the launches were expected to hang until this process was killed");
    }
    let world = World::new().await;
    let proxy = FaultProxy::start(&world.moto.url).await;
    proxy.set(Faults {
        hold: vec!["RunInstances"],
        ..Faults::default()
    });
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("desired")).unwrap();
    std::fs::write(
        root.path().join("desired/cluster.toml"),
        world.example_cluster(),
    )
    .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_daemon_killed_during_launches_never_duplicates_an_instance",
            "--nocapture",
        ])
        .env(CRASH_CHILD, &proxy.url)
        .env(CRASH_DIR, root.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(90), proxy.next_held())
            .await
            .expect("the child sent its launches");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        world.live_instances().await.len(),
        3,
        "moto made the three instances"
    );
    let intents = std::fs::read_dir(root.path().join("state/aws-intents"))
        .unwrap()
        .count();
    assert_eq!(
        intents, 3,
        "an intent record was written before each launch"
    );
    for node in NODES {
        let text = std::fs::read_to_string(
            root.path()
                .join(format!("state/aws-intents/clickcount.{node}.json")),
        )
        .unwrap();
        assert!(
            text.contains("\"instance_id\": null"),
            "the outcome was never recorded: {text}"
        );
    }

    let mut restarted = Harness::at(root.path(), &world.moto.url, &world.example_cluster());
    restarted.converge(6).await;
    assert_eq!(
        restarted.all_requests(Operation::RunInstances),
        0,
        "found by tag, not launched again"
    );
    let live = world.live_instances().await;
    let nodes: Vec<&str> = live
        .iter()
        .filter_map(|i| tag(i, "converged:node"))
        .collect();
    assert_eq!(live.len(), 3, "{nodes:?}");
    for node in NODES {
        assert_eq!(
            nodes.iter().filter(|n| **n == node).count(),
            1,
            "{node}: {nodes:?}"
        );
    }
}

/// The example cluster with `ami` and `volume_size_gb` of `node` replaced and `policy` lines
/// added to it.
fn with_node(cluster: &str, node: &str, ami: &str, volume_gb: u32, policy: &str) -> String {
    let start = cluster
        .find(&format!("name = \"{node}\""))
        .unwrap_or_else(|| panic!("no node {node}"));
    let end = start
        + cluster[start..]
            .find("attributes =")
            .expect("every example node has attributes");
    let block = &cluster[start..end];
    let volume = block
        .lines()
        .find(|line| line.starts_with("volume_size_gb"))
        .expect("a volume size");
    let edited = block
        .replace("ami = \"ami-1e749f67\"", &format!("ami = \"{ami}\""))
        .replace(volume, &format!("volume_size_gb = {volume_gb}\n{policy}"));
    format!("{}{edited}{}", &cluster[..start], &cluster[end..])
}

const NEW_AMI: &str = "ami-03cf127a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_and_volume_changes_are_reported_or_replaced_one_node_at_a_time() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.converge(8).await;
    let before = world.live_instances().await;
    let old_ips = [
        public_ip(&world, "staging").await,
        public_ip(&world, "production").await,
    ];

    let edited = |policy: &str| {
        let cluster = with_node(&world.example_cluster(), "staging", NEW_AMI, 20, policy);
        with_node(&cluster, "production", "ami-1e749f67", 30, policy)
    };
    harness.write_cluster(&edited(""));
    let writes = harness.mutating_requests();
    harness.cycle().await;
    harness.cycle().await;
    assert_eq!(
        harness.mutating_requests(),
        writes,
        "reported, not acted on"
    );
    for (node, change) in [
        ("staging", format!("ami ami-1e749f67 → {NEW_AMI}")),
        ("production", "volume_size_gb 20 → 30".to_owned()),
    ] {
        let status = harness.resource("instance", node);
        assert_eq!(status.condition, Condition::Drifted, "{status:?}");
        assert_eq!(
            status.reason,
            format!("needs replacement ({change}); policy.allow_replace is off")
        );
    }

    harness.write_cluster(&edited("policy = { allow_replace = true }"));
    let mut terminated = 0;
    for _ in 0..12 {
        harness.cycle().await;
        let now = harness.requests(Operation::TerminateInstances, "success");
        assert!(now - terminated <= 1, "one replacement per cycle at most");
        terminated = now;
        let live = world.live_instances().await;
        let unsettled = ["services", "staging", "production"]
            .into_iter()
            .filter(|node| {
                !live.iter().any(|i| {
                    tag(i, "converged:node") == Some(*node)
                        && i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("running")
                })
            })
            .count();
        assert!(unsettled <= 1, "one node disrupted at a time: {live:#?}");
        if harness
            .resources()
            .iter()
            .all(|r| r.condition == Condition::InSync)
        {
            break;
        }
    }
    assert_eq!(terminated, 2, "{:#?}", harness.resources());
    assert_eq!(harness.requests(Operation::RunInstances, "success"), 3 + 2);

    let after = world.live_instances().await;
    assert_eq!(after.len(), 3);
    let services = |list: &[aws_sdk_ec2::types::Instance]| {
        list.iter()
            .find(|i| tag(i, "converged:node") == Some("services"))
            .and_then(|i| i.instance_id())
            .map(str::to_owned)
    };
    assert_eq!(services(&after), services(&before), "services untouched");
    for (node, ami, volume_gb, old_ip) in [
        ("staging", NEW_AMI, 20, &old_ips[0]),
        ("production", "ami-1e749f67", 30, &old_ips[1]),
    ] {
        let instance = after
            .iter()
            .find(|i| tag(i, "converged:node") == Some(node))
            .unwrap();
        assert_eq!(tag(instance, "converged:generation"), Some("2"), "{node}");
        assert_eq!(
            instance.client_token(),
            Some(converged_aws::instance::diff::client_token("clickcount", node, 2).as_str()),
            "{node}"
        );
        assert_eq!(instance.image_id(), Some(ami), "{node}");
        assert_eq!(
            world.root_volume_size(instance).await,
            Some(volume_gb),
            "{node}"
        );
        let ip = public_ip(&world, node).await;
        assert_ne!(&ip, old_ip, "{node}");
        assert_eq!(
            world
                .record_value(&format!("{node}.clickcount.example.org."), "A")
                .await,
            Some(vec![ip]),
            "{node}: the record follows the new address"
        );
    }
}

/// Writes `cluster`, runs a cycle, and returns why each stray instance was left in place.
/// Plans as the running daemon would, then runs its next cycle: each stray's line of the plan
/// has the condition and reason `/status` then shows. Returns the reasons.
async fn stray_reasons(
    harness: &mut Harness,
    endpoint: &str,
    cluster: &str,
    condition: Condition,
    exit_code: u8,
) -> [String; 2] {
    harness.write_cluster(cluster);
    let plan = harness.daemon_planner(endpoint).plan().await.unwrap();
    let text = plan.render_text();
    assert_eq!(plan.exit_code(), exit_code, "{text}");
    if condition == Condition::Drifted {
        assert!(
            text.contains("2 drifted and left alone (prune is off for instance)"),
            "{text}"
        );
    }
    harness.cycle().await;
    ["old-a", "old-b"].map(|node| {
        let status = harness.resource("instance", node);
        assert_eq!(status.condition, condition, "{status:?}");
        let planned = plan
            .resource(&format!("instance/{node}"))
            .unwrap_or_else(|| panic!("instance/{node} is not in the plan: {text}"));
        assert_eq!(planned.condition, condition.as_str(), "{text}");
        let symbol = if condition == Condition::Drifted {
            "="
        } else {
            "!"
        };
        assert!(
            text.contains(&format!("  {symbol} instance/{node}: ")),
            "{text}"
        );
        assert_eq!(planned.reason, status.reason, "{text}");
        status.reason
    })
}

async fn stray(world: &World, node: &str) -> String {
    let tags = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("converged:cluster")
                .value("clickcount")
                .build(),
        )
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("converged:node")
                .value(node)
                .build(),
        )
        .build();
    world
        .ec2
        .run_instances()
        .image_id("ami-1e749f67")
        .min_count(1)
        .max_count(1)
        .subnet_id(&world.subnet_id)
        .tag_specifications(tags)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_the_cluster_without_a_node_wait_for_prune_and_the_deletion_budget() {
    let world = World::new().await;
    let mut harness = Harness::new(&world.moto.url, &world.example_cluster());
    harness.converge(8).await;
    let ours: BTreeSet<String> = world
        .live_instances()
        .await
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    let strays = [stray(&world, "old-a").await, stray(&world, "old-b").await];

    let url = world.moto.url.clone();
    let example = world.example_cluster();
    for reason in stray_reasons(&mut harness, &url, &example, Condition::Drifted, 2).await {
        assert!(reason.contains("prune is off for instance"), "{reason}");
    }
    let pruning = |fraction: f64| {
        format!("{example}\n[kinds.instance]\nprune = true\nmax_delete_fraction = {fraction}\n")
    };
    let tight = pruning(0.25);
    for reason in stray_reasons(&mut harness, &url, &tight, Condition::Failed, 1).await {
        assert!(
            reason.contains(
                "deletion refused: this cycle would delete 2 of 5 managed instance resources"
            ),
            "{reason}"
        );
    }
    assert_eq!(harness.all_requests(Operation::TerminateInstances), 0);
    assert_eq!(world.live_instances().await.len(), 5);

    harness.write_cluster(&pruning(0.5));
    harness.converge(4).await;
    assert_eq!(
        harness.requests(Operation::TerminateInstances, "success"),
        2
    );
    let live: BTreeSet<String> = world
        .live_instances()
        .await
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    assert_eq!(live, ours, "the strays {strays:?} are gone, the nodes kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_converge_until_route53_reports_their_change_in_sync() {
    let world = World::new().await;
    let proxy = FaultProxy::start(&world.moto.url).await;
    proxy.set(Faults {
        changes_pending: true,
        ..Faults::default()
    });
    let mut harness = Harness::new(&proxy.url, &world.example_cluster());
    for _ in 0..6 {
        harness.cycle().await;
    }
    let statuses: Vec<_> = harness
        .resources()
        .into_iter()
        .filter(|r| r.kind == "dns_record")
        .collect();
    assert_eq!(statuses.len(), record_names().len());
    for record in &statuses {
        assert_eq!(record.condition, Condition::Converging, "{record:?}");
        assert!(record.reason.contains("is PENDING"), "{}", record.reason);
    }
    let changes = harness.all_requests(Operation::ChangeResourceRecordSets);
    assert!(changes >= 1);

    proxy.set(Faults::default());
    let writes = harness.mutating_requests();
    harness.cycle().await;
    assert!(
        harness
            .resources()
            .iter()
            .all(|r| r.condition == Condition::InSync),
        "{:#?}",
        harness.resources()
    );
    assert_eq!(
        harness.mutating_requests(),
        writes,
        "waiting sent nothing again"
    );
    assert_eq!(
        harness.all_requests(Operation::ChangeResourceRecordSets),
        changes
    );
    let followed = harness.all_requests(Operation::GetChange);
    harness.cycle().await;
    assert_eq!(
        harness.all_requests(Operation::GetChange),
        followed,
        "nothing left to follow"
    );
}
