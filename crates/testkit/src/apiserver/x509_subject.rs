//! Reads the subject's CN and O attributes out of a DER certificate (RFC 5280 §4.1), which is all
//! the apiserver's x509 authenticator uses: CN is the user name, each O is a group.
//!
//! A deliberately small DER walker: the stand-in has no X.509 parsing crate, and the certificate
//! has already been verified by rustls, so only the subject needs finding. Any malformed input
//! yields `None`, never a panic.

/// The identity a client certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertSubject {
    pub(crate) common_name: String,
    pub(crate) organizations: Vec<String>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;
/// 2.5.4.3 commonName.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.4.10 organizationName.
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];

/// One DER element: tag, contents, and the bytes after it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of an element with the expected tag.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, contents, rest) = element(input)?;
    (t == tag).then_some((contents, rest))
}

/// Decodes the directory string types a certificate may use for CN and O.
fn directory_string(tag: u8, contents: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, TeletexString (treated as Latin-1-ish ASCII).
        0x0c | 0x13 | 0x16 | 0x14 => String::from_utf8(contents.to_vec()).ok(),
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = contents
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// The subject of a DER-encoded certificate.
pub(crate) fn cert_subject(der: &[u8]) -> Option<CertSubject> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    // version [0] EXPLICIT is optional.
    if tbs.first() == Some(&CONTEXT_0) {
        tbs = element(tbs)?.2;
    }
    let (_serial, tbs) = element(tbs).map(|(_, c, r)| (c, r))?;
    let (_signature, tbs) = expect(tbs, SEQUENCE)?;
    let (_issuer, tbs) = expect(tbs, SEQUENCE)?;
    let (_validity, tbs) = expect(tbs, SEQUENCE)?;
    let (mut rdns, _) = expect(tbs, SEQUENCE)?;
    let mut subject = CertSubject {
        common_name: String::new(),
        organizations: Vec::new(),
    };
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET)?;
        rdns = rest;
        while !set.is_empty() {
            let (attribute, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(attribute, OID)?;
            let (tag, contents, _) = element(value)?;
            let text = directory_string(tag, contents)?;
            if oid == OID_CN {
                // Go's pkix keeps the last CN when there are several.
                subject.common_name = text;
            } else if oid == OID_O {
                subject.organizations.push(text);
            }
        }
    }
    Some(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rcgen_subject() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "devs");
        params
            .distinguished_name
            .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]), "ops");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let subject = cert_subject(cert.der()).expect("parsed");
        assert_eq!(subject.common_name, "alice");
        assert_eq!(subject.organizations, ["devs", "ops"]);
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(cert_subject(&[]), None);
        assert_eq!(cert_subject(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(cert_subject(&[0x30, 0x03, 0x30, 0x01]), None);
    }
}
