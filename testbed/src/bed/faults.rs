//! Fault injection: cut a host's link, drop or reject its packets (nftables
//! in a table the test bed owns), stop its sshd, and undo.

use super::network::{nft_apply, wait_port};
use super::{Fault, Mode, Proc, Testbed};
use crate::util;
use anyhow::Result;
use std::fmt::Write as _;
use std::time::Duration;

impl Testbed {
    /// The fault currently injected into `host`, if any.
    pub fn fault(&self, host: &str) -> Result<Option<Fault>> {
        self.host(host)?;
        Ok(self
            .lock()
            .hosts
            .iter()
            .find(|h| h.name == host)
            .and_then(|h| h.fault))
    }

    /// Cuts `host`'s link (`ip link set VETH down`): connects hang until
    /// the client's ConnectTimeout. Loopback mode: an nftables drop.
    pub fn cut(&self, host: &str) -> Result<()> {
        self.inject(host, Some(Fault::Cut))
    }

    /// Drops every packet to `host` (nftables `drop` in a table this test
    /// bed owns): connects hang until the client's ConnectTimeout.
    pub fn drop_packets(&self, host: &str) -> Result<()> {
        self.inject(host, Some(Fault::Drop))
    }

    /// Stops `host`'s sshd (loopback mode: nftables `reject with tcp
    /// reset`): connects are refused at once.
    pub fn refuse(&self, host: &str) -> Result<()> {
        self.inject(host, Some(Fault::Refuse))
    }

    /// Undoes any fault on `host` and waits (bounded) until its sshd answers.
    pub fn restore(&self, host: &str) -> Result<()> {
        self.inject(host, None)
    }

    pub(super) fn inject(&self, host: &str, fault: Option<Fault>) -> Result<()> {
        self.host(host)?;
        let (mode, hs, lo_ns) = {
            let st = self.lock();
            let hs = st
                .hosts
                .iter()
                .find(|h| h.name == host)
                .cloned()
                .expect("host exists");
            (st.mode, hs, st.loopback_netns.clone())
        };
        let previous = hs.fault;
        if previous == fault {
            return Ok(());
        }
        // Undo the previous fault.
        match (mode, previous) {
            (_, None) => {}
            (Mode::Loopback, Some(_)) => {}
            (_, Some(Fault::Cut)) => {
                let veth = hs.veth.clone().expect("bridge host has a veth");
                util::run(util::cmd("ip").args(["link", "set", &veth, "up"]))?;
            }
            (_, Some(Fault::Drop)) => {
                let ns = hs.netns.clone().expect("bridge host has a netns");
                nft_apply(&ns, "")?;
            }
            (Mode::Systemd, Some(Fault::Refuse)) => {
                self.in_container(host, &["systemctl", "start", "ssh.service"])?;
            }
            (_, Some(Fault::Refuse)) => {
                let ns = hs.netns.clone().expect("bridge host has a netns");
                let root = hs.root.clone().expect("bridge host has a root");
                self.spawn_chroot_sshd(&format!("sshd:{host}"), &ns, &root, host)?;
            }
        }
        self.record(|s| {
            if let Some(h) = s.hosts.iter_mut().find(|h| h.name == host) {
                h.fault = None;
            }
        })?;
        // Apply the new one.
        match (mode, fault) {
            (_, None) => {}
            (Mode::Loopback, Some(_)) => {}
            (_, Some(Fault::Cut)) => {
                let veth = hs.veth.clone().expect("bridge host has a veth");
                util::run(util::cmd("ip").args(["link", "set", &veth, "down"]))?;
            }
            (_, Some(Fault::Drop)) => {
                let ns = hs.netns.clone().expect("bridge host has a netns");
                nft_apply(&ns, "    iifname \"eth0\" drop\n")?;
            }
            (Mode::Systemd, Some(Fault::Refuse)) => {
                self.in_container(host, &["systemctl", "stop", "ssh.service"])?;
            }
            (_, Some(Fault::Refuse)) => {
                let role = format!("sshd:{host}");
                let procs: Vec<Proc> = self
                    .lock()
                    .procs
                    .iter()
                    .filter(|p| p.role == role)
                    .cloned()
                    .collect();
                for p in &procs {
                    util::stop_all(&[(p.pid, p.start)], Duration::from_secs(2));
                }
                self.record(|s| s.procs.retain(|p| p.role != role))?;
            }
        }
        self.record(|s| {
            if let Some(h) = s.hosts.iter_mut().find(|h| h.name == host) {
                h.fault = fault;
            }
        })?;
        if mode == Mode::Loopback {
            let ns = lo_ns.expect("loopback namespace");
            let mut rules = String::new();
            for h in &self.lock().hosts {
                match h.fault {
                    Some(Fault::Cut) | Some(Fault::Drop) => {
                        let _ = writeln!(rules, "    ip daddr {} tcp dport 22 drop", h.addr);
                    }
                    Some(Fault::Refuse) => {
                        let _ = writeln!(
                            rules,
                            "    ip daddr {} tcp dport 22 reject with tcp reset",
                            h.addr
                        );
                    }
                    None => {}
                }
            }
            nft_apply(&ns, &rules)?;
        }
        if fault.is_none() {
            let ns = if mode == Mode::Loopback {
                self.lock().loopback_netns.clone()
            } else {
                None
            };
            wait_port(ns.as_deref(), hs.addr, 22, true)?;
        }
        Ok(())
    }
}
