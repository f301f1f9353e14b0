//! A test bed: its hosts, its network, its processes, its state directory.

use crate::golden;
use crate::util::{self, Lock};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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

    fn up_loopback(&self, golden: &Path, names: &[String], apt: Option<&Path>) -> Result<()> {
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

    fn up_bridge(&self, golden: &Path, names: &[String], apt: Option<&Path>) -> Result<()> {
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

    /// Waits (at most 120 s) until systemd in `host` has finished booting;
    /// warns when it came up degraded.
    fn wait_booted(&self, host: &str) -> Result<()> {
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

    fn add_netns(&self, ns: &str) -> Result<()> {
        if Path::new("/run/netns").join(ns).exists() {
            bail!("network namespace {ns} already exists");
        }
        util::run(util::cmd("ip").args(["netns", "add", ns]))?;
        self.record(|s| s.netns.push(ns.to_string()))
    }

    /// Mounts an overlay over `golden` at `<dir>/root` (upper and work in
    /// `dir`).
    fn mount_overlay(&self, golden: &Path, dir: &Path) -> Result<PathBuf> {
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
    fn prepare_root(
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

    /// sshd in a chroot in the host's namespaces: own network (`ip netns
    /// exec`), mount, UTS and PID namespaces (`unshare`), fresh proc, sys,
    /// dev, devpts and /run.
    fn spawn_chroot_sshd(&self, role: &str, ns: &str, root: &Path, hostname: &str) -> Result<Proc> {
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

    /// systemd-nspawn booting the host's root inside its network namespace,
    /// in cgroups of its own.
    fn spawn_nspawn(
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

    fn write_client_files(&self) -> Result<()> {
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
            "Host *\n  User root\n  Port 22\n  IdentityFile {id}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  \
             CheckHostIP no\n  BatchMode yes\n  KexAlgorithms curve25519-sha256\n  ConnectTimeout 10\n  \
             LogLevel ERROR\n  ControlMaster no\n  ControlPath none\n",
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

    fn inject(&self, host: &str, fault: Option<Fault>) -> Result<()> {
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

    /// Runs a command inside a systemd host; returns its stdout whatever
    /// its exit status.
    fn in_container_status(&self, host: &str, argv: &[&str]) -> Result<String> {
        let mut c = self.nsenter(host)?;
        c.args(argv).stdin(Stdio::null()).stderr(Stdio::null());
        let shown = util::render(&c);
        let out = c
            .output()
            .with_context(|| format!("cannot run `{shown}`"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command inside a systemd host (all its namespaces).
    fn in_container(&self, host: &str, argv: &[&str]) -> Result<String> {
        util::run(self.nsenter(host)?.args(argv))
    }

    /// `nsenter` into a systemd host's namespaces (mount, UTS, IPC,
    /// network, PID).
    fn nsenter(&self, host: &str) -> Result<Command> {
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

/// The container's PID 1 among nspawn's descendants (NSpid ends with 1).
fn container_leader(nspawn: i32) -> Option<i32> {
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

/// Replaces this test bed's nftables table in namespace `ns` with one whose
/// input chain holds `rules` (empty: the table is removed).
fn nft_apply(ns: &str, rules: &str) -> Result<()> {
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
fn no_ipv6(ifname: &str) {
    let _ = fs::write(
        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    );
}

/// A free /24 in 10.213.0.0/16 (no address or route of the machine in it),
/// starting from a hash of the name.
fn free_subnet(name: &str) -> Result<u8> {
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
fn covers(w: &str, a: u8, b: u8, third: u8) -> bool {
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

/// Each booted container uses a dozen inotify instances (systemd, journald,
/// udev-less services), all counted against root: the kernel's default of 128
/// instances per user stops the 10th container's services with "Failed to
/// create inotify object: Too many open files". Raise the limits (never
/// lower them).
fn raise_inotify_limits() {
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

/// The cgroup hierarchies to give each container its own cgroup in.
fn cgroup_roots() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        // Pure cgroup v2.
        out.push(base.to_path_buf());
        return out;
    }
    if let Ok(rd) = fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path();
            if p.join("cgroup.procs").exists()
                && !fs::symlink_metadata(&p)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(true)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Removes a cgroup directory tree (children first); cgroupfs only allows
/// rmdir of empty groups.
fn remove_cgroup(cg: &Path) {
    if let Ok(rd) = fs::read_dir(cg) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = util::wait_for(Duration::from_secs(3), Duration::from_millis(50), || {
        (fs::remove_dir(cg).is_ok() || !cg.exists()).then_some(())
    });
}

/// Waits (bounded) until `addr:port` accepts connections (and, for sshd,
/// sends its banner), optionally from inside namespace `ns`.
fn wait_port(ns: Option<&str>, addr: Ipv4Addr, port: u16, ssh: bool) -> Result<()> {
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

/// sshd settings of every host (an `sshd_config.d` drop-in: first value
/// wins over Debian's `sshd_config`).
const SSHD_CONFIG: &str = "\
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
const CHROOT_SCRIPT: &str = r#"set -eu
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

/// Moves itself into the cgroups given as arguments, then execs the rest:
/// `sh -c CGROUP_EXEC sh N CG1..CGN PROGRAM ARGS...`.
const CGROUP_EXEC: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs"; shift; n=$((n-1)); done
exec "$@"
"#;

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
