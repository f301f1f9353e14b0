//! A test bed: its hosts, its network, its processes, its state directory.

use crate::golden;
use crate::util::{self, Lock};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

mod cgroup;
mod faults;
mod hosts;
mod latency;
mod network;
mod nspawn;
mod overlay;
mod ssh;

use cgroup::remove_cgroup;

/// Root of the default state directories: `/run/swh-deploy-testbed/<name>`.
pub const RUN_DIR: &str = "/run/swh-deploy-testbed";

/// The private range the bridges' subnets are taken from (one /24 per test
/// bed); used only inside namespaces the test bed creates.
pub const SUBNET_BASE: [u8; 2] = [10, 213];

/// The TCP port the local apt repository is served on.
pub const APT_PORT: u16 = 8080;

/// How long `up` waits for every sshd to answer.
const SSHD_TIMEOUT: Duration = Duration::from_secs(120);

/// Name of the nftables table the test bed owns in each namespace.
const NFT_TABLE: &str = "swh_deploy_testbed";

/// What kind of hosts a test bed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Hosts on a bridge, each an overlay root in its own namespaces running
    /// only sshd (`unshare` + `chroot`): light and quick.
    Chroot,
    /// Hosts on a bridge booted with systemd (`systemd-nspawn -b`): real
    /// `systemctl`, journald, cron.service.
    Systemd,
    /// N addresses `127.1.x.y` served by one sshd (in one overlay root) in a
    /// private network namespace with only `lo`; clients run in that
    /// namespace (see [`Testbed::exec_command`]).
    Loopback,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Chroot => "chroot",
            Mode::Systemd => "systemd",
            Mode::Loopback => "loopback",
        })
    }
}

/// A fault injected into a host with [`Testbed::cut`], [`Testbed::drop_packets`]
/// or [`Testbed::refuse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Link down (loopback mode: nftables drop): connects hang until timeout.
    Cut,
    /// nftables drop: connects hang until timeout.
    Drop,
    /// sshd stopped (loopback mode: nftables reject with tcp reset):
    /// connection refused at once.
    Refuse,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Unique name of the test bed (`[a-z0-9-]`, at most 24 characters);
    /// `None`: a fresh unique name (`t<pid>-<n>`).
    pub name: Option<String>,
    /// Number of hosts (bridge modes). Ignored when `loopback` is set.
    pub hosts: usize,
    /// Boot hosts with systemd (`systemd-nspawn -b`).
    pub systemd: bool,
    /// Loopback mode with this many hosts instead of bridge hosts.
    pub loopback: Option<usize>,
    /// Build (cached) and serve the local apt repository
    /// ([`crate::aptrepo::VERSIONS`]) and point hosts' apt sources at it.
    pub apt_repo: bool,
    /// Versions the apt repository holds at start (both packages at each
    /// version); change them later with [`Testbed::publish`]. Default:
    /// every version of [`crate::aptrepo::VERSIONS`].
    pub apt_versions: Vec<String>,
    /// Host names are `<host_prefix><i>`, i from 1.
    pub host_prefix: String,
    /// State directory; `None`: `/run/swh-deploy-testbed/<name>`.
    pub state_dir: Option<PathBuf>,
    /// Connect the hosts to the shared real Puppet server `pergamon`
    /// (bridge modes; see [`crate::puppet`]).
    pub puppet: bool,
    /// Latency mode: a delaying TCP relay ([`crate::relay`]) in front of
    /// every host's sshd, which the ssh_config then goes through. `None`:
    /// hosts are reached directly.
    pub latency: Option<crate::relay::Latency>,
    /// The `testbed` program that runs the relays (`testbed relay`);
    /// `None`: this process's own executable (right for the `testbed`
    /// binary; a test passes `env!("CARGO_BIN_EXE_testbed")`).
    pub relay_program: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: None,
            hosts: 4,
            systemd: false,
            loopback: None,
            apt_repo: false,
            apt_versions: crate::aptrepo::VERSIONS
                .iter()
                .map(|v| v.to_string())
                .collect(),
            host_prefix: "host".into(),
            state_dir: None,
            puppet: false,
            latency: None,
            relay_program: None,
        }
    }
}

/// One host of a test bed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its name: an alias in the ssh client config and its hostname.
    pub name: String,
    /// Its address (sshd on port 22).
    pub addr: Ipv4Addr,
}

/// A process the test bed started.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Proc {
    role: String,
    pid: i32,
    start: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HostState {
    name: String,
    addr: Ipv4Addr,
    /// Its network namespace (bridge modes).
    netns: Option<String>,
    /// The root-namespace end of its veth (bridge modes).
    veth: Option<String>,
    /// Where its overlay root is mounted (bridge modes).
    root: Option<PathBuf>,
    fault: Option<Fault>,
}

/// Everything a test bed made, saved after each step so `down` (even from
/// another process) undoes exactly that.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    name: String,
    mode: Mode,
    state_dir: PathBuf,
    /// The process that owns the test bed (library use): when it is dead,
    /// the next `Testbed::up` removes the test bed.
    owner: Option<Proc>,
    golden: Option<PathBuf>,
    bridge: Option<String>,
    bridge_addr: Option<Ipv4Addr>,
    /// The loopback mode's namespace.
    loopback_netns: Option<String>,
    apt_url: Option<String>,
    hosts: Vec<HostState>,
    procs: Vec<Proc>,
    mounts: Vec<PathBuf>,
    netns: Vec<String>,
    links: Vec<String>,
    cgroups: Vec<PathBuf>,
    /// Latency mode: the relays' port, which the ssh_config uses.
    #[serde(default)]
    relay_port: Option<u16>,
}

/// The site description written to `hosts.toml`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Site {
    /// Test bed name.
    pub name: String,
    /// Kind of hosts.
    pub mode: Mode,
    /// ssh client config to use with `ssh -F`.
    pub ssh_config: PathBuf,
    /// Pinned known_hosts.
    pub known_hosts: PathBuf,
    /// Client private key.
    pub identity: PathBuf,
    /// Prefix to run a client where the hosts are reachable (empty in bridge
    /// modes; `ip netns exec NS` in loopback mode).
    pub exec_prefix: Vec<String>,
    /// URL of the local apt repository, if served.
    pub apt_url: Option<String>,
    /// The hosts.
    pub hosts: Vec<Host>,
}

/// A running test bed. Dropping a test bed started by [`Testbed::up`] stops
/// it ([`Testbed::down`]) unless [`Testbed::keep`] was called.
pub struct Testbed {
    state: Mutex<State>,
    hosts: Vec<Host>,
    owned: bool,
    done: bool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 24
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
    {
        bail!("invalid test bed name {name:?}: use 1-24 characters among [a-z0-9-], not starting with '-'");
    }
    Ok(())
}

/// The default state directory of the test bed `name`.
pub fn default_state_dir(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(name)
}

/// Short id (8 hex digits) used in interface names (at most 15 bytes).
fn short_id(name: &str) -> String {
    format!("{:08x}", util::fnv64(name.as_bytes(), 0) as u32)
}

impl Testbed {
    /// Starts a test bed. On any error everything already started is
    /// stopped again before the error is returned.
    pub fn up(opts: &Options) -> Result<Testbed> {
        let name = match &opts.name {
            Some(n) => n.clone(),
            None => format!(
                "t{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
        };
        validate_name(&name)?;
        if !opts
            .host_prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || opts.host_prefix.is_empty()
        {
            bail!("invalid host prefix {:?}: use [a-z0-9-]", opts.host_prefix);
        }
        let mode = match (opts.loopback, opts.systemd) {
            (Some(_), true) => bail!("--loopback and --systemd exclude each other"),
            (Some(_), false) => Mode::Loopback,
            (None, true) => Mode::Systemd,
            (None, false) => Mode::Chroot,
        };
        let count = opts.loopback.unwrap_or(opts.hosts);
        if count == 0 {
            bail!("a test bed needs at least one host");
        }
        if mode != Mode::Loopback && count > 250 {
            bail!("at most 250 bridge hosts (asked for {count}); use --loopback for more");
        }
        if count > 250 * 250 {
            bail!("at most {} loopback hosts (asked for {count})", 250 * 250);
        }
        reap_stale();
        let state_dir = opts
            .state_dir
            .clone()
            .unwrap_or_else(|| default_state_dir(&name));
        if state_dir.join("state.toml").exists() {
            bail!(
                "test bed {name:?} is already up (state in {}); run `testbed down` first",
                state_dir.display()
            );
        }
        fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let state_dir = state_dir.canonicalize()?;
        let me = std::process::id() as i32;
        let state = State {
            name: name.clone(),
            mode,
            state_dir: state_dir.clone(),
            owner: util::start_time(me).map(|start| Proc {
                role: "owner".into(),
                pid: me,
                start,
            }),
            golden: None,
            bridge: None,
            bridge_addr: None,
            loopback_netns: None,
            apt_url: None,
            hosts: Vec::new(),
            procs: Vec::new(),
            mounts: Vec::new(),
            netns: Vec::new(),
            links: Vec::new(),
            cgroups: Vec::new(),
            relay_port: None,
        };
        let mut tb = Testbed {
            state: Mutex::new(state),
            hosts: Vec::new(),
            owned: true,
            done: false,
        };
        tb.save()?;
        match tb.bring_up(opts, count) {
            Ok(()) => {
                let hosts: Vec<Host> = tb
                    .lock()
                    .hosts
                    .iter()
                    .map(|h| Host {
                        name: h.name.clone(),
                        addr: h.addr,
                    })
                    .collect();
                tb.hosts = hosts;
                if opts.puppet {
                    if let Err(e) = crate::puppet::attach(&tb) {
                        if let Err(e2) = tb.down() {
                            eprintln!("testbed {name}: cleaning up after a failed start: {e2:#}");
                        }
                        return Err(e.context(format!(
                            "starting test bed {name:?}: connecting its hosts to the Puppet server"
                        )));
                    }
                }
                Ok(tb)
            }
            Err(e) => {
                if let Err(e2) = tb.down() {
                    eprintln!("testbed {name}: cleaning up after a failed start: {e2:#}");
                }
                Err(e.context(format!("starting test bed {name:?}")))
            }
        }
    }

    /// Attaches to a running test bed from its state directory (for the CLI
    /// and for other processes). Dropping the result does not stop it.
    pub fn attach(state_dir: &Path) -> Result<Testbed> {
        let path = state_dir.join("state.toml");
        let text = fs::read_to_string(&path)
            .with_context(|| format!("no test bed state in {} (is it up?)", state_dir.display()))?;
        let state: State =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let hosts = state
            .hosts
            .iter()
            .map(|h| Host {
                name: h.name.clone(),
                addr: h.addr,
            })
            .collect();
        Ok(Testbed {
            state: Mutex::new(state),
            hosts,
            owned: false,
            done: false,
        })
    }

    /// Makes this test bed outlive this value (and its owning process): it
    /// is stopped only by an explicit [`Testbed::down`] (`testbed down`).
    pub fn keep(&mut self) -> Result<()> {
        self.owned = false;
        self.lock().owner = None;
        self.save()?;
        // A kept test bed keeps the Puppet server up until it is down.
        crate::puppet::reregister(self)
    }

    /// The test bed's name.
    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    /// The kind of hosts.
    pub fn mode(&self) -> Mode {
        self.lock().mode
    }

    /// The hosts, in order (`host1`, `host2`, ...).
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| anyhow!("test bed {}: no host {name:?}", self.name()))
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.lock().state_dir.clone()
    }

    /// The ssh client config (`ssh -F PATH HOST`): user root, the client
    /// key, the pinned known_hosts, strict host key checking, batch mode,
    /// curve25519 key exchange, one `Host` alias per host.
    pub fn ssh_config_path(&self) -> PathBuf {
        self.state_dir().join("ssh_config")
    }

    /// The pinned known_hosts (one wildcard line with the hosts' key).
    pub fn known_hosts_path(&self) -> PathBuf {
        self.state_dir().join("known_hosts")
    }

    /// The client's private key (authorized for root on every host).
    pub fn identity_path(&self) -> PathBuf {
        self.state_dir().join("id_ed25519")
    }

    /// The site description (`hosts.toml`, see [`Site`]).
    pub fn site_path(&self) -> PathBuf {
        self.state_dir().join("hosts.toml")
    }

    /// URL of the local apt repository, when served
    /// (`http://BRIDGE_ADDR:8080/debian`, loopback mode
    /// `http://127.0.0.1:8080/debian`); hosts have
    /// `deb [trusted=yes] URL ./` as their only apt source.
    pub fn apt_url(&self) -> Option<String> {
        self.lock().apt_url.clone()
    }

    /// Where a host's root filesystem is mounted (overlay; bridge modes).
    /// In loopback mode all hosts share one root, returned for every host.
    pub fn host_root(&self, host: &str) -> Result<PathBuf> {
        self.host(host)?;
        let st = self.lock();
        if st.mode == Mode::Loopback {
            return Ok(st.state_dir.join("loopback/root"));
        }
        st.hosts
            .iter()
            .find(|h| h.name == host)
            .and_then(|h| h.root.clone())
            .ok_or_else(|| anyhow!("host {host:?} has no root"))
    }

    /// Human-readable status: hosts, faults, processes alive.
    pub fn status(&self) -> String {
        let st = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "test bed {} ({} mode), state {}",
            st.name,
            st.mode,
            st.state_dir.display()
        );
        if let Some(b) = &st.bridge {
            let _ = writeln!(
                out,
                "bridge {b} {}",
                st.bridge_addr.map(|a| a.to_string()).unwrap_or_default()
            );
        }
        if let Some(ns) = &st.loopback_netns {
            let _ = writeln!(
                out,
                "namespace {ns} (run clients with `testbed exec -- CMD`)"
            );
        }
        if let Some(u) = &st.apt_url {
            let _ = writeln!(out, "apt repository {u}");
        }
        for h in &st.hosts {
            let fault = match h.fault {
                Some(f) => format!(" fault={f:?}").to_lowercase(),
                None => String::new(),
            };
            let _ = writeln!(out, "host {} {}{}", h.name, h.addr, fault);
        }
        for p in &st.procs {
            let alive = if util::alive(p.pid, p.start) {
                "running"
            } else {
                "dead"
            };
            let _ = writeln!(out, "process {} pid {} {alive}", p.role, p.pid);
        }
        out
    }

    /// Stops everything the test bed started: processes by pid (with their
    /// children), mounts, namespaces, links, cgroups, then its state
    /// directory. Safe to run twice.
    pub fn down(&mut self) -> Result<()> {
        self.done = true;
        let dir = self.state_dir();
        let _lock = Lock::acquire(&lock_path(&dir), Duration::from_secs(120))?;
        let mut st = self.lock().clone();
        let mut errors = Vec::new();
        // Processes, all at once; systemd containers get an orderly
        // poweroff request (nspawn turns SIGTERM into one), SIGKILL after 3 s.
        let roots: Vec<(i32, u64)> = st.procs.iter().map(|p| (p.pid, p.start)).collect();
        util::stop_all(&roots, Duration::from_secs(3));
        for p in &st.procs {
            if util::alive(p.pid, p.start) {
                errors.push(format!("process {} (pid {}) did not stop", p.role, p.pid));
            }
        }
        st.procs.clear();
        for m in st.mounts.iter().rev() {
            if util::mounts_under(m).first() == Some(m) || util::mounts_under(m).contains(m) {
                let r = util::run(util::cmd("umount").arg(m));
                if let Err(e) = r {
                    // Busy (a process of a host outlived us): detach it.
                    let r2 = util::run(util::cmd("umount").arg("-l").arg(m));
                    if r2.is_err() {
                        errors.push(format!("{e:#}"));
                    }
                }
            }
        }
        st.mounts.clear();
        for l in st.links.iter().rev() {
            if Path::new("/sys/class/net").join(l).exists() {
                // A veth also goes away with its peer's namespace.
                if let Err(e) = util::run(util::cmd("ip").args(["link", "delete", l])) {
                    if Path::new("/sys/class/net").join(l).exists() {
                        errors.push(format!("{e:#}"));
                    }
                }
            }
        }
        st.links.clear();
        for ns in st.netns.iter().rev() {
            if Path::new("/run/netns").join(ns).exists() {
                if let Err(e) = util::run(util::cmd("ip").args(["netns", "delete", ns])) {
                    errors.push(format!("{e:#}"));
                }
            }
        }
        st.netns.clear();
        for cg in st.cgroups.iter().rev() {
            remove_cgroup(cg);
        }
        st.cgroups.clear();
        *self.lock() = st;
        if !errors.is_empty() {
            let _ = self.save();
            bail!(
                "test bed {}: down left things behind: {}",
                self.name(),
                errors.join("; ")
            );
        }
        // Only remove the state directory when nothing is mounted inside.
        golden::remove_tree(&dir)?;
        let _ = fs::remove_file(lock_path(&dir));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> Result<()> {
        let st = self.lock().clone();
        let text = toml::to_string(&st).context("serialising the test bed state")?;
        util::write_atomic(&st.state_dir.join("state.toml"), text.as_bytes(), 0o600)
    }

    fn record(&self, f: impl FnOnce(&mut State)) -> Result<()> {
        f(&mut self.lock());
        self.save()
    }

    fn bring_up(&mut self, opts: &Options, count: usize) -> Result<()> {
        let (dir, mode, name) = {
            let st = self.lock();
            (st.state_dir.clone(), st.mode, st.name.clone())
        };
        let golden = golden::ensure()?;
        self.record(|s| s.golden = Some(golden.clone()))?;
        // Keys: one client key, one host key shared by all hosts.
        for key in ["id_ed25519", "ssh_host_ed25519_key"] {
            util::run(
                util::cmd("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                    .arg(format!("swh-deploy-testbed-{name}"))
                    .arg("-f")
                    .arg(dir.join(key)),
            )?;
        }
        let names: Vec<String> = (1..=count)
            .map(|i| format!("{}{i}", opts.host_prefix))
            .collect();
        let apt_dir = if opts.apt_repo {
            let versions: Vec<&str> = opts.apt_versions.iter().map(|s| s.as_str()).collect();
            let www = dir.join("www");
            fs::create_dir_all(&www)?;
            self.publish_in(&www, &versions)?;
            Some(www)
        } else {
            None
        };
        match mode {
            Mode::Loopback => self.up_loopback(&golden, &names, apt_dir.as_deref())?,
            Mode::Chroot | Mode::Systemd => self.up_bridge(&golden, &names, apt_dir.as_deref())?,
        }
        if let Some(latency) = opts.latency {
            self.start_relays(latency, opts.relay_program.as_deref())?;
        }
        self.write_client_files()?;
        // End to end: one real ssh login.
        let first = self.lock().hosts[0].name.clone();
        let out = self
            .ssh_command(&first, "echo ok")
            .stdin(Stdio::null())
            .output()
            .context("running ssh")?;
        if !String::from_utf8_lossy(&out.stdout).contains("ok") {
            bail!(
                "ssh to {first} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The bridge and its address (bridge modes).
    pub(crate) fn bridge(&self) -> Option<(String, Ipv4Addr)> {
        let st = self.lock();
        Some((st.bridge.clone()?, st.bridge_addr?))
    }

    /// Records a link that `down` deletes.
    pub(crate) fn record_link(&self, link: &str) -> Result<()> {
        self.record(|s| s.links.push(link.to_string()))
    }

    /// The owning process (pid, start time), if any.
    pub(crate) fn owner(&self) -> Option<(i32, u64)> {
        self.lock().owner.as_ref().map(|p| (p.pid, p.start))
    }

    /// Makes the apt repository hold exactly `versions` of both packages
    /// (built with [`crate::aptrepo::build_cached`]); hosts see the change
    /// at their next `apt-get update`. Fails if the test bed serves no
    /// repository.
    pub fn publish(&self, versions: &[&str]) -> Result<()> {
        if self.lock().apt_url.is_none() {
            bail!("test bed {} serves no apt repository", self.name());
        }
        self.publish_in(&self.state_dir().join("www"), versions)
    }

    /// Points `<www>/debian` (atomically) at a cached repository holding
    /// `versions`.
    fn publish_in(&self, www: &Path, versions: &[&str]) -> Result<()> {
        let repo = crate::aptrepo::build_cached(versions)?;
        let tmp = www.join(".debian.tmp");
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&repo.dir, &tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        fs::rename(&tmp, www.join("debian"))
            .with_context(|| format!("publishing {}", www.join("debian").display()))?;
        Ok(())
    }

    /// Starts a process in its own process group, output to
    /// `logs/<role>.log`, and records its pid.
    fn spawn(&self, role: &str, cmd: &mut Command) -> Result<Proc> {
        let logs = self.state_dir().join("logs");
        fs::create_dir_all(&logs)?;
        let log = fs::File::create(logs.join(format!("{}.log", role.replace(':', "-"))))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let shown = util::render(cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{shown}`"))?;
        let pid = child.id() as i32;
        // The child is reaped by pid in `down` (or by init once we exit).
        std::mem::forget(child);
        let start = util::start_time(pid).unwrap_or(0);
        let p = Proc {
            role: role.into(),
            pid,
            start,
        };
        self.record(|s| s.procs.push(p.clone()))?;
        Ok(p)
    }
}

/// Set to keep the test bed of a failing (panicking) test for inspection.
pub const KEEP_ENV: &str = "SWH_DEPLOY_TESTBED_KEEP";

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.owned && !self.done {
            if std::thread::panicking() && std::env::var_os(KEEP_ENV).is_some() {
                let dir = self.state_dir();
                if self.keep().is_ok() {
                    eprintln!(
                        "testbed: {KEEP_ENV} is set: keeping test bed {} of the failed test; \
                         remove it with `testbed --state-dir {} down`",
                        self.name(),
                        dir.display()
                    );
                    return;
                }
            }
            if let Err(e) = self.down() {
                eprintln!("testbed: down failed: {e:#}");
            }
        }
    }
}

fn lock_path(state_dir: &Path) -> PathBuf {
    let name = state_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    state_dir.with_file_name(format!(".{name}.lock"))
}

/// Takes down the test beds under `/run/swh-deploy-testbed` whose owning
/// process is gone (a test killed before its guard could run); returns
/// their names. Test beds started by the CLI (`keep`) are never touched.
/// [`Testbed::up`] calls it first.
pub fn reap_stale() -> Vec<String> {
    let mut reaped = Vec::new();
    let Ok(rd) = fs::read_dir(RUN_DIR) else {
        return reaped;
    };
    for e in rd.flatten() {
        let dir = e.path();
        let Ok(text) = fs::read_to_string(dir.join("state.toml")) else {
            continue;
        };
        let Ok(state) = toml::from_str::<State>(&text) else {
            continue;
        };
        let Some(owner) = &state.owner else {
            continue;
        };
        if util::alive(owner.pid, owner.start) {
            continue;
        }
        if let Ok(mut tb) = Testbed::attach(&dir) {
            eprintln!(
                "testbed: removing stale test bed {} (owner pid {} is gone)",
                state.name, owner.pid
            );
            match tb.down() {
                Ok(()) => reaped.push(state.name.clone()),
                Err(e) => eprintln!("testbed: {e:#}"),
            }
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: a `Testbed` may be shared between threads.
    const _: fn() = || {
        fn shared<T: Send + Sync>(_: Option<T>) {}
        shared::<Testbed>(None);
    };

    #[test]
    fn names_are_checked() {
        for ok in ["default", "t123-4", "a"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "Upper",
            "a b",
            "a/b",
            "x".repeat(25).as_str(),
            "a_b",
        ] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid test bed name"), "{bad}: {e}");
        }
    }

    #[test]
    fn interface_names_fit_in_15_bytes() {
        let id = short_id("a-very-long-test-bed-nam");
        assert_eq!(id.len(), 8);
        assert!(format!("tb{id}h250").len() <= 15);
        assert_ne!(short_id("a"), short_id("b"));
    }

    #[test]
    fn bad_options_fail_before_anything_is_made() {
        let before = fs::read_dir(RUN_DIR).map(|d| d.count()).unwrap_or(0);
        for (opts, msg) in [
            (
                Options {
                    name: Some("Bad Name".into()),
                    ..Options::default()
                },
                "invalid test bed name",
            ),
            (
                Options {
                    loopback: Some(2),
                    systemd: true,
                    ..Options::default()
                },
                "exclude each other",
            ),
            (
                Options {
                    hosts: 0,
                    ..Options::default()
                },
                "at least one host",
            ),
            (
                Options {
                    hosts: 251,
                    ..Options::default()
                },
                "at most 250",
            ),
            (
                Options {
                    host_prefix: "a b".into(),
                    ..Options::default()
                },
                "invalid host prefix",
            ),
        ] {
            let e = Testbed::up(&opts).err().expect("must fail").to_string();
            assert!(e.contains(msg), "{e}");
        }
        let after = fs::read_dir(RUN_DIR).map(|d| d.count()).unwrap_or(0);
        assert!(after <= before, "a state directory was created");
    }
}
