//! The example site files expect what the real services answer (their
//! health gates would fail on every real host otherwise) and describe SWH's
//! real unit layout.

use std::path::{Path, PathBuf};
use swh_deploy_site::{Probe, Site};

fn example(name: &str) -> Site {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    Site::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn expect_of(site: &Site, service: &str) -> Option<String> {
    match &site.service(service).unwrap().health.probe {
        Probe::Http { expect, .. } => expect.clone(),
        other => panic!("{service}: not an http check: {other:?}"),
    }
}

#[test]
fn swh_example_expects_the_real_banners() {
    let site = example("swh.toml");
    // The `GET /` answers of the servers (swh.* on PyPI) and SWH's
    // monitoring strings.
    for (service, banner) in [
        ("storage", "Software Heritage storage server"),
        ("scheduler", "Software Heritage scheduler RPC server"),
        ("objstorage", "SWH Objstorage API server"),
        ("vault", "SWH Vault API server"),
        ("indexer-storage", "SWH Indexer Storage API server"),
        ("search", "Search API"),
        ("counters", "Counters API"),
    ] {
        assert_eq!(
            expect_of(&site, service).as_deref(),
            Some(banner),
            "{service}"
        );
    }
    let sandbox = example("sandbox.toml");
    assert_eq!(
        expect_of(&sandbox, "storage").as_deref(),
        Some(swh_deploy_testbed::aptrepo::STORAGE_BANNER)
    );
}

#[test]
fn swh_example_numbers_indexer_clients_from_1_and_has_no_staging_workers() {
    let site = example("swh.toml");
    let indexers = site.service("indexer-journal-clients").unwrap();
    assert!(!indexers.units.is_empty());
    for u in &indexers.units {
        let instance = u.as_str().rsplit('_').next().unwrap();
        assert_eq!(instance, "1", "{u}");
    }
    // Staging's workers moved to Kubernetes: no swh-worker@ unit runs on a
    // staging group.
    for s in site.services.values() {
        if !s
            .units
            .iter()
            .any(|u| u.as_str().starts_with("swh-worker@"))
        {
            continue;
        }
        for g in &s.groups {
            let env = site.groups[g].environment.as_deref();
            assert_ne!(env, Some("staging"), "{}: group {g}", s.name);
        }
    }
}
