//! `swh-deploy versions`: the installed version of packages on every target
//! host (`dpkg-query`), as version -> folded node set, hosts behind the
//! newest version highlighted, environments compared side by side.

use clap::Args;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use swh_deploy_site::{PackageName, Site};
use swh_deploy_upgrade::versions::{group, query, render, PackageVersions};

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
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// When to highlight hosts behind.
    #[arg(long, value_name = "WHEN", default_value = "auto",
          value_parser = ["never", "always", "auto"])]
    color: String,
}

/// Runs `swh-deploy versions`.
pub fn run(args: VersionsArgs) -> ExitCode {
    match versions(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn versions(args: &VersionsArgs) -> Result<ExitCode, String> {
    super::history::warn_pending_if_any(None);
    let site = Site::discover(args.site.as_deref()).map_err(|e| e.to_string())?;
    let mut nodes = args.nodes.clone();
    nodes.extend(args.targets.iter().cloned());
    let envs: Vec<Option<String>> = if args.envs.is_empty() {
        vec![None]
    } else {
        args.envs.iter().cloned().map(Some).collect()
    };
    let mut explicit: Vec<PackageName> = Vec::new();
    for p in &args.packages {
        explicit.push(
            p.parse()
                .map_err(|e: swh_deploy_site::NameError| format!("--packages {p:?}: {e}"))?,
        );
    }
    // (environment, hosts, packages) per section.
    let mut sections: Vec<(Option<String>, Vec<String>, Vec<PackageName>)> = Vec::new();
    for env in envs {
        let sel = swh_deploy_upgrade::select(&site, env.as_deref(), &nodes, &args.services)
            .map_err(|e| e.to_string())?;
        let packages = if explicit.is_empty() {
            let mut v: Vec<PackageName> = Vec::new();
            for s in &sel.services {
                for p in &s.service.packages {
                    if !v.contains(p) {
                        v.push(p.clone());
                    }
                }
            }
            v
        } else {
            explicit.clone()
        };
        if packages.is_empty() {
            return Err(
                "no package to show: give --packages or --service (or targets running services)"
                    .into(),
            );
        }
        sections.push((env, sel.targets, packages));
    }
    swh_deploy_upgrade::ssh::check(&site)?;
    let transport = swh_deploy_upgrade::ssh::transport(&site).map_err(|e| e.to_string())?;
    let mut all_hosts: Vec<String> = Vec::new();
    let mut all_packages: Vec<PackageName> = Vec::new();
    for (_, hosts, packages) in &sections {
        for h in hosts {
            if !all_hosts.contains(h) {
                all_hosts.push(h.clone());
            }
        }
        for p in packages {
            if !all_packages.contains(p) {
                all_packages.push(p.clone());
            }
        }
    }
    let answers = query(
        &transport,
        site.ssh.fanout.max(1),
        &all_hosts,
        &all_packages,
    )?;
    let mut reports: Vec<PackageVersions> = Vec::new();
    for (env, hosts, packages) in &sections {
        reports.extend(group(env.as_deref(), hosts, packages, &answers));
    }
    let clean = reports
        .iter()
        .all(|r| r.behind.is_empty() && r.unreachable.is_empty());
    if args.json {
        let unreachable: BTreeMap<&String, &String> = answers
            .iter()
            .filter_map(|(h, a)| a.as_ref().err().map(|e| (h, e)))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "packages": reports,
                "errors": unreachable,
            }))
            .unwrap_or_default()
        );
    } else {
        let color = match args.color.as_str() {
            "always" => true,
            "never" => false,
            _ => std::io::stdout().is_terminal(),
        };
        print!("{}", render(&reports, color));
        for (h, a) in &answers {
            if let Err(e) = a {
                eprintln!("swh-deploy: {h}: {e}");
            }
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
