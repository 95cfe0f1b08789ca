//! `metav1.ListOptions` and friends from a request's query string.

use std::time::Duration;

use super::pods::store::Stored;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::Status;

/// `includeObject` of a table request: how much of each object a row carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    /// The default: a `PartialObjectMetadata`, which kubectl needs for `-A`, `--show-labels`, `-L`.
    #[default]
    Metadata,
    Object,
}

/// The query parameters of a get, list or watch.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListOptions {
    pub(crate) label_selector: LabelSelector,
    pub(crate) field_selector: FieldSelector,
    pub(crate) watch: bool,
    /// `None` when absent or empty.
    pub(crate) resource_version: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    pub(crate) include_object: IncludeObject,
}

/// Go's `strconv.ParseBool`, which the apiserver uses for `watch`.
fn parse_bool(name: &str, v: &str) -> Result<bool, Status> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        _ => Err(Status::bad_request(format!(
            "{name}: invalid boolean value {v:?}"
        ))),
    }
}

impl ListOptions {
    /// Parses the query; `fields` are the field labels this resource accepts.
    pub(crate) fn from_query(query: Option<&str>, fields: &[&str]) -> Result<Self, Status> {
        let mut o = ListOptions::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "labelSelector" => o.label_selector = LabelSelector::parse(&value).map_err(Status::bad_request)?,
                "fieldSelector" => {
                    o.field_selector = FieldSelector::parse(&value, fields).map_err(Status::bad_request)?
                }
                "watch" => o.watch = parse_bool("watch", &value)?,
                "resourceVersion" if !value.is_empty() => o.resource_version = Some(value.into_owned()),
                "timeoutSeconds" => {
                    let secs: u64 = value
                        .parse()
                        .map_err(|_| Status::bad_request(format!("timeoutSeconds: invalid value {value:?}")))?;
                    o.timeout = Some(Duration::from_secs(secs));
                }
                "limit" => {
                    let n: i64 =
                        value.parse().map_err(|_| Status::bad_request(format!("limit: invalid value {value:?}")))?;
                    // The apiserver treats zero and negative limits as "no limit".
                    o.limit = usize::try_from(n).ok().filter(|&n| n > 0);
                }
                "continue" if !value.is_empty() => o.continue_token = Some(value.into_owned()),
                "includeObject" => {
                    o.include_object = match value.as_ref() {
                        "None" => IncludeObject::None,
                        "Metadata" | "" => IncludeObject::Metadata,
                        "Object" => IncludeObject::Object,
                        other => {
                            return Err(Status::bad_request(format!(
                                "includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
                            )))
                        }
                    }
                }
                // allowWatchBookmarks, sendInitialEvents, resourceVersionMatch, pretty, ... are
                // accepted and not acted on.
                _ => {}
            }
        }
        Ok(o)
    }

    /// Whether an object passes the label and field selectors.
    pub(crate) fn matches(&self, object: &Stored) -> bool {
        self.label_selector.matches(object.labels()) && self.field_selector.matches(&object.object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::selectors::POD_FIELDS;

    #[test]
    fn parses_kubectl_queries() {
        let o = ListOptions::from_query(Some("limit=500&watch=1&resourceVersion=12&timeoutSeconds=5&fieldSelector=metadata.name%3Ddemo"), POD_FIELDS)
            .expect("valid");
        assert_eq!(o.limit, Some(500));
        assert!(o.watch);
        assert_eq!(o.resource_version.as_deref(), Some("12"));
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        assert!(ListOptions::from_query(Some("watch=maybe"), POD_FIELDS).is_err());
        assert!(ListOptions::from_query(Some("fieldSelector=spec.x%3D1"), POD_FIELDS).is_err());
    }
}
