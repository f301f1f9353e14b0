//! Kubernetes label syntax (`[prefix/]name=value`), checked before anything
//! is sent.

use crate::Error;

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn dns_subdomain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name
/// of at most 63 characters (alphanumerics, `-`, `_`, `.`, starting and
/// ending with an alphanumeric).
pub fn validate_key(key: &str) -> Result<(), Error> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !dns_subdomain_ok(p) {
            return Err(Error::Input(format!(
                "label key {key:?}: prefix {p:?} is not a DNS subdomain (lowercase letters, digits, '-', '.')"
            )));
        }
    }
    if !name_ok(name) {
        return Err(Error::Input(format!(
            "label key {key:?}: name {name:?} must be 1-63 characters of [A-Za-z0-9-_.], starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

/// Checks a label value: empty, or a name as in [`validate_key`].
pub fn validate_value(key: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() || name_ok(value) {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "label {key}={value:?}: the value must be empty or 1-63 characters of [A-Za-z0-9-_.], starting and ending with a letter or digit"
        )))
    }
}

/// Parses `KEY=VALUE`, validating both.
pub fn parse_assignment(s: &str) -> Result<(String, String), Error> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Error::Input(format!(
            "{s:?}: expected LABEL=VALUE, e.g. swh/loader=true"
        )));
    };
    validate_key(k)?;
    validate_value(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        for ok in [
            "swh/loader=true",
            "swh/loader-metadata=true",
            "app=",
            "node-role.kubernetes.io/etcd=true",
            "a.b_c=X-1",
        ] {
            assert!(parse_assignment(ok).is_ok(), "{ok}");
        }
        for bad in [
            "swh/loader",
            "SWH/loader=true",
            "swh/=true",
            "swh/-x=true",
            "/x=1",
            "a=b c",
            "a=-x",
            "a/b/c=1",
            "k=;rm -rf /",
        ] {
            assert!(parse_assignment(bad).is_err(), "{bad}");
        }
        let long = format!("a={}", "x".repeat(64));
        assert!(parse_assignment(&long).is_err());
    }
}
