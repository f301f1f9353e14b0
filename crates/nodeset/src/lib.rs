//! ClusterShell-compatible node sets and group sources.
//!
//! Sysadmins name hosts with node sets: `worker[01-16]`, `saam,db[1-2]`,
//! `@swh-workers!worker03`, `x[2000-2073]c[0-7]s[0-7]b[0-1]`. This crate
//! parses, folds, expands, counts and combines them exactly as ClusterShell
//! 1.9/1.10 does (same order, same folding, same padding, same error
//! messages), only much faster.
//!
//! # The model, bottom up
//!
//! * **Index** ([`Index`]): one number as it was written. `7`, `07` and `007`
//!   are three different indexes (ClusterShell keeps the written form since
//!   1.9): an index is its value plus the length of its written form, and
//!   indexes sort by written length, then value (negative ones first).
//! * **Range set** ([`RangeSet`]): a sorted set of indexes. Its folded form
//!   joins runs of consecutive indexes with the same padding into `a-b`
//!   ranges: `1-3,5,08-10`. Parsing accepts `a`, `a-b`, `a-b/step`, padding
//!   (`001-010`, both bounds the same length) and ClusterShell's errors
//!   (`padding length mismatch`, `invalid values in range`...).
//! * **n-dimensional range set** ([`RangeSetNd`]): for names with several
//!   numbers (`x3c1s7`), a set of index vectors kept as a union of
//!   products of range sets, one per dimension. Folding is ClusterShell's:
//!   a set that is a full product becomes one vector
//!   (`x[1-2]c[1-4]`); otherwise the single points are merged greedily,
//!   pairs of vectors that differ in one dimension only being merged, cheap
//!   passes first, then full pairwise passes, in ClusterShell's sort order.
//!   The result only depends on the set of points, never on how it was
//!   built.
//! * **Node set** ([`NodeSet`]): a map from *patterns* to index sets. The
//!   pattern of `node12-ib0` is `node%s-ib%s` (digits runs become `%s`
//!   slots, `%` is escaped as `%%` as ClusterShell does); names without
//!   digits map to no index. Patterns print in byte order, each with its
//!   slots filled by folded ranges: `node[1-3,7]-ib0,saam`. Iteration
//!   expands in the same order.
//!
//! # Expressions
//!
//! [`NodeSet::parse`] reads ClusterShell's syntax: brackets with ranges,
//! digits glued to brackets (`node-00[00-99]`, `n[1-2]0`), several
//! dimensions, and the operators `,` (union), `!` (difference), `&`
//! (intersection) and `^` (symmetric difference), evaluated strictly left
//! to right. Errors are [`ParseError`]s carrying ClusterShell's message,
//! the faulty part and its position in the input.
//!
//! # Group resolution
//!
//! Groups (`@name`, `@source:name`, `@*`, `@source:*`, `@@source`) and
//! wildcards (`node*`, matched against the source's nodes) are resolved
//! through the [`GroupResolver`] trait with [`NodeSet::parse_with`]. Group
//! contents are node-set expressions themselves, parsed recursively (with
//! the group's source as default for nested groups).
//! [`ClusterShellGroups`] implements the trait from ClusterShell's files:
//! `groups.conf` found in ClusterShell's search path (or given), its
//! `[Main]` `default`, `confdir` (`*.conf` upcall sources) and `autodir`
//! (`*.yaml` sources), and upcall sources whose `map`, `all`, `list` and
//! `reverse` commands run through `sh -c`. Other group sources (the
//! swh-deploy site file) implement the same trait.
//! [`regroup`], [`node_set_groups`], [`group_names`] and [`all_nodes`] are
//! the group-aware operations of ClusterShell's `nodeset` command.
//!
//! # Differences from ClusterShell
//!
//! Indexes are limited to 37 significant digits (ClusterShell: 100); range
//! sets are kept as runs of consecutive indexes (huge ranges cost nothing),
//! stepped ranges of more than 5,000,000 indexes are
//! refused; only ASCII digits and `*`/`?` wildcards are recognised; upcall
//! variables that are not plain words are shell-quoted before
//! substitution.

mod error;
mod groups;
mod nodeset;
mod parser;
mod rangeset;
mod rangeset_nd;

pub use error::{ErrorKind, GroupError, ParseError};
pub use groups::{
    all_nodes, group_names, node_set_groups, regroup, ClusterShellGroups, GroupResolver,
};
pub use nodeset::{NodeSet, NodeSetBuilder};
pub use rangeset::{Index, RangeError, RangeSet};
pub use rangeset_nd::RangeSetNd;

/// Folds host names into one node-set string the way ClusterShell does
/// (`web[1-3],db1`), for messages, plans and reports; when a name is not a
/// valid node name the names are joined with `,` as they are. The one home
/// of this helper: other crates call it rather than keep a copy.
pub fn fold<I, S>(names: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let names: Vec<S> = names.into_iter().collect();
    match NodeSet::from_names(names.iter().map(AsRef::as_ref)) {
        Ok(set) => set.to_string(),
        Err(_) => names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(","),
    }
}

#[cfg(test)]
mod fold_tests {
    use super::fold;

    #[test]
    fn folds_like_clustershell_or_joins() {
        assert_eq!(fold(["web2", "web1", "web3", "db1"]), "db1,web[1-3]");
        let owned = vec!["n1".to_string(), "n2".to_string()];
        assert_eq!(fold(&owned), "n[1-2]");
        assert_eq!(fold(Vec::<String>::new()), "");
        // Not node names: kept as given.
        assert_eq!(fold(["a b", "c"]), "a b,c");
    }
}
