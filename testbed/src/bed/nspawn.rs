//! systemd hosts: `systemd-nspawn -b` in the host's namespace, waiting for
//! boot, running commands inside the container.

use super::cgroup::CGROUP_EXEC;
use super::{Proc, Testbed};
use crate::util;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

impl Testbed {
    /// systemd-nspawn booting the host's root inside its network namespace,
    /// in cgroups of its own.
    pub(super) fn spawn_nspawn(
        &self,
        host: &str,
        ns: &str,
        root: &Path,
        dir: &Path,
        cg_roots: &[PathBuf],
    ) -> Result<Proc> {
        let name = self.name();
        let mut cgs = Vec::new();
        for r in cg_roots {
            let top = r.join(format!("swh-deploy-testbed-{name}"));
            let cg = top.join(host);
            for level in [&top, &cg] {
                if !level.exists() {
                    fs::create_dir(level)
                        .with_context(|| format!("creating cgroup {}", level.display()))?;
                    if level == &top {
                        self.record(|s| s.cgroups.push(top.clone()))?;
                    }
                    // cpuset (v1) needs cpus and mems before it takes tasks.
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        if let Ok(v) = fs::read_to_string(level.parent().unwrap_or(r).join(f)) {
                            let _ = fs::write(level.join(f), v.trim());
                        }
                    }
                }
            }
            cgs.push(cg);
        }
        let hostname_file = dir.join("hosts").join(host).join("hostname");
        fs::write(&hostname_file, format!("{host}\n"))?;
        let mut c = util::cmd("/bin/sh");
        c.args(["-c", CGROUP_EXEC, "sh"])
            .arg(cgs.len().to_string())
            .args(&cgs)
            .args(["systemd-nspawn", "-q", "-D"])
            .arg(root)
            .args([
                "-b",
                "--register=no",
                "--keep-unit",
                "--settings=no",
                "--link-journal=no",
            ])
            .args(["--resolv-conf=off", "--timezone=off", "--console=read-only"])
            .arg(format!("--machine={host}"))
            .arg(format!("--network-namespace-path=/run/netns/{ns}"))
            .arg(format!(
                "--bind-ro={}:/etc/hostname",
                hostname_file.display()
            ));
        self.spawn(&format!("nspawn:{host}"), &mut c)
    }

    /// Waits (at most 120 s) until systemd in `host` has finished booting;
    /// warns when it came up degraded.
    pub(super) fn wait_booted(&self, host: &str) -> Result<()> {
        let state = self
            .in_container_status(
                host,
                &["timeout", "120", "systemctl", "is-system-running", "--wait"],
            )?
            .trim()
            .to_string();
        match state.as_str() {
            "running" => Ok(()),
            "degraded" => {
                let failed = self
                    .in_container_status(host, &["systemctl", "--failed", "--no-legend"])
                    .unwrap_or_default();
                eprintln!(
                    "testbed: warning: host {host} booted degraded: {}",
                    failed.trim()
                );
                Ok(())
            }
            other => {
                bail!("host {host}: systemd did not finish booting within 120 s (state {other:?})")
            }
        }
    }

    /// Runs a command inside a systemd host; returns its stdout whatever
    /// its exit status.
    pub(super) fn in_container_status(&self, host: &str, argv: &[&str]) -> Result<String> {
        let mut c = self.nsenter(host)?;
        c.args(argv).stdin(Stdio::null()).stderr(Stdio::null());
        let shown = util::render(&c);
        let out = c
            .output()
            .with_context(|| format!("cannot run `{shown}`"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command inside a systemd host (all its namespaces).
    pub(super) fn in_container(&self, host: &str, argv: &[&str]) -> Result<String> {
        util::run(self.nsenter(host)?.args(argv))
    }

    /// `nsenter` into a systemd host's namespaces (mount, UTS, IPC,
    /// network, PID).
    pub(super) fn nsenter(&self, host: &str) -> Result<Command> {
        let role = format!("nspawn:{host}");
        let p = self
            .lock()
            .procs
            .iter()
            .find(|p| p.role == role)
            .cloned()
            .ok_or_else(|| anyhow!("host {host} has no running container"))?;
        let leader = container_leader(p.pid)
            .ok_or_else(|| anyhow!("host {host}: container init not found"))?;
        let mut c = util::cmd("nsenter");
        c.args(["-t", &leader.to_string(), "-m", "-u", "-i", "-n", "-p"]);
        Ok(c)
    }
}

/// The container's PID 1 among nspawn's descendants (NSpid ends with 1).
pub(super) fn container_leader(nspawn: i32) -> Option<i32> {
    util::process_tree(nspawn).into_iter().skip(1).find(|p| {
        fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("NSpid:")).map(|l| {
                    l.split_whitespace().count() > 2 && l.split_whitespace().last() == Some("1")
                })
            })
            .unwrap_or(false)
    })
}
