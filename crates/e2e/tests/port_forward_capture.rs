//! Port-forward payload capture (`recordPortForwardData`) with the real kubectl, over both
//! transports kubectl 1.32 uses (SPDY tunnelled in WebSocket and SPDY), to a TCP echo server
//! behind the stand-in apiserver, stored by the real `kube-recorder`: one capture per connection,
//! whose bytes each way `kube-recorder capture` gives back exactly; none without the grant field.

use std::process::Command;
use std::time::Duration;

use e2e::port_forward::{
    echo_server, round_trip, stack_forwarding_to as stack, start_forward, TRANSPORTS,
};
use e2e::stack::{RecordingGrant, Stack};
use serde_json::Value;

const PAYLOAD: usize = 1024 * 1024;

/// Random binary bytes (every byte value, NULs and invalid UTF-8 included), different per seed.
fn random_bytes(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(PAYLOAD);
    while bytes.len() < PAYLOAD {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(PAYLOAD);
    bytes
}

/// Forwards `payloads.len()` connections at once through one `kubectl port-forward`, checks each
/// echo, and returns the session's audit id once its `end` event is stored.
fn forward(stack: &mut Stack, name: &str, payloads: &[Vec<u8>]) -> anyhow::Result<String> {
    let events_before = stack.events("type=kubernetes-port-forward")?.len();
    let (forward, local_port) = start_forward(stack)?;
    let threads: Vec<_> = payloads
        .iter()
        .cloned()
        .map(|payload| std::thread::spawn(move || round_trip(local_port, &payload)))
        .collect();
    for (thread, payload) in threads.into_iter().zip(payloads) {
        let echoed = thread.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        assert!(&echoed == payload, "{name}: a connection is not byte-exact");
    }
    drop(forward);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events = stack.events("type=kubernetes-port-forward")?;
        let new: Vec<Value> = events.into_iter().skip(events_before).collect();
        if let Some(end) = new.last().filter(|e| e["portforward"]["phase"] == "end") {
            assert!(
                end["portforward"].get("error").is_none(),
                "{name}: {end}\n{}",
                stack.logs()
            );
            return Ok(end["id"].as_str().unwrap_or_default().to_owned());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{name}: no end event: {new:#?}\n{}",
            stack.logs()
        );
        // Polling the recorder for an observable condition under a deadline; the pause only
        // spares the CPU.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The recorder's captures of the session `id`, once none is still being stored.
fn captures_of(stack: &Stack, id: &str, expected: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let captures: Vec<Value> = stack
            .recordings()?
            .into_iter()
            .filter(|r| r["kind"] == "port-forward-capture" && r["portForward"]["sessionId"] == id)
            .collect();
        if captures.len() >= expected && captures.iter().all(|c| c["outcome"] != "recording") {
            return Ok(captures);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "captures of {id}: {captures:#?}\n{}",
            stack.logs()
        );
        // As above: a poll under a deadline.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kube-recorder capture ID --direction D --server URL`: the bytes of one direction.
fn extract(stack: &Stack, id: &str, direction: &str) -> anyhow::Result<Vec<u8>> {
    let addr = stack
        .recorder_addr
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("no recorder"))?;
    let output = Command::new(e2e::binaries::binary("kube-recorder")?)
        .env("KUBE_RECORDER_TOKEN", e2e::stack::RECORDER_VIEWER_TOKEN)
        .args(["capture", id, "--direction", direction, "--server"])
        .arg(format!("http://{addr}"))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "kube-recorder capture {id}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

#[test]
fn each_connection_is_captured_and_its_bytes_come_back_exactly() -> anyhow::Result<()> {
    let echo_port = echo_server()?;
    let mut stack = stack(
        RecordingGrant {
            record_port_forward_data: true,
            ..RecordingGrant::ENFORCED
        },
        echo_port,
    )?;
    for (seed, (name, websockets)) in (1u64..).step_by(2).zip(TRANSPORTS) {
        stack.kubectl.env = vec![(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let payloads = [random_bytes(seed), random_bytes(seed + 1)];
        let session = forward(&mut stack, name, &payloads)?;
        let captures = captures_of(&stack, &session, 2)?;
        assert_eq!(captures.len(), 2, "{name}: one capture per connection");
        let mut seen = Vec::new();
        for capture in &captures {
            let id = capture["id"].as_str().unwrap_or_default();
            assert_eq!(capture["outcome"], "complete", "{name}: {capture:#}");
            assert!(capture.get("malformed").is_none(), "{name}: {capture:#}");
            assert_eq!(capture["pod"], "demo", "{name}");
            assert_eq!(capture["srcNodeUser"], "alice@example.com", "{name}");
            let pf = &capture["portForward"];
            assert_eq!(pf["port"], 8080, "{name}: {pf}");
            assert_eq!(pf["transport"], name, "{name}: {pf}");
            assert_eq!(pf["bytesFromClient"], PAYLOAD, "{name}: {pf}");
            assert_eq!(pf["bytesToClient"], PAYLOAD, "{name}: {pf}");
            let sent = extract(&stack, id, "c")?;
            let echoed = extract(&stack, id, "s")?;
            let which = payloads
                .iter()
                .position(|p| *p == sent)
                .ok_or_else(|| anyhow::anyhow!("{name}: capture {id} holds bytes never sent"))?;
            assert!(
                echoed == payloads[which],
                "{name}: capture {id} does not hold the echo"
            );
            seen.push(which);
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1], "{name}: each connection once");
    }
    Ok(())
}

#[test]
fn without_the_grant_field_nothing_is_captured() -> anyhow::Result<()> {
    let echo_port = echo_server()?;
    let mut stack = stack(RecordingGrant::ENFORCED, echo_port)?;
    for (seed, (name, websockets)) in (10u64..).zip(TRANSPORTS) {
        stack.kubectl.env = vec![(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        forward(&mut stack, name, &[random_bytes(seed)])?;
    }
    let recordings = stack.recordings()?;
    assert!(recordings.is_empty(), "{recordings:#?}");
    Ok(())
}
