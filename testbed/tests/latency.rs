//! Latency mode (run as root): the test bed's ssh_config goes through the
//! delaying relay in front of sshd, and an ssh login pays the delay on
//! each of its round trips. The relay's own round-trip arithmetic is
//! checked without root by its unit tests (`relay::tests`).

use std::process::Stdio;
use std::time::{Duration, Instant};
use swh_deploy_testbed::relay::{Latency, RELAY_PORT};
use swh_deploy_testbed::{skip, Options, Testbed};

/// The fastest of `n` `ssh HOST true` (fresh connections), with extra
/// ssh options.
fn login(tb: &Testbed, opts: &[&str], n: usize) -> Duration {
    let cfg = tb.ssh_config_path();
    let mut best = Duration::MAX;
    for _ in 0..n {
        let mut argv = vec!["ssh", "-F", cfg.to_str().unwrap()];
        argv.extend(opts);
        argv.extend(["host1", "--", "echo ok"]);
        let t = Instant::now();
        let out = tb
            .exec_command(&argv)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = t.elapsed();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        best = best.min(took);
    }
    best
}

#[test]
fn logins_through_the_relay_pay_the_delay_on_every_round_trip() {
    if !skip::need_root("network namespaces") {
        return;
    }
    let delay = Duration::from_millis(20);
    let mut tb = Testbed::up(&Options {
        loopback: Some(2),
        latency: Some(Latency {
            delay,
            jitter: Duration::from_millis(2),
        }),
        relay_program: Some(env!("CARGO_BIN_EXE_testbed").into()),
        ..Options::default()
    })
    .unwrap();
    let cfg = std::fs::read_to_string(tb.ssh_config_path()).unwrap();
    assert!(cfg.contains(&format!("Port {RELAY_PORT}")), "{cfg}");
    // The same login, through the relay and straight to sshd's port 22.
    let relayed = login(&tb, &[], 3);
    let direct = login(&tb, &["-oPort=22"], 3);
    let rtt = delay * 2;
    eprintln!("ssh login: through the relay {relayed:?}, straight to sshd {direct:?}");
    // An ssh login is a TCP handshake, the banner, key exchange, user
    // authentication (two exchanges for a public key), a channel and the
    // command: at least 6 round trips.
    let extra = relayed.saturating_sub(direct);
    assert!(
        extra >= rtt * 6,
        "through the relay {relayed:?}, direct {direct:?}: less than 6 round trips of {rtt:?}"
    );
    assert!(
        extra < rtt * 20,
        "through the relay {relayed:?}, direct {direct:?}: more than 20 round trips of {rtt:?}"
    );
    // The relay is a process of the test bed: gone with it.
    let state = tb.state_dir();
    tb.down().unwrap();
    assert!(!state.join("state.toml").exists());
}
