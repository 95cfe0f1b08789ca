//! Remote command over WebSocket: channels.
//!
//! client-go (`tools/remotecommand/websocket.go`) and the API server / kubelet
//! (`pkg/kubelet/cri/streaming/remotecommand/websocket.go`, apimachinery `wsstream`) number the
//! channels 0 stdin, 1 stdout, 2 stderr, 3 error and 4 resize; `wsframe` does the framing,
//! unmasking, base64 and the v5 close signal.

use wsframe::{
    ChannelEvent, ChannelProtocol, ChannelStream, Limits, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};

use crate::error::TapError;
use crate::event::{Direction, OutputStream, SessionEvent};
use crate::tap::{Shared, TapLimits};

/// The WebSocket observers of both directions.
#[derive(Debug)]
pub(crate) struct WebSocketTap {
    client: ChannelStream,
    server: ChannelStream,
    /// Whether the message now open in each direction carries ignored data (counted once).
    client_ignoring: bool,
    server_ignoring: bool,
}

impl WebSocketTap {
    pub(crate) fn new(protocol: ChannelProtocol, limits: &TapLimits) -> Self {
        let limits = Limits {
            max_payload: limits.max_websocket_frame,
        };
        WebSocketTap {
            client: ChannelStream::new(protocol, limits),
            server: ChannelStream::new(protocol, limits),
            client_ignoring: false,
            server_ignoring: false,
        }
    }

    pub(crate) fn client_bytes(
        &mut self,
        chunk: &[u8],
        shared: &mut Shared,
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        let ignoring = &mut self.client_ignoring;
        let mut failure = None;
        let fed = self.client.feed(chunk, &mut |event| {
            if failure.is_some() {
                return;
            }
            let result = match event {
                ChannelEvent::Data {
                    channel: STDIN,
                    bytes,
                } => {
                    shared.input(bytes, sink);
                    Ok(())
                }
                ChannelEvent::Data {
                    channel: RESIZE,
                    bytes,
                } => shared.resize(bytes, sink),
                ChannelEvent::Data { bytes, .. } => {
                    ignore(shared, ignoring, bytes.len());
                    Ok(())
                }
                ChannelEvent::MessageEnd { .. } => {
                    *ignoring = false;
                    Ok(())
                }
                ChannelEvent::ChannelClosed { .. }
                | ChannelEvent::Ping
                | ChannelEvent::Pong
                | ChannelEvent::Close { .. } => Ok(()),
                // A kind of event this tap does not know could carry input it would miss.
                _ => Err(TapError::UnknownChannelEvent {
                    direction: Direction::ClientToServer,
                }),
            };
            failure = result.err();
        });
        finish_feed(fed, failure, Direction::ClientToServer)
    }

    pub(crate) fn server_bytes(
        &mut self,
        chunk: &[u8],
        shared: &mut Shared,
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        let ignoring = &mut self.server_ignoring;
        let mut failure = None;
        let fed = self.server.feed(chunk, &mut |event| {
            if failure.is_some() {
                return;
            }
            let result = match event {
                ChannelEvent::Data {
                    channel: STDOUT,
                    bytes,
                } => {
                    shared.output(OutputStream::Stdout, bytes, sink);
                    Ok(())
                }
                ChannelEvent::Data {
                    channel: STDERR,
                    bytes,
                } => {
                    shared.output(OutputStream::Stderr, bytes, sink);
                    Ok(())
                }
                ChannelEvent::Data {
                    channel: ERROR,
                    bytes,
                } => shared.error_bytes(bytes, sink),
                ChannelEvent::Data { bytes, .. } => {
                    ignore(shared, ignoring, bytes.len());
                    Ok(())
                }
                ChannelEvent::MessageEnd { channel } => {
                    *ignoring = false;
                    if channel == ERROR {
                        shared.error_message_end(sink);
                    }
                    Ok(())
                }
                ChannelEvent::ChannelClosed { channel: ERROR } => {
                    shared.error_end(sink);
                    Ok(())
                }
                // client-go's readDemuxLoop ends every stream with EOF on a normal closure (an
                // empty error stream is then a success) and with an error otherwise.
                ChannelEvent::Close { code, reason } => {
                    match code {
                        None | Some(1000) => shared.error_end(sink),
                        Some(code) => shared.error_abort(
                            format!("connection closed with status {code}: {reason}"),
                            sink,
                        ),
                    }
                    Ok(())
                }
                ChannelEvent::ChannelClosed { .. } | ChannelEvent::Ping | ChannelEvent::Pong => {
                    Ok(())
                }
                // A kind of event this tap does not know could carry output it would miss.
                _ => Err(TapError::UnknownChannelEvent {
                    direction: Direction::ServerToClient,
                }),
            };
            failure = result.err();
        });
        finish_feed(fed, failure, Direction::ServerToClient)
    }
}

/// Counts ignored channel data: the message once, its bytes as they come.
fn ignore(shared: &mut Shared, ignoring: &mut bool, len: usize) {
    if *ignoring {
        shared.ignore(len);
    } else {
        *ignoring = true;
        shared.ignore_frame(len);
    }
}

/// The tap's own error first (it happened before anything the framing found later).
fn finish_feed(
    fed: Result<(), wsframe::StreamError>,
    failure: Option<TapError>,
    direction: Direction,
) -> Result<(), TapError> {
    if let Some(error) = failure {
        return Err(error);
    }
    fed.map_err(|source| TapError::WebSocket { direction, source })
}
