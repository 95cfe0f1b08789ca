//! A bucket of moto's S3 server (a real S3 implementation that is not ours, installed by
//! `cargo xtask ci`) for the S3 tests.

use std::path::PathBuf;

use recorder_server::s3::{S3Archive, S3Options, Shipper, ShipperOptions, MIN_PART_SIZE};
use recorder_server::seal::{self, PublicKey};
use recorder_server::{Protocol, RecordingEnd, Store};
use testkit::s3_server::S3Server;

/// The bucket every S3 test uses, in its own server.
pub const BUCKET: &str = "recordings";

/// A moto server of its own, with [`BUCKET`] created.
pub fn server() -> S3Server {
    let server = S3Server::start().expect("moto starts");
    server.create_bucket(BUCKET).expect("bucket");
    server
}

/// [`BUCKET`] of `server`, under `prefix`.
pub fn archive(server: &S3Server, prefix: &str) -> S3Archive {
    let mut options = S3Options::new(BUCKET);
    options.prefix = prefix.into();
    options.endpoint = Some(server.endpoint.clone());
    options.path_style = true;
    options.region = Some("us-east-1".into());
    options.credentials_file = Some(credentials_file());
    S3Archive::new(&options).expect("archive")
}

/// A credentials file (moto takes any key), kept for the test process's life.
pub fn credentials_file() -> PathBuf {
    static FILE: std::sync::OnceLock<tempfile::NamedTempFile> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(
            file.path(),
            "[default]\naws_access_key_id = test\naws_secret_access_key = test\n",
        )
        .expect("credentials");
        file
    })
    .path()
    .to_owned()
}

/// Stores `cast` as one complete recording; its ID.
pub async fn stored(store: &Store, cast: &[u8]) -> String {
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    writer.write(cast).await.expect("write");
    writer
        .finish(RecordingEnd::Complete)
        .await
        .expect("finish")
        .id
}

/// A shipper of `store`'s directory to `prefix` in [`BUCKET`], evicting after `keep_local` and
/// recording evictions in the store's chain.
pub async fn shipper(
    store: &Store,
    server: &S3Server,
    prefix: &str,
    keep_local: Option<std::time::Duration>,
) -> Shipper {
    let mut options = ShipperOptions::default();
    options.part_size = MIN_PART_SIZE;
    options.keep_local = keep_local;
    let mut shipper = Shipper::open(store.dir(), archive(server, prefix), options)
        .await
        .expect("shipper opens");
    shipper.record_evictions_with(store.shared_sealer().expect("the store seals"));
    shipper
}

/// The public key beside the directory's own signing key.
pub fn public_key(dir: &std::path::Path) -> PublicKey {
    PublicKey::load(&seal::public_key_path(&seal::default_key_path(dir))).expect("public key")
}

/// A cast of team-a's pod `web` with `lines` output lines, each holding `word`.
pub fn cast(word: &str, lines: usize) -> Vec<u8> {
    let mut cast = br#"{"version":2,"width":80,"height":24,"timestamp":1700000000,"srcNodeUser":"alice@example.com","kubernetes":{"PodName":"web","Namespace":"team-a","Container":"main","SessionType":"exec"}}"#.to_vec();
    cast.push(b'\n');
    for line in 0..lines {
        cast.extend_from_slice(
            format!("[{line}.5,\"o\",\"line {line} {word}\\r\\n\"]\n").as_bytes(),
        );
    }
    cast
}
