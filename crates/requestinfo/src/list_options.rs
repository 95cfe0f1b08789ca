//! What the kube-apiserver learns from a collection GET's query: whether it is a watch, and
//! whether a `metadata.name` field selector names one object.
//!
//! `RequestInfoFactory` decodes the query into `metainternalversion.ListOptions` through the
//! parameter codec (`url.Values` to `metav1.ListOptions` by the generated conversion, then to the
//! internal version, which parses both selectors). When that decoding fails, it keeps only a
//! hand-read `watch` and no name. The decoding fails when:
//! - `timeoutSeconds` or `limit` (first value) is not a 64-bit decimal integer;
//! - `fieldSelector` (first value) does not parse as a field selector;
//! - `labelSelector` (first value) does not parse as a label selector.
//!
//! Every other parameter is copied without a check, and unknown ones are ignored.

use std::collections::BTreeMap;

use crate::go_url::first;
use crate::{field_selector, label_selector};

/// The field a list or watch can name its single object by.
const NAME_FIELD: &str = "metadata.name";

/// The parts of the decoded `ListOptions` that `RequestInfo` uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ListQuery {
    /// `watch` was set: the request is a watch, not a list.
    pub(crate) watch: bool,
    /// The value of an exact `metadata.name` field selector, unchecked.
    pub(crate) name: Option<String>,
}

/// The query as the apiserver's `RequestInfoFactory` reads it for a collection GET.
pub(crate) fn list_query(values: &BTreeMap<String, Vec<String>>) -> ListQuery {
    decode(values).unwrap_or_else(|| ListQuery {
        watch: first(values, "watch").is_some_and(|value| {
            // After a decoding error the apiserver reads `watch` by hand, with
            // `strings.ToLower`; no non-ASCII letter lowercases to one of "false".
            !(value == "0" || value.eq_ignore_ascii_case("false"))
        }),
        name: None,
    })
}

/// `ParameterCodec.DecodeParameters` into `ListOptions`; `None` when it returns an error.
fn decode(values: &BTreeMap<String, Vec<String>>) -> Option<ListQuery> {
    for integer in ["timeoutSeconds", "limit"] {
        if let Some(value) = first(values, integer) {
            // Go's strconv.ParseInt(value, 10, 64): optional sign, decimal digits, in range.
            value.parse::<i64>().ok()?;
        }
    }
    if !label_selector::parses(first(values, "labelSelector").unwrap_or_default()) {
        return None;
    }
    let name = field_selector::exact_match(
        first(values, "fieldSelector").unwrap_or_default(),
        NAME_FIELD,
    )
    .ok()?;
    Some(ListQuery {
        watch: first(values, "watch").is_some_and(go_query_bool),
        name,
    })
}

/// `runtime.Convert_Slice_string_To_bool`: false only for `0` and for `false` in any letter case
/// (Go's `strings.EqualFold`, under which `ſ`, U+017F, is an `s`); true for anything else,
/// the empty string included.
fn go_query_bool(value: &str) -> bool {
    !(value == "0" || equal_fold_false(value))
}

fn equal_fold_false(value: &str) -> bool {
    let mut chars = value.chars();
    "false".chars().all(|expected| {
        chars.next().is_some_and(|c| {
            c.to_ascii_lowercase() == expected || (expected == 's' && c == '\u{17f}')
        })
    }) && chars.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::go_url::query_values;

    fn query(raw: &str) -> ListQuery {
        list_query(&query_values(raw))
    }

    fn watch(raw: &str) -> bool {
        query(raw).watch
    }

    #[test]
    fn watch_values() {
        for yes in [
            "watch=true",
            "watch=1",
            "watch=",
            "watch",
            "watch=yes",
            "watch=t",
            "watch=2",
            "watch=true&watch=false",
        ] {
            assert!(watch(yes), "{yes}");
        }
        for no in [
            "",
            "watch=false",
            "watch=FALSE",
            "watch=False",
            "watch=0",
            "watch=fal%C5%BFe",
            "watch=false&watch=true",
            "watchx=true",
        ] {
            assert!(!watch(no), "{no}");
        }
    }

    #[test]
    fn a_decoding_error_reads_watch_by_hand() {
        // strings.ToLower("falſe") is not "false": a watch, once decoding has failed.
        assert!(watch("watch=fal%C5%BFe&limit=x"));
        assert!(watch("watch=1&limit=x"));
        assert!(!watch("watch=FALSE&limit=x"));
        assert!(!watch("limit=x"));
    }

    #[test]
    fn name_from_field_selector() {
        assert_eq!(
            query("fieldSelector=metadata.name%3Dweb-0").name.as_deref(),
            Some("web-0")
        );
        assert_eq!(query("fieldSelector=spec.nodeName%3Dn1").name, None);
    }

    #[test]
    fn decoding_errors_lose_the_name() {
        for raw in [
            "fieldSelector=metadata.name%3Dweb&limit=ten",
            "fieldSelector=metadata.name%3Dweb&limit=",
            "fieldSelector=metadata.name%3Dweb&timeoutSeconds=1.5",
            "fieldSelector=metadata.name%3Dweb&timeoutSeconds=99999999999999999999",
            "fieldSelector=metadata.name%3Dweb&labelSelector=%3D%3D",
            "fieldSelector=metadata.name%3Dweb,bad",
        ] {
            assert_eq!(query(raw).name, None, "{raw}");
        }
        for raw in [
            "fieldSelector=metadata.name%3Dweb&limit=500&timeoutSeconds=-1",
            "fieldSelector=metadata.name%3Dweb&limit=%2B5",
            "fieldSelector=metadata.name%3Dweb&labelSelector=app%3Ddemo",
            "fieldSelector=metadata.name%3Dweb&resourceVersionMatch=anything&continue=x",
            "fieldSelector=metadata.name%3Dweb&limit=1&limit=bad",
        ] {
            assert_eq!(query(raw).name.as_deref(), Some("web"), "{raw}");
        }
    }
}
