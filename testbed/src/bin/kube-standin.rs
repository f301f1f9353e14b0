//! `kube-standin`: a **STAND-IN** for a Kubernetes API server and an Argo CD
//! API server (see `swh_deploy_testbed::kube`), in the foreground until
//! SIGINT or SIGTERM. Not Kubernetes: it serves the JSON shapes of nodes,
//! deployments and Argo CD applications that swh-deploy and kubectl (`get`,
//! `-l`, `--watch`, `label`, `patch`, `rollout status`, `get
//! applications.argoproj.io`) use, and simulates
//! Argo CD's automated sync of branches of a bare swh-charts repository;
//! toolbox pods whose WebSocket exec runs simulated database scripts.

use anyhow::{bail, Result};
use clap::Parser;
use std::path::PathBuf;
use swh_deploy_testbed::kube::{Faults, KubeStandin, StandinOptions};

/// STAND-IN Kubernetes + Argo CD API server on 127.0.0.1 (NOT a real
/// Kubernetes: no containers, no scheduler). Serves nodes, deployments, toolbox pods and Argo CD
/// applications; each application follows a branch of CHARTS_REPO (a bare
/// git repository) with automated sync and a simulated rolling update.
#[derive(Parser)]
#[command(name = "kube-standin", version)]
struct Args {
    /// The bare swh-charts repository the applications track.
    charts_repo: PathBuf,
    /// Write a kubeconfig here (contexts archive-staging-rke2 and
    /// archive-production-rke2, mode 0600).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Write the Argo CD token to this file (mode 0600).
    #[arg(long)]
    argocd_token_file: Option<PathBuf>,
    /// Image version whose rollout fails (ProgressDeadlineExceeded);
    /// repeatable.
    #[arg(long, value_name = "VERSION")]
    degrade_version: Vec<String>,
    /// Revision (full commit id) whose rollout fails; repeatable.
    #[arg(long, value_name = "SHA")]
    degrade_revision: Vec<String>,
    /// Image version whose rollout stays half-way (Progressing) for as long
    /// as the stand-in runs; repeatable.
    #[arg(long, value_name = "VERSION")]
    hold_version: Vec<String>,
    /// Service whose database needs a migration (check-SVC-db-version.sh
    /// exits 2 until migrate-SVC-db-version.sh ran); repeatable.
    #[arg(long, value_name = "SVC")]
    pending_migration: Vec<String>,
    /// Service whose migrate-SVC-db-version.sh fails; repeatable.
    #[arg(long, value_name = "SVC")]
    failing_migration: Vec<String>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("kube-standin: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if !args.charts_repo.join("HEAD").exists() {
        bail!("{}: not a bare git repository", args.charts_repo.display());
    }
    let mut opts = StandinOptions::swh(&args.charts_repo);
    opts.faults = Faults {
        degraded_revisions: args.degrade_revision,
        degraded_versions: args.degrade_version,
        held_versions: args.hold_version,
        pending_migrations: args.pending_migration,
        failing_migrations: args.failing_migration,
        unsynced_applications: Vec::new(),
    };
    let standin = KubeStandin::start(opts)?;
    if let Some(p) = &args.kubeconfig {
        standin.write_kubeconfig(p, &["archive-staging-rke2", "archive-production-rke2"])?;
    }
    if let Some(p) = &args.argocd_token_file {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(p)?
            .write_all(standin.argocd_token().as_bytes())?;
    }
    println!("ready (STAND-IN, not a real Kubernetes)");
    println!("  url  {}", standin.url());
    swh_deploy_testbed::kube::wait_for_signal();
    eprintln!("kube-standin: stopping");
    drop(standin);
    Ok(())
}
