//! HTTP handlers for `/api/v1/pods`, `/api/v1/namespaces/{ns}/pods[/{name}]` and the legacy
//! `/api/v1/watch/...` paths.

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::patch::{self, PatchType};
use crate::apiserver::list_options::{IncludeObject, ListOptions};
use crate::apiserver::negotiation::{negotiate, Output};
use crate::apiserver::remotecommand::{self, Subresource};
use crate::apiserver::request_body;
use crate::apiserver::responses::{decode_continue, list_page_response, object_response};
use crate::apiserver::selectors::POD_FIELDS;
use crate::apiserver::state::SharedState;
use crate::apiserver::status::Status;
use crate::apiserver::tables::Printer;
use crate::apiserver::watch::serve_pod_watch;

type Handled = Result<Response, Status>;

/// List or watch pods, in one namespace or all.
fn list_or_watch(
    state: &SharedState,
    namespace: Option<String>,
    query: Option<&str>,
    headers: &HeaderMap,
    force_watch: bool,
) -> Handled {
    let options = ListOptions::from_query(query, POD_FIELDS)?;
    let output = negotiate(headers);
    if options.watch || force_watch {
        return serve_pod_watch(&state.store, namespace, options, output);
    }
    let after = options
        .continue_token
        .as_deref()
        .map(decode_continue)
        .transpose()?;
    let page = state
        .store
        .list_pods(namespace.as_deref(), after.as_ref(), options.limit, |p| {
            options.matches(p)
        });
    Ok(list_page_response(
        "PodList",
        page,
        output,
        Printer::Pods,
        options.include_object,
    ))
}

/// `GET /api/v1/pods`.
pub(crate) async fn list_all(
    State(state): State<SharedState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Handled {
    list_or_watch(&state, None, query.as_deref(), &headers, false)
}

/// `GET /api/v1/namespaces/{ns}/pods`.
pub(crate) async fn list(
    State(state): State<SharedState>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Handled {
    list_or_watch(&state, Some(ns), query.as_deref(), &headers, false)
}

/// `GET /api/v1/watch/pods`.
pub(crate) async fn watch_all(
    State(state): State<SharedState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Handled {
    list_or_watch(&state, None, query.as_deref(), &headers, true)
}

/// `GET /api/v1/watch/namespaces/{ns}/pods`.
pub(crate) async fn watch(
    State(state): State<SharedState>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Handled {
    list_or_watch(&state, Some(ns), query.as_deref(), &headers, true)
}

/// Adds `metadata.name=NAME` to a watch of one named pod.
fn with_name(query: Option<String>, name: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(query.unwrap_or_default());
    q.append_pair("fieldSelector", &format!("metadata.name={name}"));
    q.finish()
}

/// `GET /api/v1/watch/namespaces/{ns}/pods/{name}`.
pub(crate) async fn watch_one(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Handled {
    let query = with_name(query, &name);
    list_or_watch(&state, Some(ns), Some(&query), &headers, true)
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}` (also `?watch=true`, the old single-object watch).
pub(crate) async fn get(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Handled {
    let options = ListOptions::from_query(query.as_deref(), POD_FIELDS)?;
    if options.watch {
        let query = with_name(query, &name);
        return list_or_watch(&state, Some(ns), Some(&query), &headers, true);
    }
    let pod = state
        .store
        .pod(&ns, &name)
        .ok_or_else(|| Status::not_found("pods", &name))?;
    Ok(object_response(
        StatusCode::OK,
        &pod,
        negotiate(&headers),
        Printer::Pods,
        options.include_object,
    ))
}

/// `POST /api/v1/namespaces/{ns}/pods`.
pub(crate) async fn create(
    State(state): State<SharedState>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Handled {
    let object = request_body::decode(&headers, &body)?;
    let pod = state
        .store
        .create_pod(&ns, object)
        .map_err(|e| e.to_status())?;
    Ok(object_response(
        StatusCode::CREATED,
        &pod,
        Output::Object,
        Printer::Pods,
        IncludeObject::Object,
    ))
}

/// `DELETE /api/v1/namespaces/{ns}/pods/{name}`: the pod goes at once and is returned.
pub(crate) async fn delete(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
) -> Handled {
    let pod = state
        .store
        .delete_pod(&ns, &name)
        .map_err(|e| e.to_status())?;
    Ok(object_response(
        StatusCode::OK,
        &pod,
        Output::Object,
        Printer::Pods,
        IncludeObject::Object,
    ))
}

/// `PATCH /api/v1/namespaces/{ns}/pods/{name}` with a merge or strategic merge patch.
pub(crate) async fn patch(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Handled {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchType::from_content_type(content_type)
        .ok_or_else(|| Status::unsupported_media_type(content_type))?;
    let patch_doc: Value = serde_json::from_slice(&body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
    let pod = state
        .store
        .update_pod(&ns, &name, |current| {
            Ok(patch::apply(&current.object, &patch_doc, kind))
        })
        .map_err(|e| e.to_status())?;
    Ok(object_response(
        StatusCode::OK,
        &pod,
        Output::Object,
        Printer::Pods,
        IncludeObject::Object,
    ))
}

/// `PUT /api/v1/namespaces/{ns}/pods/{name}`: replace, honouring a `resourceVersion` precondition.
pub(crate) async fn replace(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Handled {
    let object = request_body::decode(&headers, &body)?;
    let meta = object.get("metadata");
    let body_name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if body_name != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let precondition = meta
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let pod = state
        .store
        .update_pod(&ns, &name, |current| match precondition {
            Some(rv) if rv != current.resource_version.to_string() => {
                Err(super::StoreError::Conflict { name: name.clone() })
            }
            _ => Ok(object),
        })
        .map_err(|e| e.to_status())?;
    Ok(object_response(
        StatusCode::OK,
        &pod,
        Output::Object,
        Printer::Pods,
        IncludeObject::Object,
    ))
}

/// `/api/v1/namespaces/{ns}/pods/{name}/{subresource}`: exec and attach; `log` is advertised but
/// not served.
pub(crate) async fn subresource(
    State(state): State<SharedState>,
    Path((ns, name, sub)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let kind = match sub.as_str() {
        "exec" => Subresource::Exec,
        "attach" => Subresource::Attach,
        _ => {
            let mut status = Status::not_found(&format!("pods/{sub}"), &name);
            status.message = format!("the testkit apiserver does not serve pods/{sub}");
            return status.into_response();
        }
    };
    remotecommand::serve(state, kind, ns, name, request).await
}
