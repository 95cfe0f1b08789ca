//! The recorder's Ed25519 key: a PKCS#8 private key in PEM (`-----BEGIN PRIVATE KEY-----`, as
//! `openssl genpkey -algorithm ed25519` writes it) and its public key beside it as
//! `<key>.pub`, a SubjectPublicKeyInfo in PEM (`-----BEGIN PUBLIC KEY-----`, as
//! `openssl pkey -pubout` writes it).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};

use super::chain_hash::{hex, sha256};
use super::SealError;

const PRIVATE_LABEL: &str = "PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";
/// DER of an Ed25519 SubjectPublicKeyInfo up to the key (RFC 8410 section 4).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The path of the public key beside `key`: `<key>.pub`.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The recorder's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the key at `path`, or creates it (mode 0600, never overwriting) when missing; writes
    /// `<path>.pub` when that is missing, and refuses a `<path>.pub` of another key.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let key_error = |reason: String| SealError::Key {
            path: path.to_owned(),
            reason,
        };
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                create_private_key(path)?;
                std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?
            }
            Err(error) => return Err(key_error(error.to_string())),
        };
        let der = pem_decode(&pem, PRIVATE_LABEL).map_err(key_error)?;
        // maybe_unchecked: also PKCS#8 v1 without the public key, as OpenSSL writes it.
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| key_error(format!("not an Ed25519 PKCS#8 private key: {e}")))?;
        let public = PublicKey::from_bytes(pair.public_key().as_ref())
            .map_err(|e| key_error(e.to_string()))?;
        let pub_path = public_key_path(path);
        match PublicKey::load(&pub_path) {
            Ok(existing) if existing == public => {}
            Ok(existing) => {
                return Err(key_error(format!(
                    "{} holds another key ({}) than the private key ({})",
                    pub_path.display(),
                    existing.key_id(),
                    public.key_id()
                )))
            }
            Err(SealError::Key { .. }) if !pub_path.exists() => {
                write_new(&pub_path, public.to_pem().as_bytes(), 0o644)
                    .map_err(|e| key_error(format!("{}: {e}", pub_path.display())))?;
            }
            Err(error) => return Err(error),
        }
        Ok(Self { pair, public })
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// An Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

fn create_private_key(path: &Path) -> Result<(), SealError> {
    let key_error = |reason: String| SealError::Key {
        path: path.to_owned(),
        reason,
    };
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|e| key_error(format!("cannot generate a key: {e}")))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| key_error(e.to_string()))?;
    }
    match write_new(
        path,
        pem_encode(PRIVATE_LABEL, pkcs8.as_ref()).as_bytes(),
        0o600,
    ) {
        Ok(()) => {
            tracing::info!(key = %path.display(), "created a signing key");
            Ok(())
        }
        // Another process created it first: use that one.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(key_error(error.to_string())),
    }
}

/// Writes a new file (never replacing one) with `mode`, fsynced.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// An Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl PublicKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| format!("an Ed25519 public key has 32 bytes, not {}", bytes.len()))
    }

    /// Reads a public key in PEM (SubjectPublicKeyInfo).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let key_error = |reason: String| SealError::Key {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        Self::from_pem(&pem).map_err(key_error)
    }

    /// Parses a public key in PEM (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let der = pem_decode(pem, PUBLIC_LABEL)?;
        match der.strip_prefix(&SPKI_PREFIX[..]) {
            Some(key) => Self::from_bytes(key),
            None => Err("not an Ed25519 public key (SubjectPublicKeyInfo)".to_owned()),
        }
    }

    /// The key in PEM (SubjectPublicKeyInfo).
    pub fn to_pem(&self) -> String {
        pem_encode(PUBLIC_LABEL, &[&SPKI_PREFIX[..], &self.0[..]].concat())
    }

    /// A short name of the key: the first 16 hex digits of the SHA-256 of its 32 bytes.
    pub fn key_id(&self) -> String {
        hex(&sha256(&self.0)[..8])
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// PEM: the label's armour around the base64 of `der`, 64 characters a line.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The DER inside the first PEM block labelled `label`.
fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("no {begin} block"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| format!("no {end} line"))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("bad base64 in the PEM block: {e}"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_missing_key_is_created_0600_with_its_public_key_beside_it() -> Result<(), SealError> {
        let dir = tempfile::tempdir().map_err(|e| SealError::Key {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
        let path = dir.path().join("keys/signing-key.pem");
        let key = SigningKey::load_or_create(&path)?;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let public = PublicKey::load(&public_key_path(&path))?;
        assert_eq!(&public, key.public());
        let signature = key.sign(b"hello");
        assert!(public.verify(b"hello", &signature));
        assert!(!public.verify(b"hellp", &signature));
        // Loaded again: the same key.
        let again = SigningKey::load_or_create(&path)?;
        assert_eq!(again.public(), key.public());
        // A .pub of another key is refused.
        let other = dir.path().join("other.pem");
        SigningKey::load_or_create(&other)?;
        std::fs::copy(public_key_path(&other), public_key_path(&path)).ok();
        assert!(SigningKey::load_or_create(&path).is_err());
        Ok(())
    }

    #[test]
    fn openssl_pem_forms_are_read() {
        // `openssl genpkey -algorithm ed25519` (PKCS#8 v1) and `openssl pkey -pubout`: RFC 8410's
        // example key.
        let private = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
            -----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
            -----END PUBLIC KEY-----\n";
        let der = pem_decode(private, PRIVATE_LABEL).unwrap_or_default();
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).ok();
        let public = PublicKey::from_pem(public).ok();
        assert!(pair.is_some() && public.is_some());
        if let (Some(pair), Some(public)) = (pair, public) {
            assert_eq!(pair.public_key().as_ref(), &public.0[..]);
            assert_eq!(PublicKey::from_pem(&public.to_pem()).ok(), Some(public));
        }
    }
}
