//! Kubernetes `Status` error bodies.
//!
//! kubectl prints the `message` of a `metav1.Status` body and maps `reason` and `code` to its own error
//! texts ("error: You must be logged in to the server (Unauthorized)"), so every error the proxy itself
//! produces is a Status with the HTTP code repeated in `code`.
//!
//! One exception, for discovery (`/version`, `/api[/v]`, `/apis[/g[/v]]`, `/openapi/...`): client-go's
//! discovery client reads those answers with `Result.Raw()`, which never decodes a Status body and only
//! keeps the body as the message when it is `text/plain` (client-go `rest/request.go`,
//! `newUnstructuredResponseError`). kubectl's first requests are discovery, so a JSON body there would
//! print "Error from server (Forbidden): unknown"; a plain-text body prints the proxy's reason.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use kubestatus::reason;

/// An error the proxy answers itself, rendered as a Kubernetes `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KubeStatus {
    /// HTTP status code, repeated as `code` in the body.
    pub(crate) code: StatusCode,
    /// Machine-readable reason (`metav1.StatusReason`), e.g. `Unauthorized`.
    pub(crate) reason: &'static str,
    /// Human-readable message kubectl prints.
    pub(crate) message: String,
    /// Ask the client to close the connection after this answer (used when the connection's identity
    /// lookup failed, so the next attempt starts with a fresh lookup).
    pub(crate) close_connection: bool,
}

impl KubeStatus {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            close_connection: false,
        }
    }

    /// 401: the caller is not known to the identity source.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason::UNAUTHORIZED, message)
    }

    /// 403: the caller is known but its grant does not allow this.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason::FORBIDDEN, message)
    }

    /// 429: the caller has as many of something open as it may.
    pub(crate) fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            reason::TOO_MANY_REQUESTS,
            message,
        )
    }

    /// 400: the request itself cannot be proxied.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason::BAD_REQUEST, message)
    }

    /// 502: the upstream API server could not be reached or answered garbage.
    pub(crate) fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, reason::INTERNAL_ERROR, message)
    }

    /// 503: a dependency (the identity source) is unavailable.
    pub(crate) fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            reason::SERVICE_UNAVAILABLE,
            message,
        )
    }

    /// Marks the answer as the last on its connection.
    pub(crate) fn closing_connection(mut self) -> Self {
        self.close_connection = true;
        self
    }

    /// The JSON body: an apiserver-style `Status` Failure.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        kubestatus::Status::failure(self.code.as_u16(), self.reason, self.message.as_str())
            .to_json()
    }
}

impl KubeStatus {
    /// The response for a request to `path`: plain text for discovery paths, `Status` JSON otherwise.
    pub(crate) fn response_for(self, path: &str) -> Response {
        if !is_discovery_path(path) {
            return self.into_response();
        }
        let mut response = Response::new(Body::from(format!("{}\n", self.message)));
        *response.status_mut() = self.code;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.close_connection {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Whether client-go reads answers to `path` with its discovery client.
fn is_discovery_path(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["version"]
            | ["api"]
            | ["api", _]
            | ["apis"]
            | ["apis", _]
            | ["apis", _, _]
            | ["openapi", ..]
    )
}

impl IntoResponse for KubeStatus {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.to_json()));
        *response.status_mut() = self.code;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.close_connection {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl std::fmt::Display for KubeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_a_kubernetes_status() {
        let status = KubeStatus::forbidden("no \"quotes\" escaped wrong");
        let value: serde_json::Value =
            serde_json::from_slice(&status.to_json()).expect("valid JSON");
        assert_eq!(value["kind"], "Status");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["status"], "Failure");
        assert_eq!(value["reason"], "Forbidden");
        assert_eq!(value["code"], 403);
        assert_eq!(value["message"], "no \"quotes\" escaped wrong");
        assert_eq!(
            KubeStatus::too_many_requests("m").to_json(),
            br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"m","reason":"TooManyRequests","code":429}"#
        );
    }

    #[test]
    fn discovery_paths_get_plain_text() {
        for path in [
            "/version",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1/",
            "/openapi/v3",
        ] {
            assert!(is_discovery_path(path), "{path}");
            let response = KubeStatus::forbidden("why").response_for(path);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/plain; charset=utf-8",
                "{path}"
            );
        }
        for path in ["/api/v1/pods", "/apis/apps/v1/deployments", "/healthz", "/"] {
            assert!(!is_discovery_path(path), "{path}");
            let response = KubeStatus::forbidden("why").response_for(path);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json",
                "{path}"
            );
        }
    }

    #[test]
    fn response_carries_code_type_and_close() {
        let response = KubeStatus::service_unavailable("down")
            .closing_connection()
            .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
