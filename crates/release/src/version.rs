//! Release versions as the module CI accepts them: `v<N>(.<N>)+` with an
//! optional pre-release `a<N>`, `b<N>` or `rc<N>` (the tag regex
//! `refs/tags/v\d+(\.\d+)+((a|b|rc)\d+)?`), ordered as PEP 440 orders them.

use crate::Error;
use std::cmp::Ordering;
use std::fmt;

/// A pre-release phase, in PEP 440 order: `a` < `b` < `rc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreRelease {
    /// `a<N>`: alpha.
    Alpha,
    /// `b<N>`: beta.
    Beta,
    /// `rc<N>`: release candidate.
    Rc,
}

impl PreRelease {
    /// The spelling in a version (`a`, `b`, `rc`).
    pub fn as_str(self) -> &'static str {
        match self {
            PreRelease::Alpha => "a",
            PreRelease::Beta => "b",
            PreRelease::Rc => "rc",
        }
    }
}

/// A module release version such as `1.2.0` or `1.2.0rc1` (without the tag's
/// `v`). Ordered as PEP 440: numeric components (missing trailing ones are
/// zeros, so `1.2 == 1.2.0`), then `a < b < rc < final`.
#[derive(Debug, Clone)]
pub struct ReleaseVersion {
    text: String,
    release: Vec<u64>,
    pre: Option<(PreRelease, u64)>,
}

impl ReleaseVersion {
    /// Parses `1.2.0`, `v1.2.0`, `1.2.0a1`, `v2.0rc3`... exactly what the CI
    /// tag regex accepts (after the optional leading `v`). Anything else is
    /// [`Error::InvalidVersion`] with what is expected.
    pub fn parse(input: &str) -> Result<ReleaseVersion, Error> {
        let bad = |why: &str| Error::InvalidVersion {
            version: input.to_string(),
            why: why.to_string(),
        };
        let s = input.strip_prefix('v').unwrap_or(input);
        if s.is_empty() {
            return Err(bad("empty"));
        }
        // Split the numeric release from the pre-release suffix.
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (numbers, suffix) = s.split_at(end);
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.len() < 2 {
            return Err(bad("needs at least two numeric components (e.g. 1.2.0)"));
        }
        let mut release = Vec::with_capacity(parts.len());
        for p in &parts {
            if p.is_empty() {
                return Err(bad("empty numeric component"));
            }
            release.push(p.parse::<u64>().map_err(|_| bad("component too large"))?);
        }
        let pre = if suffix.is_empty() {
            None
        } else {
            let (kind, n) = if let Some(n) = suffix.strip_prefix("rc") {
                (PreRelease::Rc, n)
            } else if let Some(n) = suffix.strip_prefix('a') {
                (PreRelease::Alpha, n)
            } else if let Some(n) = suffix.strip_prefix('b') {
                (PreRelease::Beta, n)
            } else {
                return Err(bad("only a<N>, b<N> or rc<N> may follow the numbers"));
            };
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("the pre-release needs a number (a1, b2, rc1)"));
            }
            Some((kind, n.parse::<u64>().map_err(|_| bad("number too large"))?))
        };
        Ok(ReleaseVersion {
            text: s.to_string(),
            release,
            pre,
        })
    }

    /// The version as given, without `v` (`1.2.0rc1`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The git tag: `v` + version (`v1.2.0rc1`).
    pub fn tag_name(&self) -> String {
        format!("v{}", self.text)
    }

    /// The numeric components (`[1, 2, 0]`).
    pub fn release(&self) -> &[u64] {
        &self.release
    }

    /// The pre-release phase and number, if any.
    pub fn pre(&self) -> Option<(PreRelease, u64)> {
        self.pre
    }

    /// The upstream part of the Debian version packaging this release:
    /// pre-releases sort before the final release with `~`
    /// (`1.2.0rc1` -> `1.2.0~rc1`).
    pub fn debian_upstream(&self) -> String {
        let numbers: Vec<String> = self.release.iter().map(u64::to_string).collect();
        match self.pre {
            None => numbers.join("."),
            Some((k, n)) => format!("{}~{}{n}", numbers.join("."), k.as_str()),
        }
    }

    /// Parses the upstream part of a Debian version (`1.2.0`, `1.2.0~rc1`,
    /// `1.2.0rc1`); `None` when it is not a release version.
    pub fn from_debian_upstream(upstream: &str) -> Option<ReleaseVersion> {
        ReleaseVersion::parse(&upstream.replacen('~', "", 1)).ok()
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for ReleaseVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.release.len().max(other.release.len());
        for i in 0..n {
            let a = self.release.get(i).copied().unwrap_or(0);
            let b = other.release.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (self.pre, other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(&b),
        }
    }
}

impl PartialOrd for ReleaseVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ReleaseVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ReleaseVersion {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ReleaseVersion {
        ReleaseVersion::parse(s).unwrap()
    }

    #[test]
    fn accepts_what_the_ci_regex_accepts() {
        for ok in [
            "1.2",
            "1.2.0",
            "v1.2.0",
            "10.20.30.40",
            "1.2.0a1",
            "1.2.0b12",
            "v2.0rc3",
        ] {
            let parsed = v(ok);
            assert_eq!(
                parsed.tag_name(),
                format!("v{}", ok.trim_start_matches('v'))
            );
        }
        for bad in [
            "",
            "v",
            "1",
            "v1",
            "1.",
            ".1",
            "1..2",
            "1.2.0-rc1",
            "1.2.0.rc1",
            "1.2.0c1",
            "1.2.0rc",
            "1.2.0a",
            "1.2.0.post1",
            "1.2.0dev1",
            "vv1.2",
            "1.2 ",
            "1.2.0rc1a",
            "1.x",
        ] {
            let e = ReleaseVersion::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn pep440_order() {
        let sorted = [
            "1.1.0", "1.1.9", "1.2.0a1", "1.2.0a2", "1.2.0b1", "1.2.0rc1", "1.2.0rc2", "1.2.0",
            "1.2.1", "1.10.0", "2.0a1", "2.0",
        ];
        for w in sorted.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
            assert!(v(w[1]) > v(w[0]));
        }
        assert_eq!(v("1.2"), v("1.2.0"));
        assert_eq!(v("1.2.0rc1"), v("v1.2.0rc1"));
        assert!(v("1.2.0.1") > v("1.2"));
    }

    #[test]
    fn debian_upstream_round_trip() {
        assert_eq!(v("1.2.0").debian_upstream(), "1.2.0");
        assert_eq!(v("1.2.0rc1").debian_upstream(), "1.2.0~rc1");
        assert_eq!(
            ReleaseVersion::from_debian_upstream("1.2.0~rc1").unwrap(),
            v("1.2.0rc1")
        );
        assert!(ReleaseVersion::from_debian_upstream("1.2.0+dfsg").is_none());
    }
}
