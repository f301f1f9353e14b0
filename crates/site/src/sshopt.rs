//! The site's `[ssh] options`: read as ssh reads an `-o` option, and
//! refused when they would weaken host authentication or run a local
//! command.
//!
//! swh-deploy puts its own security options first on every ssh command
//! line (ssh keeps the first value it reads), so a site option cannot
//! override them; this check refuses the options swh-deploy does not set
//! itself, whatever their spelling (ssh's keywords are case-insensitive,
//! the value may follow `=` or blanks, and may be quoted).

/// One `-o` option, split as ssh splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOption<'a> {
    /// The keyword as written.
    pub key: &'a str,
    /// The value, without its surrounding double quotes.
    pub value: &'a str,
}

/// Splits `text` like ssh's `-o`: the keyword runs up to the first blank
/// or `=`, then blanks, at most one `=` and blanks separate it from the
/// value. `None` when there is no keyword made of ASCII letters and digits
/// or no value, or when the text holds control characters other than tabs.
pub fn split_option(text: &str) -> Option<SshOption<'_>> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return None;
    }
    let text = text.trim_start_matches([' ', '\t']);
    let end = text.find([' ', '\t', '=']).unwrap_or(text.len());
    let key = &text[..end];
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let rest = text[end..].trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    let value = rest.trim_matches([' ', '\t']);
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() {
        return None;
    }
    Some(SshOption { key, value })
}

/// Options refused whatever their value: they run a local command, decide
/// which host keys are trusted, or trust something other than the pinned
/// known_hosts (DNS, an IP match, "localhost").
pub const REFUSED_OPTIONS: &[&str] = &[
    "ProxyCommand",
    "LocalCommand",
    "PermitLocalCommand",
    "KnownHostsCommand",
    "CheckHostIP",
    "VerifyHostKeyDNS",
    "NoHostAuthenticationForLocalhost",
];

/// The system known_hosts files, the only values allowed for
/// `GlobalKnownHostsFile`.
pub const GLOBAL_KNOWN_HOSTS: &[&str] = &["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// Why the option `key`/`value` would weaken host authentication, or `None`
/// when it may be used. `UserKnownHostsFile` may only name files of the
/// user's own `~/.ssh/` (`~/.ssh/...` or `%d/.ssh/...`, no `..`);
/// `StrictHostKeyChecking` may only be `yes` (or `true`).
pub fn weakens_host_authentication(key: &str, value: &str) -> Option<String> {
    if let Some(k) = REFUSED_OPTIONS.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(format!(
            "`{k}` is refused in a site file: it runs a local command or trusts hosts by something else than the pinned known_hosts"
        ));
    }
    let v = value.to_ascii_lowercase();
    if key.eq_ignore_ascii_case("StrictHostKeyChecking") {
        if v == "yes" || v == "true" {
            return None;
        }
        return Some(format!(
            "`StrictHostKeyChecking={value}` is refused: swh-deploy only talks to hosts whose keys are known (pin them in known_hosts; first contact with a new host is only with the command-line flag --accept-new-host-keys)"
        ));
    }
    if key.eq_ignore_ascii_case("UserKnownHostsFile") {
        let own = |f: &str| {
            (f.starts_with("~/.ssh/") || f.starts_with("%d/.ssh/"))
                && f.len() > "~/.ssh/".len()
                && !f.split('/').any(|part| part == "..")
        };
        if let Some(f) = value.split_whitespace().find(|f| !own(f)) {
            return Some(format!(
                "`UserKnownHostsFile` {f} is refused: only the user's own known_hosts files (~/.ssh/...) may be named in a site file"
            ));
        }
        return None;
    }
    if key.eq_ignore_ascii_case("GlobalKnownHostsFile") {
        if let Some(f) = value
            .split_whitespace()
            .find(|f| !GLOBAL_KNOWN_HOSTS.contains(f))
        {
            return Some(format!(
                "`GlobalKnownHostsFile` {f} is refused: only {} may be named in a site file",
                GLOBAL_KNOWN_HOSTS.join(" and ")
            ));
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_like_ssh() {
        for (text, key, value) in [
            ("Port=2222", "Port", "2222"),
            ("Port 2222", "Port", "2222"),
            ("Port = 2222", "Port", "2222"),
            ("Port\t=\t2222", "Port", "2222"),
            ("port=\"2222\"", "port", "2222"),
            ("  Port 2222  ", "Port", "2222"),
            ("SendEnv=A B", "SendEnv", "A B"),
        ] {
            assert_eq!(split_option(text), Some(SshOption { key, value }), "{text}");
        }
        for bad in ["ProxyCommand", "=x", "Port=", "Po-rt=1", "Port=1\n", ""] {
            assert_eq!(split_option(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn weakening_options_are_found_whatever_the_case() {
        for (k, v) in [
            ("StrictHostKeyChecking", "no"),
            ("stricthostkeychecking", "False"),
            ("StrictHostKeyChecking", "accept-new"),
            ("StrictHostKeyChecking", "ask"),
            ("StrictHostKeyChecking", "off"),
            ("StrictHostKeyChecking", "1"),
            ("UserKnownHostsFile", "/dev/null"),
            ("userknownhostsfile", "~/.ssh/known_hosts /tmp/kh"),
            ("UserKnownHostsFile", "~/.ssh/../../tmp/kh"),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("KNOWNHOSTSCOMMAND", "/bin/echo"),
            ("CheckHostIP", "yes"),
            ("VerifyHostKeyDNS", "yes"),
            ("proxycommand", "nc %h %p"),
            ("LocalCommand", "id"),
            ("PermitLocalCommand", "no"),
        ] {
            assert!(weakens_host_authentication(k, v).is_some(), "{k}={v}");
        }
        for (k, v) in [
            ("StrictHostKeyChecking", "yes"),
            ("StrictHostKeyChecking", "TRUE"),
            ("UserKnownHostsFile", "~/.ssh/known_hosts ~/.ssh/swh_hosts"),
            ("GlobalKnownHostsFile", "/etc/ssh/ssh_known_hosts"),
            ("KexAlgorithms", "curve25519-sha256"),
            ("ProxyJump", "bastion"),
        ] {
            assert_eq!(weakens_host_authentication(k, v), None, "{k}={v}");
        }
    }
}
