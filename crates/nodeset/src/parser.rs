//! The node-set expression parser: a scanner that cuts an expression into
//! (operator, pattern, range sets) items, and an engine that resolves
//! groups and wildcards and applies the operators left to right.
//!
//! The scanner follows ClusterShell's parsing rules closely, including its
//! error messages and the order in which it detects errors, because
//! `swh-deploy nodeset` must answer exactly as ClusterShell's `nodeset`.

use crate::error::{ErrorKind, GroupError, ParseError};
use crate::groups::GroupResolver;
use crate::nodeset::{escape, scan_single, NodeSet};
use crate::rangeset::{RangeError, RangeSet};
use std::cell::Cell;
use std::collections::HashSet;

/// Deepest group nesting followed before giving up (ClusterShell stops at
/// Python's recursion limit).
const MAX_DEPTH: usize = 64;

/// A set operator of the expression syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Union,
    Difference,
    Intersection,
    Xor,
}

fn op_of(c: u8) -> Op {
    match c {
        b'!' => Op::Difference,
        b'&' => Op::Intersection,
        b'^' => Op::Xor,
        _ => Op::Union,
    }
}

/// First operator character in `s`, if any: (byte offset, char).
fn find_op(s: &str) -> Option<(usize, u8)> {
    s.bytes()
        .enumerate()
        .find(|(_, b)| matches!(b, b',' | b'!' | b'&' | b'^'))
}

fn bad_range(e: RangeError) -> ParseError {
    let mut err = ParseError::parse(Some(&e.to_string()), "bad range");
    err.part = if e.part.is_empty() {
        None
    } else {
        Some(e.part)
    };
    err
}

fn missing_operand(part: Option<&str>, op: u8) -> ParseError {
    ParseError::parse(
        part,
        &format!("missing nodeset operand with '{}' operator", op as char),
    )
}

/// One scanned item: operator, pattern, one range set per slot.
type Item = (Op, String, Vec<RangeSet>);

/// Cuts an escaped expression into items, lazily (errors surface when the
/// scan reaches them, as in ClusterShell). Works on offsets into the text,
/// so long comma lists are scanned in linear time.
struct Scanner {
    text: String,
    pos: Option<usize>,
    next_op: u8,
}

/// First `[` of `s` that comes before the first operator `op` (the only
/// brackets that matter to the scanner).
fn bracket_before(s: &str, op: Option<(usize, u8)>) -> Option<usize> {
    match op {
        Some((o, _)) => s[..o].find('['),
        None => s.find('['),
    }
}

impl Scanner {
    fn new(escaped: String) -> Scanner {
        Scanner {
            pos: if escaped.is_empty() { None } else { Some(0) },
            text: escaped,
            next_op: b',',
        }
    }

    fn next_item(&mut self) -> Option<Result<Item, ParseError>> {
        let start = self.pos.take()?;
        let op = op_of(self.next_op);
        Some(scan_item(&self.text, start).map(|(pat, rsets, next)| {
            if let Some((pos, c)) = next {
                self.pos = Some(pos);
                self.next_op = c;
            }
            (op, pat, rsets)
        }))
    }
}

/// Scans one item of `text` from `start`: (pattern, range sets, offset and
/// operator of the next item).
#[allow(clippy::type_complexity)]
fn scan_item(
    text: &str,
    start: usize,
) -> Result<(String, Vec<RangeSet>, Option<(usize, u8)>), ParseError> {
    let nsstr = text[start..].trim_start();
    let mut rsets: Vec<RangeSet> = Vec::new();
    let mut op_found = find_op(nsstr);
    let mut bracket_idx = bracket_before(nsstr, op_found);
    let mut next = None;
    let newpat: String;
    if bracket_idx.is_some() {
        let mut pat = String::new();
        let mut cur: &str = nsstr;
        while bracket_idx.is_some() {
            let (pfx0, after) = cur.split_once('[').expect("bracket present");
            let Some((rng0, sfx0)) = after.split_once(']') else {
                return Err(ParseError::parse(Some(nsstr), "missing bracket"));
            };
            if pfx0.contains(']') {
                return Err(ParseError::parse(Some(pfx0), "illegal closing bracket"));
            }
            if !sfx0.is_empty() {
                let bra_end = sfx0.find(']').map_or(-1, |v| v as i64);
                let bra_start = match sfx0.find('[') {
                    Some(v) if bra_end < 0 || (v as i64) < bra_end => v as i64,
                    Some(_) => bra_end + 1,
                    None => bra_end + 1,
                };
                if bra_end >= 0 && bra_end < bra_start {
                    return Err(ParseError::parse(Some(sfx0), "illegal closing bracket"));
                }
            }
            let mut pfx = pfx0.to_string();
            let mut rng = rng0.to_string();
            let mut new_sfx: &str = sfx0;
            if !new_sfx.is_empty() {
                let (cut, r) = amend_trailing_digits(new_sfx, &rng)?;
                new_sfx = &new_sfx[cut..];
                rng = r;
            }
            if !pfx.is_empty() {
                (pfx, rng) = amend_leading_digits(&pfx, &rng)?;
                if !pfx.is_empty() {
                    let (p, idx) = scan_single(&pfx)?;
                    pfx = p;
                    rsets.extend(idx.into_iter().map(RangeSet::one));
                }
            }
            cur = new_sfx;
            op_found = find_op(cur);
            bracket_idx = bracket_before(cur, op_found);
            if cur.starts_with('[') {
                return Err(ParseError::parse(Some(cur), "illegal reopening bracket"));
            }
            pat.push_str(&pfx);
            pat.push_str("%s");
            rsets.push(RangeSet::parse(&rng).map_err(bad_range)?);
        }
        let sfx = cur;
        let mut tail = sfx;
        if let Some((i, c)) = find_op(sfx) {
            let after = &sfx[i + 1..];
            if after.is_empty() {
                return Err(missing_operand(None, c));
            }
            next = Some((text.len() - after.len(), c));
            tail = &sfx[..i];
        }
        let tail = tail.trim_end();
        if !tail.is_empty() {
            let (p, idx) = scan_single(tail)?;
            pat.push_str(&p);
            rsets.extend(idx.into_iter().map(RangeSet::one));
        }
        newpat = pat;
    } else {
        let node: &str = match op_found {
            None => nsstr,
            Some((i, c)) => {
                let (node, after) = (&nsstr[..i], &nsstr[i + 1..]);
                if node.is_empty() || after.is_empty() {
                    let part = if node.is_empty() { after } else { node };
                    return Err(missing_operand(Some(part), c));
                }
                next = Some((text.len() - after.len(), c));
                node
            }
        };
        if node.contains(']') {
            return Err(ParseError::parse(Some(node), "illegal closing bracket"));
        }
        let (p, idx) = scan_single(node.trim_end())?;
        newpat = p;
        rsets.extend(idx.into_iter().map(RangeSet::one));
    }
    Ok((newpat, rsets, next))
}

/// Digits right after a bracket are folded into the range: `n[1-2]0` is
/// `n[10-20/10]`.
fn amend_trailing_digits(outer: &str, inner: &str) -> Result<(usize, String), ParseError> {
    let ndig = outer.bytes().take_while(u8::is_ascii_digit).count();
    if ndig == 0 {
        return Ok((0, inner.to_string()));
    }
    if inner.contains('/') {
        return Err(ParseError::parse(
            Some(outer),
            "illegal trailing digits after range with steps",
        ));
    }
    let digits = &outer[..ndig];
    let step = format!("/1{}", "0".repeat(ndig));
    let amended: Vec<String> = inner
        .split(',')
        .map(|elem| {
            let s = elem
                .split('-')
                .map(|b| format!("{b}{digits}"))
                .collect::<Vec<_>>()
                .join("-");
            if s.contains('-') {
                s + &step
            } else {
                s
            }
        })
        .collect();
    Ok((ndig, amended.join(",")))
}

/// Digits right before a bracket are folded into the range: `n1[0-5]` is
/// `n[10-15]`.
fn amend_leading_digits(outer: &str, inner: &str) -> Result<(String, String), ParseError> {
    let ndig = outer.bytes().rev().take_while(u8::is_ascii_digit).count();
    if ndig == 0 {
        return Ok((outer.to_string(), inner.to_string()));
    }
    let cut = outer.len() - ndig;
    let digits = &outer[cut..];
    let rs = RangeSet::parse(inner).map_err(bad_range)?;
    let runs = rs.runs();
    if runs.iter().any(|(_, b)| b.value() == -1) {
        // ClusterShell rebuilds each run from a slice whose stop is 0.
        return Err(ParseError::other(
            ErrorKind::Value,
            "Invalid range upper limit (0)",
        ));
    }
    let amended: Vec<String> = runs
        .into_iter()
        .map(|(a, b)| {
            let elem = if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            };
            elem.split('-')
                .map(|bound| format!("{digits}{bound}"))
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect();
    Ok((outer[..cut].to_string(), amended.join(",")))
}

/// Internal failure while parsing: a parse error, or a group source error
/// that the top level turns into ClusterShell's message.
#[derive(Debug)]
pub(crate) enum Failure {
    Parse(ParseError),
    Group(GroupError),
    Recursion,
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Failure {
        Failure::Parse(e)
    }
}

impl From<GroupError> for Failure {
    fn from(e: GroupError) -> Failure {
        Failure::Group(e)
    }
}

impl Failure {
    /// ClusterShell's `ParsingEngine.parse`: a failed group query or a
    /// runaway recursion becomes a parse error about the whole input.
    pub(crate) fn at_top(self, input: &str) -> ParseError {
        match self {
            Failure::Parse(e) => e,
            Failure::Group(GroupError::QueryFailed { command, .. }) => {
                ParseError::parse(Some(input), &command)
            }
            Failure::Group(e) => e.into_parse_error(),
            Failure::Recursion => {
                ParseError::parse(Some(input), "maximum recursion depth exceeded")
            }
        }
    }
}

/// Trims and escapes an expression like ClusterShell's `_strip_escape`.
fn strip_escape(s: &str) -> String {
    escape(s.trim()).into_owned()
}

/// Parses expressions, optionally resolving groups through a resolver.
pub(crate) struct Engine<'r> {
    resolver: Option<&'r dyn GroupResolver>,
    wildcards: Cell<bool>,
    depth: Cell<usize>,
}

/// Applies `op` with `other` on `ns` (union stays lazy).
fn apply(ns: &mut NodeSet, op: Op, other: &NodeSet) {
    match op {
        Op::Union => ns.update_lazy(other),
        Op::Difference => {
            ns.normalize();
            ns.difference_update(other);
        }
        Op::Intersection => {
            ns.normalize();
            ns.intersection_update(other);
        }
        Op::Xor => {
            ns.normalize();
            ns.symmetric_difference_update(other);
        }
    }
}

/// Shell-style wildcard match (`*`, `?`) of the whole name.
fn wildcard_match(mask: &[u8], name: &[u8]) -> bool {
    let (mut m, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if m < mask.len() && (mask[m] == b'?' || mask[m] == name[n]) && mask[m] != b'*' {
            m += 1;
            n += 1;
        } else if m < mask.len() && mask[m] == b'*' {
            star = Some(m);
            mark = n;
            m += 1;
        } else if let Some(s) = star {
            m = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    while m < mask.len() && mask[m] == b'*' {
        m += 1;
    }
    m == mask.len()
}

impl<'r> Engine<'r> {
    pub(crate) fn new(resolver: Option<&'r dyn GroupResolver>) -> Engine<'r> {
        Engine {
            resolver,
            wildcards: Cell::new(true),
            depth: Cell::new(0),
        }
    }

    /// Parses a whole expression (ClusterShell's `NodeSet(expr)`).
    pub(crate) fn parse_top(&self, expr: &str) -> Result<NodeSet, ParseError> {
        if self.resolver.is_none() || !expr.contains(['@', '*', '?']) {
            if let Some(ns) = fast_single(expr) {
                return ns;
            }
        }
        self.parse_string(expr, None).map_err(|f| f.at_top(expr))
    }

    /// Parses `expr` with groups resolved in `namespace` (default source when
    /// `None`).
    pub(crate) fn parse_string(
        &self,
        expr: &str,
        namespace: Option<&str>,
    ) -> Result<NodeSet, Failure> {
        let depth = self.depth.get();
        if depth > MAX_DEPTH {
            return Err(Failure::Recursion);
        }
        self.depth.set(depth + 1);
        let r = self.parse_string_inner(expr, namespace);
        self.depth.set(depth);
        r
    }

    fn parse_string_inner(&self, expr: &str, namespace: Option<&str>) -> Result<NodeSet, Failure> {
        let mut ns = NodeSet::new();
        let mut all_cache: Option<HashSet<String>> = None;
        let mut scanner = Scanner::new(strip_escape(expr));
        while let Some(item) = scanner.next_item() {
            let (op, pat, rsets) = item?;
            match self.resolver {
                Some(resolver) if pat.starts_with('@') => {
                    let mut names = NodeSet::new();
                    names.add_rsets(pat, rsets);
                    names.normalize();
                    let mut group_ns = NodeSet::new();
                    for group in names.iter() {
                        let (nodes, nsp) = self.group_string(resolver, &group, namespace)?;
                        if !nodes.is_empty() {
                            let sub = self.parse_string(&nodes, nsp.as_deref())?;
                            group_ns.update_lazy(&sub);
                        }
                    }
                    group_ns.normalize();
                    apply(&mut ns, op, &group_ns);
                }
                Some(_) if self.wildcards.get() && (pat.contains('*') || pat.contains('?')) => {
                    let mut masks = NodeSet::new();
                    masks.add_rsets(pat, rsets);
                    masks.normalize();
                    if all_cache.is_none() {
                        self.wildcards.set(false);
                        let r = self.all_names(namespace);
                        self.wildcards.set(true);
                        all_cache = Some(r?);
                    }
                    let mut all = all_cache.clone().unwrap_or_default();
                    let mut matched = NodeSet::new();
                    for mask in masks.iter() {
                        let hits: Vec<String> = all
                            .iter()
                            .filter(|n| wildcard_match(mask.as_bytes(), n.as_bytes()))
                            .cloned()
                            .collect();
                        for node in hits {
                            all.remove(&node);
                            let (p, idx) = scan_single(&escape(&node))?;
                            matched.add_one(p, idx);
                        }
                    }
                    matched.normalize();
                    apply(&mut ns, op, &matched);
                }
                _ => {
                    let mut one = NodeSet::new();
                    one.add_rsets(pat, rsets);
                    one.normalize();
                    apply(&mut ns, op, &one);
                }
            }
        }
        ns.normalize();
        Ok(ns)
    }

    /// Every node of a source as names (for wildcards).
    fn all_names(&self, namespace: Option<&str>) -> Result<HashSet<String>, Failure> {
        let mut all = NodeSet::new();
        for res in self.all_nodes(namespace)? {
            let sub = self.parse_string(&res, namespace)?;
            all.update_lazy(&sub);
        }
        all.normalize();
        Ok(all.iter().collect())
    }

    /// Resolves one `@...` name: (node-set string, namespace for nested
    /// groups).
    fn group_string(
        &self,
        resolver: &dyn GroupResolver,
        nodegroup: &str,
        namespace: Option<&str>,
    ) -> Result<(String, Option<String>), Failure> {
        let grpstr = &nodegroup[1..];
        let (nsp, group): (Option<String>, &str) = match grpstr.split_once(':') {
            Some((s, g)) => (Some(s.to_string()), g),
            None => (namespace.map(str::to_string), grpstr),
        };
        let nsp = nsp.filter(|s| !s.is_empty());
        let list = if group == "*" {
            self.all_nodes(nsp.as_deref())?
        } else if group.starts_with('@') {
            self.grouplist(&grpstr[1..])?
        } else {
            resolver.group_nodes(group, nsp.as_deref())?
        };
        Ok((list.join(","), nsp))
    }

    /// Group names of a source, expanded and sorted like node names.
    pub(crate) fn grouplist(&self, namespace: &str) -> Result<Vec<String>, Failure> {
        let ns = if namespace.is_empty() {
            None
        } else {
            Some(namespace)
        };
        self.grouplist_opt(ns)
    }

    /// Group names of a source (`None`: default), expanded and sorted.
    pub(crate) fn grouplist_opt(&self, namespace: Option<&str>) -> Result<Vec<String>, Failure> {
        let resolver = self.resolver.ok_or_else(|| {
            Failure::Parse(ParseError::other(
                ErrorKind::External,
                "No node group resolver",
            ))
        })?;
        let mut set = NodeSet::new();
        for grp in resolver.group_list(namespace)? {
            let mut scanner = Scanner::new(strip_escape(&grp));
            while let Some(item) = scanner.next_item() {
                let (op, pat, rsets) = item?;
                let mut one = NodeSet::new();
                one.add_rsets(pat, rsets);
                one.normalize();
                apply(&mut set, op, &one);
            }
        }
        set.normalize();
        Ok(set.iter().collect())
    }

    /// Every node of a source: the `all` query, or the union of every group
    /// when the source has none (ClusterShell's fallback).
    pub(crate) fn all_nodes(&self, namespace: Option<&str>) -> Result<Vec<String>, Failure> {
        let resolver = self.resolver.ok_or_else(|| {
            Failure::Parse(ParseError::other(
                ErrorKind::External,
                "Group resolver is not defined",
            ))
        })?;
        match resolver.all_nodes(namespace) {
            Ok(v) => Ok(v),
            Err(GroupError::NoUpcall { .. }) => {
                let fallback = || -> Result<Vec<String>, Failure> {
                    let mut out = Vec::new();
                    for grp in self.grouplist_opt(namespace)? {
                        out.extend(resolver.group_nodes(&grp, namespace)?);
                    }
                    Ok(out)
                };
                match fallback() {
                    Err(Failure::Group(GroupError::NoUpcall { .. })) => {
                        Err(Failure::Parse(ParseError::other(
                            ErrorKind::External,
                            "Not enough working methods (all or map + list) to get all nodes",
                        )))
                    }
                    r => r,
                }
            }
            Err(GroupError::QueryFailed { command, .. }) => Err(Failure::Parse(ParseError::other(
                ErrorKind::External,
                format!("Failed to get all nodes: {command}"),
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// Fast path for a plain single name (no brackets, operators, spaces or
/// group syntax): most inputs of big lists.
fn fast_single(expr: &str) -> Option<Result<NodeSet, ParseError>> {
    if expr.is_empty()
        || expr.bytes().any(|b| {
            matches!(b, b'[' | b']' | b',' | b'!' | b'&' | b'^' | b'%')
                || b.is_ascii_whitespace()
                || b >= 0x80
        })
    {
        return None;
    }
    let mut ns = NodeSet::new();
    match scan_single(expr) {
        Ok((pat, idx)) => ns.add_one(pat, idx),
        Err(e) => return Some(Err(e)),
    }
    ns.normalize();
    Some(Ok(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(s: &str) -> String {
        NodeSet::parse(s).unwrap().to_string()
    }

    fn err(s: &str) -> String {
        NodeSet::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn brackets_and_digits_around_them() {
        assert_eq!(fold("node[1-5]"), "node[1-5]");
        assert_eq!(fold("node-00[00-99]"), "node-[0000-0099]");
        assert_eq!(fold("n[1-2]0"), "n[10,20]");
        assert_eq!(fold("da[2-5]c[1-2]p[0-1]"), "da[2-5]c[1-2]p[0-1]");
        assert_eq!(fold("a1b2"), "a1b2");
        assert_eq!(fold("saam,worker[1-8]!worker3"), "saam,worker[1-2,4-8]");
    }

    #[test]
    fn operators_left_to_right() {
        assert_eq!(fold("n[1-10]&n[5-15],n20"), "n[5-10,20]");
        assert_eq!(fold("n[1-3]^n[2-4]"), "n[1,4]");
    }

    #[test]
    fn errors_name_the_faulty_part() {
        assert_eq!(err("n[1-"), "Parse error: missing bracket: \"n[1-\"");
        assert_eq!(err("n]"), "Parse error: illegal closing bracket: \"n]\"");
        assert_eq!(
            err("a,"),
            "Parse error: missing nodeset operand with ',' operator: \"a\""
        );
        assert_eq!(
            err("n[1],"),
            "Parse error: missing nodeset operand with ',' operator"
        );
        let e = NodeSet::parse("ok,n[5-3]").unwrap_err();
        assert_eq!(
            e.message,
            "bad range: \"invalid values in range : \"5-3\"\""
        );
        assert_eq!(e.position, Some(5));
    }

    #[test]
    fn wildcards_match_whole_names() {
        assert!(wildcard_match(b"n*", b"node1"));
        assert!(wildcard_match(b"n?de*1", b"node1"));
        assert!(!wildcard_match(b"n?", b"node"));
        assert!(wildcard_match(b"*", b""));
    }
}
