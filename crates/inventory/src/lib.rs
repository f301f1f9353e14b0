//! Where a module runs, at which version, on both deployment paths of the
//! runbook (`swh-deploy where MODULE [VERSION]`).
//!
//! # Model
//! A [`Query`] names a module (`swh.storage`), its Debian package
//! (`python3-swh.storage`) and, optionally, the release expected everywhere.
//! [`locate`] answers it with a [`Report`]:
//!
//! - the static path: per environment of the site file, the package's
//!   installed version on the hosts of the site's groups, as version ->
//!   folded node set (the query `swh-deploy versions` makes, over ssh). A
//!   host without the package is shown only when a service of the site lists
//!   the package there (it should have it);
//! - the elastic path, when the swh-apps and swh-charts checkouts are known
//!   ([`ElasticSources`]): per chart branch (`swh-next-version`, `staging`,
//!   `production`), the apps requiring the module that the branch deploys,
//!   their image version, and the module version that image holds: the
//!   app's `requirements-frozen.txt` at its git tag `<app>-<image version>`.
//!
//! - optionally ([`Query::cluster`]), per chart branch deployed by a site
//!   environment with a `kube_context` and a `namespace`: the images the
//!   cluster's Deployments actually run for each app (a Deployment belongs
//!   to the app whose image name, [`swh_deploy_apps::image_name`], its
//!   container image has), a warning when one differs from the chart's
//!   image version (Argo CD not synced, a rollout stuck), and the module
//!   version frozen in the running image. An unreachable cluster is noted
//!   (a warning and the `cluster.error` field), never an error.
//!
//! With an expected release, a place running an older version, or none
//! where it is needed, is *behind*; [`Report::exit`] is then
//! [`Exit::Failed`], as it is when a host could not be asked. The report
//! serialises as the `--json` document (schema 1, docs/where.md) and renders
//! as text with [`Report::render`].

use serde::Serialize;
use std::path::{Path, PathBuf};
use swh_deploy_charts::{values::app_key, ChartsRepo, Env};
use swh_deploy_release::{publish::debian_upstream, Module, ReleaseVersion};
use swh_deploy_site::{PackageName, Site};
use swh_deploy_util::git::{Git, GitError};
use swh_deploy_util::Exit;

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The site file refuses a name (e.g. an unknown `--env`).
    #[error(transparent)]
    Site(#[from] swh_deploy_site::SiteError),
    /// The site's groups or services cannot be resolved to hosts.
    #[error(transparent)]
    Select(#[from] swh_deploy_upgrade::SelectError),
    /// ssh cannot be set up from the site file.
    #[error("{0}")]
    Ssh(String),
    /// The ssh transport cannot be built.
    #[error(transparent)]
    Transport(#[from] swh_deploy_fleet::TransportError),
    /// The installed versions could not be asked at all.
    #[error("{0}")]
    Query(String),
    /// The swh-apps checkout.
    #[error(transparent)]
    Apps(#[from] swh_deploy_apps::Error),
    /// The swh-charts checkout.
    #[error(transparent)]
    Charts(#[from] swh_deploy_charts::Error),
}

impl InventoryError {
    /// The exit code it means: every error is a failure (1).
    pub fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct Query {
    /// The module.
    pub module: Module,
    /// Its Debian package (`python3-swh.storage`).
    pub package: PackageName,
    /// The release expected everywhere, if any.
    pub want: Option<ReleaseVersion>,
    /// Only these environments (static) / chart branches (elastic); empty:
    /// all.
    pub envs: Vec<String>,
    /// Look at the static path.
    pub static_path: bool,
    /// Look at the elastic path (when [`ElasticSources`] are given).
    pub elastic_path: bool,
    /// On the elastic path, also read the images the clusters run (the
    /// environments' kube contexts).
    pub cluster: bool,
}

/// The checkouts the elastic path is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticSources {
    /// The swh-apps checkout.
    pub apps_dir: PathBuf,
    /// The swh-charts checkout.
    pub charts_dir: PathBuf,
}

/// The elastic path's checkouts, when it is configured: both swh-apps
/// (`apps_explicit`, i.e. `$SWH_DEPLOY_APPS_DIR`, or the site's `[apps]`)
/// and swh-charts (`charts_explicit`, i.e. `$SWH_DEPLOY_CHARTS_DIR`, or the
/// site's `[charts]`) must be known; `None` otherwise.
pub fn elastic_sources(
    site: &Site,
    apps_explicit: Option<&Path>,
    charts_explicit: Option<&Path>,
) -> Option<ElasticSources> {
    let apps_known = site.apps.is_some() || apps_explicit.is_some();
    let charts_known = site.charts.is_some() || charts_explicit.is_some();
    if !(apps_known && charts_known) {
        return None;
    }
    Some(ElasticSources {
        apps_dir: swh_deploy_apps::resolve::apps_dir(apps_explicit, Some(site)),
        charts_dir: charts_explicit
            .map(Path::to_path_buf)
            .or_else(|| site.charts.as_ref().map(|c| c.checkout.clone()))
            .unwrap_or_else(|| PathBuf::from(".")),
    })
}

/// Hosts on one version of the package.
#[derive(Debug, Clone, Serialize)]
pub struct HostsAt {
    /// The installed version; `None`: not installed.
    pub version: Option<String>,
    /// The hosts, folded.
    pub hosts: String,
    /// How many.
    pub count: usize,
    /// Older than the expected release (or not installed).
    pub behind: bool,
}

/// The static path in one environment.
#[derive(Debug, Clone, Serialize)]
pub struct StaticEnv {
    /// The environment; `None` when the site has none.
    pub environment: Option<String>,
    /// Versions, newest first, "not installed" last.
    pub versions: Vec<HostsAt>,
    /// Hosts that could not be asked, folded.
    pub unreachable: String,
}

/// One app in one chart branch.
#[derive(Debug, Clone, Serialize)]
pub struct AppAt {
    /// The app (swh-apps directory name).
    pub app: String,
    /// The image version the branch deploys.
    pub image_version: String,
    /// The module version frozen in that image, if found.
    pub module_version: Option<String>,
    /// Why the module version is unknown.
    pub note: Option<String>,
    /// Older than the expected release (or unknown), in the chart or in a
    /// running image.
    pub behind: bool,
    /// The Deployments of the app in the cluster and their images; `None`
    /// when the cluster was not asked (or could not be).
    pub running: Option<Vec<Running>>,
    /// Some running image differs from `image_version`.
    pub drift: bool,
}

/// One Deployment of an app, as the cluster runs it.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    /// The Deployment's name.
    pub deployment: String,
    /// Its container image, as the Deployment has it.
    pub image: String,
    /// The image's tag (or digest).
    pub image_version: String,
    /// The module version frozen in that image, if found.
    pub module_version: Option<String>,
}

/// Where the running images of a chart branch were read.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterAt {
    /// The site environment deploying the branch.
    pub environment: String,
    /// Its kube context.
    pub context: String,
    /// Its namespace.
    pub namespace: String,
    /// Why the Deployments could not be read (unreachable...); `None`: read.
    pub error: Option<String>,
}

/// The elastic path in one chart branch.
#[derive(Debug, Clone, Serialize)]
pub struct ElasticEnv {
    /// The chart branch.
    pub environment: String,
    /// The apps requiring the module that the branch deploys.
    pub apps: Vec<AppAt>,
    /// The cluster asked for the running images; `None`: not asked (not
    /// wanted, or no site environment with a kube context and namespace
    /// deploys the branch).
    pub cluster: Option<ClusterAt>,
}

/// The whole answer (`--json`, schema 1).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The JSON schema version (1).
    pub schema: u32,
    /// The module, dotted.
    pub module: String,
    /// Its Debian package.
    pub package: String,
    /// The expected release, if any.
    pub version: Option<String>,
    /// The static path, per environment.
    #[serde(rename = "static")]
    pub static_: Vec<StaticEnv>,
    /// The elastic path, per chart branch.
    pub elastic: Vec<ElasticEnv>,
    /// Some place is behind the expected release.
    pub behind: bool,
    /// Some host could not be asked (not in the JSON: its hosts are in the
    /// `unreachable` fields).
    #[serde(skip)]
    pub unreachable: bool,
    /// Per-host problems met on the way (`HOST: why`), for stderr.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Report {
    /// How the command ends: [`Exit::Failed`] when some place is behind or
    /// a host could not be asked, else [`Exit::Success`].
    pub fn exit(&self) -> Exit {
        if self.behind || self.unreachable {
            Exit::Failed
        } else {
            Exit::Success
        }
    }

    /// The report as text, one section per environment and path.
    pub fn render(&self) -> String {
        render(self)
    }
}

/// Answers `query` on `site`; `elastic` are the elastic path's checkouts
/// ([`elastic_sources`]; `None`: the path is not configured and is skipped).
pub fn locate(
    site: &Site,
    query: &Query,
    elastic: Option<&ElasticSources>,
) -> Result<Report, InventoryError> {
    let mut report = Report {
        schema: 1,
        module: query.module.dotted().to_string(),
        package: query.package.to_string(),
        version: query.want.as_ref().map(|v| v.as_str().to_string()),
        static_: Vec::new(),
        elastic: Vec::new(),
        behind: false,
        unreachable: false,
        warnings: Vec::new(),
    };
    if query.static_path {
        report.unreachable = static_path(site, query, &mut report)?;
    }
    if query.elastic_path {
        if let Some(sources) = elastic {
            elastic_path(site, query, sources, &mut report)?;
        }
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
    Ok(report)
}

/// Whether the Debian version `deb` packages a release older than `want`
/// (a missing or unreadable version is behind).
pub fn deb_behind(deb: Option<&str>, want: Option<&ReleaseVersion>) -> bool {
    let Some(want) = want else { return false };
    match deb {
        None => true,
        Some(d) => match ReleaseVersion::from_debian_upstream(debian_upstream(d)) {
            Some(v) => v < *want,
            None => true,
        },
    }
}

/// Whether the frozen module version `pinned` is older than `want` (an
/// unknown or unreadable version is behind).
pub fn pin_behind(pinned: Option<&str>, want: Option<&ReleaseVersion>) -> bool {
    match (want, pinned) {
        (None, _) => false,
        (Some(w), Some(v)) => ReleaseVersion::parse(v).map(|v| v < *w).unwrap_or(true),
        (Some(_), None) => true,
    }
}

/// Fills the static part; returns whether a host could not be asked.
fn static_path(site: &Site, query: &Query, report: &mut Report) -> Result<bool, InventoryError> {
    let only = &query.envs;
    let package = &query.package;
    for e in only {
        if !site.environments.is_empty() && !site.environments.contains_key(e) {
            // An --env may name a chart branch only (elastic).
            if !Env::ALL.iter().any(|b| b.branch() == e) {
                site.environment(e)?;
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
    // Per environment: its hosts, and those whose services list the
    // package (they must have it).
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
        let all = swh_deploy_upgrade::select(site, env.as_deref(), &groups, &[])?.targets;
        let needing: Vec<String> = site
            .services
            .values()
            .filter(|s| s.packages.contains(package))
            .map(|s| s.name.clone())
            .collect();
        let needed = if needing.is_empty() {
            Vec::new()
        } else {
            swh_deploy_upgrade::select(site, env.as_deref(), &[], &needing)?.targets
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
    swh_deploy_upgrade::ssh::check(site).map_err(InventoryError::Ssh)?;
    let transport = swh_deploy_upgrade::ssh::transport(site)?;
    let answers = swh_deploy_upgrade::versions::query(
        &transport,
        site.ssh.fanout.max(1),
        &all_hosts,
        std::slice::from_ref(package),
    )
    .map_err(InventoryError::Query)?;
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
                        behind: deb_behind(v.version.as_deref(), query.want.as_ref()),
                        version: v.version,
                        hosts: v.hosts,
                        count: v.count,
                    })
                    .collect(),
                unreachable: g.unreachable,
            });
        }
        // As before the move: the hosts' problems once per environment.
        for (h, a) in &answers {
            if let Err(e) = a {
                report.warnings.push(format!("{h}: {e}"));
            }
        }
    }
    Ok(any_unreachable)
}

/// Fills the elastic part.
fn elastic_path(
    site: &Site,
    query: &Query,
    sources: &ElasticSources,
    report: &mut Report,
) -> Result<(), InventoryError> {
    let only = &query.envs;
    let apps = swh_deploy_apps::AppsRepo::open(&sources.apps_dir)?;
    let mut charts = ChartsRepo::open(&sources.charts_dir)?;
    if let Some(c) = &site.charts {
        charts = charts
            .with_remote(&c.remote)
            .with_values_file(&c.values_file);
    }
    let key = swh_deploy_apps::normalize_name(query.module.dotted());
    // Apps whose requirements name the module (at the checkout's HEAD).
    let mut requiring = Vec::new();
    for app in apps.list()? {
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
    let overview = charts.show(&branches)?;
    for (i, branch) in overview.envs.iter().enumerate() {
        let mut out = ElasticEnv {
            environment: branch.clone(),
            apps: Vec::new(),
            cluster: None,
        };
        let deployments = if query.cluster {
            running_deployments(site, branch, &mut out, report)
        } else {
            None
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
            let mut behind = pin_behind(module_version.as_deref(), query.want.as_ref());
            let running = deployments.as_ref().map(|ds| {
                let image = swh_deploy_apps::image_name(&app.name);
                ds.iter()
                    .flat_map(|d| d.images.iter().map(move |i| (d, i)))
                    .filter_map(|(d, i)| {
                        let (name, version) = split_image(i)?;
                        (name == image).then(|| (d.name.clone(), i.clone(), version))
                    })
                    .map(|(deployment, image, version)| {
                        let module_version = if version == image_version {
                            module_version.clone()
                        } else {
                            let tag = format!("{}-{}", app.name, version);
                            frozen_at(apps.dir(), &tag, &app.rel_dir)
                                .ok()
                                .and_then(|t| swh_deploy_apps::parse_pins(&t).get(&key).cloned())
                        };
                        Running {
                            deployment,
                            image,
                            image_version: version,
                            module_version,
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let mut drift = false;
            for r in running.iter().flatten() {
                if r.image_version != image_version {
                    drift = true;
                    behind |= pin_behind(r.module_version.as_deref(), query.want.as_ref());
                    report.warnings.push(format!(
                        "elastic {branch}: deployment {} runs {} {}, the chart says {image_version} (Argo CD not synced, or a rollout stuck?)",
                        r.deployment, app.name, r.image_version
                    ));
                }
            }
            out.apps.push(AppAt {
                behind,
                app: app.name.clone(),
                image_version,
                module_version,
                note,
                running,
                drift,
            });
        }
        report.elastic.push(out);
    }
    Ok(())
}

/// The Deployments of the namespace deploying `branch` (site environment
/// with a kube context and a namespace), noting in `out.cluster` where they
/// were read; `None` when there is no such environment or the cluster
/// cannot be read (noted as a warning and `out.cluster.error`).
fn running_deployments(
    site: &Site,
    branch: &str,
    out: &mut ElasticEnv,
    report: &mut Report,
) -> Option<Vec<swh_deploy_cluster::rollout::Deployment>> {
    let env = swh_deploy_cluster::gate::environment_of_branch(site, branch)?;
    let (Some(context), Some(namespace)) = (&env.kube_context, &env.namespace) else {
        return None;
    };
    let read =
        swh_deploy_cluster::kube::Kube::connect(context).and_then(|k| k.deployments(namespace));
    let mut at = ClusterAt {
        environment: env.name.clone(),
        context: context.clone(),
        namespace: namespace.clone(),
        error: None,
    };
    let found = match read {
        Ok(d) => Some(d),
        Err(e) => {
            report.warnings.push(format!(
                "elastic {branch}: cannot read the running images (environment {}, kube context {context}, namespace {namespace}): {e}",
                env.name
            ));
            at.error = Some(e.to_string());
            None
        }
    };
    out.cluster = Some(at);
    found
}

/// An image reference's name (last path segment) and tag or digest:
/// `registry/swh/infra/swh-apps/storage:20250113.1` -> (`storage`,
/// `20250113.1`); `None` without tag or digest.
pub fn split_image(image: &str) -> Option<(String, String)> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let last = &rest[rest.rfind('/').map_or(0, |i| i + 1)..];
    let (name, tag) = match last.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (last, None),
    };
    let version = digest.or(tag)?;
    (!name.is_empty() && !version.is_empty()).then(|| (name.to_string(), version.to_string()))
}

/// Whether requirement lines name the project `key` (normalised as
/// [`swh_deploy_apps::normalize_name`] does).
pub fn mentions(text: &str, key: &str) -> bool {
    text.lines().any(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        let end = l
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .unwrap_or(l.len());
        !l.is_empty() && swh_deploy_apps::normalize_name(&l[..end]) == key
    })
}

/// The app's frozen requirements at git tag `tag` of the swh-apps checkout
/// `dir`, or why they cannot be read.
fn frozen_at(dir: &Path, tag: &str, rel_dir: &str) -> Result<String, String> {
    let spec = format!("refs/tags/{tag}:{rel_dir}/requirements-frozen.txt");
    match Git::new(dir).run(&["show", &spec]) {
        Ok(text) => Ok(text),
        Err(e @ GitError::Spawn { .. }) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no {rel_dir}/requirements-frozen.txt at tag {tag} in {} (fetch the tags?)",
            dir.display()
        )),
    }
}

/// One line of `where`'s elastic part, for an app or a deployment running
/// its image: `label` (indented and padded), the image version, the
/// module and its version in that image (`?` when unknown), `suffix`.
fn image_line(
    s: &mut String,
    label: &str,
    image_version: &str,
    (module, version): (&str, Option<&str>),
    suffix: &str,
) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "{label} image {image_version:<14} {module} {}{suffix}",
        version.unwrap_or("?")
    );
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
            let note = a
                .note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let behind = if a.behind { " behind" } else { "" };
            image_line(
                &mut s,
                &format!("    {:<24}", a.app),
                &a.image_version,
                (&r.module, a.module_version.as_deref()),
                &format!("{note}{behind}"),
            );
            for run in a.running.iter().flatten() {
                let differs = if run.image_version != a.image_version {
                    " DIFFERS from the chart"
                } else {
                    ""
                };
                image_line(
                    &mut s,
                    &format!("      running {:<16}", run.deployment),
                    &run.image_version,
                    (&r.module, run.module_version.as_deref()),
                    differs,
                );
            }
            if a.running.as_ref().is_some_and(Vec::is_empty) {
                let _ = writeln!(s, "      running: no deployment with its image");
            }
        }
        if let Some(c) = &e.cluster {
            if let Some(err) = &c.error {
                let _ = writeln!(
                    s,
                    "    cluster {} (namespace {}): unreachable, running images unknown: {err}",
                    c.context, c.namespace
                );
            }
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
mod tests;
