//! `requestinfo::parse` and `requestinfo::query_values` on arbitrary requests: neither may
//! panic, and what `parse` returns must hang together.
//!
//! The input is `METHOD 0xFF PATH 0xFF QUERY`: split at the first two 0xFF bytes (a byte UTF-8
//! never uses), each piece read as UTF-8 with invalid bytes replaced. Missing pieces are empty.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pieces = data.splitn(3, |&b| b == 0xff);
    let mut next = || String::from_utf8_lossy(pieces.next().unwrap_or_default()).into_owned();
    let (method, path, query) = (next(), next(), next());

    let info = requestinfo::parse(&method, &path, &query);
    assert_eq!(info, requestinfo::parse(&method, &path, &query));

    if !info.is_resource_request {
        assert!(info.parts.is_empty() && info.resource.is_empty() && info.name.is_empty());
        assert!(info.namespace.is_empty() && info.api_version.is_empty());
    } else {
        assert!(info.api_prefix == "api" || info.api_prefix == "apis");
    }
    if let Some(resource) = info.parts.first() {
        assert_eq!(&info.resource, resource);
    }
    match info.parts.get(1) {
        Some(name) if !name.is_empty() => assert_eq!(&info.name, name),
        // No name in the path: only a list or watch names its object, by a field selector.
        _ => assert!(
            info.name.is_empty()
                || (matches!(info.verb.as_str(), "list" | "watch")
                    && !info.field_selector.is_empty())
        ),
    }
    if !info.subresource.is_empty() {
        assert_eq!(Some(&info.subresource), info.parts.get(2));
        assert_ne!(info.verb, "proxy");
    }
    if !info.field_selector.is_empty() || !info.label_selector.is_empty() {
        assert!(matches!(
            info.verb.as_str(),
            "list" | "watch" | "deletecollection"
        ));
    }

    let values = requestinfo::query_values(&query);
    assert!(values.values().all(|v| !v.is_empty()));
});
