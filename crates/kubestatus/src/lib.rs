//! Kubernetes `metav1.Status` objects, written byte for byte as Go's `encoding/json` writes
//! `k8s.io/apimachinery/pkg/apis/meta/v1.Status`: no I/O.
//!
//! A `Status` is what a Kubernetes server says about an operation that returned no other object.
//! It appears in two places this workspace writes:
//!
//! - **HTTP error bodies** (the apiserver's `apierrors` and the proxy's own answers): a
//!   [`Status::failure`] with `kind: Status`, `apiVersion: v1`, a reason and the HTTP code
//!   repeated in `code`, sometimes [`StatusDetails`] with [`StatusCause`]s.
//! - **The exec/attach error stream** (protocol v4 and later): the kubelet's `v4WriteStatusFunc`
//!   writes one Status without type meta: [`Status::success`], [`Status::exit_code`] for a
//!   non-zero exit (reason `NonZeroExitCode`, the code in an `ExitCode` cause), or
//!   [`Status::internal_error`] when the command could not run.
//!
//! Fields are written in Go's declaration order (`kind`, `apiVersion`, `metadata`, `status`,
//! `message`, `reason`, `details`, `code`) with Go's `omitempty` rules: empty strings, empty
//! cause lists, a zero `code` or `retryAfterSeconds` and absent details are left out;
//! `metadata` (a struct in Go) is always there, as `{}`.
//!
//! ```
//! use kubestatus::{reason, Status, StatusDetails};
//!
//! let forbidden = Status::failure(403, reason::FORBIDDEN, "m");
//! assert_eq!(
//!     forbidden.to_json(),
//!     br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"m","reason":"Forbidden","code":403}"#
//! );
//!
//! let not_found = Status::failure(404, reason::NOT_FOUND, r#"pods "web" not found"#)
//!     .with_details(StatusDetails { name: "web".into(), kind: "pods".into(), ..Default::default() });
//! assert_eq!(not_found.to_value()["details"]["name"], "web");
//!
//! assert_eq!(
//!     Status::exit_code(3, "command terminated with non-zero exit code: exit status 3").to_json(),
//!     br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
//! );
//! assert_eq!(Status::success().to_json(), br#"{"metadata":{},"status":"Success"}"#);
//! ```
//!
//! Reasons are `Cow<'static, str>`: the usual ones are constants in [`reason`] (Go's
//! `metav1.StatusReason*` and `CauseType*` values), any other string works too. Reading a Status
//! is left to the reader's needs (client-go decodes the error stream case-insensitively, for
//! instance); this crate only writes.

use std::borrow::Cow;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// `metav1.StatusReason` and `metav1.CauseType` values this workspace uses (Go's
/// `StatusReason*` / `CauseType*` constants and the kubelet's exec reasons).
pub mod reason {
    /// 401: the caller must authenticate (`StatusReasonUnauthorized`).
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// 403: the caller may not do this (`StatusReasonForbidden`).
    pub const FORBIDDEN: &str = "Forbidden";
    /// 404: the resource does not exist (`StatusReasonNotFound`).
    pub const NOT_FOUND: &str = "NotFound";
    /// 409: the resource exists already (`StatusReasonAlreadyExists`).
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    /// 409: a write conflicted with the stored state (`StatusReasonConflict`).
    pub const CONFLICT: &str = "Conflict";
    /// 410: the resourceVersion is older than the history kept (`StatusReasonExpired`).
    pub const EXPIRED: &str = "Expired";
    /// 422: the object is invalid (`StatusReasonInvalid`).
    pub const INVALID: &str = "Invalid";
    /// 400: the request itself is wrong (`StatusReasonBadRequest`).
    pub const BAD_REQUEST: &str = "BadRequest";
    /// 405: the verb is not served for this resource (`StatusReasonMethodNotAllowed`).
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// 415: the body's content type is not understood (`StatusReasonUnsupportedMediaType`).
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    /// 429: too many requests (`StatusReasonTooManyRequests`).
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    /// 500: the server failed (`StatusReasonInternalError`).
    pub const INTERNAL_ERROR: &str = "InternalError";
    /// 503: the server cannot answer now (`StatusReasonServiceUnavailable`).
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    /// The kubelet's reason for a command that exited non-zero (`NonZeroExitCodeReason`).
    pub const NON_ZERO_EXIT_CODE: &str = "NonZeroExitCode";
    /// The kubelet's cause carrying the exit code as its message (`ExitCodeCauseType`).
    pub const EXIT_CODE: &str = "ExitCode";
}

/// `Status.status`: how the operation ended (Go's `StatusSuccess` / `StatusFailure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `"Success"`.
    Success,
    /// `"Failure"`.
    Failure,
}

impl Outcome {
    /// The value as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::Failure => "Failure",
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A `metav1.Status`. Build one with a constructor ([`Status::failure`], [`Status::success`],
/// [`Status::exit_code`], [`Status::internal_error`]); the fields are public for the rare case
/// that needs something else. An empty string, a zero `code` and `None` are left out when
/// written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `kind`: `"Status"` in HTTP bodies, empty (left out) on the exec error stream.
    pub kind: Cow<'static, str>,
    /// `apiVersion`: `"v1"` in HTTP bodies, empty (left out) on the exec error stream.
    pub api_version: Cow<'static, str>,
    /// `status`; `None` is left out.
    pub status: Option<Outcome>,
    /// `message`: the human-readable text kubectl prints.
    pub message: String,
    /// `reason`: machine-readable, e.g. [`reason::FORBIDDEN`].
    pub reason: Cow<'static, str>,
    /// `details`; `Some(StatusDetails::default())` is written as `{}`.
    pub details: Option<StatusDetails>,
    /// `code`: the HTTP status code; 0 is left out.
    pub code: i32,
}

/// `metav1.StatusDetails`: what the Status is about. Empty fields are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// `name`: the object's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `group`: the resource's API group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// `kind`: the resource's kind (or resource name, as `apierrors` fills it).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `uid`: the object's UID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `causes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// `retryAfterSeconds`; 0 is left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub retry_after_seconds: i32,
}

/// `metav1.StatusCause`: one reason for a failure. Empty fields are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StatusCause {
    /// `reason` (Go's `Type`, a `CauseType`), e.g. [`reason::EXIT_CODE`] or `FieldValueInvalid`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: Cow<'static, str>,
    /// `message`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `field`: the JSON path of the field at fault, e.g. `spec.containers[0].image`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

impl Status {
    /// An HTTP error body as the apiserver writes one (`apierrors`): `kind: Status`,
    /// `apiVersion: v1`, `status: Failure`, `reason`, `message`, and the HTTP `code`.
    pub fn failure(
        code: u16,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Status {
        Status {
            kind: Cow::Borrowed("Status"),
            api_version: Cow::Borrowed("v1"),
            status: Some(Outcome::Failure),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code: i32::from(code),
        }
    }

    /// The kubelet's error-stream Status for a command that exited 0:
    /// `{"metadata":{},"status":"Success"}`.
    pub fn success() -> Status {
        Status {
            status: Some(Outcome::Success),
            ..Status::default()
        }
    }

    /// The kubelet's error-stream Status for a command that exited with `code` (non-zero):
    /// reason `NonZeroExitCode`, `message`, and the code as the message of an `ExitCode` cause;
    /// no `code` field (`pkg/kubelet/cri/streaming/remotecommand/exec.go`, `ServeExec`).
    pub fn exit_code(code: i32, message: impl Into<String>) -> Status {
        Status {
            status: Some(Outcome::Failure),
            message: message.into(),
            reason: Cow::Borrowed(reason::NON_ZERO_EXIT_CODE),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: Cow::Borrowed(reason::EXIT_CODE),
                    message: code.to_string(),
                    field: String::new(),
                }],
                ..StatusDetails::default()
            }),
            ..Status::default()
        }
    }

    /// The kubelet's error-stream Status for a command that could not run: reason
    /// `InternalError`, code 500, `message`, no type meta. (`apierrors.NewInternalError` also
    /// adds the error as a cause; add it with [`Status::with_details`] when wanted.)
    pub fn internal_error(message: impl Into<String>) -> Status {
        Status {
            status: Some(Outcome::Failure),
            message: message.into(),
            reason: Cow::Borrowed(reason::INTERNAL_ERROR),
            code: 500,
            ..Status::default()
        }
    }

    /// The same Status with `details`.
    #[must_use]
    pub fn with_details(mut self, details: StatusDetails) -> Status {
        self.details = Some(details);
        self
    }

    /// The JSON bytes, as Go's `json.Marshal` writes them (HTML-safe escaping included).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
        // Strings, integers and nested structs into a Vec: serialising cannot fail.
        if self.serialize(&mut serializer).is_err() {
            out.clear();
        }
        out
    }

    /// The JSON as a [`serde_json::Value`], for inspection. A `Value` object sorts its keys
    /// (unless serde_json's `preserve_order` is on): write bytes with [`Status::to_json`].
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// `metav1.ListMeta` with every field empty.
        #[derive(Serialize)]
        struct EmptyListMeta {}

        let mut map = serializer.serialize_map(None)?;
        if !self.kind.is_empty() {
            map.serialize_entry("kind", &self.kind)?;
        }
        if !self.api_version.is_empty() {
            map.serialize_entry("apiVersion", &self.api_version)?;
        }
        map.serialize_entry("metadata", &EmptyListMeta {})?;
        if let Some(status) = self.status {
            map.serialize_entry("status", &status)?;
        }
        if !self.message.is_empty() {
            map.serialize_entry("message", &self.message)?;
        }
        if !self.reason.is_empty() {
            map.serialize_entry("reason", &self.reason)?;
        }
        if let Some(details) = &self.details {
            map.serialize_entry("details", details)?;
        }
        if self.code != 0 {
            map.serialize_entry("code", &self.code)?;
        }
        map.end()
    }
}

/// serde_json's compact output with Go's `encoding/json` string escaping: besides what both
/// escape (quote, backslash, control characters, `\n` and the like as short escapes, others as
/// `\u00xx`), Go escapes `<`, `>`, `&`, U+2028 and U+2029 (`json.Marshal`, and the apiserver's
/// `json.Encoder` with `SetEscapeHTML(true)`, the default).
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (index, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..index])?;
            writer.write_all(escaped.as_bytes())?;
            start = index + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// The README's example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    fn text(status: &Status) -> String {
        String::from_utf8(status.to_json()).expect("UTF-8")
    }

    #[test]
    fn failure_is_what_the_apiserver_writes() {
        assert_eq!(
            text(&Status::failure(403, reason::FORBIDDEN, "m")),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"m","reason":"Forbidden","code":403}"#
        );
        assert_eq!(
            text(&Status::failure(
                401,
                reason::UNAUTHORIZED,
                "quotes \" and <html> & \u{1}"
            )),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"quotes \" and \u003chtml\u003e \u0026 \u0001","reason":"Unauthorized","code":401}"#,
            "escaped as Go escapes"
        );
        assert_eq!(
            text(&Status::failure(
                400,
                reason::BAD_REQUEST,
                "tab\t newline\n bell\u{7} backspace\u{8} feed\u{c} del\u{7f} é \u{2028}\u{2029} 💡"
            )),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"tab\\t newline\\n bell\\u0007 backspace\\b feed\\f del\u{7f} é \\u2028\\u2029 💡\",\"reason\":\"BadRequest\",\"code\":400}",
            "Go 1.22 and later: \\b and \\f short, DEL and other non-ASCII as they are"
        );
    }

    #[test]
    fn kubelet_error_stream_objects() {
        assert_eq!(
            text(&Status::success()),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            text(&Status::exit_code(
                3,
                "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
            )),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            text(&Status::internal_error("session ended by the proxy")),
            r#"{"metadata":{},"status":"Failure","message":"session ended by the proxy","reason":"InternalError","code":500}"#
        );
    }

    #[test]
    fn empty_fields_are_left_out() {
        assert_eq!(text(&Status::default()), r#"{"metadata":{}}"#);
        let no_message = Status {
            message: String::new(),
            ..Status::failure(500, "", "")
        };
        assert_eq!(
            text(&no_message),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","code":500}"#
        );
        assert_eq!(
            text(
                &Status::failure(404, reason::NOT_FOUND, "gone")
                    .with_details(StatusDetails::default())
            ),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"gone","reason":"NotFound","details":{},"code":404}"#,
            "present but empty details are written as {{}}, as Go writes a non-nil pointer"
        );
        let cause = StatusCause {
            message: "only a message".into(),
            ..StatusCause::default()
        };
        assert_eq!(
            serde_json::to_string(&cause).expect("JSON"),
            r#"{"message":"only a message"}"#
        );
    }

    #[test]
    fn details_and_causes_in_go_order() {
        let details = StatusDetails {
            name: "web".into(),
            group: "apps".into(),
            kind: "deployments".into(),
            uid: "0b1d".into(),
            causes: vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "must be positive".into(),
                field: "spec.replicas".into(),
            }],
            retry_after_seconds: 5,
        };
        assert_eq!(
            text(&Status::failure(422, reason::INVALID, "invalid").with_details(details)),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"invalid","reason":"Invalid","details":{"name":"web","group":"apps","kind":"deployments","uid":"0b1d","causes":[{"reason":"FieldValueInvalid","message":"must be positive","field":"spec.replicas"}],"retryAfterSeconds":5},"code":422}"#
        );
    }

    #[test]
    fn value_holds_the_same_object() {
        let status = Status::exit_code(130, "m");
        let value = status.to_value();
        assert_eq!(
            value,
            serde_json::from_slice::<serde_json::Value>(&status.to_json()).expect("JSON")
        );
        assert_eq!(value["details"]["causes"][0]["message"], "130");
        assert_eq!(Outcome::Failure.as_str(), "Failure");
    }
}
