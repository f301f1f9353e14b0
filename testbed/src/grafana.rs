//! A Grafana annotation API STAND-IN (not Grafana): a loopback HTTP server
//! that answers `POST /api/annotations` as Grafana does (`{"id": N,
//! "message": "Annotation added"}`, 401 without the expected bearer token)
//! and records every request it gets, so that tests can check what
//! swh-deploy sent (tags, text, token) and when it sent nothing.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `POST`, `GET`...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body, parsed as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// The running stand-in; stopped on drop.
pub struct GrafanaStandin {
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl GrafanaStandin {
    /// Starts the stand-in on 127.0.0.1 (a free port) expecting `token`.
    pub fn start(token: &str) -> Result<GrafanaStandin> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the Grafana stand-in")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, rq, tok) = (stop.clone(), requests.clone(), token.to_string());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rq, tok) = (rq.clone(), tok.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &rq, &tok);
                });
            }
        });
        Ok(GrafanaStandin {
            url: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
            stop,
            requests,
            thread: Some(thread),
            port,
        })
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token it accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for GrafanaStandin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the requests of one connection (keep-alive), at most 100, each
/// read within 10 s.
fn serve(conn: TcpStream, requests: &Mutex<Vec<Recorded>>, token: &str) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let path = words.next().unwrap_or("").to_string();
        let mut length = 0usize;
        let mut authorization = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "authorization" => authorization = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        reader.read_exact(&mut body)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let n = {
            let mut r = requests.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            r.push(Recorded {
                method: method.clone(),
                path: path.clone(),
                authorization: authorization.clone(),
                body,
            });
            r.len()
        };
        let (status, answer) = if authorization.as_deref() != Some(&format!("Bearer {token}")) {
            ("401 Unauthorized", json!({"message": "Unauthorized"}))
        } else if method == "POST" && path == "/api/annotations" {
            ("200 OK", json!({"id": n, "message": "Annotation added"}))
        } else {
            ("404 Not Found", json!({"message": "Not found"}))
        };
        let text = answer.to_string();
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
        writer.flush()?;
    }
    Ok(())
}
