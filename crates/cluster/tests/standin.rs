//! The library against the test bed's Kubernetes/Argo CD STAND-IN over
//! HTTPS (kubeconfig CA) and loopback HTTP (Argo CD): what `swh-deploy ship`
//! calls (`wait_live`, `promote_gate`) and the CA check.

use std::collections::BTreeMap;
use std::time::Duration;
use swh_deploy_cluster::argocd::ArgoCd;
use swh_deploy_cluster::kube::Kube;
use swh_deploy_cluster::kubeconfig::KubeConfig;
use swh_deploy_cluster::rollout::RolloutState;
use swh_deploy_cluster::wait::{wait_live, WaitOutcome, WaitTarget};
use swh_deploy_cluster::{Error, Secret};
use swh_deploy_testbed::components::GitRemotes;
use swh_deploy_testbed::kube::{push_chart_version, Faults, KubeStandin, StandinOptions};

#[test]
fn https_with_the_kubeconfig_ca_and_a_rollout_seen_through_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let remotes = GitRemotes::create(&tmp.path().join("remotes")).unwrap();
    let standin = KubeStandin::start(StandinOptions::swh(&remotes.charts.path)).unwrap();
    let kc_path = tmp.path().join("kubeconfig");
    standin
        .write_kubeconfig(
            &kc_path,
            &["archive-staging-rke2", "archive-production-rke2"],
        )
        .unwrap();
    let kc = KubeConfig::load_paths(std::slice::from_ref(&kc_path)).unwrap();
    let ctx = kc.context(Some("archive-staging-rke2")).unwrap();
    assert!(
        ctx.server.starts_with("https://127.0.0.1:"),
        "{}",
        ctx.server
    );
    assert!(ctx.ca_pem.is_some());
    let kube = Kube::from_context(&ctx).unwrap();

    // Nodes of this context's cluster only; labels set by merge patch.
    let nodes = kube.nodes().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rancher-node-staging-rke2-worker1",
            "rancher-node-staging-rke2-worker2",
            "rancher-node-staging-rke2-worker3"
        ]
    );
    let labels: BTreeMap<String, String> = [("swh/loader".to_string(), "true".to_string())].into();
    let n = kube
        .set_node_labels("rancher-node-staging-rke2-worker3", &labels)
        .unwrap();
    assert_eq!(n.labels.get("swh/loader").map(String::as_str), Some("true"));
    assert!(
        kube.set_node_labels("rancher-node-metal01", &labels)
            .is_err(),
        "other cluster's node"
    );
    let bad: BTreeMap<String, String> = [("swh/x y".to_string(), "true".to_string())].into();
    assert!(matches!(
        kube.set_node_labels("rancher-node-staging-rke2-worker3", &bad),
        Err(Error::Input(_))
    ));

    // The stand-in takes the strategic merge patch kubectl may send, and
    // refuses a content type the API server would refuse.
    let client = ctx.client().unwrap();
    let body =
        serde_json::json!({"metadata": {"labels": {"swh/lister": "true", "swh/loader": null}}});
    let v = client
        .patch(
            "/api/v1/nodes/rancher-node-staging-rke2-worker3",
            "application/strategic-merge-patch+json",
            &body,
        )
        .unwrap();
    assert_eq!(v["metadata"]["labels"]["swh/lister"], "true");
    assert!(
        v["metadata"]["labels"].get("swh/loader").is_none(),
        "null removes a label"
    );
    let e = client
        .patch(
            "/api/v1/nodes/rancher-node-staging-rke2-worker3",
            "application/json",
            &body,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Status { status: 415, .. }), "{e}");

    // A push: the deployment goes through "waiting" states to complete,
    // as kubectl's rules read them.
    push_chart_version(
        &remotes.charts.url,
        &tmp.path().join("s"),
        "staging",
        "swh_loader_git",
        "20250600.1",
    )
    .unwrap();
    let mut seen_waiting = false;
    let t0 = std::time::Instant::now();
    loop {
        let d = kube.deployment("swh", "loader-git").unwrap();
        match d.rollout() {
            RolloutState::Waiting(_) => seen_waiting = true,
            RolloutState::Complete if seen_waiting => break,
            RolloutState::Complete => {}
            RolloutState::Failed(m) => panic!("{m}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rollout never completed: {d:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // A CA that did not sign the server's certificate is refused.
    let other = KubeStandin::start(StandinOptions::swh(&remotes.charts.path)).unwrap();
    let mut wrong = ctx.clone();
    wrong.ca_pem = Some(other.ca_pem().as_bytes().to_vec());
    let e = Kube::from_context(&wrong).unwrap().nodes().unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    // A wrong token gets 401.
    let mut wrong = ctx.clone();
    wrong.token = Some(Secret::new("nope"));
    let e = Kube::from_context(&wrong).unwrap().nodes().unwrap_err();
    assert!(matches!(e, Error::Status { status: 401, .. }), "{e}");
}

#[test]
fn wait_live_reports_progress_then_live_or_the_failing_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let remotes = GitRemotes::create(&tmp.path().join("remotes")).unwrap();
    let standin = KubeStandin::start(StandinOptions::swh(&remotes.charts.path)).unwrap();
    let kc_path = tmp.path().join("kubeconfig");
    standin
        .write_kubeconfig(&kc_path, &["archive-production-rke2"])
        .unwrap();
    let kc = KubeConfig::load_paths(std::slice::from_ref(&kc_path)).unwrap();
    let kube = Kube::from_context(&kc.context(None).unwrap()).unwrap();
    let argocd = ArgoCd::new(&standin.url(), Secret::new(standin.argocd_token())).unwrap();

    let rev = push_chart_version(
        &remotes.charts.url,
        &tmp.path().join("s"),
        "production",
        "swh_loader_git",
        "20250700.1",
    )
    .unwrap();
    let target = WaitTarget {
        argocd: &argocd,
        application: "archive-production-rke2-swh-cassandra",
        revision: &rev,
        kube: Some((&kube, "swh-cassandra")),
    };
    let mut lines = Vec::new();
    let out = wait_live(
        &target,
        Duration::from_secs(20),
        Duration::from_millis(20),
        &mut |l| lines.push(l.to_string()),
    )
    .unwrap();
    match out {
        WaitOutcome::Live { app, deployments } => {
            assert!(app.is_live_at(&rev));
            assert_eq!(deployments, 3);
        }
        o => panic!("{o:?}\n{lines:#?}"),
    }
    assert!(!lines.is_empty());

    standin.set_faults(Faults {
        degraded_revisions: vec![],
        degraded_versions: vec!["20250700.2".into()],
        ..Faults::default()
    });
    let rev2 = push_chart_version(
        &remotes.charts.url,
        &tmp.path().join("s"),
        "production",
        "swh_loader_git",
        "20250700.2",
    )
    .unwrap();
    let target = WaitTarget {
        revision: &rev2,
        ..target
    };
    match wait_live(
        &target,
        Duration::from_secs(20),
        Duration::from_millis(20),
        &mut |_| {},
    )
    .unwrap()
    {
        WaitOutcome::Failed(why) => assert!(
            why.contains("ProgressDeadlineExceeded") && why.contains("storage"),
            "{why}"
        ),
        o => panic!("{o:?}"),
    }
    // The old revision is not live any more: a short wait times out.
    match wait_live(
        &WaitTarget {
            revision: &rev,
            ..target
        },
        Duration::from_millis(200),
        Duration::from_millis(50),
        &mut |_| {},
    )
    .unwrap()
    {
        WaitOutcome::TimedOut(last) => assert!(last.contains("waiting for"), "{last}"),
        o => panic!("{o:?}"),
    }
}
