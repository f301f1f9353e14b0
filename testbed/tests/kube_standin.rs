//! The Kubernetes/Argo CD STAND-IN checked with the real `kubectl` client
//! (so its JSON shapes are the ones kubectl understands), and its simulated
//! Argo CD automated sync driven by a push to the test bed's swh-charts.git.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use swh_deploy_testbed::components::GitRemotes;
use swh_deploy_testbed::kube::{push_chart_version, Faults, KubeStandin, StandinOptions};

fn kubectl_path() -> Option<&'static str> {
    ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    let bin = kubectl_path().unwrap();
    Command::new(bin)
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .args(["--request-timeout", "20s"])
        .args(args)
        .output()
        .expect("running kubectl")
}

fn push_version(remotes: &GitRemotes, work: &Path, branch: &str, version: &str) -> String {
    push_chart_version(&remotes.charts.url, work, branch, "swh_loader_git", version).unwrap()
}

fn app(url: &str, token: &str, name: &str) -> Value {
    let o = Command::new("curl")
        .args(["-sS", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{url}/api/v1/applications/{name}"))
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn kubectl_reads_nodes_labels_them_and_follows_a_rollout() {
    let Some(_) = kubectl_path() else {
        eprintln!(
            "\n\n!!!!! SKIPPED: kubectl is not installed (not a Debian package here; \
             install it from https://dl.k8s.io or the Google Cloud SDK repository) — \
             the stand-in's shapes were NOT checked against the real kubectl !!!!!\n"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let remotes = GitRemotes::create(&tmp.path().join("remotes")).unwrap();
    let standin = KubeStandin::start(StandinOptions::swh(&remotes.charts.path)).unwrap();
    let kc = tmp.path().join("kubeconfig");
    standin
        .write_kubeconfig(&kc, &["archive-staging-rke2", "archive-production-rke2"])
        .unwrap();

    // get nodes -o json
    let o = kubectl(
        tmp.path(),
        &kc,
        &[
            "--context",
            "archive-staging-rke2",
            "get",
            "nodes",
            "-o",
            "json",
        ],
    );
    assert!(
        o.status.success(),
        "kubectl get nodes: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"rancher-node-staging-rke2-worker3"),
        "{names:?}"
    );
    // One cluster per context, Rancher-style (/k8s/clusters/<name>).
    assert!(!names.contains(&"rancher-node-metal01"), "{names:?}");

    // label --overwrite
    let o = kubectl(
        tmp.path(),
        &kc,
        &[
            "label",
            "--overwrite",
            "node",
            "rancher-node-staging-rke2-worker3",
            "swh/loader=true",
        ],
    );
    assert!(
        o.status.success(),
        "kubectl label: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("labeled"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        standin
            .node_labels("rancher-node-staging-rke2-worker3")
            .unwrap()
            .get("swh/loader")
            .map(String::as_str),
        Some("true")
    );
    assert!(standin.requests().iter().any(|r| r.starts_with(
        "PATCH /k8s/clusters/archive-staging-rke2/api/v1/nodes/rancher-node-staging-rke2-worker3"
    )));

    // A wrong token is refused, by kubectl's own report.
    let bad = tmp.path().join("bad");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&kc)
            .unwrap()
            .replace(standin.kube_token(), "wrong"),
    )
    .unwrap();
    let o = kubectl(tmp.path(), &bad, &["get", "nodes", "-o", "json"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A push to staging: Argo CD syncs, the deployments roll; kubectl
    // rollout status follows it to the end.
    let rev = push_version(&remotes, tmp.path(), "staging", "20250200.1");
    let t0 = Instant::now();
    let mut saw_out_of_sync_or_running = false;
    loop {
        let a = app(
            &standin.url(),
            standin.argocd_token(),
            "archive-staging-rke2-swh",
        );
        if a["status"]["operationState"]["phase"] == "Running"
            || a["status"]["sync"]["status"] == "OutOfSync"
        {
            saw_out_of_sync_or_running = true;
        }
        if a["status"]["sync"]["revision"] == rev.as_str() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no sync: {a}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_out_of_sync_or_running);
    let o = kubectl(
        tmp.path(),
        &kc,
        &[
            "-n",
            "swh",
            "rollout",
            "status",
            "deployment/loader-git",
            "--timeout=20s",
        ],
    );
    assert!(
        o.status.success(),
        "rollout status: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("successfully rolled out"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let a = app(
        &standin.url(),
        standin.argocd_token(),
        "archive-staging-rke2-swh",
    );
    assert_eq!(a["status"]["health"]["status"], "Healthy", "{a}");

    // A faulty version: kubectl reports the exceeded progress deadline.
    standin.set_faults(Faults {
        degraded_versions: vec!["20250200.2".into()],
        ..Faults::default()
    });
    let rev2 = push_version(&remotes, tmp.path(), "staging", "20250200.2");
    let o = kubectl(
        tmp.path(),
        &kc,
        &[
            "-n",
            "swh",
            "rollout",
            "status",
            "deployment/loader-git",
            "--timeout=20s",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exceeded its progress deadline"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let a = app(
        &standin.url(),
        standin.argocd_token(),
        "archive-staging-rke2-swh",
    );
    assert_eq!(a["status"]["sync"]["revision"], rev2.as_str());
    assert_eq!(a["status"]["health"]["status"], "Degraded", "{a}");
    // Argo CD's token is not the Kubernetes one.
    let a = app(
        &standin.url(),
        standin.kube_token(),
        "archive-staging-rke2-swh",
    );
    assert_eq!(a["code"], 16, "{a}");
}
