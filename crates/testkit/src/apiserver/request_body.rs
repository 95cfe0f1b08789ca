//! Decoding request bodies as the apiserver's JSON and YAML serializers accept them.

use http::HeaderMap;
use serde_json::Value;

use super::status::Status;

/// The body as a JSON value. JSON (the default) and YAML are understood, and protobuf for the
/// few objects kubectl sends that way; other types get `415`.
pub(crate) fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Value, Status> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    match media_type {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| {
            Status::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| Status::bad_request(format!("error converting YAML to JSON: {e}"))),
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body),
        _ => Err(Status::unsupported_media_type(content_type)),
    }
}

/// Like [`decode`], but any content type other than YAML is read as JSON (for test hooks, which
/// `curl -d` reaches with `application/x-www-form-urlencoded`).
pub(crate) fn decode_lenient(headers: &HeaderMap, body: &[u8]) -> Result<Value, Status> {
    let is_yaml = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/yaml"));
    if is_yaml {
        decode(headers, body)
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("json parse error: {e}")))
    }
}
