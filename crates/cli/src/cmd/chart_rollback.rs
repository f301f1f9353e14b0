//! `swh-deploy chart rollback ENV [--to REV | APP=VERSION ...]`: a
//! journaled revert commit on the environment's chart branch (never a
//! force-push), pushed, then the Argo CD wait of `cluster wait` for the new
//! commit (`swh_deploy_charts::rollback`).

use clap::Args;
use std::process::ExitCode;
use std::time::Duration;
use swh_deploy_charts::rollback::RollbackTo;
use swh_deploy_charts::values::Bump;
use swh_deploy_charts::ChartsRepo;

use swh_deploy_journal::Recorder;

/// Arguments of `chart rollback`.
#[derive(Debug, Args)]
#[command(after_help = "\
Without --to or APP=VERSION: undo the branch's last commit. --to REV: restore
the state of REV, an earlier commit of the branch (every later commit undone
in one commit). APP=VERSION: set these apps back to these image versions, the
rest of the branch kept. The commit goes on top of the branch's head on the
remote and is pushed as a fast-forward (never forced), then swh-deploy waits
until the environment's Argo CD application is live at it (as `cluster
wait`), unless --no-wait or the environment has no argocd_application.
Journaled as a `chart rollback` run.

Exit status: 0 done (and live), 1 refused or failed, 6 not live before
--timeout.")]
pub struct RollbackArgs {
    /// The environment (site file `[environments.ENV]`, whose chart_branch
    /// is rolled back; without a site file, the branch of that name).
    env: String,
    /// APP=VERSION pairs: put these image versions back.
    #[arg(value_name = "APP=VERSION", conflicts_with = "to")]
    apps: Vec<String>,
    /// Restore the state of this earlier revision of the branch.
    #[arg(long, value_name = "REV")]
    to: Option<String>,
    /// Print the image changes and the commit message; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not wait for Argo CD after the push.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "15m", value_parser = swh_deploy_cluster::parse_duration)]
    timeout: Duration,
    /// Time between polls while waiting.
    #[arg(long, default_value = "5s", value_parser = swh_deploy_cluster::parse_duration)]
    interval: Duration,
}

/// Runs `chart rollback`.
pub(crate) fn run(
    repo: &ChartsRepo,
    site: Option<&swh_deploy_site::Site>,
    args: RollbackArgs,
) -> Result<ExitCode, String> {
    let env = site.and_then(|s| s.environment(&args.env).ok());
    let branch = env
        .and_then(|e| e.chart_branch.clone())
        .unwrap_or_else(|| args.env.clone());
    let to = if let Some(r) = &args.to {
        RollbackTo::Rev(r.clone())
    } else if !args.apps.is_empty() {
        let mut bumps = Vec::new();
        for a in &args.apps {
            let Some((app, version)) = a.split_once('=') else {
                return Err(format!("{a:?}: expected APP=VERSION"));
            };
            if app.is_empty() {
                return Err(format!("{a:?}: empty app name"));
            }
            bumps.push(Bump {
                app: app.to_string(),
                version: version.to_string(),
                add_image: None,
            });
        }
        RollbackTo::Versions(bumps)
    } else {
        RollbackTo::Previous
    };
    let plan = repo
        .plan_rollback(&branch, &to)
        .map_err(|e| e.to_string())?;
    println!(
        "rolling back {branch} (head {}){}:",
        &plan.head[..plan.head.len().min(12)],
        plan.to
            .as_deref()
            .map(|t| format!(" to {}", &t[..t.len().min(12)]))
            .unwrap_or_default()
    );
    if plan.changes.is_empty() {
        println!("no image version changes");
    } else {
        println!("image version changes:");
        for (k, from, to) in &plan.changes {
            println!(
                "  {k}: {} -> {}",
                from.as_deref().unwrap_or("(absent)"),
                to.as_deref().unwrap_or("(absent)")
            );
        }
    }
    if !plan.files.is_empty() {
        println!("files changed: {}", plan.files.join(", "));
    }
    if plan.is_noop() {
        println!("nothing to roll back: {branch} already has that state");
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        println!("commit message:\n  {}", plan.message.replace('\n', "\n  "));
        println!("dry run: nothing committed or pushed");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rec = Recorder::start(
        "chart rollback",
        serde_json::json!({
            "env": args.env,
            "branch": branch,
            "head": plan.head,
            "to": plan.to,
            "apps": args.apps,
            "changes": plan.changes,
        }),
    )
    .map_err(|e| e.to_string())?;
    rec.step(
        &format!("revert commit on {branch} (parent {}), pushed", plan.head),
        &branch,
    );
    let new = match repo.push_rollback(&plan) {
        Ok(n) => n,
        Err(e) => {
            rec.finish(false);
            return Err(e.to_string());
        }
    };
    println!("{branch} is now at {new}");
    let keys: Vec<String> = plan.changes.iter().map(|(k, _, _)| k.clone()).collect();
    let what: Vec<String> = plan
        .changes
        .iter()
        .map(|(k, a, b)| {
            format!(
                "{k} {} -> {}",
                a.as_deref().unwrap_or("(absent)"),
                b.as_deref().unwrap_or("(absent)")
            )
        })
        .collect();
    super::annotate::annotate(
        &args.env,
        &keys,
        &format!(
            "chart rollback {}: {} ({branch} at {})",
            args.env,
            if what.is_empty() {
                "no image change".to_string()
            } else {
                what.join(", ")
            },
            &new[..new.len().min(12)]
        ),
    );
    let wait_env = match (site, env) {
        (Some(s), Some(e)) if e.argocd_application.is_some() && !args.no_wait => Some(s),
        _ => None,
    };
    let Some(site) = wait_env else {
        if !args.no_wait {
            println!(
                "not waiting: {} has no argocd_application in the site file",
                args.env
            );
        }
        rec.finish(true);
        return Ok(ExitCode::SUCCESS);
    };
    rec.step(&format!("cluster wait {} at {new}", args.env), &args.env);
    let code = super::cluster::wait(
        site,
        &args.env,
        Some(new),
        args.timeout,
        args.interval,
        None,
    );
    let ok = matches!(&code, Ok(c) if *c == ExitCode::SUCCESS);
    rec.finish(ok);
    code
}
