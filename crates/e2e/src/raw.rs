//! A raw TLS client for attack tests: writes exactly the bytes a test gives it (headers kubectl
//! would never send, protocol frames out of order) and reads exactly what comes back, so a test can
//! drive the proxy below what kubectl can express.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

/// How long a read may wait before a test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One TLS connection to the proxy (its certificate is not verified: the stack's is self-signed).
pub struct RawClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    /// Bytes read but not yet handed out.
    buffered: Vec<u8>,
}

/// The head of an HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawClient {
    /// Connects to `https://127.0.0.1:PORT` (the proxy's URL) and completes the TLS handshake.
    pub fn connect(url: &str) -> anyhow::Result<RawClient> {
        RawClient::connect_with_preamble(url, b"")
    }

    /// Connects and asks for an exec upgrade (`method path` with `headers`); the client once the
    /// proxy has answered 101, else an error with the status and what came of the body.
    pub fn upgraded(
        url: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<RawClient> {
        let mut client = RawClient::connect(url)?;
        client.send(&request_bytes(method, path, headers, b""))?;
        let head = client.read_head()?;
        if head.status != 101 {
            let body = client.read_some().unwrap_or_default();
            bail!(
                "exec upgrade answered {}: {}",
                head.status,
                String::from_utf8_lossy(&body)
            );
        }
        Ok(client)
    }

    /// Connects, writes `preamble` as it is before anything else (a PROXY protocol header, as an
    /// L4 forwarder writes it ahead of the client's bytes), then completes the TLS handshake.
    pub fn connect_with_preamble(url: &str, preamble: &[u8]) -> anyhow::Result<RawClient> {
        let mut tcp = tcp_connect(url)?;
        tcp.write_all(preamble)?;
        let config = testkit::load::client_config(&testkit::load::ServerTrust::AnyCertificate)?;
        let name = ServerName::try_from("localhost").context("server name")?;
        let mut connection = ClientConnection::new(Arc::new(config), name)?;
        while connection.is_handshaking() {
            connection
                .complete_io(&mut tcp)
                .context("TLS handshake with the proxy")?;
        }
        Ok(RawClient {
            stream: StreamOwned::new(connection, tcp),
            buffered: Vec::new(),
        })
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Reads up to the end of a response head and parses it; bytes after it stay buffered.
    pub fn read_head(&mut self) -> anyhow::Result<ResponseHead> {
        let end = loop {
            if let Some(at) = find(&self.buffered, b"\r\n\r\n") {
                break at;
            }
            if self.fill()? == 0 {
                bail!(
                    "connection closed before a response head; got {:?}",
                    String::from_utf8_lossy(&self.buffered)
                );
            }
        };
        let head: Vec<u8> = self.buffered.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
        let headers = lines
            .filter(|line| !line.is_empty())
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(ResponseHead { status, headers })
    }

    /// Reads a whole response with a `Content-Length` or chunked body.
    pub fn read_response(&mut self) -> anyhow::Result<(ResponseHead, Vec<u8>)> {
        let head = self.read_head()?;
        let body = if let Some(length) = head.header("content-length") {
            let length: usize = length.parse().context("content-length")?;
            self.read_exact_bytes(length)?
        } else if head
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            self.read_chunked()?
        } else {
            self.read_to_end()?
        };
        Ok((head, body))
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact_bytes(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        while self.buffered.len() < n {
            if self.fill()? == 0 {
                bail!(
                    "connection closed after {} of {n} bytes",
                    self.buffered.len()
                );
            }
        }
        Ok(self.buffered.drain(..n).collect())
    }

    /// Reads whatever arrives next (at least one byte), or an empty vector at the end.
    pub fn read_some(&mut self) -> anyhow::Result<Vec<u8>> {
        if self.buffered.is_empty() {
            self.fill()?;
        }
        Ok(std::mem::take(&mut self.buffered))
    }

    /// Reads until the proxy closes the connection (or `deadline` passes, an error).
    pub fn read_to_end(&mut self) -> anyhow::Result<Vec<u8>> {
        let deadline = Instant::now() + READ_TIMEOUT;
        while self.fill()? > 0 {
            if Instant::now() > deadline {
                bail!("the connection stayed open past {READ_TIMEOUT:?}");
            }
        }
        Ok(std::mem::take(&mut self.buffered))
    }

    /// True when the proxy has closed the connection: a read returns end of stream (or a reset).
    pub fn is_closed_by_peer(&mut self) -> anyhow::Result<bool> {
        match self.fill() {
            Ok(0) => Ok(true),
            Ok(_) => Ok(false),
            Err(error) => match error.downcast_ref::<std::io::Error>().map(|e| e.kind()) {
                Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => Ok(true),
                _ => Err(error),
            },
        }
    }

    /// Sends TLS close_notify and shuts the TCP write side, as a client leaving does.
    pub fn close(mut self) {
        self.stream.conn.send_close_notify();
        let _ = self.stream.flush();
        let _ = self.stream.sock.shutdown(std::net::Shutdown::Both);
    }

    fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("chunk size {line:?}"))?;
            if size == 0 {
                self.read_line()?;
                return Ok(body);
            }
            body.extend(self.read_exact_bytes(size)?);
            self.read_line()?;
        }
    }

    fn read_line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(at) = find(&self.buffered, b"\r\n") {
                let line: Vec<u8> = self.buffered.drain(..at + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..at]).into_owned());
            }
            if self.fill()? == 0 {
                bail!("connection closed inside a chunked body");
            }
        }
    }

    /// One read into the buffer; 0 at the end of the stream.
    fn fill(&mut self) -> anyhow::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            // A peer that closes without close_notify: the end, as far as a test is concerned.
            Err(error) if error.kind() == ErrorKind::UnexpectedEof => Ok(0),
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                Err(anyhow!("no answer within {READ_TIMEOUT:?}"))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// A TCP connection to the proxy's `https://` URL, with the read timeout set.
fn tcp_connect(url: &str) -> anyhow::Result<TcpStream> {
    let authority = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("only https:// URLs: {url}"))?
        .trim_end_matches('/');
    let tcp = TcpStream::connect(authority).with_context(|| format!("connect {authority}"))?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Connects over plain TCP, writes `bytes` and checks that the proxy closes the connection
/// (end of stream or reset) without sending a single byte; an error says what came instead.
pub fn closed_without_answer(url: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tcp = tcp_connect(url)?;
    // The proxy may close before everything is written; that is the answer too.
    let _ = tcp.write_all(bytes);
    let mut answer = [0u8; 512];
    match tcp.read(&mut answer) {
        Ok(0) => Ok(()),
        Ok(n) => bail!(
            "the proxy answered {:?}",
            String::from_utf8_lossy(&answer[..n])
        ),
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(())
        }
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            bail!("the connection stayed open past {READ_TIMEOUT:?}")
        }
        Err(error) => Err(error.into()),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// An HTTP/1.1 request as bytes: `method path`, `Host: localhost`, then `headers` exactly as given
/// (names and values unchecked, repeated names kept), then `body` with its `Content-Length` when
/// there is one.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The headers of a WebSocket exec/attach upgrade as kubectl sends them (`v5.channel.k8s.io`),
/// without `Connection`, which tests choose.
pub const WEBSOCKET_UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
];
