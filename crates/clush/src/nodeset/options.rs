//! `nodeset`'s options: ClusterShell 1.10's table, parsed with the crate's
//! optparse into [`Options`].

use super::NodesetError as Failure;
use crate::optparse::{self, py_decimal, py_int_option, py_repr, OptSpec};
use std::path::PathBuf;

/// The usage line, as optparse prints it.
pub(super) const USAGE: &str = "swh-deploy nodeset [COMMAND] [OPTIONS] [ns1 [-ixX] ns2|...]";

/// The options of ClusterShell 1.10's `nodeset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Help,
    Version,
    GroupSource,
    GroupsConf,
    ConfigDir,
    Count,
    Expand,
    Fold,
    List,
    ListAll,
    Regroup,
    Index,
    ListSources,
    Completion,
    Exclude,
    Intersection,
    Xor,
    All,
    Autostep,
    Debug,
    Quiet,
    RangeSetMode,
    GroupBase,
    Separator,
    OutputFormat,
    Slice,
    Split,
    Contiguous,
    Axis,
    Pick,
}

/// An option without a value.
const fn flag(
    key: Opt,
    short: Option<char>,
    long: &'static [&'static str],
    help: &'static str,
) -> OptSpec<Opt> {
    OptSpec::new(key, short, long, None, help)
}

/// An option taking a value named `metavar`.
const fn valued(
    key: Opt,
    short: Option<char>,
    long: &'static [&'static str],
    metavar: &'static str,
    help: &'static str,
) -> OptSpec<Opt> {
    OptSpec::new(key, short, long, Some(metavar), help)
}

const GENERAL: &[OptSpec<Opt>] = &[
    flag(
        Opt::Version,
        None,
        &["version"],
        "show program's version number and exit",
    ),
    flag(
        Opt::Help,
        Some('h'),
        &["help"],
        "show this help message and exit",
    ),
    valued(
        Opt::GroupSource,
        Some('s'),
        &["groupsource"],
        "GROUPSOURCE",
        "optional groups.conf(5) group source to use",
    ),
    valued(
        Opt::GroupsConf,
        None,
        &["groupsconf"],
        "FILE",
        "use alternate config file for groups.conf(5)",
    ),
    valued(
        Opt::ConfigDir,
        None,
        &["config-dir"],
        "DIR",
        "use DIR/groups.conf (swh-deploy addition)",
    ),
];
const COMMANDS: &[OptSpec<Opt>] = &[
    flag(
        Opt::Count,
        Some('c'),
        &["count"],
        "show number of nodes in nodeset(s)",
    ),
    flag(
        Opt::Expand,
        Some('e'),
        &["expand"],
        "expand nodeset(s) to separate nodes",
    ),
    flag(
        Opt::Fold,
        Some('f'),
        &["fold"],
        "fold nodeset(s) (or separate nodes) into one nodeset",
    ),
    flag(
        Opt::List,
        Some('l'),
        &["list"],
        "list node groups from one source (see -s GROUPSOURCE)",
    ),
    flag(
        Opt::ListAll,
        Some('L'),
        &["list-all"],
        "list node groups from all group sources",
    ),
    flag(
        Opt::Regroup,
        Some('r'),
        &["regroup"],
        "fold nodes using node groups (see -s GROUPSOURCE)",
    ),
    valued(
        Opt::Index,
        None,
        &["index"],
        "NODE",
        "output the index of NODE in the nodeset",
    ),
    flag(
        Opt::ListSources,
        None,
        &["list-sources", "groupsources"],
        "list all active group sources (see groups.conf(5))",
    ),
    flag(
        Opt::Completion,
        None,
        &["completion"],
        "list groups and nodes for shell completion",
    ),
];
const OPERATIONS: &[OptSpec<Opt>] = &[
    valued(
        Opt::Exclude,
        Some('x'),
        &["exclude"],
        "SUB_NODES",
        "exclude specified nodeset",
    ),
    valued(
        Opt::Intersection,
        Some('i'),
        &["intersection"],
        "AND_NODES",
        "calculate nodesets intersection",
    ),
    valued(
        Opt::Xor,
        Some('X'),
        &["xor"],
        "XOR_NODES",
        "calculate symmetric difference between nodesets",
    ),
];
const OPTIONS: &[OptSpec<Opt>] = &[
    flag(Opt::All, Some('a'), &["all"], "call external node groups support to display all nodes"),
    valued(Opt::Autostep, None, &["autostep"], "AUTOSTEP", "enable a-b/step style syntax when folding, value is min node count threshold (eg. '4', '50%' or 'auto')"),
    flag(Opt::Debug, Some('d'), &["debug"], "output more messages for debugging purpose"),
    flag(Opt::Quiet, Some('q'), &["quiet"], "be quiet, print essential output only"),
    flag(Opt::RangeSetMode, Some('R'), &["rangeset"], "switch to RangeSet instead of NodeSet. Useful when working on numerical cluster ranges, eg. 1,5,18-31"),
    flag(Opt::GroupBase, Some('G'), &["groupbase"], "hide group source prefix (always \"@groupname\")"),
    valued(Opt::Separator, Some('S'), &["separator"], "SEPARATOR", "separator string to use when expanding nodesets (default: ' ')"),
    valued(Opt::OutputFormat, Some('O'), &["output-format"], "FORMAT", "output format (default: '%s')"),
    valued(Opt::Slice, Some('I'), &["slice"], "SLICE_RANGESET", "return sliced off result"),
    valued(Opt::Split, None, &["split"], "MAXSPLIT", "split result into a number of subsets"),
    flag(Opt::Contiguous, None, &["contiguous"], "split result into contiguous subsets"),
    valued(Opt::Axis, None, &["axis"], "RANGESET", "fold along these axis only (axis 1..n for nD nodeset)"),
    valued(Opt::Pick, None, &["pick"], "N", "pick N node(s) at random in nodeset"),
];

/// `--autostep`'s value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Autostep {
    /// A node count threshold.
    Count(i64),
    /// A fraction of the result's size (`50%`).
    Fraction(f64),
    /// `auto`: every index of the result.
    Auto,
}

/// The parsed command line.
#[derive(Debug, Default)]
pub(super) struct Options {
    pub(super) groupsource: Option<String>,
    pub(super) groupsconf: Option<PathBuf>,
    pub(super) config_dir: Option<PathBuf>,
    pub(super) count: bool,
    pub(super) expand: bool,
    pub(super) fold: bool,
    pub(super) list: usize,
    pub(super) listall: usize,
    pub(super) regroup: bool,
    pub(super) index: Option<String>,
    pub(super) groupsources: bool,
    pub(super) completion: bool,
    pub(super) exclude: Vec<String>,
    pub(super) intersection: Vec<String>,
    pub(super) xor: Vec<String>,
    pub(super) all: bool,
    pub(super) autostep: Option<Autostep>,
    pub(super) debug: bool,
    pub(super) quiet: bool,
    pub(super) rangeset: bool,
    pub(super) groupbase: bool,
    pub(super) separator: Option<String>,
    pub(super) output_format: Option<String>,
    pub(super) slice: Option<String>,
    pub(super) split: Option<i64>,
    pub(super) contiguous: bool,
    pub(super) axis: Option<String>,
    pub(super) pick: Option<i64>,
    pub(super) help: bool,
    pub(super) version: bool,
    pub(super) args: Vec<String>,
}

/// Parses the command line (without the program and subcommand names).
pub(super) fn parse_options(argv: &[String]) -> Result<Options, Failure> {
    let parsed =
        optparse::parse(&[GENERAL, COMMANDS, OPERATIONS, OPTIONS], argv).map_err(Failure::Usage)?;
    let mut o = Options::default();
    for occ in parsed.opts {
        let value = occ.value.unwrap_or_default();
        let bad = |what: &str| Failure::Usage(format!("option {}: {what}", occ.name));
        match occ.key {
            Opt::Help => o.help = true,
            Opt::Version => o.version = true,
            Opt::GroupSource => {
                // ClusterShell's "safestring": not empty, not an option.
                if value.is_empty() || value.starts_with('-') {
                    return Err(bad(&format!("invalid value: {}", py_repr(&value))));
                }
                o.groupsource = Some(value);
            }
            Opt::GroupsConf => o.groupsconf = Some(PathBuf::from(value)),
            Opt::ConfigDir => o.config_dir = Some(PathBuf::from(value)),
            Opt::Count => o.count = true,
            Opt::Expand => o.expand = true,
            Opt::Fold => o.fold = true,
            Opt::List => o.list += 1,
            Opt::ListAll => o.listall += 1,
            Opt::Regroup => o.regroup = true,
            Opt::Index => o.index = Some(value),
            Opt::ListSources => o.groupsources = true,
            Opt::Completion => o.completion = true,
            Opt::Exclude => o.exclude.push(value),
            Opt::Intersection => o.intersection.push(value),
            Opt::Xor => o.xor.push(value),
            Opt::All => o.all = true,
            Opt::Autostep => {
                o.autostep = Some(parse_autostep(&value).ok_or_else(|| {
                    bad(&format!(
                        "invalid value: {}, should be node count, node percentage or 'auto'",
                        py_repr(&value)
                    ))
                })?)
            }
            Opt::Debug => o.debug = true,
            Opt::Quiet => o.quiet = true,
            Opt::RangeSetMode => o.rangeset = true,
            Opt::GroupBase => o.groupbase = true,
            Opt::Separator => o.separator = Some(value),
            Opt::OutputFormat => o.output_format = Some(value),
            Opt::Slice => o.slice = Some(value),
            Opt::Split => {
                o.split =
                    Some(py_int_option(&value).ok_or_else(|| {
                        bad(&format!("invalid integer value: {}", py_repr(&value)))
                    })?)
            }
            Opt::Contiguous => o.contiguous = true,
            Opt::Axis => o.axis = Some(value),
            Opt::Pick => {
                o.pick =
                    Some(py_int_option(&value).ok_or_else(|| {
                        bad(&format!("invalid integer value: {}", py_repr(&value)))
                    })?)
            }
        }
    }
    o.args = parsed.args;
    Ok(o)
}

/// ClusterShell's autostep type: `N`, `P%` or `auto`.
fn parse_autostep(value: &str) -> Option<Autostep> {
    if value.contains('%') {
        let mut num = value.to_string();
        num.pop();
        return num
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| Autostep::Fraction(f / 100.0));
    }
    if let Some(v) = py_decimal(value) {
        return Some(Autostep::Count(v));
    }
    (value == "auto").then_some(Autostep::Auto)
}

pub(super) fn help_text() -> String {
    optparse::help(
        USAGE,
        &[
            ("Options", GENERAL),
            ("Commands", COMMANDS),
            ("Operations", OPERATIONS),
            ("Options", OPTIONS),
        ],
    )
}
