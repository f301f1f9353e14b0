//! `swh-deploy where MODULE [VERSION]` through the real binary: the static
//! path on a test bed of real systemd hosts (real apt repository, real
//! dpkg), the elastic path on real git repositories (a swh-apps checkout
//! with image tags, a swh-charts bare remote with its three branches).
//!
//! Needs root (network namespaces, systemd-nspawn): skipped otherwise,
//! a failure under CI (`common::skip`).

mod common;

use common::{install, logged, need_root, site_head, swh_deploy, systemd_hosts, text, V10, V11};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// swh-apps: swh-storage frozen at 1.0 (tag 20260101.1) then 1.1 (tag
/// 20260102.1); swh-web does not require swh.storage.
fn apps_checkout(dir: &Path) {
    std::fs::create_dir_all(dir.join("apps/swh-storage")).unwrap();
    std::fs::create_dir_all(dir.join("apps/swh-web")).unwrap();
    git(dir, &["init", "-q", "-b", "master"]);
    std::fs::write(
        dir.join("apps/swh-storage/requirements.txt"),
        "swh.storage\n",
    )
    .unwrap();
    std::fs::write(dir.join("apps/swh-web/requirements.txt"), "swh.web\n").unwrap();
    std::fs::write(
        dir.join("apps/swh-web/requirements-frozen.txt"),
        "swh-web==0.9\n",
    )
    .unwrap();
    for (v, tag) in [("1.0", "20260101.1"), ("1.1", "20260102.1")] {
        std::fs::write(
            dir.join("apps/swh-storage/requirements-frozen.txt"),
            format!("attrs==23.1.0\nswh-storage=={v}\n"),
        )
        .unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", &format!("swh-storage {v}")]);
        git(dir, &["tag", &format!("swh-storage-{tag}")]);
    }
}

/// swh-charts: a bare remote whose next-version and staging deploy
/// swh-storage's 20260102.1 image and production its 20260101.1 image; and
/// a clone of it.
fn charts_checkout(remote: &Path, checkout: &Path) {
    let work = remote.with_extension("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "production"]);
    let values = |v: &str| {
        format!("swh_storage_image: swh/storage\nswh_storage_image_version: '{v}'\nswh_web_image_version: '20250101.1'\n")
    };
    let file = work.join("values-swh-application-versions.yaml");
    std::fs::write(&file, values("20260101.1")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "production"]);
    git(&work, &["checkout", "-q", "-b", "staging"]);
    std::fs::write(&file, values("20260102.1")).unwrap();
    git(&work, &["commit", "-q", "-am", "bump"]);
    git(&work, &["branch", "swh-next-version"]);
    let out = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&work)
        .arg(remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(remote)
        .arg(checkout)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn where_shows_both_paths_and_exits_1_when_a_place_is_behind() {
    if !need_root() {
        return;
    }
    let tb = systemd_hosts(3, false);
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("swh-apps");
    let charts = dir.path().join("swh-charts");
    apps_checkout(&apps);
    charts_checkout(&dir.path().join("charts.git"), &charts);
    // host1 runs 1.1, host2 1.0, host3 (no service needs it) nothing.
    install(
        &tb,
        &[("host1", V11), ("host2", V10)],
        &["python3-swh.storage"],
    );
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!(
            r#"{head}
[groups.other]
environment = "staging"
nodes = "host3"

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc"]

[apps]
checkout = "{apps}"

[charts]
checkout = "{charts}"
"#,
            head = site_head(Some("where-test"), &tb, "host[1-2]", None),
            apps = apps.display(),
            charts = charts.display(),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| -> Output {
        logged(
            args,
            swh_deploy(args)
                .env("SWH_DEPLOY_SITE", &site)
                .env("SWH_DEPLOY_JOURNAL", dir.path().join("journal.sqlite"))
                .env_remove("SWH_DEPLOY_APPS_DIR")
                .env_remove("SWH_DEPLOY_CHARTS_DIR")
                .stdin(Stdio::null()),
        )
    };

    // No VERSION: where it runs; exit 0.
    let out = run(&["where", "swh.storage"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "    {V11:<24} host1 (1)\n    {V10:<24} host2 (1)\n"
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains("host3"),
        "host3 has no swh.storage: {stdout}"
    );
    assert!(
        stdout.contains("  elastic production:\n    swh-storage              image 20260101.1     swh.storage 1.0\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  elastic staging:\n    swh-storage              image 20260102.1     swh.storage 1.1\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("swh-web"), "{stdout}");

    // VERSION 1.1: host2 and production are behind; exit 1.
    let out = run(&["where", "swh-storage", "v1.1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["schema"], 1);
    assert_eq!(j["package"], "python3-swh.storage");
    assert_eq!(j["behind"], true);
    let versions = &j["static"][0]["versions"];
    assert_eq!(j["static"][0]["environment"], "staging");
    assert_eq!(versions[0]["version"], V11);
    assert_eq!(versions[0]["behind"], false);
    assert_eq!(versions[1]["hosts"], "host2");
    assert_eq!(versions[1]["behind"], true);
    let elastic = j["elastic"].as_array().unwrap();
    let env = |name: &str| {
        elastic
            .iter()
            .find(|e| e["environment"] == name)
            .unwrap_or_else(|| panic!("no {name} in {elastic:?}"))
    };
    assert_eq!(env("production")["apps"][0]["module_version"], "1.0");
    assert_eq!(env("production")["apps"][0]["behind"], true);
    assert_eq!(
        env("swh-next-version")["apps"][0]["image_version"],
        "20260102.1"
    );
    assert_eq!(env("swh-next-version")["apps"][0]["behind"], false);

    // VERSION 1.0: nowhere behind; exit 0.
    let out = run(&["where", "swh.storage", "1.0"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("1.0 or newer everywhere"),
        "{}",
        text(&out.stdout)
    );

    // Upgrade host2: the static path is no longer behind 1.1 (--static).
    let out = tb
        .ssh_command(
            "host2",
            &format!("DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-swh.storage={V11} >/dev/null 2>&1"),
        )
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let out = run(&["where", "swh.storage", "1.1", "--static"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains(&format!("    {V11:<24} host[1-2] (2)\n")),
        "{}",
        text(&out.stdout)
    );

    // Bad input: a clear error, exit 1.
    let out = run(&["where", "swh.storage", "not-a-version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("VERSION"),
        "{}",
        text(&out.stderr)
    );
}
