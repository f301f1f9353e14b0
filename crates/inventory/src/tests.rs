use super::*;
use swh_deploy_util::testing::git;

fn site(dir: &Path, extra: &str) -> Site {
    let text = format!(
        "[site]\nname = \"t\"\n[environments.staging]\n[groups.rpc]\nenvironment = \"staging\"\nnodes = \"host[1-2]\"\n{extra}"
    );
    Site::parse(&text, &dir.join("site.toml")).unwrap()
}

fn query(want: Option<&str>, envs: &[&str], static_path: bool) -> Query {
    let module = Module::parse("swh-storage").unwrap();
    Query {
        package: module.debian_package().parse().unwrap(),
        module,
        want: want.map(|w| ReleaseVersion::parse(w).unwrap()),
        envs: envs.iter().map(|e| e.to_string()).collect(),
        static_path,
        elastic_path: !static_path,
        cluster: false,
    }
}

#[test]
fn image_references_split_into_name_and_version() {
    let s = |i: &str| split_image(i).map(|(n, v)| format!("{n} {v}"));
    assert_eq!(
        s("container-registry.softwareheritage.org/swh/infra/swh-apps/storage:20250113.1")
            .as_deref(),
        Some("storage 20250113.1")
    );
    assert_eq!(
        s("127.0.0.1:5000/loader_git:1").as_deref(),
        Some("loader_git 1")
    );
    assert_eq!(s("r/x/web@sha256:ab").as_deref(), Some("web sha256:ab"));
    assert_eq!(s("127.0.0.1:5000/storage"), None);
    assert_eq!(s("storage"), None);
}

#[test]
fn requirement_lines_are_matched_by_normalised_name() {
    assert!(mentions("swh.storage>=1.0\n", "swh-storage"));
    assert!(mentions("swh-storage==1.2.0 # via x\n", "swh-storage"));
    assert!(!mentions("swh.storage.extra==1\n", "swh-storage"));
    assert!(!mentions("# swh.storage\n", "swh-storage"));
}

#[test]
fn debian_versions_behind_a_release() {
    let w = ReleaseVersion::parse("1.1").unwrap();
    assert!(deb_behind(Some("1.0-1~swh1"), Some(&w)));
    assert!(!deb_behind(Some("1.1-1~swh1"), Some(&w)));
    assert!(!deb_behind(Some("1:1.2.0-1~swh1"), Some(&w)));
    assert!(deb_behind(None, Some(&w)));
    assert!(!deb_behind(Some("1.0-1"), None));
}

#[test]
fn frozen_pins_behind_a_release() {
    let w = ReleaseVersion::parse("1.1").unwrap();
    assert!(pin_behind(Some("1.0"), Some(&w)));
    assert!(!pin_behind(Some("1.1.0"), Some(&w)));
    assert!(pin_behind(None, Some(&w)));
    assert!(pin_behind(Some("not-a-version"), Some(&w)));
    assert!(!pin_behind(None, None));
}

#[test]
fn the_elastic_path_needs_both_checkouts() {
    let dir = tempfile::tempdir().unwrap();
    let bare = site(dir.path(), "");
    assert_eq!(elastic_sources(&bare, Some(Path::new("/a")), None), None);
    assert_eq!(elastic_sources(&bare, None, Some(Path::new("/c"))), None);
    assert_eq!(
        elastic_sources(&bare, Some(Path::new("/a")), Some(Path::new("/c"))),
        Some(ElasticSources {
            apps_dir: "/a".into(),
            charts_dir: "/c".into()
        })
    );
    let full = site(
        dir.path(),
        "[apps]\ncheckout = \"/srv/apps\"\n[charts]\ncheckout = \"/srv/charts\"\n",
    );
    assert_eq!(
        elastic_sources(&full, None, None),
        Some(ElasticSources {
            apps_dir: "/srv/apps".into(),
            charts_dir: "/srv/charts".into()
        })
    );
}

#[test]
fn an_unknown_environment_is_refused_and_a_chart_branch_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = site(dir.path(), "");
    let e = locate(&s, &query(None, &["prod"], true), None).unwrap_err();
    assert!(e.to_string().contains("prod"), "{e}");
    assert_eq!(e.exit(), Exit::Failed);
    // A chart branch only: no static environment left, nothing asked.
    let r = locate(&s, &query(None, &["swh-next-version"], true), None).unwrap();
    assert!(r.static_.is_empty() && !r.behind && !r.unreachable);
    assert_eq!(r.exit(), Exit::Success);
    assert!(r.render().contains("  static: no host\n"), "{}", r.render());
}

/// swh-apps with swh-storage frozen at 1.0 (tag 20260101.1) then 1.1 (tag
/// 20260102.1), swh-web not requiring it; swh-charts whose staging deploys
/// 20260102.1 and production 20260101.1, next-version an image without tag.
fn checkouts(root: &Path) -> ElasticSources {
    let apps = root.join("swh-apps");
    std::fs::create_dir_all(apps.join("apps/swh-storage")).unwrap();
    std::fs::create_dir_all(apps.join("apps/swh-web")).unwrap();
    git(&apps, &["init", "-q", "-b", "master"]);
    std::fs::write(
        apps.join("apps/swh-storage/requirements.txt"),
        "swh.storage\n",
    )
    .unwrap();
    std::fs::write(apps.join("apps/swh-web/requirements.txt"), "swh.web\n").unwrap();
    for (v, tag) in [("1.0", "20260101.1"), ("1.1", "20260102.1")] {
        std::fs::write(
            apps.join("apps/swh-storage/requirements-frozen.txt"),
            format!("attrs==23.1.0\nswh-storage=={v}\n"),
        )
        .unwrap();
        git(&apps, &["add", "."]);
        git(&apps, &["commit", "-q", "-m", v]);
        git(&apps, &["tag", &format!("swh-storage-{tag}")]);
    }
    let work = root.join("charts.work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "production"]);
    let values = |v: &str| {
        format!("swh_storage_image: swh/storage\nswh_storage_image_version: '{v}'\nswh_web_image_version: '20250101.1'\n")
    };
    let file = work.join("values-swh-application-versions.yaml");
    std::fs::write(&file, values("20260101.1")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "production"]);
    git(&work, &["checkout", "-q", "-b", "staging"]);
    std::fs::write(&file, values("20260102.1")).unwrap();
    git(&work, &["commit", "-q", "-am", "staging"]);
    git(&work, &["checkout", "-q", "-b", "swh-next-version"]);
    std::fs::write(&file, values("20260103.1")).unwrap();
    git(&work, &["commit", "-q", "-am", "next"]);
    let bare = root.join("charts.git");
    git(
        root,
        &["clone", "-q", "--bare", "charts.work", "charts.git"],
    );
    git(root, &["clone", "-q", "charts.git", "swh-charts"]);
    assert!(bare.is_dir());
    ElasticSources {
        apps_dir: apps,
        charts_dir: root.join("swh-charts"),
    }
}

#[test]
fn the_elastic_path_reads_the_frozen_version_of_each_deployed_image() {
    let dir = tempfile::tempdir().unwrap();
    let sources = checkouts(dir.path());
    let s = site(dir.path(), "");
    let r = locate(&s, &query(Some("1.1"), &[], false), Some(&sources)).unwrap();
    let at: Vec<(&str, &str, Option<&str>, bool)> = r
        .elastic
        .iter()
        .flat_map(|e| {
            e.apps.iter().map(move |a| {
                (
                    e.environment.as_str(),
                    a.image_version.as_str(),
                    a.module_version.as_deref(),
                    a.behind,
                )
            })
        })
        .collect();
    assert_eq!(
        at,
        vec![
            ("swh-next-version", "20260103.1", None, true),
            ("staging", "20260102.1", Some("1.1"), false),
            ("production", "20260101.1", Some("1.0"), true),
        ]
    );
    let note = r.elastic[0].apps[0].note.as_deref().unwrap();
    assert!(
        note.starts_with(
            "no apps/swh-storage/requirements-frozen.txt at tag swh-storage-20260103.1"
        ),
        "{note}"
    );
    assert!(r.behind && r.static_.is_empty());
    assert_eq!(r.exit(), Exit::Failed);
    let text = r.render();
    assert!(
        text.contains("  elastic staging:\n    swh-storage              image 20260102.1     swh.storage 1.1\n"),
        "{text}"
    );
    assert!(
        text.ends_with("behind 1.1: see the places marked behind\n"),
        "{text}"
    );
    // Only production, expecting 1.0: nowhere behind.
    let r = locate(
        &s,
        &query(Some("1.0"), &["production"], false),
        Some(&sources),
    )
    .unwrap();
    assert_eq!(r.elastic.len(), 1);
    assert!(!r.behind);
    assert!(r.render().ends_with("1.0 or newer everywhere\n"));
}

#[test]
fn the_json_report_keeps_schema_1_and_leaves_out_the_stderr_parts() {
    let r = Report {
        schema: 1,
        module: "swh.storage".into(),
        package: "python3-swh.storage".into(),
        version: Some("1.1".into()),
        static_: vec![StaticEnv {
            environment: Some("staging".into()),
            versions: vec![HostsAt {
                version: Some("1.0-1~swh1".into()),
                hosts: "host[1-2]".into(),
                count: 2,
                behind: true,
            }],
            unreachable: "host3".into(),
        }],
        elastic: Vec::new(),
        behind: true,
        unreachable: true,
        warnings: vec!["host3: timeout".into()],
    };
    let v = serde_json::to_value(&r).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "behind", "elastic", "module", "package", "schema", "static", "version",
    ];
    want.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, want);
    assert_eq!(v["static"][0]["versions"][0]["hosts"], "host[1-2]");
    assert_eq!(
        r.render(),
        "swh.storage (Debian package python3-swh.storage):\n  static staging:\n    \
         1.0-1~swh1               host[1-2] (2) behind\n    unreachable              host3\n\
         behind 1.1: see the places marked behind\n"
    );
}
