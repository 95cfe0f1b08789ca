//! The bounded accept loop: the limit, shutdown and the drain.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tlsedge::accept::{Accepted, BoundedListener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

async fn bounded(max: usize) -> (BoundedListener, watch::Sender<bool>) {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (stop, stopped) = watch::channel(false);
    (BoundedListener::new(socket, max, stopped), stop)
}

async fn connect(listener: &BoundedListener) -> TcpStream {
    TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect")
}

/// Polls `future` exactly once.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx))).await
}

async fn next(listener: &mut BoundedListener) -> Accepted {
    listener.next().await.expect("a connection")
}

#[tokio::test]
async fn hands_out_at_most_n_connections_until_a_slot_is_dropped() {
    let (mut listener, _stop) = bounded(2).await;
    let first_client = connect(&listener).await;
    let second_client = connect(&listener).await;
    let first = next(&mut listener).await;
    let second = next(&mut listener).await;
    assert_eq!(first.peer, first_client.local_addr().expect("addr"));
    assert_eq!(second.peer, second_client.local_addr().expect("addr"));
    assert_eq!(listener.open_connections(), 2);

    // The third client is connected (the system completed its handshake), but both slots are out.
    let third_client = connect(&listener).await;
    let third = {
        let mut third = pin!(listener.next());
        assert!(
            poll_once(&mut third).await.is_pending(),
            "a third connection was handed out while two slots were held"
        );
        drop(second);
        third
            .await
            .expect("the third connection, once a slot is back")
    };
    assert_eq!(third.peer, third_client.local_addr().expect("addr"));
    assert_eq!(listener.open_connections(), 2);
    drop(first);
    assert_eq!(listener.open_connections(), 1);
}

#[tokio::test]
async fn the_slot_of_a_connection_dropped_at_once_is_reused() {
    let (mut listener, _stop) = bounded(1).await;
    for _ in 0..3 {
        let client = connect(&listener).await;
        let accepted = next(&mut listener).await;
        assert_eq!(accepted.peer, client.local_addr().expect("addr"));
    }
    assert_eq!(listener.open_connections(), 0);
}

#[tokio::test]
async fn stops_when_shutdown_is_sent_while_waiting_for_a_connection() {
    let (mut listener, stop) = bounded(4).await;
    let (waiting_tx, waiting_rx) = tokio::sync::oneshot::channel();
    let acceptor = tokio::spawn(async move {
        let _ = waiting_tx.send(());
        let mut served = 0;
        while let Some(accepted) = listener.next().await {
            served += 1;
            drop(accepted);
        }
        (served, listener)
    });
    waiting_rx.await.expect("the acceptor started");
    stop.send_replace(true);
    let (served, mut listener) = acceptor.await.expect("the acceptor ended");
    assert_eq!(served, 0);
    assert!(listener.next().await.is_none(), "stays stopped");
}

#[tokio::test]
async fn stops_when_shutdown_is_sent_while_waiting_for_a_slot() {
    let (mut listener, stop) = bounded(1).await;
    let _client = connect(&listener).await;
    let held = next(&mut listener).await;
    let mut waiting = pin!(listener.next());
    assert!(poll_once(&mut waiting).await.is_pending());
    stop.send_replace(true);
    assert!(waiting.await.is_none());
    drop(held);
}

#[tokio::test]
async fn stops_when_the_sender_is_dropped() {
    let (mut listener, stop) = bounded(1).await;
    drop(stop);
    assert!(listener.next().await.is_none());
}

#[tokio::test]
async fn shutdown_wins_over_a_waiting_connection() {
    let (mut listener, stop) = bounded(4).await;
    let _client = connect(&listener).await;
    stop.send_replace(true);
    assert!(listener.next().await.is_none());
}

#[tokio::test]
async fn close_stops_listening() {
    let (mut listener, stop) = bounded(4).await;
    let addr = listener.local_addr().expect("addr");
    stop.send_replace(true);
    assert!(listener.next().await.is_none());
    let draining = listener.close();
    assert_eq!(draining.open_connections(), 0);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the socket is closed"
    );
    assert!(draining.wait(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn the_drain_ends_when_every_connection_has_ended() {
    let (mut listener, stop) = bounded(3).await;
    let _clients = [connect(&listener).await, connect(&listener).await];
    let first = next(&mut listener).await;
    let second = next(&mut listener).await;
    stop.send_replace(true);
    assert!(listener.next().await.is_none());
    let draining = listener.close();
    assert_eq!(draining.open_connections(), 2);

    let mut wait = pin!(draining.wait(Duration::from_secs(30)));
    assert!(poll_once(&mut wait).await.is_pending());
    drop(first);
    assert!(
        poll_once(&mut wait).await.is_pending(),
        "one connection is still open"
    );
    drop(second);
    assert!(wait.await, "all connections ended within the grace period");
}

#[tokio::test(start_paused = true)]
async fn the_drain_gives_up_after_the_grace_period_with_a_connection_held() {
    let (mut listener, stop) = bounded(2).await;
    let _client = connect(&listener).await;
    let held = next(&mut listener).await;
    stop.send_replace(true);
    let draining = listener.close();
    assert!(!draining.wait(Duration::from_secs(30)).await);
    drop(held);
}

#[tokio::test]
async fn a_limit_of_zero_allows_one_connection() {
    let (mut listener, _stop) = bounded(0).await;
    assert_eq!(listener.max_connections(), 1);
    let _client = connect(&listener).await;
    let _held = next(&mut listener).await;
    assert_eq!(listener.open_connections(), 1);
}
