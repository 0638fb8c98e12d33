//! Four-letter words (`srvr`, `conf`, `mntr`) over TCP to each member's client port (I/O in
//! `ask` and `member_status`; the parsers are pure). Nothing is dialled outside
//! `allowed_networks` (`AllowedNetworks::check_addresses`, the rule SSH uses too).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use converged_hosts::AllowedNetworks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ZookeeperError;

const TIMEOUT: Duration = Duration::from_secs(2);
const NOT_SERVING: &str = "not currently serving requests";

/// What one member says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberStatus {
    /// `leader`, `follower`, `observer`, `standalone`; `None` while not serving.
    pub mode: Option<String>,
    pub zxid: Option<String>,
    /// The server list the member runs with: id → `ip:quorumPort:electionPort`.
    pub membership: BTreeMap<u32, String>,
    /// `zk_synced_followers` (leaders only).
    pub synced_followers: Option<u32>,
}

impl MemberStatus {
    pub fn serving(&self) -> bool {
        self.mode.is_some()
    }
}

/// `Mode:` and `Zxid:` of a `srvr` reply.
pub fn parse_srvr(reply: &str) -> (Option<String>, Option<String>) {
    if reply.contains(NOT_SERVING) {
        return (None, None);
    }
    let field = |name: &str| {
        reply
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
    };
    (field("Mode:"), field("Zxid:"))
}

/// The `server.N=` lines of a `conf` reply (3.5+ prints them after `membership:`), without
/// role and client address.
pub fn parse_conf(reply: &str) -> BTreeMap<u32, String> {
    reply
        .lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once('=')?;
            let id = key.strip_prefix("server.")?.parse().ok()?;
            let address = value.split(';').next()?;
            let parts: Vec<&str> = address.split(':').take(3).collect();
            Some((id, parts.join(":")))
        })
        .collect()
}

/// `zk_synced_followers` of a leader's `mntr` reply.
pub fn parse_mntr(reply: &str) -> Option<u32> {
    reply.lines().find_map(|line| {
        let (key, value) = line.split_once('\t')?;
        (key.trim() == "zk_synced_followers")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Sends one word and reads until the server closes.
pub async fn ask(address: SocketAddr, word: &'static str) -> Result<String, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|err| err.to_string())?;
        stream
            .write_all(word.as_bytes())
            .await
            .map_err(|err| err.to_string())?;
        let mut reply = String::new();
        stream
            .read_to_string(&mut reply)
            .await
            .map_err(|err| err.to_string())?;
        Ok(reply)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())))
}

/// `srvr`, `conf` and (on a leader) `mntr` of one member.
pub async fn member_status(
    node: &str,
    address: SocketAddr,
    allowed: &AllowedNetworks,
) -> Result<MemberStatus, ZookeeperError> {
    let error = |word: &'static str, message: String| ZookeeperError::FourLetterWord {
        word,
        node: node.to_owned(),
        address: address.to_string(),
        message,
    };
    allowed
        .check_addresses(None, &[address.ip()])
        .map_err(|outside| ZookeeperError::AddressNotAllowed {
            node: node.to_owned(),
            address: address.to_string(),
            outside,
        })?;
    let srvr = ask(address, "srvr").await.map_err(|m| error("srvr", m))?;
    let (mode, zxid) = parse_srvr(&srvr);
    if mode.is_none() {
        return Ok(MemberStatus::default());
    }
    let conf = ask(address, "conf").await.map_err(|m| error("conf", m))?;
    let synced_followers = if mode.as_deref() == Some("leader") {
        parse_mntr(&ask(address, "mntr").await.map_err(|m| error("mntr", m))?)
    } else {
        None
    };
    Ok(MemberStatus {
        mode,
        zxid,
        membership: parse_conf(&conf),
        synced_followers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srvr_replies_parse() {
        let cases = [
            (
                "Zookeeper version: 3.8.0-1, built on 2022\nLatency min/avg/max: 0/0.0/0\nZxid: 0x100000002\nMode: follower\nNode count: 5\n",
                (Some("follower"), Some("0x100000002")),
            ),
            (
                "Zookeeper version: 3.4.8--1\nZxid: 0x0\nMode: leader\nProposal sizes last/min/max: -1/-1/-1\n",
                (Some("leader"), Some("0x0")),
            ),
            (
                "This ZooKeeper instance is not currently serving requests\n",
                (None, None),
            ),
            ("", (None, None)),
        ];
        for (reply, (mode, zxid)) in cases {
            let (got_mode, got_zxid) = parse_srvr(reply);
            assert_eq!(got_mode.as_deref(), mode, "{reply}");
            assert_eq!(got_zxid.as_deref(), zxid, "{reply}");
        }
    }

    #[test]
    fn conf_membership_parses_in_both_shapes() {
        let v38 = "clientPort=2181\nserverId=1\nmembership: \nserver.1=127.0.22.1:2888:3888:participant\nserver.2=127.0.22.2:2888:3888:participant;0.0.0.0:2181\nversion=0\n";
        let v34 = "clientPort=2181\ndataDir=/tmp/zookeeper/version-2\nserverId=1\nelectionPort=3888\nquorumPort=2888\n";
        assert_eq!(
            parse_conf(v38),
            BTreeMap::from([
                (1, "127.0.22.1:2888:3888".to_owned()),
                (2, "127.0.22.2:2888:3888".to_owned())
            ])
        );
        assert!(parse_conf(v34).is_empty());
    }

    #[test]
    fn mntr_gives_synced_followers() {
        let reply = "zk_version\t3.8.0\nzk_server_state\tleader\nzk_synced_followers\t2\n";
        assert_eq!(parse_mntr(reply), Some(2));
        assert_eq!(parse_mntr("zk_server_state\tfollower\n"), None);
    }

    #[tokio::test]
    async fn a_member_outside_the_allowed_networks_is_not_probed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let allowed = AllowedNetworks::new(vec!["127.0.22.0/24".parse().unwrap()]);
        let err = member_status("zk1", address, &allowed).await.unwrap_err();
        assert!(
            matches!(&err, ZookeeperError::AddressNotAllowed { node, .. } if node == "zk1"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("127.0.0.1 is outside ssh.allowed_networks (127.0.22.0/24)"),
            "{err}"
        );
        assert_eq!(
            converged_core::Classified::class(&err),
            converged_core::ErrorClass::Unsafe
        );
        assert!(listener.accept().is_err(), "nothing may connect");
    }
}
