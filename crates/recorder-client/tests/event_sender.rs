//! Sending API events: to kube-recorder itself, failover between addresses, recorders without
//! event support, the probe cache and the time limits. The connections themselves are in
//! `event_connections.rs`.

mod event_recorder;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use event_recorder::{refusal_body, request_event, CountingRecorder, MemNet, Route};
use http::StatusCode;
use recorder_client::{
    ApiRequestEvent, ApiResponseEvent, EventConfig, EventDelivery, EventResponse, EventSender,
};
use recorder_server::{EventFilter, RecorderServer, ServerOptions};
use tokio::net::TcpListener;

/// An address on which nothing listens: bound, then released.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

async fn kube_recorder(dir: &tempfile::TempDir, events: bool) -> RecorderServer {
    let mut options = ServerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path());
    options.events = events;
    RecorderServer::start(options).await.expect("recorder")
}

fn sender() -> EventSender {
    EventSender::new(EventConfig::default())
}

#[tokio::test]
async fn events_are_stored_by_kube_recorder_as_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = kube_recorder(&dir, true).await;
    let sender = sender();
    let request = request_event("e-1");
    let delivery = sender.send(&[server.addr()], &request).await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Stored {
            recorder: server.addr()
        })
    );
    let response = ApiResponseEvent {
        id: request.id.clone(),
        timestamp: 1_714_564_801,
        kubernetes: request.kubernetes.clone(),
        source: request.source.clone(),
        destination: request.destination.clone(),
        response: EventResponse {
            status: 200,
            duration_ms: 12.5,
            bytes: 2048,
            error: None,
        },
    };
    let delivery = sender.send(&[server.addr()], &response).await;
    assert!(
        matches!(delivery, Ok(EventDelivery::Stored { .. })),
        "{delivery:?}"
    );

    let stored = server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events");
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0].get(),
        serde_json::to_string(&request).expect("json")
    );
    let read: ApiRequestEvent = serde_json::from_str(stored[0].get()).expect("request event");
    assert_eq!(read, request);
    let read: ApiResponseEvent = serde_json::from_str(stored[1].get()).expect("response event");
    assert_eq!(read, response);

    // The recorder's own filters see the event's fields.
    let alice = EventFilter {
        user: Some("alice@example.com".into()),
        verb: Some("list".into()),
        ..EventFilter::default()
    };
    assert_eq!(
        server.store().events(&alice).await.expect("events").len(),
        2
    );
    server.shutdown().await;
}

#[tokio::test]
async fn events_go_on_after_kube_recorder_closes_an_idle_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = ServerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path());
    // kube-recorder gives each HTTP/1.1 request head this long, idle keep-alive time included.
    options.header_read_timeout = Duration::from_millis(100);
    let server = RecorderServer::start(options).await.expect("recorder");
    let sender = sender();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let delivery = sender
            .send(&[server.addr()], &request_event(&format!("e-{i}")))
            .await;
        assert_eq!(
            delivery,
            Ok(EventDelivery::Stored {
                recorder: server.addr()
            })
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_dead_first_address_fails_over_to_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = kube_recorder(&dir, true).await;
    let dead = dead_addr().await;
    let delivery = sender()
        .send(&[dead, server.addr()], &request_event("e-1"))
        .await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Stored {
            recorder: server.addr()
        })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn when_every_address_fails_each_is_listed_with_its_reason() {
    let (first, second) = (dead_addr().await, dead_addr().await);
    let error = sender()
        .send(&[first, second], &request_event("e-1"))
        .await
        .expect_err("nothing listens");
    assert_eq!(error.attempts.len(), 2);
    assert_eq!(error.attempts[0].0, first);
    assert_eq!(error.attempts[1].0, second);
    for (_, reason) in &error.attempts {
        assert!(reason.starts_with("dial failed: "), "{reason}");
    }
    let text = error.to_string();
    assert!(text.contains(&format!("{first}: dial failed")), "{text}");
    assert!(text.contains(&format!("{second}: dial failed")), "{text}");
}

#[tokio::test]
async fn no_addresses_is_an_error() {
    let error = sender()
        .send(&[], &request_event("e-1"))
        .await
        .expect_err("no recorder");
    assert!(error.attempts.is_empty());
    assert!(
        error.to_string().contains("no recorder addresses"),
        "{error}"
    );
}

/// What an address without event support is listed with when another address failed.
const UNSUPPORTED: &str = "does not support API events (404 to HEAD /v2/event)";

#[tokio::test]
async fn a_recorder_without_events_is_skipped_and_the_next_address_stores_the_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = kube_recorder(&dir, false).await;
    let next = CountingRecorder::new();
    let next_addr = next.listen().await;
    let sender = sender();
    for i in 0..2 {
        let delivery = sender
            .send(
                &[server.addr(), next_addr],
                &request_event(&format!("e-{i}")),
            )
            .await;
        assert_eq!(
            delivery,
            Ok(EventDelivery::Stored {
                recorder: next_addr
            })
        );
    }
    assert_eq!(next.received().len(), 2);
    assert!(server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events")
        .is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_recorder_without_events_and_a_failed_one_make_an_error_listing_both() {
    let unsupported = CountingRecorder::new();
    unsupported.answer_probe(StatusCode::NOT_FOUND);
    let unsupported_addr = unsupported.listen().await;
    let dead = dead_addr().await;
    let sender = sender();
    // The second time the unsupported answer comes from the probe cache: the same error.
    for _ in 0..2 {
        let error = sender
            .send(&[unsupported_addr, dead], &request_event("e-1"))
            .await
            .expect_err("no recorder stores it");
        assert_eq!(error.attempts.len(), 2);
        assert_eq!(
            error.attempts[0],
            (unsupported_addr, UNSUPPORTED.to_owned())
        );
        assert_eq!(error.attempts[1].0, dead);
        assert!(error.attempts[1].1.starts_with("dial failed: "), "{error}");
        let text = error.to_string();
        assert!(
            text.contains(&format!("{unsupported_addr}: {UNSUPPORTED}")),
            "{text}"
        );
    }
    assert_eq!(unsupported.heads(), 1);
    assert_eq!(unsupported.posts(), 0);
}

#[tokio::test]
async fn when_no_recorder_supports_events_the_send_is_unsupported() {
    let first = CountingRecorder::new();
    first.answer_probe(StatusCode::NOT_FOUND);
    let first_addr = first.listen().await;
    let second = CountingRecorder::new();
    second.answer_probe(StatusCode::NOT_FOUND);
    let second_addr = second.listen().await;
    let sender = sender();
    let delivery = sender.send(&[first_addr], &request_event("e-1")).await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Unsupported {
            recorder: first_addr
        })
    );
    // Every address is asked; the first is named.
    let delivery = sender
        .send(&[first_addr, second_addr], &request_event("e-2"))
        .await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Unsupported {
            recorder: first_addr
        })
    );
    assert_eq!((first.heads(), second.heads()), (1, 1));
    assert_eq!(first.posts() + second.posts(), 0);
}

#[tokio::test]
async fn the_probe_is_asked_once_and_one_connection_carries_every_event() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = sender();
    for i in 0..20 {
        let delivery = sender
            .send(&[addr], &request_event(&format!("e-{i}")))
            .await;
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.heads(), 1);
    assert_eq!(recorder.posts(), 20);
    assert_eq!(recorder.connections(), 1);
    let received = recorder.received();
    assert_eq!(received.len(), 20);
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(received[0].host, Some(addr.to_string()));
    let first: ApiRequestEvent = serde_json::from_slice(&received[0].body).expect("event");
    assert_eq!(first, request_event("e-0"));
}

#[tokio::test]
async fn without_a_probe_cache_every_event_is_probed() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig {
        probe_cache: Duration::ZERO,
        ..EventConfig::default()
    });
    for i in 0..3 {
        let delivery = sender
            .send(&[addr], &request_event(&format!("e-{i}")))
            .await;
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.heads(), 3);
    assert_eq!(recorder.posts(), 3);
}

#[tokio::test]
async fn an_expired_probe_answer_is_asked_again() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig {
        probe_cache: Duration::from_millis(100),
        ..EventConfig::default()
    });
    sender
        .send(&[addr], &request_event("e-1"))
        .await
        .expect("sent");
    sender
        .send(&[addr], &request_event("e-2"))
        .await
        .expect("sent");
    assert_eq!(recorder.heads(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    sender
        .send(&[addr], &request_event("e-3"))
        .await
        .expect("sent");
    assert_eq!(recorder.heads(), 2);
}

#[tokio::test]
async fn an_unsupported_answer_is_cached_too() {
    let recorder = CountingRecorder::new();
    recorder.answer_probe(StatusCode::NOT_FOUND);
    let addr = recorder.listen().await;
    let sender = sender();
    for _ in 0..5 {
        let delivery = sender.send(&[addr], &request_event("e-1")).await;
        assert_eq!(delivery, Ok(EventDelivery::Unsupported { recorder: addr }));
    }
    assert_eq!(recorder.heads(), 1);
    assert_eq!(recorder.posts(), 0);
}

#[tokio::test]
async fn a_failed_probe_moves_on_and_is_not_cached() {
    let broken = CountingRecorder::new();
    broken.answer_probe(StatusCode::INTERNAL_SERVER_ERROR);
    let broken_addr = broken.listen().await;
    let good = CountingRecorder::new();
    let good_addr = good.listen().await;
    let sender = sender();
    for _ in 0..2 {
        let delivery = sender
            .send(&[broken_addr, good_addr], &request_event("e-1"))
            .await;
        assert_eq!(
            delivery,
            Ok(EventDelivery::Stored {
                recorder: good_addr
            })
        );
    }
    assert_eq!(broken.heads(), 2, "a failed probe is asked again");
    assert_eq!(broken.posts(), 0);
    assert_eq!(good.heads(), 1);

    let error = sender
        .send(&[broken_addr], &request_event("e-2"))
        .await
        .expect_err("the probe fails");
    assert_eq!(
        error.attempts,
        [(
            broken_addr,
            "HEAD /v2/event answered 500 Internal Server Error".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_refused_post_moves_on_and_drops_the_cached_probe() {
    let refusing = CountingRecorder::new();
    refusing.answer_post(StatusCode::INTERNAL_SERVER_ERROR);
    let refusing_addr = refusing.listen().await;
    let good = CountingRecorder::new();
    let good_addr = good.listen().await;
    let sender = sender();

    let delivery = sender
        .send(&[refusing_addr, good_addr], &request_event("e-1"))
        .await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Stored {
            recorder: good_addr
        })
    );
    assert_eq!((refusing.heads(), refusing.posts()), (1, 1));

    // The refusal's reason reaches the error, cut short.
    let error = sender
        .send(&[refusing_addr], &request_event("e-2"))
        .await
        .expect_err("refused");
    let (addr, reason) = &error.attempts[0];
    assert_eq!(*addr, refusing_addr);
    let expected = "POST /v2/event answered 500 Internal Server Error: ";
    assert!(reason.starts_with(expected), "{reason}");
    let answer = &reason[expected.len()..];
    assert_eq!(answer.len(), 200, "{answer}");
    assert!(refusal_body().starts_with(answer), "{answer}");
    assert_eq!(
        refusing.heads(),
        2,
        "the probe is asked again after a refusal"
    );

    refusing.answer_post(StatusCode::OK);
    let delivery = sender
        .send(&[refusing_addr, good_addr], &request_event("e-3"))
        .await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Stored {
            recorder: refusing_addr
        })
    );
    assert_eq!(refusing.heads(), 3);
    assert_eq!(refusing.received().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_dial_times_out_and_the_next_address_is_used() {
    let net = MemNet::default();
    let hang = net.route("100.64.0.1:80", Route::Hang);
    let recorder = CountingRecorder::new();
    let good = net.route("100.64.0.2:80", Route::Recorder(recorder.clone()));
    let sender = EventSender::with_dialer(EventConfig::default(), Arc::new(net));
    let delivery = sender.send(&[hang, good], &request_event("e-1")).await;
    assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: good }));

    let error = sender
        .send(&[hang], &request_event("e-2"))
        .await
        .expect_err("the dial hangs");
    assert_eq!(
        error.attempts,
        [(hang, "dial timed out after 5s".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_recorder_that_does_not_answer_times_out() {
    let net = MemNet::default();
    let recorder = CountingRecorder::new();
    recorder.hang_posts();
    let silent = net.route("100.64.0.1:80", Route::Recorder(recorder.clone()));
    let sender = EventSender::with_dialer(EventConfig::default(), Arc::new(net));
    let started = tokio::time::Instant::now();
    let error = sender
        .send(&[silent], &request_event("e-1"))
        .await
        .expect_err("no answer");
    assert_eq!(
        error.attempts,
        [(silent, "no answer within 10s".to_owned())]
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(recorder.posts(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_total_limit_leaves_later_addresses_untried() {
    let net = MemNet::default();
    let recorder = CountingRecorder::new();
    recorder.hang_posts();
    let addrs = [
        net.route("100.64.0.1:80", Route::Recorder(recorder.clone())),
        net.route("100.64.0.2:80", Route::Recorder(recorder.clone())),
        net.route("100.64.0.3:80", Route::Recorder(recorder.clone())),
    ];
    let sender = EventSender::with_dialer(
        EventConfig {
            total_timeout: Duration::from_secs(15),
            ..EventConfig::default()
        },
        Arc::new(net),
    );
    let started = tokio::time::Instant::now();
    let error = sender
        .send(&addrs, &request_event("e-1"))
        .await
        .expect_err("no answer");
    assert_eq!(started.elapsed(), Duration::from_secs(15));
    assert_eq!(
        error.attempts,
        [
            (addrs[0], "no answer within 10s".to_owned()),
            (
                addrs[1],
                "gave up: all recorders must answer within 15s".to_owned()
            ),
            (
                addrs[2],
                "not tried: all recorders must answer within 15s".to_owned()
            ),
        ]
    );
}
