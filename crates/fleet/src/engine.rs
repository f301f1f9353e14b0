//! The fan-out engine: a sliding window of local processes, one per host,
//! read line by line, with a command timeout and cancellation.
//!
//! Everything runs on one thread (a current-thread tokio runtime made for
//! the call): processes are started in target order while fewer than
//! [`RunOptions::fanout`] are running; their output arrives as chunks of
//! whole lines on a bounded channel; the caller's [`Observer`] sees every
//! line as it arrives, and the [`RunReport`] keeps it all.

use crate::gather::lines;
use crate::result::{HostResult, RunReport, Status};
use crate::transport::{Job, Launch, Transport};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Sliding window: at most this many hosts at once (clush `-f`).
    /// Default 64; 0 is taken as 1.
    pub fanout: usize,
    /// Kill the command on a host after this long (clush `-u`). Default none.
    pub command_timeout: Option<Duration>,
    /// Read stderr through the same pipe as stdout, so both are interleaved
    /// in [`HostResult::stdout`] as the host wrote them (clush `-B`).
    pub merge_stderr: bool,
    /// What `%hosts` expands to for the exec transport; default: the host
    /// names joined with `,`.
    pub hosts_label: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            fanout: 64,
            command_timeout: None,
            merge_stderr: false,
            hosts_label: None,
        }
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (or both streams with [`RunOptions::merge_stderr`]).
    Stdout,
    /// Standard error, then the transport's own messages.
    Stderr,
}

/// Receives a run's events as they happen, on the thread that called
/// [`run`]. Every method has an empty default.
pub trait Observer {
    /// The command was started for this host.
    fn started(&mut self, index: usize, host: &str) {
        let _ = (index, host);
    }
    /// One line of output (without its `\n`, nor the `\r` before it).
    fn line(&mut self, index: usize, host: &str, stream: Stream, line: &[u8]) {
        let _ = (index, host, stream, line);
    }
    /// The host is done (also called, with [`Status::Cancelled`], for hosts
    /// never started because the run was cancelled).
    fn finished(&mut self, result: &HostResult) {
        let _ = result;
    }
    /// No event is waiting: a good moment to flush buffered output.
    fn idle(&mut self) {}
    /// Called about every 250 ms while the run goes on (progress display).
    fn tick(&mut self) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// Cancels a run from any thread: no new host is started, running processes
/// are killed, and their hosts are reported as [`Status::Cancelled`].
#[derive(Debug, Clone)]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken {
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels (idempotent).
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The async runtime could not be created.
    #[error("cannot start the event loop: {0}")]
    Runtime(#[from] std::io::Error),
    /// The fan-out needs more open files than the process may have, even
    /// with its soft limit raised to the hard one: nothing was started.
    #[error(
        "a fan-out of {fanout} needs about {needed} open files and this process may have at most \
         {limit} (`ulimit -Hn`): lower the fan-out (-f, the site's [ssh] fanout) or raise the limit"
    )]
    FdLimit {
        /// Hosts worked on at once.
        fanout: usize,
        /// File descriptors that takes, with swh-deploy's own.
        needed: u64,
        /// The hard `RLIMIT_NOFILE`.
        limit: u64,
    },
}

/// File descriptors one host in flight may hold at once: the ends of its
/// stdout/stderr pipes and, for an `ssh` child, its pidfd; for a session on
/// a master, the control-socket connection and, while it is opened, the
/// three descriptors passed to the master.
pub const FDS_PER_HOST: u64 = 8;

/// File descriptors kept for swh-deploy itself (standard streams, journal,
/// logs, the runtime's own).
pub const FDS_RESERVED: u64 = 64;

/// Makes room for `in_flight` hosts at once: raises the soft
/// `RLIMIT_NOFILE` as far as they need (never above the hard limit, never
/// lowering it), or says why it cannot, before anything is started.
fn make_room_for(in_flight: usize) -> Result<(), RunError> {
    let needed = in_flight as u64 * FDS_PER_HOST + FDS_RESERVED;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= needed {
        return Ok(());
    }
    if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_max < needed {
        return Err(RunError::FdLimit {
            fanout: in_flight,
            needed,
            limit: lim.rlim_max,
        });
    }
    lim.rlim_cur = needed;
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(RunError::Runtime(std::io::Error::last_os_error()));
    }
    Ok(())
}

pub(crate) enum Msg {
    Output {
        unit: usize,
        stream: Stream,
        data: Vec<u8>,
    },
    Done {
        unit: usize,
        end: End,
        duration: Duration,
    },
}

pub(crate) enum End {
    Exited(i32),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

struct Unit {
    indexes: Vec<usize>,
    diagnostics: Option<std::path::PathBuf>,
    shared: Option<crate::transport::SharedConnection>,
}

/// Runs `command` on every host of `hosts` through `transport` and returns
/// one result per host, in the order of `hosts`.
///
/// Blocks the calling thread until every host is done or the run is
/// cancelled; must not be called from inside an async runtime.
pub fn run(
    transport: &dyn Transport,
    hosts: &[String],
    command: &str,
    options: &RunOptions,
    observer: &mut dyn Observer,
    cancel: &CancelToken,
) -> Result<RunReport, RunError> {
    let units = if transport.shared_job(command) {
        1
    } else {
        hosts.len()
    };
    make_room_for(options.fanout.max(1).min(units))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(drive(transport, hosts, command, options, observer, cancel)))
}

async fn drive(
    transport: &dyn Transport,
    hosts: &[String],
    command: &str,
    options: &RunOptions,
    observer: &mut dyn Observer,
    cancel: &CancelToken,
) -> RunReport {
    let start = Instant::now();
    let fanout = options.fanout.max(1);
    let label = options
        .hosts_label
        .clone()
        .unwrap_or_else(|| hosts.join(","));
    let shared = transport.shared_job(command);
    let n_units = if shared {
        usize::from(!hosts.is_empty())
    } else {
        hosts.len()
    };

    let mut outs: Vec<(Vec<u8>, Vec<u8>)> = vec![(Vec::new(), Vec::new()); hosts.len()];
    let mut results: Vec<Option<HostResult>> = vec![None; hosts.len()];
    let mut units: Vec<Unit> = Vec::with_capacity(n_units);
    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    let mut cancel_rx = cancel.subscribe();
    let mut cancelled = cancel.is_cancelled();
    let mut running = 0usize;
    let mut next = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    loop {
        while !cancelled && running < fanout && next < n_units {
            let indexes: Vec<usize> = if shared {
                (0..hosts.len()).collect()
            } else {
                vec![next]
            };
            let job = Job {
                host: if shared { &label } else { &hosts[next] },
                rank: if shared { 0 } else { next },
                hosts: &label,
                command,
            };
            let unit = units.len();
            next += 1;
            for &i in &indexes {
                observer.started(i, &hosts[i]);
            }
            match transport.prepare(&job) {
                Ok(launch) => {
                    units.push(Unit {
                        indexes,
                        diagnostics: launch.diagnostics.clone(),
                        shared: launch.shared.clone(),
                    });
                    running += 1;
                    tokio::spawn(host_task(
                        unit,
                        launch,
                        options.merge_stderr,
                        options.command_timeout,
                        cancel.subscribe(),
                        tx.clone(),
                    ));
                }
                Err(e) => {
                    let msg = e.to_string();
                    for &i in &indexes {
                        outs[i].1.extend_from_slice(msg.as_bytes());
                        outs[i].1.push(b'\n');
                        observer.line(i, &hosts[i], Stream::Stderr, msg.as_bytes());
                        let r = HostResult {
                            host: hosts[i].clone(),
                            index: i,
                            status: Status::LaunchFailed(msg.clone()),
                            stdout: std::mem::take(&mut outs[i].0),
                            stderr: std::mem::take(&mut outs[i].1),
                            duration: Duration::ZERO,
                        };
                        observer.finished(&r);
                        results[i] = Some(r);
                    }
                    units.push(Unit {
                        indexes: Vec::new(),
                        diagnostics: None,
                        shared: None,
                    });
                }
            }
        }
        if running == 0 {
            break;
        }
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(_) => {
                observer.idle();
                tokio::select! {
                    m = rx.recv() => match m { Some(m) => m, None => break },
                    _ = tick.tick() => { observer.tick(); continue; }
                    _ = cancel_rx.wait_for(|c| *c), if !cancelled => { cancelled = true; continue; }
                }
            }
        };
        match msg {
            Msg::Output { unit, stream, data } => {
                for &i in &units[unit].indexes {
                    let buf = match stream {
                        Stream::Stdout => &mut outs[i].0,
                        Stream::Stderr => &mut outs[i].1,
                    };
                    buf.extend_from_slice(&data);
                    for l in lines(&data) {
                        observer.line(i, &hosts[i], stream, l);
                    }
                }
            }
            Msg::Done {
                unit,
                end,
                duration,
            } => {
                running -= 1;
                let mut diag = match &units[unit].diagnostics {
                    Some(p) => {
                        let d = std::fs::read(p).unwrap_or_default();
                        let _ = std::fs::remove_file(p);
                        d
                    }
                    None => Vec::new(),
                };
                let status = match end {
                    End::Exited(code) => {
                        transport.classify(code, &mut diag, units[unit].shared.as_ref())
                    }
                    End::TimedOut => Status::TimedOut,
                    End::Cancelled => Status::Cancelled { started: true },
                    End::SpawnFailed(m) => Status::LaunchFailed(m),
                };
                let diag_stream = if options.merge_stderr {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                // ssh ends its messages with "\r\n" (it writes for a terminal).
                let mut diag: Vec<u8> = lines(&diag)
                    .flat_map(|l| l.iter().copied().chain(std::iter::once(b'\n')))
                    .collect();
                if let Status::LaunchFailed(m) = &status {
                    diag.extend_from_slice(m.as_bytes());
                    diag.push(b'\n');
                }
                for &i in &units[unit].indexes {
                    if !diag.is_empty() {
                        let buf = match diag_stream {
                            Stream::Stdout => &mut outs[i].0,
                            Stream::Stderr => &mut outs[i].1,
                        };
                        buf.extend_from_slice(&diag);
                        for l in lines(&diag) {
                            observer.line(i, &hosts[i], diag_stream, l);
                        }
                    }
                    let r = HostResult {
                        host: hosts[i].clone(),
                        index: i,
                        status: status.clone(),
                        stdout: std::mem::take(&mut outs[i].0),
                        stderr: std::mem::take(&mut outs[i].1),
                        duration,
                    };
                    observer.finished(&r);
                    results[i] = Some(r);
                }
            }
        }
    }
    drop(tx);
    observer.idle();

    let results: Vec<HostResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let r = HostResult {
                    host: hosts[i].clone(),
                    index: i,
                    status: Status::Cancelled { started: false },
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    duration: Duration::ZERO,
                };
                observer.finished(&r);
                r
            })
        })
        .collect();
    observer.idle();
    RunReport {
        results,
        cancelled: cancelled || cancel.is_cancelled(),
        elapsed: start.elapsed(),
    }
}

pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new file descriptors into `fds` on success.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: plain kill(2) on the process group we created; the
            // leader has not been reaped yet, so the id cannot be reused.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

async fn host_task(
    unit: usize,
    launch: Launch,
    merge: bool,
    timeout: Option<Duration>,
    mut cancel: watch::Receiver<bool>,
    tx: mpsc::Sender<Msg>,
) {
    let start = Instant::now();
    let end = run_one(unit, &launch, merge, timeout, &mut cancel, &tx).await;
    let _ = tx
        .send(Msg::Done {
            unit,
            end,
            duration: start.elapsed(),
        })
        .await;
}

async fn run_one(
    unit: usize,
    launch: &Launch,
    merge: bool,
    timeout: Option<Duration>,
    cancel: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Msg>,
) -> End {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut args = &launch.args;
    if let Some(session) = &launch.mux {
        match crate::mux::run(unit, session, launch, merge, deadline, cancel, tx).await {
            crate::mux::Outcome::Ended(end) => return end,
            // Nothing was asked of the master: start ssh as without it.
            crate::mux::Outcome::NotOpened => {}
            // Nothing was asked of it either, but an ssh through it would
            // hang as well: a connection of its own, and a word about it.
            crate::mux::Outcome::Unanswered => {
                let note = format!(
                    "swh-deploy: the ssh master at {} did not answer within {}s (stopped or hung?): \
                     this command used a connection of its own; end that master with \
                     `ssh -oControlPath={} -O exit x` or kill it\n",
                    session.socket.display(),
                    crate::mux::GREETING_TIMEOUT.as_secs(),
                    session.socket.display()
                );
                let _ = tx
                    .send(Msg::Output {
                        unit,
                        stream: if merge {
                            Stream::Stdout
                        } else {
                            Stream::Stderr
                        },
                        data: note.into_bytes(),
                    })
                    .await;
                args = &session.direct;
            }
        }
    }
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    // If swh-deploy itself dies without cleaning up (kill -9, OOM), an ssh
    // it started gets SIGTERM from the kernel instead of living on. The
    // runtime is current-thread, so the spawning thread lives until every
    // child has been reaped.
    let parent = std::process::id() as libc::pid_t;
    if launch.die_with_parent {
        // SAFETY: prctl and getppid are async-signal-safe; nothing is
        // allocated.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() != parent {
                    libc::_exit(143);
                }
                Ok(())
            });
        }
    }
    let mut merged_reader = None;
    if merge {
        let (r, w) = match pipe() {
            Ok(p) => p,
            Err(e) => return End::SpawnFailed(format!("pipe: {e}")),
        };
        let w2 = match w.try_clone() {
            Ok(w2) => w2,
            Err(e) => return End::SpawnFailed(format!("pipe: {e}")),
        };
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
        merged_reader = Some(r);
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return End::SpawnFailed(format!(
                "cannot start {}: {e}",
                launch.program.to_string_lossy()
            ))
        }
    };
    // The parent's copies of the write ends are closed when `cmd` drops.
    drop(cmd);
    let pid = child.id();
    let io = async {
        if let Some(r) = merged_reader {
            if let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(r) {
                pump(rx, unit, Stream::Stdout, tx).await;
            }
        } else {
            let out = child.stdout.take();
            let err = child.stderr.take();
            let a = async {
                if let Some(o) = out {
                    pump(o, unit, Stream::Stdout, tx).await;
                }
            };
            let b = async {
                if let Some(e) = err {
                    pump(e, unit, Stream::Stderr, tx).await;
                }
            };
            tokio::join!(a, b);
        }
        child.wait().await
    };
    let deadline = until(deadline);
    let end = tokio::select! {
        status = io => match status {
            Ok(s) => End::Exited(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
            Err(e) => End::SpawnFailed(format!("wait: {e}")),
        },
        _ = deadline => End::TimedOut,
        _ = cancel.wait_for(|c| *c) => End::Cancelled,
    };
    if !matches!(end, End::Exited(_)) {
        kill_group(pid);
    }
    end
}

/// Waits until `deadline` (forever when `None`).
pub(crate) async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending::<()>().await,
    }
}

pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut r: R,
    unit: usize,
    stream: Stream,
    tx: &mpsc::Sender<Msg>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let new = &chunk[..n];
        match new.iter().rposition(|b| *b == b'\n') {
            Some(p) => {
                let mut data = std::mem::take(&mut pending);
                data.extend_from_slice(&new[..=p]);
                pending.extend_from_slice(&new[p + 1..]);
                if tx.send(Msg::Output { unit, stream, data }).await.is_err() {
                    return;
                }
            }
            None => pending.extend_from_slice(new),
        }
    }
    if !pending.is_empty() {
        let _ = tx
            .send(Msg::Output {
                unit,
                stream,
                data: pending,
            })
            .await;
    }
}
