//! `swh-deploy nodeset`: ClusterShell's `nodeset` command (fold, expand,
//! count, regroup, index, list groups, set operations), same options, same
//! output, same messages, same exit codes. The work is done by the
//! `swh-deploy-nodeset` crate.
//!
//! Options are parsed as ClusterShell parses them (Python's optparse, see
//! [`optparse`]): unknown options are refused with exit 2, short options
//! cluster and take attached values, long options may be abbreviated, and
//! the options stop at the first node set.

pub mod optparse;
mod pyfmt;

use clap::Args;
use optparse::{py_int_option, py_repr, OptSpec};
use pyfmt::{PyArg, PyFmtError};
use std::cell::OnceCell;
use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use swh_deploy_nodeset::{
    all_nodes, group_names, node_set_groups, regroup, ClusterShellGroups, ErrorKind, GroupError,
    GroupResolver, NodeSet, NodeSetBuilder, ParseError, RangeSet,
};

/// Program name used in error messages.
const PROG: &str = "swh-deploy nodeset";
/// The usage line, as optparse prints it.
const USAGE: &str = "swh-deploy nodeset [COMMAND] [OPTIONS] [ns1 [-ixX] ns2|...]";
/// Largest node set `--fold -O FORMAT` formats (each formatted name is
/// kept before folding again).
const MAX_FORMATTED: usize = 10_000_000;
/// The ClusterShell release whose `nodeset` this command follows.
const CLUSTERSHELL: &str = "1.10.1";

/// Arguments of `swh-deploy nodeset`: taken raw and parsed with optparse's
/// rules (see `swh-deploy nodeset --help`).
#[derive(Debug, Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct NodesetArgs {
    /// Options and node sets, as ClusterShell's `nodeset` takes them: run
    /// `swh-deploy nodeset --help` for the list.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// The options of ClusterShell 1.10's `nodeset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Help,
    Version,
    GroupSource,
    GroupsConf,
    ConfigDir,
    Count,
    Expand,
    Fold,
    List,
    ListAll,
    Regroup,
    Index,
    ListSources,
    Completion,
    Exclude,
    Intersection,
    Xor,
    All,
    Autostep,
    Debug,
    Quiet,
    RangeSetMode,
    GroupBase,
    Separator,
    OutputFormat,
    Slice,
    Split,
    Contiguous,
    Axis,
    Pick,
}

const fn flag(
    key: Opt,
    short: Option<char>,
    long: &'static [&'static str],
    help: &'static str,
) -> OptSpec<Opt> {
    OptSpec {
        key,
        short,
        long,
        metavar: None,
        help,
    }
}

const fn valued(
    key: Opt,
    short: Option<char>,
    long: &'static [&'static str],
    metavar: &'static str,
    help: &'static str,
) -> OptSpec<Opt> {
    OptSpec {
        key,
        short,
        long,
        metavar: Some(metavar),
        help,
    }
}

const GENERAL: &[OptSpec<Opt>] = &[
    flag(
        Opt::Version,
        None,
        &["version"],
        "show program's version number and exit",
    ),
    flag(
        Opt::Help,
        Some('h'),
        &["help"],
        "show this help message and exit",
    ),
    valued(
        Opt::GroupSource,
        Some('s'),
        &["groupsource"],
        "GROUPSOURCE",
        "optional groups.conf(5) group source to use",
    ),
    valued(
        Opt::GroupsConf,
        None,
        &["groupsconf"],
        "FILE",
        "use alternate config file for groups.conf(5)",
    ),
    valued(
        Opt::ConfigDir,
        None,
        &["config-dir"],
        "DIR",
        "use DIR/groups.conf (swh-deploy addition)",
    ),
];
const COMMANDS: &[OptSpec<Opt>] = &[
    flag(
        Opt::Count,
        Some('c'),
        &["count"],
        "show number of nodes in nodeset(s)",
    ),
    flag(
        Opt::Expand,
        Some('e'),
        &["expand"],
        "expand nodeset(s) to separate nodes",
    ),
    flag(
        Opt::Fold,
        Some('f'),
        &["fold"],
        "fold nodeset(s) (or separate nodes) into one nodeset",
    ),
    flag(
        Opt::List,
        Some('l'),
        &["list"],
        "list node groups from one source (see -s GROUPSOURCE)",
    ),
    flag(
        Opt::ListAll,
        Some('L'),
        &["list-all"],
        "list node groups from all group sources",
    ),
    flag(
        Opt::Regroup,
        Some('r'),
        &["regroup"],
        "fold nodes using node groups (see -s GROUPSOURCE)",
    ),
    valued(
        Opt::Index,
        None,
        &["index"],
        "NODE",
        "output the index of NODE in the nodeset",
    ),
    flag(
        Opt::ListSources,
        None,
        &["list-sources", "groupsources"],
        "list all active group sources (see groups.conf(5))",
    ),
    flag(
        Opt::Completion,
        None,
        &["completion"],
        "list groups and nodes for shell completion",
    ),
];
const OPERATIONS: &[OptSpec<Opt>] = &[
    valued(
        Opt::Exclude,
        Some('x'),
        &["exclude"],
        "SUB_NODES",
        "exclude specified nodeset",
    ),
    valued(
        Opt::Intersection,
        Some('i'),
        &["intersection"],
        "AND_NODES",
        "calculate nodesets intersection",
    ),
    valued(
        Opt::Xor,
        Some('X'),
        &["xor"],
        "XOR_NODES",
        "calculate symmetric difference between nodesets",
    ),
];
const OPTIONS: &[OptSpec<Opt>] = &[
    flag(Opt::All, Some('a'), &["all"], "call external node groups support to display all nodes"),
    valued(Opt::Autostep, None, &["autostep"], "AUTOSTEP", "enable a-b/step style syntax when folding, value is min node count threshold (eg. '4', '50%' or 'auto')"),
    flag(Opt::Debug, Some('d'), &["debug"], "output more messages for debugging purpose"),
    flag(Opt::Quiet, Some('q'), &["quiet"], "be quiet, print essential output only"),
    flag(Opt::RangeSetMode, Some('R'), &["rangeset"], "switch to RangeSet instead of NodeSet. Useful when working on numerical cluster ranges, eg. 1,5,18-31"),
    flag(Opt::GroupBase, Some('G'), &["groupbase"], "hide group source prefix (always \"@groupname\")"),
    valued(Opt::Separator, Some('S'), &["separator"], "SEPARATOR", "separator string to use when expanding nodesets (default: ' ')"),
    valued(Opt::OutputFormat, Some('O'), &["output-format"], "FORMAT", "output format (default: '%s')"),
    valued(Opt::Slice, Some('I'), &["slice"], "SLICE_RANGESET", "return sliced off result"),
    valued(Opt::Split, None, &["split"], "MAXSPLIT", "split result into a number of subsets"),
    flag(Opt::Contiguous, None, &["contiguous"], "split result into contiguous subsets"),
    valued(Opt::Axis, None, &["axis"], "RANGESET", "fold along these axis only (axis 1..n for nD nodeset)"),
    valued(Opt::Pick, None, &["pick"], "N", "pick N node(s) at random in nodeset"),
];

/// `--autostep`'s value.
#[derive(Clone, Copy, Debug)]
enum Autostep {
    /// A node count threshold.
    Count(i64),
    /// A fraction of the result's size (`50%`).
    Fraction(f64),
    /// `auto`: every index of the result.
    Auto,
}

/// The parsed command line.
#[derive(Debug, Default)]
struct Options {
    groupsource: Option<String>,
    groupsconf: Option<PathBuf>,
    config_dir: Option<PathBuf>,
    count: bool,
    expand: bool,
    fold: bool,
    list: usize,
    listall: usize,
    regroup: bool,
    index: Option<String>,
    groupsources: bool,
    completion: bool,
    exclude: Vec<String>,
    intersection: Vec<String>,
    xor: Vec<String>,
    all: bool,
    autostep: Option<Autostep>,
    debug: bool,
    quiet: bool,
    rangeset: bool,
    groupbase: bool,
    separator: Option<String>,
    output_format: Option<String>,
    slice: Option<String>,
    split: Option<i64>,
    contiguous: bool,
    axis: Option<String>,
    pick: Option<i64>,
    help: bool,
    version: bool,
    args: Vec<String>,
}

/// Parses the command line (without the program and subcommand names).
fn parse_options(argv: &[String]) -> Result<Options, Failure> {
    let table: Vec<OptSpec<Opt>> = [GENERAL, COMMANDS, OPERATIONS, OPTIONS]
        .iter()
        .flat_map(|t| t.iter())
        .map(|s| OptSpec {
            key: s.key,
            short: s.short,
            long: s.long,
            metavar: s.metavar,
            help: s.help,
        })
        .collect();
    let parsed = optparse::parse(&table, argv).map_err(Failure::Usage)?;
    let mut o = Options::default();
    for occ in parsed.opts {
        let value = occ.value.unwrap_or_default();
        let bad = |what: &str| Failure::Usage(format!("option {}: {what}", occ.name));
        match occ.key {
            Opt::Help => o.help = true,
            Opt::Version => o.version = true,
            Opt::GroupSource => {
                // ClusterShell's "safestring": not empty, not an option.
                if value.is_empty() || value.starts_with('-') {
                    return Err(bad(&format!("invalid value: {}", py_repr(&value))));
                }
                o.groupsource = Some(value);
            }
            Opt::GroupsConf => o.groupsconf = Some(PathBuf::from(value)),
            Opt::ConfigDir => o.config_dir = Some(PathBuf::from(value)),
            Opt::Count => o.count = true,
            Opt::Expand => o.expand = true,
            Opt::Fold => o.fold = true,
            Opt::List => o.list += 1,
            Opt::ListAll => o.listall += 1,
            Opt::Regroup => o.regroup = true,
            Opt::Index => o.index = Some(value),
            Opt::ListSources => o.groupsources = true,
            Opt::Completion => o.completion = true,
            Opt::Exclude => o.exclude.push(value),
            Opt::Intersection => o.intersection.push(value),
            Opt::Xor => o.xor.push(value),
            Opt::All => o.all = true,
            Opt::Autostep => {
                o.autostep = Some(parse_autostep(&value).ok_or_else(|| {
                    bad(&format!(
                        "invalid value: {}, should be node count, node percentage or 'auto'",
                        py_repr(&value)
                    ))
                })?)
            }
            Opt::Debug => o.debug = true,
            Opt::Quiet => o.quiet = true,
            Opt::RangeSetMode => o.rangeset = true,
            Opt::GroupBase => o.groupbase = true,
            Opt::Separator => o.separator = Some(value),
            Opt::OutputFormat => o.output_format = Some(value),
            Opt::Slice => o.slice = Some(value),
            Opt::Split => {
                o.split =
                    Some(py_int_option(&value).ok_or_else(|| {
                        bad(&format!("invalid integer value: {}", py_repr(&value)))
                    })?)
            }
            Opt::Contiguous => o.contiguous = true,
            Opt::Axis => o.axis = Some(value),
            Opt::Pick => {
                o.pick =
                    Some(py_int_option(&value).ok_or_else(|| {
                        bad(&format!("invalid integer value: {}", py_repr(&value)))
                    })?)
            }
        }
    }
    o.args = parsed.args;
    Ok(o)
}

/// ClusterShell's autostep type: `N`, `P%` or `auto`.
fn parse_autostep(value: &str) -> Option<Autostep> {
    if value.contains('%') {
        let mut num = value.to_string();
        num.pop();
        return num
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| Autostep::Fraction(f / 100.0));
    }
    if let Some(v) = py_decimal(value) {
        return Some(Autostep::Count(v));
    }
    (value == "auto").then_some(Autostep::Auto)
}

/// Python's `int(value)` (base 10): whitespace, sign, digits, underscores.
fn py_decimal(value: &str) -> Option<i64> {
    let t = value.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'_') || t.starts_with('_') {
        return None;
    }
    let v: i64 = t.replace('_', "").parse().ok()?;
    Some(if neg { -v } else { v })
}

fn help_text() -> String {
    optparse::help(
        USAGE,
        &[
            ("Options", GENERAL),
            ("Commands", COMMANDS),
            ("Operations", OPERATIONS),
            ("Options", OPTIONS),
        ],
    )
}
/// ClusterShell's standard group resolver, loaded on first use so that a
/// broken configuration only matters to commands that use groups.
struct LazyGroups {
    files: Vec<PathBuf>,
    default_source: Option<String>,
    cell: OnceCell<Result<ClusterShellGroups, ParseError>>,
}

impl LazyGroups {
    fn get(&self) -> Result<&ClusterShellGroups, GroupError> {
        let loaded = self.cell.get_or_init(|| {
            let mut g = ClusterShellGroups::load(&self.files)?;
            if let Some(s) = &self.default_source {
                g.set_default_source(s)?;
            }
            Ok(g)
        });
        match loaded {
            Ok(g) => Ok(g),
            Err(e) if e.kind == ErrorKind::UnknownSource => {
                Err(GroupError::UnknownSource(e.message.clone()))
            }
            Err(e) if e.kind == ErrorKind::ConfigSyntax => {
                Err(GroupError::ConfigSyntax(e.message.clone()))
            }
            Err(e) => Err(GroupError::Config(e.message.clone())),
        }
    }

    fn loaded(&self) -> Result<&ClusterShellGroups, ParseError> {
        self.get().map_err(GroupError::into_parse_error)
    }
}

impl GroupResolver for LazyGroups {
    fn sources(&self) -> Vec<String> {
        self.get().map(|g| g.sources()).unwrap_or_default()
    }
    fn group_nodes(&self, group: &str, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        self.get()?.group_nodes(group, source)
    }
    fn all_nodes(&self, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        self.get()?.all_nodes(source)
    }
    fn group_list(&self, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        self.get()?.group_list(source)
    }
    fn has_node_groups(&self, source: Option<&str>) -> bool {
        self.get().is_ok_and(|g| g.has_node_groups(source))
    }
    fn node_groups(&self, node: &str, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        self.get()?.node_groups(node, source)
    }
}

/// Python's string escapes, as ClusterShell evaluates `-S`.
fn unescape(s: &str) -> Result<String, Failure> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => return Err(Failure::Error(invalid_separator(), None)),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('\n') => {}
            Some('x') => {
                let h: String = (0..2).filter_map(|_| chars.next()).collect();
                match u32::from_str_radix(&h, 16).ok().and_then(char::from_u32) {
                    Some(ch) if h.len() == 2 => out.push(ch),
                    _ => return Err(Failure::Error(invalid_separator(), None)),
                }
            }
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
        }
    }
    Ok(out)
}

fn invalid_separator() -> ParseError {
    ParseError::new(ErrorKind::Value, "invalid separator")
}

/// ClusterShell's `--axis`: 1-based axes, or one negative axis.
fn parse_axis(axis: &str) -> Result<Vec<i64>, Failure> {
    if let Some(stripped) = axis.strip_prefix('-') {
        return stripped
            .trim()
            .parse::<i64>()
            .map(|v| vec![-v])
            .map_err(|_| {
                Failure::Error(
                    ParseError::new(
                        ErrorKind::Value,
                        format!("invalid literal for int() with base 10: '{axis}'"),
                    ),
                    None,
                )
            });
    }
    let rs = RangeSet::parse(axis).map_err(|e| Failure::Error(range_error(e), None))?;
    Ok(rs
        .iter()
        .map(|i| clamp64(i.value()))
        .filter(|v| *v > 0)
        .map(|v| v - 1)
        .collect())
}

/// An index as an `i64` position, saturated.
fn clamp64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn range_error(e: swh_deploy_nodeset::RangeError) -> ParseError {
    ParseError::new(ErrorKind::Parse, e.to_string())
}

/// A failure: a usage error (exit 2) or a ClusterShell-style error (exit 1)
/// with the expression it is about.
enum Failure {
    Usage(String),
    Error(ParseError, Option<String>),
    /// A generic error printed as `PROG: message` (exit 1).
    Generic(String),
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Failure {
        Failure::Error(e, None)
    }
}

impl From<PyFmtError> for Failure {
    fn from(e: PyFmtError) -> Failure {
        match e {
            // ClusterShell: a TypeError is a generic error (`nodeset: ...`),
            // a ValueError is printed as `ERROR: ...`.
            PyFmtError::Type(m) => Failure::Generic(m),
            PyFmtError::Value(m) => value_error(m),
        }
    }
}

/// A value error, printed `ERROR: message` (exit 1).
fn value_error(message: impl Into<String>) -> Failure {
    Failure::Error(ParseError::new(ErrorKind::Value, message), None)
}

/// The set being computed: nodes, or plain indexes with `-R`.
#[derive(Clone, Debug)]
enum XSet {
    Nodes(NodeSet),
    Ranges(RangeSet),
}

impl XSet {
    fn empty(rangeset: bool) -> XSet {
        if rangeset {
            XSet::Ranges(RangeSet::new())
        } else {
            XSet::Nodes(NodeSet::new())
        }
    }

    fn len(&self) -> usize {
        match self {
            XSet::Nodes(n) => n.len(),
            XSet::Ranges(r) => r.len(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            XSet::Nodes(n) => n.is_empty(),
            XSet::Ranges(r) => r.is_empty(),
        }
    }

    fn apply(&mut self, op: Op, other: &XSet) {
        match (self, other) {
            (XSet::Nodes(a), XSet::Nodes(b)) => match op {
                Op::Union => a.update(b),
                Op::Intersection => a.intersection_update(b),
                Op::Difference => a.difference_update(b),
                Op::Xor => a.symmetric_difference_update(b),
            },
            (XSet::Ranges(a), XSet::Ranges(b)) => {
                *a = match op {
                    Op::Union => a.union(b),
                    Op::Intersection => a.intersection(b),
                    Op::Difference => a.difference(b),
                    Op::Xor => a.symmetric_difference(b),
                }
            }
            _ => {}
        }
    }

    /// Positions `start..stop` of the iteration order (Python slice).
    fn slice(&self, start: i64, stop: i64) -> XSet {
        match self {
            XSet::Nodes(n) => XSet::Nodes(n.slice(start, Some(stop), 1)),
            XSet::Ranges(r) => {
                let len = r.len() as i64;
                let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
                let (a, b) = (norm(start), norm(stop));
                XSet::Ranges(r.slice_positions(a as usize, b.max(a) as usize))
            }
        }
    }

    /// ClusterShell's `split(n)`: at most n parts of equal size (+-1).
    fn split(&self, n: usize) -> Vec<XSet> {
        let len = self.len();
        let size = len / n;
        let left = len % n;
        let mut begin = 0usize;
        let mut out = Vec::new();
        for i in 0..n.min(len) {
            let l = size + usize::from(i < left);
            out.push(self.slice(begin as i64, (begin + l) as i64));
            begin += l;
        }
        out
    }

    fn contiguous(&self) -> Vec<XSet> {
        match self {
            XSet::Nodes(n) => n.contiguous().into_iter().map(XSet::Nodes).collect(),
            XSet::Ranges(r) => r.contiguous().into_iter().map(XSet::Ranges).collect(),
        }
    }

    fn set_autostep(&mut self, autostep: Option<i64>) {
        if let XSet::Nodes(n) = self {
            n.set_autostep(autostep);
        }
    }

    fn folded(&self, autostep: Option<i64>) -> String {
        match self {
            XSet::Nodes(n) => n.to_string(),
            XSet::Ranges(r) => {
                let mut s = String::new();
                r.write_folded_autostep(&mut s, autostep);
                s
            }
        }
    }

    /// Calls `f` with each element's string, in order.
    fn for_each(&self, mut f: impl FnMut(&str)) {
        match self {
            XSet::Nodes(n) => n.for_each_name(f),
            XSet::Ranges(r) => {
                let mut buf = String::new();
                for i in r.iter() {
                    buf.clear();
                    i.write_to(&mut buf);
                    f(&buf);
                }
            }
        }
    }
}

/// A set operation.
#[derive(Clone, Copy, Debug)]
enum Op {
    Union,
    Intersection,
    Difference,
    Xor,
}

/// Parses one expression with groups, remembering it for error display.
fn parse(expr: &str, groups: &LazyGroups) -> Result<NodeSet, Failure> {
    NodeSet::parse_with(expr, groups).map_err(|e| Failure::Error(e, Some(expr.to_string())))
}

/// Parses one operand in the current mode (`-R`: a range set).
fn parse_operand(expr: &str, rangeset: bool, groups: &LazyGroups) -> Result<XSet, Failure> {
    if rangeset {
        RangeSet::parse(expr)
            .map(XSet::Ranges)
            .map_err(|e| Failure::Error(range_error(e), None))
    } else {
        parse(expr, groups).map(XSet::Nodes)
    }
}

/// An argument: one operand per line (ClusterShell's `fromlist`).
fn parse_lines(arg: &str, rangeset: bool, groups: &LazyGroups) -> Result<XSet, Failure> {
    let mut acc = XSet::empty(rangeset);
    if let XSet::Nodes(_) = acc {
        let mut builder = NodeSetBuilder::new();
        for line in arg.lines() {
            builder.add(&parse(line, groups)?);
        }
        return Ok(XSet::Nodes(builder.build()));
    }
    for line in arg.lines() {
        acc.apply(Op::Union, &parse_operand(line, rangeset, groups)?);
    }
    Ok(acc)
}

/// Whether a stdin element is a plain node name (fast path).
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && !s.bytes().any(|b| {
            matches!(
                b,
                b'[' | b']' | b',' | b'!' | b'&' | b'^' | b'%' | b'@' | b'*' | b'?'
            ) || b.is_ascii_whitespace()
                || b >= 0x80
        })
}

/// Operands read from standard input: several per line, `#` comments.
fn read_stdin(rangeset: bool, groups: &LazyGroups) -> Result<XSet, Failure> {
    let stdin = std::io::stdin();
    let mut builder = NodeSetBuilder::new();
    let mut ranges = RangeSet::new();
    let mut buf = Vec::new();
    let mut lock = stdin.lock();
    loop {
        buf.clear();
        let n = lock
            .read_until(b'\n', &mut buf)
            .map_err(|e| value_error(e.to_string()))?;
        if n == 0 {
            break;
        }
        let line = decode_bytes(&buf);
        // ClusterShell cuts at '#', or drops the last character (the
        // newline) when there is none.
        let line: &str = match line.find('#') {
            Some(p) => &line[..p],
            None => {
                let mut end = line.len();
                if let Some(c) = line.chars().next_back() {
                    end -= c.len_utf8();
                }
                &line[..end]
            }
        };
        for elem in line.split_whitespace() {
            if rangeset {
                let r = RangeSet::parse(elem).map_err(|e| Failure::Error(range_error(e), None))?;
                ranges = ranges.union(&r);
            } else if is_plain(elem) {
                builder
                    .add_name(elem)
                    .map_err(|e| Failure::Error(e, Some(elem.to_string())))?;
            } else {
                builder.add(&parse(elem, groups)?);
            }
        }
    }
    Ok(if rangeset {
        XSet::Ranges(ranges)
    } else {
        XSet::Nodes(builder.build())
    })
}

/// Applies `op` with the operands read from standard input, unless there
/// are none (ClusterShell's `process_stdin`).
fn stdin_op(xset: &mut XSet, op: Op, rangeset: bool, groups: &LazyGroups) -> Result<(), Failure> {
    let s = read_stdin(rangeset, groups)?;
    if !s.is_empty() {
        xset.apply(op, &s);
    }
    Ok(())
}

/// First code point of the range that carries bytes that are not UTF-8
/// (like Python's `surrogateescape`: `U+10FF80`..`U+10FFFF` for bytes
/// 0x80..0xFF, in Unicode's last private-use plane).
const RAW_BASE: u32 = 0x10_FF00;

/// Decodes `bytes` as UTF-8, each byte of an invalid sequence kept as a
/// private-use character that [`RawBytes`] writes back as that byte: node
/// names that are not UTF-8 pass through unchanged, as in ClusterShell.
fn decode_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for &b in &bad[..n] {
                    out.push(char::from_u32(RAW_BASE + u32::from(b)).unwrap_or('\u{fffd}'));
                }
                rest = &bad[n..];
            }
        }
    }
}

/// Standard output that writes the characters of [`decode_bytes`] back as
/// the raw bytes they stand for.
struct RawBytes<W: Write>(W);

impl<W: Write> Write for RawBytes<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // U+10FF80..U+10FFFF is F4 8F BE/BF xx in UTF-8.
        if !buf.windows(2).any(|w| w == [0xF4, 0x8F]) {
            return self.0.write_all(buf);
        }
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while i < buf.len() {
            if buf[i] == 0xF4
                && i + 3 < buf.len()
                && buf[i + 1] == 0x8F
                && buf[i + 2] & 0xFE == 0xBE
            {
                out.push(((buf[i + 2] & 0x03) << 6) | (buf[i + 3] & 0x3F));
                i += 4;
            } else {
                out.push(buf[i]);
                i += 1;
            }
        }
        self.0.write_all(&out)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Runs `swh-deploy nodeset` (when reached through clap).
pub fn run(args: NodesetArgs) -> ExitCode {
    main(args.args)
}

/// Runs `swh-deploy nodeset` with its raw arguments (after `nodeset`).
pub fn main(raw: Vec<OsString>) -> ExitCode {
    let argv: Vec<String> = raw
        .into_iter()
        .map(|a| decode_bytes(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())))
        .collect();
    let stdout = std::io::stdout();
    let mut out = RawBytes(std::io::BufWriter::new(stdout.lock()));
    let r = parse_options(&argv).and_then(|o| execute(&o, &mut out));
    let flushed = out.flush();
    match r {
        Ok(()) => {
            if let Err(e) = flushed {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("ERROR: {e}");
                }
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("Usage: {USAGE}\n");
            eprintln!("{PROG}: error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Generic(msg)) => {
            eprintln!("{PROG}: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Error(e, input)) => {
            eprintln!("{}", e.cli_line(PROG));
            // A caret under the faulty part, only for a human reader.
            if let (Some(pos), Some(input), ErrorKind::Parse) = (e.position, input, e.kind) {
                if std::io::stderr().is_terminal() && pos <= input.len() && !input.contains('\n') {
                    let col = input[..pos].chars().count();
                    eprintln!("  {input}\n  {}^ (column {})", " ".repeat(col), col + 1);
                }
            }
            ExitCode::from(1)
        }
    }
}

fn io_err(e: std::io::Error) -> Failure {
    value_error(e.to_string())
}

/// Python's evaluation of `'''SEPARATOR'''`, as ClusterShell reads `-S`.
fn separator(o: &Options) -> Result<String, Failure> {
    let raw = o.separator.as_deref().unwrap_or(" ");
    // A triple quote or a trailing quote ends the literal early: Python
    // raises SyntaxError ("invalid separator").
    if raw.contains("'''") || raw.ends_with('\'') && !raw.ends_with("\\'") {
        return Err(Failure::Error(invalid_separator(), None));
    }
    unescape(raw)
}

fn execute(o: &Options, out: &mut dyn Write) -> Result<(), Failure> {
    if o.help {
        out.write_all(help_text().as_bytes()).map_err(io_err)?;
        return Ok(());
    }
    if o.version {
        writeln!(
            out,
            "{PROG} {} (ClusterShell {CLUSTERSHELL} nodeset)",
            env!("CARGO_PKG_VERSION")
        )
        .map_err(io_err)?;
        return Ok(());
    }
    let commands = [
        o.count,
        o.expand,
        o.fold,
        o.list > 0,
        o.listall > 0,
        o.regroup,
        o.groupsources,
        o.completion,
        o.index.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if commands == 0 {
        return Err(Failure::Usage("No command specified.".into()));
    }
    if commands > 1 {
        return Err(Failure::Usage("Multiple commands not allowed.".into()));
    }
    if (o.all || o.regroup) && o.rangeset {
        return Err(Failure::Usage(
            "-a/-r only supported in NodeSet mode".into(),
        ));
    }
    if o.split.is_some() && o.contiguous {
        return Err(Failure::Usage(
            "incompatible splitting options (split, contiguous)".into(),
        ));
    }
    let maxsplit = o.split.unwrap_or(1);
    if o.axis.as_deref().is_some_and(|a| !a.is_empty()) && (!o.fold || o.rangeset) {
        return Err(Failure::Usage(
            "--axis option is only supported when folding nodeset".into(),
        ));
    }
    if o.index.is_some() && o.pick.is_some_and(|p| p != 0) {
        return Err(Failure::Usage(
            "--index cannot be combined with --pick".into(),
        ));
    }
    let files = if let Some(f) = &o.groupsconf {
        vec![f.clone()]
    } else if let Some(d) = &o.config_dir {
        vec![d.join("groups.conf")]
    } else {
        ClusterShellGroups::default_paths()
    };
    let groups = LazyGroups {
        files,
        default_source: o.groupsource.clone(),
        cell: OnceCell::new(),
    };
    if let Some(gs) = &o.groupsource {
        if !o.quiet && o.rangeset {
            eprintln!("WARNING: option group source \"{gs}\" ignored");
        }
        groups.loaded()?;
    }
    if o.groupsources {
        let mut mark = if o.quiet { "" } else { " (default)" };
        for s in groups.loaded()?.sources() {
            writeln!(out, "{s}{mark}").map_err(io_err)?;
            mark = "";
        }
        return Ok(());
    }
    let rs = o.rangeset;
    let mut xset = XSet::empty(rs);
    if o.all {
        xset = XSet::Nodes(all_nodes(&groups, None)?);
    }
    if o.args.is_empty() && !o.all && o.list == 0 && o.listall == 0 && !o.completion {
        stdin_op(&mut xset, Op::Union, rs, &groups)?;
    }
    let has_ops = !o.intersection.is_empty() || !o.exclude.is_empty() || !o.xor.is_empty();
    if xset.is_empty() && has_ops && !o.quiet {
        eprintln!("WARNING: empty left operand for set operation");
    }
    for (list, op) in [
        (&o.intersection, Op::Intersection),
        (&o.exclude, Op::Difference),
        (&o.xor, Op::Xor),
    ] {
        for n in list {
            if n == "-" {
                stdin_op(&mut xset, op, rs, &groups)?;
            } else {
                let s = parse_operand(n, rs, &groups)?;
                xset.apply(op, &s);
            }
        }
    }
    // The rest of the arguments, in order. Consecutive unions are gathered
    // and folded once (a thousand single names fold in one pass).
    let mut unions: Option<NodeSetBuilder> = None;
    let flush = |xset: &mut XSet, unions: &mut Option<NodeSetBuilder>| {
        if let Some(b) = unions.take() {
            xset.apply(Op::Union, &XSet::Nodes(b.build()));
        }
    };
    let mut args = o.args.iter();
    while let Some(arg) = args.next() {
        let op = match arg.as_str() {
            "-i" | "--intersection" => Some(Op::Intersection),
            "-x" | "--exclude" => Some(Op::Difference),
            "-X" | "--xor" => Some(Op::Xor),
            _ => None,
        };
        match op {
            Some(op) => {
                flush(&mut xset, &mut unions);
                let Some(val) = args.next() else {
                    return Err(value_error("pop from empty list"));
                };
                if val == "-" {
                    stdin_op(&mut xset, op, rs, &groups)?;
                } else {
                    let s = parse_lines(val, rs, &groups)?;
                    xset.apply(op, &s);
                }
            }
            None if arg == "-" => {
                flush(&mut xset, &mut unions);
                stdin_op(&mut xset, Op::Union, rs, &groups)?
            }
            None => match parse_lines(arg, rs, &groups)? {
                XSet::Nodes(n) => unions.get_or_insert_with(NodeSetBuilder::new).add(&n),
                r => xset.apply(Op::Union, &r),
            },
        }
    }
    flush(&mut xset, &mut unions);

    let XSet::Nodes(nodes) = &xset else {
        return output(o, xset, maxsplit, &groups, out);
    };
    if o.list > 0 || o.listall > 0 {
        let level = o.list + o.listall;
        return list_groups(o, level, Some(nodes), &groups, has_ops, out);
    }
    let mut o_expand = o.expand;
    if o.completion {
        if o.groupsource.is_none() {
            for s in groups.loaded()?.sources() {
                writeln!(out, "@{s}:").map_err(io_err)?;
            }
        }
        list_groups(o, 1, None, &groups, has_ops, out)?;
        if nodes.is_empty() {
            return Ok(());
        }
        o_expand = true;
    }
    let o2 = Options {
        expand: o_expand,
        ..clone_options(o)
    };
    output(&o2, xset, maxsplit, &groups, out)
}

/// A copy of the options that `output` reads.
fn clone_options(o: &Options) -> Options {
    Options {
        groupsource: o.groupsource.clone(),
        count: o.count,
        expand: o.expand,
        fold: o.fold,
        regroup: o.regroup,
        index: o.index.clone(),
        autostep: o.autostep,
        rangeset: o.rangeset,
        groupbase: o.groupbase,
        separator: o.separator.clone(),
        output_format: o.output_format.clone(),
        slice: o.slice.clone(),
        contiguous: o.contiguous,
        axis: o.axis.clone(),
        pick: o.pick,
        ..Options::default()
    }
}

/// A small pseudo-random generator for `--pick` (xorshift, seeded from the
/// clock and the pid; not for secrets).
struct Picker(u64);

impl Picker {
    fn new() -> Picker {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Picker((t ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n as u64) as usize
    }
}

/// The final steps: slice, autostep, axis, pick, then print.
fn output(
    o: &Options,
    mut xset: XSet,
    maxsplit: i64,
    groups: &LazyGroups,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let separator = separator(o)?;
    if let Some(slice) = &o.slice {
        let rs = RangeSet::parse(slice).map_err(|e| Failure::Error(range_error(e), None))?;
        let mut acc = XSet::empty(o.rangeset);
        for (a, b) in rs.runs() {
            acc.apply(
                Op::Union,
                &xset.slice(clamp64(a.value()), clamp64(b.value()).saturating_add(1)),
            );
        }
        xset = acc;
    }
    let autostep = match o.autostep {
        None => None,
        Some(Autostep::Count(n)) => Some(n),
        Some(Autostep::Auto) => Some((xset.len() as i64).max(3)),
        Some(Autostep::Fraction(f)) => Some((xset.len() as f64 * f).ceil() as i64),
    };
    xset.set_autostep(autostep);
    if let (Some(axis), XSet::Nodes(n)) = (&o.axis, &mut xset) {
        if !axis.is_empty() {
            n.set_fold_axis(Some(parse_axis(axis)?));
        }
    }
    if let Some(pick) = o.pick.filter(|p| *p != 0) {
        if pick < 0 {
            return Err(value_error("Sample larger than population or is negative"));
        }
        let len = xset.len();
        if (pick as usize) < len {
            // Choose `pick` distinct positions (Floyd's algorithm).
            let mut rng = Picker::new();
            let mut chosen = std::collections::BTreeSet::new();
            for j in (len - pick as usize)..len {
                let t = rng.below(j + 1);
                if !chosen.insert(t) {
                    chosen.insert(j);
                }
            }
            let mut acc = XSet::empty(o.rangeset);
            for p in chosen {
                acc.apply(Op::Union, &xset.slice(p as i64, p as i64 + 1));
            }
            acc.set_autostep(autostep);
            if let (XSet::Nodes(a), XSet::Nodes(_)) = (&mut acc, &xset) {
                a.set_autostep(autostep);
            }
            xset = acc;
        }
    }
    let fmt = o.output_format.as_deref().unwrap_or("%s");
    if let Some(node) = &o.index {
        let pos = index_of(&xset, node, groups)?;
        writeln!(out, "{}", pyfmt::format(fmt, PyArg::Int(pos as i64))?).map_err(io_err)?;
        return Ok(());
    }
    let parts = if xset.is_empty() || maxsplit <= 1 && !o.contiguous {
        vec![xset]
    } else if o.contiguous {
        xset.contiguous()
    } else {
        xset.split(maxsplit as usize)
    };
    for mut part in parts {
        part.set_autostep(autostep);
        let line = render(o, &part, fmt, &separator, autostep, groups, out)?;
        if let Some(line) = line {
            out.write_all(line.as_bytes()).map_err(io_err)?;
        }
        out.write_all(b"\n").map_err(io_err)?;
    }
    Ok(())
}

/// One line of output for `part` (written directly when expanding).
fn render(
    o: &Options,
    part: &XSet,
    fmt: &str,
    separator: &str,
    autostep: Option<i64>,
    groups: &LazyGroups,
    out: &mut dyn Write,
) -> Result<Option<String>, Failure> {
    if o.expand {
        // Names go into one buffer written in large chunks; a failed
        // write (closed pipe) is reported once, at the end.
        let mut first = true;
        let mut chunk: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut failed: Option<Failure> = None;
        let plain = fmt == "%s";
        part.for_each(|name| {
            if failed.is_some() {
                return;
            }
            if !first {
                chunk.extend_from_slice(separator.as_bytes());
            }
            first = false;
            if plain {
                chunk.extend_from_slice(name.as_bytes());
            } else {
                match pyfmt::format(fmt, PyArg::Str(name)) {
                    Ok(s) => chunk.extend_from_slice(s.as_bytes()),
                    Err(e) => failed = Some(e.into()),
                }
            }
            if chunk.len() >= 1 << 16 {
                if let Err(e) = out.write_all(&chunk) {
                    failed = Some(io_err(e));
                }
                chunk.clear();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        out.write_all(&chunk).map_err(io_err)?;
        return Ok(None);
    }
    if o.fold {
        if let (XSet::Nodes(n), false) = (part, fmt == "%s") {
            // Each node formatted, then folded again (ClusterShell #277):
            // bounded, as every name is kept.
            if n.len() > MAX_FORMATTED {
                return Err(value_error(format!(
                    "too many nodes to fold with -O: {} (limit {MAX_FORMATTED})",
                    n.len()
                )));
            }
            let mut names = Vec::with_capacity(n.len());
            for name in n.iter() {
                names.push(pyfmt::format(fmt, PyArg::Str(&name))?);
            }
            let mut folded = NodeSet::from_names(names.iter().map(String::as_str))
                .map_err(|e| Failure::Error(e, None))?;
            folded.set_autostep(autostep);
            return Ok(Some(folded.to_string()));
        }
        return Ok(Some(pyfmt::format(
            fmt,
            PyArg::Str(&part.folded(autostep)),
        )?));
    }
    if o.regroup {
        let XSet::Nodes(n) = part else {
            return Ok(None);
        };
        let s = regroup(n, groups, o.groupsource.as_deref(), o.groupbase)?;
        return Ok(Some(pyfmt::format(fmt, PyArg::Str(&s))?));
    }
    Ok(Some(pyfmt::format(fmt, PyArg::Int(part.len() as i64))?))
}

/// `--index NODE`: the position of NODE in the result.
fn index_of(xset: &XSet, node: &str, groups: &LazyGroups) -> Result<usize, Failure> {
    match xset {
        XSet::Ranges(r) => {
            let one = RangeSet::parse(node).map_err(|e| Failure::Error(range_error(e), None))?;
            let found = match one.to_vec().as_slice() {
                [i] => r.position(i),
                _ => None,
            };
            found.ok_or_else(|| value_error(format!("{node} is not in RangeSet")))
        }
        XSet::Nodes(n) => {
            let other = parse(node, groups)?;
            if other.len() != 1 {
                return Err(value_error("index() argument must be a single node"));
            }
            let name = other.iter().next().unwrap_or_default();
            n.position(&name)
                .ok_or_else(|| value_error(format!("'{other}' is not in nodeset")))
        }
    }
}
fn list_groups(
    o: &Options,
    level: usize,
    xset: Option<&NodeSet>,
    groups: &LazyGroups,
    has_ops: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let sources: Vec<Option<String>> = if o.listall > 0 {
        let mut s: Vec<Option<String>> = groups.loaded()?.sources().into_iter().map(Some).collect();
        if let Some(first) = s.first_mut() {
            *first = None;
        }
        s
    } else {
        vec![o.groupsource.clone()]
    };
    for source in sources {
        let r = list_source(o, level, source.as_deref(), xset, groups, has_ops, out);
        match r {
            Err(Failure::Error(e, _)) if e.kind == ErrorKind::NoUpcall && o.listall > 0 => {
                let what = e
                    .message
                    .strip_prefix("No ")
                    .and_then(|m| m.split(" upcall").next())
                    .unwrap_or("list");
                eprintln!(
                    "Warning: No {what} upcall defined for group source {}",
                    source.as_deref().unwrap_or("None")
                );
            }
            r => r?,
        }
    }
    Ok(())
}

fn list_source(
    o: &Options,
    level: usize,
    source: Option<&str>,
    xset: Option<&NodeSet>,
    groups: &LazyGroups,
    has_ops: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let filter = xset.filter(|x| o.all || !x.is_empty() || has_ops);
    if let Some(xset) = filter {
        for (group, (gnodes, inodes)) in node_set_groups(xset, groups, source, o.groupbase)? {
            match level {
                1 => writeln!(out, "{group}"),
                2 => writeln!(out, "{group} {inodes}"),
                _ => writeln!(out, "{group} {inodes} {}/{}", inodes.len(), gnodes.len()),
            }
            .map_err(io_err)?;
        }
    } else {
        for group in group_names(groups, source)? {
            let nsgroup = match source {
                Some(s) if !o.groupbase => format!("@{s}:{group}"),
                _ => format!("@{group}"),
            };
            if level == 1 {
                writeln!(out, "{nsgroup}").map_err(io_err)?;
            } else {
                let nodes = parse(&nsgroup, groups)?;
                if level == 2 {
                    writeln!(out, "{nsgroup} {nodes}").map_err(io_err)?;
                } else {
                    writeln!(out, "{nsgroup} {nodes} {}", nodes.len()).map_err(io_err)?;
                }
            }
        }
    }
    Ok(())
}
