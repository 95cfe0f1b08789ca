//! A throwaway PKI: a CA, a server certificate for `localhost`/`127.0.0.1`/`::1`, and the
//! configured client certificates (CN = user, O = groups), all signed by the CA.
//!
//! The server certificate may instead be self-signed with `CA:TRUE`, as `openssl req -x509` makes
//! by default and as many hand-made clusters serve: clients then trust that certificate itself.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::config::ClientCertConfig;

/// A client certificate and its key, PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertPem {
    /// `-----BEGIN CERTIFICATE-----` ...
    pub cert_pem: String,
    /// `-----BEGIN PRIVATE KEY-----` ... (PKCS#8)
    pub key_pem: String,
}

/// Everything TLS needs, generated at start.
#[derive(Debug)]
pub(crate) struct Pki {
    /// What clients must trust to verify the server (`ca.crt`): the CA, or the self-signed
    /// server certificate itself.
    pub(crate) trust_pem: String,
    pub(crate) ca_der: CertificateDer<'static>,
    pub(crate) server_cert: CertificateDer<'static>,
    pub(crate) server_key: PrivateKeyDer<'static>,
    /// `(name, certificate)` in configuration order.
    pub(crate) client_certs: Vec<(String, ClientCertPem)>,
}

/// The O attribute a second time: rcgen 0.13 keeps one value per attribute type, so the second
/// group is written under the same OID (2.5.4.10) spelt as a custom type.
fn organization_types() -> [DnType; 2] {
    [
        DnType::OrganizationName,
        DnType::CustomDnType(vec![2, 5, 4, 10]),
    ]
}

impl Pki {
    pub(crate) fn generate(
        clients: &[ClientCertConfig],
        self_signed_server: bool,
    ) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "testkit-apiserver-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "testkit-apiserver");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = if self_signed_server {
            self_signed_ca_params(&mut server_params);
            server_params.self_signed(&server_key)?
        } else {
            server_params.signed_by(&server_key, &ca, &ca_key)?
        };

        let mut client_certs = Vec::new();
        for client in clients {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, client.user.as_str());
            if client.groups.len() > 2 {
                anyhow::bail!(
                    "client certificate {:?}: at most two groups are supported",
                    client.name
                );
            }
            for (group, ty) in client.groups.iter().zip(organization_types()) {
                params.distinguished_name.push(ty, group.as_str());
            }
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            client_certs.push((
                client.name.clone(),
                ClientCertPem {
                    cert_pem: cert.pem(),
                    key_pem: key.serialize_pem(),
                },
            ));
        }

        Ok(Pki {
            trust_pem: if self_signed_server {
                server.pem()
            } else {
                ca.pem()
            },
            ca_der: ca.der().clone(),
            server_cert: server.der().clone(),
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            client_certs,
        })
    }

    /// Writes `ca.crt` and `NAME.crt`/`NAME.key` for each client certificate into `dir`.
    pub(crate) fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("--pki-dir {}: {e}", dir.display()))?;
        let write = |name: String, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
        };
        write("ca.crt".to_owned(), &self.trust_pem)?;
        for (name, pem) in &self.client_certs {
            write(format!("{name}.crt"), &pem.cert_pem)?;
            write(format!("{name}.key"), &pem.key_pem)?;
        }
        Ok(())
    }
}

/// Makes `params` a self-signed CA certificate (`CA:TRUE`, may sign certificates), as
/// `openssl req -x509` does by default.
fn self_signed_ca_params(params: &mut CertificateParams) {
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
}

/// A self-signed `CA:TRUE` certificate for `localhost`, `127.0.0.1` and `::1`, PEM-encoded, that no
/// stand-in serves: for tests that a client refuses a certificate it was not told to trust.
pub fn foreign_self_signed_ca_pem() -> anyhow::Result<String> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "testkit-foreign");
    self_signed_ca_params(&mut params);
    Ok(params.self_signed(&key)?.pem())
}
