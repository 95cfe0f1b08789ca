//! How the client reaches a recorder address: plain TCP by default, or any byte stream a caller
//! provides (Tailscale's own client takes a dial function too, so that it can dial through tsnet).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connected byte stream to a recorder.
pub trait RecorderIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> RecorderIo for T {}

/// The future a [`Dialer`] returns.
pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn RecorderIo>>> + Send>>;

/// Opens connections to recorder addresses. The client bounds each dial with its own timeout, so a
/// dialer need not.
pub trait Dialer: Send + Sync + 'static {
    /// Connects to `addr`.
    fn dial(&self, addr: SocketAddr) -> DialFuture;
}

/// Dials over TCP, with `TCP_NODELAY` set (recording lines are small and latency matters more than
/// packet count).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn dial(&self, addr: SocketAddr) -> DialFuture {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn RecorderIo>)
        })
    }
}
