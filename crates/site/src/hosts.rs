//! Host names: what swh-deploy accepts as a host before anything is
//! planned, journaled or given to ssh.
//!
//! A host is an RFC 1123 host name (dot-separated labels of ASCII letters,
//! digits and `-`, 1 to 63 characters each, neither starting nor ending
//! with `-`, 253 characters at most) or an IPv4 or IPv6 address. Anything
//! else (a name starting with `-` that ssh would read as an option, `=`,
//! `/`, `%`, spaces, control characters...) is refused with its reason.

use std::net::IpAddr;

/// The longest host name (RFC 1035 / RFC 1123, without the final dot).
pub const MAX_HOST_NAME: usize = 253;

/// Checks that `name` is an RFC 1123 host name or an IP address; the error
/// says what is wrong with it (without repeating the name).
pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty host name".to_owned());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if name.len() > MAX_HOST_NAME {
        return Err(format!(
            "{} characters, more than the {MAX_HOST_NAME} a host name may have",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("an empty label (two dots, or a dot at an end)".to_owned());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "character {c:?} is not allowed (RFC 1123: letters, digits, `-` and `.`)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with `-`"));
        }
    }
    Ok(())
}

/// True when [`check_host_name`] accepts `name`.
pub fn is_host_name(name: &str) -> bool {
    check_host_name(name).is_ok()
}

/// A host name refused in a node-set expression: its byte offset in the
/// expression, the name (with each `[...]` range shown as written) and the
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHostInNodeSet {
    /// Byte offset of the name in the expression.
    pub offset: usize,
    /// The name as written (ranges included).
    pub name: String,
    /// Why it is not a host name.
    pub reason: String,
}

/// Checks every literal host pattern of a node-set expression without
/// expanding it: the expression is split on its operators (`,`, `!`, `&`,
/// `^`) outside brackets, `@group` terms are left to their group source,
/// and each `[...]` range of a pattern stands for one digit (ranges hold
/// only digits, so every expansion of a valid pattern is valid, up to the
/// length limits). Returns the first refused pattern.
pub fn check_node_set_hosts(expr: &str) -> Result<(), BadHostInNodeSet> {
    let mut depth = 0usize;
    let mut start = 0usize;
    let mut terms = Vec::new();
    for (i, c) in expr.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' | '!' | '&' | '^' if depth == 0 => {
                terms.push((start, &expr[start..i]));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    terms.push((start, &expr[start..]));
    for (offset, term) in terms {
        if term.is_empty() || term.starts_with('@') {
            continue;
        }
        let mut flat = String::with_capacity(term.len());
        let mut inside = false;
        for c in term.chars() {
            match c {
                '[' if !inside => {
                    inside = true;
                    flat.push('0');
                }
                ']' if inside => inside = false,
                _ if inside => {}
                _ => flat.push(c),
            }
        }
        if let Err(reason) = check_host_name(&flat) {
            return Err(BadHostInNodeSet {
                offset,
                name: term.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_addresses_are_accepted() {
        for ok in [
            "host1",
            "worker01.internal.softwareheritage.org",
            "3com.example",
            "a-b.c",
            "10.213.0.7",
            "::1",
            "fe80::1",
            &"a".repeat(63),
        ] {
            assert_eq!(check_host_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        for (bad, why) in [
            ("-oProxyCommand=id", "character '='"),
            ("-host", "starts or ends with `-`"),
            ("host-", "starts or ends with `-`"),
            ("", "empty host name"),
            ("a..b", "empty label"),
            ("a.", "empty label"),
            ("a b", "character ' '"),
            ("a_b", "character '_'"),
            ("a/b", "character '/'"),
            ("h%h", "character '%'"),
            ("h\n", "character '\\n'"),
            ("héte", "character 'é'"),
        ] {
            let e = check_host_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check_host_name(&"a".repeat(64)).unwrap_err().contains("63"));
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(check_host_name(&long).unwrap_err().contains("253"));
    }

    #[test]
    fn node_set_patterns_are_checked_without_expansion() {
        assert_eq!(check_node_set_hosts("host[1-999999999]"), Ok(()));
        assert_eq!(
            check_node_set_hosts("web[01-04].example.org,db1!web02.example.org,@rpc,@cs:x"),
            Ok(())
        );
        assert_eq!(check_node_set_hosts("a[1-2]b[3,5],c"), Ok(()));
        let e = check_node_set_hosts("host1,-oProxyCommand=id").unwrap_err();
        assert_eq!(e.offset, 6);
        assert_eq!(e.name, "-oProxyCommand=id");
        let e = check_node_set_hosts("ok[1-2],-x[1-3]").unwrap_err();
        assert_eq!((e.offset, e.name.as_str()), (8, "-x[1-3]"));
        assert!(e.reason.contains("starts or ends"), "{}", e.reason);
    }
}
