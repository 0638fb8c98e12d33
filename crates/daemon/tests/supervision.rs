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

/// What the daemon tells systemd, received on a socket standing in for systemd's.
#[test]
fn systemd_hears_ready_then_watchdog_pings_then_stopping() {
    let mut socket = None;
    let mut daemon = Daemon::spawn("1h", |command, dir| {
        let path = dir.join("notify.sock");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket = Some(listener);
        command
            .env("NOTIFY_SOCKET", &path)
            // A 2 s watchdog: converged pings every second while healthy.
            .env("WATCHDOG_USEC", "2000000")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    });
    let socket = socket.unwrap();
    let receive = || {
        let mut buffer = [0; 512];
        let length = socket
            .recv(&mut buffer)
            .expect("a notification within 10 s");
        String::from_utf8_lossy(&buffer[..length]).trim().to_owned()
    };
    let mut heard = Vec::new();
    while heard.last().is_none_or(|message| message != "READY=1") {
        heard.push(receive());
    }
    assert!(
        heard[..heard.len() - 1]
            .iter()
            .all(|message| message.starts_with("EXTEND_TIMEOUT_USEC=")),
        "before READY=1 only start-up extensions: {heard:?}"
    );
    assert_eq!(daemon.last_cycle(), Some(1), "ready after the first cycle");
    let pings = Instant::now();
    assert_eq!(receive(), "WATCHDOG=1");
    assert_eq!(receive(), "WATCHDOG=1");
    assert!(
        pings.elapsed() < Duration::from_secs(3),
        "pinged every half watchdog period: {:?}",
        pings.elapsed()
    );
    let status = daemon.terminate();
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    // The datagrams sent before the exit wait in the socket.
    while receive() != "STOPPING=1" {}
}
