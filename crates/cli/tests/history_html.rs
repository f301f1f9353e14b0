//! `swh-deploy history RUN --html FILE` on a real test-bed run (a rolling
//! upgrade of 2 systemd hosts, batches 1 then 100%), opened in Debian's
//! headless chromium: the page's own DOM (after its script ran) has one
//! timeline row per host, bars per step, both batches marked, the versions
//! before/after; a screenshot is taken. No network: the page is a file.
//!
//! Needs root (test bed) and chromium: skipped without root, except under
//! CI (CI=true) where it fails; chromium missing is a failure.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use swh_deploy_testbed::{Options, Testbed};

const V10: &str = "1.0-1~swh1";
const V11: &str = "1.1-1~swh1";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

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
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root under CI"
        );
        eprintln!("skipped: needs root");
        return;
    }
    let tb = Testbed::up(&Options {
        hosts: 2,
        systemd: true,
        apt_repo: true,
        apt_versions: vec![V10.into(), V11.into()],
        ..Options::default()
    })
    .expect("test bed up");
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = tb.hosts().iter().map(|h| h.name.clone()).collect();
    std::thread::scope(|s| {
        for h in &hosts {
            let tb = &tb;
            s.spawn(move || {
                let out = tb
                    .ssh_command(
                        h,
                        &format!(
                            "apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                             python3-swh.storage={V10} >/dev/null 2>&1 && dpkg-query -W -f='${{Version}}' python3-swh.storage"
                        ),
                    )
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert_eq!(text(&out.stdout).trim(), V10, "installing 1.0 on {h}");
            });
        }
    });
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!(
            r#"[site]
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
"#,
            cfg = tb.ssh_config_path().display()
        ),
    )
    .unwrap();
    let swh_deploy = |args: &[&str]| -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_swh-deploy"))
            .args(args)
            .env("SWH_DEPLOY_SITE", &site)
            .env("SWH_DEPLOY_JOURNAL", dir.path().join("journal.sqlite"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ swh-deploy {}\n-> {:?}\n{}{}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    };
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
    for h in &hosts {
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
