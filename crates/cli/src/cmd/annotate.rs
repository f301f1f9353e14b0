//! Grafana deployment annotations (`swh_deploy_cluster::grafana`) for the
//! commands that deploy: `chart promote`, `chart rollback`, `rollback`.
//! Posted only when `SWH_DEPLOY_GRAFANA_URL` is set; a failure to annotate
//! is a warning (the deployment itself is done), never a failed command.

use swh_deploy_cluster::grafana::{Annotation, Grafana};

/// Posts an annotation tagged `deployment`, `environment` and each of
/// `services`, when Grafana is configured.
pub(crate) fn annotate(environment: &str, services: &[String], text: &str) {
    let grafana = match Grafana::from_env() {
        Ok(Some(g)) => g,
        Ok(None) => return,
        Err(e) => {
            eprintln!("swh-deploy: warning: grafana annotation not added: {e}");
            return;
        }
    };
    let a = Annotation {
        environment: environment.to_string(),
        services: services.to_vec(),
        text: text.to_string(),
    };
    match grafana.annotate(&a) {
        Ok(_) => eprintln!("grafana: annotation added ({})", a.tags().join(", ")),
        Err(e) => eprintln!("swh-deploy: warning: grafana annotation not added: {e}"),
    }
}

/// The annotation of a pushed `chart promote`: tagged with the target
/// environment and the apps whose image versions changed.
pub(crate) fn annotate_promotion(plan: &swh_deploy_charts::PromoteOutcome) {
    let keys: Vec<String> = plan.changes.iter().map(|(k, _, _)| k.clone()).collect();
    let what: Vec<String> = plan
        .changes
        .iter()
        .map(|(k, a, b)| {
            format!(
                "{k} {} -> {}",
                a.as_deref().unwrap_or("(absent)"),
                b.as_deref().unwrap_or("(absent)")
            )
        })
        .collect();
    let head = plan.new_head.as_deref().unwrap_or("");
    annotate(
        plan.to.branch(),
        &keys,
        &format!(
            "chart promote {} -> {}: {} ({} at {})",
            plan.from,
            plan.to,
            if what.is_empty() {
                "no image change".to_string()
            } else {
                what.join(", ")
            },
            plan.to,
            &head[..head.len().min(12)]
        ),
    );
}
