//! `swh-deploy app`: the swh-apps steps of the runbook's "Deployment with
//! Kubernetes" (frozen requirements, dependent apps, image versions, image
//! builds and pushes).

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use swh_deploy_apps::registry::Registry;
use swh_deploy_apps::version::today_utc;
use swh_deploy_apps::{
    check_python_version, AppsRepo, BuildOptions, Builder, FreezeOptions, Pin, PinChange,
};
use swh_deploy_journal::Recorder;
use swh_deploy_site::Site;

/// The site file, if one is given (`--site`) or found (`SWH_DEPLOY_SITE`,
/// `./swh-deploy.toml`, `/etc/swh-deploy/site.toml`). A site file that is
/// found but invalid is an error; no site file at all is not (the elastic
/// commands then need their paths from flags or the environment).
pub(crate) fn load_site(explicit: Option<&std::path::Path>) -> Result<Option<Site>, String> {
    if let Some(p) = explicit {
        return Site::load(p).map(Some).map_err(|e| e.to_string());
    }
    match swh_deploy_site::find_site_file(None) {
        Ok(path) => Site::load(&path).map(Some).map_err(|e| e.to_string()),
        Err(_) => Ok(None),
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
    /// Applies the Python to freeze for: --python-version, else
    /// $SWH_DEPLOY_PYTHON_VERSION, else the site file's `[apps]
    /// python_version`, else the checkout's own (see
    /// `AppsRepo::python_target`); and --python.
    fn apply_python(&self, repo: AppsRepo, site: Option<&Site>) -> Result<AppsRepo, String> {
        let version = self
            .python_version
            .clone()
            .or_else(|| {
                std::env::var("SWH_DEPLOY_PYTHON_VERSION")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .or_else(|| {
                site.and_then(|s| s.apps.as_ref())
                    .and_then(|a| a.python_version.clone())
            });
        if version.is_none() && self.python.is_none() {
            return Ok(repo);
        }
        let mut target = repo.python_target();
        if let Some(v) = version {
            check_python_version(&v).map_err(|e| e.to_string())?;
            target.version = v;
        }
        target.interpreter = self.python.clone();
        Ok(repo.with_python(target))
    }

    fn options(&self) -> FreezeOptions {
        let mut index_args = Vec::new();
        if let Some(u) = &self.index_url {
            index_args.extend(["--index-url".to_string(), u.clone()]);
        }
        for u in &self.extra_index_url {
            index_args.extend(["--extra-index-url".to_string(), u.clone()]);
        }
        FreezeOptions {
            uv: self
                .uv
                .clone()
                .or_else(|| std::env::var_os("SWH_DEPLOY_UV").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("uv")),
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
    List,
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
    },
    /// The next free image version YYYYMMDD.N of APP (UTC date).
    NextVersion {
        /// The app (swh-apps directory).
        app: String,
        #[command(flatten)]
        registry: RegistryOpts,
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

pub(crate) fn apps_dir(arg: &Option<PathBuf>, site: Option<&Site>) -> PathBuf {
    arg.clone()
        .or_else(|| std::env::var_os("SWH_DEPLOY_APPS_DIR").map(PathBuf::from))
        .or_else(|| {
            site.and_then(|s| s.apps.as_ref())
                .map(|a| a.checkout.clone())
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

fn registry(opts: &RegistryOpts, site: Option<&Site>) -> Result<Registry, String> {
    registry_from(opts.registry.clone(), site)
}

/// The registry: `explicit` (`--registry`), else `$SWH_DEPLOY_REGISTRY`,
/// else the site file's `[registry]`. Used by `app` and `ship`.
pub(crate) fn registry_from(
    explicit: Option<String>,
    site: Option<&Site>,
) -> Result<Registry, String> {
    let s = explicit
        .or_else(|| std::env::var("SWH_DEPLOY_REGISTRY").ok())
        .or_else(|| {
            site.and_then(|s| s.registry.as_ref()).map(|r| {
                format!(
                    "{}{}/{}",
                    if r.insecure { "http://" } else { "" },
                    r.host,
                    r.prefix
                )
            })
        })
        .ok_or("no registry: pass --registry, set SWH_DEPLOY_REGISTRY or add [registry] to the site file")?;
    Registry::parse(&s).map_err(|e| e.to_string())
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

/// Runs `swh-deploy app ...`.
pub fn run(args: AppArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy app: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: AppArgs) -> Result<ExitCode, String> {
    let site = load_site(args.site.as_deref())?;
    let site = site.as_ref();
    let mut repo = AppsRepo::open(&apps_dir(&args.apps_dir, site)).map_err(|e| e.to_string())?;
    if let Some(a) = site.and_then(|s| s.apps.as_ref()) {
        repo = repo.with_remote(&a.remote);
    }
    match args.command {
        AppCommand::List => {
            for a in repo.list().map_err(|e| e.to_string())? {
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
        } => {
            if let Some(image) = image {
                let deps = repo.image_dependents(&image).map_err(|e| e.to_string())?;
                if deps.is_empty() {
                    eprintln!("swh-deploy app: no app builds FROM {image}");
                }
                for d in deps {
                    println!("{}\t{}\tFROM {}", d.app, d.image, d.from.join(","));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let module = module.unwrap_or_default();
            let version = version.unwrap_or_default();
            let found = repo
                .dependents(&module, &version)
                .map_err(|e| e.to_string())?;
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
        AppCommand::NextVersion { app, registry: r } => {
            let reg = registry(&r, site)?;
            let v = repo
                .next_version(&app, today_utc(), Some(&reg), r.page_size)
                .map_err(|e| e.to_string())?;
            println!("{v}");
        }
        AppCommand::Freeze { app, uv, dry_run } => {
            let mut rec = if dry_run {
                None
            } else {
                let mut r = Recorder::start("app freeze", serde_json::json!({ "app": app }))
                    .map_err(|e| e.to_string())?;
                r.step(&format!("freeze apps/{app}/requirements-frozen.txt"), &app);
                Some(r)
            };
            let repo = uv.apply_python(repo, site)?;
            let result = repo.freeze(&app, &uv.options(), !dry_run);
            if let Some(r) = rec.take() {
                r.finish(result.is_ok());
            }
            let out = result.map_err(|e| e.to_string())?;
            if !out.changed {
                println!("apps/{app}/requirements-frozen.txt is up to date");
            } else {
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
        }
        AppCommand::Build {
            app,
            push,
            builder,
            registry: r,
            uv,
            dry_run,
        } => {
            let repo = uv.apply_python(repo, site)?;
            let opts = BuildOptions {
                builder: match builder {
                    BuilderArg::Buildah => Builder::Buildah,
                    BuilderArg::Docker => Builder::Docker,
                    BuilderArg::Podman => Builder::Podman,
                },
                registry: registry(&r, site)?,
                push,
                dry_run,
                freeze: uv.options(),
                page_size: r.page_size,
            };
            let mut rec = if dry_run {
                None
            } else {
                Some(Recorder::start(
                    "app build",
                    serde_json::json!({
                        "app": app,
                        "push": push,
                        "builder": opts.builder.program(),
                        "registry": r.registry.clone().or_else(|| std::env::var("SWH_DEPLOY_REGISTRY").ok()),
                    }),
                ).map_err(|e| e.to_string())?)
            };
            let mut progress = |s: &str| {
                eprintln!("swh-deploy app build: {s}");
                if let Some(r) = rec.as_mut() {
                    r.step(s, &app);
                }
            };
            let result = repo.build(&app, today_utc(), &opts, &mut progress);
            if let Some(r) = rec.take() {
                r.finish(result.is_ok());
            }
            let out = result.map_err(|e| e.to_string())?;
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
    }
    Ok(ExitCode::SUCCESS)
}
