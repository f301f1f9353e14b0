//! Argo CD application status (`GET /api/v1/applications/{name}`).

use crate::http::ApiClient;
use crate::{Error, Secret};
use serde_json::Value;
use swh_deploy_site::Site;

/// The default name of the variable holding the Argo CD token.
pub const DEFAULT_TOKEN_ENV: &str = "ARGOCD_AUTH_TOKEN";

/// An Argo CD API server.
#[derive(Debug, Clone)]
pub struct ArgoCd {
    client: ApiClient,
}

/// What an application reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStatus {
    /// Application name.
    pub name: String,
    /// `status.sync.status`: `Synced`, `OutOfSync`, `Unknown`.
    pub sync: String,
    /// `status.sync.revision`: the deployed commit.
    pub revision: String,
    /// `status.health.status`: `Healthy`, `Progressing`, `Degraded`, ...
    pub health: String,
    /// `status.operationState.phase`: `Running`, `Succeeded`, `Failed`,
    /// `Error`, `Terminating` (empty when no operation ran).
    pub phase: String,
    /// `status.operationState.message`.
    pub message: String,
    /// The revision of the last operation
    /// (`status.operationState.syncResult.revision`, else
    /// `operation.sync.revision`).
    pub operation_revision: String,
}

impl AppStatus {
    /// Reads an Application object.
    pub fn from_json(v: &Value) -> AppStatus {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_string()
        };
        AppStatus {
            name: s("/metadata/name"),
            sync: s("/status/sync/status"),
            revision: s("/status/sync/revision"),
            health: s("/status/health/status"),
            phase: s("/status/operationState/phase"),
            message: s("/status/operationState/message"),
            operation_revision: {
                let r = s("/status/operationState/syncResult/revision");
                if r.is_empty() {
                    s("/status/operationState/operation/sync/revision")
                } else {
                    r
                }
            },
        }
    }

    /// Live at `revision`: synced at that commit, the operation succeeded
    /// and the application is healthy.
    pub fn is_live_at(&self, revision: &str) -> bool {
        self.revision == revision
            && self.sync == "Synced"
            && self.phase == "Succeeded"
            && self.health == "Healthy"
    }

    /// A failure at `revision`: the sync operation failed, or the synced
    /// application is `Degraded`.
    pub fn failure_at(&self, revision: &str) -> Option<String> {
        let op_failed = matches!(self.phase.as_str(), "Failed" | "Error");
        // A failed operation counts when it was for this revision (or does
        // not say which).
        if op_failed && (self.operation_revision.is_empty() || self.operation_revision == revision)
        {
            return Some(format!(
                "Argo CD application {}: sync operation {}: {}",
                self.name, self.phase, self.message
            ));
        }
        if self.revision == revision && self.sync == "Synced" && self.health == "Degraded" {
            return Some(format!(
                "Argo CD application {} is Degraded at {}",
                self.name,
                short(&self.revision)
            ));
        }
        None
    }

    /// One line: `sync Synced at abc123def456, operation Succeeded, health Healthy`.
    pub fn describe(&self) -> String {
        format!(
            "sync {} at {}, operation {}, health {}",
            or_dash(&self.sync),
            short(&self.revision),
            or_dash(&self.phase),
            or_dash(&self.health)
        )
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// The first 12 characters of a commit id.
pub fn short(rev: &str) -> &str {
    if rev.is_empty() {
        "-"
    } else {
        &rev[..rev.len().min(12)]
    }
}

impl ArgoCd {
    /// A client for `url` with `token`.
    pub fn new(url: &str, token: Secret) -> Result<ArgoCd, Error> {
        Ok(ArgoCd {
            client: ApiClient::new(url, None, Some(token), false)?,
        })
    }

    /// The site file's `[argocd]`, with the token from the environment
    /// variable it names. `Ok(None)` when there is no `[argocd]`; an error
    /// when the variable is unset or empty.
    pub fn from_site(site: &Site) -> Result<Option<ArgoCd>, Error> {
        let Some(a) = &site.argocd else {
            return Ok(None);
        };
        let var = if a.token_env.is_empty() {
            DEFAULT_TOKEN_ENV
        } else {
            a.token_env.as_str()
        };
        let token = std::env::var(var).unwrap_or_default();
        if token.trim().is_empty() {
            return Err(Error::Config(format!(
                "{}: [argocd] token_env: the variable {var} is unset or empty; export the Argo CD API token in it",
                site.path.display()
            )));
        }
        Self::new(&a.url, Secret::new(token.trim()))
            .map(Some)
            .map_err(|e| Error::Config(format!("{}: [argocd] url: {e}", site.path.display())))
    }

    /// The application's status; `refresh` asks Argo CD for a hard refresh
    /// (`?refresh=hard`) first.
    pub fn application(&self, name: &str, refresh: bool) -> Result<AppStatus, Error> {
        if name.is_empty() || name.contains(['/', '?', '#', '%', ' ']) {
            return Err(Error::Input(format!(
                "{name:?}: not an Argo CD application name"
            )));
        }
        let path = if refresh {
            format!("/api/v1/applications/{name}?refresh=hard")
        } else {
            format!("/api/v1/applications/{name}")
        };
        Ok(AppStatus::from_json(&self.client.get(&path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(sync: &str, rev: &str, phase: &str, health: &str) -> AppStatus {
        AppStatus::from_json(&json!({"metadata": {"name": "a"}, "status": {
            "sync": {"status": sync, "revision": rev}, "health": {"status": health},
            "operationState": {"phase": phase, "message": "m"}}}))
    }

    #[test]
    fn live_needs_all_four() {
        assert!(app("Synced", "abc", "Succeeded", "Healthy").is_live_at("abc"));
        assert!(!app("Synced", "abc", "Succeeded", "Healthy").is_live_at("def"));
        assert!(!app("OutOfSync", "abc", "Succeeded", "Healthy").is_live_at("abc"));
        assert!(!app("Synced", "abc", "Running", "Healthy").is_live_at("abc"));
        assert!(!app("Synced", "abc", "Succeeded", "Progressing").is_live_at("abc"));
    }

    #[test]
    fn failures() {
        assert!(app("Synced", "abc", "Succeeded", "Degraded")
            .failure_at("abc")
            .unwrap()
            .contains("Degraded"));
        // Degraded at an older revision is not this release's failure.
        assert!(app("Synced", "old", "Succeeded", "Degraded")
            .failure_at("abc")
            .is_none());
        assert!(app("OutOfSync", "old", "Failed", "Healthy")
            .failure_at("abc")
            .unwrap()
            .contains("Failed"));
        // A failed operation for another revision is not this one's failure.
        let mut old_failure = app("OutOfSync", "old", "Failed", "Healthy");
        old_failure.operation_revision = "old".into();
        assert!(old_failure.failure_at("abc").is_none());
        old_failure.operation_revision = "abc".into();
        assert!(old_failure.failure_at("abc").is_some());
        assert!(app("Synced", "abc", "Succeeded", "Progressing")
            .failure_at("abc")
            .is_none());
    }
}
