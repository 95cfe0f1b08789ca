//! The operations listener: `/metrics`, `/healthz` (the process is serving) and `/readyz` (the
//! upstream answers, and so does tailscaled's LocalAPI when it is an identity source).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::App;

/// How long a readiness check waits for each dependency.
const READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// The operations router.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let identity = async {
        // Without tailscaled among the identity sources, its LocalAPI is not a dependency.
        if !app.identities.uses_tailscale() {
            return Ok(());
        }
        match tokio::time::timeout(READINESS_TIMEOUT, app.localapi.status()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("identity source: {error}")),
            Err(_) => Err("identity source: timed out".to_string()),
        }
    };
    let upstream = async {
        match tokio::time::timeout(READINESS_TIMEOUT, app.upstream.probe()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("upstream: {error}")),
            Err(_) => Err("upstream: timed out".to_string()),
        }
    };
    let (identity, upstream) = tokio::join!(identity, upstream);
    let problems: Vec<String> = [identity, upstream]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", problems.join("\n")),
        )
    }
}
