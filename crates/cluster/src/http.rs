//! A small JSON-over-HTTPS client for the Kubernetes and Argo CD APIs
//! (ureq with rustls). Plain `http://` only for loopback servers.

use crate::{Error, Secret};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

/// A client for one API server: base URL, CA, bearer token.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<Secret>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Whether a URL's host is a loopback address (`127.0.0.0/8`, `::1`,
/// `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host == "localhost" {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

impl ApiClient {
    /// A client for `server` (`https://...`, or `http://` on loopback only),
    /// trusting `ca_pem` (PEM certificates) when given, else the system
    /// roots of rustls' platform verifier (webpki roots).
    pub fn new(
        server: &str,
        ca_pem: Option<&[u8]>,
        token: Option<Secret>,
        insecure_skip_tls_verify: bool,
    ) -> Result<ApiClient, Error> {
        let base = server.trim_end_matches('/').to_string();
        if base.starts_with("http://") {
            if !is_loopback_url(&base) {
                return Err(Error::Config(format!(
                    "{base}: plain http is refused for a non-loopback server (tokens would travel in clear); use https"
                )));
            }
        } else if !base.starts_with("https://") {
            return Err(Error::Config(format!(
                "{base}: the server URL must start with https://"
            )));
        }
        let mut tls = TlsConfig::builder();
        if let Some(pem) = ca_pem {
            let mut certs: Vec<Certificate<'static>> = Vec::new();
            for item in parse_pem(pem) {
                match item {
                    Ok(PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Error::Config(format!(
                            "{base}: certificate authority: bad PEM: {e}"
                        )))
                    }
                }
            }
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "{base}: certificate authority holds no certificate"
                )));
            }
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        if insecure_skip_tls_verify {
            tls = tls.disable_verification(true);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(ApiClient { base, token, agent })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET path` (path starts with `/`), parsed as JSON.
    pub fn get(&self, path: &str) -> Result<Value, Error> {
        let url = self.url(path);
        let mut req = self.agent.get(&url).header("Accept", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {}", t.expose()));
        }
        finish(&url, req.call())
    }

    /// `PATCH path` with a JSON body of the given content type.
    pub fn patch(&self, path: &str, content_type: &str, body: &Value) -> Result<Value, Error> {
        let url = self.url(path);
        let mut req = self
            .agent
            .patch(&url)
            .header("Accept", "application/json")
            .header("Content-Type", content_type);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {}", t.expose()));
        }
        finish(&url, req.send(body.to_string()))
    }
}

impl ApiClient {
    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let url = self.url(path);
        let mut req = self
            .agent
            .post(&url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {}", t.expose()));
        }
        finish(&url, req.send(body.to_string()))
    }
}

fn finish(
    url: &str,
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value, Error> {
    let mut resp = r.map_err(|e| Error::Transport {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| Error::Transport {
            url: url.to_string(),
            message: format!("reading the answer: {e}"),
        })?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
            .unwrap_or_else(|| text.chars().take(200).collect());
        let hint = if status == 401 {
            " (token refused: check the kubeconfig user's token, or the Argo CD token variable)"
        } else {
            ""
        };
        return Err(Error::Status {
            url: url.to_string(),
            status,
            message: format!("{message}{hint}"),
        });
    }
    serde_json::from_str(&text).map_err(|e| Error::Transport {
        url: url.to_string(),
        message: format!("not JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:6443"));
        assert!(is_loopback_url("http://127.1.2.3/x"));
        assert!(is_loopback_url("http://[::1]:80/"));
        assert!(is_loopback_url("http://localhost:8080"));
        assert!(!is_loopback_url("http://10.0.0.1:6443"));
        assert!(!is_loopback_url("http://rancher.example.org"));
        assert!(!is_loopback_url("http://127.0.0.1.evil.org/"));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(ApiClient::new("http://127.0.0.1:1", None, None, false).is_ok());
        let e = ApiClient::new("http://rancher.example.org", None, None, false).unwrap_err();
        assert!(e.to_string().contains("plain http is refused"), "{e}");
        assert!(ApiClient::new("ftp://x", None, None, false).is_err());
        assert!(ApiClient::new("https://rancher.example.org", None, None, false).is_ok());
        let e = ApiClient::new("https://x", Some(b"garbage"), None, false).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }
}
