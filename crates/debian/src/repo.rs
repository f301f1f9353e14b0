//! A packaging repository: plan and apply a changelog entry, plan, create
//! and push the DEP-14 tag of the top entry.

use crate::changelog::{
    check_distribution, check_version_distribution, next_version, packaging_branch, Changelog,
    Entry, Maintainer, NewEntry,
};
use crate::dep14::dep14_tag;
use crate::DebianVersion;
use crate::Error;
use std::path::{Path, PathBuf};
use swh_deploy_charts::atomic_write;
use swh_deploy_charts::git::Git;

/// The changelog's path inside the repository.
pub const CHANGELOG: &str = "debian/changelog";

/// A git work tree holding `debian/changelog`.
#[derive(Debug, Clone)]
pub struct PackagingRepo {
    git: Git,
    dir: PathBuf,
}

/// What `debian changelog` is asked to do.
#[derive(Debug, Clone)]
pub struct ChangelogRequest {
    /// The new version; `None` bumps the current one ([`next_version`]).
    pub version: Option<DebianVersion>,
    /// The distribution; `None` keeps the current entry's.
    pub distribution: Option<String>,
    /// One change item per message (at least one).
    pub messages: Vec<String>,
    /// The trailer's maintainer.
    pub maintainer: Maintainer,
    /// The trailer's date (RFC 2822).
    pub date: String,
}

/// A planned changelog entry: the file before and after.
#[derive(Debug, Clone)]
pub struct ChangelogPlan {
    /// The current top entry.
    pub current: Entry,
    /// The entry to add.
    pub entry: NewEntry,
    /// The file's current text.
    pub old_text: String,
    /// The file's text with the entry on top.
    pub new_text: String,
}

impl ChangelogPlan {
    /// The change as a unified diff (`--- a/debian/changelog`, the new lines,
    /// up to three lines of context), appliable with `git apply`.
    pub fn diff(&self) -> String {
        let added = self.entry.render();
        let added: Vec<&str> = added.lines().collect();
        let old: Vec<&str> = self.old_text.lines().collect();
        let ctx = old.len().min(3);
        let mut s = format!("--- a/{CHANGELOG}\n+++ b/{CHANGELOG}\n");
        if ctx == 0 {
            s.push_str(&format!("@@ -0,0 +1,{} @@\n", added.len()));
        } else {
            s.push_str(&format!("@@ -1,{ctx} +1,{} @@\n", added.len() + ctx));
        }
        for l in &added {
            s.push('+');
            s.push_str(l);
            s.push('\n');
        }
        for l in &old[..ctx] {
            s.push(' ');
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The commit message of `--commit`: the title swh's Jenkins jobs give
    /// their changelog commits (`Updated debian changelog for version
    /// <version>`, swh-jenkins-jobs `update-for-release`), then the change
    /// items.
    pub fn commit_message(&self) -> String {
        let mut m = format!(
            "Updated debian changelog for version {}\n\n",
            self.entry.version
        );
        for item in &self.entry.messages {
            m.push_str(&format!("* {}\n", item.trim()));
        }
        m
    }
}

/// Where the DEP-14 tag of the top entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagState {
    /// Neither local nor remote: create it, then push.
    Create,
    /// Exists locally on HEAD, not on the remote (an earlier push failed):
    /// push it.
    Push,
    /// Exists locally and on the remote, the same tag object: nothing to do.
    Done,
}

/// The DEP-14 tag of the top changelog entry, checked against the
/// repository.
#[derive(Debug, Clone)]
pub struct TagPlan {
    /// Source package.
    pub source: String,
    /// Version of the top entry.
    pub version: DebianVersion,
    /// Distribution of the top entry.
    pub distribution: String,
    /// The packaging branch HEAD is on.
    pub branch: String,
    /// The tag, `debian/<mangled version>`.
    pub tag: String,
    /// The annotation, gbp's `<source> Debian release <version>`.
    pub message: String,
    /// The commit to tag (HEAD).
    pub head: String,
    /// The remote to push to.
    pub remote: String,
    /// What is left to do.
    pub state: TagState,
}

fn check_remote(remote: &str) -> Result<(), Error> {
    if remote.is_empty()
        || remote.starts_with('-')
        || remote.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Refused(format!("invalid remote name {remote:?}")));
    }
    Ok(())
}

impl PackagingRepo {
    /// The packaging repository at `dir` (must contain `debian/changelog`).
    pub fn open(dir: &Path) -> Result<PackagingRepo, Error> {
        let path = dir.join(CHANGELOG);
        if !path.is_file() {
            return Err(Error::Refused(format!(
                "{} does not exist: is {} a packaging repository (branch debian/unstable-swh)?",
                path.display(),
                dir.display()
            )));
        }
        Ok(PackagingRepo {
            git: Git::new(dir),
            dir: dir.to_path_buf(),
        })
    }

    /// The work tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The git runner of this work tree.
    pub fn git(&self) -> &Git {
        &self.git
    }

    /// `debian/changelog`'s path.
    pub fn changelog_path(&self) -> PathBuf {
        self.dir.join(CHANGELOG)
    }

    /// Reads and parses `debian/changelog`.
    pub fn changelog(&self) -> Result<Changelog, Error> {
        Changelog::load(&self.changelog_path())
    }

    /// `git config KEY` in this repository, if set.
    pub fn git_config(&self, key: &str) -> Option<String> {
        self.git
            .run(&["config", "--get", key])
            .ok()
            .filter(|v| !v.is_empty())
    }

    /// The maintainer from the environment, then this repository's git
    /// configuration ([`Maintainer::resolve`]).
    pub fn maintainer(&self) -> Result<Maintainer, Error> {
        Maintainer::resolve(|k| std::env::var(k).ok(), |k| self.git_config(k))
    }

    /// The checked-out branch (`None` when HEAD is detached).
    pub fn current_branch(&self) -> Result<Option<String>, Error> {
        if self
            .git
            .succeeds(&["symbolic-ref", "-q", "--short", "HEAD"])?
        {
            Ok(Some(self.git.run(&[
                "symbolic-ref",
                "-q",
                "--short",
                "HEAD",
            ])?))
        } else {
            Ok(None)
        }
    }

    /// Refuses unless HEAD is on `debian/<distribution>`.
    pub fn check_branch(&self, distribution: &str) -> Result<String, Error> {
        let want = packaging_branch(distribution);
        match self.current_branch()? {
            Some(b) if b == want => Ok(b),
            Some(b) => Err(Error::Refused(format!(
                "HEAD is on branch {b}, not on the packaging branch {want} of distribution {distribution} (git checkout {want})"
            ))),
            None => Err(Error::Refused(format!(
                "HEAD is detached, not on the packaging branch {want} (git checkout {want})"
            ))),
        }
    }

    /// Refuses when the work tree has changes or untracked files (as gbp
    /// does without --git-ignore-new), naming them.
    pub fn check_clean(&self) -> Result<(), Error> {
        let status = self.git.run(&["status", "--porcelain"])?;
        if !status.trim().is_empty() {
            let files: Vec<&str> = status.lines().take(10).collect();
            return Err(Error::Refused(format!(
                "the work tree of {} is not clean (commit or remove these first):\n{}",
                self.dir.display(),
                files.join("\n")
            )));
        }
        Ok(())
    }

    /// Plans a new changelog entry; refuses a version that is not greater
    /// than the current one (except the first backport `<current>~bpoK+1`
    /// of the current version, which dpkg sorts lower) or does not match
    /// the distribution.
    pub fn plan_changelog(&self, req: &ChangelogRequest) -> Result<ChangelogPlan, Error> {
        let cl = self.changelog()?;
        let current = cl.top.clone();
        if req.messages.iter().all(|m| m.trim().is_empty()) {
            return Err(Error::Refused(
                "no change to describe: give at least one --message".into(),
            ));
        }
        let version = match &req.version {
            Some(v) => v.clone(),
            None => next_version(&current.version)?,
        };
        if version <= current.version && !is_backport_of(&version, &current.version) {
            return Err(Error::Version(format!(
                "version {version} is not greater than the current version {} ({}:{})",
                current.version,
                cl.path.display(),
                current.line
            )));
        }
        let distribution = req
            .distribution
            .clone()
            .unwrap_or_else(|| current.distribution().to_string());
        check_distribution(&distribution)?;
        check_version_distribution(&version, &distribution)?;
        let entry = NewEntry {
            source: current.source.clone(),
            version,
            distribution,
            urgency: "medium".into(),
            messages: req
                .messages
                .iter()
                .filter(|m| !m.trim().is_empty())
                .cloned()
                .collect(),
            maintainer: req.maintainer.clone(),
            date: req.date.clone(),
        };
        let new_text = cl.with_entry(&entry);
        Ok(ChangelogPlan {
            current,
            entry,
            old_text: cl.text,
            new_text,
        })
    }

    /// Writes the planned changelog atomically. Refuses if the file changed
    /// since it was planned.
    pub fn write_changelog(&self, plan: &ChangelogPlan) -> Result<(), Error> {
        let path = self.changelog_path();
        let now = std::fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
        if now != plan.old_text {
            return Err(Error::Refused(format!(
                "{} changed since it was read; run again",
                path.display()
            )));
        }
        Ok(atomic_write(&path, plan.new_text.as_bytes())?)
    }

    /// Commits `debian/changelog` (with whatever else is staged, e.g. the
    /// `debian/control` fix) on the packaging branch of the new entry;
    /// returns the commit. The branch is checked before anything is written
    /// by [`PackagingRepo::apply_changelog`].
    fn commit_changelog(&self, plan: &ChangelogPlan) -> Result<String, Error> {
        self.git.run(&["add", "--", CHANGELOG])?;
        self.git
            .run(&["commit", "-q", "-m", &plan.commit_message()])?;
        Ok(self.git.run(&["rev-parse", "HEAD"])?)
    }

    /// Checks that `--commit` can commit the entry: HEAD on the entry's
    /// packaging branch, `debian/changelog` without uncommitted changes (so
    /// a failed commit can put everything back exactly).
    pub fn check_commit(&self, plan: &ChangelogPlan) -> Result<(), Error> {
        self.check_branch(&plan.entry.distribution)?;
        if !self
            .git
            .succeeds(&["diff", "--quiet", "HEAD", "--", CHANGELOG])?
        {
            return Err(Error::Refused(format!(
                "{CHANGELOG} has uncommitted changes: commit or discard them, or run without --commit"
            )));
        }
        Ok(())
    }

    /// Writes the entry and, with `commit`, commits it (HEAD must be on the
    /// entry's packaging branch, checked before writing). If the commit
    /// fails the file is put back as it was.
    pub fn apply_changelog(
        &self,
        plan: &ChangelogPlan,
        commit: bool,
    ) -> Result<Option<String>, Error> {
        if commit {
            self.check_commit(plan)?;
        }
        self.write_changelog(plan)?;
        if !commit {
            return Ok(None);
        }
        match self.commit_changelog(plan) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                let _ = self.git.run(&["reset", "-q", "--", CHANGELOG]);
                let path = self.changelog_path();
                if let Err(w) = atomic_write(&path, plan.old_text.as_bytes()) {
                    return Err(Error::Git(format!(
                        "{e}; and putting {} back failed: {w}",
                        path.display()
                    )));
                }
                Err(e)
            }
        }
    }

    /// The tag object or commit a local tag names, if the tag exists.
    fn local_tag(&self, tag: &str) -> Result<Option<String>, Error> {
        let r = format!("refs/tags/{tag}");
        if self.git.succeeds(&["rev-parse", "-q", "--verify", &r])? {
            Ok(Some(self.git.run(&["rev-parse", "-q", "--verify", &r])?))
        } else {
            Ok(None)
        }
    }

    /// The object a tag names on `remote`, if it exists there.
    pub fn remote_tag(&self, remote: &str, tag: &str) -> Result<Option<String>, Error> {
        check_remote(remote)?;
        let r = format!("refs/tags/{tag}");
        let out = self
            .git
            .run(&["ls-remote", "--tags", remote, &r])
            .map_err(|e| Error::Git(format!("cannot list the tags of remote {remote}: {e}")))?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(_, name)| *name == r)
            .map(|(oid, _)| oid.to_string()))
    }

    /// Checks the repository for tagging the top entry (packaging branch,
    /// clean tree, committed changelog, distribution, the remote branch not
    /// ahead of HEAD) and finds where its tag stands locally and on
    /// `remote`.
    pub fn plan_tag(&self, remote: &str) -> Result<TagPlan, Error> {
        check_remote(remote)?;
        let cl = self.changelog()?;
        let top = &cl.top;
        let distribution = top.distribution().to_string();
        check_distribution(&distribution)?;
        check_version_distribution(&top.version, &distribution)?;
        let branch = self.check_branch(&distribution)?;
        if !self
            .git
            .succeeds(&["ls-files", "--error-unmatch", "--", CHANGELOG])?
        {
            return Err(Error::Refused(format!(
                "{CHANGELOG} is not committed (git add {CHANGELOG}; git commit)"
            )));
        }
        self.check_clean()?;
        let committed = self.git.show_file("HEAD", CHANGELOG)?;
        if committed.trim_end() != cl.text.trim_end() {
            return Err(Error::Refused(format!(
                "the {CHANGELOG} entry {} is not committed",
                top.version
            )));
        }
        let head = self.git.run(&["rev-parse", "HEAD"])?;
        let tag = dep14_tag(&top.version);
        let local = self.local_tag(&tag)?;
        let remote_oid = self.remote_tag(remote, &tag)?;
        let state = match (&local, &remote_oid) {
            (None, None) => TagState::Create,
            (None, Some(r)) => {
                return Err(Error::Tag(format!(
                    "tag {tag} already exists on remote {remote} ({r}) but not here: fetch it (git fetch {remote} tag {tag}) or release a new version"
                )))
            }
            (Some(l), remote_oid) => {
                let kind = self.git.run(&["cat-file", "-t", l])?;
                let target = self.git.run(&["rev-parse", &format!("{l}^{{commit}}")])?;
                if kind != "tag" || target != head {
                    return Err(Error::Tag(format!(
                        "tag {tag} already exists and {} (git show {tag}); release a new version instead, or, if that tag was never pushed, delete it (git tag -d {tag})",
                        if kind != "tag" {
                            "is not annotated".to_string()
                        } else {
                            format!("points at {}, not at HEAD {}", short(&target), short(&head))
                        }
                    )));
                }
                match remote_oid {
                    None => TagState::Push,
                    Some(r) if r == l => TagState::Done,
                    Some(r) => {
                        return Err(Error::Tag(format!(
                            "tag {tag} differs here ({}) and on remote {remote} ({})",
                            short(l),
                            short(r)
                        )))
                    }
                }
            }
        };
        if state != TagState::Done {
            self.check_remote_branch(remote, &branch, &head)?;
        }
        Ok(TagPlan {
            source: top.source.clone(),
            version: top.version.clone(),
            distribution,
            branch,
            message: format!("{} Debian release {}", top.source, top.version),
            tag,
            head,
            remote: remote.to_string(),
            state,
        })
    }

    /// Refuses when `remote`'s `branch` has commits HEAD does not contain
    /// (someone pushed meanwhile): the push would be rejected and the tag
    /// would be on a commit that a rebase leaves behind.
    fn check_remote_branch(&self, remote: &str, branch: &str, head: &str) -> Result<(), Error> {
        let r = format!("refs/heads/{branch}");
        let out = self
            .git
            .run(&["ls-remote", "--heads", remote, &r])
            .map_err(|e| Error::Git(format!("cannot list the branches of remote {remote}: {e}")))?;
        let Some(oid) = out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(_, name)| *name == r)
            .map(|(oid, _)| oid.to_string())
        else {
            return Ok(());
        };
        if oid == head
            || self
                .git
                .succeeds(&["merge-base", "--is-ancestor", &oid, head])?
        {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "{branch} on remote {remote} is at {}, which HEAD does not contain: get it first (git pull --rebase {remote} {branch}), then run again",
            short(&oid)
        )))
    }

    /// Creates the annotated tag of `plan` on HEAD: signed with
    /// `sign = Some(true)`, unsigned with `Some(false)`, as git's
    /// `tag.gpgSign` says with `None`. Returns whether the tag is signed.
    pub fn create_tag(&self, plan: &TagPlan, sign: Option<bool>) -> Result<bool, Error> {
        let mut args = vec!["tag", "-a"];
        match sign {
            Some(true) => args.push("-s"),
            Some(false) => args.push("--no-sign"),
            None => {}
        }
        args.extend(["-m", &plan.message, &plan.tag, &plan.head]);
        self.git.run(&args)?;
        self.tag_is_signed(&plan.tag)
    }

    /// Whether a local annotated tag carries a signature (gpg or ssh).
    pub fn tag_is_signed(&self, tag: &str) -> Result<bool, Error> {
        let body = self
            .git
            .run(&["cat-file", "tag", &format!("refs/tags/{tag}")])?;
        Ok(body.contains("-----BEGIN PGP SIGNATURE-----")
            || body.contains("-----BEGIN SSH SIGNATURE-----"))
    }

    /// Pushes the packaging branch and the tag to the remote in one atomic
    /// push with `--follow-tags` (as the runbook's `git push origin
    /// --follow-tags`), then checks that the remote has the tag.
    pub fn push_tag(&self, plan: &TagPlan) -> Result<(), Error> {
        let branch = format!("refs/heads/{0}:refs/heads/{0}", plan.branch);
        let tag = format!("refs/tags/{0}:refs/tags/{0}", plan.tag);
        self.git.run(&[
            "push",
            "--atomic",
            "--follow-tags",
            &plan.remote,
            &branch,
            &tag,
        ])?;
        let local = self.local_tag(&plan.tag)?;
        let remote = self.remote_tag(&plan.remote, &plan.tag)?;
        if local.is_none() || local != remote {
            return Err(Error::Git(format!(
                "pushed, but remote {} does not have tag {} as here",
                plan.remote, plan.tag
            )));
        }
        Ok(())
    }
}

/// Whether `v` is the first backport of `of` (`of~bpoK+1`, as `dch --bpo`
/// makes): the one version allowed to sort below the current entry.
pub fn is_backport_of(v: &DebianVersion, of: &DebianVersion) -> bool {
    crate::changelog::BACKPORTS
        .iter()
        .any(|(k, _)| v.as_str() == format!("{of}~bpo{k}+1"))
}

fn short(oid: &str) -> &str {
    &oid[..oid.len().min(12)]
}
