//! `kube-recorder serve --storage s3` end to end: sessions recorded through the proxy with the
//! real kubectl land in the recording directory and, identical, in a bucket of a real S3 server
//! (moto, installed by `cargo xtask ci`); a recorder killed mid-session leaves the recording
//! marked incomplete in both once it is started again. With `--s3-keep-local-days 0` the bucket
//! stands alone: recordings leave the directory once shipped and are still served, played and
//! verified, and a new recorder started on an empty directory serves everything the bucket holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::binaries::binary;
use e2e::process::{listening_address, Service};
use e2e::stack::{
    admin_caller, recorder_get, RecordingGrant, Stack, StackOptions, RECORDER_VIEWER_TOKEN,
};
use serde_json::Value;
use testkit::s3_server::S3Server;

const BUCKET: &str = "recordings";
const PREFIX: &str = "e2e";
const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

fn s3_flags(server: &S3Server, credentials: &Path) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--storage",
        "s3",
        "--s3-bucket",
        BUCKET,
        "--s3-prefix",
        PREFIX,
        "--s3-endpoint",
        &server.endpoint,
        "--s3-path-style",
        "--s3-credentials-file",
    ]
    .iter()
    .map(|flag| flag.to_string())
    .collect();
    flags.push(credentials.display().to_string());
    flags
}

fn credentials(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("s3-credentials");
    std::fs::write(
        &path,
        "[default]\naws_access_key_id = e2e\naws_secret_access_key = e2e-secret\n",
    )?;
    Ok(path)
}

fn recorded_stack(server: &S3Server, scratch: &Path) -> anyhow::Result<Stack> {
    recorded_stack_with(server, scratch, &[])
}

fn recorded_stack_with(server: &S3Server, scratch: &Path, extra: &[&str]) -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    options.recorder_args = s3_flags(server, &credentials(scratch)?);
    options
        .recorder_args
        .extend(extra.iter().map(|flag| flag.to_string()));
    Stack::start(options)
}

/// The recorder's directory of casts and index entries.
fn local_dir(stack: &Stack) -> PathBuf {
    stack.dir.join("recordings").join("recordings")
}

/// Waits until the bucket holds the index entry of `id`, and returns it.
fn shipped_entry(server: &S3Server, id: &str) -> anyhow::Result<Value> {
    let key = format!("{PREFIX}/recordings/{id}.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(bytes) = server.object(BUCKET, &key)? {
            return Ok(serde_json::from_slice(&bytes)?);
        }
        anyhow::ensure!(Instant::now() < deadline, "{key} was never shipped");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn shipped_cast(server: &S3Server, id: &str) -> anyhow::Result<Vec<u8>> {
    server
        .object(BUCKET, &format!("{PREFIX}/recordings/{id}.cast"))?
        .ok_or_else(|| anyhow::anyhow!("the cast of {id} is not in the bucket"))
}

/// Whether a cast in `dir` holds `text`.
fn on_disk(dir: &Path, text: &str) -> anyhow::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "cast")
            && String::from_utf8_lossy(&std::fs::read(&path)?).contains(text)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[test]
fn sessions_recorded_to_s3_are_identical_to_the_directory_ones() -> anyhow::Result<()> {
    let server = S3Server::start()?;
    server.create_bucket(BUCKET)?;
    let scratch = tempfile::tempdir()?;
    let mut stack = recorded_stack(&server, scratch.path())?;
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_string(),
        )];
        let output = stack.kubectl.run(&[
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            &format!("echo s3-output-{name}; exit 4"),
        ])?;
        assert_eq!(output.code, Some(4), "{name}: {output:?}\n{}", stack.logs());
        let newest = stack.finished_recordings(index + 1)?[0].clone();
        let id = newest["id"].as_str().unwrap_or_default().to_owned();
        let entry = shipped_entry(&server, &id)?;
        assert_eq!(entry["outcome"], "complete", "{name}: {entry}");
        assert_eq!(entry["exitCode"], 4, "{name}: {entry}");
        let local = std::fs::read(local_dir(&stack).join(format!("{id}.cast")))?;
        let shipped = shipped_cast(&server, &id)?;
        assert!(
            shipped == local,
            "{name}: the bucket's cast differs from the directory's"
        );
        assert!(
            String::from_utf8_lossy(&shipped).contains(&format!("s3-output-{name}")),
            "{name}"
        );
        let manifest = server.object(BUCKET, &format!("{PREFIX}/recordings/{id}.manifest.json"))?;
        assert!(manifest.is_some(), "{name}: the seal is shipped too");
    }
    Ok(())
}

#[test]
fn a_recorder_killed_mid_session_leaves_it_incomplete_in_the_directory_and_the_bucket(
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let server = S3Server::start()?;
    server.create_bucket(BUCKET)?;
    let scratch = tempfile::tempdir()?;
    let mut stack = recorded_stack(&server, scratch.path())?;
    let (mut session, mut stdin) = stack
        .kubectl
        .spawn_interactive(&["exec", "-i", "demo", "--", "cat"])?;
    stdin.write_all(b"before-the-kill\n")?;
    stdin.flush()?;
    session.wait_for("before-the-kill", Duration::from_secs(60))?;
    // The recorder writes what it receives to disk after a short pause; SIGKILL loses what is
    // not written yet. Kill it once the line is on disk.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !on_disk(&local_dir(&stack), "before-the-kill")? {
        anyhow::ensure!(Instant::now() < deadline, "the line never reached the disk");
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(recorder) = stack.recorder.as_mut() {
        recorder.kill();
    }
    // Recording is enforced: the session must end on its own once the proxy notices the recorder
    // is gone. Keep typing (closing stdin would let `cat` end the session first); kubectl going
    // away ends the loop, which is bounded only so a hung session cannot hang the suite.
    session.type_until_exit(&mut stdin, 600);
    drop(stdin);
    let (success, stderr) = session.wait_exit(Duration::from_secs(30))?;
    assert!(
        !success,
        "recording is enforced: the session ends: {stderr}"
    );

    // Started again on the same directory and bucket: it repairs the recording and ships it.
    let mut command = Command::new(binary("kube-recorder")?);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(stack.dir.join("recordings"))
        .args(s3_flags(&server, &credentials(scratch.path())?));
    let (_restarted, _) = Service::start(
        "kube-recorder (restarted)",
        command,
        &stack.dir.join("recorder-restarted.log"),
        1,
    )?;
    let local_entries: Vec<Value> = std::fs::read_dir(local_dir(&stack))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json") && !name.ends_with(".manifest.json"))
        .map(|name| std::fs::read(local_dir(&stack).join(name)))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .map(|bytes| serde_json::from_slice(bytes))
        .collect::<Result<_, _>>()?;
    assert_eq!(local_entries.len(), 1, "{local_entries:?}");
    let local = &local_entries[0];
    assert_eq!(local["outcome"], "incomplete", "{local}");
    let id = local["id"].as_str().unwrap_or_default();
    let shipped = shipped_entry(&server, id)?;
    assert_eq!(shipped["outcome"], "incomplete", "{shipped}");
    let cast = shipped_cast(&server, id)?;
    assert!(cast == std::fs::read(local_dir(&stack).join(format!("{id}.cast")))?);
    assert!(String::from_utf8_lossy(&cast).contains("before-the-kill"));
    Ok(())
}

#[test]
fn the_bucket_stands_alone_once_recordings_leave_the_directory() -> anyhow::Result<()> {
    let server = S3Server::start()?;
    server.create_bucket(BUCKET)?;
    let scratch = tempfile::tempdir()?;
    let mut stack = recorded_stack_with(&server, scratch.path(), &["--s3-keep-local-days", "0"])?;
    let mut sessions = Vec::new();
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_string(),
        )];
        let text = format!("only-in-the-bucket-{name}");
        let output =
            stack
                .kubectl
                .run(&["exec", "demo", "--", "sh", "-c", &format!("echo {text}")])?;
        assert_eq!(output.code, Some(0), "{name}: {output:?}\n{}", stack.logs());
        let newest = stack.finished_recordings(index + 1)?[0].clone();
        let id = newest["id"].as_str().unwrap_or_default().to_owned();
        shipped_entry(&server, &id)?;
        sessions.push((id, text));
    }
    // Shipped, then removed from the directory by the next pass.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, _) in &sessions {
        let local = local_dir(&stack).join(format!("{id}.cast"));
        while local.exists() {
            anyhow::ensure!(Instant::now() < deadline, "{id} never left the directory");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let credentials = credentials(scratch.path())?;
    for (id, text) in &sessions {
        let shipped = shipped_cast(&server, id)?;
        assert!(String::from_utf8_lossy(&shipped).contains(text.as_str()));
        // The read API serves it from the bucket, byte for byte.
        assert_eq!(
            stack.recording_cast(id)?.as_bytes(),
            shipped.as_slice(),
            "{id}"
        );
        // `kube-recorder play --dir` with the bucket plays it.
        let played = Command::new(binary("kube-recorder")?)
            .args(["play", id, "--max-wait", "0", "--dir"])
            .arg(stack.dir.join("recordings"))
            .args(&s3_flags(&server, &credentials)[2..])
            .output()?;
        assert!(
            played.status.success(),
            "play: {}",
            String::from_utf8_lossy(&played.stderr)
        );
        assert!(String::from_utf8_lossy(&played.stdout).contains(text.as_str()));
    }
    // `verify --dir` checks their seals and says their bytes are in the bucket.
    let verified = Command::new(binary("kube-recorder")?)
        .args(["verify", "--dir"])
        .arg(stack.dir.join("recordings"))
        .output()?;
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "verify: {stderr}");
    assert!(
        stderr.contains("2 recordings are kept only in the S3 bucket"),
        "{stderr}"
    );

    // The recorder host is lost. A new recorder with the same key and an empty directory
    // serves what the bucket holds.
    if let Some(recorder) = stack.recorder.as_mut() {
        recorder.kill();
    }
    let fresh = scratch.path().join("fresh-recorder");
    let mut command = Command::new(binary("kube-recorder")?);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--viewer-tokens"])
        .arg(stack.dir.join("recorder-viewers"))
        .arg("--signing-key")
        .arg(stack.dir.join("recordings").join("signing-key.pem"))
        .arg("--dir")
        .arg(&fresh)
        .args(s3_flags(&server, &credentials));
    let (_fresh_recorder, lines) = Service::start(
        "kube-recorder (new host)",
        command,
        &stack.dir.join("recorder-fresh.log"),
        1,
    )?;
    let addr = listening_address(&lines[0])?
        .trim_start_matches("http://")
        .to_owned();
    let listed = recorder_get(&addr, "/api/recordings", Some(RECORDER_VIEWER_TOKEN))?;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed: Vec<Value> = serde_json::from_slice(&listed.body)?;
    let mut listed_ids: Vec<&str> = listed.iter().filter_map(|r| r["id"].as_str()).collect();
    listed_ids.sort_unstable();
    let mut expected: Vec<&str> = sessions.iter().map(|(id, _)| id.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(listed_ids, expected);
    for (id, _) in &sessions {
        let cast = recorder_get(
            &addr,
            &format!("/api/recordings/{id}"),
            Some(RECORDER_VIEWER_TOKEN),
        )?;
        assert_eq!(cast.status, 200);
        assert!(cast.body == shipped_cast(&server, id)?, "{id}");
        let seal = recorder_get(
            &addr,
            &format!("/api/recordings/{id}/verify"),
            Some(RECORDER_VIEWER_TOKEN),
        )?;
        let seal: Value = serde_json::from_slice(&seal.body)?;
        assert_eq!(seal["status"], "verified", "{seal}");
    }
    // No cast was copied to the new host: they are read from the bucket.
    let local_casts = std::fs::read_dir(fresh.join("recordings"))?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".cast"))
        .count();
    assert_eq!(local_casts, 0);
    Ok(())
}
