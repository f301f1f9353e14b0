//! `swh-deploy nodeset`: ClusterShell's `nodeset` command (fold, expand,
//! count, regroup, list groups, set operations), same options, same output,
//! same exit codes. The work is done by the `swh-deploy-nodeset` crate.

use clap::{ArgAction, Args};
use std::cell::OnceCell;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use swh_deploy_nodeset::{
    all_nodes, group_names, node_set_groups, regroup, ClusterShellGroups, ErrorKind, GroupError,
    GroupResolver, NodeSet, NodeSetBuilder, ParseError, RangeSet,
};

/// Program name used in error messages.
const PROG: &str = "swh-deploy nodeset";

/// Options of `swh-deploy nodeset` (those of ClusterShell's `nodeset`).
///
/// Options come first; after the first node set, `-i`, `-x` and `-X` apply
/// to the next argument in order, and `-` reads standard input. Without any
/// node set argument, node sets are read from standard input.
#[derive(Debug, Args)]
#[command(
    override_usage = "swh-deploy nodeset [COMMAND] [OPTIONS] [ns1 [-ixX] ns2|...]",
    disable_version_flag = true
)]
pub struct NodesetArgs {
    /// Show the number of nodes in the node set(s).
    #[arg(short = 'c', long = "count")]
    count: bool,
    /// Expand node set(s) to separate nodes.
    #[arg(short = 'e', long = "expand")]
    expand: bool,
    /// Fold node set(s) (or separate nodes) into one node set.
    #[arg(short = 'f', long = "fold")]
    fold: bool,
    /// List node groups of one source (-ll, -lll: with their nodes, counts).
    #[arg(short = 'l', long = "list", action = ArgAction::Count)]
    list: u8,
    /// List node groups of all group sources.
    #[arg(short = 'L', long = "list-all", action = ArgAction::Count)]
    list_all: u8,
    /// Fold nodes using node groups (see -s GROUPSOURCE).
    #[arg(short = 'r', long = "regroup")]
    regroup: bool,
    /// List all active group sources.
    #[arg(long = "list-sources", visible_alias = "groupsources")]
    list_sources: bool,
    /// Group source to use (default: groups.conf's default).
    #[arg(short = 's', long = "groupsource", value_name = "GROUPSOURCE")]
    groupsource: Option<String>,
    /// Use this groups.conf file instead of ClusterShell's search path.
    #[arg(long = "groupsconf", value_name = "FILE")]
    groupsconf: Option<PathBuf>,
    /// Use DIR/groups.conf (a ClusterShell configuration directory).
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Exclude the specified node set ("-" reads standard input).
    #[arg(
        short = 'x',
        long = "exclude",
        value_name = "NODESET",
        allow_hyphen_values = true
    )]
    exclude: Vec<String>,
    /// Intersect with the specified node set ("-" reads standard input).
    #[arg(
        short = 'i',
        long = "intersection",
        value_name = "NODESET",
        allow_hyphen_values = true
    )]
    intersection: Vec<String>,
    /// Symmetric difference with the specified node set.
    #[arg(
        short = 'X',
        long = "xor",
        value_name = "NODESET",
        allow_hyphen_values = true
    )]
    xor: Vec<String>,
    /// Include all nodes of the group source.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Be quiet, print essential output only.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Hide the group source prefix (always "@groupname").
    #[arg(short = 'G', long = "groupbase")]
    groupbase: bool,
    /// Separator string to use when expanding (Python escapes: '\n'...).
    #[arg(
        short = 'S',
        long = "separator",
        default_value = " ",
        allow_hyphen_values = true
    )]
    separator: String,
    /// Return sliced off result (range set of 0-based positions).
    #[arg(
        short = 'I',
        long = "slice",
        value_name = "RANGESET",
        allow_hyphen_values = true
    )]
    slice: Option<String>,
    /// Fold along these axes only (axis 1..n for nD node sets).
    #[arg(long = "axis", value_name = "RANGESET", allow_hyphen_values = true)]
    axis: Option<String>,
    /// Node sets, with -i/-x/-X NODESET and "-" (standard input) in order.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "NODESET"
    )]
    args: Vec<String>,
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

/// A failure: either a usage error (exit 2) or a ClusterShell-style error
/// (exit 1) with the expression it is about.
enum Failure {
    Usage(String),
    Error(ParseError, Option<String>),
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Failure {
        Failure::Error(e, None)
    }
}

/// Parses one expression with groups, remembering it for error display.
fn parse(expr: &str, groups: &LazyGroups) -> Result<NodeSet, Failure> {
    NodeSet::parse_with(expr, groups).map_err(|e| Failure::Error(e, Some(expr.to_string())))
}

/// Whether a stdin/argument element is a plain node name (fast path).
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

/// Node sets read from standard input: one or more per line, `#` comments.
fn read_stdin(groups: &LazyGroups) -> Result<NodeSet, Failure> {
    let stdin = std::io::stdin();
    let mut builder = NodeSetBuilder::new();
    let mut buf = Vec::new();
    let mut lock = stdin.lock();
    loop {
        buf.clear();
        let n = lock
            .read_until(b'\n', &mut buf)
            .map_err(|e| ParseError::new(ErrorKind::Value, e.to_string()))?;
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
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
            if is_plain(elem) {
                builder
                    .add_name(elem)
                    .map_err(|e| Failure::Error(e, Some(elem.to_string())))?;
            } else {
                builder.add(&parse(elem, groups)?);
            }
        }
    }
    Ok(builder.build())
}

/// An argument: one node set per line.
fn parse_lines(arg: &str, groups: &LazyGroups) -> Result<NodeSet, Failure> {
    let mut builder = NodeSetBuilder::new();
    for line in arg.lines() {
        builder.add(&parse(line, groups)?);
    }
    Ok(builder.build())
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
        .indexes()
        .iter()
        .map(|i| i.value())
        .filter(|v| *v > 0)
        .map(|v| v - 1)
        .collect())
}

fn range_error(e: swh_deploy_nodeset::RangeError) -> ParseError {
    ParseError::new(ErrorKind::Parse, e.to_string())
}

/// Runs `swh-deploy nodeset`.
pub fn run(args: NodesetArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let r = execute(&args, &mut out);
    let flushed = out.flush();
    match r {
        Ok(()) => {
            if flushed.is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("Usage: swh-deploy nodeset [COMMAND] [OPTIONS] [ns1 [-ixX] ns2|...]\n");
            eprintln!("{PROG}: error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Error(e, input)) => {
            eprintln!("{}", e.cli_line(PROG));
            if let (Some(pos), Some(input), ErrorKind::Parse) = (e.position, input, e.kind) {
                if pos <= input.len() && !input.contains('\n') {
                    let col = input[..pos].chars().count();
                    eprintln!("  {input}\n  {}^ (column {})", " ".repeat(col), col + 1);
                }
            }
            ExitCode::from(1)
        }
    }
}

fn io_err(e: std::io::Error) -> Failure {
    Failure::Error(ParseError::new(ErrorKind::Value, e.to_string()), None)
}

fn execute(o: &NodesetArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let commands = [
        o.count,
        o.expand,
        o.fold,
        o.list > 0,
        o.list_all > 0,
        o.regroup,
        o.list_sources,
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
    if o.axis.is_some() && !o.fold {
        return Err(Failure::Usage(
            "--axis option is only supported when folding nodeset".into(),
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
    if o.groupsource.is_some() {
        groups.loaded()?;
    }
    if o.list_sources {
        let mut mark = if o.quiet { "" } else { " (default)" };
        for s in groups.loaded()?.sources() {
            writeln!(out, "{s}{mark}").map_err(io_err)?;
            mark = "";
        }
        return Ok(());
    }
    let mut xset = NodeSet::new();
    if o.all {
        xset.update(&all_nodes(&groups, None)?);
    }
    if o.args.is_empty() && !o.all && o.list == 0 && o.list_all == 0 {
        xset.update(&read_stdin(&groups)?);
    }
    let has_ops = !o.intersection.is_empty() || !o.exclude.is_empty() || !o.xor.is_empty();
    if xset.is_empty() && has_ops && !o.quiet {
        eprintln!("WARNING: empty left operand for set operation");
    }
    for n in &o.intersection {
        let s = if n == "-" {
            read_stdin(&groups)?
        } else {
            parse(n, &groups)?
        };
        if n != "-" || !s.is_empty() {
            xset.intersection_update(&s);
        }
    }
    for n in &o.exclude {
        let s = if n == "-" {
            read_stdin(&groups)?
        } else {
            parse(n, &groups)?
        };
        xset.difference_update(&s);
    }
    for n in &o.xor {
        let s = if n == "-" {
            read_stdin(&groups)?
        } else {
            parse(n, &groups)?
        };
        xset.symmetric_difference_update(&s);
    }
    // The rest of the arguments, in order.
    let mut args = o.args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-i" | "--intersection" | "-x" | "--exclude" | "-X" | "--xor" => {
                let Some(val) = args.next() else {
                    let e = ParseError::new(ErrorKind::Value, "pop from empty list");
                    return Err(Failure::Error(e, None));
                };
                let s = if val == "-" {
                    read_stdin(&groups)?
                } else {
                    parse_lines(val, &groups)?
                };
                if val == "-" && s.is_empty() {
                    continue;
                }
                match arg.as_str() {
                    "-i" | "--intersection" => xset.intersection_update(&s),
                    "-x" | "--exclude" => xset.difference_update(&s),
                    _ => xset.symmetric_difference_update(&s),
                }
            }
            "-" => {
                let s = read_stdin(&groups)?;
                xset.update(&s);
            }
            _ => xset.update(&parse_lines(arg, &groups)?),
        }
    }

    if o.list > 0 || o.list_all > 0 {
        return list_groups(o, &xset, &groups, has_ops, out);
    }

    let separator = unescape(&o.separator)?;
    if let Some(slice) = &o.slice {
        let rs = RangeSet::parse(slice).map_err(|e| Failure::Error(range_error(e), None))?;
        let mut sliced = NodeSetBuilder::new();
        for (a, b) in rs.runs() {
            sliced.add(&xset.slice(a.value(), Some(b.value() + 1), 1));
        }
        xset = sliced.build();
    }
    if let Some(axis) = &o.axis {
        xset.set_fold_axis(Some(parse_axis(axis)?));
    }
    if o.expand {
        // Names go into one buffer written in large chunks; a failed
        // write (closed pipe) is reported once, at the end.
        let mut first = true;
        let mut chunk: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut failed: Option<std::io::Error> = None;
        xset.for_each_name(|name| {
            if failed.is_some() {
                return;
            }
            if !first {
                chunk.extend_from_slice(separator.as_bytes());
            }
            first = false;
            chunk.extend_from_slice(name.as_bytes());
            if chunk.len() >= 1 << 16 {
                if let Err(e) = out.write_all(&chunk) {
                    failed = Some(e);
                }
                chunk.clear();
            }
        });
        if let Some(e) = failed {
            return Err(io_err(e));
        }
        chunk.push(b'\n');
        out.write_all(&chunk).map_err(io_err)?;
    } else if o.fold {
        writeln!(out, "{xset}").map_err(io_err)?;
    } else if o.regroup {
        let source = o.groupsource.as_deref();
        let s = regroup(&xset, &groups, source, o.groupbase)?;
        writeln!(out, "{s}").map_err(io_err)?;
    } else {
        writeln!(out, "{}", xset.len()).map_err(io_err)?;
    }
    Ok(())
}

fn list_groups(
    o: &NodesetArgs,
    xset: &NodeSet,
    groups: &LazyGroups,
    has_ops: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let level = o.list as usize + o.list_all as usize;
    let sources: Vec<Option<String>> = if o.list_all > 0 {
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
            Err(Failure::Error(e, _)) if e.kind == ErrorKind::NoUpcall && o.list_all > 0 => {
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
    o: &NodesetArgs,
    level: usize,
    source: Option<&str>,
    xset: &NodeSet,
    groups: &LazyGroups,
    has_ops: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    if o.all || !xset.is_empty() || has_ops {
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
