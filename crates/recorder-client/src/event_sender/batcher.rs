//! Client-side group commit for recorders that offer `POST /v2/events` (our extension,
//! protocols section 5): the events of concurrent requests to one recorder travel together, as
//! one request, and the recorder stores them with one write and one sync.
//!
//! Each recorder address has a queue and a task that drains it. At most
//! [`EventConfig::max_batches_in_flight`] batches are out at once; events that arrive while they
//! are all out wait in the queue and leave together as the next batch when one comes back. At low
//! load a batch is one event and leaves at once, so batching never delays an event behind a
//! timer; at high load batches grow and the recorder's syncs are shared by more events. Every
//! caller still waits for its own event's answer: stored (durable) or the reason it is not. An
//! event whose sender gave up (its time limit) before the event left is not sent; one that left
//! may still be stored, as a `POST /v2/event` whose answer never came may be.
//!
//! Bounds: a batch holds at most `max_batch_events` events and `max_batch_bytes` bytes (less when
//! the recorder's probe answer says so; one event larger than that goes alone), the queue holds
//! [`EventConfig::max_queued_events`] (senders wait for room, within their own time limit), and a
//! batch's exchange is bounded by [`EventConfig::request_timeout`].
//!
//! [`EventConfig::max_batches_in_flight`]: super::EventConfig::max_batches_in_flight
//! [`EventConfig::max_queued_events`]: super::EventConfig::max_queued_events
//! [`EventConfig::request_timeout`]: super::EventConfig::request_timeout

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::timeout;

use super::batch_post::{post_batch, BatchLimits};
use super::connection_pool::ConnectionPool;
use crate::error::AttemptError;

/// How long an address's task waits for an event before it ends (a new one starts with the next
/// event), so that tasks do not pile up for addresses no longer used.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What one event waiting for a batch carries.
struct Queued {
    json: Bytes,
    limits: BatchLimits,
    done: oneshot::Sender<Result<(), String>>,
}

/// How batches are sent, the same for every address.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchSettings {
    pub(super) max_in_flight: usize,
    pub(super) max_queued: usize,
    pub(super) request_timeout: Duration,
}

type Queues = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Queued>>>>;

/// The queues of every recorder address that takes batches.
pub(super) struct Batchers {
    pool: Arc<ConnectionPool>,
    settings: BatchSettings,
    queues: Queues,
}

impl Batchers {
    pub(super) fn new(pool: Arc<ConnectionPool>, settings: BatchSettings) -> Self {
        Batchers {
            pool,
            settings,
            queues: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Queues `json` for the next batch to `addr` and waits until the recorder has stored it
    /// (answered 200 without rejecting it), or the batch failed.
    pub(super) async fn submit(
        &self,
        addr: SocketAddr,
        limits: BatchLimits,
        json: Bytes,
    ) -> Result<(), AttemptError> {
        let (done, answer) = oneshot::channel();
        let mut queued = Queued { json, limits, done };
        loop {
            let queue = self.queue(addr);
            match queue.send(queued).await {
                Ok(()) => break,
                // The address's task ended as idle just now; start another.
                Err(mpsc::error::SendError(back)) => {
                    queued = back;
                    forget_queue(&self.queues, addr, &queue);
                }
            }
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(AttemptError::EventBatch(reason)),
            Err(_) => Err(AttemptError::EventBatch(
                "the event batch was dropped unsent".into(),
            )),
        }
    }

    /// The queue of `addr`, its task started if there is none.
    fn queue(&self, addr: SocketAddr) -> mpsc::Sender<Queued> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = queues.get(&addr) {
            if !queue.is_closed() {
                return queue.clone();
            }
        }
        let (queue, events) = mpsc::channel(self.settings.max_queued.max(1));
        queues.insert(addr, queue.clone());
        tokio::spawn(drain(
            addr,
            queue.downgrade(),
            events,
            Arc::clone(&self.pool),
            self.settings,
            Arc::clone(&self.queues),
        ));
        queue
    }
}

impl Drop for Batchers {
    fn drop(&mut self) {
        // The tasks end once their queues are empty and closed: events already queued are sent.
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Removes `addr`'s queue if it is still `queue` (not one started since).
fn forget_queue(queues: &Queues, addr: SocketAddr, queue: &mpsc::Sender<Queued>) {
    let mut queues = queues.lock().unwrap_or_else(PoisonError::into_inner);
    if queues.get(&addr).is_some_and(|q| q.same_channel(queue)) {
        queues.remove(&addr);
    }
}

/// The task of one address: takes the waiting events as a batch whenever a batch may go out.
/// `mine` names its queue in the map without keeping the queue open.
async fn drain(
    addr: SocketAddr,
    mine: mpsc::WeakSender<Queued>,
    mut events: mpsc::Receiver<Queued>,
    pool: Arc<ConnectionPool>,
    settings: BatchSettings,
    queues: Queues,
) {
    let in_flight = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    // An event taken from the queue that did not fit in the last batch: the first of the next.
    let mut carried: Option<Queued> = None;
    loop {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match timeout(IDLE_TIMEOUT, events.recv()).await {
                Ok(Some(first)) => first,
                // Closed and drained: every handle is gone.
                Ok(None) => return,
                Err(_) => {
                    // Idle: no new sender finds this queue from now on; what is already in it is
                    // still sent, and a sender that finds it closed starts a new task.
                    remove_if_mine(&queues, addr, &mine);
                    events.close();
                    continue;
                }
            },
        };
        let limits = first.limits;
        let mut batch = Batch::default();
        batch.push(first);
        while batch.events.len() < limits.max_events {
            match events.try_recv() {
                Ok(next) if next.done.is_closed() => {} // its sender gave up: not sent
                Ok(next) => {
                    if batch.bytes + next.json.len() + 1 > limits.max_bytes {
                        carried = Some(next);
                        break;
                    }
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        if batch.events.iter().all(|q| q.done.is_closed()) {
            continue;
        }
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            let result = timeout(
                settings.request_timeout,
                post_batch(&pool, addr, batch.body(), batch.events.len()),
            )
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer to the event batch within {:?}",
                    settings.request_timeout
                ))
            });
            batch.answer(result);
            drop(permit);
        });
    }
}

/// Removes `addr`'s queue from the map if it is still this task's (`mine`).
fn remove_if_mine(queues: &Queues, addr: SocketAddr, mine: &mpsc::WeakSender<Queued>) {
    let mut queues = queues.lock().unwrap_or_else(PoisonError::into_inner);
    let is_mine = match (queues.get(&addr), mine.upgrade()) {
        (Some(queue), Some(mine)) => queue.same_channel(&mine),
        _ => false,
    };
    if is_mine {
        queues.remove(&addr);
    }
}

/// Events taken from the queue to go out together.
#[derive(Default)]
struct Batch {
    events: Vec<Queued>,
    /// The body's size: each event and its newline.
    bytes: usize,
}

impl Batch {
    fn push(&mut self, queued: Queued) {
        self.bytes += queued.json.len() + 1;
        self.events.push(queued);
    }

    /// NDJSON: each event on its own line. An event's JSON from `serde_json` has no line breaks;
    /// one given already serialised might, and between JSON tokens they are only whitespace.
    fn body(&self) -> Bytes {
        let mut body = Vec::with_capacity(self.bytes);
        for queued in &self.events {
            let start = body.len();
            body.extend_from_slice(&queued.json);
            for byte in &mut body[start..] {
                if *byte == b'\n' || *byte == b'\r' {
                    *byte = b' ';
                }
            }
            body.push(b'\n');
        }
        Bytes::from(body)
    }

    /// Tells every waiting sender what became of its event: `result` is the recorder's answer
    /// per event, in order, or why the whole batch failed.
    fn answer(self, result: Result<Vec<Result<(), String>>, String>) {
        match result {
            Ok(outcomes) => {
                for (queued, outcome) in self.events.into_iter().zip(outcomes) {
                    let _ = queued.done.send(outcome);
                }
            }
            Err(reason) => {
                for queued in self.events {
                    let _ = queued.done.send(Err(reason.clone()));
                }
            }
        }
    }
}
