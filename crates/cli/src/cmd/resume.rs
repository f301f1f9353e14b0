//! `swh-deploy resume RUN`: continues an interrupted upgrade run without
//! redoing the hosts that finished. Also the rendering shared by the
//! commands that run the executor through `swh_deploy_upgrade::driver`
//! (`upgrade` without `--dry-run`, `rollback`): progress on stderr (or JSON
//! lines on stdout), summary, exit status.

use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
pub fn run(args: ResumeArgs) -> ExitCode {
    let mut journal = match Journal::open_default(args.journal.as_deref()) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            return ExitCode::FAILURE;
        }
    };
    super::history::warn_pending_if_any(args.journal.as_deref());
    let site = match &args.site {
        Some(p) => match Site::load(p) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("swh-deploy: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let request = match execute::stored_request(&journal, args.run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let site = match site {
        Some(s) => s,
        None => match Site::load(&request.site) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("swh-deploy: {e}");
                return ExitCode::FAILURE;
            }
        },
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
    host_keys: HostKeyPolicy,
) -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    render(json, |events| {
        driver::upgrade(site, request, journal, argv, host_keys, events)
    })
}

/// Runs `f` through [`driver::drive`] and renders its progress, summary
/// and exit status.
pub(crate) fn drive(
    site: &Site,
    json: bool,
    host_keys: HostKeyPolicy,
    f: impl FnOnce(&mut Context<'_>) -> Result<Summary, ExecError>,
) -> ExitCode {
    render(json, |events| driver::drive(site, host_keys, events, f))
}

/// Progress on stderr (or JSON lines on stdout), then the summary and the
/// exit status of the run, or the error.
fn render(json: bool, f: impl FnOnce(&mut dyn Events) -> Result<Summary, ExecError>) -> ExitCode {
    let mut events: Box<dyn Events> = if json {
        Box::new(JsonProgress::new(std::io::stdout()))
    } else {
        Box::new(HumanProgress::new(
            std::io::stderr(),
            std::io::stderr().is_terminal(),
        ))
    };
    match f(events.as_mut()) {
        Ok(summary) => {
            if json {
                println!("{}", summary.to_json_line());
            } else {
                print!("{}", summary.render());
            }
            ExitCode::from(summary.exit_code())
        }
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
