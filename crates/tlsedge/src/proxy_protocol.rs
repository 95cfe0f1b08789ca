//! The PROXY protocol header (versions 1 and 2), as an L4 forwarder (a load balancer, tailscaled
//! `serve` in TCP mode, HAProxy's `send-proxy`) writes it before the client's first byte: who the
//! connection was relayed for. Pure and bounded: [`parse`] looks at the bytes read so far and says
//! whether they are a whole header, how many more bytes at least belong to it, or why they are
//! not one. It never asks for a byte past the header, so the bytes after it (a TLS ClientHello)
//! can be left to TLS untouched; [`crate::accept::read_proxy_header`] reads exactly that much.
//!
//! Read as haproxy's `proxy-protocol.txt` (2020/03/05) says:
//!
//! - **Version 1**: one line `PROXY TCP4|TCP6 src dst sport dport\r\n` with exactly one space
//!   between fields, addresses in their family's canonical text (IPv4 without leading zeros,
//!   IPv6 in hexadecimal groups), ports in decimal without leading zeros; at most 107 bytes with
//!   the CRLF. `PROXY UNKNOWN` may be followed by anything up to the CRLF, which is ignored.
//! - **Version 2**: the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`, a version (`2`) and command
//!   (`LOCAL` or `PROXY`) byte, an address family and transport byte, a big-endian length, then
//!   that many bytes: the addresses, then TLVs. TLVs are skipped, but they must fill the rest of
//!   the block exactly. The block may be at most [`MAX_V2_BLOCK`] bytes (the spec sizes both
//!   formats to fit one 536-byte segment); longer ones are refused. Checksums (`PP2_TYPE_CRC32C`)
//!   are not verified, which the spec allows a receiver that does not implement them.
//!
//! What the header means for the connection is given as a [`ProxyHeader`]: a relayed TCP
//! connection and its endpoints, the forwarder's own connection (v2 `LOCAL`), or a relayed
//! connection whose client the forwarder could not name (v1 `UNKNOWN`; v2 `PROXY` over an
//! unspecified family or protocol, UDP, or Unix sockets). What to do with each stays with the
//! server.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature: the first 12 bytes of every version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The most bytes a version 1 header can have, CRLF included (the spec's worst case,
/// `PROXY UNKNOWN` followed by two full IPv6 addresses and two ports).
pub const MAX_V1_LEN: usize = 107;
/// The most bytes accepted after the 16 fixed bytes of a version 2 header (addresses and TLVs):
/// the spec designs both formats to fit the smallest TCP segment every host must accept.
pub const MAX_V2_BLOCK: usize = 536;
/// The most bytes a header this parser accepts can have.
pub const MAX_HEADER_LEN: usize = 16 + MAX_V2_BLOCK;
/// The fewest bytes any header has (`PROXY UNKNOWN\r\n`); reading this many first never reads past
/// a header.
pub const MIN_HEADER_LEN: usize = 15;

const V1_PREFIX: &[u8] = b"PROXY ";

/// Which version of the protocol a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text format.
    V1,
    /// The binary format.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// What a whole header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// A TCP connection relayed for `source` (the client) to `destination` (the address the
    /// client connected to): v1 `TCP4`/`TCP6`, or v2 `PROXY` over TCP.
    Proxied {
        /// The format.
        version: Version,
        /// The client's address and port.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// v2 `LOCAL`: the forwarder's own connection (a health check), not relayed. The spec says
    /// to use the connection's real endpoints and ignore any address in the header.
    Local,
    /// A relayed connection whose client the header does not name as a TCP endpoint: v1
    /// `UNKNOWN`, or v2 `PROXY` over an unspecified family or protocol, UDP or a Unix socket.
    Unknown {
        /// The format.
        version: Version,
    },
}

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long; the bytes after it are not the header's.
    Complete {
        /// What it says.
        header: ProxyHeader,
        /// Its length in bytes.
        len: usize,
    },
    /// Not yet a whole header: at least `needed` more bytes (at least one) belong to it, so
    /// reading that many more never reads past it.
    Incomplete {
        /// Bytes certainly still to come.
        needed: usize,
    },
}

/// Why bytes are not a PROXY protocol header this parser accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The connection does not start with a PROXY protocol signature (`PROXY ` or the v2 one):
    /// no header was sent (a client that connected directly, a TLS ClientHello).
    NotProxyProtocol,
    /// A version 1 line with no CRLF within [`MAX_V1_LEN`] bytes.
    V1TooLong,
    /// A version 1 line that does not match the format; the reason names the field.
    V1Malformed(&'static str),
    /// A version 2 header with a version other than 2 in its 13th byte.
    V2Version(u8),
    /// A version 2 command other than `LOCAL` (0) and `PROXY` (1).
    V2Command(u8),
    /// A version 2 address family (high nibble) or transport (low nibble) the spec does not
    /// define.
    V2Family(u8),
    /// A version 2 block longer than [`MAX_V2_BLOCK`].
    V2TooLong(usize),
    /// A version 2 block shorter than the addresses its family needs.
    V2AddressesTruncated {
        /// Bytes the addresses need.
        needed: usize,
        /// Bytes the header declared.
        declared: usize,
    },
    /// The TLVs after the addresses do not fill the rest of the block exactly.
    V2TlvMalformed,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotProxyProtocol => {
                f.write_str("no PROXY protocol header: the connection does not start with one")
            }
            ParseError::V1TooLong => write!(
                f,
                "PROXY protocol v1 header without CRLF within {MAX_V1_LEN} bytes"
            ),
            ParseError::V1Malformed(what) => write!(f, "malformed PROXY protocol v1 header: {what}"),
            ParseError::V2Version(byte) => write!(
                f,
                "PROXY protocol v2 header with version {} (only 2 is defined)",
                byte >> 4
            ),
            ParseError::V2Command(command) => write!(
                f,
                "PROXY protocol v2 header with unknown command {command:#x}"
            ),
            ParseError::V2Family(byte) => write!(
                f,
                "PROXY protocol v2 header with undefined address family/transport {byte:#04x}"
            ),
            ParseError::V2TooLong(len) => write!(
                f,
                "PROXY protocol v2 header declares {len} bytes after its fixed part (at most {MAX_V2_BLOCK} accepted)"
            ),
            ParseError::V2AddressesTruncated { needed, declared } => write!(
                f,
                "PROXY protocol v2 header declares {declared} address bytes, its family needs {needed}"
            ),
            ParseError::V2TlvMalformed => {
                f.write_str("PROXY protocol v2 header whose TLVs do not fill its length exactly")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Reads the header at the start of `bytes`, the first bytes of a connection.
///
/// Bytes after a whole header are never looked at. [`Parsed::Incomplete`] says how many more
/// bytes at least to read before asking again; an error is final (more bytes do not mend it). It
/// never panics, whatever `bytes` hold.
///
/// ```
/// use tlsedge::proxy_protocol::{parse, Parsed, ProxyHeader, Version};
///
/// let bytes = b"PROXY TCP4 100.64.0.7 10.0.0.1 50123 443\r\n\x16\x03\x01";
/// let Ok(Parsed::Complete { header, len }) = parse(bytes) else { panic!() };
/// assert_eq!(&bytes[len..], b"\x16\x03\x01");
/// assert_eq!(
///     header,
///     ProxyHeader::Proxied {
///         version: Version::V1,
///         source: "100.64.0.7:50123".parse().unwrap(),
///         destination: "10.0.0.1:443".parse().unwrap(),
///     }
/// );
/// ```
pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let Some(&first) = bytes.first() else {
        return Ok(Parsed::Incomplete {
            needed: MIN_HEADER_LEN,
        });
    };
    match first {
        b'\r' => parse_v2(bytes),
        b'P' => parse_v1(bytes),
        _ => Err(ParseError::NotProxyProtocol),
    }
}

/// Whether `bytes` (shorter than `signature` or not) agree with `signature` as far as both go.
fn agrees_with(bytes: &[u8], signature: &[u8]) -> bool {
    let n = bytes.len().min(signature.len());
    bytes[..n] == signature[..n]
}

fn parse_v1(bytes: &[u8]) -> Result<Parsed, ParseError> {
    if !agrees_with(bytes, V1_PREFIX) {
        return Err(ParseError::NotProxyProtocol);
    }
    let window = &bytes[..bytes.len().min(MAX_V1_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if window.len() >= MAX_V1_LEN {
            return Err(ParseError::V1TooLong);
        }
        return Ok(Parsed::Incomplete {
            needed: MIN_HEADER_LEN.saturating_sub(window.len()).max(1),
        });
    };
    // A lone LF, or CR followed by anything but LF, never ends the line.
    if window[cr] == b'\n' {
        return Err(ParseError::V1Malformed("LF without CR"));
    }
    match window.get(cr + 1) {
        None if cr + 1 >= MAX_V1_LEN => return Err(ParseError::V1TooLong),
        None => return Ok(Parsed::Incomplete { needed: 1 }),
        Some(b'\n') => {}
        Some(_) => return Err(ParseError::V1Malformed("CR without LF")),
    }
    let len = cr + 2;
    let line = &window[V1_PREFIX.len().min(cr)..cr];
    if cr < V1_PREFIX.len() {
        return Err(ParseError::V1Malformed("line ends inside \"PROXY \""));
    }
    let header = v1_fields(line)?;
    Ok(Parsed::Complete { header, len })
}

/// The fields after `PROXY ` (CRLF excluded).
fn v1_fields(line: &[u8]) -> Result<ProxyHeader, ParseError> {
    if line == b"UNKNOWN" || line.starts_with(b"UNKNOWN ") {
        // "the receiver must ignore anything presented before the CRLF"
        return Ok(ProxyHeader::Unknown {
            version: Version::V1,
        });
    }
    let text = std::str::from_utf8(line).map_err(|_| ParseError::V1Malformed("not US-ASCII"))?;
    let mut fields = text.split(' ');
    let mut next = |what: &'static str| {
        fields
            .next()
            .filter(|field| !field.is_empty())
            .ok_or(ParseError::V1Malformed(what))
    };
    let family = next("protocol (TCP4, TCP6 or UNKNOWN)")?;
    let (src, dst) = (next("source address")?, next("destination address")?);
    let (sport, dport) = (next("source port")?, next("destination port")?);
    if fields.next().is_some() {
        return Err(ParseError::V1Malformed("fields after the destination port"));
    }
    let (source, destination) = match family {
        "TCP4" => (
            IpAddr::V4(v1_ipv4(src, "source address")?),
            IpAddr::V4(v1_ipv4(dst, "destination address")?),
        ),
        "TCP6" => (
            IpAddr::V6(v1_ipv6(src, "source address")?),
            IpAddr::V6(v1_ipv6(dst, "destination address")?),
        ),
        _ => return Err(ParseError::V1Malformed("protocol (TCP4, TCP6 or UNKNOWN)")),
    };
    Ok(ProxyHeader::Proxied {
        version: Version::V1,
        source: SocketAddr::new(source, v1_port(sport, "source port")?),
        destination: SocketAddr::new(destination, v1_port(dport, "destination port")?),
    })
}

/// Four decimal numbers 0..=255 without leading zeros, separated by single dots.
fn v1_ipv4(text: &str, what: &'static str) -> Result<Ipv4Addr, ParseError> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next().ok_or(ParseError::V1Malformed(what))?;
        *octet = decimal(part, 255)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or(ParseError::V1Malformed(what))?;
    }
    if parts.next().is_some() {
        return Err(ParseError::V1Malformed(what));
    }
    Ok(Ipv4Addr::from(octets))
}

/// Hexadecimal groups separated by colons, with at most one `::` (no embedded IPv4 form).
fn v1_ipv6(text: &str, what: &'static str) -> Result<Ipv6Addr, ParseError> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return Err(ParseError::V1Malformed(what));
    }
    text.parse().map_err(|_| ParseError::V1Malformed(what))
}

fn v1_port(text: &str, what: &'static str) -> Result<u16, ParseError> {
    decimal(text, 65535)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(ParseError::V1Malformed(what))
}

/// A decimal number without leading zeros (`0` itself allowed), at most `max`.
fn decimal(text: &str, max: u32) -> Option<u32> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 5 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    let value: u32 = text.parse().ok()?;
    (value <= max).then_some(value)
}

fn parse_v2(bytes: &[u8]) -> Result<Parsed, ParseError> {
    if !agrees_with(bytes, &V2_SIGNATURE) {
        return Err(ParseError::NotProxyProtocol);
    }
    if bytes.len() < 16 {
        // The version byte is checked as soon as it is there.
        if let Some(&ver_cmd) = bytes.get(12) {
            check_ver_cmd(ver_cmd)?;
        }
        if let Some(&family) = bytes.get(13) {
            check_family(family)?;
        }
        return Ok(Parsed::Incomplete {
            needed: 16 - bytes.len(),
        });
    }
    let ver_cmd = bytes[12];
    let family = bytes[13];
    let command = check_ver_cmd(ver_cmd)?;
    check_family(family)?;
    let declared = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if declared > MAX_V2_BLOCK {
        return Err(ParseError::V2TooLong(declared));
    }
    let len = 16 + declared;
    if bytes.len() < len {
        return Ok(Parsed::Incomplete {
            needed: len - bytes.len(),
        });
    }
    let block = &bytes[16..len];
    // LOCAL: "discard the protocol block including the family which is ignored"; only its
    // length counts. An unspecified family or transport: "the receiver should ignore address
    // information", so the block is skipped whole. Otherwise the addresses come first (with
    // ports for INET and INET6), then TLVs to the end.
    let is_local = command == 0;
    let addresses = match (family >> 4, family & 0x0f) {
        (_, 0) | (0, _) => None,
        (0x1, _) => Some(12),
        (0x2, _) => Some(36),
        _ => Some(216),
    };
    if let (false, Some(needed)) = (is_local, addresses) {
        if block.len() < needed {
            return Err(ParseError::V2AddressesTruncated {
                needed,
                declared: block.len(),
            });
        }
        check_tlvs(&block[needed..])?;
    }
    let header = if is_local {
        ProxyHeader::Local
    } else {
        match family {
            0x11 => {
                let ip = |at: usize| {
                    Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3])
                };
                let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
                ProxyHeader::Proxied {
                    version: Version::V2,
                    source: SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                    destination: SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
                }
            }
            0x21 => {
                let ip = |at: usize| {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&block[at..at + 16]);
                    Ipv6Addr::from(octets)
                };
                let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
                ProxyHeader::Proxied {
                    version: Version::V2,
                    source: SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                    destination: SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
                }
            }
            _ => ProxyHeader::Unknown {
                version: Version::V2,
            },
        }
    };
    Ok(Parsed::Complete { header, len })
}

/// The command of a valid version/command byte.
fn check_ver_cmd(ver_cmd: u8) -> Result<u8, ParseError> {
    if ver_cmd >> 4 != 2 {
        return Err(ParseError::V2Version(ver_cmd));
    }
    let command = ver_cmd & 0x0f;
    if command > 1 {
        return Err(ParseError::V2Command(command));
    }
    Ok(command)
}

fn check_family(family: u8) -> Result<(), ParseError> {
    if family >> 4 > 3 || family & 0x0f > 2 {
        return Err(ParseError::V2Family(family));
    }
    Ok(())
}

/// Type (1 byte), big-endian length (2), value, repeated to the end exactly.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ParseError> {
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err(ParseError::V2TlvMalformed);
        }
        let value = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        let end = 3 + value;
        if tlvs.len() < end {
            return Err(ParseError::V2TlvMalformed);
        }
        tlvs = &tlvs[end..];
    }
    Ok(())
}

/// A version 1 header for `source` and `destination` (both of one family), for tests and tools
/// that play the forwarder.
pub fn v1_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        v1_address(source.ip()),
        v1_address(destination.ip()),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// An address as version 1 writes it: IPv6 always in hexadecimal groups (Rust's `Display` writes
/// IPv4-mapped addresses with a dotted tail, which the format does not allow).
fn v1_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            groups.join(":")
        }
    }
}

/// A version 2 `PROXY` header over TCP for `source` and `destination` (both of one family),
/// followed by `tlvs` (already encoded), for tests and tools that play the forwarder.
pub fn v2_header(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    let mut block = Vec::with_capacity(36 + tlvs.len());
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            block.extend_from_slice(&src.octets());
            block.extend_from_slice(&dst.octets());
            0x11
        }
        (src, dst) => {
            block.extend_from_slice(&to_v6(src).octets());
            block.extend_from_slice(&to_v6(dst).octets());
            0x21
        }
    };
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&destination.port().to_be_bytes());
    block.extend_from_slice(tlvs);
    header.push(0x21);
    header.push(family);
    let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&block);
    header
}

/// A version 2 `LOCAL` header (a forwarder's health check), without addresses.
pub fn v2_local_header() -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    header
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn complete(bytes: &[u8]) -> (ProxyHeader, usize) {
        match parse(bytes) {
            Ok(Parsed::Complete { header, len }) => (header, len),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let (header, len) = complete(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET");
        assert_eq!(len, 47);
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                version: Version::V1,
                source: addr("192.168.0.1:56324"),
                destination: addr("192.168.0.11:443"),
            }
        );
        let (header, _) = complete(b"PROXY TCP6 fd7a:115c:a1e0::7 ::1 0 65535\r\n");
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                version: Version::V1,
                source: addr("[fd7a:115c:a1e0::7]:0"),
                destination: addr("[::1]:65535"),
            }
        );
    }

    #[test]
    fn v1_unknown_ignores_the_rest_of_the_line() {
        for line in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            b"PROXY UNKNOWN whatever \x01\r\n",
        ] {
            let (header, len) = complete(line);
            assert_eq!(header, ProxyHeader::Unknown { version: Version::V1 });
            assert_eq!(len, line.len());
        }
    }

    #[test]
    fn v1_refuses_what_the_spec_does_not_allow() {
        for (line, what) in [
            (&b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..], "LF without CR"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR without LF"),
            (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "source address"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "source port"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                "destination port",
            ),
            (
                b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                "destination address",
            ),
            (b"PROXY TCP4 ::1 ::1 1 2\r\n", "source address"),
            (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "source address"),
            (b"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n", "source address"),
            (
                b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                "protocol (TCP4, TCP6 or UNKNOWN)",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                "fields after the destination port",
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "destination port"),
            (
                b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
                "protocol (TCP4, TCP6 or UNKNOWN)",
            ),
            (b"PROXY \r\n", "protocol (TCP4, TCP6 or UNKNOWN)"),
        ] {
            assert_eq!(
                parse(line),
                Err(ParseError::V1Malformed(what)),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(parse(b"PROXX TCP4"), Err(ParseError::NotProxyProtocol));
        assert_eq!(parse(b"PROXY\r\n"), Err(ParseError::NotProxyProtocol));
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(parse(&long), Err(ParseError::V1TooLong));
    }

    #[test]
    fn v1_incomplete_asks_for_no_byte_past_the_shortest_header() {
        assert_eq!(parse(b""), Ok(Parsed::Incomplete { needed: 15 }));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete { needed: 12 }));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r"),
            Ok(Parsed::Incomplete { needed: 1 })
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 "),
            Ok(Parsed::Incomplete { needed: 1 })
        );
    }

    #[test]
    fn not_proxy_protocol() {
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00"),
            Err(ParseError::NotProxyProtocol)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(ParseError::NotProxyProtocol)
        );
        assert_eq!(parse(b"\r\n\r\nX"), Err(ParseError::NotProxyProtocol));
    }

    #[test]
    fn v2_tcp4_tcp6_with_tlvs() {
        let src = addr("100.64.0.7:50123");
        let dst = addr("10.0.0.1:443");
        let bytes = v2_header(src, dst, &[]);
        assert_eq!(bytes.len(), 28);
        let (header, len) = complete(&[bytes.as_slice(), b"\x16\x03"].concat());
        assert_eq!(len, 28);
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                version: Version::V2,
                source: src,
                destination: dst
            }
        );
        // ALPN and NOOP TLVs are skipped.
        let tlvs = b"\x01\x00\x02h2\x04\x00\x00";
        let src6 = addr("[fd7a:115c:a1e0::7]:1");
        let dst6 = addr("[fd7a:115c:a1e0::1]:443");
        let bytes = v2_header(src6, dst6, tlvs);
        let (header, len) = complete(&bytes);
        assert_eq!(len, 16 + 36 + tlvs.len());
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                version: Version::V2,
                source: src6,
                destination: dst6
            }
        );
    }

    #[test]
    fn v2_local_and_unknown() {
        assert_eq!(complete(&v2_local_header()), (ProxyHeader::Local, 16));
        // LOCAL with an address block: the length is honoured, the addresses ignored.
        let mut local = v2_header(addr("1.2.3.4:1"), addr("5.6.7.8:2"), &[]);
        local[12] = 0x20;
        assert_eq!(complete(&local), (ProxyHeader::Local, 28));
        for (family, ip) in [
            (0x00, "[::1]"),
            (0x01, "[::1]"),
            (0x10, "[::1]"),
            (0x12, "1.2.3.4"),
            (0x22, "[::1]"),
        ] {
            let mut bytes = v2_header(addr(&format!("{ip}:1")), addr(&format!("{ip}:2")), &[]);
            bytes[13] = family;
            assert_eq!(
                complete(&bytes).0,
                ProxyHeader::Unknown {
                    version: Version::V2
                },
                "{family:#x}"
            );
        }
        let mut unix = V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
        unix.extend_from_slice(&[0u8; 216]);
        assert_eq!(
            complete(&unix).0,
            ProxyHeader::Unknown {
                version: Version::V2
            }
        );
    }

    #[test]
    fn v2_refuses_what_the_spec_does_not_allow() {
        let good = v2_header(addr("1.2.3.4:1"), addr("5.6.7.8:2"), &[]);
        let with = |at: usize, byte: u8| {
            let mut bytes = good.clone();
            bytes[at] = byte;
            parse(&bytes)
        };
        assert_eq!(with(12, 0x11), Err(ParseError::V2Version(0x11)));
        assert_eq!(with(12, 0x22), Err(ParseError::V2Command(2)));
        assert_eq!(with(13, 0x41), Err(ParseError::V2Family(0x41)));
        assert_eq!(with(13, 0x13), Err(ParseError::V2Family(0x13)));
        assert_eq!(
            with(15, 4),
            Err(ParseError::V2AddressesTruncated {
                needed: 12,
                declared: 4
            })
        );
        // A version byte is refused before the rest arrives.
        let mut early = good[..13].to_vec();
        early[12] = 0x10;
        assert_eq!(parse(&early), Err(ParseError::V2Version(0x10)));
        let mut long = good[..16].to_vec();
        long[14..16].copy_from_slice(&537u16.to_be_bytes());
        assert_eq!(parse(&long), Err(ParseError::V2TooLong(537)));
        // TLVs that overrun or leave bytes over.
        for tlvs in [&b"\x01\x00\x05ab"[..], b"\x04\x00", b"\x04"] {
            let bytes = v2_header(addr("1.2.3.4:1"), addr("5.6.7.8:2"), tlvs);
            assert_eq!(parse(&bytes), Err(ParseError::V2TlvMalformed));
        }
    }

    #[test]
    fn v2_incomplete_asks_for_exactly_the_rest() {
        let good = v2_header(addr("1.2.3.4:1"), addr("5.6.7.8:2"), &[]);
        assert_eq!(parse(&good[..1]), Ok(Parsed::Incomplete { needed: 15 }));
        assert_eq!(parse(&good[..16]), Ok(Parsed::Incomplete { needed: 12 }));
        assert_eq!(parse(&good[..27]), Ok(Parsed::Incomplete { needed: 1 }));
    }

    #[test]
    fn errors_read_clearly() {
        assert_eq!(
            ParseError::V1Malformed("source port").to_string(),
            "malformed PROXY protocol v1 header: source port"
        );
        assert_eq!(
            ParseError::NotProxyProtocol.to_string(),
            "no PROXY protocol header: the connection does not start with one"
        );
    }
}
