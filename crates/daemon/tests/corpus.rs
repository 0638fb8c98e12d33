//! The bad-input corpus (`crates/core/tests/corpus/`): every case through the real
//! `converged validate` binary, in both output formats, each with a deadline. A case is a
//! directory holding `case.toml` (what it feeds the loader and what must come back) and the
//! files it puts over its base folder; contents that cannot or should not be committed (pipes,
//! symlinks out of the folder, unreadable and huge files) are made at run time from `[[make]]`.
//! Every case runs and every difference is reported at once, followed by the summary line
//! `corpus: N/N cases as expected, P panics, H hangs` that scripts/reliability.sh reads.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use converged_testkit::copy_dir;
use serde::Deserialize;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_converged");

/// A hang is a failure: no folder, however hostile, may keep `validate` busy this long.
const DEADLINE: Duration = Duration::from_secs(10);

/// Cases run side by side: each mostly waits on a short-lived process, so a few at once keep
/// the whole corpus well within half a minute even on two cores.
const WORKERS: usize = 4;

/// The corpus must not shrink below what the issue asks for.
const MINIMUM_CASES: usize = 100;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/corpus")
}

/// `case.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case feeds the loader, and why the expected answer is the right one.
    about: String,
    /// The folder the case's own files are laid over: a directory of `_bases/`, `example` (the
    /// repository's desired-state/), `empty`, or `missing` / `regular_file` for a path that is no
    /// folder at all.
    base: String,
    /// The expected exit code of `converged validate`.
    exit: i32,
    /// The exit code instead when file permissions do not stop this process (root): a case
    /// about an unreadable file says what a privileged reader gets.
    #[serde(default)]
    exit_if_privileged: Option<i32>,
    /// Whether the listed problems are all there may be (the default), or a lower bound.
    #[serde(default = "yes")]
    complete: bool,
    /// At most this many problems, for a case about the per-file cap.
    #[serde(default)]
    max_problems: Option<usize>,
    #[serde(default)]
    make: Vec<Make>,
    #[serde(default)]
    problems: Vec<Expected>,
}

fn yes() -> bool {
    true
}

/// Content generated at run time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Make {
    /// `fifo`, `directory`, `symlink_out` (to a file or folder `target` beside the folder),
    /// `symlink` (to `target`, relative), `unreadable` (chmod 000), `app_of_size`
    /// (a valid app file of exactly `bytes`), `cluster_of_size`, `nested_json` (`depth` open
    /// arrays or objects in an app), `nested_toml` (`depth` open arrays in cluster.toml),
    /// `apps` (`count` valid app files), `edge_nodes` (a cluster of `count` nodes),
    /// `unknown_fields` (an app with `count` unknown fields).
    kind: String,
    path: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(default)]
    depth: Option<usize>,
    #[serde(default)]
    count: Option<usize>,
    /// For `symlink_out`: make the target a directory (holding one valid app) instead of a file.
    #[serde(default)]
    target_is_dir: bool,
    /// For `nested_json`: nest objects (`{"a": …}`) instead of arrays.
    #[serde(default)]
    objects: bool,
}

/// One problem that must be reported.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// Relative to the folder; `{dir}` stands for the path given to `validate`.
    file: String,
    /// The line; 0: the problem is about the whole file and has none; -1: not checked (only for
    /// a problem whose place the spec does not fix, e.g. the "and N more" line).
    line: i64,
    /// The full field path, dotted for TOML, a JSON pointer for JSON; "": none; "*": not checked.
    field: String,
    /// Fragments the message must contain, compared case-insensitively.
    #[serde(default)]
    message: Vec<String>,
    /// The expectation holds only where file permissions stop this process (not as root).
    #[serde(default)]
    unless_privileged: bool,
}

/// What one run of the binary gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    hung: bool,
}

impl Run {
    fn panicked(&self) -> bool {
        self.code == Some(101)
            || (self.code.is_none() && !self.hung)
            || self.stderr.contains("panicked at")
            || self.stdout.contains("panicked at")
    }
}

#[derive(Default)]
struct Tally {
    cases: usize,
    as_expected: usize,
    rejected: usize,
    accepted: usize,
    panics: usize,
    hangs: usize,
    notes: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn merge(mut self, other: Tally) -> Tally {
        self.cases += other.cases;
        self.as_expected += other.as_expected;
        self.rejected += other.rejected;
        self.accepted += other.accepted;
        self.panics += other.panics;
        self.hangs += other.hangs;
        self.notes.extend(other.notes);
        self.failures.extend(other.failures);
        self
    }
}

#[test]
fn every_corpus_case_is_answered_as_expected_within_its_deadline() {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .expect("the corpus folder exists")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            entry.path().join("case.toml").is_file().then_some(name)
        })
        .collect();
    names.sort();
    let next = AtomicUsize::new(0);
    let mut tally = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                scope.spawn(|| {
                    let mut tally = Tally::default();
                    while let Some(name) = names.get(next.fetch_add(1, Ordering::Relaxed)) {
                        run_case(name, &mut tally);
                    }
                    tally
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a corpus worker finished"))
            .fold(Tally::default(), Tally::merge)
    });
    tally.failures.sort();
    tally.notes.sort();
    let summary = format!(
        "corpus: {}/{} cases as expected, {} panics, {} hangs",
        tally.as_expected, tally.cases, tally.panics, tally.hangs
    );
    println!("{summary}");
    println!(
        "corpus: {} cases rejected with file:line:field, {} valid cases accepted",
        tally.rejected, tally.accepted
    );
    for note in &tally.notes {
        println!("corpus note: {note}");
    }
    let mut report = String::new();
    for failure in &tally.failures {
        let _ = writeln!(report, "{failure}");
    }
    assert!(
        tally.failures.is_empty(),
        "{} case(s) not as expected:\n\n{report}\n{summary}",
        tally.failures.len()
    );
    assert!(
        tally.cases >= MINIMUM_CASES,
        "the corpus holds {} cases, fewer than {MINIMUM_CASES}",
        tally.cases
    );
}

fn run_case(name: &str, tally: &mut Tally) {
    tally.cases += 1;
    let case_dir = corpus().join(name);
    let case = match read_case(&case_dir) {
        Ok(case) => case,
        Err(err) => {
            tally
                .failures
                .push(format!("── {name}: case.toml cannot be read: {err}"));
            return;
        }
    };
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("desired");
    let privileged = match assemble(&case_dir, &case, &target) {
        Ok(privileged) => privileged,
        Err(err) => {
            tally
                .failures
                .push(format!("── {name}: the folder cannot be made: {err}"));
            return;
        }
    };
    if privileged {
        tally.notes.push(format!(
            "{name}: file permissions do not stop this process (root), so the unreadable-file \
             expectation was skipped and the privileged exit code checked instead"
        ));
    }
    let dir = target.to_str().unwrap().to_owned();
    let json_run = validate(&["validate", "--json", &dir]);
    let text_run = validate(&["validate", &dir]);
    restore_permissions(scratch.path());

    let mut differences = Vec::new();
    for (label, run) in [("--json", &json_run), ("text", &text_run)] {
        if run.hung {
            tally.hangs += 1;
            differences.push(format!(
                "validate ({label}) did not finish within {DEADLINE:?}"
            ));
        } else if run.panicked() {
            tally.panics += 1;
            differences.push(format!(
                "validate ({label}) panicked or died (exit {:?}):\n{}",
                run.code,
                indent(&run.stderr)
            ));
        }
    }
    let expected_exit = match (privileged, case.exit_if_privileged) {
        (true, Some(code)) => code,
        _ => case.exit,
    };
    for (label, run) in [("--json", &json_run), ("text", &text_run)] {
        if !run.hung && run.code != Some(expected_exit) {
            differences.push(format!(
                "exit ({label}): expected {expected_exit}, got {:?}",
                run.code
            ));
        }
    }
    let got = if json_run.hung {
        Vec::new()
    } else {
        match parse_answer(&json_run.stdout) {
            Ok(got) => got,
            Err(err) => {
                differences.push(err);
                Vec::new()
            }
        }
    };
    let expected: Vec<&Expected> = case
        .problems
        .iter()
        .filter(|problem| !(privileged && problem.unless_privileged))
        .collect();
    compare(&case, &expected, &got, &dir, &mut differences);
    if !text_run.hung {
        for problem in &got {
            let line = render(problem);
            if !text_run.stderr.contains(&line) {
                differences.push(format!(
                    "the text output lacks `{line}` (the --json output has it):\n{}",
                    indent(&text_run.stderr)
                ));
            }
        }
    }
    if differences.is_empty() {
        tally.as_expected += 1;
        if expected_exit == 0 {
            tally.accepted += 1;
        } else {
            tally.rejected += 1;
        }
        return;
    }
    let mut failure = format!("── {name}: {}\n", case.about.trim());
    for difference in differences {
        let _ = writeln!(failure, "   ✗ {}", difference.replace('\n', "\n     "));
    }
    let _ = writeln!(failure, "   expected problems:");
    for problem in &expected {
        let _ = writeln!(failure, "     {}", describe_expected(problem));
    }
    let _ = writeln!(failure, "   got problems:");
    for problem in &got {
        let _ = writeln!(failure, "     {}", render(problem).trim());
    }
    tally.failures.push(failure);
}

fn read_case(case_dir: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(case_dir.join("case.toml")).map_err(|e| e.to_string())?;
    let case: Case = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| e.to_string())?;
    for problem in &case.problems {
        if problem.line < -1 {
            return Err(format!("line {} of {}", problem.line, problem.file));
        }
    }
    if case.exit == 0 && !case.problems.is_empty() {
        return Err("a case that exits 0 cannot expect problems".into());
    }
    Ok(case)
}

/// Lays the base and the case's files out at `target`, then makes the generated content.
/// Returns whether an unreadable file turned out readable anyway (privileged process).
fn assemble(case_dir: &Path, case: &Case, target: &Path) -> Result<bool, String> {
    match case.base.as_str() {
        "missing" => return Ok(false),
        "regular_file" => {
            std::fs::write(target, "[cluster]\nname = \"corpus\"\n").map_err(|e| e.to_string())?;
            return Ok(false);
        }
        "empty" => std::fs::create_dir_all(target).map_err(|e| e.to_string())?,
        "example" => copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../desired-state"),
            target,
        ),
        base => {
            let from = corpus().join("_bases").join(base);
            if !from.is_dir() {
                return Err(format!("no base `{base}` in _bases/"));
            }
            copy_dir(&from, target);
        }
    }
    copy_dir(case_dir, target);
    std::fs::remove_file(target.join("case.toml")).map_err(|e| e.to_string())?;
    let mut privileged = false;
    for make in &case.make {
        privileged |= generate(make, target).map_err(|e| format!("{make:?}: {e}"))?;
    }
    Ok(privileged)
}

fn generate(make: &Make, target: &Path) -> Result<bool, String> {
    let path = target.join(&make.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let io = |e: std::io::Error| e.to_string();
    let number = |value: Option<usize>, what: &str| value.ok_or(format!("needs `{what}`"));
    match make.kind.as_str() {
        "fifo" => {
            let made = Command::new("mkfifo")
                .arg(&path)
                .status()
                .map_err(|e| e.to_string())?;
            if !made.success() {
                return Err("mkfifo failed".into());
            }
        }
        "directory" => std::fs::create_dir_all(&path).map_err(io)?,
        "symlink" => {
            let to = make.target.as_deref().ok_or("needs `target`")?;
            std::os::unix::fs::symlink(to, &path).map_err(io)?;
        }
        "symlink_out" => {
            let name = make.target.as_deref().ok_or("needs `target`")?;
            let outside = target.parent().unwrap().join(name);
            if make.target_is_dir {
                std::fs::create_dir_all(&outside).map_err(io)?;
                std::fs::write(outside.join("outside.json"), app_json("/outside", ""))
                    .map_err(io)?;
            } else {
                std::fs::write(&outside, app_json("/outside", "")).map_err(io)?;
            }
            std::os::unix::fs::symlink(&outside, &path).map_err(io)?;
        }
        "unreadable" => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).map_err(io)?;
            // Root (or CAP_DAC_OVERRIDE) reads it regardless: the case then says so.
            let readable = if path.is_dir() {
                std::fs::read_dir(&path).is_ok()
            } else {
                std::fs::File::open(&path).is_ok()
            };
            return Ok(readable);
        }
        "app_of_size" => {
            let bytes = make.bytes.ok_or("needs `bytes`")?;
            std::fs::write(&path, padded(app_json("/sized", ""), bytes)?).map_err(io)?;
        }
        "cluster_of_size" => {
            let bytes = make.bytes.ok_or("needs `bytes`")?;
            let text = "[cluster]\nname = \"corpus\"\n".to_owned();
            std::fs::write(&path, padded(text, bytes)?).map_err(io)?;
        }
        "nested_json" => {
            let depth = number(make.depth, "depth")?;
            let (open, close) = if make.objects {
                ("{\"a\": ", "}")
            } else {
                ("[", "]")
            };
            let text = format!(
                "{{\n  \"id\": \"/deep\",\n  \"cmd\": \"true\",\n  \"labels\": {}1{}\n}}\n",
                open.repeat(depth),
                close.repeat(depth)
            );
            std::fs::write(&path, text).map_err(io)?;
        }
        "nested_toml" => {
            let depth = number(make.depth, "depth")?;
            let text = format!(
                "[cluster]\nname = \"corpus\"\nregion = {}\"eu-west-1\"{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            );
            std::fs::write(&path, text).map_err(io)?;
        }
        "apps" => {
            std::fs::create_dir_all(&path).map_err(io)?;
            for index in 0..number(make.count, "count")? {
                let id = format!("/generated/app-{index}");
                std::fs::write(path.join(format!("app-{index:04}.json")), app_json(&id, ""))
                    .map_err(io)?;
            }
        }
        "edge_nodes" => {
            let mut text = "[cluster]\nname = \"corpus\"\nregion = \"eu-west-1\"\n\n[network]\n\
                            vpc_id = \"vpc-0a1b2c3d\"\nsubnet_id = \"subnet-0a1b2c3d\"\n"
                .to_owned();
            for index in 0..number(make.count, "count")? {
                let _ = write!(
                    text,
                    "\n[[nodes]]\nname = \"edge-{index}\"\ninstance_type = \"t2.micro\"\n\
                     ami = \"ami-1e749f67\"\nroles = [\"edge\"]\n"
                );
            }
            std::fs::write(&path, text).map_err(io)?;
        }
        "unknown_fields" => {
            let mut extra = String::new();
            for index in 0..number(make.count, "count")? {
                let _ = write!(extra, ",\n  \"zz{index}\": {index}");
            }
            std::fs::write(&path, app_json("/many", &extra)).map_err(io)?;
        }
        other => return Err(format!("unknown make kind `{other}`")),
    }
    Ok(false)
}

/// A valid app file, one member per line, with `extra` members (each starting `,\n`) at the end.
fn app_json(id: &str, extra: &str) -> String {
    format!(
        "{{\n  \"id\": \"{id}\",\n  \"cmd\": \"python3 -m http.server $PORT0\",\n  \
         \"instances\": 1,\n  \"cpus\": 0.1,\n  \"mem\": 64{extra}\n}}\n"
    )
}

/// `text` followed by blank lines up to exactly `bytes` bytes.
fn padded(mut text: String, bytes: u64) -> Result<String, String> {
    let bytes = usize::try_from(bytes).map_err(|e| e.to_string())?;
    if bytes < text.len() {
        return Err(format!("{bytes} bytes cannot hold {text:?}"));
    }
    text.push_str(&"\n".repeat(bytes - text.len()));
    Ok(text)
}

/// chmod 000 files would outlive the test in a temp folder that cannot be removed otherwise.
fn restore_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        }
        let mode = if kind.is_dir() { 0o755 } else { 0o644 };
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
        if kind.is_dir() {
            restore_permissions(&path);
        }
    }
}

/// Runs the binary, killing it at the deadline. Output is drained on threads so a large answer
/// cannot block the child.
fn validate(args: &[&str]) -> Run {
    let mut child = Command::new(BINARY)
        .args(args)
        .env_remove("CONVERGED_CONFIG")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the converged binary starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let (code, hung) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status.code(), false);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        hung,
    }
}

/// The problems of a `validate --json` answer, checking it is consistent with itself.
fn parse_answer(stdout: &str) -> Result<Vec<Value>, String> {
    let answer: Value = serde_json::from_str(stdout.trim())
        .map_err(|err| format!("the --json output is not JSON ({err}):\n{}", indent(stdout)))?;
    match (answer["valid"].as_bool(), answer["problems"].as_array()) {
        (Some(true), None) => Ok(Vec::new()),
        (Some(false), Some(problems)) if !problems.is_empty() => Ok(problems.clone()),
        _ => Err(format!(
            "the --json output is neither valid nor a non-empty problem list:\n{}",
            indent(stdout)
        )),
    }
}

fn compare(
    case: &Case,
    expected: &[&Expected],
    got: &[Value],
    dir: &str,
    differences: &mut Vec<String>,
) {
    let mut used = vec![false; got.len()];
    for want in expected {
        let found = got
            .iter()
            .enumerate()
            .position(|(index, problem)| !used[index] && matches(want, problem, dir));
        match found {
            Some(index) => used[index] = true,
            None => differences.push(format!("missing: {}", describe_expected(want))),
        }
    }
    if case.complete {
        for (problem, _) in got.iter().zip(&used).filter(|(_, used)| !**used) {
            differences.push(format!("unexpected: {}", render(problem).trim()));
        }
    }
    if let Some(most) = case.max_problems
        && got.len() > most
    {
        differences.push(format!(
            "{} problems reported, more than the {most} expected at most",
            got.len()
        ));
    }
}

fn matches(want: &Expected, problem: &Value, dir: &str) -> bool {
    let file = want.file.replace("{dir}", dir);
    if problem["file"].as_str() != Some(file.as_str()) {
        return false;
    }
    let line = problem["line"].as_i64();
    let line_ok = match want.line {
        -1 => true,
        0 => line.is_none(),
        wanted => line == Some(wanted),
    };
    let field = problem["field"].as_str();
    let field_ok = match want.field.as_str() {
        "*" => true,
        "" => field.is_none(),
        wanted => field == Some(wanted),
    };
    let message = problem["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    line_ok
        && field_ok
        && want
            .message
            .iter()
            .all(|fragment| message.contains(&fragment.to_lowercase()))
}

fn describe_expected(want: &Expected) -> String {
    let line = match want.line {
        -1 => ":<any line>".to_owned(),
        0 => String::new(),
        line => format!(":{line}"),
    };
    let field = match want.field.as_str() {
        "" => String::new(),
        "*" => ": <any field>".to_owned(),
        field => format!(": {field}"),
    };
    format!("{}{line}{field}: …{}…", want.file, want.message.join("…"))
}

/// A problem as the text output prints it (`  file:line:column: field: message`).
fn render(problem: &Value) -> String {
    let mut out = format!("  {}", problem["file"].as_str().unwrap_or_default());
    if let Some(line) = problem["line"].as_u64() {
        let _ = write!(out, ":{line}");
        if let Some(column) = problem["column"].as_u64() {
            let _ = write!(out, ":{column}");
        }
    }
    if let Some(field) = problem["field"].as_str() {
        let _ = write!(out, ": {field}");
    }
    let _ = write!(out, ": {}", problem["message"].as_str().unwrap_or_default());
    out
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
