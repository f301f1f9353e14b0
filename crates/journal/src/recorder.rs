//! [`Recorder`]: one journal run of a command that acts step by step
//! (`release tag`, `app build`, `chart bump`, `chart promote`, `cluster
//! labels set`, `debian tag`...), each step recorded before it starts and
//! when it ends.

use crate::{Journal, JournalError, NewRun, RunId, RunStatus, StepStatus};
use std::path::Path;

/// Journals one run made of sequential steps: the run with its parameters,
/// then one step per action, each recorded when it starts and ended when the
/// next one starts or the run finishes.
///
/// Recording a step is best effort: a journal error while the command acts
/// does not stop it; it is handed to the warning hook (by default, one line
/// `swh-deploy: warning: journal: ...` on stderr). Only opening the journal
/// and starting the run can fail.
pub struct Recorder {
    journal: Journal,
    run: RunId,
    step: i64,
    open: bool,
    kind: &'static str,
    warn: fn(&JournalError),
}

/// The default warning hook: one line on stderr.
fn warn_stderr(e: &JournalError) {
    eprintln!("swh-deploy: warning: journal: {e}");
}

impl Recorder {
    /// Opens the journal `explicit` (else the default path: see
    /// [`crate::resolve_path`]) and starts a run of `mode` (e.g. `app
    /// build`) recording this process's command line and `parameters`.
    pub fn start(
        explicit: Option<&Path>,
        mode: &str,
        parameters: serde_json::Value,
    ) -> Result<Recorder, JournalError> {
        let journal = Journal::open_default(explicit)?;
        Recorder::new(
            journal,
            &NewRun {
                command_line: std::env::args().collect(),
                mode: mode.to_string(),
                parameters,
            },
        )
    }

    /// Starts `run` in an open journal.
    pub fn new(mut journal: Journal, run: &NewRun) -> Result<Recorder, JournalError> {
        let id = journal.start_run(run)?;
        Ok(Recorder {
            journal,
            run: id,
            step: 0,
            open: false,
            kind: "elastic",
            warn: warn_stderr,
        })
    }

    /// The kind recorded for the steps (default `elastic`; e.g. `git` for
    /// the Debian packaging steps).
    pub fn with_kind(mut self, kind: &'static str) -> Recorder {
        self.kind = kind;
        self
    }

    /// Replaces the warning hook called with the journal errors met while
    /// recording steps.
    pub fn with_warn(mut self, warn: fn(&JournalError)) -> Recorder {
        self.warn = warn;
        self
    }

    /// The id of the run being recorded.
    pub fn run_id(&self) -> RunId {
        self.run
    }

    /// Ends the current step (succeeded) and records the start of `name` on
    /// `target` (a host set, a branch, an app...).
    pub fn step(&mut self, name: &str, target: &str) {
        self.close(StepStatus::Succeeded);
        self.step += 1;
        if let Err(e) = self
            .journal
            .start_step(self.run, self.step, name, self.kind, None, target)
        {
            (self.warn)(&e);
        }
        self.open = true;
    }

    /// Records the output of the current step's command on `target` (a
    /// pod, a host): its exit code, stdout and stderr, how long it took and
    /// whether it counts as a success. Best effort, like [`Recorder::step`].
    pub fn output(
        &mut self,
        target: &str,
        rc: Option<i32>,
        stdout: &[u8],
        stderr: &[u8],
        duration: std::time::Duration,
        ok: bool,
    ) {
        let outcome = if ok {
            crate::Outcome::Ok
        } else {
            crate::Outcome::Failed
        };
        if let Err(e) = self.journal.record_host_result(
            self.run, self.step, target, rc, stdout, stderr, duration, outcome,
        ) {
            (self.warn)(&e);
        }
    }

    /// Records, BEFORE the side effect, that `action` must run on `target`
    /// to put it back ([`Journal::add_compensation`] for this run); its id.
    /// Unlike steps, an error here is returned: the caller must not go on.
    pub fn add_compensation(&mut self, target: &str, action: &str) -> Result<i64, JournalError> {
        self.journal.add_compensation(self.run, target, action)
    }

    /// Marks compensation `id` done ([`Journal::complete_compensation`]).
    pub fn complete_compensation(&mut self, id: i64) -> Result<(), JournalError> {
        self.journal.complete_compensation(id)
    }

    fn close(&mut self, status: StepStatus) {
        if self.open {
            if let Err(e) = self.journal.end_step(self.run, self.step, status) {
                (self.warn)(&e);
            }
            self.open = false;
        }
    }

    /// Ends the current step and the run, succeeded or failed.
    pub fn finish(mut self, ok: bool) {
        self.close(if ok {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        });
        let status = if ok {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        if let Err(e) = self.journal.end_run(self.run, status) {
            (self.warn)(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_journal(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("swh-deploy-recorder-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("journal.sqlite")
    }

    #[test]
    fn records_the_run_and_each_step_in_order() {
        let path = temp_journal("ok");
        let mut rec = Recorder::start(
            Some(&path),
            "release tag",
            serde_json::json!({ "tag": "v1.2.0" }),
        )
        .unwrap()
        .with_kind("release");
        let run = rec.run_id();
        rec.step("tag", "v1.2.0");
        rec.step("push", "origin v1.2.0");
        rec.output(
            "origin",
            Some(0),
            b"pushed\n",
            b"",
            std::time::Duration::from_millis(5),
            true,
        );
        rec.finish(true);

        let j = Journal::open(&path).unwrap();
        let details = j.run_details(run).unwrap();
        assert_eq!(details.run.mode, "release tag");
        assert_eq!(details.run.status, RunStatus::Succeeded);
        assert_eq!(details.run.parameters["tag"], "v1.2.0");
        let steps: Vec<(i64, &str, &str, &str, StepStatus)> = details
            .steps
            .iter()
            .map(|s| {
                (
                    s.index,
                    s.name.as_str(),
                    s.kind.as_str(),
                    s.hosts.as_str(),
                    s.status,
                )
            })
            .collect();
        assert_eq!(
            steps,
            vec![
                (1, "tag", "release", "v1.2.0", StepStatus::Succeeded),
                (2, "push", "release", "origin v1.2.0", StepStatus::Succeeded),
            ]
        );
        let results = &details.results;
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(
            (results[0].step, results[0].host.as_str(), results[0].rc),
            (2, "origin", Some(0))
        );
        assert_eq!(results[0].stdout, "pushed\n");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_failed_finish_fails_the_last_step_and_the_run() {
        let path = temp_journal("failed");
        let mut rec = Recorder::start(Some(&path), "app build", serde_json::json!({})).unwrap();
        let run = rec.run_id();
        rec.step("freeze", "swh-loader-git");
        rec.step("build", "swh-loader-git");
        rec.finish(false);

        let j = Journal::open(&path).unwrap();
        let details = j.run_details(run).unwrap();
        assert_eq!(details.run.status, RunStatus::Failed);
        let statuses: Vec<(&str, StepStatus)> = details
            .steps
            .iter()
            .map(|s| (s.kind.as_str(), s.status))
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("elastic", StepStatus::Succeeded),
                ("elastic", StepStatus::Failed)
            ]
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
