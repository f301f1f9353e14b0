//! The per-host remote lock and fence that keep the remote commands of a
//! dead run from undoing a later compensation.
//!
//! A remote command without a pty does not die with its ssh client: after a
//! `kill -9` of swh-deploy, a `puppet agent --disable` already started (or
//! still in flight to the host) can finish *after* `recover` re-enabled
//! puppet. So every side-effecting remote command of a run goes through a
//! fixed wrapper script ([`guarded`]) that, on the host:
//!
//! 1. takes `flock` on [`REMOTE_LOCK`] (in [`REMOTE_DIR`], root-only, 0700),
//!    waiting at most [`LOCK_WAIT`];
//! 2. appends the identities of dead processes it was asked to fence to
//!    [`REMOTE_FENCE`] (only `recover` and the compensations do that);
//! 3. refuses to run (exit [`EXIT_FENCED`]) when the identity of the process
//!    that sent it ([`swh_deploy_journal::Run::process_token`]: machine, boot
//!    id, pid, start time) is in the fence file;
//! 4. runs the command, either holding the lock until it exits
//!    ([`Hold::Whole`]: stop cron, disable puppet and the compensations,
//!    which are short) or releasing it first ([`Hold::CheckOnly`]: apt,
//!    restarts, the migration, which may last long and must not block
//!    `recover`).
//!
//! `recover` fences the dead run's process on each host under the lock: an
//! orphaned `--disable` that already holds the lock finishes first, one that
//! arrives later finds itself fenced and does nothing. Then the compensation
//! runs and the host's final state is verified ([`verify_line`]).
//!
//! The script is a constant; the command and the tokens are passed as its
//! arguments, each shell-quoted: no shell is built from unvalidated strings.

use crate::command::{quote_words, RemoteCommand};

/// The directory of the lock and fence files on each host (in `/run`: a
/// tmpfs, cleared at boot, when no process of before can still run).
pub const REMOTE_DIR: &str = "/run/swh-deploy";
/// The lock file taken with `flock` on each host.
pub const REMOTE_LOCK: &str = "/run/swh-deploy/lock";
/// The fence file: identities of dead swh-deploy processes, one a line.
pub const REMOTE_FENCE: &str = "/run/swh-deploy/fenced";
/// How long a guarded command waits for the host's lock, in seconds.
pub const LOCK_WAIT: u64 = 120;
/// Exit status of a guarded command that did not run: its process was
/// fenced, or the lock could not be taken.
pub const EXIT_FENCED: i32 = 125;
/// Debian's puppet agent lock file (`puppet config print
/// agent_disabled_lockfile` on Debian 12: the state is under
/// `/var/cache/puppet`, not `/var/lib/puppet`).
pub const PUPPET_DISABLED_LOCK: &str = "/var/cache/puppet/state/agent_disabled.lock";

/// Where a guarded command with a start mark records that it began (kept
/// across reboots: `resume` asks it whether a migration started).
pub const REMOTE_STARTED: &str = "/var/lib/swh-deploy/started";

/// The wrapper run by `sh -c` on the host. `$1`: lock wait in seconds;
/// `$2`: `hold` or `release`; `$3`: the sender's identity (`-`: none);
/// `$4`: a start mark (`-`: none), appended with the identity to
/// [`REMOTE_STARTED`] just before the command starts; then identities to
/// fence, up to `--`; then the command's argv.
const SCRIPT: &str = r#"d=/run/swh-deploy
mkdir -p -m 0700 "$d" || exit 125
exec 9>>"$d/lock" || exit 125
if ! flock -w "$1" 9; then
  echo "swh-deploy: $d/lock on $(hostname) still held after $1 s (another swh-deploy run?): command not run" >&2
  exit 125
fi
hold=$2 own=$3 mark=$4
shift 4
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
  printf '%s\n' "$1" >> "$d/fenced" || exit 125
  shift
done
shift
if [ "$own" != - ] && [ -e "$d/fenced" ] && grep -qxF -e "$own" "$d/fenced"; then
  echo "swh-deploy: the process that sent this command ($own) was fenced off $(hostname) by swh-deploy recover: command not run" >&2
  exit 125
fi
if [ "$mark" != - ]; then
  mkdir -p -m 0700 /var/lib/swh-deploy && printf '%s %s\n' "$own" "$mark" >> /var/lib/swh-deploy/started || exit 125
fi
if [ "$hold" != hold ]; then
  flock -u 9
  exec 9>&-
fi
exec "$@""#;

/// How long a guarded command keeps the host's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Until the command exits (commands that a compensation undoes, and
    /// the compensations).
    Whole,
    /// Only for the fence check (long commands).
    CheckOnly,
}

/// The shell line that runs `command` on a host under the lock, after
/// fencing `fence`, unless `own` (the sending process's identity) is fenced;
/// with `mark`, the host records `OWN MARK` in [`REMOTE_STARTED`] as the
/// command starts.
pub fn guarded(
    command: &RemoteCommand,
    own: Option<&str>,
    fence: &[String],
    hold: Hold,
    mark: Option<&str>,
) -> String {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "swh-deploy-guard".to_owned(),
        LOCK_WAIT.to_string(),
        match hold {
            Hold::Whole => "hold",
            Hold::CheckOnly => "release",
        }
        .to_owned(),
        own.unwrap_or("-").to_owned(),
        mark.unwrap_or("-").to_owned(),
    ];
    argv.extend(fence.iter().cloned());
    argv.push("--".to_owned());
    argv.extend(command.argv());
    quote_words(&argv)
}

/// The start mark of step `step` of run `run` (see [`guarded`]).
pub fn start_mark(run: i64, step: usize) -> String {
    format!("run-{run}-step-{step}")
}

/// The command that prints `yes` when the host recorded that the process
/// `token` started the command marked `mark`, else `no`.
pub fn started_query(token: &str, mark: &str) -> String {
    quote_words(&[
        "sh".to_owned(),
        "-c".to_owned(),
        "if grep -qxF -e \"$1 $2\" \"$3\" 2>/dev/null; then echo yes; else echo no; fi".to_owned(),
        "swh-deploy-started".to_owned(),
        token.to_owned(),
        mark.to_owned(),
        REMOTE_STARTED.to_owned(),
    ])
}

/// The check that compensation `action` took effect on a host (exit 0 when
/// it did): cron active, puppet's lock file absent.
pub fn verify_line(action: &str) -> Option<String> {
    let words = |v: &[&str]| quote_words(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    match action {
        "start-cron" => Some(words(&["systemctl", "is-active", "cron.service"])),
        "enable-puppet" => Some(words(&[
            "sh",
            "-c",
            "if test -e \"$1\"; then echo \"puppet is still disabled: $1 exists\"; cat \"$1\"; exit 1; fi",
            "swh-deploy-verify",
            PUPPET_DISABLED_LOCK,
        ])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs the guard locally with the lock directory moved to a temporary
    /// one (the script's only absolute path is REMOTE_DIR).
    fn run_local(line: &str, dir: &std::path::Path) -> (i32, String, String) {
        let line = line
            .replace(REMOTE_DIR, &dir.display().to_string())
            .replace(
                "/var/lib/swh-deploy",
                &dir.join("lib").display().to_string(),
            );
        let out = Command::new("sh").args(["-c", &line]).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn a_fenced_process_runs_nothing_and_others_run_as_typed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("guard");
        let hostile = RemoteCommand::PuppetDisable {
            message: "it's $(touch /tmp/pwned) `id` -- \"x\"".into(),
        };
        let echo = |c: &RemoteCommand| {
            // printf each argv word: what the command would receive.
            let mut argv = vec!["printf".to_string(), "<%s>".into()];
            argv.extend(c.argv());
            RemoteCommand::Shell {
                script: quote_words(&argv),
            }
        };
        let (rc, out, err) = run_local(
            &guarded(
                &echo(&hostile),
                Some("admin:b:42:7"),
                &[],
                Hold::Whole,
                None,
            ),
            &dir,
        );
        assert_eq!(rc, 0, "{err}");
        let expected: String = hostile.argv().iter().map(|w| format!("<{w}>")).collect();
        assert_eq!(out, expected);
        // Fence process admin:b:42:7 (as recover does), then it is refused,
        // and another process is not.
        let (rc, _, err) = run_local(
            &guarded(
                &RemoteCommand::Shell {
                    script: "true".into(),
                },
                None,
                &["admin:b:42:7".into()],
                Hold::Whole,
                None,
            ),
            &dir,
        );
        assert_eq!(rc, 0, "{err}");
        let marker = tmp.path().join("ran");
        let touch = RemoteCommand::Shell {
            script: format!("touch {}", marker.display()),
        };
        let (rc, _, err) = run_local(
            &guarded(&touch, Some("admin:b:42:7"), &[], Hold::CheckOnly, None),
            &dir,
        );
        assert_eq!(rc, EXIT_FENCED);
        assert!(err.contains("was fenced off"), "{err}");
        assert!(!marker.exists());
        // A prefix of a fenced identity is another process.
        let (rc, _, err) = run_local(
            &guarded(&touch, Some("admin:b:42:"), &[], Hold::CheckOnly, None),
            &dir,
        );
        assert_eq!(rc, 0, "{err}");
        assert!(marker.exists());
    }

    #[test]
    fn a_held_lock_makes_the_next_command_wait_for_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("guard");
        let log = tmp.path().join("log");
        let slow = RemoteCommand::Shell {
            script: format!(
                "echo start >> {l}; sleep 1; echo end >> {l}",
                l = log.display()
            ),
        };
        let line = guarded(&slow, Some("p1"), &[], Hold::Whole, None)
            .replace(REMOTE_DIR, &dir.display().to_string());
        let mut first = Command::new("sh").args(["-c", &line]).spawn().unwrap();
        // Wait until the first one holds the lock and started.
        let t = std::time::Instant::now();
        while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
            assert!(t.elapsed().as_secs() < 10);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Fencing p1 waits for its command to end.
        let mark = RemoteCommand::Shell {
            script: format!("echo fenced >> {}", log.display()),
        };
        let (rc, _, err) = run_local(
            &guarded(&mark, None, &["p1".into()], Hold::Whole, None),
            &dir,
        );
        assert_eq!(rc, 0, "{err}");
        first.wait().unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "start\nend\nfenced\n"
        );
    }

    #[test]
    fn a_marked_command_records_its_start_and_the_query_finds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("guard");
        let mark = start_mark(5, 2);
        assert_eq!(mark, "run-5-step-2");
        let (_, out, _) = run_local(&started_query("p9", &mark), &dir);
        assert_eq!(out.trim(), "no");
        let (rc, _, err) = run_local(
            &guarded(
                &RemoteCommand::Shell {
                    script: "exit 3".into(),
                },
                Some("p9"),
                &[],
                Hold::CheckOnly,
                Some(&mark),
            ),
            &dir,
        );
        assert_eq!(rc, 3, "{err}");
        let (_, out, _) = run_local(&started_query("p9", &mark), &dir);
        assert_eq!(out.trim(), "yes");
        // Another process, another step: not started.
        let (_, out, _) = run_local(&started_query("p1", &mark), &dir);
        assert_eq!(out.trim(), "no");
        let (_, out, _) = run_local(&started_query("p9", &start_mark(5, 3)), &dir);
        assert_eq!(out.trim(), "no");
        // A fenced process leaves no mark: it did not start.
        let (rc, _, _) = run_local(
            &guarded(
                &RemoteCommand::Shell {
                    script: "true".into(),
                },
                Some("p8"),
                &["p8".into()],
                Hold::CheckOnly,
                Some(&mark),
            ),
            &dir,
        );
        assert_eq!(rc, EXIT_FENCED);
        let (_, out, _) = run_local(&started_query("p8", &mark), &dir);
        assert_eq!(out.trim(), "no");
    }
}
