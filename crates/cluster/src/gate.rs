//! The promotion gate: before `chart promote` fast-forwards an environment,
//! the environment it promotes from must be live (Argo CD) at its branch
//! head.

//!
//! By default the gate is checked **once**: a promotion is refused when the
//! source is not live now (the sysadmin waits with `cluster wait` and runs
//! it again). `chart promote --wait-gate[=TIMEOUT]` polls it instead
//! ([`wait_promote_gate`]) with the same progress lines as `cluster wait`.

use crate::argocd::{short, ArgoCd};
use crate::Error;
use std::time::{Duration, Instant};
use swh_deploy_site::{Environment, Site};
use swh_deploy_util::progress::elapsed_prefix;

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    /// The source environment is live and healthy at the revision.
    Open(String),
    /// It is not: why.
    Closed(String),
    /// No check possible (no `[argocd]`, or the environment has no
    /// application): why. Not a refusal.
    Skipped(String),
}

/// The site environment deployed from a chart branch: the one whose
/// `chart_branch` is `branch`, else the one named `branch`.
pub fn environment_of_branch<'a>(site: &'a Site, branch: &str) -> Option<&'a Environment> {
    site.environments
        .values()
        .find(|e| e.chart_branch.as_deref() == Some(branch))
        .or_else(|| {
            site.environments
                .get(branch)
                .filter(|e| e.chart_branch.is_none())
        })
}

/// Checks once that the environment deployed from `source_branch` is live
/// at `revision` (its Argo CD application synced there, operation
/// succeeded, healthy).
pub fn promote_gate(
    site: Option<&Site>,
    source_branch: &str,
    revision: &str,
) -> Result<GateOutcome, Error> {
    gate_state(site, source_branch, revision).map(|(o, _)| o)
}

/// How long [`wait_promote_gate`] waits, and how often it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateWait {
    /// Give up (refuse) after this long.
    pub timeout: Duration,
    /// Time between polls.
    pub interval: Duration,
}

/// [`promote_gate`] polled every `wait.interval` until it is open or
/// skipped, the source failed at `revision` (a failed sync operation,
/// Degraded: closed at once), or `wait.timeout` passed (closed, with the
/// last state). `progress` gets `[  12.3s] STATE` on the first poll and
/// each time the state changes. Unreachable Argo CD is retried until the
/// timeout; other errors end the wait.
pub fn wait_promote_gate(
    site: Option<&Site>,
    source_branch: &str,
    revision: &str,
    wait: &GateWait,
    progress: &mut dyn FnMut(&str),
) -> Result<GateOutcome, Error> {
    let start = Instant::now();
    let mut last = None;
    loop {
        let (outcome, failed) = match gate_state(site, source_branch, revision) {
            Ok(s) => s,
            Err(Error::Transport { url, message }) => (
                GateOutcome::Closed(format!("{url}: {message} (retrying)")),
                false,
            ),
            Err(e) => return Err(e),
        };
        let line = match &outcome {
            GateOutcome::Skipped(_) => return Ok(outcome),
            GateOutcome::Open(m) | GateOutcome::Closed(m) => m.clone(),
        };
        if last.as_ref() != Some(&line) {
            progress(&format!("{} {line}", elapsed_prefix(start.elapsed())));
            last = Some(line);
        }
        let GateOutcome::Closed(why) = outcome else {
            return Ok(outcome);
        };
        let elapsed = start.elapsed();
        if failed {
            return Ok(GateOutcome::Closed(why));
        }
        if elapsed >= wait.timeout {
            return Ok(GateOutcome::Closed(format!(
                "{why} (still, after waiting {:?})",
                wait.timeout
            )));
        }
        std::thread::sleep(wait.interval.min(wait.timeout - elapsed));
    }
}

/// The gate's state, and whether the source failed at `revision`.
fn gate_state(
    site: Option<&Site>,
    source_branch: &str,
    revision: &str,
) -> Result<(GateOutcome, bool), Error> {
    let Some(site) = site else {
        return Ok((
            GateOutcome::Skipped("no site file, so no [argocd] to ask".into()),
            false,
        ));
    };
    let Some(env) = environment_of_branch(site, source_branch) else {
        return Ok((
            GateOutcome::Skipped(format!(
                "no environment of {} deploys branch {source_branch}",
                site.path.display()
            )),
            false,
        ));
    };
    let Some(app_name) = env.argocd_application.as_deref() else {
        return Ok((
            GateOutcome::Skipped(format!(
                "environment {} has no argocd_application",
                env.name
            )),
            false,
        ));
    };
    let Some(argocd) = ArgoCd::from_site(site)? else {
        return Ok((
            GateOutcome::Skipped(format!("no [argocd] in {}", site.path.display())),
            false,
        ));
    };
    let app = argocd.application(app_name, true)?;
    if app.is_live_at(revision) {
        Ok((
            GateOutcome::Open(format!(
                "{} ({app_name}) is live at {}: {}",
                env.name,
                short(revision),
                app.describe()
            )),
            false,
        ))
    } else {
        Ok((
            GateOutcome::Closed(format!(
                "{} ({app_name}) is not live at {source_branch}'s head {}: {}",
                env.name,
                short(revision),
                app.describe()
            )),
            app.failure_at(revision).is_some(),
        ))
    }
}

/// Why a promotion passes the gate: the line printed and the note
/// journaled differ (see [`PromotionGate::journal_note`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionGate {
    /// `--no-gate`: the source environment is not checked.
    NotChecked {
        /// The source branch.
        source_branch: String,
    },
    /// The source environment is live and healthy at the revision.
    Open(String),
    /// No check possible (see [`GateOutcome::Skipped`]).
    Skipped(String),
}

impl PromotionGate {
    /// The gate's note for the journal: `open: ...`, `skipped: ...`.
    pub fn journal_note(&self) -> String {
        match self {
            PromotionGate::NotChecked { .. } => "skipped: --no-gate".into(),
            PromotionGate::Open(m) => format!("open: {m}"),
            PromotionGate::Skipped(m) => format!("skipped: {m}"),
        }
    }
}

impl std::fmt::Display for PromotionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PromotionGate::NotChecked { source_branch } => write!(
                f,
                "gate: skipped (--no-gate): {source_branch} is not checked in Argo CD"
            ),
            PromotionGate::Open(m) => write!(f, "gate: {m}"),
            PromotionGate::Skipped(m) => write!(f, "gate: skipped: {m}"),
        }
    }
}

/// A promotion the gate refuses.
#[derive(Debug, thiserror::Error)]
pub enum GateRefusal {
    /// The source environment is not live at the revision.
    #[error("refusing to promote from {source_branch}: {why}.\nWait for it (`swh-deploy cluster wait <env>`), or pass --no-gate to promote anyway")]
    Closed {
        /// The source branch.
        source_branch: String,
        /// What Argo CD shows.
        why: String,
    },
    /// Argo CD could not be asked.
    #[error("refusing to promote from {source_branch}: the Argo CD gate could not be checked: {source} (--no-gate skips it)")]
    Unchecked {
        /// The source branch.
        source_branch: String,
        /// Why.
        source: Error,
    },
}

impl GateRefusal {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed)
    /// (a refusal).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// The gate of `chart promote` (see [`promote_gate`]), unless `no_gate`:
/// `Ok` to go on, `Err` to refuse. With `wait`, polled until open (see
/// [`wait_promote_gate`]; `progress` gets its lines, after one saying what
/// is awaited); without, checked once.
pub fn promotion_gate(
    site: Option<&Site>,
    source_branch: &str,
    revision: &str,
    no_gate: bool,
    wait: Option<&GateWait>,
    progress: &mut dyn FnMut(&str),
) -> Result<PromotionGate, GateRefusal> {
    if no_gate {
        return Ok(PromotionGate::NotChecked {
            source_branch: source_branch.to_string(),
        });
    }
    let outcome = match wait {
        None => promote_gate(site, source_branch, revision),
        Some(w) => {
            progress(&format!(
                "gate: waiting until the environment of {source_branch} is live at {} (at most {:?}, polled every {:?})",
                short(revision),
                w.timeout,
                w.interval
            ));
            wait_promote_gate(site, source_branch, revision, w, progress)
        }
    };
    match outcome {
        Ok(GateOutcome::Open(m)) => Ok(PromotionGate::Open(m)),
        Ok(GateOutcome::Skipped(m)) => Ok(PromotionGate::Skipped(m)),
        Ok(GateOutcome::Closed(why)) => Err(GateRefusal::Closed {
            source_branch: source_branch.to_string(),
            why,
        }),
        Err(source) => Err(GateRefusal::Unchecked {
            source_branch: source_branch.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gate_passes_without_a_site_and_says_so() {
        let g = promotion_gate(None, "staging", "abc", true, None, &mut |_| {}).unwrap();
        assert_eq!(
            g.to_string(),
            "gate: skipped (--no-gate): staging is not checked in Argo CD"
        );
        assert_eq!(g.journal_note(), "skipped: --no-gate");
    }

    #[test]
    fn without_a_site_the_gate_is_skipped_not_refused() {
        let g = promotion_gate(None, "staging", "abc", false, None, &mut |_| {}).unwrap();
        assert_eq!(
            g.to_string(),
            "gate: skipped: no site file, so no [argocd] to ask"
        );
        assert_eq!(
            g.journal_note(),
            "skipped: no site file, so no [argocd] to ask"
        );
    }

    #[test]
    fn refusals_name_the_branch_and_the_way_out() {
        let r = GateRefusal::Closed {
            source_branch: "staging".into(),
            why: "staging (swh-staging) is not live".into(),
        };
        let m = r.to_string();
        assert!(
            m.starts_with("refusing to promote from staging: staging (swh-staging) is not live.\n")
        );
        assert!(m.contains("--no-gate"));
    }
}
