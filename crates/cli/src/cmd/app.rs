//! `swh-deploy app`: the swh-apps steps of the runbook's "Deployment with
//! Kubernetes" (frozen requirements, dependent apps, image versions, image
//! builds and pushes).

use crate::error::{CliError, CmdResult, Exit};
use crate::settings::{self, Env, Settings};
use clap::{Args, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use swh_deploy_apps::resolve;
use swh_deploy_apps::version::today_utc;
use swh_deploy_apps::{AppsRepo, BuildOptions, Builder, FreezeOptions, Pin, PinChange};
use swh_deploy_site::Site;
use swh_deploy_util::progress::Progress;

/// The site file, if one is given (`--site`) or found (`SWH_DEPLOY_SITE`,
/// `./swh-deploy.toml`, `/etc/swh-deploy/site.toml`). A site file that is
/// found but invalid is an error; no site file at all is not (the elastic
/// commands then need their paths from flags or the environment).
pub(crate) fn load_site(explicit: Option<&std::path::Path>) -> Result<Option<Site>, SiteFileError> {
    if let Some(p) = explicit {
        return Site::load(p).map(Some).map_err(SiteFileError);
    }
    match swh_deploy_site::find_site_file(None) {
        Ok(path) => Site::load(&path).map(Some).map_err(SiteFileError),
        Err(_) => Ok(None),
    }
}

/// A site file that was found but cannot be loaded ([`load_site`]); a
/// failure (exit 1) with the site crate's message (file:line:column).
#[derive(Debug)]
pub(crate) struct SiteFileError(pub(crate) swh_deploy_site::SiteError);

impl From<SiteFileError> for CliError {
    fn from(e: SiteFileError) -> Self {
        CliError::failed(e.0.to_string())
    }
}

/// The message, for the callers that still build it into their own
/// error text (`CliError::failed`).
impl From<SiteFileError> for String {
    fn from(e: SiteFileError) -> Self {
        e.0.to_string()
    }
}

/// Arguments of `swh-deploy app`.
#[derive(Debug, Args)]
pub struct AppArgs {
    /// The swh-apps checkout (default: $SWH_DEPLOY_APPS_DIR, else the site
    /// file's [apps] checkout, else the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    apps_dir: Option<PathBuf>,
    /// The site file (default: $SWH_DEPLOY_SITE, ./swh-deploy.toml,
    /// /etc/swh-deploy/site.toml, if present).
    #[arg(long, global = true, value_name = "FILE")]
    site: Option<PathBuf>,
    #[command(subcommand)]
    command: AppCommand,
}

/// Options reaching the registry.
#[derive(Debug, Args)]
struct RegistryOpts {
    /// Registry prefix of the images, e.g.
    /// container-registry.softwareheritage.org/swh/infra/swh-apps
    /// (http://HOST:PORT/PATH for a plain-HTTP registry); default
    /// $SWH_DEPLOY_REGISTRY, else the site file's [registry].
    #[arg(long, value_name = "[http://]HOST/PATH")]
    registry: Option<String>,
    /// Tags per page when listing the registry's tags.
    #[arg(long, value_name = "N", hide = true)]
    page_size: Option<usize>,
}

/// Options of `uv pip compile`.
#[derive(Debug, Args)]
struct UvOpts {
    /// The package index (passed to uv as --index-url).
    #[arg(long, value_name = "URL")]
    index_url: Option<String>,
    /// Extra package indexes (passed to uv as --extra-index-url).
    #[arg(long, value_name = "URL")]
    extra_index_url: Vec<String>,
    /// Keep existing pins where possible (default: take the newest
    /// versions, as SWH's tooling does).
    #[arg(long)]
    no_upgrade: bool,
    /// The uv program (default: $SWH_DEPLOY_UV, else `uv` from PATH).
    #[arg(long, value_name = "PATH")]
    uv: Option<PathBuf>,
    /// The Python version to freeze for, passed to uv as --python-version
    /// (default: $SWH_DEPLOY_PYTHON_VERSION, else the site file's [apps]
    /// python_version, else the python:X.Y image apps/swh-base/Dockerfile
    /// builds FROM, else 3.11 as SWH).
    #[arg(long, value_name = "3.N")]
    python_version: Option<String>,
    /// The interpreter uv freezes with (a path or a version request; it
    /// must be of the target version; default: what `uv python find
    /// VERSION` finds).
    #[arg(long, value_name = "PYTHON")]
    python: Option<String>,
}

impl UvOpts {
    /// `uv pip compile`'s options: the uv program resolved in `settings`,
    /// the index flags as they are.
    fn options(&self, settings: &Settings) -> FreezeOptions {
        let mut index_args = Vec::new();
        if let Some(u) = &self.index_url {
            index_args.extend(["--index-url".to_string(), u.clone()]);
        }
        for u in &self.extra_index_url {
            index_args.extend(["--extra-index-url".to_string(), u.clone()]);
        }
        FreezeOptions {
            uv: settings.uv.clone(),
            index_args,
            upgrade: !self.no_upgrade,
        }
    }
}

/// The image builders.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum BuilderArg {
    /// buildah (daemonless)
    Buildah,
    /// docker
    Docker,
    /// podman
    Podman,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// List the apps (apps/*/ and utilities/*/) with their image names and
    /// kinds (python app or image-only).
    List {
        /// Print JSON (schema 1, docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Apps to rebuild: with --module and --version, those whose frozen
    /// requirements pin MODULE at another version or by URL; with --image,
    /// those whose Dockerfile builds FROM IMAGE, transitively, in build
    /// order.
    Dependents {
        /// The module, e.g. swh.graph or swh-graph.
        #[arg(
            long,
            requires = "version",
            conflicts_with = "image",
            required_unless_present = "image"
        )]
        module: Option<String>,
        /// The module's new version, e.g. v6.3.0.
        #[arg(long, requires = "module")]
        version: Option<String>,
        /// An image (e.g. base, rsvndump-base) or the app building it
        /// (e.g. swh-base).
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// Print JSON (schema 1, docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// The next free image version YYYYMMDD.N of APP (UTC date).
    NextVersion {
        /// The app (swh-apps directory).
        app: String,
        #[command(flatten)]
        registry: RegistryOpts,
        /// Print JSON (schema 1, docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Regenerate apps/APP/requirements-frozen.txt with uv pip compile.
    Freeze {
        /// The app (swh-apps directory).
        app: String,
        #[command(flatten)]
        uv: UvOpts,
        /// Print the pin changes; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Freeze, commit, build the image (version and latest); with --push,
    /// push the images, tag <app>-<version> and push commit and tag.
    Build {
        /// The app (swh-apps directory).
        app: String,
        /// Push the images, the commit and the tag.
        #[arg(long)]
        push: bool,
        /// The image builder.
        #[arg(long, value_enum, default_value = "buildah")]
        builder: BuilderArg,
        #[command(flatten)]
        registry: RegistryOpts,
        #[command(flatten)]
        uv: UvOpts,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn print_pin_changes(changes: &[PinChange]) {
    for c in changes {
        match (&c.from, &c.to) {
            (Some(a), Some(b)) => println!("  {}: {a} -> {b}", c.name),
            (None, Some(b)) => println!("  {}: (new) {b}", c.name),
            (Some(a), None) => println!("  {}: {a} (removed)", c.name),
            (None, None) => {}
        }
    }
}

fn apps_error(e: swh_deploy_apps::Error) -> CliError {
    CliError::new(e.exit(), e.to_string())
}

/// Runs `swh-deploy app ...`.
pub fn run(args: AppArgs) -> CmdResult {
    run_inner(args).map_err(|e| e.in_command("app"))
}

fn run_inner(args: AppArgs) -> CmdResult {
    let site = load_site(args.site.as_deref())?;
    let site = site.as_ref();
    let env = Env::process();
    let (registry, uv) = match &args.command {
        AppCommand::NextVersion { registry, .. } => (Some(registry), None),
        AppCommand::Freeze { uv, .. } => (None, Some(uv)),
        AppCommand::Build { registry, uv, .. } => (Some(registry), Some(uv)),
        _ => (None, None),
    };
    let settings = Settings::resolve(
        &settings::Args {
            apps_dir: args.apps_dir.clone(),
            registry: registry.and_then(|r| r.registry.clone()),
            python_version: uv.and_then(|u| u.python_version.clone()),
            uv: uv.and_then(|u| u.uv.clone()),
            ..settings::Args::default()
        },
        &env,
        site,
    );
    let repo = AppsRepo::open(&settings.apps_dir)
        .map_err(apps_error)?
        .with_remote(&settings.apps_remote);
    let with_python = |repo: AppsRepo, uv: &UvOpts| {
        resolve::with_python(repo, settings.python_version.clone(), uv.python.clone())
            .map_err(apps_error)
    };
    let registry = || resolve::registry(settings.registry.as_deref(), None).map_err(apps_error);
    match args.command {
        AppCommand::List { json } => {
            let apps = repo.list().map_err(apps_error)?;
            if json {
                crate::json::print(&serde_json::json!({ "apps": apps }))?;
                return Ok(Exit::Success);
            }
            for a in apps {
                let state = match (a.kind, a.frozen) {
                    (swh_deploy_apps::AppKind::Python, false) => "\t(not frozen)",
                    _ => "",
                };
                println!("{}\t{}\t{}{state}", a.name, a.image, a.kind);
            }
        }
        AppCommand::Dependents {
            module,
            version,
            image,
            json,
        } => {
            if let Some(image) = image {
                let deps = repo.image_dependents(&image).map_err(apps_error)?;
                if json {
                    crate::json::print(&serde_json::json!({
                        "image": image,
                        "dependents": deps,
                    }))?;
                    return Ok(Exit::Success);
                }
                if deps.is_empty() {
                    eprintln!("swh-deploy app: no app builds FROM {image}");
                }
                for d in deps {
                    println!("{}\t{}\tFROM {}", d.app, d.image, d.from.join(","));
                }
                return Ok(Exit::Success);
            }
            let module = module.unwrap_or_default();
            let version = version.unwrap_or_default();
            let found = repo.dependents(&module, &version).map_err(apps_error)?;
            if json {
                crate::json::print(&serde_json::json!({
                    "module": module,
                    "version": version,
                    "dependents": found.dependents,
                    "requiring": found.requiring,
                }))?;
                return Ok(Exit::Success);
            }
            if found.dependents.is_empty() {
                eprintln!(
                    "swh-deploy app: every app requiring {module} ({}) pins {version} already",
                    found.requiring.join(", ")
                );
            }
            for d in found.dependents {
                match d.pin {
                    Pin::Version(v) => println!("{}\t{v}", d.app),
                    Pin::Url(u) => println!("{}\t{u}\t(pinned by URL)", d.app),
                }
            }
        }
        AppCommand::NextVersion {
            app,
            registry: r,
            json,
        } => {
            let reg = registry()?;
            let v = repo
                .next_version(&app, today_utc(), Some(&reg), r.page_size)
                .map_err(apps_error)?;
            if json {
                crate::json::print(&serde_json::json!({ "app": app, "version": v }))?;
            } else {
                println!("{v}");
            }
        }
        AppCommand::Freeze { app, uv, dry_run } => {
            let repo = with_python(repo, &uv)?;
            let opts = uv.options(&settings);
            let out = swh_deploy_apps::journaled::freeze(
                &repo,
                &app,
                &opts,
                dry_run,
                settings.journal.as_deref(),
            )
            .map_err(apps_error)?;
            print_freeze(&app, &out, dry_run);
        }
        AppCommand::Build {
            app,
            push,
            builder,
            registry: r,
            uv,
            dry_run,
        } => {
            let repo = with_python(repo, &uv)?;
            let opts = BuildOptions {
                builder: match builder {
                    BuilderArg::Buildah => Builder::Buildah,
                    BuilderArg::Docker => Builder::Docker,
                    BuilderArg::Podman => Builder::Podman,
                },
                registry: registry()?,
                push,
                dry_run,
                freeze: uv.options(&settings),
                page_size: r.page_size,
            };
            // The registry as the user gave it, for the journal.
            let given = r
                .registry
                .clone()
                .or_else(|| env.string(settings::REGISTRY));
            // Each step on stderr after the time elapsed; a long one (the
            // image's build, its push) keeps saying it runs.
            let progress = Progress::new(std::io::stderr(), std::io::stderr().is_terminal());
            let out = swh_deploy_apps::journaled::build(
                &repo,
                &app,
                &opts,
                given.as_deref(),
                settings.journal.as_deref(),
                &mut |s: &str| progress.step(s),
            );
            drop(progress);
            let out = out.map_err(apps_error)?;
            print_build(&out, dry_run);
        }
    }
    Ok(Exit::Success)
}

fn print_freeze(app: &str, out: &swh_deploy_apps::FreezeOutcome, dry_run: bool) {
    if !out.changed {
        println!("apps/{app}/requirements-frozen.txt is up to date");
        return;
    }
    println!(
        "apps/{app}/requirements-frozen.txt{}: {} pin change(s)",
        if dry_run {
            " (dry run, not written)"
        } else {
            ""
        },
        out.changes.len()
    );
    print_pin_changes(&out.changes);
}

fn print_build(out: &swh_deploy_apps::BuildOutcome, dry_run: bool) {
    if dry_run {
        println!("plan for {}:{} (dry run):", out.image, out.version);
        for (i, s) in out.steps.iter().enumerate() {
            if s.command.is_empty() {
                println!("  {}. {}", i + 1, s.what);
            } else {
                println!(
                    "  {}. {}: {}",
                    i + 1,
                    s.what,
                    super::quote_words(&s.command)
                );
            }
        }
        print_pin_changes(&out.pin_changes);
    } else {
        print_pin_changes(&out.pin_changes);
        println!(
            "built {}:{}{}",
            out.image,
            out.version,
            if out.pushed {
                format!(", pushed with latest; tagged and pushed {}", out.tag)
            } else {
                " (not pushed: no tag, commit left local)".to_string()
            }
        );
    }
}
