//! The Kubernetes/Argo CD STAND-IN checked with the real `kubectl` client
//! (so its JSON shapes and behaviour are the ones kubectl understands): what
//! swh-deploy relies on, `get nodes -o json` and `-l` selectors, `label
//! --overwrite` and removal, `patch` (strategic, merge and JSON patch),
//! `rollout status` on progressing, stalled and complete rollouts, `get
//! --watch`, Argo CD `Application` objects (`get applications.argoproj.io`),
//! and its simulated Argo CD automated sync driven by a push to the test
//! bed's swh-charts.git.
//!
//! kubectl is `$SWH_DEPLOY_KUBECTL` when set, else the one in PATH
//! (`scripts/install-deps` installs Debian's `kubernetes-client` when there
//! is none). These tests never skip: without kubectl they fail.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_testbed::components::GitRemotes;
use swh_deploy_testbed::kube::{push_chart_version, Faults, KubeStandin, StandinOptions};

/// The kubectl under test: `$SWH_DEPLOY_KUBECTL`, else `kubectl` in PATH.
fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SWH_DEPLOY_KUBECTL") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect(
            "kubectl is not installed: run scripts/install-deps (Debian 12's kubernetes-client); \
             the stand-in must be checked against the real kubectl, never skipped",
        )
}

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(kubectl_path())
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .args(["--request-timeout", "20s"])
        .args(args)
        .output()
        .expect("running kubectl")
}

/// kubectl that must succeed; its stdout.
fn kubectl_ok(home: &Path, kubeconfig: &Path, args: &[&str]) -> String {
    let o = kubectl(home, kubeconfig, args);
    assert!(
        o.status.success(),
        "kubectl {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn kubectl_json(home: &Path, kubeconfig: &Path, args: &[&str]) -> Value {
    let out = kubectl_ok(home, kubeconfig, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}: {out}"))
}

/// A stand-in with the swh clusters, its charts remote and a kubeconfig
/// (contexts archive-staging-rke2, the current one, and
/// archive-production-rke2).
struct Bed {
    tmp: tempfile::TempDir,
    remotes: GitRemotes,
    standin: KubeStandin,
    kc: PathBuf,
}

impl Bed {
    fn new() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let remotes = GitRemotes::create(&tmp.path().join("remotes")).unwrap();
        let standin = KubeStandin::start(StandinOptions::swh(&remotes.charts.path)).unwrap();
        let kc = tmp.path().join("kubeconfig");
        standin
            .write_kubeconfig(&kc, &["archive-staging-rke2", "archive-production-rke2"])
            .unwrap();
        Bed {
            tmp,
            remotes,
            standin,
            kc,
        }
    }
    fn ok(&self, args: &[&str]) -> String {
        kubectl_ok(self.tmp.path(), &self.kc, args)
    }
    fn json(&self, args: &[&str]) -> Value {
        kubectl_json(self.tmp.path(), &self.kc, args)
    }
    /// `spec.replicas` of staging's worker deployments loader-git and
    /// lister.
    fn worker_replicas(&self) -> (u64, u64) {
        let replicas = |name: &str| {
            self.json(&["get", "deployment", name, "-n", "swh", "-o", "json"])["spec"]["replicas"]
                .as_u64()
                .unwrap()
        };
        (replicas("loader-git"), replicas("lister"))
    }
    /// [`push_file`] on staging; the new head.
    fn push_staging(&self, path: &str, text: Option<&str>) -> String {
        let work = self.tmp.path().join("work");
        push_file(&self.remotes, &work, "staging", path, text)
    }
    /// [`Bed::push_staging`], then waits until staging's application synced
    /// it.
    fn push_synced(&self, path: &str, text: Option<&str>) {
        let rev = self.push_staging(path, text);
        wait_synced(&self.standin, "archive-staging-rke2-swh", &rev);
    }
    fn run(&self, args: &[&str]) -> Output {
        kubectl(self.tmp.path(), &self.kc, args)
    }
    fn push(&self, branch: &str, version: &str) -> String {
        push_version(&self.remotes, self.tmp.path(), branch, version)
    }
    /// Waits (at most 30 s) until kubectl has opened a watch on a path
    /// containing `path` (its list came first).
    fn wait_for_watch(&self, path: &str) {
        let t0 = Instant::now();
        while !self
            .standin
            .requests()
            .iter()
            .any(|r| r.contains(path) && r.contains("watch=true"))
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "kubectl never watched {path}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// Starts a watching kubectl (`args` + `--watch -o json
    /// --output-watch-events`); [`Watch::events_until`] reads it.
    fn watch(&self, args: &[&str]) -> Watch {
        let child = Command::new(kubectl_path())
            .env("HOME", self.tmp.path())
            .env("KUBECONFIG", &self.kc)
            .args(args)
            .args(["--watch", "-o", "json", "--output-watch-events"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kubectl --watch");
        Watch { child }
    }
}

/// A `kubectl get --watch` running in the background (killed on drop).
struct Watch {
    child: std::process::Child,
}

impl Watch {
    /// Stops kubectl after `after` has run (at most `limit` in all), and
    /// returns the watch events it printed.
    fn stop(mut self, limit: Duration) -> Vec<Value> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut out = Vec::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        let mut err = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        let events: Vec<Value> = serde_json::Deserializer::from_slice(&out)
            .into_iter::<Value>()
            .map(|v| v.unwrap_or_else(|e| panic!("watch output: {e}: {err}")))
            .collect();
        assert!(!events.is_empty(), "no watch events; stderr: {err}");
        events
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
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

/// Waits (at most 10 s) until the Argo CD application is synced at `rev`.
fn wait_synced(standin: &KubeStandin, name: &str, rev: &str) {
    let t0 = Instant::now();
    loop {
        let a = app(&standin.url(), standin.argocd_token(), name);
        if a["status"]["sync"]["revision"] == rev
            && a["status"]["operationState"]["phase"] != "Running"
        {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no sync: {a}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kubectl_reads_nodes_labels_them_and_follows_a_rollout() {
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
    // The Running window (150 ms) can be missed by a polling client on a
    // loaded machine; the operation itself is recorded either way.
    let a = app(
        &standin.url(),
        standin.argocd_token(),
        "archive-staging-rke2-swh",
    );
    assert_eq!(
        a["status"]["operationState"]["syncResult"]["revision"],
        rev.as_str(),
        "{a}"
    );
    eprintln!("saw OutOfSync or Running while polling: {saw_out_of_sync_or_running}");
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
    // kubectl must see the new revision's rollout, not the one before it
    // (on a loaded machine the stand-in syncs the push a little later).
    let t0 = Instant::now();
    loop {
        let a = app(
            &standin.url(),
            standin.argocd_token(),
            "archive-staging-rke2-swh",
        );
        if a["status"]["sync"]["revision"] == rev2.as_str() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no sync: {a}");
        std::thread::sleep(Duration::from_millis(20));
    }
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

const W1: &str = "rancher-node-staging-rke2-worker1";
const W2: &str = "rancher-node-staging-rke2-worker2";
const W3: &str = "rancher-node-staging-rke2-worker3";

#[test]
fn kubectl_selects_nodes_by_label() {
    let bed = Bed::new();
    let sel = |s: &str| names(&bed.json(&["get", "nodes", "-l", s, "-o", "json"]));
    assert_eq!(sel("swh/loader=true"), [W1, W2]);
    assert_eq!(sel("swh/loader==true,swh/rpc"), [W1, W2]);
    assert_eq!(sel("!swh/loader"), [W3]);
    assert_eq!(sel("swh/loader!=true"), [W3]);
    assert_eq!(sel("swh/loader in (false,true)"), [W1, W2]);
    assert_eq!(sel("swh/loader notin (true)"), [W3]);
    assert_eq!(sel(&format!("kubernetes.io/hostname={W3}")), [W3]);
    assert!(sel("swh/loader=false").is_empty());
    // Production's nodes are another cluster (context).
    let prod = names(&bed.json(&[
        "--context",
        "archive-production-rke2",
        "get",
        "nodes",
        "-l",
        "swh/loader=true",
        "-o",
        "json",
    ]));
    assert_eq!(prod, ["rancher-node-metal01", "rancher-node-metal02"]);
    // -o name, and the selector reached the server as labelSelector.
    assert_eq!(
        bed.ok(&["get", "nodes", "-l", "!swh/loader", "-o", "name"])
            .trim(),
        format!("node/{W3}")
    );
    assert!(bed
        .standin
        .requests()
        .iter()
        .any(|r| r.contains("/api/v1/nodes?") && r.contains("labelSelector=!swh/loader")));
    // A malformed selector is refused, naming it (by kubectl or the server).
    let o = bed.run(&["get", "nodes", "-l", "swh/loader in true", "-o", "json"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("swh/loader"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn kubectl_labels_overwrites_and_removes_node_labels() {
    let bed = Bed::new();
    let labels = |n: &str| bed.standin.node_labels(n).unwrap();
    // Without --overwrite, kubectl refuses to change a value (after a GET).
    let o = bed.run(&["label", "node", W1, "swh/loader=false"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already has a value"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(labels(W1)["swh/loader"], "true");
    let out = bed.ok(&["label", "--overwrite", "node", W1, "swh/loader=false"]);
    assert!(out.contains(&format!("node/{W1} labeled")), "{out}");
    assert_eq!(labels(W1)["swh/loader"], "false");
    // Removal: KEY-.
    let out = bed.ok(&["label", "node", W1, "swh/loader-", "swh/lister-"]);
    assert!(out.contains(&format!("node/{W1}")), "{out}");
    let l = labels(W1);
    assert!(
        !l.contains_key("swh/loader") && !l.contains_key("swh/lister"),
        "{l:?}"
    );
    assert_eq!(l["swh/rpc"], "true");
    // kubectl sees it too.
    let n = bed.json(&["get", "node", W1, "-o", "json"]);
    assert!(n["metadata"]["labels"].get("swh/loader").is_none(), "{n}");
    // Several nodes by selector at once.
    let out = bed.ok(&["label", "nodes", "-l", "swh/rpc=true", "swh/canary=yes"]);
    assert!(out.contains(W1) && out.contains(W2), "{out}");
    assert_eq!(labels(W2)["swh/canary"], "yes");
    assert!(!labels(W3).contains_key("swh/canary"));
    // kubectl label sends a JSON merge patch.
    assert!(bed
        .standin
        .requests()
        .iter()
        .any(|r| r.starts_with(&format!(
            "PATCH /k8s/clusters/archive-staging-rke2/api/v1/nodes/{W2}"
        ))));
}

#[test]
fn kubectl_patches_nodes_strategic_merge_and_json() {
    let bed = Bed::new();
    let node = || bed.json(&["get", "node", W3, "-o", "json"]);
    let taint_keys = |n: &Value| -> Vec<String> {
        n["spec"]["taints"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t["key"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Strategic merge patch (kubectl's default): maps merge, and taints
    // merge by key.
    let out = bed.ok(&[
        "patch",
        "node",
        W3,
        "-p",
        r#"{"metadata":{"labels":{"swh/loader":"true"}},"spec":{"taints":[{"key":"swh/maintenance","value":"yes","effect":"NoSchedule"}]}}"#,
    ]);
    assert!(out.contains(&format!("node/{W3} patched")), "{out}");
    bed.ok(&[
        "patch",
        "node",
        W3,
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"taints":[{"key":"swh/disk","effect":"NoExecute"}],"unschedulable":true}}"#,
    ]);
    let n = node();
    assert_eq!(n["metadata"]["labels"]["swh/loader"], "true", "{n}");
    assert_eq!(taint_keys(&n), ["swh/maintenance", "swh/disk"], "{n}");
    assert_eq!(n["spec"]["unschedulable"], true);
    // ... and `$patch: delete` removes one taint.
    bed.ok(&[
        "patch",
        "node",
        W3,
        "-p",
        r#"{"spec":{"taints":[{"key":"swh/disk","$patch":"delete"}]}}"#,
    ]);
    assert_eq!(taint_keys(&node()), ["swh/maintenance"]);
    // JSON merge patch: a list is replaced, null removes a key.
    bed.ok(&[
        "patch",
        "node",
        W3,
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"swh/loader":null}},"spec":{"taints":[{"key":"swh/other","effect":"NoSchedule"}],"unschedulable":null}}"#,
    ]);
    let n = node();
    assert!(n["metadata"]["labels"].get("swh/loader").is_none(), "{n}");
    assert_eq!(taint_keys(&n), ["swh/other"]);
    assert!(n["spec"].get("unschedulable").is_none(), "{n}");
    // JSON patch (RFC 6902), with `~1` for the `/` of label keys.
    bed.ok(&[
        "patch",
        "node",
        W3,
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/swh~1lister","value":"true"},{"op":"remove","path":"/spec/taints"}]"#,
    ]);
    let n = node();
    assert_eq!(n["metadata"]["labels"]["swh/lister"], "true", "{n}");
    assert!(n["spec"].get("taints").is_none(), "{n}");
    let rv = n["metadata"]["resourceVersion"].clone();
    // A failing `test` operation changes nothing and fails kubectl.
    let o = bed.run(&[
        "patch",
        "node",
        W3,
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/metadata/labels/swh~1lister","value":"false"},{"op":"add","path":"/metadata/labels/swh~1rpc","value":"true"}]"#,
    ]);
    assert!(!o.status.success());
    let n = node();
    assert!(n["metadata"]["labels"].get("swh/rpc").is_none(), "{n}");
    assert_eq!(n["metadata"]["resourceVersion"], rv);
    // A stale resourceVersion in a patch is a conflict.
    let o = bed.run(&[
        "patch",
        "node",
        W3,
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"resourceVersion":"1","labels":{"swh/rpc":"true"}}}"#,
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Label values must be strings: the server says which field.
    let o = bed.run(&[
        "patch",
        "node",
        W3,
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"swh/rpc":7}}}"#,
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("metadata.labels.swh/rpc"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // One request of each patch type reached the server.
    let reqs = bed.standin.requests();
    assert!(
        reqs.iter().filter(|r| r.starts_with("PATCH ")).count() >= 8,
        "{reqs:?}"
    );
}

#[test]
fn kubectl_rollout_status_on_progressing_stalled_and_complete_rollouts() {
    let bed = Bed::new();
    let status = |extra: &[&str]| {
        let mut args = vec!["-n", "swh", "rollout", "status", "deployment/loader-git"];
        args.extend_from_slice(extra);
        bed.run(&args)
    };
    let text = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // Complete at start.
    let o = status(&["--watch=false"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("successfully rolled out"), "{}", text(&o));

    // Progressing: a held version rolls one replica of two, then waits.
    bed.standin.set_faults(Faults {
        held_versions: vec!["20250900.1".into()],
        ..Faults::default()
    });
    let rev = bed.push("staging", "20250900.1");
    wait_synced(&bed.standin, "archive-staging-rke2-swh", &rev);
    std::thread::sleep(Duration::from_millis(300));
    let o = status(&["--watch=false"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Waiting for deployment \"loader-git\" rollout to finish: 1 out of 2 new replicas have been updated"),
        "{}",
        text(&o)
    );
    let o = status(&["--timeout=1s"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("timed out waiting for the condition"),
        "{}",
        text(&o)
    );
    let a = app(
        &bed.standin.url(),
        bed.standin.argocd_token(),
        "archive-staging-rke2-swh",
    );
    assert_eq!(a["status"]["health"]["status"], "Progressing", "{a}");
    // Released: it completes, and kubectl follows it to the end.
    bed.standin.set_faults(Faults::default());
    let o = status(&["--timeout=20s"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("successfully rolled out"), "{}", text(&o));

    // Stalled: ProgressDeadlineExceeded.
    bed.standin.set_faults(Faults {
        degraded_versions: vec!["20250900.2".into()],
        ..Faults::default()
    });
    let rev = bed.push("staging", "20250900.2");
    wait_synced(&bed.standin, "archive-staging-rke2-swh", &rev);
    let o = status(&["--timeout=20s"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("exceeded its progress deadline"),
        "{}",
        text(&o)
    );
    let d = bed.json(&["-n", "swh", "get", "deployment", "loader-git", "-o", "json"]);
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded", "{d}");
}

#[test]
fn kubectl_get_watch_follows_deployments_and_labelled_nodes() {
    let bed = Bed::new();
    // Deployments: the list first (ADDED), then the rollout (MODIFIED).
    let w = bed.watch(&["-n", "swh", "get", "deployments"]);
    bed.wait_for_watch("/deployments?");
    let rev = bed.push("staging", "20251000.1");
    wait_synced(&bed.standin, "archive-staging-rke2-swh", &rev);
    let t0 = Instant::now();
    while bed
        .ok(&[
            "-n",
            "swh",
            "rollout",
            "status",
            "deployment/loader-git",
            "--watch=false",
        ])
        .contains("Waiting")
    {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let events = w.stop(Duration::ZERO);
    let of = |name: &str, t: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["type"] == t && e["object"]["metadata"]["name"] == name)
            .collect()
    };
    for d in ["loader-git", "lister", "storage"] {
        assert_eq!(of(d, "ADDED").len(), 1, "{d}: {events:?}");
    }
    let modified = of("loader-git", "MODIFIED");
    assert!(
        modified
            .iter()
            .any(|e| e["object"]["metadata"]["generation"] == 2
                && e["object"]["status"]["updatedReplicas"] == 2
                && e["object"]["status"]["observedGeneration"] == 2),
        "{modified:?}"
    );
    // Resource versions only grow along the watch.
    let rvs: Vec<u64> = modified
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // Nodes with a selector: a node entering it is ADDED, leaving DELETED.
    let w = bed.watch(&["get", "nodes", "-l", "swh/loader=true"]);
    bed.wait_for_watch("/nodes?");
    bed.ok(&["label", "node", W3, "swh/loader=true"]);
    bed.ok(&["label", "node", W1, "swh/loader-"]);
    std::thread::sleep(Duration::from_millis(800));
    let events = w.stop(Duration::ZERO);
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> =
        [("ADDED", W1), ("ADDED", W2), ("ADDED", W3), ("DELETED", W1)]
            .iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect();
    assert_eq!(seen, want);
    // The watch is bounded by the client's timeout too.
    let t0 = Instant::now();
    let o = bed.run(&[
        "get",
        "nodes",
        "--watch",
        "-o",
        "name",
        "--request-timeout",
        "2s",
    ]);
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("node/{W1}")));
}

#[test]
fn kubectl_reads_argocd_applications() {
    let bed = Bed::new();
    let list = bed.json(&[
        "get",
        "applications.argoproj.io",
        "-n",
        "argocd",
        "-o",
        "json",
    ]);
    assert_eq!(
        names(&list),
        [
            "archive-production-rke2-swh-cassandra",
            "archive-staging-rke2-swh"
        ]
    );
    let staging = &list["items"][1];
    assert_eq!(staging["kind"], "Application", "{staging}");
    assert_eq!(staging["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(staging["spec"]["source"]["targetRevision"], "staging");
    assert_eq!(staging["status"]["sync"]["status"], "Synced");
    assert_eq!(staging["status"]["health"]["status"], "Healthy");
    // All namespaces, the short name, and one object by name.
    assert_eq!(
        names(&bed.json(&["get", "applications.argoproj.io", "-A", "-o", "json"])).len(),
        2
    );
    let one = bed.json(&[
        "-n",
        "argocd",
        "get",
        "app",
        "archive-staging-rke2-swh",
        "-o",
        "json",
    ]);
    assert_eq!(one["metadata"]["name"], "archive-staging-rke2-swh");
    // Another namespace holds none; an unknown name is NotFound.
    assert!(names(&bed.json(&["get", "applications.argoproj.io", "-o", "json"])).is_empty());
    let o = bed.run(&["-n", "argocd", "get", "applications.argoproj.io", "nope"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("\"nope\" not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A sync shows through kubectl: the revision moves.
    let rev = bed.push("staging", "20251100.1");
    wait_synced(&bed.standin, "archive-staging-rke2-swh", &rev);
    let one = bed.json(&[
        "-n",
        "argocd",
        "get",
        "applications.argoproj.io",
        "archive-staging-rke2-swh",
        "-o",
        "json",
    ]);
    assert_eq!(one["status"]["sync"]["revision"], rev.as_str(), "{one}");
    // kubectl found the resource through the CRD's discovery.
    assert!(bed.standin.requests().iter().any(|r| r
        .split('?')
        .next()
        .unwrap()
        .ends_with("/apis/argoproj.io/v1alpha1")));
}

/// kubectl's major.minor, e.g. (1, 32).
fn kubectl_minor() -> (u32, u32) {
    let o = Command::new(kubectl_path())
        .args(["version", "--client", "-o", "json"])
        .output()
        .expect("kubectl version");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let num = |k: &str| {
        v["clientVersion"][k]
            .as_str()
            .and_then(|s| s.trim_end_matches('+').parse().ok())
            .unwrap_or(0)
    };
    (num("major"), num("minor"))
}

#[test]
fn kubectl_finds_the_toolbox_pod_and_execs_the_db_scripts() {
    let bed = Bed::new();
    let pods = bed.json(&[
        "get",
        "pods",
        "-n",
        "swh",
        "-l",
        "app=swh-toolbox",
        "-o",
        "json",
    ]);
    assert_eq!(names(&pods), ["swh-toolbox-7d9c6b5f4-x2x9q"]);
    assert_eq!(pods["items"][0]["status"]["phase"], "Running");
    let table = bed.ok(&["get", "pods", "-n", "swh"]);
    assert!(table.contains("swh-toolbox-7d9c6b5f4-x2x9q"), "{table}");
    assert!(
        names(&bed.json(&["get", "pods", "-n", "swh", "-l", "app=other", "-o", "json"])).is_empty()
    );
    // Production's toolbox is in its own cluster and namespace.
    let prod = bed.json(&[
        "--context",
        "archive-production-rke2",
        "get",
        "pods",
        "-n",
        "swh-cassandra",
        "-l",
        "app=swh-toolbox",
        "-o",
        "json",
    ]);
    assert_eq!(names(&prod), ["swh-toolbox-5c8f7d6b9-k4m2p"]);

    // `kubectl exec` speaks the WebSocket protocol from kubectl 1.30 on
    // (Debian 12's kubectl 1.20 speaks only SPDY, which the stand-in does
    // not serve: there the exec endpoint is checked by swh-deploy's own
    // client alone, in crates/cli/tests/migrate.rs).
    if kubectl_minor() < (1, 30) {
        eprintln!("kubectl < 1.30 execs over SPDY: exec not checked with kubectl");
        return;
    }
    bed.standin.set_faults(Faults {
        pending_migrations: vec!["storage".into()],
        ..Faults::default()
    });
    let exec = |script: &str| {
        bed.run(&[
            "exec",
            "-n",
            "swh",
            "swh-toolbox-7d9c6b5f4-x2x9q",
            "--",
            script,
        ])
    };
    let o = exec("check-storage-db-version.sh");
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("migration needed"));
    let o = exec("migrate-storage-db-version.sh");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("migrating from version 193 to 194"));
    let o = exec("check-storage-db-version.sh");
    assert_eq!(o.status.code(), Some(0));
    let o = exec("no-such-command");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("executable file not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Pushes `path` with `text` (or removes it when `None`) on `branch` of the
/// charts remote; the new head.
fn push_file(
    remotes: &GitRemotes,
    work: &Path,
    branch: &str,
    path: &str,
    text: Option<&str>,
) -> String {
    let clone = work.join(format!(
        "push-file-{}",
        swh_deploy_testbed::kube::random_token()
    ));
    let git = |dir: &Path, args: &[&str]| -> String {
        let o = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    std::fs::create_dir_all(work).unwrap();
    git(
        work,
        &[
            "clone",
            "-q",
            "-b",
            branch,
            &remotes.charts.url,
            clone.to_str().unwrap(),
        ],
    );
    let f = clone.join(path);
    match text {
        Some(t) => {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, t).unwrap();
            git(&clone, &["add", path]);
        }
        None => {
            git(&clone, &["rm", "-q", path]);
        }
    }
    git(&clone, &["commit", "-qm", path]);
    git(&clone, &["push", "-q", "origin", branch]);
    git(&clone, &["rev-parse", "HEAD"])
}

#[test]
fn disabled_worker_deployments_are_scaled_down_by_the_sync_and_back() {
    let bed = Bed::new();
    assert_eq!(bed.worker_replicas(), (2, 2));
    bed.push_synced(
        "swh/values/staging/default.yaml",
        Some("loaders:\n  enabled: true\n  deployments:\n    git:\n      enabled: false\n"),
    );
    assert_eq!(bed.worker_replicas(), (0, 2));
    // kubectl sees the rollout of 0 replicas complete.
    let o = bed.ok(&[
        "rollout",
        "status",
        "deployment/loader-git",
        "-n",
        "swh",
        "--timeout=10s",
    ]);
    assert!(o.contains("successfully rolled out"), "{o}");
    // A whole group off, in the environment-independent file.
    bed.push_synced(
        "swh/values/default.yaml",
        Some("listers:\n  enabled: false\n"),
    );
    assert_eq!(bed.worker_replicas(), (0, 0));
    // Production (another branch) is untouched.
    let prod = bed.json(&[
        "--context",
        "archive-production-rke2",
        "get",
        "deployment",
        "loader-git",
        "-n",
        "swh-cassandra",
        "-o",
        "json",
    ]);
    assert_eq!(prod["spec"]["replicas"], 2);
    // Turned on again: the replicas come back.
    bed.push_staging("swh/values/default.yaml", None);
    bed.push_synced("swh/values/staging/default.yaml", None);
    assert_eq!(bed.worker_replicas(), (2, 2));
}

/// Deployments' container images are the ones the synced revision sets
/// (`swh_<name>_image:swh_<name>_image_version`), as `kubectl get deploy -o
/// json` shows them; an application whose automated sync is off
/// (`Faults::unsynced_applications`) keeps its images until turned on.
#[test]
fn kubectl_sees_the_images_the_synced_revision_sets() {
    let bed = Bed::new();
    let image = |name: &str| {
        let d = bed.json(&["get", "deploy", name, "-n", "swh", "-o", "json"]);
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let registry = "container-registry.softwareheritage.org/swh/infra/swh-apps";
    // At start: the branch head's versions (the assets' file).
    assert_eq!(
        image("loader-git"),
        format!("{registry}/loader_git:20250117.1")
    );
    assert_eq!(image("storage"), format!("{registry}/storage:20250113.1"));
    let work = bed.tmp.path().join("work");
    let rev = push_version(&bed.remotes, &work, "staging", "20250900.1");
    wait_synced(&bed.standin, "archive-staging-rke2-swh", &rev);
    assert_eq!(
        image("loader-git"),
        format!("{registry}/loader_git:20250900.1")
    );
    assert_eq!(image("storage"), format!("{registry}/storage:20250113.1"));
    // Sync off: the branch moves, the images stay, the application is
    // OutOfSync.
    bed.standin.set_faults(Faults {
        unsynced_applications: vec!["archive-staging-rke2-swh".into()],
        ..Faults::default()
    });
    let rev2 = push_version(&bed.remotes, &work, "staging", "20250900.2");
    let t0 = Instant::now();
    loop {
        let a = app(
            &bed.standin.url(),
            bed.standin.argocd_token(),
            "archive-staging-rke2-swh",
        );
        if a["status"]["sync"]["status"] == "OutOfSync" {
            assert_eq!(a["status"]["sync"]["revision"], rev.as_str(), "{a}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never OutOfSync: {a}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        image("loader-git"),
        format!("{registry}/loader_git:20250900.1")
    );
    // Sync on again: it catches up.
    bed.standin.set_faults(Faults::default());
    wait_synced(&bed.standin, "archive-staging-rke2-swh", &rev2);
    assert_eq!(
        image("loader-git"),
        format!("{registry}/loader_git:20250900.2")
    );
}

#[test]
fn a_worker_group_without_enabled_true_is_not_deployed_as_in_swh_charts() {
    // swh-charts: `{{ if .Values.listers.enabled -}}` around the group's
    // deployments, and `enabled: false` in the chart's swh/values.yaml: a
    // group the values mention without `enabled: true` renders nothing.
    let bed = Bed::new();
    assert_eq!(bed.worker_replicas(), (2, 2));
    bed.push_synced(
        "swh/values/default.yaml",
        Some("listers:\n  sentry:\n    enabled: true\nloaders:\n  enabled: true\n"),
    );
    assert_eq!(bed.worker_replicas(), (2, 0));
    // The chart's defaults say off; the environment's file turns it on.
    bed.push_staging(
        "swh/values.yaml",
        Some("namespace: swh\nlisters:\n  enabled: false\n"),
    );
    bed.push_synced(
        "swh/values/staging/default.yaml",
        Some("listers:\n  enabled: true\n"),
    );
    assert_eq!(bed.worker_replicas(), (2, 2));
}
