//! Encryption at rest end to end: real `kubectl exec` sessions through the proxy, over WebSocket
//! and SPDY, recorded by the real `kube-recorder serve --encrypt-to` with an auditor key made by
//! Debian's `age-keygen`. The recorder's files hold none of the sessions' output; `kube-recorder
//! play --identity` with the auditor's key shows it, and so does the standard `age -d`;
//! `kube-recorder verify` passes without the key.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use e2e::port_forward::{echo_server, round_trip, start_forward, TRANSPORTS};
use e2e::stack::{admin_caller, default_apiserver_config, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

const AGE: &str = "/usr/bin/age";
const AGE_KEYGEN: &str = "/usr/bin/age-keygen";

/// The output of the session over `protocol`. The command prints it with `printf`, so the
/// command line (which the index entry keeps in plaintext, as documented) does not contain it.
fn secret_output(protocol: &str) -> String {
    format!("encrypted-e2e-output-{protocol}-5b7d\n")
}

fn require_age() {
    for tool in [AGE, AGE_KEYGEN] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: Debian's `age` package makes the auditor key and checks the files; \
             `cargo xtask e2e` (or `cargo xtask ci`) installs it"
        );
    }
}

/// Makes the auditor's key with `age-keygen`: (identity file, recipient).
fn auditor_key(dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let key = dir.join("auditor.key");
    let made = Command::new(AGE_KEYGEN).arg("-o").arg(&key).output()?;
    anyhow::ensure!(
        made.status.success(),
        "age-keygen: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public = Command::new(AGE_KEYGEN).arg("-y").arg(&key).output()?;
    anyhow::ensure!(public.status.success(), "age-keygen -y");
    Ok((key, String::from_utf8(public.stdout)?.trim().to_owned()))
}

fn kube_recorder(args: &[&std::ffi::OsStr]) -> anyhow::Result<(bool, String, String)> {
    let output = Command::new(e2e::binaries::binary("kube-recorder")?)
        .env_remove("KUBE_RECORDER_DIR")
        .env_remove("KUBE_RECORDER_SERVER")
        .env_remove("KUBE_RECORDER_IDENTITY")
        .args(args)
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// The recorder's finished port-forward captures, once there are `count` and none is still
/// being stored.
fn finished_captures(stack: &Stack, count: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let captures: Vec<Value> = stack
            .recordings()?
            .into_iter()
            .filter(|r| r["kind"] == "port-forward-capture")
            .collect();
        if captures.len() >= count && captures.iter().all(|c| c["outcome"] != "recording") {
            return Ok(captures);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "captures: {captures:#?}\n{}",
            stack.logs()
        );
        // A poll of an observable condition under a deadline; the pause only spares the CPU.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn recordings_are_stored_encrypted_and_play_with_the_auditor_key() -> anyhow::Result<()> {
    require_age();
    let keys = tempfile::tempdir()?;
    let (identity, recipient) = auditor_key(keys.path())?;
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    options.recorder_args = vec!["--encrypt-to".into(), recipient.clone()];
    let mut stack = Stack::start(options)?;

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
            &format!("printf 'encrypted-e2e-%s-%s\\n' output-{name} 5b7d"),
        ])?;
        assert_eq!(
            output.code,
            Some(0),
            "{name}: {}\n{}",
            output.stderr,
            stack.logs()
        );
        assert_eq!(output.stdout, secret_output(name), "{name}");

        let recordings = stack.finished_recordings(index + 1)?;
        let newest = &recordings[0];
        assert_eq!(newest["outcome"], "complete", "{name}: {newest}");
        assert_eq!(newest["encrypted"], true, "{name}: {newest}");
        // The metadata stays plaintext (documented): who and where.
        assert_eq!(newest["pod"], "demo", "{name}: {newest}");
        assert_eq!(
            newest["srcNodeUser"], "alice@example.com",
            "{name}: {newest}"
        );
        let id = newest["id"].as_str().unwrap_or_default().to_owned();

        // The recorder's directory, as the stack passes it to `kube-recorder serve --dir`.
        let dir = stack.dir.join("recordings");
        let file = dir.join("recordings").join(format!("{id}.cast.age"));
        let stored = std::fs::read(&file)?;
        assert!(stored.starts_with(b"age-encryption.org/v1\n"), "{name}");
        assert!(
            !dir.join("recordings").join(format!("{id}.cast")).exists(),
            "{name}: no plaintext cast"
        );

        // The read API serves the ciphertext as stored.
        let served = stack.recorder_get(&format!("/api/recordings/{id}"))?;
        assert_eq!(served.status, 200, "{name}");
        assert!(served.body == stored, "{name}: served exactly as stored");

        // The auditor's key shows the session's output, exactly.
        let (ok, out, err) = kube_recorder(&[
            "play".as_ref(),
            id.as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
            "--identity".as_ref(),
            identity.as_os_str(),
            "--max-wait".as_ref(),
            "0".as_ref(),
        ])?;
        assert!(ok, "{name}: {err}");
        assert_eq!(out, secret_output(name), "{name}");

        // The standard age CLI decrypts the same file to the cast.
        let decrypted = Command::new(AGE)
            .arg("-d")
            .arg("-i")
            .arg(&identity)
            .arg(&file)
            .output()?;
        assert!(
            decrypted.status.success(),
            "{name}: age -d: {}",
            String::from_utf8_lossy(&decrypted.stderr)
        );
        let cast = String::from_utf8(decrypted.stdout)?;
        assert_eq!(
            e2e::cast::output_of(&cast)?,
            secret_output(name),
            "{name}: {cast}"
        );
        assert_eq!(
            e2e::cast::header_of(&cast)?["kubernetes"]["PodName"],
            "demo"
        );
    }

    // No file the recorder keeps holds either session's output.
    let dir = stack.dir.join("recordings");
    for file in all_files(&dir)? {
        let bytes = std::fs::read(&file)?;
        for (name, _) in PROTOCOLS {
            assert!(
                !contains(&bytes, secret_output(name).trim_end().as_bytes()),
                "{} holds the {name} session's output",
                file.display()
            );
        }
    }

    // verify checks the ciphertext with the recorder's public key only.
    let (ok, out, err) = kube_recorder(&["verify".as_ref(), "--dir".as_ref(), dir.as_os_str()])?;
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("2 recordings verified"),
        "{err}\n{}",
        stack.logs()
    );

    // Another key is refused.
    let other = tempfile::tempdir()?;
    let (intruder, _) = auditor_key(other.path())?;
    let id = stack.recordings()?[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (ok, out, err) = kube_recorder(&[
        "play".as_ref(),
        id.as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--identity".as_ref(),
        intruder.as_os_str(),
    ])?;
    assert!(!ok);
    assert_eq!(out, "");
    assert!(err.contains("encrypted to other keys"), "{err}");
    Ok(())
}

#[test]
fn port_forward_captures_are_stored_encrypted_and_age_gives_back_the_bytes() -> anyhow::Result<()> {
    require_age();
    let keys = tempfile::tempdir()?;
    let (identity, recipient) = auditor_key(keys.path())?;
    let echo_port = echo_server()?;
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant {
        record_port_forward_data: true,
        ..RecordingGrant::ENFORCED
    });
    options.apiserver_config = format!(
        "{}portForward: {{\"8080\": \"127.0.0.1:{echo_port}\"}}\n",
        default_apiserver_config(0)
    );
    options.recorder_args = vec!["--encrypt-to".into(), recipient];
    let mut stack = Stack::start(options)?;

    let dir = stack.dir.join("recordings");
    for (index, (name, websockets)) in TRANSPORTS.iter().enumerate() {
        stack.kubectl.env = vec![(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS".into(),
            websockets.to_string(),
        )];
        let payload = format!("port-forward-secret-{name}-9c2e\n")
            .repeat(2000)
            .into_bytes();
        let (forward, local_port) = start_forward(&stack)?;
        let echoed = round_trip(local_port, &payload)?;
        assert!(echoed == payload, "{name}: the echo is byte-exact");
        let captures = finished_captures(&stack, index + 1)?;
        drop(forward);
        let capture = &captures[0];
        assert_eq!(capture["encrypted"], true, "{name}: {capture}");
        assert_eq!(capture["outcome"], "complete", "{name}: {capture}");
        assert_eq!(
            capture["portForward"]["bytesToClient"],
            payload.len(),
            "{name}"
        );
        let id = capture["id"].as_str().unwrap_or_default();
        let file = dir.join("recordings").join(format!("{id}.pfcap.age"));
        assert!(std::fs::read(&file)?.starts_with(b"age-encryption.org/v1\n"));
        assert!(!dir.join("recordings").join(format!("{id}.pfcap")).exists());

        // In a plaintext capture, the first event each way holds the payload's first bytes
        // as base64: no file the recorder keeps has them, nor the capture's header.
        let first_bytes = base64::engine::general_purpose::STANDARD.encode(&payload[..48]);
        for stored in all_files(&dir)? {
            let bytes = std::fs::read(&stored)?;
            for needle in [
                first_bytes.as_bytes(),
                b"kap-port-forward/1",
                &payload[..40],
            ] {
                assert!(
                    !contains(&bytes, needle),
                    "{name}: {} holds plaintext of the capture",
                    stored.display()
                );
            }
        }

        // The auditor's key gives back the capture, whose events hold the bytes each way.
        let decrypted = Command::new(AGE)
            .arg("-d")
            .arg("-i")
            .arg(&identity)
            .arg(&file)
            .output()?;
        assert!(decrypted.status.success(), "{name}: age -d");
        let text = String::from_utf8(decrypted.stdout)?;
        let mut lines = text.lines();
        let header: Value = serde_json::from_str(lines.next().unwrap_or_default())?;
        assert_eq!(header["version"], "kap-port-forward/1", "{name}: {header}");
        let (mut sent, mut received) = (Vec::new(), Vec::new());
        for line in lines {
            let event: Value = serde_json::from_str(line)?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(event[2].as_str().unwrap_or_default())?;
            match event[1].as_str() {
                Some("c") => sent.extend(data),
                Some("s") => received.extend(data),
                other => anyhow::bail!("{name}: unexpected direction {other:?}"),
            }
        }
        assert!(
            sent == payload && received == payload,
            "{name}: both ways exact"
        );
    }
    let (ok, out, err) = kube_recorder(&["verify".as_ref(), "--dir".as_ref(), dir.as_os_str()])?;
    assert!(ok, "{out}\n{err}");
    Ok(())
}
