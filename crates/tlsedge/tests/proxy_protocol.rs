//! Properties of the PROXY protocol parser and reader over any bytes and any split: it never
//! panics, never asks for or reads a byte past the header (what follows is the TLS ClientHello),
//! and reads every valid header as written.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use tlsedge::accept::{read_proxy_header, ProxyHeaderError};
use tlsedge::proxy_protocol::{
    parse, v1_header, v2_header, v2_local_header, ParseError, Parsed, ProxyHeader, Version,
    MAX_HEADER_LEN,
};
use tokio::io::{AsyncRead, ReadBuf};

/// Hands out its bytes in the given pieces (each read gets at most the rest of one piece), and
/// keeps what was never read.
struct Pieces {
    pieces: VecDeque<Vec<u8>>,
    reads: usize,
}

impl Pieces {
    fn new(bytes: &[u8], cuts: &[usize]) -> Pieces {
        let mut at: Vec<usize> = cuts
            .iter()
            .map(|c| c % (bytes.len() + 1))
            .collect::<Vec<_>>();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        at.dedup();
        let pieces = at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect();
        Pieces { pieces, reads: 0 }
    }

    fn rest(&self) -> Vec<u8> {
        self.pieces.iter().flatten().copied().collect()
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reads += 1;
        if let Some(front) = self.pieces.front_mut() {
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            front.drain(..n);
            if front.is_empty() {
                self.pieces.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        // The tailnet's ranges, mapped IPv4 and the edges.
        (0u32..=0x3f_ffff).prop_map(|n| IpAddr::V4(Ipv4Addr::from(0x6440_0000 | n))),
        any::<u32>().prop_map(|n| IpAddr::V6(Ipv4Addr::from(n).to_ipv6_mapped())),
        Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Just(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ]
}

/// A pair of addresses of one family.
fn endpoints() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    (ip(), ip(), any::<u16>(), any::<u16>()).prop_map(|(a, b, pa, pb)| {
        let b = match (a, b) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => {
                IpAddr::V4(Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32))
            }
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => b,
        };
        (SocketAddr::new(a, pa), SocketAddr::new(b, pb))
    })
}

/// Well-formed TLVs: (type, value) pairs, at most ~400 bytes in all.
fn tlvs() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..60)),
        0..6,
    )
    .prop_map(|tlvs| {
        let mut bytes = Vec::new();
        for (kind, value) in tlvs {
            bytes.push(kind);
            bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&value);
        }
        bytes
    })
}

/// A valid header and what it must be read as.
fn header() -> impl Strategy<Value = (Vec<u8>, ProxyHeader)> {
    prop_oneof![
        endpoints().prop_map(|(source, destination)| (
            v1_header(source, destination),
            ProxyHeader::Proxied {
                version: Version::V1,
                source,
                destination
            }
        )),
        (endpoints(), tlvs()).prop_map(|((source, destination), tlvs)| (
            v2_header(source, destination, &tlvs),
            ProxyHeader::Proxied {
                version: Version::V2,
                source,
                destination
            }
        )),
        Just((
            b"PROXY UNKNOWN\r\n".to_vec(),
            ProxyHeader::Unknown {
                version: Version::V1
            }
        )),
        Just((v2_local_header(), ProxyHeader::Local)),
    ]
}

/// Bytes that often start like a header: a real one cut or damaged, or noise after a signature.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700),
        (header(), any::<usize>(), any::<u8>()).prop_map(|((mut bytes, _), at, byte)| {
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes
        }),
        (header(), any::<usize>()).prop_map(|((mut bytes, _), cut)| {
            bytes.truncate(cut % (bytes.len() + 1));
            bytes
        }),
        prop::collection::vec(any::<u8>(), 0..700)
            .prop_map(|noise| [&b"PROXY "[..], &noise].concat()),
        prop::collection::vec(any::<u8>(), 0..700).prop_map(|noise| [
            &tlsedge::proxy_protocol::V2_SIGNATURE[..],
            &noise
        ]
        .concat()),
        prop::collection::vec(
            prop::sample::select(b"PROXY TCP46UNKNOW0123456789abcdef.: \r\n".to_vec()),
            0..120
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes: no panic; a whole header lies within the bytes and is read the same without
    /// what follows it; a request for more never reaches past the largest header.
    #[test]
    fn parse_is_total_and_bounded(bytes in garbage(), tail in prop::collection::vec(any::<u8>(), 0..40)) {
        match parse(&bytes) {
            Ok(Parsed::Complete { header, len }) => {
                prop_assert!(len <= bytes.len() && len <= MAX_HEADER_LEN);
                prop_assert_eq!(parse(&bytes[..len]), Ok(Parsed::Complete { header, len }));
                let longer = [&bytes[..], &tail].concat();
                prop_assert_eq!(parse(&longer), Ok(Parsed::Complete { header, len }));
            }
            Ok(Parsed::Incomplete { needed }) => {
                prop_assert!(needed >= 1);
                prop_assert!(bytes.len() + needed <= MAX_HEADER_LEN, "{} + {}", bytes.len(), needed);
            }
            Err(error) => {
                prop_assert!(!error.to_string().is_empty());
                // An error is final: more bytes do not mend it.
                let longer = [&bytes[..], &tail].concat();
                prop_assert!(parse(&longer).is_err());
            }
        }
    }

    /// Every prefix of a valid header asks for more, never for more than the rest of it; the
    /// whole header is read as written whatever follows.
    #[test]
    fn prefixes_never_ask_past_the_header((bytes, expected) in header(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Ok(Parsed::Incomplete { needed }) => {
                    prop_assert!(cut + needed <= bytes.len(), "cut {} needed {} of {}", cut, needed, bytes.len());
                }
                other => prop_assert!(false, "prefix of {} bytes: {:?}", cut, other),
            }
        }
        let with_tail = [&bytes[..], &tail].concat();
        prop_assert_eq!(parse(&with_tail), Ok(Parsed::Complete { header: expected, len: bytes.len() }));
    }

    /// The reader, over any split of a header and the ClientHello after it: the header as
    /// written, and every byte after it left unread.
    #[test]
    fn reader_leaves_what_follows_untouched(
        (bytes, expected) in header(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let stream = [&bytes[..], &tail].concat();
        let mut reader = Pieces::new(&stream, &cuts);
        let header = block_on(read_proxy_header(&mut reader)).unwrap();
        prop_assert_eq!(header, expected);
        prop_assert_eq!(reader.rest(), tail);
        prop_assert!(reader.reads <= bytes.len());
    }

    /// The reader over garbage in any split: no panic; a header it accepts is the one `parse`
    /// sees; an error names the parse error, or the end of the stream inside a header.
    #[test]
    fn reader_over_garbage(bytes in garbage(), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let mut reader = Pieces::new(&bytes, &cuts);
        let read = block_on(read_proxy_header(&mut reader));
        let consumed = bytes.len() - reader.rest().len();
        prop_assert!(consumed <= MAX_HEADER_LEN);
        match (read, parse(&bytes)) {
            (Ok(header), Ok(Parsed::Complete { header: parsed, len })) => {
                prop_assert_eq!(header, parsed);
                prop_assert_eq!(consumed, len);
            }
            (Err(ProxyHeaderError::Invalid(error)), Err(parsed)) => prop_assert_eq!(error, parsed),
            (Err(ProxyHeaderError::Closed { read }), Ok(Parsed::Incomplete { .. })) => {
                prop_assert_eq!(read, bytes.len());
            }
            (read, parsed) => prop_assert!(false, "reader {:?}, parse {:?}", read, parsed),
        }
    }
}

#[test]
fn a_connection_without_a_header_is_refused_at_its_first_bytes() {
    // A TLS ClientHello, as a client that connected directly sends it.
    let mut hello: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let error = block_on(read_proxy_header(&mut hello)).unwrap_err();
    assert!(matches!(
        error,
        ProxyHeaderError::Invalid(ParseError::NotProxyProtocol)
    ));
    assert_eq!(
        error.to_string(),
        "no PROXY protocol header: the connection does not start with one"
    );
    let mut empty: &[u8] = b"";
    assert_eq!(
        block_on(read_proxy_header(&mut empty))
            .unwrap_err()
            .to_string(),
        "the connection ended after 0 bytes, before a whole PROXY protocol header"
    );
}
