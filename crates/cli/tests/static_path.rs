//! The static-path commands through the real binary: `site check`,
//! `upgrade --dry-run` (and its refusal without `--dry-run` when the hosts'
//! ssh config is missing), `history`.

mod common;

use common::{json_doc, text, with_journal};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use swh_deploy_journal::{Journal, NewRun, Outcome, RunStatus, StepStatus};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A fresh directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("swh-deploy-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn swh_deploy(args: &[&str], journal: &Path) -> Output {
    with_journal(journal, args).output().unwrap()
}

#[test]
fn site_check_accepts_the_examples_and_locates_errors() {
    let dir = TempDir::new("site");
    let journal = dir.0.join("journal.sqlite");
    let sandbox = examples().join("sandbox.toml");
    let out = swh_deploy(
        &["site", "check", "--site", sandbox.to_str().unwrap()],
        &journal,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ok: 1 environment(s), 2 group(s), 2 service(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("group @rpc [staging]: host[1-2] (2 host(s))"),
        "{stdout}"
    );

    let bad = dir.0.join("bad.toml");
    std::fs::write(
        &bad,
        "[groups.rpc]\nnodes = \"host1\"\n\n[services.storage]\nkind = \"rpc\"\nunits = [\"gunicorn swh\"]\ngroups = [\"rpc\"]\n",
    )
    .unwrap();
    let out = swh_deploy(
        &["site", "check", "--site", bad.to_str().unwrap()],
        &journal,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "swh-deploy: {}:6:10: invalid systemd unit name `gunicorn swh`: character ' ' is not allowed (only ASCII letters, digits and `:-_.\\@`)\n",
            bad.display()
        )
    );
}

#[test]
fn upgrade_dry_run_prints_the_plan_and_touches_nothing() {
    let dir = TempDir::new("dry");
    let journal = dir.0.join("journal.sqlite");
    let sandbox = examples().join("sandbox.toml");
    let site = sandbox.to_str().unwrap();
    let out = swh_deploy(
        &[
            "upgrade",
            "--site",
            site,
            "--service",
            "storage",
            "--batch",
            "1",
            "--dry-run",
        ],
        &journal,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.starts_with("nominal upgrade of 2 host(s): host[1-2] (dry run)\n"),
        "{plan}"
    );
    assert!(
        plan.contains("batch 1/2 (canary): host1 (1 host(s))"),
        "{plan}"
    );
    assert!(
        plan.contains("systemctl restart gunicorn-swh-storage"),
        "{plan}"
    );
    assert!(!journal.exists(), "a dry run creates no journal");

    let out = swh_deploy(
        &[
            "upgrade",
            "--site",
            site,
            "-w",
            "host[1-4]",
            "--mode",
            "long-standing",
            "--dry-run",
            "--json",
        ],
        &journal,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["mode"], "long-standing");
    assert_eq!(json["prepare"][0]["compensation"]["action"], "start-cron");
    assert_eq!(
        json["finish"][1]["actions"][0]["shell"],
        "puppet agent --enable"
    );

    // Without --dry-run, while the sandbox test bed is not up (its ssh
    // config is missing): a clear refusal, exit 1, nothing written.
    let out = swh_deploy(
        &["upgrade", "--site", site, "--service", "storage"],
        &journal,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("[ssh] config /run/swh-deploy-testbed/default/ssh_config does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(!journal.exists());

    // Bad values are refused before anything is planned.
    let out = swh_deploy(
        &[
            "upgrade",
            "--site",
            site,
            "--service",
            "storage",
            "--batch",
            "0",
            "--dry-run",
        ],
        &journal,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid --batch `0`: a batch of 0 hosts has no hosts"),
        "{}",
        text(&out.stderr)
    );
    let out = swh_deploy(
        &[
            "upgrade",
            "--site",
            site,
            "--service",
            "storage",
            "--packages",
            "Python3",
            "--dry-run",
        ],
        &journal,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid Debian package name `Python3`"));
    // --no-reuse and --control-persist exclude each other; 0 s is refused.
    for bad in [
        &["--no-reuse", "--control-persist", "5"][..],
        &["--control-persist", "0"][..],
    ] {
        let mut args = vec!["upgrade", "--site", site, "--service", "storage"];
        args.extend(bad);
        let out = swh_deploy(&args, &journal);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(text(&out.stderr).contains("--control-persist"), "{bad:?}");
        assert!(!journal.exists());
    }
    let out = swh_deploy(
        &["upgrade", "--site", site, "--service", "nope", "--dry-run"],
        &journal,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no service `nope`"));
}

#[test]
fn history_lists_runs_details_and_warns_about_pending_compensations() {
    let dir = TempDir::new("history");
    let journal = dir.0.join("journal.sqlite");
    let out = swh_deploy(&["history"], &journal);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("no runs in "));

    let mut j = Journal::open(&journal).unwrap();
    let run = j
        .start_run(&NewRun {
            command_line: vec![
                "swh-deploy".into(),
                "upgrade".into(),
                "--mode".into(),
                "long-standing".into(),
            ],
            mode: "long-standing".into(),
            parameters: serde_json::json!({}),
        })
        .unwrap();
    j.start_step(run, 0, "stop-cron", "change", None, "host[1-3]")
        .unwrap();
    j.add_compensation(run, "host1", "start-cron").unwrap();
    j.add_compensation(run, "host2", "start-cron").unwrap();
    for (h, outcome) in [
        ("host1", Outcome::Ok),
        ("host2", Outcome::Ok),
        ("host3", Outcome::Unreachable),
    ] {
        j.record_host_result(
            run,
            0,
            h,
            None,
            b"",
            b"ssh: connect timed out",
            Duration::from_millis(10),
            outcome,
        )
        .unwrap();
    }
    j.end_step(run, 0, StepStatus::Failed).unwrap();
    j.end_run(run, RunStatus::Interrupted).unwrap();
    drop(j);

    let out = swh_deploy(&["history"], &journal);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{run:>5}  interrupted      long-standing")),
        "{stdout}"
    );
    assert!(
        stdout.contains("swh-deploy upgrade --mode long-standing"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("warning: 2 compensation(s) pending on host[1-2]"),
        "{}",
        text(&out.stderr)
    );

    // --json: {"schema": 1, "runs": [...]}, then one run's details.
    let out = swh_deploy(&["history", "--json"], &journal);
    assert!(out.status.success());
    let v = json_doc(&text(&out.stdout));
    assert_eq!(v["runs"][0]["id"], run);
    assert_eq!(v["runs"][0]["status"], "interrupted");
    assert_eq!(v["runs"][0]["mode"], "long-standing");
    let out = swh_deploy(&["history", &run.to_string(), "--json"], &journal);
    assert!(out.status.success());
    let v = json_doc(&text(&out.stdout));
    assert_eq!(v["run"]["id"], run);
    assert_eq!(v["steps"][0]["name"], "stop-cron");
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    assert_eq!(v["compensations"].as_array().unwrap().len(), 2);

    let out = swh_deploy(&["history", &run.to_string()], &journal);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for expected in [
        format!("run {run}: interrupted (long-standing)"),
        format!("resumable: swh-deploy resume {run}"),
        "step 1 stop-cron [change] on host[1-3]: failed".to_string(),
        "    ok: host[1-2]".to_string(),
        "    unreachable: host3".to_string(),
        "    host3: ssh: connect timed out".to_string(),
        "  start-cron on host1: PENDING since ".to_string(),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    let out = swh_deploy(&["history", "999"], &journal);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().last().unwrap(),
        "swh-deploy: no run 999 in the journal"
    );
}

#[test]
fn exit_codes_are_documented() {
    let dir = TempDir::new("codes");
    let out = swh_deploy(&["exit-codes"], &dir.0.join("j"));
    let stdout = text(&out.stdout);
    for code in [
        "3    failure budget exceeded",
        "4    refused: hosts are locked",
        "5    refused: compensations pending",
    ] {
        assert!(stdout.contains(code), "{stdout}");
    }
}

#[test]
fn malformed_site_stops_upgrade_before_anything() {
    let dir = TempDir::new("badsite");
    let journal = dir.0.join("journal.sqlite");
    let bad = dir.0.join("site.toml");
    std::fs::write(
        &bad,
        "[groups.rpc]\nnodes = \"host1\"\n[groups.rpc]\nnodes = \"host2\"\n",
    )
    .unwrap();
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut args = vec!["upgrade", "--site", bad.to_str().unwrap(), "-w", "host1"];
        args.extend_from_slice(extra);
        let out = swh_deploy(&args, &journal);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            format!(
                "swh-deploy: {}:3:9: duplicate key `rpc`: it is already defined above\n",
                bad.display()
            )
        );
        assert!(out.stdout.is_empty());
        assert!(!journal.exists());
    }
}
