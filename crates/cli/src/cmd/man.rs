//! `swh-deploy man [DIR]`: man pages (clap_mangen). Without DIR, the page
//! of `swh-deploy` on stdout; with DIR, `swh-deploy.1` and one page per
//! subcommand (`swh-deploy-where.1`, `swh-deploy-chart-bump.1`...), each
//! written atomically (rendered in a temporary directory inside DIR, then
//! renamed).

use clap::{Args, CommandFactory};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Writes man pages.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  swh-deploy man | man -l -
  swh-deploy man /usr/local/share/man/man1 && mandb -q")]
pub struct ManArgs {
    /// Directory for swh-deploy.1 and the subcommands' pages (created if
    /// missing); without it, swh-deploy(1) is printed on stdout.
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Writes every page into `dir`; returns their file names, sorted.
pub fn write_pages(dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".swh-deploy-man.")
        .tempdir_in(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    clap_mangen::generate_to(crate::Cli::command(), tmp.path())
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(tmp.path()).map_err(|e| format!("{}: {e}", tmp.path().display()))?
    {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let to = dir.join(&name);
        std::fs::rename(entry.path(), &to).map_err(|e| format!("{}: {e}", to.display()))?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// Runs `swh-deploy man`.
pub fn run(args: ManArgs) -> ExitCode {
    let result = match &args.dir {
        Some(dir) => write_pages(dir).map(|names| {
            for n in names {
                println!("{}", dir.join(n).display());
            }
        }),
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(crate::Cli::command())
                .render(&mut out)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    use std::io::Write as _;
                    std::io::stdout().write_all(&out).map_err(|e| e.to_string())
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swh-deploy man: error: {e}");
            ExitCode::FAILURE
        }
    }
}
