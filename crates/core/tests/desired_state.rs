//! Loading real folders: the example desired state, and broken copies of it.

use std::fs;
use std::path::{Path, PathBuf};

use converged_core::load::{CLUSTER_FILE, parse_sources};
use converged_core::model::Role;
use converged_core::{Kind, Problem, load_desired_state};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state")
}

fn copy_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("apps")).unwrap();
    fs::copy(example().join(CLUSTER_FILE), dir.path().join(CLUSTER_FILE)).unwrap();
    for entry in fs::read_dir(example().join("apps")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(
            entry.path(),
            dir.path().join("apps").join(entry.file_name()),
        )
        .unwrap();
    }
    dir
}

fn problems(sources: &[(&str, &str)]) -> Vec<Problem> {
    let owned: Vec<(String, String)> = sources
        .iter()
        .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
        .collect();
    parse_sources(&owned, "rev".into()).expect_err("expected problems")
}

#[test]
fn the_example_desired_state_is_valid() {
    let state = load_desired_state(&example()).unwrap_or_else(|err| {
        panic!(
            "{}",
            err.problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(state.cluster.name, "clickcount");
    assert_eq!(state.nodes.len(), 3);
    assert_eq!(state.nodes_with_role(Role::Zookeeper).count(), 3);
    assert_eq!(state.apps.len(), 6);
    assert!(
        state
            .apps
            .iter()
            .any(|app| app.app.id == "/click-count/production")
    );
    assert_eq!(state.revision.len(), 16);
    assert!(!state.kind_policy(Kind::MarathonApp).prune);
}

#[test]
fn revision_changes_with_content_only() {
    let dir = copy_example();
    let first = load_desired_state(dir.path()).unwrap().revision;
    assert_eq!(load_desired_state(dir.path()).unwrap().revision, first);
    let app = dir.path().join("apps/gitlab.json");
    let text = fs::read_to_string(&app)
        .unwrap()
        .replace("\"instances\": 1", "\"instances\": 2");
    fs::write(&app, text).unwrap();
    assert_ne!(load_desired_state(dir.path()).unwrap().revision, first);
}

#[test]
fn four_different_mistakes_are_all_reported_with_file_line_and_field() {
    let dir = copy_example();
    let cluster = fs::read_to_string(dir.path().join(CLUSTER_FILE)).unwrap();
    let broken = cluster
        .replacen(
            "instance_type = \"t2.micro\"",
            "instance_typ = \"t2.micro\"",
            1,
        )
        .replacen("name = \"production\"", "name = \"staging\"", 1)
        .replace("node = \"production\"", "node = \"staging\"")
        .replacen(
            "roles = [\"zookeeper\", \"mesos-master\", \"mesos-agent\", \"marathon\", \"edge\"]",
            "roles = [\"mesos-master\", \"mesos-agent\", \"marathon\", \"edge\"]",
            1,
        );
    fs::write(dir.path().join(CLUSTER_FILE), broken).unwrap();
    fs::write(
        dir.path().join("apps/broken.json"),
        "{\n  \"id\": \"/broken\",\n  \"cpus\": 1,,\n}\n",
    )
    .unwrap();

    let err = load_desired_state(dir.path()).expect_err("the copy is broken");
    let report: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    let joined = report.join("\n");
    assert_eq!(err.problems.len(), 4, "{joined}");
    let expect = |needle: &str| {
        assert!(
            report.iter().any(|line| line.contains(needle)),
            "missing `{needle}` in:\n{joined}"
        );
    };
    expect(
        "cluster.toml:26:1: nodes[1].instance_typ: unknown field `instance_typ` (did you mean `instance_type`?)",
    );
    expect(
        "cluster.toml:34:1: nodes[2].name: duplicate node name `staging`: nodes[1] already uses it",
    );
    expect(
        "cluster.toml:30:1: nodes[1].roles: 2 nodes have the `zookeeper` role (staging, staging); a ZooKeeper ensemble needs 1, 3, 5 or 7 members",
    );
    expect("apps/broken.json:3:13: not valid JSON");
    assert!(err.revision.is_some());
}

#[test]
fn a_missing_or_empty_folder_is_invalid() {
    let missing = load_desired_state(Path::new("/nonexistent/desired-state")).unwrap_err();
    assert!(missing.problems[0].message.contains("does not exist"));
    let empty = tempfile::tempdir().unwrap();
    let err = load_desired_state(empty.path()).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(
        err.problems[0]
            .to_string()
            .starts_with("cluster.toml: cannot read it"),
        "{}",
        err.problems[0]
    );
}

#[test]
fn a_cluster_name_and_apps_alone_are_valid() {
    let sources = [
        (
            "cluster.toml".to_owned(),
            "[cluster]\nname = \"apps-only\"\n".to_owned(),
        ),
        (
            "apps/a.json".to_owned(),
            r#"{"id": "/a", "cmd": "sleep 1000"}"#.to_owned(),
        ),
    ];
    let state = parse_sources(&sources, "r".into()).unwrap();
    assert!(state.nodes.is_empty() && state.dns.is_none() && state.network.is_none());
    assert_eq!(state.apps.len(), 1);
}

const MINIMAL_NODE: &str = r#"[cluster]
name = "c"
region = "eu-west-1"

[network]
vpc_id = "vpc-0a1b2c3d"
subnet_id = "subnet-0a1b2c3d"
admin_cidrs = ["10.0.0.0/8", "300.1.1.1/8"]

[[nodes]]
name = "a"
instance_type = "t2.micro"
ami = "ami-1e749f67"
roles = ["mesos-agent", "zookeper"]
attributes = { env = "x" }

[services.mesos-agent]
ports = [5051]

[dns]
zone = "example.org."
[[dns.records]]
name = "www.other.org."
node = "a"
[[dns.records]]
name = "api.example.org."
node = "ghost"

[kinds.instance]
max_delete_fraction = 1.5
"#;

#[test]
fn semantic_checks_name_the_field_in_words() {
    let found = problems(&[(CLUSTER_FILE, MINIMAL_NODE)]);
    let report: Vec<String> = found.iter().map(ToString::to_string).collect();
    let joined = report.join("\n");
    assert!(
        joined.contains(
            "nodes[0].roles[1]: `zookeper` is not allowed here (did you mean `zookeeper`?)"
        ),
        "{joined}"
    );
    let second = problems(&[(
        CLUSTER_FILE,
        &MINIMAL_NODE.replace("\"zookeper\"", "\"marathon\""),
    )]);
    let report: Vec<String> = second.iter().map(ToString::to_string).collect();
    let joined = report.join("\n");
    for needle in [
        "cluster.toml:8:1: network.admin_cidrs[1]: `300.1.1.1/8` is not a CIDR block",
        "nodes[0].roles[1]: role `marathon` needs a `[services.marathon]` section",
        "dns.records[0].name: `www.other.org.` is not inside the zone `example.org.`",
        "dns.records[1].node: no node is named `ghost`",
        "kinds.instance.max_delete_fraction: 1.5 is not a share between 0 and 1",
    ] {
        assert!(joined.contains(needle), "missing `{needle}` in:\n{joined}");
    }
    assert_eq!(second.len(), 5, "{joined}");
}

#[test]
fn app_problems_use_json_pointers() {
    let cluster = "[cluster]\nname = \"c\"\nregion = \"eu-west-1\"\n[network]\nvpc_id = \"vpc-0a1b2c3d\"\nsubnet_id = \"subnet-0a1b2c3d\"\n[[nodes]]\nname = \"a\"\ninstance_type = \"t2.micro\"\nami = \"ami-1e749f67\"\nroles = [\"mesos-agent\"]\nattributes = { env = \"staging\" }\n[services.mesos-agent]\n";
    let app = r#"{
  "id": "/Bad_Id",
  "cmd": "x",
  "args": ["y"],
  "tasksRunning": 3,
  "container": {"docker": {"image": ""}},
  "constraints": [["env", "CLUSTER", "prod"], ["rack", "UNIQUE"], ["hostname", "NEAR"]],
  "upgradeStrategy": {"minimumHealthCapacity": 1.5, "maximumOverCapacity": 0}
}"#;
    let found = problems(&[(CLUSTER_FILE, cluster), ("apps/bad.json", app)]);
    let report: Vec<String> = found.iter().map(ToString::to_string).collect();
    let joined = report.join("\n");
    for needle in [
        "apps/bad.json:5:3: /tasksRunning: `tasksRunning` is reported by Marathon, not configured",
        "apps/bad.json:2:3: /id: `/Bad_Id` is not a valid Marathon app id",
        "/args: give either `cmd` or `args`, not both",
        "/container/docker/image: the docker image must not be empty",
        "/constraints/0/2: no node has `env` = `prod` (values: staging)",
        "/constraints/1/0: no node has the attribute `rack` (nodes have: env)",
        "/constraints/2/1: `NEAR` is not a constraint operator",
        "apps/bad.json:8:23: /upgradeStrategy/minimumHealthCapacity: 1.5 is outside [0, 1]",
    ] {
        assert!(joined.contains(needle), "missing `{needle}` in:\n{joined}");
    }
    assert_eq!(found.len(), 8, "{joined}");
}

#[test]
fn secret_references_must_be_well_formed() {
    let app = r#"{"id": "/a", "cmd": "x", "env": {"PW": {"secret": "hunter2"}}}"#;
    let found = problems(&[
        (CLUSTER_FILE, "[cluster]\nname = \"c\"\n"),
        ("apps/a.json", app),
    ]);
    assert_eq!(found.len(), 1);
    assert!(found[0].to_string().contains("/env/PW"), "{}", found[0]);
    assert!(
        found[0]
            .message
            .contains("write env:NAME or file:/absolute/path"),
        "{}",
        found[0]
    );
    assert!(!found[0].message.contains("hunter2"), "{}", found[0]);
}

#[test]
fn fingerprints_change_with_any_file_and_settle_with_time() {
    use converged_core::load::fingerprint;
    use std::time::{Duration, SystemTime};
    let dir = copy_example();
    let first = fingerprint(dir.path()).unwrap();
    assert_eq!(fingerprint(dir.path()).unwrap(), first);
    fs::write(
        dir.path().join("apps/new.json"),
        r#"{"id": "/new", "cmd": "x"}"#,
    )
    .unwrap();
    let added = fingerprint(dir.path()).unwrap();
    assert_ne!(added, first, "a new file");
    fs::write(
        dir.path().join("apps/new.json"),
        r#"{"id": "/new", "cmd": "xy"}"#,
    )
    .unwrap();
    assert_ne!(fingerprint(dir.path()).unwrap(), added, "a longer file");
    let now = SystemTime::now();
    assert!(
        !added.settled_before(now),
        "files written just now are always read again"
    );
    assert!(added.settled_before(now + Duration::from_secs(3)));
    fs::remove_file(dir.path().join("cluster.toml")).unwrap();
    assert!(
        fingerprint(dir.path()).is_none(),
        "no cluster.toml: nothing to skip"
    );
}
