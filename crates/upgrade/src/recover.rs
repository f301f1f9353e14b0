//! `swh-deploy recover`: puts hosts back after a run died (crash, `kill
//! -9`, lost admin host) by running the compensations it left pending in
//! the journal (`start-cron`: `systemctl start cron.service`;
//! `enable-puppet`: `puppet agent --enable`).
//!
//! Before a compensation runs on a host, the dead run's process is fenced
//! off that host under the host's lock ([`crate::guard`]): a remote command
//! it left running finishes first, one still in flight then does nothing.
//! A compensation counts as done only once the host's final state is
//! verified (cron active, puppet's lock file absent), not because the
//! command exited 0.
//!
//! Compensations of a run whose process is still alive are left alone (that
//! run runs them itself). Each recovery is a run of its own in the journal
//! (mode `recover`), one step per action, with the host results; a
//! compensation is marked done only once it succeeded on its host, so
//! `recover` can simply be run again for hosts that were unreachable. When
//! a dead run has nothing pending any more, its host locks are released.

use crate::command::{compensation_command, COMPENSATIONS};
use crate::execute::{compensate_and_verify, ExecError, ExecOptions, PendingAction};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use swh_deploy_fleet::{CancelToken, Transport};
use swh_deploy_journal::{
    Compensation, Journal, Liveness, NewRun, Outcome, RunId, RunStatus, StepStatus,
    ELASTIC_ACTION_PREFIX,
};
use swh_deploy_nodeset::fold;
use swh_deploy_site::Site;

/// A compensation that could not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StillPending {
    /// The action.
    pub action: String,
    /// The host.
    pub host: String,
    /// The run that recorded it.
    pub run: RunId,
    /// Why (outcome and last output).
    pub detail: String,
}

/// What `recover` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RecoverReport {
    /// The journal run of this recovery (`None` when there was nothing to
    /// do).
    pub run: Option<RunId>,
    /// The interrupted runs whose compensations were run.
    pub recovered_runs: Vec<RunId>,
    /// Compensations done, by action.
    pub done: Vec<PendingAction>,
    /// Compensations that failed and are still pending.
    pub failed: Vec<StillPending>,
    /// Live runs whose compensations were left to them: (run, pid, the
    /// machine it runs on).
    pub live: Vec<(RunId, u32, String)>,
}

impl RecoverReport {
    /// True when nothing is pending any more (live runs aside).
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// The report for humans.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.run.is_none() && self.live.is_empty() {
            out.push_str("nothing to recover: no pending compensation\n");
        }
        if let Some(r) = self.run {
            let runs: Vec<String> = self.recovered_runs.iter().map(|r| r.to_string()).collect();
            let _ = writeln!(
                out,
                "recover run {r}: compensations of run(s) {}",
                runs.join(", ")
            );
        }
        for d in &self.done {
            let _ = writeln!(out, "  done     {:<14} {}", d.action, d.hosts);
        }
        for f in &self.failed {
            let _ = writeln!(
                out,
                "  FAILED   {:<14} {} (run {}): {}; still pending, run `swh-deploy recover` again",
                f.action, f.host, f.run, f.detail
            );
        }
        let here = swh_deploy_journal::this_hostname();
        for (run, pid, host) in &self.live {
            if *host == here {
                let _ = writeln!(
                    out,
                    "  run {run} is still running (pid {pid}): its compensations are left to it"
                );
            } else {
                let _ = writeln!(
                    out,
                    "  run {run} is running on {host} (pid {pid}), which cannot be checked from here: \
                     its compensations are left to it; if that process is gone, \
                     `swh-deploy recover --force {run}` takes it over"
                );
            }
        }
        out
    }
}

/// Runs the pending compensations of dead runs (all of them, or those of
/// `only`), recording a `recover` run with `argv`.
pub fn recover(
    journal: &mut Journal,
    transport: &dyn Transport,
    options: &ExecOptions,
    only: Option<RunId>,
    argv: Vec<String>,
) -> Result<RecoverReport, ExecError> {
    journal.reap_dead_runs()?;
    if let Some(r) = only {
        journal.run(r)?;
    }
    let mut report = RecoverReport::default();
    let mut todo = Vec::new();
    let mut live = BTreeSet::new();
    // Elastic-path compensations (a chart commit to revert) are not run on
    // hosts: the binary's `recover` dispatches them.
    for c in journal.pending_compensations(only)? {
        if c.is_elastic() {
            continue;
        }
        let run = journal.run(c.run)?;
        if run.status == RunStatus::Running {
            live.insert((run.id, run.pid, run.hostname.clone()));
        } else {
            todo.push(c);
        }
    }
    report.live = live.into_iter().collect();
    if todo.is_empty() {
        return Ok(report);
    }
    let runs: BTreeSet<RunId> = todo.iter().map(|c| c.run).collect();
    report.recovered_runs = runs.iter().copied().collect();
    // The processes of the dead runs, fenced off each host before its
    // compensations run (their in-flight remote commands then do nothing).
    let mut fence = Vec::new();
    for r in &runs {
        fence.push(journal.run(*r)?.process_token());
    }
    let own = journal.process_token();
    let me = journal.start_run(&NewRun {
        command_line: argv,
        mode: "recover".into(),
        parameters: serde_json::json!({ "runs": report.recovered_runs }),
    })?;
    report.run = Some(me);
    // Known actions in their canonical order, then unknown ones.
    let mut actions: Vec<String> = COMPENSATIONS.iter().map(|(a, _)| (*a).to_owned()).collect();
    for c in &todo {
        if !actions.contains(&c.action) {
            actions.push(c.action.clone());
        }
    }
    let mut index = 0i64;
    for action in actions {
        let items: Vec<&swh_deploy_journal::Compensation> =
            todo.iter().filter(|c| c.action == action).collect();
        if items.is_empty() {
            continue;
        }
        let mut hosts: Vec<String> = Vec::new();
        for c in &items {
            if !hosts.contains(&c.host) {
                hosts.push(c.host.clone());
            }
        }
        journal.start_step(me, index, &action, "compensation", None, &fold(&hosts))?;
        let Some(command) = compensation_command(&action) else {
            for c in &items {
                report.failed.push(StillPending {
                    action: action.clone(),
                    host: c.host.clone(),
                    run: c.run,
                    detail: "unknown compensation action (recorded by a newer swh-deploy?)".into(),
                });
            }
            journal.end_step(me, index, StepStatus::Failed)?;
            index += 1;
            continue;
        };
        let results = compensate_and_verify(
            transport,
            options,
            &action,
            &command,
            &hosts,
            &own,
            &fence,
            &CancelToken::new(),
        )?;
        let mut ok_hosts = Vec::new();
        let mut bad: BTreeMap<String, String> = BTreeMap::new();
        for r in results {
            let outcome = r.outcome.unwrap_or(Outcome::Failed);
            journal.record_host_result(
                me, index, &r.host, r.rc, &r.stdout, &r.stderr, r.duration, outcome,
            )?;
            if outcome == Outcome::Ok {
                ok_hosts.push(r.host);
            } else {
                bad.insert(r.host, format!("{}: {}", outcome.as_str(), r.detail));
            }
        }
        for c in &items {
            if ok_hosts.contains(&c.host) {
                journal.complete_compensation(c.id)?;
            } else {
                report.failed.push(StillPending {
                    action: action.clone(),
                    host: c.host.clone(),
                    run: c.run,
                    detail: bad.get(&c.host).cloned().unwrap_or_default(),
                });
            }
        }
        journal.end_step(
            me,
            index,
            if bad.is_empty() {
                StepStatus::Succeeded
            } else {
                StepStatus::Failed
            },
        )?;
        if !ok_hosts.is_empty() {
            report.done.push(PendingAction {
                action: action.clone(),
                hosts: fold(&ok_hosts),
            });
        }
        index += 1;
    }
    for r in &runs {
        if journal.pending_compensations(Some(*r))?.is_empty() {
            journal.release_locks(*r, None)?;
        }
    }
    journal.end_run(
        me,
        if report.failed.is_empty() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        },
    )?;
    Ok(report)
}

/// `recover --force RUN`: takes over run `run` when it is recorded as
/// running by a process that cannot be checked from here (another admin
/// host): it is marked interrupted, with a `forced-takeover` event (this
/// command line, user, and the process it replaces), so that its
/// compensations can run; `recover` then fences that process off the hosts,
/// so that it can no longer change them even if it still runs. Returns the
/// warning to print, or `None` when there was nothing to take over (the run
/// is not running, or its process is dead and is treated as such anyway). A
/// run whose process is alive on this machine is refused.
pub fn force_takeover(
    journal: &mut Journal,
    run: RunId,
    argv: &[String],
) -> Result<Option<String>, ExecError> {
    let record = journal.run(run)?;
    if record.status != RunStatus::Running {
        return Ok(None);
    }
    match record.liveness() {
        Liveness::Dead => Ok(None),
        Liveness::Alive => Err(ExecError::Input(format!(
            "run {run} is running here (pid {}): --force only takes over a run whose process \
             cannot be checked from this machine; stop that process first",
            record.pid
        ))),
        Liveness::Unknown => {
            journal.add_event(
                run,
                "forced-takeover",
                argv,
                &serde_json::json!({
                    "previous_process": record.process_token(),
                    "pid": record.pid,
                    "hostname": record.hostname,
                    "user": record.user,
                }),
            )?;
            journal.mark_interrupted(run)?;
            if journal.pending_compensations(Some(run))?.is_empty() {
                journal.release_locks(run, None)?;
            }
            Ok(Some(format!(
                "run {run} of {} was recorded as running on {} (pid {}), which cannot be checked \
                 from here; taken over by --force (recorded in the journal). If that process \
                 still runs, its next commands on the hosts are refused",
                record.user, record.hostname, record.pid
            )))
        }
    }
}

/// What pending compensations leave undone, one phrase per kind, for the
/// warnings of every command and `doctor`: cron or puppet on hosts for the
/// static path's; for an elastic one (`elastic-revert:<commit>` on
/// `charts:<branch>`, [`swh_deploy_journal::ELASTIC_ACTION_PREFIX`]), the
/// commit disabling worker groups on that chart branch, not reverted yet.
pub fn pending_effects(pending: &[Compensation]) -> Vec<String> {
    let mut out = Vec::new();
    if pending.iter().any(|c| !c.is_elastic()) {
        out.push("puppet or cron may still be off".to_string());
    }
    let elastic: BTreeSet<(&str, &str)> = pending
        .iter()
        .filter(|c| c.is_elastic())
        .map(|c| (c.host.as_str(), c.action.as_str()))
        .collect();
    for (target, action) in elastic {
        out.push(elastic_effect(target, action));
    }
    out
}

/// The words for one elastic compensation `action` on `target`.
fn elastic_effect(target: &str, action: &str) -> String {
    let branch = target.strip_prefix("charts:").unwrap_or(target);
    let commit = action.split_once(':').map_or(action, |(_, c)| c);
    format!(
        "the commit {commit} disabling worker groups on chart branch {branch} is not reverted yet"
    )
}

/// The warning every command prints while compensations are pending, or
/// `None`. Runs whose process died are marked interrupted first.
pub fn pending_warning(journal: &mut Journal) -> Result<Option<String>, ExecError> {
    journal.reap_dead_runs()?;
    let pending = journal.pending_compensations(None)?;
    if pending.is_empty() {
        return Ok(None);
    }
    let mut by: BTreeMap<(RunId, String), Vec<String>> = BTreeMap::new();
    for c in &pending {
        by.entry((c.run, c.action.clone()))
            .or_default()
            .push(c.host.clone());
    }
    let mut out = String::new();
    let (mut dead_hosts, mut dead_elastic) = (false, false);
    for ((run, action), hosts) in by {
        let r = journal.run(run)?;
        let elastic = action.starts_with(ELASTIC_ACTION_PREFIX);
        let state = if r.status == RunStatus::Running {
            format!("running, pid {} on {}", r.pid, r.hostname)
        } else {
            if elastic {
                dead_elastic = true;
            } else {
                dead_hosts = true;
            }
            r.status.to_string()
        };
        if elastic {
            for target in &hosts {
                let _ = writeln!(
                    out,
                    "warning: {} (compensation {action}, run {run}, {state})",
                    elastic_effect(target, &action)
                );
            }
        } else {
            let _ = writeln!(
                out,
                "warning: compensation {action} pending on {} (run {run}, {state})",
                fold(&hosts)
            );
        }
    }
    if dead_hosts {
        out.push_str(
            "warning: cron may be stopped and puppet disabled there: run `swh-deploy recover`\n",
        );
    }
    if dead_elastic {
        out.push_str(
            "warning: worker groups stay disabled until that commit is reverted: run `swh-deploy recover` (it pushes the revert)\n",
        );
    }
    Ok(Some(out))
}
/// `swh-deploy recover [RUN] [--force]`: reaps dead runs, takes run
/// `only` over first when `force` (a warning goes to `warn`), then runs the
/// pending compensations run by run, each through the `[ssh]` settings of
/// the site file `site` when given (`--site`), else of the site file
/// recorded with the run. One report per run (one empty report when
/// nothing is pending).
pub fn recover_pending(
    journal: &mut Journal,
    only: Option<RunId>,
    force: bool,
    site: Option<&Path>,
    argv: Vec<String>,
    warn: &mut dyn FnMut(&str),
) -> Result<Vec<RecoverReport>, ExecError> {
    journal.reap_dead_runs()?;
    if let (true, Some(run)) = (force, only) {
        if let Some(warning) = force_takeover(journal, run, &argv)? {
            warn(&warning);
        }
    }
    let input = |e: swh_deploy_site::SiteError| ExecError::Input(e.to_string());
    let explicit = site.map(Site::load).transpose().map_err(input)?;
    let pending = journal.pending_compensations(only)?;
    let runs: BTreeSet<RunId> = pending
        .iter()
        .filter(|c| !c.is_elastic())
        .map(|c| c.run)
        .collect();
    let mut reports: Vec<RecoverReport> = Vec::new();
    if runs.is_empty() {
        reports.push(RecoverReport::default());
    }
    for run in runs {
        let status = journal.run(run)?.status;
        let loaded;
        let site = match &explicit {
            Some(s) => s,
            None => {
                loaded = match crate::execute::stored_request(journal, run) {
                    Ok(r) => Site::load(&r.site).map_err(input)?,
                    // Left to the live run by `recover`; any site will do.
                    Err(_) if status == RunStatus::Running => {
                        Site::discover(None).map_err(input)?
                    }
                    Err(_) => {
                        return Err(ExecError::Input(format!(
                            "run {run} recorded no site file: give one with --site"
                        )))
                    }
                };
                &loaded
            }
        };
        crate::ssh::check(site).map_err(ExecError::Input)?;
        let transport = crate::ssh::transport(site)?;
        let options = ExecOptions {
            fanout: site.ssh.fanout.max(1),
            ..ExecOptions::default()
        };
        reports.push(recover(
            journal,
            &transport,
            &options,
            Some(run),
            argv.clone(),
        )?);
    }
    Ok(reports)
}

/// The reports of [`recover_pending`] for humans: each run's report, or
/// `nothing to recover` once.
pub fn render_reports(reports: &[RecoverReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let text = r.render();
        if text.starts_with("nothing to recover") && reports.len() > 1 {
            continue;
        }
        out.push_str(&text);
    }
    if out.is_empty() {
        out.push_str("nothing to recover: no pending compensation\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elastic_compensation_is_worded_as_a_chart_commit_not_cron_or_puppet() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
        let new = |mode: &str| NewRun {
            command_line: vec!["swh-deploy".into(), mode.into()],
            mode: mode.into(),
            parameters: serde_json::json!({}),
        };
        let elastic = journal.start_run(&new("cluster-migrate")).unwrap();
        journal
            .add_compensation(elastic, "charts:production", "elastic-revert:0123abcd")
            .unwrap();
        journal.end_run(elastic, RunStatus::Interrupted).unwrap();
        let text = pending_warning(&mut journal).unwrap().unwrap();
        assert_eq!(
            text,
            format!(
                "warning: the commit 0123abcd disabling worker groups on chart branch production \
                 is not reverted yet (compensation elastic-revert:0123abcd, run {elastic}, \
                 interrupted)\n\
                 warning: worker groups stay disabled until that commit is reverted: run \
                 `swh-deploy recover` (it pushes the revert)\n"
            )
        );
        assert!(!text.contains("cron") && !text.contains("puppet"), "{text}");

        // Beside a static one, each is worded for what it is.
        let upgrade = journal.start_run(&new("long-standing")).unwrap();
        for host in ["host1", "host2"] {
            journal
                .add_compensation(upgrade, host, "start-cron")
                .unwrap();
        }
        journal.end_run(upgrade, RunStatus::Interrupted).unwrap();
        let text = pending_warning(&mut journal).unwrap().unwrap();
        assert!(text.contains(&format!(
            "warning: compensation start-cron pending on host[1-2] (run {upgrade}, interrupted)\n"
        )));
        assert!(text.contains("cron may be stopped and puppet disabled there"));
        assert!(text.contains("chart branch production is not reverted yet"));
        let pending = journal.pending_compensations(None).unwrap();
        assert_eq!(
            pending_effects(&pending),
            [
                "puppet or cron may still be off",
                "the commit 0123abcd disabling worker groups on chart branch production is not \
                 reverted yet"
            ]
        );
        assert!(pending_effects(&[]).is_empty());
    }
}
