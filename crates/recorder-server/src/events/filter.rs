//! Which events `GET /api/events` and `kube-recorder events` show.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::civil_time::{parse_rfc3339, utc_day};

/// Conditions on events; all given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    /// The caller: `source.nodeUser`, one of `source.nodeTags`, or `source.node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `kubernetes.Verb`: `get`, `list`, `watch`, `create`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// `kubernetes.Namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Events whose `timestamp` is at or after this Unix time (seconds). An event without a
    /// readable timestamp counts as made at the start of the UTC day it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<f64>,
    /// The event `type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The event `id` (a request event and its response event share one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// At most this many events: the most recent matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A filter value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("since={0:?}: expected Unix seconds or an RFC 3339 time such as 2024-05-01T12:00:00Z")]
pub struct FilterError(pub String);

/// Reads a point in time given as Unix seconds (`1714564984`, `1714564984.5`) or RFC 3339.
pub fn parse_instant(text: &str) -> Result<f64, FilterError> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() {
            return Ok(seconds);
        }
    }
    parse_rfc3339(text).ok_or_else(|| FilterError(text.to_owned()))
}

impl EventFilter {
    /// Whether the file of UTC day `day` (`YYYY-MM-DD`) cannot hold a match. A day of slack
    /// allows for clocks that disagree between proxy and recorder.
    pub(crate) fn skips_day(&self, day: &str) -> bool {
        match self.since {
            Some(since) => day < utc_day(since - 86_400.0).as_str(),
            None => false,
        }
    }

    /// Whether a stored event matches; `day_start` is the start of the day it was stored.
    pub(crate) fn matches(&self, raw: &RawValue, day_start: Option<f64>) -> bool {
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(raw.get()) else {
            return false;
        };
        let source = event.get("source").and_then(Value::as_object);
        let kubernetes = event.get("kubernetes").and_then(Value::as_object);
        let field = |object: Option<&serde_json::Map<String, Value>>, key: &str| {
            object.and_then(|o| {
                o.get(key)
                    .or_else(|| {
                        o.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(key))
                            .map(|(_, v)| v)
                    })
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        };
        if let Some(user) = &self.user {
            let tags = source
                .and_then(|s| s.get("nodeTags"))
                .and_then(Value::as_array)
                .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(user)));
            let named = field(source, "nodeUser").as_ref() == Some(user)
                || field(source, "node").as_ref() == Some(user);
            if !(named || tags) {
                return false;
            }
        }
        if self.verb.is_some() && field(kubernetes, "Verb") != self.verb {
            return false;
        }
        if self.namespace.is_some() && field(kubernetes, "Namespace") != self.namespace {
            return false;
        }
        if self.event_type.is_some()
            && event.get("type").and_then(Value::as_str) != self.event_type.as_deref()
        {
            return false;
        }
        if self.id.is_some() && event.get("id").and_then(Value::as_str) != self.id.as_deref() {
            return false;
        }
        if let Some(since) = self.since {
            let when = match event.get("timestamp") {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => parse_instant(s).ok(),
                _ => None,
            }
            .or(day_start);
            if when.is_none_or(|t| t < since) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("json")
    }

    #[test]
    fn filters_on_each_field() {
        let alice = raw(
            r#"{"type":"kubernetes-api-request","id":"1","timestamp":"2024-05-01T12:00:00Z","source":{"node":"laptop","nodeUser":"alice@example.com"},"kubernetes":{"Verb":"get","Namespace":"default"}}"#,
        );
        let ci = raw(
            r#"{"id":"2","timestamp":1714568400,"source":{"node":"ci","nodeTags":["tag:ci"]},"kubernetes":{"verb":"list","Namespace":""}}"#,
        );
        let by = |filter: EventFilter| {
            [&alice, &ci]
                .iter()
                .filter(|e| filter.matches(e, None))
                .count()
        };
        assert_eq!(by(EventFilter::default()), 2);
        assert_eq!(
            by(EventFilter {
                user: Some("alice@example.com".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            by(EventFilter {
                user: Some("tag:ci".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            by(EventFilter {
                user: Some("laptop".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            by(EventFilter {
                verb: Some("list".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            by(EventFilter {
                namespace: Some("default".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            by(EventFilter {
                event_type: Some("kubernetes-api-request".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            by(EventFilter {
                id: Some("2".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            by(EventFilter {
                since: Some(1_714_564_800.0),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            by(EventFilter {
                since: Some(1_714_564_801.0),
                ..Default::default()
            }),
            1
        );
        assert!(!EventFilter {
            since: Some(1.0),
            ..Default::default()
        }
        .matches(&raw("{}"), None));
        assert!(EventFilter {
            since: Some(1.0),
            ..Default::default()
        }
        .matches(&raw("{}"), Some(2.0)));
    }

    #[test]
    fn reads_instants() {
        assert_eq!(parse_instant("1714564984"), Ok(1_714_564_984.0));
        assert_eq!(parse_instant("2024-05-01T12:03:04Z"), Ok(1_714_564_984.0));
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("inf").is_err());
    }

    #[test]
    fn skips_only_days_before_since() {
        let filter = EventFilter {
            since: parse_instant("2024-05-03T10:00:00Z").ok(),
            ..Default::default()
        };
        assert!(filter.skips_day("2024-05-01"));
        assert!(!filter.skips_day("2024-05-02"));
        assert!(!filter.skips_day("2024-05-03"));
        assert!(!EventFilter::default().skips_day("1970-01-01"));
    }
}
