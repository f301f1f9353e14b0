//! The promotion gate: before `chart promote` fast-forwards an environment,
//! the environment it promotes from must be live (Argo CD) at its branch
//! head.

use crate::argocd::{short, ArgoCd};
use crate::Error;
use swh_deploy_site::{Environment, Site};

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
    let Some(site) = site else {
        return Ok(GateOutcome::Skipped(
            "no site file, so no [argocd] to ask".into(),
        ));
    };
    let Some(env) = environment_of_branch(site, source_branch) else {
        return Ok(GateOutcome::Skipped(format!(
            "no environment of {} deploys branch {source_branch}",
            site.path.display()
        )));
    };
    let Some(app_name) = env.argocd_application.as_deref() else {
        return Ok(GateOutcome::Skipped(format!(
            "environment {} has no argocd_application",
            env.name
        )));
    };
    let Some(argocd) = ArgoCd::from_site(site)? else {
        return Ok(GateOutcome::Skipped(format!(
            "no [argocd] in {}",
            site.path.display()
        )));
    };
    let app = argocd.application(app_name, true)?;
    if app.is_live_at(revision) {
        Ok(GateOutcome::Open(format!(
            "{} ({app_name}) is live at {}: {}",
            env.name,
            short(revision),
            app.describe()
        )))
    } else {
        Ok(GateOutcome::Closed(format!(
            "{} ({app_name}) is not live at {source_branch}'s head {}: {}",
            env.name,
            short(revision),
            app.describe()
        )))
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
/// `Ok` to go on, `Err` to refuse.
pub fn promotion_gate(
    site: Option<&Site>,
    source_branch: &str,
    revision: &str,
    no_gate: bool,
) -> Result<PromotionGate, GateRefusal> {
    if no_gate {
        return Ok(PromotionGate::NotChecked {
            source_branch: source_branch.to_string(),
        });
    }
    match promote_gate(site, source_branch, revision) {
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
        let g = promotion_gate(None, "staging", "abc", true).unwrap();
        assert_eq!(
            g.to_string(),
            "gate: skipped (--no-gate): staging is not checked in Argo CD"
        );
        assert_eq!(g.journal_note(), "skipped: --no-gate");
    }

    #[test]
    fn without_a_site_the_gate_is_skipped_not_refused() {
        let g = promotion_gate(None, "staging", "abc", false).unwrap();
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
