//! Progress of long waits and builds, the same everywhere: every line
//! starts with the time elapsed since the operation started
//! ([`elapsed_prefix`], `[  12.3s]`), and while a step runs longer than a
//! few seconds a [`Progress`] keeps saying so: on a terminal a live line
//! rewritten in place (elapsed time ticking), otherwise plain lines only,
//! no control characters, at most one "still running" (or, for a wait,
//! "still waiting") line per [`Ticks::plain`].

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// `[  12.3s]`: the prefix of every progress line, `elapsed` since the
/// operation started.
pub fn elapsed_prefix(elapsed: Duration) -> String {
    format!("[{:>6.1}s]", elapsed.as_secs_f64())
}

/// When a running step is reported again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    /// A step running for less than this is not reported again.
    pub after: Duration,
    /// On a terminal: how often the live line is rewritten.
    pub live: Duration,
    /// Not a terminal: at most one "still running" line this often (no
    /// line at all since the last one printed).
    pub plain: Duration,
}

impl Default for Ticks {
    /// A live line after 2 s, rewritten every 0.5 s; a plain line every
    /// 30 s of silence.
    fn default() -> Self {
        Ticks {
            after: Duration::from_secs(2),
            live: Duration::from_millis(500),
            plain: Duration::from_secs(30),
        }
    }
}

/// The environment variable that sets [`Ticks::plain`] (a duration,
/// e.g. `10s`): how often a long step is reported when stderr is not a
/// terminal; tests set it to see those lines without waiting 30 s.
pub const EVERY_VAR: &str = "SWH_DEPLOY_PROGRESS_EVERY";

impl Ticks {
    /// The default, with [`Ticks::plain`] (and [`Ticks::after`], when
    /// longer) from [`EVERY_VAR`] when it holds a valid duration.
    pub fn from_env() -> Ticks {
        let mut t = Ticks::default();
        if let Some(d) = std::env::var(EVERY_VAR)
            .ok()
            .and_then(|v| crate::duration::parse(&v).ok())
            .filter(|d| !d.is_zero())
        {
            t.plain = d;
            t.after = t.after.min(d);
        }
        t
    }
}

struct State<W> {
    out: W,
    tty: bool,
    start: Instant,
    /// The running step, when it started, and its verb (`running`,
    /// `waiting`).
    step: Option<(String, Instant, &'static str)>,
    /// A live line is on the terminal (to be cleared before a line).
    live: bool,
    /// When the last line was printed.
    last: Instant,
}

impl<W: Write> State<W> {
    fn clear_live(&mut self) {
        if self.live {
            let _ = write!(self.out, "\r\x1b[K");
            self.live = false;
        }
    }

    fn line(&mut self, text: &str) {
        self.clear_live();
        let _ = writeln!(self.out, "{} {text}", elapsed_prefix(self.start.elapsed()));
        let _ = self.out.flush();
        self.last = Instant::now();
    }

    fn tick(&mut self, ticks: &Ticks) {
        let Some((what, since, verb)) = &self.step else {
            return;
        };
        let running = since.elapsed();
        if running < ticks.after {
            return;
        }
        let text = format!(
            "{} {what} ({verb} for {:.0}s)",
            elapsed_prefix(self.start.elapsed()),
            running.as_secs_f64()
        );
        if self.tty {
            let _ = write!(self.out, "\r{text}\x1b[K");
            let _ = self.out.flush();
            self.live = true;
        } else if self.last.elapsed() >= ticks.plain {
            let (what, since, verb) = (what.clone(), *since, *verb);
            self.line(&format!(
                "still {verb}: {what} ({:.0}s so far)",
                since.elapsed().as_secs_f64()
            ));
        }
    }
}

/// The progress of one long operation written to `out` (stderr): lines
/// with [`elapsed_prefix`], and a ticker thread that reports the running
/// step (see the module's documentation). Dropping it ends the step and
/// stops the thread.
pub struct Progress<W: Write + Send + 'static> {
    state: Arc<Mutex<State<W>>>,
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<thread::JoinHandle<()>>,
}

impl<W: Write + Send + 'static> std::fmt::Debug for Progress<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> Progress<W> {
    /// Progress on `out`, which is a terminal when `tty`, with
    /// [`Ticks::from_env`]; the clock starts now.
    pub fn new(out: W, tty: bool) -> Self {
        Self::with_ticks(out, tty, Ticks::from_env())
    }

    /// [`Progress::new`] with the given `ticks`.
    pub fn with_ticks(out: W, tty: bool, ticks: Ticks) -> Self {
        let now = Instant::now();
        let state = Arc::new(Mutex::new(State {
            out,
            tty,
            start: now,
            step: None,
            live: false,
            last: now,
        }));
        let (stop, rx) = mpsc::channel::<()>();
        let shared = Arc::clone(&state);
        let period = if tty {
            ticks.live
        } else {
            ticks.live.min(ticks.plain)
        };
        let ticker = thread::spawn(move || loop {
            match rx.recv_timeout(period) {
                Err(RecvTimeoutError::Timeout) => lock(&shared).tick(&ticks),
                _ => return,
            }
        });
        Progress {
            state,
            stop: Some(stop),
            ticker: Some(ticker),
        }
    }

    /// The same, with the clock started at `start` (when the operation
    /// whose lines the caller prints itself started).
    pub fn since(self, start: Instant) -> Self {
        lock(&self.state).start = start;
        self
    }

    /// Time since the operation started.
    pub fn elapsed(&self) -> Duration {
        lock(&self.state).start.elapsed()
    }

    /// Prints `line` with the elapsed prefix; the running step, if any,
    /// is over.
    pub fn line(&self, line: &str) {
        let mut s = lock(&self.state);
        s.step = None;
        s.line(line);
    }

    /// Prints `what` with the elapsed prefix and reports it as running
    /// until the next [`line`](Self::line), `step` or
    /// [`done`](Self::done).
    pub fn step(&self, what: &str) {
        let mut s = lock(&self.state);
        s.line(what);
        s.step = Some((what.to_string(), Instant::now(), "running"));
    }

    /// Reports `what` as running, as [`step`](Self::step) does, without
    /// printing its line (the caller printed it).
    pub fn running(&self, what: &str) {
        self.quietly(what, "running");
    }

    /// [`running`](Self::running) for a wait: its lines say `waiting`
    /// (`still waiting: WHAT (30s so far)`).
    pub fn waiting(&self, what: &str) {
        self.quietly(what, "waiting");
    }

    fn quietly(&self, what: &str, verb: &'static str) {
        let mut s = lock(&self.state);
        s.last = Instant::now();
        s.step = Some((what.to_string(), Instant::now(), verb));
    }

    /// The running step is over (its live line is cleared).
    pub fn done(&self) {
        let mut s = lock(&self.state);
        s.step = None;
        s.clear_live();
        let _ = s.out.flush();
    }
}

impl<W: Write + Send + 'static> Drop for Progress<W> {
    fn drop(&mut self) {
        self.done();
        drop(self.stop.take());
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

fn lock<W>(m: &Mutex<State<W>>) -> MutexGuard<'_, State<W>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test reads after the progress is gone.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn run(tty: bool, ticks: Ticks) -> String {
        let buf = Buf::default();
        let p = Progress::with_ticks(buf.clone(), tty, ticks);
        p.step("build of img:1");
        thread::sleep(MS(450));
        p.step("push to reg");
        thread::sleep(MS(30));
        p.line("built");
        thread::sleep(MS(200));
        drop(p);
        buf.text()
    }

    #[test]
    fn prefix() {
        assert_eq!(elapsed_prefix(MS(12_345)), "[  12.3s]");
        assert_eq!(elapsed_prefix(Duration::from_secs(1234)), "[1234.0s]");
    }

    #[test]
    fn plain_lines_elapsed_prefixed_and_rare_still_running_lines() {
        let ticks = Ticks {
            after: MS(50),
            live: MS(20),
            plain: MS(150),
        };
        let out = run(false, ticks);
        assert!(!out.contains('\r') && !out.contains('\x1b'), "{out:?}");
        let lines: Vec<&str> = out.lines().collect();
        for l in &lines {
            assert!(l.starts_with('[') && l[1..9].ends_with("s]"), "{out}");
        }
        assert!(lines[0].ends_with("] build of img:1"), "{out}");
        // 450 ms of a step, one line at most per 150 ms of silence: 2.
        let still: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains("still running: build of img:1 ("))
            .collect();
        assert!((1..=3).contains(&still.len()), "{out}");
        assert!(lines[lines.len() - 2].ends_with("] push to reg"), "{out}");
        // Nothing after the last line: the step was over.
        assert!(lines[lines.len() - 1].ends_with("] built"), "{out}");
    }

    #[test]
    fn a_live_line_on_a_terminal_cleared_before_each_line() {
        let ticks = Ticks {
            after: MS(50),
            live: MS(20),
            plain: MS(10_000),
        };
        let out = run(true, ticks);
        assert!(!out.contains("still running"), "{out:?}");
        // Rewritten in place several times, each time cleared to the end.
        let live = out.matches("\r[").count();
        assert!(live >= 5, "{out:?}");
        assert!(
            out.contains("] build of img:1 (running for 0s)\x1b[K"),
            "{out:?}"
        );
        // Cleared before the next line, and after the last step.
        assert!(out.contains("\x1b[K\r\x1b[K["), "{out:?}");
        let after_push = out.split("] push to reg\n").nth(1).unwrap();
        assert!(after_push.starts_with('['), "{out:?}");
        assert!(out.ends_with("] built\n"), "{out:?}");
    }

    #[test]
    fn running_prints_no_line_of_its_own_and_ticks_on_the_callers_clock() {
        let buf = Buf::default();
        let start = Instant::now() - Duration::from_secs(100);
        let ticks = Ticks {
            after: MS(10),
            live: MS(10),
            plain: MS(100),
        };
        let p = Progress::with_ticks(buf.clone(), false, ticks).since(start);
        p.running("migrate.sh in pod tb");
        thread::sleep(MS(250));
        drop(p);
        let out = buf.text();
        let lines: Vec<&str> = out.lines().collect();
        assert!((1..=3).contains(&lines.len()), "{out}");
        for l in lines {
            assert!(l.starts_with("[ 100."), "{out}");
            assert!(
                l.contains("] still running: migrate.sh in pod tb (0s so far)"),
                "{out}"
            );
        }
    }

    #[test]
    fn a_wait_says_waiting() {
        let buf = Buf::default();
        let ticks = Ticks {
            after: MS(10),
            live: MS(10),
            plain: MS(100),
        };
        let p = Progress::with_ticks(buf.clone(), false, ticks);
        p.waiting("staging: app OutOfSync");
        thread::sleep(MS(150));
        drop(p);
        let out = buf.text();
        assert!(
            out.contains("] still waiting: staging: app OutOfSync (0s so far)\n"),
            "{out}"
        );
        let buf = Buf::default();
        let p = Progress::with_ticks(buf.clone(), true, ticks);
        p.waiting("staging: app OutOfSync");
        thread::sleep(MS(100));
        drop(p);
        let out = buf.text();
        assert!(
            out.contains("] staging: app OutOfSync (waiting for 0s)\x1b[K"),
            "{out:?}"
        );
    }

    #[test]
    fn a_short_step_is_not_reported_again() {
        let ticks = Ticks {
            after: MS(5_000),
            live: MS(10),
            plain: MS(10),
        };
        for tty in [false, true] {
            let out = run(tty, ticks);
            assert_eq!(out.lines().count(), 3, "{out:?}");
            assert!(!out.contains('\r'), "{out:?}");
        }
    }
}
