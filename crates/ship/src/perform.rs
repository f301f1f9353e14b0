//! Whether a step is already done ([`Step::is_done`]) and doing it
//! ([`Step::perform`]), through the libraries that own each concept.

use crate::plan::{tag_options, Action, Step};
use crate::run::Reporter;
use crate::state::{pin_matches, pin_version};
use crate::{failed, input, Evidence, Ship, ShipError, ShipEvent};
use std::time::Duration;
use swh_deploy_apps::version::today_utc;
use swh_deploy_apps::{parse_pins, BuildOptions};
use swh_deploy_charts::promotion::{PromoteRequest, Promoted};
use swh_deploy_charts::values::{app_key, Bump};
use swh_deploy_charts::{BumpRequest, Env};
use swh_deploy_cluster::gate::GateOutcome;
use swh_deploy_cluster::wait::{EnvWait, WaitOutcome};
use swh_deploy_journal::Recorder;
use swh_deploy_nodeset::fold;
use swh_deploy_release::journaled;
use swh_deploy_release::publish::{self, Checker, WaitPolicy};
use swh_deploy_release::tag::{self, StepKind};
use swh_deploy_site::PackageName;
use swh_deploy_upgrade::execute::{Event, Events};
use swh_deploy_upgrade::UpgradeRequest;
use swh_deploy_util::git::Git;

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl Step {
    /// Whether the step's result is already there: `Some(evidence)`. Looks
    /// only (git remotes, the channels, the hosts' installed versions, the
    /// chart branches, Argo CD); records what it learns in `ship` (image
    /// versions found built, hosts behind).
    pub fn is_done(&self, ship: &mut Ship) -> Result<Option<Evidence>, ShipError> {
        let o = &ship.options;
        match &self.action {
            Action::Tag => {
                let repo = o.repo.clone().unwrap_or_default();
                let git = Git::new(&repo);
                let tag = o.version.tag_name();
                let name = format!("refs/tags/{tag}");
                let peeled = format!("refs/tags/{tag}^{{}}");
                let refs = git
                    .ls_remote(&["--tags"], &o.remote, &[&name, &peeled])
                    .map_err(|e| {
                        ShipError::Failed(format!("cannot list the tags of {}: {e}", o.remote))
                    })?;
                let at = |n: &str| refs.iter().find(|r| r.name == n).map(|r| r.sha.clone());
                let Some(commit) = at(&peeled).or_else(|| at(&name)) else {
                    return Ok(None);
                };
                let head = git.rev("HEAD").ok().flatten().unwrap_or_default();
                Ok(Some(Evidence(if commit == head {
                    format!("{tag} is on {} at HEAD {}", o.remote, short(&commit))
                } else {
                    format!(
                        "{tag} is on {} at {c} (the checkout's HEAD is {}: the release is {c})",
                        o.remote,
                        short(&head),
                        c = short(&commit)
                    )
                })))
            }
            Action::WaitPublished => {
                let checker = Checker::new(Duration::from_secs(20));
                let mut evidence = Vec::new();
                for c in &o.channels {
                    match checker.check(c, &o.module, &o.version) {
                        publish::Status::Published { evidence: e } => {
                            evidence.push(format!("{} ({e})", c.describe()))
                        }
                        _ => return Ok(None),
                    }
                }
                Ok(Some(Evidence(format!(
                    "published on {}",
                    evidence.join(", ")
                ))))
            }
            Action::Upgrade { hosts, .. } => {
                ship.behind = hosts_behind(ship, hosts)?;
                let o = &ship.options;
                Ok(ship.behind.is_empty().then(|| {
                    Evidence(format!(
                        "{} at {} on {}",
                        o.module.debian_package(),
                        o.version.debian_upstream(),
                        fold(hosts)
                    ))
                }))
            }
            Action::Build { app } => built(ship, app),
            Action::Bump if ship.release_only => release_commit(ship, Env::NextVersion),
            Action::Bump => Ok(chart_missing(ship, Env::NextVersion)?
                .is_empty()
                .then(|| Evidence(format!("swh-next-version has {}", ship.images_text())))),
            Action::Promote(env) if ship.release_only => release_commit(ship, *env),
            Action::Promote(env) => Ok(chart_missing(ship, *env)?
                .is_empty()
                .then(|| Evidence(format!("{env} has {}", ship.images_text())))),
            Action::Wait(env) => {
                let branch = ship.branch_of(env);
                let head = swh_deploy_cluster::wait::remote_branch_head(&ship.site, None, branch)
                    .map_err(failed)?;
                match swh_deploy_cluster::gate::promote_gate(Some(&ship.site), branch, &head) {
                    Ok(GateOutcome::Open(m)) => Ok(Some(Evidence(m))),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Does the step through its library; `Ok(what was done)`. Progress and
    /// the sub-command's output go to `report`.
    pub fn perform(
        &self,
        ship: &mut Ship,
        report: &mut dyn Reporter,
    ) -> Result<Evidence, ShipError> {
        match &self.action {
            Action::Tag => tag_release(ship, report),
            Action::WaitPublished => wait_published(ship, report),
            Action::Upgrade {
                env,
                services,
                hosts,
            } => upgrade(ship, env, services, hosts, report),
            Action::Build { app } => build(ship, app, report),
            Action::Bump => bump(ship, report),
            Action::Promote(env) => promote(ship, *env, report),
            Action::Wait(env) => wait_live(ship, env, report),
        }
    }
}

/// An app's newest image tag on the apps remote, when its frozen
/// requirements pin the release: the image version is recorded in `ship`.
fn built(ship: &mut Ship, app: &str) -> Result<Option<Evidence>, ShipError> {
    let repo = ship.apps_repo()?;
    let remote = ship.apps_remote();
    let git = Git::new(repo.dir());
    git.run(&["fetch", "-q", "--tags", &remote]).map_err(|e| {
        ShipError::Failed(format!(
            "git fetch {remote} in {}: {e}",
            repo.dir().display()
        ))
    })?;
    let mut versions = repo.tagged_versions(app).map_err(failed)?;
    versions.sort();
    let Some(newest) = versions.last() else {
        return Ok(None);
    };
    let tag = format!("{app}-{newest}");
    let Ok(text) = git.show_file(
        &format!("refs/tags/{tag}"),
        &format!("apps/{app}/requirements-frozen.txt"),
    ) else {
        return Ok(None);
    };
    let o = &ship.options;
    let key = swh_deploy_apps::normalize_name(o.module.dotted());
    if !pin_matches(parse_pins(&text).get(&key), &o.version) {
        return Ok(None);
    }
    let evidence = Evidence(format!(
        "tag {tag} on {remote} has apps/{app}/requirements-frozen.txt at {} {}",
        o.module.dotted(),
        pin_version(&o.version)
    ));
    ship.images.insert(app.to_string(), newest.to_string());
    Ok(Some(evidence))
}

/// For a release-only chart bump: the release commit of the module's
/// version on `env`'s branch (on the remote), if it is there.
fn release_commit(ship: &Ship, env: Env) -> Result<Option<Evidence>, ShipError> {
    let repo = ship.charts_repo()?;
    let o = &ship.options;
    let found = repo
        .release_commit(env.branch(), o.module.dotted(), &o.version.tag_name())
        .map_err(failed)?;
    Ok(found.map(|c| Evidence(format!("{env} has the release commit {c}"))))
}

/// The apps whose image version on `env`'s branch (on the remote) is not
/// the one built; every app when some image version is not known yet.
fn chart_missing(ship: &Ship, env: Env) -> Result<Vec<String>, ShipError> {
    if ship.apps.iter().any(|a| !ship.images.contains_key(a)) {
        return Ok(ship.apps.clone());
    }
    let repo = ship.charts_repo()?;
    let ov = repo.show(&[env.branch().to_string()]).map_err(failed)?;
    Ok(ship
        .images
        .iter()
        .filter(|(app, v)| {
            ov.apps
                .get(&app_key(app))
                .and_then(|vs| vs.first().cloned().flatten())
                .as_deref()
                != Some(v.as_str())
        })
        .map(|(a, _)| a.clone())
        .collect())
}

/// Hosts whose installed package is not at the release (or that did not
/// answer).
fn hosts_behind(ship: &Ship, hosts: &[String]) -> Result<Vec<String>, ShipError> {
    let o = &ship.options;
    let package: PackageName = o.module.debian_package().parse().map_err(input)?;
    swh_deploy_upgrade::ssh::check(&ship.site).map_err(input)?;
    let transport =
        swh_deploy_upgrade::ssh::transport_with(&ship.site, o.host_keys).map_err(input)?;
    let answers = swh_deploy_upgrade::versions::query(
        &transport,
        ship.site.ssh.fanout.max(1),
        hosts,
        std::slice::from_ref(&package),
    )
    .map_err(failed)?;
    Ok(hosts
        .iter()
        .filter(|h| {
            !matches!(answers.get(*h), Some(Ok(pkgs)) if pkgs
                .get(package.as_str())
                .and_then(|v| v.as_ref())
                .is_some_and(|v| publish::debian_version_matches(v.as_ref(), &o.version)))
        })
        .cloned()
        .collect())
}

fn tag_release(ship: &Ship, report: &mut dyn Reporter) -> Result<Evidence, ShipError> {
    let repo = ship.options.repo.clone().unwrap_or_default();
    let plan = tag::plan(&ship.options.version, &tag_options(ship, &repo)).map_err(failed)?;
    journaled::execute_tag(&plan, ship.options.journal.as_deref(), &mut |step| {
        if step.kind == StepKind::Tag {
            report.event(&ShipEvent::Output(&format!(
                "tagged {} on {}{}",
                plan.tag,
                short(&plan.commit),
                if plan.sign { " (signed)" } else { "" }
            )));
        }
    })
    .map_err(failed)?;
    Ok(Evidence(format!("pushed {} to {}", plan.tag, plan.remote)))
}

fn wait_published(ship: &Ship, report: &mut dyn Reporter) -> Result<Evidence, ShipError> {
    let o = &ship.options;
    let (module, version) = (&o.module, &o.version);
    let outcome = journaled::wait_published(
        module,
        version,
        &o.channels,
        &WaitPolicy::new(o.timeout, o.interval),
        o.journal.as_deref(),
        &mut |elapsed, cs| {
            report.event(&ShipEvent::Progress(
                &cs.progress_line(elapsed, module, version),
            ))
        },
    )
    .map_err(failed)?;
    if outcome.published {
        return Ok(Evidence(format!(
            "published after {:.1}s",
            outcome.elapsed.as_secs_f64()
        )));
    }
    Err(ShipError::Timeout(format!(
        "not published after {}: {}",
        o.timeout_text,
        outcome.missing().join("; ")
    )))
}

/// Upgrade events to the reporter.
struct UpgradeEvents<'a>(&'a mut dyn Reporter);

impl Events for UpgradeEvents<'_> {
    fn event(&mut self, event: &Event) {
        self.0.event(&ShipEvent::Upgrade(event));
    }
}

fn upgrade(
    ship: &mut Ship,
    env: &str,
    services: &[String],
    hosts: &[String],
    report: &mut dyn Reporter,
) -> Result<Evidence, ShipError> {
    let o = &ship.options;
    // Only the hosts not at the release yet (a ship resumed after a
    // partial upgrade does not restart the others again).
    let nodes = if !ship.behind.is_empty() && ship.behind.len() < hosts.len() {
        let done: Vec<&String> = hosts.iter().filter(|h| !ship.behind.contains(h)).collect();
        report.event(&ShipEvent::Output(&format!(
            "upgrading {} only: {} already at {}",
            fold(&ship.behind),
            fold(&done),
            o.version.debian_upstream()
        )));
        vec![fold(&ship.behind)]
    } else {
        Vec::new()
    };
    let request = UpgradeRequest {
        env: Some(env.to_string()),
        nodes,
        services: services.to_vec(),
        mode: o.mode,
        batch: o.batch.clone().unwrap_or_default(),
        max_fail: o.max_fail.unwrap_or_default(),
        ..UpgradeRequest::new(&ship.site)
    };
    let what = format!("the upgrade of {env} ({}) did not succeed", fold(hosts));
    let result = swh_deploy_upgrade::driver::upgrade(
        &ship.site,
        &request,
        o.journal.as_deref(),
        o.argv.clone(),
        o.host_keys,
        &mut UpgradeEvents(report),
    );
    match result {
        Ok(summary) => {
            report.event(&ShipEvent::Output(summary.render().trim_end()));
            let exit = summary.exit();
            if !exit.is_success() {
                return Err(ShipError::Upgrade {
                    exit,
                    message: what,
                });
            }
        }
        Err(e) => {
            return Err(ShipError::Upgrade {
                exit: e.exit(),
                message: format!("{what}: {e}"),
            })
        }
    }
    let behind = hosts_behind(ship, hosts)?;
    let o = &ship.options;
    if !behind.is_empty() {
        return Err(ShipError::Failed(format!(
            "the upgrade of {env} succeeded but {} is not at {} on {}: is the Debian package in the repository the hosts use?",
            o.module.debian_package(),
            o.version.debian_upstream(),
            fold(&behind)
        )));
    }
    Ok(Evidence(format!(
        "{} at {} on {}",
        o.module.debian_package(),
        o.version.debian_upstream(),
        fold(hosts)
    )))
}

/// `app build APP --push`, after checking that the freeze pins the release.
fn build(ship: &mut Ship, app: &str, report: &mut dyn Reporter) -> Result<Evidence, ShipError> {
    let repo = ship.apps_repo()?;
    let freeze = ship.freeze_options();
    let o = &ship.options;
    let want = pin_version(&o.version);
    let key = swh_deploy_apps::normalize_name(o.module.dotted());
    // The gate: uv must resolve the module at the release, else the image
    // would ship another version.
    let dry = repo.freeze(app, &freeze, false).map_err(failed)?;
    let got = parse_pins(&dry.text).get(&key).cloned();
    if !pin_matches(got.as_ref(), &o.version) {
        return Err(ShipError::Failed(format!(
            "uv pip compile resolves {} at {} for apps/{app}, not {want}: is {want} the newest release on the index ({})?",
            o.module.dotted(),
            got.as_deref().unwrap_or("(absent)"),
            freeze.index_args.last().map(String::as_str).unwrap_or("uv's default")
        )));
    }
    let builder = o.builder;
    let opts = BuildOptions {
        builder,
        registry: ship.registry()?,
        push: true,
        dry_run: false,
        freeze,
        page_size: None,
    };
    let mut rec = Recorder::start(
        o.journal.as_deref(),
        "app build",
        serde_json::json!({ "app": app, "push": true, "builder": builder.program(), "ship": true }),
    )
    .map_err(failed)?;
    let start = std::time::Instant::now();
    let mut progress = |s: &str| {
        report.event(&ShipEvent::Progress(&format!(
            "{} swh-deploy app build: {s}",
            swh_deploy_util::progress::elapsed_prefix(start.elapsed())
        )));
        rec.step(s, app);
    };
    let result = repo.build(app, today_utc(), &opts, &mut progress);
    rec.finish(result.is_ok());
    let out = result.map_err(failed)?;
    ship.images.insert(app.to_string(), out.version.to_string());
    Ok(Evidence(format!(
        "built and pushed {}:{}, tagged {}",
        out.image, out.version, out.tag
    )))
}

/// `chart bump` of the image versions (or `--release-only`) on
/// swh-next-version, pushed, with the merge request to staging.
fn bump(ship: &Ship, report: &mut dyn Reporter) -> Result<Evidence, ShipError> {
    let repo = ship.charts_repo()?;
    let o = &ship.options;
    let bumps: Vec<Bump> = ship
        .images
        .iter()
        .map(|(app, v)| Bump {
            app: app.clone(),
            version: v.clone(),
            add_image: None,
        })
        .collect();
    let desc: Vec<String> = ship
        .images
        .iter()
        .map(|(a, v)| format!("{a}={v}"))
        .collect();
    let req = BumpRequest {
        bumps,
        module: Some((o.module.dotted().to_string(), o.version.tag_name())),
        branch: Env::NextVersion.branch().into(),
        push: true,
        dry_run: false,
        release_only: ship.release_only,
        body: false,
        again: false,
        merge_request: Some(Env::Staging.branch().into()),
    };
    let mut rec = Recorder::start(
        o.journal.as_deref(),
        "chart bump",
        serde_json::json!({
            "apps": desc,
            "release_only": ship.release_only,
            "branch": req.branch,
            "push": true,
            "ship": true,
        }),
    )
    .map_err(failed)?;
    let result = repo.prepare_bump(&req).and_then(|prepared| {
        if prepared.outcome.has_work() {
            rec.step(
                &prepared.outcome.journal_step(&req.branch, true),
                &req.branch,
            );
        }
        repo.commit_bump(prepared)
    });
    rec.finish(result.is_ok());
    let out = result.map_err(failed)?;
    if let Some(c) = &out.already {
        return Ok(Evidence(format!("swh-next-version already has {c}")));
    }
    for c in &out.changes {
        report.event(&ShipEvent::Output(&format!(
            "{}: {} -> {}",
            c.key,
            c.from.as_deref().unwrap_or("(new)"),
            c.to
        )));
    }
    let title = out.message.lines().next().unwrap_or_default();
    Ok(Evidence(format!(
        "committed {} \"{title}\" on swh-next-version, pushed",
        out.commit.as_deref().map(short).unwrap_or("")
    )))
}

/// `chart promote ENV`, behind the Argo CD gate of the source.
fn promote(ship: &Ship, env: Env, report: &mut dyn Reporter) -> Result<Evidence, ShipError> {
    let repo = ship.charts_repo()?;
    let req = PromoteRequest {
        site: Some(&ship.site),
        env,
        dry_run: false,
        no_gate: false,
        wait_gate: None,
        gitlab_token: ship.options.gitlab_token.as_deref(),
        journal: ship.options.journal.as_deref(),
    };
    let done = swh_deploy_charts::promotion::promote(&repo, &req, &mut |e| {
        let text = e.to_string();
        report.event(&if e.is_diagnostic() {
            ShipEvent::Progress(&text)
        } else {
            ShipEvent::Output(&text)
        });
    })
    .map_err(failed)?;
    if let Promoted::Nothing { .. } = done {
        report.event(&ShipEvent::Output(&done.to_string()));
    }
    Ok(Evidence(format!("{env} promoted")))
}

/// `cluster wait ENV` at its chart branch's head.
fn wait_live(ship: &Ship, env: &str, report: &mut dyn Reporter) -> Result<Evidence, ShipError> {
    let o = &ship.options;
    let req = EnvWait {
        site: &ship.site,
        env,
        revision: None,
        charts_dir: None,
        timeout: o.timeout,
        interval: o.interval,
    };
    let done = swh_deploy_cluster::wait::wait_environment(&req, &mut |e| {
        report.event(&ShipEvent::Progress(&e.to_string()))
    })
    .map_err(failed)?;
    match &done.outcome {
        WaitOutcome::Live { .. } => {
            report.event(&ShipEvent::Output(&done.to_string()));
            Ok(Evidence(format!("{env} is live")))
        }
        WaitOutcome::TimedOut(_) => {
            report.event(&ShipEvent::Progress(&format!(
                "swh-deploy cluster wait: {done}"
            )));
            Err(ShipError::Timeout(format!(
                "{env} not live after {}",
                o.timeout_text
            )))
        }
        WaitOutcome::Failed(_) => {
            report.event(&ShipEvent::Progress(&format!(
                "swh-deploy cluster wait: {done}"
            )));
            Err(ShipError::Failed(format!(
                "{env}'s rollout failed (Argo CD / deployments): fix it (a new chart commit, or the cluster) before shipping further"
            )))
        }
    }
}
