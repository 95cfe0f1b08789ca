//! Asks tailscaled who is at an address.
//!
//! ```text
//! cargo run -p localapi --example whois -- /var/run/tailscale/tailscaled.sock 100.101.102.103:52341
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use localapi::{LocalApiClient, LocalApiError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(socket), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: whois <tailscaled socket> <ip:port>");
        return ExitCode::from(2);
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("{addr:?} is not an ip:port address: {e}");
            return ExitCode::from(2);
        }
    };
    match LocalApiClient::new(socket).whois(addr).await {
        Ok(who) => {
            let owner = if who.node.is_tagged() {
                who.node.tags.join(",")
            } else {
                who.user_profile.login_name.clone()
            };
            println!("node:  {}", who.node.name);
            println!("owner: {owner}");
            for (cap, values) in &who.cap_map {
                println!("cap:   {cap} ({} values)", values.len());
            }
            ExitCode::SUCCESS
        }
        Err(LocalApiError::UnknownPeer { addr, .. }) => {
            eprintln!("{addr} is not a tailnet peer");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("whois failed: {e}");
            ExitCode::FAILURE
        }
    }
}
