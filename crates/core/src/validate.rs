//! Semantic checks over a parsed desired state, all reported at once (pure, no I/O).

use std::collections::{BTreeMap, BTreeSet};

use crate::locate::FieldPath;
use crate::model::CLUSTER_FILE;
use crate::model::app::{CONSTRAINT_OPERATORS, HealthCheckProtocol, MarathonApp};
use crate::model::{AppFile, ClusterFile, Role};
use crate::resource::Kind;
use crate::suggest::unknown_name;

/// A problem found by a semantic check, before it is located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub path: FieldPath,
    pub message: String,
}

const ZOOKEEPER_ENSEMBLE_SIZES: [usize; 4] = [1, 3, 5, 7];

pub fn validate(cluster: &ClusterFile, apps: &[AppFile]) -> Vec<Finding> {
    let mut findings = Findings::default();
    check_cluster(cluster, &mut findings);
    check_network(cluster, &mut findings);
    check_nodes(cluster, &mut findings);
    check_dns(cluster, &mut findings);
    check_kinds(cluster, &mut findings);
    check_apps(cluster, apps, &mut findings);
    findings.0
}

/// The checks of app files that stand on their own, for when `cluster.toml` could not be
/// parsed at all: its problems are reported, and the apps' are not hidden behind them.
pub fn validate_apps_alone(apps: &[AppFile]) -> Vec<Finding> {
    let mut findings = Findings::default();
    check_apps(&ClusterFile::default(), apps, &mut findings);
    findings.0
}

/// Route 53's largest TTL, in seconds (2^31 - 1).
pub const MAX_DNS_TTL: u32 = 2_147_483_647;

/// The largest TCP or UDP port.
const MAX_PORT: u32 = 65_535;

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn cluster(&mut self, path: FieldPath, message: impl Into<String>) {
        self.in_file(CLUSTER_FILE, path, message);
    }

    fn in_file(&mut self, file: &str, path: FieldPath, message: impl Into<String>) {
        self.0.push(Finding {
            file: file.to_owned(),
            path,
            message: message.into(),
        });
    }
}

fn root() -> FieldPath {
    FieldPath::default()
}

fn check_cluster(cluster: &ClusterFile, findings: &mut Findings) {
    let name = &cluster.cluster.name;
    if !is_dns_label(name) || name.len() > 40 {
        findings.cluster(
            root().key("cluster").key("name"),
            format!("`{name}` is not a valid cluster name: use 1 to 40 lowercase letters, digits and `-`, not starting or ending with `-`"),
        );
    }
    let needs_region = !cluster.nodes.is_empty() || cluster.dns.is_some();
    match &cluster.cluster.region {
        Some(region) if !is_region(region) => findings.cluster(
            root().key("cluster").key("region"),
            format!("`{region}` is not an AWS region name such as `eu-west-1`"),
        ),
        None if needs_region => findings.cluster(
            root().key("cluster"),
            "`region` is required when the desired state has nodes or DNS records",
        ),
        _ => {}
    }
}

fn check_network(cluster: &ClusterFile, findings: &mut Findings) {
    let Some(network) = &cluster.network else {
        if !cluster.nodes.is_empty() {
            findings.cluster(
                root().key("nodes").index(0),
                "nodes need a `[network]` section with `vpc_id` and `subnet_id`",
            );
        }
        return;
    };
    let path = root().key("network");
    if !is_aws_id(&network.vpc_id, "vpc-") {
        findings.cluster(
            path.clone().key("vpc_id"),
            format!(
                "`{}` is not a VPC id such as `vpc-0a1b2c3d`",
                network.vpc_id
            ),
        );
    }
    if !is_aws_id(&network.subnet_id, "subnet-") {
        findings.cluster(
            path.clone().key("subnet_id"),
            format!(
                "`{}` is not a subnet id such as `subnet-0a1b2c3d`",
                network.subnet_id
            ),
        );
    }
    for (index, cidr) in network.admin_cidrs.iter().enumerate() {
        if cidr.parse().is_none() {
            findings.cluster(
                path.clone().key("admin_cidrs").index(index),
                format!("`{}` is not a CIDR block such as `198.51.100.0/24`", cidr.0),
            );
        }
    }
}

fn check_nodes(cluster: &ClusterFile, findings: &mut Findings) {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, node) in cluster.nodes.iter().enumerate() {
        let path = root().key("nodes").index(index);
        if let Some(first) = first_index.get(node.name.as_str()) {
            findings.cluster(
                path.clone().key("name"),
                format!(
                    "duplicate node name `{}`: nodes[{first}] already uses it",
                    node.name
                ),
            );
        } else {
            first_index.insert(&node.name, index);
        }
        if !is_dns_label(&node.name) {
            findings.cluster(
                path.clone().key("name"),
                format!(
                    "`{}` is not a valid node name: use lowercase letters, digits and `-`",
                    node.name
                ),
            );
        }
        if !is_instance_type(&node.instance_type) {
            findings.cluster(
                path.clone().key("instance_type"),
                format!(
                    "`{}` is not an EC2 instance type such as `t2.micro` or `m4.large`",
                    node.instance_type
                ),
            );
        }
        if !is_aws_id(&node.ami, "ami-") {
            findings.cluster(
                path.clone().key("ami"),
                format!(
                    "`{}` is not an AMI id such as `ami-1e749f67` (8 or 17 hex digits)",
                    node.ami
                ),
            );
        }
        if !(8..=16_384).contains(&node.volume_size_gb) {
            findings.cluster(
                path.clone().key("volume_size_gb"),
                format!(
                    "{} GiB is outside what EC2 accepts for a root volume (8 to 16384)",
                    node.volume_size_gb
                ),
            );
        }
        if node.roles.is_empty() {
            findings.cluster(path.clone().key("roles"), "a node needs at least one role");
        }
        let mut seen = BTreeSet::new();
        for (role_index, role) in node.roles.iter().enumerate() {
            if !seen.insert(role) {
                findings.cluster(
                    path.clone().key("roles").index(role_index),
                    format!("role `{}` is listed twice", role.as_str()),
                );
            }
            if *role != Role::Edge && cluster.services.for_role(*role).is_none() {
                findings.cluster(
                    path.clone().key("roles").index(role_index),
                    format!(
                        "role `{0}` needs a `[services.{0}]` section saying how to run it",
                        role.as_str()
                    ),
                );
            }
        }
        for key in node.attributes.keys() {
            if key.is_empty() || key == "hostname" {
                findings.cluster(
                    path.clone().key("attributes").key(key.clone()),
                    format!("`{key}` cannot be an attribute name"),
                );
            }
        }
    }
    let members: Vec<&str> = cluster
        .nodes
        .iter()
        .filter(|node| node.roles.contains(&Role::Zookeeper))
        .map(|node| node.name.as_str())
        .collect();
    if !members.is_empty() && !ZOOKEEPER_ENSEMBLE_SIZES.contains(&members.len()) {
        let index = cluster
            .nodes
            .iter()
            .position(|node| node.roles.contains(&Role::Zookeeper))
            .unwrap_or(0);
        findings.cluster(
            root().key("nodes").index(index).key("roles"),
            format!(
                "{} nodes have the `zookeeper` role ({}); a ZooKeeper ensemble needs 1, 3, 5 or 7 members to keep a majority",
                members.len(),
                members.join(", ")
            ),
        );
    }
}

fn check_dns(cluster: &ClusterFile, findings: &mut Findings) {
    let Some(dns) = &cluster.dns else { return };
    let path = root().key("dns");
    let zone = dns.zone.to_lowercase();
    if !zone.ends_with('.') || !is_dns_name(zone.trim_end_matches('.')) {
        findings.cluster(
            path.clone().key("zone"),
            format!("`{}` is not a fully qualified zone name such as `example.org.` (note the trailing dot)", dns.zone),
        );
        return;
    }
    if dns.ttl > MAX_DNS_TTL {
        findings.cluster(path.clone().key("ttl"), ttl_too_long(dns.ttl));
    }
    for (index, record) in dns.records.iter().enumerate() {
        if let Some(ttl) = record.ttl.filter(|ttl| *ttl > MAX_DNS_TTL) {
            findings.cluster(
                path.clone().key("records").index(index).key("ttl"),
                ttl_too_long(ttl),
            );
        }
    }
    let node_names: BTreeSet<&str> = cluster
        .nodes
        .iter()
        .map(|node| node.name.as_str())
        .collect();
    let mut names: BTreeSet<String> = BTreeSet::new();
    if dns.node_records {
        names.extend(node_names.iter().map(|node| format!("{node}.{zone}")));
    }
    for (index, record) in dns.records.iter().enumerate() {
        let record_path = path.clone().key("records").index(index);
        let name = record.name.to_lowercase();
        if !name.ends_with('.') || !is_dns_name(name.trim_end_matches('.')) {
            findings.cluster(
                record_path.clone().key("name"),
                format!(
                    "`{}` is not a fully qualified DNS name (it must end with a dot)",
                    record.name
                ),
            );
        } else if !(name == zone || name.ends_with(&format!(".{zone}"))) {
            findings.cluster(
                record_path.clone().key("name"),
                format!("`{}` is not inside the zone `{}`", record.name, dns.zone),
            );
        } else if !names.insert(name) {
            findings.cluster(
                record_path.clone().key("name"),
                format!(
                    "`{}` is defined twice (node records count too)",
                    record.name
                ),
            );
        }
        if !node_names.contains(record.node.as_str()) {
            findings.cluster(
                record_path.key("node"),
                format!("no node is named `{}`", record.node),
            );
        }
    }
}

fn ttl_too_long(ttl: u32) -> String {
    format!("a TTL of {ttl} s is above Route 53's maximum of {MAX_DNS_TTL} s")
}

fn check_kinds(cluster: &ClusterFile, findings: &mut Findings) {
    let names: Vec<&str> = Kind::ALL.iter().map(|kind| kind.as_str()).collect();
    for (kind, policy) in &cluster.kinds {
        let path = root().key("kinds").key(kind.clone());
        if Kind::parse(kind).is_none() {
            findings.cluster(path.clone(), unknown_name("kind", kind, &names));
        }
        if !(0.0..=1.0).contains(&policy.max_delete_fraction) {
            findings.cluster(
                path.key("max_delete_fraction"),
                format!(
                    "must be a number in [0, 1], got {}",
                    policy.max_delete_fraction
                ),
            );
        }
    }
}

fn check_apps(cluster: &ClusterFile, apps: &[AppFile], findings: &mut Findings) {
    let mut ids: BTreeMap<String, &str> = BTreeMap::new();
    let attributes: BTreeMap<&str, BTreeSet<&str>> =
        cluster.nodes.iter().fold(BTreeMap::new(), |mut acc, node| {
            for (key, value) in &node.attributes {
                acc.entry(key.as_str()).or_default().insert(value.as_str());
            }
            acc
        });
    let hostnames: BTreeSet<&str> = cluster
        .nodes
        .iter()
        .map(|node| node.name.as_str())
        .collect();
    for AppFile { path: file, app } in apps {
        let mut report = |path: FieldPath, message: String| findings.in_file(file, path, message);
        match canonical_app_id(&app.id) {
            Some(id) => {
                if let Some(other) = ids.insert(id.clone(), file) {
                    report(
                        root().key("id"),
                        format!("app id `{id}` is also used by {other}"),
                    );
                }
            }
            None => report(
                root().key("id"),
                format!(
                    "`{}` is not a valid Marathon app id: path segments of lowercase letters, digits, `-` and `.`, not starting or ending with `-`",
                    app.id
                ),
            ),
        }
        if app.cmd.is_some() && app.args.is_some() {
            report(
                root().key("args"),
                "give either `cmd` or `args`, not both".into(),
            );
        }
        if app.cmd.is_none() && app.args.is_none() && app.container.is_none() {
            report(root(), "an app needs `cmd`, `args` or a `container`".into());
        }
        if let Some(docker) = app.container.as_ref().and_then(|c| c.docker.as_ref())
            && docker.image.trim().is_empty()
        {
            report(
                root().key("container").key("docker").key("image"),
                "the docker image must not be empty".into(),
            );
        }
        check_ports(app, &mut report);
        for (field, value, minimum) in [
            ("cpus", app.cpus, 0.001),
            ("mem", app.mem, 0.0),
            ("disk", app.disk, 0.0),
            ("backoffSeconds", app.backoff_seconds, 0.0),
            ("backoffFactor", app.backoff_factor, 1.0),
            ("maxLaunchDelaySeconds", app.max_launch_delay_seconds, 0.0),
            (
                "taskKillGracePeriodSeconds",
                app.task_kill_grace_period_seconds,
                0.0,
            ),
        ] {
            if let Some(value) = value
                && value < minimum
            {
                report(
                    root().key(field),
                    format!("{value} is below the minimum of {minimum}"),
                );
            }
        }
        if let Some(strategy) = &app.upgrade_strategy {
            for (field, value) in [
                ("minimumHealthCapacity", strategy.minimum_health_capacity),
                ("maximumOverCapacity", strategy.maximum_over_capacity),
            ] {
                if let Some(value) = value
                    && !(0.0..=1.0).contains(&value)
                {
                    report(
                        root().key("upgradeStrategy").key(field),
                        format!("must be a number in [0, 1], got {value}"),
                    );
                }
            }
        }
        for (index, check) in app.health_checks.iter().flatten().enumerate() {
            let path = root().key("healthChecks").index(index);
            let command = check.protocol == Some(HealthCheckProtocol::Command);
            if command && check.command.is_none() {
                report(
                    path.clone().key("command"),
                    "a COMMAND health check needs `command`: {\"value\": \"...\"}".into(),
                );
            }
            for (field, value) in [
                ("intervalSeconds", check.interval_seconds),
                ("timeoutSeconds", check.timeout_seconds),
            ] {
                if value == Some(0) {
                    report(
                        path.clone().key(field),
                        "must be at least 1 second, got 0".into(),
                    );
                }
            }
            if let Some(port) = check.port.filter(|port| *port > MAX_PORT) {
                report(path.clone().key("port"), port_out_of_range(port));
            }
            let ports = port_count(app);
            if let Some(port_index) = check.port_index
                && !command
                && check.port.is_none()
                && port_index >= ports.count
            {
                report(
                    path.key("portIndex"),
                    format!(
                        "portIndex {port_index} is beyond the app's ports: {} has {} port(s), so the highest portIndex is {}",
                        ports.field,
                        ports.count,
                        match ports.count {
                            0 => "none".to_owned(),
                            count => (count - 1).to_string(),
                        }
                    ),
                );
            }
        }
        for (index, constraint) in app.constraints.iter().flatten().enumerate() {
            let path = root().key("constraints").index(index);
            let [field, operator, rest @ ..] = constraint.as_slice() else {
                report(
                    path,
                    "a constraint is [field, OPERATOR] or [field, OPERATOR, value]".into(),
                );
                continue;
            };
            if rest.len() > 1 {
                report(
                    path,
                    "a constraint is [field, OPERATOR] or [field, OPERATOR, value]".into(),
                );
                continue;
            }
            if !CONSTRAINT_OPERATORS.contains(&operator.as_str()) {
                report(
                    path.clone().index(1),
                    format!(
                        "`{operator}` is not a constraint operator; use one of {}",
                        CONSTRAINT_OPERATORS.join(", ")
                    ),
                );
            }
            if cluster.nodes.is_empty() {
                continue;
            }
            let value = rest.first().map(String::as_str);
            let exact = matches!(operator.as_str(), "CLUSTER" | "IS");
            if field == "hostname" {
                if let Some(value) = value.filter(|_| exact)
                    && !hostnames.contains(value)
                {
                    report(path.index(2), format!("no node has the hostname `{value}`"));
                }
            } else {
                match attributes.get(field.as_str()) {
                    None => report(
                        path.index(0),
                        format!(
                            "no node has the attribute `{field}` (nodes have: {})",
                            join_or_none(attributes.keys())
                        ),
                    ),
                    Some(values) => {
                        if let Some(value) = value.filter(|_| exact)
                            && !values.contains(value)
                        {
                            report(
                                path.index(2),
                                format!(
                                    "no node has `{field}` = `{value}` (values: {})",
                                    join_or_none(values.iter())
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

fn port_out_of_range(port: u32) -> String {
    format!("expected a port from 0 to {MAX_PORT}, got {port}")
}

/// Every port number an app file gives, in range.
fn check_ports(app: &MarathonApp, report: &mut impl FnMut(FieldPath, String)) {
    for (index, port) in app.ports.iter().flatten().enumerate() {
        if *port > MAX_PORT {
            report(root().key("ports").index(index), port_out_of_range(*port));
        }
    }
    for (index, definition) in app.port_definitions.iter().flatten().enumerate() {
        if let Some(port) = definition.port.filter(|port| *port > MAX_PORT) {
            report(
                root().key("portDefinitions").index(index).key("port"),
                port_out_of_range(port),
            );
        }
    }
    let container = root().key("container");
    let mappings = app.container.iter().flat_map(|container_spec| {
        let docker = container_spec
            .docker
            .iter()
            .flat_map(|docker| docker.port_mappings.iter().flatten().enumerate())
            .map(|(index, mapping)| {
                (
                    container
                        .clone()
                        .key("docker")
                        .key("portMappings")
                        .index(index),
                    mapping,
                )
            });
        let own = container_spec
            .port_mappings
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, mapping)| (container.clone().key("portMappings").index(index), mapping));
        docker.chain(own).collect::<Vec<_>>()
    });
    for (path, mapping) in mappings {
        for (field, value) in [
            ("containerPort", mapping.container_port),
            ("hostPort", mapping.host_port),
            ("servicePort", mapping.service_port),
        ] {
            if let Some(port) = value.filter(|port| *port > MAX_PORT) {
                report(path.clone().key(field), port_out_of_range(port));
            }
        }
    }
}

/// How many ports a health check's `portIndex` may choose from, and the field giving them.
struct PortCount {
    field: &'static str,
    count: u32,
}

/// The app's ports as Marathon numbers them for `portIndex`: its port mappings when its
/// container has them, else `portDefinitions` or `ports`, else Marathon's default of one port.
fn port_count(app: &MarathonApp) -> PortCount {
    let count = |items: usize| u32::try_from(items).unwrap_or(u32::MAX);
    let container = app.container.as_ref();
    if let Some(mappings) = container.and_then(|c| c.port_mappings.as_ref()) {
        return PortCount {
            field: "container.portMappings",
            count: count(mappings.len()),
        };
    }
    if let Some(mappings) = container
        .and_then(|c| c.docker.as_ref())
        .and_then(|docker| docker.port_mappings.as_ref())
    {
        return PortCount {
            field: "container.docker.portMappings",
            count: count(mappings.len()),
        };
    }
    if let Some(definitions) = &app.port_definitions {
        return PortCount {
            field: "portDefinitions",
            count: count(definitions.len()),
        };
    }
    if let Some(ports) = &app.ports {
        return PortCount {
            field: "ports",
            count: count(ports.len()),
        };
    }
    PortCount {
        field: "Marathon's default portDefinitions",
        count: 1,
    }
}

fn join_or_none<'a>(items: impl Iterator<Item = &'a &'a str>) -> String {
    let joined: Vec<&str> = items.copied().collect();
    if joined.is_empty() {
        "none".into()
    } else {
        joined.join(", ")
    }
}

/// The absolute form of a Marathon app id, or None when a segment breaks Marathon's rule
/// (`marathon-api/head/raml/v2/types/stringTypes.raml` PathId).
pub fn canonical_app_id(id: &str) -> Option<String> {
    let trimmed = id.strip_prefix('/').unwrap_or(id);
    if trimmed.is_empty() {
        return None;
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    segments
        .iter()
        .all(|segment| segment.split('.').all(is_dns_label))
        .then(|| format!("/{}", segments.join("/")))
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .enumerate()
            .all(|(index, label)| is_dns_label(label) || (index == 0 && label == "*"))
}

fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn is_aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn is_instance_type(text: &str) -> bool {
    let Some((family, size)) = text.split_once('.') else {
        return false;
    };
    family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !size.is_empty()
        && size
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_follow_marathon_path_rules() {
        let cases = [
            ("/gitlab", Some("/gitlab")),
            ("click-count/production", Some("/click-count/production")),
            ("/a.b/c-d", Some("/a.b/c-d")),
            ("/Upper", None),
            ("/-lead", None),
            ("/trail-", None),
            ("/a//b", None),
            ("/", None),
            ("/under_score", None),
        ];
        for (id, expected) in cases {
            assert_eq!(canonical_app_id(id).as_deref(), expected, "{id}");
        }
    }

    #[test]
    fn aws_identifiers_are_checked_for_shape() {
        let cases = [
            ("ami-1e749f67", "ami-", true),
            ("ami-0123456789abcdef0", "ami-", true),
            ("ami-123", "ami-", false),
            ("ami-1E749F67", "ami-", false),
            ("vpc-0a1b2c3d", "vpc-", true),
            ("subnet-0a1b2c3d", "vpc-", false),
        ];
        for (id, prefix, expected) in cases {
            assert_eq!(is_aws_id(id, prefix), expected, "{id}");
        }
        for (text, expected) in [
            ("t2.micro", true),
            ("m4.large", true),
            ("u-6tb1.metal", true),
            ("t2", false),
            ("T2.micro", false),
            ("t2.", false),
        ] {
            assert_eq!(is_instance_type(text), expected, "{text}");
        }
        for (text, expected) in [
            ("eu-west-1", true),
            ("us-gov-west-1", true),
            ("euwest1", false),
            ("eu-west", false),
        ] {
            assert_eq!(is_region(text), expected, "{text}");
        }
    }
}
