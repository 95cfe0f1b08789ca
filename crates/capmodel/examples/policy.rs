//! Prints the policy a proxy derives for a caller from a tailscaled `whois` answer.
//!
//! ```text
//! cargo run -p capmodel --example policy -- testdata/whois/user-node.json
//! ```

use std::process::ExitCode;

use capmodel::{CallerPolicy, WhoIs};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: policy <whois.json>");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!("cannot read {}: {err}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let who = match WhoIs::from_json(&bytes) {
        Ok(who) => who,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };

    let caller = who.describe();
    println!("caller:        node {} ({})", caller.node, caller.node_id);
    match (&caller.user, caller.user_id) {
        (Some(user), Some(id)) => println!("               user {user} (id {id})"),
        _ => println!("               tags {}", caller.tags.join(", ")),
    }

    // A malformed grant is refused with its reason, as the proxy answers 403.
    let policy = match CallerPolicy::from_whois(&who) {
        Ok(policy) => policy,
        Err(err) => {
            println!("refused:       {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("Impersonate-User:  {}", policy.impersonation.user);
    for group in &policy.impersonation.groups {
        println!("Impersonate-Group: {group}");
    }
    let rec = &policy.recording;
    let recorders: Vec<String> = rec.recorders.iter().map(ToString::to_string).collect();
    println!(
        "recording:     {} (recorders [{}], fail {}, API events {})",
        if rec.refuses_unrecorded() {
            "refused: enforced but no recorder"
        } else if rec.is_recorded() {
            "on"
        } else {
            "off"
        },
        recorders.join(", "),
        if rec.fail_open { "open" } else { "closed" },
        if rec.events { "on" } else { "off" },
    );
    ExitCode::SUCCESS
}
