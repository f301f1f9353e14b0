//! `swh-deploy ship MODULE VERSION`: the runbook's whole chain in one
//! command, from the release tag to production.
//!
//! # Model
//!
//! **Plan, then act.** [`plan`] turns the site file and the flags into a list
//! of [`Step`]s, each one being an existing swh-deploy command (`release tag`,
//! `release wait`, `upgrade`, `app build --push`, `chart bump`, `chart
//! promote`, `cluster wait`) with the exact command line, hosts or files it
//! touches. `--dry-run` prints the numbered plan and stops.
//!
//! **Idempotent steps.** Before acting, each step asks whether it is already
//! done (the tag on the remote, the release on the index / in the Debian
//! repository, the hosts at the version, the app's last image tag frozen on
//! the version, the chart branch carrying the image versions, the
//! environment live in Argo CD) and says `already done` instead of redoing
//! it. Re-running the same `ship` after a failure or Ctrl-C therefore
//! continues where it stopped: that is how a ship is resumed.
//!
//! **Journal.** The ship is one journal run (mode `ship`) with one step per
//! plan step (`skipped` when already done); each step's result names the
//! runs its sub-command recorded (`release tag`, `app build`, the upgrade's
//! run...), which `swh-deploy history RUN` shows in detail.
//!
//! **Stop at the first failure**, with the step, its exit code (those of
//! `swh-deploy exit-codes`) and the command to continue.

use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use swh_deploy_apps::registry::Registry;
use swh_deploy_apps::version::today_utc;
use swh_deploy_apps::{parse_pins, AppsRepo, BuildOptions, Builder, FreezeOptions};
use swh_deploy_charts::git::Git;
use swh_deploy_charts::values::{app_key, Bump};
use swh_deploy_charts::{BumpRequest, ChartsRepo, Env};
use swh_deploy_cluster::gate::GateOutcome;
use swh_deploy_journal::{Journal, NewRun, Outcome, RunId, RunStatus, StepStatus};
use swh_deploy_release::publish::{Channel, Checker};
use swh_deploy_release::tag::{self, TagOptions};
use swh_deploy_release::{Module, ReleaseVersion};
use swh_deploy_site::{PackageName, Site};
use swh_deploy_upgrade::{BatchSpec, FailBudget, Mode, PlanRequest};

use swh_deploy_journal::Recorder;

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
}

/// Why a step failed: the exit code (see `exit-codes`) and a message.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { code: 1, message }
    }
}

/// What a step does.
#[derive(Debug, Clone)]
enum Action {
    /// `release tag VERSION --repo DIR`.
    Tag,
    /// `release wait MODULE VERSION`.
    WaitPublished,
    /// `upgrade --env ENV --service S...`.
    Upgrade {
        env: String,
        services: Vec<String>,
        hosts: Vec<String>,
    },
    /// `app build APP --push`.
    Build { app: String },
    /// `chart bump APP=VERSION...`.
    Bump,
    /// `chart promote ENV`.
    Promote(Env),
    /// `cluster wait ENV`.
    Wait(String),
}

/// One step of a ship.
struct Step {
    /// One line: what and the equivalent swh-deploy command.
    title: String,
    /// The exact commands, hosts or files (shown by --dry-run).
    details: Vec<String>,
    action: Action,
}

/// Everything the steps need.
struct Ctx {
    args: ShipArgs,
    site: Site,
    module: Module,
    version: ReleaseVersion,
    channels: Vec<Channel>,
    timeout: Duration,
    interval: Duration,
    /// The apps of the elastic path (those pinning the module).
    apps: Vec<String>,
    /// Image version of each app, once built or found.
    images: BTreeMap<String, String>,
    /// The hosts of the current upgrade step not at the release (or not
    /// answering), found by its check.
    behind: Vec<String>,
    /// The elastic path's chart release changes no image (no app pins the
    /// module): appVersion + 1 only.
    release_only: bool,
}

/// Runs `swh-deploy ship`.
pub fn run(args: ShipArgs) -> ExitCode {
    match ship(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy ship: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    swh_deploy_site::parse_duration(text).map_err(|e| format!("--{flag}: {e}"))
}

/// The publication channels: flags, environment, then the site file's
/// `[release]` section, as for `release wait`.
fn channels(args: &ShipArgs) -> Result<Vec<Channel>, String> {
    super::release::resolve_channels(
        args.pypi.clone(),
        args.apt.clone(),
        args.suite.clone(),
        &args.arch,
        args.site.as_deref(),
    )
}

fn ship(args: ShipArgs) -> Result<ExitCode, String> {
    if !args.static_path && !args.elastic {
        return Err("nothing to ship to: give --static (Debian packages on hosts) and/or --elastic (images, chart, Argo CD)".into());
    }
    let module = Module::parse(&args.module).map_err(|e| e.to_string())?;
    let version = ReleaseVersion::parse(&args.version).map_err(|e| e.to_string())?;
    let timeout = duration("timeout", &args.timeout)?;
    let interval = duration("interval", &args.interval)?;
    if interval.is_zero() {
        return Err("--interval: must be more than 0".into());
    }
    let channels = channels(&args)?;
    let site = Site::discover(args.site.as_deref()).map_err(|e| e.to_string())?;
    let mut ctx = Ctx {
        args,
        site,
        module,
        version,
        channels,
        timeout,
        interval,
        apps: Vec::new(),
        images: BTreeMap::new(),
        behind: Vec::new(),
        release_only: false,
    };
    let (steps, notes) = plan(&mut ctx)?;
    println!(
        "ship {} {}: {} step(s)",
        ctx.module.dotted(),
        ctx.version,
        steps.len()
    );
    for n in &notes {
        println!("  note: {n}");
    }
    for (i, s) in steps.iter().enumerate() {
        println!("{:>3}. {}", i + 1, s.title);
        for d in &s.details {
            for line in d.lines() {
                println!("       {line}");
            }
        }
    }
    if ctx.args.dry_run {
        println!("dry run: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    act(&mut ctx, &steps)
}

/// The command that continues this ship: the same command line.
fn continue_command() -> String {
    let words: Vec<String> = std::env::args().collect();
    let mut words = words;
    if let Some(first) = words.first_mut() {
        if let Some(name) = Path::new(first.as_str()).file_name() {
            *first = name.to_string_lossy().into_owned();
        }
    }
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
}

// ---------------------------------------------------------------- planning

/// Environments of the static path in order: `--env` as given, else
/// staging, the others by name, production.
fn static_envs(ctx: &Ctx) -> Result<Vec<String>, String> {
    if !ctx.args.envs.is_empty() {
        for e in &ctx.args.envs {
            ctx.site.environment(e).map_err(|e| e.to_string())?;
        }
        return Ok(ctx.args.envs.clone());
    }
    let mut envs: Vec<String> = ctx.site.environments.keys().cloned().collect();
    envs.sort_by_key(|e| {
        (
            match e.as_str() {
                "staging" => 0,
                "production" => 2,
                _ => 1,
            },
            e.clone(),
        )
    });
    Ok(envs)
}

fn apps_repo(ctx: &Ctx) -> Result<AppsRepo, String> {
    let dir = super::app::apps_dir(&None, Some(&ctx.site));
    let mut repo = AppsRepo::open(&dir).map_err(|e| e.to_string())?;
    if let Some(a) = &ctx.site.apps {
        repo = repo.with_remote(&a.remote);
    }
    Ok(repo)
}

fn charts_repo(ctx: &Ctx) -> Result<ChartsRepo, String> {
    let dir = super::chart::charts_dir(&None, Some(&ctx.site));
    let mut repo = ChartsRepo::open(&dir).map_err(|e| e.to_string())?;
    if let Some(c) = &ctx.site.charts {
        repo = repo.with_remote(&c.remote).with_values_file(&c.values_file);
    }
    Ok(repo)
}

fn apps_remote(ctx: &Ctx) -> String {
    ctx.site
        .apps
        .as_ref()
        .map(|a| a.remote.clone())
        .unwrap_or_else(|| "origin".into())
}

fn registry(ctx: &Ctx) -> Result<Registry, String> {
    super::app::registry_from(ctx.args.registry.clone(), Some(&ctx.site))
}

fn freeze_options(ctx: &Ctx) -> FreezeOptions {
    let index = ctx.args.index_url.clone().or_else(|| {
        ctx.channels.iter().find_map(|c| match c {
            Channel::Pypi { index } => Some(index.clone()),
            _ => None,
        })
    });
    let mut index_args = Vec::new();
    if let Some(u) = index {
        index_args.extend(["--index-url".to_string(), u]);
    }
    FreezeOptions {
        uv: env_nonempty("SWH_DEPLOY_UV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("uv")),
        index_args,
        upgrade: true,
    }
}

/// The pypi-style spelling of the release for pins (`1.2.0`).
fn pin_version(v: &ReleaseVersion) -> String {
    v.to_string().trim_start_matches('v').to_string()
}

/// Whether a pinned version (`1.2.0`, `1.2`) is the release.
fn pin_matches(pin: Option<&String>, v: &ReleaseVersion) -> bool {
    pin.and_then(|p| ReleaseVersion::parse(p).ok())
        .is_some_and(|p| p == *v)
}

/// Builds the plan; returns the steps and notes (paths not taken and why).
fn plan(ctx: &mut Ctx) -> Result<(Vec<Step>, Vec<String>), String> {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let m = ctx.module.dotted().to_string();
    let v = ctx.version.to_string();

    // 1. release tag.
    if let Some(repo) = &ctx.args.repo {
        let dir = repo.display().to_string();
        let mut details = Vec::new();
        let opts = tag_options(ctx, repo);
        match tag::plan(&ctx.version, &opts) {
            Ok(p) => {
                details.extend(p.steps.iter().map(|s| p.command_line(s)));
                if let Some(pm) = &p.module {
                    if pm.dotted() != m {
                        return Err(format!("--repo {dir} is the checkout of {pm}, not of {m}"));
                    }
                }
            }
            Err(swh_deploy_release::Error::AlreadyReleased { .. }) => {
                details.push(format!(
                    "{} is already on {}",
                    ctx.version.tag_name(),
                    opts.remote
                ));
            }
            Err(e) => details.push(format!("(checks fail now: {e})")),
        }
        steps.push(Step {
            title: format!(
                "release tag: {}",
                super::quote_words(&[
                    "swh-deploy",
                    "release",
                    "tag",
                    &v,
                    "--repo",
                    &dir,
                    "--remote",
                    &ctx.args.remote
                ])
            ),
            details,
            action: Action::Tag,
        });
    } else {
        notes.push(format!(
            "no --repo: {} is not tagged by ship (the developers tag their releases)",
            ctx.version.tag_name()
        ));
    }

    // 2. release wait.
    steps.push(Step {
        title: format!(
            "release wait: swh-deploy release wait {m} {v} (--timeout {})",
            ctx.args.timeout
        ),
        details: ctx.channels.iter().map(|c| c.describe()).collect(),
        action: Action::WaitPublished,
    });

    // 3. the static path.
    if ctx.args.static_path {
        let package = ctx.module.debian_package();
        let services: Vec<String> = ctx
            .site
            .services
            .values()
            .filter(|s| s.packages.iter().any(|p| p.as_str() == package))
            .map(|s| s.name.clone())
            .collect();
        if services.is_empty() {
            return Err(format!(
                "--static: no service of {} has package {package}",
                ctx.site.path.display()
            ));
        }
        let mut any = false;
        for env in static_envs(ctx)? {
            let mut on_env = Vec::new();
            for s in &services {
                if swh_deploy_upgrade::select(&ctx.site, Some(&env), &[], std::slice::from_ref(s))
                    .is_ok()
                {
                    on_env.push(s.clone());
                }
            }
            if on_env.is_empty() {
                continue;
            }
            let sel = swh_deploy_upgrade::select(&ctx.site, Some(&env), &[], &on_env)
                .map_err(|e| e.to_string())?;
            let request = PlanRequest {
                mode: ctx.args.mode,
                targets: sel.targets.clone(),
                services: sel.services.clone(),
                packages: Vec::new(),
                migration: None,
                reason: None,
                batch: ctx.args.batch.clone().unwrap_or_default(),
                max_fail: ctx.args.max_fail.unwrap_or_default(),
                run_id: None,
            };
            let rendered = swh_deploy_upgrade::plan(&request)
                .map_err(|e| e.to_string())?
                .render();
            let mut cmd = vec![
                "swh-deploy".to_string(),
                "upgrade".into(),
                "--env".into(),
                env.clone(),
                "--mode".into(),
                ctx.args.mode.as_str().into(),
            ];
            for s in &on_env {
                cmd.extend(["--service".into(), s.clone()]);
            }
            if let Some(b) = &ctx.args.batch {
                cmd.extend(["--batch".into(), b.to_string()]);
            }
            if let Some(b) = &ctx.args.max_fail {
                cmd.extend(["--max-fail".into(), b.to_string()]);
            }
            let words: Vec<&str> = cmd.iter().map(String::as_str).collect();
            steps.push(Step {
                title: format!("upgrade {env}: {}", super::quote_words(&words)),
                details: vec![
                    format!(
                        "hosts: {} (until {package} is at {})",
                        fold(&sel.targets),
                        ctx.version.debian_upstream()
                    ),
                    rendered,
                ],
                action: Action::Upgrade {
                    env: env.clone(),
                    services: on_env,
                    hosts: sel.targets,
                },
            });
            any = true;
        }
        if !any {
            return Err(format!(
                "--static: the services with {package} ({}) have no hosts in any environment",
                services.join(", ")
            ));
        }
    }

    // 4. the elastic path.
    if ctx.args.elastic {
        let repo = apps_repo(ctx)?;
        let key = swh_deploy_apps::normalize_name(&m);
        let mut apps = Vec::new();
        for app in repo.list().map_err(|e| e.to_string())? {
            let f = repo
                .dir()
                .join("apps")
                .join(&app.name)
                .join("requirements-frozen.txt");
            if let Ok(text) = std::fs::read_to_string(&f) {
                if let Some(pinned) = parse_pins(&text).get(&key) {
                    apps.push((app.name.clone(), pinned.clone()));
                }
            }
        }
        let values_file = ctx
            .site
            .charts
            .as_ref()
            .map(|c| c.values_file.clone())
            .unwrap_or_else(|| "values-swh-application-versions.yaml".into());
        let charts = super::chart::charts_dir(&None, Some(&ctx.site));
        let tagv = ctx.version.tag_name();
        if apps.is_empty() {
            // A release that changes no image (about one real release in
            // nine): the chart release is appVersion + 1 only.
            notes.push(format!(
                "--elastic: no app of {} pins {m}: no image to build; the chart release only bumps swh/Chart.yaml's appVersion",
                repo.dir().display()
            ));
            ctx.release_only = true;
            let words = [
                "swh-deploy",
                "chart",
                "bump",
                "--release-only",
                "--module",
                &m,
                "--module-version",
                &tagv,
            ];
            steps.push(Step {
                title: format!("chart bump: {}", super::quote_words(&words)),
                details: vec![format!(
                    "swh/Chart.yaml appVersion + 1 on swh-next-version of {}, no image version change; commit \"vN: Release {m} {tagv}\" and push",
                    charts.display()
                )],
                action: Action::Bump,
            });
        } else {
            let reg = registry(ctx)?;
            let mut bumps = Vec::new();
            // Versions the builds would take (ctx.images only holds the
            // versions found already built, or built by this run).
            let mut planned = BTreeMap::new();
            for (app, pinned) in &apps {
                let action = Action::Build { app: app.clone() };
                let details = if let Ok(Some(done)) = check(ctx, &action) {
                    vec![format!("already built: {done}")]
                } else {
                    let next = repo
                        .next_version(app, today_utc(), Some(&reg), None)
                        .map(|v| v.to_string())
                        .unwrap_or_else(|_| "YYYYMMDD.N".into());
                    planned.insert(app.clone(), next.clone());
                    vec![
                        format!(
                            "apps/{app}/requirements-frozen.txt: {m} {pinned} -> {}",
                            pin_version(&ctx.version)
                        ),
                        format!(
                            "image {}:{next} (and latest), tag {app}-{next}",
                            reg.image_ref(&swh_deploy_apps::image_name(app))
                        ),
                    ]
                };
                steps.push(Step {
                    title: format!(
                        "app build: swh-deploy app build {app} --push --builder {}",
                        ctx.args.builder
                    ),
                    details,
                    action,
                });
                let v = ctx
                    .images
                    .get(app)
                    .or_else(|| planned.get(app))
                    .cloned()
                    .unwrap_or_default();
                bumps.push(format!("{app}={v}"));
            }
            ctx.apps = apps.into_iter().map(|(a, _)| a).collect();
            let mut words = vec!["swh-deploy", "chart", "bump"];
            words.extend(bumps.iter().map(String::as_str));
            words.extend(["--module", &m, "--module-version", &tagv]);
            steps.push(Step {
                title: format!("chart bump: {}", super::quote_words(&words)),
                details: vec![format!(
                    "{values_file} on swh-next-version of {}; swh/Chart.yaml appVersion + 1; commit and push",
                    charts.display()
                )],
                action: Action::Bump,
            });
        }
        for env in [Env::Staging, Env::Production] {
            steps.push(Step {
                title: format!("chart promote: swh-deploy chart promote {env}"),
                details: vec![format!(
                    "fast-forward {env} to {}",
                    env.source().map(|e| e.branch()).unwrap_or_default()
                )],
                action: Action::Promote(env),
            });
            match wait_target(&ctx.site, env.branch()) {
                Ok((name, app)) => steps.push(Step {
                    title: format!(
                        "cluster wait: swh-deploy cluster wait {name} (--timeout {})",
                        ctx.args.timeout
                    ),
                    details: vec![format!("Argo CD application {app} live at {env}'s head")],
                    action: Action::Wait(name),
                }),
                Err(why) => notes.push(format!("{env} is not waited for: {why}")),
            }
        }
    }
    Ok((steps, notes))
}

/// The environment deployed from `branch` and its Argo CD application, or
/// why it cannot be waited for.
fn wait_target(site: &Site, branch: &str) -> Result<(String, String), String> {
    if site.argocd.is_none() {
        return Err(format!("no [argocd] in {}", site.path.display()));
    }
    let env = swh_deploy_cluster::gate::environment_of_branch(site, branch)
        .ok_or_else(|| format!("no environment of {} deploys {branch}", site.path.display()))?;
    let app = env
        .argocd_application
        .clone()
        .ok_or_else(|| format!("environment {} has no argocd_application", env.name))?;
    Ok((env.name.clone(), app))
}

fn tag_options(ctx: &Ctx, repo: &Path) -> TagOptions {
    TagOptions {
        repo: repo.to_path_buf(),
        remote: ctx.args.remote.clone(),
        sign: if ctx.args.sign {
            Some(true)
        } else if ctx.args.no_sign {
            Some(false)
        } else {
            None
        },
        message: None,
        push: true,
    }
}

fn fold(hosts: &[String]) -> String {
    swh_deploy_nodeset::NodeSet::from_names(hosts.iter().map(String::as_str))
        .map(|n| n.to_string())
        .unwrap_or_else(|_| hosts.join(","))
}

// ---------------------------------------------------------------- acting

/// The ship's own journal run.
struct ShipJournal {
    journal: Journal,
    run: RunId,
    /// When the current step started.
    started: Instant,
}

impl ShipJournal {
    fn warn<T>(r: Result<T, swh_deploy_journal::JournalError>) {
        if let Err(e) = r {
            eprintln!("swh-deploy: warning: journal: {e}");
        }
    }

    /// The newest run id so far.
    fn last_run(&self) -> RunId {
        self.journal
            .runs(1)
            .ok()
            .and_then(|r| r.first().map(|r| r.id))
            .unwrap_or(0)
    }

    /// Runs recorded after `since`, other than the ship's, as `12 (app build)`.
    fn runs_since(&self, since: RunId) -> Vec<String> {
        let mut out: Vec<String> = self
            .journal
            .runs(100)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.id > since && r.id != self.run)
            .map(|r| format!("{} ({}, {})", r.id, r.mode, r.status))
            .collect();
        out.reverse();
        out
    }

    fn step_result(&mut self, idx: i64, target: &str, ok: bool, text: &str, status: StepStatus) {
        let (out, err): (&[u8], &[u8]) = if ok {
            (text.as_bytes(), b"")
        } else {
            (b"", text.as_bytes())
        };
        Self::warn(self.journal.record_host_result(
            self.run,
            idx,
            target,
            None,
            out,
            err,
            self.started.elapsed(),
            if ok { Outcome::Ok } else { Outcome::Failed },
        ));
        Self::warn(self.journal.end_step(self.run, idx, status));
    }
}

fn step_target(a: &Action, ctx: &Ctx) -> String {
    match a {
        Action::Tag => ctx.version.tag_name(),
        Action::WaitPublished => ctx
            .channels
            .iter()
            .map(|c| c.kind())
            .collect::<Vec<_>>()
            .join(","),
        Action::Upgrade { hosts, .. } => fold(hosts),
        Action::Build { app } => app.clone(),
        Action::Bump => Env::NextVersion.branch().into(),
        Action::Promote(env) => env.branch().into(),
        Action::Wait(env) => env.clone(),
    }
}

fn act(ctx: &mut Ctx, steps: &[Step]) -> Result<ExitCode, String> {
    let explicit = std::env::var_os("SWH_DEPLOY_JOURNAL").map(PathBuf::from);
    let mut journal = Journal::open_default(explicit.as_deref()).map_err(|e| e.to_string())?;
    // A ship killed (Ctrl-C, SIGTERM, crash) left its run `running`.
    ShipJournal::warn(journal.reap_dead_runs());
    let earlier = journal.runs(200).unwrap_or_default().into_iter().find(|r| {
        r.mode == "ship"
            && r.parameters["module"] == ctx.module.dotted()
            && r.parameters["version"] == ctx.version.to_string()
    });
    let run = journal
        .start_run(&NewRun {
            command_line: std::env::args().collect(),
            mode: "ship".into(),
            parameters: serde_json::json!({
                "module": ctx.module.dotted(),
                "version": ctx.version.to_string(),
                "static": ctx.args.static_path,
                "elastic": ctx.args.elastic,
                "steps": steps.iter().map(|s| s.title.clone()).collect::<Vec<_>>(),
            }),
        })
        .map_err(|e| e.to_string())?;
    let mut sj = ShipJournal {
        journal,
        run,
        started: Instant::now(),
    };
    match earlier {
        Some(r) if r.status != RunStatus::Succeeded => println!(
            "ship run {run}: continuing ship run {} ({}): steps already done are skipped",
            r.id, r.status
        ),
        _ => println!("ship run {run}"),
    }
    let n = steps.len();
    let start = Instant::now();
    let mut done_now = 0;
    for (i, step) in steps.iter().enumerate() {
        let idx = i as i64;
        let target = step_target(&step.action, ctx);
        let name = step.title.split(':').next().unwrap_or("step").to_string();
        ShipJournal::warn(
            sj.journal
                .start_step(run, idx, &step.title, "ship", None, &target),
        );
        println!("\n[{}/{n}] {}", i + 1, step.title);
        sj.started = Instant::now();
        let checked = check(ctx, &step.action);
        match checked {
            Ok(Some(why)) => {
                println!("[{}/{n}] {name}: already done: {why}", i + 1);
                sj.step_result(
                    idx,
                    &target,
                    true,
                    &format!("already done: {why}"),
                    StepStatus::Skipped,
                );
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                return Ok(fail(&mut sj, idx, i + 1, n, &name, &target, step, e));
            }
        }
        let before = sj.last_run();
        // An upgrade step handles Ctrl-C itself (compensations, exit 130)
        // and puts the default action back when it ends.
        let result = perform(ctx, &step.action);
        let subs = sj.runs_since(before);
        let runs = if subs.is_empty() {
            String::new()
        } else {
            format!("runs {}", subs.join(", "))
        };
        match result {
            Ok(what) => {
                let text = [what.as_str(), runs.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("; ");
                println!(
                    "[{}/{n}] {name}: done{}",
                    i + 1,
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    }
                );
                sj.step_result(idx, &target, true, &text, StepStatus::Succeeded);
                done_now += 1;
            }
            Err(mut e) => {
                if !runs.is_empty() {
                    e.message = format!("{} ({runs})", e.message);
                }
                return Ok(fail(&mut sj, idx, i + 1, n, &name, &target, step, e));
            }
        }
    }
    ShipJournal::warn(sj.journal.end_run(run, RunStatus::Succeeded));
    println!(
        "\nshipped {} {}: {} step(s) done now, {} already done ({:.1}s); journal run {run}",
        ctx.module.dotted(),
        ctx.version,
        done_now,
        n - done_now,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn fail(
    sj: &mut ShipJournal,
    idx: i64,
    number: usize,
    n: usize,
    name: &str,
    target: &str,
    step: &Step,
    e: Failure,
) -> ExitCode {
    sj.step_result(idx, target, false, &e.message, StepStatus::Failed);
    let status = match e.code {
        130 => RunStatus::Interrupted,
        _ => RunStatus::Failed,
    };
    ShipJournal::warn(sj.journal.end_run(sj.run, status));
    eprintln!(
        "swh-deploy ship: step {number}/{n} ({name}) failed (exit {}): {}\n  step: {}\n  the later steps were not run. Fix the cause, then continue with the same command (steps already done are skipped):\n  {}",
        e.code,
        e.message,
        step.title,
        continue_command()
    );
    ExitCode::from(e.code)
}

/// Whether a step's result is already there: `Some(why)`.
fn check(ctx: &mut Ctx, action: &Action) -> Result<Option<String>, Failure> {
    match action {
        Action::Tag => {
            let repo = ctx.args.repo.clone().unwrap_or_default();
            let git = Git::new(&repo);
            let tag = ctx.version.tag_name();
            let out = git
                .run(&[
                    "ls-remote",
                    "--tags",
                    &ctx.args.remote,
                    &format!("refs/tags/{tag}"),
                    &format!("refs/tags/{tag}^{{}}"),
                ])
                .map_err(|e| {
                    Failure::new(
                        1,
                        format!("cannot list the tags of {}: {e}", ctx.args.remote),
                    )
                })?;
            let mut ids = BTreeMap::new();
            for line in out.lines() {
                if let Some((id, r)) = line.split_once('\t') {
                    ids.insert(r.to_string(), id.to_string());
                }
            }
            let Some(commit) = ids
                .get(&format!("refs/tags/{tag}^{{}}"))
                .or_else(|| ids.get(&format!("refs/tags/{tag}")))
            else {
                return Ok(None);
            };
            let head = git.rev("HEAD").ok().flatten().unwrap_or_default();
            let short = &commit[..commit.len().min(12)];
            if *commit == head {
                Ok(Some(format!(
                    "{tag} is on {} at HEAD {short}",
                    ctx.args.remote
                )))
            } else {
                Ok(Some(format!(
                    "{tag} is on {} at {short} (the checkout's HEAD is {}: the release is {short})",
                    ctx.args.remote,
                    &head[..head.len().min(12)]
                )))
            }
        }
        Action::WaitPublished => {
            let checker = Checker::new(Duration::from_secs(20));
            let mut evidence = Vec::new();
            for c in &ctx.channels {
                match checker.check(c, &ctx.module, &ctx.version) {
                    swh_deploy_release::publish::Status::Published { evidence: e } => {
                        evidence.push(format!("{} ({e})", c.describe()))
                    }
                    _ => return Ok(None),
                }
            }
            Ok(Some(format!("published on {}", evidence.join(", "))))
        }
        Action::Upgrade { hosts, .. } => {
            ctx.behind = hosts_behind(ctx, hosts)?;
            if ctx.behind.is_empty() {
                Ok(Some(format!(
                    "{} at {} on {}",
                    ctx.module.debian_package(),
                    ctx.version.debian_upstream(),
                    fold(hosts)
                )))
            } else {
                Ok(None)
            }
        }
        Action::Build { app } => {
            let repo = apps_repo(ctx)?;
            let remote = apps_remote(ctx);
            let git = Git::new(repo.dir());
            git.run(&["fetch", "-q", "--tags", &remote]).map_err(|e| {
                Failure::new(
                    1,
                    format!("git fetch {remote} in {}: {e}", repo.dir().display()),
                )
            })?;
            let mut versions = repo.tagged_versions(app).map_err(|e| e.to_string())?;
            versions.sort();
            let Some(newest) = versions.last() else {
                return Ok(None);
            };
            let tag = format!("{app}-{newest}");
            let Ok(text) = git.show_file(
                &format!("refs/tags/{tag}"),
                &format!("apps/{app}/requirements-frozen.txt"),
            ) else {
                return Ok(None);
            };
            let key = swh_deploy_apps::normalize_name(ctx.module.dotted());
            if pin_matches(parse_pins(&text).get(&key), &ctx.version) {
                ctx.images.insert(app.clone(), newest.to_string());
                Ok(Some(format!(
                    "tag {tag} on {remote} has apps/{app}/requirements-frozen.txt at {} {}",
                    ctx.module.dotted(),
                    pin_version(&ctx.version)
                )))
            } else {
                Ok(None)
            }
        }
        Action::Bump if ctx.release_only => release_commit(ctx, Env::NextVersion),
        Action::Bump => {
            let missing = chart_missing(ctx, Env::NextVersion)?;
            Ok(missing
                .is_empty()
                .then(|| format!("swh-next-version has {}", images_text(ctx))))
        }
        Action::Promote(env) if ctx.release_only => release_commit(ctx, *env),
        Action::Promote(env) => {
            let missing = chart_missing(ctx, *env)?;
            Ok(missing
                .is_empty()
                .then(|| format!("{env} has {}", images_text(ctx))))
        }
        Action::Wait(env) => {
            let head =
                super::cluster::remote_branch_head(&ctx.site, None, branch_of(&ctx.site, env))?;
            match swh_deploy_cluster::gate::promote_gate(
                Some(&ctx.site),
                branch_of(&ctx.site, env),
                &head,
            ) {
                Ok(GateOutcome::Open(m)) => Ok(Some(m)),
                _ => Ok(None),
            }
        }
    }
}

fn branch_of<'a>(site: &'a Site, env: &'a str) -> &'a str {
    site.environments
        .get(env)
        .and_then(|e| e.chart_branch.as_deref())
        .unwrap_or(env)
}

fn images_text(ctx: &Ctx) -> String {
    ctx.images
        .iter()
        .map(|(a, v)| format!("{}: {v}", app_key(a)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// For a release-only chart bump: the release commit of the module's
/// version on `env`'s branch (on the remote), if it is there.
fn release_commit(ctx: &Ctx, env: Env) -> Result<Option<String>, Failure> {
    let repo = charts_repo(ctx)?;
    let found = repo
        .release_commit(env.branch(), ctx.module.dotted(), &ctx.version.tag_name())
        .map_err(|e| e.to_string())?;
    Ok(found.map(|c| format!("{env} has the release commit {c}")))
}

/// The apps whose image version on `env`'s branch (on the remote) is not
/// the one built; every app when some image version is not known yet.
fn chart_missing(ctx: &Ctx, env: Env) -> Result<Vec<String>, Failure> {
    if ctx.apps.iter().any(|a| !ctx.images.contains_key(a)) {
        return Ok(ctx.apps.clone());
    }
    let repo = charts_repo(ctx)?;
    let ov = repo
        .show(&[env.branch().to_string()])
        .map_err(|e| e.to_string())?;
    Ok(ctx
        .images
        .iter()
        .filter(|(app, v)| {
            ov.apps
                .get(&app_key(app))
                .and_then(|vs| vs.first().cloned().flatten())
                .as_deref()
                != Some(v.as_str())
        })
        .map(|(a, _)| a.clone())
        .collect())
}

/// Hosts whose installed package is not at the release (or that did not
/// answer).
/// The host-key policy `--accept-new-host-keys` asks for.
fn host_keys(ctx: &Ctx) -> swh_deploy_fleet::HostKeyPolicy {
    if ctx.args.accept_new_host_keys {
        swh_deploy_fleet::HostKeyPolicy::AcceptNew
    } else {
        swh_deploy_fleet::HostKeyPolicy::Strict
    }
}

fn hosts_behind(ctx: &Ctx, hosts: &[String]) -> Result<Vec<String>, Failure> {
    let package: PackageName = ctx
        .module
        .debian_package()
        .parse()
        .map_err(|e: swh_deploy_site::NameError| e.to_string())?;
    swh_deploy_upgrade::ssh::check(&ctx.site)?;
    let transport = swh_deploy_upgrade::ssh::transport_with(&ctx.site, host_keys(ctx))
        .map_err(|e| e.to_string())?;
    let answers = swh_deploy_upgrade::versions::query(
        &transport,
        ctx.site.ssh.fanout.max(1),
        hosts,
        std::slice::from_ref(&package),
    )?;
    let mut behind = Vec::new();
    for h in hosts {
        let ok = match answers.get(h) {
            Some(Ok(pkgs)) => pkgs
                .get(package.as_str())
                .and_then(|v| v.as_ref())
                .is_some_and(|v| {
                    swh_deploy_release::publish::debian_version_matches(v.as_ref(), &ctx.version)
                }),
            _ => false,
        };
        if !ok {
            behind.push(h.clone());
        }
    }
    Ok(behind)
}

/// Runs a step; `Ok(what was done)`.
fn perform(ctx: &mut Ctx, action: &Action) -> Result<String, Failure> {
    match action {
        Action::Tag => {
            let repo = ctx.args.repo.clone().unwrap_or_default();
            let plan =
                tag::plan(&ctx.version, &tag_options(ctx, &repo)).map_err(|e| e.to_string())?;
            super::release::execute_tag(&plan)?;
            Ok(format!("pushed {} to {}", plan.tag, plan.remote))
        }
        Action::WaitPublished => {
            let outcome = super::release::wait_published(
                &ctx.module,
                &ctx.version,
                &ctx.channels,
                ctx.timeout,
                ctx.interval,
            )?;
            if outcome.published {
                Ok(format!(
                    "published after {:.1}s",
                    outcome.elapsed.as_secs_f64()
                ))
            } else {
                let missing: Vec<String> = outcome
                    .channels
                    .iter()
                    .filter(|c| !c.status.is_published())
                    .map(|c| format!("{}: {}", c.channel.describe(), c.status.describe()))
                    .collect();
                Err(Failure::new(
                    6,
                    format!(
                        "not published after {}: {}",
                        ctx.args.timeout,
                        missing.join("; ")
                    ),
                ))
            }
        }
        Action::Upgrade {
            env,
            services,
            hosts,
        } => {
            // Only the hosts not at the release yet (a ship resumed after a
            // partial upgrade does not restart the others again).
            let nodes = if !ctx.behind.is_empty() && ctx.behind.len() < hosts.len() {
                let done: Vec<String> = hosts
                    .iter()
                    .filter(|h| !ctx.behind.contains(h))
                    .cloned()
                    .collect();
                println!(
                    "upgrading {} only: {} already at {}",
                    fold(&ctx.behind),
                    fold(&done),
                    ctx.version.debian_upstream()
                );
                vec![fold(&ctx.behind)]
            } else {
                Vec::new()
            };
            let request = swh_deploy_upgrade::UpgradeRequest {
                env: Some(env.clone()),
                nodes,
                services: services.clone(),
                mode: ctx.args.mode,
                batch: ctx.args.batch.clone().unwrap_or_default(),
                max_fail: ctx.args.max_fail.unwrap_or_default(),
                ..swh_deploy_upgrade::UpgradeRequest::new(&ctx.site)
            };
            let code = super::resume::run_upgrade(&ctx.site, &request, None, false, host_keys(ctx));
            if code != ExitCode::SUCCESS {
                let n = [1u8, 3, 4, 5, 6, 130]
                    .into_iter()
                    .find(|c| ExitCode::from(*c) == code)
                    .unwrap_or(1);
                return Err(Failure::new(
                    n,
                    format!("the upgrade of {env} ({}) did not succeed", fold(hosts)),
                ));
            }
            let behind = hosts_behind(ctx, hosts)?;
            if !behind.is_empty() {
                return Err(Failure::new(
                    1,
                    format!(
                        "the upgrade of {env} succeeded but {} is not at {} on {}: is the Debian package in the repository the hosts use?",
                        ctx.module.debian_package(),
                        ctx.version.debian_upstream(),
                        fold(&behind)
                    ),
                ));
            }
            Ok(format!(
                "{} at {} on {}",
                ctx.module.debian_package(),
                ctx.version.debian_upstream(),
                fold(hosts)
            ))
        }
        Action::Build { app } => build(ctx, app),
        Action::Bump => {
            let repo = charts_repo(ctx)?;
            let bumps: Vec<Bump> = ctx
                .images
                .iter()
                .map(|(app, v)| Bump {
                    app: app.clone(),
                    version: v.clone(),
                    add_image: None,
                })
                .collect();
            let desc: Vec<String> = ctx.images.iter().map(|(a, v)| format!("{a}={v}")).collect();
            let req = BumpRequest {
                bumps,
                module: Some((ctx.module.dotted().to_string(), ctx.version.tag_name())),
                branch: Env::NextVersion.branch().into(),
                push: true,
                dry_run: false,
                release_only: ctx.release_only,
                body: false,
                again: false,
                merge_request: Some(Env::Staging.branch().into()),
            };
            let mut rec = Recorder::start(
                "chart bump",
                serde_json::json!({
                    "apps": desc,
                    "release_only": ctx.release_only,
                    "branch": req.branch,
                    "push": true,
                    "ship": true,
                }),
            )
            .map_err(|e| e.to_string())?;
            let result = repo.prepare_bump(&req).and_then(|prepared| {
                if prepared.outcome.has_work() {
                    rec.step(
                        &super::chart::journal_step(&prepared.outcome, &req.branch, true),
                        &req.branch,
                    );
                }
                repo.commit_bump(prepared)
            });
            rec.finish(result.is_ok());
            let out = result.map_err(|e| e.to_string())?;
            if let Some(c) = &out.already {
                return Ok(format!("swh-next-version already has {c}"));
            }
            for c in &out.changes {
                println!(
                    "{}: {} -> {}",
                    c.key,
                    c.from.as_deref().unwrap_or("(new)"),
                    c.to
                );
            }
            let title = out.message.lines().next().unwrap_or_default().to_string();
            Ok(format!(
                "committed {} \"{title}\" on swh-next-version, pushed",
                out.commit
                    .as_deref()
                    .map(|c| &c[..c.len().min(12)])
                    .unwrap_or("")
            ))
        }
        Action::Promote(env) => {
            let repo = charts_repo(ctx)?;
            super::chart::promote(&repo, Some(&ctx.site), *env, false, false)?;
            Ok(format!("{env} promoted"))
        }
        Action::Wait(env) => {
            let code = super::cluster::wait(&ctx.site, env, None, ctx.timeout, ctx.interval, None)?;
            if code == ExitCode::SUCCESS {
                Ok(format!("{env} is live"))
            } else if code == ExitCode::from(6) {
                Err(Failure::new(
                    6,
                    format!("{env} not live after {}", ctx.args.timeout),
                ))
            } else {
                Err(Failure::new(
                    1,
                    format!("{env}'s rollout failed (Argo CD / deployments): fix it (a new chart commit, or the cluster) before shipping further"),
                ))
            }
        }
    }
}

/// `app build APP --push`, after checking that the freeze pins the release.
fn build(ctx: &mut Ctx, app: &str) -> Result<String, Failure> {
    let repo = apps_repo(ctx)?;
    let freeze = freeze_options(ctx);
    let want = pin_version(&ctx.version);
    let key = swh_deploy_apps::normalize_name(ctx.module.dotted());
    // The gate: uv must resolve the module at the release, else the image
    // would ship another version.
    let dry = repo
        .freeze(app, &freeze, false)
        .map_err(|e| e.to_string())?;
    let got = parse_pins(&dry.text).get(&key).cloned();
    if !pin_matches(got.as_ref(), &ctx.version) {
        return Err(Failure::new(
            1,
            format!(
                "uv pip compile resolves {} at {} for apps/{app}, not {want}: is {want} the newest release on the index ({})?",
                ctx.module.dotted(),
                got.as_deref().unwrap_or("(absent)"),
                freeze.index_args.last().map(String::as_str).unwrap_or("uv's default")
            ),
        ));
    }
    let builder = match ctx.args.builder.as_str() {
        "docker" => Builder::Docker,
        "podman" => Builder::Podman,
        _ => Builder::Buildah,
    };
    let opts = BuildOptions {
        builder,
        registry: registry(ctx)?,
        push: true,
        dry_run: false,
        freeze,
        page_size: None,
    };
    let mut rec = Recorder::start(
        "app build",
        serde_json::json!({ "app": app, "push": true, "builder": builder.program(), "ship": true }),
    )
    .map_err(|e| e.to_string())?;
    let mut progress = |s: &str| {
        eprintln!("swh-deploy app build: {s}");
        rec.step(s, app);
    };
    let result = repo.build(app, today_utc(), &opts, &mut progress);
    rec.finish(result.is_ok());
    let out = result.map_err(|e| e.to_string())?;
    ctx.images.insert(app.to_string(), out.version.to_string());
    Ok(format!(
        "built and pushed {}:{}, tagged {}",
        out.image, out.version, out.tag
    ))
}
