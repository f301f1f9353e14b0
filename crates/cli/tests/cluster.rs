//! `swh-deploy cluster labels check/set`, `cluster wait` and the Argo CD
//! gate of `chart promote`, through the binary, against the test bed's
//! Kubernetes/Argo CD STAND-IN (`swh_deploy_testbed::kube`, the only
//! stand-in of the test suite) whose applications follow branches of real
//! bare git remotes (`GitRemotes`).

mod common;

use common::{code, json_doc, out_err as text, ArgoBed as Bed, TOKEN_VAR};
use std::path::Path;
use std::process::Command;
use swh_deploy_journal::Journal;
use swh_deploy_testbed::kube::Faults;

impl Bed {
    fn new() -> Bed {
        Bed::start("cluster-test")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.command(args)
    }
}

fn journal_modes(root: &Path) -> Vec<(String, serde_json::Value)> {
    let j = Journal::open(&root.join("journal.sqlite")).unwrap();
    j.runs(50)
        .unwrap()
        .into_iter()
        .map(|r| (r.mode, r.parameters))
        .collect()
}

#[test]
fn labels_check_and_set() {
    let bed = Bed::new();
    // The loaders' label is on worker1 and worker2.
    let o = bed.run(&[
        "cluster",
        "labels",
        "check",
        "--context",
        "archive-staging-rke2",
        "--app",
        "loaders",
    ]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(
        out.contains("swh/loader=true") && out.contains("rancher-node-staging-rke2-worker[1-2]"),
        "{out}"
    );
    // Each kube context is its own cluster: no production node here.
    assert!(out.contains("3 node(s)") && !out.contains("metal"), "{out}");
    let o = bed.run(&[
        "cluster",
        "labels",
        "check",
        "--context",
        "archive-production-rke2",
        "--app",
        "loaders",
    ]);
    let (out, _) = text(&o);
    assert!(
        out.contains("rancher-node-metal[01-02]") && !out.contains("staging"),
        "{out}"
    );

    // The whole chart (swh/values*.yaml of the checkout, for staging)
    // requires labels no node has.
    let o = bed.run(&["cluster", "labels", "check", "--env", "staging"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(
        out.contains("swh/cooker=true") && out.contains("NO NODE"),
        "{out}"
    );
    assert!(out.contains("label(s) with no node:"), "{out}");
    // NotIn expressions are not labels to set.
    assert!(!out.contains("node-role.kubernetes.io/etcd"), "{out}");
    // --json: the same report, the missing labels listed, exit 1 alike.
    let o = bed.run(&["cluster", "labels", "check", "--env", "staging", "--json"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    let v = json_doc(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["context"], "archive-staging-rke2");
    assert_eq!(v["nodes"], 3);
    assert!(v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "swh/cooker=true"));
    let loader = v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["label"] == "swh/loader=true")
        .unwrap();
    assert_eq!(
        loader["nodes"],
        serde_json::json!([
            "rancher-node-staging-rke2-worker1",
            "rancher-node-staging-rke2-worker2"
        ])
    );

    // Explicit values files; an unknown section is an error naming them.
    let values = bed.root.join("swh-charts/swh/values/default.yaml");
    let o = bed.run(&[
        "cluster",
        "labels",
        "check",
        "--context",
        "archive-staging-rke2",
        "--values",
        values.to_str().unwrap(),
        "--app",
        "cookers",
    ]);
    assert_eq!(code(&o), 1, "{:?}", text(&o));
    let o = bed.run(&[
        "cluster",
        "labels",
        "check",
        "--context",
        "archive-staging-rke2",
        "--values",
        values.to_str().unwrap(),
        "--app",
        "nosuch",
    ]);
    let (_, err) = text(&o);
    assert_eq!(code(&o), 1);
    assert!(
        err.contains("--app nosuch") && err.contains("default.yaml"),
        "{err}"
    );

    // Bad label syntax and unknown nodes change nothing.
    let before = bed
        .standin
        .node_labels("rancher-node-staging-rke2-worker3")
        .unwrap();
    let o = bed.run(&[
        "cluster",
        "labels",
        "set",
        "--context",
        "archive-staging-rke2",
        "rancher-node-staging-rke2-worker[1-3]",
        "swh/Cooker=yes please",
    ]);
    assert_eq!(code(&o), 1);
    assert!(text(&o).1.contains("swh/Cooker"), "{:?}", text(&o));
    let o = bed.run(&[
        "cluster",
        "labels",
        "set",
        "--context",
        "archive-staging-rke2",
        "rancher-node-staging-rke2-worker[3-4]",
        "swh/cooker=true",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o)
            .1
            .contains("no such node(s): rancher-node-staging-rke2-worker4"),
        "{:?}",
        text(&o)
    );
    // --dry-run says what it would do and does nothing.
    let o = bed.run(&[
        "cluster",
        "labels",
        "set",
        "--context",
        "archive-staging-rke2",
        "rancher-node-staging-rke2-worker[1-3]",
        "swh/cooker=true",
        "--dry-run",
    ]);
    assert_eq!(code(&o), 0, "{:?}", text(&o));
    assert!(
        text(&o)
            .0
            .contains("would label node/rancher-node-staging-rke2-worker3: swh/cooker=true (new)"),
        "{:?}",
        text(&o)
    );
    assert_eq!(
        bed.standin
            .node_labels("rancher-node-staging-rke2-worker3")
            .unwrap(),
        before
    );
    assert!(!bed
        .standin
        .requests()
        .iter()
        .any(|r| r.starts_with("PATCH")));

    // Set, journaled; the check passes afterwards.
    let o = bed.run(&[
        "cluster",
        "labels",
        "set",
        "--context",
        "archive-staging-rke2",
        "rancher-node-staging-rke2-worker[1-3]",
        "swh/cooker=true",
        "swh/indexer=true",
    ]);
    assert_eq!(code(&o), 0, "{:?}", text(&o));
    assert!(text(&o)
        .0
        .contains("node/rancher-node-staging-rke2-worker3 labeled"));
    for n in 1..=3 {
        let l = bed
            .standin
            .node_labels(&format!("rancher-node-staging-rke2-worker{n}"))
            .unwrap();
        assert_eq!(l.get("swh/cooker").map(String::as_str), Some("true"));
        assert_eq!(l.get("swh/indexer").map(String::as_str), Some("true"));
    }
    let runs = journal_modes(&bed.root);
    assert_eq!(runs[0].0, "cluster labels set");
    assert_eq!(runs[0].1["nodes"], "rancher-node-staging-rke2-worker[1-3]");
    let o = bed.run(&[
        "cluster",
        "labels",
        "check",
        "--context",
        "archive-staging-rke2",
        "--values",
        values.to_str().unwrap(),
        "--app",
        "cookers",
        "--app",
        "indexers",
    ]);
    assert_eq!(code(&o), 0, "{:?}", text(&o));
}

#[test]
fn wait_live_degraded_timeout_and_refused_tokens() {
    let bed = Bed::new();
    // A push to staging: the branch head becomes live.
    let rev = bed.push("staging", "20250300.1");
    let o = bed.run(&[
        "cluster",
        "wait",
        "staging",
        "--interval",
        "50ms",
        "--timeout",
        "30s",
    ]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("staging is live at {}", &rev[..12])),
        "{out}"
    );
    assert!(out.contains("3 deployment(s) rolled out in swh"), "{out}");
    // Progress on stderr went through the rollout.
    assert!(
        err.contains("waiting for") || err.contains("new replicas") || err.contains("Progressing"),
        "{err}"
    );
    // Not a terminal: plain lines, no carriage return or escape code.
    assert!(
        !err.contains('\r')
            && !err.contains('\x1b')
            && !out.contains('\r')
            && !out.contains('\x1b'),
        "{err:?}"
    );

    // A version whose rollout fails: exit 1 naming the deployment and condition.
    bed.standin.set_faults(Faults {
        degraded_versions: vec!["20250300.2".into()],
        ..Faults::default()
    });
    let rev2 = bed.push("staging", "20250300.2");
    let o = bed.run(&[
        "cluster",
        "wait",
        "staging",
        "--revision",
        &rev2,
        "--interval",
        "50ms",
        "--timeout",
        "30s",
    ]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(
        err.contains("ProgressDeadlineExceeded") && err.contains("deployment loader-git"),
        "{err}"
    );
    assert!(
        err.contains("deployment storage") && err.contains("archive-staging-rke2-swh"),
        "{err}"
    );

    // A revision that never comes: exit 6 after the timeout. While the
    // state does not change, a plain "still waiting" line now and then
    // (every 30 s; 300 ms here), after the time elapsed.
    let never = "0123456789abcdef0123456789abcdef01234567";
    let o = bed
        .cmd(&[
            "cluster",
            "wait",
            "production",
            "--revision",
            never,
            "--interval",
            "50ms",
            "--timeout",
            "1500ms",
        ])
        .env("SWH_DEPLOY_PROGRESS_EVERY", "300ms")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 6, "{out}\n{err}");
    assert!(err.contains("not live at 0123456789ab"), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    let still: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("s] still waiting: production: "))
        .collect();
    assert!((1..=5).contains(&still.len()), "{err}");
    assert!(
        still
            .iter()
            .all(|l| l.starts_with('[') && l.ends_with("s so far)")),
        "{err}"
    );
    // --json: how it ended on stdout (live, failed, timeout), same exits.
    let wait_json = |args: &[&str]| {
        let mut all = vec!["cluster", "wait", "--interval", "50ms", "--json"];
        all.extend_from_slice(args);
        bed.run(&all)
    };
    let o = wait_json(&["production", "--revision", never, "--timeout", "300ms"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 6, "{out}\n{err}");
    let v = json_doc(&out);
    assert_eq!(v["status"], "timeout");
    assert_eq!(v["environment"], "production");
    assert_eq!(v["revision"], never);
    let o = wait_json(&["staging", "--timeout", "30s"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    let v = json_doc(&out);
    assert_eq!(v["status"], "failed");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("ProgressDeadlineExceeded"));

    // A wrong Argo CD token is refused (exit 1, HTTP 401), never printed.
    let o = bed
        .cmd(&[
            "cluster",
            "wait",
            "production",
            "--interval",
            "50ms",
            "--timeout",
            "5s",
        ])
        .env(TOKEN_VAR, "not-the-token")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(err.contains("401"), "{err}");
    assert!(
        !err.contains("not-the-token") && !err.contains(bed.standin.argocd_token()),
        "{err}"
    );
    // An unset one is named.
    let o = bed
        .cmd(&["cluster", "wait", "production"])
        .env_remove(TOKEN_VAR)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(text(&o).1.contains(TOKEN_VAR), "{:?}", text(&o));
    // A wrong Kubernetes token (kubeconfig) is refused too.
    let bad = bed.root.join("bad-kubeconfig");
    let kc = std::fs::read_to_string(bed.root.join("kubeconfig")).unwrap();
    std::fs::write(
        &bad,
        kc.replace(bed.standin.kube_token(), "wrong-kube-token"),
    )
    .unwrap();
    let o = bed
        .cmd(&[
            "cluster",
            "labels",
            "check",
            "--context",
            "archive-staging-rke2",
            "--app",
            "loaders",
        ])
        .env("KUBECONFIG", &bad)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(
        err.contains("401") && !err.contains("wrong-kube-token"),
        "{err}"
    );
}

#[test]
fn promote_is_gated_on_the_source_environment_being_live() {
    let bed = Bed::new();
    // staging gets a release whose rollout fails.
    bed.standin.set_faults(Faults {
        degraded_versions: vec!["20250400.1".into()],
        ..Faults::default()
    });
    let bad = bed.push("staging", "20250400.1");
    let o = bed.run(&[
        "cluster",
        "wait",
        "staging",
        "--interval",
        "50ms",
        "--timeout",
        "30s",
    ]);
    assert_eq!(code(&o), 1, "{:?}", text(&o));
    let prod_before = bed.head("production");
    let o = bed.run(&["chart", "promote", "production"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(
        err.contains("refusing to promote from staging") && err.contains("Degraded"),
        "{err}"
    );
    assert!(err.contains("--no-gate"), "{err}");
    // Waiting for the gate does not wait for a Degraded source: refused at
    // once, after saying what it awaited and what it saw.
    let t = std::time::Instant::now();
    let o = bed.run(&[
        "chart",
        "promote",
        "production",
        "--wait-gate=60s",
        "--interval",
        "50ms",
    ]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(30), "{err}");
    assert!(
        err.contains("gate: waiting until the environment of staging is live at ")
            && err.contains("(at most 60s, polled every 50ms)"),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with('[')
            && l.contains("s] staging (archive-staging-rke2-swh) is not live")),
        "{err}"
    );
    assert!(
        err.contains("refusing to promote from staging") && err.contains("Degraded"),
        "{err}"
    );
    assert_eq!(
        bed.head("production"),
        prod_before,
        "production moved although the gate refused"
    );

    // The fix reaches staging: `--wait-gate` waits until it is live, then
    // promotes; plain progress lines (stderr is not a terminal).
    bed.standin.set_faults(Faults::default());
    let good = bed.push("staging", "20250400.2");
    assert_ne!(good, bad);
    let o = bed.run(&[
        "chart",
        "promote",
        "production",
        "--wait-gate=30s",
        "--interval",
        "50ms",
    ]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert!(
        err.lines().any(|l| l.starts_with('[')
            && l.contains("s] staging (archive-staging-rke2-swh) is live at ")),
        "{err}"
    );
    assert!(
        out.contains("gate: staging (archive-staging-rke2-swh) is live at"),
        "{out}"
    );
    assert_eq!(bed.head("production"), good);
    let o = bed.run(&[
        "cluster",
        "wait",
        "production",
        "--interval",
        "50ms",
        "--timeout",
        "30s",
    ]);
    assert_eq!(code(&o), 0, "{:?}", text(&o));
    assert!(
        text(&o)
            .0
            .contains("3 deployment(s) rolled out in swh-cassandra"),
        "{:?}",
        text(&o)
    );

    // --wait-gate and --no-gate contradict each other: refused.
    let o = bed.run(&["chart", "promote", "production", "--no-gate", "--wait-gate"]);
    assert_ne!(code(&o), 0, "{:?}", text(&o));
    assert!(text(&o).1.contains("--wait-gate"), "{:?}", text(&o));

    // --no-gate promotes a staging that is not live, and says so in the journal.
    bed.standin.set_faults(Faults {
        degraded_versions: vec!["20250400.3".into()],
        ..Faults::default()
    });
    let third = bed.push("staging", "20250400.3");
    let o = bed.run(&["chart", "promote", "production", "--no-gate"]);
    assert_eq!(code(&o), 0, "{:?}", text(&o));
    assert_eq!(bed.head("production"), third);
    let runs = journal_modes(&bed.root);
    assert_eq!(runs[0].0, "chart promote");
    assert_eq!(runs[0].1["gate"], "skipped: --no-gate");
    assert!(
        runs[1].1["gate"].as_str().unwrap().starts_with("open: "),
        "{:?}",
        runs[1]
    );
}

#[test]
fn without_argocd_the_gate_is_skipped() {
    let bed = Bed::new();
    let site = std::fs::read_to_string(bed.root.join("site.toml")).unwrap();
    let cut = site.find("[argocd]").unwrap();
    std::fs::write(bed.root.join("site.toml"), &site[..cut]).unwrap();
    bed.push("staging", "20250500.1");
    let o = bed.run(&["chart", "promote", "production"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(out.contains("gate: skipped: no [argocd]"), "{out}");
    // And `cluster wait` says what is missing.
    let o = bed.run(&["cluster", "wait", "staging"]);
    assert_eq!(code(&o), 1);
    assert!(text(&o).1.contains("no [argocd] section"), "{:?}", text(&o));
}
