//! The `swh-deploy` binary: parses arguments and hands each subcommand to
//! the library crate that owns it (see the README's architecture section).
//!
//! Each subcommand lives in its own module under `cmd/`, so the binary stays
//! thin: argument parsing, calling a library crate, rendering the result.

mod cmd;
// The commands adopt the one error type and the resolved settings one at a
// time (issue 15); until the last one has, parts of both are unused.
mod error;
mod events;
mod json;
mod settings;

use clap::Parser;
use std::process::ExitCode;

/// Software Heritage's "Upgrade swh service" runbook as one command.
#[derive(Debug, Parser)]
#[command(name = "swh-deploy", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    // `swh-deploy run ...` (and `clush ...`, the binary installed under
    // that name) have clush's own optparse-style parser.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = cmd::run::main_from_argv(&argv) {
        return code;
    }
    // `swh-deploy nodeset ...` parses its own arguments with ClusterShell's
    // (optparse) rules, which clap cannot express (a leading `--`...).
    if argv.get(1).is_some_and(|a| a == "nodeset") {
        return cmd::nodeset::main(argv[2..].to_vec());
    }
    let cli = Cli::parse();
    cmd::dispatch(cli.command)
}
