//! Loading real folders: the example desired state, broken copies of it, and folders holding
//! what must never be read (pipes, sockets, oversized files, symlinks out).

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use converged_core::load::{CLUSTER_FILE, Fingerprint, fingerprint, parse_sources};
use converged_core::model::Role;
use converged_core::{Kind, LoadError, Problem, load_desired_state};

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
        "cluster.toml:30:1: kinds.instance.max_delete_fraction: must be a number in [0, 1], got 1.5",
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
        "apps/bad.json:8:23: /upgradeStrategy/minimumHealthCapacity: must be a number in [0, 1], got 1.5",
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
    assert_eq!(found.len(), 1, "{found:#?}");
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
    use std::time::SystemTime;
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

/// A valid desired state (a cluster name and one app) to which each case adds one thing.
fn minimal_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("apps")).unwrap();
    fs::write(dir.path().join(CLUSTER_FILE), "[cluster]\nname = \"c\"\n").unwrap();
    fs::write(
        dir.path().join("apps/a.json"),
        r#"{"id": "/a", "cmd": "sleep 1000"}"#,
    )
    .unwrap();
    dir
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A JSON app padded with spaces to `bytes`: valid, only too large.
fn padded_app(bytes: usize) -> String {
    let app = r#"{"id": "/big", "cmd": "x"}"#;
    format!("{app}{}", " ".repeat(bytes - app.len()))
}

/// Runs `f` on its own thread and fails the test if it has not returned within 2 s: a reader
/// that opened a pipe would wait for a writer forever.
fn within_two_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || done.send(f()));
    result
        .recv_timeout(Duration::from_secs(2))
        .unwrap_or_else(|_| panic!("{what} did not return within 2 s"))
}

fn load_within_two_seconds(dir: &Path) -> Result<converged_core::DesiredState, LoadError> {
    let dir = dir.to_owned();
    within_two_seconds("load_desired_state", move || load_desired_state(&dir))
}

fn fingerprint_within_two_seconds(dir: &Path) -> Option<Fingerprint> {
    let dir = dir.to_owned();
    within_two_seconds("fingerprint", move || fingerprint(&dir))
}

/// One thing put into an otherwise valid folder and the one problem it must cause. `set_up`
/// gets the folder and a directory outside it (both with symlinks resolved) and returns the
/// expected problem.
struct Refused {
    name: &'static str,
    set_up: fn(&Path, &Path) -> String,
}

const REFUSED: &[Refused] = &[
    Refused {
        name: "a named pipe among the apps",
        set_up: |folder, _| {
            mkfifo(&folder.join("apps/pipe.json"));
            "apps/pipe.json: is a named pipe; only regular files are read".into()
        },
    },
    Refused {
        name: "a named pipe as cluster.toml",
        set_up: |folder, _| {
            fs::remove_file(folder.join(CLUSTER_FILE)).unwrap();
            mkfifo(&folder.join(CLUSTER_FILE));
            "cluster.toml: is a named pipe; only regular files are read".into()
        },
    },
    Refused {
        name: "a Unix socket among the apps",
        set_up: |folder, _| {
            UnixListener::bind(folder.join("apps/socket.json")).unwrap();
            "apps/socket.json: is a socket; only regular files are read".into()
        },
    },
    Refused {
        name: "a 2 MiB app file",
        set_up: |folder, _| {
            fs::write(folder.join("apps/big.json"), padded_app(2 << 20)).unwrap();
            "apps/big.json: is 2.0 MiB (2097152 bytes); an app file may be at most 1 MiB: \
             Marathon keeps an app definition in one ZooKeeper node, 1 MiB by default \
             (`--zk_max_node_size`)"
                .into()
        },
    },
    Refused {
        name: "a 5 MiB cluster.toml",
        set_up: |folder, _| {
            let header = "[cluster]\nname = \"c\"\n#";
            let padded = format!("{header}{}", " ".repeat((5 << 20) - header.len()));
            fs::write(folder.join(CLUSTER_FILE), padded).unwrap();
            "cluster.toml: is 5.0 MiB (5242880 bytes); cluster.toml may be at most 4 MiB: no \
             real cluster comes near it; the limit keeps a wrong or runaway file out of memory"
                .into()
        },
    },
    Refused {
        name: "a symlink to a file outside the folder",
        set_up: |folder, outside| {
            fs::write(outside.join("app.json"), r#"{"id": "/out", "cmd": "x"}"#).unwrap();
            symlink(outside.join("app.json"), folder.join("apps/out.json")).unwrap();
            format!(
                "apps/out.json: is a symlink to {}, outside the desired-state folder",
                outside.join("app.json").display()
            )
        },
    },
    Refused {
        name: "a relative symlink climbing out to a device",
        set_up: |folder, _| {
            let up = "../".repeat(folder.components().count());
            symlink(format!("{up}dev/null"), folder.join("apps/null.json")).unwrap();
            "apps/null.json: is a symlink to /dev/null, outside the desired-state folder".into()
        },
    },
    Refused {
        name: "apps/ as a symlink to a folder outside",
        set_up: |folder, outside| {
            fs::create_dir(outside.join("apps")).unwrap();
            fs::write(outside.join("apps/b.json"), r#"{"id": "/b", "cmd": "x"}"#).unwrap();
            fs::remove_dir_all(folder.join("apps")).unwrap();
            symlink(outside.join("apps"), folder.join("apps")).unwrap();
            format!(
                "apps: is a symlink to {}, outside the desired-state folder",
                outside.join("apps").display()
            )
        },
    },
    Refused {
        name: "apps/ as a file",
        set_up: |folder, _| {
            fs::remove_dir_all(folder.join("apps")).unwrap();
            fs::write(folder.join("apps"), "").unwrap();
            "apps: is a regular file, not a directory; app files go directly in `apps/`".into()
        },
    },
    Refused {
        name: "a directory named like an app file",
        set_up: |folder, _| {
            fs::create_dir(folder.join("apps/dir.json")).unwrap();
            "apps/dir.json: is a directory; only regular files are read".into()
        },
    },
    Refused {
        name: "a symlink inside the folder to a named pipe inside it",
        set_up: |folder, _| {
            mkfifo(&folder.join("pipe"));
            symlink("../pipe", folder.join("apps/link.json")).unwrap();
            format!(
                "apps/link.json: is a symlink to {}, which is a named pipe; only regular files are read",
                folder.join("pipe").display()
            )
        },
    },
    Refused {
        name: "a dangling symlink",
        set_up: |folder, _| {
            symlink("gone.json", folder.join("apps/dangling.json")).unwrap();
            "apps/dangling.json: is a symlink to gone.json, which does not exist".into()
        },
    },
];

#[test]
fn special_files_large_files_and_symlinks_out_are_refused_by_name_without_blocking() {
    for case in REFUSED {
        let dir = minimal_folder();
        let outside = tempfile::tempdir().unwrap();
        let folder = fs::canonicalize(dir.path()).unwrap();
        let expected = (case.set_up)(&folder, &fs::canonicalize(outside.path()).unwrap());
        let err = load_within_two_seconds(&folder)
            .err()
            .unwrap_or_else(|| panic!("{}: the folder loaded", case.name));
        let found: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(found, [expected], "{}", case.name);
        assert!(
            fingerprint_within_two_seconds(&folder).is_none(),
            "{}: a folder that cannot load has no fingerprint to skip a reload by",
            case.name
        );
    }
}

#[test]
fn every_refused_file_is_reported_at_once_with_the_other_problems() {
    let dir = minimal_folder();
    let outside = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("apps/pipe.json"));
    let _listener = UnixListener::bind(dir.path().join("apps/socket.json")).unwrap();
    fs::write(dir.path().join("apps/big.json"), padded_app(2 << 20)).unwrap();
    fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
    symlink(
        outside.path().join("passwd"),
        dir.path().join("apps/passwd.json"),
    )
    .unwrap();
    fs::write(dir.path().join("apps/broken.json"), "{\"id\": ").unwrap();
    let err = load_within_two_seconds(dir.path()).unwrap_err();
    let found: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    let joined = found.join("\n");
    for needle in [
        "apps/pipe.json: is a named pipe",
        "apps/socket.json: is a socket",
        "apps/big.json: is 2.0 MiB",
        "apps/passwd.json: is a symlink to ",
        "apps/broken.json:1:7: not valid JSON",
    ] {
        assert!(joined.contains(needle), "missing `{needle}` in:\n{joined}");
    }
    assert_eq!(found.len(), 5, "{joined}");
    assert!(!joined.contains("root:x"), "nothing outside is read");
}

#[test]
fn symlinks_that_stay_inside_the_folder_are_followed() {
    let real = minimal_folder();
    let root = real.path();
    fs::create_dir_all(root.join("releases/v1/apps")).unwrap();
    fs::create_dir(root.join("common")).unwrap();
    fs::write(
        root.join("common/web.json"),
        r#"{"id": "/web", "cmd": "serve"}"#,
    )
    .unwrap();
    fs::write(
        root.join("releases/v1/apps/web.json"),
        r#"{"id": "/web", "cmd": "serve"}"#,
    )
    .unwrap();
    fs::rename(root.join(CLUSTER_FILE), root.join("common/prod.toml")).unwrap();
    symlink("common/prod.toml", root.join(CLUSTER_FILE)).unwrap();
    symlink("../common/web.json", root.join("apps/web.json")).unwrap();
    // The operator's path is itself a symlink, as with a release switched by renaming a link.
    let links = tempfile::tempdir().unwrap();
    let desired = links.path().join("desired");
    symlink(root, &desired).unwrap();

    let state = load_within_two_seconds(&desired).unwrap();
    let ids: Vec<&str> = state.apps.iter().map(|app| app.app.id.as_str()).collect();
    assert_eq!(ids, ["/a", "/web"]);
    assert_eq!(state.cluster.name, "c");
    let first = fingerprint_within_two_seconds(&desired).expect("a loadable folder");

    fs::write(
        root.join("common/web.json"),
        r#"{"id": "/web", "cmd": "serve --fast"}"#,
    )
    .unwrap();
    assert_ne!(
        fingerprint_within_two_seconds(&desired).unwrap(),
        first,
        "an edit of a symlink's target changes the fingerprint"
    );
    assert_ne!(
        load_within_two_seconds(&desired).unwrap().revision,
        state.revision
    );

    fs::remove_dir_all(root.join("apps")).unwrap();
    symlink("releases/v1/apps", root.join("apps")).unwrap();
    let switched = load_within_two_seconds(&desired).unwrap();
    let ids: Vec<&str> = switched
        .apps
        .iter()
        .map(|app| app.app.id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["/web"],
        "apps/ as a symlink inside the folder is followed"
    );
}

/// One bad desired state, as text, and every line its report must hold, in order.
struct Strict {
    name: &'static str,
    sources: &'static [(&'static str, &'static str)],
    report: &'static [&'static str],
}

const CLUSTER_ONLY: &str = "[cluster]\nname = \"c\"\n";

const STRICT: &[Strict] = &[
    Strict {
        name: "a key repeated in an app file, and the rest still checked",
        sources: &[
            (CLUSTER_FILE, CLUSTER_ONLY),
            (
                "apps/a.json",
                "{\n  \"id\": \"/a\",\n  \"instances\": 1,\n  \"cmd\": \"x\",\n  \"instances\": 2,\n  \"args\": [\"y\"]\n}",
            ),
        ],
        report: &[
            "apps/a.json:5:3: /instances: duplicate key `instances` (first at line 3); JSON parsers disagree on which one counts",
            "apps/a.json:6:3: /args: give either `cmd` or `args`, not both",
        ],
    },
    Strict {
        name: "keys repeated deep inside an app file",
        sources: &[
            (CLUSTER_FILE, CLUSTER_ONLY),
            (
                "apps/a.json",
                "{\"id\": \"/a\", \"cmd\": \"x\",\n \"container\": {\"docker\": {\"image\": \"a\",\n   \"image\": \"b\"}},\n \"healthChecks\": [{\"protocol\": \"TCP\"}, {\"path\": \"/\",\n   \"path\": \"/x\"}]}",
            ),
        ],
        report: &[
            "apps/a.json:3:4: /container/docker/image: duplicate key `image` (first at line 2); JSON parsers disagree on which one counts",
            "apps/a.json:5:4: /healthChecks/1/path: duplicate key `path` (first at line 4); JSON parsers disagree on which one counts",
        ],
    },
    Strict {
        name: "keys and tables repeated in cluster.toml, and the rest still checked",
        sources: &[(
            CLUSTER_FILE,
            "[cluster]\nname = \"c\"\nregion = \"eu-west-1\"\nname = \"d\"\n\n[dns]\nzone = \"example.org.\"\n\n[dns]\nzone = \"example.com.\"\n\n[kinds.marathon_app]\nprune = true\nprune = false\nmode = \"enforced\"\n",
        )],
        report: &[
            "cluster.toml:4:1: cluster.name: duplicate key `name` (first at line 2)",
            "cluster.toml:9:2: dns: duplicate key `dns` (first at line 6)",
            "cluster.toml:14:1: kinds.marathon_app.prune: duplicate key `prune` (first at line 13)",
            "cluster.toml:15:1: kinds.marathon_app.mode: `enforced` is not allowed here (did you mean `enforce`?); allowed: `enforce`, `observe`",
        ],
    },
    Strict {
        name: "a wrong type, a far-off unknown key and a misspelt kind key hide nothing",
        sources: &[
            (
                CLUSTER_FILE,
                "[cluster]\nname = \"c\"\nregion = \"eu-west-1\"\n\n[network]\nvpc_id = \"vpc-0a1b2c3d\"\nsubnet_id = \"subnet-0a1b2c3d\"\n\n[[nodes]]\nname = \"a\"\ninstance_type = \"t2.micro\"\nami = \"ami-1e749f67\"\nvolume_size_gb = \"50\"\nroles = [\"edge\"]\ncolour = \"blue\"\n\n[[nodes]]\nname = \"a\"\ninstance_type = \"t2.micro\"\nami = \"ami-1e749f67\"\nroles = [\"edge\"]\n\n[kinds.marathon_app]\nprun = true\n\n[kinds.marathon_ap]\nmax_delete_fraction = nan\n",
            ),
            ("apps/a.json", r#"{"id": "/A", "cmd": "x"}"#),
        ],
        report: &[
            "cluster.toml:13:1: nodes[0].volume_size_gb: expected a whole number from 0 to 4294967295, got the string \"50\"",
            "cluster.toml:15:1: nodes[0].colour: unknown field `colour`; allowed here: `name`, `instance_type`, `ami`, `volume_size_gb`, `key_pair`, `roles`, `attributes`, `policy`",
            "cluster.toml:18:1: nodes[1].name: duplicate node name `a`: nodes[0] already uses it",
            "cluster.toml:24:1: kinds.marathon_app.prun: unknown field `prun` (did you mean `prune`?)",
            "cluster.toml:26:1: kinds.marathon_ap: unknown kind `marathon_ap` (did you mean `marathon_app`?)",
            "cluster.toml:27:1: kinds.marathon_ap.max_delete_fraction: must be a number in [0, 1], got nan",
            "apps/a.json:1:2: /id: `/A` is not a valid Marathon app id: path segments of lowercase letters, digits, `-` and `.`, not starting or ending with `-`",
        ],
    },
    Strict {
        name: "a required field of the wrong type, and nodes without a network",
        sources: &[(
            CLUSTER_FILE,
            "[cluster]\nname = 5\nregion = \"eu-west-1\"\n\n[[nodes]]\nname = \"a\"\ninstance_type = \"t2.micro\"\nami = \"ami-1e749f67\"\nroles = [\"edge\", \"edgy\"]\n",
        )],
        report: &[
            "cluster.toml:2:1: cluster.name: expected a string, got 5",
            "cluster.toml:5:1: nodes[0]: nodes need a `[network]` section with `vpc_id` and `subnet_id`",
            "cluster.toml:9:1: nodes[0].roles[1]: `edgy` is not allowed here (did you mean `edge`?); allowed: `zookeeper`, `mesos-master`, `mesos-agent`, `marathon`, `edge`",
        ],
    },
    Strict {
        name: "cluster.toml that is no TOML does not hide the apps' problems",
        sources: &[
            (CLUSTER_FILE, "[cluster\nname = \"c\"\n"),
            ("apps/a.json", r#"{"id": "/a", "cmd": "x", "args": ["y"]}"#),
        ],
        report: &[
            "cluster.toml:1:9: not valid TOML: unclosed table, expected `]`",
            "apps/a.json:1:26: /args: give either `cmd` or `args`, not both",
        ],
    },
    Strict {
        name: "a table of the wrong type is one problem, not one per field it lacks",
        sources: &[
            (CLUSTER_FILE, "cluster = \"c\"\n"),
            (
                "apps/a.json",
                "{\"id\": \"/a\", \"cmd\": \"x\",\n \"fetch\": {\"uri\": \"u\"},\n \"healthChecks\": [{\"command\": \"true\"}]}",
            ),
        ],
        report: &[
            "cluster.toml:1:1: cluster: expected a table, got the string \"c\"",
            "apps/a.json:2:2: /fetch: expected a list, got an object",
            "apps/a.json:3:20: /healthChecks/0/command: expected an object, got the string \"true\"",
        ],
    },
    Strict {
        name: "byte order marks are named",
        sources: &[
            (CLUSTER_FILE, "\u{feff}[cluster]\nname = \"c\"\n"),
            ("apps/a.json", "\u{feff}{\"id\": \"/a\", \"cmd\": \"x\"}"),
        ],
        report: &[
            "cluster.toml:1:1: starts with a UTF-8 byte order mark (BOM, bytes EF BB BF): save the file as UTF-8 without one",
            "apps/a.json:1:1: starts with a UTF-8 byte order mark (BOM, bytes EF BB BF): save the file as UTF-8 without one",
        ],
    },
    Strict {
        name: "empty and non-object app files",
        sources: &[
            (CLUSTER_FILE, CLUSTER_ONLY),
            ("apps/empty.json", " \n"),
            ("apps/list.json", "[]"),
        ],
        report: &[
            "apps/empty.json: is empty; an app file holds one JSON object, the app definition",
            "apps/list.json:1:1: an app file holds one JSON object, the app definition",
        ],
    },
    Strict {
        name: "numbers out of range in an app file",
        sources: &[
            (CLUSTER_FILE, CLUSTER_ONLY),
            (
                "apps/a.json",
                r#"{"id": "/a", "cmd": "x",
"instances": -1,
"ports": [80, 70000],
"portDefinitions": [{"port": 65536}],
"container": {"docker": {"image": "i", "portMappings": [{"containerPort": 80, "hostPort": 100000}]}},
"healthChecks": [{"protocol": "HTTP", "portIndex": 1, "intervalSeconds": 0}],
"backoffFactor": 0.5,
"upgradeStrategy": {"maximumOverCapacity": -0.1}}"#,
            ),
        ],
        report: &[
            "apps/a.json:2:1: /instances: expected a whole number from 0 to 4294967295, got -1",
            "apps/a.json:3:15: /ports/1: expected a port from 0 to 65535, got 70000",
            "apps/a.json:4:22: /portDefinitions/0/port: expected a port from 0 to 65535, got 65536",
            "apps/a.json:5:79: /container/docker/portMappings/0/hostPort: expected a port from 0 to 65535, got 100000",
            "apps/a.json:6:39: /healthChecks/0/portIndex: portIndex 1 is beyond the app's ports: container.docker.portMappings has 1 port(s), so the highest portIndex is 0",
            "apps/a.json:6:55: /healthChecks/0/intervalSeconds: must be at least 1 second, got 0",
            "apps/a.json:7:1: /backoffFactor: 0.5 is below the minimum of 1",
            "apps/a.json:8:21: /upgradeStrategy/maximumOverCapacity: must be a number in [0, 1], got -0.1",
        ],
    },
    Strict {
        name: "unknown keys inside the fields Marathon nests",
        sources: &[
            (CLUSTER_FILE, CLUSTER_ONLY),
            (
                "apps/a.json",
                "{\"id\": \"/a\", \"cmd\": \"x\",\n \"fetch\": [{\"uri\": \"u\", \"executeable\": true}],\n \"networks\": [{\"mode\": \"host\", \"labes\": {}}]}",
            ),
        ],
        report: &[
            "apps/a.json:2:25: /fetch/0/executeable: unknown field `executeable` (did you mean `executable`?)",
            "apps/a.json:3:32: /networks/0/labes: unknown field `labes` (did you mean `labels`?)",
        ],
    },
    Strict {
        name: "TTLs above Route 53's maximum",
        sources: &[(
            CLUSTER_FILE,
            "[cluster]\nname = \"c\"\nregion = \"eu-west-1\"\n[network]\nvpc_id = \"vpc-0a1b2c3d\"\nsubnet_id = \"subnet-0a1b2c3d\"\n[[nodes]]\nname = \"a\"\ninstance_type = \"t2.micro\"\nami = \"ami-1e749f67\"\nroles = [\"edge\"]\n[dns]\nzone = \"example.org.\"\nttl = 2147483648\n[[dns.records]]\nname = \"www.example.org.\"\nnode = \"a\"\nttl = 4294967295\n",
        )],
        report: &[
            "cluster.toml:14:1: dns.ttl: a TTL of 2147483648 s is above Route 53's maximum of 2147483647 s",
            "cluster.toml:18:1: dns.records[0].ttl: a TTL of 4294967295 s is above Route 53's maximum of 2147483647 s",
        ],
    },
];

#[test]
fn every_problem_in_every_file_is_reported_with_its_place() {
    for case in STRICT {
        let report: Vec<String> = problems(case.sources)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(report, case.report, "{}", case.name);
    }
}

#[test]
fn the_problems_of_one_file_are_capped_with_a_count_of_the_rest() {
    let unknown: Vec<String> = (0..60).map(|n| format!("\"unknown{n}\": 1")).collect();
    let app = format!("{{\"id\": \"/a\", \"cmd\": \"x\", {}}}", unknown.join(", "));
    let found = problems(&[
        (CLUSTER_FILE, CLUSTER_ONLY),
        ("apps/a.json", &app),
        ("apps/b.json", r#"{"id": "/b", "cmd": "x", "arg": []}"#),
    ]);
    let in_a: Vec<&Problem> = found.iter().filter(|p| p.file == "apps/a.json").collect();
    assert_eq!(in_a.len(), 51);
    assert_eq!(
        in_a[50].to_string(),
        "apps/a.json: and 10 more problem(s) in this file"
    );
    assert!(in_a[49].message.contains("unknown field `unknown49`"));
    assert_eq!(
        found.last().unwrap().to_string(),
        "apps/b.json:1:26: /arg: unknown field `arg` (did you mean `args`?)"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_named_with_the_place_it_stops_being_text() {
    let dir = minimal_folder();
    fs::write(
        dir.path().join(CLUSTER_FILE),
        b"[cluster]\nname = \"caf\xe9\"\n",
    )
    .unwrap();
    let err = load_desired_state(dir.path()).unwrap_err();
    let report: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        report,
        [
            "cluster.toml:2:12: not valid UTF-8 at byte 21 (line 2, column 12); save the file as UTF-8"
        ]
    );
}
