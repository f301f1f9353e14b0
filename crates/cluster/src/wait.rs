//! Waiting for an environment to be live at a revision: the Argo CD
//! application, then the deployments of its namespace.

use crate::argocd::{short, AppStatus, ArgoCd};
use crate::kube::Kube;
use crate::rollout::RolloutState;
use crate::Error;
use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use swh_deploy_site::Site;
use swh_deploy_util::progress::elapsed_prefix;

/// What to wait for.
#[derive(Debug)]
pub struct WaitTarget<'a> {
    /// Argo CD server.
    pub argocd: &'a ArgoCd,
    /// Application name.
    pub application: &'a str,
    /// The commit that must be live.
    pub revision: &'a str,
    /// Kubernetes API of the environment and namespace whose deployments
    /// must be rolled out (None: Argo CD's health only).
    pub kube: Option<(&'a Kube, &'a str)>,
}

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Live and healthy; the number of deployments checked.
    Live {
        /// The application's last status.
        app: AppStatus,
        /// Deployments found rolled out in the namespace.
        deployments: usize,
    },
    /// Failed: which application, deployment or condition.
    Failed(String),
    /// Timed out; the last state seen.
    TimedOut(String),
}

/// Polls every `interval` until live at the revision, failed, or `timeout`.
/// `progress` gets a line each time the observed state changes. Transport
/// errors are retried until the timeout (reported with the last state);
/// authentication and not-found errors end the wait at once.
pub fn wait_live(
    target: &WaitTarget<'_>,
    timeout: Duration,
    interval: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<WaitOutcome, Error> {
    let start = Instant::now();
    let mut last = String::new();
    let mut first = true;
    loop {
        let state = match poll(target, first) {
            Ok(Poll::Done(o)) => return Ok(o),
            Ok(Poll::Pending(s)) => s,
            Err(Error::Transport { url, message }) => format!("{url}: {message} (retrying)"),
            Err(e) => return Err(e),
        };
        first = false;
        if state != last {
            progress(&state);
            last = state;
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Ok(WaitOutcome::TimedOut(last));
        }
        std::thread::sleep(interval.min(timeout - elapsed));
    }
}

enum Poll {
    Done(WaitOutcome),
    Pending(String),
}

fn poll(t: &WaitTarget<'_>, refresh: bool) -> Result<Poll, Error> {
    let app = t.argocd.application(t.application, refresh)?;
    if let Some(f) = app.failure_at(t.revision) {
        let mut why = f;
        if let Some((kube, ns)) = t.kube {
            for d in kube.deployments(ns)? {
                if let RolloutState::Failed(m) = d.rollout() {
                    why.push_str(&format!("; {m}"));
                }
            }
        }
        return Ok(Poll::Done(WaitOutcome::Failed(why)));
    }
    let head = format!("{}: {}", t.application, app.describe());
    if app.revision != t.revision || app.sync != "Synced" || app.phase != "Succeeded" {
        return Ok(Poll::Pending(format!(
            "{head} (waiting for {})",
            short(t.revision)
        )));
    }
    let mut count = 0;
    if let Some((kube, ns)) = t.kube {
        let deployments = kube.deployments(ns)?;
        let mut failed = Vec::new();
        let mut waiting = None;
        for d in &deployments {
            match d.rollout() {
                RolloutState::Complete => count += 1,
                RolloutState::Failed(m) => failed.push(m),
                RolloutState::Waiting(m) => {
                    waiting.get_or_insert(m);
                }
            }
        }
        if !failed.is_empty() {
            return Ok(Poll::Done(WaitOutcome::Failed(format!(
                "{} (namespace {ns}, context {}); {head}",
                failed.join("; "),
                kube.context()
            ))));
        }
        if let Some(m) = waiting {
            return Ok(Poll::Pending(format!("{head}; {m}")));
        }
    }
    if app.health != "Healthy" {
        return Ok(Poll::Pending(head));
    }
    Ok(Poll::Done(WaitOutcome::Live {
        app,
        deployments: count,
    }))
}

/// `cluster wait ENV`: what to wait for, named as in the site file.
#[derive(Debug, Clone)]
pub struct EnvWait<'a> {
    /// The site file.
    pub site: &'a Site,
    /// The environment (`[environments.ENV]`: its argocd_application,
    /// chart_branch, kube_context, namespace).
    pub env: &'a str,
    /// The chart commit that must be live (a full commit id, see
    /// [`full_commit_id`]); None: the head of the environment's chart
    /// branch on the charts checkout's remote.
    pub revision: Option<&'a str>,
    /// The swh-charts checkout whose remote gives the branch head (None:
    /// the site file's `[charts] checkout`).
    pub charts_dir: Option<&'a Path>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between polls.
    pub interval: Duration,
}

/// What [`wait_environment`] reports while it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEvent {
    /// No revision was given: waiting for the branch's head on the remote.
    BranchHead {
        /// The environment.
        env: String,
        /// Its chart branch.
        branch: String,
        /// The branch's head.
        head: String,
    },
    /// The environment has no kube_context/namespace: Argo CD's health
    /// only.
    ArgoCdOnly {
        /// The environment.
        env: String,
    },
    /// The observed state changed.
    State {
        /// The environment.
        env: String,
        /// Time since the wait started.
        elapsed: Duration,
        /// The state.
        line: String,
    },
}

impl WaitEvent {
    /// For [`WaitEvent::State`]: what is awaited now (`ENV: STATE`) and
    /// when the wait started (the clock of its lines), for a ticker until
    /// the next event.
    pub fn waiting(&self) -> Option<(String, Instant)> {
        match self {
            WaitEvent::State { env, elapsed, line } => Some((
                format!("{env}: {line}"),
                Instant::now()
                    .checked_sub(*elapsed)
                    .unwrap_or_else(Instant::now),
            )),
            _ => None,
        }
    }
}

impl fmt::Display for WaitEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitEvent::BranchHead { env, branch, head } => {
                write!(f, "{env}: waiting for {branch}'s head {}", short(head))
            }
            WaitEvent::ArgoCdOnly { env } => write!(
                f,
                "{env}: no kube_context/namespace in the site file: checking Argo CD's health only, not the deployments"
            ),
            WaitEvent::State { env, elapsed, line } => {
                write!(f, "{} {env}: {line}", elapsed_prefix(*elapsed))
            }
        }
    }
}

/// How [`wait_environment`] ended. Its `Display` is the final line: for
/// [`WaitOutcome::Live`] the success message, otherwise what failed or
/// what was last seen before the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWaitReport {
    /// The environment.
    pub env: String,
    /// The revision waited for.
    pub revision: String,
    /// The namespace whose deployments were checked (empty when none).
    pub namespace: String,
    /// Whether the deployments were checked (kube_context and namespace
    /// set), not only Argo CD's health.
    pub deployments_checked: bool,
    /// The timeout that applied.
    pub timeout: Duration,
    /// How the wait ended.
    pub outcome: WaitOutcome,
}

impl EnvWaitReport {
    /// Live and healthy at the revision.
    pub fn is_live(&self) -> bool {
        matches!(self.outcome, WaitOutcome::Live { .. })
    }

    /// The timeout passed first.
    pub fn timed_out(&self) -> bool {
        matches!(self.outcome, WaitOutcome::TimedOut(_))
    }
}

impl fmt::Display for EnvWaitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (env, rev) = (&self.env, short(&self.revision));
        match &self.outcome {
            WaitOutcome::Live { app, deployments } => {
                write!(f, "{env} is live at {rev}: {} {}", app.name, app.describe())?;
                if self.deployments_checked {
                    write!(
                        f,
                        "; {deployments} deployment(s) rolled out in {}",
                        self.namespace
                    )?;
                }
                Ok(())
            }
            WaitOutcome::Failed(why) => write!(f, "{env} failed at {rev}: {why}"),
            WaitOutcome::TimedOut(last) => write!(
                f,
                "{env} not live at {rev} after {:?}; last: {last}",
                self.timeout
            ),
        }
    }
}

/// `rev` as a full (40-hex) commit id, lower-cased; None when it is not
/// one.
pub fn full_commit_id(rev: &str) -> Option<String> {
    (rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| rev.to_ascii_lowercase())
}

/// The head of `branch` on the remote of the swh-charts checkout
/// (`charts_dir`, else the site file's `[charts] checkout`; the remote is
/// `[charts] remote`, default `origin`), by `git ls-remote`.
pub fn remote_branch_head(
    site: &Site,
    charts_dir: Option<&Path>,
    branch: &str,
) -> Result<String, Error> {
    let dir = charts_dir
        .map(Path::to_path_buf)
        .or_else(|| site.charts.as_ref().map(|c| c.checkout.clone()))
        .ok_or_else(|| Error::Config(
            "no swh-charts checkout to find the branch head: pass --revision SHA or --charts-dir DIR (or set [charts] in the site file)".into(),
        ))?;
    let remote = site
        .charts
        .as_ref()
        .map(|c| c.remote.clone())
        .unwrap_or_else(|| "origin".into());
    let out = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["ls-remote", "--", &remote, &format!("refs/heads/{branch}")])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| Error::Config(format!("running git ls-remote in {}: {e}", dir.display())))?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "git ls-remote {remote} refs/heads/{branch} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(String::from)
        .ok_or_else(|| {
            Error::Config(format!(
                "remote {remote} of {} has no branch {branch}",
                dir.display()
            ))
        })
}

/// Waits until the environment `req.env` is live at `req.revision` (or its
/// chart branch's head): its Argo CD application, then the deployments of
/// its namespace when the site file names its kube_context and namespace.
/// `progress` gets each [`WaitEvent`]. A failed or timed-out rollout is a
/// report, not an error; errors are configuration and API problems.
pub fn wait_environment(
    req: &EnvWait<'_>,
    progress: &mut dyn FnMut(&WaitEvent),
) -> Result<EnvWaitReport, Error> {
    let site = req.site;
    let env_name = req.env;
    let env = site
        .environment(env_name)
        .map_err(|e| Error::Config(e.to_string()))?;
    let app = env.argocd_application.as_deref().ok_or_else(|| {
        Error::Config(format!(
            "{}: environment {env_name} has no argocd_application",
            site.path.display()
        ))
    })?;
    let argocd = ArgoCd::from_site(site)?
        .ok_or_else(|| Error::Config(format!("{}: no [argocd] section", site.path.display())))?;
    let revision = match req.revision {
        Some(r) => full_commit_id(r).ok_or_else(|| {
            Error::Input(format!(
                "--revision {r:?}: expected a full 40-hex commit id"
            ))
        })?,
        None => {
            let branch = env.chart_branch.as_deref().unwrap_or(env_name);
            let head = remote_branch_head(site, req.charts_dir, branch)?;
            progress(&WaitEvent::BranchHead {
                env: env_name.to_string(),
                branch: branch.to_string(),
                head: head.clone(),
            });
            head
        }
    };
    let cluster = Kube::for_environment(site, env_name)?;
    if cluster.is_none() {
        progress(&WaitEvent::ArgoCdOnly {
            env: env_name.to_string(),
        });
    }
    let ns = env.namespace.clone().unwrap_or_default();
    let target = WaitTarget {
        argocd: &argocd,
        application: app,
        revision: &revision,
        kube: cluster.as_ref().map(|(k, ns)| (k, ns.as_str())),
    };
    let start = Instant::now();
    let outcome = wait_live(&target, req.timeout, req.interval, &mut |line| {
        progress(&WaitEvent::State {
            env: env_name.to_string(),
            elapsed: start.elapsed(),
            line: line.to_string(),
        })
    })?;
    Ok(EnvWaitReport {
        env: env_name.to_string(),
        revision,
        namespace: ns,
        deployments_checked: cluster.is_some(),
        timeout: req.timeout,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argocd::AppStatus;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn commit_ids_must_be_full() {
        let id = "A".repeat(40);
        assert_eq!(full_commit_id(&id), Some("a".repeat(40)));
        assert_eq!(full_commit_id("abc123"), None);
        assert_eq!(full_commit_id(&"g".repeat(40)), None);
    }

    #[test]
    fn branch_head_from_the_checkouts_remote() {
        let d = tempfile::tempdir().unwrap();
        let (bare, work) = (d.path().join("remote.git"), d.path().join("work"));
        git(d.path(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
        git(
            d.path(),
            &["init", "-q", "-b", "staging", work.to_str().unwrap()],
        );
        git(&work, &["commit", "-q", "--allow-empty", "-m", "one"]);
        git(&work, &["remote", "add", "up", bare.to_str().unwrap()]);
        git(&work, &["push", "-q", "up", "staging"]);
        let head = git(&work, &["rev-parse", "HEAD"]);
        let text = format!(
            "[charts]\ncheckout = {:?}\nremote = \"up\"\n",
            work.display()
        );
        let site = Site::parse(&text, &d.path().join("site.toml")).unwrap();
        assert_eq!(remote_branch_head(&site, None, "staging").unwrap(), head);
        let e = remote_branch_head(&site, None, "production").unwrap_err();
        assert!(e.to_string().contains("has no branch production"), "{e}");
        let none = Site::parse("", &d.path().join("site.toml")).unwrap();
        assert!(remote_branch_head(&none, None, "staging")
            .unwrap_err()
            .to_string()
            .contains("no swh-charts checkout"));
        let e = remote_branch_head(&none, Some(&work), "staging").unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "git ls-remote origin refs/heads/staging in {}: ",
                work.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn reports_say_how_the_wait_ended() {
        let app = AppStatus {
            name: "swh-staging".into(),
            sync: "Synced".into(),
            revision: "a".repeat(40),
            health: "Healthy".into(),
            phase: "Succeeded".into(),
            message: String::new(),
            operation_revision: String::new(),
        };
        let mut r = EnvWaitReport {
            env: "staging".into(),
            revision: "a".repeat(40),
            namespace: "swh".into(),
            deployments_checked: true,
            timeout: Duration::from_secs(90),
            outcome: WaitOutcome::Live {
                app: app.clone(),
                deployments: 3,
            },
        };
        assert!(r.is_live() && !r.timed_out());
        let live = r.to_string();
        assert!(
            live.starts_with("staging is live at aaaaaaaaaaaa: swh-staging "),
            "{live}"
        );
        assert!(
            live.ends_with("; 3 deployment(s) rolled out in swh"),
            "{live}"
        );
        r.deployments_checked = false;
        assert!(!r.to_string().contains("rolled out"));
        r.outcome = WaitOutcome::TimedOut("still syncing".into());
        assert!(r.timed_out());
        assert_eq!(
            r.to_string(),
            "staging not live at aaaaaaaaaaaa after 90s; last: still syncing"
        );
        r.outcome = WaitOutcome::Failed("Degraded".into());
        assert_eq!(r.to_string(), "staging failed at aaaaaaaaaaaa: Degraded");
    }
}
