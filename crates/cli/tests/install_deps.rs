//! `scripts/install-deps`' first checks, which run before anything is
//! installed: a missing or too old Rust toolchain is refused with what to
//! do, and cargo-nextest is installed from crates.io (at the pinned release
//! that builds with the workspace's rust-version) only when `cargo nextest`
//! does not answer. The tools the script needs are the machine's; `rustc`
//! and `cargo` are small scripts standing in for a toolchain this machine
//! does not have (an old one, or one without cargo-nextest), so that no
//! test here installs anything or takes minutes.

mod common;

use common::text;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A directory for PATH with the machine's tools the script's first lines
/// use, and nothing else (no cargo, no rustc).
fn tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["sed", "sort", "head", "awk", "dirname", "cat", "sh", "bash"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found in /usr/bin or /bin"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    bin
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn install_deps(path: &Path) -> Output {
    Command::new("bash")
        .arg(repo().join("scripts/install-deps"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_missing_toolchain_is_refused_with_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let bin = tools(dir.path());
    let out = install_deps(&bin);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "install-deps: cargo is missing: install a Rust toolchain 1.85 or newer (e.g. https://rustup.rs) first\n"
    );
}

#[test]
fn a_toolchain_older_than_the_rust_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bin = tools(dir.path());
    script(&bin.join("cargo"), "exit 0\n");
    script(
        &bin.join("rustc"),
        "echo 'rustc 1.84.1 (e71f9a9a9 2025-01-27)'\n",
    );
    let out = install_deps(&bin);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "install-deps: rustc 1.84.1 is older than the workspace's rust-version 1.85: update the toolchain (rustup update)\n"
    );
}

#[test]
fn cargo_nextest_is_installed_from_crates_io_only_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let bin = tools(dir.path());
    let log = dir.path().join("cargo.log");
    script(
        &bin.join("rustc"),
        "echo 'rustc 1.85.0 (4d91de4e4 2025-02-17)'\n",
    );
    // A toolchain without cargo-nextest: `cargo nextest` fails, and
    // `cargo install` is recorded then fails (so the script stops there).
    script(
        &bin.join("cargo"),
        &format!(
            "echo \"$*\" >>'{}'\ncase \"$1\" in nextest) exit 101;; install) exit 7;; esac\nexit 0\n",
            log.display()
        ),
    );
    let out = install_deps(&bin);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "nextest --version\ninstall --locked --quiet cargo-nextest@0.9.100\n"
    );
    assert!(
        text(&out.stderr).contains("installing cargo-nextest 0.9.100 from crates.io"),
        "{}",
        text(&out.stderr)
    );
}
