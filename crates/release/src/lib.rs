//! Module releases: the first two steps of the runbook "Upgrade swh
//! service", *Tag and push* and *Publish artifacts*.
//!
//! # Model
//!
//! A **module** is a Python distribution such as `swh.loader.git`; its git
//! repository is `swh-loader-git` (dots <-> dashes, [`Module`]), its Debian
//! binary package `python3-swh.loader.git` ([`Module::debian_package`]).
//!
//! A **release** is an annotated git tag `v<version>` where the version is
//! what the module CI's tag regex `refs/tags/v\d+(\.\d+)+((a|b|rc)\d+)?`
//! accepts ([`ReleaseVersion`], ordered as PEP 440: `1.2.0a1 < 1.2.0b1 <
//! 1.2.0rc1 < 1.2.0`). Pushing the tag makes CI build the module, upload it
//! to PyPI, then build the Debian package and add it to the swh Debian
//! repository.
//!
//! [`tag`] turns "tag and push" into a checked plan ([`tag::plan`]): the work
//! tree is clean, HEAD is on a branch that is already on the remote, the tag
//! exists neither locally nor on the remote, and the version is greater than
//! every existing release tag. The plan holds the exact git commands (`git
//! tag -a [-s] ...`, `git push REMOTE refs/tags/TAG`), which the caller prints
//! (`--dry-run`) or runs step by step ([`tag::run_step`]). A tag created by an
//! earlier run whose push failed is found again and only pushed: re-running
//! is idempotent.
//!
//! [`publish`] is the gate "nothing is deployed before it is published": it
//! checks ([`publish::check`]) or polls until a deadline ([`publish::wait`])
//! each requested **channel** ([`publish::Channel`]): a PyPI-style simple
//! index (PEP 503 HTML or PEP 691 JSON) listing a file of that version, and a
//! Debian repository (reprepro's `dists/<suite>/main/binary-<arch>/` or a
//! flat repository) whose `Packages` index holds the module's package at a
//! version whose upstream part is the release (`1.2.0-1~swh1`,
//! `1.2.0-1~swh1~bpo11+1`, `1.2.0~rc1-1~swh1`).
//!
//! git is the system `git` (so the user's signing set-up, credentials and
//! hooks apply), run without a shell; HTTP is `ureq` with rustls and bounded
//! timeouts.

pub mod journaled;
pub mod publish;
pub mod tag;
pub mod version;

pub use version::{PreRelease, ReleaseVersion};

use std::fmt;

/// Everything that can go wrong; each message names what is at fault and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The version is not one the module CI would release.
    #[error(
        "invalid release version {version:?}: {why}; expected v<N>.<N>[.<N>...] with an optional a<N>, b<N> or rc<N> (the CI tag regex refs/tags/v\\d+(\\.\\d+)+((a|b|rc)\\d+)?), e.g. v1.2.0 or 1.2.0rc1"
    )]
    InvalidVersion {
        /// What was given.
        version: String,
        /// Why it is refused.
        why: String,
    },
    /// The module name is not a Python distribution name like `swh.loader.git`.
    #[error(
        "invalid module name {module:?}: {why}; expected e.g. swh.loader.git or swh-loader-git"
    )]
    InvalidModule {
        /// What was given.
        module: String,
        /// Why it is refused.
        why: String,
    },
    /// A git command failed or git could not be run.
    #[error("{0}")]
    Git(String),
    /// A check before tagging failed; the message says what to do.
    #[error("refused: {0}")]
    Refused(String),
    /// The tag is already on the remote: the release was already made.
    #[error("refused: tag {tag} already exists on {remote} ({remote_url}): this release was already made; next: swh-deploy release wait MODULE {version}")]
    AlreadyReleased {
        /// The tag.
        tag: String,
        /// The version.
        version: String,
        /// The remote name.
        remote: String,
        /// Its URL.
        remote_url: String,
    },
    /// The tag was created locally but the push failed.
    #[error("tag {tag} was created locally on {commit} but pushing it to {remote} failed: {detail}\nfix the access to {remote} and re-run the same command: it will only push the tag (or push it by hand: git push {remote} refs/tags/{tag})")]
    PushFailed {
        /// The tag.
        tag: String,
        /// The commit it points to.
        commit: String,
        /// The remote name.
        remote: String,
        /// git's error.
        detail: String,
    },
    /// A value given by a flag (or its fallbacks) is unusable: the flag
    /// and why.
    #[error("{0}: {1}")]
    Flag(&'static str, Box<Error>),
    /// No channel to wait on was given anywhere.
    #[error("nothing to wait on: give --pypi URL and/or --apt URL (or set SWH_DEPLOY_INDEX_URL / SWH_DEPLOY_APT_URL, or [release] index_url / apt_url in the site file)")]
    NoChannel,
    /// The journal could not record the run.
    #[error(transparent)]
    Journal(#[from] swh_deploy_journal::JournalError),
    /// A URL given for a channel is unusable.
    #[error("invalid URL {url:?}: {why}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why.
        why: String,
    },
}

impl From<swh_deploy_charts::Error> for Error {
    fn from(e: swh_deploy_charts::Error) -> Self {
        Error::Git(e.to_string())
    }
}

/// A failed git command (the shared runner's error), with the same text.
impl From<swh_deploy_charts::git::GitError> for Error {
    fn from(e: swh_deploy_charts::git::GitError) -> Self {
        Error::Git(e.to_string())
    }
}

/// A Python module (distribution) of Software Heritage, e.g.
/// `swh.loader.git`, given either dotted or as its repository name
/// `swh-loader-git`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Module {
    dotted: String,
}

impl Module {
    /// Parses `swh.loader.git`, `swh-loader-git` or `swh_loader_git`
    /// (case-insensitive): ASCII letters and digits separated by single
    /// `.`, `-` or `_`.
    pub fn parse(input: &str) -> Result<Module, Error> {
        let bad = |why: &str| Error::InvalidModule {
            module: input.to_string(),
            why: why.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        let mut dotted = String::with_capacity(input.len());
        let mut prev_sep = true;
        for c in input.chars() {
            match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' => {
                    dotted.push(c.to_ascii_lowercase());
                    prev_sep = false;
                }
                '.' | '-' | '_' => {
                    if prev_sep {
                        return Err(bad("separators must sit between letters or digits"));
                    }
                    dotted.push('.');
                    prev_sep = true;
                }
                _ => return Err(bad("only letters, digits, '.', '-' and '_' are allowed")),
            }
        }
        if prev_sep {
            return Err(bad("ends with a separator"));
        }
        Ok(Module { dotted })
    }

    /// The dotted name: `swh.loader.git`.
    pub fn dotted(&self) -> &str {
        &self.dotted
    }

    /// The git repository name: `swh-loader-git`; also the PEP 503
    /// normalised project name on a package index.
    pub fn repository(&self) -> String {
        self.dotted.replace('.', "-")
    }

    /// The Debian binary package: `python3-swh.loader.git`.
    pub fn debian_package(&self) -> String {
        format!("python3-{}", self.dotted)
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        for given in ["swh.loader.git", "swh-loader-git", "SWH_loader.Git"] {
            let m = Module::parse(given).unwrap();
            assert_eq!(m.dotted(), "swh.loader.git");
            assert_eq!(m.repository(), "swh-loader-git");
            assert_eq!(m.debian_package(), "python3-swh.loader.git");
        }
        for bad in [
            "",
            ".swh",
            "swh..git",
            "swh.",
            "swh/../x",
            "swh loader",
            "swh;rm",
        ] {
            let e = Module::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
