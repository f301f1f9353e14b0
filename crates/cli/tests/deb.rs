//! `scripts/build-deb`: the Debian package of swh-deploy, built with
//! dpkg-deb from this test's binary, installed with dpkg on a test-bed host
//! (a Debian 12 systemd-nspawn host), where `swh-deploy --version`, its man
//! pages and completions are checked; then removed with dpkg.
//!
//! Needs root (network namespaces, systemd-nspawn): skipped otherwise,
//! a failure under CI (`common::skip`).

mod common;

use common::{need_root, text};
use std::path::Path;
use std::process::{Command, Stdio};
use swh_deploy_testbed::{Options, Testbed};

#[test]
fn the_debian_package_installs_and_runs_on_a_test_bed_host() {
    if !need_root() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(root.join("scripts/build-deb"))
        .args(["--binary", common::bin(), "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "build-deb: {}", text(&out.stderr));
    let deb = text(&out.stdout).trim().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.ends_with(&format!("swh-deploy_{version}-1_amd64.deb"))
            || deb.ends_with(&format!("swh-deploy_{version}-1_arm64.deb")),
        "{deb}"
    );
    let info = Command::new("dpkg-deb")
        .args(["-f", &deb])
        .output()
        .unwrap();
    let fields = text(&info.stdout);
    assert!(fields.contains("Depends: libc6 (>= "), "{fields}");

    let tb = Testbed::up(&Options {
        hosts: 1,
        systemd: true,
        ..Options::default()
    })
    .expect("test bed up");
    let host = tb.hosts()[0].name.clone();
    // Copy it over ssh, install it with dpkg, run it.
    let copy = tb
        .ssh_command(&host, "cat > /tmp/swh-deploy.deb")
        .stdin(Stdio::from(std::fs::File::open(&deb).unwrap()))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", text(&copy.stderr));
    let run = |cmd: &str| {
        let out = tb
            .ssh_command(&host, cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!("$ {cmd}\n{}{}", text(&out.stdout), text(&out.stderr));
        out
    };
    let out = run("test ! -e /usr/bin/swh-deploy && dpkg -i /tmp/swh-deploy.deb");
    assert!(out.status.success(), "dpkg -i: {}", text(&out.stderr));
    let out = run("swh-deploy --version");
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("swh-deploy {version}\n"));
    let out = run("dpkg-query -W -f='${Status} ${Version}' swh-deploy");
    assert_eq!(
        text(&out.stdout),
        format!("install ok installed {version}-1")
    );
    let out = run("dpkg -L swh-deploy");
    let files = text(&out.stdout);
    for f in [
        "/usr/share/man/man1/swh-deploy.1.gz",
        "/usr/share/man/man1/swh-deploy-where.1.gz",
        "/usr/share/bash-completion/completions/swh-deploy",
        "/usr/share/zsh/vendor-completions/_swh-deploy",
        "/usr/share/fish/vendor_completions.d/swh-deploy.fish",
        "/usr/share/doc/swh-deploy/README.md",
        "/usr/share/doc/swh-deploy/docs/where.md",
        "/usr/share/doc/swh-deploy/copyright",
    ] {
        assert!(files.lines().any(|l| l == f), "{f} in {files}");
    }
    // The installed pieces work there: the man page is a roff page, the
    // bash completion parses and completes a subcommand.
    let out =
        run("zcat /usr/share/man/man1/swh-deploy-where.1.gz | grep -c '^.TH swh-deploy-where 1'");
    assert_eq!(text(&out.stdout).trim(), "1");
    let out = run(
        "bash -c 'source /usr/share/bash-completion/completions/swh-deploy; COMP_WORDS=(swh-deploy wher); COMP_CWORD=1; _swh__deploy swh-deploy wher swh-deploy; echo ${COMPREPLY[*]}'",
    );
    assert_eq!(text(&out.stdout), "where\n");
    // Removed cleanly.
    let out = run("dpkg -r swh-deploy && test ! -e /usr/bin/swh-deploy");
    assert!(out.status.success(), "dpkg -r: {}", text(&out.stderr));
}
