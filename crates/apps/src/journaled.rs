//! `app freeze` and `app build` as journaled runs: the run with its
//! parameters, then one journal step per action (kind `elastic`), each
//! recorded before it starts and closed when it ends; the run ends failed
//! when the action fails. A dry run changes nothing and journals nothing.

use crate::{AppsRepo, BuildOptions, BuildOutcome, Error, FreezeOptions, FreezeOutcome};
use std::path::Path;
use swh_deploy_journal::Recorder;

/// [`AppsRepo::freeze`], writing the file and journaled as an `app freeze`
/// run in `journal` (`None`: the journal crate's default) unless `dry_run`.
pub fn freeze(
    repo: &AppsRepo,
    app: &str,
    opts: &FreezeOptions,
    dry_run: bool,
    journal: Option<&Path>,
) -> Result<FreezeOutcome, Error> {
    if dry_run {
        return repo.freeze(app, opts, false);
    }
    let mut rec = Recorder::start(journal, "app freeze", serde_json::json!({ "app": app }))?;
    rec.step(&format!("freeze apps/{app}/requirements-frozen.txt"), app);
    let result = repo.freeze(app, opts, true);
    rec.finish(result.is_ok());
    result
}

/// [`AppsRepo::build`] for today's date (UTC), journaled as an `app build`
/// run in `journal` unless `opts.dry_run`, one step per progress line;
/// `progress` gets each line too. `registry` is the registry as the user
/// gave it (flag or environment), recorded in the run's parameters.
pub fn build(
    repo: &AppsRepo,
    app: &str,
    opts: &BuildOptions,
    registry: Option<&str>,
    journal: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildOutcome, Error> {
    let today = crate::version::today_utc();
    if opts.dry_run {
        return repo.build(app, today, opts, progress);
    }
    let mut rec = Recorder::start(
        journal,
        "app build",
        serde_json::json!({
            "app": app,
            "push": opts.push,
            "builder": opts.builder.program(),
            "registry": registry,
        }),
    )?;
    let mut step = |s: &str| {
        progress(s);
        rec.step(s, app);
    };
    let result = repo.build(app, today, opts, &mut step);
    rec.finish(result.is_ok());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use swh_deploy_journal::{Journal, RunStatus, StepStatus};

    #[test]
    fn a_failed_freeze_is_a_failed_run_and_a_dry_run_is_not_journaled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("apps/swh-base")).unwrap();
        std::fs::write(
            dir.path().join("apps/swh-base/Dockerfile"),
            "FROM python:3.11\n",
        )
        .unwrap();
        let repo = AppsRepo::open(dir.path()).unwrap();
        let journal = dir.path().join("journal.sqlite");
        // swh-base is image-only: nothing to freeze, an input error.
        let e = freeze(
            &repo,
            "swh-base",
            &FreezeOptions::default(),
            true,
            Some(&journal),
        )
        .unwrap_err();
        assert!(e.to_string().contains("image-only"), "{e}");
        assert!(!journal.exists(), "a dry run opened the journal");
        let e = freeze(
            &repo,
            "swh-base",
            &FreezeOptions::default(),
            false,
            Some(&journal),
        )
        .unwrap_err();
        assert!(e.to_string().contains("image-only"), "{e}");
        let j = Journal::open(&journal).unwrap();
        let runs = j.runs(10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].mode, "app freeze");
        assert_eq!(runs[0].status, RunStatus::Failed);
        let steps = j.run_details(runs[0].id).unwrap().steps;
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].name,
            "freeze apps/swh-base/requirements-frozen.txt"
        );
        assert_eq!(steps[0].status, StepStatus::Failed);
    }
}
