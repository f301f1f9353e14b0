//! A command-line parser with Python optparse's semantics, as clush uses it
//! (`disable_interspersed_args`): options stop at the first argument that is
//! not one, `--` ends them, short options cluster (`-bS`) and take attached
//! values (`-whost[1-3]`, `-f64`), long options take `--opt=value` or
//! `--opt value` and match by unambiguous prefix (`--fan` for `--fanout`).
//! Errors are optparse's wording ("no such option: --bogus").

/// One option: its names, whether it takes a value, and what it sets.
#[derive(Debug)]
pub struct Spec<K: 'static> {
    /// What the option sets, for the caller.
    pub key: K,
    /// `-x`.
    pub short: Option<char>,
    /// `--long` names (with the dashes); the first is the main one.
    pub long: &'static [&'static str],
    /// `Some(name)` when the option takes a value (shown in the help).
    pub metavar: Option<&'static str>,
    /// One-line help.
    pub help: &'static str,
}

/// One option found on the command line.
#[derive(Debug)]
pub struct Hit<'a, K: 'static> {
    /// The option's spec.
    pub spec: &'a Spec<K>,
    /// Its name as optparse reports it (`-f`, or the full `--fanout` for
    /// `--fan`).
    pub name: String,
    /// Its value, for options that take one.
    pub value: Option<String>,
}

/// Parses `args`: the options found, in order, and the arguments left after
/// them. The error is optparse's message (without the "error: " prefix).
pub fn parse<'a, K>(
    specs: &'a [Spec<K>],
    args: &[String],
) -> Result<(Vec<Hit<'a, K>>, Vec<String>), String> {
    let mut hits = Vec::new();
    let mut rest: std::collections::VecDeque<String> = args.iter().cloned().collect();
    while let Some(arg) = rest.front().cloned() {
        if arg == "--" {
            rest.pop_front();
            break;
        } else if let Some(long) = arg.strip_prefix("--") {
            rest.pop_front();
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let (spec, name) = match_long(specs, &name)?;
            let value = if spec.metavar.is_some() {
                match attached {
                    Some(v) => Some(v),
                    None => Some(
                        rest.pop_front()
                            .ok_or_else(|| format!("{name} option requires 1 argument"))?,
                    ),
                }
            } else if attached.is_some() {
                return Err(format!("{name} option does not take a value"));
            } else {
                None
            };
            hits.push(Hit { spec, name, value });
        } else if arg.len() > 1 && arg.starts_with('-') {
            rest.pop_front();
            let chars: Vec<char> = arg.chars().skip(1).collect();
            for (i, c) in chars.iter().enumerate() {
                let name = format!("-{c}");
                let spec = specs
                    .iter()
                    .find(|s| s.short == Some(*c))
                    .ok_or_else(|| format!("no such option: {name}"))?;
                if spec.metavar.is_some() {
                    let attached: String = chars[i + 1..].iter().collect();
                    let value = if attached.is_empty() {
                        rest.pop_front()
                            .ok_or_else(|| format!("{name} option requires 1 argument"))?
                    } else {
                        attached
                    };
                    hits.push(Hit {
                        spec,
                        name,
                        value: Some(value),
                    });
                    break;
                }
                hits.push(Hit {
                    spec,
                    name,
                    value: None,
                });
            }
        } else {
            break;
        }
    }
    Ok((hits, rest.into_iter().collect()))
}

/// The long option `name` stands for: itself, or the only one it is a
/// prefix of.
fn match_long<'a, K>(specs: &'a [Spec<K>], name: &str) -> Result<(&'a Spec<K>, String), String> {
    let all = specs
        .iter()
        .flat_map(|s| s.long.iter().map(move |l| (s, *l)));
    if let Some((s, l)) = all.clone().find(|(_, l)| *l == name) {
        return Ok((s, l.to_string()));
    }
    let mut found: Vec<(&Spec<K>, &str)> = all.filter(|(_, l)| l.starts_with(name)).collect();
    match found.len() {
        0 => Err(format!("no such option: {name}")),
        1 => {
            let (s, l) = found.remove(0);
            Ok((s, l.to_string()))
        }
        _ => {
            let mut names: Vec<&str> = found.iter().map(|(_, l)| *l).collect();
            names.sort_unstable();
            Err(format!("ambiguous option: {name} ({}?)", names.join(", ")))
        }
    }
}

/// The options' help, one entry per option, as optparse lays it out.
pub fn help<K>(specs: &[Spec<K>]) -> String {
    let mut out = String::new();
    for s in specs {
        let mut names: Vec<String> = Vec::new();
        let meta = s.metavar.unwrap_or("");
        if let Some(c) = s.short {
            names.push(if meta.is_empty() {
                format!("-{c}")
            } else {
                format!("-{c} {meta}")
            });
        }
        for l in s.long {
            names.push(if meta.is_empty() {
                l.to_string()
            } else {
                format!("{l}={meta}")
            });
        }
        let names = names.join(", ");
        if names.len() <= 22 {
            out.push_str(&format!("  {names:<24}{}\n", s.help));
        } else {
            out.push_str(&format!("  {names}\n{:26}{}\n", "", s.help));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPECS: &[Spec<u8>] = &[
        Spec {
            key: 1,
            short: Some('w'),
            long: &[],
            metavar: Some("NODES"),
            help: "",
        },
        Spec {
            key: 2,
            short: Some('b'),
            long: &["--dshbak"],
            metavar: None,
            help: "",
        },
        Spec {
            key: 3,
            short: Some('S'),
            long: &["--maxrc"],
            metavar: None,
            help: "",
        },
        Spec {
            key: 4,
            short: Some('f'),
            long: &["--fanout"],
            metavar: Some("N"),
            help: "",
        },
        Spec {
            key: 5,
            short: None,
            long: &["--color"],
            metavar: Some("WHEN"),
            help: "",
        },
        Spec {
            key: 6,
            short: None,
            long: &["--conf"],
            metavar: Some("FILE"),
            help: "",
        },
    ];

    /// (key, name, value) of each option found, and the arguments left.
    type Found = (Vec<(u8, String, Option<String>)>, Vec<String>);

    fn p(args: &[&str]) -> Result<Found, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(SPECS, &args).map(|(h, r)| {
            (
                h.into_iter()
                    .map(|h| (h.spec.key, h.name, h.value))
                    .collect(),
                r,
            )
        })
    }

    fn v(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn attached_and_separate_values_clusters_and_prefixes() {
        let (h, r) = p(&["-bSwhost[1-3]", "-f", "8", "--fan=9", "--dsh", "echo", "-b"]).unwrap();
        assert_eq!(
            h,
            vec![
                (2, "-b".into(), None),
                (3, "-S".into(), None),
                (1, "-w".into(), v("host[1-3]")),
                (4, "-f".into(), v("8")),
                (4, "--fanout".into(), v("9")),
                (2, "--dshbak".into(), None),
            ]
        );
        // Options stop at the first argument that is not one.
        assert_eq!(r, vec!["echo", "-b"]);
        let (h, r) = p(&["-f64", "-w", "-x", "--", "-S"]).unwrap();
        assert_eq!(h[0], (4, "-f".into(), v("64")));
        assert_eq!(h[1], (1, "-w".into(), v("-x")));
        assert_eq!(r, vec!["-S"]);
        // A lone "-" is an argument.
        assert_eq!(p(&["-", "x"]).unwrap().1, vec!["-", "x"]);
    }

    #[test]
    fn errors_are_optparse_s() {
        assert_eq!(p(&["--bogus", "x"]).unwrap_err(), "no such option: --bogus");
        assert_eq!(p(&["-bz"]).unwrap_err(), "no such option: -z");
        assert_eq!(
            p(&["--co", "x"]).unwrap_err(),
            "ambiguous option: --co (--color, --conf?)"
        );
        assert_eq!(
            p(&["--dshbak=1"]).unwrap_err(),
            "--dshbak option does not take a value"
        );
        assert_eq!(p(&["-w"]).unwrap_err(), "-w option requires 1 argument");
        assert_eq!(
            p(&["--fanout"]).unwrap_err(),
            "--fanout option requires 1 argument"
        );
    }
}
