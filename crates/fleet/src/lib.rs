//! Parallel remote execution for swh-deploy: what `clush` does for the
//! runbook, as a library.
//!
//! # Model
//! A run is one command sent to a list of hosts. Three parts cooperate:
//!
//! - A [`Transport`] says how the local process that runs the command for
//!   one host is built ([`SshTransport`]: the system `ssh`, the command as
//!   one argument after `--`, strict host keys, batch mode, keepalives,
//!   optional connection reuse; [`ExecTransport`]: a local `/bin/sh -c` (or a direct exec for plain commands) with
//!   `%h`/`%n`/`%hosts` substitution like `clush -R exec`) and how its exit
//!   is read (ssh's 255 with a message of its own is [`Status::Unreachable`],
//!   never an exit code of the command).
//! - The engine ([`run`]) keeps at most [`RunOptions::fanout`] processes
//!   running (a sliding window, in target order), reads their stdout and
//!   stderr line by line, enforces [`RunOptions::command_timeout`], and stops
//!   on a [`CancelToken`] (Ctrl-C): nothing new starts, running processes are
//!   killed with their process group, unfinished hosts are reported.
//! - Results come back twice: live, as [`Observer`] events (a line, a host
//!   done), and at the end as a [`RunReport`] with one [`HostResult`] per
//!   host (`rc`, stdout, stderr, duration, unreachable / timed out).
//!
//! [`gather`] groups identical outputs the way `clush -b` does and
//! [`render`] prints them byte for byte as clush does, with node sets
//! folded by [`fold`].
//!
//! ```no_run
//! use swh_deploy_fleet::{run, CancelToken, NoObserver, RunOptions, SshOptions, SshTransport};
//! let ssh = SshTransport::new(SshOptions::default())?;
//! let hosts = vec!["web1".to_string(), "web2".to_string()];
//! let report = run(&ssh, &hosts, "systemctl is-active nginx", &RunOptions::default(),
//!                  &mut NoObserver, &CancelToken::new())?;
//! for r in &report.results {
//!     println!("{}: {:?}", r.host, r.status);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod engine;
pub mod gather;
mod mux;
pub mod render;
pub mod result;
pub mod signals;
pub mod transport;

pub use engine::{run, CancelToken, NoObserver, Observer, RunError, RunOptions, Stream};
pub use result::{HostResult, RunReport, Status};
pub use signals::{SecondSignal, SignalGuard, SignalPolicy};
pub use transport::{
    remove_stale_sockets, user_control_dir, ConnectionReuse, ExecTransport, HostKeyPolicy, Job,
    Launch, MuxSession, SharedConnection, SshOptions, SshTransport, Transport, TransportError,
    DEFAULT_PERSIST,
};

/// Folds host names into one node-set string (the node set crate's
/// [`swh_deploy_nodeset::fold`], re-exported for the fleet's users).
pub use swh_deploy_nodeset::fold;
