//! rustls client configuration for the upstream API server.
//!
//! One crypto provider (ring). ALPN offers only `http/1.1`: exec and attach upgrade the connection,
//! which HTTP/2 cannot do for SPDY. Trust comes from the kubeconfig's CA only, as with client-go when a
//! CA is given; an https upstream without a CA must opt into `insecure-skip-tls-verify` explicitly.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

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
        Arc::new(NoVerification(provider.clone()))
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

/// `insecure-skip-tls-verify`: accepts any certificate but still checks handshake signatures, so the
/// session is at least bound to the key the server presented.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
