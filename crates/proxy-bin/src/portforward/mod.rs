//! The port-forward route: `kubectl port-forward` upgrades its connection to
//! `/api/v1/namespaces/{ns}/pods/{pod}/portforward`, over a WebSocket tunnel carrying SPDY
//! (`GET`, subprotocol `SPDY/3.1+portforward.k8s.io`, kubectl's default since 1.31) or over SPDY
//! itself (`POST`, `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`, after
//! any non-101 answer to the tunnel or with `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`). The proxy
//! upgrades upstream too and splices both connections, observing them with sessiontap's
//! port-forward tap.
//!
//! Audit follows the session-recording grant exactly as exec does (`recorderAddrs` and
//! `enforceRecorder`, whether or not `enableEvents` is on): a `start` event before anything goes
//! upstream (a fail-closed grant refuses the forward when no recorder takes it), one event per TCP
//! connection when it ends (port, bytes each way, duration, the server's error), and an `end`
//! event. A session the tap cannot read (another port-forward protocol, or bytes it cannot
//! attribute) is refused or ended when the grant fails closed, and goes on unaudited when it fails
//! open.
//!
//! A grant with `recordPortForwardData` also stores the bytes of each connection of an audited
//! forward, one `kap-port-forward/1` capture per connection ([`capture`]).

mod audit;
mod capture;
mod splice;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{HeaderMap, StatusCode};
use sessiontap::portforward::{PortForwardLimits, PortForwardTap, PortForwardTransport};

use crate::app::App;
use crate::exec::StreamProtocol;
use crate::identity::{Caller, ConnectionContext};
use crate::metrics::Refusal;
use crate::status::KubeStatus;

use audit::{Audit, AuditStart};
use capture::{CaptureStart, Captures};

/// Whether `path` names a pod's `portforward` subresource, as the API server reads it.
pub(crate) fn is_port_forward_path(path: &str) -> bool {
    // Most requests are not: skip reading them fully when the raw path cannot spell the word,
    // even once percent-decoded.
    if !path.contains('%') && !path.contains("portforward") {
        return false;
    }
    let info = requestinfo::parse("POST", path, "");
    info.is_resource_request
        && info.api_group.is_empty()
        && info.resource == "pods"
        && info.subresource == "portforward"
        && !info.name.is_empty()
}

/// The port-forward transport a request asks for that the tap can observe.
fn observable_transport(
    protocol: StreamProtocol,
    headers: &HeaderMap,
) -> Option<PortForwardTransport> {
    let offers = |name: &str, wanted: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|offer| offer.trim() == wanted)
    };
    match protocol {
        StreamProtocol::WebSocket => offers(
            "sec-websocket-protocol",
            PortForwardTransport::TUNNEL_SUBPROTOCOL,
        )
        .then_some(PortForwardTransport::WebSocketTunnel),
        StreamProtocol::Spdy => offers(
            "x-stream-protocol-version",
            PortForwardTransport::SPDY_PROTOCOL,
        )
        .then_some(PortForwardTransport::Spdy),
    }
}

/// Whether the upstream's 101 chose the transport the tap was made for.
fn upstream_chose(transport: PortForwardTransport, headers: &HeaderMap) -> bool {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    match transport {
        PortForwardTransport::WebSocketTunnel => {
            value("sec-websocket-protocol") == PortForwardTransport::TUNNEL_SUBPROTOCOL
        }
        // A server that names no version speaks the only one there is.
        PortForwardTransport::Spdy => {
            let chosen = value("x-stream-protocol-version");
            chosen.is_empty() || chosen == PortForwardTransport::SPDY_PROTOCOL
        }
        _ => false,
    }
}

fn transport_name(transport: PortForwardTransport) -> &'static str {
    match transport {
        PortForwardTransport::WebSocketTunnel => "websocket",
        _ => "spdy",
    }
}

/// Handles `/api/v1/namespaces/{ns}/pods/{pod}/portforward`.
pub(crate) async fn port_forward(
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
    let mut transport = observable_transport(stream_protocol, request.headers());
    if transport.is_none() && policy.is_recorded() {
        if !policy.fail_open {
            app.metrics.request_refused(Refusal::Policy);
            return KubeStatus::bad_request(
                "this port-forward protocol cannot be audited, and the caller's grant requires it (use kubectl's SPDY/3.1+portforward.k8s.io or portforward.k8s.io)",
            )
            .into_response();
        }
        tracing::warn!(
            caller = caller.display_name(),
            "port-forward not audited: its protocol cannot be read (the grant allows it)"
        );
    }

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

    let mut audit = match transport {
        Some(observed) if policy.is_recorded() => {
            match start_audit(&app, &caller, request.uri(), observed).await {
                Ok(audit) => audit,
                Err(refusal) => return refusal.into_response(),
            }
        }
        _ => None,
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
            end_audit(audit, not_upgraded.why);
            return not_upgraded.response;
        }
    };
    if let Some(observed) = transport {
        if !upstream_chose(observed, upstream.headers()) {
            if audit.is_some() && !policy.fail_open {
                app.metrics.request_refused(Refusal::Policy);
                end_audit(audit, "the server chose a protocol that cannot be audited");
                return KubeStatus::bad_gateway(
                    "the API server chose a port-forward protocol that cannot be audited, and the caller's grant requires it",
                )
                .into_response();
            }
            transport = None;
            end_audit(
                audit.take(),
                "the server chose a protocol that cannot be audited",
            );
        }
    }

    let mut reply = Response::new(Body::empty());
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *reply.headers_mut() = upstream.headers().clone();
    let client_upgrade = hyper::upgrade::on(&mut request);
    let name = caller.display_name().to_string();
    let fail_open = policy.fail_open;
    // Payload capture: only for audited sessions the tap reads, when the grant asks for it.
    let captures = match (&audit, transport) {
        (Some(audit), Some(observed)) if policy.port_forward_data => {
            let target = requestinfo::parse("POST", request.uri().path(), "");
            Some(Captures::new(CaptureStart {
                recorder: app.recorder.clone(),
                recorders: policy.recorders.clone(),
                session_id: audit.id().to_owned(),
                caller: castfmt::Caller::from(&caller.description),
                pod: castfmt::CapturedPod {
                    pod_name: target.name,
                    namespace: target.namespace,
                },
                transport: transport_name(observed),
                fail_open,
            }))
        }
        _ => None,
    };
    let tap = transport.map(|t| {
        PortForwardTap::new(t, PortForwardLimits::default())
            .with_payload_capture(captures.is_some())
    });
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
                    "port-forward upgrade failed"
                );
                if let Some(audit) = audit {
                    audit
                        .end((0, 0, 0), Some("the connection upgrade failed".into()))
                        .await;
                }
                return;
            }
        };
        let client_io = hyper_util::rt::TokioIo::new(client_io);
        let spliced = splice::splice(
            client_io,
            upstream_io,
            tap,
            audit,
            captures,
            fail_open,
            admission.open.control.clone(),
        )
        .await;
        tracing::info!(
            caller = name,
            ?stream_protocol,
            up = spliced.up,
            down = spliced.down,
            connections = spliced.connections,
            ended_because = spliced.ended_because,
            "port-forward ended"
        );
    });
    reply
}

/// Sends the session's `start` event. `Ok(None)`: not audited (fail open after a failure).
async fn start_audit(
    app: &App,
    caller: &Caller,
    uri: &http::Uri,
    transport: PortForwardTransport,
) -> Result<Option<Audit>, KubeStatus> {
    let policy = &caller.policy.recording;
    let start = AuditStart {
        context: app.events.audit_context(caller),
        recorders: policy.recorders.clone(),
        kubernetes: requestinfo::parse("POST", uri.path(), uri.query().unwrap_or_default()),
        transport: transport_name(transport),
        fail_open: policy.fail_open,
    };
    match Audit::start(start).await {
        Ok(audit) => Ok(Some(audit)),
        Err(reason) if policy.fail_open => {
            tracing::warn!(caller = caller.display_name(), %reason, "port-forward not audited (the grant allows it)");
            Ok(None)
        }
        Err(reason) => {
            app.metrics.request_refused(Refusal::Policy);
            Err(KubeStatus::bad_gateway(format!(
                "the caller's grant requires port-forwards to be audited, and no recorder took the start of this one: {reason}"
            )))
        }
    }
}

/// Ends the audit of a session that never started, in the background.
fn end_audit(audit: Option<Audit>, why: &'static str) {
    if let Some(audit) = audit {
        tokio::spawn(audit.end((0, 0, 0), Some(why.to_owned())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forward_paths_are_read_as_the_api_server_reads_them() {
        for path in [
            "/api/v1/namespaces/default/pods/demo/portforward",
            "/api/v1/namespaces/default/pods/demo%2Fportforward",
            "/api/v1/namespaces/default/pods/demo/%70ortforward",
        ] {
            assert!(is_port_forward_path(path), "{path}");
        }
        for path in [
            "/api/v1/namespaces/default/pods/demo",
            "/api/v1/namespaces/default/pods/demo/exec",
            "/api/v1/namespaces/default/services/demo/portforward",
            "/apis/example.com/v1/namespaces/default/pods/demo/portforward",
            "/api/v1/namespaces/default/pods/portforward",
        ] {
            assert!(!is_port_forward_path(path), "{path}");
        }
    }

    #[test]
    fn only_kubectls_two_transports_are_observable() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "sec-websocket-protocol",
            "SPDY/3.1+portforward.k8s.io".parse().expect("value"),
        );
        assert_eq!(
            observable_transport(StreamProtocol::WebSocket, &headers),
            Some(PortForwardTransport::WebSocketTunnel)
        );
        headers.insert(
            "sec-websocket-protocol",
            "v4.channel.k8s.io".parse().expect("value"),
        );
        assert_eq!(
            observable_transport(StreamProtocol::WebSocket, &headers),
            None
        );
        let mut spdy = HeaderMap::new();
        spdy.insert(
            "x-stream-protocol-version",
            "portforward.k8s.io".parse().expect("value"),
        );
        assert_eq!(
            observable_transport(StreamProtocol::Spdy, &spdy),
            Some(PortForwardTransport::Spdy)
        );
        assert_eq!(
            observable_transport(StreamProtocol::Spdy, &HeaderMap::new()),
            None
        );
    }
}
