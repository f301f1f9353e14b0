//! The elastic long-standing mode, `cluster migrate ENV SERVICE --disable
//! GROUP[,GROUP...]`, as SWH does a long migration by hand: a commit
//! setting `enabled: false` for worker groups in the environment's values
//! file (`swh/values/<branch>/default.yaml`) on its chart branch, pushed;
//! once Argo CD has synced it and the groups' deployments are scaled to 0,
//! the migration ([`swh_deploy_cluster::migrate`]); then `git revert` of
//! that commit, pushed (never a force-push), and a wait until live.
//!
//! The revert is a compensation: the disabling commit is made in a
//! temporary worktree (nothing changes anywhere yet), then the
//! compensation `elastic-revert:<commit>` on `charts:<branch>` is written to
//! the journal, and only then is the commit pushed. It is marked done once
//! the revert is pushed and the wait is over. After a crash (kill -9)
//! anywhere in between, [`recover_reverts`] (`swh-deploy recover`) puts it
//! right: it reverts the commit if it is on the branch and not reverted
//! yet, else just marks the compensation done.
//!
//! [`long_migrate`] prints nothing: each [`LongEvent`] goes to the caller.

use crate::enable::{set_enabled, Target};
use crate::{ChartsRepo, Error};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use swh_deploy_cluster::kube::Kube;
use swh_deploy_cluster::migrate::{migrate, MigrateEvent, MigrateRequest, Migrated};
use swh_deploy_cluster::wait::{wait_environment, EnvWait, EnvWaitReport, WaitEvent};
use swh_deploy_journal::{Journal, JournalError, Recorder, RunStatus};
use swh_deploy_site::Site;
use swh_deploy_util::Exit;

/// The action prefix of the compensation: `elastic-revert:<commit>`.
pub const REVERT_ACTION: &str = "elastic-revert:";

/// The journal run mode of the long-standing mode.
pub const MODE: &str = "cluster migrate --disable";

/// What to do.
#[derive(Debug, Clone, Copy)]
pub struct LongMigrateRequest<'a> {
    /// The site file: the environment's chart_branch, Argo CD application,
    /// kube_context and namespace.
    pub site: &'a Site,
    /// The environment.
    pub env: &'a str,
    /// The service whose database to migrate.
    pub service: &'a str,
    /// The worker groups to turn off (`GROUP` or `GROUP.DEPLOYMENT`).
    pub groups: &'a [String],
    /// The label selector of the toolbox pod.
    pub selector: &'a str,
    /// Show the plan; change nothing.
    pub dry_run: bool,
    /// Bounds each wait (sync and scale-down, each migration command, the
    /// wait until live after the revert).
    pub timeout: Duration,
    /// Time between polls while waiting.
    pub interval: Duration,
    /// The journal (`None`: the default one).
    pub journal: Option<&'a Path>,
}

/// One group to turn off and where the values define it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group (or group deployment).
    pub target: Target,
    /// `file:line` of its top-level key in the values the environment
    /// reads.
    pub defined_at: String,
}

/// The disabling commit, planned from the branch's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisablePlan {
    /// The environment.
    pub env: String,
    /// Its chart branch.
    pub branch: String,
    /// The branch's head on the remote.
    pub head: String,
    /// The values file edited (relative to the checkout).
    pub file: String,
    /// The groups.
    pub groups: Vec<Group>,
    /// The values files read, in Helm's order.
    pub read: Vec<String>,
    /// The file's text at the head (`None`: absent).
    pub before: Option<String>,
    /// Its text with the groups turned off.
    pub after: String,
    /// The commit message.
    pub message: String,
}

impl DisablePlan {
    /// The lines that change (`-old` / `+new`).
    pub fn changed_lines(&self) -> Vec<String> {
        let before: Vec<&str> = self.before.as_deref().unwrap_or("").lines().collect();
        let after: Vec<&str> = self.after.lines().collect();
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < before.len() || j < after.len() {
            if i < before.len() && j < after.len() && before[i] == after[j] {
                i += 1;
                j += 1;
            } else if j < after.len() && !before[i..].contains(&after[j]) {
                out.push(format!("+{}", after[j]));
                j += 1;
            } else if i < before.len() {
                out.push(format!("-{}", before[i]));
                i += 1;
            } else {
                out.push(format!("+{}", after[j]));
                j += 1;
            }
        }
        out
    }
}

/// What [`long_migrate`] reports as it goes. `Display` gives the text;
/// [`LongEvent::is_diagnostic`] tells the ones meant for stderr.
#[derive(Debug)]
pub enum LongEvent<'a> {
    /// The plan.
    Plan(&'a DisablePlan),
    /// Dry run: nothing done (the end).
    DryRun(&'a DisablePlan),
    /// The disabling commit or its revert was pushed.
    Pushed {
        /// `disabled` or `reverted`.
        what: &'static str,
        /// The branch.
        branch: &'a str,
        /// The pushed commit.
        commit: &'a str,
    },
    /// The groups' deployments are scaled to 0.
    ScaledDown {
        /// Their names (none: the groups have no deployment there).
        deployments: &'a [String],
    },
    /// A wait starts (stderr): what it awaits and its bound; its progress
    /// lines ([`LongEvent::Wait`]) follow.
    Awaiting {
        /// What is awaited.
        what: String,
        /// The bound.
        timeout: Duration,
    },
    /// Progress of an Argo CD wait (stderr).
    Wait(&'a WaitEvent),
    /// The migration's own events.
    Migrate(&'a MigrateEvent<'a>),
    /// The migration ended.
    Migrated(&'a Migrated),
    /// The environment is live again after the revert.
    Live(&'a EnvWaitReport),
}

impl LongEvent<'_> {
    /// Whether the event is a diagnostic (stderr) rather than output.
    pub fn is_diagnostic(&self) -> bool {
        match self {
            LongEvent::Wait(_) | LongEvent::Awaiting { .. } => true,
            LongEvent::Migrate(m) => m.is_diagnostic(),
            _ => false,
        }
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

impl fmt::Display for LongEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LongEvent::Plan(p) => {
                write!(
                    f,
                    "turning off on {} (head {}), in {}:",
                    p.branch,
                    short(&p.head),
                    p.file
                )?;
                for g in &p.groups {
                    write!(f, "\n  {} (defined at {})", g.target, g.defined_at)?;
                }
                write!(f, "\nchanges:")?;
                for l in p.changed_lines() {
                    write!(f, "\n  {l}")?;
                }
                Ok(())
            }
            LongEvent::DryRun(p) => write!(
                f,
                "plan: 1. commit {:?} on {} and push it (its revert journaled first as a compensation)\n\
                 \x20     2. wait until Argo CD has synced it and the groups are scaled to 0\n\
                 \x20     3. check and migrate in the toolbox pod (cluster migrate)\n\
                 \x20     4. git revert that commit, push, wait until {} is live\n\
                 dry run: nothing committed or pushed",
                p.message.lines().next().unwrap_or_default(),
                p.branch,
                p.env
            ),
            LongEvent::Pushed {
                what,
                branch,
                commit,
            } => write!(f, "{what}: {branch} is now at {commit}"),
            LongEvent::ScaledDown { deployments: [] } => {
                f.write_str("synced: no deployment of these groups is left running")
            }
            LongEvent::ScaledDown { deployments } => write!(
                f,
                "synced: scaled to 0: {}",
                deployments.join(", ")
            ),
            LongEvent::Awaiting { what, timeout } => {
                write!(f, "waiting until {what} (at most {timeout:?})")
            }
            LongEvent::Wait(w) => write!(f, "{w}"),
            LongEvent::Migrate(m) => write!(f, "{m}"),
            LongEvent::Migrated(m) => write!(f, "{m}"),
            LongEvent::Live(r) => write!(f, "{r}"),
        }
    }
}

/// How [`long_migrate`] ended (without an error).
#[derive(Debug)]
pub enum LongMigrated {
    /// A dry run.
    DryRun,
    /// Done: migrated (or up to date), reverted, live again.
    Done {
        /// What the migration did.
        migrated: Migrated,
        /// The disabling commit.
        disabled: String,
        /// Its revert.
        reverted: String,
    },
}

/// Why [`long_migrate`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LongError {
    /// Bad input or the charts checkout (before any change).
    #[error(transparent)]
    Charts(#[from] Error),
    /// The journal.
    #[error("{0}")]
    Journal(#[from] JournalError),
    /// Not confirmed (no `--yes`).
    #[error("turning off {groups} on {branch} and migrating {service} was not confirmed: re-run with --yes")]
    NotConfirmed {
        /// The groups.
        groups: String,
        /// The branch.
        branch: String,
        /// The service.
        service: String,
    },
    /// Something failed after the disabling commit was pushed; `revert`
    /// says how the revert went.
    #[error("{what}; {revert}")]
    Failed {
        /// What failed.
        what: String,
        /// The revert's outcome.
        revert: String,
        /// The exit code it means.
        exit: Exit,
    },
}

impl LongError {
    /// The exit code it means: 6 when a wait timed out, else 1.
    pub fn exit(&self) -> Exit {
        match self {
            LongError::Failed { exit, .. } => *exit,
            _ => Exit::Failed,
        }
    }
}

/// The values file of an environment's branch that the mode edits.
pub fn env_values_file(branch: &str) -> String {
    format!("swh/values/{branch}/default.yaml")
}

/// The file `path` at `rev`, byte for byte; `None` when absent.
fn file_at(repo: &ChartsRepo, rev: &str, path: &str) -> Result<Option<String>, Error> {
    let spec = format!("{rev}:{path}");
    if !repo.git.succeeds(&["cat-file", "-e", &spec])? {
        return Ok(None);
    }
    let out = repo
        .git
        .command(&["cat-file", "blob", &spec])
        .output()
        .map_err(|e| Error::Command(format!("git cat-file blob {spec}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Command(format!(
            "git cat-file blob {spec}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout)
        .map(Some)
        .map_err(|_| Error::Input(format!("{path} at {}: not UTF-8", short(rev))))
}

/// The line (1-based) of the top-level key `key` in `text`.
fn top_level_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
        })
        .map(|i| i + 1)
}

/// Plans the disabling commit of `groups` on `env`'s chart branch: every
/// group must be a top-level key of the values the environment reads
/// (`swh/values.yaml`, `swh/values/default.yaml`, its values file), else
/// it is refused, naming the files read.
pub fn plan_disable(
    repo: &ChartsRepo,
    site: &Site,
    env: &str,
    service: &str,
    groups: &[String],
) -> Result<DisablePlan, Error> {
    if groups.is_empty() {
        return Err(Error::Input("--disable: no worker group given".into()));
    }
    let targets = groups
        .iter()
        .map(|g| Target::parse(g))
        .collect::<Result<Vec<_>, _>>()?;
    let e = site
        .environment(env)
        .map_err(|e| Error::Input(e.to_string()))?;
    let branch = e.chart_branch.clone().unwrap_or_else(|| env.to_string());
    repo.fetch()?;
    let remote_ref = repo.remote_ref(&branch);
    let head = repo
        .git
        .rev(&remote_ref)?
        .ok_or_else(|| Error::Input(format!("no branch {remote_ref}")))?;
    let file = env_values_file(&branch);
    let mut read = Vec::new();
    let mut texts = Vec::new();
    for f in ["swh/values.yaml", "swh/values/default.yaml", file.as_str()] {
        if let Some(t) = file_at(repo, &head, f)? {
            read.push(f.to_string());
            texts.push((f.to_string(), t));
        }
    }
    let mut planned = Vec::new();
    for t in targets {
        // The last file that defines it (Helm's order: later ones win).
        let at = texts
            .iter()
            .rev()
            .find_map(|(f, text)| top_level_line(text, &t.group).map(|l| format!("{f}:{l}")));
        let Some(defined_at) = at else {
            return Err(Error::Input(format!(
                "unknown worker group {:?}: no top-level key {:?} in the values {env} reads ({} at {remote_ref} {}); nothing changed",
                t.group,
                t.group,
                read.join(", "),
                short(&head)
            )));
        };
        if planned.iter().any(|g: &Group| g.target == t) {
            return Err(Error::Input(format!("--disable: {t} given twice")));
        }
        planned.push(Group {
            target: t,
            defined_at,
        });
    }
    let before = texts
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(_, t)| t.clone());
    let mut after = before.clone().unwrap_or_default();
    for g in &planned {
        match set_enabled(&after, &g.target, false, &file)? {
            Some(t) => after = t,
            None => {
                return Err(Error::Input(format!(
                    "{}: {} is already turned off in {file} on {branch}: nothing to turn off (plain `cluster migrate` migrates)",
                    g.defined_at, g.target
                )))
            }
        }
    }
    let names: Vec<String> = planned.iter().map(|g| g.target.to_string()).collect();
    let message = format!(
        "{env}: turn off {} for the {service} migration\n\n\
         Long-standing migration (swh-deploy cluster migrate {env} {service} --disable {}):\n\
         reverted once the migration is over.\n",
        names.join(", "),
        groups.join(",")
    );
    Ok(DisablePlan {
        env: env.to_string(),
        branch,
        head,
        file,
        groups: planned,
        read,
        before,
        after,
        message,
    })
}

impl ChartsRepo {
    /// The disabling commit of `plan`, made on top of its head in a
    /// temporary worktree, not pushed: its id.
    pub fn commit_disable(&self, plan: &DisablePlan) -> Result<String, Error> {
        self.in_worktree("swh-deploy-disable-", &plan.head, |wt, tree| {
            let path = wt.join(&plan.file);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            crate::atomic_write(&path, plan.after.as_bytes())?;
            tree.run(&["add", "--", &plan.file])?;
            tree.run(&["commit", "-q", "-m", &plan.message])?;
            Ok(tree.run(&["rev-parse", "HEAD"])?)
        })
    }

    /// Pushes `commit` to `branch` (a fast-forward: never forced).
    pub fn push_commit(&self, commit: &str, branch: &str) -> Result<(), Error> {
        let refspec = format!("{commit}:refs/heads/{branch}");
        self.git.run(&["push", "-q", &self.remote, &refspec])?;
        Ok(())
    }

    /// Where the disabling `commit` stands on `branch` of the remote
    /// (fetched first).
    pub fn revert_state(&self, commit: &str, branch: &str) -> Result<RevertState, Error> {
        self.fetch()?;
        let remote_ref = self.remote_ref(branch);
        let head = self
            .git
            .rev(&remote_ref)?
            .ok_or_else(|| Error::Input(format!("no branch {remote_ref}")))?;
        if self.git.rev(commit)?.is_none()
            || !self
                .git
                .succeeds(&["merge-base", "--is-ancestor", commit, &head])?
        {
            return Ok(RevertState::NotPushed);
        }
        let grep = format!("This reverts commit {commit}");
        let range = format!("{commit}..{head}");
        let found = self.git.run(&[
            "log",
            "--format=%H",
            "--fixed-strings",
            "--grep",
            &grep,
            &range,
        ])?;
        Ok(match found.lines().next() {
            Some(r) => RevertState::Reverted(r.to_string()),
            None => RevertState::ToRevert { head },
        })
    }

    /// `git revert` of `commit` on top of `branch`'s head on the remote,
    /// pushed (never forced); the revert's id. Retried once if the branch
    /// moved meanwhile.
    pub fn push_revert(&self, commit: &str, branch: &str) -> Result<String, Error> {
        let mut last = None;
        for _ in 0..2 {
            let head = match self.revert_state(commit, branch)? {
                RevertState::NotPushed => {
                    return Err(Error::Refused(format!(
                        "{} is not on {branch}: nothing to revert",
                        short(commit)
                    )))
                }
                RevertState::Reverted(r) => return Ok(r),
                RevertState::ToRevert { head } => head,
            };
            let new = self.in_worktree("swh-deploy-disable-", &head, |_, tree| {
                tree.run(&["revert", "--no-edit", commit])?;
                Ok(tree.run(&["rev-parse", "HEAD"])?)
            })?;
            match self.push_commit(&new, branch) {
                Ok(()) => return Ok(new),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Command("push failed".into())))
    }
}

/// Where a disabling commit stands on its branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertState {
    /// Not on the branch: never pushed (nothing to revert).
    NotPushed,
    /// Already reverted by this commit.
    Reverted(String),
    /// On the branch, not reverted: the branch's head.
    ToRevert {
        /// The branch's head.
        head: String,
    },
}

/// The names of the deployments of `groups` among `names`: `<group without
/// s>` or `<group without s>-*` (`loaders` -> `loader-git`), or for
/// `GROUP.DEPLOYMENT` exactly `<group without s>-<deployment>`, as
/// swh-charts' templates name them.
pub fn group_deployments(groups: &[Target], names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            groups.iter().any(|t| {
                let prefix = t.group.strip_suffix('s').unwrap_or(&t.group);
                match &t.deployment {
                    Some(d) => **n == format!("{prefix}-{d}"),
                    None => {
                        n.as_str() == prefix
                            || n.strip_prefix(prefix).is_some_and(|r| r.starts_with('-'))
                    }
                }
            })
        })
        .cloned()
        .collect()
}

/// Runs the long-standing mode: plan, confirm, journal the compensation,
/// push the disabling commit, wait for the scale-down, migrate, revert,
/// wait until live, mark the compensation done. Whatever fails after the
/// push, the revert is still made and the error says why.
pub fn long_migrate(
    repo: &ChartsRepo,
    charts_dir: &Path,
    req: &LongMigrateRequest<'_>,
    confirm: &mut dyn FnMut(&DisablePlan) -> bool,
    on: &mut dyn FnMut(&LongEvent<'_>),
) -> Result<LongMigrated, LongError> {
    // The service name first: refused before anything is read.
    swh_deploy_cluster::migrate::Scripts::of(req.service)
        .map_err(|e| Error::Input(e.to_string()))?;
    let plan = plan_disable(repo, req.site, req.env, req.service, req.groups)?;
    on(&LongEvent::Plan(&plan));
    if req.dry_run {
        on(&LongEvent::DryRun(&plan));
        return Ok(LongMigrated::DryRun);
    }
    if !confirm(&plan) {
        return Err(LongError::NotConfirmed {
            groups: req.groups.join(","),
            branch: plan.branch.clone(),
            service: req.service.to_string(),
        });
    }
    let charts_dir = std::fs::canonicalize(charts_dir).unwrap_or_else(|_| charts_dir.to_path_buf());
    let mut rec = Recorder::start(
        req.journal,
        MODE,
        serde_json::json!({
            "env": req.env,
            "service": req.service,
            "groups": req.groups,
            "branch": plan.branch,
            "head": plan.head,
            "file": plan.file,
            "charts_dir": charts_dir,
            "site": req.site.path,
        }),
    )?;
    rec.step(
        &format!("disabling commit on {} ({})", plan.branch, plan.file),
        &plan.branch,
    );
    let disabled = match repo.commit_disable(&plan) {
        Ok(c) => c,
        Err(e) => {
            rec.finish(false);
            return Err(e.into());
        }
    };
    // The compensation BEFORE the push: the commit exists only in the
    // checkout's object store until then.
    let comp = match rec.add_compensation(
        &format!("charts:{}", plan.branch),
        &format!("{REVERT_ACTION}{disabled}"),
    ) {
        Ok(id) => id,
        Err(e) => {
            rec.finish(false);
            return Err(e.into());
        }
    };
    if let Err(e) = repo.push_commit(&disabled, &plan.branch) {
        // Never pushed: nothing to revert.
        let _ = rec.complete_compensation(comp);
        rec.finish(false);
        return Err(e.into());
    }
    on(&LongEvent::Pushed {
        what: "disabled",
        branch: &plan.branch,
        commit: &disabled,
    });
    let targets: Vec<Target> = plan.groups.iter().map(|g| g.target.clone()).collect();
    rec.step(
        &format!(
            "wait until {} is synced and the groups scaled to 0",
            req.env
        ),
        req.env,
    );
    on(&LongEvent::Awaiting {
        what: format!(
            "{} is synced at {} and {} scaled to 0",
            req.env,
            short(&disabled),
            targets
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        timeout: req.timeout,
    });
    let scaled = wait_scaled_down(req, &disabled, &targets, on);
    let mut failure: Option<(String, Exit)> = None;
    let mut migrated = None;
    match scaled {
        Ok(names) => {
            on(&LongEvent::ScaledDown {
                deployments: &names,
            });
            rec.step(
                &format!("cluster migrate {} {}", req.env, req.service),
                req.env,
            );
            let m = migrate(
                &MigrateRequest {
                    site: req.site,
                    env: req.env,
                    service: req.service,
                    selector: req.selector,
                    dry_run: false,
                    timeout: req.timeout,
                    journal: req.journal,
                },
                &mut |_, _| true,
                &mut |ev| on(&LongEvent::Migrate(ev)),
            );
            match m {
                Ok(m) => {
                    on(&LongEvent::Migrated(&m));
                    migrated = Some(m);
                }
                Err(e) => failure = Some((format!("the migration failed: {e}"), e.exit())),
            }
        }
        Err(f) => failure = Some(f),
    }
    // The revert, always.
    rec.step(
        &format!("revert {} on {}, pushed", short(&disabled), plan.branch),
        &plan.branch,
    );
    let reverted = match repo.push_revert(&disabled, &plan.branch) {
        Ok(r) => r,
        Err(e) => {
            rec.finish(false);
            let what = failure
                .map(|(w, _)| w)
                .unwrap_or_else(|| "migrated".to_string());
            return Err(LongError::Failed {
                what,
                revert: format!(
                    "the revert of {} could not be pushed: {e}; its compensation stays pending: run `swh-deploy recover`",
                    short(&disabled)
                ),
                exit: Exit::Failed,
            });
        }
    };
    on(&LongEvent::Pushed {
        what: "reverted",
        branch: &plan.branch,
        commit: &reverted,
    });
    rec.step(
        &format!("cluster wait {} at {}", req.env, short(&reverted)),
        req.env,
    );
    on(&LongEvent::Awaiting {
        what: format!(
            "{} is live again at {} (the revert)",
            req.env,
            short(&reverted)
        ),
        timeout: req.timeout,
    });
    let live = wait_environment(
        &EnvWait {
            site: req.site,
            env: req.env,
            revision: Some(&reverted),
            charts_dir: Some(&charts_dir),
            timeout: req.timeout,
            interval: req.interval,
        },
        &mut |w| on(&LongEvent::Wait(w)),
    );
    let _ = rec.complete_compensation(comp);
    let live_err = match &live {
        Ok(r) if r.is_live() => {
            on(&LongEvent::Live(r));
            None
        }
        Ok(r) => Some((
            r.to_string(),
            if r.timed_out() {
                Exit::Timeout
            } else {
                Exit::Failed
            },
        )),
        Err(e) => Some((e.to_string(), Exit::Failed)),
    };
    rec.finish(failure.is_none() && live_err.is_none());
    let revert_text = |live: &Option<(String, Exit)>| match live {
        None => format!("reverted at {} and live again", short(&reverted)),
        Some((w, _)) => format!("reverted at {}, but not live: {w}", short(&reverted)),
    };
    if let Some((what, exit)) = failure {
        return Err(LongError::Failed {
            what,
            revert: revert_text(&live_err),
            exit,
        });
    }
    if let Some((w, exit)) = &live_err {
        return Err(LongError::Failed {
            what: "migrated".into(),
            revert: revert_text(&Some((w.clone(), *exit))),
            exit: *exit,
        });
    }
    Ok(LongMigrated::Done {
        migrated: migrated.unwrap_or(Migrated::UpToDate),
        disabled,
        reverted,
    })
}

/// Waits until `env` is live at `disabled` and the groups' deployments are
/// at 0 replicas; their names, or what went wrong and its exit.
fn wait_scaled_down(
    req: &LongMigrateRequest<'_>,
    disabled: &str,
    targets: &[Target],
    on: &mut dyn FnMut(&LongEvent<'_>),
) -> Result<Vec<String>, (String, Exit)> {
    let report = wait_environment(
        &EnvWait {
            site: req.site,
            env: req.env,
            revision: Some(disabled),
            charts_dir: None,
            timeout: req.timeout,
            interval: req.interval,
        },
        &mut |w| on(&LongEvent::Wait(w)),
    )
    .map_err(|e| (format!("waiting for the scale-down: {e}"), Exit::Failed))?;
    if !report.is_live() {
        let exit = if report.timed_out() {
            Exit::Timeout
        } else {
            Exit::Failed
        };
        return Err((
            format!("the groups were not scaled down: {report}; migration not run"),
            exit,
        ));
    }
    let Some((kube, ns)) =
        Kube::for_environment(req.site, req.env).map_err(|e| (e.to_string(), Exit::Failed))?
    else {
        return Ok(Vec::new());
    };
    let deployments = kube
        .deployments(&ns)
        .map_err(|e| (e.to_string(), Exit::Failed))?;
    let names: Vec<String> = deployments.iter().map(|d| d.name.clone()).collect();
    let ours = group_deployments(targets, &names);
    let running: Vec<String> = deployments
        .iter()
        .filter(|d| ours.contains(&d.name) && (d.spec_replicas != 0 || d.replicas != 0))
        .map(|d| format!("{} ({} replicas)", d.name, d.spec_replicas.max(d.replicas)))
        .collect();
    if !running.is_empty() {
        return Err((
            format!(
                "synced, but still running in {ns}: {}; migration not run",
                running.join(", ")
            ),
            Exit::Failed,
        ));
    }
    Ok(ours)
}

/// What [`recover_reverts`] did for one compensation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertRecovered {
    /// The compensation's id.
    pub id: i64,
    /// The run that recorded it.
    pub run: i64,
    /// `charts:<branch>`.
    pub target: String,
    /// What was done, or why it stays pending.
    pub detail: String,
    /// Whether it is done now.
    pub done: bool,
    /// The wait for Argo CD after the revert.
    pub waited: Waited,
}

/// How [`recover_reverts`] waited for Argo CD after a revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// No revert to wait for (never pushed, or nothing done).
    Nothing,
    /// Live again: the wait's final line.
    Live(String),
    /// Not live: the wait's final line; whether the timeout passed.
    NotLive {
        /// The wait's final line.
        report: String,
        /// The timeout passed first.
        timed_out: bool,
    },
    /// The revert is on the branch, but Argo CD could not be waited for.
    NotWaited {
        /// The environment to wait for (`ENV` when the run did not record it).
        env: String,
        /// Why.
        why: String,
    },
}

impl RevertRecovered {
    /// The exit code it means: 0 done (and live, or not waitable), 6 the
    /// wait timed out, else 1.
    pub fn exit(&self) -> Exit {
        match &self.waited {
            _ if !self.done => Exit::Failed,
            Waited::NotLive {
                timed_out: true, ..
            } => Exit::Timeout,
            Waited::NotLive { .. } => Exit::Failed,
            _ => Exit::Success,
        }
    }
}

impl fmt::Display for RevertRecovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.done {
            return write!(
                f,
                "  FAILED   elastic-revert {} (run {}): {}; still pending, run `swh-deploy recover` again",
                self.target, self.run, self.detail
            );
        }
        write!(
            f,
            "  done     elastic-revert {} (run {}): {}",
            self.target, self.run, self.detail
        )?;
        match &self.waited {
            Waited::Nothing => Ok(()),
            Waited::Live(line) => write!(f, "\n           {line}"),
            Waited::NotLive { report, .. } => write!(f, "\n  NOT LIVE {report}"),
            Waited::NotWaited { env, why } => write!(
                f,
                "\n           the revert is pushed, but Argo CD was not waited for ({why}): \
                 run `swh-deploy cluster wait {env}`"
            ),
        }
    }
}

/// How [`recover_reverts`] waits for Argo CD after a revert, as `cluster
/// wait` does.
pub struct RecoverWait<'a> {
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between polls.
    pub interval: Duration,
    /// Gets each progress event of the wait.
    pub progress: &'a mut dyn FnMut(&WaitEvent),
}

/// `swh-deploy recover`'s elastic part: for each pending
/// `elastic-revert:<commit>` compensation of a dead run (of `only`, or of
/// all), reverts the commit on its branch (the run's charts checkout) when
/// it is there and not reverted yet, pushes, and marks the compensation
/// done; when it was never pushed or is already reverted, just marks it
/// done. After a revert (made now or by the dead run), waits until the
/// run's environment is live again with `wait` (the run's site file);
/// when that cannot be done, says so. Live runs are left alone. Returns
/// what was done, and the runs left to their live process.
pub fn recover_reverts(
    journal: &mut Journal,
    only: Option<i64>,
    wait: &mut RecoverWait<'_>,
) -> Result<(Vec<RevertRecovered>, Vec<i64>), JournalError> {
    journal.reap_dead_runs()?;
    let mut done = Vec::new();
    let mut live = Vec::new();
    for c in journal.pending_compensations(only)? {
        let Some(commit) = c.action.strip_prefix(REVERT_ACTION) else {
            continue;
        };
        let run = journal.run(c.run)?;
        if run.status == RunStatus::Running {
            if !live.contains(&run.id) {
                live.push(run.id);
            }
            continue;
        }
        let branch = target_branch(&c);
        let dir = run.parameters["charts_dir"].as_str().map(PathBuf::from);
        // What was done, and the revision to wait for (None: the branch
        // head) when there is a revert to wait for.
        let outcome = (|| -> Result<(String, Option<Option<String>>), Error> {
            let dir = dir.as_ref().ok_or_else(|| {
                Error::Input(format!("run {} recorded no charts checkout", run.id))
            })?;
            let repo = ChartsRepo::open(dir)?;
            Ok(match repo.revert_state(commit, branch)? {
                RevertState::NotPushed => (
                    format!(
                        "{} never reached {branch}: nothing to revert",
                        short(commit)
                    ),
                    None,
                ),
                RevertState::Reverted(r) => (
                    format!("{} already reverted by {}", short(commit), short(&r)),
                    Some(None),
                ),
                RevertState::ToRevert { .. } => {
                    let r = repo.push_revert(commit, branch)?;
                    (
                        format!(
                            "reverted {} on {branch}: {branch} is now at {r}",
                            short(commit)
                        ),
                        Some(Some(r)),
                    )
                }
            })
        })();
        match outcome {
            Ok((detail, revision)) => {
                journal.complete_compensation(c.id)?;
                let waited = match revision {
                    None => Waited::Nothing,
                    Some(rev) => wait_after_revert(&run.parameters, dir.as_deref(), rev, wait),
                };
                done.push(RevertRecovered {
                    id: c.id,
                    run: c.run,
                    target: c.host.clone(),
                    detail,
                    done: true,
                    waited,
                });
            }
            Err(e) => done.push(RevertRecovered {
                id: c.id,
                run: c.run,
                target: c.host.clone(),
                detail: e.to_string(),
                done: false,
                waited: Waited::Nothing,
            }),
        }
    }
    Ok((done, live))
}

/// Waits until the environment the run recorded (`parameters`: `env`,
/// `site`) is live at `revision` (None: its chart branch's head on the
/// remote of `charts_dir`).
fn wait_after_revert(
    parameters: &serde_json::Value,
    charts_dir: Option<&Path>,
    revision: Option<String>,
    wait: &mut RecoverWait<'_>,
) -> Waited {
    let Some(env) = parameters["env"].as_str() else {
        return Waited::NotWaited {
            env: "ENV".into(),
            why: "the run recorded no environment".into(),
        };
    };
    let not_waited = |why: String| Waited::NotWaited {
        env: env.to_string(),
        why,
    };
    let Some(path) = parameters["site"].as_str() else {
        return not_waited("the run recorded no site file".into());
    };
    let site = match Site::load(Path::new(path)) {
        Ok(s) => s,
        Err(e) => return not_waited(e.to_string()),
    };
    let report = wait_environment(
        &EnvWait {
            site: &site,
            env,
            revision: revision.as_deref(),
            charts_dir,
            timeout: wait.timeout,
            interval: wait.interval,
        },
        wait.progress,
    );
    match report {
        Ok(r) if r.is_live() => Waited::Live(r.to_string()),
        Ok(r) => Waited::NotLive {
            report: r.to_string(),
            timed_out: r.timed_out(),
        },
        Err(e) => not_waited(e.to_string()),
    }
}

/// The branch of a `charts:<branch>` compensation target.
fn target_branch(c: &swh_deploy_journal::Compensation) -> &str {
    c.host.strip_prefix("charts:").unwrap_or(&c.host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_deployments_follow_the_templates_names() {
        let names: Vec<String> = ["loader-git", "loader-svn", "lister", "storage", "loaderx"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = |s: &str| Target::parse(s).unwrap();
        assert_eq!(
            group_deployments(&[t("loaders")], &names),
            ["loader-git", "loader-svn"]
        );
        assert_eq!(
            group_deployments(&[t("loaders.git"), t("listers")], &names),
            ["loader-git", "lister"]
        );
        assert!(group_deployments(&[t("indexers")], &names).is_empty());
    }

    #[test]
    fn top_level_keys_are_found_with_their_line() {
        let text = "namespace: swh\nloaders:\n  enabled: true\nloadersx: 1\n  listers:\n";
        assert_eq!(top_level_line(text, "loaders"), Some(2));
        assert_eq!(top_level_line(text, "listers"), None);
        assert_eq!(top_level_line(text, "namespace"), Some(1));
    }
}
