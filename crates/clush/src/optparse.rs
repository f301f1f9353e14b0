//! Command-line parsing with Python optparse's semantics, the parser that
//! ClusterShell's `clush` and `nodeset` use, driven by one option table.
//! Both front ends of this crate parse with it:
//!
//! - short options cluster (`-bS`, `-cq`) and take their value attached
//!   (`-whost[1-3]`, `-I0`, `-S:`) or as the next argument (`-I 0`);
//! - long options take `--opt=value` or `--opt value`, and any unambiguous
//!   prefix names the option (`--fan` for `--fanout`, `--fo` for `--fold`);
//! - parsing stops at the first argument that is not an option (ClusterShell
//!   disables interspersed arguments) or after `--`; a lone `-` is an
//!   argument;
//! - errors carry optparse's messages: `no such option: --bogus`,
//!   `ambiguous option: --l (--list, --list-all, --list-sources?)`,
//!   `--index option requires 1 argument`,
//!   `--count option does not take a value`.
//!
//! The value helpers ([`py_repr`], [`py_int_option`], [`py_decimal`],
//! [`safe_value`], [`choice`]...) give optparse's and ClusterShell's
//! wording for a bad value (`option -f: invalid integer value: 'x'`).

/// One option of a table.
#[derive(Debug)]
pub struct OptSpec<K: Copy + 'static> {
    /// What the caller matches on.
    pub key: K,
    /// The short form (`-c`), if any.
    pub short: Option<char>,
    /// The long forms, without `--` (`count`); the first is the main one.
    pub long: &'static [&'static str],
    /// The value's name in the help when the option takes a value.
    pub metavar: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

impl<K: Copy + 'static> OptSpec<K> {
    /// An option of a table (`metavar`: `Some` when it takes a value).
    pub const fn new(
        key: K,
        short: Option<char>,
        long: &'static [&'static str],
        metavar: Option<&'static str>,
        help: &'static str,
    ) -> Self {
        OptSpec {
            key,
            short,
            long,
            metavar,
            help,
        }
    }
}

/// One option found on the command line.
#[derive(Debug, Clone)]
pub struct Occurrence<K> {
    /// The option's key.
    pub key: K,
    /// The option as optparse names it in messages: `-x` or `--exclude`
    /// (the full long name, even when a prefix was typed).
    pub name: String,
    /// Its value, for options that take one.
    pub value: Option<String>,
}

/// The options in command-line order, then the remaining arguments.
#[derive(Debug)]
pub struct Parsed<K> {
    /// Options in the order given.
    pub opts: Vec<Occurrence<K>>,
    /// Arguments from the first non-option on (`--` removed).
    pub args: Vec<String>,
}

/// Parses `argv` (without the program name) against the option tables
/// `tables` (searched in order, as one table).
///
/// Returns optparse's error message (without the usage and program
/// prefix) on a bad option.
pub fn parse<K: Copy>(tables: &[&[OptSpec<K>]], argv: &[String]) -> Result<Parsed<K>, String> {
    let mut opts = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, attached) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let (spec, long) = match_long(tables, name)?;
            let full = format!("--{long}");
            i += 1;
            let value = if spec.metavar.is_some() {
                match attached {
                    Some(v) => Some(v),
                    None => {
                        let Some(v) = argv.get(i) else {
                            return Err(format!("{full} option requires 1 argument"));
                        };
                        i += 1;
                        Some(v.clone())
                    }
                }
            } else if attached.is_some() {
                return Err(format!("{full} option does not take a value"));
            } else {
                None
            };
            opts.push(Occurrence {
                key: spec.key,
                name: full,
                value,
            });
            continue;
        }
        if arg.len() > 1 && arg.starts_with('-') {
            let chars: Vec<char> = arg.chars().skip(1).collect();
            i += 1;
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let name = format!("-{c}");
                let Some(spec) = all(tables).find(|s| s.short == Some(c)) else {
                    return Err(format!("no such option: {name}"));
                };
                k += 1;
                let value = if spec.metavar.is_some() {
                    if k < chars.len() {
                        let v: String = chars[k..].iter().collect();
                        k = chars.len();
                        Some(v)
                    } else {
                        let Some(v) = argv.get(i) else {
                            return Err(format!("{name} option requires 1 argument"));
                        };
                        i += 1;
                        Some(v.clone())
                    }
                } else {
                    None
                };
                opts.push(Occurrence {
                    key: spec.key,
                    name,
                    value,
                });
            }
            continue;
        }
        break;
    }
    Ok(Parsed {
        opts,
        args: argv[i..].to_vec(),
    })
}

/// Every option of `tables`, in order.
fn all<'a, K: Copy>(tables: &'a [&'a [OptSpec<K>]]) -> impl Iterator<Item = &'a OptSpec<K>> + 'a {
    tables.iter().flat_map(|t| t.iter())
}

/// optparse's `_match_abbrev`: an exact long name, else the only one that
/// starts with `typed`; with the long name it stands for.
fn match_long<'a, K: Copy>(
    tables: &'a [&'a [OptSpec<K>]],
    typed: &str,
) -> Result<(&'a OptSpec<K>, &'static str), String> {
    let names = || all(tables).flat_map(|s| s.long.iter().map(move |l| (*l, s)));
    if let Some((l, spec)) = names().find(|(l, _)| *l == typed) {
        return Ok((spec, l));
    }
    let mut hits: Vec<(&'static str, &OptSpec<K>)> =
        names().filter(|(l, _)| l.starts_with(typed)).collect();
    match hits.len() {
        0 => Err(format!("no such option: --{typed}")),
        1 => Ok((hits[0].1, hits[0].0)),
        _ => {
            hits.sort_by_key(|(l, _)| *l);
            let names: Vec<String> = hits.iter().map(|(l, _)| format!("--{l}")).collect();
            Err(format!(
                "ambiguous option: --{typed} ({}?)",
                names.join(", ")
            ))
        }
    }
}

/// The options' help, one entry per option, as optparse lays it out
/// (names padded to 24 columns, or on a line of their own when longer).
pub fn options_help<K: Copy>(specs: &[OptSpec<K>]) -> String {
    let mut out = String::new();
    for s in specs {
        let mut forms = Vec::new();
        if let Some(c) = s.short {
            forms.push(match s.metavar {
                Some(m) => format!("-{c} {m}"),
                None => format!("-{c}"),
            });
        }
        for l in s.long {
            forms.push(match s.metavar {
                Some(m) => format!("--{l}={m}"),
                None => format!("--{l}"),
            });
        }
        let forms = forms.join(", ");
        if forms.len() <= 22 {
            out.push_str(&format!("  {forms:<22}  {}\n", s.help));
        } else {
            out.push_str(&format!("  {forms}\n  {:<22}  {}\n", "", s.help));
        }
    }
    out
}

/// The help text: usage, then each section's title and options, like
/// optparse's option groups.
pub fn help<K: Copy>(usage: &str, sections: &[(&str, &[OptSpec<K>])]) -> String {
    let mut out = format!("Usage: {usage}\n");
    for (title, specs) in sections {
        out.push_str(&format!("\n{title}:\n"));
        out.push_str(&options_help(specs));
    }
    out
}

/// Python's `repr()` of a string, as optparse quotes values in messages.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// optparse's `int` type: Python's `int(value, radix)` with the radix
/// taken from a `0x`, `0b` or `0` prefix.
pub fn py_int_option(value: &str) -> Option<i64> {
    let lower = value.to_ascii_lowercase();
    let (radix, digits) = if lower.starts_with("0x") {
        (16, &value[2..])
    } else if lower.starts_with("0b") {
        (2, &value[2..])
    } else if lower.starts_with('0') {
        (8, value.strip_prefix("0o").unwrap_or(value))
    } else {
        (10, value)
    };
    let t = digits.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    let v = if clean.is_empty() {
        0
    } else {
        i64::from_str_radix(&clean, radix).ok()?
    };
    Some(if neg { -v } else { v })
}

/// Python's `int(value)` (base 10): whitespace, sign, digits, underscores.
pub fn py_decimal(value: &str) -> Option<i64> {
    let t = value.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'_') || t.starts_with('_') {
        return None;
    }
    let v: i64 = t.replace('_', "").parse().ok()?;
    Some(if neg { -v } else { v })
}

/// A decimal integer value of option `opt` (surrounding whitespace
/// allowed), or optparse's `invalid integer value` message.
pub fn int_value(opt: &str, v: &str) -> Result<i64, String> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| format!("option {opt}: invalid integer value: {}", py_repr(v)))
}

/// A floating-point value of option `opt`, or optparse's `invalid
/// floating-point value` message.
pub fn float_value(opt: &str, v: &str) -> Result<f64, String> {
    v.trim()
        .parse::<f64>()
        .map_err(|_| format!("option {opt}: invalid floating-point value: {}", py_repr(v)))
}

/// ClusterShell's `safestring` type: not empty and not an option.
pub fn safe_value(opt: &str, v: &str) -> Result<String, String> {
    if v.is_empty() || v.starts_with('-') {
        return Err(format!("option {opt}: invalid value: {}", py_repr(v)));
    }
    Ok(v.to_string())
}

/// optparse's `choice` type: `v` must be one of `choices`.
pub fn choice(opt: &str, v: &str, choices: &[&str]) -> Result<(), String> {
    if choices.contains(&v) {
        return Ok(());
    }
    let list: Vec<String> = choices.iter().map(|c| py_repr(c)).collect();
    Err(format!(
        "option {opt}: invalid choice: {} (choose from {})",
        py_repr(v),
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum K {
        Count,
        Fold,
        List,
        ListAll,
        Slice,
        Index,
        Nodes,
        Fanout,
        Color,
        Conf,
    }

    const T: &[OptSpec<K>] = &[
        OptSpec {
            key: K::Count,
            short: Some('c'),
            long: &["count"],
            metavar: None,
            help: "",
        },
        OptSpec {
            key: K::Fold,
            short: Some('f'),
            long: &["fold"],
            metavar: None,
            help: "",
        },
        OptSpec {
            key: K::List,
            short: Some('l'),
            long: &["list"],
            metavar: None,
            help: "",
        },
        OptSpec {
            key: K::ListAll,
            short: Some('L'),
            long: &["list-all"],
            metavar: None,
            help: "",
        },
        OptSpec {
            key: K::Slice,
            short: Some('I'),
            long: &["slice"],
            metavar: Some("RANGESET"),
            help: "",
        },
        OptSpec {
            key: K::Index,
            short: None,
            long: &["index"],
            metavar: Some("NODE"),
            help: "",
        },
    ];

    /// A second table, clush-like, searched after the first.
    const U: &[OptSpec<K>] = &[
        OptSpec {
            key: K::Nodes,
            short: Some('w'),
            long: &[],
            metavar: Some("NODES"),
            help: "nodes",
        },
        OptSpec {
            key: K::Fanout,
            short: Some('F'),
            long: &["fanout"],
            metavar: Some("N"),
            help: "at most N hosts at once",
        },
        OptSpec {
            key: K::Color,
            short: None,
            long: &["color"],
            metavar: Some("WHEN"),
            help: "when to color",
        },
        OptSpec {
            key: K::Conf,
            short: None,
            long: &["conf", "configuration-file"],
            metavar: Some("FILE"),
            help: "",
        },
    ];

    fn p(args: &[&str]) -> Result<Parsed<K>, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&[T, U], &v)
    }

    #[test]
    fn optparse_semantics() {
        let r = p(&["-cI0", "--fo", "--slice=1", "--index", "n1", "a", "-f"]).unwrap();
        let keys: Vec<K> = r.opts.iter().map(|o| o.key).collect();
        assert_eq!(keys, [K::Count, K::Slice, K::Fold, K::Slice, K::Index]);
        assert_eq!(r.opts[1].value.as_deref(), Some("0"));
        assert_eq!(r.opts[2].name, "--fold");
        assert_eq!(r.opts[4].value.as_deref(), Some("n1"));
        assert_eq!(r.args, ["a", "-f"]);
        let r = p(&["-c", "--", "-f"]).unwrap();
        assert_eq!(r.args, ["-f"]);
        let r = p(&["-c", "-", "-f"]).unwrap();
        assert_eq!(r.args, ["-", "-f"]);
    }

    #[test]
    fn attached_and_separate_values_across_tables() {
        let r = p(&["-cfwhost[1-3]", "-F", "8", "--fan=9", "-w", "-x", "x"]).unwrap();
        let found: Vec<(K, &str, Option<&str>)> = r
            .opts
            .iter()
            .map(|o| (o.key, o.name.as_str(), o.value.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (K::Count, "-c", None),
                (K::Fold, "-f", None),
                (K::Nodes, "-w", Some("host[1-3]")),
                (K::Fanout, "-F", Some("8")),
                (K::Fanout, "--fanout", Some("9")),
                (K::Nodes, "-w", Some("-x")),
            ]
        );
        assert_eq!(r.args, ["x"]);
        // A second long name of an option is matched exactly and by prefix.
        let r = p(&["--configuration=f", "--conf", "g"]).unwrap();
        assert_eq!(r.opts[0].name, "--configuration-file");
        assert_eq!(r.opts[1].name, "--conf");
    }

    #[test]
    fn errors_are_optparse_s() {
        assert_eq!(p(&["--bogus"]).unwrap_err(), "no such option: --bogus");
        assert_eq!(p(&["-cz"]).unwrap_err(), "no such option: -z");
        assert_eq!(
            p(&["--l"]).unwrap_err(),
            "ambiguous option: --l (--list, --list-all?)"
        );
        assert_eq!(
            p(&["--co", "x"]).unwrap_err(),
            "ambiguous option: --co (--color, --conf, --configuration-file, --count?)"
        );
        assert_eq!(
            p(&["--ind"]).unwrap_err(),
            "--index option requires 1 argument"
        );
        assert_eq!(p(&["-I"]).unwrap_err(), "-I option requires 1 argument");
        assert_eq!(
            p(&["--count=3"]).unwrap_err(),
            "--count option does not take a value"
        );
    }

    #[test]
    fn help_lays_out_like_optparse() {
        assert_eq!(
            options_help(U),
            "  -w NODES                nodes\n  -F N, --fanout=N        at most N hosts at once\n  \
             --color=WHEN            when to color\n  --conf=FILE, --configuration-file=FILE\n                          \n"
        );
        assert!(help("prog [options]", &[("Options", &U[..1])])
            .starts_with("Usage: prog [options]\n\nOptions:\n  -w NODES "));
    }

    #[test]
    fn python_helpers() {
        assert_eq!(py_repr("x"), "'x'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\\b"), "'a\\\\b'");
        assert_eq!(py_int_option("12"), Some(12));
        assert_eq!(py_int_option(" -3 "), Some(-3));
        assert_eq!(py_int_option("0x10"), Some(16));
        assert_eq!(py_int_option("010"), Some(8));
        assert_eq!(py_int_option("0"), Some(0));
        assert_eq!(py_int_option("x"), None);
        assert_eq!(py_int_option("08"), None);
        assert_eq!(py_decimal(" 1_0 "), Some(10));
        assert_eq!(py_decimal("-4"), Some(-4));
        assert_eq!(py_decimal("_1"), None);
        assert_eq!(py_decimal("1.5"), None);
    }

    #[test]
    fn value_helpers_word_errors_as_optparse() {
        assert_eq!(int_value("-f", " 8 "), Ok(8));
        assert_eq!(
            int_value("-f", "x"),
            Err("option -f: invalid integer value: 'x'".into())
        );
        assert_eq!(float_value("-t", "1.5"), Ok(1.5));
        assert_eq!(
            float_value("-t", "s"),
            Err("option -t: invalid floating-point value: 's'".into())
        );
        assert_eq!(safe_value("-w", "n1"), Ok("n1".into()));
        assert_eq!(
            safe_value("-w", "-x"),
            Err("option -w: invalid value: '-x'".into())
        );
        assert_eq!(choice("-R", "ssh", &["ssh", "exec"]), Ok(()));
        assert_eq!(
            choice("-R", "rsh", &["ssh", "exec"]),
            Err("option -R: invalid choice: 'rsh' (choose from 'ssh', 'exec')".into())
        );
    }
}
