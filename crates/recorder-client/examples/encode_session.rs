//! Encodes a short scripted tty session as asciicast v2 and prints it, without any recorder:
//! `cargo run -p recorder-client --example encode_session > session.cast && asciinema cat session.cast`.

use std::io::Write;
use std::time::Duration;

use recorder_client::{
    Caller, CastEncoder, CastHeader, EncoderOptions, ExitStatus, KubernetesSession, OutputStream,
    SessionType,
};

fn main() -> std::io::Result<()> {
    let header = CastHeader::kubernetes(
        1_700_000_000,
        Caller::User {
            node: "laptop.tail-scale.ts.net.".into(),
            node_id: "nLaptop".into(),
            login_name: "alice@example.com".into(),
            user_id: 42,
        },
        "sh",
        KubernetesSession {
            pod_name: "demo".into(),
            namespace: "default".into(),
            container: "app".into(),
            session_type: SessionType::Exec,
        },
    );
    let mut encoder = CastEncoder::new(
        header,
        EncoderOptions {
            tty: true,
            ..EncoderOptions::default()
        },
    );
    let ms = Duration::from_millis;
    let mut out = Vec::new();
    encoder.start(&mut out);
    // The prompt arrives before kubectl's first resize: it waits for the header.
    encoder.output(ms(3), OutputStream::Stdout, b"$ ", &mut out);
    encoder.resize(ms(5), 100, 30, &mut out);
    encoder.output(ms(900), OutputStream::Stdout, b"echo gr\xC3", &mut out);
    // The rest of the split character comes with the next frame.
    encoder.output(
        ms(950),
        OutputStream::Stdout,
        b"\xBC\xC3\x9Fe\r\ngr\xC3\xBC\xC3\x9Fe\r\n$ ",
        &mut out,
    );
    encoder.resize(ms(1500), 120, 40, &mut out);
    encoder.exit(ms(2000), &ExitStatus::Code(0), &mut out);
    encoder.finish(ms(2000), &mut out);
    std::io::stdout().write_all(&out)
}
