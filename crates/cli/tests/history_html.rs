//! `swh-deploy history RUN --html FILE` on a real test-bed run (a rolling
//! upgrade of 2 systemd hosts, batches 1 then 100%), opened in Debian's
//! headless chromium: the page's own DOM (after its script ran) has one
//! timeline row per host, bars per step, both batches marked, the versions
//! before/after; a screenshot is taken. No network: the page is a file.
//!
//! Needs root (test bed) and chromium: skipped without root, a failure
//! under CI (`common::skip`); chromium missing is a failure.

mod common;

use common::{
    install, need_root, site_head, storage_service, systemd_hosts, text, StaticBed, V10, V11,
};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Headless chromium on `page` with a fresh profile; `extra` selects the
/// output (`--dump-dom`, `--screenshot=...`).
fn chromium(profile: &Path, page: &Path, extra: &[&str]) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect(
            "chromium is missing: install the Debian package chromium (scripts/install-deps does)",
        )
}

#[test]
fn html_page_of_a_real_run_renders_one_row_per_host_in_chromium() {
    if !need_root() {
        return;
    }
    let tb = systemd_hosts(2, false);
    let bed = StaticBed::new(tb);
    let dir = &bed.dir;
    install(
        &bed.tb,
        &[("host1", V10), ("host2", V10)],
        &["python3-swh.storage"],
    );
    std::fs::write(
        bed.site(),
        site_head(None, &bed.tb, "host[1-2]", None) + &storage_service("30s"),
    )
    .unwrap();
    let swh_deploy = |args: &[&str]| bed.swh_deploy(args);
    let out = swh_deploy(&["upgrade", "--service", "storage", "--batch", "1,100%"]);
    assert_eq!(out.status.code(), Some(0));

    let page = dir.path().join("run 1.html");
    let out = swh_deploy(&["history", "1", "--html", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing fetched from anywhere.
    for needle in ["http://", "https://", "src=", "<link"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }

    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path(), &page, &["--dump-dom"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dom = text(&out.stdout);
    // One row per host, in the DOM chromium built.
    assert_eq!(dom.matches("class=\"row host\"").count(), 2, "{dom}");
    for h in &bed.hosts {
        assert!(dom.contains(&format!("data-host=\"{h}\"")), "{h}: {dom}");
    }
    // The page's script ran (no script error) and counted the same rows.
    let rendered = dom
        .split("data-rendered=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("the page's script did not run: {dom}"))
        .to_string();
    assert!(rendered.starts_with("2 hosts, "), "{rendered}");
    let bars: usize = rendered
        .trim_start_matches("2 hosts, ")
        .trim_end_matches(" bars")
        .parse()
        .unwrap();
    assert_eq!(bars, dom.matches("class=\"bar").count());
    assert!(bars >= 2 * 4, "a few steps per host: {bars}");
    // Every bar of this successful run is green (ok); health gates marked.
    assert_eq!(dom.matches("data-outcome=\"ok\"").count(), bars, "{dom}");
    assert!(dom.contains("class=\"bar gate\""), "{dom}");
    // Both batches marked.
    assert!(dom.contains("data-batch=\"0\""), "{dom}");
    assert!(dom.contains("data-batch=\"1\""), "{dom}");
    // Versions before/after, per host.
    assert_eq!(
        dom.matches(&format!(
            "<td>python3-swh.storage</td><td>{V10}</td><td>{V11}</td>"
        ))
        .count(),
        2,
        "{dom}"
    );
    assert!(dom.contains("swh-deploy run 1: succeeded"), "{dom}");

    let shot = dir.path().join("run1.png");
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(
        profile.path(),
        &page,
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a near-empty screenshot: {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("SWH_DEPLOY_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
}
