//! `swh-deploy recover` right after a `kill -9` of a long-standing upgrade
//! in its stop-cron / disable-puppet phase, on 3 real systemd hosts (real
//! cron, real puppet lock file): the remote commands the killed run left
//! behind must not undo the compensations, and `recover` must never say
//! done while a host still has cron stopped or puppet disabled.
//!
//! Also `resume` after a kill -9 in the middle of a migration: each resume
//! and the operator's decision are recorded, the host is asked whether the
//! migration began, and the migration step is closed.
//!
//! Needs root (network namespaces, systemd-nspawn): skipped otherwise,
//! a failure under CI (`common::skip`).

mod common;

use common::{need_root, site_head, StaticBed as Bed};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use swh_deploy_journal::Journal;
use swh_deploy_testbed::{Options, Testbed};

const PUPPET_LOCK: &str = "/var/cache/puppet/state/agent_disabled.lock";

impl Bed {
    /// `n` systemd hosts; with `apt`, the local apt repository (the
    /// upgrade's apt steps then succeed).
    fn up(n: usize, apt: bool) -> Bed {
        let tb = Testbed::up(&Options {
            hosts: n,
            systemd: true,
            apt_repo: apt,
            apt_versions: if apt {
                vec!["1.0-1~swh1".into()]
            } else {
                vec![]
            },
            ..Options::default()
        })
        .expect("test bed up");
        let bed = Bed::new(tb);
        let site = format!(
            "{}{}",
            site_head(
                Some("recover-race-test"),
                &bed.tb,
                &format!("host[1-{n}]"),
                Some(16)
            ),
            r#"
[services.cron]
kind = "worker"
units = ["cron.service"]
packages = ["cron"]
groups = ["rpc"]
health = { check = "systemd", deadline = "10s", interval = "500ms" }
"#
        );
        std::fs::write(bed.site(), site).unwrap();
        bed
    }

    /// The newest long-standing run, once its step `name` has started.
    fn wait_step(&self, after: i64, name: &str, timeout: Duration) -> Option<i64> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(j) = Journal::open(&self.journal()) {
                if let Ok(runs) = j.runs(5) {
                    for r in runs {
                        if r.id > after && r.mode == "long-standing" {
                            if let Ok(d) = j.run_details(r.id) {
                                if d.steps.iter().any(|s| s.name == name) {
                                    return Some(r.id);
                                }
                            }
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Hosts where cron is not active or puppet is disabled, with why.
    fn bad_hosts(&self) -> Vec<String> {
        let mut bad = Vec::new();
        for h in &self.hosts {
            let state = self.sh(
                h,
                &format!(
                    "printf '%s ' \"$(systemctl is-active cron)\"; \
                     test -e {PUPPET_LOCK} && echo disabled || echo enabled"
                ),
            );
            if state != "active enabled" {
                bad.push(format!("{h}: {state}"));
            }
        }
        bad
    }
}

/// Waits (bounded) until no remote command of swh-deploy runs on any host
/// (those a killed run left behind finish or find themselves fenced).
fn wait_remote_commands_gone(bed: &Bed, timeout: Duration) {
    let end = Instant::now() + timeout;
    for h in &bed.hosts {
        loop {
            // The brackets keep pgrep from matching this very shell.
            let left = bed.sh(
                h,
                "pgrep -af '[s]wh-deploy-guard|[a]gent --disable|[s]ystemctl stop cron' || true",
            );
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < end,
                "remote commands still running on {h} after {timeout:?}: {left}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A small deterministic generator (xorshift), seeded from the clock; the
/// seed is printed so a failing sequence can be replayed with
/// `RECOVER_RACE_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn kill_9_in_the_disable_phase_then_immediate_recover_leaves_no_host_disabled() {
    if !need_root() {
        return;
    }
    let bed = Bed::up(3, false);
    // A loaded host: `puppet agent --disable` there takes up to 2.5 s more
    // than usual before real puppet runs (a shim first in root's PATH).
    // An orphaned --disable then lands after an immediate recover's
    // --enable unless something makes recover wait for it.
    for h in &bed.hosts {
        let shim = bed.sh(
            h,
            "cat > /usr/local/sbin/puppet <<'EOF'\n\
             #!/bin/sh\n\
             case \" $* \" in *' --disable '*) sleep \"$(shuf -i 0-2500 -n 1 | awk '{print $1/1000}')\" ;; esac\n\
             for p in /usr/local/bin/puppet /usr/bin/puppet; do [ -x \"$p\" ] && exec \"$p\" \"$@\"; done\n\
             exit 127\n\
             EOF\n\
             chmod 755 /usr/local/sbin/puppet && command -v puppet",
        );
        assert_eq!(
            shim, "/usr/local/sbin/puppet",
            "the slow puppet shim on {h}"
        );
    }
    let seed = std::env::var("RECOVER_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("RECOVER_RACE_SEED={seed}");
    let mut rng = Rng(seed);
    let cycles: usize = std::env::var("RECOVER_RACE_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // Within nextest's 15-minute limit, golden rootfs build included.
    let deadline = Instant::now() + Duration::from_secs(480);
    let mut last = 0;
    let mut failures = Vec::new();
    let mut done = 0;
    for cycle in 0..cycles {
        if Instant::now() > deadline {
            break;
        }
        let began = Instant::now();
        let log = bed.dir.path().join(format!("upgrade-{cycle}.log"));
        let mut child = bed
            .command(&["upgrade", "-w", "host[1-3]", "--mode", "long-standing"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let run = bed.wait_step(last, "stop-cron", Duration::from_secs(60));
        // Somewhere in stop-cron / disable-puppet (real puppet takes about
        // 2 s per call, plus the shim's delay).
        let delay = rng.next(4000);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        let _ = child.wait();
        let Some(run) = run else {
            panic!(
                "the upgrade never reached stop-cron:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        last = run;
        let killed = Instant::now();
        let out = bed.swh_deploy(&["recover"]);
        let recover_secs = killed.elapsed().as_secs_f64();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        // The killed run's remote commands all end, then the hosts are
        // checked.
        let waited = Instant::now();
        wait_remote_commands_gone(&bed, Duration::from_secs(60));
        let wait_secs = waited.elapsed().as_secs_f64();
        let bad = bed.bad_hosts();
        eprintln!(
            "cycle {cycle}: run {run} killed after {delay} ms; recover exit {:?} in {recover_secs:.1} s; \
             remote commands gone {wait_secs:.1} s later; bad hosts: {bad:?} (cycle {:.1} s)",
            out.status.code(),
            began.elapsed().as_secs_f64()
        );
        if !bad.is_empty() {
            failures.push(format!(
                "cycle {cycle} (run {run}, kill after {delay} ms): recover exit {:?} said:\n{report}{}\n  left {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr),
                bad.join(", ")
            ));
            // Put the hosts back for the next cycle.
            for h in &bed.hosts {
                bed.sh(
                    h,
                    &format!("systemctl start cron; rm -f {PUPPET_LOCK}; true"),
                );
            }
        }
        // recover must leave nothing pending (exit 0), or say so.
        let j = Journal::open(&bed.journal()).unwrap();
        let pending = j.pending_compensations(None).unwrap();
        drop(j);
        if out.status.code() == Some(0) {
            assert!(pending.is_empty(), "{report}");
        } else {
            // Unreachable in this test: every host is up.
            failures.push(format!(
                "cycle {cycle}: recover exit {:?}: {report}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
            assert_eq!(bed.swh_deploy(&["recover"]).status.code(), Some(0));
        }
        done += 1;
    }
    eprintln!("{done} cycles, {} with a bad host", failures.len());
    assert!(done >= 5, "only {done} cycles in the time limit");
    assert!(
        failures.is_empty(),
        "{} of {done} cycles left hosts with cron stopped or puppet disabled:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn resume_after_a_kill_in_the_migration_records_decisions_and_closes_the_step() {
    if !need_root() {
        return;
    }
    let bed = Bed::up(2, true);
    let migration = "echo began >> /run/mig-log; \
        for i in $(seq 1200); do test -e /run/mig-go && exit 0; sleep 0.1; done; exit 1";
    let mut child = bed
        .command(&[
            "upgrade",
            "-w",
            "host[1-2]",
            "--mode",
            "long-standing",
            "--migration",
            migration,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = bed
        .wait_step(0, "migration", Duration::from_secs(90))
        .expect("the migration step never started");
    // It began on host1 (its log line is there), then swh-deploy dies.
    let end = Instant::now() + Duration::from_secs(60);
    while bed.sh("host1", "cat /run/mig-log 2>/dev/null") != "began" {
        assert!(Instant::now() < end, "the migration never began on host1");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let r = run.to_string();

    // resume without a decision: refused, saying where it began.
    let out = bed.swh_deploy(&["resume", &r]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("host1: it began running there"), "{err}");
    let out = bed.swh_deploy(&["history", &r]);
    let hist = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        hist.contains("decision: refused: migration unfinished")
            && hist.contains("migration-started: on host1: the migration began running there"),
        "{hist}"
    );

    // The operator lets the migration finish, then says it completed.
    bed.sh("host1", "touch /run/mig-go");
    wait_remote_commands_gone(&bed, Duration::from_secs(60));
    let out = bed.swh_deploy(&["resume", &r, "--skip-migration"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It was not started again.
    assert_eq!(bed.sh("host1", "cat /run/mig-log"), "began");
    assert!(bed.bad_hosts().is_empty(), "{:?}", bed.bad_hosts());
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(run).unwrap();
    let step = d.steps.iter().find(|s| s.name == "migration").unwrap();
    assert_eq!(step.status, swh_deploy_journal::StepStatus::Succeeded);
    assert!(step.ended_at.is_some());
    let resumes: Vec<&swh_deploy_journal::RunEvent> =
        d.events.iter().filter(|e| e.kind == "resume").collect();
    assert_eq!(resumes.len(), 2);
    assert_eq!(resumes[1].detail["decision"], "skip-migration");
    assert_eq!(resumes[1].detail["flag"], "--skip-migration");
    assert!(resumes[1]
        .command_line
        .iter()
        .any(|a| a == "--skip-migration"));
    assert!(!resumes[1].user.is_empty());
    assert_eq!(
        resumes[1].detail["migration_started"]["host1"],
        serde_json::json!(true)
    );
    let started: Vec<&swh_deploy_journal::RunEvent> = d
        .events
        .iter()
        .filter(|e| e.kind == "migration-started")
        .collect();
    assert_eq!(started.len(), 2, "one per resume");
    assert!(started.iter().all(|e| e.detail["host"] == "host1"));
}

#[test]
fn recover_does_not_count_an_enable_that_exited_0_on_a_host_still_disabled() {
    if !need_root() {
        return;
    }
    let bed = Bed::up(1, false);
    // puppet agent --enable "succeeds" without doing anything on host1.
    let shim = bed.sh(
        "host1",
        "cat > /usr/local/sbin/puppet <<'EOF'\n\
         #!/bin/sh\n\
         case \" $* \" in *' --enable '*) exit 0 ;; esac\n\
         for p in /usr/local/bin/puppet /usr/bin/puppet; do [ -x \"$p\" ] && exec \"$p\" \"$@\"; done\n\
         exit 127\n\
         EOF\n\
         chmod 755 /usr/local/sbin/puppet && command -v puppet",
    );
    assert_eq!(shim, "/usr/local/sbin/puppet");
    let out = bed.sh(
        "host1",
        "puppet agent --disable 'swh-deploy 1: test' 2>&1; echo rc=$?",
    );
    assert_eq!(bed.bad_hosts(), ["host1: active disabled"], "{out}");
    // A dead run (a reaped pid) left enable-puppet pending on host1.
    let mut j = Journal::open(&bed.journal()).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    j.set_identity("bob", dead, &swh_deploy_journal::this_hostname());
    let run = j
        .start_run(&swh_deploy_journal::NewRun {
            command_line: vec!["swh-deploy".into(), "upgrade".into()],
            mode: "long-standing".into(),
            parameters: serde_json::json!({}),
        })
        .unwrap();
    j.add_compensation(run, "host1", "enable-puppet").unwrap();
    drop(j);
    let site = bed.dir.path().join("site.toml");
    let out = bed.swh_deploy(&["recover", "--site", site.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAILED   enable-puppet  host1")
            && report.contains("exited 0 but the host is not back")
            && report.contains("puppet is still disabled"),
        "{report}"
    );
    let j = Journal::open(&bed.journal()).unwrap();
    assert_eq!(j.pending_compensations(None).unwrap().len(), 1);
    drop(j);
    // Once puppet really enables, recover completes.
    bed.sh("host1", "rm -f /usr/local/sbin/puppet");
    let out = bed.swh_deploy(&["recover", "--site", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(bed.bad_hosts().is_empty());
}
