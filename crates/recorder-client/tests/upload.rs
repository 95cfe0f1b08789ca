//! An upload that goes wrong mid-session: error frames, missing acks, a recorder that dies, and the
//! client cutting the upload short.

mod common;

use std::time::Duration;

use common::{header, Behaviour, Cast, End, FakeRecorder, MemNet, Route};
use recorder_client::{
    AbandonReason, FeedError, Outcome, OutputStream, OwnedSessionEvent, Protocol, Recorder,
    RecorderConfig, Recording, Session, SessionType, UploadError,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

async fn connect(
    behaviour: Behaviour,
    config: RecorderConfig,
) -> (Recording, UnboundedReceiver<common::ServerUpload>) {
    let net = MemNet::default();
    let (fake, uploads) = FakeRecorder::new(behaviour);
    let addr = net.route("10.0.0.1:80", Route::Recorder(fake));
    let recording = Recorder::with_dialer(config, net)
        .connect(&[addr], Session::new(header(SessionType::Exec), false))
        .await
        .expect("connect");
    (recording, uploads)
}

fn out(text: &str) -> OwnedSessionEvent {
    OwnedSessionEvent::Output {
        stream: OutputStream::Stdout,
        bytes: text.as_bytes().to_vec(),
    }
}

#[tokio::test(start_paused = true)]
async fn error_frame_fails_the_recording_with_its_message() {
    let (recording, mut uploads) = connect(
        Behaviour {
            error_after: Some((1, "disk full".into())),
            ..Behaviour::default()
        },
        RecorderConfig::default(),
    )
    .await;
    let failed = recording.failed();
    // The header alone is enough to trigger the error.
    let outcome = failed.await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            reason: UploadError::Recorder("disk full".into())
        }
    );
    assert_eq!(
        outcome.to_string(),
        "failed: recorder reported an error: disk full"
    );
    assert_eq!(recording.feed(out("more")).await, Err(FeedError::Stopped));
    assert_eq!(recording.try_feed(out("more")), Err(FeedError::Stopped));
    assert_eq!(recording.finish().await, outcome);
    assert_eq!(
        uploads.recv().await.expect("upload").ended().await.end,
        Some(End::ByRecorder)
    );
}

#[tokio::test(start_paused = true)]
async fn no_ack_within_the_window_fails_the_recording() {
    let config = RecorderConfig {
        ack_window: Duration::from_secs(3),
        ..RecorderConfig::default()
    };
    let (recording, _uploads) = connect(
        Behaviour {
            ack_each_frame: false,
            idle_ack: None,
            ..Behaviour::default()
        },
        config,
    )
    .await;
    let started = Instant::now();
    let outcome = recording.failed().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(
        outcome,
        Outcome::Failed {
            reason: UploadError::NoAck(Duration::from_secs(3))
        }
    );
    assert_eq!(recording.finish().await, outcome);
}

#[tokio::test(start_paused = true)]
async fn idle_acks_keep_a_quiet_session_alive() {
    let config = RecorderConfig {
        ack_window: Duration::from_secs(3),
        ..RecorderConfig::default()
    };
    let (recording, mut uploads) = connect(Behaviour::default(), config).await;
    let failed = recording.failed();
    tokio::pin!(failed);
    // A minute without output: the recorder's once-a-second acks keep the upload alive.
    let quiet = tokio::time::timeout(Duration::from_secs(60), &mut failed).await;
    assert!(quiet.is_err(), "failed during a quiet session: {quiet:?}");
    recording.feed(out("late\n")).await.expect("feed");
    assert!(recording.finish().await.is_uploaded());
    let state = uploads.recv().await.expect("upload").ended().await;
    assert_eq!(Cast::parse(&state.data).text("o"), "late\n");
}

#[tokio::test(start_paused = true)]
async fn recorder_dying_mid_session_fails_the_recording() {
    let (recording, mut uploads) = connect(
        Behaviour {
            die_after: Some(300),
            ..Behaviour::default()
        },
        RecorderConfig::default(),
    )
    .await;
    let started = Instant::now();
    for _ in 0..10 {
        if recording.feed(out(&"x".repeat(100))).await.is_err() {
            break;
        }
    }
    let outcome = recording.failed().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "noticed at once, not after the ack window"
    );
    assert!(
        matches!(
            &outcome,
            Outcome::Failed {
                reason: UploadError::Connection(_) | UploadError::EndedEarly
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        uploads.recv().await.expect("upload").ended().await.end,
        Some(End::ByRecorder)
    );
}

#[tokio::test(start_paused = true)]
async fn abandon_cuts_the_upload_short() {
    let (recording, mut uploads) = connect(Behaviour::default(), RecorderConfig::default()).await;
    recording.feed(out("before\n")).await.expect("feed");
    let mut upload = uploads.recv().await.expect("upload");
    upload.received(1).await;
    recording.abandon("tap could not parse the session");
    let reason = AbandonReason::Requested("tap could not parse the session".into());
    assert_eq!(
        recording.failed().await,
        Outcome::Abandoned {
            reason: reason.clone()
        }
    );
    assert_eq!(
        recording.feed(out("after\n")).await,
        Err(FeedError::Stopped)
    );
    assert_eq!(recording.finish().await, Outcome::Abandoned { reason });
    let state = upload.ended().await;
    assert!(
        matches!(state.end, Some(End::Broken(_))),
        "the recorder must see an incomplete upload: {:?}",
        state.end
    );
}

/// What was fed before an abandon (a fail-closed session has forwarded it to the client already)
/// still reaches the recorder, over both protocols, before the upload is cut.
#[tokio::test(start_paused = true)]
async fn abandon_still_delivers_what_was_fed_before_it() {
    for http1_only in [false, true] {
        let (recording, mut uploads) = connect(
            Behaviour {
                http1_only,
                ..Behaviour::default()
            },
            RecorderConfig::default(),
        )
        .await;
        let mut upload = uploads.recv().await.expect("upload");
        for line in ["one\n", "two\n", "three\n"] {
            recording.feed(out(line)).await.expect("feed");
        }
        // At once: the events are still in the recording's buffer or on their way.
        recording.abandon("the tap refused a frame");
        let state = upload.ended().await;
        assert!(
            matches!(state.end, Some(End::Broken(_))),
            "http1_only {http1_only}: incomplete: {:?}",
            state.end
        );
        let cast = Cast::parse(&state.data);
        assert_eq!(
            cast.text("o"),
            "one\ntwo\nthree\n",
            "http1_only {http1_only}"
        );
        assert!(matches!(
            recording.finish().await,
            Outcome::Abandoned {
                reason: AbandonReason::Requested(_)
            }
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_recording_without_finish_leaves_it_incomplete() {
    let (recording, mut uploads) = connect(Behaviour::default(), RecorderConfig::default()).await;
    let feeder = recording.feeder();
    feeder.feed(out("partial\n")).await.expect("feed");
    drop(recording);
    let state = uploads.recv().await.expect("upload").ended().await;
    assert!(matches!(state.end, Some(End::Broken(_))), "{:?}", state.end);
    assert!(feeder.is_stopped());
    assert_eq!(feeder.feed(out("late")).await, Err(FeedError::Stopped));
}

#[tokio::test(start_paused = true)]
async fn v1_upload_is_confirmed_by_the_final_200() {
    let (recording, mut uploads) = connect(
        Behaviour {
            http1_only: true,
            ..Behaviour::default()
        },
        RecorderConfig::default(),
    )
    .await;
    assert_eq!(recording.protocol(), Protocol::V1);
    let feeder = recording.feeder();
    let writer = tokio::spawn(async move {
        for i in 0..100 {
            feeder
                .feed(out(&format!("line {i}\n")))
                .await
                .expect("feed");
        }
    });
    writer.await.expect("feeder task");
    let outcome = recording.finish().await;
    let state = uploads.recv().await.expect("upload").ended().await;
    assert_eq!(
        outcome,
        Outcome::Uploaded {
            bytes: state.data.len() as u64
        }
    );
    let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
    assert_eq!(Cast::parse(&state.data).text("o"), expected);
}

#[tokio::test(start_paused = true)]
async fn a_marker_goes_after_the_events_before_it_and_the_recording_stays_complete() {
    let (recording, mut uploads) = connect(Behaviour::default(), RecorderConfig::default()).await;
    recording.feed(out("working\n")).await.expect("feed");
    recording.mark("ended by the proxy: session idle for 15m");
    let outcome = recording.finish().await;
    let state = uploads.recv().await.expect("upload").ended().await;
    assert!(outcome.is_uploaded(), "{outcome}");
    let cast = Cast::parse(&state.data);
    let codes: Vec<(&str, &str)> = cast
        .events
        .iter()
        .map(|(_, code, data)| (code.as_str(), data.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            ("o", "working\n"),
            ("m", "ended by the proxy: session idle for 15m")
        ]
    );
}

/// The proxy runs these futures in spawned tasks, so they must be `Send + 'static`.
#[allow(dead_code)]
fn futures_are_send(recording: Recording, feeder: recorder_client::Feeder) {
    fn spawnable<T: std::future::Future + Send + 'static>(_: T) {}
    spawnable(recording.failed());
    let event = out("x");
    spawnable(async move { feeder.feed(event).await });
    spawnable(recording.finish());
}
