//! The index entry of one recording: what `GET /api/recordings` lists and `kube-recorder ls` shows.

use castfmt::{CopiedFile, Outcome, Protocol};
use serde::{Deserialize, Serialize};

use crate::capture_scan::CaptureSummary;
use crate::cast_scan::CastSummary;

/// The index entry of a recording. Fields the cast header did not carry are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingMeta {
    /// The recording's ID: `YYYYMMDDTHHMMSSZ-xxxxxxxx`, the UTC time the upload began and a random
    /// suffix; also the stem of its file names.
    pub id: String,
    /// What it is: an asciicast session recording (`cast`, also when an older index entry does
    /// not say) or a port-forward connection's capture (`port-forward-capture`).
    #[serde(default)]
    pub kind: RecordingKind,
    /// How it arrived.
    pub protocol: Protocol,
    /// Whether all of it arrived.
    pub outcome: Outcome,
    /// Why it is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix time (seconds) at which the upload began.
    pub received_at: f64,
    /// Unix time (seconds) at which the upload ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    /// Header `srcNode`: the caller's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_node: Option<String>,
    /// Header `srcNodeID`.
    #[serde(default, rename = "srcNodeID", skip_serializing_if = "Option::is_none")]
    pub src_node_id: Option<String>,
    /// Header `srcNodeUser`: the caller's login name (user-owned nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_node_user: Option<String>,
    /// Header `srcNodeUserID`.
    #[serde(
        default,
        rename = "srcNodeUserID",
        skip_serializing_if = "Option::is_none"
    )]
    pub src_node_user_id: Option<i64>,
    /// Header `srcNodeTags` (tagged nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src_node_tags: Vec<String>,
    /// Header `kubernetes.PodName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Header `kubernetes.Namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Header `kubernetes.Container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Header `kubernetes.SessionType`: `exec` or `attach`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<String>,
    /// Header `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Header `width`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Header `height`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Header `timestamp`: Unix time (seconds) at which the session started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
    /// Time of the last event, in seconds from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Bytes recorded (of the plaintext, when the file is encrypted).
    pub bytes: u64,
    /// Whether the file is encrypted at rest (`<id>.cast.age`, `<id>.pfcap.age`; see
    /// [`crate::crypt`]). This entry itself stays plaintext.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// Bytes of the encrypted file as stored (what its seal covers), once it has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// Event lines stored.
    pub events: u64,
    /// The session's exit status, from an exit marker event (`[t, "m", "exit 3"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What a `kubectl cp` session copied: the header's `fileCopy` and the files its markers list.
    /// Absent for other sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_copy: Option<FileCopyMeta>,
    /// A port-forward capture's connection and its bytes each way. Absent for casts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_forward: Option<PortForwardCaptureMeta>,
    /// The first thing wrong with the cast data (it is stored anyway), e.g.
    /// `line 3: not an asciicast event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

impl RecordingMeta {
    /// A fresh entry for an upload that has just begun.
    pub(crate) fn begin(id: String, protocol: Protocol, received_at: f64) -> Self {
        Self {
            id,
            kind: RecordingKind::Cast,
            protocol,
            outcome: Outcome::Recording,
            reason: None,
            received_at: round_to(received_at, 1e3),
            finished_at: None,
            src_node: None,
            src_node_id: None,
            src_node_user: None,
            src_node_user_id: None,
            src_node_tags: Vec::new(),
            pod: None,
            namespace: None,
            container: None,
            session_type: None,
            command: None,
            width: None,
            height: None,
            start: None,
            duration: None,
            bytes: 0,
            encrypted: false,
            stored_bytes: None,
            events: 0,
            exit_code: None,
            file_copy: None,
            port_forward: None,
            malformed: None,
        }
    }

    /// A fresh entry for a port-forward capture upload that has just begun.
    pub(crate) fn begin_capture(id: String, protocol: Protocol, received_at: f64) -> Self {
        Self {
            kind: RecordingKind::PortForwardCapture,
            port_forward: Some(PortForwardCaptureMeta::default()),
            ..Self::begin(id, protocol, received_at)
        }
    }

    /// Copies what a scan of a capture learnt into the entry.
    pub(crate) fn absorb_capture(&mut self, summary: &CaptureSummary) {
        let meta = self.port_forward.get_or_insert_with(Default::default);
        if let Some(header) = &summary.header {
            self.src_node.clone_from(&header.src_node);
            self.src_node_id.clone_from(&header.src_node_id);
            self.src_node_user.clone_from(&header.src_node_user);
            self.src_node_user_id = header.src_node_user_id;
            self.src_node_tags.clone_from(&header.src_node_tags);
            self.pod.clone_from(&header.pod);
            self.namespace.clone_from(&header.namespace);
            self.start = header.timestamp;
            meta.session_id.clone_from(&header.id);
            meta.request_id.clone_from(&header.request_id);
            meta.port = header.port;
            meta.transport.clone_from(&header.transport);
        }
        meta.bytes_from_client = summary.bytes_from_client;
        meta.bytes_to_client = summary.bytes_to_client;
        self.duration = summary.duration.map(|d| round_to(d, 1e6));
        self.bytes = summary.bytes;
        self.events = summary.events;
        self.malformed.clone_from(&summary.malformed);
    }

    /// Copies what a scan learnt into the entry.
    pub(crate) fn absorb(&mut self, summary: &CastSummary) {
        if let Some(header) = &summary.header {
            self.src_node.clone_from(&header.src_node);
            self.src_node_id.clone_from(&header.src_node_id);
            self.src_node_user.clone_from(&header.src_node_user);
            self.src_node_user_id = header.src_node_user_id;
            self.src_node_tags.clone_from(&header.src_node_tags);
            self.pod.clone_from(&header.pod);
            self.namespace.clone_from(&header.namespace);
            self.container.clone_from(&header.container);
            self.session_type.clone_from(&header.session_type);
            self.command.clone_from(&header.command);
            self.width = header.width;
            self.height = header.height;
            self.start = header.timestamp;
        }
        self.duration = summary.duration.map(|d| round_to(d, 1e6));
        self.bytes = summary.bytes;
        self.events = summary.events;
        self.exit_code = summary.exit_code;
        self.file_copy = summary
            .header
            .as_ref()
            .and_then(|header| header.file_copy.as_ref())
            .map(|copy| FileCopyMeta {
                direction: copy.direction.clone(),
                paths: copy.paths.clone(),
                resume_from: copy.resume_from,
                files: summary.copied_files.clone(),
                files_omitted: summary.copied_files_omitted,
            });
        self.malformed.clone_from(&summary.malformed);
    }

    /// Who made the session: the user's login name, else the node's tags, else the node.
    pub fn who(&self) -> String {
        if let Some(user) = &self.src_node_user {
            return user.clone();
        }
        if !self.src_node_tags.is_empty() {
            return self.src_node_tags.join(",");
        }
        self.src_node.clone().unwrap_or_default()
    }
}

/// The `fileCopy` of an index entry: a `kubectl cp` session, which way, and the files it copied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCopyMeta {
    /// Header `fileCopy.direction`: `from-pod` or `to-pod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Header `fileCopy.paths`: the paths the command names (the source from a pod, the `-C`
    /// directory to a pod).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Header `fileCopy.resumeFrom`: a resumed copy, not listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<u64>,
    /// The regular files copied, `{"path", "size"}`, from the recording's `file:` markers, in
    /// order; at most 10 000.
    #[serde(default)]
    pub files: Vec<CopiedFile>,
    /// File markers beyond the listed ones (or too long to read).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_omitted: u64,
}

/// What a stored recording is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RecordingKind {
    /// An asciicast v2 session recording (`<id>.cast`).
    #[default]
    Cast,
    /// The bytes of one port-forward connection, kube-auth-proxy's `kap-port-forward/1`
    /// (`<id>.pfcap`).
    PortForwardCapture,
}

/// The `portForward` of a capture's index entry: which session and connection, and the bytes
/// each way (decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForwardCaptureMeta {
    /// Header `id`: the id of the session's `kubernetes-port-forward` audit events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Header `connection.requestId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Header `connection.port`: the pod's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Header `transport`: `websocket` or `spdy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Bytes from the client to the pod (`c` events).
    #[serde(default)]
    pub bytes_from_client: u64,
    /// Bytes from the pod to the client (`s` events).
    #[serde(default)]
    pub bytes_to_client: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Rounds to a decimal fraction (`per_second` = 1e3 for milliseconds). Few decimal digits also
/// make the JSON value read back exactly: serde_json's default float parser is exact only on its
/// fast path.
pub(crate) fn round_to(seconds: f64, per_second: f64) -> f64 {
    (seconds * per_second).round() / per_second
}
