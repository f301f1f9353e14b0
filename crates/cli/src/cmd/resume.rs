//! `swh-deploy resume RUN`: continues an interrupted upgrade run without
//! redoing the hosts that finished. Also the rendering shared by the
//! commands that run the executor through `swh_deploy_upgrade::driver`
//! (`upgrade` without `--dry-run`, `rollback`): progress on stderr (or JSON
//! lines on stdout), summary, exit status.

use crate::error::CmdResult;
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use swh_deploy_fleet::HostKeyPolicy;
use swh_deploy_journal::Journal;
use swh_deploy_site::Site;
use swh_deploy_upgrade::driver::{self, HumanProgress, JsonProgress};
use swh_deploy_upgrade::execute::{self, Context, Events, ExecError, Summary};
use swh_deploy_upgrade::UpgradeRequest;

/// Continue an interrupted upgrade run.
#[derive(Debug, Args)]
#[command(after_help = "\
A run can be resumed when it is `interrupted` (Ctrl-C, SIGTERM, or its
process died: kill -9, crash, lost admin host) or `budget-exceeded`. The plan
is rebuilt from the request stored with the run and must be identical (same
site, same hosts, same commands). Each step is skipped on the hosts whose
latest result for it is ok; everything else runs, failed hosts included.
After a crash in long-standing mode, `swh-deploy recover` may have restarted
cron and re-enabled puppet: resume then stops them again first.
A migration (`--migration`) that the interrupted run started but did not
finish is never re-run silently: resume refuses until you say, after checking
the database, --rerun-migration or --skip-migration.

Exit status: as `swh-deploy upgrade` (0, 1, 3, 4, 5, 130).")]
pub struct ResumeArgs {
    /// The run to continue (see `swh-deploy history`).
    #[arg(value_name = "RUN")]
    run: i64,
    /// Site file to use instead of the one recorded with the run.
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// The journal (default: $SWH_DEPLOY_JOURNAL, else
    /// $XDG_STATE_HOME/swh-deploy/journal.sqlite).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Progress and summary as JSON lines on stdout.
    #[arg(long)]
    json: bool,
    /// The interrupted run started the migration without finishing it: run
    /// it again (only once you checked it can be re-run).
    #[arg(long, conflicts_with = "skip_migration")]
    rerun_migration: bool,
    /// The interrupted run started the migration without finishing it:
    /// count it as done (only once you checked it completed).
    #[arg(long)]
    skip_migration: bool,
}

/// Runs `swh-deploy resume`.
pub fn run(args: ResumeArgs) -> CmdResult {
    let journal_path = super::history::journal_path(args.journal.as_deref());
    let mut journal = Journal::open_default(journal_path.as_deref())?;
    super::history::warn_pending_if_any(args.journal.as_deref());
    let site = args.site.as_deref().map(Site::load).transpose()?;
    let request = execute::stored_request(&journal, args.run)?;
    let site = match site {
        Some(s) => s,
        None => Site::load(&request.site)?,
    };
    drive(&site, args.json, HostKeyPolicy::Strict, |ctx| {
        let migration = if args.rerun_migration {
            execute::MigrationOnResume::Rerun
        } else if args.skip_migration {
            execute::MigrationOnResume::Skip
        } else {
            execute::MigrationOnResume::Refuse
        };
        let argv: Vec<String> = std::env::args().collect();
        execute::resume(&mut journal, args.run, Some(&site), migration, &argv, ctx)
    })
}

/// Runs a new upgrade of `request` through the executor (the non-dry-run
/// path of `swh-deploy upgrade`).
pub fn run_upgrade(
    site: &Site,
    request: &UpgradeRequest,
    journal: Option<&Path>,
    json: bool,
    connect: swh_deploy_upgrade::ssh::Connect,
) -> CmdResult {
    let argv: Vec<String> = std::env::args().collect();
    render(json, |events| {
        driver::upgrade(site, request, journal, argv, connect, events)
    })
}

/// Runs `f` through [`driver::drive`] and renders its progress, summary
/// and exit.
pub(crate) fn drive(
    site: &Site,
    json: bool,
    host_keys: HostKeyPolicy,
    f: impl FnOnce(&mut Context<'_>) -> Result<Summary, ExecError>,
) -> CmdResult {
    render(json, |events| driver::drive(site, host_keys, events, f))
}

/// Progress on stderr (or JSON lines on stdout), then the summary and the
/// exit of the run; an error is returned as it is.
fn render(json: bool, f: impl FnOnce(&mut dyn Events) -> Result<Summary, ExecError>) -> CmdResult {
    let summary = if json {
        f(&mut JsonProgress::new(std::io::stdout()))?
    } else {
        let tty = std::io::stderr().is_terminal();
        f(&mut HumanProgress::new(std::io::stderr(), tty))?
    };
    if json {
        println!("{}", summary.to_json_line());
    } else {
        print!("{}", summary.render());
    }
    Ok(summary.exit())
}
