//! Debian versions, `[epoch:]upstream_version[-debian_revision]`, parsed,
//! checked and ordered as dpkg orders them. (Moved here from the site crate:
//! a Debian version is a Debian concept; the site crate keeps names such as
//! package and unit names, whose [`NameError`] this type still returns.)

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use swh_deploy_site::NameError;

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
        let err = |reason: &str| NameError {
            what: Self::WHAT,
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
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

impl fmt::Display for DebianVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for DebianVersion {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl Serialize for DebianVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DebianVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn serde_round_trip_keeps_the_text() {
        let v: DebianVersion = serde_json::from_str("\"1:0.29.0-1~swh1\"").unwrap();
        assert_eq!(v.epoch(), 1);
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1:0.29.0-1~swh1\"");
        assert!(serde_json::from_str::<DebianVersion>("\"v1\"").is_err());
    }
}
