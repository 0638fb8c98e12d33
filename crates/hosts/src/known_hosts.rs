//! Host key pinning (does file I/O): `ssh.known_hosts` holds one line per host,
//! `<ip>:<port> <key type> <base64>`. The first key a host offers is recorded (trust on first
//! use); keys written there beforehand are pinned up front. A different key is refused. A
//! read-only store (`converged plan`) accepts an unpinned host's key for its own reads only and
//! remembers, in memory, what it would have pinned.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::access::Access;
use crate::error::HostsError;

/// What checking an offered key concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The pinned key was offered.
    Matches,
    /// Nothing was pinned; the offered key is now recorded.
    Pinned,
    /// Nothing was pinned; the store is read-only, so the key is accepted for this read and not
    /// recorded.
    WouldPin,
    /// Another key is pinned.
    Changed { pinned: String },
}

#[derive(Debug)]
pub struct KnownHosts {
    path: PathBuf,
    access: Access,
    /// Keys a read-only store accepted without pinning, by `ip:port`; the lock also serializes
    /// writers of the file.
    unpinned: Mutex<BTreeMap<String, String>>,
}

impl KnownHosts {
    pub fn new(path: impl Into<PathBuf>, access: Access) -> Self {
        Self {
            path: path.into(),
            access,
            unpinned: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Compares `offered` (OpenSSH public key text, without comment) with the pinned key of
    /// `address`, recording it when none is pinned and the store may write.
    pub fn check(
        &self,
        node: &str,
        address: SocketAddr,
        offered: &str,
    ) -> Result<KeyCheck, HostsError> {
        let mut unpinned = self
            .unpinned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pins = self.read(node)?;
        let host = address.to_string();
        if let Some(pinned) = pins.get(&host) {
            unpinned.remove(&host);
            return Ok(if pinned == offered {
                KeyCheck::Matches
            } else {
                KeyCheck::Changed {
                    pinned: pinned.clone(),
                }
            });
        }
        if !self.access.writes() {
            unpinned.insert(host, offered.to_owned());
            return Ok(KeyCheck::WouldPin);
        }
        pins.insert(host, offered.to_owned());
        self.write(node, &pins)?;
        Ok(KeyCheck::Pinned)
    }

    /// The key a read-only store accepted from `address` without pinning it, while the file
    /// still pins none there (once the daemon has pinned it, there is nothing left to say).
    pub fn would_pin(&self, node: &str, address: SocketAddr) -> Option<String> {
        let mut unpinned = self
            .unpinned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let host = address.to_string();
        let offered = unpinned.get(&host)?.clone();
        // An unreadable file pins nothing this store can see: the key is still unpinned.
        if self.read(node).is_ok_and(|pins| pins.contains_key(&host)) {
            unpinned.remove(&host);
            return None;
        }
        Some(offered)
    }

    fn read(&self, node: &str) -> Result<BTreeMap<String, String>, HostsError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(self.error(node, &err)),
        };
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let host = fields.next()?;
                let key_type = fields.next()?;
                let key = fields.next()?;
                Some((host.to_owned(), format!("{key_type} {key}")))
            })
            .collect())
    }

    /// Writes the whole file anew and replaces the old one durably, so a crash never leaves
    /// half a pin behind.
    fn write(&self, node: &str, pins: &BTreeMap<String, String>) -> Result<(), HostsError> {
        let text: String = pins
            .iter()
            .map(|(host, key)| format!("{host} {key}\n"))
            .collect();
        converged_core::durable::replace_file(&self.path, text.as_bytes())
            .map_err(|err| self.error(node, &err))
    }

    fn error(&self, node: &str, err: &std::io::Error) -> HostsError {
        HostsError::PinHostKey {
            node: node.to_owned(),
            path: self.path.display().to_string(),
            message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_is_pinned_and_a_different_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/known_hosts");
        let known = KnownHosts::new(&path, Access::ReadWrite);
        let a: SocketAddr = "127.0.0.21:22".parse().unwrap();
        let b: SocketAddr = "127.0.0.22:22".parse().unwrap();
        assert_eq!(
            known.check("a", a, "ssh-ed25519 AAAA1").unwrap(),
            KeyCheck::Pinned
        );
        assert_eq!(
            known.check("a", a, "ssh-ed25519 AAAA1").unwrap(),
            KeyCheck::Matches
        );
        assert_eq!(
            known.check("b", b, "ssh-ed25519 BBBB").unwrap(),
            KeyCheck::Pinned
        );
        assert_eq!(
            KnownHosts::new(&path, Access::ReadWrite)
                .check("a", a, "ssh-ed25519 OTHER")
                .unwrap(),
            KeyCheck::Changed {
                pinned: "ssh-ed25519 AAAA1".into()
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "127.0.0.21:22 ssh-ed25519 AAAA1\n127.0.0.22:22 ssh-ed25519 BBBB\n"
        );
    }

    #[test]
    fn keys_given_up_front_are_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            "# provided by the operator\n127.0.0.21:22 ssh-ed25519 GIVEN comment\n",
        )
        .unwrap();
        let known = KnownHosts::new(&path, Access::ReadWrite);
        let a: SocketAddr = "127.0.0.21:22".parse().unwrap();
        assert_eq!(
            known.check("a", a, "ssh-ed25519 GIVEN").unwrap(),
            KeyCheck::Matches
        );
        assert!(matches!(
            known.check("a", a, "ssh-ed25519 FIRST-SEEN").unwrap(),
            KeyCheck::Changed { .. }
        ));
    }

    #[test]
    fn a_read_only_store_accepts_unpinned_keys_without_writing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/known_hosts");
        let a: SocketAddr = "127.0.0.21:22".parse().unwrap();
        let b: SocketAddr = "127.0.0.22:22".parse().unwrap();
        let reading = KnownHosts::new(&path, Access::ReadOnly);
        assert_eq!(reading.would_pin("a", a), None, "nothing offered yet");
        assert_eq!(
            reading.check("a", a, "ssh-ed25519 AAAA1").unwrap(),
            KeyCheck::WouldPin
        );
        assert_eq!(
            reading.would_pin("a", a).as_deref(),
            Some("ssh-ed25519 AAAA1")
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the state directory stays empty"
        );

        // The read-write path pins the same key the read-only one reported.
        let writing = KnownHosts::new(&path, Access::ReadWrite);
        assert_eq!(
            writing.check("a", a, "ssh-ed25519 AAAA1").unwrap(),
            KeyCheck::Pinned
        );
        assert_eq!(
            reading.would_pin("a", a),
            None,
            "pinned by the daemon since"
        );
        let pinned = std::fs::read_to_string(&path).unwrap();

        // Pins are honoured read-only too, and an unpinned host changes nothing on disk.
        assert_eq!(
            reading.check("a", a, "ssh-ed25519 AAAA1").unwrap(),
            KeyCheck::Matches
        );
        assert!(matches!(
            reading.check("a", a, "ssh-ed25519 OTHER").unwrap(),
            KeyCheck::Changed { .. }
        ));
        assert_eq!(
            reading.check("b", b, "ssh-ed25519 BBBB").unwrap(),
            KeyCheck::WouldPin
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pinned);
        assert!(!path.with_extension("tmp").exists());
    }
}
