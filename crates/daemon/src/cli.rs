//! The command line: `run`, `plan`, `validate`, `status`. Exit codes follow
//! `terraform plan -detailed-exitcode` where it applies: 0 nothing to do, 2 changes, 1 error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use converged_core::load_desired_state;
use converged_core::secret::check_secrets;

use crate::config::DaemonConfig;
use crate::planner::{PlanFailure, PlanReport, Planner};
use crate::{daemon, kinds, telemetry};

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("CONVERGED_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "converged", version = VERSION, about = "Keeps a Mesos + Marathon cluster on AWS the way its desired-state folder says.")]
pub struct Cli {
    /// The daemon configuration file [default: /etc/converged/converged.toml, if it exists].
    #[arg(long, global = true, env = "CONVERGED_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: converge continuously and serve /status and /metrics.
    Run,
    /// Show what the daemon would do, without changing anything: the running daemon's own
    /// plan when one answers, else one made here. Exit 0: nothing to do and nothing drifted;
    /// 2: the daemon would act, or something drifted, waits or converges; 1: the desired state
    /// is invalid, a kind cannot be observed or a resource would fail.
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Plan in this process even if a daemon answers (its holds, backoff, pause and
        /// environment secrets are then not known).
        #[arg(long, conflicts_with = "remote")]
        local: bool,
        /// Only ask the running daemon; fail if none answers.
        #[arg(long)]
        remote: bool,
        /// The daemon's base URL [default: http://<http.listen>].
        #[arg(long)]
        url: Option<String>,
    },
    /// Check a desired-state folder. Exit 0: valid; 1: every problem is listed.
    Validate {
        /// The desired-state folder.
        path: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Also resolve every secret reference (`env:NAME`, `file:/path`) here, as the daemon
        /// would: run it where and as whom the daemon runs. One that cannot be resolved is a
        /// problem; no value is ever printed.
        #[arg(long)]
        secrets: bool,
    },
    /// Ask the running daemon for the condition of every resource.
    Status {
        /// The daemon's base URL [default: http://<http.listen>].
        #[arg(long)]
        url: Option<String>,
        /// Print the raw /status JSON.
        #[arg(long)]
        json: bool,
        /// Only this kind, e.g. marathon_app.
        #[arg(long)]
        kind: Option<String>,
    },
}

pub async fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Validate {
            path,
            json,
            secrets,
        } => validate(&path, json, secrets),
        Command::Run => run(cli.config).await,
        Command::Plan {
            json,
            local,
            remote,
            url,
        } => {
            let target = match (local, remote) {
                (true, _) => PlanTarget::Local,
                (false, true) => PlanTarget::Daemon,
                (false, false) => PlanTarget::DaemonIfRunning,
            };
            plan(cli.config, json, target, url).await
        }
        Command::Status { url, json, kind } => status(cli.config, url, json, kind).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn validate(path: &std::path::Path, json: bool, secrets: bool) -> anyhow::Result<ExitCode> {
    let (problems, summary) = match load_desired_state(path) {
        Ok(state) => {
            let check = secrets.then(|| check_secrets(path, &state));
            let resolved = check.as_ref().map(|check| check.resolved);
            let problems = check.map(|check| check.problems).unwrap_or_default();
            let mut summary =
                serde_json::json!({ "valid": problems.is_empty(), "revision": state.revision });
            if let Some(resolved) = resolved {
                summary["secrets_resolved"] = resolved.into();
            }
            if problems.is_empty() {
                if json {
                    println!("{summary}");
                } else {
                    let secrets = resolved
                        .map(|n| format!(", {n} secret reference(s) resolved here"))
                        .unwrap_or_default();
                    println!(
                        "{}: valid (revision {}, {} node(s), {} app(s){secrets})",
                        path.display(),
                        state.revision,
                        state.nodes.len(),
                        state.apps.len()
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            (problems, summary)
        }
        Err(err) => (err.problems, serde_json::json!({ "valid": false })),
    };
    if json {
        let mut summary = summary;
        summary["problems"] = serde_json::to_value(&problems)?;
        println!("{summary}");
    } else {
        eprintln!("{}: {} problem(s)", path.display(), problems.len());
        for problem in &problems {
            eprintln!("  {problem}");
        }
    }
    Ok(ExitCode::from(1))
}

async fn run(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig::load(config_path.as_deref())?;
    telemetry::init(&config.log)?;
    daemon::run(config).await?;
    Ok(ExitCode::SUCCESS)
}

/// Where `converged plan` gets its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlanTarget {
    Local,
    Daemon,
    DaemonIfRunning,
}

/// How long `plan` waits for a daemon to answer before it plans locally.
const DAEMON_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn plan(
    config_path: Option<PathBuf>,
    json: bool,
    target: PlanTarget,
    url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig::load(config_path.as_deref())?;
    let base = url.unwrap_or_else(|| format!("http://{}", config.http.listen));
    let asked = match target {
        PlanTarget::Local => None,
        PlanTarget::Daemon | PlanTarget::DaemonIfRunning => match plan_of_daemon(&base).await {
            Ok(answer) => Some(answer),
            Err(DaemonPlanError::Unreachable(err)) if target == PlanTarget::DaemonIfRunning => {
                eprintln!("no daemon answered at {base} ({err}); planning locally");
                None
            }
            Err(DaemonPlanError::Unreachable(err)) => {
                anyhow::bail!("no daemon answered at {base}: {err}")
            }
            Err(DaemonPlanError::Answer(err)) => return Err(err),
        },
    };
    let result = match asked {
        Some(answer) => answer,
        None => {
            let metrics = crate::metrics::Metrics::new()?;
            let planner = Planner::new(
                kinds::registry(&config, Arc::new(metrics), kinds::Access::ReadOnly)?,
                config.desired_state.clone(),
            );
            planner.plan().await
        }
    };
    let report = match result {
        Ok(report) => report,
        Err(PlanFailure::Invalid(problems)) => {
            eprintln!(
                "{}: {} problem(s)",
                config.desired_state.display(),
                problems.len()
            );
            for problem in &problems {
                eprintln!("  {problem}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(ExitCode::from(report.exit_code()))
}

enum DaemonPlanError {
    /// Nothing answered: no daemon runs there.
    Unreachable(reqwest::Error),
    /// A daemon answered, but not with a plan.
    Answer(anyhow::Error),
}

/// The running daemon's plan (`GET /v1/plan`), or its list of problems with the desired state.
async fn plan_of_daemon(base: &str) -> Result<Result<PlanReport, PlanFailure>, DaemonPlanError> {
    let response = reqwest::Client::builder()
        .connect_timeout(DAEMON_CONNECT_TIMEOUT)
        .build()
        .map_err(|err| DaemonPlanError::Answer(err.into()))?
        .get(format!("{}/v1/plan", base.trim_end_matches('/')))
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await
        .map_err(|err| {
            if err.is_connect() {
                DaemonPlanError::Unreachable(err)
            } else {
                DaemonPlanError::Answer(
                    anyhow::Error::new(err).context(format!("the daemon at {base} did not answer")),
                )
            }
        })?;
    let code = response.status();
    let body = response
        .text()
        .await
        .map_err(|err| DaemonPlanError::Answer(err.into()))?;
    let answer = |context: &str| {
        let context = context.to_owned();
        move |err: serde_json::Error| {
            DaemonPlanError::Answer(anyhow::Error::new(err).context(context))
        }
    };
    if code == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
        #[derive(serde::Deserialize)]
        struct Invalid {
            problems: Vec<converged_core::Problem>,
        }
        let invalid: Invalid =
            serde_json::from_str(&body).map_err(answer("the daemon's problem list"))?;
        return Ok(Err(PlanFailure::Invalid(invalid.problems)));
    }
    if !code.is_success() {
        return Err(DaemonPlanError::Answer(anyhow::anyhow!(
            "the daemon at {base} answered {code}: {body}"
        )));
    }
    serde_json::from_str(&body)
        .map(Ok)
        .map_err(answer("the daemon's plan"))
}

async fn status(
    config_path: Option<PathBuf>,
    url: Option<String>,
    json: bool,
    kind: Option<String>,
) -> anyhow::Result<ExitCode> {
    let base = match url {
        Some(url) => url,
        None => format!(
            "http://{}",
            DaemonConfig::load(config_path.as_deref())?.http.listen
        ),
    };
    let mut request = reqwest::Client::new().get(format!("{}/status", base.trim_end_matches('/')));
    if let Some(kind) = &kind {
        request = request.query(&[("kind", kind)]);
    }
    let response = request
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("failed to reach the daemon at {base}"))?;
    let code = response.status();
    let body = response
        .text()
        .await
        .context("failed to read the daemon's answer")?;
    anyhow::ensure!(code.is_success(), "the daemon answered {code}: {body}");
    if json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let document: serde_json::Value =
        serde_json::from_str(&body).context("the daemon's /status is not JSON")?;
    print!("{}", render_status(&document));
    Ok(ExitCode::SUCCESS)
}

/// The compact table `converged status` prints, from the `/status` JSON.
pub fn render_status(document: &serde_json::Value) -> String {
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("").to_owned();
    let desired = &document["desired_state"];
    let valid = desired["valid"].as_bool().unwrap_or(false);
    let mut out = format!(
        "desired state {}: {} (revision in force {})\n",
        text(&desired["path"]),
        if valid { "valid" } else { "INVALID" },
        desired["revision_in_force"].as_str().unwrap_or("none")
    );
    for problem in desired["errors"].as_array().into_iter().flatten() {
        let location = match (problem["line"].as_u64(), problem["column"].as_u64()) {
            (Some(line), Some(column)) => format!(":{line}:{column}"),
            _ => String::new(),
        };
        let field = problem["field"]
            .as_str()
            .map(|f| format!(" {f}:"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}{location}:{field} {}\n",
            text(&problem["file"]),
            text(&problem["message"])
        ));
    }
    if document["paused"].as_bool() == Some(true) {
        out.push_str("acting is PAUSED\n");
    }
    let cycle = &document["last_cycle"];
    if cycle.is_object() {
        out.push_str(&format!(
            "last cycle #{} ({}) finished {} in {:.3}s\n",
            cycle["number"],
            text(&cycle["trigger"]),
            text(&cycle["finished_at"]),
            cycle["duration_seconds"].as_f64().unwrap_or(0.0)
        ));
    }
    for kind in document["kinds"].as_array().into_iter().flatten() {
        if let Some(message) = kind["observe_error"]["message"].as_str() {
            out.push_str(&format!(
                "{}: cannot observe: {message}\n",
                text(&kind["kind"])
            ));
        }
    }
    let header = ["KIND", "NAME", "CONDITION", "REASON", "NEXT RETRY"].map(str::to_owned);
    let rows: Vec<[String; 5]> = document["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            [
                text(&r["kind"]),
                text(&r["name"]),
                text(&r["condition"]),
                text(&r["reason"]),
                r["next_retry"].as_str().unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    let mut widths = [0; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            line.push_str(&format!("{cell:<width$}  ", width = widths[index]));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no resources)\n");
    }
    out
}
