//! Decoding one capability rule with the semantics of Go's `encoding/json`, which is what
//! Tailscale's proxy uses (`tailcfg.UnmarshalCapJSON` into `kubetypes.KubernetesCapRule`).
//!
//! Where Go and serde's derive differ, Go wins, because a policy must mean the same here as in
//! the reference implementation:
//! - object keys match field names case-insensitively (Go `encoding/json/fold.go`), so
//!   `"EnforceRecorder": true` enforces recording there and must here too;
//! - `null` reads as the zero value for every field and for the rule itself;
//! - unknown keys are ignored.
//!
//! Where Go would accept nonsense and fail later, we refuse early: an empty recorder address
//! (Go reads it as the zero `netip.AddrPort`, which can never be dialled), a `null` list
//! element, and two keys that differ only in case (Go keeps the last one in document order,
//! which JSON parsers that sort keys cannot reproduce).

use std::fmt;
use std::net::SocketAddr;

use serde_json::{Map, Value};

use crate::rule::{ImpersonateRule, KubernetesCapRule};

/// Why a capability rule could not be decoded, and where in the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    path: String,
    kind: RuleErrorKind,
}

/// What is wrong with a capability rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleErrorKind {
    /// A value has the wrong JSON type.
    InvalidType {
        /// The value found, described as in `string "x"` or `number 3`.
        found: String,
        /// What the field needs, e.g. `an array`.
        expected: &'static str,
    },
    /// A recorder address is not `ip:port` or `[ipv6]:port`.
    InvalidAddress {
        /// The address as given.
        value: String,
    },
    /// Two keys of one object name the same field (names match case-insensitively).
    DuplicateField {
        /// The field's canonical name.
        field: &'static str,
        /// The first key seen.
        first: String,
        /// The second key seen.
        second: String,
    },
}

impl RuleError {
    /// Where in the rule the problem is, as a path such as `recorderAddrs[0]` or
    /// `impersonate.groups`; empty for the rule itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What the problem is.
    pub fn kind(&self) -> &RuleErrorKind {
        &self.kind
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.path.is_empty() {
            write!(f, " at {}", self.path)?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

impl fmt::Display for RuleErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleErrorKind::InvalidType { found, expected } => {
                write!(f, "invalid type: {found}, expected {expected}")
            }
            RuleErrorKind::InvalidAddress { value } => write!(
                f,
                "invalid socket address syntax {} (expected \"ip:port\" or \"[ipv6]:port\")",
                quoted(value)
            ),
            RuleErrorKind::DuplicateField {
                field,
                first,
                second,
            } => write!(
                f,
                "keys {} and {} both name field \"{field}\" (names match case-insensitively)",
                quoted(first),
                quoted(second)
            ),
        }
    }
}

/// Decodes one rule. `null` is the empty rule, as in Go.
pub(crate) fn decode_rule(value: &Value) -> Result<KubernetesCapRule, RuleError> {
    let obj = match value {
        Value::Null => return Ok(KubernetesCapRule::default()),
        Value::Object(obj) => obj,
        other => return Err(invalid_type(other, "an object", String::new())),
    };
    let [impersonate, recorder, recorder_addrs, enforce_recorder, enable_events, record_input, record_port_forward_data] =
        match_fields(
            obj,
            [
                "impersonate",
                "recorder",
                "recorderAddrs",
                "enforceRecorder",
                "enableEvents",
                "recordInput",
                "recordPortForwardData",
            ],
            "",
        )?;
    Ok(KubernetesCapRule {
        impersonate: field(impersonate, "", decode_impersonate)?.flatten(),
        recorder: field(recorder, "", decode_strings)?.unwrap_or_default(),
        recorder_addrs: field(recorder_addrs, "", decode_addrs)?.unwrap_or_default(),
        enforce_recorder: field(enforce_recorder, "", decode_bool)?.unwrap_or_default(),
        enable_events: field(enable_events, "", decode_bool)?.unwrap_or_default(),
        record_input: field(record_input, "", decode_bool)?.unwrap_or_default(),
        record_port_forward_data: field(record_port_forward_data, "", decode_bool)?
            .unwrap_or_default(),
    })
}

/// Decodes the `impersonate` object; `null` is no rule, as in Go (a nil pointer).
pub(crate) fn decode_impersonate(
    value: &Value,
    path: String,
) -> Result<Option<ImpersonateRule>, RuleError> {
    let obj = match value {
        Value::Null => return Ok(None),
        Value::Object(obj) => obj,
        other => return Err(invalid_type(other, "an object", path)),
    };
    let [groups] = match_fields(obj, ["groups"], &path)?;
    Ok(Some(ImpersonateRule {
        groups: field(groups, &path, decode_strings)?.unwrap_or_default(),
    }))
}

type Slot<'a> = Option<(&'a str, &'a Value)>;

/// Pairs each field with the key naming it, Go style; a second key for a field is an error.
fn match_fields<'a, const N: usize>(
    obj: &'a Map<String, Value>,
    fields: [&'static str; N],
    path: &str,
) -> Result<[Slot<'a>; N], RuleError> {
    let mut slots: [Slot<'a>; N] = [None; N];
    for (key, value) in obj {
        let Some(i) = fields.iter().position(|f| key_names_field(key, f)) else {
            continue; // Unknown keys are ignored, as in Go.
        };
        if let Some((first, _)) = slots[i] {
            return Err(RuleError {
                path: path.to_owned(),
                kind: RuleErrorKind::DuplicateField {
                    field: fields[i],
                    first: first.to_owned(),
                    second: key.clone(),
                },
            });
        }
        slots[i] = Some((key, value));
    }
    Ok(slots)
}

/// Decodes a matched field with `decode`, its path being `parent.key`.
fn field<T>(
    slot: Slot<'_>,
    parent: &str,
    decode: impl FnOnce(&Value, String) -> Result<T, RuleError>,
) -> Result<Option<T>, RuleError> {
    slot.map(|(key, value)| {
        let path = if parent.is_empty() {
            key.to_owned()
        } else {
            format!("{parent}.{key}")
        };
        decode(value, path)
    })
    .transpose()
}

/// Whether an object key names a field the way Go's `encoding/json` decides it: an exact match
/// or an equal fold. Field names here are ASCII; the only non-ASCII runes that fold onto ASCII
/// letters are U+212A KELVIN SIGN (onto `k`) and U+017F LATIN SMALL LETTER LONG S (onto `s`).
pub(crate) fn key_names_field(key: &str, field: &str) -> bool {
    let mut field_chars = field.chars();
    for k in key.chars() {
        let Some(f) = field_chars.next() else {
            return false;
        };
        let same = match k {
            '\u{212A}' => f.eq_ignore_ascii_case(&'k'),
            '\u{17F}' => f.eq_ignore_ascii_case(&'s'),
            _ => k.eq_ignore_ascii_case(&f),
        };
        if !same {
            return false;
        }
    }
    field_chars.next().is_none()
}

fn decode_strings(value: &Value, path: String) -> Result<Vec<String>, RuleError> {
    decode_list(value, path, |item, path| match item {
        Value::String(s) => Ok(s.clone()),
        other => Err(invalid_type(other, "a string", path)),
    })
}

fn decode_addrs(value: &Value, path: String) -> Result<Vec<SocketAddr>, RuleError> {
    decode_list(value, path, |item, path| match item {
        Value::String(s) => s.parse().map_err(|_| RuleError {
            path,
            kind: RuleErrorKind::InvalidAddress { value: s.clone() },
        }),
        other => Err(invalid_type(other, "a string", path)),
    })
}

/// A JSON array decoded element by element; `null` is the empty list, as in Go.
fn decode_list<T>(
    value: &Value,
    path: String,
    mut decode_item: impl FnMut(&Value, String) -> Result<T, RuleError>,
) -> Result<Vec<T>, RuleError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| decode_item(item, format!("{path}[{i}]")))
            .collect(),
        other => Err(invalid_type(other, "an array", path)),
    }
}

fn decode_bool(value: &Value, path: String) -> Result<bool, RuleError> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        other => Err(invalid_type(other, "a boolean", path)),
    }
}

fn invalid_type(found: &Value, expected: &'static str, path: String) -> RuleError {
    let found = match found {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", quoted(s)),
        Value::Array(_) => "array".to_owned(),
        Value::Object(_) => "object".to_owned(),
    };
    RuleError {
        path,
        kind: RuleErrorKind::InvalidType { found, expected },
    }
}

/// Quotes text for an error message, cut short so that a huge value cannot flood a log line or
/// a 403 body.
fn quoted(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn err(value: Value) -> RuleError {
        decode_rule(&value).unwrap_err()
    }

    #[test]
    fn go_field_folding() {
        assert!(key_names_field("enforceRecorder", "enforceRecorder"));
        assert!(key_names_field("EnforceRecorder", "enforceRecorder"));
        assert!(key_names_field("ENFORCERECORDER", "enforceRecorder"));
        assert!(key_names_field("recorderAddr\u{17F}", "recorderAddrs"));
        assert!(key_names_field("\u{212A}", "k"));
        assert!(!key_names_field("enforceRecorde", "enforceRecorder"));
        assert!(!key_names_field("enforceRecorderX", "enforceRecorder"));
        assert!(!key_names_field("enforce_recorder", "enforceRecorder"));
        assert!(!key_names_field("\u{131}mpersonate", "impersonate"));
    }

    #[test]
    fn case_insensitive_keys_decode() {
        let rule = decode_rule(&json!({
            "EnforceRecorder": true,
            "ENABLEEVENTS": true,
            "Impersonate": {"Groups": ["g"]},
            "RecorderAddrs": ["10.0.0.1:80"],
        }))
        .unwrap();
        assert!(rule.enforce_recorder && rule.enable_events);
        assert_eq!(rule.impersonate.unwrap().groups, ["g"]);
        assert_eq!(rule.recorder_addrs.len(), 1);
    }

    #[test]
    fn our_extensions_decode_like_the_rest() {
        let rule =
            decode_rule(&json!({"RecordInput": true, "recordportforwarddata": true})).unwrap();
        assert!(rule.record_input && rule.record_port_forward_data);
        let e = err(json!({"recordInput": 1}));
        assert_eq!(e.path(), "recordInput");
        let rule = decode_rule(&json!({"recordInput": null})).unwrap();
        assert_eq!(rule, KubernetesCapRule::default());
    }

    #[test]
    fn nulls_are_zero_values() {
        assert_eq!(
            decode_rule(&Value::Null).unwrap(),
            KubernetesCapRule::default()
        );
        let rule = decode_rule(&json!({
            "impersonate": null, "recorder": null, "recorderAddrs": null,
            "enforceRecorder": null, "enableEvents": null,
        }))
        .unwrap();
        assert_eq!(rule, KubernetesCapRule::default());
        let rule = decode_rule(&json!({"impersonate": {"groups": null}})).unwrap();
        assert_eq!(rule.impersonate, Some(ImpersonateRule::default()));
    }

    #[test]
    fn errors_carry_paths() {
        let e = err(json!({"recorderAddrs": "1.2.3.4:80"}));
        assert_eq!(e.path(), "recorderAddrs");
        assert_eq!(
            e.to_string(),
            "invalid type: string \"1.2.3.4:80\", expected an array at recorderAddrs"
        );
        let e = err(json!({"recorderAddrs": ["1.2.3.4:80", "nope"]}));
        assert_eq!(e.path(), "recorderAddrs[1]");
        assert!(
            e.to_string()
                .starts_with("invalid socket address syntax \"nope\""),
            "{e}"
        );
        let e = err(json!({"impersonate": {"groups": ["a", 7]}}));
        assert_eq!(e.path(), "impersonate.groups[1]");
        assert_eq!(
            e.to_string(),
            "invalid type: number 7, expected a string at impersonate.groups[1]"
        );
        let e = err(json!({"enableEvents": "yes"}));
        assert_eq!(e.path(), "enableEvents");
        let e = err(json!(["not", "an", "object"]));
        assert_eq!(e.to_string(), "invalid type: array, expected an object");
    }

    #[test]
    fn addresses_need_a_port_and_brackets_for_v6() {
        for bad in [
            "",
            "1.2.3.4",
            "fd7a::1:80",
            "[fd7a::1]",
            "host:80",
            "1.2.3.4:99999",
        ] {
            let e = err(json!({ "recorderAddrs": [bad] }));
            assert!(
                matches!(e.kind(), RuleErrorKind::InvalidAddress { .. }),
                "{bad}: {e}"
            );
        }
        let rule = decode_rule(&json!({"recorderAddrs": ["1.2.3.4:80", "[fd7a::1]:443"]})).unwrap();
        assert_eq!(rule.recorder_addrs[1].port(), 443);
    }

    #[test]
    fn keys_differing_in_case_are_ambiguous() {
        let e = err(json!({"enforceRecorder": false, "EnforceRecorder": true}));
        assert!(matches!(
            e.kind(),
            RuleErrorKind::DuplicateField {
                field: "enforceRecorder",
                ..
            }
        ));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(1000);
        let e = err(json!({ "recorderAddrs": [long] }));
        assert!(e.to_string().len() < 200, "{e}");
    }
}
