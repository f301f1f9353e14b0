//! `swh-deploy chart rollback ENV [--to REV | APP=VERSION ...]`: a
//! journaled revert commit on the environment's chart branch (never a
//! force-push), pushed, then the Argo CD wait of `cluster wait` for the new
//! commit (`swh_deploy_charts::rollback`).

use clap::Args;
use std::time::Duration;
use swh_deploy_charts::env_rollback::{roll_back_env, RollbackEvent, RollbackRequest, RolledBack};
use swh_deploy_charts::ChartsRepo;

use crate::error::{CmdResult, Exit};

/// Arguments of `chart rollback`.
#[derive(Debug, Args)]
#[command(after_help = "\
Without --to or APP=VERSION: undo the branch's last commit. --to REV: restore
the state of REV, an earlier commit of the branch (every later commit undone
in one commit). APP=VERSION: set these apps back to these image versions, the
rest of the branch kept. The commit goes on top of the branch's head on the
remote and is pushed as a fast-forward (never forced), then swh-deploy waits
until the environment's Argo CD application is live at it (as `cluster
wait`), unless --no-wait or the environment has no argocd_application.
Journaled as a `chart rollback` run.

Exit status: 0 done (and live), 1 refused or failed, 6 not live before
--timeout.")]
pub struct RollbackArgs {
    /// The environment (site file `[environments.ENV]`, whose chart_branch
    /// is rolled back; without a site file, the branch of that name).
    env: String,
    /// APP=VERSION pairs: put these image versions back.
    #[arg(value_name = "APP=VERSION", conflicts_with = "to")]
    apps: Vec<String>,
    /// Restore the state of this earlier revision of the branch.
    #[arg(long, value_name = "REV")]
    to: Option<String>,
    /// Print the image changes and the commit message; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not wait for Argo CD after the push.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "15m", value_parser = swh_deploy_util::duration::parse)]
    timeout: Duration,
    /// Time between polls while waiting.
    #[arg(long, default_value = "5s", value_parser = swh_deploy_util::duration::parse)]
    interval: Duration,
}

/// Runs `chart rollback` ([`roll_back_env`]): the plan and the push on
/// stdout, the annotation and the Argo CD wait's progress on stderr, the
/// wait's outcome as `cluster wait` shows it.
pub(crate) fn run(
    repo: &ChartsRepo,
    site: Option<&swh_deploy_site::Site>,
    journal: Option<&std::path::Path>,
    args: RollbackArgs,
) -> CmdResult {
    let req = RollbackRequest {
        site,
        env: &args.env,
        apps: &args.apps,
        to: args.to.as_deref(),
        dry_run: args.dry_run,
        no_wait: args.no_wait,
        timeout: args.timeout,
        interval: args.interval,
        journal,
    };
    let mut printer = crate::events::EventPrinter::default();
    let done = roll_back_env(repo, &req, &mut |ev| {
        let tick = match ev {
            RollbackEvent::Wait(w) => w.waiting().map(crate::events::Tick::Wait),
            _ => None,
        };
        printer.show(ev.is_diagnostic(), ev, tick)
    })?;
    drop(printer);
    Ok(match done {
        RolledBack::Pushed {
            wait: Some(report), ..
        } => super::cluster::render_wait(&report, true),
        _ => Exit::Success,
    })
}
