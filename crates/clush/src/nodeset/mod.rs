//! ClusterShell's `nodeset` command (fold, expand, count, regroup, index,
//! list groups, set operations): same options, same output, same messages,
//! same exit codes. The node sets themselves are the `swh-deploy-nodeset`
//! crate's; this module is the command around them.
//!
//! Options are parsed as ClusterShell parses them ([`crate::optparse`]):
//! unknown options are refused with exit 2, short options cluster and take
//! attached values, long options may be abbreviated, and the options stop
//! at the first node set. [`run`] writes the result to the writer it is
//! given; a failure is a [`NodesetError`] the caller prints with
//! [`NodesetError::render`].

mod bytes;
mod options;
mod sets;

pub use bytes::{decode_bytes, RawBytes};

use crate::pyfmt::{self, PyArg, PyFmtError};
use options::{help_text, Autostep, Options};
use sets::{parse, parse_lines, parse_operand, stdin_op, LazyGroups, Op, XSet};
use std::cell::OnceCell;
use std::io::Write;
use swh_deploy_nodeset::{
    all_nodes, group_names, node_set_groups, regroup, ClusterShellGroups, ErrorKind, GroupResolver,
    NodeSet, NodeSetBuilder, ParseError, RangeSet,
};
use swh_deploy_util::Exit;

/// Program name used in messages.
pub const PROG: &str = "swh-deploy nodeset";
/// Largest node set `--fold -O FORMAT` formats (each formatted name is
/// kept before folding again).
const MAX_FORMATTED: usize = 10_000_000;
/// The ClusterShell release whose `nodeset` this command follows.
const CLUSTERSHELL: &str = "1.10.1";

/// Runs `nodeset` with `argv` (the arguments after the command name),
/// writing its output to `out`; reads standard input when the command line
/// says so (no node set, or `-`).
pub fn run(argv: &[String], out: &mut dyn Write) -> Result<(), NodesetError> {
    let o = options::parse_options(argv)?;
    execute(&o, out)
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

pub(crate) fn range_error(e: swh_deploy_nodeset::RangeError) -> ParseError {
    ParseError::new(ErrorKind::Parse, e.to_string())
}

/// Why `nodeset` failed, shaped like ClusterShell's own failures.
#[derive(Debug, thiserror::Error)]
pub enum NodesetError {
    /// A usage error (optparse's `parser.error`): exit 2, after the usage
    /// line.
    #[error("{0}")]
    Usage(String),
    /// A ClusterShell-style error (`PROG: message`, `ERROR: message`),
    /// with the expression it is about when there is one: exit 1.
    #[error("{}", .0.message)]
    Error(ParseError, Option<String>),
    /// A generic error printed as `PROG: message` (exit 1).
    #[error("{0}")]
    Generic(String),
}

impl NodesetError {
    /// The exit status ClusterShell's `nodeset` gives: [`Exit::Usage`] (2)
    /// for a usage error, [`Exit::Failed`] (1) otherwise.
    pub fn exit(&self) -> Exit {
        match self {
            NodesetError::Usage(_) => Exit::Usage,
            _ => Exit::Failed,
        }
    }

    /// What `nodeset` prints on standard error for this failure (lines
    /// ending with a newline). With `caret` (standard error is a
    /// terminal), a parse error of a one-line expression is followed by the
    /// expression and a caret under the faulty part.
    pub fn render(&self, caret: bool) -> String {
        match self {
            NodesetError::Usage(msg) => {
                format!("Usage: {}\n\n{PROG}: error: {msg}\n", options::USAGE)
            }
            NodesetError::Generic(msg) => format!("{PROG}: {msg}\n"),
            NodesetError::Error(e, input) => {
                let mut s = format!("{}\n", e.cli_line(PROG));
                if let (Some(pos), Some(input), ErrorKind::Parse) = (e.position, input, e.kind) {
                    if caret && pos <= input.len() && !input.contains('\n') {
                        let col = input[..pos].chars().count();
                        s.push_str(&format!(
                            "  {input}\n  {}^ (column {})\n",
                            " ".repeat(col),
                            col + 1
                        ));
                    }
                }
                s
            }
        }
    }
}

use NodesetError as Failure;

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
pub(crate) fn value_error(message: impl Into<String>) -> Failure {
    Failure::Error(ParseError::new(ErrorKind::Value, message), None)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `nodeset ARGS`: its output, or its error as printed and its exit.
    fn nodeset(args: &[&str]) -> Result<String, (String, u8)> {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        match run(&argv, &mut out) {
            Ok(()) => Ok(String::from_utf8(out).unwrap()),
            Err(e) => Err((e.render(false), e.exit().code())),
        }
    }

    #[test]
    fn commands_write_clustershell_s_output() {
        assert_eq!(nodeset(&["-f", "n3", "n1", "n2"]).unwrap(), "n[1-3]\n");
        assert_eq!(nodeset(&["-e", "n[1-3]"]).unwrap(), "n1 n2 n3\n");
        assert_eq!(nodeset(&["-eS:", "n[1-2]"]).unwrap(), "n1:n2\n");
        assert_eq!(nodeset(&["-c", "n[1-9]", "-x", "n5"]).unwrap(), "8\n");
        assert_eq!(nodeset(&["--index", "n3", "n[1-4]"]).unwrap(), "2\n");
        assert_eq!(
            nodeset(&["-f", "-O", "%s-ib", "n[1-2]"]).unwrap(),
            "n[1-2]-ib\n"
        );
        assert_eq!(nodeset(&["-R", "-f", "1,2,3,7"]).unwrap(), "1-3,7\n");
        assert_eq!(
            nodeset(&["--split=2", "-f", "n[1-4]"]).unwrap(),
            "n[1-2]\nn[3-4]\n"
        );
        assert!(nodeset(&["--version"])
            .unwrap()
            .contains("ClusterShell 1.10.1"));
        assert!(nodeset(&["--help"])
            .unwrap()
            .starts_with("Usage: swh-deploy nodeset [COMMAND]"));
    }

    #[test]
    fn failures_are_printed_and_exit_as_clustershell_s() {
        let usage = "Usage: swh-deploy nodeset [COMMAND] [OPTIONS] [ns1 [-ixX] ns2|...]\n\n";
        assert_eq!(
            nodeset(&["n1"]).unwrap_err(),
            (format!("{usage}{PROG}: error: No command specified.\n"), 2)
        );
        assert_eq!(
            nodeset(&["-f", "--bogus"]).unwrap_err(),
            (
                format!("{usage}{PROG}: error: no such option: --bogus\n"),
                2
            )
        );
        assert_eq!(
            nodeset(&["--split", "x", "-f", "n1"]).unwrap_err(),
            (
                format!("{usage}{PROG}: error: option --split: invalid integer value: 'x'\n"),
                2
            )
        );
        assert_eq!(
            nodeset(&["-f", "-O", "%d", "n1"]).unwrap_err(),
            (
                format!("{PROG}: %d format: a real number is required, not str\n"),
                1
            )
        );
        let (msg, code) = nodeset(&["-f", "n[1-"]).unwrap_err();
        assert_eq!(code, 1);
        assert!(msg.starts_with(PROG), "{msg}");
        assert_eq!(
            nodeset(&["-e", "-S", "a'", "n1"]).unwrap_err(),
            ("ERROR: invalid separator\n".into(), 1)
        );
    }

    #[test]
    fn a_caret_points_at_a_parse_error_for_a_terminal() {
        let e = NodesetError::Error(
            ParseError {
                position: Some(2),
                ..ParseError::new(ErrorKind::Parse, "bad range")
            },
            Some("ab[x".into()),
        );
        let shown = e.render(true);
        assert!(shown.ends_with("  ab[x\n    ^ (column 3)\n"), "{shown:?}");
        assert!(!e.render(false).contains('^'));
    }
}
