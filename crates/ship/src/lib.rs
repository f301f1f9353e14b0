//! `swh-deploy ship MODULE VERSION`: the runbook's whole chain in one
//! command, from the release tag to production.
//!
//! # Model
//!
//! **Plan, then act.** [`plan`] turns the site file and the typed
//! [`ShipOptions`] into a [`ShipPlan`]: a list of [`Step`]s, each one being
//! an existing swh-deploy command (`release tag`, `release wait`,
//! `upgrade`, `app build --push`, `chart bump`, `chart promote`, `cluster
//! wait`) with the exact command line, hosts or files it touches, and the
//! notes on the paths not taken. `--dry-run` renders the plan and stops.
//!
//! **Idempotent steps.** Before acting, [`Step::is_done`] asks whether the
//! step's result is already there (the tag on the remote, the release on the
//! index / in the Debian repository, the hosts at the version, the app's
//! last image tag frozen on the version, the chart branch carrying the image
//! versions, the environment live in Argo CD) and returns the
//! [`Evidence`]; [`Step::perform`] does the step through the library that
//! owns it (`release`, `upgrade`, `apps`, `charts`, `cluster`) and returns
//! what it did. Re-running the same ship after a failure or Ctrl-C
//! therefore continues where it stopped: that is how a ship is resumed.
//!
//! **State between steps.** A [`Ship`] holds what the steps learn as they
//! go: the image version of each app (found built, or built now), the hosts
//! still behind the release, whether the chart release changes no image.
//!
//! **Journal.** [`execute`] records the ship as one journal run (mode
//! `ship`) with one step per plan step (`skipped` when already done); each
//! step's result names the runs its sub-command recorded (`release tag`,
//! `app build`, the upgrade's run...).
//!
//! **Stop at the first failure**, with the step and a [`ShipError`] that
//! says which exit code it means ([`ShipError::exit`]).
//!
//! Nothing here prints: progress goes to the caller's [`Reporter`] as
//! [`ShipEvent`]s, and the outcome is returned as data ([`ShipOutcome`]).

mod perform;
mod plan;
mod run;
mod state;

pub use plan::{plan, Action, ShipPlan, Step};
pub use run::{execute, Reporter, ShipEvent, ShipOutcome, StepFailure};
pub use state::Ship;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use swh_deploy_apps::Builder;
use swh_deploy_fleet::HostKeyPolicy;
use swh_deploy_release::publish::Channel;
use swh_deploy_release::{Module, ReleaseVersion};
use swh_deploy_upgrade::{BatchSpec, FailBudget, Mode};
use swh_deploy_util::Exit;

/// What to ship and how: the flags of `swh-deploy ship`, validated and
/// resolved (environment and site-file fallbacks applied by the caller).
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// The module released.
    pub module: Module,
    /// The release.
    pub version: ReleaseVersion,
    /// The static path: upgrade the hosts of the services shipping the
    /// module's Debian package.
    pub static_path: bool,
    /// The elastic path: rebuild the apps pinning the module, bump the
    /// chart, promote staging then production.
    pub elastic: bool,
    /// The module's checkout to tag and push (None: ship does not tag).
    pub repo: Option<PathBuf>,
    /// The checkout's remote.
    pub remote: String,
    /// Sign the tag (None: as git config says).
    pub sign: Option<bool>,
    /// Where the release is published (at least one).
    pub channels: Vec<Channel>,
    /// Static path: the upgrade mode.
    pub mode: Mode,
    /// Static path: the rolling batches, if given.
    pub batch: Option<BatchSpec>,
    /// Static path: the failure budget, if given.
    pub max_fail: Option<FailBudget>,
    /// Static path: the host-key policy of the ssh connections.
    pub host_keys: HostKeyPolicy,
    /// Static path: the environments in order (empty: staging, the others
    /// by name, production).
    pub envs: Vec<String>,
    /// Elastic path: the index uv freezes from (None: the PyPI channel's).
    pub index_url: Option<String>,
    /// Elastic path: the registry, as given (`--registry` or
    /// `$SWH_DEPLOY_REGISTRY`); None: the site file's `[registry]`.
    pub registry: Option<String>,
    /// Elastic path: the image builder.
    pub builder: Builder,
    /// Elastic path: the `uv` program.
    pub uv: PathBuf,
    /// Elastic path: the Python version the apps are frozen for, as given
    /// (`--python-version` or `$SWH_DEPLOY_PYTHON_VERSION`); None: the site
    /// file's `[apps] python_version`, else the checkout's own.
    pub python_version: Option<String>,
    /// Elastic path: the swh-apps checkout.
    pub apps_dir: PathBuf,
    /// Elastic path: the swh-charts checkout.
    pub charts_dir: PathBuf,
    /// Elastic path: the GitLab token for the next-version merge request
    /// lookup of a promotion.
    pub gitlab_token: Option<String>,
    /// Give up each wait (publication, Argo CD) after this long.
    pub timeout: Duration,
    /// `timeout` as the user wrote it (for messages and titles).
    pub timeout_text: String,
    /// Time between two looks while waiting.
    pub interval: Duration,
    /// The journal file (None: the default one).
    pub journal: Option<PathBuf>,
    /// The command line recorded with the runs.
    pub argv: Vec<String>,
}

/// What a step found or did, in one line (journaled as the step's result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence(pub String);

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a ship could not be planned or a step failed. Each says which exit
/// code it means ([`ShipError::exit`]).
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Neither `--static` nor `--elastic`.
    #[error("nothing to ship to: give --static (Debian packages on hosts) and/or --elastic (images, chart, Argo CD)")]
    NothingToShip,
    /// Bad input found while planning (site file, checkout, flags).
    #[error("{0}")]
    Input(String),
    /// A step failed; the message says what and how to fix it.
    #[error("{0}")]
    Failed(String),
    /// A gate (publication, Argo CD) was not reached before the timeout.
    #[error("{0}")]
    Timeout(String),
    /// An upgrade step ended with the upgrade's own exit (failure budget,
    /// locked hosts, pending compensations, interrupted...).
    #[error("{message}")]
    Upgrade {
        /// The upgrade's exit.
        exit: Exit,
        /// What happened.
        message: String,
    },
    /// The ship's journal could not be opened or its run started.
    #[error(transparent)]
    Journal(#[from] swh_deploy_journal::JournalError),
}

impl ShipError {
    /// The exit code this error means (see `swh-deploy exit-codes`).
    pub fn exit(&self) -> Exit {
        match self {
            ShipError::Timeout(_) => Exit::Timeout,
            ShipError::Upgrade { exit, .. } => *exit,
            ShipError::NothingToShip
            | ShipError::Input(_)
            | ShipError::Failed(_)
            | ShipError::Journal(_) => Exit::Failed,
        }
    }

    /// The same error with `more` appended to its message in parentheses
    /// (the sub-runs a failed step recorded).
    fn with_note(self, more: &str) -> ShipError {
        let add = |m: String| format!("{m} ({more})");
        match self {
            ShipError::Input(m) => ShipError::Input(add(m)),
            ShipError::Failed(m) => ShipError::Failed(add(m)),
            ShipError::Timeout(m) => ShipError::Timeout(add(m)),
            ShipError::Upgrade { exit, message } => ShipError::Upgrade {
                exit,
                message: add(message),
            },
            other => ShipError::Failed(add(other.to_string())),
        }
    }
}

/// `e` as a step failure (exit 1).
fn failed(e: impl fmt::Display) -> ShipError {
    ShipError::Failed(e.to_string())
}

/// `e` as bad input (exit 1).
fn input(e: impl fmt::Display) -> ShipError {
    ShipError::Input(e.to_string())
}

#[cfg(test)]
mod tests;
