//! AnyServerCertificate in real handshakes: any certificate for any name is accepted, a
//! handshake signed with a key other than the certificate's is not.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, ClientConfig, ServerConfig, SupportedProtocolVersion};
use tlsedge::verify::AnyServerCertificate;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

struct SelfSigned {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn self_signed(names: &[&str], expired: bool) -> SelfSigned {
    let mut params = rcgen::CertificateParams::new(
        names
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<Vec<_>>(),
    )
    .expect("params");
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    SelfSigned {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

fn client(versions: &[&'static SupportedProtocolVersion]) -> ClientConfig {
    let provider = provider();
    ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCertificate::new(provider)))
        .with_no_client_auth()
}

/// A server presenting `cert` and signing its handshakes with `signing_key`.
fn server(cert: CertificateDer<'static>, signing_key: &PrivateKeyDer<'static>) -> ServerConfig {
    let provider = provider();
    let key = provider
        .key_provider
        .load_private_key(signing_key.clone_key())
        .expect("signing key");
    // CertifiedKey::new does not check that the key is the certificate's: here it may not be.
    let certified = CertifiedKey::new(vec![cert], key);
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(BOTH)
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
}

/// Runs one handshake over an in-memory pipe and sends a byte each way; the client's error if
/// it failed.
async fn handshake(
    client: ClientConfig,
    server: ServerConfig,
    name: ServerName<'static>,
) -> Result<(), std::io::Error> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let served = tokio::spawn(async move {
        let mut tls = acceptor.accept(server_io).await?;
        let mut byte = [0];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.shutdown().await
    });
    let connector = TlsConnector::from(Arc::new(client));
    let result = async {
        let mut tls = connector.connect(name, client_io).await?;
        tls.write_all(b"x").await?;
        let mut byte = [0];
        tls.read_exact(&mut byte).await?;
        assert_eq!(&byte, b"x");
        Ok(())
    }
    .await;
    if result.is_ok() {
        served.await.expect("server task").expect("server side");
    }
    result
}

fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

#[tokio::test]
async fn accepts_a_self_signed_certificate_for_any_name() {
    let served = self_signed(&["apiserver.example"], false);
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        for name in ["apiserver.example", "some.other.name", "127.0.0.1"] {
            let name = ServerName::try_from(name).expect("name").to_owned();
            handshake(
                client(versions),
                server(served.cert.clone(), &served.key),
                name.clone(),
            )
            .await
            .unwrap_or_else(|error| panic!("{name:?} over {versions:?}: {error}"));
        }
    }
}

#[tokio::test]
async fn accepts_an_expired_certificate() {
    let served = self_signed(&["apiserver.example"], true);
    let name = ServerName::try_from("apiserver.example").expect("name");
    handshake(client(BOTH), server(served.cert, &served.key), name)
        .await
        .expect("an expired certificate is accepted");
}

#[tokio::test]
async fn rejects_a_handshake_signed_with_another_key() {
    let presented = self_signed(&["apiserver.example"], false);
    let other = self_signed(&["apiserver.example"], false);
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let name = ServerName::try_from("apiserver.example").expect("name");
        let error = handshake(
            client(versions),
            server(presented.cert.clone(), &other.key),
            name,
        )
        .await
        .expect_err("the handshake signature is not the certificate's key's");
        assert_eq!(
            rustls_error(&error),
            Some(&rustls::Error::InvalidCertificate(
                CertificateError::BadSignature
            )),
            "over {versions:?}: {error}"
        );
    }
}

#[test]
fn offers_the_providers_signature_schemes() {
    use rustls::client::danger::ServerCertVerifier as _;
    let provider = provider();
    assert_eq!(
        AnyServerCertificate::new(provider.clone()).supported_verify_schemes(),
        provider
            .signature_verification_algorithms
            .supported_schemes()
    );
}
