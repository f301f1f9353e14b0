//! swh-apps steps against real git, uv with a local package index, and
//! Debian's docker-registry on loopback.

mod common;

use common::{git, put_tag, sh, AppsBed};
use std::process::Command;
use swh_deploy_apps::registry::Registry as RegistryRef;
use swh_deploy_apps::version::ImageVersion;
use swh_deploy_apps::{AppsRepo, Dependent, FreezeOptions, Pin};
use swh_deploy_testbed::components::{PackageIndex, Registry};

const DOCKERFILE: &str = "ARG REGISTRY\nFROM ${REGISTRY}base:latest\n";

#[test]
fn list_and_dependents_either_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let bed = AppsBed::new(
        tmp.path(),
        &[
            ("swh-graph", "swh.graph\n", DOCKERFILE),
            ("swh-toolbox", "swh.graph\nswh.storage\n", DOCKERFILE),
            ("swh-lister", "swh.lister\n", DOCKERFILE),
            ("swh-web", "swh.web\n", DOCKERFILE),
        ],
    );
    let frozen = |app: &str, text: &str| {
        std::fs::write(
            bed.work
                .join("apps")
                .join(app)
                .join("requirements-frozen.txt"),
            text,
        )
        .unwrap()
    };
    frozen(
        "swh-graph",
        "swh-graph==6.2.0\n    # via -r apps/swh-graph/requirements.txt\n",
    );
    frozen("swh-toolbox", "swh.graph==6.1.1\nswh-storage==3.0.0\n");
    frozen("swh-lister", "swh-core==3.0.0\n");
    frozen("swh-web", "swh_graph==6.3.0\n");
    let repo = AppsRepo::open(&bed.work).unwrap();
    let apps = repo.list().unwrap();
    let names: Vec<(&str, &str)> = apps
        .iter()
        .map(|a| (a.name.as_str(), a.image.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("swh-graph", "graph"),
            ("swh-lister", "lister"),
            ("swh-toolbox", "toolbox"),
            ("swh-web", "web")
        ]
    );
    for module in ["swh.graph", "swh-graph"] {
        let deps = repo.dependents(module, "v6.3.0").unwrap();
        assert_eq!(
            deps.dependents,
            vec![
                Dependent {
                    app: "swh-graph".to_string(),
                    pin: Pin::Version("6.2.0".to_string())
                },
                Dependent {
                    app: "swh-toolbox".to_string(),
                    pin: Pin::Version("6.1.1".to_string())
                },
            ],
            "{module}"
        );
        assert_eq!(deps.requiring, vec!["swh-graph", "swh-toolbox", "swh-web"]);
    }
    assert!(repo
        .dependents("swh.graph", "6.2.0")
        .unwrap()
        .dependents
        .iter()
        .all(|d| d.app != "swh-graph"));
}

fn index_with_graph(root: &std::path::Path) -> PackageIndex {
    let index = PackageIndex::start(root).unwrap();
    index.publish("swh.core", "3.0.0", &[]).unwrap();
    index
        .publish("swh.graph", "6.2.0", &["swh.core>=3"])
        .unwrap();
    index
        .publish("swh.graph", "6.3.0", &["swh.core>=3"])
        .unwrap();
    index
}

fn freeze_opts(index: &PackageIndex) -> FreezeOptions {
    FreezeOptions {
        uv: common::uv(),
        index_args: vec!["--index-url".into(), index.url()],
        upgrade: true,
    }
}

#[test]
fn freeze_matches_uv_and_reports_pin_changes() {
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("UV_CACHE_DIR", tmp.path().join("uv-cache"));
    let index = index_with_graph(&tmp.path().join("index"));
    let bed = AppsBed::new(tmp.path(), &[("swh-graph", "swh.graph\n", DOCKERFILE)]);
    let frozen = bed.work.join("apps/swh-graph/requirements-frozen.txt");
    std::fs::write(&frozen, "swh-core==3.0.0\nswh-graph==6.2.0\n").unwrap();
    let repo = AppsRepo::open(&bed.work).unwrap();
    let opts = freeze_opts(&index);

    // Dry run: reports, writes nothing.
    let out = repo.freeze("swh-graph", &opts, false).unwrap();
    assert!(out.changed);
    assert_eq!(out.changes.len(), 1);
    assert_eq!(out.changes[0].name, "swh-graph");
    assert_eq!(out.changes[0].from.as_deref(), Some("6.2.0"));
    assert_eq!(out.changes[0].to.as_deref(), Some("6.3.0"));
    assert_eq!(
        std::fs::read_to_string(&frozen).unwrap(),
        "swh-core==3.0.0\nswh-graph==6.2.0\n"
    );

    let out = repo.freeze("swh-graph", &opts, true).unwrap();
    let written = std::fs::read_to_string(&frozen).unwrap();
    assert_eq!(written, out.text);
    assert!(
        written.contains("# via -r apps/swh-graph/requirements.txt"),
        "{written}"
    );
    assert!(written.contains(
        "uv pip compile --python-version 3.11 apps/swh-graph/requirements.txt -o apps/swh-graph/requirements-frozen.txt"
    ));
    // Same pins and annotations as uv run directly with the same options.
    let direct = tmp.path().join("direct.txt");
    sh(Command::new(common::uv())
        .current_dir(&bed.work)
        .args([
            "pip",
            "compile",
            "--quiet",
            "apps/swh-graph/requirements.txt",
            "-o",
        ])
        .arg(&direct)
        .args(["--upgrade", "--index-url", &index.url()]));
    let body = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    assert_eq!(
        body(&written),
        body(&std::fs::read_to_string(&direct).unwrap())
    );
    // No temporary file left behind.
    let leftovers: Vec<_> = std::fs::read_dir(bed.work.join("apps/swh-graph"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Second freeze: nothing changes.
    let again = repo.freeze("swh-graph", &opts, true).unwrap();
    assert!(!again.changed && again.changes.is_empty());

    // A failing resolution leaves the file untouched.
    std::fs::write(
        bed.work.join("apps/swh-graph/requirements.txt"),
        "swh.graph\nswh.nonexistent\n",
    )
    .unwrap();
    let e = repo.freeze("swh-graph", &opts, true).unwrap_err();
    assert!(e.to_string().contains("uv"), "{e}");
    assert_eq!(std::fs::read_to_string(&frozen).unwrap(), written);
    // Unknown app.
    assert!(repo
        .freeze("../etc", &opts, true)
        .unwrap_err()
        .to_string()
        .contains("no app"));
}

#[test]
fn next_version_is_numeric_and_unique_against_registry_and_git() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start(&tmp.path().join("registry")).unwrap();
    let bed = AppsBed::new(
        tmp.path(),
        &[("swh-loader-git", "swh.loader.git\n", DOCKERFILE)],
    );
    let repo = AppsRepo::open(&bed.work).unwrap();
    let r = RegistryRef::parse(&format!("{}/swh/infra/swh-apps", reg.url())).unwrap();
    let day = 20250117;
    // Nothing anywhere: .1
    assert_eq!(
        repo.next_version("swh-loader-git", day, Some(&r), None)
            .unwrap()
            .to_string(),
        "20250117.1"
    );
    // Registry has .1 to .10 (string sorting would pick .9 as the newest and
    // collide with .10), plus other days and latest.
    for n in 1..=10 {
        put_tag(
            &reg.url(),
            "swh/infra/swh-apps/loader_git",
            &format!("{day}.{n}"),
        );
    }
    put_tag(&reg.url(), "swh/infra/swh-apps/loader_git", "20250116.33");
    put_tag(&reg.url(), "swh/infra/swh-apps/loader_git", "latest");
    // Paginated 3 by 3, every page must be read.
    let tags = r.tags("loader_git", Some(3)).unwrap();
    assert_eq!(tags.len(), 12, "{tags:?}");
    assert_eq!(
        repo.next_version("swh-loader-git", day, Some(&r), Some(3))
            .unwrap()
            .to_string(),
        "20250117.11"
    );
    // A git tag on the remote only (not fetched) takes .12.
    let other = tmp.path().join("other");
    sh(Command::new("git")
        .args(["clone", "-q"])
        .arg(&bed.remote)
        .arg(&other));
    git(
        &other,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e.invalid",
            "tag",
            "-a",
            "swh-loader-git-20250117.12",
            "-m",
            "x",
        ],
    );
    git(&other, &["push", "-q", "origin", "--tags"]);
    // And a tag of another app with a common prefix does not count.
    git(
        &other,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e.invalid",
            "tag",
            "-a",
            "swh-loader-git-extra-20250117.40",
            "-m",
            "x",
        ],
    );
    git(&other, &["push", "-q", "origin", "--tags"]);
    let v = repo
        .next_version("swh-loader-git", day, Some(&r), Some(5))
        .unwrap();
    assert_eq!(v, ImageVersion { date: day, n: 13 });
    // Another day starts again at 1.
    assert_eq!(
        repo.next_version("swh-loader-git", 20250118, Some(&r), None)
            .unwrap()
            .to_string(),
        "20250118.1"
    );
}
