//! Sealing and `kube-recorder verify`: untouched storage passes; each kind of tampering fails,
//! naming the recording and the reason.

mod common;

use std::path::{Path, PathBuf};

use common::fixture;
use recorder_server::seal::{self, Manifest, PublicKey};
use recorder_server::{Outcome, Protocol, RecordingEnd, RecordingKind, RecordingMeta, Store};
use tokio::process::Command;

/// Runs `kube-recorder verify --dir DIR ARGS...`; returns (success, stdout, stderr).
async fn verify(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-recorder"))
        .env_remove("KUBE_RECORDER_DIR")
        .env_remove("RUST_LOG")
        .arg("verify")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .await
        .expect("run kube-recorder verify");
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn store_bytes(store: &Store, kind: RecordingKind, pieces: &[&[u8]]) -> RecordingMeta {
    let mut writer = store
        .create_recording_of(kind, Protocol::V2)
        .await
        .expect("recording");
    for piece in pieces {
        writer.write(piece).await.expect("write");
    }
    writer.finish(RecordingEnd::Complete).await.expect("finish")
}

/// A cast larger than several hash chunks, written in uneven pieces.
fn big_cast() -> Vec<u8> {
    let mut cast = br#"{"version":2,"width":80,"height":24,"timestamp":1700000000,"srcNodeUser":"bob@example.com","kubernetes":{"PodName":"web-0","Namespace":"prod","SessionType":"exec"}}"#.to_vec();
    cast.push(b'\n');
    for i in 0..6000 {
        cast.extend(
            format!("[{}.5, \"o\", \"line {i} of the output\\r\\n\"]\n", i / 100).as_bytes(),
        );
    }
    cast
}

/// A directory with three sealed recordings (two casts, one of several chunks, and a capture)
/// and one incomplete cast; their IDs in upload order.
async fn sealed_store(dir: &Path) -> (Store, Vec<RecordingMeta>) {
    let store = Store::create(dir).await.expect("create");
    let mut metas = Vec::new();
    metas.push(store_bytes(&store, RecordingKind::Cast, &[&fixture("session.cast")]).await);
    let big = big_cast();
    let pieces: Vec<&[u8]> = big.chunks(7919).collect();
    metas.push(store_bytes(&store, RecordingKind::Cast, &pieces).await);
    let capture = br#"{"format":"kap-port-forward/1","port":8080}
{"t":0.1,"d":"c","b":"aGVsbG8="}
"#;
    metas.push(store_bytes(&store, RecordingKind::PortForwardCapture, &[capture]).await);
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    writer
        .write(&fixture("tagged.cast")[..100])
        .await
        .expect("write");
    metas.push(
        writer
            .finish(RecordingEnd::Incomplete("upload cut off: reset".into()))
            .await
            .expect("finish"),
    );
    (store, metas)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn recording_file(dir: &Path, meta: &RecordingMeta) -> PathBuf {
    let suffix = match meta.kind {
        RecordingKind::PortForwardCapture => "pfcap",
        _ => "cast",
    };
    dir.join("recordings").join(format!("{}.{suffix}", meta.id))
}

/// The problem lines naming `id`.
fn lines_of<'a>(out: &'a str, id: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.starts_with(&format!("{id}: ")))
        .collect()
}

#[tokio::test]
async fn untouched_storage_verifies_and_casts_stay_byte_identical() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (store, metas) = sealed_store(temp.path()).await;
    let (ok, out, err) = verify(temp.path(), &[]).await;
    assert!(ok, "{out}\n{err}");
    assert_eq!(out, "", "{err}");
    assert!(
        err.contains("4 recordings verified, chain of 4 entries"),
        "{err}"
    );

    // Casts are stored exactly as received; the seal adds files beside them.
    assert_eq!(
        store.read_cast(&metas[0].id).await.expect("cast"),
        fixture("session.cast")
    );
    assert_eq!(
        store.read_cast(&metas[1].id).await.expect("cast"),
        big_cast()
    );
    // Manifests are not index entries.
    assert_eq!(store.list().await.expect("list").len(), 4);

    let key = PublicKey::load(&temp.path().join("signing-key.pem.pub")).expect("public key");
    for (index, meta) in metas.iter().enumerate() {
        let path = temp
            .path()
            .join("recordings")
            .join(format!("{}.manifest.json", meta.id));
        let manifest: Manifest =
            serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
        assert!(manifest.signature_valid(&key), "{manifest:?}");
        let digest = seal::hash_file(
            &meta.id,
            &recording_file(temp.path(), meta),
            seal::ChainAlgorithm::CURRENT,
        )
        .expect("hash");
        assert_eq!(manifest.size, digest.size);
        assert_eq!(manifest.size, meta.bytes, "{manifest:?}");
        assert_eq!(manifest.chunk_size, 65_536);
        assert_eq!(manifest.hash_algorithm, seal::ChainAlgorithm::Blake3);
        assert_eq!(manifest.version, seal::MANIFEST_VERSION);
        assert_eq!(manifest.sealed_by, "upload");
        let expected = if index == 3 { "incomplete" } else { "complete" };
        assert_eq!(manifest.outcome, expected);
    }
    let big: Manifest = serde_json::from_slice(
        &std::fs::read(
            temp.path()
                .join("recordings")
                .join(format!("{}.manifest.json", metas[1].id)),
        )
        .expect("manifest"),
    )
    .expect("json");
    assert!(big.chunks > 2, "{big:?}");
    assert_eq!(big.caller, "bob@example.com");
    assert_eq!(big.pod.as_deref(), Some("web-0"));
    assert_eq!(big.namespace.as_deref(), Some("prod"));

    // The key file is private, and only some IDs can be checked.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(temp.path().join("signing-key.pem"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, out, err) = verify(temp.path(), &[&metas[1].id]).await;
    assert!(ok && out.is_empty(), "{out}\n{err}");
    assert!(err.contains("1 recordings verified"), "{err}");
}

/// Makes a copy of the sealed directory, tampers with it, and returns verify's result.
async fn tampered(
    source: &Path,
    tamper: impl FnOnce(&Path),
    args: &[&str],
) -> (bool, String, String) {
    let temp = tempfile::tempdir().expect("tempdir");
    let copy = temp.path().join("copy");
    copy_dir(source, &copy);
    tamper(&copy);
    let result = verify(&copy, args).await;
    drop(temp);
    result
}

#[tokio::test]
async fn each_kind_of_tampering_is_named() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (_store, metas) = sealed_store(temp.path()).await;
    let dir = temp.path();
    let (a, b, c) = (&metas[0], &metas[1], &metas[2]);

    // One byte changed in a cast.
    let (ok, out, err) = tampered(
        dir,
        |d| {
            let path = recording_file(d, b);
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[70_000] ^= 0x20;
            std::fs::write(&path, bytes).expect("write");
        },
        &[],
    )
    .await;
    assert!(!ok, "{out}\n{err}");
    assert_eq!(
        lines_of(&out, &b.id),
        [format!(
            "{}: cast changed: its bytes do not match the sealed hash ({} bytes, same size)",
            b.id, b.bytes
        )],
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(err.contains("1 problem found"), "{err}");

    // A cast truncated.
    let (ok, out, _) = tampered(
        dir,
        |d| {
            let path = recording_file(d, a);
            let bytes = std::fs::read(&path).expect("read");
            std::fs::write(&path, &bytes[..bytes.len() - 10]).expect("write");
        },
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "{}: cast truncated: {} bytes stored, {} sealed",
            a.id,
            a.bytes - 10,
            a.bytes
        )),
        "{out}"
    );

    // A capture grown.
    let (ok, out, _) = tampered(
        dir,
        |d| {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(recording_file(d, c))
                .expect("open");
            file.write_all(b"{}\n").expect("append");
        },
        &[],
    )
    .await;
    assert!(!ok);
    assert!(out.contains(&format!("{}: capture grown", c.id)), "{out}");

    // A recording deleted, with its index entry and manifest.
    let (ok, out, _) = tampered(
        dir,
        |d| {
            let recordings = d.join("recordings");
            for suffix in ["cast", "json", "manifest.json"] {
                std::fs::remove_file(recordings.join(format!("{}.{suffix}", a.id)))
                    .expect("remove");
            }
        },
        &[],
    )
    .await;
    assert!(!ok);
    assert_eq!(
        lines_of(&out, &a.id),
        [format!(
            "{}: recording deleted: chain line 1 names it, but its file and manifest are gone",
            a.id
        )],
        "{out}"
    );
    // Only the cast deleted.
    let (ok, out, _) = tampered(
        dir,
        |d| std::fs::remove_file(recording_file(d, a)).expect("remove"),
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "{}: recording deleted: {}.cast is missing",
            a.id, a.id
        )),
        "{out}"
    );

    // Two chain entries swapped.
    let (ok, out, _) = tampered(
        dir,
        |d| {
            let path = d.join("chain.jsonl");
            let text = std::fs::read_to_string(&path).expect("chain");
            let mut lines: Vec<&str> = text.lines().collect();
            lines.swap(1, 2);
            std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        },
        &[],
    )
    .await;
    assert!(!ok);
    for (id, line, seq) in [(&c.id, 2, 3), (&b.id, 3, 2)] {
        assert!(
            out.contains(&format!(
                "{id}: chain entry seq {seq} is at line {line}: chain entries reordered, inserted or removed"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("{id}: chain link broken at line {line}")),
            "{out}"
        );
    }

    // A chain entry removed from the middle (and the recording with it).
    let (ok, out, _) = tampered(
        dir,
        |d| {
            let path = d.join("chain.jsonl");
            let text = std::fs::read_to_string(&path).expect("chain");
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains(&b.id)).collect();
            std::fs::write(&path, lines.join("\n") + "\n").expect("write");
            let recordings = d.join("recordings");
            for suffix in ["cast", "json", "manifest.json"] {
                std::fs::remove_file(recordings.join(format!("{}.{suffix}", b.id)))
                    .expect("remove");
            }
        },
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains(&format!("{}: chain link broken at line 2", c.id)),
        "{out}"
    );

    // A manifest edited to name another caller.
    let (ok, out, _) = tampered(
        dir,
        |d| {
            let path = d.join("recordings").join(format!("{}.manifest.json", b.id));
            let text = std::fs::read_to_string(&path).expect("manifest");
            std::fs::write(&path, text.replace("bob@example.com", "eve@example.com"))
                .expect("write");
        },
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "{}: manifest signature invalid: the manifest was changed",
            b.id
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: manifest replaced or changed since chain line 2",
            b.id
        )),
        "{out}"
    );

    // A recording that was never sealed (dropped in by hand).
    let (ok, out, _) = tampered(
        dir,
        |d| {
            std::fs::write(
                d.join("recordings/20240101T000000Z-0badc0de.cast"),
                fixture("session.cast"),
            )
            .expect("write");
        },
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains("20240101T000000Z-0badc0de: not sealed: no 20240101T000000Z-0badc0de.manifest.json and no chain entry"),
        "{out}"
    );

    // Another key.
    let other = tempfile::tempdir().expect("tempdir");
    Store::create(other.path()).await.expect("create");
    let other_key = other.path().join("signing-key.pem.pub");
    let (ok, out, _) = verify(dir, &["--public-key", other_key.to_str().expect("path")]).await;
    assert!(!ok);
    assert!(
        out.contains(&format!("{}: manifest signed by another key", a.id)),
        "{out}"
    );
    assert!(
        out.contains("chain entry at line 1 (seq 1): signature invalid"),
        "{out}"
    );
}

#[tokio::test]
async fn removals_recorded_in_the_chain_verify() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (store, metas) = sealed_store(temp.path()).await;
    let sealer = store.sealer().expect("sealing");
    let entry = sealer
        .record_removal(&metas[0].id, "retention: older than 90 days")
        .expect("removal");
    assert_eq!(entry.seq, 5);
    let recordings = temp.path().join("recordings");
    for suffix in ["cast", "json", "manifest.json"] {
        std::fs::remove_file(recordings.join(format!("{}.{suffix}", metas[0].id))).expect("rm");
    }
    let (ok, out, err) = verify(temp.path(), &[]).await;
    assert!(ok, "{out}\n{err}");
    // A removal recorded while the file is still there is named.
    sealer
        .record_removal(&metas[1].id, "retention")
        .expect("removal");
    let (ok, out, _) = verify(temp.path(), &[]).await;
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "{}: removed at chain line 6 (retention) but {}.cast is still stored",
            metas[1].id, metas[1].id
        )),
        "{out}"
    );
}

#[tokio::test]
async fn recovery_seals_what_a_crash_left_open_and_what_predates_sealing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let store = Store::create(temp.path()).await.expect("create");
    let sealed = store_bytes(&store, RecordingKind::Cast, &[&fixture("session.cast")]).await;
    // A crash mid-upload: the writer is dropped unfinished.
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    writer.write(&fixture("tagged.cast")).await.expect("write");
    writer.flush().await.expect("flush");
    let open_id = writer.id().to_owned();
    drop(writer);
    let (ok, out, err) = verify(temp.path(), &[]).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains(&format!("note: {open_id}: still recording: not sealed yet")),
        "{err}"
    );
    // A recording from before sealing: a cast and its index entry, no manifest.
    let old = "20230101T000000Z-00c0ffee";
    let recordings = temp.path().join("recordings");
    std::fs::write(
        recordings.join(format!("{old}.cast")),
        fixture("session.cast"),
    )
    .expect("cast");
    let (ok, _, _) = verify(temp.path(), &[]).await;
    assert!(!ok);

    // The next start.
    let store = Store::create(temp.path()).await.expect("create");
    let repaired = store.recover().await.expect("recover");
    assert_eq!(repaired.len(), 2, "{repaired:?}");
    let (ok, out, err) = verify(temp.path(), &[]).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("3 recordings verified, chain of 3 entries"),
        "{err}"
    );
    // A seal made at a start vouches for the bytes from then on, not for where they came from:
    // the two recovered recordings are named, the one sealed as its upload ended is not.
    for id in [&open_id, old] {
        assert!(
            err.contains(&format!("note: {id}: sealed when the recorder started")),
            "{id}: {err}"
        );
    }
    assert!(!err.contains(&format!("note: {}", sealed.id)), "{err}");
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(recordings.join(format!("{open_id}.manifest.json"))).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest.outcome, "incomplete");
    assert_eq!(manifest.sealed_by, "recovery");
    assert_eq!(
        store.get(&open_id).await.expect("entry").outcome,
        Outcome::Incomplete
    );
    // Recovering again changes nothing.
    assert!(store.recover().await.expect("recover").is_empty());
    let (ok, _, err) = verify(temp.path(), &[]).await;
    assert!(ok && err.contains("chain of 3 entries"), "{err}");
    assert_eq!(
        store.read_cast(&sealed.id).await.expect("cast"),
        fixture("session.cast")
    );
}

#[tokio::test]
async fn a_key_kept_outside_the_directory_seals_and_verifies() {
    let temp = tempfile::tempdir().expect("temp dir");
    let keys = tempfile::tempdir().expect("key dir");
    let key = keys.path().join("recorder.pem");
    let store = Store::create_sealed_with(temp.path(), Some(&key))
        .await
        .expect("create");
    let meta = store_bytes(&store, RecordingKind::Cast, &[&fixture("session.cast")]).await;
    assert!(key.exists(), "the key is created where it was named");
    assert!(
        !temp.path().join("signing-key.pem").exists(),
        "no key inside the recordings directory"
    );
    let public = format!("{}.pub", key.display());
    let (ok, out, err) = verify(temp.path(), &["--public-key", &public]).await;
    assert!(ok && out.is_empty(), "{out}\n{err}");
    assert!(err.contains("1 recordings verified"), "{err}\n{}", meta.id);
}

/// A store sealed by the first release (version 1 manifests, SHA-256 file chains): its seals
/// still verify now that new ones are BLAKE3, and tampering with it is still found.
#[tokio::test]
async fn seals_of_version_1_still_verify() {
    let fixture_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sealed-v1");
    let temp = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture_dir, temp.path());
    let key = temp.path().join("public-key.pem");
    let key = key.to_str().expect("UTF-8 path");
    let (ok, out, err) = verify(temp.path(), &["--public-key", key]).await;
    assert!(ok && out.is_empty(), "{out}\n{err}");
    assert!(err.contains("1 recordings verified"), "{err}");

    let id = "20261206T180940Z-e9cce541";
    let cast = temp.path().join("recordings").join(format!("{id}.cast"));
    let mut bytes = std::fs::read(&cast).expect("cast");
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    std::fs::write(&cast, bytes).expect("write");
    let (ok, out, _) = verify(temp.path(), &["--public-key", key]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(id) && out.contains("cast changed"),
        "names the recording and the change: {out}"
    );
}
