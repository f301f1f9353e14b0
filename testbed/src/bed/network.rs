//! Network plumbing of a test bed: network namespaces, the free /24 of each
//! bridge, IPv6 off, nftables tables, waiting for a port.

use super::{Testbed, NFT_TABLE, SSHD_TIMEOUT, SUBNET_BASE};
use crate::util;
use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Duration;

impl Testbed {
    pub(super) fn add_netns(&self, ns: &str) -> Result<()> {
        if Path::new("/run/netns").join(ns).exists() {
            bail!("network namespace {ns} already exists");
        }
        util::run(util::cmd("ip").args(["netns", "add", ns]))?;
        self.record(|s| s.netns.push(ns.to_string()))
    }
}

/// Replaces this test bed's nftables table in namespace `ns` with one whose
/// input chain holds `rules` (empty: the table is removed).
pub(super) fn nft_apply(ns: &str, rules: &str) -> Result<()> {
    let mut script = format!("table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n");
    if !rules.is_empty() {
        let _ = write!(
            script,
            "table inet {NFT_TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
    }
    util::run_input(
        util::cmd("ip").args(["netns", "exec", ns, "nft", "-f", "-"]),
        Some(&script),
    )?;
    Ok(())
}

/// Disables IPv6 on an interface (no router solicitations, no DAD noise).
pub(super) fn no_ipv6(ifname: &str) {
    let _ = fs::write(
        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    );
}

/// A free /24 in 10.213.0.0/16 (no address or route of the machine in it),
/// starting from a hash of the name.
pub(super) fn free_subnet(name: &str) -> Result<u8> {
    let addrs = util::run(util::cmd("ip").args(["-4", "-o", "addr", "show"]))?;
    let routes = util::run(util::cmd("ip").args(["-4", "route", "show", "table", "all"]))?;
    let start = (util::fnv64(name.as_bytes(), 0) % 250) as u8;
    let [a, b] = SUBNET_BASE;
    for k in 0..250u16 {
        let third = ((start as u16 + k) % 250) as u8 + 1;
        let net = format!("{a}.{b}.{third}.");
        let used = addrs.contains(&format!(" {net}"))
            || routes.lines().any(|l| {
                let first = l
                    .split_whitespace()
                    .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()));
                first.is_some_and(|w| w.starts_with(&net) || covers(w, a, b, third))
            });
        if !used {
            return Ok(third);
        }
    }
    bail!("no free /24 left in {a}.{b}.0.0/16")
}

/// Whether the route prefix `w` (e.g. `10.0.0.0/8`) covers `a.b.third.0/24`,
/// the default route excepted.
pub(super) fn covers(w: &str, a: u8, b: u8, third: u8) -> bool {
    let Some((net, len)) = w.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len == 0 || len > 24 {
        return false;
    }
    let mask = u32::MAX << (32 - len);
    (u32::from(net) & mask) == (u32::from(Ipv4Addr::new(a, b, third, 0)) & mask)
}

/// Waits (bounded) until `addr:port` accepts connections (and, for sshd,
/// sends its banner), optionally from inside namespace `ns`.
pub(super) fn wait_port(ns: Option<&str>, addr: Ipv4Addr, port: u16, ssh: bool) -> Result<()> {
    let ns_path = ns.map(|n| Path::new("/run/netns").join(n));
    let target = SocketAddr::from((addr, port));
    let ok = std::thread::scope(|s| {
        s.spawn(|| -> Result<bool> {
            if let Some(p) = &ns_path {
                let f = fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
                // SAFETY: setns on this thread only, with an fd we own.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns {}: {}", p.display(), std::io::Error::last_os_error());
                }
            }
            Ok(util::wait_for(SSHD_TIMEOUT, Duration::from_millis(50), || {
                let mut c = TcpStream::connect_timeout(&target, Duration::from_secs(1)).ok()?;
                if !ssh {
                    return Some(());
                }
                c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
                let mut buf = [0u8; 8];
                c.read_exact(&mut buf).ok()?;
                buf.starts_with(b"SSH-").then_some(())
            })
            .is_some())
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow!("readiness thread panicked")))
    })?;
    if !ok {
        bail!("{target} did not answer within {SSHD_TIMEOUT:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_coverage() {
        assert!(covers("10.0.0.0/8", 10, 213, 5));
        assert!(covers("10.213.5.0/24", 10, 213, 5));
        assert!(!covers("10.213.6.0/24", 10, 213, 5));
        assert!(!covers("0.0.0.0/0", 10, 213, 5), "default route excepted");
        assert!(
            !covers("10.213.5.7/32", 10, 213, 5),
            "longer prefixes are checked by address"
        );
        assert!(!covers("dev", 10, 213, 5));
    }
}
