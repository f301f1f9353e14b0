//! `swh-deploy versions`: the installed version of packages on every target
//! host (`dpkg-query`), as version -> folded node set, hosts behind the
//! newest version highlighted, environments compared side by side.

use crate::error::{CliError, CmdResult, Exit};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use swh_deploy_site::{PackageName, Site};
use swh_deploy_upgrade::versions::{render, survey, VersionsQuery};

/// Which version of a package runs where.
#[derive(Debug, Args)]
#[command(after_help = "\
Targets as for `swh-deploy upgrade`: node sets / @groups (TARGET, -w) and/or
--service. Packages: --packages, else the packages of the selected services.
With --env given several times (e.g. --env staging --env production), each
environment's hosts of the selected services are listed separately and the
newest versions compared.

Exit status: 0 every host answered and runs the newest version, 1 some host
is behind or unreachable (or bad input), 2 usage error.")]
pub struct VersionsArgs {
    /// Target node sets or `@group`s.
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
    /// Target nodes (node-set syntax); repeatable.
    #[arg(short = 'w', value_name = "NODES")]
    nodes: Vec<String>,
    /// Services whose hosts and packages are shown; repeatable.
    #[arg(long = "service", value_name = "SERVICE")]
    services: Vec<String>,
    /// Packages to show; repeatable or comma-separated.
    #[arg(
        long = "packages",
        visible_alias = "package",
        value_name = "PKG",
        value_delimiter = ','
    )]
    packages: Vec<String>,
    /// Environment(s); give two to compare them.
    #[arg(long = "env", value_name = "ENV")]
    envs: Vec<String>,
    /// The site file.
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// Print JSON (schema 1, docs/json.md).
    #[arg(long)]
    json: bool,
    /// When to highlight hosts behind.
    #[arg(long, value_name = "WHEN", default_value = "auto",
          value_parser = ["never", "always", "auto"])]
    color: String,
}

/// Runs `swh-deploy versions`.
pub fn run(args: VersionsArgs) -> CmdResult {
    super::history::warn_pending_if_any(None);
    let site = Site::discover(args.site.as_deref())?;
    let mut nodes = args.nodes;
    nodes.extend(args.targets);
    let mut packages: Vec<PackageName> = Vec::new();
    for p in &args.packages {
        packages.push(p.parse().map_err(|e: swh_deploy_site::NameError| {
            CliError::failed(format!("--packages {p:?}: {e}"))
        })?);
    }
    let query = VersionsQuery {
        nodes,
        services: args.services,
        packages,
        environments: args.envs,
    };
    let survey = survey(&site, &query)?;
    if args.json {
        crate::json::print(&serde_json::json!({
            "packages": survey.reports,
            "errors": survey.errors(),
        }))?;
    } else {
        let color = match args.color.as_str() {
            "always" => true,
            "never" => false,
            _ => std::io::stdout().is_terminal(),
        };
        print!("{}", render(&survey.reports, color));
        for (h, e) in survey.errors() {
            eprintln!("swh-deploy: {h}: {e}");
        }
    }
    Ok(if survey.clean() {
        Exit::Success
    } else {
        Exit::Failed
    })
}
