//! Leader election and leader detection: fixed (no ZooKeeper) or through real ZooKeeper znodes.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use zookeeper_client as zk;

use crate::Error;

/// What one process knows about leadership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderState {
    /// Whether this process is the leader.
    pub elected: bool,
    /// The leader's znode data (or our own data when fixed), if a leader is known.
    pub leader: Option<String>,
}

/// A running election (or detection) whose state can be watched.
#[derive(Clone, Debug)]
pub struct Election {
    rx: watch::Receiver<LeaderState>,
    abdicate: mpsc::Sender<Duration>,
}

/// Where and how candidates register in ZooKeeper.
#[derive(Clone, Debug)]
pub struct ZkGroup {
    /// Connect string `h1:2181,h2:2181`.
    pub servers: String,
    /// Group znode, e.g. `/mesos`.
    pub path: String,
    /// Sequential znode name prefix of our candidate, e.g. `json.info_`.
    pub prefix: String,
    /// Substring that marks a candidate znode of this group (e.g. `json.info_`, `-latch-`).
    pub marker: String,
    /// Session timeout.
    pub session_timeout: Duration,
}

/// Splits `zk://h1:2181,h2:2181/mesos` into the connect string and the path.
pub fn parse_zk_url(url: &str) -> Result<(String, String), Error> {
    let err = |reason: &str| Error::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("zk://")
        .ok_or_else(|| err("must start with zk://"))?;
    let (servers, path) = rest
        .split_once('/')
        .ok_or_else(|| err("must have a path"))?;
    if servers.is_empty() || path.is_empty() {
        return Err(err("needs servers and a path"));
    }
    Ok((
        servers.to_string(),
        format!("/{}", path.trim_end_matches('/')),
    ))
}

impl Election {
    /// A process that always leads (no ZooKeeper), publishing `data` as the leader.
    pub fn fixed(data: String) -> Self {
        let (tx, rx) = watch::channel(LeaderState {
            elected: true,
            leader: Some(data.clone()),
        });
        let (abdicate, mut arx) = mpsc::channel::<Duration>(4);
        tokio::spawn(async move {
            while let Some(pause) = arx.recv().await {
                tx.send_replace(LeaderState::default());
                tracing::info!(pause_ms = pause.as_millis() as u64, "Dropped leadership");
                tokio::time::sleep(pause).await;
                tx.send_replace(LeaderState {
                    elected: true,
                    leader: Some(data.clone()),
                });
                tracing::info!("Elected as leader again");
            }
        });
        Self { rx, abdicate }
    }

    /// Joins `group` as a candidate with `data`, or only watches it when `data` is `None`.
    pub fn zookeeper(group: ZkGroup, data: Option<String>) -> Self {
        let (tx, rx) = watch::channel(LeaderState::default());
        let (abdicate, arx) = mpsc::channel::<Duration>(4);
        tokio::spawn(run_zk(group, data, tx, arx));
        Self { rx, abdicate }
    }

    /// The current state.
    pub fn state(&self) -> LeaderState {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.rx.clone()
    }

    /// Gives up leadership (or candidacy) for `pause`, then competes again.
    pub async fn abdicate(&self, pause: Duration) {
        if self.abdicate.send(pause).await.is_err() {
            tracing::warn!("election task is gone");
        }
    }
}

fn sequence_of(name: &str) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    digits.parse().ok()
}

async fn run_zk(
    group: ZkGroup,
    data: Option<String>,
    tx: watch::Sender<LeaderState>,
    mut abdicate: mpsc::Receiver<Duration>,
) {
    loop {
        tx.send_replace(LeaderState::default());
        match zk_session(&group, data.as_deref(), &tx, &mut abdicate).await {
            Ok(Some(pause)) => {
                tx.send_replace(LeaderState::default());
                tokio::time::sleep(pause).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %group.path, "ZooKeeper session ended");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Wraps a ZooKeeper error with what was attempted where.
pub(crate) fn zk_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(zk::Error) -> Error + 'a {
    move |source| Error::Zk {
        op,
        path: path.to_string(),
        source,
    }
}

/// A new ZooKeeper session, with the persistent znode `dir` (and its parents) created.
pub(crate) async fn connect(
    servers: &str,
    session_timeout: Duration,
    dir: &str,
    create_op: &'static str,
) -> Result<zk::Client, Error> {
    let client = zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(Duration::from_millis(1000))
        .connect(servers)
        .await
        .map_err(zk_err("connect", servers))?;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.mkdir(dir, &persistent).await {
        Ok(()) | Err(zk::Error::NodeExists) => Ok(client),
        Err(e) => Err(zk_err(create_op, dir)(e)),
    }
}

/// One ZooKeeper session: returns `Ok(Some(pause))` after an abdication, `Ok(None)` when the session
/// is lost.
async fn zk_session(
    group: &ZkGroup,
    data: Option<&str>,
    tx: &watch::Sender<LeaderState>,
    abdicate: &mut mpsc::Receiver<Duration>,
) -> Result<Option<Duration>, Error> {
    let client = connect(
        &group.servers,
        group.session_timeout,
        &group.path,
        "create group",
    )
    .await?;
    let mine = match data {
        Some(d) => {
            let prefix = format!("{}/{}", group.path, group.prefix);
            let opts = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
            let (_, seq) = client
                .create(&prefix, d.as_bytes(), &opts)
                .await
                .map_err(zk_err("create candidate", &prefix))?;
            let name = format!("{}{seq}", group.prefix);
            tracing::info!(znode = %name, path = %group.path, "Joined election group");
            Some(name)
        }
        None => None,
    };
    let mut states = client.state_watcher();
    loop {
        let (children, watcher) = client
            .list_and_watch_children(&group.path)
            .await
            .map_err(zk_err("list group", &group.path))?;
        let lowest = children
            .iter()
            .filter(|c| c.contains(&group.marker))
            .filter_map(|c| sequence_of(c).map(|s| (s, c)))
            .min();
        let state = match lowest {
            Some((_, name)) => {
                let path = format!("{}/{name}", group.path);
                match client.get_data(&path).await {
                    Ok((bytes, _)) => LeaderState {
                        elected: mine.as_deref() == Some(name.as_str()),
                        leader: Some(String::from_utf8_lossy(&bytes).into_owned()),
                    },
                    Err(zk::Error::NoNode) => continue,
                    Err(e) => return Err(zk_err("read leader", &path)(e)),
                }
            }
            None => LeaderState::default(),
        };
        if *tx.borrow() != state {
            tracing::info!(elected = state.elected, leader = ?state.leader, "Leadership changed");
        }
        tx.send_replace(state);
        tokio::select! {
            _ = watcher.changed() => {}
            pause = abdicate.recv() => {
                let pause = pause.unwrap_or_default();
                if let Some(name) = &mine {
                    let path = format!("{}/{name}", group.path);
                    if let Err(e) = client.delete(&path, None).await {
                        tracing::warn!(error = %e, znode = %path, "failed to delete candidate znode");
                    }
                }
                tracing::info!(pause_ms = pause.as_millis() as u64, "Abdicated");
                return Ok(Some(pause));
            }
            state = states.changed() => {
                match state {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {}
                    zk::SessionState::Disconnected => {
                        // Mesos' detector and Marathon's latch both stop trusting the leader while the
                        // session is suspended.
                        tx.send_replace(LeaderState::default());
                        loop {
                            match states.changed().await {
                                zk::SessionState::SyncConnected => break,
                                zk::SessionState::Disconnected => {}
                                _ => return Ok(None),
                            }
                        }
                    }
                    _ => return Ok(None),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zk_urls() {
        assert_eq!(
            parse_zk_url("zk://127.0.0.31:2181,127.0.0.32:2181/mesos").unwrap(),
            ("127.0.0.31:2181,127.0.0.32:2181".into(), "/mesos".into())
        );
        assert!(parse_zk_url("http://x/mesos").is_err());
        assert!(parse_zk_url("zk://x").is_err());
    }

    #[test]
    fn sequence_is_the_last_ten_digits() {
        assert_eq!(sequence_of("json.info_0000000003"), Some(3));
        assert_eq!(sequence_of("_c_ab-latch-0000000012"), Some(12));
        assert_eq!(sequence_of("log_replicas"), None);
    }

    #[tokio::test]
    async fn fixed_election_abdicates_and_returns() {
        let e = Election::fixed("me".into());
        assert!(e.state().elected);
        let mut rx = e.subscribe();
        e.abdicate(Duration::from_millis(50)).await;
        rx.changed().await.unwrap();
        assert!(!rx.borrow().elected);
        rx.changed().await.unwrap();
        assert!(rx.borrow().elected);
    }
}
