//! `swh-deploy upgrade`: the runbook's "Deployment with debian packaging"
//! (nominal, configuration change, long-standing upgrade) as rolling
//! batches. This module parses flags into a typed
//! `swh_deploy_upgrade::UpgradeRequest`, whose one planning function gives
//! the plan `--dry-run` prints; without `--dry-run` the request is run by
//! `swh_deploy_upgrade::driver::upgrade` (rendered by `resume.rs`).

use crate::error::{CmdResult, Exit};
use clap::Args;
use std::path::PathBuf;
use swh_deploy_site::{PackageName, Site};
use swh_deploy_upgrade::{BatchSpec, FailBudget, Mode, UpgradeRequest};

/// Upgrade packages on hosts and restart the right services, in batches.
#[derive(Debug, Args)]
#[command(after_help = "\
Targets: -w NODES and TARGET arguments are node sets (`host[1-4]`, `@group`,
`@swh-workers!worker03`); --service S selects services (their hosts when no
node set is given). Without --env, --service alone uses the site's
default_environment.

Modes:
  nominal        apt-get update; dist-upgrade (or --only-upgrade install of
                 --packages); restart the selected services' units; health gate
  config-change  puppet agent -t first (exit 0 and 2 are success), then nominal
  long-standing  stop cron and disable puppet on all targets (compensations
                 journaled first), --migration once on the first host, nominal,
                 then cron and puppet back

Batches: --batch 5 | 10% | 1,10%,100% (first batch is the canary; the last
size repeats; percentages of all targets, rounded up). --max-fail N | P%:
failures allowed over the whole run (default 0) before no host starts a new
step and no new batch starts. Within a batch each host goes through its steps
on its own (no waiting for the slowest host); the next batch waits for all.
Each host's steps share one ssh connection (--no-reuse: one per command;
--control-persist SECS: idle time before it closes, default 60).

Exit status: 0 success (dry run: plan printed), 1 bad input or failure,
2 usage error, 3 failure budget exceeded, 4 refused: hosts locked by another
run, 5 refused: compensations pending (run `swh-deploy recover`).")]
pub struct UpgradeArgs {
    /// Target node sets or `@group`s.
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
    /// Target nodes (node-set syntax); repeatable.
    #[arg(short = 'w', value_name = "NODES")]
    nodes: Vec<String>,
    /// Services to upgrade and restart (from the site file); repeatable.
    #[arg(long = "service", value_name = "SERVICE")]
    services: Vec<String>,
    /// The site file (default: SWH_DEPLOY_SITE, ./swh-deploy.toml,
    /// /etc/swh-deploy/site.toml).
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,
    /// Environment whose groups the services are taken from.
    #[arg(long = "env", value_name = "ENV")]
    env: Option<String>,
    /// Upgrade mode.
    #[arg(long, value_name = "MODE", default_value = "nominal", value_parser = parse_mode)]
    mode: Mode,
    /// Long-standing mode: shell command run once on the first target host
    /// after cron and puppet are stopped (e.g. a database migration).
    #[arg(long, value_name = "CMD")]
    migration: Option<String>,
    /// Long-standing mode: the reason given to `puppet agent --disable`.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Upgrade only these packages (`--only-upgrade install`) instead of a
    /// full dist-upgrade; repeatable or comma-separated.
    #[arg(long = "packages", value_name = "PKG", value_delimiter = ',', value_parser = parse_package)]
    packages: Vec<PackageName>,
    /// Rolling batches: a count, a percentage or a list (`1,10%,100%`).
    #[arg(long, value_name = "SPEC", value_parser = parse_batch)]
    batch: Option<BatchSpec>,
    /// Failure budget over the whole run: a count or a percentage.
    #[arg(long = "max-fail", value_name = "N|P%", value_parser = parse_budget)]
    max_fail: Option<FailBudget>,
    /// Print the plan and stop.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print the plan as JSON; otherwise progress and
    /// summary as JSON lines.
    #[arg(long)]
    json: bool,
    /// The journal (default: $SWH_DEPLOY_JOURNAL, else
    /// $XDG_STATE_HOME/swh-deploy/journal.sqlite).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Trust on first use: accept and pin the key of a host absent from
    /// known_hosts (ssh `StrictHostKeyChecking=accept-new`); a changed key
    /// is still refused. Recorded in the journal with the command line.
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Open a fresh ssh connection per command (no ControlMaster); by
    /// default each host's steps share one connection (site: `[ssh] reuse`).
    #[arg(long, conflicts_with = "control_persist")]
    no_reuse: bool,
    /// How long an idle shared connection of the run stays open, in
    /// seconds (ControlPersist) [default: 60]; closed when the run ends.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    control_persist: Option<u64>,
}

/// Clap value parser (shared with `ship`).
pub(crate) fn parse_mode(s: &str) -> Result<Mode, swh_deploy_upgrade::ModeError> {
    s.parse()
}

fn parse_package(s: &str) -> Result<PackageName, swh_deploy_site::NameError> {
    s.parse()
}

/// Clap value parser (shared with `ship`).
pub(crate) fn parse_batch(s: &str) -> Result<BatchSpec, swh_deploy_upgrade::SpecError> {
    s.parse()
}

/// Clap value parser (shared with `ship`).
pub(crate) fn parse_budget(s: &str) -> Result<FailBudget, swh_deploy_upgrade::SpecError> {
    s.parse()
}

/// Runs `swh-deploy upgrade`.
pub fn run(args: UpgradeArgs) -> CmdResult {
    let site = Site::discover(args.site.as_deref())?;
    let mut nodes = args.nodes;
    nodes.extend(args.targets);
    let request = UpgradeRequest {
        env: args.env,
        nodes,
        services: args.services,
        mode: args.mode,
        packages: args.packages,
        migration: args.migration,
        reason: args.reason,
        batch: args.batch.unwrap_or_default(),
        max_fail: args.max_fail.unwrap_or_default(),
        ..UpgradeRequest::new(&site)
    };
    // The one planning function, for the dry run and the real run alike.
    let plan = request.plan(&site, None)?;
    super::history::warn_pending_if_any(args.journal.as_deref());
    if !args.dry_run {
        let journal = super::history::journal_path(args.journal.as_deref());
        return super::resume::run_upgrade(
            &site,
            &request,
            journal.as_deref(),
            args.json,
            swh_deploy_upgrade::ssh::Connect {
                host_keys: if args.accept_new_host_keys {
                    swh_deploy_fleet::HostKeyPolicy::AcceptNew
                } else {
                    swh_deploy_fleet::HostKeyPolicy::Strict
                },
                no_reuse: args.no_reuse,
                persist: args.control_persist.map(std::time::Duration::from_secs),
            },
        );
    }
    if args.json {
        println!("{}", plan.to_json());
    } else {
        print!("{}", plan.render());
    }
    Ok(Exit::Success)
}
