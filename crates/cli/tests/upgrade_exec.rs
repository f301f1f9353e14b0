//! `swh-deploy upgrade` (executor), `resume`, `recover` and `versions`
//! through the real binary, on test beds of real systemd hosts
//! (systemd-nspawn) with the real local apt repository, real units, real
//! cron and real puppet lock files. Each test starts its own small test bed
//! (2 or 3 hosts) and checks the results ON the hosts.
//!
//! Needs root (network namespaces, systemd-nspawn): skipped otherwise,
//! a failure under CI (`common::skip`).

mod common;

use common::{
    install, loader_service, need_root, site_head, storage_service, systemd_hosts, text,
    KillOnDrop as Guard, StaticBed as Bed, V10, V11,
};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_journal::{Journal, StepStatus};
use swh_deploy_testbed::puppet;

const V12: &str = "1.2-1~swh1";
const PUPPET_LOCK: &str = "/var/cache/puppet/state/agent_disabled.lock";

/// A test bed of `n` systemd hosts with 1.0 installed everywhere, a site
/// file for it and a private journal.
impl Bed {
    fn up(n: usize) -> Bed {
        Bed::up_with(n, false)
    }

    /// The same, with the hosts connected to the test bed's real Puppet
    /// server (pergamon) when `puppet` is set.
    fn up_with(n: usize, puppet: bool) -> Bed {
        let tb = systemd_hosts(n, puppet);
        let bed = Bed::new(tb);
        bed.write_site("30s");
        // Install 1.0 on every host, in parallel.
        let at_v10: Vec<(&str, &str)> = bed.hosts.iter().map(|h| (h.as_str(), V10)).collect();
        install(
            &bed.tb,
            &at_v10,
            &["python3-swh.storage", "python3-swh.loader.git"],
        );
        bed
    }

    /// The site file: every host runs both services; http gate for
    /// storage, systemd gate for the loader.
    fn write_site(&self, deadline: &str) {
        let n = self.hosts.len();
        let site = format!(
            "{}{}{}",
            site_head(
                Some("upgrade-exec-test"),
                &self.tb,
                &format!("host[1-{n}]"),
                Some(16)
            ),
            storage_service(deadline),
            loader_service(deadline)
        );
        std::fs::write(self.site(), site).unwrap();
    }

    fn version(&self, host: &str) -> String {
        self.sh(
            host,
            "dpkg-query -W -f='${Version}' python3-swh.storage python3-swh.loader.git",
        )
    }

    fn spawn(&self, args: &[&str]) -> Guard {
        Guard(
            self.command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// Waits until step `name` of `run` has started (bounded).
    fn wait_step(&self, run: i64, name: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(j) = Journal::open(&self.journal()) {
                if let Ok(d) = j.run_details(run) {
                    if d.steps.iter().any(|s| s.name == name) {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < end,
                "step {name} of run {run} never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// cron active and puppet enabled on every host (checked on the hosts).
    fn assert_cron_and_puppet_back(&self) {
        for h in &self.hosts {
            assert_eq!(
                self.sh(h, "systemctl is-active cron"),
                "active",
                "cron on {h}"
            );
            assert_eq!(
                self.sh(
                    h,
                    &format!("test -e {PUPPET_LOCK} && echo disabled || echo enabled")
                ),
                "enabled",
                "puppet on {h}"
            );
        }
    }
}

/// The value after `label` on the summary line that starts with it.
fn field(summary: &str, label: &str) -> Option<String> {
    summary.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix(label)
            .map(|rest| rest.trim().to_owned())
    })
}

/// `s` with runs of blanks collapsed into one space.
fn squash(s: &str) -> String {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (at most 30 s) until no process is running `pattern` (the ssh
/// clients a killed swh-deploy left behind, and their remote commands).
fn wait_gone(pattern: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    while Command::new("pgrep")
        .args(["-f", pattern])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        assert!(Instant::now() < end, "processes `{pattern}` still running");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rolling_upgrade_then_broken_release_stops_at_the_canary_and_locks_refuse_a_second_run() {
    if !need_root() {
        return;
    }
    let bed = Bed::up(3);
    let before: Vec<String> = bed.hosts.iter().map(|h| bed.main_pids(h)).collect();

    // 1.0 -> 1.1 in batches 1 (canary) then 2.
    let out = bed.swh_deploy(&[
        "upgrade",
        "--service",
        "storage",
        "--service",
        "loader-git",
        "--batch",
        "1,100%",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let summary = text(&out.stdout);
    assert!(summary.contains("run 1: succeeded"), "{summary}");
    assert_eq!(
        field(&summary, "upgraded:").as_deref(),
        Some("host[1-3] (3)"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("python3-swh.storage {V10} -> {V11}: host[1-3]")),
        "{summary}"
    );
    let progress = text(&out.stderr);
    assert!(progress.contains("batch 1/2 (canary): host1"), "{progress}");
    assert!(progress.contains("batch 2/2: host[2-3]"), "{progress}");
    for (h, pids) in bed.hosts.iter().zip(&before) {
        assert_eq!(bed.version(h), format!("{V11}{V11}"), "{h}");
        let now = bed.main_pids(h);
        let (old, new): (Vec<&str>, Vec<&str>) = (
            pids.split_whitespace().collect(),
            now.split_whitespace().collect(),
        );
        assert_eq!(new.len(), 2, "{h}: {now}");
        for (o, n) in old.iter().zip(&new) {
            assert_ne!(o, n, "{h}: MainPID unchanged ({pids} -> {now})");
            assert_ne!(*n, "0", "{h}: a unit is not running ({now})");
        }
        assert_eq!(
            bed.sh(
                h,
                "systemctl is-active gunicorn-swh-storage swh-worker@loader_git | tr '\\n' ' '"
            ),
            "active active"
        );
        assert!(bed
            .sh(
                h,
                &format!("curl -fsS -H 'Host: {h}' http://127.0.0.1:5002/")
            )
            .contains(V11));
    }
    // The journal has the health gate passed on every host.
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(1).unwrap();
    let health: Vec<_> = d.steps.iter().filter(|s| s.name == "health").collect();
    assert_eq!(health.len(), 2);
    assert!(health.iter().all(|s| s.status == StepStatus::Succeeded));
    drop(j);

    // versions: 1.1 on all hosts, nobody behind.
    let out = bed.swh_deploy(&["versions", "--service", "storage", "--color", "never"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains(&format!(
            "python3-swh.storage:\n  {V11:<24} host[1-3] (3)\n"
        )),
        "{}",
        text(&out.stdout)
    );

    // The broken 1.2: the canary fails, the rollout stops (budget 0).
    bed.tb.publish(&[V10, V11, V12]).unwrap();
    bed.write_site("8s");
    let out = bed.swh_deploy(&[
        "upgrade",
        "--service",
        "storage",
        "--service",
        "loader-git",
        "--batch",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(3), "budget exceeded");
    let summary = text(&out.stdout);
    assert!(summary.contains("run 2: budget-exceeded"), "{summary}");
    assert!(
        field(&summary, "unhealthy:").as_deref() == Some("host1 (1)")
            || field(&summary, "failed at restart:").as_deref() == Some("host1 (1)"),
        "{summary}"
    );
    assert_eq!(
        field(&summary, "not done:").as_deref(),
        Some("host[2-3] (2)"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("python3-swh.storage {V11} -> {V12}: host1")),
        "{summary}"
    );
    assert_eq!(bed.version("host1"), format!("{V12}{V12}"));
    for h in ["host2", "host3"] {
        assert_eq!(bed.version(h), format!("{V11}{V11}"), "{h} was not touched");
        assert_eq!(
            bed.sh(h, "systemctl is-active gunicorn-swh-storage"),
            "active"
        );
    }
    // versions shows host1 ahead of the others (the others are behind).
    let versions = |last: &str| {
        bed.swh_deploy(&[
            "versions",
            "-w",
            "host[1-3]",
            "--packages",
            "python3-swh.storage",
            last,
        ])
    };
    let out = versions("--color=never");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(&format!("  {V11:<24} host[2-3] (2) behind")),
        "{}",
        text(&out.stdout)
    );
    // --json: the same survey, per package the versions and their hosts.
    let out = versions("--json");
    assert_eq!(out.status.code(), Some(1));
    let v = common::json_doc(&text(&out.stdout));
    let report = v["packages"][0].to_string();
    assert!(report.contains("python3-swh.storage"), "{v}");
    assert!(report.contains("host[2-3]") && report.contains(V12), "{v}");
    assert_eq!(v["errors"], serde_json::json!({}), "{v}");

    // A second run on a host of a running one is refused with the holder.
    bed.tb.publish(&[V10, V11]).unwrap();
    let mut first = bed.spawn(&[
        "upgrade",
        "-w",
        "host[2-3]",
        "--mode",
        "long-standing",
        "--migration",
        "sleep 30",
    ]);
    bed.wait_step(3, "migration", Duration::from_secs(60));
    let out = bed.swh_deploy(&["upgrade", "-w", "host3", "--service", "storage"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("host host3 is locked by run 3 of ")
            && err.contains(&format!("(pid {} on ", first.0.id())),
        "{err}"
    );
    assert!(err.contains(" since 20"), "{err}");
    // Ctrl-C during the migration (cron stopped, puppet disabled there):
    // the run stops, its compensations run, exit 130.
    for h in ["host2", "host3"] {
        assert_eq!(bed.sh(h, "systemctl is-active cron"), "inactive", "{h}");
        assert!(bed
            .sh(h, &format!("cat {PUPPET_LOCK}"))
            .contains("swh-deploy 3: "));
    }
    // SAFETY: kill(2) on the pid of a child we own.
    unsafe { libc::kill(first.0.id() as libc::pid_t, libc::SIGINT) };
    let status = wait_child(&mut first.0, Duration::from_secs(120));
    assert_eq!(status, Some(130), "interrupted");
    let j = Journal::open(&bed.journal()).unwrap();
    assert!(j.pending_compensations(None).unwrap().is_empty());
    assert_eq!(
        j.run(3).unwrap().status,
        swh_deploy_journal::RunStatus::Interrupted
    );
    drop(j);
    // Its compensations ran: cron and puppet are back on its hosts.
    for h in ["host2", "host3"] {
        assert_eq!(
            bed.sh(h, "systemctl is-active cron"),
            "active",
            "cron on {h}"
        );
        assert_eq!(
            bed.sh(h, &format!("test -e {PUPPET_LOCK} || echo enabled")),
            "enabled"
        );
    }
    let out = bed.swh_deploy(&["history"]);
    let h = text(&out.stdout);
    assert!(h.contains("refused"), "{h}");
}

fn wait_child(c: &mut Child, timeout: Duration) -> Option<i32> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() > end {
            let _ = c.kill();
            panic!("swh-deploy did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_host_cut_mid_batch_is_unreachable_and_a_failing_gate_stops_the_rollout() {
    if !need_root() {
        return;
    }
    let bed = Bed::up_with(2, true);
    // host2's puppet run takes 60 s (its catalog sleeps, per-host Hiera
    // data on the real Puppet server): the link is cut while it runs.
    puppet::write_data(
        &bed.tb,
        "hosts/host2.yaml",
        "swh_testbed::run_seconds: 60\n",
    )
    .unwrap();
    let mut run = bed.spawn(&[
        "upgrade",
        "-w",
        "host[1-2]",
        "--mode",
        "config-change",
        "--max-fail",
        "1",
    ]);
    bed.wait_step(1, "puppet-agent", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    bed.tb.cut("host2").unwrap();
    let status = wait_child(&mut run.0, Duration::from_secs(120));
    let mut stdout = String::new();
    use std::io::Read;
    run.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status, Some(1), "{stdout}");
    assert_eq!(
        field(&stdout, "unreachable:").as_deref(),
        Some("host2 (1)"),
        "{stdout}"
    );
    assert_eq!(
        field(&stdout, "upgraded:").as_deref(),
        Some("host1 (1)"),
        "{stdout}"
    );
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(1).unwrap();
    let r = d
        .results
        .iter()
        .find(|r| r.host == "host2" && r.outcome != swh_deploy_journal::Outcome::Ok)
        .expect("a failed result for host2");
    assert_eq!(r.outcome, swh_deploy_journal::Outcome::Unreachable);
    // host2 went no further than puppet.
    let step = d.steps.iter().find(|s| s.index == r.step).unwrap();
    assert_eq!(step.name, "puppet-agent");
    assert_eq!(bed.version("host1"), format!("{V11}{V11}"));
    bed.tb.restore("host2").unwrap();
    assert_eq!(bed.version("host2"), format!("{V10}{V10}"));

    // A canary that restarts fine but never passes its health gate stops
    // the rollout: the gate retries until its deadline, the host is
    // unhealthy, the next batch does not start.
    let site = std::fs::read_to_string(bed.site()).unwrap().replace(
        r#"health = { check = "systemd", deadline = "30s", interval = "500ms" }"#,
        r#"health = { check = "command", command = "test -e /run/worker-ready", timeout = "5s", deadline = "3s", interval = "500ms" }"#,
    );
    std::fs::write(bed.site(), site).unwrap();
    let out = bed.swh_deploy(&[
        "upgrade",
        "-w",
        "host[1-2]",
        "--service",
        "loader-git",
        "--batch",
        "1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    // --json: one event per line, the summary last.
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "run");
    let failed_gate = events
        .iter()
        .find(|e| e["event"] == "step-done" && e["name"] == "health")
        .unwrap();
    assert_eq!(failed_gate["failed"][0]["host"], "host1");
    assert_eq!(failed_gate["failed"][0]["outcome"], "unhealthy");
    assert!(events.iter().any(|e| e["event"] == "stop"));
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["schema"], 1);
    assert_eq!(summary["status"], "budget-exceeded");
    assert_eq!(summary["unhealthy"], "host1");
    assert_eq!(summary["not_done"], "host2");
    assert_eq!(
        bed.version("host2"),
        format!("{V10}{V10}"),
        "host2 untouched"
    );
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(2).unwrap();
    let gate = d.steps.iter().find(|s| s.name == "health").unwrap();
    assert_eq!(gate.status, StepStatus::Failed);
    let r = d.results.iter().find(|r| r.step == gate.index).unwrap();
    assert_eq!(r.outcome, swh_deploy_journal::Outcome::Unhealthy);
    // Retried until the deadline (3 s, every 500 ms): several attempts.
    let attempts: u32 = r
        .stdout
        .split("after ")
        .nth(1)
        .and_then(|x| x.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(attempts >= 3, "{}", r.stdout);
    assert!(r.duration_ms >= 2500, "{}", r.duration_ms);
    drop(j);

    // config-change and puppet's detailed exit codes: 2 (changes applied)
    // is a success, 6 (changes and failures) stops the host there.
    bed.write_site("30s");
    // A new storage setting for every host (a change: 2 on host1), and a
    // failing resource on host2 (a change and a failure: 6).
    bed.sh("host1", "systemctl reset-failed");
    let common =
        std::fs::read_to_string(puppet::env_dir(&bed.tb).join("data/common.yaml")).unwrap();
    let changed = common.replace(
        "cls: memory\n",
        "cls: memory\n        # exit codes 2 and 6\n",
    );
    assert_ne!(common, changed);
    puppet::write_data(&bed.tb, "common.yaml", &changed).unwrap();
    puppet::write_data(&bed.tb, "hosts/host2.yaml", "swh_testbed::fail: true\n").unwrap();
    // (the puppet run slowed down for the cut is still sleeping on host2;
    // real puppet takes over the run lock of a dead run)
    bed.sh(
        "host2",
        "pkill -f 'puppet agent [-]t'; pkill -f '^/bin/sleep 60'; sleep 0.5; echo done",
    );
    let out = bed.swh_deploy(&[
        "upgrade",
        "-w",
        "host[1-2]",
        "--mode",
        "config-change",
        "--max-fail",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let summary = text(&out.stdout);
    assert_eq!(
        field(&summary, "upgraded:").as_deref(),
        Some("host1 (1)"),
        "{summary}"
    );
    assert_eq!(
        field(&summary, "failed at puppet-agent:").as_deref(),
        Some("host2 (1)"),
        "{summary}"
    );
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(3).unwrap();
    let puppet = d.steps.iter().find(|s| s.name == "puppet-agent").unwrap();
    let rcs: Vec<(String, Option<i32>)> = d
        .results
        .iter()
        .filter(|r| r.step == puppet.index)
        .map(|r| (r.host.clone(), r.rc))
        .collect();
    assert_eq!(
        rcs,
        [("host1".to_owned(), Some(2)), ("host2".to_owned(), Some(6))]
    );
    assert_eq!(
        bed.version("host2"),
        format!("{V10}{V10}"),
        "host2 stopped at puppet"
    );
}

#[test]
fn kill_9_during_a_long_standing_upgrade_then_recover_and_resume() {
    if !need_root() {
        return;
    }
    let bed = Bed::up(2);
    // The migration waits for a file on host1 (at most 120 s).
    // Each start of the migration is logged in /run/migrate-log.
    let migration = "echo started >> /run/migrate-log; \
        for i in $(seq 1200); do test -e /run/migrate-go && exit 0; sleep 0.1; done; exit 1";
    let args = [
        "upgrade",
        "-w",
        "host[1-2]",
        "--mode",
        "long-standing",
        "--migration",
        migration,
    ];

    // Phase 1: killed while puppet is being disabled (its compensation is
    // already in the journal).
    let mut run = bed.spawn(&args);
    bed.wait_step(1, "disable-puppet", Duration::from_secs(60));
    run.0.kill().unwrap();
    let _ = run.0.wait();
    // The orphaned `puppet agent --disable` commands finish first.
    wait_gone("agent --disable");
    // Any command warns, a new run is refused until recover.
    let out = bed.swh_deploy(&["upgrade", "-w", "host1", "--service", "storage"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("pending"),
        "{}",
        text(&out.stderr)
    );
    // host2 cannot be reached: its compensations stay pending (exit 1),
    // host1's are done.
    bed.tb.cut("host2").unwrap();
    let out = bed.swh_deploy(&["recover"]);
    assert_eq!(out.status.code(), Some(1));
    let report = squash(&text(&out.stdout));
    assert!(report.contains("done start-cron host1"), "{report}");
    assert!(
        report.contains("FAILED start-cron host2 (run 1): unreachable"),
        "{report}"
    );
    let j = Journal::open(&bed.journal()).unwrap();
    let pending: Vec<String> = j
        .pending_compensations(None)
        .unwrap()
        .into_iter()
        .map(|c| format!("{} {}", c.host, c.action))
        .collect();
    assert_eq!(pending, ["host2 start-cron", "host2 enable-puppet"]);
    drop(j);
    bed.tb.restore("host2").unwrap();
    let out = bed.swh_deploy(&["recover"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        squash(&text(&out.stdout)).contains("done start-cron host2"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        squash(&text(&out.stdout)).contains("done enable-puppet host2"),
        "{}",
        text(&out.stdout)
    );
    bed.assert_cron_and_puppet_back();

    // Phase 2: killed during the migration (cron stopped, puppet disabled
    // on both hosts, checked there first).
    let mut run = bed.spawn(&args);
    bed.wait_step(5, "migration", Duration::from_secs(60));
    for h in &bed.hosts {
        assert_eq!(bed.sh(h, "systemctl is-active cron"), "inactive", "{h}");
        assert!(
            bed.sh(h, &format!("cat {PUPPET_LOCK}"))
                .contains("swh-deploy 5: long-standing upgrade"),
            "{h}"
        );
    }
    run.0.kill().unwrap();
    let _ = run.0.wait();
    let out = bed.swh_deploy(&["history"]);
    assert!(
        text(&out.stderr).contains("compensation(s) pending on host[1-2]"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("interrupted"),
        "{}",
        text(&out.stdout)
    );
    let out = bed.swh_deploy(&["recover", "5"]);
    assert_eq!(out.status.code(), Some(0));
    bed.assert_cron_and_puppet_back();
    assert_eq!(bed.version("host1"), format!("{V10}{V10}"));

    // resume finishes run 5: cron and puppet are stopped again (recover
    // undid them), the migration is skipped on the operator's word, both
    // hosts are upgraded, and cron and puppet are back at the end.
    bed.sh("host1", "touch /run/migrate-go");
    // The migration was started and did not finish: resume refuses until
    // the operator says whether to re-run it, and changes nothing.
    let out = bed.swh_deploy(&["resume", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the migration was started on host1")
            && text(&out.stderr).contains("--rerun-migration"),
        "{}",
        text(&out.stderr)
    );
    bed.assert_cron_and_puppet_back();
    // The operator checked: the migration completed (the killed run's
    // remote loop saw /run/migrate-go). It is not started again.
    let out = bed.swh_deploy(&["resume", "5", "--skip-migration"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(bed.sh("host1", "cat /run/migrate-log"), "started");
    let summary = text(&out.stdout);
    assert!(summary.contains("run 5: succeeded"), "{summary}");
    assert_eq!(
        field(&summary, "upgraded:").as_deref(),
        Some("host[1-2] (2)"),
        "{summary}"
    );
    for h in &bed.hosts {
        assert_eq!(bed.version(h), format!("{V11}{V11}"), "{h}");
    }
    bed.assert_cron_and_puppet_back();
    let j = Journal::open(&bed.journal()).unwrap();
    assert!(j.pending_compensations(None).unwrap().is_empty());
    drop(j);

    // A finished run cannot be resumed.
    let out = bed.swh_deploy(&["resume", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("only interrupted or budget-exceeded runs can be resumed"));
}

#[test]
fn resume_skips_hosts_that_finished() {
    if !need_root() {
        return;
    }
    let bed = Bed::up(2);
    // A health gate that waits on host2 for a file: the run is killed
    // there, after host1's batch finished.
    let site = std::fs::read_to_string(bed.site()).unwrap().replace(
        r#"health = { check = "systemd", deadline = "30s", interval = "500ms" }"#,
        r#"health = { check = "command", command = "test ! -e /run/hold", timeout = "5s", deadline = "60s", interval = "200ms" }"#,
    );
    std::fs::write(bed.site(), site).unwrap();
    bed.sh("host2", "touch /run/hold");
    let mut run = bed.spawn(&["upgrade", "-w", "host[1-2]", "--batch", "1"]);
    // Wait for the second batch's health gate (step indexes: batch 1 has
    // 6 steps, 0-5; batch 2's health gate is the 5th step of batch 2).
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let started = Journal::open(&bed.journal())
            .and_then(|j| j.run_details(1))
            .map(|d| d.steps.iter().filter(|s| s.name == "health").count() == 2)
            .unwrap_or(false);
        if started {
            break;
        }
        assert!(Instant::now() < end, "second health gate never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let host1_pids = bed.main_pids("host1");
    run.0.kill().unwrap();
    let _ = run.0.wait();
    bed.sh("host2", "rm -f /run/hold");
    let out = bed.swh_deploy(&["resume", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let progress = squash(&text(&out.stderr));
    assert!(progress.contains("run 1 (resumed)"), "{progress}");
    // host1 finished its batch: nothing is redone there.
    assert!(
        progress.contains("restart already done on host1"),
        "{progress}"
    );
    assert!(
        progress.contains("restart already done on host2"),
        "{progress}"
    );
    assert!(progress.contains("health ok host2"), "{progress}");
    assert_eq!(
        bed.main_pids("host1"),
        host1_pids,
        "host1 was not restarted again"
    );
    assert_eq!(
        field(&text(&out.stdout), "upgraded:").as_deref(),
        Some("host[1-2] (2)")
    );
}

#[test]
fn hosts_go_through_their_steps_on_their_own_and_the_budget_stops_new_steps() {
    if !need_root() {
        return;
    }
    let bed = Bed::up(2);
    // The loader's gate takes 8 s on a host that has /run/slow.
    let site = std::fs::read_to_string(bed.site()).unwrap().replace(
        r#"health = { check = "systemd", deadline = "30s", interval = "500ms" }"#,
        r#"health = { check = "command", command = "test ! -e /run/slow || sleep 8", timeout = "20s", deadline = "60s", interval = "200ms" }"#,
    );
    std::fs::write(bed.site(), site).unwrap();
    let hook = "/etc/apt/apt.conf.d/99swh-deploy-test";
    let upgrade = ["upgrade", "-w", "host[1-2]", "--service", "loader-git"];

    // --max-fail 0 (the default): host2's `apt-get update` fails at once
    // (a real apt hook), while host1's takes 6 s. host1 finishes that
    // step (journaled) but starts no change step after it.
    bed.sh(
        "host1",
        &format!("echo 'APT::Update::Pre-Invoke {{\"sleep 6\";}};' > {hook}"),
    );
    bed.sh(
        "host2",
        &format!("echo 'APT::Update::Pre-Invoke {{\"false\";}};' > {hook}"),
    );
    let out = bed.swh_deploy(&upgrade);
    let summary = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{summary}");
    assert_eq!(
        field(&summary, "failed at apt-get-update:").as_deref(),
        Some("host2 (1)"),
        "{summary}"
    );
    assert_eq!(
        field(&summary, "not done:").as_deref(),
        Some("host1 (1)"),
        "{summary}"
    );
    assert!(
        summary.contains("no new step or batch started"),
        "{summary}"
    );
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(1).unwrap();
    let index = |name: &str| d.steps.iter().find(|s| s.name == name).unwrap().index;
    let result = |step: &str, host: &str| {
        d.results
            .iter()
            .find(|r| r.step == index(step) && r.host == host)
    };
    let update = result("apt-get-update", "host1").expect("host1's update is journaled");
    assert_eq!(update.outcome, swh_deploy_journal::Outcome::Ok);
    assert!(update.duration_ms >= 5000, "{}", update.duration_ms);
    assert!(
        d.results.iter().all(|r| r.host != "host1"
            || !["dist-upgrade", "restart", "health"].contains(
                &d.steps
                    .iter()
                    .find(|s| s.index == r.step)
                    .unwrap()
                    .name
                    .as_str()
            )),
        "host1 started a change step after the budget was exceeded: {:?}",
        d.results
    );
    drop(j);
    assert_eq!(bed.version("host1"), format!("{V10}{V10}"));
    for h in ["host1", "host2"] {
        bed.sh(h, &format!("rm -f {hook}"));
    }

    // host2's gate takes 8 s: host1 does not wait for it, its
    // versions-after ends before host2's gate does.
    bed.sh("host2", "touch /run/slow");
    let out = bed.swh_deploy(&upgrade);
    let summary = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{summary}");
    assert_eq!(
        field(&summary, "upgraded:").as_deref(),
        Some("host[1-2] (2)"),
        "{summary}"
    );
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(2).unwrap();
    let index = |name: &str| d.steps.iter().find(|s| s.name == name).unwrap().index;
    let result = |step: &str, host: &str| {
        d.results
            .iter()
            .find(|r| r.step == index(step) && r.host == host)
            .unwrap_or_else(|| panic!("no {step} result for {host}"))
    };
    let slow = result("health", "host2");
    assert!(slow.duration_ms >= 7500, "{}", slow.duration_ms);
    let fast = result("versions-after", "host1");
    assert!(
        fast.recorded_at < slow.recorded_at,
        "host1's versions-after ended at {}, after host2's gate ({})",
        fast.recorded_at,
        slow.recorded_at
    );
    // Still one journal row per step, closed when its last host ended.
    let gate = d.steps.iter().find(|s| s.name == "health").unwrap();
    assert_eq!(gate.status, StepStatus::Succeeded);
    assert_eq!(d.results.iter().filter(|r| r.step == gate.index).count(), 2);
    for h in ["host1", "host2"] {
        assert_eq!(bed.version(h), format!("{V11}{V11}"), "{h}");
    }
    bed.sh("host2", "rm -f /run/slow");

    // Connections, counted by host1's real sshd ("Accepted publickey",
    // one per new connection; each count is one itself): by default the
    // run's steps share one; `--no-reuse` opens one per command (6 steps).
    let accepted = || -> usize {
        bed.sh(
            "host1",
            "journalctl -o cat --no-pager | grep -c 'Accepted publickey'",
        )
        .parse()
        .unwrap()
    };
    let n0 = accepted();
    let out = bed.swh_deploy(&upgrade);
    assert_eq!(out.status.code(), Some(0));
    let n1 = accepted();
    let reused = n1 - n0 - 1;
    let out = bed.swh_deploy(&[&upgrade[..], &["--no-reuse"]].concat());
    assert_eq!(out.status.code(), Some(0));
    let fresh = accepted() - n1 - 1;
    assert!(reused <= 2, "{reused} connections with reuse");
    assert!(fresh >= 6, "{fresh} connections with --no-reuse");
}
