//! Grafana deployment annotations: SWH's deploy checklists add one per
//! promotion (tags `deployment`, the environment, the service); swh-deploy
//! posts it itself at each promotion, rollback and migration when a Grafana
//! URL and token are configured.
//!
//! Configuration, from the environment only (never the command line):
//! [`URL_VAR`] (`https://grafana.example.org`; plain `http://` only on
//! loopback) and [`TOKEN_VAR`] (a service-account token, sent as `Bearer`,
//! never printed nor journaled: errors name the variable, not its value).
//! The request is Grafana's HTTP API `POST /api/annotations` with
//! `{"time": <ms since the epoch>, "tags": [...], "text": ...}`.

use crate::http::ApiClient;
use crate::{Error, Secret};
use serde_json::{json, Value};

/// The variable holding Grafana's base URL.
pub const URL_VAR: &str = "SWH_DEPLOY_GRAFANA_URL";
/// The variable holding the Grafana token.
pub const TOKEN_VAR: &str = "SWH_DEPLOY_GRAFANA_TOKEN";

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// The environment (`staging`, `production`...), the second tag.
    pub environment: String,
    /// The services or apps concerned, one tag each.
    pub services: Vec<String>,
    /// The text shown in Grafana.
    pub text: String,
}

impl Annotation {
    /// The tags: `deployment`, the environment, then each service.
    pub fn tags(&self) -> Vec<String> {
        let mut t = vec!["deployment".to_string(), self.environment.clone()];
        for s in &self.services {
            if !t.contains(s) {
                t.push(s.clone());
            }
        }
        t
    }
}

/// A configured Grafana.
#[derive(Debug, Clone)]
pub struct Grafana {
    client: ApiClient,
}

impl Grafana {
    /// The Grafana configured by [`URL_VAR`] and [`TOKEN_VAR`]; `None` when
    /// [`URL_VAR`] is unset or empty. A URL without a token is an error.
    pub fn from_env() -> Result<Option<Grafana>, Error> {
        let url = std::env::var(URL_VAR).unwrap_or_default();
        if url.trim().is_empty() {
            return Ok(None);
        }
        let token = std::env::var(TOKEN_VAR).unwrap_or_default();
        if token.is_empty() {
            return Err(Error::Config(format!(
                "{URL_VAR} is set but {TOKEN_VAR} is empty: Grafana needs a token to add annotations"
            )));
        }
        Ok(Some(Grafana::new(url.trim(), Secret::new(token))?))
    }

    /// A Grafana at `url` with `token`.
    pub fn new(url: &str, token: Secret) -> Result<Grafana, Error> {
        Ok(Grafana {
            client: ApiClient::new(url, None, Some(token), false)?,
        })
    }

    /// Posts `a`; returns Grafana's answer (`{"id": N, "message": ...}`).
    pub fn annotate(&self, a: &Annotation) -> Result<Value, Error> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.client.post(
            "/api/annotations",
            &json!({ "time": time, "tags": a.tags(), "text": a.text }),
        )
    }
}

/// What [`annotate_deployment`] did. Its `Display` is the line to show
/// on stderr (a failure is a warning: the deployment itself is done).
#[derive(Debug)]
pub enum Annotated {
    /// Grafana is not configured ([`URL_VAR`] unset or empty).
    NotConfigured,
    /// Posted, with these tags.
    Added(Vec<String>),
    /// Not posted: why (configuration or request).
    Failed(Error),
}

impl std::fmt::Display for Annotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Annotated::NotConfigured => Ok(()),
            Annotated::Added(tags) => write!(f, "grafana: annotation added ({})", tags.join(", ")),
            Annotated::Failed(e) => {
                write!(f, "swh-deploy: warning: grafana annotation not added: {e}")
            }
        }
    }
}

/// Posts `a` to the Grafana configured in the environment, if any.
pub fn annotate_deployment(a: &Annotation) -> Annotated {
    let grafana = match Grafana::from_env() {
        Ok(Some(g)) => g,
        Ok(None) => return Annotated::NotConfigured,
        Err(e) => return Annotated::Failed(e),
    };
    match grafana.annotate(a) {
        Ok(_) => Annotated::Added(a.tags()),
        Err(e) => Annotated::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_deployment_environment_services() {
        let a = Annotation {
            environment: "production".into(),
            services: vec!["swh_loader_git".into(), "swh_loader_git".into()],
            text: "x".into(),
        };
        assert_eq!(a.tags(), ["deployment", "production", "swh_loader_git"]);
    }

    #[test]
    fn outcomes_read_as_notes_or_warnings() {
        assert_eq!(Annotated::NotConfigured.to_string(), "");
        assert_eq!(
            Annotated::Added(vec!["deployment".into(), "staging".into()]).to_string(),
            "grafana: annotation added (deployment, staging)"
        );
        assert_eq!(
            Annotated::Failed(Error::Config("no token".into())).to_string(),
            "swh-deploy: warning: grafana annotation not added: no token"
        );
    }
}
