//! A minimal OpenAPI v2 document in gnostic's protobuf form, for kubectl 1.27 and 1.28.
//!
//! Those kubectls ask `/openapi/v2` (protobuf only: `Accept:
//! application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), not v3, whether a PATCH
//! operation takes `fieldValidation` (`cli-runtime/pkg/resource/query_param_verifier.go`), and
//! refuse to create objects when the document is missing. The document holds only the pod and
//! namespace PATCH operations: their `x-kubernetes-group-version-kind` extension (a YAML value)
//! and the query parameter. Field numbers are those of gnostic's `openapiv2/OpenAPIv2.proto`.

use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

/// The response's media type. Not the requested one: client-go runs `mime.ParseMediaType` on the
/// response type, which rejects the `@` in `...spec.v2@v1.0+protobuf`; kube-openapi's handler
/// answers `application/octet-stream` too.
const MEDIA_TYPE: &str = "application/octet-stream";

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited field (strings and embedded messages).
fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn bool_field(out: &mut Vec<u8>, field: u64, value: bool) {
    varint(out, field << 3);
    varint(out, u64::from(value));
}

fn message(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    build(&mut out);
    out
}

/// `Operation` (PATCH) for a core/v1 kind, taking the `fieldValidation` query parameter.
fn patch_operation(operation_id: &str, kind: &str) -> Vec<u8> {
    // QueryParameterSubSchema { in = 2, name = 4, type = 6, unique_items = 20 }
    let query = message(|m| {
        bytes_field(m, 2, b"query");
        bytes_field(m, 4, b"fieldValidation");
        bytes_field(m, 6, b"string");
        bool_field(m, 20, true);
    });
    let non_body = message(|m| bytes_field(m, 3, &query)); // NonBodyParameter.query_parameter_sub_schema
    let parameter = message(|m| bytes_field(m, 2, &non_body)); // Parameter.non_body_parameter
    let item = message(|m| bytes_field(m, 1, &parameter)); // ParametersItem.parameter
    let gvk_yaml = format!("group: \"\"\nkind: {kind}\nversion: v1\n");
    let any = message(|m| bytes_field(m, 2, gvk_yaml.as_bytes())); // Any.yaml
    let extension = message(|m| {
        bytes_field(m, 1, b"x-kubernetes-group-version-kind"); // NamedAny.name
        bytes_field(m, 2, &any); // NamedAny.value
    });
    message(|m| {
        bytes_field(m, 5, operation_id.as_bytes()); // Operation.operation_id
        bytes_field(m, 8, &item); // Operation.parameters
        bytes_field(m, 13, &extension); // Operation.vendor_extension
    })
}

fn named_path(path: &str, operation: &[u8]) -> Vec<u8> {
    let path_item = message(|m| bytes_field(m, 8, operation)); // PathItem.patch
    message(|m| {
        bytes_field(m, 1, path.as_bytes()); // NamedPathItem.name
        bytes_field(m, 2, &path_item); // NamedPathItem.value
    })
}

/// The whole `Document`.
pub(crate) fn document() -> Vec<u8> {
    let info = message(|m| {
        bytes_field(m, 1, b"Kubernetes (testkit stand-in)"); // Info.title
        bytes_field(m, 2, b"unversioned"); // Info.version
    });
    let paths = message(|m| {
        let pod = named_path(
            "/api/v1/namespaces/{namespace}/pods/{name}",
            &patch_operation("patchCoreV1NamespacedPod", "Pod"),
        );
        let ns = named_path(
            "/api/v1/namespaces/{name}",
            &patch_operation("patchCoreV1Namespace", "Namespace"),
        );
        bytes_field(m, 2, &pod); // Paths.path
        bytes_field(m, 2, &ns);
    });
    message(|m| {
        bytes_field(m, 1, b"2.0"); // Document.swagger
        bytes_field(m, 2, &info); // Document.info
        bytes_field(m, 8, &paths); // Document.paths
    })
}

/// `GET /openapi/v2`.
pub(crate) async fn serve() -> Response {
    let mut response = Response::new(Bytes::from(document()).into());
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn document_starts_with_swagger_version() {
        assert_eq!(&document()[..5], &[0x0a, 3, b'2', b'.', b'0']);
    }
}
