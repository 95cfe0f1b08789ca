//! The exec server over SPDY/3.1 on the wire, without kubectl: version negotiation, sessions
//! driven by client bytes from `sessiontap::script` and read back through a
//! `sessiontap::SessionTap`, stdin, and the plain-text status of old versions.
#![allow(clippy::unwrap_used)]

mod support;

use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
use sessiontap::{ExitStatus, OutputStream, Protocol, RemoteCommandVersion, SessionParams};
use support::raw::{
    exit_of, output_of, request, server, spdy_headers, tap, without_goodbye, KUBECTL_SPDY_OFFERS,
};
use tokio::io::AsyncWriteExt as _;

const EXEC_OUT_ERR_EXIT3: &str = "/api/v1/namespaces/default/pods/demo/exec?command=sh&command=-c\
    &command=echo+out%3B+echo+err+%3E%262%3B+exit+3&container=main&stdout=true&stderr=true";

#[tokio::test]
async fn spdy_session_is_what_a_tap_expects() {
    let server = server().await;
    let answer = request(
        &server,
        "POST",
        EXEC_OUT_ERR_EXIT3,
        &spdy_headers(&KUBECTL_SPDY_OFFERS),
    )
    .await;
    assert_eq!(answer.status, 101);
    assert_eq!(answer.header("upgrade"), Some("SPDY/3.1"));
    assert_eq!(
        answer.header("x-stream-protocol-version"),
        Some("v4.channel.k8s.io")
    );
    let protocol = Protocol::Spdy {
        version: RemoteCommandVersion::V4,
    };
    let script = ScriptedSession {
        protocol,
        params: SessionParams {
            stdout: true,
            stderr: true,
            ..SessionParams::default()
        },
        steps: vec![],
    };
    let wire = script.encode(&EncodeOptions::default());
    let setup = &wire.client_to_server[..wire.client_setup_len];
    let mut answer = answer;
    answer.stream.write_all(setup).await.unwrap();
    let (from_server, _stream) = answer.read_to_end().await;

    let events = tap(protocol, setup, &from_server);
    assert_eq!(output_of(&events, OutputStream::Stdout), b"out\n");
    assert_eq!(output_of(&events, OutputStream::Stderr), b"err\n");
    assert_eq!(exit_of(&events), Some(ExitStatus::Code(3)));
}

#[tokio::test]
async fn spdy_stdin_and_older_versions() {
    let server = server().await;
    for (version, offers) in [
        (RemoteCommandVersion::V4, &KUBECTL_SPDY_OFFERS[..]),
        // An old client: v2, where the status is plain text.
        (
            RemoteCommandVersion::V2,
            &["v2.channel.k8s.io", "channel.k8s.io"][..],
        ),
    ] {
        let answer = request(
            &server,
            "POST",
            "/api/v1/namespaces/default/pods/demo/exec?command=sh&command=-c\
             &command=cat%3B+exit+7&stdin=true&stdout=true",
            &spdy_headers(offers),
        )
        .await;
        assert_eq!(answer.status, 101);
        assert_eq!(
            answer.header("x-stream-protocol-version"),
            Some(version.name())
        );
        let protocol = Protocol::Spdy { version };
        let script = ScriptedSession {
            protocol,
            params: SessionParams {
                stdin: true,
                stdout: true,
                ..SessionParams::default()
            },
            steps: vec![
                Step::Stdin(b"hello ".to_vec()),
                Step::Stdin(support::pattern(100_000)),
            ],
        };
        // GOAWAY: 8-byte header, 8-byte payload.
        let client = without_goodbye(&script, 16);
        let mut answer = answer;
        answer.stream.write_all(&client).await.unwrap();
        let (from_server, _stream) = answer.read_to_end().await;

        let events = tap(protocol, &client, &from_server);
        let mut expected = b"hello ".to_vec();
        expected.extend(support::pattern(100_000));
        assert!(output_of(&events, OutputStream::Stdout) == expected);
        let status = exit_of(&events).unwrap();
        match version {
            RemoteCommandVersion::V4 => assert_eq!(status, ExitStatus::Code(7)),
            _ => assert_eq!(
                status,
                ExitStatus::Failure {
                    message: "command terminated with non-zero exit code: error executing \
                              command [sh -c cat; exit 7], exit code 7"
                        .into()
                }
            ),
        }
    }
}

#[tokio::test]
async fn spdy_negotiation_refusals() {
    let server = server().await;
    let v5_only = request(
        &server,
        "POST",
        EXEC_OUT_ERR_EXIT3,
        &spdy_headers(&["v5.channel.k8s.io"]),
    )
    .await;
    assert_eq!(v5_only.status, 403);
    assert_eq!(
        v5_only.header_values("x-accepted-stream-protocol-versions"),
        [
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io"
        ]
    );
    let none = request(&server, "POST", EXEC_OUT_ERR_EXIT3, &spdy_headers(&[])).await;
    assert_eq!(none.status, 400);
    let no_upgrade = request(&server, "POST", EXEC_OUT_ERR_EXIT3, &[]).await;
    assert_eq!(no_upgrade.status, 400);
    // Nothing ran: the log shows the refusals only.
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 400, 400]);
}
