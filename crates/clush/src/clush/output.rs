//! clush's output as a run goes: `host: line` as lines arrive, exit code
//! lines as hosts finish, JSON lines, the progress line on a terminal.

use std::io::{self, Write};
use std::time::Duration;
use swh_deploy_fleet::render::{self, Style};
use swh_deploy_fleet::{CancelToken, HostResult, Observer, Status, Stream};

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Direct,
    Gather,
    GatherLines,
    Sorted,
    Json,
}

/// The `done/total` line on a terminal.
pub(super) struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    width: usize,
    shown: usize,
    dirty: bool,
    started: std::time::Instant,
}

impl Progress {
    pub(super) fn new(total: usize) -> Self {
        Progress {
            total,
            done: 0,
            failed: 0,
            width: total.to_string().len(),
            shown: 0,
            dirty: true,
            started: std::time::Instant::now(),
        }
    }
}

/// The run's observer: prints lines, exit code lines, JSON, progress.
pub(super) struct Printer<W: Write> {
    /// `PROG: HOST: exited with exit code N` on stderr as each host
    /// finishes (clush's direct mode).
    pub(super) live_exit_lines: bool,
    pub(super) prog: &'static str,
    pub(super) mode: Mode,
    /// `-v`: stdout lines as they arrive in the -b, -B and -L modes too.
    pub(super) verbose: bool,
    pub(super) style: Style,
    pub(super) out: W,
    pub(super) progress: Option<Progress>,
    pub(super) write_error: Option<io::Error>,
    pub(super) cancel: CancelToken,
}

impl<W: Write> Printer<W> {
    pub(super) fn clear_progress(&mut self) {
        if let Some(p) = &mut self.progress {
            if p.shown > 0 {
                let _ = write!(io::stderr(), "{}\r", " ".repeat(p.shown));
                p.shown = 0;
                p.dirty = true;
            }
        }
    }

    fn check(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if self.write_error.is_none() {
                self.write_error = Some(e);
                self.cancel.cancel();
            }
        }
    }
}

impl<W: Write> Observer for Printer<W> {
    fn line(&mut self, _index: usize, host: &str, stream: Stream, line: &[u8]) {
        if self.write_error.is_some() {
            return;
        }
        let label = self.style.label.then_some(host);
        match (self.mode, stream) {
            (Mode::Direct, Stream::Stdout) | (Mode::Gather | Mode::Sorted, Stream::Stdout)
                if self.mode == Mode::Direct || self.verbose =>
            {
                let r = render::write_labelled(&mut self.out, label, line, false, self.style.color);
                self.check(r);
            }
            (Mode::Json, _) | (_, Stream::Stdout) => {}
            (_, Stream::Stderr) => {
                self.clear_progress();
                let _ = self.out.flush();
                let mut e = io::stderr().lock();
                let _ = render::write_labelled(&mut e, label, line, true, self.style.color);
            }
        }
    }

    fn finished(&mut self, result: &HostResult) {
        if let Some(p) = &mut self.progress {
            p.done += 1;
            if !result.success() {
                p.failed += 1;
            }
            p.dirty = true;
        }
        if self.live_exit_lines {
            let rc = match result.status {
                Status::Exited(rc) if rc != 0 => Some(rc),
                Status::Unreachable => Some(255),
                _ => None,
            };
            if let Some(rc) = rc {
                self.clear_progress();
                let r = self.out.flush();
                self.check(r);
                eprintln!("{}: {}: exited with exit code {rc}", self.prog, result.host);
            }
        }
        if self.mode == Mode::Json && self.write_error.is_none() {
            let line = result.to_json();
            let r = writeln!(self.out, "{line}");
            self.check(r);
        }
    }

    fn idle(&mut self) {
        let r = self.out.flush();
        self.check(r);
    }

    fn tick(&mut self) {
        let Some(p) = &mut self.progress else { return };
        if !p.dirty || p.started.elapsed() < Duration::from_millis(1000) {
            return;
        }
        p.dirty = false;
        let mut s = format!("{}: {:>w$}/{}", self.prog, p.done, p.total, w = p.width);
        if p.failed > 0 {
            s.push_str(&format!(" ({} failed)", p.failed));
        }
        let pad = p.shown.saturating_sub(s.len());
        p.shown = s.len();
        let _ = write!(io::stderr(), "{s}{}\r", " ".repeat(pad));
    }
}
