//! Encryption at rest (`serve --encrypt-to`): the directory holds no plaintext of a session's
//! output, `play --identity` and the standard `age` CLI read it back exactly, `verify` checks the
//! ciphertext without the key, and each way of breaking it is named.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, output_text};
use recorder_server::crypt::Recipients;
use recorder_server::{Outcome, Protocol, RecordingEnd, RecordingKind, RecordingMeta, Store};
use tokio::process::Command;

/// Appears only in the sessions' output events, never in a header: the index entries may
/// carry it only if plaintext leaked.
const MARKER: &str = "SECRET-OUTPUT-4f1c9e";

/// The standard age CLI, from Debian's `age` package.
const AGE: &str = "/usr/bin/age";

/// An auditor's key pair: the identity file (as age-keygen writes it) and the recipient.
struct Auditor {
    identity_file: PathBuf,
    recipient: String,
}

fn auditor(dir: &Path, name: &str) -> Auditor {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = {
        use age::secrecy::ExposeSecret as _;
        identity.to_string().expose_secret().to_owned()
    };
    let identity_file = dir.join(format!("{name}.key"));
    std::fs::write(
        &identity_file,
        format!("# created: for a test\n# public key: {recipient}\n{secret}\n"),
    )
    .expect("identity file");
    Auditor {
        identity_file,
        recipient,
    }
}

/// A cast whose output carries [`MARKER`] in every event, `lines` events long (about 60 bytes
/// each, so 3,000 lines span several of age's 64 KiB chunks).
fn secret_cast(lines: usize) -> Vec<u8> {
    let mut cast = br#"{"version":2,"width":80,"height":24,"timestamp":1700000000,"srcNodeUser":"bob@example.com","kubernetes":{"PodName":"vault-0","Namespace":"prod","Container":"main","SessionType":"exec"}}"#.to_vec();
    cast.push(b'\n');
    for i in 0..lines {
        cast.extend(format!("[{}.25, \"o\", \"{MARKER} line {i}\\r\\n\"]\n", i / 50).as_bytes());
    }
    cast
}

async fn encrypting_store(dir: &Path, recipients: &[&str]) -> Store {
    let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let recipients = Recipients::parse(&recipients, &[])
        .expect("valid recipients")
        .expect("some recipients");
    Store::create(dir)
        .await
        .expect("create")
        .encrypt_to(recipients)
}

/// Stores `cast` in uneven pieces and ends the upload with `end`.
async fn store_cast(store: &Store, cast: &[u8], end: RecordingEnd) -> RecordingMeta {
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    for piece in cast.chunks(7919) {
        writer.write(piece).await.expect("write");
    }
    writer.finish(end).await.expect("finish")
}

/// Runs `kube-recorder ARGS...`; returns (success, stdout, stderr).
async fn kube_recorder(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-recorder"))
        .env_remove("KUBE_RECORDER_DIR")
        .env_remove("KUBE_RECORDER_SERVER")
        .env_remove("KUBE_RECORDER_IDENTITY")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .await
        .expect("run kube-recorder");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `kube-recorder play ID --dir DIR --identity KEY` at full speed.
async fn play(dir: &Path, id: &str, identity: &Path) -> (bool, String, String) {
    kube_recorder(&[
        "play".as_ref(),
        id.as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--identity".as_ref(),
        identity.as_os_str(),
        "--max-wait".as_ref(),
        "0".as_ref(),
    ])
    .await
}

async fn verify(dir: &Path) -> (bool, String, String) {
    kube_recorder(&["verify".as_ref(), "--dir".as_ref(), dir.as_os_str()]).await
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn age_file(dir: &Path, meta: &RecordingMeta) -> PathBuf {
    dir.join("recordings").join(format!("{}.cast.age", meta.id))
}

fn require_age_cli() {
    assert!(
        Path::new(AGE).exists(),
        "{AGE} is missing: Debian's `age` package is needed to check that the standard age CLI \
         decrypts what kube-recorder stores; `cargo xtask ci` installs it"
    );
}

#[tokio::test]
async fn encrypted_upload_leaves_no_plaintext_on_disk_and_plays_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let cast = secret_cast(6000);
    assert!(cast.len() > 3 * 64 * 1024, "spans several age chunks");
    let meta = store_cast(&store, &cast, RecordingEnd::Complete).await;

    // The entry: encrypted, complete, and its metadata (documented as plaintext) as usual.
    assert!(meta.encrypted);
    assert_eq!(meta.outcome, Outcome::Complete);
    assert_eq!(meta.bytes, cast.len() as u64);
    assert_eq!(meta.events, 6000);
    assert_eq!(meta.pod.as_deref(), Some("vault-0"));
    assert_eq!(meta.src_node_user.as_deref(), Some("bob@example.com"));
    let stored = std::fs::read(age_file(dir.path(), &meta)).expect("the .cast.age file");
    assert_eq!(meta.stored_bytes, Some(stored.len() as u64));
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !dir.path()
            .join("recordings")
            .join(format!("{}.cast", meta.id))
            .exists(),
        "no plaintext cast beside it"
    );

    // Not one file of the directory holds the output, nor its first event line.
    let first_event = cast.split(|&b| b == b'\n').nth(1).expect("an event");
    for file in all_files(dir.path()) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !contains(&bytes, MARKER.as_bytes()) && !contains(&bytes, first_event),
            "{} holds plaintext of the session's output",
            file.display()
        );
    }

    // The auditor's key plays it back exactly; ls says it is encrypted.
    let (ok, out, err) = play(dir.path(), &meta.id, &auditor.identity_file).await;
    assert!(ok, "{err}");
    assert_eq!(out, output_text(&cast));
    assert_eq!(err, "");
    let (ok, out, err) =
        kube_recorder(&["ls".as_ref(), "--dir".as_ref(), dir.path().as_os_str()]).await;
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&meta.id) && l.contains("complete,encrypted")),
        "{out}"
    );

    // The file path works as well as the ID, without --dir.
    let file = age_file(dir.path(), &meta);
    let (ok, out, err) = kube_recorder(&[
        "play".as_ref(),
        file.as_os_str(),
        "-i".as_ref(),
        auditor.identity_file.as_os_str(),
        "--max-wait".as_ref(),
        "0".as_ref(),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, output_text(&cast));
}

#[tokio::test]
async fn the_age_cli_decrypts_our_files_and_we_decrypt_its_files() {
    require_age_cli();
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    // Two auditors: either key decrypts.
    let first = auditor(keys.path(), "first");
    let second = auditor(keys.path(), "second");
    let store = encrypting_store(dir.path(), &[&first.recipient, &second.recipient]).await;
    let cast = secret_cast(2000);
    let meta = store_cast(&store, &cast, RecordingEnd::Complete).await;
    for key in [&first.identity_file, &second.identity_file] {
        let output = Command::new(AGE)
            .arg("-d")
            .arg("-i")
            .arg(key)
            .arg(age_file(dir.path(), &meta))
            .output()
            .await
            .expect("run age");
        assert!(
            output.status.success(),
            "age -d: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.stdout == cast, "age -d gives back the exact cast");
    }

    // The other way: a cast the age CLI encrypted to the auditor plays with --identity.
    let session = fixture("session.cast");
    let plain = keys.path().join("session.cast");
    std::fs::write(&plain, &session).expect("write");
    let encrypted = keys.path().join("session.cast.age");
    let status = Command::new(AGE)
        .args(["-r", &first.recipient, "-o"])
        .arg(&encrypted)
        .arg(&plain)
        .status()
        .await
        .expect("run age");
    assert!(status.success());
    let (ok, out, err) = kube_recorder(&[
        "play".as_ref(),
        encrypted.as_os_str(),
        "--identity".as_ref(),
        first.identity_file.as_os_str(),
        "--max-wait".as_ref(),
        "0".as_ref(),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, output_text(&session));
}

#[tokio::test]
async fn verify_checks_the_ciphertext_without_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let changed = store_cast(&store, &secret_cast(2000), RecordingEnd::Complete).await;
    let truncated = store_cast(&store, &secret_cast(2000), RecordingEnd::Complete).await;
    let untouched = store_cast(&store, &secret_cast(10), RecordingEnd::Complete).await;
    drop(store);
    // No key anywhere near verify.
    std::fs::remove_file(&auditor.identity_file).expect("remove the key");

    let (ok, out, err) = verify(dir.path()).await;
    assert!(ok, "untouched ciphertext verifies: {out}{err}");

    // One byte of ciphertext in the middle changed.
    let path = age_file(dir.path(), &changed);
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    // The end of a chunk cut off.
    let path = age_file(dir.path(), &truncated);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).expect("write");

    let (ok, out, _) = verify(dir.path()).await;
    assert!(!ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{}: cast changed", changed.id))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{}: cast truncated", truncated.id))),
        "{out}"
    );
    assert!(!out.contains(&untouched.id), "{out}");
}

#[tokio::test]
async fn a_wrong_key_or_a_changed_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let intruder = auditor_without(keys.path());
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let cast = secret_cast(3000);
    let meta = store_cast(&store, &cast, RecordingEnd::Complete).await;

    let (ok, out, err) = play(dir.path(), &meta.id, &intruder).await;
    assert!(!ok);
    assert_eq!(out, "", "nothing decrypted with the wrong key");
    assert!(err.contains("encrypted to other keys"), "{err}");

    // Without --identity: told what is needed, nothing shown.
    let (ok, out, err) = kube_recorder(&[
        "play".as_ref(),
        meta.id.as_ref(),
        "--dir".as_ref(),
        dir.path().as_os_str(),
    ])
    .await;
    assert!(!ok);
    assert_eq!(out, "");
    assert!(err.contains("--identity FILE"), "{err}");

    // An identity file that holds no key, or a broken one, is named (the line, not the key).
    let broken = keys.path().join("broken.key");
    std::fs::write(&broken, "# comment\nAGE-SECRET-KEY-1NOTAKEY\n").expect("write");
    let (ok, _, err) = play(dir.path(), &meta.id, &broken).await;
    assert!(!ok);
    assert!(err.contains("line 2: not an age X25519 identity"), "{err}");
    assert!(!err.contains("NOTAKEY"), "the secret is not echoed: {err}");

    // A byte changed in the second chunk: the first chunk's output plays, then a clear error.
    let path = age_file(dir.path(), &meta);
    let mut bytes = std::fs::read(&path).expect("read");
    let target = bytes.len() - 70 * 1024;
    bytes[target] ^= 0x80;
    std::fs::write(&path, &bytes).expect("write");
    let (ok, out, err) = play(dir.path(), &meta.id, &auditor.identity_file).await;
    assert!(!ok, "a changed file fails");
    assert!(err.contains("the file was changed or damaged"), "{err}");
    let whole = output_text(&cast);
    assert!(
        whole.starts_with(&out) && out.len() < whole.len(),
        "only authentic output before the damage is shown"
    );
}

/// An identity file of a key nobody encrypted to.
fn auditor_without(dir: &Path) -> PathBuf {
    auditor(dir, "intruder").identity_file
}

#[tokio::test]
async fn a_cut_off_upload_ends_as_a_whole_age_file_marked_incomplete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let cast = secret_cast(3000);
    // Cut in the middle of a line, past the first chunk.
    let sent = &cast[..100_001];
    let meta = store_cast(
        &store,
        sent,
        RecordingEnd::Incomplete("upload cut off: reset".into()),
    )
    .await;
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert_eq!(meta.bytes, sent.len() as u64);

    let (ok, out, err) = play(dir.path(), &meta.id, &auditor.identity_file).await;
    assert!(ok, "{err}");
    assert_eq!(out, output_text(sent));
    assert!(
        !err.contains("cut off"),
        "the age file itself is whole: {err}"
    );
    let (ok, out, err) = verify(dir.path()).await;
    assert!(ok, "{out}{err}");
    if Path::new(AGE).exists() {
        let output = Command::new(AGE)
            .arg("-d")
            .arg("-i")
            .arg(&auditor.identity_file)
            .arg(age_file(dir.path(), &meta))
            .output()
            .await
            .expect("run age");
        assert!(output.status.success());
        assert!(output.stdout == sent, "age -d gives the bytes received");
    }
}

#[tokio::test]
async fn a_recorder_stopped_mid_session_leaves_a_file_that_decrypts_up_to_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let cast = secret_cast(6000);
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    let id = writer.id().to_owned();
    writer.write(&cast[..200_000]).await.expect("write");
    writer.flush().await.expect("flush");
    // The process dies here: no finish, no last chunk.
    drop(writer);
    drop(store);

    // The next start repairs and seals it.
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let repaired = store.recover().await.expect("recover");
    assert_eq!(repaired.len(), 1);
    let meta = store.get(&id).await.expect("entry");
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert!(meta.encrypted);
    assert!(
        meta.reason
            .as_deref()
            .is_some_and(|r| r.contains("last whole 64 KiB chunk")),
        "{:?}",
        meta.reason
    );
    assert_eq!(
        meta.pod.as_deref(),
        Some("vault-0"),
        "the header's scan kept"
    );
    let stored = std::fs::metadata(age_file(dir.path(), &meta))
        .expect("file")
        .len();
    assert_eq!(meta.stored_bytes, Some(stored));
    assert_eq!(
        meta.bytes, 196_608,
        "the plaintext of the whole chunks on disk"
    );
    let (ok, out, err) = verify(dir.path()).await;
    assert!(ok, "the recovered file is sealed as it is: {out}{err}");

    // Three whole chunks (192 KiB) reached the file; the rest was still in memory.
    let (ok, out, err) = play(dir.path(), &id, &auditor.identity_file).await;
    assert!(ok, "{err}");
    assert!(err.contains("was cut off after 196608 bytes"), "{err}");
    assert_eq!(out, output_text(&cast[..196_608]));
}

#[tokio::test]
async fn captures_are_encrypted_too_and_retention_removes_encrypted_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    // The pod's answer is MARKER (base64).
    let capture = concat!(
        r#"{"version":"kap-port-forward/1","id":"s1","timestamp":1700000000,"transport":"websocket","connection":{"requestId":"0","port":8080},"kubernetes":{"PodName":"web-0","Namespace":"prod"}}"#,
        "\n",
        r#"[0.002,"s","U0VDUkVULU9VVFBVVC00ZjFjOWU="]"#,
        "\n",
    );
    let mut writer = store
        .create_recording_of(RecordingKind::PortForwardCapture, Protocol::V2)
        .await
        .expect("recording");
    writer.write(capture.as_bytes()).await.expect("write");
    let meta = writer.finish(RecordingEnd::Complete).await.expect("finish");
    assert!(meta.encrypted);
    let path = dir
        .path()
        .join("recordings")
        .join(format!("{}.pfcap.age", meta.id));
    let stored = std::fs::read(&path).expect("the .pfcap.age file");
    for file in all_files(dir.path()) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !contains(&bytes, b"U0VDUkVULU9VVFBVVC00ZjFjOWU=") && !contains(&bytes, b"[0.002"),
            "{} holds plaintext of the capture",
            file.display()
        );
    }
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(
        meta.port_forward.as_ref().map(|p| p.bytes_to_client),
        Some(MARKER.len() as u64),
        "scanned before encryption"
    );
    let (ok, out, err) = verify(dir.path()).await;
    assert!(ok, "{out}{err}");

    // Retention removes the encrypted file with the rest, and verify sees a clean removal.
    let report = store
        .sweep_retention(1, recorder_server_now() + 3.0 * 86_400.0)
        .await
        .expect("sweep");
    assert_eq!(report.removed, vec![meta.id.clone()]);
    assert!(!path.exists());
    let (ok, out, err) = verify(dir.path()).await;
    assert!(ok, "{out}{err}");
}

fn recorder_server_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[tokio::test]
async fn a_plaintext_cast_put_in_place_of_the_ciphertext_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let replaced = store_cast(&store, &secret_cast(10), RecordingEnd::Complete).await;
    let beside = store_cast(&store, &secret_cast(10), RecordingEnd::Complete).await;
    let forged = fixture("session.cast");

    // The ciphertext overwritten with a forged plaintext cast of the same name.
    std::fs::write(age_file(dir.path(), &replaced), &forged).expect("write");
    let (ok, out, err) = play(dir.path(), &replaced.id, &auditor.identity_file).await;
    assert!(!ok);
    assert_eq!(out, "", "nothing of the forgery is shown");
    assert!(
        err.contains("its index entry says it is encrypted, but its file is not an age file"),
        "{err}"
    );

    // The ciphertext removed and a plaintext `<id>.cast` put beside the entry instead.
    std::fs::remove_file(age_file(dir.path(), &beside)).expect("remove");
    std::fs::write(
        dir.path()
            .join("recordings")
            .join(format!("{}.cast", beside.id)),
        &forged,
    )
    .expect("write");
    let (ok, out, err) = play(dir.path(), &beside.id, &auditor.identity_file).await;
    assert!(!ok);
    assert_eq!(out, "", "the plaintext file is not read: {err}");

    // verify names both.
    let (ok, out, _) = verify(dir.path()).await;
    assert!(!ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{}: cast changed", replaced.id))
                || l.starts_with(&format!("{}: cast truncated", replaced.id))
                || l.starts_with(&format!("{}: cast grown", replaced.id))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: stored as {}.cast, but sealed as {}.cast.age",
            beside.id, beside.id, beside.id
        )),
        "{out}"
    );
}

#[tokio::test]
async fn a_file_cut_mid_chunk_plays_up_to_its_last_whole_chunk_then_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let cast = secret_cast(6000);
    let meta = store_cast(&store, &cast, RecordingEnd::Complete).await;
    let path = age_file(dir.path(), &meta);
    let bytes = std::fs::read(&path).expect("read");
    // 100,000 bytes off the end: into the middle of a chunk, whole ones before it.
    std::fs::write(&path, &bytes[..bytes.len() - 100_000]).expect("write");
    let (ok, out, err) = play(dir.path(), &meta.id, &auditor.identity_file).await;
    assert!(
        !ok,
        "a chunk cut in its middle cannot be told from a changed one"
    );
    assert!(
        err.contains("its last chunk does not decrypt") && err.contains("cut off mid-chunk"),
        "{err}"
    );
    let whole = output_text(&cast);
    assert!(whole.starts_with(&out) && !out.is_empty() && out.len() < whole.len());
}

/// A complete recording whose age file was cut afterwards exactly at a chunk boundary decrypts
/// cleanly up to the cut, like a recorder that stopped mid-upload; its index entry says it ended
/// complete, so `play` calls it what it is and fails.
#[tokio::test]
async fn play_fails_on_a_complete_recording_cut_at_a_chunk_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let auditor = auditor(keys.path(), "auditor");
    let store = encrypting_store(dir.path(), &[&auditor.recipient]).await;
    let cast = secret_cast(4000);
    assert!(
        cast.len() > 2 * 65_536,
        "more than two chunks: {}",
        cast.len()
    );
    let meta = store_cast(&store, &cast, RecordingEnd::Complete).await;
    drop(store);
    // age: the header ends with "\n--- MAC\n", then a 16-byte nonce, then chunks of 64 KiB of
    // plaintext and a 16-byte tag each.
    let path = age_file(dir.path(), &meta);
    let bytes = std::fs::read(&path).expect("read");
    let mac = bytes
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("age header");
    let header_end = mac
        + 1
        + bytes[mac + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("end")
        + 1;
    let cut = header_end + 16 + (65_536 + 16);
    std::fs::write(&path, &bytes[..cut]).expect("cut");

    let (ok, out, err) = play(dir.path(), &meta.id, &auditor.identity_file).await;
    assert!(!ok, "{err}");
    assert!(err.contains("truncated afterwards"), "{err}");
    // What was before the cut is authentic and was shown.
    assert_eq!(out, output_text(&cast[..65_536]));
}
