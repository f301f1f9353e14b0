//! `swh-deploy cluster`: the Kubernetes side of the runbook's "Deployment
//! with Kubernetes": node labels ("Check that the nodes are properly
//! labelled to receive the application") and waiting for Argo CD to have
//! rolled a chart revision out ("ArgoCD will be in charge of deploying the
//! changes in a rolling upgrade fashion").

use crate::events::{EventPrinter, Tick};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use swh_deploy_charts::long_migrate::{long_migrate, LongEvent, LongMigrateRequest, LongMigrated};
use swh_deploy_charts::ChartsRepo;
use swh_deploy_cluster::migrate::{migrate, MigrateRequest, TOOLBOX_SELECTOR};
use swh_deploy_cluster::node_labels::{self, LabelsCheck, LabelsReport, LabelsSet};
use swh_deploy_cluster::wait::{wait_environment, EnvWait, EnvWaitReport, WaitOutcome};

use super::app::load_site;
use crate::error::{CliError, CmdResult, Exit};
use crate::settings::{self, Env, Settings};

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
        #[arg(long, default_value = "15m", value_parser = swh_deploy_util::duration::parse)]
        timeout: Duration,
        /// Time between polls.
        #[arg(long, default_value = "5s", value_parser = swh_deploy_util::duration::parse)]
        interval: Duration,
        /// The swh-charts checkout whose remote gives the branch head
        /// (default: $SWH_DEPLOY_CHARTS_DIR, else the site file's [charts]).
        #[arg(long, value_name = "DIR")]
        charts_dir: Option<PathBuf>,
        /// Print how the wait ended as JSON on stdout (schema 1,
        /// docs/json.md); progress stays on stderr.
        #[arg(long)]
        json: bool,
    },
    /// Run a service's database migration in the environment's toolbox
    /// pod: `check-SERVICE-db-version.sh` (exit 0 up to date, 2 migration
    /// needed), then `migrate-SERVICE-db-version.sh` and the check again.
    /// Journaled; Grafana annotation when configured.
    Migrate {
        /// The environment (site file `[environments.ENV]`: its
        /// kube_context and namespace).
        env: String,
        /// The service, e.g. storage, scheduler.
        service: String,
        /// Only run the check; never migrate, journal nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run the migration without asking (needed when stdin is not a
        /// terminal).
        #[arg(long)]
        yes: bool,
        /// The label selector of the toolbox pod.
        #[arg(long, default_value = TOOLBOX_SELECTOR, value_name = "SELECTOR")]
        selector: String,
        /// Give up when a command is silent this long (with --disable,
        /// also each Argo CD wait).
        #[arg(long, default_value = "1h", value_parser = swh_deploy_util::duration::parse)]
        timeout: Duration,
        /// The long-standing mode: turn these worker groups off first
        /// (GROUP or GROUP.DEPLOYMENT, comma-separated, e.g.
        /// loaders,listers): a commit setting `enabled: false` in
        /// swh/values/BRANCH/default.yaml on the environment's chart
        /// branch, pushed; wait until Argo CD has scaled them to 0;
        /// migrate; `git revert` that commit, push, wait until live. The
        /// revert is journaled first: `recover` makes it after a crash.
        #[arg(long, value_name = "GROUP[,GROUP...]", value_delimiter = ',')]
        disable: Vec<String>,
        /// With --disable: time between polls while waiting.
        #[arg(long, default_value = "5s", value_parser = swh_deploy_util::duration::parse)]
        interval: Duration,
        /// With --disable: the swh-charts checkout (default:
        /// $SWH_DEPLOY_CHARTS_DIR, else the site file's [charts]).
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
        /// Print the report as JSON (schema 1, docs/json.md).
        #[arg(long)]
        json: bool,
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

impl KubeTarget {
    fn target(&self) -> node_labels::KubeTarget<'_> {
        node_labels::KubeTarget {
            context: self.context.as_deref(),
            env: self.env.as_deref(),
        }
    }
}

/// Runs `swh-deploy cluster ...`.
pub fn run(args: ClusterArgs) -> CmdResult {
    run_inner(args).map_err(|e| e.in_command("cluster"))
}

fn run_inner(args: ClusterArgs) -> CmdResult {
    let env = Env::process();
    let flags = |charts_dir: Option<PathBuf>| settings::Args {
        site: args.site.clone(),
        charts_dir,
        ..settings::Args::default()
    };
    let site =
        load_site(Settings::site_path(&flags(None), &env).as_deref()).map_err(CliError::failed)?;
    let site = site.as_ref();
    match &args.command {
        ClusterCommand::Labels {
            command:
                LabelsCommand::Check {
                    target,
                    values,
                    charts_dir,
                    apps,
                    json,
                },
        } => {
            // The checkout of --charts-dir or $SWH_DEPLOY_CHARTS_DIR; the
            // library falls back to the site file's.
            let settings = Settings::resolve(&flags(charts_dir.clone()), &env, None);
            let report = node_labels::check_labels(
                site,
                &LabelsCheck {
                    target: target.target(),
                    values,
                    charts_dir: settings.charts_dir.as_deref(),
                    apps,
                },
            )?;
            if *json {
                crate::json::print(&labels_json(&report))?;
            } else {
                println!("{report}");
            }
            Ok(if report.ok() {
                Exit::Success
            } else {
                Exit::Failed
            })
        }
        ClusterCommand::Labels {
            command:
                LabelsCommand::Set {
                    target,
                    nodes,
                    labels,
                    dry_run,
                },
        } => {
            let journal = Settings::journal_path(None, &env);
            let req = LabelsSet {
                target: target.target(),
                nodes,
                labels,
                dry_run: *dry_run,
                journal: journal.as_deref(),
            };
            node_labels::set_labels(site, &req, &mut |line| println!("{line}"))?;
            Ok(Exit::Success)
        }
        ClusterCommand::Wait {
            env: env_name,
            revision,
            branch_head: _,
            timeout,
            interval,
            charts_dir,
            json,
        } => {
            let site = site.ok_or_else(|| {
                CliError::failed("cluster wait needs a site file (--site, $SWH_DEPLOY_SITE)")
            })?;
            let settings = Settings::resolve(&flags(charts_dir.clone()), &env, None);
            let req = EnvWait {
                site,
                env: env_name,
                revision: revision.as_deref(),
                charts_dir: settings.charts_dir.as_deref(),
                timeout: *timeout,
                interval: *interval,
            };
            let mut printer = EventPrinter::default();
            let report = wait_environment(&req, &mut |ev| {
                printer.show(true, ev, ev.waiting().map(Tick::Wait))
            })?;
            drop(printer);
            if *json {
                crate::json::print(&wait_json(&report))?;
            }
            Ok(render_wait(&report, !*json))
        }
        ClusterCommand::Migrate {
            env: env_name,
            service,
            dry_run,
            yes,
            selector,
            timeout,
            disable,
            interval,
            charts_dir,
        } => {
            let site = site.ok_or_else(|| {
                CliError::failed("cluster migrate needs a site file (--site, $SWH_DEPLOY_SITE)")
            })?;
            let journal = Settings::journal_path(None, &env);
            if !disable.is_empty() {
                let settings = Settings::resolve(&flags(charts_dir.clone()), &env, Some(site));
                let dir = settings.charts_dir.clone().ok_or_else(|| {
                    CliError::failed(
                        "cluster migrate --disable needs the swh-charts checkout (--charts-dir, $SWH_DEPLOY_CHARTS_DIR or the site file's [charts])",
                    )
                })?;
                let mut repo = ChartsRepo::open(&dir)?;
                if let Some(c) = &site.charts {
                    repo = repo.with_remote(&c.remote);
                }
                let req = LongMigrateRequest {
                    site,
                    env: env_name,
                    service,
                    groups: disable,
                    selector,
                    dry_run: *dry_run,
                    timeout: *timeout,
                    interval: *interval,
                    journal: journal.as_deref(),
                };
                let mut printer = EventPrinter::default();
                let done = long_migrate(
                    &repo,
                    &dir,
                    &req,
                    &mut |plan| {
                        *yes || ask(
                            &format!(
                                "commit `enabled: false` for {} on {}, migrate {service}, revert",
                                disable.join(","),
                                plan.branch
                            ),
                            "the cluster",
                        )
                    },
                    &mut |ev| {
                        let tick = match ev {
                            LongEvent::Migrate(m) => m.running().map(Tick::Run),
                            LongEvent::Wait(w) => w.waiting().map(Tick::Wait),
                            _ => None,
                        };
                        printer.show(ev.is_diagnostic(), ev, tick)
                    },
                )?;
                drop(printer);
                if let LongMigrated::Done {
                    disabled, reverted, ..
                } = done
                {
                    println!(
                        "done: {} turned off by {disabled}, back on by its revert {reverted}",
                        disable.join(",")
                    );
                }
                return Ok(Exit::Success);
            }
            let req = MigrateRequest {
                site,
                env: env_name,
                service,
                selector,
                dry_run: *dry_run,
                timeout: *timeout,
                journal: journal.as_deref(),
            };
            let mut printer = EventPrinter::default();
            let done = migrate(
                &req,
                &mut |command, pod| *yes || ask(command, pod),
                &mut |ev| printer.show(ev.is_diagnostic(), ev, ev.running().map(Tick::Run)),
            )?;
            drop(printer);
            println!("{done}");
            Ok(Exit::Success)
        }
    }
}

/// Asks on the terminal whether to run `command` in `pod`; false when
/// stdin is not a terminal.
fn ask(command: &str, pod: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("run {command} in {pod}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes")
}

/// Prints how a wait ended (live on stdout when `live_line`, else on
/// stderr) and returns its exit: success when live, [`Exit::Failed`] when
/// the rollout failed, [`Exit::Timeout`] when the timeout passed first.
pub(crate) fn render_wait(report: &EnvWaitReport, live_line: bool) -> Exit {
    if report.is_live() {
        if live_line {
            println!("{report}");
        }
        Exit::Success
    } else {
        eprintln!("swh-deploy cluster wait: {report}");
        if report.timed_out() {
            Exit::Timeout
        } else {
            Exit::Failed
        }
    }
}

/// `cluster labels check --json`'s body: the report's fields, each required
/// label with its sections and nodes, the labels no node has, and `ok`.
fn labels_json(report: &LabelsReport) -> serde_json::Value {
    let labels: Vec<serde_json::Value> = report
        .labels
        .iter()
        .map(|l| {
            serde_json::json!({
                "label": l.expr.display(),
                "sections": l.sections,
                "nodes": l.nodes,
            })
        })
        .collect();
    serde_json::json!({
        "context": report.context,
        "nodes": report.nodes,
        "sections": report.sections,
        "files": report.files,
        "labels": labels,
        "missing": report.missing(),
        "unschedulable": report.unschedulable,
        "ok": report.ok(),
    })
}

/// `cluster wait --json`'s body: the environment, revision and namespace,
/// then `status` (`live`, `failed`, `timeout`) with the Argo CD application
/// and the deployments rolled out when live, else `detail`.
fn wait_json(report: &EnvWaitReport) -> serde_json::Value {
    let mut v = serde_json::json!({
        "environment": report.env,
        "revision": report.revision,
        "namespace": report.namespace,
        "deployments_checked": report.deployments_checked,
        "timeout_s": report.timeout.as_secs_f64(),
    });
    match &report.outcome {
        WaitOutcome::Live { app, deployments } => {
            v["status"] = "live".into();
            v["application"] = serde_json::json!({
                "name": app.name,
                "sync": app.sync,
                "revision": app.revision,
                "health": app.health,
                "phase": app.phase,
            });
            v["deployments"] = (*deployments).into();
        }
        WaitOutcome::Failed(why) => {
            v["status"] = "failed".into();
            v["detail"] = why.as_str().into();
        }
        WaitOutcome::TimedOut(last) => {
            v["status"] = "timeout".into();
            v["detail"] = last.as_str().into();
        }
    }
    v
}
