//! Gathering: grouping hosts whose output and return code are identical,
//! in the order `clush -b` prints them.
//!
//! Output is compared line by line after splitting the way clush does
//! (see [`lines`]): a trailing `\r` before `\n` is dropped, a last line
//! without `\n` still counts, and a host that wrote nothing has no block.

use crate::result::RunReport;
use std::collections::HashMap;

/// Splits raw output into lines like ClusterShell: on `\n`, dropping one
/// `\r` right before it; a final piece without `\n` is a line too.
pub fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let complete = buf.ends_with(b"\n");
    let body = if complete { &buf[..buf.len() - 1] } else { buf };
    let count = if buf.is_empty() {
        0
    } else {
        body.iter().filter(|b| **b == b'\n').count() + 1
    };
    body.split(|b| *b == b'\n')
        .take(count)
        .enumerate()
        .map(move |(i, l)| {
            if i + 1 < count || complete {
                l.strip_suffix(b"\r").unwrap_or(l)
            } else {
                l
            }
        })
}

/// One block of gathered output: hosts with the same return code and the
/// same lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'a> {
    /// The return code shared by the hosts ([`HostResult::display_rc`]).
    pub rc: i32,
    /// Indexes of the hosts in the report, in target order.
    pub hosts: Vec<usize>,
    /// The shared lines.
    pub lines: Vec<&'a [u8]>,
}

/// Sort key of clush's `nodeset_cmpkey`: larger sets first, then by the name
/// of the set's first node.
fn cmp_sets(report: &RunReport, a: &[usize], b: &[usize]) -> std::cmp::Ordering {
    b.len()
        .cmp(&a.len())
        .then_with(|| report.results[a[0]].host.cmp(&report.results[b[0]].host))
}

/// Groups hosts by (return code, stdout lines) like `clush -b`: blocks
/// ordered by return code, then larger sets first, then by first host.
/// Timed-out and cancelled hosts (no return code) and hosts that wrote
/// nothing have no block.
pub fn by_output(report: &RunReport) -> Vec<Group<'_>> {
    let mut by_rc: HashMap<i32, HashMap<Vec<&[u8]>, Vec<usize>>> = HashMap::new();
    for r in &report.results {
        let Some(rc) = r.display_rc() else { continue };
        let ls: Vec<&[u8]> = lines(&r.stdout).collect();
        if ls.is_empty() {
            continue;
        }
        by_rc
            .entry(rc)
            .or_default()
            .entry(ls)
            .or_default()
            .push(r.index);
    }
    let mut rcs: Vec<i32> = by_rc.keys().copied().collect();
    rcs.sort_unstable();
    let mut out = Vec::new();
    for rc in rcs {
        let mut groups: Vec<Group<'_>> = by_rc
            .remove(&rc)
            .unwrap_or_default()
            .into_iter()
            .map(|(lines, mut hosts)| {
                hosts.sort_unstable();
                Group { rc, hosts, lines }
            })
            .collect();
        groups.sort_by(|a, b| cmp_sets(report, &a.hosts, &b.hosts));
        out.extend(groups);
    }
    out
}

/// One gathered line of `clush -bL`: the hosts whose line number `n` is
/// this line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineGroup<'a> {
    /// Line number (0-based) in each host's output.
    pub number: usize,
    /// Indexes of the hosts, in target order.
    pub hosts: Vec<usize>,
    /// The line.
    pub line: &'a [u8],
}

/// Gathers line by line like `clush -bL`: for each line number, the hosts
/// that wrote the same line there, larger sets first. All hosts with output
/// are taken, whatever their return code.
pub fn by_line(report: &RunReport) -> Vec<LineGroup<'_>> {
    let per_host: Vec<(usize, Vec<&[u8]>)> = report
        .results
        .iter()
        .map(|r| (r.index, lines(&r.stdout).collect()))
        .collect();
    let longest = per_host.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for n in 0..longest {
        let mut map: HashMap<&[u8], Vec<usize>> = HashMap::new();
        let mut order: Vec<&[u8]> = Vec::new();
        for (idx, ls) in &per_host {
            if let Some(l) = ls.get(n) {
                let e = map.entry(l).or_default();
                if e.is_empty() {
                    order.push(l);
                }
                e.push(*idx);
            }
        }
        let mut groups: Vec<LineGroup<'_>> = order
            .into_iter()
            .map(|l| LineGroup {
                number: n,
                hosts: map.remove(l).unwrap_or_default(),
                line: l,
            })
            .collect();
        groups.sort_by(|a, b| cmp_sets(report, &a.hosts, &b.hosts));
        out.extend(groups);
    }
    out
}

/// Hosts grouped by return code, codes ascending, hosts in target order;
/// hosts without a code are left out. Used for `-L` and for the summary.
pub fn by_rc(report: &RunReport) -> Vec<(i32, Vec<usize>)> {
    let mut map: HashMap<i32, Vec<usize>> = HashMap::new();
    for r in &report.results {
        if let Some(rc) = r.display_rc() {
            map.entry(rc).or_default().push(r.index);
        }
    }
    let mut v: Vec<(i32, Vec<usize>)> = map.into_iter().collect();
    v.sort_unstable_by_key(|(rc, _)| *rc);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{HostResult, Status};
    use std::time::Duration;

    fn report(items: &[(&str, Status, &str)]) -> RunReport {
        RunReport {
            results: items
                .iter()
                .enumerate()
                .map(|(i, (h, s, out))| HostResult {
                    host: h.to_string(),
                    index: i,
                    status: s.clone(),
                    stdout: out.as_bytes().to_vec(),
                    stderr: Vec::new(),
                    duration: Duration::ZERO,
                })
                .collect(),
            cancelled: false,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn splits_lines_like_clustershell() {
        let v: Vec<&[u8]> = lines(b"a\r\nb\n\nc").collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n").collect::<Vec<_>>(), vec![&b""[..]]);
        assert_eq!(lines(b"x\r").collect::<Vec<_>>(), vec![&b"x\r"[..]]);
    }

    #[test]
    fn groups_by_rc_then_size_then_first_host() {
        let r = report(&[
            ("n1", Status::Exited(0), "same\n"),
            ("n2", Status::Exited(0), "same"),
            ("n3", Status::Exited(1), "same\n"),
            ("foo", Status::Exited(0), "other\n"),
            ("n4", Status::TimedOut, "same\n"),
            ("n5", Status::Exited(0), ""),
            ("n6", Status::Unreachable, "x\n"),
        ]);
        let g = by_output(&r);
        let hosts: Vec<(i32, Vec<usize>)> = g.iter().map(|g| (g.rc, g.hosts.clone())).collect();
        assert_eq!(
            hosts,
            vec![(0, vec![0, 1]), (0, vec![3]), (1, vec![2]), (255, vec![6])]
        );
        assert_eq!(g[0].lines, vec![&b"same"[..]]);
        assert_eq!(
            by_rc(&r),
            vec![(0, vec![0, 1, 3, 5]), (1, vec![2]), (255, vec![6])]
        );
    }

    #[test]
    fn same_size_groups_are_ordered_by_first_host_name() {
        let r = report(&[
            ("b1", Status::Exited(0), "x\n"),
            ("a1", Status::Exited(0), "y\n"),
        ]);
        let g = by_output(&r);
        assert_eq!(g[0].hosts, vec![1]);
        assert_eq!(g[1].hosts, vec![0]);
    }

    #[test]
    fn line_gathering() {
        let r = report(&[
            ("n1", Status::Exited(0), "a\nb\n"),
            ("n2", Status::Exited(1), "a\nc\n"),
        ]);
        let g = by_line(&r);
        let v: Vec<(usize, Vec<usize>, &[u8])> = g
            .iter()
            .map(|g| (g.number, g.hosts.clone(), g.line))
            .collect();
        assert_eq!(
            v,
            vec![
                (0, vec![0, 1], &b"a"[..]),
                (1, vec![0], b"b"),
                (1, vec![1], b"c")
            ]
        );
    }
}
