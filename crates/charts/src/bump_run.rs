//! `chart bump`, whole: prepare the bump, journal it as a `chart bump` run
//! (unless a dry run), commit and push it; and the report of what it did.

use crate::{BumpOutcome, BumpRequest, ChartsRepo, Error};
use swh_deploy_journal::{JournalError, Recorder};

/// Why [`bump_journaled`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BumpError {
    /// The checkout, the values file, the commit or the push.
    #[error(transparent)]
    Charts(#[from] Error),
    /// The journal could not be opened.
    #[error("{0}")]
    Journal(#[from] JournalError),
}

impl BumpError {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// Prepares `req`'s bump and, unless `req.dry_run`, commits (and pushes)
/// it, journaled as a `chart bump` run with `parameters` in `journal`
/// (`None`: the default one; one step naming every change, see
/// [`BumpOutcome::journal_step`]).
pub fn bump_journaled(
    repo: &ChartsRepo,
    req: &BumpRequest,
    parameters: serde_json::Value,
    journal: Option<&std::path::Path>,
) -> Result<BumpOutcome, BumpError> {
    let mut rec = if req.dry_run {
        None
    } else {
        Some(Recorder::start(journal, "chart bump", parameters)?)
    };
    let result = repo.prepare_bump(req).and_then(|prepared| {
        if let Some(r) = rec.as_mut() {
            if prepared.outcome.has_work() {
                r.step(
                    &prepared.outcome.journal_step(&req.branch, req.push),
                    &req.branch,
                );
            }
        }
        if req.dry_run {
            Ok(prepared.outcome)
        } else {
            repo.commit_bump(prepared)
        }
    });
    if let Some(r) = rec {
        r.finish(result.is_ok());
    }
    Ok(result?)
}

impl BumpOutcome {
    /// What a bump did (or would do) on `branch`, one line each: the
    /// changed keys, where added keys went, appVersion, the commit, and
    /// the merge request to `merge_request` a push opens or updates.
    pub fn report(
        &self,
        branch: &str,
        dry_run: bool,
        push: bool,
        merge_request: Option<&str>,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(c) = &self.already {
            lines.push(format!(
                "nothing to do: {branch} already has the release commit {c} (--again to bump appVersion once more)"
            ));
        } else if !self.has_work() {
            lines.push(format!(
                "nothing to do: every app is already at the requested version on {branch}"
            ));
        } else {
            if self.release_only {
                lines.push("no image version change (release only)".into());
            }
            for c in &self.changes {
                lines.push(format!(
                    "{}: {} -> {}",
                    c.key,
                    c.from.as_deref().unwrap_or("(new)"),
                    c.to
                ));
            }
            for n in &self.notes {
                lines.push(format!("note: {n}"));
            }
            lines.push(format!(
                "appVersion: {} -> {}",
                self.app_version - 1,
                self.app_version
            ));
            let title = self.message.lines().next().unwrap_or_default();
            if dry_run {
                lines.push(format!(
                    "dry run: would commit \"{title}\" on {branch}{}",
                    if push { " and push it" } else { "" }
                ));
            } else {
                lines.push(format!(
                    "committed {} \"{title}\" on {branch}{}",
                    self.commit
                        .as_deref()
                        .map(|c| &c[..c.len().min(12)])
                        .unwrap_or(""),
                    if self.pushed {
                        ", pushed"
                    } else {
                        " (not pushed)"
                    }
                ));
            }
        }
        if let Some(target) = merge_request {
            if self.pushed {
                lines.push(format!(
                    "merge request {branch} -> {target}: opened, or updated if open (git push options)"
                ));
            } else if dry_run && self.has_work() && push {
                lines.push(format!(
                    "dry run: the push would open or update the merge request {branch} -> {target}"
                ));
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use crate::values::Change;
    use crate::BumpOutcome;

    fn outcome() -> BumpOutcome {
        BumpOutcome {
            changes: vec![Change {
                key: "swh_lister".into(),
                from: None,
                to: "20250102.1".into(),
            }],
            app_version: 12,
            message: "v12: Release swh.lister v1.0.0".into(),
            commit: Some("0123456789abcdef".into()),
            pushed: true,
            notes: vec!["swh_lister added at its sorted position".into()],
            already: None,
            release_only: false,
        }
    }

    #[test]
    fn a_pushed_bump_reports_changes_commit_and_merge_request() {
        assert_eq!(
            outcome().report("swh-next-version", false, true, Some("staging")),
            [
                "swh_lister: (new) -> 20250102.1",
                "note: swh_lister added at its sorted position",
                "appVersion: 11 -> 12",
                "committed 0123456789ab \"v12: Release swh.lister v1.0.0\" on swh-next-version, pushed",
                "merge request swh-next-version -> staging: opened, or updated if open (git push options)",
            ]
        );
    }

    #[test]
    fn dry_runs_and_no_ops_say_so() {
        let mut o = outcome();
        o.pushed = false;
        o.commit = None;
        let r = o.report("swh-next-version", true, true, Some("staging"));
        assert_eq!(
            &r[3..],
            [
                "dry run: would commit \"v12: Release swh.lister v1.0.0\" on swh-next-version and push it",
                "dry run: the push would open or update the merge request swh-next-version -> staging",
            ]
        );
        o.changes.clear();
        assert_eq!(
            o.report("b", false, false, None),
            ["nothing to do: every app is already at the requested version on b"]
        );
        o.already = Some("abc v11: Release x".into());
        assert!(o.report("b", false, false, None)[0].contains("already has the release commit abc"));
    }
}
