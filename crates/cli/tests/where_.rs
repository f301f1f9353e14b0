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
/// `swh-deploy ARGS` with the site file `site` and a journal in `dir`, the
/// checkouts only from the site file, stdin from /dev/null.
fn command(args: &[&str], site: &Path, dir: &Path) -> Command {
    let mut c = swh_deploy(args);
    c.env("SWH_DEPLOY_SITE", site)
        .env("SWH_DEPLOY_JOURNAL", dir.join("journal.sqlite"))
        .env_remove("SWH_DEPLOY_APPS_DIR")
        .env_remove("SWH_DEPLOY_CHARTS_DIR")
        .stdin(Stdio::null());
    c
}

/// Asserts that `out`'s stdout contains `stdout` and its stderr `stderr`.
fn assert_says(out: &Output, stdout: &str, stderr: &str) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(o.contains(stdout), "{o}");
    assert!(e.contains(stderr), "{e}");
}

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
    let run = |args: &[&str]| -> Output { logged(args, &mut command(args, &site, dir.path())) };

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

/// The running images, read from the Kubernetes/Argo CD stand-in (checked
/// with real kubectl, testbed/tests/kube_standin.rs) whose Argo CD
/// applications track the swh-charts remote: in sync (no warning, exit 0),
/// drifted (Argo CD's sync off while the chart moves on: a warning, exit 0
/// without VERSION, exit 1 when the running image is behind VERSION),
/// `--no-cluster`, and the cluster unreachable (a line and a warning; the
/// chart's answer and the exit status unchanged). No hosts: needs no root.
#[test]
fn where_shows_the_running_images_and_warns_when_they_differ_from_the_chart() {
    use swh_deploy_testbed::kube::{push_chart_version, Faults, KubeStandin, StandinOptions};
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("swh-apps");
    let charts = dir.path().join("swh-charts");
    let remote = dir.path().join("charts.git");
    apps_checkout(&apps);
    // A newer image, 20260103.1, with swh.storage 1.2.
    std::fs::write(
        apps.join("apps/swh-storage/requirements-frozen.txt"),
        "attrs==23.1.0\nswh-storage==1.2\n",
    )
    .unwrap();
    git(&apps, &["commit", "-q", "-am", "swh-storage 1.2"]);
    git(&apps, &["tag", "swh-storage-20260103.1"]);
    charts_checkout(&remote, &charts);
    let mut standin = KubeStandin::start(StandinOptions::swh(&remote)).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    standin
        .write_kubeconfig(
            &kubeconfig,
            &["archive-staging-rke2", "archive-production-rke2"],
        )
        .unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!(
            "[site]\nname = \"where-cluster\"\n\n{}\n[apps]\ncheckout = \"{}\"\n\n[charts]\ncheckout = \"{}\"\n",
            common::SWH_ENVIRONMENTS,
            apps.display(),
            charts.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| -> Output {
        logged(
            args,
            command(args, &site, dir.path())
                .env("KUBECONFIG", &kubeconfig)
                .env("HOME", dir.path()),
        )
    };

    // In sync: each branch's image runs; no warning.
    let out = run(&["where", "swh.storage", "--elastic"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  elastic staging:\n    swh-storage              image 20260102.1     swh.storage 1.1\n      running storage          image 20260102.1     swh.storage 1.1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  elastic production:\n    swh-storage              image 20260101.1     swh.storage 1.0\n      running storage          image 20260101.1     swh.storage 1.0\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("DIFFERS"), "{stdout}");
    assert!(
        !text(&out.stderr).contains("the chart says"),
        "{}",
        text(&out.stderr)
    );
    // swh-next-version has no environment with a kube context: not asked.
    let out = run(&["where", "swh.storage", "--elastic", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["schema"], 1);
    let env = |j: &serde_json::Value, name: &str| {
        j["elastic"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["environment"] == name)
            .unwrap_or_else(|| panic!("no {name} in {j}"))
            .clone()
    };
    assert_eq!(
        env(&j, "swh-next-version")["cluster"],
        serde_json::Value::Null
    );
    assert_eq!(
        env(&j, "swh-next-version")["apps"][0]["running"],
        serde_json::Value::Null
    );
    let staging = env(&j, "staging");
    assert_eq!(staging["cluster"]["context"], "archive-staging-rke2");
    assert_eq!(staging["cluster"]["namespace"], "swh");
    assert_eq!(staging["cluster"]["error"], serde_json::Value::Null);
    assert_eq!(staging["apps"][0]["drift"], false);
    assert_eq!(staging["apps"][0]["running"][0]["deployment"], "storage");
    assert_eq!(
        staging["apps"][0]["running"][0]["image"],
        "swh/storage:20260102.1"
    );

    // Drift: Argo CD's sync off for staging, the chart moves to 20260103.1.
    standin.set_faults(Faults {
        unsynced_applications: vec!["archive-staging-rke2-swh".into()],
        ..Faults::default()
    });
    push_chart_version(
        remote.to_str().unwrap(),
        &dir.path().join("scratch"),
        "staging",
        "swh_storage",
        "20260103.1",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = run(&["where", "swh.storage", "--elastic", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(0), "drift alone is a warning");
    assert_says(
        &out,
        "    swh-storage              image 20260103.1     swh.storage 1.2\n      running storage          image 20260102.1     swh.storage 1.1 DIFFERS from the chart\n",
        "swh-deploy where: elastic staging: deployment storage runs swh-storage 20260102.1, the chart says 20260103.1",
    );
    // With VERSION 1.2: the chart has it, the running image does not.
    let out = run(&[
        "where",
        "swh.storage",
        "1.2",
        "--elastic",
        "--env",
        "staging",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let staging = env(&j, "staging");
    assert_eq!(staging["apps"][0]["module_version"], "1.2");
    assert_eq!(staging["apps"][0]["drift"], true);
    assert_eq!(staging["apps"][0]["behind"], true);
    assert_eq!(staging["apps"][0]["running"][0]["module_version"], "1.1");
    assert_eq!(j["behind"], true);
    // --no-cluster: the chart only, exit 0.
    let out = run(&[
        "where",
        "swh.storage",
        "1.2",
        "--elastic",
        "--env",
        "staging",
        "--no-cluster",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !text(&out.stdout).contains("running"),
        "{}",
        text(&out.stdout)
    );
    // Sync on again: it catches up, no more warning.
    standin.set_faults(Faults::default());
    let t0 = std::time::Instant::now();
    loop {
        let out = run(&[
            "where",
            "swh.storage",
            "1.2",
            "--elastic",
            "--env",
            "staging",
        ]);
        if out.status.code() == Some(0) {
            assert!(
                !text(&out.stdout).contains("DIFFERS"),
                "{}",
                text(&out.stdout)
            );
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 20,
            "never caught up: {}",
            text(&out.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The cluster unreachable: a clear line and a warning, the chart's
    // answer still there, the exit status unchanged.
    standin.stop();
    let out = run(&["where", "swh.storage", "--elastic", "--env", "production"]);
    assert_eq!(out.status.code(), Some(0));
    assert_says(
        &out,
        "    swh-storage              image 20260101.1     swh.storage 1.0\n    cluster archive-production-rke2 (namespace swh-cassandra): unreachable, running images unknown: ",
        "cannot read the running images (environment production, kube context archive-production-rke2",
    );
    let out = run(&[
        "where",
        "swh.storage",
        "--elastic",
        "--env",
        "production",
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(env(&j, "production")["cluster"]["error"].is_string(), "{j}");
}
