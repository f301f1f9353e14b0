//! Helpers for the workspace's tests (unit and integration), never used by
//! the product: one way to run git on a test repository.

use std::path::Path;
use std::process::Command;

/// Runs `git -C dir ARGS` as a test does: no global configuration, a fixed
/// author and committer; panics with git's stderr when it fails. Returns
/// stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_git_in_the_directory_with_the_test_identity() {
        let d = tempfile::tempdir().unwrap();
        super::git(d.path(), &["init", "-q", "-b", "main"]);
        super::git(d.path(), &["commit", "-q", "--allow-empty", "-m", "x"]);
        assert_eq!(
            super::git(d.path(), &["log", "-1", "--format=%an %s"]),
            "T x"
        );
    }
}
