//! A `kubectl cp` session through the encoder: the archive becomes markers, everything else is
//! recorded as usual.

use std::process::Command;
use std::time::Duration;

use castfmt::{Caller, CastHeader, FileCopy, FileCopyDirection, KubernetesSession, SessionType};
use sessiontap::{ExitStatus, OutputStream};

use crate::encoder::{CastEncoder, EncoderOptions};

fn header(direction: FileCopyDirection, resume_from: Option<u64>) -> CastHeader {
    let mut header = CastHeader::kubernetes(
        1_700_000_000,
        Caller::Tagged {
            node: "ci".into(),
            node_id: "n1".into(),
            tags: vec!["tag:ci".into()],
        },
        "tar cf - x",
        KubernetesSession {
            pod_name: "p".into(),
            namespace: "ns".into(),
            container: "c".into(),
            session_type: SessionType::Exec,
        },
    );
    header.file_copy = Some(FileCopy {
        direction,
        paths: vec!["x".into()],
        resume_from,
    });
    header
}

/// `x/` with a text file and a 100 KB binary file, archived by GNU tar.
fn archive() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let x = dir.path().join("x");
    std::fs::create_dir(&x).expect("mkdir");
    std::fs::write(x.join("a.txt"), b"SECRET-TEXT\n").expect("write");
    let binary: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(x.join("b.bin"), binary).expect("write");
    let output = Command::new("tar")
        .args(["--sort=name", "-cf", "-", "x"])
        .current_dir(dir.path())
        .output()
        .expect("tar");
    assert!(output.status.success());
    output.stdout
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn events(out: &[u8]) -> Vec<(String, String)> {
    std::str::from_utf8(out)
        .expect("utf-8")
        .lines()
        .skip(1)
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            (
                value[1].as_str().unwrap_or_default().to_owned(),
                value[2].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn marker(text: &str) -> (String, String) {
    ("m".to_owned(), text.to_owned())
}

#[test]
fn a_copy_from_the_pod_is_listed_and_its_stderr_recorded() {
    let archive = archive();
    let mut encoder = CastEncoder::new(
        header(FileCopyDirection::FromPod, None),
        EncoderOptions::default(),
    );
    let mut out = Vec::new();
    encoder.start(&mut out);
    for (i, chunk) in archive.chunks(777).enumerate() {
        encoder.output(ms(i as u64), OutputStream::Stdout, chunk, &mut out);
        if i == 1 {
            encoder.output(ms(3), OutputStream::Stderr, b"tar: warning\n", &mut out);
        }
    }
    encoder.exit(ms(500), &ExitStatus::Success, &mut out);
    encoder.finish(ms(501), &mut out);
    let text = String::from_utf8(out.clone()).expect("utf-8");
    assert!(
        !text.contains("ustar") && !text.contains("SECRET"),
        "{text}"
    );
    let header: serde_json::Value =
        serde_json::from_str(text.lines().next().unwrap_or_default()).expect("header");
    assert_eq!(header["fileCopy"]["direction"], "from-pod");
    assert_eq!(
        events(&out),
        vec![
            marker("directory: x/"),
            marker("file: x/a.txt (12 bytes)"),
            ("o".into(), "tar: warning\n".into()),
            marker("file: x/b.bin (100000 bytes)"),
            marker("exit 0"),
        ]
    );
}

#[test]
fn a_copy_to_the_pod_is_listed_from_stdin_even_when_input_is_not_recorded() {
    let archive = archive();
    for record_input in [false, true] {
        let mut encoder = CastEncoder::new(
            header(FileCopyDirection::ToPod, None),
            EncoderOptions {
                record_input,
                ..EncoderOptions::default()
            },
        );
        let mut out = Vec::new();
        encoder.input(ms(1), &archive, &mut out);
        encoder.output(ms(2), OutputStream::Stdout, b"done\n", &mut out);
        encoder.finish(ms(3), &mut out);
        assert_eq!(
            events(&out),
            vec![
                marker("directory: x/"),
                marker("file: x/a.txt (12 bytes)"),
                marker("file: x/b.bin (100000 bytes)"),
                ("o".into(), "done\n".into()),
            ],
            "record_input {record_input}"
        );
    }
}

#[test]
fn what_is_not_an_archive_is_recorded_as_the_stream_is() {
    let mut encoder = CastEncoder::new(
        header(FileCopyDirection::FromPod, None),
        EncoderOptions::default(),
    );
    let mut out = Vec::new();
    let fake = "not a tar archive, café ".repeat(30).into_bytes();
    // Inside the last é: the character is carried across the two outputs.
    let split = fake.len() - 2;
    encoder.output(ms(1), OutputStream::Stdout, &fake[..split], &mut out);
    encoder.output(ms(2), OutputStream::Stdout, &fake[split..], &mut out);
    encoder.finish(ms(3), &mut out);
    let seen = events(&out);
    assert_eq!(
        seen[0],
        marker(
            "file listing stopped: not a tar header (no checksum) at byte 0; \
             the rest of stdout is recorded as it is"
        )
    );
    let recorded: String = seen[1..]
        .iter()
        .filter(|(code, _)| code == "o")
        .map(|(_, data)| data.as_str())
        .collect();
    assert_eq!(recorded.as_bytes(), &fake[..]);

    // Stdin that is not an archive is recorded only when input is.
    let mut encoder = CastEncoder::new(
        header(FileCopyDirection::ToPod, None),
        EncoderOptions::default(),
    );
    let mut out = Vec::new();
    encoder.input(ms(1), &[b'z'; 600], &mut out);
    let seen = events(&out);
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[test]
fn a_cut_archive_and_a_resumed_copy_say_so() {
    let archive = archive();
    let mut encoder = CastEncoder::new(
        header(FileCopyDirection::FromPod, None),
        EncoderOptions::default(),
    );
    let mut out = Vec::new();
    encoder.output(ms(1), OutputStream::Stdout, &archive[..5000], &mut out);
    encoder.finish(ms(2), &mut out);
    assert_eq!(
        events(&out).last(),
        Some(&marker(
            "file listing incomplete: the archive is cut short at byte 5000"
        ))
    );

    let mut encoder = CastEncoder::new(
        header(FileCopyDirection::FromPod, Some(1024)),
        EncoderOptions::default(),
    );
    let mut out = Vec::new();
    encoder.output(ms(1), OutputStream::Stdout, &archive[1024..], &mut out);
    encoder.finish(ms(2), &mut out);
    let seen = events(&out);
    // Bytes that cannot be read as a member's are never left out: a program posing as a
    // resumed copy cannot hide its output.
    assert_eq!(
        seen.first(),
        Some(&marker(
            "file listing skipped: the copy resumed 1024 bytes into the archive; stdout is recorded as it is"
        ))
    );
    let output: String = seen
        .iter()
        .filter(|(code, _)| code == "o")
        .map(|(_, text)| text.as_str())
        .collect();
    assert!(output.contains("SECRET-TEXT"), "{seen:?}");
}

#[test]
fn input_to_a_copy_from_the_pod_stops_the_listing() {
    // kubectl gives a copy from the pod no stdin; over SPDY the kubelet takes a stdin stream
    // whatever the request said. Input means the command may be driven while its output is
    // read as an archive: from there on, stdout is recorded as it is.
    let archive = archive();
    let mut encoder = CastEncoder::new(
        header(FileCopyDirection::FromPod, None),
        EncoderOptions::default(),
    );
    let mut out = Vec::new();
    // A member's header and the start of its data: the rest would be skipped as file data.
    encoder.output(ms(1), OutputStream::Stdout, &archive[..1100], &mut out);
    encoder.input(ms(2), b"id\n", &mut out);
    encoder.output(
        ms(3),
        OutputStream::Stdout,
        b"uid=0(root) SECRET-OUTPUT\n",
        &mut out,
    );
    encoder.finish(ms(4), &mut out);
    let seen = events(&out);
    assert!(
        seen.contains(&marker(
            "file listing stopped: the command received input; the rest of stdout is recorded as it is"
        )),
        "{seen:?}"
    );
    let output: String = seen
        .iter()
        .filter(|(code, _)| code == "o")
        .map(|(_, text)| text.as_str())
        .collect();
    assert!(output.contains("SECRET-OUTPUT"), "{seen:?}");
}
