//! `testbed-elastic`: the elastic path's real components for the demo, in
//! the foreground until SIGINT or SIGTERM.
//!
//! Starts, under DIR: a PyPI-style index (`PackageIndex`), an OCI registry
//! (Debian's docker-registry on 127.0.0.1) and bare git remotes for a module,
//! swh-apps and swh-charts (`GitRemotes`); clones swh-apps and swh-charts as a
//! sysadmin's checkouts; writes `DIR/site.toml` (the `[apps]`, `[charts]` and
//! `[registry]` sections pointing at them) and `DIR/env.sh` (the environment
//! `swh-deploy app`/`chart` need here: site file, journal, buildah storage in
//! DIR, uv and its cache, the index URL as `SWH_DEPLOY_INDEX_URL`). Also
//! starts the Kubernetes/Argo CD **STAND-IN** (`swh_deploy_testbed::kube`,
//! not a real Kubernetes) following the `staging` and `production` branches
//! of the swh-charts remote, and writes its kubeconfig (`DIR/kubeconfig`,
//! `KUBECONFIG` in env.sh), the `[environments.*]` and `[argocd]` sections of
//! site.toml and the Argo CD token (`ARGOCD_AUTH_TOKEN` in env.sh, mode
//! 0600). Pushes to the registry what the swh-apps apps build FROM
//! (`AppBaseImages`: the test bed's Debian Python image, cached per machine,
//! uv, and the `swh-base` app's image built with buildah), so that `app
//! build` builds real images. Prints `ready` when everything answers, then
//! waits; on a signal it stops every process it started (the guards' `Drop`)
//! and exits 0.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Command;
use swh_deploy_testbed::components::{AppBaseImages, GitRemotes, PackageIndex, Registry};
use swh_deploy_testbed::kube::{KubeStandin, StandinOptions};

/// The elastic path's components (index, registry, git remotes) for the
/// demo, until SIGINT/SIGTERM.
#[derive(Parser)]
#[command(name = "testbed-elastic", version)]
struct Args {
    /// Directory that holds everything (created; must be empty or absent).
    dir: PathBuf,
    /// Releases to publish on the index at start, as DIST==VERSION (as
    /// the module's CI would after a release tag), e.g. swh.loader.git==1.2.0.
    #[arg(long, value_name = "DIST==VERSION")]
    publish: Vec<String>,
    /// uv binary written into env.sh (default: <repo>/.venv/bin/uv, else uv).
    #[arg(long)]
    uv: Option<PathBuf>,
    /// Service whose database needs a migration in the stand-in's toolbox
    /// pods (check-SVC-db-version.sh exits 2 until migrate-SVC-db-version.sh
    /// ran); repeatable.
    #[arg(long, value_name = "SVC")]
    pending_migration: Vec<String>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("testbed-elastic: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let releases = args
        .publish
        .iter()
        .map(|p| match p.split_once("==") {
            Some((d, v)) if !d.is_empty() && !v.is_empty() => Ok((d.to_string(), v.to_string())),
            _ => bail!("--publish {p:?}: expected DIST==VERSION, e.g. swh.loader.git==1.2.0"),
        })
        .collect::<Result<Vec<_>>>()?;
    let dir = &args.dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;

    let index = PackageIndex::start(&dir.join("index"))?;
    let registry = Registry::start(&dir.join("registry"))?;
    let remotes = GitRemotes::create(&dir.join("remotes"))?;
    for (url, name) in [
        (&remotes.apps.url, "swh-apps"),
        (&remotes.charts.url, "swh-charts"),
    ] {
        git(&dir, &["clone", "-q", url, name])?;
        git(&dir.join(name), &["config", "user.name", "swh-deploy demo"])?;
        git(
            &dir.join(name),
            &["config", "user.email", "sysadmin@example.invalid"],
        )?;
    }
    // The demo builds swh-loader-git's image into the local registry: the
    // charts point that app's image there (the other apps stay on SWH's
    // registry, not checked), so promotions check its tags for real.
    let charts = dir.join("swh-charts");
    git(&charts, &["checkout", "-q", "production"])?;
    let file = charts.join("values-swh-application-versions.yaml");
    let text = std::fs::read_to_string(&file)?;
    let edited: String = text
        .split_inclusive('\n')
        .map(|l| {
            if l.starts_with("swh_loader_git_image:") {
                format!(
                    "swh_loader_git_image: {}/swh/infra/swh-apps/loader_git\n",
                    registry.host()
                )
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&file, edited)?;
    git(
        &charts,
        &[
            "commit",
            "-q",
            "-am",
            "test bed: swh-loader-git's image on the local registry",
        ],
    )?;
    git(&charts, &["push", "-q", "origin", "production"])?;
    // The other branches on top of it, as after a promotion.
    for branch in ["staging", "swh-next-version"] {
        git(&charts, &["checkout", "-q", branch])?;
        git(&charts, &["rebase", "-q", "production"])?;
        git(&charts, &["push", "-q", "origin", branch])?;
    }
    for (dist, version) in &releases {
        index.publish(
            dist,
            version,
            &["swh.core>=1.0.0", "swh.model>=1.0.0", "swh.storage>=1.0.0"],
        )?;
    }
    let uv = args.uv.unwrap_or_else(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/uv");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("uv")
        }
    });
    let mut opts = StandinOptions::swh(&remotes.charts.path);
    opts.faults.pending_migrations = args.pending_migration.clone();
    let kube = KubeStandin::start(opts)?;
    kube.write_kubeconfig(
        &dir.join("kubeconfig"),
        &["archive-staging-rke2", "archive-production-rke2"],
    )?;
    write_config(&dir, &registry, &index, &kube, &uv)?;
    let containers = swh_deploy_testbed::components::write_containers_config(&dir)?;
    let uv_binary = if uv.components().count() > 1 {
        uv.clone()
    } else {
        which(&uv)?
    };
    let images = AppBaseImages::push(
        &registry,
        &index.url(),
        &dir.join("swh-apps"),
        &uv_binary,
        &containers,
        &dir.join("scratch"),
    )?;
    println!("ready");
    println!("  index     {}", index.url());
    println!("  registry  {}", registry.host());
    println!("  remotes   {}", remotes.dir.display());
    println!(
        "  kube      {} (STAND-IN, not a real Kubernetes)",
        kube.https_url()
    );
    println!("  images    {}", images.summary());
    println!("  env       . {}", dir.join("env.sh").display());
    wait_for_signal();
    eprintln!("testbed-elastic: stopping");
    drop(kube);
    drop(registry);
    drop(index);
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .status()
        .context("running git")?;
    if !st.success() {
        bail!("git {} in {}: {st}", args.join(" "), dir.display());
    }
    Ok(())
}

/// Writes site.toml, env.sh and the buildah/containers configuration.
fn write_config(
    dir: &Path,
    registry: &Registry,
    index: &PackageIndex,
    kube: &KubeStandin,
    uv: &Path,
) -> Result<()> {
    let d = dir.display();
    std::fs::write(
        dir.join("site.toml"),
        format!(
            "# Written by testbed-elastic: the elastic path's checkouts and registry.\n\
             [site]\nname = \"elastic-demo\"\n\n\
             [apps]\ncheckout = \"{d}/swh-apps\"\n\n\
             [charts]\ncheckout = \"{d}/swh-charts\"\n\n\
             [registry]\nhost = \"{}\"\nprefix = \"swh/infra/swh-apps\"\ninsecure = true\n\n\
             # Kubernetes and Argo CD: the test bed's STAND-IN (not a real cluster).\n\
             [environments.staging]\nkube_context = \"archive-staging-rke2\"\nchart_branch = \"staging\"\n\
             argocd_application = \"archive-staging-rke2-swh\"\nnamespace = \"swh\"\n\n\
             [environments.production]\nkube_context = \"archive-production-rke2\"\nchart_branch = \"production\"\n\
             argocd_application = \"archive-production-rke2-swh-cassandra\"\nnamespace = \"swh-cassandra\"\n\n\
             [argocd]\nurl = \"{}\"\ntoken_env = \"ARGOCD_AUTH_TOKEN\"\n",
            registry.host(),
            kube.url()
        ),
    )?;
    // env.sh holds the stand-in's Argo CD token: readable by its owner only.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("env.sh"))?
        .write_all(
            format!(
                "# Source me: the environment of the elastic demo (testbed-elastic).\n\
             export SWH_DEPLOY_SITE={d}/site.toml\n\
             export SWH_DEPLOY_JOURNAL={d}/journal.sqlite\n\
             export SWH_DEPLOY_UV={}\n\
             export SWH_DEPLOY_INDEX_URL={}\n\
             export UV_CACHE_DIR={d}/uv-cache\n\
             export CONTAINERS_STORAGE_CONF={d}/storage.conf\n\
             export CONTAINERS_REGISTRIES_CONF={d}/registries.conf\n\
             export REGISTRY_AUTH_FILE={d}/auth.json\n\
             export BUILDAH_ISOLATION=chroot\n\
             export KUBECONFIG={d}/kubeconfig\n\
             export ARGOCD_AUTH_TOKEN={}\n",
                uv.display(),
                index.url(),
                kube.argocd_token()
            )
            .as_bytes(),
        )?;
    Ok(())
}

/// `name` found in `PATH`.
fn which(name: &Path) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{} not found in PATH", name.display()))
}

/// Blocks until SIGINT or SIGTERM arrives (both blocked, then `sigwait`).
fn wait_for_signal() {
    // SAFETY: plain libc calls on a local, initialised signal set; no
    // handler is installed, the signals are only blocked and then waited for.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
