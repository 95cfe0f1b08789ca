//! `kubectl port-forward` through the proxy with the real kubectl, over both transports kubectl
//! 1.32 uses (SPDY tunnelled in WebSocket, its default, and SPDY with
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`), to a real TCP server behind the stand-in apiserver,
//! audited to the real `kube-recorder`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use e2e::stack::{admin_caller, default_apiserver_config, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

const TRANSPORTS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];
const PAYLOAD: usize = 10 * 1024 * 1024;

/// A TCP server that echoes every connection back to itself, on a thread per connection.
fn echo_server() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let Ok(mut reader) = stream.try_clone() else {
                    return;
                };
                let _ = std::io::copy(&mut reader, &mut stream);
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    Ok(port)
}

fn stack(grant: RecordingGrant, echo_port: u16) -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(grant);
    options.apiserver_config = format!(
        "{}portForward: {{\"8080\": \"127.0.0.1:{echo_port}\"}}\n",
        default_apiserver_config(0)
    );
    Stack::start(options)
}

/// Sends `payload` through a forwarded connection and reads the echo back, at the same time.
fn round_trip(local_port: u16, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", local_port))?;
    let mut writer = stream.try_clone()?;
    let payload = payload.to_vec();
    let sending = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&payload)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut echoed = Vec::with_capacity(payload_len_hint());
    stream.read_to_end(&mut echoed)?;
    sending
        .join()
        .map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    Ok(echoed)
}

fn payload_len_hint() -> usize {
    PAYLOAD
}

/// Printable bytes that differ per connection, so crossed connections would show.
fn payload(seed: u8) -> Vec<u8> {
    (0..PAYLOAD)
        .map(|i| b'a' + ((i / 7 + usize::from(seed)) % 26) as u8)
        .collect()
}

fn forwarding_port(line: &str) -> anyhow::Result<u16> {
    // "Forwarding from 127.0.0.1:43567 -> 8080"
    let address = line
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| anyhow::anyhow!("unexpected line {line:?}"))?;
    let port = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("unexpected address {address:?}"))?
        .1;
    Ok(port.parse()?)
}

#[test]
fn two_connections_of_ten_megabytes_each_way_are_forwarded_byte_exact_and_audited(
) -> anyhow::Result<()> {
    let echo_port = echo_server()?;
    let mut stack = stack(RecordingGrant::ENFORCED, echo_port)?;
    for (name, websockets) in TRANSPORTS {
        stack.kubectl.env = vec![(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let events_before = stack.events("type=kubernetes-port-forward")?.len();
        let mut forward = stack.kubectl.spawn_lines(&[
            "port-forward",
            "--address",
            "127.0.0.1",
            "pod/demo",
            ":8080",
        ])?;
        let line = forward.wait_for("Forwarding from", Duration::from_secs(60))?;
        let local_port = forwarding_port(&line)?;
        let (first, second) = (payload(1), payload(2));
        let threads = [first.clone(), second.clone()]
            .map(|payload| std::thread::spawn(move || round_trip(local_port, &payload)));
        let [a, b] = threads;
        let echoed_a = a.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        let echoed_b = b.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        assert!(echoed_a == first, "{name}: first connection not byte-exact");
        assert!(
            echoed_b == second,
            "{name}: second connection not byte-exact"
        );
        drop(forward);

        let events = wait_for_end(&stack, events_before)?;
        let phases: Vec<&str> = events
            .iter()
            .map(|e| e["portforward"]["phase"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            phases,
            ["start", "connection", "connection", "end"],
            "{name}: {events:#?}"
        );
        for event in &events {
            assert_eq!(event["id"], events[0]["id"], "{name}: one session");
            assert_eq!(event["kubernetes"]["Name"], "demo", "{name}");
            assert_eq!(event["kubernetes"]["Subresource"], "portforward", "{name}");
            assert_eq!(event["source"]["nodeUser"], "alice@example.com", "{name}");
            assert_eq!(event["portforward"]["transport"], name, "{name}");
        }
        for connection in &events[1..3] {
            let c = &connection["portforward"]["connection"];
            assert_eq!(c["port"], 8080, "{name}: {c}");
            assert_eq!(c["bytesFromClient"], PAYLOAD, "{name}: {c}");
            assert_eq!(c["bytesToClient"], PAYLOAD, "{name}: {c}");
            assert!(c.get("error").is_none(), "{name}: {c}");
        }
        let totals = &events[3]["portforward"]["totals"];
        assert_eq!(totals["connections"], 2, "{name}: {totals}");
        assert_eq!(totals["bytesFromClient"], 2 * PAYLOAD, "{name}: {totals}");
        assert_eq!(totals["bytesToClient"], 2 * PAYLOAD, "{name}: {totals}");
    }
    Ok(())
}

/// The events of the newest session once its `end` event is stored.
fn wait_for_end(stack: &Stack, before: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = stack.events("type=kubernetes-port-forward")?;
        let new: Vec<Value> = events.into_iter().skip(before).collect();
        if new
            .last()
            .is_some_and(|e| e["portforward"]["phase"] == "end")
        {
            return Ok(new);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no end event: {new:#?}\n{}",
            stack.logs()
        );
        // Polling the recorder for an observable condition under a deadline; the pause only
        // spares the CPU.
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fail_closed_forward_without_a_recorder_is_refused_before_upstream() -> anyhow::Result<()> {
    let echo_port = echo_server()?;
    let mut stack = stack(
        RecordingGrant {
            all_dead: true,
            ..RecordingGrant::ENFORCED
        },
        echo_port,
    )?;
    for (name, websockets) in TRANSPORTS {
        stack.kubectl.env = vec![(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        // kubectl upgrades the connection before it listens locally: the refusal ends it.
        let output = stack.kubectl.run(&[
            "port-forward",
            "--address",
            "127.0.0.1",
            "pod/demo",
            ":8080",
        ])?;
        assert!(
            !output.success,
            "{name}: kubectl should fail: {}",
            output.stdout
        );
        assert!(
            !output.stdout.contains("Forwarding from"),
            "{name}: {}",
            output.stdout
        );
        assert!(
            output
                .stderr
                .contains("requires port-forwards to be audited"),
            "{name}: {}\n{}",
            output.stderr,
            stack.logs()
        );
    }
    let forwarded = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("portforward"))
        })
        .count();
    assert_eq!(forwarded, 0, "a refused forward reached upstream");
    Ok(())
}

#[test]
fn a_fail_closed_forward_ends_when_its_recorder_is_lost() -> anyhow::Result<()> {
    let echo_port = echo_server()?;
    for (name, websockets) in TRANSPORTS {
        let mut stack = stack(RecordingGrant::ENFORCED, echo_port)?;
        stack.kubectl.env = vec![(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let mut forward = stack.kubectl.spawn_lines(&[
            "port-forward",
            "--address",
            "127.0.0.1",
            "pod/demo",
            ":8080",
        ])?;
        let line = forward.wait_for("Forwarding from", Duration::from_secs(60))?;
        let local_port = forwarding_port(&line)?;
        assert_eq!(round_trip(local_port, b"before")?, b"before", "{name}");
        // The recorder goes away: the next connection's event cannot be stored, so the forward
        // is ended rather than left running unaudited.
        if let Some(recorder) = stack.recorder.as_mut() {
            recorder.kill();
        }
        let _ = round_trip(local_port, b"after");
        let (success, stderr) = forward.wait_exit(Duration::from_secs(60))?;
        assert!(!success, "{name}: the forward should end: {stderr}");
        let logs = stack.logs();
        assert!(
            logs.contains("the port-forward could not be audited"),
            "{name}: {stderr}\n{logs}"
        );
    }
    Ok(())
}
