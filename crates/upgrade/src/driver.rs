//! Running an upgrade end to end from a site: the entry point of
//! `swh-deploy upgrade`, `resume`, `rollback` and `ship`.
//!
//! [`upgrade`] checks the site's ssh settings (bad input changes nothing,
//! not even the journal file), opens the journal, then [`drive`]s
//! [`execute::start`]. [`drive`] sets up what the executor needs from the
//! site (the ssh transport with its host-key policy, the address resolver
//! of the health probes, the fan-out), cancels the run on SIGINT/SIGTERM
//! (the compensations still run) and sends progress to the caller's
//! [`Events`]. Progress renderers for humans ([`HumanProgress`]) and JSON
//! lines ([`JsonProgress`]) are here; the caller picks one and renders the
//! [`Summary`] ([`Summary::render`], [`Summary::to_json_line`]) or the
//! error ([`ExecError::exit`]).

use crate::execute::{self, Context, Event, Events, ExecError, ExecOptions, Summary};
use crate::request::UpgradeRequest;
use crate::ssh::Connect;
use std::io::Write;
use std::path::Path;
use swh_deploy_fleet::CancelToken;
use swh_deploy_journal::Journal;
use swh_deploy_site::Site;
use swh_deploy_util::Exit;

/// Starts a new run of `request` on the hosts of `site` and executes it:
/// the library form of `swh-deploy upgrade` without `--dry-run`.
///
/// `journal`: the journal file (`None`: the default one); `argv`: the
/// command line recorded with the run; `host_keys`: the host-key policy
/// (strict unless the operator asked otherwise), or a [`Connect`] that
/// also says how connections are reused.
pub fn upgrade(
    site: &Site,
    request: &UpgradeRequest,
    journal: Option<&Path>,
    argv: Vec<String>,
    host_keys: impl Into<Connect>,
    events: &mut dyn Events,
) -> Result<Summary, ExecError> {
    // Bad input changes nothing, not even the journal file.
    crate::ssh::check(site).map_err(ExecError::Input)?;
    let mut journal = Journal::open_default(journal)?;
    drive(site, host_keys, events, |ctx| {
        execute::start(&mut journal, site, request, argv, ctx)
    })
}

/// Runs `f` (a start, resume or rollback of the executor) with a context
/// for the hosts of `site`: ssh transport, probe address resolver, the
/// site's fan-out, progress to `events`, and a cancel token that SIGINT and
/// SIGTERM trigger while `f` runs.
pub fn drive(
    site: &Site,
    host_keys: impl Into<Connect>,
    events: &mut dyn Events,
    f: impl FnOnce(&mut Context<'_>) -> Result<Summary, ExecError>,
) -> Result<Summary, ExecError> {
    let transport = crate::ssh::transport_for(site, host_keys.into())?;
    let resolver = crate::ssh::resolver(site);
    let cancel = CancelToken::new();
    let _guard = execute::cancel_on_signals(&cancel).ok();
    let mut ctx = Context {
        transport: &transport,
        resolver: &resolver,
        options: ExecOptions {
            fanout: site.ssh.fanout.max(1),
            ..ExecOptions::default()
        },
        cancel,
        events,
    };
    f(&mut ctx)
}

impl Summary {
    /// The summary as one JSON line (`"event": "summary"`, `"schema": 1`:
    /// docs/json.md), as `--json` prints it after the progress lines.
    pub fn to_json_line(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["event"] = "summary".into();
        v["schema"] = 1.into();
        v.to_string()
    }

    /// The exit of the run: success, failed, budget exceeded, locked
    /// (refused) or interrupted.
    pub fn exit(&self) -> Exit {
        execute::exit(self.status)
    }
}

/// Progress as JSON lines (one [`Event`] per line, flushed), e.g. on stdout.
#[derive(Debug)]
pub struct JsonProgress<W: Write> {
    out: W,
}

impl<W: Write> JsonProgress<W> {
    /// Progress written to `out`.
    pub fn new(out: W) -> Self {
        JsonProgress { out }
    }
}

impl<W: Write> Events for JsonProgress<W> {
    fn event(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }
}

/// Progress for humans, e.g. on stderr: batch headers (bold on a
/// terminal), one line per step with the hosts that passed and failed, the
/// failures' details; on a terminal, the running step is shown until it
/// ends.
#[derive(Debug)]
pub struct HumanProgress<W: Write> {
    out: W,
    tty: bool,
}

impl<W: Write> HumanProgress<W> {
    /// Progress written to `out`; `tty`: `out` is a terminal.
    pub fn new(out: W, tty: bool) -> Self {
        HumanProgress { out, tty }
    }
}

impl<W: Write> Events for HumanProgress<W> {
    fn event(&mut self, event: &Event) {
        let _ = render_human(&mut self.out, self.tty, event);
        let _ = self.out.flush();
    }
}

fn render_human(err: &mut impl Write, tty: bool, event: &Event) -> std::io::Result<()> {
    let (b, r) = if tty {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    match event {
        Event::Run {
            run,
            mode,
            hosts,
            batches,
            resumed,
        } => {
            writeln!(
                err,
                "{b}run {run}{}: {mode} upgrade of {hosts} in {batches} batch(es){r}",
                if *resumed { " (resumed)" } else { "" }
            )?;
        }
        Event::Batch {
            index,
            of,
            canary,
            hosts,
        } => {
            writeln!(
                err,
                "{b}batch {}/{of}{}: {hosts}{r}",
                index + 1,
                if *canary { " (canary)" } else { "" }
            )?;
        }
        Event::Step {
            name,
            hosts,
            already_done,
            ..
        } => {
            if !already_done.is_empty() {
                writeln!(err, "  {name:<16} already done on {already_done}")?;
            }
            if !hosts.is_empty() && tty {
                write!(err, "  {name:<16} {hosts} ...\r")?;
            }
        }
        Event::StepDone {
            name,
            ok,
            failed,
            seconds,
            ..
        } => {
            if ok.is_empty() && failed.is_empty() {
                return Ok(());
            }
            write!(err, "  {name:<16} ")?;
            if !ok.is_empty() {
                write!(err, "ok {ok}")?;
            }
            if !failed.is_empty() {
                let hosts: Vec<&str> = failed.iter().map(|f| f.host.as_str()).collect();
                write!(
                    err,
                    "{}FAILED {}",
                    if ok.is_empty() { "" } else { ", " },
                    hosts.join(",")
                )?;
            }
            let clear = if tty { "\x1b[K" } else { "" };
            writeln!(err, " ({seconds:.1}s){clear}")?;
            for f in failed {
                let rc = f.rc.map(|c| format!(" (exit {c})")).unwrap_or_default();
                writeln!(err, "    {}: {}{rc}: {}", f.host, f.outcome, f.detail)?;
            }
        }
        Event::Stop { reason } => {
            writeln!(err, "{b}stopped: {reason}{r}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::HostFailure;

    fn human(tty: bool, events: &[Event]) -> String {
        let mut out = Vec::new();
        let mut p = HumanProgress::new(&mut out, tty);
        for e in events {
            p.event(e);
        }
        String::from_utf8(out).unwrap()
    }

    fn step_done() -> Event {
        Event::StepDone {
            index: 3,
            name: "dist-upgrade".into(),
            ok: "host[1-2]".into(),
            failed: vec![HostFailure {
                host: "host3".into(),
                outcome: "failed".into(),
                rc: Some(100),
                detail: "E: broken".into(),
            }],
            seconds: 1.0,
        }
    }

    #[test]
    fn human_progress_lines() {
        let text = human(
            false,
            &[
                Event::Run {
                    run: 4,
                    mode: "nominal".into(),
                    hosts: "host[1-3]".into(),
                    batches: 2,
                    resumed: true,
                },
                Event::Batch {
                    index: 0,
                    of: 2,
                    canary: true,
                    hosts: "host1".into(),
                },
                Event::Step {
                    index: 3,
                    name: "dist-upgrade".into(),
                    batch: Some(0),
                    hosts: "host3".into(),
                    already_done: "host[1-2]".into(),
                },
                step_done(),
                Event::Stop {
                    reason: "failure budget exceeded".into(),
                },
            ],
        );
        assert_eq!(
            text,
            "run 4 (resumed): nominal upgrade of host[1-3] in 2 batch(es)\n\
             batch 1/2 (canary): host1\n  \
             dist-upgrade     already done on host[1-2]\n  \
             dist-upgrade     ok host[1-2], FAILED host3 (1.0s)\n    \
             host3: failed (exit 100): E: broken\n\
             stopped: failure budget exceeded\n"
        );
        // On a terminal: bold headers, the running step shown until done.
        let tty = human(true, &[step_done()]);
        assert!(tty.ends_with(" (1.0s)\x1b[K\n    host3: failed (exit 100): E: broken\n"));
    }

    #[test]
    fn json_progress_is_one_event_per_line() {
        let mut out = Vec::new();
        JsonProgress::new(&mut out).event(&step_done());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "step-done");
        assert_eq!(v["failed"][0]["rc"], 100);
    }
}
