//! `swh-deploy completions SHELL`: the shell completion script (clap_complete)
//! for bash, zsh or fish, on stdout.
//!
//! `run` and `nodeset` parse their options by hand (clush's and
//! ClusterShell's optparse rules): their subcommand names are completed,
//! their options are not.

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::process::ExitCode;

/// Prints a completion script.
#[derive(Debug, Args)]
#[command(after_help = "\
Install, e.g.:
  swh-deploy completions bash > /etc/bash_completion.d/swh-deploy
  swh-deploy completions zsh  > /usr/local/share/zsh/site-functions/_swh-deploy
  swh-deploy completions fish > ~/.config/fish/completions/swh-deploy.fish
The Debian package installs them (scripts/build-deb).")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL", value_parser = ["bash", "zsh", "fish"])]
    shell: String,
}

/// The completion script for `shell` (`bash`, `zsh`, `fish`).
pub fn script(shell: &str) -> Result<Vec<u8>, String> {
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => return Err(format!("unknown shell {other:?} (bash, zsh or fish)")),
    };
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "swh-deploy", &mut out);
    if shell == Shell::Bash {
        // clap_complete 4.6 spells the state of a subcommand of a hyphenated
        // binary differently in its dispatch loop (`swh__deploy__subcmd__where`)
        // and in its case arms (`swh__subcmd__deploy__subcmd__where`), so no
        // subcommand option would ever complete (clap-rs/clap#6421, open).
        // The arms are respelled as the loop spells them.
        let text = String::from_utf8_lossy(&out).replace("swh__subcmd__deploy__", "swh__deploy__");
        out = text.into_bytes();
    }
    Ok(out)
}

/// Runs `swh-deploy completions`.
pub fn run(args: CompletionsArgs) -> ExitCode {
    use std::io::Write as _;
    match script(&args.shell) {
        Ok(s) => {
            if std::io::stdout().write_all(&s).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("swh-deploy completions: error: {e}");
            ExitCode::FAILURE
        }
    }
}
