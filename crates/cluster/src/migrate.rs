//! `cluster migrate ENV SERVICE`: a service's database schema migration in
//! the toolbox pod, as SWH's sysadmins run it by hand: in the toolbox pod
//! of the environment's namespace (label selector [`TOOLBOX_SELECTOR`]),
//! `check-<svc>-db-version.sh` exits 0 when the database is up to date and
//! 2 when a migration is needed; then `migrate-<svc>-db-version.sh` (`swh
//! db upgrade`), then the check again, which must now exit 0.
//!
//! Journaled as a `cluster migrate` run (each command a step, its exit code
//! and output recorded), with a Grafana annotation (`deployment`, the
//! environment, the service) after a migration. [`migrate`] prints nothing:
//! each [`MigrateEvent`] goes to the caller as it happens.

use crate::exec::ExecOutput;
use crate::grafana::{annotate_deployment, Annotated, Annotation};
use crate::kube::Kube;
use crate::Error;
use std::fmt;
use std::time::{Duration, Instant};
use swh_deploy_journal::{JournalError, Recorder};
use swh_deploy_site::Site;
use swh_deploy_util::progress::elapsed_prefix;

/// The label selector of SWH's toolbox pods (the `swh-toolbox` app).
pub const TOOLBOX_SELECTOR: &str = "app=swh-toolbox";

/// The exit code of `check-<svc>-db-version.sh` meaning a migration is
/// needed.
pub const MIGRATION_NEEDED: i32 = 2;

/// What to migrate.
#[derive(Debug, Clone, Copy)]
pub struct MigrateRequest<'a> {
    /// The site file: the environment's kube_context and namespace.
    pub site: &'a Site,
    /// The environment.
    pub env: &'a str,
    /// The service (`storage`, `scheduler`...): the scripts'
    /// `<svc>`.
    pub service: &'a str,
    /// The label selector of the toolbox pod.
    pub selector: &'a str,
    /// Only check: never run the migration, journal nothing.
    pub dry_run: bool,
    /// Bounds each wait for a command's output.
    pub timeout: Duration,
    /// The journal (`None`: the default one).
    pub journal: Option<&'a std::path::Path>,
}

/// The two scripts of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripts {
    /// `check-<svc>-db-version.sh`.
    pub check: String,
    /// `migrate-<svc>-db-version.sh`.
    pub migrate: String,
}

impl Scripts {
    /// The scripts of `service`; a name that is not `[a-z0-9-]+` (starting
    /// with a letter) is refused.
    pub fn of(service: &str) -> Result<Scripts, MigrateError> {
        let ok = service.starts_with(|c: char| c.is_ascii_lowercase())
            && service
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(MigrateError::Input(format!(
                "{service:?}: not a service name (lowercase letters, digits and -, e.g. storage)"
            )));
        }
        Ok(Scripts {
            check: format!("check-{service}-db-version.sh"),
            migrate: format!("migrate-{service}-db-version.sh"),
        })
    }
}

/// What [`migrate`] reports as it goes. `Display` gives the text;
/// [`MigrateEvent::is_diagnostic`] tells the ones meant for stderr.
#[derive(Debug)]
pub enum MigrateEvent<'a> {
    /// The toolbox pod found.
    Toolbox {
        /// The kube context.
        context: &'a str,
        /// The namespace.
        namespace: &'a str,
        /// The pod.
        pod: &'a str,
    },
    /// A command starts in the pod (stderr): what runs, where, for at most
    /// how long, and when the migration started (the clock of its
    /// progress lines).
    Running {
        /// The script.
        command: &'a str,
        /// The pod.
        pod: &'a str,
        /// Its bound.
        timeout: Duration,
        /// When [`migrate`] started.
        since: Instant,
        /// Time since then.
        elapsed: Duration,
    },
    /// A command ran: its exit code and output.
    Ran {
        /// The script.
        command: &'a str,
        /// What it gave.
        output: &'a ExecOutput,
    },
    /// The Grafana annotation (stderr).
    Annotation(&'a Annotated),
}

impl MigrateEvent<'_> {
    /// Whether the event is a diagnostic (stderr) rather than output.
    pub fn is_diagnostic(&self) -> bool {
        matches!(
            self,
            MigrateEvent::Annotation(_) | MigrateEvent::Running { .. }
        )
    }

    /// For [`MigrateEvent::Running`]: what runs (`SCRIPT in pod POD`) and
    /// the clock of the progress lines, for a ticker while it runs.
    pub fn running(&self) -> Option<(String, Instant)> {
        match self {
            MigrateEvent::Running {
                command,
                pod,
                since,
                ..
            } => Some((format!("{command} in pod {pod}"), *since)),
            _ => None,
        }
    }
}

impl fmt::Display for MigrateEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateEvent::Toolbox {
                context,
                namespace,
                pod,
            } => write!(
                f,
                "toolbox pod: {pod} (namespace {namespace}, context {context})"
            ),
            MigrateEvent::Running {
                command,
                pod,
                timeout,
                elapsed,
                ..
            } => write!(
                f,
                "{} running {command} in pod {pod} (at most {timeout:?})",
                elapsed_prefix(*elapsed)
            ),
            MigrateEvent::Ran { command, output } => {
                write!(f, "$ {command}   # exit {}", output.exit)?;
                let text = output.text();
                if !text.is_empty() {
                    write!(f, "\n  {}", text.replace('\n', "\n  "))?;
                }
                Ok(())
            }
            MigrateEvent::Annotation(a) => write!(f, "{a}"),
        }
    }
}

/// How [`migrate`] ended (without an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// The check exited 0: nothing to do.
    UpToDate,
    /// A dry run whose check exited 2: a migration is needed, not run.
    NeededNotRun,
    /// Migrated: the second check exited 0.
    Migrated,
}

impl fmt::Display for Migrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Migrated::UpToDate => "the database is up to date: nothing to migrate",
            Migrated::NeededNotRun => "a migration is needed (dry run: not run)",
            Migrated::Migrated => "migrated: the database is now up to date",
        })
    }
}

/// Why [`migrate`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Bad input (service name).
    #[error("{0}")]
    Input(String),
    /// Configuration, the Kubernetes API or the exec stream.
    #[error(transparent)]
    Kube(#[from] Error),
    /// No running toolbox pod in the namespace.
    #[error("no running toolbox pod ({selector}) in namespace {namespace} of context {context}: is swh-toolbox deployed in this environment?")]
    NoToolbox {
        /// The kube context.
        context: String,
        /// The namespace.
        namespace: String,
        /// The label selector.
        selector: String,
    },
    /// A script exited with an unexpected code.
    #[error("{command} in {pod} exited {exit}{}", shown(output))]
    Failed {
        /// The script.
        command: String,
        /// The pod.
        pod: String,
        /// Its exit code.
        exit: i32,
        /// Its output (stdout then stderr).
        output: String,
    },
    /// The check still says a migration is needed after the migration.
    #[error(
        "{command} in {pod} still exits 2 after the migration{}",
        shown(output)
    )]
    StillNeeded {
        /// The check script.
        command: String,
        /// The pod.
        pod: String,
        /// Its output.
        output: String,
    },
    /// Not confirmed (no `--yes`).
    #[error("a migration is needed ({command} in {pod}) and was not confirmed: re-run with --yes to run it")]
    NotConfirmed {
        /// The migration script.
        command: String,
        /// The pod.
        pod: String,
    },
    /// The journal could not be opened.
    #[error("{0}")]
    Journal(#[from] JournalError),
}

fn shown(output: &str) -> String {
    if output.is_empty() {
        ": no output".to_string()
    } else {
        format!(":\n  {}", output.replace('\n', "\n  "))
    }
}

impl MigrateError {
    /// The exit code it means: [`Exit::Failed`](swh_deploy_util::Exit::Failed).
    pub fn exit(&self) -> swh_deploy_util::Exit {
        swh_deploy_util::Exit::Failed
    }
}

/// Where the toolbox is: the context, namespace and a running pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolbox {
    /// The kube context.
    pub context: String,
    /// The namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
}

/// Finds the running toolbox pod of `env` (the first by name).
pub fn find_toolbox(
    site: &Site,
    env: &str,
    selector: &str,
) -> Result<(Kube, Toolbox), MigrateError> {
    let (kube, namespace) = Kube::for_environment(site, env)?.ok_or_else(|| {
        Error::Config(format!(
            "{}: environment {env} needs a kube_context and a namespace",
            site.path.display()
        ))
    })?;
    let context = kube.context().to_string();
    let mut pods = kube.pods(&namespace, selector)?;
    pods.retain(|p| p.phase == "Running");
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let Some(pod) = pods.into_iter().next() else {
        return Err(MigrateError::NoToolbox {
            context,
            namespace,
            selector: selector.to_string(),
        });
    };
    Ok((
        kube,
        Toolbox {
            context,
            namespace,
            pod: pod.name,
        },
    ))
}

/// The Grafana annotation of a migration.
pub fn migration_annotation(env: &str, service: &str, pod: &str) -> Annotation {
    Annotation {
        environment: env.to_string(),
        services: vec![service.to_string()],
        text: format!("cluster migrate {env} {service}: database migrated (in {pod})"),
    }
}

/// Checks `req.service`'s database in `req.env`'s toolbox pod and, when a
/// migration is needed and `confirm` agrees (not in a dry run), migrates
/// and checks again.
pub fn migrate(
    req: &MigrateRequest<'_>,
    confirm: &mut dyn FnMut(&str, &str) -> bool,
    on: &mut dyn FnMut(&MigrateEvent<'_>),
) -> Result<Migrated, MigrateError> {
    let since = Instant::now();
    let scripts = Scripts::of(req.service)?;
    let (kube, tb) = find_toolbox(req.site, req.env, req.selector)?;
    on(&MigrateEvent::Toolbox {
        context: &tb.context,
        namespace: &tb.namespace,
        pod: &tb.pod,
    });
    let target = format!("{}/{}", tb.namespace, tb.pod);
    let mut rec = if req.dry_run {
        None
    } else {
        Some(Recorder::start(
            req.journal,
            "cluster migrate",
            serde_json::json!({
                "env": req.env,
                "service": req.service,
                "context": tb.context,
                "namespace": tb.namespace,
                "pod": tb.pod,
            }),
        )?)
    };
    // Runs one script, journaled, reported.
    let mut run = |rec: &mut Option<Recorder>,
                   command: &str,
                   ok: &dyn Fn(i32) -> bool|
     -> Result<ExecOutput, MigrateError> {
        if let Some(r) = rec.as_mut() {
            r.step(command, &target);
        }
        on(&MigrateEvent::Running {
            command,
            pod: &tb.pod,
            timeout: req.timeout,
            since,
            elapsed: since.elapsed(),
        });
        let started = Instant::now();
        let out = kube.exec(&tb.namespace, &tb.pod, &[command], req.timeout);
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                if let Some(r) = rec.take() {
                    r.finish(false);
                }
                return Err(e.into());
            }
        };
        if let Some(r) = rec.as_mut() {
            r.output(
                &target,
                Some(out.exit),
                &out.stdout,
                &out.stderr,
                started.elapsed(),
                ok(out.exit),
            );
        }
        on(&MigrateEvent::Ran {
            command,
            output: &out,
        });
        Ok(out)
    };
    let failed = |rec: &mut Option<Recorder>, command: &str, out: &ExecOutput| {
        if let Some(r) = rec.take() {
            r.finish(false);
        }
        MigrateError::Failed {
            command: command.to_string(),
            pod: tb.pod.clone(),
            exit: out.exit,
            output: out.text(),
        }
    };
    let check_ok = |c: i32| c == 0 || c == MIGRATION_NEEDED;
    let first = run(&mut rec, &scripts.check, &check_ok)?;
    match first.exit {
        0 => {
            if let Some(r) = rec {
                r.finish(true);
            }
            return Ok(Migrated::UpToDate);
        }
        MIGRATION_NEEDED => {}
        _ => return Err(failed(&mut rec, &scripts.check, &first)),
    }
    if req.dry_run {
        return Ok(Migrated::NeededNotRun);
    }
    if !confirm(&scripts.migrate, &tb.pod) {
        if let Some(r) = rec {
            r.finish(false);
        }
        return Err(MigrateError::NotConfirmed {
            command: scripts.migrate,
            pod: tb.pod,
        });
    }
    let migrated = run(&mut rec, &scripts.migrate, &|c| c == 0)?;
    if migrated.exit != 0 {
        return Err(failed(&mut rec, &scripts.migrate, &migrated));
    }
    let again = run(&mut rec, &scripts.check, &|c| c == 0)?;
    if let Some(r) = rec {
        r.finish(again.exit == 0);
    }
    match again.exit {
        0 => {}
        MIGRATION_NEEDED => {
            return Err(MigrateError::StillNeeded {
                command: scripts.check,
                pod: tb.pod,
                output: again.text(),
            })
        }
        _ => {
            return Err(MigrateError::Failed {
                command: scripts.check,
                pod: tb.pod,
                exit: again.exit,
                output: again.text(),
            })
        }
    }
    let annotated = annotate_deployment(&migration_annotation(req.env, req.service, &tb.pod));
    if !matches!(annotated, Annotated::NotConfigured) {
        on(&MigrateEvent::Annotation(&annotated));
    }
    Ok(Migrated::Migrated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_named_after_the_service_and_bad_names_refused() {
        assert_eq!(
            Scripts::of("storage").unwrap(),
            Scripts {
                check: "check-storage-db-version.sh".into(),
                migrate: "migrate-storage-db-version.sh".into()
            }
        );
        for bad in ["", "Storage", "../x", "a b", "-x", "st;rm"] {
            assert!(Scripts::of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_and_errors_read_well() {
        let out = ExecOutput {
            exit: 2,
            stdout: b"version 193, expected 194\n".to_vec(),
            stderr: Vec::new(),
        };
        assert_eq!(
            MigrateEvent::Ran {
                command: "check-storage-db-version.sh",
                output: &out
            }
            .to_string(),
            "$ check-storage-db-version.sh   # exit 2\n  version 193, expected 194"
        );
        let e = MigrateError::Failed {
            command: "migrate-storage-db-version.sh".into(),
            pod: "swh-toolbox-1".into(),
            exit: 1,
            output: "ERROR: boom".into(),
        };
        assert_eq!(
            e.to_string(),
            "migrate-storage-db-version.sh in swh-toolbox-1 exited 1:\n  ERROR: boom"
        );
        let a = migration_annotation("staging", "storage", "swh-toolbox-1");
        assert_eq!(a.tags(), ["deployment", "staging", "storage"]);
    }
}
