//! `debian/changelog`: the top entry, the next version, a new entry.
//!
//! The format (Debian Policy 4.4, `deb-changelog(5)`):
//!
//! ```text
//! swh-loader-git (1.1.0-1~swh2) unstable-swh; urgency=medium
//!
//!   * Add missing dependency on python3-swh.core
//!
//!  -- Jane Doe <jane@example.org>  Thu, 26 Nov 2026 15:04:05 +0100
//!
//! ```

use crate::DebianVersion;
use crate::{Error, ParseError};
use std::fmt;
use std::path::{Path, PathBuf};

/// The maintainer of an entry: `Name <email>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintainer {
    /// Full name.
    pub name: String,
    /// Email address.
    pub email: String,
}

impl fmt::Display for Maintainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

impl Maintainer {
    /// Checks a name and address for the trailer line: non-empty, one line,
    /// no `<`/`>` in the name, an address with one `@` and no spaces.
    pub fn new(name: &str, email: &str) -> Result<Maintainer, Error> {
        let name = name.trim();
        let email = email.trim();
        if name.is_empty() || name.contains(['<', '>', '\n', '\r']) {
            return Err(Error::Maintainer(format!(
                "invalid maintainer name {name:?}: it must be one non-empty line without `<` or `>`"
            )));
        }
        if email.matches('@').count() != 1
            || email.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
            || email.starts_with('@')
            || email.ends_with('@')
        {
            return Err(Error::Maintainer(format!(
                "invalid maintainer email {email:?}: expected one address like name@example.org"
            )));
        }
        Ok(Maintainer {
            name: name.to_string(),
            email: email.to_string(),
        })
    }

    /// The maintainer the way `dch` finds it: name from `DEBFULLNAME`, the
    /// name part of `DEBEMAIL="Name <email>"`, `NAME`, the name part of
    /// `EMAIL`, then `git config user.name`; email from `DEBEMAIL`, `EMAIL`,
    /// then `git config user.email`. `env` looks a variable up (empty values
    /// count as unset); `git_config` looks a git configuration key up.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        git_config: impl Fn(&str) -> Option<String>,
    ) -> Result<Maintainer, Error> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let debemail = get("DEBEMAIL").map(|v| split_address(&v));
        let email_var = get("EMAIL").map(|v| split_address(&v));
        let name = get("DEBFULLNAME")
            .or_else(|| debemail.as_ref().and_then(|(n, _)| n.clone()))
            .or_else(|| get("NAME"))
            .or_else(|| email_var.as_ref().and_then(|(n, _)| n.clone()))
            .or_else(|| git_config("user.name").filter(|v| !v.trim().is_empty()));
        let email = debemail
            .map(|(_, e)| e)
            .or_else(|| email_var.map(|(_, e)| e))
            .or_else(|| git_config("user.email").filter(|v| !v.trim().is_empty()));
        match (name, email) {
            (Some(n), Some(e)) => Maintainer::new(&n, &e),
            (n, e) => Err(Error::Maintainer(format!(
                "no maintainer {}: set DEBFULLNAME and DEBEMAIL (or NAME and EMAIL, or git config user.name and user.email)",
                match (n, e) {
                    (None, None) => "name and email",
                    (None, _) => "name",
                    _ => "email",
                }
            ))),
        }
    }
}

/// `Name <email>` -> (Some(name), email); `email` -> (None, email).
fn split_address(v: &str) -> (Option<String>, String) {
    let v = v.trim();
    if let (Some(lt), true) = (v.rfind('<'), v.ends_with('>')) {
        let name = v[..lt].trim();
        let email = v[lt + 1..v.len() - 1].trim().to_string();
        ((!name.is_empty()).then(|| name.to_string()), email)
    } else {
        (None, v.to_string())
    }
}

/// One parsed changelog entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Source package name (`swh-loader-git`).
    pub source: String,
    /// Version (`1.1.0-1~swh1`).
    pub version: DebianVersion,
    /// Distributions (usually one: `unstable-swh`, `bookworm-swh`).
    pub distributions: Vec<String>,
    /// The `urgency=` value.
    pub urgency: String,
    /// The change lines between the header and the trailer, without the
    /// blank lines around them.
    pub changes: Vec<String>,
    /// The trailer's maintainer.
    pub maintainer: Maintainer,
    /// The trailer's date, as written (RFC 2822).
    pub date: String,
    /// 1-based line of the header.
    pub line: usize,
}

impl Entry {
    /// The distribution (the first one; swh entries have exactly one).
    pub fn distribution(&self) -> &str {
        &self.distributions[0]
    }
}

/// A `debian/changelog` file: its text and its parsed top entry (the one
/// `dpkg-parsechangelog` reports; older entries are not parsed).
#[derive(Debug, Clone)]
pub struct Changelog {
    /// Where the text came from (for error messages).
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
    /// The top entry.
    pub top: Entry,
}

/// The 1-based column (in characters) of byte offset `byte` of `line`.
fn char_col(line: &str, byte: usize) -> usize {
    line[..byte].chars().count() + 1
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c)
}

fn is_dist_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+-.".contains(c)
}

/// Checks a distribution name (`unstable-swh`, `bookworm-swh`, ...).
pub fn check_distribution(d: &str) -> Result<(), Error> {
    if d.is_empty() || !d.chars().all(is_dist_char) {
        return Err(Error::Version(format!(
            "invalid distribution {d:?}: only letters, digits and `+-.` are allowed"
        )));
    }
    Ok(())
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Checks an RFC 2822 date as written in changelog trailers
/// (`Thu, 26 Nov 2026 15:04:05 +0100`); returns what is wrong.
fn check_date(d: &str) -> Result<(), String> {
    let expected = "expected an RFC 2822 date like `Thu, 26 Nov 2026 15:04:05 +0100`";
    let words: Vec<&str> = d.split_whitespace().collect();
    let [day, dom, month, year, time, zone] = words.as_slice() else {
        return Err(expected.to_string());
    };
    let ok = day.strip_suffix(',').is_some_and(|d| DAYS.contains(&d))
        && (1..=2).contains(&dom.len())
        && dom.chars().all(|c| c.is_ascii_digit())
        && MONTHS.contains(month)
        && year.len() == 4
        && year.chars().all(|c| c.is_ascii_digit())
        && time.len() == 8
        && time.char_indices().all(|(i, c)| {
            if i == 2 || i == 5 {
                c == ':'
            } else {
                c.is_ascii_digit()
            }
        })
        && zone.len() == 5
        && zone.starts_with(['+', '-'])
        && zone[1..].chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(expected.to_string())
    }
}

impl Changelog {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Changelog, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Changelog::parse(path, &text).map_err(Error::Parse)
    }

    /// Parses the top entry of `text`; errors name `path:line:column`.
    pub fn parse(path: &Path, text: &str) -> Result<Changelog, ParseError> {
        let err = |line: usize, column: usize, message: String| ParseError {
            path: path.to_path_buf(),
            line,
            column,
            message,
        };
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return Err(err(
                1,
                1,
                "no changelog entry: expected `source (version) distribution; urgency=medium`"
                    .into(),
            ));
        }
        if lines[0].trim().is_empty() {
            return Err(err(
                1,
                1,
                "found a blank line where the first entry header `source (version) distribution; urgency=medium` was expected"
                    .into(),
            ));
        }
        let header = lines[0];
        let hline = 1;
        // source
        let name_end = header.find(' ').unwrap_or(header.len());
        let source = &header[..name_end];
        if source.is_empty() || !source.chars().all(is_name_char) || source.len() < 2 {
            return Err(err(
                hline,
                1,
                format!(
                    "expected a source package name (lowercase letters, digits, `+-.`) at the start of the entry header, found {source:?}"
                ),
            ));
        }
        if !header[name_end..].starts_with(" (") {
            return Err(err(
                hline,
                name_end + 1,
                "expected ` (version)` after the source package name".into(),
            ));
        }
        let vstart = name_end + 2;
        let Some(vlen) = header[vstart..].find(')') else {
            return Err(err(
                hline,
                vstart + 1,
                "expected `)` closing the version".into(),
            ));
        };
        let vtext = &header[vstart..vstart + vlen];
        let version: DebianVersion = vtext
            .parse()
            .map_err(|e: swh_deploy_site::NameError| err(hline, vstart + 1, e.to_string()))?;
        let after = vstart + vlen + 1;
        let Some(semi) = header[after..].find(';') else {
            return Err(err(
                hline,
                header.chars().count() + 1,
                "expected `; urgency=...` after the distribution".into(),
            ));
        };
        let dists_text = &header[after..after + semi];
        if !dists_text.starts_with([' ', '\t']) {
            return Err(err(
                hline,
                after + 1,
                "expected a space and a distribution after the version".into(),
            ));
        }
        let mut distributions = Vec::new();
        let mut col = after;
        for word in dists_text.split([' ', '\t']) {
            if !word.is_empty() {
                if let Some(bad) = word.chars().position(|c| !is_dist_char(c)) {
                    return Err(err(
                        hline,
                        col + bad + 1,
                        format!("invalid character in distribution {word:?}"),
                    ));
                }
                distributions.push(word.to_string());
            }
            col += word.len() + 1;
        }
        if distributions.is_empty() {
            return Err(err(hline, after + 1, "expected a distribution".into()));
        }
        let kv_start = after + semi + 1;
        let mut urgency = None;
        for kv in header[kv_start..].split(',') {
            let kv = kv.trim();
            if let Some(u) = kv.strip_prefix("urgency=") {
                urgency = Some(u.to_string());
            }
        }
        let Some(urgency) = urgency.filter(|u| !u.is_empty()) else {
            return Err(err(
                hline,
                kv_start + 1,
                "expected `urgency=...` after `;`".into(),
            ));
        };
        // Body up to the trailer.
        let mut j = 1;
        let mut body = Vec::new();
        loop {
            if j == lines.len() {
                return Err(err(
                    j + 1,
                    1,
                    format!(
                        "unexpected end of file: the entry started at line {hline} has no trailer ` -- Name <email>  date`"
                    ),
                ));
            }
            let l = lines[j];
            if l.starts_with(" -- ") {
                break;
            }
            if l.starts_with(" --") || l.starts_with("--") {
                return Err(err(
                    j + 1,
                    1,
                    "malformed trailer: expected ` -- Name <email>  date`".into(),
                ));
            }
            // dpkg: a change line starts with two blanks (`  * item`).
            let indented = l.chars().take(2).filter(|c| c.is_whitespace()).count() == 2;
            if !l.trim().is_empty() && !indented {
                return Err(err(
                    j + 1,
                    1,
                    format!(
                        "expected a change line indented by two spaces (`  * item`) or the trailer ` -- Name <email>  date` of the entry started at line {hline}"
                    ),
                ));
            }
            body.push(l.to_string());
            j += 1;
        }
        while body.first().is_some_and(|l| l.trim().is_empty()) {
            body.remove(0);
        }
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        if body.is_empty() {
            return Err(err(
                j + 1,
                1,
                format!(
                    "found the trailer where change lines (`  * ...`) of the entry started at line {hline} were expected"
                ),
            ));
        }
        let trailer = lines[j];
        let tline = j + 1;
        let (Some(lt), Some(gt)) = (trailer.find(" <"), trailer.find(">")) else {
            return Err(err(tline, 5, "expected `Name <email>` after ` -- `".into()));
        };
        if gt < lt {
            return Err(err(
                tline,
                char_col(trailer, gt),
                "expected `Name <email>`".into(),
            ));
        }
        let name = &trailer[4..lt];
        let email = &trailer[lt + 2..gt];
        let maintainer = Maintainer::new(name, email).map_err(|e| err(tline, 5, e.to_string()))?;
        let rest = &trailer[gt + 1..];
        if !rest.starts_with("  ") || rest[2..].starts_with(' ') {
            return Err(err(
                tline,
                char_col(trailer, gt + 1),
                "expected exactly two spaces between `<email>` and the date".into(),
            ));
        }
        let date = rest[2..].trim_end();
        check_date(date).map_err(|m| err(tline, char_col(trailer, gt + 3), m))?;
        Ok(Changelog {
            path: path.to_path_buf(),
            text: text.to_string(),
            top: Entry {
                source: source.to_string(),
                version,
                distributions,
                urgency,
                changes: body,
                maintainer,
                date: date.to_string(),
                line: hline,
            },
        })
    }

    /// The file's text with `entry` on top.
    pub fn with_entry(&self, entry: &NewEntry) -> String {
        let mut s = entry.render();
        s.push_str(self.text.trim_start_matches(['\n', '\r']));
        s
    }
}

/// A new changelog entry to write on top.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Source package name.
    pub source: String,
    /// The new version.
    pub version: DebianVersion,
    /// The distribution.
    pub distribution: String,
    /// The urgency (`medium`).
    pub urgency: String,
    /// One `  * ` item per message.
    pub messages: Vec<String>,
    /// The trailer's maintainer.
    pub maintainer: Maintainer,
    /// RFC 2822 date (see [`rfc2822_now`]).
    pub date: String,
}

impl NewEntry {
    /// The entry in Debian format, ending with a blank line.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} ({}) {}; urgency={}\n\n",
            self.source, self.version, self.distribution, self.urgency
        );
        for m in &self.messages {
            let mut first = true;
            for para in m.lines() {
                for l in wrap(para.trim(), 76) {
                    s.push_str(if first { "  * " } else { "    " });
                    s.push_str(&l);
                    s.push('\n');
                    first = false;
                }
            }
        }
        s.push('\n');
        s.push_str(&format!(" -- {}  {}\n\n", self.maintainer, self.date));
        s
    }
}

/// Word-wraps `text` at `width` columns (long words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// The current local time as changelog trailers write it
/// (`Thu, 26 Nov 2026 15:04:05 +0100`, local offset, like `date -R`).
pub fn rfc2822_now() -> String {
    chrono::Local::now()
        .format("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// Debian backports: `~bpoK+M` version suffixes and the `<codename>-swh`
/// distributions they go to.
pub const BACKPORTS: [(u32, &str); 4] = [
    (10, "buster"),
    (11, "bullseye"),
    (12, "bookworm"),
    (13, "trixie"),
];

/// The swh revision parts of a version: (prefix up to `~swh`, N, backport
/// suffix like `~bpo12+1` or "").
fn swh_parts(v: &DebianVersion) -> Option<(String, u64, String)> {
    let r = v.revision();
    let at = r.rfind("~swh")?;
    let after = &r[at + 4..];
    let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().ok()?;
    let suffix = &after[digits.len()..];
    if !(suffix.is_empty() || backport_of_suffix(suffix).is_some()) {
        return None;
    }
    let text = v.as_str();
    let prefix = &text[..text.len() - r.len() + at + 4];
    Some((prefix.to_string(), n, suffix.to_string()))
}

/// `~bpoK+M` -> K.
fn backport_of_suffix(s: &str) -> Option<u32> {
    let rest = s.strip_prefix("~bpo")?;
    let (k, m) = rest.split_once('+')?;
    if k.is_empty() || m.is_empty() || !m.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    k.parse().ok()
}

/// The backport number K of a `...~bpoK+M` version, if any.
pub fn backport_of(v: &DebianVersion) -> Option<u32> {
    let r = v.revision();
    let at = r.rfind("~bpo")?;
    backport_of_suffix(&r[at..])
}

/// The next version of a packaging fix: `X-1~swhN` -> `X-1~swh(N+1)`,
/// `X-1~swhN~bpoK+1` -> `X-1~swh(N+1)~bpoK+1`. Other versions cannot be
/// bumped automatically (give the version explicitly).
pub fn next_version(v: &DebianVersion) -> Result<DebianVersion, Error> {
    let Some((prefix, n, suffix)) = swh_parts(v) else {
        return Err(Error::Version(format!(
            "cannot bump version {v}: its Debian revision does not end in ~swhN or ~swhN~bpoK+1 (give the version explicitly)"
        )));
    };
    let next = format!("{prefix}{}{suffix}", n + 1);
    next.parse()
        .map_err(|e: swh_deploy_site::NameError| Error::Version(e.to_string()))
}

/// The distribution a version belongs to: `<codename>-swh` for a
/// `~bpoK+M` backport, `unstable-swh` otherwise.
pub fn distribution_for(v: &DebianVersion) -> Result<String, Error> {
    match backport_of(v) {
        None => Ok("unstable-swh".to_string()),
        Some(k) => BACKPORTS
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, c)| format!("{c}-swh"))
            .ok_or_else(|| {
                Error::Version(format!(
                    "version {v}: unknown backport ~bpo{k} (known: {})",
                    BACKPORTS
                        .iter()
                        .map(|(n, c)| format!("bpo{n} = {c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
    }
}

/// The packaging branch of a distribution: `debian/<distribution>`
/// (`debian/unstable-swh`, `debian/bookworm-swh`).
pub fn packaging_branch(distribution: &str) -> String {
    format!("debian/{distribution}")
}

/// Checks that a version and a distribution agree (a backport goes to its
/// codename's `-swh` suite, anything else to `unstable-swh`).
pub fn check_version_distribution(v: &DebianVersion, distribution: &str) -> Result<(), Error> {
    let want = distribution_for(v)?;
    if want != distribution {
        return Err(Error::Version(format!(
            "version {v} belongs to distribution {want}, not {distribution}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DebianVersion {
        s.parse().unwrap()
    }

    const TWO: &str = "\
swh-loader-git (1.1.0-1~swh1) unstable-swh; urgency=medium

  * New upstream release 1.1.0
  * Second line

 -- Software Heritage autobuilder <jenkins@example.org>  Mon, 02 Nov 2026 10:00:00 +0000

swh-loader-git (1.0.0-1~swh1) unstable-swh; urgency=medium

  * New upstream release 1.0.0

 -- Software Heritage autobuilder <jenkins@example.org>  Sun, 01 Nov 2026 10:00:00 +0000
";

    fn parse(t: &str) -> Result<Changelog, ParseError> {
        Changelog::parse(Path::new("debian/changelog"), t)
    }

    #[test]
    fn parses_top_entry() {
        let c = parse(TWO).unwrap();
        let e = &c.top;
        assert_eq!(e.source, "swh-loader-git");
        assert_eq!(e.version.as_str(), "1.1.0-1~swh1");
        assert_eq!(e.distribution(), "unstable-swh");
        assert_eq!(e.urgency, "medium");
        assert_eq!(
            e.changes,
            vec!["  * New upstream release 1.1.0", "  * Second line"]
        );
        assert_eq!(e.maintainer.name, "Software Heritage autobuilder");
        assert_eq!(e.maintainer.email, "jenkins@example.org");
        assert_eq!(e.date, "Mon, 02 Nov 2026 10:00:00 +0000");
        assert_eq!(c.top.line, 1);
    }

    fn error_at(t: &str) -> (usize, usize, String) {
        let e = parse(t).unwrap_err();
        assert!(e
            .to_string()
            .starts_with(&format!("debian/changelog:{}:{}: ", e.line, e.column)));
        (e.line, e.column, e.message)
    }

    #[test]
    fn errors_name_line_and_column() {
        let pos = |t: &str| {
            let (l, c, _) = error_at(t);
            (l, c)
        };
        let t = TWO.replacen("(1.1.0-1~swh1)", "(1.1.0-1~sw h1)", 1);
        assert_eq!(pos(&t), (1, 17));
        let t = TWO.replacen("(1.1.0-1~swh1)", "(a1.1.0-1~swh1)", 1);
        let (l, c, m) = error_at(&t);
        assert_eq!((l, c), (1, 17), "{m}");
        assert!(m.contains("must start with a digit"), "{m}");
        let t = TWO.replacen("swh-loader-git (1.1.0", "Swh-loader-git (1.1.0", 1);
        assert_eq!(pos(&t), (1, 1));
        let t = TWO.replacen("; urgency=medium", " urgency=medium", 1);
        assert_eq!(pos(&t), (1, 58));
        let t = TWO.replacen("; urgency=medium", ";", 1);
        assert_eq!(pos(&t), (1, 44));
        let t = TWO.replacen("unstable-swh;", "unstable_swh;", 1);
        assert_eq!(pos(&t), (1, 39));
        let t = TWO.replacen(">  Mon, 02", "> Mon, 02", 1);
        assert_eq!(pos(&t), (6, 56));
        // Columns count characters, not bytes.
        let t = TWO.replacen(
            "Software Heritage autobuilder <jenkins@example.org>  Mon, 02 Nov",
            "Stéphane Müller <sm@example.org>  Mon, 02 Nvb",
            1,
        );
        assert_eq!(pos(&t), (6, 39));
        let t = TWO.replacen("Mon, 02 Nov", "Mon, 02 Nvb", 1);
        let (l, c, m) = error_at(&t);
        assert_eq!((l, c), (6, 58));
        assert!(m.contains("RFC 2822"));
        let t = TWO.replacen("  * Second line", "* Second line", 1);
        assert_eq!(pos(&t), (4, 1));
        let t = "swh-x (1.0-1~swh1) unstable-swh; urgency=medium\n\n  * x\n";
        let (l, c, m) = error_at(t);
        assert_eq!((l, c), (4, 1));
        assert!(m.contains("no trailer"));
        assert_eq!(pos("\n\n"), (1, 1));
        assert_eq!(pos(""), (1, 1));
        assert_eq!(pos(&format!("\n{TWO}")), (1, 1));
        let t = TWO.replacen("  * New upstream release 1.1.0\n  * Second line\n", "", 1);
        let (l, c, m) = error_at(&t);
        assert_eq!((l, c), (4, 1));
        assert!(m.contains("change lines"), "{m}");
    }

    #[test]
    fn bump_rules() {
        let n = |s: &str| next_version(&v(s)).unwrap().to_string();
        assert_eq!(n("1.1.0-1~swh1"), "1.1.0-1~swh2");
        assert_eq!(n("0.29.0-1~swh9"), "0.29.0-1~swh10");
        assert_eq!(n("1.1.0-1~swh3~bpo11+1"), "1.1.0-1~swh4~bpo11+1");
        assert_eq!(n("2:1.1.0-1~swh1~bpo12+1"), "2:1.1.0-1~swh2~bpo12+1");
        for s in ["1.1.0-1~swh1", "1.1.0-1~swh3~bpo11+1", "1:0.1-1~swh1"] {
            assert!(next_version(&v(s)).unwrap() > v(s));
        }
        for bad in ["1.1.0-1", "1.1.0", "1.1.0-1~swh", "1.1.0-1~swh1+b1"] {
            let e = next_version(&v(bad)).unwrap_err().to_string();
            assert!(e.contains("give the version explicitly"), "{e}");
        }
    }

    #[test]
    fn distributions_and_branches() {
        assert_eq!(distribution_for(&v("1.0-1~swh1")).unwrap(), "unstable-swh");
        assert_eq!(
            distribution_for(&v("1.0-1~swh1~bpo10+1")).unwrap(),
            "buster-swh"
        );
        assert_eq!(
            distribution_for(&v("1.0-1~swh1~bpo11+1")).unwrap(),
            "bullseye-swh"
        );
        assert_eq!(
            distribution_for(&v("1.0-1~swh1~bpo12+1")).unwrap(),
            "bookworm-swh"
        );
        assert!(distribution_for(&v("1.0-1~swh1~bpo9+1")).is_err());
        assert!(check_version_distribution(&v("1.0-1~swh1~bpo12+1"), "unstable-swh").is_err());
        assert!(check_version_distribution(&v("1.0-1~swh1"), "unstable-swh").is_ok());
        assert_eq!(packaging_branch("bookworm-swh"), "debian/bookworm-swh");
    }

    #[test]
    fn render_and_reparse() {
        let c = parse(TWO).unwrap();
        let e = NewEntry {
            source: c.top.source.clone(),
            version: next_version(&c.top.version).unwrap(),
            distribution: "unstable-swh".into(),
            urgency: "medium".into(),
            messages: vec![
                "Add missing dependency on python3-swh.core".into(),
                "A long message that goes on and on about the many details of the fix, which are numerous and need wrapping".into(),
            ],
            maintainer: Maintainer::new("Jane Doe", "jane@example.org").unwrap(),
            date: "Thu, 26 Nov 2026 15:04:05 +0100".into(),
        };
        let text = c.with_entry(&e);
        // Exactly Debian's layout: header, blank, items, blank, trailer, blank.
        let two = NewEntry {
            messages: vec!["One".into(), "Two".into()],
            ..e.clone()
        };
        assert_eq!(
            two.render(),
            "swh-loader-git (1.1.0-1~swh2) unstable-swh; urgency=medium\n\n  * One\n  * Two\n\n -- Jane Doe <jane@example.org>  Thu, 26 Nov 2026 15:04:05 +0100\n\n"
        );
        assert!(text.starts_with(
            "swh-loader-git (1.1.0-1~swh2) unstable-swh; urgency=medium\n\n  * Add missing dependency on python3-swh.core\n  * A long message"
        ));
        assert!(text.ends_with(TWO));
        assert!(text.contains(" -- Jane Doe <jane@example.org>  Thu, 26 Nov 2026 15:04:05 +0100\n\nswh-loader-git (1.1.0-1~swh1)"));
        assert!(e.render().lines().all(|l| l.len() <= 80));
        let again = parse(&text).unwrap();
        assert_eq!(again.top.version.as_str(), "1.1.0-1~swh2");
        assert_eq!(again.top.changes.len(), 3);
        assert!(again.top.changes[2].starts_with("    "));
        check_date(&rfc2822_now()).unwrap();
    }

    #[test]
    fn maintainer_sources() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let git = |k: &str| match k {
            "user.name" => Some("Git User".to_string()),
            "user.email" => Some("git@example.org".to_string()),
            _ => None,
        };
        let nogit = |_: &str| None;
        let m = Maintainer::resolve(
            env(&[
                ("DEBFULLNAME", "Deb Full"),
                ("DEBEMAIL", "deb@example.org"),
                ("NAME", "N"),
            ]),
            git,
        )
        .unwrap();
        assert_eq!(m.to_string(), "Deb Full <deb@example.org>");
        let m = Maintainer::resolve(env(&[("DEBEMAIL", "In Addr <a@example.org>")]), git).unwrap();
        assert_eq!(m.to_string(), "In Addr <a@example.org>");
        let m =
            Maintainer::resolve(env(&[("NAME", "N N"), ("EMAIL", "n@example.org")]), git).unwrap();
        assert_eq!(m.to_string(), "N N <n@example.org>");
        let m = Maintainer::resolve(env(&[("DEBEMAIL", "")]), git).unwrap();
        assert_eq!(m.to_string(), "Git User <git@example.org>");
        let m = Maintainer::resolve(env(&[("DEBFULLNAME", "Only Name")]), git).unwrap();
        assert_eq!(m.to_string(), "Only Name <git@example.org>");
        let e = Maintainer::resolve(env(&[]), nogit)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DEBFULLNAME and DEBEMAIL"), "{e}");
        let e = Maintainer::resolve(env(&[("DEBFULLNAME", "X")]), nogit)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no maintainer email"), "{e}");
        assert!(Maintainer::resolve(
            env(&[("DEBFULLNAME", "X"), ("DEBEMAIL", "not-an-address")]),
            nogit
        )
        .is_err());
    }
}
