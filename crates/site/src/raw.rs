//! The site file as written (with spans), and its validation into
//! [`crate::Site`].

use crate::{
    AppsOptions, ArgoCdOptions, ChartsOptions, ClusterShellOptions, Environment, GroupMembers,
    HealthCheck, HostGroup, Location, PackageName, Probe, RegistryOptions, ReleaseOptions, Service,
    ServiceKind, Site, SiteError, SshOptions, UnitName,
};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    site: Option<RawSiteSection>,
    ssh: Option<RawSsh>,
    clustershell: Option<RawClusterShell>,
    #[serde(default)]
    environments: BTreeMap<String, Spanned<RawEnvironment>>,
    #[serde(default)]
    groups: BTreeMap<Spanned<String>, Spanned<RawGroup>>,
    #[serde(default)]
    services: BTreeMap<Spanned<String>, Spanned<RawService>>,
    apps: Option<RawApps>,
    charts: Option<RawCharts>,
    registry: Option<RawRegistry>,
    argocd: Option<RawArgoCd>,
    release: Option<RawRelease>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiteSection {
    name: Option<String>,
    default_environment: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    config: Option<PathBuf>,
    user: Option<Spanned<String>>,
    connect_timeout: Option<Seconds>,
    fanout: Option<Spanned<i64>>,
    reuse: Option<bool>,
    mux: Option<bool>,
    #[serde(default)]
    options: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClusterShell {
    config_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    description: Option<String>,
    kube_context: Option<String>,
    chart_branch: Option<String>,
    argocd_application: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    environment: Option<Spanned<String>>,
    nodes: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    kind: Kind,
    units: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    groups: Spanned<Vec<Spanned<String>>>,
    health: Option<Spanned<RawHealth>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Worker,
    Rpc,
    JournalClient,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    check: Spanned<String>,
    port: Option<Spanned<i64>>,
    path: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    timeout: Option<Spanned<Seconds>>,
    deadline: Option<Seconds>,
    interval: Option<Seconds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApps {
    checkout: PathBuf,
    remote: Option<String>,
    python_version: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCharts {
    checkout: PathBuf,
    remote: Option<String>,
    values_file: Option<String>,
    merge_requests: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    host: String,
    prefix: String,
    #[serde(default)]
    insecure: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    index_url: Option<Spanned<String>>,
    apt_url: Option<Spanned<String>>,
    apt_suite: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgoCd {
    url: String,
    token_env: Option<String>,
}

/// A duration written as a number of seconds (`30`) or a string with a unit
/// (`"500ms"`, `"30s"`, `"15m"`, `"1h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seconds(Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration: a number of seconds or a string like \"30s\", \"500ms\", \"15m\", \"1h\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(|s| Seconds(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a duration must not be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_duration(v).map(Seconds).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Parses `500ms`, `30s`, `15m`, `1h`, `1h30m` or a bare number of seconds
/// (the durations of the site file, also used by command-line flags): the
/// one grammar of [`swh_deploy_util::duration::parse`], its error as text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    swh_deploy_util::duration::parse(text).map_err(|e| e.to_string())
}

/// The validation context: turns spans into locations.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> SiteError {
        SiteError::Invalid {
            location: Location::from_offset(self.path, self.text, span.start),
            message: message.into(),
        }
    }

    fn location(&self, span: std::ops::Range<usize>) -> Location {
        Location::from_offset(self.path, self.text, span.start)
    }

    /// Makes a path from the site file absolute: `~/` is the user's home,
    /// relative paths are relative to the site file's directory.
    fn resolve(&self, p: PathBuf) -> PathBuf {
        if let Ok(rest) = p.strip_prefix("~") {
            if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                return PathBuf::from(home).join(rest);
            }
        }
        if p.is_absolute() {
            p
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

pub(crate) fn parse(text: &str, path: &Path) -> Result<Site, SiteError> {
    let ctx = Ctx { text, path };
    let raw: RawSite = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let mut message = e.message().trim().replace('\n', ": ");
        if message == "duplicate key" {
            let key = text.get(span.clone()).unwrap_or_default().trim();
            message = format!("duplicate key `{key}`: it is already defined above");
        }
        ctx.at(span, message)
    })?;

    let mut environments = BTreeMap::new();
    for (name, env) in raw.environments {
        let span = env.span();
        check_name(&ctx, &name, span.clone(), "environment")?;
        let env = env.into_inner();
        environments.insert(
            name.clone(),
            Environment {
                name,
                description: env.description,
                kube_context: env.kube_context,
                chart_branch: env.chart_branch,
                argocd_application: env.argocd_application,
                namespace: env.namespace,
            },
        );
    }
    let check_env = |env: &Spanned<String>| -> Result<String, SiteError> {
        if environments.contains_key(env.get_ref()) {
            Ok(env.get_ref().clone())
        } else {
            Err(ctx.at(
                env.span(),
                format!(
                    "unknown environment `{}`, expected one of the [environments] tables ({})",
                    env.get_ref(),
                    crate::known(environments.keys())
                ),
            ))
        }
    };

    let (name, default_environment) = match raw.site {
        Some(s) => (
            s.name,
            s.default_environment.as_ref().map(check_env).transpose()?,
        ),
        None => (None, None),
    };

    let mut ssh = SshOptions::default();
    if let Some(r) = raw.ssh {
        ssh.config = r.config.map(|p| ctx.resolve(p));
        if let Some(user) = r.user {
            let ok = !user.get_ref().is_empty()
                && user
                    .get_ref()
                    .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && user
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
            if !ok {
                return Err(ctx.at(
                    user.span(),
                    format!(
                        "invalid user `{}`: expected a login name (a-z, 0-9, `_-.`, not starting with a digit or `-`)",
                        user.get_ref()
                    ),
                ));
            }
            ssh.user = Some(user.into_inner());
        }
        if let Some(t) = r.connect_timeout {
            ssh.connect_timeout = t.0;
        }
        if let Some(f) = r.fanout {
            if *f.get_ref() < 1 {
                return Err(ctx.at(f.span(), "fanout must be at least 1"));
            }
            ssh.fanout = *f.get_ref() as usize;
        }
        if let Some(reuse) = r.reuse {
            ssh.reuse = reuse;
        }
        if let Some(mux) = r.mux {
            ssh.mux = mux;
        }
        for o in r.options {
            let Some(opt) = crate::sshopt::split_option(o.get_ref()) else {
                return Err(ctx.at(
                    o.span(),
                    format!(
                        "invalid ssh option `{}`: expected `Key=Value` (or `Key Value`) as for ssh -o",
                        o.get_ref()
                    ),
                ));
            };
            if let Some(why) = crate::sshopt::weakens_host_authentication(opt.key, opt.value) {
                return Err(ctx.at(o.span(), why));
            }
            ssh.options.push(o.into_inner());
        }
    }

    let clustershell = ClusterShellOptions {
        config_dir: raw
            .clustershell
            .and_then(|c| c.config_dir)
            .map(|p| ctx.resolve(p)),
    };

    let mut groups = BTreeMap::new();
    for (name, group) in raw.groups {
        let span = group.span();
        check_name(&ctx, name.get_ref(), name.span(), "group")?;
        let g = group.into_inner();
        let environment = g.environment.as_ref().map(check_env).transpose()?;
        let members = match (g.nodes, g.source) {
            (Some(nodes), None) => {
                if let Some(group) = g.group {
                    return Err(ctx.at(
                        group.span(),
                        "`group` is only allowed with `source` (a ClusterShell group source)",
                    ));
                }
                let text = nodes.get_ref().trim();
                if text.is_empty() {
                    return Err(ctx.at(nodes.span(), "`nodes` is empty: expected a node set"));
                }
                if let Some(c) = text
                    .chars()
                    .find(|c| c.is_whitespace() || c.is_control() || "'\"`$;|&<>".contains(*c))
                {
                    return Err(ctx.at(
                        nodes.span(),
                        format!("invalid node set `{text}`: character {c:?} is not allowed"),
                    ));
                }
                if let Err(e) = swh_deploy_nodeset::NodeSet::parse(text) {
                    // Point at the faulty part: +1 for the opening quote.
                    let offset = nodes.span().start
                        + 1
                        + e.position.unwrap_or(0)
                        + (nodes.get_ref().len() - nodes.get_ref().trim_start().len());
                    return Err(ctx.at(offset..offset, format!("invalid node set `{text}`: {e}")));
                }
                if let Err(bad) = crate::hosts::check_node_set_hosts(text) {
                    let offset = nodes.span().start
                        + 1
                        + bad.offset
                        + (nodes.get_ref().len() - nodes.get_ref().trim_start().len());
                    return Err(ctx.at(
                        offset..offset,
                        format!(
                            "invalid node set `{text}`: `{}` is not a host name: {}",
                            bad.name, bad.reason
                        ),
                    ));
                }
                GroupMembers::Nodes(text.to_owned())
            }
            (None, Some(source)) => {
                check_name(&ctx, source.get_ref(), source.span(), "group source")?;
                let group_name = match g.group {
                    Some(gr) => {
                        check_name(&ctx, gr.get_ref(), gr.span(), "group")?;
                        gr.into_inner()
                    }
                    None => name.get_ref().clone(),
                };
                GroupMembers::Source {
                    source: source.into_inner(),
                    group: group_name,
                }
            }
            (Some(_), Some(source)) => {
                return Err(ctx.at(
                    source.span(),
                    "a group has either `nodes` (a node set) or `source` (a ClusterShell group source), not both",
                ))
            }
            (None, None) => {
                return Err(ctx.at(
                    span,
                    format!(
                        "group `{}` needs `nodes` (a node set) or `source` (a ClusterShell group source)",
                        name.get_ref()
                    ),
                ))
            }
        };
        groups.insert(
            name.get_ref().clone(),
            HostGroup {
                name: name.get_ref().clone(),
                environment,
                members,
                defined_at: ctx.location(name.span()),
            },
        );
    }

    let mut services = BTreeMap::new();
    for (name, service) in raw.services {
        check_name(&ctx, name.get_ref(), name.span(), "service")?;
        let s = service.into_inner();
        let kind = match s.kind {
            Kind::Worker => ServiceKind::Worker,
            Kind::Rpc => ServiceKind::Rpc,
            Kind::JournalClient => ServiceKind::JournalClient,
        };
        if s.units.get_ref().is_empty() {
            return Err(ctx.at(
                s.units.span(),
                "`units` is empty: expected at least one systemd unit",
            ));
        }
        let mut units: Vec<UnitName> = Vec::new();
        for u in s.units.get_ref() {
            for expanded in expand_braces(u.get_ref()).map_err(|m| ctx.at(u.span(), m))? {
                let unit: UnitName = expanded
                    .parse()
                    .map_err(|e: crate::NameError| ctx.at(u.span(), e.to_string()))?;
                if unit.is_template() {
                    return Err(ctx.at(
                        u.span(),
                        format!(
                            "unit `{unit}` is a bare template: give its instances, e.g. `{}@{{a,b}}`",
                            unit.template().unwrap_or_default()
                        ),
                    ));
                }
                if units.iter().any(|x| x.full_name() == unit.full_name()) {
                    return Err(ctx.at(u.span(), format!("duplicate unit `{unit}`")));
                }
                units.push(unit);
            }
        }
        let mut packages: Vec<PackageName> = Vec::new();
        for p in s.packages {
            let package: PackageName = p
                .get_ref()
                .parse()
                .map_err(|e: crate::NameError| ctx.at(p.span(), e.to_string()))?;
            if packages.contains(&package) {
                return Err(ctx.at(p.span(), format!("duplicate package `{package}`")));
            }
            packages.push(package);
        }
        if s.groups.get_ref().is_empty() {
            return Err(ctx.at(
                s.groups.span(),
                "`groups` is empty: expected the groups whose hosts run the service",
            ));
        }
        let mut service_groups: Vec<String> = Vec::new();
        for g in s.groups.get_ref() {
            let gname = g.get_ref().strip_prefix('@').unwrap_or(g.get_ref());
            if !groups.contains_key(gname) {
                return Err(ctx.at(
                    g.span(),
                    format!(
                        "unknown group `{gname}`, expected one of the [groups] tables ({})",
                        crate::known(groups.keys())
                    ),
                ));
            }
            if service_groups.iter().any(|x| x == gname) {
                return Err(ctx.at(g.span(), format!("duplicate group `{gname}`")));
            }
            service_groups.push(gname.to_owned());
        }
        let health = match s.health {
            None => HealthCheck {
                probe: Probe::Systemd,
                deadline: DEFAULT_DEADLINE,
                interval: DEFAULT_INTERVAL,
            },
            Some(h) => health(&ctx, h)?,
        };
        services.insert(
            name.get_ref().clone(),
            Service {
                name: name.get_ref().clone(),
                kind,
                units,
                packages,
                groups: service_groups,
                health,
                defined_at: ctx.location(name.span()),
            },
        );
    }

    let apps = match raw.apps {
        None => None,
        Some(a) => {
            let python_version = match a.python_version {
                None => None,
                Some(v) => {
                    let text = v.get_ref();
                    let parts: Vec<&str> = text.split('.').collect();
                    let ok = (2..=3).contains(&parts.len())
                        && parts[0] == "3"
                        && parts
                            .iter()
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                    if !ok {
                        return Err(ctx.at(
                            v.span(),
                            format!("`{text}` is not a Python version: expected 3.N or 3.N.M (e.g. 3.11)"),
                        ));
                    }
                    Some(text.clone())
                }
            };
            Some(AppsOptions {
                checkout: ctx.resolve(a.checkout),
                remote: a.remote.unwrap_or_else(|| "origin".into()),
                python_version,
            })
        }
    };

    let release = match raw.release {
        None => None,
        Some(r) => {
            let url = |u: Option<Spanned<String>>| -> Result<Option<String>, SiteError> {
                match u {
                    None => Ok(None),
                    Some(u) => {
                        let v = u.get_ref();
                        if !(v.starts_with("http://") || v.starts_with("https://")) {
                            return Err(ctx.at(
                                u.span(),
                                format!("`{v}` is not a URL: expected http://... or https://..."),
                            ));
                        }
                        Ok(Some(v.clone()))
                    }
                }
            };
            Some(ReleaseOptions {
                index_url: url(r.index_url)?,
                apt_url: url(r.apt_url)?,
                apt_suite: r.apt_suite,
            })
        }
    };

    Ok(Site {
        path: path.to_owned(),
        name,
        default_environment,
        ssh,
        clustershell,
        environments,
        groups,
        services,
        apps,
        charts: raw.charts.map(|c| ChartsOptions {
            checkout: ctx.resolve(c.checkout),
            remote: c.remote.unwrap_or_else(|| "origin".into()),
            values_file: c
                .values_file
                .unwrap_or_else(|| "values-swh-application-versions.yaml".into()),
            merge_requests: c.merge_requests,
        }),
        registry: raw.registry.map(|r| RegistryOptions {
            host: r.host,
            prefix: r.prefix,
            insecure: r.insecure,
        }),
        release,
        argocd: raw.argocd.map(|a| ArgoCdOptions {
            url: a.url,
            token_env: a.token_env.unwrap_or_else(|| "ARGOCD_AUTH_TOKEN".into()),
        }),
    })
}

/// Default health gate deadline.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Default pause between health probes.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default timeout of one probe.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

fn health(ctx: &Ctx, h: Spanned<RawHealth>) -> Result<HealthCheck, SiteError> {
    let h = h.into_inner();
    let timeout = h
        .timeout
        .as_ref()
        .map_or(DEFAULT_TIMEOUT, |t| t.get_ref().0);
    let forbid = |present: Option<std::ops::Range<usize>>, key: &str, check: &str| match present {
        Some(span) => Err(ctx.at(
            span,
            format!("`{key}` is not allowed for a `{check}` health check"),
        )),
        None => Ok(()),
    };
    let probe = match h.check.get_ref().as_str() {
        "systemd" => {
            forbid(h.port.as_ref().map(|x| x.span()), "port", "systemd")?;
            forbid(h.path.as_ref().map(|x| x.span()), "path", "systemd")?;
            forbid(h.expect.as_ref().map(|x| x.span()), "expect", "systemd")?;
            forbid(h.command.as_ref().map(|x| x.span()), "command", "systemd")?;
            forbid(h.timeout.as_ref().map(|x| x.span()), "timeout", "systemd")?;
            Probe::Systemd
        }
        "http" => {
            forbid(h.command.as_ref().map(|x| x.span()), "command", "http")?;
            let port = h.port.as_ref().ok_or_else(|| {
                ctx.at(
                    h.check.span(),
                    "an `http` health check needs `port` (e.g. 5002 for swh-storage)",
                )
            })?;
            let port_value = u16::try_from(*port.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    ctx.at(
                        port.span(),
                        format!("invalid port {}: expected 1 to 65535", port.get_ref()),
                    )
                })?;
            let path = match h.path {
                Some(p) => {
                    if !p.get_ref().starts_with('/')
                        || p.get_ref()
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(ctx.at(
                            p.span(),
                            format!(
                                "invalid path `{}`: expected an absolute URL path such as `/`",
                                p.get_ref()
                            ),
                        ));
                    }
                    p.into_inner()
                }
                None => "/".to_owned(),
            };
            Probe::Http {
                port: port_value,
                path,
                expect: h.expect.map(Spanned::into_inner),
                timeout,
            }
        }
        "command" => {
            forbid(h.port.as_ref().map(|x| x.span()), "port", "command")?;
            forbid(h.path.as_ref().map(|x| x.span()), "path", "command")?;
            forbid(h.expect.as_ref().map(|x| x.span()), "expect", "command")?;
            let command = h.command.ok_or_else(|| {
                ctx.at(
                    h.check.span(),
                    "a `command` health check needs `command` (a shell command, healthy when it exits 0)",
                )
            })?;
            if command.get_ref().trim().is_empty() || command.get_ref().contains('\0') {
                return Err(ctx.at(command.span(), "`command` is empty"));
            }
            Probe::Command {
                command: command.into_inner(),
                timeout,
            }
        }
        other => {
            return Err(ctx.at(
                h.check.span(),
                format!("unknown health check `{other}`, expected `systemd`, `http` or `command`"),
            ))
        }
    };
    Ok(HealthCheck {
        probe,
        deadline: h.deadline.map_or(DEFAULT_DEADLINE, |d| d.0),
        interval: h.interval.map_or(DEFAULT_INTERVAL, |d| d.0),
    })
}

/// Group, service, environment and source names: letters, digits, `_-.`.
fn check_name(
    ctx: &Ctx,
    name: &str,
    span: std::ops::Range<usize>,
    what: &str,
) -> Result<(), SiteError> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ctx.at(
            span,
            format!(
                "invalid {what} name `{name}`: expected ASCII letters, digits, `_`, `-` or `.`, starting with a letter or digit"
            ),
        ))
    }
}

/// Expands one brace group: `swh-worker@{loader_git,lister}` ->
/// `swh-worker@loader_git`, `swh-worker@lister`.
pub(crate) fn expand_braces(text: &str) -> Result<Vec<String>, String> {
    let Some(open) = text.find('{') else {
        if text.contains('}') {
            return Err(format!("unbalanced `}}` in `{text}`"));
        }
        return Ok(vec![text.to_owned()]);
    };
    let close = text[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or_else(|| format!("unbalanced `{{` in `{text}`"))?;
    let (prefix, inner, suffix) = (&text[..open], &text[open + 1..close], &text[close + 1..]);
    if inner.contains('{') || suffix.contains('{') || suffix.contains('}') {
        return Err(format!(
            "only one `{{a,b}}` group is allowed in a unit name: `{text}`"
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for alt in inner.split(',') {
        let alt = alt.trim();
        if alt.is_empty() {
            return Err(format!("empty instance in `{text}`"));
        }
        if seen.insert(alt) {
            out.push(format!("{prefix}{alt}{suffix}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("7d").unwrap_err().contains("`7d`"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn braces() {
        assert_eq!(
            expand_braces("swh-worker@{loader_git,lister}").unwrap(),
            ["swh-worker@loader_git", "swh-worker@lister"]
        );
        assert_eq!(
            expand_braces("swh-worker@{loader_git, lister}.service").unwrap(),
            ["swh-worker@loader_git.service", "swh-worker@lister.service"]
        );
        assert_eq!(expand_braces("plain").unwrap(), ["plain"]);
        assert!(expand_braces("a@{b").unwrap_err().contains("unbalanced"));
        assert!(expand_braces("a@b}").unwrap_err().contains("unbalanced"));
        assert!(expand_braces("a@{b,}")
            .unwrap_err()
            .contains("empty instance"));
        assert!(expand_braces("{a,b}@{c,d}")
            .unwrap_err()
            .contains("only one"));
    }

    #[test]
    fn location_counts_lines_and_chars() {
        let text = "a = 1\nbé = 2\n";
        let l = Location::from_offset(Path::new("f.toml"), text, text.find('=').unwrap());
        assert_eq!((l.line, l.column), (1, 3));
        let second = text.rfind('=').unwrap();
        let l = Location::from_offset(Path::new("f.toml"), text, second);
        assert_eq!((l.line, l.column), (2, 4));
        assert_eq!(l.to_string(), "f.toml:2:4");
    }
}
