//! Tamper evidence end to end: real `kubectl exec` sessions through the proxy, recorded and
//! sealed by the real `kube-recorder`; `kube-recorder verify --dir` passes on the recorder's
//! directory, and fails naming the recording and the reason after each kind of tampering (on
//! copies of the directory).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::cast::asciinema_accepts;
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

/// `kube-recorder verify --dir DIR ARGS...`: (success, stdout, stderr).
fn verify(dir: &Path, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let output = Command::new(e2e::binaries::binary("kube-recorder")?)
        .env_remove("KUBE_RECORDER_DIR")
        .arg("verify")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// The finished index entries in the recorder's directory, read from disk, oldest upload first,
/// once there are `count`.
fn finished_on_disk(stack: &Stack, dir: &Path, count: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut finished = Vec::new();
        for entry in std::fs::read_dir(dir.join("recordings"))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with('.') || !name.ends_with(".json") || name.ends_with(".manifest.json")
            {
                continue;
            }
            let meta: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
            if meta["outcome"] != "recording" {
                finished.push(meta);
            }
        }
        if finished.len() >= count {
            finished.sort_by(|a, b| {
                let at = |v: &Value| v["receivedAt"].as_f64().unwrap_or_default();
                at(a).total_cmp(&at(b))
            });
            return Ok(finished);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {count} recordings finished\n{}",
            finished.len(),
            stack.logs()
        );
        // The recorder finishes a recording after the proxy ends the upload: poll under a deadline.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A copy of `dir` named `name` under `scratch`, tampered with by `tamper`.
fn tampered(
    dir: &Path,
    scratch: &Path,
    name: &str,
    tamper: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let copy = scratch.join(name);
    copy_dir(dir, &copy)?;
    tamper(&copy)?;
    Ok(copy)
}

#[test]
fn verify_passes_on_recorded_sessions_and_names_each_tampering() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    let mut stack = Stack::start(options)?;
    for (name, websockets) in PROTOCOLS {
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
            "echo sealed-output; exit 0",
        ])?;
        assert_eq!(
            output.code,
            Some(0),
            "{name}: {}\n{}",
            output.stderr,
            stack.logs()
        );
    }
    // The recorder's directory, as the stack passes it to `kube-recorder serve --dir`.
    let dir = stack.dir.join("recordings");
    let recordings = finished_on_disk(&stack, &dir, 2)?;
    let ids: Vec<String> = recordings
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    for recording in &recordings {
        assert_eq!(recording["outcome"], "complete", "{recording}");
    }

    // Untouched: verify passes, with the key the recorder created beside the directory's key
    // and with a copy of the public key kept elsewhere.
    let (ok, out, err) = verify(&dir, &[])?;
    assert!(ok, "{out}\n{err}\n{}", stack.logs());
    assert_eq!(out, "", "{err}");
    assert!(
        err.contains("2 recordings verified, chain of 2 entries"),
        "{err}"
    );
    let scratch = tempfile::tempdir()?;
    let public_key = scratch.path().join("recorder.pub");
    std::fs::copy(dir.join("signing-key.pem.pub"), &public_key)?;
    let key_arg = public_key.to_string_lossy().into_owned();
    let (ok, out, err) = verify(&dir, &["--public-key", &key_arg])?;
    assert!(ok, "{out}\n{err}");
    // Casts stay plain asciicast files that standard tools read.
    let cast_path = |dir: &Path, id: &str| dir.join("recordings").join(format!("{id}.cast"));
    let cast = std::fs::read_to_string(cast_path(&dir, &ids[1]))?;
    assert!(cast.contains("sealed-output"), "{cast}");
    asciinema_accepts(scratch.path(), &cast)?;

    let (first, second) = (&ids[0], &ids[1]);
    let check = |copy: &Path, expected: &[String]| -> anyhow::Result<()> {
        let (ok, out, err) = verify(copy, &["--public-key", &key_arg])?;
        assert!(!ok, "verify passed on {}: {out}\n{err}", copy.display());
        for line in expected {
            assert!(
                out.lines().any(|l| l.starts_with(line.as_str())),
                "{}: expected a line starting {line:?}, got:\n{out}",
                copy.display()
            );
        }
        Ok(())
    };

    // One byte changed in a cast.
    let copy = tampered(&dir, scratch.path(), "byte", |d| {
        let path = cast_path(d, second);
        let mut bytes = std::fs::read(&path)?;
        let at = bytes.len() - 5;
        bytes[at] ^= 0x01;
        std::fs::write(&path, bytes)?;
        Ok(())
    })?;
    check(
        &copy,
        &[format!(
            "{second}: cast changed: its bytes do not match the sealed hash"
        )],
    )?;

    // A cast truncated.
    let copy = tampered(&dir, scratch.path(), "truncated", |d| {
        let path = cast_path(d, first);
        let bytes = std::fs::read(&path)?;
        std::fs::write(&path, &bytes[..bytes.len() / 2])?;
        Ok(())
    })?;
    check(&copy, &[format!("{first}: cast truncated: ")])?;

    // A recording deleted: its cast, index entry and manifest.
    let copy = tampered(&dir, scratch.path(), "deleted", |d| {
        for suffix in ["cast", "json", "manifest.json"] {
            std::fs::remove_file(d.join("recordings").join(format!("{first}.{suffix}")))?;
        }
        Ok(())
    })?;
    check(
        &copy,
        &[format!(
            "{first}: recording deleted: chain line 1 names it, but its file and manifest are gone"
        )],
    )?;

    // Two entries of the chained index swapped.
    let copy = tampered(&dir, scratch.path(), "swapped", |d| {
        let path = d.join("chain.jsonl");
        let text = std::fs::read_to_string(&path)?;
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(0, 1);
        std::fs::write(&path, lines.join("\n") + "\n")?;
        Ok(())
    })?;
    check(
        &copy,
        &[
            format!("{second}: chain entry seq 2 is at line 1: chain entries reordered"),
            format!("{first}: chain entry seq 1 is at line 2: chain entries reordered"),
            format!("{second}: chain link broken at line 1"),
            format!("{first}: chain link broken at line 2"),
        ],
    )?;

    // The recorder's own directory is still intact.
    let (ok, out, err) = verify(&dir, &["--public-key", &key_arg])?;
    assert!(ok, "{out}\n{err}");
    Ok(())
}
