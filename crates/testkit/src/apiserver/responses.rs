//! Writing objects, lists and tables as the apiserver answers them.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use super::list_body::list_response;
use super::list_options::IncludeObject;
use super::negotiation::Output;
use super::pods::store::{Page, PodKey, Stored};
use super::status::Status;
use super::tables::{table_prefix, Printer, TABLE_SUFFIX};

/// A JSON body with the given status.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One object: itself, or a one-row table when a table was asked for.
pub(crate) fn object_response(
    status: StatusCode,
    object: &Stored,
    output: Output,
    printer: Printer,
    include: IncludeObject,
) -> Response {
    match output {
        Output::Object => json_response(status, object.json.clone()),
        Output::Table(version) => {
            let metadata = json!({ "resourceVersion": object.resource_version.to_string() });
            let mut body = table_prefix(printer, version, &metadata, true);
            printer.encode_row(object, include, version, SystemTime::now(), &mut body);
            body.extend_from_slice(TABLE_SUFFIX);
            json_response(status, body)
        }
    }
}

/// A list (`PodList`, `NamespaceList`) or a table of it, streamed.
pub(crate) fn list_page_response(
    list_kind: &str,
    page: Page,
    output: Output,
    printer: Printer,
    include: IncludeObject,
) -> Response {
    let mut metadata = json!({ "resourceVersion": page.resource_version.to_string() });
    if let Some(next) = &page.next {
        metadata["continue"] = json!(encode_continue(next));
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    match output {
        Output::Object => {
            let prefix = format!("{{\"kind\":\"{list_kind}\",\"apiVersion\":\"v1\",\"metadata\":{metadata},\"items\":[");
            list_response(
                prefix.into_bytes(),
                page.items,
                |o: &Arc<Stored>, out| out.extend_from_slice(&o.json),
                b"]}",
            )
        }
        Output::Table(version) => {
            let now = SystemTime::now();
            let prefix = table_prefix(printer, version, &metadata, true);
            let encode = move |o: &Arc<Stored>, out: &mut Vec<u8>| {
                printer.encode_row(o, include, version, now, out)
            };
            list_response(prefix, page.items, encode, TABLE_SUFFIX)
        }
    }
}

/// The `continue` token for a list that stopped after `last`.
fn encode_continue(last: &PodKey) -> String {
    URL_SAFE_NO_PAD.encode(json!([last.0, last.1]).to_string())
}

/// The key a `continue` token resumes after.
pub(crate) fn decode_continue(token: &str) -> Result<PodKey, Status> {
    let invalid =
        || Status::bad_request("continue key is not valid: it was not issued by this server");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let (ns, name): (String, String) = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok((ns, name))
}

/// A whole, unpaged list (namespaces are few and not paged).
pub(crate) fn page_of(resource_version: u64, items: Vec<Arc<Stored>>) -> Page {
    Page {
        resource_version,
        items,
        next: None,
        remaining: 0,
    }
}
