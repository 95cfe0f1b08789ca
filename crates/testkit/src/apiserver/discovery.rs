//! Discovery in the legacy format: `/version`, `/api`, `/apis`, `/api/v1`,
//! `/apis/authentication.k8s.io[/v1]`.
//!
//! kubectl 1.30+ first asks for aggregated discovery (`Accept:
//! application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...,application/json`).
//! client-go decides by the response's `Content-Type`: plain `application/json` makes it read the
//! legacy `APIVersions`/`APIGroupList` and then fetch each group version's resource list.

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use http::StatusCode;
use serde_json::json;

use super::responses::json_response;
use super::state::{ConnectionInfo, SharedState};

/// `/api/v1` resources: pods (with exec, attach, log) and namespaces.
const CORE_V1_RESOURCES: &str = include_str!("data/api-v1-resources.json");
/// `/apis/authentication.k8s.io/v1` resources: selfsubjectreviews.
const AUTHENTICATION_V1_RESOURCES: &str = include_str!("data/authentication-v1-resources.json");

const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

fn authentication_group() -> serde_json::Value {
    let v1 = json!({ "groupVersion": "authentication.k8s.io/v1", "version": "v1" });
    json!({ "name": AUTHENTICATION_GROUP, "versions": [v1], "preferredVersion": v1 })
}

/// `GET /version`.
pub(crate) async fn version(State(state): State<SharedState>) -> Response {
    json_response(StatusCode::OK, state.version.to_string())
}

/// `GET /api`: `APIVersions`, with the address the client reached us on.
pub(crate) async fn core_versions(Extension(conn): Extension<ConnectionInfo>) -> Response {
    let address = conn.local_addr.map(|a| a.to_string()).unwrap_or_default();
    let body = json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": address }],
    });
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /apis`: `APIGroupList`.
pub(crate) async fn groups() -> Response {
    let body =
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": [authentication_group()] });
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /apis/authentication.k8s.io`: `APIGroup`.
pub(crate) async fn authentication_group_info() -> Response {
    let mut body = authentication_group();
    body["kind"] = json!("APIGroup");
    body["apiVersion"] = json!("v1");
    json_response(StatusCode::OK, body.to_string())
}

/// `GET /api/v1`.
pub(crate) async fn core_v1() -> Response {
    json_response(StatusCode::OK, CORE_V1_RESOURCES)
}

/// `GET /apis/authentication.k8s.io/v1`.
pub(crate) async fn authentication_v1() -> Response {
    json_response(StatusCode::OK, AUTHENTICATION_V1_RESOURCES)
}

/// `GET /healthz`, `/livez`, `/readyz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists_are_valid_json() {
        for doc in [CORE_V1_RESOURCES, AUTHENTICATION_V1_RESOURCES] {
            let v: serde_json::Value = serde_json::from_str(doc).expect("valid JSON");
            assert_eq!(v["kind"], "APIResourceList");
        }
    }
}
