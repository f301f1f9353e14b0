//! `clush`'s options (ClusterShell 1.10's, and swh-deploy's own), parsed
//! with the crate's optparse into a [`RunRequest`]; clush.conf's `[Main]`
//! keys from `--conf FILE` and `-O KEY=VALUE`.

use super::{ClushError, Prog};
use crate::optparse::{self, choice, float_value, int_value, py_repr, safe_value, OptSpec};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

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
    NoReuse,
    NoMux,
    /// A clush option that swh-deploy does not implement: refused by name.
    Unsupported,
}

macro_rules! opt {
    ($key:ident, $short:expr, [$($long:literal),*], $meta:expr, $help:literal) => {
        OptSpec::new(Key::$key, $short, &[$($long),*], $meta, $help)
    };
}

/// Every option of `run`: clush 1.10's (same names, same values; those that
/// swh-deploy does not implement are refused by name) and swh-deploy's own.
/// Long options match by unambiguous prefix, as in optparse.
static OPTIONS: &[OptSpec<Key>] =
    &[
        opt!(
            Help,
            Some('h'),
            ["help"],
            None,
            "show this help message and exit"
        ),
        opt!(
            Version,
            None,
            ["version"],
            None,
            "show program's version number and exit"
        ),
        opt!(
            NoStdin,
            Some('n'),
            ["nostdin"],
            None,
            "don't watch for possible input from stdin (always the case: stdin is not forwarded)"
        ),
        opt!(
            GroupSource,
            Some('s'),
            ["groupsource"],
            Some("GROUPSOURCE"),
            "group source to use for -g, -X, -a and @groups"
        ),
        opt!(
            GroupsConf,
            None,
            ["groupsconf"],
            Some("FILE"),
            "use this groups.conf(5) file instead of ClusterShell's"
        ),
        opt!(
            Conf,
            None,
            ["conf"],
            Some("FILE"),
            "read these clush.conf(5) [Main] settings (the keys of -O); flags win over them"
        ),
        opt!(
            ConfOption,
            Some('O'),
            ["option"],
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
            ["all"],
            None,
            "run the command on all nodes of the group source"
        ),
        opt!(
            Group,
            Some('g'),
            ["group"],
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
            ["engine"],
            Some("ENGINE"),
            "clush's event engine: not supported"
        ),
        opt!(
            Hostfile,
            None,
            ["hostfile", "machinefile"],
            Some("FILE"),
            "file listing target hosts (one node set per line, # comments); repeatable"
        ),
        opt!(
            Unsupported,
            None,
            ["topology"],
            Some("FILE"),
            "clush's tree mode: not supported"
        ),
        opt!(
            Pick,
            None,
            ["pick"],
            Some("N"),
            "pick N node(s) at random in the node set"
        ),
        opt!(Site, None, ["site"], Some("FILE"),
         "site file: its [groups] come before ClusterShell's for -g, -X, -a and @groups, and its \
          [ssh] settings (config, user, options, connect_timeout, fanout) apply unless a flag says \
          otherwise; default: $SWH_DEPLOY_SITE when set, else none"),
        opt!(
            Quiet,
            Some('q'),
            ["quiet"],
            None,
            "be quiet: no progress, and no node count in the exit code lines"
        ),
        opt!(
            Verbose,
            Some('v'),
            ["verbose"],
            None,
            "be verbose: with -b/-B, also print 'host: line' as lines arrive"
        ),
        opt!(
            Unsupported,
            Some('d'),
            ["debug"],
            None,
            "clush's debug messages: not supported"
        ),
        opt!(Unsupported, Some('G'), ["groupbase"], None, "not supported"),
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
            ["progress"],
            None,
            "show done/total progress on stderr (a terminal) even outside gathered modes"
        ),
        opt!(
            Gather,
            Some('b'),
            ["dshbak"],
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
            ["regroup"],
            None,
            "fold using node groups: not supported"
        ),
        opt!(
            Axis,
            None,
            ["axis"],
            Some("RANGESET"),
            "fold node sets in the output along these axes only (1..n for nD names; -1 is the \
             last)"
        ),
        opt!(
            MaxRc,
            Some('S'),
            ["maxrc"],
            None,
            "exit with the largest exit code (255 when a host was unreachable or timed out)"
        ),
        opt!(
            Color,
            None,
            ["color"],
            Some("WHEN"),
            "when to color node labels: never, always, auto"
        ),
        opt!(
            Unsupported,
            None,
            ["diff"],
            None,
            "diff of gathered outputs: not supported"
        ),
        opt!(
            Outdir,
            None,
            ["outdir"],
            Some("DIR"),
            "also write each host's stdout to DIR/HOST"
        ),
        opt!(
            Errdir,
            None,
            ["errdir"],
            Some("DIR"),
            "also write each host's stderr to DIR/HOST"
        ),
        opt!(
            Unsupported,
            Some('c'),
            ["copy"],
            None,
            "file copy: not supported"
        ),
        opt!(
            Unsupported,
            None,
            ["rcopy"],
            None,
            "file copy: not supported"
        ),
        opt!(
            Unsupported,
            None,
            ["dest"],
            Some("DEST_PATH"),
            "file copy: not supported"
        ),
        opt!(Unsupported, Some('p'), [], None, "file copy: not supported"),
        opt!(
            Fanout,
            Some('f'),
            ["fanout"],
            Some("FANOUT"),
            "at most N hosts at once [default: 64, or the site's]"
        ),
        opt!(
            Unsupported,
            None,
            ["grooming"],
            Some("GROOMING_DELAY"),
            "tree mode: not supported"
        ),
        opt!(
            User,
            Some('l'),
            ["user"],
            Some("USER"),
            "remote user (ssh -l)"
        ),
        opt!(
            SshOptions,
            Some('o'),
            ["options"],
            Some("OPTIONS"),
            "extra ssh options, split like a shell would (e.g. \"-oPort=2222\"); repeatable; they \
          take precedence over swh-deploy's defaults"
        ),
        opt!(
            ConnectTimeout,
            Some('t'),
            ["connect_timeout"],
            Some("CONNECT_TIMEOUT"),
            "connect timeout in seconds (ssh ConnectTimeout) [default: 10, or the site's]"
        ),
        opt!(
            CommandTimeout,
            Some('u'),
            ["command_timeout"],
            Some("COMMAND_TIMEOUT"),
            "command timeout in seconds [default: none]"
        ),
        opt!(
            Unsupported,
            Some('m'),
            ["mode"],
            Some("MODE"),
            "clush.conf modes: not supported"
        ),
        opt!(
            Worker,
            Some('R'),
            ["worker"],
            Some("WORKER"),
            "ssh (default) or exec (run the command locally, with %h, %host, %hosts, %n, %rank \
          substituted, as clush -R exec)"
        ),
        opt!(
            Unsupported,
            None,
            ["remote"],
            Some("REMOTE"),
            "tree mode: not supported"
        ),
        opt!(Json, None, ["json"], None,
         "one JSON object per host (host, rc, stdout, stderr, duration, unreachable, timed_out, \
          cancelled, error)"),
        opt!(
            SshConfig,
            Some('F'),
            ["ssh-config"],
            Some("FILE"),
            "ssh_config file to use (ssh -F)"
        ),
        opt!(AcceptNew, None, ["accept-new-host-keys"], None,
         "trust host keys seen for the first time (StrictHostKeyChecking=accept-new); changed keys \
          are still refused"),
        opt!(
            Keepalive,
            None,
            ["keepalive"],
            Some("SECS"),
            "keepalive interval (ServerAliveInterval, 3 probes) [default: 10]"
        ),
        opt!(
            ControlPersist,
            None,
            ["control-persist"],
            Some("SECS"),
            "keep each host's ssh connection open SECS after the run, for later runs to reuse \
             [default: 60]"
        ),
        opt!(
            NoReuse,
            None,
            ["no-reuse"],
            None,
            "open fresh ssh connections and keep none open after the run (no ControlMaster)"
        ),
        opt!(
            NoMux,
            None,
            ["no-mux"],
            None,
            "start an ssh client for every host even when its master is up (sessions then go \
             through ssh, not swh-deploy's own mux client)"
        ),
    ];

/// What the options of `run` say, once parsed and checked: a run to do.
#[derive(Debug, Default)]
pub struct RunRequest {
    pub(super) nodes: Vec<String>,
    pub(super) exclude: Vec<String>,
    pub(super) groups: Vec<String>,
    pub(super) exclude_groups: Vec<String>,
    pub(super) all: bool,
    pub(super) group_source: Option<String>,
    pub(super) groups_conf: Option<PathBuf>,
    pub(super) axis: Option<Vec<i64>>,
    pub(super) hostfiles: Vec<PathBuf>,
    pub(super) pick: Option<usize>,
    pub(super) site: Option<PathBuf>,
    pub(super) fanout: Option<usize>,
    pub(super) connect_timeout: Option<f64>,
    pub(super) command_timeout: Option<f64>,
    pub(super) gather: bool,
    pub(super) gather_all: bool,
    pub(super) line_mode: bool,
    pub(super) no_label: bool,
    pub(super) maxrc: bool,
    pub(super) json: bool,
    pub(super) outdir: Option<PathBuf>,
    pub(super) errdir: Option<PathBuf>,
    pub(super) color: Color,
    pub(super) progress: bool,
    pub(super) quiet: bool,
    pub(super) verbose: bool,
    pub(super) node_count: bool,
    pub(super) command_prefix: Option<String>,
    pub(super) exec: bool,
    pub(super) user: Option<String>,
    pub(super) ssh_options: Vec<String>,
    pub(super) ssh_config: Option<PathBuf>,
    pub(super) accept_new_host_keys: bool,
    pub(super) keepalive: u32,
    pub(super) control_persist: Option<u64>,
    pub(super) no_reuse: bool,
    pub(super) no_mux: bool,
    pub(super) command: Vec<String>,
}

/// `--color`: when node labels are coloured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Request {
    /// Run a command.
    Run(Box<RunRequest>),
    /// `-h/--help`: print [`help`].
    Help,
    /// `--version`.
    Version,
}

/// Program names: `prog` for messages of a run ("swh-deploy", or "clush"
/// `--help`: the usage line, then the options as optparse lays them out,
/// then the output modes and exit statuses.
pub fn help(prog: Prog) -> String {
    let mut s = format!(
        "Usage: {} [options] command\n\nRun a shell command on many hosts in parallel, as clush \
         does (same options, same output).\n\nOptions:\n",
        prog.usage
    );
    s.push_str(&optparse::options_help(OPTIONS));
    s.push('\n');
    s.push_str(AFTER_HELP);
    s.push('\n');
    s
}

/// clush.conf's booleans (ConfigParser's).
fn conf_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(format!("-O {key}={v}: not a boolean (yes/no)")),
    }
}

/// Parses `args` (after `run`, or after `clush`) as clush parses its
/// command line; a bad option or value is a usage error (exit 2).
pub fn parse(args: &[OsString]) -> Result<Request, ClushError> {
    parse_words(args).map_err(ClushError::Usage)
}

fn parse_words(args: &[OsString]) -> Result<Request, String> {
    let mut words = Vec::with_capacity(args.len());
    for a in args {
        match a.to_str() {
            Some(s) => words.push(s.to_string()),
            None => return Err(format!("argument {a:?} is not valid UTF-8")),
        }
    }
    let optparse::Parsed {
        opts: hits,
        args: command,
    } = optparse::parse(&[OPTIONS], &words)?;
    let mut p = RunRequest {
        keepalive: 10,
        node_count: true,
        ..RunRequest::default()
    };
    let mut conf: Vec<(String, String)> = Vec::new();
    // --conf FILE first: the flags win over its [Main] keys.
    if let Some(h) = hits.iter().rev().find(|h| h.key == Key::Conf) {
        read_conf(&mut p, Path::new(h.value.as_deref().unwrap_or("")))?;
    }
    for h in &hits {
        let opt = h.name.as_str();
        let v = h.value.as_deref().unwrap_or("");
        match h.key {
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
                        py_repr(v)
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
            Key::NoReuse => p.no_reuse = true,
            Key::NoMux => p.no_mux = true,
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
    if p.no_reuse && p.control_persist.is_some() {
        return Err("--no-reuse excludes --control-persist".into());
    }
    Ok(Request::Run(Box::new(p)))
}

/// One clush.conf key (from `-O` or a `--conf` file, `what` says which).
fn apply_conf(p: &mut RunRequest, what: &str, k: &str, v: &str) -> Result<(), String> {
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
                py_repr(k)
            ))
        }
    }
    Ok(())
}

/// A clush.conf file (`--conf`): its `[Main]` keys, as ConfigParser reads
/// them (`key: value` or `key = value`, `#`/`;` comments); other sections
/// (clush's modes) are not used.
fn read_conf(p: &mut RunRequest, path: &Path) -> Result<(), String> {
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
            return Err(format!("{at}: not a 'key: value' line: {}", py_repr(t)));
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
    let bad = || format!("option {opt}: invalid axis: {}", py_repr(v));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Request, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_words(&args)
    }

    fn run_request(args: &[&str]) -> RunRequest {
        match p(args) {
            Ok(Request::Run(r)) => *r,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn flags_values_and_the_command() {
        let r = run_request(&[
            "-bSw", "h[1-3]", "-x", "h2", "-g", "web", "-f", "8", "-t", "2.5", "-u", "0", "true",
        ]);
        assert!(r.gather && r.maxrc);
        assert_eq!(r.nodes, ["h[1-3]"]);
        assert_eq!(r.exclude, ["h2"]);
        assert_eq!(r.groups, ["web"]);
        assert_eq!(r.fanout, Some(8));
        assert_eq!(r.connect_timeout, Some(2.5));
        // 0 is clush's "not given".
        assert_eq!(r.command_timeout, None);
        let r = run_request(&["-w", "h1", "--fan=3", "-R", "exec", "echo", "-b", "%h"]);
        assert_eq!(r.fanout, Some(3));
        assert!(r.exec && !r.gather);
        assert_eq!(r.command, ["echo", "-b", "%h"]);
        assert_eq!(r.keepalive, 10);
        assert!(r.node_count);
    }

    #[test]
    fn help_version_and_refusals() {
        assert!(matches!(p(&["-h", "-w", "x"]), Ok(Request::Help)));
        assert!(matches!(p(&["--vers"]), Ok(Request::Version)));
        assert_eq!(
            p(&["-w", "h1"]).unwrap_err(),
            "no command given (clush's interactive mode is not supported)"
        );
        assert_eq!(
            p(&["--json", "-b", "-w", "h", "true"]).unwrap_err(),
            "--json excludes -b, -B and -L"
        );
        assert_eq!(
            p(&["-c", "f", "-w", "h"]).unwrap_err(),
            "option -c is clush's but swh-deploy does not support it (see docs/run.md)"
        );
        assert_eq!(
            p(&["-f", "0", "-w", "h", "true"]).unwrap_err(),
            "option -f: 0 is not a number >= 1"
        );
        assert_eq!(
            p(&["--color", "red", "true"]).unwrap_err(),
            "option --color: invalid choice: 'red' (choose from '', 'never', 'always', 'auto')"
        );
        assert_eq!(
            p(&["-w", "", "true"]).unwrap_err(),
            "option -w: invalid value: ''"
        );
        assert_eq!(
            p(&["-O", "fanout", "true"]).unwrap_err(),
            "option -O: invalid value: 'fanout' (KEY=VALUE)"
        );
        assert_eq!(
            p(&["-O", "bogus=1", "true"]).unwrap_err(),
            "-O: unknown or unsupported clush.conf key 'bogus' (see swh-deploy run --help)"
        );
        assert_eq!(
            p(&["--json", "--json=1", "true"]).unwrap_err(),
            "--json option does not take a value"
        );
    }

    #[test]
    fn option_keys_win_over_flags_and_conf_files_lose_to_them() {
        let r = run_request(&["-O", "fanout=3", "-f", "8", "-O", "maxrc=yes", "true"]);
        assert_eq!(r.fanout, Some(3));
        assert!(r.maxrc);
        let dir = std::env::temp_dir().join(format!("clush-conf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("clush.conf");
        std::fs::write(
            &conf,
            "# comment\n[Main]\nfanout: 5\nnode_count = no\n[mode:x]\nfanout: 9\n",
        )
        .unwrap();
        let c = conf.to_str().unwrap();
        let r = run_request(&["--conf", c, "true"]);
        assert_eq!(r.fanout, Some(5));
        assert!(!r.node_count);
        let r = run_request(&["--conf", c, "-f", "7", "true"]);
        assert_eq!(r.fanout, Some(7));
        std::fs::write(&conf, "[Main]\nfanout: x\n").unwrap();
        assert_eq!(
            p(&["--conf", c, "true"]).unwrap_err(),
            format!("option {c}:2 fanout: invalid integer value: 'x'")
        );
        std::fs::write(&conf, "[Main]\njust words\n").unwrap();
        assert_eq!(
            p(&["--conf", c, "true"]).unwrap_err(),
            format!("{c}:2: not a 'key: value' line: 'just words'")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn axis_is_one_based_or_one_negative_axis() {
        assert_eq!(axis("--axis", "1-2,4"), Ok(Some(vec![0, 1, 3])));
        assert_eq!(axis("--axis", "-1"), Ok(Some(vec![-1])));
        assert_eq!(axis("--axis", " "), Ok(None));
        assert_eq!(
            axis("--axis", "0"),
            Err("option --axis: invalid axis: '0'".into())
        );
        assert_eq!(
            axis("--axis", "2-1"),
            Err("option --axis: invalid axis: '2-1'".into())
        );
    }
}
