//! Small helpers: running commands with clear errors, atomic writes, process
//! trees, locks and bounded waits.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The PATH given to every process the test bed starts.
pub(crate) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Renders a command line for error messages (shell-quoted).
pub(crate) fn render(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

/// Shell-quotes one word.
pub(crate) fn quote(s: impl AsRef<OsStr>) -> String {
    let s = s.as_ref().to_string_lossy();
    shlex::try_quote(&s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| format!("'{}'", s.replace('\0', "")))
}

/// Runs a command to completion; fails with its stderr when it exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    run_input(cmd, None)
}

/// Runs a command with `input` on its stdin; fails with its stderr when it
/// exits non-zero. Returns stdout.
pub(crate) fn run_input(cmd: &mut Command, input: Option<&str>) -> Result<String> {
    let shown = render(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.as_bytes())
            .with_context(|| format!("writing to `{shown}`"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds a command with a clean environment (only PATH, HOME, LANG=C).
pub(crate) fn cmd(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env("LC_ALL", "C");
    c
}

/// Writes a file atomically with the given mode, creating its directory
/// if needed ([`swh_deploy_util::atomic_write_mode`]: temporary file in the
/// same directory, fsync, rename).
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    swh_deploy_util::atomic_write_mode(path, contents, mode)?;
    Ok(())
}

/// Writes a file (not atomically: used inside fresh host root filesystems).
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Replace rather than write through: the lower layer's file is never touched.
    let _ = fs::remove_file(path);
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// Polls `f` every `step` until it returns `Some` or `timeout` passes.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    step: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(step);
    }
}

/// The start time (in clock ticks since boot) of a process, to recognise it
/// again and never signal a recycled pid.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields after the command: state(3) ppid(4) ... starttime(22).
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether the process `pid` that started at `start` still exists (and is
/// not a zombie).
pub(crate) fn alive(pid: i32, start: u64) -> bool {
    if start_time(pid) != Some(start) {
        return false;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    match stat.rfind(')') {
        Some(i) => !stat[i + 2..].starts_with('Z'),
        None => false,
    }
}

/// `pid` and all its descendants, parents first.
pub(crate) fn process_tree(pid: i32) -> Vec<i32> {
    let mut all: Vec<(i32, i32)> = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                if let Some(pp) = parent_of(p) {
                    all.push((p, pp));
                }
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for &(p, pp) in &all {
            if pp == parent && !tree.contains(&p) {
                tree.push(p);
            }
        }
        i += 1;
    }
    tree
}

/// Stops processes and all their descendants, all at once: SIGTERM to each
/// root (systemd-nspawn turns it into an orderly poweroff), up to `grace`
/// for the roots to exit, then SIGTERM to every remaining descendant, then
/// SIGKILL. `roots` are `(pid, start time)`; a pid whose start time differs
/// is a recycled pid and is left alone. Reaps roots that are our children.
pub(crate) fn stop_all(roots: &[(i32, u64)], grace: Duration) {
    // Snapshot the trees first: descendants are reparented when roots exit.
    let mut members: Vec<(i32, u64)> = Vec::new();
    let mut live_roots = Vec::new();
    for &(pid, start) in roots {
        if !alive(pid, start) {
            reap(pid);
            continue;
        }
        live_roots.push((pid, start));
        for p in process_tree(pid) {
            if let Some(s) = start_time(p) {
                if !members.iter().any(|&(q, _)| q == p) {
                    members.push((p, s));
                }
            }
        }
    }
    if live_roots.is_empty() {
        return;
    }
    let signal = |list: &[(i32, u64)], sig: i32| {
        for &(p, s) in list {
            if start_time(p) == Some(s) {
                // SAFETY: kill(2) on a pid whose start time we just checked.
                unsafe { libc::kill(p, sig) };
            }
        }
    };
    let all_dead = |list: &[(i32, u64)]| {
        for &(p, _) in &live_roots {
            reap(p);
        }
        list.iter().all(|&(p, s)| !alive(p, s)).then_some(())
    };
    signal(&live_roots, libc::SIGTERM);
    let _ = wait_for(grace, Duration::from_millis(20), || all_dead(&live_roots));
    signal(&members, libc::SIGTERM);
    if wait_for(Duration::from_secs(1), Duration::from_millis(20), || {
        all_dead(&members)
    })
    .is_none()
    {
        // Whatever is left, with anything it started meanwhile.
        let mut rest = members.clone();
        for &(p, s) in &members {
            if alive(p, s) {
                for q in process_tree(p) {
                    if let Some(t) = start_time(q) {
                        if !rest.iter().any(|&(r, _)| r == q) {
                            rest.push((q, t));
                        }
                    }
                }
            }
        }
        signal(&rest, libc::SIGKILL);
        let _ = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
            all_dead(&rest)
        });
    }
    for &(p, _) in &live_roots {
        reap(p);
    }
}

/// Reaps `pid` if it is a zombie child of this process (no-op otherwise).
pub(crate) fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on a specific pid with WNOHANG; ECHILD when not ours.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// An exclusive advisory lock on a file, released on drop.
pub(crate) struct Lock {
    _file: fs::File,
}

impl Lock {
    /// Takes the lock on `path`, waiting at most `timeout`.
    pub(crate) fn acquire(path: &Path, timeout: Duration) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let fd = file.as_raw_fd();
        let got = wait_for(timeout, Duration::from_millis(100), || {
            // SAFETY: flock on an fd we own.
            (unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(())
        });
        if got.is_none() {
            bail!(
                "timed out after {:?} waiting for the lock {}",
                timeout,
                path.display()
            );
        }
        Ok(Lock { _file: file })
    }
}

/// Mount points (from /proc/self/mountinfo) at or under `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

fn unescape_mount(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// FNV-1a, 64 bits: a hash that is stable across Rust versions (for cache
/// keys and short names).
pub(crate) fn fnv64(data: &[u8], mut h: u64) -> u64 {
    if h == 0 {
        h = 0xcbf2_9ce4_8422_2325;
    }
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
