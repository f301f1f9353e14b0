//! `swh-deploy rollback RUN`: the static path's rollback. Puts back, on the
//! hosts of upgrade run RUN, the package versions the journal recorded
//! before it (`swh_deploy_upgrade::rollback`), restarting and gating as an
//! upgrade does, in the same batches; journaled as its own run.

use crate::error::{CmdResult, Exit};
use clap::Args;
use std::path::PathBuf;
use swh_deploy_fleet::HostKeyPolicy;
use swh_deploy_journal::Journal;
use swh_deploy_site::Site;
use swh_deploy_upgrade::execute;
use swh_deploy_upgrade::rollback;

/// Put back the package versions an upgrade run replaced.
#[derive(Debug, Args)]
#[command(after_help = "\
The versions are those the run recorded before changing each host (its
versions-before step). Before anything changes, one host per group of hosts
with the same versions runs `apt-get update` and `apt-cache madison`: when the
repository no longer offers a version, the rollback is refused (exit 1) and
nothing is changed. Then, in the run's batches and with its failure budget:
apt-get update; `apt-get --allow-downgrades install PKG=VERSION...`
(non-interactive, confdef/confold); restart of the services' units; health
gate. Journaled as its own run (mode rollback); run it again to finish a
rollback that stopped.

Exit status: as `swh-deploy upgrade` (0, 1, 3, 4, 5, 130).")]
pub struct RollbackArgs {
    /// The upgrade run to roll back (see `swh-deploy history`).
    #[arg(value_name = "RUN")]
    run: i64,
    /// Site file to use instead of the one recorded with the run.
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// The journal (default: $SWH_DEPLOY_JOURNAL, else
    /// $XDG_STATE_HOME/swh-deploy/journal.sqlite).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Print the plan and the versions to put back, and stop (the
    /// repository is not checked).
    #[arg(long)]
    dry_run: bool,
    /// Progress and summary as JSON lines on stdout (with --dry-run: the
    /// plan as JSON).
    #[arg(long)]
    json: bool,
}

/// Runs `swh-deploy rollback`.
pub fn run(args: RollbackArgs) -> CmdResult {
    let journal_path = super::history::journal_path(args.journal.as_deref());
    let mut journal = Journal::open_default(journal_path.as_deref())?;
    let site = rollback::site_of(&journal, args.run, args.site.as_deref())?;
    if args.dry_run {
        let r = rollback::plan_rollback(&journal, &site, args.run, None)?;
        if args.json {
            let mut v = serde_json::to_value(&r.plan).unwrap_or_default();
            v["rollback_of"] = args.run.into();
            println!("{v}");
        } else {
            println!("rollback of run {}: versions to put back", args.run);
            for (host, versions) in &r.versions {
                let v: Vec<String> = versions.iter().map(|(p, v)| format!("{p}={v}")).collect();
                println!("  {host}: {}", v.join(" "));
            }
            if !r.skipped.is_empty() {
                println!("  left alone (no versions recorded): {}", r.skipped);
            }
            print!("{}", r.plan.render());
        }
        return Ok(Exit::Success);
    }
    let argv: Vec<String> = std::env::args().collect();
    let of = args.run;
    let original = execute::stored_request(&journal, of).ok();
    // The services the rollback restarts, for its annotation.
    let services = rollback::plan_rollback(&journal, &site, of, None)
        .map(|r| r.plan.services)
        .unwrap_or_default();
    super::resume::drive(&site, args.json, HostKeyPolicy::Strict, |ctx| {
        let result = rollback::start(&mut journal, &site, of, argv, ctx);
        if let Ok(summary) = &result {
            annotate(&site, original.as_ref(), &services, summary, of);
        }
        result
    })
}

/// The Grafana annotation of a rollback that ran (when configured): tagged
/// with the run's environment (else the site's default, else `static`) and
/// the services it restarts (else the packages rolled back).
fn annotate(
    site: &Site,
    original: Option<&execute::UpgradeRequest>,
    services: &[String],
    summary: &execute::Summary,
    of: i64,
) {
    let env = original
        .and_then(|r| r.env.clone())
        .or_else(|| site.default_environment.clone())
        .unwrap_or_else(|| "static".into());
    let mut services: Vec<String> = services.to_vec();
    if services.is_empty() {
        services = summary.versions.iter().map(|v| v.package.clone()).collect();
    }
    let versions: Vec<String> = summary
        .versions
        .iter()
        .map(|v| {
            format!(
                "{} {} -> {} on {}",
                v.package,
                v.before.as_deref().unwrap_or("(none)"),
                v.after.as_deref().unwrap_or("(none)"),
                v.hosts
            )
        })
        .collect();
    super::annotate::annotate(
        &env,
        &services,
        &format!(
            "rollback of run {of} (run {}: {}): {}",
            summary.run,
            summary.status,
            versions.join(", ")
        ),
    );
}
