//! `swh-deploy history [RUN]`: the runs recorded in the journal, or one
//! run's steps, per-host outcomes (as folded node sets), compensations and
//! locks.

use crate::error::{CmdResult, Exit};
use crate::settings::{Env, Settings};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use swh_deploy_journal::{Journal, Outcome, RunDetails};
use swh_deploy_nodeset::fold;

/// Show what was done, by whom, when.
#[derive(Debug, Args)]
#[command(after_help = "\
Without RUN: the latest runs, newest first. With RUN: its steps, the hosts
per outcome, its compensations (pending ones are flagged) and its locks.
Runs whose process is gone are marked interrupted first.")]
pub struct HistoryArgs {
    /// The run to show in detail.
    #[arg(value_name = "RUN")]
    run: Option<i64>,
    /// The journal (default: $SWH_DEPLOY_JOURNAL, else
    /// $XDG_STATE_HOME/swh-deploy/journal.sqlite).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// How many runs to list.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    /// With RUN: also print every host's stdout and stderr.
    #[arg(long)]
    outputs: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// With RUN: write a self-contained HTML page of the run (timeline per
    /// host, summary, versions before/after) to FILE.
    #[arg(long, value_name = "FILE", requires = "run")]
    html: Option<PathBuf>,
}

/// Runs `swh-deploy history`.
pub fn run(args: HistoryArgs) -> CmdResult {
    history(&args)
}

fn history(args: &HistoryArgs) -> CmdResult {
    let path = journal_path(args.journal.as_deref());
    let mut journal = Journal::open_default(path.as_deref())?;
    journal.reap_dead_runs()?;
    warn_pending(&journal)?;
    match args.run {
        None => {
            let runs = journal.runs(args.limit)?;
            if args.json {
                crate::json::print(&serde_json::json!({ "runs": runs }))?;
                return Ok(Exit::Success);
            }
            if runs.is_empty() {
                println!("no runs in {}", journal.path().display());
                return Ok(Exit::Success);
            }
            println!(
                "{:>5}  {:<15}  {:<13}  {:<10}  {:<24}  COMMAND",
                "RUN", "STATUS", "MODE", "USER", "STARTED"
            );
            for r in runs {
                println!(
                    "{:>5}  {:<15}  {:<13}  {:<10}  {:<24}  {}",
                    r.id,
                    r.status.as_str(),
                    r.mode,
                    r.user,
                    r.started_at,
                    r.command_line.join(" ")
                );
            }
        }
        Some(id) => {
            let details = journal.run_details(id)?;
            if let Some(file) = &args.html {
                let page = swh_deploy_upgrade::html::render_html(&details);
                swh_deploy_util::atomic_write(file, page.as_bytes())?;
                println!("wrote {}", file.display());
                return Ok(Exit::Success);
            }
            if args.json {
                crate::json::print(&details)?;
            } else {
                print!("{}", render_details(&details, args.outputs));
            }
        }
    }
    Ok(Exit::Success)
}

/// Prints a warning on stderr when compensations are pending; returns how
/// many there are. Every command that uses the journal calls it.
pub fn warn_pending(journal: &Journal) -> Result<usize, swh_deploy_journal::JournalError> {
    let pending = journal.pending_compensations(None)?;
    if !pending.is_empty() {
        let mut runs: Vec<i64> = pending.iter().map(|c| c.run).collect();
        runs.dedup();
        let hosts = fold(pending.iter().map(|c| c.host.as_str()));
        eprintln!(
            "swh-deploy: warning: {} compensation(s) pending on {hosts} (run(s) {}): {}; run `swh-deploy recover`",
            pending.len(),
            runs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
            swh_deploy_upgrade::recover::pending_effects(&pending).join("; ")
        );
    }
    Ok(pending.len())
}

/// The journal of `--journal FILE` (`flag`), else `$SWH_DEPLOY_JOURNAL`
/// ([`Settings::journal_path`]); `None`: the default one.
pub fn journal_path(flag: Option<&Path>) -> Option<std::path::PathBuf> {
    Settings::journal_path(flag, &Env::process())
}

/// Like [`warn_pending`], but only when the journal file already exists (a
/// dry run does not create one); `flag` is `--journal`, if any.
pub fn warn_pending_if_any(flag: Option<&Path>) {
    let explicit = journal_path(flag);
    let Ok(path) = swh_deploy_journal::resolve_path(explicit.as_deref()) else {
        return;
    };
    if path.exists() {
        if let Ok(journal) = Journal::open(&path) {
            let _ = warn_pending(&journal);
        }
    }
}

fn render_details(d: &RunDetails, outputs: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let r = &d.run;
    let _ = writeln!(out, "run {}: {} ({})", r.id, r.status, r.mode);
    let _ = writeln!(out, "  command: {}", r.command_line.join(" "));
    let _ = writeln!(out, "  by {} on {} (pid {})", r.user, r.hostname, r.pid);
    let _ = writeln!(
        out,
        "  started {}, ended {}",
        r.started_at,
        r.ended_at.as_deref().unwrap_or("-")
    );
    if r.status.is_resumable() {
        let _ = writeln!(out, "  resumable: swh-deploy resume {}", r.id);
    }
    for s in &d.steps {
        let batch = s
            .batch
            .map(|b| format!(" batch {}", b + 1))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "step {} {}{batch} [{}] on {}: {}",
            s.index + 1,
            s.name,
            s.kind,
            s.hosts,
            s.status.as_str()
        );
        // Latest result per host, grouped by outcome.
        let mut latest: BTreeMap<&str, &swh_deploy_journal::HostResult> = BTreeMap::new();
        for h in d.results.iter().filter(|h| h.step == s.index) {
            latest.insert(&h.host, h);
        }
        let mut by_outcome: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (host, h) in &latest {
            by_outcome.entry(h.outcome.as_str()).or_default().push(host);
        }
        for (outcome, hosts) in by_outcome {
            let _ = writeln!(out, "    {outcome}: {}", fold(hosts.into_iter()));
        }
        if outputs {
            for h in latest.values() {
                let rc = h.rc.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    out,
                    "    --- {} (rc {rc}, {} ms, {})",
                    h.host,
                    h.duration_ms,
                    h.outcome.as_str()
                );
                for line in h.stdout.lines() {
                    let _ = writeln!(out, "    {}: {line}", h.host);
                }
                for line in h.stderr.lines() {
                    let _ = writeln!(out, "    {} (stderr): {line}", h.host);
                }
            }
        } else {
            for h in latest.values().filter(|h| h.outcome != Outcome::Ok) {
                if let Some(line) = h.stderr.lines().rev().find(|l| !l.trim().is_empty()) {
                    let _ = writeln!(out, "    {}: {line}", h.host);
                }
            }
        }
    }
    if !d.compensations.is_empty() {
        let _ = writeln!(out, "compensations:");
        for c in &d.compensations {
            match &c.done_at {
                Some(done) => {
                    let _ = writeln!(out, "  {} on {}: done {done}", c.action, c.host);
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  {} on {}: PENDING since {} (swh-deploy recover)",
                        c.action, c.host, c.recorded_at
                    );
                }
            }
        }
    }
    if !d.events.is_empty() {
        let _ = writeln!(out, "events:");
        for e in &d.events {
            let _ = writeln!(out, "  {} {}: {}", e.at, e.kind, render_event(e));
        }
    }
    if !d.locks.is_empty() {
        let _ = writeln!(
            out,
            "locks held: {}",
            fold(d.locks.iter().map(String::as_str))
        );
    }
    out
}

/// One event of a run, for humans.
fn render_event(e: &swh_deploy_journal::RunEvent) -> String {
    let d = &e.detail;
    let who = format!("by {} on {} (pid {})", e.user, e.hostname, e.pid);
    match e.kind.as_str() {
        "resume" => format!(
            "{who}: {}; decision: {}",
            e.command_line.join(" "),
            d["decision"].as_str().unwrap_or("?")
        ),
        "migration-started" => format!(
            "on {}: {}",
            d["host"].as_str().unwrap_or("?"),
            match d["started"].as_bool() {
                Some(true) => "the migration began running there",
                Some(false) => "no trace: the migration never began there",
                None => "unknown (the host did not answer)",
            }
        ),
        "forced-takeover" => format!(
            "{who}: {}; the run's process ({}) could not be checked and was taken over",
            e.command_line.join(" "),
            d["previous_process"].as_str().unwrap_or("?")
        ),
        _ => format!("{who}: {}", d),
    }
}
