//! Selection and planning against real site files.

use std::path::Path;
use swh_deploy_site::Site;
use swh_deploy_upgrade::{
    plan, select, Action, BatchSpec, FailBudget, Mode, PlanError, PlanRequest, PlannedProbe,
    RemoteCommand, SelectError, StepKind,
};

fn sandbox() -> Site {
    Site::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sandbox.toml")).unwrap()
}

const TWO_ENVS: &str = r#"
[site]
default_environment = "staging"

[environments.staging]
[environments.production]

[groups.staging-workers]
environment = "staging"
nodes = "sw[1-2]"

[groups.prod-workers]
environment = "production"
nodes = "pw[1-3]"

[groups.rpc]
nodes = "rpc1"

[services.loader-git]
kind = "worker"
units = ["swh-worker@{loader_git,lister}"]
packages = ["python3-swh.loader.git"]
groups = ["staging-workers", "prod-workers"]

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc"]
health = { check = "http", port = 5002, expect = "Software Heritage storage server" }
"#;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn select_by_service_by_nodes_and_both() {
    let site = sandbox();
    let s = select(&site, None, &[], &strings(&["storage"])).unwrap();
    assert_eq!(s.targets, strings(&["host1", "host2"]));
    assert_eq!(s.services.len(), 1);
    assert_eq!(s.services[0].hosts, strings(&["host1", "host2"]));
    assert_eq!(s.environment.as_deref(), Some("staging"));

    let s = select(&site, None, &strings(&["host[1-4]"]), &[]).unwrap();
    assert_eq!(s.targets.len(), 4);
    let names: Vec<&str> = s.services.iter().map(|x| x.service.name.as_str()).collect();
    assert_eq!(names, ["loader-git", "storage"]);
    assert_eq!(s.services[0].hosts, strings(&["host3", "host4"]));
    assert_eq!(s.environment, None);

    let s = select(&site, None, &strings(&["@workers", "host1"]), &[]).unwrap();
    assert_eq!(s.targets, strings(&["host1", "host3", "host4"]));
    assert_eq!(s.services[1].hosts, strings(&["host1"]));

    let err = select(&site, None, &strings(&["host3"]), &strings(&["storage"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service `storage` runs on none of the target hosts host3"
    );
    assert!(matches!(
        select(&site, None, &[], &[]),
        Err(SelectError::NoTargets)
    ));
    assert_eq!(
        select(&site, None, &[], &strings(&["nope"]))
            .unwrap_err()
            .to_string(),
        format!(
            "no service `nope` in {} (known: loader-git, storage)",
            site.path.display()
        )
    );
    assert!(
        select(&site, Some("production"), &[], &strings(&["storage"]))
            .unwrap_err()
            .to_string()
            .starts_with("no environment `production`")
    );
}

#[test]
fn select_refuses_targets_that_are_not_host_names() {
    let site = sandbox();
    for bad in ["-oProxyCommand=id", "host1,-x", "a_b"] {
        let err = select(&site, None, &strings(&[bad]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a host name"), "{bad}: {err}");
    }
}

#[test]
fn environments_choose_the_groups() {
    let site = Site::parse(TWO_ENVS, Path::new("two.toml")).unwrap();
    // The default environment applies to --service alone.
    let s = select(&site, None, &[], &strings(&["loader-git"])).unwrap();
    assert_eq!(s.targets, strings(&["sw1", "sw2"]));
    let s = select(&site, Some("production"), &[], &strings(&["loader-git"])).unwrap();
    assert_eq!(s.targets, strings(&["pw1", "pw2", "pw3"]));
    // Groups without environment belong to all.
    let s = select(&site, Some("production"), &[], &strings(&["storage"])).unwrap();
    assert_eq!(s.targets, strings(&["rpc1"]));
    // Explicit nodes: every environment's groups count for the services.
    let s = select(&site, None, &strings(&["pw1,sw1"]), &[]).unwrap();
    assert_eq!(s.services[0].hosts, strings(&["pw1", "sw1"]));
    let err = select(
        &site,
        Some("staging"),
        &strings(&["pw1"]),
        &strings(&["loader-git"]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "service `loader-git` runs on none of the target hosts pw1 in environment staging"
    );
}

fn request(site: &Site, nodes: &[&str], mode: Mode, batch: &str) -> PlanRequest {
    let s = select(site, None, &strings(nodes), &[]).unwrap();
    PlanRequest {
        mode,
        targets: s.targets,
        services: s.services,
        batch: batch.parse().unwrap(),
        ..PlanRequest::default()
    }
}

#[test]
fn nominal_plan_batches_restarts_and_gates() {
    let site = sandbox();
    let p = plan(&request(&site, &["host[1-4]"], Mode::Nominal, "1,50%")).unwrap();
    assert_eq!(p.nodes, "host[1-4]");
    assert!(p.prepare.is_empty() && p.finish.is_empty());
    let batches: Vec<(&str, bool)> = p
        .batches
        .iter()
        .map(|b| (b.nodes.as_str(), b.canary))
        .collect();
    assert_eq!(
        batches,
        [("host1", true), ("host[2-3]", false), ("host4", false)]
    );
    let names: Vec<&str> = p.batches[1].steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "versions-before",
            "apt-get-update",
            "dist-upgrade",
            "restart",
            "health",
            "versions-after"
        ]
    );
    // Batch 2 mixes an rpc host and a worker: one restart per unit set.
    let restart = &p.batches[1].steps[3];
    let shells: Vec<(String, String)> = restart
        .actions
        .iter()
        .map(|a| match a {
            Action::Remote { nodes, shell, .. } => (nodes.clone(), shell.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shells,
        [
            (
                "host2".to_string(),
                "systemctl restart gunicorn-swh-storage".to_string()
            ),
            (
                "host3".into(),
                "systemctl restart swh-worker@loader_git".into()
            ),
        ]
    );
    let health = &p.batches[1].steps[4];
    assert_eq!(health.kind, StepKind::Health);
    match &health.actions[..] {
        [Action::Health {
            service: s1,
            probe: PlannedProbe::Remote { shell, .. },
            nodes: n1,
            deadline_ms,
            ..
        }, Action::Health {
            service: s2,
            probe: PlannedProbe::Http { port, expect, .. },
            nodes: n2,
            ..
        }] => {
            assert_eq!(
                (s1.as_str(), n1.as_str(), shell.as_str()),
                (
                    "loader-git",
                    "host3",
                    "systemctl is-active swh-worker@loader_git"
                )
            );
            assert_eq!(*deadline_ms, 30_000);
            assert_eq!(
                (s2.as_str(), n2.as_str(), *port),
                ("storage", "host2", 5002)
            );
            assert_eq!(expect.as_deref(), Some("Software Heritage storage server"));
        }
        other => panic!("{other:?}"),
    }
    match &p.batches[0].steps[2].actions[0] {
        Action::Remote { command, shell, .. } => {
            assert_eq!(*command, RemoteCommand::DistUpgrade);
            assert!(shell.ends_with("-o Dpkg::Options::=--force-confold -y dist-upgrade"));
        }
        other => panic!("{other:?}"),
    }
    // Step indexes are the journal's: unique and in execution order.
    let idx: Vec<usize> = p.steps().map(|s| s.index).collect();
    assert_eq!(idx, (0..idx.len()).collect::<Vec<_>>());
    assert_eq!(
        p.packages.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
        ["python3-swh.loader.git", "python3-swh.storage"]
    );
}

#[test]
fn config_change_runs_puppet_first() {
    let site = sandbox();
    let p = plan(&request(&site, &["host1"], Mode::ConfigChange, "1")).unwrap();
    let first = &p.batches[0].steps[0];
    assert_eq!(first.name, "puppet-agent");
    match &first.actions[0] {
        Action::Remote {
            shell,
            success_codes,
            ..
        } => {
            assert_eq!(shell, "puppet agent -t");
            assert_eq!(success_codes, &[0, 2]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn long_standing_brackets_the_batches_with_compensations() {
    let site = sandbox();
    let mut req = request(&site, &["host[1-4]"], Mode::LongStanding, "2");
    req.migration = Some("swh db upgrade storage --to-version 200".into());
    req.run_id = Some(17);
    let p = plan(&req).unwrap();
    let prep: Vec<&str> = p.prepare.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(prep, ["stop-cron", "disable-puppet", "migration"]);
    assert_eq!(
        p.prepare[0].compensation.as_ref().unwrap().action,
        "start-cron"
    );
    assert_eq!(
        p.prepare[1].compensation.as_ref().unwrap().action,
        "enable-puppet"
    );
    assert_eq!(
        p.prepare[1].compensation.as_ref().unwrap().shell,
        "puppet agent --enable"
    );
    match &p.prepare[1].actions[0] {
        Action::Remote { shell, nodes, .. } => {
            assert_eq!(shell, "puppet agent --disable 'swh-deploy 17: long-standing upgrade of loader-git, storage'");
            assert_eq!(nodes, "host[1-4]");
        }
        other => panic!("{other:?}"),
    }
    match &p.prepare[2].actions[0] {
        Action::Remote { hosts, shell, .. } => {
            assert_eq!(hosts, &strings(&["host1"]));
            assert_eq!(shell, "swh db upgrade storage --to-version 200");
        }
        other => panic!("{other:?}"),
    }
    let fin: Vec<(&str, StepKind)> = p.finish.iter().map(|s| (s.name.as_str(), s.kind)).collect();
    assert_eq!(
        fin,
        [
            ("start-cron", StepKind::Compensation),
            ("enable-puppet", StepKind::Compensation)
        ]
    );
    assert_eq!(p.batches.len(), 2);
    // The rendering names the run, the batches and the exact commands.
    let text = p.render();
    for expected in [
        "long-standing upgrade of 4 host(s): host[1-4] (run 17)",
        "batches: 2 (--batch 2), first is the canary; failure budget: 0 host(s) (--max-fail 0)",
        "before the batches, on host[1-4]:",
        "    1. stop-cron       systemctl stop cron.service",
        "(journal records `start-cron` on each host first)",
        "    3. migration       on host1 only: swh db upgrade storage --to-version 200",
        "batch 1/2 (canary): host[1-2] (2 host(s))",
        "batch 2/2: host[3-4] (2 host(s))",
        "on host[1-2]: storage: GET http://HOST:5002/ answers 2xx containing \"Software Heritage storage server\" (timeout 2s), every 500ms until 30s",
        "after the batches, on host[1-4] (also after a failure or Ctrl-C, and by `swh-deploy recover` after a crash):",
        "systemctl start cron.service",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Without a run id (dry run) the message says so.
    req.run_id = None;
    req.reason = Some("storage migration to v200".into());
    let text = plan(&req).unwrap().render();
    assert!(
        text.contains("puppet agent --disable 'swh-deploy <run id>: storage migration to v200'"),
        "{text}"
    );
    assert!(text.contains("(dry run)"));
}

#[test]
fn only_upgrade_of_packages() {
    let site = sandbox();
    let mut req = request(&site, &["host1"], Mode::Nominal, "1");
    req.packages = vec!["python3-swh.storage".parse().unwrap()];
    let p = plan(&req).unwrap();
    let step = &p.batches[0].steps[2];
    assert_eq!(step.name, "only-upgrade");
    match &step.actions[0] {
        Action::Remote { shell, .. } => assert!(
            shell.ends_with("-y --only-upgrade install python3-swh.storage"),
            "{shell}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(p.only_packages);
    match &p.batches[0].steps[0].actions[0] {
        Action::Remote { shell, .. } => assert_eq!(
            shell,
            "dpkg-query -W -f='${Package} ${Version}\\n' python3-swh.storage"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn budget_and_json() {
    let site = sandbox();
    let mut req = request(&site, &["host[1-4]"], Mode::Nominal, "1,100%");
    req.max_fail = "50%".parse::<FailBudget>().unwrap();
    let p = plan(&req).unwrap();
    assert_eq!(p.allowed_failures, 2);
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    assert_eq!(json["mode"], "nominal");
    assert_eq!(json["max_fail"], serde_json::json!({"percent": 50}));
    assert_eq!(json["batches"][0]["canary"], true);
    assert_eq!(json["batches"][1]["nodes"], "host[2-4]");
    assert_eq!(
        json["batches"][0]["steps"][1]["actions"][0]["command"]["command"],
        "apt-update"
    );
    assert_eq!(
        json["batches"][0]["steps"][1]["actions"][0]["shell"],
        "apt-get update"
    );
}

#[test]
fn plan_refusals() {
    let site = sandbox();
    let mut req = request(&site, &["host1"], Mode::Nominal, "1");
    req.migration = Some("true".into());
    assert_eq!(
        plan(&req).unwrap_err(),
        PlanError::MigrationNeedsLongStanding(Mode::Nominal)
    );
    assert_eq!(
        plan(&req).unwrap_err().to_string(),
        "--migration is only for --mode long-standing (mode is nominal)"
    );
    let mut req = request(&site, &["host1"], Mode::LongStanding, "1");
    req.reason = Some("line\nbreak".into());
    assert_eq!(
        plan(&req).unwrap_err().to_string(),
        "the reason must not contain control characters or be empty"
    );
    let req = PlanRequest {
        batch: BatchSpec::all(),
        ..PlanRequest::default()
    };
    assert_eq!(plan(&req).unwrap_err(), PlanError::NoTargets);
    let req = PlanRequest {
        targets: strings(&["a", "a"]),
        ..PlanRequest::default()
    };
    assert_eq!(plan(&req).unwrap_err().to_string(), "host a is given twice");
}

#[test]
fn hosts_without_selected_services_are_upgraded_but_not_restarted() {
    let site = sandbox();
    let s = select(
        &site,
        None,
        &strings(&["host[1-4]"]),
        &strings(&["storage"]),
    )
    .unwrap();
    let p = plan(&PlanRequest {
        targets: s.targets,
        services: s.services,
        batch: BatchSpec::all(),
        ..PlanRequest::default()
    })
    .unwrap();
    let b = &p.batches[0];
    assert_eq!(b.nodes, "host[1-4]");
    let restart = b.steps.iter().find(|s| s.name == "restart").unwrap();
    assert_eq!(restart.actions.len(), 1);
    assert_eq!(
        restart.actions[0].hosts(),
        strings(&["host1", "host2"]).as_slice()
    );
}

#[test]
fn select_refuses_a_huge_node_set_before_expanding_it() {
    let huge = TWO_ENVS.replace("nodes = \"pw[1-3]\"", "nodes = \"pw[1-999999999]\"");
    let site = Site::parse(&huge, Path::new("huge.toml")).unwrap();
    let started = std::time::Instant::now();
    let err = select(&site, Some("production"), &[], &strings(&["loader-git"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("names 999999999 hosts"), "{err}");
    let site = sandbox();
    let err = select(&site, None, &strings(&["x[1-999999999]"]), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("names 999999999 hosts"), "{err}");
    // Two sets each within the limit, too many together.
    let err = select(&site, None, &strings(&["a[1-60000]", "b[1-60000]"]), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("names 120000 hosts"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
