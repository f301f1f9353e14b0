//! Debian packaging fixes of swh modules: the runbook's "Debian package
//! troubleshoot" (new `debian/changelog` entry, then `gbp buildpackage
//! --git-tag-only --git-sign-tag` and `git push origin --follow-tags`).
//!
//! # The model
//!
//! - A packaging repository is a git work tree with `debian/changelog` and
//!   `debian/control`; the packaging branch is `debian/<distribution>`:
//!   `debian/unstable-swh`, or `debian/<codename>-swh` for backports.
//! - **Changelog entries** ([`changelog`]): the top entry of
//!   `debian/changelog` names the source package (`swh-<name>`), the version,
//!   the distribution and the urgency, then the change items, then the
//!   trailer ` -- Name <email>  RFC 2822 date`. Only the top entry is parsed
//!   (it is the one `dpkg-parsechangelog` reports); errors name
//!   `file:line:column`.
//! - **Version bump rules** ([`changelog::next_version`]): swh versions are
//!   `<upstream>-1~swh<N>` for `unstable-swh` and
//!   `<upstream>-1~swh<N>~bpo<K>+1` for the `<codename>-swh` backports
//!   (bpo10 buster, bpo11 bullseye, bpo12 bookworm). A packaging fix bumps N:
//!   `1.1.0-1~swh1` -> `1.1.0-1~swh2`, `1.1.0-1~swh1~bpo12+1` ->
//!   `1.1.0-1~swh2~bpo12+1`. An explicit version must be greater in dpkg's
//!   order ([`DebianVersion`], this crate's), and a version must match its
//!   distribution (a `~bpo12` version goes to `bookworm-swh`).
//! - **DEP-14 tags** ([`dep14`]): a release is tagged `debian/<version>`
//!   with `~` -> `_`, `:` -> `%` and `.` before `.`/end/`lock` -> `.#`
//!   (`1.1.0-1~swh2` -> `debian/1.1.0-1_swh2`), exactly the tag
//!   `gbp buildpackage --git-tag-only` makes, annotated with gbp's message
//!   `<source> Debian release <version>`. Upstream imports are
//!   `debian/upstream/<version>`.
//! - **Repository operations** ([`repo::PackagingRepo`]): plan, then apply. A
//!   refused request (malformed changelog, lower version, wrong branch, dirty
//!   tree, existing tag) changes nothing; the changelog is written
//!   atomically; a tag that was created but not pushed is pushed by a re-run.
//!
//! git is the system `git`, run without a shell (the runner of the charts
//! crate), so the user's signing keys and credentials work as usual.

pub mod changelog;
pub mod dep14;
pub mod journaled;
pub mod repo;
pub mod testing;
mod version;

pub use changelog::{next_version, rfc2822_now, Changelog, Entry, Maintainer, NewEntry};
pub use dep14::{dep14_tag, dep14_upstream_tag, dep14_version};
pub use journaled::{tag_and_push, TagDone, TagRun};
pub use repo::{is_backport_of, ChangelogPlan, ChangelogRequest, PackagingRepo, TagPlan, TagState};
pub use version::DebianVersion;

use std::path::PathBuf;

/// A syntax error in `debian/changelog`, at `path:line:column` (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ParseError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What was expected.
    pub message: String,
}

/// Everything that can go wrong; every variant names what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `debian/changelog` does not parse.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// A version that cannot be used (not greater, cannot be bumped, wrong
    /// distribution).
    #[error("{0}")]
    Version(String),
    /// No usable maintainer name/email.
    #[error("{0}")]
    Maintainer(String),
    /// A tag name that is not DEP-14, or a tag that already exists elsewhere.
    #[error("{0}")]
    Tag(String),
    /// The repository is not in a state the operation accepts (branch, dirty
    /// tree, uncommitted changelog).
    #[error("refused: {0}")]
    Refused(String),
    /// A git command failed.
    #[error("{0}")]
    Git(String),
    /// Pushing a tag created here failed: a re-run pushes it.
    #[error("{0}\nthe tag exists here: run `swh-deploy debian tag` again to push it")]
    Unpushed(Box<Error>),
    /// The journal could not be opened or the run not started.
    #[error(transparent)]
    Journal(#[from] swh_deploy_journal::JournalError),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// The exit a Debian packaging error means: [`Exit::Failed`].
    ///
    /// [`Exit::Failed`]: swh_deploy_util::Exit::Failed
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
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
