//! The JSON of API events: Tailscale's `sessionrecording.Event` as Go writes it, byte for byte,
//! and kube-auth-proxy's response event.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use castfmt::{
    ApiRequestEvent, ApiResponseEvent, EventDestination, EventRequest, EventResponse, EventSource,
    API_REQUEST_EVENT_TYPE, API_RESPONSE_EVENT_TYPE,
};
use requestinfo::RequestInfo;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/api_events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn alice() -> EventSource {
    EventSource {
        node: "laptop.tail-scale.ts.net".into(),
        node_id: "nLaptop1CNTRL".into(),
        node_tags: Vec::new(),
        node_user_id: 12345,
        node_user: "alice@example.com".into(),
    }
}

fn ci() -> EventSource {
    EventSource {
        node: "ci-runner.tail-scale.ts.net".into(),
        node_id: "nCI1CNTRL".into(),
        node_tags: vec!["tag:ci".into(), "tag:k8s".into()],
        node_user_id: 0,
        node_user: String::new(),
    }
}

fn proxy() -> EventDestination {
    EventDestination {
        node: "kube-proxy.tail-scale.ts.net".into(),
        node_id: "nProxyCNTRL".into(),
    }
}

fn resource(verb: &str, path: &str, resource: &str, parts: &[&str]) -> RequestInfo {
    RequestInfo {
        is_resource_request: true,
        path: path.into(),
        verb: verb.into(),
        api_prefix: "api".into(),
        api_group: String::new(),
        api_version: "v1".into(),
        namespace: "default".into(),
        resource: resource.into(),
        subresource: String::new(),
        name: parts.get(1).map(|s| s.to_string()).unwrap_or_default(),
        parts: parts.iter().map(|s| s.to_string()).collect(),
        field_selector: String::new(),
        label_selector: String::new(),
    }
}

fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in pairs {
        values
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
    values
}

fn user_event() -> ApiRequestEvent {
    ApiRequestEvent {
        id: "7d0c4a1e-3b2f-4c5d-9e8f-0a1b2c3d4e5f".into(),
        timestamp: 1_714_564_800,
        user_agent: "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef".into(),
        request: EventRequest {
            method: "POST".into(),
            path: "/api/v1/namespaces/default/pods?dryRun=All&fieldManager=kubectl".into(),
            body: Some(Bytes::from_static(br#"{"kind":"Pod"}"#)),
            query_parameters: query(&[("dryRun", "All"), ("fieldManager", "kubectl")]),
            body_truncated: false,
            body_size: None,
        },
        kubernetes: resource(
            "create",
            "/api/v1/namespaces/default/pods",
            "pods",
            &["pods"],
        ),
        source: alice(),
        destination: proxy(),
    }
}

fn tagged_event() -> ApiRequestEvent {
    ApiRequestEvent {
        id: "7d0c4a1e-3b2f-4c5d-9e8f-0a1b2c3d4e60".into(),
        timestamp: 1_714_564_801,
        user_agent: String::new(),
        request: EventRequest {
            method: "GET".into(),
            path: "/version".into(),
            body: None,
            query_parameters: BTreeMap::new(),
            body_truncated: false,
            body_size: None,
        },
        // What the apiserver makes of a non-resource request: no parts (Go: nil).
        kubernetes: RequestInfo {
            path: "/version".into(),
            verb: "get".into(),
            ..RequestInfo::default()
        },
        source: ci(),
        destination: proxy(),
    }
}

fn truncated_event() -> ApiRequestEvent {
    ApiRequestEvent {
        id: "7d0c4a1e-3b2f-4c5d-9e8f-0a1b2c3d4e61".into(),
        timestamp: 1_714_564_802,
        user_agent: "kubectl/v1.32.0".into(),
        request: EventRequest {
            method: "PUT".into(),
            path: "/api/v1/namespaces/default/configmaps/big".into(),
            body: Some(Bytes::from_static(b"{\"kind")),
            query_parameters: BTreeMap::new(),
            body_truncated: true,
            body_size: Some(1 << 20),
        },
        kubernetes: resource(
            "update",
            "/api/v1/namespaces/default/configmaps/big",
            "configmaps",
            &["configmaps", "big"],
        ),
        source: alice(),
        destination: proxy(),
    }
}

fn response_event() -> ApiResponseEvent {
    let mut kubernetes = resource(
        "watch",
        "/api/v1/namespaces/default/pods",
        "pods",
        &["pods"],
    );
    kubernetes.label_selector = "app=web".into();
    ApiResponseEvent {
        id: "7d0c4a1e-3b2f-4c5d-9e8f-0a1b2c3d4e5f".into(),
        timestamp: 1_714_564_803,
        kubernetes,
        source: alice(),
        destination: proxy(),
        response: EventResponse {
            status: 200,
            duration_ms: 1520.25,
            bytes: 4096,
            error: Some("upstream body: connection reset".into()),
        },
    }
}

fn json<T: serde::Serialize>(event: &T) -> String {
    serde_json::to_string(event).expect("serialise")
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn a_user_callers_request_event_is_written_as_go_writes_it() {
    let text = json(&user_event());
    assert_eq!(text, fixture("request-user.json"));
    assert!(text.starts_with(&format!(r#"{{"type":"{API_REQUEST_EVENT_TYPE}","id":"#)));

    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["type"], "kubernetes-api-request");
    assert_eq!(
        keys(&value),
        [
            "destination",
            "id",
            "kubernetes",
            "request",
            "source",
            "timestamp",
            "type",
            "userAgent"
        ]
    );
    assert_eq!(
        keys(&value["source"]),
        ["node", "nodeID", "nodeUser", "nodeUserID"]
    );
    assert_eq!(
        keys(&value["request"]),
        ["body", "method", "path", "queryParameters"]
    );
    assert_eq!(value["request"]["body"], "eyJraW5kIjoiUG9kIn0=");
    assert_eq!(
        value["request"]["queryParameters"]["fieldManager"],
        serde_json::json!(["kubectl"])
    );
    assert_eq!(
        keys(&value["kubernetes"]),
        [
            "APIGroup",
            "APIPrefix",
            "APIVersion",
            "FieldSelector",
            "IsResourceRequest",
            "LabelSelector",
            "Name",
            "Namespace",
            "Parts",
            "Path",
            "Resource",
            "Subresource",
            "Verb"
        ]
    );
    assert_eq!(keys(&value["destination"]), ["node", "nodeID"]);
}

#[test]
fn a_tagged_callers_request_event_has_tags_and_no_user_and_nil_parts_are_null() {
    let text = json(&tagged_event());
    assert_eq!(text, fixture("request-tagged.json"));
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(keys(&value["source"]), ["node", "nodeID", "nodeTags"]);
    assert_eq!(
        value["source"]["nodeTags"],
        serde_json::json!(["tag:ci", "tag:k8s"])
    );
    // Go's non-nil empty map (`req.URL.Query()`), nil []byte and nil slice.
    assert_eq!(value["request"]["queryParameters"], serde_json::json!({}));
    assert!(value["request"]["body"].is_null());
    assert!(value["kubernetes"]["Parts"].is_null());
    assert!(value["request"].get("bodyTruncated").is_none());
    assert!(value["request"].get("bodySize").is_none());
}

#[test]
fn an_empty_body_is_an_empty_string() {
    let mut event = tagged_event();
    event.request.body = Some(Bytes::new());
    let value: Value = serde_json::from_str(&json(&event)).expect("JSON");
    assert_eq!(value["request"]["body"], "");
}

#[test]
fn a_cut_body_says_so_with_the_full_size() {
    let text = json(&truncated_event());
    assert_eq!(text, fixture("request-truncated.json"));
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["request"]["bodyTruncated"], true);
    assert_eq!(value["request"]["bodySize"], 1_048_576);

    // Cut, size unknown (no Content-Length): only the flag.
    let mut event = truncated_event();
    event.request.body_size = None;
    let value: Value = serde_json::from_str(&json(&event)).expect("JSON");
    assert_eq!(value["request"]["bodyTruncated"], true);
    assert!(value["request"].get("bodySize").is_none());
}

#[test]
fn a_response_event_is_linked_by_id_and_omits_no_error() {
    let text = json(&response_event());
    assert_eq!(text, fixture("response-error.json"));
    assert!(text.starts_with(&format!(r#"{{"type":"{API_RESPONSE_EVENT_TYPE}","id":"#)));
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        keys(&value),
        [
            "destination",
            "id",
            "kubernetes",
            "response",
            "source",
            "timestamp",
            "type"
        ]
    );
    assert_eq!(
        keys(&value["response"]),
        ["bytes", "durationMs", "error", "status"]
    );

    let mut event = response_event();
    event.response.error = None;
    let value: Value = serde_json::from_str(&json(&event)).expect("JSON");
    assert_eq!(keys(&value["response"]), ["bytes", "durationMs", "status"]);
}

#[test]
fn events_read_back_as_written() {
    for (name, event) in [
        ("request-user.json", user_event()),
        ("request-tagged.json", tagged_event()),
        ("request-truncated.json", truncated_event()),
    ] {
        let read: ApiRequestEvent = serde_json::from_str(&fixture(name)).expect(name);
        assert_eq!(read, event, "{name}");
    }
    let read: ApiResponseEvent =
        serde_json::from_str(&fixture("response-error.json")).expect("response");
    assert_eq!(read, response_event());
}

#[test]
fn a_null_or_missing_query_reads_as_empty() {
    let written = fixture("request-tagged.json");
    let null = written.replace(r#""queryParameters":{}"#, r#""queryParameters":null"#);
    let missing = written.replace(r#","queryParameters":{}"#, "");
    for text in [null, missing] {
        assert_ne!(text, written);
        let read: ApiRequestEvent = serde_json::from_str(&text).expect("read");
        assert_eq!(read, tagged_event(), "{text}");
    }
}

#[test]
fn an_event_as_go_writes_it_reads_with_missing_fields_defaulted() {
    let read: ApiRequestEvent = serde_json::from_str(&fixture("go-written.json")).expect("read");
    assert_eq!(read.id, "0a1b2c3d-0002");
    assert_eq!(read.request.body, Some(Bytes::new()));
    assert_eq!(read.kubernetes.parts, ["deployments"]);
    assert_eq!(read.kubernetes.label_selector, "");
    assert_eq!(read.source.node_tags, ["tag:ci"]);
    assert_eq!(read.source.node_user_id, 0);
}

#[test]
fn the_type_is_checked_when_reading() {
    assert!(serde_json::from_str::<ApiResponseEvent>(&fixture("request-user.json")).is_err());
    let error = serde_json::from_str::<ApiRequestEvent>(&fixture("response-error.json"))
        .expect_err("a response event is not a request event");
    assert!(
        error.to_string().contains("kubernetes-api-response"),
        "{error}"
    );
    let mislabelled = fixture("response-error.json").replace(API_RESPONSE_EVENT_TYPE, "other");
    let error = serde_json::from_str::<ApiResponseEvent>(&mislabelled)
        .expect_err("the response event's type is checked");
    assert!(error.to_string().contains("\"other\""), "{error}");
    let bad_body = fixture("request-user.json").replace("eyJraW5kIjoiUG9kIn0=", "not base64!");
    assert!(serde_json::from_str::<ApiRequestEvent>(&bad_body).is_err());
}
