//! `swh-deploy resume RUN`: continues an interrupted upgrade run without
//! redoing the hosts that finished. Also the shared driver that runs an
//! upgrade through the executor of `swh_deploy_upgrade::execute` (used by
//! `swh-deploy upgrade` without `--dry-run`): ssh transport from the site,
//! Ctrl-C handling, progress on stderr (or JSON lines on stdout), summary,
//! exit status.

use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use swh_deploy_fleet::{CancelToken, HostKeyPolicy};
use swh_deploy_journal::{Journal, LockRefused};
use swh_deploy_site::Site;
use swh_deploy_upgrade::execute::{
    self, Context, Event, Events, ExecError, ExecOptions, Summary, UpgradeRequest,
};

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
    // Bad input changes nothing, not even the journal file.
    if let Err(e) = swh_deploy_upgrade::ssh::check(site) {
        eprintln!("swh-deploy: {e}");
        return ExitCode::FAILURE;
    }
    let mut journal = match Journal::open_default(journal) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let argv: Vec<String> = std::env::args().collect();
    drive(site, json, host_keys, |ctx| {
        execute::start(&mut journal, site, request, argv, ctx)
    })
}

/// The exit status for a refused run.
pub fn refused_code(refused: &LockRefused) -> u8 {
    match refused {
        LockRefused::Held { .. } => 4,
        LockRefused::CompensationsPending { .. } => 5,
    }
}

pub(crate) fn drive(
    site: &Site,
    json: bool,
    host_keys: HostKeyPolicy,
    f: impl FnOnce(&mut Context<'_>) -> Result<Summary, ExecError>,
) -> ExitCode {
    let transport = match swh_deploy_upgrade::ssh::transport_with(site, host_keys) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let resolver = swh_deploy_upgrade::ssh::resolver(site);
    let cancel = CancelToken::new();
    let _guard = execute::cancel_on_signals(&cancel).ok();
    let mut events: Box<dyn Events> = if json {
        Box::new(JsonEvents)
    } else {
        Box::new(HumanEvents {
            tty: std::io::stderr().is_terminal(),
        })
    };
    let mut ctx = Context {
        transport: &transport,
        resolver: &resolver,
        options: ExecOptions {
            fanout: site.ssh.fanout.max(1),
            ..ExecOptions::default()
        },
        cancel,
        events: events.as_mut(),
    };
    match f(&mut ctx) {
        Ok(summary) => {
            if json {
                let mut v = serde_json::to_value(&summary).unwrap_or_default();
                v["event"] = "summary".into();
                println!("{v}");
            } else {
                print!("{}", summary.render());
            }
            ExitCode::from(execute::exit_code(summary.status))
        }
        Err(ExecError::Refused { run, refused }) => {
            eprintln!("swh-deploy: run {run} refused: {refused}");
            ExitCode::from(refused_code(&refused))
        }
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Progress as JSON lines on stdout.
struct JsonEvents;

impl Events for JsonEvents {
    fn event(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Progress for humans on stderr (bold batch headers on a terminal).
struct HumanEvents {
    tty: bool,
}

impl Events for HumanEvents {
    fn event(&mut self, event: &Event) {
        let (b, r) = if self.tty {
            ("\x1b[1m", "\x1b[0m")
        } else {
            ("", "")
        };
        let mut err = std::io::stderr().lock();
        match event {
            Event::Run {
                run,
                mode,
                hosts,
                batches,
                resumed,
            } => {
                let _ = writeln!(
                    err,
                    "{b}run {run}{}: {mode} upgrade of {hosts} in {batches} batch(es){r}",
                    if *resumed { " (resumed)" } else { "" }
                );
            }
            Event::Batch {
                index,
                of,
                canary,
                hosts,
            } => {
                let _ = writeln!(
                    err,
                    "{b}batch {}/{of}{}: {hosts}{r}",
                    index + 1,
                    if *canary { " (canary)" } else { "" }
                );
            }
            Event::Step {
                name,
                hosts,
                already_done,
                ..
            } => {
                if !already_done.is_empty() {
                    let _ = writeln!(err, "  {name:<16} already done on {already_done}");
                }
                if !hosts.is_empty() && self.tty {
                    let _ = write!(err, "  {name:<16} {hosts} ...\r");
                }
            }
            Event::StepDone {
                name,
                ok,
                failed,
                seconds,
                ..
            } => {
                if ok.is_empty() && failed.is_empty() {
                    return;
                }
                let _ = write!(err, "  {name:<16} ");
                if !ok.is_empty() {
                    let _ = write!(err, "ok {ok}");
                }
                if !failed.is_empty() {
                    let hosts: Vec<&str> = failed.iter().map(|f| f.host.as_str()).collect();
                    let _ = write!(
                        err,
                        "{}FAILED {}",
                        if ok.is_empty() { "" } else { ", " },
                        hosts.join(",")
                    );
                }
                let clear = if self.tty { "\x1b[K" } else { "" };
                let _ = writeln!(err, " ({seconds:.1}s){clear}");
                for f in failed {
                    let rc = f.rc.map(|c| format!(" (exit {c})")).unwrap_or_default();
                    let _ = writeln!(err, "    {}: {}{rc}: {}", f.host, f.outcome, f.detail);
                }
            }
            Event::Stop { reason } => {
                let _ = writeln!(err, "{b}stopped: {reason}{r}");
            }
        }
    }
}
