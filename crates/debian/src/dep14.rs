//! DEP-14 tag names (<https://dep-team.pages.debian.net/deps/dep14/>), as
//! git-buildpackage computes them: `debian/<version>` for a Debian release,
//! `debian/upstream/<version>` for an upstream import, with the version
//! mangled so git accepts it as a ref name:
//!
//! - `~` becomes `_` (`0.29.0-1~swh1` -> `0.29.0-1_swh1`);
//! - `:` becomes `%` (`1:2.0-1` -> `1%2.0-1`);
//! - a `.` followed by another `.`, by the end, or by a final `lock` gets a
//!   `#` after it (`1..2` -> `1.#.2`, `1.` -> `1.#`, `1.lock` -> `1.#lock`).
//!
//! Debian versions contain none of `_`, `%`, `#`, so the mangling is
//! reversible: [`dep14_version`] gives the version back.

use crate::DebianVersion;
use crate::Error;

/// The prefix of Debian release tags.
pub const DEBIAN_TAG_PREFIX: &str = "debian/";
/// The prefix of upstream import tags.
pub const UPSTREAM_TAG_PREFIX: &str = "debian/upstream/";

/// Mangles a version for use in a git ref name (DEP-14, as gbp's
/// `_sanitize_version`).
pub fn dep14_mangle(version: &str) -> String {
    let chars: Vec<char> = version.chars().collect();
    let mut out = String::with_capacity(version.len() + 2);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '~' => out.push('_'),
            ':' => out.push('%'),
            '.' => {
                out.push('.');
                let rest: String = chars[i + 1..].iter().collect();
                if rest.is_empty() || rest.starts_with('.') || rest == "lock" {
                    out.push('#');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`dep14_mangle`].
pub fn dep14_unmangle(mangled: &str) -> String {
    mangled
        .replace(".#", ".")
        .replace('_', "~")
        .replace('%', ":")
}

/// The DEP-14 tag of a Debian release: `debian/<mangled version>`, e.g.
/// `debian/0.29.0-1_swh1` for `0.29.0-1~swh1`.
pub fn dep14_tag(version: &DebianVersion) -> String {
    format!("{DEBIAN_TAG_PREFIX}{}", dep14_mangle(version.as_str()))
}

/// The DEP-14 tag of an upstream import: `debian/upstream/<mangled version>`.
pub fn dep14_upstream_tag(upstream: &str) -> String {
    format!("{UPSTREAM_TAG_PREFIX}{}", dep14_mangle(upstream))
}

/// The Debian version a DEP-14 release tag names (the inverse of
/// [`dep14_tag`]); refuses upstream import tags and anything that is not a
/// `debian/<version>` tag with a valid version.
pub fn dep14_version(tag: &str) -> Result<DebianVersion, Error> {
    let tag = tag.strip_prefix("refs/tags/").unwrap_or(tag);
    if tag.starts_with(UPSTREAM_TAG_PREFIX) {
        return Err(Error::Tag(format!(
            "`{tag}` is an upstream import tag, not a Debian release tag"
        )));
    }
    let Some(mangled) = tag.strip_prefix(DEBIAN_TAG_PREFIX) else {
        return Err(Error::Tag(format!(
            "`{tag}` is not a DEP-14 Debian release tag (debian/<version>)"
        )));
    };
    let version: DebianVersion = dep14_unmangle(mangled)
        .parse()
        .map_err(|e| Error::Tag(format!("`{tag}`: {e}")))?;
    if dep14_tag(&version) != tag {
        return Err(Error::Tag(format!(
            "`{tag}` is not the DEP-14 form of version {version} (that is `{}`)",
            dep14_tag(&version)
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DebianVersion {
        s.parse().unwrap()
    }

    #[test]
    fn documented_examples() {
        // swh-facts / DEP-14 / gbp's doctests.
        assert_eq!(dep14_tag(&v("0.29.0-1~swh1")), "debian/0.29.0-1_swh1");
        assert_eq!(
            dep14_tag(&v("1:0.29.0-1~swh1~bpo12+1")),
            "debian/1%0.29.0-1_swh1_bpo12+1"
        );
        assert_eq!(dep14_mangle("0:0~0"), "0%0_0");
        assert_eq!(dep14_mangle("0.0.0"), "0.0.0");
        assert_eq!(dep14_mangle("0....0"), "0.#.#.#.0");
        assert_eq!(dep14_mangle("0.lock"), "0.#lock");
        assert_eq!(dep14_mangle("0.locks"), "0.locks");
        assert_eq!(dep14_mangle("1.2."), "1.2.#");
        assert_eq!(dep14_upstream_tag("1.1.0"), "debian/upstream/1.1.0");
        assert_eq!(dep14_upstream_tag("1.1.0~rc1"), "debian/upstream/1.1.0_rc1");
    }

    #[test]
    fn inverse() {
        for s in [
            "0.29.0-1~swh1",
            "1.1.0-1~swh2~bpo11+1",
            "2:1.0..3.-1~swh1",
            "1.lock-1",
            "3.0.lock",
        ] {
            let tag = dep14_tag(&v(s));
            assert_eq!(dep14_version(&tag).unwrap().as_str(), s, "{tag}");
            assert_eq!(
                dep14_version(&format!("refs/tags/{tag}")).unwrap().as_str(),
                s
            );
        }
        assert!(dep14_version("debian/upstream/1.0").is_err());
        assert!(dep14_version("v1.0").is_err());
        assert!(dep14_version("debian/").is_err());
        // Not produced by dep14_tag: a raw `~` is not the DEP-14 form.
        assert!(dep14_version("debian/1.0-1~swh1").is_err());
    }
}
