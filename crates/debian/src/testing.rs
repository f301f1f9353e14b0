//! Test support (used by this crate's and the CLI's tests): a real-looking
//! swh packaging repository, `swh-loader-git` at `1.1.0-1~swh1` on branch
//! `debian/unstable-swh`, with a bare `origin` remote, made with the system
//! git. Nothing here is used by the commands themselves.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture's `debian/changelog`: two entries, newest first.
pub const CHANGELOG: &str = "\
swh-loader-git (1.1.0-1~swh1) unstable-swh; urgency=medium

  * New upstream release 1.1.0
    - (tagged by Jane Doe <jane@example.org> on 2026-11-02 09:58:41 +0100)
  * Upstream changes:
    - v1.1.0

 -- Software Heritage autobuilder (on jenkins-debian1) <jenkins@jenkins-debian1.internal.softwareheritage.org>  Mon, 02 Nov 2026 09:05:27 +0000

swh-loader-git (1.0.0-1~swh1) unstable-swh; urgency=medium

  * New upstream release 1.0.0
    - (tagged by Jane Doe <jane@example.org> on 2026-10-01 10:12:03 +0200)
  * Upstream changes:
    - v1.0.0

 -- Software Heritage autobuilder (on jenkins-debian1) <jenkins@jenkins-debian1.internal.softwareheritage.org>  Thu, 01 Oct 2026 08:15:44 +0000
";

/// The fixture's `debian/control` (missing the `python3-swh.core`
/// dependency that a packaging fix adds).
pub const CONTROL: &str = "\
Source: swh-loader-git
Maintainer: Software Heritage developers <swh-devel@inria.fr>
Section: python
Priority: optional
Build-Depends: debhelper-compat (= 13),
               dh-python (>= 3),
               python3-all,
               python3-setuptools,
               python3-setuptools-scm
Standards-Version: 4.6.2
Homepage: https://gitlab.softwareheritage.org/swh/devel/swh-loader-git

Package: python3-swh.loader.git
Architecture: all
Depends: ${misc:Depends}, ${python3:Depends}
Description: Software Heritage Git loader
";

/// swh's `debian/gbp.conf` layout.
pub const GBP_CONF: &str = "\
[DEFAULT]
upstream-branch=debian/upstream
upstream-tag=debian/upstream/%(version)s
upstream-vcs-tag=v%(version)s
debian-branch=debian/unstable-swh
";

/// A packaging work tree and its bare remote.
#[derive(Debug)]
pub struct PackagingFixture {
    /// The work tree (`<root>/swh-loader-git`), on `debian/unstable-swh`.
    pub work: PathBuf,
    /// The bare remote (`<root>/swh-loader-git.git`), `origin` of `work`.
    pub remote: PathBuf,
    /// Where the fixture keeps its empty global git config.
    pub home: PathBuf,
}

impl PackagingFixture {
    /// Environment for every git process of a test: no user or system git
    /// configuration (`GIT_CONFIG_GLOBAL` is an empty file of the fixture),
    /// a fixed committer, no terminal prompts, no DEB*/NAME/EMAIL variables
    /// leaking in from the caller.
    pub fn git_env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("GIT_CONFIG_GLOBAL", self.home.join("gitconfig").into()),
            ("GIT_CONFIG_NOSYSTEM", "1".into()),
            ("GIT_TERMINAL_PROMPT", "0".into()),
            ("HOME", self.home.clone().into()),
        ]
    }

    /// The variables [`PackagingFixture::git_env`] clears.
    pub const CLEARED: [&'static str; 4] = ["DEBFULLNAME", "DEBEMAIL", "NAME", "EMAIL"];

    /// A `Command` with the fixture's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for k in Self::CLEARED {
            c.env_remove(k);
        }
        c.envs(self.git_env());
        c
    }

    /// Runs `git -C <work> ARGS`; panics with git's output on failure.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.work, args)
    }

    /// Runs `git -C DIR ARGS` with the fixture's environment.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .command("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Creates the fixture under `root` (an empty directory).
    pub fn create(root: &Path) -> PackagingFixture {
        let f = PackagingFixture {
            work: root.join("swh-loader-git"),
            remote: root.join("swh-loader-git.git"),
            home: root.join("home"),
        };
        std::fs::create_dir_all(&f.home).unwrap();
        std::fs::write(f.home.join("gitconfig"), "").unwrap();
        std::fs::create_dir_all(f.work.join("debian/source")).unwrap();
        f.git_in(root, &["init", "-q", "--bare", "swh-loader-git.git"]);
        f.git_in(
            root,
            &["init", "-q", "-b", "debian/upstream", "swh-loader-git"],
        );
        f.git(&["config", "user.name", "Jane Doe"]);
        f.git(&["config", "user.email", "jane@example.org"]);
        f.git(&["config", "tag.gpgSign", "false"]);
        f.git(&["remote", "add", "origin", f.remote.to_str().unwrap()]);
        // Upstream import.
        std::fs::write(
            f.work.join("setup.py"),
            "from setuptools import setup\nsetup()\n",
        )
        .unwrap();
        f.git(&["add", "setup.py"]);
        f.git(&["commit", "-q", "-m", "Import Upstream version 1.1.0"]);
        f.git(&[
            "tag",
            "-a",
            "-m",
            "Upstream version 1.1.0",
            "debian/upstream/1.1.0",
        ]);
        // Packaging branch.
        f.git(&["checkout", "-q", "-b", "debian/unstable-swh"]);
        std::fs::write(f.work.join("debian/changelog"), CHANGELOG).unwrap();
        std::fs::write(f.work.join("debian/control"), CONTROL).unwrap();
        std::fs::write(f.work.join("debian/gbp.conf"), GBP_CONF).unwrap();
        std::fs::write(f.work.join("debian/source/format"), "3.0 (quilt)\n").unwrap();
        f.git(&["add", "debian"]);
        f.git(&[
            "commit",
            "-q",
            "-m",
            "Updated debian changelog for version 1.1.0",
        ]);
        f.git(&[
            "tag",
            "-a",
            "-m",
            "swh-loader-git Debian release 1.1.0-1~swh1",
            "debian/1.1.0-1_swh1",
        ]);
        f.git(&[
            "push",
            "-q",
            "--follow-tags",
            "origin",
            "debian/upstream",
            "debian/unstable-swh",
        ]);
        f
    }

    /// Every file of the work tree and of the remote with its bytes (but
    /// git's object database), every ref with its object and the staged
    /// content: equal snapshots mean nothing changed.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (label, dir) in [("work", &self.work), ("remote", &self.remote)] {
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&d)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                entries.sort();
                for p in entries {
                    let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                    // git rewrites its index stat cache on `git status`
                    // (the staged content is compared below), and a
                    // refused commit may leave unreachable loose objects
                    // (what is reachable is decided by the refs, compared
                    // below).
                    if rel == ".git/index"
                        || rel.starts_with(".git/objects/")
                        || rel.starts_with("objects/")
                    {
                        continue;
                    }
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        out.push((format!("{label}/{rel}"), std::fs::read(&p).unwrap()));
                    }
                }
            }
            let refs = self.git_in(dir, &["for-each-ref", "--format=%(refname) %(objectname)"]);
            out.push((format!("{label} refs"), refs.into_bytes()));
            if label == "work" {
                let index = self.git_in(dir, &["ls-files", "--stage"]);
                out.push(("work index".to_string(), index.into_bytes()));
            }
        }
        out.sort();
        out
    }
}
