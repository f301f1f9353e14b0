//! Upgrade plans: what runs where, in which order, in which batches.

use crate::batch::{BatchSpec, FailBudget};
use crate::command::RemoteCommand;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;
use swh_deploy_nodeset::fold;
use swh_deploy_site::{PackageName, Probe, Service, UnitName};

/// The three upgrade modes of the runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Upgrade packages, restart units, check health.
    #[default]
    Nominal,
    /// `puppet agent -t` first, then nominal.
    ConfigChange,
    /// Stop cron and disable puppet everywhere, run the migration, then
    /// nominal, then cron and puppet back.
    LongStanding,
}

impl Mode {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Nominal => "nominal",
            Mode::ConfigChange => "config-change",
            Mode::LongStanding => "long-standing",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--mode` value that is not one of the three modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mode `{0}`: expected nominal, config-change or long-standing")]
pub struct ModeError(pub String);

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(s: &str) -> Result<Mode, ModeError> {
        match s {
            "nominal" => Ok(Mode::Nominal),
            "config-change" => Ok(Mode::ConfigChange),
            "long-standing" => Ok(Mode::LongStanding),
            _ => Err(ModeError(s.to_owned())),
        }
    }
}

/// A selected service and the target hosts that run it.
#[derive(Debug, Clone)]
pub struct ServiceOnHosts {
    /// The service, from the site.
    pub service: Service,
    /// Target hosts that run it (hosts of its groups, within the targets).
    pub hosts: Vec<String>,
}

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// The mode.
    pub mode: Mode,
    /// The target hosts, in order (the order of batches).
    pub targets: Vec<String>,
    /// The selected services: their units are restarted and health-checked
    /// on the target hosts that run them.
    pub services: Vec<ServiceOnHosts>,
    /// `--packages`: upgrade only these (`--only-upgrade install`) instead
    /// of a full `dist-upgrade`.
    pub packages: Vec<PackageName>,
    /// `--migration`: a shell command run once, on the first target host,
    /// after cron and puppet are stopped (long-standing mode only).
    pub migration: Option<String>,
    /// Why puppet is disabled (long-standing mode); a default is derived.
    pub reason: Option<String>,
    /// `--batch`.
    pub batch: BatchSpec,
    /// `--max-fail`.
    pub max_fail: FailBudget,
    /// The journal's run id, once known (`None` in a dry run: the puppet
    /// message then shows `<run id>`).
    pub run_id: Option<i64>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No target host.
    #[error("no target hosts: give -w NODES, @group or --service")]
    NoTargets,
    /// The same host twice in the targets.
    #[error("host {0} is given twice")]
    DuplicateHost(String),
    /// `--migration` outside long-standing mode.
    #[error("--migration is only for --mode long-standing (mode is {0})")]
    MigrationNeedsLongStanding(Mode),
    /// A value holds control characters.
    #[error("{what} must not contain control characters or be empty")]
    BadText {
        /// What.
        what: &'static str,
    },
    /// A service host that is not a target.
    #[error("service {service} is planned on host {host}, which is not a target")]
    ServiceHostNotTarget {
        /// The service.
        service: String,
        /// The host.
        host: String,
    },
}

/// A compensation recorded in the journal, on each host, before a step
/// runs, and performed by the finishing steps (or by `recover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompensationSpec {
    /// The journal action name (`start-cron`, `enable-puppet`).
    pub action: String,
    /// The command that performs it.
    pub command: RemoteCommand,
    /// Its command line.
    pub shell: String,
}

/// The health probe of a gate, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum PlannedProbe {
    /// A command on the host (`systemctl is-active UNITS`, or a `command`
    /// check), healthy when it exits 0.
    Remote {
        /// The command.
        command: RemoteCommand,
        /// Its command line.
        shell: String,
        /// Timeout of one attempt, in milliseconds (`None`: the ssh
        /// command timeout).
        timeout_ms: Option<u64>,
    },
    /// `GET http://HOST:port/path` from swh-deploy, answering 2xx with
    /// `expect` in its body.
    Http {
        /// Port.
        port: u16,
        /// Path.
        path: String,
        /// Expected text.
        expect: Option<String>,
        /// Timeout of one request, in milliseconds.
        timeout_ms: u64,
    },
}

/// What a step does on some of its hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    /// Run a command on each host.
    Remote {
        /// The hosts, in order.
        hosts: Vec<String>,
        /// The hosts, folded.
        nodes: String,
        /// The command.
        command: RemoteCommand,
        /// Its command line.
        shell: String,
        /// Exit codes meaning success.
        success_codes: Vec<i32>,
    },
    /// Wait until a service is healthy on each host.
    Health {
        /// The hosts, in order.
        hosts: Vec<String>,
        /// The hosts, folded.
        nodes: String,
        /// The service.
        service: String,
        /// The probe.
        probe: PlannedProbe,
        /// Give up after this long (milliseconds since the gate started).
        deadline_ms: u64,
        /// Pause between attempts (milliseconds).
        interval_ms: u64,
    },
}

impl Action {
    /// The hosts of the action.
    pub fn hosts(&self) -> &[String] {
        match self {
            Action::Remote { hosts, .. } | Action::Health { hosts, .. } => hosts,
        }
    }
}

/// What a step is for (also stored as the journal's step kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Changes the hosts.
    Change,
    /// Reads information only (versions): its failure does not fail a host.
    Info,
    /// A health gate.
    Health,
    /// Puts hosts back (the compensations): runs whatever happened before.
    Compensation,
}

impl StepKind {
    /// The name stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Change => "change",
            StepKind::Info => "info",
            StepKind::Health => "health",
            StepKind::Compensation => "compensation",
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Position in the whole plan (the journal's step index).
    pub index: usize,
    /// Name (`apt-get-update`, `dist-upgrade`, `restart`, `health`...);
    /// `resume` matches finished hosts by name within a batch.
    pub name: String,
    /// Kind.
    pub kind: StepKind,
    /// What runs where.
    pub actions: Vec<Action>,
    /// Recorded on each host before the step runs there.
    pub compensation: Option<CompensationSpec>,
}

/// A batch of hosts going through the nominal steps together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// 0-based.
    pub index: usize,
    /// The first batch is the canary.
    pub canary: bool,
    /// The hosts, in order.
    pub hosts: Vec<String>,
    /// The hosts, folded.
    pub nodes: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A complete upgrade plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The mode.
    pub mode: Mode,
    /// The run id, if known.
    pub run_id: Option<i64>,
    /// Every target host, in order.
    pub hosts: Vec<String>,
    /// The target hosts, folded.
    pub nodes: String,
    /// The selected services.
    pub services: Vec<String>,
    /// The packages whose versions are reported (and, with `--packages`,
    /// the only ones upgraded).
    pub packages: Vec<PackageName>,
    /// True when only `packages` are upgraded (`--packages`).
    pub only_packages: bool,
    /// `--batch`.
    pub batch_spec: String,
    /// `--max-fail`.
    pub max_fail: FailBudget,
    /// How many hosts may fail before no new batch starts.
    pub allowed_failures: usize,
    /// Steps on all targets before the batches (long-standing mode).
    pub prepare: Vec<Step>,
    /// The batches.
    pub batches: Vec<Batch>,
    /// Steps on all targets after the batches, also run on failure and
    /// interruption, and by `recover` after a crash (the compensations).
    pub finish: Vec<Step>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn remote(hosts: &[String], command: RemoteCommand) -> Action {
    Action::Remote {
        hosts: hosts.to_vec(),
        nodes: fold(hosts),
        shell: command.to_shell(),
        success_codes: command.success_codes().to_vec(),
        command,
    }
}

fn check_text(text: &str, what: &'static str) -> Result<(), PlanError> {
    if text.trim().is_empty() || text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(PlanError::BadText { what });
    }
    Ok(())
}

/// Builds the plan of `req`.
pub fn plan(req: &PlanRequest) -> Result<Plan, PlanError> {
    if req.targets.is_empty() {
        return Err(PlanError::NoTargets);
    }
    let mut seen = BTreeSet::new();
    for h in &req.targets {
        if !seen.insert(h.as_str()) {
            return Err(PlanError::DuplicateHost(h.clone()));
        }
    }
    for s in &req.services {
        if let Some(h) = s.hosts.iter().find(|h| !seen.contains(h.as_str())) {
            return Err(PlanError::ServiceHostNotTarget {
                service: s.service.name.clone(),
                host: h.clone(),
            });
        }
    }
    if let Some(m) = &req.migration {
        if req.mode != Mode::LongStanding {
            return Err(PlanError::MigrationNeedsLongStanding(req.mode));
        }
        if m.trim().is_empty() || m.contains('\0') {
            return Err(PlanError::BadText {
                what: "--migration",
            });
        }
    }
    if let Some(r) = &req.reason {
        check_text(r, "the reason")?;
    }

    // Packages whose versions are reported: --packages, else the services'.
    let mut packages: Vec<PackageName> = Vec::new();
    let only_packages = !req.packages.is_empty();
    let wanted = if only_packages {
        req.packages.clone()
    } else {
        req.services
            .iter()
            .flat_map(|s| s.service.packages.iter().cloned())
            .collect()
    };
    for p in wanted {
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    let service_names: Vec<String> = req
        .services
        .iter()
        .map(|s| s.service.name.clone())
        .collect();

    let mut index = 0;
    let mut next = || {
        index += 1;
        index - 1
    };
    let all = &req.targets;

    let mut prepare = Vec::new();
    let mut finish = Vec::new();
    if req.mode == Mode::LongStanding {
        let run = req
            .run_id
            .map_or_else(|| "<run id>".to_owned(), |id| id.to_string());
        let what = if !service_names.is_empty() {
            service_names.join(", ")
        } else if !packages.is_empty() {
            packages
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "all packages".to_owned()
        };
        let reason = req
            .reason
            .clone()
            .unwrap_or_else(|| format!("long-standing upgrade of {what}"));
        let compensation = |action: &str| {
            let command = crate::command::compensation_command(action)
                .expect("the compensations used here are defined");
            CompensationSpec {
                action: action.to_owned(),
                shell: command.to_shell(),
                command,
            }
        };
        prepare.push(Step {
            index: next(),
            name: "stop-cron".into(),
            kind: StepKind::Change,
            actions: vec![remote(all, RemoteCommand::StopCron)],
            compensation: Some(compensation("start-cron")),
        });
        prepare.push(Step {
            index: next(),
            name: "disable-puppet".into(),
            kind: StepKind::Change,
            actions: vec![remote(
                all,
                RemoteCommand::PuppetDisable {
                    message: format!("swh-deploy {run}: {reason}"),
                },
            )],
            compensation: Some(compensation("enable-puppet")),
        });
        if let Some(m) = &req.migration {
            prepare.push(Step {
                index: next(),
                name: "migration".into(),
                kind: StepKind::Change,
                actions: vec![remote(
                    &all[..1],
                    RemoteCommand::Shell { script: m.clone() },
                )],
                compensation: None,
            });
        }
    }

    let mut batches = Vec::new();
    for (bi, hosts) in req.batch.split(all).into_iter().enumerate() {
        let mut steps = Vec::new();
        if req.mode == Mode::ConfigChange {
            steps.push(Step {
                index: next(),
                name: "puppet-agent".into(),
                kind: StepKind::Change,
                actions: vec![remote(&hosts, RemoteCommand::PuppetAgentTest)],
                compensation: None,
            });
        }
        if !packages.is_empty() {
            steps.push(Step {
                index: next(),
                name: "versions-before".into(),
                kind: StepKind::Info,
                actions: vec![remote(
                    &hosts,
                    RemoteCommand::InstalledVersions {
                        packages: packages.clone(),
                    },
                )],
                compensation: None,
            });
        }
        steps.push(Step {
            index: next(),
            name: "apt-get-update".into(),
            kind: StepKind::Change,
            actions: vec![remote(&hosts, RemoteCommand::AptUpdate)],
            compensation: None,
        });
        let (name, command) = if only_packages {
            (
                "only-upgrade",
                RemoteCommand::OnlyUpgrade {
                    packages: req.packages.clone(),
                },
            )
        } else {
            ("dist-upgrade", RemoteCommand::DistUpgrade)
        };
        steps.push(Step {
            index: next(),
            name: name.into(),
            kind: StepKind::Change,
            actions: vec![remote(&hosts, command)],
            compensation: None,
        });

        // Units to restart per host, hosts with the same units together.
        let mut units_of: BTreeMap<&str, Vec<UnitName>> = BTreeMap::new();
        for s in &req.services {
            for h in s.hosts.iter().filter(|h| hosts.contains(h)) {
                let units = units_of.entry(h.as_str()).or_default();
                for u in &s.service.units {
                    if !units.contains(u) {
                        units.push(u.clone());
                    }
                }
            }
        }
        let mut by_units: Vec<(Vec<UnitName>, Vec<String>)> = Vec::new();
        for h in &hosts {
            if let Some(units) = units_of.get(h.as_str()) {
                match by_units.iter_mut().find(|(u, _)| u == units) {
                    Some((_, hs)) => hs.push(h.clone()),
                    None => by_units.push((units.clone(), vec![h.clone()])),
                }
            }
        }
        if !by_units.is_empty() {
            steps.push(Step {
                index: next(),
                name: "restart".into(),
                kind: StepKind::Change,
                actions: by_units
                    .into_iter()
                    .map(|(units, hs)| remote(&hs, RemoteCommand::Restart { units }))
                    .collect(),
                compensation: None,
            });
            let mut gates = Vec::new();
            for s in &req.services {
                let hs: Vec<String> = hosts
                    .iter()
                    .filter(|h| s.hosts.contains(h))
                    .cloned()
                    .collect();
                if hs.is_empty() {
                    continue;
                }
                let health = &s.service.health;
                let probe = match &health.probe {
                    Probe::Systemd => {
                        let command = RemoteCommand::IsActive {
                            units: s.service.units.clone(),
                        };
                        PlannedProbe::Remote {
                            shell: command.to_shell(),
                            command,
                            timeout_ms: None,
                        }
                    }
                    Probe::Command { command, timeout } => {
                        let command = RemoteCommand::Shell {
                            script: command.clone(),
                        };
                        PlannedProbe::Remote {
                            shell: command.to_shell(),
                            command,
                            timeout_ms: Some(ms(*timeout)),
                        }
                    }
                    Probe::Http {
                        port,
                        path,
                        expect,
                        timeout,
                    } => PlannedProbe::Http {
                        port: *port,
                        path: path.clone(),
                        expect: expect.clone(),
                        timeout_ms: ms(*timeout),
                    },
                };
                gates.push(Action::Health {
                    nodes: fold(&hs),
                    hosts: hs,
                    service: s.service.name.clone(),
                    probe,
                    deadline_ms: ms(health.deadline),
                    interval_ms: ms(health.interval),
                });
            }
            steps.push(Step {
                index: next(),
                name: "health".into(),
                kind: StepKind::Health,
                actions: gates,
                compensation: None,
            });
        }
        if !packages.is_empty() {
            steps.push(Step {
                index: next(),
                name: "versions-after".into(),
                kind: StepKind::Info,
                actions: vec![remote(
                    &hosts,
                    RemoteCommand::InstalledVersions {
                        packages: packages.clone(),
                    },
                )],
                compensation: None,
            });
        }
        batches.push(Batch {
            index: bi,
            canary: bi == 0,
            nodes: fold(&hosts),
            hosts,
            steps,
        });
    }

    if req.mode == Mode::LongStanding {
        for (name, command) in [
            ("start-cron", RemoteCommand::StartCron),
            ("enable-puppet", RemoteCommand::PuppetEnable),
        ] {
            finish.push(Step {
                index: next(),
                name: name.into(),
                kind: StepKind::Compensation,
                actions: vec![remote(all, command)],
                compensation: None,
            });
        }
    }

    Ok(Plan {
        mode: req.mode,
        run_id: req.run_id,
        nodes: fold(all),
        hosts: all.clone(),
        services: service_names,
        packages,
        only_packages,
        batch_spec: req.batch.to_string(),
        max_fail: req.max_fail,
        allowed_failures: req.max_fail.allowed(all.len()),
        prepare,
        batches,
        finish,
    })
}

fn human_ms(ms: u64) -> String {
    if ms % 60_000 == 0 && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn render_step(out: &mut String, step: &Step) {
    let multi = step.actions.len() > 1;
    for (i, action) in step.actions.iter().enumerate() {
        let head = if i == 0 {
            format!("  {:>3}. {:<16}", step.index + 1, step.name)
        } else {
            format!("  {:>3}  {:<16}", "", "")
        };
        let on = |nodes: &str| {
            if multi || step.kind == StepKind::Health {
                format!("on {nodes}: ")
            } else {
                String::new()
            }
        };
        match action {
            Action::Remote {
                nodes,
                shell,
                success_codes,
                ..
            } => {
                let codes = if success_codes.len() > 1 {
                    format!(
                        "   (success: exit {})",
                        success_codes
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                } else {
                    String::new()
                };
                let once = if step.name == "migration" {
                    format!("on {nodes} only: ")
                } else {
                    on(nodes)
                };
                let _ = writeln!(out, "{head}{once}{shell}{codes}");
            }
            Action::Health {
                nodes,
                service,
                probe,
                deadline_ms,
                interval_ms,
                ..
            } => {
                let what = match probe {
                    PlannedProbe::Remote { shell, .. } => format!("`{shell}` exits 0"),
                    PlannedProbe::Http {
                        port,
                        path,
                        expect,
                        timeout_ms,
                    } => {
                        let expect = expect
                            .as_ref()
                            .map(|e| format!(" containing {e:?}"))
                            .unwrap_or_default();
                        format!(
                            "GET http://HOST:{port}{path} answers 2xx{expect} (timeout {})",
                            human_ms(*timeout_ms)
                        )
                    }
                };
                let _ = writeln!(
                    out,
                    "{head}{}{service}: {what}, every {} until {}",
                    on(nodes),
                    human_ms(*interval_ms),
                    human_ms(*deadline_ms)
                );
            }
        }
    }
    if let Some(c) = &step.compensation {
        let _ = writeln!(
            out,
            "  {:>3}  {:<16}(journal records `{}` on each host first)",
            "", "", c.action
        );
    }
}

impl Plan {
    /// The human rendering printed by `--dry-run`: batches with their folded
    /// node sets and the exact command line of every step.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let services = if self.services.is_empty() {
            "none".to_owned()
        } else {
            self.services.join(", ")
        };
        let packages = if self.packages.is_empty() {
            "none".to_owned()
        } else {
            self.packages
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let run = self
            .run_id
            .map_or_else(|| "dry run".to_owned(), |id| format!("run {id}"));
        let _ = writeln!(
            out,
            "{} upgrade of {} host(s): {} ({run})",
            self.mode,
            self.hosts.len(),
            self.nodes
        );
        let _ = writeln!(out, "services: {services}");
        let _ = writeln!(
            out,
            "packages: {packages}{}",
            if self.only_packages {
                " (only these are upgraded)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "batches: {} (--batch {}), first is the canary; failure budget: {} host(s) (--max-fail {})",
            self.batches.len(),
            self.batch_spec,
            self.allowed_failures,
            self.max_fail
        );
        if !self.prepare.is_empty() {
            let _ = writeln!(out, "\nbefore the batches, on {}:", self.nodes);
            for s in &self.prepare {
                render_step(&mut out, s);
            }
        }
        let n = self.batches.len();
        for b in &self.batches {
            let _ = writeln!(
                out,
                "\nbatch {}/{n}{}: {} ({} host(s))",
                b.index + 1,
                if b.canary { " (canary)" } else { "" },
                b.nodes,
                b.hosts.len()
            );
            for s in &b.steps {
                render_step(&mut out, s);
            }
        }
        if !self.finish.is_empty() {
            let _ = writeln!(
                out,
                "\nafter the batches, on {} (also after a failure or Ctrl-C, and by `swh-deploy recover` after a crash):",
                self.nodes
            );
            for s in &self.finish {
                render_step(&mut out, s);
            }
        }
        out
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan always serializes")
    }

    /// Every step in execution order.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.prepare
            .iter()
            .chain(self.batches.iter().flat_map(|b| b.steps.iter()))
            .chain(self.finish.iter())
    }
}
