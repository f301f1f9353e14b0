//! n-dimensional range sets: sets of index vectors (`x3c1s7`) kept as a
//! list of [`RangeSet`] vectors, each vector standing for the Cartesian
//! product of its range sets.

use crate::rangeset::{Index, RangeSet};
use std::collections::HashMap;

/// A set of n-dimensional index vectors (ClusterShell's `RangeSetND`).
///
/// The set is a union of "vectors" (products of one [`RangeSet`] per
/// dimension). After [`RangeSetNd::fold`] the vectors are disjoint and in the
/// canonical form ClusterShell prints: one vector when the set is a product,
/// otherwise ClusterShell's greedy multivariate merge of the single points.
#[derive(Clone, Debug, Default)]
pub struct RangeSetNd {
    vecs: Vec<Vec<RangeSet>>,
    folded: bool,
}

impl RangeSetNd {
    /// An empty set.
    pub fn new() -> RangeSetNd {
        RangeSetNd {
            vecs: Vec::new(),
            folded: true,
        }
    }

    /// The product of the given range sets (one per dimension).
    pub fn from_vector(vector: Vec<RangeSet>) -> RangeSetNd {
        let mut s = RangeSetNd::new();
        s.push_vector(vector);
        s
    }

    /// Adds the product of the given range sets (union; not folded yet).
    pub fn push_vector(&mut self, vector: Vec<RangeSet>) {
        if vector.iter().any(RangeSet::is_empty) {
            return;
        }
        self.vecs.push(vector);
        self.folded = self.vecs.len() <= 1;
    }

    /// Whether [`RangeSetNd::fold`] has nothing left to do.
    pub fn is_folded(&self) -> bool {
        self.folded
    }

    /// The vectors (call [`RangeSetNd::fold`] first for the canonical ones).
    pub fn vectors(&self) -> &[Vec<RangeSet>] {
        &self.vecs
    }

    /// Number of index vectors in the set (the set must be folded).
    pub fn len(&self) -> usize {
        debug_assert!(self.folded);
        self.vecs
            .iter()
            .map(|v| v.iter().fold(1usize, |acc, r| acc.saturating_mul(r.len())))
            .fold(0usize, usize::saturating_add)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.vecs.is_empty()
    }

    /// Number of dimensions (0 when empty).
    pub fn dims(&self) -> usize {
        self.vecs.first().map_or(0, Vec::len)
    }

    /// Adds every vector of `other`.
    pub fn update(&mut self, other: &RangeSetNd) {
        for v in &other.vecs {
            self.vecs.push(v.clone());
        }
        self.folded = self.vecs.len() <= 1;
    }

    /// Whether the point is in the set.
    pub fn contains(&self, point: &[Index]) -> bool {
        self.vecs
            .iter()
            .any(|v| v.len() == point.len() && v.iter().zip(point).all(|(rs, i)| rs.contains(i)))
    }

    /// Vectors common to both sets.
    pub fn intersection(&self, other: &RangeSetNd) -> RangeSetNd {
        let mut out = RangeSetNd::new();
        for a in &self.vecs {
            for b in &other.vecs {
                if a.len() != b.len() {
                    continue;
                }
                let v: Vec<RangeSet> = a.iter().zip(b).map(|(x, y)| x.intersection(y)).collect();
                out.push_vector(v);
            }
        }
        out.fold();
        out
    }

    /// Vectors of `self` not in `other`.
    pub fn difference(&self, other: &RangeSetNd) -> RangeSetNd {
        let mut current: Vec<Vec<RangeSet>> = self.vecs.clone();
        for b in &other.vecs {
            let mut next = Vec::with_capacity(current.len());
            for a in current {
                subtract_vector(a, b, &mut next);
            }
            current = next;
        }
        let mut out = RangeSetNd::new();
        for v in current {
            out.push_vector(v);
        }
        out.fold();
        out
    }

    /// Vectors in exactly one of the sets.
    pub fn symmetric_difference(&self, other: &RangeSetNd) -> RangeSetNd {
        let mut out = self.difference(other);
        out.update(&other.difference(self));
        out.fold();
        out
    }

    /// Whether every vector of `self` is in `other`.
    pub fn is_subset(&self, other: &RangeSetNd) -> bool {
        self.difference(other).is_empty()
    }

    /// Iterates over the points in ClusterShell's order: vector by vector,
    /// last dimension varying fastest (the set must be folded).
    pub fn points(&self) -> impl Iterator<Item = Vec<Index>> + '_ {
        self.vecs.iter().flat_map(|v| ProductIter::new(v))
    }

    /// Brings the vectors to ClusterShell's canonical folded form.
    pub fn fold(&mut self) {
        if self.folded {
            return;
        }
        self.folded = true;
        self.vecs.retain(|v| !v.iter().any(RangeSet::is_empty));
        if self.vecs.len() <= 1 {
            return;
        }
        if self.fold_univariate() {
            return;
        }
        self.fold_multivariate();
    }

    /// When all vectors differ in at most one dimension, their union is the
    /// single vector that unites that dimension.
    fn fold_univariate(&mut self) -> bool {
        let dims = self.dims();
        let mut vardim = None;
        for d in 0..dims {
            let first = &self.vecs[0][d];
            if self.vecs[1..].iter().any(|v| &v[d] != first) {
                if vardim.is_some() {
                    return false;
                }
                vardim = Some(d);
            }
        }
        let d = vardim.unwrap_or(0);
        let mut all = RangeSet::new();
        for v in &self.vecs {
            all = all.union(&v[d]);
        }
        let mut merged = self.vecs.swap_remove(0);
        merged[d] = all;
        self.vecs.clear();
        self.vecs.push(merged);
        true
    }

    fn fold_multivariate(&mut self) {
        let dims = self.dims();
        let total = self
            .vecs
            .iter()
            .map(|v| v.iter().map(|r| r.len() as u128).product::<u128>())
            .fold(0u128, u128::saturating_add);
        if total > MAX_FOLD_POINTS {
            // Too many points to fold point by point (ClusterShell's way):
            // keep the vectors, made disjoint, never expanded.
            let mut out: Vec<Vec<RangeSet>> = Vec::new();
            for v in std::mem::take(&mut self.vecs) {
                let mut pieces = vec![v];
                for o in &out {
                    let mut next = Vec::new();
                    for p in pieces {
                        subtract_vector(p, o, &mut next);
                    }
                    pieces = next;
                }
                out.extend(
                    pieces
                        .into_iter()
                        .filter(|p| !p.iter().any(RangeSet::is_empty)),
                );
            }
            self.vecs = out;
            return;
        }
        // Phase 1: the set of single points.
        let mut flat: Vec<Index> = Vec::new();
        for v in &self.vecs {
            for p in ProductIter::new(v) {
                flat.extend_from_slice(&p);
            }
        }
        let mut points: Vec<&[Index]> = flat.chunks(dims).collect();
        points.sort_unstable();
        points.dedup();
        // A full product folds into one vector.
        let axes: Vec<RangeSet> = (0..dims)
            .map(|d| RangeSet::from_indexes(points.iter().map(|p| p[d]).collect()))
            .collect();
        let product: u128 = axes.iter().map(|a| a.len() as u128).product();
        if product == points.len() as u128 {
            self.vecs = vec![axes];
            return;
        }
        // Rank of each index in the order of its written form, per axis
        // (ClusterShell sorts vectors on the string of their first and last
        // index).
        let ranks: Vec<HashMap<Index, u32>> = axes
            .iter()
            .map(|a| {
                let mut strs: Vec<(String, Index)> = a.iter().map(|i| (i.to_string(), i)).collect();
                strs.sort();
                strs.into_iter()
                    .enumerate()
                    .map(|(r, (_, i))| (i, r as u32))
                    .collect()
            })
            .collect();
        let vecs: Vec<Vec<RangeSet>> = points
            .iter()
            .map(|p| p.iter().map(|i| RangeSet::one(*i)).collect())
            .collect();
        drop(points);
        self.vecs = greedy_merge(vecs, &ranks);
    }
}

/// ClusterShell's multivariate merge (phase 2): repeatedly sort the vectors
/// and merge pairs that differ in one dimension only (disjoint or nested
/// there); cheap passes first, then full pairwise passes.
fn greedy_merge(mut vecs: Vec<Vec<RangeSet>>, ranks: &[HashMap<Index, u32>]) -> Vec<Vec<RangeSet>> {
    let mut full = false;
    loop {
        let mut changed = false;
        vecs.sort_by_cached_key(|v| sort_key(v, ranks));
        let n = vecs.len();
        let mut dead = vec![false; n];
        if full {
            changed = full_pass(&mut vecs, &mut dead);
        } else {
            let mut i1 = 0;
            while let Some(first_i2) = (i1 + 1..n).find(|&k| !dead[k]) {
                // Cheap pass: merge item1 with the items that directly
                // follow it, stop at the first that does not merge.
                let mut i2 = first_i2;
                while i2 < n {
                    match try_merge(&vecs[i1], &vecs[i2]) {
                        Some(merged) => {
                            changed = true;
                            vecs[i1] = merged;
                            dead[i2] = true;
                        }
                        None => break,
                    }
                    i2 += 1;
                }
                match (i1 + 1..n).find(|&k| !dead[k]) {
                    Some(k) => i1 = k,
                    None => break,
                }
            }
        }
        if changed {
            let mut k = 0;
            vecs.retain(|_| {
                let keep = !dead[k];
                k += 1;
                keep
            });
        }
        if !changed {
            if full {
                break;
            }
            full = true;
        }
    }
    vecs
}

/// Hash of a vector without dimension `skip`: vectors that can merge
/// along `skip` share it.
fn key_without(v: &[RangeSet], skip: usize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    skip.hash(&mut h);
    for (d, r) in v.iter().enumerate() {
        if d != skip {
            r.hash(&mut h);
        }
    }
    h.finish()
}

/// One full pass: each item, in order, merges with every later item it
/// can merge with, in order (ClusterShell's O(n^2) pass), found through
/// per-dimension buckets of vectors equal on the other dimensions instead
/// of comparing all pairs. Items after the current one are never modified
/// during the pass, so buckets built at the start stay valid.
fn full_pass(vecs: &mut [Vec<RangeSet>], dead: &mut [bool]) -> bool {
    let n = vecs.len();
    let dims = vecs.first().map_or(0, Vec::len);
    let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
    for (pos, v) in vecs.iter().enumerate() {
        for d in 0..dims {
            buckets.entry(key_without(v, d)).or_default().push(pos);
        }
    }
    let mut changed = false;
    for i1 in 0..n {
        if dead[i1] {
            continue;
        }
        let mut last = i1;
        loop {
            let mut best: Option<(usize, Vec<RangeSet>)> = None;
            for d in 0..dims {
                let Some(list) = buckets.get(&key_without(&vecs[i1], d)) else {
                    continue;
                };
                let from = list.partition_point(|&q| q <= last);
                for &q in &list[from..] {
                    if best.as_ref().is_some_and(|(b, _)| q >= *b) {
                        break;
                    }
                    if dead[q] {
                        continue;
                    }
                    if let Some(m) = try_merge(&vecs[i1], &vecs[q]) {
                        best = Some((q, m));
                        break;
                    }
                }
            }
            match best {
                Some((q, merged)) => {
                    vecs[i1] = merged;
                    dead[q] = true;
                    changed = true;
                    last = q;
                }
                None => break,
            }
        }
    }
    changed
}

fn sort_key(v: &[RangeSet], ranks: &[HashMap<Index, u32>]) -> Vec<i64> {
    let size: i64 = v.iter().map(|r| r.len() as i64).product();
    let mut key = Vec::with_capacity(1 + 3 * v.len());
    key.push(-size);
    for (d, r) in v.iter().enumerate() {
        key.push(-(r.len() as i64));
        key.push(ranks[d][&r.first().expect("non-empty")] as i64);
        key.push(ranks[d][&r.last().expect("non-empty")] as i64);
    }
    key
}

/// Merges two vectors that differ in at most one dimension, where their
/// range sets are disjoint or one contains the other.
fn try_merge(a: &[RangeSet], b: &[RangeSet]) -> Option<Vec<RangeSet>> {
    let mut diff_at = None;
    for (d, (x, y)) in a.iter().zip(b).enumerate() {
        if x == y {
            continue;
        }
        if diff_at.is_some() {
            return None;
        }
        if x.is_disjoint(y) || x.is_subset(y) || y.is_subset(x) {
            diff_at = Some(d);
        } else {
            return None;
        }
    }
    let mut merged = a.to_vec();
    if let Some(d) = diff_at {
        let (x, y) = (&a[d], &b[d]);
        merged[d] = if x.is_disjoint(y) {
            x.union(y)
        } else if x.is_subset(y) {
            y.clone()
        } else {
            x.clone()
        };
    }
    Some(merged)
}

/// Splits `a \ b` into disjoint vectors appended to `out`.
fn subtract_vector(a: Vec<RangeSet>, b: &[RangeSet], out: &mut Vec<Vec<RangeSet>>) {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.is_disjoint(y)) {
        out.push(a);
        return;
    }
    // Piece d: first d dimensions inside b, dimension d outside b, rest free.
    for d in 0..a.len() {
        let outside = a[d].difference(&b[d]);
        if outside.is_empty() {
            continue;
        }
        let mut piece = Vec::with_capacity(a.len());
        for (k, rs) in a.iter().enumerate() {
            piece.push(match k.cmp(&d) {
                std::cmp::Ordering::Less => rs.intersection(&b[k]),
                std::cmp::Ordering::Equal => outside.clone(),
                std::cmp::Ordering::Greater => rs.clone(),
            });
        }
        out.push(piece);
    }
}

/// Above this many points, a union of vectors is kept as disjoint vectors
/// instead of being folded point by point.
const MAX_FOLD_POINTS: u128 = 1_000_000;

/// Iterator over the Cartesian product of range sets, last one fastest.
struct ProductIter {
    sets: Vec<Vec<Index>>,
    pos: Vec<usize>,
    done: bool,
}

impl ProductIter {
    fn new(sets: &[RangeSet]) -> Self {
        let done = sets.is_empty() || sets.iter().any(RangeSet::is_empty);
        ProductIter {
            sets: sets.iter().map(RangeSet::to_vec).collect(),
            pos: vec![0; sets.len()],
            done,
        }
    }
}

impl Iterator for ProductIter {
    type Item = Vec<Index>;

    fn next(&mut self) -> Option<Vec<Index>> {
        if self.done {
            return None;
        }
        let item = self
            .sets
            .iter()
            .zip(&self.pos)
            .map(|(s, &p)| s[p])
            .collect();
        let mut d = self.sets.len();
        loop {
            if d == 0 {
                self.done = true;
                break;
            }
            d -= 1;
            self.pos[d] += 1;
            if self.pos[d] < self.sets[d].len() {
                break;
            }
            self.pos[d] = 0;
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(s: &str) -> RangeSet {
        RangeSet::parse(s).unwrap()
    }

    fn show(s: &RangeSetNd) -> Vec<String> {
        s.vectors()
            .iter()
            .map(|v| {
                v.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .collect()
    }

    #[test]
    fn univariate_fold_unites_one_dimension() {
        let mut s = RangeSetNd::from_vector(vec![rs("1-2"), rs("1")]);
        s.push_vector(vec![rs("1-2"), rs("2")]);
        s.fold();
        assert_eq!(show(&s), vec!["1-2; 1-2"]);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn multivariate_fold_of_an_l_shape() {
        let mut s = RangeSetNd::from_vector(vec![rs("1-2"), rs("1")]);
        s.push_vector(vec![rs("1"), rs("2")]);
        s.fold();
        assert_eq!(s.len(), 3);
        assert_eq!(show(&s), vec!["1; 1-2", "2; 1"]);
    }

    #[test]
    fn difference_and_intersection() {
        let a = RangeSetNd::from_vector(vec![rs("1-3"), rs("1-3")]);
        let b = RangeSetNd::from_vector(vec![rs("2"), rs("2")]);
        let d = a.difference(&b);
        assert_eq!(d.len(), 8);
        assert!(!d.contains(&[Index::new(2, 0), Index::new(2, 0)]));
        assert_eq!(a.intersection(&b).len(), 1);
        assert_eq!(a.symmetric_difference(&b).len(), 8);
        assert!(b.is_subset(&a));
    }
}
