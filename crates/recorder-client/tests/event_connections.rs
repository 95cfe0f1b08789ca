//! The sender's connections to a recorder: kept connections and their limits, when a request is
//! sent again on a new connection (and when never, so that an event is not stored twice), answer
//! bodies, and the bound on connections per address.

mod event_recorder;

use std::sync::Arc;
use std::time::Duration;

use event_recorder::{ids, request_event, send_concurrently, CountingRecorder, MemNet, Route};
use recorder_client::{EventConfig, EventDelivery, EventSender};

fn sender() -> EventSender {
    EventSender::new(EventConfig::default())
}

#[tokio::test]
async fn concurrent_events_are_all_stored_and_idle_connections_are_kept_to_the_limit() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig {
        max_idle_connections: 2,
        ..EventConfig::default()
    });
    for delivery in send_concurrently(&sender, addr, 32).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
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
    // One more for the first event's batch probe (`HEAD /v2/events`, answered 404 here).
    assert_eq!(recorder.connections(), 5);
}

#[tokio::test]
async fn a_kept_connection_closed_before_the_post_went_out_is_replaced_without_losing_the_event() {
    let net = MemNet::default();
    let recorder = CountingRecorder::new();
    let addr = net.route("100.64.0.1:80", Route::Recorder(recorder.clone()));
    let sender = EventSender::with_dialer(EventConfig::default(), Arc::new(net.clone()));
    let delivery = sender.send(&[addr], &request_event("e-0")).await;
    assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    // The recorder closes the kept connection; the sender notices only once the next `POST`
    // waits on it, and hyper hands the unwritten request back.
    net.close_quietly(addr);
    let delivery = sender.send(&[addr], &request_event("e-1")).await;
    assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    assert_eq!(ids(&recorder.received()), ["e-0", "e-1"]);
    assert_eq!(recorder.posts(), 2);
    assert_eq!(recorder.connections(), 2);
}

#[tokio::test]
async fn a_post_the_recorder_stored_and_closed_under_is_not_sent_again_on_that_address() {
    let flaky = CountingRecorder::new();
    // The second `POST` goes on the kept connection: read, stored, and no answer.
    flaky.close_after_storing_post(2);
    let flaky_addr = flaky.listen().await;
    let good = CountingRecorder::new();
    let good_addr = good.listen().await;
    let sender = sender();
    let delivery = sender
        .send(&[flaky_addr, good_addr], &request_event("e-0"))
        .await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Stored {
            recorder: flaky_addr
        })
    );
    let delivery = sender
        .send(&[flaky_addr, good_addr], &request_event("e-1"))
        .await;
    assert_eq!(
        delivery,
        Ok(EventDelivery::Stored {
            recorder: good_addr
        })
    );
    // Exactly one `POST` of e-1 reached the flaky recorder: it was not sent again there. (It is
    // stored twice, once per recorder: the sender cannot know the first stored it.)
    assert_eq!(flaky.posts(), 2);
    assert_eq!(ids(&flaky.received()), ["e-0", "e-1"]);
    assert_eq!(ids(&good.received()), ["e-1"]);
    assert_eq!(flaky.connections(), 1);

    // Alone, it is an error for that address.
    flaky.close_after_storing_post(3);
    let error = sender
        .send(&[flaky_addr], &request_event("e-2"))
        .await
        .expect_err("no answer");
    assert_eq!(error.attempts.len(), 1);
    let (addr, reason) = &error.attempts[0];
    assert_eq!(*addr, flaky_addr);
    assert!(reason.starts_with("HTTP error: "), "{reason}");
    assert_eq!(flaky.posts(), 3);
    assert_eq!(ids(&flaky.received()), ["e-0", "e-1", "e-2"]);
}

#[tokio::test]
async fn a_post_on_a_new_connection_is_never_sent_again() {
    let recorder = CountingRecorder::new();
    // Dropped as soon as the `POST` arrives, unread: the sender cannot tell it from a stored one.
    recorder.drop_connection_at_post(1);
    let addr = recorder.listen().await;
    let error = sender()
        .send(&[addr], &request_event("e-1"))
        .await
        .expect_err("no answer");
    assert!(error.attempts[0].1.starts_with("HTTP error: "), "{error}");
    assert_eq!(recorder.posts(), 1);
    assert_eq!(recorder.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_body_that_never_ends_does_not_hold_up_a_stored_event() {
    let net = MemNet::default();
    let recorder = CountingRecorder::new();
    recorder.hang_answer_bodies(true);
    let addr = net.route("100.64.0.1:80", Route::Recorder(recorder.clone()));
    let sender = EventSender::with_dialer(EventConfig::default(), Arc::new(net));
    let started = tokio::time::Instant::now();
    for i in 0..2 {
        let delivery = sender
            .send(&[addr], &request_event(&format!("e-{i}")))
            .await;
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The connections with open answers are not kept: each event had its own.
    assert_eq!(recorder.connections(), 2);

    // Once the recorder ends its answers, connections are kept again.
    recorder.hang_answer_bodies(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 2..5 {
        let delivery = sender
            .send(&[addr], &request_event(&format!("e-{i}")))
            .await;
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.connections(), 3);
    assert_eq!(recorder.posts(), 5);
    assert_eq!(
        ids(&recorder.received()),
        ["e-0", "e-1", "e-2", "e-3", "e-4"]
    );
}

#[tokio::test]
async fn connections_to_a_recorder_are_bounded() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig {
        max_connections: 2,
        ..EventConfig::default()
    });
    for delivery in send_concurrently(&sender, addr, 10).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.received().len(), 10);
    assert!(
        (1..=2).contains(&recorder.max_open_connections()),
        "{} connections open at once",
        recorder.max_open_connections()
    );
    assert!(recorder.connections() <= 2, "{}", recorder.connections());
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_connection_counts_against_the_attempt_limit() {
    let net = MemNet::default();
    let recorder = CountingRecorder::new();
    recorder.hang_posts();
    let silent = net.route("100.64.0.1:80", Route::Recorder(recorder.clone()));
    let sender = EventSender::with_dialer(
        EventConfig {
            max_connections: 1,
            ..EventConfig::default()
        },
        Arc::new(net),
    );
    let started = tokio::time::Instant::now();
    let addrs = [silent];
    let events = [request_event("e-1"), request_event("e-2")];
    let (first, second) = tokio::join!(
        sender.send(&addrs, &events[0]),
        sender.send(&addrs, &events[1]),
    );
    // The second waited for the first's connection until its own limit: it was never sent.
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    for result in [first, second] {
        assert_eq!(
            result.expect_err("no answer").attempts,
            [(silent, "no answer within 10s".to_owned())]
        );
    }
    assert_eq!(recorder.posts(), 1);
    assert_eq!(recorder.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_unused_for_long_is_not_kept() {
    let net = MemNet::default();
    let recorder = CountingRecorder::new();
    let addr = net.route("100.64.0.1:80", Route::Recorder(recorder.clone()));
    let sender = EventSender::with_dialer(EventConfig::default(), Arc::new(net));
    sender
        .send(&[addr], &request_event("e-1"))
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_secs(60)).await;
    sender
        .send(&[addr], &request_event("e-2"))
        .await
        .expect("sent");
    assert_eq!(recorder.connections(), 1);
    // Go's `http.DefaultTransport` keeps idle connections for 90 s.
    tokio::time::sleep(Duration::from_secs(91)).await;
    sender
        .send(&[addr], &request_event("e-3"))
        .await
        .expect("sent");
    assert_eq!(recorder.connections(), 2);
}
