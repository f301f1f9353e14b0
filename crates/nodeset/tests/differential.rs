//! Differential tests: thousands of generated expressions (seeded, so
//! reproducible) are evaluated by ClusterShell itself (one Python process
//! reading them all) and by this crate; fold, count, expansion, regroup
//! and errors must be identical, byte for byte.

mod common;

use common::{clustershell_python, write_group_config, Rng};
use std::io::Write;
use std::process::{Command, Stdio};
use swh_deploy_nodeset::{regroup, ClusterShellGroups, ErrorKind, NodeSet, ParseError};

/// Reads `mode \t resolver \t expression` lines, prints one result line
/// each.
const DRIVER: &str = r#"
import sys
from ClusterShell.NodeSet import NodeSet, RESOLVER_NOGROUP, ILLEGAL_GROUP_CHARS
from ClusterShell.NodeUtils import GroupResolverConfig
conf = sys.argv[1]
res = GroupResolverConfig([conf], ILLEGAL_GROUP_CHARS)
out = []
for line in sys.stdin:
    mode, r, expr = line.rstrip('\n').split('\t', 2)
    resolver = res if r == '1' else RESOLVER_NOGROUP
    try:
        ns = NodeSet(expr, resolver=resolver)
        if mode == 'r':
            out.append('OK\t%s' % ns.regroup(None))
        elif mode == 'u':
            out.append('OK\t%s' % ns.regroup('up'))
        else:
            out.append('OK\t%s\t%d\t%s' % (ns, len(ns), ' '.join(ns)))
    except RecursionError as e:
        out.append('ERR\tRecursionError\t')
    except Exception as e:
        out.append('ERR\t%s\t%s' % (type(e).__name__, str(e).replace('\n', '\\n')))
sys.stdout.write('\n'.join(out) + '\n')
"#;

/// One generated case: mode (`n` node set, `r` regroup on the default
/// source, `u` regroup on source `up`), with groups or not, expression.
struct Case {
    mode: char,
    groups: bool,
    expr: String,
}

fn pick_str(rng: &mut Rng, items: &[&'static str]) -> &'static str {
    items[rng.below(items.len() as u64) as usize]
}

fn gen_index(rng: &mut Rng, pad: usize) -> (u64, String) {
    let v = if rng.chance(85) {
        rng.below(25)
    } else {
        rng.below(120)
    };
    (v, format!("{v:0pad$}"))
}

fn gen_range(rng: &mut Rng) -> String {
    let pad = if rng.chance(25) {
        2 + rng.below(2) as usize
    } else {
        0
    };
    match rng.below(100) {
        0..=34 => gen_index(rng, pad).1,
        35..=84 => {
            let (a, sa) = gen_index(rng, pad);
            let b = a + rng.below(12);
            let sb = format!("{b:0pad$}");
            if rng.chance(12) {
                let step = 1 + rng.below(4);
                format!("{sa}-{sb}/{step}")
            } else {
                format!("{sa}-{sb}")
            }
        }
        85..=88 => {
            // Reversed bounds: invalid values in range.
            let (a, _) = gen_index(rng, 0);
            format!("{}-{}", a + 3, a)
        }
        89..=91 => format!("{}-0{}", rng.below(9) + 1, rng.below(9) + 1),
        92..=93 => String::new(),
        94..=95 => format!("{}/2", rng.below(9)),
        96 => "x".to_string(),
        97 => format!("-{}", rng.below(5)),
        _ => format!(" {} - {} ", rng.below(5), 5 + rng.below(5)),
    }
}

fn gen_bracket(rng: &mut Rng) -> String {
    let n = 1 + rng.below(3);
    let items: Vec<String> = (0..n).map(|_| gen_range(rng)).collect();
    format!("[{}]", items.join(","))
}

const PREFIXES: &[&str] = &["n", "node", "x", "da", "r-", "a.b", "sw", "c", "n%", "é"];
const PLAIN: &[&str] = &["saam", "login", "moma", "a-b", "db", "pergamon"];
const GROUP_TERMS: &[&str] = &[
    "@compute",
    "@gpu",
    "@site:login",
    "@login",
    "@empty",
    "@rack[1-2]",
    "@rack1",
    "@mixed",
    "@cross",
    "@spaced",
    "@other:db",
    "@other:web",
    "@other:*",
    "@*",
    "@site:*",
    "@@site",
    "@@other",
    "@up:ga",
    "@up:gb",
    "@up:*",
    "@@up",
    "@nonexistent",
    "@nosuchsource:g",
    "node1*",
    "node?",
    "*1",
    "gpu*",
    "login?",
    "nomatch*",
    "@other:dc1",
];

fn gen_term(rng: &mut Rng, groups: bool) -> String {
    if groups && rng.chance(45) {
        return rng.pick(GROUP_TERMS).to_string();
    }
    match rng.below(100) {
        0..=9 => rng.pick(PLAIN).to_string(),
        10..=24 => {
            let pad = if rng.chance(20) { 3 } else { 0 };
            let (_, s) = gen_index(rng, pad);
            format!("{}{}", rng.pick(PREFIXES), s)
        }
        25..=69 => {
            let mut t = format!("{}{}", rng.pick(PREFIXES), gen_bracket(rng));
            if rng.chance(30) {
                let mid = pick_str(rng, &["c", "-ib", "p", "s"]);
                t.push_str(mid);
                t.push_str(&gen_bracket(rng));
            }
            if rng.chance(15) {
                let end = pick_str(rng, &["-ipmi", "b1", ".eu"]);
                t.push_str(end);
            }
            t
        }
        70..=79 => {
            // Digits glued to brackets.
            let lead = rng.below(10);
            let tail = rng.below(10);
            match rng.below(3) {
                0 => format!("node{lead}{}", gen_bracket(rng)),
                1 => format!("node{}{tail}", gen_bracket(rng)),
                _ => format!("node-0{lead}{}{tail}x", gen_bracket(rng)),
            }
        }
        80..=89 => {
            let dims = 2 + rng.below(2);
            let mut t = String::new();
            for d in 0..dims {
                t.push_str(["x", "c", "s", "b"][d as usize]);
                t.push_str(&rng.below(4).to_string());
            }
            t
        }
        90..=93 => {
            // Syntax errors.
            rng.pick(&[
                "n[1-2", "n]1", "n[1]]", "n[1][2]", "a[", "]", "n[1-2]x]", "n[[1]]",
            ])
            .to_string()
        }
        _ => format!("{}{}", rng.pick(PREFIXES), rng.pick(&["", " ", "\u{3}"])),
    }
}

fn gen_expr(rng: &mut Rng, groups: bool) -> String {
    let n = 1 + rng.below(4);
    let mut s = gen_term(rng, groups);
    for _ in 1..n {
        let op = *rng.pick(&[",", ",", ",", "!", "&", "^"]);
        let sp = if rng.chance(10) { " " } else { "" };
        s.push_str(sp);
        s.push_str(op);
        s.push_str(sp);
        s.push_str(&gen_term(rng, groups));
    }
    if rng.chance(2) {
        let op = pick_str(rng, &[",", "!", "&"]);
        s.push_str(op);
    }
    s
}

/// A comma list of random n-dimensional names: exercises folding (the
/// multivariate merge above all).
fn gen_name_list(rng: &mut Rng) -> String {
    let dims = 1 + rng.below(3) as usize;
    let count = 2 + rng.below(60);
    let span = 2 + rng.below(8);
    let padded = rng.chance(15);
    let mut names = Vec::new();
    for _ in 0..count {
        let mut name = String::from("n");
        for d in 0..dims {
            let v = rng.below(span);
            if padded && d == 0 {
                name.push_str(&format!("{v:02}"));
            } else {
                name.push_str(&v.to_string());
            }
            if d + 1 < dims {
                name.push_str(["c", "s"][d]);
            }
        }
        names.push(name);
    }
    names.join(",")
}

/// A bigger scattered list (a random part of a 3-D or 4-D box): long
/// multivariate merges with full passes.
fn gen_big_name_list(rng: &mut Rng) -> String {
    let dims = 3 + rng.below(2) as usize;
    let keep = 40 + rng.below(55);
    let mut names = Vec::new();
    let sizes: Vec<u64> = (0..dims).map(|_| 2 + rng.below(5)).collect();
    let total: u64 = sizes.iter().product();
    for k in 0..total {
        if rng.below(100) >= keep {
            continue;
        }
        let mut rest = k;
        let mut name = String::new();
        for (d, size) in sizes.iter().enumerate() {
            name.push_str(["x", "c", "s", "b"][d]);
            name.push_str(&(rest % size).to_string());
            rest /= size;
        }
        names.push(name);
    }
    if names.is_empty() {
        names.push("x0c0s0".into());
    }
    // Shuffle: the input order must not matter.
    for i in (1..names.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        names.swap(i, j);
    }
    names.join(",")
}

fn ours(case: &Case, resolver: &ClusterShellGroups) -> String {
    let parsed = if case.groups {
        NodeSet::parse_with(&case.expr, resolver)
    } else {
        NodeSet::parse(&case.expr)
    };
    let result = parsed.and_then(|ns| match case.mode {
        'r' => regroup(&ns, resolver, None, false).map(|s| format!("OK\t{s}")),
        'u' => regroup(&ns, resolver, Some("up"), false).map(|s| format!("OK\t{s}")),
        _ => {
            let names: Vec<String> = ns.iter().collect();
            Ok(format!("OK\t{ns}\t{}\t{}", ns.len(), names.join(" ")))
        }
    });
    match result {
        Ok(s) => s,
        Err(e) => format!("ERR\t{}", describe(&e)),
    }
}

fn describe(e: &ParseError) -> String {
    format!("{:?}\t{}", e.kind, e.message)
}

/// Whether our error matches ClusterShell's (class and message for the
/// errors ClusterShell reports as such; only "an error" for Python-level
/// exceptions like RecursionError).
fn errors_match(theirs: &str, ours: &str) -> bool {
    let mut t = theirs.splitn(3, '\t');
    let (_, class, msg) = (t.next(), t.next().unwrap_or(""), t.next().unwrap_or(""));
    let mut o = ours.splitn(3, '\t');
    let (_, kind, omsg) = (o.next(), o.next().unwrap_or(""), o.next().unwrap_or(""));
    let kind_for = |k: ErrorKind| format!("{k:?}");
    match class {
        "NodeSetParseError" | "NodeSetParseRangeError" => {
            kind == kind_for(ErrorKind::Parse) && omsg == msg
        }
        "NodeSetExternalError" => kind == kind_for(ErrorKind::External) && omsg == msg,
        "GroupResolverSourceError" => kind == kind_for(ErrorKind::UnknownSource) && omsg == msg,
        _ => true,
    }
}

fn run_cases(cases: &[Case], conf: &std::path::Path) {
    let Some(python) = clustershell_python() else {
        return;
    };
    let resolver = ClusterShellGroups::load(&[conf.to_path_buf()]).expect("test config loads");
    let mut child = Command::new(&python)
        .args(["-c", DRIVER, &conf.to_string_lossy()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python starts");
    let mut input = String::new();
    for c in cases {
        input.push_str(&format!("{}\t{}\t{}\n", c.mode, u8::from(c.groups), c.expr));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python runs");
    writer.join().expect("writer").expect("write cases");
    assert!(output.status.success(), "ClusterShell driver failed");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let theirs: Vec<&str> = text.lines().collect();
    assert_eq!(theirs.len(), cases.len(), "one result per case");
    let mut failures = Vec::new();
    for (case, t) in cases.iter().zip(&theirs) {
        let o = ours(case, &resolver);
        let same = if t.starts_with("ERR") {
            o.starts_with("ERR") && errors_match(t, &o)
        } else {
            o == *t
        };
        if !same {
            failures.push(format!(
                "mode {} groups {} expr {:?}\n  clustershell: {}\n  ours:         {}",
                case.mode, case.groups, case.expr, t, o
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{} cases identical to ClusterShell", cases.len());
}

#[test]
fn generated_expressions_match_clustershell() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_group_config(dir.path());
    let mut rng = Rng::new(0x5eed_0001);
    let mut cases = Vec::new();
    for _ in 0..3000 {
        cases.push(Case {
            mode: 'n',
            groups: false,
            expr: gen_expr(&mut rng, false),
        });
    }
    for _ in 0..1500 {
        cases.push(Case {
            mode: 'n',
            groups: false,
            expr: gen_name_list(&mut rng),
        });
    }
    for _ in 0..150 {
        cases.push(Case {
            mode: 'n',
            groups: false,
            expr: gen_big_name_list(&mut rng),
        });
    }
    run_cases(&cases, &conf);
}

#[test]
fn generated_group_expressions_match_clustershell() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_group_config(dir.path());
    let mut rng = Rng::new(0x5eed_0002);
    let mut cases = Vec::new();
    for _ in 0..800 {
        cases.push(Case {
            mode: 'n',
            groups: true,
            expr: gen_expr(&mut rng, true),
        });
    }
    for i in 0..300 {
        cases.push(Case {
            mode: if i % 3 == 0 { 'u' } else { 'r' },
            groups: true,
            expr: gen_expr(&mut rng, true),
        });
    }
    run_cases(&cases, &conf);
}
