//! `kubectl port-forward` through the proxy with the real kubectl, over both transports kubectl
//! 1.32 uses (SPDY tunnelled in WebSocket, its default, and SPDY with
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`), to a real TCP server behind the stand-in apiserver,
//! audited to the real `kube-recorder`.

use std::time::Duration;

use e2e::port_forward::{
    echo_server, round_trip, stack_forwarding_to as stack, start_forward, TRANSPORTS,
};
use e2e::stack::{RecordingGrant, Stack};
use serde_json::Value;

const PAYLOAD: usize = 10 * 1024 * 1024;

/// Printable bytes that differ per connection, so crossed connections would show.
fn payload(seed: u8) -> Vec<u8> {
    (0..PAYLOAD)
        .map(|i| b'a' + ((i / 7 + usize::from(seed)) % 26) as u8)
        .collect()
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
        let (forward, local_port) = start_forward(&stack)?;
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
        let (mut forward, local_port) = start_forward(&stack)?;
        assert_eq!(round_trip(local_port, b"before")?, b"before", "{name}");
        // The recorder goes away: the next connection's event cannot be stored, so the forward
        // is ended rather than left running unaudited.
        if let Some(recorder) = stack.recorder.as_mut() {
            recorder.kill();
        }
        let _ = round_trip(local_port, b"after");
        let (success, stderr) = forward.wait_exit(Duration::from_secs(60))?;
        assert!(!success, "{name}: the forward should end: {stderr}");
        // kubectl sees the end first; the proxy logs the reason once the session's last audit
        // event has been tried, which against a dead recorder can take a moment longer.
        stack.wait_until(
            &format!("{name}: the reason the forward ended\n{stderr}"),
            || {
                Ok(stack
                    .logs()
                    .contains("the port-forward could not be audited"))
            },
        )?;
    }
    Ok(())
}
