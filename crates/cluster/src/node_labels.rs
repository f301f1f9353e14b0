//! `cluster labels check` and `cluster labels set`, whole: which cluster
//! (a kube context, or an environment's), which values files (given, or a
//! swh-charts checkout's in Helm's order), the labels the chart's
//! nodeAffinity requires against the nodes' labels, and labelling nodes
//! (journaled as a `cluster labels set` run).
//!
//! Nothing here prints: [`check_labels`] returns a [`LabelsReport`] whose
//! `Display` is the report; [`set_labels`] hands each line to the caller.

use crate::affinity::{self, LabelCheck};
use crate::kube::Kube;
use crate::Error;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use swh_deploy_journal::{JournalError, Recorder};
use swh_deploy_nodeset::{fold, NodeSet};
use swh_deploy_site::Site;

/// Errors of `cluster labels`.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// Bad input, configuration, or the API.
    #[error(transparent)]
    Cluster(#[from] Error),
    /// Labelling one node failed (the nodes before it are labelled).
    #[error("node {node}: {source}")]
    Node {
        /// The node.
        node: String,
        /// Why.
        source: Error,
    },
    /// The journal could not be opened.
    #[error("{0}")]
    Journal(#[from] JournalError),
}

impl LabelsError {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// Which cluster: a kube context, or an environment's `kube_context`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeTarget<'a> {
    /// The kube context.
    pub context: Option<&'a str>,
    /// The environment (site file).
    pub env: Option<&'a str>,
}

/// The kube context of `t` and the environment's name when known (given,
/// or the site's environment with that context).
pub fn resolve_target(
    site: Option<&Site>,
    t: &KubeTarget<'_>,
) -> Result<(String, Option<String>), Error> {
    if let Some(ctx) = t.context {
        let env = t.env.map(String::from).or_else(|| {
            site.and_then(|s| {
                s.environments
                    .values()
                    .find(|e| e.kube_context.as_deref() == Some(ctx))
                    .map(|e| e.name.clone())
            })
        });
        return Ok((ctx.to_string(), env));
    }
    let name = t.env.unwrap_or_default();
    let site = site.ok_or_else(|| {
        Error::Config("--env needs a site file (--site, $SWH_DEPLOY_SITE)".into())
    })?;
    let env = site
        .environment(name)
        .map_err(|e| Error::Config(e.to_string()))?;
    let ctx = env.kube_context.clone().ok_or_else(|| {
        Error::Config(format!(
            "{}: environment {name} has no kube_context; pass --context",
            site.path.display()
        ))
    })?;
    Ok((ctx, Some(name.to_string())))
}

/// The values files of a swh-charts checkout for an environment, in Helm's
/// order: swh/values.yaml, swh/values/default.yaml, swh/values/<env>/
/// (default.yaml first, then the others by name).
pub fn chart_values_files(dir: &Path, env: Option<&str>) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for f in ["swh/values.yaml", "swh/values/default.yaml"] {
        let p = dir.join(f);
        if p.is_file() {
            files.push(p);
        }
    }
    if let Some(env) = env {
        let d = dir.join("swh/values").join(env);
        if d.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&d)
                .map_err(|e| Error::Input(format!("{}: {e}", d.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            names.sort_by_key(|p| (p.file_stem().is_none_or(|s| s != "default"), p.clone()));
            files.extend(names);
        }
    }
    if files.is_empty() {
        return Err(Error::Input(format!(
            "{}: no swh/values.yaml or swh/values/default.yaml: not a swh-charts checkout? (or pass --values FILE)",
            dir.display()
        )));
    }
    Ok(files)
}

/// `cluster labels check`: what to check.
#[derive(Debug, Clone, Copy)]
pub struct LabelsCheck<'a> {
    /// The cluster.
    pub target: KubeTarget<'a>,
    /// Values files, in Helm's order; empty: those of the checkout.
    pub values: &'a [PathBuf],
    /// The swh-charts checkout (None: the site file's `[charts]
    /// checkout`), read when `values` is empty.
    pub charts_dir: Option<&'a Path>,
    /// Only these values sections (and their subsections); empty: all.
    pub apps: &'a [String],
}

/// What [`check_labels`] found. `Display` is the report; [`LabelsReport::ok`]
/// tells whether every requirement can be scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsReport {
    /// The kube context.
    pub context: String,
    /// How many nodes the cluster has.
    pub nodes: usize,
    /// How many values sections have requirements.
    pub sections: usize,
    /// The values files read.
    pub files: Vec<PathBuf>,
    /// Each required label and the nodes that have it.
    pub labels: Vec<LabelCheck>,
    /// Sections no single node can run.
    pub unschedulable: Vec<String>,
}

impl LabelsReport {
    /// Every required label is on a node and every section schedulable.
    pub fn ok(&self) -> bool {
        self.missing().is_empty() && self.unschedulable.is_empty()
    }

    /// The required labels no node has.
    pub fn missing(&self) -> Vec<String> {
        self.labels
            .iter()
            .filter(|l| l.nodes.is_empty())
            .map(|l| l.expr.display())
            .collect()
    }
}

fn files_text(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for LabelsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "context {}: {} node(s); {} required label(s) in {} section(s) of {}",
            self.context,
            self.nodes,
            self.labels.len(),
            self.sections,
            files_text(&self.files)
        )?;
        let w = self
            .labels
            .iter()
            .map(|l| l.expr.display().len())
            .max()
            .unwrap_or(0);
        for l in &self.labels {
            let label = l.expr.display();
            let nodes = if l.nodes.is_empty() {
                "NO NODE".to_string()
            } else {
                fold(&l.nodes)
            };
            write!(f, "\n  {label:<w$}  {nodes}  ({})", l.sections.join(", "))?;
        }
        for s in &self.unschedulable {
            write!(
                f,
                "\n  section {s}: no single node has all the labels it requires"
            )?;
        }
        let missing = self.missing();
        if self.ok() {
            write!(f, "\nevery required label is on at least one node")?;
        } else if !missing.is_empty() {
            write!(
                f,
                "\n{} label(s) with no node: {}; set them with `swh-deploy cluster labels set --context {} NODES LABEL=VALUE`",
                missing.len(),
                missing.join(" "),
                self.context
            )?;
        }
        Ok(())
    }
}

/// The labels the chart's nodeAffinity requires (in `req.values`, or the
/// checkout's values files for the target's environment), against the
/// cluster's nodes.
pub fn check_labels(site: Option<&Site>, req: &LabelsCheck<'_>) -> Result<LabelsReport, Error> {
    let (ctx, env) = resolve_target(site, &req.target)?;
    let files = if req.values.is_empty() {
        let dir = req
            .charts_dir
            .map(Path::to_path_buf)
            .or_else(|| site.and_then(|s| s.charts.as_ref()).map(|c| c.checkout.clone()))
            .ok_or_else(|| Error::Input(
                "no values files: pass --values FILE or --charts-dir DIR (or set [charts] in the site file)".into(),
            ))?;
        chart_values_files(&dir, env.as_deref())?
    } else {
        req.values.to_vec()
    };
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut reqs = affinity::requirements_from_files(&refs)?;
    if !req.apps.is_empty() {
        let in_section = |s: &str, a: &str| s == a || s.starts_with(&format!("{a}."));
        let known: Vec<String> = reqs.iter().map(|r| r.section.clone()).collect();
        if let Some(a) = req
            .apps
            .iter()
            .find(|a| !known.iter().any(|k| in_section(k, a)))
        {
            return Err(Error::Input(format!(
                "--app {a}: no nodeAffinity in a section {a} of {} (sections: {})",
                files_text(&files),
                known.join(", ")
            )));
        }
        reqs.retain(|r| req.apps.iter().any(|a| in_section(&r.section, a)));
    }
    let kube = Kube::connect(&ctx)?;
    let nodes = kube.nodes()?;
    let (labels, unschedulable) = affinity::check(&reqs, &nodes);
    Ok(LabelsReport {
        context: ctx,
        nodes: nodes.len(),
        sections: reqs.len(),
        files,
        labels,
        unschedulable,
    })
}

/// `cluster labels set`: which nodes get which labels.
#[derive(Debug, Clone, Copy)]
pub struct LabelsSet<'a> {
    /// The cluster.
    pub target: KubeTarget<'a>,
    /// The node set (`rancher-node-staging-rke2-worker[1-3]`).
    pub nodes: &'a str,
    /// `LABEL=VALUE` assignments.
    pub labels: &'a [String],
    /// Show what would change; change nothing.
    pub dry_run: bool,
    /// The journal (`None`: the default one).
    pub journal: Option<&'a Path>,
}

/// Sets labels on nodes as `kubectl label --overwrite` does, journaled as
/// a `cluster labels set` run; with `dry_run`, says what would change.
/// Every node must exist before anything is changed. `on` gets one line
/// per node.
pub fn set_labels(
    site: Option<&Site>,
    req: &LabelsSet<'_>,
    on: &mut dyn FnMut(&str),
) -> Result<(), LabelsError> {
    let (ctx, _) = resolve_target(site, &req.target)?;
    let nodes = req.nodes;
    let set =
        NodeSet::parse(nodes).map_err(|e| Error::Input(format!("node set {nodes:?}: {e}")))?;
    let names: Vec<String> = set.iter().collect();
    if names.is_empty() {
        return Err(Error::Input(format!("node set {nodes:?} is empty")).into());
    }
    let mut wanted = BTreeMap::new();
    for l in req.labels {
        let (k, v) = crate::labels::parse_assignment(l)?;
        wanted.insert(k, v);
    }
    let kube = Kube::connect(&ctx)?;
    let existing = kube.nodes()?;
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !existing.iter().any(|e| &e.name == *n))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Input(format!(
            "context {ctx}: no such node(s): {} (nodes: {}); nothing changed",
            fold(&unknown),
            fold(existing.iter().map(|n| n.name.as_str()))
        ))
        .into());
    }
    let assignment = req.labels.join(" ");
    if req.dry_run {
        for n in &names {
            let cur = existing
                .iter()
                .find(|e| &e.name == n)
                .map(|e| e.labels.clone())
                .unwrap_or_default();
            on(&dry_run_line(n, &cur, &wanted, &assignment));
        }
        return Ok(());
    }
    let mut rec = Recorder::start(
        req.journal,
        "cluster labels set",
        serde_json::json!({ "context": ctx, "nodes": set.to_string(), "labels": wanted }),
    )?;
    for n in &names {
        rec.step(&format!("label --overwrite node {n} {assignment}"), n);
        if let Err(source) = kube.set_node_labels(n, &wanted) {
            rec.finish(false);
            return Err(LabelsError::Node {
                node: n.clone(),
                source,
            });
        }
        on(&format!("node/{n} labeled"));
    }
    rec.finish(true);
    Ok(())
}

/// What a dry run says for one node whose labels are `cur`.
fn dry_run_line(
    node: &str,
    cur: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
    assignment: &str,
) -> String {
    let changes: Vec<String> = wanted
        .iter()
        .filter(|(k, v)| cur.get(*k) != Some(*v))
        .map(|(k, v)| match cur.get(k) {
            Some(old) => format!("{k}: {old} -> {v}"),
            None => format!("{k}={v} (new)"),
        })
        .collect();
    if changes.is_empty() {
        format!("node/{node}: already labelled ({assignment})")
    } else {
        format!("dry run: would label node/{node}: {}", changes.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_files_in_helm_order() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "swh/values.yaml",
            "swh/values/default.yaml",
            "swh/values/production/swh-cassandra.yaml",
            "swh/values/production/default.yaml",
            "swh/values/staging/default.yaml",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "a: 1\n").unwrap();
        }
        let files = chart_values_files(d.path(), Some("production")).unwrap();
        let rel: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "swh/values.yaml",
                "swh/values/default.yaml",
                "swh/values/production/default.yaml",
                "swh/values/production/swh-cassandra.yaml"
            ]
        );
        assert_eq!(chart_values_files(d.path(), None).unwrap().len(), 2);
        assert!(chart_values_files(&d.path().join("swh"), None).is_err());
    }

    #[test]
    fn targets_by_context_or_environment() {
        let site = Site::parse(
            "[environments.staging]\nkube_context = \"k-staging\"\n[environments.bare]\n",
            Path::new("site.toml"),
        )
        .unwrap();
        let t = |context, env| KubeTarget { context, env };
        assert_eq!(
            resolve_target(Some(&site), &t(Some("k-staging"), None)).unwrap(),
            ("k-staging".into(), Some("staging".into()))
        );
        assert_eq!(
            resolve_target(None, &t(Some("other"), None)).unwrap(),
            ("other".into(), None)
        );
        assert_eq!(
            resolve_target(Some(&site), &t(None, Some("staging"))).unwrap(),
            ("k-staging".into(), Some("staging".into()))
        );
        let e = resolve_target(Some(&site), &t(None, Some("bare"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "site.toml: environment bare has no kube_context; pass --context"
        );
        assert!(resolve_target(None, &t(None, Some("staging")))
            .unwrap_err()
            .to_string()
            .contains("--env needs a site file"));
    }

    #[test]
    fn dry_run_lines_show_only_changes() {
        let cur: BTreeMap<String, String> =
            [("swh/loader".to_string(), "false".to_string())].into();
        let mut wanted: BTreeMap<String, String> =
            [("swh/loader".to_string(), "true".to_string())].into();
        assert_eq!(
            dry_run_line("w1", &cur, &wanted, "swh/loader=true"),
            "dry run: would label node/w1: swh/loader: false -> true"
        );
        wanted.insert("swh/lister".into(), "true".into());
        assert_eq!(
            dry_run_line("w1", &cur, &wanted, "x"),
            "dry run: would label node/w1: swh/lister=true (new), swh/loader: false -> true"
        );
        assert_eq!(
            dry_run_line("w1", &wanted, &wanted, "a=b"),
            "node/w1: already labelled (a=b)"
        );
    }

    #[test]
    fn the_report_names_labels_without_nodes_and_how_to_set_them() {
        let expr = |k: &str| affinity::Expr {
            key: k.into(),
            operator: "In".into(),
            values: vec!["true".into()],
        };
        let mut r = LabelsReport {
            context: "k".into(),
            nodes: 3,
            sections: 2,
            files: vec![PathBuf::from("v.yaml")],
            labels: vec![
                LabelCheck {
                    expr: expr("swh/loader"),
                    sections: vec!["loaders".into()],
                    nodes: vec!["w1".into(), "w2".into()],
                },
                LabelCheck {
                    expr: expr("swh/lister"),
                    sections: vec!["listers".into()],
                    nodes: vec![],
                },
            ],
            unschedulable: vec![],
        };
        assert!(!r.ok());
        let text = r.to_string();
        assert!(
            text.starts_with(
                "context k: 3 node(s); 2 required label(s) in 2 section(s) of v.yaml\n"
            ),
            "{text}"
        );
        assert!(text.contains("w[1-2]  (loaders)"), "{text}");
        assert!(text.contains("NO NODE  (listers)"), "{text}");
        assert!(
            text.ends_with(
                "set them with `swh-deploy cluster labels set --context k NODES LABEL=VALUE`"
            ),
            "{text}"
        );
        r.labels.pop();
        assert!(r.ok());
        assert!(r
            .to_string()
            .ends_with("\nevery required label is on at least one node"));
    }
}
