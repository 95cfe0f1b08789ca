//! Decrypting a recording that arrives in pieces (from a file or a recorder's read API) on a
//! blocking thread, for async readers such as `kube-recorder play`.

use std::io::Read;
use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use tokio::sync::mpsc;

use super::{DecryptError, Decrypting, Identities};

/// Ciphertext pieces queued ahead of the decryption, and plaintext pieces queued behind it: with
/// 64 KiB pieces, memory stays under a megabyte.
const QUEUE: usize = 4;

/// Reads ciphertext pieces from a channel; a closed channel is the end of the file.
struct ChannelReader {
    input: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.input.blocking_recv() {
                Some(piece) => self.current = piece?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// The plaintext of a recording decrypted by [`decrypt_stream`], in pieces.
#[derive(Debug)]
pub struct DecryptedChunks {
    output: mpsc::Receiver<Result<Bytes, DecryptError>>,
}

impl DecryptedChunks {
    /// The next piece of plaintext; an error once, after the good plaintext before it; `None`
    /// at the end of a whole file.
    pub async fn next(&mut self) -> Option<Result<Bytes, DecryptError>> {
        self.output.recv().await
    }
}

/// Decrypts the age file whose bytes are sent, in order, to the returned sender (an `Err` there
/// stops it with that error; dropping the sender ends the file) with `identities`, on the
/// blocking pool. Call from a Tokio runtime.
pub fn decrypt_stream(
    identities: Arc<Identities>,
) -> (mpsc::Sender<std::io::Result<Bytes>>, DecryptedChunks) {
    let (input_tx, input_rx) = mpsc::channel(QUEUE);
    let (output_tx, output_rx) = mpsc::channel(QUEUE);
    tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            input: input_rx,
            current: Bytes::new(),
        };
        let mut decrypting = match Decrypting::new(&identities, reader) {
            Ok(decrypting) => decrypting,
            Err(error) => {
                let _ = output_tx.blocking_send(Err(error));
                return;
            }
        };
        loop {
            let mut buf = vec![0; 64 * 1024];
            match decrypting.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if output_tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        // The reader went away.
                        return;
                    }
                }
                Err(error) => {
                    let _ = output_tx.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    (input_tx, DecryptedChunks { output: output_rx })
}
