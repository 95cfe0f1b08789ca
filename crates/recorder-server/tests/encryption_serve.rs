//! `kube-recorder serve --encrypt-to`: bad recipients stop it at start-up; uploads are stored
//! encrypted; the read API serves the age file as a download, which `play --server --identity`
//! decrypts; a recorder killed mid-upload leaves a file the next start repairs and that plays up
//! to the cut.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bytes::Bytes;
use common::{channel_body, fixture, h2c, output_text, NdjsonReader, ADMIN_TOKEN};
use http::Request;
use recorder_server::{Outcome, Store};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

fn kube_recorder() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kube-recorder"));
    command
        .env_remove("KUBE_RECORDER_DIR")
        .env_remove("KUBE_RECORDER_SERVER")
        .env_remove("KUBE_RECORDER_LISTEN")
        .env_remove("KUBE_RECORDER_TOKEN_FILE")
        .env_remove("KUBE_RECORDER_IDENTITY")
        .env("KUBE_RECORDER_TOKEN", ADMIN_TOKEN)
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    command
}

async fn run(args: &[&str]) -> (bool, String, String) {
    let output = kube_recorder()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run kube-recorder");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A new auditor key: (identity file, recipient).
fn auditor(dir: &Path) -> (PathBuf, String) {
    use age::secrecy::ExposeSecret as _;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let path = dir.join("auditor.key");
    std::fs::write(
        &path,
        format!(
            "# public key: {recipient}\n{}\n",
            identity.to_string().expose_secret()
        ),
    )
    .expect("identity file");
    (path, recipient)
}

/// Starts `serve` on a free port in `dir` with `extra` arguments; returns it and its address.
async fn serve(dir: &Path, extra: &[&str]) -> (Child, std::net::SocketAddr) {
    let tokens = dir.join("viewer-tokens");
    std::fs::write(&tokens, format!("{ADMIN_TOKEN} admin *\n")).expect("token file");
    let mut child = kube_recorder()
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.join("store"))
        .arg("--viewer-tokens")
        .arg(&tokens)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("listening line");
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");
    (child, addr)
}

#[tokio::test]
async fn invalid_recipients_stop_serve_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store = store.to_str().expect("UTF-8");
    let (ok, out, err) = run(&["serve", "--dir", store, "--encrypt-to", "age1nope"]).await;
    assert!(!ok);
    assert_eq!(out, "", "never listened");
    assert!(
        err.contains("--encrypt-to \"age1nope\": not an age X25519 recipient"),
        "{err}"
    );
    // An SSH key is not an age X25519 recipient either.
    let (ok, _, err) = run(&[
        "serve",
        "--dir",
        store,
        "--encrypt-to",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm3 alice",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("not an age X25519 recipient"), "{err}");

    let (_, recipient) = auditor(dir.path());
    let file = dir.path().join("recipients.txt");
    std::fs::write(&file, format!("# auditors\n{recipient}\n\nage1typo\n")).expect("write");
    let file_arg = file.to_str().expect("UTF-8");
    let (ok, _, err) = run(&["serve", "--dir", store, "--encrypt-to-file", file_arg]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!("{file_arg}: line 4: not an age X25519 recipient")),
        "{err}"
    );
    std::fs::write(&file, "# nobody yet\n").expect("write");
    let (ok, _, err) = run(&["serve", "--dir", store, "--encrypt-to-file", file_arg]).await;
    assert!(!ok);
    assert!(err.contains("no recipient in it"), "{err}");
}

#[tokio::test]
async fn uploads_are_served_as_age_downloads_and_a_killed_recorder_leaves_a_playable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (identity, recipient) = auditor(dir.path());
    // The recipient comes from a file (as `age -R`), the way a deployment mounts it.
    let recipients = dir.path().join("recipients.txt");
    std::fs::write(&recipients, format!("# the auditors\n{recipient}\n")).expect("write");
    let recipients = recipients.to_str().expect("UTF-8").to_owned();
    let (mut child, addr) = serve(dir.path(), &["--encrypt-to-file", &recipients]).await;
    let url = format!("http://{addr}");

    // A whole upload over v2 (h2c).
    let cast = fixture("session.cast");
    let (mut sender, _driver) = h2c(addr).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("{url}/v2/record"))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = NdjsonReader::new(response.into_body());
    chunks.send(Bytes::from(cast.clone())).await.expect("send");
    drop(chunks);
    while acks.next().await.is_some() {}
    let store = Store::open(dir.path().join("store")).await.expect("open");
    let meta = store.list().await.expect("list").remove(0);
    assert!(meta.encrypted);
    assert_eq!(meta.outcome, Outcome::Complete);

    // The read API: the ciphertext as stored, as a download, not as a cast.
    let response = common::client()
        .get(format!("{url}/api/recordings/{}", meta.id))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(
        headers[reqwest::header::CONTENT_TYPE],
        "application/x-age-encryption"
    );
    assert_eq!(
        headers[reqwest::header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"{}.cast.age\"", meta.id).as_str()
    );
    let served = response.bytes().await.expect("body");
    let stored = std::fs::read(
        dir.path()
            .join("store/recordings")
            .join(format!("{}.cast.age", meta.id)),
    )
    .expect("stored file");
    assert!(served == stored, "served exactly as stored");
    let identity_arg = identity.to_str().expect("UTF-8");
    let (ok, out, err) = run(&[
        "play",
        &meta.id,
        "--server",
        &url,
        "--identity",
        identity_arg,
        "--max-wait",
        "0",
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, output_text(&cast));

    // A long session in flight when the recorder is killed.
    let mut long = cast.split(|&b| b == b'\n').next().expect("header").to_vec();
    long.push(b'\n');
    for i in 0..8000 {
        long.extend(
            format!(
                "[{}.5, \"o\", \"output line {i} of a long session\\r\\n\"]\n",
                i / 10
            )
            .as_bytes(),
        );
    }
    let sent = 400_000;
    let (mut sender, _driver) = h2c(addr).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("{url}/v2/record"))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = NdjsonReader::new(response.into_body());
    chunks
        .send(Bytes::copy_from_slice(&long[..sent]))
        .await
        .expect("send");
    while acks.next().await.expect("ack")["ack"].as_u64() < Some(sent as u64) {}
    // Once the client pauses, the recorder hands what it holds to age, which writes the whole
    // 64 KiB chunks among it: 6 of them (a 7th would need 458,752 bytes). Wait for them on disk.
    let encrypted_chunk = 65_536 + 16;
    let recordings = dir.path().join("store/recordings");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let written = std::fs::read_dir(&recordings)
            .expect("recordings")
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != format!("{}.cast.age", meta.id).as_str())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cast.age"))
            .filter_map(|e| e.metadata().ok())
            .any(|m| m.len() > 6 * encrypted_chunk);
        if written {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "six encrypted chunks never reached the file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    drop(chunks);

    let (mut child, addr) = serve(dir.path(), &["--encrypt-to-file", &recipients]).await;
    let cut = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|m| m.id != meta.id)
        .expect("the killed upload's entry");
    assert!(cut.encrypted);
    assert_eq!(cut.outcome, Outcome::Incomplete, "repaired at start");
    let (ok, out, err) = run(&[
        "play",
        &cut.id,
        "--server",
        &format!("http://{addr}"),
        "--identity",
        identity_arg,
        "--max-wait",
        "0",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("was cut off after 393216 bytes"), "{err}");
    assert_eq!(out, output_text(&long[..393_216]));
    let (ok, out, err) = run(&[
        "verify",
        "--dir",
        dir.path().join("store").to_str().expect("UTF-8"),
    ])
    .await;
    assert!(ok, "{out}{err}");
    child.start_kill().expect("kill");
    child.wait().await.expect("stopped");
}
