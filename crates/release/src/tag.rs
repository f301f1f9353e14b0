//! "Tag and push": checks, then a plan of exact git commands, then the
//! steps.
//!
//! [`plan`] runs only read-only git commands (and `git fetch REMOTE`, which
//! updates remote-tracking branches only) and refuses, naming what to do,
//! when the work tree has uncommitted changes, HEAD is detached or not on the
//! remote, the tag already exists, or the version is not greater than the
//! newest release tag. The resulting [`TagPlan`] lists the commands
//! ([`TagPlan::steps`]): `git tag -a [-s|--no-sign] -m MESSAGE TAG COMMIT`
//! then `git push REMOTE refs/tags/TAG:refs/tags/TAG` (exactly the tag, so
//! no other local tag leaves with it, unlike `--follow-tags`). A tag left
//! by a run whose push failed (annotated, at HEAD, not on the remote) is
//! taken up again: the plan is then only the push.

use crate::{Error, Module, ReleaseVersion};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use swh_deploy_charts::git::Git;

/// What the caller asks for.
#[derive(Debug, Clone)]
pub struct TagOptions {
    /// The module's work tree.
    pub repo: PathBuf,
    /// The remote to check against and push to (`origin`).
    pub remote: String,
    /// `Some(true)`: sign (`-s`); `Some(false)`: do not (`--no-sign`);
    /// `None`: sign when git config says so (`tag.gpgSign` true or
    /// `user.signingkey` set).
    pub sign: Option<bool>,
    /// The tag message (default `Release vX.Y.Z`).
    pub message: Option<String>,
    /// Push the tag (false: only create it).
    pub push: bool,
}

impl TagOptions {
    /// Options for `repo` with the defaults: remote `origin`, signing as
    /// git config says, default message, push.
    pub fn new(repo: &Path) -> TagOptions {
        TagOptions {
            repo: repo.to_path_buf(),
            remote: "origin".to_string(),
            sign: None,
            message: None,
            push: true,
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// `git tag -a ...`
    Tag,
    /// `git push REMOTE refs/tags/TAG...`
    Push,
}

impl StepKind {
    /// `tag` or `push` (journal step names).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Tag => "tag",
            StepKind::Push => "push",
        }
    }
}

/// One git command of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitStep {
    /// What it does.
    pub kind: StepKind,
    /// The arguments after `git -C REPO`.
    pub args: Vec<String>,
}

/// Where the release stands when the plan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagState {
    /// No tag yet: create it (and push it).
    Create,
    /// The tag already exists locally at HEAD (an earlier run's push
    /// failed): only push it.
    PushOnly,
}

/// A checked plan for tagging and pushing one release.
#[derive(Debug, Clone)]
pub struct TagPlan {
    /// The module released, when known (see [`module_of`]).
    pub module: Option<Module>,
    /// The release version.
    pub version: ReleaseVersion,
    /// The tag name (`v1.2.0`).
    pub tag: String,
    /// The work tree.
    pub repo: PathBuf,
    /// The branch HEAD is on.
    pub branch: String,
    /// The commit the tag points to (HEAD).
    pub commit: String,
    /// The remote name.
    pub remote: String,
    /// The remote's URL (as configured; shown, never holding credentials
    /// from swh-deploy).
    pub remote_url: String,
    /// Remote-tracking branches that contain HEAD (`origin/master`).
    pub on_remote: Vec<String>,
    /// The newest release tag before this one, if any.
    pub newest: Option<String>,
    /// Whether the tag is signed.
    pub sign: bool,
    /// The tag message.
    pub message: String,
    /// Create and push, or only push.
    pub state: TagState,
    /// The git commands to run, in order.
    pub steps: Vec<GitStep>,
}

impl TagPlan {
    /// A step as a shell-quoted command line: `git -C DIR tag -a ...`.
    pub fn command_line(&self, step: &GitStep) -> String {
        let mut words: Vec<String> = vec![
            "git".into(),
            "-C".into(),
            self.repo.to_string_lossy().into_owned(),
        ];
        words.extend(step.args.iter().cloned());
        shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| format!("{words:?}"))
    }
}

fn refused(msg: impl Into<String>) -> Error {
    Error::Refused(msg.into())
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The value of a git config key, if set.
fn config(git: &Git, key: &str) -> Option<String> {
    git.run(&["config", "--get", key])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether git config asks for signed tags: `tag.gpgSign` true, or
/// `user.signingkey` set.
pub fn config_wants_signing(repo: &Path) -> bool {
    let git = Git::new(repo);
    let gpg_sign = git
        .run(&["config", "--type=bool", "--get", "tag.gpgSign"])
        .map(|s| s.trim() == "true")
        .unwrap_or(false);
    gpg_sign || config(&git, "user.signingkey").is_some()
}

/// The tags on `remote` (`git ls-remote --tags`): name -> object id (of the
/// tag object for annotated tags).
pub fn remote_tags(repo: &Path, remote: &str) -> Result<BTreeMap<String, String>, Error> {
    let git = Git::new(repo);
    let out = git
        .run(&["ls-remote", "--tags", remote])
        .map_err(|e| Error::Git(format!("cannot list the tags of {remote}: {e}")))?;
    let mut tags = BTreeMap::new();
    for line in out.lines() {
        let Some((id, name)) = line.split_once('\t') else {
            continue;
        };
        let Some(name) = name.strip_prefix("refs/tags/") else {
            continue;
        };
        if name.ends_with("^{}") {
            continue;
        }
        tags.insert(name.to_string(), id.to_string());
    }
    Ok(tags)
}

/// The local tags of `repo`.
pub fn local_tags(repo: &Path) -> Result<Vec<String>, Error> {
    let out = Git::new(repo).run(&["for-each-ref", "--format=%(refname:short)", "refs/tags/"])?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The newest release tag (by [`ReleaseVersion`] order) among `tags`;
/// tags that are not release versions are ignored.
pub fn newest_release<'a>(
    tags: impl IntoIterator<Item = &'a str>,
) -> Option<(String, ReleaseVersion)> {
    tags.into_iter()
        .filter(|t| t.starts_with('v'))
        .filter_map(|t| ReleaseVersion::parse(t).ok().map(|v| (t.to_string(), v)))
        .max_by(|a, b| a.1.cmp(&b.1))
}

/// The next patch version after `v` (a suggestion in error messages).
fn next_patch(v: &ReleaseVersion) -> String {
    let mut r = v.release().to_vec();
    if v.pre().is_none() {
        if let Some(last) = r.last_mut() {
            *last += 1;
        }
    }
    let s: Vec<String> = r.iter().map(u64::to_string).collect();
    format!("v{}", s.join("."))
}

/// The module a work tree releases: the `name` of `[project]` in its
/// `pyproject.toml`, else the last component of the remote URL when it
/// looks like a swh module (`.../swh-loader-git.git` -> `swh.loader.git`).
pub fn module_of(repo: &Path, remote_url: &str) -> Option<Module> {
    if let Ok(text) = std::fs::read_to_string(repo.join("pyproject.toml")) {
        let mut in_project = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_project = line == "[project]";
            } else if in_project {
                if let Some((key, value)) = line.split_once('=') {
                    if key.trim() == "name" {
                        let name = value.trim().trim_matches(|c| c == '"' || c == '\'');
                        if let Ok(m) = Module::parse(name) {
                            return Some(m);
                        }
                    }
                }
            }
        }
    }
    let last = remote_url.trim_end_matches('/').rsplit(['/', ':']).next()?;
    let last = last.strip_suffix(".git").unwrap_or(last);
    Module::parse(last)
        .ok()
        .filter(|m| m.dotted().starts_with("swh."))
}

/// Checks the repository and builds the plan (see the module doc). Runs
/// `git fetch REMOTE` (remote-tracking branches only, no tags) and `git
/// ls-remote --tags REMOTE`; changes nothing else.
pub fn plan(version: &ReleaseVersion, opts: &TagOptions) -> Result<TagPlan, Error> {
    let repo = opts
        .repo
        .canonicalize()
        .unwrap_or_else(|_| opts.repo.clone());
    let dir = repo.display().to_string();
    let git = Git::new(&repo);
    let tag = version.tag_name();
    let remote = &opts.remote;

    if !repo.is_dir() || !git.succeeds(&["rev-parse", "--is-inside-work-tree"])? {
        return Err(refused(format!(
            "{dir} is not a git work tree: give the module's checkout with --repo DIR"
        )));
    }
    if remote.is_empty() || remote.starts_with('-') {
        return Err(refused(format!(
            "invalid remote name {remote:?}: give --remote NAME"
        )));
    }
    let remote_url = git.run(&["remote", "get-url", remote]).map_err(|_| {
        refused(format!(
            "{dir} has no remote {remote:?}: give --remote NAME (`git -C {dir} remote -v` lists them)"
        ))
    })?;
    let commit = git
        .run(&["rev-parse", "--verify", "HEAD^{commit}"])
        .map_err(|_| refused(format!("{dir} has no commit yet: nothing to release")))?;
    let branch = match git.run(&["symbolic-ref", "-q", "--short", "HEAD"]) {
        Ok(b) if !b.is_empty() => b,
        _ => {
            return Err(refused(format!(
                "HEAD is detached at {} in {dir}: check out the branch to release from (e.g. `git -C {dir} switch master`)",
                short(&commit)
            )))
        }
    };
    let status = git.run(&["status", "--porcelain", "--untracked-files=no"])?;
    if !status.trim().is_empty() {
        let changed: Vec<&str> = status.lines().take(5).map(str::trim).collect();
        return Err(refused(format!(
            "the work tree {dir} has uncommitted changes ({}{}): commit (and land) or stash them first; a release tags a committed, pushed state",
            changed.join(", "),
            if status.lines().count() > 5 { ", ..." } else { "" }
        )));
    }
    git.run(&["fetch", "--quiet", "--no-tags", remote])
        .map_err(|e| Error::Git(format!("cannot fetch {remote} ({remote_url}): {e}")))?;
    let prefix = format!("refs/remotes/{remote}/");
    let containing = git.run(&[
        "for-each-ref",
        "--format=%(refname:short)",
        "--contains",
        &commit,
        &prefix,
    ])?;
    let on_remote: Vec<String> = containing
        .lines()
        .filter(|l| !l.ends_with("/HEAD"))
        .map(str::to_string)
        .collect();
    if on_remote.is_empty() {
        return Err(refused(format!(
            "HEAD {} of branch {branch} is not on {remote} ({remote_url}): push the branch first (`git -C {dir} push {remote} {branch}`, after review); a release tag must point to a published commit",
            short(&commit)
        )));
    }

    let remote_tags = remote_tags(&repo, remote)?;
    if remote_tags.contains_key(&tag) {
        return Err(Error::AlreadyReleased {
            tag,
            version: version.to_string(),
            remote: remote.clone(),
            remote_url,
        });
    }
    let local = local_tags(&repo)?;
    let mut state = TagState::Create;
    if local.contains(&tag) {
        let full = format!("refs/tags/{tag}");
        let kind = git.run(&["cat-file", "-t", &full])?;
        let target = git.run(&["rev-parse", "--verify", &format!("{full}^{{commit}}")])?;
        if kind.trim() == "tag" && target == commit {
            state = TagState::PushOnly;
        } else {
            let what = if kind.trim() == "tag" {
                format!("on {} (not HEAD {})", short(&target), short(&commit))
            } else {
                format!("as a lightweight tag on {}", short(&target))
            };
            return Err(refused(format!(
                "tag {tag} already exists locally {what} and not on {remote}: delete it if it is a mistake (`git -C {dir} tag -d {tag}`) or release another version"
            )));
        }
    }
    let newest = newest_release(
        local
            .iter()
            .map(String::as_str)
            .chain(remote_tags.keys().map(String::as_str))
            .filter(|t| *t != tag),
    );
    if let Some((newest_tag, newest_version)) = &newest {
        if version <= newest_version {
            return Err(refused(format!(
                "{tag} is not greater than the newest release tag {newest_tag}: release a greater version (e.g. {})",
                next_patch(newest_version)
            )));
        }
    }

    let sign = opts.sign.unwrap_or_else(|| config_wants_signing(&repo));
    let message = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("Release {tag}"));
    if message.trim().is_empty() {
        return Err(refused("the tag message is empty: give --message TEXT"));
    }
    let mut steps = Vec::new();
    if state == TagState::Create {
        steps.push(GitStep {
            kind: StepKind::Tag,
            args: vec![
                "tag".into(),
                "-a".into(),
                if sign { "-s" } else { "--no-sign" }.into(),
                "-m".into(),
                message.clone(),
                tag.clone(),
                commit.clone(),
            ],
        });
    }
    if opts.push {
        steps.push(GitStep {
            kind: StepKind::Push,
            args: vec![
                "push".into(),
                remote.clone(),
                format!("refs/tags/{tag}:refs/tags/{tag}"),
            ],
        });
    }
    let module = module_of(&repo, &remote_url);
    Ok(TagPlan {
        module,
        version: version.clone(),
        tag,
        repo,
        branch,
        commit,
        remote: remote.clone(),
        remote_url,
        on_remote,
        newest: newest.map(|(t, _)| t),
        sign,
        message,
        state,
        steps,
    })
}

/// Runs one step of the plan. A failed push is [`Error::PushFailed`] (the
/// tag exists locally; re-running the same command only pushes it); after
/// a push, checks that the remote holds the same tag object.
pub fn run_step(plan: &TagPlan, step: &GitStep) -> Result<(), Error> {
    let git = Git::new(&plan.repo);
    let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
    match step.kind {
        StepKind::Tag => {
            git.run(&args).map_err(|e| {
                Error::Git(format!(
                    "creating tag {} failed (nothing was created{}): {e}",
                    plan.tag,
                    if plan.sign {
                        "; signing needs your gpg/ssh signing key: check `git config user.signingkey`, or use --no-sign"
                    } else {
                        ""
                    }
                ))
            })?;
            Ok(())
        }
        StepKind::Push => {
            let push_failed = |detail: String| Error::PushFailed {
                tag: plan.tag.clone(),
                commit: plan.commit.clone(),
                remote: plan.remote.clone(),
                detail,
            };
            git.run(&args).map_err(|e| push_failed(e.to_string()))?;
            let local = git.run(&["rev-parse", "--verify", &format!("refs/tags/{}", plan.tag)])?;
            let remote = remote_tags(&plan.repo, &plan.remote)?;
            match remote.get(&plan.tag) {
                Some(id) if *id == local => Ok(()),
                Some(id) => Err(push_failed(format!(
                    "{} holds {} as {id}, not the local tag object {local}",
                    plan.remote, plan.tag
                ))),
                None => Err(push_failed(format!(
                    "the push succeeded but `git ls-remote --tags {}` does not list {}",
                    plan.remote, plan.tag
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_from_pyproject_then_remote() {
        let dir = tempfile::tempdir().unwrap();
        let url = "git@gitlab.softwareheritage.org:swh/devel/swh-loader-git.git";
        assert_eq!(
            module_of(dir.path(), url).unwrap().dotted(),
            "swh.loader.git"
        );
        assert!(module_of(dir.path(), "/srv/git/other.git").is_none());
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[build-system]\nname = \"x\"\n[project]\nname = \"swh.storage\"\n",
        )
        .unwrap();
        assert_eq!(module_of(dir.path(), url).unwrap().dotted(), "swh.storage");
    }

    #[test]
    fn newest_release_ignores_other_tags() {
        let tags = [
            "v1.1.0",
            "v1.10.0rc1",
            "debian/1.2-1",
            "v1.9.0",
            "swh-lister-20250113.1",
        ];
        let (tag, _) = newest_release(tags).unwrap();
        assert_eq!(tag, "v1.10.0rc1");
        assert_eq!(
            next_patch(&ReleaseVersion::parse("1.1.0").unwrap()),
            "v1.1.1"
        );
    }
}
