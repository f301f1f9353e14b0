//! The set `nodeset` computes (nodes, or indexes with `-R`), its operands
//! (arguments, standard input) and the lazily loaded group resolver.

use super::bytes::decode_bytes;
use super::{range_error, value_error, NodesetError as Failure};
use std::cell::OnceCell;
use std::io::BufRead;
use std::path::PathBuf;
use swh_deploy_nodeset::{
    ClusterShellGroups, ErrorKind, GroupError, GroupResolver, NodeSet, NodeSetBuilder, ParseError,
    RangeSet,
};

/// ClusterShell's standard group resolver, loaded on first use so that a
/// broken configuration only matters to commands that use groups.
pub(super) struct LazyGroups {
    pub(super) files: Vec<PathBuf>,
    pub(super) default_source: Option<String>,
    pub(super) cell: OnceCell<Result<ClusterShellGroups, ParseError>>,
}

impl LazyGroups {
    pub(super) fn get(&self) -> Result<&ClusterShellGroups, GroupError> {
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

    pub(super) fn loaded(&self) -> Result<&ClusterShellGroups, ParseError> {
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

/// The set being computed: nodes, or plain indexes with `-R`.
#[derive(Clone, Debug)]
pub(super) enum XSet {
    Nodes(NodeSet),
    Ranges(RangeSet),
}

impl XSet {
    pub(super) fn empty(rangeset: bool) -> XSet {
        if rangeset {
            XSet::Ranges(RangeSet::new())
        } else {
            XSet::Nodes(NodeSet::new())
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            XSet::Nodes(n) => n.len(),
            XSet::Ranges(r) => r.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            XSet::Nodes(n) => n.is_empty(),
            XSet::Ranges(r) => r.is_empty(),
        }
    }

    pub(super) fn apply(&mut self, op: Op, other: &XSet) {
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
    pub(super) fn slice(&self, start: i64, stop: i64) -> XSet {
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
    pub(super) fn split(&self, n: usize) -> Vec<XSet> {
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

    pub(super) fn contiguous(&self) -> Vec<XSet> {
        match self {
            XSet::Nodes(n) => n.contiguous().into_iter().map(XSet::Nodes).collect(),
            XSet::Ranges(r) => r.contiguous().into_iter().map(XSet::Ranges).collect(),
        }
    }

    pub(super) fn set_autostep(&mut self, autostep: Option<i64>) {
        if let XSet::Nodes(n) = self {
            n.set_autostep(autostep);
        }
    }

    pub(super) fn folded(&self, autostep: Option<i64>) -> String {
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
    pub(super) fn for_each(&self, mut f: impl FnMut(&str)) {
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
pub(super) enum Op {
    Union,
    Intersection,
    Difference,
    Xor,
}

/// Parses one expression with groups, remembering it for error display.
pub(super) fn parse(expr: &str, groups: &LazyGroups) -> Result<NodeSet, Failure> {
    NodeSet::parse_with(expr, groups).map_err(|e| Failure::Error(e, Some(expr.to_string())))
}

/// Parses one operand in the current mode (`-R`: a range set).
pub(super) fn parse_operand(
    expr: &str,
    rangeset: bool,
    groups: &LazyGroups,
) -> Result<XSet, Failure> {
    if rangeset {
        RangeSet::parse(expr)
            .map(XSet::Ranges)
            .map_err(|e| Failure::Error(range_error(e), None))
    } else {
        parse(expr, groups).map(XSet::Nodes)
    }
}

/// An argument: one operand per line (ClusterShell's `fromlist`).
pub(super) fn parse_lines(arg: &str, rangeset: bool, groups: &LazyGroups) -> Result<XSet, Failure> {
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
pub(super) fn stdin_op(
    xset: &mut XSet,
    op: Op,
    rangeset: bool,
    groups: &LazyGroups,
) -> Result<(), Failure> {
    let s = read_stdin(rangeset, groups)?;
    if !s.is_empty() {
        xset.apply(op, &s);
    }
    Ok(())
}
