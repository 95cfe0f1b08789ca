//! `metav1.Status` error bodies, built as `k8s.io/apimachinery/pkg/api/errors` builds them, so that
//! kubectl prints the same messages it prints for a real apiserver.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

/// A failure answered as a `Status` object with the matching HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Status {
    pub(crate) code: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

impl Status {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Status {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `errors.NewUnauthorized("")`, as the authentication filter answers.
    pub(crate) fn unauthorized() -> Self {
        Status::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// `errors.NewForbidden(resource, name, err)`.
    pub(crate) fn forbidden(
        qualified_resource: &str,
        kind: &str,
        group: &str,
        name: &str,
        why: &str,
    ) -> Self {
        let message = if name.is_empty() {
            format!("{qualified_resource} is forbidden: {why}")
        } else {
            format!("{qualified_resource} {name:?} is forbidden: {why}")
        };
        let mut details = json!({ "kind": kind });
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status::new(StatusCode::FORBIDDEN, "Forbidden", message).with_details(details)
    }

    /// `errors.NewNotFound(resource, name)`.
    pub(crate) fn not_found(resource: &str, name: &str) -> Self {
        Status::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} {name:?} not found"),
        )
        .with_details(json!({ "name": name, "kind": resource }))
    }

    /// What the apiserver answers for a path no handler serves.
    pub(crate) fn no_route() -> Self {
        Status::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// `errors.NewAlreadyExists(resource, name)`.
    pub(crate) fn already_exists(resource: &str, name: &str) -> Self {
        Status::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{resource} {name:?} already exists"),
        )
        .with_details(json!({ "name": name, "kind": resource }))
    }

    /// `errors.NewConflict(resource, name, err)`.
    pub(crate) fn conflict(resource: &str, name: &str, why: &str) -> Self {
        Status::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} {name:?}: {why}"),
        )
        .with_details(json!({ "name": name, "kind": resource }))
    }

    /// `errors.NewInvalid(kind, name, field errors)` with a single field error.
    pub(crate) fn invalid(
        kind: &str,
        name: &str,
        field: &str,
        cause_reason: &str,
        what: &str,
    ) -> Self {
        let cause = format!("{field}: {what}");
        Status::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} {name:?} is invalid: {cause}"),
        )
        .with_details(json!({
            "name": name,
            "kind": kind,
            "causes": [{ "reason": cause_reason, "message": what, "field": field }],
        }))
    }

    /// `errors.NewBadRequest(message)`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Status::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// `errors.NewResourceExpired(message)`: a resourceVersion older than the watch history.
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Status::new(StatusCode::GONE, "Expired", message)
    }

    /// `errors.NewMethodNotSupported`, as the apiserver answers a verb a resource does not serve.
    pub(crate) fn method_not_allowed() -> Self {
        Status::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    /// `errors.NewUnsupportedMediaType`-like answer to a body the stand-in cannot decode.
    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Status::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format ({content_type:?}) - accepted media types include: application/json, application/yaml"),
        )
    }

    /// The `Status` object itself.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            v["details"] = details.clone();
        }
        v
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let body = self.to_json().to_string();
        let mut response = (self.code, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_matches_apiserver_wording() {
        let s = Status::forbidden("users", "users", "", "bob", "User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope");
        assert_eq!(
            s.to_json()["message"],
            "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        assert_eq!(s.to_json()["code"], 403);
        assert_eq!(
            s.to_json()["details"],
            json!({"name": "bob", "kind": "users"})
        );
    }
}
