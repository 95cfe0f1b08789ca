//! `--storage s3`: the recording directory mirrored into a bucket of a real S3 implementation
//! that is not ours (moto's server, installed by `cargo xtask ci`). Recordings ship byte for byte
//! with their manifests, index entries and the chain; a growing recording is uploaded in parts
//! before it ends; one cut off by a crash ships, marked incomplete, after the next start.

mod common;

use std::path::Path;

use common::s3::{credentials_file, server, stored, BUCKET};
use futures_util::TryStreamExt as _;
use recorder_server::s3::{S3Archive, S3Options, Shipper, ShipperOptions, MIN_PART_SIZE};
use recorder_server::{Protocol, RecordingEnd, Store};
use serde_json::Value;
use testkit::s3_server::S3Server;

const PREFIX: &str = "cluster-a";

fn archive(server: &S3Server) -> S3Archive {
    common::s3::archive(server, PREFIX)
}

async fn shipper(dir: &Path, server: &S3Server) -> Shipper {
    let mut options = ShipperOptions::default();
    options.part_size = MIN_PART_SIZE;
    Shipper::open(dir, archive(server), options)
        .await
        .expect("shipper opens")
}

/// The object `key` below the prefix, read back through the S3 API.
async fn object(server: &S3Server, key: &str) -> Option<Vec<u8>> {
    let found = archive(server).get_stream(key).await.expect("GET object");
    let (_, stream) = found?;
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("object body");
    Some(chunks.concat())
}

/// IDs in order: recordings started in the same second are not ordered by their IDs.
fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

fn local(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join("recordings").join(name)).expect("local file")
}

/// A cast header and `lines` output events of `width` characters each.
fn cast(lines: usize, width: usize) -> Vec<u8> {
    let mut cast = br#"{"version":2,"width":80,"height":24,"timestamp":1700000000,"srcNodeUser":"alice@example.com","kubernetes":{"PodName":"web","Namespace":"team-a","Container":"main","SessionType":"exec"}}"#.to_vec();
    cast.push(b'\n');
    for line in 0..lines {
        let text: String = std::iter::repeat_n((b'a' + (line % 26) as u8) as char, width).collect();
        cast.extend_from_slice(format!("[{}.5,\"o\",\"{text}\\r\\n\"]\n", line).as_bytes());
    }
    cast
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_recordings_ship_byte_for_byte_with_manifest_index_entry_and_chain() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut shipper = shipper(dir.path(), &server).await;
    let mut ids = Vec::new();
    for lines in [3, 40] {
        ids.push(stored(&store, &cast(lines, 60)).await);
    }
    let report = shipper.pass().await;
    assert_eq!(report.failed, vec![], "{report:?}");
    assert_eq!(sorted(&report.shipped), sorted(&ids), "{report:?}");
    for id in &ids {
        for name in [
            format!("{id}.cast"),
            format!("{id}.manifest.json"),
            format!("{id}.json"),
        ] {
            assert_eq!(
                object(&server, &format!("recordings/{name}"))
                    .await
                    .as_deref(),
                Some(local(dir.path(), &name).as_slice()),
                "{name}"
            );
        }
        let entry: Value = serde_json::from_slice(
            &object(&server, &format!("recordings/{id}.json"))
                .await
                .expect("entry"),
        )
        .expect("json");
        assert_eq!(entry["outcome"], "complete");
    }
    // The chain's objects, concatenated in key order, are the chain.
    let mut chain = Vec::new();
    for listed in archive(&server).list("chain/").await.expect("list") {
        chain.extend(object(&server, &listed.key).await.expect("chain object"));
    }
    let local_chain = std::fs::read(dir.path().join("chain.jsonl")).expect("chain");
    assert_eq!(chain, local_chain);
    assert_eq!(chain.iter().filter(|&&b| b == b'\n').count(), 2);

    // Nothing new: a pass ships nothing again.
    let again = shipper.pass().await;
    assert_eq!(
        (again.shipped.len(), again.chain_bytes),
        (0, 0),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_recording_is_uploaded_in_parts_before_it_ends() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut shipper = shipper(dir.path(), &server).await;
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    let id = writer.id().to_owned();
    let data = cast(90_000, 70);
    assert!(data.len() as u64 > MIN_PART_SIZE + 1_000_000);
    writer
        .write(&data[..(MIN_PART_SIZE as usize + 1_000_000)])
        .await
        .expect("write");
    writer.flush().await.expect("flush");
    let report = shipper.pass().await;
    assert_eq!(report.advanced, vec![id.clone()], "{report:?}");
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("uploads"),
        vec![format!("{PREFIX}/recordings/{id}.cast")]
    );
    assert_eq!(
        object(&server, &format!("recordings/{id}.json")).await,
        None,
        "not finished yet"
    );
    writer
        .write(&data[(MIN_PART_SIZE as usize + 1_000_000)..])
        .await
        .expect("write");
    writer.finish(RecordingEnd::Complete).await.expect("finish");
    let report = shipper.pass().await;
    assert_eq!(report.shipped, vec![id.clone()], "{report:?}");
    assert!(
        object(&server, &format!("recordings/{id}.cast"))
            .await
            .expect("cast")
            == data
    );
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("uploads"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_off_by_a_crash_ships_marked_incomplete_after_the_next_start() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = cast(90_000, 70);
    let cut = MIN_PART_SIZE as usize + 2_000_000;
    let id = {
        let store = Store::create(dir.path()).await.expect("store");
        let mut shipper = shipper(dir.path(), &server).await;
        let mut writer = store
            .create_recording(Protocol::V2)
            .await
            .expect("recording");
        writer.write(&data[..cut]).await.expect("write");
        writer.flush().await.expect("flush");
        // One part goes up, then the recorder dies: the writer is dropped unfinished and the
        // shipper with its in-memory state is gone; what is left is on disk.
        assert_eq!(shipper.pass().await.advanced.len(), 1);
        let id = writer.id().to_owned();
        std::mem::forget(writer);
        id
    };
    // The next start: recovery marks it incomplete and seals it; the shipper resumes its upload.
    let store = Store::create(dir.path()).await.expect("store");
    let recovered = store.recover().await.expect("recover");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let mut shipper = shipper(dir.path(), &server).await;
    let report = shipper.pass().await;
    assert_eq!(report.shipped, vec![id.clone()], "{report:?}");
    let entry: Value = serde_json::from_slice(
        &object(&server, &format!("recordings/{id}.json"))
            .await
            .expect("entry shipped"),
    )
    .expect("json");
    assert_eq!(entry["outcome"], "incomplete", "{entry}");
    let shipped = object(&server, &format!("recordings/{id}.cast"))
        .await
        .expect("cast shipped");
    assert!(shipped == local(dir.path(), &format!("{id}.cast")));
    assert!(
        shipped.len() >= cut,
        "everything written before the crash: {}",
        shipped.len()
    );
    assert!(data.starts_with(&shipped));
    assert!(object(&server, &format!("recordings/{id}.manifest.json"))
        .await
        .is_some());
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("uploads"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bucket_is_retried_and_nothing_local_is_lost() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut options = S3Options::new("no-such-bucket");
    options.endpoint = Some(server.endpoint.clone());
    options.path_style = true;
    options.credentials_file = Some(credentials_file());
    let mut wrong = Shipper::open(
        dir.path(),
        S3Archive::new(&options).expect("archive"),
        ShipperOptions::default(),
    )
    .await
    .expect("shipper");
    let id = stored(&store, &cast(3, 10)).await;
    let report = wrong.pass().await;
    assert_eq!(report.shipped, Vec::<String>::new());
    assert!(
        report
            .failed
            .iter()
            .any(|(what, why)| what == &id && why.contains("no-such-bucket")),
        "{report:?}"
    );
    // The right bucket later: it ships then.
    let mut right = shipper(dir.path(), &server).await;
    assert_eq!(right.pass().await.shipped, vec![id.clone()]);
    assert!(local(dir.path(), &format!("{id}.cast")).starts_with(b"{\"version\":2"));
}

fn kube_recorder() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-recorder"));
    for name in [
        "KUBE_RECORDER_DIR",
        "KUBE_RECORDER_LISTEN",
        "KUBE_RECORDER_STORAGE",
        "KUBE_RECORDER_S3_BUCKET",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command.kill_on_drop(true);
    command
}

fn s3_flags(server: &S3Server, bucket: &str) -> Vec<String> {
    [
        "--storage",
        "s3",
        "--s3-bucket",
        bucket,
        "--s3-prefix",
        PREFIX,
        "--s3-endpoint",
        &server.endpoint,
        "--s3-path-style",
        "--s3-credentials-file",
        credentials_file().to_str().expect("UTF-8 path"),
    ]
    .iter()
    .map(|flag| flag.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_storage_s3_ships_an_upload_cut_at_shutdown_in_its_last_pass() {
    use tokio::io::AsyncBufReadExt as _;
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = kube_recorder()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "0.1",
            "--dir",
        ])
        .arg(dir.path())
        .args(s3_flags(&server, BUCKET))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("listening line");
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));

    // An upload in flight over h2c, acknowledged, then SIGTERM.
    let data = cast(5, 20);
    let (mut sender, _driver) = common::h2c(addr).await;
    let (chunks, body) = common::channel_body();
    let request = http::Request::post(format!("http://{addr}/v2/record"))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = common::NdjsonReader::new(response.into_body());
    chunks
        .send(bytes::Bytes::copy_from_slice(&data))
        .await
        .expect("send");
    while acks.next().await.expect("ack")["ack"].as_u64() < Some(data.len() as u64) {}
    let pid = child.id().expect("pid").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().await.expect("exit");
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    drop(chunks);

    // The last pass shipped it, cut and marked so.
    let listed = archive(&server).list("recordings/").await.expect("list");
    let index = listed
        .iter()
        .find(|object| object.key.ends_with(".json") && !object.key.ends_with(".manifest.json"))
        .unwrap_or_else(|| panic!("no index entry shipped: {listed:?}"));
    let entry: Value =
        serde_json::from_slice(&object(&server, &index.key).await.expect("entry")).expect("json");
    assert_eq!(entry["outcome"], "incomplete", "{entry}");
    let id = entry["id"].as_str().expect("id");
    assert_eq!(
        object(&server, &format!("recordings/{id}.cast"))
            .await
            .as_deref(),
        Some(data.as_slice())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_s3_flags_it_cannot_use_and_a_bucket_it_cannot_reach() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: Vec<String>| {
        let dir = dir.path().to_owned();
        async move {
            let output = kube_recorder()
                .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
                .arg(dir)
                .args(args)
                .output()
                .await
                .expect("run");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let (ok, stderr) = run(vec!["--s3-bucket".into(), "b".into()]).await;
    assert!(!ok && stderr.contains("need --storage s3"), "{stderr}");
    let (ok, stderr) = run(vec!["--storage".into(), "s3".into()]).await;
    assert!(!ok && stderr.contains("needs --s3-bucket"), "{stderr}");
    let (ok, stderr) = run(s3_flags(&server, "missing-bucket")).await;
    assert!(!ok && stderr.contains("missing-bucket"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_bucket_and_names_a_changed_or_deleted_recording() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut ids = Vec::new();
    for lines in [2, 5] {
        ids.push(stored(&store, &cast(lines, 30)).await);
    }
    let report = shipper(dir.path(), &server).await.pass().await;
    assert_eq!(sorted(&report.shipped), sorted(&ids), "{report:?}");
    let public_key = dir.path().join("signing-key.pem.pub");
    let verify = || {
        let public_key = public_key.clone();
        let flags = s3_flags(&server, BUCKET);
        async move {
            let output = kube_recorder()
                .args(["verify", "--public-key"])
                .arg(&public_key)
                .args(&flags[2..])
                .output()
                .await
                .expect("run verify");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let (ok, stdout, stderr) = verify().await;
    assert!(ok, "untouched bucket: {stdout}{stderr}");
    assert!(stderr.contains("2 recordings verified"), "{stderr}");

    // One byte changed in a cast, in the bucket.
    let key = format!("recordings/{}.cast", ids[0]);
    let mut changed = object(&server, &key).await.expect("cast");
    let last = changed.len() - 3;
    changed[last] ^= 0x01;
    archive(&server)
        .put(&key, changed.into())
        .await
        .expect("put");
    let (ok, stdout, stderr) = verify().await;
    assert!(!ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(&ids[0]),
        "names the changed recording: {stdout}"
    );
    assert!(!stdout.contains(&ids[1]), "{stdout}");

    // A recording deleted from the bucket.
    for suffix in ["cast", "json", "manifest.json"] {
        archive(&server)
            .delete(&format!("recordings/{}.{suffix}", ids[1]))
            .await
            .expect("delete");
    }
    let (ok, stdout, stderr) = verify().await;
    assert!(!ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(&ids[1]),
        "names the deleted recording: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removals_signed_by_the_recorder_are_carried_out_in_the_bucket() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut shipper = shipper(dir.path(), &server).await;
    let public_key = dir.path().join("signing-key.pem.pub");
    shipper.trust_key(recorder_server::seal::PublicKey::load(&public_key).expect("public key"));
    let mut ids = Vec::new();
    for lines in [2, 3] {
        ids.push(stored(&store, &cast(lines, 30)).await);
    }
    store
        .hold(&ids[1], Some("legal hold".into()))
        .await
        .expect("hold");
    assert_eq!(sorted(&shipper.pass().await.shipped), sorted(&ids));

    // Ten days later, retention of one day removes the first; the second is held.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let later = now + 10.0 * 86_400.0;
    let swept = store.sweep_retention(1, later).await.expect("sweep");
    assert_eq!(swept.removed, vec![ids[0].clone()]);
    let report = shipper.pass().await;
    assert_eq!(report.failed, vec![], "{report:?}");
    assert!(report.chain_bytes > 0);
    for suffix in ["cast", "manifest.json", "json"] {
        assert_eq!(
            object(&server, &format!("recordings/{}.{suffix}", ids[0])).await,
            None,
            "{suffix}"
        );
        assert!(object(&server, &format!("recordings/{}.{suffix}", ids[1]))
            .await
            .is_some());
    }
    // The bucket verifies: the removal is recorded, not a deletion.
    let output = kube_recorder()
        .args(["verify", "--public-key"])
        .arg(&public_key)
        .args(&s3_flags(&server, BUCKET)[2..])
        .output()
        .await
        .expect("verify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{stderr}{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains("1 removed on purpose"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_line_without_the_recorders_signature_deletes_nothing_in_the_bucket() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut shipper = shipper(dir.path(), &server).await;
    shipper.trust_key(
        recorder_server::seal::PublicKey::load(&dir.path().join("signing-key.pem.pub"))
            .expect("public key"),
    );
    let id = stored(&store, &cast(2, 30)).await;
    assert_eq!(shipper.pass().await.shipped, vec![id.clone()]);
    // Someone who can write the directory, but has no key, appends a removal.
    let forged = format!(
        "{{\"seq\":2,\"type\":\"removed\",\"id\":\"{id}\",\"reason\":\"cover-up\",\"prev\":\"{}\",\"sig\":\"AAAA\"}}\n",
        "0".repeat(64)
    );
    let mut chain = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("chain.jsonl"))
        .expect("chain");
    std::io::Write::write_all(&mut chain, forged.as_bytes()).expect("append");
    shipper.pass().await;
    assert!(object(&server, &format!("recordings/{id}.cast"))
        .await
        .is_some());
    assert!(object(&server, &format!("recordings/{id}.json"))
        .await
        .is_some());
}

/// A shipper trusting the recorder's key, as `serve` makes it.
async fn trusting_shipper(dir: &Path, server: &S3Server) -> Shipper {
    let mut shipper = shipper(dir, server).await;
    shipper.trust_key(
        recorder_server::seal::PublicKey::load(&dir.join("signing-key.pem.pub"))
            .expect("public key"),
    );
    shipper
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_the_recorder_did_not_seal_never_leave_the_host() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut shipper = trusting_shipper(dir.path(), &server).await;
    let recordings = dir.path().join("recordings");
    // Someone who can write the directory, but has no key, dresses up secrets as recordings: a
    // symlink to the signing key with an index entry and a made-up manifest, and a regular copy
    // of it with an index entry and no manifest.
    let secret = std::fs::read(dir.path().join("signing-key.pem")).expect("key");
    let (linked, copied) = ("20261206T120000Z-0badc0de", "20261206T120000Z-0badf00d");
    std::os::unix::fs::symlink(
        dir.path().join("signing-key.pem"),
        recordings.join(format!("{linked}.cast")),
    )
    .expect("symlink");
    std::fs::write(recordings.join(format!("{copied}.cast")), &secret).expect("copy");
    for id in [linked, copied] {
        std::fs::write(
            recordings.join(format!("{id}.json")),
            format!(
                r#"{{"id":"{id}","protocol":"v2","outcome":"complete","receivedAt":1,"bytes":1}}"#
            ),
        )
        .expect("entry");
    }
    std::fs::write(
        recordings.join(format!("{linked}.manifest.json")),
        format!(r#"{{"version":2,"id":"{linked}","file":"{linked}.cast","sig":"AAAA"}}"#),
    )
    .expect("manifest");
    // And a real recording beside them.
    let real = stored(&store, &cast(2, 30)).await;

    let report = shipper.pass().await;
    assert_eq!(report.shipped, vec![real.clone()], "{report:?}");
    let failed: Vec<&str> = report.failed.iter().map(|(id, _)| id.as_str()).collect();
    assert!(failed.contains(&copied), "{report:?}");
    let listed = archive(&server).list("recordings/").await.expect("list");
    assert!(
        listed.iter().all(|object| object.key.contains(&real)),
        "only the sealed recording is in the bucket: {listed:?}"
    );
    assert_eq!(
        server.multipart_uploads(BUCKET).expect("uploads"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_bucket_holds_is_never_overwritten_from_the_directory() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let mut shipper = trusting_shipper(dir.path(), &server).await;
    let id = stored(&store, &cast(4, 30)).await;
    assert_eq!(shipper.pass().await.shipped, vec![id.clone()]);
    let original = object(&server, &format!("recordings/{id}.cast"))
        .await
        .expect("cast");
    let chain_objects = archive(&server).list("chain/").await.expect("list").len();

    // The shipper's local state is deleted and the cast rewritten: the next start must not
    // replace the bucket's copy, nor ship the chain again from its start.
    drop(shipper);
    std::fs::remove_dir_all(dir.path().join("s3")).expect("remove state");
    let cast_path = dir.path().join("recordings").join(format!("{id}.cast"));
    let mut forged = std::fs::read(&cast_path).expect("cast");
    forged.extend_from_slice(b"[9.0,\"o\",\"forged\\r\\n\"]\n");
    std::fs::write(&cast_path, &forged).expect("forge");
    let mut restarted = trusting_shipper(dir.path(), &server).await;
    let report = restarted.pass().await;
    assert_eq!(report.shipped, Vec::<String>::new(), "{report:?}");
    assert!(
        report.failed.iter().any(|(failed, _)| failed == &id),
        "{report:?}"
    );
    assert_eq!(report.chain_bytes, 0, "{report:?}");
    assert!(
        object(&server, &format!("recordings/{id}.cast"))
            .await
            .expect("cast")
            == original
    );
    assert_eq!(
        archive(&server).list("chain/").await.expect("list").len(),
        chain_objects
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_cut_by_a_crash_starts_the_upload_again() {
    let server = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("store");
    let data = cast(90_000, 70);
    let id = stored(&store, &data).await;
    std::fs::create_dir_all(dir.path().join("s3/uploads")).expect("state");
    std::fs::write(
        dir.path().join(format!("s3/uploads/{id}.cast.json")),
        b"{\"key\":\"recordings/",
    )
    .expect("cut journal");
    let mut shipper = trusting_shipper(dir.path(), &server).await;
    assert_eq!(shipper.pass().await.shipped, vec![id.clone()]);
    assert!(
        object(&server, &format!("recordings/{id}.cast"))
            .await
            .expect("cast")
            == data
    );
}
