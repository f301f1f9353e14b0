//! `swh-deploy chart rollback` through the binary: revert commits on an
//! environment's branch of a real bare git remote (never a force-push),
//! then the wait against the test bed's Kubernetes/Argo CD STAND-IN
//! (`swh_deploy_testbed::kube`), whose applications follow the branches.

mod common;

use common::ArgoBed as Bed;
use std::process::Output;
use swh_deploy_journal::Journal;
use swh_deploy_testbed::grafana::GrafanaStandin;

const VALUES: &str = "values-swh-application-versions.yaml";

impl Bed {
    fn new() -> Bed {
        Bed::start("chart-rollback-test")
    }

    fn loader_version(&self, rev: &str) -> String {
        let text = self.remote_git(&["show", &format!("{rev}:{VALUES}")]).1;
        text.lines()
            .find_map(|l| l.strip_prefix("swh_loader_git_image_version:"))
            .map(|v| v.trim().trim_matches('\'').to_string())
            .unwrap_or_default()
    }

    fn is_ancestor(&self, a: &str, b: &str) -> bool {
        self.remote_git(&["merge-base", "--is-ancestor", a, b]).0
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const WAIT: [&str; 4] = ["--interval", "50ms", "--timeout", "30s"];

#[test]
fn rollback_reverts_on_top_waits_until_live_and_never_rewrites_history() {
    let bed = Bed::new();
    let good = bed.push("production", "20250600.1");
    let bad = bed.push("production", "20250600.2");
    assert_eq!(bed.loader_version(&bad), "20250600.2");

    // Dry run: the image change, nothing pushed, nothing journaled.
    let o = bed.run(&["chart", "rollback", "production", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out(&o).contains("swh_loader_git: 20250600.2 -> 20250600.1"),
        "{}",
        out(&o)
    );
    assert_eq!(bed.head("production"), bad);
    assert!(
        !bed.root.join("journal.sqlite").exists() || {
            let j = Journal::open(&bed.root.join("journal.sqlite")).unwrap();
            j.runs(10)
                .unwrap()
                .iter()
                .all(|r| r.mode != "chart rollback")
        }
    );

    // The last commit undone: a new commit on top of `bad`, live in Argo CD.
    let mut args = vec!["chart", "rollback", "production"];
    args.extend(WAIT);
    let o = bed.run(&args);
    assert_eq!(o.status.code(), Some(0));
    let reverted = bed.head("production");
    assert_ne!(reverted, good, "a new commit, not a reset to the old one");
    assert_eq!(
        bed.remote_git(&["rev-parse", &format!("{reverted}^")]).1,
        bad
    );
    assert_eq!(bed.loader_version(&reverted), "20250600.1");
    assert_eq!(
        bed.remote_git(&["diff", "--stat", &good, &reverted]).1,
        "",
        "the tree of the commit before"
    );
    assert!(
        out(&o).contains(&format!("production is live at {}", &reverted[..12])),
        "{}",
        out(&o)
    );

    // APP=VERSION: only that version set back, on top again.
    let mut args = vec![
        "chart",
        "rollback",
        "production",
        "swh-loader-git=20250600.2",
    ];
    args.extend(WAIT);
    let o = bed.run(&args);
    assert_eq!(o.status.code(), Some(0));
    let pinned = bed.head("production");
    assert!(bed.is_ancestor(&reverted, &pinned));
    assert_eq!(bed.loader_version(&pinned), "20250600.2");
    assert_eq!(
        bed.remote_git(&["log", "-1", "--format=%s", &pinned]).1,
        "Rollback production: swh_loader_git 20250600.1 -> 20250600.2"
    );

    // --to an earlier commit of the branch: every later commit undone at once.
    let mut args = vec!["chart", "rollback", "production", "--to", good.as_str()];
    args.extend(WAIT);
    let o = bed.run(&args);
    assert_eq!(o.status.code(), Some(0));
    let back = bed.head("production");
    assert!(bed.is_ancestor(&pinned, &back));
    assert_eq!(bed.loader_version(&back), "20250600.1");

    // --to a commit that is not in production's history: refused, unchanged.
    let other = bed.push("staging", "20250600.9");
    let o = bed.run(&["chart", "rollback", "production", "--to", other.as_str()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not in production's history"), "{err}");
    assert_eq!(bed.head("production"), back);

    // Journaled: three rollback runs, succeeded, with their changes.
    let j = Journal::open(&bed.root.join("journal.sqlite")).unwrap();
    let runs: Vec<_> = j
        .runs(50)
        .unwrap()
        .into_iter()
        .filter(|r| r.mode == "chart rollback")
        .collect();
    assert_eq!(runs.len(), 3);
    assert!(runs
        .iter()
        .all(|r| r.status == swh_deploy_journal::RunStatus::Succeeded));
    assert_eq!(runs[2].parameters["head"], bad.as_str());
    assert_eq!(
        runs[2].parameters["changes"][0],
        serde_json::json!(["swh_loader_git", "20250600.2", "20250600.1"])
    );
}

#[test]
fn grafana_annotations_at_rollback_and_promotion_token_never_shown() {
    let bed = Bed::new();
    let grafana = GrafanaStandin::start("grafana-test-token-5f2e9").unwrap();
    let env = [
        ("SWH_DEPLOY_GRAFANA_URL", grafana.url()),
        ("SWH_DEPLOY_GRAFANA_TOKEN", grafana.token()),
    ];
    let mut shown = String::new();
    let mut keep = |o: &Output| {
        shown.push_str(&String::from_utf8_lossy(&o.stdout));
        shown.push_str(&String::from_utf8_lossy(&o.stderr));
    };

    // A promotion is annotated.
    bed.push("staging", "20250700.3");
    let o = bed.run_env(&["chart", "promote", "production", "--no-gate"], &env);
    assert_eq!(o.status.code(), Some(0));
    keep(&o);
    let r = grafana.requests();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].method.as_str(), r[0].path.as_str()),
        ("POST", "/api/annotations")
    );
    assert_eq!(
        r[0].authorization.as_deref(),
        Some("Bearer grafana-test-token-5f2e9")
    );
    assert_eq!(
        r[0].body["tags"],
        serde_json::json!(["deployment", "production", "swh_loader_git"])
    );
    let text = r[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("chart promote staging -> production: swh_loader_git")
            && text.contains("-> 20250700.3"),
        "{text}"
    );
    assert!(r[0].body["time"].as_u64().unwrap() > 1_600_000_000_000);

    // Not configured: nothing sent.
    bed.push("production", "20250700.4");
    let o = bed.run(&["chart", "rollback", "production", "--no-wait"]);
    assert_eq!(o.status.code(), Some(0));
    keep(&o);
    assert_eq!(grafana.requests().len(), 1);

    // Configured: a dry run sends nothing, a rollback one annotation.
    let o = bed.run_env(&["chart", "rollback", "production", "--dry-run"], &env);
    assert_eq!(o.status.code(), Some(0));
    keep(&o);
    assert_eq!(grafana.requests().len(), 1, "a dry run annotates nothing");
    let o = bed.run_env(
        &[
            "chart",
            "rollback",
            "production",
            "swh-loader-git=20250700.1",
            "--no-wait",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0));
    keep(&o);
    let head = bed.head("production");
    let r = grafana.requests();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        r[1].body["tags"],
        serde_json::json!(["deployment", "production", "swh_loader_git"])
    );
    assert_eq!(
        r[1].body["text"],
        format!(
            "chart rollback production: swh_loader_git 20250700.3 -> 20250700.1 (production at {})",
            &head[..12]
        )
    );

    // A refused token: a warning, the rollback itself done (exit 0).
    let bad = [
        ("SWH_DEPLOY_GRAFANA_URL", grafana.url()),
        ("SWH_DEPLOY_GRAFANA_TOKEN", "wrong-token-77ab"),
    ];
    let o = bed.run_env(&["chart", "rollback", "production", "--no-wait"], &bad);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains("grafana annotation not added") && err.contains("401"),
        "{err}"
    );
    keep(&o);
    // A URL without a token: a warning naming the variable.
    let o = bed.run_env(
        &["chart", "rollback", "production", "--no-wait"],
        &[("SWH_DEPLOY_GRAFANA_URL", grafana.url())],
    );
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("SWH_DEPLOY_GRAFANA_TOKEN is empty"), "{err}");
    keep(&o);

    // The tokens never appear in any output nor in the journal.
    let journal = std::fs::read(bed.root.join("journal.sqlite")).unwrap();
    let journal = String::from_utf8_lossy(&journal);
    for secret in ["grafana-test-token-5f2e9", "wrong-token-77ab"] {
        assert!(!shown.contains(secret), "{secret} shown");
        assert!(!journal.contains(secret), "{secret} in the journal");
    }
}
