//! A minimal OpenAPI v3 document for `/api/v1`.
//!
//! `kubectl create`/`apply` validate with `--validate=strict` by default: they ask the OpenAPI v3
//! document whether the PATCH operation of the object's kind takes a `fieldValidation` query
//! parameter (`cli-runtime/pkg/resource/query_param_verifier_v3.go`). If it does, they leave
//! validation to the server; if the document cannot be fetched they fail with "failed to download
//! openapi". So the stand-in publishes just that: the pod and namespace PATCH operations with
//! their parameters. The PATCH operations declare no request body, which tells `kubectl apply`
//! that the document cannot compute strategic merge patches, so it falls back to its built-in Go
//! types.

use axum::extract::RawQuery;
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::responses::json_response;

const CORE_V1: &str = include_str!("data/openapi-v3-api-v1.json");

/// FNV-1a of the document: stands in for the apiserver's SHA-512 `hash`, which clients only use
/// as a cache key.
fn document_hash() -> String {
    let hash = CORE_V1.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016X}")
}

/// `GET /openapi/v3`: the index of group-version documents.
pub(crate) async fn index() -> Response {
    let url = format!("/openapi/v3/api/v1?hash={}", document_hash());
    let body = json!({ "paths": { "api/v1": { "serverRelativeURL": url } } });
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /openapi/v3/api/v1`.
pub(crate) async fn core_v1(RawQuery(_query): RawQuery) -> Response {
    json_response(StatusCode::OK, CORE_V1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_valid_json_with_field_validation() {
        let v: serde_json::Value = serde_json::from_str(CORE_V1).expect("valid JSON");
        let params =
            &v["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]["parameters"];
        assert!(params
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation")));
    }
}
