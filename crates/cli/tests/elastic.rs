//! The elastic path end to end through the `swh-deploy` binary, on the test
//! bed's real components: a module release (swh.loader.git 1.2.0 appearing
//! on the package index) carried from `app dependents` and `app freeze`
//! through `app build --push` (buildah, docker-registry on loopback, git
//! remotes) to `chart bump` and `chart promote staging` / `production`, each
//! run journaled.

use std::path::{Path, PathBuf};
use std::process::Command;
use swh_deploy_journal::{Journal, RunStatus};
use swh_deploy_testbed::components::{GitRemotes, PackageIndex, Registry};

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    sh(Command::new("git").arg("-C").arg(dir).args(args))
        .trim()
        .to_string()
}

fn uv() -> PathBuf {
    let venv = std::env::var_os("SWH_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let p = venv.join("bin/uv");
    if p.exists() {
        p
    } else {
        PathBuf::from("uv")
    }
}

struct Env {
    root: PathBuf,
    /// The private buildah configuration's environment.
    containers: Vec<(&'static str, PathBuf)>,
}

impl Env {
    /// `swh-deploy ARGS` with private buildah storage, uv cache and journal.
    fn swh_deploy(&self, args: &[&str]) -> Command {
        let r = &self.root;
        let mut c = Command::new(env!("CARGO_BIN_EXE_swh-deploy"));
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
        sh(Command::new("git")
            .args(["clone", "-q", url])
            .arg(root.join(dir)));
        git(&root.join(dir), &["config", "user.name", "Sysadmin"]);
        git(
            &root.join(dir),
            &["config", "user.email", "sysadmin@example.invalid"],
        );
    }
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
