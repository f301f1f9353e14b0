//! `swh-deploy run`: a command on many hosts at once, like `clush` (and
//! `clush` itself when the binary is installed under that name).
//!
//! The command is the `swh-deploy-clush` crate's
//! ([`swh_deploy_clush::clush`]): its option grammar, its targets and its
//! output; the engine and the transports are the `swh-deploy-fleet`
//! crate's. This module picks the program name from argv, hands the raw
//! arguments and the process's environment to the library, and maps its
//! outcome to an exit status.

use crate::settings;
use clap::Args;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use swh_deploy_clush::clush::{self, Outcome, Prog, Request, RunEnv, CLUSH, SWH_DEPLOY};
use swh_deploy_util::Exit;

/// Run a shell command on many hosts in parallel (a clush replacement).
///
/// Its options are parsed as clush parses them (optparse): see
/// `swh-deploy run --help`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// clush's options, then the command (`swh-deploy run --help` lists
    /// them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// `swh-deploy run ARGS`, or `clush ARGS` when the binary is installed (or
/// linked) under the name `clush`: both parsed by run's own clush-compatible
/// (optparse) parser. `None` for any other command line.
pub fn main_from_argv(argv: &[OsString]) -> Option<ExitCode> {
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if name.as_deref() == Some("clush") {
        return Some(main_with(CLUSH, &argv[1..]));
    }
    let word = |i: usize| argv.get(i).map(|a| a.as_os_str());
    if word(1) == Some("help".as_ref()) && word(2) == Some("run".as_ref()) && argv.len() == 3 {
        print!("{}", clush::help(SWH_DEPLOY));
        return Some(ExitCode::SUCCESS);
    }
    if word(1) == Some("run".as_ref()) {
        return Some(main_with(SWH_DEPLOY, &argv[2..]));
    }
    None
}

/// Runs `swh-deploy run` (reached through clap, e.g. `swh-deploy help run`
/// aside: [`main_from_argv`] takes the usual path).
pub fn main(args: RunArgs) -> ExitCode {
    main_with(SWH_DEPLOY, &args.args)
}

/// What the run reads of the process: terminals, and environment
/// variables by the binary's one rule (set and not empty).
fn run_env() -> RunEnv {
    let env = settings::Env::process();
    RunEnv {
        stdout_tty: std::io::stdout().is_terminal(),
        stderr_tty: std::io::stderr().is_terminal(),
        no_color: env.get(settings::NO_COLOR).is_some(),
        runtime_dir: env.path(settings::RUNTIME_DIR),
        site: env.path(settings::SITE),
    }
}

fn main_with(prog: Prog, args: &[OsString]) -> ExitCode {
    let result = clush::parse(args).and_then(|request| match request {
        Request::Help => {
            print!("{}", clush::help(prog));
            Ok(Outcome::Ran(0))
        }
        Request::Version => {
            println!("{} {}", prog.usage, env!("CARGO_PKG_VERSION"));
            Ok(Outcome::Ran(0))
        }
        Request::Run(request) => clush::run(prog, *request, &run_env()),
    });
    match result {
        Ok(Outcome::Ran(code)) => ExitCode::from(code),
        Ok(Outcome::Interrupted) => Exit::Interrupted.into(),
        Err(e) => {
            if let Some(msg) = e.render(prog) {
                eprint!("{msg}");
            }
            e.exit().into()
        }
    }
}
