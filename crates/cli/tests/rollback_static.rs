//! `swh-deploy rollback RUN` through the real binary, on a test bed of real
//! systemd hosts (systemd-nspawn) with the real local apt repository: an
//! upgrade 1.0 -> 1.1, a rollback refused while the repository no longer
//! offers 1.0 (nothing changed), then the rollback to 1.0 once it does,
//! checked ON the hosts (versions, restarted units) and in the journal.
//!
//! Needs root (network namespaces, systemd-nspawn): skipped otherwise,
//! a failure under CI (`common::skip`).

mod common;

use common::{
    install, loader_service, logged, need_root, site_head, storage_service, systemd_hosts,
    with_journal, StaticBed as Bed, V10, V11,
};
use std::process::Output;
use swh_deploy_journal::{Journal, RunStatus};
use swh_deploy_testbed::grafana::GrafanaStandin;

impl Bed {
    fn versions(&self, host: &str) -> String {
        self.sh(
            host,
            "dpkg-query -W -f='${Version} ' python3-swh.storage python3-swh.loader.git",
        )
    }

    fn swh_deploy_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        logged(args, self.command(args).envs(env.iter().copied()))
    }
}

#[test]
fn upgrade_then_rollback_refused_without_the_old_version_then_done() {
    if !need_root() {
        return;
    }
    let tb = systemd_hosts(2, false);
    let bed = Bed::new(tb);
    let site = format!(
        "{}{}{}",
        site_head(Some("rollback-static-test"), &bed.tb, "host[1-2]", None),
        storage_service("30s"),
        loader_service("30s")
    );
    std::fs::write(bed.site(), site).unwrap();
    let hosts = ["host1", "host2"];
    install(
        &bed.tb,
        &[("host1", V10), ("host2", V10)],
        &["python3-swh.storage", "python3-swh.loader.git"],
    );
    for h in hosts {
        assert_eq!(bed.versions(h), format!("{V10} {V10}"), "1.0 on {h}");
    }

    // The upgrade, run 1.
    let out = bed.swh_deploy(&["upgrade", "-w", "host[1-2]", "--batch", "1"]);
    assert_eq!(out.status.code(), Some(0));
    for h in hosts {
        assert_eq!(bed.versions(h), format!("{V11} {V11}"), "1.1 on {h}");
    }

    // The dry run shows the versions to put back and the typed command.
    let out = bed.swh_deploy(&["rollback", "1", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains(&format!(
            "host1: python3-swh.loader.git={V10} python3-swh.storage={V10}"
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "--allow-downgrades install 'python3-swh.loader.git={V10}' 'python3-swh.storage={V10}'"
        )),
        "{plan}"
    );

    // The repository no longer offers 1.0: refused, nothing changed, no
    // rollback run recorded.
    bed.tb.publish(&[V11]).unwrap();
    let pids: Vec<String> = hosts.iter().map(|h| bed.main_pids(h)).collect();
    let out = bed.swh_deploy(&["rollback", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rollback of run 1 refused, nothing was changed")
            && err.contains(&format!(
                "python3-swh.storage {V10} (to put back on host[1-2]) is not in the repository seen by host1 (it offers: {V11})"
            )),
        "{err}"
    );
    for (h, p) in hosts.iter().zip(&pids) {
        assert_eq!(bed.versions(h), format!("{V11} {V11}"), "still 1.1 on {h}");
        assert_eq!(&bed.main_pids(h), p, "{h} not restarted");
    }
    assert_eq!(
        Journal::open(&bed.journal())
            .unwrap()
            .runs(10)
            .unwrap()
            .len(),
        1
    );

    // 1.0 is offered again: the rollback runs, in the upgrade's batches.
    bed.tb.publish(&[V10, V11]).unwrap();
    let grafana = GrafanaStandin::start("grafana-static-token").unwrap();
    let out = bed.swh_deploy_env(
        &["rollback", "1"],
        &[
            ("SWH_DEPLOY_GRAFANA_URL", grafana.url()),
            ("SWH_DEPLOY_GRAFANA_TOKEN", grafana.token()),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("python3-swh.storage {V11} -> {V10}: host[1-2]")),
        "{summary}"
    );
    for (h, p) in hosts.iter().zip(&pids) {
        assert_eq!(
            bed.versions(h),
            format!("{V10} {V10}"),
            "back to 1.0 on {h}"
        );
        assert_ne!(&bed.main_pids(h), p, "{h}'s units restarted");
        assert_eq!(
            bed.sh(h, "systemctl is-active gunicorn-swh-storage"),
            "active"
        );
    }
    // One Grafana annotation: the run's environment and services.
    let r = grafana.requests();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0].body["tags"],
        serde_json::json!(["deployment", "staging", "loader-git", "storage"])
    );
    let text = r[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("rollback of run 1 (run 2: succeeded): ")
            && text.contains(&format!("python3-swh.storage {V11} -> {V10} on host[1-2]")),
        "{text}"
    );
    let journal = Journal::open(&bed.journal()).unwrap();
    let runs = journal.runs(10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].mode, "rollback");
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[0].parameters["rollback_of"], 1);
    let details = journal.run_details(runs[0].id).unwrap();
    let install: Vec<&str> = details
        .steps
        .iter()
        .filter(|s| s.name == "install-pinned")
        .map(|s| s.hosts.as_str())
        .collect();
    assert_eq!(install, ["host1", "host2"], "one install step per batch");
    assert_eq!(
        details.steps.iter().filter(|s| s.name == "health").count(),
        2,
        "a health gate per batch"
    );
}

/// Bad input needs no host: an unknown run and a run that is not an
/// upgrade are refused with a clear message, exit 1.
#[test]
fn rollback_refuses_an_unknown_run_and_a_run_that_is_not_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let run = |args: &[&str]| with_journal(&journal, args).output().unwrap();
    let o = run(&["rollback", "7"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("run 7:") && err.contains("nothing was changed"),
        "{err}"
    );
    // A run of another command (here `chart rollback`'s kind of record).
    let mut j = Journal::open(&journal).unwrap();
    let id = j
        .start_run(&swh_deploy_journal::NewRun {
            command_line: vec!["swh-deploy".into(), "app".into(), "build".into()],
            mode: "app build".into(),
            parameters: serde_json::json!({}),
        })
        .unwrap();
    drop(j);
    let o = run(&["rollback", &id.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "run {id} is not an upgrade run: only the package versions of an upgrade can be rolled back"
        )),
        "{err}"
    );
}
