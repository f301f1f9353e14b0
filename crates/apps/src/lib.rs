//! swh-apps: the image side of Software Heritage's elastic deployment.
//!
//! # Model
//! A swh-apps checkout holds one directory per app, `apps/<app>/` with a
//! `Dockerfile`, an `entrypoint.sh`, a `requirements.txt` (unpinned) and a
//! `requirements-frozen.txt` (every pin, made by `uv pip compile`). An app's
//! image is named after its directory ([`image_name`]: `swh-loader-git` ->
//! `loader_git`) and versioned `YYYYMMDD.N` ([`version::ImageVersion`]), a
//! version being taken when it is a tag of the image in the registry or a
//! git tag `<app>-<version>` of swh-apps.
//!
//! [`AppsRepo`] offers the runbook's steps: [`AppsRepo::list`],
//! [`AppsRepo::dependents`] (apps pinning a module at another version),
//! [`AppsRepo::freeze`], [`AppsRepo::next_version`] and [`AppsRepo::build`]
//! (freeze, commit, build, push, tag; a failed push leaves no tag). External
//! tools are the user's own: `git`, `uv`, and `buildah`, `docker` or
//! `podman`, which read registry credentials from their own config; the
//! registry API client ([`registry`]) reads the same config files.

pub mod registry;
pub mod version;

use registry::Registry;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use version::ImageVersion;

/// Errors of the apps crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user.
    #[error("{0}")]
    Input(String),
    /// An external command failed.
    #[error("{0}")]
    Command(String),
    /// The registry API failed.
    #[error("registry: {0}")]
    Registry(String),
    /// I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The image name of an app: directory with `-` -> `_`, `swh_` prefix
/// removed (`swh-loader-git` -> `loader_git`).
pub fn image_name(app: &str) -> String {
    let n = app.replace('-', "_");
    n.strip_prefix("swh_").map(String::from).unwrap_or(n)
}

/// A Python distribution name normalised as PEP 503 does (lowercase, runs of
/// `-`, `_`, `.` -> `-`), so `swh.graph` and `swh-graph` compare equal.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
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

/// The `name==version` pins of a frozen requirements text, by normalised
/// name (comments, options and other specifiers are ignored).
pub fn parse_pins(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            let l = l.split(';').next().unwrap_or("").trim();
            let (n, v) = l.split_once("==")?;
            let n = n.split('[').next().unwrap_or(n).trim();
            (!n.is_empty() && !n.starts_with('-'))
                .then(|| (normalize_name(n), v.trim().to_string()))
        })
        .collect()
}

/// One pin that differs between two frozen requirement files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinChange {
    /// Normalised distribution name.
    pub name: String,
    /// Version before (None: added).
    pub from: Option<String>,
    /// Version after (None: removed).
    pub to: Option<String>,
}

/// The pins that differ between two frozen requirement texts.
pub fn pin_changes(before: &str, after: &str) -> Vec<PinChange> {
    let a = parse_pins(before);
    let b = parse_pins(after);
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| PinChange {
            name: n.clone(),
            from: a.get(n).cloned(),
            to: b.get(n).cloned(),
        })
        .collect()
}

/// Writes `data` to `path` atomically: readers see the old or the new
/// content, never a mix, and a crash leaves one of the two.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    // atomic-write-file: a temporary file in the same directory (keeping the
    // old file's permissions), fsync, rename over `path`, fsync of the
    // directory; dropped uncommitted, it leaves `path` untouched.
    let mut file = atomic_write_file::AtomicWriteFile::open(path).map_err(io)?;
    file.write_all(data).map_err(io)?;
    file.commit().map_err(io)
}

/// Runs a command, returning its stdout or an error naming it with stderr.
fn run(cmd: &mut Command) -> Result<String, Error> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Command(format!(
                "cannot run {:?}: not found (install it or give its path)",
                cmd.get_program()
            ))
        } else {
            Error::Command(format!("{shown}: {e}"))
        }
    })?;
    if !out.status.success() {
        return Err(Error::Command(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// An app of swh-apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Directory name (`swh-loader-git`).
    pub name: String,
    /// Image name (`loader_git`).
    pub image: String,
    /// Whether it has a `requirements-frozen.txt`.
    pub frozen: bool,
}

/// The image builder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// `buildah` (daemonless; honours `STORAGE_DRIVER`, `BUILDAH_ISOLATION`).
    Buildah,
    /// `docker`.
    Docker,
    /// `podman`.
    Podman,
}

impl Builder {
    /// The program name.
    pub fn program(self) -> &'static str {
        match self {
            Builder::Buildah => "buildah",
            Builder::Docker => "docker",
            Builder::Podman => "podman",
        }
    }
}

/// How to run `uv pip compile`.
#[derive(Debug, Clone)]
pub struct FreezeOptions {
    /// The uv program.
    pub uv: PathBuf,
    /// Index options passed to uv as they are (`--index-url URL`,
    /// `--extra-index-url URL`, ...).
    pub index_args: Vec<String>,
    /// Pass `--upgrade` (take the newest versions, as SWH's tooling does)
    /// rather than keeping the existing pins where possible.
    pub upgrade: bool,
}

impl Default for FreezeOptions {
    fn default() -> Self {
        FreezeOptions {
            uv: PathBuf::from("uv"),
            index_args: Vec::new(),
            upgrade: true,
        }
    }
}

/// What a freeze did.
#[derive(Debug, Clone)]
pub struct FreezeOutcome {
    /// Pins that changed.
    pub changes: Vec<PinChange>,
    /// The new frozen text.
    pub text: String,
    /// Whether the file content changed.
    pub changed: bool,
}

/// What `app build` should do.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The builder.
    pub builder: Builder,
    /// The registry the images go to.
    pub registry: Registry,
    /// Push images, commit and tag.
    pub push: bool,
    /// Print the plan only.
    pub dry_run: bool,
    /// Freeze options.
    pub freeze: FreezeOptions,
    /// Registry page size for the tag listing.
    pub page_size: Option<usize>,
}

/// One step of an `app build` plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does.
    pub what: String,
    /// The command it runs (program and arguments), if any.
    pub command: Vec<String>,
}

/// What `app build` did (or would do).
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image version.
    pub version: ImageVersion,
    /// The image reference without tag.
    pub image: String,
    /// The git tag (created only when pushed).
    pub tag: String,
    /// Pins that changed in the freeze.
    pub pin_changes: Vec<PinChange>,
    /// The plan's steps (all executed unless dry-run).
    pub steps: Vec<Step>,
    /// The build commit, if one was made.
    pub commit: Option<String>,
    /// Whether images, commit and tag were pushed.
    pub pushed: bool,
}

/// A swh-apps checkout (remote `origin`).
#[derive(Debug, Clone)]
pub struct AppsRepo {
    dir: PathBuf,
    remote: String,
}

impl AppsRepo {
    /// The checkout at `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        if !dir.join("apps").is_dir() {
            return Err(Error::Input(format!(
                "{}: not a swh-apps checkout (no apps/ directory)",
                dir.display()
            )));
        }
        Ok(AppsRepo {
            dir: dir.to_path_buf(),
            remote: "origin".into(),
        })
    }

    /// Uses `remote` instead of `origin`.
    pub fn with_remote(mut self, remote: &str) -> Self {
        self.remote = remote.to_string();
        self
    }

    /// The checkout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn git(&self) -> Command {
        let mut c = Command::new("git");
        c.arg("-C").arg(&self.dir).env("GIT_TERMINAL_PROMPT", "0");
        c
    }

    /// Every app: directories of `apps/` with a `requirements.txt`, sorted.
    pub fn list(&self) -> Result<Vec<App>, Error> {
        let apps_dir = self.dir.join("apps");
        let rd = std::fs::read_dir(&apps_dir).map_err(|source| Error::Io {
            path: apps_dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let p = e.path();
            if p.join("requirements.txt").is_file() {
                let name = e.file_name().to_string_lossy().into_owned();
                out.push(App {
                    image: image_name(&name),
                    frozen: p.join("requirements-frozen.txt").is_file(),
                    name,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Checks that `app` is one of [`Self::list`] and returns its directory.
    pub fn app_dir(&self, app: &str) -> Result<PathBuf, Error> {
        let valid = !app.is_empty()
            && app
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !app.starts_with('.');
        let p = self.dir.join("apps").join(app);
        if !valid || !p.join("requirements.txt").is_file() {
            return Err(Error::Input(format!(
                "no app {app:?} in {} (see `swh-deploy app list`)",
                self.dir.join("apps").display()
            )));
        }
        Ok(p)
    }

    /// Apps whose frozen requirements pin `module` (dots or dashes) at a
    /// version other than `version` (a leading `v` is ignored), with that
    /// pinned version.
    pub fn dependents(&self, module: &str, version: &str) -> Result<Vec<(String, String)>, Error> {
        let want = version.strip_prefix('v').unwrap_or(version);
        let key = normalize_name(module);
        let mut out = Vec::new();
        for app in self.list()? {
            let f = self
                .dir
                .join("apps")
                .join(&app.name)
                .join("requirements-frozen.txt");
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            if let Some(v) = parse_pins(&text).get(&key) {
                if v != want {
                    out.push((app.name.clone(), v.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Freezes `app`'s requirements with `uv pip compile
    /// apps/APP/requirements.txt -o apps/APP/requirements-frozen.txt` and
    /// the given index options. uv writes to a temporary copy in the same
    /// directory, renamed over the file only when `write` is set.
    pub fn freeze(
        &self,
        app: &str,
        opts: &FreezeOptions,
        write: bool,
    ) -> Result<FreezeOutcome, Error> {
        let dir = self.app_dir(app)?;
        let rel_in = format!("apps/{app}/requirements.txt");
        let rel_out = format!("apps/{app}/requirements-frozen.txt");
        let out_path = dir.join("requirements-frozen.txt");
        let before = std::fs::read_to_string(&out_path).unwrap_or_default();
        let tmp_name = format!(
            ".requirements-frozen.txt.swh-deploy.{}.tmp",
            std::process::id()
        );
        let tmp = dir.join(&tmp_name);
        let io = |source| Error::Io {
            path: tmp.clone(),
            source,
        };
        std::fs::write(&tmp, &before).map_err(io)?;
        let mut cmd = Command::new(&opts.uv);
        cmd.current_dir(&self.dir)
            .args(["pip", "compile", "--quiet", &rel_in, "-o"])
            .arg(format!("apps/{app}/{tmp_name}"))
            .arg("--custom-compile-command")
            .arg(format!("uv pip compile {rel_in} -o {rel_out}"));
        if opts.upgrade {
            cmd.arg("--upgrade");
        }
        cmd.args(&opts.index_args);
        let result = run(&mut cmd).and_then(|_| std::fs::read_to_string(&tmp).map_err(io));
        let _ = std::fs::remove_file(&tmp);
        let text = result?;
        let changed = text != before;
        if write && changed {
            atomic_write(&out_path, text.as_bytes())?;
        }
        Ok(FreezeOutcome {
            changes: pin_changes(&before, &text),
            text,
            changed,
        })
    }

    /// Versions taken by git tags `<app>-YYYYMMDD.N`, locally or on the
    /// remote.
    pub fn tagged_versions(&self, app: &str) -> Result<Vec<ImageVersion>, Error> {
        let pattern = format!("{app}-*");
        let local = run(self.git().args(["tag", "-l", &pattern]))?;
        let mut names: Vec<String> = local.lines().map(String::from).collect();
        let has_remote = self
            .git()
            .args(["remote", "get-url", &self.remote])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if has_remote {
            let remote = run(self.git().args([
                "ls-remote",
                "--tags",
                &self.remote,
                &format!("refs/tags/{pattern}"),
            ]))?;
            names.extend(remote.lines().filter_map(|l| {
                l.split('\t').nth(1).map(|r| {
                    r.trim_start_matches("refs/tags/")
                        .trim_end_matches("^{}")
                        .to_string()
                })
            }));
        }
        Ok(names
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("{app}-")))
            .filter_map(ImageVersion::parse)
            .collect())
    }

    /// The next free version of `app` for `date` (YYYYMMDD), unique against
    /// the registry's tags of its image (if a registry is given) and the git
    /// tags.
    pub fn next_version(
        &self,
        app: &str,
        date: u32,
        registry: Option<&Registry>,
        page_size: Option<usize>,
    ) -> Result<ImageVersion, Error> {
        self.app_dir(app)?;
        let mut taken = self.tagged_versions(app)?;
        if let Some(r) = registry {
            taken.extend(
                r.tags(&image_name(app), page_size)?
                    .iter()
                    .filter_map(|t| ImageVersion::parse(t)),
            );
        }
        Ok(version::next_version(date, taken))
    }

    fn builder_steps(
        &self,
        app: &str,
        version: ImageVersion,
        opts: &BuildOptions,
    ) -> (Vec<Step>, Vec<Step>) {
        let image = opts.registry.image_ref(&image_name(app));
        let versioned = format!("{image}:{version}");
        let latest = format!("{image}:latest");
        let prog = opts.builder.program().to_string();
        let tls: Vec<String> = if opts.registry.insecure() && opts.builder != Builder::Docker {
            vec!["--tls-verify=false".into()]
        } else {
            vec![]
        };
        let mut build = vec![prog.clone(), "build".into()];
        build.extend(tls.iter().cloned());
        build.extend([
            "-f".into(),
            format!("apps/{app}/Dockerfile"),
            "--build-arg".into(),
            format!("REGISTRY={}", opts.registry.build_arg()),
            "-t".into(),
            versioned.clone(),
            "-t".into(),
            latest.clone(),
            format!("apps/{app}"),
        ]);
        let builds = vec![Step {
            what: format!("build {versioned} (also tagged latest)"),
            command: build,
        }];
        let mut pushes = Vec::new();
        for r in [&versioned, &latest] {
            let mut c = vec![prog.clone(), "push".into()];
            c.extend(tls.iter().cloned());
            c.push(r.clone());
            pushes.push(Step {
                what: format!("push {r}"),
                command: c,
            });
        }
        (builds, pushes)
    }

    /// Before anything is built for a push: fetches the remote and refuses
    /// when the current branch is behind or has diverged from the remote's,
    /// since the final push could not succeed.
    pub fn check_up_to_date(&self) -> Result<(), Error> {
        let branch =
            run(self.git().args(["symbolic-ref", "--short", "-q", "HEAD"])).map_err(|_| {
                Error::Input(format!(
                    "{}: HEAD is detached; check out the branch to push",
                    self.dir.display()
                ))
            })?;
        run(self.git().args(["fetch", "-q", &self.remote]))?;
        let remote_ref = format!("refs/remotes/{}/{branch}", self.remote);
        let exists = self
            .git()
            .args(["rev-parse", "-q", "--verify", &remote_ref])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exists {
            return Ok(());
        }
        let ok = self
            .git()
            .args(["merge-base", "--is-ancestor", &remote_ref, "HEAD"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Err(Error::Input(format!(
                "{}: branch {branch} is behind or has diverged from {}/{branch}; pull first (nothing was built)",
                self.dir.display(),
                self.remote
            )));
        }
        Ok(())
    }

    /// `app build`: freeze, pick the next version, commit `<app>-<version>:
    /// Build image` when the frozen requirements changed, build the image
    /// tagged `<version>` and `latest`; with `push`: push both, create the
    /// annotated tag `<app>-<version>` (`<tag>: Bump new release`) and push
    /// the branch and the tag atomically. Any failure after the commit undoes
    /// the commit (keeping the frozen file) and deletes the tag if made, so a
    /// failed push leaves no tag. `progress` gets a line per step.
    pub fn build(
        &self,
        app: &str,
        date: u32,
        opts: &BuildOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<BuildOutcome, Error> {
        let frozen_rel = format!("apps/{app}/requirements-frozen.txt");
        self.app_dir(app)?;
        if opts.push {
            self.check_up_to_date()?;
        }
        let freeze = self.freeze(app, &opts.freeze, !opts.dry_run)?;
        let version = self.next_version(app, date, Some(&opts.registry), opts.page_size)?;
        let tag = format!("{app}-{version}");
        let image = opts.registry.image_ref(&image_name(app));
        let mut steps = vec![Step {
            what: format!(
                "freeze {frozen_rel} ({} pin change(s))",
                freeze.changes.len()
            ),
            command: vec![],
        }];
        let dirty = !run(self
            .git()
            .args(["status", "--porcelain", "--", &frozen_rel]))?
        .is_empty();
        let commit_msg = format!("{tag}: Build image");
        if dirty || (opts.dry_run && freeze.changed) {
            steps.push(Step {
                what: format!("commit {frozen_rel}"),
                command: vec![
                    "git".into(),
                    "commit".into(),
                    "-m".into(),
                    commit_msg.clone(),
                ],
            });
        }
        let (builds, pushes) = self.builder_steps(app, version, opts);
        steps.extend(builds.iter().cloned());
        let branch = run(self.git().args(["symbolic-ref", "--short", "-q", "HEAD"])).ok();
        let tag_msg = format!("{tag}: Bump new release");
        if opts.push {
            let Some(branch) = &branch else {
                return Err(Error::Input(format!(
                    "{}: HEAD is detached; check out the branch to push",
                    self.dir.display()
                )));
            };
            steps.extend(pushes.iter().cloned());
            steps.push(Step {
                what: format!("tag {tag}"),
                command: vec![
                    "git".into(),
                    "tag".into(),
                    "-a".into(),
                    tag.clone(),
                    "-m".into(),
                    tag_msg.clone(),
                ],
            });
            steps.push(Step {
                what: format!("push {branch} and {tag}"),
                command: vec![
                    "git".into(),
                    "push".into(),
                    "--atomic".into(),
                    self.remote.clone(),
                    format!("HEAD:refs/heads/{branch}"),
                    format!("refs/tags/{tag}"),
                ],
            });
        }
        let mut outcome = BuildOutcome {
            version,
            image,
            tag: tag.clone(),
            pin_changes: freeze.changes,
            steps: steps.clone(),
            commit: None,
            pushed: false,
        };
        if opts.dry_run {
            return Ok(outcome);
        }
        progress(&steps[0].what);
        let before = run(self.git().args(["rev-parse", "HEAD"]))?;
        let undo = |tagged: bool| {
            if tagged {
                let _ = run(self.git().args(["tag", "-d", &tag]));
            }
            let _ = run(self.git().args(["reset", "-q", "--soft", &before]));
        };
        if dirty {
            progress(&format!("commit {commit_msg}"));
            run(self.git().args(["add", "--", &frozen_rel]))?;
            run(self
                .git()
                .args(["commit", "-q", "-m", &commit_msg, "--", &frozen_rel]))?;
            outcome.commit = Some(run(self.git().args(["rev-parse", "HEAD"]))?);
        }
        for s in builds
            .iter()
            .chain(if opts.push { pushes.iter() } else { [].iter() })
        {
            progress(&s.what);
            let mut c = Command::new(&s.command[0]);
            c.args(&s.command[1..]).current_dir(&self.dir);
            if let Err(e) = run(&mut c) {
                undo(false);
                return Err(e);
            }
        }
        if !opts.push {
            return Ok(outcome);
        }
        progress(&format!("tag {tag}"));
        if let Err(e) = run(self.git().args(["tag", "-a", &tag, "-m", &tag_msg])) {
            undo(false);
            return Err(e);
        }
        let branch = branch.unwrap_or_default();
        progress(&format!("push {branch} and {tag}"));
        if let Err(e) = run(self.git().args([
            "push",
            "-q",
            "--atomic",
            &self.remote,
            &format!("HEAD:refs/heads/{branch}"),
            &format!("refs/tags/{tag}"),
        ])) {
            undo(true);
            return Err(Error::Command(format!(
                "{e}\nthe tag {tag} was deleted and the build commit undone (the images {version} and latest are already pushed)"
            )));
        }
        outcome.pushed = true;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(image_name("swh-loader-git"), "loader_git");
        assert_eq!(image_name("cassandra-checks"), "cassandra_checks");
        assert_eq!(normalize_name("swh.graph"), normalize_name("swh-graph"));
        assert_eq!(normalize_name("Swh__Loader.Git"), "swh-loader-git");
    }

    #[test]
    fn pins() {
        let t = "# header\nswh-graph==6.2.0\n    # via -r req\nSWH.Core[db]==3.0.0 ; python_version >= '3.9'\n-e ./x\nfoo>=1\n";
        let p = parse_pins(t);
        assert_eq!(p.len(), 2);
        assert_eq!(p["swh-graph"], "6.2.0");
        assert_eq!(p["swh-core"], "3.0.0");
        let c = pin_changes("a==1\nb==2\n", "a==1\nb==3\nc==1\n");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].from.as_deref(), Some("2"));
        assert_eq!(c[1].from, None);
    }
}
