//! The publication gate: is a module release on the package index and in
//! the Debian repository yet?
//!
//! A [`Channel`] is where CI publishes: a PyPI-style simple index
//! ([`Channel::Pypi`]: the project page `INDEX/<normalised name>/`, PEP 691
//! JSON asked first, PEP 503 HTML understood too; published when a file,
//! sdist or wheel, carries the version) or a Debian repository
//! ([`Channel::Apt`]: `dists/<suite>/main/binary-<arch>/Packages[.gz]` as
//! reprepro writes them, or a flat repository's `Packages[.gz]` at the root
//! when no suite is given; published when `python3-<module>` is there at a
//! version whose upstream part is the release).
//!
//! [`Checker::check`] looks once and says [`Status::Published`],
//! [`Status::Missing`] (a 404 project page is "not yet") or
//! [`Status::Unreachable`] (connection error, HTTP 5xx: keep waiting but say
//! so). [`wait`] polls every channel still missing until all are published
//! or the timeout passes ([`WaitPolicy`]), reporting each change of status
//! (and an unchanged one again every minute).

use crate::{Error, Module, ReleaseVersion};
use serde::Serialize;
use std::io::Read;
use std::time::{Duration, Instant};

/// Where a release gets published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Channel {
    /// A PyPI-style simple index, e.g. `https://pypi.org/simple/`.
    Pypi {
        /// The index URL (the `simple/` root).
        index: String,
    },
    /// A Debian repository.
    Apt {
        /// The repository root URL.
        url: String,
        /// The suite (`bookworm-swh`): `dists/<suite>/main/binary-<arch>/`;
        /// `None`: a flat repository (`Packages` at the root).
        suite: Option<String>,
        /// The architecture of the binary index (`amd64`; `all` packages are
        /// listed in every architecture's index).
        arch: String,
    },
}

fn check_url(url: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::InvalidUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("expected http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    Ok(())
}

fn check_word(what: &str, s: &str) -> Result<(), Error> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+~".contains(&b))
        || s.starts_with('.')
    {
        return Err(Error::InvalidUrl {
            url: s.to_string(),
            why: format!("not a valid {what} name"),
        });
    }
    Ok(())
}

impl Channel {
    /// A package index channel; the URL must be http(s).
    pub fn pypi(index: &str) -> Result<Channel, Error> {
        check_url(index)?;
        Ok(Channel::Pypi {
            index: index.to_string(),
        })
    }

    /// A Debian repository channel; `suite` `None` for a flat repository;
    /// `arch` defaults to `amd64`.
    pub fn apt(url: &str, suite: Option<&str>, arch: Option<&str>) -> Result<Channel, Error> {
        check_url(url)?;
        if let Some(s) = suite {
            check_word("suite", s)?;
        }
        let arch = arch.unwrap_or("amd64");
        check_word("architecture", arch)?;
        Ok(Channel::Apt {
            url: url.to_string(),
            suite: suite.map(str::to_string),
            arch: arch.to_string(),
        })
    }

    /// `pypi` or `apt`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Pypi { .. } => "pypi",
            Channel::Apt { .. } => "apt",
        }
    }

    /// The URLs looked at for `module`, in order (the second is a
    /// fallback: `Packages.gz` when `Packages` is not there).
    pub fn urls(&self, module: &Module) -> Vec<String> {
        match self {
            Channel::Pypi { index } => {
                vec![format!(
                    "{}/{}/",
                    index.trim_end_matches('/'),
                    module.repository()
                )]
            }
            Channel::Apt { url, suite, arch } => {
                let base = url.trim_end_matches('/');
                let dir = match suite {
                    Some(s) => format!("{base}/dists/{s}/main/binary-{arch}"),
                    None => base.to_string(),
                };
                vec![format!("{dir}/Packages"), format!("{dir}/Packages.gz")]
            }
        }
    }

    /// `pypi https://...` / `apt https://... (suite bookworm-swh)`.
    pub fn describe(&self) -> String {
        match self {
            Channel::Pypi { index } => format!("pypi {index}"),
            Channel::Apt {
                url,
                suite: Some(s),
                ..
            } => format!("apt {url} (suite {s})"),
            Channel::Apt { url, .. } => format!("apt {url} (flat)"),
        }
    }
}

/// What one look at a channel found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    /// The release is there.
    Published {
        /// What proves it: the file name on the index, or `package version`.
        evidence: String,
    },
    /// Not there yet.
    Missing {
        /// What was seen instead (versions present, 404...).
        detail: String,
    },
    /// The channel could not be read (connection error, HTTP error).
    Unreachable {
        /// The error.
        detail: String,
    },
}

impl Status {
    /// Whether the release is published there.
    pub fn is_published(&self) -> bool {
        matches!(self, Status::Published { .. })
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Status::Published { evidence } => format!("published ({evidence})"),
            Status::Missing { detail } => format!("not yet published: {detail}"),
            Status::Unreachable { detail } => format!("unreachable, still waiting: {detail}"),
        }
    }
}

/// A channel and what was last seen there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    /// The channel.
    #[serde(flatten)]
    pub channel: Channel,
    /// What was seen.
    #[serde(flatten)]
    pub status: Status,
}

impl ChannelStatus {
    /// The progress line of a wait after `elapsed`: `[  12.3s] MODULE
    /// VERSION on CHANNEL: STATUS` (`release wait` and `ship` alike).
    pub fn progress_line(
        &self,
        elapsed: Duration,
        module: &Module,
        version: &ReleaseVersion,
    ) -> String {
        format!(
            "{} {module} {version} on {}: {}",
            swh_deploy_util::progress::elapsed_prefix(elapsed),
            self.channel.describe(),
            self.status.describe()
        )
    }
}

/// Largest index accepted (a Debian `Packages` file of a big repository is
/// tens of MiB).
const MAX_BODY: u64 = 512 * 1024 * 1024;

/// The result of one GET.
enum Fetched {
    Body { content_type: String, body: Vec<u8> },
    NotFound,
}

/// Looks at channels over HTTP (ureq, rustls) with bounded timeouts.
#[derive(Debug, Clone)]
pub struct Checker {
    agent: ureq::Agent,
    request_timeout: Duration,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new(Duration::from_secs(20))
    }
}

impl Checker {
    /// A checker whose requests each last at most `request_timeout`
    /// (connection at most 10 s).
    pub fn new(request_timeout: Duration) -> Checker {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(request_timeout.min(Duration::from_secs(10))))
            .timeout_global(Some(request_timeout))
            .max_redirects(5)
            .user_agent(concat!("swh-deploy/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Checker {
            agent,
            request_timeout,
        }
    }

    fn get(&self, url: &str, accept: &str, timeout: Duration) -> Result<Fetched, String> {
        let mut resp = self
            .agent
            .get(url)
            .header("Accept", accept)
            .config()
            .timeout_global(Some(timeout.min(self.request_timeout)))
            .build()
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        if status == 404 || status == 410 {
            return Ok(Fetched::NotFound);
        }
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: {e}"))?;
        Ok(Fetched::Body { content_type, body })
    }

    /// Looks once at `channel` for `module` at `version`; each request lasts
    /// at most `timeout` (and the checker's request timeout).
    pub fn check_within(
        &self,
        channel: &Channel,
        module: &Module,
        version: &ReleaseVersion,
        timeout: Duration,
    ) -> Status {
        let timeout = timeout.max(Duration::from_millis(200));
        match channel {
            Channel::Pypi { .. } => {
                let url = &channel.urls(module)[0];
                match self.get(
                    url,
                    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1",
                    timeout,
                ) {
                    Err(detail) => Status::Unreachable { detail },
                    Ok(Fetched::NotFound) => Status::Missing {
                        detail: format!("no project page {url} (404)"),
                    },
                    Ok(Fetched::Body { content_type, body }) => {
                        let text = String::from_utf8_lossy(&body);
                        let files = if content_type.contains("json") || text.trim_start().starts_with('{') {
                            match project_files_json(&text) {
                                Ok(f) => f,
                                Err(e) => {
                                    return Status::Unreachable {
                                        detail: format!("{url}: bad PEP 691 JSON: {e}"),
                                    }
                                }
                            }
                        } else {
                            project_files_html(&text)
                        };
                        pypi_status(url, &files, module, version)
                    }
                }
            }
            Channel::Apt { .. } => {
                let urls = channel.urls(module);
                let mut last = String::new();
                for (i, url) in urls.iter().enumerate() {
                    match self.get(url, "*/*", timeout) {
                        Err(detail) => return Status::Unreachable { detail },
                        Ok(Fetched::NotFound) => last = url.clone(),
                        Ok(Fetched::Body { body, .. }) => {
                            let text = if i == 0 {
                                String::from_utf8_lossy(&body).into_owned()
                            } else {
                                match gunzip(&body) {
                                    Ok(t) => t,
                                    Err(e) => {
                                        return Status::Unreachable {
                                            detail: format!("{url}: {e}"),
                                        }
                                    }
                                }
                            };
                            return apt_status(url, &text, module, version);
                        }
                    }
                }
                Status::Missing {
                    detail: format!("no Packages index at {} nor {last} (404)", urls[0]),
                }
            }
        }
    }

    /// [`Checker::check_within`] with the checker's request timeout.
    pub fn check(&self, channel: &Channel, module: &Module, version: &ReleaseVersion) -> Status {
        self.check_within(channel, module, version, self.request_timeout)
    }
}

fn gunzip(body: &[u8]) -> Result<String, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_BODY)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot gunzip: {e}"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_`, `.` -> `-`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split(['-', '_', '.']).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&part.to_ascii_lowercase());
    }
    out
}

/// The (project, version) a distribution file name carries: wheels
/// `name-version-...whl`, sdists `name-version.tar.gz` / `.zip` /
/// `.tar.bz2`; `None` for other files.
pub fn file_version(filename: &str) -> Option<(String, String)> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        let mut parts = stem.split('-');
        let name = parts.next()?;
        let version = parts.next()?;
        return Some((normalise(name), version.to_string()));
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))?;
    let (name, version) = stem.rsplit_once('-')?;
    Some((normalise(name), version.to_string()))
}

/// File names of a PEP 691 JSON project page (yanked files left out).
pub fn project_files_json(text: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        #[serde(default)]
        yanked: serde_json::Value,
    }
    let page: Page = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(page
        .files
        .into_iter()
        .filter(|f| {
            matches!(
                f.yanked,
                serde_json::Value::Null | serde_json::Value::Bool(false)
            )
        })
        .map(|f| f.filename)
        .collect())
}

/// File names of a PEP 503 HTML project page: the text of each anchor, or
/// the last path segment of its `href` (yanked files, `data-yanked`, left
/// out).
pub fn project_files_html(text: &str) -> Vec<String> {
    let mut files = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(start) = lower[pos..].find("<a").map(|i| pos + i) {
        let after = lower.as_bytes().get(start + 2).copied();
        if !matches!(after, Some(b' ' | b'\t' | b'\n' | b'\r' | b'>')) {
            pos = start + 2;
            continue;
        }
        let Some(tag_end) = tag_end(&lower, start) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a>").map(|i| tag_end + i) else {
            break;
        };
        let attrs = &text[start..tag_end];
        pos = close + 4;
        if attrs.to_ascii_lowercase().contains("data-yanked") {
            continue;
        }
        let inner = unescape(text[tag_end + 1..close].trim());
        if !inner.is_empty() && file_version(&inner).is_some() {
            files.push(inner);
            continue;
        }
        if let Some(href) = attr(attrs, "href") {
            let path = href.split(['#', '?']).next().unwrap_or("");
            let name = unescape(path.rsplit('/').next().unwrap_or(""));
            if !name.is_empty() {
                files.push(name);
            }
        }
    }
    files
}

/// The `>` closing the tag opened at `start`, skipping quoted attribute
/// values (some indexes write `data-requires-python=">=3.9"` unescaped).
fn tag_end(text: &str, start: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, b) in text.bytes().enumerate().skip(start) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let key = format!("{name}=");
    let i = lower.find(&key)? + key.len();
    let rest = &tag[i..];
    let value = match rest.chars().next()? {
        q @ ('"' | '\'') => rest[1..].split(q).next()?,
        _ => rest.split([' ', '>', '\t', '\n']).next()?,
    };
    Some(unescape(value))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn pypi_status(url: &str, files: &[String], module: &Module, version: &ReleaseVersion) -> Status {
    let project = module.repository();
    let mut seen: Vec<ReleaseVersion> = Vec::new();
    for f in files {
        let Some((name, v)) = file_version(f) else {
            continue;
        };
        if name != project {
            continue;
        }
        let Ok(v) = ReleaseVersion::parse(&v) else {
            continue;
        };
        if &v == version {
            return Status::Published {
                evidence: f.clone(),
            };
        }
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.sort();
    let list: Vec<String> = seen.iter().map(ToString::to_string).collect();
    Status::Missing {
        detail: if list.is_empty() {
            format!("no file of {project} on {url}")
        } else {
            format!("{url} has {project} {} only", list.join(", "))
        },
    }
}

/// The `(Package, Version)` pairs of a Debian `Packages` index.
pub fn packages_entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut package = None;
        let mut version = None;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                package = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim().to_string());
            }
        }
        if let (Some(p), Some(v)) = (package, version) {
            out.push((p, v));
        }
    }
    out
}

/// The upstream part of a Debian version: no epoch, no `-revision`
/// (`1:1.2.0-1~swh1~bpo11+1` -> `1.2.0`).
pub fn debian_upstream(version: &str) -> &str {
    let no_epoch = version.split_once(':').map_or(version, |(_, rest)| rest);
    no_epoch.rsplit_once('-').map_or(no_epoch, |(u, _)| u)
}

/// Whether the Debian version `deb` packages the release `version`
/// (`1.2.0-1~swh1`, `1.2.0-1~swh2~bpo11+1`, `1.2.0~rc1-1~swh1`).
pub fn debian_version_matches(deb: &str, version: &ReleaseVersion) -> bool {
    ReleaseVersion::from_debian_upstream(debian_upstream(deb)).is_some_and(|v| &v == version)
}

fn apt_status(url: &str, text: &str, module: &Module, version: &ReleaseVersion) -> Status {
    let package = module.debian_package();
    let versions: Vec<String> = packages_entries(text)
        .into_iter()
        .filter(|(p, _)| *p == package)
        .map(|(_, v)| v)
        .collect();
    if let Some(v) = versions.iter().find(|v| debian_version_matches(v, version)) {
        return Status::Published {
            evidence: format!("{package} {v}"),
        };
    }
    Status::Missing {
        detail: if versions.is_empty() {
            format!("{package} is not in {url}")
        } else {
            format!("{url} has {package} {} only", versions.join(", "))
        },
    }
}

/// How [`wait`] ended.
#[derive(Debug, Clone, Serialize)]
pub struct WaitOutcome {
    /// Every channel published.
    pub published: bool,
    /// The last status of each channel, in the order given.
    pub channels: Vec<ChannelStatus>,
    /// Time spent.
    #[serde(serialize_with = "as_seconds")]
    pub elapsed: Duration,
    /// Rounds of checks made.
    pub rounds: u32,
}

impl WaitOutcome {
    /// The channels not published yet, each as `CHANNEL: STATUS`.
    pub fn missing(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter(|c| !c.status.is_published())
            .map(|c| format!("{}: {}", c.channel.describe(), c.status.describe()))
            .collect()
    }
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// How long and how often [`wait`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between two looks at a channel still missing.
    pub interval: Duration,
    /// Report an unchanged status again after this long (so a long wait
    /// shows it is alive).
    pub reminder: Duration,
}

impl WaitPolicy {
    /// `timeout` and `interval`, with a reminder every minute.
    pub fn new(timeout: Duration, interval: Duration) -> WaitPolicy {
        WaitPolicy {
            timeout,
            interval,
            reminder: Duration::from_secs(60),
        }
    }
}

/// Polls every channel not yet published, every `policy.interval`, until
/// all are published (`published: true`) or `policy.timeout` has passed
/// (`published: false`). A channel once published is not looked at again.
/// `report` is called with the elapsed time and a channel's status on the
/// first look, whenever it changes, and again every `policy.reminder` while
/// it stays the same.
pub fn wait(
    checker: &Checker,
    channels: &[Channel],
    module: &Module,
    version: &ReleaseVersion,
    policy: &WaitPolicy,
    report: &mut dyn FnMut(Duration, &ChannelStatus),
) -> WaitOutcome {
    let start = Instant::now();
    // A timeout too large for the clock is "a century".
    let deadline = start
        .checked_add(policy.timeout)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 86_400));
    let mut last: Vec<Option<Status>> = vec![None; channels.len()];
    let mut reported_at: Vec<Instant> = vec![start; channels.len()];
    let mut rounds = 0;
    loop {
        rounds += 1;
        for (i, channel) in channels.iter().enumerate() {
            if last[i].as_ref().is_some_and(Status::is_published) {
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let status = checker.check_within(channel, module, version, remaining);
            let now = Instant::now();
            if last[i].as_ref() != Some(&status)
                || now.duration_since(reported_at[i]) >= policy.reminder
            {
                report(
                    start.elapsed(),
                    &ChannelStatus {
                        channel: channel.clone(),
                        status: status.clone(),
                    },
                );
                reported_at[i] = now;
            }
            last[i] = Some(status);
        }
        let published = last
            .iter()
            .all(|s| s.as_ref().is_some_and(Status::is_published));
        let now = Instant::now();
        if published || now >= deadline {
            return WaitOutcome {
                published,
                channels: channels
                    .iter()
                    .zip(last)
                    .map(|(c, s)| ChannelStatus {
                        channel: c.clone(),
                        status: s.unwrap_or(Status::Missing {
                            detail: "not looked at".into(),
                        }),
                    })
                    .collect(),
                elapsed: start.elapsed(),
                rounds,
            };
        }
        std::thread::sleep(policy.interval.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_and_what_is_missing() {
        let pypi = ChannelStatus {
            channel: Channel::pypi("https://pypi.example/simple/").unwrap(),
            status: Status::Missing {
                detail: "no 1.2.0 file".into(),
            },
        };
        let module = Module::parse("swh.loader.git").unwrap();
        assert_eq!(
            pypi.progress_line(Duration::from_millis(12345), &module, &v("1.2.0")),
            "[  12.3s] swh.loader.git 1.2.0 on pypi https://pypi.example/simple/: not yet published: no 1.2.0 file"
        );
        let outcome = WaitOutcome {
            published: false,
            channels: vec![pypi],
            elapsed: Duration::from_secs(1),
            rounds: 1,
        };
        assert_eq!(
            outcome.missing(),
            ["pypi https://pypi.example/simple/: not yet published: no 1.2.0 file"]
        );
    }

    fn v(s: &str) -> ReleaseVersion {
        ReleaseVersion::parse(s).unwrap()
    }

    #[test]
    fn file_names() {
        assert_eq!(
            file_version("swh_loader_git-1.2.0-py3-none-any.whl"),
            Some(("swh-loader-git".into(), "1.2.0".into()))
        );
        assert_eq!(
            file_version("swh.loader.git-1.2.0rc1.tar.gz"),
            Some(("swh-loader-git".into(), "1.2.0rc1".into()))
        );
        assert_eq!(file_version("swh.loader.git-1.2.0.whl.metadata"), None);
    }

    #[test]
    fn pep691_json() {
        let page = r#"{"meta":{"api-version":"1.1"},"name":"swh-loader-git","files":[
            {"filename":"swh.loader.git-1.1.0.tar.gz","url":"x","hashes":{}},
            {"filename":"swh_loader_git-1.2.0-py3-none-any.whl","url":"y","hashes":{},"yanked":"bad build"},
            {"filename":"swh_loader_git-1.3.0-py3-none-any.whl","url":"z","hashes":{},"yanked":false}]}"#;
        let files = project_files_json(page).unwrap();
        assert_eq!(
            files,
            [
                "swh.loader.git-1.1.0.tar.gz",
                "swh_loader_git-1.3.0-py3-none-any.whl"
            ]
        );
        let m = Module::parse("swh.loader.git").unwrap();
        assert!(pypi_status("u", &files, &m, &v("1.1.0")).is_published());
        assert!(pypi_status("u", &files, &m, &v("1.1")).is_published());
        assert!(!pypi_status("u", &files, &m, &v("1.2.0")).is_published());
        let missing = pypi_status("u", &files, &m, &v("1.4.0"));
        assert_eq!(
            missing,
            Status::Missing {
                detail: "u has swh-loader-git 1.1.0, 1.3.0 only".into()
            }
        );
    }

    #[test]
    fn pep503_html() {
        let page = "<!DOCTYPE html><html><body>\n\
            <a href=\"../../files/swh_loader_git-1.0.0-py3-none-any.whl#sha256=ab\" data-requires-python=\"&gt;=3.9\">swh_loader_git-1.0.0-py3-none-any.whl</a><br/>\n\
            <A HREF='https://files.example/p/swh.loader.git-1.2.0.tar.gz#sha256=cd'>download</A>\n\
            <a href=\"x/swh_loader_git-1.3.0-py3-none-any.whl\" data-yanked=\"\">swh_loader_git-1.3.0-py3-none-any.whl</a>\n\
            <a href=\"/f/swh_loader_git-1.4.0-py3-none-any.whl\" data-requires-python=\">=3.9\">swh_loader_git-1.4.0-py3-none-any.whl</a>\n\
            <abbr>not a link</abbr></body></html>";
        assert_eq!(
            project_files_html(page),
            [
                "swh_loader_git-1.0.0-py3-none-any.whl",
                "swh.loader.git-1.2.0.tar.gz",
                "swh_loader_git-1.4.0-py3-none-any.whl"
            ]
        );
    }

    #[test]
    fn debian_versions() {
        let r = v("1.2.0");
        for ok in [
            "1.2.0-1~swh1",
            "1.2.0-1~swh2~bpo11+1",
            "1:1.2.0-1~swh1",
            "1.2-1~swh1",
        ] {
            assert!(debian_version_matches(ok, &r), "{ok}");
        }
        for no in ["1.2.1-1~swh1", "1.2.0~rc1-1~swh1", "1.20-1~swh1", "garbage"] {
            assert!(!debian_version_matches(no, &r), "{no}");
        }
        assert!(debian_version_matches("1.2.0~rc1-1~swh1", &v("1.2.0rc1")));
        let text = "Package: python3-swh.core\nVersion: 1.2.0-1~swh1\n\nPackage: python3-swh.loader.git\nArchitecture: all\nVersion: 1.1.0-1~swh1\n\nPackage: python3-swh.loader.git\nVersion: 1.2.0-1~swh1~bpo11+1\n";
        let m = Module::parse("swh-loader-git").unwrap();
        assert_eq!(
            apt_status("u", text, &m, &r),
            Status::Published {
                evidence: "python3-swh.loader.git 1.2.0-1~swh1~bpo11+1".into()
            }
        );
        assert_eq!(
            apt_status("u", text, &m, &v("1.3.0")),
            Status::Missing {
                detail: "u has python3-swh.loader.git 1.1.0-1~swh1, 1.2.0-1~swh1~bpo11+1 only"
                    .into()
            }
        );
    }

    #[test]
    fn channel_urls() {
        let m = Module::parse("swh.loader.git").unwrap();
        assert_eq!(
            Channel::pypi("http://h/simple").unwrap().urls(&m),
            ["http://h/simple/swh-loader-git/"]
        );
        assert_eq!(
            Channel::apt("http://h/debian/", Some("bookworm-swh"), None)
                .unwrap()
                .urls(&m),
            [
                "http://h/debian/dists/bookworm-swh/main/binary-amd64/Packages",
                "http://h/debian/dists/bookworm-swh/main/binary-amd64/Packages.gz"
            ]
        );
        assert!(Channel::pypi("ftp://h/").is_err());
        assert!(Channel::apt("http://h/", Some("../x"), None).is_err());
    }
}
