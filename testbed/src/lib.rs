//! The swh-deploy test bed: real hosts and services on one machine.
//!
//! A [`Testbed`] is a set of real hosts reachable over real ssh:
//!
//! * **chroot hosts** (default): each host has its own network namespace
//!   with a veth into a private bridge (one /24 of `10.213.0.0/16` per test
//!   bed), its own root filesystem (an overlay over the cached golden Debian
//!   bookworm tree, see [`golden`]), hostname, dpkg database and apt, and an
//!   sshd (key-only root login) running in fresh mount/UTS/PID namespaces;
//! * **systemd hosts** (`systemd: true`): the same root booted with
//!   `systemd-nspawn -b` inside the host's network namespace, so
//!   `systemctl`, journald and cron.service are real;
//! * **loopback hosts** (`loopback: Some(n)`): `n` addresses `127.1.x.y`
//!   answered by one sshd (in one overlay root) inside a private network
//!   namespace holding only `lo`; clients run in that namespace
//!   ([`Testbed::exec_command`]). For fan-out tests with hundreds of hosts.
//!
//! [`Testbed::up`] writes, in the state directory, an ssh client config,
//! a pinned known_hosts, the client key and `hosts.toml` (a [`Site`]).
//! Faults are injected with [`Testbed::cut`], [`Testbed::drop_packets`],
//! [`Testbed::refuse`] and undone with [`Testbed::restore`].
//! [`Testbed::down`] (also run on drop) stops every process it started by
//! pid, unmounts, and removes namespaces, links, cgroups and state.
//!
//! ```no_run
//! use swh_deploy_testbed::{Options, Testbed};
//! let tb = Testbed::up(&Options { hosts: 2, ..Options::default() })?;
//! let out = tb.ssh_command("host1", "hostname").output()?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "host1");
//! # Ok::<(), anyhow::Error>(())
//! ```
pub mod aptrepo;
mod bed;
pub mod components;
pub mod gitlab;
pub mod golden;
pub mod grafana;
mod http;
pub mod kube;
pub mod puppet;
pub mod relay;
pub mod skip;
mod tls;
mod util;

pub use bed::{
    default_state_dir, reap_stale, Fault, Host, Mode, Options, Site, Testbed, APT_PORT, KEEP_ENV,
    RUN_DIR, SUBNET_BASE,
};
