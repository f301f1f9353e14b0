//! Per-host results and the report of a whole run.

use std::time::Duration;

/// How one host's command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The command ran and exited with this code (`128 + signal` when it
    /// was killed by a signal).
    Exited(i32),
    /// The host could not be reached, or the connection was lost before the
    /// command finished (ssh exited 255 after a message of its own: refused,
    /// connect timeout, keepalive timeout, authentication or host-key error).
    Unreachable,
    /// The command timeout (`-u`) expired; the process was killed.
    TimedOut,
    /// The run was cancelled (Ctrl-C) while the command was running or before
    /// it started.
    Cancelled {
        /// True when the command had been started on the host.
        started: bool,
    },
    /// The local process could not be prepared or started (bad host name,
    /// bad `%` pattern, missing ssh binary).
    LaunchFailed(String),
}

/// The outcome of the command on one host.
#[derive(Debug, Clone)]
pub struct HostResult {
    /// The host name as given in the target list.
    pub host: String,
    /// Position in the target list.
    pub index: usize,
    /// How it ended.
    pub status: Status,
    /// Everything the host wrote on stdout (raw bytes; with
    /// [`crate::RunOptions::merge_stderr`] stderr is interleaved here).
    pub stdout: Vec<u8>,
    /// Everything the host wrote on stderr, then the transport's own messages
    /// (e.g. ssh's "Connection refused").
    pub stderr: Vec<u8>,
    /// Wall-clock time from start to end of the local process.
    pub duration: Duration,
}

impl HostResult {
    /// The command's own exit code, `None` when it did not complete
    /// (unreachable, timed out, cancelled, not started).
    pub fn rc(&self) -> Option<i32> {
        match self.status {
            Status::Exited(c) => Some(c),
            _ => None,
        }
    }

    /// The code clush would file the host under: the exit code, or 255 for
    /// an unreachable host (ssh's own code) or one that failed to launch;
    /// `None` for timed-out and cancelled hosts, which clush leaves out.
    pub fn display_rc(&self) -> Option<i32> {
        match self.status {
            Status::Exited(c) => Some(c),
            Status::Unreachable | Status::LaunchFailed(_) => Some(255),
            Status::TimedOut | Status::Cancelled { .. } => None,
        }
    }

    /// True when the command ran and exited 0.
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }

    /// True when the host could not be reached or the connection was lost.
    pub fn unreachable(&self) -> bool {
        matches!(self.status, Status::Unreachable | Status::LaunchFailed(_))
    }

    /// True when the command timeout expired.
    pub fn timed_out(&self) -> bool {
        self.status == Status::TimedOut
    }

    /// True when the run was cancelled before this host completed.
    pub fn cancelled(&self) -> bool {
        matches!(self.status, Status::Cancelled { .. })
    }

    /// The host's stdout split into lines as clush splits them.
    pub fn stdout_lines(&self) -> Vec<&[u8]> {
        crate::gather::lines(&self.stdout).collect()
    }

    /// The result as one line of JSON (no trailing newline): `host`, `rc`
    /// (null unless the command completed), `stdout`, `stderr` (UTF-8, invalid
    /// bytes replaced), `duration` (seconds), `unreachable`, `timed_out`,
    /// `cancelled`, and `error` (launch failure or null).
    pub fn to_json(&self) -> String {
        let error = match &self.status {
            Status::LaunchFailed(m) => serde_json::Value::String(m.clone()),
            _ => serde_json::Value::Null,
        };
        serde_json::json!({
            "host": self.host,
            "rc": self.rc(),
            "stdout": String::from_utf8_lossy(&self.stdout),
            "stderr": String::from_utf8_lossy(&self.stderr),
            "duration": (self.duration.as_secs_f64() * 1e6).round() / 1e6,
            "unreachable": self.unreachable(),
            "timed_out": self.timed_out(),
            "cancelled": self.cancelled(),
            "error": error,
        })
        .to_string()
    }
}

/// Everything a run produced, one [`HostResult`] per target in target order.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Results, in the order of the target list.
    pub results: Vec<HostResult>,
    /// True when the run was cancelled (Ctrl-C or [`crate::CancelToken`]).
    pub cancelled: bool,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

impl RunReport {
    /// Hosts whose command exited non-zero.
    pub fn failed(&self) -> impl Iterator<Item = &HostResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.status, Status::Exited(c) if c != 0))
    }

    /// Hosts that could not be reached (or whose launch failed).
    pub fn unreachable(&self) -> impl Iterator<Item = &HostResult> {
        self.results.iter().filter(|r| r.unreachable())
    }

    /// Hosts whose command timed out.
    pub fn timed_out(&self) -> impl Iterator<Item = &HostResult> {
        self.results.iter().filter(|r| r.timed_out())
    }

    /// Hosts that did not complete because the run was cancelled.
    pub fn incomplete(&self) -> impl Iterator<Item = &HostResult> {
        self.results.iter().filter(|r| r.cancelled())
    }

    /// True when every host ran the command and it exited 0.
    pub fn all_succeeded(&self) -> bool {
        self.results.iter().all(HostResult::success)
    }

    /// The largest [`HostResult::display_rc`], `None` if no host has one.
    pub fn max_rc(&self) -> Option<i32> {
        self.results.iter().filter_map(HostResult::display_rc).max()
    }

    /// The exit status of `clush -S`: the largest return code (255 for an
    /// unreachable host), or 255 when any host timed out. 0 when no host
    /// has a code.
    pub fn max_rc_status(&self) -> i32 {
        if self.timed_out().next().is_some() {
            return 255;
        }
        self.max_rc().unwrap_or(0)
    }
}
