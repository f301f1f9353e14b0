//! `swh-deploy run`: a command on many hosts at once, like `clush`.
//!
//! Targets are node sets (`-w`, `-x`, `-g`, `-X`, `-a`); the engine, the
//! transports and clush's output formats live in the `swh_deploy_fleet`
//! crate; this module parses flags, picks the output mode and maps the
//! report to an exit status.

use clap::Args;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use swh_deploy_fleet::render::{self, Style};
use swh_deploy_fleet::{
    CancelToken, ConnectionReuse, ExecTransport, HostKeyPolicy, HostResult, Observer, RunOptions,
    RunReport, SshOptions, SshTransport, Stream, Transport,
};
use swh_deploy_site::Site;

const PROG: &str = "swh-deploy";

/// Run a shell command on many hosts in parallel (a clush replacement).
#[derive(Debug, Args)]
#[command(after_help = "\
Output:
  default     'host: line' as lines arrive (stderr lines on stderr)
  -b          gathered: one block per identical output and exit code, as clush -b
  -B          like -b with stderr gathered too
  -L          lines sorted by exit code then host;  -bL gathers line by line
  --json      one JSON object per host as it finishes
A summary of failed, unreachable and timed-out hosts is printed on stderr.

Exit status:
  0    the command was run (whatever it returned on the hosts), unless -S
  -S   the largest exit code of the command over all hosts, or 255 when a
       host was unreachable or timed out (as clush -S)
  1    bad input (node set, group, option value)
  2    usage error
  130  interrupted (Ctrl-C): unfinished hosts are listed on stderr")]
pub struct RunArgs {
    /// Target nodes (node-set syntax, e.g. `web[1-4],db1`); repeatable.
    #[arg(short = 'w', value_name = "NODES")]
    nodes: Vec<String>,
    /// Exclude nodes; repeatable.
    #[arg(short = 'x', value_name = "NODES")]
    exclude: Vec<String>,
    /// Target the nodes of a group; repeatable.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Exclude the nodes of a group; repeatable.
    #[arg(short = 'X', value_name = "GROUP")]
    exclude_groups: Vec<String>,
    /// Target all nodes of the group source.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Group source to use for -g, -X, -a and @groups.
    #[arg(short = 's', long = "groupsource", value_name = "SOURCE")]
    group_source: Option<String>,

    /// Site file: its `[groups]` come before ClusterShell's for -g, -X, -a
    /// and @groups, and its `[ssh]` settings (config, user, options,
    /// connect_timeout, fanout) apply unless a flag says otherwise. Default:
    /// $SWH_DEPLOY_SITE when set, else none (ClusterShell's groups only, as
    /// clush).
    #[arg(long, value_name = "FILE")]
    site: Option<PathBuf>,

    /// Fan-out: at most N hosts at once [default: 64, or the site's].
    #[arg(short = 'f', long = "fanout", value_name = "N")]
    fanout: Option<usize>,
    /// Connect timeout in seconds (ssh ConnectTimeout) [default: 10, or the
    /// site's].
    #[arg(short = 't', long = "connect_timeout", value_name = "SECS")]
    connect_timeout: Option<f64>,
    /// Command timeout in seconds (default: none).
    #[arg(short = 'u', long = "command_timeout", value_name = "SECS")]
    command_timeout: Option<f64>,

    /// Gather identical outputs (clush -b).
    #[arg(short = 'b', long = "dshbak")]
    gather: bool,
    /// Gather stdout and stderr together (clush -B).
    #[arg(short = 'B')]
    gather_all: bool,
    /// Order output by exit code then node; with -b, gather line by line.
    #[arg(short = 'L')]
    line_mode: bool,
    /// No node labels.
    #[arg(short = 'N')]
    no_label: bool,
    /// Exit with the largest return code (255 when a host was unreachable or
    /// timed out).
    #[arg(short = 'S', long = "maxrc")]
    maxrc: bool,
    /// One JSON object per host (host, rc, stdout, stderr, duration,
    /// unreachable, timed_out, cancelled, error).
    #[arg(long = "json", conflicts_with_all = ["gather", "gather_all", "line_mode"])]
    json: bool,
    /// Also write each host's stdout to DIR/HOST.
    #[arg(long = "outdir", value_name = "DIR")]
    outdir: Option<PathBuf>,
    /// Also write each host's stderr to DIR/HOST.
    #[arg(long = "errdir", value_name = "DIR")]
    errdir: Option<PathBuf>,
    /// When to color node labels.
    #[arg(long = "color", value_name = "WHEN", default_value = "auto",
          value_parser = ["never", "always", "auto"])]
    color: String,
    /// Show done/total progress on stderr even outside gathered modes.
    #[arg(short = 'P', long = "progress")]
    progress: bool,

    /// Worker: `ssh` (default) or `exec` (run the command locally, with %h,
    /// %host, %hosts, %n, %rank substituted, like clush -R exec).
    #[arg(short = 'R', long = "worker", value_name = "WORKER", default_value = "ssh",
          value_parser = ["ssh", "exec"])]
    worker: String,
    /// Remote user (ssh -l).
    #[arg(short = 'l', long = "user", value_name = "USER")]
    user: Option<String>,
    /// Extra ssh options, split like a shell would (e.g. "-oPort=2222");
    /// repeatable; they take precedence over swh-deploy's defaults.
    #[arg(
        short = 'o',
        long = "options",
        value_name = "OPTIONS",
        allow_hyphen_values = true
    )]
    ssh_options: Vec<String>,
    /// ssh_config file to use (ssh -F).
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Trust host keys seen for the first time (StrictHostKeyChecking=
    /// accept-new); changed keys are still refused.
    #[arg(long = "accept-new-host-keys")]
    accept_new_host_keys: bool,
    /// Keepalive interval in seconds (ServerAliveInterval, 3 probes): a host
    /// lost mid-command is reported unreachable after about 3x this.
    #[arg(long = "keepalive", value_name = "SECS", default_value_t = 10)]
    keepalive: u32,
    /// Keep one ssh connection per host open for SECS after the run, in a
    /// private directory of the user, and reuse it in later runs.
    #[arg(long = "control-persist", value_name = "SECS")]
    control_persist: Option<u64>,

    /// The command, run by the remote user's shell (words are joined with
    /// spaces, as clush does).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Gather,
    GatherLines,
    Sorted,
    Json,
}

/// Runs `swh-deploy run`.
pub fn main(args: RunArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{PROG} run: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn seconds(what: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v < 0.0 {
        anyhow::bail!("{what}: {v} is not a number of seconds >= 0");
    }
    Ok(Duration::from_secs_f64(v))
}

/// The site file of `--site`, else of `$SWH_DEPLOY_SITE`, if any.
fn site(args: &RunArgs) -> anyhow::Result<Option<Site>> {
    let path = match &args.site {
        Some(p) => p.clone(),
        None => match std::env::var_os(swh_deploy_site::SITE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => return Ok(None),
        },
    };
    Ok(Some(Site::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?))
}

fn targets(args: &RunArgs, site: Option<&Site>) -> anyhow::Result<swh_deploy_nodeset::NodeSet> {
    use swh_deploy_nodeset::{ClusterShellGroups, GroupResolver};
    let mut clustershell = match site.and_then(|s| s.clustershell.config_dir.as_deref()) {
        Some(dir) => ClusterShellGroups::load_dir(dir),
        None => ClusterShellGroups::load_default(),
    }
    .map_err(|e| anyhow::anyhow!("ClusterShell groups configuration: {e}"))?;
    if let Some(s) = &args.group_source {
        clustershell
            .set_default_source(s)
            .map_err(|e| anyhow::anyhow!("-s {s:?}: {e}"))?;
    }
    // With a site and no -s, the site's groups come first.
    let resolver: Box<dyn GroupResolver + '_> = match site {
        Some(site) if args.group_source.is_none() => Box::new(
            swh_deploy_site::SiteGroups::with_clustershell(site, clustershell),
        ),
        _ => Box::new(clustershell),
    };
    targets_with(args, resolver.as_ref())
}

fn targets_with(
    args: &RunArgs,
    resolver: &dyn swh_deploy_nodeset::GroupResolver,
) -> anyhow::Result<swh_deploy_nodeset::NodeSet> {
    use swh_deploy_nodeset::NodeSet;
    let parse = |what: &str, expr: &str| -> anyhow::Result<NodeSet> {
        NodeSet::parse_with(expr, resolver).map_err(|e| anyhow::anyhow!("{what} {expr:?}: {e}"))
    };
    let mut set = NodeSet::new();
    for w in &args.nodes {
        set.update(&parse("-w", w)?);
    }
    for g in &args.groups {
        set.update(&parse("-g", &group_expr(g))?);
    }
    if args.all {
        let all = swh_deploy_nodeset::all_nodes(resolver, args.group_source.as_deref())
            .map_err(|e| anyhow::anyhow!("-a: {e}"))?;
        set.update(&all);
    }
    for x in &args.exclude {
        set.difference_update(&parse("-x", x)?);
    }
    for g in &args.exclude_groups {
        set.difference_update(&parse("-X", &group_expr(g))?);
    }
    if set.is_empty() {
        anyhow::bail!("no node to run on (give -w NODES, -g GROUP or -a)");
    }
    Ok(set)
}

/// `-g web,db` means `@web,@db`.
fn group_expr(g: &str) -> String {
    g.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('@') {
                s.to_string()
            } else {
                format!("@{s}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let site = site(&args)?;
    let set = targets(&args, site.as_ref())?;
    let site_ssh = site.as_ref().map(|s| s.ssh.clone()).unwrap_or_default();
    let fanout = args.fanout.unwrap_or(site_ssh.fanout);
    let hosts: Vec<String> = set.iter().collect();
    let command = args.command.join(" ");

    let transport: Box<dyn Transport> = if args.worker == "exec" {
        // A bad %-pattern is the same for every host: refuse it up front.
        swh_deploy_fleet::transport::substitute(&command, "", "", 0)?;
        Box::new(ExecTransport::new())
    } else {
        let mut extra = Vec::new();
        for o in &args.ssh_options {
            let words =
                shlex::split(o).ok_or_else(|| anyhow::anyhow!("-o {o:?}: unbalanced quotes"))?;
            extra.extend(words.into_iter().map(Into::into));
        }
        // The site's options after the flags': ssh keeps the first value.
        for o in &site_ssh.options {
            extra.push(format!("-o{o}").into());
        }
        let ssh_config = args.ssh_config.clone().or(site_ssh.config.clone());
        let user = args.user.clone().or(site_ssh.user.clone());
        let connect_timeout = match args.connect_timeout {
            Some(t) => seconds("-t", t)?,
            None => site_ssh.connect_timeout,
        };
        let reuse = match args.control_persist {
            None => None,
            Some(secs) => Some(ConnectionReuse {
                dir: Some(control_dir()?),
                persist: Duration::from_secs(secs.max(1)),
            }),
        };
        if let Some(f) = &ssh_config {
            if !f.is_file() {
                anyhow::bail!("-F {}: no such file", f.display());
            }
        }
        Box::new(SshTransport::new(SshOptions {
            config_file: ssh_config,
            user,
            extra_args: extra,
            connect_timeout: Some(connect_timeout),
            host_keys: if args.accept_new_host_keys {
                HostKeyPolicy::AcceptNew
            } else {
                HostKeyPolicy::Strict
            },
            keepalive: Some((args.keepalive.max(1), 3)),
            reuse,
            ..SshOptions::default()
        })?)
    };

    let mode = if args.json {
        Mode::Json
    } else if (args.gather || args.gather_all) && args.line_mode {
        Mode::GatherLines
    } else if args.gather || args.gather_all {
        Mode::Gather
    } else if args.line_mode {
        Mode::Sorted
    } else {
        Mode::Direct
    };
    for d in [&args.outdir, &args.errdir].into_iter().flatten() {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
    }

    let stdout_tty = io::stdout().is_terminal();
    let stderr_tty = io::stderr().is_terminal();
    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => {
            std::env::var_os("NO_COLOR").is_none() && stdout_tty && (args.gather_all || stderr_tty)
        }
    };
    let style = Style {
        label: !args.no_label,
        node_count: true,
        color,
    };
    let progress = stderr_tty
        && (args.progress || matches!(mode, Mode::Gather | Mode::GatherLines | Mode::Sorted));

    let options = RunOptions {
        fanout,
        command_timeout: args.command_timeout.map(|v| seconds("-u", v)).transpose()?,
        merge_stderr: args.gather_all,
        hosts_label: Some(set.to_string()),
    };
    let cancel = CancelToken::new();
    let guard = cancel.cancel_on_signals()?;
    let mut printer = Printer {
        mode,
        style,
        out: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        progress: progress.then(|| Progress::new(hosts.len())),
        write_error: None,
        cancel: cancel.clone(),
    };
    let report = swh_deploy_fleet::run(
        transport.as_ref(),
        &hosts,
        &command,
        &options,
        &mut printer,
        &cancel,
    )?;
    transport.close();
    drop(guard);
    printer.clear_progress();

    let fold = swh_deploy_fleet::fold;
    let mut out = printer.out;
    let written = match mode {
        Mode::Gather => render::write_gathered(&mut out, &report, &style, &fold),
        Mode::GatherLines => render::write_line_gathered(&mut out, &report, &style, &fold),
        Mode::Sorted => render::write_sorted(&mut out, &report, &style),
        Mode::Direct | Mode::Json => Ok(()),
    }
    .and_then(|_| out.flush());
    if let Some(e) = printer.write_error.take() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("{PROG} run: writing output: {e}");
        }
        return Ok(ExitCode::from(1));
    }
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("{PROG} run: writing output: {e}");
        }
        return Ok(ExitCode::from(1));
    }
    write_dirs(&args, &report)?;

    let mut err = io::stderr().lock();
    for line in render::summary(&report, PROG, &fold) {
        let _ = writeln!(err, "{line}");
    }
    if report.cancelled {
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::from(if args.maxrc {
        u8::try_from(report.max_rc_status().clamp(0, 255)).unwrap_or(255)
    } else {
        0
    }))
}

/// `$XDG_RUNTIME_DIR/swh-deploy/ssh`, else `/tmp/swh-deploy-UID/ssh`.
fn control_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        if Path::new(&d).is_dir() {
            return Ok(Path::new(&d).join("swh-deploy").join("ssh"));
        }
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    Ok(PathBuf::from(format!("/tmp/swh-deploy-{uid}")).join("ssh"))
}

fn write_dirs(args: &RunArgs, report: &RunReport) -> anyhow::Result<()> {
    for (dir, pick) in [
        (
            &args.outdir,
            (|r: &HostResult| r.stdout.clone()) as fn(&HostResult) -> Vec<u8>,
        ),
        (&args.errdir, |r: &HostResult| r.stderr.clone()),
    ] {
        let Some(dir) = dir else { continue };
        for r in &report.results {
            if r.host.contains('/') || r.host.starts_with('.') {
                anyhow::bail!(
                    "{}: host name {:?} cannot be a file name",
                    dir.display(),
                    r.host
                );
            }
            let mut body = Vec::new();
            for l in swh_deploy_fleet::gather::lines(&pick(r)) {
                body.extend_from_slice(l);
                body.push(b'\n');
            }
            write_atomic(&dir.join(&r.host), &body)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(&r.host).display()))?;
        }
    }
    Ok(())
}

fn write_atomic(path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    width: usize,
    shown: usize,
    dirty: bool,
    started: std::time::Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress {
            total,
            done: 0,
            failed: 0,
            width: total.to_string().len(),
            shown: 0,
            dirty: true,
            started: std::time::Instant::now(),
        }
    }
}

struct Printer<W: Write> {
    mode: Mode,
    style: Style,
    out: W,
    progress: Option<Progress>,
    write_error: Option<io::Error>,
    cancel: CancelToken,
}

impl<W: Write> Printer<W> {
    fn clear_progress(&mut self) {
        if let Some(p) = &mut self.progress {
            if p.shown > 0 {
                let _ = write!(io::stderr(), "{}\r", " ".repeat(p.shown));
                p.shown = 0;
                p.dirty = true;
            }
        }
    }

    fn check(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if self.write_error.is_none() {
                self.write_error = Some(e);
                self.cancel.cancel();
            }
        }
    }
}

impl<W: Write> Observer for Printer<W> {
    fn line(&mut self, _index: usize, host: &str, stream: Stream, line: &[u8]) {
        if self.write_error.is_some() {
            return;
        }
        let label = self.style.label.then_some(host);
        match (self.mode, stream) {
            (Mode::Direct, Stream::Stdout) => {
                let r = render::write_labelled(&mut self.out, label, line, false, self.style.color);
                self.check(r);
            }
            (Mode::Json, _) | (_, Stream::Stdout) => {}
            (_, Stream::Stderr) => {
                self.clear_progress();
                let _ = self.out.flush();
                let mut e = io::stderr().lock();
                let _ = render::write_labelled(&mut e, label, line, true, self.style.color);
            }
        }
    }

    fn finished(&mut self, result: &HostResult) {
        if let Some(p) = &mut self.progress {
            p.done += 1;
            if !result.success() {
                p.failed += 1;
            }
            p.dirty = true;
        }
        if self.mode == Mode::Json && self.write_error.is_none() {
            let line = result.to_json();
            let r = writeln!(self.out, "{line}");
            self.check(r);
        }
    }

    fn idle(&mut self) {
        let r = self.out.flush();
        self.check(r);
    }

    fn tick(&mut self) {
        let Some(p) = &mut self.progress else { return };
        if !p.dirty || p.started.elapsed() < Duration::from_millis(1000) {
            return;
        }
        p.dirty = false;
        let mut s = format!("{PROG}: {:>w$}/{}", p.done, p.total, w = p.width);
        if p.failed > 0 {
            s.push_str(&format!(" ({} failed)", p.failed));
        }
        let pad = p.shown.saturating_sub(s.len());
        p.shown = s.len();
        let _ = write!(io::stderr(), "{s}{}\r", " ".repeat(pad));
    }
}
