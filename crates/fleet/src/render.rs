//! Text output in clush's formats: gathered blocks (`-b`), gathered lines
//! (`-bL`), sorted lines (`-L`), labelled lines, and the closing summary.
//!
//! Node sets are folded by a caller-supplied function (normally
//! [`crate::fold`], ClusterShell's folding), so the bytes match what clush
//! prints for the same fleet.

use crate::gather::{by_line, by_output, by_rc, lines};
use crate::result::{RunReport, Status};
use std::io::{self, Write};

/// clush's separator line: 15 dashes.
pub const SEP: &str = "---------------";

const COLOR_STDOUT: &str = "\x1b[94m";
const COLOR_STDERR: &str = "\x1b[91m";
const COLOR_RESET: &str = "\x1b[0m";

/// How blocks and lines are labelled.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Print node-set labels (false for `-N`).
    pub label: bool,
    /// Add ` (N)` after a folded set of more than one node.
    pub node_count: bool,
    /// ANSI colors as clush uses them (blue labels, red stderr labels).
    pub color: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            label: true,
            node_count: true,
            color: false,
        }
    }
}

/// Folds host names into a node-set string.
pub type Fold<'a> = &'a dyn Fn(&[&str]) -> String;

fn names<'a>(report: &'a RunReport, idx: &[usize]) -> Vec<&'a str> {
    idx.iter()
        .map(|&i| report.results[i].host.as_str())
        .collect()
}

fn header(set: &str, count: usize, style: &Style) -> String {
    let n = if style.node_count && count > 1 {
        format!(" ({count})")
    } else {
        String::new()
    };
    let body = format!("{SEP}\n{set}{n}\n{SEP}");
    if style.color {
        format!("{COLOR_STDOUT}{body}{COLOR_RESET}\n")
    } else {
        format!("{body}\n")
    }
}

/// Writes one line with an optional `label: ` prefix, decoding like clush
/// (invalid UTF-8 replaced).
pub fn write_labelled(
    w: &mut dyn Write,
    label: Option<&str>,
    line: &[u8],
    stderr: bool,
    color: bool,
) -> io::Result<()> {
    if let Some(l) = label {
        if color {
            let c = if stderr { COLOR_STDERR } else { COLOR_STDOUT };
            write!(w, "{c}{l}: {COLOR_RESET}")?;
        } else {
            write!(w, "{l}: ")?;
        }
    }
    match std::str::from_utf8(line) {
        Ok(s) => w.write_all(s.as_bytes())?,
        Err(_) => w.write_all(String::from_utf8_lossy(line).as_bytes())?,
    }
    w.write_all(b"\n")
}

/// `clush -b`: one block per (return code, output), see
/// [`crate::gather::by_output`].
pub fn write_gathered(
    w: &mut dyn Write,
    report: &RunReport,
    style: &Style,
    fold: Fold<'_>,
) -> io::Result<()> {
    for g in by_output(report) {
        if style.label {
            let set = fold(&names(report, &g.hosts));
            w.write_all(header(&set, g.hosts.len(), style).as_bytes())?;
        }
        let mut body = Vec::new();
        for (i, l) in g.lines.iter().enumerate() {
            if i > 0 {
                body.push(b'\n');
            }
            body.extend_from_slice(l);
        }
        w.write_all(String::from_utf8_lossy(&body).as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// `clush -bL`: each line number gathered across hosts, `set: line`.
pub fn write_line_gathered(
    w: &mut dyn Write,
    report: &RunReport,
    style: &Style,
    fold: Fold<'_>,
) -> io::Result<()> {
    for g in by_line(report) {
        let label = style.label.then(|| fold(&names(report, &g.hosts)));
        write_labelled(w, label.as_deref(), g.line, false, style.color)?;
    }
    Ok(())
}

/// `clush -L`: hosts ordered by return code then target order, each line
/// as `host: line`.
pub fn write_sorted(w: &mut dyn Write, report: &RunReport, style: &Style) -> io::Result<()> {
    for (_, idx) in by_rc(report) {
        for i in idx {
            let r = &report.results[i];
            let label = style.label.then_some(r.host.as_str());
            for l in lines(&r.stdout) {
                write_labelled(w, label, l, false, style.color)?;
            }
        }
    }
    Ok(())
}

fn set_with_count(fold: Fold<'_>, hosts: &[&str]) -> String {
    let s = fold(hosts);
    if hosts.len() > 1 {
        format!("{s} ({})", hosts.len())
    } else {
        s
    }
}

/// What [`summary_with`] prints.
#[derive(Debug, Clone, Copy)]
pub struct SummaryOptions {
    /// ` (N)` after a set of more than one host (clush drops it with `-q`).
    pub node_count: bool,
    /// The exit code lines (clush drops them with `-q -S`, where the exit
    /// status says it, and prints them as hosts finish without `-b`).
    pub exit_codes: bool,
    /// The command timeout line.
    pub timeouts: bool,
    /// Unreachable hosts as `exited with exit code 255`, as clush words
    /// them, instead of `unreachable`.
    pub unreachable_as_255: bool,
    /// The closing count line (`N hosts: N ok, ...`), which clush has not.
    pub count_line: bool,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            node_count: true,
            exit_codes: true,
            timeouts: true,
            unreachable_as_255: false,
            count_line: true,
        }
    }
}

/// The closing summary for stderr, one line each (empty when every host
/// succeeded): non-zero exit codes as clush words them
/// (`PROG: SET (N): exited with exit code RC`), then unreachable, timed-out
/// and interrupted sets, then a count line.
pub fn summary(report: &RunReport, prog: &str, fold: Fold<'_>) -> Vec<String> {
    summary_with(report, prog, fold, &SummaryOptions::default())
}

/// [`summary`] with the choices of [`SummaryOptions`].
pub fn summary_with(
    report: &RunReport,
    prog: &str,
    fold: Fold<'_>,
    opts: &SummaryOptions,
) -> Vec<String> {
    let set_with_count = |fold: Fold<'_>, hosts: &[&str]| {
        if opts.node_count {
            set_with_count(fold, hosts)
        } else {
            fold(hosts)
        }
    };
    let mut out = Vec::new();
    let mut failed = 0;
    for (rc, idx) in by_rc(report) {
        let idx: Vec<usize> = idx
            .into_iter()
            .filter(|&i| matches!(report.results[i].status, Status::Exited(_)))
            .collect();
        if rc == 0 || idx.is_empty() {
            continue;
        }
        failed += idx.len();
        if opts.exit_codes {
            out.push(format!(
                "{prog}: {}: exited with exit code {rc}",
                set_with_count(fold, &names(report, &idx))
            ));
        }
    }
    let pick = |f: &dyn Fn(&Status) -> bool| -> Vec<&str> {
        report
            .results
            .iter()
            .filter(|r| f(&r.status))
            .map(|r| r.host.as_str())
            .collect()
    };
    let unreachable = pick(&|s| *s == Status::Unreachable);
    let not_started = pick(&|s| matches!(s, Status::LaunchFailed(_)));
    let timed_out = pick(&|s| *s == Status::TimedOut);
    let incomplete = pick(&|s| matches!(s, Status::Cancelled { .. }));
    if !unreachable.is_empty() {
        if !opts.unreachable_as_255 {
            out.push(format!(
                "{prog}: {}: unreachable",
                set_with_count(fold, &unreachable)
            ));
        } else if opts.exit_codes {
            out.push(format!(
                "{prog}: {}: exited with exit code 255",
                set_with_count(fold, &unreachable)
            ));
        }
    }
    if !timed_out.is_empty() && opts.timeouts {
        out.push(format!(
            "{prog}: {}: command timeout",
            set_with_count(fold, &timed_out)
        ));
    }
    if !incomplete.is_empty() {
        out.push(format!(
            "{prog}: {}: did not complete (interrupted)",
            set_with_count(fold, &incomplete)
        ));
    }
    let anything_wrong =
        failed > 0 || !unreachable.is_empty() || !timed_out.is_empty() || !incomplete.is_empty();
    if opts.count_line && anything_wrong {
        let total = report.results.len();
        let ok = report.results.iter().filter(|r| r.success()).count();
        let mut s = format!("{prog}: {total} hosts: {ok} ok, {failed} failed");
        if !unreachable.is_empty() {
            s.push_str(&format!(", {} unreachable", unreachable.len()));
        }
        if !not_started.is_empty() {
            s.push_str(&format!(", {} not started", not_started.len()));
        }
        if !timed_out.is_empty() {
            s.push_str(&format!(", {} timed out", timed_out.len()));
        }
        if !incomplete.is_empty() {
            s.push_str(&format!(", {} interrupted", incomplete.len()));
        }
        out.push(s);
    }
    out
}
