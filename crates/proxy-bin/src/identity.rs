//! Who is calling: the identity source's answer for a peer address, read into the caller's grants.
//! Answers are asked for per request through `identity_cache`, so a changed grant applies within
//! its TTL even on a connection that stays open.

use std::net::SocketAddr;
use std::sync::Arc;

use capmodel::{CallerDescription, CallerPolicy, WhoIs};
use localapi::{LocalApiClient, LocalApiError};

use crate::status::KubeStatus;

/// A caller the identity source knows.
#[derive(Debug)]
pub(crate) struct Caller {
    /// What the caller's grants allow.
    pub(crate) policy: CallerPolicy,
    /// Who it is, as recordings and events name it.
    pub(crate) description: CallerDescription,
}

/// What the proxy knows about one client connection.
#[derive(Debug)]
pub(crate) struct ConnectionContext {
    /// The client's address as seen by the proxy.
    pub(crate) peer: SocketAddr,
}

impl Caller {
    /// The caller the identity source described, with its grants.
    pub(crate) fn new(whois: &WhoIs, policy: CallerPolicy) -> Caller {
        Caller {
            policy,
            description: whois.describe(),
        }
    }

    /// A short name for logs: the login name or the node name.
    pub(crate) fn display_name(&self) -> &str {
        self.description
            .user
            .as_deref()
            .unwrap_or(&self.description.node)
    }
}

/// Asks tailscaled who is at `peer` and reads the caller's grants. A lookup failure becomes the Status
/// to answer with and closes the connection, so the client reconnects rather than keep a connection
/// the proxy cannot serve. A grant that cannot be read is a 403 naming the problem: the proxy
/// never acts on a grant it does not understand.
pub(crate) async fn resolve(
    localapi: &LocalApiClient,
    peer: SocketAddr,
) -> Result<Arc<Caller>, KubeStatus> {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; tailscaled knows them as IPv4.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let whois = localapi
        .whois(peer)
        .await
        .map_err(|error| status_for(&error, peer).closing_connection())?;
    match CallerPolicy::from_whois(&whois) {
        Ok(policy) => Ok(Arc::new(Caller::new(&whois, policy))),
        Err(error) => {
            tracing::info!(%peer, %error, "refusing caller: unusable capability grant");
            Err(KubeStatus::forbidden(format!(
                "the caller's Kubernetes capability grant cannot be used: {error}"
            )))
        }
    }
}

fn status_for(error: &LocalApiError, peer: SocketAddr) -> KubeStatus {
    match error {
        LocalApiError::UnknownPeer { .. } => KubeStatus::unauthorized(format!(
            "the caller at {peer} is not known to the tailnet identity source"
        )),
        other => KubeStatus::service_unavailable(format!(
            "cannot identify the caller: the identity source (tailscaled LocalAPI) is unavailable: {other}"
        )),
    }
}
