//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks, in order: no tracked file refers to a path outside the checkout,
//!   formatting, clippy, cargo-deny (licenses, bans, sources), every test with nextest including the
//!   end-to-end suite with the real kubectl, doc tests, a fuzz smoke run, the scripted demo.
//! - `e2e`: only the end-to-end suite.
//! - `demo [--script]`: the stand-in stack with the proxy in front, for a person or a script.
//! - `fuzz [--seconds N] [TARGET...]`: the fuzz targets under `fuzz/`.
//! - `bench [--sessions-only | --events-only]`: every benchmark, or only the 1 GiB session
//!   benchmark, or only the API request events benchmark.

mod bench;
mod ci;
mod demo;
mod events_bench;
mod fuzz;
mod outside_paths;
mod session_bench;
mod tools;

use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask <ci | e2e | demo [--script] | fuzz [--seconds N] [TARGET...] | bench [--sessions-only | --events-only]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::ci(),
        Some("e2e") => ci::e2e(),
        Some("demo") => demo::demo(args.iter().any(|a| a == "--script")),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("bench") => bench::BenchSelection::from_args(&args[1..]).and_then(bench::bench),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
