//! The header line of an asciicast v2 recording, read leniently, as a recorder must read what any
//! client sends.
//!
//! Line 1 of an asciicast v2 file is a JSON object (<https://docs.asciinema.org/manual/asciicast/v2/>).
//! Tailscale's recorder clients add who made the session and, for `kubectl exec`/`attach`, which pod it
//! ran in (`sessionrecording.CastHeader` in tailscale.com: `srcNode`, `srcNodeID`, `srcNodeUser` and
//! `srcNodeUserID` or `srcNodeTags`, and a `kubernetes` object whose Go fields carry no JSON tags, so
//! its keys are `PodName`, `Namespace`, `Container`, `SessionType`). kube-auth-proxy adds a
//! `fileCopy` object to recordings of `kubectl cp` ([`FileCopy`](crate::FileCopy)).
//!
//! A recorder must store whatever arrives, so parsing never rejects a header for a missing or
//! mistyped field: a field that is absent or of the wrong type is simply not known, and keys it does
//! not know are ignored. Only a line that is not a JSON object at all fails, and
//! [`LenientHeader::problem`] names what a strict reader would object to (a version other than 2).
//! The strict counterpart, for writing, is [`CastHeader`](crate::CastHeader).

use serde_json::{Map, Value};

/// What a recording's header says about the session; each field is `None` when absent or mistyped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LenientHeader {
    /// `version`: 2 for asciicast v2.
    pub version: Option<i64>,
    /// `width`: terminal columns (0 for sessions without a terminal).
    pub width: Option<u32>,
    /// `height`: terminal rows.
    pub height: Option<u32>,
    /// `timestamp`: Unix seconds at which the session started.
    pub timestamp: Option<i64>,
    /// `command`: the command run in the container.
    pub command: Option<String>,
    /// `srcNode`: FQDN of the caller's node, without the trailing dot.
    pub src_node: Option<String>,
    /// `srcNodeID`: stable node ID of the caller's node.
    pub src_node_id: Option<String>,
    /// `srcNodeUser`: login name of the node's owner (user-owned nodes).
    pub src_node_user: Option<String>,
    /// `srcNodeUserID`: numeric ID of the node's owner (user-owned nodes).
    pub src_node_user_id: Option<i64>,
    /// `srcNodeTags`: the node's tags (tagged nodes).
    pub src_node_tags: Vec<String>,
    /// `kubernetes.PodName`.
    pub pod: Option<String>,
    /// `kubernetes.Namespace`.
    pub namespace: Option<String>,
    /// `kubernetes.Container`.
    pub container: Option<String>,
    /// `kubernetes.SessionType`: `exec` or `attach`.
    pub session_type: Option<String>,
    /// `fileCopy` (kube-auth-proxy's extension): the session is a `kubectl cp`.
    pub file_copy: Option<LenientFileCopy>,
}

/// The `fileCopy` object of a header, read leniently (see [`FileCopy`](crate::FileCopy) for what
/// a client writes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LenientFileCopy {
    /// `direction`: `from-pod` or `to-pod` (any other text is kept as it is).
    pub direction: Option<String>,
    /// `paths`: the paths the command names (non-string items are left out).
    pub paths: Vec<String>,
    /// `resumeFrom`: archive bytes the session leaves out.
    pub resume_from: Option<u64>,
}

impl LenientFileCopy {
    fn read(object: &Map<String, Value>) -> Self {
        Self {
            direction: text(lookup(object, "direction")),
            paths: strings(lookup(object, "paths")),
            resume_from: lookup(object, "resumeFrom")
                .and_then(integer)
                .and_then(|v| u64::try_from(v).ok()),
        }
    }
}

/// Why a header line could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The line is not JSON.
    #[error("header is not JSON: {0}")]
    NotJson(String),
    /// The line is JSON but not an object.
    #[error("header is not a JSON object")]
    NotObject,
}

impl LenientHeader {
    /// Reads a header line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Self, HeaderError> {
        let value: Value =
            serde_json::from_slice(line).map_err(|e| HeaderError::NotJson(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(HeaderError::NotObject);
        };
        let kubernetes = lookup(&object, "kubernetes").and_then(Value::as_object);
        let from_kubernetes = |names: &[&str]| {
            kubernetes.and_then(|k| names.iter().find_map(|name| text(lookup(k, name))))
        };
        Ok(Self {
            version: lookup(&object, "version").and_then(integer),
            width: lookup(&object, "width")
                .and_then(integer)
                .and_then(|v| u32::try_from(v).ok()),
            height: lookup(&object, "height")
                .and_then(integer)
                .and_then(|v| u32::try_from(v).ok()),
            timestamp: lookup(&object, "timestamp").and_then(integer),
            command: text(lookup(&object, "command")),
            src_node: text(lookup(&object, "srcNode")),
            src_node_id: text(lookup(&object, "srcNodeID")),
            src_node_user: text(lookup(&object, "srcNodeUser")),
            src_node_user_id: lookup(&object, "srcNodeUserID").and_then(integer),
            src_node_tags: strings(lookup(&object, "srcNodeTags")),
            pod: from_kubernetes(&["PodName", "pod"]),
            namespace: from_kubernetes(&["Namespace"]),
            container: from_kubernetes(&["Container"]),
            session_type: from_kubernetes(&["SessionType"]),
            file_copy: lookup(&object, "fileCopy")
                .and_then(Value::as_object)
                .map(LenientFileCopy::read),
        })
    }

    /// What a strict asciicast v2 reader would reject in this header, if anything.
    pub fn problem(&self) -> Option<String> {
        match self.version {
            Some(2) => None,
            Some(other) => Some(format!("header version is {other}, not 2")),
            None => Some("header has no version".to_owned()),
        }
    }
}

/// Looks a key up as Go's `encoding/json` matches struct fields: exactly, else ignoring ASCII case.
fn lookup<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn text(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The string items of an array (others left out); empty when it is not an array.
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An integer, from a JSON number (fractions dropped) or a numeric string.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tailscale_kubernetes_header() {
        let line = br#"{"version":2,"width":80,"height":24,"timestamp":1714564984,"command":"sh -c id","srcNode":"laptop.tail1.ts.net","srcNodeID":"nABC","srcNodeUser":"alice@example.com","srcNodeUserID":42,"kubernetes":{"PodName":"demo","Namespace":"default","Container":"main","SessionType":"exec"}}"#;
        let header = LenientHeader::parse(line).expect("header");
        assert_eq!(header.version, Some(2));
        assert_eq!((header.width, header.height), (Some(80), Some(24)));
        assert_eq!(header.timestamp, Some(1_714_564_984));
        assert_eq!(header.command.as_deref(), Some("sh -c id"));
        assert_eq!(header.src_node_user.as_deref(), Some("alice@example.com"));
        assert_eq!(header.src_node_user_id, Some(42));
        assert_eq!(header.pod.as_deref(), Some("demo"));
        assert_eq!(header.namespace.as_deref(), Some("default"));
        assert_eq!(header.container.as_deref(), Some("main"));
        assert_eq!(header.session_type.as_deref(), Some("exec"));
        assert_eq!(header.problem(), None);
    }

    #[test]
    fn is_lenient_about_types_and_case() {
        let line = br#"{"version":"2","width":-1,"timestamp":1714564984.7,"srcnode":"n","srcNodeTags":["tag:ci",3],"kubernetes":{"podname":"p"},"command":7}"#;
        let header = LenientHeader::parse(line).expect("header");
        assert_eq!(header.version, Some(2));
        assert_eq!(header.width, None);
        assert_eq!(header.timestamp, Some(1_714_564_984));
        assert_eq!(header.src_node.as_deref(), Some("n"));
        assert_eq!(header.src_node_tags, vec!["tag:ci".to_owned()]);
        assert_eq!(header.pod.as_deref(), Some("p"));
        assert_eq!(header.command, None);
    }

    #[test]
    fn accepts_extra_keys() {
        let line = br#"{"version":2,"width":80,"height":24,"timestamp":1,"env":{"TERM":"xterm"},"title":"t","srcNode":"n","sshUser":"root","kubernetes":{"PodName":"p","Extra":1}}"#;
        let header = LenientHeader::parse(line).expect("header");
        assert_eq!(header.src_node.as_deref(), Some("n"));
        assert_eq!(header.pod.as_deref(), Some("p"));
        assert_eq!(header.problem(), None);
    }

    #[test]
    fn reads_what_the_strict_writer_writes() {
        let written = crate::CastHeader::kubernetes(
            9,
            crate::Caller::Tagged {
                node: "ci.example.ts.net.".into(),
                node_id: "nCI".into(),
                tags: vec!["tag:ci".into()],
            },
            "sh",
            crate::KubernetesSession {
                pod_name: "p".into(),
                namespace: "ns".into(),
                container: "c".into(),
                session_type: crate::SessionType::Attach,
            },
        )
        .to_json_line();
        let read = LenientHeader::parse(written.trim_ascii_end()).expect("header");
        assert_eq!(read.version, Some(2));
        assert_eq!(read.timestamp, Some(9));
        assert_eq!(read.src_node.as_deref(), Some("ci.example.ts.net"));
        assert_eq!(read.src_node_tags, vec!["tag:ci".to_owned()]);
        assert_eq!(read.src_node_user, None);
        assert_eq!(read.namespace.as_deref(), Some("ns"));
        assert_eq!(read.session_type.as_deref(), Some("attach"));
    }

    #[test]
    fn reads_the_file_copy_extension() {
        let line =
            br#"{"version":2,"fileCopy":{"direction":"to-pod","paths":["x",1],"resumeFrom":"12"}}"#;
        let header = LenientHeader::parse(line).expect("header");
        assert_eq!(
            header.file_copy,
            Some(LenientFileCopy {
                direction: Some("to-pod".into()),
                paths: vec!["x".into()],
                resume_from: Some(12),
            })
        );
        let odd = LenientHeader::parse(br#"{"version":2,"fileCopy":"yes"}"#).expect("header");
        assert_eq!(odd.file_copy, None);
        let mut written = crate::CastHeader::kubernetes(
            9,
            crate::Caller::Tagged {
                node: "n".into(),
                node_id: "i".into(),
                tags: vec!["tag:ci".into()],
            },
            "tar cf - /tmp/x",
            crate::KubernetesSession {
                pod_name: "p".into(),
                namespace: "ns".into(),
                container: "c".into(),
                session_type: crate::SessionType::Exec,
            },
        );
        written.file_copy = Some(crate::FileCopy {
            direction: crate::FileCopyDirection::FromPod,
            paths: vec!["/tmp/x".into()],
            resume_from: None,
        });
        let read = LenientHeader::parse(written.to_json_line().trim_ascii_end()).expect("header");
        let copy = read.file_copy.expect("fileCopy");
        assert_eq!(copy.direction.as_deref(), Some("from-pod"));
        assert_eq!(copy.paths, vec!["/tmp/x".to_owned()]);
        assert_eq!(copy.resume_from, None);
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(matches!(
            LenientHeader::parse(b"[1, \"o\", \"x\"]"),
            Err(HeaderError::NotObject)
        ));
        assert!(matches!(
            LenientHeader::parse(b"{oops"),
            Err(HeaderError::NotJson(_))
        ));
        let v1 = LenientHeader::parse(br#"{"version":1}"#).expect("object");
        assert_eq!(v1.problem().as_deref(), Some("header version is 1, not 2"));
    }
}
