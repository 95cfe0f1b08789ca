//! Writes a short recording as a recorder client would, reads it back as a recorder would, and
//! prints both: `cargo run -p castfmt --example cast_round_trip`.

use std::time::Duration;

use castfmt::{
    write_event_line, Caller, CastEvent, CastHeader, EventCode, KubernetesSession, LenientHeader,
    SessionType,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let header = CastHeader::kubernetes(
        1_700_000_000,
        Caller::Tagged {
            node: "ci-runner.tail-scale.ts.net.".into(),
            node_id: "nCIRunner".into(),
            tags: vec!["tag:ci".into()],
        },
        "make test",
        KubernetesSession {
            pod_name: "builder-7f9c".into(),
            namespace: "ci".into(),
            container: String::new(),
            session_type: SessionType::Attach,
        },
    );
    let mut cast = header.try_to_json_line()?;
    write_event_line(&mut cast, Duration::ZERO, EventCode::Resize, "80x24");
    write_event_line(
        &mut cast,
        Duration::from_millis(120),
        EventCode::Output,
        "$ id\r\n",
    );
    write_event_line(
        &mut cast,
        Duration::from_millis(900),
        EventCode::Marker,
        "exit 0",
    );
    print!("{}", String::from_utf8_lossy(&cast));

    let mut lines = cast.split(|&b| b == b'\n').filter(|line| !line.is_empty());
    let read = LenientHeader::parse(lines.next().unwrap_or_default())?;
    println!(
        "header: {} in {}/{} ({:?})",
        read.src_node_tags.join(","),
        read.namespace.as_deref().unwrap_or("-"),
        read.pod.as_deref().unwrap_or("-"),
        read.problem(),
    );
    for line in lines {
        let event = CastEvent::parse(line)?;
        println!(
            "{:>8.3}s {} {:?} exit={:?}",
            event.time,
            event.code,
            event.data,
            event.exit_code()
        );
    }
    Ok(())
}
