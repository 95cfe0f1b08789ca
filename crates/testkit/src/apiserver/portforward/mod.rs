//! `pods/portforward` over the two transports kubectl 1.32 speaks, as a kube-apiserver (v1.32,
//! `PortForwardWebsockets` on) in front of a kubelet and containerd serves it, with the pod's
//! ports being host TCP addresses from the configuration (`portForward`, see
//! [`crate::apiserver::ApiServerConfig::port_forward`]).
//!
//! A request passes the same authentication and impersonation as exec (and is logged the same
//! way); the pod must exist (`404`). Then the upgrade:
//!
//! - **WebSocket tunnel** (kubectl's default): `GET` with `Upgrade: websocket` and a
//!   `Sec-WebSocket-Protocol` offer `SPDY/3.1+portforward.k8s.io`. The apiserver's
//!   `TranslatingHandler` sends requests offering a `SPDY/3.1+….k8s.io` protocol to its
//!   `TunnelingHandler` (`pkg/util/proxy/streamtunnel.go`), which strips the prefix, upgrades to
//!   the kubelet over SPDY with the rest and answers the WebSocket with the prefixed protocol the
//!   kubelet chose. After the `101`, binary WebSocket messages carry the raw SPDY/3.1 byte stream
//!   in both directions (client-go's `TunnelingConnection`): no channel byte, split anywhere
//!   (kubectl writes each framer write as a message, empty ones too), reassembled here
//!   ([`tunnel`]). A text message ends the tunnel, as it makes `TunnelingConnection.Read` fail;
//!   pings are answered, a close frame is answered with a close frame.
//! - **SPDY** (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`): `POST` with `Upgrade: SPDY/3.1` and
//!   `X-Stream-Protocol-Version: portforward.k8s.io`, negotiated by `httpstream.Handshake`
//!   against the kubelet's one protocol (no offer `400`, no match `403`, both plain text).
//!
//! Refusals that make kubectl fall back to SPDY (any non-`101` answer to the WebSocket): a
//! tunneling offer the kubelet does not speak (`403`, relayed from the kubelet's handshake); a
//! WebSocket request without a tunneling offer goes to the kubelet's legacy WebSocket
//! port-forward (`portforward/websocket.go`, channels per `?ports=`), which the stand-in does
//! not serve: without `ports` it answers the kubelet's `400 query parameter "port" is
//! required`, with them a `400` that says so. A request without an upgrade gets
//! `400 Upgrade request required`.
//!
//! On the SPDY connection ([`connection`]), as the kubelet's `httpstream.go` handler runs it:
//! kubectl opens two streams per TCP connection, `streamtype: error` then `streamtype: data`,
//! both with `port` and `requestID`; they are paired by request ID and the pair forwarded
//! ([`forward`]) to the host address of the container port. Failures go on the error stream as
//! the kubelet writes them (`error forwarding port 8080 to pod SANDBOX, uid : CAUSE`, the pod
//! being containerd's sandbox id and the uid empty, as the kubelet's CRI streaming server
//! passes them); an unmapped port fails as containerd's dial of a closed port in the pod's
//! network namespace does.

mod connection;
mod forward;
mod tunnel;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use super::config::{parse_container_port, ApiServerConfig};
use super::state::SharedState;
use super::status::Status;
use super::streaming::handshake::{
    bad_websocket_handshake, offers, spdy_no_match_message, switching, text_error, upgrades_to,
    websocket_accept, websocket_key, ACCEPTED_STREAM_PROTOCOL_VERSIONS, STREAM_PROTOCOL_VERSION,
};
use super::streaming::sha1::sha1;

/// The kubelet's port-forward protocol (`PortForwardProtocolV1Name`), its only one.
const PORT_FORWARD_V1: &str = "portforward.k8s.io";
/// The prefix of a WebSocket subprotocol that tunnels SPDY (`WebsocketsSPDYTunnelingPrefix`).
const TUNNELING_PREFIX: &str = "SPDY/3.1+";
/// What a tunneling subprotocol ends with (`KubernetesSuffix`).
const KUBERNETES_SUFFIX: &str = ".k8s.io";

/// The read half of an upgraded connection.
type BoxedRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of an upgraded connection.
type BoxedWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// The server's port-forward state: where each pod's container ports go, and the connections
/// being served (ended when the server's state goes).
#[derive(Debug)]
pub(crate) struct PortForwards {
    every_pod: BTreeMap<u16, SocketAddr>,
    pods: HashMap<(String, String), BTreeMap<u16, SocketAddr>>,
    connections: Mutex<JoinSet<()>>,
}

/// Reads a validated `portForward` map.
fn targets(map: &BTreeMap<String, String>) -> BTreeMap<u16, SocketAddr> {
    map.iter()
        .filter_map(|(port, target)| Some((parse_container_port(port)?, target.parse().ok()?)))
        .collect()
}

impl PortForwards {
    /// The mappings of a (validated) configuration.
    pub(crate) fn new(config: &ApiServerConfig) -> Self {
        PortForwards {
            every_pod: targets(&config.port_forward),
            pods: config
                .pods
                .iter()
                .filter(|p| !p.port_forward.is_empty())
                .map(|p| {
                    (
                        (p.namespace.clone(), p.name.clone()),
                        targets(&p.port_forward),
                    )
                })
                .collect(),
            connections: Mutex::new(JoinSet::new()),
        }
    }

    /// The host addresses of a pod's container ports.
    fn pod_targets(&self, namespace: &str, name: &str) -> BTreeMap<u16, SocketAddr> {
        let mut all = self.every_pod.clone();
        if let Some(own) = self.pods.get(&(namespace.to_owned(), name.to_owned())) {
            all.extend(own.iter().map(|(k, v)| (*k, *v)));
        }
        all
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut set = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }
}

/// The pod as the forwarding sees it.
#[derive(Debug)]
pub(super) struct PodPorts {
    /// Container port to host address.
    targets: BTreeMap<u16, SocketAddr>,
    /// containerd's sandbox id, which the kubelet's error messages call the pod.
    sandbox_id: String,
    /// The sandbox's network namespace path, as containerd names it in errors.
    netns: String,
}

impl PodPorts {
    fn new(uid: &str, targets: BTreeMap<u16, SocketAddr>) -> Self {
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let a = hex(&sha1(format!("sandbox/{uid}").as_bytes()));
        let b = hex(&sha1(format!("sandbox2/{uid}").as_bytes()));
        let n = hex(&sha1(format!("netns/{uid}").as_bytes()));
        PodPorts {
            targets,
            sandbox_id: format!("{a}{}", &b[..24]),
            netns: format!(
                "/var/run/netns/cni-{}-{}-{}-{}-{}",
                &n[..8],
                &n[8..12],
                &n[12..16],
                &n[16..20],
                &n[20..32]
            ),
        }
    }
}

/// The transport the upgrade chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// SPDY/3.1 directly on the connection.
    Spdy,
    /// SPDY/3.1 inside binary WebSocket messages.
    Tunnel,
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/portforward`.
pub(crate) async fn serve(
    state: SharedState,
    namespace: String,
    name: String,
    mut request: Request,
) -> Response {
    let Some(pod) = state.store.pod(&namespace, &name) else {
        return Status::not_found("pods", &name).into_response();
    };
    let uid = pod
        .object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (transport, response) =
        match handshake(request.method(), request.headers(), request.uri().query()) {
            Handshake::Accepted(transport, response) => (transport, response),
            Handshake::Refused(refused) => return refused,
        };
    let pod = Arc::new(PodPorts::new(
        &uid,
        state.port_forward.pod_targets(&namespace, &name),
    ));
    let on_upgrade = hyper::upgrade::on(&mut request);
    state.port_forward.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward upgrade failed");
                return;
            }
        };
        let (read, write) = tokio::io::split(TokioIo::new(upgraded));
        connection::run(
            Box::new(read),
            Box::new(write),
            transport == Transport::Tunnel,
            pod,
        )
        .await;
    });
    response
}

/// The answer to an upgrade request.
enum Handshake {
    /// The transport, and the `101` to send.
    Accepted(Transport, Response),
    /// The refusal to send.
    Refused(Response),
}

/// Negotiates the upgrade: the transport and the `101`, or the refusal.
fn handshake(method: &Method, headers: &HeaderMap, query: Option<&str>) -> Handshake {
    use Handshake::{Accepted, Refused};

    if upgrades_to(headers, "websocket") {
        let offered = offers(headers, "sec-websocket-protocol");
        let tunneling = offered
            .iter()
            .any(|p| p.starts_with(TUNNELING_PREFIX) && p.ends_with(KUBERNETES_SUFFIX));
        if !tunneling {
            return Refused(legacy_websocket(query));
        }
        // streamtunnel.go's `spdyProtocolsFromWebsocketProtocols`, then the kubelet's handshake.
        let spdy: Vec<String> = offered
            .iter()
            .filter_map(|p| p.strip_prefix(TUNNELING_PREFIX))
            .map(str::to_owned)
            .collect();
        if !spdy.iter().any(|p| p == PORT_FORWARD_V1) {
            return Refused(spdy_no_match(&spdy));
        }
        // gorilla/websocket's Upgrader, once the kubelet has accepted.
        if method != Method::GET {
            return Refused(text_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "websocket: the client is not using the websocket protocol: request method is not GET",
            ));
        }
        let Some(key) = websocket_key(headers) else {
            return Refused(bad_websocket_handshake());
        };
        return Accepted(
            Transport::Tunnel,
            switching(&[
                ("upgrade", "websocket".to_owned()),
                ("connection", "Upgrade".to_owned()),
                ("sec-websocket-accept", websocket_accept(key)),
                (
                    "sec-websocket-protocol",
                    format!("{TUNNELING_PREFIX}{PORT_FORWARD_V1}"),
                ),
            ]),
        );
    }
    if upgrades_to(headers, "SPDY/3.1") {
        let offered = offers(headers, STREAM_PROTOCOL_VERSION);
        if offered.is_empty() {
            return Refused(text_error(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: X-Stream-Protocol-Version is required",
            ));
        }
        if !offered.iter().any(|p| p == PORT_FORWARD_V1) {
            return Refused(spdy_no_match(&offered));
        }
        return Accepted(
            Transport::Spdy,
            switching(&[
                ("connection", "Upgrade".to_owned()),
                ("upgrade", "SPDY/3.1".to_owned()),
                (STREAM_PROTOCOL_VERSION, PORT_FORWARD_V1.to_owned()),
            ]),
        );
    }
    Refused(Status::bad_request("Upgrade request required").into_response())
}

/// `httpstream.Handshake`'s `403` when no offer is the kubelet's protocol.
fn spdy_no_match(offered: &[String]) -> Response {
    let mut refused = text_error(
        StatusCode::FORBIDDEN,
        &spdy_no_match_message(offered, &[PORT_FORWARD_V1]),
    );
    refused.headers_mut().append(
        ACCEPTED_STREAM_PROTOCOL_VERSIONS,
        HeaderValue::from_static(PORT_FORWARD_V1),
    );
    refused
}

/// A WebSocket request without a tunneling offer: the kubelet's legacy WebSocket port-forward.
fn legacy_websocket(query: Option<&str>) -> Response {
    let has_ports = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, _)| k == "ports");
    if has_ports {
        text_error(
            StatusCode::BAD_REQUEST,
            "the testkit apiserver does not serve the kubelet's legacy WebSocket port-forward \
             protocol; offer SPDY/3.1+portforward.k8s.io or use SPDY",
        )
    } else {
        text_error(
            StatusCode::BAD_REQUEST,
            "query parameter \"port\" is required",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const WS: [(&str, &str); 3] = [
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    fn refusal(handshake: Handshake) -> Response {
        match handshake {
            Handshake::Refused(response) => response,
            Handshake::Accepted(..) => panic!("accepted"),
        }
    }

    #[test]
    fn websocket_tunnel_answers_the_prefixed_protocol() {
        let mut h = headers(&WS);
        h.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("SPDY/3.1+portforward.k8s.io"),
        );
        let Handshake::Accepted(transport, response) = handshake(&Method::GET, &h, None) else {
            panic!("refused");
        };
        assert_eq!(transport, Transport::Tunnel);
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "SPDY/3.1+portforward.k8s.io"
        );
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn refusals_that_make_kubectl_fall_back() {
        let bare = headers(&WS);
        let refused = refusal(handshake(&Method::GET, &bare, None));
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let mut other = headers(&WS);
        other.append(
            "sec-websocket-protocol",
            HeaderValue::from_static("SPDY/3.1+v9.portforward.k8s.io"),
        );
        let refused = refusal(handshake(&Method::GET, &other, None));
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            refused.headers()[ACCEPTED_STREAM_PROTOCOL_VERSIONS],
            PORT_FORWARD_V1
        );
    }

    #[test]
    fn spdy_negotiates_portforward_v1() {
        let h = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ]);
        let Handshake::Accepted(transport, response) = handshake(&Method::POST, &h, None) else {
            panic!("refused");
        };
        assert_eq!(transport, Transport::Spdy);
        assert_eq!(
            response.headers()[STREAM_PROTOCOL_VERSION],
            "portforward.k8s.io"
        );
        let none = headers(&[("upgrade", "SPDY/3.1")]);
        let refused = refusal(handshake(&Method::POST, &none, None));
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let plain = refusal(handshake(&Method::POST, &HeaderMap::new(), None));
        assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn sandbox_ids_look_like_containerds() {
        let pod = PodPorts::new("uid-1", BTreeMap::new());
        assert_eq!(pod.sandbox_id.len(), 64);
        assert!(pod.sandbox_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(pod.netns.starts_with("/var/run/netns/cni-"));
    }
}
