//! The forwarded connections of a session: streams paired by request id, as the kubelet pairs
//! them, with their byte counts and close state.
//!
//! - The client opens each stream with a SYN_STREAM whose headers name its type (`error` or
//!   `data`), the pod's port and a request id ([`super::headers`]); the kubelet pairs the two
//!   streams of a request id and forwards once both exist (`httpStreamPair.add`). A connection
//!   is opened here at the same moment. Each type is bound once per connection.
//! - Data flows both ways on the data stream. The server writes an error as text on the error
//!   stream, which client-go reads to EOF (`io.ReadAll`): the text is reported when the
//!   server's side of the error stream ends. kubectl half-closes its side of the error stream
//!   at once and never writes on it.
//! - A connection closes when both sides have half-closed its data stream or either reset it.
//!   spdystream removes a reset stream on both sides and drops data that arrives for it
//!   afterwards, so such data is not counted (and not an error). Once the server's side of the
//!   error stream has ended too, the connection is forgotten (memory stays bounded by the open
//!   connections); the ids of the last few forgotten streams are remembered so that data still
//!   in flight on a reset stream is recognised.

use std::collections::{BTreeMap, HashMap, VecDeque};

use spdyframe::{HeaderBlock, StreamId};

use super::error::PortForwardStreamError;
use super::event::{CloseReason, ConnectionId, PortForwardEvent};
use super::headers::{StreamHeaders, StreamType};
use super::PortForwardLimits;
use crate::event::Direction;

/// One stream of a connection.
#[derive(Debug, Clone, Copy)]
struct Stream {
    id: StreamId,
    client_fin: bool,
    server_fin: bool,
    reset: bool,
}

impl Stream {
    fn new(id: StreamId) -> Self {
        Stream {
            id,
            client_fin: false,
            server_fin: false,
            reset: false,
        }
    }

    fn fin(&self, direction: Direction) -> bool {
        match direction {
            Direction::ClientToServer => self.client_fin,
            Direction::ServerToClient => self.server_fin,
        }
    }
}

#[derive(Debug)]
struct Record {
    request_id: String,
    error: Option<Stream>,
    data: Option<Stream>,
    /// The data stream's port.
    port: u16,
    opened: bool,
    closed: bool,
    client_to_server: u64,
    server_to_client: u64,
    error_text: Vec<u8>,
    /// The server's side of the error stream has ended (FIN or reset).
    error_ended: bool,
}

impl Record {
    fn stream_mut(&mut self, stream_type: StreamType) -> Option<&mut Stream> {
        match stream_type {
            StreamType::Error => self.error.as_mut(),
            StreamType::Data => self.data.as_mut(),
        }
    }

    fn data_done(&self) -> bool {
        self.data
            .is_some_and(|s| s.reset || (s.client_fin && s.server_fin))
    }

    /// Nothing more can happen on it that the tap would report.
    fn done(&self) -> bool {
        let error_done = self.error.is_none() || self.error_ended;
        let data_done = self.data.is_none() || self.data_done();
        error_done && data_done && (!self.opened || self.closed)
    }
}

/// Counters the tap exposes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) opened: u64,
    pub(crate) client_to_server: u64,
    pub(crate) server_to_client: u64,
    pub(crate) ignored_frames: u64,
    pub(crate) ignored_bytes: u64,
    pub(crate) held_error_bytes: usize,
}

/// Every connection the session has now.
#[derive(Debug)]
pub(crate) struct Connections {
    records: BTreeMap<ConnectionId, Record>,
    by_request: HashMap<String, ConnectionId>,
    by_stream: HashMap<StreamId, (ConnectionId, StreamType)>,
    /// Streams of forgotten connections, oldest first, and whether each was reset.
    retired: VecDeque<(StreamId, bool)>,
    max_retired: usize,
    next: u64,
    limits: PortForwardLimits,
    capture: bool,
    pub(crate) counters: Counters,
}

type Sink<'s> = &'s mut dyn FnMut(PortForwardEvent);

impl Connections {
    pub(crate) fn new(limits: PortForwardLimits) -> Self {
        Connections {
            records: BTreeMap::new(),
            by_request: HashMap::new(),
            by_stream: HashMap::new(),
            retired: VecDeque::new(),
            max_retired: limits.max_connections.saturating_mul(2).clamp(16, 1 << 16),
            next: 0,
            limits,
            capture: false,
            counters: Counters::default(),
        }
    }

    pub(crate) fn set_capture(&mut self, capture: bool) {
        self.capture = capture;
    }

    /// Connections held (opened or waiting for their second stream, and ended ones whose
    /// error stream is still open).
    pub(crate) fn tracked(&self) -> usize {
        self.records.len()
    }

    /// A client SYN_STREAM.
    pub(crate) fn open_stream(
        &mut self,
        stream_id: StreamId,
        headers: &HeaderBlock,
        sink: Sink<'_>,
    ) -> Result<(), PortForwardStreamError> {
        if self.by_stream.contains_key(&stream_id) {
            return Err(PortForwardStreamError::StreamReopened { stream_id });
        }
        let StreamHeaders {
            stream_type,
            port,
            request_id,
        } = StreamHeaders::read(stream_id, headers, self.limits.max_request_id)?;
        let connection = match self.by_request.get(&request_id) {
            Some(&connection) => connection,
            None => {
                if self.records.len() >= self.limits.max_connections {
                    return Err(PortForwardStreamError::TooManyConnections {
                        max: self.limits.max_connections,
                    });
                }
                let connection = ConnectionId(self.next);
                self.next += 1;
                self.records.insert(
                    connection,
                    Record {
                        request_id: request_id.clone(),
                        error: None,
                        data: None,
                        port: 0,
                        opened: false,
                        closed: false,
                        client_to_server: 0,
                        server_to_client: 0,
                        error_text: Vec::new(),
                        error_ended: false,
                    },
                );
                self.by_request.insert(request_id, connection);
                connection
            }
        };
        let Some(record) = self.records.get_mut(&connection) else {
            return Ok(());
        };
        let slot = match stream_type {
            StreamType::Error => &mut record.error,
            StreamType::Data => &mut record.data,
        };
        if let Some(first) = slot {
            return Err(PortForwardStreamError::DuplicateStream {
                request_id: record.request_id.clone(),
                stream_type: stream_type.name(),
                first: first.id,
                second: stream_id,
            });
        }
        *slot = Some(Stream::new(stream_id));
        if stream_type == StreamType::Data {
            record.port = port;
        }
        self.by_stream.insert(stream_id, (connection, stream_type));
        if let (Some(error), Some(data)) = (record.error, record.data) {
            record.opened = true;
            self.counters.opened += 1;
            sink(PortForwardEvent::ConnectionOpened {
                connection,
                request_id: record.request_id.clone(),
                port: record.port,
                error_stream: error.id,
                data_stream: data.id,
            });
        }
        Ok(())
    }

    /// A piece of a data frame.
    pub(crate) fn data(
        &mut self,
        direction: Direction,
        stream_id: StreamId,
        bytes: &[u8],
        frame_start: bool,
        sink: Sink<'_>,
    ) -> Result<(), PortForwardStreamError> {
        let unattributed = || PortForwardStreamError::UnattributedData {
            direction,
            stream_id,
            len: bytes.len(),
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(&(connection, stream_type)) = self.by_stream.get(&stream_id) else {
            let reset = self
                .retired
                .iter()
                .rev()
                .find(|(id, _)| *id == stream_id)
                .is_some_and(|(_, reset)| *reset);
            if reset {
                self.ignore(bytes.len(), frame_start);
                return Ok(());
            }
            return Err(unattributed());
        };
        let Some(record) = self.records.get_mut(&connection) else {
            return Err(unattributed());
        };
        let Some(stream) = record.stream_mut(stream_type).copied() else {
            return Err(unattributed());
        };
        if stream.reset {
            self.ignore(bytes.len(), frame_start);
            return Ok(());
        }
        if stream.fin(direction) {
            return Err(unattributed());
        }
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        match (stream_type, direction) {
            (StreamType::Data, _) if !record.opened => return Err(unattributed()),
            (StreamType::Data, Direction::ClientToServer) => {
                record.client_to_server = record.client_to_server.saturating_add(len);
                self.counters.client_to_server = self.counters.client_to_server.saturating_add(len);
            }
            (StreamType::Data, Direction::ServerToClient) => {
                record.server_to_client = record.server_to_client.saturating_add(len);
                self.counters.server_to_client = self.counters.server_to_client.saturating_add(len);
            }
            (StreamType::Error, Direction::ClientToServer) => return Err(unattributed()),
            (StreamType::Error, Direction::ServerToClient) => {
                let max = self.limits.max_error_text;
                if record.error_text.len().saturating_add(bytes.len()) > max {
                    return Err(PortForwardStreamError::ErrorTextTooLong { connection, max });
                }
                record.error_text.extend_from_slice(bytes);
                self.counters.held_error_bytes += bytes.len();
                return Ok(());
            }
        }
        sink(PortForwardEvent::Data {
            connection,
            direction,
            len,
            bytes: self.capture.then(|| bytes.to_vec()),
        });
        Ok(())
    }

    /// `direction` half-closed `stream_id` (a FIN on a data frame, SYN_STREAM, SYN_REPLY or
    /// HEADERS).
    pub(crate) fn fin(&mut self, direction: Direction, stream_id: StreamId, sink: Sink<'_>) {
        let Some(&(connection, stream_type)) = self.by_stream.get(&stream_id) else {
            return;
        };
        let Some(stream) = self
            .records
            .get_mut(&connection)
            .and_then(|record| record.stream_mut(stream_type))
        else {
            return;
        };
        match direction {
            Direction::ClientToServer => stream.client_fin = true,
            Direction::ServerToClient => stream.server_fin = true,
        }
        self.settle(connection, CloseReason::Finished, sink);
    }

    /// `direction` reset `stream_id`.
    pub(crate) fn reset(
        &mut self,
        direction: Direction,
        stream_id: StreamId,
        status: u32,
        sink: Sink<'_>,
    ) {
        let Some(&(connection, stream_type)) = self.by_stream.get(&stream_id) else {
            return;
        };
        let Some(stream) = self
            .records
            .get_mut(&connection)
            .and_then(|record| record.stream_mut(stream_type))
        else {
            return;
        };
        stream.reset = true;
        let reason = CloseReason::Reset {
            by: direction,
            status,
        };
        self.settle(connection, reason, sink);
    }

    /// After a change of a connection's streams: reports the error text once the error stream
    /// has ended, the close once the data stream has, and forgets the connection when nothing
    /// more can happen on it.
    fn settle(&mut self, connection: ConnectionId, reason: CloseReason, sink: Sink<'_>) {
        let Some(record) = self.records.get_mut(&connection) else {
            return;
        };
        if !record.error_ended && record.error.is_some_and(|s| s.server_fin || s.reset) {
            record.error_ended = true;
            self.counters.held_error_bytes = self
                .counters
                .held_error_bytes
                .saturating_sub(record.error_text.len());
            report_error(connection, record, sink);
        }
        if record.opened && !record.closed && record.data_done() {
            record.closed = true;
            report_close(connection, record, reason, sink);
        }
        if record.done() {
            self.forget(connection);
        }
    }

    fn forget(&mut self, connection: ConnectionId) {
        let Some(record) = self.records.remove(&connection) else {
            return;
        };
        self.counters.held_error_bytes = self
            .counters
            .held_error_bytes
            .saturating_sub(record.error_text.len());
        if self.by_request.get(&record.request_id) == Some(&connection) {
            self.by_request.remove(&record.request_id);
        }
        for stream in [record.error, record.data].into_iter().flatten() {
            self.by_stream.remove(&stream.id);
            if self.retired.len() >= self.max_retired {
                self.retired.pop_front();
            }
            self.retired.push_back((stream.id, stream.reset));
        }
    }

    fn ignore(&mut self, len: usize, frame_start: bool) {
        if frame_start {
            self.counters.ignored_frames += 1;
        }
        self.counters.ignored_bytes = self
            .counters
            .ignored_bytes
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
    }

    /// The session ended: error texts still held, the connections still open, then the end.
    pub(crate) fn finish(&mut self, sink: Sink<'_>) {
        for (&connection, record) in &mut self.records {
            if !record.error_ended {
                record.error_ended = true;
                report_error(connection, record, sink);
            }
            if record.opened && !record.closed {
                record.closed = true;
                report_close(connection, record, CloseReason::SessionEnded, sink);
            }
        }
        self.records.clear();
        self.by_request.clear();
        self.by_stream.clear();
        self.counters.held_error_bytes = 0;
        sink(PortForwardEvent::SessionEnded {
            connections: self.counters.opened,
            client_to_server: self.counters.client_to_server,
            server_to_client: self.counters.server_to_client,
        });
    }
}

fn report_error(connection: ConnectionId, record: &mut Record, sink: Sink<'_>) {
    if record.error_text.is_empty() {
        return;
    }
    let text = std::mem::take(&mut record.error_text);
    sink(PortForwardEvent::Error {
        connection,
        request_id: record.request_id.clone(),
        message: String::from_utf8_lossy(&text).into_owned(),
    });
}

fn report_close(connection: ConnectionId, record: &Record, reason: CloseReason, sink: Sink<'_>) {
    sink(PortForwardEvent::ConnectionClosed {
        connection,
        request_id: record.request_id.clone(),
        client_to_server: record.client_to_server,
        server_to_client: record.server_to_client,
        reason,
    });
}
