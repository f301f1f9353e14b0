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
//! Apps with only a Dockerfile (`swh-base`, `swh-docs`, ...) and the
//! `utilities/<dir>/` images (`utilities/rsvndump` builds `rsvndump-base`)
//! are image-only apps: built and tagged the same way, nothing to freeze.
//!
//! [`AppsRepo`] offers the runbook's steps: [`AppsRepo::list`],
//! [`AppsRepo::dependents`] (apps pinning a module at another version or by
//! URL), [`AppsRepo::image_dependents`] (apps built FROM an image,
//! transitively, in build order), [`AppsRepo::freeze`] (for a given Python
//! version), [`AppsRepo::next_version`] and [`AppsRepo::build`] (freeze,
//! reserve the version with a placeholder tag, commit, build, push, tag). External
//! tools are the user's own: `git`, `uv`, and `buildah`, `docker` or
//! `podman`, which read registry credentials from their own config; the
//! registry API client ([`registry`]) reads the same config files.

pub mod dockerfile;
pub mod journaled;
pub mod registry;
pub mod resolve;
pub mod version;

use registry::Registry;
use std::collections::BTreeMap;
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
    /// The journal could not record the run.
    #[error(transparent)]
    Journal(#[from] swh_deploy_journal::JournalError),
    /// I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code it means: every apps error is a failure (1).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
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
    // The one implementation, in swh-deploy-util.
    swh_deploy_util::atomic_write(path, data).map_err(|e| Error::Io {
        path: e.path,
        source: e.source,
    })
}

/// A command line as a user would type it (words quoted when needed), for
/// error messages.
fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| {
            let w = w.to_string_lossy();
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c))
            {
                w.into_owned()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command, returning its stdout or an error naming it with stderr.
fn run(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Command(format!(
                "cannot run {:?}: not found (install it or give its path)",
                cmd.get_program()
            ))
        } else {
            Error::Command(format!("{}: {e}", shown(cmd)))
        }
    })?;
    if !out.status.success() {
        return Err(Error::Command(format!(
            "{} failed ({}): {}",
            shown(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The kind of an app (JSON: `python`, `image-only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppKind {
    /// A `requirements.txt` (frozen into `requirements-frozen.txt`) and a
    /// Dockerfile installing it.
    Python,
    /// Only a Dockerfile (`swh-base`, `swh-docs`, `utilities/rsvndump`...):
    /// built and tagged, nothing to freeze.
    ImageOnly,
}

impl std::fmt::Display for AppKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppKind::Python => "python app",
            AppKind::ImageOnly => "image-only",
        })
    }
}

/// An app of swh-apps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct App {
    /// Name, also the prefix of its git tags: the directory name under
    /// `apps/` (`swh-loader-git`), or `<dir>-base` under `utilities/`
    /// (`rsvndump-base`).
    pub name: String,
    /// Image name (`loader_git`; `rsvndump-base` for `utilities/rsvndump`).
    pub image: String,
    /// Whether it has a `requirements-frozen.txt`.
    pub frozen: bool,
    /// Python app or image-only.
    pub kind: AppKind,
    /// Its directory relative to the checkout (`apps/swh-base`,
    /// `utilities/rsvndump`): the build context.
    pub rel_dir: String,
}

/// How a dependent app pins a module (JSON: `{"version": V}` or
/// `{"url": U}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// `name==VERSION`.
    Version(String),
    /// `name @ URL` (e.g. `git+https://...@3a0d4ac`): no version to compare,
    /// listed so that it is not missed.
    Url(String),
}

/// An app whose frozen requirements pin a module at another version (or by
/// URL).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dependent {
    /// The app.
    pub app: String,
    /// Its pin of the module.
    pub pin: Pin,
}

/// What [`AppsRepo::dependents`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dependents {
    /// Apps to rebuild: pinned at another version or by URL.
    pub dependents: Vec<Dependent>,
    /// Every app requiring the module (up to date or not).
    pub requiring: Vec<String>,
}

/// An app built FROM an image, directly or through other apps' images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageDependent {
    /// The app.
    pub app: String,
    /// Its image.
    pub image: String,
    /// The registry images its Dockerfile builds FROM.
    pub from: Vec<String>,
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

/// The Python version SWH freezes for (its freezes run in a `python:3.11`
/// container).
pub const DEFAULT_PYTHON_VERSION: &str = "3.11";

/// The Python a freeze targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonTarget {
    /// `3.N` or `3.N.M`, passed to uv as `--python-version`.
    pub version: String,
    /// The interpreter uv uses (`--python`): a path or a version request;
    /// default: the one `uv python find VERSION` finds.
    pub interpreter: Option<String>,
}

impl Default for PythonTarget {
    fn default() -> Self {
        PythonTarget {
            version: DEFAULT_PYTHON_VERSION.to_string(),
            interpreter: None,
        }
    }
}

/// Checks a Python version for `--python-version`: `3.N` or `3.N.M`.
pub fn check_python_version(v: &str) -> Result<(), Error> {
    let parts: Vec<&str> = v.split('.').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] == "3";
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "invalid Python version {v:?}: expected 3.N or 3.N.M (e.g. {DEFAULT_PYTHON_VERSION})"
        )))
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

/// How many versions a build tries to reserve before giving up (each
/// refused reservation means another build took that version meanwhile).
pub const RESERVE_ATTEMPTS: usize = 10;
/// How many times the final push is retried after a rebase when the
/// remote branch moved meanwhile (another build pushed its commit).
pub const PUSH_ATTEMPTS: usize = 5;

/// The `name @ URL` pins of a requirements text, by normalised name.
pub fn parse_url_pins(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') || l.starts_with('-') {
                return None;
            }
            // A comment starts at " #" (a URL may hold "#egg=...").
            let l = l.split(" #").next().unwrap_or(l).trim();
            let (name, url) = l.split_once('@')?;
            let name = name.split('[').next().unwrap_or(name).trim();
            let url = url.split(';').next().unwrap_or(url).trim();
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            (valid && url.contains("://")).then(|| (normalize_name(name), url.to_string()))
        })
        .collect()
}

/// The names a `requirements.txt` requires (whatever the specifier), by
/// normalised name.
fn required_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.split(" #").next().unwrap_or("").trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('-') {
                return None;
            }
            let end = l
                .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                .unwrap_or(l.len());
            (end > 0).then(|| normalize_name(&l[..end]))
        })
        .collect()
}

/// A swh-apps checkout (remote `origin`).
#[derive(Debug, Clone)]
pub struct AppsRepo {
    dir: PathBuf,
    remote: String,
    python: Option<PythonTarget>,
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
            python: None,
        })
    }

    /// Uses `remote` instead of `origin`.
    pub fn with_remote(mut self, remote: &str) -> Self {
        self.remote = remote.to_string();
        self
    }

    /// Freezes for `target` instead of [`Self::python_target`]'s default.
    pub fn with_python(mut self, target: PythonTarget) -> Self {
        self.python = Some(target);
        self
    }

    /// The Python freezes target: the one given by [`Self::with_python`]
    /// (callers pass `--python-version`/`$SWH_DEPLOY_PYTHON_VERSION`
    /// through [`resolve::with_python`]), else the version of the
    /// `python:X.Y` image `apps/swh-base/Dockerfile` builds FROM (the Python
    /// every app runs with), else [`DEFAULT_PYTHON_VERSION`].
    pub fn python_target(&self) -> PythonTarget {
        if let Some(p) = &self.python {
            return p.clone();
        }
        let base =
            std::fs::read_to_string(self.dir.join("apps/swh-base/Dockerfile")).unwrap_or_default();
        let from_base = base.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            if !w.next()?.eq_ignore_ascii_case("FROM") {
                return None;
            }
            let image = w.find(|x| !x.starts_with("--"))?;
            let tag = image
                .strip_prefix("python:")
                .or_else(|| image.strip_prefix("docker.io/library/python:"))?;
            let v: String = tag
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let v = v.trim_end_matches('.').to_string();
            check_python_version(&v).ok().map(|_| v)
        });
        PythonTarget {
            version: from_base.unwrap_or_else(|| DEFAULT_PYTHON_VERSION.to_string()),
            interpreter: None,
        }
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

    /// Runs `git ARGS` in the checkout. A failure says what was expected
    /// (a git clone of swh-apps, a reachable remote) rather than only
    /// showing the command line.
    fn git_run(&self, args: &[&str]) -> Result<String, Error> {
        let mut c = self.git();
        c.args(args);
        let out = c.output().map_err(|e| {
            Error::Command(format!(
                "cannot run git in {}: {e} (git is needed for tags and pushes)",
                self.dir.display()
            ))
        })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let what = format!("git {}", args.join(" "));
        if stderr.contains("not a git repository") {
            return Err(Error::Input(format!(
                "not a git repository: {} (a git clone of swh-apps is expected; `{what}` failed)",
                self.dir.display()
            )));
        }
        if stderr.contains("does not appear to be a git repository")
            || stderr.contains("Could not read from remote")
            || stderr.contains("No such remote")
        {
            return Err(Error::Input(format!(
                "{}: cannot reach the git remote {:?} (a swh-apps remote the checkout can fetch from and push to is expected; `{what}` failed: {stderr})",
                self.dir.display(),
                self.remote
            )));
        }
        Err(Error::Command(format!(
            "`{what}` in {} failed ({}): {stderr}",
            self.dir.display(),
            out.status
        )))
    }

    /// Whether `git ARGS` succeeds (for checks such as `rev-parse --verify`).
    fn git_ok(&self, args: &[&str]) -> bool {
        self.git()
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Every app, sorted by name: the directories of `apps/` with a
    /// `requirements.txt` (python apps) or only a `Dockerfile` (image-only
    /// apps such as `swh-base`), and those of `utilities/` with a
    /// `Dockerfile` (image `<dir>-base`, as `utilities/rsvndump` builds
    /// `rsvndump-base`).
    pub fn list(&self) -> Result<Vec<App>, Error> {
        let mut out: Vec<App> = Vec::new();
        for top in ["apps", "utilities"] {
            let top_dir = self.dir.join(top);
            if top == "utilities" && !top_dir.is_dir() {
                continue;
            }
            let rd = std::fs::read_dir(&top_dir).map_err(|source| Error::Io {
                path: top_dir.clone(),
                source,
            })?;
            let mut entries: Vec<_> = rd.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                let dir_name = e.file_name().to_string_lossy().into_owned();
                if dir_name.starts_with('.') || !p.is_dir() {
                    continue;
                }
                let python = p.join("requirements.txt").is_file();
                if !python && !p.join("Dockerfile").is_file() {
                    continue;
                }
                let (name, image) = if top == "apps" {
                    (dir_name.clone(), image_name(&dir_name))
                } else {
                    let n = format!("{dir_name}-base");
                    (n.clone(), n)
                };
                if out.iter().any(|a| a.name == name) {
                    continue;
                }
                out.push(App {
                    image,
                    frozen: p.join("requirements-frozen.txt").is_file(),
                    kind: if python {
                        AppKind::Python
                    } else {
                        AppKind::ImageOnly
                    },
                    rel_dir: format!("{top}/{dir_name}"),
                    name,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The app named `app` (one of [`Self::list`]).
    pub fn app(&self, app: &str) -> Result<App, Error> {
        let valid = !app.is_empty()
            && app
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !app.starts_with('.');
        let found = if valid {
            self.list()?.into_iter().find(|a| a.name == app)
        } else {
            None
        };
        found.ok_or_else(|| {
            Error::Input(format!(
                "no app {app:?} in {} (see `swh-deploy app list`)",
                self.dir.display()
            ))
        })
    }

    /// Checks that `app` is one of [`Self::list`] and returns its directory.
    pub fn app_dir(&self, app: &str) -> Result<PathBuf, Error> {
        Ok(self.dir.join(self.app(app)?.rel_dir))
    }

    /// Apps whose frozen requirements pin `module` (dots or dashes) at a
    /// version other than `version` (a leading `v` is ignored), or by URL
    /// (`swh-objstorage @ git+https://...@3a0d4ac`: always listed, as its
    /// version cannot be compared). An app without a frozen file is read
    /// from its `requirements.txt`. Refuses an empty module name, and a
    /// module that no app requires (so that a typo is not taken for "every
    /// app is up to date").
    pub fn dependents(&self, module: &str, version: &str) -> Result<Dependents, Error> {
        let key = normalize_name(module.trim());
        if key.is_empty() {
            return Err(Error::Input(
                "empty module name: give the module, e.g. --module swh.graph".into(),
            ));
        }
        let want = version.strip_prefix('v').unwrap_or(version);
        let mut out = Dependents {
            dependents: Vec::new(),
            requiring: Vec::new(),
        };
        for app in self.list()? {
            if app.kind != AppKind::Python {
                continue;
            }
            let dir = self.dir.join(&app.rel_dir);
            let reqs = std::fs::read_to_string(dir.join("requirements.txt")).unwrap_or_default();
            let frozen = std::fs::read_to_string(dir.join("requirements-frozen.txt")).ok();
            let text = frozen.as_deref().unwrap_or(&reqs);
            let pin = if let Some(v) = parse_pins(text).get(&key) {
                Some((v != want).then(|| Pin::Version(v.clone())))
            } else {
                parse_url_pins(text)
                    .get(&key)
                    .map(|u| Some(Pin::Url(u.clone())))
            };
            let requires = pin.is_some() || required_names(&reqs).contains(&key);
            if requires {
                out.requiring.push(app.name.clone());
            }
            if let Some(Some(pin)) = pin {
                out.dependents.push(Dependent {
                    app: app.name.clone(),
                    pin,
                });
            }
        }
        if out.requiring.is_empty() {
            return Err(Error::Input(format!(
                "no app of {} requires {module} (none of apps/*/requirements.txt or requirements-frozen.txt names it)",
                self.dir.display()
            )));
        }
        Ok(out)
    }

    /// The apps to rebuild after a new `image` (an image name such as
    /// `base`, or the app building it such as `swh-base`): those whose
    /// Dockerfile builds FROM it, directly or through another such app's
    /// image, in build order (an app after the apps whose images it builds
    /// FROM; otherwise by name). An image that no app builds and no app
    /// builds FROM is refused.
    pub fn image_dependents(&self, image: &str) -> Result<Vec<ImageDependent>, Error> {
        let apps = self.list()?;
        let image = image.trim();
        let want = apps
            .iter()
            .find(|a| a.name == image)
            .map(|a| a.image.clone())
            .unwrap_or_else(|| image.to_string());
        let mut froms: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for app in &apps {
            let f = self.dir.join(&app.rel_dir).join("Dockerfile");
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            let images = dockerfile::registry_base_images(&text)
                .map_err(|e| Error::Input(format!("{}:{}: {}", f.display(), e.line, e.message)))?;
            froms.insert(app.name.clone(), images);
        }
        let mut images: Vec<String> = vec![want.clone()];
        let mut chosen: Vec<&App> = Vec::new();
        // Each round adds at least one app, so apps.len() rounds suffice.
        for _ in 0..=apps.len() {
            let before = chosen.len();
            for app in &apps {
                if chosen.iter().any(|c| c.name == app.name) || app.image == want {
                    continue;
                }
                if froms
                    .get(&app.name)
                    .is_some_and(|f| f.iter().any(|i| images.contains(i)))
                {
                    chosen.push(app);
                    images.push(app.image.clone());
                }
            }
            if chosen.len() == before {
                break;
            }
        }
        if chosen.is_empty() && !apps.iter().any(|a| a.image == want) {
            return Err(Error::Input(format!(
                "no app of {} builds the image {want:?} or builds FROM it (see `swh-deploy app list`)",
                self.dir.display()
            )));
        }
        // Build order: an app once every chosen app whose image it builds
        // FROM is placed.
        let mut order: Vec<ImageDependent> = Vec::new();
        let mut left = chosen;
        while !left.is_empty() {
            let ready = left.iter().position(|a| {
                froms[&a.name]
                    .iter()
                    .all(|i| !left.iter().any(|o| o.name != a.name && &o.image == i))
            });
            let Some(i) = ready else {
                let names: Vec<&str> = left.iter().map(|a| a.name.as_str()).collect();
                return Err(Error::Input(format!(
                    "the Dockerfiles of {} build FROM each other's images (a cycle)",
                    names.join(", ")
                )));
            };
            let a = left.remove(i);
            order.push(ImageDependent {
                app: a.name.clone(),
                image: a.image.clone(),
                from: froms[&a.name].clone(),
            });
        }
        Ok(order)
    }

    /// The interpreter to freeze with for `target`: the given one, else the
    /// one `uv python find VERSION` finds (no download); refused when its
    /// Python is not `target.version` (major.minor): sdists built and
    /// metadata read with another Python can change the pins.
    fn freeze_interpreter(&self, uv: &Path, target: &PythonTarget) -> Result<String, Error> {
        check_python_version(&target.version)?;
        let request = target
            .interpreter
            .clone()
            .unwrap_or_else(|| target.version.clone());
        let mut find = Command::new(uv);
        find.args(["python", "find", "--no-python-downloads", &request])
            .current_dir(&self.dir);
        let path = run(&mut find).map_err(|e| {
            Error::Input(format!(
                "no Python interpreter for {request:?} to freeze for Python {} ({e}); install one (e.g. `uv python install {}`) or give one with --python",
                target.version, target.version
            ))
        })?;
        let path = path.lines().last().unwrap_or("").trim().to_string();
        let got = run(Command::new(&path)
            .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]))?;
        let mm = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
        if mm(&got) != mm(&target.version) {
            return Err(Error::Input(format!(
                "the interpreter {path} is Python {got}: it cannot freeze for Python {} (SWH's images run {}); give a Python {} interpreter with --python, or set the target with --python-version",
                target.version,
                mm(&target.version),
                mm(&target.version)
            )));
        }
        Ok(path)
    }

    /// Freezes `app`'s requirements with `uv pip compile --python-version
    /// V apps/APP/requirements.txt -o apps/APP/requirements-frozen.txt`
    /// for [`Self::python_target`] (the command, with the version, is the
    /// file's header) and the given index options. uv writes to a temporary
    /// copy in the same directory, renamed over the file only when `write`
    /// is set.
    pub fn freeze(
        &self,
        app: &str,
        opts: &FreezeOptions,
        write: bool,
    ) -> Result<FreezeOutcome, Error> {
        let a = self.app(app)?;
        if a.kind != AppKind::Python {
            return Err(Error::Input(format!(
                "{app} is image-only ({} has a Dockerfile and no requirements.txt): nothing to freeze",
                a.rel_dir
            )));
        }
        let dir = self.dir.join(&a.rel_dir);
        let target = self.python_target();
        let interpreter = self.freeze_interpreter(&opts.uv, &target)?;
        let rel_in = format!("{}/requirements.txt", a.rel_dir);
        let rel_out = format!("{}/requirements-frozen.txt", a.rel_dir);
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
            .arg(format!("{}/{tmp_name}", a.rel_dir))
            .args(["--python", &interpreter])
            .args(["--python-version", &target.version])
            .arg("--custom-compile-command")
            .arg(format!(
                "uv pip compile --python-version {} {rel_in} -o {rel_out}",
                target.version
            ));
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
    /// remote (placeholders of builds under way included).
    pub fn tagged_versions(&self, app: &str) -> Result<Vec<ImageVersion>, Error> {
        let pattern = format!("{app}-*");
        let local = self.git_run(&["tag", "-l", &pattern])?;
        let mut names: Vec<String> = local.lines().map(String::from).collect();
        if self.git_ok(&["remote", "get-url", &self.remote]) {
            let remote = self.git_run(&[
                "ls-remote",
                "--tags",
                &self.remote,
                &format!("refs/tags/{pattern}"),
            ])?;
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
        let a = self.app(app)?;
        let mut taken = self.tagged_versions(app)?;
        if let Some(r) = registry {
            taken.extend(
                r.tags(&a.image, page_size)?
                    .iter()
                    .filter_map(|t| ImageVersion::parse(t)),
            );
        }
        Ok(version::next_version(date, taken))
    }

    /// The remote's tag `tag` (its object id), if any.
    fn remote_tag(&self, tag: &str) -> Result<Option<String>, Error> {
        let out = self.git_run(&["ls-remote", &self.remote, &format!("refs/tags/{tag}")])?;
        Ok(out
            .lines()
            .find(|l| l.ends_with(&format!("\trefs/tags/{tag}")))
            .and_then(|l| l.split('\t').next())
            .map(String::from))
    }

    /// Reserves the next free version of `app` before anything is pushed,
    /// as SWH's CI does: pushes a placeholder annotated tag
    /// `<app>-<version>` (on the remote branch's head); when the remote
    /// already has that tag (another build took the version meanwhile),
    /// takes the next one, at most [`RESERVE_ATTEMPTS`] times. Returns the
    /// version and the placeholder tag's object id (the final push replaces
    /// exactly that object).
    pub fn reserve_version(
        &self,
        app: &str,
        date: u32,
        branch: &str,
        registry: &Registry,
        page_size: Option<usize>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(ImageVersion, String), Error> {
        let remote_ref = format!("refs/remotes/{}/{branch}", self.remote);
        let base = if self.git_ok(&["rev-parse", "-q", "--verify", &remote_ref]) {
            remote_ref
        } else {
            "HEAD".to_string()
        };
        let mut refused = Vec::new();
        for _ in 0..RESERVE_ATTEMPTS {
            let version = self.next_version(app, date, Some(registry), page_size)?;
            let tag = format!("{app}-{version}");
            progress(&format!(
                "reserve {version}: push the placeholder tag {tag} to {}",
                self.remote
            ));
            let msg = format!("{tag}: Placeholder reserving the version (to be overwritten)");
            self.git_run(&["tag", "-f", "-a", &tag, "-m", &msg, &base])?;
            let oid = self.git_run(&["rev-parse", &format!("refs/tags/{tag}")])?;
            let pushed = self.git_run(&["push", "-q", &self.remote, &format!("refs/tags/{tag}")]);
            match pushed {
                Ok(_) => return Ok((version, oid)),
                Err(e) => {
                    let _ = self.git_run(&["tag", "-d", &tag]);
                    match self.remote_tag(&tag) {
                        // Taken by another build: fetch its tag so that the
                        // next round sees it, and try the next version.
                        Ok(Some(_)) => refused.push(version.to_string()),
                        _ => {
                            return Err(Error::Command(format!(
                                "cannot reserve {version} of {app}: pushing the placeholder tag {tag} failed (nothing was built or pushed): {e}"
                            )))
                        }
                    }
                }
            }
        }
        Err(Error::Command(format!(
            "cannot reserve a version of {app}: {} versions were taken by other builds meanwhile ({}); nothing was built or pushed, try again",
            refused.len(),
            refused.join(", ")
        )))
    }

    fn builder_steps(
        &self,
        app: &App,
        version: ImageVersion,
        opts: &BuildOptions,
    ) -> (Vec<Step>, Vec<Step>) {
        let image = opts.registry.image_ref(&app.image);
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
            format!("{}/Dockerfile", app.rel_dir),
            "--build-arg".into(),
            format!("REGISTRY={}", opts.registry.build_arg()),
            "-t".into(),
            versioned.clone(),
            "-t".into(),
            latest.clone(),
            app.rel_dir.clone(),
        ]);
        let builds = vec![Step {
            what: format!("build {versioned} with {prog} (also tagged latest)"),
            command: build,
        }];
        let mut pushes = Vec::new();
        for r in [&versioned, &latest] {
            let mut c = vec![prog.clone(), "push".into()];
            c.extend(tls.iter().cloned());
            c.push(r.clone());
            pushes.push(Step {
                what: format!("push {r} with {prog}"),
                command: c,
            });
        }
        (builds, pushes)
    }

    /// Before anything is built for a push: fetches the remote and refuses
    /// when the current branch is behind or has diverged from the remote's,
    /// since the final push could not succeed.
    pub fn check_up_to_date(&self) -> Result<(), Error> {
        let branch = self
            .git_run(&["symbolic-ref", "--short", "-q", "HEAD"])
            .map_err(|e| match e {
                Error::Input(_) => e,
                _ => Error::Input(format!(
                    "{}: HEAD is detached; check out the branch to push",
                    self.dir.display()
                )),
            })?;
        self.git_run(&["fetch", "-q", &self.remote])?;
        let remote_ref = format!("refs/remotes/{}/{branch}", self.remote);
        if !self.git_ok(&["rev-parse", "-q", "--verify", &remote_ref]) {
            return Ok(());
        }
        if !self.git_ok(&["merge-base", "--is-ancestor", &remote_ref, "HEAD"]) {
            return Err(Error::Input(format!(
                "{}: branch {branch} is behind or has diverged from {}/{branch}; pull first (nothing was built)",
                self.dir.display(),
                self.remote
            )));
        }
        Ok(())
    }

    /// Pushes the branch and the final tag atomically, replacing only the
    /// placeholder `placeholder` on the remote. When the remote branch moved
    /// meanwhile (another build pushed its commit), rebases onto it,
    /// re-tags and retries, at most [`PUSH_ATTEMPTS`] times.
    fn push_final(
        &self,
        branch: &str,
        tag: &str,
        tag_msg: &str,
        placeholder: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), Error> {
        let remote_ref = format!("refs/remotes/{}/{branch}", self.remote);
        let mut last = None;
        for attempt in 0..PUSH_ATTEMPTS {
            if attempt > 0 {
                progress(&format!(
                    "{}/{branch} moved: rebase onto it and push again",
                    self.remote
                ));
                if let Err(e) = self.git_run(&["rebase", "-q", "--autostash", &remote_ref]) {
                    let _ = self.git_run(&["rebase", "--abort"]);
                    return Err(e);
                }
            }
            self.git_run(&["tag", "-f", "-a", tag, "-m", tag_msg])?;
            let lease = format!("--force-with-lease=refs/tags/{tag}:{placeholder}");
            let pushed = self.git_run(&[
                "push",
                "-q",
                "--atomic",
                &lease,
                &self.remote,
                &format!("HEAD:refs/heads/{branch}"),
                &format!("refs/tags/{tag}"),
            ]);
            let Err(e) = pushed else {
                return Ok(());
            };
            // Retry only when the remote branch moved past our base.
            let old = self
                .git_run(&["rev-parse", "-q", "--verify", &remote_ref])
                .ok();
            self.git_run(&["fetch", "-q", &self.remote])?;
            let new = self
                .git_run(&["rev-parse", "-q", "--verify", &remote_ref])
                .ok();
            let moved = new.is_some()
                && (old != new
                    || !self.git_ok(&["merge-base", "--is-ancestor", &remote_ref, "HEAD"]));
            if !moved {
                return Err(e);
            }
            last = Some(e);
        }
        Err(last.unwrap_or_else(|| Error::Command("push failed".into())))
    }

    /// Deletes the placeholder `tag` from the remote if it is still
    /// `placeholder` (the version was reserved but nothing pushed).
    fn release_reservation(&self, tag: &str, placeholder: &str) -> Result<(), Error> {
        let lease = format!("--force-with-lease=refs/tags/{tag}:{placeholder}");
        self.git_run(&[
            "push",
            "-q",
            &lease,
            &self.remote,
            &format!(":refs/tags/{tag}"),
        ])
        .map(|_| ())
    }

    /// `app build`: freeze (python apps), reserve the version, commit
    /// `<app>-<version>: Build image` when the frozen requirements changed,
    /// build the image tagged `<version>` and `latest`.
    ///
    /// With `push`, the version is reserved before anything is pushed: a
    /// placeholder tag `<app>-<version>` pushed to the remote
    /// ([`Self::reserve_version`]), so that two builds of the same day get
    /// different versions and no pushed image is ever overwritten. Then the
    /// images are pushed, the annotated tag `<app>-<version>`
    /// (`<tag>: Bump new release`) replaces the placeholder and is pushed
    /// with the branch atomically (after a rebase if another build pushed
    /// meanwhile). A failure before any image push undoes the commit and
    /// deletes the placeholder; a failure after keeps the placeholder on
    /// the remote (that version may be in the registry: it stays taken).
    /// `progress` gets a line per step.
    pub fn build(
        &self,
        app: &str,
        date: u32,
        opts: &BuildOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<BuildOutcome, Error> {
        let a = self.app(app)?;
        let frozen_rel = format!("{}/requirements-frozen.txt", a.rel_dir);
        let python = a.kind == AppKind::Python;
        let branch = self
            .git_run(&["symbolic-ref", "--short", "-q", "HEAD"])
            .ok();
        if opts.push {
            progress(&format!(
                "check that the branch is up to date with {}",
                self.remote
            ));
            self.check_up_to_date()?;
        }
        let freeze = if python {
            progress(&format!(
                "freeze check: resolve {}/requirements.txt with uv",
                a.rel_dir
            ));
            Some(self.freeze(app, &opts.freeze, !opts.dry_run)?)
        } else {
            None
        };
        let mut steps = Vec::new();
        if let Some(f) = &freeze {
            steps.push(Step {
                what: format!("freeze {frozen_rel} ({} pin change(s))", f.changes.len()),
                command: vec![],
            });
        }
        // Known before the reservation, so that nothing fails between the
        // placeholder's push and the undo that deletes it.
        let dirty = python
            && !self
                .git_run(&["status", "--porcelain", "--", &frozen_rel])?
                .is_empty();
        let mut reservation = None;
        let version = if opts.push && !opts.dry_run {
            let Some(branch) = &branch else {
                return Err(Error::Input(format!(
                    "{}: HEAD is detached; check out the branch to push",
                    self.dir.display()
                )));
            };
            for s in &steps {
                progress(&s.what);
            }
            let (v, oid) =
                self.reserve_version(app, date, branch, &opts.registry, opts.page_size, progress)?;
            reservation = Some(oid);
            v
        } else {
            self.next_version(app, date, Some(&opts.registry), opts.page_size)?
        };
        let tag = format!("{app}-{version}");
        if opts.push {
            steps.push(Step {
                what: format!(
                    "reserve {version}: push the placeholder tag {tag} to {}",
                    self.remote
                ),
                command: vec![
                    "git".into(),
                    "push".into(),
                    self.remote.clone(),
                    format!("refs/tags/{tag}"),
                ],
            });
        }
        let image = opts.registry.image_ref(&a.image);
        let commit_msg = format!("{tag}: Build image");
        if dirty || (opts.dry_run && freeze.as_ref().is_some_and(|f| f.changed)) {
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
        let (builds, pushes) = self.builder_steps(&a, version, opts);
        steps.extend(builds.iter().cloned());
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
                what: format!("tag {tag} (replacing the placeholder)"),
                command: vec![
                    "git".into(),
                    "tag".into(),
                    "-f".into(),
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
                    format!("--force-with-lease=refs/tags/{tag}:PLACEHOLDER"),
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
            pin_changes: freeze.map(|f| f.changes).unwrap_or_default(),
            steps: steps.clone(),
            commit: None,
            pushed: false,
        };
        if opts.dry_run {
            return Ok(outcome);
        }
        if !opts.push {
            if let Some(s) = steps.first().filter(|s| s.command.is_empty()) {
                progress(&s.what);
            }
        }
        let before = self.git_run(&["rev-parse", "HEAD"])?;
        // Undo before any image push: the commit, the local tag and the
        // remote placeholder.
        let undo = |err: Error| -> Error {
            let _ = self.git_run(&["tag", "-d", &tag]);
            let _ = self.git_run(&["reset", "-q", "--soft", &before]);
            match &reservation {
                Some(oid) => match self.release_reservation(&tag, oid) {
                    Ok(()) => Error::Command(format!(
                        "{err}\nnothing was pushed; the build commit was undone and the placeholder tag {tag} deleted"
                    )),
                    Err(e) => Error::Command(format!(
                        "{err}\nnothing was pushed; the build commit was undone, but the placeholder tag {tag} could not be deleted ({e}): {version} stays reserved"
                    )),
                },
                None => err,
            }
        };
        if dirty {
            progress(&format!("commit {commit_msg}"));
            let committed = self
                .git_run(&["add", "--", &frozen_rel])
                .and_then(|_| self.git_run(&["commit", "-q", "-m", &commit_msg, "--", &frozen_rel]))
                .and_then(|_| self.git_run(&["rev-parse", "HEAD"]));
            match committed {
                Ok(c) => outcome.commit = Some(c),
                Err(e) => return Err(undo(e)),
            }
        }
        for s in &builds {
            progress(&s.what);
            let mut c = Command::new(&s.command[0]);
            c.args(&s.command[1..]).current_dir(&self.dir);
            if let Err(e) = run(&mut c) {
                return Err(undo(e));
            }
        }
        let Some(placeholder) = reservation.clone() else {
            return Ok(outcome);
        };
        // From the first image push on, the version stays reserved whatever
        // happens: an image may be in the registry under it.
        let build_commit = outcome.commit.clone();
        let kept = |err: Error| -> Error {
            let _ = self.git_run(&["tag", "-d", &tag]);
            // Undo the build commit unless a rebase moved it onto the remote.
            let head = self.git_run(&["rev-parse", "HEAD"]).ok();
            if head.is_some() && head == build_commit {
                let _ = self.git_run(&["reset", "-q", "--soft", &before]);
            }
            Error::Command(format!(
                "{err}\nthe build commit was undone; the placeholder tag {tag} stays on {} so that {version} (which may be in the registry) is never reused: the next build takes the next version",
                self.remote
            ))
        };
        for s in &pushes {
            progress(&s.what);
            let mut c = Command::new(&s.command[0]);
            c.args(&s.command[1..]).current_dir(&self.dir);
            if let Err(e) = run(&mut c) {
                return Err(kept(e));
            }
        }
        let branch = branch.unwrap_or_default();
        progress(&format!("tag {tag}"));
        progress(&format!("push {branch} and {tag}"));
        if let Err(e) = self.push_final(&branch, &tag, &tag_msg, &placeholder, progress) {
            return Err(kept(e));
        }
        outcome.commit = outcome
            .commit
            .map(|_| self.git_run(&["rev-parse", "HEAD"]))
            .transpose()?;
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
