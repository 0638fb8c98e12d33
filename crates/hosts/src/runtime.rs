//! The two service runtimes as commands (pure, no I/O): what to run on a host to observe,
//! start, replace, restart and stop services, and how to read what observing printed.
//!
//! - `docker`: containers `converged-<service>` run with `--restart unless-stopped --net host`,
//!   labelled with the service name and spec hash; env values go through an env file uploaded
//!   on stdin, never on a command line.
//! - `exec`: a detached process per service, started with `setsid` from `<root>/<service>/run.sh`,
//!   with its pid, spec hash and log file in that directory.

use std::collections::BTreeMap;

use crate::render::RenderedService;
use crate::shell::Script;
use crate::ssh::RemoteCommand;

pub const SERVICE_LABEL: &str = "converged.service";
pub const HASH_LABEL: &str = "converged.spec-hash";

/// Which runtime runs the services on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Docker,
    Exec,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Exec => "exec",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "docker" => Some(Self::Docker),
            "exec" => Some(Self::Exec),
            _ => None,
        }
    }
}

/// A runtime and the directory on each host where services keep their files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub kind: RuntimeKind,
    pub root: String,
}

/// Whether an observed service is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    /// Exited, dead, created but never started.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedService {
    pub state: ServiceState,
    /// The spec hash it was started with (missing when someone else started it).
    pub hash: Option<String>,
}

/// A shell function telling a live process from a dead or zombie one, or from a new process
/// that reuses the pid: the pid file holds the pid and the process' start time.
const ALIVE: &str = "alive() { [ -n \"$1\" ] && [ -r \"/proc/$1/stat\" ] || return 1; _started=$2; set -- $(sed 's/^.*) //' \"/proc/$1/stat\"); [ \"$1\" != Z ] && [ \"${20}\" = \"$_started\" ]; }";

/// Stops the process group recorded in `pid`: TERM (and CONT, so a stopped process sees it),
/// up to 10 s, then KILL.
const STOP_PID: &str = "if [ -f pid ]; then read p st < pid || true; if alive \"$p\" \"$st\"; then kill -TERM -- \"-$p\" 2>/dev/null || kill -TERM \"$p\" 2>/dev/null || true; kill -CONT -- \"-$p\" 2>/dev/null || true; i=0; while alive \"$p\" \"$st\" && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; kill -KILL -- \"-$p\" 2>/dev/null || true; fi; rm -f pid; fi";

impl Runtime {
    pub fn new(kind: RuntimeKind, root: impl Into<String>) -> Self {
        Self {
            kind,
            root: root.into(),
        }
    }

    pub fn service_dir(&self, service: &str) -> String {
        format!("{}/{service}", self.root)
    }

    fn container(service: &str) -> String {
        format!("converged-{service}")
    }

    /// One read-only command listing every service converged manages on the host.
    pub fn observe(&self) -> RemoteCommand {
        let script = match self.kind {
            RuntimeKind::Docker => Script::new()
                .word("docker")
                .word("ps")
                .word("-a")
                .word("--filter")
                .word(format!("label={SERVICE_LABEL}"))
                .word("--format")
                .word(format!(
                    "{{{{.Label \"{SERVICE_LABEL}\"}}}}\t{{{{.State}}}}\t{{{{.Label \"{HASH_LABEL}\"}}}}"
                )),
            RuntimeKind::Exec => Script::new()
                .syntax(ALIVE)
                .end()
                .syntax("for d in")
                .word(&self.root)
                .syntax_glued("/*/; do")
                .syntax("[ -f \"${d}spec.hash\" ] || continue; n=$(basename \"$d\"); h=$(cat \"${d}spec.hash\"); p=; st=; [ -f \"${d}pid\" ] && read p st < \"${d}pid\"; s=stopped; if alive \"$p\" \"$st\"; then s=running; fi; printf '%s\\t%s\\t%s\\n' \"$n\" \"$s\" \"$h\"; done"),
        };
        RemoteCommand::read("observe services", script)
    }

    /// Reads what `observe` printed: `service \t state \t hash` lines.
    pub fn parse_observed(
        &self,
        stdout: &str,
    ) -> Result<BTreeMap<String, ObservedService>, String> {
        let mut services = BTreeMap::new();
        for line in stdout.lines().filter(|line| !line.trim().is_empty()) {
            let mut fields = line.split('\t');
            let (Some(name), Some(state)) = (fields.next(), fields.next()) else {
                return Err(format!("unexpected line {line:?}"));
            };
            let hash = fields
                .next()
                .map(str::trim)
                .filter(|hash| !hash.is_empty() && *hash != "<no value>")
                .map(str::to_owned);
            let state = match state.trim() {
                "running" | "restarting" => ServiceState::Running,
                _ => ServiceState::Stopped,
            };
            services.insert(name.trim().to_owned(), ObservedService { state, hash });
        }
        Ok(services)
    }

    /// Writes one file under the service directory from stdin (mode 600, renamed into place).
    fn upload(&self, service: &str, path: &str, content: Vec<u8>) -> RemoteCommand {
        let target = format!("{}/{path}", self.service_dir(service));
        let parent = target
            .rsplit_once('/')
            .map(|(parent, _)| parent.to_owned())
            .unwrap_or_else(|| self.service_dir(service));
        let temporary = format!("{target}.converged-new");
        let script = Script::new()
            .syntax("set -e; umask 077;")
            .word("mkdir")
            .word("-p")
            .word(parent)
            .syntax("&&")
            .word("cat")
            .syntax(">")
            .word(&temporary)
            .syntax("&&")
            .word("mv")
            .word("-f")
            .word(&temporary)
            .word(target);
        RemoteCommand::write("upload a service file", script).with_stdin(content)
    }

    /// Every command that brings `service` up from nothing (or from a stopped state).
    pub fn start(&self, service: &RenderedService) -> Vec<RemoteCommand> {
        let mut commands = self.uploads(service);
        commands.push(match self.kind {
            RuntimeKind::Docker => RemoteCommand::write(
                "start a service",
                self.docker_remove(&service.name)
                    .then(self.docker_run(service)),
            ),
            RuntimeKind::Exec => RemoteCommand::write("start a service", self.exec_start(service)),
        });
        commands
    }

    /// Every command that replaces a running `service` with its new spec: docker pulls the
    /// new image first, then stops, removes and runs.
    pub fn replace(&self, service: &RenderedService) -> Vec<RemoteCommand> {
        let mut commands = Vec::new();
        if let (RuntimeKind::Docker, Some(image)) = (self.kind, &service.image) {
            commands.push(
                RemoteCommand::write(
                    "pull an image",
                    Script::new().word("docker").word("pull").word(image),
                )
                .with_timeout(std::time::Duration::from_secs(600)),
            );
        }
        commands.extend(self.uploads(service));
        commands.push(match self.kind {
            RuntimeKind::Docker => RemoteCommand::write(
                "replace a service",
                Script::new()
                    .word("docker")
                    .word("stop")
                    .word(Self::container(&service.name))
                    .syntax(">/dev/null 2>&1 || true")
                    .end()
                    .then(self.docker_remove(&service.name))
                    .then(self.docker_run(service)),
            ),
            RuntimeKind::Exec => {
                RemoteCommand::write("replace a service", self.exec_start(service))
            }
        });
        commands
    }

    /// Restarts a service as it is (same spec, same files).
    pub fn restart(&self, service: &str) -> RemoteCommand {
        let script = match self.kind {
            RuntimeKind::Docker => Script::new()
                .word("docker")
                .word("restart")
                .word(Self::container(service)),
            RuntimeKind::Exec => Script::new()
                .syntax("set -e;")
                .syntax(ALIVE)
                .end()
                .word("cd")
                .word(self.service_dir(service))
                .end()
                .syntax(STOP_PID)
                .end()
                .then(Self::exec_launch()),
        };
        RemoteCommand::write("restart a service", script)
    }

    /// Stops a service and removes what converged put on the host for it.
    pub fn stop(&self, service: &str) -> RemoteCommand {
        let dir = self.service_dir(service);
        let script = match self.kind {
            RuntimeKind::Docker => Script::new()
                .word("docker")
                .word("stop")
                .word(Self::container(service))
                .syntax(">/dev/null 2>&1 || true")
                .end()
                .then(self.docker_remove(service))
                .word("rm")
                .word("-rf")
                .word(dir),
            RuntimeKind::Exec => Script::new()
                .syntax(ALIVE)
                .end()
                .syntax("if")
                .word("cd")
                .word(&dir)
                .syntax("2>/dev/null; then")
                .syntax(STOP_PID)
                .syntax("; fi")
                .end()
                .word("rm")
                .word("-rf")
                .word(dir),
        };
        RemoteCommand::write("stop a service", script)
    }

    fn uploads(&self, service: &RenderedService) -> Vec<RemoteCommand> {
        let mut commands: Vec<RemoteCommand> = service
            .files
            .iter()
            .map(|file| self.upload(&service.name, &file.path, file.content.clone().into_bytes()))
            .collect();
        match self.kind {
            RuntimeKind::Docker => {
                let env: String = service
                    .env
                    .iter()
                    .map(|(key, value)| format!("{key}={}\n", value.expose()))
                    .collect();
                commands.push(self.upload(&service.name, "env", env.into_bytes()));
            }
            RuntimeKind::Exec => {
                commands.push(self.upload(&service.name, "run.sh", Self::run_script(service)));
            }
        }
        commands
    }

    fn docker_remove(&self, service: &str) -> Script {
        Script::new()
            .word("docker")
            .word("rm")
            .word("-f")
            .word(Self::container(service))
            .syntax(">/dev/null 2>&1 || true")
            .end()
    }

    /// `docker run -d --name converged-<service> --restart unless-stopped --net host ...`.
    pub fn docker_run(&self, service: &RenderedService) -> Script {
        let mut script = Script::new()
            .word("docker")
            .word("run")
            .word("-d")
            .word("--name")
            .word(Self::container(&service.name))
            .word("--restart")
            .word("unless-stopped")
            .word("--net")
            .word("host")
            .word("--label")
            .word(format!("{SERVICE_LABEL}={}", service.name))
            .word("--label")
            .word(format!("{HASH_LABEL}={}", service.hash))
            .word("--env-file")
            .word(format!("{}/env", self.service_dir(&service.name)));
        for volume in &service.volumes {
            script = script.word("-v").word(volume);
        }
        script
            .word(service.image.as_deref().unwrap_or_default())
            .words(&service.args)
    }

    /// `run.sh`: exports the env and execs the command, so the pid is the service's.
    fn run_script(service: &RenderedService) -> Vec<u8> {
        let mut script = Script::new().syntax("#!/bin/sh").end();
        for (key, value) in &service.env {
            script = script
                .syntax("export")
                .word(format!("{key}={}", value.expose()))
                .end();
        }
        script
            .syntax("exec")
            .words(service.command.iter().chain(&service.args))
            .end()
            .as_str()
            .as_bytes()
            .to_vec()
    }

    fn exec_start(&self, service: &RenderedService) -> Script {
        Script::new()
            .syntax("set -e;")
            .syntax(ALIVE)
            .end()
            .word("cd")
            .word(self.service_dir(&service.name))
            .end()
            .syntax(STOP_PID)
            .end()
            .then(Self::exec_launch())
            .word("printf")
            .word("%s\\n")
            .word(&service.hash)
            .syntax("> spec.hash")
            .end()
    }

    fn exec_launch() -> Script {
        Script::new()
            .syntax("setsid sh ./run.sh >> log 2>&1 < /dev/null &")
            .end()
            .syntax("p=$!; echo \"$p $(sed 's/^.*) //' \"/proc/$p/stat\" | cut -d' ' -f20)\" > pid")
            .end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{EnvValue, ServiceFile};
    use converged_core::secret::Secret;

    fn service() -> RenderedService {
        RenderedService {
            node: "a".into(),
            name: "marathon".into(),
            image: Some("mesoscloud/marathon:1.1.1-centos-7".into()),
            command: vec!["converged-sim".into(), "marathon".into()],
            args: vec!["--master".into(), "zk://h:2181/mesos".into(), "it's".into()],
            env: BTreeMap::from([
                (
                    "MARATHON_HOSTNAME".to_owned(),
                    EnvValue::Plain("a b".into()),
                ),
                (
                    "MARATHON_SECRET".to_owned(),
                    EnvValue::Secret(Secret::new("hunter2")),
                ),
            ]),
            volumes: vec!["/var/run/docker.sock:/var/run/docker.sock".into()],
            files: vec![ServiceFile {
                path: "conf/x.cfg".into(),
                content: "k=v\n".into(),
            }],
            hash: "0123456789abcdef".into(),
        }
    }

    fn docker() -> Runtime {
        Runtime::new(RuntimeKind::Docker, "/var/lib/converged/services")
    }

    #[test]
    fn docker_run_renders_exactly() {
        assert_eq!(
            docker().docker_run(&service()).as_str(),
            "docker run -d --name converged-marathon --restart unless-stopped --net host \
             --label converged.service=marathon --label converged.spec-hash=0123456789abcdef \
             --env-file /var/lib/converged/services/marathon/env \
             -v /var/run/docker.sock:/var/run/docker.sock mesoscloud/marathon:1.1.1-centos-7 \
             --master zk://h:2181/mesos 'it'\\''s'"
        );
    }

    #[test]
    fn docker_observe_is_one_read_only_ps() {
        let command = docker().observe();
        assert!(command.read_only);
        assert_eq!(
            command.script.as_str(),
            "docker ps -a --filter label=converged.service --format \
             '{{.Label \"converged.service\"}}\t{{.State}}\t{{.Label \"converged.spec-hash\"}}'"
        );
    }

    #[test]
    fn docker_replace_pulls_first_and_keeps_secrets_off_command_lines() {
        let commands = docker().replace(&service());
        let operations: Vec<&str> = commands.iter().map(|c| c.operation).collect();
        assert_eq!(
            operations,
            [
                "pull an image",
                "upload a service file",
                "upload a service file",
                "replace a service"
            ]
        );
        assert_eq!(
            commands[0].script.as_str(),
            "docker pull mesoscloud/marathon:1.1.1-centos-7"
        );
        let last = commands[3].script.as_str();
        let stop = last.find("docker stop converged-marathon").unwrap();
        let remove = last.find("docker rm -f converged-marathon").unwrap();
        let run = last.find("docker run -d").unwrap();
        assert!(stop < remove && remove < run, "{last}");
        let env = String::from_utf8(commands[2].stdin.clone().unwrap()).unwrap();
        assert_eq!(env, "MARATHON_HOSTNAME=a b\nMARATHON_SECRET=hunter2\n");
        for command in &commands {
            assert!(!command.read_only);
            assert!(!command.script.as_str().contains("hunter2"));
            assert!(!format!("{command:?}").contains("hunter2"));
        }
    }

    #[test]
    fn docker_start_removes_a_leftover_then_runs_without_pulling() {
        let commands = docker().start(&service());
        assert!(commands.iter().all(|c| c.operation != "pull an image"));
        let last = commands.last().unwrap().script.as_str();
        assert!(
            last.starts_with(
                "docker rm -f converged-marathon >/dev/null 2>&1 || true\ndocker run -d"
            ),
            "{last}"
        );
    }

    #[test]
    fn observed_lines_parse_for_both_runtimes() {
        let output =
            "zookeeper\trunning\tabc\nmarathon\texited\tdef\nmesos-agent\tcreated\t<no value>\n\n";
        let observed = docker().parse_observed(output).unwrap();
        assert_eq!(
            observed["zookeeper"],
            ObservedService {
                state: ServiceState::Running,
                hash: Some("abc".into())
            }
        );
        assert_eq!(observed["marathon"].state, ServiceState::Stopped);
        assert_eq!(observed["mesos-agent"].hash, None);
        assert!(docker().parse_observed("garbage").is_err());
    }

    #[test]
    fn exec_scripts_run_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("services");
        let runtime = Runtime::new(RuntimeKind::Exec, root.display().to_string());
        let sh = |command: &RemoteCommand| {
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(command.script.as_str())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            let stdin = command.stdin.clone().unwrap_or_default();
            child.stdin.take().unwrap().write_all(&stdin).unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", command.script.as_str());
            String::from_utf8(output.stdout).unwrap()
        };
        assert_eq!(sh(&runtime.observe()), "", "nothing yet");
        let mut svc = service();
        svc.command = vec!["sleep".into(), "30".into()];
        svc.args.clear();
        for command in runtime.start(&svc) {
            sh(&command);
        }
        let listed = runtime.parse_observed(&sh(&runtime.observe())).unwrap();
        assert_eq!(
            listed["marathon"],
            ObservedService {
                state: ServiceState::Running,
                hash: Some("0123456789abcdef".into())
            }
        );
        let run = std::fs::read_to_string(root.join("marathon/run.sh")).unwrap();
        assert!(run.contains("export 'MARATHON_HOSTNAME=a b'"), "{run}");
        assert!(run.ends_with("exec sleep 30\n"), "{run}");
        assert_eq!(
            std::fs::read_to_string(root.join("marathon/conf/x.cfg")).unwrap(),
            "k=v\n"
        );
        sh(&runtime.stop("marathon"));
        assert_eq!(sh(&runtime.observe()), "");
        assert!(!root.join("marathon").exists());
    }
}
