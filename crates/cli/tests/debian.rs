//! `swh-deploy debian changelog` and `swh-deploy debian tag` through the
//! built binary, on a real-looking packaging repository (system git, a bare
//! `origin`), checked with the real Debian tools: `dpkg-parsechangelog`,
//! `dpkg --compare-versions`, `git tag -v` (ssh signing key made for the
//! test) and git-buildpackage's own tag (`gbp buildpackage --git-tag-only`).
//! No user or system git configuration is read (`GIT_CONFIG_GLOBAL` points
//! at the fixture's empty file).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use swh_deploy_debian::testing::PackagingFixture;
use swh_deploy_journal::{Journal, RunStatus};
use tempfile::TempDir;

struct Case {
    _tmp: TempDir,
    f: PackagingFixture,
    journal: std::path::PathBuf,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let f = PackagingFixture::create(tmp.path());
        let journal = tmp.path().join("journal.sqlite");
        Case {
            _tmp: tmp,
            f,
            journal,
        }
    }

    /// `swh-deploy debian --repo WORK ARGS` with the fixture's environment,
    /// a private journal and `envs`.
    fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut c = self.f.command(common::bin());
        c.arg("debian")
            .arg("--repo")
            .arg(&self.f.work)
            .args(args)
            .env("SWH_DEPLOY_JOURNAL", &self.journal)
            .envs(envs.iter().copied());
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let out = self.run(args, envs);
        assert!(
            out.status.success(),
            "{args:?}: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must be refused (exit 1), leaving the work tree,
    /// its index and refs and the remote byte-identical; returns stderr.
    fn refused(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let before = self.f.snapshot();
        let out = self.run(args, envs);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should be refused: stdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        let after = self.f.snapshot();
        let changed: Vec<&String> = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| &a.0)
            .collect();
        assert!(
            before == after,
            "{args:?} was refused but changed {changed:?} (files {} -> {})",
            before.len(),
            after.len()
        );
        stderr
    }

    fn changelog(&self) -> std::path::PathBuf {
        self.f.work.join("debian/changelog")
    }
}

const PACKAGER: [(&str, &str); 2] = [
    ("DEBFULLNAME", "Jane Packager"),
    ("DEBEMAIL", "jane.packager@example.org"),
];

fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `dpkg-parsechangelog -l FILE [--offset N --count 1] -S FIELD`.
fn parsechangelog(file: &Path, offset: usize, field: &str) -> String {
    let file = file.to_str().unwrap();
    let off = offset.to_string();
    let mut args = vec!["-l", file];
    if offset > 0 {
        args.extend(["--offset", &off, "--count", "1"]);
    }
    args.extend(["-S", field]);
    let out = tool("dpkg-parsechangelog", &args);
    assert!(
        out.status.success(),
        "dpkg-parsechangelog {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "dpkg-parsechangelog warns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn dpkg_gt(a: &str, b: &str) -> bool {
    tool("dpkg", &["--compare-versions", a, "gt", b])
        .status
        .success()
}

#[test]
fn changelog_dry_run_then_commit_is_what_dpkg_reads() {
    let c = Case::new();
    let msg = "Add missing dependency on python3-swh.core";
    // --dry-run: a diff that applies, nothing changed.
    let before = c.f.snapshot();
    let out = c.ok(&["changelog", "-m", msg, "--dry-run"], &PACKAGER);
    assert_eq!(before, c.f.snapshot(), "--dry-run changed the repository");
    assert!(out.contains("+swh-loader-git (1.1.0-1~swh2) unstable-swh; urgency=medium\n"));
    assert!(out.contains(&format!("+  * {msg}\n")));
    assert!(out.contains("+ -- Jane Packager <jane.packager@example.org>  "));
    let diff = out.split("dry run:").next().unwrap();
    let patch = c.f.work.join("../entry.diff");
    std::fs::write(&patch, diff).unwrap();
    c.f.git(&["apply", "--check", patch.to_str().unwrap()]);

    // The packaging fix: debian/control staged, then the entry, committed.
    let control = c.f.work.join("debian/control");
    let fixed = std::fs::read_to_string(&control)
        .unwrap()
        .replace("${python3:Depends}", "${python3:Depends}, python3-swh.core");
    std::fs::write(&control, fixed).unwrap();
    c.f.git(&["add", "debian/control"]);
    let mut envs = PACKAGER.to_vec();
    // A POSIX TZ rule (no tzdata needed): UTC-05:30, no daylight saving.
    envs.push(("TZ", "SWH+5:30"));
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let out = c.ok(&["changelog", "--message", msg, "--commit"], &envs);
    assert!(out.contains("1.1.0-1~swh1 -> 1.1.0-1~swh2"), "{out}");

    let cl = c.changelog();
    assert_eq!(parsechangelog(&cl, 0, "Source"), "swh-loader-git");
    let version = parsechangelog(&cl, 0, "Version");
    assert_eq!(version, "1.1.0-1~swh2");
    assert_eq!(parsechangelog(&cl, 0, "Distribution"), "unstable-swh");
    assert_eq!(parsechangelog(&cl, 0, "Urgency"), "medium");
    assert_eq!(
        parsechangelog(&cl, 0, "Maintainer"),
        "Jane Packager <jane.packager@example.org>"
    );
    assert!(parsechangelog(&cl, 0, "Changes").contains(&format!("* {msg}")));
    // Local time of the TZ given.
    let date = parsechangelog(&cl, 0, "Date");
    assert!(date.ends_with(" -0530"), "{date}");
    // Byte for byte: header, blank, item, blank, trailer (two spaces before
    // the date), blank, then the old file.
    let text = std::fs::read_to_string(&cl).unwrap();
    let entry = format!(
        "swh-loader-git (1.1.0-1~swh2) unstable-swh; urgency=medium\n\n  * {msg}\n\n -- Jane Packager <jane.packager@example.org>  {date}\n\n"
    );
    assert_eq!(
        text,
        format!("{entry}{}", swh_deploy_debian::testing::CHANGELOG)
    );
    let ts: i64 = parsechangelog(&cl, 0, "Timestamp").parse().unwrap();
    assert!((start - 2..=start + 120).contains(&ts), "{ts} vs {start}");
    // The older entries are untouched and dpkg agrees with the bump.
    let previous = parsechangelog(&cl, 1, "Version");
    assert_eq!(previous, "1.1.0-1~swh1");
    assert_eq!(parsechangelog(&cl, 2, "Version"), "1.0.0-1~swh1");
    assert!(dpkg_gt(&version, &previous));

    // One commit with both files, swh's title, a clean tree.
    assert_eq!(
        c.f.git(&["log", "-1", "--format=%s"]),
        "Updated debian changelog for version 1.1.0-1~swh2"
    );
    let files = c.f.git(&["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(files, "debian/changelog\ndebian/control");
    assert_eq!(c.f.git(&["status", "--porcelain"]), "");
}

#[test]
fn maintainer_from_git_config_explicit_version_and_backports() {
    let c = Case::new();
    // No DEB*/NAME/EMAIL: git config user.name/user.email.
    c.ok(
        &[
            "changelog",
            "-m",
            "Rebuild",
            "--version",
            "1:1.2.0-1~swh1",
            "--commit",
        ],
        &[],
    );
    let cl = c.changelog();
    assert_eq!(parsechangelog(&cl, 0, "Version"), "1:1.2.0-1~swh1");
    assert_eq!(
        parsechangelog(&cl, 0, "Maintainer"),
        "Jane Doe <jane@example.org>"
    );
    assert!(dpkg_gt("1:1.2.0-1~swh1", "1.1.0-1~swh1"));

    // A backport branch: ~swhN~bpo12+1 -> ~swh(N+1)~bpo12+1 on bookworm-swh.
    c.f.git(&["checkout", "-q", "-b", "debian/bookworm-swh"]);
    c.ok(
        &[
            "changelog",
            "-m",
            "Rebuild for bookworm-swh",
            "--version",
            "1:1.2.0-1~swh1~bpo12+1",
            "--distribution",
            "bookworm-swh",
            "--commit",
        ],
        &PACKAGER,
    );
    let accented = [
        ("DEBFULLNAME", "Stéphane Müller"),
        ("DEBEMAIL", "sm@example.org"),
    ];
    c.ok(
        &["changelog", "-m", "Fix dependency", "--bump", "--commit"],
        &accented,
    );
    assert_eq!(
        parsechangelog(&cl, 0, "Maintainer"),
        "Stéphane Müller <sm@example.org>"
    );
    let v = parsechangelog(&cl, 0, "Version");
    assert_eq!(v, "1:1.2.0-1~swh2~bpo12+1");
    assert_eq!(parsechangelog(&cl, 0, "Distribution"), "bookworm-swh");
    assert!(dpkg_gt(&v, "1:1.2.0-1~swh1~bpo12+1"));
    let out = c.ok(&["tag", "--no-sign"], &[]);
    assert!(
        out.contains("pushed debian/bookworm-swh and debian/1%1.2.0-1_swh2_bpo12+1"),
        "{out}"
    );
    let remote_tags = c.f.git_in(&c.f.remote, &["tag", "-l", "debian/*"]);
    assert!(remote_tags
        .lines()
        .any(|t| t == "debian/1%1.2.0-1_swh2_bpo12+1"));
}

#[test]
fn refusals_leave_the_repository_byte_identical() {
    let c = Case::new();
    // No maintainer anywhere.
    c.f.git(&["config", "--unset", "user.name"]);
    let e = c.refused(&["changelog", "-m", "x"], &[("DEBEMAIL", "a@example.org")]);
    assert!(e.contains("no maintainer name"), "{e}");
    c.f.git(&["config", "user.name", "Jane Doe"]);
    // Not greater, equal, or wrong distribution for the version.
    for (v, why) in [
        (
            "1.0.0-1~swh5",
            "not greater than the current version 1.1.0-1~swh1",
        ),
        ("1.1.0-1~swh1", "not greater"),
        (
            "1.1.0-1~swh2~bpo12+1",
            "belongs to distribution bookworm-swh",
        ),
    ] {
        let e = c.refused(&["changelog", "-m", "x", "--version", v], &PACKAGER);
        assert!(e.contains(why), "{v}: {e}");
    }
    // --commit on a branch that is not the packaging branch.
    c.f.git(&["checkout", "-q", "-b", "wip"]);
    let e = c.refused(&["changelog", "-m", "x", "--commit"], &PACKAGER);
    assert!(
        e.contains("HEAD is on branch wip, not on the packaging branch debian/unstable-swh"),
        "{e}"
    );
    let e = c.refused(&["tag"], &[]);
    assert!(e.contains("not on the packaging branch"), "{e}");
    let e = c.refused(
        &["changelog", "-m", "x", "--commit", "--dry-run"],
        &PACKAGER,
    );
    assert!(e.contains("not on the packaging branch"), "{e}");
    c.f.git(&["checkout", "-q", "debian/unstable-swh"]);

    // A commit that fails (a pre-commit hook says no): the changelog is put
    // back as it was.
    let hook = c.f.work.join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\necho no commits today >&2\nexit 1\n").unwrap();
    let mut perm = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&hook, perm).unwrap();
    let e = c.refused(&["changelog", "-m", "x", "--commit"], &PACKAGER);
    assert!(e.contains("no commits today"), "{e}");
    std::fs::remove_file(&hook).unwrap();

    // Dirty tree: a changed file, an untracked file, an uncommitted entry.
    std::fs::write(c.f.work.join("debian/control"), "Source: x\n").unwrap();
    let e = c.refused(&["tag"], &[]);
    assert!(
        e.contains("not clean") && e.contains("debian/control"),
        "{e}"
    );
    c.f.git(&["checkout", "--", "debian/control"]);
    std::fs::write(c.f.work.join("stray"), "x").unwrap();
    let e = c.refused(&["tag"], &[]);
    assert!(e.contains("?? stray"), "{e}");
    std::fs::remove_file(c.f.work.join("stray")).unwrap();
    c.ok(&["changelog", "-m", "Fix"], &PACKAGER);
    let e = c.refused(&["tag"], &[]);
    assert!(
        e.contains("not clean") && e.contains("debian/changelog"),
        "{e}"
    );
    let e = c.refused(&["changelog", "-m", "Again", "--commit"], &PACKAGER);
    assert!(
        e.contains("debian/changelog has uncommitted changes"),
        "{e}"
    );
    c.f.git(&["commit", "-q", "-am", "Update changelog"]);

    // The tag exists already, elsewhere: locally, then only on the remote.
    c.f.git(&["tag", "-a", "-m", "other", "debian/1.1.0-1_swh2", "HEAD~1"]);
    let e = c.refused(&["tag"], &[]);
    assert!(
        e.contains("tag debian/1.1.0-1_swh2 already exists and points at"),
        "{e}"
    );
    c.f.git(&["push", "-q", "origin", "debian/1.1.0-1_swh2"]);
    c.f.git(&["tag", "-d", "debian/1.1.0-1_swh2"]);
    let e = c.refused(&["tag"], &[]);
    assert!(e.contains("already exists on remote origin"), "{e}");

    // Someone else pushed to the packaging branch meanwhile.
    c.f.git(&["push", "-q", "origin", ":refs/tags/debian/1.1.0-1_swh2"]);
    let other = c.f.work.join("../other");
    c.f.git_in(
        c.f.work.parent().unwrap(),
        &[
            "clone",
            "-q",
            "-b",
            "debian/unstable-swh",
            c.f.remote.to_str().unwrap(),
            "other",
        ],
    );
    std::fs::write(other.join("README"), "x\n").unwrap();
    c.f.git_in(&other, &["add", "README"]);
    c.f.git_in(
        &other,
        &[
            "-c",
            "user.name=O",
            "-c",
            "user.email=o@example.org",
            "commit",
            "-q",
            "-m",
            "other",
        ],
    );
    c.f.git_in(&other, &["push", "-q", "origin", "debian/unstable-swh"]);
    let e = c.refused(&["tag"], &[]);
    assert!(
        e.contains("debian/unstable-swh on remote origin is at")
            && e.contains("git pull --rebase origin debian/unstable-swh"),
        "{e}"
    );

    // A malformed changelog, committed: file:line:column, for both commands.
    let bad = swh_deploy_debian::testing::CHANGELOG.replacen(
        "swh-loader-git (1.1.0-1~swh1)",
        "swh-loader-git (v1.1.0-1~swh1)",
        1,
    );
    std::fs::write(c.changelog(), bad).unwrap();
    c.f.git(&["commit", "-q", "-am", "Broken changelog"]);
    let path = c.changelog();
    let where_ = format!("{}:1:17: invalid Debian version", path.display());
    let e = c.refused(&["changelog", "-m", "x"], &PACKAGER);
    assert!(e.contains(&where_), "{e}");
    let e = c.refused(&["tag"], &[]);
    assert!(e.contains(&where_), "{e}");
    let out = tool("dpkg-parsechangelog", &["-l", path.to_str().unwrap()]);
    assert!(
        !out.status.success() || !out.stderr.is_empty(),
        "dpkg-parsechangelog accepts what we refuse"
    );
}

/// An ssh signing key for git (`gpg.format=ssh`) and the allowed-signers
/// file `git tag -v` checks against, in the work tree's local config.
fn ssh_signing(c: &Case) {
    let key = c.f.home.join("signing_key");
    let out = tool(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "jane@example.org",
            "-f",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = c.f.home.join("allowed_signers");
    std::fs::write(&allowed, format!("jane@example.org {public}")).unwrap();
    c.f.git(&["config", "gpg.format", "ssh"]);
    c.f.git(&["config", "user.signingkey", key.to_str().unwrap()]);
    c.f.git(&[
        "config",
        "gpg.ssh.allowedSignersFile",
        allowed.to_str().unwrap(),
    ]);
}

#[test]
fn tag_signed_pushed_idempotent_and_journaled() {
    let c = Case::new();
    ssh_signing(&c);
    c.ok(
        &["changelog", "-m", "Add missing dependency", "--commit"],
        &PACKAGER,
    );
    let head = c.f.git(&["rev-parse", "HEAD"]);

    // Dry run: nothing created.
    let before = c.f.snapshot();
    let out = c.ok(&["tag", "--sign", "--dry-run"], &[]);
    assert!(
        out.contains(
            "tag debian/1.1.0-1_swh2 \"swh-loader-git Debian release 1.1.0-1~swh2\": create"
        ),
        "{out}"
    );
    assert_eq!(before, c.f.snapshot());

    // A push the remote rejects: the tag is made, the run fails.
    let hook = c.f.remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho rejected by the test >&2\nexit 1\n").unwrap();
    let mut perm = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&hook, perm).unwrap();
    let out = c.run(&["tag", "--sign"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("rejected by the test") && err.contains("run `swh-deploy debian tag` again"),
        "{err}"
    );
    assert!(c.f.git(&["tag", "-l", "debian/1.1.0-1_swh2"]) == "debian/1.1.0-1_swh2");
    assert_eq!(
        c.f.git_in(&c.f.remote, &["tag", "-l", "debian/1.1.0-1_swh2"]),
        ""
    );

    // Re-run: pushes the existing tag (does not make another).
    std::fs::remove_file(&hook).unwrap();
    let tag_obj = c.f.git(&["rev-parse", "refs/tags/debian/1.1.0-1_swh2"]);
    let out = c.ok(&["tag", "--sign"], &[]);
    assert!(
        out.contains("push (it exists here, not on the remote)"),
        "{out}"
    );
    assert_eq!(
        c.f.git(&["rev-parse", "refs/tags/debian/1.1.0-1_swh2"]),
        tag_obj
    );

    // On the remote: the same annotated, signed tag on the commit, and the
    // packaging branch.
    let r = &c.f.remote;
    assert_eq!(
        c.f.git_in(r, &["rev-parse", "refs/tags/debian/1.1.0-1_swh2"]),
        tag_obj
    );
    assert_eq!(
        c.f.git_in(r, &["cat-file", "-t", "refs/tags/debian/1.1.0-1_swh2"]),
        "tag"
    );
    assert_eq!(
        c.f.git_in(r, &["rev-parse", "debian/1.1.0-1_swh2^{commit}"]),
        head
    );
    assert_eq!(
        c.f.git_in(r, &["rev-parse", "refs/heads/debian/unstable-swh"]),
        head
    );
    assert_eq!(
        c.f.git_in(
            r,
            &[
                "for-each-ref",
                "--format=%(contents:subject)",
                "refs/tags/debian/1.1.0-1_swh2"
            ]
        ),
        "swh-loader-git Debian release 1.1.0-1~swh2"
    );
    let verify =
        c.f.command("git")
            .args([
                "-C",
                c.f.work.to_str().unwrap(),
                "tag",
                "-v",
                "debian/1.1.0-1_swh2",
            ])
            .output()
            .unwrap();
    let v = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "git tag -v: {v}");
    assert!(
        v.contains("Good \"git\" signature for jane@example.org"),
        "{v}"
    );

    // Third run: nothing to do.
    let before = c.f.snapshot();
    let out = c.ok(&["tag"], &[]);
    assert!(out.contains("nothing: tagged and pushed already"), "{out}");
    assert_eq!(before, c.f.snapshot());

    // Journal: the failed run, then the push-only run.
    let journal = Journal::open(&c.journal).unwrap();
    let mut runs = journal.runs(10).unwrap();
    runs.reverse();
    let modes: Vec<(&str, RunStatus)> = runs.iter().map(|r| (r.mode.as_str(), r.status)).collect();
    assert_eq!(
        modes,
        vec![
            ("debian tag", RunStatus::Failed),
            ("debian tag", RunStatus::Succeeded)
        ]
    );
    let steps = |i: usize| -> Vec<String> {
        let steps = journal.run_details(runs[i].id).unwrap().steps;
        assert!(steps.iter().all(|s| s.kind == "git"), "{steps:?}");
        steps.into_iter().map(|s| s.name).collect()
    };
    assert_eq!(
        steps(0),
        vec![
            format!("tag debian/1.1.0-1_swh2 {head}"),
            "push debian/unstable-swh debian/1.1.0-1_swh2 --follow-tags".to_string()
        ]
    );
    assert_eq!(
        steps(1),
        vec!["push debian/unstable-swh debian/1.1.0-1_swh2 --follow-tags"]
    );
    assert_eq!(runs[1].parameters["tag"], "debian/1.1.0-1_swh2");
}

/// `git tag -v TAG` succeeds.
fn verify_tag(c: &Case, tag: &str) -> bool {
    c.f.command("git")
        .args(["-C", c.f.work.to_str().unwrap(), "tag", "-v", tag])
        .output()
        .unwrap()
        .status
        .success()
}

/// The tag name, type and message are those of git-buildpackage's own
/// `gbp buildpackage --git-tag-only --git-sign-tag` (the runbook's command)
/// on the same commit, for a plain swh version and one with an epoch.
#[test]
fn tag_is_the_one_gbp_makes() {
    let c = Case::new();
    ssh_signing(&c);
    for (args, tag) in [
        (
            vec!["changelog", "-m", "Fix", "--commit"],
            "debian/1.1.0-1_swh2",
        ),
        (
            vec![
                "changelog",
                "-m",
                "Epoch",
                "--version",
                "2:1.1.0-1~swh3",
                "--commit",
            ],
            "debian/2%1.1.0-1_swh3",
        ),
    ] {
        c.ok(&args, &PACKAGER);
        let gbp =
            c.f.command("gbp")
                .current_dir(&c.f.work)
                .args([
                    "buildpackage",
                    "--git-tag-only",
                    "--git-sign-tag",
                    "--git-ignore-new",
                ])
                .output()
                .expect("gbp (git-buildpackage, in .ci/apt-packages.txt) runs");
        assert!(
            gbp.status.success(),
            "gbp: {}{}",
            String::from_utf8_lossy(&gbp.stdout),
            String::from_utf8_lossy(&gbp.stderr)
        );
        let gbp_tags = c.f.git(&["tag", "-l", "--points-at", "HEAD"]);
        assert_eq!(gbp_tags, tag);
        // Same type, message and tagged commit; both signed (the signatures
        // differ: they carry the time) and verified by git.
        let fmt = "--format=%(objecttype) %(*objectname) %(contents:subject)|%(contents:body)";
        let gbp_tag = c.f.git(&["for-each-ref", fmt, &format!("refs/tags/{tag}")]);
        assert!(verify_tag(&c, tag), "gbp's tag {tag} does not verify");
        c.f.git(&["tag", "-d", tag]);

        let out = c.ok(&["tag", "--sign", "--no-push"], &[]);
        assert!(out.contains(&format!("created signed tag {tag}")), "{out}");
        assert_eq!(c.f.git(&["tag", "-l", "--points-at", "HEAD"]), tag);
        assert_eq!(
            c.f.git(&["for-each-ref", fmt, &format!("refs/tags/{tag}")]),
            gbp_tag
        );
        assert!(verify_tag(&c, tag), "our tag {tag} does not verify");
        // The library's inverse gives the changelog's version back.
        assert_eq!(
            swh_deploy_debian::dep14_version(tag).unwrap().as_str(),
            parsechangelog(&c.changelog(), 0, "Version")
        );
    }
}

/// Without --sign/--no-sign the tag is signed as git's `tag.gpgSign` says;
/// `--no-sign` wins over it.
#[test]
fn tag_signing_follows_git_config_unless_told() {
    let c = Case::new();
    ssh_signing(&c);
    c.f.git(&["config", "tag.gpgSign", "true"]);
    let verify = |tag: &str| verify_tag(&c, tag);
    c.ok(&["changelog", "-m", "Fix", "--commit"], &PACKAGER);
    let out = c.ok(&["tag", "--no-push"], &[]);
    assert!(
        out.contains("created signed tag debian/1.1.0-1_swh2"),
        "{out}"
    );
    assert!(verify("debian/1.1.0-1_swh2"));
    c.ok(&["changelog", "-m", "Fix again", "--commit"], &PACKAGER);
    let out = c.ok(&["tag", "--no-sign", "--no-push"], &[]);
    assert!(
        out.contains("created unsigned tag debian/1.1.0-1_swh3"),
        "{out}"
    );
    assert!(!verify("debian/1.1.0-1_swh3"));
    // Again with --no-push: nothing to do, nothing journaled.
    let out = c.ok(&["tag", "--no-push"], &[]);
    assert!(out.contains("--no-push: nothing to do"), "{out}");
    let journal = Journal::open(&c.journal).unwrap();
    assert_eq!(journal.runs(10).unwrap().len(), 2);
    assert_eq!(
        c.f.git(&["cat-file", "-t", "refs/tags/debian/1.1.0-1_swh3"]),
        "tag"
    );
    // Not pushed: the remote has neither.
    assert_eq!(
        c.f.git_in(&c.f.remote, &["tag", "-l", "debian/1.1.0-1_swh*"]),
        "debian/1.1.0-1_swh1"
    );
}
