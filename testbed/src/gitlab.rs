//! **STAND-IN** for GitLab's merge requests, fed by `git push` options.
//!
//! No GitLab runs on the test machine. This module makes a bare repository
//! of the test bed behave, for merge requests, as a GitLab project does:
//!
//! * the repository accepts push options (`receive.advertisePushOptions
//!   true`) and a `post-receive` hook records each push (refs and options)
//!   in `<repo>/gitlab-standin/events/`;
//! * `-o merge_request.create -o merge_request.target=T [-o
//!   merge_request.title=...]` on a push of branch S opens a merge request
//!   S -> T, unless one is already open (GitLab then keeps it); any push
//!   of S updates the open merge requests of S (`sha`, `updated_at`);
//! * a push of T that contains an open merge request's `sha` marks it
//!   `merged` (as GitLab does when the source commits land in the target);
//! * an HTTP server on `127.0.0.1` answers, with the real JSON shapes of
//!   GitLab's API, `GET /api/v4/projects/:id/merge_requests` (filters
//!   `state`, `source_branch`, `target_branch`; newest first) and
//!   `GET /api/v4/projects/:id/merge_requests/:iid`.
//!
//! It is **not** GitLab: no users, no approvals, no pipelines, no
//! authentication (a public project's reads need none), no writes through
//! the API.

use crate::http::{JsonServer, Request};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// One merge request of the stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    /// Project-scoped number (`iid`, the `!N` of GitLab).
    pub iid: u64,
    /// Title.
    pub title: String,
    /// `opened` or `merged`.
    pub state: String,
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// Head commit of the source branch.
    pub sha: String,
    created_at: String,
    updated_at: String,
    merged_at: Option<String>,
}

#[derive(Default)]
struct State {
    seen: Vec<String>,
    mrs: Vec<MergeRequest>,
}

struct Shared {
    repo: PathBuf,
    events: PathBuf,
    project_id: u64,
    addr: SocketAddr,
    state: Mutex<State>,
}

/// The merge-request stand-in of one bare repository; its server stops on
/// drop.
pub struct GitlabStandin {
    shared: Arc<Shared>,
    server: JsonServer,
}

impl std::fmt::Debug for GitlabStandin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabStandin")
            .field("repo", &self.shared.repo)
            .field("addr", &self.shared.addr)
            .finish()
    }
}

/// The current time in GitLab's format: `2025-01-17T14:00:00.123Z` (UTC).
fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

const HOOK: &str = r#"#!/bin/sh
# swh-deploy test bed: records each push (refs, push options) for the
# GitLab merge-request stand-in (testbed/src/gitlab.rs).
set -eu
events=@EVENTS@
ev="$events/$(date +%s%N)-$$"
{
  while read -r old new ref; do
    printf 'ref %s %s %s\n' "$ref" "$old" "$new"
  done
  i=0
  n="${GIT_PUSH_OPTION_COUNT:-0}"
  while [ "$i" -lt "$n" ]; do
    eval "v=\${GIT_PUSH_OPTION_$i}"
    printf 'option %s\n' "$v"
    i=$((i + 1))
  done
} > "$ev.tmp"
mv "$ev.tmp" "$ev"
"#;

impl GitlabStandin {
    /// Makes the bare repository `repo` accept push options, installs its
    /// `post-receive` hook and serves project `project_id`'s merge requests
    /// on a free port of `127.0.0.1`.
    pub fn start(repo: &Path, project_id: u64) -> Result<GitlabStandin> {
        let repo = repo
            .canonicalize()
            .with_context(|| format!("resolving {}", repo.display()))?;
        let events = repo.join("gitlab-standin/events");
        std::fs::create_dir_all(&events)
            .with_context(|| format!("creating {}", events.display()))?;
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["config", "receive.advertisePushOptions", "true"])
            .output()
            .context("git config")?;
        if !out.status.success() {
            bail!(
                "git config receive.advertisePushOptions in {}: {}",
                repo.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let events_s = events
            .to_str()
            .with_context(|| format!("{}: not UTF-8", events.display()))?;
        let hook = repo.join("hooks/post-receive");
        std::fs::create_dir_all(repo.join("hooks"))?;
        let text = HOOK.replace("@EVENTS@", &shlex::try_quote(events_s)?);
        crate::util::write_atomic(&hook, text.as_bytes(), 0o755)?;
        let mut shared = None;
        let server = JsonServer::start("the GitLab stand-in", |addr| {
            let s = Arc::new(Shared {
                repo,
                events,
                project_id,
                addr,
                state: Mutex::new(State::default()),
            });
            shared = Some(s.clone());
            move |rq: &mut Request| handle(&s, rq.method().as_str(), rq.url())
        })?;
        let shared = shared.context("the GitLab stand-in's state")?;
        Ok(GitlabStandin { shared, server })
    }

    /// The API's base URL (`http://127.0.0.1:PORT`, to which GitLab's
    /// `/api/v4/...` paths are appended).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The project's merge requests, oldest first, after reading the pushes
    /// recorded so far.
    pub fn merge_requests(&self) -> Result<Vec<MergeRequest>> {
        update(&self.shared)?;
        Ok(self.shared.state.lock().unwrap().mrs.clone())
    }

    /// Stops the server (also done on drop).
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn is_ancestor(repo: &Path, a: &str, b: &str) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["merge-base", "--is-ancestor", a, b])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Applies the pushes recorded since the last call, in order.
fn update(s: &Shared) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(&s.events)
        .with_context(|| format!("reading {}", s.events.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".tmp"))
        .collect();
    names.sort();
    let mut st = s.state.lock().unwrap();
    for name in names {
        if st.seen.contains(&name) {
            continue;
        }
        let text = std::fs::read_to_string(s.events.join(&name))?;
        st.seen.push(name);
        let mut refs = Vec::new();
        let mut options = Vec::new();
        for line in text.lines() {
            if let Some(r) = line.strip_prefix("ref ") {
                let f: Vec<&str> = r.split(' ').collect();
                if let [name, _old, new] = f[..] {
                    if let Some(b) = name.strip_prefix("refs/heads/") {
                        refs.push((b.to_string(), new.to_string()));
                    }
                }
            } else if let Some(o) = line.strip_prefix("option ") {
                options.push(o.to_string());
            }
        }
        let opt = |k: &str| {
            options
                .iter()
                .find_map(|o| o.strip_prefix(k)?.strip_prefix('=').map(String::from))
        };
        let create = options.iter().any(|o| o == "merge_request.create");
        let t = now();
        let refs: Vec<(String, String)> = refs
            .into_iter()
            .filter(|(_, new)| !new.bytes().all(|b| b == b'0'))
            .collect();
        // Source branches first, so that an atomic push of both the source
        // and the target (a rebase then a promotion) merges the request.
        for (branch, new) in &refs {
            for mr in st.mrs.iter_mut().filter(|m| m.state == "opened") {
                if &mr.source_branch == branch {
                    mr.sha = new.clone();
                    mr.updated_at = t.clone();
                }
            }
        }
        for (branch, new) in &refs {
            for mr in st.mrs.iter_mut().filter(|m| m.state == "opened") {
                if &mr.target_branch == branch && is_ancestor(&s.repo, &mr.sha, new) {
                    mr.state = "merged".into();
                    mr.merged_at = Some(t.clone());
                    mr.updated_at = t.clone();
                }
            }
        }
        for (branch, new) in refs {
            if create {
                let target = opt("merge_request.target").unwrap_or_else(|| "master".into());
                let open = st.mrs.iter().any(|m| {
                    m.state == "opened" && m.source_branch == branch && m.target_branch == target
                });
                if !open && target != branch {
                    let iid = st.mrs.len() as u64 + 1;
                    let title = opt("merge_request.title").unwrap_or_else(|| branch.clone());
                    st.mrs.push(MergeRequest {
                        iid,
                        title,
                        state: "opened".into(),
                        source_branch: branch.clone(),
                        target_branch: target,
                        sha: new.clone(),
                        created_at: t.clone(),
                        updated_at: t.clone(),
                        merged_at: None,
                    });
                }
            }
        }
    }
    Ok(())
}

fn mr_json(s: &Shared, m: &MergeRequest) -> Value {
    json!({
        "id": s.project_id * 100_000 + m.iid,
        "iid": m.iid,
        "project_id": s.project_id,
        "title": m.title,
        "description": "",
        "state": m.state,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "merged_at": m.merged_at,
        "closed_at": null,
        "target_branch": m.target_branch,
        "source_branch": m.source_branch,
        "draft": false,
        "work_in_progress": false,
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "sha": m.sha,
        "source_project_id": s.project_id,
        "target_project_id": s.project_id,
        "references": {"short": format!("!{}", m.iid)},
        "web_url": format!("http://{}/project/{}/-/merge_requests/{}", s.addr, s.project_id, m.iid),
    })
}

/// The answer to `method target`.
fn handle(s: &Shared, method: &str, target: &str) -> (u16, Value) {
    if method != "GET" {
        return (405, json!({"message": "405 Method Not Allowed"}));
    }
    if let Err(e) = update(s) {
        return (500, json!({"message": format!("{e:#}")}));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |k: &str| q.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let project = s.project_id.to_string();
    let st = s.state.lock().unwrap();
    match segs[..] {
        ["api", "v4", "projects", id, "merge_requests"] if id == project => {
            let list: Vec<Value> = st
                .mrs
                .iter()
                .rev()
                .filter(|m| get("state").is_none_or(|v| v == "all" || v == m.state))
                .filter(|m| get("source_branch").is_none_or(|v| v == m.source_branch))
                .filter(|m| get("target_branch").is_none_or(|v| v == m.target_branch))
                .map(|m| mr_json(s, m))
                .collect();
            (200, Value::Array(list))
        }
        ["api", "v4", "projects", id, "merge_requests", iid] if id == project => {
            match st.mrs.iter().find(|m| m.iid.to_string() == iid) {
                Some(m) => (200, mr_json(s, m)),
                None => (404, json!({"message": "404 Not found"})),
            }
        }
        _ => (404, json!({"message": "404 Project Not Found"})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::http_get;
    use std::time::Duration;

    #[test]
    fn now_is_gitlab_s_utc_format() {
        let t = now();
        let parsed = chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.3fZ").unwrap();
        let age = chrono::Utc::now().naive_utc() - parsed;
        assert!(age.num_seconds().abs() < 60, "{t}");
        assert_eq!(t.len(), "2025-01-17T14:00:00.123Z".len(), "{t}");
    }

    #[test]
    fn serves_merge_requests_with_gitlab_shapes_and_codes() {
        let tmp = std::env::temp_dir().join(format!("swh-testbed-gitlab-{}", std::process::id()));
        let repo = tmp.join("charts.git");
        let out = Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut g = GitlabStandin::start(&repo, 7).unwrap();
        let get = |path: &str| {
            let r = http_get(g.addr(), path, Duration::from_secs(5)).unwrap();
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, body)
        };
        assert_eq!(
            get("/api/v4/projects/7/merge_requests?state=opened"),
            (200, json!([]))
        );
        assert_eq!(
            get("/api/v4/projects/7/merge_requests/1"),
            (404, json!({"message": "404 Not found"}))
        );
        assert_eq!(
            get("/api/v4/projects/8/merge_requests"),
            (404, json!({"message": "404 Project Not Found"}))
        );
        assert!(g.merge_requests().unwrap().is_empty());
        let addr = g.addr();
        g.stop();
        assert!(http_get(addr, "/", Duration::from_secs(1)).is_err());
        drop(g);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
