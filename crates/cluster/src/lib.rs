//! Kubernetes and Argo CD for swh-deploy: node labels, rollout status and
//! Argo CD application status (the runbook's "Deployment with Kubernetes":
//! "Check that the nodes are properly labelled to receive the application.
//! Then ArgoCD will be in charge of deploying the changes in a rolling
//! upgrade fashion.").
//!
//! The model:
//!
//! * **Kube contexts -> API servers.** An environment of the site file names
//!   a `kube_context` (`archive-staging-rke2`, `archive-production-rke2`).
//!   [`kubeconfig::KubeConfig`] reads `$KUBECONFIG` (colon-separated, first
//!   definition of a name wins) or `~/.kube/config`, and resolves a context
//!   to its cluster's `server`, CA (`certificate-authority-data` or
//!   `certificate-authority`) and user token (`token` or `tokenFile`). The
//!   [`http::ApiClient`] talks HTTPS with rustls and that CA; plain HTTP is
//!   accepted only for a loopback server (the test bed's stand-in).
//! * **Node labels.** The chart requires nodes through `nodeAffinity`
//!   (`requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].
//!   matchExpressions[]`, e.g. `key: swh/loader, operator: In, values:
//!   ["true"]`). [`affinity`] reads those requirements per values-file
//!   section; [`affinity::check`] tells, for each, which nodes satisfy it
//!   (terms are ORed, expressions of a term ANDed, as the scheduler does).
//!   [`kube::Kube::set_node_labels`] sets labels as `kubectl label
//!   --overwrite` does (a merge patch of `metadata.labels`).
//! * **Rollout status** ([`rollout`]), exactly `kubectl rollout status`'s
//!   rules: not done until `status.observedGeneration >=
//!   metadata.generation`; failed when the `Progressing` condition has reason
//!   `ProgressDeadlineExceeded`; then waiting while `updatedReplicas <
//!   spec.replicas`, while `status.replicas > updatedReplicas` (old replicas
//!   pending termination) and while `availableReplicas < updatedReplicas`;
//!   else complete.
//! * **Argo CD** ([`argocd`]): an application is *live* at a revision when
//!   `status.sync.revision` equals that commit, `status.sync.status` is
//!   `Synced`, `status.operationState.phase` is `Succeeded` and
//!   `status.health.status` is `Healthy`. [`wait::wait_live`] polls the
//!   application and the deployments of its namespace until that holds, a
//!   failure shows (`Degraded`, `ProgressDeadlineExceeded`, a failed sync
//!   operation) or the timeout passes; [`gate::promote_gate`] is the
//!   one-shot check `chart promote` makes on the source environment.
//!
//! Tokens are [`Secret`]s: never printed (their `Debug` is redacted), never
//! passed in arguments, never journaled. The Argo CD token comes from the
//! environment variable named by the site file's `[argocd] token_env`
//! (default `ARGOCD_AUTH_TOKEN`).

pub mod affinity;
pub mod argocd;
pub mod exec;
pub mod gate;
pub mod grafana;
pub mod http;
pub mod kube;
pub mod kubeconfig;
pub mod labels;
pub mod migrate;
pub mod node_labels;
pub mod rollout;
pub mod wait;

use std::fmt;

/// Errors of this crate. Each names what failed and where (file, context,
/// URL).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem: kubeconfig, site file, missing token.
    #[error("{0}")]
    Config(String),
    /// Bad input (label syntax, values file).
    #[error("{0}")]
    Input(String),
    /// The server could not be reached or answered garbage.
    #[error("{url}: {message}")]
    Transport {
        /// The request URL (no credentials in it).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        /// The request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The server's message.
        message: String,
    },
}

impl Error {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed)
    /// (bad input, configuration, or the API).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// A credential (bearer token). `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The token itself, for an `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Parses a duration like `15m`, `5s`, `500ms`, `1h30m` or a bare number of
/// seconds: the one grammar of [`swh_deploy_util::duration::parse`], its
/// error as text (for clap's `value_parser`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    swh_deploy_util::duration::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_use_the_shared_grammar() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5x")
            .unwrap_err()
            .contains("invalid duration `5x`"));
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
