//! Command line of `converged-sim` and the start-up of each process kind.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::marathon::MarathonConfig;
use crate::marathon::app::Profile;
use crate::marathon::state::{RolePolicy, Timing};
use crate::mesos::agent::AgentConfig;
use crate::mesos::master::{MasterConfig, MesosProfile};
use crate::resources::{Resources, parse_attributes};
use crate::{Error, marathon, mesos, server};

/// Simulated Mesos master, Mesos agent and Marathon.
#[derive(Debug, Parser)]
#[command(name = "converged-sim", version)]
pub struct Cli {
    /// Which process to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The three process kinds.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A Mesos master.
    MesosMaster {
        /// Address to listen on (loopback only).
        #[arg(long)]
        listen: SocketAddr,
        /// `zk://h1:2181,h2:2181/mesos` for leader election through ZooKeeper.
        #[arg(long)]
        zk: Option<String>,
        /// Replicated-log quorum size (reported in flags).
        #[arg(long)]
        quorum: Option<u32>,
        /// Hostname to advertise (default: the listen IP).
        #[arg(long)]
        hostname: Option<String>,
        /// Mesos release to imitate.
        #[arg(long, value_enum, default_value = "1.11")]
        profile: MesosProfile,
        /// Time without a heartbeat after which an agent is deactivated.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        agent_ping_timeout: Duration,
        /// Missed ping timeouts after which an agent is removed.
        #[arg(long, default_value_t = 5)]
        max_agent_ping_timeouts: u32,
        /// ZooKeeper session timeout.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        zk_session_timeout: Duration,
        /// Serve the `/__sim/` fault-injection API.
        #[arg(long)]
        admin: bool,
    },
    /// A Mesos agent.
    MesosAgent {
        /// Address to listen on (loopback only).
        #[arg(long)]
        listen: SocketAddr,
        /// `http://host:port` of a master or `zk://.../mesos`.
        #[arg(long)]
        master: String,
        /// Hostname the agent announces.
        #[arg(long)]
        hostname: String,
        /// Resources, e.g. `cpus:1;mem:497;disk:20000;ports:[31000-32000]`.
        #[arg(long, default_value = "cpus:1;mem:497;disk:20000;ports:[31000-32000]")]
        resources: String,
        /// Attributes, e.g. `env:staging`.
        #[arg(long, default_value = "")]
        attributes: String,
        /// Interval between heartbeats to the master.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        heartbeat_interval: Duration,
        /// Mesos release to imitate.
        #[arg(long, value_enum, default_value = "1.11")]
        profile: MesosProfile,
        /// ZooKeeper session timeout.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        zk_session_timeout: Duration,
    },
    /// Marathon.
    Marathon {
        /// Address to listen on (loopback only).
        #[arg(long)]
        listen: SocketAddr,
        /// `http://host:port` of a master or `zk://.../mesos`.
        #[arg(long)]
        master: String,
        /// `zk://.../marathon` for HA leader election.
        #[arg(long)]
        zk: Option<String>,
        /// `user:password` for HTTP basic auth on every path.
        #[arg(long, env = "MARATHON_HTTP_CREDENTIALS")]
        http_credentials: Option<String>,
        /// Hostname to advertise (default: the listen IP).
        #[arg(long)]
        hostname: Option<String>,
        /// Marathon release to imitate.
        #[arg(long, value_enum, default_value = "1.10")]
        profile: Profile,
        /// Time a launched task spends in TASK_STAGING.
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        staging_delay: Duration,
        /// Multiplier for app-defined durations (health check interval/grace, backoff).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Scheduler tick.
        #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
        tick: Duration,
        /// ZooKeeper session timeout.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        zk_session_timeout: Duration,
        /// Serve the `/__sim/` fault-injection API.
        #[arg(long)]
        admin: bool,
        /// The framework's role: Marathon is offered unreserved resources and those reserved
        /// for this role.
        #[arg(long)]
        mesos_role: Option<String>,
        /// Roles apps without `acceptedResourceRoles` take resources from, comma separated
        /// (default: every role Marathon is offered).
        #[arg(long, value_delimiter = ',')]
        default_accepted_resource_roles: Option<Vec<String>>,
    },
}

fn loopback(addr: SocketAddr) -> Result<SocketAddr, Error> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(Error::Url {
            url: addr.to_string(),
            reason: "the simulator only listens on loopback addresses".into(),
        })
    }
}

async fn bind_and_announce(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let listener = server::bind(loopback(addr)?).await?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    // The harness reads this line to learn the port and that the process is ready.
    let mut out = std::io::stdout().lock();
    let announced =
        writeln!(out, "converged-sim listening on http://{bound}").and_then(|()| out.flush());
    if let Err(e) = announced {
        tracing::warn!(error = %e, "failed to announce the listen address");
    }
    Ok((listener, bound))
}

/// Runs the chosen process until it ends.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::MesosMaster {
            listen,
            zk,
            quorum,
            hostname,
            profile,
            agent_ping_timeout,
            max_agent_ping_timeouts,
            zk_session_timeout,
            admin,
        } => {
            let (listener, addr) = bind_and_announce(listen).await?;
            let cfg = MasterConfig {
                addr,
                hostname: hostname.unwrap_or_else(|| addr.ip().to_string()),
                zk,
                quorum,
                profile,
                agent_ping_timeout,
                max_agent_ping_timeouts,
                zk_session_timeout,
                admin,
            };
            tracing::info!(%addr, zk = ?cfg.zk, "Starting Mesos master");
            mesos::master::run(cfg, listener).await
        }
        Command::MesosAgent {
            listen,
            master,
            hostname,
            resources,
            attributes,
            heartbeat_interval,
            profile,
            zk_session_timeout,
        } => {
            let resources = Resources::parse(&resources)?;
            let attributes = parse_attributes(&attributes)?;
            let (listener, addr) = bind_and_announce(listen).await?;
            let cfg = AgentConfig {
                addr,
                master,
                hostname,
                resources,
                attributes,
                heartbeat_interval,
                profile,
                zk_session_timeout,
            };
            tracing::info!(%addr, hostname = %cfg.hostname, "Starting Mesos agent");
            mesos::agent::run(cfg, listener).await
        }
        Command::Marathon {
            listen,
            master,
            zk,
            http_credentials,
            hostname,
            profile,
            staging_delay,
            time_scale,
            tick,
            zk_session_timeout,
            admin,
            mesos_role,
            default_accepted_resource_roles,
        } => {
            // A malformed credentials string silently disables auth upstream (logged)
            // [`MAR@HEAD:M/api/HttpModule.scala#createSecurityHandler`].
            let http_credentials = http_credentials.and_then(|c| match c.split_once(':') {
                Some((u, p)) => Some((u.to_string(), p.to_string())),
                None => {
                    tracing::error!(
                        "http credentials are not user:password; authentication disabled"
                    );
                    None
                }
            });
            let (listener, addr) = bind_and_announce(listen).await?;
            let cfg = MarathonConfig {
                addr,
                hostname: hostname.unwrap_or_else(|| addr.ip().to_string()),
                master,
                zk,
                http_credentials,
                profile,
                timing: Timing {
                    staging_delay,
                    time_scale,
                },
                roles: RolePolicy {
                    mesos_role,
                    default_accepted: default_accepted_resource_roles,
                },
                tick,
                zk_session_timeout,
                admin,
            };
            tracing::info!(%addr, profile = ?cfg.profile, "Starting Marathon");
            marathon::run(cfg, listener).await
        }
    }
}
