//! The test bed's real Puppet server (Debian's puppetserver, `pergamon`):
//! hosts get certificates from its CA and run Debian's real
//! `puppet agent -t` against it; a real catalog (module `swh_testbed`,
//! Hiera data) gives each of puppet's detailed exit codes, and puppet's
//! own disable and run locks answer.
//!
//! Needs root (network namespaces, systemd-nspawn) and puppetserver
//! (scripts/install-deps): skipped otherwise, a failure under CI
//! (`swh_deploy_testbed::skip`).

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_testbed::{puppet, skip, Options, Testbed};

const V10: &str = "1.0-1~swh1";
const STORAGE_CONF: &str = "/etc/softwareheritage/storage/storage.yml";

fn ssh(tb: &Testbed, host: &str, cmd: &str) -> Output {
    tb.ssh_command(host, cmd)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh")
}

fn sh(tb: &Testbed, host: &str, cmd: &str) -> String {
    let out = ssh(tb, host, cmd);
    assert!(
        out.status.success(),
        "{host}: {cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `puppet agent -t` on `host`: its exit code and output.
fn agent(tb: &Testbed, host: &str) -> (Option<i32>, String) {
    let out = ssh(tb, host, "puppet agent -t 2>&1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{host}: puppet agent -t -> {:?}\n{text}", out.status.code());
    (out.status.code(), text)
}

fn storage_pid(tb: &Testbed, host: &str) -> String {
    sh(
        tb,
        host,
        "systemctl show -p MainPID --value gunicorn-swh-storage",
    )
}

fn bed() -> Testbed {
    let tb = Testbed::up(&Options {
        hosts: 1,
        systemd: true,
        apt_repo: true,
        apt_versions: vec![V10.into()],
        puppet: true,
        ..Options::default()
    })
    .expect("test bed up");
    sh(
        &tb,
        "host1",
        &format!(
            "apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
             python3-swh.storage={V10} python3-swh.loader.git={V10} >/dev/null 2>&1 && \
             systemctl is-active gunicorn-swh-storage"
        ),
    );
    tb
}

#[test]
fn real_catalogs_give_exit_codes_0_2_4_and_6() {
    if !skip::need_root_and_puppetserver() {
        return;
    }
    let mut tb = bed();
    if let Some(pid) = puppet::java_pid() {
        eprintln!(
            "puppetserver JVM resident memory: {} MiB",
            puppet::rss_kib(pid).unwrap_or(0) / 1024
        );
    }
    // The host's certificate was signed by pergamon's CA at start.
    let certname = sh(&tb, "host1", "puppet config print certname");
    assert!(
        certname.starts_with("host1-") && certname.ends_with(".swh-testbed"),
        "{certname}"
    );
    let issuer = sh(
        &tb,
        "host1",
        "openssl x509 -noout -issuer -in $(puppet config print hostcert) 2>/dev/null || \
         ruby -ropenssl -e 'puts OpenSSL::X509::Certificate.new(File.read(ARGV[0])).issuer' $(puppet config print hostcert)",
    );
    assert!(issuer.contains("Puppet CA: pergamon"), "{issuer}");

    // 2: the package's configuration differs from the catalog's: Puppet
    // writes it and restarts the unit.
    let pid0 = storage_pid(&tb, "host1");
    let (rc, out) = agent(&tb, "host1");
    assert_eq!(rc, Some(2), "{out}");
    assert!(out.contains("Triggered 'refresh'"), "{out}");
    assert!(sh(&tb, "host1", &format!("cat {STORAGE_CONF}")).starts_with("# Managed by Puppet"));
    let pid1 = storage_pid(&tb, "host1");
    assert_ne!(pid0, pid1, "restarted by Puppet");
    assert_eq!(
        sh(&tb, "host1", "systemctl is-active gunicorn-swh-storage"),
        "active"
    );

    // 0: nothing to change, nothing restarted.
    let (rc, out) = agent(&tb, "host1");
    assert_eq!(rc, Some(0), "{out}");
    assert_eq!(storage_pid(&tb, "host1"), pid1);

    // 4: a resource fails (per-host Hiera data), nothing else changes.
    puppet::write_data(&tb, "hosts/host1.yaml", "swh_testbed::fail: true\n").unwrap();
    let (rc, out) = agent(&tb, "host1");
    assert_eq!(rc, Some(4), "{out}");
    assert!(out.contains("swh_testbed failing resource"), "{out}");
    assert_eq!(storage_pid(&tb, "host1"), pid1);

    // 6: a failure and a change (common data: a new storage setting).
    let common = std::fs::read_to_string(puppet::env_dir(&tb).join("data/common.yaml")).unwrap();
    let changed = common.replace(
        "cls: memory\n",
        "cls: memory\n        # changed by the test\n",
    );
    assert_ne!(common, changed);
    puppet::write_data(&tb, "common.yaml", &changed).unwrap();
    let (rc, out) = agent(&tb, "host1");
    assert_eq!(rc, Some(6), "{out}");
    assert!(sh(&tb, "host1", &format!("cat {STORAGE_CONF}")).contains("# changed by the test"));
    assert_ne!(storage_pid(&tb, "host1"), pid1, "restarted by Puppet");

    // Autosign accepts the test bed's names only: another certificate
    // name is not signed.
    let out = ssh(
        &tb,
        "host1",
        "puppet ssl bootstrap --certname intruder.example.org --waitforcert 0 2>&1",
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("intruder.example.org") && !text.contains("Completed SSL initialization"),
        "{text}"
    );

    // down removes the test bed's link into the server's namespace.
    let o = tb.hosts()[0].addr.octets();
    let server_addr = format!("{}.{}.{}.254/24", o[0], o[1], o[2]);
    let server_addrs = || {
        let out = std::process::Command::new("ip")
            .args(["-n", puppet::NETNS, "-4", "-o", "addr", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(server_addrs().contains(&server_addr), "{}", server_addrs());
    tb.down().unwrap();
    assert!(!server_addrs().contains(&server_addr), "{}", server_addrs());
}

#[test]
fn puppet_own_disable_and_run_locks() {
    if !skip::need_root_and_puppetserver() {
        return;
    }
    let tb = bed();
    // A slow run holds puppet's run lock: a second run skips, exit 1.
    puppet::write_data(&tb, "hosts/host1.yaml", "swh_testbed::run_seconds: 20\n").unwrap();
    let slow = tb
        .ssh_command("host1", "puppet agent -t >/dev/null 2>&1; echo $?")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(120);
    while sh(
        &tb,
        "host1",
        "pgrep -f '^/bin/sleep 20' >/dev/null && echo running || echo no",
    ) != "running"
    {
        assert!(Instant::now() < end, "the slow run never started its exec");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (rc, out) = agent(&tb, "host1");
    assert_eq!(rc, Some(1), "{out}");
    assert!(
        out.contains("Run of Puppet configuration client already in progress"),
        "{out}"
    );
    let slow_out = slow.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&slow_out.stdout).trim(), "2");

    // Disabled: the agent refuses with the reason, exit 1; enabled again it runs.
    sh(
        &tb,
        "host1",
        "puppet agent --disable 'swh-deploy 7: a migration'",
    );
    let (rc, out) = agent(&tb, "host1");
    assert_eq!(rc, Some(1), "{out}");
    assert!(
        out.contains("administratively disabled (Reason: 'swh-deploy 7: a migration')"),
        "{out}"
    );
    sh(&tb, "host1", "puppet agent --enable");
    puppet::write_data(&tb, "hosts/host1.yaml", "{}\n").unwrap();
    let (rc, out) = agent(&tb, "host1");
    assert!(rc == Some(0) || rc == Some(2), "{out}");
}
