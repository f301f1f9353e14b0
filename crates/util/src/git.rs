//! A thin runner for the system `git` (so signing, credentials and hooks
//! work as for the user). Arguments are passed as a vector, never through a
//! shell; `GIT_TERMINAL_PROMPT=0` so that a missing credential fails
//! instead of waiting for a password nobody types.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A git command that failed, with what was expected of the directory.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git could not be started at all.
    #[error("cannot run `{command}` in {}: {source} (git is needed)", dir.display())]
    Spawn {
        /// The command, as a user would type it.
        command: String,
        /// The directory.
        dir: PathBuf,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// The directory is not a git work tree.
    #[error("not a git repository: {} ({expected} is expected; `{command}` failed)", dir.display())]
    NotARepository {
        /// The directory.
        dir: PathBuf,
        /// What the directory should be (e.g. "a git clone of swh-apps").
        expected: String,
        /// The command that failed.
        command: String,
    },
    /// git ran and exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command as a user would type it, `git -C DIR ARGS`.
        command: String,
        /// The directory.
        dir: PathBuf,
        /// How git exited.
        status: std::process::ExitStatus,
        /// git's stderr, trimmed.
        stderr: String,
    },
}

impl GitError {
    /// Bad input or a failed step: [`Exit::Failed`](crate::Exit::Failed).
    pub fn exit(&self) -> crate::Exit {
        crate::Exit::Failed
    }
}

/// A git work tree (or any directory git commands should run in).
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    expected: String,
}

/// One line of `git ls-remote`: an object id and the ref it is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// The object id (for an annotated tag, the tag object; its `^{}` line
    /// has the commit).
    pub sha: String,
    /// The full ref name (`refs/heads/main`, `refs/tags/v1.0^{}`, `HEAD`).
    pub name: String,
}

impl RemoteRef {
    /// The tag name when this is a tag ref and not its peeled `^{}` line.
    pub fn tag(&self) -> Option<&str> {
        self.name
            .strip_prefix("refs/tags/")
            .filter(|t| !t.ends_with("^{}"))
    }

    /// The branch name when this is a `refs/heads/` ref.
    pub fn branch(&self) -> Option<&str> {
        self.name.strip_prefix("refs/heads/")
    }

    /// Whether this is the peeled `^{}` line of an annotated tag.
    pub fn is_peeled(&self) -> bool {
        self.name.ends_with("^{}")
    }
}

/// Parses the output of `git ls-remote`: `<sha>\t<ref>` lines; other lines
/// (warnings) are skipped.
pub fn parse_ls_remote(text: &str) -> Vec<RemoteRef> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(sha, name)| {
            !sha.is_empty() && sha.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty()
        })
        .map(|(sha, name)| RemoteRef {
            sha: sha.to_string(),
            name: name.to_string(),
        })
        .collect()
}

impl Git {
    /// Git commands in `dir`; errors say "a git repository is expected".
    pub fn new(dir: &Path) -> Self {
        Git {
            dir: dir.to_path_buf(),
            expected: "a git repository".to_string(),
        }
    }

    /// Says what the directory should be, for errors (e.g. "a git clone of
    /// swh-apps").
    pub fn expecting(mut self, what: &str) -> Self {
        self.expected = what.to_string();
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `git -C DIR ARGS` command, not run (for callers that need its
    /// stdin or status themselves).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.arg("-C").arg(&self.dir).args(args);
        c.env("GIT_TERMINAL_PROMPT", "0");
        c
    }

    fn shown(args: &[&str]) -> String {
        let mut words = vec!["git"];
        words.extend_from_slice(args);
        crate::quote_words(&words)
    }

    fn output(&self, args: &[&str]) -> Result<Output, GitError> {
        self.command(args)
            .output()
            .map_err(|source| GitError::Spawn {
                command: Self::shown(args),
                dir: self.dir.clone(),
                source,
            })
    }

    /// Runs `git ARGS`; returns its stdout with the trailing newline
    /// trimmed, or an error naming the command and quoting git's stderr
    /// ([`GitError::NotARepository`] when the directory is not a work tree).
    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.output(args)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("not a git repository") && !stderr.contains("does not appear to be") {
            return Err(GitError::NotARepository {
                dir: self.dir.clone(),
                expected: self.expected.clone(),
                command: Self::shown(args),
            });
        }
        let mut words = vec!["git", "-C"];
        let dir = self.dir.to_string_lossy();
        words.push(&dir);
        words.extend_from_slice(args);
        Err(GitError::Failed {
            command: crate::quote_words(&words),
            dir: self.dir.clone(),
            status: out.status,
            stderr,
        })
    }

    /// Runs `git ARGS` and reports whether it exited 0 (any other exit is
    /// `false`; failing to start git is an error).
    pub fn succeeds(&self, args: &[&str]) -> Result<bool, GitError> {
        Ok(self.output(args)?.status.success())
    }

    /// The commit a revision names, if it exists.
    pub fn rev(&self, rev: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{rev}^{{commit}}");
        if self.succeeds(&["rev-parse", "-q", "--verify", &spec])? {
            Ok(Some(self.run(&["rev-parse", "-q", "--verify", &spec])?))
        } else {
            Ok(None)
        }
    }

    /// The content of `path` at revision `rev` (with its final newline).
    pub fn show_file(&self, rev: &str, path: &str) -> Result<String, GitError> {
        self.run(&["show", &format!("{rev}:{path}")]).map(|mut s| {
            s.push('\n');
            s
        })
    }

    /// `git ls-remote [OPTIONS] -- REMOTE [PATTERNS]`, parsed. `options` are
    /// flags such as `--tags`/`--heads`; the `--` keeps a remote named like
    /// an option from being read as one.
    pub fn ls_remote(
        &self,
        options: &[&str],
        remote: &str,
        patterns: &[&str],
    ) -> Result<Vec<RemoteRef>, GitError> {
        let mut args = vec!["ls-remote"];
        args.extend_from_slice(options);
        args.push("--");
        args.push(remote);
        args.extend_from_slice(patterns);
        Ok(parse_ls_remote(&self.run(&args)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(dir: &Path) -> Git {
        let git = Git::new(dir);
        git.run(&["init", "-q", "-b", "main"]).unwrap();
        for (k, v) in [("user.name", "T"), ("user.email", "t@example.org")] {
            git.run(&["config", k, v]).unwrap();
        }
        std::fs::write(dir.join("f"), "one\n").unwrap();
        git.run(&["add", "f"]).unwrap();
        git.run(&["commit", "-q", "-m", "one"]).unwrap();
        git
    }

    #[test]
    fn parses_ls_remote_lines() {
        let text = "warning: redirecting\n\
            1111111111111111111111111111111111111111\tHEAD\n\
            2222222222222222222222222222222222222222\trefs/heads/main\n\
            3333333333333333333333333333333333333333\trefs/tags/v1.0\n\
            4444444444444444444444444444444444444444\trefs/tags/v1.0^{}\n";
        let refs = parse_ls_remote(text);
        assert_eq!(refs.len(), 4);
        assert_eq!(refs[0].name, "HEAD");
        assert_eq!(refs[1].branch(), Some("main"));
        assert_eq!(refs[2].tag(), Some("v1.0"));
        assert_eq!(refs[2].sha, "3".repeat(40));
        assert!(refs[3].is_peeled() && refs[3].tag().is_none());
    }

    #[test]
    fn runs_git_and_lists_a_real_remote() {
        let work = tempfile::tempdir().unwrap();
        let git = init(work.path());
        git.run(&["tag", "-a", "-m", "t", "v1.0"]).unwrap();
        let head = git.rev("HEAD").unwrap().unwrap();
        assert_eq!(git.rev("no-such-rev").unwrap(), None);
        assert_eq!(git.show_file("HEAD", "f").unwrap(), "one\n");

        let bare = tempfile::tempdir().unwrap();
        Git::new(bare.path())
            .run(&["init", "-q", "--bare"])
            .unwrap();
        let remote = bare.path().to_str().unwrap();
        git.run(&["push", "-q", remote, "main", "v1.0"]).unwrap();

        let refs = git.ls_remote(&["--tags"], remote, &[]).unwrap();
        let tag = refs.iter().find(|r| r.tag() == Some("v1.0")).unwrap();
        assert_ne!(tag.sha, head, "an annotated tag's object, not the commit");
        let peeled = refs.iter().find(|r| r.is_peeled()).unwrap();
        assert_eq!(peeled.sha, head);
        let heads = git.ls_remote(&["--heads"], remote, &["main"]).unwrap();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].branch(), Some("main"));
        assert_eq!(heads[0].sha, head);
    }

    #[test]
    fn errors_say_what_was_expected() {
        let plain = tempfile::tempdir().unwrap();
        let e = Git::new(plain.path())
            .expecting("a git clone of swh-apps")
            .run(&["status"])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "not a git repository: {} (a git clone of swh-apps is expected; `git status` failed)",
                plain.path().display()
            )
        );
        let work = tempfile::tempdir().unwrap();
        let git = init(work.path());
        let e = git.run(&["rev-parse", "--verify", "nope"]).unwrap_err();
        assert!(matches!(e, GitError::Failed { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&format!(
                "`git -C {} rev-parse --verify nope` failed (exit status: 128): fatal:",
                work.path().display()
            )),
            "{e}"
        );
        assert!(!git.succeeds(&["rev-parse", "--verify", "nope"]).unwrap());
    }
}
