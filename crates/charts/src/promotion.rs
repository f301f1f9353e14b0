//! `chart promote`, whole: plan the fast-forward into an environment, show
//! what it carries, check that every image it deploys exists, pass the
//! Argo CD gate of the source environment, push, journal and annotate.
//!
//! [`promote`] prints nothing: it hands each [`PromoteEvent`] to the
//! caller as it happens (their `Display` is the text to show), and returns
//! a [`Promoted`] or a [`PromoteError`].

use crate::gitlab::{next_version_application, NextVersionApp};
use crate::image_check::{check_images, ImageCheck};
use crate::{ChartsRepo, Env, Error, PromoteOutcome, VersionChange};
use std::fmt;
use std::path::Path;
use swh_deploy_cluster::gate::{promotion_gate, GateRefusal, GateWait, PromotionGate};
use swh_deploy_cluster::grafana::{annotate_deployment, Annotated, Annotation};
use swh_deploy_journal::{JournalError, Recorder};
use swh_deploy_site::Site;

/// What to promote, and how.
#[derive(Debug, Clone, Copy)]
pub struct PromoteRequest<'a> {
    /// The site file (registry, Argo CD, environments), if any.
    pub site: Option<&'a Site>,
    /// The environment promoted into.
    pub env: Env,
    /// Show what would be promoted; push nothing.
    pub dry_run: bool,
    /// Skip the Argo CD gate (recorded in the journal).
    pub no_gate: bool,
    /// Wait for the gate to open, bounded (`None`: check it once and
    /// refuse at once when closed).
    pub wait_gate: Option<GateWait>,
    /// The GitLab token for the next-version merge request lookup
    /// (`$GITLAB_TOKEN`), sent as `PRIVATE-TOKEN`, never shown.
    pub gitlab_token: Option<&'a str>,
    /// The journal (`None`: the default one).
    pub journal: Option<&'a Path>,
}

/// What [`promote`] reports as it goes. `Display` gives the text to show;
/// [`PromoteEvent::is_diagnostic`] tells the ones meant for stderr.
#[derive(Debug)]
pub enum PromoteEvent<'a> {
    /// The plan: the rebase of the source (if any) and the commits.
    Plan {
        /// The plan.
        plan: &'a PromoteOutcome,
        /// A dry run (nothing pushed).
        dry_run: bool,
    },
    /// The effective values change of the target's application.
    ValuesDiff {
        /// The target.
        to: Env,
        /// Key, before, after.
        diff: &'a [VersionChange],
    },
    /// The registry check of the images the target would deploy.
    Images(&'a ImageCheck),
    /// The image version changes being promoted.
    ImageChanges(&'a [VersionChange]),
    /// Dry run: the end.
    DryRun,
    /// The next-version Application named by the open merge request.
    NextVersion(&'a NextVersionApp),
    /// Waiting for the gate (stderr): what is awaited, then a
    /// `[  12.3s] STATE` line per change of state.
    GateProgress(&'a str),
    /// The gate passed.
    Gate(&'a PromotionGate),
    /// Pushed: the target's new head.
    Promoted {
        /// The target.
        to: Env,
        /// Its new head.
        head: &'a str,
    },
    /// The Grafana annotation (stderr).
    Annotation(&'a Annotated),
}

impl PromoteEvent<'_> {
    /// Whether the event is a diagnostic (stderr) rather than output.
    pub fn is_diagnostic(&self) -> bool {
        matches!(
            self,
            PromoteEvent::Annotation(_) | PromoteEvent::GateProgress(_)
        )
    }
}

fn or_absent(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(absent)")
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

fn changes_lines(f: &mut fmt::Formatter<'_>, changes: &[VersionChange]) -> fmt::Result {
    for (k, a, b) in changes {
        write!(f, "\n  {k}: {} -> {}", or_absent(a), or_absent(b))?;
    }
    Ok(())
}

impl fmt::Display for PromoteEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromoteEvent::Plan { plan, dry_run } => {
                if let Some(r) = &plan.rebase {
                    write!(
                        f,
                        "{} has {} commit(s) that {} lacks; rebasing {} onto {}: {} -> {}{}",
                        plan.to,
                        r.onto.len(),
                        plan.from,
                        plan.from,
                        plan.to,
                        short(&r.old),
                        short(&r.new),
                        if *dry_run {
                            " (dry run: not pushed)"
                        } else {
                            ""
                        }
                    )?;
                    for c in &r.onto {
                        write!(f, "\n  {c}")?;
                    }
                    f.write_str("\n")?;
                }
                write!(
                    f,
                    "promoting {} -> {} ({} commit(s)):",
                    plan.from,
                    plan.to,
                    plan.commits.len()
                )?;
                for c in &plan.commits {
                    write!(f, "\n  {c}")?;
                }
                Ok(())
            }
            PromoteEvent::ValuesDiff { to, diff } => {
                write!(
                    f,
                    "values of {to}'s application (valueFiles merged as Helm does), {} change(s):",
                    diff.len()
                )?;
                changes_lines(f, diff)
            }
            PromoteEvent::Images(check) => write!(f, "{check}"),
            PromoteEvent::ImageChanges([]) => f.write_str("no image version changes"),
            PromoteEvent::ImageChanges(changes) => {
                f.write_str("image version changes:")?;
                changes_lines(f, changes)
            }
            PromoteEvent::DryRun => f.write_str("dry run: nothing pushed"),
            PromoteEvent::NextVersion(app) => write!(f, "{app}"),
            PromoteEvent::GateProgress(line) => f.write_str(line),
            PromoteEvent::Gate(g) => write!(f, "{g}"),
            PromoteEvent::Promoted { to, head } => write!(f, "{to} is now at {head}"),
            PromoteEvent::Annotation(a) => write!(f, "{a}"),
        }
    }
}

/// How [`promote`] ended well.
#[derive(Debug, Clone)]
pub enum Promoted {
    /// Source and target are at the same commit.
    Nothing {
        /// The source.
        from: Env,
        /// The target.
        to: Env,
    },
    /// A dry run: the plan, nothing pushed.
    DryRun(PromoteOutcome),
    /// Pushed, past this gate.
    Pushed {
        /// The promotion.
        plan: PromoteOutcome,
        /// The gate's verdict.
        gate: PromotionGate,
    },
}

impl fmt::Display for Promoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Promoted::Nothing { from, to } => {
                write!(
                    f,
                    "nothing to promote: {from} and {to} are at the same commit"
                )
            }
            Promoted::DryRun(p) => write!(f, "{} -> {}: dry run", p.from, p.to),
            Promoted::Pushed { plan, .. } => write!(f, "{} promoted", plan.to),
        }
    }
}

/// Why [`promote`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// The charts checkout, the values, the registry check, the merge
    /// request lookup or the push.
    #[error(transparent)]
    Charts(#[from] Error),
    /// The Argo CD gate refused.
    #[error(transparent)]
    Gate(#[from] GateRefusal),
    /// The gate refused, and the source was rebased onto the target: the
    /// rebased source was pushed alone so that its environment deploys it.
    #[error("{from} was rebased onto {to} and pushed ({}); {to} is not promoted yet: {refusal}\nRun `chart promote {to}` again once {from} is live at {}", short(rebased), short(rebased))]
    RebasedOnly {
        /// The source.
        from: Env,
        /// The target.
        to: Env,
        /// The rebased source commit, pushed.
        rebased: String,
        /// The gate's refusal.
        refusal: GateRefusal,
    },
    /// The journal could not be opened.
    #[error("{0}")]
    Journal(#[from] JournalError),
}

impl PromoteError {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed)
    /// (refused or failed; nothing was promoted).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// The Grafana annotation of a pushed promotion: tagged with the target
/// environment and the apps whose image versions changed.
pub fn promotion_annotation(plan: &PromoteOutcome) -> Annotation {
    let what: Vec<String> = plan
        .changes
        .iter()
        .map(|(k, a, b)| format!("{k} {} -> {}", or_absent(a), or_absent(b)))
        .collect();
    let head = plan.new_head.as_deref().unwrap_or("");
    Annotation {
        environment: plan.to.branch().to_string(),
        services: plan.changes.iter().map(|(k, _, _)| k.clone()).collect(),
        text: format!(
            "chart promote {} -> {}: {} ({} at {})",
            plan.from,
            plan.to,
            if what.is_empty() {
                "no image change".to_string()
            } else {
                what.join(", ")
            },
            plan.to,
            short(head)
        ),
    }
}

/// Plans the promotion into `req.env`, reports the commits, the values and
/// image version changes and the registry check, and (unless
/// `req.dry_run`) checks the Argo CD gate of the source environment
/// (unless `req.no_gate`) and pushes, journaled as a `chart promote` run,
/// then posts the Grafana annotation.
pub fn promote(
    repo: &ChartsRepo,
    req: &PromoteRequest<'_>,
    on: &mut dyn FnMut(&PromoteEvent<'_>),
) -> Result<Promoted, PromoteError> {
    let site = req.site;
    let plan = repo.plan_promote(req.env)?;
    let Some(head) = plan.new_head.clone() else {
        return Ok(Promoted::Nothing {
            from: plan.from,
            to: plan.to,
        });
    };
    on(&PromoteEvent::Plan {
        plan: &plan,
        dry_run: req.dry_run,
    });
    let current = format!("{}/{}", repo.remote(), plan.to.branch());
    let diff = repo.values_diff(&current, &head, plan.to)?;
    on(&PromoteEvent::ValuesDiff {
        to: plan.to,
        diff: &diff,
    });
    let check = check_images(repo, site, &head, plan.to)?;
    on(&PromoteEvent::Images(&check));
    check.result()?;
    on(&PromoteEvent::ImageChanges(&plan.changes));
    if req.dry_run {
        on(&PromoteEvent::DryRun);
        return Ok(Promoted::DryRun(plan));
    }
    // The source environment must be live at the commit being promoted
    // (Argo CD), unless no_gate. swh-next-version's Application is named
    // after its open merge request.
    let resolved = if req.no_gate {
        None
    } else {
        next_version_application(site, plan.from, req.gitlab_token)?
    };
    if let Some(app) = &resolved {
        on(&PromoteEvent::NextVersion(app));
    }
    let gate_site = resolved.as_ref().map(|a| &a.site).or(site);
    let gate = match promotion_gate(
        gate_site,
        plan.from.branch(),
        &head,
        req.no_gate,
        req.wait_gate.as_ref(),
        &mut |line| on(&PromoteEvent::GateProgress(line)),
    ) {
        Ok(g) => g,
        Err(refusal) => {
            let Some(r) = &plan.rebase else {
                return Err(refusal.into());
            };
            // The rebased commit is deployed nowhere yet: push it to the
            // source branch alone, so that its environment deploys it; the
            // promotion itself waits for that.
            let mut rec = Recorder::start(
                req.journal,
                "chart promote",
                serde_json::json!({
                    "from": plan.from.branch(),
                    "to": plan.to.branch(),
                    "rebase": {"old": r.old, "new": r.new, "onto": r.onto},
                    "promoted": false,
                }),
            )?;
            rec.step(
                &format!(
                    "rebase {} onto {}: {} -> {} (pushed alone with --force-with-lease; the promotion waits for {} to deploy it)",
                    plan.from, plan.to, r.old, r.new, plan.from
                ),
                plan.from.branch(),
            );
            let mut only = plan.clone();
            only.new_head = None;
            let pushed = repo.push_promote(&only);
            rec.finish(pushed.is_ok());
            pushed?;
            return Err(PromoteError::RebasedOnly {
                from: plan.from,
                to: plan.to,
                rebased: r.new.clone(),
                refusal,
            });
        }
    };
    on(&PromoteEvent::Gate(&gate));
    let mut rec = Recorder::start(
        req.journal,
        "chart promote",
        serde_json::json!({
            "from": plan.from.branch(),
            "to": plan.to.branch(),
            "commit": plan.new_head,
            "changes": plan.changes,
            "gate": gate.journal_note(),
            "rebase": plan.rebase.as_ref().map(|r| serde_json::json!({
                "old": r.old, "new": r.new, "onto": r.onto,
            })),
        }),
    )?;
    if let Some(r) = &plan.rebase {
        rec.step(
            &format!(
                "rebase {} onto {}: {} -> {} (pushed with --force-with-lease, atomically with the promotion)",
                plan.from, plan.to, r.old, r.new
            ),
            plan.from.branch(),
        );
    }
    rec.step(
        &format!("fast-forward {} to {head}", plan.to),
        plan.to.branch(),
    );
    let result = repo.push_promote(&plan);
    rec.finish(result.is_ok());
    result?;
    on(&PromoteEvent::Promoted {
        to: plan.to,
        head: &head,
    });
    let annotated = annotate_deployment(&promotion_annotation(&plan));
    if !matches!(annotated, Annotated::NotConfigured) {
        on(&PromoteEvent::Annotation(&annotated));
    }
    Ok(Promoted::Pushed { plan, gate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rebase;

    fn plan() -> PromoteOutcome {
        PromoteOutcome {
            from: Env::NextVersion,
            to: Env::Staging,
            changes: vec![(
                "swh_loader_git".into(),
                Some("20250101.1".into()),
                Some("20250102.1".into()),
            )],
            commits: vec!["abc1234 v12: Release swh.loader.git v1.2.0".into()],
            new_head: Some("0123456789abcdef0123456789abcdef01234567".into()),
            rebase: None,
        }
    }

    #[test]
    fn the_plan_reads_as_before() {
        let mut p = plan();
        let ev = PromoteEvent::Plan {
            plan: &p,
            dry_run: false,
        };
        assert_eq!(
            ev.to_string(),
            "promoting swh-next-version -> staging (1 commit(s)):\n  abc1234 v12: Release swh.loader.git v1.2.0"
        );
        p.rebase = Some(Rebase {
            old: "1".repeat(40),
            new: "2".repeat(40),
            onto: vec!["def5678 hotfix".into()],
        });
        let ev = PromoteEvent::Plan {
            plan: &p,
            dry_run: true,
        };
        assert_eq!(
            ev.to_string(),
            "staging has 1 commit(s) that swh-next-version lacks; rebasing swh-next-version onto staging: 111111111111 -> 222222222222 (dry run: not pushed)\n  def5678 hotfix\n\
             promoting swh-next-version -> staging (1 commit(s)):\n  abc1234 v12: Release swh.loader.git v1.2.0"
        );
        assert_eq!(
            PromoteEvent::ImageChanges(&[]).to_string(),
            "no image version changes"
        );
        assert_eq!(
            PromoteEvent::ImageChanges(&p.changes).to_string(),
            "image version changes:\n  swh_loader_git: 20250101.1 -> 20250102.1"
        );
        assert!(!PromoteEvent::DryRun.is_diagnostic());
        assert!(PromoteEvent::Annotation(&Annotated::NotConfigured).is_diagnostic());
    }

    #[test]
    fn annotation_names_the_target_and_the_apps() {
        let a = promotion_annotation(&plan());
        assert_eq!(a.environment, "staging");
        assert_eq!(a.services, ["swh_loader_git"]);
        assert_eq!(
            a.text,
            "chart promote swh-next-version -> staging: swh_loader_git 20250101.1 -> 20250102.1 (staging at 0123456789ab)"
        );
    }

    #[test]
    fn a_rebased_only_refusal_says_how_to_go_on() {
        let e = PromoteError::RebasedOnly {
            from: Env::NextVersion,
            to: Env::Staging,
            rebased: "2".repeat(40),
            refusal: GateRefusal::Closed {
                source_branch: "swh-next-version".into(),
                why: "not live".into(),
            },
        };
        let m = e.to_string();
        assert!(m.starts_with("swh-next-version was rebased onto staging and pushed (222222222222); staging is not promoted yet: refusing to promote from swh-next-version: not live."), "{m}");
        assert!(
            m.ends_with(
                "Run `chart promote staging` again once swh-next-version is live at 222222222222"
            ),
            "{m}"
        );
    }
}
