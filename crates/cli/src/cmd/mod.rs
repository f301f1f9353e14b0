//! One module per subcommand. To add one: a module here, a variant in
//! [`Command`], and a line in [`dispatch`].

pub mod annotate;
pub mod app;
pub mod chart;
pub mod chart_rollback;
pub mod cluster;
pub mod completions;
pub mod debian;
pub mod doctor;
pub mod history;
pub mod man;
pub mod nodeset;
pub mod recover;
pub mod release;
pub mod resume;
pub mod rollback;
pub mod run;
pub mod ship;
pub mod site;
pub mod upgrade;
pub mod versions;
pub mod where_;

use crate::error::{Exit, Outcome};
use clap::Subcommand;
use std::process::ExitCode;

/// The subcommands of `swh-deploy`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the exit codes that swh-deploy commands use.
    ExitCodes,
    /// Run a shell command on many hosts in parallel, like clush.
    Run(run::RunArgs),
    /// Fold, expand, count and combine node sets, like ClusterShell's
    /// `nodeset` (same options, same output).
    Nodeset(nodeset::NodesetArgs),
    /// swh-apps: list apps, dependents of a module release, frozen
    /// requirements, next image version, image builds.
    App(app::AppArgs),
    /// swh-charts: bump image versions, promote between environments, show.
    Chart(chart::ChartArgs),
    /// Kubernetes and Argo CD: check and set node labels against the
    /// chart's nodeAffinity; wait until an environment is live at a chart
    /// revision.
    Cluster(cluster::ClusterArgs),
    /// Upgrade packages on hosts and restart services in rolling batches
    /// (nominal, config-change, long-standing); `--dry-run` prints the plan.
    Upgrade(upgrade::UpgradeArgs),
    /// Show the runs recorded in the journal, or one run in detail.
    History(history::HistoryArgs),
    /// Site file commands (`site check`).
    Site(site::SiteArgs),
    /// Continue an interrupted upgrade run without redoing finished hosts.
    Resume(resume::ResumeArgs),
    /// Put hosts back after a crash: run the pending compensations (start
    /// cron, enable puppet) of interrupted runs.
    Recover(recover::RecoverArgs),
    /// Put back the package versions an upgrade run replaced (static path).
    Rollback(rollback::RollbackArgs),
    /// Installed package versions per host, as version -> node set.
    Versions(versions::VersionsArgs),
    /// Debian packaging fixes: a new debian/changelog entry (`debian
    /// changelog`), the DEP-14 tag pushed with --follow-tags (`debian tag`).
    Debian(debian::DebianArgs),
    /// Module releases: tag and push a release (`release tag`), wait until
    /// it is published on the package index / Debian repository (`release
    /// wait`).
    Release(release::ReleaseArgs),
    /// The whole chain for a module release: tag, wait until published,
    /// upgrade the hosts (--static) and/or build the apps' images, bump the
    /// chart and promote staging then production (--elastic). Idempotent:
    /// re-run it to continue after a failure.
    Ship(ship::ShipArgs),
    /// Where a module runs and at which version: Debian package on the
    /// site's hosts, apps and images per chart branch; behind a VERSION?
    Where(where_::WhereArgs),
    /// Print the shell completion script (bash, zsh, fish).
    Completions(completions::CompletionsArgs),
    /// Print the man page, or write all of them into a directory.
    Man(man::ManArgs),
    /// Check the admin host before a release (ssh, known_hosts, site,
    /// kube contexts, registry, uv, git remotes, journal) with fixes.
    Doctor(doctor::DoctorArgs),
}

/// Runs one subcommand and turns its outcome into the process exit code.
pub fn dispatch(command: Command) -> ExitCode {
    // Every command warns while compensations are pending (puppet or cron
    // may still be off somewhere); those that open the journal themselves
    // (with their own --journal) warn there. `nodeset` only computes: it
    // stays as fast as ClusterShell's is slow, without opening the journal.
    if !matches!(
        command,
        Command::ExitCodes
            | Command::Completions(_)
            | Command::Man(_)
            | Command::Doctor(_)
            | Command::Nodeset(_)
            | Command::Upgrade(_)
            | Command::History(_)
            | Command::Resume(_)
            | Command::Recover(_)
            | Command::Versions(_)
    ) {
        history::warn_pending_if_any(None);
    }
    match command {
        Command::Run(args) => done(run::main(args)),
        Command::Nodeset(args) => done(nodeset::run(args)),
        Command::App(args) => done(app::run(args)),
        Command::Chart(args) => done(chart::run(args)),
        Command::Cluster(args) => done(cluster::run(args)),
        Command::Upgrade(args) => done(upgrade::run(args)),
        Command::History(args) => done(history::run(args)),
        Command::Site(args) => done(site::run(args)),
        Command::Resume(args) => done(resume::run(args)),
        Command::Recover(args) => done(recover::run(args)),
        Command::Rollback(args) => done(rollback::run(args)),
        Command::Versions(args) => done(versions::run(args)),
        Command::Debian(args) => done(debian::run(args)),
        Command::Release(args) => done(release::run(args)),
        Command::Ship(args) => done(ship::run(args)),
        Command::Where(args) => done(where_::run(args)),
        Command::Completions(args) => done(completions::run(args)),
        Command::Man(args) => done(man::run(args)),
        Command::Doctor(args) => done(doctor::run(args)),
        Command::ExitCodes => {
            print!("{}", Exit::table());
            ExitCode::SUCCESS
        }
    }
}

/// A command's outcome (an `ExitCode`, or a [`crate::error::CmdResult`] whose error is
/// reported on stderr) as the process exit code.
fn done(outcome: impl Outcome) -> ExitCode {
    outcome.into_exit_code()
}

/// A command for display: words quoted for a POSIX shell when they need it
/// (plans, `--dry-run`, "to continue, run ..." hints).
pub(crate) use swh_deploy_util::quote_words;

#[cfg(test)]
mod tests {
    use super::Exit;

    /// The first fenced block after `heading` in `text`.
    fn block_after<'a>(text: &'a str, heading: &str) -> &'a str {
        let at = text.find(heading).expect("heading");
        let rest = &text[at..];
        let start = rest.find("```\n").expect("a fenced block") + 4;
        let len = rest[start..].find("```").expect("its end");
        &rest[start..start + len]
    }

    #[test]
    fn the_readme_table_is_what_exit_codes_prints() {
        let readme = include_str!("../../../../README.md");
        assert_eq!(block_after(readme, "## Exit codes"), Exit::table());
    }

    #[test]
    fn the_architecture_doc_lists_every_exit_code() {
        let doc = include_str!("../../../../docs/ARCHITECTURE.md");
        for e in Exit::ALL {
            let row = format!("| {} | `{:?}` |", e.code(), e);
            assert!(doc.contains(&row), "docs/ARCHITECTURE.md lacks {row}");
        }
    }
}
