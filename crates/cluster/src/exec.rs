//! Running a command in a pod, as `kubectl exec POD -- CMD...` does, over
//! the Kubernetes WebSocket exec protocol:
//! `GET /api/v1/namespaces/NS/pods/POD/exec?command=..&command=..&stdout=true&stderr=true`
//! upgraded to a WebSocket with the subprotocol `v4.channel.k8s.io`. Each
//! binary message starts with its channel byte: 1 stdout, 2 stderr, 3 the
//! error channel, whose `Status` JSON ends the command (`Success`, or
//! `Failure` with the exit code in `details.causes[reason=ExitCode]`).
//!
//! The framing is tungstenite's; TLS is rustls with the context's CA (or
//! the webpki roots when the kubeconfig names none). The bearer token goes
//! in the `Authorization` header only; errors never contain it.

use crate::kubeconfig::Context;
use crate::{Error, Secret};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{HandshakeError, Message, WebSocket};

/// The subprotocol swh-deploy asks for.
pub const SUBPROTOCOL: &str = "v4.channel.k8s.io";

/// What a command run in a pod gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (0 when the API server said `Success`).
    pub exit: i32,
    /// What it wrote on stdout.
    pub stdout: Vec<u8>,
    /// What it wrote on stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// stdout then stderr, as text, trailing newlines trimmed.
    pub fn text(&self) -> String {
        let mut t = String::from_utf8_lossy(&self.stdout).into_owned();
        let e = String::from_utf8_lossy(&self.stderr);
        if !e.trim().is_empty() {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(&e);
        }
        t.trim_end().to_string()
    }
}

/// Where to connect: the API server of one kube context.
#[derive(Clone)]
pub struct ExecClient {
    context: String,
    scheme_tls: bool,
    host: String,
    port: u16,
    base_path: String,
    ca_pem: Option<Vec<u8>>,
    token: Option<Secret>,
    timeout: Duration,
}

impl std::fmt::Debug for ExecClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecClient")
            .field("context", &self.context)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl ExecClient {
    /// A client for `ctx`'s API server. `timeout` bounds the connection
    /// and each wait for output (a silent command longer than that fails).
    pub fn new(ctx: &Context, timeout: Duration) -> Result<ExecClient, Error> {
        let cfg = |m: String| Error::Config(format!("context {}: {m}", ctx.name));
        let server = ctx.server.trim_end_matches('/');
        let (tls, rest) = if let Some(r) = server.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = server.strip_prefix("http://") {
            if !crate::http::is_loopback_url(server) {
                return Err(cfg(format!(
                    "{server}: plain http is refused for a non-loopback server (tokens would travel in clear); use https"
                )));
            }
            (false, r)
        } else {
            return Err(cfg(format!(
                "{server}: the server URL must start with https://"
            )));
        };
        if tls && ctx.insecure_skip_tls_verify {
            return Err(cfg(
                "insecure-skip-tls-verify is not supported for exec: give the cluster's certificate-authority".into(),
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| cfg(format!("{server}: bad address")))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| cfg(format!("{server}: bad port {p:?}")))?,
            None if tls => 443,
            None => 80,
        };
        Ok(ExecClient {
            context: ctx.name.clone(),
            scheme_tls: tls,
            host,
            port,
            base_path: path.to_string(),
            ca_pem: ctx.ca_pem.clone(),
            token: ctx.token.clone(),
            timeout,
        })
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for c in CertificateDer::pem_slice_iter(pem) {
                    let c = c.map_err(|e| {
                        Error::Config(format!(
                            "context {}: certificate authority: bad PEM: {e}",
                            self.context
                        ))
                    })?;
                    roots.add(c).map_err(|e| {
                        Error::Config(format!(
                            "context {}: certificate authority: {e}",
                            self.context
                        ))
                    })?;
                }
                if roots.is_empty() {
                    return Err(Error::Config(format!(
                        "context {}: certificate authority holds no certificate",
                        self.context
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(cfg))
    }

    /// The exec path (below the server's base path) for `command` in
    /// `pod` of `namespace`.
    pub fn exec_path(namespace: &str, pod: &str, command: &[&str]) -> String {
        let mut p = format!(
            "/api/v1/namespaces/{}/pods/{}/exec?",
            encode(namespace),
            encode(pod)
        );
        for c in command {
            p.push_str("command=");
            p.push_str(&encode(c));
            p.push('&');
        }
        p.push_str("stdout=true&stderr=true");
        p
    }

    /// Runs `command` in `pod` of `namespace` (its first container) and
    /// returns its exit code and output. A command the API server could not
    /// start (not found...) is an error with the server's message.
    pub fn exec(&self, namespace: &str, pod: &str, command: &[&str]) -> Result<ExecOutput, Error> {
        let path = format!(
            "{}{}",
            self.base_path,
            Self::exec_path(namespace, pod, command)
        );
        let shown = format!(
            "{}://{}:{}{}",
            if self.scheme_tls { "https" } else { "http" },
            self.host,
            self.port,
            path
        );
        let transport = |message: String| Error::Transport {
            url: shown.clone(),
            message,
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .map_err(|e| transport(format!("connecting: {e}")))?;
        tcp.set_read_timeout(Some(self.timeout))
            .and_then(|_| tcp.set_write_timeout(Some(self.timeout)))
            .map_err(|e| transport(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream + Send> = if self.scheme_tls {
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                .map_err(|e| transport(format!("server name: {e}")))?;
            let conn = rustls::ClientConnection::new(self.tls_config()?, name)
                .map_err(|e| transport(format!("TLS: {e}")))?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        } else {
            Box::new(tcp)
        };
        let ws_url = format!(
            "{}://{}:{}{}",
            if self.scheme_tls { "wss" } else { "ws" },
            if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            },
            self.port,
            path
        );
        let mut request = ws_url
            .into_client_request()
            .map_err(|e| transport(format!("request: {e}")))?;
        let headers = request.headers_mut();
        headers.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        if let Some(t) = &self.token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                .map_err(|_| Error::Config(format!("context {}: bad token", self.context)))?;
            v.set_sensitive(true);
            headers.insert("Authorization", v);
        }
        let (mut ws, _response) = match tungstenite::client(request, stream) {
            Ok(x) => x,
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp.body().clone().unwrap_or_default();
                let message = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(String::from))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
                let hint = if status == 401 {
                    " (token refused: check the kubeconfig user's token)"
                } else {
                    ""
                };
                return Err(Error::Status {
                    url: shown,
                    status,
                    message: format!("{message}{hint}"),
                });
            }
            Err(HandshakeError::Failure(e)) => return Err(transport(format!("WebSocket: {e}"))),
            Err(HandshakeError::Interrupted(_)) => {
                return Err(transport("WebSocket handshake interrupted".into()))
            }
        };
        read_channels(&mut ws).map_err(transport)
    }
}

/// Reads the channels until the error channel's status and the end of the
/// stream.
fn read_channels<S: Read + Write>(ws: &mut WebSocket<S>) -> Result<ExecOutput, String> {
    let mut out = ExecOutput {
        exit: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let mut status: Vec<u8> = Vec::new();
    let mut ended = false;
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => match b.split_first() {
                Some((1, data)) => out.stdout.extend_from_slice(data),
                Some((2, data)) => out.stderr.extend_from_slice(data),
                Some((3, data)) => {
                    status.extend_from_slice(data);
                    if !data.is_empty() {
                        ended = true;
                    }
                }
                _ => {}
            },
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            // The server may drop the connection right after the status.
            Err(_) if ended => break,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no output nor end from the command before the timeout".into())
            }
            Err(e) => return Err(format!("exec stream: {e}")),
        }
    }
    if !ended {
        return Err("the exec stream ended without the command's status".into());
    }
    out.exit = exit_of(&status)?;
    Ok(out)
}

/// The exit code a `Status` of the error channel says.
fn exit_of(status: &[u8]) -> Result<i32, String> {
    let v: Value = serde_json::from_slice(status).map_err(|e| {
        format!(
            "the error channel does not hold a Status ({e}): {}",
            String::from_utf8_lossy(status)
        )
    })?;
    if v["status"] == "Success" {
        return Ok(0);
    }
    let code = v["details"]["causes"].as_array().and_then(|causes| {
        causes
            .iter()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.trim().parse::<i32>().ok())
    });
    match code {
        Some(c) => Ok(c),
        None => Err(format!(
            "the command could not run: {}",
            v["message"].as_str().unwrap_or("(no message)")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_the_error_channel() {
        assert_eq!(exit_of(br#"{"metadata":{},"status":"Success"}"#), Ok(0));
        assert_eq!(
            exit_of(
                br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 2","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"2"}]}}"#
            ),
            Ok(2)
        );
        let e = exit_of(
            br#"{"status":"Failure","message":"exec: \"x\": executable file not found in $PATH"}"#,
        )
        .unwrap_err();
        assert!(e.contains("executable file not found"), "{e}");
        assert!(exit_of(b"garbage").is_err());
    }

    #[test]
    fn exec_paths_repeat_command_and_encode() {
        assert_eq!(
            ExecClient::exec_path("swh", "toolbox-1", &["check-storage-db-version.sh", "a b"]),
            "/api/v1/namespaces/swh/pods/toolbox-1/exec?command=check-storage-db-version.sh&command=a%20b&stdout=true&stderr=true"
        );
    }

    #[test]
    fn servers_are_parsed_and_plain_http_is_loopback_only() {
        let ctx = |server: &str| Context {
            name: "c".into(),
            server: server.into(),
            ca_pem: None,
            insecure_skip_tls_verify: false,
            token: Some(Secret::new("t0k3n")),
            namespace: None,
        };
        let c = ExecClient::new(
            &ctx("https://127.0.0.1:6443/k8s/clusters/x"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.base_path.as_str()),
            ("127.0.0.1", 6443, "/k8s/clusters/x")
        );
        assert!(!format!("{c:?}").contains("t0k3n"));
        let c =
            ExecClient::new(&ctx("https://rancher.example.org"), Duration::from_secs(1)).unwrap();
        assert_eq!((c.port, c.base_path.as_str()), (443, ""));
        let e = ExecClient::new(&ctx("http://rancher.example.org"), Duration::from_secs(1))
            .unwrap_err();
        assert!(e.to_string().contains("plain http is refused"), "{e}");
    }
}
