//! Helpers shared by the CLI's integration tests (each `tests/*.rs` file is
//! its own crate and says `mod common;`): the `swh-deploy` binary under test
//! and how a test runs it, commands that must succeed (`sh`, `git`), the
//! project's venv (uv, ClusterShell), and the test-bed set-up of the static
//! path (site files for the test bed's hosts, packages installed from its
//! apt repository, [`StaticBed`]).
//!
//! Skips follow the workspace's one policy, [`skip`] (re-exported from the
//! test bed crate): the reason printed locally, a panic under CI.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use swh_deploy_testbed::Testbed;

pub use swh_deploy_testbed::skip;

/// The test bed's package versions (its apt repository builds these).
pub const V10: &str = "1.0-1~swh1";
/// See [`V10`].
pub const V11: &str = "1.1-1~swh1";

/// The `swh-deploy` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_swh-deploy")
}

/// `swh-deploy ARGS`, nothing else set.
pub fn swh_deploy(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c
}

/// `swh-deploy ARGS` with the journal `journal`, no site from the caller's
/// environment (`SWH_DEPLOY_SITE` removed) and stdin from /dev/null.
pub fn with_journal(journal: &Path, args: &[&str]) -> Command {
    let mut c = swh_deploy(args);
    c.env("SWH_DEPLOY_JOURNAL", journal)
        .env_remove("SWH_DEPLOY_SITE")
        .stdin(Stdio::null());
    c
}

/// Runs `c`, a `swh-deploy ARGS` command, and prints the command line, its
/// exit code and its output on stderr (nextest shows it when a test fails).
pub fn logged(args: &[&str], c: &mut Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    eprintln!(
        "$ swh-deploy {}\n-> {:?}\n{}{}",
        args.join(" "),
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Bytes as text (lossy UTF-8).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `--json` document (docs/json.md) parsed, after checking that it is
/// one object whose first field is `"schema": 1`.
pub fn json_doc(stdout: &str) -> serde_json::Value {
    assert!(
        stdout.trim_start().starts_with("{\n  \"schema\": 1,")
            || stdout.trim_start().starts_with("{\"schema\":1,"),
        "not a schema-1 document: {stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// (stdout, stderr) of `o` as text.
pub fn out_err(o: &Output) -> (String, String) {
    (text(&o.stdout), text(&o.stderr))
}

/// The exit code of `o`, -1 when killed by a signal.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Runs `cmd`, which must succeed (else panics with its status and output);
/// returns its stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `git -C DIR ARGS`, which must succeed; its stdout trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    sh(Command::new("git").arg("-C").arg(dir).args(args))
        .trim()
        .to_string()
}

/// `git clone -q URL DIR`, then a committer identity in the clone.
pub fn clone_as_sysadmin(url: &str, dir: &Path) {
    sh(Command::new("git").args(["clone", "-q", url]).arg(dir));
    git(dir, &["config", "user.name", "Sysadmin"]);
    git(dir, &["config", "user.email", "sysadmin@example.invalid"]);
}

/// The project's venv (scripts/install-deps): `$SWH_DEPLOY_VENV`, else
/// `<repo>/.venv`.
pub fn venv() -> PathBuf {
    match std::env::var_os("SWH_DEPLOY_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
    }
}

/// The venv's uv, else `uv` from PATH.
pub fn uv() -> PathBuf {
    let p = venv().join("bin/uv");
    if p.exists() {
        p
    } else {
        PathBuf::from("uv")
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True when the test may start a test bed (root: network namespaces,
/// systemd-nspawn); otherwise skipped, or a failure under CI.
#[track_caller]
pub fn need_root() -> bool {
    skip::need_root("network namespaces, systemd-nspawn")
}

/// A test bed of `n` systemd hosts whose apt repository offers [`V10`] and
/// [`V11`], connected to the test bed's Puppet server when `puppet` is set.
pub fn systemd_hosts(n: usize, puppet: bool) -> Testbed {
    Testbed::up(&swh_deploy_testbed::Options {
        hosts: n,
        systemd: true,
        apt_repo: true,
        apt_versions: vec![V10.into(), V11.into()],
        puppet,
        ..swh_deploy_testbed::Options::default()
    })
    .expect("test bed up")
}

/// The head of a site file for a test bed's hosts: `[site]` (named `name`
/// when given, default environment staging), `[ssh]` through the test
/// bed's ssh config as root (connect timeout 3 s, `fanout` when given),
/// `[environments.staging]` and group `rpc` of `nodes` in it.
pub fn site_head(name: Option<&str>, tb: &Testbed, nodes: &str, fanout: Option<u32>) -> String {
    let name = name
        .map(|n| format!("name = \"{n}\"\n"))
        .unwrap_or_default();
    let fanout = fanout
        .map(|f| format!("fanout = {f}\n"))
        .unwrap_or_default();
    format!(
        r#"[site]
{name}default_environment = "staging"

[ssh]
config = "{cfg}"
user = "root"
connect_timeout = "3s"
{fanout}
[environments.staging]

[groups.rpc]
environment = "staging"
nodes = "{nodes}"
"#,
        cfg = tb.ssh_config_path().display()
    )
}

/// `[services.storage]` on group `rpc` (unit gunicorn-swh-storage, package
/// python3-swh.storage), its http health gate on port 5002 with `deadline`.
pub fn storage_service(deadline: &str) -> String {
    format!(
        r#"
[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc"]
health = {{ check = "http", port = 5002, path = "/", expect = "Software Heritage storage server", timeout = "2s", deadline = "{deadline}", interval = "500ms" }}
"#
    )
}

/// `[services.loader-git]` on group `rpc` (unit swh-worker@loader_git,
/// package python3-swh.loader.git), its systemd health gate with `deadline`.
pub fn loader_service(deadline: &str) -> String {
    format!(
        r#"
[services.loader-git]
kind = "worker"
units = ["swh-worker@loader_git"]
packages = ["python3-swh.loader.git"]
groups = ["rpc"]
health = {{ check = "systemd", deadline = "{deadline}", interval = "500ms" }}
"#
    )
}

/// Installs `packages` at the given version on each host, all hosts at
/// once, from the test bed's apt repository; asserts that dpkg then has the
/// first package at that version.
pub fn install(tb: &Testbed, hosts_versions: &[(&str, &str)], packages: &[&str]) {
    std::thread::scope(|s| {
        for &(h, v) in hosts_versions {
            s.spawn(move || {
                let pins: Vec<String> = packages.iter().map(|p| format!("{p}={v}")).collect();
                let out = tb
                    .ssh_command(
                        h,
                        &format!(
                            "apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                             {} >/dev/null 2>&1 && dpkg-query -W -f='${{Version}}' {}",
                            pins.join(" "),
                            packages[0]
                        ),
                    )
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert_eq!(text(&out.stdout).trim(), v, "installing {v} on {h}");
            });
        }
    });
}

/// A test bed of hosts with a private directory for the site file and the
/// journal; runs `swh-deploy` with both.
pub struct StaticBed {
    /// The test bed (stopped on drop).
    pub tb: Testbed,
    /// Holds `site.toml` and `journal.sqlite`.
    pub dir: tempfile::TempDir,
    /// The test bed's host names.
    pub hosts: Vec<String>,
}

impl StaticBed {
    /// `tb` with a fresh private directory.
    pub fn new(tb: Testbed) -> StaticBed {
        let hosts = tb.hosts().iter().map(|h| h.name.clone()).collect();
        StaticBed {
            tb,
            dir: tempfile::tempdir().unwrap(),
            hosts,
        }
    }

    /// The site file's path.
    pub fn site(&self) -> PathBuf {
        self.dir.path().join("site.toml")
    }

    /// The journal's path.
    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.sqlite")
    }

    /// A shell command on a host; its trimmed stdout.
    pub fn sh(&self, host: &str, cmd: &str) -> String {
        let out = self
            .tb
            .ssh_command(host, cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The main pids of the storage and loader units on `host`.
    pub fn main_pids(&self, host: &str) -> String {
        self.sh(
            host,
            "systemctl show -p MainPID --value gunicorn-swh-storage swh-worker@loader_git | tr '\\n' ' '",
        )
    }

    /// `swh-deploy ARGS` with this bed's journal and site file, no Grafana
    /// from the caller's environment, stdin from /dev/null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = swh_deploy(args);
        c.env_remove("SWH_DEPLOY_GRAFANA_URL")
            .env("SWH_DEPLOY_JOURNAL", self.journal())
            .env("SWH_DEPLOY_SITE", self.site())
            .stdin(Stdio::null());
        c
    }

    /// Runs [`StaticBed::command`], [`logged`].
    pub fn swh_deploy(&self, args: &[&str]) -> Output {
        logged(args, &mut self.command(args))
    }
}

/// The variable that the test site files name as Argo CD's token
/// (`[argocd] token_env`).
pub const TOKEN_VAR: &str = "SWH_DEPLOY_TEST_ARGOCD_TOKEN";

/// SWH's two Kubernetes environments in a site file: kube contexts, chart
/// branches, Argo CD applications and namespaces of staging and production
/// (the Kubernetes/Argo CD stand-in's `StandinOptions::swh`).
pub const SWH_ENVIRONMENTS: &str = "[environments.staging]\nkube_context = \"archive-staging-rke2\"\nchart_branch = \"staging\"\n\
     argocd_application = \"archive-staging-rke2-swh\"\nnamespace = \"swh\"\n\n\
     [environments.production]\nkube_context = \"archive-production-rke2\"\nchart_branch = \"production\"\n\
     argocd_application = \"archive-production-rke2-swh-cassandra\"\nnamespace = \"swh-cassandra\"\n";

/// The swh-charts bare remote, the Kubernetes/Argo CD stand-in following
/// it, a kubeconfig of both environments' contexts, a clone `swh-charts`
/// (committer Sysadmin) and a site file naming all of it, in a temporary
/// directory; every process is stopped on drop.
pub struct ArgoBed {
    /// Removed on drop.
    pub _tmp: tempfile::TempDir,
    /// The temporary directory's path.
    pub root: PathBuf,
    /// The test bed's git remotes.
    pub remotes: swh_deploy_testbed::components::GitRemotes,
    /// The Kubernetes/Argo CD stand-in.
    pub standin: swh_deploy_testbed::kube::KubeStandin,
}

impl ArgoBed {
    /// The bed, its site file named `name`.
    pub fn start(name: &str) -> ArgoBed {
        use swh_deploy_testbed::kube::{KubeStandin, StandinOptions};
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let remotes =
            swh_deploy_testbed::components::GitRemotes::create(&root.join("remotes")).unwrap();
        let standin = KubeStandin::start(StandinOptions::swh(&remotes.charts.path)).unwrap();
        standin
            .write_kubeconfig(
                &root.join("kubeconfig"),
                &["archive-staging-rke2", "archive-production-rke2"],
            )
            .unwrap();
        clone_as_sysadmin(&remotes.charts.url, &root.join("swh-charts"));
        std::fs::write(
            root.join("site.toml"),
            format!(
                "[site]\nname = \"{name}\"\n\n{SWH_ENVIRONMENTS}\n\
                 [charts]\ncheckout = \"{}\"\n\n\
                 [argocd]\nurl = \"{}\"\ntoken_env = \"{TOKEN_VAR}\"\n",
                root.join("swh-charts").display(),
                standin.url()
            ),
        )
        .unwrap();
        ArgoBed {
            _tmp: tmp,
            root,
            remotes,
            standin,
        }
    }

    /// `swh-deploy ARGS` with this bed's site file, journal, kubeconfig and
    /// Argo CD token; no charts directory, Argo CD token or Grafana from the
    /// caller's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = swh_deploy(args);
        c.env("SWH_DEPLOY_SITE", self.root.join("site.toml"))
            .env("SWH_DEPLOY_JOURNAL", self.root.join("journal.sqlite"))
            .env("KUBECONFIG", self.root.join("kubeconfig"))
            .env(TOKEN_VAR, self.standin.argocd_token())
            .env_remove("SWH_DEPLOY_CHARTS_DIR")
            .env_remove("ARGOCD_AUTH_TOKEN")
            .env_remove("SWH_DEPLOY_GRAFANA_URL");
        c
    }

    /// Runs `swh-deploy ARGS` ([`ArgoBed::command`], stdin from /dev/null),
    /// logged ([`logged`]).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// [`ArgoBed::run`] with these environment variables too.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        logged(
            args,
            self.command(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null()),
        )
    }

    /// The bed's journal.
    pub fn journal(&self) -> swh_deploy_journal::Journal {
        swh_deploy_journal::Journal::open(&self.root.join("journal.sqlite")).unwrap()
    }

    /// `git ARGS` in the swh-charts bare remote: whether it succeeded, and
    /// its stdout trimmed.
    pub fn remote_git(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remotes.charts.path)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
    }

    /// Pushes a commit setting swh_loader_git's image version to `version`
    /// on `branch` of the swh-charts remote; its hash.
    pub fn push(&self, branch: &str, version: &str) -> String {
        swh_deploy_testbed::kube::push_chart_version(
            &self.remotes.charts.url,
            &self.root.join("scratch"),
            branch,
            "swh_loader_git",
            version,
        )
        .unwrap()
    }

    /// The hash of `branch` on the swh-charts remote.
    pub fn head(&self, branch: &str) -> String {
        let o = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remotes.charts.path)
            .args(["rev-parse", branch])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}
