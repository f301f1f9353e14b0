//! The `testbed` binary: up, status, exec, faults, publish and down across
//! separate processes (run as root).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn testbed(name: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["--name", name])
        .args(args)
        .output()
        .expect("run testbed")
}

fn ok(name: &str, args: &[&str]) -> String {
    let out = testbed(name, args);
    assert!(
        out.status.success(),
        "testbed {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Takes the test bed down even when an assertion fails.
struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = testbed(&self.0, &["down"]);
    }
}

#[test]
fn cli_loopback_up_exec_refuse_restore_down() {
    let name = format!("cli-lo{}", std::process::id());
    let _guard = Down(name.clone());
    let up = ok(&name, &["up", "--loopback", "3", "--no-apt-repo"]);
    assert!(up.contains("host3 127.1.0.3"), "{up}");
    let dir = format!("/run/swh-deploy-testbed/{name}");
    let cfg = format!("{dir}/ssh_config");
    // The test bed outlives the `up` process; `exec` reaches its hosts.
    let out = testbed(
        &name,
        &[
            "exec",
            "--",
            "ssh",
            "-F",
            &cfg,
            "host2",
            "echo $SSH_CONNECTION",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2),
        Some("127.1.0.2")
    );
    // The namespace holds only `lo`: nothing else is reachable from it.
    let links = testbed(&name, &["exec", "--", "ip", "-o", "link", "show"]);
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo:"), "{links}");
    // exec passes the command's exit status through.
    assert_eq!(
        testbed(&name, &["exec", "--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    ok(&name, &["refuse", "host2"]);
    assert!(ok(&name, &["status"]).contains("host host2 127.1.0.2 fault=refuse"));
    let start = Instant::now();
    let out = testbed(&name, &["exec", "--", "ssh", "-F", &cfg, "host2", "true"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(start.elapsed() < Duration::from_secs(2));
    ok(&name, &["restore", "host2"]);
    let out = testbed(&name, &["exec", "--", "ssh", "-F", &cfg, "host2", "true"]);
    assert!(out.status.success(), "{out:?}");
    // A second `up` of the same name is refused and changes nothing.
    let again = testbed(&name, &["up", "--loopback", "2"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));
    assert!(ok(&name, &["status"]).contains("host3"));
    ok(&name, &["down"]);
    assert!(!std::path::Path::new(&dir).exists());
    // down twice is fine; status of a test bed that is not up fails.
    ok(&name, &["down"]);
    assert_eq!(testbed(&name, &["status"]).status.code(), Some(1));
}

#[test]
fn cli_bridge_cut_restore_and_publish() {
    let name = format!("cli-br{}", std::process::id());
    let _guard = Down(name.clone());
    ok(
        &name,
        &["up", "--hosts", "1", "--apt-versions", "1.0-1~swh1"],
    );
    let cfg = format!("/run/swh-deploy-testbed/{name}/ssh_config");
    let ssh = |cmd: &str| {
        Command::new("ssh")
            .args(["-F", &cfg, "-o", "ConnectTimeout=2", "host1", cmd])
            .output()
            .unwrap()
    };
    let policy = "apt-get update -q >/dev/null && apt-cache madison python3-swh.storage";
    let out = ssh(policy);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("1.0-1~swh1") && !text.contains("1.1-1~swh1"),
        "{out:?}"
    );
    ok(&name, &["publish", "1.0-1~swh1", "1.1-1~swh1"]);
    let text = String::from_utf8_lossy(&ssh(policy).stdout).into_owned();
    assert!(text.contains("1.1-1~swh1"), "{text}");
    ok(&name, &["cut", "host1"]);
    let start = Instant::now();
    assert_eq!(ssh("true").status.code(), Some(255));
    assert!(start.elapsed() >= Duration::from_millis(1800));
    ok(&name, &["restore", "host1"]);
    assert!(ssh("true").status.success());
    let bad = testbed(&name, &["cut", "host9"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no host \"host9\""));
}
