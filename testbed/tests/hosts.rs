//! Test bed hosts over real ssh with strict host keys (run as root):
//! smoke tests (apt install 1.0 then the runbook's dist-upgrade to 1.1, with
//! and without systemd), fault modes measured by exit status and elapsed
//! time, a 200-host loopback fleet, and `down` leaving nothing behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_testbed::{aptrepo, Fault, Mode, Options, Testbed};

const V10: &str = "1.0-1~swh1";
const V11: &str = "1.1-1~swh1";
const PACKAGES: [&str; 2] = ["python3-swh.storage", "python3-swh.loader.git"];

/// Runs `cmd` on `host` over ssh (the test bed's config: strict host key
/// checking, batch mode), with extra ssh options.
fn ssh(tb: &Testbed, host: &str, opts: &[&str], cmd: &str) -> (Output, Duration) {
    let cfg = tb.ssh_config_path();
    let mut argv: Vec<String> = vec!["ssh".into(), "-F".into(), cfg.display().to_string()];
    argv.extend(opts.iter().map(|s| s.to_string()));
    argv.extend([host.to_string(), "--".into(), cmd.to_string()]);
    let start = Instant::now();
    let out = tb
        .exec_command(&argv)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh");
    (out, start.elapsed())
}

/// Runs `cmd` on `host` and returns its stdout; panics with stderr on failure.
fn ssh_ok(tb: &Testbed, host: &str, cmd: &str) -> String {
    let (out, _) = ssh(tb, host, &[], cmd);
    assert!(
        out.status.success(),
        "ssh {host} {cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn versions(tb: &Testbed, host: &str) -> Vec<String> {
    let out = ssh_ok(
        tb,
        host,
        &format!(
            "dpkg-query -W -f='${{Package}} ${{Version}}\\n' {} {}",
            PACKAGES[0], PACKAGES[1]
        ),
    );
    let mut v: Vec<String> = out.lines().map(|l| l.to_string()).collect();
    v.sort();
    v
}

fn expected(version: &str) -> Vec<String> {
    let mut v: Vec<String> = PACKAGES.iter().map(|p| format!("{p} {version}")).collect();
    v.sort();
    v
}

const INSTALL_10: &str = "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q python3-swh.storage=1.0-1~swh1 python3-swh.loader.git=1.0-1~swh1 >/dev/null";

/// The runbook's non-interactive upgrade.
const DIST_UPGRADE: &str = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y dist-upgrade";

/// Runs `f` for every host in parallel.
fn each_host(tb: &Testbed, f: impl Fn(&str) + Sync) {
    std::thread::scope(|s| {
        for h in tb.hosts() {
            let f = &f;
            s.spawn(move || f(&h.name));
        }
    });
}

fn smoke_opts(systemd: bool) -> Options {
    Options {
        hosts: 2,
        systemd,
        apt_repo: true,
        apt_versions: vec![V10.into(), V11.into()],
        ..Options::default()
    }
}

#[test]
fn chroot_hosts_install_and_dist_upgrade_over_ssh() {
    let tb = Testbed::up(&smoke_opts(false)).expect("up");
    assert_eq!(tb.mode(), Mode::Chroot);
    // Each host is its own machine: own hostname, own address, only our apt source.
    for h in tb.hosts() {
        assert_eq!(ssh_ok(&tb, &h.name, "hostname").trim(), h.name);
        let addrs = ssh_ok(&tb, &h.name, "ip -4 -o addr show dev eth0");
        assert!(addrs.contains(&format!(" {}/24", h.addr)), "{addrs}");
        let sources = ssh_ok(
            &tb,
            &h.name,
            "test ! -e /etc/apt/sources.list && ls /etc/apt/sources.list.d && cat /etc/apt/sources.list.d/*",
        );
        assert_eq!(
            sources.trim(),
            format!(
                "swh-deploy-testbed.list\ndeb [trusted=yes] {} ./",
                tb.apt_url().unwrap()
            )
        );
    }
    // Hosts resolve each other by name and reach each other over the bridge.
    let seen = ssh_ok(&tb, "host1", "getent hosts host2");
    assert!(
        seen.starts_with(&format!("{} ", tb.host("host2").unwrap().addr)),
        "{seen}"
    );
    let banner = ssh_ok(
        &tb,
        "host1",
        "curl -s --max-time 5 telnet://host2:22 </dev/null | head -c 4",
    );
    assert_eq!(banner, "SSH-");
    each_host(&tb, |h| {
        ssh_ok(&tb, h, INSTALL_10);
    });
    for h in tb.hosts() {
        assert_eq!(versions(&tb, &h.name), expected(V10));
    }
    // Installing on host1 did not install on host2 (own dpkg database):
    // remove from host2 and check host1 still has it.
    ssh_ok(
        &tb,
        "host2",
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q python3-swh.storage >/dev/null",
    );
    assert_eq!(versions(&tb, "host1"), expected(V10));
    ssh_ok(&tb, "host2", INSTALL_10);
    each_host(&tb, |h| {
        ssh_ok(&tb, h, DIST_UPGRADE);
    });
    for h in tb.hosts() {
        assert_eq!(versions(&tb, &h.name), expected(V11));
    }
}

#[test]
fn systemd_hosts_restart_the_unit_on_dist_upgrade() {
    let tb = Testbed::up(&smoke_opts(true)).expect("up");
    assert_eq!(tb.mode(), Mode::Systemd);
    each_host(&tb, |h| {
        assert_eq!(ssh_ok(&tb, h, "cat /proc/1/comm").trim(), "systemd");
        ssh_ok(&tb, h, INSTALL_10);
    });
    let main_pid = |h: &str| -> String {
        let out = ssh_ok(&tb, h, "systemctl show -p MainPID gunicorn-swh-storage");
        out.trim().trim_start_matches("MainPID=").to_string()
    };
    let active = |h: &str| {
        ssh_ok(
            &tb,
            h,
            "systemctl is-active gunicorn-swh-storage swh-worker@loader_git cron",
        )
    };
    let mut before = Vec::new();
    for h in tb.hosts() {
        assert_eq!(versions(&tb, &h.name), expected(V10));
        assert_eq!(active(&h.name), "active\nactive\nactive\n");
        let pid = main_pid(&h.name);
        assert_ne!(pid, "0");
        before.push(pid);
    }
    each_host(&tb, |h| {
        ssh_ok(&tb, h, DIST_UPGRADE);
    });
    for (h, old) in tb.hosts().iter().zip(&before) {
        assert_eq!(versions(&tb, &h.name), expected(V11));
        let new = main_pid(&h.name);
        assert_ne!(
            &new, old,
            "{}: gunicorn-swh-storage was not restarted",
            h.name
        );
        assert_ne!(new, "0");
        assert_eq!(active(&h.name), "active\nactive\nactive\n");
        // The health check, from the host itself and from outside over the bridge.
        // journald is real: the unit's start-ups are in its journal.
        let journal = ssh_ok(
            &tb,
            &h.name,
            "journalctl --no-pager -o cat -u gunicorn-swh-storage.service",
        );
        assert!(journal.matches("Started").count() >= 2, "{journal}");
        let body = ssh_ok(
            &tb,
            &h.name,
            &format!("curl -sf -H 'Host: {}' http://localhost:5002/", h.name),
        );
        assert!(body.contains(aptrepo::STORAGE_BANNER), "{body}");
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "-H"])
            .arg(format!("Host: {}:5002", h.name))
            .arg(format!("http://{}:5002/", h.addr))
            .output()
            .expect("curl");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(aptrepo::STORAGE_BANNER),
            "{}: {out:?}",
            h.addr
        );
    }
}

/// Asserts that ssh to `host` fails with 255 after about `connect_timeout`
/// (timeout faults) or at once (refused).
fn assert_fails(tb: &Testbed, host: &str, timeout_like: bool) {
    let (out, took) = ssh(tb, host, &["-o", "ConnectTimeout=2"], "true");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(255), "{host}: {stderr}");
    if timeout_like {
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_secs(8),
            "{host}: expected a ~2 s connect timeout, took {took:?}: {stderr}"
        );
        assert!(stderr.contains("timed out"), "{stderr}");
    } else {
        assert!(
            took < Duration::from_millis(1500),
            "{host}: expected an immediate refusal, took {took:?}: {stderr}"
        );
        assert!(stderr.contains("refused"), "{stderr}");
    }
}

fn assert_works(tb: &Testbed, host: &str) {
    let (out, _) = ssh(tb, host, &["-o", "ConnectTimeout=5"], "echo up");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "up",
        "{host}: {out:?}"
    );
}

fn check_faults(tb: &Testbed) {
    let (victim, other) = ("host2", "host1");
    for (fault, timeout_like) in [
        (Fault::Cut, true),
        (Fault::Drop, true),
        (Fault::Refuse, false),
    ] {
        assert_works(tb, victim);
        match fault {
            Fault::Cut => tb.cut(victim),
            Fault::Drop => tb.drop_packets(victim),
            Fault::Refuse => tb.refuse(victim),
        }
        .expect("inject fault");
        assert_eq!(tb.fault(victim).unwrap(), Some(fault));
        assert_fails(tb, victim, timeout_like);
        // Only that host is affected.
        assert_works(tb, other);
        tb.restore(victim).expect("restore");
        assert_eq!(tb.fault(victim).unwrap(), None);
        assert_works(tb, victim);
    }
}

#[test]
fn chroot_faults_time_out_or_refuse_and_restore() {
    let tb = Testbed::up(&Options {
        hosts: 2,
        ..Options::default()
    })
    .expect("up");
    check_faults(&tb);
    // A link cut in the middle of a command: with keepalives, ssh gives up
    // with 255 after about ServerAliveInterval * ServerAliveCountMax.
    let cfg = tb.ssh_config_path();
    let mut child = tb
        .exec_command(&[
            "ssh".as_ref(),
            "-F".as_ref(),
            cfg.as_os_str(),
            "-o".as_ref(),
            "ServerAliveInterval=1".as_ref(),
            "-o".as_ref(),
            "ServerAliveCountMax=3".as_ref(),
            "host2".as_ref(),
            "echo started; sleep 60".as_ref(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"started\n");
    tb.cut("host2").unwrap();
    let cut_at = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if cut_at.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("ssh did not notice the cut within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = cut_at.elapsed();
    assert_eq!(status.code(), Some(255));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "took {took:?}"
    );
    tb.restore("host2").unwrap();
    assert_works(&tb, "host2");
}

#[test]
fn systemd_faults_time_out_or_refuse_and_restore() {
    let tb = Testbed::up(&Options {
        hosts: 2,
        systemd: true,
        ..Options::default()
    })
    .expect("up");
    check_faults(&tb);
    // refuse really stopped sshd (the unit), restore started it again.
    tb.refuse("host2").unwrap();
    assert_eq!(
        ssh_ok(&tb, "host1", "echo reachable").trim(),
        "reachable",
        "host1 unaffected"
    );
    tb.restore("host2").unwrap();
    assert_eq!(
        ssh_ok(&tb, "host2", "systemctl is-active ssh.service").trim(),
        "active"
    );
}

#[test]
fn loopback_fleet_of_200_hosts() {
    let tb = Testbed::up(&Options {
        loopback: Some(200),
        ..Options::default()
    })
    .expect("up");
    assert_eq!(tb.hosts().len(), 200);
    let mut addrs: Vec<_> = tb.hosts().iter().map(|h| h.addr).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 200, "distinct addresses");
    // Every host answers over ssh with strict host keys, 32 at a time
    // (the sshd must not drop connections: MaxStartups).
    let names: Vec<String> = tb.hosts().iter().map(|h| h.name.clone()).collect();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for chunk in names.chunks(200_usize.div_ceil(32)) {
            let (tb, failures) = (&tb, &failures);
            s.spawn(move || {
                for n in chunk {
                    let (out, _) = ssh(tb, n, &[], "echo $SSH_CONNECTION");
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    let addr = tb.host(n).unwrap().addr.to_string();
                    // The server saw the connection on that host's address.
                    if !out.status.success()
                        || text.split_whitespace().nth(2).is_none_or(|a| a != addr)
                    {
                        failures.lock().unwrap().push(format!("{n}: {out:?}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    // Faults apply per address.
    tb.refuse("host7").unwrap();
    assert_fails(&tb, "host7", false);
    assert_works(&tb, "host8");
    tb.drop_packets("host8").unwrap();
    assert_fails(&tb, "host8", true);
    tb.restore("host7").unwrap();
    tb.restore("host8").unwrap();
    assert_works(&tb, "host7");
    assert_works(&tb, "host8");
}

fn lines(cmd: &[&str]) -> Vec<String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().expect(cmd[0]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.to_string())
        .collect()
}

/// What the machine has that belongs to the test bed `name` (state dir
/// `dir`): namespaces, mounts, links, processes.
fn traces(name: &str, dir: &Path, link_tag: Option<&str>, pids: &[i32]) -> Vec<String> {
    let mut out = Vec::new();
    let prefix = format!("swhtb-{name}-");
    out.extend(
        lines(&["ip", "netns", "list"])
            .into_iter()
            .filter(|l| l.starts_with(&prefix)),
    );
    let d = dir.display().to_string();
    out.extend(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&d))
            .map(|l| l.to_string()),
    );
    if let Some(tag) = link_tag {
        out.extend(
            lines(&["ip", "-o", "link", "show"])
                .into_iter()
                .filter(|l| l.contains(tag)),
        );
    }
    for p in pids {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            if !stat.contains(") Z ") {
                out.push(format!("process {p}: {stat}"));
            }
        }
    }
    out
}

fn descendant_pids() -> Vec<i32> {
    // Children of this test process (the daemons the test bed started).
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                if rest.split_whitespace().nth(1) == Some(&me.to_string()) {
                    out.push(p);
                }
            }
        }
    }
    out
}

#[test]
fn down_leaves_nothing_behind_and_is_idempotent() {
    for opts in [
        Options {
            name: Some(format!("down-c{}", std::process::id())),
            hosts: 2,
            apt_repo: true,
            ..Options::default()
        },
        Options {
            name: Some(format!("down-s{}", std::process::id())),
            hosts: 2,
            systemd: true,
            ..Options::default()
        },
        Options {
            name: Some(format!("down-l{}", std::process::id())),
            loopback: Some(3),
            ..Options::default()
        },
    ] {
        let name = opts.name.clone().unwrap();
        let before_children = descendant_pids();
        let mut tb = Testbed::up(&opts).expect("up");
        let dir = tb.state_dir();
        let pids: Vec<i32> = descendant_pids()
            .into_iter()
            .filter(|p| !before_children.contains(p))
            .collect();
        assert!(!pids.is_empty(), "{name}: no process started");
        let mut pids_all = pids.clone();
        for p in &pids {
            // Descendants too (sshd in its namespaces, containers' systemd).
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                if let Some(q) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{q}/stat")).unwrap_or_default();
                    if let Some(i) = stat.rfind(')') {
                        if stat[i + 2..].split_whitespace().nth(1) == Some(&p.to_string()) {
                            pids_all.push(q);
                        }
                    }
                }
            }
        }
        // Interface names are tb<8 hex digits><suffix>: the bridge's prefix.
        let link_tag: Option<String> = std::fs::read_to_string(dir.join("state.toml"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("bridge = "))
            .map(|l| l[10..20].to_string());
        assert_eq!(link_tag.is_some(), tb.mode() != Mode::Loopback);
        let during = traces(&name, &dir, link_tag.as_deref(), &pids_all);
        if let Some(tag) = &link_tag {
            assert!(
                during.iter().filter(|l| l.contains(tag.as_str())).count() >= 3,
                "{during:?}"
            );
        }
        assert!(
            during.iter().any(|l| l.starts_with("swhtb-")),
            "{name}: expected namespaces while up: {during:?}"
        );
        assert!(
            during.iter().any(|l| l.contains("overlay")),
            "{name}: expected overlay mounts while up: {during:?}"
        );
        assert!(during.iter().any(|l| l.starts_with("process ")));
        tb.down().expect("down");
        let after = traces(&name, &dir, link_tag.as_deref(), &pids_all);
        assert!(after.is_empty(), "{name}: left behind: {after:#?}");
        assert!(!dir.exists(), "{name}: state dir {} left", dir.display());
        // Twice is fine.
        tb.down().expect("second down");
        assert!(Testbed::attach(&dir).is_err());
    }
}

#[test]
fn a_failing_test_does_not_leave_its_test_bed_running() {
    let name = format!("panic{}", std::process::id());
    let dir = swh_deploy_testbed::default_state_dir(&name);
    let n = name.clone();
    let result = std::thread::spawn(move || {
        let _tb = Testbed::up(&Options {
            name: Some(n),
            hosts: 1,
            ..Options::default()
        })
        .expect("up");
        panic!("the test fails");
    })
    .join();
    assert!(result.is_err());
    assert!(
        !dir.exists(),
        "state dir {} left after a panic",
        dir.display()
    );
    let ns = lines(&["ip", "netns", "list"]);
    assert!(
        !ns.iter().any(|l| l.starts_with(&format!("swhtb-{name}-"))),
        "{ns:?}"
    );
}

#[test]
fn client_files_pin_keys_and_describe_the_hosts() {
    let tb = Testbed::up(&Options {
        hosts: 2,
        ..Options::default()
    })
    .expect("up");
    let cfg = std::fs::read_to_string(tb.ssh_config_path()).unwrap();
    for line in [
        "StrictHostKeyChecking yes",
        "BatchMode yes",
        "KexAlgorithms curve25519-sha256",
        "User root",
    ] {
        assert!(cfg.contains(line), "{line} missing from {cfg}");
    }
    let site: swh_deploy_testbed::Site =
        toml::from_str(&std::fs::read_to_string(tb.site_path()).unwrap()).unwrap();
    assert_eq!(site.hosts, tb.hosts());
    assert_eq!(site.ssh_config, tb.ssh_config_path());
    // A wrong pinned key makes ssh refuse the host (strict checking is real).
    let kh = tb.known_hosts_path();
    let good = std::fs::read_to_string(&kh).unwrap();
    let other = tb.state_dir().join("other_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let fields: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    std::fs::write(&kh, format!("* {}\n", fields.join(" "))).unwrap();
    let (out, _) = ssh(&tb, "host1", &[], "true");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Host key verification failed"),
        "{out:?}"
    );
    std::fs::write(&kh, good).unwrap();
    assert_works(&tb, "host1");
    // Hosts refuse password logins and accept only our key.
    let sshd = ssh_ok(
        &tb,
        "host1",
        "sshd -T | grep -E '^(passwordauthentication|permitrootlogin|maxstartups) '",
    );
    assert!(sshd.contains("passwordauthentication no"), "{sshd}");
    assert!(sshd.contains("permitrootlogin without-password"), "{sshd}");
}

#[test]
fn keep_variable_keeps_a_failed_tests_test_bed_for_inspection() {
    // One test per process under nextest: the variable affects only this test.
    std::env::set_var(swh_deploy_testbed::KEEP_ENV, "1");
    let name = format!("keep{}", std::process::id());
    let dir = swh_deploy_testbed::default_state_dir(&name);
    let n = name.clone();
    let result = std::thread::spawn(move || {
        let _tb = Testbed::up(&Options {
            name: Some(n),
            loopback: Some(1),
            ..Options::default()
        })
        .expect("up");
        panic!("the test fails");
    })
    .join();
    std::env::remove_var(swh_deploy_testbed::KEEP_ENV);
    assert!(result.is_err());
    let mut kept = Testbed::attach(&dir).expect("kept test bed");
    let (out, _) = ssh(&kept, "host1", &[], "echo still-up");
    let alive = String::from_utf8_lossy(&out.stdout).trim() == "still-up";
    kept.down().expect("down");
    assert!(alive, "{out:?}");
    assert!(!dir.exists());
}
