//! The exec/attach server over WebSocket on the wire, without kubectl: subprotocol choice,
//! sessions in every channel protocol read back through a `sessiontap::SessionTap`, pings (and
//! SPDY's), refusals before the upgrade, and clients that send garbage (over both transports).
#![allow(clippy::unwrap_used)]

mod support;

use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
use sessiontap::{
    ChannelProtocol, ExitStatus, OutputStream, Protocol, RemoteCommandVersion, SessionParams,
};
use support::raw::{
    exit_of, output_of, request, server, spdy_headers, tap, websocket_headers, without_goodbye,
    KUBECTL_SPDY_OFFERS,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn websocket_sessions_in_every_subprotocol() {
    let server = server().await;
    for protocol in [
        ChannelProtocol::V5,
        ChannelProtocol::V4,
        ChannelProtocol::V4Base64,
        ChannelProtocol::Base64,
        ChannelProtocol::Channel,
    ] {
        let answer = request(
            &server,
            "GET",
            "/api/v1/namespaces/default/pods/demo/exec?command=sh&command=-c\
             &command=head+-c+6%3B+echo+oops+%3E%262%3B+exit+2&stdin=true&stdout=true&stderr=true",
            &websocket_headers(Some(protocol.name())),
        )
        .await;
        assert_eq!(answer.status, 101, "{protocol}");
        assert_eq!(
            answer.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(
            answer.header("sec-websocket-protocol"),
            Some(protocol.name())
        );
        let tapped = Protocol::WebSocket(protocol);
        let script = ScriptedSession {
            protocol: tapped,
            params: SessionParams {
                stdin: true,
                stdout: true,
                stderr: true,
                ..SessionParams::default()
            },
            steps: vec![Step::Stdin(b"hello\n".to_vec())],
        };
        // A masked close frame with a code: 2-byte header, 4-byte key, 2-byte payload.
        let client = without_goodbye(&script, 8);
        let mut answer = answer;
        answer.stream.write_all(&client).await.unwrap();
        let (from_server, _stream) = answer.read_to_end().await;
        // The first message is the empty one on stdout.
        let first: &[u8] = if protocol.is_base64() {
            &[0x81, 0x01, b'1']
        } else {
            &[0x82, 0x01, 0x01]
        };
        assert!(from_server.starts_with(first), "{protocol}");

        let events = tap(tapped, &client, &from_server);
        assert_eq!(output_of(&events, OutputStream::Stdout), b"hello\n");
        assert_eq!(output_of(&events, OutputStream::Stderr), b"oops\n");
        let status = exit_of(&events).unwrap();
        if tapped.error_format() == sessiontap::ErrorFormat::Status {
            assert_eq!(status, ExitStatus::Code(2), "{protocol}");
        } else {
            assert!(
                matches!(&status, ExitStatus::Failure { message } if message.ends_with("exit code 2")),
                "{protocol}: {status:?}"
            );
        }
        // The server closes with 1000 after the status.
        assert!(
            from_server.ends_with(&[0x88, 0x02, 0x03, 0xe8]),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn websocket_subprotocol_choice_and_refusal() {
    let server = server().await;
    let path = "/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true";
    let answer = request(
        &server,
        "GET",
        path,
        &websocket_headers(Some("base64.channel.k8s.io, v4.channel.k8s.io")),
    )
    .await;
    assert_eq!(
        answer.header("sec-websocket-protocol"),
        Some("v4.channel.k8s.io")
    );
    // No offer: channel.k8s.io, and no subprotocol named.
    let answer = request(&server, "GET", path, &websocket_headers(None)).await;
    assert_eq!(answer.status, 101);
    assert_eq!(answer.header("sec-websocket-protocol"), None);
    // Nothing served: 403 with no body, which kubectl takes as a reason to retry over SPDY.
    let answer = request(
        &server,
        "GET",
        path,
        &websocket_headers(Some("v6.channel.k8s.io")),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("content-length"), Some("0"));
}

#[tokio::test]
async fn pings_are_answered_with_their_payload() {
    let server = server().await;
    let answer = request(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods/demo/exec?command=cat&stdin=true&stdout=true",
        &websocket_headers(Some("v5.channel.k8s.io")),
    )
    .await;
    let mut client = Vec::new();
    wsframe::encode_ping(b"heartbeat", Some([9, 8, 7, 6]), &mut client);
    wsframe::encode_channel_message(
        ChannelProtocol::V5,
        wsframe::STDIN,
        b"after ping\n",
        Some([1, 2, 3, 4]),
        None,
        &mut client,
    );
    wsframe::encode_close_signal(wsframe::STDIN, Some([4, 3, 2, 1]), &mut client);
    let mut answer = answer;
    answer.stream.write_all(&client).await.unwrap();
    let (from_server, _stream) = answer.read_to_end().await;
    let mut pong = Vec::new();
    wsframe::encode_pong(b"heartbeat", None, &mut pong);
    assert!(
        from_server.windows(pong.len()).any(|w| w == pong),
        "a pong echoing the ping"
    );
    let events = tap(
        Protocol::WebSocket(ChannelProtocol::V5),
        &client,
        &from_server,
    );
    assert_eq!(output_of(&events, OutputStream::Stdout), b"after ping\n");
    assert_eq!(exit_of(&events), Some(ExitStatus::Success));

    // SPDY: the client's (odd) ping ids are echoed.
    let answer = request(
        &server,
        "POST",
        "/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true",
        &spdy_headers(&KUBECTL_SPDY_OFFERS),
    )
    .await;
    let script = ScriptedSession {
        protocol: Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        },
        params: SessionParams {
            stdout: true,
            ..SessionParams::default()
        },
        steps: vec![],
    };
    let wire = script.encode(&EncodeOptions::default());
    let mut client = Vec::new();
    spdyframe::encode_control(
        &spdyframe::ControlFrame::Ping { id: 7, flags: 0 },
        &mut client,
    );
    client.extend_from_slice(&wire.client_to_server[..wire.client_setup_len]);
    let mut answer = answer;
    answer.stream.write_all(&client).await.unwrap();
    let (from_server, _stream) = answer.read_to_end().await;
    let mut echo = Vec::new();
    spdyframe::encode_control(
        &spdyframe::ControlFrame::Ping { id: 7, flags: 0 },
        &mut echo,
    );
    assert!(from_server.starts_with(&echo));
}

#[tokio::test]
async fn refusals_before_the_upgrade_are_statuses() {
    let server = server().await;
    let ws = websocket_headers(Some("v5.channel.k8s.io"));
    for (path, code, message) in [
        (
            "/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=true",
            404,
            "pods \"nope\" not found",
        ),
        (
            "/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true&container=x",
            400,
            "container x is not valid for pod demo",
        ),
        (
            "/api/v1/namespaces/default/pods/demo/exec?command=true",
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
        (
            "/api/v1/namespaces/default/pods/demo/attach?stdout=true",
            400,
            "has no main process to attach to",
        ),
    ] {
        let mut answer = request(&server, "GET", path, &ws).await;
        assert_eq!(answer.status, code, "{path}");
        let len: usize = answer.header("content-length").unwrap().parse().unwrap();
        let mut body = std::mem::take(&mut answer.rest);
        let already = body.len();
        body.resize(len, 0);
        answer
            .stream
            .read_exact(&mut body[already..])
            .await
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert!(
            status["message"].as_str().unwrap().contains(message),
            "{status}"
        );
    }

    // Impersonation is checked before anything runs: alice may not impersonate.
    let mut headers = ws.clone();
    headers.push(("Authorization", "Bearer alice-token"));
    headers.push(("Impersonate-User", "bob"));
    let answer = request(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods/demo/exec?command=touch&command=never&stdout=true",
        &headers,
    )
    .await;
    assert_eq!(answer.status, 403);
    let logged = server.requests().pop().unwrap();
    assert_eq!(logged.status, 403);
    assert_eq!(logged.impersonate_user.as_deref(), Some("bob"));
    assert!(logged.path.contains("/exec?command=touch"));
}

#[tokio::test]
async fn garbage_closes_the_connection_and_the_server_goes_on() {
    let server = server().await;
    // SPDY: a control frame of version 2.
    let mut answer = request(
        &server,
        "POST",
        "/api/v1/namespaces/default/pods/demo/exec?command=sleep&command=60&stdin=true&stdout=true",
        &spdy_headers(&KUBECTL_SPDY_OFFERS),
    )
    .await;
    answer
        .stream
        .write_all(&[0x80, 0x02, 0x00, 0x01, 0, 0, 0, 0x0a, 0xff, 0xff])
        .await
        .unwrap();
    let (from_server, _stream) = answer.read_to_end().await;
    // Only the GOAWAY that ends the connection.
    assert_eq!(&from_server[..4], [0x80, 0x03, 0x00, 0x07]);

    // WebSocket: an unmasked client frame.
    let mut answer = request(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods/demo/exec?command=sleep&command=60&stdin=true&stdout=true",
        &websocket_headers(Some("v5.channel.k8s.io")),
    )
    .await;
    let mut frame = Vec::new();
    wsframe::encode_channel_message(
        ChannelProtocol::V5,
        wsframe::STDIN,
        b"x",
        None,
        None,
        &mut frame,
    );
    answer.stream.write_all(&frame).await.unwrap();
    let (from_server, _stream) = answer.read_to_end().await;
    // The empty first message, then a close frame with 1002 (protocol error).
    assert_eq!(&from_server[..3], [0x82, 0x01, 0x01]);
    assert_eq!(&from_server[3..7], [0x88, 16, 0x03, 0xea]);

    // A header block that is not zlib: the connection goes, the server stays.
    let mut answer = request(
        &server,
        "POST",
        "/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true",
        &spdy_headers(&KUBECTL_SPDY_OFFERS),
    )
    .await;
    let mut frame = Vec::new();
    spdyframe::encode_control(
        &spdyframe::ControlFrame::SynStream {
            stream_id: spdyframe::StreamId::new(1).unwrap(),
            associated_stream_id: spdyframe::StreamId::ZERO,
            priority: 0,
            slot: 0,
            flags: 0,
            header_block: b"not zlib at all",
        },
        &mut frame,
    );
    answer.stream.write_all(&frame).await.unwrap();
    answer.read_to_end().await;

    let version = request(&server, "GET", "/version", &[]).await;
    assert_eq!(version.status, 200);
}
