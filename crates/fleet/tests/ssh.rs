//! The OpenSSH transport against the test bed's loopback fleet: one real
//! sshd answering on many 127.1.x.y addresses in a private network
//! namespace; ssh runs there through the test bed's `ip netns exec` prefix.

use std::time::{Duration, Instant};
use swh_deploy_fleet::{
    run, CancelToken, ConnectionReuse, NoObserver, RunOptions, RunReport, SshOptions, SshTransport,
    Status,
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
            format!("-oControlPath={}", t_control_path(&t)),
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

/// The ControlPath argument the transport passes to ssh.
fn t_control_path(t: &SshTransport) -> String {
    let l = swh_deploy_fleet::Transport::prepare(
        t,
        &swh_deploy_fleet::Job {
            host: "x",
            rank: 0,
            hosts: "x",
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
