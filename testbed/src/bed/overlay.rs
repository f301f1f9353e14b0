//! Host root filesystems: an overlay over the golden tree per host, prepared
//! (hostname, keys, sshd and apt configuration) before it runs.

use super::ssh::SSHD_CONFIG;
use super::Testbed;
use crate::util;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

impl Testbed {
    /// Mounts an overlay over `golden` at `<dir>/root` (upper and work in
    /// `dir`).
    pub(super) fn mount_overlay(&self, golden: &Path, dir: &Path) -> Result<PathBuf> {
        let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("root"));
        for d in [&upper, &work, &root] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        for p in [golden, &upper, &work] {
            let s = p.to_string_lossy();
            if s.contains(',') || s.contains(':') {
                bail!(
                    "path {} cannot be used in overlay options (',' or ':')",
                    p.display()
                );
            }
        }
        util::run(
            util::cmd("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!(
                    "lowerdir={},upperdir={},workdir={}",
                    golden.display(),
                    upper.display(),
                    work.display()
                ))
                .arg(&root),
        )?;
        self.record(|s| s.mounts.push(root.clone()))?;
        Ok(root)
    }

    /// Writes the per-host files into a fresh overlay root.
    pub(super) fn prepare_root(
        &self,
        root: &Path,
        hostname: &str,
        addr: Option<Ipv4Addr>,
        apt_url: Option<&str>,
    ) -> Result<()> {
        let dir = self.state_dir();
        util::write_file(
            &root.join("etc/hostname"),
            format!("{hostname}\n").as_bytes(),
            0o644,
        )?;
        let mut hosts = String::from("127.0.0.1\tlocalhost\n");
        if addr.is_none() {
            let _ = writeln!(hosts, "127.0.1.1\t{hostname}");
        }
        // Every host of the bridge resolves every other by name.
        for (n, a) in self.lock().hosts.iter().map(|h| (h.name.clone(), h.addr)) {
            if addr.is_some() {
                let _ = writeln!(hosts, "{a}\t{n}");
            }
        }
        util::write_file(&root.join("etc/hosts"), hosts.as_bytes(), 0o644)?;
        let machine_id = format!(
            "{:016x}{:016x}\n",
            util::fnv64(format!("{}{}", dir.display(), hostname).as_bytes(), 0),
            util::fnv64(
                format!("{hostname}{:?}", std::time::SystemTime::now()).as_bytes(),
                0
            )
        );
        util::write_file(&root.join("etc/machine-id"), machine_id.as_bytes(), 0o444)?;
        let hk = fs::read(dir.join("ssh_host_ed25519_key"))?;
        let hkp = fs::read(dir.join("ssh_host_ed25519_key.pub"))?;
        util::write_file(&root.join("etc/ssh/ssh_host_ed25519_key"), &hk, 0o600)?;
        util::write_file(&root.join("etc/ssh/ssh_host_ed25519_key.pub"), &hkp, 0o644)?;
        util::write_file(
            &root.join("etc/ssh/sshd_config.d/swh-deploy-testbed.conf"),
            SSHD_CONFIG.as_bytes(),
            0o644,
        )?;
        let pubkey = fs::read(dir.join("id_ed25519.pub"))?;
        fs::create_dir_all(root.join("root/.ssh"))?;
        fs::set_permissions(
            root.join("root/.ssh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        util::write_file(&root.join("root/.ssh/authorized_keys"), &pubkey, 0o600)?;
        if let Some(url) = apt_url {
            util::write_file(
                &root.join("etc/apt/sources.list.d/swh-deploy-testbed.list"),
                format!("deb [trusted=yes] {url} ./\n").as_bytes(),
                0o644,
            )?;
        }
        Ok(())
    }
}

/// Each booted container uses a dozen inotify instances (systemd, journald,
/// udev-less services), all counted against root: the kernel's default of 128
/// instances per user stops the 10th container's services with "Failed to
/// create inotify object: Too many open files". Raise the limits (never
/// lower them).
pub(super) fn raise_inotify_limits() {
    for (knob, want) in [
        ("/proc/sys/fs/inotify/max_user_instances", 8192u64),
        ("/proc/sys/fs/inotify/max_user_watches", 524288u64),
    ] {
        let now: u64 = fs::read_to_string(knob)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if now < want {
            let _ = fs::write(knob, want.to_string());
        }
    }
}
