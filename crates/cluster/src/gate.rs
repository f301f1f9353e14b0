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
