//! `swh-deploy ship MODULE VERSION`: the runbook's whole chain in one
//! command, from the release tag to production. The model (plan, idempotent
//! steps, journal, stop at the first failure) and the work are in the
//! `swh_deploy_ship` crate; this module parses the flags, resolves the
//! settings, renders the plan and the progress, and picks the exit code.

use super::release;
use crate::error::{CliError, CmdResult, Exit};
use crate::settings::{self, Env, Settings};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use swh_deploy_apps::Builder;
use swh_deploy_fleet::HostKeyPolicy;
use swh_deploy_release::{Module, ReleaseVersion};
use swh_deploy_ship::{Reporter, Ship, ShipError, ShipEvent, ShipOptions, ShipOutcome};
use swh_deploy_site::Site;
use swh_deploy_upgrade::driver::HumanProgress;
use swh_deploy_upgrade::execute::Events;
use swh_deploy_upgrade::{BatchSpec, FailBudget, Mode};

/// Ship a module release: tag, wait until published, then the static path
/// (upgrade the hosts, staging then production) and/or the elastic path
/// (build the apps' images, bump the chart, promote staging then
/// production, waiting for Argo CD).
#[derive(Debug, Args)]
#[command(after_help = "\
Steps (each one an existing command, skipped with `already done` when its
result is already there):
  release tag        with --repo: tag vVERSION in the module checkout and push it
  release wait       until published on --pypi and/or --apt
  upgrade            --static: per environment (staging, then production), the
                     services whose packages include python3-MODULE
  app build --push   --elastic: each app whose frozen requirements pin MODULE
  chart bump         the new image versions on swh-next-version
  chart promote      staging, cluster wait staging, promote production,
                     cluster wait production (waits when the site has [argocd])

To resume a ship that stopped (failure, Ctrl-C), run the same command again.

Exit status: 0 shipped (or everything already done), 1 a step failed or bad
input, 2 usage error, 3 upgrade failure budget exceeded, 4 hosts locked by
another run, 5 compensations pending, 6 a gate not reached before --timeout,
130 interrupted.")]
pub struct ShipArgs {
    /// The module, e.g. swh.loader.git (or swh-loader-git).
    #[arg(value_name = "MODULE")]
    module: String,
    /// The release version, e.g. 1.2.0 or v1.2.0.
    #[arg(value_name = "VERSION")]
    version: String,
    /// The static path: upgrade the hosts of the services shipping
    /// python3-MODULE (staging, then production).
    #[arg(long = "static")]
    static_path: bool,
    /// The elastic path: rebuild the apps that depend on MODULE, bump the
    /// chart, promote staging then production.
    #[arg(long)]
    elastic: bool,
    /// The site file (default: $SWH_DEPLOY_SITE, ./swh-deploy.toml,
    /// /etc/swh-deploy/site.toml).
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// The module's git checkout: tag and push vVERSION there (without it
    /// the tag is not made by ship: developers tag their releases).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// The module checkout's remote.
    #[arg(long, value_name = "NAME", default_value = "origin")]
    remote: String,
    /// Sign the tag (default: as git config says).
    #[arg(long, overrides_with = "no_sign")]
    sign: bool,
    /// Do not sign the tag.
    #[arg(long, overrides_with = "sign")]
    no_sign: bool,
    /// PyPI-style index to wait on (default: $SWH_DEPLOY_INDEX_URL); also
    /// the index `uv` freezes the apps from, unless --index-url.
    #[arg(long, value_name = "URL")]
    pypi: Option<String>,
    /// Debian repository to wait on (default: $SWH_DEPLOY_APT_URL).
    #[arg(long, value_name = "URL")]
    apt: Option<String>,
    /// The Debian repository's suite (default: $SWH_DEPLOY_APT_SUITE; none:
    /// flat repository).
    #[arg(long, value_name = "SUITE")]
    suite: Option<String>,
    /// The architecture of the Debian index read.
    #[arg(long, value_name = "ARCH", default_value = "amd64")]
    arch: String,
    /// Static path: the upgrade mode (nominal, config-change,
    /// long-standing).
    #[arg(long, value_name = "MODE", default_value = "nominal", value_parser = super::upgrade::parse_mode)]
    mode: Mode,
    /// Static path: rolling batches, as for `upgrade --batch`.
    #[arg(long, value_name = "SPEC", value_parser = super::upgrade::parse_batch)]
    batch: Option<BatchSpec>,
    /// Static path: failure budget, as for `upgrade --max-fail`.
    #[arg(long = "max-fail", value_name = "N|P%", value_parser = super::upgrade::parse_budget)]
    max_fail: Option<FailBudget>,
    /// Static path: accept and pin the key of a host absent from
    /// known_hosts, as for `upgrade --accept-new-host-keys`.
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Static path: the environments to upgrade, in this order (default:
    /// staging, then the others, then production).
    #[arg(long = "env", value_name = "ENV")]
    envs: Vec<String>,
    /// Elastic path: the package index uv freezes from (default: --pypi).
    #[arg(long, value_name = "URL")]
    index_url: Option<String>,
    /// Elastic path: the registry (default: $SWH_DEPLOY_REGISTRY, else the
    /// site file's [registry]).
    #[arg(long, value_name = "[http://]HOST/PATH")]
    registry: Option<String>,
    /// Elastic path: the image builder (buildah, docker, podman).
    #[arg(long, value_name = "BUILDER", default_value = "buildah", value_parser = ["buildah", "docker", "podman"])]
    builder: String,
    /// Give up each wait (publication, Argo CD) after this long (exit 6).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    timeout: String,
    /// Time between two looks while waiting.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    interval: String,
    /// Print the plan and stop.
    #[arg(long)]
    dry_run: bool,
    /// Print how the ship ended as JSON on stdout (schema 1, docs/json.md);
    /// the plan and progress go to stderr.
    #[arg(long)]
    json: bool,
}

fn ship_error(e: ShipError) -> CliError {
    CliError::new(e.exit(), e.to_string())
}

/// The options of the ship: flags checked, settings resolved (flag, then
/// environment, then site file).
fn options(args: ShipArgs) -> Result<(ShipOptions, Site), CliError> {
    if !args.static_path && !args.elastic {
        return Err(ship_error(ShipError::NothingToShip));
    }
    let module = Module::parse(&args.module).map_err(|e| CliError::failed(e.to_string()))?;
    let version =
        ReleaseVersion::parse(&args.version).map_err(|e| CliError::failed(e.to_string()))?;
    let (timeout, interval) = release::wait_times(&args.timeout, &args.interval)?;
    let found = release::site_if_any(args.site.as_deref())?;
    let flags = settings::Args {
        site: args.site.clone(),
        registry: args.registry.clone(),
        index_url: args.pypi.clone(),
        apt_url: args.apt.clone(),
        apt_suite: args.suite.clone(),
        ..settings::Args::default()
    };
    let settings = Settings::resolve(&flags, &Env::process(), found.as_ref());
    let channels = release::channels_of(&settings, &args.arch)?;
    let site = match found {
        Some(s) => s,
        None => {
            Site::discover(args.site.as_deref()).map_err(|e| CliError::failed(e.to_string()))?
        }
    };
    let options = ShipOptions {
        module,
        version,
        static_path: args.static_path,
        elastic: args.elastic,
        repo: args.repo,
        remote: args.remote,
        sign: if args.sign {
            Some(true)
        } else if args.no_sign {
            Some(false)
        } else {
            None
        },
        channels,
        mode: args.mode,
        batch: args.batch,
        max_fail: args.max_fail,
        host_keys: if args.accept_new_host_keys {
            HostKeyPolicy::AcceptNew
        } else {
            HostKeyPolicy::Strict
        },
        envs: args.envs,
        index_url: args.index_url,
        registry: settings.registry,
        builder: match args.builder.as_str() {
            "docker" => Builder::Docker,
            "podman" => Builder::Podman,
            _ => Builder::Buildah,
        },
        uv: settings.uv,
        python_version: settings.python_version,
        apps_dir: settings.apps_dir,
        charts_dir: settings.charts_dir.unwrap_or_else(|| PathBuf::from(".")),
        gitlab_token: settings.gitlab_token,
        timeout,
        timeout_text: args.timeout,
        interval,
        journal: settings.journal,
        argv: std::env::args().collect(),
    };
    Ok((options, site))
}

/// Runs `swh-deploy ship`.
pub fn run(args: ShipArgs) -> CmdResult {
    let (dry_run, json) = (args.dry_run, args.json);
    let ship = options(args)
        .map_err(|e| e.in_command("ship"))
        .and_then(|(options, site)| {
            let mut ship = Ship::new(options, site);
            let plan =
                swh_deploy_ship::plan(&mut ship).map_err(|e| ship_error(e).in_command("ship"))?;
            Ok((ship, plan))
        });
    let (mut ship, plan) = ship?;
    let mut render = Render {
        upgrade: HumanProgress::new(std::io::stderr(), std::io::stderr().is_terminal()),
        json,
    };
    render.line(plan.render(&ship).trim_end());
    if dry_run {
        render.line("dry run: nothing done");
        return Ok(Exit::Success);
    }
    let outcome = swh_deploy_ship::execute(&mut ship, &plan, &mut render)
        .map_err(|e| ship_error(e).in_command("ship"))?;
    match outcome {
        ShipOutcome::Shipped {
            run,
            done_now,
            already_done,
            elapsed,
        } => {
            if json {
                crate::json::print(&serde_json::json!({
                    "status": "shipped",
                    "module": ship.options.module.dotted(),
                    "version": ship.options.version.to_string(),
                    "run": run,
                    "done_now": done_now,
                    "already_done": already_done,
                    "elapsed_s": elapsed.as_secs_f64(),
                }))?;
                return Ok(Exit::Success);
            }
            println!(
                "\nshipped {} {}: {done_now} step(s) done now, {already_done} already done ({:.1}s); journal run {run}",
                ship.options.module.dotted(),
                ship.options.version,
                elapsed.as_secs_f64()
            );
            Ok(Exit::Success)
        }
        ShipOutcome::Failed(f) => {
            let exit = f.error.exit();
            if json {
                crate::json::print(&serde_json::json!({
                    "status": "failed",
                    "module": ship.options.module.dotted(),
                    "version": ship.options.version.to_string(),
                    "exit": exit.code(),
                    "step": {"number": f.number, "of": f.of, "name": f.step.name(), "title": f.step.title},
                    "error": f.error.to_string(),
                    "continue": continue_command(),
                }))?;
            }
            eprintln!(
                "swh-deploy ship: step {}/{} ({}) failed (exit {}): {}\n  step: {}\n  the later steps were not run. Fix the cause, then continue with the same command (steps already done are skipped):\n  {}",
                f.number,
                f.of,
                f.step.name(),
                exit.code(),
                f.error,
                f.step.title,
                continue_command()
            );
            Ok(exit)
        }
    }
}

/// Renders the ship's progress: its own lines on stdout (on stderr with
/// `--json`), the steps' output likewise and their progress on stderr, as
/// the commands alone print them.
struct Render {
    upgrade: HumanProgress<std::io::Stderr>,
    json: bool,
}

impl Render {
    /// One of the ship's own lines.
    fn line(&self, text: impl std::fmt::Display) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

impl Reporter for Render {
    fn event(&mut self, event: &ShipEvent<'_>) {
        match event {
            ShipEvent::Started {
                run,
                continuing: Some(r),
            } => self.line(format_args!(
                "ship run {run}: continuing ship run {} ({}): steps already done are skipped",
                r.id, r.status
            )),
            ShipEvent::Started { run, .. } => self.line(format_args!("ship run {run}")),
            ShipEvent::Step { number, of, step } => {
                self.line(format_args!("\n[{number}/{of}] {}", step.title))
            }
            ShipEvent::AlreadyDone {
                number,
                of,
                step,
                evidence,
            } => self.line(format_args!(
                "[{number}/{of}] {}: already done: {evidence}",
                step.name()
            )),
            ShipEvent::Done {
                number,
                of,
                step,
                text,
            } => {
                let sep = if text.is_empty() { "" } else { ": " };
                self.line(format_args!(
                    "[{number}/{of}] {}: done{sep}{text}",
                    step.name()
                ))
            }
            ShipEvent::Output(text) => self.line(text),
            ShipEvent::Progress(text) => eprintln!("{text}"),
            ShipEvent::Upgrade(e) => self.upgrade.event(e),
        }
    }
}

/// The command that continues this ship: the same command line.
fn continue_command() -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if let Some(first) = words.first_mut() {
        if let Some(name) = Path::new(first.as_str()).file_name() {
            *first = name.to_string_lossy().into_owned();
        }
    }
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
}
