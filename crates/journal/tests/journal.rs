//! The journal on real SQLite files: schema and durability settings, runs,
//! steps, host results, compensations, locks (threads and processes
//! competing, stale locks), and crash safety under SIGKILL.
//!
//! Child processes are this test binary run again on an `#[ignore]`d helper
//! test (`child_*`), selected with `--exact --ignored` and driven by
//! environment variables; the helpers do nothing when run on their own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use swh_deploy_journal::{
    default_path, pid_alive, resolve_path, Journal, JournalError, LockError, LockRefused, NewRun,
    Outcome, RunStatus, StepStatus,
};

/// A fresh directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "swh-deploy-journal-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn journal(&self) -> PathBuf {
        self.0.join("state/swh-deploy/journal.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn new_run(mode: &str) -> NewRun {
    NewRun {
        command_line: vec![
            "swh-deploy".into(),
            "upgrade".into(),
            "-w".into(),
            "host[1-3]".into(),
        ],
        mode: mode.into(),
        parameters: serde_json::json!({"batch": "1,100%", "max_fail": 0}),
    }
}

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Runs the helper test `name` of this binary as a child process with `env`,
/// stdout piped.
fn spawn_child(name: &str, env: &[(&str, &Path)]) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    ChildGuard(cmd.spawn().unwrap())
}

/// Reads the child's stdout until a line containing `READY `, within a
/// bounded time; returns that line.
fn wait_ready(child: &mut ChildGuard) -> String {
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print "test NAME ... " on the same line first.
            if let Some(i) = line.find("READY ") {
                let _ = tx.send(line[i..].to_owned());
                break;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("child did not become ready within 60 s")
}

fn sigkill(child: &mut ChildGuard) {
    // SAFETY: sending a signal to our own child.
    let rc = unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
    child.0.wait().unwrap();
}

#[test]
fn opens_in_wal_with_full_sync_and_migrates_once() {
    let dir = TempDir::new("open");
    let path = dir.journal();
    let j = Journal::open(&path).unwrap();
    assert!(path.exists(), "journal file and its directory are created");
    assert_eq!(j.durability().unwrap(), ("wal".to_string(), 2));
    assert_eq!(j.schema_version().unwrap(), 2);
    drop(j);
    // Reopening keeps data and does not migrate again.
    let mut j = Journal::open(&path).unwrap();
    let run = j.start_run(&new_run("nominal")).unwrap();
    drop(j);
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.run(run).unwrap().mode, "nominal");
    assert_eq!(j.check_integrity().unwrap(), Ok(()));
}

#[test]
fn refuses_a_journal_from_the_future() {
    let dir = TempDir::new("future");
    let path = dir.journal();
    drop(Journal::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 7).unwrap();
    drop(conn);
    match Journal::open(&path) {
        Err(
            e @ JournalError::TooNew {
                found: 7, known: 2, ..
            },
        ) => {
            assert!(e.to_string().contains("upgrade swh-deploy"), "{e}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a journal from the future was opened"),
    }
}

#[test]
fn default_path_follows_xdg_state_home() {
    // Each test runs in its own process under nextest; the variables are
    // only changed here.
    std::env::set_var("XDG_STATE_HOME", "/var/tmp/xdg-state");
    assert_eq!(
        default_path().unwrap(),
        PathBuf::from("/var/tmp/xdg-state/swh-deploy/journal.sqlite")
    );
    std::env::set_var("XDG_STATE_HOME", "relative/is/ignored");
    std::env::set_var("HOME", "/home/alice");
    assert_eq!(
        default_path().unwrap(),
        PathBuf::from("/home/alice/.local/state/swh-deploy/journal.sqlite")
    );
    std::env::remove_var("XDG_STATE_HOME");
    std::env::remove_var("HOME");
    assert!(matches!(default_path(), Err(JournalError::NoStateDir)));
    // The explicit path, then the default; $SWH_DEPLOY_JOURNAL is the
    // binary's to resolve (its settings), not the library's.
    assert_eq!(
        resolve_path(Some(Path::new("/x.sqlite"))).unwrap(),
        PathBuf::from("/x.sqlite")
    );
    std::env::set_var("SWH_DEPLOY_JOURNAL", "/srv/j.sqlite");
    assert!(matches!(resolve_path(None), Err(JournalError::NoStateDir)));
    std::env::remove_var("SWH_DEPLOY_JOURNAL");
}

#[test]
fn records_a_run_its_steps_results_and_history() {
    let dir = TempDir::new("run");
    let mut j = Journal::open(&dir.journal()).unwrap();
    let first = j.start_run(&new_run("nominal")).unwrap();
    j.end_run(first, RunStatus::Succeeded).unwrap();
    let run = j.start_run(&new_run("long-standing")).unwrap();
    assert!(run > first);
    j.start_step(run, 0, "apt-get update", "remote", Some(0), "host1")
        .unwrap();
    j.record_host_result(
        run,
        0,
        "host1",
        Some(0),
        b"Reading package lists...",
        b"",
        Duration::from_millis(60),
        Outcome::Ok,
    )
    .unwrap();
    j.end_step(run, 0, StepStatus::Succeeded).unwrap();
    j.start_step(run, 1, "dist-upgrade", "remote", Some(0), "host1")
        .unwrap();
    j.record_host_result(
        run,
        1,
        "host1",
        Some(100),
        b"",
        b"E: broken \xff",
        Duration::from_secs(2),
        Outcome::Failed,
    )
    .unwrap();
    j.end_step(run, 1, StepStatus::Failed).unwrap();
    j.end_run(run, RunStatus::Failed).unwrap();

    let runs = j.runs(10).unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [run, first]);
    let r = &runs[0];
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.mode, "long-standing");
    assert_eq!(r.command_line[3], "host[1-3]");
    assert_eq!(r.pid, std::process::id());
    assert_eq!(r.parameters["batch"], "1,100%");
    assert!(r.ended_at.is_some());
    assert!(
        r.started_at.ends_with('Z') && r.started_at.contains('T'),
        "{}",
        r.started_at
    );
    assert_eq!(j.runs(1).unwrap().len(), 1);

    let d = j.run_details(run).unwrap();
    assert_eq!(d.steps.len(), 2);
    assert_eq!(d.steps[1].name, "dist-upgrade");
    assert_eq!(d.steps[1].status, StepStatus::Failed);
    assert_eq!(d.steps[1].batch, Some(0));
    assert_eq!(d.results.len(), 2);
    assert_eq!(d.results[0].stdout, "Reading package lists...");
    assert_eq!(d.results[1].rc, Some(100));
    assert_eq!(d.results[1].stderr, "E: broken \u{fffd}");
    assert_eq!(d.results[1].duration_ms, 2000);
    assert_eq!(d.results[1].outcome, Outcome::Failed);

    assert!(matches!(
        j.run_details(run + 100),
        Err(JournalError::NoSuchRun(_))
    ));
    assert!(matches!(
        j.record_host_result(
            run,
            9,
            "host1",
            Some(0),
            b"",
            b"",
            Duration::ZERO,
            Outcome::Ok
        ),
        Err(JournalError::NoSuchStep { step: 9, .. })
    ));
    assert!(matches!(
        j.end_step(run, 9, StepStatus::Succeeded),
        Err(JournalError::NoSuchStep { .. })
    ));
}

#[test]
fn hosts_finished_a_step_for_resume() {
    let dir = TempDir::new("finished");
    let mut j = Journal::open(&dir.journal()).unwrap();
    let run = j.start_run(&new_run("nominal")).unwrap();
    // Batch 0 and batch 1 each have their own "restart" step.
    j.start_step(run, 2, "restart", "remote", Some(0), "host1")
        .unwrap();
    j.record_host_result(
        run,
        2,
        "host1",
        Some(0),
        b"",
        b"",
        Duration::ZERO,
        Outcome::Ok,
    )
    .unwrap();
    j.start_step(run, 5, "restart", "remote", Some(1), "host[2-4]")
        .unwrap();
    j.record_host_result(
        run,
        5,
        "host2",
        Some(0),
        b"",
        b"",
        Duration::ZERO,
        Outcome::Ok,
    )
    .unwrap();
    j.record_host_result(
        run,
        5,
        "host3",
        Some(1),
        b"",
        b"",
        Duration::ZERO,
        Outcome::Failed,
    )
    .unwrap();
    j.record_host_result(
        run,
        5,
        "host4",
        None,
        b"",
        b"",
        Duration::ZERO,
        Outcome::Unreachable,
    )
    .unwrap();
    // host4 is retried and succeeds; host2 is retried and fails.
    j.record_host_result(
        run,
        5,
        "host4",
        Some(0),
        b"",
        b"",
        Duration::ZERO,
        Outcome::Ok,
    )
    .unwrap();
    j.record_host_result(
        run,
        5,
        "host2",
        Some(1),
        b"",
        b"",
        Duration::ZERO,
        Outcome::Failed,
    )
    .unwrap();
    j.start_step(run, 6, "health", "health", Some(1), "host[2-4]")
        .unwrap();
    j.record_host_result(
        run,
        6,
        "host3",
        Some(0),
        b"",
        b"",
        Duration::ZERO,
        Outcome::Ok,
    )
    .unwrap();

    assert_eq!(
        j.hosts_finished(run, "restart").unwrap(),
        hosts(&["host1", "host4"])
    );
    assert_eq!(j.hosts_finished_step(run, 5).unwrap(), hosts(&["host4"]));
    assert_eq!(j.hosts_finished(run, "health").unwrap(), hosts(&["host3"]));
    assert!(j.hosts_finished(run, "dist-upgrade").unwrap().is_empty());
}

#[test]
fn compensations_pending_until_done() {
    let dir = TempDir::new("comp");
    let mut j = Journal::open(&dir.journal()).unwrap();
    let run = j.start_run(&new_run("long-standing")).unwrap();
    let other = j.start_run(&new_run("long-standing")).unwrap();
    let cron1 = j.add_compensation(run, "host1", "start-cron").unwrap();
    let puppet1 = j.add_compensation(run, "host1", "enable-puppet").unwrap();
    let cron2 = j.add_compensation(other, "host2", "start-cron").unwrap();
    let pending = j.pending_compensations(None).unwrap();
    assert_eq!(
        pending.iter().map(|c| c.id).collect::<Vec<_>>(),
        [cron1, puppet1, cron2]
    );
    assert_eq!(pending[1].action, "enable-puppet");
    assert_eq!(pending[1].host, "host1");
    assert!(pending[1].done_at.is_none());
    assert_eq!(j.pending_compensations(Some(other)).unwrap().len(), 1);

    j.complete_compensation(cron1).unwrap();
    j.complete_compensation(cron1).unwrap(); // idempotent
    let pending = j.pending_compensations(Some(run)).unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|c| c.action.as_str())
            .collect::<Vec<_>>(),
        ["enable-puppet"]
    );
    let details = j.run_details(run).unwrap();
    assert_eq!(details.compensations.len(), 2);
    assert!(details.compensations[0].done_at.is_some());
    assert!(matches!(
        j.complete_compensation(9999),
        Err(JournalError::NoSuchCompensation(9999))
    ));
}

#[test]
fn second_run_on_same_hosts_is_refused_with_the_holder() {
    let dir = TempDir::new("locks");
    let mut j = Journal::open(&dir.journal()).unwrap();
    let a = j.start_run(&new_run("nominal")).unwrap();
    let b = j.start_run(&new_run("nominal")).unwrap();
    j.acquire_locks(a, &hosts(&["host1", "host2"])).unwrap();
    // Re-acquiring its own hosts is fine.
    j.acquire_locks(a, &hosts(&["host2", "host1"])).unwrap();
    let err = j.acquire_locks(b, &hosts(&["host3", "host2"])).unwrap_err();
    match &err {
        LockError::Refused(LockRefused::Held { host, holder }) => {
            assert_eq!(host, "host2");
            assert_eq!(holder.run, a);
            assert_eq!(holder.pid, std::process::id());
            assert!(holder.since.ends_with('Z'));
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("host host2 is locked by run {a} of ")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("(pid {} on ", std::process::id())),
        "{msg}"
    );
    // All or nothing: host3 was not locked by the refused request.
    assert!(j.lock_holder("host3").unwrap().is_none());
    // Disjoint hosts are fine.
    j.acquire_locks(b, &hosts(&["host3"])).unwrap();
    assert_eq!(j.run_details(a).unwrap().locks, hosts(&["host1", "host2"]));
    assert_eq!(j.release_locks(a, Some(&hosts(&["host1"]))).unwrap(), 1);
    j.acquire_locks(b, &hosts(&["host1"])).unwrap();
    assert_eq!(j.release_locks(a, None).unwrap(), 1);
    j.acquire_locks(b, &hosts(&["host2"])).unwrap();
    assert_eq!(
        j.run_details(b).unwrap().locks,
        hosts(&["host1", "host2", "host3"])
    );
}

/// The pid of a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!pid_alive(pid));
    pid
}

#[test]
fn stale_lock_of_a_dead_process_is_taken_over() {
    let dir = TempDir::new("stale");
    let path = dir.journal();
    let mut dead = Journal::open(&path).unwrap();
    dead.set_identity("bob", dead_pid(), &swh_deploy_journal::this_hostname());
    let old = dead.start_run(&new_run("nominal")).unwrap();
    dead.acquire_locks(old, &hosts(&["host1"])).unwrap();

    let mut j = Journal::open(&path).unwrap();
    let new = j.start_run(&new_run("nominal")).unwrap();
    j.acquire_locks(new, &hosts(&["host1"])).unwrap();
    assert_eq!(j.lock_holder("host1").unwrap().unwrap().run, new);
    assert_eq!(j.run(old).unwrap().status, RunStatus::Interrupted);
}

#[test]
fn lock_of_another_machine_is_never_stale() {
    let dir = TempDir::new("remote-holder");
    let path = dir.journal();
    let mut other = Journal::open(&path).unwrap();
    other.set_identity("bob", dead_pid(), "pergamon-elsewhere");
    let old = other.start_run(&new_run("nominal")).unwrap();
    other.acquire_locks(old, &hosts(&["host1"])).unwrap();
    let mut j = Journal::open(&path).unwrap();
    let new = j.start_run(&new_run("nominal")).unwrap();
    let err = j.acquire_locks(new, &hosts(&["host1"])).unwrap_err();
    assert!(err.to_string().contains("of bob (pid "), "{err}");
    assert!(
        err.to_string().contains(" on pergamon-elsewhere) since "),
        "{err}"
    );
}

#[test]
fn stale_lock_with_pending_compensations_needs_recover() {
    let dir = TempDir::new("stale-comp");
    let path = dir.journal();
    let mut dead = Journal::open(&path).unwrap();
    dead.set_identity("bob", dead_pid(), &swh_deploy_journal::this_hostname());
    let old = dead.start_run(&new_run("long-standing")).unwrap();
    dead.acquire_locks(old, &hosts(&["host1", "host2"]))
        .unwrap();
    dead.add_compensation(old, "host2", "start-cron").unwrap();
    dead.add_compensation(old, "host2", "enable-puppet")
        .unwrap();

    let mut j = Journal::open(&path).unwrap();
    let new = j.start_run(&new_run("nominal")).unwrap();
    let err = j
        .acquire_locks(new, &hosts(&["host1", "host2"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("host host2 has 2 pending compensation(s) of interrupted run {old} (e.g. start-cron): run `swh-deploy recover` first")
    );
    // Nothing was taken: host1's stale lock is still the old run's.
    assert_eq!(j.lock_holder("host1").unwrap().unwrap().run, old);
    // Once recovered, the takeover works.
    for c in j.pending_compensations(Some(old)).unwrap() {
        j.complete_compensation(c.id).unwrap();
    }
    j.acquire_locks(new, &hosts(&["host1", "host2"])).unwrap();
}

#[test]
fn threads_competing_for_a_lock_one_wins() {
    let dir = TempDir::new("threads");
    let path = Arc::new(dir.journal());
    drop(Journal::open(&path).unwrap());
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let path = Arc::clone(&path);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut j = Journal::open(&path).unwrap();
                let run = j.start_run(&new_run("nominal")).unwrap();
                // Overlapping host sets: every pair shares host0.
                let mine = hosts(&["host0", &format!("host{}", i + 1)]);
                barrier.wait();
                (run, j.acquire_locks(run, &mine))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(run, _)| *run)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one run gets host0");
    for (_, r) in &results {
        if let Err(e) = r {
            match e {
                LockError::Refused(LockRefused::Held { holder, .. }) => {
                    assert_eq!(holder.run, winners[0])
                }
                other => panic!("unexpected {other}"),
            }
        }
    }
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.lock_holder("host0").unwrap().unwrap().run, winners[0]);
    // Losers left nothing behind.
    let locked: usize = (1..=n)
        .filter(|i| j.lock_holder(&format!("host{i}")).unwrap().is_some())
        .count();
    assert_eq!(locked, 1);
}

#[test]
#[ignore = "helper process for processes_competing_for_a_lock"]
fn child_hold_lock() {
    let Some(path) = std::env::var_os("JOURNAL_CHILD_PATH") else {
        return;
    };
    let mut j = Journal::open(Path::new(&path)).unwrap();
    let run = j.start_run(&new_run("nominal")).unwrap();
    j.acquire_locks(run, &hosts(&["host1", "host2"])).unwrap();
    println!("READY {run}");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn processes_competing_for_a_lock() {
    let dir = TempDir::new("procs");
    let path = dir.journal();
    let mut child = spawn_child("child_hold_lock", &[("JOURNAL_CHILD_PATH", &path)]);
    let ready = wait_ready(&mut child);
    let child_run: i64 = ready.trim_start_matches("READY ").parse().unwrap();
    let mut j = Journal::open(&path).unwrap();
    let run = j.start_run(&new_run("nominal")).unwrap();
    let err = j.acquire_locks(run, &hosts(&["host2"])).unwrap_err();
    match err {
        LockError::Refused(LockRefused::Held { holder, .. }) => {
            assert_eq!(holder.run, child_run);
            assert_eq!(holder.pid, child.0.id());
        }
        other => panic!("unexpected {other}"),
    }
    sigkill(&mut child);
    // The holder is dead: its lock is stale and taken over.
    j.acquire_locks(run, &hosts(&["host2"])).unwrap();
    assert_eq!(j.lock_holder("host2").unwrap().unwrap().run, run);
    assert_eq!(j.run(child_run).unwrap().status, RunStatus::Interrupted);
}

#[test]
#[ignore = "helper process for killed_run_leaves_a_consistent_journal"]
fn child_long_standing_run() {
    let Some(path) = std::env::var_os("JOURNAL_CHILD_PATH") else {
        return;
    };
    let mut j = Journal::open(Path::new(&path)).unwrap();
    let run = j.start_run(&new_run("long-standing")).unwrap();
    let targets = hosts(&["host1", "host2", "host3"]);
    j.acquire_locks(run, &targets).unwrap();
    j.start_step(run, 0, "stop-cron", "remote", None, "host[1-3]")
        .unwrap();
    for h in &targets {
        // Written before the side effect.
        j.add_compensation(run, h, "start-cron").unwrap();
        j.record_host_result(
            run,
            0,
            h,
            Some(0),
            b"",
            b"",
            Duration::from_millis(5),
            Outcome::Ok,
        )
        .unwrap();
    }
    j.end_step(run, 0, StepStatus::Succeeded).unwrap();
    j.start_step(run, 1, "disable-puppet", "remote", None, "host[1-3]")
        .unwrap();
    j.add_compensation(run, "host1", "enable-puppet").unwrap();
    j.record_host_result(
        run,
        1,
        "host1",
        Some(0),
        b"",
        b"",
        Duration::from_millis(5),
        Outcome::Ok,
    )
    .unwrap();
    println!("READY {run}");
    // Keep writing until killed: the kill lands in the middle of this.
    let mut i = 0u64;
    loop {
        j.record_host_result(
            run,
            1,
            "host2",
            Some(0),
            format!("{i}").as_bytes(),
            &[b'x'; 4096],
            Duration::ZERO,
            Outcome::Ok,
        )
        .unwrap();
        i += 1;
    }
}

#[test]
fn killed_run_leaves_a_consistent_journal() {
    let dir = TempDir::new("crash");
    let path = dir.journal();
    let mut child = spawn_child("child_long_standing_run", &[("JOURNAL_CHILD_PATH", &path)]);
    let ready = wait_ready(&mut child);
    let run: i64 = ready.trim_start_matches("READY ").parse().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    sigkill(&mut child);

    let mut j = Journal::open(&path).unwrap();
    assert_eq!(j.check_integrity().unwrap(), Ok(()));
    // The run still says running until someone notices its process is gone.
    assert_eq!(j.run(run).unwrap().status, RunStatus::Running);
    assert_eq!(j.reap_dead_runs().unwrap(), [run]);
    assert_eq!(j.run(run).unwrap().status, RunStatus::Interrupted);
    assert!(j.run(run).unwrap().status.is_resumable());
    // Every compensation written before the kill is pending.
    let pending = j.pending_compensations(None).unwrap();
    let actions: Vec<(String, String)> = pending
        .iter()
        .map(|c| (c.host.clone(), c.action.clone()))
        .collect();
    assert_eq!(
        actions,
        [
            ("host1".to_string(), "start-cron".to_string()),
            ("host2".into(), "start-cron".into()),
            ("host3".into(), "start-cron".into()),
            ("host1".into(), "enable-puppet".into()),
        ]
    );
    // Resume knows what finished.
    assert_eq!(
        j.hosts_finished(run, "stop-cron").unwrap(),
        hosts(&["host1", "host2", "host3"])
    );
    assert_eq!(
        j.hosts_finished(run, "disable-puppet").unwrap(),
        hosts(&["host1", "host2"])
    );
    let d = j.run_details(run).unwrap();
    assert_eq!(d.steps[1].status, StepStatus::Running);
    assert!(d.results.len() > 4, "the child was writing when killed");
    // The hosts stay locked by the dead run until it is recovered.
    let other = j.start_run(&new_run("nominal")).unwrap();
    assert!(matches!(
        j.acquire_locks(other, &hosts(&["host3"])),
        Err(LockError::Refused(LockRefused::CompensationsPending { .. }))
    ));
    // `resume` takes the run over: this process, running again.
    let resumed = j.resume_run(run).unwrap();
    assert_eq!(resumed.status, RunStatus::Running);
    assert_eq!(resumed.pid, std::process::id());
    assert_eq!(
        j.lock_holder("host3").unwrap().unwrap().pid,
        std::process::id()
    );
}

#[test]
fn busy_writer_does_not_make_others_fail() {
    // Two connections writing at once wait for each other (busy timeout)
    // instead of failing with SQLITE_BUSY.
    let dir = TempDir::new("busy");
    let path = dir.journal();
    drop(Journal::open(&path).unwrap());
    let start = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut j = Journal::open(&path).unwrap();
                let run = j.start_run(&new_run("nominal")).unwrap();
                j.start_step(run, 0, "apt-get update", "remote", None, "h")
                    .unwrap();
                for i in 0..200 {
                    j.record_host_result(
                        run,
                        0,
                        &format!("h{i}"),
                        Some(0),
                        b"",
                        b"",
                        Duration::ZERO,
                        Outcome::Ok,
                    )
                    .unwrap();
                }
                run
            })
        })
        .collect();
    let runs: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let j = Journal::open(&path).unwrap();
    for run in runs {
        assert_eq!(j.run_details(run).unwrap().results.len(), 200);
    }
    assert!(start.elapsed() < Duration::from_secs(60));
}

/// A live process unrelated to swh-deploy (killed on drop).
struct Unrelated(Child);

impl Unrelated {
    fn start() -> Unrelated {
        Unrelated(Command::new("sleep").arg("300").spawn().unwrap())
    }
}

impl Drop for Unrelated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_reused_pid_is_dead_a_wrong_boot_id_is_dead_and_the_real_process_is_alive() {
    use swh_deploy_journal::{boot_id, process_start_time, Liveness};
    let dir = TempDir::new("reused-pid");
    let path = dir.journal();
    let other = Unrelated::start();
    let pid = other.0.id();
    let start = process_start_time(pid).unwrap();
    let here = swh_deploy_journal::this_hostname();
    // Three runs recorded under the pid of the live `sleep`: the first with
    // its real start time and boot id (the same process: alive), the second
    // with another start time (the pid was reused), the third from another
    // boot.
    let mut rec = Journal::open(&path).unwrap();
    rec.set_identity("bob", pid, &here);
    let alive = rec.start_run(&new_run("long-standing")).unwrap();
    rec.acquire_locks(alive, &hosts(&["host1"])).unwrap();
    rec.set_process_identity(Some(start + 1000), boot_id());
    let reused = rec.start_run(&new_run("long-standing")).unwrap();
    rec.acquire_locks(reused, &hosts(&["host2"])).unwrap();
    rec.set_process_identity(
        Some(start),
        Some("00000000-0000-4000-8000-000000000000".into()),
    );
    let rebooted = rec.start_run(&new_run("long-standing")).unwrap();
    rec.acquire_locks(rebooted, &hosts(&["host3"])).unwrap();
    drop(rec);

    let mut j = Journal::open(&path).unwrap();
    assert_eq!(j.run(alive).unwrap().liveness(), Liveness::Alive);
    assert_eq!(j.run(reused).unwrap().liveness(), Liveness::Dead);
    assert_eq!(j.run(rebooted).unwrap().liveness(), Liveness::Dead);
    let mut reaped = j.reap_dead_runs().unwrap();
    reaped.sort();
    assert_eq!(reaped, [reused, rebooted]);
    assert_eq!(j.run(alive).unwrap().status, RunStatus::Running);
    assert_eq!(j.run(reused).unwrap().status, RunStatus::Interrupted);
    assert_eq!(j.run(rebooted).unwrap().status, RunStatus::Interrupted);
    // Their locks are stale and taken over; the live process's is not.
    let new = j.start_run(&new_run("nominal")).unwrap();
    j.acquire_locks(new, &hosts(&["host2", "host3"])).unwrap();
    assert_eq!(j.lock_holder("host2").unwrap().unwrap().run, new);
    let err = j.acquire_locks(new, &hosts(&["host1"])).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("locked by run {alive} of bob (pid {pid}")),
        "{err}"
    );
    // The holder's identity is recorded with the lock.
    let holder = j.lock_holder("host1").unwrap().unwrap();
    assert_eq!(holder.pid_start, Some(start));
    assert_eq!(holder.boot_id, boot_id());
}

#[test]
fn the_journal_and_its_wal_and_shm_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("modes");
    let path = dir.journal();
    let mode = |suffix: &str| {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        std::fs::metadata(PathBuf::from(p))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}{suffix}: {e}", path.display()))
    };
    let set = |suffix: &str, m: u32| {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        std::fs::set_permissions(PathBuf::from(p), std::fs::Permissions::from_mode(m)).unwrap();
    };
    {
        let mut j = Journal::open(&path).unwrap();
        j.start_run(&new_run("nominal")).unwrap();
        for s in ["", "-wal", "-shm"] {
            assert_eq!(mode(s), 0o600, "new journal{s}");
        }
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        // An existing journal left readable by others (older swh-deploy)...
        for s in ["", "-wal", "-shm"] {
            set(s, 0o644);
        }
        // ...is made private when opened again.
        let again = Journal::open(&path).unwrap();
        for s in ["", "-wal", "-shm"] {
            assert_eq!(mode(s), 0o600, "journal opened again{s}");
        }
        drop(again);
    }
}
