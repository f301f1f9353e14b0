//! Unit tests of planning and of the already-done checks, on real git
//! repositories with bare remotes in temporary directories.

use super::*;
use std::path::Path;
use swh_deploy_util::testing::git;

/// A work tree `name` with one commit, cloned from a fresh bare remote
/// `name.git` (its `origin`).
fn clone_with_remote(root: &Path, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let dir = root.join(name);
    git(root, &["clone", "-q", bare.to_str().unwrap(), name]);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "one", "--allow-empty"]);
    git(&dir, &["push", "-q", "origin", "HEAD:main"]);
    dir
}

const SITE: &str = r#"
[site]
name = "unit"

[environments.staging]
[environments.production]
[environments.alpha]

[groups.workers-staging]
environment = "staging"
nodes = "w[1-2].staging"

[groups.workers-production]
environment = "production"
nodes = "w[1-3].prod"

[groups.rpc-staging]
environment = "staging"
nodes = "rpc1.staging"

[services.loader-git]
kind = "worker"
units = ["swh-worker@loader_git"]
packages = ["python3-swh.loader.git"]
groups = ["workers-staging", "workers-production"]
health = { check = "systemd" }

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc-staging"]
health = { check = "systemd" }
"#;

fn site(root: &Path, extra: &str) -> swh_deploy_site::Site {
    let p = root.join("site.toml");
    std::fs::write(&p, format!("{SITE}{extra}")).unwrap();
    swh_deploy_site::Site::load(&p).unwrap()
}

fn options(root: &Path) -> ShipOptions {
    ShipOptions {
        module: Module::parse("swh.loader.git").unwrap(),
        version: ReleaseVersion::parse("1.2.0").unwrap(),
        static_path: false,
        elastic: false,
        repo: None,
        remote: "origin".into(),
        sign: Some(false),
        channels: vec![Channel::pypi("http://127.0.0.1:1/simple/").unwrap()],
        mode: Mode::Nominal,
        batch: None,
        max_fail: None,
        host_keys: HostKeyPolicy::Strict,
        envs: Vec::new(),
        index_url: None,
        registry: None,
        builder: Builder::Buildah,
        uv: "uv".into(),
        python_version: None,
        apps_dir: root.join("swh-apps"),
        charts_dir: root.join("swh-charts"),
        gitlab_token: None,
        timeout: Duration::from_secs(60),
        timeout_text: "1m".into(),
        interval: Duration::from_secs(1),
        journal: Some(root.join("journal.sqlite")),
        argv: vec!["swh-deploy".into(), "ship".into()],
    }
}

#[test]
fn nothing_to_ship_is_refused_with_exit_1() {
    let d = tempfile::tempdir().unwrap();
    let mut ship = Ship::new(options(d.path()), site(d.path(), ""));
    let e = plan(&mut ship).unwrap_err();
    assert!(matches!(e, ShipError::NothingToShip), "{e}");
    assert_eq!(e.exit(), Exit::Failed);
}

#[test]
fn static_plan_upgrades_staging_then_the_others_then_production() {
    let d = tempfile::tempdir().unwrap();
    let mut o = options(d.path());
    o.static_path = true;
    let mut ship = Ship::new(o, site(d.path(), ""));
    let p = plan(&mut ship).unwrap();
    let names: Vec<&str> = p.steps.iter().map(Step::name).collect();
    // alpha has no host of the service: no step for it.
    assert_eq!(
        names,
        ["release wait", "upgrade staging", "upgrade production"]
    );
    assert_eq!(
        p.notes,
        ["no --repo: v1.2.0 is not tagged by ship (the developers tag their releases)"]
    );
    assert_eq!(
        p.steps[1].action,
        Action::Upgrade {
            env: "staging".into(),
            services: vec!["loader-git".into()],
            hosts: vec!["w1.staging".into(), "w2.staging".into()],
        }
    );
    assert_eq!(
        p.steps[2].title,
        "upgrade production: swh-deploy upgrade --env production --mode nominal --service loader-git"
    );
    assert!(
        p.steps[2].details[0]
            .starts_with("hosts: w[1-3].prod (until python3-swh.loader.git is at 1.2.0)"),
        "{:?}",
        p.steps[2].details
    );
    let text = p.render(&ship);
    assert!(
        text.starts_with("ship swh.loader.git 1.2.0: 3 step(s)\n  note: no --repo"),
        "{text}"
    );
    assert!(text.contains("\n  2. upgrade staging: "), "{text}");
}

#[test]
fn static_plan_follows_the_given_environments_and_refuses_unknown_ones() {
    let d = tempfile::tempdir().unwrap();
    let mut o = options(d.path());
    o.static_path = true;
    o.envs = vec!["production".into()];
    let mut ship = Ship::new(o.clone(), site(d.path(), ""));
    let names: Vec<String> = plan(&mut ship)
        .unwrap()
        .steps
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    assert_eq!(names, ["release wait", "upgrade production"]);

    o.envs = vec!["nowhere".into()];
    let mut ship = Ship::new(o, site(d.path(), ""));
    let e = plan(&mut ship).unwrap_err();
    assert!(matches!(e, ShipError::Input(_)), "{e}");
    assert!(e.to_string().contains("nowhere"), "{e}");
}

#[test]
fn static_plan_needs_a_service_shipping_the_package() {
    let d = tempfile::tempdir().unwrap();
    let mut o = options(d.path());
    o.static_path = true;
    o.module = Module::parse("swh.scheduler").unwrap();
    let mut ship = Ship::new(o, site(d.path(), ""));
    let e = plan(&mut ship).unwrap_err();
    assert!(
        e.to_string().starts_with("--static: no service of ")
            && e.to_string().ends_with("has package python3-swh.scheduler"),
        "{e}"
    );
}

#[test]
fn elastic_plan_without_pinning_app_is_a_release_only_bump_and_unwaited_promotions() {
    let d = tempfile::tempdir().unwrap();
    clone_with_remote(
        d.path(),
        "swh-apps",
        &[
            ("apps/swh-graph/requirements.txt", "swh.graph\n"),
            (
                "apps/swh-graph/requirements-frozen.txt",
                "swh-graph==3.0.0\n",
            ),
        ],
    );
    let mut o = options(d.path());
    o.elastic = true;
    let mut ship = Ship::new(o, site(d.path(), ""));
    let p = plan(&mut ship).unwrap();
    assert!(ship.release_only);
    let names: Vec<&str> = p.steps.iter().map(Step::name).collect();
    assert_eq!(
        names,
        [
            "release wait",
            "chart bump",
            "chart promote",
            "chart promote"
        ]
    );
    assert_eq!(
        p.steps[1].title,
        "chart bump: swh-deploy chart bump --release-only --module swh.loader.git --module-version v1.2.0"
    );
    assert_eq!(
        p.steps[2].action,
        Action::Promote(swh_deploy_charts::Env::Staging)
    );
    assert_eq!(
        p.steps[3].action,
        Action::Promote(swh_deploy_charts::Env::Production)
    );
    assert!(
        p.notes[1].starts_with("--elastic: no app of "),
        "{:?}",
        p.notes
    );
    assert!(
        p.notes[2].starts_with("staging is not waited for: no [argocd] in "),
        "{:?}",
        p.notes
    );
    assert!(
        p.notes[3].starts_with("production is not waited for: no [argocd] in "),
        "{:?}",
        p.notes
    );
}

#[test]
fn the_tag_is_done_once_it_is_on_the_remote() {
    let d = tempfile::tempdir().unwrap();
    let repo = clone_with_remote(d.path(), "swh-loader-git", &[("setup.py", "\n")]);
    let mut o = options(d.path());
    o.static_path = true;
    o.repo = Some(repo.clone());
    let mut ship = Ship::new(o, site(d.path(), ""));
    let p = plan(&mut ship).unwrap();
    let tag_step = &p.steps[0];
    assert_eq!(tag_step.action, Action::Tag);
    assert!(
        tag_step.details[0].contains("tag -a") || tag_step.details[0].contains("tag"),
        "{:?}",
        tag_step.details
    );

    // Not tagged yet; a local tag alone is not the release either.
    assert_eq!(tag_step.is_done(&mut ship).unwrap(), None);
    git(&repo, &["tag", "-a", "-m", "Release v1.2.0", "v1.2.0"]);
    assert_eq!(tag_step.is_done(&mut ship).unwrap(), None);

    git(&repo, &["push", "-q", "origin", "refs/tags/v1.2.0"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(
        tag_step.is_done(&mut ship).unwrap(),
        Some(Evidence(format!(
            "v1.2.0 is on origin at HEAD {}",
            &head[..12]
        )))
    );

    // The checkout moved on: the release is the tagged commit.
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "two"]);
    let new = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(
        tag_step.is_done(&mut ship).unwrap(),
        Some(Evidence(format!(
            "v1.2.0 is on origin at {} (the checkout's HEAD is {}: the release is {})",
            &head[..12],
            &new[..12],
            &head[..12]
        )))
    );
}

#[test]
fn an_unreachable_remote_fails_the_tag_check() {
    let d = tempfile::tempdir().unwrap();
    let repo = clone_with_remote(d.path(), "swh-loader-git", &[("setup.py", "\n")]);
    git(
        &repo,
        &[
            "remote",
            "set-url",
            "origin",
            d.path().join("gone.git").to_str().unwrap(),
        ],
    );
    let mut o = options(d.path());
    o.static_path = true;
    o.repo = Some(repo);
    let mut ship = Ship::new(o, site(d.path(), ""));
    let step = Step {
        title: "release tag: x".into(),
        details: Vec::new(),
        action: Action::Tag,
    };
    let e = step.is_done(&mut ship).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot list the tags of origin: "),
        "{e}"
    );
    assert_eq!(e.exit(), Exit::Failed);
}

#[test]
fn a_build_is_done_when_the_newest_image_tag_freezes_the_release() {
    let d = tempfile::tempdir().unwrap();
    let apps = clone_with_remote(
        d.path(),
        "swh-apps",
        &[
            ("apps/swh-loader-git/requirements.txt", "swh.loader.git\n"),
            (
                "apps/swh-loader-git/requirements-frozen.txt",
                "swh-loader-git==1.1.0\n",
            ),
        ],
    );
    let mut o = options(d.path());
    o.elastic = true;
    o.registry = Some("http://127.0.0.1:1/swh/infra/swh-apps".into());
    let mut ship = Ship::new(o, site(d.path(), ""));
    let step = Step {
        title: "app build: x".into(),
        details: Vec::new(),
        action: Action::Build {
            app: "swh-loader-git".into(),
        },
    };
    // No image tag at all.
    assert_eq!(step.is_done(&mut ship).unwrap(), None);

    // An image tag of the previous release: not done.
    git(&apps, &["tag", "swh-loader-git-20261101.1"]);
    git(&apps, &["push", "-q", "origin", "--tags"]);
    assert_eq!(step.is_done(&mut ship).unwrap(), None);
    assert!(ship.images.is_empty());

    // A newer image tag (only on the remote) freezing the release: done,
    // and its version is the app's image version.
    std::fs::write(
        apps.join("apps/swh-loader-git/requirements-frozen.txt"),
        "swh-loader-git==1.2.0\n",
    )
    .unwrap();
    git(&apps, &["commit", "-q", "-am", "freeze"]);
    git(
        &apps,
        &[
            "push",
            "-q",
            "origin",
            "HEAD:refs/tags/swh-loader-git-20261202.1",
        ],
    );
    git(&apps, &["reset", "-q", "--hard", "HEAD~1"]);
    assert_eq!(
        step.is_done(&mut ship).unwrap(),
        Some(Evidence(
            "tag swh-loader-git-20261202.1 on origin has apps/swh-loader-git/requirements-frozen.txt at swh.loader.git 1.2.0".into()
        ))
    );
    assert_eq!(
        ship.images.get("swh-loader-git").map(String::as_str),
        Some("20261202.1")
    );
}

#[test]
fn errors_say_their_exit_and_keep_it_when_noted() {
    assert_eq!(ShipError::Timeout("x".into()).exit(), Exit::Timeout);
    assert_eq!(ShipError::Failed("x".into()).exit(), Exit::Failed);
    let e = ShipError::Upgrade {
        exit: Exit::Locked,
        message: "the upgrade of staging (w1) did not succeed".into(),
    }
    .with_note("runs 4 (nominal, refused)");
    assert_eq!(e.exit(), Exit::Locked);
    assert_eq!(
        e.to_string(),
        "the upgrade of staging (w1) did not succeed (runs 4 (nominal, refused))"
    );
    assert_eq!(
        ShipError::Timeout("not live".into())
            .with_note("runs 5")
            .exit(),
        Exit::Timeout
    );
}
