//! Desired states for the unit tests of the plans (pure).

use converged_core::DesiredState;

/// Parses and validates a `cluster.toml`; panics with every problem if it is invalid.
pub fn desired_state(cluster_toml: &str) -> DesiredState {
    converged_core::load::parse_sources(
        &[("cluster.toml".to_owned(), cluster_toml.to_owned())],
        "test".to_owned(),
    )
    .unwrap_or_else(|problems| panic!("invalid test desired state: {problems:#?}"))
}

/// A cluster `test` in eu-west-1 with admin CIDR 198.51.100.0/24 and the given nodes
/// (`(name, extra TOML lines)`, roles included; type `t2.micro` and AMI `ami-1e749f67`
/// unless the lines say otherwise), followed by `rest` and an empty service
/// section for every role.
pub fn cluster_with_nodes(nodes: &[(&str, &str)], rest: &str) -> String {
    let mut text = String::from(
        "[cluster]\nname = \"test\"\nregion = \"eu-west-1\"\n[network]\nvpc_id = \"vpc-0a1b2c3d\"\nsubnet_id = \"subnet-0a1b2c3d\"\nadmin_cidrs = [\"198.51.100.0/24\"]\n",
    );
    for (name, extra) in nodes {
        text.push_str(&format!("[[nodes]]\nname = \"{name}\"\n"));
        if !extra.contains("instance_type =") {
            text.push_str("instance_type = \"t2.micro\"\n");
        }
        if !extra.contains("ami =") {
            text.push_str("ami = \"ami-1e749f67\"\n");
        }
        text.push_str(extra);
        text.push('\n');
    }
    text.push_str(rest);
    text.push_str(
        "\n[services.zookeeper]\n[services.mesos-master]\n[services.mesos-agent]\n[services.marathon]\n",
    );
    text
}
