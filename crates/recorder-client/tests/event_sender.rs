//! Sending API events: to kube-recorder itself, failover between addresses, recorders without
//! event support, the probe cache, kept connections and the time limits.

mod event_recorder;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_recorder::{refusal_body, CountingRecorder, MemNet, Route};
use http::StatusCode;
use recorder_client::{
    ApiRequestEvent, ApiResponseEvent, EventConfig, EventDelivery, EventDestination, EventRequest,
    EventResponse, EventSender, EventSource,
};
use recorder_server::{EventFilter, RecorderServer, ServerOptions};
use requestinfo::RequestInfo;
use tokio::net::TcpListener;

fn request_event(id: &str) -> ApiRequestEvent {
    ApiRequestEvent {
        id: id.into(),
        timestamp: 1_714_564_800,
        user_agent: "kubectl/v1.32.0".into(),
        request: EventRequest {
            method: "GET".into(),
            path: "/api/v1/namespaces/default/pods?limit=500".into(),
            body: Some(Bytes::new()),
            query_parameters: BTreeMap::from([("limit".to_owned(), vec!["500".to_owned()])]),
            body_truncated: false,
            body_size: None,
        },
        kubernetes: RequestInfo {
            is_resource_request: true,
            path: "/api/v1/namespaces/default/pods".into(),
            verb: "list".into(),
            api_prefix: "api".into(),
            api_version: "v1".into(),
            namespace: "default".into(),
            resource: "pods".into(),
            parts: vec!["pods".into()],
            ..RequestInfo::default()
        },
        source: EventSource {
            node: "laptop.tail-scale.ts.net".into(),
            node_id: "nLaptop1CNTRL".into(),
            node_tags: Vec::new(),
            node_user_id: 12345,
            node_user: "alice@example.com".into(),
        },
        destination: EventDestination {
            node: "kube-proxy.tail-scale.ts.net".into(),
            node_id: "nProxyCNTRL".into(),
        },
    }
}

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

#[tokio::test]
async fn a_recorder_without_events_is_unsupported_and_later_addresses_are_not_tried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = kube_recorder(&dir, false).await;
    let next = CountingRecorder::new();
    let next_addr = next.listen().await;
    let sender = sender();
    for _ in 0..2 {
        let delivery = sender
            .send(&[server.addr(), next_addr], &request_event("e-1"))
            .await;
        assert_eq!(
            delivery,
            Ok(EventDelivery::Unsupported {
                recorder: server.addr()
            })
        );
    }
    assert_eq!(next.connections(), 0);
    assert!(server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events")
        .is_empty());
    server.shutdown().await;
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

#[tokio::test]
async fn concurrent_events_are_all_stored_and_idle_connections_are_kept_to_the_limit() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig {
        max_idle_connections: 2,
        ..EventConfig::default()
    });
    let sends: Vec<_> = (0..32)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move {
                sender
                    .send(&[addr], &request_event(&format!("e-{i}")))
                    .await
            })
        })
        .collect();
    for send in sends {
        assert_eq!(
            send.await.expect("task"),
            Ok(EventDelivery::Stored { recorder: addr })
        );
    }
    assert_eq!(recorder.received().len(), 32);
    let opened = recorder.connections();
    // Sequential events use the kept connections: at most two of them, no new ones.
    for i in 0..10 {
        sender
            .send(&[addr], &request_event(&format!("s-{i}")))
            .await
            .expect("sent");
    }
    assert_eq!(recorder.connections(), opened);
}

#[tokio::test]
async fn without_idle_connections_every_event_dials() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig {
        max_idle_connections: 0,
        ..EventConfig::default()
    });
    for i in 0..4 {
        sender
            .send(&[addr], &request_event(&format!("e-{i}")))
            .await
            .expect("sent");
    }
    assert_eq!(recorder.connections(), 4);
}

#[tokio::test]
async fn a_kept_connection_the_recorder_dropped_is_replaced_without_losing_the_event() {
    let recorder = CountingRecorder::new();
    recorder.drop_connection_at_post(2);
    let addr = recorder.listen().await;
    let sender = sender();
    for i in 0..3 {
        let delivery = sender
            .send(&[addr], &request_event(&format!("e-{i}")))
            .await;
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    let ids: Vec<String> = recorder
        .received()
        .iter()
        .map(|r| {
            serde_json::from_slice::<ApiRequestEvent>(&r.body)
                .expect("event")
                .id
        })
        .collect();
    assert_eq!(ids, ["e-0", "e-1", "e-2"]);
    assert_eq!(recorder.connections(), 2);
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
