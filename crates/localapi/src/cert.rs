//! The TLS certificate pair tailscaled issues for the node's own names, and the splitting of the
//! `?type=pair` body into its key and certificate parts.

use std::fmt;

use crate::LocalApiError;

/// A private key and its certificate chain, both PEM encoded (RFC 7468).
///
/// `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The private key: exactly one `PRIVATE KEY` block (PKCS #8, or a `EC`/`RSA` legacy block).
    pub key_pem: Vec<u8>,
    /// The certificate chain: one or more `CERTIFICATE` blocks, leaf first.
    pub cert_pem: Vec<u8>,
}

impl fmt::Debug for CertPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertPair")
            .field(
                "key_pem",
                &format_args!("<{} bytes redacted>", self.key_pem.len()),
            )
            .field("cert_pem", &String::from_utf8_lossy(&self.cert_pem))
            .finish()
    }
}

impl CertPair {
    /// Splits a `GET /localapi/v0/cert/<domain>?type=pair` body: tailscaled writes the key PEM and
    /// then the certificate chain PEM (Go: `ipn/localapi` `serveKeyPair`).
    ///
    /// Go's client splits at the first `--\n--`; this reads the PEM blocks instead, so it also
    /// accepts CRLF line ends, and it rejects bodies that are not exactly one private key plus at
    /// least one certificate, unterminated blocks, and non-base64 block contents.
    pub(crate) fn from_pair_body(body: &[u8]) -> Result<Self, LocalApiError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| malformed("certificate pair is not UTF-8 text"))?;
        let mut key_pem = Vec::new();
        let mut key_blocks = 0usize;
        let mut cert_pem = Vec::new();
        let mut open: Option<(&str, String)> = None;
        for line in text.lines().map(|l| l.trim_end_matches('\r')) {
            match open.take() {
                None => {
                    if let Some(label) = pem_label(line, "BEGIN") {
                        open = Some((label, format!("{line}\n")));
                    } else if !line.trim().is_empty() {
                        return Err(malformed("text outside PEM blocks in certificate pair"));
                    }
                }
                Some((label, mut block)) => {
                    block.push_str(line);
                    block.push('\n');
                    if let Some(end) = pem_label(line, "END") {
                        if end != label {
                            return Err(malformed(format!(
                                "PEM block BEGIN {label} ends with END {end}"
                            )));
                        }
                        if label == "CERTIFICATE" {
                            cert_pem.extend_from_slice(block.as_bytes());
                        } else if label.ends_with("PRIVATE KEY") {
                            key_blocks += 1;
                            key_pem.extend_from_slice(block.as_bytes());
                        } else {
                            return Err(malformed(format!(
                                "unexpected PEM block {label:?} in certificate pair"
                            )));
                        }
                    } else if !line.bytes().all(is_base64) {
                        return Err(malformed(format!(
                            "PEM block {label} has non-base64 content"
                        )));
                    } else {
                        open = Some((label, block));
                    }
                }
            }
        }
        if let Some((label, _)) = open {
            return Err(malformed(format!("PEM block {label} is not terminated")));
        }
        if key_blocks != 1 {
            return Err(malformed(format!(
                "certificate pair has {key_blocks} private keys, want 1"
            )));
        }
        if cert_pem.is_empty() {
            return Err(malformed("certificate pair has no certificate"));
        }
        Ok(CertPair { key_pem, cert_pem })
    }
}

/// The label of a `-----BEGIN <label>-----` (or `END`) line.
fn pem_label<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    let rest = line
        .strip_prefix("-----")?
        .strip_prefix(kind)?
        .strip_prefix(' ')?;
    let label = rest.strip_suffix("-----")?;
    (!label.is_empty()).then_some(label)
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn malformed(message: impl Into<String>) -> LocalApiError {
    LocalApiError::Malformed(message.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\nAQ==\n-----END PRIVATE KEY-----\n";
    const LEAF: &str = "-----BEGIN CERTIFICATE-----\nMIIBLEAF\n-----END CERTIFICATE-----\n";
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBCA==\n-----END CERTIFICATE-----\n";

    #[test]
    fn splits_key_and_chain() {
        let pair = CertPair::from_pair_body(format!("{KEY}{LEAF}{CA}").as_bytes()).unwrap();
        assert_eq!(pair.key_pem, KEY.as_bytes());
        assert_eq!(pair.cert_pem, format!("{LEAF}{CA}").as_bytes());
    }

    #[test]
    fn accepts_crlf_and_legacy_key_labels() {
        let key = "-----BEGIN EC PRIVATE KEY-----\r\nMHcC\r\n-----END EC PRIVATE KEY-----\r\n";
        let body = format!("{key}{}", LEAF.replace('\n', "\r\n"));
        let pair = CertPair::from_pair_body(body.as_bytes()).unwrap();
        assert!(pair
            .key_pem
            .starts_with(b"-----BEGIN EC PRIVATE KEY-----\n"));
        assert_eq!(pair.cert_pem, LEAF.as_bytes());
    }

    #[test]
    fn rejects_bad_bodies() {
        let cases = [
            String::new(),
            "invalid domain".to_owned(),
            LEAF.to_owned(),
            KEY.to_owned(),
            format!("{KEY}{KEY}{LEAF}"),
            format!("{KEY}-----BEGIN CERTIFICATE-----\nMIIB\n"),
            format!("{KEY}-----BEGIN CERTIFICATE-----\nMI IB\n-----END CERTIFICATE-----\n"),
            format!("{KEY}-----BEGIN CERTIFICATE-----\nMIIB\n-----END PRIVATE KEY-----\n"),
            format!("{KEY}{LEAF}-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n"),
        ];
        for body in cases {
            let err = CertPair::from_pair_body(body.as_bytes()).unwrap_err();
            assert!(
                matches!(err, LocalApiError::Malformed(_)),
                "{body:?}: {err}"
            );
        }
        assert!(CertPair::from_pair_body(b"\xff\xfe").is_err());
    }

    #[test]
    fn debug_redacts_the_key() {
        let pair = CertPair::from_pair_body(format!("{KEY}{LEAF}").as_bytes()).unwrap();
        let shown = format!("{pair:?}");
        assert!(!shown.contains("MIGHAgEA"), "{shown}");
        assert!(shown.contains("MIIBLEAF"), "{shown}");
    }
}
