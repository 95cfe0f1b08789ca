//! `<id>.manifest.json`: what a seal says of one recording, signed.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::chain_hash::{hex, ChainAlgorithm, FileDigest, CHUNK_SIZE};
use super::key::{PublicKey, SigningKey};
use crate::recording_meta::{RecordingKind, RecordingMeta};

/// Version of the manifest format: 2 since file chains are BLAKE3 (`hashAlgorithm`); version 1
/// manifests, SHA-256 chains without the field, are still read and verified.
pub const MANIFEST_VERSION: u32 = 2;
/// What a manifest signature covers, before the manifest's JSON.
const SIGNATURE_CONTEXT: &[u8] = b"kube-recorder manifest v1\n";

/// The seal of one recording, written when it ends. The signature covers the manifest's other
/// fields as compact JSON in this order (serde's), after `kube-recorder manifest v1\n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`] when written; 1 for the first seals).
    pub version: u32,
    /// The recording's ID.
    pub id: String,
    /// Its file's name in `recordings/` (`<id>.cast` or `<id>.pfcap`).
    pub file: String,
    /// `cast` or `port-forward-capture`.
    pub kind: String,
    /// `complete` or `incomplete`.
    pub outcome: String,
    /// Why it is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who: the caller as listings show it.
    pub caller: String,
    /// Header `srcNode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_node: Option<String>,
    /// Header `srcNodeUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_node_user: Option<String>,
    /// Header `srcNodeTags`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src_node_tags: Vec<String>,
    /// The pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `exec` or `attach`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<String>,
    /// Header `timestamp`: Unix seconds the session started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
    /// Unix milliseconds the upload began.
    pub received_at_ms: i64,
    /// Unix milliseconds the upload ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// Bytes of the file.
    pub size: u64,
    /// Bytes per chunk of the hash chain.
    pub chunk_size: u64,
    /// Chunks hashed.
    pub chunks: u64,
    /// The hash chain's last link over the file, hex.
    pub hash: String,
    /// The chain's hash function; absent (SHA-256) in version 1 manifests, which therefore keep
    /// their signed bytes.
    #[serde(default, skip_serializing_if = "ChainAlgorithm::is_sha256")]
    pub hash_algorithm: ChainAlgorithm,
    /// The head of `chain.jsonl` (hash of its last entry, or 64 zeros) when this recording was
    /// sealed: the `prev` of its own chain entry.
    pub prev_chain_head: String,
    /// `upload` (sealed as the upload ended) or `recovery` (sealed by the next start after a
    /// crash, or because it predates sealing).
    pub sealed_by: String,
    /// The signing key's ID (first 16 hex digits of the SHA-256 of the public key).
    pub key_id: String,
    /// Ed25519 signature, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Manifest {
    /// The unsigned manifest of `meta`, whose file hashes to `digest`.
    pub(crate) fn new(
        meta: &RecordingMeta,
        file: String,
        digest: &FileDigest,
        prev_chain_head: String,
        sealed_by: &str,
        key_id: String,
    ) -> Self {
        let millis = |seconds: f64| (seconds * 1e3).round() as i64;
        Self {
            version: MANIFEST_VERSION,
            id: meta.id.clone(),
            file,
            kind: match meta.kind {
                RecordingKind::PortForwardCapture => "port-forward-capture",
                _ => "cast",
            }
            .to_owned(),
            outcome: meta.outcome.as_str().to_owned(),
            reason: meta.reason.clone(),
            caller: meta.who(),
            src_node: meta.src_node.clone(),
            src_node_user: meta.src_node_user.clone(),
            src_node_tags: meta.src_node_tags.clone(),
            namespace: meta.namespace.clone(),
            pod: meta.pod.clone(),
            container: meta.container.clone(),
            session_type: meta.session_type.clone(),
            start: meta.start,
            received_at_ms: millis(meta.received_at),
            finished_at_ms: meta.finished_at.map(millis),
            size: digest.size,
            chunk_size: CHUNK_SIZE,
            chunks: digest.chunks,
            hash: hex(&digest.hash),
            hash_algorithm: digest.algorithm,
            prev_chain_head,
            sealed_by: sealed_by.to_owned(),
            key_id,
            signature: None,
        }
    }

    /// The bytes the signature covers.
    fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Self {
            signature: None,
            ..self.clone()
        };
        let mut bytes = SIGNATURE_CONTEXT.to_vec();
        // A struct of strings and integers always serialises.
        bytes.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
        bytes
    }

    /// Signs the manifest.
    pub(crate) fn sign(&mut self, key: &SigningKey) {
        self.signature =
            Some(base64::engine::general_purpose::STANDARD.encode(key.sign(&self.signed_bytes())));
    }

    /// Whether the signature is `key`'s over the other fields.
    pub fn signature_valid(&self, key: &PublicKey) -> bool {
        let Some(signature) = &self.signature else {
            return false;
        };
        match base64::engine::general_purpose::STANDARD.decode(signature) {
            Ok(signature) => key.verify(&self.signed_bytes(), &signature),
            Err(_) => false,
        }
    }

    /// The manifest file's bytes: pretty JSON and a line break.
    pub(crate) fn to_file_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The first field in which an index entry says something else than this seal of who,
    /// where, when, what and how it ended (the command and exit status are read from the cast,
    /// which the seal covers); `None` when they agree. An entry still saying `recording`
    /// disagrees: a sealed recording has ended.
    pub(crate) fn disagreement(&self, entry: &RecordingMeta) -> Option<&'static str> {
        let stored = if entry.encrypted {
            entry.stored_bytes.unwrap_or(entry.bytes)
        } else {
            entry.bytes
        };
        let millis = |seconds: f64| (seconds * 1e3).round() as i64;
        self.identity_disagreement(entry).or_else(|| {
            [
                (
                    "finishedAt",
                    entry.finished_at.map(millis) == self.finished_at_ms,
                ),
                ("outcome", entry.outcome.as_str() == self.outcome),
                ("reason", entry.reason == self.reason),
                ("size", stored == self.size),
                ("encrypted", entry.encrypted == self.file.ends_with(".age")),
            ]
            .into_iter()
            .find(|(_, agrees)| !agrees)
            .map(|(field, _)| field)
        })
    }

    /// Like [`disagreement`](Self::disagreement), of who, where and when only: for an entry
    /// that still says `recording`, as it does for a moment after the seal is written and
    /// before the final entry is.
    pub(crate) fn identity_disagreement(&self, entry: &RecordingMeta) -> Option<&'static str> {
        let kind = match entry.kind {
            RecordingKind::PortForwardCapture => "port-forward-capture",
            _ => "cast",
        };
        let millis = |seconds: f64| (seconds * 1e3).round() as i64;
        [
            ("id", entry.id == self.id),
            ("namespace", entry.namespace == self.namespace),
            ("pod", entry.pod == self.pod),
            ("container", entry.container == self.container),
            ("srcNode", entry.src_node == self.src_node),
            ("srcNodeUser", entry.src_node_user == self.src_node_user),
            ("srcNodeTags", entry.src_node_tags == self.src_node_tags),
            ("sessionType", entry.session_type == self.session_type),
            ("start", entry.start == self.start),
            (
                "receivedAt",
                millis(entry.received_at) == self.received_at_ms,
            ),
            ("kind", kind == self.kind),
        ]
        .into_iter()
        .find(|(_, agrees)| !agrees)
        .map(|(field, _)| field)
    }

    pub(crate) fn restore_outcome(&self, meta: &mut RecordingMeta) {
        meta.outcome = if self.outcome == "complete" {
            castfmt::Outcome::Complete
        } else {
            castfmt::Outcome::Incomplete
        };
        meta.reason = self.reason.clone();
        meta.finished_at = self.finished_at_ms.map(|ms| ms as f64 / 1e3);
    }
}
