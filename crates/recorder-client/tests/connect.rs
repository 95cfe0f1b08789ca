//! Choosing a recorder and a protocol: v2 over h2c, the v1 fallback, address failover and limits.

mod common;

use std::time::Duration;

use common::{header, Behaviour, Cast, End, FakeRecorder, MemNet, Route};
use http::StatusCode;
use recorder_client::{
    AttemptError, ConnectError, OutputStream, Protocol, Recorder, RecorderConfig, Session,
    SessionEvent, SessionType,
};
use tokio::net::TcpListener;

fn session() -> Session {
    Session::new(header(SessionType::Exec), false)
}

/// An address on which nothing listens: bound, then released.
async fn dead_addr() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test]
async fn v2_over_tcp_uploads_the_whole_recording_with_acks() {
    let (fake, mut uploads) = FakeRecorder::new(Behaviour::default());
    let addr = fake.listen().await;
    let recorder = Recorder::new(RecorderConfig::default());
    let recording = recorder.connect(&[addr], session()).await.expect("connect");
    assert_eq!(recording.protocol(), Protocol::V2);
    assert_eq!(recording.recorder_addr(), addr);
    assert!(recording.failed_attempts().is_empty());

    let mut upload = uploads.recv().await.expect("upload");
    assert_eq!(upload.path, "/v2/record");
    assert_eq!(upload.version, http::Version::HTTP_2);
    // The header of a session without a tty goes out at once, before any event.
    let first = upload.received(1).await;
    assert!(first
        .data
        .starts_with(b"{\"version\":2,\"width\":0,\"height\":0,"));

    recording
        .feed(SessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"hello\n",
        })
        .await
        .expect("feed");
    recording
        .feed(SessionEvent::Output {
            stream: OutputStream::Stderr,
            bytes: b"oops\n",
        })
        .await
        .expect("feed");
    let outcome = recording.finish().await;
    let state = upload.ended().await;
    assert_eq!(state.end, Some(End::Complete));
    assert_eq!(
        outcome,
        recorder_client::Outcome::Uploaded {
            bytes: state.data.len() as u64
        }
    );
    let cast = Cast::parse(&state.data);
    assert_eq!(cast.header["kubernetes"]["PodName"], "demo");
    assert_eq!(cast.header["srcNodeUser"], "alice@example.com");
    assert_eq!(cast.text("o"), "hello\noops\n");
}

#[tokio::test]
async fn http1_only_recorder_gets_v1_over_tcp() {
    let (fake, mut uploads) = FakeRecorder::new(Behaviour {
        http1_only: true,
        ..Behaviour::default()
    });
    let addr = fake.listen().await;
    let recording = Recorder::new(RecorderConfig::default())
        .connect(&[addr], session())
        .await
        .expect("connect");
    assert_eq!(recording.protocol(), Protocol::V1);
    recording
        .feed(SessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: "naïve ☃\n".as_bytes(),
        })
        .await
        .expect("feed");
    let outcome = recording.finish().await;
    let mut upload = uploads.recv().await.expect("upload");
    assert_eq!(upload.path, "/record");
    assert_eq!(upload.version, http::Version::HTTP_11);
    let state = upload.ended().await;
    assert_eq!(state.end, Some(End::Complete));
    assert!(outcome.is_uploaded(), "{outcome}");
    assert_eq!(Cast::parse(&state.data).text("o"), "naïve ☃\n");
}

#[tokio::test(start_paused = true)]
async fn probe_answer_other_than_200_means_v1() {
    let net = MemNet::default();
    let (fake, mut uploads) = FakeRecorder::new(Behaviour {
        probe_status: StatusCode::NOT_FOUND,
        ..Behaviour::default()
    });
    let addr = net.route("10.0.0.1:80", Route::Recorder(fake));
    let recording = Recorder::with_dialer(RecorderConfig::default(), net)
        .connect(&[addr], session())
        .await
        .expect("connect");
    assert_eq!(recording.protocol(), Protocol::V1);
    assert!(recording.finish().await.is_uploaded());
    assert_eq!(uploads.recv().await.expect("upload").path, "/record");
}

#[tokio::test(start_paused = true)]
async fn v1_body_is_sent_only_after_100_continue() {
    let net = MemNet::default();
    let (reports_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let addr = net.route("10.0.0.1:80", Route::RawV1(reports_tx));
    let recording = Recorder::with_dialer(RecorderConfig::default(), net.clone())
        .connect(&[addr], session())
        .await
        .expect("connect");
    assert_eq!(recording.protocol(), Protocol::V1);
    // Probe connection, then the v1 connection.
    assert_eq!(net.dials(), vec![addr, addr]);
    recording
        .feed(SessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"after continue\n",
        })
        .await
        .expect("feed");
    assert!(recording.finish().await.is_uploaded());
    let report = reports.recv().await.expect("report");
    assert!(
        report.head.starts_with("POST /record HTTP/1.1\r\n"),
        "{}",
        report.head
    );
    let head = report.head.to_ascii_lowercase();
    assert!(head.contains("\r\nexpect: 100-continue\r\n"), "{head}");
    assert!(head.contains("\r\nhost: 10.0.0.1:80\r\n"), "{head}");
    assert!(
        report.early_body.is_empty(),
        "body sent before 100: {:?}",
        report.early_body
    );
    assert_eq!(Cast::parse(&report.body).text("o"), "after continue\n");
}

#[tokio::test]
async fn refused_first_address_falls_over_to_the_second() {
    let dead = dead_addr().await;
    let (fake, mut uploads) = FakeRecorder::new(Behaviour::default());
    let live = fake.listen().await;
    let recording = Recorder::new(RecorderConfig::default())
        .connect(&[dead, live], session())
        .await
        .expect("connect");
    assert_eq!(recording.recorder_addr(), live);
    let failures = recording.failed_attempts();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].addr, dead);
    assert!(
        matches!(&failures[0].error, AttemptError::Dial(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{:?}",
        failures[0].error
    );
    assert!(recording.finish().await.is_uploaded());
    assert!(uploads.recv().await.is_some());
}

#[tokio::test]
async fn all_dead_lists_every_recorder_error() {
    let first = dead_addr().await;
    let second = dead_addr().await;
    let err = Recorder::new(RecorderConfig::default())
        .connect(&[first, second], session())
        .await
        .expect_err("nothing listens");
    let attempts = err.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].addr, first);
    assert_eq!(attempts[1].addr, second);
    let message = err.to_string();
    assert!(
        message.starts_with("could not connect to any session recorder: "),
        "{message}"
    );
    assert!(
        message.contains(&format!("recorder {first}: dial failed: ")),
        "{message}"
    );
    assert!(
        message.contains(&format!("recorder {second}: dial failed: ")),
        "{message}"
    );
}

#[tokio::test]
async fn no_addresses_is_an_error() {
    let err = Recorder::new(RecorderConfig::default())
        .connect(&[], session())
        .await
        .expect_err("no addresses");
    assert!(matches!(err, ConnectError::NoAddresses));
}

#[tokio::test(start_paused = true)]
async fn hanging_dial_times_out_and_the_next_address_is_used() {
    let net = MemNet::default();
    let hang = net.route("10.0.0.1:80", Route::Hang);
    let (fake, _uploads) = FakeRecorder::new(Behaviour::default());
    let live = net.route("10.0.0.2:80", Route::Recorder(fake));
    let started = tokio::time::Instant::now();
    let recording = Recorder::with_dialer(RecorderConfig::default(), net)
        .connect(&[hang, live], session())
        .await
        .expect("connect");
    assert_eq!(recording.recorder_addr(), live);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "the per-dial limit"
    );
    assert!(matches!(
        recording.failed_attempts()[0].error,
        AttemptError::DialTimeout(d) if d == Duration::from_secs(5)
    ));
    assert!(recording.finish().await.is_uploaded());
}

#[tokio::test(start_paused = true)]
async fn the_overall_limit_bounds_all_attempts() {
    let net = MemNet::default();
    let addrs: Vec<_> = (1..=4)
        .map(|i| net.route(&format!("10.0.0.{i}:80"), Route::Hang))
        .collect();
    let config = RecorderConfig {
        connect_timeout: Duration::from_secs(12),
        ..RecorderConfig::default()
    };
    let started = tokio::time::Instant::now();
    let err = Recorder::with_dialer(config, net)
        .connect(&addrs, session())
        .await
        .expect_err("all hang");
    assert_eq!(started.elapsed(), Duration::from_secs(12));
    let kinds: Vec<_> = err.attempts().iter().map(|a| &a.error).collect();
    assert!(matches!(kinds[0], AttemptError::DialTimeout(_)));
    assert!(matches!(kinds[1], AttemptError::DialTimeout(_)));
    assert!(matches!(kinds[2], AttemptError::Timeout(_)));
    assert!(matches!(kinds[3], AttemptError::NotTried(_)));
    assert!(err.to_string().contains("not tried"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn refused_dial_is_not_retried_with_v1() {
    let net = MemNet::default();
    let (fake, _uploads) = FakeRecorder::new(Behaviour::default());
    let refuse = net.route("10.0.0.1:80", Route::Refuse);
    let live = net.route("10.0.0.2:80", Route::Recorder(fake));
    let recording = Recorder::with_dialer(RecorderConfig::default(), net.clone())
        .connect(&[refuse, live], session())
        .await
        .expect("connect");
    assert_eq!(net.dials(), vec![refuse, live]);
    assert!(recording.finish().await.is_uploaded());
}

#[tokio::test(start_paused = true)]
async fn recorder_refusing_the_upload_falls_over_to_the_next() {
    let net = MemNet::default();
    let (busy, _) = FakeRecorder::new(Behaviour {
        refuse_upload: Some(StatusCode::SERVICE_UNAVAILABLE),
        ..Behaviour::default()
    });
    let (fake, _uploads) = FakeRecorder::new(Behaviour::default());
    let busy = net.route("10.0.0.1:80", Route::Recorder(busy));
    let live = net.route("10.0.0.2:80", Route::Recorder(fake));
    let recording = Recorder::with_dialer(RecorderConfig::default(), net)
        .connect(&[busy, live], session())
        .await
        .expect("connect");
    assert_eq!(recording.recorder_addr(), live);
    let failure = &recording.failed_attempts()[0];
    assert!(
        matches!(
            failure.error,
            AttemptError::Status(StatusCode::SERVICE_UNAVAILABLE)
        ),
        "{failure}"
    );
    assert_eq!(
        failure.to_string(),
        "recorder 10.0.0.1:80: recorder answered 503 Service Unavailable"
    );
    assert!(recording.finish().await.is_uploaded());
}
