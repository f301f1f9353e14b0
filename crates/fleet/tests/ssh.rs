//! The OpenSSH transport against the test bed's loopback fleet: one real
//! sshd answering on many 127.1.x.y addresses in a private network
//! namespace; ssh runs there through the test bed's `ip netns exec` prefix.

use std::time::{Duration, Instant};
use swh_deploy_fleet::{
    run, CancelToken, ConnectionReuse, HostKeyPolicy, NoObserver, RunOptions, RunReport,
    SshOptions, SshTransport, Status,
};
use swh_deploy_testbed::{Options, Testbed};

fn loopback(n: usize) -> Testbed {
    Testbed::up(&Options {
        loopback: Some(n),
        ..Options::default()
    })
    .expect("loopback test bed")
}

fn ssh_options(tb: &Testbed) -> SshOptions {
    SshOptions {
        wrapper: tb.exec_prefix().into_iter().map(Into::into).collect(),
        config_file: Some(tb.ssh_config_path()),
        connect_timeout: Some(Duration::from_secs(2)),
        keepalive: Some((1, 3)),
        ..SshOptions::default()
    }
}

fn names(tb: &Testbed) -> Vec<String> {
    tb.hosts().iter().map(|h| h.name.clone()).collect()
}

fn go(t: &SshTransport, hosts: &[String], cmd: &str) -> RunReport {
    run(
        t,
        hosts,
        cmd,
        &RunOptions::default(),
        &mut NoObserver,
        &CancelToken::new(),
    )
    .unwrap()
}

#[test]
fn exit_255_of_the_command_is_not_unreachable_but_refused_cut_and_lost_hosts_are() {
    let tb = loopback(5);
    let hosts = names(&tb);
    let t = SshTransport::new(ssh_options(&tb)).unwrap();
    tb.refuse(&hosts[1]).unwrap();
    tb.cut(&hosts[2]).unwrap();
    // host4 is cut one second into a command that would take 20 s: the
    // keepalives (1 s x 3) must notice.
    let cutter = {
        let h = hosts[3].clone();
        let state = tb.state_dir();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            Testbed::attach(&state).unwrap().cut(&h).unwrap();
        })
    };
    let start = Instant::now();
    let r = go(
        &t,
        &hosts,
        "echo started; case $SSH_CONNECTION in *127.1.0.4*) sleep 20;; esac; echo oops >&2; exit 255",
    );
    cutter.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.results[0].status, Status::Exited(255));
    assert_eq!(r.results[0].stdout, b"started\n");
    assert_eq!(r.results[0].stderr, b"oops\n");
    assert_eq!(r.results[1].status, Status::Unreachable);
    assert!(String::from_utf8_lossy(&r.results[1].stderr).contains("Connection refused"));
    assert_eq!(r.results[2].status, Status::Unreachable);
    assert!(String::from_utf8_lossy(&r.results[2].stderr).contains("timed out"));
    assert_eq!(r.results[3].status, Status::Unreachable);
    assert_eq!(r.results[3].stdout, b"started\n");
    assert!(
        String::from_utf8_lossy(&r.results[3].stderr).contains("not responding"),
        "{:?}",
        String::from_utf8_lossy(&r.results[3].stderr)
    );
    assert_eq!(r.results[4].status, Status::Exited(255));
    assert_eq!(r.max_rc_status(), 255);
    assert_eq!(r.unreachable().count(), 3);
}

#[test]
fn two_hundred_hosts_each_reached_at_its_own_address() {
    let tb = loopback(210);
    let hosts = names(&tb);
    let t = SshTransport::new(ssh_options(&tb)).unwrap();
    let r = go(&t, &hosts, "echo $SSH_CONNECTION");
    assert!(
        r.all_succeeded(),
        "{:?}",
        r.results.iter().find(|r| !r.success())
    );
    for (res, host) in r.results.iter().zip(tb.hosts()) {
        let out = String::from_utf8_lossy(&res.stdout);
        let server = out.split_whitespace().nth(2).unwrap_or_default();
        assert_eq!(server, host.addr.to_string(), "{}", res.host);
    }
}

#[test]
fn connection_reuse_keeps_one_master_per_host_until_close() {
    let tb = loopback(3);
    let hosts = names(&tb);
    let t = SshTransport::new(SshOptions {
        reuse: Some(ConnectionReuse {
            dir: None,
            persist: Duration::from_secs(30),
        }),
        ..ssh_options(&tb)
    })
    .unwrap();
    // The client port of the connection tells whether a command reused the
    // master connection of the previous one.
    let first = go(&t, &hosts, "echo $SSH_CONNECTION");
    let second = go(&t, &hosts, "echo $SSH_CONNECTION");
    assert!(first.all_succeeded() && second.all_succeeded());
    for (a, b) in first.results.iter().zip(&second.results) {
        assert_eq!(a.stdout, b.stdout, "{}: connection not reused", a.host);
    }
    let check = |host: &str| {
        let mut argv: Vec<std::ffi::OsString> = vec!["ssh".into(), "-F".into()];
        argv.push(tb.ssh_config_path().into());
        for a in [
            "-oControlMaster=auto".to_string(),
            format!("-oControlPath={}", t_control_path(&t, host)),
            "-O".into(),
            "check".into(),
            "--".into(),
            host.into(),
        ] {
            argv.push(a.into());
        }
        tb.exec_command(&argv)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(check(&hosts[0]), "master should be up");
    swh_deploy_fleet::Transport::close(&t);
    assert!(!check(&hosts[0]), "master should be gone after close");
}

/// The ControlPath argument the transport passes to ssh for `host`.
fn t_control_path(t: &SshTransport, host: &str) -> String {
    let l = swh_deploy_fleet::Transport::prepare(
        t,
        &swh_deploy_fleet::Job {
            host,
            rank: 0,
            hosts: host,
            command: "true",
        },
    )
    .unwrap();
    l.args
        .iter()
        .filter_map(|a| a.to_str())
        .find_map(|a| a.strip_prefix("-oControlPath="))
        .unwrap()
        .to_string()
}

/// Makes the test bed's pinned key wrong for every host, as if they had all
/// been re-keyed: known_hosts now holds a fresh key of another host.
fn rekey(tb: &Testbed) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut words = public.split_whitespace();
    let line = format!("* {} {}\n", words.next().unwrap(), words.next().unwrap());
    std::fs::write(tb.known_hosts_path(), line).unwrap();
}

#[test]
fn extra_options_cannot_switch_host_key_checking_off_for_a_rekeyed_host() {
    let tb = loopback(2);
    let hosts = names(&tb);
    rekey(&tb);
    for reuse in [false, true] {
        // What a site's `[ssh] options` or `run -o` would add.
        let t = SshTransport::new(SshOptions {
            extra_args: vec![
                "-oStrictHostKeyChecking=false".into(),
                "-oCheckHostIP=no".into(),
            ],
            reuse: reuse.then_some(ConnectionReuse {
                dir: None,
                persist: Duration::from_secs(5),
            }),
            ..ssh_options(&tb)
        })
        .unwrap();
        let r = go(&t, &hosts, "echo ran");
        for res in &r.results {
            assert_eq!(res.status, Status::Unreachable, "{}", res.host);
            assert!(res.stdout.is_empty(), "{}: the command ran", res.host);
            let err = String::from_utf8_lossy(&res.stderr);
            assert!(
                err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                    || err.contains("Host key verification failed"),
                "{}: {err}",
                res.host
            );
        }
    }
}

#[test]
fn a_host_absent_from_known_hosts_is_reached_only_with_accept_new() {
    let tb = loopback(1);
    let hosts = names(&tb);
    std::fs::write(tb.known_hosts_path(), "").unwrap();
    let strict = SshTransport::new(SshOptions {
        extra_args: vec!["-oStrictHostKeyChecking=accept-new".into()],
        ..ssh_options(&tb)
    })
    .unwrap();
    let r = go(&strict, &hosts, "echo ran");
    assert_eq!(r.results[0].status, Status::Unreachable);
    assert!(
        String::from_utf8_lossy(&r.results[0].stderr).contains("Host key verification failed"),
        "{:?}",
        String::from_utf8_lossy(&r.results[0].stderr)
    );
    assert_eq!(std::fs::read_to_string(tb.known_hosts_path()).unwrap(), "");
    let accept = SshTransport::new(SshOptions {
        host_keys: HostKeyPolicy::AcceptNew,
        ..ssh_options(&tb)
    })
    .unwrap();
    let r = go(&accept, &hosts, "echo ran");
    assert_eq!(r.results[0].status, Status::Exited(0));
    assert_eq!(r.results[0].stdout, b"ran\n");
    // The key is pinned now: strict checking reaches the host.
    assert!(!std::fs::read_to_string(tb.known_hosts_path())
        .unwrap()
        .is_empty());
    let r = go(&strict, &hosts, "echo ran");
    assert_eq!(r.results[0].status, Status::Exited(0));
}

/// The pid of the master connection for `host` (`ssh -O check`).
fn master_pid(tb: &Testbed, t: &SshTransport, host: &str) -> Option<i32> {
    let out = tb
        .exec_command(&[
            "ssh".to_string(),
            "-F".into(),
            tb.ssh_config_path().display().to_string(),
            format!("-oControlPath={}", t_control_path(t, host)),
            "-O".into(),
            "check".into(),
            "--".into(),
            host.into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.split("pid=").nth(1)?.split(')').next()?.parse().ok()
}

#[test]
fn a_host_lost_under_a_shared_connection_is_unreachable_with_the_masters_message() {
    let tb = loopback(3);
    let hosts = names(&tb);
    let t = SshTransport::new(SshOptions {
        reuse: Some(ConnectionReuse {
            dir: None,
            persist: Duration::from_secs(30),
        }),
        ..ssh_options(&tb)
    })
    .unwrap();
    // The masters are up.
    assert!(go(&t, &hosts, "true").all_succeeded());
    // host2 is cut one second into a slow command, host3's master is
    // killed; host1's command exits 255 by itself.
    let pid3 = master_pid(&tb, &t, &hosts[2]).expect("master of host3");
    let cutter = {
        let h = hosts[1].clone();
        let state = tb.state_dir();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            Testbed::attach(&state).unwrap().cut(&h).unwrap();
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid3, libc::SIGKILL) };
        })
    };
    let start = Instant::now();
    let r = go(
        &t,
        &hosts,
        "case $SSH_CONNECTION in *127.1.0.1*) exit 255;; esac; echo started; sleep 20",
    );
    cutter.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.results[0].status, Status::Exited(255));
    assert!(r.results[0].stderr.is_empty(), "{:?}", r.results[0]);
    assert_eq!(
        r.results[1].status,
        Status::Unreachable,
        "{:?}",
        r.results[1]
    );
    assert_eq!(r.results[1].stdout, b"started\n");
    let err = String::from_utf8_lossy(&r.results[1].stderr);
    assert!(err.contains("not responding"), "{err}");
    assert_eq!(r.results[2].status, Status::Unreachable);
    let err = String::from_utf8_lossy(&r.results[2].stderr);
    assert!(err.contains("control master is gone"), "{err}");

    // host3's next command starts a new master over the dead one's socket;
    // that master's word is the one kept when host3 is cut in turn.
    let host3 = std::slice::from_ref(&hosts[2]);
    assert!(go(&t, host3, "true").all_succeeded());
    let cutter = {
        let h = hosts[2].clone();
        let state = tb.state_dir();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            Testbed::attach(&state).unwrap().cut(&h).unwrap();
        })
    };
    let r = go(&t, host3, "echo started; sleep 20");
    cutter.join().unwrap();
    assert_eq!(r.results[0].status, Status::Unreachable);
    let err = String::from_utf8_lossy(&r.results[0].stderr);
    assert!(err.contains("not responding"), "{err}");
}

/// New ssh connections the test bed's sshd accepted so far.
fn accepted(tb: &Testbed) -> usize {
    let log = tb.state_dir().join("logs/sshd-loopback.log");
    std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .matches("Accepted publickey for")
        .count()
}

/// Ends the masters listening in a shared control directory when the test
/// ends, passed or not.
struct Masters(std::path::PathBuf);

impl Drop for Masters {
    fn drop(&mut self) {
        use std::os::unix::fs::FileTypeExt;
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_socket()) {
                let _ = std::process::Command::new("ssh")
                    .arg(format!("-oControlPath={}", e.path().display()))
                    .args(["-O", "exit", "--", "x"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

#[test]
fn sessions_on_a_live_master_start_no_ssh_and_end_as_through_ssh() {
    use std::os::unix::fs::PermissionsExt;
    let tb = loopback(4);
    let hosts = names(&tb);
    let tmp = tempfile::tempdir().unwrap();
    // An `ssh` that logs its invocations: a session opened on the master's
    // socket starts none.
    let calls_log = tmp.path().join("ssh.calls");
    let shim = tmp.path().join("ssh");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec ssh \"$@\"\n",
            calls_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let calls = || {
        std::fs::read_to_string(&calls_log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let dir = tmp.path().join("run/ssh");
    let _masters = Masters(dir.clone());
    // Two transports on the same masters: sessions on the socket, and an
    // ssh client per command.
    let transport = |mux: bool| {
        SshTransport::new(SshOptions {
            program: shim.clone(),
            reuse: Some(ConnectionReuse {
                dir: Some(dir.clone()),
                persist: Duration::from_secs(30),
            }),
            mux,
            ..ssh_options(&tb)
        })
        .unwrap()
    };
    let muxed = transport(true);
    let plain = transport(false);
    let base = accepted(&tb);
    // The first command makes the masters, with ssh.
    assert!(go(&muxed, &hosts, "true").all_succeeded());
    assert_eq!(calls(), 4);
    assert_eq!(accepted(&tb), base + 4);

    let run_both = |cmd: &str, options: &RunOptions, cancel_after: Option<Duration>| {
        let mut reports = Vec::new();
        for (t, new_calls) in [(&muxed, 0), (&plain, 4)] {
            let before = calls();
            let cancel = CancelToken::new();
            let canceller = cancel_after.map(|d| {
                let c = cancel.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    c.cancel();
                })
            });
            let start = Instant::now();
            let r = run(t, &hosts, cmd, options, &mut NoObserver, &cancel).unwrap();
            let took = start.elapsed();
            if let Some(c) = canceller {
                c.join().unwrap();
            }
            assert!(took < Duration::from_secs(10), "{cmd}: {took:?}");
            assert_eq!(calls() - before, new_calls, "{cmd}: ssh processes started");
            reports.push(r);
        }
        for (a, b) in reports[0].results.iter().zip(&reports[1].results) {
            assert_eq!(a.status, b.status, "{}: {cmd}", a.host);
            assert_eq!(a.stdout, b.stdout, "{}: {cmd}", a.host);
            assert_eq!(a.stderr, b.stderr, "{}: {cmd}", a.host);
        }
        reports.swap_remove(0)
    };
    // Exit codes (the command's own 255 too), a command killed by a
    // signal, both streams, output without a final newline.
    let r = run_both(
        "echo $SSH_CONNECTION; echo err >&2; case $SSH_CONNECTION in \
         *127.1.0.1\\ *) exit 3;; *127.1.0.2\\ *) exit 255;; *127.1.0.3\\ *) kill -9 $$;; esac; \
         printf tail",
        &RunOptions::default(),
        None,
    );
    let status: Vec<Status> = r.results.iter().map(|r| r.status.clone()).collect();
    assert_eq!(
        status,
        [
            Status::Exited(3),
            Status::Exited(255),
            Status::Exited(255),
            Status::Exited(0)
        ]
    );
    for res in &r.results {
        assert_eq!(res.stderr, b"err\n", "{}", res.host);
        assert!(res.stdout.starts_with(b"127."), "{:?}", res);
    }
    assert!(
        r.results[3].stdout.ends_with(b"\ntail"),
        "{:?}",
        r.results[3]
    );
    // Timed out, stderr merged into stdout.
    let merged = RunOptions {
        command_timeout: Some(Duration::from_secs(1)),
        merge_stderr: true,
        ..RunOptions::default()
    };
    let r = run_both("echo a; echo b >&2; sleep 30", &merged, None);
    for res in &r.results {
        assert_eq!(res.status, Status::TimedOut, "{}", res.host);
        assert_eq!(res.stdout, b"a\nb\n", "{}", res.host);
    }
    // Cancelled (Ctrl-C).
    let r = run_both(
        "echo a; sleep 30",
        &RunOptions::default(),
        Some(Duration::from_secs(1)),
    );
    assert!(r.cancelled);
    for res in &r.results {
        assert_eq!(
            res.status,
            Status::Cancelled { started: true },
            "{}",
            res.host
        );
        assert_eq!(res.stdout, b"a\n", "{}", res.host);
    }
    // All of it over the first connections.
    assert_eq!(accepted(&tb), base + 4);

    // A master killed between commands: its host's command goes through a
    // new ssh (a new master), the others' still on their sockets.
    let pid = master_pid(&tb, &muxed, &hosts[0]).expect("master of host1");
    // SAFETY: kill(2) of a master this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let socket = t_control_path(&muxed, &hosts[0]);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        assert!(t.elapsed() < Duration::from_secs(5), "the master survived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = calls();
    let r = go(&muxed, &hosts, "echo ok");
    assert!(r.all_succeeded(), "{:?}", r.results);
    for res in &r.results {
        assert_eq!(res.stdout, b"ok\n", "{}", res.host);
        assert!(res.stderr.is_empty(), "{:?}", res);
    }
    assert_eq!(calls() - before, 1);
    assert_eq!(accepted(&tb), base + 5);

    // A master stopped (SIGSTOP: it accepts on its socket but answers
    // nothing, and an ssh through it would hang): after the greeting's
    // wait, its host's command runs once over a connection of its own,
    // with a word about it; the other hosts keep their sessions.
    let pid = master_pid(&tb, &muxed, &hosts[1]).expect("master of host2");
    struct Resume(i32);
    impl Drop for Resume {
        fn drop(&mut self) {
            // SAFETY: kill(2) of a master this test started.
            unsafe { libc::kill(self.0, libc::SIGCONT) };
        }
    }
    // SAFETY: kill(2) of a master this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let resume = Resume(pid);
    let before = calls();
    let start = Instant::now();
    let r = go(&muxed, &hosts, "echo ok");
    let took = start.elapsed();
    drop(resume);
    assert!(r.all_succeeded(), "{:?}", r.results);
    assert!(took < Duration::from_secs(8), "{took:?}");
    for res in &r.results {
        assert_eq!(res.stdout, b"ok\n", "{}", res.host);
    }
    let note = String::from_utf8_lossy(&r.results[1].stderr);
    assert!(
        note.contains("did not answer within 3s") && note.contains("-O exit"),
        "{note}"
    );
    assert!(r.results[0].stderr.is_empty(), "{:?}", r.results[0]);
    assert_eq!(calls() - before, 1);
    assert_eq!(accepted(&tb), base + 6, "one connection of its own");
    // Resumed, the master serves sessions again.
    let before = calls();
    assert!(go(&muxed, &hosts, "true").all_succeeded());
    assert_eq!(calls() - before, 0);
    assert_eq!(accepted(&tb), base + 6);
    // Without connection sharing there is no master and no mux: ssh each.
    let fresh = SshTransport::new(SshOptions {
        program: shim.clone(),
        ..ssh_options(&tb)
    })
    .unwrap();
    let before = calls();
    assert!(go(&fresh, &hosts, "true").all_succeeded());
    assert_eq!(calls() - before, 4);
}
