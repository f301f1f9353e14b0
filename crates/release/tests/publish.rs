//! The publication gate against the test bed's real components: the
//! PyPI-style index (`PackageIndex`, busybox httpd serving PEP 503 pages and
//! real wheels) and a Debian repository made by `dpkg-scanpackages`
//! (`aptrepo`), served by busybox httpd as a flat repository and in
//! reprepro's `dists/<suite>/main/binary-<arch>/` layout. Releases appear
//! during the wait from another thread, as after CI's upload.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};
use swh_deploy_release::publish::{wait, Channel, ChannelStatus, Checker, Status, WaitPolicy};
use swh_deploy_release::{Module, ReleaseVersion};
use swh_deploy_testbed::aptrepo;
use swh_deploy_testbed::components::{PackageIndex, StaticHttp};

fn module() -> Module {
    Module::parse("swh.loader.git").unwrap()
}

fn v(s: &str) -> ReleaseVersion {
    ReleaseVersion::parse(s).unwrap()
}

/// Copies `from` to `to` atomically (temporary file + rename), creating
/// the directory: what a repository tool does when it publishes an index.
fn install(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    let tmp = to.with_extension("tmp");
    fs::copy(from, &tmp).unwrap();
    fs::rename(&tmp, to).unwrap();
}

type Reports = Vec<(Duration, ChannelStatus)>;

fn run_wait(
    channels: &[Channel],
    version: &str,
    timeout: Duration,
) -> (swh_deploy_release::publish::WaitOutcome, Reports) {
    run_wait_with(
        channels,
        version,
        WaitPolicy::new(timeout, Duration::from_millis(100)),
    )
}

fn run_wait_with(
    channels: &[Channel],
    version: &str,
    policy: WaitPolicy,
) -> (swh_deploy_release::publish::WaitOutcome, Reports) {
    let mut reports = Vec::new();
    let outcome = wait(
        &Checker::new(Duration::from_secs(5)),
        channels,
        &module(),
        &v(version),
        &policy,
        &mut |t, s| reports.push((t, s.clone())),
    );
    (outcome, reports)
}

#[test]
fn pypi_release_published_during_the_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let index = PackageIndex::start(&tmp.path().join("index")).unwrap();
    let channel = Channel::pypi(&index.url()).unwrap();
    let checker = Checker::default();
    // What the index already holds is published; what it does not is missing.
    assert!(matches!(
        checker.check(&channel, &module(), &v("1.1.0")),
        Status::Published { evidence } if evidence == "swh_loader_git-1.1.0-py3-none-any.whl"
    ));
    let before = checker.check(&channel, &module(), &v("1.2.0"));
    assert_eq!(
        before,
        Status::Missing {
            detail: format!(
                "{}swh-loader-git/ has swh-loader-git 1.0.0, 1.1.0 only",
                index.url()
            )
        }
    );
    let (outcome, reports) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1000));
            index
                .publish("swh.loader.git", "1.2.0", &["swh.core>=1.0.0"])
                .unwrap();
        });
        run_wait(
            std::slice::from_ref(&channel),
            "1.2.0",
            Duration::from_secs(20),
        )
    });
    assert!(outcome.published, "{outcome:?}");
    assert!(
        outcome.elapsed >= Duration::from_millis(1000),
        "{outcome:?}"
    );
    assert!(outcome.rounds >= 2, "{outcome:?}");
    // Reported: missing at first, then published, once each.
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(!reports[0].1.status.is_published());
    assert_eq!(
        reports[1].1.status,
        Status::Published {
            evidence: "swh_loader_git-1.2.0-py3-none-any.whl".into()
        }
    );
}

#[test]
fn pypi_times_out_and_unknown_projects_are_not_yet_published() {
    let tmp = tempfile::tempdir().unwrap();
    let index = PackageIndex::start(&tmp.path().join("index")).unwrap();
    let channel = Channel::pypi(&index.url()).unwrap();
    let t0 = Instant::now();
    let (outcome, reports) = run_wait(
        std::slice::from_ref(&channel),
        "1.3.0",
        Duration::from_secs(1),
    );
    assert!(!outcome.published);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert!(outcome.rounds >= 3, "{outcome:?}");
    assert_eq!(
        reports.len(),
        1,
        "unchanged status is reported once: {reports:?}"
    );
    // ... unless the reminder is due: again every 400 ms (0, 0.4, 0.8 s).
    let policy = WaitPolicy {
        reminder: Duration::from_millis(400),
        ..WaitPolicy::new(Duration::from_millis(1000), Duration::from_millis(100))
    };
    let (_, reports) = run_wait_with(std::slice::from_ref(&channel), "1.3.0", policy);
    // (2 on a loaded machine where rounds slip; 1 without reminders).
    assert!((2..=3).contains(&reports.len()), "{reports:?}");
    assert!(reports.windows(2).all(|w| w[0].1 == w[1].1));
    // A project the index does not know: its page is a 404, "not yet".
    let unknown = Module::parse("swh.not.there").unwrap();
    assert_eq!(
        Checker::default().check(&channel, &unknown, &v("1.0.0")),
        Status::Missing {
            detail: format!("no project page {}swh-not-there/ (404)", index.url())
        }
    );
}

#[test]
fn unreachable_index_keeps_waiting_and_says_so() {
    // A port nobody listens on (bound then released).
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let channel = Channel::pypi(&format!("http://127.0.0.1:{port}/simple/")).unwrap();
    let (outcome, reports) = run_wait(&[channel], "1.2.0", Duration::from_millis(800));
    assert!(!outcome.published);
    assert!(outcome.rounds >= 2, "kept waiting: {outcome:?}");
    match &reports[0].1.status {
        Status::Unreachable { detail } => assert!(detail.contains(&port.to_string()), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn apt_flat_and_reprepro_layouts() {
    let old = aptrepo::build_cached(&["1.0.0-1~swh1", "1.1.0-1~swh1"]).unwrap();
    let new = aptrepo::build_cached(&["1.0.0-1~swh1", "1.1.0-1~swh1", "1.2.0-1~swh1"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let flat = tmp.path().join("flat");
    let debian = tmp.path().join("debian");
    let dists = debian.join("dists/bookworm-swh/main/binary-amd64");
    install(&old.dir.join("Packages"), &flat.join("Packages"));
    // reprepro layout with only Packages.gz: the fallback is read.
    install(&old.dir.join("Packages.gz"), &dists.join("Packages.gz"));
    let flat_http = StaticHttp::start(&flat, Ipv4Addr::LOCALHOST.into()).unwrap();
    let deb_http = StaticHttp::start(&debian, Ipv4Addr::LOCALHOST.into()).unwrap();
    let flat_ch = Channel::apt(&flat_http.url(), None, None).unwrap();
    let deb_ch = Channel::apt(&deb_http.url(), Some("bookworm-swh"), None).unwrap();
    let checker = Checker::default();
    for ch in [&flat_ch, &deb_ch] {
        assert_eq!(
            checker.check(ch, &module(), &v("1.1.0")),
            Status::Published {
                evidence: "python3-swh.loader.git 1.1.0-1~swh1".into()
            },
            "{ch:?}"
        );
        assert!(matches!(
            checker.check(ch, &module(), &v("1.2.0")),
            Status::Missing { detail } if detail.contains("has python3-swh.loader.git 1.0.0-1~swh1, 1.1.0-1~swh1 only")
        ));
    }
    // A suite that does not exist: no index there, not yet published.
    let other = Channel::apt(&deb_http.url(), Some("trixie-swh"), None).unwrap();
    assert!(matches!(
        checker.check(&other, &module(), &v("1.1.0")),
        Status::Missing { detail } if detail.contains("(404)")
    ));

    // Timeout when nothing is published.
    let (outcome, _) = run_wait(
        &[flat_ch.clone(), deb_ch.clone()],
        "1.2.0",
        Duration::from_secs(1),
    );
    assert!(!outcome.published);
    assert!(outcome.channels.iter().all(|c| !c.status.is_published()));

    // Published during the wait: first the flat repository, later the
    // reprepro one; the wait ends only when both have it.
    let t0 = Instant::now();
    let (outcome, reports) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(400));
            install(&new.dir.join("Packages"), &flat.join("Packages"));
            std::thread::sleep(Duration::from_millis(600));
            install(&new.dir.join("Packages.gz"), &dists.join("Packages.gz"));
        });
        run_wait(
            &[flat_ch.clone(), deb_ch.clone()],
            "1.2.0",
            Duration::from_secs(20),
        )
    });
    assert!(outcome.published, "{outcome:?}");
    assert!(t0.elapsed() >= Duration::from_millis(1000));
    let published: Vec<&Channel> = reports
        .iter()
        .filter(|(_, s)| s.status.is_published())
        .map(|(_, s)| &s.channel)
        .collect();
    assert_eq!(published, [&flat_ch, &deb_ch], "{reports:?}");
    for c in &outcome.channels {
        assert_eq!(
            c.status,
            Status::Published {
                evidence: "python3-swh.loader.git 1.2.0-1~swh1".into()
            }
        );
    }
}
