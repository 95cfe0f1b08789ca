//! `kubectl cp` through the proxy, recorded: a directory with a text file and a binary file of a
//! few hundred KB is copied to the demo pod and back, over WebSocket and SPDY, with and without
//! `--retries`. The files arrive intact; each recording's index entry says it is a file copy,
//! which way, and lists the files with their sizes; the casts hold no archive bytes and replay in
//! asciinema.
//!
//! The stand-in apiserver runs exec commands as host processes in the pod's own working directory
//! (a directory under its temporary directory), so the remote paths here are relative (`x-...`):
//! `demo:/tmp/x` would be the host's real `/tmp/x`. The `tar` is the host's GNU tar.

use std::collections::BTreeMap;
use std::path::Path;

use e2e::cast::{asciinema_accepts, events_of, header_of};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

/// Text the copied files hold and a recording of them must not: the archive's content.
const CONTENT_MARK: &str = "file-content-that-stays-out-of-the-recording";

fn recorded_stack() -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    Stack::start(options)
}

/// The directory copied: its files by name, with their bytes.
fn source_files() -> BTreeMap<&'static str, Vec<u8>> {
    let mut binary = Vec::with_capacity(300_000);
    let mut state = 0x2545_f491_u32;
    while binary.len() < 300_000 {
        // xorshift: bytes of every value, NULs and invalid UTF-8 included.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        binary.extend_from_slice(&state.to_le_bytes());
    }
    binary.truncate(300_000 - CONTENT_MARK.len());
    binary.extend_from_slice(CONTENT_MARK.as_bytes());
    BTreeMap::from([
        ("data.bin", binary),
        ("notes.txt", format!("{CONTENT_MARK}\nhello\n").into_bytes()),
    ])
}

fn write_tree(dir: &Path, files: &BTreeMap<&str, Vec<u8>>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

/// The index entry of the recording whose command is `command`.
fn recording_with_command<'a>(recordings: &'a [Value], command: &str) -> anyhow::Result<&'a Value> {
    recordings
        .iter()
        .find(|r| r["command"] == command)
        .ok_or_else(|| anyhow::anyhow!("no recording of {command:?}: {recordings:#?}"))
}

/// The entry's `fileCopy.files` as name to size.
fn listed_files(entry: &Value) -> BTreeMap<String, u64> {
    entry["fileCopy"]["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_owned(),
                f["size"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// What a file copy's recording must show: the direction, the files, and no archive bytes.
fn check_copy_recording(
    stack: &Stack,
    entry: &Value,
    direction: &str,
    paths: &[&str],
    expected: &BTreeMap<String, u64>,
    what: &str,
) -> anyhow::Result<()> {
    assert_eq!(entry["outcome"], "complete", "{what}: {entry}");
    assert_eq!(entry["exitCode"], 0, "{what}: {entry}");
    assert_eq!(entry["fileCopy"]["direction"], direction, "{what}: {entry}");
    assert_eq!(
        entry["fileCopy"]["paths"],
        serde_json::json!(paths),
        "{what}: {entry}"
    );
    assert_eq!(&listed_files(entry), expected, "{what}: {entry}");
    let cast = stack.recording_cast(entry["id"].as_str().unwrap_or_default())?;
    let header = header_of(&cast)?;
    assert_eq!(
        header["fileCopy"]["direction"], direction,
        "{what}: {header}"
    );
    assert!(!cast.contains("ustar"), "{what}: tar headers in the cast");
    assert!(
        !cast.contains(CONTENT_MARK),
        "{what}: file content in the cast"
    );
    let markers: Vec<String> = events_of(&cast)?
        .into_iter()
        .filter(|e| e.code == "m")
        .map(|e| e.data)
        .collect();
    for (path, size) in expected {
        let marker = format!("file: {path} ({size} bytes)");
        assert!(markers.contains(&marker), "{what}: {marker} in {markers:?}");
    }
    assert!(
        !markers.iter().any(|m| m.starts_with("file listing")),
        "{what}: {markers:?}"
    );
    asciinema_accepts(&stack.dir, &cast)?;
    Ok(())
}

#[test]
fn kubectl_cp_to_and_from_a_pod_is_recorded_as_a_file_listing() -> anyhow::Result<()> {
    let mut stack = recorded_stack()?;
    let files = source_files();
    let local = stack.dir.join("cp-source");
    write_tree(&local, &files)?;
    let local_arg = local.to_str().unwrap_or_default().to_owned();
    let mut sessions = 0;
    for (name, websockets) in PROTOCOLS {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let remote = format!("x-{name}");
        let expected: BTreeMap<String, u64> = files
            .iter()
            .map(|(file, bytes)| (format!("{remote}/{file}"), bytes.len() as u64))
            .collect();

        // To the pod: `test -d x-...` (it is not there yet), then `tar -xmf - -C .`.
        let to_pod = stack
            .kubectl
            .run(&["cp", &local_arg, &format!("demo:{remote}")])?;
        assert!(
            to_pod.success,
            "{name}: kubectl cp to the pod: {}\n{}",
            to_pod.stderr,
            stack.logs()
        );
        sessions += 2;
        let recordings = stack.finished_recordings(sessions)?;
        let probe = recording_with_command(&recordings, &format!("test -d {remote}"))?;
        assert!(
            probe.get("fileCopy").is_none(),
            "{name}: the probe is an ordinary exec: {probe}"
        );
        let extract = recording_with_command(&recordings, "tar -xmf - -C .")?;
        check_copy_recording(&stack, extract, "to-pod", &["."], &expected, name)?;

        // And back, with and without --retries (which wraps tar in `sh -c`).
        for (variant, retries, command) in [
            ("plain", None, format!("tar cf - {remote}")),
            (
                "retries",
                Some("--retries=2"),
                format!("sh -c tar cf - {remote} | tail -c+0"),
            ),
        ] {
            let back = stack.dir.join(format!("cp-back-{name}-{variant}"));
            let mut args = vec!["cp".to_owned()];
            args.extend(retries.map(str::to_owned));
            args.push(format!("demo:{remote}"));
            args.push(back.to_str().unwrap_or_default().to_owned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let from_pod = stack.kubectl.run(&args)?;
            assert!(
                from_pod.success,
                "{name} {variant}: kubectl cp from the pod: {}\n{}",
                from_pod.stderr,
                stack.logs()
            );
            for (file, bytes) in &files {
                let copied = std::fs::read(back.join(file))?;
                assert!(
                    &copied == bytes,
                    "{name} {variant}: {file} differs ({} bytes)",
                    copied.len()
                );
            }
            sessions += 1;
            let recordings = stack.finished_recordings(sessions)?;
            let create = recording_with_command(&recordings, &command)?;
            let what = format!("{name} {variant}");
            check_copy_recording(&stack, create, "from-pod", &[&remote], &expected, &what)?;
        }
    }
    Ok(())
}

/// Commands shaped like `kubectl cp`'s but not kubectl's own: a copy from the pod given stdin
/// (it could be driven while its output is read as an archive), and options where kubectl puts
/// paths (`--files-from=/dev/stdin`, `--checkpoint-action=exec=...` would let tar run anything).
/// Their output is recorded as any exec's is, archive bytes and file content included.
#[test]
fn commands_posing_as_kubectl_cp_have_their_output_recorded() -> anyhow::Result<()> {
    let mut stack = recorded_stack()?;
    let files = source_files();
    let local = stack.dir.join("cp-source");
    write_tree(&local, &files)?;
    let local_arg = local.to_str().unwrap_or_default().to_owned();
    let mut sessions = 0;
    for (name, websockets) in PROTOCOLS {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let remote = format!("posing-{name}");
        let to_pod = stack
            .kubectl
            .run(&["cp", &local_arg, &format!("demo:{remote}")])?;
        assert!(to_pod.success, "{name}: {}", to_pod.stderr);
        sessions += 2;
        let notes = format!("{remote}/notes.txt");
        for (args, command) in [
            (
                vec!["exec", "-i", "demo", "--", "tar", "cf", "-", &notes],
                format!("tar cf - {notes}"),
            ),
            (
                vec![
                    "exec",
                    "demo",
                    "--",
                    "tar",
                    "cf",
                    "-",
                    "--no-recursion",
                    &notes,
                ],
                format!("tar cf - --no-recursion {notes}"),
            ),
        ] {
            let run = stack.kubectl.run(&args)?;
            assert!(run.success, "{name} {command}: {}", run.stderr);
            assert!(run.stdout.contains(CONTENT_MARK), "{name}: {command}");
            sessions += 1;
            let recordings = stack.finished_recordings(sessions)?;
            let entry = recording_with_command(&recordings, &command)?;
            assert!(
                entry.get("fileCopy").is_none(),
                "{name}: {command} is not a file copy: {entry}"
            );
            let cast = stack.recording_cast(entry["id"].as_str().unwrap_or_default())?;
            let output: String = events_of(&cast)?
                .into_iter()
                .filter(|e| e.code == "o")
                .map(|e| e.data)
                .collect();
            assert!(
                output.contains(CONTENT_MARK),
                "{name}: {command}: the file's content is in the recording"
            );
        }
    }
    Ok(())
}
