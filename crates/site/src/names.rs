//! Validated names: systemd unit names, Debian package names and Debian
//! versions.
//!
//! Every value that ends up in a command sent to a host goes through one of
//! these newtypes first, so a typo or a hostile string in a site file or on
//! the command line is refused before any command is built.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
}
