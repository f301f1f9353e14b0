//! A Grafana annotation API STAND-IN (not Grafana): a loopback HTTP server
//! that answers `POST /api/annotations` as Grafana does (`{"id": N,
//! "message": "Annotation added"}`, 401 without the expected bearer token)
//! and records every request it gets, so that tests can check what
//! swh-deploy sent (tags, text, token) and when it sent nothing.

use crate::http::{header, JsonServer, Request};
use anyhow::Result;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::{Arc, Mutex};

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
    requests: Arc<Mutex<Vec<Recorded>>>,
    _server: JsonServer,
}

impl GrafanaStandin {
    /// Starts the stand-in on 127.0.0.1 (a free port) expecting `token`.
    pub fn start(token: &str) -> Result<GrafanaStandin> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (rq, tok) = (requests.clone(), token.to_string());
        let server = JsonServer::start("the Grafana stand-in", move |_| {
            move |r: &mut Request| answer(r, &rq, &tok)
        })?;
        Ok(GrafanaStandin {
            url: format!("http://{}", server.addr()),
            token: token.to_string(),
            requests,
            _server: server,
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

/// Records one request and answers it as Grafana does.
fn answer(rq: &mut Request, requests: &Mutex<Vec<Recorded>>, token: &str) -> (u16, Value) {
    let authorization = header(rq, "Authorization");
    let mut body = Vec::new();
    let _ = rq.as_reader().take(1 << 20).read_to_end(&mut body);
    let recorded = Recorded {
        method: rq.method().as_str().to_string(),
        path: rq.url().to_string(),
        authorization: authorization.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let post_annotation = recorded.method == "POST" && recorded.path == "/api/annotations";
    let Ok(mut all) = requests.lock() else {
        return (500, json!({"message": "poisoned"}));
    };
    all.push(recorded);
    let n = all.len();
    if authorization.as_deref() != Some(&format!("Bearer {token}")) {
        (401, json!({"message": "Unauthorized"}))
    } else if post_annotation {
        (200, json!({"id": n, "message": "Annotation added"}))
    } else {
        (404, json!({"message": "Not found"}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(url: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into();
        let mut rq = agent.post(url).header("Content-Type", "application/json");
        if let Some(a) = auth {
            rq = rq.header("Authorization", a);
        }
        let mut answer = rq.send(body).unwrap();
        let status = answer.status().as_u16();
        let text = answer.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn answers_as_grafana_and_records_every_request() {
        let g = GrafanaStandin::start("s3cret").unwrap();
        let url = format!("{}/api/annotations", g.url());
        let (code, body) = post(&url, Some("Bearer s3cret"), r#"{"text":"up","tags":["a"]}"#);
        assert_eq!(code, 200);
        assert_eq!(body, json!({"id": 1, "message": "Annotation added"}));
        let (code, body) = post(&url, Some("Bearer wrong"), "{}");
        assert_eq!((code, body), (401, json!({"message": "Unauthorized"})));
        let (code, _) = post(
            &format!("{}/api/other?x=1", g.url()),
            Some("Bearer s3cret"),
            "x",
        );
        assert_eq!(code, 404);
        let r = g.requests();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].method, "POST");
        assert_eq!(r[0].path, "/api/annotations");
        assert_eq!(r[0].authorization.as_deref(), Some("Bearer s3cret"));
        assert_eq!(r[0].body, json!({"text": "up", "tags": ["a"]}));
        assert_eq!(r[2].path, "/api/other?x=1");
        assert_eq!(r[2].body, Value::Null);
        let url = g.url().to_string();
        drop(g);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(2)))
            .proxy(None)
            .build()
            .into();
        assert!(
            agent.get(&url).call().is_err(),
            "still answering after drop"
        );
    }
}
