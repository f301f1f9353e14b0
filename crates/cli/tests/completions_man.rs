//! `swh-deploy completions SHELL` and `swh-deploy man [DIR]` through the
//! real binary: each script is parsed by its own shell and completes a
//! subcommand's option there (bash, zsh -n, fish); each man page is
//! rendered by man-db / groff without a warning.

mod common;

use common::text;
use std::path::Path;
use std::process::{Command, Output};

fn swh_deploy(args: &[&str]) -> Output {
    common::swh_deploy(args)
        .env_remove("SWH_DEPLOY_SITE")
        .output()
        .unwrap()
}

/// The path of `tool`; panics with what to install when it is missing.
fn need(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is missing: install the Debian package {package} (scripts/install-deps does)"
    );
}

fn script(shell: &str, dir: &Path) -> std::path::PathBuf {
    let out = swh_deploy(&["completions", shell]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p = dir.join(format!("swh-deploy.{shell}"));
    std::fs::write(&p, &out.stdout).unwrap();
    p
}

#[test]
fn bash_completion_completes_subcommands_and_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let p = script("bash", dir.path());
    let check = Command::new("bash").arg("-n").arg(&p).output().unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    // What bash would answer to TAB, through the function it registers.
    let complete = |words: &str, cword: usize, cur: &str, prev: &str| -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _swh__deploy swh-deploy '{cur}' '{prev}'; echo \"${{COMPREPLY[*]}}\"",
                p.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("swh-deploy wh", 1, "wh", "swh-deploy"), "where");
    assert_eq!(
        complete("swh-deploy where --st", 2, "--st", "where"),
        "--static"
    );
    let bump = complete("swh-deploy chart bump --dry", 3, "--dry", "bump");
    assert_eq!(bump, "--dry-run");
    assert_eq!(
        complete("swh-deploy completions ''", 2, "", "completions"),
        "-h --help bash zsh fish"
    );
}

#[test]
fn zsh_and_fish_scripts_parse_and_fish_completes_an_option() {
    need("zsh", "zsh");
    need("fish", "fish");
    let dir = tempfile::tempdir().unwrap();
    let z = script("zsh", dir.path());
    assert!(text(&std::fs::read(&z).unwrap()).starts_with("#compdef swh-deploy"));
    let out = Command::new("zsh").arg("-n").arg(&z).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let f = script("fish", dir.path());
    let out = Command::new("fish")
        .arg("--no-execute")
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg(format!(
            "source {}; complete -C 'swh-deploy where --st'",
            f.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "--static\tOnly the static path\n");
    // An unknown shell is a usage error.
    let out = swh_deploy(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_render_without_warnings() {
    need("man", "man-db");
    need("groff", "groff-base");
    let dir = tempfile::tempdir().unwrap();
    let mandir = dir.path().join("man1");
    let out = swh_deploy(&["man", mandir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&mandir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // One page per command and subcommand, nothing else (no temporary left).
    for want in [
        "swh-deploy.1",
        "swh-deploy-where.1",
        "swh-deploy-chart-bump.1",
        "swh-deploy-completions.1",
        "swh-deploy-man.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(names.iter().all(|n| n.ends_with(".1")), "{names:?}");
    assert_eq!(
        text(&out.stdout).lines().count(),
        names.len(),
        "{}",
        text(&out.stdout)
    );
    for n in &names {
        let page = mandir.join(n);
        let g = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(
            g.status.success() && g.stderr.is_empty(),
            "{n}: {}",
            text(&g.stderr)
        );
    }
    let m = Command::new("man")
        .arg("-l")
        .arg(mandir.join("swh-deploy-where.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(m.status.success(), "{}", text(&m.stderr));
    let page = text(&m.stdout);
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"] {
        assert!(
            page.contains(&format!("\n{section}\n")),
            "{section}: {page}"
        );
    }
    assert!(page.contains("--static"), "{page}");
    // Without DIR: swh-deploy(1) on stdout, listing the subcommands.
    let out = swh_deploy(&["man"]);
    assert!(out.status.success());
    let top = text(&out.stdout);
    assert!(top.starts_with(".ie"), "{}", &top[..top.len().min(200)]);
    assert!(top.contains(".TH swh-deploy 1"), "{top}");
    assert!(top.contains("swh\\-deploy\\-where(1)"), "{top}");
}
