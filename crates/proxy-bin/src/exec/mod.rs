//! The exec/attach route: `kubectl exec` and `kubectl attach` upgrade their connection (SPDY/3.1 over
//! `POST`, WebSocket over `GET`), which the proxy upgrades upstream too and then splices.
//!
//! Order of work (each step before any upstream I/O of the next): identity -> policy (a caller whose
//! grant demands recording but names no recorder is refused here) -> connect the recording (fail
//! closed: refused with the recorders' errors, upstream never contacted; fail open: go on
//! unrecorded) -> upgrade upstream with impersonation -> answer the client's upgrade with the
//! upstream's 101 and its negotiated protocol headers -> splice both directions, each shown to the
//! session tap whose events feed the recording (`splice.rs`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderMap, Method, StatusCode};

use sessiontap::{Protocol, SessionParams};

use crate::app::App;
use crate::identity::{Caller, ConnectionContext};
use crate::metrics::{RecordingFailure, Refusal};
use crate::status::KubeStatus;

mod cast;
mod failure;
mod splice;

use cast::Target;

/// The two streaming protocols kubectl speaks for exec and attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamProtocol {
    /// SPDY/3.1 (`POST` with `Upgrade: SPDY/3.1`).
    Spdy,
    /// WebSocket (`GET` with `Upgrade: websocket`), kubectl's default since 1.30.
    WebSocket,
}

/// Which upgrade a request asks for, if any, checking that it matches the method: SPDY upgrades are
/// `POST`s and WebSocket upgrades `GET`s (client-go `remotecommand`). A mismatch is refused rather than
/// guessed at, since the session could not be read.
pub(crate) fn requested_upgrade(
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<StreamProtocol>, String> {
    let Some(upgrade) = headers.get(header::UPGRADE) else {
        return Ok(None);
    };
    let upgrade = upgrade.to_str().unwrap_or_default().trim();
    let protocol = if upgrade.eq_ignore_ascii_case("websocket") {
        StreamProtocol::WebSocket
    } else if upgrade
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("spdy/"))
    {
        StreamProtocol::Spdy
    } else {
        return Err(format!("unsupported upgrade protocol {upgrade:?}"));
    };
    match (protocol, method) {
        (StreamProtocol::Spdy, &Method::POST) | (StreamProtocol::WebSocket, &Method::GET) => {
            Ok(Some(protocol))
        }
        _ => Err(format!(
            "a {upgrade} upgrade must not be a {method} request (SPDY uses POST, WebSocket GET)"
        )),
    }
}

/// Whether `path` names a pod's `exec` or `attach` subresource, as the API server reads it.
pub(crate) fn is_session_path(path: &str) -> bool {
    // Most requests are neither: skip reading them fully when the raw path cannot spell either
    // word, even once percent-decoded.
    let may_name_a_session = path.contains('%') || path.contains("exec") || path.contains("attach");
    may_name_a_session && Target::from_path(path).is_some()
}

/// Handles `/api/v1/namespaces/{ns}/pods/{pod}/exec` and `/attach`.
pub(crate) async fn exec_or_attach(
    State(app): State<Arc<App>>,
    Extension(connection): Extension<Arc<ConnectionContext>>,
    request: Request,
) -> Response {
    let crate::admission::AdmittedUpgrade {
        mut request,
        protocol: stream_protocol,
        caller,
        url,
        admission,
    } = match crate::admission::admit_upgrade(app.clone(), connection, request).await {
        Ok(admitted) => admitted,
        Err(answer) => return answer,
    };
    let policy = &caller.policy.recording;

    if let Err(refusal) = app
        .events
        .before_upgrade(
            &app.metrics,
            &caller,
            request.method(),
            request.uri(),
            request.headers(),
        )
        .await
    {
        return refusal.into_response();
    }

    // Connect the recording before anything reaches upstream, so a fail-closed session can never
    // start unrecorded.
    let recording = if policy.is_recorded() {
        match connect_recording(
            &app,
            &caller,
            request.uri(),
            request.headers(),
            stream_protocol,
        )
        .await
        {
            Ok(recording) => recording,
            Err(refusal) => return refusal.into_response(),
        }
    } else {
        None
    };

    let upstream = match crate::upgrade::upgrade_upstream(
        &app,
        &caller,
        request.method().clone(),
        request.headers(),
        url,
    )
    .await
    {
        Ok(upstream) => upstream,
        Err(not_upgraded) => {
            abandon(recording, not_upgraded.why);
            return not_upgraded.response;
        }
    };
    let negotiated = negotiated_protocol(stream_protocol, upstream.headers());
    // What the tap needs to know which streams the server waits for (a recorded session's
    // query was read already; an unreadable one leaves the tap reading every header block).
    let params = SessionParams::from_query(request.uri().query().unwrap_or_default()).ok();
    let recorded = match (recording, negotiated) {
        (Some(recording), Some(_)) => Some(splice::Recorded {
            recording,
            fail_open: policy.fail_open,
            notice: recording_notice(&app, request.uri()),
        }),
        (Some(recording), None) => {
            app.metrics.recording_failed(RecordingFailure::Unreadable);
            abandon(
                Some(recording),
                "the negotiated protocol cannot be recorded",
            );
            if !policy.fail_open {
                return KubeStatus::forbidden(
                    "the session protocol the server chose cannot be recorded, and the caller's grant requires recording",
                )
                .into_response();
            }
            app.metrics.session_unrecorded();
            None
        }
        (None, _) => None,
    };

    let mut reply = Response::new(Body::empty());
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    // The 101 carries what upstream negotiated: Upgrade/Connection, Sec-WebSocket-Accept and
    // -Protocol, X-Stream-Protocol-Version. Forward all of it.
    *reply.headers_mut() = upstream.headers().clone();
    let client_upgrade = hyper::upgrade::on(&mut request);
    let name = caller.display_name().to_string();
    tokio::spawn(async move {
        let admission = admission;
        let _active = app.metrics.session_started();
        let (upstream_io, client_io) = match tokio::join!(upstream.upgrade(), client_upgrade) {
            (Ok(upstream_io), Ok(client_io)) => (upstream_io, client_io),
            (upstream_io, client_io) => {
                tracing::warn!(
                    caller = name,
                    upstream_ok = upstream_io.is_ok(),
                    client_ok = client_io.is_ok(),
                    "upgrade failed"
                );
                if let Some(recorded) = recorded {
                    recorded.recording.abandon("the connection upgrade failed");
                    let _ = recorded.recording.finish().await;
                }
                return;
            }
        };
        let client_io = hyper_util::rt::TokioIo::new(client_io);
        let spliced = splice::splice(
            client_io,
            upstream_io,
            negotiated,
            params,
            recorded,
            admission.open.control.clone(),
        )
        .await;
        match &spliced.recording {
            Some(recorder_client::Outcome::Uploaded { bytes }) => {
                app.metrics.recording_uploaded(*bytes)
            }
            Some(outcome) => {
                // Why the recording is incomplete: the tap could not read the session, or the
                // upload failed.
                app.metrics.recording_failed(if spliced.unreadable {
                    RecordingFailure::Unreadable
                } else {
                    RecordingFailure::Upload
                });
                tracing::warn!(caller = name, %outcome, "session recording incomplete");
            }
            None => {}
        }
        tracing::info!(
            caller = name,
            ?stream_protocol,
            up = spliced.up,
            down = spliced.down,
            recording = spliced.recording.as_ref().map(|o| o.to_string()),
            ended_because = spliced.ended_because,
            "session ended"
        );
    });
    reply
}

/// An upgrade request has no body (client-go sends none, and the server reads none before it
/// switches protocols). A body length announced on one would be forwarded without its body and
/// leave the API server waiting for it while the caller holds a connection slot, so a request
/// that announces a body is refused; `Content-Length: 0`, which Go clients send on a `POST`
/// upgrade, is fine.
pub(crate) fn refuse_body_framing(headers: &HeaderMap) -> Result<(), String> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err("an upgrade request must not have a body (Transfer-Encoding)".into());
    }
    for length in headers.get_all(header::CONTENT_LENGTH) {
        if length.as_bytes() != b"0" {
            return Err(format!(
                "an upgrade request must not have a body (Content-Length: {})",
                String::from_utf8_lossy(length.as_bytes())
            ));
        }
    }
    Ok(())
}

/// Connects the caller's recording. `Ok(None)`: the session goes on unrecorded (fail open).
async fn connect_recording(
    app: &App,
    caller: &Caller,
    uri: &http::Uri,
    headers: &HeaderMap,
    stream_protocol: StreamProtocol,
) -> Result<Option<recorder_client::Recording>, KubeStatus> {
    let policy = &caller.policy.recording;
    let refuse_or_skip = |failure: RecordingFailure, reason: String| {
        app.metrics.recording_failed(failure);
        if policy.fail_open {
            tracing::warn!(caller = caller.display_name(), %reason, "session not recorded (the grant allows it)");
            app.metrics.session_unrecorded();
            Ok(None)
        } else {
            app.metrics.request_refused(Refusal::Policy);
            Err(KubeStatus::forbidden(reason))
        }
    };
    if !offers_recordable_protocol(stream_protocol, headers) {
        return refuse_or_skip(
            RecordingFailure::Unreadable,
            "none of the offered session protocols can be recorded, and the caller's grant requires recording".into(),
        );
    }
    let Some(target) = Target::from_path(uri.path()) else {
        return refuse_or_skip(
            RecordingFailure::Unreadable,
            "not an exec or attach path".into(),
        );
    };
    let params = match SessionParams::from_query(uri.query().unwrap_or_default()) {
        Ok(params) => params,
        Err(error) => {
            return refuse_or_skip(
                RecordingFailure::Unreadable,
                format!("the session parameters cannot be read for recording: {error}"),
            )
        }
    };
    app.metrics.recording_attempted();
    let session = cast::session(caller, &target, &params, policy.input);
    match app.recorder.connect(&policy.recorders, session).await {
        Ok(recording) => Ok(Some(recording)),
        Err(error) => refuse_or_skip(
            RecordingFailure::Connect,
            format!("session recording is required but failed to start: {error}"),
        ),
    }
}

/// `--recording-notice` as a tty session shows it (its own line), when the session has a tty.
fn recording_notice(app: &App, uri: &http::Uri) -> Option<Vec<u8>> {
    let text = app.recording_notice.as_deref()?;
    let tty = SessionParams::from_query(uri.query().unwrap_or_default()).is_ok_and(|p| p.tty);
    tty.then(|| format!("{text}\r\n").into_bytes())
}

/// Ends a recording whose session never started.
fn abandon(recording: Option<recorder_client::Recording>, reason: &'static str) {
    if let Some(recording) = recording {
        recording.abandon(reason);
        tokio::spawn(recording.finish());
    }
}

/// Whether the client offers at least one protocol the tap can read.
fn offers_recordable_protocol(protocol: StreamProtocol, headers: &HeaderMap) -> bool {
    let offers = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    match protocol {
        StreamProtocol::WebSocket => offers("sec-websocket-protocol")
            .iter()
            .any(|p| Protocol::from_websocket_subprotocol(p).is_some()),
        // kubectl offers versions on separate header lines; an old client may offer none (v1).
        StreamProtocol::Spdy => {
            let versions = offers("x-stream-protocol-version");
            versions.is_empty()
                || versions
                    .iter()
                    .any(|v| Protocol::from_spdy_header(v).is_some())
        }
    }
}

/// The protocol the 101 answer chose, as the tap needs it.
fn negotiated_protocol(protocol: StreamProtocol, headers: &HeaderMap) -> Option<Protocol> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    match protocol {
        StreamProtocol::WebSocket => {
            Protocol::from_websocket_subprotocol(&value("sec-websocket-protocol"))
        }
        StreamProtocol::Spdy => Protocol::from_spdy_header(&value("x-stream-protocol-version")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(upgrade: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::UPGRADE, upgrade.parse().expect("value"));
        map
    }

    #[test]
    fn upgrade_must_match_the_method() {
        assert_eq!(
            requested_upgrade(&Method::POST, &headers("SPDY/3.1")),
            Ok(Some(StreamProtocol::Spdy))
        );
        assert_eq!(
            requested_upgrade(&Method::GET, &headers("websocket")),
            Ok(Some(StreamProtocol::WebSocket))
        );
        assert!(requested_upgrade(&Method::GET, &headers("SPDY/3.1")).is_err());
        assert!(requested_upgrade(&Method::POST, &headers("websocket")).is_err());
        assert!(requested_upgrade(&Method::GET, &headers("h2c")).is_err());
        assert_eq!(
            requested_upgrade(&Method::POST, &HeaderMap::new()),
            Ok(None)
        );
    }

    #[test]
    fn session_paths_are_read_as_the_api_server_reads_them() {
        for path in [
            "/api/v1/namespaces/default/pods/demo/exec",
            "/api/v1/namespaces/default/pods/demo/attach",
            "/api/v1/namespaces/default/pods/demo%2Fexec",
            "/api/v1/namespaces/default/pods/demo/%65xec",
        ] {
            assert!(is_session_path(path), "{path}");
        }
        for path in [
            "/api/v1/namespaces/default/pods/demo",
            "/api/v1/namespaces/default/pods/demo/log",
            "/api/v1/namespaces/default/pods/exec",
            "/version",
        ] {
            assert!(!is_session_path(path), "{path}");
        }
    }

    #[test]
    fn upgrade_requests_announce_no_body() {
        let with = |name: &str, value: &str| {
            let mut map = headers("websocket");
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
            map
        };
        assert!(refuse_body_framing(&headers("websocket")).is_ok());
        assert!(refuse_body_framing(&with("content-length", "0")).is_ok());
        assert!(refuse_body_framing(&with("content-length", "10")).is_err());
        assert!(refuse_body_framing(&with("content-length", "00")).is_err());
        assert!(refuse_body_framing(&with("transfer-encoding", "chunked")).is_err());
    }
}
