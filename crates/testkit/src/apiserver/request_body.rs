//! Decoding request bodies as the apiserver's JSON and YAML serializers accept them.

use http::HeaderMap;
use serde_json::Value;

use super::status::Status;

/// The body as a JSON value. JSON (the default) and YAML are understood; protobuf and others get
/// `415`.
pub(crate) fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Value, Status> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    match media_type {
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("couldn't get version/kind; json parse error: {e}"))),
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| Status::bad_request(format!("error converting YAML to JSON: {e}"))),
        _ => Err(Status::unsupported_media_type(content_type)),
    }
}
