//! `metav1.Status` error bodies, built as `k8s.io/apimachinery/pkg/api/errors` builds them, so that
//! kubectl prints the same messages it prints for a real apiserver. The JSON comes from
//! `kubestatus` (Go's field order and `omitempty`).

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use kubestatus::{reason, StatusCause, StatusDetails};
use serde_json::Value;

/// A failure answered as a `Status` object with the matching HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Status {
    pub(crate) code: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    /// Boxed: a `Status` is the error of most handlers' `Result`s, and should stay small.
    pub(crate) details: Option<Box<StatusDetails>>,
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

    fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// `errors.NewUnauthorized("")`, as the authentication filter answers.
    pub(crate) fn unauthorized() -> Self {
        Status::new(
            StatusCode::UNAUTHORIZED,
            reason::UNAUTHORIZED,
            "Unauthorized",
        )
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
        let details = StatusDetails {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            ..StatusDetails::default()
        };
        Status::new(StatusCode::FORBIDDEN, reason::FORBIDDEN, message).with_details(details)
    }

    /// `errors.NewNotFound(resource, name)`.
    pub(crate) fn not_found(resource: &str, name: &str) -> Self {
        Status::new(
            StatusCode::NOT_FOUND,
            reason::NOT_FOUND,
            format!("{resource} {name:?} not found"),
        )
        .with_details(named(resource, name))
    }

    /// What the apiserver answers for a path no handler serves.
    pub(crate) fn no_route() -> Self {
        Status::new(
            StatusCode::NOT_FOUND,
            reason::NOT_FOUND,
            "the server could not find the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    /// `errors.NewAlreadyExists(resource, name)`.
    pub(crate) fn already_exists(resource: &str, name: &str) -> Self {
        Status::new(
            StatusCode::CONFLICT,
            reason::ALREADY_EXISTS,
            format!("{resource} {name:?} already exists"),
        )
        .with_details(named(resource, name))
    }

    /// `errors.NewConflict(resource, name, err)`.
    pub(crate) fn conflict(resource: &str, name: &str, why: &str) -> Self {
        Status::new(
            StatusCode::CONFLICT,
            reason::CONFLICT,
            format!("Operation cannot be fulfilled on {resource} {name:?}: {why}"),
        )
        .with_details(named(resource, name))
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
            reason::INVALID,
            format!("{kind} {name:?} is invalid: {cause}"),
        )
        .with_details(StatusDetails {
            causes: vec![StatusCause {
                reason: cause_reason.to_owned().into(),
                message: what.to_owned(),
                field: field.to_owned(),
            }],
            ..named(kind, name)
        })
    }

    /// `errors.NewBadRequest(message)`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Status::new(StatusCode::BAD_REQUEST, reason::BAD_REQUEST, message)
    }

    /// `errors.NewResourceExpired(message)`: a resourceVersion older than the watch history.
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Status::new(StatusCode::GONE, reason::EXPIRED, message)
    }

    /// `errors.NewMethodNotSupported`, as the apiserver answers a verb a resource does not serve.
    pub(crate) fn method_not_allowed() -> Self {
        Status::new(
            StatusCode::METHOD_NOT_ALLOWED,
            reason::METHOD_NOT_ALLOWED,
            "the server does not allow this method on the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    /// `errors.NewUnsupportedMediaType`-like answer to a body the stand-in cannot decode.
    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Status::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason::UNSUPPORTED_MEDIA_TYPE,
            format!("the body of the request was in an unknown format ({content_type:?}) - accepted media types include: application/json, application/yaml"),
        )
    }

    /// The `metav1.Status` this failure is.
    fn kube_status(&self) -> kubestatus::Status {
        let status =
            kubestatus::Status::failure(self.code.as_u16(), self.reason, self.message.as_str());
        match &self.details {
            Some(details) => status.with_details(StatusDetails::clone(details)),
            None => status,
        }
    }

    /// The `Status` object itself, as a value (e.g. a watch's `ERROR` event's `object`).
    pub(crate) fn to_json(&self) -> Value {
        self.kube_status().to_value()
    }
}

/// `StatusDetails` naming one object (`apierrors` fills `kind` with the resource).
fn named(kind: &str, name: &str) -> StatusDetails {
    StatusDetails {
        name: name.to_owned(),
        kind: kind.to_owned(),
        ..StatusDetails::default()
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let body = self.kube_status().to_json();
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
            serde_json::json!({"name": "bob", "kind": "users"})
        );
    }

    #[test]
    fn body_is_written_in_go_field_order() {
        let response = Status::not_found("pods", "web").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            Status::not_found("pods", "web").kube_status().to_json(),
            br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"web\" not found","reason":"NotFound","details":{"name":"web","kind":"pods"},"code":404}"#
        );
        assert_eq!(
            Status::invalid(
                "Pod",
                "web",
                "spec.containers",
                "FieldValueRequired",
                "Required value"
            )
            .to_json()["details"]["causes"][0],
            serde_json::json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"})
        );
        assert_eq!(
            Status::no_route().kube_status().to_json(),
            br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}"#
        );
    }
}
