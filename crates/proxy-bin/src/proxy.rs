//! Assembling the proxy from its configuration: the upstream client, the identity source, the
//! serving certificate, the router, the listeners; then serving until asked to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use impersonate::Mode;
use localapi::LocalApiClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::Extension;

use crate::app::App;
use crate::cli::Cli;
use crate::cli::IdentityArg;
use crate::identity::ConnectionContext;
use crate::serving_cert::ServingCert;
use crate::upstream::lane::UpstreamLane;
use crate::{
    api_events, exec, forward, health, identity, identity_cache, metrics, mode, portforward,
    server, sessions, upstream,
};

/// How often served certificate files are checked for changes.
const CERT_FILE_POLL: Duration = Duration::from_secs(10);
/// How often `--client-ca` and `--policy` are checked for changes (a stat each; cheap, and a
/// changed grant should apply within seconds).
const IDENTITY_FILE_POLL: Duration = Duration::from_secs(2);
/// How often the tailscaled certificate is fetched again (tailscaled renews it well before expiry).
const TAILSCALE_CERT_REFRESH: Duration = Duration::from_secs(6 * 3600);

/// A proxy serving on its listeners, until [`RunningProxy::shutdown`].
#[derive(Debug)]
pub struct RunningProxy {
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    shutdown: watch::Sender<bool>,
    served: JoinHandle<()>,
    app: Arc<App>,
    shutdown_grace: Duration,
    /// The threads connections and their sessions run on: kept until the sessions have ended
    /// (dropping them ends every task on them).
    workers: Arc<crate::workers::ConnectionWorkers>,
}

impl RunningProxy {
    /// The address the Kubernetes API is served on (TLS).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The address of `/metrics`, `/healthz` and `/readyz` (plain HTTP).
    pub fn metrics_listen(&self) -> SocketAddr {
        self.metrics_listen
    }

    /// Stops accepting connections and sessions, and waits for in-flight requests and open
    /// sessions (at most `--shutdown-grace`); sessions still open then are ended with a message
    /// kubectl prints, and their recordings finished, before this returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let sessions = self.app.sessions.shut_down(self.shutdown_grace);
        let served = async {
            let _ = self.served.await;
        };
        tokio::join!(sessions, served);
        // Only now: sessions in their grace run on the workers.
        drop(self.workers);
    }
}

/// The routes: exec and attach (upgrades, recorded as the caller's grant says), port-forward,
/// everything else forwarded as it arrives; `server.rs` calls this for every request of a
/// connection, with no router between.
///
/// Which handler serves a request is decided the way the API server decides what a request is
/// (`requestinfo`, on the decoded path), not by matching path text: `pods/demo%2Fexec` is the
/// exec subresource to the API server, so it is one to the proxy too, and gets recorded.
///
/// `lane` is the client connection's own upstream connection, for requests forwarded as they are.
pub(crate) async fn route(
    state: State<Arc<App>>,
    connection: Extension<Arc<ConnectionContext>>,
    lane: Option<Arc<UpstreamLane>>,
    request: Request,
) -> Response {
    // Only the OIDC source reads the request's token: without it, no copy of it per request.
    let bearer = match state.identities.oidc() {
        Some(_) => identity::bearer_token(request.headers()),
        None => None,
    };
    identity::with_request_credentials(bearer, dispatch(state, connection, lane, request)).await
}

async fn dispatch(
    state: State<Arc<App>>,
    connection: Extension<Arc<ConnectionContext>>,
    lane: Option<Arc<UpstreamLane>>,
    request: Request,
) -> Response {
    // Sessions are boxed: their futures are large, and inline they would make every request's
    // future as large, copied whole each time it is moved (into axum's box among others).
    if exec::is_session_path(request.uri().path()) {
        Box::pin(exec::exec_or_attach(state, connection, request)).await
    } else if portforward::is_port_forward_path(request.uri().path()) {
        Box::pin(portforward::port_forward(state, connection, request)).await
    } else {
        forward::forward(state, connection, lane, request).await
    }
}

/// Builds the proxy `cli` describes, binds its listeners and serves in the background.
pub async fn start(cli: Cli) -> anyhow::Result<RunningProxy> {
    let env = |key: &str| std::env::var(key).ok();
    let mode = mode::resolve_mode(cli.mode, &env).map_err(anyhow::Error::msg)?;
    let proxy_protocol = cli.proxy_protocol_sources()?;
    let identity_sources = cli.identity_sources()?;
    let policy = policy_store(&cli)?;
    let certificates = certificate_source(&cli, &identity_sources, policy.clone())?;
    let oidc = oidc_source(&cli, &identity_sources, policy)?;
    if mode == Mode::NoAuth && oidc.is_some() {
        anyhow::bail!(
            "--identity oidc needs --mode auth: in noauth mode callers' Authorization headers, the tokens, would be passed upstream"
        );
    }
    let upstream_config = upstream::config::discover(
        cli.upstream_kubeconfig.as_deref(),
        cli.upstream_context.as_deref(),
        &env,
    )?;
    let lane_limit = usize::try_from(cli.max_upstream_connections).unwrap_or(usize::MAX);
    let upstream = upstream::Upstream::new(&upstream_config, mode, lane_limit)
        .with_context(|| format!("upstream from {}", upstream_config.source))?;
    if mode == Mode::Auth
        && upstream_config.credential == upstream::config::Credential::None
        && upstream_config.tls.client_identity.is_none()
    {
        tracing::warn!("auth mode but the upstream kubeconfig has no credentials: impersonation will be refused upstream");
    }
    let localapi = LocalApiClient::new(cli.localapi_socket.clone());
    let serving = Arc::new(serving_cert(&cli, &localapi).await?);
    let client_verifier = certificates.as_ref().map(|source| {
        Arc::new(identity::ReloadingVerifier(source.ca.clone()))
            as Arc<dyn rustls::server::danger::ClientCertVerifier>
    });
    let tls_config = serving.server_config(client_verifier)?;

    let destination = event_destination(&localapi).await;
    let metrics = Arc::new(metrics::Metrics::default());
    let app = Arc::new(App {
        mode,
        identities: identity::Identities::new(
            identity_sources.clone(),
            identity_cache::IdentityCache::new(localapi.clone(), cli.identity_ttl),
            certificates,
        )
        .with_oidc(oidc),
        upstream_handshake_timeout: cli.upstream_handshake_timeout,
        upstream_lanes: cli.upstream_connections == crate::cli::UpstreamConnections::PerClient,
        sessions_per_caller: (cli.max_sessions_per_caller > 0)
            .then(|| crate::caller_limit::CallerLimit::new(cli.max_sessions_per_caller)),
        localapi,
        upstream,
        metrics,
        recorder: recorder_client::Recorder::new(recorder_client::RecorderConfig::default()),
        events: Arc::new(api_events::ApiEvents::new(
            cli.event_body_limit,
            cli.api_response_events,
            destination,
        )),
        recording_notice: cli.recording_notice.clone().filter(|text| !text.is_empty()),
        sessions: sessions::Sessions::new(sessions::SessionLimits {
            idle: cli.session_idle_timeout,
            max_duration: cli.session_max_duration,
        }),
    });

    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("--listen {}", cli.listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(cli.metrics_listen)
        .await
        .with_context(|| format!("--metrics-listen {}", cli.metrics_listen))?;
    let listen = listener.local_addr()?;
    let metrics_listen = metrics_listener.local_addr()?;
    tracing::info!(
        %listen,
        %metrics_listen,
        mode = %mode,
        upstream = %upstream_config.server,
        upstream_source = %upstream_config.source,
        identity_sources = ?identity_sources,
        identity_source = %cli.localapi_socket.display(),
        "kube-auth-proxy serving"
    );

    let (shutdown, shutdown_rx) = watch::channel(false);
    tokio::spawn(keep_cert_current(
        serving.clone(),
        cli.tls_from_tailscale.then(|| app.localapi.clone()),
        shutdown_rx.clone(),
    ));
    if app.identities.certificates().is_some() || app.identities.oidc().is_some() {
        tokio::spawn(keep_identity_files_current(
            app.clone(),
            shutdown_rx.clone(),
        ));
    }
    let mut metrics_shutdown = shutdown_rx.clone();
    let metrics_router = health::router(app.clone());
    tokio::spawn(async move {
        let served = axum::serve(metrics_listener, metrics_router)
            .with_graceful_shutdown(async move {
                let _ = metrics_shutdown.changed().await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "metrics listener failed");
        }
    });
    let limits = server::ConnectionLimits {
        max_connections: cli.max_connections.max(1),
        max_connections_per_caller: cli.max_connections_per_caller.max(1),
        header_timeout: cli.header_timeout,
        shutdown_grace: cli.shutdown_grace,
    };
    let worker_count = match cli.worker_threads {
        Some(threads) => usize::from(threads),
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let workers = Arc::new(
        crate::workers::ConnectionWorkers::start(worker_count)
            .context("starting the connection workers")?,
    );
    tracing::debug!(workers = workers.len(), "connection worker threads started");
    let service = server::ConnectionService {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls_config)),
        workers: workers.clone(),
    };
    let served = tokio::spawn(server::serve(
        listener,
        service,
        app.clone(),
        limits,
        proxy_protocol.map(server::ProxyProtocol::new),
        shutdown_rx,
    ));
    Ok(RunningProxy {
        listen,
        metrics_listen,
        shutdown,
        served,
        app,
        shutdown_grace: cli.shutdown_grace,
        workers,
    })
}

/// The policy file (`--policy`), read now (unusable is a start-up error); the certificate and
/// OIDC sources share it.
fn policy_store(cli: &Cli) -> anyhow::Result<Option<Arc<identity::PolicyStore>>> {
    Ok(cli
        .policy
        .clone()
        .map(identity::load_policy)
        .transpose()?
        .map(Arc::new))
}

/// The OIDC identity source, when `--identity` names it: the issuer, its keys (the JWK set file
/// read now; fetched keys are fetched at the first request) and the claim mapping.
fn oidc_source(
    cli: &Cli,
    sources: &[IdentityArg],
    policy: Option<Arc<identity::PolicyStore>>,
) -> anyhow::Result<Option<identity::OidcSource>> {
    let (true, Some(issuer), Some(client_id)) = (
        sources.contains(&IdentityArg::Oidc),
        &cli.oidc_issuer_url,
        &cli.oidc_client_id,
    ) else {
        return Ok(None);
    };
    let keys = match &cli.oidc_jwks_file {
        Some(path) => identity::Jwks::File(identity::load_jwks_file(path.clone())?),
        None => identity::Jwks::Discovery(identity::Discovery::new(
            issuer,
            cli.oidc_ca_file.as_deref(),
        )?),
    };
    let mapping = identity::ClaimMapping::new(
        issuer,
        &cli.oidc_username_claim,
        cli.oidc_username_prefix.as_deref(),
        cli.oidc_groups_claim.as_deref(),
        cli.oidc_groups_prefix.as_deref(),
    );
    tracing::info!(
        issuer,
        client_id,
        jwks_file = ?keys.file().map(|f| f.path().display().to_string()),
        username_claim = mapping.username_claim,
        username_prefix = mapping.username_prefix,
        groups_claim = ?mapping.groups_claim,
        groups_prefix = mapping.groups_prefix,
        policy = ?policy.as_ref().map(|p| p.path().display().to_string()),
        default_allow = cli.policy_default_allow,
        "OIDC identities enabled"
    );
    Ok(Some(identity::OidcSource {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        keys,
        mapping,
        policy,
        allow_unmatched: cli.policy_default_allow,
    }))
}

/// The client-certificate identity source, when `--identity` names it: the CA, read now
/// (unusable is a start-up error), and the policy file.
fn certificate_source(
    cli: &Cli,
    sources: &[IdentityArg],
    policy: Option<Arc<identity::PolicyStore>>,
) -> anyhow::Result<Option<identity::CertificateSource>> {
    let (true, Some(ca)) = (sources.contains(&IdentityArg::ClientCert), &cli.client_ca) else {
        return Ok(None);
    };
    let ca = Arc::new(identity::load_client_ca(ca.clone())?);
    tracing::info!(
        client_ca = %ca.path().display(),
        policy = ?policy.as_ref().map(|p| p.path().display().to_string()),
        policy_rules = policy.as_ref().map_or(0, |p| p.current().rules().len()),
        default_allow = cli.policy_default_allow,
        "client certificate identities enabled"
    );
    if cli.policy_default_allow {
        tracing::warn!("--policy-default-allow: certificate callers no policy rule matches go upstream as themselves");
    }
    Ok(Some(identity::CertificateSource {
        ca,
        policy,
        allow_unmatched: cli.policy_default_allow,
    }))
}

/// Re-reads `--client-ca`, `--policy` and `--oidc-jwks-file` when they change, until shutdown. A
/// changed file that cannot be used keeps the one in force, and is logged (and the first two
/// counted) once per change.
async fn keep_identity_files_current(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(IDENTITY_FILE_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Some(file) = app.identities.oidc().and_then(|oidc| oidc.keys.file()) {
            match file.reload_if_changed() {
                Ok(true) => tracing::info!(
                    jwks_file = %file.path().display(),
                    keys = file.current().len(),
                    "OIDC JWK set file reloaded"
                ),
                Ok(false) => {}
                Err(error) => tracing::warn!(
                    jwks_file = %file.path().display(),
                    "OIDC JWK set file not reloaded, keeping the current keys: {error:#}"
                ),
            }
        }
        if let Some(source) = app.identities.certificates() {
            reload_client_ca(&app, source);
        }
        let Some(policy) = app.identities.policy() else {
            continue;
        };
        match policy.reload_if_changed() {
            Ok(true) => tracing::info!(
                policy = %policy.path().display(),
                rules = policy.current().rules().len(),
                "policy file reloaded"
            ),
            Ok(false) => {}
            Err(error) => {
                app.metrics.policy_reload_failed();
                tracing::warn!(
                    policy = %policy.path().display(),
                    "policy file not reloaded, keeping the last good one: {error:#}"
                );
            }
        }
    }
}

/// Re-reads `--client-ca` if it changed.
fn reload_client_ca(app: &App, source: &identity::CertificateSource) {
    match source.ca.reload_if_changed() {
        Ok(true) => {
            tracing::info!(client_ca = %source.ca.path().display(), "client CA reloaded")
        }
        Ok(false) => {}
        Err(error) => {
            app.metrics.client_ca_reload_failed();
            tracing::warn!(
                client_ca = %source.ca.path().display(),
                "client CA not reloaded, keeping the current one: {error:#}"
            );
        }
    }
}

/// This proxy's node as API events name it (`destination`), from tailscaled's status. Events are
/// still sent when it cannot be learnt, with an empty destination.
async fn event_destination(localapi: &LocalApiClient) -> recorder_client::EventDestination {
    match tokio::time::timeout(std::time::Duration::from_secs(5), localapi.status()).await {
        Ok(Ok(status)) => {
            let node = status.self_status.unwrap_or_default();
            recorder_client::EventDestination {
                node: node.dns_name.trim_end_matches('.').to_owned(),
                node_id: node.id,
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot learn this node's name from tailscaled; API events will have an empty destination");
            recorder_client::EventDestination::default()
        }
        Err(_) => {
            tracing::warn!("tailscaled's status did not answer in 5s; API events will have an empty destination");
            recorder_client::EventDestination::default()
        }
    }
}

/// The serving certificate from exactly one of the TLS flags.
async fn serving_cert(cli: &Cli, localapi: &LocalApiClient) -> anyhow::Result<ServingCert> {
    let chosen = [
        cli.tls_cert.is_some(),
        cli.tls_from_tailscale,
        cli.tls_self_signed,
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if chosen != 1 {
        anyhow::bail!(
            "choose exactly one of --tls-cert/--tls-key, --tls-from-tailscale or --tls-self-signed ({chosen} given)"
        );
    }
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        return ServingCert::from_files(cert.clone(), key.clone());
    }
    if cli.tls_from_tailscale {
        let (cert, key) = tailscale_cert(localapi).await?;
        return ServingCert::from_pem(&cert, &key);
    }
    tracing::warn!("serving a self-signed certificate (--tls-self-signed): for development only");
    ServingCert::self_signed(&[])
}

/// The node's certificate from tailscaled, for its first certificate domain.
async fn tailscale_cert(localapi: &LocalApiClient) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let status = localapi
        .status()
        .await
        .context("--tls-from-tailscale: asking tailscaled for this node's name")?;
    let domain = status.cert_domains.first().ok_or_else(|| {
        anyhow::anyhow!(
            "--tls-from-tailscale: the tailnet offers this node no certificate domains (enable HTTPS certificates in the tailnet)"
        )
    })?;
    let pair = localapi
        .cert_pair(domain)
        .await
        .with_context(|| format!("--tls-from-tailscale: fetching the certificate for {domain}"))?;
    Ok((pair.cert_pem, pair.key_pem))
}

/// Re-reads certificate files when they change, or re-fetches the tailscaled certificate
/// periodically, until shutdown. Failures keep the current certificate and are logged.
async fn keep_cert_current(
    serving: Arc<ServingCert>,
    tailscale: Option<LocalApiClient>,
    mut shutdown: watch::Receiver<bool>,
) {
    let period = match (&tailscale, serving.watches_files()) {
        (Some(_), _) => TAILSCALE_CERT_REFRESH,
        (None, true) => CERT_FILE_POLL,
        (None, false) => return,
    };
    let mut ticks = tokio::time::interval(period);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let outcome = match &tailscale {
            Some(localapi) => match tailscale_cert(localapi).await {
                Ok((cert, key)) => serving.replace(&cert, &key).map(|()| true),
                Err(error) => Err(error),
            },
            None => serving.reload_if_changed(),
        };
        match outcome {
            Ok(true) => tracing::info!("serving certificate reloaded"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(
                    "serving certificate not reloaded, keeping the current one: {error:#}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async function with four arguments returns.
    fn future_size<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's handling is one future, moved (copied whole) into axum's box and between
    /// frames. Rare and large parts (exec and port-forward sessions, identity lookups, event
    /// recording, opening an upstream connection) are boxed where they start, so that an
    /// ordinary request does not copy kilobytes it never uses: the route's future was 14.8 KB
    /// before, 3.6 KB after.
    #[test]
    fn an_ordinary_request_future_stays_small() {
        const LIMIT: usize = 4096;
        for (name, size) in [
            ("route", future_size(route)),
            ("dispatch", future_size(dispatch)),
            ("forward", future_size(forward::forward)),
        ] {
            assert!(
                size <= LIMIT,
                "{name}'s future is {size} bytes (limit {LIMIT})"
            );
        }
    }
}
