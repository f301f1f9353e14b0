//! Settings resolved once: every environment variable the binary reads,
//! and the one order in which a value is taken.
//!
//! For each setting: the command-line flag ([`Args`]), else its environment
//! variable ([`Env`]), else the site file, else a default. An environment
//! variable that is set but empty (or only spaces) counts as unset, for
//! every variable alike (`SWH_DEPLOY_UV=` means `uv` from `PATH` for `app`,
//! `ship` and `doctor`; `NO_COLOR=` does not turn colours off, as
//! no-color.org says). Commands build [`Args`] from their flags, call
//! [`Settings::resolve`] and read fields; they do not call `std::env`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use swh_deploy_site::Site;

/// The site file (`--site`).
pub const SITE: &str = "SWH_DEPLOY_SITE";
/// The journal database (`--journal`).
pub const JOURNAL: &str = "SWH_DEPLOY_JOURNAL";
/// The swh-apps checkout (`--apps-dir`).
pub const APPS_DIR: &str = "SWH_DEPLOY_APPS_DIR";
/// The swh-charts checkout (`--charts-dir`).
pub const CHARTS_DIR: &str = "SWH_DEPLOY_CHARTS_DIR";
/// The image registry prefix (`--registry`).
pub const REGISTRY: &str = "SWH_DEPLOY_REGISTRY";
/// The Python version requirements are frozen for (`--python-version`).
pub const PYTHON_VERSION: &str = "SWH_DEPLOY_PYTHON_VERSION";
/// The uv program (`--uv`).
pub const UV: &str = "SWH_DEPLOY_UV";
/// The package index a release is published on (`--pypi`).
pub const INDEX_URL: &str = "SWH_DEPLOY_INDEX_URL";
/// The Debian repository a release is published in (`--apt`).
pub const APT_URL: &str = "SWH_DEPLOY_APT_URL";
/// The Debian repository's suite (`--suite`).
pub const APT_SUITE: &str = "SWH_DEPLOY_APT_SUITE";
/// The GitLab token for merge requests (never a flag: no secret in argv).
pub const GITLAB_TOKEN: &str = "GITLAB_TOKEN";
/// Set and not empty: no colours (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// The user's runtime directory: `run --control-persist` keeps its ssh
/// sockets there.
pub const RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// The user's home directory: `doctor` expands `~/` in the file names
/// `ssh -G` prints.
pub const HOME: &str = "HOME";

/// Every variable above, for documentation and `doctor`.
pub const ALL: [&str; 14] = [
    SITE,
    JOURNAL,
    APPS_DIR,
    CHARTS_DIR,
    REGISTRY,
    PYTHON_VERSION,
    UV,
    INDEX_URL,
    APT_URL,
    APT_SUITE,
    GITLAB_TOKEN,
    NO_COLOR,
    RUNTIME_DIR,
    HOME,
];

/// A snapshot of environment variables (the process's, or a test's).
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
}

impl Env {
    /// The variables of [`ALL`] in this process's environment.
    pub fn process() -> Env {
        Env::from_pairs(
            ALL.iter()
                .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v))),
        )
    }

    /// An environment made of `pairs`.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`; `None` when unset, empty or only spaces.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(OsStr::new(name))
            .map(OsString::as_os_str)
            .filter(|v| !v.to_string_lossy().trim().is_empty())
    }

    /// [`Env::get`] as text (lossy for non-UTF-8 bytes).
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.to_string_lossy().into_owned())
    }

    /// [`Env::get`] as a path.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }
}

/// What the command line gave; `None`: the flag was not given (or the
/// command has no such flag).
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// `--site FILE`.
    pub site: Option<PathBuf>,
    /// `--journal FILE`.
    pub journal: Option<PathBuf>,
    /// `--apps-dir DIR`.
    pub apps_dir: Option<PathBuf>,
    /// `--charts-dir DIR`.
    pub charts_dir: Option<PathBuf>,
    /// `--registry PREFIX`.
    pub registry: Option<String>,
    /// `--python-version 3.N`.
    pub python_version: Option<String>,
    /// `--uv PROGRAM`.
    pub uv: Option<PathBuf>,
    /// `--pypi URL`.
    pub index_url: Option<String>,
    /// `--apt URL`.
    pub apt_url: Option<String>,
    /// `--suite SUITE`.
    pub apt_suite: Option<String>,
}

/// The settings of one command, each resolved once (flag, else
/// environment, else site file, else default).
#[derive(Clone)]
pub struct Settings {
    /// The site file asked for (`--site`, else `$SWH_DEPLOY_SITE`); `None`:
    /// the site crate looks in its default places.
    pub site_file: Option<PathBuf>,
    /// The journal database asked for (`--journal`, else
    /// `$SWH_DEPLOY_JOURNAL`); `None`: the journal crate's default.
    pub journal: Option<PathBuf>,
    /// The swh-apps checkout: flag, env, the site's `[apps] checkout`, `.`.
    pub apps_dir: PathBuf,
    /// The swh-apps remote: the site's `[apps] remote`, else `origin`.
    pub apps_remote: String,
    /// The swh-charts checkout: flag, env, the site's `[charts] checkout`.
    pub charts_dir: Option<PathBuf>,
    /// The registry prefix: flag, env, the site's `[registry]`.
    pub registry: Option<String>,
    /// The Python version to freeze for: flag, env, the site's `[apps]
    /// python_version`; `None`: the checkout's own.
    pub python_version: Option<String>,
    /// The uv program: flag, env, else `uv` from `PATH`.
    pub uv: PathBuf,
    /// The package index: flag, env, the site's `[release] index_url`.
    pub index_url: Option<String>,
    /// The Debian repository: flag, env, the site's `[release] apt_url`.
    pub apt_url: Option<String>,
    /// The Debian suite: flag, env, the site's `[release] apt_suite`.
    pub apt_suite: Option<String>,
    /// `$GITLAB_TOKEN` (shown as `***` by `Debug`).
    pub gitlab_token: Option<String>,
    /// Colours are off (`$NO_COLOR` set and not empty).
    pub no_color: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("site_file", &self.site_file)
            .field("journal", &self.journal)
            .field("apps_dir", &self.apps_dir)
            .field("apps_remote", &self.apps_remote)
            .field("charts_dir", &self.charts_dir)
            .field("registry", &self.registry)
            .field("python_version", &self.python_version)
            .field("uv", &self.uv)
            .field("index_url", &self.index_url)
            .field("apt_url", &self.apt_url)
            .field("apt_suite", &self.apt_suite)
            .field("gitlab_token", &self.gitlab_token.as_ref().map(|_| "***"))
            .field("no_color", &self.no_color)
            .finish()
    }
}

/// A flag given as an empty string counts as not given, like an empty
/// variable.
fn given<T: AsRef<OsStr> + Clone>(flag: &Option<T>) -> Option<T> {
    flag.as_ref()
        .filter(|v| !v.as_ref().to_string_lossy().trim().is_empty())
        .cloned()
}

impl Settings {
    /// The site file asked for, before the site is loaded: `--site`, else
    /// `$SWH_DEPLOY_SITE`.
    pub fn site_path(args: &Args, env: &Env) -> Option<PathBuf> {
        given(&args.site).or_else(|| env.path(SITE))
    }

    /// The journal asked for: `--journal` (`flag`), else
    /// `$SWH_DEPLOY_JOURNAL`; `None`: the journal crate's default. The
    /// libraries read no environment: every journaled call gets this.
    pub fn journal_path(flag: Option<&Path>, env: &Env) -> Option<PathBuf> {
        given(&flag.map(Path::to_path_buf)).or_else(|| env.path(JOURNAL))
    }

    /// Resolves every setting from the flags, the environment and the site
    /// file (when one was loaded).
    pub fn resolve(args: &Args, env: &Env, site: Option<&Site>) -> Settings {
        use swh_deploy_apps::resolve as apps;
        let apps_dir = given(&args.apps_dir).or_else(|| env.path(APPS_DIR));
        let registry = given(&args.registry).or_else(|| env.string(REGISTRY));
        let python = given(&args.python_version).or_else(|| env.string(PYTHON_VERSION));
        let uv = given(&args.uv).or_else(|| env.path(UV));
        let release = site.and_then(|s| s.release.as_ref());
        let pick = |flag: &Option<String>, var: &str, from_site: Option<&Option<String>>| {
            given(flag)
                .or_else(|| env.string(var))
                .or_else(|| from_site.and_then(Clone::clone))
        };
        Settings {
            site_file: Settings::site_path(args, env),
            journal: Settings::journal_path(args.journal.as_deref(), env),
            apps_dir: apps::apps_dir(apps_dir.as_deref(), site),
            apps_remote: apps::apps_remote(site),
            charts_dir: given(&args.charts_dir)
                .or_else(|| env.path(CHARTS_DIR))
                .or_else(|| {
                    site.and_then(|s| s.charts.as_ref())
                        .map(|c| c.checkout.clone())
                }),
            registry: apps::registry_text(registry.as_deref(), site),
            python_version: apps::python_version(python.as_deref(), site),
            uv: apps::uv_program(uv.as_deref()),
            index_url: pick(&args.index_url, INDEX_URL, release.map(|r| &r.index_url)),
            apt_url: pick(&args.apt_url, APT_URL, release.map(|r| &r.apt_url)),
            apt_suite: pick(&args.apt_suite, APT_SUITE, release.map(|r| &r.apt_suite)),
            gitlab_token: env.string(GITLAB_TOKEN),
            no_color: env.get(NO_COLOR).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn site(dir: &Path, extra: &str) -> Site {
        let path = dir.join("site.toml");
        let text = format!("[groups.web]\nnodes = \"web1\"\n{extra}");
        Site::parse(&text, &path).unwrap()
    }

    #[test]
    fn flag_then_environment_then_site_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let s = site(
            dir.path(),
            "[apps]\ncheckout = \"/srv/apps\"\n[charts]\ncheckout = \"/srv/charts\"\n",
        );
        let env = Env::from_pairs([(APPS_DIR, "/env/apps"), (SITE, "/env/site.toml")]);
        let args = Args {
            charts_dir: Some("/flag/charts".into()),
            ..Args::default()
        };
        let got = Settings::resolve(&args, &env, Some(&s));
        assert_eq!(got.apps_dir, PathBuf::from("/env/apps"), "env over site");
        assert_eq!(
            got.charts_dir,
            Some(PathBuf::from("/flag/charts")),
            "flag over site"
        );
        assert_eq!(got.site_file, Some(PathBuf::from("/env/site.toml")));
        let got = Settings::resolve(&Args::default(), &Env::default(), Some(&s));
        assert_eq!(
            got.apps_dir,
            PathBuf::from("/srv/apps"),
            "site over default"
        );
        assert_eq!(got.charts_dir, Some(PathBuf::from("/srv/charts")));
        let got = Settings::resolve(&Args::default(), &Env::default(), None);
        assert_eq!(got.apps_dir, PathBuf::from("."));
        assert_eq!(got.charts_dir, None);
        assert_eq!(got.uv, PathBuf::from("uv"));
        assert_eq!(got.apps_remote, "origin");
    }

    #[test]
    fn an_empty_variable_is_unset_for_every_variable() {
        let env = Env::from_pairs(ALL.iter().map(|n| (*n, "")));
        let got = Settings::resolve(&Args::default(), &env, None);
        assert_eq!(
            got.uv,
            PathBuf::from("uv"),
            "SWH_DEPLOY_UV= means uv from PATH"
        );
        assert!(!got.no_color, "NO_COLOR= keeps colours");
        assert_eq!(got.gitlab_token, None);
        assert_eq!(got.journal, None);
        assert_eq!(got.site_file, None);
        assert_eq!(got.registry, None);
        let env = Env::from_pairs([(UV, " "), (NO_COLOR, "1")]);
        let got = Settings::resolve(&Args::default(), &env, None);
        assert_eq!(got.uv, PathBuf::from("uv"));
        assert!(got.no_color);
    }

    #[test]
    fn release_urls_come_from_the_site_last() {
        let dir = tempfile::tempdir().unwrap();
        let s = site(
            dir.path(),
            "[release]\nindex_url = \"https://pypi.example/simple/\"\napt_suite = \"bookworm\"\n",
        );
        let env = Env::from_pairs([(APT_SUITE, "trixie")]);
        let got = Settings::resolve(&Args::default(), &env, Some(&s));
        assert_eq!(
            got.index_url.as_deref(),
            Some("https://pypi.example/simple/")
        );
        assert_eq!(got.apt_suite.as_deref(), Some("trixie"));
        assert_eq!(got.apt_url, None);
    }

    #[test]
    fn the_journal_is_the_flag_then_the_variable() {
        let env = Env::from_pairs([(JOURNAL, "/env/j.sqlite")]);
        assert_eq!(
            Settings::journal_path(Some(Path::new("/flag/j.sqlite")), &env),
            Some(PathBuf::from("/flag/j.sqlite"))
        );
        assert_eq!(
            Settings::journal_path(None, &env),
            Some(PathBuf::from("/env/j.sqlite"))
        );
        let empty = Env::from_pairs([(JOURNAL, " ")]);
        assert_eq!(Settings::journal_path(Some(Path::new("")), &empty), None);
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let env = Env::from_pairs([(GITLAB_TOKEN, "glpat-secret")]);
        let got = Settings::resolve(&Args::default(), &env, None);
        assert_eq!(got.gitlab_token.as_deref(), Some("glpat-secret"));
        assert!(!format!("{got:?}").contains("glpat-secret"));
    }
}
