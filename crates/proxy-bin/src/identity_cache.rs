//! Identity answers per client address, shared and short-lived.
//!
//! Every request is served on an identity at most `ttl` old: a grant changed or revoked in the
//! tailnet applies within `ttl`, also on a kept-alive connection or before an upgrade on it.
//! Within `ttl` requests from the same address reuse one answer, and concurrent requests whose
//! answer is missing or stale wait for one lookup together instead of each asking tailscaled.
//! Failed lookups are not kept: the next request asks again.
//!
//! Keys are the full `ip:port`: tailscaled's whois takes both, and in userspace-networking mode
//! the port is what tells callers apart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use localapi::LocalApiClient;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::identity::{self, Caller};
use crate::metrics::Metrics;
use crate::status::KubeStatus;

/// What a request is served on: the caller, or the Status to answer with.
pub(crate) type Identity = Result<Arc<Caller>, KubeStatus>;

/// Above this many entries, expired ones are dropped on the next insert.
const PRUNE_ABOVE: usize = 1024;

/// The cache.
#[derive(Debug)]
pub(crate) struct IdentityCache {
    localapi: LocalApiClient,
    ttl: Duration,
    entries: Mutex<HashMap<SocketAddr, Arc<Lookup>>>,
}

/// One lookup: in flight until `answer` is set, then the answer and when it was asked for.
#[derive(Debug, Default)]
struct Lookup {
    answer: OnceCell<(Identity, Instant)>,
}

impl Lookup {
    /// Whether a finished answer is too old to serve (an unfinished lookup is never stale).
    fn is_stale(&self, now: Instant, ttl: Duration) -> bool {
        self.answer
            .get()
            .is_some_and(|(_, asked)| now.saturating_duration_since(*asked) >= ttl)
    }
}

impl IdentityCache {
    /// Answers from `localapi`, each used for `ttl` at most.
    pub(crate) fn new(localapi: LocalApiClient, ttl: Duration) -> IdentityCache {
        IdentityCache {
            localapi,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The identity of the caller at `peer`, at most `ttl` old.
    pub(crate) async fn identify(&self, metrics: &Metrics, peer: SocketAddr) -> Identity {
        let lookup = self.lookup_for(peer);
        // The lookup (a LocalAPI exchange, a large future) is boxed, so that it does not make
        // every request's future as large; most requests are answered from the cache.
        let (identity, _) = lookup
            .answer
            .get_or_init(|| Box::pin(async {
                metrics.identity_lookup();
                // The answer's age counts from the question: a grant changed while tailscaled was
                // answering may or may not be in it.
                let asked = Instant::now();
                let identity = identity::resolve(&self.localapi, peer).await;
                match &identity {
                    Ok(caller) => {
                        tracing::debug!(%peer, caller = caller.display_name(), "caller identified")
                    }
                    Err(status) => tracing::info!(%peer, %status, "caller not identified"),
                }
                (identity, asked)
            }))
            .await;
        if identity.is_err() {
            self.forget(peer, &lookup);
        }
        identity.clone()
    }

    /// The lookup to wait on for `peer`: the current one while it is fresh or in flight, else a
    /// new one.
    fn lookup_for(&self, peer: SocketAddr) -> Arc<Lookup> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lookup) = entries.get(&peer) {
            if !lookup.is_stale(now, self.ttl) {
                return lookup.clone();
            }
        }
        if entries.len() >= PRUNE_ABOVE {
            entries.retain(|_, lookup| !lookup.is_stale(now, self.ttl));
        }
        let lookup = Arc::new(Lookup::default());
        entries.insert(peer, lookup.clone());
        lookup
    }

    /// Drops `lookup` for `peer` if it is still the current one, so the next request asks again.
    fn forget(&self, peer: SocketAddr, lookup: &Arc<Lookup>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries
            .get(&peer)
            .is_some_and(|current| Arc::ptr_eq(current, lookup))
        {
            entries.remove(&peer);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;
    use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};

    const PEER: &str = "100.64.0.7:50123";

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../testdata/whois/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn table(whois: Option<Value>) -> WhoIsTable {
        let mut table = WhoIsTable::new();
        if let Some(whois) = whois {
            table.insert(PEER, whois);
        }
        table
    }

    async fn standin(dir: &tempfile::TempDir, whois: Option<Value>) -> LocalApiStandIn {
        let socket = dir.path().join("tailscaled.sock");
        LocalApiStandIn::start(&socket, table(whois), StandInOptions::default())
            .await
            .unwrap()
    }

    fn lookups(metrics: &Metrics) -> u64 {
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("k8s_auth_proxy_identity_lookups "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_lookup_within_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let standin = standin(&dir, Some(fixture("user-node"))).await;
        let cache = Arc::new(IdentityCache::new(
            LocalApiClient::new(standin.socket()),
            Duration::from_secs(3600),
        ));
        let metrics = Arc::new(Metrics::default());
        let peer: SocketAddr = PEER.parse().unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, metrics) = (cache.clone(), metrics.clone());
                tokio::spawn(async move { cache.identify(&metrics, peer).await })
            })
            .collect();
        for task in tasks {
            let caller = task.await.unwrap().unwrap();
            assert_eq!(caller.display_name(), "alice@example.com");
        }
        assert_eq!(lookups(&metrics), 1);
    }

    #[tokio::test]
    async fn a_changed_grant_applies_once_the_answer_expires() {
        let dir = tempfile::tempdir().unwrap();
        let standin = standin(&dir, Some(fixture("user-node"))).await;
        let client = LocalApiClient::new(standin.socket());
        let metrics = Metrics::default();
        let peer: SocketAddr = PEER.parse().unwrap();

        // An answer that never expires keeps serving the old grant...
        let kept = IdentityCache::new(client.clone(), Duration::from_secs(3600));
        // ... one that is always expired serves the grant of the moment.
        let fresh = IdentityCache::new(client, Duration::ZERO);
        assert!(kept.identify(&metrics, peer).await.is_ok());
        assert!(fresh.identify(&metrics, peer).await.is_ok());

        standin.replace_table(table(None));
        assert!(kept.identify(&metrics, peer).await.is_ok());
        let revoked = fresh.identify(&metrics, peer).await.unwrap_err();
        assert_eq!(revoked.code, http::StatusCode::UNAUTHORIZED);
        assert_eq!(lookups(&metrics), 3);
    }

    #[tokio::test]
    async fn failed_lookups_are_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let standin = standin(&dir, None).await;
        let cache = IdentityCache::new(
            LocalApiClient::new(standin.socket()),
            Duration::from_secs(3600),
        );
        let metrics = Metrics::default();
        let peer: SocketAddr = PEER.parse().unwrap();
        assert!(cache.identify(&metrics, peer).await.is_err());
        standin.replace_table(table(Some(fixture("user-node"))));
        assert!(cache.identify(&metrics, peer).await.is_ok());
        assert_eq!(lookups(&metrics), 2);
    }
}
