//! `swh-deploy nodeset`: ClusterShell's `nodeset` command (fold, expand,
//! count, regroup, index, list groups, set operations), same options, same
//! output, same messages, same exit codes. The command is the
//! `swh-deploy-clush` crate's ([`swh_deploy_clush::nodeset`]); this module
//! hands it the raw arguments and standard output and prints its error.

use clap::Args;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use swh_deploy_clush::nodeset::{self, decode_bytes, RawBytes};
use swh_deploy_util::Exit;

/// Arguments of `swh-deploy nodeset`: taken raw and parsed with optparse's
/// rules (see `swh-deploy nodeset --help`).
#[derive(Debug, Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct NodesetArgs {
    /// Options and node sets, as ClusterShell's `nodeset` takes them: run
    /// `swh-deploy nodeset --help` for the list.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// Runs `swh-deploy nodeset` (when reached through clap).
pub fn run(args: NodesetArgs) -> ExitCode {
    main(args.args)
}

/// Runs `swh-deploy nodeset` with its raw arguments (after `nodeset`).
pub fn main(raw: Vec<OsString>) -> ExitCode {
    // Arguments that are not UTF-8 pass through as the same bytes.
    let argv: Vec<String> = raw
        .into_iter()
        .map(|a| decode_bytes(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())))
        .collect();
    let stdout = std::io::stdout();
    let mut out = RawBytes(std::io::BufWriter::new(stdout.lock()));
    let r = nodeset::run(&argv, &mut out);
    let flushed = out.flush();
    match r {
        Ok(()) => match flushed {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("ERROR: {e}");
                }
                Exit::Failed.into()
            }
        },
        Err(e) => {
            // A caret under the faulty part only for a human reader.
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            e.exit().into()
        }
    }
}
