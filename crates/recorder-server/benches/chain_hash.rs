//! How fast the seal's hash chain takes a recording's bytes as they arrive, in the pieces the
//! network hands the upload (tens of KiB, of any length), against one 64 KiB chunk at a time.
//! Run with `cargo bench -p recorder-server --bench chain_hash`.

use divan::counter::BytesCount;
use divan::Bencher;
use recorder_server::seal::{ChainAlgorithm, ChainHasher, CHUNK_SIZE};

fn main() {
    divan::main();
}

/// 16 MiB of cast-like bytes.
const LEN: usize = 16 << 20;

fn data() -> Vec<u8> {
    let line = br#"[0.123456, "o", "drwxr-xr-x  2 root root 4096 Jan  1 00:00 file\r\n"]"#;
    line.iter()
        .copied()
        .chain([b'\n'])
        .cycle()
        .take(LEN)
        .collect()
}

/// Piece lengths between 8 and 112 KiB, none a multiple of 1 KiB: what HTTP/2 DATA frames of an
/// upload look like to the store.
fn network_pieces() -> Vec<usize> {
    (0..97u64)
        .map(|i| (8 * 1024 + ((i * 7919 * 13) % (104 * 1024)) as usize) | 1)
        .collect()
}

fn chain(bencher: Bencher, algorithm: ChainAlgorithm, gather: bool, pieces: &[usize]) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut hasher = ChainHasher::with(algorithm, "bench");
        if gather {
            hasher = hasher.gathering_chunks();
        }
        let mut at = 0;
        for &len in pieces.iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + len).min(data.len());
            hasher.update(&data[at..end]);
            at = end;
        }
        hasher.finish()
    });
}

/// What an upload's chain does: the pieces of each chunk gathered, one update per chunk.
#[divan::bench]
fn blake3_network_pieces_gathered(bencher: Bencher) {
    chain(bencher, ChainAlgorithm::Blake3, true, &network_pieces());
}

/// Each piece hashed as it comes (what an upload's chain did before).
#[divan::bench]
fn blake3_network_pieces_one_by_one(bencher: Bencher) {
    chain(bencher, ChainAlgorithm::Blake3, false, &network_pieces());
}

#[divan::bench]
fn blake3_whole_chunks(bencher: Bencher) {
    chain(
        bencher,
        ChainAlgorithm::Blake3,
        false,
        &[CHUNK_SIZE as usize],
    );
}

#[divan::bench]
fn sha256_network_pieces(bencher: Bencher) {
    chain(bencher, ChainAlgorithm::Sha256, false, &network_pieces());
}
