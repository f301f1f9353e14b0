//! `swh-deploy chart`: the swh-charts steps of the runbook's "Deployment with
//! Kubernetes" (bump image versions, promote between environments, show).

use clap::{Args, Subcommand, ValueEnum};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use swh_deploy_apps::registry::Registry;
use swh_deploy_charts::values::Bump;
use swh_deploy_charts::{BumpOutcome, BumpRequest, ChartsRepo, Env};

use super::app::load_site;
use swh_deploy_journal::Recorder;

/// Arguments of `swh-deploy chart`.
#[derive(Debug, Args)]
pub struct ChartArgs {
    /// The swh-charts checkout (default: $SWH_DEPLOY_CHARTS_DIR, else the
    /// site file's [charts] checkout, else the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    charts_dir: Option<PathBuf>,
    /// The site file (default: $SWH_DEPLOY_SITE, ./swh-deploy.toml,
    /// /etc/swh-deploy/site.toml, if present).
    #[arg(long, global = true, value_name = "FILE")]
    site: Option<PathBuf>,
    #[command(subcommand)]
    command: ChartCommand,
}

/// The environments a promotion can target.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    /// swh-next-version -> staging
    Staging,
    /// staging -> production
    Production,
}

#[derive(Debug, Subcommand)]
enum ChartCommand {
    /// Set image versions in values-swh-application-versions.yaml, bump
    /// appVersion in swh/Chart.yaml, commit (subject only, as SWH's
    /// automation does) and push.
    Bump {
        /// APP=VERSION pairs (APP: swh-apps directory like swh-loader-git,
        /// or its key swh_loader_git); none with --release-only.
        #[arg(required_unless_present = "release_only", value_name = "APP=VERSION")]
        apps: Vec<String>,
        /// A release that changes no image: only swh/Chart.yaml's
        /// appVersion + 1 and the commit "vN: Release MODULE VERSION"
        /// (needs --module and --module-version, no APP=VERSION). Does
        /// nothing when the branch already has that release commit.
        #[arg(long, requires = "module", conflicts_with_all = ["apps", "add"])]
        release_only: bool,
        /// With --release-only: commit even if the branch already has the
        /// release commit of this module version (another appVersion bump).
        #[arg(long, requires = "release_only")]
        again: bool,
        /// Also list the changed keys in the commit message's body (they
        /// are always printed and journaled).
        #[arg(long)]
        body: bool,
        /// The module being released, for the commit title (with
        /// --module-version).
        #[arg(long, requires = "module_version")]
        module: Option<String>,
        /// The module's version, e.g. v6.3.0.
        #[arg(long, requires = "module")]
        module_version: Option<String>,
        /// The branch to commit to.
        #[arg(long, default_value = "swh-next-version")]
        branch: String,
        /// Add an app missing from the file with this image reference
        /// (IMAGE when one APP is given, or APP=IMAGE); repeatable.
        #[arg(long, value_name = "[APP=]IMAGE")]
        add: Vec<String>,
        /// Commit but do not push.
        #[arg(long)]
        no_push: bool,
        /// Do not open or update the merge request to staging that a push
        /// of swh-next-version carries by default (git push options
        /// merge_request.create, merge_request.target=staging).
        #[arg(long)]
        no_merge_request: bool,
        /// Print the changes and commit message; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Fast-forward swh-next-version -> staging, or staging -> production,
    /// after printing the image version changes being promoted.
    Promote {
        /// The environment to promote into.
        #[arg(value_enum)]
        target: Target,
        /// Print what would be promoted; push nothing.
        #[arg(long)]
        dry_run: bool,
        /// Promote even if the source environment's Argo CD application
        /// is not live and healthy at its head (recorded in the journal).
        #[arg(long)]
        no_gate: bool,
    },
    /// Roll an environment back: a revert commit on its chart branch
    /// (never a force-push), pushed, then the Argo CD wait.
    Rollback(super::chart_rollback::RollbackArgs),
    /// Apps and their image versions per environment, marking differences.
    Show {
        /// Show only this branch.
        #[arg(long)]
        branch: Option<String>,
        /// Show only the apps whose versions differ between environments.
        #[arg(long)]
        diff: bool,
        /// Also check that every image:tag each shown environment deploys
        /// (global versions and per-deployment imageVersion pins) exists in
        /// the site's registry; exit 1 naming the missing ones.
        #[arg(long)]
        check: bool,
    },
}

pub(crate) fn charts_dir(arg: &Option<PathBuf>, site: Option<&swh_deploy_site::Site>) -> PathBuf {
    arg.clone()
        .or_else(|| std::env::var_os("SWH_DEPLOY_CHARTS_DIR").map(PathBuf::from))
        .or_else(|| {
            site.and_then(|s| s.charts.as_ref())
                .map(|c| c.checkout.clone())
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `swh-deploy chart ...`.
pub fn run(args: ChartArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy chart: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_bumps(apps: &[String], add: &[String]) -> Result<Vec<Bump>, String> {
    let mut bumps = Vec::new();
    for a in apps {
        let Some((app, version)) = a.split_once('=') else {
            return Err(format!("{a:?}: expected APP=VERSION"));
        };
        if app.is_empty() {
            return Err(format!("{a:?}: empty app name"));
        }
        bumps.push(Bump {
            app: app.to_string(),
            version: version.to_string(),
            add_image: None,
        });
    }
    for spec in add {
        let (app, image) = match spec.split_once('=') {
            Some((a, i)) => (Some(a), i),
            None => (None, spec.as_str()),
        };
        let target = match app {
            Some(a) => bumps.iter_mut().find(|b| b.app == a),
            None if bumps.len() == 1 => bumps.first_mut(),
            None => {
                return Err("--add IMAGE needs exactly one APP=VERSION; use --add APP=IMAGE".into())
            }
        };
        let Some(b) = target else {
            return Err(format!(
                "--add {spec}: no such APP among the APP=VERSION arguments"
            ));
        };
        b.add_image = Some(image.to_string());
    }
    Ok(bumps)
}

fn run_inner(args: ChartArgs) -> Result<ExitCode, String> {
    let site = load_site(args.site.as_deref())?;
    let site = site.as_ref();
    let dir = charts_dir(&args.charts_dir, site);
    let mut repo = ChartsRepo::open(&dir).map_err(|e| e.to_string())?;
    if let Some(c) = site.and_then(|s| s.charts.as_ref()) {
        repo = repo.with_remote(&c.remote).with_values_file(&c.values_file);
    }
    match args.command {
        ChartCommand::Bump {
            apps,
            release_only,
            again,
            body,
            module,
            module_version,
            branch,
            add,
            no_push,
            no_merge_request,
            dry_run,
        } => {
            let merge_request = (branch == Env::NextVersion.branch() && !no_merge_request)
                .then(|| Env::Staging.branch().to_string());
            let req = BumpRequest {
                bumps: parse_bumps(&apps, &add)?,
                module: module.clone().zip(module_version.clone()),
                branch: branch.clone(),
                push: !no_push,
                dry_run,
                release_only,
                body,
                again,
                merge_request: merge_request.clone(),
            };
            let mut rec = if dry_run {
                None
            } else {
                Some(
                    Recorder::start(
                        "chart bump",
                        serde_json::json!({
                            "apps": apps,
                            "release_only": release_only,
                            "again": again,
                            "module": module,
                            "module_version": module_version,
                            "branch": branch,
                            "push": !no_push,
                            "merge_request_to": merge_request,
                        }),
                    )
                    .map_err(|e| e.to_string())?,
                )
            };
            let result = repo.prepare_bump(&req).and_then(|prepared| {
                if let Some(r) = rec.as_mut() {
                    if prepared.outcome.has_work() {
                        r.step(&journal_step(&prepared.outcome, &branch, !no_push), &branch);
                    }
                }
                if dry_run {
                    Ok(prepared.outcome)
                } else {
                    repo.commit_bump(prepared)
                }
            });
            if let Some(r) = rec {
                r.finish(result.is_ok());
            }
            let out = result.map_err(|e| e.to_string())?;
            print_bump(&out, &branch, dry_run, no_push);
            if let Some(target) = &merge_request {
                if out.pushed {
                    println!(
                        "merge request {branch} -> {target}: opened, or updated if open (git push options)"
                    );
                } else if dry_run && out.has_work() && !no_push {
                    println!("dry run: the push would open or update the merge request {branch} -> {target}");
                }
            }
        }
        ChartCommand::Promote {
            target,
            dry_run,
            no_gate,
        } => {
            let env = match target {
                Target::Staging => Env::Staging,
                Target::Production => Env::Production,
            };
            promote(&repo, site, env, dry_run, no_gate)?;
        }
        ChartCommand::Rollback(a) => return super::chart_rollback::run(&repo, site, a),
        ChartCommand::Show {
            branch,
            diff,
            check,
        } => {
            let envs: Vec<String> = match branch {
                Some(b) => vec![b],
                None => Env::ALL.iter().map(|e| e.branch().to_string()).collect(),
            };
            let ov = repo.show(&envs).map_err(|e| e.to_string())?;
            let w = ov.apps.keys().map(|k| k.len()).max().unwrap_or(3).max(3);
            let cw = envs.iter().map(|e| e.len()).max().unwrap_or(0).max(11);
            let mut header = format!("  {:<w$}", "APP");
            for e in &envs {
                header.push_str(&format!("  {e:<cw$}"));
            }
            println!("{}", header.trim_end());
            for (app, versions) in &ov.apps {
                let differs = ov.differs(app);
                if diff && !differs {
                    continue;
                }
                let mut line = format!("{} {app:<w$}", if differs { "*" } else { " " });
                for v in versions {
                    line.push_str(&format!("  {:<cw$}", v.as_deref().unwrap_or("-")));
                }
                println!("{}", line.trim_end());
            }
            if envs.len() > 1 {
                let n = ov.apps.keys().filter(|a| ov.differs(a)).count();
                println!("{n} app(s) differ between environments (marked *)");
            }
            if check {
                let mut failed = Vec::new();
                for e in &envs {
                    let Some(env) = Env::ALL.into_iter().find(|x| x.branch() == e) else {
                        return Err(format!("--check: {e} is not an environment branch"));
                    };
                    let rev = format!("{}/{e}", repo.remote());
                    if let Err(m) = check_images(&repo, site, &rev, env) {
                        eprintln!("swh-deploy chart: {m}");
                        failed.push(e.clone());
                    }
                }
                if !failed.is_empty() {
                    return Err(format!("image check failed for {}", failed.join(", ")));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The journal step of a bump: every changed key with its old and new
/// version, appVersion, the commit subject, and whether it is pushed (the
/// commit message itself has the subject only, by default).
pub(crate) fn journal_step(out: &BumpOutcome, branch: &str, push: bool) -> String {
    let mut what: Vec<String> = out
        .changes
        .iter()
        .map(|c| {
            format!(
                "{} {} -> {}",
                c.key,
                c.from.as_deref().unwrap_or("(new)"),
                c.to
            )
        })
        .collect();
    what.push(format!(
        "appVersion {} -> {}",
        out.app_version - 1,
        out.app_version
    ));
    format!(
        "bump {} on {branch}, commit \"{}\"{}",
        what.join(", "),
        out.message.lines().next().unwrap_or_default(),
        if push { ", push" } else { "" }
    )
}

/// Prints what a bump did (or would do): the changed keys, where added
/// keys went, appVersion, the commit.
pub(crate) fn print_bump(out: &BumpOutcome, branch: &str, dry_run: bool, no_push: bool) {
    if let Some(c) = &out.already {
        println!(
            "nothing to do: {branch} already has the release commit {c} (--again to bump appVersion once more)"
        );
        return;
    }
    if !out.has_work() {
        println!("nothing to do: every app is already at the requested version on {branch}");
        return;
    }
    if out.release_only {
        println!("no image version change (release only)");
    }
    for c in &out.changes {
        println!(
            "{}: {} -> {}",
            c.key,
            c.from.as_deref().unwrap_or("(new)"),
            c.to
        );
    }
    for n in &out.notes {
        println!("note: {n}");
    }
    println!("appVersion: {} -> {}", out.app_version - 1, out.app_version);
    let title = out.message.lines().next().unwrap_or_default();
    if dry_run {
        println!(
            "dry run: would commit \"{title}\" on {branch}{}",
            if no_push { "" } else { " and push it" }
        );
    } else {
        println!(
            "committed {} \"{title}\" on {branch}{}",
            out.commit
                .as_deref()
                .map(|c| &c[..c.len().min(12)])
                .unwrap_or(""),
            if out.pushed {
                ", pushed"
            } else {
                " (not pushed)"
            }
        );
    }
}

/// `chart promote`: plans the promotion into `env`, prints the commits and
/// image version changes, and (unless `dry_run`) checks the Argo CD gate
/// of the source environment (unless `no_gate`) and pushes, journaled as a
/// `chart promote` run. Used by `chart promote` and by `ship`.
pub(crate) fn promote(
    repo: &ChartsRepo,
    site: Option<&swh_deploy_site::Site>,
    env: Env,
    dry_run: bool,
    no_gate: bool,
) -> Result<(), String> {
    let plan = repo.plan_promote(env).map_err(|e| e.to_string())?;
    if plan.new_head.is_none() {
        println!(
            "nothing to promote: {} and {} are at the same commit",
            plan.from, plan.to
        );
        return Ok(());
    }
    if let Some(r) = &plan.rebase {
        println!(
            "{} has {} commit(s) that {} lacks; rebasing {} onto {}: {} -> {}{}",
            plan.to,
            r.onto.len(),
            plan.from,
            plan.from,
            plan.to,
            &r.old[..r.old.len().min(12)],
            &r.new[..r.new.len().min(12)],
            if dry_run {
                " (dry run: not pushed)"
            } else {
                ""
            }
        );
        for c in &r.onto {
            println!("  {c}");
        }
    }
    println!(
        "promoting {} -> {} ({} commit(s)):",
        plan.from,
        plan.to,
        plan.commits.len()
    );
    for c in &plan.commits {
        println!("  {c}");
    }
    if let Some(head) = &plan.new_head {
        let current = format!("{}/{}", repo.remote(), plan.to.branch());
        let diff = repo
            .values_diff(&current, head, plan.to)
            .map_err(|e| e.to_string())?;
        println!(
            "values of {}'s application (valueFiles merged as Helm does), {} change(s):",
            plan.to,
            diff.len()
        );
        for (k, a, b) in &diff {
            println!(
                "  {k}: {} -> {}",
                a.as_deref().unwrap_or("(absent)"),
                b.as_deref().unwrap_or("(absent)")
            );
        }
        check_images(repo, site, head, plan.to)?;
    }
    if plan.changes.is_empty() {
        println!("no image version changes");
    } else {
        println!("image version changes:");
        for (k, from, to) in &plan.changes {
            println!(
                "  {k}: {} -> {}",
                from.as_deref().unwrap_or("(absent)"),
                to.as_deref().unwrap_or("(absent)")
            );
        }
    }
    if dry_run {
        println!("dry run: nothing pushed");
    } else {
        // The source environment must be live at the commit being
        // promoted (Argo CD), unless --no-gate. swh-next-version's
        // Application is named after its open merge request.
        let resolved = if no_gate {
            None
        } else {
            next_version_application(site, plan.from)?
        };
        let gate = match super::cluster::promote_gate(
            resolved.as_ref().or(site),
            plan.from.branch(),
            plan.new_head.as_deref().unwrap_or_default(),
            no_gate,
        ) {
            Ok(g) => g,
            Err(e) => {
                let Some(r) = &plan.rebase else {
                    return Err(e);
                };
                // The rebased commit is deployed nowhere yet: push it to
                // the source branch alone, so that its environment deploys
                // it; the promotion itself waits for that.
                let mut rec = Recorder::start(
                    "chart promote",
                    serde_json::json!({
                        "from": plan.from.branch(),
                        "to": plan.to.branch(),
                        "rebase": {"old": r.old, "new": r.new, "onto": r.onto},
                        "promoted": false,
                    }),
                )
                .map_err(|e| e.to_string())?;
                rec.step(
                    &format!(
                        "rebase {} onto {}: {} -> {} (pushed alone with --force-with-lease; the promotion waits for {} to deploy it)",
                        plan.from, plan.to, r.old, r.new, plan.from
                    ),
                    plan.from.branch(),
                );
                let mut only = plan.clone();
                only.new_head = None;
                let pushed = repo.push_promote(&only);
                rec.finish(pushed.is_ok());
                pushed.map_err(|e| e.to_string())?;
                return Err(format!(
                    "{} was rebased onto {} and pushed ({}); {} is not promoted yet: {e}\n\
                     Run `chart promote {}` again once {} is live at {}",
                    plan.from,
                    plan.to,
                    &r.new[..r.new.len().min(12)],
                    plan.to,
                    plan.to,
                    plan.from,
                    &r.new[..r.new.len().min(12)]
                ));
            }
        };
        let mut rec = Recorder::start(
            "chart promote",
            serde_json::json!({
                "from": plan.from.branch(),
                "to": plan.to.branch(),
                "commit": plan.new_head,
                "changes": plan.changes,
                "gate": gate,
                "rebase": plan.rebase.as_ref().map(|r| serde_json::json!({
                    "old": r.old, "new": r.new, "onto": r.onto,
                })),
            }),
        )
        .map_err(|e| e.to_string())?;
        if let Some(r) = &plan.rebase {
            rec.step(
                &format!(
                    "rebase {} onto {}: {} -> {} (pushed with --force-with-lease, atomically with the promotion)",
                    plan.from, plan.to, r.old, r.new
                ),
                plan.from.branch(),
            );
        }
        rec.step(
            &format!(
                "fast-forward {} to {}",
                plan.to,
                plan.new_head.as_deref().unwrap_or("")
            ),
            plan.to.branch(),
        );
        let result = repo.push_promote(&plan);
        rec.finish(result.is_ok());
        result.map_err(|e| e.to_string())?;
        println!(
            "{} is now at {}",
            plan.to,
            plan.new_head.as_deref().unwrap_or("")
        );
        super::annotate::annotate_promotion(&plan);
    }
    Ok(())
}

/// For a promotion from swh-next-version whose environment's
/// `argocd_application` has `{number}` (an ApplicationSet's pull-request
/// generator, `swh-{branch}-{number}`): the site with the number of the
/// open merge request swh-next-version -> staging, read from `[charts]
/// merge_requests` (GitLab's API; `PRIVATE-TOKEN` from $GITLAB_TOKEN when
/// set, never printed), put in the name. None when there is nothing to
/// resolve; an error when no merge request is open.
fn next_version_application(
    site: Option<&swh_deploy_site::Site>,
    from: Env,
) -> Result<Option<swh_deploy_site::Site>, String> {
    let Some(site) = site else { return Ok(None) };
    if from != Env::NextVersion {
        return Ok(None);
    }
    let branch = from.branch();
    let Some((name, template)) = site.environments.iter().find_map(|(n, e)| {
        (e.chart_branch.as_deref() == Some(branch))
            .then_some(())
            .and(e.argocd_application.as_ref())
            .filter(|a| a.contains("{number}"))
            .map(|a| (n.clone(), a.clone()))
    }) else {
        return Ok(None);
    };
    let api = site
        .charts
        .as_ref()
        .and_then(|c| c.merge_requests.as_deref())
        .ok_or_else(|| {
            format!(
                "{}: environment {name}'s argocd_application {template:?} needs the merge request's number: set [charts] merge_requests (the GitLab project's API URL)",
                site.path.display()
            )
        })?
        .trim_end_matches('/');
    let url = format!(
        "{api}/merge_requests?state=opened&source_branch={branch}&target_branch={}",
        Env::Staging.branch()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.get(&url);
    if let Some(t) = std::env::var("GITLAB_TOKEN").ok().filter(|t| !t.is_empty()) {
        req = req.header("PRIVATE-TOKEN", &t);
    }
    let body = req
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let mrs: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: {e}"))?;
    let Some(iid) = mrs
        .as_array()
        .and_then(|a| a.first())
        .and_then(|m| m["iid"].as_u64())
    else {
        return Err(format!(
            "refusing to promote from {branch}: no open merge request {branch} -> staging ({url}), so no next-version Application ({template}) to check; chart bump opens it, or pass --no-gate"
        ));
    };
    let app = template
        .replace("{branch}", branch)
        .replace("{number}", &iid.to_string());
    println!("next-version: merge request !{iid}, Application {app}");
    let mut site = site.clone();
    if let Some(e) = site.environments.get_mut(&name) {
        e.argocd_application = Some(app);
    }
    Ok(Some(site))
}

/// Checks that every image:tag `env`'s application would deploy from
/// `rev` exists in the registry: the images on the site's `[registry]` host
/// are looked up (tag list, with the docker config's credentials); images
/// on other hosts are listed as not checked. Refuses naming every missing
/// image and where its tag is set.
pub(crate) fn check_images(
    repo: &ChartsRepo,
    site: Option<&swh_deploy_site::Site>,
    rev: &str,
    env: Env,
) -> Result<(), String> {
    let uses = repo.images_at(rev, env).map_err(|e| e.to_string())?;
    let Some(reg) = site.and_then(|s| s.registry.as_ref()) else {
        println!(
            "images not checked: no [registry] in the site file ({} image(s) in {env})",
            uses.len()
        );
        return Ok(());
    };
    let host = reg.host.trim_end_matches('/');
    let registry = Registry::parse(&format!(
        "{}://{host}",
        if reg.insecure { "http" } else { "https" }
    ))
    .map_err(|e| e.to_string())?;
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut missing = Vec::new();
    let (mut checked, mut elsewhere) = (0, BTreeSet::new());
    for u in &uses {
        let Some(path) = u.image.strip_prefix(host).and_then(|p| p.strip_prefix('/')) else {
            elsewhere.insert(u.image.split('/').next().unwrap_or_default().to_string());
            continue;
        };
        if !tags.contains_key(path) {
            let t = registry.tags(path, None).map_err(|e| e.to_string())?;
            tags.insert(path.to_string(), t);
        }
        checked += 1;
        if !tags[path].contains(&u.tag) {
            missing.push(format!("  {}:{} ({})", u.image, u.tag, u.source));
        }
    }
    if !elsewhere.is_empty() {
        println!(
            "images not checked (not on the site's registry {host}): {} image(s) on {}",
            uses.len() - checked,
            elsewhere.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if !missing.is_empty() {
        return Err(format!(
            "{env} would deploy {} image(s) missing from the registry {host}:\n{}\n\
             push them (swh-deploy app build --push) or fix the values; nothing was changed",
            missing.len(),
            missing.join("\n")
        ));
    }
    println!("images checked: {checked} image:tag(s) of {env} exist in {host}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bumps;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn app_version_pairs_and_add() {
        let b = parse_bumps(&s(&["swh-lister=20250101.1"]), &s(&["reg/lister"])).unwrap();
        assert_eq!(b[0].app, "swh-lister");
        assert_eq!(b[0].version, "20250101.1");
        assert_eq!(b[0].add_image.as_deref(), Some("reg/lister"));
        let b = parse_bumps(&s(&["a=1", "b=2"]), &s(&["b=127.0.0.1:5000/swh/b"])).unwrap();
        assert_eq!(b[0].add_image, None);
        assert_eq!(b[1].add_image.as_deref(), Some("127.0.0.1:5000/swh/b"));
        assert!(parse_bumps(&s(&["a=1", "b=2"]), &s(&["reg/x"])).is_err());
        assert!(parse_bumps(&s(&["a=1"]), &s(&["c=reg/c"])).is_err());
        assert!(parse_bumps(&s(&["novalue"]), &[])
            .unwrap_err()
            .contains("APP=VERSION"));
        assert!(parse_bumps(&s(&["=1"]), &[]).is_err());
    }
}
