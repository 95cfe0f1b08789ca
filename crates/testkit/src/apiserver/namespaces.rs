//! `/api/v1/namespaces[/{name}]`: list, get and create (enough for `kubectl get ns` and
//! `kubectl create ns`).

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::list_options::{IncludeObject, ListOptions};
use super::negotiation::{negotiate, Output};
use super::request_body;
use super::responses::{list_page_response, object_response, page_of};
use super::selectors::NAMESPACE_FIELDS;
use super::state::SharedState;
use super::status::Status;
use super::tables::Printer;

/// `GET /api/v1/namespaces` (watching namespaces is not served).
pub(crate) async fn list(
    State(state): State<SharedState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Status> {
    let options = ListOptions::from_query(query.as_deref(), NAMESPACE_FIELDS)?;
    if options.watch {
        return Err(Status::method_not_allowed());
    }
    let (rv, items) = state.store.list_namespaces(|ns| options.matches(ns));
    Ok(list_page_response(
        "NamespaceList",
        page_of(rv, items),
        negotiate(&headers),
        Printer::Namespaces,
        options.include_object,
    ))
}

/// `GET /api/v1/namespaces/{name}`.
pub(crate) async fn get(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Status> {
    let options = ListOptions::from_query(query.as_deref(), NAMESPACE_FIELDS)?;
    let ns = state
        .store
        .namespace(&name)
        .ok_or_else(|| Status::not_found("namespaces", &name))?;
    Ok(object_response(
        StatusCode::OK,
        &ns,
        negotiate(&headers),
        Printer::Namespaces,
        options.include_object,
    ))
}

/// `POST /api/v1/namespaces`.
pub(crate) async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Status> {
    let object = request_body::decode(&headers, &body)?;
    let ns = state
        .store
        .create_namespace(&object)
        .map_err(|e| e.to_status())?;
    Ok(object_response(
        StatusCode::CREATED,
        &ns,
        Output::Object,
        Printer::Namespaces,
        IncludeObject::Object,
    ))
}
