//! The small pieces every swh-deploy crate shares, each in one place:
//!
//! - [`Exit`]: the process exit codes (the one table `swh-deploy
//!   exit-codes` and the README print); library errors say which one they
//!   mean through a `fn exit(&self) -> Exit`.
//! - [`atomic_write`]: a file is replaced whole or not at all.
//! - [`duration::parse`]: the one duration grammar of flags and the site
//!   file (`500ms`, `30s`, `15m`, `1h30m`, or plain seconds).
//! - [`git::Git`]: the system `git` run in a directory with arguments as a
//!   vector (never through a shell), errors that say what was expected, and
//!   `ls-remote` parsed into [`git::RemoteRef`]s.
//! - [`quote_words`]: a command shown the way a user would type it.
//! - [`progress`]: the `[  12.3s]` prefix of progress lines and a ticker
//!   for long steps (a live line on a terminal, rare plain lines
//!   otherwise).
//!
//! Nothing here knows about sites, hosts or releases: that belongs to the
//! crates that own those concepts. Folding host names into a node set lives
//! in `swh-deploy-nodeset` (`swh_deploy_nodeset::fold`).

pub mod duration;
mod exit;
mod fs;
pub mod git;
pub mod progress;
mod quote;
pub mod testing;

pub use exit::Exit;
pub use fs::{atomic_write, atomic_write_mode, WriteError};
pub use quote::{quote_word, quote_words};
