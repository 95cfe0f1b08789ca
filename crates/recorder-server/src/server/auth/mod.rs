//! Who may write recordings and events (the ingest surface) and who may read them (the read
//! surface), and what each viewer may see.
//!
//! - **Writers**: callers whose address is in [`AccessOptions::ingest_allow`] (default:
//!   loopback), or tailnet callers (whois over [`AccessOptions::localapi_socket`]) whose
//!   capability `tailscale.com/cap/kube-recorder` has a rule with `"write": true`. Others get 403.
//! - **Viewers**: a bearer token from [`AccessOptions::viewer_tokens`] (`Authorization: Bearer
//!   TOKEN`), else a tailnet caller whose capability has `view` rules, else — only with
//!   [`AccessOptions::read_anonymous`] — anyone. Without any, 401. A viewer sees only the
//!   recordings and events of its namespaces and users.

mod cidr;
mod scope;
mod tailnet;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use localapi::LocalApiClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use cidr::{CidrError, IpCidr};
pub(crate) use scope::{Via, Viewer};
pub use tailnet::RECORDER_CAPABILITY;

use super::routes::error_response;
use super::App;
use crate::error::StoreError;
use scope::ViewGrant;
use tailnet::{Lookup, Tailnet};
use tokens::ViewerTokens;

/// Who may use the recorder (see the module documentation).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessOptions {
    /// Addresses allowed to upload recordings and events without further checks. Default:
    /// loopback (`127.0.0.0/8`, `::1`).
    pub ingest_allow: Vec<IpCidr>,
    /// tailscaled's LocalAPI socket: tailnet callers are identified by whois, and their
    /// capability `tailscale.com/cap/kube-recorder` says whether they may write and what they
    /// may view. Default none.
    pub localapi_socket: Option<PathBuf>,
    /// How long a whois answer is reused for the same caller address. Default 5 s.
    pub whois_ttl: Duration,
    /// A file of viewer tokens, one per line: `TOKEN NAME NAMESPACES` (NAMESPACES `*` or
    /// comma-separated names; `#` comments). Read again when it changes. Default none.
    pub viewer_tokens: Option<PathBuf>,
    /// How often the token file is checked for changes. Default 1 s.
    pub viewer_tokens_interval: Duration,
    /// Let anyone read everything, unauthenticated. For demos only; logged loudly. Default false.
    pub read_anonymous: bool,
}

impl Default for AccessOptions {
    fn default() -> Self {
        Self {
            ingest_allow: IpCidr::loopback(),
            localapi_socket: None,
            whois_ttl: Duration::from_secs(5),
            viewer_tokens: None,
            viewer_tokens_interval: Duration::from_secs(1),
            read_anonymous: false,
        }
    }
}

/// The peer address of a request's connection, put in its extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// Access checks, shared by the handlers.
#[derive(Debug)]
pub(crate) struct Access {
    ingest_allow: Vec<IpCidr>,
    tailnet: Option<Tailnet>,
    tokens: Option<Arc<ViewerTokens>>,
    anonymous: bool,
}

/// Why a caller was refused.
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        let mut response = error_response(self.status, self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kube-recorder\""),
            );
        }
        response
    }
}

impl Access {
    /// Reads the token file (an error when it cannot be read) and starts watching it.
    pub(crate) fn new(
        options: &AccessOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Self, Option<JoinHandle<()>>), StoreError> {
        let tokens = options
            .viewer_tokens
            .as_deref()
            .map(|path| {
                ViewerTokens::load(path).map_err(|reason| StoreError::Io {
                    op: "read the viewer tokens in",
                    path: path.to_owned(),
                    source: std::io::Error::other(reason),
                })
            })
            .transpose()?;
        let watcher = tokens
            .as_ref()
            .map(|tokens| tokens.watch(options.viewer_tokens_interval, shutdown));
        if options.read_anonymous {
            tracing::warn!(
                "--read-anonymous: ANYONE WHO CAN REACH THE READ LISTENER SEES EVERY RECORDING \
                 AND EVENT, UNAUTHENTICATED; for demos only"
            );
        }
        let tailnet = options
            .localapi_socket
            .as_ref()
            .map(|socket| Tailnet::new(LocalApiClient::new(socket.clone()), options.whois_ttl));
        Ok((
            Self {
                ingest_allow: options.ingest_allow.clone(),
                tailnet,
                tokens,
                anonymous: options.read_anonymous,
            },
            watcher,
        ))
    }

    /// Whether `peer` may upload; `Ok` names the writer for the log.
    async fn writer(&self, peer: SocketAddr) -> Result<String, Refusal> {
        if self.ingest_allow.iter().any(|net| net.contains(peer.ip())) {
            return Ok(format!("address {}", peer.ip()));
        }
        let refused = |why: &str| {
            Refusal::new(
                StatusCode::FORBIDDEN,
                format!("{peer} may not write to this recorder: {why}"),
            )
        };
        let Some(tailnet) = &self.tailnet else {
            return Err(refused("the address is not in --ingest-allow"));
        };
        match tailnet.lookup(peer).await {
            Lookup::Known(caller) => match &caller.grants {
                Ok(grants) if grants.write => Ok(format!("tailnet {}", caller.name)),
                Ok(_) => Err(refused(&format!(
                    "the address is not in --ingest-allow, and tailnet caller {} has no \
                     {RECORDER_CAPABILITY} rule with \"write\": true",
                    caller.name
                ))),
                Err(error) => Err(refused(&format!("tailnet caller {}: {error}", caller.name))),
            },
            Lookup::Unknown => Err(refused(
                "the address is not in --ingest-allow and not a tailnet node",
            )),
            Lookup::Unavailable(error) => Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot identify {peer}: {error}"),
            )),
        }
    }

    /// The viewer a bearer token (or a browser session holding one) stands for.
    fn viewer_of_token(&self, peer: SocketAddr, token: &str) -> Result<Viewer, Refusal> {
        let entry = self
            .tokens
            .as_ref()
            .and_then(|tokens| tokens.find(token))
            .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "unknown viewer token"))?;
        Ok(Viewer {
            name: entry.name.clone(),
            via: Via::Token,
            peer,
            node: None,
            tags: Vec::new(),
            grants: vec![entry.grant()],
        })
    }

    /// The viewer of a token the web UI's login form sent: the refusal's status and message.
    pub(crate) fn token_viewer(
        &self,
        peer: SocketAddr,
        token: &str,
    ) -> Result<Viewer, (StatusCode, String)> {
        self.viewer_of_token(peer, token)
            .map_err(|refusal| (refusal.status, refusal.message))
    }

    /// Who is reading, and what it may see.
    async fn viewer(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<Viewer, Refusal> {
        let viewer = |name: String, via: Via, grants: Vec<ViewGrant>| Viewer {
            name,
            via,
            peer,
            node: None,
            tags: Vec::new(),
            grants,
        };
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    let (scheme, token) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Refusal::new(
                        StatusCode::UNAUTHORIZED,
                        "the Authorization header is not `Bearer TOKEN`",
                    )
                })?;
            return self.viewer_of_token(peer, token);
        }
        if let Some(tailnet) = &self.tailnet {
            match tailnet.lookup(peer).await {
                Lookup::Known(caller) => match &caller.grants {
                    Ok(grants) if !grants.view.is_empty() => {
                        return Ok(Viewer {
                            node: Some(caller.node.clone()),
                            tags: caller.tags.clone(),
                            ..viewer(caller.name.clone(), Via::Tailnet, grants.view.clone())
                        });
                    }
                    Ok(_) if self.anonymous => {}
                    Ok(_) => {
                        return Err(Refusal::new(
                            StatusCode::FORBIDDEN,
                            format!(
                                "tailnet caller {} has no {RECORDER_CAPABILITY} rule with \"view\"",
                                caller.name
                            ),
                        ))
                    }
                    Err(error) => {
                        return Err(Refusal::new(
                            StatusCode::FORBIDDEN,
                            format!("tailnet caller {}: {error}", caller.name),
                        ))
                    }
                },
                Lookup::Unknown => {}
                Lookup::Unavailable(error) if !self.anonymous => {
                    return Err(Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("cannot identify {peer}: {error}"),
                    ))
                }
                Lookup::Unavailable(_) => {}
            }
        }
        if self.anonymous {
            return Ok(viewer(
                "anonymous".to_owned(),
                Via::Anonymous,
                vec![ViewGrant::all()],
            ));
        }
        Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "reading recordings needs a viewer: send `Authorization: Bearer TOKEN` with a token \
             from --viewer-tokens, or call from a tailnet node whose tailscale.com/cap/kube-recorder \
             grant has \"view\"",
        ))
    }
}

fn peer_of(request: &Request) -> SocketAddr {
    request
        .extensions()
        .get::<Peer>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |peer| peer.0)
}

/// The viewer a request's credentials name now (a browser session of the web UI stands for its
/// token, unless the request names a token itself; an unknown or expired session counts as
/// none). Asked at each request, and again by answers that last (live views), so a viewer whose
/// session ended, whose token left the file or whose grant was revoked stops getting data.
pub(crate) async fn viewer_of(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Viewer, Refusal> {
    let session_token = match headers.contains_key(header::AUTHORIZATION) {
        false => app.ui.sessions.token_for(headers),
        true => None,
    };
    match session_token {
        Some(token) => app.access.viewer_of_token(peer, &token),
        None => app.access.viewer(peer, headers).await,
    }
}

/// Whether a request comes from a web browser's page: browsers name the page's origin
/// (`Origin`) on every cross-origin `POST`, `no-cors` ones included, and describe the fetch
/// (`Sec-Fetch-*`); recorder clients send neither.
fn from_a_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers
            .keys()
            .any(|name| name.as_str().starts_with("sec-fetch-"))
}

/// Middleware of the ingest routes: only writers pass, and never from a web page. A writer is
/// known by its address, so a page that a browser on a writer's address opens (loopback by
/// default) could otherwise upload forged recordings and events, which would be sealed as
/// genuine.
pub(crate) async fn require_writer(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = peer_of(&request);
    if from_a_browser(request.headers()) {
        tracing::warn!(
            %peer,
            method = %request.method(),
            path = %request.uri().path(),
            "upload refused: sent by a web page"
        );
        return Refusal::new(
            StatusCode::FORBIDDEN,
            "uploads are not taken from web pages (the request carries Origin or Sec-Fetch headers)",
        )
        .into_response();
    }
    match app.access.writer(peer).await {
        Ok(writer) => {
            tracing::debug!(%peer, %writer, path = %request.uri().path(), "writer allowed");
            next.run(request).await
        }
        Err(refusal) => {
            tracing::warn!(
                %peer,
                method = %request.method(),
                path = %request.uri().path(),
                reason = %refusal.message,
                "upload refused"
            );
            refusal.into_response()
        }
    }
}

/// Middleware of the read routes: only viewers pass, and handlers find the [`Viewer`] in the
/// request's extensions.
pub(crate) async fn require_viewer(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = peer_of(&request);
    match viewer_of(&app, peer, request.headers()).await {
        Ok(viewer) => {
            request.extensions_mut().insert(viewer);
            next.run(request).await
        }
        Err(refusal) => {
            tracing::warn!(
                %peer,
                path = %request.uri().path(),
                reason = %refusal.message,
                "read refused"
            );
            refusal.into_response()
        }
    }
}
