//! `swh-deploy recover [RUN]`: runs the compensations (start cron, enable
//! puppet) that interrupted runs left pending in the journal; see
//! `swh_deploy_upgrade::recover`.

use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use swh_deploy_journal::{Journal, RunStatus};
use swh_deploy_site::Site;
use swh_deploy_upgrade::execute::{self, ExecOptions};
use swh_deploy_upgrade::recover::{force_takeover, recover, RecoverReport};

/// Put hosts back after a crash: run pending compensations.
#[derive(Debug, Args)]
#[command(after_help = "\
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

Exit status: 0 nothing left pending, 1 some compensation failed or bad input.")]
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
}

/// Runs `swh-deploy recover`.
pub fn run(args: RecoverArgs) -> ExitCode {
    match recover_all(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn recover_all(args: &RecoverArgs) -> Result<ExitCode, String> {
    let mut journal = Journal::open_default(args.journal.as_deref()).map_err(|e| e.to_string())?;
    journal.reap_dead_runs().map_err(|e| e.to_string())?;
    let argv: Vec<String> = std::env::args().collect();
    if let (true, Some(run)) = (args.force, args.run) {
        if let Some(warning) =
            force_takeover(&mut journal, run, &argv).map_err(|e| e.to_string())?
        {
            eprintln!("swh-deploy: warning: {warning}");
        }
    }
    let explicit = match &args.site {
        Some(p) => Some(Site::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let pending = journal
        .pending_compensations(args.run)
        .map_err(|e| e.to_string())?;
    let runs: BTreeSet<i64> = pending.iter().map(|c| c.run).collect();
    let mut reports: Vec<RecoverReport> = Vec::new();
    if runs.is_empty() {
        reports.push(RecoverReport::default());
    }
    for run in runs {
        let status = journal.run(run).map_err(|e| e.to_string())?.status;
        let loaded;
        let site = match &explicit {
            Some(s) => s,
            None => {
                let path = match execute::stored_request(&journal, run) {
                    Ok(r) => r.site,
                    Err(_) if status == RunStatus::Running => {
                        // Left to the live run by `recover`; any site will do.
                        PathBuf::new()
                    }
                    Err(_) => {
                        return Err(format!(
                            "run {run} recorded no site file: give one with --site"
                        ))
                    }
                };
                loaded = if path.as_os_str().is_empty() {
                    Site::discover(None).map_err(|e| e.to_string())?
                } else {
                    Site::load(&path).map_err(|e| e.to_string())?
                };
                &loaded
            }
        };
        swh_deploy_upgrade::ssh::check(site)?;
        let transport = swh_deploy_upgrade::ssh::transport(site).map_err(|e| e.to_string())?;
        let options = ExecOptions {
            fanout: site.ssh.fanout.max(1),
            ..ExecOptions::default()
        };
        let report = recover(&mut journal, &transport, &options, Some(run), argv.clone())
            .map_err(|e| e.to_string())?;
        reports.push(report);
    }
    let complete = reports.iter().all(RecoverReport::complete);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    } else {
        let mut printed_nothing = true;
        for r in &reports {
            let text = r.render();
            if text.starts_with("nothing to recover") && reports.len() > 1 {
                continue;
            }
            printed_nothing = false;
            print!("{text}");
        }
        if printed_nothing {
            println!("nothing to recover: no pending compensation");
        }
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
