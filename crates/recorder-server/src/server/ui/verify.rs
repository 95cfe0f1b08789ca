//! `GET /api/recordings/{id}/verify`: the recording's seal, checked now with the recorder's own
//! public key (the same check as `kube-recorder verify ID`: manifest signature, the file against
//! its hash chain, the index chain's links).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde_json::json;

use crate::seal::Problem;
use crate::server::auth::Viewer;
use crate::server::read_api::visible_meta;
use crate::server::routes::error_response;
use crate::server::App;

fn problems(list: &[&Problem]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|p| json!({ "subject": p.subject, "reason": p.reason }))
        .collect()
}

/// `{"id", "status", "keyId", "problems": [{"subject", "reason"}], "notes": [...]}`; `status` is
/// `verified`, `recording` (still being written: not sealed yet), `failed` (see `problems`) or
/// `unsealed` (the recorder does not seal).
pub(crate) async fn recording_seal(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    if let Err(response) = visible_meta(&app, &viewer, &id, "verify").await {
        return response;
    }
    let Some(sealer) = app.store.sealer() else {
        return Json(json!({ "id": id, "status": "unsealed", "problems": [], "notes": [] }))
            .into_response();
    };
    let key = sealer.public_key().clone();
    let key_id = key.key_id();
    let dir = app.store.dir().to_owned();
    let Ok(_slot) = app.ui.scan_slots.acquire().await else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the recorder is shutting down".to_owned(),
        );
    };
    let ids = vec![id.clone()];
    let report =
        match tokio::task::spawn_blocking(move || crate::seal::verify(&dir, &key, &ids)).await {
            Ok(Ok(report)) => report,
            Ok(Err(error)) => {
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot verify: {error}"),
                )
            }
            Err(error) => {
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot verify: {error}"),
                )
            }
        };
    // Only this recording's problems, and those of chain lines that name no recording, are
    // shown: another recording's problems would name it (its start time and existence), which
    // a viewer outside its namespaces must not learn. The rest is only counted.
    let concerns =
        |problem: &&Problem| problem.subject == id || problem.subject.starts_with("chain.jsonl");
    let own: Vec<&Problem> = report.problems.iter().filter(concerns).collect();
    let elsewhere = report.problems.len() - own.len();
    let notes: Vec<&Problem> = report
        .notes
        .iter()
        .filter(|note| note.subject == id)
        .collect();
    // Kept only in the bucket: its bytes are checked there, streamed through the same hash.
    let mut own: Vec<Problem> = own.into_iter().cloned().collect();
    let in_bucket = report.in_bucket.contains(&id);
    if in_bucket {
        if let Err(reason) = app.store.check_in_backend(&id).await {
            own.push(Problem {
                subject: id.clone(),
                reason,
            });
        }
    }
    let own: Vec<&Problem> = own.iter().collect();
    let status = if !own.is_empty() {
        "failed"
    } else if notes
        .iter()
        .any(|note| note.reason == crate::seal::STILL_RECORDING_NOTE)
    {
        "recording"
    } else if report.verified > 0 || in_bucket {
        "verified"
    } else {
        "failed"
    };
    Json(json!({
        "id": id,
        "status": status,
        "keyId": key_id,
        "problems": problems(&own),
        "notes": problems(&notes),
        "otherProblems": elsewhere,
        "storedIn": if in_bucket {
            app.store.backend().map(|backend| backend.location())
        } else {
            None
        },
    }))
    .into_response()
}
