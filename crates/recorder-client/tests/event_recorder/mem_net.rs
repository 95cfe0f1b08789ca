//! An in-memory network for the test recorder: dialing an address connects to what is routed
//! there; anything else is refused. Time-based cases run on Tokio's paused clock over it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use recorder_client::{DialFuture, Dialer, RecorderIo};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::CountingRecorder;

/// What is at an address of the in-memory network.
#[derive(Clone, Debug)]
pub enum Route {
    Recorder(CountingRecorder),
    /// The dial never completes.
    Hang,
}

/// A dialled connection's address and its switch to end the client's reading.
type Switch = (SocketAddr, Arc<AtomicBool>);

/// An in-memory network.
#[derive(Clone, Debug, Default)]
pub struct MemNet {
    routes: Arc<Mutex<HashMap<SocketAddr, Route>>>,
    /// Every connection dialled.
    connections: Arc<Mutex<Vec<Switch>>>,
}

impl MemNet {
    pub fn route(&self, addr: &str, route: Route) -> SocketAddr {
        let addr: SocketAddr = addr.parse().expect("address");
        self.routes.lock().expect("routes").insert(addr, route);
        addr
    }

    /// The client's connections to `addr` read end-of-stream from now on, but the client is not
    /// woken: as when a recorder closes an idle connection and its FIN is in the socket buffer
    /// before the client's connection task has run again. The client notices only when it next
    /// uses the connection.
    pub fn close_quietly(&self, addr: SocketAddr) {
        for (to, closed) in self.connections.lock().expect("connections").iter() {
            if *to == addr {
                closed.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl Dialer for MemNet {
    fn dial(&self, addr: SocketAddr) -> DialFuture {
        let route = self.routes.lock().expect("routes").get(&addr).cloned();
        let connections = Arc::clone(&self.connections);
        Box::pin(async move {
            match route {
                None => Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
                Some(Route::Hang) => std::future::pending().await,
                Some(Route::Recorder(recorder)) => {
                    let (client, server) = tokio::io::duplex(64 * 1024);
                    tokio::spawn(recorder.serve(server));
                    let closed = Arc::new(AtomicBool::new(false));
                    connections
                        .lock()
                        .expect("connections")
                        .push((addr, Arc::clone(&closed)));
                    Ok(Box::new(QuietlyClosable {
                        inner: client,
                        closed,
                    }) as Box<dyn RecorderIo>)
                }
            }
        })
    }
}

/// The client's end of an in-memory connection, whose reading can be ended without a wake-up.
struct QuietlyClosable {
    inner: DuplexStream,
    closed: Arc<AtomicBool>,
}

impl AsyncRead for QuietlyClosable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuietlyClosable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Passed through: whatever the client writes after the close reaches the recorder, and
        // its counts show it.
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
