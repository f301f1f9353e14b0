//! swh-charts: the Helm chart side of Software Heritage's elastic deployment.
//!
//! # Model
//! All image versions of all environments live in one flat YAML file of the
//! swh-charts repository, [`values::VALUES_FILE`]: `<key>_image: <ref>` and
//! `<key>_image_version: '<YYYYMMDD.N>'` per app, where the key is the swh-apps
//! directory with `-` -> `_`. Each release commit also bumps the integer
//! `appVersion` of [`values::CHART_FILE`]. Environments are branches:
//! `swh-next-version` -> `staging` -> `production` ([`Env`]); Argo CD deploys
//! whatever is pushed to `staging` and `production`.
//!
//! Edits are format preserving: [`yaml`] parses the file with a real YAML
//! parser to locate each key, rewrites only the value token on that key's
//! line, re-parses the result and checks that nothing but the intended keys
//! changed. A file that is not exactly understood (duplicate keys, anchors,
//! aliases, multi-line values on edited keys, syntax errors) is refused with
//! `file:line:column` and left untouched; writes are atomic.
//!
//! [`ChartsRepo`] carries the git side with the system `git`: [`ChartsRepo::bump`]
//! (edit, commit `v<appVersion>: Release ...`, push), [`ChartsRepo::promote`]
//! (fast-forward only) and [`ChartsRepo::show`].

pub mod bump_run;
pub mod enable;
pub mod env_rollback;
pub mod git;
pub mod gitlab;
pub mod image_check;
pub mod images;
pub mod long_migrate;
pub mod promotion;
pub mod rollback;
pub mod values;
pub mod yaml;

use git::Git;
pub use promotion::{promote, PromoteError, PromoteEvent, PromoteRequest, Promoted};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use values::{Bump, Change, CHART_FILE, VALUES_FILE};

/// Errors of the charts crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A YAML file could not be read or edited safely.
    #[error("{}:{pos}: {message}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// Where in it.
        pos: yaml::Pos,
        /// What is wrong.
        message: String,
    },
    /// Bad input from the user.
    #[error("{0}")]
    Input(String),
    /// An external command failed.
    #[error("{0}")]
    Command(String),
    /// A refused promotion or an unsafe repository state.
    #[error("{0}")]
    Refused(String),
    /// I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed)
    /// (bad input, a refusal, a failed command).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over `path` (keeping its permissions), fsync of
/// the directory.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<(), Error> {
    // The one implementation, in swh-deploy-util.
    swh_deploy_util::atomic_write(path, data).map_err(|e| Error::Io {
        path: e.path,
        source: e.source,
    })
}

/// The environment branches, in promotion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// `swh-next-version`, where release commits land.
    NextVersion,
    /// `staging`.
    Staging,
    /// `production`.
    Production,
}

impl Env {
    /// All environments in promotion order.
    pub const ALL: [Env; 3] = [Env::NextVersion, Env::Staging, Env::Production];

    /// The git branch of the environment.
    pub fn branch(self) -> &'static str {
        match self {
            Env::NextVersion => "swh-next-version",
            Env::Staging => "staging",
            Env::Production => "production",
        }
    }

    /// The environment promoted into this one, if any.
    pub fn source(self) -> Option<Env> {
        match self {
            Env::NextVersion => None,
            Env::Staging => Some(Env::NextVersion),
            Env::Production => Some(Env::Staging),
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.branch())
    }
}

/// What `chart bump` should do.
#[derive(Debug, Clone)]
pub struct BumpRequest {
    /// The version changes.
    pub bumps: Vec<Bump>,
    /// The module release being shipped, for the commit title.
    pub module: Option<(String, String)>,
    /// The branch to commit to (default `swh-next-version`).
    pub branch: String,
    /// Push after committing.
    pub push: bool,
    /// Only compute and print the plan.
    pub dry_run: bool,
    /// A release that changes no image: no APP=VERSION, only
    /// `swh/Chart.yaml`'s appVersion + 1 and the commit `v<N>: Release
    /// <module> <version>` (needs `module`). About one real release in nine
    /// is of this kind.
    pub release_only: bool,
    /// Write the list of changed keys in the commit message's body. Off by
    /// default: SWH's automation writes the subject only.
    pub body: bool,
    /// Release-only: commit even when the branch already has a release
    /// commit for this module version (SWH's history has such repeats,
    /// e.g. v408-v410 for swh.web v0.9.4).
    pub again: bool,
    /// Open (or, when one is open, update) a GitLab merge request from the
    /// branch to this target branch with the push: git push options
    /// `-o merge_request.create -o merge_request.target=TARGET -o
    /// merge_request.title=SUBJECT`, as SWH's automation does for
    /// `swh-next-version` -> `staging`.
    pub merge_request: Option<String>,
}

/// What `chart bump` did (or would do, with `dry_run`).
#[derive(Debug, Clone)]
pub struct BumpOutcome {
    /// The version changes.
    pub changes: Vec<Change>,
    /// The new appVersion.
    pub app_version: u64,
    /// The commit message.
    pub message: String,
    /// The new commit (None in dry-run or when nothing changed).
    pub commit: Option<String>,
    /// Whether it was pushed.
    pub pushed: bool,
    /// Where added apps went in the values file (sorted position, or
    /// appended and why).
    pub notes: Vec<String>,
    /// For a release-only bump already on the branch: that commit (hash and
    /// subject); nothing is done then.
    pub already: Option<String>,
    /// A release-only bump (appVersion only, no image version).
    pub release_only: bool,
}

impl BumpOutcome {
    /// Whether there is something to commit.
    pub fn has_work(&self) -> bool {
        self.already.is_none() && (!self.changes.is_empty() || self.release_only)
    }

    /// The journal step of the bump: every changed key with its old and
    /// new version, appVersion, the commit subject, and whether it is
    /// pushed (the commit message itself has the subject only, by
    /// default).
    pub fn journal_step(&self, branch: &str, push: bool) -> String {
        let mut what: Vec<String> = self
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{} {} -> {}",
                    c.key,
                    c.from.as_deref().unwrap_or("(new)"),
                    c.to
                )
            })
            .collect();
        what.push(format!(
            "appVersion {} -> {}",
            self.app_version - 1,
            self.app_version
        ));
        format!(
            "bump {} on {branch}, commit \"{}\"{}",
            what.join(", "),
            self.message.lines().next().unwrap_or_default(),
            if push { ", push" } else { "" }
        )
    }
}

/// A bump computed by [`ChartsRepo::prepare_bump`] on an up-to-date branch,
/// not written yet: [`ChartsRepo::commit_bump`] writes, commits and pushes
/// it.
#[derive(Debug, Clone)]
pub struct PreparedBump {
    /// What the bump does.
    pub outcome: BumpOutcome,
    new_values: Option<String>,
    new_chart: String,
    branch: String,
    push: bool,
    merge_request: Option<String>,
}

/// An image version difference: app key, version before, version after
/// (None where the app is absent).
pub type VersionChange = (String, Option<String>, Option<String>);

/// What `chart promote` did.
#[derive(Debug, Clone)]
pub struct PromoteOutcome {
    /// Source branch.
    pub from: Env,
    /// Target branch.
    pub to: Env,
    /// Image version changes being promoted: key, target's version, source's.
    pub changes: Vec<VersionChange>,
    /// Commits being promoted (oneline).
    pub commits: Vec<String>,
    /// The target's new commit; None when there was nothing to promote.
    pub new_head: Option<String>,
    /// When promoting to staging, `staging` had commits `swh-next-version`
    /// lacked: `swh-next-version` rebased onto `staging` (not pushed yet;
    /// [`ChartsRepo::push_promote`] pushes it with the promotion).
    pub rebase: Option<Rebase>,
}

/// `swh-next-version` rebased onto `staging` before a promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebase {
    /// The source branch's commit before the rebase.
    pub old: String,
    /// The rebased commit (the new head of both branches once pushed).
    pub new: String,
    /// The target's commits the source lacked (oneline), which the source
    /// now sits on.
    pub onto: Vec<String>,
}

/// `chart show`: versions per app and environment.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Environments shown, in order.
    pub envs: Vec<String>,
    /// Per app key: the version in each environment (None when absent).
    pub apps: BTreeMap<String, Vec<Option<String>>>,
}

impl Overview {
    /// Whether an app has different versions across the shown environments.
    pub fn differs(&self, app: &str) -> bool {
        self.apps
            .get(app)
            .map(|v| v.windows(2).any(|w| w[0] != w[1]))
            .unwrap_or(false)
    }

    /// `chart show`'s table: a header, one line per app (`*` marks the
    /// apps that differ; with `only_differing`, only those), then with
    /// several environments how many differ.
    pub fn table(&self, only_differing: bool) -> Vec<String> {
        let w = self.apps.keys().map(|k| k.len()).max().unwrap_or(3).max(3);
        let cw = self.envs.iter().map(|e| e.len()).max().unwrap_or(0).max(11);
        let mut header = format!("  {:<w$}", "APP");
        for e in &self.envs {
            header.push_str(&format!("  {e:<cw$}"));
        }
        let mut lines = vec![header.trim_end().to_string()];
        for (app, versions) in &self.apps {
            let differs = self.differs(app);
            if only_differing && !differs {
                continue;
            }
            let mut line = format!("{} {app:<w$}", if differs { "*" } else { " " });
            for v in versions {
                line.push_str(&format!("  {:<cw$}", v.as_deref().unwrap_or("-")));
            }
            lines.push(line.trim_end().to_string());
        }
        if self.envs.len() > 1 {
            let n = self.apps.keys().filter(|a| self.differs(a)).count();
            lines.push(format!("{n} app(s) differ between environments (marked *)"));
        }
        lines
    }
}

/// A swh-charts checkout with remote `origin`.
#[derive(Debug, Clone)]
pub struct ChartsRepo {
    git: Git,
    remote: String,
    values_file: String,
}

impl ChartsRepo {
    /// The checkout at `dir`, whose remote is `origin`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        if !dir.join(".git").exists() {
            return Err(Error::Input(format!(
                "{}: not a git checkout of swh-charts",
                dir.display()
            )));
        }
        Ok(ChartsRepo {
            git: Git::new(dir),
            remote: "origin".into(),
            values_file: VALUES_FILE.into(),
        })
    }

    /// Uses `remote` instead of `origin`.
    pub fn with_remote(mut self, remote: &str) -> Self {
        self.remote = remote.to_string();
        self
    }

    /// Uses `path` (relative to the checkout) as the image versions file
    /// instead of [`VALUES_FILE`].
    pub fn with_values_file(mut self, path: &str) -> Self {
        self.values_file = path.to_string();
        self
    }

    /// The name of the remote (`origin` unless [`ChartsRepo::with_remote`]).
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// The git runner of the checkout.
    pub fn git(&self) -> &Git {
        &self.git
    }

    fn fetch(&self) -> Result<(), Error> {
        self.git.run(&["fetch", "-q", "--prune", &self.remote])?;
        Ok(())
    }

    fn remote_ref(&self, branch: &str) -> String {
        format!("{}/{}", self.remote, branch)
    }

    /// Sets app image versions on `branch`, bumps `appVersion`, commits and
    /// (with `push`) pushes: [`ChartsRepo::prepare_bump`] then, unless
    /// `dry_run` or there is nothing to do, [`ChartsRepo::commit_bump`].
    pub fn bump(&self, req: &BumpRequest) -> Result<BumpOutcome, Error> {
        let prepared = self.prepare_bump(req)?;
        if req.dry_run || !prepared.outcome.has_work() {
            return Ok(prepared.outcome);
        }
        self.commit_bump(prepared)
    }

    /// The commit of `branch` (on the remote, else local) whose subject is
    /// the release of `module` `version` (`v<N>: Release <module>
    /// <version>`), if any, as "HASH SUBJECT". The remote is fetched first.
    pub fn release_commit(
        &self,
        branch: &str,
        module: &str,
        version: &str,
    ) -> Result<Option<String>, Error> {
        self.fetch()?;
        let r = self.remote_ref(branch);
        let rev = if self.git.rev(&r)?.is_some() {
            r
        } else if self.git.rev(&format!("refs/heads/{branch}"))?.is_some() {
            branch.to_string()
        } else {
            return Err(Error::Input(format!("no branch {branch}")));
        };
        self.find_release(&rev, module, version)
    }

    fn find_release(
        &self,
        rev: &str,
        module: &str,
        version: &str,
    ) -> Result<Option<String>, Error> {
        let wanted = format!("Release {module} {version}");
        let log = self
            .git
            .run(&["log", "--first-parent", "--format=%H %s", rev, "--"])?;
        Ok(log
            .lines()
            .find(|l| {
                l.split_once(' ')
                    .and_then(|(_, subject)| subject.strip_prefix('v'))
                    .and_then(|rest| rest.split_once(": "))
                    .is_some_and(|(n, what)| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && what == wanted
                    })
            })
            .map(String::from))
    }

    /// Brings `branch` up to date with the remote (the work tree must be
    /// clean; fast-forward only) and computes the bump without writing
    /// anything: the changes, the new appVersion, the commit message.
    pub fn prepare_bump(&self, req: &BumpRequest) -> Result<PreparedBump, Error> {
        if req.release_only {
            if !req.bumps.is_empty() {
                return Err(Error::Input(
                    "a release-only bump changes no image: give no APP=VERSION".into(),
                ));
            }
            if req.module.is_none() {
                return Err(Error::Input(
                    "a release-only bump needs the module and its version (--module, --module-version)"
                        .into(),
                ));
            }
        } else if req.bumps.is_empty() {
            return Err(Error::Input(
                "no APP=VERSION given (for a release that changes no image, use --release-only)"
                    .into(),
            ));
        }
        if let Some((m, v)) = &req.module {
            for (what, text) in [("module", m), ("module version", v)] {
                if text.is_empty() || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(Error::Input(format!(
                        "invalid {what} {text:?}: expected one word like swh.export or v1.8.0"
                    )));
                }
            }
        }
        self.fetch()?;
        let status = self.git.run(&["status", "--porcelain"])?;
        if !status.is_empty() {
            return Err(Error::Refused(format!(
                "{}: the work tree has uncommitted changes; commit or stash them first:\n{status}",
                self.git.dir().display()
            )));
        }
        let remote_ref = self.remote_ref(&req.branch);
        let remote_head = self.git.rev(&remote_ref)?;
        let local = self.git.rev(&format!("refs/heads/{}", req.branch))?;
        match (&local, &remote_head) {
            (Some(_), _) => {
                self.git.run(&["checkout", "-q", &req.branch])?;
                if remote_head.is_some()
                    && !self
                        .git
                        .succeeds(&["merge", "-q", "--ff-only", &remote_ref])?
                {
                    return Err(Error::Refused(format!(
                        "local branch {} has diverged from {remote_ref}; reconcile them first",
                        req.branch
                    )));
                }
            }
            (None, Some(_)) => {
                self.git
                    .run(&["checkout", "-q", "-b", &req.branch, "--track", &remote_ref])?;
            }
            (None, None) => {
                return Err(Error::Input(format!(
                    "no branch {} locally or on {}",
                    req.branch, self.remote
                )))
            }
        }
        let dir = self.git.dir();
        let values_path = dir.join(&self.values_file);
        let chart_path = dir.join(CHART_FILE);
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let chart_text = read(&chart_path)?;
        let (new_values, changes, notes) = if req.release_only {
            (None, Vec::new(), Vec::new())
        } else {
            let values_text = read(&values_path)?;
            let e = values::edit_values(&values_path, &values_text, &req.bumps)?;
            (Some(e.text), e.changes, e.notes)
        };
        let (new_chart, app_version) = values::bump_app_version(&chart_path, &chart_text)?;
        let already = match (&req.module, req.release_only && !req.again) {
            (Some((m, v)), true) => self.find_release("HEAD", m, v)?,
            _ => None,
        };
        let title = match &req.module {
            Some((m, v)) => format!("v{app_version}: Release {m} {v}"),
            None => format!(
                "v{app_version}: Release {}",
                changes
                    .iter()
                    .map(|c| format!("{} {}", c.key, c.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut message = title;
        if req.body && !changes.is_empty() {
            message.push_str("\n\n");
            for c in &changes {
                message.push_str(&format!(
                    "- {}: {} -> {}\n",
                    c.key,
                    c.from.as_deref().unwrap_or("(new)"),
                    c.to
                ));
            }
        }
        Ok(PreparedBump {
            outcome: BumpOutcome {
                changes,
                app_version,
                message,
                commit: None,
                pushed: false,
                notes,
                already,
                release_only: req.release_only,
            },
            new_values,
            new_chart,
            branch: req.branch.clone(),
            push: req.push,
            merge_request: req.merge_request.clone(),
        })
    }

    /// Writes a prepared bump (atomically), commits it and, if asked,
    /// pushes it. On a failed commit or push, the local commit and files
    /// are put back as they were.
    pub fn commit_bump(&self, prepared: PreparedBump) -> Result<BumpOutcome, Error> {
        let PreparedBump {
            mut outcome,
            new_values,
            new_chart,
            branch,
            push,
            merge_request,
        } = prepared;
        if !outcome.has_work() {
            return Ok(outcome);
        }
        let dir = self.git.dir();
        let before = self.git.run(&["rev-parse", "HEAD"])?;
        let mut paths = vec![CHART_FILE];
        let written = (|| {
            if let Some(v) = &new_values {
                atomic_write(&dir.join(&self.values_file), v.as_bytes())?;
                paths.push(&self.values_file);
            }
            atomic_write(&dir.join(CHART_FILE), new_chart.as_bytes())
        })();
        let committed = written.and_then(|_| {
            let mut add = vec!["add", "--"];
            add.extend(paths.iter().copied());
            self.git
                .run(&add)
                .and_then(|_| self.git.run(&["commit", "-q", "-m", &outcome.message]))
                .map_err(Error::from)
        });
        if let Err(e) = committed {
            let _ = self.git.run(&["reset", "-q", "--hard", &before]);
            return Err(e);
        }
        let commit = self.git.run(&["rev-parse", "HEAD"])?;
        outcome.commit = Some(commit);
        if push {
            let refspec = format!("HEAD:refs/heads/{branch}");
            let title = outcome.message.lines().next().unwrap_or_default();
            let options: Vec<String> = match &merge_request {
                Some(target) => vec![
                    "merge_request.create".into(),
                    format!("merge_request.target={target}"),
                    format!("merge_request.title={title}"),
                ],
                None => Vec::new(),
            };
            let mut args = vec!["push", "-q"];
            for o in &options {
                args.extend(["-o", o.as_str()]);
            }
            args.extend([self.remote.as_str(), refspec.as_str()]);
            if let Err(e) = self.git.run(&args) {
                self.git.run(&["reset", "-q", "--hard", &before])?;
                return Err(Error::Command(format!(
                    "{e}\nthe local release commit was undone; fetch and run the bump again"
                )));
            }
            outcome.pushed = true;
        }
        Ok(outcome)
    }

    /// Image version changes between two revisions' values files:
    /// (key, version at `old`, version at `new`) for every key that differs.
    pub fn version_changes(&self, old: &str, new: &str) -> Result<Vec<VersionChange>, Error> {
        let a = self.apps_at(old)?;
        let b = self.apps_at(new)?;
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                let x = a.get(k).cloned().flatten();
                let y = b.get(k).cloned().flatten();
                (x != y).then(|| (k.clone(), x, y))
            })
            .collect())
    }

    fn apps_at(&self, rev: &str) -> Result<BTreeMap<String, Option<String>>, Error> {
        let text = self.git.show_file(rev, &self.values_file)?;
        let apps = values::read_apps(&text).map_err(|e| Error::Yaml {
            file: PathBuf::from(format!("{rev}:{}", self.values_file)),
            pos: e.pos,
            message: e.message,
        })?;
        Ok(apps.into_iter().map(|(k, v)| (k, v.version)).collect())
    }

    /// Plans a promotion into `to` without pushing: the changes and commits
    /// that would be promoted. Refuses when it would not be a fast-forward.
    pub fn plan_promote(&self, to: Env) -> Result<PromoteOutcome, Error> {
        let Some(from) = to.source() else {
            return Err(Error::Input(format!(
                "{to} is where releases land; promote to staging or production"
            )));
        };
        self.fetch()?;
        let src_ref = self.remote_ref(from.branch());
        let dst_ref = self.remote_ref(to.branch());
        let src = self
            .git
            .rev(&src_ref)?
            .ok_or_else(|| Error::Input(format!("no branch {src_ref}")))?;
        let dst = self
            .git
            .rev(&dst_ref)?
            .ok_or_else(|| Error::Input(format!("no branch {dst_ref}")))?;
        let mut outcome = PromoteOutcome {
            from,
            to,
            changes: Vec::new(),
            commits: Vec::new(),
            new_head: None,
            rebase: None,
        };
        if src == dst {
            return Ok(outcome);
        }
        let mut src = src;
        if !self
            .git
            .succeeds(&["merge-base", "--is-ancestor", &dst, &src])?
        {
            let extra = self.git.run(&[
                "log",
                "--oneline",
                "--no-decorate",
                &format!("{src}..{dst}"),
            ])?;
            if to == Env::Staging {
                let new = self.rebase_onto(&src, &dst, from, to, &extra)?;
                outcome.rebase = Some(Rebase {
                    old: src.clone(),
                    new: new.clone(),
                    onto: extra.lines().map(String::from).collect(),
                });
                src = new;
                if src == dst {
                    return Ok(outcome);
                }
            } else {
                return Err(Error::Refused(format!(
                "cannot promote {from} to {to}: not a fast-forward. {to} has commit(s) that {from} lacks:\n{extra}\n\
                 Bring them into {from} first (merge or cherry-pick), or reset {to} by hand after review; \
                 swh-deploy only fast-forwards."
                )));
            }
        }
        outcome.changes = self.version_changes(&dst, &src)?;
        outcome.commits = self
            .git
            .run(&[
                "log",
                "--oneline",
                "--no-decorate",
                &format!("{dst}..{src}"),
            ])?
            .lines()
            .map(String::from)
            .collect();
        outcome.new_head = Some(src);
        Ok(outcome)
    }

    /// Rebases `src` onto `dst` in a temporary detached work tree (the
    /// checkout is not touched) and returns the rebased commit. On a
    /// conflict the rebase is aborted and the promotion refused, naming the
    /// conflicting files; nothing is changed.
    fn rebase_onto(
        &self,
        src: &str,
        dst: &str,
        from: Env,
        to: Env,
        extra: &str,
    ) -> Result<String, Error> {
        self.in_worktree("swh-deploy-rebase-", src, |_, tree| {
            if tree.succeeds(&["rebase", "-q", dst])? {
                return Ok(tree.run(&["rev-parse", "HEAD"])?);
            }
            let conflicts = tree.run(&["diff", "--name-only", "--diff-filter=U"])?;
            let _ = tree.run(&["rebase", "--abort"]);
            Err(Error::Refused(format!(
                "cannot promote {from} to {to}: {to} has commit(s) that {from} lacks:\n{extra}\n\
                 and rebasing {from} onto {to} conflicts in: {}\n\
                 Resolve it by hand (git rebase {to} on {from}, then push); nothing was changed.",
                if conflicts.is_empty() {
                    "(see git rebase)".to_string()
                } else {
                    conflicts.lines().collect::<Vec<_>>().join(", ")
                }
            )))
        })
    }

    /// Runs `work` in a temporary worktree detached at `rev` (the checkout
    /// is not touched); removes it whatever `work` returns.
    pub(crate) fn in_worktree<T>(
        &self,
        prefix: &str,
        rev: &str,
        work: impl FnOnce(&Path, &Git) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let wt = tmp.path().join("work");
        let wt_s = wt.to_string_lossy().into_owned();
        self.git
            .run(&["worktree", "add", "-q", "--detach", &wt_s, rev])?;
        let result = work(&wt, &Git::new(&wt));
        let _ = self.git.run(&["worktree", "remove", "--force", &wt_s]);
        let _ = self.git.run(&["worktree", "prune"]);
        result
    }

    /// Pushes a planned promotion: the source commit to the target branch,
    /// which the remote accepts only as a fast-forward. With a rebase, the
    /// rebased source branch (`--force-with-lease` on its old commit) and
    /// the target are pushed in one atomic push, and a local source branch
    /// still at the old commit is moved to the new one.
    pub fn push_promote(&self, plan: &PromoteOutcome) -> Result<(), Error> {
        let Some(head) = &plan.new_head else {
            if plan.rebase.is_none() {
                return Ok(());
            }
            return self.push_rebase(plan, None);
        };
        if plan.rebase.is_some() {
            return self.push_rebase(plan, Some(head));
        }
        let refspec = format!("{head}:refs/heads/{}", plan.to.branch());
        self.git
            .run(&["push", "-q", &self.remote, &refspec])
            .map(|_| ())
            .map_err(Error::from)
    }

    fn push_rebase(&self, plan: &PromoteOutcome, head: Option<&String>) -> Result<(), Error> {
        let Some(r) = &plan.rebase else {
            return Ok(());
        };
        let from = plan.from.branch();
        let lease = format!("--force-with-lease=refs/heads/{from}:{}", r.old);
        let src_spec = format!("{}:refs/heads/{from}", r.new);
        let mut args = vec!["push", "-q", "--atomic", &lease, &self.remote, &src_spec];
        let dst_spec = head.map(|h| format!("{h}:refs/heads/{}", plan.to.branch()));
        if let Some(d) = &dst_spec {
            args.push(d);
        }
        self.git.run(&args)?;
        let local = format!("refs/heads/{from}");
        if self.git.rev(&local)?.as_deref() == Some(r.old.as_str()) {
            let current = self.git.run(&["symbolic-ref", "-q", "HEAD"]).ok();
            if current.as_deref() == Some(local.as_str()) {
                // --keep refuses rather than lose local changes.
                self.git.run(&["reset", "-q", "--keep", &r.new])?;
            } else {
                self.git.run(&["update-ref", &local, &r.new, &r.old])?;
            }
        }
        Ok(())
    }

    /// Versions per app in `envs` (the remote's branches).
    pub fn show(&self, envs: &[String]) -> Result<Overview, Error> {
        self.fetch()?;
        let mut apps: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for (i, branch) in envs.iter().enumerate() {
            let r = self.remote_ref(branch);
            let rev = if self.git.rev(&r)?.is_some() {
                r
            } else if self.git.rev(branch)?.is_some() {
                branch.clone()
            } else {
                return Err(Error::Input(format!("no branch {branch}")));
            };
            for (k, v) in self.apps_at(&rev)? {
                apps.entry(k).or_insert_with(|| vec![None; envs.len()])[i] = v;
            }
        }
        Ok(Overview {
            envs: envs.to_vec(),
            apps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_journal_step_names_every_change() {
        let out = BumpOutcome {
            changes: vec![
                Change {
                    key: "swh_loader_git".into(),
                    from: Some("20250101.1".into()),
                    to: "20250102.1".into(),
                },
                Change {
                    key: "swh_lister".into(),
                    from: None,
                    to: "20250102.1".into(),
                },
            ],
            app_version: 12,
            message: "v12: Release swh.loader.git v1.2.0\n\nbody".into(),
            commit: None,
            pushed: false,
            notes: vec![],
            already: None,
            release_only: false,
        };
        assert_eq!(
            out.journal_step("swh-next-version", true),
            "bump swh_loader_git 20250101.1 -> 20250102.1, swh_lister (new) -> 20250102.1, appVersion 11 -> 12 on swh-next-version, commit \"v12: Release swh.loader.git v1.2.0\", push"
        );
        assert!(!out.journal_step("b", false).ends_with(", push"));
    }

    #[test]
    fn show_table_marks_differences() {
        let ov = Overview {
            envs: vec!["staging".into(), "production".into()],
            apps: [
                (
                    "swh_a".to_string(),
                    vec![Some("1".to_string()), Some("1".to_string())],
                ),
                ("swh_b".to_string(), vec![Some("2".to_string()), None]),
            ]
            .into(),
        };
        assert_eq!(
            ov.table(false),
            [
                "  APP    staging      production",
                "  swh_a  1            1",
                "* swh_b  2            -",
                "1 app(s) differ between environments (marked *)",
            ]
        );
        assert_eq!(ov.table(true).len(), 3);
    }
}
