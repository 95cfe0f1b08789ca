//! A `kubectl cp` to a pod sends its archive on stdin: the recording lists the archive's files
//! whether or not the caller's grant records input, and records nothing of stdin as text when it
//! does not.

mod common;

use common::{header, Behaviour, Cast, FakeRecorder, MemNet, Route};
use recorder_client::{OwnedSessionEvent, Recorder, RecorderConfig, Session, SessionType};

/// A tar archive of one 1234-byte file `dir/a.bin`, made by the system's tar.
fn archive() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("dir")).expect("mkdir");
    std::fs::write(dir.path().join("dir/a.bin"), vec![7u8; 1234]).expect("write");
    let output = std::process::Command::new("tar")
        .args(["cf", "-", "-C"])
        .arg(dir.path())
        .arg("dir/a.bin")
        .output()
        .expect("tar runs");
    assert!(output.status.success(), "tar failed");
    output.stdout
}

async fn record_copy_to_pod(record_input: bool, stdin: Vec<Vec<u8>>) -> Cast {
    let net = MemNet::default();
    let (fake, mut uploads) = FakeRecorder::new(Behaviour::default());
    let addr = net.route("10.0.0.1:80", Route::Recorder(fake));
    let mut header = header(SessionType::Exec);
    header.file_copy = Some(castfmt::FileCopy {
        direction: castfmt::FileCopyDirection::ToPod,
        paths: vec!["dest".into()],
        resume_from: None,
    });
    let recording = Recorder::with_dialer(RecorderConfig::default(), net)
        .connect(
            &[addr],
            Session::new(header, false).with_record_input(record_input),
        )
        .await
        .expect("connect");
    for bytes in stdin {
        recording
            .feed(OwnedSessionEvent::Input { bytes })
            .await
            .expect("feed");
    }
    assert!(recording.finish().await.is_uploaded());
    Cast::parse(&uploads.recv().await.expect("upload").ended().await.data)
}

#[tokio::test(start_paused = true)]
async fn the_archive_is_listed_without_input_recording_and_other_stdin_stays_unrecorded() {
    let mut stdin = vec![archive()];
    stdin.push(b"not part of the archive".to_vec());
    let cast = record_copy_to_pod(false, stdin).await;
    assert!(
        cast.text("m").contains("file: dir/a.bin (1234 bytes)"),
        "{:?}",
        cast.events
    );
    assert_eq!(cast.text("i"), "", "input is not recorded for this caller");
}
