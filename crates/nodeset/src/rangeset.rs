//! One-dimension range sets: sorted sets of node indexes that keep the way
//! each index was written (`7`, `07` and `007` are three different indexes).
//!
//! A set is kept as runs of consecutive values written with the same width,
//! never index by index: `x[1-999999999]` is one run, and counting, folding
//! and set operations cost the number of runs, not of indexes.

use std::cmp::Ordering;
use std::fmt;

/// Largest magnitude an index may have (exclusive): indexes are kept in an
/// `i128` (ClusterShell accepts up to 10^100; documented difference).
const MAX_VALUE: i128 = 10_i128.pow(37);
/// Largest number of indexes one `a-b` range may produce (ClusterShell's
/// "range too large" limit).
const MAX_RANGE: i128 = 1_000_000_000;
/// Largest number of separate indexes one stepped range (`a-b/step`, step
/// > 1) may produce: each is stored on its own.
pub const MAX_STEPPED: i128 = 5_000_000;

/// One index of a range set: a value and the length of its written form.
///
/// Non-negative indexes are written zero-padded to `width` characters
/// (`width` larger than the number of digits means the index is padded);
/// negative indexes are never padded and their width counts the sign.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Index {
    value: i128,
    width: u16,
}

fn digit_count(mut v: u128) -> u16 {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

impl Index {
    /// The index `value` written with at least `pad` digits (padding is
    /// ignored for negative values, as ClusterShell does).
    pub fn new(value: i128, pad: u16) -> Index {
        let digits = digit_count(value.unsigned_abs());
        let width = if value < 0 {
            digits + 1
        } else {
            digits.max(pad)
        };
        Index { value, width }
    }

    /// Parses a non-empty string of ASCII digits, keeping its written length.
    /// Returns `None` for anything else or for values too large.
    pub fn from_digits(s: &str) -> Option<Index> {
        if s.is_empty() || s.len() > u16::MAX as usize || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let significant = s.trim_start_matches('0');
        if significant.len() > 37 {
            return None;
        }
        let value = if significant.is_empty() {
            0
        } else {
            significant.parse::<i128>().ok()?
        };
        Some(Index {
            value,
            width: s.len() as u16,
        })
    }

    /// The numeric value.
    pub fn value(&self) -> i128 {
        self.value
    }

    /// The length of the written form.
    pub fn width(&self) -> usize {
        self.width as usize
    }

    /// Whether the written form starts with a padding zero (`07`, `00`).
    pub fn is_padded(&self) -> bool {
        self.value >= 0 && self.width > digit_count(self.value as u128)
    }

    /// The class of indexes this one sorts and folds with: the negative
    /// width for negative values, the width otherwise.
    fn class(&self) -> i32 {
        if self.value < 0 {
            -i32::from(self.width)
        } else {
            i32::from(self.width)
        }
    }

    /// Appends the written form to `out`.
    pub fn write_to(&self, out: &mut String) {
        let mut buf = [0u8; 40];
        let mut i = buf.len();
        let mut v = self.value.unsigned_abs();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if self.value < 0 {
            out.push('-');
        } else {
            for _ in (buf.len() - i)..self.width as usize {
                out.push('0');
            }
        }
        out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(self.width as usize);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

impl Ord for Index {
    /// ClusterShell's order: negative indexes first (longest first, then by
    /// value), then the others by written length, then by value.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.class(), self.value).cmp(&(other.class(), other.value))
    }
}

impl PartialOrd for Index {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A range-set syntax error: the faulty sub-range and what is wrong with it,
/// shaped like ClusterShell's `RangeSetParseError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeError {
    /// The faulty part of the input (may be empty).
    pub part: String,
    /// What is wrong.
    pub message: String,
}

impl RangeError {
    pub(crate) fn new(part: &str, message: &str) -> RangeError {
        RangeError {
            part: part.to_string(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.part.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} : \"{}\"", self.message, self.part)
        }
    }
}

impl std::error::Error for RangeError {}

/// Parses an integer the way Python's `int()` does for the inputs node sets
/// meet: optional surrounding whitespace, optional sign, ASCII digits.
fn py_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'+') => (false, &t[1..]),
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 37 {
        // Too large for us: reported as an invalid value by the caller.
        return Some(if neg { -MAX_VALUE } else { MAX_VALUE });
    }
    let v: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Consecutive values `first..=last`, all written with the width of
/// `class` (see [`Index::class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Run {
    class: i32,
    first: i128,
    last: i128,
}

impl Run {
    fn index(&self, value: i128) -> Index {
        Index {
            value,
            width: self.class.unsigned_abs() as u16,
        }
    }

    fn count(&self) -> u128 {
        (self.last - self.first) as u128 + 1
    }

    fn key(&self) -> (i32, i128) {
        (self.class, self.first)
    }
}

/// Appends the runs of `first..=last` written with at least `pad` digits,
/// one per width class (`8-12` is `8-9` and `10-12`).
fn push_values(runs: &mut Vec<Run>, first: i128, last: i128, pad: u16) {
    let mut v = first;
    while v <= last {
        let idx = Index::new(v, pad);
        // The last value of the same width (and sign).
        let end = if v < 0 {
            // -99..-10 share width 3: the class ends at -(10^(d-1)).
            let d = u32::from(idx.width) - 1;
            -(10_i128.pow(d - 1))
        } else {
            10_i128
                .checked_pow(u32::from(idx.width))
                .map_or(i128::MAX, |p| p - 1)
        };
        let end = end.min(last);
        runs.push(Run {
            class: idx.class(),
            first: v,
            last: end,
        });
        v = end + 1;
    }
}

/// A sorted set of [`Index`]es (ClusterShell's `RangeSet`).
///
/// Indexes are kept in ClusterShell's order, as runs of consecutive values
/// of one width; the folded form (`Display`) groups consecutive indexes of
/// the same padding into `a-b` ranges: `1-3,5,08-10`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    runs: Vec<Run>,
}

impl RangeSet {
    /// An empty range set.
    pub fn new() -> RangeSet {
        RangeSet { runs: Vec::new() }
    }

    /// A range set of one index.
    pub fn one(index: Index) -> RangeSet {
        RangeSet {
            runs: vec![Run {
                class: index.class(),
                first: index.value,
                last: index.value,
            }],
        }
    }

    /// Builds a range set from indexes in any order (duplicates allowed).
    pub fn from_indexes(mut items: Vec<Index>) -> RangeSet {
        items.sort_unstable();
        items.dedup();
        let mut runs: Vec<Run> = Vec::new();
        for i in items {
            match runs.last_mut() {
                Some(r) if r.class == i.class() && r.last + 1 == i.value => r.last = i.value,
                _ => runs.push(Run {
                    class: i.class(),
                    first: i.value,
                    last: i.value,
                }),
            }
        }
        RangeSet { runs }
    }

    /// Sorts and merges runs given in any order.
    fn from_runs(mut runs: Vec<Run>) -> RangeSet {
        if !runs.windows(2).all(|w| w[0].key() <= w[1].key()) {
            runs.sort_unstable_by_key(Run::key);
        }
        let mut out: Vec<Run> = Vec::with_capacity(runs.len());
        for r in runs {
            match out.last_mut() {
                Some(p) if p.class == r.class && r.first <= p.last.saturating_add(1) => {
                    p.last = p.last.max(r.last)
                }
                _ => out.push(r),
            }
        }
        RangeSet { runs: out }
    }

    /// The consecutive indexes from `first` to `last` (same padding as
    /// `first`, as in a folded `a-b`).
    pub fn from_run(first: Index, last: Index) -> RangeSet {
        let mut runs = Vec::new();
        let pad = if first.is_padded() { first.width } else { 0 };
        push_values(&mut runs, first.value, last.value, pad);
        RangeSet::from_runs(runs)
    }

    /// Parses ClusterShell's range-set syntax: comma-separated `a`, `a-b`
    /// and `a-b/step` items, zero padding kept (`001-010`).
    pub fn parse(pattern: &str) -> Result<RangeSet, RangeError> {
        let mut runs = Vec::new();
        for raw in pattern.split(',') {
            parse_subrange(raw.trim(), &mut runs)?;
        }
        Ok(RangeSet::from_runs(runs))
    }

    /// Number of indexes (saturating).
    pub fn len(&self) -> usize {
        let n: u128 = self.runs.iter().map(Run::count).sum();
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Whether the set has no index.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The indexes in ClusterShell's order.
    pub fn iter(&self) -> impl Iterator<Item = Index> + '_ {
        self.runs
            .iter()
            .flat_map(|r| (r.first..=r.last).map(move |v| r.index(v)))
    }

    /// The indexes in ClusterShell's order, in a vector.
    pub fn to_vec(&self) -> Vec<Index> {
        self.iter().collect()
    }

    /// The index at position `n` of the order, if any.
    pub fn nth(&self, mut n: u128) -> Option<Index> {
        for r in &self.runs {
            if n < r.count() {
                return Some(r.index(r.first + n as i128));
            }
            n -= r.count();
        }
        None
    }

    /// First index, if any.
    pub fn first(&self) -> Option<Index> {
        self.runs.first().map(|r| r.index(r.first))
    }

    /// Last index, if any.
    pub fn last(&self) -> Option<Index> {
        self.runs.last().map(|r| r.index(r.last))
    }

    /// Whether `index` (with its exact written form) is in the set.
    pub fn contains(&self, index: &Index) -> bool {
        self.position(index).is_some()
    }

    /// The 0-based position of `index` (with its written form), if present.
    pub fn position(&self, index: &Index) -> Option<usize> {
        let key = (index.class(), index.value);
        let p = self.runs.partition_point(|r| r.key() <= key);
        if p == 0 {
            return None;
        }
        let r = &self.runs[p - 1];
        if r.class != key.0 || r.last < index.value {
            return None;
        }
        let before: u128 = self.runs[..p - 1].iter().map(Run::count).sum();
        usize::try_from(before + (index.value - r.first) as u128).ok()
    }

    /// Whether every index of `self` is in `other`.
    pub fn is_subset(&self, other: &RangeSet) -> bool {
        self.difference(other).is_empty()
    }

    /// Whether the two sets have no index in common.
    pub fn is_disjoint(&self, other: &RangeSet) -> bool {
        self.intersection(other).is_empty()
    }

    /// Indexes in either set.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        if other.runs.is_empty() {
            return self.clone();
        }
        if self.runs.is_empty() {
            return other.clone();
        }
        let mut runs = Vec::with_capacity(self.runs.len() + other.runs.len());
        runs.extend_from_slice(&self.runs);
        runs.extend_from_slice(&other.runs);
        RangeSet::from_runs(runs)
    }

    /// Indexes in both sets.
    pub fn intersection(&self, other: &RangeSet) -> RangeSet {
        let (a, b) = (&self.runs, &other.runs);
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < a.len() && j < b.len() {
            let (x, y) = (a[i], b[j]);
            if x.class != y.class {
                if x.class < y.class {
                    i += 1;
                } else {
                    j += 1;
                }
                continue;
            }
            let lo = x.first.max(y.first);
            let hi = x.last.min(y.last);
            if lo <= hi {
                out.push(Run {
                    class: x.class,
                    first: lo,
                    last: hi,
                });
            }
            if x.last < y.last {
                i += 1;
            } else {
                j += 1;
            }
        }
        RangeSet { runs: out }
    }

    /// Indexes of `self` not in `other`.
    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        let b = &other.runs;
        let mut j = 0;
        let mut out = Vec::new();
        for x in &self.runs {
            while j < b.len()
                && (b[j].class < x.class || b[j].class == x.class && b[j].last < x.first)
            {
                j += 1;
            }
            let mut cur = x.first;
            let mut k = j;
            while k < b.len() && b[k].class == x.class && b[k].first <= x.last {
                if b[k].first > cur {
                    out.push(Run {
                        class: x.class,
                        first: cur,
                        last: b[k].first - 1,
                    });
                }
                cur = cur.max(b[k].last + 1);
                k += 1;
            }
            if cur <= x.last {
                out.push(Run {
                    class: x.class,
                    first: cur,
                    last: x.last,
                });
            }
        }
        RangeSet { runs: out }
    }

    /// Indexes in exactly one of the sets.
    pub fn symmetric_difference(&self, other: &RangeSet) -> RangeSet {
        self.difference(other).union(&other.difference(self))
    }

    /// Runs of consecutive indexes with the same padding, as (first, last):
    /// the items of the folded form.
    pub fn runs(&self) -> Vec<(Index, Index)> {
        let mut out: Vec<(Index, Index)> = Vec::new();
        for r in &self.runs {
            let (a, b) = (r.index(r.first), r.index(r.last));
            if let Some((start, last)) = out.last_mut() {
                let compatible = if start.is_padded() {
                    a.width == start.width
                } else {
                    !a.is_padded()
                };
                if compatible && last.value + 1 == a.value {
                    *last = b;
                    continue;
                }
            }
            out.push((a, b));
        }
        out
    }

    /// Appends the folded form (`1-3,5`) to `out`.
    pub fn write_folded(&self, out: &mut String) {
        let emit = |out: &mut String, n: usize, a: Index, b: Index| {
            if n > 0 {
                out.push(',');
            }
            a.write_to(out);
            if a != b {
                out.push('-');
                b.write_to(out);
            }
        };
        // The same merge as `runs()`, without building its vector.
        let mut cur: Option<(Index, Index)> = None;
        let mut n = 0;
        for r in &self.runs {
            let (a, b) = (r.index(r.first), r.index(r.last));
            if let Some((start, last)) = cur.as_mut() {
                let compatible = if start.is_padded() {
                    a.width == start.width
                } else {
                    !a.is_padded()
                };
                if compatible && last.value + 1 == a.value {
                    *last = b;
                    continue;
                }
                emit(out, n, *start, *last);
                n += 1;
            }
            cur = Some((a, b));
        }
        if let Some((a, b)) = cur {
            emit(out, n, a, b);
        }
    }
}

impl RangeSet {
    /// The items of the folded form as `(first, last, step)`, with
    /// ClusterShell's autostep rule: `autostep` is the least number of
    /// indexes an arithmetic progression must hold to be written
    /// `a-b/step` (`None`: never; runs of consecutive indexes are always
    /// `a-b`). Padding classes never mix within one item.
    pub fn folded_items(&self, autostep: Option<i64>) -> Vec<(Index, Index, i128)> {
        // ClusterShell keeps the threshold minus one and compares it with
        // the distance covered; a disabled autostep never matches.
        let threshold: Option<i128> = autostep.map(|a| a as i128 - 1);
        let reaches = |first: i128, last: i128, step: i128| match threshold {
            None => false,
            Some(t) => (last - first) >= t.saturating_mul(step),
        };
        let mut out: Vec<(Index, Index, i128)> = Vec::new();
        let Some(head) = self.first() else {
            return out;
        };
        let mk =
            |v: i128, like: Index| Index::new(v, if like.is_padded() { like.width } else { 0 });
        let singles =
            |out: &mut Vec<(Index, Index, i128)>, from: i128, stop: i128, step: i128, like| {
                let mut j = from;
                while j < stop {
                    let ix = mk(j, like);
                    out.push((ix, ix, 1));
                    j += step;
                }
            };
        let mut start = head;
        let mut last = head;
        let mut step: Option<i128> = None;
        for r in &self.runs {
            let mut v = r.first;
            if r.first == head.value && r.class == head.class() {
                v += 1;
            }
            while v <= r.last {
                let idx = r.index(v);
                let padding_mismatch = if start.is_padded() {
                    idx.width != start.width
                } else {
                    idx.is_padded()
                };
                let gap = idx.value - last.value;
                let step_mismatch = !padding_mismatch && step.is_some_and(|s| s != gap);
                if padding_mismatch || step_mismatch {
                    let (stepped, s) = match step {
                        Some(s) => (s == 1 || reaches(start.value, last.value, s), s),
                        None => (true, 1),
                    };
                    if stepped {
                        out.push((start, last, s));
                        start = idx;
                    } else {
                        let stop = if padding_mismatch {
                            last.value + 1
                        } else {
                            last.value - s + 1
                        };
                        singles(&mut out, start.value, stop, s, start);
                        start = if padding_mismatch { idx } else { last };
                    }
                    step = step_mismatch.then_some(gap);
                } else {
                    step = Some(gap);
                }
                last = idx;
                v += 1;
                // The rest of a run of consecutive indexes changes nothing
                // but `last` when it continues the current step-1 item.
                if step == Some(1) && v <= r.last {
                    let next = r.index(v);
                    let same = if start.is_padded() {
                        next.width == start.width
                    } else {
                        !next.is_padded()
                    };
                    if same {
                        last = r.index(r.last);
                        v = r.last + 1;
                    }
                }
            }
        }
        match step {
            Some(s) if s != 1 && !reaches(start.value, last.value, s) => {
                singles(&mut out, start.value, last.value + 1, s, start);
            }
            s => out.push((start, last, s.unwrap_or(1))),
        }
        out
    }

    /// Appends the folded form with ClusterShell's autostep rule (see
    /// [`RangeSet::folded_items`]): `0-6/2`.
    pub fn write_folded_autostep(&self, out: &mut String, autostep: Option<i64>) {
        if autostep.is_none() {
            return self.write_folded(out);
        }
        for (n, (a, b, step)) in self.folded_items(autostep).into_iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            a.write_to(out);
            if a != b {
                out.push('-');
                b.write_to(out);
                if step != 1 {
                    out.push('/');
                    out.push_str(&step.to_string());
                }
            }
        }
    }

    /// The maximal runs of consecutive indexes with the same padding, each
    /// as its own range set (ClusterShell's `contiguous()`).
    pub fn contiguous(&self) -> Vec<RangeSet> {
        self.runs()
            .into_iter()
            .map(|(a, b)| RangeSet::from_run(a, b))
            .collect()
    }

    /// The indexes at positions `start..stop` (clamped), in order.
    pub fn slice_positions(&self, start: usize, stop: usize) -> RangeSet {
        let (start, stop) = (start as u128, stop as u128);
        let mut out = Vec::new();
        let mut pos: u128 = 0;
        for r in &self.runs {
            let n = r.count();
            let (lo, hi) = (start.max(pos), stop.min(pos + n));
            if lo < hi {
                out.push(Run {
                    class: r.class,
                    first: r.first + (lo - pos) as i128,
                    last: r.first + (hi - pos) as i128 - 1,
                });
            }
            pos += n;
            if pos >= stop {
                break;
            }
        }
        RangeSet { runs: out }
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_folded(&mut s);
        f.write_str(&s)
    }
}

/// Parses one comma-separated item (`5`, `1-5`, `01-10/2`, `-3`, `-5--2`).
fn parse_subrange(sub: &str, runs: &mut Vec<Run>) -> Result<(), RangeError> {
    let err = |msg: &str| Err(RangeError::new(sub, msg));
    let (base, step_s) = match sub.split_once('/') {
        None => (sub, None),
        Some((b, s)) => (b, Some(s)),
    };
    let step = match step_s {
        None => 1,
        Some(s) => match py_int(s) {
            Some(v) => v,
            None => return err("cannot convert string to integer"),
        },
    };
    let (begin, end, begin_neg, end_neg);
    if !base.contains('-') {
        if step != 1 {
            return err("invalid step usage");
        }
        begin = base;
        end = base;
        begin_neg = false;
        end_neg = false;
    } else {
        let parts: Vec<&str> = base.split('-').map(str::trim).collect();
        match parts.len() {
            2 => {
                if parts[0].is_empty() {
                    begin = parts[1];
                    end = parts[1];
                    begin_neg = true;
                    end_neg = true;
                } else {
                    begin = parts[0];
                    end = parts[1];
                    begin_neg = false;
                    end_neg = false;
                }
            }
            3 => {
                begin = parts[1];
                end = parts[2];
                begin_neg = true;
                end_neg = false;
            }
            4 => {
                begin = parts[1];
                end = parts[3];
                begin_neg = true;
                end_neg = true;
            }
            _ => return err("too many values to unpack"),
        }
    }
    let conv_err = || {
        if sub.is_empty() {
            Err(RangeError::new("", "empty range"))
        } else {
            Err(RangeError::new(sub, "cannot convert string to integer"))
        }
    };
    let Some(begin_v) = py_int(begin) else {
        return conv_err();
    };
    let mut pad: usize = 0;
    let start: i128;
    if begin_v != 0 {
        let stripped = begin.trim_start_matches('0');
        if stripped.len() < begin.len() {
            pad = begin.len();
        }
        match py_int(stripped) {
            Some(v) => start = v,
            None => return conv_err(),
        }
    } else {
        if begin.len() > 1 {
            pad = begin.len();
        }
        start = 0;
    }
    let Some(end_v) = py_int(end) else {
        return conv_err();
    };
    let end_stripped = if end_v != 0 {
        end.trim_start_matches('0')
    } else {
        end
    };
    let endpad = if end_stripped.len() < end.len() {
        end.len()
    } else {
        0
    };
    if (pad > 0 || endpad > 0) && begin.len() != end.len() {
        return err("padding length mismatch");
    }
    let Some(stop) = py_int(end_stripped) else {
        return conv_err();
    };
    if pad > 0 && begin_neg {
        return err("padding not supported in negative ranges");
    }
    let first = if begin_neg { -start } else { start };
    let last = if end_neg { -stop } else { stop };
    if stop.abs() >= MAX_VALUE || start.abs() >= MAX_VALUE || first > last || step < 1 {
        return err("invalid values in range");
    }
    if last - first >= MAX_RANGE {
        return err("range too large");
    }
    let pad = pad.min(u16::MAX as usize) as u16;
    if step == 1 {
        push_values(runs, first, last, pad);
        return Ok(());
    }
    // Each index of a stepped range is stored on its own: bounded.
    let count = (last - first) / step + 1;
    if count > MAX_STEPPED {
        return err("stepped range too large to expand (more than 5000000 indexes)");
    }
    if runs.try_reserve(count as usize).is_err() {
        return err("out of memory for this range");
    }
    let mut v = first;
    while v <= last {
        push_values(runs, v, v, pad);
        v += step;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(s: &str) -> String {
        RangeSet::parse(s).unwrap().to_string()
    }

    #[test]
    fn folds_runs_and_keeps_padding() {
        assert_eq!(folded("1-5,7,8"), "1-5,7-8");
        assert_eq!(folded("001-003,5"), "5,001-003");
        assert_eq!(folded("0-10/2"), "0,2,4,6,8,10");
        assert_eq!(folded("8-12"), "8-12");
        assert_eq!(folded("08-12"), "08-12");
        assert_eq!(folded("098-100"), "098-100");
        assert_eq!(folded("9,00,10"), "9,00,10");
        assert_eq!(folded("-3-1"), "-3-1");
    }

    #[test]
    fn reports_errors_like_clustershell() {
        let e = RangeSet::parse("3-05").unwrap_err();
        assert_eq!(e.to_string(), "padding length mismatch : \"3-05\"");
        let e = RangeSet::parse("").unwrap_err();
        assert_eq!(e.to_string(), "empty range");
        let e = RangeSet::parse("5-3").unwrap_err();
        assert_eq!(e.to_string(), "invalid values in range : \"5-3\"");
        let e = RangeSet::parse("3/2").unwrap_err();
        assert_eq!(e.to_string(), "invalid step usage : \"3/2\"");
        let e = RangeSet::parse("-03-5").unwrap_err();
        assert_eq!(e.message, "padding length mismatch");
        let e = RangeSet::parse("-03").unwrap_err();
        assert_eq!(e.message, "padding not supported in negative ranges");
    }

    #[test]
    fn set_operations() {
        let a = RangeSet::parse("1-10").unwrap();
        let b = RangeSet::parse("5-15").unwrap();
        assert_eq!(a.union(&b).to_string(), "1-15");
        assert_eq!(a.intersection(&b).to_string(), "5-10");
        assert_eq!(a.difference(&b).to_string(), "1-4");
        assert_eq!(a.symmetric_difference(&b).to_string(), "1-4,11-15");
        assert!(RangeSet::parse("2-3").unwrap().is_subset(&a));
        assert!(a.is_disjoint(&RangeSet::parse("11").unwrap()));
    }

    fn stepped(s: &str, autostep: i64) -> String {
        let mut out = String::new();
        RangeSet::parse(s)
            .unwrap()
            .write_folded_autostep(&mut out, Some(autostep));
        out
    }

    #[test]
    fn autostep_folds_progressions_from_the_threshold_on() {
        // Expected values: ClusterShell 1.10.1's RangeSet(s, autostep=n).
        assert_eq!(stepped("0,2,4,6", 4), "0-6/2");
        assert_eq!(stepped("0,2,4,6", 5), "0,2,4,6");
        assert_eq!(stepped("0,2,4,6,9", 4), "0-6/2,9");
        assert_eq!(stepped("0,2,4-6", 3), "0-4/2,5-6");
        assert_eq!(stepped("1-3,10,11", 3), "1-3,10-11");
        assert_eq!(stepped("1-3,10,11", 0), "1-3,10,11");
        assert_eq!(stepped("01,03,05,7,9", 3), "7,9,01-05/2");
        let rs = RangeSet::parse("1-3,5,7-8").unwrap();
        let parts: Vec<String> = rs.contiguous().iter().map(|r| r.to_string()).collect();
        assert_eq!(parts, ["1-3", "5", "7-8"]);
    }
}
