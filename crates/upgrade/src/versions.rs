//! `swh-deploy versions`: which version of a package runs where.
//!
//! The installed version on each host comes from `dpkg-query -W
//! -f='${Package} ${Version}\n' PKG...` (one ssh command per host for all
//! packages). For each package the hosts are grouped by version, newest
//! first (Debian ordering), as folded node sets; hosts on an older version
//! or without the package are *behind*. Several environments can be
//! compared side by side (`--env staging --env production`).

use crate::command::{parse_installed_versions, RemoteCommand};
use crate::execute::ExecError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use swh_deploy_debian::DebianVersion;
use swh_deploy_fleet::{CancelToken, NoObserver, RunOptions, Status, Transport};
use swh_deploy_nodeset::fold;
use swh_deploy_site::{PackageName, Site};

/// Hosts on one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionHosts {
    /// The version (`None`: not installed).
    pub version: Option<String>,
    /// The hosts, folded.
    pub hosts: String,
    /// How many.
    pub count: usize,
}

/// One package in one environment (or over all targets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageVersions {
    /// The package.
    pub package: String,
    /// The environment, if compared by environment.
    pub environment: Option<String>,
    /// Versions, newest first, then "not installed".
    pub versions: Vec<VersionHosts>,
    /// The newest version seen.
    pub newest: Option<String>,
    /// Hosts behind the newest version (older or not installed), folded.
    pub behind: String,
    /// Hosts that could not be asked, folded.
    pub unreachable: String,
}

/// Host -> package -> installed version (`None`: not installed), or why
/// the host could not be asked.
pub type Answers = BTreeMap<String, Result<BTreeMap<String, Option<DebianVersion>>, String>>;

/// Installed versions on `hosts`: host -> package -> version, or the
/// reason the host could not be asked.
pub fn query(
    transport: &dyn Transport,
    fanout: usize,
    hosts: &[String],
    packages: &[PackageName],
) -> Result<Answers, String> {
    let command = RemoteCommand::InstalledVersions {
        packages: packages.to_vec(),
    };
    let report = swh_deploy_fleet::run(
        transport,
        hosts,
        &command.to_shell(),
        &RunOptions {
            fanout,
            command_timeout: Some(Duration::from_secs(60)),
            merge_stderr: false,
            hosts_label: None,
        },
        &mut NoObserver,
        &CancelToken::new(),
    )
    .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for r in report.results {
        let v = match r.status {
            Status::Exited(c) if command.succeeded(c) => Ok(parse_installed_versions(
                &String::from_utf8_lossy(&r.stdout),
            )
            .into_iter()
            .map(|(p, v)| (p.to_string(), v))
            .collect()),
            Status::Exited(c) => Err(format!(
                "dpkg-query exited {c}: {}",
                String::from_utf8_lossy(&r.stderr).trim()
            )),
            _ => Err(String::from_utf8_lossy(&r.stderr).trim().to_owned()),
        };
        out.insert(r.host, v);
    }
    Ok(out)
}

/// Groups the answers of [`query`] for `hosts` by package and version.
pub fn group(
    environment: Option<&str>,
    hosts: &[String],
    packages: &[PackageName],
    answers: &Answers,
) -> Vec<PackageVersions> {
    let mut out = Vec::new();
    for p in packages {
        let mut by: BTreeMap<Option<DebianVersion>, Vec<String>> = BTreeMap::new();
        let mut unreachable = Vec::new();
        for h in hosts {
            match answers.get(h) {
                Some(Ok(m)) => by
                    .entry(m.get(p.as_str()).cloned().flatten())
                    .or_default()
                    .push(h.clone()),
                _ => unreachable.push(h.clone()),
            }
        }
        let newest = by.keys().rev().find_map(|v| v.clone());
        let mut versions: Vec<VersionHosts> = by
            .iter()
            .rev()
            .map(|(v, hs)| VersionHosts {
                version: v.as_ref().map(|v| v.to_string()),
                hosts: fold(hs),
                count: hs.len(),
            })
            .collect();
        // BTreeMap puts None first; reversed it is last, as wanted.
        versions.sort_by_key(|v| v.version.is_none());
        let behind: Vec<String> = by
            .iter()
            .filter(|(v, _)| v.as_ref() != newest.as_ref() || v.is_none())
            .flat_map(|(_, hs)| hs.iter().cloned())
            .collect();
        out.push(PackageVersions {
            package: p.to_string(),
            environment: environment.map(str::to_owned),
            versions,
            newest: newest.map(|v| v.to_string()),
            behind: fold(&behind),
            unreachable: fold(&unreachable),
        });
    }
    out
}

/// Renders reports; `color` highlights hosts behind the newest version.
pub fn render(reports: &[PackageVersions], color: bool) -> String {
    let (hl, reset) = if color {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("", "")
    };
    let mut out = String::new();
    for r in reports {
        match &r.environment {
            Some(e) => {
                let _ = writeln!(out, "{} ({e}):", r.package);
            }
            None => {
                let _ = writeln!(out, "{}:", r.package);
            }
        }
        for v in &r.versions {
            let name = v.version.as_deref().unwrap_or("(not installed)");
            let is_newest = v.version.is_some() && v.version == r.newest;
            if is_newest {
                let _ = writeln!(out, "  {name:<24} {} ({})", v.hosts, v.count);
            } else {
                let _ = writeln!(
                    out,
                    "  {hl}{name:<24} {} ({}) behind{reset}",
                    v.hosts, v.count
                );
            }
        }
        if !r.unreachable.is_empty() {
            let _ = writeln!(
                out,
                "  {hl}{:<24} {}{reset}",
                "(unreachable)", r.unreachable
            );
        }
    }
    // Comparison between environments.
    let mut per_package: BTreeMap<&str, Vec<&PackageVersions>> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.environment.is_some()) {
        per_package.entry(r.package.as_str()).or_default().push(r);
    }
    for (p, rs) in per_package {
        if rs.len() < 2 {
            continue;
        }
        let parse = |v: &Option<String>| v.as_ref().and_then(|s| s.parse::<DebianVersion>().ok());
        let best = rs.iter().filter_map(|r| parse(&r.newest)).max();
        let parts: Vec<String> = rs
            .iter()
            .map(|r| {
                let env = r.environment.as_deref().unwrap_or("");
                let n = r.newest.as_deref().unwrap_or("(none)");
                if parse(&r.newest) < best {
                    format!("{hl}{env} {n} (behind){reset}")
                } else {
                    format!("{env} {n}")
                }
            })
            .collect();
        let _ = writeln!(out, "{p}: {}", parts.join(", "));
    }
    out
}

/// What `swh-deploy versions` asks: targets and services as for an
/// upgrade, packages (else those of the selected services), and the
/// environments to compare (none: one section over all).
#[derive(Debug, Clone, Default)]
pub struct VersionsQuery {
    /// Node sets / `@group`s (`TARGET`, `-w`).
    pub nodes: Vec<String>,
    /// `--service`.
    pub services: Vec<String>,
    /// `--packages` (empty: the packages of the selected services).
    pub packages: Vec<PackageName>,
    /// `--env`, each its own section.
    pub environments: Vec<String>,
}

/// The answer of [`survey`].
#[derive(Debug, Clone)]
pub struct Survey {
    /// One report per (environment, package).
    pub reports: Vec<PackageVersions>,
    /// Every host's answer (or why it could not be asked).
    pub answers: Answers,
}

impl Survey {
    /// True when every host answered and runs the newest version.
    pub fn clean(&self) -> bool {
        self.reports
            .iter()
            .all(|r| r.behind.is_empty() && r.unreachable.is_empty())
    }

    /// The hosts that could not be asked, with why.
    pub fn errors(&self) -> BTreeMap<&String, &String> {
        self.answers
            .iter()
            .filter_map(|(h, a)| a.as_ref().err().map(|e| (h, e)))
            .collect()
    }
}

/// Resolves `q` against `site` (one section per environment), asks every
/// host once for every package over ssh, and groups the answers.
pub fn survey(site: &Site, q: &VersionsQuery) -> Result<Survey, ExecError> {
    let envs: Vec<Option<&str>> = if q.environments.is_empty() {
        vec![None]
    } else {
        q.environments.iter().map(|e| Some(e.as_str())).collect()
    };
    // (environment, hosts, packages) per section.
    let mut sections: Vec<(Option<&str>, Vec<String>, Vec<PackageName>)> = Vec::new();
    for env in envs {
        let sel = crate::select(site, env, &q.nodes, &q.services)
            .map_err(|e| ExecError::Input(e.to_string()))?;
        let packages = if q.packages.is_empty() {
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
            q.packages.clone()
        };
        if packages.is_empty() {
            return Err(ExecError::Input(
                "no package to show: give --packages or --service (or targets running services)"
                    .into(),
            ));
        }
        sections.push((env, sel.targets, packages));
    }
    crate::ssh::check(site).map_err(ExecError::Input)?;
    let transport = crate::ssh::transport(site)?;
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
    )
    .map_err(ExecError::Input)?;
    let mut reports: Vec<PackageVersions> = Vec::new();
    for (env, hosts, packages) in &sections {
        reports.extend(group(*env, hosts, packages, &answers));
    }
    Ok(Survey { reports, answers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_newest_first_and_flags_hosts_behind() {
        let pkg: PackageName = "python3-swh.storage".parse().unwrap();
        let v = |s: &str| Some(s.parse::<DebianVersion>().unwrap());
        let mut answers = BTreeMap::new();
        for (h, ver) in [
            ("w1", v("1.10-1~swh1")),
            ("w2", v("1.9-1~swh1")),
            ("w3", v("1.10-1~swh1")),
            ("w4", None),
        ] {
            let mut m = BTreeMap::new();
            m.insert(pkg.to_string(), ver);
            answers.insert(h.to_owned(), Ok(m));
        }
        answers.insert("w5".to_owned(), Err("Connection refused".to_owned()));
        let hosts: Vec<String> = ["w1", "w2", "w3", "w4", "w5"].map(String::from).to_vec();
        let r = &group(Some("staging"), &hosts, &[pkg], &answers)[0];
        assert_eq!(r.newest.as_deref(), Some("1.10-1~swh1"));
        let got: Vec<(Option<&str>, &str)> = r
            .versions
            .iter()
            .map(|v| (v.version.as_deref(), v.hosts.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("1.10-1~swh1"), "w[1,3]"),
                (Some("1.9-1~swh1"), "w2"),
                (None, "w4")
            ]
        );
        assert_eq!(r.behind, "w[2,4]");
        assert_eq!(r.unreachable, "w5");
        let text = render(std::slice::from_ref(r), false);
        assert!(text.contains("1.9-1~swh1"), "{text}");
        assert!(text.contains("w2 (1) behind"), "{text}");
    }

    #[test]
    fn environments_are_compared() {
        let pkg: PackageName = "python3-swh.storage".parse().unwrap();
        let mut answers = BTreeMap::new();
        for (h, ver) in [
            ("s1", "1.1-1~swh1"),
            ("p1", "1.0-1~swh1"),
            ("p2", "1.0-1~swh1"),
        ] {
            let mut m = BTreeMap::new();
            m.insert(pkg.to_string(), Some(ver.parse::<DebianVersion>().unwrap()));
            answers.insert(h.to_owned(), Ok(m));
        }
        let mut reports = group(
            Some("staging"),
            &["s1".into()],
            std::slice::from_ref(&pkg),
            &answers,
        );
        reports.extend(group(
            Some("production"),
            &["p1".into(), "p2".into()],
            &[pkg],
            &answers,
        ));
        // Within production every host runs its newest: nobody behind there.
        assert_eq!(reports[1].behind, "");
        let text = render(&reports, false);
        assert!(
            text.contains(
                "python3-swh.storage (production):\n  1.0-1~swh1               p[1-2] (2)\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "python3-swh.storage: staging 1.1-1~swh1, production 1.0-1~swh1 (behind)\n"
            ),
            "{text}"
        );
        let colored = render(&reports, true);
        assert!(
            colored.contains("\x1b[1;33mproduction 1.0-1~swh1 (behind)\x1b[0m"),
            "{colored}"
        );
    }
}
