//! The Mesos master client (I/O): a narrow trait answering "who leads, and which agents does
//! it know", and its HTTP implementation: `/master/redirect` on any master, following to the
//! leader, then the leader's `/master/state`. Nothing is dialled outside `allowed_networks`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use converged_core::api::{ApiOutcome, ApiRecorder};
use converged_hosts::AllowedNetworks;
use reqwest::StatusCode;
use serde_json::Value;

use super::error::AgentError;

const SERVICE: &str = "mesos";
const TIMEOUT: Duration = Duration::from_secs(5);

/// One agent as the leading master reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: String,
    pub hostname: String,
    /// From its pid, `slave(1)@<ip>:<port>`.
    pub ip: Option<IpAddr>,
    pub active: bool,
    /// Attribute values as text (`{"env": "staging", "rack": "3"}`).
    pub attributes: BTreeMap<String, String>,
}

/// What the masters say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterView {
    Led {
        /// `host:port` of the leading master.
        leader: String,
        agents: Vec<Agent>,
    },
    /// No master answered with a leader; why.
    NoLeader { reason: String },
}

#[async_trait]
pub trait MesosMaster: Send + Sync {
    /// Asks the masters at `urls` (any of them) for the leader's view.
    async fn view(&self, urls: &[String]) -> Result<MasterView, AgentError>;
}

pub struct HttpMesosMaster {
    client: reqwest::Client,
    allowed: AllowedNetworks,
    recorder: Arc<dyn ApiRecorder>,
}

impl HttpMesosMaster {
    pub fn new(
        allowed: AllowedNetworks,
        recorder: Arc<dyn ApiRecorder>,
    ) -> Result<Self, AgentError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| AgentError::Request {
                operation: "build the HTTP client",
                url: String::new(),
                message: err.to_string(),
            })?;
        Ok(Self {
            client,
            allowed,
            recorder,
        })
    }

    /// Refuses a URL whose host is not an address inside `allowed_networks`.
    async fn check(&self, url: &str) -> Result<(), AgentError> {
        let refuse = |reason: String| AgentError::AddressNotAllowed {
            url: url.to_owned(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|err| refuse(err.to_string()))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addresses: Vec<SocketAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|err| refuse(format!("cannot resolve {host}: {err}")))?
                .collect(),
        };
        for address in addresses {
            self.allowed
                .check(&host, address)
                .map_err(|err| refuse(err.to_string()))?;
        }
        Ok(())
    }

    async fn get(
        &self,
        operation: &'static str,
        url: &str,
    ) -> Result<(StatusCode, Option<String>, String), AgentError> {
        self.check(url).await?;
        let started = Instant::now();
        let result = self.client.get(url).send().await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(response) => {
                let status = response.status();
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let body = response.text().await.unwrap_or_default();
                let outcome = if status.is_success() || status.is_redirection() {
                    ApiOutcome::Success
                } else {
                    ApiOutcome::Error
                };
                self.recorder.record(SERVICE, operation, outcome, seconds);
                Ok((status, location, body))
            }
            Err(err) => {
                self.recorder
                    .record(SERVICE, operation, ApiOutcome::Unreachable, seconds);
                Err(AgentError::Request {
                    operation,
                    url: url.to_owned(),
                    message: err.to_string(),
                })
            }
        }
    }

    /// The leader's base URL according to the master at `base`, if it knows one.
    async fn leader(&self, base: &str) -> Result<Option<String>, AgentError> {
        let (status, location, body) = self
            .get("redirect", &format!("{base}/master/redirect"))
            .await?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Ok(None);
        }
        let location = location.ok_or_else(|| AgentError::Decode {
            operation: "redirect",
            message: format!("status {status} without a Location: {}", body.trim()),
        })?;
        // Protocol-relative: `//host:port`.
        let leader = location
            .trim_start_matches("http:")
            .trim_start_matches("//");
        let leader = leader.split('/').next().unwrap_or_default();
        Ok(Some(format!("http://{leader}")))
    }
}

/// Parses `/master/state` into the leader's view (a state without `leader` means none).
pub fn parse_state(body: &str) -> Result<MasterView, AgentError> {
    let decode = |message: String| AgentError::Decode {
        operation: "state",
        message,
    };
    let state: Value = serde_json::from_str(body).map_err(|err| decode(err.to_string()))?;
    let Some(leader) = state.get("leader").and_then(Value::as_str) else {
        return Ok(MasterView::NoLeader {
            reason: "the master knows no leader".into(),
        });
    };
    let leader = leader.rsplit('@').next().unwrap_or(leader).to_owned();
    let agents = state
        .get("slaves")
        .and_then(Value::as_array)
        .map(|slaves| {
            slaves
                .iter()
                .map(|slave| {
                    let text = |key: &str| {
                        slave
                            .get(key)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let pid = text("pid");
                    let ip = pid
                        .rsplit('@')
                        .next()
                        .and_then(|address| address.parse::<SocketAddr>().ok())
                        .map(|address| address.ip());
                    let attributes = slave
                        .get("attributes")
                        .and_then(Value::as_object)
                        .map(|attributes| {
                            attributes
                                .iter()
                                .map(|(key, value)| {
                                    let value = match value {
                                        Value::String(text) => text.clone(),
                                        other => other.to_string(),
                                    };
                                    (key.clone(), value)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Agent {
                        id: text("id"),
                        hostname: text("hostname"),
                        ip,
                        active: slave.get("active").and_then(Value::as_bool) == Some(true),
                        attributes,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(MasterView::Led { leader, agents })
}

#[async_trait]
impl MesosMaster for HttpMesosMaster {
    async fn view(&self, urls: &[String]) -> Result<MasterView, AgentError> {
        let mut last_error = None;
        let mut no_leader = 0;
        for base in urls {
            let base = base.trim_end_matches('/');
            let leader = match self.leader(base).await {
                Ok(Some(leader)) => leader,
                Ok(None) => {
                    no_leader += 1;
                    continue;
                }
                Err(err @ AgentError::AddressNotAllowed { .. }) => return Err(err),
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            let (status, _, body) = match self.get("state", &format!("{leader}/master/state")).await
            {
                Ok(answer) => answer,
                Err(err @ AgentError::AddressNotAllowed { .. }) => return Err(err),
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            if status.is_redirection() || status == StatusCode::SERVICE_UNAVAILABLE {
                // Leadership moved between the two requests: ask the next master.
                no_leader += 1;
                continue;
            }
            return parse_state(&body);
        }
        match last_error {
            Some(err) if no_leader == 0 => Err(err),
            _ => Ok(MasterView::NoLeader {
                reason: format!("{no_leader} of {} masters know no leader", urls.len()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_parses_agents_and_the_leader() {
        let body = r#"{"leader":"master@127.0.23.2:5050","slaves":[
            {"id":"M-S0","hostname":"staging","pid":"slave(1)@127.0.23.2:5051","active":true,"attributes":{"env":"staging","rack":3}},
            {"id":"M-S1","hostname":"services","pid":"slave(1)@127.0.23.1:5051","active":false,"attributes":{}}]}"#;
        let MasterView::Led { leader, agents } = parse_state(body).unwrap() else {
            panic!("no leader")
        };
        assert_eq!(leader, "127.0.23.2:5050");
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0].ip, Some("127.0.23.2".parse().unwrap()));
        assert_eq!(agents[0].attributes["rack"], "3");
        assert!(agents[0].active && !agents[1].active);
        assert!(matches!(
            parse_state(r#"{"slaves":[]}"#).unwrap(),
            MasterView::NoLeader { .. }
        ));
        assert!(parse_state("<html>").is_err());
    }
}
