//! Hostile site files and host names through the real binary: options that
//! would weaken host-key checking and names ssh would read as options are
//! refused before anything is planned or journaled; first contact with a
//! new host needs `--accept-new-host-keys`, which the journal records.

mod common;

use common::{bin, logged, text, with_journal};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use swh_deploy_testbed::{Options, Testbed};

/// `swh-deploy ARGS` with a private journal path and no site from the
/// environment.
fn swh_deploy(journal: &Path, args: &[&str]) -> Output {
    logged(args, &mut with_journal(journal, args))
}

/// A site with one service on group `rpc` = `nodes`, plus `ssh` lines.
fn site(dir: &Path, nodes: &str, ssh: &str) -> PathBuf {
    let path = dir.join("site.toml");
    std::fs::write(
        &path,
        format!(
            r#"[site]
default_environment = "staging"

[ssh]
{ssh}

[environments.staging]

[groups.rpc]
environment = "staging"
nodes = "{nodes}"

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc"]
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_node_named_like_an_option_is_refused_by_site_check_and_upgrade_with_nothing_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let bad = site(dir.path(), "-oProxyCommand=id", "");
    let bad = bad.to_str().unwrap();
    let out = swh_deploy(&journal, &["site", "check", "--site", bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "{bad}:11:10: invalid node set `-oProxyCommand=id`: `-oProxyCommand=id` is not a host name"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = swh_deploy(
        &journal,
        &["upgrade", "--site", bad, "--service", "storage"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("{bad}:11:10: ")));
    assert!(!journal.exists(), "the journal was written");

    // Typed on the command line, in both places a node set goes.
    let good = site(dir.path(), "host[1-2]", "");
    let good = good.to_str().unwrap();
    for args in [
        &["upgrade", "--site", good, "-w=host1,-oProxyCommand=id"][..],
        &["upgrade", "--site", good, "--", "-oProxyCommand=id"],
    ] {
        let out = swh_deploy(&journal, args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(
                "(command line): `-oProxyCommand=id` is not a host name: character '=' is not allowed"
            ),
            "{}",
            text(&out.stderr)
        );
        assert!(!journal.exists(), "the journal was written");
    }
}

#[test]
fn site_options_weakening_host_keys_are_refused_by_every_command_that_loads_the_site() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    for opt in [
        "StrictHostKeyChecking=false",
        "StrictHostKeyChecking accept-new",
        "userknownhostsfile=/dev/null",
    ] {
        let path = site(
            dir.path(),
            "host[1-2]",
            &format!("options = [\"ServerAliveInterval=5\", \"{opt}\"]"),
        );
        let path = path.to_str().unwrap();
        for args in [
            &["site", "check", "--site", path][..],
            &["upgrade", "--site", path, "--service", "storage"],
            &[
                "upgrade",
                "--site",
                path,
                "--service",
                "storage",
                "--dry-run",
            ],
            &["versions", "--site", path, "-w", "host1"],
        ] {
            let out = swh_deploy(&journal, args);
            assert_eq!(out.status.code(), Some(1), "{opt}: {args:?}");
            let err = text(&out.stderr);
            assert!(err.contains(&format!("{path}:5:37: `")), "{opt}: {err}");
            assert!(err.contains("is refused"), "{opt}: {err}");
        }
        assert!(!journal.exists(), "the journal was written");
    }
}

/// An upgrade on a loopback host missing from known_hosts: refused
/// (unreachable, host-key verification) without the flag, the host reached
/// and its key pinned with it, and the flag in the journal's command line.
#[test]
fn a_new_host_is_reached_only_with_accept_new_host_keys_and_the_journal_says_so() {
    let tb = Testbed::up(&Options {
        loopback: Some(1),
        apt_repo: false,
        ..Options::default()
    })
    .expect("loopback test bed");
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let path = site(
        dir.path(),
        "host1",
        &format!(
            "config = \"{}\"\nconnect_timeout = \"3s\"",
            tb.ssh_config_path().display()
        ),
    );
    std::fs::write(tb.known_hosts_path(), "").unwrap();
    let upgrade = |accept: bool| {
        let mut argv = vec![
            bin().to_string(),
            "upgrade".into(),
            "--site".into(),
            path.display().to_string(),
            "--service".into(),
            "storage".into(),
        ];
        if accept {
            argv.push("--accept-new-host-keys".into());
        }
        let out = tb
            .exec_command(&argv)
            .env("SWH_DEPLOY_JOURNAL", &journal)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ {argv:?}\n-> {:?}\n{}{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    };
    let out = upgrade(false);
    assert_ne!(out.status.code(), Some(0));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.lines()
            .any(|l| l.trim_start().starts_with("unreachable:") && l.contains("host1")),
        "{all}"
    );
    assert!(all.contains("Host key verification failed"), "{all}");
    assert_eq!(std::fs::read_to_string(tb.known_hosts_path()).unwrap(), "");

    let _ = upgrade(true);
    let pinned = std::fs::read_to_string(tb.known_hosts_path()).unwrap();
    assert!(pinned.contains("ssh-ed25519"), "key not pinned: {pinned:?}");
    let j = swh_deploy_journal::Journal::open(&journal).unwrap();
    let first = j.run_details(1).unwrap();
    let second = j.run_details(2).unwrap();
    assert!(!first
        .run
        .command_line
        .contains(&"--accept-new-host-keys".to_string()));
    assert!(second
        .run
        .command_line
        .contains(&"--accept-new-host-keys".to_string()));
    // The host answered: no step of the second run found it unreachable.
    assert!(
        second
            .results
            .iter()
            .all(|r| r.outcome != swh_deploy_journal::Outcome::Unreachable),
        "{:?}",
        second.results
    );
    let out = swh_deploy(&journal, &["history", "2"]);
    assert!(text(&out.stdout).contains("--accept-new-host-keys"));
}

/// The ssh working directories of `pid` under `tmp`.
fn workdirs_of(tmp: &Path, pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("swh-deploy-ssh.{pid}-")))
        })
        .collect()
}

/// kill -9 of `swh-deploy run` leaves its ssh working directory (0700)
/// behind; the next run removes it.
#[test]
fn a_control_directory_left_by_kill_9_is_removed_by_the_next_run() {
    use std::os::unix::fs::PermissionsExt;
    let tb = Testbed::up(&Options {
        loopback: Some(1),
        apt_repo: false,
        ..Options::default()
    })
    .expect("loopback test bed");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tb.ssh_config_path().display().to_string();
    let run = |cmd: &str| {
        let mut c = tb.exec_command(&[bin(), "run", "-F", &cfg, "-w", "host1", cmd]);
        c.env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut child = run("sleep 30").spawn().unwrap();
    // `ip netns exec` execs swh-deploy: same pid.
    let pid = child.id();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while workdirs_of(tmp.path(), pid).is_empty() {
        assert!(std::time::Instant::now() < end, "no working directory");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let left = workdirs_of(tmp.path(), pid);
    assert_eq!(left.len(), 1, "{left:?}");
    let mode = std::fs::metadata(&left[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", left[0].display());

    let status = run("true").status().unwrap();
    assert!(status.success());
    assert!(!left[0].exists(), "{} left", left[0].display());
    assert_eq!(
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e
                .file_name()
                .to_string_lossy()
                .starts_with("swh-deploy-ssh."))
            .count(),
        0,
        "the second run's own directory is removed when it ends"
    );
}

/// A host cut during a slow remote step that is not its first (so the
/// command runs over the shared master connection, whose client says
/// nothing when the master loses the host) is reported unreachable, with
/// ssh's own message, in the summary and the journal.
#[test]
fn a_host_cut_during_a_later_slow_step_is_unreachable_with_sshs_message() {
    let tb = Testbed::up(&Options {
        hosts: 2,
        systemd: true,
        apt_repo: false,
        ..Options::default()
    })
    .expect("systemd test bed");
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let path = site(
        dir.path(),
        "host[1-2]",
        &format!(
            "config = \"{}\"\nconnect_timeout = \"3s\"",
            tb.ssh_config_path().display()
        ),
    );
    // stop-cron and disable-puppet come first on both hosts; the migration
    // (host1 only) takes 60 s and host1 is cut while it runs.
    let mut child = Command::new(bin())
        .args([
            "upgrade",
            "--site",
            path.to_str().unwrap(),
            "--service",
            "storage",
            "--mode",
            "long-standing",
            "--migration",
            "echo started; sleep 60",
        ])
        .env("SWH_DEPLOY_JOURNAL", &journal)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let started = swh_deploy_journal::Journal::open(&journal)
            .and_then(|j| j.run_details(1))
            .is_ok_and(|d| d.steps.iter().any(|s| s.name == "migration"));
        if started {
            break;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("the migration never started");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    tb.cut("host1").unwrap();
    let cut_at = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let lost_after = cut_at.elapsed();
    let stdout = text(&out.stdout);
    eprintln!("{stdout}{}", text(&out.stderr));
    assert_ne!(out.status.code(), Some(0));
    // Keepalive 5 s x 3: well before the 60 s of the migration.
    assert!(
        lost_after < std::time::Duration::from_secs(40),
        "{lost_after:?}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("unreachable:") && l.contains("host1")),
        "{stdout}"
    );
    let j = swh_deploy_journal::Journal::open(&journal).unwrap();
    let d = j.run_details(1).unwrap();
    let step = d.steps.iter().find(|s| s.name == "migration").unwrap();
    let r = d
        .results
        .iter()
        .find(|r| r.step == step.index && r.host == "host1")
        .expect("a result for the migration on host1");
    assert_eq!(r.outcome, swh_deploy_journal::Outcome::Unreachable, "{r:?}");
    assert!(r.stderr.contains("not responding"), "{r:?}");
}

/// A ClusterShell group source answering a name that is not a host name
/// fails `site check` (naming the source and the group) and `upgrade`,
/// before anything is journaled.
#[test]
fn a_clustershell_source_naming_an_option_fails_site_check_and_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let cs = dir.path().join("cs");
    std::fs::create_dir_all(cs.join("groups.d")).unwrap();
    std::fs::write(
        cs.join("groups.conf"),
        format!(
            "[Main]\ndefault: local\nautodir: {}\n",
            cs.join("groups.d").display()
        ),
    )
    .unwrap();
    std::fs::write(
        cs.join("groups.d/local.yaml"),
        "local:\n    evil: 'w1,-oProxyCommand=id'\n",
    )
    .unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        format!(
            r#"[clustershell]
config_dir = "{}"

[groups.evil]
source = "local"

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["evil"]
"#,
            cs.display()
        ),
    )
    .unwrap();
    let path = path.to_str().unwrap();
    for args in [
        &["site", "check", "--site", path][..],
        &["site", "check", "--quiet", "--site", path],
        &["upgrade", "--site", path, "--service", "storage"],
    ] {
        let out = swh_deploy(&journal, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(
                "ClusterShell group source `local`, group `evil`: `-oProxyCommand=id` is not a host name"
            ),
            "{args:?}: {err}"
        );
        assert!(err.contains(&format!("{path}:4:")), "{args:?}: {err}");
    }
    assert!(!journal.exists(), "the journal was written");
}

/// `run -o -oStrictHostKeyChecking=no` (what clush users type) cannot reach
/// a re-keyed host: swh-deploy's own `StrictHostKeyChecking=yes` comes
/// first on the ssh command line.
#[test]
fn run_dash_o_cannot_switch_host_key_checking_off_for_a_rekeyed_host() {
    let tb = Testbed::up(&Options {
        loopback: Some(1),
        apt_repo: false,
        ..Options::default()
    })
    .expect("loopback test bed");
    let keydir = tempfile::tempdir().unwrap();
    let key = keydir.path().join("k");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut words = public.split_whitespace();
    let line = format!("* {} {}\n", words.next().unwrap(), words.next().unwrap());
    std::fs::write(tb.known_hosts_path(), line).unwrap();
    let cfg = tb.ssh_config_path().display().to_string();
    for opt in [
        "-oStrictHostKeyChecking=no",
        "-oStrictHostKeyChecking=accept-new",
    ] {
        let out = tb
            .exec_command(&[
                bin(),
                "run",
                "-F",
                &cfg,
                "-o",
                opt,
                "-w",
                "host1",
                "echo ran",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!stdout.contains("ran"), "{opt}: the command ran: {stdout}");
        assert!(
            stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                || stderr.contains("Host key verification failed"),
            "{opt}: {stderr}"
        );
        assert!(stderr.contains("unreachable"), "{opt}: {stderr}");
    }
}

/// Issue 10 part 6: a node set of a billion hosts is refused at once by
/// `site check` and `upgrade` (clear error, exit 1, nothing journaled),
/// instead of growing the process past gigabytes.
#[test]
fn a_huge_node_set_is_refused_by_site_check_and_upgrade_without_expanding_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let huge = site(dir.path(), "x[1-999999999]", "");
    let huge = huge.to_str().unwrap();
    let started = std::time::Instant::now();
    let out = swh_deploy(&journal, &["site", "check", "--site", huge]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("names 999999999 hosts, more than the 100000 a site may plan"),
        "{}",
        text(&out.stderr)
    );
    for args in [
        &[
            "upgrade",
            "--site",
            huge,
            "--service",
            "storage",
            "--dry-run",
        ][..],
        &["upgrade", "--site", huge, "--service", "storage"],
    ] {
        let out = swh_deploy(&journal, args);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("names 999999999 hosts"));
    }
    let good = site(dir.path(), "host[1-2]", "");
    let out = swh_deploy(
        &journal,
        &[
            "upgrade",
            "--site",
            good.to_str().unwrap(),
            "-w",
            "y[1-999999999]",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("names 999999999 hosts"));
    assert!(!journal.exists(), "the journal was written");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
