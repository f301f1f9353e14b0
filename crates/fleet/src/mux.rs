//! Sessions opened on a live ssh master's control socket with OpenSSH's
//! multiplexing protocol (the `openssh-mux-client` crate), instead of an
//! `ssh` client process per host and command.
//!
//! The session is what `ssh -oControlPath=SOCKET -- HOST COMMAND` would
//! ask of the same master: the command string unchanged, no terminal, no
//! agent or X11 forwarding, no escape character; standard input is
//! `/dev/null` and the master writes the command's output straight into
//! this process's pipes (passed over the socket), read like a child's.
//! The master was made by `ssh` with the site's options (host keys
//! checked, authenticated): the session only rides on it.
//!
//! Nothing is run twice: a master that is gone, does not answer its
//! greeting, or refuses the session ([`Outcome::NotOpened`]) lets the
//! engine start `ssh` as without the mux; once the request is sent, a
//! connection lost before the exit status is the host's result (exit 255,
//! classified like ssh's own loss of its master).

use crate::engine::{pipe, pump, until, End, Msg, Stream};
use crate::transport::{Launch, MuxSession};
use openssh_mux_client::{Connection, Error, NonZeroByteSlice, Session, SessionStatus};
use std::borrow::Cow;
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What became of a session asked of a master.
pub(crate) enum Outcome {
    /// The session ran (or was timed out, cancelled, lost): its end.
    Ended(End),
    /// The master did not take it and nothing was asked of it: start `ssh`.
    NotOpened,
    /// The master accepted the connection but did not answer its greeting
    /// in time (stopped, or hung): nothing was asked of it, and an `ssh`
    /// through it would hang as well: start `ssh` on a connection of its own
    /// ([`MuxSession::direct`]).
    Unanswered,
}

/// How long a master has to answer the greeting before the command goes
/// over a fresh connection instead. A live master answers at once (it is a
/// local process reading its socket); the cost of a false alarm is one
/// handshake.
pub(crate) const GREETING_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `session` on its master for engine unit `unit`, sending its output
/// on `tx` like a child's, until it ends, `deadline` passes or `cancel`
/// fires (then the connection to the master is closed, which closes the
/// session's channel, as killing an `ssh` client does).
pub(crate) async fn run(
    unit: usize,
    session: &MuxSession,
    launch: &Launch,
    merge: bool,
    deadline: Option<Instant>,
    cancel: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Msg>,
) -> Outcome {
    let Some(cmd) = NonZeroByteSlice::new(session.command.as_bytes()) else {
        return Outcome::NotOpened;
    };
    let Some(term) = NonZeroByteSlice::new(b"") else {
        return Outcome::NotOpened;
    };
    let request = Session::builder()
        .term(Cow::Borrowed(term))
        .cmd(Cow::Borrowed(cmd))
        .build();
    // The descriptors the master writes into (blocking, as it expects) and
    // the ends read here.
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return Outcome::NotOpened;
    };
    let Ok((out_r, out_w)) = pipe() else {
        return Outcome::NotOpened;
    };
    let (err_r, err_w) = if merge {
        (None, None)
    } else {
        let Ok((r, w)) = pipe() else {
            return Outcome::NotOpened;
        };
        (Some(r), Some(w))
    };
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd;
    let Ok(out_r) = receiver(out_r) else {
        return Outcome::NotOpened;
    };
    let err_r = match err_r.map(receiver).transpose() {
        Ok(r) => r,
        Err(_) => return Outcome::NotOpened,
    };
    let fds = [
        null.as_raw_fd(),
        out_w.as_raw_fd(),
        err_w.as_ref().unwrap_or(&out_w).as_raw_fd(),
    ];

    let greeting = tokio::time::timeout(GREETING_TIMEOUT, Connection::connect(&session.socket));
    let conn = tokio::select! {
        c = greeting => match c {
            Ok(Ok(c)) => c,
            Ok(Err(_)) => return Outcome::NotOpened,
            Err(_) => return Outcome::Unanswered,
        },
        _ = until(deadline) => return Outcome::Ended(End::TimedOut),
        _ = cancel.wait_for(|c| *c) => return Outcome::Ended(End::Cancelled),
    };
    let opened = tokio::select! {
        s = conn.open_new_session(&request, &fds) => s,
        _ = until(deadline) => return Outcome::Ended(End::TimedOut),
        _ = cancel.wait_for(|c| *c) => return Outcome::Ended(End::Cancelled),
    };
    // The master holds its own copies now: the pipes end when it closes them.
    drop((null, out_w, err_w));
    let established = match opened {
        Ok(s) => s,
        // The master said no before running anything.
        Err(Error::PermissionDenied(_) | Error::RequestFailure(_)) => return Outcome::NotOpened,
        Err(e) => return Outcome::Ended(lost(launch, "while the session was opened", &e)),
    };
    let status = async {
        let mut s = established;
        loop {
            match s.wait().await {
                // No terminal was asked for; the exit status comes next.
                Ok(SessionStatus::TtyAllocFail(again)) => s = again,
                Ok(SessionStatus::Exited { exit_value }) => break Ok(exit_value),
                Err((e, _)) => break Err(e),
            }
        }
    };
    let out_stream = Stream::Stdout;
    let io = async {
        let a = pump(out_r, unit, out_stream, tx);
        let b = async {
            if let Some(r) = err_r {
                pump(r, unit, Stream::Stderr, tx).await;
            }
        };
        let (_, _, status) = tokio::join!(a, b, status);
        status
    };
    let end = tokio::select! {
        s = io => match s {
            Ok(Some(code)) => End::Exited(i32::try_from(code).unwrap_or(255)),
            // The master closed the session without an exit status (the
            // command was killed by a signal, or the master is gone): ssh
            // exits 255 then, and so does this; the master's log and
            // socket tell which.
            Ok(None) => End::Exited(255),
            Err(e) => lost(launch, "during the session", &e),
        },
        _ = until(deadline) => End::TimedOut,
        _ = cancel.wait_for(|c| *c) => End::Cancelled,
    };
    Outcome::Ended(end)
}

/// The end of a session whose master connection failed: exit 255 with a
/// message of the transport's own in the host's diagnostics, which makes
/// it unreachable (the command may or may not have run, as when an `ssh`
/// client loses its connection).
fn lost(launch: &Launch, when: &str, e: &Error) -> End {
    if let Some(log) = &launch.diagnostics {
        let msg = format!("ssh: the shared connection to the host was lost {when}: {e}\n");
        let _ = std::fs::write(log, msg);
    }
    End::Exited(255)
}
