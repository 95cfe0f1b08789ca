//! A raw HTTP/1.1 client for the exec/attach upgrade, and reading sessions back through a
//! `sessiontap::SessionTap` (the proxy's own parser).

use sessiontap::script::{EncodeOptions, ScriptedSession};
use sessiontap::{
    coalesce, ExitStatus, OutputStream, OwnedSessionEvent, Protocol, SessionTap, TapLimits,
};
use testkit::apiserver::{ApiServer, ApiServerConfig, ServeOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::PATIENCE;

/// What kubectl offers over SPDY, one header line each.
pub(crate) const KUBECTL_SPDY_OFFERS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// A response head, and the bytes read after it.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) rest: Vec<u8>,
    pub(crate) stream: TcpStream,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    pub(crate) fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Everything the server sends from here until it closes its side.
    pub(crate) async fn read_to_end(mut self) -> (Vec<u8>, TcpStream) {
        let mut all = std::mem::take(&mut self.rest);
        tokio::time::timeout(PATIENCE, self.stream.read_to_end(&mut all))
            .await
            .expect("the server closed in time")
            .unwrap();
        (all, self.stream)
    }
}

/// Sends a request head and reads the response head.
pub(crate) async fn request(
    server: &ApiServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", server.addr());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let end = super::read_until(&mut stream, &mut seen, 0, b"\r\n\r\n")
        .await
        .expect("a response head");
    let text = String::from_utf8(seen[..end].to_vec()).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        rest: seen[end..].to_vec(),
        stream,
    }
}

pub(crate) fn spdy_headers(offers: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    headers.extend(offers.iter().map(|v| ("X-Stream-Protocol-Version", *v)));
    headers
}

pub(crate) fn websocket_headers(offer: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    if let Some(offer) = offer {
        headers.push(("Sec-WebSocket-Protocol", offer));
    }
    headers
}

pub(crate) async fn server() -> ApiServer {
    ApiServer::start(ApiServerConfig::default(), ServeOptions::default())
        .await
        .unwrap()
}

/// The tap's events for a session: the client's bytes first (they name SPDY streams), then the
/// server's.
pub(crate) fn tap(protocol: Protocol, client: &[u8], server: &[u8]) -> Vec<OwnedSessionEvent> {
    let mut tap = SessionTap::new(protocol, TapLimits::default());
    let mut events = Vec::new();
    tap.client_bytes(client, &mut |e| events.push(e.to_owned_event()))
        .unwrap();
    // Split to exercise the parsers as a proxy would feed them.
    for chunk in server.chunks(1000) {
        tap.server_bytes(chunk, &mut |e| events.push(e.to_owned_event()))
            .unwrap();
    }
    tap.finish(&mut |e| events.push(e.to_owned_event()));
    coalesce(events)
}

pub(crate) fn output_of(events: &[OwnedSessionEvent], which: OutputStream) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            OwnedSessionEvent::Output { stream, bytes } if *stream == which => {
                Some(bytes.as_slice())
            }
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

pub(crate) fn exit_of(events: &[OwnedSessionEvent]) -> Option<ExitStatus> {
    events.iter().find_map(|e| match e {
        OwnedSessionEvent::Exit { status } => Some(status.clone()),
        _ => None,
    })
}

/// The client's bytes of a scripted session without its last frame (SPDY GOAWAY, WebSocket
/// close), which a real client only sends once the status has arrived.
pub(crate) fn without_goodbye(script: &ScriptedSession, goodbye_len: usize) -> Vec<u8> {
    let mut client = script.encode(&EncodeOptions::default()).client_to_server;
    client.truncate(client.len() - goodbye_len);
    client
}
