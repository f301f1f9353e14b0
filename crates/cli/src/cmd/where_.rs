//! `swh-deploy where MODULE [VERSION]`: where a module runs, at which
//! version, on both deployment paths.
//!
//! - static: the module's Debian package (`python3-swh.storage`) on the
//!   hosts of the site's groups, per environment, as version -> folded node
//!   set (the same query as `swh-deploy versions`);
//! - elastic: per chart branch, the swh-apps apps requiring the module that
//!   the branch deploys, their image version, and the module version that
//!   image holds (the app's `requirements-frozen.txt` at its git tag
//!   `<app>-<image version>`); and, unless `--no-cluster`, the images the
//!   cluster's Deployments run (environments with a kube context and a
//!   namespace), with a warning when one differs from the chart.
//!
//! With VERSION, every place running an older version (or none where a
//! service needs the package) is *behind* and the exit status is 1.

use crate::error::{CliError, CmdResult};
use crate::settings::{self, Env, Settings};
use clap::Args;
use std::path::PathBuf;
use swh_deploy_inventory::{elastic_sources, locate, InventoryError, Query};
use swh_deploy_release::{Module, ReleaseVersion};
use swh_deploy_site::{PackageName, Site};

/// Where a module runs, at which version.
#[derive(Debug, Args)]
#[command(after_help = "\
Static path: the Debian package python3-<module> on the hosts of the site's
groups, per environment (hosts without the package are listed only when a
service of the site lists the package). Elastic path (when the site file has
[apps] and [charts], or SWH_DEPLOY_APPS_DIR / SWH_DEPLOY_CHARTS_DIR are set):
per chart branch, the apps requiring the module, their image version and the
module version frozen in that image (requirements-frozen.txt at the git tag
<app>-<image version> of swh-apps). Unless --no-cluster, for each chart
branch deployed by a site environment with kube_context and namespace, the
images its Deployments run are read from the cluster and shown under the app;
one that differs from the chart's image version is a warning on stderr (Argo
CD not synced, a rollout stuck); with VERSION, a running image holding an
older module version counts as behind. An unreachable cluster is a line in
the output and a warning, and changes neither the rest nor the exit status.

Exit status: 0 found (and, with VERSION, nowhere behind), 1 some place is
behind VERSION or a host could not be asked, or bad input; 2 usage error.
--json prints {\"schema\": 1, ...} (see docs/where.md).")]
pub struct WhereArgs {
    /// The module: `swh.storage`, `swh-storage` or `swh_storage`.
    #[arg(value_name = "MODULE")]
    module: String,
    /// The release expected everywhere (`1.2.0` or `v1.2.0`).
    #[arg(value_name = "VERSION")]
    version: Option<String>,
    /// The site file.
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// Only these environments (static) / chart branches (elastic); repeatable.
    #[arg(long = "env", value_name = "ENV")]
    envs: Vec<String>,
    /// Only the static path.
    #[arg(long = "static", conflicts_with = "elastic_only")]
    static_only: bool,
    /// Only the elastic path.
    #[arg(long = "elastic")]
    elastic_only: bool,
    /// Do not read the running images from the clusters (kube contexts).
    #[arg(long = "no-cluster")]
    no_cluster: bool,
    /// Print JSON (schema 1, see docs/where.md).
    #[arg(long)]
    json: bool,
}

/// Runs `swh-deploy where`.
pub fn run(args: WhereArgs) -> CmdResult {
    where_(&args).map_err(|e| e.in_command("where"))
}

fn inventory_error(e: InventoryError) -> CliError {
    CliError::new(e.exit(), e.to_string())
}

fn where_(args: &WhereArgs) -> CmdResult {
    let module =
        Module::parse(&args.module).map_err(|e| CliError::failed(format!("MODULE: {e}")))?;
    let want = match &args.version {
        Some(v) => {
            Some(ReleaseVersion::parse(v).map_err(|e| CliError::failed(format!("VERSION: {e}")))?)
        }
        None => None,
    };
    let env = Env::process();
    let site_file = Settings::site_path(
        &settings::Args {
            site: args.site.clone(),
            ..settings::Args::default()
        },
        &env,
    );
    let site = Site::discover(site_file.as_deref()).map_err(|e| CliError::failed(e.to_string()))?;
    let package: PackageName =
        module
            .debian_package()
            .parse()
            .map_err(|e: swh_deploy_site::NameError| {
                CliError::failed(format!("MODULE {}: {e}", args.module))
            })?;
    let query = Query {
        module,
        package,
        want,
        envs: args.envs.clone(),
        static_path: !args.elastic_only,
        elastic_path: !args.static_only,
        cluster: !args.no_cluster,
    };
    let sources = elastic_sources(
        &site,
        env.path(settings::APPS_DIR).as_deref(),
        env.path(settings::CHARTS_DIR).as_deref(),
    );
    let report = locate(&site, &query, sources.as_ref()).map_err(inventory_error)?;
    for w in &report.warnings {
        eprintln!("swh-deploy where: {w}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::failed(e.to_string()))?
        );
    } else {
        print!("{}", report.render());
    }
    Ok(report.exit())
}
