//! The elastic path end to end through the `swh-deploy` binary, on the test
//! bed's real components: a module release (swh.loader.git 1.2.0 appearing
//! on the package index) carried from `app dependents` and `app freeze`
//! through `app build --push` (buildah, docker-registry on loopback, git
//! remotes) to `chart bump` and `chart promote staging` / `production`, each
//! run journaled. The image is real: FROM the swh-base app's image (itself
//! FROM the test bed's Debian Python image), the frozen requirements
//! installed from the package index during the build.

mod common;

use common::{clone_as_sysadmin, git, json_doc, sh, uv};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use swh_deploy_journal::{Journal, RunStatus};
use swh_deploy_testbed::components::{AppBaseImages, GitRemotes, PackageIndex, Registry};

struct Env {
    root: PathBuf,
    /// The private buildah configuration's environment.
    containers: Vec<(&'static str, PathBuf)>,
}

impl Env {
    /// `swh-deploy ARGS` with private buildah storage, uv cache and journal.
    fn swh_deploy(&self, args: &[&str]) -> Command {
        let r = &self.root;
        let mut c = Command::new(common::bin());
        c.args(args)
            .env("SWH_DEPLOY_JOURNAL", r.join("journal.sqlite"))
            .env("SWH_DEPLOY_SITE", r.join("site.toml"))
            .env("SWH_DEPLOY_UV", uv())
            .envs(self.containers.iter().cloned())
            .env("UV_CACHE_DIR", r.join("uv-cache"));
        c
    }
}

#[test]
fn module_release_from_freeze_to_production() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let reg = Registry::start(&root.join("registry")).unwrap();
    let remotes = GitRemotes::create(&root.join("remotes")).unwrap();
    let index = PackageIndex::start(&root.join("index")).unwrap();
    let containers = swh_deploy_testbed::components::write_containers_config(&root).unwrap();
    for (url, dir) in [
        (&remotes.apps.url, "swh-apps"),
        (&remotes.charts.url, "swh-charts"),
    ] {
        clone_as_sysadmin(url, &root.join(dir));
    }
    let images = AppBaseImages::push(
        &reg,
        &index.url(),
        &root.join("swh-apps"),
        &uv(),
        &containers,
        &root.join("scratch"),
    )
    .unwrap();
    eprintln!("base images: {}", images.summary());
    // The checkouts and the registry come from the site file.
    std::fs::write(
        root.join("site.toml"),
        format!(
            "[site]\nname = \"elastic-test\"\n\n[apps]\ncheckout = \"{}\"\n\n[charts]\ncheckout = \"{}\"\n\n\
             [registry]\nhost = \"{}\"\nprefix = \"swh/infra/swh-apps\"\ninsecure = true\n",
            root.join("swh-apps").display(),
            root.join("swh-charts").display(),
            reg.host()
        ),
    )
    .unwrap();
    let env = Env {
        root: root.clone(),
        containers,
    };

    // The module release reaches the index.
    index
        .publish(
            "swh.loader.git",
            "1.2.0",
            &["swh.core>=1.0.0", "swh.model>=1.0.0", "swh.storage>=1.0.0"],
        )
        .unwrap();

    let out = sh(&mut env.swh_deploy(&["app", "list"]));
    assert!(out.contains("swh-loader-git\tloader_git"), "{out}");

    let out = sh(&mut env.swh_deploy(&[
        "app",
        "dependents",
        "--module",
        "swh.loader.git",
        "--version",
        "v1.2.0",
    ]));
    assert_eq!(
        out.lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        vec!["swh-loader-git"]
    );

    let out = sh(&mut env.swh_deploy(&[
        "app",
        "freeze",
        "swh-loader-git",
        "--index-url",
        &index.url(),
    ]));
    assert!(out.contains("swh-loader-git: 1.0.0 -> 1.2.0"), "{out}");

    let t = Instant::now();
    let out = sh(&mut env.swh_deploy(&[
        "app",
        "build",
        "swh-loader-git",
        "--push",
        "--builder",
        "buildah",
        "--index-url",
        &index.url(),
    ]));
    eprintln!(
        "app build swh-loader-git --push: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let built = out
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .unwrap_or_else(|| panic!("{out}"));
    let version = built
        .split(',')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert!(
        built.starts_with(&format!("{}/swh/infra/swh-apps/loader_git:", reg.host())),
        "{built}"
    );
    let tag = format!("swh-loader-git-{version}");
    assert_eq!(
        git(
            &remotes.apps.path,
            &["tag", "-l", "--format=%(contents:subject)", &tag]
        ),
        format!("{tag}: Bump new release")
    );
    assert_eq!(
        git(&remotes.apps.path, &["log", "-1", "--format=%s", "master"]),
        format!("{tag}: Build image")
    );
    // The pushed image runs the new release, installed from the index into
    // swh-base's venv, as the swh user, with the app's entrypoint.
    let pushed = format!("{}/swh/infra/swh-apps/loader_git:{version}", reg.host());
    let (pins, user, entrypoint) = image_facts(&env.containers, &pushed);
    assert!(pins.contains("swh-loader-git==1.2.0"), "{pins}");
    let frozen =
        std::fs::read_to_string(root.join("swh-apps/apps/swh-loader-git/requirements-frozen.txt"))
            .unwrap();
    for pin in frozen.lines().filter(|l| l.contains("==")) {
        assert!(pins.lines().any(|l| l == pin.trim()), "{pin} not in {pins}");
    }
    assert_eq!(user, "swh");
    assert_eq!(entrypoint, "[/opt/swh/entrypoint.sh]");

    let out = sh(&mut env.swh_deploy(&[
        "chart",
        "bump",
        &format!("swh-loader-git={version}"),
        "--module",
        "swh.loader.git",
        "--module-version",
        "v1.2.0",
    ]));
    assert!(
        out.contains(&format!("swh_loader_git: 20250117.1 -> {version}")),
        "{out}"
    );
    assert_eq!(
        git(
            &remotes.charts.path,
            &["log", "-1", "--format=%s", "swh-next-version"]
        ),
        "v424: Release swh.loader.git v1.2.0"
    );

    let out = sh(&mut env.swh_deploy(&["chart", "show", "--diff"]));
    assert!(out.contains("* swh_loader_git"), "{out}");
    // --json: the environments in order, each app's version in each.
    let v = json_doc(&sh(
        &mut env.swh_deploy(&["chart", "show", "--diff", "--json"])
    ));
    assert_eq!(
        v["environments"],
        serde_json::json!(["swh-next-version", "staging", "production"])
    );
    let app = &v["apps"][0];
    assert_eq!(app["app"], "swh_loader_git", "{v}");
    assert_eq!(app["differs"], true);
    assert_eq!(app["versions"]["swh-next-version"], version.as_str());
    assert_eq!(app["versions"]["production"], "20250117.1");

    for target in ["staging", "production"] {
        let out = sh(&mut env.swh_deploy(&["chart", "promote", target]));
        assert!(
            out.contains(&format!("swh_loader_git: 20250117.1 -> {version}")),
            "{out}"
        );
    }
    let values = git(
        &remotes.charts.path,
        &["show", "production:values-swh-application-versions.yaml"],
    );
    assert!(values.contains(&format!("swh_loader_git_image_version: '{version}'")));
    let out = sh(&mut env.swh_deploy(&["chart", "promote", "production"]));
    assert!(out.contains("nothing to promote"), "{out}");
    let out = sh(&mut env.swh_deploy(&["chart", "show"]));
    assert!(out.contains("0 app(s) differ"), "{out}");

    // An explicit --charts-dir wins over the site file.
    let out = env
        .swh_deploy(&[
            "chart",
            "show",
            "--charts-dir",
            root.join("nowhere").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));

    // A second bump is refused when the app is unknown, naming it.
    let out = env
        .swh_deploy(&["chart", "bump", "swh-nope=20250101.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("swh-nope"));

    // Every changing step is in the journal.
    let journal = Journal::open(&root.join("journal.sqlite")).unwrap();
    let runs = journal.runs(50).unwrap();
    let mut modes: Vec<(String, RunStatus)> =
        runs.iter().map(|r| (r.mode.clone(), r.status)).collect();
    modes.reverse();
    assert_eq!(
        modes,
        vec![
            ("app freeze".to_string(), RunStatus::Succeeded),
            ("app build".to_string(), RunStatus::Succeeded),
            ("chart bump".to_string(), RunStatus::Succeeded),
            ("chart promote".to_string(), RunStatus::Succeeded),
            ("chart promote".to_string(), RunStatus::Succeeded),
            ("chart bump".to_string(), RunStatus::Failed),
        ]
    );
    let build = runs.iter().find(|r| r.mode == "app build").unwrap();
    let details = journal.run_details(build.id).unwrap();
    let names: Vec<&str> = details.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(names.iter().any(|n| n.starts_with("build ")), "{names:?}");
    assert!(
        names.iter().any(|n| *n == format!("tag {tag}")),
        "{names:?}"
    );
}

/// `uv pip freeze` (names normalized), `id -un` and the entrypoint of
/// `image`, pulled from the registry into buildah.
fn image_facts(containers: &[(&'static str, PathBuf)], image: &str) -> (String, String, String) {
    let buildah = || {
        let mut c = Command::new("buildah");
        c.envs(containers.iter().cloned());
        c
    };
    let c = sh(buildah().args([
        "from",
        "-q",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]))
    .trim()
    .to_string();
    let run = |args: &[&str]| sh(buildah().args(["run", &c, "--"]).args(args));
    let pins = run(&["uv", "pip", "freeze"])
        .lines()
        .map(|l| match l.split_once("==") {
            Some((name, v)) => format!("{}=={v}", name.replace(['_', '.'], "-").to_lowercase()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let user = run(&["id", "-un"]).trim().to_string();
    let entrypoint =
        sh(buildah().args(["inspect", "--format", "{{.OCIv1.Config.Entrypoint}}", &c]))
            .trim()
            .to_string();
    let _ = buildah().args(["rm", &c]).output();
    (pins, user, entrypoint)
}

/// A clone of the test bed's swh-charts remote (the real values file and
/// Chart.yaml, appVersion 423) named by a site file, and a private journal.
struct Charts {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: PathBuf,
    work: PathBuf,
}

impl Charts {
    fn new() -> Charts {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let remotes = GitRemotes::create(&root.join("remotes")).unwrap();
        let work = root.join("swh-charts");
        clone_as_sysadmin(&remotes.charts.url, &work);
        std::fs::write(
            root.join("site.toml"),
            format!(
                "[site]\nname = \"charts-test\"\n\n[charts]\ncheckout = \"{}\"\n",
                work.display()
            ),
        )
        .unwrap();
        Charts {
            _tmp: tmp,
            root,
            remote: remotes.charts.path.clone(),
            work,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::bin());
        c.args(args)
            .env("SWH_DEPLOY_JOURNAL", self.root.join("journal.sqlite"))
            .env("SWH_DEPLOY_SITE", self.root.join("site.toml"));
        c
    }

    fn run(&self, args: &[&str]) -> String {
        sh(&mut self.cmd(args))
    }

    fn head(&self, branch: &str) -> String {
        git(&self.remote, &["rev-parse", branch])
    }

    fn journal_steps(&self) -> Vec<Vec<String>> {
        let journal = Journal::open(&self.root.join("journal.sqlite")).unwrap();
        let mut runs = journal.runs(50).unwrap();
        runs.reverse();
        runs.iter()
            .filter(|r| r.mode == "chart bump")
            .map(|r| {
                journal
                    .run_details(r.id)
                    .unwrap()
                    .steps
                    .iter()
                    .map(|s| s.name.clone())
                    .collect()
            })
            .collect()
    }
}

#[test]
fn chart_bump_release_only_changes_app_version_alone_once() {
    let c = Charts::new();
    let before = c.head("swh-next-version");
    let args = [
        "chart",
        "bump",
        "--release-only",
        "--module",
        "swh.export",
        "--module-version",
        "v1.8.0",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = c.run(&dry);
    assert!(
        out.contains("no image version change (release only)"),
        "{out}"
    );
    assert!(out.contains("appVersion: 423 -> 424"), "{out}");
    assert!(
        out.contains("dry run: would commit \"v424: Release swh.export v1.8.0\" on swh-next-version and push it"),
        "{out}"
    );
    assert_eq!(c.head("swh-next-version"), before);

    let out = c.run(&args);
    assert!(out.contains("committed "), "{out}");
    let head = c.head("swh-next-version");
    assert_eq!(
        git(&c.remote, &["log", "-1", "--format=%B", &head]),
        "v424: Release swh.export v1.8.0"
    );
    assert_eq!(
        git(&c.remote, &["diff", "--name-only", &before, &head]),
        "swh/Chart.yaml"
    );
    assert_eq!(
        git(&c.remote, &["diff", "--unified=0", &before, &head])
            .lines()
            .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
            .collect::<Vec<_>>(),
        vec!["-appVersion: 423", "+appVersion: 424"]
    );
    // Run again (e.g. a retried pipeline): already there, nothing done.
    let out = c.run(&args);
    assert!(
        out.contains(&format!(
            "nothing to do: swh-next-version already has the release commit {head} v424: Release swh.export v1.8.0"
        )),
        "{out}"
    );
    assert_eq!(c.head("swh-next-version"), head);
    // --again: another appVersion bump for the same release (SWH's history
    // has such repeats), in a clone that is then dropped.
    let other = c.root.join("other");
    sh(Command::new("git")
        .args(["clone", "-q", c.remote.to_str().unwrap()])
        .arg(&other));
    git(&other, &["config", "user.name", "Sysadmin"]);
    git(
        &other,
        &["config", "user.email", "sysadmin@example.invalid"],
    );
    let mut again = args.to_vec();
    again.extend([
        "--again",
        "--no-push",
        "--charts-dir",
        other.to_str().unwrap(),
    ]);
    let out = c.run(&again);
    assert!(
        out.contains("committed ")
            && out.contains("v425: Release swh.export v1.8.0")
            && out.contains("(not pushed)"),
        "{out}"
    );
    assert_eq!(c.head("swh-next-version"), head);
    // --again alone is a usage error.
    let o = c
        .cmd(&["chart", "bump", "--again", "swh-web=20250301.1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // Promotion carries it like any release.
    let out = c.run(&["chart", "promote", "staging", "--no-gate"]);
    assert!(out.contains("no image version changes"), "{out}");
    assert_eq!(c.head("staging"), head);

    // --release-only with an app, or without --module: usage errors (2),
    // nothing done.
    for bad in [
        vec![
            "chart",
            "bump",
            "--release-only",
            "swh-web=20250301.1",
            "--module",
            "swh.web",
            "--module-version",
            "v1.0.0",
        ],
        vec!["chart", "bump", "--release-only"],
        // No app and no --release-only: not taken as a release-only bump.
        vec![
            "chart",
            "bump",
            "--module",
            "swh.export",
            "--module-version",
            "v1.8.1",
        ],
        vec![
            "chart",
            "bump",
            "--release-only",
            "--module",
            "swh.web",
            "--module-version",
            "v1.0.0",
            "--add",
            "r/web",
        ],
    ] {
        let o = c.cmd(&bad).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
    }
    assert_eq!(c.head("swh-next-version"), head);
    // The journal has the release-only bump (the run that found it done has
    // no step).
    let steps = c.journal_steps();
    assert_eq!(
        steps,
        vec![
            vec![format!(
                "bump appVersion 423 -> 424 on swh-next-version, commit \"v424: Release swh.export v1.8.0\", push"
            )],
            vec![],
            vec![format!(
                "bump appVersion 424 -> 425 on swh-next-version, commit \"v425: Release swh.export v1.8.0\""
            )],
        ]
    );
}

#[test]
fn chart_bump_commits_the_subject_only_and_journals_the_changes() {
    let c = Charts::new();
    let out = c.run(&[
        "chart",
        "bump",
        "swh-web=20250301.1",
        "swh-lister=20250301.2",
        "--module",
        "swh.web",
        "--module-version",
        "v0.9.7",
    ]);
    assert!(out.contains("swh_web: 20250123.1 -> 20250301.1"), "{out}");
    assert!(
        out.contains("swh_lister: 20250113.1 -> 20250301.2"),
        "{out}"
    );
    assert_eq!(
        git(&c.remote, &["log", "-1", "--format=%B", "swh-next-version"]),
        "v424: Release swh.web v0.9.7"
    );
    // --body: the list in the commit message too.
    c.run(&[
        "chart",
        "bump",
        "swh-web=20250301.3",
        "--module",
        "swh.web",
        "--module-version",
        "v0.9.8",
        "--body",
    ]);
    assert_eq!(
        git(&c.remote, &["log", "-1", "--format=%B", "swh-next-version"]),
        "v425: Release swh.web v0.9.8\n\n- swh_web: 20250301.1 -> 20250301.3"
    );
    let steps = c.journal_steps();
    assert_eq!(
        steps[0],
        vec!["bump swh_web 20250123.1 -> 20250301.1, swh_lister 20250113.1 -> 20250301.2, appVersion 423 -> 424 on swh-next-version, commit \"v424: Release swh.web v0.9.7\", push".to_string()]
    );
    assert!(
        steps[1][0].starts_with("bump swh_web 20250301.1 -> 20250301.3, appVersion 424 -> 425"),
        "{steps:?}"
    );
}

#[test]
fn chart_bump_add_keeps_the_real_file_sorted_and_a_byte_order_mark() {
    let c = Charts::new();
    let values = c.work.join("values-swh-application-versions.yaml");
    let real = std::fs::read_to_string(&values).unwrap();
    let out = c.run(&[
        "chart",
        "bump",
        "swh-coarnotify=20250301.1",
        "--add",
        "container-registry.softwareheritage.org/swh/infra/swh-apps/coarnotify",
        "--module",
        "swh.coarnotify",
        "--module-version",
        "v0.1.0",
    ]);
    assert!(out.contains("swh_coarnotify: (new) -> 20250301.1"), "{out}");
    assert!(
        out.contains("note: added `swh_coarnotify_image` at line 7, its sorted position"),
        "{out}"
    );
    let after = git(
        &c.remote,
        &[
            "show",
            "swh-next-version:values-swh-application-versions.yaml",
        ],
    ) + "\n";
    let at = real.find("swh_counters_image:").unwrap();
    assert_eq!(
        after,
        format!(
            "{}swh_coarnotify_image: container-registry.softwareheritage.org/swh/infra/swh-apps/coarnotify\n\
             swh_coarnotify_image_version: '20250301.1'\n{}",
            &real[..at],
            &real[at..]
        )
    );

    // A byte-order mark at the start (some editors write one): kept, and
    // the key right after it is edited.
    let moved = after.replacen(
        "cassandra_checks_image: container-registry.softwareheritage.org/swh/infra/swh-apps/cassandra_checks\n\
         cassandra_checks_image_version: '20250113.1'\n",
        "",
        1,
    );
    let with_bom = format!("\u{feff}cassandra_checks_image_version: '20250113.1'\n{moved}");
    std::fs::write(&values, &with_bom).unwrap();
    git(&c.work, &["commit", "-q", "-am", "edited with a BOM"]);
    git(&c.work, &["push", "-q", "origin", "swh-next-version"]);
    let out = c.run(&["chart", "bump", "cassandra-checks=20250302.1", "--no-push"]);
    assert!(
        out.contains("cassandra_checks: 20250113.1 -> 20250302.1"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&values).unwrap(),
        with_bom.replacen("'20250113.1'", "'20250302.1'", 1)
    );
}
