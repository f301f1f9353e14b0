//! `swh-deploy run`: a command on many hosts at once, like `clush`.
//!
//! Targets are node sets (`-w`, `-x`, `-g`, `-X`, `-a`); the engine, the
//! transports and clush's output formats live in the `swh_deploy_fleet`
//! crate; this module parses flags, picks the output mode and maps the
//! report to an exit status.

use clap::Args;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use swh_deploy_fleet::render::{self, Style};
use swh_deploy_fleet::{
    CancelToken, ConnectionReuse, ExecTransport, HostKeyPolicy, HostResult, Observer, RunOptions,
    RunReport, SshOptions, SshTransport, Status, Stream, Transport,
};
use swh_deploy_site::Site;

pub mod optparse;

/// Run a shell command on many hosts in parallel (a clush replacement).
///
/// Its options are parsed as clush parses them (optparse): see
/// `swh-deploy run --help`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// clush's options, then the command (`swh-deploy run --help` lists
    /// them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

const AFTER_HELP: &str = "\
Output:
  default     'host: line' as lines arrive (stderr lines on stderr)
  -b          gathered: one block per identical output and exit code, as clush -b
  -B          like -b with stderr gathered too
  -L          lines sorted by exit code then host;  -bL gathers line by line
  --json      one JSON object per host as it finishes
A summary of failed, unreachable and timed-out hosts is printed on stderr.

-O/--option KEY=VALUE takes clush.conf's keys: color, maxrc, node_count,
fanout, connect_timeout, command_timeout, ssh_user, ssh_options,
command_prefix, verbosity, fd_max (accepted, not used); it wins over the
flags, as in clush.

Exit status:
  0    the command was run (whatever it returned on the hosts), unless -S
  -S   the largest exit code of the command over all hosts, or 255 when a
       host was unreachable or timed out (as clush -S)
  1    bad input (node set, group, option value)
  2    usage error (unknown option, missing value, no command)
  130  interrupted (Ctrl-C): unfinished hosts are listed on stderr";

/// One option of `run`: what it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Help,
    Version,
    Nodes,
    Exclude,
    Group,
    ExcludeGroup,
    All,
    GroupSource,
    GroupsConf,
    Conf,
    Axis,
    Hostfile,
    Pick,
    Site,
    Fanout,
    ConnectTimeout,
    CommandTimeout,
    Gather,
    GatherAll,
    LineMode,
    NoLabel,
    MaxRc,
    Json,
    Outdir,
    Errdir,
    Color,
    Progress,
    Quiet,
    Verbose,
    NoStdin,
    ConfOption,
    Worker,
    User,
    SshOptions,
    SshConfig,
    AcceptNew,
    Keepalive,
    ControlPersist,
    /// A clush option that swh-deploy does not implement: refused by name.
    Unsupported,
}

use optparse::Spec;

macro_rules! opt {
    ($key:ident, $short:expr, [$($long:literal),*], $meta:expr, $help:literal) => {
        Spec {
            key: Key::$key,
            short: $short,
            long: &[$($long),*],
            metavar: $meta,
            help: $help,
        }
    };
}

/// Every option of `run`: clush 1.10's (same names, same values; those that
/// swh-deploy does not implement are refused by name) and swh-deploy's own.
/// Long options match by unambiguous prefix, as in optparse.
static OPTIONS: &[Spec<Key>] =
    &[
        opt!(
            Help,
            Some('h'),
            ["--help"],
            None,
            "show this help message and exit"
        ),
        opt!(
            Version,
            None,
            ["--version"],
            None,
            "show program's version number and exit"
        ),
        opt!(
            NoStdin,
            Some('n'),
            ["--nostdin"],
            None,
            "don't watch for possible input from stdin (always the case: stdin is not forwarded)"
        ),
        opt!(
            GroupSource,
            Some('s'),
            ["--groupsource"],
            Some("GROUPSOURCE"),
            "group source to use for -g, -X, -a and @groups"
        ),
        opt!(
            GroupsConf,
            None,
            ["--groupsconf"],
            Some("FILE"),
            "use this groups.conf(5) file instead of ClusterShell's"
        ),
        opt!(
            Conf,
            None,
            ["--conf"],
            Some("FILE"),
            "read these clush.conf(5) [Main] settings (the keys of -O); flags win over them"
        ),
        opt!(
            ConfOption,
            Some('O'),
            ["--option"],
            Some("KEY=VALUE"),
            "override a clush.conf(5) key (see below); repeatable"
        ),
        opt!(
            Nodes,
            Some('w'),
            [],
            Some("NODES"),
            "nodes where to run the command (node set, @group); repeatable"
        ),
        opt!(
            Exclude,
            Some('x'),
            [],
            Some("NODES"),
            "exclude nodes; repeatable"
        ),
        opt!(
            All,
            Some('a'),
            ["--all"],
            None,
            "run the command on all nodes of the group source"
        ),
        opt!(
            Group,
            Some('g'),
            ["--group"],
            Some("GROUP"),
            "run the command on a group of nodes (-g a,b is @a,@b); repeatable"
        ),
        opt!(
            ExcludeGroup,
            Some('X'),
            [],
            Some("GROUP"),
            "exclude the nodes of a group; repeatable"
        ),
        opt!(
            Unsupported,
            Some('E'),
            ["--engine"],
            Some("ENGINE"),
            "clush's event engine: not supported"
        ),
        opt!(
            Hostfile,
            None,
            ["--hostfile", "--machinefile"],
            Some("FILE"),
            "file listing target hosts (one node set per line, # comments); repeatable"
        ),
        opt!(
            Unsupported,
            None,
            ["--topology"],
            Some("FILE"),
            "clush's tree mode: not supported"
        ),
        opt!(
            Pick,
            None,
            ["--pick"],
            Some("N"),
            "pick N node(s) at random in the node set"
        ),
        opt!(Site, None, ["--site"], Some("FILE"),
         "site file: its [groups] come before ClusterShell's for -g, -X, -a and @groups, and its \
          [ssh] settings (config, user, options, connect_timeout, fanout) apply unless a flag says \
          otherwise; default: $SWH_DEPLOY_SITE when set, else none"),
        opt!(
            Quiet,
            Some('q'),
            ["--quiet"],
            None,
            "be quiet: no progress, and no node count in the exit code lines"
        ),
        opt!(
            Verbose,
            Some('v'),
            ["--verbose"],
            None,
            "be verbose: with -b/-B, also print 'host: line' as lines arrive"
        ),
        opt!(
            Unsupported,
            Some('d'),
            ["--debug"],
            None,
            "clush's debug messages: not supported"
        ),
        opt!(
            Unsupported,
            Some('G'),
            ["--groupbase"],
            None,
            "not supported"
        ),
        opt!(
            LineMode,
            Some('L'),
            [],
            None,
            "order output by exit code then node; with -b, gather line by line"
        ),
        opt!(NoLabel, Some('N'), [], None, "no node labels"),
        opt!(
            Progress,
            Some('P'),
            ["--progress"],
            None,
            "show done/total progress on stderr (a terminal) even outside gathered modes"
        ),
        opt!(
            Gather,
            Some('b'),
            ["--dshbak"],
            None,
            "gather nodes with the same output (clush -b)"
        ),
        opt!(
            GatherAll,
            Some('B'),
            [],
            None,
            "like -b, stderr gathered too"
        ),
        opt!(
            Unsupported,
            Some('r'),
            ["--regroup"],
            None,
            "fold using node groups: not supported"
        ),
        opt!(
            Axis,
            None,
            ["--axis"],
            Some("RANGESET"),
            "fold node sets in the output along these axes only (1..n for nD names; -1 is the \
             last)"
        ),
        opt!(
            MaxRc,
            Some('S'),
            ["--maxrc"],
            None,
            "exit with the largest exit code (255 when a host was unreachable or timed out)"
        ),
        opt!(
            Color,
            None,
            ["--color"],
            Some("WHEN"),
            "when to color node labels: never, always, auto"
        ),
        opt!(
            Unsupported,
            None,
            ["--diff"],
            None,
            "diff of gathered outputs: not supported"
        ),
        opt!(
            Outdir,
            None,
            ["--outdir"],
            Some("DIR"),
            "also write each host's stdout to DIR/HOST"
        ),
        opt!(
            Errdir,
            None,
            ["--errdir"],
            Some("DIR"),
            "also write each host's stderr to DIR/HOST"
        ),
        opt!(
            Unsupported,
            Some('c'),
            ["--copy"],
            None,
            "file copy: not supported"
        ),
        opt!(
            Unsupported,
            None,
            ["--rcopy"],
            None,
            "file copy: not supported"
        ),
        opt!(
            Unsupported,
            None,
            ["--dest"],
            Some("DEST_PATH"),
            "file copy: not supported"
        ),
        opt!(Unsupported, Some('p'), [], None, "file copy: not supported"),
        opt!(
            Fanout,
            Some('f'),
            ["--fanout"],
            Some("FANOUT"),
            "at most N hosts at once [default: 64, or the site's]"
        ),
        opt!(
            Unsupported,
            None,
            ["--grooming"],
            Some("GROOMING_DELAY"),
            "tree mode: not supported"
        ),
        opt!(
            User,
            Some('l'),
            ["--user"],
            Some("USER"),
            "remote user (ssh -l)"
        ),
        opt!(
            SshOptions,
            Some('o'),
            ["--options"],
            Some("OPTIONS"),
            "extra ssh options, split like a shell would (e.g. \"-oPort=2222\"); repeatable; they \
          take precedence over swh-deploy's defaults"
        ),
        opt!(
            ConnectTimeout,
            Some('t'),
            ["--connect_timeout"],
            Some("CONNECT_TIMEOUT"),
            "connect timeout in seconds (ssh ConnectTimeout) [default: 10, or the site's]"
        ),
        opt!(
            CommandTimeout,
            Some('u'),
            ["--command_timeout"],
            Some("COMMAND_TIMEOUT"),
            "command timeout in seconds [default: none]"
        ),
        opt!(
            Unsupported,
            Some('m'),
            ["--mode"],
            Some("MODE"),
            "clush.conf modes: not supported"
        ),
        opt!(
            Worker,
            Some('R'),
            ["--worker"],
            Some("WORKER"),
            "ssh (default) or exec (run the command locally, with %h, %host, %hosts, %n, %rank \
          substituted, as clush -R exec)"
        ),
        opt!(
            Unsupported,
            None,
            ["--remote"],
            Some("REMOTE"),
            "tree mode: not supported"
        ),
        opt!(Json, None, ["--json"], None,
         "one JSON object per host (host, rc, stdout, stderr, duration, unreachable, timed_out, \
          cancelled, error)"),
        opt!(
            SshConfig,
            Some('F'),
            ["--ssh-config"],
            Some("FILE"),
            "ssh_config file to use (ssh -F)"
        ),
        opt!(AcceptNew, None, ["--accept-new-host-keys"], None,
         "trust host keys seen for the first time (StrictHostKeyChecking=accept-new); changed keys \
          are still refused"),
        opt!(
            Keepalive,
            None,
            ["--keepalive"],
            Some("SECS"),
            "keepalive interval (ServerAliveInterval, 3 probes) [default: 10]"
        ),
        opt!(
            ControlPersist,
            None,
            ["--control-persist"],
            Some("SECS"),
            "keep one ssh connection per host open SECS after the run and reuse it in later runs"
        ),
    ];

/// What the options of `run` say, once parsed and checked.
#[derive(Debug, Default)]
struct Parsed {
    nodes: Vec<String>,
    exclude: Vec<String>,
    groups: Vec<String>,
    exclude_groups: Vec<String>,
    all: bool,
    group_source: Option<String>,
    groups_conf: Option<PathBuf>,
    axis: Option<Vec<i64>>,
    hostfiles: Vec<PathBuf>,
    pick: Option<usize>,
    site: Option<PathBuf>,
    fanout: Option<usize>,
    connect_timeout: Option<f64>,
    command_timeout: Option<f64>,
    gather: bool,
    gather_all: bool,
    line_mode: bool,
    no_label: bool,
    maxrc: bool,
    json: bool,
    outdir: Option<PathBuf>,
    errdir: Option<PathBuf>,
    color: Color,
    progress: bool,
    quiet: bool,
    verbose: bool,
    node_count: bool,
    command_prefix: Option<String>,
    exec: bool,
    user: Option<String>,
    ssh_options: Vec<String>,
    ssh_config: Option<PathBuf>,
    accept_new_host_keys: bool,
    keepalive: u32,
    control_persist: Option<u64>,
    command: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

/// What the command line asks for.
enum Request {
    Run(Box<Parsed>),
    Help,
    Version,
}

/// Program names: `prog` for messages of a run ("swh-deploy", or "clush"
/// when installed under that name), `usage` for optparse's messages.
#[derive(Debug, Clone, Copy)]
struct Prog {
    prog: &'static str,
    usage: &'static str,
}

/// `swh-deploy run ARGS`, or `clush ARGS` when the binary is installed (or
/// linked) under the name `clush`: both parsed by run's own clush-compatible
/// (optparse) parser. `None` for any other command line.
pub fn main_from_argv(argv: &[OsString]) -> Option<ExitCode> {
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if name.as_deref() == Some("clush") {
        let prog = Prog {
            prog: "clush",
            usage: "clush",
        };
        return Some(main_with(prog, &argv[1..]));
    }
    let word = |i: usize| argv.get(i).map(|a| a.as_os_str());
    if word(1) == Some("help".as_ref()) && word(2) == Some("run".as_ref()) && argv.len() == 3 {
        print!("{}", help(SWH_DEPLOY));
        return Some(ExitCode::SUCCESS);
    }
    if argv.get(1).map(|a| a.as_os_str()) == Some("run".as_ref()) {
        return Some(main_with(SWH_DEPLOY, &argv[2..]));
    }
    None
}

const SWH_DEPLOY: Prog = Prog {
    prog: "swh-deploy",
    usage: "swh-deploy run",
};

/// Runs `swh-deploy run` (reached through clap, e.g. `swh-deploy help run`
/// aside: [`main_from_argv`] takes the usual path).
pub fn main(args: RunArgs) -> ExitCode {
    main_with(SWH_DEPLOY, &args.args)
}

fn main_with(prog: Prog, args: &[OsString]) -> ExitCode {
    let usage_error = |msg: &str| {
        eprintln!(
            "Usage: {} [options] command\n\n{}: error: {msg}",
            prog.usage, prog.usage
        );
        ExitCode::from(2)
    };
    let parsed = match parse(args) {
        Ok(Request::Help) => {
            print!("{}", help(prog));
            return ExitCode::SUCCESS;
        }
        Ok(Request::Version) => {
            println!("{} {}", prog.usage, env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Request::Run(p)) => p,
        Err(msg) => return usage_error(&msg),
    };
    match run(prog, *parsed) {
        Ok(code) => code,
        Err(e) if e.is::<UsageError>() => usage_error(&e.to_string()),
        Err(e) => {
            eprintln!("{}: {e:#}", prog.usage);
            ExitCode::from(1)
        }
    }
}

/// An error of the command line found after parsing (exit 2, with the
/// usage line, as optparse's `parser.error`).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn help(prog: Prog) -> String {
    let mut s = format!(
        "Usage: {} [options] command\n\nRun a shell command on many hosts in parallel, as clush \
         does (same options, same output).\n\nOptions:\n",
        prog.usage
    );
    s.push_str(&optparse::help(OPTIONS));
    s.push('\n');
    s.push_str(AFTER_HELP);
    s.push('\n');
    s
}

/// Python's `repr()` of a string, as optparse's messages quote values.
fn repr(v: &str) -> String {
    if v.contains('\'') && !v.contains('"') {
        format!("\"{v}\"")
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

fn int_value(opt: &str, v: &str) -> Result<i64, String> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| format!("option {opt}: invalid integer value: {}", repr(v)))
}

fn float_value(opt: &str, v: &str) -> Result<f64, String> {
    v.trim()
        .parse::<f64>()
        .map_err(|_| format!("option {opt}: invalid floating-point value: {}", repr(v)))
}

/// clush's `safestring`: not empty and not an option.
fn safe_value(opt: &str, v: &str) -> Result<String, String> {
    if v.is_empty() || v.starts_with('-') {
        return Err(format!("option {opt}: invalid value: {}", repr(v)));
    }
    Ok(v.to_string())
}

fn choice(opt: &str, v: &str, choices: &[&str]) -> Result<(), String> {
    if choices.contains(&v) {
        return Ok(());
    }
    let list: Vec<String> = choices.iter().map(|c| repr(c)).collect();
    Err(format!(
        "option {opt}: invalid choice: {} (choose from {})",
        repr(v),
        list.join(", ")
    ))
}

/// clush.conf's booleans (ConfigParser's).
fn conf_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(format!("-O {key}={v}: not a boolean (yes/no)")),
    }
}

fn parse(args: &[OsString]) -> Result<Request, String> {
    let mut words = Vec::with_capacity(args.len());
    for a in args {
        match a.to_str() {
            Some(s) => words.push(s.to_string()),
            None => return Err(format!("argument {a:?} is not valid UTF-8")),
        }
    }
    let (hits, command) = optparse::parse(OPTIONS, &words)?;
    let mut p = Parsed {
        keepalive: 10,
        node_count: true,
        ..Parsed::default()
    };
    let mut conf: Vec<(String, String)> = Vec::new();
    // --conf FILE first: the flags win over its [Main] keys.
    if let Some(h) = hits.iter().rev().find(|h| h.spec.key == Key::Conf) {
        read_conf(&mut p, Path::new(h.value.as_deref().unwrap_or("")))?;
    }
    for h in &hits {
        let opt = h.name.as_str();
        let v = h.value.as_deref().unwrap_or("");
        match h.spec.key {
            Key::Help => return Ok(Request::Help),
            Key::Version => return Ok(Request::Version),
            Key::Nodes => p.nodes.push(safe_value(opt, v)?),
            Key::Exclude => p.exclude.push(safe_value(opt, v)?),
            Key::Group => p.groups.push(safe_value(opt, v)?),
            Key::ExcludeGroup => p.exclude_groups.push(safe_value(opt, v)?),
            Key::All => p.all = true,
            Key::GroupSource => p.group_source = Some(safe_value(opt, v)?),
            Key::GroupsConf => p.groups_conf = Some(v.into()),
            Key::Hostfile => p.hostfiles.push(v.into()),
            Key::Conf => {}
            Key::Axis => p.axis = axis(opt, v)?,
            Key::Pick => {
                let n = int_value(opt, v)?;
                p.pick = Some(usize::try_from(n).map_err(|_| format!("option {opt}: {n} < 0"))?);
            }
            Key::Site => p.site = Some(v.into()),
            Key::Fanout => {
                let n = int_value(opt, v)?;
                p.fanout = Some(positive(opt, n)?);
            }
            // 0 is clush's "not given": the default connect timeout, no
            // command timeout.
            Key::ConnectTimeout => {
                let t = float_value(opt, v)?;
                p.connect_timeout = (t != 0.0).then_some(t);
            }
            Key::CommandTimeout => {
                let t = float_value(opt, v)?;
                p.command_timeout = (t != 0.0).then_some(t);
            }
            Key::Gather => p.gather = true,
            Key::GatherAll => p.gather_all = true,
            Key::LineMode => p.line_mode = true,
            Key::NoLabel => p.no_label = true,
            Key::MaxRc => p.maxrc = true,
            Key::Json => p.json = true,
            Key::Outdir => p.outdir = Some(v.into()),
            Key::Errdir => p.errdir = Some(v.into()),
            Key::Color => {
                choice(opt, v, &["", "never", "always", "auto"])?;
                p.color = color(v);
            }
            Key::Progress => p.progress = true,
            Key::Quiet => p.quiet = true,
            Key::Verbose => p.verbose = true,
            Key::NoStdin => {}
            Key::ConfOption => match v.split_once('=') {
                Some((k, val)) => conf.push((k.to_string(), val.to_string())),
                None => {
                    return Err(format!(
                        "option {opt}: invalid value: {} (KEY=VALUE)",
                        repr(v)
                    ))
                }
            },
            Key::Worker => {
                choice(opt, v, &["ssh", "exec"])?;
                p.exec = v == "exec";
            }
            Key::User => p.user = Some(safe_value(opt, v)?),
            Key::SshOptions => p.ssh_options.push(v.to_string()),
            Key::SshConfig => p.ssh_config = Some(v.into()),
            Key::AcceptNew => p.accept_new_host_keys = true,
            Key::Keepalive => {
                let n = int_value(opt, v)?;
                p.keepalive = u32::try_from(positive(opt, n)?)
                    .map_err(|_| format!("option {opt}: {n} is too large"))?;
            }
            Key::ControlPersist => {
                let n = int_value(opt, v)?;
                p.control_persist = Some(positive(opt, n)? as u64);
            }
            Key::Unsupported => {
                return Err(format!(
                    "option {opt} is clush's but swh-deploy does not support it (see docs/run.md)"
                ))
            }
        }
    }
    // -O KEY=VALUE wins over the flags, whatever the order (as in clush).
    for (k, v) in conf {
        apply_conf(&mut p, "-O", &k, &v)?;
    }
    if command.is_empty() {
        return Err("no command given (clush's interactive mode is not supported)".into());
    }
    p.command = command;
    if p.json && (p.gather || p.gather_all || p.line_mode) {
        return Err("--json excludes -b, -B and -L".into());
    }
    Ok(Request::Run(Box::new(p)))
}

/// One clush.conf key (from `-O` or a `--conf` file, `what` says which).
fn apply_conf(p: &mut Parsed, what: &str, k: &str, v: &str) -> Result<(), String> {
    let o = format!("{what} {k}");
    match k {
        "color" => {
            choice(&o, v, &["", "never", "always", "auto"])?;
            p.color = color(v);
        }
        "maxrc" => p.maxrc = conf_bool(&o, v)?,
        "node_count" => p.node_count = conf_bool(&o, v)?,
        "fanout" => p.fanout = Some(positive(&o, int_value(&o, v)?)?),
        "connect_timeout" => {
            let t = float_value(&o, v)?;
            p.connect_timeout = (t != 0.0).then_some(t);
        }
        "command_timeout" => {
            // clush.conf's default, 0, means no timeout.
            let t = float_value(&o, v)?;
            p.command_timeout = (t > 0.0).then_some(t);
        }
        "ssh_user" => p.user = Some(v.to_string()),
        "ssh_options" => p.ssh_options.push(v.to_string()),
        "command_prefix" => p.command_prefix = (!v.is_empty()).then(|| v.to_string()),
        "verbosity" => {
            let n = int_value(&o, v)?;
            p.quiet = n <= 0;
            p.verbose = n >= 2;
        }
        // Accepted and not used: file descriptors are not a limit here,
        // and these only matter to clush's interactive mode or to file
        // copy, which swh-deploy does not have.
        "fd_max" => {
            int_value(&o, v)?;
        }
        "history_size" | "confdir" | "scp_path" | "rcp_path" | "scp_options" => {}
        "password_prompt" if !conf_bool(&o, v)? => {}
        _ => {
            return Err(format!(
                "{what}: unknown or unsupported clush.conf key {} (see swh-deploy run --help)",
                repr(k)
            ))
        }
    }
    Ok(())
}

/// A clush.conf file (`--conf`): its `[Main]` keys, as ConfigParser reads
/// them (`key: value` or `key = value`, `#`/`;` comments); other sections
/// (clush's modes) are not used.
fn read_conf(p: &mut Parsed, path: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--conf {}: {e}", path.display()))?;
    let mut main = false;
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(section) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            main = section.trim() == "Main";
            continue;
        }
        let Some(sep) = t.find([':', '=']) else {
            return Err(format!("{at}: not a 'key: value' line: {}", repr(t)));
        };
        if line.starts_with([' ', '\t']) {
            return Err(format!("{at}: continuation lines are not supported"));
        }
        if main {
            let key = t[..sep].trim().to_ascii_lowercase();
            apply_conf(p, &at, &key, t[sep + 1..].trim())?;
        }
    }
    Ok(())
}

/// clush's `--axis`: 1-based axes as a range set (`1`, `1-2`, `1,3`), or
/// one negative axis counted from the end; 0-based for the node set.
fn axis(opt: &str, v: &str) -> Result<Option<Vec<i64>>, String> {
    let bad = || format!("option {opt}: invalid axis: {}", repr(v));
    if v.trim().is_empty() {
        return Ok(None);
    }
    if let Some(n) = v.trim().strip_prefix('-') {
        let n: i64 = n.parse().map_err(|_| bad())?;
        return Ok(Some(vec![-n]));
    }
    let mut out = Vec::new();
    for part in v.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: i64 = a.trim().parse().map_err(|_| bad())?;
        let b: i64 = b.trim().parse().map_err(|_| bad())?;
        if a < 1 || b < a || b - a > 64 {
            return Err(bad());
        }
        out.extend((a..=b).map(|i| i - 1));
    }
    Ok(Some(out))
}

fn positive(opt: &str, n: i64) -> Result<usize, String> {
    if n < 1 {
        return Err(format!("option {opt}: {n} is not a number >= 1"));
    }
    usize::try_from(n).map_err(|_| format!("option {opt}: {n} is too large"))
}

fn color(v: &str) -> Color {
    match v {
        "always" => Color::Always,
        "never" => Color::Never,
        _ => Color::Auto,
    }
}

fn seconds(what: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v < 0.0 {
        anyhow::bail!("{what}: {v} is not a number of seconds >= 0");
    }
    Ok(Duration::from_secs_f64(v))
}

/// The site file of `--site`, else of `$SWH_DEPLOY_SITE`, if any.
fn site(args: &Parsed) -> anyhow::Result<Option<Site>> {
    let path = match &args.site {
        Some(p) => p.clone(),
        None => match std::env::var_os(swh_deploy_site::SITE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => return Ok(None),
        },
    };
    Ok(Some(Site::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?))
}

fn targets(args: &Parsed, site: Option<&Site>) -> anyhow::Result<swh_deploy_nodeset::NodeSet> {
    use swh_deploy_nodeset::{ClusterShellGroups, GroupResolver};
    let mut clustershell = match (
        &args.groups_conf,
        site.and_then(|s| s.clustershell.config_dir.as_deref()),
    ) {
        (Some(file), _) => ClusterShellGroups::load(std::slice::from_ref(file)),
        (None, Some(dir)) => ClusterShellGroups::load_dir(dir),
        (None, None) => ClusterShellGroups::load_default(),
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
    args: &Parsed,
    resolver: &dyn swh_deploy_nodeset::GroupResolver,
) -> anyhow::Result<swh_deploy_nodeset::NodeSet> {
    use swh_deploy_nodeset::NodeSet;
    let parse = |what: &str, expr: &str| -> anyhow::Result<NodeSet> {
        NodeSet::parse_with(expr, resolver).map_err(|e| anyhow::anyhow!("{what} {expr:?}: {e}"))
    };
    // clush's warning when a single node is also a local path (#225).
    let warn = |opt: &str, set: &NodeSet| {
        if set.len() == 1 && !args.quiet && Path::new(&set.to_string()).exists() {
            eprintln!(
                "Warning: using '-{opt} {set}' and local path '{set}' exists, was it expanded by \
                 the shell?"
            );
        }
    };
    let mut set = NodeSet::new();
    let mut excluded = Vec::new();
    for w in &args.nodes {
        let one = parse("-w", w)?;
        warn("w", &one);
        set.update(&one);
    }
    for x in &args.exclude {
        let one = parse("-x", x)?;
        warn("x", &one);
        excluded.push(one);
    }
    for f in &args.hostfiles {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("--hostfile {}: {e}", f.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            for word in line.split_whitespace() {
                let what = format!("--hostfile {}:{}:", f.display(), i + 1);
                set.update(&parse(&what, word)?);
            }
        }
    }
    for g in &args.groups {
        set.update(&parse("-g", &group_expr(g))?);
    }
    if args.all {
        let all = swh_deploy_nodeset::all_nodes(resolver, args.group_source.as_deref())
            .map_err(|e| anyhow::anyhow!("-a: {e}"))?;
        set.update(&all);
    }
    for x in &excluded {
        set.difference_update(x);
    }
    for g in &args.exclude_groups {
        set.difference_update(&parse("-X", &group_expr(g))?);
    }
    if let Some(n) = args.pick {
        set = pick(&set, n);
    }
    if set.is_empty() {
        return Err(UsageError("No node to run on.".into()).into());
    }
    Ok(set)
}

/// `n` nodes of `set` at random (all of them when it has no more).
fn pick(set: &swh_deploy_nodeset::NodeSet, n: usize) -> swh_deploy_nodeset::NodeSet {
    use std::hash::{BuildHasher, Hasher};
    let mut nodes: Vec<String> = set.iter().collect();
    // A partial Fisher-Yates shuffle seeded by the standard library's
    // per-process random hasher keys.
    let state = std::collections::hash_map::RandomState::new();
    let k = n.min(nodes.len());
    for i in 0..k {
        let mut h = state.build_hasher();
        h.write_usize(i);
        let j = i + (h.finish() as usize) % (nodes.len() - i);
        nodes.swap(i, j);
    }
    let mut out = swh_deploy_nodeset::NodeSet::new();
    for node in &nodes[..k] {
        if let Ok(one) = swh_deploy_nodeset::NodeSet::parse(node) {
            out.update(&one);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Gather,
    GatherLines,
    Sorted,
    Json,
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

fn run(prog: Prog, args: Parsed) -> anyhow::Result<ExitCode> {
    let site = site(&args)?;
    let set = targets(&args, site.as_ref())?;
    let site_ssh = site.as_ref().map(|s| s.ssh.clone()).unwrap_or_default();
    let fanout = args.fanout.unwrap_or(site_ssh.fanout);
    let hosts: Vec<String> = set.iter().collect();
    let mut command = args.command.join(" ");
    if let Some(prefix) = &args.command_prefix {
        command = format!("{prefix} {command}");
    }

    let transport: Box<dyn Transport> = if args.exec {
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
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none() && stdout_tty && (args.gather_all || stderr_tty)
        }
    };
    let style = Style {
        label: !args.no_label,
        node_count: args.node_count && !args.quiet,
        color,
    };
    let progress = stderr_tty
        && !args.quiet
        && (args.progress || matches!(mode, Mode::Gather | Mode::GatherLines | Mode::Sorted));

    let options = RunOptions {
        fanout,
        command_timeout: args.command_timeout.map(|v| seconds("-u", v)).transpose()?,
        merge_stderr: args.gather_all,
        hosts_label: Some(set.to_string()),
    };
    let cancel = CancelToken::new();
    let guard = cancel.cancel_on_signals()?;
    // clush prints a host's exit code line as it finishes, except when it
    // gathers; and none with -q -S (the exit status says it).
    let clush = prog.prog == "clush";
    let exit_lines = !(args.quiet && args.maxrc);
    let live_exit_lines = clush && mode == Mode::Direct && exit_lines;
    let mut printer = Printer {
        live_exit_lines,
        prog: prog.prog,
        mode,
        verbose: args.verbose,
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

    let axis = args.axis.clone();
    let fold = move |hosts: &[&str]| -> String {
        match (&axis, swh_deploy_nodeset::NodeSet::from_names(hosts)) {
            (Some(axis), Ok(mut set)) => {
                set.set_fold_axis(Some(axis.clone()));
                set.to_string()
            }
            _ => swh_deploy_fleet::fold(hosts),
        }
    };
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
            eprintln!("{}: writing output: {e}", prog.usage);
        }
        return Ok(ExitCode::from(1));
    }
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("{}: writing output: {e}", prog.usage);
        }
        return Ok(ExitCode::from(1));
    }
    write_dirs(&args, &report)?;

    let mut err = io::stderr().lock();
    let summary = render::SummaryOptions {
        node_count: !args.quiet,
        exit_codes: exit_lines && !live_exit_lines,
        timeouts: exit_lines,
        unreachable_as_255: clush,
        count_line: !clush,
    };
    if clush && report.cancelled {
        // clush's own words (the outputs gathered so far are printed, which
        // clush does not do).
        let _ = writeln!(err, "Keyboard interrupt.");
        return Ok(ExitCode::from(130));
    }
    for line in render::summary_with(&report, prog.prog, &fold, &summary) {
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

fn write_dirs(args: &Parsed, report: &RunReport) -> anyhow::Result<()> {
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
    /// `PROG: HOST: exited with exit code N` on stderr as each host
    /// finishes (clush's direct mode).
    live_exit_lines: bool,
    prog: &'static str,
    mode: Mode,
    /// `-v`: stdout lines as they arrive in the -b, -B and -L modes too.
    verbose: bool,
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
            (Mode::Direct, Stream::Stdout) | (Mode::Gather | Mode::Sorted, Stream::Stdout)
                if self.mode == Mode::Direct || self.verbose =>
            {
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
        if self.live_exit_lines {
            let rc = match result.status {
                Status::Exited(rc) if rc != 0 => Some(rc),
                Status::Unreachable => Some(255),
                _ => None,
            };
            if let Some(rc) = rc {
                self.clear_progress();
                let r = self.out.flush();
                self.check(r);
                eprintln!("{}: {}: exited with exit code {rc}", self.prog, result.host);
            }
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
        let mut s = format!("{}: {:>w$}/{}", self.prog, p.done, p.total, w = p.width);
        if p.failed > 0 {
            s.push_str(&format!(" ({} failed)", p.failed));
        }
        let pad = p.shown.saturating_sub(s.len());
        p.shown = s.len();
        let _ = write!(io::stderr(), "{s}{}\r", " ".repeat(pad));
    }
}
