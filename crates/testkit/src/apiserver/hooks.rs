//! Test hooks under `/testkit/`, served without authentication and not logged:
//!
//! - `GET /testkit/requests`: every request received (oldest first, at most the last 10,000);
//! - `DELETE /testkit/requests`: forget them;
//! - `POST /testkit/pods`: create a pod from a JSON (or YAML) pod object, in its
//!   `metadata.namespace` (`default` when absent; the namespace is created if needed), firing
//!   watch events as an API create would;
//! - `DELETE /testkit/pods/{namespace}/{name}`: delete a pod, firing `DELETED`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::request_body;
use super::responses::json_response;
use super::state::{AppState, SharedState};
use super::status::Status;

/// `GET /testkit/requests`.
pub(crate) async fn requests(State(state): State<SharedState>) -> Response {
    Json(state.log.snapshot()).into_response()
}

/// `DELETE /testkit/requests`.
pub(crate) async fn clear_requests(State(state): State<SharedState>) -> StatusCode {
    state.log.clear();
    StatusCode::NO_CONTENT
}

/// Creates a pod in its own namespace (created if needed); the stored object is returned.
pub(crate) fn add_pod(state: &AppState, pod: Value) -> Result<Value, super::StoreError> {
    let namespace = pod
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default")
        .to_owned();
    if !super::names::is_dns1123_label(&namespace) {
        return Err(super::StoreError::invalid(
            "Pod",
            "",
            "metadata.namespace",
            "FieldValueInvalid",
            format!("Invalid value: {namespace:?}"),
        ));
    }
    state.store.ensure_namespace(&namespace);
    Ok(state.store.create_pod(&namespace, pod)?.object.clone())
}

/// `POST /testkit/pods`.
pub(crate) async fn create_pod(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Status> {
    let pod = request_body::decode_lenient(&headers, &body)?;
    let created = add_pod(&state, pod).map_err(|e| e.to_status())?;
    Ok(json_response(StatusCode::CREATED, created.to_string()))
}

/// `DELETE /testkit/pods/{namespace}/{name}`.
pub(crate) async fn delete_pod(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, Status> {
    let deleted = state
        .store
        .delete_pod(&ns, &name)
        .map_err(|e| e.to_status())?;
    Ok(json_response(StatusCode::OK, deleted.json.clone()))
}
