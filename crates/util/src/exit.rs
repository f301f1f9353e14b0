//! The exit codes of `swh-deploy`.

use std::fmt;

/// How a `swh-deploy` command ends, as a process exit code. The codes and
/// their descriptions are the one table [`Exit::table`] prints (`swh-deploy
/// exit-codes`, the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: the command did what was asked.
    Success,
    /// 1: bad input (site file, node set, version...) or a step failed.
    Failed,
    /// 2: usage error (unknown flag, missing argument).
    Usage,
    /// 3: the failure budget was exceeded: no new batch was started.
    Budget,
    /// 4: refused: hosts are locked by another run.
    Locked,
    /// 5: refused: compensations are pending (puppet/cron may be off).
    Pending,
    /// 6: a gate was not reached before `--timeout`.
    Timeout,
    /// 130: interrupted (Ctrl-C, SIGTERM); compensations were run.
    Interrupted,
}

impl Exit {
    /// Every exit code, in table order.
    pub const ALL: [Exit; 8] = [
        Exit::Success,
        Exit::Failed,
        Exit::Usage,
        Exit::Budget,
        Exit::Locked,
        Exit::Pending,
        Exit::Timeout,
        Exit::Interrupted,
    ];

    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Budget => 3,
            Exit::Locked => 4,
            Exit::Pending => 5,
            Exit::Timeout => 6,
            Exit::Interrupted => 130,
        }
    }

    /// The exit for a process exit code, if it is one of the table's.
    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }

    /// What the code means, as the table says it.
    pub const fn description(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failed => "failure: bad input (site file, node set, version...) or a step failed",
            Exit::Usage => "usage error (unknown flag, missing argument)",
            Exit::Budget => "failure budget exceeded: no new batch was started (upgrade)",
            Exit::Locked => "refused: hosts are locked by another run (who, since when, pid shown)",
            Exit::Pending => "refused: compensations pending (puppet/cron may be off): run `swh-deploy recover`",
            Exit::Timeout => "gate not reached before --timeout: release not published, rollout not live or not healthy",
            Exit::Interrupted => "interrupted (Ctrl-C, SIGTERM): compensations were run; `swh-deploy resume RUN` continues",
        }
    }

    /// Whether this is [`Exit::Success`].
    pub const fn is_success(self) -> bool {
        matches!(self, Exit::Success)
    }

    /// The table of every code and its description, one per line (code
    /// left-aligned in 5 columns): what `swh-deploy exit-codes` prints.
    pub fn table() -> String {
        Exit::ALL
            .iter()
            .map(|e| format!("{:<5}{}\n", e.code(), e.description()))
            .collect()
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.description())
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 130]);
        for e in Exit::ALL {
            assert_eq!(Exit::from_code(e.code()), Some(e));
        }
        assert_eq!(Exit::from_code(7), None);
        assert!(Exit::Success.is_success() && !Exit::Failed.is_success());
    }

    #[test]
    fn table_is_aligned_and_complete() {
        let t = Exit::table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[0], "0    success");
        assert!(lines[5].starts_with("5    refused: compensations pending"));
        assert!(lines[7].starts_with("130  interrupted (Ctrl-C, SIGTERM)"));
        assert!(t.ends_with('\n'));
    }

    #[test]
    fn exit_code_conversion() {
        // ExitCode has no accessor; its Debug shows the code.
        let c: std::process::ExitCode = Exit::Interrupted.into();
        assert_eq!(c, std::process::ExitCode::from(130));
        let c: std::process::ExitCode = Exit::Success.into();
        assert_eq!(c, std::process::ExitCode::SUCCESS);
    }
}
