//! A thin runner for the system `git` (so signing, credentials and hooks
//! work as for the user). Arguments are passed as a vector, never through a
//! shell.

use crate::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A git work tree.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    /// The repository at `dir`.
    pub fn new(dir: &Path) -> Self {
        Git {
            dir: dir.to_path_buf(),
        }
    }

    /// The work tree directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.arg("-C").arg(&self.dir).args(args);
        c.env("GIT_TERMINAL_PROMPT", "0");
        c
    }

    /// Runs `git ARGS`; returns its stdout (trimmed at the end) or an error
    /// naming the command and quoting git's stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, Error> {
        let out = self
            .command(args)
            .output()
            .map_err(|e| Error::Command(format!("git {}: {e}", args.join(" "))))?;
        if !out.status.success() {
            return Err(Error::Command(format!(
                "`git -C {} {}` failed ({}): {}",
                self.dir.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Runs `git ARGS` and reports whether it exited 0 (any other exit is
    /// `false`; failing to start git is an error).
    pub fn succeeds(&self, args: &[&str]) -> Result<bool, Error> {
        let out = self
            .command(args)
            .output()
            .map_err(|e| Error::Command(format!("git {}: {e}", args.join(" "))))?;
        Ok(out.status.success())
    }

    /// The commit a revision names, if it exists.
    pub fn rev(&self, rev: &str) -> Result<Option<String>, Error> {
        let spec = format!("{rev}^{{commit}}");
        if self.succeeds(&["rev-parse", "-q", "--verify", &spec])? {
            Ok(Some(self.run(&["rev-parse", "-q", "--verify", &spec])?))
        } else {
            Ok(None)
        }
    }

    /// The content of `path` at revision `rev`.
    pub fn show_file(&self, rev: &str, path: &str) -> Result<String, Error> {
        self.run(&["show", &format!("{rev}:{path}")]).map(|mut s| {
            s.push('\n');
            s
        })
    }
}
