//! `swh-deploy release tag` and `release wait` through the binary, on the
//! test bed's real components: the bare `swh-loader-git.git` module remote
//! (tags v1.0.0, v1.1.0, one unreleased commit), cloned and tagged with the
//! system git, tags signed with a throwaway ssh key (git's `gpg.format=ssh`)
//! and verified with `git tag -v`; the PyPI-style index and a Debian
//! repository (dpkg-scanpackages) served by busybox httpd. The user's git
//! configuration is kept out (`GIT_CONFIG_GLOBAL` is a file of the test,
//! `GIT_CONFIG_NOSYSTEM`).

mod common;

use common::{code, text};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use swh_deploy_journal::{Journal, RunStatus, StepStatus};
use swh_deploy_testbed::aptrepo;
use swh_deploy_testbed::components::{GitRemotes, PackageIndex, StaticHttp};

struct Env {
    root: PathBuf,
    remote: PathBuf,
    work: PathBuf,
}

impl Env {
    /// Remotes, a clone of the module, a throwaway ssh signing key and a git
    /// config of our own.
    fn new(tmp: &Path) -> Env {
        let root = tmp.to_path_buf();
        let remotes = GitRemotes::create(&root.join("remotes")).unwrap();
        let key = root.join("signing_key");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "release-test", "-f"])
                .arg(&key),
        );
        let public = fs::read_to_string(key.with_extension("pub")).unwrap();
        fs::write(
            root.join("allowed_signers"),
            format!("release@test.invalid namespaces=\"git\" {public}"),
        )
        .unwrap();
        fs::write(
            root.join("gitconfig"),
            format!(
                "[user]\n\tname = Release Test\n\temail = release@test.invalid\n\tsigningkey = {}\n\
                 [gpg]\n\tformat = ssh\n[gpg \"ssh\"]\n\tallowedSignersFile = {}\n",
                key.display(),
                root.join("allowed_signers").display()
            ),
        )
        .unwrap();
        let env = Env {
            remote: remotes.module.path.clone(),
            work: root.join("work"),
            root,
        };
        run_ok(&mut env.git_in(&env.root, &["clone", "-q", &remotes.module.url, "work"]));
        env
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.arg("-C").arg(dir).args(args);
        self.isolate(&mut c);
        c
    }

    fn isolate(&self, c: &mut Command) {
        c.env("GIT_CONFIG_GLOBAL", self.root.join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("SWH_DEPLOY_JOURNAL", self.root.join("journal.sqlite"))
            .env("SWH_DEPLOY_SITE", self.root.join("no-site.toml"))
            .env_remove("SWH_DEPLOY_INDEX_URL")
            .env_remove("SWH_DEPLOY_APT_URL")
            .env_remove("SWH_DEPLOY_APT_SUITE");
    }

    /// `git` in the clone; stdout trimmed; must succeed.
    fn git(&self, args: &[&str]) -> String {
        run_ok(&mut self.git_in(&self.work, args))
    }

    /// `git` in the bare remote; stdout trimmed; must succeed.
    fn remote_git(&self, args: &[&str]) -> String {
        run_ok(&mut self.git_in(&self.remote, args))
    }

    fn swh_deploy(&self, args: &[&str]) -> Output {
        let mut c = Command::new(common::bin());
        c.args(args);
        self.isolate(&mut c);
        c.output().unwrap()
    }

    /// `release tag ARGS --repo WORK`.
    fn tag(&self, args: &[&str]) -> Output {
        let mut all = vec!["release", "tag"];
        all.extend_from_slice(args);
        let work = self.work.to_str().unwrap().to_string();
        all.extend_from_slice(&["--repo", &work]);
        self.swh_deploy(&all)
    }

    /// Every ref of the clone and of the remote, with the clone's status:
    /// what a refusal must leave as it was.
    fn snapshot(&self) -> (String, String, String) {
        (
            self.git(&[
                "for-each-ref",
                "--format=%(objectname) %(refname)",
                "refs/heads",
                "refs/tags",
            ]),
            self.git(&["status", "--porcelain"]),
            self.remote_git(&["for-each-ref", "--format=%(objectname) %(refname)"]),
        )
    }

    fn journal_runs(&self) -> Vec<swh_deploy_journal::RunDetails> {
        let j = Journal::open(&self.root.join("journal.sqlite")).unwrap();
        let mut runs: Vec<_> = j
            .runs(100)
            .unwrap()
            .into_iter()
            .map(|r| j.run_details(r.id).unwrap())
            .collect();
        runs.sort_by_key(|d| d.run.id);
        runs
    }
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn tag_signed_pushed_verified_and_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path());
    let head = env.git(&["rev-parse", "HEAD"]);

    // Dry run: the exact commands, nothing done.
    let before = env.snapshot();
    let out = env.tag(&["v1.2.0", "--dry-run"]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    let work = env.work.display();
    assert!(
        stdout.contains("tag: v1.2.0\nmodule: swh.loader.git\n"),
        "{stdout}"
    );
    assert!(stdout.contains("newest release: v1.1.0\n"), "{stdout}");
    assert!(
        stdout.contains("signed: yes\n"),
        "signing key configured: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  git -C {work} tag -a -s -m 'Release v1.2.0' v1.2.0 {head}\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  git -C {work} push origin refs/tags/v1.2.0:refs/tags/v1.2.0\n"
        )),
        "{stdout}"
    );
    assert_eq!(env.snapshot(), before);
    assert!(env.journal_runs().is_empty(), "a dry run is not journaled");

    // For real: annotated, signed, on the remote, at HEAD.
    let out = env.tag(&["1.2.0"]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("pushed v1.2.0 to origin"), "{stdout}");
    assert!(
        stdout.contains("next: swh-deploy release wait swh.loader.git 1.2.0"),
        "{stdout}"
    );
    assert_eq!(env.remote_git(&["cat-file", "-t", "v1.2.0"]), "tag");
    assert_eq!(env.remote_git(&["rev-parse", "v1.2.0^{commit}"]), head);
    assert_eq!(
        env.remote_git(&["rev-parse", "refs/tags/v1.2.0"]),
        env.git(&["rev-parse", "refs/tags/v1.2.0"])
    );
    let verify = env
        .git_in(&env.remote, &["tag", "-v", "v1.2.0"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "signature must verify: {}",
        text(&verify.stderr)
    );
    assert!(
        text(&verify.stderr).contains("Good \"git\" signature"),
        "{}",
        text(&verify.stderr)
    );
    assert!(env
        .remote_git(&["cat-file", "tag", "v1.2.0"])
        .contains("Release v1.2.0"));

    let runs = env.journal_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run.mode, "release tag");
    assert_eq!(runs[0].run.status, RunStatus::Succeeded);
    assert_eq!(runs[0].run.parameters["commit"], head.as_str());
    let steps: Vec<(&str, StepStatus)> = runs[0]
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        steps,
        [
            ("tag", StepStatus::Succeeded),
            ("push", StepStatus::Succeeded)
        ]
    );
    assert!(runs[0].steps.iter().all(|s| s.kind == "release"));

    // Again: already released, refused, nothing changed.
    let before = env.snapshot();
    let out = env.tag(&["1.2.0"]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("tag v1.2.0 already exists on origin"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn no_sign_overrides_the_configured_key_and_pre_releases_are_ordered() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path());
    let out = env.tag(&["1.2.0rc1", "--no-sign", "-m", "swh.loader.git v1.2.0rc1"]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("signed: no"));
    assert_eq!(env.remote_git(&["cat-file", "-t", "v1.2.0rc1"]), "tag");
    let content = env.remote_git(&["cat-file", "tag", "v1.2.0rc1"]);
    assert!(content.contains("swh.loader.git v1.2.0rc1"), "{content}");
    assert!(!content.contains("SIGNATURE"), "{content}");
    let verify = env
        .git_in(&env.remote, &["tag", "-v", "v1.2.0rc1"])
        .output()
        .unwrap();
    assert!(!verify.status.success(), "unsigned tag must not verify");
    // PEP 440 order: 1.2.0b1 < 1.2.0rc1, so b1 now comes too late.
    let before = env.snapshot();
    let out = env.tag(&["1.2.0b1", "--no-sign"]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("v1.2.0b1 is not greater than the newest release tag v1.2.0rc1"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn refusals_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path());
    let expect_refusal = |args: &[&str], message: &str| {
        let before = env.snapshot();
        let out = env.tag(args);
        assert_eq!(
            code(&out),
            1,
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(message),
            "{args:?}: expected {message:?} in:\n{}",
            text(&out.stderr)
        );
        assert_eq!(env.snapshot(), before, "{args:?} changed something");
    };
    expect_refusal(&["1.2.0-rc1"], "invalid release version \"1.2.0-rc1\"");
    expect_refusal(&["v1"], "invalid release version \"v1\"");
    expect_refusal(&["1.0.5"], "v1.0.5 is not greater than the newest release tag v1.1.0: release a greater version (e.g. v1.1.1)");
    expect_refusal(
        &["1.1"],
        "v1.1 is not greater than the newest release tag v1.1.0",
    );
    expect_refusal(&["1.1.0"], "tag v1.1.0 already exists on origin");
    expect_refusal(
        &["1.2.0", "--remote", "upstream"],
        "has no remote \"upstream\"",
    );

    // Uncommitted change to a tracked file.
    fs::write(env.work.join("requirements.txt"), "changed\n").unwrap();
    expect_refusal(&["1.2.0"], "has uncommitted changes (M requirements.txt)");
    env.git(&["checkout", "--", "requirements.txt"]);

    // A commit that is not on the remote.
    env.git(&["commit", "-q", "--allow-empty", "-m", "local only"]);
    expect_refusal(&["1.2.0"], "of branch master is not on origin");
    env.git(&["reset", "-q", "--hard", "origin/master"]);

    // Detached HEAD.
    env.git(&["checkout", "-q", "--detach"]);
    expect_refusal(&["1.2.0"], "HEAD is detached");
    env.git(&["checkout", "-q", "master"]);

    // A local tag of that name elsewhere.
    env.git(&["tag", "v1.2.0", "HEAD~1"]);
    expect_refusal(
        &["1.2.0"],
        "tag v1.2.0 already exists locally as a lightweight tag",
    );
    env.git(&["tag", "-d", "v1.2.0"]);

    // Not a repository.
    let out = env.swh_deploy(&[
        "release",
        "tag",
        "1.2.0",
        "--repo",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("is not a git work tree"),
        "{}",
        text(&out.stderr)
    );

    assert!(env.journal_runs().is_empty(), "refusals act on nothing");
    // And after all that, the release works.
    let out = env.tag(&["1.2.0", "--no-sign"]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn failed_push_says_how_to_retry_and_a_rerun_only_pushes() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path());
    // The remote refuses every push (a real pre-receive hook).
    let hook = env.remote.join("hooks/pre-receive");
    fs::write(
        &hook,
        "#!/bin/sh\necho 'pushes are closed for maintenance' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let out = env.tag(&["1.2.0"]);
    assert_eq!(code(&out), 1, "{}{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("tag v1.2.0 was created locally on"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pushes are closed for maintenance"),
        "{stderr}"
    );
    assert!(
        stderr.contains("re-run the same command: it will only push the tag"),
        "{stderr}"
    );
    assert_eq!(env.git(&["cat-file", "-t", "v1.2.0"]), "tag");
    assert_eq!(env.remote_git(&["tag", "-l", "v1.2.0"]), "");
    let local_tag = env.git(&["rev-parse", "refs/tags/v1.2.0"]);

    // Fixed: the same command pushes the existing tag, no new tag object.
    fs::remove_file(&hook).unwrap();
    let out = env.tag(&["1.2.0"]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("v1.2.0 already exists locally at HEAD but not on origin: only pushing it"),
        "{stdout}"
    );
    assert!(!stdout.contains(" tag -a "), "{stdout}");
    assert_eq!(
        env.remote_git(&["rev-parse", "refs/tags/v1.2.0"]),
        local_tag
    );

    let runs = env.journal_runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].run.status, RunStatus::Failed);
    let steps: Vec<(&str, StepStatus)> = runs[0]
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        steps,
        [("tag", StepStatus::Succeeded), ("push", StepStatus::Failed)]
    );
    assert_eq!(runs[1].run.status, RunStatus::Succeeded);
    let steps: Vec<&str> = runs[1].steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["push"]);

    // --no-push creates the tag only.
    env.git(&["commit", "-q", "--allow-empty", "-m", "next"]);
    env.git(&["push", "-q", "origin", "master"]);
    let out = env.tag(&["1.3.0", "--no-push", "--no-sign"]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(env.git(&["cat-file", "-t", "v1.3.0"]), "tag");
    assert_eq!(env.remote_git(&["tag", "-l", "v1.3.0"]), "");
}

#[test]
fn wait_for_the_index_with_progress_and_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env {
        root: tmp.path().to_path_buf(),
        remote: PathBuf::new(),
        work: PathBuf::new(),
    };
    let index = PackageIndex::start(&tmp.path().join("index")).unwrap();

    // Published during the wait; the index comes from SWH_DEPLOY_INDEX_URL.
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(2000));
            index.publish("swh.loader.git", "1.2.0", &[]).unwrap();
        });
        let mut c = Command::new(common::bin());
        c.args([
            "release",
            "wait",
            "swh-loader-git",
            "v1.2.0",
            "--interval",
            "100ms",
            "--timeout",
            "30s",
        ]);
        env.isolate(&mut c);
        c.env("SWH_DEPLOY_INDEX_URL", index.url());
        c.output().unwrap()
    });
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("swh.loader.git 1.2.0 on pypi") && stderr.contains("not yet published"),
        "{stderr}"
    );
    assert!(
        stderr.contains("published (swh_loader_git-1.2.0-py3-none-any.whl)"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).starts_with("published: swh.loader.git 1.2.0 on pypi"),
        "{}",
        text(&out.stdout)
    );

    // Never published: exit 6 after the timeout, saying what is missing.
    let t0 = Instant::now();
    let out = env.swh_deploy(&[
        "release",
        "wait",
        "swh.loader.git",
        "1.3.0",
        "--pypi",
        &index.url(),
        "--interval",
        "200ms",
        "--timeout",
        "1s",
    ]);
    assert_eq!(code(&out), 6, "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(
        text(&out.stderr)
            .contains("timeout after 1s: swh.loader.git 1.3.0 still not published on pypi"),
        "{}",
        text(&out.stderr)
    );
    let runs = env.journal_runs();
    let modes: Vec<(&str, RunStatus)> = runs
        .iter()
        .map(|r| (r.run.mode.as_str(), r.run.status))
        .collect();
    assert_eq!(
        modes,
        [
            ("release wait", RunStatus::Succeeded),
            ("release wait", RunStatus::Failed)
        ]
    );

    // Bad input: exit 1 before any look.
    for (args, message) in [
        (
            vec!["1.2.x", "--pypi", "http://127.0.0.1:1/simple/"],
            "invalid release version",
        ),
        (vec!["1.2.0"], "nothing to wait on"),
        (
            vec!["1.2.0", "--pypi", "ftp://x/"],
            "expected http:// or https://",
        ),
        (
            vec!["1.2.0", "--pypi", "http://127.0.0.1:1/", "--timeout", "2d"],
            "invalid duration `2d`",
        ),
    ] {
        let mut all = vec!["release", "wait", "swh.loader.git"];
        all.extend(args.iter().copied());
        let out = env.swh_deploy(&all);
        assert_eq!(code(&out), 1, "{all:?}");
        assert!(
            text(&out.stderr).contains(message),
            "{all:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(env.journal_runs().len(), 2, "bad input is not journaled");
}

#[test]
fn wait_for_the_debian_repository_as_json() {
    let repo = aptrepo::build_cached(&["1.0.0-1~swh1", "1.2.0-1~swh1~bpo11+1"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dists = tmp
        .path()
        .join("debian/dists/bookworm-swh/main/binary-amd64");
    fs::create_dir_all(&dists).unwrap();
    fs::copy(repo.dir.join("Packages"), dists.join("Packages")).unwrap();
    let http = StaticHttp::start(&tmp.path().join("debian"), "127.0.0.1".parse().unwrap()).unwrap();
    let env = Env {
        root: tmp.path().to_path_buf(),
        remote: PathBuf::new(),
        work: PathBuf::new(),
    };
    // Repository and suite from the site file's [release] section.
    let site = tmp.path().join("site.toml");
    fs::write(
        &site,
        format!(
            "[release]\napt_url = \"{}\"\napt_suite = \"bookworm-swh\"\n",
            http.url()
        ),
    )
    .unwrap();
    let out = env.swh_deploy(&[
        "release",
        "wait",
        "swh.loader.git",
        "1.2.0",
        "--site",
        site.to_str().unwrap(),
        "--json",
        "--timeout",
        "5s",
    ]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let v = common::json_doc(&text(&out.stdout));
    assert_eq!(v["published"], true);
    assert_eq!(v["module"], "swh.loader.git");
    assert_eq!(v["channels"][0]["channel"], "apt");
    assert_eq!(v["channels"][0]["suite"], "bookworm-swh");
    assert_eq!(
        v["channels"][0]["evidence"],
        "python3-swh.loader.git 1.2.0-1~swh1~bpo11+1"
    );
    // The same repository read as flat (wrong layout): nothing there, exit 6.
    let out = env.swh_deploy(&[
        "release",
        "wait",
        "swh.loader.git",
        "1.2.0",
        "--apt",
        &http.url(),
        "--json",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(code(&out), 6, "{}{}", text(&out.stdout), text(&out.stderr));
    let v = common::json_doc(&text(&out.stdout));
    assert_eq!(v["published"], false);
    assert_eq!(v["channels"][0]["status"], "missing");
}

#[test]
fn tag_gpgsign_config_asks_for_signing_and_a_failed_signature_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path());
    // tag.gpgSign without any usable key (no user.signingkey, no ssh agent).
    fs::write(
        env.root.join("gitconfig"),
        "[user]\n\tname = Release Test\n\temail = release@test.invalid\n\
         [gpg]\n\tformat = ssh\n[tag]\n\tgpgSign = true\n",
    )
    .unwrap();
    let before = env.snapshot();
    let mut c = Command::new(common::bin());
    c.args(["release", "tag", "1.2.0", "--repo"]).arg(&env.work);
    env.isolate(&mut c);
    let out = c.env_remove("SSH_AUTH_SOCK").output().unwrap();
    assert_eq!(code(&out), 1, "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains("signed: yes"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains(" tag -a -s -m "),
        "{}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("creating tag v1.2.0 failed (nothing was created; signing needs your gpg/ssh signing key"),
        "{stderr}"
    );
    assert_eq!(env.snapshot(), before);
    let runs = env.journal_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run.status, RunStatus::Failed);
    assert_eq!(runs[0].steps.len(), 1);
    assert_eq!(runs[0].steps[0].status, StepStatus::Failed);
}

/// A throwaway GnuPG home with one passphrase-less signing key; its
/// gpg-agent is stopped on drop.
struct GnupgHome {
    dir: PathBuf,
}

impl GnupgHome {
    fn new(dir: &Path) -> (GnupgHome, String) {
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let home = GnupgHome {
            dir: dir.to_path_buf(),
        };
        run_ok(home.gpg().args([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Release Test <release@test.invalid>",
            "ed25519",
            "sign",
            "never",
        ]));
        let listing = run_ok(home.gpg().args(["--list-secret-keys", "--with-colons"]));
        let fpr = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .unwrap();
        (home, fpr)
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--batch").env("GNUPGHOME", &self.dir);
        c
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.dir)
            .status();
    }
}

#[test]
fn tag_signed_with_gpg_as_swh_does() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path());
    let (gnupg, fpr) = GnupgHome::new(&tmp.path().join("gnupg"));
    // gpg (git's default format), the key named by user.signingkey.
    fs::write(
        env.root.join("gitconfig"),
        format!(
            "[user]\n\tname = Release Test\n\temail = release@test.invalid\n\tsigningkey = {fpr}\n"
        ),
    )
    .unwrap();
    let mut c = Command::new(common::bin());
    c.args(["release", "tag", "v1.2.0", "--sign", "--repo"])
        .arg(&env.work);
    env.isolate(&mut c);
    let out = c.env("GNUPGHOME", &gnupg.dir).output().unwrap();
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(env.remote_git(&["cat-file", "-t", "v1.2.0"]), "tag");
    assert!(env
        .remote_git(&["cat-file", "tag", "v1.2.0"])
        .contains("-----BEGIN PGP SIGNATURE-----"));
    let verify = env
        .git_in(&env.remote, &["tag", "-v", "v1.2.0"])
        .env("GNUPGHOME", &gnupg.dir)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stderr)
            .contains("Good signature from \"Release Test <release@test.invalid>\""),
        "{}",
        text(&verify.stderr)
    );
}
