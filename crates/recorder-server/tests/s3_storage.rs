//! kube-recorder's S3 building blocks against a real S3 implementation that is not ours (moto's
//! server, installed by `cargo xtask ci`): objects under a prefix, and growing files uploaded
//! part by part, resumed after a restart, and started again when the bucket forgot the upload.

mod common;

use std::io::Write as _;
use std::path::Path;

use common::s3::{archive, server, BUCKET};
use futures_util::TryStreamExt as _;
use recorder_server::s3::{
    S3Archive, S3Error, S3Options, SpoolUpload, UploadJournal, MIN_PART_SIZE,
};

/// Bytes that differ everywhere, so a part stored twice or out of order shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn stored(archive: &S3Archive, key: &str) -> Vec<u8> {
    let (size, stream) = archive
        .get_stream(key)
        .await
        .expect("S3 test step")
        .expect("object exists");
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("S3 test step");
    let bytes = chunks.concat();
    assert_eq!(size, bytes.len() as u64);
    bytes
}

fn append(file: &Path, bytes: &[u8]) {
    let mut handle = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .expect("S3 test step");
    handle.write_all(bytes).expect("S3 test step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_file_is_uploaded_part_by_part_and_stored_exactly() {
    let server = server();
    let archive = archive(&server, "team/recorder");
    archive.check().await.expect("S3 test step");
    let dir = tempfile::tempdir().expect("S3 test step");
    let file = dir.path().join("a.cast");
    let data = pattern(2 * MIN_PART_SIZE as usize + 777_777, 1);
    let mut upload =
        SpoolUpload::new(&archive, "recordings/a.cast", MIN_PART_SIZE).expect("S3 test step");
    let mut written = 0;
    let mut parts_seen = Vec::new();
    for chunk in data.chunks(1_000_000) {
        append(&file, chunk);
        written += chunk.len() as u64;
        upload.advance(&file, written).await.expect("S3 test step");
        parts_seen.push(upload.journal().parts.len());
    }
    // Parts go up while the file grows, not at the end.
    assert_eq!(parts_seen[4], 0, "{parts_seen:?}");
    assert_eq!(parts_seen[5], 1, "{parts_seen:?}");
    assert_eq!(
        *parts_seen.last().expect("S3 test step"),
        2,
        "{parts_seen:?}"
    );
    upload.finish(&file, written).await.expect("S3 test step");
    assert!(stored(&archive, "recordings/a.cast").await == data);
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("S3 test step"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_resumes_from_its_journal_after_a_restart() {
    let server = server();
    let archive = archive(&server, "");
    let dir = tempfile::tempdir().expect("S3 test step");
    let file = dir.path().join("b.cast");
    let data = pattern(2 * MIN_PART_SIZE as usize + 10, 2);
    append(&file, &data[..MIN_PART_SIZE as usize + 5]);
    let mut upload =
        SpoolUpload::new(&archive, "recordings/b.cast", MIN_PART_SIZE).expect("S3 test step");
    assert!(upload
        .advance(&file, MIN_PART_SIZE + 5)
        .await
        .expect("S3 test step"));
    // The recorder stops here; what it kept is the journal, as JSON.
    let saved = serde_json::to_string(upload.journal()).expect("S3 test step");
    drop(upload);
    append(&file, &data[MIN_PART_SIZE as usize + 5..]);
    let journal: UploadJournal = serde_json::from_str(&saved).expect("S3 test step");
    assert_eq!(journal.parts.len(), 1);
    let resumed = SpoolUpload::resume(&archive, journal).expect("S3 test step");
    resumed
        .finish(&file, data.len() as u64)
        .await
        .expect("S3 test step");
    assert!(stored(&archive, "recordings/b.cast").await == data);
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("S3 test step"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_bucket_forgot_is_started_again_from_the_file() {
    let server = server();
    let archive = archive(&server, "x");
    let dir = tempfile::tempdir().expect("S3 test step");
    let file = dir.path().join("c.cast");
    let data = pattern(MIN_PART_SIZE as usize + 4096, 3);
    append(&file, &data);
    let mut upload =
        SpoolUpload::new(&archive, "recordings/c.cast", MIN_PART_SIZE).expect("S3 test step");
    upload
        .advance(&file, data.len() as u64)
        .await
        .expect("S3 test step");
    // A lifecycle rule (or an operator) aborts the upload while the recorder is down.
    SpoolUpload::resume(&archive, upload.journal().clone())
        .expect("S3 test step")
        .abort()
        .await
        .expect("S3 test step");
    upload
        .finish(&file, data.len() as u64)
        .await
        .expect("S3 test step");
    assert!(stored(&archive, "recordings/c.cast").await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_smaller_than_a_part_is_one_put_and_an_aborted_upload_stores_nothing() {
    let server = server();
    let archive = archive(&server, "p");
    let dir = tempfile::tempdir().expect("S3 test step");
    let file = dir.path().join("d.cast");
    let data = pattern(70_000, 4);
    append(&file, &data);
    let mut upload =
        SpoolUpload::new(&archive, "recordings/d.cast", MIN_PART_SIZE).expect("S3 test step");
    assert!(!upload
        .advance(&file, data.len() as u64)
        .await
        .expect("S3 test step"));
    assert_eq!(upload.journal().upload_id, None);
    upload
        .finish(&file, data.len() as u64)
        .await
        .expect("S3 test step");
    assert!(stored(&archive, "recordings/d.cast").await == data);

    let big = dir.path().join("e.cast");
    append(&big, &pattern(MIN_PART_SIZE as usize, 5));
    let mut upload =
        SpoolUpload::new(&archive, "recordings/e.cast", MIN_PART_SIZE).expect("S3 test step");
    assert!(upload
        .advance(&big, MIN_PART_SIZE)
        .await
        .expect("S3 test step"));
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("S3 test step"),
        vec!["p/recordings/e.cast"]
    );
    upload.abort().await.expect("S3 test step");
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("S3 test step"),
        Vec::<String>::new()
    );
    assert!(archive
        .get_stream("recordings/e.cast")
        .await
        .expect("S3 test step")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_put_listed_read_and_removed_under_the_prefix_only() {
    let server = server();
    let mine = archive(&server, "/team-a/");
    let theirs = archive(&server, "team-b");
    mine.put("recordings/1.json", "{\"id\":1}".into())
        .await
        .expect("S3 test step");
    mine.put("recordings/2.json", "{\"id\":2}".into())
        .await
        .expect("S3 test step");
    mine.put("chain/0001.json", "{}".into())
        .await
        .expect("S3 test step");
    theirs
        .put("recordings/9.json", "{}".into())
        .await
        .expect("S3 test step");

    let listed: Vec<String> = mine
        .list("recordings/")
        .await
        .expect("S3 test step")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, ["recordings/1.json", "recordings/2.json"]);
    let everything = mine.list("").await.expect("S3 test step");
    assert_eq!(everything.len(), 3);
    assert_eq!(everything[0].key, "chain/0001.json");
    assert_eq!(everything[0].size, 2);

    let one = mine
        .get_small("recordings/1.json", 1024)
        .await
        .expect("S3 test step");
    assert_eq!(one.as_deref(), Some(&b"{\"id\":1}"[..]));
    match mine.get_small("recordings/1.json", 4).await {
        Err(S3Error::TooLarge {
            size: 8, limit: 4, ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        mine.get_small("recordings/9.json", 1024)
            .await
            .expect("S3 test step"),
        None
    );

    mine.delete("recordings/1.json")
        .await
        .expect("S3 test step");
    mine.delete("recordings/1.json")
        .await
        .expect("S3 test step");
    assert_eq!(
        mine.get_small("recordings/1.json", 1024)
            .await
            .expect("S3 test step"),
        None
    );
    assert_eq!(theirs.list("").await.expect("S3 test step").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_or_credentials_file_is_a_clear_error() {
    let server = server();
    let mut options = S3Options::new("no-such-bucket");
    options.endpoint = Some(server.endpoint.clone());
    options.path_style = true;
    options.credentials_file = Some("/nonexistent/credentials".into());
    let error = S3Archive::new(&options)
        .expect_err("this must fail")
        .to_string();
    assert!(error.contains("/nonexistent/credentials"), "{error}");

    let credentials = tempfile::NamedTempFile::new().expect("S3 test step");
    std::fs::write(
        credentials.path(),
        "[default]\naws_access_key_id = a\naws_secret_access_key = b\n",
    )
    .expect("S3 test step");
    options.credentials_file = Some(credentials.path().to_owned());
    let archive = S3Archive::new(&options).expect("S3 test step");
    let error = archive
        .check()
        .await
        .expect_err("this must fail")
        .to_string();
    assert!(error.contains("no-such-bucket"), "{error}");

    options.endpoint = Some("ftp://127.0.0.1:1".into());
    let error = S3Archive::new(&options)
        .expect_err("this must fail")
        .to_string();
    assert!(error.contains("neither https nor http"), "{error}");
}
