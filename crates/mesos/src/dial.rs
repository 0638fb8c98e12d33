//! How the Marathon and Mesos master clients keep to `ssh.allowed_networks` (I/O: DNS): the
//! check before each request, and the resolver their HTTP clients dial through. Both apply
//! `AllowedNetworks`, the rule SSH and the ZooKeeper probes use.

use std::sync::Arc;
use std::time::Duration;

use converged_hosts::{AllowedNetworks, DialError};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::MesosError;

/// Refuses `url` unless its host is an address inside the networks, or a hostname all of whose
/// addresses are: an outside address is `AddressNotAllowed` (unsafe), a host that does not
/// resolve is `Unresolved` (transient, so the next URL or attempt is tried).
pub async fn check_url(allowed: &AllowedNetworks, url: &str) -> Result<(), MesosError> {
    let parsed = reqwest::Url::parse(url).map_err(|err| MesosError::InvalidUrl {
        url: url.to_owned(),
        message: err.to_string(),
    })?;
    let host = parsed.host_str().ok_or_else(|| MesosError::InvalidUrl {
        url: url.to_owned(),
        message: "no host".into(),
    })?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    allowed
        .check_host(host, port)
        .await
        .map_err(|err| match err {
            DialError::Outside(outside) => MesosError::AddressNotAllowed {
                url: url.to_owned(),
                outside,
            },
            DialError::Unresolved { .. } => MesosError::Unresolved {
                url: url.to_owned(),
                message: err.to_string(),
            },
        })
}

/// A `reqwest` client that resolves hostnames through `allowed`, so it dials only addresses
/// the policy passed: `check_url` alone would leave the client to resolve the name again, and
/// a second answer may differ from the one checked. IP addresses are dialled without asking a
/// resolver; `check_url` has checked those.
pub fn client(
    allowed: &AllowedNetworks,
    timeout: Duration,
    connect_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(AllowedResolver(allowed.clone())))
        .build()
}

struct AllowedResolver(AllowedNetworks);

impl Resolve for AllowedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.0.clone();
        Box::pin(async move {
            // Port 0: the client puts the URL's port (or the scheme's) in its place.
            let addresses = allowed.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converged_core::{Classified, ErrorClass};
    use std::str::FromStr;

    #[tokio::test]
    async fn urls_are_checked_with_the_one_rule() {
        let loopback = AllowedNetworks::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        let only_v4 = AllowedNetworks::new(vec!["127.0.0.0/8".parse().unwrap()]);
        // (networks, url, the class of the refusal; None: allowed)
        let cases: [(&AllowedNetworks, &str, Option<ErrorClass>); 10] = [
            (&loopback, "http://127.0.0.5:8080/v2/apps", None),
            (&loopback, "http://[::1]:5050/master/state", None),
            (&loopback, "http://localhost:5050", None),
            (&loopback, "http://10.0.0.5:8080", Some(ErrorClass::Unsafe)),
            (&only_v4, "http://[::1]:5050", Some(ErrorClass::Unsafe)),
            (&only_v4, "http://127.0.0.5", None),
            (
                &loopback,
                "http://node.invalid:8080",
                Some(ErrorClass::Transient),
            ),
            (&loopback, "not a url", Some(ErrorClass::Invalid)),
            (&AllowedNetworks::default(), "http://10.0.0.5:8080", None),
            (&AllowedNetworks::default(), "http://node.invalid", None),
        ];
        for (allowed, url, refused) in cases {
            let result = check_url(allowed, url).await;
            assert_eq!(
                result.as_ref().err().map(Classified::class),
                refused,
                "{url}"
            );
            if let Err(err) = result {
                assert!(err.to_string().contains(url), "{err}");
            }
        }
        let err = check_url(&loopback, "http://10.0.0.5:8080/v2/info")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused to contact http://10.0.0.5:8080/v2/info: 10.0.0.5 is outside ssh.allowed_networks (127.0.0.0/8, ::1/128)"
        );
    }

    #[tokio::test]
    async fn the_client_resolves_only_to_allowed_addresses() {
        let resolve = |allowed: AllowedNetworks| async move {
            AllowedResolver(allowed)
                .resolve(Name::from_str("localhost").unwrap())
                .await
                .map(Iterator::collect::<Vec<_>>)
        };
        let inside = resolve(AllowedNetworks::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]))
        .await
        .unwrap();
        assert!(!inside.is_empty());
        assert!(inside.iter().all(|address| address.ip().is_loopback()));
        let outside = resolve(AllowedNetworks::new(vec!["10.0.0.0/8".parse().unwrap()]))
            .await
            .unwrap_err();
        assert!(
            outside
                .to_string()
                .contains("(an address of localhost) is outside ssh.allowed_networks"),
            "{outside}"
        );
    }
}
