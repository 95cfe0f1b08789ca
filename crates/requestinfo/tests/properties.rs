//! Properties: `parse` and `query_values` never panic, on arbitrary strings and on inputs built
//! from the segments and parameters that steer the parser; and what `parse` returns always hangs
//! together (resource, name and subresource come from `Parts`, selectors only on the verbs that
//! carry them, a non-resource request names nothing).

use proptest::prelude::*;
use requestinfo::RequestInfo;

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "get", "",
        ])
        .prop_map(String::from),
        any::<String>(),
    ]
}

/// Path segments that reach every branch, and some that should not confuse it.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "api",
            "apis",
            "v1",
            "apps",
            "namespaces",
            "ns",
            "pods",
            "web-0",
            "watch",
            "proxy",
            "status",
            "finalize",
            "exec",
            "",
            ".",
            "..",
            "%2F",
            "%2f",
            "%",
            "%zz",
            "%C3%A9",
            "%FF",
            "a+b",
            "?",
            "é",
        ])
        .prop_map(String::from),
        "[a-z%/]{0,6}",
    ]
}

fn structured_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(segment(), 0..8),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(segments, leading, trailing)| {
            let mut path = segments.join("/");
            if leading {
                path.insert(0, '/');
            }
            if trailing {
                path.push('/');
            }
            path
        })
}

fn parameter() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "watch",
        "fieldSelector",
        "labelSelector",
        "limit",
        "timeoutSeconds",
        "resourceVersion",
        "x",
        "",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "",
            "true",
            "false",
            "0",
            "1",
            "FALSE",
            "fal%C5%BFe",
            "metadata.name%3Dweb",
            "metadata.name%3D%3Dweb,a%3Db",
            "metadata.name!%3Dweb",
            "metadata.name%3Da%5C%2Cb",
            "metadata.name%3D..",
            "app%3Ddemo",
            "app+in+(a,,b)",
            "!app,x%3E5",
            "a%3D%3D%3D",
            "%00",
            "%zz",
            "1;2",
            "-9223372036854775808",
            "9223372036854775808",
        ])
        .prop_map(String::from),
        "[a-z=!,()<>%.+ ]{0,12}",
    ];
    (key, value, any::<bool>()).prop_map(|(key, value, with_equals)| {
        if with_equals {
            format!("{key}={value}")
        } else {
            key.to_owned()
        }
    })
}

fn structured_query() -> impl Strategy<Value = String> {
    prop::collection::vec(parameter(), 0..6).prop_map(|parameters| parameters.join("&"))
}

/// What every `RequestInfo` must satisfy, whatever the input.
fn check_consistent(info: &RequestInfo) -> Result<(), TestCaseError> {
    let selector_verb = matches!(info.verb.as_str(), "list" | "watch" | "deletecollection");
    prop_assert!(info.field_selector.is_empty() || selector_verb, "{info:?}");
    prop_assert!(info.label_selector.is_empty() || selector_verb, "{info:?}");

    if !info.is_resource_request {
        prop_assert!(info.api_prefix.is_empty() || info.api_prefix == "apis");
        prop_assert_eq!(
            (&info.api_group, &info.api_version, &info.namespace),
            (&String::new(), &String::new(), &String::new())
        );
        prop_assert!(info.resource.is_empty() && info.name.is_empty());
        prop_assert!(info.subresource.is_empty() && info.parts.is_empty());
        prop_assert!(info.field_selector.is_empty() && info.label_selector.is_empty());
        return Ok(());
    }

    prop_assert!(
        info.api_prefix == "api" || info.api_prefix == "apis",
        "{info:?}"
    );
    prop_assert!(info.api_prefix == "apis" || info.api_group.is_empty());
    match info.parts.as_slice() {
        [] => {
            // Go's error for `/watch` or `/proxy` with nothing after them.
            prop_assert!(info.resource.is_empty() && info.name.is_empty());
        }
        [resource, rest @ ..] => {
            prop_assert_eq!(&info.resource, resource);
            match rest.first() {
                Some(name) if !name.is_empty() => prop_assert_eq!(&info.name, name),
                // No name in the path (`pods` or `pods//status`): only a list or watch names
                // its object, by a field selector.
                _ => prop_assert!(
                    info.name.is_empty()
                        || (matches!(info.verb.as_str(), "list" | "watch")
                            && !info.field_selector.is_empty()),
                    "{info:?}"
                ),
            }
        }
    }
    if !info.subresource.is_empty() {
        prop_assert!(info.verb != "proxy");
        prop_assert_eq!(Some(&info.subresource), info.parts.get(2));
    }
    Ok(())
}

fn check(method: &str, path: &str, query: &str) -> Result<(), TestCaseError> {
    let info = requestinfo::parse(method, path, query);
    check_consistent(&info)?;
    prop_assert_eq!(&info, &requestinfo::parse(method, path, query));
    let json = serde_json::to_value(&info).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(json["Parts"].is_null(), info.parts.is_empty());
    let _ = requestinfo::query_values(query);
    let _ = requestinfo::query_values(path);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_strings(method in method(), path in any::<String>(), query in any::<String>()) {
        check(&method, &path, &query)?;
    }

    #[test]
    fn structured_requests(
        method in method(),
        path in structured_path(),
        query in structured_query(),
    ) {
        check(&method, &path, &query)?;
    }

    #[test]
    fn paths_without_escapes_are_kept(path in "[a-z/.+]{0,40}") {
        prop_assert_eq!(requestinfo::parse("GET", &path, "").path, path);
    }
}
