//! `swh-deploy recover --force RUN` and the liveness of recorded runs,
//! through the real binary on journals written as another process, another
//! admin host, or a process whose pid was reused would have left them. No
//! host is contacted (the runs hold locks, not compensations, or their
//! compensations are left to them).

mod common;

// A live process unrelated to swh-deploy (killed on drop).
use common::KillOnDrop as Unrelated;
use common::{logged, text, with_journal};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use swh_deploy_journal::{process_start_time, Journal, NewRun, RunStatus};

fn swh_deploy(args: &[&str], journal: &Path) -> Output {
    logged(args, &mut with_journal(journal, args))
}

fn new_run(mode: &str) -> NewRun {
    NewRun {
        command_line: vec!["swh-deploy".into(), "upgrade".into()],
        mode: mode.into(),
        parameters: serde_json::json!({}),
    }
}

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn site_file(dir: &Path) -> PathBuf {
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        "[site]\nname = \"force-test\"\n\n[groups.all]\nnodes = \"host[1-2]\"\n",
    )
    .unwrap();
    site
}

#[test]
fn a_run_of_another_admin_host_is_taken_over_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let site = site_file(dir.path());
    let site = site.to_str().unwrap();
    let mut other = Journal::open(&journal).unwrap();
    other.set_identity("bob", 4242, "admin-elsewhere");
    let run = other.start_run(&new_run("long-standing")).unwrap();
    other.acquire_locks(run, &hosts(&["host1"])).unwrap();
    let pending = other.start_run(&new_run("long-standing")).unwrap();
    other.acquire_locks(pending, &hosts(&["host2"])).unwrap();
    other
        .add_compensation(pending, "host2", "start-cron")
        .unwrap();
    drop(other);
    let r = run.to_string();

    // Without --force: left alone, and the way out is named.
    let out = swh_deploy(&["recover", "--site", site], &journal);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains(&format!(
            "run {pending} is running on admin-elsewhere (pid 4242), which cannot be checked from here"
        )) && text(&out.stdout).contains(&format!("swh-deploy recover --force {pending}")),
        "{}",
        text(&out.stdout)
    );
    let j = Journal::open(&journal).unwrap();
    assert_eq!(j.run(run).unwrap().status, RunStatus::Running);
    drop(j);
    // --force needs a run.
    let out = swh_deploy(&["recover", "--force"], &journal);
    assert_eq!(out.status.code(), Some(2));

    // --force RUN: warning, journal entry, run interrupted, locks freed.
    let out = swh_deploy(&["recover", "--force", &r, "--site", site], &journal);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "warning: run {run} of bob was recorded as running on admin-elsewhere (pid 4242)"
        )),
        "{}",
        text(&out.stderr)
    );
    let mut j = Journal::open(&journal).unwrap();
    let d = j.run_details(run).unwrap();
    assert_eq!(d.run.status, RunStatus::Interrupted);
    assert!(d.locks.is_empty());
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].kind, "forced-takeover");
    assert!(d.events[0].command_line.contains(&"--force".to_string()));
    assert_eq!(d.events[0].detail["hostname"], "admin-elsewhere");
    let new = j.start_run(&new_run("nominal")).unwrap();
    j.acquire_locks(new, &hosts(&["host1"])).unwrap();
    // The other run was not touched.
    assert_eq!(j.run(pending).unwrap().status, RunStatus::Running);
    drop(j);
    let out = swh_deploy(&["history", &r], &journal);
    assert!(
        text(&out.stdout).contains("forced-takeover: by ")
            && text(&out.stdout).contains("could not be checked and was taken over"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn force_refuses_a_run_alive_here_and_a_reused_pid_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let site = site_file(dir.path());
    let site = site.to_str().unwrap();
    let sleeper = Unrelated(Command::new("sleep").arg("300").spawn().unwrap());
    let pid = sleeper.0.id();
    let here = swh_deploy_journal::this_hostname();
    let mut j = Journal::open(&journal).unwrap();
    // The sleeper itself: alive.
    j.set_identity("bob", pid, &here);
    let alive = j.start_run(&new_run("long-standing")).unwrap();
    j.acquire_locks(alive, &hosts(&["host1"])).unwrap();
    // Its pid, another start time: a reused pid, so dead.
    let start = process_start_time(pid).unwrap();
    j.set_process_identity(Some(start + 7), swh_deploy_journal::boot_id());
    let reused = j.start_run(&new_run("long-standing")).unwrap();
    j.acquire_locks(reused, &hosts(&["host2"])).unwrap();
    drop(j);

    let a = alive.to_string();
    let out = swh_deploy(&["recover", "--force", &a, "--site", site], &journal);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("run {alive} is running here (pid {pid})")),
        "{}",
        text(&out.stderr)
    );
    // history reaps the reused-pid run, not the live one.
    let out = swh_deploy(&["history"], &journal);
    assert!(out.status.success());
    let j = Journal::open(&journal).unwrap();
    assert_eq!(j.run(alive).unwrap().status, RunStatus::Running);
    assert_eq!(j.run(reused).unwrap().status, RunStatus::Interrupted);
    assert!(j.events(alive).unwrap().is_empty());
}
