//! The swh-deploy site file: what the fleet looks like.
//!
//! A site is one TOML file (see `docs/site.md` and `examples/`) describing:
//! - **environments** (`staging`, `production`), with the optional elastic-path
//!   settings of each (kube context, chart branch, Argo CD application);
//! - **host groups**, each either an inline node set (`nodes = "worker[01-16]"`)
//!   or a group of a ClusterShell group source (`source = "local"`);
//! - **services**: the systemd units they run (plain `gunicorn-swh-storage` or
//!   template instances `swh-worker@{loader_git,lister}`), their kind (worker,
//!   rpc, journal-client), the Debian packages they come from, the groups that
//!   run them and their health check (`systemd`, `http`, `command`);
//! - **ssh** options (ssh_config, user, connect timeout, fan-out);
//! - optional sections for the elastic path: `apps` and `charts` checkouts,
//!   `registry`, `argocd`.
//! - optional `release`: where CI publishes module releases (package index,
//!   Debian repository and suite), for `release wait`.
//!
//! [`find_site_file`] locates the file (`--site`, `SWH_DEPLOY_SITE`,
//! `./swh-deploy.toml`, `/etc/swh-deploy/site.toml`), [`Site::load`] parses and
//! validates it. Every error names `file:line:column` and what was expected.
//! Unit names, package names and versions are the validated newtypes of
//! [`names`], so nothing unchecked can reach a command line.

mod groups;
pub mod hosts;
pub mod names;
mod raw;
pub mod sshopt;

pub use groups::{bound_hosts, SiteGroups, MAX_HOSTS, SITE_SOURCE, TOO_MANY_HOSTS};
pub use hosts::{check_host_name, check_node_set_hosts, is_host_name};
pub use raw::parse_duration;

pub use names::{NameError, PackageName, UnitName};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the site file.
pub const SITE_ENV: &str = "SWH_DEPLOY_SITE";
/// The site file looked for in the current directory.
pub const LOCAL_SITE_FILE: &str = "swh-deploy.toml";
/// The system-wide site file.
pub const SYSTEM_SITE_FILE: &str = "/etc/swh-deploy/site.toml";

/// A position in a site file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The site file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` of `text`, read from `file`.
    pub fn from_offset(file: &Path, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location {
            file: file.to_owned(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Everything that can go wrong finding, reading or validating a site file.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The file is not valid: bad TOML, wrong type, unknown key, bad name...
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What was expected.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read site file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A site file given with `--site` or `SWH_DEPLOY_SITE` does not exist.
    #[error("site file {} (from {origin}) does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// `--site` or `SWH_DEPLOY_SITE`.
        origin: &'static str,
    },
    /// No site file anywhere.
    #[error("no site file found: give one with --site FILE or {SITE_ENV}, or create {}", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or "))]
    NotFound {
        /// The places looked at, in order.
        tried: Vec<PathBuf>,
    },
    /// A name given on the command line is not in the site.
    #[error("{message}")]
    Unknown {
        /// What is unknown and what is known.
        message: String,
    },
    /// A node set (of the site, of a ClusterShell group source or of the
    /// command line) names something that is not a host name: ssh could
    /// misread it, so the set is unusable.
    #[error("{message}")]
    NotAHostName {
        /// The offending name.
        name: String,
        /// The whole message: where the set came from, the name, why.
        message: String,
    },
    /// A node set names more hosts than a site may plan ([`MAX_HOSTS`]).
    #[error("node set `{expr}` names {count} hosts, more than the {MAX_HOSTS} {TOO_MANY_HOSTS}")]
    TooManyHosts {
        /// The node set as given.
        expr: String,
        /// How many hosts it names.
        count: usize,
    },
    /// A group of the site resolves to an unusable node set (see
    /// [`SiteError::makes_site_unusable`]).
    #[error("group @{group} ({defined_at}): {source}")]
    UnusableGroup {
        /// The group.
        group: String,
        /// Where the group is defined.
        defined_at: Location,
        /// Why its node set is unusable.
        source: Box<SiteError>,
    },
}

impl SiteError {
    /// The exit a site error means: [`swh_deploy_util::Exit::Failed`] (bad
    /// input).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }

    /// True for the errors that make a node set unusable wherever it is
    /// resolved (a name that is not a host name, too many hosts), unlike a
    /// group source that is merely not available here.
    pub fn makes_site_unusable(&self) -> bool {
        matches!(
            self,
            SiteError::NotAHostName { .. }
                | SiteError::TooManyHosts { .. }
                | SiteError::UnusableGroup { .. }
        )
    }
}

/// Finds the site file: `explicit` (`--site`), else `$SWH_DEPLOY_SITE`, else
/// `./swh-deploy.toml`, else `/etc/swh-deploy/site.toml`.
pub fn find_site_file(explicit: Option<&Path>) -> Result<PathBuf, SiteError> {
    find_site_file_in(
        explicit,
        std::env::var_os(SITE_ENV),
        Path::new("."),
        Path::new(SYSTEM_SITE_FILE),
    )
}

/// [`find_site_file`] with its inputs explicit (for tests): the value of
/// `SWH_DEPLOY_SITE`, the current directory and the system-wide file.
pub fn find_site_file_in(
    explicit: Option<&Path>,
    env: Option<OsString>,
    cwd: &Path,
    system: &Path,
) -> Result<PathBuf, SiteError> {
    if let Some(path) = explicit {
        return if path.exists() {
            Ok(path.to_owned())
        } else {
            Err(SiteError::Missing {
                path: path.to_owned(),
                origin: "--site",
            })
        };
    }
    if let Some(env) = env.filter(|e| !e.is_empty()) {
        let path = PathBuf::from(env);
        return if path.exists() {
            Ok(path)
        } else {
            Err(SiteError::Missing {
                path,
                origin: SITE_ENV,
            })
        };
    }
    let local = cwd.join(LOCAL_SITE_FILE);
    if local.exists() {
        return Ok(local);
    }
    if system.exists() {
        return Ok(system.to_owned());
    }
    Err(SiteError::NotFound {
        tried: vec![local, system.to_owned()],
    })
}

/// A validated site.
#[derive(Debug, Clone)]
pub struct Site {
    /// The file it was read from.
    pub path: PathBuf,
    /// Optional human name (`[site] name`).
    pub name: Option<String>,
    /// The environment used when `--env` is not given (`[site]
    /// default_environment`).
    pub default_environment: Option<String>,
    /// How hosts are reached.
    pub ssh: SshOptions,
    /// Where ClusterShell group sources are configured.
    pub clustershell: ClusterShellOptions,
    /// Environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// Host groups by name (without `@`).
    pub groups: BTreeMap<String, HostGroup>,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// The swh-apps checkout (elastic path), if configured.
    pub apps: Option<AppsOptions>,
    /// The swh-charts checkout (elastic path), if configured.
    pub charts: Option<ChartsOptions>,
    /// The OCI registry (elastic path), if configured.
    pub registry: Option<RegistryOptions>,
    /// The Argo CD server (elastic path), if configured.
    pub argocd: Option<ArgoCdOptions>,
    /// Where module releases are published (`release wait`), if configured.
    pub release: Option<ReleaseOptions>,
}

/// `[ssh]`: how swh-deploy reaches hosts with the system `ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// An ssh_config file passed with `-F` (relative paths are relative to the
    /// site file); `None` uses the user's usual configuration.
    pub config: Option<PathBuf>,
    /// Remote user (`-l`); `None` lets ssh_config decide.
    pub user: Option<String>,
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// How many hosts are worked on at once.
    pub fanout: usize,
    /// Reuse of ssh connections (`reuse`, default true): `run` keeps one
    /// master connection per host open for the next commands, an upgrade
    /// one per host for all its steps; false opens a fresh connection for
    /// every command.
    pub reuse: bool,
    /// Sessions opened by swh-deploy itself on a live master's control
    /// socket (`mux`, default true); false starts an `ssh` client for
    /// every command, which then goes through the master.
    pub mux: bool,
    /// Extra `-o Key=Value` options.
    pub options: Vec<String>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            config: None,
            user: None,
            connect_timeout: Duration::from_secs(10),
            fanout: 64,
            reuse: true,
            mux: true,
            options: Vec::new(),
        }
    }
}

/// `[clustershell]`: where group sources are configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterShellOptions {
    /// ClusterShell's configuration directory, containing `groups.conf` and
    /// `groups.d/` (default: ClusterShell's own search path,
    /// `$CLUSTERSHELL_CFGDIR`, `~/.config/clustershell`, `/etc/clustershell`).
    pub config_dir: Option<PathBuf>,
}

/// `[environments.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// `staging`, `production`, ...
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The kube context of this environment (elastic path).
    pub kube_context: Option<String>,
    /// The swh-charts branch Argo CD tracks for this environment.
    pub chart_branch: Option<String>,
    /// The Argo CD application deploying this environment.
    pub argocd_application: Option<String>,
    /// The Kubernetes namespace of the applications.
    pub namespace: Option<String>,
}

/// `[groups.NAME]`: a host group, used as `@NAME` in node sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    /// The group name (without `@`).
    pub name: String,
    /// The environment the group belongs to, if any.
    pub environment: Option<String>,
    /// Where its hosts come from.
    pub members: GroupMembers,
    /// Where the group is defined.
    pub defined_at: Location,
}

/// Where the hosts of a group come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMembers {
    /// An inline node set, e.g. `worker[01-16].internal.softwareheritage.org`
    /// (it may itself name other `@groups`).
    Nodes(String),
    /// Group `group` of ClusterShell group source `source`.
    Source {
        /// The group source name (a section of `groups.conf`, or a
        /// `groups.d/*.yaml` source).
        source: String,
        /// The group name in that source.
        group: String,
    },
}

/// `kind` of a service, the three kinds of the runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKind {
    /// Loaders, listers, cookers (`swh-worker@...`).
    Worker,
    /// RPC servers (`gunicorn-swh-...`).
    Rpc,
    /// Journal clients (`swh-...-journal-client...`).
    JournalClient,
}

impl ServiceKind {
    /// The name used in site files.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Worker => "worker",
            ServiceKind::Rpc => "rpc",
            ServiceKind::JournalClient => "journal-client",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[services.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// The service name.
    pub name: String,
    /// Worker, rpc or journal client.
    pub kind: ServiceKind,
    /// The units to restart after an upgrade (templates are expanded).
    pub units: Vec<UnitName>,
    /// The packages the service comes from.
    pub packages: Vec<PackageName>,
    /// The groups whose hosts run the service.
    pub groups: Vec<String>,
    /// How to tell the service is healthy after a restart.
    pub health: HealthCheck,
    /// Where the service is defined.
    pub defined_at: Location,
}

/// A health check and its gate: the probe is retried every `interval` until
/// it passes or `deadline` has passed since the restart.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// What is checked.
    pub probe: Probe,
    /// Give up after this long.
    pub deadline: Duration,
    /// Wait this long between attempts.
    pub interval: Duration,
}

/// What a health check checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// `systemctl is-active` of every unit of the service.
    Systemd,
    /// `GET http://HOST:port/path` answers 200 with a body containing
    /// `expect` (the SWH RPC servers answer `SWH <Name> API server` on `/`).
    Http {
        /// TCP port.
        port: u16,
        /// Path, starting with `/`.
        path: String,
        /// Text the body must contain.
        expect: Option<String>,
        /// Timeout of one request.
        timeout: Duration,
    },
    /// A shell command run on the host, healthy when it exits 0. It is
    /// written by the site's author and sent as is (like `swh-deploy run`).
    Command {
        /// The shell command.
        command: String,
        /// Timeout of one attempt.
        timeout: Duration,
    },
}

impl Probe {
    /// The name used in site files (`systemd`, `http`, `command`).
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Systemd => "systemd",
            Probe::Http { .. } => "http",
            Probe::Command { .. } => "command",
        }
    }
}

/// `[apps]`: the swh-apps checkout (elastic path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppsOptions {
    /// Path of the git checkout.
    pub checkout: PathBuf,
    /// Git remote to push to (default `origin`).
    pub remote: String,
    /// The Python version requirements are frozen for (`python_version =
    /// "3.11"`; default: the swh-apps checkout's own, else 3.11).
    pub python_version: Option<String>,
}

/// `[charts]`: the swh-charts checkout (elastic path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartsOptions {
    /// Path of the git checkout.
    pub checkout: PathBuf,
    /// Git remote to push to (default `origin`).
    pub remote: String,
    /// The versions file, relative to the checkout (default
    /// `values-swh-application-versions.yaml`).
    pub values_file: String,
    /// The GitLab API of the swh-charts project
    /// (`https://gitlab.softwareheritage.org/api/v4/projects/77`), where
    /// the merge request of swh-next-version is looked up to name its
    /// Argo CD Application (`{number}` in `argocd_application`).
    pub merge_requests: Option<String>,
}

/// `[registry]`: the OCI registry images are pushed to (elastic path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Registry host (and port), e.g. `container-registry.softwareheritage.org`.
    pub host: String,
    /// Repository prefix, e.g. `swh/infra/swh-apps`.
    pub prefix: String,
    /// Use plain HTTP (only for a loopback test registry).
    pub insecure: bool,
}

/// `[release]`: where CI publishes module releases, for `release wait`
/// (flags and environment variables win).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseOptions {
    /// PyPI-style simple index, e.g. `https://pypi.org/simple/`.
    pub index_url: Option<String>,
    /// Debian repository root, e.g. `https://debian.softwareheritage.org/`.
    pub apt_url: Option<String>,
    /// Its suite (`bookworm-swh`); none: a flat repository.
    pub apt_suite: Option<String>,
}

/// `[argocd]`: the Argo CD API server (elastic path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoCdOptions {
    /// Base URL, e.g. `https://argocd.internal.admin.swh.network`.
    pub url: String,
    /// Name of the environment variable holding the API token (the token
    /// itself is never written in the site file).
    pub token_env: String,
}

impl Site {
    /// Reads and validates the site file at `path`.
    pub fn load(path: &Path) -> Result<Site, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SiteError::Read {
            path: path.to_owned(),
            source,
        })?;
        Site::parse(&text, path)
    }

    /// Finds ([`find_site_file`]) and loads the site file.
    pub fn discover(explicit: Option<&Path>) -> Result<Site, SiteError> {
        Site::load(&find_site_file(explicit)?)
    }

    /// Parses and validates `text`, read from `path` (used in messages and
    /// to resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Site, SiteError> {
        raw::parse(text, path)
    }

    /// The group `name` (with or without `@`), or an error listing the known
    /// groups.
    pub fn group(&self, name: &str) -> Result<&HostGroup, SiteError> {
        let name = name.strip_prefix('@').unwrap_or(name);
        self.groups.get(name).ok_or_else(|| SiteError::Unknown {
            message: format!(
                "no group `{name}` in {} (known: {})",
                self.path.display(),
                known(self.groups.keys())
            ),
        })
    }

    /// The service `name`, or an error listing the known services.
    pub fn service(&self, name: &str) -> Result<&Service, SiteError> {
        self.services.get(name).ok_or_else(|| SiteError::Unknown {
            message: format!(
                "no service `{name}` in {} (known: {})",
                self.path.display(),
                known(self.services.keys())
            ),
        })
    }

    /// The environment `name`, or an error listing the known environments.
    pub fn environment(&self, name: &str) -> Result<&Environment, SiteError> {
        self.environments
            .get(name)
            .ok_or_else(|| SiteError::Unknown {
                message: format!(
                    "no environment `{name}` in {} (known: {})",
                    self.path.display(),
                    known(self.environments.keys())
                ),
            })
    }

    /// The groups of environment `env` (all groups when `env` is `None`).
    pub fn groups_in<'a>(
        &'a self,
        env: Option<&'a str>,
    ) -> impl Iterator<Item = &'a HostGroup> + 'a {
        self.groups
            .values()
            .filter(move |g| env.is_none() || g.environment.as_deref() == env)
    }

    /// The services run by group `group`.
    pub fn services_of_group(&self, group: &str) -> impl Iterator<Item = &Service> {
        let group = group.to_owned();
        self.services
            .values()
            .filter(move |s| s.groups.contains(&group))
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
