//! Marathon's state in ZooKeeper (I/O): the leader writes what changed after each tick, a newly
//! elected leader reads it before it schedules anything.

use std::time::Duration;

use tokio::sync::Mutex;
use zookeeper_client as zk;

use crate::Error;
use crate::leader::{connect, zk_err};

/// One znode holding [`crate::marathon::state::Persisted`] as JSON, under `<zk path>/state`.
pub struct StateStore {
    servers: String,
    znode: String,
    session_timeout: Duration,
    client: Mutex<Option<zk::Client>>,
    /// The znode version this process last read or wrote: a write expects it, so a deposed
    /// leader cannot overwrite what its successor stored.
    version: Mutex<Option<i32>>,
}

impl StateStore {
    /// The store of the Marathon whose `--zk` is `servers` + `path`.
    pub fn new(servers: String, path: &str, session_timeout: Duration) -> Self {
        Self {
            servers,
            znode: format!("{path}/state/sim-snapshot"),
            session_timeout,
            client: Mutex::new(None),
            version: Mutex::new(None),
        }
    }

    /// The stored state, `None` before any leader wrote one.
    pub async fn load(&self) -> Result<Option<Vec<u8>>, Error> {
        let client = self.client().await?;
        let (bytes, version) = match client.get_data(&self.znode).await {
            Ok((bytes, stat)) => (Some(bytes), Some(stat.version)),
            Err(zk::Error::NoNode) => (None, None),
            Err(e) => return Err(self.forget(zk_err("read state", &self.znode)(e)).await),
        };
        *self.version.lock().await = version;
        Ok(bytes)
    }

    /// Replaces the stored state, unless another process wrote it since this one last read or
    /// wrote it ([`Error::StateSuperseded`]).
    pub async fn save(&self, bytes: &[u8]) -> Result<(), Error> {
        let client = self.client().await?;
        let mut version = self.version.lock().await;
        let written = match *version {
            Some(expected) => client
                .set_data(&self.znode, bytes, Some(expected))
                .await
                .map(|stat| stat.version),
            None => {
                let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                client
                    .create(&self.znode, bytes, &options)
                    .await
                    .map(|(stat, _)| stat.version)
            }
        };
        match written {
            Ok(new) => {
                *version = Some(new);
                Ok(())
            }
            Err(zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode) => {
                Err(Error::StateSuperseded {
                    path: self.znode.clone(),
                })
            }
            Err(e) => {
                drop(version);
                Err(self.forget(zk_err("write state", &self.znode)(e)).await)
            }
        }
    }

    /// The session, connecting (and creating the parent znode) when there is none.
    async fn client(&self) -> Result<zk::Client, Error> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let parent = self
            .znode
            .rsplit_once('/')
            .map_or("/", |(parent, _)| parent);
        let client = connect(
            &self.servers,
            self.session_timeout,
            parent,
            "create state directory",
        )
        .await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drops the session after a failure, so the next call starts a new one.
    async fn forget(&self, error: Error) -> Error {
        *self.client.lock().await = None;
        error
    }
}
