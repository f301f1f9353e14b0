//! HTTP for the test bed, through well-kept crates: a loopback JSON server
//! for the API stand-ins ([`JsonServer`], on `tiny_http`) and a small
//! client for probing components ([`http_get`], on `ureq`).
//!
//! The server runs one thread that takes requests from `tiny_http` (which
//! reads and parses them on its own connection threads) and answers each
//! with the `(status, JSON)` its handler returns. It listens on
//! `127.0.0.1` only and stops on drop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;

/// A request as the handlers of a [`JsonServer`] see it.
pub(crate) type Request = tiny_http::Request;

/// A loopback HTTP server answering JSON; stopped on drop.
pub(crate) struct JsonServer {
    addr: SocketAddr,
    server: Option<Arc<tiny_http::Server>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JsonServer {
    /// Listens on a free port of `127.0.0.1` and serves with the handler
    /// that `make` builds from the address (for handlers whose answers name
    /// it). `what` names the server in errors.
    pub(crate) fn start<H>(what: &str, make: impl FnOnce(SocketAddr) -> H) -> Result<JsonServer>
    where
        H: FnMut(&mut Request) -> (u16, Value) + Send + 'static,
    {
        let server = tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| anyhow!("{what}: binding 127.0.0.1:0: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .with_context(|| format!("{what}: not listening on an IP address"))?;
        let mut handler = make(addr);
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let (srv, st) = (server.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("{what} http"))
            .spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    // `unblock` (on drop) ends the wait; a failed accept is
                    // retried after a short pause.
                    match srv.recv() {
                        Ok(mut rq) => {
                            let (code, body) = handler(&mut rq);
                            let _ = rq.respond(json_response(code, &body));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .with_context(|| format!("{what}: spawning its thread"))?;
        Ok(JsonServer {
            addr,
            server: Some(server),
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving, waits for its thread and closes the listening
    /// socket (also done on drop).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(server) = &self.server {
            server.unblock();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The thread's reference is gone: this drops the server, whose
        // listener closes.
        self.server = None;
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `body` as an `application/json` answer with status `code`.
fn json_response(code: u16, body: &Value) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut answer =
        tiny_http::Response::from_data(body.to_string().into_bytes()).with_status_code(code);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        answer.add_header(h);
    }
    answer
}

/// The value of header `name` (case-insensitive) of a request.
pub(crate) fn header(rq: &Request, name: &str) -> Option<String> {
    rq.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// An HTTP answer read by [`http_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code (200, 404, ...).
    pub status: u16,
    /// Header lines, `Name: value` (names as the client normalised them:
    /// compare them case-insensitively).
    pub headers: Vec<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Largest body [`http_get`] reads.
const MAX_BODY: u64 = 64 << 20;

/// `GET path` on `addr` over plain HTTP, the whole exchange bounded by
/// `timeout`; no proxy, no redirect followed, any status returned as an
/// answer (not an error). For loopback / test bed addresses only.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<HttpResponse> {
    ensure!(
        path.starts_with('/') && !path.bytes().any(|b| b.is_ascii_whitespace()),
        "invalid HTTP path {path:?}"
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent("swh-deploy-testbed")
        .build()
        .into();
    let mut answer = agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let headers = answer
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let body = answer
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .with_context(|| format!("reading the answer of {addr}{path}"))?;
    Ok(HttpResponse {
        status: answer.status().as_u16(),
        headers,
        body,
    })
}
