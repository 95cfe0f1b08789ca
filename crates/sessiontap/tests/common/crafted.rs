//! What a crafted SPDY exec client sends: `streamtype` header names and values with disguises,
//! extra header pairs, and a scenario read out of raw bytes (the `spdy_routing` fuzz target's
//! input format, also run by `tests/spdy_model.rs`). The oracle is [`super::server_model`].

use sessiontap::OutputStream;

use super::server_model::{Action, Implied, Scenario};

/// Header names a crafted client may use for `streamtype`, and others.
pub const NAMES: [&str; 6] = [
    "streamtype",
    "StreamType",
    "STREAMTYPE",
    "streamType",
    "stream-type",
    "x-other",
];

/// `streamtype` values: the five roles, and their disguises.
pub const VALUES: [&str; 13] = [
    "error",
    "stdin",
    "stdout",
    "stderr",
    "resize",
    "stdout\0",
    "stderr\0stdout",
    "\0stdout",
    "Stdout",
    "stdout ",
    "",
    "data",
    "stdin\0stdout",
];

/// A second header pair a SYN_STREAM may carry.
pub const EXTRA: [Option<(&str, &str)>; 6] = [
    None,
    Some(("streamtype", "stdout")),
    Some(("streamtype", "stdin")),
    Some(("StreamType", "stderr")),
    Some(("connection", "x")),
    Some(("x-other", "y")),
];

/// Reads a scenario out of arbitrary bytes (the fuzz target's input).
pub fn scenario_from_bytes(data: &[u8]) -> Scenario {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let flags = next();
    let implied = Implied {
        stdin: flags & 1 != 0,
        stdout: flags & 2 != 0,
        stderr: flags & 4 != 0,
        tty: flags & 8 != 0,
    };
    let races = u64::from_le_bytes([
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    ]);
    let mut actions = Vec::new();
    let mut splits = Vec::new();
    let mut rest = data.get(9..).unwrap_or_default().iter().copied();
    let mut byte = || rest.next();
    while let Some(tag) = byte() {
        let param = tag / 9;
        let id = u32::from(byte().unwrap_or(1));
        splits.push(param.wrapping_mul(37));
        let payload = |len: u8| -> Vec<u8> { (0..len % 24).map(|i| b'a' + i % 26).collect() };
        actions.push(match tag % 9 {
            0 | 1 => {
                let variant = usize::from(byte().unwrap_or(0));
                let mut headers = vec![(
                    NAMES[variant % NAMES.len()].to_string(),
                    VALUES[(variant / NAMES.len() + usize::from(param)) % VALUES.len()].to_string(),
                )];
                if let Some((name, value)) = EXTRA[usize::from(param) % EXTRA.len()] {
                    headers.push((name.to_string(), value.to_string()));
                }
                Action::Open { id, headers }
            }
            2 => Action::Reset { id },
            3 => Action::ClientData {
                id,
                bytes: payload(param),
                fin: param & 1 != 0,
            },
            4 => Action::ClientGoAway,
            5 => Action::Output {
                stream: if id & 1 == 0 {
                    OutputStream::Stdout
                } else {
                    OutputStream::Stderr
                },
                bytes: payload(param.wrapping_add(1)),
            },
            6 => Action::ServerData {
                id,
                bytes: payload(param),
                fin: param & 1 != 0,
            },
            7 => Action::ServerReset { id },
            _ => Action::Status,
        });
    }
    Scenario {
        implied,
        actions,
        races,
        splits,
    }
}
