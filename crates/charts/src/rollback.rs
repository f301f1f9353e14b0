//! `chart rollback`: a revert commit on an environment's branch, never a
//! force-push.
//!
//! Argo CD refuses its own rollback while auto-sync and self-heal are on,
//! and SWH's real rollbacks are hand edits or `git revert` on `production`.
//! Here a rollback is one new commit on top of the branch's head on the
//! remote, pushed as a fast-forward:
//!
//! - [`RollbackTo::Previous`]: the tree of the head's first parent (undoes
//!   the last commit, e.g. the last promotion's release commit);
//! - [`RollbackTo::Rev`]: the tree of an earlier commit of the branch
//!   (refused when it is not in the branch's history): undoes every commit
//!   after it at once;
//! - [`RollbackTo::Versions`]: the given apps' image versions set back in
//!   the values file (format-preserving edit, as `chart bump`), the rest of
//!   the branch kept.
//!
//! The commit is made in a temporary detached work tree (the checkout is
//! not touched) and pushed with a plain `git push` (the remote accepts it
//! only as a fast-forward: a branch that moved meanwhile is an error, and
//! nothing is overwritten).

use crate::values::{self, Bump};
use crate::{ChartsRepo, Error, VersionChange};

/// What to roll back to.
#[derive(Debug, Clone)]
pub enum RollbackTo {
    /// The state before the branch's last commit.
    Previous,
    /// The state at this earlier revision of the branch.
    Rev(String),
    /// These apps at these image versions.
    Versions(Vec<Bump>),
}

/// A planned rollback.
#[derive(Debug, Clone)]
pub struct RollbackPlan {
    /// The branch.
    pub branch: String,
    /// The branch's head on the remote, the new commit's parent.
    pub head: String,
    /// The commit whose state is restored (`Previous` / `Rev`).
    pub to: Option<String>,
    /// Image version changes: key, version now, version after.
    pub changes: Vec<VersionChange>,
    /// Files that change (`git diff --name-only`), for `Previous` / `Rev`.
    pub files: Vec<String>,
    /// The commit message.
    pub message: String,
    /// The new values file (`Versions`).
    values_text: Option<String>,
}

impl RollbackPlan {
    /// True when the rollback changes nothing.
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty() && self.files.is_empty()
    }

    /// A plan made by hand, for unit tests of what renders it.
    #[cfg(test)]
    pub(crate) fn for_tests(
        branch: &str,
        head: &str,
        to: Option<&str>,
        changes: Vec<VersionChange>,
        files: Vec<String>,
        message: &str,
    ) -> RollbackPlan {
        RollbackPlan {
            branch: branch.into(),
            head: head.into(),
            to: to.map(String::from),
            changes,
            files,
            message: message.into(),
            values_text: None,
        }
    }
}

fn short(rev: &str) -> &str {
    &rev[..rev.len().min(12)]
}

impl ChartsRepo {
    /// Plans the rollback of `branch` (fetched from the remote first).
    pub fn plan_rollback(&self, branch: &str, to: &RollbackTo) -> Result<RollbackPlan, Error> {
        self.fetch()?;
        let remote_ref = self.remote_ref(branch);
        let head = self
            .git
            .rev(&remote_ref)?
            .ok_or_else(|| Error::Input(format!("no branch {remote_ref}")))?;
        let describe = |changes: &[VersionChange]| {
            changes
                .iter()
                .map(|(k, a, b)| {
                    format!(
                        "{k} {} -> {}",
                        a.as_deref().unwrap_or("(absent)"),
                        b.as_deref().unwrap_or("(absent)")
                    )
                })
                .collect::<Vec<_>>()
        };
        match to {
            RollbackTo::Previous | RollbackTo::Rev(_) => {
                let target = match to {
                    RollbackTo::Rev(r) => self.git.rev(r)?.ok_or_else(|| {
                        Error::Input(format!(
                            "--to {r}: no such revision in {}",
                            self.git.dir().display()
                        ))
                    })?,
                    _ => self.git.rev(&format!("{head}^1"))?.ok_or_else(|| {
                        Error::Input(format!(
                            "{branch} has a single commit: nothing to roll back to"
                        ))
                    })?,
                };
                if target == head {
                    return Err(Error::Input(format!(
                        "{} is {branch}'s head: nothing to roll back",
                        short(&target)
                    )));
                }
                if !self
                    .git
                    .succeeds(&["merge-base", "--is-ancestor", &target, &head])?
                {
                    return Err(Error::Refused(format!(
                        "{} is not in {branch}'s history (not an ancestor of {remote_ref} {}): \
                         a rollback only goes back along the branch",
                        short(&target),
                        short(&head)
                    )));
                }
                let changes = self.version_changes(&head, &target)?;
                let files: Vec<String> = self
                    .git
                    .run(&["diff", "--name-only", &head, &target])?
                    .lines()
                    .map(String::from)
                    .collect();
                let subject = self.git.run(&["log", "-1", "--format=%s", &target])?;
                let mut message = format!(
                    "Rollback {branch} to {} ({subject})\n\nReverts {}..{}",
                    short(&target),
                    short(&target),
                    short(&head)
                );
                for line in describe(&changes) {
                    message.push_str(&format!("\n{line}"));
                }
                Ok(RollbackPlan {
                    branch: branch.to_string(),
                    head,
                    to: Some(target),
                    changes,
                    files,
                    message,
                    values_text: None,
                })
            }
            RollbackTo::Versions(bumps) => {
                if bumps.is_empty() {
                    return Err(Error::Input("no APP=VERSION given".into()));
                }
                let text = self.git.show_file(&head, &self.values_file)?;
                if let Some(b) = bumps.iter().find(|b| b.add_image.is_some()) {
                    return Err(Error::Input(format!(
                        "{}: a rollback never adds an app",
                        b.app
                    )));
                }
                let file = std::path::PathBuf::from(format!("{remote_ref}:{}", self.values_file));
                let edit = values::edit_values(&file, &text, bumps)?;
                let changes: Vec<VersionChange> = edit
                    .changes
                    .iter()
                    .map(|c| (c.key.clone(), c.from.clone(), Some(c.to.clone())))
                    .collect();
                if changes.is_empty() {
                    return Err(Error::Input(format!(
                        "{branch} already has these versions: nothing to roll back"
                    )));
                }
                let lines = describe(&changes);
                let message = format!("Rollback {branch}: {}", lines.join(", "));
                Ok(RollbackPlan {
                    branch: branch.to_string(),
                    head,
                    to: None,
                    files: Vec::new(),
                    changes,
                    message,
                    values_text: Some(edit.text),
                })
            }
        }
    }

    /// Commits a planned rollback on top of the branch's head and pushes it
    /// (fast-forward only). Returns the new commit.
    pub fn push_rollback(&self, plan: &RollbackPlan) -> Result<String, Error> {
        let new = self.in_worktree("swh-deploy-rollback-", &plan.head, |wt, tree| {
            if let Some(to) = &plan.to {
                tree.run(&["read-tree", "-u", "--reset", to])?;
            }
            if let Some(text) = &plan.values_text {
                crate::atomic_write(&wt.join(&self.values_file), text.as_bytes())?;
                tree.run(&["add", "--", &self.values_file])?;
            }
            tree.run(&["commit", "-q", "--allow-empty", "-m", &plan.message])?;
            Ok(tree.run(&["rev-parse", "HEAD"])?)
        })?;
        let refspec = format!("{new}:refs/heads/{}", plan.branch);
        self.git.run(&["push", "-q", &self.remote, &refspec])?;
        Ok(new)
    }
}
