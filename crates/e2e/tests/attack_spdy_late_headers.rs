//! A crafted SPDY client sends a header block after the session's streams are open. The proxy's
//! tap no longer reads the client's header blocks by then (it frees their zlib context once the
//! server has every stream it waits for), so it must refuse the frame: the frame never reaches
//! the server, the session ends with a `Status` saying why, and the recording is kept, marked
//! incomplete. kubectl never sends such a frame (its SPDY
//! sessions are covered by the kubectl tests in `recording*.rs`).

use e2e::cast::output_of;
use e2e::raw_spdy::SpdySession;
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

/// An exec whose output echoes its input: stdin and stdout, no tty, so the server waits for the
/// error, stdin and stdout streams.
const CAT: &str =
    "/api/v1/namespaces/default/pods/demo/exec?command=cat&container=main&stdin=true&stdout=true";

/// Part of the tap's reason (`sessiontap::SpdyStreamError::HeadersAfterStreamsOpen`).
const LATE_HEADERS: &str = "after the session's streams were open";

/// Opens the session's three streams and checks that a line comes back through the proxy.
fn started(stack: &Stack) -> anyhow::Result<SpdySession> {
    let mut session = SpdySession::start(&stack.proxy_url, CAT)?;
    session.open(1, "error")?;
    session.open(3, "stdin")?;
    session.open(5, "stdout")?;
    session.data(3, 0, b"before\n")?;
    anyhow::ensure!(
        session.read_until(|s| s.received(5).ends_with(b"before\n"))?,
        "the session did not start\n{}",
        stack.logs()
    );
    Ok(session)
}

#[test]
fn a_syn_stream_after_the_streams_are_open_ends_the_session_and_is_recorded_as_such(
) -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    let stack = Stack::start(options)?;
    let mut session = started(&stack)?;

    // A second stdout stream, then a PING and more input: none of it may reach the server.
    // In one write: the proxy closes the connection as soon as it refuses the frame.
    session.at_once(|session| {
        session.open(7, "stdout")?;
        session.ping(1)?;
        session.data(3, 0, b"after-secret\n")
    })?;
    let pinged = session.read_until(|s| s.pinged_back(1))?;
    session.read_to_end()?;
    let status = String::from_utf8_lossy(session.received(1)).into_owned();
    let stdout = String::from_utf8_lossy(session.received(5)).into_owned();
    let on_seven = session.received(7).to_vec();
    session.close();

    assert!(
        !pinged,
        "the server answered a PING sent after the refused frame\n{}",
        stack.logs()
    );
    assert!(
        status.contains("session recording failed") && status.contains(LATE_HEADERS),
        "the client is told why its session ended: {status:?}\n{}",
        stack.logs()
    );
    assert!(
        !stdout.contains("after-secret") && on_seven.is_empty(),
        "nothing after the refused frame came back: stdout {stdout:?}, stream 7 {on_seven:?}"
    );

    let recordings = stack.finished_recordings(1)?;
    assert_eq!(recordings[0]["outcome"], "incomplete", "{recordings:?}");
    let cast = stack.recording_cast(recordings[0]["id"].as_str().unwrap_or_default())?;
    // The abandoned upload still holds what the client saw (the echo of `before`, fed before
    // it was forwarded), and nothing after the refused frame.
    let recorded = output_of(&cast)?;
    assert_eq!(
        recorded, "before\n",
        "the recording holds what the client saw, and nothing after the refused frame\n{cast}"
    );
    let metrics = stack.metrics()?;
    assert!(
        metrics.contains("k8s_auth_proxy_session_recordings_failed{reason=\"unreadable\"} 1"),
        "{metrics}"
    );
    assert!(
        stack.proxy.log_text().contains(LATE_HEADERS),
        "the proxy logs why\n{}",
        stack.logs()
    );
    Ok(())
}
