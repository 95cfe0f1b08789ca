//! Batches of API events (`/v2/events`, our extension): concurrent events to a recorder that
//! offers batches travel together, each sender still learns its own event's fate, and a recorder
//! that speaks only Tailscale's protocol gets one `POST /v2/event` per event.
//!
//! The batching cases run on the current-thread runtime: a send reaches the queue without
//! waiting on I/O once the probe's answer is cached, so yielding lets every spawned send queue
//! its event before the held batch is let go.

mod event_recorder;

use std::net::SocketAddr;

use event_recorder::{ids, request_event, send_concurrently, CountingRecorder};
use recorder_client::{EventConfig, EventDelivery, EventSendError, EventSender};
use tokio::task::JoinHandle;

fn one_batch_at_a_time() -> EventSender {
    EventSender::new(EventConfig {
        max_batches_in_flight: 1,
        ..EventConfig::default()
    })
}

fn spawn_send(
    sender: &EventSender,
    addr: SocketAddr,
    id: String,
) -> JoinHandle<Result<EventDelivery, EventSendError>> {
    let sender = sender.clone();
    tokio::spawn(async move { sender.send(&[addr], &request_event(&id)).await })
}

/// Sends `e-0`, waits until its batch is at the (holding) recorder, then sends `e-1` to
/// `e-{count}` while it is held, and lets it go: what each send came to, in id order.
async fn send_behind_a_held_batch(
    sender: &EventSender,
    recorder: &CountingRecorder,
    addr: SocketAddr,
    count: usize,
) -> Vec<Result<EventDelivery, EventSendError>> {
    recorder.hold_batches(true);
    let first = spawn_send(sender, addr, "e-0".into());
    recorder.batch_arrived().await;
    let rest: Vec<_> = (1..=count)
        .map(|i| spawn_send(sender, addr, format!("e-{i}")))
        .collect();
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    recorder.hold_batches(false);
    let mut results = vec![first.await.expect("send task")];
    for send in rest {
        results.push(send.await.expect("send task"));
    }
    results
}

#[tokio::test]
async fn events_sent_while_a_batch_is_out_go_together_as_the_next_batch() {
    let recorder = CountingRecorder::new();
    recorder.offer_batches(None);
    let addr = recorder.listen().await;
    let sender = one_batch_at_a_time();
    for delivery in send_behind_a_held_batch(&sender, &recorder, addr, 10).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.batch_sizes(), [1, 10]);
    assert_eq!(recorder.batch_probes(), 1);
    // Nothing went the one-event way, and each event was stored once.
    assert_eq!((recorder.heads(), recorder.posts()), (0, 0));
    let mut stored = ids(&recorder.received());
    stored.sort();
    let mut sent: Vec<String> = (0..=10).map(|i| format!("e-{i}")).collect();
    sent.sort();
    assert_eq!(stored, sent);
    assert_eq!(
        recorder.received()[0].content_type.as_deref(),
        Some("application/x-ndjson")
    );
}

#[tokio::test]
async fn batches_keep_to_the_limit_the_recorder_announces() {
    let recorder = CountingRecorder::new();
    recorder.offer_batches(Some(3));
    let addr = recorder.listen().await;
    let sender = one_batch_at_a_time();
    for delivery in send_behind_a_held_batch(&sender, &recorder, addr, 9).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.batch_sizes(), [1, 3, 3, 3]);
}

#[tokio::test]
async fn batches_keep_to_the_senders_byte_limit() {
    let recorder = CountingRecorder::new();
    recorder.offer_batches(None);
    let addr = recorder.listen().await;
    let event_bytes = serde_json::to_vec(&request_event("e-1"))
        .expect("json")
        .len();
    // Room for two events and their newlines, not three.
    let sender = EventSender::new(EventConfig {
        max_batches_in_flight: 1,
        max_batch_bytes: 3 * (event_bytes + 1) - 1,
        ..EventConfig::default()
    });
    for delivery in send_behind_a_held_batch(&sender, &recorder, addr, 5).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.batch_sizes(), [1, 2, 2, 1]);
}

#[tokio::test]
async fn an_event_the_recorder_refuses_fails_alone() {
    let recorder = CountingRecorder::new();
    recorder.offer_batches(None);
    recorder.reject_in_batches("e-3");
    let addr = recorder.listen().await;
    let sender = one_batch_at_a_time();
    let results = send_behind_a_held_batch(&sender, &recorder, addr, 5).await;
    assert_eq!(recorder.batch_sizes(), [1, 5]);
    for (i, delivery) in results.into_iter().enumerate() {
        if i == 3 {
            let error = delivery.expect_err("refused");
            assert_eq!(error.attempts.len(), 1);
            assert!(
                error.attempts[0].1.contains("told to refuse e-3"),
                "{error}"
            );
        } else {
            assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
        }
    }
    assert_eq!(recorder.received().len(), 5);
}

#[tokio::test]
async fn a_recorder_that_dies_before_answering_a_batch_fails_every_event_of_it() {
    let dying = CountingRecorder::new();
    dying.offer_batches(None);
    dying.die_after_storing_batches();
    let dying_addr = dying.listen().await;
    let sender = one_batch_at_a_time();
    let results = send_behind_a_held_batch(&sender, &dying, dying_addr, 4).await;
    // Stored, but never acknowledged: not one of the five senders may take its event as stored
    // (fail closed refuses each request).
    assert_eq!(dying.received().len(), 5);
    for delivery in results {
        let error = delivery.expect_err("unacknowledged");
        assert_eq!(error.attempts[0].0, dying_addr);
    }

    // With a second recorder, each event goes on to it (as a failed one-event POST does).
    let next = CountingRecorder::new();
    let next_addr = next.listen().await;
    for i in 0..3 {
        let delivery = sender
            .send(&[dying_addr, next_addr], &request_event(&format!("n-{i}")))
            .await;
        assert_eq!(
            delivery,
            Ok(EventDelivery::Stored {
                recorder: next_addr
            })
        );
    }
    assert_eq!(next.posts(), 3);
}

#[tokio::test]
async fn a_recorder_without_the_batch_endpoint_gets_one_post_per_event() {
    let recorder = CountingRecorder::new();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig::default());
    // The first event learns (404 to HEAD /v2/events) that batches are not offered.
    sender
        .send(&[addr], &request_event("first"))
        .await
        .expect("sent");
    assert_eq!(recorder.batch_probes(), 1);
    for delivery in send_concurrently(&sender, addr, 16).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    // One POST /v2/event per event, no batch, and the probe's answer was reused.
    assert_eq!(recorder.posts(), 17);
    assert!(recorder.batch_sizes().is_empty());
    assert_eq!(recorder.batch_probes(), 1);
    assert_eq!(recorder.heads(), 1);
    assert_eq!(recorder.received().len(), 17);
}

#[tokio::test]
async fn with_batches_turned_off_the_batch_endpoint_is_not_used() {
    let recorder = CountingRecorder::new();
    recorder.offer_batches(None);
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig {
        batches: false,
        ..EventConfig::default()
    });
    for delivery in send_concurrently(&sender, addr, 8).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert_eq!(recorder.posts(), 8);
    assert_eq!(recorder.batch_probes(), 0);
}

#[tokio::test]
async fn a_bare_200_to_the_batch_probe_is_no_offer_of_batches() {
    let recorder = CountingRecorder::new();
    recorder.answer_batch_probe_without_offer();
    let addr = recorder.listen().await;
    let sender = EventSender::new(EventConfig::default());
    for delivery in send_concurrently(&sender, addr, 4).await {
        assert_eq!(delivery, Ok(EventDelivery::Stored { recorder: addr }));
    }
    assert!(recorder.batch_sizes().is_empty());
    assert_eq!(recorder.posts(), 4);
}
