//! Ctrl-C and SIGTERM as a [`CancelToken`]: the one signal guard of
//! swh-deploy.
//!
//! [`CancelToken::cancel_on_signals_with`] cancels the token from a
//! background thread on SIGINT or SIGTERM, for as long as the returned
//! [`SignalGuard`] lives. What a second signal does is the caller's choice
//! ([`SecondSignal`]): `run` (clush) ends the process at once, as clush
//! does; an upgrade keeps cancelling so that its compensations still run.
//! An optional notice is printed on stderr at the first signal.
//!
//! Dropping the guard puts back the dispositions SIGINT and SIGTERM had
//! before (the default action, for a command that goes on afterwards, such
//! as `ship` after its upgrade): signal-hook never uninstalls its own
//! handler, which would otherwise stay, doing nothing, and make Ctrl-C a
//! no-op. The next guard installs signal-hook's handler again.

use crate::engine::CancelToken;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::Mutex;

/// What a signal received once the token is already cancelled does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondSignal {
    /// End the process at once with status 128 + the signal (130 for
    /// SIGINT, 143 for SIGTERM), as clush does.
    Exit,
    /// Nothing more: the cancelled work finishes what must be finished
    /// (an upgrade's compensations).
    Ignore,
}

/// How [`CancelToken::cancel_on_signals_with`] reacts to SIGINT/SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalPolicy {
    /// What a second signal does.
    pub second: SecondSignal,
    /// Printed on stderr (one line) at the first signal; `{signal}` is
    /// replaced by `SIGINT` or `SIGTERM`.
    pub notice: Option<String>,
}

impl Default for SignalPolicy {
    /// A second signal ends the process; no notice.
    fn default() -> Self {
        SignalPolicy {
            second: SecondSignal::Exit,
            notice: None,
        }
    }
}

impl CancelToken {
    /// Cancels this token on SIGINT or SIGTERM, from a background thread,
    /// until the returned guard is dropped. A second signal ends the process
    /// at once with status 130 (for SIGINT) or 143 (SIGTERM).
    pub fn cancel_on_signals(&self) -> std::io::Result<SignalGuard> {
        self.cancel_on_signals_with(SignalPolicy::default())
    }

    /// Cancels this token on SIGINT or SIGTERM as `policy` says, until the
    /// returned guard is dropped (which restores the signals' previous
    /// dispositions).
    pub fn cancel_on_signals_with(&self, policy: SignalPolicy) -> std::io::Result<SignalGuard> {
        let sigs = [SIGINT, SIGTERM];
        let before = sigs.map(disposition);
        let mut signals = signal_hook::iterator::Signals::new(sigs)?;
        {
            let mut hook = HOOK_HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
            match &*hook {
                // signal-hook installed its handler once, at its first
                // registration; a previous guard replaced it when dropped.
                Some(installed) => {
                    for (sig, action) in sigs.iter().zip(installed) {
                        set_disposition(*sig, action);
                    }
                }
                None => *hook = Some(sigs.map(disposition)),
            }
        }
        let handle = signals.handle();
        let token = self.clone();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                if token.is_cancelled() {
                    if policy.second == SecondSignal::Exit {
                        std::process::exit(128 + sig);
                    }
                    continue;
                }
                if let Some(notice) = &policy.notice {
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    eprintln!("{}", notice.replace("{signal}", name));
                }
                token.cancel();
            }
        });
        Ok(SignalGuard {
            handle,
            thread: Some(thread),
            before: sigs.into_iter().zip(before).collect(),
        })
    }
}

/// signal-hook's handlers for SIGINT and SIGTERM, as first installed.
static HOOK_HANDLERS: Mutex<Option<[libc::sigaction; 2]>> = Mutex::new(None);

/// The current disposition of `sig`.
fn disposition(sig: libc::c_int) -> libc::sigaction {
    // SAFETY: a query (null new action) into a zeroed, valid structure.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old);
        old
    }
}

/// Sets the disposition of `sig` to `action` (one read by [`disposition`]).
fn set_disposition(sig: libc::c_int, action: &libc::sigaction) {
    // SAFETY: `action` was filled by sigaction for a valid signal.
    unsafe {
        libc::sigaction(sig, action, std::ptr::null_mut());
    }
}

/// Keeps the handler of [`CancelToken::cancel_on_signals_with`] installed;
/// dropping it puts back the dispositions found before.
pub struct SignalGuard {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
    before: Vec<(libc::c_int, libc::sigaction)>,
}

impl std::fmt::Debug for SignalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalGuard").finish_non_exhaustive()
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for (sig, action) in &self.before {
            set_disposition(*sig, action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(token: &CancelToken) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if token.is_cancelled() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn is_default(sig: libc::c_int) -> bool {
        disposition(sig).sa_sigaction == libc::SIG_DFL
    }

    // One test: the dispositions are process-wide (nextest runs each test
    // in its own process; this keeps the steps in order under cargo test).
    #[test]
    fn signals_cancel_then_dispositions_come_back() {
        assert!(is_default(SIGINT) && is_default(SIGTERM));
        // Ignore: the token is cancelled, a second signal changes nothing.
        let token = CancelToken::new();
        let guard = token
            .cancel_on_signals_with(SignalPolicy {
                second: SecondSignal::Ignore,
                notice: Some("test: {signal} received".into()),
            })
            .unwrap();
        assert!(!is_default(SIGINT));
        // SAFETY: raise(3) of a signal whose handler is installed.
        unsafe { libc::raise(SIGTERM) };
        assert!(wait_for(&token));
        unsafe { libc::raise(SIGINT) };
        std::thread::sleep(Duration::from_millis(50));
        drop(guard);
        // Dropped: back to the default action (Ctrl-C ends the process).
        assert!(is_default(SIGINT) && is_default(SIGTERM));
        // A second guard installs signal-hook's handler again.
        let token = CancelToken::new();
        let guard = token.cancel_on_signals().unwrap();
        assert!(!is_default(SIGINT));
        unsafe { libc::raise(SIGINT) };
        assert!(wait_for(&token));
        drop(guard);
        assert!(is_default(SIGINT) && is_default(SIGTERM));
    }

    const CHILD: &str = "SWH_DEPLOY_FLEET_SIGNAL_CHILD";

    #[test]
    fn a_second_signal_ends_the_process_with_128_plus_it() {
        if std::env::var_os(CHILD).is_some() {
            let token = CancelToken::new();
            let _guard = token.cancel_on_signals().unwrap();
            // SAFETY: raise(3) of a signal whose handler is installed.
            unsafe { libc::raise(SIGINT) };
            assert!(wait_for(&token));
            unsafe { libc::raise(SIGINT) };
            std::thread::sleep(Duration::from_secs(10));
            std::process::exit(0);
        }
        // This test again, in a process of its own.
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "signals::tests::a_second_signal_ends_the_process_with_128_plus_it",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(130), "{status}");
    }
}
