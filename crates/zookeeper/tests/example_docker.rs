//! The example `desired-state/` renders for the docker runtime on every node: each service's
//! template variables resolve, the images get what they read to find each other, and ZooKeeper
//! runs converged's zoo.cfg (stable ids) rather than the one its image numbers by position; the
//! agents offer the host ports that apps require, reserved for Marathon's role so that no other
//! app's random port takes them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use converged_core::load_desired_state;
use converged_core::model::Role;
use converged_core::secret::MaybeSecret;
use converged_hosts::layer::NodeObservation;
use converged_hosts::{Access, HostsObserved, NodeAddress, Runtime, RuntimeKind, ServiceExtras};
use converged_zookeeper::{EnsembleFiles, IdStore};

#[test]
fn the_example_renders_for_docker_with_every_service_wired_to_the_others() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state");
    let desired = load_desired_state(&example).expect("the example is valid");
    let state = tempfile::tempdir().unwrap();
    let addresses: BTreeMap<String, IpAddr> = desired
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.name.clone(), IpAddr::from([10, 0, 1, 10 + i as u8])))
        .collect();
    let extras = EnsembleFiles::new(Arc::new(IdStore::new(state.path(), Access::ReadWrite)))
        .extras(&desired, &addresses)
        .unwrap();
    let observed = HostsObserved {
        nodes: addresses
            .iter()
            .map(|(name, ip)| {
                let address = NodeAddress {
                    ip: *ip,
                    ssh: SocketAddr::new(*ip, 22),
                    depends_on: None,
                };
                (
                    name.clone(),
                    NodeObservation {
                        address: Ok(address),
                        services: Ok(BTreeMap::new()),
                        would_pin: None,
                    },
                )
            })
            .collect(),
        secrets: BTreeMap::new(),
        extras: Ok(extras),
        runtime: Runtime::new(RuntimeKind::Docker, "/var/lib/converged"),
        rolling: Default::default(),
    };
    let fixed_ports: Vec<(u32, Vec<String>)> = desired
        .apps
        .iter()
        .filter(|file| file.app.require_ports == Some(true))
        .flat_map(|file| {
            let roles = file.app.accepted_resource_roles.clone().unwrap_or_default();
            file.app
                .port_definitions
                .iter()
                .flatten()
                .filter_map(move |definition| definition.port.map(|port| (port, roles.clone())))
        })
        .collect();
    assert!(!fixed_ports.is_empty(), "traefik requires its ports");
    let marathon_env = |key: &str| match desired.services.marathon.as_ref().map(|m| &m.env[key]) {
        Some(MaybeSecret::Plain(value)) => value.clone(),
        other => panic!("the example's Marathon sets {key} in plain text: {other:?}"),
    };
    let marathon_role = marathon_env("MARATHON_MESOS_ROLE");
    assert_eq!(
        marathon_env("MARATHON_DEFAULT_ACCEPTED_RESOURCE_ROLES"),
        "*",
        "apps that do not ask for reserved ports never get them"
    );
    let rendered = observed.desired_services(&desired);
    assert_eq!(rendered.len(), 3 * 4, "four services on each node");
    // Sorted by node name: production, services, staging.
    let ensemble = "10.0.1.12:2181,10.0.1.10:2181,10.0.1.11:2181";
    for (node, role, service) in rendered {
        let service = service.unwrap_or_else(|err| panic!("{node}/{role:?}: {err}"));
        let env = |key: &str| {
            service
                .env
                .get(key)
                .map(|value| value.expose().to_owned())
                .unwrap_or_else(|| panic!("{node}/{role:?} has no {key}"))
        };
        let ip = addresses[&node].to_string();
        match role {
            Role::Zookeeper => {
                let dir = "/var/lib/converged/zookeeper";
                assert_eq!(env("ZOOCFGDIR"), dir);
                assert!(service.volumes.contains(&format!("{dir}:{dir}")));
                let zoo_cfg = &service.files.iter().find(|f| f.path == "zoo.cfg").unwrap();
                assert!(zoo_cfg.content.contains(&format!("dataDir={dir}/data")));
            }
            Role::MesosMaster => {
                assert!(env("MESOS_ZK").contains(&format!("zk://{ensemble}/mesos")));
                assert!(env("MESOS_QUORUM").contains('2'));
                assert!(env("MESOS_IP").contains(&ip));
            }
            Role::MesosAgent => {
                assert!(env("MESOS_MASTER").contains(&format!("zk://{ensemble}/mesos")));
                assert!(env("MESOS_HOSTNAME").contains(&node));
                assert!(env("MESOS_ATTRIBUTES").contains(&format!("env:{node}")));
                let resources = env("MESOS_RESOURCES");
                for (port, accepted) in &fixed_ports {
                    let role = resources
                        .split(';')
                        .find(|item| item.contains(&format!("{port}-{port}")))
                        .and_then(|item| item.strip_prefix("ports("))
                        .and_then(|item| item.split_once(')'))
                        .map(|(role, _)| role)
                        .unwrap_or_else(|| {
                            panic!("{node}'s agent reserves port {port} for a role: {resources}")
                        });
                    assert_eq!(role, marathon_role, "Marathon is offered port {port}");
                    assert!(
                        accepted.iter().any(|r| r == role),
                        "{accepted:?} take {role}"
                    );
                }
            }
            Role::Marathon => {
                assert!(env("MARATHON_MASTER").contains(&format!("zk://{ensemble}/mesos")));
                assert!(env("MARATHON_ZK").contains(&format!("zk://{ensemble}/marathon")));
            }
            _ => {}
        }
    }
}
