//! An upstream serving a self-signed CA certificate, trusted as itself.
//!
//! `openssl req -x509` makes certificates with `basicConstraints CA:TRUE` by default, and many
//! hand-made clusters serve one, trusted through the kubeconfig's `certificate-authority(-data)`.
//! kubectl (Go's `crypto/x509`) accepts that: a presented certificate that is itself in the root
//! pool is a complete chain. webpki refuses any CA certificate as an end entity
//! (`CaUsedAsEndEntity`), so the proxy could not reach a server kubectl reaches.
//!
//! Exactly that case is accepted here, nothing looser: webpki must have refused the certificate
//! for being a CA and nothing else (it checks validity before basic constraints, so the
//! certificate is within its validity period), the certificate must be byte for byte one of the
//! configured trust anchors, and it must be valid for the server's name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The upstream's certificate verifier: webpki over the kubeconfig's CA bundle, also accepting a
/// trusted self-signed CA as the end entity, and checking the kubeconfig's `tls-server-name`
/// instead of the URL's host when one is set.
#[derive(Debug)]
pub(crate) struct TrustedSelfSignedCa {
    /// The webpki verifier over the same anchors.
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    /// The configured trust anchors (the kubeconfig's CA bundle), DER.
    pub(crate) anchors: Vec<CertificateDer<'static>>,
    /// The name to verify instead of the URL's host (kubeconfig `tls-server-name`).
    pub(crate) server_name: Option<ServerName<'static>>,
}

impl ServerCertVerifier for TrustedSelfSignedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let server_name = self.server_name.as_ref().unwrap_or(server_name);
        let refusal = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refusal) => refusal,
        };
        if !is_ca_used_as_end_entity(&refusal)
            || !self
                .anchors
                .iter()
                .any(|anchor| anchor.as_ref() == end_entity.as_ref())
        {
            return Err(refusal);
        }
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether webpki refused the certificate only for being a CA.
fn is_ca_used_as_end_entity(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::client::WebPkiServerVerifier;
    use rustls::RootCertStore;

    fn self_signed(
        names: &[&str],
        ca: bool,
        days: std::ops::Range<i64>,
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let today = time_now();
        params.not_before = today + time::Duration::days(days.start);
        params.not_after = today + time::Duration::days(days.end);
        params.self_signed(&key).expect("cert").der().clone()
    }

    fn time_now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn verifier(anchors: &[&CertificateDer<'static>]) -> TrustedSelfSignedCa {
        let provider = super::super::tls::provider();
        let mut roots = RootCertStore::empty();
        for anchor in anchors {
            roots.add((*anchor).clone()).expect("anchor");
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
        TrustedSelfSignedCa {
            inner,
            anchors: anchors.iter().map(|a| (*a).clone()).collect(),
            server_name: None,
        }
    }

    fn verify(verifier: &TrustedSelfSignedCa, cert: &CertificateDer<'_>, name: &str) -> bool {
        let name = ServerName::try_from(name.to_string()).expect("name");
        verifier
            .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_trusted_self_signed_ca_is_accepted_for_its_names_only() {
        let served = self_signed(&["localhost", "127.0.0.1"], true, -1..30);
        let trusting = verifier(&[&served]);
        assert!(verify(&trusting, &served, "localhost"));
        assert!(verify(&trusting, &served, "127.0.0.1"));
        assert!(
            !verify(&trusting, &served, "example.com"),
            "a name it does not hold"
        );
    }

    #[test]
    fn a_configured_server_name_is_checked_instead_of_the_host() {
        let served = self_signed(&["apiserver.internal"], true, -1..30);
        let mut trusting = verifier(&[&served]);
        assert!(!verify(&trusting, &served, "127.0.0.1"));
        trusting.server_name = Some(ServerName::try_from("apiserver.internal").expect("name"));
        assert!(verify(&trusting, &served, "127.0.0.1"));
    }

    #[test]
    fn anything_else_is_refused() {
        let served = self_signed(&["localhost"], true, -1..30);
        let foreign = self_signed(&["localhost"], true, -1..30);
        assert!(
            !verify(&verifier(&[&foreign]), &served, "localhost"),
            "a self-signed CA that is not the configured one"
        );
        let expired = self_signed(&["localhost"], true, -30..-1);
        assert!(
            !verify(&verifier(&[&expired]), &expired, "localhost"),
            "the configured one, expired"
        );
        let not_yet = self_signed(&["localhost"], true, 1..30);
        assert!(
            !verify(&verifier(&[&not_yet]), &not_yet, "localhost"),
            "the configured one, not yet valid"
        );
    }
}
