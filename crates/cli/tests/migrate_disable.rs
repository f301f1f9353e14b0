//! The elastic long-standing mode, `swh-deploy cluster migrate ENV SERVICE
//! --disable GROUP[,GROUP...]`, and its `recover`, through the binary:
//! the test bed's real bare git remote of swh-charts and the Kubernetes/
//! Argo CD STAND-IN (`swh_deploy_testbed::kube`), whose sync scales the
//! deployments of worker groups turned off in the synced values to 0.

mod common;

use common::ArgoBed as Bed;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_journal::RunStatus;
use swh_deploy_testbed::kube::Faults;

const FILE: &str = "swh/values/staging/default.yaml";

impl Bed {
    fn new() -> Bed {
        Bed::start("migrate-disable-test")
    }

    /// `path` at `rev` of the charts remote, byte for byte.
    fn file(&self, rev: &str, path: &str) -> Vec<u8> {
        let o = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remotes.charts.path)
            .args(["cat-file", "blob", &format!("{rev}:{path}")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{rev}:{path}");
        o.stdout
    }

    fn log(&self, range: &str) -> Vec<String> {
        let o = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remotes.charts.path)
            .args(["log", "--format=%s", range])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect()
    }

    /// `spec.replicas` of the staging deployments `names`.
    fn replicas(&self, names: &[&str]) -> Vec<i64> {
        use swh_deploy_cluster::kube::Kube;
        use swh_deploy_cluster::kubeconfig::KubeConfig;
        let kc = KubeConfig::load_paths(&[self.root.join("kubeconfig")]).unwrap();
        let kube = Kube::from_context(&kc.context(Some("archive-staging-rke2")).unwrap()).unwrap();
        names
            .iter()
            .map(|n| kube.deployment("swh", n).unwrap().spec_replicas)
            .collect()
    }

    /// Waits (10 s at most) until staging's deployments have `want`
    /// replicas.
    fn wait_replicas(&self, names: &[&str], want: &[i64]) {
        let t0 = Instant::now();
        while self.replicas(names) != want {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{names:?}: {:?}, want {want:?}",
                self.replicas(names)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const FAST: [&str; 4] = ["--interval", "100ms", "--timeout", "60s"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["cluster", "migrate", "staging", "storage"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&FAST);
    a
}

#[test]
fn groups_are_scaled_down_for_the_migration_then_back_and_the_values_restored() {
    let bed = Bed::new();
    bed.standin.set_faults(Faults {
        pending_migrations: vec!["storage".into()],
        ..Faults::default()
    });
    let head = bed.head("staging");
    let before = bed.file(&head, FILE);
    bed.wait_replicas(&["loader-git", "lister", "storage"], &[2, 2, 2]);

    let o = bed.run(&args(&["--disable", "loaders,listers", "--yes"]));
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    // The plan names where the groups are defined and what changes.
    assert!(
        text.contains(&format!(
            "turning off on staging (head {}), in {FILE}:\n  loaders (defined at swh/values/default.yaml:152)\n  listers (defined at swh/values/default.yaml:167)",
            &head[..12]
        )),
        "{text}"
    );
    assert!(
        text.contains("+loaders:\n  +  enabled: false\n  +listers:\n  +  enabled: false"),
        "{text}"
    );
    // Scaled down before the migration ran, the migration, then the revert.
    let scaled = text
        .find("synced: scaled to 0: lister, loader-git\n")
        .unwrap_or_else(|| panic!("{text}"));
    let migrate = text
        .find("$ migrate-storage-db-version.sh   # exit 0")
        .unwrap();
    let reverted = text.find("reverted: staging is now at ").unwrap();
    assert!(scaled < migrate && migrate < reverted, "{text}");
    assert!(text.contains("staging is live at "), "{text}");
    assert!(bed.standin.faults().pending_migrations.is_empty());
    // Each wait says on stderr what it awaits and its bound, then its
    // progress after the time elapsed; plain lines (not a terminal).
    let e = err(&o);
    assert!(!e.contains('\r') && !e.contains('\x1b'), "{e:?}");
    let scale = e
        .find("waiting until staging is synced at ")
        .unwrap_or_else(|| panic!("{e}"));
    assert!(
        e[scale..]
            .lines()
            .next()
            .unwrap()
            .ends_with(" and loaders, listers scaled to 0 (at most 60s)"),
        "{e}"
    );
    let run = e
        .find("s] running migrate-storage-db-version.sh in pod ")
        .unwrap_or_else(|| panic!("{e}"));
    let live = e
        .find("waiting until staging is live again at ")
        .unwrap_or_else(|| panic!("{e}"));
    assert!(scale < run && run < live, "{e}");
    assert!(
        e[scale..run]
            .lines()
            .any(|l| l.starts_with('[') && l.contains("s] staging: ")),
        "{e}"
    );
    assert!(
        e[live..]
            .lines()
            .any(|l| l.starts_with('[') && l.contains("s] staging: ")),
        "{e}"
    );

    // The deployments list was read before the first exec.
    let reqs = bed.standin.requests();
    let listed = reqs
        .iter()
        .position(|r| {
            r.starts_with(
                "GET /k8s/clusters/archive-staging-rke2/apis/apps/v1/namespaces/swh/deployments",
            )
        })
        .unwrap_or_else(|| panic!("{reqs:?}"));
    let exec = reqs.iter().position(|r| r.contains("/exec?")).unwrap();
    assert!(listed < exec);

    // Two commits on staging: the disabling one and its revert; the values
    // file is byte-identical again; the groups are back.
    let new_head = bed.head("staging");
    let log = bed.log(&format!("{head}..{new_head}"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0]
            .starts_with("Revert \"staging: turn off loaders, listers for the storage migration\""),
        "{log:?}"
    );
    assert_eq!(bed.file(&new_head, FILE), before);
    bed.wait_replicas(&["loader-git", "lister", "storage"], &[2, 2, 2]);

    // Journaled: the run succeeded, its compensation is done.
    let j = bed.journal();
    let runs = j.runs(10).unwrap();
    let run = runs
        .iter()
        .find(|r| r.mode == "cluster migrate --disable")
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let d = j.run_details(run.id).unwrap();
    assert_eq!(d.compensations.len(), 1);
    assert_eq!(d.compensations[0].host, "charts:staging");
    assert!(d.compensations[0].action.starts_with("elastic-revert:"));
    assert!(d.compensations[0].done_at.is_some());
    assert!(j.pending_compensations(None).unwrap().is_empty());
}

#[test]
fn a_failing_migration_still_reverts_and_says_why() {
    let bed = Bed::new();
    bed.standin.set_faults(Faults {
        pending_migrations: vec!["storage".into()],
        failing_migrations: vec!["storage".into()],
        ..Faults::default()
    });
    let head = bed.head("staging");
    let before = bed.file(&head, FILE);
    let o = bed.run(&args(&["--disable", "loaders.git", "--yes"]));
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.contains(
            "swh-deploy cluster: error: the migration failed: migrate-storage-db-version.sh in "
        ) && e.contains("exited 1")
            && e.contains("; reverted at "),
        "{e}"
    );
    assert!(e.contains("and live again"), "{e}");
    assert!(
        out(&o).contains("synced: scaled to 0: loader-git\n"),
        "{}",
        out(&o)
    );
    let new_head = bed.head("staging");
    assert_ne!(new_head, head);
    assert_eq!(bed.file(&new_head, FILE), before);
    bed.wait_replicas(&["loader-git", "lister"], &[2, 2]);
    let j = bed.journal();
    assert!(j.pending_compensations(None).unwrap().is_empty());
    let runs = j.runs(10).unwrap();
    let run = runs
        .iter()
        .find(|r| r.mode == "cluster migrate --disable")
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
}

#[test]
fn killed_between_the_disabling_push_and_the_revert_recover_reverts_once() {
    let bed = Bed::new();
    // A version held half-way: the sync of the disabling commit never
    // completes, so the process waits for the scale-down.
    bed.push("staging", "20991231.1");
    bed.standin.set_faults(Faults {
        held_versions: vec!["20991231.1".into()],
        ..Faults::default()
    });
    let head = bed.head("staging");
    let before = bed.file(&head, FILE);
    let a = args(&["--disable", "loaders", "--yes"]);
    let mut child = bed
        .command(&a)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while bed.head("staging") == head {
        assert!(t0.elapsed() < Duration::from_secs(30), "never pushed");
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "did not wait");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let disabled = bed.head("staging");
    assert_ne!(bed.file(&disabled, FILE), before);
    {
        let j = bed.journal();
        let p = j.pending_compensations(None).unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].action, format!("elastic-revert:{disabled}"));
    }
    bed.standin.set_faults(Faults::default());
    // The loaders are down while their group is off.
    bed.wait_replicas(&["loader-git", "lister"], &[0, 2]);

    let o = bed.run(&["recover", "--interval", "100ms", "--timeout", "60s"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).contains(&format!(
            "done     elastic-revert charts:staging (run 1): reverted {} on staging",
            &disabled[..12]
        )),
        "{}",
        out(&o)
    );
    let reverted = bed.head("staging");
    assert_eq!(bed.file(&reverted, FILE), before);
    assert_eq!(bed.log(&format!("{disabled}..{reverted}")).len(), 1);
    assert!(bed
        .journal()
        .pending_compensations(None)
        .unwrap()
        .is_empty());
    // recover waited for Argo CD, as `cluster wait` does: the groups are
    // back to their replicas when it returns, not later.
    assert!(
        out(&o).contains(&format!("staging is live at {}", &reverted[..12])),
        "{}",
        out(&o)
    );
    assert!(err(&o).contains("s] staging: "), "{}", err(&o));
    assert_eq!(bed.replicas(&["loader-git", "lister"]), [2, 2]);

    // Again: nothing to do, nothing pushed.
    let o = bed.run(&["recover"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("nothing to recover"), "{}", out(&o));
    assert_eq!(bed.head("staging"), reverted);
}

#[test]
fn recover_marks_done_a_commit_never_pushed_or_already_reverted() {
    use swh_deploy_journal::NewRun;
    let bed = Bed::new();
    // A run that died after journaling a commit that never reached the
    // branch (an unknown id), and one whose revert already landed.
    let mut j = bed.journal();
    let run = j
        .start_run(&NewRun {
            command_line: vec!["swh-deploy".into()],
            mode: "cluster migrate --disable".into(),
            parameters: serde_json::json!({ "charts_dir": bed.root.join("swh-charts") }),
        })
        .unwrap();
    j.add_compensation(
        run,
        "charts:staging",
        &format!("elastic-revert:{}", "d".repeat(40)),
    )
    .unwrap();
    // A pushed commit whose revert is already on the branch.
    let pushed = bed.push("staging", "20991231.2");
    let clone = bed.root.join("reverter");
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", err(&o));
    };
    let c = clone.to_str().unwrap();
    git(&["clone", "-q", "-b", "staging", &bed.remotes.charts.url, c]);
    git(&["-C", c, "revert", "--no-edit", &pushed]);
    git(&["-C", c, "push", "-q", "origin", "staging"]);
    let head = bed.head("staging");
    j.add_compensation(run, "charts:staging", &format!("elastic-revert:{pushed}"))
        .unwrap();
    j.end_run(run, RunStatus::Interrupted).unwrap();
    drop(j);
    let o = bed.run(&["recover"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).contains("never reached staging: nothing to revert"),
        "{}",
        out(&o)
    );
    assert!(
        out(&o).contains(&format!("{} already reverted by ", &pushed[..12])),
        "{}",
        out(&o)
    );
    // That run recorded neither environment nor site: recover says plainly
    // that the revert is there and the wait is left to the admin.
    assert!(
        out(&o).contains(
            "the revert is pushed, but Argo CD was not waited for (the run recorded no \
             environment): run `swh-deploy cluster wait ENV`"
        ),
        "{}",
        out(&o)
    );
    assert_eq!(bed.head("staging"), head);
    assert!(bed
        .journal()
        .pending_compensations(None)
        .unwrap()
        .is_empty());
}

#[test]
fn unknown_groups_are_refused_and_a_dry_run_changes_nothing() {
    let bed = Bed::new();
    let head = bed.head("staging");
    let o = bed.run(&args(&["--disable", "loaders,loaderz", "--yes"]));
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.contains(&format!(
            "unknown worker group \"loaderz\": no top-level key \"loaderz\" in the values staging reads \
             (swh/values.yaml, swh/values/default.yaml, {FILE} at origin/staging {}); nothing changed",
            &head[..12]
        )),
        "{e}"
    );
    assert_eq!(bed.head("staging"), head);
    assert!(
        !bed.root.join("journal.sqlite").exists() || bed.journal().runs(10).unwrap().is_empty()
    );

    let o = bed.run(&args(&["--disable", "indexers", "--dry-run"]));
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains("indexers (defined at swh/values/default.yaml:138)"),
        "{text}"
    );
    assert!(
        text.contains("dry run: nothing committed or pushed"),
        "{text}"
    );
    assert_eq!(bed.head("staging"), head);
    assert!(bed.standin.requests().iter().all(|r| !r.contains("/exec")));
    assert!(
        !bed.root.join("journal.sqlite").exists() || bed.journal().runs(10).unwrap().is_empty()
    );
}
