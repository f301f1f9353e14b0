//! Grafana deployment annotations (`swh_deploy_cluster::grafana`) for the
//! commands that deploy: `chart promote`, `chart rollback`, `rollback`.
//! Posted only when `SWH_DEPLOY_GRAFANA_URL` is set; a failure to annotate
//! is a warning (the deployment itself is done), never a failed command.

use swh_deploy_cluster::grafana::{annotate_deployment, Annotated, Annotation};

/// Posts an annotation tagged `deployment`, `environment` and each of
/// `services`, when Grafana is configured
/// ([`swh_deploy_cluster::grafana::annotate_deployment`]).
pub(crate) fn annotate(environment: &str, services: &[String], text: &str) {
    let a = Annotation {
        environment: environment.to_string(),
        services: services.to_vec(),
        text: text.to_string(),
    };
    match annotate_deployment(&a) {
        Annotated::NotConfigured => {}
        done => eprintln!("{done}"),
    }
}
