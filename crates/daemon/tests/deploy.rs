//! The systemd unit in `deploy/`: systemd accepts it, its hardening rates 2.0 or better in
//! `systemd-analyze security`, and systemd watches the daemon's progress through sd_notify.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn unit() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/converged.service"),
    )
    .unwrap()
}

fn unit_with_this_binary(dir: &Path) -> std::path::PathBuf {
    let unit = unit();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/converged run"),
        "{unit}"
    );
    let path = dir.join("converged.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/converged", env!("CARGO_BIN_EXE_converged")),
    )
    .unwrap();
    path
}

fn systemd_analyze(args: &[&str]) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is missing: install Debian's systemd package");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_this_binary(dir.path());
    let (ok, text) = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        !text.contains("converged.service:"),
        "systemd found problems in the unit:\n{text}"
    );
}

#[test]
fn the_unit_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_this_binary(dir.path());
    let (_, text) = systemd_analyze(&["security", "--offline=true", unit.to_str().unwrap()]);
    let score: f64 = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for converged.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score} is above 2.0:\n{text}");
}

#[test]
fn systemd_restarts_a_daemon_that_stops_making_progress() {
    let unit = unit();
    let settings: Vec<&str> = unit.lines().map(str::trim).collect();
    for needed in ["Type=notify", "NotifyAccess=main", "Restart=on-failure"] {
        assert!(settings.contains(&needed), "missing {needed} in:\n{unit}");
    }
    let watchdog = settings
        .iter()
        .find_map(|line| line.strip_prefix("WatchdogSec="))
        .unwrap_or_else(|| panic!("no WatchdogSec= in:\n{unit}"));
    let watchdog = humantime::parse_duration(watchdog).unwrap();
    // converged pings every half period; a stall /healthz reports after 3x the default resync
    // should not wait longer than that again to be killed.
    let idle = converged::status::ProbeLimits::default().idle;
    assert!(
        Duration::from_secs(10) <= watchdog && watchdog <= idle,
        "WatchdogSec={watchdog:?} should lie between 10 s and {idle:?}"
    );
}
