//! Rollout status of a deployment, by `kubectl rollout status`'s rules.

use serde_json::Value;

/// The fields of a Deployment the rollout rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.replicas` (Kubernetes defaults it to 1).
    pub spec_replicas: i64,
    /// `status.replicas` (old and new pods).
    pub replicas: i64,
    /// `status.updatedReplicas`.
    pub updated_replicas: i64,
    /// `status.availableReplicas`.
    pub available_replicas: i64,
    /// The `Progressing` condition: (status, reason, message), if present.
    pub progressing: Option<(String, String, String)>,
    /// The images of `spec.template.spec.containers`, in order.
    pub images: Vec<String>,
}

impl Deployment {
    /// Reads a Deployment object (missing counters are 0, as in the API).
    pub fn from_json(v: &Value) -> Deployment {
        let i = |p: &str| v.pointer(p).and_then(|x| x.as_i64()).unwrap_or(0);
        let progressing = v
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .and_then(|c| {
                c.iter()
                    .find(|c| c["type"].as_str() == Some("Progressing"))
                    .map(|c| {
                        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                        (s("status"), s("reason"), s("message"))
                    })
            });
        Deployment {
            name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            generation: i("/metadata/generation"),
            observed_generation: i("/status/observedGeneration"),
            spec_replicas: v
                .pointer("/spec/replicas")
                .and_then(|x| x.as_i64())
                .unwrap_or(1),
            replicas: i("/status/replicas"),
            updated_replicas: i("/status/updatedReplicas"),
            available_replicas: i("/status/availableReplicas"),
            progressing,
            images: v
                .pointer("/spec/template/spec/containers")
                .and_then(|c| c.as_array())
                .map(|c| {
                    c.iter()
                        .filter_map(|c| c["image"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The rollout state, by `kubectl rollout status`'s rules.
    pub fn rollout(&self) -> RolloutState {
        let n = &self.name;
        if self.generation > self.observed_generation {
            return RolloutState::Waiting(format!(
                "deployment {n}: waiting for spec update to be observed (generation {}, observed {})",
                self.generation, self.observed_generation
            ));
        }
        if let Some((_, reason, message)) = &self.progressing {
            if reason == "ProgressDeadlineExceeded" {
                return RolloutState::Failed(format!(
                    "deployment {n} exceeded its progress deadline (condition Progressing, reason ProgressDeadlineExceeded: {message})"
                ));
            }
        }
        if self.updated_replicas < self.spec_replicas {
            return RolloutState::Waiting(format!(
                "deployment {n}: {} out of {} new replicas have been updated",
                self.updated_replicas, self.spec_replicas
            ));
        }
        if self.replicas > self.updated_replicas {
            return RolloutState::Waiting(format!(
                "deployment {n}: {} old replicas are pending termination",
                self.replicas - self.updated_replicas
            ));
        }
        if self.available_replicas < self.updated_replicas {
            return RolloutState::Waiting(format!(
                "deployment {n}: {} of {} updated replicas are available",
                self.available_replicas, self.updated_replicas
            ));
        }
        RolloutState::Complete
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Successfully rolled out.
    Complete,
    /// Still rolling; why.
    Waiting(String),
    /// Failed (progress deadline exceeded); why.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(
        gen: i64,
        obs: i64,
        spec: i64,
        rep: i64,
        upd: i64,
        avail: i64,
        reason: &str,
    ) -> Deployment {
        Deployment::from_json(&json!({
            "metadata": {"name": "loader-git", "generation": gen},
            "spec": {"replicas": spec},
            "status": {"observedGeneration": obs, "replicas": rep, "updatedReplicas": upd,
                       "availableReplicas": avail,
                       "conditions": [{"type": "Progressing", "status": "True", "reason": reason, "message": "m"}]}
        }))
    }

    #[test]
    fn kubectl_rules_in_order() {
        assert_eq!(
            d(2, 2, 2, 2, 2, 2, "NewReplicaSetAvailable").rollout(),
            RolloutState::Complete
        );
        assert_eq!(
            d(3, 3, 2, 2, 2, 3, "NewReplicaSetAvailable").rollout(),
            RolloutState::Complete
        );
        let w = |x: Deployment| match x.rollout() {
            RolloutState::Waiting(m) => m,
            o => panic!("{o:?}"),
        };
        assert!(
            w(d(3, 2, 2, 2, 2, 2, "NewReplicaSetAvailable")).contains("spec update to be observed")
        );
        // Not observed yet wins over a stale deadline.
        assert!(w(d(3, 2, 2, 3, 1, 2, "ProgressDeadlineExceeded")).contains("observed"));
        assert!(w(d(2, 2, 2, 3, 1, 2, "ReplicaSetUpdated")).contains("1 out of 2 new replicas"));
        assert!(w(d(2, 2, 2, 3, 2, 2, "ReplicaSetUpdated")).contains("1 old replicas are pending"));
        assert!(w(d(2, 2, 2, 2, 2, 1, "ReplicaSetUpdated"))
            .contains("1 of 2 updated replicas are available"));
        match d(2, 2, 2, 3, 1, 2, "ProgressDeadlineExceeded").rollout() {
            RolloutState::Failed(m) => {
                assert!(m.contains("loader-git") && m.contains("ProgressDeadlineExceeded"))
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn missing_spec_replicas_defaults_to_one() {
        let x = Deployment::from_json(&json!({"metadata": {"name": "x", "generation": 1},
            "status": {"observedGeneration": 1}}));
        assert_eq!(x.spec_replicas, 1);
        assert!(matches!(x.rollout(), RolloutState::Waiting(_)));
    }
}
