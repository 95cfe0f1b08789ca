//! TLS client certificates as an identity source (`--identity client-cert`, `--client-ca`).
//!
//! The handshake verifies a presented certificate against `--client-ca` (rustls'
//! `WebPkiClientVerifier`, client-auth usage); one that fails gets a TLS alert and no HTTP at all.
//! A client without a certificate still connects (`allow_unauthenticated`), so that Tailscale
//! callers can share the listener; such a connection is simply not identified by this source.
//!
//! As kube-apiserver's x509 authenticator reads a certificate, the user is the subject's common
//! name (the last CN, as Go's `pkix.Name` keeps it) and the groups are its organization (O)
//! values, in order. The subject is read here by hand (a few dozen lines of DER), since the
//! certificate itself has already been parsed and verified by webpki.
//!
//! The CA file is re-read when it changes. Every request re-verifies the connection's chain
//! against the CA in force and the current time, so a certificate that expires, or whose CA is
//! taken out of the file, stops working on connections that are already open too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capmodel::Principal;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// The certificate a connection's client presented and the handshake verified.
#[derive(Debug)]
pub(crate) struct ClientCertificate {
    /// The chain as presented, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// Who the leaf's subject names, or why it names nobody usable.
    principal: Result<Principal, String>,
}

impl ClientCertificate {
    /// The certificate of a finished handshake; `None` when the client presented none.
    pub(crate) fn from_handshake(
        chain: Option<&[CertificateDer<'_>]>,
    ) -> Option<ClientCertificate> {
        let chain = chain?;
        let leaf = chain.first()?;
        Some(ClientCertificate {
            principal: subject_principal(leaf),
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
        })
    }

    /// The identity the certificate's subject names.
    pub(crate) fn principal(&self) -> Result<&Principal, &str> {
        self.principal.as_ref().map_err(String::as_str)
    }
}

/// The trusted client CA (`--client-ca`), replaceable while serving; also the handshake's
/// client certificate verifier.
pub(crate) type ClientCa = super::reloadable::ReloadableFile<dyn ClientCertVerifier>;

/// Reads the client CA at `path` now (`--client-ca`): a file without a usable CA certificate is a
/// start-up error.
pub(crate) fn load_client_ca(path: PathBuf) -> anyhow::Result<ClientCa> {
    ClientCa::load("--client-ca", path, read_verifier)
}

impl ClientCa {
    /// Verifies `certificate` again, against the CA in force now and the current time.
    pub(crate) fn verify_now(&self, certificate: &ClientCertificate) -> Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = certificate.chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        self.current()
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
    }
}

/// A verifier trusting the CA certificates in the PEM file at `path`, letting clients without a
/// certificate through.
fn read_verifier(path: &Path) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let pem = std::fs::read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in the file");
    }
    let mut roots = RootCertStore::empty();
    for (index, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| anyhow::anyhow!("certificate {index} cannot be a trust anchor: {e}"))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::upstream::tls::provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The handshake's verifier: whichever CA is in force when the client's certificate arrives.
///
/// It sends no list of acceptable CAs (the list would have to outlive a CA reload), which TLS
/// allows; clients then offer their certificate whatever its issuer, and a foreign one fails
/// verification with an alert.
#[derive(Debug)]
pub(crate) struct ReloadingVerifier(pub(crate) Arc<ClientCa>);

impl ClientCertVerifier for ReloadingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current().supported_verify_schemes()
    }
}

/// Why a subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DerError(&'static str);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// The user (CN) and groups (O values, in order) of a certificate's subject, as kube-apiserver's
/// x509 authenticator reads them; an error for a subject without a CN, or one it cannot read.
pub(crate) fn subject_principal(cert: &[u8]) -> Result<Principal, String> {
    let (user, groups) =
        read_subject(cert).map_err(|e| format!("the certificate's subject cannot be read: {e}"))?;
    match user {
        Some(user) if !user.is_empty() => Ok(Principal { user, groups }),
        _ => Err("the certificate's subject has no common name (CN) to name a user".to_owned()),
    }
}

fn read_subject(cert: &[u8]) -> Result<(Option<String>, Vec<String>), DerError> {
    let mut input = cert;
    let certificate = expect(&mut input, 0x30)?;
    let mut certificate = certificate;
    let mut tbs = expect(&mut certificate, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        read_tlv(&mut tbs)?; // [0] version
    }
    expect(&mut tbs, 0x02)?; // serialNumber
    expect(&mut tbs, 0x30)?; // signature
    expect(&mut tbs, 0x30)?; // issuer
    expect(&mut tbs, 0x30)?; // validity
    let mut subject = expect(&mut tbs, 0x30)?;
    let (mut common_name, mut organizations) = (None, Vec::new());
    while !subject.is_empty() {
        let mut rdn = expect(&mut subject, 0x31)?;
        while !rdn.is_empty() {
            let mut attribute = expect(&mut rdn, 0x30)?;
            let oid = expect(&mut attribute, 0x06)?;
            let (tag, value) = read_tlv(&mut attribute)?;
            if oid == OID_COMMON_NAME {
                common_name = Some(directory_string(tag, value)?);
            } else if oid == OID_ORGANIZATION {
                organizations.push(directory_string(tag, value)?);
            }
        }
    }
    Ok((common_name, organizations))
}

/// A string attribute value, of the types Go's x509 parser reads.
fn directory_string(tag: u8, value: &[u8]) -> Result<String, DerError> {
    let invalid = DerError("an attribute value is not valid text of its string type");
    match tag {
        // UTF8String
        0x0c => String::from_utf8(value.to_vec()).map_err(|_| invalid),
        // NumericString, PrintableString, IA5String: ASCII
        0x12 | 0x13 | 0x16 if value.is_ascii() => Ok(value.iter().map(|b| *b as char).collect()),
        // T61String, read as Latin-1 as Go does
        0x14 => Ok(value.iter().map(|b| *b as char).collect()),
        // BMPString: UTF-16BE
        0x1e if value.len() % 2 == 0 => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| invalid)
        }
        0x12 | 0x13 | 0x16 | 0x1e => Err(invalid),
        _ => Err(DerError(
            "an attribute value has an unsupported string type",
        )),
    }
}

fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Result<&'a [u8], DerError> {
    let (found, value) = read_tlv(input)?;
    if found != tag {
        return Err(DerError("unexpected DER element"));
    }
    Ok(value)
}

/// One DER element (single-byte tags only, as X.509 uses them): its tag and contents.
fn read_tlv<'a>(input: &mut &'a [u8]) -> Result<(u8, &'a [u8]), DerError> {
    let truncated = DerError("truncated DER");
    let (&tag, rest) = input.split_first().ok_or(truncated.clone())?;
    let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(DerError("invalid DER length"));
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte))
    };
    if rest.len() < len {
        return Err(truncated);
    }
    let (value, after) = rest.split_at(len);
    *input = after;
    Ok((tag, value))
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };

    /// A test CA.
    pub(crate) struct Ca {
        pub(crate) cert: rcgen::Certificate,
        key: KeyPair,
    }

    /// A self-signed CA named `name`.
    pub(crate) fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A client certificate for `subject` signed by `ca`, valid now unless `expired`.
    pub(crate) fn client(
        ca: &Ca,
        subject: &[(DnType, DnValue)],
        expired: bool,
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in subject {
            params.distinguished_name.push(ty.clone(), value.clone());
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(10);
            params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        params
            .signed_by(&key, &ca.cert, &ca.key)
            .unwrap()
            .der()
            .clone()
    }

    pub(crate) fn utf8(text: &str) -> DnValue {
        DnValue::Utf8String(text.into())
    }

    #[test]
    fn the_user_is_the_cn_and_the_groups_are_the_o_values_in_order() {
        let ca = ca("test-ca");
        let cert = client(
            &ca,
            &[
                (DnType::OrganizationName, utf8("team-a")),
                (DnType::CommonName, utf8("carol")),
                (
                    DnType::CustomDnType(vec![2, 5, 4, 10]),
                    DnValue::PrintableString("devs".try_into().unwrap()),
                ),
                (DnType::OrganizationalUnitName, utf8("not-a-group")),
            ],
            false,
        );
        let principal = subject_principal(&cert).unwrap();
        assert_eq!(principal.user, "carol");
        assert_eq!(principal.groups, ["team-a", "devs"]);
    }

    #[test]
    fn string_types_and_missing_cn() {
        let ca = ca("test-ca");
        let cert = client(
            &ca,
            &[(
                DnType::CommonName,
                DnValue::BmpString("zoë".try_into().unwrap()),
            )],
            false,
        );
        assert_eq!(subject_principal(&cert).unwrap().user, "zoë");
        let cert = client(&ca, &[(DnType::OrganizationName, utf8("g"))], false);
        let error = subject_principal(&cert).unwrap_err();
        assert!(error.contains("no common name"), "{error}");
        assert!(subject_principal(b"\x30\x03\x02\x01").is_err());
        assert!(subject_principal(b"").is_err());
    }

    #[test]
    fn verification_follows_the_ca_file_and_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        let (trusted, foreign) = (ca("trusted"), ca("foreign"));
        std::fs::write(&path, trusted.cert.pem()).unwrap();
        let client_ca = load_client_ca(path.clone()).unwrap();
        let carol = [(DnType::CommonName, utf8("carol"))];
        let good = client(&trusted, &carol, false);
        let of = |der: &CertificateDer<'static>| {
            ClientCertificate::from_handshake(Some(std::slice::from_ref(der))).unwrap()
        };
        assert!(client_ca.verify_now(&of(&good)).is_ok());
        assert!(client_ca
            .verify_now(&of(&client(&trusted, &carol, true)))
            .is_err());
        let stranger = client(&foreign, &carol, false);
        assert!(client_ca.verify_now(&of(&stranger)).is_err());
        assert!(ClientCertificate::from_handshake(None).is_none());

        // Unchanged: nothing to do. Broken: the old CA stays. Replaced: the new one applies.
        assert!(!client_ca.reload_if_changed().unwrap());
        std::fs::write(dir.path().join("new"), "garbage").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(client_ca.reload_if_changed().is_err());
        assert!(
            !client_ca.reload_if_changed().unwrap(),
            "reported once per change"
        );
        assert!(client_ca.verify_now(&of(&good)).is_ok());
        std::fs::write(dir.path().join("new"), foreign.cert.pem()).unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(client_ca.reload_if_changed().unwrap());
        assert!(client_ca.verify_now(&of(&good)).is_err());
        assert!(client_ca.verify_now(&of(&stranger)).is_ok());

        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        let error = load_client_ca(empty).unwrap_err().to_string();
        assert!(error.contains("no certificate"), "{error}");
    }
}
