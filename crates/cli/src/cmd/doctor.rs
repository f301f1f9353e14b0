//! `swh-deploy doctor [--site F]`: checks the admin host before a release
//! and prints each problem with its fix. Changes nothing.
//!
//! Checks: the site file, an ssh identity (agent or key files), known_hosts
//! entries for the site's hosts (as `ssh -G` resolves them), the
//! ClusterShell configuration directory, the kube contexts of the site's
//! environments, registry credentials, uv, the swh-apps / swh-charts git
//! remotes, the journal (writable) and its pending compensations.

use crate::error::CmdResult;
use crate::settings::{self, Env, Settings};
use clap::Args;
use std::path::PathBuf;
use swh_deploy_doctor::{examine, HostSettings};
use swh_deploy_site::Site;

/// Checks the admin host before a release.
#[derive(Debug, Args)]
#[command(after_help = "\
Each check prints `ok` or `FAIL` with what was found and, for a problem, the
command that fixes it. Checks that do not apply (no [registry], no [apps]...)
are skipped. Nothing is changed.

Exit status: 0 no problem, 1 some problem, 2 usage error.
--json prints {\"schema\": 1, \"checks\": [...], \"problems\": N} (docs/doctor.md).")]
pub struct DoctorArgs {
    /// The site file.
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// The journal (default as for every command: $SWH_DEPLOY_JOURNAL, else
    /// the user's state directory).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Print JSON (schema 1).
    #[arg(long)]
    json: bool,
}

/// Runs `swh-deploy doctor`.
pub fn run(args: DoctorArgs) -> CmdResult {
    let env = Env::process();
    let flags = settings::Args {
        site: args.site.clone(),
        ..settings::Args::default()
    };
    let site = Site::discover(Settings::site_path(&flags, &env).as_deref());
    let flags = settings::Args {
        journal: args.journal.clone(),
        ..flags
    };
    let settings = Settings::resolve(&flags, &env, site.as_ref().ok());
    let host = HostSettings {
        journal: settings.journal.clone(),
        uv: settings.uv,
        apps_dir: env.path(settings::APPS_DIR),
        charts_dir: env.path(settings::CHARTS_DIR),
        home: env.path(settings::HOME),
    };
    let diagnosis = examine(site, &host);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&diagnosis).unwrap_or_default()
        );
    } else {
        print!("{}", diagnosis.render());
    }
    Ok(diagnosis.exit())
}
