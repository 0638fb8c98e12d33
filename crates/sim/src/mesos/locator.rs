//! Finding the leading master from a `--master` flag (`http://host:port` or `zk://.../mesos`).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;
use crate::leader::{Election, ZkGroup, parse_zk_url};

/// Where the leading master is.
#[derive(Clone, Debug)]
pub enum MasterLocator {
    /// A fixed master URL (a non-leader's answer names the leader, which is followed).
    Fixed(String),
    /// Detection through the masters' `json.info_*` znodes.
    Zk(Election),
}

/// Base URL of a master from its MasterInfo JSON (the address IP, so traffic stays on loopback).
pub fn url_of_master_info(info: &Value) -> Option<String> {
    let ip = info["address"]["ip"].as_str()?;
    let port = info["port"].as_u64()?;
    Some(format!("http://{ip}:{port}"))
}

impl MasterLocator {
    /// Builds a locator from the `--master` flag.
    pub fn new(master: &str, session_timeout: Duration) -> Result<Self, Error> {
        if master.starts_with("zk://") {
            let (servers, path) = parse_zk_url(master)?;
            Ok(Self::Zk(Election::zookeeper(
                ZkGroup {
                    servers,
                    path,
                    prefix: "json.info_".into(),
                    marker: "json.info_".into(),
                    session_timeout,
                },
                None,
            )))
        } else if master.starts_with("http://") {
            Ok(Self::Fixed(master.trim_end_matches('/').to_string()))
        } else {
            Err(Error::Url {
                url: master.to_string(),
                reason: "must be http://host:port or zk://hosts/path".into(),
            })
        }
    }

    /// The leading master's base URL, if known.
    pub fn current(&self) -> Option<String> {
        match self {
            Self::Fixed(u) => Some(u.clone()),
            Self::Zk(e) => e
                .state()
                .leader
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .and_then(|v| url_of_master_info(&v)),
        }
    }

    /// POSTs an internal message to the leading master, following one "not the leader" answer.
    /// `Ok(None)` means the master answered 404 (unknown agent or framework).
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &B,
    ) -> Result<Option<T>, Error> {
        let mut base = self.current().ok_or_else(|| Error::Url {
            url: "(no leading master)".into(),
            reason: "no leader known".into(),
        })?;
        for _ in 0..2 {
            let url = format!("{base}{path}");
            let resp = client
                .post(&url)
                .json(body)
                .send()
                .await
                .map_err(|source| Error::Http {
                    url: url.clone(),
                    source,
                })?;
            let status = resp.status().as_u16();
            match status {
                200 => {
                    return resp
                        .json()
                        .await
                        .map(Some)
                        .map_err(|source| Error::Http { url, source });
                }
                404 => return Ok(None),
                409 => {
                    let v: Value = resp.json().await.map_err(|source| Error::Http {
                        url: url.clone(),
                        source,
                    })?;
                    base = url_of_master_info(&v["leader"])
                        .ok_or(Error::PeerStatus { url, status })?;
                }
                _ => return Err(Error::PeerStatus { url, status }),
            }
        }
        Err(Error::PeerStatus {
            url: format!("{base}{path}"),
            status: 409,
        })
    }
}
