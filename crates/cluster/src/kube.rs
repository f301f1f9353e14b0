//! The Kubernetes API calls swh-deploy makes: list nodes and their labels,
//! set labels (as `kubectl label --overwrite`), read deployments.

use crate::exec::{ExecClient, ExecOutput};
use crate::http::ApiClient;
use crate::kubeconfig::{Context, KubeConfig};
use crate::rollout::Deployment;
use crate::Error;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A node and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

impl Node {
    fn from_json(v: &Value) -> Node {
        Node {
            name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            labels: v["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A Kubernetes API server (one kube context).
#[derive(Debug, Clone)]
pub struct Kube {
    context: String,
    client: ApiClient,
    resolved: Context,
}

/// A pod: its name, labels and phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `status.phase` (`Running`, `Pending`...).
    pub phase: String,
}

fn seg(s: &str) -> Result<&str, Error> {
    if s.is_empty() || s.contains(['/', '?', '#', '%', ' ']) {
        return Err(Error::Input(format!("{s:?}: not a Kubernetes object name")));
    }
    Ok(s)
}

impl Kube {
    /// Connects to a context of the default kubeconfig ([`KubeConfig::load_default`]).
    pub fn connect(context: &str) -> Result<Kube, Error> {
        let kc = KubeConfig::load_default()?;
        Self::from_context(&kc.context(Some(context))?)
    }

    /// The cluster of environment `env` of `site`: a client of its
    /// kube_context (default kubeconfig) and its namespace; `None` when the
    /// site file gives it no kube_context or no namespace. The one set-up
    /// of `cluster migrate`, `cluster wait` and the long-standing mode.
    pub fn for_environment(
        site: &swh_deploy_site::Site,
        env: &str,
    ) -> Result<Option<(Kube, String)>, Error> {
        let e = site
            .environment(env)
            .map_err(|e| Error::Config(e.to_string()))?;
        match (&e.kube_context, &e.namespace) {
            (Some(ctx), Some(ns)) => Ok(Some((Kube::connect(ctx)?, ns.clone()))),
            _ => Ok(None),
        }
    }

    /// A client for a resolved context.
    pub fn from_context(ctx: &Context) -> Result<Kube, Error> {
        Ok(Kube {
            context: ctx.name.clone(),
            client: ctx.client()?,
            resolved: ctx.clone(),
        })
    }

    /// The context name.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// All nodes with their labels.
    pub fn nodes(&self) -> Result<Vec<Node>, Error> {
        let v = self.client.get("/api/v1/nodes")?;
        Ok(v["items"]
            .as_array()
            .map(|a| a.iter().map(Node::from_json).collect())
            .unwrap_or_default())
    }

    /// Sets (overwrites) labels on a node with a JSON merge patch of
    /// `metadata.labels`; returns the node as the server has it now.
    pub fn set_node_labels(
        &self,
        node: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Node, Error> {
        for (k, v) in labels {
            crate::labels::validate_key(k)?;
            crate::labels::validate_value(k, v)?;
        }
        let v = self.client.patch(
            &format!("/api/v1/nodes/{}", seg(node)?),
            "application/merge-patch+json",
            &json!({ "metadata": { "labels": labels } }),
        )?;
        Ok(Node::from_json(&v))
    }

    /// The deployments of a namespace.
    pub fn deployments(&self, namespace: &str) -> Result<Vec<Deployment>, Error> {
        let v = self.client.get(&format!(
            "/apis/apps/v1/namespaces/{}/deployments",
            seg(namespace)?
        ))?;
        Ok(v["items"]
            .as_array()
            .map(|a| a.iter().map(Deployment::from_json).collect())
            .unwrap_or_default())
    }

    /// The pods of a namespace matching a label selector (`app=swh-toolbox`).
    pub fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, Error> {
        let mut path = format!("/api/v1/namespaces/{}/pods", seg(namespace)?);
        if !selector.is_empty() {
            path.push_str("?labelSelector=");
            for b in selector.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    path.push(b as char);
                } else {
                    path.push_str(&format!("%{b:02X}"));
                }
            }
        }
        let v = self.client.get(&path)?;
        Ok(v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| Pod {
                        name: p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        labels: Node::from_json(p).labels,
                        phase: p["status"]["phase"].as_str().unwrap_or("").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Runs `command` in `pod` of `namespace` through the WebSocket exec
    /// API ([`crate::exec`]); `timeout` bounds each wait for output.
    pub fn exec(
        &self,
        namespace: &str,
        pod: &str,
        command: &[&str],
        timeout: std::time::Duration,
    ) -> Result<ExecOutput, Error> {
        ExecClient::new(&self.resolved, timeout)?.exec(seg(namespace)?, seg(pod)?, command)
    }

    /// One deployment.
    pub fn deployment(&self, namespace: &str, name: &str) -> Result<Deployment, Error> {
        let v = self.client.get(&format!(
            "/apis/apps/v1/namespaces/{}/deployments/{}",
            seg(namespace)?,
            seg(name)?
        ))?;
        Ok(Deployment::from_json(&v))
    }
}
