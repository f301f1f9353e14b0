//! `swh-deploy chart`: the swh-charts steps of the runbook's "Deployment with
//! Kubernetes" (bump image versions, promote between environments, show).

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use swh_deploy_charts::image_check;
use swh_deploy_charts::values::parse_bumps;
use swh_deploy_charts::{BumpOutcome, BumpRequest, ChartsRepo, Env, PromoteRequest, Promoted};

use super::app::load_site;
use swh_deploy_journal::Recorder;

/// Arguments of `swh-deploy chart`.
#[derive(Debug, Args)]
pub struct ChartArgs {
    /// The swh-charts checkout (default: $SWH_DEPLOY_CHARTS_DIR, else the
    /// site file's [charts] checkout, else the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    charts_dir: Option<PathBuf>,
    /// The site file (default: $SWH_DEPLOY_SITE, ./swh-deploy.toml,
    /// /etc/swh-deploy/site.toml, if present).
    #[arg(long, global = true, value_name = "FILE")]
    site: Option<PathBuf>,
    #[command(subcommand)]
    command: ChartCommand,
}

/// The environments a promotion can target.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    /// swh-next-version -> staging
    Staging,
    /// staging -> production
    Production,
}

#[derive(Debug, Subcommand)]
enum ChartCommand {
    /// Set image versions in values-swh-application-versions.yaml, bump
    /// appVersion in swh/Chart.yaml, commit (subject only, as SWH's
    /// automation does) and push.
    Bump {
        /// APP=VERSION pairs (APP: swh-apps directory like swh-loader-git,
        /// or its key swh_loader_git); none with --release-only.
        #[arg(required_unless_present = "release_only", value_name = "APP=VERSION")]
        apps: Vec<String>,
        /// A release that changes no image: only swh/Chart.yaml's
        /// appVersion + 1 and the commit "vN: Release MODULE VERSION"
        /// (needs --module and --module-version, no APP=VERSION). Does
        /// nothing when the branch already has that release commit.
        #[arg(long, requires = "module", conflicts_with_all = ["apps", "add"])]
        release_only: bool,
        /// With --release-only: commit even if the branch already has the
        /// release commit of this module version (another appVersion bump).
        #[arg(long, requires = "release_only")]
        again: bool,
        /// Also list the changed keys in the commit message's body (they
        /// are always printed and journaled).
        #[arg(long)]
        body: bool,
        /// The module being released, for the commit title (with
        /// --module-version).
        #[arg(long, requires = "module_version")]
        module: Option<String>,
        /// The module's version, e.g. v6.3.0.
        #[arg(long, requires = "module")]
        module_version: Option<String>,
        /// The branch to commit to.
        #[arg(long, default_value = "swh-next-version")]
        branch: String,
        /// Add an app missing from the file with this image reference
        /// (IMAGE when one APP is given, or APP=IMAGE); repeatable.
        #[arg(long, value_name = "[APP=]IMAGE")]
        add: Vec<String>,
        /// Commit but do not push.
        #[arg(long)]
        no_push: bool,
        /// Do not open or update the merge request to staging that a push
        /// of swh-next-version carries by default (git push options
        /// merge_request.create, merge_request.target=staging).
        #[arg(long)]
        no_merge_request: bool,
        /// Print the changes and commit message; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Fast-forward swh-next-version -> staging, or staging -> production,
    /// after printing the image version changes being promoted.
    Promote {
        /// The environment to promote into.
        #[arg(value_enum)]
        target: Target,
        /// Print what would be promoted; push nothing.
        #[arg(long)]
        dry_run: bool,
        /// Promote even if the source environment's Argo CD application
        /// is not live and healthy at its head (recorded in the journal).
        #[arg(long)]
        no_gate: bool,
    },
    /// Roll an environment back: a revert commit on its chart branch
    /// (never a force-push), pushed, then the Argo CD wait.
    Rollback(super::chart_rollback::RollbackArgs),
    /// Apps and their image versions per environment, marking differences.
    Show {
        /// Show only this branch.
        #[arg(long)]
        branch: Option<String>,
        /// Show only the apps whose versions differ between environments.
        #[arg(long)]
        diff: bool,
        /// Also check that every image:tag each shown environment deploys
        /// (global versions and per-deployment imageVersion pins) exists in
        /// the site's registry; exit 1 naming the missing ones.
        #[arg(long)]
        check: bool,
    },
}

pub(crate) fn charts_dir(arg: &Option<PathBuf>, site: Option<&swh_deploy_site::Site>) -> PathBuf {
    arg.clone()
        .or_else(|| std::env::var_os("SWH_DEPLOY_CHARTS_DIR").map(PathBuf::from))
        .or_else(|| {
            site.and_then(|s| s.charts.as_ref())
                .map(|c| c.checkout.clone())
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `swh-deploy chart ...`.
pub fn run(args: ChartArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy chart: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: ChartArgs) -> Result<ExitCode, String> {
    let site = load_site(args.site.as_deref())?;
    let site = site.as_ref();
    let dir = charts_dir(&args.charts_dir, site);
    let mut repo = ChartsRepo::open(&dir).map_err(|e| e.to_string())?;
    if let Some(c) = site.and_then(|s| s.charts.as_ref()) {
        repo = repo.with_remote(&c.remote).with_values_file(&c.values_file);
    }
    match args.command {
        ChartCommand::Bump {
            apps,
            release_only,
            again,
            body,
            module,
            module_version,
            branch,
            add,
            no_push,
            no_merge_request,
            dry_run,
        } => {
            let merge_request = (branch == Env::NextVersion.branch() && !no_merge_request)
                .then(|| Env::Staging.branch().to_string());
            let req = BumpRequest {
                bumps: parse_bumps(&apps, &add).map_err(|e| e.to_string())?,
                module: module.clone().zip(module_version.clone()),
                branch: branch.clone(),
                push: !no_push,
                dry_run,
                release_only,
                body,
                again,
                merge_request: merge_request.clone(),
            };
            let mut rec = if dry_run {
                None
            } else {
                Some(
                    Recorder::start(
                        "chart bump",
                        serde_json::json!({
                            "apps": apps,
                            "release_only": release_only,
                            "again": again,
                            "module": module,
                            "module_version": module_version,
                            "branch": branch,
                            "push": !no_push,
                            "merge_request_to": merge_request,
                        }),
                    )
                    .map_err(|e| e.to_string())?,
                )
            };
            let result = repo.prepare_bump(&req).and_then(|prepared| {
                if let Some(r) = rec.as_mut() {
                    if prepared.outcome.has_work() {
                        r.step(&prepared.outcome.journal_step(&branch, !no_push), &branch);
                    }
                }
                if dry_run {
                    Ok(prepared.outcome)
                } else {
                    repo.commit_bump(prepared)
                }
            });
            if let Some(r) = rec {
                r.finish(result.is_ok());
            }
            let out = result.map_err(|e| e.to_string())?;
            print_bump(&out, &branch, dry_run, no_push);
            if let Some(target) = &merge_request {
                if out.pushed {
                    println!(
                        "merge request {branch} -> {target}: opened, or updated if open (git push options)"
                    );
                } else if dry_run && out.has_work() && !no_push {
                    println!("dry run: the push would open or update the merge request {branch} -> {target}");
                }
            }
        }
        ChartCommand::Promote {
            target,
            dry_run,
            no_gate,
        } => {
            let env = match target {
                Target::Staging => Env::Staging,
                Target::Production => Env::Production,
            };
            promote(&repo, site, env, dry_run, no_gate)?;
        }
        ChartCommand::Rollback(a) => return super::chart_rollback::run(&repo, site, a),
        ChartCommand::Show {
            branch,
            diff,
            check,
        } => {
            let envs: Vec<String> = match branch {
                Some(b) => vec![b],
                None => Env::ALL.iter().map(|e| e.branch().to_string()).collect(),
            };
            let ov = repo.show(&envs).map_err(|e| e.to_string())?;
            let w = ov.apps.keys().map(|k| k.len()).max().unwrap_or(3).max(3);
            let cw = envs.iter().map(|e| e.len()).max().unwrap_or(0).max(11);
            let mut header = format!("  {:<w$}", "APP");
            for e in &envs {
                header.push_str(&format!("  {e:<cw$}"));
            }
            println!("{}", header.trim_end());
            for (app, versions) in &ov.apps {
                let differs = ov.differs(app);
                if diff && !differs {
                    continue;
                }
                let mut line = format!("{} {app:<w$}", if differs { "*" } else { " " });
                for v in versions {
                    line.push_str(&format!("  {:<cw$}", v.as_deref().unwrap_or("-")));
                }
                println!("{}", line.trim_end());
            }
            if envs.len() > 1 {
                let n = ov.apps.keys().filter(|a| ov.differs(a)).count();
                println!("{n} app(s) differ between environments (marked *)");
            }
            if check {
                let mut failed = Vec::new();
                for e in &envs {
                    let Some(env) = Env::ALL.into_iter().find(|x| x.branch() == e) else {
                        return Err(format!("--check: {e} is not an environment branch"));
                    };
                    let rev = format!("{}/{e}", repo.remote());
                    if let Err(m) = check_images(&repo, site, &rev, env) {
                        eprintln!("swh-deploy chart: {m}");
                        failed.push(e.clone());
                    }
                }
                if !failed.is_empty() {
                    return Err(format!("image check failed for {}", failed.join(", ")));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The journal step of a bump (see [`BumpOutcome::journal_step`]).
pub(crate) fn journal_step(out: &BumpOutcome, branch: &str, push: bool) -> String {
    out.journal_step(branch, push)
}

/// Prints what a bump did (or would do): the changed keys, where added
/// keys went, appVersion, the commit.
pub(crate) fn print_bump(out: &BumpOutcome, branch: &str, dry_run: bool, no_push: bool) {
    if let Some(c) = &out.already {
        println!(
            "nothing to do: {branch} already has the release commit {c} (--again to bump appVersion once more)"
        );
        return;
    }
    if !out.has_work() {
        println!("nothing to do: every app is already at the requested version on {branch}");
        return;
    }
    if out.release_only {
        println!("no image version change (release only)");
    }
    for c in &out.changes {
        println!(
            "{}: {} -> {}",
            c.key,
            c.from.as_deref().unwrap_or("(new)"),
            c.to
        );
    }
    for n in &out.notes {
        println!("note: {n}");
    }
    println!("appVersion: {} -> {}", out.app_version - 1, out.app_version);
    let title = out.message.lines().next().unwrap_or_default();
    if dry_run {
        println!(
            "dry run: would commit \"{title}\" on {branch}{}",
            if no_push { "" } else { " and push it" }
        );
    } else {
        println!(
            "committed {} \"{title}\" on {branch}{}",
            out.commit
                .as_deref()
                .map(|c| &c[..c.len().min(12)])
                .unwrap_or(""),
            if out.pushed {
                ", pushed"
            } else {
                " (not pushed)"
            }
        );
    }
}

/// `chart promote` ([`swh_deploy_charts::promote`]): prints each step as
/// it happens. Used by `chart promote` and by `ship`.
pub(crate) fn promote(
    repo: &ChartsRepo,
    site: Option<&swh_deploy_site::Site>,
    env: Env,
    dry_run: bool,
    no_gate: bool,
) -> Result<(), String> {
    let token = std::env::var("GITLAB_TOKEN").ok();
    let req = PromoteRequest {
        site,
        env,
        dry_run,
        no_gate,
        gitlab_token: token.as_deref(),
    };
    let done = swh_deploy_charts::promote(repo, &req, &mut |ev| {
        if ev.is_diagnostic() {
            eprintln!("{ev}");
        } else {
            println!("{ev}");
        }
    })
    .map_err(|e| e.to_string())?;
    if let Promoted::Nothing { .. } = done {
        println!("{done}");
    }
    Ok(())
}

/// `chart show --check` of one environment: prints what was checked;
/// `Err` naming the missing images.
fn check_images(
    repo: &ChartsRepo,
    site: Option<&swh_deploy_site::Site>,
    rev: &str,
    env: Env,
) -> Result<(), String> {
    let check = image_check::check_images(repo, site, rev, env).map_err(|e| e.to_string())?;
    for l in check.lines() {
        println!("{l}");
    }
    check.result().map_err(|e| e.to_string())
}
