//! Waiting for an environment to be live at a revision: the Argo CD
//! application, then the deployments of its namespace.

use crate::argocd::{short, AppStatus, ArgoCd};
use crate::kube::Kube;
use crate::rollout::RolloutState;
use crate::Error;
use std::time::{Duration, Instant};

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
