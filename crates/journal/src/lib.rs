//! The swh-deploy journal: what was done, by whom, when, and what must still
//! be undone.
//!
//! One SQLite file (WAL mode, `synchronous=FULL`, so a committed row survives
//! a crash or `kill -9`), by default `$XDG_STATE_HOME/swh-deploy/journal.sqlite`
//! (`~/.local/state/swh-deploy/journal.sqlite`); the caller's explicit
//! path (the binary's `--journal`, else `$SWH_DEPLOY_JOURNAL`, resolved in
//! its settings) overrides it ([`resolve_path`]). It
//! holds:
//! - **runs**: one per command that changes something (command line, user,
//!   pid, host name, start/end, status, mode, parameters as JSON);
//! - **steps** of a run (index, name, kind, batch, hosts, start/end, status);
//! - **host results** of a step (exit code, stdout, stderr, duration,
//!   outcome), from which `resume` learns which hosts finished a step;
//! - **compensations**: actions such as `start-cron` or `enable-puppet` that
//!   put a host back. They are written *before* the side effect they undo and
//!   marked done after they ran, so after a crash the pending ones are still
//!   there for `swh-deploy recover`;
//! - **locks**: host -> run, taken for all hosts of a run in one transaction,
//!   so a second run touching one of the same hosts is refused with who holds
//!   it, since when and the pid. A lock whose process died on this machine is
//!   stale and is taken over, unless its run left compensations pending on
//!   the host (then `recover` must run first).
//!
//! Credentials are never stored: the journal records command lines as given
//! (swh-deploy takes no secret on its command line; tokens come from the
//! environment or files and are not journaled), remote outputs and exit
//! codes, nothing else.
//!
//! Times are UTC, RFC 3339 with milliseconds (`2026-11-26T12:00:00.123Z`),
//! taken from SQLite's clock.

mod recorder;
mod schema;

pub use recorder::Recorder;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use swh_deploy_util::Exit;

/// Identifier of a run (`swh-deploy history RUN`).
pub type RunId = i64;

/// The current time, as stored.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed (file not writable, corrupt, ...).
    #[error("journal {}: {source}", path.display())]
    Sqlite {
        /// The journal file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The journal directory could not be created.
    #[error("cannot create journal directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The journal was written by a newer swh-deploy.
    #[error("journal {} has schema version {found}, newer than this swh-deploy knows ({known}): upgrade swh-deploy", path.display())]
    TooNew {
        /// The journal file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The journal file could not be made private (0600).
    #[error("cannot make journal {} private (0600): {source}", path.display())]
    Private {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No such run.
    #[error("no run {0} in the journal")]
    NoSuchRun(RunId),
    /// No step with that index in that run.
    #[error("run {run} has no step {step}")]
    NoSuchStep {
        /// The run.
        run: RunId,
        /// The step index.
        step: i64,
    },
    /// No such compensation.
    #[error("no compensation {0} in the journal")]
    NoSuchCompensation(i64),
    /// Neither `$XDG_STATE_HOME` nor `$HOME` is set.
    #[error("cannot find the state directory: set XDG_STATE_HOME or HOME, or give --journal")]
    NoStateDir,
    /// A value could not be encoded as JSON.
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        /// What.
        what: &'static str,
        /// The error.
        source: serde_json::Error,
    },
}

impl JournalError {
    /// The exit a journal error means: [`Exit::Failed`].
    pub fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// Why hosts could not be locked for a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockRefused {
    /// Another live run holds a host.
    #[error("host {host} is locked by run {} of {} (pid {} on {}) since {}", holder.run, holder.user, holder.pid, holder.hostname, holder.since)]
    Held {
        /// The first host found locked.
        host: String,
        /// Who holds it.
        holder: Box<LockHolder>,
    },
    /// A dead run left compensations pending on a host: `recover` first.
    #[error("host {host} has {count} pending compensation(s) of interrupted run {run} (e.g. {action}): run `swh-deploy recover` first")]
    CompensationsPending {
        /// The host.
        host: String,
        /// The interrupted run.
        run: RunId,
        /// How many compensations are pending on the host.
        count: usize,
        /// One of them.
        action: String,
    },
}

impl LockRefused {
    /// The exit a refused run means: [`Exit::Locked`] (4) when another run
    /// holds a host, [`Exit::Pending`] (5) when compensations are pending.
    pub fn exit(&self) -> Exit {
        match self {
            LockRefused::Held { .. } => Exit::Locked,
            LockRefused::CompensationsPending { .. } => Exit::Pending,
        }
    }
}

/// Either a refusal or a journal failure.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock is held or recovery is needed.
    #[error(transparent)]
    Refused(#[from] LockRefused),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Who holds a host lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    /// The run.
    pub run: RunId,
    /// Its user.
    pub user: String,
    /// Its process id.
    pub pid: u32,
    /// The machine it runs on.
    pub hostname: String,
    /// When the lock was taken.
    pub since: String,
    /// The process's start time (clock ticks after boot), when recorded.
    pub pid_start: Option<u64>,
    /// The boot id of the machine when the lock was taken, when recorded.
    pub boot_id: Option<String>,
}

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// In progress (or its process died and nobody noticed yet).
    Running,
    /// Finished, every host succeeded.
    Succeeded,
    /// Finished with failed hosts.
    Failed,
    /// Stopped because the failure budget was exceeded.
    BudgetExceeded,
    /// Stopped by a signal or found dead: `resume` can continue it.
    Interrupted,
    /// Refused before doing anything (lock held, compensations pending).
    Refused,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::BudgetExceeded => "budget-exceeded",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Refused => "refused",
        }
    }

    fn parse(s: &str) -> RunStatus {
        match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "budget-exceeded" => RunStatus::BudgetExceeded,
            "interrupted" => RunStatus::Interrupted,
            _ => RunStatus::Refused,
        }
    }

    /// True when `resume` may continue the run.
    pub fn is_resumable(self) -> bool {
        matches!(self, RunStatus::Interrupted | RunStatus::BudgetExceeded)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Started, not finished.
    Running,
    /// Every host succeeded.
    Succeeded,
    /// Some host failed.
    Failed,
    /// Not run (e.g. no host left).
    Skipped,
}

impl StepStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> StepStatus {
        match s {
            "running" => StepStatus::Running,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            _ => StepStatus::Skipped,
        }
    }
}

/// Outcome of a step on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The step succeeded on the host.
    Ok,
    /// The command failed (non-zero exit, or a failed check).
    Failed,
    /// The host could not be reached.
    Unreachable,
    /// The health gate did not pass before its deadline.
    Unhealthy,
    /// The command timed out.
    TimedOut,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Unreachable => "unreachable",
            Outcome::Unhealthy => "unhealthy",
            Outcome::TimedOut => "timed-out",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "ok" => Outcome::Ok,
            "unreachable" => Outcome::Unreachable,
            "unhealthy" => Outcome::Unhealthy,
            "timed-out" => Outcome::TimedOut,
            _ => Outcome::Failed,
        }
    }
}

/// What a new run records about itself.
#[derive(Debug, Clone, Serialize)]
pub struct NewRun {
    /// The command line (argv), as given.
    pub command_line: Vec<String>,
    /// The mode (`nominal`, `config-change`, `long-standing`) or the
    /// subcommand for other commands.
    pub mode: String,
    /// Parameters (targets, batches, budget...) as JSON.
    pub parameters: serde_json::Value,
}

/// A run, as listed by `history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// argv.
    pub command_line: Vec<String>,
    /// Who ran it.
    pub user: String,
    /// Its process id.
    pub pid: u32,
    /// The machine it ran on.
    pub hostname: String,
    /// Start time.
    pub started_at: String,
    /// End time, if it ended.
    pub ended_at: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// Mode or subcommand.
    pub mode: String,
    /// Parameters.
    pub parameters: serde_json::Value,
    /// The process's start time (clock ticks after boot, field 22 of
    /// `/proc/PID/stat`), when recorded.
    pub pid_start: Option<u64>,
    /// The boot id of the machine (`/proc/sys/kernel/random/boot_id`) when
    /// the process started the run, when recorded.
    pub boot_id: Option<String>,
}

/// Something that happened to a run besides its steps: a `resume` and the
/// operator's decision, a forced take-over, where a migration started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    /// Its id (events are listed in this order).
    pub id: i64,
    /// The run it is about.
    pub run: RunId,
    /// `resume`, `forced-takeover`, `migration-started`...
    pub kind: String,
    /// When.
    pub at: String,
    /// Who.
    pub user: String,
    /// On which machine.
    pub hostname: String,
    /// The process that recorded it.
    pub pid: u32,
    /// Its command line (argv).
    pub command_line: Vec<String>,
    /// What was decided or found, as JSON.
    pub detail: serde_json::Value,
}

/// A step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Position in the run (0-based, unique in the run).
    pub index: i64,
    /// Name (`apt-get update`, `restart`, `health`...).
    pub name: String,
    /// Kind (`remote`, `health`, `compensation`...).
    pub kind: String,
    /// Batch number (0 is the canary), if the step belongs to a batch.
    pub batch: Option<i64>,
    /// The hosts, as a folded node set.
    pub hosts: String,
    /// Start time.
    pub started_at: String,
    /// End time.
    pub ended_at: Option<String>,
    /// Status.
    pub status: StepStatus,
}

/// The result of one step on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostResult {
    /// The step index.
    pub step: i64,
    /// The host.
    pub host: String,
    /// Exit code, if the command ran to completion.
    pub rc: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// How long it took.
    pub duration_ms: u64,
    /// The outcome.
    pub outcome: Outcome,
    /// When it was recorded.
    pub recorded_at: String,
}

/// A compensation: an action that puts a host back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compensation {
    /// Its id.
    pub id: i64,
    /// The run that recorded it.
    pub run: RunId,
    /// The host.
    pub host: String,
    /// The action, e.g. `start-cron`, `enable-puppet`.
    pub action: String,
    /// When it was recorded (before the side effect).
    pub recorded_at: String,
    /// When it ran successfully, `None` while pending.
    pub done_at: Option<String>,
}

/// The prefix of the actions of elastic-path compensations (e.g.
/// `elastic-revert:<commit>`, on target `charts:<branch>`): they are not run
/// on a host over ssh, so the static path's `recover` leaves them to the
/// elastic path's own recovery, which the binary dispatches to.
pub const ELASTIC_ACTION_PREFIX: &str = "elastic-";

impl Compensation {
    /// Whether it is an elastic-path compensation ([`ELASTIC_ACTION_PREFIX`]).
    pub fn is_elastic(&self) -> bool {
        self.action.starts_with(ELASTIC_ACTION_PREFIX)
    }
}

/// One run with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetails {
    /// The run.
    pub run: Run,
    /// Its steps in order.
    pub steps: Vec<Step>,
    /// Its host results in the order recorded.
    pub results: Vec<HostResult>,
    /// Its compensations, done or pending.
    pub compensations: Vec<Compensation>,
    /// The host locks it holds.
    pub locks: Vec<String>,
    /// Its events (resumes and their decisions, take-overs...), oldest first.
    pub events: Vec<RunEvent>,
}

/// An open journal.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    hostname: String,
    user: String,
    pid: u32,
    pid_start: Option<u64>,
    boot_id: Option<String>,
}

/// The default journal path: `$XDG_STATE_HOME/swh-deploy/journal.sqlite`, or
/// `$HOME/.local/state/swh-deploy/journal.sqlite`.
pub fn default_path() -> Result<PathBuf, JournalError> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .ok_or(JournalError::NoStateDir)?;
    Ok(state.join("swh-deploy").join("journal.sqlite"))
}

/// The journal to use: `explicit` (the caller's `--journal` or
/// `$SWH_DEPLOY_JOURNAL`, resolved once by the binary), else
/// [`default_path`].
pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf, JournalError> {
    match explicit {
        Some(p) => Ok(p.to_owned()),
        None => default_path(),
    }
}

/// This machine's host name.
pub fn this_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The user running swh-deploy (`$SUDO_USER` first, so that `sudo
/// swh-deploy` records the person, then `$USER`, then the uid).
pub fn this_user() -> String {
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return v.to_string_lossy().into_owned();
        }
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_of_uid(&passwd, uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The holder of one host's lock (read by [`lock_holder_row`]).
const LOCK_HOLDER_SQL: &str =
    "SELECT run_id, user, pid, hostname, since, pid_start, boot_id FROM locks WHERE host = ?1";

/// A row of [`LOCK_HOLDER_SQL`] as a [`LockHolder`].
fn lock_holder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LockHolder> {
    Ok(LockHolder {
        run: r.get(0)?,
        user: r.get(1)?,
        pid: r.get(2)?,
        hostname: r.get(3)?,
        since: r.get(4)?,
        pid_start: r.get::<_, Option<i64>>(5)?.map(|v| v.max(0) as u64),
        boot_id: r.get(6)?,
    })
}

/// The login name of `uid` in the text of an `/etc/passwd` file
/// (`name:password:uid:...` lines), if it has one.
fn user_of_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid_field = fields.nth(1)?;
        (uid_field.parse() == Ok(uid) && !name.is_empty()).then(|| name.to_string())
    })
}

/// True when process `pid` exists on this machine.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc == 0 {
        return !is_zombie(pid);
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A zombie (killed, not yet reaped by its parent) is dead for our purpose.
fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The start time of process `pid` in clock ticks after boot (field 22 of
/// `/proc/PID/stat`), or `None` when there is no such process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a `/proc/PID/stat` line (the command name, field 2, is in
/// parentheses and may itself hold spaces and parentheses).
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (the state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// This machine's boot id (`/proc/sys/kernel/random/boot_id`), a new one at
/// every boot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Whether the process that recorded a run or a lock is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// The same process is running on this machine.
    Alive,
    /// It is gone: no such pid, a zombie, another process under a reused
    /// pid (start time differs), or the machine rebooted since (boot id
    /// differs).
    Dead,
    /// It ran on another machine: it cannot be checked from here.
    Unknown,
}

/// Judges the process `pid` recorded on `hostname` with its start time and
/// boot id (`None` for rows written before they were recorded: then the pid
/// alone decides).
pub fn liveness(hostname: &str, pid: u32, pid_start: Option<u64>, boot: Option<&str>) -> Liveness {
    if hostname != this_hostname() {
        return Liveness::Unknown;
    }
    if let (Some(recorded), Some(now)) = (boot, boot_id()) {
        if recorded != now {
            return Liveness::Dead;
        }
    }
    if !pid_alive(pid) {
        return Liveness::Dead;
    }
    match (pid_start, process_start_time(pid)) {
        (Some(recorded), Some(now)) if recorded != now => Liveness::Dead,
        _ => Liveness::Alive,
    }
}

impl Run {
    /// Whether the process that runs (or ran) this run is still there.
    pub fn liveness(&self) -> Liveness {
        liveness(
            &self.hostname,
            self.pid,
            self.pid_start,
            self.boot_id.as_deref(),
        )
    }

    /// The identity of the process that runs (or ran) this run:
    /// `HOSTNAME:BOOT_ID:PID:START` (`-` for what was not recorded). Unique
    /// across machines and reboots; `swh-deploy recover` fences it off the
    /// hosts so that its in-flight remote commands cannot run any more.
    pub fn process_token(&self) -> String {
        process_token(
            &self.hostname,
            self.boot_id.as_deref(),
            self.pid,
            self.pid_start,
        )
    }
}

impl LockHolder {
    /// Whether the process holding the lock is still there.
    pub fn liveness(&self) -> Liveness {
        liveness(
            &self.hostname,
            self.pid,
            self.pid_start,
            self.boot_id.as_deref(),
        )
    }
}

/// `HOSTNAME:BOOT_ID:PID:START`, see [`Run::process_token`].
pub fn process_token(hostname: &str, boot: Option<&str>, pid: u32, start: Option<u64>) -> String {
    format!(
        "{hostname}:{}:{pid}:{}",
        boot.unwrap_or("-"),
        start.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
    )
}

/// Creates `dir` and its missing parents with mode 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates the journal file 0600 when it does not exist yet (SQLite then
/// creates its `-wal` and `-shm` files with the same mode), and brings an
/// existing file and its `-wal`/`-shm` back to 0600: they hold remote
/// outputs.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let name = path.as_os_str();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = name.to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
            _ => {}
        }
    }
    Ok(())
}

impl Journal {
    /// Opens (creating it and its directory if needed) the journal at `path`
    /// and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|source| JournalError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        make_private(path).map_err(|source| JournalError::Private {
            path: path.to_owned(),
            source,
        })?;
        let sql = |source| JournalError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        schema::migrate(&mut conn, path)?;
        Ok(Journal {
            conn,
            path: path.to_owned(),
            hostname: this_hostname(),
            user: this_user(),
            pid: std::process::id(),
            pid_start: process_start_time(std::process::id()),
            boot_id: boot_id(),
        })
    }

    /// Opens the journal at [`resolve_path`]`(explicit)`.
    pub fn open_default(explicit: Option<&Path>) -> Result<Journal, JournalError> {
        Journal::open(&resolve_path(explicit)?)
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records runs as if made by another process (tests, and `resume`
    /// taking over a run): user, pid and host name used from now on.
    /// The start time and boot id are those of `pid` here now (`None` when
    /// it is not running).
    pub fn set_identity(&mut self, user: &str, pid: u32, hostname: &str) {
        user.clone_into(&mut self.user);
        self.pid = pid;
        hostname.clone_into(&mut self.hostname);
        self.pid_start = process_start_time(pid);
        self.boot_id = boot_id();
    }

    /// Overrides the recorded start time and boot id of this journal's
    /// process (tests: a reused pid, a run from before a reboot).
    pub fn set_process_identity(&mut self, pid_start: Option<u64>, boot_id: Option<String>) {
        self.pid_start = pid_start;
        self.boot_id = boot_id;
    }

    /// The identity token of this journal's process (see
    /// [`Run::process_token`]).
    pub fn process_token(&self) -> String {
        process_token(
            &self.hostname,
            self.boot_id.as_deref(),
            self.pid,
            self.pid_start,
        )
    }

    fn err(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Starts a run: status `running`, this user, pid and host name.
    pub fn start_run(&mut self, run: &NewRun) -> Result<RunId, JournalError> {
        let argv =
            serde_json::to_string(&run.command_line).map_err(|source| JournalError::Json {
                what: "command line",
                source,
            })?;
        let params =
            serde_json::to_string(&run.parameters).map_err(|source| JournalError::Json {
                what: "parameters",
                source,
            })?;
        self.conn
            .execute(
                &format!(
                    "INSERT INTO runs (command_line, user, pid, hostname, started_at, status, mode, parameters, pid_start, boot_id)
                     VALUES (?1, ?2, ?3, ?4, {NOW}, 'running', ?5, ?6, ?7, ?8)"
                ),
                params![argv, self.user, self.pid, self.hostname, run.mode, params, sql_start(self.pid_start), self.boot_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Ends a run with `status` (releases nothing: see [`Journal::release_locks`]).
    pub fn end_run(&mut self, run: RunId, status: RunStatus) -> Result<(), JournalError> {
        let n = self
            .conn
            .execute(
                &format!("UPDATE runs SET status = ?2, ended_at = {NOW} WHERE id = ?1"),
                params![run, status.as_str()],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(JournalError::NoSuchRun(run));
        }
        Ok(())
    }

    /// Marks a run interrupted (Ctrl-C, or found dead): `resume` may continue it.
    pub fn mark_interrupted(&mut self, run: RunId) -> Result<(), JournalError> {
        self.end_run(run, RunStatus::Interrupted)
    }

    /// Takes over an interrupted run for `resume`: status back to `running`,
    /// this process's pid, user and host name, end time cleared; its locks
    /// move to this process.
    pub fn resume_run(&mut self, run: RunId) -> Result<Run, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| JournalError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        let n = tx
            .execute(
                "UPDATE runs SET status = 'running', ended_at = NULL, pid = ?2, user = ?3, hostname = ?4, pid_start = ?5, boot_id = ?6 WHERE id = ?1",
                params![run, self.pid, self.user, self.hostname, sql_start(self.pid_start), self.boot_id],
            )
            .map_err(|e| JournalError::Sqlite { path: self.path.clone(), source: e })?;
        if n == 0 {
            return Err(JournalError::NoSuchRun(run));
        }
        tx.execute(
            "UPDATE locks SET pid = ?2, user = ?3, hostname = ?4, pid_start = ?5, boot_id = ?6 WHERE run_id = ?1",
            params![run, self.pid, self.user, self.hostname, sql_start(self.pid_start), self.boot_id],
        )
        .map_err(|e| JournalError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        tx.commit().map_err(|e| JournalError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        self.run(run)
    }

    /// Marks as interrupted every `running` run of this machine whose process
    /// is gone ([`Liveness::Dead`]: no such pid, another process under the
    /// same pid, or a reboot since); returns their ids. Called by `history`,
    /// `recover`, and before taking locks.
    pub fn reap_dead_runs(&mut self) -> Result<Vec<RunId>, JournalError> {
        let candidates: Vec<Run> = {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND hostname = ?1"
                ))
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([&self.hostname], run_row)
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        let mut reaped = Vec::new();
        for run in candidates {
            let id = run.id;
            if run.liveness() == Liveness::Dead {
                self.conn
                    .execute(
                        &format!(
                            "UPDATE runs SET status = 'interrupted', ended_at = {NOW} WHERE id = ?1 AND status = 'running'"
                        ),
                        [id],
                    )
                    .map_err(|e| self.err(e))?;
                reaped.push(id);
            }
        }
        Ok(reaped)
    }

    /// Records the start of step `index` of `run`.
    pub fn start_step(
        &mut self,
        run: RunId,
        index: i64,
        name: &str,
        kind: &str,
        batch: Option<i64>,
        hosts: &str,
    ) -> Result<(), JournalError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO steps (run_id, idx, name, kind, batch, hosts, started_at, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW}, 'running')
                     ON CONFLICT (run_id, idx) DO UPDATE SET started_at = excluded.started_at,
                        ended_at = NULL, status = 'running', hosts = excluded.hosts"
                ),
                params![run, index, name, kind, batch, hosts],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records the end of step `index` of `run`.
    pub fn end_step(
        &mut self,
        run: RunId,
        index: i64,
        status: StepStatus,
    ) -> Result<(), JournalError> {
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE steps SET status = ?3, ended_at = {NOW} WHERE run_id = ?1 AND idx = ?2"
                ),
                params![run, index, status.as_str()],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(JournalError::NoSuchStep { run, step: index });
        }
        Ok(())
    }

    /// Records the result of step `step` of `run` on `host`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_host_result(
        &mut self,
        run: RunId,
        step: i64,
        host: &str,
        rc: Option<i32>,
        stdout: &[u8],
        stderr: &[u8],
        duration: Duration,
        outcome: Outcome,
    ) -> Result<(), JournalError> {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let n = self
            .conn
            .execute(
                &format!(
                    "INSERT INTO host_results (run_id, step_idx, host, rc, stdout, stderr, duration_ms, outcome, recorded_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW}
                     WHERE EXISTS (SELECT 1 FROM steps WHERE run_id = ?1 AND idx = ?2)"
                ),
                params![run, step, host, rc, stdout, stderr, ms, outcome.as_str()],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(JournalError::NoSuchStep { run, step });
        }
        Ok(())
    }

    /// Records that `action` must run on `host` to put it back. Call this
    /// BEFORE the side effect; returns the compensation's id for
    /// [`Journal::complete_compensation`].
    pub fn add_compensation(
        &mut self,
        run: RunId,
        host: &str,
        action: &str,
    ) -> Result<i64, JournalError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO compensations (run_id, host, action, recorded_at) VALUES (?1, ?2, ?3, {NOW})"
                ),
                params![run, host, action],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks compensation `id` done (after it ran successfully).
    pub fn complete_compensation(&mut self, id: i64) -> Result<(), JournalError> {
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE compensations SET done_at = {NOW} WHERE id = ?1 AND done_at IS NULL"
                ),
                [id],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            let exists: bool = self
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM compensations WHERE id = ?1)",
                    [id],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            if !exists {
                return Err(JournalError::NoSuchCompensation(id));
            }
        }
        Ok(())
    }

    /// Pending compensations (of every run, or of `run`), oldest first.
    pub fn pending_compensations(
        &self,
        run: Option<RunId>,
    ) -> Result<Vec<Compensation>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, run_id, host, action, recorded_at, done_at FROM compensations
                 WHERE done_at IS NULL AND (?1 IS NULL OR run_id = ?1) ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([run], compensation_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Locks `hosts` for `run`, all or none, in one transaction. Hosts already
    /// locked by `run` itself are kept. A lock held by a live process (or by
    /// a process on another machine) refuses the whole request with
    /// [`LockRefused::Held`]. A stale lock (its process is dead on this
    /// machine) is taken over, unless its run left compensations pending on
    /// that host ([`LockRefused::CompensationsPending`]).
    pub fn acquire_locks(&mut self, run: RunId, hosts: &[String]) -> Result<(), LockError> {
        let path = self.path.clone();
        let sql = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        for host in hosts {
            let holder: Option<LockHolder> = tx
                .query_row(LOCK_HOLDER_SQL, [host], lock_holder_row)
                .optional()
                .map_err(sql)?;
            if let Some(holder) = holder {
                if holder.run == run {
                    continue;
                }
                // Stale: its process is gone, or its run ended (e.g. taken
                // over by `recover --force`).
                let status: Option<String> = tx
                    .query_row("SELECT status FROM runs WHERE id = ?1", [holder.run], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sql)?;
                let stale = holder.liveness() == Liveness::Dead
                    || status.as_deref() != Some(RunStatus::Running.as_str());
                if !stale {
                    return Err(LockRefused::Held {
                        host: host.clone(),
                        holder: Box::new(holder),
                    }
                    .into());
                }
                let pending: Vec<String> = {
                    let mut stmt = tx
                        .prepare(
                            "SELECT action FROM compensations WHERE run_id = ?1 AND host = ?2 AND done_at IS NULL ORDER BY id",
                        )
                        .map_err(sql)?;
                    let rows = stmt
                        .query_map(params![holder.run, host], |r| r.get(0))
                        .map_err(sql)?;
                    rows.collect::<Result<_, _>>().map_err(sql)?
                };
                if let Some(action) = pending.first() {
                    return Err(LockRefused::CompensationsPending {
                        host: host.clone(),
                        run: holder.run,
                        count: pending.len(),
                        action: action.clone(),
                    }
                    .into());
                }
                tx.execute(
                    &format!(
                        "UPDATE runs SET status = 'interrupted', ended_at = {NOW} WHERE id = ?1 AND status = 'running'"
                    ),
                    [holder.run],
                )
                .map_err(sql)?;
                tx.execute("DELETE FROM locks WHERE host = ?1", [host])
                    .map_err(sql)?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO locks (host, run_id, user, pid, hostname, since, pid_start, boot_id) VALUES (?1, ?2, ?3, ?4, ?5, {NOW}, ?6, ?7)"
                ),
                params![host, run, self.user, self.pid, self.hostname, sql_start(self.pid_start), self.boot_id],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(())
    }

    /// Releases the locks of `run` on `hosts` (all its locks when `hosts` is
    /// `None`); returns how many were released.
    pub fn release_locks(
        &mut self,
        run: RunId,
        hosts: Option<&[String]>,
    ) -> Result<usize, JournalError> {
        match hosts {
            None => self
                .conn
                .execute("DELETE FROM locks WHERE run_id = ?1", [run])
                .map_err(|e| self.err(e)),
            Some(hosts) => {
                let tx = self.conn.transaction().map_err(|e| JournalError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
                let mut n = 0;
                for h in hosts {
                    n += tx
                        .execute(
                            "DELETE FROM locks WHERE run_id = ?1 AND host = ?2",
                            params![run, h],
                        )
                        .map_err(|e| JournalError::Sqlite {
                            path: self.path.clone(),
                            source: e,
                        })?;
                }
                tx.commit().map_err(|e| JournalError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
                Ok(n)
            }
        }
    }

    /// Who holds the lock on `host`, if anyone.
    pub fn lock_holder(&self, host: &str) -> Result<Option<LockHolder>, JournalError> {
        self.conn
            .query_row(LOCK_HOLDER_SQL, [host], lock_holder_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The most recent runs, newest first (at most `limit`).
    pub fn runs(&self, limit: usize) -> Result<Vec<Run>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], run_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One run.
    pub fn run(&self, id: RunId) -> Result<Run, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(JournalError::NoSuchRun(id))
    }

    /// One run with its steps, host results, compensations and locks.
    pub fn run_details(&self, id: RunId) -> Result<RunDetails, JournalError> {
        let run = self.run(id)?;
        let steps = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT idx, name, kind, batch, hosts, started_at, ended_at, status FROM steps
                     WHERE run_id = ?1 ORDER BY idx",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok(Step {
                        index: r.get(0)?,
                        name: r.get(1)?,
                        kind: r.get(2)?,
                        batch: r.get(3)?,
                        hosts: r.get(4)?,
                        started_at: r.get(5)?,
                        ended_at: r.get(6)?,
                        status: StepStatus::parse(&r.get::<_, String>(7)?),
                    })
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        let results = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT step_idx, host, rc, stdout, stderr, duration_ms, outcome, recorded_at
                     FROM host_results WHERE run_id = ?1 ORDER BY id",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok(HostResult {
                        step: r.get(0)?,
                        host: r.get(1)?,
                        rc: r.get(2)?,
                        stdout: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(3)?).into_owned(),
                        stderr: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(4)?).into_owned(),
                        duration_ms: r.get::<_, i64>(5)?.max(0) as u64,
                        outcome: Outcome::parse(&r.get::<_, String>(6)?),
                        recorded_at: r.get(7)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        let compensations = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT id, run_id, host, action, recorded_at, done_at FROM compensations
                     WHERE run_id = ?1 ORDER BY id",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([id], compensation_row)
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        let locks = {
            let mut stmt = self
                .conn
                .prepare("SELECT host FROM locks WHERE run_id = ?1 ORDER BY host")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([id], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        let events = self.events(id)?;
        Ok(RunDetails {
            run,
            steps,
            results,
            compensations,
            locks,
            events,
        })
    }

    /// Records an event of `run` (`kind`: `resume`, `forced-takeover`...)
    /// by this process, with its command line and `detail`.
    pub fn add_event(
        &mut self,
        run: RunId,
        kind: &str,
        command_line: &[String],
        detail: &serde_json::Value,
    ) -> Result<i64, JournalError> {
        let argv = serde_json::to_string(command_line).map_err(|source| JournalError::Json {
            what: "command line",
            source,
        })?;
        let detail = serde_json::to_string(detail).map_err(|source| JournalError::Json {
            what: "event detail",
            source,
        })?;
        let n = self
            .conn
            .execute(
                &format!(
                    "INSERT INTO run_events (run_id, kind, at, user, hostname, pid, command_line, detail)
                     SELECT ?1, ?2, {NOW}, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)"
                ),
                params![run, kind, self.user, self.hostname, self.pid, argv, detail],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(JournalError::NoSuchRun(run));
        }
        Ok(self.conn.last_insert_rowid())
    }

    /// The events of `run`, oldest first.
    pub fn events(&self, run: RunId) -> Result<Vec<RunEvent>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, run_id, kind, at, user, hostname, pid, command_line, detail
                 FROM run_events WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([run], |r| {
                let argv: String = r.get(7)?;
                let detail: String = r.get(8)?;
                Ok(RunEvent {
                    id: r.get(0)?,
                    run: r.get(1)?,
                    kind: r.get(2)?,
                    at: r.get(3)?,
                    user: r.get(4)?,
                    hostname: r.get(5)?,
                    pid: r.get(6)?,
                    command_line: serde_json::from_str(&argv)
                        .unwrap_or_else(|_| vec![argv.clone()]),
                    detail: serde_json::from_str(&detail)
                        .unwrap_or(serde_json::Value::String(detail)),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The hosts on which every step named `step_name` of `run` that they
    /// took part in ended `ok` (for `resume`: these hosts need not redo it).
    /// A host with a later non-ok result for that step is not finished.
    pub fn hosts_finished(&self, run: RunId, step_name: &str) -> Result<Vec<String>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT h.host FROM host_results h JOIN steps s ON s.run_id = h.run_id AND s.idx = h.step_idx
                 WHERE h.run_id = ?1 AND s.name = ?2 AND h.outcome = 'ok'
                   AND h.id = (SELECT MAX(h2.id) FROM host_results h2
                               JOIN steps s2 ON s2.run_id = h2.run_id AND s2.idx = h2.step_idx
                               WHERE h2.run_id = ?1 AND s2.name = ?2 AND h2.host = h.host)
                 ORDER BY h.host",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run, step_name], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The hosts whose latest result for step `index` of `run` is `ok`.
    pub fn hosts_finished_step(&self, run: RunId, index: i64) -> Result<Vec<String>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT h.host FROM host_results h
                 WHERE h.run_id = ?1 AND h.step_idx = ?2
                   AND h.id = (SELECT MAX(id) FROM host_results h2 WHERE h2.run_id = ?1 AND h2.step_idx = ?2 AND h2.host = h.host)
                   AND h.outcome = 'ok'
                 ORDER BY h.host",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run, index], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The `journal_mode` and `synchronous` settings in effect (`("wal", 2)`
    /// for WAL with synchronous=FULL).
    pub fn durability(&self) -> Result<(String, i64), JournalError> {
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let sync: i64 = self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((mode, sync))
    }

    /// The schema version of the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, JournalError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Runs SQLite's `integrity_check`; `Ok(())` when the file is sound.
    pub fn check_integrity(&self) -> Result<Result<(), String>, JournalError> {
        let res: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(if res == "ok" { Ok(()) } else { Err(res) })
    }
}

/// A start time as SQLite stores it.
fn sql_start(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

/// The columns read by [`run_row`].
const RUN_COLUMNS: &str = "id, command_line, user, pid, hostname, started_at, ended_at, status, mode, parameters, pid_start, boot_id";

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<Run> {
    let argv: String = r.get(1)?;
    let params: String = r.get(9)?;
    Ok(Run {
        id: r.get(0)?,
        command_line: serde_json::from_str(&argv).unwrap_or_else(|_| vec![argv.clone()]),
        user: r.get(2)?,
        pid: r.get(3)?,
        hostname: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        status: RunStatus::parse(&r.get::<_, String>(7)?),
        mode: r.get(8)?,
        parameters: serde_json::from_str(&params).unwrap_or(serde_json::Value::String(params)),
        pid_start: r.get::<_, Option<i64>>(10)?.map(|v| v.max(0) as u64),
        boot_id: r.get(11)?,
    })
}

fn compensation_row(r: &rusqlite::Row) -> rusqlite::Result<Compensation> {
    Ok(Compensation {
        id: r.get(0)?,
        run: r.get(1)?,
        host: r.get(2)?,
        action: r.get(3)?,
        recorded_at: r.get(4)?,
        done_at: r.get(5)?,
    })
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        // Fields 3.. of a real line, after a name with spaces and ')'.
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 10000 100";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        let me = std::process::id();
        let start = process_start_time(me).unwrap();
        assert!(start > 0);
        assert_eq!(
            liveness(&this_hostname(), me, Some(start), boot_id().as_deref()),
            Liveness::Alive
        );
        assert_eq!(
            liveness(&this_hostname(), me, Some(start + 1), boot_id().as_deref()),
            Liveness::Dead
        );
        assert_eq!(
            liveness(&this_hostname(), me, Some(start), Some("not-this-boot")),
            Liveness::Dead
        );
        assert_eq!(
            liveness("another-admin-host", me, Some(start), None),
            Liveness::Unknown
        );
        // Rows from before start times were recorded: the pid decides.
        assert_eq!(liveness(&this_hostname(), me, None, None), Liveness::Alive);
    }

    #[test]
    fn a_version_1_journal_is_migrated_and_its_runs_judged_by_pid() {
        let dir =
            std::env::temp_dir().join(format!("swh-deploy-journal-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO runs (command_line, user, pid, hostname, started_at, status, mode)
                 VALUES ('[]', 'alice', ?1, ?2, 'then', 'running', 'nominal')",
                params![std::process::id(), this_hostname()],
            )
            .unwrap();
        }
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.schema_version().unwrap(), schema::VERSION);
        let run = j.run(1).unwrap();
        assert_eq!((run.pid_start, run.boot_id.as_deref()), (None, None));
        // Our own pid, no start time recorded: alive, not reaped.
        assert!(j.reap_dead_runs().unwrap().is_empty());
        assert!(j.events(1).unwrap().is_empty());
        drop(j);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod user_tests {
    use super::user_of_uid;

    #[test]
    fn uid_is_named_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # comment\n\
                      sysadm:x:1000:1000:Sys Admin:/home/sysadm:/bin/sh\n";
        assert_eq!(user_of_uid(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of_uid(passwd, 1000).as_deref(), Some("sysadm"));
        assert_eq!(user_of_uid(passwd, 42), None);
    }
}
