//! The executor: runs an upgrade [`Plan`] on real hosts, step by step,
//! writing everything to the journal before and after it happens.
//!
//! # Model
//! - A run starts with [`start`]: the request ([`UpgradeRequest`]) and the
//!   plan are stored with the run, then every target host is locked in the
//!   journal (a second run touching one of them is refused with who holds
//!   it, since when and the pid).
//! - Steps run in order: the `prepare` steps on all targets (long-standing
//!   mode: stop cron, disable puppet, the migration), then the batches, then
//!   the `finish` steps (the compensations). A step runs on each host of the
//!   step that has not failed yet in this run; a host whose change step
//!   fails (non-zero exit, unreachable, timeout, health gate) is left out
//!   of every later step. Info steps (versions) never fail a host.
//! - A step with a compensation (stop cron -> `start-cron`, disable puppet
//!   -> `enable-puppet`) records the compensation on each host in the
//!   journal *before* running the command there. The finish steps run the
//!   pending compensations of the run and mark each one done once it has
//!   succeeded on its host; they run whatever happened before (success,
//!   failures, budget exceeded, Ctrl-C). After a crash or `kill -9` they
//!   stay pending for `swh-deploy recover` ([`crate::recover`]).
//! - The failure budget (`--max-fail`) is checked after the prepare steps
//!   and after every batch: once more hosts failed than it allows, no new
//!   batch starts and the run ends as `budget-exceeded`.
//! - [`resume`] continues an interrupted run: the plan is rebuilt from the
//!   stored request (and must be identical to the stored one), and each
//!   (step, host) pair whose latest journal result is `ok` is skipped, so
//!   finished hosts are not redone. A compensated step is redone on a host
//!   whose compensation has already run (e.g. after `recover`).
//! - Progress goes to an [`Events`] sink (human lines or JSON lines), and
//!   the end result is a [`Summary`]: folded node sets per outcome and the
//!   package versions before and after.

use crate::command::{compensation_command, parse_installed_versions, RemoteCommand};
use crate::guard::{guarded, start_mark, started_query, verify_line, Hold};
use crate::health::{run_gate, AddressResolver, GateContext, ProbeResult};
use crate::plan::{Action, Batch, Plan, Step, StepKind};
use crate::request::PlanRequestError;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use swh_deploy_fleet::{
    CancelToken, NoObserver, RunOptions, SecondSignal, SignalGuard, SignalPolicy, Status, Transport,
};
use swh_deploy_journal::{
    Journal, JournalError, LockError, LockRefused, NewRun, Outcome, RunId, RunStatus, StepStatus,
};
use swh_deploy_nodeset::{fold, NodeSet};
use swh_deploy_site::Site;
use swh_deploy_util::Exit;

/// The exit of a run that ended with `status`: success, failed (hosts
/// failed within the budget, or a compensation could not run), budget
/// exceeded, interrupted (Ctrl-C, SIGTERM; compensations were run), or
/// locked (refused).
pub fn exit(status: RunStatus) -> Exit {
    match status {
        RunStatus::Succeeded => Exit::Success,
        RunStatus::Failed | RunStatus::Running => Exit::Failed,
        RunStatus::BudgetExceeded => Exit::Budget,
        RunStatus::Interrupted => Exit::Interrupted,
        RunStatus::Refused => Exit::Locked,
    }
}

/// The process exit code of [`exit`]`(status)`.
pub fn exit_code(status: RunStatus) -> u8 {
    exit(status).code()
}

pub use crate::request::UpgradeRequest;

/// Errors of the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Bad input (mode, batch, budget, package names, selection, plan).
    #[error("{0}")]
    Input(String),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The run was refused: locks held or compensations pending.
    #[error("run {run} refused: {refused}")]
    Refused {
        /// The refused run (recorded with status `refused`).
        run: RunId,
        /// Why.
        refused: LockRefused,
    },
    /// `resume` of a run that cannot be resumed.
    #[error("{0}")]
    NotResumable(String),
    /// The remote-execution engine could not start.
    #[error("remote execution: {0}")]
    Fleet(String),
    /// The request cannot be planned (bad node set, selection or plan).
    #[error(transparent)]
    Plan(#[from] PlanRequestError),
    /// The ssh transport could not be set up.
    #[error(transparent)]
    Transport(#[from] swh_deploy_fleet::TransportError),
}

impl ExecError {
    /// The exit this error means: [`Exit::Locked`] (4) when hosts are
    /// locked by another run, [`Exit::Pending`] (5) when compensations are
    /// pending, else [`Exit::Failed`].
    pub fn exit(&self) -> Exit {
        match self {
            ExecError::Refused { refused, .. } => refused.exit(),
            _ => Exit::Failed,
        }
    }
}

/// Settings of the executor.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// At most this many hosts at once within a step.
    pub fanout: usize,
    /// Kill a command on a host after this long (it then fails the host).
    pub command_timeout: Option<Duration>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            fanout: 64,
            // A restart may legitimately take TimeoutStopSec=15m.
            command_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}

/// A host that did not pass a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFailure {
    /// The host.
    pub host: String,
    /// `failed`, `unreachable`, `unhealthy`, `timed-out`.
    pub outcome: String,
    /// Exit code, if the command completed.
    pub rc: Option<i32>,
    /// The last lines of its output, or the probe's message.
    pub detail: String,
}

/// Progress of a run, as it happens.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The run started (or was resumed).
    Run {
        /// Its id.
        run: RunId,
        /// The mode.
        mode: String,
        /// All targets, folded.
        hosts: String,
        /// Number of batches.
        batches: usize,
        /// True for `resume`.
        resumed: bool,
    },
    /// A batch starts.
    Batch {
        /// 0-based.
        index: usize,
        /// Number of batches.
        of: usize,
        /// First batch.
        canary: bool,
        /// Its hosts still in the run, folded.
        hosts: String,
    },
    /// A step starts.
    Step {
        /// Plan index.
        index: usize,
        /// Name.
        name: String,
        /// Batch, if any.
        batch: Option<usize>,
        /// The hosts it runs on, folded.
        hosts: String,
        /// Hosts skipped because they finished it before (resume), folded.
        already_done: String,
    },
    /// A step ended.
    StepDone {
        /// Plan index.
        index: usize,
        /// Name.
        name: String,
        /// Hosts that passed, folded.
        ok: String,
        /// Hosts that did not.
        failed: Vec<HostFailure>,
        /// Wall-clock seconds.
        seconds: f64,
    },
    /// The rollout stops before the next batch.
    Stop {
        /// Why.
        reason: String,
    },
}

/// Receives [`Event`]s.
pub trait Events {
    /// One event.
    fn event(&mut self, event: &Event);
}

/// Ignores events.
#[derive(Debug, Default)]
pub struct NoEvents;

impl Events for NoEvents {
    fn event(&mut self, _: &Event) {}
}

/// Everything the executor needs to reach hosts.
pub struct Context<'a> {
    /// How commands reach hosts.
    pub transport: &'a dyn Transport,
    /// Address resolution for HTTP health probes.
    pub resolver: &'a dyn AddressResolver,
    /// Settings.
    pub options: ExecOptions,
    /// Ctrl-C: no new step starts, running commands are killed, the
    /// compensations still run.
    pub cancel: CancelToken,
    /// Progress.
    pub events: &'a mut dyn Events,
}

/// Hosts with the same versions change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    /// The package.
    pub package: String,
    /// Version before (`None`: not installed or unknown).
    pub before: Option<String>,
    /// Version after (`None`: not installed or unknown).
    pub after: Option<String>,
    /// The hosts, folded.
    pub hosts: String,
}

/// Hosts that failed at one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedAt {
    /// The step name.
    pub step: String,
    /// The hosts, folded.
    pub hosts: String,
}

/// Pending compensations of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingAction {
    /// `start-cron`, `enable-puppet`.
    pub action: String,
    /// The hosts, folded.
    pub hosts: String,
}

/// The end result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The run.
    pub run: RunId,
    /// How it ended.
    pub status: RunStatus,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
    /// Hosts that went through every step.
    pub upgraded: String,
    /// Hosts that failed, by the step at which they did (non-zero exit or
    /// timeout).
    pub failed: Vec<FailedAt>,
    /// Hosts that could not be reached.
    pub unreachable: String,
    /// Hosts that failed their health gate.
    pub unhealthy: String,
    /// Hosts not (fully) done because the rollout stopped (budget, Ctrl-C).
    pub not_done: String,
    /// Version changes.
    pub versions: Vec<VersionChange>,
    /// Compensations still pending (run `swh-deploy recover`).
    pub pending: Vec<PendingAction>,
}

impl Summary {
    /// The summary for humans.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "run {}: {}", self.run, self.status);
        if let Some(s) = &self.stopped {
            let _ = writeln!(out, "  stopped: {s}");
        }
        // Labels aligned, at least as wide as `failed at restart:`.
        let width = self
            .failed
            .iter()
            .map(|f| f.step.len() + "failed at :".len())
            .max()
            .unwrap_or(0)
            .max(22);
        let line = |out: &mut String, label: &str, hosts: &str| {
            if !hosts.is_empty() {
                let n = NodeSet::parse(hosts).map(|n| n.len()).unwrap_or(0);
                let _ = writeln!(out, "  {label:<width$} {hosts} ({n})");
            }
        };
        line(&mut out, "upgraded:", &self.upgraded);
        for f in &self.failed {
            line(&mut out, &format!("failed at {}:", f.step), &f.hosts);
        }
        line(&mut out, "unreachable:", &self.unreachable);
        line(&mut out, "unhealthy:", &self.unhealthy);
        line(&mut out, "not done:", &self.not_done);
        if !self.versions.is_empty() {
            let _ = writeln!(out, "  versions:");
            for v in &self.versions {
                let b = v.before.as_deref().unwrap_or("(none)");
                let a = v.after.as_deref().unwrap_or("(none)");
                let change = if v.before == v.after {
                    format!("{b} (unchanged)")
                } else {
                    format!("{b} -> {a}")
                };
                let _ = writeln!(out, "    {} {change}: {}", v.package, v.hosts);
            }
        }
        for p in &self.pending {
            let _ = writeln!(
                out,
                "  WARNING: compensation {} still pending on {}: run `swh-deploy recover`",
                p.action, p.hosts
            );
        }
        out
    }
}

/// How a host left the run.
#[derive(Debug, Clone)]
struct Failure {
    step: String,
    outcome: Outcome,
}

/// Per-host, per-step result of one action.
pub(crate) struct HostOutcome {
    pub(crate) host: String,
    pub(crate) rc: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) duration: Duration,
    /// `None`: cancelled (not recorded, redone by resume).
    pub(crate) outcome: Option<Outcome>,
    pub(crate) detail: String,
}

/// Starts a new run of `request`: records it, locks its hosts, executes
/// the plan. `argv` is the command line recorded in the journal.
pub fn start(
    journal: &mut Journal,
    site: &Site,
    request: &UpgradeRequest,
    argv: Vec<String>,
    ctx: &mut Context<'_>,
) -> Result<Summary, ExecError> {
    // Validate everything before recording anything.
    crate::ssh::check(site).map_err(ExecError::Input)?;
    let dry = request.plan(site, None)?;
    journal.reap_dead_runs()?;
    let parameters = serde_json::json!({
        "request": request,
        "plan": serde_json::to_value(&dry).map_err(|e| ExecError::Input(e.to_string()))?,
    });
    let run = journal.start_run(&NewRun {
        command_line: argv,
        mode: request.mode.to_string(),
        parameters,
    })?;
    let plan = request.plan(site, Some(run))?;
    match journal.acquire_locks(run, &plan.hosts) {
        Ok(()) => {}
        Err(LockError::Refused(refused)) => {
            journal.end_run(run, RunStatus::Refused)?;
            return Err(ExecError::Refused { run, refused });
        }
        Err(LockError::Journal(e)) => {
            let _ = journal.end_run(run, RunStatus::Refused);
            return Err(e.into());
        }
    }
    execute(journal, run, &plan, ctx, false)
}

/// The request stored with run `run`.
pub fn stored_request(journal: &Journal, run: RunId) -> Result<UpgradeRequest, ExecError> {
    let r = journal.run(run)?;
    serde_json::from_value(r.parameters["request"].clone()).map_err(|e| {
        ExecError::NotResumable(format!(
            "run {run} is not an upgrade run that can be resumed (no stored request: {e})"
        ))
    })
}

/// What `resume` does with a migration that the interrupted run started
/// but did not finish: it may have run, completely or in part, and running a
/// database migration twice is not always safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationOnResume {
    /// Refuse to resume, explaining the two choices below (default).
    #[default]
    Refuse,
    /// Run the migration again (the operator checked it can be re-run).
    Rerun,
    /// Count it as done (the operator checked it completed).
    Skip,
}

impl MigrationOnResume {
    /// The flag that asked for it (`None` for the default).
    pub fn flag(self) -> Option<&'static str> {
        match self {
            MigrationOnResume::Refuse => None,
            MigrationOnResume::Rerun => Some("--rerun-migration"),
            MigrationOnResume::Skip => Some("--skip-migration"),
        }
    }
}

/// Continues interrupted run `run` (status `interrupted` or
/// `budget-exceeded`; a `running` run whose process died is first marked
/// interrupted). `site` overrides the stored site file path; `argv` is the
/// command line recorded with the `resume` event.
///
/// Each resume that gets as far as the migration check is recorded as a
/// `resume` event of the run (command line, user, the operator's decision
/// and what it was applied to). When the interrupted run left its migration
/// unfinished, its host(s) are asked whether it actually started there (the
/// start mark of [`crate::guard`]): a `migration-started` event records the
/// answer per host, and the refusal says it.
pub fn resume(
    journal: &mut Journal,
    run: RunId,
    site: Option<&Site>,
    migration: MigrationOnResume,
    argv: &[String],
    ctx: &mut Context<'_>,
) -> Result<Summary, ExecError> {
    journal.reap_dead_runs()?;
    let record = journal.run(run)?;
    if !record.status.is_resumable() {
        return Err(ExecError::NotResumable(format!(
            "run {run} is {} (pid {} on {}): only interrupted or budget-exceeded runs can be resumed",
            record.status, record.pid, record.hostname
        )));
    }
    let request = stored_request(journal, run)?;
    let loaded;
    let site = match site {
        Some(s) => s,
        None => {
            loaded = Site::load(&request.site).map_err(|e| ExecError::Input(e.to_string()))?;
            &loaded
        }
    };
    crate::ssh::check(site).map_err(ExecError::Input)?;
    let dry = request.plan(site, None)?;
    let stored = &record.parameters["plan"];
    let now = serde_json::to_value(&dry).map_err(|e| ExecError::Input(e.to_string()))?;
    if *stored != now {
        return Err(ExecError::NotResumable(format!(
            "run {run}: the plan built from {} today differs from the run's (site file changed?); start a new run instead",
            request.site.display()
        )));
    }
    let plan = request.plan(site, Some(run))?;
    // A migration launched by the interrupted run and not recorded as
    // finished may have run: the operator decides, not swh-deploy.
    let details = journal.run_details(run)?;
    let started_migration = details.steps.iter().find(|s| {
        s.name == "migration" && matches!(s.status, StepStatus::Running | StepStatus::Failed)
    });
    let mut migration_hosts: BTreeMap<String, Option<bool>> = BTreeMap::new();
    if let Some(step) = started_migration {
        migration_hosts = migration_started_on(journal, &record, &plan, step.index, ctx)?;
    }
    let decision = match (started_migration, migration) {
        (None, _) => "none",
        (Some(_), MigrationOnResume::Refuse) => "refused: migration unfinished",
        (Some(_), MigrationOnResume::Rerun) => "rerun-migration",
        (Some(_), MigrationOnResume::Skip) => "skip-migration",
    };
    journal.add_event(
        run,
        "resume",
        argv,
        &serde_json::json!({
            "decision": decision,
            "flag": migration.flag(),
            "migration_step": started_migration.map(|s| s.index),
            "migration_started": migration_hosts,
            "previous_process": record.process_token(),
        }),
    )?;
    if let (Some(step), MigrationOnResume::Refuse) = (started_migration, migration) {
        let evidence: Vec<String> = migration_hosts
            .iter()
            .map(|(h, started)| match started {
                Some(true) => format!("{h}: it began running there"),
                Some(false) => format!("{h}: no trace of it, it never began there"),
                None => format!("{h}: unknown (the host did not answer)"),
            })
            .collect();
        return Err(ExecError::NotResumable(format!(
            "run {run}: the migration was started on {} at {} and did not finish ({}); it may have \
             run, completely or in part. Check the database, then resume with \
             --rerun-migration (run it again) or --skip-migration (it completed)",
            step.hosts,
            step.started_at,
            evidence.join("; ")
        )));
    }
    journal.resume_run(run)?;
    match journal.acquire_locks(run, &plan.hosts) {
        Ok(()) => {}
        Err(LockError::Refused(refused)) => {
            journal.end_run(run, RunStatus::Interrupted)?;
            return Err(ExecError::Refused { run, refused });
        }
        Err(LockError::Journal(e)) => return Err(e.into()),
    }
    let skip_migration = started_migration.is_some() && migration == MigrationOnResume::Skip;
    execute_with(journal, run, &plan, ctx, true, skip_migration)
}

/// Asks the host(s) of the migration step `index` of `plan` whether the
/// process of `record` started it there (`None`: no answer); records a
/// `migration-started` event per host.
fn migration_started_on(
    journal: &mut Journal,
    record: &swh_deploy_journal::Run,
    plan: &Plan,
    index: i64,
    ctx: &mut Context<'_>,
) -> Result<BTreeMap<String, Option<bool>>, ExecError> {
    let hosts: Vec<String> = plan
        .prepare
        .iter()
        .filter(|s| s.index as i64 == index)
        .flat_map(|s| s.actions.iter().flat_map(|a| a.hosts().iter().cloned()))
        .collect();
    let mut found = BTreeMap::new();
    if hosts.is_empty() {
        return Ok(found);
    }
    let query = started_query(
        &record.process_token(),
        &start_mark(record.id, index as usize),
    );
    let outs = remote_outcomes(
        ctx.transport,
        &ctx.options,
        &query,
        &[0],
        &hosts,
        &CancelToken::new(),
    )?;
    for o in outs {
        let answer = match (o.outcome, String::from_utf8_lossy(&o.stdout).trim()) {
            (Some(Outcome::Ok), "yes") => Some(true),
            (Some(Outcome::Ok), "no") => Some(false),
            _ => None,
        };
        journal.add_event(
            record.id,
            "migration-started",
            &[],
            &serde_json::json!({ "host": o.host, "step": index, "started": answer }),
        )?;
        found.insert(o.host, answer);
    }
    Ok(found)
}

/// Executes `plan` as run `run` (whose hosts are locked), then ends the run
/// and releases its locks (kept when compensations could not run).
pub fn execute(
    journal: &mut Journal,
    run: RunId,
    plan: &Plan,
    ctx: &mut Context<'_>,
    resumed: bool,
) -> Result<Summary, ExecError> {
    execute_with(journal, run, plan, ctx, resumed, false)
}

/// [`execute`], counting the migration step as done when `skip_migration`.
fn execute_with(
    journal: &mut Journal,
    run: RunId,
    plan: &Plan,
    ctx: &mut Context<'_>,
    resumed: bool,
    skip_migration: bool,
) -> Result<Summary, ExecError> {
    let mut ex = Exec {
        journal,
        run,
        plan,
        ctx,
        resumed,
        skip_migration,
        failed: BTreeMap::new(),
        budget_hit: false,
        stop: None,
    };
    ex.ctx.events.event(&Event::Run {
        run,
        mode: plan.mode.to_string(),
        hosts: plan.nodes.clone(),
        batches: plan.batches.len(),
        resumed,
    });
    let body = ex.body();
    // The compensations run whatever happened (journal errors included).
    let finish = ex.finish();
    let stopped = body?;
    finish?;
    let pending = ex.journal.pending_compensations(Some(run))?;
    let status = if ex.ctx.cancel.is_cancelled() {
        RunStatus::Interrupted
    } else if matches!(stopped, Some(Stop::Budget(_))) {
        RunStatus::BudgetExceeded
    } else if !ex.failed.is_empty() || stopped.is_some() || !pending.is_empty() {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    ex.journal.end_run(run, status)?;
    if pending.is_empty() {
        ex.journal.release_locks(run, None)?;
    }
    let stopped_msg = if ex.ctx.cancel.is_cancelled() {
        Some("interrupted (Ctrl-C or SIGTERM); `swh-deploy resume` continues".to_owned())
    } else {
        stopped.map(|s| s.message())
    };
    ex.summary(status, stopped_msg, &pending)
}

enum Stop {
    Budget(String),
    Migration(String),
}

impl Stop {
    fn message(self) -> String {
        match self {
            Stop::Budget(m) | Stop::Migration(m) => m,
        }
    }
}

struct Exec<'a, 'c> {
    journal: &'a mut Journal,
    run: RunId,
    plan: &'a Plan,
    ctx: &'a mut Context<'c>,
    resumed: bool,
    /// Resume with `--skip-migration`: the migration counts as done.
    skip_migration: bool,
    failed: BTreeMap<String, Failure>,
    /// More hosts failed than the budget allows.
    budget_hit: bool,
    /// Why hosts were stopped within a batch (the budget), if they were.
    stop: Option<Stop>,
}

impl Exec<'_, '_> {
    /// Hosts of this run whose compensation `action` is still pending.
    fn hosts_pending(&self, action: &str) -> Result<BTreeSet<String>, ExecError> {
        Ok(self
            .journal
            .pending_compensations(Some(self.run))?
            .into_iter()
            .filter(|p| p.action == action)
            .map(|p| p.host)
            .collect())
    }

    fn body(&mut self) -> Result<Option<Stop>, ExecError> {
        let plan = self.plan;
        let total = plan.hosts.len();
        for step in &plan.prepare {
            if self.ctx.cancel.is_cancelled() {
                return Ok(None);
            }
            let ok = self.step(step, None)?;
            if step.name == "migration" && !ok {
                return Ok(Some(Stop::Migration(
                    "the migration failed: no batch started".to_owned(),
                )));
            }
        }
        if plan.max_fail.exceeded(self.failed.len(), total) {
            return Ok(Some(self.budget_stop()));
        }
        let n = plan.batches.len();
        for batch in &plan.batches {
            if self.ctx.cancel.is_cancelled() {
                return Ok(None);
            }
            self.batch(batch, n)?;
            if self.ctx.cancel.is_cancelled() {
                return Ok(None);
            }
            // Hosts of this batch were stopped before their next step.
            if let Some(stop) = self.stop.take() {
                return Ok(Some(stop));
            }
            // Past the last batch there is nothing left to stop: the run
            // simply failed.
            if plan.max_fail.exceeded(self.failed.len(), total) && batch.index + 1 < n {
                return Ok(Some(self.budget_stop()));
            }
        }
        Ok(None)
    }

    fn budget_stop(&mut self) -> Stop {
        let msg = format!(
            "failure budget exceeded: {} host(s) failed, --max-fail {} allows {}; no new step or batch started",
            self.failed.len(),
            self.plan.max_fail,
            self.plan.allowed_failures
        );
        self.ctx.events.event(&Event::Stop {
            reason: msg.clone(),
        });
        Stop::Budget(msg)
    }

    /// Runs the steps of `batch` with no barrier between steps: each host
    /// goes through its steps on its own (at most `fanout` hosts at once),
    /// while this thread, the only one writing the journal, decides before
    /// each host's step whether it runs ([`Exec::admit`]) and records its
    /// result as soon as it ends. The batch ends when every host is done.
    fn batch(&mut self, batch: &Batch, of: usize) -> Result<(), ExecError> {
        let hosts: Vec<&String> = batch
            .hosts
            .iter()
            .filter(|h| !self.failed.contains_key(*h))
            .collect();
        self.ctx.events.event(&Event::Batch {
            index: batch.index,
            of,
            canary: batch.canary,
            hosts: fold(&hosts),
        });
        let mut steps = Vec::with_capacity(batch.steps.len());
        for step in &batch.steps {
            steps.push(self.step_state(step)?);
        }
        let token = self.journal.process_token();
        let options = self.ctx.options.clone();
        let cancel = self.ctx.cancel.clone();
        let reach = Reach {
            transport: self.ctx.transport,
            resolver: self.ctx.resolver,
            options: &options,
            cancel: &cancel,
            token: &token,
            run: self.run,
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = options.fanout.max(1).min(batch.hosts.len());
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<HostMsg>();
            for _ in 0..workers {
                let tx = tx.clone();
                let next = &next;
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(host) = batch.hosts.get(i) else {
                        return;
                    };
                    host_steps(reach, &batch.steps, host, &tx);
                });
            }
            drop(tx);
            // On an error, dropping `rx` makes every host skip the rest.
            self.coordinate(batch, &mut steps, rx)
        })
    }

    /// The journal side of [`Exec::batch`]: answers the hosts' requests
    /// and records their results, step rows opened at the first host that
    /// starts the step and closed when the last host is past it.
    fn coordinate(
        &mut self,
        batch: &Batch,
        steps: &mut [StepState],
        rx: std::sync::mpsc::Receiver<HostMsg>,
    ) -> Result<(), ExecError> {
        let n = batch.hosts.len();
        let mut closed = 0;
        loop {
            // Steps close in order: a host passes its steps in order.
            while closed < steps.len() && steps[closed].past == n {
                self.close(&batch.steps[closed], &mut steps[closed], batch.index)?;
                closed += 1;
            }
            if closed == steps.len() {
                return Ok(());
            }
            let Ok(msg) = rx.recv() else {
                return Ok(());
            };
            match msg {
                HostMsg::Ask { pos, host, reply } => {
                    let step = &batch.steps[pos];
                    let go = self.admit(step, &mut steps[pos], &host, batch.index)?;
                    if go {
                        steps[pos].running += 1;
                    } else {
                        steps[pos].past += 1;
                    }
                    // A host that is gone (its thread ended) needs no answer.
                    let _ = reply.send(go);
                }
                HostMsg::Done { pos, outcomes } => {
                    let step = &batch.steps[pos];
                    let outcomes = outcomes.map_err(ExecError::Fleet)?;
                    let (ok, failures) = self.record(step, outcomes)?;
                    let st = &mut steps[pos];
                    st.ok.extend(ok);
                    st.failures.extend(failures);
                    st.running -= 1;
                    st.past += 1;
                    if self
                        .plan
                        .max_fail
                        .exceeded(self.failed.len(), self.plan.hosts.len())
                    {
                        self.budget_hit = true;
                    }
                }
            }
        }
    }

    /// Resume: the hosts of `all` that finished `step` before. A
    /// compensated step counts as done only while its compensation is still
    /// pending (not undone by recover). Empty on a new run.
    fn done_before(&self, step: &Step, all: &[String]) -> Result<BTreeSet<String>, ExecError> {
        if !self.resumed {
            return Ok(BTreeSet::new());
        }
        let mut done: BTreeSet<String> = self
            .journal
            .hosts_finished_step(self.run, step.index as i64)?
            .into_iter()
            .filter(|h| all.contains(h))
            .collect();
        if let Some(c) = &step.compensation {
            let pending = self.hosts_pending(&c.action)?;
            done.retain(|h| pending.contains(h));
        }
        Ok(done)
    }

    /// What step `step` of the batch is at its start: the hosts it runs
    /// on, and (resume) those that finished it before.
    fn step_state(&self, step: &Step) -> Result<StepState, ExecError> {
        let all: Vec<String> = step_hosts(step).filter(|h| self.may_run(step, h)).collect();
        let done = self.done_before(step, &all)?;
        Ok(StepState {
            all,
            done,
            opened: None,
            ran: 0,
            running: 0,
            past: 0,
            ok: Vec::new(),
            failures: Vec::new(),
        })
    }

    /// Whether `host`, given its failures so far, still takes part in
    /// `step`: versions are still read on hosts that failed a step (the
    /// summary shows what they run now), unless they are unreachable.
    fn may_run(&self, step: &Step, host: &str) -> bool {
        match self.failed.get(host) {
            None => true,
            Some(f) => step.kind == StepKind::Info && f.outcome != Outcome::Unreachable,
        }
    }

    /// Decides whether `host` starts `step` now: not after Ctrl-C, not
    /// once the failure budget is exceeded (read-only steps excepted), not
    /// when the host failed before or finished the step in an earlier
    /// attempt (resume). Opens the step's journal row at its first host
    /// and records a compensation before its side effect.
    fn admit(
        &mut self,
        step: &Step,
        st: &mut StepState,
        host: &str,
        batch: usize,
    ) -> Result<bool, ExecError> {
        if self.ctx.cancel.is_cancelled()
            || !st.all.iter().any(|h| h == host)
            || st.done.contains(host)
            || !self.may_run(step, host)
        {
            return Ok(false);
        }
        if self.budget_hit && step.kind != StepKind::Info {
            if self.stop.is_none() {
                self.stop = Some(self.budget_stop());
            }
            return Ok(false);
        }
        if st.opened.is_none() {
            st.opened = Some(Instant::now());
            let todo: Vec<&String> = st.all.iter().filter(|h| !st.done.contains(*h)).collect();
            self.ctx.events.event(&Event::Step {
                index: step.index,
                name: step.name.clone(),
                batch: Some(batch),
                hosts: fold(&todo),
                already_done: fold(&st.done),
            });
            self.start_row(step, Some(batch), &fold(&st.all))?;
        }
        if let Some(c) = &step.compensation {
            if !self.hosts_pending(&c.action)?.contains(host) {
                self.journal.add_compensation(self.run, host, &c.action)?;
            }
        }
        st.ran += 1;
        Ok(true)
    }

    /// Ends step `step` of the batch once every host is past it.
    fn close(&mut self, step: &Step, st: &mut StepState, batch: usize) -> Result<(), ExecError> {
        let Some(opened) = st.opened else {
            // No host ran it.
            self.ctx.events.event(&Event::Step {
                index: step.index,
                name: step.name.clone(),
                batch: Some(batch),
                hosts: String::new(),
                already_done: fold(&st.done),
            });
            // On resume, a step every host finished keeps its journal row.
            let row = !self.resumed || st.done.is_empty();
            self.skipped(step, row.then(|| (Some(batch), fold(&st.all))), 0.0)?;
            return Ok(());
        };
        let all_ok = st.failures.is_empty() && st.ok.len() == st.ran;
        self.end_row(step, all_ok)?;
        let mut ok = std::mem::take(&mut st.ok);
        ok.extend(st.done.iter().cloned());
        self.ctx.events.event(&Event::StepDone {
            index: step.index,
            name: step.name.clone(),
            ok: fold(&ok),
            failed: std::mem::take(&mut st.failures),
            seconds: opened.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// Runs one step; returns true when every host of the step passed.
    fn step(&mut self, step: &Step, batch: Option<usize>) -> Result<bool, ExecError> {
        let started = Instant::now();
        let all: Vec<String> = step_hosts(step)
            .filter(|h| match self.failed.get(h) {
                None => true,
                // Versions are still read on hosts that failed a step
                // (the summary shows what they run now), unless they are
                // unreachable.
                Some(f) => step.kind == StepKind::Info && f.outcome != Outcome::Unreachable,
            })
            .collect();
        let mut done = self.done_before(step, &all)?;
        if self.resumed && self.skip_migration && step.name == "migration" {
            done = all.iter().cloned().collect();
        }
        let todo: Vec<String> = all.iter().filter(|h| !done.contains(*h)).cloned().collect();
        let folded = fold(&all);
        self.ctx.events.event(&Event::Step {
            index: step.index,
            name: step.name.clone(),
            batch,
            hosts: fold(&todo),
            already_done: fold(done.iter().filter(|h| all.contains(h))),
        });
        if todo.is_empty() {
            if self.skip_migration && step.name == "migration" {
                // The operator confirmed it completed (recorded with the
                // resume event): the step is closed, not left running.
                self.journal
                    .end_step(self.run, step.index as i64, StepStatus::Succeeded)?;
            }
            // On resume, a step every host finished keeps its journal row.
            // Nothing newly done (the hosts are in the Step event's
            // `already_done`).
            let row = !self.resumed || all.is_empty();
            self.skipped(
                step,
                row.then_some((batch, folded)),
                started.elapsed().as_secs_f64(),
            )?;
            return Ok(true);
        }
        self.start_row(step, batch, &folded)?;
        // Compensations are recorded before the side effect.
        if let Some(c) = &step.compensation {
            let pending = self.hosts_pending(&c.action)?;
            for h in &todo {
                if !pending.contains(h) {
                    self.journal.add_compensation(self.run, h, &c.action)?;
                }
            }
        }
        let token = self.journal.process_token();
        let reach = Reach {
            transport: self.ctx.transport,
            resolver: self.ctx.resolver,
            options: &self.ctx.options,
            cancel: &self.ctx.cancel,
            token: &token,
            run: self.run,
        };
        let outcomes = reach.step(step, &todo)?;
        let (ok, failures) = self.record(step, outcomes)?;
        let all_ok = failures.is_empty() && ok.len() == todo.len();
        self.end_row(step, all_ok)?;
        let mut ok_all: Vec<String> = ok;
        ok_all.extend(done.iter().filter(|h| all.contains(h)).cloned());
        self.ctx.events.event(&Event::StepDone {
            index: step.index,
            name: step.name.clone(),
            ok: fold(&ok_all),
            failed: failures,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(all_ok)
    }

    /// Records results; returns the hosts that passed and the failures.
    fn record(
        &mut self,
        step: &Step,
        outcomes: Vec<HostOutcome>,
    ) -> Result<(Vec<String>, Vec<HostFailure>), ExecError> {
        let mut ok = Vec::new();
        let mut failures = Vec::new();
        for o in outcomes {
            let Some(outcome) = o.outcome else {
                continue;
            };
            self.journal.record_host_result(
                self.run,
                step.index as i64,
                &o.host,
                o.rc,
                &o.stdout,
                &o.stderr,
                o.duration,
                outcome,
            )?;
            if outcome == Outcome::Ok {
                ok.push(o.host);
                continue;
            }
            failures.push(HostFailure {
                host: o.host.clone(),
                outcome: outcome.as_str().to_owned(),
                rc: o.rc,
                detail: o.detail.clone(),
            });
            // Info steps never fail a host; compensation steps leave the
            // compensation pending instead.
            if matches!(step.kind, StepKind::Change | StepKind::Health) {
                self.failed.entry(o.host).or_insert(Failure {
                    step: step.name.clone(),
                    outcome,
                });
            }
        }
        Ok((ok, failures))
    }

    /// Starts `step`'s journal row (of `batch`, on the folded `hosts`).
    fn start_row(
        &mut self,
        step: &Step,
        batch: Option<usize>,
        hosts: &str,
    ) -> Result<(), ExecError> {
        self.journal.start_step(
            self.run,
            step.index as i64,
            &step.name,
            step.kind.as_str(),
            batch.map(|b| b as i64),
            hosts,
        )?;
        Ok(())
    }

    /// Ends `step`'s journal row: succeeded when `ok`, else failed.
    fn end_row(&mut self, step: &Step, ok: bool) -> Result<(), ExecError> {
        let status = if ok {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        };
        self.journal.end_step(self.run, step.index as i64, status)?;
        Ok(())
    }

    /// A step with nothing newly done: its journal row, when `row` gives
    /// its batch and folded hosts, recorded as skipped; then its
    /// `StepDone` event (nothing ok, nothing failed) after `seconds`.
    fn skipped(
        &mut self,
        step: &Step,
        row: Option<(Option<usize>, String)>,
        seconds: f64,
    ) -> Result<(), ExecError> {
        if let Some((batch, hosts)) = row {
            self.start_row(step, batch, &hosts)?;
            self.journal
                .end_step(self.run, step.index as i64, StepStatus::Skipped)?;
        }
        self.ctx.events.event(&Event::StepDone {
            index: step.index,
            name: step.name.clone(),
            ok: String::new(),
            failed: Vec::new(),
            seconds,
        });
        Ok(())
    }

    /// The finish steps: run this run's pending compensations, with a
    /// cancel token of their own (Ctrl-C does not stop them).
    fn finish(&mut self) -> Result<(), ExecError> {
        let own = CancelToken::new();
        for step in &self.plan.finish {
            let action = step.name.as_str();
            let pending: Vec<(i64, String)> = self
                .journal
                .pending_compensations(Some(self.run))?
                .into_iter()
                .filter(|p| p.action == action)
                .map(|p| (p.id, p.host))
                .collect();
            let started = Instant::now();
            let hosts: Vec<String> = pending.iter().map(|(_, h)| h.clone()).collect();
            self.ctx.events.event(&Event::Step {
                index: step.index,
                name: step.name.clone(),
                batch: None,
                hosts: fold(&hosts),
                already_done: String::new(),
            });
            if hosts.is_empty() {
                self.skipped(step, Some((None, String::new())), 0.0)?;
                continue;
            }
            self.start_row(step, None, &fold(&hosts))?;
            let command = step
                .actions
                .iter()
                .find_map(|a| match a {
                    Action::Remote { command, .. } => Some(command.clone()),
                    Action::Health { .. } => None,
                })
                .or_else(|| compensation_command(action))
                .ok_or_else(|| ExecError::Input(format!("unknown compensation {action}")))?;
            let token = self.journal.process_token();
            let outcomes = compensate_and_verify(
                self.ctx.transport,
                &self.ctx.options,
                action,
                &command,
                &hosts,
                &token,
                &[],
                &own,
            )?;
            let (ok, failures) = self.record(step, outcomes)?;
            for (id, h) in &pending {
                if ok.contains(h) {
                    self.journal.complete_compensation(*id)?;
                }
            }
            self.end_row(step, failures.is_empty())?;
            self.ctx.events.event(&Event::StepDone {
                index: step.index,
                name: step.name.clone(),
                ok: fold(&ok),
                failed: failures,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        Ok(())
    }

    fn summary(
        &mut self,
        status: RunStatus,
        stopped: Option<String>,
        pending: &[swh_deploy_journal::Compensation],
    ) -> Result<Summary, ExecError> {
        let plan = self.plan;
        let details = self.journal.run_details(self.run)?;
        // Hosts that passed every batch step (latest result ok).
        let mut latest: BTreeMap<(i64, &str), Outcome> = BTreeMap::new();
        for r in &details.results {
            latest.insert((r.step, r.host.as_str()), r.outcome);
        }
        let mut upgraded = Vec::new();
        let mut not_done = Vec::new();
        for b in &plan.batches {
            for h in &b.hosts {
                if self.failed.contains_key(h) {
                    continue;
                }
                let complete = b.steps.iter().all(|s| {
                    s.kind == StepKind::Info
                        || !s.actions.iter().any(|a| a.hosts().contains(h))
                        || latest.get(&(s.index as i64, h.as_str())) == Some(&Outcome::Ok)
                });
                if complete {
                    upgraded.push(h.clone());
                } else {
                    not_done.push(h.clone());
                }
            }
        }
        let mut failed_at: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unreachable = Vec::new();
        let mut unhealthy = Vec::new();
        for (h, f) in &self.failed {
            match f.outcome {
                Outcome::Unreachable => unreachable.push(h.clone()),
                Outcome::Unhealthy => unhealthy.push(h.clone()),
                _ => failed_at.entry(f.step.clone()).or_default().push(h.clone()),
            }
        }
        // Versions: latest ok versions-before / versions-after per host.
        let step_name: BTreeMap<i64, &str> = details
            .steps
            .iter()
            .map(|s| (s.index, s.name.as_str()))
            .collect();
        let mut before: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
        let mut after: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
        for r in &details.results {
            if r.outcome != Outcome::Ok {
                continue;
            }
            let target = match step_name.get(&r.step) {
                Some(&"versions-before") => &mut before,
                Some(&"versions-after") => &mut after,
                _ => continue,
            };
            let v = parse_installed_versions(&r.stdout);
            let m = target.entry(r.host.clone()).or_default();
            for (p, ver) in v {
                m.insert(p.to_string(), ver.map(|x| x.to_string()));
            }
        }
        let mut changes: BTreeMap<(String, Option<String>, Option<String>), Vec<String>> =
            BTreeMap::new();
        for h in &plan.hosts {
            for p in &plan.packages {
                let b = before.get(h).and_then(|m| m.get(p.as_str()).cloned());
                let a = after.get(h).and_then(|m| m.get(p.as_str()).cloned());
                if b.is_none() && a.is_none() {
                    continue;
                }
                changes
                    .entry((p.to_string(), b.flatten(), a.flatten()))
                    .or_default()
                    .push(h.clone());
            }
        }
        let versions = changes
            .into_iter()
            .map(|((package, before, after), hosts)| VersionChange {
                package,
                before,
                after,
                hosts: fold(&hosts),
            })
            .collect();
        let mut by_action: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in pending {
            by_action
                .entry(p.action.clone())
                .or_default()
                .push(p.host.clone());
        }
        Ok(Summary {
            run: self.run,
            status,
            stopped,
            upgraded: fold(&upgraded),
            failed: failed_at
                .into_iter()
                .map(|(step, hosts)| FailedAt {
                    step,
                    hosts: fold(&hosts),
                })
                .collect(),
            unreachable: fold(&unreachable),
            unhealthy: fold(&unhealthy),
            not_done: fold(&not_done),
            versions,
            pending: by_action
                .into_iter()
                .map(|(action, hosts)| PendingAction {
                    action,
                    hosts: fold(&hosts),
                })
                .collect(),
        })
    }
}

/// A host's thread to the journal's thread, within a batch.
enum HostMsg {
    /// May `host` start the step at `pos` of the batch? (`false`: it
    /// skips it and asks for the next one.)
    Ask {
        pos: usize,
        host: String,
        reply: std::sync::mpsc::Sender<bool>,
    },
    /// The step at `pos` ended on the host (its outcomes to record).
    Done {
        pos: usize,
        outcomes: Result<Vec<HostOutcome>, String>,
    },
}

/// One step of a running batch, as the journal's thread sees it.
struct StepState {
    /// Hosts that take part (not failed when the batch started).
    all: Vec<String>,
    /// Hosts that finished it in an earlier attempt (resume).
    done: BTreeSet<String>,
    /// When its first host started it (its journal row is open).
    opened: Option<Instant>,
    /// Hosts admitted so far.
    ran: usize,
    /// Hosts running it now.
    running: usize,
    /// Hosts past it (skipped or ended).
    past: usize,
    ok: Vec<String>,
    failures: Vec<HostFailure>,
}

/// One host's way through the steps of its batch, on its own thread: asks
/// before each step, runs it, reports the outcome.
fn host_steps(reach: Reach<'_>, steps: &[Step], host: &str, tx: &std::sync::mpsc::Sender<HostMsg>) {
    for (pos, step) in steps.iter().enumerate() {
        let (reply, answer) = std::sync::mpsc::channel();
        let ask = HostMsg::Ask {
            pos,
            host: host.to_owned(),
            reply,
        };
        if tx.send(ask).is_err() || !answer.recv().unwrap_or(false) {
            continue;
        }
        let outcomes = reach
            .step(step, &[host.to_owned()])
            .map_err(|e| e.to_string());
        let _ = tx.send(HostMsg::Done { pos, outcomes });
    }
}

/// What running a step on hosts needs, shareable between the threads of
/// a batch (each host goes through its steps on its own thread).
#[derive(Clone, Copy)]
struct Reach<'a> {
    transport: &'a dyn Transport,
    resolver: &'a dyn AddressResolver,
    options: &'a ExecOptions,
    cancel: &'a CancelToken,
    /// The process token of this run (for the guard's fence check).
    token: &'a str,
    run: RunId,
}

impl Reach<'_> {
    /// Runs `step` on `todo` (each of its actions on the hosts of `todo`
    /// it names): remote commands, or the health gates.
    fn step(&self, step: &Step, todo: &[String]) -> Result<Vec<HostOutcome>, ExecError> {
        if step.kind == StepKind::Health {
            return Ok(self.health(step, todo));
        }
        let mut v = Vec::new();
        for action in &step.actions {
            if let Action::Remote {
                hosts,
                command,
                success_codes,
                ..
            } = action
            {
                let hs: Vec<String> = hosts.iter().filter(|h| todo.contains(h)).cloned().collect();
                if hs.is_empty() {
                    continue;
                }
                // Changes run under the host's lock, held throughout for
                // the steps a compensation undoes.
                let hold = match (step.kind, &step.compensation) {
                    (StepKind::Change, Some(_)) => Some(Hold::Whole),
                    (StepKind::Change, None) => Some(Hold::CheckOnly),
                    _ => None,
                };
                // The migration leaves a mark on its host as it starts:
                // `resume` can tell "started" from "never ran".
                let mark = (step.name == "migration").then(|| start_mark(self.run, step.index));
                let line = match hold {
                    Some(h) => guarded(command, Some(self.token), &[], h, mark.as_deref()),
                    None => command.to_shell(),
                };
                v.extend(remote_outcomes(
                    self.transport,
                    self.options,
                    &line,
                    success_codes,
                    &hs,
                    self.cancel,
                )?);
            }
        }
        Ok(v)
    }

    fn health(&self, step: &Step, todo: &[String]) -> Vec<HostOutcome> {
        let start = Instant::now();
        // host -> (healthy so far, details)
        let mut state: BTreeMap<String, (Option<Outcome>, Vec<String>)> = todo
            .iter()
            .map(|h| (h.clone(), (Some(Outcome::Ok), Vec::new())))
            .collect();
        let gctx = GateContext {
            transport: self.transport,
            fanout: self.options.fanout,
            resolver: self.resolver,
            cancel: self.cancel,
        };
        for action in &step.actions {
            let Action::Health {
                hosts,
                service,
                probe,
                deadline_ms,
                interval_ms,
                ..
            } = action
            else {
                continue;
            };
            let hs: Vec<String> = hosts.iter().filter(|h| todo.contains(h)).cloned().collect();
            if hs.is_empty() {
                continue;
            }
            let results = run_gate(
                probe,
                &hs,
                Duration::from_millis(*deadline_ms),
                Duration::from_millis((*interval_ms).max(1)),
                &gctx,
            );
            for r in results {
                let entry = state.entry(r.host.clone()).or_default();
                let (outcome, msg) = match r.result {
                    ProbeResult::Healthy => (Outcome::Ok, format!("{service}: healthy")),
                    ProbeResult::Unhealthy(m) => (
                        Outcome::Unhealthy,
                        format!("{service}: unhealthy after {} attempt(s): {m}", r.attempts),
                    ),
                    ProbeResult::Unreachable(m) => (
                        Outcome::Unreachable,
                        format!(
                            "{service}: unreachable after {} attempt(s): {m}",
                            r.attempts
                        ),
                    ),
                };
                entry.1.push(msg);
                if self.cancel.is_cancelled() && outcome != Outcome::Ok {
                    entry.0 = None;
                } else if outcome != Outcome::Ok && entry.0 == Some(Outcome::Ok) {
                    entry.0 = Some(outcome);
                }
            }
        }
        state
            .into_iter()
            .map(|(host, (outcome, details))| {
                let detail = details.join("; ");
                HostOutcome {
                    host,
                    rc: None,
                    stdout: detail.clone().into_bytes(),
                    stderr: Vec::new(),
                    duration: start.elapsed(),
                    outcome,
                    detail,
                }
            })
            .collect()
    }
}

/// Runs `command` on `hosts` and classifies each host's result.
fn remote_outcomes(
    transport: &dyn Transport,
    options: &ExecOptions,
    line: &str,
    success_codes: &[i32],
    hosts: &[String],
    cancel: &CancelToken,
) -> Result<Vec<HostOutcome>, ExecError> {
    let run_options = RunOptions {
        fanout: options.fanout,
        command_timeout: options.command_timeout,
        merge_stderr: false,
        hosts_label: None,
    };
    let report = swh_deploy_fleet::run(
        transport,
        hosts,
        line,
        &run_options,
        &mut NoObserver,
        cancel,
    )
    .map_err(|e| ExecError::Fleet(e.to_string()))?;
    Ok(report
        .results
        .into_iter()
        .map(|r| {
            let outcome = match &r.status {
                Status::Exited(c) if success_codes.contains(c) => Some(Outcome::Ok),
                Status::Exited(_) => Some(Outcome::Failed),
                Status::Unreachable | Status::LaunchFailed(_) => Some(Outcome::Unreachable),
                Status::TimedOut => Some(Outcome::TimedOut),
                Status::Cancelled { .. } => None,
            };
            let detail = tail(&r.stderr, &r.stdout);
            HostOutcome {
                host: r.host.clone(),
                rc: r.rc(),
                stdout: r.stdout,
                stderr: r.stderr,
                duration: r.duration,
                outcome,
                detail,
            }
        })
        .collect())
}

/// The last lines of stderr (or stdout when stderr is empty).
fn tail(stderr: &[u8], stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(if stderr.iter().all(u8::is_ascii_whitespace) {
        stdout
    } else {
        stderr
    })
    .into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

/// Runs compensation `action` (`command`) on `hosts` under each host's
/// lock, after fencing the dead processes `fence` there ([`crate::guard`]),
/// then checks the host's final state ([`verify_line`]): a host counts as
/// `ok` only when the command succeeded AND the check passed (cron active,
/// puppet's lock file absent), never on the exit status alone. A host whose
/// result is unknown counts as failed. Used by the finish steps and by
/// [`crate::recover`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn compensate_and_verify(
    transport: &dyn Transport,
    options: &ExecOptions,
    action: &str,
    command: &RemoteCommand,
    hosts: &[String],
    own: &str,
    fence: &[String],
    cancel: &CancelToken,
) -> Result<Vec<HostOutcome>, ExecError> {
    let codes = command.success_codes().to_vec();
    let line = guarded(command, Some(own), fence, Hold::Whole, None);
    let mut outs = remote_outcomes(transport, options, &line, &codes, hosts, cancel)?;
    for o in &mut outs {
        o.outcome.get_or_insert(Outcome::Failed);
    }
    let Some(check) = verify_line(action) else {
        return Ok(outs);
    };
    let done: Vec<String> = outs
        .iter()
        .filter(|o| o.outcome == Some(Outcome::Ok))
        .map(|o| o.host.clone())
        .collect();
    if done.is_empty() {
        return Ok(outs);
    }
    let checks = remote_outcomes(transport, options, &check, &[0], &done, cancel)?;
    for c in checks {
        if c.outcome == Some(Outcome::Ok) {
            continue;
        }
        if let Some(o) = outs.iter_mut().find(|o| o.host == c.host) {
            let what = String::from_utf8_lossy(&c.stdout).trim().to_owned();
            o.outcome = Some(match c.outcome {
                Some(Outcome::Unreachable) => Outcome::Unreachable,
                _ => Outcome::Failed,
            });
            o.detail = format!(
                "`{}` exited 0 but the host is not back: {}{}",
                command.to_shell(),
                if what.is_empty() {
                    c.detail.clone()
                } else {
                    what
                },
                c.rc.map(|rc| format!(" (check exit {rc})"))
                    .unwrap_or_default()
            );
            o.rc = c.rc;
            o.stdout.extend_from_slice(b"\n-- verification --\n");
            o.stdout.extend_from_slice(&c.stdout);
            o.stderr.extend_from_slice(&c.stderr);
        }
    }
    Ok(outs)
}

/// Cancels `token` on SIGINT and SIGTERM (every time: a second signal
/// does not end the process, so the compensations still run) until the
/// guard is dropped, which puts back the signals' previous dispositions
/// (see [`swh_deploy_fleet::signals`]).
pub fn cancel_on_signals(token: &CancelToken) -> std::io::Result<SignalGuard> {
    token.cancel_on_signals_with(SignalPolicy {
        second: SecondSignal::Ignore,
        notice: Some(
            "swh-deploy: {signal} received: stopping after the running commands; compensations will run"
                .into(),
        ),
    })
}

/// The hosts of `step`'s actions, each once, in order (a host in several
/// health gates is one host).
fn step_hosts(step: &Step) -> impl Iterator<Item = String> + '_ {
    let mut seen = BTreeSet::new();
    step.actions
        .iter()
        .flat_map(|a| a.hosts().iter().cloned())
        .filter(move |h| seen.insert(h.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_renders_folded_outcomes_and_versions() {
        let s = Summary {
            run: 7,
            status: RunStatus::BudgetExceeded,
            stopped: Some("failure budget exceeded".into()),
            upgraded: "host[1-3]".into(),
            failed: vec![FailedAt {
                step: "puppet-agent".into(),
                hosts: "host4".into(),
            }],
            unreachable: "host5".into(),
            unhealthy: String::new(),
            not_done: "host[6-9]".into(),
            versions: vec![VersionChange {
                package: "python3-swh.storage".into(),
                before: Some("1.0-1~swh1".into()),
                after: Some("1.1-1~swh1".into()),
                hosts: "host[1-3]".into(),
            }],
            pending: vec![PendingAction {
                action: "start-cron".into(),
                hosts: "host5".into(),
            }],
        };
        let text = s.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "run 7: budget-exceeded");
        assert_eq!(lines[2], "  upgraded:               host[1-3] (3)");
        assert_eq!(lines[3], "  failed at puppet-agent: host4 (1)");
        assert_eq!(lines[4], "  unreachable:            host5 (1)");
        assert_eq!(lines[5], "  not done:               host[6-9] (4)");
        assert_eq!(
            lines[7],
            "    python3-swh.storage 1.0-1~swh1 -> 1.1-1~swh1: host[1-3]"
        );
        assert!(lines[8].contains("compensation start-cron still pending on host5"));
        assert_eq!(exit(s.status), Exit::Budget);
        assert_eq!(exit_code(s.status), 3);
        assert_eq!(exit_code(RunStatus::Succeeded), 0);
        assert_eq!(exit_code(RunStatus::Interrupted), 130);
    }
}
