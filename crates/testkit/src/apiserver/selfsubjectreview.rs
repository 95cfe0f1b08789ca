//! `POST /apis/authentication.k8s.io/{v1,v1beta1,v1alpha1}/selfsubjectreviews` (`kubectl auth
//! whoami`).
//!
//! kubectl sends the (empty) review as protobuf; the stand-in does not decode protobuf and does not
//! need to, since the review has no input. It answers JSON, which kubectl accepts (it sends
//! `Accept: application/vnd.kubernetes.protobuf, */*` and decodes by the response type).
//! v1beta1 and v1alpha1 are answered too (not advertised), for kubectl 1.27 and older, which try
//! them in turn.

use axum::extract::Path;
use axum::response::Response;
use axum::Extension;
use http::StatusCode;
use serde_json::json;

use super::responses::json_response;
use super::state::RequestUser;
use super::status::Status;

/// Creates a review of the caller (after impersonation).
pub(crate) async fn create(
    Path(version): Path<String>,
    Extension(user): Extension<RequestUser>,
) -> Result<Response, Status> {
    if !matches!(version.as_str(), "v1" | "v1beta1" | "v1alpha1") {
        return Err(Status::no_route());
    }
    let body = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        // The review is not stored, so, as from the apiserver, it has no creation time.
        "metadata": { "creationTimestamp": null },
        "status": { "userInfo": user.effective },
    });
    Ok(json_response(StatusCode::CREATED, body.to_string()))
}
