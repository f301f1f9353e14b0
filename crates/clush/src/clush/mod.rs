//! ClusterShell's `clush`, as `swh-deploy run` (and as `clush` when the
//! binary is installed under that name): a shell command on many hosts at
//! once, with clush's options, clush.conf keys, output modes and exit
//! status. The engine and the transports are the `swh-deploy-fleet`
//! crate's; the node sets and groups the `swh-deploy-nodeset` crate's.
//!
//! [`parse`] turns the arguments into a [`Request`]; [`run`] runs a
//! [`RunRequest`], streaming clush's output to standard output and error,
//! and says how it ended ([`Outcome`]); a failure is a [`ClushError`] the
//! caller prints with [`ClushError::render`].

mod options;
mod output;
mod targets;

pub use options::{help, parse, Request, RunRequest};

use options::Color;
use output::{Mode, Printer, Progress};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;
use swh_deploy_fleet::render::{self, Style};
use swh_deploy_fleet::{
    user_control_dir, CancelToken, ConnectionReuse, ExecTransport, HostKeyPolicy, HostResult,
    RunOptions, RunReport, SshOptions, SshTransport, Transport, DEFAULT_PERSIST,
};
use swh_deploy_util::Exit;
use targets::{site, targets};

/// Program names: `prog` for messages of a run ("swh-deploy", or "clush"
/// when installed under that name), `usage` for optparse's messages.
#[derive(Debug, Clone, Copy)]
pub struct Prog {
    /// The name in a run's messages (`swh-deploy: 2 hosts failed`); `clush`
    /// also selects clush's own summary lines.
    pub prog: &'static str,
    /// The name in usage and error messages (`swh-deploy run`).
    pub usage: &'static str,
}

/// `swh-deploy run`.
pub const SWH_DEPLOY: Prog = Prog {
    prog: "swh-deploy",
    usage: "swh-deploy run",
};

/// The binary installed (or linked) under the name `clush`.
pub const CLUSH: Prog = Prog {
    prog: "clush",
    usage: "clush",
};

/// What a run needs to know of the process it runs in: read once by the
/// caller (terminals, environment), never by this crate.
#[derive(Debug, Clone, Default)]
pub struct RunEnv {
    /// Standard output is a terminal.
    pub stdout_tty: bool,
    /// Standard error is a terminal (progress line, colours of `--color
    /// auto`).
    pub stderr_tty: bool,
    /// `NO_COLOR` is set: `--color auto` does not colour.
    pub no_color: bool,
    /// `$XDG_RUNTIME_DIR`, home of the shared ssh connections' sockets
    /// when it is a directory (see `swh_deploy_fleet::user_control_dir`).
    pub runtime_dir: Option<PathBuf>,
    /// The site file when `--site` is not given (`$SWH_DEPLOY_SITE`,
    /// not empty).
    pub site: Option<PathBuf>,
}

/// How a run ended, once its output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran on every host: the exit status to give (0, or with
    /// `-S` the largest exit code, 255 for an unreachable or timed-out
    /// host).
    Ran(u8),
    /// Interrupted (Ctrl-C): the unfinished hosts were listed on standard
    /// error.
    Interrupted,
}

/// Why a run did not happen or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ClushError {
    /// A bad command line (optparse's `parser.error`): exit 2, after the
    /// usage line.
    #[error("{0}")]
    Usage(String),
    /// Bad input (node set, group, site, option value) or a failure to
    /// start: exit 1.
    #[error("{0}")]
    Failed(String),
    /// Standard output could not be written: exit 1, nothing said when the
    /// reader went away (broken pipe).
    #[error("writing output: {0}")]
    Output(io::Error),
}

impl ClushError {
    /// The exit status clush gives: [`Exit::Usage`] (2) for a usage
    /// error, [`Exit::Failed`] (1) otherwise.
    pub fn exit(&self) -> Exit {
        match self {
            ClushError::Usage(_) => Exit::Usage,
            _ => Exit::Failed,
        }
    }

    /// What to print on standard error for this failure (ending with a
    /// newline), or nothing (a closed output pipe).
    pub fn render(&self, prog: Prog) -> Option<String> {
        let usage = prog.usage;
        match self {
            ClushError::Usage(msg) => Some(format!(
                "Usage: {usage} [options] command\n\n{usage}: error: {msg}\n"
            )),
            ClushError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => None,
            e => Some(format!("{usage}: {e}\n")),
        }
    }
}

/// An error and its causes, `outer: inner`, as one message.
fn chain(e: &dyn std::error::Error) -> ClushError {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(&format!(": {c}"));
        cause = c.source();
    }
    ClushError::Failed(msg)
}

/// Runs `args` as `prog`: targets resolved, the command run on each host
/// through the fleet engine with clush's output streamed to standard
/// output and error, then the gathered output, `--outdir`/`--errdir`, the
/// summary. Ctrl-C stops it ([`Outcome::Interrupted`]).
pub fn run(prog: Prog, args: RunRequest, env: &RunEnv) -> Result<Outcome, ClushError> {
    let site = site(&args, env.site.as_deref())?;
    let set = targets(&args, site.as_ref())?;
    let site_ssh = site.as_ref().map(|s| s.ssh.clone()).unwrap_or_default();
    let fanout = args.fanout.unwrap_or(site_ssh.fanout);
    let hosts: Vec<String> = set.iter().collect();
    let mut command = args.command.join(" ");
    if let Some(prefix) = &args.command_prefix {
        command = format!("{prefix} {command}");
    }

    let transport: Box<dyn Transport> = if args.exec {
        // A bad %-pattern is the same for every host: refuse it up front.
        swh_deploy_fleet::transport::substitute(&command, "", "", 0).map_err(|e| chain(&e))?;
        Box::new(ExecTransport::new())
    } else {
        let mut extra = Vec::new();
        for o in &args.ssh_options {
            let words = shlex::split(o)
                .ok_or_else(|| ClushError::Failed(format!("-o {o:?}: unbalanced quotes")))?;
            extra.extend(words.into_iter().map(Into::into));
        }
        // The site's options after the flags': ssh keeps the first value.
        for o in &site_ssh.options {
            extra.push(format!("-o{o}").into());
        }
        let ssh_config = args.ssh_config.clone().or(site_ssh.config.clone());
        let user = args.user.clone().or(site_ssh.user.clone());
        let connect_timeout = match args.connect_timeout {
            Some(t) => seconds("-t", t)?,
            None => site_ssh.connect_timeout,
        };
        // Connection reuse is the default (as Ansible's): one master per
        // host, kept DEFAULT_PERSIST after the run for the next commands.
        // `--no-reuse` or the site's `[ssh] reuse = false` turn it off.
        let reuse = (!args.no_reuse && site_ssh.reuse).then(|| ConnectionReuse {
            dir: Some(user_control_dir(env.runtime_dir.as_deref())),
            persist: args
                .control_persist
                .map_or(DEFAULT_PERSIST, |secs| Duration::from_secs(secs.max(1))),
        });
        if let Some(f) = &ssh_config {
            if !f.is_file() {
                return Err(ClushError::Failed(format!(
                    "-F {}: no such file",
                    f.display()
                )));
            }
        }
        Box::new(
            SshTransport::new(SshOptions {
                config_file: ssh_config,
                user,
                extra_args: extra,
                connect_timeout: Some(connect_timeout),
                host_keys: if args.accept_new_host_keys {
                    HostKeyPolicy::AcceptNew
                } else {
                    HostKeyPolicy::Strict
                },
                keepalive: Some((args.keepalive.max(1), 3)),
                reuse,
                // `--no-mux` or the site's `[ssh] mux = false`: an ssh
                // client per host and command, even over a live master.
                mux: !args.no_mux && site_ssh.mux,
                ..SshOptions::default()
            })
            .map_err(|e| chain(&e))?,
        )
    };

    let mode = if args.json {
        Mode::Json
    } else if (args.gather || args.gather_all) && args.line_mode {
        Mode::GatherLines
    } else if args.gather || args.gather_all {
        Mode::Gather
    } else if args.line_mode {
        Mode::Sorted
    } else {
        Mode::Direct
    };
    for d in [&args.outdir, &args.errdir].into_iter().flatten() {
        std::fs::create_dir_all(d)
            .map_err(|e| ClushError::Failed(format!("{}: {e}", d.display())))?;
    }

    let (stdout_tty, stderr_tty) = (env.stdout_tty, env.stderr_tty);
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => !env.no_color && stdout_tty && (args.gather_all || stderr_tty),
    };
    let style = Style {
        label: !args.no_label,
        node_count: args.node_count && !args.quiet,
        color,
    };
    let progress = stderr_tty
        && !args.quiet
        && (args.progress || matches!(mode, Mode::Gather | Mode::GatherLines | Mode::Sorted));

    let options = RunOptions {
        fanout,
        command_timeout: args.command_timeout.map(|v| seconds("-u", v)).transpose()?,
        merge_stderr: args.gather_all,
        hosts_label: Some(set.to_string()),
    };
    let cancel = CancelToken::new();
    let guard = cancel.cancel_on_signals().map_err(|e| chain(&e))?;
    // clush prints a host's exit code line as it finishes, except when it
    // gathers; and none with -q -S (the exit status says it).
    let clush = prog.prog == "clush";
    let exit_lines = !(args.quiet && args.maxrc);
    let live_exit_lines = clush && mode == Mode::Direct && exit_lines;
    let mut printer = Printer {
        live_exit_lines,
        prog: prog.prog,
        mode,
        verbose: args.verbose,
        style,
        out: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        progress: progress.then(|| Progress::new(hosts.len())),
        write_error: None,
        cancel: cancel.clone(),
    };
    let report = swh_deploy_fleet::run(
        transport.as_ref(),
        &hosts,
        &command,
        &options,
        &mut printer,
        &cancel,
    )
    .map_err(|e| chain(&e))?;
    transport.close();
    drop(guard);
    printer.clear_progress();

    let axis = args.axis.clone();
    let fold = move |hosts: &[&str]| -> String {
        match (&axis, swh_deploy_nodeset::NodeSet::from_names(hosts)) {
            (Some(axis), Ok(mut set)) => {
                set.set_fold_axis(Some(axis.clone()));
                set.to_string()
            }
            _ => swh_deploy_fleet::fold(hosts),
        }
    };
    let mut out = printer.out;
    let written = match mode {
        Mode::Gather => render::write_gathered(&mut out, &report, &style, &fold),
        Mode::GatherLines => render::write_line_gathered(&mut out, &report, &style, &fold),
        Mode::Sorted => render::write_sorted(&mut out, &report, &style),
        Mode::Direct | Mode::Json => Ok(()),
    }
    .and_then(|_| out.flush());
    if let Some(e) = printer.write_error.take() {
        return Err(ClushError::Output(e));
    }
    written.map_err(ClushError::Output)?;
    write_dirs(&args, &report)?;

    let mut err = io::stderr().lock();
    let summary = render::SummaryOptions {
        node_count: !args.quiet,
        exit_codes: exit_lines && !live_exit_lines,
        timeouts: exit_lines,
        unreachable_as_255: clush,
        count_line: !clush,
    };
    if clush && report.cancelled {
        // clush's own words (the outputs gathered so far are printed, which
        // clush does not do).
        let _ = writeln!(err, "Keyboard interrupt.");
        return Ok(Outcome::Interrupted);
    }
    for line in render::summary_with(&report, prog.prog, &fold, &summary) {
        let _ = writeln!(err, "{line}");
    }
    if report.cancelled {
        return Ok(Outcome::Interrupted);
    }
    Ok(Outcome::Ran(if args.maxrc {
        u8::try_from(report.max_rc_status().clamp(0, 255)).unwrap_or(255)
    } else {
        0
    }))
}

/// `--outdir`/`--errdir`: each host's output in `DIR/HOST`, written
/// atomically.
fn write_dirs(args: &RunRequest, report: &RunReport) -> Result<(), ClushError> {
    for (dir, pick) in [
        (
            &args.outdir,
            (|r: &HostResult| r.stdout.clone()) as fn(&HostResult) -> Vec<u8>,
        ),
        (&args.errdir, |r: &HostResult| r.stderr.clone()),
    ] {
        let Some(dir) = dir else { continue };
        for r in &report.results {
            if r.host.contains('/') || r.host.starts_with('.') {
                return Err(ClushError::Failed(format!(
                    "{}: host name {:?} cannot be a file name",
                    dir.display(),
                    r.host
                )));
            }
            let mut body = Vec::new();
            for l in swh_deploy_fleet::gather::lines(&pick(r)) {
                body.extend_from_slice(l);
                body.push(b'\n');
            }
            swh_deploy_util::atomic_write(&dir.join(&r.host), &body)
                .map_err(|e| ClushError::Failed(e.to_string()))?;
        }
    }
    Ok(())
}

/// A timeout option's seconds as a duration.
fn seconds(what: &str, v: f64) -> Result<Duration, ClushError> {
    if !v.is_finite() || v < 0.0 {
        return Err(ClushError::Failed(format!(
            "{what}: {v} is not a number of seconds >= 0"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_printed_as_clush_prints_them() {
        let e = ClushError::Usage("no such option: --bogus".into());
        assert_eq!(e.exit(), Exit::Usage);
        assert_eq!(
            e.render(SWH_DEPLOY).unwrap(),
            "Usage: swh-deploy run [options] command\n\nswh-deploy run: error: no such option: \
             --bogus\n"
        );
        let e = ClushError::Failed("-F /x: no such file".into());
        assert_eq!(e.exit(), Exit::Failed);
        assert_eq!(e.render(CLUSH).unwrap(), "clush: -F /x: no such file\n");
        let e = ClushError::Output(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
        assert_eq!(e.exit(), Exit::Failed);
        assert_eq!(e.render(CLUSH), None);
        let e = ClushError::Output(io::Error::other("disk full"));
        assert_eq!(
            e.render(SWH_DEPLOY).unwrap(),
            "swh-deploy run: writing output: disk full\n"
        );
    }

    #[test]
    fn causes_are_joined_as_one_message() {
        let e = swh_deploy_fleet::TransportError::ControlDir {
            path: "/run/x".into(),
            source: io::Error::other("denied"),
        };
        assert_eq!(
            chain(&e).to_string(),
            "ssh control directory /run/x: denied: denied"
        );
    }

    #[test]
    fn timeouts_are_non_negative_seconds() {
        assert!(seconds("-t", -1.0).is_err());
        assert_eq!(seconds("-u", 1.5).unwrap(), Duration::from_millis(1500));
    }
}
