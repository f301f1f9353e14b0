//! The checks, one function each, with the admin host's real tools.

use crate::{Check, HostSettings};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use swh_deploy_site::Site;
use swh_deploy_util::git::Git;

/// Every host of the site's groups, in order, without repeats; or why they
/// cannot be resolved.
pub(crate) fn site_hosts(site: &Site) -> Result<Vec<String>, String> {
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
    Ok(parse_ssh_g(&String::from_utf8_lossy(&out.stdout)))
}

/// The `key value` lines of `ssh -G`, keys lower-cased.
pub(crate) fn parse_ssh_g(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// `p` with a leading `~/` replaced by `home`.
pub(crate) fn expand_home(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(p),
    }
}

pub(crate) fn ssh_identity(site: &Site, host: &HostSettings, first: Option<&str>) -> Check {
    const CHECK: &str = "ssh identity";
    // ssh-add finds the agent as ssh does (`$SSH_AUTH_SOCK`); without
    // one it fails and the key files are looked at.
    let agent = Command::new("ssh-add")
        .arg("-l")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if agent.map(|s| s.success()).unwrap_or(false) {
        return Check::ok(CHECK, "the ssh agent holds keys");
    }
    let files: Vec<PathBuf> = match ssh_g(site, first.unwrap_or("localhost")) {
        Ok(kv) => kv
            .into_iter()
            .filter(|(k, _)| k == "identityfile")
            .map(|(_, v)| expand_home(&v, host.home.as_deref()))
            .collect(),
        Err(e) => return Check::fail(CHECK, e, "check the site's [ssh] config and options"),
    };
    match files.iter().find(|f| f.is_file()) {
        Some(f) => Check::ok(CHECK, format!("key file {}", f.display())),
        None => Check::fail(
            CHECK,
            "no key in an ssh agent and none of ssh's identity files exists",
            "start an agent and `ssh-add` your key, or create one with `ssh-keygen -t ed25519`",
        ),
    }
}

/// The name a host's key is looked up under in known_hosts: the
/// HostKeyAlias (else HostName, else `host`), as `[NAME]:PORT` off port 22.
pub(crate) fn known_hosts_name(kv: &[(String, String)], host: &str) -> String {
    let get = |k: &str| kv.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
    let name = get("hostkeyalias")
        .filter(|a| a != "none")
        .or_else(|| get("hostname"))
        .unwrap_or_else(|| host.to_string());
    let port = get("port").unwrap_or_else(|| "22".into());
    if port == "22" {
        name
    } else {
        format!("[{name}]:{port}")
    }
}

pub(crate) fn known_hosts(site: &Site, host: &HostSettings, hosts: &[String]) -> Check {
    const CHECK: &str = "known_hosts";
    if hosts.is_empty() {
        return Check::ok(CHECK, "the site has no host");
    }
    let mut missing: Vec<String> = Vec::new();
    let mut first_file: Option<String> = None;
    for h in hosts {
        let kv = match ssh_g(site, h) {
            Ok(kv) => kv,
            Err(e) => return Check::fail(CHECK, e, "check the site's [ssh] config and options"),
        };
        let lookup = known_hosts_name(&kv, h);
        let mut files: Vec<String> = Vec::new();
        for k in ["userknownhostsfile", "globalknownhostsfile"] {
            if let Some((_, v)) = kv.iter().find(|(kk, _)| kk == k) {
                files.extend(v.split_whitespace().map(String::from));
            }
        }
        if first_file.is_none() {
            first_file = files.first().cloned();
        }
        let known = files.iter().any(|f| {
            let f = expand_home(f, host.home.as_deref());
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
    if missing.is_empty() {
        Check::ok(CHECK, format!("{} host(s) known", hosts.len()))
    } else {
        Check::fail(
            CHECK,
            format!(
                "no host key known for {} ({} host(s))",
                swh_deploy_nodeset::fold(&missing),
                missing.len()
            ),
            format!(
                "get each key from a trusted source (puppet's ssh_known_hosts) or `ssh-keyscan HOST`, check its fingerprint out of band, and add it to {}",
                first_file.unwrap_or_else(|| "~/.ssh/known_hosts".into())
            ),
        )
    }
}

pub(crate) fn clustershell(site: &Site) -> Check {
    const CHECK: &str = "clustershell";
    match &site.clustershell.config_dir {
        None => Check::ok(
            CHECK,
            "no [clustershell] config_dir (ClusterShell's search path is used)",
        ),
        Some(d) if d.join("groups.conf").is_file() || d.join("groups.d").is_dir() => {
            Check::ok(CHECK, format!("{}", d.display()))
        }
        Some(d) => Check::fail(
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

pub(crate) fn kube_contexts(site: &Site) -> Option<Check> {
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
            return Some(Check::fail(
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
        Check::ok(
            CHECK,
            format!("{} context(s) in the kubeconfig", wanted.len()),
        )
    } else {
        Check::fail(
            CHECK,
            format!("not in the kubeconfig: {}", missing.join(", ")),
            "add them to ~/.kube/config (or $KUBECONFIG): `kubectl config set-context NAME --cluster ... --user ...`",
        )
    })
}

pub(crate) fn registry(site: &Site) -> Option<Check> {
    const CHECK: &str = "registry credentials";
    let r = site.registry.as_ref()?;
    if r.insecure {
        return Some(Check::ok(
            CHECK,
            format!("{} is a plain-HTTP test registry", r.host),
        ));
    }
    Some(match swh_deploy_apps::registry::credentials(&r.host) {
        Ok(Some(_)) => Check::ok(CHECK, format!("found for {}", r.host)),
        Ok(None) => Check::fail(
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
        Err(e) => Check::fail(
            CHECK,
            e.to_string(),
            "correct the credentials file named above",
        ),
    })
}

/// uv as `app freeze` runs it.
pub(crate) fn uv(program: &Path) -> Check {
    match Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Check::ok("uv", String::from_utf8_lossy(&o.stdout).trim()),
        Ok(o) => Check::fail(
            "uv",
            format!(
                "uv --version failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            "reinstall uv (`pip install uv` or the Debian package)",
        ),
        Err(e) => Check::fail(
            "uv",
            format!(
                "cannot run {}: {e} (app freeze needs it)",
                program.display()
            ),
            "install uv (`pip install uv`, or `pipx install uv`) on PATH, or set $SWH_DEPLOY_UV to it",
        ),
    }
}

/// Whether `git ls-remote --heads REMOTE` works in `dir`, without prompting.
pub(crate) fn git_remote(check: &'static str, dir: &Path, remote: &str) -> Check {
    let o = Git::new(dir)
        .command(&["ls-remote", "--heads", remote])
        .env("GIT_SSH_COMMAND", "ssh -oBatchMode=yes -oConnectTimeout=10")
        .stdin(Stdio::null())
        .output();
    match o {
        Ok(o) if o.status.success() => {
            Check::ok(check, format!("{} reaches {remote}", dir.display()))
        }
        Ok(o) => Check::fail(
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
        Err(e) => Check::fail(check, format!("cannot run git: {e}"), "install git"),
    }
}

pub(crate) fn git_remotes(site: &Site, host: &HostSettings) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(a) = &site.apps {
        let dir = swh_deploy_apps::resolve::apps_dir(host.apps_dir.as_deref(), Some(site));
        out.push(git_remote("swh-apps remote", &dir, &a.remote));
    }
    if let Some(c) = &site.charts {
        let dir = host
            .charts_dir
            .clone()
            .unwrap_or_else(|| c.checkout.clone());
        out.push(git_remote("swh-charts remote", &dir, &c.remote));
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

pub(crate) fn journal(explicit: Option<&Path>) -> Vec<Check> {
    const CHECK: &str = "journal";
    let path = match swh_deploy_journal::resolve_path(explicit) {
        Ok(p) => p,
        Err(e) => {
            return vec![Check::fail(
                CHECK,
                e.to_string(),
                "set $SWH_DEPLOY_JOURNAL or give --journal",
            )]
        }
    };
    if !path.exists() {
        let dir = existing_ancestor(&path);
        return vec![match dir {
            Some(d) if d.is_dir() && writable(d) => Check::ok(
                CHECK,
                format!(
                    "{} (not created yet; {} is writable)",
                    path.display(),
                    d.display()
                ),
            ),
            _ => Check::fail(
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
        return vec![Check::fail(
            CHECK,
            format!("{}: not writable", path.display()),
            format!("fix its permissions (`chmod u+w {}`)", path.display()),
        )];
    }
    let journal = match swh_deploy_journal::Journal::open(&path) {
        Ok(j) => j,
        Err(e) => {
            return vec![Check::fail(
                CHECK,
                e.to_string(),
                "move the damaged file aside (it is SQLite: `sqlite3 FILE .recover`)",
            )]
        }
    };
    let mut out = vec![Check::ok(CHECK, format!("{}", path.display()))];
    out.push(match journal.pending_compensations(None) {
        Ok(p) if p.is_empty() => Check::ok("compensations", "none pending"),
        Ok(p) => {
            let hosts = swh_deploy_nodeset::fold(p.iter().map(|c| c.host.as_str()));
            let actions: std::collections::BTreeSet<&str> =
                p.iter().map(|c| c.action.as_str()).collect();
            Check::fail(
                "compensations",
                format!(
                    "{} pending on {hosts} ({}): {}",
                    p.len(),
                    actions.into_iter().collect::<Vec<_>>().join(", "),
                    swh_deploy_upgrade::recover::pending_effects(&p).join("; ")
                ),
                "`swh-deploy recover` (puts the hosts back), then `swh-deploy resume RUN` if needed",
            )
        }
        Err(e) => Check::fail("compensations", e.to_string(), "check the journal file"),
    });
    out
}
