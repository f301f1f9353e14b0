//! Node sets: a map from name patterns (`node%s-ib%s`) to the index sets
//! that fill their slots.

use crate::error::ParseError;
use crate::rangeset::{Index, RangeSet};
use crate::rangeset_nd::RangeSetNd;
use std::collections::HashMap;
use std::fmt;

/// The indexes of one pattern.
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    /// A name without digits (`saam`).
    Plain,
    /// One slot: a range set, plus indexes added but not merged yet.
    One { set: RangeSet, pending: Vec<Index> },
    /// Several slots.
    Nd(RangeSetNd),
}

/// Adds `rs` to a one-slot entry: small sets wait in `pending` (merged
/// once by `normalize`), large ones are merged at once (never expanded).
fn add_pending(set: &mut RangeSet, pending: &mut Vec<Index>, rs: &RangeSet) {
    if rs.len() <= 64 {
        pending.extend(rs.iter());
    } else {
        *set = set.union(rs);
    }
}

impl Entry {
    fn normalize(&mut self) {
        match self {
            Entry::Plain => {}
            Entry::One { set, pending } => {
                if !pending.is_empty() {
                    let added = RangeSet::from_indexes(std::mem::take(pending));
                    *set = if set.is_empty() {
                        added
                    } else {
                        set.union(&added)
                    };
                }
            }
            Entry::Nd(nd) => nd.fold(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Entry::Plain => 1,
            Entry::One { set, .. } => set.len(),
            Entry::Nd(nd) => nd.len(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Entry::Plain => false,
            Entry::One { set, pending } => set.is_empty() && pending.is_empty(),
            Entry::Nd(nd) => nd.is_empty(),
        }
    }
}

/// A set of node names, ClusterShell style.
///
/// Names are grouped by pattern: `node12-ib0` has pattern `node%s-ib%s` and
/// index vector `(12, 0)`. Each pattern maps to a [`RangeSet`] (one slot) or
/// a [`RangeSetNd`] (several slots). The folded form (`Display`) lists the
/// patterns in ClusterShell's order with their slots filled by folded
/// ranges: `node[1-3,7],saam`.
#[derive(Clone, Debug, Default)]
pub struct NodeSet {
    pub(crate) patterns: HashMap<String, Entry>,
    fold_axis: Option<Vec<i64>>,
    autostep: Option<i64>,
}

/// Escapes `%` the way ClusterShell's patterns do.
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('%') {
        std::borrow::Cow::Owned(s.replace('%', "%%"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Splits one escaped name (no brackets, no operators) into its pattern and
/// its indexes: runs of ASCII digits become `%s` slots.
pub(crate) fn scan_single(s: &str) -> Result<(String, Vec<Index>), ParseError> {
    if s.is_empty() {
        return Err(ParseError::parse(Some(s), "parse error"));
    }
    let bytes = s.as_bytes();
    let mut pat = String::with_capacity(s.len() + 2);
    let mut idx = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        pat.push_str(&s[start..i]);
        let dstart = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > dstart {
            let digits = &s[dstart..i];
            match Index::from_digits(digits) {
                Some(ix) => idx.push(ix),
                None => {
                    return Err(ParseError::parse(
                        Some(&format!("invalid rangeset index : \"{digits}\"")),
                        "bad range",
                    ))
                }
            }
            pat.push_str("%s");
        }
    }
    Ok((pat, idx))
}

/// Writes `pat` with its `%s` slots replaced by `args` and `%%` by `%`.
pub(crate) fn format_pattern(out: &mut String, pat: &str, args: &mut dyn Iterator<Item = &str>) {
    let mut rest = pat;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        match rest.as_bytes().get(p + 1) {
            Some(b's') => {
                if let Some(a) = args.next() {
                    out.push_str(a);
                }
                rest = &rest[p + 2..];
            }
            Some(b'%') => {
                out.push('%');
                rest = &rest[p + 2..];
            }
            _ => {
                out.push('%');
                rest = &rest[p + 1..];
            }
        }
    }
    out.push_str(rest);
}

impl NodeSet {
    /// An empty node set.
    pub fn new() -> NodeSet {
        NodeSet::default()
    }

    /// Parses a node-set expression without group support (`@name` is then
    /// a plain node name): ranges, padding, several dimensions and the
    /// operators `,` `!` `&` `^` evaluated left to right.
    pub fn parse(expr: &str) -> Result<NodeSet, ParseError> {
        crate::parser::Engine::new(None)
            .parse_top(expr)
            .map_err(|e| e.locate(expr))
    }

    /// Parses a node-set expression, resolving `@group`, `@source:group`,
    /// `@*`, `@@source` and wildcards through `resolver`.
    pub fn parse_with(
        expr: &str,
        resolver: &dyn crate::GroupResolver,
    ) -> Result<NodeSet, ParseError> {
        crate::parser::Engine::new(Some(resolver))
            .parse_top(expr)
            .map_err(|e| e.locate(expr))
    }

    /// Builds a node set from single node names, taken literally (no
    /// brackets, operators or groups), like ClusterShell's `_fromlist1`.
    pub fn from_names<I, S>(names: I) -> Result<NodeSet, ParseError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut b = NodeSetBuilder::new();
        for name in names {
            b.add_name(name.as_ref())?;
        }
        Ok(b.build())
    }

    /// Adds one node given by pattern and indexes (not normalized).
    pub(crate) fn add_one(&mut self, pat: String, idx: Vec<Index>) {
        match idx.len() {
            0 => {
                self.patterns.entry(pat).or_insert(Entry::Plain);
            }
            1 => match self.patterns.get_mut(&pat) {
                Some(Entry::One { pending, .. }) => pending.push(idx[0]),
                Some(_) => {}
                None => {
                    self.patterns.insert(
                        pat,
                        Entry::One {
                            set: RangeSet::new(),
                            pending: vec![idx[0]],
                        },
                    );
                }
            },
            _ => {
                let v: Vec<RangeSet> = idx.into_iter().map(RangeSet::one).collect();
                match self.patterns.get_mut(&pat) {
                    Some(Entry::Nd(nd)) => nd.push_vector(v),
                    Some(_) => {}
                    None => {
                        self.patterns
                            .insert(pat, Entry::Nd(RangeSetNd::from_vector(v)));
                    }
                }
            }
        }
    }

    /// Adds the product of `rsets` under `pat` (not normalized).
    pub(crate) fn add_rsets(&mut self, pat: String, rsets: Vec<RangeSet>) {
        match rsets.len() {
            0 => {
                self.patterns.entry(pat).or_insert(Entry::Plain);
            }
            1 => {
                let rs = rsets.into_iter().next().expect("one");
                match self.patterns.get_mut(&pat) {
                    Some(Entry::One { set, pending }) => add_pending(set, pending, &rs),
                    Some(_) => {}
                    None => {
                        self.patterns.insert(
                            pat,
                            Entry::One {
                                set: rs,
                                pending: Vec::new(),
                            },
                        );
                    }
                }
            }
            _ => match self.patterns.get_mut(&pat) {
                Some(Entry::Nd(nd)) => nd.push_vector(rsets),
                Some(_) => {}
                None => {
                    self.patterns
                        .insert(pat, Entry::Nd(RangeSetNd::from_vector(rsets)));
                }
            },
        }
    }

    /// Merges pending additions and folds n-dimensional sets.
    pub(crate) fn normalize(&mut self) {
        for e in self.patterns.values_mut() {
            e.normalize();
        }
        self.patterns.retain(|_, e| !e.is_empty());
    }

    fn sorted_patterns(&self) -> Vec<(&String, &Entry)> {
        let mut v: Vec<(&String, &Entry)> = self.patterns.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.patterns
            .values()
            .map(Entry::len)
            .fold(0usize, usize::saturating_add)
    }

    /// Whether the set has no node.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Restricts folding of n-dimensional names to these axes (0-based,
    /// negative counts from the end), like ClusterShell's `fold_axis`;
    /// `None` folds along every axis.
    pub fn set_fold_axis(&mut self, axis: Option<Vec<i64>>) {
        self.fold_axis = axis;
    }

    /// Folds arithmetic progressions of at least `autostep` indexes as
    /// `a-b/step` (ClusterShell's `autostep`); `None` (the default) never
    /// does.
    pub fn set_autostep(&mut self, autostep: Option<i64>) {
        self.autostep = autostep;
    }

    /// The maximal subsets of one pattern and consecutive indexes
    /// (ClusterShell's `contiguous()`), in iteration order.
    pub fn contiguous(&self) -> Vec<NodeSet> {
        let mut out = Vec::new();
        let single = |pat: &str, entry: Entry| {
            let mut ns = NodeSet::new();
            ns.patterns.insert(pat.to_string(), entry);
            ns
        };
        for (pat, e) in self.sorted_patterns() {
            match e {
                Entry::Plain => out.push(single(pat, Entry::Plain)),
                Entry::One { set, .. } => {
                    for rs in set.contiguous() {
                        out.push(single(
                            pat,
                            Entry::One {
                                set: rs,
                                pending: Vec::new(),
                            },
                        ));
                    }
                }
                Entry::Nd(nd) => {
                    for v in nd.vectors() {
                        let mut vecs: Vec<Vec<RangeSet>> = vec![v.clone()];
                        for axis in 0..v.len() {
                            let mut next = Vec::new();
                            for vec in &vecs {
                                for part in vec[axis].contiguous() {
                                    let mut w = vec.clone();
                                    w[axis] = part;
                                    next.push(w);
                                }
                            }
                            vecs = next;
                        }
                        for w in vecs {
                            out.push(single(pat, Entry::Nd(RangeSetNd::from_vector(w))));
                        }
                    }
                }
            }
        }
        out
    }

    /// The node names in ClusterShell's order: patterns sorted, then indexes
    /// in range-set order (vector by vector, last axis fastest, for several
    /// slots).
    pub fn iter(&self) -> impl Iterator<Item = String> + '_ {
        self.sorted_patterns().into_iter().flat_map(
            |(pat, e)| -> Box<dyn Iterator<Item = String> + '_> {
                match e {
                    Entry::Plain => Box::new(std::iter::once(plain_name(pat))),
                    Entry::One { set, .. } => {
                        let pieces = pattern_pieces(pat);
                        Box::new(set.iter().map(move |i| {
                            let mut out = String::with_capacity(pat.len() + i.width());
                            out.push_str(&pieces[0]);
                            i.write_to(&mut out);
                            if let Some(tail) = pieces.get(1) {
                                out.push_str(tail);
                            }
                            out
                        }))
                    }
                    Entry::Nd(nd) => {
                        let pieces = pattern_pieces(pat);
                        Box::new(
                            nd.vectors()
                                .iter()
                                .flat_map(move |v| NdNames::new(&pieces, v)),
                        )
                    }
                }
            },
        )
    }

    /// Calls `f` with each node name, in the order of [`NodeSet::iter`],
    /// reusing one buffer: the fast path for printing large expansions.
    pub fn for_each_name(&self, mut f: impl FnMut(&str)) {
        let mut buf = String::new();
        for (pat, e) in self.sorted_patterns() {
            match e {
                Entry::Plain => f(&plain_name(pat)),
                Entry::One { set, .. } => {
                    let pieces = pattern_pieces(pat);
                    for i in set.iter() {
                        buf.clear();
                        buf.push_str(&pieces[0]);
                        i.write_to(&mut buf);
                        if let Some(tail) = pieces.get(1) {
                            buf.push_str(tail);
                        }
                        f(&buf);
                    }
                }
                Entry::Nd(nd) => {
                    let pieces = pattern_pieces(pat);
                    for v in nd.vectors() {
                        let mut names = NdNames::new(&pieces, v);
                        while let Some(name) = names.next_name() {
                            f(name);
                        }
                    }
                }
            }
        }
    }

    /// Whether `name` (one node name, taken literally) is in the set.
    pub fn contains(&self, name: &str) -> bool {
        let esc = escape(name.trim());
        let Ok((pat, idx)) = scan_single(&esc) else {
            return false;
        };
        match (self.patterns.get(&pat), idx.len()) {
            (Some(Entry::Plain), 0) => true,
            (Some(Entry::One { set, .. }), 1) => set.contains(&idx[0]),
            (Some(Entry::Nd(nd)), n) if n > 1 => nd.contains(&idx),
            _ => false,
        }
    }

    /// Whether every node of `self` is in `other`.
    pub fn is_subset(&self, other: &NodeSet) -> bool {
        self.patterns
            .iter()
            .all(|(pat, e)| match (e, other.patterns.get(pat)) {
                (Entry::Plain, Some(Entry::Plain)) => true,
                (Entry::One { set: a, .. }, Some(Entry::One { set: b, .. })) => a.is_subset(b),
                (Entry::Nd(a), Some(Entry::Nd(b))) => a.is_subset(b),
                _ => false,
            })
    }

    /// Adds every node of `other` (in place).
    pub fn update(&mut self, other: &NodeSet) {
        self.update_lazy(other);
        self.normalize();
    }

    /// Adds every node of `other` without merging yet (call `normalize`).
    pub(crate) fn update_lazy(&mut self, other: &NodeSet) {
        for (pat, e) in &other.patterns {
            match (self.patterns.get_mut(pat), e) {
                (None, _) => {
                    self.patterns.insert(pat.clone(), e.clone());
                }
                (Some(Entry::One { set: mine, pending }), Entry::One { set, pending: p2 }) => {
                    add_pending(mine, pending, set);
                    pending.extend_from_slice(p2);
                }
                (Some(Entry::Nd(a)), Entry::Nd(b)) => a.update(b),
                _ => {}
            }
        }
    }

    /// Keeps only the nodes also in `other` (in place).
    pub fn intersection_update(&mut self, other: &NodeSet) {
        let mut out = HashMap::new();
        for (pat, e) in &other.patterns {
            match (self.patterns.get(pat), e) {
                (Some(Entry::Plain), Entry::Plain) => {
                    out.insert(pat.clone(), Entry::Plain);
                }
                (Some(Entry::One { set: a, .. }), Entry::One { set: b, .. }) => {
                    let i = a.intersection(b);
                    if !i.is_empty() {
                        out.insert(
                            pat.clone(),
                            Entry::One {
                                set: i,
                                pending: Vec::new(),
                            },
                        );
                    }
                }
                (Some(Entry::Nd(a)), Entry::Nd(b)) => {
                    let i = a.intersection(b);
                    if !i.is_empty() {
                        out.insert(pat.clone(), Entry::Nd(i));
                    }
                }
                _ => {}
            }
        }
        self.patterns = out;
    }

    /// Removes the nodes of `other` (in place).
    pub fn difference_update(&mut self, other: &NodeSet) {
        for (pat, e) in &other.patterns {
            let remove = match (self.patterns.get_mut(pat), e) {
                (Some(Entry::Plain), _) => true,
                (Some(Entry::One { set: a, .. }), Entry::One { set: b, .. }) => {
                    *a = a.difference(b);
                    a.is_empty()
                }
                (Some(Entry::Nd(a)), Entry::Nd(b)) => {
                    *a = a.difference(b);
                    a.is_empty()
                }
                _ => false,
            };
            if remove {
                self.patterns.remove(pat);
            }
        }
    }

    /// Keeps the nodes in exactly one of `self` and `other` (in place).
    pub fn symmetric_difference_update(&mut self, other: &NodeSet) {
        for (pat, e) in &other.patterns {
            let remove = match (self.patterns.get_mut(pat), e) {
                (None, _) => {
                    self.patterns.insert(pat.clone(), e.clone());
                    false
                }
                (Some(Entry::Plain), _) => true,
                (Some(Entry::One { set: a, .. }), Entry::One { set: b, .. }) => {
                    *a = a.symmetric_difference(b);
                    a.is_empty()
                }
                (Some(Entry::Nd(a)), Entry::Nd(b)) => {
                    *a = a.symmetric_difference(b);
                    a.is_empty()
                }
                _ => false,
            };
            if remove {
                self.patterns.remove(pat);
            }
        }
    }

    /// Nodes in either set.
    pub fn union(&self, other: &NodeSet) -> NodeSet {
        let mut s = self.clone();
        s.update(other);
        s
    }

    /// Nodes of `self` not in `other`.
    pub fn difference(&self, other: &NodeSet) -> NodeSet {
        let mut s = self.clone();
        s.difference_update(other);
        s
    }

    /// Nodes in both sets.
    pub fn intersection(&self, other: &NodeSet) -> NodeSet {
        let mut s = self.clone();
        s.intersection_update(other);
        s
    }

    /// Nodes in exactly one of the sets.
    pub fn symmetric_difference(&self, other: &NodeSet) -> NodeSet {
        let mut s = self.clone();
        s.symmetric_difference_update(other);
        s
    }

    /// The nodes at the given positions of [`NodeSet::iter`]'s order
    /// (Python slice semantics: `start..stop` by `step`, negative bounds
    /// count from the end), like ClusterShell's `nodeset[a:b:c]`.
    pub fn slice(&self, start: i64, stop: Option<i64>, step: usize) -> NodeSet {
        let len = self.len() as i64;
        let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v };
        let start = norm(start);
        let stop = stop.map_or(i64::MAX, norm);
        let step = step.max(1) as i64;
        if step == 1 {
            return self.slice_range(start.max(0) as u128, stop.max(0) as u128);
        }
        let names = self
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let i = *i as i64;
                i >= start && i < stop && (i - start) % step == 0
            })
            .map(|(_, n)| n);
        NodeSet::from_names(names).unwrap_or_default()
    }

    /// The nodes at positions `start..stop`, pattern by pattern, without
    /// expanding one-slot patterns.
    fn slice_range(&self, start: u128, stop: u128) -> NodeSet {
        let mut out = NodeSet::new();
        let mut pos: u128 = 0;
        for (pat, e) in self.sorted_patterns() {
            if pos >= stop {
                break;
            }
            let n = e.len() as u128;
            if pos + n <= start {
                pos += n;
                continue;
            }
            let lo = start.saturating_sub(pos);
            let hi = (stop - pos).min(n);
            match e {
                Entry::Plain => {
                    out.patterns.insert(pat.clone(), Entry::Plain);
                }
                Entry::One { set, .. } => {
                    out.patterns.insert(
                        pat.clone(),
                        Entry::One {
                            set: set.slice_positions(lo as usize, hi as usize),
                            pending: Vec::new(),
                        },
                    );
                }
                Entry::Nd(_) => {
                    let mut one = NodeSet::new();
                    one.patterns.insert(pat.clone(), e.clone());
                    let names = one.iter().skip(lo as usize).take((hi - lo) as usize);
                    out.update(&NodeSet::from_names(names).unwrap_or_default());
                }
            }
            pos += n;
        }
        out
    }

    /// The 0-based position of the node `name` in the iteration order, if
    /// it is in the set (one-slot patterns are not expanded).
    pub fn position(&self, name: &str) -> Option<usize> {
        let esc = escape(name.trim());
        let (pat, idx) = scan_single(&esc).ok()?;
        let mut base = 0usize;
        for (p, e) in self.sorted_patterns() {
            if *p != pat {
                base = base.saturating_add(e.len());
                continue;
            }
            return match e {
                Entry::Plain => Some(base),
                Entry::One { set, .. } => set.position(idx.first()?).map(|i| base + i),
                Entry::Nd(_) => {
                    let mut one = NodeSet::new();
                    one.patterns.insert(p.clone(), e.clone());
                    let found = one.iter().position(|n| n == name);
                    found.map(|i| base + i)
                }
            };
        }
        None
    }

    /// Writes the folded form into `out`.
    fn write_folded(&self, out: &mut String) {
        let mut first = true;
        for (pat, e) in self.sorted_patterns() {
            match e {
                Entry::Plain => {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&plain_name(pat));
                }
                Entry::One { set, .. } => {
                    let fold = match &self.fold_axis {
                        None => true,
                        Some(ax) => ax.iter().any(|&x| (-1..1).contains(&x)),
                    };
                    if fold {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        let mut rs = String::new();
                        if set.len() > 1 {
                            rs.push('[');
                            set.write_folded_autostep(&mut rs, self.autostep);
                            rs.push(']');
                        } else {
                            set.write_folded(&mut rs);
                        }
                        format_pattern(out, pat, &mut std::iter::once(rs.as_str()));
                    } else {
                        for i in set.iter() {
                            if !first {
                                out.push(',');
                            }
                            first = false;
                            let s = i.to_string();
                            format_pattern(out, pat, &mut std::iter::once(s.as_str()));
                        }
                    }
                }
                Entry::Nd(nd) => {
                    let dims = nd.dims() as i64;
                    let axes: Vec<i64> = match &self.fold_axis {
                        None => (0..dims).collect(),
                        Some(ax) => ax
                            .iter()
                            .filter(|&&x| -dims <= x && x < dims)
                            .map(|&x| x.rem_euclid(dims))
                            .collect(),
                    };
                    for v in nd.vectors() {
                        // Per axis, the strings to combine.
                        let mut combos: Vec<Vec<String>> = vec![Vec::new()];
                        for (axis, rs) in v.iter().enumerate() {
                            let choices: Vec<String> = if rs.len() > 1 {
                                if axes.contains(&(axis as i64)) {
                                    let mut f = String::from("[");
                                    rs.write_folded_autostep(&mut f, self.autostep);
                                    f.push(']');
                                    vec![f]
                                } else {
                                    rs.iter().map(|i| i.to_string()).collect()
                                }
                            } else {
                                vec![rs.to_string()]
                            };
                            let mut next = Vec::with_capacity(combos.len() * choices.len());
                            for c in &choices {
                                for prev in &combos {
                                    let mut n = prev.clone();
                                    n.push(c.clone());
                                    next.push(n);
                                }
                            }
                            combos = next;
                        }
                        for args in combos {
                            if !first {
                                out.push(',');
                            }
                            first = false;
                            format_pattern(out, pat, &mut args.iter().map(String::as_str));
                        }
                    }
                }
            }
        }
    }
}

/// The literal pieces of a pattern around its `%s` slots (`%%` undone):
/// one more piece than slots.
fn pattern_pieces(pat: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut rest = pat;
    while let Some(p) = rest.find('%') {
        pieces.last_mut().expect("non-empty").push_str(&rest[..p]);
        match rest.as_bytes().get(p + 1) {
            Some(b's') => {
                pieces.push(String::new());
                rest = &rest[p + 2..];
            }
            Some(b'%') => {
                pieces.last_mut().expect("non-empty").push('%');
                rest = &rest[p + 2..];
            }
            _ => {
                pieces.last_mut().expect("non-empty").push('%');
                rest = &rest[p + 1..];
            }
        }
    }
    pieces.last_mut().expect("non-empty").push_str(rest);
    pieces
}

/// Names of one n-dimensional vector, last axis fastest. The current name
/// lives in `buf`; stepping rewrites only the part after the axis that
/// changed (usually just the last index and the tail).
struct NdNames {
    pieces: Vec<String>,
    axes: Vec<Axis>,
    pos: Vec<usize>,
    /// `marks[k]`: length of `buf` before axis `k`'s index.
    marks: Vec<usize>,
    buf: String,
    /// The first axis whose index changed since `buf` was last written
    /// (`axes.len()` when `buf` is current; 0 before the first name).
    dirty: usize,
    done: bool,
}

/// The index strings of one axis: written out when the axis is small,
/// computed on demand otherwise (a huge axis is never expanded).
enum Axis {
    Strings(Vec<String>),
    Lazy(RangeSet, usize),
}

/// Axes up to this many indexes keep their strings.
const AXIS_STRINGS: usize = 1 << 16;

impl Axis {
    fn len(&self) -> usize {
        match self {
            Axis::Strings(v) => v.len(),
            Axis::Lazy(_, n) => *n,
        }
    }

    fn push(&self, pos: usize, out: &mut String) {
        match self {
            Axis::Strings(v) => out.push_str(&v[pos]),
            Axis::Lazy(r, _) => {
                if let Some(i) = r.nth(pos as u128) {
                    i.write_to(out);
                }
            }
        }
    }

    fn max_width(&self) -> usize {
        match self {
            Axis::Strings(v) => v.iter().map(String::len).max().unwrap_or(0),
            Axis::Lazy(r, _) => r.last().map_or(0, |i| i.width() + 1),
        }
    }
}

impl NdNames {
    fn new(pieces: &[String], v: &[RangeSet]) -> NdNames {
        let axes: Vec<Axis> = v
            .iter()
            .map(|r| {
                let n = r.len();
                if n <= AXIS_STRINGS {
                    Axis::Strings(r.iter().map(|i| i.to_string()).collect())
                } else {
                    Axis::Lazy(r.clone(), n)
                }
            })
            .collect();
        let len = pieces.iter().map(String::len).sum::<usize>()
            + axes.iter().map(Axis::max_width).sum::<usize>();
        NdNames {
            pieces: pieces.to_vec(),
            done: axes.iter().any(|a| a.len() == 0) || axes.is_empty(),
            pos: vec![0; axes.len()],
            marks: vec![0; axes.len()],
            buf: String::with_capacity(len),
            dirty: 0,
            axes,
        }
    }

    /// The next name, or `None` when done.
    fn next_name(&mut self) -> Option<&str> {
        if self.done {
            return None;
        }
        // Rewrite from the first changed axis on.
        let from = self.dirty;
        if from == 0 {
            self.buf.clear();
            self.buf.push_str(&self.pieces[0]);
        } else {
            self.buf.truncate(self.marks[from]);
        }
        for k in from..self.axes.len() {
            self.marks[k] = self.buf.len();
            self.axes[k].push(self.pos[k], &mut self.buf);
            if let Some(piece) = self.pieces.get(k + 1) {
                self.buf.push_str(piece);
            }
        }
        // Step the odometer, last axis fastest.
        let mut d = self.axes.len();
        loop {
            if d == 0 {
                self.done = true;
                break;
            }
            d -= 1;
            self.pos[d] += 1;
            if self.pos[d] < self.axes[d].len() {
                break;
            }
            self.pos[d] = 0;
        }
        self.dirty = d;
        Some(&self.buf)
    }
}

impl Iterator for NdNames {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.next_name().map(str::to_owned)
    }
}

fn plain_name(pat: &str) -> String {
    let mut out = String::with_capacity(pat.len());
    format_pattern(&mut out, pat, &mut std::iter::empty());
    out
}

impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_folded(&mut s);
        f.write_str(&s)
    }
}

impl PartialEq for NodeSet {
    fn eq(&self, other: &NodeSet) -> bool {
        self.len() == other.len() && self.is_subset(other)
    }
}

impl Eq for NodeSet {}

impl std::str::FromStr for NodeSet {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<NodeSet, ParseError> {
        NodeSet::parse(s)
    }
}

/// Builds a [`NodeSet`] from many names or sets without re-folding after
/// each addition (unions are merged once, in [`NodeSetBuilder::build`]).
#[derive(Debug, Default)]
pub struct NodeSetBuilder {
    set: NodeSet,
}

impl NodeSetBuilder {
    /// An empty builder.
    pub fn new() -> NodeSetBuilder {
        NodeSetBuilder::default()
    }

    /// Adds one node name, taken literally (no brackets, operators or
    /// groups).
    pub fn add_name(&mut self, name: &str) -> Result<(), ParseError> {
        let esc = escape(name.trim());
        let (pat, idx) = scan_single(&esc).map_err(|e| e.locate(name))?;
        self.set.add_one(pat, idx);
        Ok(())
    }

    /// Adds every node of `other`.
    pub fn add(&mut self, other: &NodeSet) {
        self.set.update_lazy(other);
    }

    /// Whether nothing was added yet.
    pub fn is_empty(&self) -> bool {
        self.set.patterns.is_empty()
    }

    /// The node set of everything added.
    pub fn build(mut self) -> NodeSet {
        self.set.normalize();
        self.set
    }
}

impl Extend<NodeSet> for NodeSet {
    fn extend<T: IntoIterator<Item = NodeSet>>(&mut self, iter: T) {
        for ns in iter {
            self.update_lazy(&ns);
        }
        self.normalize();
    }
}

impl FromIterator<NodeSet> for NodeSet {
    fn from_iter<T: IntoIterator<Item = NodeSet>>(iter: T) -> NodeSet {
        let mut s = NodeSet::new();
        s.extend(iter);
        s
    }
}
