//! Project automation, run as `cargo xtask <command>` (`cargo xtask --help` lists the commands,
//! `cargo xtask <command> --help` explains one; an unknown command or argument is an error).
//!
//! - `ci`: everything CI checks, in order: no tracked file refers to a path outside the checkout,
//!   formatting, clippy, the reusable crates standing alone (`standalone`), cargo-deny (licenses,
//!   bans, sources), every test with nextest including the end-to-end suite with the real
//!   kubectl, doc tests, a fuzz smoke run, the scripted demo.
//! - `e2e`: only the end-to-end suite.
//! - `demo [--script]`: the stand-in stack with the proxy in front, for a person or a script.
//! - `fuzz [--seconds N] [TARGET...]`: the fuzz targets under `fuzz/`.
//! - `bench [--compare-only | --get-only | --events-only] [--exec-bytes N] [--rounds N]
//!   [--event-connections N]`: every benchmark, or only the comparison of kube-auth-proxy with
//!   direct access and nginx (exec sessions and GET load), only its GET load, or only the API
//!   request events benchmark.
//! - `bench --scale-only`: only the scale benchmark (1,000 recorded sessions at once).
//! - `fresh-clone-check [--keep]`: `ci` in a fresh clone of `HEAD` with nothing beside it.
//! - `standalone`: the reusable crates package together and build as path dependencies of a
//!   scratch crate outside the workspace.
//! - `deploy-check`: every kustomize overlay under `deploy/overlays/` renders and keeps the
//!   deployment's invariants (RBAC, security contexts, probes, the binaries' flags).

mod apt;
mod bench;
mod ci;
mod compare_bench;
mod compare_paths;
mod compare_report;
mod demo;
mod deploy_check;
mod events_bench;
mod exec_session;
mod fresh_clone;
mod fuzz;
mod load_client;
mod nginx;
mod nginx_conf;
mod outside_paths;
mod proc_stats;
mod scale_bench;
mod standalone;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project automation for kube-auth-proxy.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true
)]
struct Cli {
    /// What to run.
    #[command(subcommand)]
    command: Task,
}

/// The commands of `cargo xtask`.
#[derive(Debug, PartialEq, Eq, Subcommand)]
enum Task {
    /// Every check CI runs, in order; stops at the first failure.
    ///
    /// First that no tracked file refers to a path outside the checkout (a fresh clone has nothing
    /// beside it), then fmt, clippy, standalone, cargo-deny, every test with nextest (the
    /// end-to-end suite with the real kubectl included), doc tests, a short fuzz smoke run and the
    /// scripted demo.
    Ci,
    /// Only the end-to-end suite (needs kubectl on PATH).
    E2e,
    /// The whole stack on this machine, with the proxy in front.
    ///
    /// Starts a stand-in apiserver, a stand-in tailscaled and kube-recorder with the proxy in
    /// front, prints a KUBECONFIG to export and runs until interrupted.
    Demo {
        /// Run the scripted kubectl scenario against the stack instead, and exit non-zero on any
        /// failure.
        #[arg(long)]
        script: bool,
    },
    /// Runs the cargo-fuzz targets under fuzz/.
    ///
    /// Runs the named targets, or all of them, and adds what they find to the corpora in
    /// fuzz/corpus.
    Fuzz {
        /// How long each target runs, in seconds (60 when not given).
        #[arg(long, value_name = "N")]
        seconds: Option<u64>,
        /// The targets to run.
        #[arg(value_name = "TARGET", value_parser = clap::builder::PossibleValuesParser::new(fuzz::TARGETS))]
        targets: Vec<String>,
    },
    /// Every benchmark, or one of two, with release builds.
    ///
    /// The crates' benchmarks, the comparison benchmark and the API request events benchmark,
    /// for docs/performance.md. The comparison runs `kubectl exec` sessions (WebSocket and SPDY)
    /// and a GET load directly against the apiserver stand-in, through nginx (installed with
    /// apt-get when missing), through kube-auth-proxy and through kube-auth-proxy recorded.
    Bench {
        /// Only the comparison benchmark (`--sessions-only` is its former name).
        #[arg(long, visible_alias = "sessions-only", conflicts_with = "events_only")]
        compare_only: bool,
        /// Only the API request events benchmark.
        #[arg(long)]
        events_only: bool,
        /// Only the scale benchmark: 1,000 recorded sessions at once (memory per idle session,
        /// every recording byte-exact), then 1 GiB through one (memory flat).
        #[arg(long, conflicts_with_all = ["compare_only", "events_only"])]
        scale_only: bool,
        /// Only the GET rounds of the comparison (no exec sessions): direct, nginx and the
        /// unrecorded proxy under the same load, each round's paths one right after the other,
        /// the proxy beside nginx round by round.
        #[arg(long, conflicts_with_all = ["events_only", "scale_only"])]
        get_only: bool,
        /// Bytes of stdout per exec session of the comparison.
        #[arg(
            long,
            value_name = "N",
            env = "KAP_BENCH_EXEC_BYTES",
            default_value_t = compare_bench::DEFAULT_EXEC_BYTES,
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        exec_bytes: u64,
        /// Keep-alive connections of the events benchmark's load (more of them: bigger batches
        /// per sync, and the CPU per event counts for more than the sync's latency).
        #[arg(
            long,
            value_name = "N",
            default_value_t = events_bench::DEFAULT_CONNECTIONS,
            value_parser = clap::value_parser!(u64).range(1..=10_000)
        )]
        event_connections: u64,
        /// Rounds of the comparison (interleaved across the paths) and of the events benchmark
        /// (events off and on taking turns); medians are reported.
        #[arg(
            long,
            value_name = "N",
            default_value_t = compare_bench::DEFAULT_ROUNDS,
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        rounds: u64,
    },
    /// `cargo xtask ci` in a fresh clone of HEAD, with nothing beside it.
    ///
    /// Clones the repository's HEAD (committed state only: uncommitted changes are not checked)
    /// into a new, empty temporary directory, prints the clone's path and runs `cargo xtask ci`
    /// there with the clone's own target directory. Takes as long as a cold CI run.
    FreshCloneCheck {
        /// Keep the clone (and its target directory) after a successful run; a failed run always
        /// keeps it.
        #[arg(long)]
        keep: bool,
    },
    /// The reusable crates stand alone, outside this workspace.
    ///
    /// `cargo package` over every reusable crate together, then a scratch crate generated in a
    /// temporary directory outside the checkout, depending on spdyframe and sessiontap by path,
    /// is built and run.
    Standalone,
    /// The Kubernetes manifests under deploy/ render and keep their invariants.
    ///
    /// Renders every overlay with `kubectl kustomize` and checks: no `*` in RBAC and
    /// impersonation only; every container's security context and resources; probes on paths
    /// and ports the binaries serve; every flag in the proxy's and the recorder's args is one the
    /// binary accepts (the proxy's own parser; the built kube-recorder); the recorder reachable
    /// only from the proxy (NetworkPolicy).
    DeployCheck,
}

impl Task {
    /// Runs the command.
    fn run(self) -> anyhow::Result<()> {
        match self {
            Task::Ci => ci::ci(),
            Task::E2e => ci::e2e(),
            Task::Demo { script } => demo::demo(script),
            Task::Fuzz { seconds, targets } => {
                // `fuzz::fuzz` keeps the default duration and the list of targets.
                let mut args = Vec::with_capacity(targets.len() + 2);
                if let Some(seconds) = seconds {
                    args.push("--seconds".to_string());
                    args.push(seconds.to_string());
                }
                args.extend(targets);
                fuzz::fuzz(&args)
            }
            Task::Bench {
                compare_only,
                events_only,
                scale_only,
                get_only,
                event_connections,
                exec_bytes,
                rounds,
            } => {
                let events = events_bench::EventsOptions {
                    rounds,
                    connections: event_connections,
                };
                let options = compare_bench::CompareOptions {
                    exec_bytes,
                    rounds,
                    exec: !get_only,
                };
                bench::bench(match (compare_only || get_only, events_only) {
                    _ if scale_only => bench::BenchSelection::Scale,
                    (true, _) => bench::BenchSelection::Compare(options),
                    (_, true) => bench::BenchSelection::Events(events),
                    _ => bench::BenchSelection::All(options, events),
                })
            }
            Task::FreshCloneCheck { keep } => fresh_clone::fresh_clone_check(keep),
            Task::Standalone => standalone::standalone(),
            Task::DeployCheck => deploy_check::deploy_check(),
        }
    }
}

fn main() -> ExitCode {
    // Help prints usage and exits 0; an unknown command or argument prints usage and exits 2.
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Task, ErrorKind> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .map(|cli| cli.command)
            .map_err(|error| error.kind())
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_the_top_level_show_help_and_run_nothing() {
        assert_eq!(parse(&["--help"]), Err(ErrorKind::DisplayHelp));
        assert_eq!(parse(&["-h"]), Err(ErrorKind::DisplayHelp));
        for command in [
            "ci",
            "e2e",
            "demo",
            "fuzz",
            "bench",
            "fresh-clone-check",
            "standalone",
            "deploy-check",
        ] {
            assert_eq!(
                parse(&[command, "--help"]),
                Err(ErrorKind::DisplayHelp),
                "{command} --help"
            );
            assert_eq!(
                parse(&[command, "-h"]),
                Err(ErrorKind::DisplayHelp),
                "{command} -h"
            );
            assert_eq!(
                parse(&["help", command]),
                Err(ErrorKind::DisplayHelp),
                "help {command}"
            );
        }
    }

    #[test]
    fn no_command_shows_help() {
        assert_eq!(
            parse(&[]),
            Err(ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
        );
    }

    #[test]
    fn unknown_commands_and_arguments_are_errors() {
        assert_eq!(parse(&["ci", "--bogus"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(parse(&["ci", "extra"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(parse(&["e2e", "--bogus"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(parse(&["demo", "--scrip"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(parse(&["bench", "--all"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(
            parse(&["fresh-clone-check", "--bogus"]),
            Err(ErrorKind::UnknownArgument)
        );
        assert_eq!(parse(&["deploy"]), Err(ErrorKind::InvalidSubcommand));
        assert_eq!(parse(&["--bogus"]), Err(ErrorKind::UnknownArgument));
    }

    #[test]
    fn the_existing_commands_and_flags_keep_their_meaning() {
        assert_eq!(parse(&["ci"]), Ok(Task::Ci));
        assert_eq!(parse(&["e2e"]), Ok(Task::E2e));
        assert_eq!(parse(&["standalone"]), Ok(Task::Standalone));
        assert_eq!(
            parse(&["standalone", "--bogus"]),
            Err(ErrorKind::UnknownArgument)
        );
        assert_eq!(parse(&["demo"]), Ok(Task::Demo { script: false }));
        assert_eq!(
            parse(&["demo", "--script"]),
            Ok(Task::Demo { script: true })
        );
        assert_eq!(
            parse(&["fresh-clone-check"]),
            Ok(Task::FreshCloneCheck { keep: false })
        );
        assert_eq!(
            parse(&["fresh-clone-check", "--keep"]),
            Ok(Task::FreshCloneCheck { keep: true })
        );
    }

    #[test]
    fn fuzz_takes_a_duration_and_known_targets() {
        assert_eq!(
            parse(&["fuzz"]),
            Ok(Task::Fuzz {
                seconds: None,
                targets: vec![]
            })
        );
        assert_eq!(
            parse(&["fuzz", "--seconds", "600", "ws_frames", "requestinfo"]),
            Ok(Task::Fuzz {
                seconds: Some(600),
                targets: vec!["ws_frames".into(), "requestinfo".into()]
            })
        );
        assert_eq!(
            parse(&["fuzz", "sessiontap", "--seconds", "5"]),
            Ok(Task::Fuzz {
                seconds: Some(5),
                targets: vec!["sessiontap".into()]
            })
        );
        assert_eq!(
            parse(&["fuzz", "--seconds", "soon"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(parse(&["fuzz", "--seconds"]), Err(ErrorKind::InvalidValue));
        assert_eq!(
            parse(&["fuzz", "no_such_target"]),
            Err(ErrorKind::InvalidValue)
        );
    }

    #[test]
    fn bench_runs_everything_or_one_of_two() {
        let defaults = compare_bench::CompareOptions::default();
        let bench = |compare_only, events_only| {
            Ok(Task::Bench {
                compare_only,
                events_only,
                scale_only: false,
                get_only: false,
                event_connections: events_bench::DEFAULT_CONNECTIONS,
                exec_bytes: defaults.exec_bytes,
                rounds: defaults.rounds,
            })
        };
        assert_eq!(parse(&["bench"]), bench(false, false));
        assert_eq!(parse(&["bench", "--compare-only"]), bench(true, false));
        // The former name of the session benchmark runs the comparison, which includes it.
        assert_eq!(parse(&["bench", "--sessions-only"]), bench(true, false));
        assert_eq!(parse(&["bench", "--events-only"]), bench(false, true));
        assert_eq!(
            parse(&["bench", "--compare-only", "--events-only"]),
            Err(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            parse(&[
                "bench",
                "--compare-only",
                "--exec-bytes",
                "20000000",
                "--rounds",
                "1"
            ]),
            Ok(Task::Bench {
                compare_only: true,
                events_only: false,
                scale_only: false,
                get_only: false,
                event_connections: events_bench::DEFAULT_CONNECTIONS,
                exec_bytes: 20_000_000,
                rounds: 1,
            })
        );
        assert!(matches!(
            parse(&["bench", "--get-only", "--rounds", "9"]),
            Ok(Task::Bench {
                get_only: true,
                rounds: 9,
                ..
            })
        ));
        assert_eq!(
            parse(&["bench", "--get-only", "--events-only"]),
            Err(ErrorKind::ArgumentConflict)
        );
        assert!(matches!(
            parse(&["bench", "--events-only", "--event-connections", "64"]),
            Ok(Task::Bench {
                events_only: true,
                event_connections: 64,
                ..
            })
        ));
        assert_eq!(
            parse(&["bench", "--event-connections", "0"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            parse(&["bench", "--rounds", "0"]),
            Err(ErrorKind::ValueValidation)
        );
        assert!(matches!(
            parse(&["bench", "--scale-only"]),
            Ok(Task::Bench {
                scale_only: true,
                compare_only: false,
                events_only: false,
                ..
            })
        ));
        assert_eq!(
            parse(&["bench", "--scale-only", "--events-only"]),
            Err(ErrorKind::ArgumentConflict)
        );
    }
}
