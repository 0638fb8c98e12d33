//! The real `converged` binary under faults: an engine that panics ends the process with an
//! error within seconds (so systemd restarts it), and a daemon whose stdout and stderr were
//! closed keeps cycling instead of freezing behind a healthy `/healthz`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use converged_testkit::wait_for;
use support::Daemon;

#[test]
fn an_engine_that_panics_ends_the_process_with_an_error_within_5_s() {
    let started = Instant::now();
    let mut log = PathBuf::new();
    let mut daemon = Daemon::spawn("1h", |command, dir| {
        log = dir.join("converged.log");
        command
            .env("CONVERGED_TEST_PANIC_IN", "observe")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
    });
    let status = daemon.exit_within(Duration::from_secs(5));
    let logged = std::fs::read_to_string(&log).unwrap();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {:?} after its engine panicked (killed now); log:\n{logged}",
            started.elapsed()
        )
    });
    assert_eq!(status.code(), Some(1), "{logged}");
    for needed in [
        "CONVERGED_TEST_PANIC_IN=observe: security_group panicked on purpose",
        "an essential task failed",
        "task=\"engine\"",
    ] {
        assert!(logged.contains(needed), "missing `{needed}` in:\n{logged}");
    }
}

#[test]
fn a_daemon_whose_stdout_and_stderr_are_closed_keeps_cycling_and_stays_healthy() {
    let mut daemon = Daemon::spawn("1s", |command, _| {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    });
    // Like `converged run 2>&1 | head -1`: the reader takes one line and goes away.
    let mut first = String::new();
    BufReader::new(daemon.child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    drop(daemon.child.stdout.take());
    assert!(!first.is_empty(), "the daemon logged nothing");

    let before = wait_for("a first cycle", Duration::from_secs(20), || {
        daemon.last_cycle()
    });
    let after = wait_for(
        "three more cycles after the log pipe closed",
        Duration::from_secs(20),
        || daemon.last_cycle().filter(|number| *number >= before + 3),
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon exited"
    );
    assert_eq!(
        daemon.get("/healthz"),
        Some((200, "ok\n".to_owned())),
        "after cycle {after}"
    );
    let (_, metrics) = daemon.get("/metrics").unwrap();
    let dropped: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("converged_log_lines_dropped_total "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no converged_log_lines_dropped_total in:\n{metrics}"));
    assert!(
        dropped >= 3.0,
        "each cycle's lines were dropped and counted: {dropped}"
    );
    let status = daemon.terminate().expect("SIGTERM stops it");
    assert_eq!(status.code(), Some(0));
}
