//! `kube-recorder serve --storage s3` end to end: sessions recorded through the proxy with the
//! real kubectl land in the recording directory and, identical, in a bucket of a real S3 server
//! (moto, installed by `cargo xtask ci`); a recorder killed mid-session leaves the recording
//! marked incomplete in both once it is started again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::binaries::binary;
use e2e::process::Service;
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};
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
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    options.recorder_args = s3_flags(server, &credentials(scratch)?);
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
