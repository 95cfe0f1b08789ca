//! `RequestInfo` serialises as Go's `encoding/json` writes the apiserver's struct: the Go field
//! names, and a nil `Parts` as `null`.

use requestinfo::RequestInfo;
use serde_json::{json, Value};

#[test]
fn resource_request_uses_go_field_names_in_order() {
    let info = requestinfo::parse(
        "GET",
        "/apis/apps/v1/namespaces/prod/deployments",
        "watch=true&fieldSelector=metadata.name%3Dweb&labelSelector=app%3Ddemo",
    );
    let text = serde_json::to_string(&info).expect("serialises");
    assert_eq!(
        text,
        concat!(
            r#"{"IsResourceRequest":true,"Path":"/apis/apps/v1/namespaces/prod/deployments","#,
            r#""Verb":"watch","APIPrefix":"apis","APIGroup":"apps","APIVersion":"v1","#,
            r#""Namespace":"prod","Resource":"deployments","Subresource":"","Name":"web","#,
            r#""Parts":["deployments"],"FieldSelector":"metadata.name=web","#,
            r#""LabelSelector":"app=demo"}"#
        )
    );
}

#[test]
fn subresource_request() {
    let info = requestinfo::parse(
        "POST",
        "/api/v1/namespaces/ns/pods/web-0/exec",
        "command=sh",
    );
    assert_eq!(
        serde_json::to_value(&info).expect("serialises"),
        json!({
            "IsResourceRequest": true,
            "Path": "/api/v1/namespaces/ns/pods/web-0/exec",
            "Verb": "create",
            "APIPrefix": "api",
            "APIGroup": "",
            "APIVersion": "v1",
            "Namespace": "ns",
            "Resource": "pods",
            "Subresource": "exec",
            "Name": "web-0",
            "Parts": ["pods", "web-0", "exec"],
            "FieldSelector": "",
            "LabelSelector": ""
        })
    );
}

#[test]
fn non_resource_request_has_null_parts() {
    let info = requestinfo::parse("GET", "/healthz", "verbose");
    let value = serde_json::to_value(&info).expect("serialises");
    assert_eq!(value["Parts"], Value::Null);
    assert_eq!(value["IsResourceRequest"], Value::Bool(false));
    assert_eq!(value["Verb"], "get");
}

#[test]
fn empty_parts_serialise_as_null_and_others_as_arrays() {
    let mut info = RequestInfo::default();
    let value = serde_json::to_value(&info).expect("serialises");
    assert_eq!(value["Parts"], Value::Null);
    assert_eq!(value.as_object().map(|o| o.len()), Some(13));

    info.parts = vec![String::new()];
    let value = serde_json::to_value(&info).expect("serialises");
    assert_eq!(value["Parts"], json!([""]));
}

#[test]
fn the_partial_info_of_a_go_error_has_null_parts() {
    let info = requestinfo::parse("GET", "/api/v1/watch", "");
    let value = serde_json::to_value(&info).expect("serialises");
    assert_eq!(value["IsResourceRequest"], Value::Bool(true));
    assert_eq!(value["Verb"], "get");
    assert_eq!(value["Parts"], Value::Null);
}
