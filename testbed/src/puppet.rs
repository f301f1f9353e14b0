//! The test bed's real Puppet server: Debian's `puppetserver` (7.9.5),
//! named like SWH's (`pergamon`), with a real CA.
//!
//! One server is shared by every test bed of the machine (a JVM takes
//! 25 s to 2 min to start and about 0.5 GiB): the first test bed that asks
//! for it starts it, the next ones find it running. It runs in a network
//! namespace of its own ([`NETNS`]); each test bed that uses it gets a veth
//! from that namespace into the test bed's bridge, with the address
//! `.254` of the test bed's /24, and its hosts resolve `pergamon` to that
//! address through `/etc/hosts`.
//!
//! Each test bed has its own Puppet environment (`tb_<name>`), a copy of
//! `testbed/assets/puppet/` (module `swh_testbed`, Hiera data) in its state
//! directory ([`env_dir`]), so that tests change their manifest and data
//! without seeing each other's. Hosts get a unique certificate name
//! (`<host>-<nonce>.swh-testbed`), signed by the CA at once: autosign
//! accepts `*.swh-testbed` only.
//!
//! The server is started by a small supervisor shell ([`SUPERVISOR`]) that
//! stops it once no test bed has used it for [`linger`] seconds: the users
//! are files in `users/` naming a test bed's state file and owner process;
//! a user whose test bed is down or whose owner died no longer counts. The
//! server's CA and certificate are cached under
//! `/var/cache/swh-deploy-testbed/puppetserver-<key>`, keyed by the
//! puppetserver version and this module's [`CONFIG_VERSION`].

use crate::golden::CACHE_DIR;
use crate::util::{self, fnv64, Lock};
use crate::{Testbed, RUN_DIR};
use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The server's host name (SWH's Puppet server is `pergamon`).
pub const SERVER_NAME: &str = "pergamon";

/// The server's port.
pub const PORT: u16 = 8140;

/// The network namespace of the server.
pub const NETNS: &str = "swhtb-pergamon";

/// The domain of the hosts' certificate names; the CA signs at once only
/// names in it (`autosign.conf`: `*.swh-testbed`).
pub const CERT_DOMAIN: &str = "swh-testbed";

/// Bumped whenever the server's configuration changes in a way that
/// invalidates its cached CA (part of the cache key).
pub const CONFIG_VERSION: u32 = 1;

/// The JVM options: a capped heap, serial GC, and the JIT settings that
/// start JRuby fastest (the catalogs of the test bed are tiny).
pub const JAVA_ARGS: &[&str] = &[
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djruby.compile.mode=OFF",
    "-Djruby.compile.invokedynamic=false",
    "-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger",
    "-Dlogappender=STDOUT",
    "-Djruby.lib=/usr/share/jruby/lib",
    "-XX:+CrashOnOutOfMemoryError",
];

/// How long a start may take: measured 25 s on a quiet 2-core machine,
/// over 2 minutes while tests compile and run beside it.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Environment variable: seconds the server stays up after its last test
/// bed went down (default 120: tests that use it seldom run back to back).
pub const LINGER_ENV: &str = "SWH_DEPLOY_TESTBED_PUPPET_LINGER";

/// The server's runtime directory.
pub fn server_dir() -> PathBuf {
    Path::new(RUN_DIR).join(".puppetserver")
}

/// Seconds the server stays up once unused ([`LINGER_ENV`], default 120).
pub fn linger() -> u64 {
    std::env::var(LINGER_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

/// The test bed's Puppet environment directory (`<state dir>/puppet`):
/// `manifests/site.pp`, `modules/swh_testbed`, `hiera.yaml`,
/// `data/common.yaml`, and `data/hosts/<host>.yaml` for per-host data.
pub fn env_dir(tb: &Testbed) -> PathBuf {
    tb.state_dir().join("puppet")
}

/// The Puppet environment name of a test bed (`tb_` and its name, `-` as `_`).
pub fn environment(tb: &Testbed) -> String {
    format!("tb_{}", tb.name().replace('-', "_"))
}

/// Writes `data/<rel>` of the test bed's environment atomically (Hiera
/// YAML, e.g. `common.yaml` or `hosts/host1.yaml`): the next agent run
/// compiles with it.
pub fn write_data(tb: &Testbed, rel: &str, yaml: &str) -> Result<()> {
    if rel.split('/').any(|p| p.is_empty() || p == "..") || !rel.ends_with(".yaml") {
        bail!("invalid Hiera data path {rel:?}: a relative path ending in .yaml");
    }
    util::write_atomic(&env_dir(tb).join("data").join(rel), yaml.as_bytes(), 0o644)
}

/// The asset directory copied into each environment
/// (`$SWH_DEPLOY_TESTBED_ASSETS/puppet` or this crate's `assets/puppet`).
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("SWH_DEPLOY_TESTBED_ASSETS") {
        Some(dir) => PathBuf::from(dir).join("puppet"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/puppet"),
    }
}

/// The installed puppetserver's Debian version.
fn server_version() -> Result<String> {
    let v = util::run(util::cmd("dpkg-query").args(["-W", "-f=${Version}", "puppetserver"]))
        .context("puppetserver is not installed (scripts/install-deps installs it)")?;
    Ok(v.trim().to_string())
}

/// The cache directory of the server's CA and certificate, keyed by the
/// puppetserver version and [`CONFIG_VERSION`].
pub fn cache_dir() -> Result<PathBuf> {
    let mut h = fnv64(b"swh-deploy-testbed puppetserver", 0);
    h = fnv64(server_version()?.as_bytes(), h);
    h = fnv64(&CONFIG_VERSION.to_le_bytes(), h);
    h = fnv64(SERVER_NAME.as_bytes(), h);
    Ok(Path::new(CACHE_DIR).join(format!("puppetserver-{h:016x}")))
}

/// What a start measured (also written to `server.toml`).
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The supervisor's pid (the JVM is its child).
    pub pid: i32,
    /// How long the start took (`None`: it was already running).
    pub start_time: Option<Duration>,
    /// The JVM's resident memory when it answered, in KiB.
    pub rss_kib: Option<u64>,
}

/// Connects the test bed's hosts to the shared server (started first when
/// needed): a veth into its bridge, `pergamon` in each host's
/// `/etc/hosts`, the host's `/etc/puppet/puppet.conf` (server, unique
/// certificate name, environment), the test bed's environment, then each
/// host's certificate (`puppet ssl bootstrap`, signed by the CA at once).
/// Bridge modes only. Undone by the test bed's `down` (the veth is one of
/// its links; the environment lives in its state directory).
pub(crate) fn attach(tb: &Testbed) -> Result<ServerInfo> {
    let (bridge, bridge_addr) = tb
        .bridge()
        .ok_or_else(|| anyhow!("the Puppet server needs a bridge test bed (not loopback)"))?;
    let o = bridge_addr.octets();
    let addr = Ipv4Addr::new(o[0], o[1], o[2], 254);
    // The environment first: the server may compile as soon as a host asks.
    let env = env_dir(tb);
    copy_tree(&assets_dir(), &env)?;
    let info = {
        let dir = server_dir();
        let _lock = Lock::acquire(&dir.join(".lock"), START_TIMEOUT + Duration::from_secs(60))?;
        register_user(tb)?;
        let info = ensure_running()?;
        let link = format!("{bridge}pg");
        let peer = format!("{bridge}pq");
        util::run(
            util::cmd("ip")
                .args(["link", "add", &link, "type", "veth", "peer", "name", &peer])
                .args(["netns", NETNS]),
        )?;
        tb.record_link(&link)?;
        util::run(util::cmd("ip").args(["link", "set", &link, "master", &bridge, "up"]))?;
        util::run_input(
            util::cmd("ip").args(["-n", NETNS, "-batch", "-"]),
            Some(&format!(
                "addr add {addr}/24 dev {peer}\nlink set {peer} up\n"
            )),
        )?;
        let links = dir.join("code/environments");
        fs::create_dir_all(&links)?;
        let name = environment(tb);
        let _ = fs::remove_file(links.join(&name));
        std::os::unix::fs::symlink(&env, links.join(&name))
            .with_context(|| format!("linking environment {name}"))?;
        info
    };
    let nonce = format!(
        "{:08x}",
        fnv64(
            format!("{:?} {:?}", tb.state_dir(), std::time::SystemTime::now()).as_bytes(),
            0
        ) as u32
    );
    let environment = environment(tb);
    for h in tb.hosts() {
        let root = tb.host_root(&h.name)?;
        let hosts_file = root.join("etc/hosts");
        let mut text = fs::read_to_string(&hosts_file).unwrap_or_default();
        let _ = writeln!(text, "{addr}\t{SERVER_NAME}");
        util::write_file(&hosts_file, text.as_bytes(), 0o644)?;
        let conf = format!(
            "# swh-deploy test bed: this host's agent asks the test bed's real Puppet\n\
             # server (pergamon, testbed/src/puppet.rs) for its catalog.\n\
             [main]\n\
             server = {SERVER_NAME}\n\
             certname = {host}-{nonce}.{CERT_DOMAIN}\n\
             environment = {environment}\n\
             keylength = 2048\n\
             report = false\n\
             [agent]\n\
             splay = false\n",
            host = h.name
        );
        util::write_file(&root.join("etc/puppet/puppet.conf"), conf.as_bytes(), 0o644)?;
    }
    // Certificates, all hosts at once.
    std::thread::scope(|s| -> Result<()> {
        let jobs: Vec<_> = tb
            .hosts()
            .iter()
            .map(|h| {
                s.spawn(move || -> Result<()> {
                    let out = tb
                        .ssh_command(&h.name, "puppet ssl bootstrap --waitforcert 0 2>&1")
                        .stdin(Stdio::null())
                        .output()
                        .context("running ssh")?;
                    if !out.status.success() {
                        bail!(
                            "host {}: `puppet ssl bootstrap` failed ({}): {}",
                            h.name,
                            out.status,
                            String::from_utf8_lossy(&out.stdout).trim()
                        );
                    }
                    Ok(())
                })
            })
            .collect();
        for j in jobs {
            j.join()
                .map_err(|_| anyhow!("certificate thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(info)
}

/// Records the test bed as a user of the server (caller holds the lock).
fn register_user(tb: &Testbed) -> Result<()> {
    let users = server_dir().join("users");
    fs::create_dir_all(&users)?;
    let owner = match tb.owner() {
        Some((pid, start)) => format!("{pid} {start}"),
        None => "- -".into(),
    };
    let line = format!("{} {owner}\n", tb.state_dir().join("state.toml").display());
    util::write_atomic(&users.join(tb.name()), line.as_bytes(), 0o644)
}

/// Records the test bed's owner again (after [`Testbed::keep`]: no owner,
/// the server stays up as long as the test bed), if it uses the server.
pub(crate) fn reregister(tb: &Testbed) -> Result<()> {
    if server_dir().join("users").join(tb.name()).exists() {
        let _lock = Lock::acquire(
            &server_dir().join(".lock"),
            START_TIMEOUT + Duration::from_secs(60),
        )?;
        register_user(tb)?;
    }
    Ok(())
}

/// Whether the server answers its status endpoint.
fn answers() -> bool {
    util::cmd("ip")
        .args(["netns", "exec", NETNS, "curl", "-sk", "--max-time", "5"])
        .arg(format!("https://127.0.0.1:{PORT}/status/v1/simple"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.stdout == b"running")
}

/// A recorded process (`server.toml`: `pid start`).
fn read_pid(file: &Path) -> Option<(i32, u64)> {
    let text = fs::read_to_string(file).ok()?;
    let mut w = text.split_whitespace();
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

/// Starts the server unless it runs and answers (caller holds the lock).
fn ensure_running() -> Result<ServerInfo> {
    let dir = server_dir();
    let pidfile = dir.join("supervisor.pid");
    if let Some((pid, start)) = read_pid(&pidfile) {
        if util::alive(pid, start) && Path::new("/run/netns").join(NETNS).exists() {
            // Running: it answers at once, or it is still starting (another
            // process's start that failed its wait; give it the same time).
            if util::wait_for(START_TIMEOUT, Duration::from_millis(500), || {
                answers().then_some(())
            })
            .is_some()
            {
                return Ok(ServerInfo {
                    pid,
                    start_time: None,
                    rss_kib: None,
                });
            }
        }
        // Dead, or never answered: stop what is left.
        util::stop_all(&[(pid, start)], Duration::from_secs(10));
    }
    if let Some((pid, start)) = read_pid(&dir.join("java.pid")) {
        util::stop_all(&[(pid, start)], Duration::from_secs(10));
    }
    let _ = fs::remove_file(&pidfile);
    if Path::new("/run/netns").join(NETNS).exists() {
        util::run(util::cmd("ip").args(["netns", "delete", NETNS]))?;
    }
    start(&dir)
}

fn start(dir: &Path) -> Result<ServerInfo> {
    let cache = cache_dir()?;
    fs::create_dir_all(&cache)?;
    write_config(dir, &cache)?;
    prune_ca(&cache);
    // Environments whose test bed is gone.
    if let Ok(rd) = fs::read_dir(dir.join("code/environments")) {
        for e in rd.flatten() {
            if !e.path().exists() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    util::run(util::cmd("ip").args(["netns", "add", NETNS]))?;
    util::run(util::cmd("ip").args(["-n", NETNS, "link", "set", "lo", "up"]))?;
    let log = fs::File::create(dir.join("server.log"))?;
    let mut c = util::cmd("/bin/sh");
    c.args(["-c", SUPERVISOR, "sh"])
        .arg(dir)
        .arg(NETNS)
        .arg(linger().to_string())
        .arg("/usr/bin/java")
        .args(JAVA_ARGS)
        .args([
            "-jar",
            "/usr/share/puppetserver/puppetserver.jar",
            "--config",
        ])
        .arg(dir.join("conf.d"))
        .args(["--bootstrap-config", "/etc/puppet/puppetserver/services.d"])
        .current_dir("/usr/share/puppetserver")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let began = Instant::now();
    let child = c
        .spawn()
        .context("cannot start the puppetserver supervisor")?;
    let pid = child.id() as i32;
    // Reaped by init once we exit; never waited for here.
    std::mem::forget(child);
    let start = util::start_time(pid).unwrap_or(0);
    util::write_atomic(
        &dir.join("supervisor.pid"),
        format!("{pid} {start}\n").as_bytes(),
        0o644,
    )?;
    let up = util::wait_for(START_TIMEOUT, Duration::from_millis(500), || {
        if !util::alive(pid, start) {
            return Some(false);
        }
        answers().then_some(true)
    });
    let log_tail = || {
        let text = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    match up {
        Some(true) => {}
        Some(false) => bail!(
            "puppetserver exited while starting; last lines of {}:\n{}",
            dir.join("server.log").display(),
            log_tail()
        ),
        None => {
            util::stop_all(&[(pid, start)], Duration::from_secs(10));
            bail!(
                "puppetserver did not answer https://{SERVER_NAME}:{PORT}/status/v1/simple within {START_TIMEOUT:?}; last lines of {}:\n{}",
                dir.join("server.log").display(),
                log_tail()
            )
        }
    }
    let took = began.elapsed();
    let rss_kib = read_pid(&dir.join("java.pid")).and_then(|(p, _)| rss_kib(p));
    eprintln!(
        "testbed: puppetserver {SERVER_NAME} up in {:.1} s, JVM resident memory {} MiB",
        took.as_secs_f64(),
        rss_kib
            .map(|k| (k / 1024).to_string())
            .unwrap_or("?".into())
    );
    Ok(ServerInfo {
        pid,
        start_time: Some(took),
        rss_kib,
    })
}

/// A process's resident memory (VmRSS), in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The running server's JVM pid, if any.
pub fn java_pid() -> Option<i32> {
    let (pid, start) = read_pid(&server_dir().join("java.pid"))?;
    util::alive(pid, start).then_some(pid)
}

/// Host certificates of earlier runs: the CA keeps only its own and the
/// server's (the certificate names of hosts are never reused).
fn prune_ca(cache: &Path) {
    if let Ok(rd) = fs::read_dir(cache.join("ca/signed")) {
        for e in rd.flatten() {
            if e.file_name() != *format!("{SERVER_NAME}.pem").as_str() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// The server's configuration: its own conf.d, puppet.conf and directories
/// under `dir`, the CA and its SSL directory in `cache`; nothing of the
/// machine's /etc/puppet is changed.
fn write_config(dir: &Path, cache: &Path) -> Result<()> {
    let d = dir.display();
    let c = cache.display();
    for sub in ["conf.d", "etc", "code/environments", "var", "run", "log"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    for f in ["auth.conf", "web-routes.conf", "metrics.conf"] {
        let src = Path::new("/etc/puppet/puppetserver/conf.d").join(f);
        fs::copy(&src, dir.join("conf.d").join(f))
            .with_context(|| format!("copying {}", src.display()))?;
    }
    let files = [
        (
            "conf.d/global.conf",
            "global: { logging-config: /etc/puppet/puppetserver/logback.xml }\n\
             product: { check-for-updates: false }\n"
                .to_string(),
        ),
        (
            "conf.d/puppetserver.conf",
            format!(
                "jruby-puppet: {{\n\
                 \x20   ruby-load-path: [/usr/lib/puppetserver/ruby/vendor_ruby]\n\
                 \x20   gem-home: /var/lib/puppetserver/jruby-gems\n\
                 \x20   gem-path: [${{jruby-puppet.gem-home}}, \"/usr/lib/puppetserver/vendored-jruby-gems\"]\n\
                 \x20   server-conf-dir: {d}/etc\n\
                 \x20   server-code-dir: {d}/code\n\
                 \x20   server-var-dir: {d}/var\n\
                 \x20   server-run-dir: {d}/run\n\
                 \x20   server-log-dir: {d}/log\n\
                 \x20   max-active-instances: 1\n\
                 }}\n\
                 http-client: {{}}\n\
                 profiler: {{}}\n"
            ),
        ),
        (
            "conf.d/webserver.conf",
            format!("webserver: {{ client-auth: want, ssl-host: 0.0.0.0, ssl-port: {PORT} }}\n"),
        ),
        ("conf.d/ca.conf", "certificate-authority: {}\n".to_string()),
        (
            "etc/puppet.conf",
            format!(
                "# The swh-deploy test bed's Puppet server (testbed/src/puppet.rs).\n\
                 [main]\n\
                 certname = {SERVER_NAME}\n\
                 dns_alt_names = {SERVER_NAME},puppet\n\
                 ssldir = {c}/ssl\n\
                 codedir = {d}/code\n\
                 vardir = {d}/var\n\
                 logdir = {d}/log\n\
                 rundir = {d}/run\n\
                 [server]\n\
                 cadir = {c}/ca\n\
                 autosign = {d}/etc/autosign.conf\n\
                 reports = none\n"
            ),
        ),
        (
            "etc/autosign.conf",
            format!("*.{CERT_DOMAIN}\n"),
        ),
        (
            "etc/hiera.yaml",
            "---\nversion: 5\nhierarchy: []\n".to_string(),
        ),
    ];
    for (rel, text) in files {
        util::write_atomic(&dir.join(rel), text.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Copies the asset tree `src` to `dst` (fresh).
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    if !src.is_dir() {
        bail!("Puppet assets {} not found", src.display());
    }
    fs::create_dir_all(dst)?;
    let mut s = src.as_os_str().to_owned();
    s.push("/.");
    util::run(
        util::cmd("cp")
            .args(["-r", "--preserve=mode,timestamps"])
            .arg(s)
            .arg(dst),
    )
    .context("copying the Puppet environment")?;
    Ok(())
}

/// The supervisor: starts the JVM in the server's namespace, stops it
/// (and removes the namespace) once no user has been alive for the linger
/// time, deciding under the server's lock so that a test bed attaching at
/// that moment either keeps it up or starts a new one.
/// Arguments: DIR NETNS LINGER_SECONDS JAVA_ARGV...
pub const SUPERVISOR: &str = r#"
dir=$1 ns=$2 linger=$3
shift 3
ip netns exec "$ns" "$@" &
java=$!
echo "$java $(sed 's/.*) //' /proc/$java/stat | cut -d' ' -f20)" > "$dir/java.pid"
stop() {
  kill "$java" 2>/dev/null
  i=0
  while kill -0 "$java" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -9 "$java" 2>/dev/null
  wait "$java" 2>/dev/null
  ip netns delete "$ns" 2>/dev/null
  rm -f "$dir/supervisor.pid" "$dir/java.pid"
}
trap 'stop; exit 0' TERM INT HUP
busy() {
  found=1
  for u in "$dir"/users/*; do
    [ -e "$u" ] || continue
    read -r state pid start < "$u" || true
    ok=0
    if [ -e "$state" ]; then
      if [ "$pid" = - ]; then ok=1
      elif [ "$(sed 's/.*) //' /proc/"$pid"/stat 2>/dev/null | cut -d' ' -f20)" = "$start" ]; then ok=1
      fi
    fi
    if [ $ok = 1 ]; then found=0; else rm -f "$u"; fi
  done
  return $found
}
idle=0
while kill -0 "$java" 2>/dev/null; do
  sleep 2
  if busy; then idle=0; continue; fi
  idle=$((idle+2))
  [ $idle -ge "$linger" ] || continue
  exec 9>>"$dir/.lock"
  if flock -w 1 9; then
    if ! busy; then
      echo "supervisor: no test bed used the server for ${linger} s: stopping it"
      stop
      exit 0
    fi
    flock -u 9
  fi
  exec 9>&-
  idle=0
done
echo "supervisor: the JVM exited"
ip netns delete "$ns" 2>/dev/null
rm -f "$dir/supervisor.pid" "$dir/java.pid"
exit 1
"#;
