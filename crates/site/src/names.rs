//! Validated names: systemd unit names, Debian package names and Debian
//! versions.
//!
//! Every value that ends up in a command sent to a host goes through one of
//! these newtypes first, so a typo or a hostile string in a site file or on
//! the command line is refused before any command is built.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a name or version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{value}`: {reason}")]
pub struct NameError {
    /// What was being parsed ("systemd unit name", "Debian package name", ...).
    pub what: &'static str,
    /// The refused input.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

fn name_error(what: &'static str, value: &str, reason: impl Into<String>) -> NameError {
    NameError {
        what,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// The unit types systemd knows (systemd.unit(5)); a name ending in one of
/// these is taken as already suffixed, any other name gets `.service` the way
/// `systemctl` adds it.
pub const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// A systemd unit name, validated against systemd's grammar
/// (systemd.unit(5)): ASCII letters, digits and `:-_.\`, at most one `@`
/// separating a template prefix from its instance, at most 255 characters
/// with the suffix. The suffix is optional (`gunicorn-swh-storage` means
/// `gunicorn-swh-storage.service`, as for `systemctl`).
///
/// Stricter than systemd in one point: a name may not start with `-` or `.`,
/// so that it can never be taken for an option.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitName(String);

impl UnitName {
    const WHAT: &'static str = "systemd unit name";

    /// The name as written (without an added suffix).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The template prefix, for `swh-worker@loader_git` it is `swh-worker`;
    /// `None` for a unit that is not a template instance.
    pub fn template(&self) -> Option<&str> {
        self.0.split_once('@').map(|(prefix, _)| prefix)
    }

    /// The instance, for `swh-worker@loader_git` it is `loader_git` (without
    /// suffix); `None` for a plain unit, `Some("")` for a bare template.
    pub fn instance(&self) -> Option<&str> {
        let (_, rest) = self.0.split_once('@')?;
        Some(match split_suffix(rest) {
            Some((instance, _)) => instance,
            None => rest,
        })
    }

    /// True for a bare template such as `swh-worker@` or
    /// `swh-worker@.service`, which cannot be started or restarted.
    pub fn is_template(&self) -> bool {
        self.instance() == Some("")
    }

    /// The full name with its suffix, as systemd reports it
    /// (`gunicorn-swh-storage.service`).
    pub fn full_name(&self) -> String {
        if split_suffix(&self.0).is_some() {
            self.0.clone()
        } else {
            format!("{}.service", self.0)
        }
    }
}

/// Splits `name.suffix` when `suffix` is a known unit type.
fn split_suffix(name: &str) -> Option<(&str, &str)> {
    let (stem, suffix) = name.rsplit_once('.')?;
    UNIT_SUFFIXES.contains(&suffix).then_some((stem, suffix))
}

impl FromStr for UnitName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| name_error(Self::WHAT, s, reason);
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c)))
        {
            return Err(err(&format!(
                "character {bad:?} is not allowed (only ASCII letters, digits and `:-_.\\@`)"
            )));
        }
        if s.starts_with('-') || s.starts_with('.') {
            return Err(err("it must not start with `-` or `.`"));
        }
        let full_len = if split_suffix(s).is_some() {
            s.len()
        } else {
            s.len() + ".service".len()
        };
        if full_len > 255 {
            return Err(err("it is longer than 255 characters with its suffix"));
        }
        if s.matches('@').count() > 1 {
            return Err(err("it has more than one `@`"));
        }
        if let Some((prefix, rest)) = s.split_once('@') {
            if prefix.is_empty() {
                return Err(err("the template name before `@` is empty"));
            }
            if rest.starts_with('.') && split_suffix(rest).is_none() {
                return Err(err("the instance after `@` must not start with `.`"));
            }
        }
        if split_suffix(s).is_some_and(|(stem, _)| stem.is_empty() || stem.ends_with('.')) {
            return Err(err("the name before the suffix is empty"));
        }
        Ok(UnitName(s.to_owned()))
    }
}

/// A Debian package name (Debian Policy 5.6.1): lower-case letters, digits,
/// `+`, `-` and `.`, at least two characters, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName(String);

impl PackageName {
    const WHAT: &'static str = "Debian package name";

    /// The package name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PackageName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| name_error(Self::WHAT, s, reason);
        if s.len() < 2 {
            return Err(err("it must be at least two characters long"));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err(err("it must start with a lower-case letter or a digit"));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(*c)))
        {
            return Err(err(&format!(
                "character {bad:?} is not allowed (only a-z, 0-9, `+`, `-` and `.`)"
            )));
        }
        Ok(PackageName(s.to_owned()))
    }
}

/// A Debian version, `[epoch:]upstream_version[-debian_revision]` (Debian
/// Policy 5.6.12), e.g. `0.29.0-1~swh1~bpo12+1`. Ordered the way dpkg
/// compares versions (`~` sorts before anything, even the end).
#[derive(Debug, Clone)]
pub struct DebianVersion {
    text: String,
    epoch: u64,
    upstream: String,
    revision: String,
}

impl DebianVersion {
    const WHAT: &'static str = "Debian version";

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The epoch (0 when absent).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The upstream version.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision ("" when absent).
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

impl FromStr for DebianVersion {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| name_error(Self::WHAT, s, reason);
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() || !e.chars().all(|c| c.is_ascii_digit()) {
                    return Err(err("the epoch before `:` must be a number"));
                }
                let epoch = e
                    .parse::<u64>()
                    .map_err(|_| err("the epoch is too large"))?;
                (epoch, rest)
            }
            None => (0, s),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => {
                if r.is_empty() {
                    return Err(err("the Debian revision after the last `-` is empty"));
                }
                (u, r)
            }
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(err("the upstream version is empty"));
        }
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("the upstream version must start with a digit"));
        }
        if let Some(bad) = upstream
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+~-".contains(*c)))
        {
            return Err(err(&format!(
                "character {bad:?} is not allowed in the upstream version (only letters, digits and `.+~-`)"
            )));
        }
        if let Some(bad) = revision
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+~".contains(*c)))
        {
            return Err(err(&format!(
                "character {bad:?} is not allowed in the Debian revision (only letters, digits and `.+~`)"
            )));
        }
        Ok(DebianVersion {
            text: s.to_owned(),
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

/// dpkg's character order: `~` first, then the end of the string, then
/// letters, then everything else.
fn char_order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit parts.
fn dpkg_compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = char_order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = char_order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl Ord for DebianVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| dpkg_compare(&self.upstream, &other.upstream))
            .then_with(|| dpkg_compare(&self.revision, &other.revision))
    }
}

impl PartialOrd for DebianVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebianVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebianVersion {}

macro_rules! string_like {
    ($t:ty, $field:tt) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.$field)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.$field
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.$field)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_like!(UnitName, 0);
string_like!(PackageName, 0);
string_like!(DebianVersion, text);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_accepted() {
        for ok in [
            "gunicorn-swh-storage",
            "gunicorn-swh-storage.service",
            "swh-worker@loader_git",
            "swh-worker@loader_git.service",
            "swh-indexer-journal-client@origin_intrinsic_metadata_0",
            "cron.service",
            "swh-worker@",
            "swh-worker@.service",
            "foo\\x2dbar.mount",
            "a:b",
        ] {
            assert!(ok.parse::<UnitName>().is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn unit_names_refused_with_reason() {
        let cases = [
            ("", "it is empty"),
            ("foo bar", "character ' ' is not allowed"),
            ("foo;reboot", "character ';' is not allowed"),
            ("$(id)", "character '$' is not allowed"),
            ("-foo", "must not start with `-`"),
            (".service", "must not start with `-` or `.`"),
            ("a@b@c", "more than one `@`"),
            ("@foo", "template name before `@` is empty"),
            ("Ünit", "character 'Ü' is not allowed"),
        ];
        for (input, reason) in cases {
            let e = input.parse::<UnitName>().unwrap_err();
            assert!(e.to_string().contains(reason), "{input}: {e}");
            assert!(e.to_string().starts_with("invalid systemd unit name"));
        }
        let long = "a".repeat(250);
        assert!(long.parse::<UnitName>().unwrap_err().reason.contains("255"));
        let ok = "a".repeat(247);
        assert!(ok.parse::<UnitName>().is_ok());
    }

    #[test]
    fn unit_name_parts() {
        let u: UnitName = "swh-worker@loader_git".parse().unwrap();
        assert_eq!(u.template(), Some("swh-worker"));
        assert_eq!(u.instance(), Some("loader_git"));
        assert!(!u.is_template());
        assert_eq!(u.full_name(), "swh-worker@loader_git.service");
        let t: UnitName = "swh-worker@.service".parse().unwrap();
        assert!(t.is_template());
        assert_eq!(t.full_name(), "swh-worker@.service");
        let p: UnitName = "gunicorn-swh-storage".parse().unwrap();
        assert_eq!(p.template(), None);
        assert_eq!(p.instance(), None);
        assert_eq!(p.full_name(), "gunicorn-swh-storage.service");
        assert_eq!(p.to_string(), "gunicorn-swh-storage");
    }

    #[test]
    fn package_names() {
        for ok in [
            "python3-swh.storage",
            "python3-swh.loader.git",
            "g++",
            "0ad",
            "libc6",
        ] {
            assert_eq!(ok.parse::<PackageName>().unwrap().as_str(), ok);
        }
        let cases = [
            ("a", "at least two characters"),
            ("Python3", "must start with a lower-case letter"),
            ("-rf", "must start with a lower-case letter"),
            ("python3_swh", "character '_' is not allowed"),
            ("python3-swh.Storage", "character 'S' is not allowed"),
            ("pkg;reboot", "character ';' is not allowed"),
            ("pkg name", "character ' ' is not allowed"),
        ];
        for (input, reason) in cases {
            let e = input.parse::<PackageName>().unwrap_err();
            assert!(e.to_string().contains(reason), "{input}: {e}");
            assert!(e.to_string().starts_with("invalid Debian package name"));
        }
    }

    #[test]
    fn debian_versions_parse() {
        let v: DebianVersion = "1:0.29.0-1~swh1~bpo12+1".parse().unwrap();
        assert_eq!(v.epoch(), 1);
        assert_eq!(v.upstream(), "0.29.0");
        assert_eq!(v.revision(), "1~swh1~bpo12+1");
        let v: DebianVersion = "2.5-rc1-3".parse().unwrap();
        assert_eq!(v.upstream(), "2.5-rc1");
        assert_eq!(v.revision(), "3");
        let v: DebianVersion = "1.0".parse().unwrap();
        assert_eq!((v.epoch(), v.upstream(), v.revision()), (0, "1.0", ""));
        let cases = [
            ("", "it is empty"),
            ("a:1.0", "epoch before `:` must be a number"),
            (":1.0", "epoch before `:` must be a number"),
            ("1.0-", "revision after the last `-` is empty"),
            ("v1.0", "must start with a digit"),
            ("1.0 2", "character ' ' is not allowed in the upstream"),
            (
                "1.0-1_swh",
                "character '_' is not allowed in the Debian revision",
            ),
            ("1.0;ls", "character ';' is not allowed"),
            ("-1", "upstream version is empty"),
        ];
        for (input, reason) in cases {
            let e = input.parse::<DebianVersion>().unwrap_err();
            assert!(e.to_string().contains(reason), "{input}: {e}");
        }
    }

    #[test]
    fn debian_versions_order_like_dpkg() {
        // Each version is strictly lower than the next, as `dpkg
        // --compare-versions` orders them.
        let ordered = [
            "0.9",
            "1.0~rc1",
            "1.0",
            "1.0-1~swh1~bpo12+1",
            "1.0-1~swh1",
            "1.0-1",
            "1.0-1+b1",
            "1.0a",
            "1.0.1",
            "1.1-1~swh1",
            "1.2-1~swh1",
            "1.10-1~swh1",
            "1:0.1",
        ];
        for pair in ordered.windows(2) {
            let a: DebianVersion = pair[0].parse().unwrap();
            let b: DebianVersion = pair[1].parse().unwrap();
            assert!(a < b, "{a} < {b}");
            assert!(b > a, "{b} > {a}");
        }
        let a: DebianVersion = "1.01".parse().unwrap();
        let b: DebianVersion = "1.1".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "1.01");
    }
}
