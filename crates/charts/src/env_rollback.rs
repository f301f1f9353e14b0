//! `chart rollback ENV`, whole: plan the revert commit on the
//! environment's chart branch ([`crate::rollback`]), push it, journal it
//! as a `chart rollback` run, post the Grafana annotation, then wait until
//! the environment's Argo CD application is live at it (as `cluster
//! wait`).
//!
//! [`roll_back_env`] prints nothing: each [`RollbackEvent`] goes to the
//! caller as it happens (their `Display` is the text to show).

use crate::rollback::{RollbackPlan, RollbackTo};
use crate::values::parse_bumps;
use crate::{ChartsRepo, Error};
use std::fmt;
use std::path::Path;
use std::time::Duration;
use swh_deploy_cluster::grafana::{annotate_deployment, Annotated, Annotation};
use swh_deploy_cluster::wait::{wait_environment, EnvWait, EnvWaitReport, WaitEvent};
use swh_deploy_journal::{JournalError, Recorder};
use swh_deploy_site::Site;

/// What to roll back, and how.
#[derive(Debug, Clone, Copy)]
pub struct RollbackRequest<'a> {
    /// The site file, if any: the environment's chart_branch and Argo CD
    /// application.
    pub site: Option<&'a Site>,
    /// The environment (without a site file, the branch of that name).
    pub env: &'a str,
    /// `APP=VERSION` pairs: these image versions back.
    pub apps: &'a [String],
    /// Restore the state of this earlier revision of the branch.
    pub to: Option<&'a str>,
    /// Show the changes and the commit message; change nothing.
    pub dry_run: bool,
    /// Do not wait for Argo CD after the push.
    pub no_wait: bool,
    /// Give up waiting after this long.
    pub timeout: Duration,
    /// Time between polls while waiting.
    pub interval: Duration,
    /// The journal (`None`: the default one).
    pub journal: Option<&'a Path>,
}

/// What to roll back to, from the command's arguments: `--to REV`, else
/// `APP=VERSION` pairs, else the state before the last commit.
pub fn rollback_target(to: Option<&str>, apps: &[String]) -> Result<RollbackTo, Error> {
    Ok(if let Some(r) = to {
        RollbackTo::Rev(r.to_string())
    } else if !apps.is_empty() {
        RollbackTo::Versions(parse_bumps(apps, &[])?)
    } else {
        RollbackTo::Previous
    })
}

/// What [`roll_back_env`] reports as it goes. `Display` gives the text;
/// [`RollbackEvent::is_diagnostic`] tells the ones meant for stderr.
#[derive(Debug)]
pub enum RollbackEvent<'a> {
    /// The plan: the head, the restored commit, the image and file
    /// changes.
    Plan(&'a RollbackPlan),
    /// Nothing to roll back (the end).
    Noop(&'a RollbackPlan),
    /// Dry run: the commit message (the end).
    DryRun(&'a RollbackPlan),
    /// Pushed: the branch's new head.
    Pushed {
        /// The branch.
        branch: &'a str,
        /// Its new head.
        head: &'a str,
    },
    /// The Grafana annotation (stderr).
    Annotation(&'a Annotated),
    /// Not waiting: the environment has no Argo CD application.
    NotWaiting {
        /// The environment.
        env: &'a str,
    },
    /// Progress of the Argo CD wait (stderr).
    Wait(&'a WaitEvent),
}

impl RollbackEvent<'_> {
    /// Whether the event is a diagnostic (stderr) rather than output.
    pub fn is_diagnostic(&self) -> bool {
        matches!(self, RollbackEvent::Annotation(_) | RollbackEvent::Wait(_))
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

fn or_absent(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(absent)")
}

impl fmt::Display for RollbackEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackEvent::Plan(plan) => {
                write!(
                    f,
                    "rolling back {} (head {}){}:",
                    plan.branch,
                    short(&plan.head),
                    plan.to
                        .as_deref()
                        .map(|t| format!(" to {}", short(t)))
                        .unwrap_or_default()
                )?;
                if plan.changes.is_empty() {
                    f.write_str("\nno image version changes")?;
                } else {
                    f.write_str("\nimage version changes:")?;
                    for (k, a, b) in &plan.changes {
                        write!(f, "\n  {k}: {} -> {}", or_absent(a), or_absent(b))?;
                    }
                }
                if !plan.files.is_empty() {
                    write!(f, "\nfiles changed: {}", plan.files.join(", "))?;
                }
                Ok(())
            }
            RollbackEvent::Noop(plan) => write!(
                f,
                "nothing to roll back: {} already has that state",
                plan.branch
            ),
            RollbackEvent::DryRun(plan) => write!(
                f,
                "commit message:\n  {}\ndry run: nothing committed or pushed",
                plan.message.replace('\n', "\n  ")
            ),
            RollbackEvent::Pushed { branch, head } => write!(f, "{branch} is now at {head}"),
            RollbackEvent::Annotation(a) => write!(f, "{a}"),
            RollbackEvent::NotWaiting { env } => write!(
                f,
                "not waiting: {env} has no argocd_application in the site file"
            ),
            RollbackEvent::Wait(w) => write!(f, "{w}"),
        }
    }
}

/// How [`roll_back_env`] ended (without an error).
#[derive(Debug, Clone)]
pub enum RolledBack {
    /// The branch already has that state; nothing done.
    Noop,
    /// A dry run; nothing done.
    DryRun,
    /// Pushed; the Argo CD wait's report when there was one (a failed or
    /// timed-out rollout is in it).
    Pushed {
        /// The new head of the branch.
        head: String,
        /// The wait, when the environment has an Argo CD application and
        /// waiting was not turned off.
        wait: Option<Box<EnvWaitReport>>,
    },
}

/// Why [`roll_back_env`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// Bad arguments, the charts checkout, the plan or the push.
    #[error(transparent)]
    Charts(#[from] Error),
    /// The journal could not be opened.
    #[error("{0}")]
    Journal(#[from] JournalError),
    /// The wait could not be started or went wrong (configuration, API).
    #[error(transparent)]
    Wait(#[from] swh_deploy_cluster::Error),
}

impl RollbackError {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// The Grafana annotation of a pushed rollback of `env`.
pub fn rollback_annotation(env: &str, plan: &RollbackPlan, head: &str) -> Annotation {
    let what: Vec<String> = plan
        .changes
        .iter()
        .map(|(k, a, b)| format!("{k} {} -> {}", or_absent(a), or_absent(b)))
        .collect();
    Annotation {
        environment: env.to_string(),
        services: plan.changes.iter().map(|(k, _, _)| k.clone()).collect(),
        text: format!(
            "chart rollback {env}: {} ({} at {})",
            if what.is_empty() {
                "no image change".to_string()
            } else {
                what.join(", ")
            },
            plan.branch,
            short(head)
        ),
    }
}

/// Rolls `req.env` back: plans, and unless a dry run or nothing to do,
/// commits on top of the branch's head, pushes (journaled), annotates and
/// waits for Argo CD.
pub fn roll_back_env(
    repo: &ChartsRepo,
    req: &RollbackRequest<'_>,
    on: &mut dyn FnMut(&RollbackEvent<'_>),
) -> Result<RolledBack, RollbackError> {
    let env = req.site.and_then(|s| s.environment(req.env).ok());
    let branch = env
        .and_then(|e| e.chart_branch.clone())
        .unwrap_or_else(|| req.env.to_string());
    let to = rollback_target(req.to, req.apps)?;
    let plan = repo.plan_rollback(&branch, &to)?;
    on(&RollbackEvent::Plan(&plan));
    if plan.is_noop() {
        on(&RollbackEvent::Noop(&plan));
        return Ok(RolledBack::Noop);
    }
    if req.dry_run {
        on(&RollbackEvent::DryRun(&plan));
        return Ok(RolledBack::DryRun);
    }
    let mut rec = Recorder::start(
        req.journal,
        "chart rollback",
        serde_json::json!({
            "env": req.env,
            "branch": branch,
            "head": plan.head,
            "to": plan.to,
            "apps": req.apps,
            "changes": plan.changes,
        }),
    )?;
    rec.step(
        &format!("revert commit on {branch} (parent {}), pushed", plan.head),
        &branch,
    );
    let head = match repo.push_rollback(&plan) {
        Ok(n) => n,
        Err(e) => {
            rec.finish(false);
            return Err(e.into());
        }
    };
    on(&RollbackEvent::Pushed {
        branch: &branch,
        head: &head,
    });
    let annotated = annotate_deployment(&rollback_annotation(req.env, &plan, &head));
    if !matches!(annotated, Annotated::NotConfigured) {
        on(&RollbackEvent::Annotation(&annotated));
    }
    let wait_site = match (req.site, env) {
        (Some(s), Some(e)) if e.argocd_application.is_some() && !req.no_wait => Some(s),
        _ => None,
    };
    let Some(site) = wait_site else {
        if !req.no_wait {
            on(&RollbackEvent::NotWaiting { env: req.env });
        }
        rec.finish(true);
        return Ok(RolledBack::Pushed { head, wait: None });
    };
    rec.step(&format!("cluster wait {} at {head}", req.env), req.env);
    let waited = wait_environment(
        &EnvWait {
            site,
            env: req.env,
            revision: Some(&head),
            charts_dir: None,
            timeout: req.timeout,
            interval: req.interval,
        },
        &mut |w| on(&RollbackEvent::Wait(w)),
    );
    rec.finish(matches!(&waited, Ok(r) if r.is_live()));
    Ok(RolledBack::Pushed {
        head,
        wait: Some(Box::new(waited?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RollbackPlan {
        RollbackPlan::for_tests(
            "production",
            &"a".repeat(40),
            Some(&"b".repeat(40)),
            vec![(
                "swh_loader_git".into(),
                Some("20250102.1".into()),
                Some("20250101.1".into()),
            )],
            vec!["values-swh-application-versions.yaml".into()],
            "Roll back production\n\nbody",
        )
    }

    #[test]
    fn targets_from_arguments() {
        assert!(matches!(
            rollback_target(Some("abc"), &[]).unwrap(),
            RollbackTo::Rev(r) if r == "abc"
        ));
        assert!(matches!(
            rollback_target(None, &[]).unwrap(),
            RollbackTo::Previous
        ));
        match rollback_target(None, &["swh-lister=20250101.1".to_string()]).unwrap() {
            RollbackTo::Versions(b) => {
                assert_eq!(
                    (b[0].app.as_str(), b[0].version.as_str()),
                    ("swh-lister", "20250101.1")
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rollback_target(None, &["x".to_string()])
                .unwrap_err()
                .to_string(),
            "\"x\": expected APP=VERSION"
        );
    }

    #[test]
    fn events_read_as_before() {
        let p = plan();
        assert_eq!(
            RollbackEvent::Plan(&p).to_string(),
            "rolling back production (head aaaaaaaaaaaa) to bbbbbbbbbbbb:\n\
             image version changes:\n  swh_loader_git: 20250102.1 -> 20250101.1\n\
             files changed: values-swh-application-versions.yaml"
        );
        assert_eq!(
            RollbackEvent::DryRun(&p).to_string(),
            "commit message:\n  Roll back production\n  \n  body\ndry run: nothing committed or pushed"
        );
        assert!(RollbackEvent::Annotation(&Annotated::NotConfigured).is_diagnostic());
        assert!(!RollbackEvent::NotWaiting { env: "x" }.is_diagnostic());
    }

    #[test]
    fn annotation_names_the_environment_and_the_apps() {
        let a = rollback_annotation("production", &plan(), &"c".repeat(40));
        assert_eq!(a.tags(), ["deployment", "production", "swh_loader_git"]);
        assert_eq!(
            a.text,
            "chart rollback production: swh_loader_git 20250102.1 -> 20250101.1 (production at cccccccccccc)"
        );
    }
}
