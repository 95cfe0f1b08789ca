//! Attacks on `--storage s3` from the bucket's side and from the directory's, each with a raw
//! client of the bucket or the file system: each test states a guarantee of docs/recorder.md
//! (Storage, Threat model). Against moto's S3 server, as the other S3 tests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::s3::{archive, cast, public_key, server, shipper, stored};
use recorder_server::s3::{restore_events, Shipper, ShipperOptions};
use recorder_server::seal::{self, PublicKey};
use recorder_server::{Protocol, RecordingEnd, RecordingKind, Store};
use tokio::io::AsyncReadExt as _;

const PREFIX: &str = "review";

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A sealing store in `dir` that reads recordings it no longer holds from the bucket.
async fn reading_the_bucket(dir: &std::path::Path, server: &testkit::s3_server::S3Server) -> Store {
    Store::create(dir)
        .await
        .expect("store")
        .read_through(Arc::new(archive(server, PREFIX)))
}

/// (c) Someone who can write the directory deletes a recording and leaves the shipper's marker
/// `DIR/s3/shipped/<id>` in its place: `verify --dir` still names the deletion (only a signed
/// `evicted` chain entry makes a missing file "kept only in the bucket").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_shipped_marker_does_not_hide_a_deletion_from_verify_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store"); // --storage dir: no bucket
    let id = stored(&store, &cast("evidence", 5)).await;
    std::fs::remove_file(dir.path().join("recordings").join(format!("{id}.cast"))).expect("rm");
    std::fs::create_dir_all(dir.path().join("s3/shipped")).expect("mkdir");
    std::fs::write(dir.path().join("s3/shipped").join(&id), b"").expect("marker");

    let report = seal::verify(dir.path(), &public_key(dir.path()), &[]).expect("verify");
    assert!(
        !report.is_clean(),
        "deletion hidden: verify --dir is clean, in_bucket = {:?}",
        report.in_bucket
    );
}

/// (b)/(d) A bucket writer replaces a shipped recording with other bytes of the same size: the
/// local file, the only copy matching the seal, is not evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_local_file_when_the_bucket_copy_no_longer_matches_its_seal() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let data = cast("genuine", 50);
    let id = stored(&store, &data).await;
    let mut shipper = shipper(&store, &server, PREFIX, Some(Duration::ZERO)).await;
    assert_eq!(shipper.pass().await.shipped, vec![id.clone()]);

    let forged = cast("FORGED!", 50);
    assert_eq!(forged.len(), data.len());
    archive(&server, PREFIX)
        .put(&format!("recordings/{id}.cast"), forged.into())
        .await
        .expect("put");
    let report = shipper.pass().await;
    assert!(
        dir.path()
            .join("recordings")
            .join(format!("{id}.cast"))
            .exists(),
        "the only copy matching the seal was evicted: {report:?}"
    );
}

/// (b) A bucket writer plants `<id>.cast` for a recording stored locally as a port-forward
/// capture: the local capture is what is served (the bucket is asked only for the file the index
/// entry names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_capture_is_not_shadowed_by_a_cast_planted_in_the_bucket() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = reading_the_bucket(dir.path(), &server).await;
    let mut writer = store
        .create_recording_of(RecordingKind::PortForwardCapture, Protocol::V2)
        .await
        .expect("capture");
    let capture =
        b"{\"format\":\"kap-port-forward/1\",\"port\":8080}\n{\"t\":0.1,\"d\":\"c\",\"b\":\"aGVsbG8=\"}\n";
    writer.write(capture).await.expect("write");
    let id = writer
        .finish(RecordingEnd::Complete)
        .await
        .expect("finish")
        .id;

    archive(&server, PREFIX)
        .put(&format!("recordings/{id}.cast"), cast("planted", 3).into())
        .await
        .expect("put");
    let (kind, mut reader) = store.open_recording(&id).await.expect("open");
    let mut served = Vec::new();
    reader.read_to_end(&mut served).await.expect("read");
    assert_eq!(kind, RecordingKind::PortForwardCapture);
    assert_eq!(
        served,
        capture.to_vec(),
        "the bucket's planted cast was served"
    );
}

/// (b) A bucket writer sets a recording's `receivedAt` and `finishedAt` to 1970 so that a new
/// host's retention would remove it (and sign the removal): the entry disagrees with the seal and
/// is not restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_index_entry_cannot_steer_retention() {
    let server = server();
    let key_dir = tempfile::tempdir().expect("key dir");
    let key_path = key_dir.path().join("signing-key.pem");
    let first = tempfile::tempdir().expect("tempdir");
    let id = {
        let store = Store::create_sealed_with(first.path(), Some(&key_path))
            .await
            .expect("store");
        let id = stored(&store, &cast("young", 3)).await;
        let mut shipper = Shipper::open(
            first.path(),
            archive(&server, PREFIX),
            ShipperOptions::default(),
        )
        .await
        .expect("shipper");
        assert_eq!(shipper.pass().await.failed, vec![]);
        id
    };
    let bucket = archive(&server, PREFIX);
    let key = format!("recordings/{id}.json");
    let entry = bucket
        .get_small(&key, 1 << 20)
        .await
        .expect("get")
        .expect("entry");
    let mut entry: serde_json::Value = serde_json::from_slice(&entry).expect("json");
    entry["receivedAt"] = 1.0.into();
    entry["finishedAt"] = 2.0.into();
    bucket
        .put(&key, serde_json::to_vec(&entry).expect("json").into())
        .await
        .expect("put");

    let second = tempfile::tempdir().expect("tempdir");
    let public = PublicKey::load(&seal::public_key_path(&key_path)).expect("key");
    let report = bucket
        .restore_index(second.path(), &public)
        .await
        .expect("restore");
    let store = Store::create_sealed_with(second.path(), Some(&key_path))
        .await
        .expect("store");
    let swept = store.sweep_retention(7, now()).await.expect("sweep");
    assert!(
        swept.removed.is_empty(),
        "a day-old recording removed by retention through a rewritten entry ({report:?})"
    );
    assert_eq!(report.recordings, Vec::<String>::new(), "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.skipped[0].1.contains("receivedAt"), "{report:?}");
}

/// (d): a crash at any point must leave a state the next start handles. A restore cut between
/// a recording's index entry and its marker (or a marker lost by the file system) leaves an
/// entry with no file and no marker: the shipper's first pass checks its bytes in the bucket and
/// records it as kept there, so `verify --dir` is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_cut_between_the_entry_and_its_marker_is_finished_at_the_next_start() {
    let server = server();
    let first = tempfile::tempdir().expect("tempdir");
    let key_dir = tempfile::tempdir().expect("key dir");
    let key_path = key_dir.path().join("signing-key.pem");
    let id = {
        let store = Store::create_sealed_with(first.path(), Some(&key_path))
            .await
            .expect("store");
        let id = stored(&store, &cast("restored", 3)).await;
        let mut shipper = shipper(&store, &server, PREFIX, None).await;
        assert_eq!(shipper.pass().await.failed, vec![]);
        id
    };
    let public = PublicKey::load(&seal::public_key_path(&key_path)).expect("key");
    let second = tempfile::tempdir().expect("tempdir");
    let bucket = archive(&server, PREFIX);
    bucket
        .restore_index(second.path(), &public)
        .await
        .expect("restore");
    // The crash: the marker was not on disk yet.
    std::fs::remove_file(second.path().join("s3/shipped").join(&id)).expect("marker");

    let store = Store::create_sealed_with(second.path(), Some(&key_path))
        .await
        .expect("store");
    store.recover().await.expect("recover");
    let mut shipper = shipper(&store, &server, PREFIX, None).await;
    let report = shipper.pass().await;
    assert_eq!(report.failed, vec![], "{report:?}");
    assert_eq!(report.evicted, vec![id.clone()], "{report:?}");
    assert_eq!(
        report.shipped,
        Vec::<String>::new(),
        "nothing ships back: {report:?}"
    );
    let verified = seal::verify(second.path(), &public, &[]).expect("verify");
    assert!(verified.is_clean(), "{:?}", verified.problems);
    assert_eq!(verified.in_bucket, vec![id]);
}

/// (e) An event object key with the largest u64 offset: the day is refused, nothing overflows
/// or panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_key_with_a_huge_offset_is_refused_not_a_panic() {
    let server = server();
    let bucket = archive(&server, PREFIX);
    bucket
        .put(
            &format!("events/2026-12-06/{:020}.jsonl", u64::MAX),
            bytes::Bytes::from_static(b"{}\n"),
        )
        .await
        .expect("put");
    let dir = tempfile::tempdir().expect("tempdir");
    let restored = tokio::spawn({
        let bucket = bucket.clone();
        let root = dir.path().to_owned();
        async move { restore_events(&bucket, &root).await.is_err() }
    })
    .await;
    assert!(
        matches!(restored, Ok(true)),
        "restore_events panicked instead of refusing the day: {restored:?}"
    );
}

/// (b): retention must not sign away damage a bucket writer did: a recording kept only in the
/// bucket whose object no longer matches its seal is kept for `verify` to name, as a damaged
/// local one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_bucket_only_recording_whose_object_was_changed() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = reading_the_bucket(dir.path(), &server).await;
    let data = cast("old-evidence", 20);
    let id = stored(&store, &data).await;
    let mut shipper = shipper(&store, &server, PREFIX, Some(Duration::ZERO)).await;
    shipper.pass().await;
    assert_eq!(shipper.pass().await.evicted, vec![id.clone()]);
    archive(&server, PREFIX)
        .put(
            &format!("recordings/{id}.cast"),
            cast("OLD-EVIDENCE", 20).into(),
        )
        .await
        .expect("put");
    let swept = store
        .sweep_retention(1, now() + 30.0 * 86_400.0)
        .await
        .expect("sweep");
    assert_eq!(swept.removed, Vec::<String>::new(), "{swept:?}");
    assert!(dir
        .path()
        .join("recordings")
        .join(format!("{id}.json"))
        .exists());
}

/// (b): a bucket writer who reorders the chain's lines (each still signed) gets no restore: the
/// lines must be numbered in order and each linked to the one before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_with_its_lines_swapped_is_not_restored() {
    let server = server();
    let first = tempfile::tempdir().expect("tempdir");
    let store = Store::create(first.path()).await.expect("store");
    stored(&store, &cast("one", 2)).await;
    stored(&store, &cast("two", 2)).await;
    let mut shipper = shipper(&store, &server, PREFIX, None).await;
    assert_eq!(shipper.pass().await.failed, vec![]);
    let bucket = archive(&server, PREFIX);
    let key = format!("chain/{:020}.jsonl", 0);
    let chain = bucket
        .get_small(&key, 1 << 20)
        .await
        .expect("get")
        .expect("chain");
    let text = String::from_utf8(chain.to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    bucket
        .put(&key, format!("{}\n{}\n", lines[1], lines[0]).into())
        .await
        .expect("put");
    let second = tempfile::tempdir().expect("tempdir");
    let error = bucket
        .restore_index(second.path(), &public_key(first.path()))
        .await
        .expect_err("a reordered chain");
    assert!(error.to_string().contains("out of order"), "{error}");
    assert!(!second.path().join("chain.jsonl").exists());
}

/// (d): an index entry in the bucket means its recording is there. One whose file a removal
/// (or anyone) deleted from the bucket is not restored as if it could be played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_whose_file_is_gone_from_the_bucket_is_not_restored() {
    let server = server();
    let first = tempfile::tempdir().expect("tempdir");
    let store = Store::create(first.path()).await.expect("store");
    let id = stored(&store, &cast("gone", 2)).await;
    let mut shipper = shipper(&store, &server, PREFIX, None).await;
    assert_eq!(shipper.pass().await.failed, vec![]);
    let bucket = archive(&server, PREFIX);
    bucket
        .delete(&format!("recordings/{id}.cast"))
        .await
        .expect("delete");
    let second = tempfile::tempdir().expect("tempdir");
    let report = bucket
        .restore_index(second.path(), &public_key(first.path()))
        .await
        .expect("restore");
    assert_eq!(report.recordings, Vec::<String>::new(), "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(!second
        .path()
        .join("recordings")
        .join(format!("{id}.json"))
        .exists());
}
