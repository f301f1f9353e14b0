//! `clush` and `nodeset` as ClusterShell users know them: their option
//! grammar, their output, their messages and exit codes.
//!
//! The model: ClusterShell's commands are two front ends over two engines.
//! The node sets are the `swh-deploy-nodeset` crate's (RangeSet ->
//! RangeSetND -> NodeSet, group sources); running a command on many hosts
//! is the `swh-deploy-fleet` crate's (transports, fan-out window, gathering).
//! This crate is what sits between a command line and those engines:
//!
//! - [`optparse`]: ONE parser with Python optparse's rules, which both
//!   front ends use (clustered short options, attached values, long options
//!   by unambiguous prefix, no interspersed arguments), with optparse's
//!   wording for bad options and bad values;
//! - [`nodeset`]: ClusterShell's `nodeset` command (`-f`, `-e`, `-c`, `-r`,
//!   `-l`, `--index`, set operations, `-O` formats through [`pyfmt`]);
//! - [`clush`]: ClusterShell's `clush` (`swh-deploy run`): its options,
//!   clush.conf keys, targets (`-w/-x/-g/-X/-a`, `--hostfile`, the site's
//!   groups) and its output modes (`-b`, `-B`, `-L`, `--json`, exit code
//!   lines, the summary).
//!
//! The binary hands each front end its raw arguments and what it knows of
//! its environment, and prints the error it gets back; everything a user of
//! ClusterShell would recognise is decided here.

pub mod clush;
pub mod nodeset;
pub mod optparse;
pub mod pyfmt;
