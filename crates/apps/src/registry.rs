//! The OCI distribution API, just what swh-deploy needs: list an image's
//! tags (`GET /v2/<name>/tags/list`, following `Link: <...>; rel="next"`
//! pagination), with the credentials of the docker config (or containers'
//! auth.json) and their credential helpers. Credentials are never logged
//! nor passed on a command line.

use crate::Error;
use base64::Engine;
use serde::Deserialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A registry prefix such as
/// `container-registry.softwareheritage.org/swh/infra/swh-apps`, optionally
/// with an `http://` scheme for a plain-HTTP registry (loopback test beds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// Repository path prefix, without slashes at either end (may be empty).
    pub prefix: String,
}

impl Registry {
    /// Parses `[http://|https://]host[:port][/prefix]`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (scheme, rest) = if let Some(r) = s.strip_prefix("http://") {
            ("http", r)
        } else if let Some(r) = s.strip_prefix("https://") {
            ("https", r)
        } else {
            ("https", s)
        };
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = |t: &str, extra: &[char]| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(&c))
        };
        if !ok(host, &[':']) || (!prefix.is_empty() && !ok(prefix, &['/'])) {
            return Err(Error::Input(format!(
                "invalid registry {s:?}: expected host[:port]/path"
            )));
        }
        Ok(Registry {
            scheme: scheme.into(),
            host: host.into(),
            prefix: prefix.into(),
        })
    }

    /// Whether the registry talks plain HTTP (so builders must not verify TLS).
    pub fn insecure(&self) -> bool {
        self.scheme == "http"
    }

    /// The repository name of an image inside the registry (`prefix/image`).
    pub fn repository(&self, image: &str) -> String {
        if self.prefix.is_empty() {
            image.to_string()
        } else {
            format!("{}/{image}", self.prefix)
        }
    }

    /// The image reference without tag: `host/prefix/image`.
    pub fn image_ref(&self, image: &str) -> String {
        format!("{}/{}", self.host, self.repository(image))
    }

    /// The value of the Dockerfiles' `REGISTRY` build argument:
    /// `host/prefix/` (with the trailing slash swh-apps' Dockerfiles expect).
    pub fn build_arg(&self) -> String {
        if self.prefix.is_empty() {
            format!("{}/", self.host)
        } else {
            format!("{}/{}/", self.host, self.prefix)
        }
    }

    fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Every tag of `image`, following pagination. `page_size` asks the
    /// registry for pages of that many tags (`?n=`); `None` lets it choose.
    /// A repository the registry does not know has no tags.
    pub fn tags(&self, image: &str, page_size: Option<usize>) -> Result<Vec<String>, Error> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .max_redirects(3)
            .build()
            .into();
        let repo = self.repository(image);
        let mut url = format!("{}/v2/{repo}/tags/list", self.base_url());
        if let Some(n) = page_size {
            url.push_str(&format!("?n={n}"));
        }
        let mut auth: Option<String> = None;
        let mut tags = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > 10_000 {
                return Err(Error::Registry(format!("{url}: too many pages")));
            }
            let mut req = agent.get(&url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            let mut resp = req
                .call()
                .map_err(|e| Error::Registry(format!("GET {url}: {e}")))?;
            let status = resp.status().as_u16();
            if status == 401 && auth.is_none() {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                auth = Some(self.authorize(&agent, &challenge, &url)?);
                continue;
            }
            if status == 404 {
                return Ok(tags);
            }
            if status != 200 {
                let body = resp.body_mut().read_to_string().unwrap_or_default();
                return Err(Error::Registry(format!(
                    "GET {url}: HTTP {status}: {}",
                    body.chars().take(300).collect::<String>()
                )));
            }
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            #[derive(Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_str(
                &resp
                    .body_mut()
                    .read_to_string()
                    .map_err(|e| Error::Registry(format!("GET {url}: {e}")))?,
            )
            .map_err(|e| Error::Registry(format!("GET {url}: bad tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if n.starts_with("http://") || n.starts_with("https://") => url = n,
                Some(n) => url = format!("{}{}", self.base_url(), n),
                None => break,
            }
        }
        Ok(tags)
    }

    /// Answers a 401 challenge: Basic with stored credentials, or Bearer via
    /// the token service (with stored credentials if any, else anonymous).
    fn authorize(&self, agent: &ureq::Agent, challenge: &str, url: &str) -> Result<String, Error> {
        let creds = credentials(&self.host)?;
        let basic = creds.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            return basic.ok_or_else(|| {
                Error::Registry(format!(
                    "GET {url}: the registry wants credentials and none are in the docker config for {}",
                    self.host
                ))
            });
        }
        if !lower.starts_with("bearer") {
            return Err(Error::Registry(format!(
                "GET {url}: unsupported authentication challenge"
            )));
        }
        let params = challenge_params(&challenge[6..]);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm = get("realm")
            .ok_or_else(|| Error::Registry(format!("GET {url}: bearer challenge without realm")))?;
        let mut req = agent.get(&realm);
        if let Some(s) = get("service") {
            req = req.query("service", &s);
        }
        if let Some(s) = get("scope") {
            req = req.query("scope", &s);
        }
        if let Some(b) = &basic {
            req = req.header("Authorization", b);
        }
        let mut resp = req
            .call()
            .map_err(|e| Error::Registry(format!("token from {realm}: {e}")))?;
        if resp.status().as_u16() != 200 {
            return Err(Error::Registry(format!(
                "token from {realm}: HTTP {} (check the credentials of {} in the docker config)",
                resp.status().as_u16(),
                self.host
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_str(
            &resp
                .body_mut()
                .read_to_string()
                .map_err(|e| Error::Registry(format!("token from {realm}: {e}")))?,
        )
        .map_err(|e| Error::Registry(format!("token from {realm}: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| Error::Registry(format!("token from {realm}: no token in answer")))?;
        Ok(format!("Bearer {token}"))
    }
}

/// The target of a `Link: <url>; rel="next"` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (value, after) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match v.find(',') {
                Some(end) => (v[..end].trim().to_string(), &v[end..]),
                None => (v.trim().to_string(), ""),
            }
        };
        out.push((k, value));
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The config files that may hold registry credentials, in lookup order:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn credential_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        v.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
        v.push(PathBuf::from(p).join("containers/auth.json"));
    }
    if let Some(p) = std::env::var_os("DOCKER_CONFIG") {
        v.push(PathBuf::from(p).join("config.json"));
    } else if let Some(h) = std::env::var_os("HOME") {
        v.push(PathBuf::from(h).join(".docker/config.json"));
    }
    v
}

/// Username and secret for `host` from the first config file that knows it:
/// `credHelpers[host]`, else `auths[host].auth`, else `credsStore`.
pub fn credentials(host: &str) -> Result<Option<(String, String)>, Error> {
    #[derive(Deserialize, Default)]
    struct Auth {
        auth: Option<String>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        #[serde(default)]
        auths: std::collections::HashMap<String, Auth>,
        #[serde(default)]
        cred_helpers: std::collections::HashMap<String, String>,
        creds_store: Option<String>,
    }
    for file in credential_files() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let cfg: Config = serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{}: {e}", file.display())))?;
        if let Some(helper) = cfg.cred_helpers.get(host) {
            return helper_get(helper, host).map(Some);
        }
        let entry = cfg.auths.iter().find(|(k, _)| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            k == host || k.split('/').next() == Some(host)
        });
        if let Some((_, Auth { auth: Some(a) })) = entry {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| {
                    Error::Input(format!("{}: bad auth entry for {host}", file.display()))
                })?;
            let s = String::from_utf8_lossy(&decoded).into_owned();
            let (u, p) = s.split_once(':').ok_or_else(|| {
                Error::Input(format!("{}: bad auth entry for {host}", file.display()))
            })?;
            return Ok(Some((u.to_string(), p.to_string())));
        }
        if let Some(store) = &cfg.creds_store {
            return helper_get(store, host).map(Some);
        }
    }
    Ok(None)
}

fn helper_get(helper: &str, host: &str) -> Result<(String, String), Error> {
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::Input(format!(
            "invalid credential helper name {helper:?}"
        )));
    }
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command(format!("{prog}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Command(format!("{prog}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Command(format!("{prog} get {host}: {}", out.status)));
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Command(format!("{prog} get {host}: unreadable answer: {e}")))?;
    Ok((a.username, a.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_registry() {
        let r =
            Registry::parse("container-registry.softwareheritage.org/swh/infra/swh-apps").unwrap();
        assert_eq!(r.scheme, "https");
        assert_eq!(
            r.image_ref("loader_git"),
            "container-registry.softwareheritage.org/swh/infra/swh-apps/loader_git"
        );
        assert_eq!(
            r.build_arg(),
            "container-registry.softwareheritage.org/swh/infra/swh-apps/"
        );
        let r = Registry::parse("http://127.0.0.1:5000/swh/apps/").unwrap();
        assert!(r.insecure());
        assert_eq!(r.repository("x"), "swh/apps/x");
        assert!(Registry::parse("host/a b").is_err());
        assert!(Registry::parse("").is_err());
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link("</v2/a/tags/list?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(next_link("</x>; rel=\"prev\""), None);
    }

    #[test]
    fn bearer_challenge() {
        let p = challenge_params(
            " realm=\"https://gitlab.example/jwt/auth\",service=\"container_registry\",scope=\"repository:a/b:pull\"",
        );
        assert_eq!(
            p[0],
            ("realm".into(), "https://gitlab.example/jwt/auth".into())
        );
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull".into()));
    }
}
