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
