//! Rendering a node's services from the desired state (pure, no I/O): `{{variable}}`
//! templates in commands, args, env values, volumes and files; resolved secrets; and the spec
//! hash that tells a running service from a stale one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use converged_core::DesiredState;
use converged_core::digest::FieldDigest;
use converged_core::model::{Role, ServiceSpec};
use converged_core::secret::{MaybeSecret, Secret, SecretRef};
use serde::Serialize;

/// A file written into the service's directory on the host before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceFile {
    /// Relative to the service directory, e.g. `zoo.cfg` or `data/myid`.
    pub path: String,
    pub content: String,
}

/// What other crates add to a node's services: template variables for every service of the
/// node, and files per service (the ZooKeeper ensemble adds `zookeeper_myid` and `zoo.cfg`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub vars: BTreeMap<String, BTreeMap<String, String>>,
    /// (node, service) → files.
    pub files: BTreeMap<(String, String), Vec<ServiceFile>>,
    /// (node, service) → what a read-only observation computed but did not record
    /// (`myid 3 (would be assigned)`), for the plan to show.
    pub notes: BTreeMap<(String, String), Vec<String>>,
}

/// An environment value after secret resolution.
#[derive(Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl EnvValue {
    pub fn expose(&self) -> &str {
        match self {
            Self::Plain(value) => value,
            Self::Secret(secret) => secret.expose(),
        }
    }
}

impl fmt::Debug for EnvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(value) => write!(f, "{value:?}"),
            Self::Secret(_) => f.write_str("<redacted>"),
        }
    }
}

/// One service on one node, ready to be run by a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedService {
    pub node: String,
    /// The role's name: `zookeeper`, `mesos-master`, `mesos-agent`, `marathon`.
    pub name: String,
    pub image: Option<String>,
    /// The exec runtime's command line (empty when the spec has none).
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, EnvValue>,
    pub volumes: Vec<String>,
    pub files: Vec<ServiceFile>,
    /// Hash of everything above (secrets included, so a rotated secret restarts the service).
    pub hash: String,
}

/// Everything rendering needs besides the desired state.
#[derive(Debug, Clone, Default)]
pub struct RenderContext<'a> {
    /// The IP of every node that has one.
    pub addresses: BTreeMap<String, IpAddr>,
    pub secrets: Option<&'a BTreeMap<SecretRef, Result<Secret, String>>>,
    pub extras: Option<&'a Extras>,
    /// Where services live on the host (`<root>/<service>`).
    pub root: String,
    /// Included in the hash, so switching runtime replaces every service.
    pub runtime: &'static str,
}

/// The roles that run as host services, in start order.
pub const SERVICE_ROLES: [Role; 4] = [
    Role::Zookeeper,
    Role::MesosMaster,
    Role::MesosAgent,
    Role::Marathon,
];

/// The services each node should run: one per role that has a spec.
pub fn wanted(desired: &DesiredState) -> Vec<(String, Role, &ServiceSpec)> {
    let mut wanted = Vec::new();
    for node in &desired.nodes {
        for role in SERVICE_ROLES {
            if !node.roles.contains(&role) {
                continue;
            }
            if let Some(spec) = desired.services.for_role(role) {
                wanted.push((node.name.clone(), role, spec));
            }
        }
    }
    wanted
}

/// The secret references the services use.
pub fn secret_refs(desired: &DesiredState) -> Vec<SecretRef> {
    let mut refs: Vec<SecretRef> = wanted(desired)
        .into_iter()
        .flat_map(|(_, _, spec)| spec.env.values())
        .filter_map(|value| match value {
            MaybeSecret::Secret { secret } => Some(secret.clone()),
            MaybeSecret::Plain(_) => None,
        })
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// The first declared port of a role's service, or its well-known default.
pub fn service_port(desired: &DesiredState, role: Role) -> u16 {
    desired
        .services
        .for_role(role)
        .and_then(|spec| spec.ports.first().copied())
        .unwrap_or(match role {
            Role::Zookeeper => 2181,
            Role::MesosMaster => 5050,
            Role::MesosAgent => 5051,
            Role::Marathon => 8080,
            Role::Edge => 80,
        })
}

/// `ip:port` of every node with `role`, sorted by node name so reordering nodes in
/// `cluster.toml` changes nothing.
fn endpoints(desired: &DesiredState, context: &RenderContext<'_>, role: Role) -> String {
    let port = service_port(desired, role);
    let mut nodes: Vec<&str> = desired
        .nodes_with_role(role)
        .map(|node| node.name.as_str())
        .collect();
    nodes.sort_unstable();
    nodes
        .into_iter()
        .filter_map(|name| context.addresses.get(name))
        .map(|ip| format!("{ip}:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The template variables of one service on one node.
pub fn variables(
    desired: &DesiredState,
    context: &RenderContext<'_>,
    node: &str,
    service: &str,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        vars.insert(key.to_owned(), value);
    };
    set("node", node.to_owned());
    set("service", service.to_owned());
    set("service_dir", format!("{}/{service}", context.root));
    if let Some(ip) = context.addresses.get(node) {
        set("address", ip.to_string());
    }
    set(
        "zookeeper_connect",
        endpoints(desired, context, Role::Zookeeper),
    );
    set(
        "mesos_masters",
        endpoints(desired, context, Role::MesosMaster),
    );
    let masters = desired.nodes_with_role(Role::MesosMaster).count();
    set("mesos_quorum", (masters / 2 + 1).to_string());
    if let Some(spec) = desired.nodes.iter().find(|n| n.name == node) {
        set(
            "mesos_attributes",
            spec.attributes
                .iter()
                .map(|(key, value)| format!("{key}:{value}"))
                .collect::<Vec<_>>()
                .join(";"),
        );
    }
    if let Some(extra) = context.extras.and_then(|extras| extras.vars.get(node)) {
        vars.extend(extra.clone());
    }
    vars
}

/// Replaces every `{{name}}`; an unknown name is an error naming it.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in {text:?}"))?;
        let name = after[..end].trim();
        let value = vars.get(name).ok_or_else(|| {
            format!(
                "unknown template variable `{name}` (known: {})",
                vars.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders one service for one node.
pub fn render(
    desired: &DesiredState,
    context: &RenderContext<'_>,
    node: &str,
    role: Role,
    spec: &ServiceSpec,
) -> Result<RenderedService, String> {
    let name = role.as_str();
    let vars = variables(desired, context, node, name);
    let each = |items: &[String]| -> Result<Vec<String>, String> {
        items.iter().map(|item| substitute(item, &vars)).collect()
    };
    let mut env = BTreeMap::new();
    for (key, value) in &spec.env {
        let value = match value {
            MaybeSecret::Plain(text) => EnvValue::Plain(substitute(text, &vars)?),
            MaybeSecret::Secret { secret } => {
                let resolved = context
                    .secrets
                    .and_then(|secrets| secrets.get(secret))
                    .ok_or_else(|| format!("secret {secret} of env {key} was not resolved"))?;
                match resolved {
                    Ok(value) => EnvValue::Secret(value.clone()),
                    Err(reason) => {
                        return Err(format!(
                            "cannot read secret {secret} of env {key}: {reason}"
                        ));
                    }
                }
            }
        };
        env.insert(key.clone(), value);
    }
    let mut files = Vec::new();
    let key = (node.to_owned(), name.to_owned());
    for file in context
        .extras
        .and_then(|extras| extras.files.get(&key))
        .into_iter()
        .flatten()
    {
        files.push(ServiceFile {
            path: file.path.clone(),
            content: substitute(&file.content, &vars)?,
        });
    }
    let mut service = RenderedService {
        node: node.to_owned(),
        name: name.to_owned(),
        image: spec
            .image
            .as_deref()
            .map(|image| substitute(image, &vars))
            .transpose()?,
        command: each(
            spec.exec
                .as_ref()
                .map(|exec| exec.command.as_slice())
                .unwrap_or_default(),
        )?,
        args: each(&spec.args)?,
        env,
        volumes: each(&spec.volumes)?,
        files,
        hash: String::new(),
    };
    service.hash = spec_hash(&service, context.runtime);
    Ok(service)
}

fn spec_hash(service: &RenderedService, runtime: &str) -> String {
    let mut digest = FieldDigest::default();
    let mut field = |name: &str, value: &str| digest.field(name, value.as_bytes());
    field("runtime", runtime);
    field("image", service.image.as_deref().unwrap_or_default());
    for part in &service.command {
        field("command", part);
    }
    for arg in &service.args {
        field("arg", arg);
    }
    for (key, value) in &service.env {
        field("env", key);
        field("value", value.expose());
    }
    for volume in &service.volumes {
        field("volume", volume);
    }
    for file in &service.files {
        field("file", &file.path);
        field("content", &file.content);
    }
    digest.short_hex(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use converged_core::model::{ClusterSpec, ExecSpec, Mode, Node, NodePolicy, Services};

    pub(crate) fn node(name: &str, roles: &[Role]) -> Node {
        Node {
            name: name.into(),
            instance_type: "t2.micro".into(),
            ami: "ami-1".into(),
            volume_size_gb: 20,
            key_pair: None,
            roles: roles.to_vec(),
            attributes: BTreeMap::from([("env".to_owned(), name.to_owned())]),
            policy: NodePolicy::default(),
        }
    }

    fn desired(nodes: Vec<Node>, services: Services) -> DesiredState {
        DesiredState {
            revision: "r".into(),
            cluster: ClusterSpec {
                name: "c".into(),
                region: None,
                mode: Mode::Enforce,
            },
            network: None,
            nodes,
            dns: None,
            services,
            kinds: BTreeMap::new(),
            apps: Vec::new(),
        }
    }

    fn context<'a>() -> RenderContext<'a> {
        RenderContext {
            addresses: BTreeMap::from([
                ("a".to_owned(), "127.0.0.21".parse().unwrap()),
                ("b".to_owned(), "127.0.0.22".parse().unwrap()),
            ]),
            root: "/srv/converged".into(),
            runtime: "exec",
            ..RenderContext::default()
        }
    }

    #[test]
    fn templates_substitute_or_name_the_unknown_variable() {
        let vars = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        let cases = [
            ("x{{a}}y", Ok("x1y".to_owned())),
            ("{{ a }}", Ok("1".to_owned())),
            ("no braces", Ok("no braces".to_owned())),
            ("{{b}}", Err("unknown template variable `b`")),
            ("{{a", Err("unclosed")),
        ];
        for (text, expected) in cases {
            match (substitute(text, &vars), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn node_order_changes_neither_variables_nor_hashes() {
        let spec = ServiceSpec {
            exec: Some(ExecSpec {
                command: vec![
                    "sim".into(),
                    "--zk".into(),
                    "zk://{{zookeeper_connect}}/mesos".into(),
                    "--quorum".into(),
                    "{{mesos_quorum}}".into(),
                ],
            }),
            ..ServiceSpec::default()
        };
        let services = Services {
            mesos_master: Some(spec.clone()),
            zookeeper: Some(ServiceSpec::default()),
            ..Services::default()
        };
        let roles = [Role::Zookeeper, Role::MesosMaster];
        let forward = desired(vec![node("a", &roles), node("b", &roles)], services.clone());
        let backward = desired(vec![node("b", &roles), node("a", &roles)], services);
        let ctx = context();
        let one = render(&forward, &ctx, "a", Role::MesosMaster, &spec).unwrap();
        let two = render(&backward, &ctx, "a", Role::MesosMaster, &spec).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.command[2], "zk://127.0.0.21:2181,127.0.0.22:2181/mesos");
        assert_eq!(one.command[4], "2");
        assert_eq!(one.hash.len(), 16);
    }

    #[test]
    fn every_field_and_the_runtime_feed_the_hash() {
        let base = ServiceSpec {
            image: Some("img:1".into()),
            args: vec!["--x".into()],
            env: BTreeMap::from([("K".to_owned(), MaybeSecret::Plain("v".into()))]),
            volumes: vec!["/a:/b".into()],
            exec: Some(ExecSpec {
                command: vec!["run".into()],
            }),
            ..ServiceSpec::default()
        };
        let state = desired(vec![node("a", &[Role::Marathon])], Services::default());
        let ctx = context();
        let hash = |spec: &ServiceSpec, runtime: &'static str| {
            let ctx = RenderContext {
                runtime,
                ..ctx.clone()
            };
            render(&state, &ctx, "a", Role::Marathon, spec)
                .unwrap()
                .hash
        };
        let original = hash(&base, "exec");
        let mut variants = vec![("runtime", hash(&base, "docker"))];
        let mut spec = base.clone();
        spec.image = Some("img:2".into());
        variants.push(("image", hash(&spec, "exec")));
        let mut spec = base.clone();
        spec.args.push("--y".into());
        variants.push(("args", hash(&spec, "exec")));
        let mut spec = base.clone();
        spec.env.insert("K".into(), MaybeSecret::Plain("w".into()));
        variants.push(("env", hash(&spec, "exec")));
        let mut spec = base.clone();
        spec.volumes.clear();
        variants.push(("volumes", hash(&spec, "exec")));
        let mut spec = base.clone();
        spec.exec = Some(ExecSpec {
            command: vec!["run2".into()],
        });
        variants.push(("command", hash(&spec, "exec")));
        for (field, changed) in variants {
            assert_ne!(changed, original, "{field} must change the hash");
        }
        assert_eq!(hash(&base, "exec"), original, "rendering is deterministic");
    }

    #[test]
    fn secrets_resolve_into_env_and_never_print() {
        let reference = SecretRef::Env("PW".into());
        let spec = ServiceSpec {
            env: BTreeMap::from([(
                "PASSWORD".to_owned(),
                MaybeSecret::Secret {
                    secret: reference.clone(),
                },
            )]),
            ..ServiceSpec::default()
        };
        let state = desired(vec![node("a", &[Role::Marathon])], Services::default());
        let secrets = BTreeMap::from([(reference.clone(), Ok(Secret::new("hunter2")))]);
        let ctx = RenderContext {
            secrets: Some(&secrets),
            ..context()
        };
        let service = render(&state, &ctx, "a", Role::Marathon, &spec).unwrap();
        assert_eq!(service.env["PASSWORD"].expose(), "hunter2");
        assert!(!format!("{service:?}").contains("hunter2"));
        let missing = BTreeMap::from([(reference, Err("not set".to_owned()))]);
        let ctx = RenderContext {
            secrets: Some(&missing),
            ..context()
        };
        let err = render(&state, &ctx, "a", Role::Marathon, &spec).unwrap_err();
        assert!(err.contains("env:PW") && err.contains("not set"), "{err}");
    }
}
