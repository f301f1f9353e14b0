//! `swh-deploy upgrade --mode config-change` end to end against the test
//! bed's real Puppet server (Debian's puppetserver, `pergamon`): a change
//! of the environment's Hiera data reaches the systemd hosts through
//! Debian's real `puppet agent -t`, Puppet rewrites the configuration and
//! restarts the unit, the upgrade continues, the health gates pass, and the
//! journal records each host's puppet outcome (exit code and output).
//!
//! Needs root (network namespaces, systemd-nspawn) and puppetserver
//! (scripts/install-deps); fails under CI without them.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use swh_deploy_journal::{Journal, Outcome, StepStatus};
use swh_deploy_testbed::{puppet, Options, Testbed};

const V10: &str = "1.0-1~swh1";
const V11: &str = "1.1-1~swh1";
const STORAGE_CONF: &str = "/etc/softwareheritage/storage/storage.yml";

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    let server = std::path::Path::new("/usr/share/puppetserver/puppetserver.jar").exists();
    if root && server {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: this test needs root and puppetserver (scripts/install-deps)"
    );
    eprintln!("skipped: needs root and puppetserver");
    false
}

struct Bed {
    tb: Testbed,
    dir: tempfile::TempDir,
}

impl Bed {
    fn sh(&self, host: &str, cmd: &str) -> String {
        let out = self
            .tb
            .ssh_command(host, cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.sqlite")
    }

    fn swh_deploy(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_swh-deploy"))
            .args(args)
            .env("SWH_DEPLOY_JOURNAL", self.journal())
            .env("SWH_DEPLOY_SITE", self.dir.path().join("site.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ swh-deploy {}\n-> {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// (host, exit code, output) of the puppet-agent step of `run`.
    fn puppet_results(&self, run: i64) -> Vec<(String, Option<i32>, String)> {
        let j = Journal::open(&self.journal()).unwrap();
        let d = j.run_details(run).unwrap();
        let step = d
            .steps
            .iter()
            .find(|s| s.name == "puppet-agent")
            .expect("a puppet-agent step");
        assert_eq!(step.status, StepStatus::Succeeded);
        let mut r: Vec<_> = d
            .results
            .iter()
            .filter(|r| r.step == step.index)
            .map(|r| {
                assert_eq!(r.outcome, Outcome::Ok, "{}: {}", r.host, r.stdout);
                (r.host.clone(), r.rc, r.stdout.clone())
            })
            .collect();
        r.sort();
        r
    }
}

#[test]
fn config_change_mode_against_the_real_puppet_server() {
    if !can_run() {
        return;
    }
    let tb = Testbed::up(&Options {
        hosts: 2,
        systemd: true,
        apt_repo: true,
        apt_versions: vec![V10.into(), V11.into()],
        puppet: true,
        ..Options::default()
    })
    .expect("test bed up");
    let bed = Bed {
        tb,
        dir: tempfile::tempdir().unwrap(),
    };
    let site = format!(
        r#"[site]
name = "puppet-test"
default_environment = "staging"

[ssh]
config = "{cfg}"
user = "root"
connect_timeout = "3s"

[environments.staging]

[groups.rpc]
environment = "staging"
nodes = "host[1-2]"

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc"]
health = {{ check = "http", port = 5002, path = "/", expect = "Software Heritage storage server", timeout = "2s", deadline = "30s", interval = "500ms" }}

[services.loader-git]
kind = "worker"
units = ["swh-worker@loader_git"]
packages = ["python3-swh.loader.git"]
groups = ["rpc"]
health = {{ check = "systemd", deadline = "30s", interval = "500ms" }}
"#,
        cfg = bed.tb.ssh_config_path().display()
    );
    std::fs::write(bed.dir.path().join("site.toml"), site).unwrap();
    // 1.0 on both hosts, then a first puppet run: the hosts follow the
    // catalog (exit 2, the configuration files are Puppet's from now on).
    std::thread::scope(|s| {
        for h in ["host1", "host2"] {
            let bed = &bed;
            s.spawn(move || {
                let out = bed.sh(
                    h,
                    &format!(
                        "apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                         python3-swh.storage={V10} python3-swh.loader.git={V10} >/dev/null 2>&1; \
                         puppet agent -t >/dev/null 2>&1; echo $?"
                    ),
                );
                assert_eq!(out, "2", "first puppet run on {h}");
            });
        }
    });

    // The change: a new storage setting in the environment's common data.
    let common =
        std::fs::read_to_string(puppet::env_dir(&bed.tb).join("data/common.yaml")).unwrap();
    let line = "# config-change: a new storage setting";
    let changed = common.replace("cls: memory\n", &format!("cls: memory\n        {line}\n"));
    assert_ne!(common, changed);
    puppet::write_data(&bed.tb, "common.yaml", &changed).unwrap();
    for h in ["host1", "host2"] {
        assert!(!bed.sh(h, &format!("cat {STORAGE_CONF}")).contains(line));
    }

    let out = bed.swh_deploy(&["upgrade", "-w", "host[1-2]", "--mode", "config-change"]);
    assert_eq!(out.status.code(), Some(0));
    // On the hosts: the new configuration, the new version, units active.
    for h in ["host1", "host2"] {
        assert!(
            bed.sh(h, &format!("cat {STORAGE_CONF}")).contains(line),
            "{h}"
        );
        assert_eq!(
            bed.sh(h, "dpkg-query -W -f='${Version}' python3-swh.storage"),
            V11,
            "{h}"
        );
        assert_eq!(
            bed.sh(
                h,
                "systemctl is-active gunicorn-swh-storage swh-worker@loader_git | tr '\\n' ' '"
            ),
            "active active",
            "{h}"
        );
    }
    // In the journal: puppet's outcome on each host (2: Puppet changed the
    // file and restarted the unit), then the health gate passed.
    let results = bed.puppet_results(1);
    assert_eq!(results.len(), 2);
    for (host, rc, stdout) in &results {
        assert_eq!(*rc, Some(2), "{host}: {stdout}");
        assert!(
            stdout.contains("Service[gunicorn-swh-storage.service]: Triggered 'refresh'"),
            "{host}: {stdout}"
        );
        assert!(stdout.contains(line), "{host}: the diff: {stdout}");
    }
    let j = Journal::open(&bed.journal()).unwrap();
    let d = j.run_details(1).unwrap();
    let health: Vec<_> = d.steps.iter().filter(|s| s.name == "health").collect();
    assert!(!health.is_empty());
    assert!(health.iter().all(|s| s.status == StepStatus::Succeeded));
    drop(j);

    // Nothing changed since: puppet exits 0 on each host, recorded as such.
    let out = bed.swh_deploy(&["upgrade", "-w", "host[1-2]", "--mode", "config-change"]);
    assert_eq!(out.status.code(), Some(0));
    let results = bed.puppet_results(2);
    assert_eq!(
        results
            .iter()
            .map(|(h, rc, _)| (h.as_str(), *rc))
            .collect::<Vec<_>>(),
        [("host1", Some(0)), ("host2", Some(0))]
    );
}
