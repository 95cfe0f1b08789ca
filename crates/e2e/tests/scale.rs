//! Many recorded sessions at once: 200 exec sessions (three in four over WebSocket, one in four
//! over SPDY) open together through the proxy, fail closed, each idle until every one is open;
//! then all are released, and every client and every recording must hold that session's own
//! payload, byte for byte. `cargo xtask bench --scale-only` runs the same with 1,000 and measures
//! memory.

use e2e::scale::{check_clients, check_recordings, raise_open_file_limit, run_sessions};
use e2e::stack::{admin_caller, metric_value, RecordingGrant, Stack, StackOptions};

/// Sessions open at once.
const SESSIONS: usize = 200;

/// Sessions being opened at any one time (each waits for its TLS handshake, its recorder
/// connection, the upstream upgrade and its command's first output).
const OPENING_AT_ONCE: usize = 32;

#[test]
fn two_hundred_concurrent_recorded_sessions_are_all_recorded_byte_exact() -> anyhow::Result<()> {
    // Before the stack starts: its processes inherit the limit (some systems start at 1,024).
    raise_open_file_limit()?;
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    let stack = Stack::start(options)?;
    let indices: Vec<usize> = (0..SESSIONS).collect();
    let (open, finished) = run_sessions(&stack.proxy_url, &indices, OPENING_AT_ONCE, || {
        // Every session is open now: the proxy reports them all at once.
        stack.metrics()
    })?;
    anyhow::ensure!(
        finished.len() == SESSIONS,
        "{} of {SESSIONS} sessions ended\n{}",
        finished.len(),
        stack.logs()
    );
    check_clients(&finished)?;
    check_recordings(&stack, 0..SESSIONS, SESSIONS)?;
    let sessions_open = metric_value(&open, "k8s_auth_proxy_sessions_active");
    anyhow::ensure!(
        sessions_open == SESSIONS as u64,
        "the proxy reported {sessions_open} open sessions while {SESSIONS} were open:\n{open}"
    );
    Ok(())
}
