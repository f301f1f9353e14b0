//! Transports: how the local process that runs a command "on" one host is
//! built, and how its exit is read.
//!
//! A [`Transport`] never runs anything itself: for each host it returns a
//! [`Launch`] (an argv, never a shell string built on the admin host), and
//! after the process exits it turns the raw exit code plus the transport's
//! own diagnostics into a [`Status`]. The engine ([`crate::run`]) does the
//! spawning, reading, timing and killing, so every transport gets the same
//! fan-out window, timeouts and cancellation.

use crate::result::Status;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One host's share of a run, handed to [`Transport::prepare`].
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The host name (or, for a shared job, the folded node set).
    pub host: &'a str,
    /// Position of the host in the run's target list (0-based).
    pub rank: usize,
    /// The whole target list, folded (what `%hosts` expands to).
    pub hosts: &'a str,
    /// The command as the user typed it.
    pub command: &'a str,
}

/// The local process to start for one host.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Program to execute (looked up in `PATH` when it has no slash).
    pub program: OsString,
    /// Its arguments, passed as they are (no shell on the admin host).
    pub args: Vec<OsString>,
    /// Extra environment variables for the process.
    pub env: Vec<(OsString, OsString)>,
    /// A file in which the transport itself writes its own messages (ssh's
    /// `-E`), read and removed by the engine after the process exits; its
    /// lines are reported as the host's stderr.
    pub diagnostics: Option<PathBuf>,
    /// End the process (SIGTERM) if swh-deploy dies without cleaning up
    /// (kill -9): set for ssh. It costs a `fork` instead of a
    /// `posix_spawn` (about 1 ms of system time per process), which the
    /// exec transport's cheap local commands do not pay.
    pub die_with_parent: bool,
    /// Set when the process may run over a connection shared with other
    /// processes (an ssh control master), whose own messages (e.g. "Timeout,
    /// server not responding") go elsewhere: handed back to
    /// [`Transport::classify`].
    pub shared: Option<SharedConnection>,
    /// Open the session first on this live ssh master's control socket
    /// (OpenSSH's multiplexing protocol, no process started); the process
    /// above is started instead only when the master does not take the
    /// session (gone, refusing, not speaking the protocol) before anything
    /// was asked of it.
    pub mux: Option<MuxSession>,
}

/// A session to open on an ssh master's control socket instead of starting
/// an `ssh` client (see [`Launch::mux`]).
#[derive(Debug, Clone)]
pub struct MuxSession {
    /// The master's control socket.
    pub socket: PathBuf,
    /// The remote command, exactly what `ssh ... -- HOST COMMAND` sends.
    pub command: String,
    /// The process's arguments for a connection of its own, bypassing the
    /// master (`-oControlMaster=no -oControlPath=none`): used when the
    /// master accepts but does not answer (an `ssh` through it would hang).
    pub direct: Vec<OsString>,
}

/// The connection a process shares with others (ssh's `ControlMaster`):
/// where the connection's owner writes its messages, and its socket.
#[derive(Debug, Clone)]
pub struct SharedConnection {
    /// The log the master writes in (its `-E` file, kept under this name);
    /// `None` when the process itself starts the master (its own
    /// diagnostics are the master's log).
    pub log: Option<PathBuf>,
    /// The log's size when the process was started: what the master
    /// wrote after it concerns this process.
    pub offset: u64,
    /// The control socket; nothing listens on it when the master is gone.
    pub socket: PathBuf,
}

impl Launch {
    /// The full argv (program first), for display and debugging.
    pub fn argv(&self) -> Vec<OsString> {
        let mut v = Vec::with_capacity(self.args.len() + 1);
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }
}

/// Errors a transport reports before anything is started.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The command has a `%` pattern the exec transport does not know.
    #[error("command {command:?}: {message} (use '%%' for a literal '%')")]
    BadPattern {
        /// The command as typed.
        command: String,
        /// What is wrong with it.
        message: String,
    },
    /// A host name that ssh would take for an option or that holds bytes no
    /// host name has.
    #[error("host {0:?}: not a valid host name for ssh")]
    BadHost(String),
    /// The per-run control directory could not be made.
    #[error("ssh control directory {path}: {source}")]
    ControlDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A shared control directory (or its parent) that another user could
    /// reach or replace: a symbolic link, not a directory, owned by
    /// someone else, or open to group or others. Nothing is changed in it.
    #[error(
        "ssh control directory {path}: refused: {reason}; the sockets of shared ssh connections \
         must be private to their user (remove it, or turn connection reuse off with --no-reuse)"
    )]
    UnsafeControlDir {
        /// The directory found unsafe.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// How one host's command is started and how its exit is read.
pub trait Transport: Send + Sync {
    /// Short name for messages ("ssh", "exec").
    fn name(&self) -> &'static str;

    /// Builds the process for one host.
    fn prepare(&self, job: &Job<'_>) -> Result<Launch, TransportError>;

    /// Turns the process's exit code (`128 + signal` when killed by a
    /// signal) and the content of [`Launch::diagnostics`] into a status.
    /// `shared` is [`Launch::shared`]; the transport may add to
    /// `diagnostics` what the shared connection reported (reported as the
    /// host's stderr).
    fn classify(
        &self,
        exit_code: i32,
        diagnostics: &mut Vec<u8>,
        shared: Option<&SharedConnection>,
    ) -> Status {
        let _ = (diagnostics, shared);
        Status::Exited(exit_code)
    }

    /// True when `command` must run once for all hosts rather than once per
    /// host (the exec transport's `%hosts`).
    fn shared_job(&self, command: &str) -> bool {
        let _ = command;
        false
    }

    /// Releases what the transport keeps between runs (ssh master
    /// connections of a private control directory). Called on drop too.
    fn close(&self) {}
}

// ---------------------------------------------------------------------------
// exec

/// Runs the command locally through `/bin/sh -c`, once per host, after
/// substituting `%h`/`%host`, `%hosts`, `%n`/`%rank` and `%%` like
/// `clush -R exec`. Useful for tests, benchmarks and for commands such as
/// `ssh %h ...` or `rsync ... %h:...` that address the host themselves.
///
/// A *simple* command (see [`direct_argv`]: plain words, no shell syntax,
/// a program found in `PATH` that is not a shell built-in) is executed
/// directly, without the shell in between: the same result, one process
/// less per host.
#[derive(Debug, Clone)]
pub struct ExecTransport {
    shell: PathBuf,
    /// `PATH` look-ups of program names, shared by the hosts of a run.
    resolved: std::sync::Arc<Mutex<std::collections::HashMap<String, Option<PathBuf>>>>,
}

impl Default for ExecTransport {
    fn default() -> Self {
        ExecTransport {
            shell: PathBuf::from("/bin/sh"),
            resolved: Default::default(),
        }
    }
}

impl ExecTransport {
    /// An exec transport using `/bin/sh`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `program` is found in `PATH` (cached), or `None`.
    fn resolve(&self, program: &str) -> Option<PathBuf> {
        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(program.to_string())
            .or_insert_with(|| find_in_path(program))
            .clone()
    }
}

impl Transport for ExecTransport {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn prepare(&self, job: &Job<'_>) -> Result<Launch, TransportError> {
        let command = substitute(job.command, job.host, job.hosts, job.rank)?;
        if let Some(mut argv) = direct_argv(&command) {
            if let Some(program) = self.resolve(&argv[0]) {
                argv.remove(0);
                return Ok(Launch {
                    program: program.into_os_string(),
                    args: argv.into_iter().map(OsString::from).collect(),
                    env: Vec::new(),
                    diagnostics: None,
                    die_with_parent: false,
                    shared: None,
                    mux: None,
                });
            }
        }
        Ok(Launch {
            program: self.shell.clone().into_os_string(),
            args: vec!["-c".into(), command.into()],
            env: Vec::new(),
            diagnostics: None,
            die_with_parent: false,
            shared: None,
            mux: None,
        })
    }

    fn shared_job(&self, command: &str) -> bool {
        command.contains("%hosts") || command.contains("%{hosts}")
    }
}

/// Words the shell handles itself (reserved words and built-ins of dash and
/// bash): a command starting with one of them always goes through `sh -c`,
/// since a program of the same name (`/bin/echo`, `/bin/kill`) may behave
/// differently.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "[", "alias", "bg", "break", "case", "cd", "chdir", "command", "continue", "do",
    "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg",
    "fi", "for", "getopts", "hash", "if", "in", "jobs", "kill", "local", "printf", "pwd", "read",
    "readonly", "return", "set", "shift", "test", "then", "time", "times", "trap", "true", "type",
    "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
];

/// The argv of `command` when the shell would do nothing but split it on
/// blanks and run its first word: only ASCII letters, digits, blanks and
/// `-_./=:,+@%`, no `=` in the first word (an assignment), and a first word
/// that is not a shell word ([`SHELL_WORDS`]). `None` means "let `sh -c`
/// handle it" (quotes, `$`, globs, `;`, `|`, redirections, `~`, `#`...).
pub fn direct_argv(command: &str) -> Option<Vec<String>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !command.chars().all(|c| plain(c) || c == ' ' || c == '\t') {
        return None;
    }
    let argv: Vec<String> = command
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let first = argv.first()?;
    if first.contains('=') || SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(argv)
}

/// The executable file `program` names: itself when it has a slash,
/// otherwise the first match in `PATH` (as `execvp` and `sh` look it up).
fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// Expands `%h`, `%host`, `%hosts`, `%n`, `%rank` (also as `%{name}`) and
/// `%%` in `pattern`, with the rules of Python's `string.Template` that
/// `clush -R exec` uses: any other `%name` or a lone `%` is an error.
pub fn substitute(
    pattern: &str,
    host: &str,
    hosts: &str,
    rank: usize,
) -> Result<String, TransportError> {
    let bad = |message: String| TransportError::BadPattern {
        command: pattern.to_string(),
        message,
    };
    let mut out = String::with_capacity(pattern.len() + host.len());
    let mut rest = pattern;
    while let Some(found) = rest.find('%') {
        let pos = pattern.len() - rest.len() + found;
        out.push_str(&rest[..found]);
        let after = &rest[found + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
            continue;
        }
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| bad(format!("unterminated '%{{' at byte {pos}")))?;
            let name = &braced[..end];
            if !is_identifier(name) {
                return Err(bad(format!(
                    "invalid placeholder '%{{{name}}}' at byte {pos}"
                )));
            }
            (name, &braced[end + 1..])
        } else {
            let len = identifier_len(after);
            if len == 0 {
                return Err(bad(format!("invalid placeholder at byte {pos}")));
            }
            (&after[..len], &after[len..])
        };
        match name {
            "h" | "host" => out.push_str(host),
            "hosts" => out.push_str(hosts),
            "n" | "rank" => out.push_str(&rank.to_string()),
            other => return Err(bad(format!("unknown placeholder '%{other}'"))),
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

fn identifier_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return 0;
    }
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && identifier_len(s) == s.len()
}

// ---------------------------------------------------------------------------
// ssh

/// What ssh does with a host key it has never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// `StrictHostKeyChecking=yes`: unknown keys are refused (default).
    #[default]
    Strict,
    /// `StrictHostKeyChecking=accept-new`: trust on first use, changed keys
    /// are still refused.
    AcceptNew,
}

/// Reuse of one ssh connection per host (OpenSSH `ControlMaster`).
#[derive(Debug, Clone)]
pub struct ConnectionReuse {
    /// Directory holding the control sockets. `None`: a private directory
    /// made for this transport and removed, with its masters, by
    /// [`Transport::close`]. `Some`: a directory shared between the runs of
    /// one user (see [`user_control_dir`]); it and its parent are made 0700
    /// when missing and refused ([`TransportError::UnsafeControlDir`]) when
    /// they are symbolic links, not directories, owned by another user or
    /// open to group or others. Masters are left there for `persist`;
    /// sockets whose master is gone are removed.
    pub dir: Option<PathBuf>,
    /// `ControlPersist`: how long an idle master stays up.
    pub persist: Duration,
}

/// How long an idle shared master stays up by default (`ControlPersist`,
/// Ansible's default too): successive commands within it reuse it.
pub const DEFAULT_PERSIST: Duration = Duration::from_secs(60);

/// The directory of one user's shared ssh master connections:
/// `RUNTIME/swh-deploy/ssh` where RUNTIME is `xdg_runtime_dir`
/// (`$XDG_RUNTIME_DIR`) when it is a directory, else `/run/user/UID` when
/// it is a directory of this user, else `/tmp/swh-deploy-UID/ssh`. The
/// directory is checked (and made) by [`SshTransport::new`].
pub fn user_control_dir(xdg_runtime_dir: Option<&Path>) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if let Some(d) = xdg_runtime_dir.filter(|d| d.is_absolute() && d.is_dir()) {
        return d.join("swh-deploy").join("ssh");
    }
    let run = PathBuf::from(format!("/run/user/{uid}"));
    if std::fs::symlink_metadata(&run).is_ok_and(|m| m.is_dir() && m.uid() == uid) {
        return run.join("swh-deploy").join("ssh");
    }
    PathBuf::from(format!("/tmp/swh-deploy-{uid}")).join("ssh")
}

/// Makes `dir` and its parent (mode 0700) when missing, then checks that
/// both are real directories of this user that nobody else can enter.
fn secure_control_dir(dir: &Path) -> Result<(), TransportError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    for d in parent.into_iter().chain([dir]) {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(TransportError::ControlDir {
                    path: d.to_path_buf(),
                    source,
                })
            }
        }
        let meta = std::fs::symlink_metadata(d).map_err(|source| TransportError::ControlDir {
            path: d.to_path_buf(),
            source,
        })?;
        let unsafe_dir = |reason: String| TransportError::UnsafeControlDir {
            path: d.to_path_buf(),
            reason,
        };
        if meta.file_type().is_symlink() {
            return Err(unsafe_dir("it is a symbolic link".into()));
        }
        if !meta.is_dir() {
            return Err(unsafe_dir("it is not a directory".into()));
        }
        if meta.uid() != uid {
            return Err(unsafe_dir(format!(
                "it is owned by uid {}, not by you (uid {uid})",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(unsafe_dir(format!(
                "its mode is {:04o}: group or others can reach it (must be 0700)",
                meta.mode() & 0o7777
            )));
        }
    }
    Ok(())
}

/// How old a master's log must be, without its socket, to be removed as
/// an orphan (a new master's log exists a moment before its socket).
pub const ORPHAN_LOG_AGE: Duration = Duration::from_secs(300);

/// Prefix of the diagnostics logs of clients that use a shared control
/// directory (`client.PID.N.log`, in that directory so that a client that
/// becomes a master can keep its log there as `SOCKET.log`).
const CLIENT_LOG_PREFIX: &str = "client.";

/// Removes from the shared control directory `dir` what no live process
/// uses any more: sockets nobody listens on (their master is gone) with
/// their `SOCKET.log`, a `SOCKET.log` without its socket (the master ended
/// by itself) older than [`ORPHAN_LOG_AGE`], and the client logs of dead
/// processes. Returns how many files were removed.
pub fn remove_stale_sockets(dir: &Path) -> usize {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    let mut remove = |p: &Path| {
        if std::fs::remove_file(p).is_ok() {
            removed += 1;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_socket() {
            let refused = matches!(
                std::os::unix::net::UnixStream::connect(&path),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            );
            if refused {
                remove(&path);
                remove(&path.with_extension("log"));
            }
        } else if let Some(rest) = name.strip_prefix(CLIENT_LOG_PREFIX) {
            let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| process_start(p).is_none()) {
                remove(&path);
            }
        } else if name.ends_with(".log") && !path.with_extension("").exists() {
            // A master log is linked before its master binds the socket:
            // only an old one is an orphan.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ORPHAN_LOG_AGE);
            if old {
                remove(&path);
            }
        }
    }
    removed
}

/// Settings of the OpenSSH transport.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The ssh program (default `ssh`, from `PATH`).
    pub program: PathBuf,
    /// Words put before the ssh program, e.g. `nsenter --net=... --` to run
    /// ssh in another network namespace (the test bed's loopback fleet).
    pub wrapper: Vec<OsString>,
    /// `-F FILE`: an ssh_config to use instead of `~/.ssh/config`.
    pub config_file: Option<PathBuf>,
    /// `-l USER`.
    pub user: Option<String>,
    /// Extra ssh arguments, e.g. `["-o", "Port=2222"]`. They come after
    /// swh-deploy's security options ([`security_options`]: host-key
    /// checking, batch mode, forwarding, log level) and connection sharing,
    /// which they cannot override (ssh keeps the first value it reads),
    /// and before the defaults they may override (connect timeout,
    /// keepalives, user).
    pub extra_args: Vec<OsString>,
    /// `ConnectTimeout` (rounded up to whole seconds). Default 10 s.
    pub connect_timeout: Option<Duration>,
    /// Host-key policy (default strict).
    pub host_keys: HostKeyPolicy,
    /// `ServerAliveInterval` (seconds) and `ServerAliveCountMax`: a host that
    /// vanishes mid-command is declared lost after about their product.
    /// Default (10, 3).
    pub keepalive: Option<(u32, u32)>,
    /// Connection reuse; `None` opens one fresh connection per command.
    pub reuse: Option<ConnectionReuse>,
    /// With [`SshOptions::reuse`]: open a command's session directly on its
    /// host's live master (OpenSSH's multiplexing protocol on the control
    /// socket) instead of starting an `ssh` client for it, which costs a
    /// process start per host and command. Default true; false always
    /// starts `ssh` (the master still serves it). See [`Launch::mux`].
    pub mux: bool,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            program: PathBuf::from("ssh"),
            wrapper: Vec::new(),
            config_file: None,
            user: None,
            extra_args: Vec::new(),
            connect_timeout: Some(Duration::from_secs(10)),
            host_keys: HostKeyPolicy::Strict,
            keepalive: Some((10, 3)),
            reuse: None,
            mux: true,
        }
    }
}

/// Runs commands through the system `ssh` binary, so `~/.ssh/config`, the
/// agent, ProxyJump, certificates and known_hosts behave as for clush.
///
/// Each command is `ssh [-F CONFIG] [security] [sharing] [extra]
/// [defaults] [-oControlPath=SOCKET] -E LOG -- HOST COMMAND` with the
/// command as one argument: ssh hands it unchanged to the remote user's
/// shell, nothing is interpreted on the admin host. ssh's own messages go to
/// `LOG`, which is how an exit code 255 is told apart: with a message from
/// ssh it is [`Status::Unreachable`], without one it is the command's own
/// exit code. Over a shared connection, the master's messages are kept in
/// `SOCKET.log` and count as well, and a master gone silently (killed) is
/// reported as such (see [`Transport::classify`]).
#[derive(Debug)]
pub struct SshTransport {
    options: SshOptions,
    /// Private directory for diagnostics logs (and control sockets when the
    /// reuse directory is private).
    workdir: tempfile::TempDir,
    control_dir: Option<PathBuf>,
    private_control: bool,
    counter: AtomicU64,
    masters: Mutex<BTreeSet<String>>,
}

impl SshTransport {
    /// Makes a transport; creates its private working directory (mode 0700)
    /// and, if asked, the shared control directory.
    ///
    /// The working directory is `$TMPDIR/swh-deploy-ssh.PID-START.XXXXXX`
    /// (the owner's pid and process start time): the directories of
    /// transports whose process is dead (killed before it could clean up)
    /// are removed first, their master connections ended.
    pub fn new(options: SshOptions) -> Result<Self, TransportError> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir();
        remove_stale_workdirs(&tmp, &options.program);
        let me = std::process::id();
        let workdir = tempfile::Builder::new()
            .prefix(&format!(
                "{WORKDIR_PREFIX}{me}-{}.",
                process_start(me).unwrap_or(0)
            ))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|source| TransportError::ControlDir {
                path: tmp.clone(),
                source,
            })?;
        let (control_dir, private_control) = match &options.reuse {
            None => (None, false),
            Some(ConnectionReuse { dir: None, .. }) => (Some(workdir.path().to_path_buf()), true),
            Some(ConnectionReuse { dir: Some(d), .. }) => {
                secure_control_dir(d)?;
                remove_stale_sockets(d);
                (Some(d.clone()), false)
            }
        };
        Ok(SshTransport {
            options,
            workdir,
            control_dir,
            private_control,
            counter: AtomicU64::new(0),
            masters: Mutex::new(BTreeSet::new()),
        })
    }

    /// The options this transport was made with.
    pub fn options(&self) -> &SshOptions {
        &self.options
    }

    /// The ssh arguments shared by every invocation (before
    /// `-oControlPath`, `-E`, `--`, host and command): swh-deploy's own
    /// security options first (ssh keeps the first value it reads, so
    /// neither [`SshOptions::extra_args`] nor an ssh_config can weaken
    /// them), then the extra arguments, then the defaults they may
    /// override.
    fn common_args(&self) -> Vec<OsString> {
        let o = &self.options;
        let mut a: Vec<OsString> = Vec::with_capacity(24);
        if let Some(f) = &o.config_file {
            a.push("-F".into());
            a.push(f.clone().into_os_string());
        }
        for opt in security_options(o.host_keys) {
            a.push(opt.into());
        }
        if let (Some(_), Some(reuse)) = (&self.control_dir, &o.reuse) {
            a.push("-oControlMaster=auto".into());
            a.push(format!("-oControlPersist={}", reuse.persist.as_secs().max(1)).into());
        }
        a.extend(o.extra_args.iter().cloned());
        if let Some(t) = o.connect_timeout {
            let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
            a.push(format!("-oConnectTimeout={}", secs.max(1)).into());
        }
        if let Some((interval, count)) = o.keepalive {
            a.push(format!("-oServerAliveInterval={interval}").into());
            a.push(format!("-oServerAliveCountMax={count}").into());
        }
        if let Some(u) = &o.user {
            a.push("-l".into());
            a.push(u.into());
        }
        a
    }

    /// The control socket of `host`'s master connection (a literal path,
    /// so that swh-deploy can tell whether the master is up): a hash of
    /// what selects the connection (host, user, ssh_config, extra
    /// arguments), in the control directory.
    fn control_socket(&self, host: &str) -> Option<PathBuf> {
        let dir = self.control_dir.as_ref()?;
        let o = &self.options;
        let mut key = Fnv64::default();
        key.write(host.as_bytes());
        key.write(o.user.as_deref().unwrap_or("").as_bytes());
        if let Some(f) = &o.config_file {
            key.write(f.as_os_str().as_encoded_bytes());
        }
        for x in &o.extra_args {
            key.write(x.as_encoded_bytes());
        }
        Some(dir.join(format!("{:016x}", key.0)))
    }

    fn base_launch(&self, args: Vec<OsString>) -> Launch {
        let o = &self.options;
        if o.wrapper.is_empty() {
            Launch {
                program: o.program.clone().into_os_string(),
                args,
                env: Vec::new(),
                diagnostics: None,
                die_with_parent: true,
                shared: None,
                mux: None,
            }
        } else {
            let mut all: Vec<OsString> = o.wrapper[1..].to_vec();
            all.push(o.program.clone().into_os_string());
            all.extend(args);
            Launch {
                program: o.wrapper[0].clone(),
                args: all,
                env: Vec::new(),
                diagnostics: None,
                die_with_parent: true,
                shared: None,
                mux: None,
            }
        }
    }

    /// How the process about to use `socket` reads its master's messages.
    /// When no master listens there, this process (ssh's `ControlMaster=auto`)
    /// becomes the master and keeps its `-E` log `own`: the log is made
    /// now and linked as `SOCKET.log`, which outlives the process's own
    /// log (read and removed by the engine when it exits).
    fn share(&self, socket: &Path, own: &Path) -> SharedConnection {
        let master_log = socket.with_extension("log");
        // A socket nobody listens on (its master was killed) is replaced by
        // ssh: this process then becomes the master.
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            let offset = std::fs::metadata(&master_log).map_or(0, |m| m.len());
            return SharedConnection {
                log: Some(master_log),
                offset,
                socket: socket.to_path_buf(),
            };
        }
        use std::os::unix::fs::OpenOptionsExt;
        let made = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(own);
        if made.is_ok() {
            let _ = std::fs::remove_file(&master_log);
            let _ = std::fs::hard_link(own, &master_log);
        }
        SharedConnection {
            // Its own log already says what the master said so far.
            log: None,
            offset: 0,
            socket: socket.to_path_buf(),
        }
    }

    /// Ends the master connections this transport opened in its control
    /// directory (`ssh -O exit`), at most 64 at a time.
    fn exit_masters(&self) {
        let hosts: Vec<String> = {
            let mut m = self.masters.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *m).into_iter().collect()
        };
        if hosts.is_empty() || self.control_dir.is_none() {
            return;
        }
        for chunk in hosts.chunks(64) {
            let mut children = Vec::new();
            for h in chunk {
                let mut args = self.common_args();
                if let Some(socket) = self.control_socket(h) {
                    let mut p = OsString::from("-oControlPath=");
                    p.push(socket.into_os_string());
                    args.push(p);
                }
                args.extend(["-O".into(), "exit".into(), "--".into(), h.into()]);
                let l = self.base_launch(args);
                let child = std::process::Command::new(&l.program)
                    .args(&l.args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                if let Ok(c) = child {
                    children.push(c);
                }
            }
            for mut c in children {
                let _ = c.wait();
            }
        }
    }
}

/// How the per-transport working directories (ssh logs, private control
/// sockets) are named in the temporary directory, before `PID-START.`.
pub const WORKDIR_PREFIX: &str = "swh-deploy-ssh.";

/// The start time of process `pid` (clock ticks after boot, field 22 of
/// `/proc/PID/stat`), `None` when there is no such process.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Removes the working directories under `tmp` left by dead transports of
/// this user: a name `swh-deploy-ssh.PID-START.*` whose process is gone or
/// started at another time (START 0, "unknown", is never removed). The masters listening on their control
/// sockets are ended first (`ssh -O exit`, with `program`). Directories of
/// live processes, of other users, and of unknown shape are left alone.
/// Returns how many were removed.
pub fn remove_stale_workdirs(tmp: &Path, program: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    // Without /proc no owner can be checked: nothing is removed.
    if process_start(std::process::id()).is_none() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(WORKDIR_PREFIX)) else {
            continue;
        };
        let Some((pid, start)) = rest
            .split_once('.')
            .and_then(|(owner, _)| owner.split_once('-'))
            .and_then(|(p, s)| Some((p.parse::<u32>().ok()?, s.parse::<u64>().ok()?)))
        else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid || start == 0 || process_start(pid) == Some(start) {
            continue;
        }
        if let Ok(files) = std::fs::read_dir(&path) {
            for f in files.flatten() {
                let is_socket = f
                    .file_type()
                    .map(|t| std::os::unix::fs::FileTypeExt::is_socket(&t))
                    .unwrap_or(false);
                if is_socket {
                    end_master(program, &f.path());
                }
            }
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Ends the master listening on control socket `socket`, if one does.
fn end_master(program: &Path, socket: &Path) {
    if std::os::unix::net::UnixStream::connect(socket).is_err() {
        return;
    }
    let mut path = OsString::from("-oControlPath=");
    path.push(socket.as_os_str());
    let _ = std::process::Command::new(program)
        .arg(path)
        .args(["-O", "exit", "--", "stale-master"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// swh-deploy's own ssh options, put before any other on every ssh
/// command line: host-key checking (`yes`, or `accept-new` only with
/// [`HostKeyPolicy::AcceptNew`]), batch mode, no agent or X11
/// forwarding, no local command, and the log level the unreachable
/// classification needs.
pub fn security_options(host_keys: HostKeyPolicy) -> [&'static str; 6] {
    [
        match host_keys {
            HostKeyPolicy::Strict => "-oStrictHostKeyChecking=yes",
            HostKeyPolicy::AcceptNew => "-oStrictHostKeyChecking=accept-new",
        },
        "-oBatchMode=yes",
        "-oForwardAgent=no",
        "-oForwardX11=no",
        "-oPermitLocalCommand=no",
        // LogLevel INFO: ssh's messages about a lost or refused connection
        // must reach the -E log, or a 255 cannot be told from the command's.
        "-oLogLevel=INFO",
    ]
}

/// FNV-1a, 64 bits: a stable name for a control socket.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.iter().chain(std::iter::once(&0u8)) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What `path` holds after its first `offset` bytes (nothing if it cannot
/// be read).
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.take(64 * 1024).read_to_end(&mut out);
        }
    }
    out
}

/// True when `host` can be given to ssh as a destination: not empty, no
/// leading `-`, no whitespace or control characters.
pub fn valid_ssh_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('-')
        && host.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

impl Transport for SshTransport {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn prepare(&self, job: &Job<'_>) -> Result<Launch, TransportError> {
        if !valid_ssh_host(job.host) {
            return Err(TransportError::BadHost(job.host.to_string()));
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let log = match &self.control_dir {
            // Next to the sockets: a client that becomes the master keeps
            // its log there (a hard link, on the same file system).
            Some(dir) if !self.private_control => {
                dir.join(format!("{CLIENT_LOG_PREFIX}{}.{n}.log", std::process::id()))
            }
            _ => self.workdir.path().join(format!("ssh.{n}.log")),
        };
        let mut args = self.common_args();
        let mut shared = None;
        if let Some(socket) = self.control_socket(job.host) {
            let mut p = OsString::from("-oControlPath=");
            p.push(socket.clone().into_os_string());
            args.push(p);
            shared = Some(self.share(&socket, &log));
        }
        args.push("-E".into());
        args.push(log.clone().into_os_string());
        args.push("--".into());
        args.push(job.host.into());
        args.push(job.command.into());
        if self.control_dir.is_some() && self.private_control {
            self.masters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(job.host.to_string());
        }
        let mut l = self.base_launch(args);
        // A master already listening (made by an earlier command or run):
        // the session is opened on its socket, no ssh client started.
        if self.options.mux {
            if let Some(sh) = shared.as_ref().filter(|sh| sh.log.is_some()) {
                l.mux = Some(MuxSession {
                    socket: sh.socket.clone(),
                    command: job.command.to_string(),
                    direct: bypassing_master(&l.args, &sh.socket),
                });
            }
        }
        l.diagnostics = Some(log);
        l.shared = shared;
        Ok(l)
    }

    /// ssh exits 255 both when the command did and when the connection was
    /// lost; a lost connection is told by ssh's own message in the -E log.
    /// Over a shared connection the client says nothing when its master
    /// dies: the master's message (kept in its log) is added, and a master
    /// gone without a word is said so.
    fn classify(
        &self,
        exit_code: i32,
        diagnostics: &mut Vec<u8>,
        shared: Option<&SharedConnection>,
    ) -> Status {
        if exit_code != 255 {
            return Status::Exited(exit_code);
        }
        if let Some(sh) = shared.filter(|_| !ssh_complained(diagnostics)) {
            if let Some(log) = &sh.log {
                diagnostics.extend(read_from(log, sh.offset));
            }
            // A master killed leaves its socket behind: only a connection
            // tells whether it still listens.
            if !ssh_complained(diagnostics) && !master_listens(&sh.socket) {
                diagnostics.extend_from_slice(
                    b"ssh: the shared connection to the host was lost (its control master is gone)\n",
                );
            }
        }
        if ssh_complained(diagnostics) {
            Status::Unreachable
        } else {
            Status::Exited(exit_code)
        }
    }

    fn close(&self) {
        if self.private_control {
            self.exit_masters();
        }
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        self.close();
    }
}

/// `args` (an ssh command line sharing the master at `socket`) for a
/// connection of its own: swh-deploy's `-oControlMaster=auto`, which comes
/// before any extra option, becomes `-oControlMaster=no -oControlPath=none`
/// (ssh keeps the first value it reads, so an extra `ControlPath` cannot
/// lead it back to a master); its `ControlPersist` and `ControlPath` go.
fn bypassing_master(args: &[OsString], socket: &Path) -> Vec<OsString> {
    let mut ours = OsString::from("-oControlPath=");
    ours.push(socket);
    let (mut master, mut persist) = (false, false);
    let mut out = Vec::with_capacity(args.len() + 1);
    for (i, a) in args.iter().enumerate() {
        let b = a.as_encoded_bytes();
        if b == b"--" {
            // The host and the command: never options.
            out.extend_from_slice(&args[i..]);
            break;
        }
        if !master && b == b"-oControlMaster=auto" {
            master = true;
            out.push("-oControlMaster=no".into());
            out.push("-oControlPath=none".into());
        } else if !persist && b.starts_with(b"-oControlPersist=") {
            persist = true;
        } else if *a != ours {
            out.push(a.clone());
        }
    }
    out
}

/// True when ssh wrote a message of its own (other than the notice that a
/// new host key was added): connection refused, timeout, lost connection,
/// authentication or host-key failure.
fn ssh_complained(diagnostics: &[u8]) -> bool {
    diagnostics
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .any(|l| !l.is_empty() && !l.starts_with(b"Warning: Permanently added"))
}

/// Whether a master still listens on `socket`. A connection alone does not
/// tell: a master killed with SIGKILL closes its descriptors one by one, and
/// the session's may be closed (ending it without an exit status) while the
/// listening one still accepts. A dying master's pending connection is then
/// reset or closed; a live one sends its hello, or stays quiet until the
/// short wait ends.
fn master_listens(socket: &Path) -> bool {
    use std::io::Read;
    let Ok(mut conn) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    if conn
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
    {
        return true;
    }
    let mut byte = [0u8; 1];
    match conn.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_like_clush() {
        assert_eq!(
            substitute("echo %h %host", "n1", "n[1-2]", 0).unwrap(),
            "echo n1 n1"
        );
        assert_eq!(
            substitute("%{h}x %n %rank", "n1", "n[1-2]", 7).unwrap(),
            "n1x 7 7"
        );
        assert_eq!(
            substitute("%hosts 100%%", "n1", "n[1-2]", 0).unwrap(),
            "n[1-2] 100%"
        );
        assert_eq!(substitute("%h.txt", "a", "a", 0).unwrap(), "a.txt");
        assert!(substitute("%hostname", "a", "a", 0).is_err());
        let e = substitute("x $((%n % 3))", "a", "a", 0).unwrap_err();
        assert!(e.to_string().contains("at byte 8"), "{e}");
        assert!(substitute("%{h", "a", "a", 0).is_err());
        assert!(substitute("trailing %", "a", "a", 0).is_err());
    }

    #[test]
    fn a_session_bypassing_its_master_gets_a_connection_of_its_own() {
        let t = SshTransport::new(SshOptions {
            extra_args: vec!["-oControlPath=/evil".into(), "-oPort=2222".into()],
            reuse: Some(ConnectionReuse {
                dir: None,
                persist: Duration::from_secs(30),
            }),
            ..SshOptions::default()
        })
        .unwrap();
        let cmd = "echo -oControlPath=x -oControlPersist=1";
        let args = t
            .prepare(&Job {
                host: "web1",
                rank: 0,
                hosts: "web1",
                command: cmd,
            })
            .unwrap()
            .args;
        let socket = t.control_socket("web1").unwrap();
        let direct: Vec<String> = bypassing_master(&args, &socket)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let at = |opt: &str| direct.iter().position(|a| a == opt);
        // Ours, in the place of the master's options (before the extra ones,
        // so that they win), no persistence; the rest unchanged.
        assert!(at("-oControlMaster=no").unwrap() < at("-oControlPath=/evil").unwrap());
        assert!(at("-oControlPath=none").unwrap() < at("-oControlPath=/evil").unwrap());
        assert!(!direct.iter().any(|a| a.starts_with("-oControlPersist=")));
        assert!(!direct.iter().any(|a| a == "-oControlMaster=auto"));
        assert!(!direct.iter().any(|a| a.contains(socket.to_str().unwrap())));
        assert_eq!(direct.len(), args.len() - 1);
        assert_eq!(&direct[direct.len() - 3..], &["--", "web1", cmd]);
        assert!(direct.contains(&"-oStrictHostKeyChecking=yes".to_string()));
    }

    #[test]
    fn ssh_argv_keeps_the_command_as_one_argument_after_double_dash() {
        let t = SshTransport::new(SshOptions {
            config_file: Some("/tmp/cfg".into()),
            extra_args: vec!["-oPort=2222".into()],
            ..SshOptions::default()
        })
        .unwrap();
        let cmd = "echo $HOME; rm -rf '/tmp/x y' && `id`";
        let l = t
            .prepare(&Job {
                host: "web1",
                rank: 0,
                hosts: "web1",
                command: cmd,
            })
            .unwrap();
        let argv: Vec<String> = l
            .argv()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let n = argv.len();
        assert_eq!(&argv[n - 3..], &["--", "web1", cmd]);
        assert_eq!(&argv[1..3], &["-F", "/tmp/cfg"]);
        // swh-deploy's security options come before anything else (ssh
        // keeps the first value), the extra options before the defaults.
        assert_eq!(
            &argv[3..9],
            &[
                "-oStrictHostKeyChecking=yes",
                "-oBatchMode=yes",
                "-oForwardAgent=no",
                "-oForwardX11=no",
                "-oPermitLocalCommand=no",
                "-oLogLevel=INFO"
            ]
        );
        assert_eq!(argv[9], "-oPort=2222");
        assert_eq!(argv[10], "-oConnectTimeout=10");
        assert!(l.diagnostics.is_some());
        let t = SshTransport::new(SshOptions {
            extra_args: vec!["-oStrictHostKeyChecking=no".into()],
            host_keys: HostKeyPolicy::AcceptNew,
            reuse: Some(ConnectionReuse {
                dir: None,
                persist: Duration::from_secs(5),
            }),
            ..SshOptions::default()
        })
        .unwrap();
        let l = t
            .prepare(&Job {
                host: "web1",
                rank: 0,
                hosts: "web1",
                command: "true",
            })
            .unwrap();
        let argv: Vec<String> = l
            .argv()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let first = |prefix: &str| argv.iter().position(|a| a.starts_with(prefix)).unwrap();
        assert_eq!(argv[1], "-oStrictHostKeyChecking=accept-new");
        assert!(first("-oControlMaster=") < first("-oStrictHostKeyChecking=no"));
        assert!(first("-oControlPath=") < first("-E"));
        assert!(first("-E") < first("--"));
        assert_eq!(argv.last().unwrap(), "true");
        assert_eq!(argv[argv.len() - 2], "web1");
        assert_eq!(argv[argv.len() - 3], "--");
        assert!(l.diagnostics.is_some());
        assert!(t
            .prepare(&Job {
                host: "-oProxyCommand=x",
                rank: 0,
                hosts: "",
                command: "true"
            })
            .is_err());
    }

    #[test]
    fn exit_255_is_unreachable_only_when_ssh_complained() {
        let t = SshTransport::new(SshOptions::default()).unwrap();
        let classify = |code: i32, diag: &[u8]| t.classify(code, &mut diag.to_vec(), None);
        assert_eq!(classify(255, b""), Status::Exited(255));
        assert_eq!(
            classify(
                255,
                b"Warning: Permanently added 'x' (ED25519) to the list of known hosts.\r\n"
            ),
            Status::Exited(255)
        );
        assert_eq!(
            classify(
                255,
                b"ssh: connect to host x port 22: Connection refused\r\n"
            ),
            Status::Unreachable
        );
        assert_eq!(classify(1, b"whatever\r\n"), Status::Exited(1));
    }

    #[test]
    fn the_working_directory_is_private_and_names_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let t = SshTransport::new(SshOptions::default()).unwrap();
        let mode = std::fs::metadata(t.workdir.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let me = std::process::id();
        let name = t.workdir.path().file_name().unwrap().to_str().unwrap();
        let expected = format!("swh-deploy-ssh.{me}-{}.", process_start(me).unwrap());
        assert!(name.starts_with(&expected), "{name}");
    }

    #[test]
    fn only_the_working_directories_of_dead_owners_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let start = process_start(me).unwrap();
        // A child that has exited: its pid is free (or reused, with
        // another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dirs = [
            (format!("swh-deploy-ssh.{me}-{start}.live"), true),
            (format!("swh-deploy-ssh.{me}-{}.reused", start + 1), false),
            (format!("swh-deploy-ssh.{dead}-{start}.dead"), false),
            ("swh-deploy-ssh.oldstyle".to_string(), true),
            (format!("swh-deploy-ssh.{dead}-0.unknown"), true),
            ("something-else.1-2.x".to_string(), true),
        ];
        for (d, _) in &dirs {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
            std::fs::write(tmp.path().join(d).join("ssh.0.log"), b"x").unwrap();
        }
        // A stale directory's socket nobody listens on any more.
        let sock = tmp.path().join(&dirs[2].0).join("0123456789abcdef");
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert_eq!(remove_stale_workdirs(tmp.path(), Path::new("ssh")), 2);
        for (d, kept) in &dirs {
            assert_eq!(tmp.path().join(d).exists(), *kept, "{d}");
        }
    }

    #[test]
    fn a_shared_control_dir_is_made_private_and_an_unsafe_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let shared = |dir: PathBuf| {
            SshTransport::new(SshOptions {
                reuse: Some(ConnectionReuse {
                    dir: Some(dir),
                    persist: DEFAULT_PERSIST,
                }),
                ..SshOptions::default()
            })
        };
        // Missing: made 0700, the parent too.
        let good = tmp.path().join("swh-deploy").join("ssh");
        shared(good.clone()).unwrap();
        for d in [&good, good.parent().unwrap()] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o700, "{}", d.display());
        }
        let refused = |dir: PathBuf, why: &str| {
            let e = shared(dir.clone()).unwrap_err();
            assert!(
                matches!(e, TransportError::UnsafeControlDir { .. }),
                "{}: {e}",
                dir.display()
            );
            let msg = e.to_string();
            assert!(msg.contains(why), "{msg}");
            assert!(msg.contains("--no-reuse"), "{msg}");
        };
        // Open to others: refused, and left as it was.
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        refused(open.join("ssh"), "mode is 0755");
        assert!(!open.join("ssh").exists());
        let mode = std::fs::metadata(&open).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // A symbolic link (to a private directory of ours, even).
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(good.parent().unwrap(), &link).unwrap();
        refused(link.join("ssh"), "symbolic link");
        // Not a directory.
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        refused(file.join("ssh"), "not a directory");
        // Another user's (only root can make one).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let theirs = tmp.path().join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            refused(theirs.join("ssh"), "owned by uid 65534");
        }
    }

    #[test]
    fn stale_sockets_and_dead_clients_logs_are_removed_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let live = std::os::unix::net::UnixListener::bind(d.join("00000000000000aa")).unwrap();
        std::fs::write(d.join("00000000000000aa.log"), b"").unwrap();
        drop(std::os::unix::net::UnixListener::bind(d.join("00000000000000bb")).unwrap());
        std::fs::write(d.join("00000000000000bb.log"), b"").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        std::fs::write(d.join(format!("client.{dead}.0.log")), b"").unwrap();
        std::fs::write(d.join(format!("client.{me}.0.log")), b"").unwrap();
        std::fs::write(d.join("other"), b"").unwrap();
        // The log of a master that ended by itself: kept while recent.
        let orphan = d.join("00000000000000cc.log");
        std::fs::write(&orphan, b"").unwrap();
        assert_eq!(remove_stale_sockets(d), 3);
        let old = std::time::SystemTime::now() - ORPHAN_LOG_AGE - Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&orphan)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(remove_stale_sockets(d), 1);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "00000000000000aa",
                "00000000000000aa.log",
                &format!("client.{me}.0.log"),
                "other"
            ]
        );
        drop(live);
    }

    #[test]
    fn the_user_control_dir_is_in_the_runtime_dir_when_there_is_one() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            user_control_dir(Some(tmp.path())),
            tmp.path().join("swh-deploy").join("ssh")
        );
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let fallback = if Path::new(&format!("/run/user/{uid}")).is_dir() {
            PathBuf::from(format!("/run/user/{uid}/swh-deploy/ssh"))
        } else {
            PathBuf::from(format!("/tmp/swh-deploy-{uid}/ssh"))
        };
        assert_eq!(
            user_control_dir(Some(Path::new("/nonexistent/run"))),
            fallback
        );
        assert_eq!(user_control_dir(Some(Path::new("relative"))), fallback);
        assert_eq!(user_control_dir(None), fallback);
    }

    #[test]
    fn a_master_dying_after_the_connection_is_not_listening() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        // Nothing there.
        assert!(!master_listens(&dir.path().join("none")));
        // A live master that greets at once.
        let greeting = dir.path().join("greeting");
        let l = std::os::unix::net::UnixListener::bind(&greeting).unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.write_all(b"\0\0\0\x09").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        assert!(master_listens(&greeting));
        t.join().unwrap();
        // A quiet one: the wait ends, it still listens.
        let quiet = dir.path().join("quiet");
        let _l = std::os::unix::net::UnixListener::bind(&quiet).unwrap();
        assert!(master_listens(&quiet));
        // One being killed: the connection is taken into its backlog, then
        // its listening socket closes (a connection alone says "alive").
        let dying = dir.path().join("dying");
        let l = std::os::unix::net::UnixListener::bind(&dying).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(l);
        });
        assert!(!master_listens(&dying));
        t.join().unwrap();
    }

    #[test]
    fn a_silent_255_over_a_shared_connection_takes_the_masters_word() {
        let t = SshTransport::new(SshOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("0123456789abcdef");
        let log = socket.with_extension("log");
        std::fs::write(&log, b"old news\r\n").unwrap();
        let master = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let shared = SharedConnection {
            log: Some(log.clone()),
            offset: 10,
            socket: socket.clone(),
        };
        // Master up, nothing new in its log: the command's own 255.
        let mut diag = Vec::new();
        assert_eq!(
            t.classify(255, &mut diag, Some(&shared)),
            Status::Exited(255)
        );
        assert!(diag.is_empty());
        // The master said the server stopped answering while we ran.
        std::fs::write(
            &log,
            b"old news\r\nTimeout, server 10.0.0.1 not responding.\r\n",
        )
        .unwrap();
        let mut diag = Vec::new();
        assert_eq!(
            t.classify(255, &mut diag, Some(&shared)),
            Status::Unreachable
        );
        assert_eq!(diag, b"Timeout, server 10.0.0.1 not responding.\r\n");
        // Another exit code is the command's, whatever the master said.
        assert_eq!(
            t.classify(3, &mut Vec::new(), Some(&shared)),
            Status::Exited(3)
        );
        // A master gone without a word (kill -9).
        std::fs::write(&log, b"old news\r\n").unwrap();
        drop(master);
        let mut diag = Vec::new();
        assert_eq!(
            t.classify(255, &mut diag, Some(&shared)),
            Status::Unreachable
        );
        assert!(String::from_utf8_lossy(&diag).contains("control master is gone"));
    }
}

#[cfg(test)]
mod direct_tests {
    use super::direct_argv;

    #[test]
    fn plain_words_are_split_without_a_shell() {
        assert_eq!(
            direct_argv("seq  100"),
            Some(vec!["seq".to_string(), "100".to_string()])
        );
        assert_eq!(
            direct_argv("dpkg-query -W -f=x python3-swh.storage"),
            Some(
                ["dpkg-query", "-W", "-f=x", "python3-swh.storage"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }

    #[test]
    fn anything_the_shell_would_interpret_goes_through_it() {
        for cmd in [
            "echo hi",
            "true",
            "cd /tmp",
            "A=1 env",
            "ls *",
            "cat ~/x",
            "seq 3 | wc -l",
            "seq 3; seq 4",
            "echo $HOME",
            "ls 'a b'",
            "ls a\\ b",
            "ls > x",
            "ls # comment",
            "ls\nls",
            "",
            "   ",
        ] {
            assert_eq!(direct_argv(cmd), None, "{cmd:?}");
        }
    }
}
