//! The asciicast v2 header line as a recorder client writes it, strictly, with the fields
//! Tailscale's recorder expects.
//!
//! Field names and JSON shapes follow Tailscale's `sessionrecording.CastHeader` (`sessionrecording/header.go`)
//! as its Kubernetes API server proxy fills it (`k8s-operator/sessionrecording/hijacker.go`,
//! `setUpRecording`), so a recording made through this crate reads the same in `tsrecorder` as one made
//! by Tailscale's proxy. The fields Tailscale only sets for SSH sessions (`env`, `sshUser`, `localUser`,
//! `connectionID`) are left out.
//!
//! One field is kube-auth-proxy's own: `fileCopy` ([`FileCopy`]), present only in recordings of
//! `kubectl cp` sessions. Tailscale's recorder and asciinema ignore keys they do not know.

use serde::{Deserialize, Serialize};

/// The asciicast format version this crate writes (and the only one [`CastHeader::validate`]
/// accepts).
pub const ASCIICAST_VERSION: u32 = 2;

/// The first line of a recording: asciicast v2's header object plus Tailscale's session metadata.
///
/// Serialised (by [`CastHeader::to_json_line`]) in the field order of Tailscale's Go struct:
/// `version`, `width`, `height`, `timestamp`, `command` (left out when empty), `srcNode`, `srcNodeID`,
/// `srcNodeTags` (tagged callers), `srcNodeUserID` and `srcNodeUser` (callers on a user's node),
/// `kubernetes`, then our extension `fileCopy` (only for `kubectl cp` sessions).
///
/// For a tty session the recorder client's encoder replaces `width` and `height` with the
/// terminal's size; for other sessions they are written as given, which for Tailscale's proxy is
/// `0` and `0` (its header documents them as "non-zero for Pty sessions").
///
/// This is the strict side: [`CastHeader::kubernetes`] builds only valid headers, and
/// [`CastHeader::try_to_json_line`] refuses a hand-built one that a recorder would misread (see
/// [`CastHeader::validate`]). Recorders read headers with the lenient
/// [`LenientHeader`](crate::LenientHeader) instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastHeader {
    /// asciicast format version: always [`ASCIICAST_VERSION`].
    pub version: u32,
    /// Terminal width in columns.
    pub width: u16,
    /// Terminal height in rows.
    pub height: u16,
    /// When the session started, in seconds since the Unix epoch.
    pub timestamp: i64,
    /// The command run in the container: the `command` query parameters of the exec request joined
    /// with single spaces, as Tailscale's proxy does. Empty for `attach` (and then left out).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// The caller's node name (MagicDNS FQDN without the trailing dot).
    #[serde(rename = "srcNode")]
    pub src_node: String,
    /// The caller's stable node ID.
    #[serde(rename = "srcNodeID")]
    pub src_node_id: String,
    /// The caller's node tags, when the node is tagged.
    #[serde(rename = "srcNodeTags", default, skip_serializing_if = "Vec::is_empty")]
    pub src_node_tags: Vec<String>,
    /// The numeric ID of the user who owns the caller's node, when it is not tagged.
    #[serde(
        rename = "srcNodeUserID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub src_node_user_id: Option<i64>,
    /// The login name of the user who owns the caller's node, when it is not tagged.
    #[serde(
        rename = "srcNodeUser",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub src_node_user: Option<String>,
    /// What was exec'd or attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSession>,
    /// kube-auth-proxy's extension: the session is a `kubectl cp` file copy, whose tar stream is
    /// recorded as a listing (one [`CopiedFile`] marker per file) instead of as text. Absent for
    /// every other session.
    #[serde(rename = "fileCopy", default, skip_serializing_if = "Option::is_none")]
    pub file_copy: Option<FileCopy>,
}

/// The `fileCopy` object of the header (kube-auth-proxy's extension to Tailscale's header): the
/// session is `kubectl cp`, which runs `tar` in the container, and which way the files go.
///
/// `kubectl cp` (`pkg/cmd/cp/cp.go` in kubectl) copies from a pod with `tar cf - SRC` (with
/// `--retries`: `sh -c "tar cf - SRC | tail -c+N"`), the archive on stdout and tar's messages on
/// stderr; and to a pod with `tar -xmf - [-C DIR]` after a separate `test -d DEST` session, the
/// archive on stdin. The file names exist only inside the archive, so the recording lists them as
/// marker events (see [`CopiedFile`]); `paths` holds only what the command line names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCopy {
    /// Which way the files go.
    pub direction: FileCopyDirection,
    /// The paths the command names: the source for [`FileCopyDirection::FromPod`], the `-C`
    /// directory for [`FileCopyDirection::ToPod`] (none when tar extracts into its working
    /// directory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Bytes of the archive before the session's stream: a `kubectl cp --retries` that resumes
    /// an interrupted copy runs `tail -c+N`, so its stream starts N-1 bytes into the archive and
    /// cannot be listed (it is recorded as it is).
    #[serde(
        rename = "resumeFrom",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resume_from: Option<u64>,
}

/// Which way a `kubectl cp` session copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FileCopyDirection {
    /// From the container to kubectl: the archive is the command's stdout.
    #[serde(rename = "from-pod")]
    FromPod,
    /// From kubectl to the container: the archive is the command's stdin.
    #[serde(rename = "to-pod")]
    ToPod,
}

impl FileCopyDirection {
    /// The header's spelling: `from-pod` or `to-pod`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileCopyDirection::FromPod => "from-pod",
            FileCopyDirection::ToPod => "to-pod",
        }
    }
}

/// One regular file of a file copy's archive, as a recording's marker event names it:
/// `[t, "m", "file: dir/name (1234 bytes)"]`. The path is the archive's member name (lossily
/// UTF-8); the size is the member's size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CopiedFile {
    /// The member name in the archive.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

impl CopiedFile {
    /// What every file marker's label starts with.
    pub const MARKER_PREFIX: &'static str = "file: ";

    /// The marker label: `file: <path> (<size> bytes)`.
    pub fn marker_label(&self) -> String {
        format!("{}{} ({} bytes)", Self::MARKER_PREFIX, self.path, self.size)
    }

    /// Reads a marker label written by [`marker_label`](Self::marker_label); `None` for any other
    /// marker. The size is read from the end, so a path may itself contain ` (`.
    pub fn from_marker(label: &str) -> Option<CopiedFile> {
        let rest = label.strip_prefix(Self::MARKER_PREFIX)?;
        let rest = rest.strip_suffix(" bytes)")?;
        let (path, size) = rest.rsplit_once(" (")?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(CopiedFile {
            path: path.to_owned(),
            size: size.parse().ok()?,
        })
    }
}

/// Who opened the session, as the header records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A node owned by a user.
    User {
        /// Node name (FQDN, a trailing dot is removed).
        node: String,
        /// Stable node ID.
        node_id: String,
        /// The owner's login name.
        login_name: String,
        /// The owner's numeric user ID.
        user_id: i64,
    },
    /// A tagged node (owned by its tags, not by a user).
    Tagged {
        /// Node name (FQDN, a trailing dot is removed).
        node: String,
        /// Stable node ID.
        node_id: String,
        /// The node's tags.
        tags: Vec<String>,
    },
}

impl From<&capmodel::CallerDescription> for Caller {
    /// The caller as the identity source described it: a user's node, or a tagged node.
    fn from(who: &capmodel::CallerDescription) -> Caller {
        match &who.user {
            Some(login_name) => Caller::User {
                node: who.node.clone(),
                node_id: who.node_id.clone(),
                login_name: login_name.clone(),
                user_id: who.user_id.unwrap_or_default(),
            },
            None => Caller::Tagged {
                node: who.node.clone(),
                node_id: who.node_id.clone(),
                tags: who.tags.clone(),
            },
        }
    }
}

/// The `kubernetes` object of the header. Its keys are Go field names without JSON tags, hence
/// capitalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesSession {
    /// The pod's name.
    #[serde(rename = "PodName")]
    pub pod_name: String,
    /// The pod's namespace.
    #[serde(rename = "Namespace")]
    pub namespace: String,
    /// The container (the `container` query parameter; empty when the request named none).
    #[serde(rename = "Container")]
    pub container: String,
    /// `exec` or `attach`.
    #[serde(rename = "SessionType")]
    pub session_type: SessionType,
}

/// The kind of session: `kubectl exec` or `kubectl attach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SessionType {
    /// `kubectl exec` (`.../pods/{pod}/exec`).
    #[serde(rename = "exec")]
    Exec,
    /// `kubectl attach` (`.../pods/{pod}/attach`).
    #[serde(rename = "attach")]
    Attach,
}

impl SessionType {
    /// The header's spelling: `exec` or `attach`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Exec => "exec",
            SessionType::Attach => "attach",
        }
    }
}

impl CastHeader {
    /// A header for a Kubernetes session, with width and height 0 (see the type's docs for how a tty
    /// session's size is filled in).
    pub fn kubernetes(
        timestamp: i64,
        caller: Caller,
        command: impl Into<String>,
        session: KubernetesSession,
    ) -> Self {
        let mut header = CastHeader {
            version: ASCIICAST_VERSION,
            width: 0,
            height: 0,
            timestamp,
            command: command.into(),
            src_node: String::new(),
            src_node_id: String::new(),
            src_node_tags: Vec::new(),
            src_node_user_id: None,
            src_node_user: None,
            kubernetes: Some(session),
            file_copy: None,
        };
        match caller {
            Caller::User {
                node,
                node_id,
                login_name,
                user_id,
            } => {
                header.src_node = trim_fqdn(node);
                header.src_node_id = node_id;
                header.src_node_user = Some(login_name);
                // Go's `omitempty` drops a zero ID; keep the same shape.
                header.src_node_user_id = (user_id != 0).then_some(user_id);
            }
            Caller::Tagged {
                node,
                node_id,
                tags,
            } => {
                header.src_node = trim_fqdn(node);
                header.src_node_id = node_id;
                header.src_node_tags = tags;
            }
        }
        header
    }

    /// What a strict asciicast v2 writer must not write: a `version` other than
    /// [`ASCIICAST_VERSION`], or a caller that is both a user's node and a tagged node (Tailscale's
    /// header names one or the other, and a recorder attributes the session by whichever it reads
    /// first).
    pub fn validate(&self) -> Result<(), InvalidHeader> {
        if self.version != ASCIICAST_VERSION {
            return Err(InvalidHeader::Version(self.version));
        }
        let names_user = self.src_node_user.is_some() || self.src_node_user_id.is_some();
        if names_user && !self.src_node_tags.is_empty() {
            return Err(InvalidHeader::UserAndTags);
        }
        Ok(())
    }

    /// The header as one JSON line, newline included, after [`validate`](Self::validate).
    pub fn try_to_json_line(&self) -> Result<Vec<u8>, InvalidHeader> {
        self.validate()?;
        Ok(self.to_json_line())
    }

    /// The header as one JSON line, newline included, written as it is: for headers built by
    /// [`CastHeader::kubernetes`], which are valid by construction. A header built by hand should
    /// go through [`try_to_json_line`](Self::try_to_json_line).
    pub fn to_json_line(&self) -> Vec<u8> {
        let mut line = Vec::with_capacity(256);
        self.write_json_line(&mut line);
        line
    }

    /// Appends the header as one JSON line, newline included, to `out`.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        // Serialising a struct of strings and integers into a Vec cannot fail; the fallback keeps a
        // valid (if minimal) header rather than panicking.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.extend_from_slice(b"{\"version\":2,\"width\":0,\"height\":0,\"timestamp\":0}");
        }
        out.push(b'\n');
    }
}

/// Why [`CastHeader::validate`] refuses a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidHeader {
    /// The `version` is not [`ASCIICAST_VERSION`].
    #[error("header version is {0}, not {ASCIICAST_VERSION}")]
    Version(u32),
    /// The header names both a user (`srcNodeUser`/`srcNodeUserID`) and node tags.
    #[error("header names both a user and node tags")]
    UserAndTags,
}

fn trim_fqdn(mut node: String) -> String {
    if node.ends_with('.') {
        node.pop();
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> KubernetesSession {
        KubernetesSession {
            pod_name: "demo".into(),
            namespace: "default".into(),
            container: "app".into(),
            session_type: SessionType::Exec,
        }
    }

    fn bob_header() -> CastHeader {
        CastHeader::kubernetes(
            5,
            Caller::User {
                node: "n".into(),
                node_id: "id".into(),
                login_name: "bob".into(),
                user_id: 7,
            },
            "bash",
            session(),
        )
    }

    #[test]
    fn user_header_matches_tailscale_field_names_and_order() {
        let header = CastHeader::kubernetes(
            1_700_000_000,
            Caller::User {
                node: "laptop.tail-scale.ts.net.".into(),
                node_id: "nStable1".into(),
                login_name: "alice@example.com".into(),
                user_id: 12345,
            },
            "sh -c echo",
            session(),
        );
        let line = String::from_utf8(header.to_json_line()).expect("utf-8");
        assert_eq!(
            line,
            "{\"version\":2,\"width\":0,\"height\":0,\"timestamp\":1700000000,\"command\":\"sh -c echo\",\
             \"srcNode\":\"laptop.tail-scale.ts.net\",\"srcNodeID\":\"nStable1\",\"srcNodeUserID\":12345,\
             \"srcNodeUser\":\"alice@example.com\",\"kubernetes\":{\"PodName\":\"demo\",\
             \"Namespace\":\"default\",\"Container\":\"app\",\"SessionType\":\"exec\"}}\n"
        );
    }

    #[test]
    fn tagged_header_has_tags_and_no_user() {
        let mut k = session();
        k.session_type = SessionType::Attach;
        let header = CastHeader::kubernetes(
            1,
            Caller::Tagged {
                node: "ci.tail-scale.ts.net".into(),
                node_id: "nCI".into(),
                tags: vec!["tag:ci".into()],
            },
            "",
            k,
        );
        let value: serde_json::Value =
            serde_json::from_slice(&header.to_json_line()).expect("json");
        assert_eq!(value["srcNodeTags"], serde_json::json!(["tag:ci"]));
        assert!(value.get("srcNodeUser").is_none());
        assert!(value.get("srcNodeUserID").is_none());
        assert!(value.get("command").is_none());
        assert_eq!(value["kubernetes"]["SessionType"], "attach");
    }

    #[test]
    fn the_strict_writer_refuses_other_versions_and_mixed_callers() {
        let mut header = bob_header();
        assert_eq!(header.try_to_json_line(), Ok(header.to_json_line()));
        header.src_node_tags = vec!["tag:ci".into()];
        assert_eq!(header.try_to_json_line(), Err(InvalidHeader::UserAndTags));
        header.src_node_tags.clear();
        header.version = 3;
        assert_eq!(header.try_to_json_line(), Err(InvalidHeader::Version(3)));
        assert_eq!(
            InvalidHeader::Version(3).to_string(),
            "header version is 3, not 2"
        );
    }

    #[test]
    fn the_strict_reader_refuses_mistyped_fields() {
        // The derived Deserialize is strict about types, unlike the lenient reader.
        assert!(serde_json::from_str::<CastHeader>(
            r#"{"version":"2","width":0,"height":0,"timestamp":1,"srcNode":"n","srcNodeID":"i"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<CastHeader>(
            r#"{"version":2,"width":-1,"height":0,"timestamp":1,"srcNode":"n","srcNodeID":"i"}"#
        )
        .is_err());
    }

    #[test]
    fn a_file_copy_header_ends_with_the_file_copy_object() {
        let mut header = bob_header();
        header.file_copy = Some(FileCopy {
            direction: FileCopyDirection::FromPod,
            paths: vec!["/tmp/x".into()],
            resume_from: None,
        });
        let line = String::from_utf8(header.to_json_line()).expect("utf-8");
        assert!(
            line.ends_with(
                "\"SessionType\":\"exec\"},\"fileCopy\":{\"direction\":\"from-pod\",\"paths\":[\"/tmp/x\"]}}\n"
            ),
            "{line}"
        );
        let back: CastHeader = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, header);
        assert!(!String::from_utf8(bob_header().to_json_line())
            .expect("utf-8")
            .contains("fileCopy"));
    }

    #[test]
    fn file_markers_read_back() {
        for (path, size) in [
            ("x/a.bin", 300_000),
            ("x/odd (1) name.txt", 0),
            ("x/ (2 bytes)", 7),
            ("", 1),
        ] {
            let file = CopiedFile {
                path: path.into(),
                size,
            };
            assert_eq!(CopiedFile::from_marker(&file.marker_label()), Some(file));
        }
        assert_eq!(
            CopiedFile {
                path: "x/a".into(),
                size: 12
            }
            .marker_label(),
            "file: x/a (12 bytes)"
        );
        for other in [
            "exit 0",
            "file: x",
            "file: x (-1 bytes)",
            "file: x ( bytes)",
            "file: x (1 byte)",
        ] {
            assert_eq!(CopiedFile::from_marker(other), None, "{other}");
        }
    }

    #[test]
    fn header_round_trips() {
        let header = bob_header();
        let back: CastHeader = serde_json::from_slice(&header.to_json_line()).expect("parse");
        assert_eq!(back, header);
    }
}
