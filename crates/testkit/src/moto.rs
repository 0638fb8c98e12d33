//! A moto server (EC2 and Route 53) on an ephemeral loopback port. It runs from the workspace
//! venv (`<workspace>/.venv/bin/python`, or `CONVERGED_TEST_PYTHON`) and exits when its stdin
//! closes, so a crashed test or sandbox never leaves it behind.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const LAUNCHER: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(port, flush=True)
sys.stdin.read()
server.stop()
"#;

pub struct Moto {
    child: Child,
    pub url: String,
}

/// The venv's python, which has moto (and boto3, which moto depends on).
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("CONVERGED_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if !python.exists() {
        panic!(
            "moto is needed for these tests and {} does not exist: create the venv with \
             `python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt` \
             (scripts/test.sh does it), or set CONVERGED_TEST_PYTHON",
            python.display()
        );
    }
    python
}

impl Moto {
    pub fn start() -> Moto {
        let python = python();
        let mut child = Command::new(&python)
            .args(["-c", LAUNCHER])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("failed to start moto with {}: {err}", python.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("moto printed its port");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "moto did not start (is moto[server,ec2,route53] installed in the venv?): {line:?}"
            )
        });
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
