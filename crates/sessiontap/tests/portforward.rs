//! `sessiontap::portforward::PortForwardTap` over both transports: scripted kubectl sessions
//! (`sessiontap::script::portforward`) split every way, the tunnel's message shapes, errors on
//! the error stream, resets, and every case the tap must refuse.

use proptest::prelude::*;
use sessiontap::portforward::{
    coalesce, CloseReason, ConnectionId, PortForwardError, PortForwardEvent, PortForwardLimits,
    PortForwardStreamError, PortForwardTap, PortForwardTransport,
};
use sessiontap::script::portforward::{
    PortForwardScript, PortForwardStep, PortForwardWire, TunnelOptions,
};
use sessiontap::spdyframe::{
    encode_control, encode_data, ControlFrame, HeaderBlock, HeaderDeflater, StreamId, FLAG_FIN,
};
use sessiontap::wsframe::{self, encode_frame, FrameHeader, Opcode};
use sessiontap::Direction::{self, ClientToServer, ServerToClient};

use PortForwardStep::*;

const BOTH: [PortForwardTransport; 2] = [
    PortForwardTransport::Spdy,
    PortForwardTransport::WebSocketTunnel,
];

fn encode(script: &PortForwardScript, transport: PortForwardTransport) -> PortForwardWire {
    match transport {
        PortForwardTransport::Spdy => script.encode_spdy(),
        _ => script.encode_tunnel(&TunnelOptions::default()),
    }
}

/// Feeds the segments in order, each cut by `cut`, then finishes.
fn run_with(
    tap: &mut PortForwardTap,
    wire: &PortForwardWire,
    cut: &mut dyn FnMut(&[u8]) -> Vec<Vec<u8>>,
) -> Result<Vec<PortForwardEvent>, PortForwardError> {
    let mut events = Vec::new();
    for segment in &wire.segments {
        for piece in cut(&segment.bytes) {
            tap.feed(segment.direction, &piece, &mut |e| events.push(e))?;
        }
    }
    tap.finish(&mut |e| events.push(e));
    Ok(events)
}

fn run(
    transport: PortForwardTransport,
    wire: &PortForwardWire,
) -> Result<Vec<PortForwardEvent>, PortForwardError> {
    let mut tap = PortForwardTap::new(transport, PortForwardLimits::default());
    run_with(&mut tap, wire, &mut |bytes| vec![bytes.to_vec()])
}

fn opened(connection: u64, port: u16, error: u32, data: u32) -> PortForwardEvent {
    PortForwardEvent::ConnectionOpened {
        connection: ConnectionId(connection),
        request_id: connection.to_string(),
        port,
        error_stream: StreamId::new(error).expect("id"),
        data_stream: StreamId::new(data).expect("id"),
    }
}

fn data(connection: u64, direction: Direction, len: u64) -> PortForwardEvent {
    PortForwardEvent::Data {
        connection: ConnectionId(connection),
        direction,
        len,
        bytes: None,
    }
}

fn closed(connection: u64, up: u64, down: u64, reason: CloseReason) -> PortForwardEvent {
    PortForwardEvent::ConnectionClosed {
        connection: ConnectionId(connection),
        request_id: connection.to_string(),
        client_to_server: up,
        server_to_client: down,
        reason,
    }
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Two connections whose data interleaves, one larger than a 32 KiB copy buffer.
fn two_connections() -> PortForwardScript {
    PortForwardScript {
        steps: vec![
            Connect { port: 8080 },
            ClientData {
                connection: 0,
                bytes: bytes(100, 1),
            },
            Connect { port: 5432 },
            ClientData {
                connection: 1,
                bytes: bytes(7, 2),
            },
            ServerData {
                connection: 0,
                bytes: bytes(40_000, 3),
            },
            Ping,
            ServerData {
                connection: 1,
                bytes: bytes(3, 4),
            },
            ClientData {
                connection: 0,
                bytes: bytes(1, 5),
            },
            ServerData {
                connection: 0,
                bytes: bytes(250, 6),
            },
            ClientClose { connection: 1 },
            ServerClose { connection: 0 },
            ServerData {
                connection: 1,
                bytes: bytes(11, 7),
            },
            ClientReset { connection: 0 },
            ServerClose { connection: 1 },
        ],
    }
}

fn two_connections_events() -> Vec<PortForwardEvent> {
    vec![
        opened(0, 8080, 1, 3),
        data(0, ClientToServer, 100),
        opened(1, 5432, 5, 7),
        data(1, ClientToServer, 7),
        data(0, ServerToClient, 40_000),
        data(1, ServerToClient, 3),
        data(0, ClientToServer, 1),
        data(0, ServerToClient, 250),
        data(1, ServerToClient, 11),
        closed(
            0,
            101,
            40_250,
            CloseReason::Reset {
                by: ClientToServer,
                status: 5,
            },
        ),
        closed(1, 7, 14, CloseReason::Finished),
        PortForwardEvent::SessionEnded {
            connections: 2,
            client_to_server: 108,
            server_to_client: 40_264,
        },
    ]
}

#[test]
fn two_interleaved_connections_with_exact_counts() {
    let script = two_connections();
    assert_eq!(script.expected_events(), two_connections_events());
    for transport in BOTH {
        let events = run(transport, &encode(&script, transport)).expect("a kubectl session");
        assert_eq!(coalesce(events), two_connections_events(), "{transport:?}");
    }
}

/// The WebSocket messages of one direction of the tunnel: (opcode of the first frame, payload
/// length), control frames listed on their own.
fn messages(stream: &[u8]) -> Vec<(Opcode, usize)> {
    let mut parser = wsframe::FrameParser::new(wsframe::Limits::default());
    let mut input = stream;
    let mut messages: Vec<(Opcode, usize)> = Vec::new();
    let mut open = false;
    while let Some(event) = parser.next_event(&mut input).expect("valid framing") {
        match event {
            wsframe::Event::FrameStart(header) if header.opcode.is_control() => {
                messages.push((header.opcode, header.payload_len as usize));
            }
            wsframe::Event::FrameStart(header) => {
                if header.opcode == Opcode::Continuation {
                    let last = messages
                        .iter_mut()
                        .rev()
                        .find(|(op, _)| !op.is_control())
                        .expect("a message");
                    last.1 += header.payload_len as usize;
                } else {
                    assert!(!open);
                    messages.push((header.opcode, header.payload_len as usize));
                }
                open = !header.fin;
            }
            _ => {}
        }
    }
    messages
}

#[test]
fn tunnel_client_messages_are_kubectls_framer_writes() {
    let script = PortForwardScript {
        steps: vec![
            Connect { port: 80 },
            ClientData {
                connection: 0,
                bytes: b"ping".to_vec(),
            },
            ClientClose { connection: 0 },
        ],
    };
    let wire = script.encode_tunnel(&TunnelOptions::default());
    let client = messages(&wire.bytes(ClientToServer));
    let sizes: Vec<usize> = client.iter().map(|(_, len)| *len).collect();
    assert!(client[..client.len() - 1]
        .iter()
        .all(|(op, _)| *op == Opcode::Binary));
    // error SYN_STREAM, the error stream's empty FIN, data SYN_STREAM, the data, the data FIN.
    assert_eq!(&sizes[..7], &[2, 2, 4, 4, 4, 1, 1]);
    assert_eq!(&sizes[8..11], &[4, 4, 0], "an empty FIN is 4, 4, 0");
    assert_eq!(&sizes[11..18], &[2, 2, 4, 4, 4, 1, 1]);
    assert_eq!(&sizes[19..], &[4, 4, 4, 4, 4, 0, 2], "data, FIN, close");
    assert_eq!(client.last().map(|m| m.0), Some(Opcode::Close));

    let events = run(PortForwardTransport::WebSocketTunnel, &wire).expect("a kubectl session");
    assert_eq!(coalesce(events), script.expected_events());
}

#[test]
fn tunnel_with_fragmented_server_messages_and_pings() {
    let script = two_connections();
    for (message, fragment) in [
        (1, None),
        (7, Some(3)),
        (32 * 1024, Some(1000)),
        (5, Some(1)),
    ] {
        let options = TunnelOptions {
            server_message_size: message,
            server_fragment_size: fragment,
            pings: true,
            mask_seed: 99,
        };
        let wire = script.encode_tunnel(&options);
        let server = messages(&wire.bytes(ServerToClient));
        assert!(server.iter().any(|(op, _)| *op == Opcode::Ping));
        let events = run(PortForwardTransport::WebSocketTunnel, &wire).expect("a kubectl session");
        assert_eq!(
            coalesce(events),
            two_connections_events(),
            "{message} {fragment:?}"
        );
    }
}

#[test]
fn every_split_point_gives_the_same_events() {
    let script = PortForwardScript {
        steps: vec![
            Connect { port: 8080 },
            ClientData {
                connection: 0,
                bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            },
            Connect { port: 9090 },
            ServerData {
                connection: 0,
                bytes: b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            },
            ServerError {
                connection: 1,
                message: "error forwarding port 9090: connection refused".into(),
            },
            Ping,
            ClientClose { connection: 0 },
            ServerClose { connection: 1 },
            ServerClose { connection: 0 },
            ClientReset { connection: 1 },
        ],
    };
    let expected = script.expected_events();
    for transport in BOTH {
        let wire = encode(&script, transport);
        let total: usize = wire.segments.iter().map(|s| s.bytes.len()).sum();
        for split in 0..=total {
            let mut at = split;
            let mut cut = |bytes: &[u8]| {
                let pieces = if at < bytes.len() {
                    vec![bytes[..at].to_vec(), bytes[at..].to_vec()]
                } else {
                    vec![bytes.to_vec()]
                };
                at = at.saturating_sub(bytes.len());
                pieces
            };
            let mut tap = PortForwardTap::new(transport, PortForwardLimits::default());
            let events = run_with(&mut tap, &wire, &mut cut).expect("a kubectl session");
            assert_eq!(coalesce(events), expected, "{transport:?} split at {split}");
        }
    }
}

#[test]
fn an_error_on_the_error_stream() {
    let message = "error forwarding port 80 to pod web, uid 1234: connection refused";
    let script = PortForwardScript {
        steps: vec![
            Connect { port: 80 },
            ClientData {
                connection: 0,
                bytes: b"hello".to_vec(),
            },
            ServerError {
                connection: 0,
                message: message.into(),
            },
            ServerClose { connection: 0 },
            ClientClose { connection: 0 },
        ],
    };
    for transport in BOTH {
        let events = coalesce(run(transport, &encode(&script, transport)).expect("session"));
        assert_eq!(
            events,
            [
                opened(0, 80, 1, 3),
                data(0, ClientToServer, 5),
                PortForwardEvent::Error {
                    connection: ConnectionId(0),
                    request_id: "0".into(),
                    message: message.into(),
                },
                closed(0, 5, 0, CloseReason::Finished),
                PortForwardEvent::SessionEnded {
                    connections: 1,
                    client_to_server: 5,
                    server_to_client: 0
                },
            ]
        );
    }
    // Still held when the session ends: reported by finish.
    let unfinished = PortForwardScript {
        steps: script.steps[..3].to_vec(),
    };
    let events = coalesce(run(PortForwardTransport::Spdy, &unfinished.encode_spdy()).expect("ok"));
    assert_eq!(events, unfinished.expected_events());
    assert!(matches!(&events[2], PortForwardEvent::Error { message: m, .. } if m == message));
    assert!(matches!(
        &events[3],
        PortForwardEvent::ConnectionClosed {
            reason: CloseReason::SessionEnded,
            ..
        }
    ));
}

#[test]
fn a_reset_data_stream_closes_the_connection_and_late_data_is_not_counted() {
    let script = PortForwardScript {
        steps: vec![
            Connect { port: 80 },
            ServerData {
                connection: 0,
                bytes: bytes(10, 1),
            },
            ClientReset { connection: 0 },
            // In flight when kubectl reset the stream: spdystream drops it.
            ServerData {
                connection: 0,
                bytes: bytes(300, 2),
            },
            ServerClose { connection: 0 },
            // The connection is forgotten; more data is still recognised as on a reset stream.
            ServerData {
                connection: 0,
                bytes: bytes(3, 3),
            },
        ],
    };
    for transport in BOTH {
        let mut tap = PortForwardTap::new(transport, PortForwardLimits::default());
        let events = run_with(&mut tap, &encode(&script, transport), &mut |b| {
            vec![b.to_vec()]
        })
        .expect("session");
        assert_eq!(
            coalesce(events),
            [
                opened(0, 80, 1, 3),
                data(0, ServerToClient, 10),
                closed(
                    0,
                    0,
                    10,
                    CloseReason::Reset {
                        by: ClientToServer,
                        status: 5
                    }
                ),
                PortForwardEvent::SessionEnded {
                    connections: 1,
                    client_to_server: 0,
                    server_to_client: 10
                },
            ]
        );
        assert_eq!(tap.stats().ignored_bytes, 300);
    }
}

#[test]
fn payload_capture() {
    let script = two_connections();
    for transport in BOTH {
        let mut tap =
            PortForwardTap::new(transport, PortForwardLimits::default()).with_payload_capture(true);
        let events = run_with(&mut tap, &encode(&script, transport), &mut |b| {
            b.chunks(1000).map(<[u8]>::to_vec).collect()
        })
        .expect("session");
        let events = coalesce(events);
        assert_eq!(events, script.expected_events_with_payload());
        assert!(events.iter().any(|e| matches!(
            e,
            PortForwardEvent::Data { len: 40_000, bytes: Some(b), .. } if *b == bytes(40_000, 3)
        )));
    }
}

/// Hand-made SPDY for what kubectl never sends.
struct Side {
    deflater: HeaderDeflater,
    out: Vec<u8>,
}

fn id(n: u32) -> StreamId {
    StreamId::new(n).expect("id")
}

impl Side {
    fn new() -> Self {
        Side {
            deflater: HeaderDeflater::new(),
            out: Vec::new(),
        }
    }

    fn syn(&mut self, stream: u32, pairs: &[(&str, &str)]) -> &mut Self {
        let headers: HeaderBlock = pairs.iter().copied().collect();
        let mut block = Vec::new();
        self.deflater
            .deflate(&headers, &mut block)
            .expect("deflate");
        encode_control(
            &ControlFrame::SynStream {
                stream_id: id(stream),
                associated_stream_id: StreamId::ZERO,
                priority: 0,
                slot: 0,
                flags: 0,
                header_block: &block,
            },
            &mut self.out,
        );
        self
    }

    fn stream(&mut self, stream: u32, stream_type: &str, request_id: &str) -> &mut Self {
        self.syn(
            stream,
            &[
                ("streamtype", stream_type),
                ("port", "80"),
                ("requestid", request_id),
            ],
        )
    }

    fn data(&mut self, stream: u32, flags: u8, bytes: &[u8]) -> &mut Self {
        encode_data(id(stream), flags, bytes, &mut self.out).expect("encode");
        self
    }

    fn rst(&mut self, stream: u32) -> &mut Self {
        encode_control(
            &ControlFrame::RstStream {
                stream_id: id(stream),
                status: 5,
                flags: 0,
            },
            &mut self.out,
        );
        self
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// Feeds SPDY `(direction, bytes)` in order; the events and the first error.
fn feed_spdy(
    tap: &mut PortForwardTap,
    parts: &[(Direction, Vec<u8>)],
) -> (Vec<PortForwardEvent>, Result<(), PortForwardError>) {
    let mut events = Vec::new();
    for (direction, bytes) in parts {
        if let Err(error) = tap.feed(*direction, bytes, &mut |e| events.push(e)) {
            return (events, Err(error));
        }
    }
    (events, Ok(()))
}

fn spdy_result(parts: &[(Direction, Vec<u8>)]) -> Result<(), PortForwardError> {
    let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, PortForwardLimits::default());
    let (_, result) = feed_spdy(&mut tap, parts);
    if result.is_err() {
        assert!(tap.is_failed());
        assert_eq!(
            tap.feed(ClientToServer, b"", &mut |_| {}),
            Err(PortForwardError::Failed)
        );
    }
    result
}

fn stream_error(error: PortForwardStreamError) -> Result<(), PortForwardError> {
    Err(PortForwardError::Streams(error))
}

#[test]
fn data_on_a_stream_of_no_connection_is_an_error() {
    let mut client = Side::new();
    let open = client.stream(1, "error", "0").stream(3, "data", "0").take();
    let mut server = Side::new();
    assert_eq!(
        spdy_result(&[
            (ClientToServer, open.clone()),
            (ServerToClient, server.data(5, 0, b"x").take())
        ]),
        stream_error(PortForwardStreamError::UnattributedData {
            direction: ServerToClient,
            stream_id: id(5),
            len: 1
        })
    );
    assert_eq!(
        spdy_result(&[
            (ClientToServer, open.clone()),
            (ClientToServer, Side::new().data(7, 0, b"yz").take())
        ]),
        stream_error(PortForwardStreamError::UnattributedData {
            direction: ClientToServer,
            stream_id: id(7),
            len: 2
        })
    );
    // Server data before the client's SYN_STREAM.
    assert!(matches!(
        spdy_result(&[(ServerToClient, Side::new().data(1, 0, b"x").take())]),
        Err(PortForwardError::Streams(
            PortForwardStreamError::UnattributedData { .. }
        ))
    ));
    // Client data on the error stream, which the kubelet never reads.
    assert!(matches!(
        spdy_result(&[
            (ClientToServer, open.clone()),
            (ClientToServer, Side::new().data(1, 0, b"x").take())
        ]),
        Err(PortForwardError::Streams(
            PortForwardStreamError::UnattributedData { .. }
        ))
    ));
    // Data after its sender's FIN.
    assert!(matches!(
        spdy_result(&[
            (ClientToServer, open.clone()),
            (
                ServerToClient,
                Side::new().data(3, FLAG_FIN, b"a").data(3, 0, b"b").take()
            )
        ]),
        Err(PortForwardError::Streams(
            PortForwardStreamError::UnattributedData { .. }
        ))
    ));
    // Data on a data stream whose connection has no error stream.
    assert!(matches!(
        spdy_result(&[(
            ClientToServer,
            Side::new().stream(1, "data", "0").data(1, 0, b"x").take()
        )]),
        Err(PortForwardError::Streams(
            PortForwardStreamError::UnattributedData { .. }
        ))
    ));
    // Empty frames carry nothing: not an error.
    assert_eq!(
        spdy_result(&[
            (ClientToServer, open),
            (ServerToClient, Side::new().data(9, FLAG_FIN, b"").take())
        ]),
        Ok(())
    );
}

#[test]
fn a_second_stream_for_a_request_id_is_an_error() {
    let mut client = Side::new();
    client.stream(1, "error", "0").stream(3, "data", "0");
    assert_eq!(
        spdy_result(&[(ClientToServer, client.stream(5, "data", "0").take())]),
        stream_error(PortForwardStreamError::DuplicateStream {
            request_id: "0".into(),
            stream_type: "data",
            first: id(3),
            second: id(5)
        })
    );
    let mut client = Side::new();
    client.stream(1, "error", "0");
    assert!(matches!(
        spdy_result(&[(ClientToServer, client.stream(3, "error", "0").take())]),
        Err(PortForwardError::Streams(
            PortForwardStreamError::DuplicateStream {
                stream_type: "error",
                ..
            }
        ))
    ));
    let mut client = Side::new();
    client.stream(1, "error", "0");
    assert_eq!(
        spdy_result(&[(ClientToServer, client.stream(1, "data", "1").take())]),
        stream_error(PortForwardStreamError::StreamReopened { stream_id: id(1) })
    );
}

#[test]
fn bad_headers_are_errors() {
    let case =
        |pairs: &[(&str, &str)]| spdy_result(&[(ClientToServer, Side::new().syn(1, pairs).take())]);
    for port in ["0", "65536", "http", "-1", " 80"] {
        assert!(
            matches!(
                case(&[("streamtype", "data"), ("port", port), ("requestid", "0")]),
                Err(PortForwardError::Streams(
                    PortForwardStreamError::InvalidPort { .. }
                ))
            ),
            "{port:?}"
        );
    }
    assert_eq!(
        case(&[("streamtype", "data"), ("requestid", "0")]),
        stream_error(PortForwardStreamError::MissingHeader {
            stream_id: id(1),
            header: "port"
        })
    );
    assert!(matches!(
        case(&[("streamtype", "stdout"), ("port", "80"), ("requestid", "0")]),
        Err(PortForwardError::Streams(
            PortForwardStreamError::InvalidStreamType { .. }
        ))
    ));
    assert!(matches!(
        case(&[("streamtype", "data"), ("port", "80")]),
        Err(PortForwardError::Streams(
            PortForwardStreamError::MissingHeader {
                header: "requestid",
                ..
            }
        ))
    ));
    // The first NUL-separated value counts, as the kubelet reads it.
    assert_eq!(
        case(&[
            ("StreamType", "error\0data"),
            ("Port", "80\0x"),
            ("RequestID", "0")
        ]),
        Ok(())
    );
}

#[test]
fn unparseable_spdy_is_an_error() {
    // A control frame of SPDY version 2.
    let bytes = [0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1];
    assert!(matches!(
        spdy_result(&[(ClientToServer, bytes.to_vec())]),
        Err(PortForwardError::SpdyFrame {
            direction: ClientToServer,
            ..
        })
    ));
    // A header block that is not zlib.
    let mut frame = Vec::new();
    encode_control(
        &ControlFrame::SynStream {
            stream_id: id(1),
            associated_stream_id: StreamId::ZERO,
            priority: 0,
            slot: 0,
            flags: 0,
            header_block: b"not zlib",
        },
        &mut frame,
    );
    assert!(matches!(
        spdy_result(&[(ClientToServer, frame)]),
        Err(PortForwardError::SpdyHeaders { .. })
    ));
}

#[test]
fn limits_are_errors() {
    let limits = PortForwardLimits {
        max_connections: 2,
        max_error_text: 8,
        max_header_block: 64,
        ..PortForwardLimits::default()
    };
    let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, limits);
    let mut client = Side::new();
    let (_, result) = feed_spdy(
        &mut tap,
        &[(
            ClientToServer,
            client
                .stream(1, "error", "0")
                .stream(3, "error", "1")
                .stream(5, "error", "2")
                .take(),
        )],
    );
    assert_eq!(
        result,
        stream_error(PortForwardStreamError::TooManyConnections { max: 2 })
    );

    let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, limits);
    let (_, result) = feed_spdy(
        &mut tap,
        &[
            (ClientToServer, Side::new().stream(1, "error", "0").take()),
            (
                ServerToClient,
                Side::new().data(1, 0, b"12345").data(1, 0, b"6789").take(),
            ),
        ],
    );
    assert_eq!(
        result,
        stream_error(PortForwardStreamError::ErrorTextTooLong {
            connection: ConnectionId(0),
            max: 8
        })
    );

    let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, limits);
    let long = "x".repeat(100);
    let (_, result) = feed_spdy(
        &mut tap,
        &[(
            ClientToServer,
            Side::new().syn(1, &[("streamtype", &long)]).take(),
        )],
    );
    assert!(matches!(result, Err(PortForwardError::SpdyHeaders { .. })));
}

#[test]
fn an_error_stream_without_its_data_stream() {
    // The kubelet's stream creation timeout: its message on the error stream, no connection.
    let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, PortForwardLimits::default());
    let (mut events, result) = feed_spdy(
        &mut tap,
        &[
            (ClientToServer, Side::new().stream(1, "error", "4").take()),
            (
                ServerToClient,
                Side::new()
                    .data(1, 0, b"timed out waiting for streams")
                    .data(1, FLAG_FIN, b"")
                    .take(),
            ),
        ],
    );
    assert_eq!(result, Ok(()));
    assert_eq!(tap.stats().connections_held, 0);
    tap.finish(&mut |e| events.push(e));
    assert_eq!(
        events,
        [
            PortForwardEvent::Error {
                connection: ConnectionId(0),
                request_id: "4".into(),
                message: "timed out waiting for streams".into()
            },
            PortForwardEvent::SessionEnded {
                connections: 0,
                client_to_server: 0,
                server_to_client: 0
            },
        ]
    );
}

#[test]
fn a_server_reset_closes_the_connection() {
    let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, PortForwardLimits::default());
    let (events, result) = feed_spdy(
        &mut tap,
        &[
            (
                ClientToServer,
                Side::new()
                    .stream(1, "error", "0")
                    .stream(3, "data", "0")
                    .data(3, 0, b"abc")
                    .take(),
            ),
            (ServerToClient, Side::new().rst(3).take()),
            (ClientToServer, Side::new().data(3, 0, b"late").take()),
        ],
    );
    assert_eq!(result, Ok(()));
    assert_eq!(
        events,
        [
            opened(0, 80, 1, 3),
            data(0, ClientToServer, 3),
            closed(
                0,
                3,
                0,
                CloseReason::Reset {
                    by: ServerToClient,
                    status: 5
                }
            ),
        ]
    );
    assert_eq!(tap.stats().ignored_bytes, 4);
}

/// One tunnel frame.
fn ws_frame(opcode: Opcode, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        &FrameHeader {
            mask,
            ..FrameHeader::new(opcode, 0)
        },
        payload,
        &mut out,
    );
    out
}

#[test]
fn the_tunnel_refuses_what_its_peers_refuse() {
    let tunnel = || {
        PortForwardTap::new(
            PortForwardTransport::WebSocketTunnel,
            PortForwardLimits::default(),
        )
    };
    let mut tap = tunnel();
    assert_eq!(
        tap.feed(
            ClientToServer,
            &ws_frame(Opcode::Text, Some([1, 2, 3, 4]), b"hi"),
            &mut |_| {}
        ),
        Err(PortForwardError::NonBinaryMessage {
            direction: ClientToServer,
            opcode: Opcode::Text
        })
    );
    let mut tap = tunnel();
    assert_eq!(
        tap.feed(
            ServerToClient,
            &ws_frame(Opcode::Text, None, b""),
            &mut |_| {}
        ),
        Err(PortForwardError::NonBinaryMessage {
            direction: ServerToClient,
            opcode: Opcode::Text
        })
    );
    let mut tap = tunnel();
    assert_eq!(
        tap.feed(
            ClientToServer,
            &ws_frame(Opcode::Binary, None, b""),
            &mut |_| {}
        ),
        Err(PortForwardError::MaskMismatch {
            direction: ClientToServer,
            masked: false
        })
    );
    let mut tap = tunnel();
    assert_eq!(
        tap.feed(
            ServerToClient,
            &ws_frame(Opcode::Binary, Some([9, 9, 9, 9]), b""),
            &mut |_| {}
        ),
        Err(PortForwardError::MaskMismatch {
            direction: ServerToClient,
            masked: true
        })
    );
    let mut tap = tunnel();
    let mut bytes = ws_frame(Opcode::Close, None, &[0x03, 0xe8]);
    bytes.extend(ws_frame(Opcode::Binary, None, b""));
    assert_eq!(
        tap.feed(ServerToClient, &bytes, &mut |_| {}),
        Err(PortForwardError::DataAfterClose {
            direction: ServerToClient
        })
    );
    // SPDY errors inside the tunnel are errors too.
    let mut tap = tunnel();
    let spdy = Side::new().data(5, 0, b"x").take();
    assert!(matches!(
        tap.feed(
            ServerToClient,
            &ws_frame(Opcode::Binary, None, &spdy),
            &mut |_| {}
        ),
        Err(PortForwardError::Streams(
            PortForwardStreamError::UnattributedData { .. }
        ))
    ));
}

#[test]
fn feeding_after_finish_is_an_error() {
    let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, PortForwardLimits::default());
    let mut events = Vec::new();
    tap.finish(&mut |e| events.push(e));
    tap.finish(&mut |e| events.push(e));
    assert_eq!(events.len(), 1, "one SessionEnded");
    assert_eq!(
        tap.feed(ClientToServer, b"", &mut |_| {}),
        Err(PortForwardError::Ended)
    );
}

fn step() -> impl Strategy<Value = PortForwardStep> {
    let connection = 0usize..4;
    prop_oneof![
        2 => (1u16..=u16::MAX).prop_map(|port| Connect { port }),
        3 => (connection.clone(), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(connection, bytes)| ClientData { connection, bytes }),
        3 => (connection.clone(), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(connection, bytes)| ServerData { connection, bytes }),
        1 => (connection.clone(), "[a-z :]{0,30}")
            .prop_map(|(connection, message)| ServerError { connection, message }),
        1 => connection.clone().prop_map(|connection| ClientClose { connection }),
        1 => connection.clone().prop_map(|connection| ServerClose { connection }),
        1 => connection.prop_map(|connection| ClientReset { connection }),
        1 => Just(Ping),
    ]
}

fn chunked(sizes: &[usize]) -> impl FnMut(&[u8]) -> Vec<Vec<u8>> + '_ {
    let mut index = 0;
    move |bytes: &[u8]| {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let size = sizes[index % sizes.len()].min(rest.len());
            index += 1;
            let (piece, tail) = rest.split_at(size);
            pieces.push(piece.to_vec());
            rest = tail;
        }
        pieces
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any kubectl session, any split of its bytes, either transport: the scripted events.
    #[test]
    fn any_split_of_any_session_gives_the_scripted_events(
        steps in proptest::collection::vec(step(), 0..24),
        sizes in proptest::collection::vec(1usize..64, 1..8),
        tunnel in any::<bool>(),
        message in 1usize..200,
        fragment in proptest::option::of(1usize..50),
        pings in any::<bool>(),
        capture in any::<bool>(),
    ) {
        let script = PortForwardScript { steps };
        let (transport, wire) = if tunnel {
            let options = TunnelOptions {
                server_message_size: message,
                server_fragment_size: fragment,
                pings,
                mask_seed: 3,
            };
            (PortForwardTransport::WebSocketTunnel, script.encode_tunnel(&options))
        } else {
            (PortForwardTransport::Spdy, script.encode_spdy())
        };
        let mut tap = PortForwardTap::new(transport, PortForwardLimits::default())
            .with_payload_capture(capture);
        let events = run_with(&mut tap, &wire, &mut chunked(&sizes));
        let expected = if capture {
            script.expected_events_with_payload()
        } else {
            script.expected_events()
        };
        prop_assert_eq!(events.map(coalesce), Ok(expected));
        prop_assert_eq!(tap.stats().connections_held, 0);
        prop_assert_eq!(tap.stats().error_bytes_held, 0);
    }
}
