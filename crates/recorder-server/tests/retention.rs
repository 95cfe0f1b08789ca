//! Retention: `Store::sweep_retention` removes old, unheld recordings with a `removed` chain
//! entry first; `verify` tells such removals from deletions; `kube-recorder hold` / `release`.

mod common;

use std::path::Path;

use common::fixture;
use recorder_server::seal::{self, PublicKey};
use recorder_server::{
    Protocol, RecorderServer, RecordingEnd, RecordingKind, RecordingMeta, ServerOptions, Store,
};
use tokio::process::Command;

const DAY: f64 = 86_400.0;

/// Runs `kube-recorder ARGS...`; returns (success, stdout, stderr).
async fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-recorder"))
        .env_remove("KUBE_RECORDER_DIR")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .await
        .expect("run kube-recorder");
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn verify(dir: &Path) -> (bool, String, String) {
    run(&["verify", "--dir", dir.to_str().expect("UTF-8 path")]).await
}

fn verify_in_process(dir: &Path) -> seal::VerifyReport {
    let key = PublicKey::load(&seal::public_key_path(&seal::default_key_path(dir))).expect("key");
    seal::verify(dir, &key, &[]).expect("verify")
}

async fn store(store: &Store, kind: RecordingKind) -> RecordingMeta {
    let mut writer = store
        .create_recording_of(kind, Protocol::V2)
        .await
        .expect("recording");
    match kind {
        RecordingKind::PortForwardCapture => writer
            .write(b"{\"format\":\"kap-port-forward/1\",\"port\":8080}\n{\"t\":0.1,\"d\":\"c\",\"b\":\"aGVsbG8=\"}\n")
            .await
            .expect("write"),
        _ => writer.write(&fixture("session.cast")).await.expect("write"),
    }
    writer.finish(RecordingEnd::Complete).await.expect("finish")
}

fn end(meta: &RecordingMeta) -> f64 {
    meta.finished_at.expect("finished")
}

fn files_of(dir: &Path, id: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("recordings"))
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(id))
        .collect();
    names.sort();
    names
}

fn chain_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(seal::CHAIN_FILE))
        .expect("chain")
        .lines()
        .map(|line| serde_json::from_str(line).expect("chain line"))
        .collect()
}

#[tokio::test]
async fn the_sweep_removes_old_unheld_recordings_and_verify_tells_removal_from_deletion() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let s = Store::create(dir).await.expect("create");
    let old_cast = store(&s, RecordingKind::Cast).await;
    let old_capture = store(&s, RecordingKind::PortForwardCapture).await;
    let held = store(&s, RecordingKind::Cast).await;
    let deleted = store(&s, RecordingKind::Cast).await;
    let young = store(&s, RecordingKind::Cast).await;
    // A live recording is never swept, however old.
    let mut live = s.create_recording(Protocol::V2).await.expect("live");
    live.write(&fixture("session.cast")[..50])
        .await
        .expect("write");
    assert!(
        end(&deleted) < end(&young),
        "recordings end one after another"
    );

    s.hold(&held.id, Some("incident 42".into()))
        .await
        .expect("hold");
    let holds = s.holds().await.expect("holds");
    assert_eq!(holds[&held.id].reason.as_deref(), Some("incident 42"));
    // Holding an unknown recording fails.
    assert!(s.hold("20240101T000000Z-00000000", None).await.is_err());

    // `now` is 7 days after the young recording ended: everything before it is older.
    let now = end(&young) + 7.0 * DAY;
    // Hand-deleted first: its files are gone without a removed entry, so the sweep must not
    // record its removal (that would hide the deletion).
    for name in files_of(dir, &deleted.id) {
        if name.ends_with(".cast") {
            std::fs::remove_file(dir.join("recordings").join(name)).expect("rm");
        }
    }
    let report = s.sweep_retention(7, now).await.expect("sweep");
    let mut expected = vec![old_cast.id.clone(), old_capture.id.clone()];
    expected.sort();
    assert_eq!(report.removed, expected);
    assert_eq!(report.held, vec![held.id.clone()]);
    assert!(report.finished.is_empty());
    for id in [&old_cast.id, &old_capture.id] {
        assert!(
            files_of(dir, id).is_empty(),
            "{id}: {:?}",
            files_of(dir, id)
        );
    }
    assert_eq!(files_of(dir, &young.id).len(), 3, "young kept");
    assert_eq!(files_of(dir, &held.id).len(), 3, "held kept");
    assert!(files_of(dir, live.id())
        .iter()
        .any(|n| n.ends_with(".cast")));
    let listed: Vec<String> = s
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(!listed.contains(&old_cast.id) && !listed.contains(&old_capture.id));

    let removed: Vec<serde_json::Value> = chain_lines(dir)
        .into_iter()
        .filter(|l| l["type"] == "removed")
        .collect();
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0]["reason"], "retention: older than 7 days");

    // Only the hand deletion is a problem; the retention removals are named as such.
    let (ok, out, err) = verify(dir).await;
    assert!(!ok, "{out}\n{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&format!("{}: recording deleted", deleted.id)),
        "{out}"
    );
    assert!(
        err.contains(&format!("removed: {}: removed at chain line", old_cast.id))
            && err.contains("(retention: older than 7 days)"),
        "{err}"
    );
    assert!(err.contains("2 removed on purpose (retention)"), "{err}");

    // Without the hand-deleted one, the directory verifies clean.
    for name in files_of(dir, &deleted.id) {
        std::fs::remove_file(dir.join("recordings").join(name)).expect("rm");
    }
    let report = verify_in_process(dir);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].reason.starts_with("recording deleted"));

    // Released, the held recording goes with the next sweep.
    assert!(s.release(&held.id).await.expect("release"));
    assert!(!s.release(&held.id).await.expect("release again"));
    let report = s.sweep_retention(7, now).await.expect("sweep");
    assert_eq!(report.removed, vec![held.id.clone()]);
    assert!(files_of(dir, &held.id).is_empty());
    // A second sweep has nothing to do.
    let report = s.sweep_retention(7, now).await.expect("sweep");
    assert!(report.removed.is_empty() && report.held.is_empty());
    live.finish(RecordingEnd::Complete).await.expect("finish");
}

#[tokio::test]
async fn a_removal_interrupted_after_its_chain_entry_is_finished_by_the_next_sweep_or_start() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let s = Store::create(dir).await.expect("create");
    let a = store(&s, RecordingKind::Cast).await;
    let b = store(&s, RecordingKind::Cast).await;
    let sealer = s.sealer().expect("sealing");
    // A crash right after the chain entry: all files still there.
    sealer
        .record_removal(&a.id, "retention: older than 7 days")
        .expect("removal");
    // A crash after the cast went: manifest and index entry left.
    sealer
        .record_removal(&b.id, "retention: older than 7 days")
        .expect("removal");
    std::fs::remove_file(dir.join(format!("recordings/{}.cast", b.id))).expect("rm");

    let report = verify_in_process(dir);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].subject, a.id);
    assert!(
        report.problems[0].reason.contains("an unfinished removal"),
        "{:?}",
        report.problems
    );

    // The next sweep (nothing is old enough) finishes both.
    let report = s.sweep_retention(7, end(&b) + 1.0).await.expect("sweep");
    assert!(report.removed.is_empty());
    assert_eq!(report.finished, {
        let mut ids = vec![a.id.clone(), b.id.clone()];
        ids.sort();
        ids
    });
    assert!(files_of(dir, &a.id).is_empty() && files_of(dir, &b.id).is_empty());
    let report = verify_in_process(dir);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.removed.len(), 2);

    // At start (recover), too.
    let c = store(&s, RecordingKind::Cast).await;
    sealer.record_removal(&c.id, "retention").expect("removal");
    drop(s);
    let s = Store::create(dir).await.expect("reopen");
    s.recover().await.expect("recover");
    assert!(files_of(dir, &c.id).is_empty());
    assert!(verify_in_process(dir).is_clean());
}

#[tokio::test]
async fn a_changed_recording_is_not_removed_by_retention() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let s = Store::create(dir).await.expect("create");
    let a = store(&s, RecordingKind::Cast).await;
    let cast = dir.join(format!("recordings/{}.cast", a.id));
    let mut bytes = std::fs::read(&cast).expect("read");
    bytes[10] ^= 1;
    std::fs::write(&cast, bytes).expect("write");
    let report = s
        .sweep_retention(1, end(&a) + 2.0 * DAY)
        .await
        .expect("sweep");
    assert!(report.removed.is_empty());
    let report = verify_in_process(dir);
    assert!(
        report.problems[0].reason.contains("cast changed"),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn a_server_with_retention_sweeps_at_start() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let (kept, gone) = {
        let s = Store::create(dir).await.expect("create");
        let kept = store(&s, RecordingKind::Cast).await;
        let gone = store(&s, RecordingKind::Cast).await;
        s.hold(&kept.id, None).await.expect("hold");
        (kept, gone)
    };
    let mut options = ServerOptions::new("127.0.0.1:0".parse().expect("addr"), dir);
    // 0 days: everything finished is old enough (the command line asks for at least 1).
    options.retain_days = Some(0);
    let server = RecorderServer::start(options).await.expect("start");
    // The first sweep runs at start and always ends before the task stops, so once shutdown
    // returns it has run; no waiting on time.
    server.shutdown().await;
    assert!(files_of(dir, &gone.id).is_empty());
    assert_eq!(files_of(dir, &kept.id).len(), 3);
    let report = verify_in_process(dir);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.removed.len(), 1);
    assert!(report.removed[0]
        .reason
        .contains("retention: older than 0 days"));
}

#[tokio::test]
async fn hold_and_release_on_the_command_line() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let d = dir.to_str().expect("UTF-8 path");
    let s = Store::create(dir).await.expect("create");
    let a = store(&s, RecordingKind::Cast).await;
    let b = store(&s, RecordingKind::Cast).await;

    let (ok, out, err) = run(&["hold", "--dir", d, &a.id, "--reason", "legal hold"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, format!("held {}\n", a.id));
    let holds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("holds.json")).expect("holds.json"))
            .expect("JSON");
    assert_eq!(holds[&a.id]["reason"], "legal hold");

    let (ok, out, _) = run(&["ls", "--dir", d]).await;
    assert!(ok);
    let line_of = |out: &str, id: &str| {
        out.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not listed: {out}"))
            .to_owned()
    };
    assert!(line_of(&out, &a.id).contains("complete,held"), "{out}");
    assert!(!line_of(&out, &b.id).contains("held"), "{out}");

    // The sweep keeps it.
    let now = end(&b) + 10.0 * DAY;
    let report = s.sweep_retention(7, now).await.expect("sweep");
    assert_eq!(report.removed, vec![b.id.clone()]);
    assert_eq!(report.held, vec![a.id.clone()]);

    let (ok, _, err) = run(&["hold", "--dir", d, "20240101T000000Z-00000000"]).await;
    assert!(!ok);
    assert!(err.contains("no recording"), "{err}");
    let (ok, _, err) = run(&["hold", "--dir", d, "../etc"]).await;
    assert!(!ok);
    assert!(err.contains("not a recording ID"), "{err}");

    let (ok, out, err) = run(&["release", "--dir", d, &a.id]).await;
    assert!(ok, "{err}");
    assert_eq!(out, format!("released {}\n", a.id));
    let (ok, out, err) = run(&["release", "--dir", d, &a.id]).await;
    assert!(ok, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("was not held"), "{err}");
    let (_, out, _) = run(&["ls", "--dir", d]).await;
    assert!(!line_of(&out, &a.id).contains("held"), "{out}");

    let report = s.sweep_retention(7, now).await.expect("sweep");
    assert_eq!(report.removed, vec![a.id.clone()]);
    let (ok, out, err) = verify(dir).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("0 recordings verified, 2 removed on purpose (retention)"),
        "{err}"
    );
}

/// Edits the recording's index entry (which is not signed) as `edit` says.
fn edit_index(dir: &Path, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(format!("recordings/{id}.json"));
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    edit(&mut entry);
    std::fs::write(&path, serde_json::to_vec(&entry).expect("json")).expect("write");
}

#[tokio::test]
async fn an_index_entry_made_old_by_hand_does_not_get_its_recording_removed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let s = Store::create(dir).await.expect("create");
    let a = store(&s, RecordingKind::Cast).await;
    // Someone who can write the directory, but has no signing key, dates it back to 1970.
    edit_index(dir, &a.id, |entry| {
        entry["finishedAt"] = serde_json::json!(1)
    });
    let report = s
        .sweep_retention(1, end(&a) + 0.5 * DAY)
        .await
        .expect("sweep");
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(!files_of(dir, &a.id).is_empty());
    assert!(
        !chain_lines(dir)
            .iter()
            .any(|line| line["type"] == "removed"),
        "no removal is signed"
    );
    let report = verify_in_process(dir);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.reason.contains("finishedAt is not what the seal says")),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn verify_names_an_index_entry_moved_to_another_namespace_or_user() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let s = Store::create(dir).await.expect("create");
    let a = store(&s, RecordingKind::Cast).await;
    let b = store(&s, RecordingKind::Cast).await;
    let c = store(&s, RecordingKind::Cast).await;
    assert!(verify_in_process(dir).is_clean());
    // Viewers are scoped by these fields: moving them would show a recording to others, or
    // hide it from its own viewers.
    edit_index(dir, &a.id, |entry| {
        entry["namespace"] = serde_json::json!("other")
    });
    edit_index(dir, &b.id, |entry| {
        entry["srcNodeUser"] = serde_json::json!("mallory@example.com")
    });
    // Saying it is still being recorded does not stop the check of who and where.
    edit_index(dir, &c.id, |entry| {
        entry["outcome"] = serde_json::json!("recording");
        entry["namespace"] = serde_json::json!("other");
    });
    let report = verify_in_process(dir);
    for (id, field) in [
        (&a.id, "namespace"),
        (&b.id, "srcNodeUser"),
        (&c.id, "namespace"),
    ] {
        assert!(
            report
                .problems
                .iter()
                .any(|p| &p.subject == id && p.reason.contains(&format!("its {field} is not"))),
            "{id}: {:?}",
            report.problems
        );
    }
    let (ok, _, _) = verify(dir).await;
    assert!(!ok, "kube-recorder verify fails");
}
