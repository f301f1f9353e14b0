//! `chart promote` and `chart show --check` on the test bed's real
//! components: the swh-charts bare remote (git), the loopback OCI registry
//! (docker-registry, images pushed with skopeo). A promotion is refused,
//! changing nothing, when the target environment would deploy an image:tag
//! the registry does not have: a global `<app>_image_version` or a
//! per-deployment `imageVersion` pin.

mod common;

use common::{clone_as_sysadmin, git, sh};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use swh_deploy_testbed::components::{write_oci_layout, GitRemotes, Registry};

/// A clone of the test bed's swh-charts remote whose image versions file
/// names images of a loopback registry, on all three environment branches.
struct Bed {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: PathBuf,
    work: PathBuf,
    registry: Registry,
}

const APPS: &str = "swh/infra/swh-apps";

impl Bed {
    fn new() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let remotes = GitRemotes::create(&root.join("remotes")).unwrap();
        let registry = Registry::start(&root.join("registry")).unwrap();
        let work = root.join("swh-charts");
        clone_as_sysadmin(&remotes.charts.url, &work);
        let host = registry.host();
        std::fs::write(
            work.join("values-swh-application-versions.yaml"),
            format!(
                "swh_graph_image: {host}/{APPS}/graph\n\
                 swh_graph_image_version: '20250123.1'\n\
                 swh_loader_git_image: {host}/{APPS}/loader_git\n\
                 swh_loader_git_image_version: '20250101.1'\n"
            ),
        )
        .unwrap();
        git(&work, &["checkout", "-q", "production"]);
        git(&work, &["add", "values-swh-application-versions.yaml"]);
        git(
            &work,
            &[
                "commit",
                "-q",
                "-m",
                "test bed: images on the loopback registry",
            ],
        );
        for b in ["production", "staging", "swh-next-version"] {
            git(
                &work,
                &["push", "-q", "origin", &format!("HEAD:refs/heads/{b}")],
            );
        }
        std::fs::write(
            root.join("site.toml"),
            format!(
                "[site]\nname = \"promote-test\"\n\n[charts]\ncheckout = \"{}\"\n\n\
                 [registry]\nhost = \"{host}\"\nprefix = \"{APPS}\"\ninsecure = true\n",
                work.display()
            ),
        )
        .unwrap();
        let bed = Bed {
            _tmp: tmp,
            root,
            remote: remotes.charts.path.clone(),
            work,
            registry,
        };
        // graph: the global version and values/default.yaml's pin.
        for (image, tag) in [
            ("graph", "20250123.1"),
            ("graph", "20241015.1"),
            ("loader_git", "20250101.1"),
        ] {
            bed.push_image(image, tag);
        }
        bed
    }

    fn push_image(&self, image: &str, tag: &str) {
        let dir = self.root.join(format!("oci-{image}-{tag}"));
        write_oci_layout(&dir, tag, &format!("{image} {tag}\n")).unwrap();
        sh(Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", dir.display()))
            .arg(format!(
                "docker://{}/{APPS}/{image}:{tag}",
                self.registry.host()
            )));
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

    fn fails(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        out
    }

    fn head(&self, branch: &str) -> String {
        git(&self.remote, &["rev-parse", branch])
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn promote_refuses_a_global_image_version_missing_from_the_registry() {
    let bed = Bed::new();
    let host = bed.registry.host();
    bed.run(&["chart", "bump", "swh-loader-git=20250202.1"]);
    let staging = bed.head("staging");
    let next = bed.head("swh-next-version");
    assert_ne!(staging, next);

    let out = bed.fails(&["chart", "promote", "staging", "--no-gate"]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{host}/{APPS}/loader_git:20250202.1 (values-swh-application-versions.yaml: swh_loader_git_image_version)"
        )),
        "{err}"
    );
    assert!(err.contains("1 image(s) missing"), "{err}");
    assert_eq!(bed.head("staging"), staging, "staging must not move");
    // show --check names it too, for swh-next-version only.
    let out = bed.fails(&["chart", "show", "--check"]);
    assert!(
        stderr(&out).contains("image check failed for swh-next-version\n"),
        "{}",
        stderr(&out)
    );
    // ... and in --json, with the table's body (exit 1 too).
    let out = bed.fails(&["chart", "show", "--check", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["schema"], 1);
    assert!(j["apps"].as_array().is_some_and(|a| !a.is_empty()), "{j}");
    let check = j["check"].as_array().unwrap();
    assert_eq!(check.len(), 3, "{j}");
    assert_eq!(check[0]["environment"], "swh-next-version");
    assert_eq!(check[0]["ok"], false);
    assert_eq!(check[0]["registry"], host.as_str());
    assert_eq!(
        check[0]["missing"][0],
        format!("{host}/{APPS}/loader_git:20250202.1 (values-swh-application-versions.yaml: swh_loader_git_image_version)")
    );
    assert!(
        check[0]["error"]
            .as_str()
            .unwrap()
            .contains("1 image(s) missing"),
        "{j}"
    );
    assert_eq!(check[1]["environment"], "staging");
    assert_eq!(check[1]["ok"], true);
    assert_eq!(check[1]["checked"], 3);
    assert_eq!(check[1]["missing"], serde_json::json!([]));

    bed.push_image("loader_git", "20250202.1");
    let out = bed.run(&["chart", "promote", "staging", "--no-gate"]);
    assert!(
        out.contains("  swh_loader_git_image_version: 20250101.1 -> 20250202.1\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "images checked: 3 image:tag(s) of staging exist in {host}"
        )),
        "{out}"
    );
    assert_eq!(bed.head("staging"), next);
    let out = bed.run(&["chart", "show", "--check"]);
    assert!(out.contains("images checked: 3"), "{out}");
}

#[test]
fn promote_refuses_a_per_deployment_pin_missing_from_the_registry() {
    let bed = Bed::new();
    let host = bed.registry.host();
    // A pin in the staging environment's own values file overrides
    // values/default.yaml's graph.imageVersion.
    let file = bed.work.join("swh/values/staging/default.yaml");
    git(&bed.work, &["checkout", "-q", "swh-next-version"]);
    git(
        &bed.work,
        &["merge", "-q", "--ff-only", "origin/swh-next-version"],
    );
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("graph:\n  imageVersion: \"20250301.1\"\n");
    std::fs::write(&file, text).unwrap();
    git(&bed.work, &["commit", "-q", "-am", "staging: pin graph"]);
    git(
        &bed.work,
        &["push", "-q", "origin", "HEAD:refs/heads/swh-next-version"],
    );
    let staging = bed.head("staging");

    let out = bed.fails(&["chart", "promote", "staging", "--no-gate"]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{host}/{APPS}/graph:20250301.1 (swh/values/staging/default.yaml: graph.imageVersion)"
        )),
        "{err}"
    );
    assert_eq!(bed.head("staging"), staging, "staging must not move");
    // Production's files do not have the pin: values/default.yaml's
    // 20241015.1 exists.
    let out = bed.run(&["chart", "show", "--branch", "production", "--check"]);
    assert!(
        out.contains("images checked: 3 image:tag(s) of production"),
        "{out}"
    );

    bed.push_image("graph", "20250301.1");
    let out = bed.run(&["chart", "promote", "staging", "--no-gate"]);
    // The effective change of staging's application: the pin, merged over
    // values/default.yaml's.
    assert!(
        out.contains("values of staging's application (valueFiles merged as Helm does), 1 change(s):\n  graph.imageVersion: 20241015.1 -> 20250301.1\n"),
        "{out}"
    );
    assert_eq!(bed.head("staging"), bed.head("swh-next-version"));
}

/// Commits `file` (written with `text`) on `branch` from another clone and
/// pushes it: a hotfix made directly on an environment branch.
fn hotfix(bed: &Bed, branch: &str, file: &str, text: &str, subject: &str) {
    let other = bed
        .root
        .join(format!("other-{}", subject.replace(' ', "-")));
    sh(Command::new("git")
        .arg("clone")
        .arg("-q")
        .arg(&bed.remote)
        .arg(&other));
    git(&other, &["config", "user.name", "Hotfixer"]);
    git(&other, &["config", "user.email", "hotfix@example.invalid"]);
    git(&other, &["checkout", "-q", branch]);
    std::fs::write(other.join(file), text).unwrap();
    git(&other, &["add", file]);
    git(&other, &["commit", "-q", "-m", subject]);
    git(&other, &["push", "-q", "origin", branch]);
}

fn is_ancestor(dir: &Path, a: &str, b: &str) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["merge-base", "--is-ancestor", a, b])
        .status()
        .unwrap()
        .success()
}

#[test]
fn promote_staging_rebases_next_version_onto_a_staging_hotfix() {
    let bed = Bed::new();
    let gl = swh_deploy_testbed::gitlab::GitlabStandin::start(&bed.remote, 77).unwrap();
    bed.push_image("loader_git", "20250202.1");
    hotfix(&bed, "staging", "HOTFIX", "x\n", "hotfix on staging");
    let staging = bed.head("staging");
    bed.run(&["chart", "bump", "swh-loader-git=20250202.1"]);
    let next = bed.head("swh-next-version");
    assert!(!is_ancestor(&bed.remote, &staging, &next));

    // Dry run: says it would rebase, pushes nothing.
    let out = bed.run(&["chart", "promote", "staging", "--dry-run"]);
    assert!(
        out.contains("staging has 1 commit(s) that swh-next-version lacks; rebasing")
            && out.contains("hotfix on staging")
            && out.contains("(dry run: not pushed)"),
        "{out}"
    );
    assert_eq!(bed.head("staging"), staging);
    assert_eq!(bed.head("swh-next-version"), next);

    let out = bed.run(&["chart", "promote", "staging", "--no-gate"]);
    assert!(
        out.contains("swh_loader_git: 20250101.1 -> 20250202.1"),
        "{out}"
    );
    let new = bed.head("swh-next-version");
    assert_ne!(new, next);
    assert_eq!(
        bed.head("staging"),
        new,
        "staging promoted to the rebased commit"
    );
    assert_eq!(
        git(&bed.remote, &["rev-parse", &format!("{new}^")]),
        staging,
        "the release commit sits on the hotfix"
    );
    assert_eq!(
        git(&bed.remote, &["log", "-1", "--format=%s", &new]),
        git(&bed.remote, &["log", "-1", "--format=%s", &next])
    );
    // The merge request followed the rebase and is merged.
    let mr = api_mrs(&gl, "/1");
    assert_eq!(mr["state"], "merged", "{mr}");
    assert_eq!(mr["sha"], new.as_str());
    // The checkout's branch follows, with no temporary work tree left.
    assert_eq!(git(&bed.work, &["rev-parse", "swh-next-version"]), new);
    assert_eq!(git(&bed.work, &["worktree", "list"]).lines().count(), 1);
    // The journal has the rebase step.
    let journal = swh_deploy_journal::Journal::open(&bed.root.join("journal.sqlite")).unwrap();
    let runs = journal.runs(10).unwrap();
    let run = runs.iter().find(|r| r.mode == "chart promote").unwrap();
    let steps = journal.run_details(run.id).unwrap().steps;
    assert!(
        steps[0].name.starts_with(&format!(
            "rebase swh-next-version onto staging: {next} -> {new}"
        )),
        "{:?}",
        steps.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    // A later bump works on the rebased branch.
    bed.push_image("loader_git", "20250203.1");
    bed.run(&["chart", "bump", "swh-loader-git=20250203.1"]);
    assert!(is_ancestor(
        &bed.remote,
        &new,
        &bed.head("swh-next-version")
    ));
}

#[test]
fn promote_staging_refuses_a_conflicting_rebase_and_changes_nothing() {
    let bed = Bed::new();
    bed.push_image("loader_git", "20250202.1");
    // The hotfix changes the same line as the release commit will.
    let chart = std::fs::read_to_string(bed.work.join("swh/Chart.yaml")).unwrap();
    let v = chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion: "))
        .unwrap()
        .trim()
        .to_string();
    let n: u64 = v.trim_matches(['"', '\'']).parse().unwrap();
    hotfix(
        &bed,
        "staging",
        "swh/Chart.yaml",
        &chart.replace(
            &format!("appVersion: {v}"),
            &format!("appVersion: {}", n + 5),
        ),
        "hotfix appVersion on staging",
    );
    let staging = bed.head("staging");
    bed.run(&["chart", "bump", "swh-loader-git=20250202.1"]);
    let next = bed.head("swh-next-version");

    for args in [
        &["chart", "promote", "staging", "--dry-run"][..],
        &["chart", "promote", "staging", "--no-gate"][..],
    ] {
        let out = bed.fails(args);
        let err = stderr(&out);
        assert!(
            err.contains("rebasing swh-next-version onto staging conflicts in: swh/Chart.yaml")
                && err.contains("hotfix appVersion on staging")
                && err.contains("nothing was changed"),
            "{err}"
        );
        assert_eq!(bed.head("staging"), staging);
        assert_eq!(bed.head("swh-next-version"), next);
        assert_eq!(git(&bed.work, &["rev-parse", "swh-next-version"]), next);
        assert_eq!(git(&bed.work, &["status", "--porcelain"]), "");
        assert_eq!(git(&bed.work, &["worktree", "list"]).lines().count(), 1);
    }
}

/// The GitLab merge requests of the stand-in, through its HTTP API.
fn api_mrs(gl: &swh_deploy_testbed::gitlab::GitlabStandin, query: &str) -> serde_json::Value {
    let r = swh_deploy_testbed::components::http_get(
        gl.addr(),
        &format!("/api/v4/projects/77/merge_requests{query}"),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    serde_json::from_str(&r.text()).unwrap()
}

#[test]
fn chart_bump_opens_then_updates_the_merge_request_and_promotion_merges_it() {
    let bed = Bed::new();
    let gl = swh_deploy_testbed::gitlab::GitlabStandin::start(&bed.remote, 77).unwrap();
    bed.push_image("loader_git", "20250202.1");
    bed.push_image("loader_git", "20250203.1");

    // --no-merge-request: a plain push, no merge request.
    bed.run(&[
        "chart",
        "bump",
        "--no-merge-request",
        "--release-only",
        "--module",
        "swh.core",
        "--module-version",
        "v1.0.0",
    ]);
    assert_eq!(api_mrs(&gl, ""), serde_json::json!([]));

    let out = bed.run(&["chart", "bump", "swh-loader-git=20250202.1"]);
    assert!(
        out.contains("merge request swh-next-version -> staging: opened"),
        "{out}"
    );
    let first = bed.head("swh-next-version");
    let list = api_mrs(&gl, "?state=opened&source_branch=swh-next-version");
    let mrs = list.as_array().unwrap();
    assert_eq!(mrs.len(), 1, "{list}");
    let mr = &mrs[0];
    assert_eq!(mr["iid"], 1);
    assert_eq!(mr["state"], "opened");
    assert_eq!(mr["target_branch"], "staging");
    assert_eq!(mr["sha"], first.as_str());
    let subject = git(&bed.remote, &["log", "-1", "--format=%s", &first]);
    assert_eq!(mr["title"], subject.as_str());

    // A second bump updates the open merge request; none is added.
    bed.run(&["chart", "bump", "swh-loader-git=20250203.1"]);
    let second = bed.head("swh-next-version");
    let list = api_mrs(&gl, "?state=opened");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["iid"], 1);
    assert_eq!(list[0]["sha"], second.as_str());

    // Promoting staging merges it.
    bed.run(&["chart", "promote", "staging", "--no-gate"]);
    assert_eq!(api_mrs(&gl, "?state=opened"), serde_json::json!([]));
    let one = api_mrs(&gl, "/1");
    assert_eq!(one["state"], "merged", "{one}");
    assert!(one["merged_at"].is_string());
}

#[test]
fn the_next_version_gate_waits_for_the_application_of_the_open_merge_request() {
    use swh_deploy_testbed::kube::{KubeStandin, PullRequestGenerator, StandinOptions};
    const TOKEN_VAR: &str = "SWH_DEPLOY_TEST_ARGOCD_TOKEN";
    let bed = Bed::new();
    let gl = swh_deploy_testbed::gitlab::GitlabStandin::start(&bed.remote, 77).unwrap();
    let mut opts = StandinOptions::swh(&bed.remote);
    opts.pull_request_generators.push(PullRequestGenerator {
        api: gl.addr(),
        project: "77".into(),
        branch: "swh-next-version".into(),
        name_template: "swh-{branch}-{number}".into(),
        namespace: "swh-cassandra-next-version".into(),
        requeue: std::time::Duration::from_millis(100),
    });
    let standin = KubeStandin::start(opts).unwrap();
    // The environment names the generator's Application by its template;
    // chart promote finds the number from the merge request. A second
    // environment names Application !1 for `cluster wait`.
    let site = std::fs::read_to_string(bed.root.join("site.toml")).unwrap();
    let mut site = site.replace(
        "[charts]\n",
        &format!(
            "[charts]\nmerge_requests = \"{}/api/v4/projects/77\"\n",
            gl.url()
        ),
    );
    site.push_str(&format!(
        "\n[environments.next-version]\nchart_branch = \"swh-next-version\"\n\
         argocd_application = \"swh-{{branch}}-{{number}}\"\n\
         namespace = \"swh-cassandra-next-version\"\n\n\
         [environments.next-version-1]\nargocd_application = \"swh-swh-next-version-1\"\n\n\
         [environments.next-version-2]\nargocd_application = \"swh-swh-next-version-2\"\n\n\
         [argocd]\nurl = \"{}\"\ntoken_env = \"{TOKEN_VAR}\"\n",
        standin.url()
    ));
    std::fs::write(bed.root.join("site.toml"), site).unwrap();
    let token = standin.argocd_token().to_string();
    let with_token = |args: &[&str]| {
        let mut c = bed.cmd(args);
        c.env(TOKEN_VAR, &token);
        c
    };

    // Without a merge request, no next-version Application: the gate
    // refuses and staging stays.
    bed.run(&[
        "chart",
        "bump",
        "--no-merge-request",
        "--release-only",
        "--module",
        "swh.core",
        "--module-version",
        "v1.0.0",
    ]);
    let staging = bed.head("staging");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = with_token(&["chart", "promote", "staging"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "promoted without the Application");
    assert!(
        stderr(&out).contains("no open merge request swh-next-version -> staging"),
        "{}",
        stderr(&out)
    );
    assert_eq!(bed.head("staging"), staging);

    // The bump opens merge request !1: the generator creates
    // swh-swh-next-version-1, which syncs to the branch's head; then the
    // gate opens.
    bed.push_image("loader_git", "20250202.1");
    bed.run(&["chart", "bump", "swh-loader-git=20250202.1"]);
    let head = bed.head("swh-next-version");
    // The generator reads the merge requests every 100 ms: until then the
    // Application does not exist (cluster wait: not found); bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = with_token(&[
            "cluster",
            "wait",
            "next-version-1",
            "--revision",
            &head,
            "--timeout",
            "30s",
            "--interval",
            "100ms",
        ])
        .output()
        .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            stderr(&out).contains("not found") && std::time::Instant::now() < deadline,
            "{}",
            stderr(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = sh(&mut with_token(&["chart", "promote", "staging"]));
    assert!(
        out.contains("next-version: merge request !1, Application swh-swh-next-version-1"),
        "{out}"
    );
    assert_eq!(bed.head("staging"), head, "{out}");

    // Merged, the merge request's Application goes away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = with_token(&[
            "cluster",
            "wait",
            "next-version-1",
            "--revision",
            &head,
            "--timeout",
            "1s",
            "--interval",
            "100ms",
        ])
        .output()
        .unwrap();
        if !out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Application of the merged request is still there"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // A hotfix on staging, a new release (merge request !2): the promotion
    // rebases swh-next-version, pushes it alone (next-version has not
    // deployed the rebased commit) and stops; once next-version is live at
    // it, the promotion goes through.
    hotfix(&bed, "staging", "HOTFIX", "x\n", "hotfix on staging");
    let staging = bed.head("staging");
    bed.push_image("loader_git", "20250203.1");
    bed.run(&["chart", "bump", "swh-loader-git=20250203.1"]);
    let before = bed.head("swh-next-version");
    let out = with_token(&["chart", "promote", "staging"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("swh-next-version was rebased onto staging and pushed"),
        "{}",
        stderr(&out)
    );
    let rebased = bed.head("swh-next-version");
    assert_ne!(rebased, before);
    assert_eq!(
        git(&bed.remote, &["rev-parse", &format!("{rebased}^")]),
        staging
    );
    assert_eq!(bed.head("staging"), staging, "staging not promoted yet");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = with_token(&[
            "cluster",
            "wait",
            "next-version-2",
            "--revision",
            &rebased,
            "--timeout",
            "30s",
            "--interval",
            "100ms",
        ])
        .output()
        .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            stderr(&out).contains("not found") && std::time::Instant::now() < deadline,
            "{}",
            stderr(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = sh(&mut with_token(&["chart", "promote", "staging"]));
    assert!(out.contains("merge request !2"), "{out}");
    assert_eq!(bed.head("staging"), rebased);
}
