//! The certificate the proxy serves, and keeping it current.
//!
//! Three sources: PEM files (re-read when they change, so cert-manager or a renewal job can rotate them
//! without a restart), tailscaled (the node's `*.ts.net` certificate via LocalAPI, refreshed
//! periodically; tailscaled renews it), or a self-signed certificate for development.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::upstream::token::FileStamp;

/// A certificate resolver whose certificate can be replaced while serving.
#[derive(Debug)]
pub(crate) struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<CertFiles>,
}

#[derive(Debug)]
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    seen: Mutex<(FileStamp, FileStamp)>,
}

impl ServingCert {
    /// Serves `--tls-cert` / `--tls-key`, read now (a bad pair is a start-up error).
    pub(crate) fn from_files(cert: PathBuf, key: PathBuf) -> anyhow::Result<ServingCert> {
        let stamps = (FileStamp::of(&cert)?, FileStamp::of(&key)?);
        let certified = load_pair(&std::fs::read(&cert)?, &std::fs::read(&key)?).map_err(|e| {
            anyhow::anyhow!(
                "--tls-cert {} / --tls-key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
        Ok(ServingCert {
            current: RwLock::new(Arc::new(certified)),
            files: Some(CertFiles {
                cert,
                key,
                seen: Mutex::new(stamps),
            }),
        })
    }

    /// Serves a fixed PEM pair (from tailscaled or generated).
    pub(crate) fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<ServingCert> {
        Ok(ServingCert {
            current: RwLock::new(Arc::new(load_pair(cert_pem, key_pem)?)),
            files: None,
        })
    }

    /// A self-signed certificate for `localhost`, `127.0.0.1`, `::1` and the given extra names.
    pub(crate) fn self_signed(extra_names: &[String]) -> anyhow::Result<ServingCert> {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        names.extend(extra_names.iter().cloned());
        let generated = rcgen::generate_simple_self_signed(names)?;
        ServingCert::from_pem(
            generated.cert.pem().as_bytes(),
            generated.key_pair.serialize_pem().as_bytes(),
        )
    }

    /// Replaces the certificate (tailscaled refresh).
    pub(crate) fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<()> {
        let certified = load_pair(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// Re-reads the files if either changed. Returns whether a new certificate is now served. A pair
    /// that fails to load (e.g. caught between writing the certificate and the key) keeps the old one
    /// and is retried next time.
    pub(crate) fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        let stamps = (FileStamp::of(&files.cert)?, FileStamp::of(&files.key)?);
        let mut seen = files.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == stamps {
            return Ok(false);
        }
        let certified = load_pair(&std::fs::read(&files.cert)?, &std::fs::read(&files.key)?)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        *seen = stamps;
        Ok(true)
    }

    /// Whether the certificate comes from files that may change.
    pub(crate) fn watches_files(&self) -> bool {
        self.files.is_some()
    }

    /// The certificate currently served.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A rustls server config serving this certificate with ALPN `http/1.1` only (SPDY upgrades cannot
    /// run over HTTP/2, and kubectl would pick h2 if offered). With `client_verifier`, clients may
    /// present a certificate, which it verifies (`--identity client-cert`).
    pub(crate) fn server_config(
        self: &Arc<Self>,
        client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    ) -> anyhow::Result<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(crate::upstream::tls::provider())
            .with_safe_default_protocol_versions()?;
        let builder = match client_verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn load_pair(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in the PEM data");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| anyhow::anyhow!("key: {e}"))?;
    let signing_key = crate::upstream::tls::provider()
        .key_provider
        .load_private_key(key)?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified
        .keys_match()
        .map_err(|e| anyhow::anyhow!("certificate and key do not match: {e}"))?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let generated =
            rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("generate");
        (generated.cert.pem(), generated.key_pair.serialize_pem())
    }

    #[test]
    fn files_are_reloaded_when_they_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (cert, key) = pair("first.example");
        std::fs::write(&cert_path, &cert).expect("write");
        std::fs::write(&key_path, &key).expect("write");
        let serving = ServingCert::from_files(cert_path.clone(), key_path.clone()).expect("load");
        let before = serving.current().cert[0].clone();
        assert!(
            !serving.reload_if_changed().expect("check"),
            "unchanged files reload nothing"
        );

        let (cert2, key2) = pair("second.example");
        // Write-and-rename, as Kubernetes secret volumes and renewal tools do.
        std::fs::write(dir.path().join("new.crt"), &cert2).expect("write");
        std::fs::write(dir.path().join("new.key"), &key2).expect("write");
        std::fs::rename(dir.path().join("new.crt"), &cert_path).expect("rename");
        std::fs::rename(dir.path().join("new.key"), &key_path).expect("rename");
        assert!(serving.reload_if_changed().expect("reload"));
        assert_ne!(serving.current().cert[0], before);
    }

    #[test]
    fn mismatched_pair_is_refused() {
        let (cert, _) = pair("a.example");
        let (_, key) = pair("b.example");
        let err = ServingCert::from_pem(cert.as_bytes(), key.as_bytes()).expect_err("mismatch");
        assert!(err.to_string().contains("do not match"), "{err}");
        assert!(ServingCert::from_pem(b"", key.as_bytes()).is_err());
    }

    #[test]
    fn half_written_pair_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (cert, key) = pair("first.example");
        std::fs::write(&cert_path, &cert).expect("write");
        std::fs::write(&key_path, &key).expect("write");
        let serving = ServingCert::from_files(cert_path.clone(), key_path).expect("load");
        let before = serving.current().cert[0].clone();
        let (cert2, _) = pair("second.example");
        std::fs::write(&cert_path, cert2).expect("write");
        assert!(serving.reload_if_changed().is_err());
        assert_eq!(serving.current().cert[0], before);
    }
}
