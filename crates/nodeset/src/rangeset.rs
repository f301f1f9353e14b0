//! One-dimension range sets: sorted sets of node indexes that keep the way
//! each index was written (`7`, `07` and `007` are three different indexes).

use std::cmp::Ordering;
use std::fmt;

/// Largest magnitude an index may have (exclusive): indexes are kept in an
/// `i64`, ClusterShell accepts up to 10^100 (documented difference).
const MAX_VALUE: i64 = 1_000_000_000_000_000_000;
/// Largest number of indexes one `a-b` range may produce (ClusterShell's
/// "range too large" limit).
const MAX_RANGE: i64 = 1_000_000_000;

/// One index of a range set: a value and the length of its written form.
///
/// Non-negative indexes are written zero-padded to `width` characters
/// (`width` larger than the number of digits means the index is padded);
/// negative indexes are never padded and their width counts the sign.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Index {
    value: i64,
    width: u16,
}

fn digit_count(mut v: u64) -> u16 {
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
    pub fn new(value: i64, pad: u16) -> Index {
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
        if significant.len() > 18 {
            return None;
        }
        let value = if significant.is_empty() {
            0
        } else {
            significant.parse::<i64>().ok()?
        };
        Some(Index {
            value,
            width: s.len() as u16,
        })
    }

    /// The numeric value.
    pub fn value(&self) -> i64 {
        self.value
    }

    /// The length of the written form.
    pub fn width(&self) -> usize {
        self.width as usize
    }

    /// Whether the written form starts with a padding zero (`07`, `00`).
    pub fn is_padded(&self) -> bool {
        self.value >= 0 && self.width > digit_count(self.value as u64)
    }

    /// Appends the written form to `out`.
    pub fn write_to(&self, out: &mut String) {
        let mut buf = [0u8; 20];
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
        match (self.value < 0, other.value < 0) {
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (true, true) => other
                .width
                .cmp(&self.width)
                .then(self.value.cmp(&other.value)),
            (false, false) => self
                .width
                .cmp(&other.width)
                .then(self.value.cmp(&other.value)),
        }
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
fn py_int(s: &str) -> Option<i64> {
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
    if significant.len() > 18 {
        // Too large for us: reported as an invalid value by the caller.
        return Some(if neg { -MAX_VALUE } else { MAX_VALUE });
    }
    let v: i64 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// A sorted set of [`Index`]es (ClusterShell's `RangeSet`).
///
/// Indexes are kept sorted in ClusterShell's order and unique; the folded
/// form (`Display`) groups consecutive indexes of the same padding into
/// `a-b` ranges: `1-3,5,08-10`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    items: Vec<Index>,
}

impl RangeSet {
    /// An empty range set.
    pub fn new() -> RangeSet {
        RangeSet { items: Vec::new() }
    }

    /// A range set of one index.
    pub fn one(index: Index) -> RangeSet {
        RangeSet { items: vec![index] }
    }

    /// Builds a range set from indexes in any order (duplicates allowed).
    pub fn from_indexes(mut items: Vec<Index>) -> RangeSet {
        items.sort_unstable();
        items.dedup();
        RangeSet { items }
    }

    /// Parses ClusterShell's range-set syntax: comma-separated `a`, `a-b`
    /// and `a-b/step` items, zero padding kept (`001-010`).
    pub fn parse(pattern: &str) -> Result<RangeSet, RangeError> {
        let mut items = Vec::new();
        for raw in pattern.split(',') {
            parse_subrange(raw.trim(), &mut items)?;
        }
        Ok(RangeSet::from_indexes(items))
    }

    /// Number of indexes.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the set has no index.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The indexes in ClusterShell's order.
    pub fn indexes(&self) -> &[Index] {
        &self.items
    }

    /// First index, if any.
    pub fn first(&self) -> Option<Index> {
        self.items.first().copied()
    }

    /// Last index, if any.
    pub fn last(&self) -> Option<Index> {
        self.items.last().copied()
    }

    /// Whether `index` (with its exact written form) is in the set.
    pub fn contains(&self, index: &Index) -> bool {
        self.items.binary_search(index).is_ok()
    }

    /// Whether every index of `self` is in `other`.
    pub fn is_subset(&self, other: &RangeSet) -> bool {
        if self.items.len() > other.items.len() {
            return false;
        }
        let mut j = 0;
        for a in &self.items {
            while j < other.items.len() && other.items[j] < *a {
                j += 1;
            }
            if j == other.items.len() || other.items[j] != *a {
                return false;
            }
            j += 1;
        }
        true
    }

    /// Whether the two sets have no index in common.
    pub fn is_disjoint(&self, other: &RangeSet) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.items.len() && j < other.items.len() {
            match self.items[i].cmp(&other.items[j]) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => return false,
            }
        }
        true
    }

    fn merge(&self, other: &RangeSet, keep_a: bool, keep_b: bool, keep_both: bool) -> RangeSet {
        let (a, b) = (&self.items, &other.items);
        let mut out =
            Vec::with_capacity(if keep_a { a.len() } else { 0 } + if keep_b { b.len() } else { 0 });
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                Ordering::Less => {
                    if keep_a {
                        out.push(a[i]);
                    }
                    i += 1;
                }
                Ordering::Greater => {
                    if keep_b {
                        out.push(b[j]);
                    }
                    j += 1;
                }
                Ordering::Equal => {
                    if keep_both {
                        out.push(a[i]);
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        if keep_a {
            out.extend_from_slice(&a[i..]);
        }
        if keep_b {
            out.extend_from_slice(&b[j..]);
        }
        RangeSet { items: out }
    }

    /// Indexes in either set.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        if other.items.is_empty() {
            return self.clone();
        }
        if self.items.is_empty() {
            return other.clone();
        }
        if self.items.last() < other.items.first() {
            let mut items = self.items.clone();
            items.extend_from_slice(&other.items);
            return RangeSet { items };
        }
        self.merge(other, true, true, true)
    }

    /// Indexes in both sets.
    pub fn intersection(&self, other: &RangeSet) -> RangeSet {
        self.merge(other, false, false, true)
    }

    /// Indexes of `self` not in `other`.
    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        self.merge(other, true, false, false)
    }

    /// Indexes in exactly one of the sets.
    pub fn symmetric_difference(&self, other: &RangeSet) -> RangeSet {
        self.merge(other, true, true, false)
    }

    /// Runs of consecutive indexes with the same padding, as (first, last):
    /// the items of the folded form.
    pub fn runs(&self) -> Vec<(Index, Index)> {
        let mut out = Vec::new();
        let mut it = self.items.iter();
        let Some(&first) = it.next() else {
            return out;
        };
        let (mut start, mut last) = (first, first);
        for &idx in it {
            let compatible = if start.is_padded() {
                idx.width == start.width
            } else {
                !idx.is_padded()
            };
            if compatible && idx.value == last.value + 1 {
                last = idx;
            } else {
                out.push((start, last));
                start = idx;
                last = idx;
            }
        }
        out.push((start, last));
        out
    }

    /// Appends the folded form (`1-3,5`) to `out`.
    pub fn write_folded(&self, out: &mut String) {
        let mut it = self.items.iter();
        let Some(&first) = it.next() else {
            return;
        };
        let (mut start, mut last) = (first, first);
        let emit = |out: &mut String, start: Index, last: Index, sep: bool| {
            if sep {
                out.push(',');
            }
            start.write_to(out);
            if start != last {
                out.push('-');
                last.write_to(out);
            }
        };
        let mut sep = false;
        for &idx in it {
            let compatible = if start.is_padded() {
                idx.width == start.width
            } else {
                !idx.is_padded()
            };
            if compatible && idx.value == last.value + 1 {
                last = idx;
            } else {
                emit(out, start, last, sep);
                sep = true;
                start = idx;
                last = idx;
            }
        }
        emit(out, start, last, sep);
    }
}

impl RangeSet {
    /// The items of the folded form as `(first, last, step)`, with
    /// ClusterShell's autostep rule: `autostep` is the least number of
    /// indexes an arithmetic progression must hold to be written
    /// `a-b/step` (`None`: never; runs of consecutive indexes are always
    /// `a-b`). Padding classes never mix within one item.
    pub fn folded_items(&self, autostep: Option<i64>) -> Vec<(Index, Index, i64)> {
        // ClusterShell keeps the threshold minus one and compares it with
        // the distance covered; a disabled autostep never matches.
        let threshold: Option<i128> = autostep.map(|a| a as i128 - 1);
        let reaches = |first: i64, last: i64, step: i64| match threshold {
            None => false,
            Some(t) => (last as i128 - first as i128) >= t * step as i128,
        };
        let mut out: Vec<(Index, Index, i64)> = Vec::new();
        let mut it = self.items.iter();
        let Some(&head) = it.next() else {
            return out;
        };
        let mk = |v: i64, like: Index| Index::new(v, if like.is_padded() { like.width } else { 0 });
        let singles =
            |out: &mut Vec<(Index, Index, i64)>, from: i64, stop: i64, step: i64, like| {
                let mut j = from;
                while j < stop {
                    let ix = mk(j, like);
                    out.push((ix, ix, 1));
                    j += step;
                }
            };
        let mut start = head;
        let mut last = head;
        let mut step: Option<i64> = None;
        for &idx in it {
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
                last = idx;
                continue;
            }
            step = Some(gap);
            last = idx;
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
        let mut out = Vec::new();
        let mut i = 0;
        for (a, b) in self.runs() {
            let n = (b.value - a.value) as usize + 1;
            out.push(RangeSet {
                items: self.items[i..i + n].to_vec(),
            });
            i += n;
        }
        out
    }

    /// The indexes at positions `start..stop` (clamped), in order.
    pub fn slice_positions(&self, start: usize, stop: usize) -> RangeSet {
        let stop = stop.min(self.items.len());
        let start = start.min(stop);
        RangeSet {
            items: self.items[start..stop].to_vec(),
        }
    }

    /// The 0-based position of `index` (with its written form), if present.
    pub fn position(&self, index: &Index) -> Option<usize> {
        self.items.binary_search(index).ok()
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
fn parse_subrange(sub: &str, items: &mut Vec<Index>) -> Result<(), RangeError> {
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
    let start: i64;
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
    let mut v = first;
    items.reserve(((last - first) / step + 1) as usize);
    while v <= last {
        items.push(Index::new(v, pad));
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
