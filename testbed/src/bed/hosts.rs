//! Bringing hosts up: the loopback layout (one sshd, many `127.1.x.y`
//! addresses) and the bridge layout (a namespace, veth and root per host).

use super::cgroup::cgroup_roots;
use super::network::{free_subnet, no_ipv6, wait_port};
use super::overlay::raise_inotify_limits;
use super::{short_id, HostState, Mode, Testbed, APT_PORT, RUN_DIR, SUBNET_BASE};
use crate::util::{self, Lock};
use anyhow::{anyhow, bail, Result};
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

impl Testbed {
    pub(super) fn up_loopback(
        &self,
        golden: &Path,
        names: &[String],
        apt: Option<&Path>,
    ) -> Result<()> {
        let (dir, name) = {
            let st = self.lock();
            (st.state_dir.clone(), st.name.clone())
        };
        let ns = format!("swhtb-{name}-lo");
        self.add_netns(&ns)?;
        util::run(util::cmd("ip").args(["-n", &ns, "link", "set", "lo", "up"]))?;
        self.record(|s| s.loopback_netns = Some(ns.clone()))?;
        let hosts: Vec<HostState> = names
            .iter()
            .enumerate()
            .map(|(i, n)| HostState {
                name: n.clone(),
                addr: Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8),
                netns: None,
                veth: None,
                root: None,
                fault: None,
            })
            .collect();
        self.record(|s| s.hosts = hosts.clone())?;
        let root = self.mount_overlay(golden, &dir.join("loopback"))?;
        let apt_url = apt.map(|_| format!("http://127.0.0.1:{APT_PORT}/debian"));
        self.prepare_root(&root, "loopback", None, apt_url.as_deref())?;
        if let (Some(apt), Some(url)) = (apt, &apt_url) {
            self.spawn(
                "httpd",
                util::cmd("ip")
                    .args(["netns", "exec", &ns, "busybox", "httpd", "-f", "-p"])
                    .arg(format!("127.0.0.1:{APT_PORT}"))
                    .arg("-h")
                    .arg(apt),
            )?;
            self.record(|s| s.apt_url = Some(url.clone()))?;
            wait_port(Some(&ns), Ipv4Addr::LOCALHOST, APT_PORT, false)?;
        }
        self.spawn_chroot_sshd("sshd:loopback", &ns, &root, "loopback")?;
        // Every address answers (same sshd); checking a few is enough.
        let addrs: Vec<Ipv4Addr> = hosts.iter().map(|h| h.addr).collect();
        for a in [addrs[0], addrs[addrs.len() - 1]] {
            wait_port(Some(&ns), a, 22, true)?;
        }
        Ok(())
    }

    pub(super) fn up_bridge(
        &self,
        golden: &Path,
        names: &[String],
        apt: Option<&Path>,
    ) -> Result<()> {
        let (dir, name, mode) = {
            let st = self.lock();
            (st.state_dir.clone(), st.name.clone(), st.mode)
        };
        let id = short_id(&name);
        let bridge = format!("tb{id}br");
        let (bridge_addr, prefix) = {
            // Allocation of the subnet and creation of the bridge are atomic
            // across test beds.
            let _l = Lock::acquire(
                &Path::new(RUN_DIR).join(".net.lock"),
                Duration::from_secs(60),
            )?;
            if Path::new("/sys/class/net").join(&bridge).exists() {
                bail!("bridge {bridge} already exists (another test bed with a colliding name?)");
            }
            let third = free_subnet(&name)?;
            let [a, b] = SUBNET_BASE;
            let addr = Ipv4Addr::new(a, b, third, 1);
            util::run(util::cmd("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
            self.record(|s| s.links.push(bridge.clone()))?;
            no_ipv6(&bridge);
            util::run(
                util::cmd("ip")
                    .args(["addr", "add"])
                    .arg(format!("{addr}/24"))
                    .args(["dev", &bridge]),
            )?;
            util::run(util::cmd("ip").args(["link", "set", &bridge, "up"]))?;
            (addr, [a, b, third])
        };
        self.record(|s| {
            s.bridge = Some(bridge.clone());
            s.bridge_addr = Some(bridge_addr);
        })?;
        let apt_url = apt.map(|_| format!("http://{bridge_addr}:{APT_PORT}/debian"));
        if let (Some(apt), Some(url)) = (apt, &apt_url) {
            self.spawn(
                "httpd",
                util::cmd("busybox")
                    .args(["httpd", "-f", "-p"])
                    .arg(format!("{bridge_addr}:{APT_PORT}"))
                    .arg("-h")
                    .arg(apt),
            )?;
            self.record(|s| s.apt_url = Some(url.clone()))?;
            wait_port(None, bridge_addr, APT_PORT, false)?;
        }
        let cg_root = cgroup_roots();
        let planned: Vec<HostState> = names
            .iter()
            .enumerate()
            .map(|(i, n)| HostState {
                name: n.clone(),
                addr: Ipv4Addr::new(prefix[0], prefix[1], prefix[2], (i + 2) as u8),
                netns: None,
                veth: None,
                root: None,
                fault: None,
            })
            .collect();
        self.record(|s| s.hosts = planned)?;
        if mode == Mode::Systemd {
            raise_inotify_limits();
        }
        for (i, hname) in names.iter().enumerate() {
            let addr = Ipv4Addr::new(prefix[0], prefix[1], prefix[2], (i + 2) as u8);
            let ns = format!("swhtb-{name}-{hname}");
            let veth = format!("tb{id}h{}", i + 1);
            let peer = format!("tb{id}p{}", i + 1);
            self.add_netns(&ns)?;
            util::run(
                util::cmd("ip")
                    .args(["link", "add", &veth, "type", "veth", "peer", "name", &peer])
                    .args(["netns", &ns]),
            )?;
            self.record(|s| s.links.push(veth.clone()))?;
            no_ipv6(&veth);
            util::run(util::cmd("ip").args(["link", "set", &veth, "master", &bridge, "up"]))?;
            let inside = format!(
                "link set lo up\nlink set {peer} name eth0\naddr add {addr}/24 dev eth0\nlink set eth0 up\n"
            );
            let _ = util::run(util::cmd("ip").args([
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]));
            util::run_input(
                util::cmd("ip").args(["-n", &ns, "-batch", "-"]),
                Some(&inside),
            )?;
            // Safety: the host's address must be routed to our bridge.
            let route = util::run(
                util::cmd("ip")
                    .args(["-4", "route", "get"])
                    .arg(addr.to_string()),
            )?;
            if !route
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["dev", bridge.as_str()])
            {
                bail!(
                    "route to {addr} does not go to bridge {bridge}: {}",
                    route.trim()
                );
            }
            self.record(|s| {
                if let Some(h) = s.hosts.iter_mut().find(|h| &h.name == hname) {
                    h.netns = Some(ns.clone());
                    h.veth = Some(veth.clone());
                }
            })?;
            let root = self.mount_overlay(golden, &dir.join("hosts").join(hname))?;
            self.record(|s| {
                if let Some(h) = s.hosts.iter_mut().find(|h| &h.name == hname) {
                    h.root = Some(root.clone());
                }
            })?;
            self.prepare_root(&root, hname, Some(addr), apt_url.as_deref())?;
            match mode {
                Mode::Systemd => self.spawn_nspawn(hname, &ns, &root, &dir, &cg_root)?,
                _ => self.spawn_chroot_sshd(&format!("sshd:{hname}"), &ns, &root, hname)?,
            };
        }
        let hosts: Vec<(String, Ipv4Addr)> = self
            .lock()
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.addr))
            .collect();
        for (h, a) in hosts {
            if let Err(e) = wait_port(None, a, 22, true) {
                let role = match mode {
                    Mode::Systemd => format!("nspawn-{h}"),
                    _ => format!("sshd-{h}"),
                };
                let log = dir.join("logs").join(format!("{role}.log"));
                let text = fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "host {h}: {e:#}; last lines of its log:\n{}",
                    tail.join("\n")
                );
            }
        }
        if mode == Mode::Systemd {
            // Until boot is over (all hosts in parallel), so that tests see
            // units in their final state.
            std::thread::scope(|sc| -> Result<()> {
                let waits: Vec<_> = names
                    .iter()
                    .map(|h| sc.spawn(move || self.wait_booted(h)))
                    .collect();
                for w in waits {
                    w.join().map_err(|_| anyhow!("boot wait panicked"))??;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
