//! `swh-deploy upgrade --mode config-change` end to end against the test
//! bed's real Puppet server (Debian's puppetserver, `pergamon`): a change
//! of the environment's Hiera data reaches the systemd hosts through
//! Debian's real `puppet agent -t`, Puppet rewrites the configuration and
//! restarts the unit, the upgrade continues, the health gates pass, and the
//! journal records each host's puppet outcome (exit code and output).
//!
//! Needs root (network namespaces, systemd-nspawn) and puppetserver
//! (scripts/install-deps): skipped otherwise, a failure under CI
//! (`common::skip`).

mod common;

use common::{
    loader_service, site_head, skip, storage_service, systemd_hosts, StaticBed as Bed, V10, V11,
};
use swh_deploy_journal::{Journal, Outcome, StepStatus};
use swh_deploy_testbed::puppet;

const STORAGE_CONF: &str = "/etc/softwareheritage/storage/storage.yml";

impl Bed {
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
    if !skip::need_root_and_puppetserver() {
        return;
    }
    let tb = systemd_hosts(2, true);
    let bed = Bed::new(tb);
    let site = format!(
        "{}{}{}",
        site_head(Some("puppet-test"), &bed.tb, "host[1-2]", None),
        storage_service("30s"),
        loader_service("30s")
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
