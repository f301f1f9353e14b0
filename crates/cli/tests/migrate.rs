//! `swh-deploy cluster migrate ENV SERVICE` through the binary, against
//! the test bed's Kubernetes STAND-IN (`swh_deploy_testbed::kube`): the
//! toolbox pod found by label, the database scripts run in it over the
//! WebSocket exec protocol (simulated by the stand-in), the journal and
//! the Grafana annotation (its stand-in).

mod common;

use common::ArgoBed as Bed;
use std::process::Output;
use swh_deploy_journal::RunStatus;
use swh_deploy_testbed::grafana::GrafanaStandin;
use swh_deploy_testbed::kube::Faults;

const STAGING_TOOLBOX: &str = "swh-toolbox-7d9c6b5f4-x2x9q";

impl Bed {
    fn new() -> Bed {
        Bed::start("migrate-test")
    }

    fn pending(&self, svc: &str) {
        self.standin.set_faults(Faults {
            pending_migrations: vec![svc.into()],
            ..Faults::default()
        });
    }

    fn exec_requests(&self) -> Vec<String> {
        self.standin
            .requests()
            .into_iter()
            .filter(|r| r.contains("/exec"))
            .collect()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn up_to_date_runs_only_the_check_and_journals_it() {
    let bed = Bed::new();
    let o = bed.run(&["cluster", "migrate", "staging", "storage"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "toolbox pod: {STAGING_TOOLBOX} (namespace swh, context archive-staging-rke2)"
        )),
        "{text}"
    );
    assert!(
        text.contains("$ check-storage-db-version.sh   # exit 0\n  swh.storage: database version 194, up to date"),
        "{text}"
    );
    assert!(
        text.contains("the database is up to date: nothing to migrate"),
        "{text}"
    );
    // The pod was found by label in the environment's namespace, through
    // the environment's cluster; one exec, of the check only.
    let reqs = bed.standin.requests();
    assert!(
        reqs.iter().any(|r| r
            == "GET /k8s/clusters/archive-staging-rke2/api/v1/namespaces/swh/pods?labelSelector=app=swh-toolbox"),
        "{reqs:?}"
    );
    let execs = bed.exec_requests();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert!(
        execs[0].starts_with(&format!(
            "GET /k8s/clusters/archive-staging-rke2/api/v1/namespaces/swh/pods/{STAGING_TOOLBOX}/exec?"
        )) && execs[0].contains("command=check-storage-db-version.sh"),
        "{execs:?}"
    );
    let j = bed.journal();
    let runs = j.runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].mode, "cluster migrate");
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    let d = j.run_details(runs[0].id).unwrap();
    let steps: Vec<&str> = d.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["check-storage-db-version.sh"]);
    assert_eq!(d.results.len(), 1);
    assert_eq!(d.results[0].host, format!("swh/{STAGING_TOOLBOX}"));
    assert_eq!(d.results[0].rc, Some(0));
    assert!(d.results[0].stdout.contains("up to date"));
}

#[test]
fn a_needed_migration_is_run_checked_again_journaled_and_annotated() {
    let bed = Bed::new();
    bed.pending("storage");
    let grafana = GrafanaStandin::start("grafana-migrate-token-77a1").unwrap();
    let env = [
        ("SWH_DEPLOY_GRAFANA_URL", grafana.url()),
        ("SWH_DEPLOY_GRAFANA_TOKEN", grafana.token()),
    ];

    // A dry run only checks: nothing migrated, nothing journaled.
    let o = bed.run_env(
        &["cluster", "migrate", "production", "storage", "--dry-run"],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).contains("$ check-storage-db-version.sh   # exit 2\n  swh.storage: database version 193, code version 194"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("a migration is needed (dry run: not run)"));
    assert_eq!(bed.standin.faults().pending_migrations, ["storage"]);
    assert!(
        !bed.root.join("journal.sqlite").exists() || bed.journal().runs(10).unwrap().is_empty()
    );

    // Without --yes and without a terminal: refused, nothing migrated.
    let o = bed.run_env(&["cluster", "migrate", "production", "storage"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("a migration is needed (migrate-storage-db-version.sh in swh-toolbox-5c8f7d6b9-k4m2p) and was not confirmed: re-run with --yes"),
        "{}",
        err(&o)
    );
    assert_eq!(bed.standin.faults().pending_migrations, ["storage"]);
    assert!(grafana.requests().is_empty());

    let o = bed.run_env(
        &["cluster", "migrate", "production", "storage", "--yes"],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    let check = text
        .find("$ check-storage-db-version.sh   # exit 2")
        .unwrap();
    let migrate = text
        .find("$ migrate-storage-db-version.sh   # exit 0\n  swh.storage: migrating from version 193 to 194")
        .unwrap_or_else(|| panic!("{text}"));
    let again = text
        .rfind("$ check-storage-db-version.sh   # exit 0")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(check < migrate && migrate < again, "{text}");
    assert!(
        text.ends_with("migrated: the database is now up to date\n"),
        "{text}"
    );
    // stderr (not a terminal) says what runs where, for at most how long,
    // after the time elapsed; plain lines only.
    let e = err(&o);
    assert!(!e.contains('\r') && !e.contains('\x1b'), "{e:?}");
    for script in [
        "check-storage-db-version.sh",
        "migrate-storage-db-version.sh",
    ] {
        assert!(
            e.lines().any(|l| l.starts_with('[')
                && l.contains(&format!(
                    "s] running {script} in pod swh-toolbox-5c8f7d6b9-k4m2p (at most "
                ))),
            "{e}"
        );
    }
    assert!(bed.standin.faults().pending_migrations.is_empty());

    let j = bed.journal();
    let runs = j.runs(10).unwrap();
    let run = runs
        .iter()
        .find(|r| r.status == RunStatus::Succeeded)
        .unwrap();
    let d = j.run_details(run.id).unwrap();
    let steps: Vec<&str> = d.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "check-storage-db-version.sh",
            "migrate-storage-db-version.sh",
            "check-storage-db-version.sh"
        ]
    );
    let rcs: Vec<Option<i32>> = d.results.iter().map(|r| r.rc).collect();
    assert_eq!(rcs, [Some(2), Some(0), Some(0)]);
    assert!(d.results[1].stdout.contains("applied 194-add-index.sql"));

    let r = grafana.requests();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0].body["tags"],
        serde_json::json!(["deployment", "production", "storage"])
    );
    assert!(err(&o).contains("deployment") && !err(&o).contains("grafana-migrate-token-77a1"));
}

#[test]
fn a_failing_migration_fails_with_its_exit_and_output() {
    let bed = Bed::new();
    bed.standin.set_faults(Faults {
        pending_migrations: vec!["scheduler".into()],
        failing_migrations: vec!["scheduler".into()],
        ..Faults::default()
    });
    let o = bed.run(&["cluster", "migrate", "staging", "scheduler", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.contains(&format!(
            "swh-deploy cluster: error: migrate-scheduler-db-version.sh in {STAGING_TOOLBOX} exited 1:\n  \
             swh.scheduler: migrating from version 193 to 194\n  \
             ERROR: swh.scheduler: upgrade to 194 failed: canceling statement due to lock timeout"
        )),
        "{e}"
    );
    assert_eq!(bed.standin.faults().pending_migrations, ["scheduler"]);
    let j = bed.journal();
    let runs = j.runs(10).unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    let d = j.run_details(runs[0].id).unwrap();
    assert_eq!(d.results.last().unwrap().rc, Some(1));
    assert!(d.results.last().unwrap().stderr.contains("lock timeout"));
}

#[test]
fn no_toolbox_pod_a_bad_service_and_a_bad_token_are_clear_errors() {
    let bed = Bed::new();
    // A bad service name: refused before anything is asked.
    let o = bed.run(&["cluster", "migrate", "staging", "../storage"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("\"../storage\": not a service name"),
        "{}",
        err(&o)
    );
    assert!(bed.standin.requests().is_empty());

    // No toolbox pod.
    assert!(bed.standin.remove_pod("swh", STAGING_TOOLBOX));
    let o = bed.run(&["cluster", "migrate", "staging", "storage", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("no running toolbox pod (app=swh-toolbox) in namespace swh of context archive-staging-rke2"),
        "{}",
        err(&o)
    );
    assert!(bed.exec_requests().is_empty());

    // A refused token: a 401, never the token itself.
    let kc = bed.root.join("kubeconfig");
    let good = bed.standin.kube_token().to_string();
    let text = std::fs::read_to_string(&kc).unwrap();
    std::fs::write(&kc, text.replace(&good, "wrong-token-3c9f1e")).unwrap();
    let o = bed.run(&["cluster", "migrate", "production", "storage", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("HTTP 401") && e.contains("token refused"), "{e}");
    for secret in [good.as_str(), "wrong-token-3c9f1e"] {
        assert!(!e.contains(secret) && !out(&o).contains(secret), "{e}");
    }
}

#[test]
fn the_exec_itself_refuses_a_bad_token_with_401() {
    // The pod list and the exec are separate requests: a token accepted
    // for the list must still be checked by the exec endpoint.
    use swh_deploy_cluster::kubeconfig::KubeConfig;
    let bed = Bed::new();
    let kc = KubeConfig::load_paths(&[bed.root.join("kubeconfig")]).unwrap();
    let mut ctx = kc.context(Some("archive-staging-rke2")).unwrap();
    ctx.token = Some(swh_deploy_cluster::Secret::new("not-the-token-9d2"));
    let client =
        swh_deploy_cluster::exec::ExecClient::new(&ctx, std::time::Duration::from_secs(10))
            .unwrap();
    let e = client
        .exec("swh", STAGING_TOOLBOX, &["check-storage-db-version.sh"])
        .unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("HTTP 401"), "{shown}");
    assert!(!shown.contains("not-the-token-9d2"), "{shown}");
    // With the right token: an unknown command is the API server's error.
    let ctx = kc.context(Some("archive-staging-rke2")).unwrap();
    let client =
        swh_deploy_cluster::exec::ExecClient::new(&ctx, std::time::Duration::from_secs(10))
            .unwrap();
    let e = client
        .exec("swh", STAGING_TOOLBOX, &["rm", "-rf", "/"])
        .unwrap_err();
    assert!(e.to_string().contains("executable file not found"), "{e}");
    let ok = client
        .exec("swh", STAGING_TOOLBOX, &["check-storage-db-version.sh"])
        .unwrap();
    assert_eq!(ok.exit, 0);
}
