//! ssh: the hosts' sshd (chroot hosts) and its configuration, the client
//! files (`ssh_config`, `known_hosts`, key, `hosts.toml`) and the client
//! commands.

use super::{Host, Proc, Site, Testbed};
use crate::util;
use anyhow::Result;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

impl Testbed {
    /// The command prefix that runs a program where the hosts are
    /// reachable: empty in bridge modes, `ip netns exec NS` in loopback mode.
    pub fn exec_prefix(&self) -> Vec<String> {
        match &self.lock().loopback_netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            None => Vec::new(),
        }
    }

    /// A command running `argv` where the hosts are reachable (in loopback
    /// mode, inside the test bed's network namespace). Panics if `argv` is
    /// empty.
    pub fn exec_command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        assert!(!argv.is_empty(), "exec_command needs a program");
        let prefix = self.exec_prefix();
        if prefix.is_empty() {
            let mut c = Command::new(argv[0].as_ref());
            c.args(&argv[1..]);
            c
        } else {
            let mut c = Command::new(&prefix[0]);
            c.args(&prefix[1..]);
            c.args(argv);
            c
        }
    }

    /// `ssh -F <ssh_config> HOST REMOTE_COMMAND`, run where hosts are
    /// reachable. `remote_command` is a shell command line for the host.
    pub fn ssh_command(&self, host: &str, remote_command: &str) -> Command {
        let cfg = self.ssh_config_path();
        self.exec_command(&[
            OsStr::new("ssh"),
            OsStr::new("-F"),
            cfg.as_os_str(),
            OsStr::new(host),
            OsStr::new("--"),
            OsStr::new(remote_command),
        ])
    }

    /// sshd in a chroot in the host's namespaces: own network (`ip netns
    /// exec`), mount, UTS and PID namespaces (`unshare`), fresh proc, sys,
    /// dev, devpts and /run.
    pub(super) fn spawn_chroot_sshd(
        &self,
        role: &str,
        ns: &str,
        root: &Path,
        hostname: &str,
    ) -> Result<Proc> {
        self.spawn(
            role,
            util::cmd("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "unshare",
                    "-m",
                    "-u",
                    "-p",
                    "--fork",
                    "--kill-child",
                ])
                .args(["/bin/sh", "-c", CHROOT_SCRIPT, "sh"])
                .arg(root)
                .arg(hostname),
        )
    }

    pub(super) fn write_client_files(&self) -> Result<()> {
        let st = self.lock().clone();
        let dir = &st.state_dir;
        let mut cfg = String::from(
            "# ssh client config of the swh-deploy test bed; use: ssh -F THIS_FILE HOST\n",
        );
        for h in &st.hosts {
            let _ = writeln!(cfg, "Host {}\n  HostName {}", h.name, h.addr);
        }
        let _ = write!(
            cfg,
            "Host *\n  User root\n  Port {port}\n  IdentityFile {id}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  \
             CheckHostIP no\n  BatchMode yes\n  KexAlgorithms curve25519-sha256\n  ConnectTimeout 10\n  \
             LogLevel ERROR\n  ControlMaster no\n  ControlPath none\n",
            port = st.relay_port.unwrap_or(22),
            id = dir.join("id_ed25519").display(),
            kh = dir.join("known_hosts").display(),
        );
        util::write_atomic(&dir.join("ssh_config"), cfg.as_bytes(), 0o644)?;
        let key = fs::read_to_string(dir.join("ssh_host_ed25519_key.pub"))?;
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let kh = format!("* {}\n", key.join(" "));
        util::write_atomic(&dir.join("known_hosts"), kh.as_bytes(), 0o644)?;
        let site = Site {
            name: st.name.clone(),
            mode: st.mode,
            ssh_config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            identity: dir.join("id_ed25519"),
            exec_prefix: self.exec_prefix(),
            apt_url: st.apt_url.clone(),
            hosts: st
                .hosts
                .iter()
                .map(|h| Host {
                    name: h.name.clone(),
                    addr: h.addr,
                })
                .collect(),
        };
        let text = format!(
            "# swh-deploy test bed {:?}: its hosts, reachable with `ssh -F ssh_config HOST`\n# (written by `testbed up`; see docs/testbed.md)\n{}",
            st.name,
            toml::to_string(&site)?
        );
        util::write_atomic(&dir.join("hosts.toml"), text.as_bytes(), 0o644)
    }
}

/// sshd settings of every host (an `sshd_config.d` drop-in: first value
/// wins over Debian's `sshd_config`).
pub(super) const SSHD_CONFIG: &str = "\
# swh-deploy test bed: key-only root login, many parallel connections.
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxStartups 1024
MaxSessions 128
PrintMotd no
";

/// Runs in the host's fresh mount/UTS/PID namespaces; `$1` = root, `$2` =
/// hostname.
pub(super) const CHROOT_SCRIPT: &str = r#"set -eu
R=$1
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=755,size=16m dev "$R/dev"
for d in null zero full random urandom tty; do
  : > "$R/dev/$d"
  mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -sf pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 shm "$R/dev/shm"
mount -t tmpfs -o mode=755 run "$R/run"
mkdir -p "$R/run/sshd" "$R/run/lock"
hostname "$2"
exec chroot "$R" /usr/sbin/sshd -D -e
"#;
