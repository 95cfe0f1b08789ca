//! The routes, assembled.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::middleware::authenticate;
use super::state::SharedState;
use super::status::Status;
use super::{
    discovery, hooks, namespaces, openapi, openapi_v2, pods::ephemeral as pods_ephemeral,
    pods::handlers as pods, portforward, selfsubjectreview,
};

async fn no_route() -> Status {
    Status::no_route()
}

async fn method_not_allowed() -> Status {
    Status::method_not_allowed()
}

/// `pods/portforward` (`GET` for the WebSocket tunnel, `POST` for SPDY).
async fn port_forward(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    portforward::serve(state, ns, name, request).await
}

/// Every route, behind the authentication middleware (which lets `/testkit/` through).
pub(crate) fn router(state: SharedState) -> Router {
    let api = Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(discovery::healthz))
        .route("/livez", get(discovery::healthz))
        .route("/readyz", get(discovery::healthz))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/api/v1", get(discovery::core_v1))
        .route(
            "/apis/authentication.k8s.io",
            get(discovery::authentication_group_info),
        )
        .route(
            "/apis/authentication.k8s.io/v1",
            get(discovery::authentication_v1),
        )
        .route(
            "/apis/authentication.k8s.io/{version}/selfsubjectreviews",
            post(selfsubjectreview::create),
        )
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/api/v1", get(openapi::core_v1))
        .route("/openapi/v2", get(openapi_v2::serve))
        .route(
            "/api/v1/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route("/api/v1/namespaces/{ns}", get(namespaces::get))
        .route("/api/v1/pods", get(pods::list_all))
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(pods::list).post(pods::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(pods::get)
                .delete(pods::delete)
                .patch(pods::patch)
                .put(pods::replace),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers",
            get(pods_ephemeral::get)
                .patch(pods_ephemeral::patch)
                .put(pods_ephemeral::replace),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            get(port_forward).post(port_forward),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/{subresource}",
            get(pods::subresource).post(pods::subresource),
        )
        .route("/api/v1/watch/pods", get(pods::watch_all))
        .route("/api/v1/watch/namespaces/{ns}/pods", get(pods::watch))
        .route(
            "/api/v1/watch/namespaces/{ns}/pods/{name}",
            get(pods::watch_one),
        )
        .route(
            "/testkit/requests",
            get(hooks::requests).delete(hooks::clear_requests),
        )
        .route("/testkit/pods", post(hooks::create_pod))
        .route(
            "/testkit/pods/{ns}/{name}",
            axum::routing::delete(hooks::delete_pod),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        authenticate,
    ))
    .with_state(state)
}
