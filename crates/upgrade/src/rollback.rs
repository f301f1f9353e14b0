//! `swh-deploy rollback RUN` on the static path: put back, on the hosts of
//! an upgrade run, the package versions the journal recorded before that
//! run changed them.
//!
//! - The versions come from the run's `versions-before` results (the first
//!   successful one per host: a resumed run may have read them again after
//!   part of the upgrade). Hosts without such a record were never reached
//!   by the upgrade's install step and are left alone.
//! - Before anything is recorded or changed, one host of each group of
//!   hosts sharing the same versions runs `apt-get update` and `apt-cache
//!   madison PKG...`: a version that the repository no longer offers makes
//!   the rollback refused, with the package, the version, the host and what
//!   the repository does offer.
//! - The rollback is a nominal upgrade plan of those hosts (same services,
//!   batches and failure budget as the run it undoes) whose install step is
//!   `apt-get --allow-downgrades install PKG=VERSION...` (non-interactive,
//!   `--force-confdef`/`--force-confold`), hosts with the same versions
//!   together; units restart and health gates run as in an upgrade. It is
//!   journaled as its own run (mode `rollback`, `rollback_of` in its
//!   parameters); re-running `rollback RUN` is safe (installing a version
//!   already installed changes nothing).

use crate::command::{parse_installed_versions, parse_madison, RemoteCommand};
use crate::execute::{self, stored_request, Context, ExecError, Summary, UpgradeRequest};
use crate::plan::{Action, Mode, Plan};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use swh_deploy_debian::DebianVersion;
use swh_deploy_fleet::{NoObserver, RunOptions, Status};
use swh_deploy_journal::{Journal, LockError, NewRun, Outcome, RunId, RunStatus};
use swh_deploy_nodeset::fold;
use swh_deploy_site::{PackageName, Site};

/// Package -> version, on one host.
pub type HostVersions = BTreeMap<PackageName, DebianVersion>;

/// Exact versions to install, in package order.
pub type Pinned = Vec<(PackageName, DebianVersion)>;

/// A rollback, planned.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The run it undoes.
    pub of: RunId,
    /// The nominal request the plan comes from (targets: the hosts rolled
    /// back; packages: those whose versions were recorded).
    pub request: UpgradeRequest,
    /// The plan, whose install steps put the recorded versions back.
    pub plan: Plan,
    /// Host -> the versions to put back.
    pub versions: BTreeMap<String, HostVersions>,
    /// Hosts of the run without recorded versions (left alone), folded.
    pub skipped: String,
}

/// The versions recorded by run `run` before it changed each host: the
/// first successful `versions-before` result per host (packages that were
/// not installed are left out).
pub fn recorded_versions(
    journal: &Journal,
    run: RunId,
) -> Result<BTreeMap<String, HostVersions>, ExecError> {
    let details = journal.run_details(run)?;
    let before: Vec<i64> = details
        .steps
        .iter()
        .filter(|s| s.name == "versions-before")
        .map(|s| s.index)
        .collect();
    let mut out: BTreeMap<String, HostVersions> = BTreeMap::new();
    for r in &details.results {
        if r.outcome != Outcome::Ok || !before.contains(&r.step) || out.contains_key(&r.host) {
            continue;
        }
        let versions: HostVersions = parse_installed_versions(&r.stdout)
            .into_iter()
            .filter_map(|(p, v)| v.map(|v| (p, v)))
            .collect();
        if !versions.is_empty() {
            out.insert(r.host.clone(), versions);
        }
    }
    Ok(out)
}

/// The site of the rollback of run `of`: the site file `explicit`
/// (`--site`), else the one recorded with the run. Refused (nothing
/// changed) when the run does not exist or is not an upgrade run.
pub fn site_of(journal: &Journal, of: RunId, explicit: Option<&Path>) -> Result<Site, ExecError> {
    journal.run(of).map_err(|e| {
        ExecError::Input(format!(
            "run {of}: {e} (see `swh-deploy history`); nothing was changed"
        ))
    })?;
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => {
            stored_request(journal, of)
                .map_err(|_| {
                    ExecError::Input(format!(
                        "run {of} is not an upgrade run: only the package versions of an upgrade can be rolled back"
                    ))
                })?
                .site
        }
    };
    Site::load(&path).map_err(|e| ExecError::Input(e.to_string()))
}

/// Plans the rollback of run `of` (`run_id`: the rollback's own run, once
/// recorded).
pub fn plan_rollback(
    journal: &Journal,
    site: &Site,
    of: RunId,
    run_id: Option<RunId>,
) -> Result<Rollback, ExecError> {
    let original = stored_request(journal, of).map_err(|_| {
        ExecError::Input(format!(
            "run {of} is not an upgrade run: only the package versions of an upgrade can be rolled back"
        ))
    })?;
    let versions = recorded_versions(journal, of)?;
    if versions.is_empty() {
        return Err(ExecError::Input(format!(
            "run {of} recorded no package versions before changing a host (no successful \
             versions-before step): nothing to roll back to"
        )));
    }
    // The hosts in the order the original run had them, when it still plans.
    let order: Vec<String> = match original.plan(site, None) {
        Ok(p) => p.hosts,
        Err(_) => Vec::new(),
    };
    let mut targets: Vec<String> = order
        .iter()
        .filter(|h| versions.contains_key(*h))
        .cloned()
        .collect();
    for h in versions.keys() {
        if !targets.contains(h) {
            targets.push(h.clone());
        }
    }
    let skipped: Vec<String> = order
        .iter()
        .filter(|h| !versions.contains_key(*h))
        .cloned()
        .collect();
    let mut packages: Vec<PackageName> = Vec::new();
    for v in versions.values() {
        for p in v.keys() {
            if !packages.contains(p) {
                packages.push(p.clone());
            }
        }
    }
    packages.sort();
    let request = UpgradeRequest {
        site: original.site.clone(),
        env: original.env.clone(),
        nodes: vec![fold(&targets)],
        services: original.services.clone(),
        mode: Mode::Nominal,
        packages,
        migration: None,
        reason: None,
        batch: original.batch.clone(),
        max_fail: original.max_fail,
    };
    let mut plan = request.plan(site, run_id)?;
    for batch in &mut plan.batches {
        for step in &mut batch.steps {
            if step.name != "only-upgrade" {
                continue;
            }
            step.name = "install-pinned".into();
            // Hosts with the same versions together, in batch order.
            let mut groups: Vec<(Pinned, Vec<String>)> = Vec::new();
            for h in &batch.hosts {
                let Some(v) = versions.get(h) else { continue };
                let pinned: Pinned = v.iter().map(|(p, v)| (p.clone(), v.clone())).collect();
                match groups.iter_mut().find(|(p, _)| *p == pinned) {
                    Some((_, hs)) => hs.push(h.clone()),
                    None => groups.push((pinned, vec![h.clone()])),
                }
            }
            step.actions = groups
                .into_iter()
                .map(|(packages, hosts)| {
                    let command = RemoteCommand::InstallVersions { packages };
                    Action::Remote {
                        nodes: fold(&hosts),
                        hosts,
                        shell: command.to_shell(),
                        success_codes: command.success_codes().to_vec(),
                        command,
                    }
                })
                .collect();
        }
    }
    Ok(Rollback {
        of,
        request,
        plan,
        versions,
        skipped: fold(&skipped),
    })
}

/// Checks that the repository still offers every version to put back: on
/// the first host of each group of hosts sharing the same versions,
/// `apt-get update` then `apt-cache madison PKG...`. Changes nothing but
/// the hosts' apt lists.
pub fn check_available(rollback: &Rollback, ctx: &Context<'_>) -> Result<(), ExecError> {
    let mut groups: Vec<(&HostVersions, Vec<String>)> = Vec::new();
    for h in &rollback.plan.hosts {
        let Some(v) = rollback.versions.get(h) else {
            continue;
        };
        match groups.iter_mut().find(|(g, _)| *g == v) {
            Some((_, hs)) => hs.push(h.clone()),
            None => groups.push((v, vec![h.clone()])),
        }
    }
    let run_one = |host: &str, command: &RemoteCommand| -> Result<String, ExecError> {
        let report = swh_deploy_fleet::run(
            ctx.transport,
            &[host.to_owned()],
            &command.to_shell(),
            &RunOptions {
                fanout: 1,
                command_timeout: Some(Duration::from_secs(300)),
                merge_stderr: false,
                hosts_label: None,
            },
            &mut NoObserver,
            &ctx.cancel,
        )
        .map_err(|e| ExecError::Fleet(e.to_string()))?;
        let r = report
            .results
            .into_iter()
            .next()
            .ok_or_else(|| ExecError::Fleet(format!("{host}: no result")))?;
        match r.status {
            Status::Exited(c) if command.succeeded(c) => {
                Ok(String::from_utf8_lossy(&r.stdout).into_owned())
            }
            _ => Err(ExecError::Input(format!(
                "cannot check the repository for the rollback of run {}: `{}` on {host}: {:?}: {}",
                rollback.of,
                command.to_shell(),
                r.status,
                String::from_utf8_lossy(&r.stderr).trim()
            ))),
        }
    };
    let mut missing = Vec::new();
    for (versions, hosts) in groups {
        let host = &hosts[0];
        run_one(host, &RemoteCommand::AptUpdate)?;
        let packages: Vec<PackageName> = versions.keys().cloned().collect();
        let offered = parse_madison(&run_one(
            host,
            &RemoteCommand::AptCacheMadison { packages },
        )?);
        for (p, v) in versions {
            if offered.iter().any(|(op, ov)| op == p && ov == v) {
                continue;
            }
            let others: Vec<String> = offered
                .iter()
                .filter(|(op, _)| op == p)
                .map(|(_, ov)| ov.to_string())
                .collect();
            missing.push(format!(
                "{p} {v} (to put back on {}) is not in the repository seen by {host} (it offers: {})",
                fold(&hosts),
                if others.is_empty() {
                    "nothing".to_owned()
                } else {
                    others.join(", ")
                }
            ));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ExecError::Input(format!(
            "rollback of run {} refused, nothing was changed: {}",
            rollback.of,
            missing.join("; ")
        )))
    }
}

/// Rolls back run `of`: plans, checks that the versions are still offered,
/// records the rollback as its own run (mode `rollback`), locks the hosts
/// and executes the plan.
pub fn start(
    journal: &mut Journal,
    site: &Site,
    of: RunId,
    argv: Vec<String>,
    ctx: &mut Context<'_>,
) -> Result<Summary, ExecError> {
    crate::ssh::check(site).map_err(ExecError::Input)?;
    let dry = plan_rollback(journal, site, of, None)?;
    check_available(&dry, ctx)?;
    journal.reap_dead_runs()?;
    let parameters = serde_json::json!({
        "rollback_of": of,
        "rollback_request": dry.request,
        "plan": serde_json::to_value(&dry.plan).map_err(|e| ExecError::Input(e.to_string()))?,
    });
    let run = journal.start_run(&NewRun {
        command_line: argv,
        mode: "rollback".into(),
        parameters,
    })?;
    let rollback = plan_rollback(journal, site, of, Some(run))?;
    match journal.acquire_locks(run, &rollback.plan.hosts) {
        Ok(()) => {}
        Err(LockError::Refused(refused)) => {
            journal.end_run(run, RunStatus::Refused)?;
            return Err(ExecError::Refused { run, refused });
        }
        Err(LockError::Journal(e)) => {
            let _ = journal.end_run(run, RunStatus::Refused);
            return Err(e.into());
        }
    }
    execute::execute(journal, run, &rollback.plan, ctx, false)
}
