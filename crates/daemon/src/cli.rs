//! The command line: `run`, `plan`, `validate`, `status`. Exit codes follow
//! `terraform plan -detailed-exitcode` where it applies: 0 nothing to do, 2 changes, 1 error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use converged_core::load_desired_state;

use crate::config::DaemonConfig;
use crate::planner::{PlanFailure, Planner};
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
    /// Show what would change, without changing anything. Exit 0: nothing to do; 2: changes
    /// pending; 1: error.
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a desired-state folder. Exit 0: valid; 1: every problem is listed.
    Validate {
        /// The desired-state folder.
        path: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
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
        Command::Validate { path, json } => validate(&path, json),
        Command::Run => run(cli.config).await,
        Command::Plan { json } => plan(cli.config, json).await,
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

fn validate(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    match load_desired_state(path) {
        Ok(state) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "revision": state.revision })
                );
            } else {
                println!(
                    "{}: valid (revision {}, {} node(s), {} app(s))",
                    path.display(),
                    state.revision,
                    state.nodes.len(),
                    state.apps.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": false, "problems": err.problems })
                );
            } else {
                eprintln!("{}: {} problem(s)", path.display(), err.problems.len());
                for problem in &err.problems {
                    eprintln!("  {problem}");
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

async fn run(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig::load(config_path.as_deref())?;
    telemetry::init(&config.log);
    daemon::run(config).await?;
    Ok(ExitCode::SUCCESS)
}

async fn plan(config_path: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig::load(config_path.as_deref())?;
    let metrics = crate::metrics::Metrics::new()?;
    let planner = Planner::new(
        kinds::registry(&config, Arc::new(metrics))?,
        config.desired_state.clone(),
    );
    let report = match planner.plan().await {
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
    Ok(match (report.has_errors(), report.pending_changes) {
        (true, _) => ExitCode::from(1),
        (false, 0) => ExitCode::SUCCESS,
        (false, _) => ExitCode::from(2),
    })
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
