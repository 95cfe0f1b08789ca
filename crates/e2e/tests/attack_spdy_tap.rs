//! Attacks on an enforced session recording with a custom SPDY client (kubectl cannot send these):
//! streams the kubelet writes output to but a naive tap would not record. Each test drives one trick
//! through the real proxy, against the stand-in apiserver (which binds streams as spdystream and the
//! kubelet do), with the real `kube-recorder`, and requires that every output byte the client
//! received is in the recording, or that the proxy ended the session with a `Status` naming the
//! recording failure.

use e2e::cast::output_of;
use e2e::raw_spdy::SpdySession;
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

const FIN: u8 = spdyframe::FLAG_FIN;
/// An exec whose output echoes its input.
const CAT: &str =
    "/api/v1/namespaces/default/pods/demo/exec?command=cat&container=main&stdin=true&stdout=true";

/// The proxy's wording when it ends a session because recording failed (`exec/splice.rs`).
const RECORDING_FAILED: &str = "session recording failed";

fn enforced_stack() -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    Stack::start(options)
}

/// Ends the session and checks it: the client must have received `secret` on its stdout stream,
/// all of which is in the recording, or have been told on its error stream that the session ended
/// because recording failed.
fn verdict(
    stack: &Stack,
    mut session: SpdySession,
    stdout: u32,
    error: u32,
    secret: &str,
) -> anyhow::Result<()> {
    session.read_to_end()?;
    let received = String::from_utf8_lossy(session.received(stdout)).into_owned();
    let status = String::from_utf8_lossy(session.received(error)).into_owned();
    session.close();
    let ended_by_proxy = status.contains(RECORDING_FAILED);
    let recordings = stack.finished_recordings(1)?;
    let newest = &recordings[0];
    let cast = stack.recording_cast(newest["id"].as_str().unwrap_or_default())?;
    let recorded = output_of(&cast)?;
    assert!(
        ended_by_proxy || received.contains(secret),
        "the trick did not reach the client, so the test shows nothing: received {received:?}, \
         status {status:?}\n{}",
        stack.logs()
    );
    assert!(
        ended_by_proxy || recorded.contains(&received),
        "output reached the client unrecorded: received {received:?}, recorded {recorded:?}, \
         status {status:?}, recording {newest}\ncast:\n{cast}\n{}",
        stack.logs()
    );
    Ok(())
}

/// `streamtype: "stdout\0"`: spdystream splits values on NUL and the kubelet takes the first, so
/// the stream is stdout; a tap comparing the whole value would not know it.
#[test]
fn a_nul_after_the_stream_type_does_not_hide_stdout() -> anyhow::Result<()> {
    let stack = enforced_stack()?;
    let mut session = SpdySession::start(
        &stack.proxy_url,
        "/api/v1/namespaces/default/pods/demo/exec?command=echo&command=nul-secret&container=main&stdout=true",
    )?;
    session.open(1, "error")?;
    session.open(3, "stdout\0")?;
    verdict(&stack, session, 3, 1, "nul-secret")
}

/// A second `stdout` stream once the session runs: the kubelet keeps writing to the first one, so a
/// tap that moves stdout to the newest stream records nothing more.
#[test]
fn a_second_stdout_stream_does_not_take_the_recording_away() -> anyhow::Result<()> {
    let stack = enforced_stack()?;
    let mut session = SpdySession::start(&stack.proxy_url, CAT)?;
    session.open(1, "error")?;
    session.open(3, "stdin")?;
    session.open(5, "stdout")?;
    session.data(3, 0, b"first\n")?;
    anyhow::ensure!(
        session.read_until(|s| s.received(5).ends_with(b"first\n"))?,
        "the session did not start\n{}",
        stack.logs()
    );
    session.open(7, "stdout")?;
    // The echo of a PING sent after it shows the server read the SYN_STREAM, and the session goes
    // on; without an echo the proxy ended the session, and nothing more is sent.
    session.ping(1)?;
    if session.read_until(|s| s.pinged_back(1))? {
        session.data(3, 0, b"second-secret\n")?;
        session.data(3, FIN, b"")?;
    }
    verdict(&stack, session, 5, 1, "second-secret")
}

/// RST_STREAM on the client's own stdout: spdystream still writes the kubelet's output on it (a
/// reset only stops reading), so the output reaches the client; a tap that drops data on reset
/// streams records nothing of it.
#[test]
fn resetting_stdout_does_not_stop_the_recording() -> anyhow::Result<()> {
    let stack = enforced_stack()?;
    let mut session = SpdySession::start(&stack.proxy_url, CAT)?;
    session.open(1, "error")?;
    session.open(3, "stdin")?;
    session.open(5, "stdout")?;
    session.data(3, 0, b"first\n")?;
    anyhow::ensure!(
        session.read_until(|s| s.received(5).ends_with(b"first\n"))?,
        "the session did not start\n{}",
        stack.logs()
    );
    session.reset(5)?;
    session.data(3, 0, b"reset-secret\n")?;
    session.data(3, FIN, b"")?;
    verdict(&stack, session, 5, 1, "reset-secret")
}

/// Fail open, the same trick: the session goes on unrecorded from there, the recording is kept
/// but marked incomplete, and the failure is counted as the tap's (`unreadable`), not the
/// upload's.
#[test]
fn a_fail_open_session_the_tap_cannot_read_goes_on_and_is_counted_as_unreadable(
) -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant {
        enforce: false,
        ..RecordingGrant::ENFORCED
    });
    let stack = Stack::start(options)?;
    let mut session = SpdySession::start(&stack.proxy_url, CAT)?;
    session.open(1, "error")?;
    session.open(3, "stdin")?;
    session.open(5, "stdout")?;
    session.data(3, 0, b"first\n")?;
    anyhow::ensure!(
        session.read_until(|s| s.received(5).ends_with(b"first\n"))?,
        "the session did not start\n{}",
        stack.logs()
    );
    session.open(7, "stdout")?;
    session.data(3, 0, b"after\n")?;
    anyhow::ensure!(
        session.read_until(|s| s.received(5).ends_with(b"after\n"))?,
        "a fail-open session must go on\n{}",
        stack.logs()
    );
    session.data(3, FIN, b"")?;
    session.read_to_end()?;
    session.close();
    let recordings = stack.finished_recordings(1)?;
    assert_eq!(recordings[0]["outcome"], "incomplete", "{recordings:?}");
    let metrics = stack.metrics()?;
    assert!(
        metrics.contains("k8s_auth_proxy_session_recordings_failed{reason=\"unreadable\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("k8s_auth_proxy_session_recordings_failed{reason=\"upload\"} 1"),
        "{metrics}"
    );
    Ok(())
}
