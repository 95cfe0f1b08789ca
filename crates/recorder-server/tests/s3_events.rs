//! The event log (`DIR/events/YYYY-MM-DD.jsonl`) mirrored into a bucket of a real S3
//! implementation that is not ours (moto's server, installed by `cargo xtask ci`), and restored
//! from it: whole lines only, never shipped twice nor overwritten, a restart going on where the
//! bucket is, and a day whose objects do not follow one another never restored.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use common::s3::server;
use futures_util::TryStreamExt as _;
use recorder_server::s3::{restore_events, EventRestoreReport, EventShipper, S3Archive};
use testkit::s3_server::S3Server;

const PREFIX: &str = "cluster-a";

fn archive(server: &S3Server) -> S3Archive {
    common::s3::archive(server, PREFIX)
}
const DAY: &str = "2024-05-01";
const OTHER_DAY: &str = "2024-05-02";

/// The file of `day` in the event log of `root`.
fn day_file(root: &Path, day: &str) -> PathBuf {
    root.join("events").join(format!("{day}.jsonl"))
}

/// Appends `bytes` to the file of `day`, as the recorder's appender does.
fn append(root: &Path, day: &str, bytes: &[u8]) {
    std::fs::create_dir_all(root.join("events")).expect("events dir");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(day_file(root, day))
        .expect("open day file");
    file.write_all(bytes).expect("append");
}

/// One event line, `n` telling it apart.
fn event(n: usize) -> Vec<u8> {
    format!(
        "{{\"type\":\"kubernetes-api-request\",\"id\":\"{n}\",\"timestamp\":\"2024-05-01T10:00:{:02}Z\",\"kubernetes\":{{\"Verb\":\"get\",\"Namespace\":\"team-a\"}}}}\n",
        n % 60
    )
    .into_bytes()
}

/// The keys of the objects of `day`, in key order.
async fn keys(archive: &S3Archive, day: &str) -> Vec<String> {
    archive
        .list(&format!("events/{day}/"))
        .await
        .expect("list")
        .into_iter()
        .map(|object| object.key)
        .collect()
}

/// The object `key`, read back through the S3 API.
async fn object(archive: &S3Archive, key: &str) -> Vec<u8> {
    let (_, stream) = archive
        .get_stream(key)
        .await
        .expect("GET object")
        .expect("object exists");
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("object body");
    chunks.concat()
}

/// The objects of `day` concatenated in key order.
async fn shipped(archive: &S3Archive, day: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for key in keys(archive, day).await {
        bytes.extend(object(archive, &key).await);
    }
    bytes
}

fn key(day: &str, offset: usize) -> String {
    format!("events/{day}/{offset:020}.jsonl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_ship_in_whole_lines_as_objects_that_concatenate_to_the_day_file() {
    let server = server();
    let archive = archive(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut shipper = EventShipper::new();

    let first = [event(1), event(2)].concat();
    append(dir.path(), DAY, &first);
    let bytes = shipper.pass(&archive, dir.path()).await.expect("pass");
    assert_eq!(bytes, first.len() as u64);

    // A line being appended (no line end yet) waits.
    let second = event(3);
    let partial = event(4);
    let (head, tail) = partial.split_at(20);
    append(dir.path(), DAY, &second);
    append(dir.path(), DAY, head);
    let bytes = shipper.pass(&archive, dir.path()).await.expect("pass");
    assert_eq!(bytes, second.len() as u64);
    assert_eq!(
        keys(&archive, DAY).await,
        vec![key(DAY, 0), key(DAY, first.len())]
    );
    assert_eq!(object(&archive, &key(DAY, first.len())).await, second);

    append(dir.path(), DAY, tail);
    let bytes = shipper.pass(&archive, dir.path()).await.expect("pass");
    assert_eq!(bytes, partial.len() as u64);
    let local = std::fs::read(day_file(dir.path(), DAY)).expect("day file");
    assert_eq!(shipped(&archive, DAY).await, local);
    assert_eq!(keys(&archive, DAY).await.len(), 3);

    // Nothing new: nothing shipped again.
    assert_eq!(shipper.pass(&archive, dir.path()).await.expect("pass"), 0);
    assert_eq!(keys(&archive, DAY).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_larger_than_one_object_ships_in_pieces_cut_at_line_ends() {
    let server = server();
    let archive = archive(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    // About 12 MiB of lines, more than one object holds.
    let line = |n: usize| {
        let mut line = format!("{{\"id\":\"{n}\",\"pad\":\"").into_bytes();
        line.extend(std::iter::repeat_n(b'x', 1000 + n % 7));
        line.extend_from_slice(b"\"}\n");
        line
    };
    let day: Vec<u8> = (0..12_000).flat_map(line).collect();
    append(dir.path(), DAY, &day);
    let bytes = EventShipper::new()
        .pass(&archive, dir.path())
        .await
        .expect("pass");
    assert_eq!(bytes, day.len() as u64);
    let keys = keys(&archive, DAY).await;
    assert!(keys.len() >= 2, "{keys:?}");
    let mut concatenated = Vec::new();
    for key in &keys {
        let object = object(&archive, key).await;
        assert!(object.len() <= 8 * 1024 * 1024, "{key}: {}", object.len());
        assert_eq!(object.last(), Some(&b'\n'), "{key} ends mid-line");
        assert_eq!(*key, self::key(DAY, concatenated.len()));
        concatenated.extend(object);
    }
    assert!(concatenated == day, "the objects are not the day file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_shipper_goes_on_from_the_bucket_without_shipping_anything_twice() {
    let server = server();
    let archive = archive(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = [event(1), event(2)].concat();
    append(dir.path(), DAY, &first);
    EventShipper::new()
        .pass(&archive, dir.path())
        .await
        .expect("pass");
    // Something that is not the shipper's, sorted after its objects, changes nothing.
    archive
        .put(&format!("events/{DAY}/zz-notes.txt"), "hand-made".into())
        .await
        .expect("put");

    // A restart: nothing in memory, nothing local but the event log.
    let mut restarted = EventShipper::new();
    assert_eq!(restarted.pass(&archive, dir.path()).await.expect("pass"), 0);
    let second = event(3);
    append(dir.path(), DAY, &second);
    let bytes = restarted.pass(&archive, dir.path()).await.expect("pass");
    assert_eq!(bytes, second.len() as u64);
    assert_eq!(
        keys(&archive, DAY).await,
        vec![
            key(DAY, 0),
            key(DAY, first.len()),
            format!("events/{DAY}/zz-notes.txt")
        ]
    );
    assert_eq!(object(&archive, &key(DAY, first.len())).await, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_writes_back_missing_and_empty_day_files_and_leaves_the_others_alone() {
    let server = server();
    let archive = archive(&server);
    let source = tempfile::tempdir().expect("tempdir");
    let mut shipper = EventShipper::new();
    append(source.path(), DAY, &[event(1), event(2)].concat());
    shipper.pass(&archive, source.path()).await.expect("pass");
    append(source.path(), DAY, &event(3));
    append(source.path(), OTHER_DAY, &event(4));
    shipper.pass(&archive, source.path()).await.expect("pass");
    append(source.path(), "2024-05-03", &event(5));
    shipper.pass(&archive, source.path()).await.expect("pass");
    // Keys that are not the shipper's are skipped.
    for stray in [
        "events/2024-05-01/notes.txt",
        "events/not-a-day/00000000000000000000.jsonl",
    ] {
        archive.put(stray, "stray".into()).await.expect("put");
    }

    let empty = tempfile::tempdir().expect("tempdir");
    let report = restore_events(&archive, empty.path())
        .await
        .expect("restore");
    let mut bytes = 0;
    for day in [DAY, OTHER_DAY, "2024-05-03"] {
        let original = std::fs::read(day_file(source.path(), day)).expect("source");
        let restored = std::fs::read(day_file(empty.path(), day)).expect("restored");
        assert_eq!(restored, original, "{day}");
        bytes += original.len() as u64;
    }
    assert_eq!(report, EventRestoreReport { days: 3, bytes });
    assert_eq!(
        std::fs::read_dir(empty.path().join("events"))
            .expect("events dir")
            .count(),
        3,
        "only the day files"
    );

    // A day file with anything in it stays as it is (even shorter than the bucket's); an empty
    // one is written.
    let partly = tempfile::tempdir().expect("tempdir");
    append(partly.path(), DAY, b"{\"kept\":true}\n");
    append(partly.path(), OTHER_DAY, b"");
    let report = restore_events(&archive, partly.path())
        .await
        .expect("restore");
    assert_eq!(report.days, 2, "{report:?}");
    assert_eq!(
        std::fs::read(day_file(partly.path(), DAY)).expect("kept"),
        b"{\"kept\":true}\n"
    );
    assert_eq!(
        std::fs::read(day_file(partly.path(), OTHER_DAY)).expect("restored"),
        std::fs::read(day_file(source.path(), OTHER_DAY)).expect("source")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_file_cut_shorter_than_what_shipped_is_an_error_naming_it_and_other_days_still_ship()
{
    let server = server();
    let archive = archive(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    append(dir.path(), DAY, &[event(1), event(2)].concat());
    append(dir.path(), OTHER_DAY, &event(3));
    let mut shipper = EventShipper::new();
    shipper.pass(&archive, dir.path()).await.expect("pass");
    let shipped_before = shipped(&archive, DAY).await;

    std::fs::write(day_file(dir.path(), DAY), event(1)).expect("cut");
    append(dir.path(), OTHER_DAY, &event(4));
    // The shipper that shipped it, and one that reads the bucket afresh, both refuse.
    for shipper in [&mut shipper, &mut EventShipper::new()] {
        let error = shipper
            .pass(&archive, dir.path())
            .await
            .expect_err("a cut file is an error")
            .to_string();
        assert!(error.contains(DAY) && error.contains("cut"), "{error}");
    }
    // The later day went on; the cut one's objects are as they were.
    assert_eq!(
        shipped(&archive, OTHER_DAY).await,
        std::fs::read(day_file(dir.path(), OTHER_DAY)).expect("other day")
    );
    assert_eq!(shipped(&archive, DAY).await, shipped_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_and_files_not_named_as_days_never_leave_the_host() {
    let server = server();
    let archive = archive(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("signing-key.pem");
    std::fs::write(&secret, b"-----BEGIN PRIVATE KEY-----\n").expect("secret");
    append(dir.path(), DAY, &event(1));
    let events = dir.path().join("events");
    std::os::unix::fs::symlink(&secret, day_file(dir.path(), OTHER_DAY)).expect("symlink");
    for odd in [
        "notes.jsonl",
        "2024-5-01.jsonl",
        "2024-05-03.jsonl.bak",
        ".2024-05-04.jsonl",
        "2024-05-05.JSONL",
    ] {
        std::fs::write(events.join(odd), event(2)).expect("odd file");
    }
    std::fs::create_dir(events.join("2024-05-06.jsonl")).expect("directory");

    let bytes = EventShipper::new()
        .pass(&archive, dir.path())
        .await
        .expect("pass");
    assert_eq!(bytes, event(1).len() as u64);
    let everything: Vec<String> = archive
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|object| object.key)
        .collect();
    assert_eq!(everything, vec![key(DAY, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_day_whose_objects_have_a_gap() {
    let server = server();
    let archive = archive(&server);
    let source = tempfile::tempdir().expect("tempdir");
    let mut shipper = EventShipper::new();
    for n in 1..=3 {
        append(source.path(), DAY, &event(n));
        shipper.pass(&archive, source.path()).await.expect("pass");
    }
    append(source.path(), OTHER_DAY, &event(4));
    shipper.pass(&archive, source.path()).await.expect("pass");
    let day_keys = keys(&archive, DAY).await;
    assert_eq!(day_keys.len(), 3);
    archive.delete(&day_keys[1]).await.expect("delete");

    let empty = tempfile::tempdir().expect("tempdir");
    let error = restore_events(&archive, empty.path())
        .await
        .expect_err("a gap is refused")
        .to_string();
    assert!(error.contains(DAY), "{error}");
    assert!(!day_file(empty.path(), DAY).exists(), "{DAY} was written");
    // The other day was restored, and nothing else was left behind.
    assert_eq!(
        std::fs::read(day_file(empty.path(), OTHER_DAY)).expect("restored"),
        event(4)
    );
    assert_eq!(
        std::fs::read_dir(empty.path().join("events"))
            .expect("events dir")
            .count(),
        1
    );

    // The first object gone is a gap too.
    archive.delete(&day_keys[0]).await.expect("delete");
    let error = restore_events(&archive, empty.path())
        .await
        .expect_err("a missing start is refused")
        .to_string();
    assert!(error.contains(DAY), "{error}");
    assert!(!day_file(empty.path(), DAY).exists(), "{DAY} was written");
}
