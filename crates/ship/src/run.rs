//! Acting on a plan: [`execute`] runs the steps in order as one journal
//! run, skipping those already done, stopping at the first failure.

use crate::{Evidence, Ship, ShipError, ShipPlan, Step};
use std::time::{Duration, Instant};
use swh_deploy_journal::{
    Journal, JournalError, NewRun, Outcome, Run, RunId, RunStatus, StepStatus,
};

/// What [`execute`] reports as it goes; the caller renders it.
#[derive(Debug)]
pub enum ShipEvent<'a> {
    /// The ship's journal run started; `continuing` is the last earlier
    /// ship of the same release when it did not succeed.
    Started {
        /// The ship's run.
        run: RunId,
        /// The earlier ship it continues, if any.
        continuing: Option<&'a Run>,
    },
    /// A step starts (`number` counts from 1).
    Step {
        /// Its number.
        number: usize,
        /// The number of steps.
        of: usize,
        /// The step.
        step: &'a Step,
    },
    /// The step's result was already there.
    AlreadyDone {
        /// Its number.
        number: usize,
        /// The number of steps.
        of: usize,
        /// The step.
        step: &'a Step,
        /// What shows it.
        evidence: &'a Evidence,
    },
    /// The step was done now; `text` is what it did and the sub-runs it
    /// recorded (may be empty).
    Done {
        /// Its number.
        number: usize,
        /// The number of steps.
        of: usize,
        /// The step.
        step: &'a Step,
        /// What was done.
        text: &'a str,
    },
    /// Output of the step's sub-command (what the command alone prints on
    /// stdout).
    Output(&'a str),
    /// Progress of the step's sub-command (what the command alone prints
    /// on stderr).
    Progress(&'a str),
    /// Progress of an upgrade step.
    Upgrade(&'a swh_deploy_upgrade::execute::Event),
}

/// Receives the [`ShipEvent`]s of [`execute`].
pub trait Reporter {
    /// One event.
    fn event(&mut self, event: &ShipEvent<'_>);
}

/// The step a ship stopped at.
#[derive(Debug)]
pub struct StepFailure {
    /// Its number (from 1).
    pub number: usize,
    /// The number of steps.
    pub of: usize,
    /// The step.
    pub step: Step,
    /// Why (with the sub-runs it recorded); [`ShipError::exit`] is the
    /// ship's exit.
    pub error: ShipError,
}

/// How [`execute`] ended.
#[derive(Debug)]
pub enum ShipOutcome {
    /// Every step done, now or before.
    Shipped {
        /// The ship's journal run.
        run: RunId,
        /// Steps done by this run.
        done_now: usize,
        /// Steps found already done.
        already_done: usize,
        /// Time spent.
        elapsed: Duration,
    },
    /// Stopped at a step; the later steps were not run.
    Failed(StepFailure),
}

/// The ship's own journal run.
struct ShipJournal {
    journal: Journal,
    run: RunId,
    /// When the current step started.
    started: Instant,
}

fn warn<T>(r: Result<T, JournalError>) {
    if let Err(e) = r {
        eprintln!("swh-deploy: warning: journal: {e}");
    }
}

impl ShipJournal {
    /// The newest run id so far.
    fn last_run(&self) -> RunId {
        self.journal
            .runs(1)
            .ok()
            .and_then(|r| r.first().map(|r| r.id))
            .unwrap_or(0)
    }

    /// Runs recorded after `since`, other than the ship's, as `12 (app
    /// build, succeeded)`.
    fn runs_since(&self, since: RunId) -> Vec<String> {
        let mut out: Vec<String> = self
            .journal
            .runs(100)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.id > since && r.id != self.run)
            .map(|r| format!("{} ({}, {})", r.id, r.mode, r.status))
            .collect();
        out.reverse();
        out
    }

    fn step_result(&mut self, idx: i64, target: &str, ok: bool, text: &str, status: StepStatus) {
        let (out, err): (&[u8], &[u8]) = if ok {
            (text.as_bytes(), b"")
        } else {
            (b"", text.as_bytes())
        };
        warn(self.journal.record_host_result(
            self.run,
            idx,
            target,
            None,
            out,
            err,
            self.started.elapsed(),
            if ok { Outcome::Ok } else { Outcome::Failed },
        ));
        warn(self.journal.end_step(self.run, idx, status));
    }

    fn fail(&mut self, idx: i64, target: &str, failure: StepFailure) -> ShipOutcome {
        let message = failure.error.to_string();
        self.step_result(idx, target, false, &message, StepStatus::Failed);
        let status = match failure.error.exit() {
            swh_deploy_util::Exit::Interrupted => RunStatus::Interrupted,
            _ => RunStatus::Failed,
        };
        warn(self.journal.end_run(self.run, status));
        ShipOutcome::Failed(failure)
    }
}

impl Step {
    /// The journal target of the step: the tag, the channels, the hosts,
    /// the app, the branch or the environment.
    pub fn target(&self, ship: &Ship) -> String {
        use crate::Action;
        let o = &ship.options;
        match &self.action {
            Action::Tag => o.version.tag_name(),
            Action::WaitPublished => o
                .channels
                .iter()
                .map(|c| c.kind())
                .collect::<Vec<_>>()
                .join(","),
            Action::Upgrade { hosts, .. } => swh_deploy_nodeset::fold(hosts),
            Action::Build { app } => app.clone(),
            Action::Bump => swh_deploy_charts::Env::NextVersion.branch().into(),
            Action::Promote(env) => env.branch().into(),
            Action::Wait(env) => env.clone(),
        }
    }
}

/// Runs `plan` as one journal run (mode `ship`): for each step, records
/// it, skips it when [`Step::is_done`], else [`Step::perform`]s it and
/// records its result with the sub-runs it made. Stops at the first
/// failure. Only opening the journal is an error; a failed step is a
/// [`ShipOutcome::Failed`].
pub fn execute(
    ship: &mut Ship,
    plan: &ShipPlan,
    report: &mut dyn Reporter,
) -> Result<ShipOutcome, ShipError> {
    let mut journal = Journal::open_default(ship.options.journal.as_deref())?;
    // A ship killed (Ctrl-C, SIGTERM, crash) left its run `running`.
    warn(journal.reap_dead_runs());
    let o = &ship.options;
    let earlier = journal.runs(200).unwrap_or_default().into_iter().find(|r| {
        r.mode == "ship"
            && r.parameters["module"] == o.module.dotted()
            && r.parameters["version"] == o.version.to_string()
    });
    let run = journal.start_run(&NewRun {
        command_line: o.argv.clone(),
        mode: "ship".into(),
        parameters: serde_json::json!({
            "module": o.module.dotted(),
            "version": o.version.to_string(),
            "static": o.static_path,
            "elastic": o.elastic,
            "steps": plan.steps.iter().map(|s| s.title.clone()).collect::<Vec<_>>(),
        }),
    })?;
    let mut sj = ShipJournal {
        journal,
        run,
        started: Instant::now(),
    };
    report.event(&ShipEvent::Started {
        run,
        continuing: earlier
            .as_ref()
            .filter(|r| r.status != RunStatus::Succeeded),
    });
    let of = plan.steps.len();
    let start = Instant::now();
    let mut done_now = 0;
    for (i, step) in plan.steps.iter().enumerate() {
        let (idx, number) = (i as i64, i + 1);
        let target = step.target(ship);
        warn(
            sj.journal
                .start_step(run, idx, &step.title, "ship", None, &target),
        );
        report.event(&ShipEvent::Step { number, of, step });
        sj.started = Instant::now();
        match step.is_done(ship) {
            Ok(Some(evidence)) => {
                report.event(&ShipEvent::AlreadyDone {
                    number,
                    of,
                    step,
                    evidence: &evidence,
                });
                sj.step_result(
                    idx,
                    &target,
                    true,
                    &format!("already done: {evidence}"),
                    StepStatus::Skipped,
                );
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                let failure = StepFailure {
                    number,
                    of,
                    step: step.clone(),
                    error,
                };
                return Ok(sj.fail(idx, &target, failure));
            }
        }
        let before = sj.last_run();
        // An upgrade step handles Ctrl-C itself (compensations, exit 130)
        // and puts the default action back when it ends.
        let result = step.perform(ship, report);
        let subs = sj.runs_since(before);
        let runs = if subs.is_empty() {
            String::new()
        } else {
            format!("runs {}", subs.join(", "))
        };
        match result {
            Ok(what) => {
                let text = [what.0.as_str(), runs.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("; ");
                report.event(&ShipEvent::Done {
                    number,
                    of,
                    step,
                    text: &text,
                });
                sj.step_result(idx, &target, true, &text, StepStatus::Succeeded);
                done_now += 1;
            }
            Err(mut error) => {
                if !runs.is_empty() {
                    error = error.with_note(&runs);
                }
                let failure = StepFailure {
                    number,
                    of,
                    step: step.clone(),
                    error,
                };
                return Ok(sj.fail(idx, &target, failure));
            }
        }
    }
    warn(sj.journal.end_run(run, RunStatus::Succeeded));
    Ok(ShipOutcome::Shipped {
        run,
        done_now,
        already_done: of - done_now,
        elapsed: start.elapsed(),
    })
}
