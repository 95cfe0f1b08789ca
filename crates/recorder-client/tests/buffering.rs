//! The buffer between the proxy and the upload: fail-closed backpressure, fail-open abandonment,
//! and the tty header waiting for the terminal size.

mod common;

use std::time::Duration;

use common::{header, Behaviour, Cast, End, FakeRecorder, MemNet, Route, ServerUpload};
use recorder_client::{
    AbandonReason, ExitStatus, FeedError, Outcome, OutputStream, OwnedSessionEvent, Recorder,
    RecorderConfig, Recording, Session, SessionEvent, SessionType, TtyOptions,
};
use tokio::sync::{mpsc::UnboundedReceiver, watch};
use tokio::time::{timeout, Instant};

async fn connect(
    behaviour: Behaviour,
    config: RecorderConfig,
    tty: bool,
) -> (Recording, UnboundedReceiver<ServerUpload>) {
    connect_session(
        behaviour,
        config,
        Session::new(header(SessionType::Attach), tty),
    )
    .await
}

async fn connect_session(
    behaviour: Behaviour,
    config: RecorderConfig,
    session: Session,
) -> (Recording, UnboundedReceiver<ServerUpload>) {
    let net = MemNet::default();
    let (fake, uploads) = FakeRecorder::new(behaviour);
    let addr = net.route("10.0.0.1:80", Route::Recorder(fake));
    let recording = Recorder::with_dialer(config, net)
        .connect(&[addr], session)
        .await
        .expect("connect");
    (recording, uploads)
}

fn chunk(i: usize) -> Vec<u8> {
    format!("{i:>6}:{}\n", "y".repeat(500)).into_bytes()
}

#[tokio::test(start_paused = true)]
async fn fail_closed_feed_waits_for_room_and_drops_nothing() {
    let (reading_tx, reading_rx) = watch::channel(false);
    let config = RecorderConfig {
        buffer_bytes: 4096,
        ..RecorderConfig::default()
    };
    let (recording, mut uploads) = connect(
        Behaviour {
            reading: Some(reading_rx),
            ..Behaviour::default()
        },
        config,
        false,
    )
    .await;

    // The recorder reads nothing: feed until the buffer (and the connection) is full.
    let mut fed = Vec::new();
    let mut i = 0;
    let blocked = loop {
        let data = chunk(i);
        // Owned: the pending feed outlives `data`'s iteration.
        let feed = recording.feed(OwnedSessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: data.clone(),
        });
        let mut feed = Box::pin(feed);
        match timeout(Duration::from_secs(5), &mut feed).await {
            Ok(result) => result.expect("feed"),
            Err(_) => break feed,
        }
        fed.extend_from_slice(&data);
        i += 1;
        assert!(i < 10_000, "feed never waited");
    };
    assert!(
        fed.len() > 4096,
        "the connection holds some data too: {}",
        fed.len()
    );
    assert!(recording.failed_attempts().is_empty());

    // The recorder catches up: the waiting feed completes and everything arrives, in order.
    reading_tx.send_replace(true);
    blocked.await.expect("the waiting feed completes");
    fed.extend_from_slice(&chunk(i));
    for j in i + 1..i + 20 {
        let data = chunk(j);
        recording
            .feed(SessionEvent::Output {
                stream: OutputStream::Stdout,
                bytes: &data,
            })
            .await
            .expect("feed");
        fed.extend_from_slice(&data);
    }
    let outcome = recording.finish().await;
    assert!(outcome.is_uploaded(), "{outcome}");
    let state = uploads.recv().await.expect("upload").ended().await;
    assert_eq!(state.end, Some(End::Complete));
    assert_eq!(
        Cast::parse(&state.data).text("o").as_bytes(),
        fed.as_slice()
    );
}

#[tokio::test(start_paused = true)]
async fn fail_open_try_feed_never_waits_and_abandons_when_behind() {
    let (reading_tx, reading_rx) = watch::channel(false);
    let config = RecorderConfig {
        buffer_bytes: 4096,
        ..RecorderConfig::default()
    };
    let (recording, mut uploads) = connect(
        Behaviour {
            reading: Some(reading_rx),
            ..Behaviour::default()
        },
        config,
        false,
    )
    .await;
    let started = Instant::now();
    let mut accepted = 0;
    let lagging = loop {
        match recording.try_feed(SessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: &chunk(accepted),
        }) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        // Let the writer move what it can into the (stalled) connection.
        tokio::task::yield_now().await;
        assert!(accepted < 10_000, "never abandoned");
    };
    assert_eq!(started.elapsed(), Duration::ZERO, "try_feed never waited");
    assert_eq!(lagging, FeedError::Lagging { limit_bytes: 4096 });
    let reason = AbandonReason::Lagging { limit_bytes: 4096 };
    assert_eq!(
        recording.failed().await,
        Outcome::Abandoned {
            reason: reason.clone()
        }
    );
    assert_eq!(
        recording.try_feed(SessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"more"
        }),
        Err(FeedError::Stopped)
    );
    assert_eq!(recording.finish().await, Outcome::Abandoned { reason });
    // When the recorder reads on, it finds the upload cut short.
    reading_tx.send_replace(true);
    let state = uploads.recv().await.expect("upload").ended().await;
    assert!(matches!(state.end, Some(End::Broken(_))), "{:?}", state.end);
}

#[tokio::test(start_paused = true)]
async fn tty_header_waits_for_the_first_resize() {
    let (recording, mut uploads) =
        connect(Behaviour::default(), RecorderConfig::default(), true).await;
    let mut upload = uploads.recv().await.expect("upload");
    recording
        .feed(SessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"$ ",
        })
        .await
        .expect("feed");
    recording
        .feed(SessionEvent::Resize {
            cols: 132,
            rows: 43,
        })
        .await
        .expect("feed");
    recording
        .feed(SessionEvent::Resize { cols: 0, rows: 0 })
        .await
        .expect("feed");
    recording
        .feed(SessionEvent::Resize {
            cols: 100,
            rows: 30,
        })
        .await
        .expect("feed");
    recording
        .feed(SessionEvent::Exit {
            status: &ExitStatus::Code(0),
        })
        .await
        .expect("feed");
    assert!(recording.finish().await.is_uploaded());
    let cast = Cast::parse(&upload.ended().await.data);
    assert_eq!(cast.header["width"], 132);
    assert_eq!(cast.header["height"], 43);
    assert_eq!(cast.header["kubernetes"]["SessionType"], "attach");
    let codes: Vec<(&str, &str)> = cast
        .events
        .iter()
        .map(|e| (e.1.as_str(), e.2.as_str()))
        .collect();
    assert_eq!(codes, [("o", "$ "), ("r", "100x30"), ("m", "exit 0")]);
}

#[tokio::test(start_paused = true)]
async fn tty_header_uses_the_default_size_at_the_deadline() {
    let config = RecorderConfig {
        tty: TtyOptions {
            resize_deadline: Duration::from_secs(2),
            ..TtyOptions::default()
        },
        ..RecorderConfig::default()
    };
    let (recording, mut uploads) = connect(Behaviour::default(), config, true).await;
    let mut upload = uploads.recv().await.expect("upload");
    let started = Instant::now();
    recording
        .feed(SessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: "prompt €".as_bytes(),
        })
        .await
        .expect("feed");
    // Nothing else happens: at the deadline the header goes out with 80x24, then the output.
    let state = upload.received(1).await;
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let cast = Cast::parse(&state.data);
    assert_eq!(
        (cast.header["width"].clone(), cast.header["height"].clone()),
        (80.into(), 24.into())
    );
    assert_eq!(cast.text("o"), "prompt €");
    // A later resize is an `r` event.
    recording
        .feed(SessionEvent::Resize { cols: 90, rows: 25 })
        .await
        .expect("feed");
    assert!(recording.finish().await.is_uploaded());
    let cast = Cast::parse(&upload.ended().await.data);
    assert_eq!(
        cast.events.last().map(|e| (e.1.as_str(), e.2.as_str())),
        Some(("r", "90x25"))
    );
}

#[tokio::test(start_paused = true)]
async fn characters_split_across_events_are_recorded_whole() {
    let config = RecorderConfig {
        record_input: true,
        ..RecorderConfig::default()
    };
    let (recording, mut uploads) = connect(Behaviour::default(), config, false).await;
    let text = "grüße 😀 – ok\n".as_bytes();
    for piece in text.chunks(1) {
        recording
            .feed(SessionEvent::Output {
                stream: OutputStream::Stdout,
                bytes: piece,
            })
            .await
            .expect("feed");
    }
    recording
        .feed(SessionEvent::Output {
            stream: OutputStream::Stderr,
            bytes: b"bad \xFF\xE2\x82",
        })
        .await
        .expect("feed");
    recording
        .feed(SessionEvent::Input { bytes: b"ls\r" })
        .await
        .expect("feed");
    assert!(recording.finish().await.is_uploaded());
    let cast = Cast::parse(&uploads.recv().await.expect("upload").ended().await.data);
    assert_eq!(cast.text("o"), "grüße 😀 – ok\nbad \u{FFFD}\u{FFFD}");
    assert_eq!(cast.text("i"), "ls\r");
    // Events are stamped when fed: all at time 0 on the paused clock, and never decreasing.
    assert!(cast.events.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[tokio::test(start_paused = true)]
async fn input_is_not_recorded_by_default() {
    let (recording, mut uploads) =
        connect(Behaviour::default(), RecorderConfig::default(), false).await;
    recording
        .feed(SessionEvent::Input { bytes: b"secret\n" })
        .await
        .expect("feed");
    assert!(recording.finish().await.is_uploaded());
    let cast = Cast::parse(&uploads.recv().await.expect("upload").ended().await.data);
    assert!(cast.events.is_empty());
}

#[tokio::test(start_paused = true)]
async fn each_session_says_whether_its_input_is_recorded() {
    // The session's switch wins over the configuration's default, either way.
    for (default, session) in [(false, true), (true, false)] {
        let config = RecorderConfig {
            record_input: default,
            ..RecorderConfig::default()
        };
        let session = Session::new(header(SessionType::Exec), false).with_record_input(session);
        let recorded = session.record_input == Some(true);
        let (recording, mut uploads) = connect_session(Behaviour::default(), config, session).await;
        recording
            .feed(SessionEvent::Input {
                bytes: b"echo hi\n",
            })
            .await
            .expect("feed");
        assert!(recording.finish().await.is_uploaded());
        let cast = Cast::parse(&uploads.recv().await.expect("upload").ended().await.data);
        assert_eq!(cast.text("i"), if recorded { "echo hi\n" } else { "" });
    }
}

#[tokio::test(start_paused = true)]
async fn a_tty_session_records_echoed_input_and_marks_the_rest() {
    let session = Session::new(header(SessionType::Exec), true).with_record_input(true);
    let (recording, mut uploads) =
        connect_session(Behaviour::default(), RecorderConfig::default(), session).await;
    let events: [OwnedSessionEvent; 6] = [
        OwnedSessionEvent::Resize { cols: 80, rows: 24 },
        OwnedSessionEvent::Input {
            bytes: b"read pw\r".to_vec(),
        },
        OwnedSessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"read pw\r\n".to_vec(),
        },
        OwnedSessionEvent::Input {
            bytes: b"s3cret\r".to_vec(),
        },
        OwnedSessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"\r\n$ ".to_vec(),
        },
        OwnedSessionEvent::Exit {
            status: ExitStatus::Success,
        },
    ];
    for event in events {
        recording.feed(event).await.expect("feed");
    }
    assert!(recording.finish().await.is_uploaded());
    let cast = Cast::parse(&uploads.recv().await.expect("upload").ended().await.data);
    assert_eq!(cast.text("i"), "read pw\r");
    assert_eq!(cast.text("m"), "input redacted: 7 bytes not echoedexit 0");
    assert!(!cast.events.iter().any(|e| e.2.contains("s3cret")));
}
