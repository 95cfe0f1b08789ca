//! rustls client configuration for the upstream API server.
//!
//! One crypto provider (ring). ALPN offers only `http/1.1`: exec and attach upgrade the connection,
//! which HTTP/2 cannot do for SPDY. Trust comes from the kubeconfig's CA only, as with client-go when a
//! CA is given; an https upstream without a CA must opt into `insecure-skip-tls-verify` explicitly.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tlsedge::verify::AnyServerCertificate;

use super::config::UpstreamTls;
use super::self_signed_ca::TrustedSelfSignedCa;

/// The ring provider, shared by every TLS config in the process.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client config; `with_client_identity` is false in noauth mode, where the proxy presents
/// no credentials of its own.
pub(crate) fn client_config(
    tls: &UpstreamTls,
    with_client_identity: bool,
) -> anyhow::Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        // Any certificate; handshake signatures are still checked with the provider's algorithms.
        Arc::new(AnyServerCertificate::new(provider.clone()))
    } else {
        let ca = tls.ca.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "the https upstream has no certificate-authority: set certificate-authority(-data) or insecure-skip-tls-verify in the kubeconfig"
            )
        })?;
        let pem = ca.read()?;
        let anchors = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("upstream CA: {e}"))?;
        if anchors.is_empty() {
            anyhow::bail!("upstream CA bundle holds no certificate");
        }
        let mut roots = RootCertStore::empty();
        for anchor in &anchors {
            roots.add(anchor.clone())?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()?;
        // kubectl accepts a self-signed CA certificate served as itself; so does the proxy.
        let server_name = match &tls.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| anyhow::anyhow!("tls-server-name {name:?}: {e}"))?,
            ),
            None => None,
        };
        Arc::new(TrustedSelfSignedCa {
            inner: webpki,
            anchors,
            server_name,
        })
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&tls.client_identity, with_client_identity) {
        (Some(identity), true) => {
            let cert_pem = identity.cert.read()?;
            let key_pem = identity.key.read()?;
            let certs = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| anyhow::anyhow!("client key: {e}"))?;
            builder.with_client_auth_cert(certs, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
