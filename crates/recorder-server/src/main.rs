//! `kube-recorder`: run a session recorder, and list, play and search what it stored.
//!
//! Thin wiring over the `recorder_server` library: argument parsing, logging, signals, output.

mod cli;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kube-recorder: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kube-recorder: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
