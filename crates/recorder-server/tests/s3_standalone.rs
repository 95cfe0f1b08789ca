//! `--storage s3` as a store that stands alone: a shipped recording's file leaves the directory
//! (`--s3-keep-local-days`) and is read back from the bucket through the storage backend, by the
//! store, the read API, search and seal status alike; a new, empty directory is brought back in
//! step with the bucket (chain, index entries, seals) and serves what it holds. Against moto's
//! S3 server, a real S3 implementation that is not ours.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::s3::{cast, public_key, server, shipper, stored, BUCKET};
use futures_util::TryStreamExt as _;
use recorder_server::s3::{S3Archive, Shipper, ShipperOptions};
use recorder_server::seal::{self, PublicKey, SigningKey};
use recorder_server::{RecorderServer, Store, StoreError};
use serde_json::Value;
use testkit::s3_server::S3Server;

const PREFIX: &str = "cluster-b";

fn archive(server: &S3Server) -> S3Archive {
    common::s3::archive(server, PREFIX)
}

fn local_cast(dir: &Path, id: &str) -> std::path::PathBuf {
    dir.join("recordings").join(format!("{id}.cast"))
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    common::json(client.get(&url).send().await.expect(&url)).await
}

/// Ships everything and evicts it: two passes (shipped, then evicted).
async fn ship_and_evict(shipper: &mut Shipper, ids: &[String]) {
    let first = shipper.pass().await;
    assert_eq!(first.failed, vec![], "{first:?}");
    let second = shipper.pass().await;
    assert_eq!(second.failed, vec![], "{second:?}");
    let mut evicted = second.evicted.clone();
    evicted.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(evicted, expected, "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_kept_only_in_the_bucket_reads_back_byte_for_byte() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let data = cast("evicted", 2_000);
    let id = stored(&store, &data).await;
    let mut shipper = shipper(&store, &server, PREFIX, Some(Duration::ZERO)).await;
    ship_and_evict(&mut shipper, std::slice::from_ref(&id)).await;

    // The file left the directory; its index entry and seal stayed.
    assert!(!local_cast(dir.path(), &id).exists());
    assert!(dir
        .path()
        .join("recordings")
        .join(format!("{id}.manifest.json"))
        .exists());
    assert_eq!(
        store.get(&id).await.expect("entry").bytes,
        data.len() as u64
    );
    // Without the bucket the directory no longer has it; through the bucket it reads the same.
    assert!(matches!(
        store.read_cast(&id).await,
        Err(StoreError::NotFound(_))
    ));
    let reading = store.clone().read_through(Arc::new(archive(&server)));
    assert_eq!(reading.read_cast(&id).await.expect("cast from S3"), data);

    // `verify --dir` checks everything but the bytes, and says where they are.
    let key = public_key(dir.path());
    let report = seal::verify(dir.path(), &key, &[]).expect("verify");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.in_bucket, vec![id.clone()]);
    assert_eq!(report.verified, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_stay_in_the_directory_until_keep_local_has_passed() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let id = stored(&store, &cast("kept", 10)).await;
    let mut shipper = shipper(&store, &server, PREFIX, Some(Duration::from_secs(86_400))).await;
    for _ in 0..2 {
        let report = shipper.pass().await;
        assert_eq!(report.failed, vec![], "{report:?}");
        assert_eq!(report.evicted, Vec::<String>::new(), "{report:?}");
    }
    assert!(local_cast(dir.path(), &id).exists());
    // And never without --s3-keep-local-days.
    let mut keeping = self::shipper(&store, &server, PREFIX, None).await;
    assert_eq!(keeping.pass().await.evicted, Vec::<String>::new());
    assert!(local_cast(dir.path(), &id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_not_evicted_when_the_bucket_holds_another_size() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let id = stored(&store, &cast("mismatch", 50)).await;
    let mut shipper = shipper(&store, &server, PREFIX, Some(Duration::ZERO)).await;
    assert_eq!(shipper.pass().await.shipped, vec![id.clone()]);
    // Someone replaced the bucket's copy with something shorter.
    archive(&server)
        .put(
            &format!("recordings/{id}.cast"),
            bytes::Bytes::from_static(b"{}\n"),
        )
        .await
        .expect("put");
    let report = shipper.pass().await;
    assert_eq!(report.evicted, Vec::<String>::new(), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, id);
    assert!(local_cast(dir.path(), &id).exists(), "the local copy stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_api_search_and_seal_status_serve_a_recording_kept_only_in_the_bucket() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = cast("xyzzy-in-the-bucket", 300);
    let id = {
        let store = Store::create(dir.path()).await.expect("store");
        let id = stored(&store, &data).await;
        let mut shipper = shipper(&store, &server, PREFIX, Some(Duration::ZERO)).await;
        ship_and_evict(&mut shipper, std::slice::from_ref(&id)).await;
        id
    };

    let mut options = common::options(&dir);
    options.storage_backend = Some(Arc::new(archive(&server)));
    let recorder = RecorderServer::start(options).await.expect("server");
    let url = format!("http://{}", recorder.addr());
    let client = common::client();

    let download = client
        .get(format!("{url}/api/recordings/{id}"))
        .send()
        .await
        .expect("GET cast");
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.expect("body"), data);

    let found: Value = get_json(
        &client,
        format!("{url}/api/recordings?q=xyzzy-in-the-bucket"),
    )
    .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["id"], id.as_str());

    let seal: Value = get_json(&client, format!("{url}/api/recordings/{id}/verify")).await;
    assert_eq!(seal["status"], "verified", "{seal}");
    assert_eq!(
        seal["storedIn"],
        format!("s3://{BUCKET}/{PREFIX}"),
        "{seal}"
    );

    // The bucket's copy changed: the seal status says so, naming the recording.
    archive(&server)
        .put(
            &format!("recordings/{id}.cast"),
            bytes::Bytes::from(cast("tampered-with-text!", 300)),
        )
        .await
        .expect("put");
    let seal: Value = get_json(&client, format!("{url}/api/recordings/{id}/verify")).await;
    assert_eq!(seal["status"], "failed", "{seal}");
    let reason = seal["problems"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("does not match its seal"), "{seal}");
    recorder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_directory_is_restored_from_the_bucket_and_goes_on_recording() {
    let server = server();
    let first = tempfile::tempdir().expect("tempdir");
    let key_dir = tempfile::tempdir().expect("key dir");
    let key_path = key_dir.path().join("signing-key.pem");
    let (old_ids, old_casts) = {
        let store = Store::create_sealed_with(first.path(), Some(&key_path))
            .await
            .expect("store");
        let mut ids = Vec::new();
        let mut casts = Vec::new();
        for word in ["first-host-one", "first-host-two"] {
            let data = cast(word, 20);
            ids.push(stored(&store, &data).await);
            casts.push(data);
        }
        let mut shipper = Shipper::open(first.path(), archive(&server), ShipperOptions::default())
            .await
            .expect("shipper");
        let report = shipper.pass().await;
        assert_eq!(report.failed, vec![], "{report:?}");
        (ids, casts)
    };
    let key = PublicKey::load(&seal::public_key_path(&key_path)).expect("key");

    // The first host is gone; a new one starts with an empty directory and the same key.
    let second = tempfile::tempdir().expect("tempdir");
    let report = archive(&server)
        .restore_index(second.path(), &key)
        .await
        .expect("restore");
    let mut restored = report.recordings.clone();
    restored.sort();
    let mut expected = old_ids.clone();
    expected.sort();
    assert_eq!(restored, expected, "{report:?}");
    assert_eq!(
        std::fs::read(second.path().join("chain.jsonl")).expect("chain"),
        std::fs::read(first.path().join("chain.jsonl")).expect("chain"),
    );

    // It lists and plays them from the bucket...
    let store = Store::create_sealed_with(second.path(), Some(&key_path))
        .await
        .expect("store")
        .read_through(Arc::new(archive(&server)));
    store.recover().await.expect("recover");
    assert_eq!(store.list().await.expect("list").len(), 2);
    for (id, data) in old_ids.iter().zip(&old_casts) {
        assert_eq!(&store.read_cast(id).await.expect("cast"), data);
    }
    // ... the shipper's first pass checks their bytes in the bucket and records them as kept
    // there, so `verify --dir` tells them from deleted ones...
    let mut shipper = shipper(&store, &server, PREFIX, None).await;
    let report = shipper.pass().await;
    assert_eq!(report.failed, vec![], "{report:?}");
    let mut adopted = report.evicted.clone();
    adopted.sort();
    assert_eq!(adopted, expected, "{report:?}");
    let verified = seal::verify(second.path(), &key, &[]).expect("verify");
    assert!(verified.is_clean(), "{:?}", verified.problems);
    assert_eq!(verified.in_bucket.len(), 2);
    // ... and goes on: a new recording is sealed after the restored chain and ships after it.
    let new_id = stored(&store, &cast("second-host", 5)).await;
    let report = shipper.pass().await;
    assert_eq!(report.failed, vec![], "{report:?}");
    assert_eq!(report.shipped, vec![new_id.clone()], "{report:?}");
    // A restart restores nothing more: the directory has its chain now.
    let again = archive(&server)
        .restore_index(second.path(), &key)
        .await
        .expect("restore");
    assert!(!again.restored, "{again:?}");
    let copy = tempfile::tempdir().expect("copy");
    archive(&server)
        .download_recordings(copy.path())
        .await
        .expect("download");
    let whole = seal::verify(copy.path(), &key, &[]).expect("verify bucket");
    assert!(whole.is_clean(), "{:?}", whole.problems);
    assert_eq!(whole.verified, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_sealed_by_another_key_is_not_restored() {
    let server = server();
    let first = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::create(first.path()).await.expect("store");
        stored(&store, &cast("other-key", 3)).await;
        let mut shipper = Shipper::open(first.path(), archive(&server), ShipperOptions::default())
            .await
            .expect("shipper");
        assert_eq!(shipper.pass().await.failed, vec![]);
    }
    let second = tempfile::tempdir().expect("tempdir");
    let other = SigningKey::load_or_create(&second.path().join("key.pem")).expect("key");
    let error = archive(&server)
        .restore_index(second.path(), other.public())
        .await
        .expect_err("another key's chain");
    assert!(error.to_string().contains("not this recorder's"), "{error}");
    assert!(!second.path().join("chain.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_entries_in_the_bucket_are_not_restored() {
    let server = server();
    let first = tempfile::tempdir().expect("tempdir");
    let (real, moved) = {
        let store = Store::create(first.path()).await.expect("store");
        let real = stored(&store, &cast("real", 3)).await;
        let moved = stored(&store, &cast("moved", 3)).await;
        let mut shipper = shipper(&store, &server, PREFIX, None).await;
        assert_eq!(shipper.pass().await.failed, vec![]);
        (real, moved)
    };
    // Someone with write access to the bucket adds a recording: a copy of the real one's index
    // entry and manifest under another ID (the manifest's signature is not for that ID).
    let forged = format!("{}x", &real[..real.len() - 1]);
    let forged = if forged == real {
        format!("{}y", &real[..real.len() - 1])
    } else {
        forged
    };
    assert!(recorder_server::is_valid_id(&forged), "{forged}");
    let bucket = archive(&server);
    for suffix in ["json", "manifest.json", "cast"] {
        let mut stream = bucket
            .get_stream(&format!("recordings/{real}.{suffix}"))
            .await
            .expect("get")
            .expect("object")
            .1;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.try_next().await.expect("chunk") {
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(bytes)
            .expect("utf-8")
            .replace(&real, &forged);
        bucket
            .put(&format!("recordings/{forged}.{suffix}"), text.into())
            .await
            .expect("put");
    }
    // ... and moves a genuine recording into another namespace's view by rewriting its index
    // entry (which is not signed; its seal is).
    let entry = bucket
        .get_small(&format!("recordings/{moved}.json"), 1 << 20)
        .await
        .expect("get")
        .expect("entry");
    let rewritten = String::from_utf8(entry.to_vec())
        .expect("utf-8")
        .replace("\"team-a\"", "\"team-b\"");
    assert!(rewritten.contains("team-b"), "{rewritten}");
    bucket
        .put(&format!("recordings/{moved}.json"), rewritten.into())
        .await
        .expect("put");

    let second = tempfile::tempdir().expect("tempdir");
    let report = bucket
        .restore_index(second.path(), &public_key(first.path()))
        .await
        .expect("restore");
    assert_eq!(report.recordings, vec![real.clone()], "{report:?}");
    let mut skipped: Vec<&str> = report.skipped.iter().map(|(id, _)| id.as_str()).collect();
    skipped.sort_unstable();
    let mut expected = vec![forged.as_str(), moved.as_str()];
    expected.sort_unstable();
    assert_eq!(skipped, expected, "{report:?}");
    let why_moved = &report
        .skipped
        .iter()
        .find(|(id, _)| id == &moved)
        .expect("moved")
        .1;
    assert!(why_moved.contains("namespace"), "{why_moved}");
    assert!(!second
        .path()
        .join("recordings")
        .join(format!("{forged}.json"))
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_a_recording_kept_only_in_the_bucket_there_too() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let id = stored(&store, &cast("old", 3)).await;
    let mut shipper = shipper(&store, &server, PREFIX, Some(Duration::ZERO)).await;
    ship_and_evict(&mut shipper, std::slice::from_ref(&id)).await;

    let in_ten_days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        + 10.0 * 86_400.0;
    // Without the bucket its bytes cannot be checked against the seal: it is kept.
    let swept = store.sweep_retention(7, in_ten_days).await.expect("sweep");
    assert_eq!(swept.removed, Vec::<String>::new(), "{swept:?}");
    let store = store.read_through(Arc::new(archive(&server)));
    let swept = store.sweep_retention(7, in_ten_days).await.expect("sweep");
    assert_eq!(swept.removed, vec![id.clone()], "{swept:?}");
    // The removal's signed chain line ships, and the bucket's objects go with it.
    let report = shipper.pass().await;
    assert_eq!(report.failed, vec![], "{report:?}");
    let left = archive(&server).list("recordings/").await.expect("list");
    assert_eq!(left, vec![], "the bucket still holds {left:?}");
    let verified = seal::verify(dir.path(), &public_key(dir.path()), &[]).expect("verify");
    assert!(verified.is_clean(), "{:?}", verified.problems);
    assert_eq!(verified.removed.len(), 1);
}
