//! `swh-deploy chart`: the swh-charts steps of the runbook's "Deployment with
//! Kubernetes" (bump image versions, promote between environments, show).

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use swh_deploy_charts::bump_run::bump_journaled;
use swh_deploy_charts::image_check::check_branches;
use swh_deploy_charts::values::parse_bumps;
use swh_deploy_charts::{BumpRequest, ChartsRepo, Env, PromoteRequest, Promoted};
use swh_deploy_cluster::gate::GateWait;

use super::app::load_site;
use crate::error::{CliError, CmdResult, Exit};
use crate::settings::{self, Env as Vars, Settings};

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
        /// Wait up to TIMEOUT (default 15m) for the source environment to
        /// be live at its head instead of refusing at once (the gate is
        /// checked once without it); progress on stderr.
        #[arg(
            long,
            value_name = "TIMEOUT",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "15m",
            conflicts_with = "no_gate",
            value_parser = swh_deploy_util::duration::parse
        )]
        wait_gate: Option<Duration>,
        /// With --wait-gate: time between polls (default 5s).
        #[arg(long, requires = "wait_gate", value_parser = swh_deploy_util::duration::parse)]
        interval: Option<Duration>,
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
        /// Print JSON (schema 1, docs/json.md) instead of the table (with
        /// --check, the check's result in its `check` field).
        #[arg(long)]
        json: bool,
    },
}

/// Runs `swh-deploy chart ...`.
pub fn run(args: ChartArgs) -> CmdResult {
    run_inner(args).map_err(|e| e.in_command("chart"))
}

fn run_inner(args: ChartArgs) -> CmdResult {
    let vars = Vars::process();
    let flags = settings::Args {
        site: args.site.clone(),
        charts_dir: args.charts_dir.clone(),
        ..settings::Args::default()
    };
    let site =
        load_site(Settings::site_path(&flags, &vars).as_deref()).map_err(CliError::failed)?;
    let site = site.as_ref();
    let settings = Settings::resolve(&flags, &vars, site);
    let dir = settings
        .charts_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let mut repo = ChartsRepo::open(&dir)?;
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
                bumps: parse_bumps(&apps, &add)?,
                module: module.clone().zip(module_version.clone()),
                branch: branch.clone(),
                push: !no_push,
                dry_run,
                release_only,
                body,
                again,
                merge_request: merge_request.clone(),
            };
            let parameters = serde_json::json!({
                "apps": apps,
                "release_only": release_only,
                "again": again,
                "module": module,
                "module_version": module_version,
                "branch": branch,
                "push": !no_push,
                "merge_request_to": merge_request,
            });
            let out = bump_journaled(&repo, &req, parameters, settings.journal.as_deref())?;
            for line in out.report(&branch, dry_run, !no_push, merge_request.as_deref()) {
                println!("{line}");
            }
        }
        ChartCommand::Promote {
            target,
            dry_run,
            no_gate,
            wait_gate,
            interval,
        } => {
            let req = PromoteRequest {
                site,
                env: match target {
                    Target::Staging => Env::Staging,
                    Target::Production => Env::Production,
                },
                dry_run,
                no_gate,
                wait_gate: wait_gate.map(|timeout| GateWait {
                    timeout,
                    interval: interval.unwrap_or(Duration::from_secs(5)),
                }),
                gitlab_token: settings.gitlab_token.as_deref(),
                journal: settings.journal.as_deref(),
            };
            let mut printer = crate::events::EventPrinter::default();
            let done = swh_deploy_charts::promote(&repo, &req, &mut |ev| {
                printer.show(ev.is_diagnostic(), ev, None)
            })?;
            drop(printer);
            if let Promoted::Nothing { .. } = done {
                println!("{done}");
            }
        }
        ChartCommand::Rollback(a) => {
            return super::chart_rollback::run(&repo, site, settings.journal.as_deref(), a)
        }
        ChartCommand::Show {
            branch,
            diff,
            check,
            json,
        } => {
            let envs: Vec<String> = match branch {
                Some(b) => vec![b],
                None => Env::ALL.iter().map(|e| e.branch().to_string()).collect(),
            };
            let overview = repo.show(&envs)?;
            if json {
                let mut body = show_json(&overview, diff);
                let mut failed = Vec::new();
                if check {
                    let mut results = Vec::new();
                    failed = check_branches(&repo, site, &envs, &mut |r| match r {
                        Ok(c) => results.push(check_json(c)),
                        Err(e) => match results.last_mut() {
                            // The refusal of a report just pushed.
                            Some(last)
                                if last["ok"] == true
                                    && last["missing"] != serde_json::json!([]) =>
                            {
                                last["ok"] = false.into();
                                last["error"] = e.to_string().into();
                            }
                            _ => {
                                eprintln!("swh-deploy chart: {e}");
                                results
                                    .push(serde_json::json!({"error": e.to_string(), "ok": false}));
                            }
                        },
                    })?;
                    // A branch whose check failed before its report: name it.
                    for (r, b) in results.iter_mut().zip(&envs) {
                        if r.get("environment").is_none() {
                            r["environment"] = b.as_str().into();
                        }
                    }
                    body["check"] = results.into();
                }
                crate::json::print(&body)?;
                if !failed.is_empty() {
                    return Err(CliError::failed(format!(
                        "image check failed for {}",
                        failed.join(", ")
                    )));
                }
                return Ok(Exit::Success);
            }
            for line in overview.table(diff) {
                println!("{line}");
            }
            if check {
                let failed = check_branches(&repo, site, &envs, &mut |r| match r {
                    Ok(check) => check.lines().iter().for_each(|l| println!("{l}")),
                    Err(e) => eprintln!("swh-deploy chart: {e}"),
                })?;
                if !failed.is_empty() {
                    return Err(CliError::failed(format!(
                        "image check failed for {}",
                        failed.join(", ")
                    )));
                }
            }
        }
    }
    Ok(Exit::Success)
}

/// One environment's `chart show --check` in `--json`: what was checked and
/// what is missing (`ok` false and `error` set when the check refused).
fn check_json(c: &swh_deploy_charts::image_check::ImageCheck) -> serde_json::Value {
    serde_json::json!({
        "environment": c.env.branch(),
        "uses": c.uses,
        "registry": c.host,
        "checked": c.checked,
        "elsewhere": c.elsewhere,
        "missing": c.missing,
        "ok": true,
        "error": null,
    })
}

/// `chart show --json`'s body: the environments in order, then per app its
/// version in each environment (null when absent) and whether they differ
/// (with `only_differing`, only the apps that do).
fn show_json(overview: &swh_deploy_charts::Overview, only_differing: bool) -> serde_json::Value {
    let apps: Vec<serde_json::Value> = overview
        .apps
        .iter()
        .filter(|(app, _)| !only_differing || overview.differs(app))
        .map(|(app, versions)| {
            let per_env: serde_json::Map<String, serde_json::Value> = overview
                .envs
                .iter()
                .zip(versions)
                .map(|(env, v)| (env.clone(), v.clone().into()))
                .collect();
            serde_json::json!({
                "app": app,
                "versions": per_env,
                "differs": overview.differs(app),
            })
        })
        .collect();
    serde_json::json!({ "environments": overview.envs, "apps": apps })
}
