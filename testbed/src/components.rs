//! Optional test bed components, started on request by later tests.
//!
//! * [`Registry`]: Debian's real OCI registry (`docker-registry serve`, the
//!   CNCF distribution registry 2.8) with a private configuration: listens
//!   on `127.0.0.1` on a free port, stores in a given directory, no auth.
//! * [`GitRemotes`]: bare git repositories standing for the remotes of a
//!   module (`swh-loader-git`), of `swh-apps` and of `swh-charts`, with the
//!   layouts, branches and tags of the real ones.
//! * [`PackageIndex`]: a PyPI-style "simple" index (PEP 503, with PEP 658
//!   metadata files) of small wheels written here (`swh.core`, `swh.model`,
//!   `swh.storage`, `swh.lister`, `swh.loader.git`), served over HTTP on
//!   `127.0.0.1` by `busybox httpd`. `uv pip compile --index-url` and `pip
//!   index versions` resolve against it.
//! * [`StaticHttp`]: `busybox httpd` serving a directory (the package index,
//!   the apt repository of [`crate::aptrepo`]).
//!
//! Every component that runs a process is a guard: [`Drop`] stops it
//! (SIGTERM, then SIGKILL after a bounded wait) and `stop()` does the same
//! reporting errors. All waits are bounded. Nothing listens on anything but
//! loopback unless a caller passes another address to [`StaticHttp::start`].

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};

pub use crate::http::{http_get, HttpResponse};
use crate::util::write_atomic;

/// How long a component may take to answer after its process started.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopped process may take to exit after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Processes and HTTP

/// A child process killed when dropped.
#[derive(Debug)]
struct ProcessGuard {
    child: Option<Child>,
    what: String,
}

impl ProcessGuard {
    fn spawn(cmd: &mut Command, what: &str) -> Result<ProcessGuard> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {what}: {cmd:?}"))?;
        Ok(ProcessGuard {
            child: Some(child),
            what: what.to_string(),
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` if the process already exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, bounded wait, SIGKILL; reaps the process.
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        // SAFETY: plain syscall on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().ok();
        child
            .wait()
            .with_context(|| format!("waiting for {} to exit", self.what))?;
        Ok(())
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A free TCP port on `ip` (bound then released: callers retry on a race).
fn free_port(ip: IpAddr) -> Result<u16> {
    let l = TcpListener::bind((ip, 0)).with_context(|| format!("binding {ip}:0"))?;
    Ok(l.local_addr()?.port())
}

/// Waits until `GET path` on `addr` answers with a status accepted by `ok`,
/// failing early if the process exits.
fn wait_http(
    proc: &mut ProcessGuard,
    addr: SocketAddr,
    path: &str,
    ok: impl Fn(u16) -> bool,
    log: Option<&Path>,
) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = proc.exited() {
            let tail = log
                .and_then(|p| fs::read_to_string(p).ok())
                .map(|s| s.lines().rev().take(5).collect::<Vec<_>>().join(" | "))
                .unwrap_or_default();
            bail!(
                "{} exited ({status}) before answering on {addr}: {tail}",
                proc.what
            );
        }
        let last = match http_get(addr, path, Duration::from_secs(2)) {
            Ok(r) if ok(r.status) => return Ok(()),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "{} did not answer GET {path} on {addr} within {:?} (last: {last})",
                proc.what,
                START_TIMEOUT
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Quotes a string as a YAML single-quoted scalar.
fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn utf8_path(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}

// ---------------------------------------------------------------------------
// Static HTTP server

/// `busybox httpd` serving a directory over HTTP; stopped on drop.
#[derive(Debug)]
pub struct StaticHttp {
    proc: ProcessGuard,
    addr: SocketAddr,
    root: PathBuf,
}

impl StaticHttp {
    /// Serves `root` on `ip` (e.g. `127.0.0.1`, or a test bed bridge
    /// address) on a free port; returns once it answers.
    pub fn start(root: &Path, ip: IpAddr) -> Result<StaticHttp> {
        ensure!(
            root.is_dir(),
            "cannot serve {}: not a directory",
            root.display()
        );
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving {}", root.display()))?;
        let mut last_err = None;
        for _ in 0..3 {
            let port = free_port(ip)?;
            let addr = SocketAddr::new(ip, port);
            let mut proc = ProcessGuard::spawn(
                Command::new("busybox")
                    .args(["httpd", "-f", "-p"])
                    .arg(addr.to_string())
                    .arg("-h")
                    .arg(&root)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
                &format!("busybox httpd for {}", root.display()),
            )?;
            // Any HTTP answer (even 404 on /) means it listens.
            match wait_http(&mut proc, addr, "/", |_| true, None) {
                Ok(()) => return Ok(StaticHttp { proc, addr, root }),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("busybox httpd did not start")))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Pid of the server process (while running).
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Stops the server (also done on drop).
    pub fn stop(mut self) -> Result<()> {
        self.proc.stop()
    }
}

// ---------------------------------------------------------------------------
// OCI registry

/// Debian's `docker-registry` (distribution 2.8) on `127.0.0.1`, no auth,
/// storage in a given directory; stopped on drop.
#[derive(Debug)]
pub struct Registry {
    proc: ProcessGuard,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Registry {
    /// Starts a registry whose configuration (`config.yml`), storage
    /// (`storage/`) and log (`registry.log`) live in `dir` (created if
    /// missing); returns once `GET /v2/` answers 200.
    pub fn start(dir: &Path) -> Result<Registry> {
        fs::create_dir_all(dir.join("storage"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let storage = dir.join("storage");
        let config = dir.join("config.yml");
        let log = dir.join("registry.log");
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut last_err = None;
        for _ in 0..3 {
            let port = free_port(ip)?;
            let addr = SocketAddr::new(ip, port);
            let yaml = format!(
                "# swh-deploy test bed registry: loopback only, no auth.\n\
                 version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: {}\n  secret: swh-deploy-testbed\n",
                yaml_quote(utf8_path(&storage)?),
                yaml_quote(&addr.to_string()),
            );
            write_atomic(&config, yaml.as_bytes(), 0o644)?;
            let logfile =
                fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let mut proc = ProcessGuard::spawn(
                Command::new("docker-registry")
                    .arg("serve")
                    .arg(&config)
                    .env_remove("REGISTRY_HTTP_ADDR")
                    .stdin(Stdio::null())
                    .stdout(logfile.try_clone()?)
                    .stderr(logfile),
                "docker-registry",
            )?;
            match wait_http(&mut proc, addr, "/v2/", |s| s == 200, Some(&log)) {
                Ok(()) => return Ok(Registry { proc, addr, dir }),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("docker-registry did not start")))
    }

    /// The address it listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the registry part of image references
    /// (`127.0.0.1:PORT/swh/loader_git:20250117.1`; use `--tls-verify=false`
    /// with skopeo/buildah: it speaks plain HTTP).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` (the distribution API is under `/v2/`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory holding its configuration, storage and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pid of the registry process (while running).
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Stops the registry (also done on drop); storage is kept.
    pub fn stop(mut self) -> Result<()> {
        self.proc.stop()
    }
}

// ---------------------------------------------------------------------------
// Git remotes

/// The module whose remote [`GitRemotes`] makes (repository name).
pub const MODULE_REPO: &str = "swh-loader-git";
/// Its Python distribution name.
pub const MODULE_DIST: &str = "swh.loader.git";
/// Release tags of the module remote, oldest first (annotated). `master`
/// has one more commit after the last one.
pub const MODULE_TAGS: &[&str] = &["v1.0.0", "v1.1.0"];
/// Apps of the swh-apps remote (`apps/<app>/`), with the Python
/// distribution each one requires.
pub const APPS: &[(&str, &str)] = &[
    ("swh-lister", "swh.lister"),
    ("swh-loader-git", "swh.loader.git"),
    ("swh-storage", "swh.storage"),
];
/// The image-only app of the swh-apps remote that every app of [`APPS`]
/// builds FROM (image `base`), as in the real swh-apps.
pub const BASE_APP: &str = "swh-base";
/// The version [`BASE_APP`] is tagged at in the swh-apps remote
/// (`swh-base-20250110.1`), the one [`AppBaseImages::push`] pushes.
pub const BASE_APP_VERSION: &str = "20250110.1";
/// Where the test bed's images are pushed, under a registry's host: the
/// site files' `[registry] prefix` (the real one).
pub const APPS_PREFIX: &str = "swh/infra/swh-apps";
/// The image of Python the base app builds FROM, under the registry prefix
/// (Docker Hub's name; here [`python_base_image`]).
pub const PYTHON_IMAGE: &str = "python:3.11-bookworm";
/// The image uv is copied from, under the registry prefix (ghcr.io's name;
/// here the test bed's uv binary alone).
pub const UV_IMAGE: &str = "astral-sh/uv:latest";

/// `apps/swh-base/Dockerfile`: the real one (FROM python:3.11-bookworm, a
/// `swh` user and a venv, uv copied from its image) with the images taken
/// from the registry the build is given (`REGISTRY`) and no apt step (the
/// test bed is offline).
const SWH_BASE_DOCKERFILE: &str = "\
# swh-deploy test bed: the real swh-base builds FROM python:3.11-bookworm of
# Docker Hub, installs a few Debian packages and copies uv from
# ghcr.io/astral-sh/uv. Here both images come from the registry given as
# REGISTRY (the test bed pushes there a Debian bookworm image with Python 3.11
# made with debootstrap, and its uv), and nothing is installed with apt.
ARG REGISTRY
FROM ${REGISTRY}astral-sh/uv:latest AS uv
FROM ${REGISTRY}python:3.11-bookworm

ARG userid=1000
ARG groupid=1000
ARG user=swh
ARG workdir=/opt/${user}
ARG venv=${workdir}/venv
ARG configdir=/etc/${user}

RUN groupadd --gid ${groupid} ${user} && \\
    useradd --gid ${groupid} --uid ${userid} -m -d ${workdir} ${user} && \\
    mkdir ${configdir}

USER ${user}
RUN python3 -m venv ${venv}
WORKDIR ${workdir}

ENV PYTHONPATH=${venv}
ENV VIRTUAL_ENV=${venv}
ENV PATH=${venv}/bin:$PATH

COPY --from=uv /uv /bin/
";

/// `apps/<app>/Dockerfile` of a python app, shaped like the real ones:
/// FROM the base app's image, `uv pip sync` of the frozen requirements
/// (from the package index the base image names), the entrypoint.
fn python_app_dockerfile(app: &str) -> String {
    let instance = app.trim_start_matches("swh-").replace('-', "_");
    format!(
        "ARG REGISTRY=container-registry.softwareheritage.org/swh/infra/swh-apps/\n\
         ARG base_image=${{REGISTRY}}base\n\
         ARG base_image_version=latest\n\n\
         FROM ${{base_image}}:${{base_image_version}}\n\n\
         ARG user=swh\n\
         ARG workdir=/opt/${{user}}\n\
         ARG configdir=/etc/${{user}}\n\n\
         COPY --chmod=0644 requirements-frozen.txt ${{workdir}}\n\
         RUN uv pip sync --no-cache requirements-frozen.txt\n\n\
         COPY --chmod=0755 entrypoint.sh ${{workdir}}\n\n\
         USER ${{user}}\n\
         ENV SWH_CONFIG_FILENAME=${{configdir}}/config.yml\n\
         ENV SWH_WORKER_INSTANCE={instance}\n\n\
         ENTRYPOINT [\"/opt/swh/entrypoint.sh\"]\n"
    )
}

/// Branches of the swh-charts remote, from the first environment to the last.
pub const CHART_BRANCHES: &[&str] = &["swh-next-version", "staging", "production"];
/// `appVersion` of `swh/Chart.yaml` on every chart branch at creation.
pub const CHART_APP_VERSION: u64 = 423;

/// One bare repository of [`GitRemotes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRemote {
    /// Path of the bare repository (`<dir>/<name>.git`).
    pub path: PathBuf,
    /// `file://` URL of it, for `git clone` / `git push`.
    pub url: String,
    /// The branch `HEAD` points to (what a clone checks out).
    pub default_branch: String,
}

/// Bare git repositories standing for the remotes of a module
/// ([`MODULE_REPO`]), of `swh-apps` and of `swh-charts`. Plain directories:
/// nothing to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRemotes {
    /// The directory holding the bare repositories.
    pub dir: PathBuf,
    /// `swh-loader-git.git`: a tiny Python project (pyproject.toml with
    /// setuptools-scm, `swh/loader/git/`, requirements files), branch
    /// `master`, annotated tags [`MODULE_TAGS`], one unreleased commit on
    /// top.
    pub module: GitRemote,
    /// `swh-apps.git`: `apps/<app>/{Dockerfile, entrypoint.sh,
    /// requirements.txt, requirements-frozen.txt}` for [`APPS`], frozen on
    /// the 1.0.0 versions of [`PackageIndex`], each app tagged
    /// `<app>-<YYYYMMDD.N>` at its version in the chart's values file.
    /// Branch `master`.
    pub apps: GitRemote,
    /// `swh-charts.git`: `swh/Chart.yaml` (`appVersion:`
    /// [`CHART_APP_VERSION`]), `swh/values.yaml`, `swh/values/...`, a
    /// template (`helm template` renders every image reference), and the root
    /// `values-swh-application-versions.yaml` (the real files of
    /// `shared/data/swh-charts/`, copied in `testbed/assets/swh-charts/`);
    /// branches [`CHART_BRANCHES`] on the same commit, `HEAD` ->
    /// `production`.
    pub charts: GitRemote,
}

/// Fixed identity and dates: the remotes are the same on every run.
const GIT_NAME: &str = "Software Heritage developers";
const GIT_EMAIL: &str = "swh-devel@inria.fr";

/// The real swh-charts files (copies of `shared/data/swh-charts/`, kept in
/// `testbed/assets/swh-charts/`).
fn swh_charts_file(name: &str) -> Result<&'static str> {
    Ok(match name {
        "Chart.yaml" => include_str!("../assets/swh-charts/Chart.yaml"),
        "values-default.yaml" => include_str!("../assets/swh-charts/values-default.yaml"),
        "values-production-default.yaml" => {
            include_str!("../assets/swh-charts/values-production-default.yaml")
        }
        "values-swh-application-versions.yaml" => {
            include_str!("../assets/swh-charts/values-swh-application-versions.yaml")
        }
        _ => bail!("no swh-charts asset {name}"),
    })
}

/// Runs git with a clean, fixed environment; returns stdout.
fn git(dir: &Path, args: &[&str], date: &str) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", GIT_NAME)
        .env("GIT_AUTHOR_EMAIL", GIT_EMAIL)
        .env("GIT_COMMITTER_NAME", GIT_NAME)
        .env("GIT_COMMITTER_EMAIL", GIT_EMAIL)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run git {args:?} in {}", dir.display()))?;
    if !out.status.success() {
        bail!(
            "git {:?} in {} failed ({}): {}",
            args,
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `files` (relative path, content, executable) under `root`.
fn write_tree(root: &Path, files: &[(String, String, bool)]) -> Result<()> {
    for (rel, content, exec) in files {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
        fs::set_permissions(
            &p,
            fs::Permissions::from_mode(if *exec { 0o755 } else { 0o644 }),
        )?;
    }
    Ok(())
}

/// A work tree that commits with fixed dates and pushes to a bare remote.
struct Work {
    dir: PathBuf,
}

impl Work {
    fn new(root: &Path, name: &str, branch: &str) -> Result<Work> {
        let dir = root.join(name);
        fs::create_dir_all(&dir)?;
        git(&dir, &["init", "-q", "-b", branch], "2025-01-01T00:00:00Z")?;
        Ok(Work { dir })
    }

    fn commit(&self, files: &[(String, String, bool)], message: &str, date: &str) -> Result<()> {
        write_tree(&self.dir, files)?;
        git(&self.dir, &["add", "-A"], date)?;
        git(&self.dir, &["commit", "-q", "-m", message], date)?;
        Ok(())
    }

    fn tag(&self, tag: &str, message: &str, date: &str) -> Result<()> {
        git(&self.dir, &["tag", "-a", tag, "-m", message], date)?;
        Ok(())
    }
}

impl GitRemotes {
    /// Creates the three bare repositories in `dir` (which must not hold
    /// them yet). Deterministic: the same commits on every run.
    pub fn create(dir: &Path) -> Result<GitRemotes> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        for name in [MODULE_REPO, "swh-apps", "swh-charts"] {
            let p = dir.join(format!("{name}.git"));
            ensure!(
                !p.exists(),
                "git remote {} already exists: give GitRemotes::create an empty directory",
                p.display()
            );
        }
        let scratch = dir.join(".work");
        if scratch.exists() {
            fs::remove_dir_all(&scratch)?;
        }
        fs::create_dir_all(&scratch)?;
        let result = (|| -> Result<GitRemotes> {
            let module = make_module(&dir, &scratch)?;
            let apps = make_apps(&dir, &scratch)?;
            let charts = make_charts(&dir, &scratch)?;
            Ok(GitRemotes {
                dir: dir.clone(),
                module,
                apps,
                charts,
            })
        })();
        let _ = fs::remove_dir_all(&scratch);
        result
    }
}

/// Pushes the work tree's branches and tags into a new bare repository.
fn publish(
    dir: &Path,
    work: &Work,
    name: &str,
    branches: &[&str],
    head: &str,
) -> Result<GitRemote> {
    let path = dir.join(format!("{name}.git"));
    git(
        dir,
        &["init", "-q", "--bare", "-b", head, utf8_path(&path)?],
        "2025-01-01T00:00:00Z",
    )?;
    let mut args = vec!["push", "-q", utf8_path(&path)?];
    let refspecs: Vec<String> = branches
        .iter()
        .map(|b| format!("refs/heads/{b}:refs/heads/{b}"))
        .collect();
    args.extend(refspecs.iter().map(String::as_str));
    args.push("refs/tags/*:refs/tags/*");
    git(&work.dir, &args, "2025-01-01T00:00:00Z")?;
    // As GitLab: pushes may carry options (`-o merge_request.create`).
    git(
        &path,
        &["config", "receive.advertisePushOptions", "true"],
        "2025-01-01T00:00:00Z",
    )?;
    Ok(GitRemote {
        url: format!("file://{}", utf8_path(&path)?),
        path,
        default_branch: head.to_string(),
    })
}

fn f(path: &str, content: impl Into<String>) -> (String, String, bool) {
    (path.to_string(), content.into(), false)
}

fn x(path: &str, content: impl Into<String>) -> (String, String, bool) {
    (path.to_string(), content.into(), true)
}

fn make_module(dir: &Path, scratch: &Path) -> Result<GitRemote> {
    let work = Work::new(scratch, MODULE_REPO, "master")?;
    let pyproject = r#"[project]
name = "swh.loader.git"
authors = [
    {name="Software Heritage developers", email="swh-devel@inria.fr"},
]
description = "Software Heritage git loader"
readme = {file = "README.md", content-type = "text/markdown"}
requires-python = ">=3.9"
classifiers = [
    "Programming Language :: Python :: 3",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)",
    "Operating System :: OS Independent",
]
dynamic = ["version", "dependencies"]

[project.urls]
"Homepage" = "https://gitlab.softwareheritage.org/swh/devel/swh-loader-git"

[tool.setuptools.packages.find]
include = ["swh.*"]

[tool.setuptools.dynamic]
dependencies = {file = ["requirements.txt", "requirements-swh.txt"]}

[build-system]
requires = ["setuptools", "setuptools-scm"]
build-backend = "setuptools.build_meta"

[tool.setuptools_scm]
fallback_version = "0.0.1"
"#;
    let loader = |body: &str| {
        format!(
            "# Copyright (C) 2015-2025  The Software Heritage developers\n\
             # License: GNU General Public License version 3, or any later version\n\n\
             \"\"\"Git loader (swh-deploy test bed module).\"\"\"\n\n{body}"
        )
    };
    work.commit(
        &[
            f(
                "README.md",
                "swh-loader-git\n==============\n\nThe Software Heritage git loader (swh-deploy test bed copy).\n",
            ),
            f("pyproject.toml", pyproject),
            f("requirements.txt", "dulwich >= 0.21\n"),
            f("requirements-swh.txt", "swh.core >= 1.0.0\nswh.model >= 1.0.0\nswh.storage >= 1.0.0\n"),
            f(".gitignore", "*.egg-info/\n__pycache__/\nbuild/\ndist/\n"),
            f("swh/__init__.py", ""),
            f("swh/loader/__init__.py", ""),
            f("swh/loader/git/__init__.py", ""),
            f(
                "swh/loader/git/loader.py",
                loader("class GitLoader:\n    def load(self, url):\n        return {\"status\": \"eventful\", \"url\": url}\n"),
            ),
        ],
        "Initial import",
        "2025-01-06T10:00:00Z",
    )?;
    work.tag("v1.0.0", "v1.0.0", "2025-01-06T10:05:00Z")?;
    work.commit(
        &[f(
            "swh/loader/git/loader.py",
            loader("class GitLoader:\n    def load(self, url, incremental=True):\n        return {\"status\": \"eventful\", \"url\": url, \"incremental\": incremental}\n"),
        )],
        "loader: Fetch packfiles incrementally",
        "2025-01-13T10:00:00Z",
    )?;
    work.tag("v1.1.0", "v1.1.0", "2025-01-13T10:05:00Z")?;
    work.commit(
        &[f(
            "swh/loader/git/loader.py",
            loader("class GitLoader:\n    def load(self, url, incremental=True, shallow=False):\n        return {\"status\": \"eventful\", \"url\": url, \"incremental\": incremental, \"shallow\": shallow}\n"),
        )],
        "loader: Handle shallow clones",
        "2025-01-16T10:00:00Z",
    )?;
    publish(dir, &work, MODULE_REPO, &["master"], "master")
}

/// `uv pip compile`-style frozen requirements of `dist` at version 1.0.0 of
/// every test bed distribution.
fn frozen_requirements(app: &str, dist: &str) -> String {
    let mut pins: Vec<(String, Vec<String>)> = Vec::new();
    fn visit(dist: &str, via: &str, pins: &mut Vec<(String, Vec<String>)>) {
        let name = normalize(dist);
        if let Some((_, vias)) = pins.iter_mut().find(|(n, _)| *n == name) {
            if !vias.iter().any(|v| v == via) {
                vias.push(via.to_string());
            }
            return;
        }
        pins.push((name.clone(), vec![via.to_string()]));
        if let Some((_, deps)) = INDEX_DISTS.iter().find(|(d, _)| *d == dist) {
            for dep in *deps {
                visit(dep, &name, pins);
            }
        }
    }
    let req = format!("apps/{app}/requirements.txt");
    visit(dist, &format!("-r {req}"), &mut pins);
    pins.sort();
    let mut out = format!(
        "# This file was autogenerated by uv via the following command:\n\
         #    uv pip compile {req} -o apps/{app}/requirements-frozen.txt\n"
    );
    for (name, mut vias) in pins {
        vias.sort();
        let _ = writeln!(out, "{name}==1.0.0");
        if vias.len() == 1 {
            let _ = writeln!(out, "    # via {}", vias[0]);
        } else {
            out.push_str("    # via\n");
            for v in vias {
                let _ = writeln!(out, "    #   {v}");
            }
        }
    }
    out
}

fn make_apps(dir: &Path, scratch: &Path) -> Result<GitRemote> {
    let work = Work::new(scratch, "swh-apps", "master")?;
    let versions = swh_charts_file("values-swh-application-versions.yaml")?;
    let mut files = vec![f(
        "README.md",
        "swh-apps\n========\n\nSoftware Heritage applications: one directory per image under `apps/` (swh-deploy test bed copy).\n",
    )];
    files.push(f(
        &format!("apps/{BASE_APP}/Dockerfile"),
        SWH_BASE_DOCKERFILE,
    ));
    for (app, dist) in APPS {
        files.push(f(
            &format!("apps/{app}/Dockerfile"),
            python_app_dockerfile(app),
        ));
        files.push(x(
            &format!("apps/{app}/entrypoint.sh"),
            format!(
                "#!/bin/bash\n\nset -e\n\ncase \"$1\" in\n  \"shell\")\n    exec bash -i\n    ;;\n  *)\n    echo \"Starting {app}\"\n    exec swh {} \"$@\"\n    ;;\nesac\n",
                dist.trim_start_matches("swh.").replace('.', " ")
            ),
        ));
        files.push(f(
            &format!("apps/{app}/requirements.txt"),
            format!("{dist}\n"),
        ));
    }
    work.commit(
        &files,
        "Add swh-base, swh-lister, swh-loader-git and swh-storage apps",
        "2025-01-10T09:00:00Z",
    )?;
    // swh-base, image-only: tagged as built, no build commit.
    let base_tag = format!("{BASE_APP}-{BASE_APP_VERSION}");
    work.tag(
        &base_tag,
        &format!("{base_tag}: Bump new release"),
        "2025-01-10T09:30:00Z",
    )?;
    // One build commit (writing requirements-frozen.txt) and release tag per
    // app, at the version the chart's values file has for it.
    let mut releases: Vec<(String, &str, &str)> = Vec::new();
    for (app, dist) in APPS {
        let key = format!("{}_image_version:", app.replace('-', "_"));
        let version = versions
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .map(|v| v.trim().trim_matches('\'').to_string())
            .with_context(|| format!("no {key} in values-swh-application-versions.yaml"))?;
        releases.push((version, app, dist));
    }
    releases.sort();
    for (version, app, dist) in releases {
        let tag = format!("{app}-{version}");
        let date = format!(
            "{}-{}-{}T12:00:00Z",
            &version[0..4],
            &version[4..6],
            &version[6..8]
        );
        work.commit(
            &[f(
                &format!("apps/{app}/requirements-frozen.txt"),
                frozen_requirements(app, dist),
            )],
            &format!("{tag}: Build image"),
            &date,
        )?;
        work.tag(&tag, &format!("{tag}: Bump new release"), &date)?;
    }
    publish(dir, &work, "swh-apps", &["master"], "master")
}

fn make_charts(dir: &Path, scratch: &Path) -> Result<GitRemote> {
    let read = swh_charts_file;
    let chart = read("Chart.yaml")?;
    ensure!(
        chart.contains(&format!("appVersion: {CHART_APP_VERSION}")),
        "assets/swh-charts/Chart.yaml: expected appVersion: {CHART_APP_VERSION}"
    );
    let work = Work::new(scratch, "swh-charts", "production")?;
    let template = "{{- /* swh-deploy test bed: one ConfigMap listing the image of every app,\n     \
                    so that `helm template` shows what a values change deploys. */ -}}\n\
                    apiVersion: v1\n\
                    kind: ConfigMap\n\
                    metadata:\n  name: swh-application-versions\n  namespace: {{ .Values.namespace }}\n\
                    data:\n\
                    {{- range $key, $value := .Values }}\n\
                    {{- if and (kindIs \"string\" $value) (hasSuffix \"_image\" $key) }}\n  \
                    {{ $key }}: {{ printf \"%s:%s\" $value (index $.Values (printf \"%s_version\" $key)) | quote }}\n\
                    {{- end }}\n\
                    {{- end }}\n";
    work.commit(
        &[
            f("README.md", "swh-charts\n==========\n\nHelm chart of the Software Heritage stack (swh-deploy test bed copy).\n"),
            f("swh/Chart.yaml", chart),
            f(
                "swh/values.yaml",
                "# Default values of the swh chart (swh-deploy test bed copy; the real\n\
                 # file is much longer). Environments override them with\n\
                 # values/<env>/*.yaml and ../values-swh-application-versions.yaml.\n\
                 namespace: swh\n",
            ),
            f("swh/values/default.yaml", read("values-default.yaml")?),
            f("swh/values/production/default.yaml", read("values-production-default.yaml")?),
            f("swh/values/production/swh-cassandra.yaml", "# swh-cassandra namespace in production\nnamespace: swh-cassandra\n"),
            f("swh/values/staging/default.yaml", "environment: staging\nsentry:\n  environment: staging\n"),
            f("swh/values/staging/next-version.yaml", "# swh-cassandra-next-version namespace in staging\nnamespace: swh-cassandra-next-version\n"),
            f("swh/templates/application-versions.yaml", template),
            f("values-swh-application-versions.yaml", read("values-swh-application-versions.yaml")?),
        ],
        &format!("v{CHART_APP_VERSION}: Release swh.loader.git v1.0.0"),
        "2025-01-17T14:00:00Z",
    )?;
    for b in CHART_BRANCHES {
        if *b != "production" {
            git(&work.dir, &["branch", b], "2025-01-17T14:00:00Z")?;
        }
    }
    publish(dir, &work, "swh-charts", CHART_BRANCHES, "production")
}

// ---------------------------------------------------------------------------
// Package index

/// Distributions of the [`PackageIndex`] and the distributions each one
/// requires (`Requires-Dist: <dep> >= 1.0.0`).
pub const INDEX_DISTS: &[(&str, &[&str])] = &[
    ("swh.core", &[]),
    ("swh.model", &["swh.core"]),
    ("swh.storage", &["swh.core", "swh.model"]),
    ("swh.lister", &["swh.core"]),
    ("swh.loader.git", &["swh.core", "swh.model", "swh.storage"]),
];
/// Versions of every distribution in a new [`PackageIndex`], oldest first.
pub const INDEX_VERSIONS: &[&str] = &["1.0.0", "1.1.0"];

/// PEP 503 normalized name: `swh.loader.git` -> `swh-loader-git`.
pub fn normalize(dist: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in dist.chars() {
        if c == '-' || c == '_' || c == '.' {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A PyPI-style simple index on `127.0.0.1` (busybox httpd); stopped on
/// drop. Layout: `<dir>/simple/index.html`,
/// `<dir>/simple/<normalized name>/index.html`, `<dir>/files/<wheel>` and
/// `<dir>/files/<wheel>.metadata` (PEP 658).
#[derive(Debug)]
pub struct PackageIndex {
    server: StaticHttp,
    dir: PathBuf,
}

impl PackageIndex {
    /// Writes wheels of every [`INDEX_DISTS`] distribution at every
    /// [`INDEX_VERSIONS`] version in `dir` (created if missing), then serves
    /// it; returns once it answers.
    pub fn start(dir: &Path) -> Result<PackageIndex> {
        fs::create_dir_all(dir.join("files"))
            .with_context(|| format!("creating {}", dir.display()))?;
        fs::create_dir_all(dir.join("simple"))?;
        let dir = dir.canonicalize()?;
        for (dist, deps) in INDEX_DISTS {
            for v in INDEX_VERSIONS {
                let requires: Vec<String> = deps.iter().map(|d| format!("{d}>=1.0.0")).collect();
                let requires: Vec<&str> = requires.iter().map(String::as_str).collect();
                write_wheel(&dir.join("files"), dist, v, &requires)?;
            }
        }
        write_simple_index(&dir)?;
        let server = StaticHttp::start(&dir, IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        Ok(PackageIndex { server, dir })
    }

    /// Publishes one more wheel (a new release appearing on the index, as
    /// after CI's upload) and rewrites the index pages. `requires` are PEP 508
    /// requirement strings such as `swh.core>=1.0.0`. Returns the wheel's
    /// path.
    pub fn publish(&self, dist: &str, version: &str, requires: &[&str]) -> Result<PathBuf> {
        let wheel = write_wheel(&self.dir.join("files"), dist, version, requires)?;
        write_simple_index(&self.dir)?;
        Ok(wheel)
    }

    /// The index URL for `uv pip compile --index-url` / `pip --index-url`:
    /// `http://127.0.0.1:PORT/simple/`.
    pub fn url(&self) -> String {
        format!("{}/simple/", self.server.url())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every `(normalized name, version)` the index holds, sorted.
    pub fn packages(&self) -> Result<Vec<(String, String)>> {
        Ok(list_wheels(&self.dir.join("files"))?
            .into_iter()
            .map(|w| (normalize(&w.dist), w.version))
            .collect())
    }

    /// Stops the server (also done on drop); files are kept.
    pub fn stop(self) -> Result<()> {
        self.server.stop()
    }
}

/// A wheel found in the files directory.
struct WheelFile {
    file: String,
    dist: String,
    version: String,
}

fn list_wheels(files: &Path) -> Result<Vec<WheelFile>> {
    let mut out = Vec::new();
    for e in fs::read_dir(files).with_context(|| format!("reading {}", files.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix("-py3-none-any.whl") else {
            continue;
        };
        let Some((dist, version)) = stem.split_once('-') else {
            continue;
        };
        out.push(WheelFile {
            file: name.clone(),
            dist: dist.to_string(),
            version: version.to_string(),
        });
    }
    out.sort_by(|a, b| (normalize(&a.dist), &a.version).cmp(&(normalize(&b.dist), &b.version)));
    Ok(out)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn write_simple_index(dir: &Path) -> Result<()> {
    let files = dir.join("files");
    let wheels = list_wheels(&files)?;
    let mut projects: Vec<String> = wheels.iter().map(|w| normalize(&w.dist)).collect();
    projects.dedup();
    let mut root = String::from(
        "<!DOCTYPE html>\n<html>\n<head><meta name=\"pypi:repository-version\" content=\"1.0\"><title>Simple index</title></head>\n<body>\n",
    );
    for p in &projects {
        let _ = writeln!(root, "<a href=\"{p}/\">{p}</a><br/>");
    }
    root.push_str("</body>\n</html>\n");
    for p in &projects {
        let mut page = format!(
            "<!DOCTYPE html>\n<html>\n<head><meta name=\"pypi:repository-version\" content=\"1.0\"><title>Links for {p}</title></head>\n<body>\n<h1>Links for {p}</h1>\n"
        );
        for w in wheels.iter().filter(|w| normalize(&w.dist) == *p) {
            let data = fs::read(files.join(&w.file))?;
            let meta = fs::read(files.join(format!("{}.metadata", w.file)))?;
            let _ = writeln!(
                page,
                "<a href=\"../../files/{file}#sha256={sha}\" data-requires-python=\"{rp}\" data-dist-info-metadata=\"sha256={msha}\" data-core-metadata=\"sha256={msha}\">{file}</a><br/>",
                file = w.file,
                sha = crate_hex(&Sha256::digest(&data)),
                rp = html_escape(">=3.9"),
                msha = crate_hex(&Sha256::digest(&meta)),
            );
        }
        page.push_str("</body>\n</html>\n");
        let pdir = dir.join("simple").join(p);
        fs::create_dir_all(&pdir)?;
        write_atomic(&pdir.join("index.html"), page.as_bytes(), 0o644)?;
    }
    write_atomic(&dir.join("simple/index.html"), root.as_bytes(), 0o644)
}

fn crate_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Checks a distribution name / version for use in a wheel file name.
fn validate_dist(dist: &str, version: &str) -> Result<()> {
    ensure!(
        !dist.is_empty()
            && dist
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "invalid distribution name {dist:?}"
    );
    ensure!(
        !version.is_empty()
            && version.as_bytes()[0].is_ascii_digit()
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+!".contains(&b)),
        "invalid version {version:?} of {dist}"
    );
    Ok(())
}

/// Writes `<files>/<dist>-<version>-py3-none-any.whl` (a real wheel:
/// zip with the package, `METADATA`, `WHEEL`, `RECORD`) and its PEP 658
/// `.metadata` file; returns the wheel's path.
fn write_wheel(files: &Path, dist: &str, version: &str, requires: &[&str]) -> Result<PathBuf> {
    validate_dist(dist, version)?;
    for r in requires {
        ensure!(
            !r.contains('\n'),
            "invalid requirement {r:?} of {dist} {version}"
        );
    }
    let escaped = normalize(dist).replace('-', "_");
    let file = format!("{escaped}-{version}-py3-none-any.whl");
    let info = format!("{escaped}-{version}.dist-info");
    let mut metadata = format!(
        "Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n\
         Summary: {dist} (swh-deploy test bed package)\n\
         Author-email: Software Heritage developers <swh-devel@inria.fr>\n\
         License: GPL-3.0-or-later\nRequires-Python: >=3.9\n"
    );
    for r in requires {
        let _ = writeln!(metadata, "Requires-Dist: {r}");
    }
    let module_path = dist.replace(['.', '-'], "/");
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    // Namespace packages: swh/ has no __init__.py in the real wheels either.
    entries.push((
        format!("{module_path}/__init__.py"),
        format!("__version__ = \"{version}\"\n").into_bytes(),
    ));
    entries.push((format!("{info}/METADATA"), metadata.clone().into_bytes()));
    entries.push((
        format!("{info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: swh-deploy-testbed\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
    ));
    entries.push((
        format!("{info}/top_level.txt"),
        format!("{}\n", module_path.split('/').next().unwrap_or("swh")).into_bytes(),
    ));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut record = String::new();
    for (name, data) in &entries {
        let _ = writeln!(
            record,
            "{name},sha256={},{}",
            b64.encode(Sha256::digest(data)),
            data.len()
        );
    }
    let _ = writeln!(record, "{info}/RECORD,,");
    entries.push((format!("{info}/RECORD"), record.into_bytes()));
    let path = files.join(&file);
    write_atomic(&path, &zip_stored(&entries)?, 0o644)?;
    write_atomic(
        &files.join(format!("{file}.metadata")),
        metadata.as_bytes(),
        0o644,
    )?;
    Ok(path)
}

/// A zip archive of `entries`, stored (no compression), every entry dated
/// 1980-01-01 00:00 and mode 0644 (deterministic bytes).
fn zip_stored(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, data) in entries {
        zip.start_file(name.as_str(), options)
            .with_context(|| format!("zip entry {name}"))?;
        zip.write_all(data)
            .with_context(|| format!("zip entry {name}"))?;
    }
    Ok(zip
        .finish()
        .context("finishing the zip archive")?
        .into_inner())
}

// ---------------------------------------------------------------------------
// A tiny OCI image

/// Media type of an OCI image manifest.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Writes in `dir` an OCI image layout (`oci-layout`, `index.json`,
/// `blobs/sha256/...`) holding one tiny image tagged `tag`: one
/// gzip layer with `/etc/swh-testbed-image` containing `content`,
/// for `skopeo copy oci:DIR:TAG docker://REGISTRY/NAME:TAG
/// --dest-tls-verify=false`. Returns the manifest digest (`sha256:...`).
pub fn write_oci_layout(dir: &Path, tag: &str, content: &str) -> Result<String> {
    ensure!(
        !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "invalid image tag {tag:?}"
    );
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    let put = |data: &[u8]| -> Result<(String, usize)> {
        let hex = crate_hex(&Sha256::digest(data));
        write_atomic(&blobs.join(&hex), data, 0o644)?;
        Ok((format!("sha256:{hex}"), data.len()))
    };
    let tar = tar_one_file("etc/swh-testbed-image", content.as_bytes())?;
    let diff_id = format!("sha256:{}", crate_hex(&Sha256::digest(&tar)));
    // Compressed like real layers, so that registries and skopeo keep the
    // manifest (and its digest) as is.
    let (layer_digest, layer_size) = put(&gzip(&tar)?)?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2025-01-17T00:00:00Z",
        "config": {"Labels": {"org.opencontainers.image.title": "swh-deploy-testbed"}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [],
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config)?)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest)?)?;
    let layout = serde_json::json!({"imageLayoutVersion": "1.0.0"});
    write_atomic(
        &dir.join("oci-layout"),
        &serde_json::to_vec(&layout)?,
        0o644,
    )?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    write_atomic(&dir.join("index.json"), &serde_json::to_vec(&index)?, 0o644)?;
    Ok(manifest_digest)
}

/// A POSIX ustar archive with one regular file (mode 0644, root, mtime 0).
fn tar_one_file(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(name)
        .with_context(|| format!("tar entry {name}"))?;
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append(&header, data)
        .with_context(|| format!("tar entry {name}"))?;
    tar.into_inner().context("finishing the tar archive")
}

/// `data` gzip-compressed, deterministically (no file name, mtime 0).
pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).context("gzip")?;
    gz.finish().context("gzip")
}

/// Writes a private containers configuration for buildah in `dir`
/// (`storage.conf` with the vfs driver and storage under `dir/containers`,
/// `registries.conf` without search registries, an empty `auth.json`) and
/// returns the environment that points buildah and skopeo at it.
pub fn write_containers_config(dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    fs::create_dir_all(dir)?;
    let storage = dir.join("storage.conf");
    fs::write(
        &storage,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.join("containers/storage").display(),
            dir.join("containers/run").display()
        ),
    )?;
    let registries = dir.join("registries.conf");
    fs::write(&registries, "unqualified-search-registries = []\n")?;
    let auth = dir.join("auth.json");
    fs::write(&auth, "{\"auths\": {}}\n")?;
    Ok(vec![
        ("CONTAINERS_STORAGE_CONF", storage),
        ("CONTAINERS_REGISTRIES_CONF", registries),
        ("REGISTRY_AUTH_FILE", auth),
        ("BUILDAH_ISOLATION", PathBuf::from("chroot")),
    ])
}

// ---------------------------------------------------------------------------
// Real images: a Debian base image with Python, from debootstrap

/// Packages of [`python_base_image`] on top of debootstrap's minbase: the
/// Python of Debian bookworm (3.11, the version SWH's images run) with
/// `venv` (and the pip wheel it bootstraps), as the `python:3.11-bookworm`
/// image that the real swh-base builds FROM.
pub const PYTHON_IMAGE_PACKAGES: &[&str] = &["python3", "python3-venv", "ca-certificates"];

/// Bumped whenever [`python_base_image`]'s recipe changes (part of its
/// cache key).
const PYTHON_IMAGE_VERSION: u32 = 1;

/// An OCI archive of a Debian bookworm image with Python 3.11 and venv
/// (`debootstrap --variant=minbase --include=`[`PYTHON_IMAGE_PACKAGES`]
/// from the machine's Debian mirror, apt lists and caches removed, imported
/// `FROM scratch` with `ADD rootfs.tar /`), built once per machine and
/// cached as `/var/cache/swh-deploy-testbed/image-python-<key>.tar` (the
/// key hashes suite, mirror, packages and recipe; a build happens under a
/// lock and is renamed into place). `containers` is the buildah environment
/// ([`write_containers_config`]). Returns the archive's path and whether it
/// was built now (about 1-2 minutes) rather than taken from the cache.
pub fn python_base_image(containers: &[(&'static str, PathBuf)]) -> Result<(PathBuf, bool)> {
    let mirror = crate::golden::machine_mirror()?;
    let mut h = crate::util::fnv64(b"swh-deploy-testbed python image", 0);
    for part in [crate::golden::SUITE, mirror.as_str()]
        .into_iter()
        .chain(PYTHON_IMAGE_PACKAGES.iter().copied())
    {
        h = crate::util::fnv64(part.as_bytes(), h);
        h = crate::util::fnv64(b"\0", h);
    }
    h = crate::util::fnv64(&PYTHON_IMAGE_VERSION.to_le_bytes(), h);
    let cache = Path::new(crate::golden::CACHE_DIR);
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let archive = cache.join(format!("image-python-{h:016x}.tar"));
    if archive.is_file() {
        return Ok((archive, false));
    }
    let _lock =
        crate::util::Lock::acquire(&cache.join("image-python.lock"), Duration::from_secs(1200))?;
    if archive.is_file() {
        return Ok((archive, false));
    }
    let work = cache.join(format!("image-python-{h:016x}.tmp"));
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let root = work.join("rootfs");
    fs::create_dir_all(&root)?;
    let result = (|| -> Result<()> {
        let log = work.join("debootstrap.log");
        let logf = fs::File::create(&log)?;
        let mut c = Command::new("debootstrap");
        c.arg("--variant=minbase")
            .arg(format!("--include={}", PYTHON_IMAGE_PACKAGES.join(",")))
            .arg(crate::golden::SUITE)
            .arg(&root)
            .arg(&mirror)
            .stdout(logf.try_clone()?)
            .stderr(logf);
        let status = c.status().context("cannot run debootstrap")?;
        ensure!(
            status.success(),
            "debootstrap of the python image failed ({status}): {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        // No apt lists or caches in the image, no device nodes (the
        // container runtime provides /dev).
        for d in ["var/lib/apt/lists", "var/cache/apt", "dev"] {
            let p = root.join(d);
            if p.exists() {
                fs::remove_dir_all(&p)?;
            }
            fs::create_dir_all(&p)?;
        }
        crate::util::run(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .args(["--numeric-owner", "-cf"])
                .arg(work.join("rootfs.tar"))
                .arg("."),
        )?;
        fs::remove_dir_all(&root)?;
        fs::write(
            work.join("Containerfile"),
            "FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8\nCMD [\"python3\"]\n",
        )?;
        let name = format!("localhost/swh-testbed-python-{h:016x}");
        crate::util::run(
            Command::new("buildah")
                .envs(containers.iter().cloned())
                .args(["build", "-q", "-f"])
                .arg(work.join("Containerfile"))
                .args(["-t", &name])
                .arg(&work),
        )?;
        let tmp_archive = work.join("image.tar");
        let pushed = crate::util::run(
            Command::new("buildah")
                .envs(containers.iter().cloned())
                .args(["push", "-q", &name])
                .arg(format!("oci-archive:{}", tmp_archive.display())),
        );
        let _ = Command::new("buildah")
            .envs(containers.iter().cloned())
            .args(["rmi", &name])
            .output();
        pushed?;
        fs::rename(&tmp_archive, &archive)
            .with_context(|| format!("renaming {} into place", archive.display()))?;
        Ok(())
    })();
    let _ = fs::remove_dir_all(&work);
    result.map(|()| (archive, true))
}

/// Pushes the image of an OCI archive (e.g. [`python_base_image`]) to
/// `registry` as `name:tag` (`skopeo copy`, plain HTTP).
pub fn push_archive(archive: &Path, registry: &Registry, name: &str, tag: &str) -> Result<()> {
    crate::util::run(
        Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{name}:{tag}", registry.host())),
    )?;
    Ok(())
}

/// What [`AppBaseImages::push`] did, with its timings.
#[derive(Debug, Clone)]
pub struct AppBaseImages {
    /// `HOST/PREFIX/python:3.11-bookworm`.
    pub python: String,
    /// `HOST/PREFIX/base:VERSION` (also pushed as `latest`).
    pub base: String,
    /// Whether [`python_base_image`] built the Debian image now (cold
    /// cache) rather than taking it from the machine's cache.
    pub python_built: bool,
    /// Whether the uv image was built now rather than taken from the cache.
    pub uv_built: bool,
    /// Whether `swh-base` was built now rather than taken from the cache.
    pub base_built: bool,
    /// Seconds spent on the Python image (build or cache, then push).
    pub python_seconds: f64,
    /// Seconds spent on the uv image (build or cache, then push).
    pub uv_seconds: f64,
    /// Seconds spent on `swh-base` (build or cache, then push).
    pub base_seconds: f64,
}

/// Bumped whenever the recipe of the cached uv and swh-base archives of
/// [`AppBaseImages::push`] changes (part of their cache keys).
const APP_IMAGES_VERSION: u32 = 1;

/// The OCI archive `CACHE_DIR/image-<name>-<key>.tar`, made by `build`
/// (given a temporary archive path to write) when absent, under a lock.
/// Returns its path and whether it was built now.
fn cached_archive(
    name: &str,
    key: u64,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<(PathBuf, bool)> {
    let cache = Path::new(crate::golden::CACHE_DIR);
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let archive = cache.join(format!("image-{name}-{key:016x}.tar"));
    if archive.is_file() {
        return Ok((archive, false));
    }
    let _lock = crate::util::Lock::acquire(
        &cache.join(format!("image-{name}.lock")),
        Duration::from_secs(1200),
    )?;
    if archive.is_file() {
        return Ok((archive, false));
    }
    let tmp = cache.join(format!("image-{name}-{key:016x}.tar.tmp"));
    let _ = fs::remove_file(&tmp);
    let built = build(&tmp);
    if let Err(e) = built {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &archive)
        .with_context(|| format!("renaming {} into place", archive.display()))?;
    Ok((archive, true))
}

impl AppBaseImages {
    /// Pushes to `registry` under [`APPS_PREFIX`] what the apps of the
    /// swh-apps checkout `apps` build FROM, as the real ones find it on
    /// Docker Hub, ghcr.io and SWH's registry:
    ///
    /// * [`PYTHON_IMAGE`]: [`python_base_image`] (cached per machine);
    /// * [`UV_IMAGE`]: the `uv` binary alone (`FROM scratch`);
    /// * `base:`[`BASE_APP_VERSION`] and `base:latest`: [`BASE_APP`] built
    ///   with buildah from the checkout's `apps/swh-base/` as `swh-deploy
    ///   app build swh-base` builds it (build argument `REGISTRY`).
    ///
    /// The uv and swh-base images are cached per machine as OCI archives
    /// in `/var/cache/swh-deploy-testbed/` like the Python image, keyed by
    /// their inputs (uv's version and size; the Python archive, swh-base's
    /// Dockerfile and uv's key), so that a second run only pushes. The
    /// Python and swh-base images are pushed with the test bed's package
    /// index in their configuration (`UV_INDEX_URL`, `PIP_INDEX_URL` =
    /// `index_url`, as a site's mirror; layers unchanged), which is where
    /// the apps' `uv pip sync` installs from during their builds.
    ///
    /// `containers` is the buildah environment ([`write_containers_config`]);
    /// `scratch` (created) holds build contexts and OCI layouts meanwhile.
    pub fn push(
        registry: &Registry,
        index_url: &str,
        apps: &Path,
        uv: &Path,
        containers: &[(&'static str, PathBuf)],
        scratch: &Path,
    ) -> Result<AppBaseImages> {
        fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
        let prefix = format!("{}/{APPS_PREFIX}", registry.host());
        let buildah = || {
            let mut c = Command::new("buildah");
            c.envs(containers.iter().cloned());
            c
        };
        let index_env = [("UV_INDEX_URL", index_url), ("PIP_INDEX_URL", index_url)];
        // An OCI archive pushed as `refs`, with the index in its config.
        let push_with_index = |archive: &Path, refs: &[&str]| -> Result<()> {
            let layout = scratch.join("oci");
            if layout.exists() {
                fs::remove_dir_all(&layout)?;
            }
            crate::util::run(
                Command::new("skopeo")
                    .args(["copy", "-q"])
                    .arg(format!("oci-archive:{}", archive.display()))
                    .arg(format!("oci:{}:push", layout.display())),
            )?;
            add_oci_env(&layout, &index_env)?;
            for r in refs {
                crate::util::run(
                    Command::new("skopeo")
                        .args(["copy", "-q", "--dest-tls-verify=false"])
                        .arg(format!("oci:{}:push", layout.display()))
                        .arg(format!("docker://{r}")),
                )?;
            }
            fs::remove_dir_all(&layout)?;
            Ok(())
        };

        let t = Instant::now();
        let (python_archive, python_built) = python_base_image(containers)?;
        let python = format!("{prefix}/{PYTHON_IMAGE}");
        push_with_index(&python_archive, &[&python])?;
        let python_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let uv_version = crate::util::run(Command::new(uv).arg("--version"))?;
        let uv_size = fs::metadata(uv)
            .with_context(|| format!("reading {}", uv.display()))?
            .len();
        let mut uv_key = crate::util::fnv64(b"swh-deploy-testbed uv image", 0);
        uv_key = crate::util::fnv64(uv_version.trim().as_bytes(), uv_key);
        uv_key = crate::util::fnv64(&uv_size.to_le_bytes(), uv_key);
        uv_key = crate::util::fnv64(&APP_IMAGES_VERSION.to_le_bytes(), uv_key);
        let uv_image = format!("{prefix}/{UV_IMAGE}");
        let (uv_archive, uv_built) = cached_archive("uv", uv_key, |tmp| {
            let ctx = scratch.join("uv-image");
            fs::create_dir_all(&ctx)?;
            fs::copy(uv, ctx.join("uv"))
                .with_context(|| format!("copying {} into the uv image", uv.display()))?;
            fs::set_permissions(ctx.join("uv"), fs::Permissions::from_mode(0o755))?;
            fs::write(ctx.join("Containerfile"), "FROM scratch\nCOPY uv /uv\n")?;
            let name = format!("localhost/swh-testbed-uv-{uv_key:016x}");
            crate::util::run(
                buildah()
                    .args(["build", "-q", "-f"])
                    .arg(ctx.join("Containerfile"))
                    .args(["-t", &name])
                    .arg(&ctx),
            )?;
            let pushed = crate::util::run(
                buildah()
                    .args(["push", "-q", &name])
                    .arg(format!("oci-archive:{}", tmp.display())),
            );
            let _ = buildah().args(["rmi", &name]).output();
            let _ = fs::remove_dir_all(&ctx);
            pushed.map(|_| ())
        })?;
        crate::util::run(
            Command::new("skopeo")
                .args(["copy", "-q", "--dest-tls-verify=false"])
                .arg(format!("oci-archive:{}", uv_archive.display()))
                .arg(format!("docker://{uv_image}")),
        )?;
        let uv_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let dir = apps.join("apps").join(BASE_APP);
        let dockerfile = fs::read(dir.join("Dockerfile"))
            .with_context(|| format!("{}: no Dockerfile of {BASE_APP}", dir.display()))?;
        let mut base_key = crate::util::fnv64(b"swh-deploy-testbed swh-base image", 0);
        for part in [
            python_archive.to_string_lossy().as_bytes(),
            &dockerfile,
            &uv_key.to_le_bytes(),
        ] {
            base_key = crate::util::fnv64(part, base_key);
            base_key = crate::util::fnv64(b"\0", base_key);
        }
        let image = format!("{prefix}/base");
        let base = format!("{image}:{BASE_APP_VERSION}");
        let (base_archive, base_built) = cached_archive("swh-base", base_key, |tmp| {
            let name = format!("localhost/swh-testbed-base-{base_key:016x}");
            crate::util::run(
                buildah()
                    .args(["build", "-q", "--tls-verify=false", "-f"])
                    .arg(dir.join("Dockerfile"))
                    .args(["--build-arg", &format!("REGISTRY={prefix}/")])
                    .args(["-t", &name])
                    .arg(&dir),
            )?;
            let pushed = crate::util::run(
                buildah()
                    .args(["push", "-q", &name])
                    .arg(format!("oci-archive:{}", tmp.display())),
            );
            let _ = buildah().args(["rmi", &name]).output();
            pushed.map(|_| ())
        })?;
        push_with_index(&base_archive, &[&base, &format!("{image}:latest")])?;
        let base_seconds = t.elapsed().as_secs_f64();
        Ok(AppBaseImages {
            python,
            base,
            python_built,
            uv_built,
            base_built,
            python_seconds,
            uv_seconds,
            base_seconds,
        })
    }

    /// One line: each image, whether it was built or cached, its time.
    pub fn summary(&self) -> String {
        let how = |built: bool| if built { "built" } else { "cached" };
        format!(
            "{} ({}, {:.1} s), uv ({}, {:.1} s), {} and latest ({}, {:.1} s)",
            self.python,
            how(self.python_built),
            self.python_seconds,
            how(self.uv_built),
            self.uv_seconds,
            self.base,
            how(self.base_built),
            self.base_seconds
        )
    }
}

/// Adds environment variables to the configuration of the one image of the
/// OCI layout `dir`: a new config blob, a new manifest pointing at it (same
/// layers), `index.json` pointing at that manifest.
fn add_oci_env(dir: &Path, env: &[(&str, &str)]) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    let read_json = |digest: &str| -> Result<serde_json::Value> {
        let hex = digest
            .strip_prefix("sha256:")
            .with_context(|| format!("unexpected digest {digest}"))?;
        let p = blobs.join(hex);
        serde_json::from_slice(&fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("parsing {}", p.display()))
    };
    let put = |v: &serde_json::Value| -> Result<(String, usize)> {
        let data = serde_json::to_vec(v)?;
        let hex = crate_hex(&Sha256::digest(&data));
        write_atomic(&blobs.join(&hex), &data, 0o644)?;
        Ok((format!("sha256:{hex}"), data.len()))
    };
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&fs::read(&index_path)?)?;
    let manifests = index["manifests"]
        .as_array()
        .context("index.json: no manifests")?;
    ensure!(
        manifests.len() == 1,
        "{}: expected one image, found {}",
        dir.display(),
        manifests.len()
    );
    let mdigest = manifests[0]["digest"]
        .as_str()
        .context("index.json: manifest without digest")?
        .to_string();
    let mut manifest = read_json(&mdigest)?;
    let cdigest = manifest["config"]["digest"]
        .as_str()
        .context("manifest: config without digest")?
        .to_string();
    let mut config = read_json(&cdigest)?;
    let vars = config["config"]["Env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut vars: Vec<serde_json::Value> = vars
        .into_iter()
        .filter(|v| {
            let name = v.as_str().and_then(|s| s.split('=').next()).unwrap_or("");
            !env.iter().any(|(k, _)| *k == name)
        })
        .collect();
    vars.extend(
        env.iter()
            .map(|(k, v)| serde_json::json!(format!("{k}={v}"))),
    );
    config["config"]["Env"] = serde_json::Value::Array(vars);
    let (cd, cs) = put(&config)?;
    manifest["config"]["digest"] = serde_json::json!(cd);
    manifest["config"]["size"] = serde_json::json!(cs);
    let (md, ms) = put(&manifest)?;
    index["manifests"][0]["digest"] = serde_json::json!(md);
    index["manifests"][0]["size"] = serde_json::json!(ms);
    write_atomic(&index_path, &serde_json::to_vec(&index)?, 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn zip_stored_is_a_deterministic_stored_zip() {
        let entries = vec![
            ("swh/core/__init__.py".to_string(), b"x = 1\n".to_vec()),
            ("a.dist-info/METADATA".to_string(), b"Name: a\n".to_vec()),
        ];
        let bytes = zip_stored(&entries).unwrap();
        assert_eq!(bytes, zip_stored(&entries).unwrap());
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(zip.len(), 2);
        for (i, (name, data)) in entries.iter().enumerate() {
            let mut f = zip.by_index(i).unwrap();
            assert_eq!(f.name(), name);
            assert_eq!(f.compression(), zip::CompressionMethod::Stored);
            assert_eq!(f.unix_mode(), Some(0o100644));
            let t = f.last_modified().unwrap();
            assert_eq!((t.year(), t.month(), t.day(), t.hour()), (1980, 1, 1, 0));
            let mut got = Vec::new();
            f.read_to_end(&mut got).unwrap();
            assert_eq!(&got, data);
        }
    }

    #[test]
    fn tar_one_file_is_a_ustar_archive_of_root_owned_file() {
        let bytes = tar_one_file("etc/swh-testbed-image", b"loader_git").unwrap();
        assert_eq!(bytes.len() % 512, 0);
        assert_eq!(&bytes[257..263], b"ustar\0");
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        let h = e.header().clone();
        assert_eq!(h.path().unwrap().to_str(), Some("etc/swh-testbed-image"));
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(
            (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
            (0, 0, 0)
        );
        assert_eq!(h.username().unwrap(), Some("root"));
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
        let mut got = String::new();
        e.read_to_string(&mut got).unwrap();
        assert_eq!(got, "loader_git");
        drop(e);
        assert!(entries.next().is_none());
    }

    #[test]
    fn gzip_round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let gz = gzip(&data).unwrap();
        assert_eq!(gz, gzip(&data).unwrap());
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert!(gz.len() < data.len() / 10, "compressed: {}", gz.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn add_oci_env_rewrites_config_and_manifest_keeping_layers() {
        let tmp = std::env::temp_dir().join(format!("swh-testbed-ocienv-{}", std::process::id()));
        let before = write_oci_layout(&tmp, "t", "x").unwrap();
        let blob =
            |d: &str| fs::read(tmp.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
        let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        let old = json(&blob(&before));
        add_oci_env(&tmp, &[("UV_INDEX_URL", "http://127.0.0.1:1/simple/")]).unwrap();
        add_oci_env(&tmp, &[("UV_INDEX_URL", "http://127.0.0.1:2/simple/")]).unwrap();
        let index = json(&fs::read(tmp.join("index.json")).unwrap());
        let m = &index["manifests"][0];
        let digest = m["digest"].as_str().unwrap();
        assert_ne!(digest, before);
        let bytes = blob(digest);
        assert_eq!(m["size"], bytes.len());
        assert_eq!(
            format!("sha256:{}", crate_hex(&Sha256::digest(&bytes))),
            digest
        );
        let manifest = json(&bytes);
        assert_eq!(manifest["layers"], old["layers"]);
        let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
        assert_eq!(
            config["config"]["Env"],
            serde_json::json!(["UV_INDEX_URL=http://127.0.0.1:2/simple/"])
        );
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn oci_layout_digests_and_sizes_match_its_blobs() {
        let tmp = std::env::temp_dir().join(format!("swh-testbed-oci-{}", std::process::id()));
        let digest = write_oci_layout(&tmp, "20250117.1", "loader_git").unwrap();
        let blob =
            |d: &str| fs::read(tmp.join("blobs/sha256").join(&d["sha256:".len()..])).unwrap();
        let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        let sha = |b: &[u8]| format!("sha256:{}", crate_hex(&Sha256::digest(b)));
        let layout = json(&fs::read(tmp.join("oci-layout")).unwrap());
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index = json(&fs::read(tmp.join("index.json")).unwrap());
        let m = &index["manifests"][0];
        assert_eq!(m["digest"], digest.as_str());
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(
            m["annotations"]["org.opencontainers.image.ref.name"],
            "20250117.1"
        );
        let manifest_bytes = blob(&digest);
        assert_eq!(sha(&manifest_bytes), digest);
        assert_eq!(m["size"], manifest_bytes.len());
        let manifest = json(&manifest_bytes);
        let layer_ref = &manifest["layers"][0];
        let layer = blob(layer_ref["digest"].as_str().unwrap());
        assert_eq!(layer_ref["size"], layer.len());
        let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&layer[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], sha(&tar).as_str());
        fs::remove_dir_all(&tmp).unwrap();
    }
}
