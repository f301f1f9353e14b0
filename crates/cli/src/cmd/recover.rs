//! `swh-deploy recover [RUN]`: runs the compensations (start cron, enable
//! puppet) that interrupted runs left pending in the journal; see
//! `swh_deploy_upgrade::recover`.

use crate::error::{CmdResult, Exit};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use swh_deploy_charts::long_migrate::{recover_reverts, RecoverWait, RevertRecovered};
use swh_deploy_journal::Journal;
use swh_deploy_upgrade::recover::{recover_pending, render_reports, RecoverReport};

/// Put hosts back after a crash: run pending compensations.
#[derive(Debug, Args)]
#[command(after_help = "\
`cluster migrate --disable` journals the revert of its commit turning worker
groups off (elastic-revert): `recover` makes that revert (git revert, pushed,
never forced) when the commit is on the branch and not reverted yet, else
just marks it done. After a revert (its own or the dead run's) it waits,
as `cluster wait` does (progress on stderr, bounded by --timeout), until
the run's environment is live again; when the run's site file or Argo CD
cannot be used for that, it says so: then run `swh-deploy cluster wait ENV`.

A long-standing upgrade stops cron and disables puppet on its hosts. It
records in the journal, before each of these, the compensation that undoes
it (start-cron: systemctl start cron.service; enable-puppet: puppet agent
--enable) and runs them at its end, also on failure and Ctrl-C. After a
crash or kill -9 they stay pending: `recover` runs them, marks each done once
it succeeded on its host, and releases the dead run's host locks. Hosts
that could not be reached stay pending: run `recover` again.

Before a compensation runs on a host, the dead run's process is fenced off
that host under a per-host lock (flock /run/swh-deploy/lock): a command it
left running there finishes first, one still in flight does nothing. A
compensation is done only once the host is verified back (cron active,
puppet's lock file absent), not because the command exited 0.

Compensations of runs whose process is still alive are left to them. A run
is alive when its pid runs here with the recorded start time and boot id
(a reused pid or a reboot means dead). A run recorded on another admin host
cannot be checked from here: `recover --force RUN` takes it over (warning
and journal entry).
The hosts are reached with the [ssh] settings of --site, else of the site
file recorded with the run.

Exit status: 0 nothing left pending, 1 some compensation failed, an
environment failed after a chart revert, or bad input, 6 an environment
was not live after a chart revert before --timeout.")]
pub struct RecoverArgs {
    /// Only the compensations of this run.
    #[arg(value_name = "RUN")]
    run: Option<i64>,
    /// Site file (its [ssh] settings) instead of the run's.
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// The journal (default: $SWH_DEPLOY_JOURNAL, else
    /// $XDG_STATE_HOME/swh-deploy/journal.sqlite).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Take over RUN although it is recorded as running, when its process
    /// cannot be checked from here (it ran on another admin host): it is
    /// marked interrupted (with a journal entry) and recovered.
    #[arg(long, requires = "run")]
    force: bool,
    /// After a chart revert: give up waiting for Argo CD after this long
    /// (e.g. 15m, 90s).
    #[arg(long, default_value = "15m", value_parser = swh_deploy_util::duration::parse)]
    timeout: Duration,
    /// After a chart revert: time between polls.
    #[arg(long, default_value = "5s", value_parser = swh_deploy_util::duration::parse)]
    interval: Duration,
}

/// Runs `swh-deploy recover`.
pub fn run(args: RecoverArgs) -> CmdResult {
    let journal_path = super::history::journal_path(args.journal.as_deref());
    let mut journal = Journal::open_default(journal_path.as_deref())?;
    let argv: Vec<String> = std::env::args().collect();
    // The elastic path's compensations (chart commits to revert) first:
    // the static path's recovery leaves them alone.
    let mut printer = crate::events::EventPrinter::default();
    let recovered = recover_reverts(
        &mut journal,
        args.run,
        &mut RecoverWait {
            timeout: args.timeout,
            interval: args.interval,
            progress: &mut |ev| printer.show(true, ev, ev.waiting().map(crate::events::Tick::Wait)),
        },
    );
    drop(printer);
    let (reverts, live) = recovered?;
    let reports = recover_pending(
        &mut journal,
        args.run,
        args.force,
        args.site.as_deref(),
        argv,
        &mut |warning| eprintln!("swh-deploy: warning: {warning}"),
    )?;
    let elastic: String = reverts.iter().map(|r| format!("{r}\n")).collect::<String>()
        + &live
            .iter()
            .map(|run| format!("  run {run} is still running: its chart revert is left to it\n"))
            .collect::<String>();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
        eprint!("{elastic}");
    } else {
        let statics = render_reports(&reports);
        if elastic.is_empty() || !statics.starts_with("nothing to recover") {
            print!("{statics}");
        }
        if !reverts.is_empty() {
            println!("chart reverts:");
        }
        print!("{elastic}");
    }
    let elastic_exit = reverts
        .iter()
        .map(RevertRecovered::exit)
        .find(|e| *e != Exit::Success);
    Ok(if !reports.iter().all(RecoverReport::complete) {
        Exit::Failed
    } else {
        elastic_exit.unwrap_or(Exit::Success)
    })
}
