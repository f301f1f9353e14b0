//! `swh-deploy where MODULE [VERSION]`: where a module runs, at which
//! version, on both deployment paths.
//!
//! - static: the module's Debian package (`python3-swh.storage`) on the
//!   hosts of the site's groups, per environment, as version -> folded node
//!   set (the same query as `swh-deploy versions`);
//! - elastic: per chart branch, the swh-apps apps requiring the module that
//!   the branch deploys, their image version, and the module version that
//!   image holds (the app's `requirements-frozen.txt` at its git tag
//!   `<app>-<image version>`).
//!
//! With VERSION, every place running an older version (or none where a
//! service needs the package) is *behind* and the exit status is 1.

use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use swh_deploy_charts::{values::app_key, ChartsRepo, Env};
use swh_deploy_release::{publish::debian_upstream, Module, ReleaseVersion};
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
<app>-<image version> of swh-apps).

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
    /// Print JSON (schema 1, see docs/where.md).
    #[arg(long)]
    json: bool,
}

/// Hosts on one version of the package.
#[derive(Debug, Serialize)]
struct HostsAt {
    version: Option<String>,
    hosts: String,
    count: usize,
    behind: bool,
}

/// The static path in one environment.
#[derive(Debug, Serialize)]
struct StaticEnv {
    environment: Option<String>,
    versions: Vec<HostsAt>,
    unreachable: String,
}

/// One app in one chart branch.
#[derive(Debug, Serialize)]
struct AppAt {
    app: String,
    image_version: String,
    module_version: Option<String>,
    note: Option<String>,
    behind: bool,
}

/// The elastic path in one chart branch.
#[derive(Debug, Serialize)]
struct ElasticEnv {
    environment: String,
    apps: Vec<AppAt>,
}

/// The whole answer (`--json`, schema 1).
#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    module: String,
    package: String,
    version: Option<String>,
    #[serde(rename = "static")]
    static_: Vec<StaticEnv>,
    elastic: Vec<ElasticEnv>,
    behind: bool,
}

/// Runs `swh-deploy where`.
pub fn run(args: WhereArgs) -> ExitCode {
    match where_(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy where: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn where_(args: &WhereArgs) -> Result<ExitCode, String> {
    let module = Module::parse(&args.module).map_err(|e| format!("MODULE: {e}"))?;
    let want = match &args.version {
        Some(v) => Some(ReleaseVersion::parse(v).map_err(|e| format!("VERSION: {e}"))?),
        None => None,
    };
    let site = Site::discover(args.site.as_deref()).map_err(|e| e.to_string())?;
    let package: PackageName = module
        .debian_package()
        .parse()
        .map_err(|e: swh_deploy_site::NameError| format!("MODULE {}: {e}", args.module))?;
    let mut report = Report {
        schema: 1,
        module: module.dotted().to_string(),
        package: package.to_string(),
        version: want.as_ref().map(|v| v.as_str().to_string()),
        static_: Vec::new(),
        elastic: Vec::new(),
        behind: false,
    };
    let mut unreachable = false;
    if !args.elastic_only {
        unreachable = static_path(&site, &package, want.as_ref(), &args.envs, &mut report)?;
    }
    if !args.static_only {
        elastic_path(&site, &module, want.as_ref(), &args.envs, &mut report)?;
    }
    report.behind = report
        .static_
        .iter()
        .flat_map(|s| &s.versions)
        .any(|v| v.behind)
        || report
            .elastic
            .iter()
            .flat_map(|e| &e.apps)
            .any(|a| a.behind);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.behind || unreachable {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether the Debian version `deb` packages a release older than `want`.
fn deb_behind(deb: Option<&str>, want: Option<&ReleaseVersion>) -> bool {
    let Some(want) = want else { return false };
    match deb {
        None => true,
        Some(d) => match ReleaseVersion::from_debian_upstream(debian_upstream(d)) {
            Some(v) => v < *want,
            None => true,
        },
    }
}

/// Fills the static part; returns whether a host could not be asked.
fn static_path(
    site: &Site,
    package: &PackageName,
    want: Option<&ReleaseVersion>,
    only: &[String],
    report: &mut Report,
) -> Result<bool, String> {
    for e in only {
        if !site.environments.is_empty() && !site.environments.contains_key(e) {
            // An --env may name a chart branch only (elastic).
            if !Env::ALL.iter().any(|b| b.branch() == e) {
                site.environment(e).map_err(|e| e.to_string())?;
            }
        }
    }
    // Environments, each with the site groups in it (groups without an
    // environment count in each).
    let envs: Vec<Option<String>> = if site.environments.is_empty() {
        vec![None]
    } else {
        site.environments
            .keys()
            .filter(|e| only.is_empty() || only.contains(e))
            .cloned()
            .map(Some)
            .collect()
    };
    // Hosts whose services list the package: they must have it.
    let mut sections: Vec<(Option<String>, Vec<String>, Vec<String>)> = Vec::new();
    for env in &envs {
        let groups: Vec<String> = site
            .groups
            .values()
            .filter(|g| match (env, &g.environment) {
                (Some(e), Some(ge)) => e == ge,
                _ => true,
            })
            .map(|g| format!("@{}", g.name))
            .collect();
        if groups.is_empty() {
            continue;
        }
        let all = swh_deploy_upgrade::select(site, env.as_deref(), &groups, &[])
            .map_err(|e| e.to_string())?
            .targets;
        let needing: Vec<String> = site
            .services
            .values()
            .filter(|s| s.packages.contains(package))
            .map(|s| s.name.clone())
            .collect();
        let needed = if needing.is_empty() {
            Vec::new()
        } else {
            swh_deploy_upgrade::select(site, env.as_deref(), &[], &needing)
                .map_err(|e| e.to_string())?
                .targets
        };
        sections.push((env.clone(), all, needed));
    }
    let mut all_hosts: Vec<String> = Vec::new();
    for (_, hosts, _) in &sections {
        for h in hosts {
            if !all_hosts.contains(h) {
                all_hosts.push(h.clone());
            }
        }
    }
    if all_hosts.is_empty() {
        return Ok(false);
    }
    swh_deploy_upgrade::ssh::check(site)?;
    let transport = swh_deploy_upgrade::ssh::transport(site).map_err(|e| e.to_string())?;
    let answers = swh_deploy_upgrade::versions::query(
        &transport,
        site.ssh.fanout.max(1),
        &all_hosts,
        std::slice::from_ref(package),
    )?;
    let mut any_unreachable = false;
    for (env, hosts, needed) in sections {
        // A host counts when it has the package or a service needs it there.
        let shown: Vec<String> = hosts
            .into_iter()
            .filter(|h| match answers.get(h) {
                Some(Ok(m)) => {
                    m.get(package.as_str()).cloned().flatten().is_some() || needed.contains(h)
                }
                _ => true,
            })
            .collect();
        let groups = swh_deploy_upgrade::versions::group(
            env.as_deref(),
            &shown,
            std::slice::from_ref(package),
            &answers,
        );
        for g in groups {
            any_unreachable |= !g.unreachable.is_empty();
            report.static_.push(StaticEnv {
                environment: g.environment,
                versions: g
                    .versions
                    .into_iter()
                    .map(|v| HostsAt {
                        behind: deb_behind(v.version.as_deref(), want),
                        version: v.version,
                        hosts: v.hosts,
                        count: v.count,
                    })
                    .collect(),
                unreachable: g.unreachable,
            });
        }
        for (h, a) in &answers {
            if let Err(e) = a {
                eprintln!("swh-deploy where: {h}: {e}");
            }
        }
    }
    Ok(any_unreachable)
}

/// Whether the elastic path is configured (site file or environment).
fn elastic_configured(site: &Site) -> bool {
    (site.apps.is_some() || std::env::var_os("SWH_DEPLOY_APPS_DIR").is_some())
        && (site.charts.is_some() || std::env::var_os("SWH_DEPLOY_CHARTS_DIR").is_some())
}

/// Fills the elastic part.
fn elastic_path(
    site: &Site,
    module: &Module,
    want: Option<&ReleaseVersion>,
    only: &[String],
    report: &mut Report,
) -> Result<(), String> {
    if !elastic_configured(site) {
        return Ok(());
    }
    let apps_dir = super::app::apps_dir(&None, Some(site));
    let apps = swh_deploy_apps::AppsRepo::open(&apps_dir).map_err(|e| e.to_string())?;
    let charts_dir = super::chart::charts_dir(&None, Some(site));
    let mut charts = ChartsRepo::open(&charts_dir).map_err(|e| e.to_string())?;
    if let Some(c) = &site.charts {
        charts = charts
            .with_remote(&c.remote)
            .with_values_file(&c.values_file);
    }
    let key = swh_deploy_apps::normalize_name(module.dotted());
    // Apps whose requirements name the module (at the checkout's HEAD).
    let mut requiring = Vec::new();
    for app in apps.list().map_err(|e| e.to_string())? {
        if app.kind != swh_deploy_apps::AppKind::Python {
            continue;
        }
        let dir = apps.dir().join(&app.rel_dir);
        let mut text = std::fs::read_to_string(dir.join("requirements.txt")).unwrap_or_default();
        text.push('\n');
        text.push_str(
            &std::fs::read_to_string(dir.join("requirements-frozen.txt")).unwrap_or_default(),
        );
        if mentions(&text, &key) {
            requiring.push(app);
        }
    }
    let branches: Vec<String> = Env::ALL
        .iter()
        .map(|e| e.branch().to_string())
        .filter(|b| only.is_empty() || only.contains(b))
        .collect();
    if branches.is_empty() {
        return Ok(());
    }
    let overview = charts.show(&branches).map_err(|e| e.to_string())?;
    for (i, branch) in overview.envs.iter().enumerate() {
        let mut out = ElasticEnv {
            environment: branch.clone(),
            apps: Vec::new(),
        };
        for app in &requiring {
            let Some(Some(image_version)) =
                overview.apps.get(&app_key(&app.name)).map(|v| v[i].clone())
            else {
                continue;
            };
            let tag = format!("{}-{}", app.name, image_version);
            let (module_version, note) = match frozen_at(apps.dir(), &tag, &app.rel_dir) {
                Ok(text) => match swh_deploy_apps::parse_pins(&text).get(&key) {
                    Some(v) => (Some(v.clone()), None),
                    None => (
                        None,
                        Some(format!(
                            "not pinned in {}/requirements-frozen.txt at {tag}",
                            app.rel_dir
                        )),
                    ),
                },
                Err(e) => (None, Some(e)),
            };
            let behind = match (want, &module_version) {
                (None, _) => false,
                (Some(w), Some(v)) => ReleaseVersion::parse(v).map(|v| v < *w).unwrap_or(true),
                (Some(_), None) => true,
            };
            out.apps.push(AppAt {
                app: app.name.clone(),
                image_version,
                module_version,
                note,
                behind,
            });
        }
        report.elastic.push(out);
    }
    Ok(())
}

/// Whether requirement lines name the project `key` (normalised).
fn mentions(text: &str, key: &str) -> bool {
    text.lines().any(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        let end = l
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .unwrap_or(l.len());
        !l.is_empty() && swh_deploy_apps::normalize_name(&l[..end]) == key
    })
}

/// The app's frozen requirements at git tag `tag` of the swh-apps checkout.
fn frozen_at(dir: &std::path::Path, tag: &str, rel_dir: &str) -> Result<String, String> {
    let spec = format!("refs/tags/{tag}:{rel_dir}/requirements-frozen.txt");
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["show", &spec])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| format!("cannot run git in {}: {e}", dir.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "no {rel_dir}/requirements-frozen.txt at tag {tag} in {} (fetch the tags?)",
            dir.display()
        ))
    }
}

fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let want = r.version.as_deref();
    let _ = writeln!(s, "{} (Debian package {}):", r.module, r.package);
    if r.static_.is_empty() {
        let _ = writeln!(s, "  static: no host");
    }
    for e in &r.static_ {
        let _ = writeln!(
            s,
            "  static {}:",
            e.environment.as_deref().unwrap_or("(all)")
        );
        if e.versions.is_empty() && e.unreachable.is_empty() {
            let _ = writeln!(s, "    not installed");
        }
        for v in &e.versions {
            let _ = writeln!(
                s,
                "    {:<24} {} ({}){}",
                v.version.as_deref().unwrap_or("not installed"),
                v.hosts,
                v.count,
                if v.behind { " behind" } else { "" }
            );
        }
        if !e.unreachable.is_empty() {
            let _ = writeln!(s, "    {:<24} {}", "unreachable", e.unreachable);
        }
    }
    for e in &r.elastic {
        let _ = writeln!(s, "  elastic {}:", e.environment);
        if e.apps.is_empty() {
            let _ = writeln!(s, "    no app deployed requires it");
        }
        for a in &e.apps {
            let _ = writeln!(
                s,
                "    {:<24} image {:<14} {} {}{}{}",
                a.app,
                a.image_version,
                r.module,
                a.module_version.as_deref().unwrap_or("?"),
                a.note
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                if a.behind { " behind" } else { "" }
            );
        }
    }
    if let Some(w) = want {
        let _ = writeln!(
            s,
            "{}",
            if r.behind {
                format!("behind {w}: see the places marked behind")
            } else {
                format!("{w} or newer everywhere")
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lines_are_matched_by_normalised_name() {
        assert!(mentions("swh.storage>=1.0\n", "swh-storage"));
        assert!(mentions("swh-storage==1.2.0 # via x\n", "swh-storage"));
        assert!(!mentions("swh.storage.extra==1\n", "swh-storage"));
        assert!(!mentions("# swh.storage\n", "swh-storage"));
    }

    #[test]
    fn debian_versions_behind_a_release() {
        let w = ReleaseVersion::parse("1.1").unwrap();
        assert!(deb_behind(Some("1.0-1~swh1"), Some(&w)));
        assert!(!deb_behind(Some("1.1-1~swh1"), Some(&w)));
        assert!(!deb_behind(Some("1:1.2.0-1~swh1"), Some(&w)));
        assert!(deb_behind(None, Some(&w)));
        assert!(!deb_behind(Some("1.0-1"), None));
    }
}
