//! `swh-deploy site check`: validates a site file and shows what it
//! describes (environments, groups with their hosts, services).

use crate::error::{CmdResult, Exit};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use swh_deploy_site::{GroupMembers, Probe, Site};

/// Site file commands.
#[derive(Debug, Args)]
pub struct SiteArgs {
    #[command(subcommand)]
    command: SiteCommand,
}

#[derive(Debug, Subcommand)]
enum SiteCommand {
    /// Validate the site file (found from --site, SWH_DEPLOY_SITE,
    /// ./swh-deploy.toml, /etc/swh-deploy/site.toml) and summarize it.
    /// Errors name file:line:column; exit 1 when the file is invalid.
    Check {
        /// The site file.
        #[arg(long, value_name = "FILE")]
        site: Option<PathBuf>,
        /// Print only errors.
        #[arg(short, long)]
        quiet: bool,
    },
}

/// Runs `swh-deploy site`.
pub fn run(args: SiteArgs) -> CmdResult {
    match args.command {
        SiteCommand::Check { site, quiet } => check(site, quiet),
    }
}

fn check(path: Option<PathBuf>, quiet: bool) -> CmdResult {
    let site = Site::discover(path.as_deref())?;
    // A group naming something that is not a host name, or too large to
    // plan, makes the site unusable, unlike a source not available here.
    let resolved = site.resolve_groups()?;
    if quiet {
        return Ok(Exit::Success);
    }
    println!(
        "{}: ok: {} environment(s), {} group(s), {} service(s)",
        site.path.display(),
        site.environments.len(),
        site.groups.len(),
        site.services.len()
    );
    for env in site.environments.values() {
        let default = if site.default_environment.as_deref() == Some(env.name.as_str()) {
            " (default)"
        } else {
            ""
        };
        println!("environment {}{default}", env.name);
    }
    for group in site.groups.values() {
        let env = group
            .environment
            .as_deref()
            .map(|e| format!(" [{e}]"))
            .unwrap_or_default();
        let from = match &group.members {
            GroupMembers::Nodes(_) => String::new(),
            GroupMembers::Source { source, group } => format!(" (ClusterShell @{source}:{group})"),
        };
        match &resolved[&group.name] {
            Ok(nodes) if !nodes.is_empty() => println!(
                "group @{}{env}{from}: {} ({} host(s))",
                group.name,
                nodes,
                nodes.len()
            ),
            Ok(_) => println!("group @{}{env}{from}: no hosts resolved here", group.name),
            Err(e) => println!("group @{}{env}{from}: not resolved here: {e}", group.name),
        }
    }
    for s in site.services.values() {
        let units: Vec<&str> = s.units.iter().map(|u| u.as_str()).collect();
        let packages: Vec<&str> = s.packages.iter().map(|p| p.as_str()).collect();
        let health = match &s.health.probe {
            Probe::Systemd => "systemd".to_owned(),
            Probe::Http { port, path, .. } => format!("http :{port}{path}"),
            Probe::Command { .. } => "command".to_owned(),
        };
        println!(
            "service {} ({}): units {}; packages {}; groups @{}; health {}",
            s.name,
            s.kind,
            units.join(" "),
            if packages.is_empty() {
                "none".to_owned()
            } else {
                packages.join(" ")
            },
            s.groups.join(",@"),
            health
        );
    }
    Ok(Exit::Success)
}
