//! `swh-deploy cluster`: the Kubernetes side of the runbook's "Deployment
//! with Kubernetes": node labels ("Check that the nodes are properly
//! labelled to receive the application") and waiting for Argo CD to have
//! rolled a chart revision out ("ArgoCD will be in charge of deploying the
//! changes in a rolling upgrade fashion").

use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use swh_deploy_cluster::affinity;
use swh_deploy_cluster::kube::Kube;
use swh_deploy_cluster::wait::{wait_environment, EnvWait, EnvWaitReport};
use swh_deploy_nodeset::NodeSet;
use swh_deploy_site::Site;

use super::app::load_site;
use swh_deploy_journal::Recorder;

/// Exit code: a gate not reached before `--timeout` (see `exit-codes`).
const EXIT_TIMEOUT: u8 = 6;

/// Arguments of `swh-deploy cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The site file (default: $SWH_DEPLOY_SITE, ./swh-deploy.toml,
    /// /etc/swh-deploy/site.toml, if present).
    #[arg(long, global = true, value_name = "FILE")]
    site: Option<PathBuf>,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Node labels: check them against the chart's nodeAffinity, set them.
    Labels {
        #[command(subcommand)]
        command: LabelsCommand,
    },
    /// Wait until an environment's Argo CD application is live at a chart
    /// revision (synced, operation succeeded, healthy) and the deployments
    /// of its namespace are rolled out. Exit 0 live, 1 failed (Degraded,
    /// ProgressDeadlineExceeded), 6 timeout.
    Wait {
        /// The environment (site file `[environments.ENV]`: its
        /// argocd_application, chart_branch, kube_context, namespace).
        env: String,
        /// The chart commit that must be live (full 40-hex id).
        #[arg(long, value_name = "SHA", conflicts_with = "branch_head")]
        revision: Option<String>,
        /// Wait for the head of the environment's chart branch on the
        /// remote (the default).
        #[arg(long)]
        branch_head: bool,
        /// Give up after this long (e.g. 15m, 90s).
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        timeout: Duration,
        /// Time between polls.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: Duration,
        /// The swh-charts checkout whose remote gives the branch head
        /// (default: $SWH_DEPLOY_CHARTS_DIR, else the site file's [charts]).
        #[arg(long, value_name = "DIR")]
        charts_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum LabelsCommand {
    /// The labels the chart's nodeAffinity requires vs the nodes' labels;
    /// exit 1 if a required label has no node.
    Check {
        #[command(flatten)]
        target: KubeTarget,
        /// Values files to read, in Helm's order (later ones override).
        #[arg(long = "values", value_name = "FILE", conflicts_with = "charts_dir")]
        values: Vec<PathBuf>,
        /// The swh-charts checkout: reads swh/values.yaml,
        /// swh/values/default.yaml and swh/values/<env>/*.yaml (default:
        /// $SWH_DEPLOY_CHARTS_DIR, else the site file's [charts] checkout).
        #[arg(long, value_name = "DIR")]
        charts_dir: Option<PathBuf>,
        /// Only this values section (e.g. loaders, listers, graphql);
        /// repeatable.
        #[arg(long = "app", value_name = "SECTION")]
        apps: Vec<String>,
    },
    /// Set labels on nodes, like `kubectl label --overwrite node N L=V`.
    Set {
        #[command(flatten)]
        target: KubeTarget,
        /// Node set, e.g. rancher-node-staging-rke2-worker[1-3].
        nodes: String,
        /// Labels, e.g. swh/loader=true.
        #[arg(required = true, value_name = "LABEL=VALUE")]
        labels: Vec<String>,
        /// Print what would be set; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which cluster: a kube context, or an environment's.
#[derive(Debug, Args)]
struct KubeTarget {
    /// The kube context (kubeconfig from $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "CTX", required_unless_present = "env")]
    context: Option<String>,
    /// The environment whose kube_context to use (site file).
    #[arg(long, value_name = "ENV")]
    env: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    swh_deploy_cluster::parse_duration(s)
}

/// Runs `swh-deploy cluster ...`.
pub fn run(args: ClusterArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy cluster: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: ClusterArgs) -> Result<ExitCode, String> {
    let site = load_site(args.site.as_deref())?;
    match args.command {
        ClusterCommand::Labels {
            command:
                LabelsCommand::Check {
                    target,
                    values,
                    charts_dir,
                    apps,
                },
        } => labels_check(site.as_ref(), &target, &values, charts_dir, &apps),
        ClusterCommand::Labels {
            command:
                LabelsCommand::Set {
                    target,
                    nodes,
                    labels,
                    dry_run,
                },
        } => labels_set(site.as_ref(), &target, &nodes, &labels, dry_run),
        ClusterCommand::Wait {
            env,
            revision,
            branch_head: _,
            timeout,
            interval,
            charts_dir,
        } => {
            let site = site.ok_or("cluster wait needs a site file (--site, $SWH_DEPLOY_SITE)")?;
            wait(&site, &env, revision, timeout, interval, charts_dir)
        }
    }
}

/// The kube context and (if known) the environment name of a target.
fn resolve_target(site: Option<&Site>, t: &KubeTarget) -> Result<(String, Option<String>), String> {
    if let Some(ctx) = &t.context {
        let env = t.env.clone().or_else(|| {
            site.and_then(|s| {
                s.environments
                    .values()
                    .find(|e| e.kube_context.as_deref() == Some(ctx))
                    .map(|e| e.name.clone())
            })
        });
        return Ok((ctx.clone(), env));
    }
    let name = t.env.as_deref().unwrap_or_default();
    let site = site.ok_or("--env needs a site file (--site, $SWH_DEPLOY_SITE)")?;
    let env = site.environment(name).map_err(|e| e.to_string())?;
    let ctx = env.kube_context.clone().ok_or_else(|| {
        format!(
            "{}: environment {name} has no kube_context; pass --context",
            site.path.display()
        )
    })?;
    Ok((ctx, Some(name.to_string())))
}

fn charts_checkout(arg: Option<PathBuf>, site: Option<&Site>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("SWH_DEPLOY_CHARTS_DIR").map(PathBuf::from))
        .or_else(|| {
            site.and_then(|s| s.charts.as_ref())
                .map(|c| c.checkout.clone())
        })
}

/// The values files of a swh-charts checkout for an environment, in Helm's
/// order: swh/values.yaml, swh/values/default.yaml, swh/values/<env>/
/// (default.yaml first, then the others by name).
fn chart_values_files(dir: &Path, env: Option<&str>) -> Result<Vec<PathBuf>, String> {
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
                .map_err(|e| format!("{}: {e}", d.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            names.sort_by_key(|p| (p.file_stem().is_none_or(|s| s != "default"), p.clone()));
            files.extend(names);
        }
    }
    if files.is_empty() {
        return Err(format!(
            "{}: no swh/values.yaml or swh/values/default.yaml: not a swh-charts checkout? (or pass --values FILE)",
            dir.display()
        ));
    }
    Ok(files)
}

fn fold(names: &[String]) -> String {
    match NodeSet::from_names(names.iter().map(String::as_str)) {
        Ok(ns) => ns.to_string(),
        Err(_) => names.join(","),
    }
}

fn labels_check(
    site: Option<&Site>,
    target: &KubeTarget,
    values: &[PathBuf],
    charts_dir: Option<PathBuf>,
    apps: &[String],
) -> Result<ExitCode, String> {
    let (ctx, env) = resolve_target(site, target)?;
    let files = if values.is_empty() {
        let dir = charts_checkout(charts_dir, site).ok_or(
            "no values files: pass --values FILE or --charts-dir DIR (or set [charts] in the site file)",
        )?;
        chart_values_files(&dir, env.as_deref())?
    } else {
        values.to_vec()
    };
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut reqs = affinity::requirements_from_files(&refs).map_err(|e| e.to_string())?;
    if !apps.is_empty() {
        let known: Vec<String> = reqs.iter().map(|r| r.section.clone()).collect();
        for a in apps {
            if !known
                .iter()
                .any(|k| k == a || k.starts_with(&format!("{a}.")))
            {
                return Err(format!(
                    "--app {a}: no nodeAffinity in a section {a} of {} (sections: {})",
                    files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    known.join(", ")
                ));
            }
        }
        reqs.retain(|r| {
            apps.iter()
                .any(|a| r.section == *a || r.section.starts_with(&format!("{a}.")))
        });
    }
    let kube = Kube::connect(&ctx).map_err(|e| e.to_string())?;
    let nodes = kube.nodes().map_err(|e| e.to_string())?;
    let (labels, unschedulable) = affinity::check(&reqs, &nodes);
    println!(
        "context {ctx}: {} node(s); {} required label(s) in {} section(s) of {}",
        nodes.len(),
        labels.len(),
        reqs.len(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let w = labels
        .iter()
        .map(|l| l.expr.display().len())
        .max()
        .unwrap_or(0);
    let mut missing = Vec::new();
    for l in &labels {
        let label = l.expr.display();
        let nodes = if l.nodes.is_empty() {
            missing.push(label.clone());
            "NO NODE".to_string()
        } else {
            fold(&l.nodes)
        };
        println!("  {label:<w$}  {nodes}  ({})", l.sections.join(", "));
    }
    for s in &unschedulable {
        println!("  section {s}: no single node has all the labels it requires");
    }
    if missing.is_empty() && unschedulable.is_empty() {
        println!("every required label is on at least one node");
        Ok(ExitCode::SUCCESS)
    } else {
        if !missing.is_empty() {
            println!(
                "{} label(s) with no node: {}; set them with `swh-deploy cluster labels set --context {ctx} NODES LABEL=VALUE`",
                missing.len(),
                missing.join(" ")
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

fn labels_set(
    site: Option<&Site>,
    target: &KubeTarget,
    nodes: &str,
    labels: &[String],
    dry_run: bool,
) -> Result<ExitCode, String> {
    let (ctx, _) = resolve_target(site, target)?;
    let set = NodeSet::parse(nodes).map_err(|e| format!("node set {nodes:?}: {e}"))?;
    let names: Vec<String> = set.iter().collect();
    if names.is_empty() {
        return Err(format!("node set {nodes:?} is empty"));
    }
    let mut wanted = BTreeMap::new();
    for l in labels {
        let (k, v) = swh_deploy_cluster::labels::parse_assignment(l).map_err(|e| e.to_string())?;
        wanted.insert(k, v);
    }
    let kube = Kube::connect(&ctx).map_err(|e| e.to_string())?;
    let existing = kube.nodes().map_err(|e| e.to_string())?;
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !existing.iter().any(|e| &e.name == *n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "context {ctx}: no such node(s): {} (nodes: {}); nothing changed",
            fold(&unknown),
            fold(&existing.iter().map(|n| n.name.clone()).collect::<Vec<_>>())
        ));
    }
    let assignment = labels.join(" ");
    if dry_run {
        for n in &names {
            let cur = &existing.iter().find(|e| &e.name == n).unwrap().labels;
            let changes: Vec<String> = wanted
                .iter()
                .filter(|(k, v)| cur.get(*k) != Some(*v))
                .map(|(k, v)| match cur.get(k) {
                    Some(old) => format!("{k}: {old} -> {v}"),
                    None => format!("{k}={v} (new)"),
                })
                .collect();
            if changes.is_empty() {
                println!("node/{n}: already labelled ({assignment})");
            } else {
                println!("dry run: would label node/{n}: {}", changes.join(", "));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rec = Recorder::start(
        "cluster labels set",
        serde_json::json!({ "context": ctx, "nodes": set.to_string(), "labels": wanted }),
    )
    .map_err(|e| e.to_string())?;
    for n in &names {
        rec.step(&format!("label --overwrite node {n} {assignment}"), n);
        match kube.set_node_labels(n, &wanted) {
            Ok(_) => println!("node/{n} labeled"),
            Err(e) => {
                rec.finish(false);
                return Err(format!("node {n}: {e}"));
            }
        }
    }
    rec.finish(true);
    Ok(ExitCode::SUCCESS)
}

/// The head of `branch` on the charts checkout's remote
/// ([`swh_deploy_cluster::wait::remote_branch_head`]).
pub(crate) fn remote_branch_head(
    site: &Site,
    charts_dir: Option<PathBuf>,
    branch: &str,
) -> Result<String, String> {
    let dir = charts_checkout(charts_dir, None);
    swh_deploy_cluster::wait::remote_branch_head(site, dir.as_deref(), branch)
        .map_err(|e| e.to_string())
}

/// `cluster wait ENV` ([`wait_environment`]): progress on stderr, the
/// outcome as the exit code (0 live, 1 failed, 6 timeout).
pub(crate) fn wait(
    site: &Site,
    env_name: &str,
    revision: Option<String>,
    timeout: Duration,
    interval: Duration,
    charts_dir: Option<PathBuf>,
) -> Result<ExitCode, String> {
    let charts_dir = charts_checkout(charts_dir, None);
    let req = EnvWait {
        site,
        env: env_name,
        revision: revision.as_deref(),
        charts_dir: charts_dir.as_deref(),
        timeout,
        interval,
    };
    let report = wait_environment(&req, &mut |ev| eprintln!("{ev}")).map_err(|e| e.to_string())?;
    Ok(render_wait(&report))
}

/// Prints how a wait ended (live on stdout, else on stderr) and returns
/// its exit code: 0 live, 1 failed, 6 timeout.
pub(crate) fn render_wait(report: &EnvWaitReport) -> ExitCode {
    if report.is_live() {
        println!("{report}");
        ExitCode::SUCCESS
    } else {
        eprintln!("swh-deploy cluster wait: {report}");
        if report.timed_out() {
            ExitCode::from(EXIT_TIMEOUT)
        } else {
            ExitCode::FAILURE
        }
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
}
