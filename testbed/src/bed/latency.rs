//! Latency mode: the delaying relays ([`crate::relay`]) in front of the
//! hosts' sshd, one per network namespace (loopback mode: one for all the
//! addresses; bridge modes: one in each host's namespace).

use super::network::wait_port;
use super::Testbed;
use crate::relay::{Latency, RELAY_PORT};
use crate::util;
use anyhow::{anyhow, Context, Result};
use std::net::Ipv4Addr;
use std::path::Path;

impl Testbed {
    /// Starts the relays (`PROGRAM relay`, recorded, stopped by `down`),
    /// waits until each answers with sshd's banner through the delay, and
    /// records [`RELAY_PORT`] for the ssh_config.
    pub(super) fn start_relays(&self, latency: Latency, program: Option<&Path>) -> Result<()> {
        let program = match program {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe().context("the relay program (this executable)")?,
        };
        let (loopback, hosts) = {
            let st = self.lock();
            let hosts: Vec<(String, Option<String>, Ipv4Addr)> = st
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.netns.clone(), h.addr))
                .collect();
            (st.loopback_netns.clone(), hosts)
        };
        // (role, namespace, addresses) of each relay.
        let relays: Vec<(String, String, Vec<Ipv4Addr>)> = match loopback {
            Some(ns) => vec![(
                "relay:loopback".into(),
                ns,
                hosts.iter().map(|h| h.2).collect(),
            )],
            None => hosts
                .iter()
                .map(|(name, ns, addr)| {
                    let ns = ns
                        .clone()
                        .ok_or_else(|| anyhow!("host {name}: no namespace"))?;
                    Ok((format!("relay:{name}"), ns, vec![*addr]))
                })
                .collect::<Result<_>>()?,
        };
        for (role, ns, addrs) in &relays {
            let mut cmd = util::cmd("ip");
            cmd.args(["netns", "exec", ns])
                .arg(&program)
                .args(["relay", "--to-port", "22", "--delay"])
                .arg(format!("{}us", latency.delay.as_micros()))
                .arg("--jitter")
                .arg(format!("{}us", latency.jitter.as_micros()));
            for a in addrs {
                cmd.arg(format!("{a}:{RELAY_PORT}"));
            }
            self.spawn(role, &mut cmd)?;
        }
        for (_, ns, addrs) in &relays {
            for a in [addrs[0], addrs[addrs.len() - 1]] {
                wait_port(Some(ns), a, RELAY_PORT, true)
                    .with_context(|| format!("latency relay on {a}:{RELAY_PORT}"))?;
            }
        }
        self.record(|s| s.relay_port = Some(RELAY_PORT))
    }
}
