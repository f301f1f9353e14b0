//! Python's `format % value` for one value, as ClusterShell's `nodeset
//! -O/--output-format` applies it: `%s` (and `%r`, `%a`), `%d`/`%i`/`%u`,
//! `%x`/`%X`/`%o`, `%%`, with flags, width and precision.

/// The value formatted: a node set string or a count / index.
#[derive(Clone, Copy, Debug)]
pub enum PyArg<'a> {
    /// A string (`%s` only; `%d` is a TypeError).
    Str(&'a str),
    /// An integer.
    Int(i64),
}

/// A formatting failure, shaped like Python's exception.
#[derive(Debug, PartialEq, Eq)]
pub enum PyFmtError {
    /// `TypeError` (ClusterShell prints `nodeset: MESSAGE`).
    Type(String),
    /// `ValueError` (ClusterShell prints `ERROR: MESSAGE`).
    Value(String),
}

/// `fmt % arg`.
pub fn format(fmt: &str, arg: PyArg<'_>) -> Result<String, PyFmtError> {
    let mut out = String::with_capacity(fmt.len() + 16);
    let chars: Vec<char> = fmt.chars().collect();
    let mut used = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if chars.get(i) == Some(&'(') {
            return Err(PyFmtError::Type("format requires a mapping".into()));
        }
        let (mut left, mut zero, mut plus, mut space, mut alt) =
            (false, false, false, false, false);
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => alt = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = width.saturating_mul(10).saturating_add(d as usize);
            i += 1;
        }
        let mut precision: Option<usize> = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0usize;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p.saturating_mul(10).saturating_add(d as usize);
                i += 1;
            }
            precision = Some(p);
        }
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            return Err(PyFmtError::Value("incomplete format".into()));
        };
        i += 1;
        if conv == '%' {
            out.push('%');
            continue;
        }
        if !matches!(conv, 's' | 'r' | 'a' | 'd' | 'i' | 'u' | 'x' | 'X' | 'o') {
            return Err(PyFmtError::Value(format!(
                "unsupported format character '{conv}' (0x{:x}) at index {}",
                conv as u32,
                i - 1
            )));
        }
        let _ = start;
        if used {
            return Err(PyFmtError::Type(
                "not enough arguments for format string".into(),
            ));
        }
        used = true;
        let body = match (conv, arg) {
            ('s', PyArg::Str(s)) => s.to_string(),
            ('r' | 'a', PyArg::Str(s)) => crate::optparse::py_repr(s),
            ('s' | 'r' | 'a', PyArg::Int(v)) => v.to_string(),
            (_, PyArg::Str(_)) => {
                let kind = if matches!(conv, 'd' | 'i' | 'u') {
                    format!("%{conv} format: a real number is required, not str")
                } else {
                    format!("%{conv} format: an integer is required, not str")
                };
                return Err(PyFmtError::Type(kind));
            }
            (_, PyArg::Int(v)) => {
                let mag = v.unsigned_abs();
                let digits = match conv {
                    'x' => format!("{mag:x}"),
                    'X' => format!("{mag:X}"),
                    'o' => format!("{mag:o}"),
                    _ => mag.to_string(),
                };
                let digits = match precision {
                    Some(p) if digits.len() < p => {
                        format!("{}{digits}", "0".repeat(p - digits.len()))
                    }
                    _ => digits,
                };
                let prefix = match (alt, conv) {
                    (true, 'x') => "0x",
                    (true, 'X') => "0X",
                    (true, 'o') => "0o",
                    _ => "",
                };
                let sign = if v < 0 {
                    "-"
                } else if plus {
                    "+"
                } else if space {
                    " "
                } else {
                    ""
                };
                if zero && !left {
                    let lead = sign.len() + prefix.len();
                    let pad = width.saturating_sub(lead + digits.len());
                    format!("{sign}{prefix}{}{digits}", "0".repeat(pad))
                } else {
                    format!("{sign}{prefix}{digits}")
                }
            }
        };
        let body = match (conv, precision) {
            ('s' | 'r' | 'a', Some(p)) => body.chars().take(p).collect(),
            _ => body,
        };
        let len = body.chars().count();
        if len < width {
            let pad = " ".repeat(width - len);
            if left {
                out.push_str(&body);
                out.push_str(&pad);
            } else {
                out.push_str(&pad);
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if !used {
        return Err(PyFmtError::Type(
            "not all arguments converted during string formatting".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        assert_eq!(format("{%s}", PyArg::Str("a")).unwrap(), "{a}");
        assert_eq!(format("%s-ib0", PyArg::Str("n1")).unwrap(), "n1-ib0");
        assert_eq!(format("%5s|", PyArg::Str("ab")).unwrap(), "   ab|");
        assert_eq!(format("%-4s|", PyArg::Str("ab")).unwrap(), "ab  |");
        assert_eq!(
            format("%03d nodes 100%%", PyArg::Int(7)).unwrap(),
            "007 nodes 100%"
        );
        assert_eq!(format("%x", PyArg::Int(255)).unwrap(), "ff");
        assert_eq!(
            format("%d", PyArg::Str("a")),
            Err(PyFmtError::Type(
                "%d format: a real number is required, not str".into()
            ))
        );
        assert_eq!(
            format("x", PyArg::Str("a")),
            Err(PyFmtError::Type(
                "not all arguments converted during string formatting".into()
            ))
        );
        assert_eq!(
            format("%s%s", PyArg::Str("a")),
            Err(PyFmtError::Type(
                "not enough arguments for format string".into()
            ))
        );
        assert_eq!(
            format("%", PyArg::Str("a")),
            Err(PyFmtError::Value("incomplete format".into()))
        );
        assert_eq!(
            format("%y", PyArg::Str("a")),
            Err(PyFmtError::Value(
                "unsupported format character 'y' (0x79) at index 1".into()
            ))
        );
    }
}
