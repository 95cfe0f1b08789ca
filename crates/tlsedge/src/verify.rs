//! The certificate verifier that trusts any server certificate: `insecure-skip-tls-verify`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// **Insecure: accepts every server certificate.** A [`ServerCertVerifier`] for kubeconfig's
/// `insecure-skip-tls-verify: true` and for tests and benchmarks against a self-signed server on
/// the loopback interface, and for nothing else.
///
/// It does not check the certificate's issuer, validity period, name or revocation, so anyone
/// on the path can present their own certificate and read or change the traffic. What it still
/// checks is the handshake signature, with the provider's signature algorithms: the peer must
/// hold the private key of the certificate it presented, so the session is at least bound to
/// that key.
///
/// ```
/// use std::sync::Arc;
/// use tlsedge::verify::AnyServerCertificate;
///
/// let provider = Arc::new(rustls::crypto::ring::default_provider());
/// let config = rustls::ClientConfig::builder_with_provider(provider.clone())
///     .with_safe_default_protocol_versions()
///     .expect("the provider supports the default versions")
///     .dangerous()
///     .with_custom_certificate_verifier(Arc::new(AnyServerCertificate::new(provider)))
///     .with_no_client_auth();
/// # let _ = config;
/// ```
#[derive(Debug)]
pub struct AnyServerCertificate {
    provider: Arc<CryptoProvider>,
}

impl AnyServerCertificate {
    /// Accepts any certificate; verifies handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self { provider }
    }
}

impl ServerCertVerifier for AnyServerCertificate {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
