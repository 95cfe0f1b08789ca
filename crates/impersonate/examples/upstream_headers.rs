//! Shows what an authenticating proxy sends upstream for a request that carries the caller's
//! own token and an attempt to impersonate `system:admin`.
//!
//! ```text
//! cargo run -p impersonate --example upstream_headers -- [auth|noauth]
//! ```

use std::process::ExitCode;

use capmodel::Impersonation;
use http::header::{HeaderMap, HeaderValue};
use impersonate::{prepare_upstream_headers, Mode};

fn main() -> ExitCode {
    let mode = match std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("auth")
        .parse::<Mode>()
    {
        Ok(mode) => mode,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };

    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("accept", "application/json"),
        ("authorization", "Bearer caller-token"),
        ("impersonate-user", "system:admin"),
        ("impersonate-group", "system:masters"),
        ("impersonate-extra-scopes", "everything"),
        ("user-agent", "kubectl/v1.32.4"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }

    // In the proxy this comes from capmodel::CallerPolicy::from_whois.
    let who = Impersonation {
        user: "alice@example.com".into(),
        groups: vec!["eng-admins".into(), "viewers".into()],
    };

    if let Err(err) = prepare_upstream_headers(&mut headers, mode, &who) {
        eprintln!("refused: {err}");
        return ExitCode::FAILURE;
    }
    println!("upstream headers in {mode} mode:");
    for (name, value) in &headers {
        println!("  {name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    ExitCode::SUCCESS
}
