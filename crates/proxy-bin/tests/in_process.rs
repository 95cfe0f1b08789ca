//! The proxy's own decisions, in-process against testkit's stand-ins and an in-process
//! `kube-recorder`, with raw clients (no kubectl): recorded exec over both protocols, a
//! fail-closed session ended with a Status at a frame boundary, API events stored before the
//! request goes upstream, and an unknown caller refused before anything goes upstream.

#![allow(clippy::unwrap_used)]

mod support;

use recorder_server::EventFilter;
use sessiontap::script::{EncodeOptions, ScriptedSession};
use sessiontap::ChannelProtocol;
use sessiontap::{ExitStatus, Protocol, RemoteCommandVersion, SessionParams};
use support::{follow_session, read_head, read_response, request, whois, Grant, Harness};
use tokio::io::AsyncWriteExt;

/// `value` percent-encoded for a query.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The exec path running `sh -c SCRIPT` with stdout and stderr.
fn exec_path(script: &str) -> String {
    format!(
        "/api/v1/namespaces/default/pods/demo/exec?command=sh&command=-c&command={}&stdout=true&stderr=true",
        encode(script)
    )
}

const WEBSOCKET_HEADERS: [(&str, &str); 5] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
];

/// The client's SPDY stream setup for a stdout+stderr session (v4), as client-go sends it.
fn spdy_setup() -> Vec<u8> {
    let session = ScriptedSession {
        protocol: Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        },
        params: SessionParams {
            stdout: true,
            stderr: true,
            ..SessionParams::default()
        },
        steps: Vec::new(),
    };
    let wire = session.encode(&EncodeOptions::default());
    wire.client_to_server[..wire.client_setup_len].to_vec()
}

async fn recorded_cast(harness: &Harness) -> (recorder_server::RecordingMeta, String) {
    let recordings = harness.finished_recordings(1).await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let store = harness.recorder.as_ref().expect("recorder").store();
    let cast = store.read_cast(&recordings[0].id).await.expect("cast");
    (
        recordings[0].clone(),
        String::from_utf8_lossy(&cast).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_websocket_is_recorded() {
    let harness = Harness::start(Some(whois("user-node")), Grant::Enforced).await;
    let mut client = harness.connect().await;
    let path = exec_path("printf 'over websocket'; printf ' and stderr' >&2; exit 3");
    client
        .write_all(&request("GET", &path, &WEBSOCKET_HEADERS, b""))
        .await
        .unwrap();
    let (status, head, rest) = read_head(&mut client).await;
    assert_eq!(status, 101, "{head}");
    let protocol = Protocol::WebSocket(ChannelProtocol::V5);
    let seen = follow_session(&mut client, protocol, &[], rest, |_| {}).await;
    assert_eq!(
        String::from_utf8_lossy(&seen.output),
        "over websocket and stderr"
    );
    assert_eq!(seen.exit, Some(ExitStatus::Code(3)));
    let (meta, cast) = recorded_cast(&harness).await;
    assert_eq!(meta.exit_code, Some(3), "{meta:?}");
    assert_eq!(meta.pod.as_deref(), Some("demo"));
    assert!(cast.contains("over websocket"), "{cast}");
    assert!(cast.contains(" and stderr"), "{cast}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_spdy_is_recorded() {
    let harness = Harness::start(Some(whois("user-node")), Grant::Enforced).await;
    let mut client = harness.connect().await;
    let path = exec_path("printf 'over spdy'; exit 0");
    let headers = [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
    ];
    client
        .write_all(&request("POST", &path, &headers, b""))
        .await
        .unwrap();
    let (status, head, rest) = read_head(&mut client).await;
    assert_eq!(status, 101, "{head}");
    let setup = spdy_setup();
    client.write_all(&setup).await.unwrap();
    let protocol = Protocol::Spdy {
        version: RemoteCommandVersion::V4,
    };
    let seen = follow_session(&mut client, protocol, &setup, rest, |_| {}).await;
    assert_eq!(String::from_utf8_lossy(&seen.output), "over spdy");
    assert_eq!(seen.exit, Some(ExitStatus::Success));
    let (meta, cast) = recorded_cast(&harness).await;
    assert_eq!(meta.exit_code, Some(0), "{meta:?}");
    assert!(cast.contains("over spdy"), "{cast}");
}

/// The recorder goes away while a fail-closed session streams: the session ends with a Failure
/// Status the client can read (every frame it received is whole), and the rest of the output is
/// never delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_recording_ends_a_fail_closed_session_with_a_status() {
    let mut harness = Harness::start(Some(whois("user-node")), Grant::Enforced).await;
    let mut client = harness.connect().await;
    let path =
        exec_path("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); sleep 0.01; done");
    client
        .write_all(&request("GET", &path, &WEBSOCKET_HEADERS, b""))
        .await
        .unwrap();
    let (status, head, rest) = read_head(&mut client).await;
    assert_eq!(status, 101, "{head}");
    let (output_began, began) = tokio::sync::oneshot::channel::<()>();
    let mut output_began = Some(output_began);
    let recorder = harness.recorder.take().expect("recorder");
    let stopper = tokio::spawn(async move {
        if began.await.is_ok() {
            recorder.shutdown().await;
        }
    });
    let protocol = Protocol::WebSocket(ChannelProtocol::V5);
    let seen = follow_session(&mut client, protocol, &[], rest, |_| {
        if let Some(began) = output_began.take() {
            let _ = began.send(());
        }
    })
    .await;
    stopper.await.unwrap();
    let output = String::from_utf8_lossy(&seen.output);
    assert!(output.starts_with("line-0\n"), "{output}");
    assert!(
        !output.contains("line-1999"),
        "the session ran to its end: {output}"
    );
    match seen.exit {
        Some(ExitStatus::Failure { message }) => {
            assert!(message.contains("requires it to be recorded"), "{message}")
        }
        other => panic!("expected a Failure status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_events_are_stored_before_the_request_goes_upstream() {
    let mut harness = Harness::start(Some(whois("user-node")), Grant::EnforcedWithEvents).await;
    let pod = "/api/v1/namespaces/default/pods/demo";
    let mut client = harness.connect().await;
    client
        .write_all(&request("GET", pod, &[("Accept", "application/json")], b""))
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut client).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let store = harness.recorder.as_ref().expect("recorder").store();
    let events = store.events(&EventFilter::default()).await.unwrap();
    let paths: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e.get()).ok())
        .filter_map(|e| e["request"]["path"].as_str().map(String::from))
        .collect();
    assert_eq!(paths, [pod]);

    // Without a recorder the request is refused, and upstream never sees it.
    harness.recorder.take().expect("recorder").shutdown().await;
    let mut client = harness.connect().await;
    client
        .write_all(&request("GET", pod, &[("Accept", "application/json")], b""))
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut client).await;
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    assert_eq!(harness.upstream_paths(pod).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_caller_is_refused_before_anything_goes_upstream() {
    let harness = Harness::start(None, Grant::Unrecorded).await;
    for (method, path, headers) in [
        (
            "GET",
            "/api/v1/namespaces/default/pods".to_string(),
            &[][..],
        ),
        ("GET", exec_path("id"), &WEBSOCKET_HEADERS[..]),
    ] {
        let mut client = harness.connect().await;
        client
            .write_all(&request(method, &path, headers, b""))
            .await
            .unwrap();
        let (status, _, body) = read_response(&mut client).await;
        assert_eq!(status, 401, "{path}: {}", String::from_utf8_lossy(&body));
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Unauthorized");
    }
    assert!(harness.apiserver.requests().is_empty());
}
