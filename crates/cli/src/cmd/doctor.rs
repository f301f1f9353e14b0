//! `swh-deploy doctor [--site F]`: checks the admin host before a release
//! and prints each problem with its fix. Changes nothing.
//!
//! Checks: the site file, an ssh identity (agent or key files), known_hosts
//! entries for the site's hosts (as `ssh -G` resolves them), the
//! ClusterShell configuration directory, the kube contexts of the site's
//! environments, registry credentials, uv, the swh-apps / swh-charts git
//! remotes, the journal (writable) and its pending compensations.

use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
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

/// One check's outcome.
#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    detail: String,
    fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Runs `swh-deploy doctor`.
pub fn run(args: DoctorArgs) -> ExitCode {
    let mut checks = Vec::new();
    let site = match Site::discover(args.site.as_deref()) {
        Ok(s) => {
            checks.push(ok("site", format!("{}", s.path.display())));
            Some(s)
        }
        Err(e) => {
            checks.push(fail(
                "site",
                e.to_string(),
                "correct the site file (docs/site.md), then `swh-deploy site check`; give it with --site or $SWH_DEPLOY_SITE",
            ));
            None
        }
    };
    if let Some(site) = &site {
        match site_hosts(site) {
            Ok(hosts) => {
                checks.push(ssh_identity(site, hosts.first().map(String::as_str)));
                checks.push(known_hosts(site, &hosts));
            }
            Err(e) => {
                checks.push(ssh_identity(site, None));
                checks.push(fail(
                    "known_hosts",
                    format!("the site's hosts cannot be resolved: {e}"),
                    "correct the site's groups (or the ClusterShell groups they name)",
                ));
            }
        }
        checks.push(clustershell(site));
        if let Some(c) = kube_contexts(site) {
            checks.push(c);
        }
        if let Some(c) = registry(site) {
            checks.push(c);
        }
        if site.apps.is_some() {
            checks.push(uv());
        }
        checks.extend(git_remotes(site));
    }
    checks.extend(journal(args.journal.as_deref()));
    let problems = checks.iter().filter(|c| !c.ok).count();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": 1,
                "checks": checks,
                "problems": problems,
            }))
            .unwrap_or_default()
        );
    } else {
        for c in &checks {
            println!(
                "{:<4} {}: {}",
                if c.ok { "ok" } else { "FAIL" },
                c.check,
                c.detail
            );
            if let Some(f) = &c.fix {
                println!("     fix: {f}");
            }
        }
        println!(
            "{}",
            if problems == 0 {
                "no problem found".to_string()
            } else {
                format!("{problems} problem(s)")
            }
        );
    }
    if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Every host of the site's groups, in order, without repeats; or why they
/// cannot be resolved.
fn site_hosts(site: &Site) -> Result<Vec<String>, String> {
    let groups: Vec<String> = site.groups.keys().map(|g| format!("@{g}")).collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    swh_deploy_upgrade::select(site, None, &groups, &[])
        .map(|s| s.targets)
        .map_err(|e| e.to_string())
}

/// `ssh -G HOST` with the site's options: key -> values (lower-case keys).
fn ssh_g(site: &Site, host: &str) -> Result<Vec<(String, String)>, String> {
    let out = Command::new("ssh")
        .arg("-G")
        .args(swh_deploy_upgrade::ssh::ssh_args(site))
        .arg("--")
        .arg(host)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh -G {host}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect())
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(h)) => PathBuf::from(h).join(rest),
        _ => PathBuf::from(p),
    }
}

fn ssh_identity(site: &Site, host: Option<&str>) -> Check {
    const CHECK: &str = "ssh identity";
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        let agent = Command::new("ssh-add")
            .arg("-l")
            .stdin(Stdio::null())
            .output();
        if agent.map(|o| o.status.success()).unwrap_or(false) {
            return ok(CHECK, "the ssh agent holds keys");
        }
    }
    let files: Vec<PathBuf> = match ssh_g(site, host.unwrap_or("localhost")) {
        Ok(kv) => kv
            .into_iter()
            .filter(|(k, _)| k == "identityfile")
            .map(|(_, v)| expand_home(&v))
            .collect(),
        Err(e) => return fail(CHECK, e, "check the site's [ssh] config and options"),
    };
    match files.iter().find(|f| f.is_file()) {
        Some(f) => ok(CHECK, format!("key file {}", f.display())),
        None => fail(
            CHECK,
            "no key in an ssh agent and none of ssh's identity files exists",
            "start an agent and `ssh-add` your key, or create one with `ssh-keygen -t ed25519`",
        ),
    }
}

fn known_hosts(site: &Site, hosts: &[String]) -> Check {
    const CHECK: &str = "known_hosts";
    if hosts.is_empty() {
        return ok(CHECK, "the site has no host");
    }
    let mut missing: Vec<String> = Vec::new();
    let mut first_file: Option<String> = None;
    for h in hosts {
        let kv = match ssh_g(site, h) {
            Ok(kv) => kv,
            Err(e) => return fail(CHECK, e, "check the site's [ssh] config and options"),
        };
        let get = |k: &str| kv.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
        let name = get("hostkeyalias")
            .filter(|a| a != "none")
            .or_else(|| get("hostname"))
            .unwrap_or_else(|| h.clone());
        let port = get("port").unwrap_or_else(|| "22".into());
        let lookup = if port == "22" {
            name
        } else {
            format!("[{name}]:{port}")
        };
        let mut files: Vec<String> = Vec::new();
        for k in ["userknownhostsfile", "globalknownhostsfile"] {
            if let Some(v) = get(k) {
                files.extend(v.split_whitespace().map(String::from));
            }
        }
        if first_file.is_none() {
            first_file = files.first().cloned();
        }
        let known = files.iter().any(|f| {
            let f = expand_home(f);
            f.is_file()
                && Command::new("ssh-keygen")
                    .arg("-F")
                    .arg(&lookup)
                    .arg("-f")
                    .arg(&f)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
        });
        if !known {
            missing.push(h.clone());
        }
    }
    let fold = |v: &[String]| {
        swh_deploy_nodeset::NodeSet::from_names(v)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| v.join(","))
    };
    if missing.is_empty() {
        ok(CHECK, format!("{} host(s) known", hosts.len()))
    } else {
        fail(
            CHECK,
            format!("no host key known for {} ({} host(s))", fold(&missing), missing.len()),
            format!(
                "get each key from a trusted source (puppet's ssh_known_hosts) or `ssh-keyscan HOST`, check its fingerprint out of band, and add it to {}",
                first_file.unwrap_or_else(|| "~/.ssh/known_hosts".into())
            ),
        )
    }
}

fn clustershell(site: &Site) -> Check {
    const CHECK: &str = "clustershell";
    match &site.clustershell.config_dir {
        None => ok(
            CHECK,
            "no [clustershell] config_dir (ClusterShell's search path is used)",
        ),
        Some(d) if d.join("groups.conf").is_file() || d.join("groups.d").is_dir() => {
            ok(CHECK, format!("{}", d.display()))
        }
        Some(d) => fail(
            CHECK,
            format!(
                "{}: [clustershell] config_dir {} has no groups.conf nor groups.d/",
                site.path.display(),
                d.display()
            ),
            "point config_dir at ClusterShell's configuration (e.g. /etc/clustershell) or remove it",
        ),
    }
}

fn kube_contexts(site: &Site) -> Option<Check> {
    const CHECK: &str = "kube contexts";
    let wanted: Vec<(&String, &String)> = site
        .environments
        .iter()
        .filter_map(|(n, e)| e.kube_context.as_ref().map(|c| (n, c)))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let out = match Command::new("kubectl")
        .args(["config", "get-contexts", "-o", "name"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            return Some(fail(
                CHECK,
                format!("cannot run kubectl: {e}"),
                "install kubectl (Debian package kubernetes-client or upstream)",
            ))
        }
    };
    let have = String::from_utf8_lossy(&out.stdout).into_owned();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(_, c)| !have.lines().any(|l| l == c.as_str()))
        .map(|(n, c)| format!("{c} (environment {n})"))
        .collect();
    Some(if missing.is_empty() {
        ok(
            CHECK,
            format!("{} context(s) in the kubeconfig", wanted.len()),
        )
    } else {
        fail(
            CHECK,
            format!("not in the kubeconfig: {}", missing.join(", ")),
            "add them to ~/.kube/config (or $KUBECONFIG): `kubectl config set-context NAME --cluster ... --user ...`",
        )
    })
}

fn registry(site: &Site) -> Option<Check> {
    const CHECK: &str = "registry credentials";
    let r = site.registry.as_ref()?;
    if r.insecure {
        return Some(ok(
            CHECK,
            format!("{} is a plain-HTTP test registry", r.host),
        ));
    }
    Some(match swh_deploy_apps::registry::credentials(&r.host) {
        Ok(Some(_)) => ok(CHECK, format!("found for {}", r.host)),
        Ok(None) => fail(
            CHECK,
            format!(
                "none for {} in {}",
                r.host,
                swh_deploy_apps::registry::credential_files()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("`buildah login {}` (or podman/docker login)", r.host),
        ),
        Err(e) => fail(
            CHECK,
            e.to_string(),
            "correct the credentials file named above",
        ),
    })
}

/// uv as `app freeze` runs it: $SWH_DEPLOY_UV, else `uv` from PATH.
fn uv() -> Check {
    let program = std::env::var_os("SWH_DEPLOY_UV").unwrap_or_else(|| "uv".into());
    match Command::new(&program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => ok("uv", String::from_utf8_lossy(&o.stdout).trim()),
        Ok(o) => fail(
            "uv",
            format!(
                "uv --version failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            "reinstall uv (`pip install uv` or the Debian package)",
        ),
        Err(e) => fail(
            "uv",
            format!(
                "cannot run {}: {e} (app freeze needs it)",
                Path::new(&program).display()
            ),
            "install uv (`pip install uv`, or `pipx install uv`) on PATH, or set $SWH_DEPLOY_UV to it",
        ),
    }
}

fn git_remotes(site: &Site) -> Vec<Check> {
    let mut out = Vec::new();
    let mut one = |check: &'static str, dir: PathBuf, remote: &str| {
        let o = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["ls-remote", "--heads", remote])
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "ssh -oBatchMode=yes -oConnectTimeout=10")
            .stdin(Stdio::null())
            .output();
        out.push(match o {
            Ok(o) if o.status.success() => ok(check, format!("{} reaches {remote}", dir.display())),
            Ok(o) => fail(
                check,
                format!(
                    "{}: git ls-remote {remote} failed: {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                format!(
                    "clone the repository at {} with a remote named {remote} you can fetch from and push to (ssh key, network)",
                    dir.display()
                ),
            ),
            Err(e) => fail(check, format!("cannot run git: {e}"), "install git"),
        });
    };
    if let Some(a) = &site.apps {
        one(
            "swh-apps remote",
            super::app::apps_dir(&None, Some(site)),
            &a.remote,
        );
    }
    if let Some(c) = &site.charts {
        one(
            "swh-charts remote",
            super::chart::charts_dir(&None, Some(site)),
            &c.remote,
        );
    }
    out
}

/// The nearest existing ancestor of `p`.
fn existing_ancestor(p: &Path) -> Option<&Path> {
    p.ancestors().skip(1).find(|a| a.exists())
}

fn writable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn journal(explicit: Option<&Path>) -> Vec<Check> {
    const CHECK: &str = "journal";
    let path = match swh_deploy_journal::resolve_path(explicit) {
        Ok(p) => p,
        Err(e) => {
            return vec![fail(
                CHECK,
                e.to_string(),
                "set $SWH_DEPLOY_JOURNAL or give --journal",
            )]
        }
    };
    if !path.exists() {
        let dir = existing_ancestor(&path);
        return vec![match dir {
            Some(d) if d.is_dir() && writable(d) => ok(
                CHECK,
                format!(
                    "{} (not created yet; {} is writable)",
                    path.display(),
                    d.display()
                ),
            ),
            _ => fail(
                CHECK,
                format!(
                    "{}: cannot be created (its directory is not writable)",
                    path.display()
                ),
                "give a writable --journal / $SWH_DEPLOY_JOURNAL",
            ),
        }];
    }
    if !writable(&path) {
        return vec![fail(
            CHECK,
            format!("{}: not writable", path.display()),
            format!("fix its permissions (`chmod u+w {}`)", path.display()),
        )];
    }
    let journal = match swh_deploy_journal::Journal::open(&path) {
        Ok(j) => j,
        Err(e) => {
            return vec![fail(
                CHECK,
                e.to_string(),
                "move the damaged file aside (it is SQLite: `sqlite3 FILE .recover`)",
            )]
        }
    };
    let mut out = vec![ok(CHECK, format!("{}", path.display()))];
    out.push(match journal.pending_compensations(None) {
        Ok(p) if p.is_empty() => ok("compensations", "none pending"),
        Ok(p) => {
            let names: Vec<String> = p.iter().map(|c| c.host.clone()).collect();
            let hosts = swh_deploy_nodeset::NodeSet::from_names(&names)
                .map(|n| n.to_string())
                .unwrap_or_else(|_| names.join(","));
            let actions: std::collections::BTreeSet<&str> =
                p.iter().map(|c| c.action.as_str()).collect();
            fail(
                "compensations",
                format!(
                    "{} pending on {hosts} ({}): puppet or cron may still be off",
                    p.len(),
                    actions.into_iter().collect::<Vec<_>>().join(", ")
                ),
                "`swh-deploy recover` (puts the hosts back), then `swh-deploy resume RUN` if needed",
            )
        }
        Err(e) => fail("compensations", e.to_string(), "check the journal file"),
    });
    out
}
