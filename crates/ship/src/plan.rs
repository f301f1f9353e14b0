//! Planning a ship: [`plan`] turns the options and the site file into the
//! [`ShipPlan`]'s [`Step`]s.

use crate::state::pin_version;
use crate::{input, Ship, ShipError};
use std::collections::BTreeMap;
use swh_deploy_apps::parse_pins;
use swh_deploy_apps::version::today_utc;
use swh_deploy_charts::Env;
use swh_deploy_nodeset::fold;
use swh_deploy_release::tag::{self, TagOptions};
use swh_deploy_site::Site;
use swh_deploy_upgrade::PlanRequest;
use swh_deploy_util::quote_words;

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `release tag VERSION --repo DIR`.
    Tag,
    /// `release wait MODULE VERSION`.
    WaitPublished,
    /// `upgrade --env ENV --service S...`.
    Upgrade {
        /// The environment.
        env: String,
        /// The services of the environment shipping the package.
        services: Vec<String>,
        /// Their hosts.
        hosts: Vec<String>,
    },
    /// `app build APP --push`.
    Build {
        /// The app.
        app: String,
    },
    /// `chart bump APP=VERSION...` (or `--release-only`).
    Bump,
    /// `chart promote ENV`.
    Promote(Env),
    /// `cluster wait ENV`.
    Wait(String),
}

/// One step of a ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// One line: what and the equivalent swh-deploy command.
    pub title: String,
    /// The exact commands, hosts or files (shown by `--dry-run`).
    pub details: Vec<String>,
    /// What the step does.
    pub action: Action,
}

impl Step {
    /// The step's short name: its title up to the first `:` (`release
    /// tag`, `upgrade staging`...).
    pub fn name(&self) -> &str {
        self.title.split(':').next().unwrap_or("step")
    }
}

/// The steps of a ship, in order, and the notes on the paths not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipPlan {
    /// The steps.
    pub steps: Vec<Step>,
    /// Why a step is not there (no `--repo`, no Argo CD...).
    pub notes: Vec<String>,
}

impl ShipPlan {
    /// The plan as `--dry-run` and a real run print it first: a header,
    /// the notes, then the numbered steps with their details.
    pub fn render(&self, ship: &Ship) -> String {
        let mut out = format!(
            "ship {} {}: {} step(s)\n",
            ship.options.module.dotted(),
            ship.options.version,
            self.steps.len()
        );
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!("{:>3}. {}\n", i + 1, s.title));
            for d in &s.details {
                for line in d.lines() {
                    out.push_str(&format!("       {line}\n"));
                }
            }
        }
        out
    }
}

/// The tag options of the ship's release tag in `repo`.
pub(crate) fn tag_options(ship: &Ship, repo: &std::path::Path) -> TagOptions {
    TagOptions {
        repo: repo.to_path_buf(),
        remote: ship.options.remote.clone(),
        sign: ship.options.sign,
        message: None,
        push: true,
    }
}

/// Environments of the static path in order: as given, else staging, the
/// others by name, production.
pub(crate) fn static_envs(ship: &Ship) -> Result<Vec<String>, ShipError> {
    if !ship.options.envs.is_empty() {
        for e in &ship.options.envs {
            ship.site.environment(e).map_err(input)?;
        }
        return Ok(ship.options.envs.clone());
    }
    let mut envs: Vec<String> = ship.site.environments.keys().cloned().collect();
    envs.sort_by_key(|e| {
        (
            match e.as_str() {
                "staging" => 0,
                "production" => 2,
                _ => 1,
            },
            e.clone(),
        )
    });
    Ok(envs)
}

/// The environment deployed from `branch` and its Argo CD application, or
/// why it cannot be waited for.
pub(crate) fn wait_target(site: &Site, branch: &str) -> Result<(String, String), String> {
    if site.argocd.is_none() {
        return Err(format!("no [argocd] in {}", site.path.display()));
    }
    let env = swh_deploy_cluster::gate::environment_of_branch(site, branch)
        .ok_or_else(|| format!("no environment of {} deploys {branch}", site.path.display()))?;
    let app = env
        .argocd_application
        .clone()
        .ok_or_else(|| format!("environment {} has no argocd_application", env.name))?;
    Ok((env.name.clone(), app))
}

/// Builds the plan of `ship`. It reads the site file, the checkouts and
/// (for the elastic path) the registry, and asks the steps already done
/// for their image versions; it changes nothing.
pub fn plan(ship: &mut Ship) -> Result<ShipPlan, ShipError> {
    if !ship.options.static_path && !ship.options.elastic {
        return Err(ShipError::NothingToShip);
    }
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    release_steps(ship, &mut steps, &mut notes)?;
    if ship.options.static_path {
        static_steps(ship, &mut steps)?;
    }
    if ship.options.elastic {
        elastic_steps(ship, &mut steps, &mut notes)?;
    }
    Ok(ShipPlan { steps, notes })
}

/// 1. `release tag` (with a checkout), 2. `release wait`.
fn release_steps(
    ship: &Ship,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) -> Result<(), ShipError> {
    let o = &ship.options;
    let m = o.module.dotted().to_string();
    let v = o.version.to_string();
    if let Some(repo) = &o.repo {
        let dir = repo.display().to_string();
        let mut details = Vec::new();
        let opts = tag_options(ship, repo);
        match tag::plan(&o.version, &opts) {
            Ok(p) => {
                details.extend(p.steps.iter().map(|s| p.command_line(s)));
                if let Some(pm) = &p.module {
                    if pm.dotted() != m {
                        return Err(ShipError::Input(format!(
                            "--repo {dir} is the checkout of {pm}, not of {m}"
                        )));
                    }
                }
            }
            Err(swh_deploy_release::Error::AlreadyReleased { .. }) => {
                details.push(format!(
                    "{} is already on {}",
                    o.version.tag_name(),
                    opts.remote
                ));
            }
            Err(e) => details.push(format!("(checks fail now: {e})")),
        }
        steps.push(Step {
            title: format!(
                "release tag: {}",
                quote_words(&[
                    "swh-deploy",
                    "release",
                    "tag",
                    &v,
                    "--repo",
                    &dir,
                    "--remote",
                    &o.remote
                ])
            ),
            details,
            action: Action::Tag,
        });
    } else {
        notes.push(format!(
            "no --repo: {} is not tagged by ship (the developers tag their releases)",
            o.version.tag_name()
        ));
    }
    steps.push(Step {
        title: format!(
            "release wait: swh-deploy release wait {m} {v} (--timeout {})",
            o.timeout_text
        ),
        details: o.channels.iter().map(|c| c.describe()).collect(),
        action: Action::WaitPublished,
    });
    Ok(())
}

/// The static path (steps 3..): one `upgrade` per environment having hosts of the
/// services that ship the module's package.
fn static_steps(ship: &Ship, steps: &mut Vec<Step>) -> Result<(), ShipError> {
    let o = &ship.options;
    let package = o.module.debian_package();
    let services: Vec<String> = ship
        .site
        .services
        .values()
        .filter(|s| s.packages.iter().any(|p| p.as_str() == package))
        .map(|s| s.name.clone())
        .collect();
    if services.is_empty() {
        return Err(ShipError::Input(format!(
            "--static: no service of {} has package {package}",
            ship.site.path.display()
        )));
    }
    let mut any = false;
    for env in static_envs(ship)? {
        let on_env: Vec<String> = services
            .iter()
            .filter(|s| {
                swh_deploy_upgrade::select(&ship.site, Some(&env), &[], std::slice::from_ref(s))
                    .is_ok()
            })
            .cloned()
            .collect();
        if on_env.is_empty() {
            continue;
        }
        let sel =
            swh_deploy_upgrade::select(&ship.site, Some(&env), &[], &on_env).map_err(input)?;
        let request = PlanRequest {
            mode: o.mode,
            targets: sel.targets.clone(),
            services: sel.services.clone(),
            packages: Vec::new(),
            migration: None,
            reason: None,
            batch: o.batch.clone().unwrap_or_default(),
            max_fail: o.max_fail.unwrap_or_default(),
            run_id: None,
        };
        let rendered = swh_deploy_upgrade::plan(&request).map_err(input)?.render();
        let mut cmd = vec![
            "swh-deploy".to_string(),
            "upgrade".into(),
            "--env".into(),
            env.clone(),
            "--mode".into(),
            o.mode.as_str().into(),
        ];
        for s in &on_env {
            cmd.extend(["--service".into(), s.clone()]);
        }
        if let Some(b) = &o.batch {
            cmd.extend(["--batch".into(), b.to_string()]);
        }
        if let Some(b) = &o.max_fail {
            cmd.extend(["--max-fail".into(), b.to_string()]);
        }
        steps.push(Step {
            title: format!("upgrade {env}: {}", quote_words(&cmd)),
            details: vec![
                format!(
                    "hosts: {} (until {package} is at {})",
                    fold(&sel.targets),
                    o.version.debian_upstream()
                ),
                rendered,
            ],
            action: Action::Upgrade {
                env: env.clone(),
                services: on_env,
                hosts: sel.targets,
            },
        });
        any = true;
    }
    if !any {
        return Err(ShipError::Input(format!(
            "--static: the services with {package} ({}) have no hosts in any environment",
            services.join(", ")
        )));
    }
    Ok(())
}

/// The apps of the swh-apps checkout whose frozen requirements pin the
/// module, with the pinned version.
pub(crate) fn apps_pinning(
    repo: &swh_deploy_apps::AppsRepo,
    module: &str,
) -> Result<Vec<(String, String)>, ShipError> {
    let key = swh_deploy_apps::normalize_name(module);
    let mut apps = Vec::new();
    for app in repo.list().map_err(input)? {
        let f = repo
            .dir()
            .join("apps")
            .join(&app.name)
            .join("requirements-frozen.txt");
        if let Ok(text) = std::fs::read_to_string(&f) {
            if let Some(pinned) = parse_pins(&text).get(&key) {
                apps.push((app.name.clone(), pinned.clone()));
            }
        }
    }
    Ok(apps)
}

/// The elastic path: `app build` per app pinning the module (or none),
/// `chart bump`, then `chart promote` and `cluster wait` for staging and
/// production.
fn elastic_steps(
    ship: &mut Ship,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) -> Result<(), ShipError> {
    let repo = ship.apps_repo()?;
    let m = ship.options.module.dotted().to_string();
    let apps = apps_pinning(&repo, &m)?;
    let values_file = ship
        .site
        .charts
        .as_ref()
        .map(|c| c.values_file.clone())
        .unwrap_or_else(|| "values-swh-application-versions.yaml".into());
    let charts = ship.options.charts_dir.display().to_string();
    let tagv = ship.options.version.tag_name();
    if apps.is_empty() {
        // A release that changes no image (about one real release in nine):
        // the chart release is appVersion + 1 only.
        notes.push(format!(
            "--elastic: no app of {} pins {m}: no image to build; the chart release only bumps swh/Chart.yaml's appVersion",
            repo.dir().display()
        ));
        ship.release_only = true;
        let words = [
            "swh-deploy",
            "chart",
            "bump",
            "--release-only",
            "--module",
            &m,
            "--module-version",
            &tagv,
        ];
        steps.push(Step {
            title: format!("chart bump: {}", quote_words(&words)),
            details: vec![format!(
                "swh/Chart.yaml appVersion + 1 on swh-next-version of {charts}, no image version change; commit \"vN: Release {m} {tagv}\" and push"
            )],
            action: Action::Bump,
        });
    } else {
        let reg = ship.registry()?;
        let mut bumps = Vec::new();
        // Versions the builds would take (ship.images only holds the
        // versions found already built).
        let mut planned = BTreeMap::new();
        for (app, pinned) in &apps {
            let step = Step {
                title: format!(
                    "app build: swh-deploy app build {app} --push --builder {}",
                    ship.options.builder.program()
                ),
                details: Vec::new(),
                action: Action::Build { app: app.clone() },
            };
            let details = if let Ok(Some(done)) = step.is_done(ship) {
                vec![format!("already built: {done}")]
            } else {
                let next = repo
                    .next_version(app, today_utc(), Some(&reg), None)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| "YYYYMMDD.N".into());
                planned.insert(app.clone(), next.clone());
                vec![
                    format!(
                        "apps/{app}/requirements-frozen.txt: {m} {pinned} -> {}",
                        pin_version(&ship.options.version)
                    ),
                    format!(
                        "image {}:{next} (and latest), tag {app}-{next}",
                        reg.image_ref(&swh_deploy_apps::image_name(app))
                    ),
                ]
            };
            steps.push(Step { details, ..step });
            let v = ship
                .images
                .get(app)
                .or_else(|| planned.get(app))
                .cloned()
                .unwrap_or_default();
            bumps.push(format!("{app}={v}"));
        }
        ship.apps = apps.into_iter().map(|(a, _)| a).collect();
        let mut words = vec!["swh-deploy", "chart", "bump"];
        words.extend(bumps.iter().map(String::as_str));
        words.extend(["--module", &m, "--module-version", &tagv]);
        steps.push(Step {
            title: format!("chart bump: {}", quote_words(&words)),
            details: vec![format!(
                "{values_file} on swh-next-version of {charts}; swh/Chart.yaml appVersion + 1; commit and push"
            )],
            action: Action::Bump,
        });
    }
    for env in [Env::Staging, Env::Production] {
        steps.push(Step {
            title: format!("chart promote: swh-deploy chart promote {env}"),
            details: vec![format!(
                "fast-forward {env} to {}",
                env.source().map(|e| e.branch()).unwrap_or_default()
            )],
            action: Action::Promote(env),
        });
        match wait_target(&ship.site, env.branch()) {
            Ok((name, app)) => steps.push(Step {
                title: format!(
                    "cluster wait: swh-deploy cluster wait {name} (--timeout {})",
                    ship.options.timeout_text
                ),
                details: vec![format!("Argo CD application {app} live at {env}'s head")],
                action: Action::Wait(name),
            }),
            Err(why) => notes.push(format!("{env} is not waited for: {why}")),
        }
    }
    Ok(())
}
