//! The static path of the runbook: upgrading Debian packages on groups of
//! hosts and restarting the right services, safely.
//!
//! This crate plans; it does not touch hosts (the executor, built on the
//! `fleet` and `journal` crates, runs the plans). The model:
//!
//! - [`select`] turns what the operator named (`-w NODES`, `@group`,
//!   `--service S`, `--env E`) into target hosts and the services that run
//!   on them, from the [site](swh_deploy_site::Site).
//! - [`plan`] builds a [`Plan`] for a [`Mode`]:
//!   - **nominal**: per batch, `apt-get update`, the non-interactive
//!     `dist-upgrade` (or `--only-upgrade install` of `--packages`), restart
//!     of the selected services' units on the hosts that run them, then the
//!     health gate; versions are read before and after;
//!   - **config-change**: `puppet agent -t` first in each batch (exit 0 and
//!     2 are success), then nominal;
//!   - **long-standing**: on all targets first `systemctl stop cron.service`
//!     and `puppet agent --disable "swh-deploy <run id>: <reason>"` (each
//!     with its compensation, `start-cron` / `enable-puppet`, to be written
//!     to the journal before the side effect), then `--migration` once on the
//!     first host, then nominal, then the compensations on all targets.
//! - [`BatchSpec`] (`--batch 1,10%,100%`) splits the targets into rolling
//!   batches, the first one being the canary; [`FailBudget`] (`--max-fail
//!   N|P%`) says how many hosts may fail over the whole run before no new
//!   batch starts.
//! - Every command sent to a host is a [`RemoteCommand`], built from
//!   validated names and shell-quoted.
//!
//! A plan renders for humans ([`Plan::render`], `--dry-run`) and as JSON
//! ([`Plan::to_json`]).

pub mod batch;
pub mod command;
pub mod driver;
pub mod execute;
pub mod guard;
pub mod health;
pub mod html;
pub mod plan;
pub mod recover;
pub mod request;
pub mod rollback;
pub mod ssh;
pub mod versions;

pub use batch::{BatchSize, BatchSpec, FailBudget, SpecError};
pub use command::{compensation_command, parse_installed_versions, RemoteCommand};
pub use plan::{
    plan, Action, Batch, CompensationSpec, Mode, ModeError, Plan, PlanError, PlanRequest,
    PlannedProbe, ServiceOnHosts, Step, StepKind,
};
pub use request::{PlanRequestError, RequestError, UpgradeRequest};

use swh_deploy_nodeset::NodeSet;
use swh_deploy_site::{Site, SiteError, SITE_SOURCE};

/// What the operator selected, resolved against the site.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The target hosts, in node-set order.
    pub targets: Vec<String>,
    /// The selected services and the targets that run them.
    pub services: Vec<ServiceOnHosts>,
    /// The environment the services' groups were taken from (`None`: all).
    pub environment: Option<String>,
}

/// Why a selection failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The site could not answer (unknown group, service, environment,
    /// bad node set...).
    #[error(transparent)]
    Site(#[from] SiteError),
    /// Nothing selected.
    #[error("no target hosts: give -w NODES, @group or --service SERVICE")]
    NoTargets,
    /// A named service runs on none of the targets.
    #[error("service `{service}` runs on none of the target hosts {targets}{env}")]
    ServiceNotOnTargets {
        /// The service.
        service: String,
        /// The targets, folded.
        targets: String,
        /// ` in environment E`, or empty.
        env: String,
    },
}

impl SelectError {
    /// The exit a selection error means: [`swh_deploy_util::Exit::Failed`]
    /// (bad input).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// Resolves the targets and services of an upgrade.
///
/// - `nodes`: node sets given with `-w` or as `@group` arguments; when
///   empty, the targets are the hosts of the `services`.
/// - `services`: `--service` names; when empty, every service running on
///   one of the targets is selected.
/// - `env`: `--env`; when `None` and the targets come from `--service`, the
///   site's `default_environment` applies (so `--service storage` alone
///   never reaches production unless production is the default). A
///   service's hosts are those of its groups in that environment (groups
///   without environment always count).
pub fn select(
    site: &Site,
    env: Option<&str>,
    nodes: &[String],
    services: &[String],
) -> Result<Selection, SelectError> {
    if nodes.is_empty() && services.is_empty() {
        return Err(SelectError::NoTargets);
    }
    let env = match env {
        Some(e) => Some(site.environment(e)?.name.clone()),
        None if nodes.is_empty() => site.default_environment.clone(),
        None => None,
    };
    let resolver = site.resolver()?;
    // A set larger than a site may plan is refused before it is expanded.
    let bounded = swh_deploy_site::bound_hosts;
    let parse = |expr: &str| {
        let set = NodeSet::parse_with(expr, &resolver).map_err(|e| SiteError::Unknown {
            message: format!("invalid node set `{expr}`: {e}"),
        })?;
        bounded(set, expr)
    };
    for name in services {
        site.service(name)?;
    }
    // Hosts of each service, within the environment.
    let mut service_hosts: Vec<(&swh_deploy_site::Service, NodeSet)> = Vec::new();
    for service in site.services.values() {
        if !services.is_empty() && !services.contains(&service.name) {
            continue;
        }
        let mut hosts = NodeSet::new();
        for g in &service.groups {
            let group = site.group(g)?;
            let in_env = match (&env, &group.environment) {
                (Some(e), Some(ge)) => e == ge,
                _ => true,
            };
            if in_env {
                let expr = format!("@{SITE_SOURCE}:{g}");
                let nodes =
                    NodeSet::parse_with(&expr, &resolver).map_err(|e| SiteError::Unknown {
                        message: format!(
                            "group `{g}` ({}) of service `{}` cannot be resolved: {e}",
                            group.defined_at, service.name
                        ),
                    })?;
                hosts.update(&bounded(nodes, &expr)?);
            }
        }
        service_hosts.push((service, hosts));
    }
    let mut targets = NodeSet::new();
    if nodes.is_empty() {
        for (_, hosts) in &service_hosts {
            targets.update(hosts);
        }
    } else {
        for expr in nodes {
            targets.update(&parse(expr)?);
        }
    }
    let targets = bounded(targets, "the selected hosts")?;
    if targets.is_empty() {
        return Err(SelectError::NoTargets);
    }
    // Every source of names was checked already (site file, ClusterShell
    // group sources, the command line); this catches any other way a name
    // ssh could misread gets in, before anything is planned.
    let names: Vec<String> = targets.iter().collect();
    for h in &names {
        if let Err(reason) = swh_deploy_site::check_host_name(h) {
            return Err(SiteError::NotAHostName {
                message: format!("target `{h}` is not a host name: {reason}"),
                name: h.clone(),
            }
            .into());
        }
    }
    let mut selected = Vec::new();
    for (service, hosts) in service_hosts {
        let on_targets = hosts.intersection(&targets);
        if on_targets.is_empty() {
            if services.contains(&service.name) {
                return Err(SelectError::ServiceNotOnTargets {
                    service: service.name.clone(),
                    targets: targets.to_string(),
                    env: env
                        .as_ref()
                        .map(|e| format!(" in environment {e}"))
                        .unwrap_or_default(),
                });
            }
            continue;
        }
        selected.push(ServiceOnHosts {
            service: service.clone(),
            hosts: on_targets.iter().collect(),
        });
    }
    Ok(Selection {
        targets: names,
        services: selected,
        environment: env,
    })
}
