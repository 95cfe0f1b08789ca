//! The filters every API request passes, in the apiserver's order: authentication, then
//! impersonation. Each request is logged with what it carried and who it turned out to be.
//! `/testkit/` hooks bypass all of it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::impersonation::{effective_user, ImpersonationHeaders};
use super::request_log::RecordedRequest;
use super::state::{ConnectionInfo, RequestUser, SharedState};

/// Path prefix of the unauthenticated test hooks.
pub(crate) const HOOKS_PREFIX: &str = "/testkit/";

fn header_text(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Authenticates, applies impersonation, logs, and hands on the request with a [`RequestUser`].
pub(crate) async fn authenticate(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with(HOOKS_PREFIX) {
        return next.run(request).await;
    }
    let conn = request
        .extensions()
        .get::<ConnectionInfo>()
        .cloned()
        .unwrap_or_default();
    // Hyper serves without this extension only in unit tests of the router.
    request.extensions_mut().insert(conn.clone());
    let headers = request.headers();
    let impersonation = ImpersonationHeaders::from_headers(headers);
    let mut record = RecordedRequest {
        method: request.method().to_string(),
        path: request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |pq| pq.as_str().to_owned(),
        ),
        authorization: header_text(headers, http::header::AUTHORIZATION),
        impersonate_user: impersonation.user.clone(),
        impersonate_groups: impersonation.groups.clone(),
        impersonate_uid: impersonation.uid.clone(),
        impersonate_extra: impersonation.extra.clone(),
        user_agent: header_text(headers, http::header::USER_AGENT),
        header_names: headers
            .keys()
            .map(|name| name.as_str().to_owned())
            .collect(),
        websocket_protocols: headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect(),
        client_certificate: conn.client_cert.is_some(),
        authenticated_user: None,
        effective_user: None,
        status: 0,
        peer: conn.peer_addr.map(|addr| addr.to_string()),
    };
    let outcome = state
        .authenticator
        .authenticate(headers, conn.client_cert.as_ref())
        .and_then(|caller| {
            record.authenticated_user = Some(caller.user.clone());
            let effective = effective_user(&caller, &impersonation, request.uri().path())?;
            record.effective_user = Some(effective.clone());
            Ok(RequestUser { effective })
        });
    let response = match outcome {
        Ok(user) => {
            // As the apiserver does once a request is authenticated: upstream handlers never see
            // the credentials or the impersonation headers.
            let headers = request.headers_mut();
            headers.remove(http::header::AUTHORIZATION);
            let names: Vec<_> = headers
                .keys()
                .filter(|k| k.as_str().starts_with("impersonate-"))
                .cloned()
                .collect();
            for name in names {
                headers.remove(name);
            }
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(status) => status.into_response(),
    };
    record.status = response.status().as_u16();
    state.log.record(record);
    response
}
