//! Checks the admin host before a release (`swh-deploy doctor`) and says,
//! for each problem, the command that fixes it. Changes nothing.
//!
//! # Model
//! [`examine`] runs a fixed list of [`Check`]s, each `ok` or not with what
//! it found and, when not, its fix. The site file comes first: when it
//! cannot be loaded, that is the one site problem and the checks that need
//! it are not run. Then, from the site file:
//!
//! - `ssh identity`: keys in an ssh agent, else one of the identity files
//!   `ssh -G` names for the site's first host (`ssh-add -l` asks the agent
//!   `$SSH_AUTH_SOCK` names, as ssh would);
//! - `known_hosts`: a host key for every host of the site's groups, looked
//!   up as ssh would (`ssh -G`: HostKeyAlias/HostName, Port, the known_hosts
//!   files; `ssh-keygen -F`);
//! - `clustershell`: the `[clustershell] config_dir` holds a configuration;
//! - `kube contexts`: the environments' contexts are in the kubeconfig
//!   (`kubectl config get-contexts`);
//! - `registry credentials`: the `[registry]` host has credentials where
//!   buildah/podman/docker keep them;
//! - `uv`: runs (when the site has `[apps]`);
//! - `swh-apps remote`, `swh-charts remote`: `git ls-remote` reaches them;
//!
//! and in every case the journal (writable, or creatable) and its pending
//! compensations. Checks that do not apply (no `[registry]`...) are not
//! listed. The real tools of the admin host are used (`ssh`, `ssh-keygen`,
//! `ssh-add`, `kubectl`, `git`, `uv`), never a reimplementation.
//!
//! The [`Diagnosis`] serialises as the `--json` document (schema 1,
//! docs/doctor.md) and renders as text with [`Diagnosis::render`].

mod checks;

use serde::Serialize;
use std::path::PathBuf;
use swh_deploy_site::{Site, SiteError};
use swh_deploy_util::Exit;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Its name (`known_hosts`, `uv`...).
    pub check: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it, when it failed.
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn ok(check: &'static str, detail: impl Into<String>) -> Check {
        Check {
            check,
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A failed check with its fix.
    pub fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check,
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What the checks read from the admin host's environment, resolved by the
/// caller (this crate reads no environment variable).
#[derive(Debug, Clone, Default)]
pub struct HostSettings {
    /// The journal given (`--journal`, else `$SWH_DEPLOY_JOURNAL`); `None`:
    /// the journal crate's default (the user's state directory).
    pub journal: Option<PathBuf>,
    /// The uv program `app freeze` runs (`$SWH_DEPLOY_UV`, else `uv`).
    pub uv: PathBuf,
    /// `$SWH_DEPLOY_APPS_DIR`, which wins over the site's `[apps]`.
    pub apps_dir: Option<PathBuf>,
    /// `$SWH_DEPLOY_CHARTS_DIR`, which wins over the site's `[charts]`.
    pub charts_dir: Option<PathBuf>,
    /// The home directory (`$HOME`), for `~/` in ssh's file names.
    pub home: Option<PathBuf>,
}

/// Every check's outcome (`--json`, schema 1).
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The JSON schema version (1).
    pub schema: u32,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// How many failed.
    pub problems: usize,
}

impl Diagnosis {
    /// [`Exit::Success`] when no check failed, else [`Exit::Failed`].
    pub fn exit(&self) -> Exit {
        if self.problems == 0 {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    /// The checks as text: `ok`/`FAIL`, name, what was found, the fix
    /// indented under it, then the count of problems.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for c in &self.checks {
            let _ = writeln!(
                s,
                "{:<4} {}: {}",
                if c.ok { "ok" } else { "FAIL" },
                c.check,
                c.detail
            );
            if let Some(f) = &c.fix {
                let _ = writeln!(s, "     fix: {f}");
            }
        }
        let _ = writeln!(
            s,
            "{}",
            if self.problems == 0 {
                "no problem found".to_string()
            } else {
                format!("{} problem(s)", self.problems)
            }
        );
        s
    }
}

/// Runs every check that applies: `site` is the site file as it was found
/// and loaded (or why not), `host` the admin host's settings.
pub fn examine(site: Result<Site, SiteError>, host: &HostSettings) -> Diagnosis {
    let mut out = Vec::new();
    let site = match site {
        Ok(s) => {
            out.push(Check::ok("site", format!("{}", s.path.display())));
            Some(s)
        }
        Err(e) => {
            out.push(Check::fail(
                "site",
                e.to_string(),
                "correct the site file (docs/site.md), then `swh-deploy site check`; give it with --site or $SWH_DEPLOY_SITE",
            ));
            None
        }
    };
    if let Some(site) = &site {
        match checks::site_hosts(site) {
            Ok(hosts) => {
                out.push(checks::ssh_identity(
                    site,
                    host,
                    hosts.first().map(String::as_str),
                ));
                out.push(checks::known_hosts(site, host, &hosts));
            }
            Err(e) => {
                out.push(checks::ssh_identity(site, host, None));
                out.push(Check::fail(
                    "known_hosts",
                    format!("the site's hosts cannot be resolved: {e}"),
                    "correct the site's groups (or the ClusterShell groups they name)",
                ));
            }
        }
        out.push(checks::clustershell(site));
        out.extend(checks::kube_contexts(site));
        out.extend(checks::registry(site));
        if site.apps.is_some() {
            out.push(checks::uv(&host.uv));
        }
        out.extend(checks::git_remotes(site, host));
    }
    out.extend(checks::journal(host.journal.as_deref()));
    let problems = out.iter().filter(|c| !c.ok).count();
    Diagnosis {
        schema: 1,
        checks: out,
        problems,
    }
}

#[cfg(test)]
mod tests;
