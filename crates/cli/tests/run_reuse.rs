//! `swh-deploy run` keeps one ssh connection per host open between
//! commands by default (OpenSSH ControlMaster, ControlPersist 60 s), in a
//! private per-user directory: counted on the test bed's real sshd (its
//! "Accepted publickey" log lines, one per new connection), `--no-reuse`
//! and the site's `[ssh] reuse = false`, stale sockets, and directories
//! another user could reach refused before anything runs.

mod common;

use common::{bin, need_root, text};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_testbed::{Options, Testbed};

/// New ssh connections the test bed's sshd accepted so far.
fn accepted(tb: &Testbed) -> usize {
    let log = tb.state_dir().join("logs/sshd-loopback.log");
    std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .matches("Accepted publickey for root")
        .count()
}

/// `accepted` once it has stopped growing (sshd writes its line as the
/// connection is authenticated, before the command runs: normally at once).
fn settled(tb: &Testbed, at_least: usize) -> usize {
    let t = Instant::now();
    loop {
        let n = accepted(tb);
        if n >= at_least || t.elapsed() > Duration::from_secs(5) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Puts in `XDG/bin` an `ssh` that logs each invocation in `XDG/ssh.calls`
/// before running the real one: [`run`] puts it first in `PATH`.
fn ssh_shim(xdg: &Path) {
    let bin = xdg.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = ["/usr/bin/ssh", "/bin/ssh"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("ssh");
    std::fs::write(
        bin.join("ssh"),
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {real} \"$@\"\n",
            xdg.join("ssh.calls").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("ssh"), PermissionsExt::from_mode(0o755)).unwrap();
}

/// How many `ssh` processes the runs started so far (see [`ssh_shim`]).
fn ssh_calls(xdg: &Path) -> usize {
    std::fs::read_to_string(xdg.join("ssh.calls"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn run(tb: &Testbed, xdg: &Path, args: &[&str]) -> Output {
    let mut argv = vec![bin(), "run"];
    argv.extend(args);
    let mut path = std::ffi::OsString::from(xdg.join("bin"));
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let out = tb
        .exec_command(&argv)
        .env("PATH", path)
        .env("XDG_RUNTIME_DIR", xdg)
        .env_remove("SWH_DEPLOY_SITE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ {}\n-> {:?}\n{}{}",
        argv.join(" "),
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn sockets(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Ends the masters listening in `dir` (the processes this test started).
fn exit_masters(dir: &Path) {
    for s in sockets(dir) {
        let _ = Command::new("ssh")
            .arg(format!("-oControlPath={}", s.display()))
            .args(["-O", "exit", "--", "x"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Ends the masters of a control directory when the test ends, passed or
/// not.
struct Masters(PathBuf);

impl Drop for Masters {
    fn drop(&mut self) {
        exit_masters(&self.0);
    }
}

#[test]
fn a_second_run_reuses_the_connections_and_no_reuse_opens_fresh_ones() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up(&Options {
        loopback: Some(4),
        ..Options::default()
    })
    .unwrap();
    let cfg = tb.ssh_config_path();
    let cfg = cfg.to_str().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    let dir = xdg.path().join("swh-deploy/ssh");
    let _masters = Masters(dir.clone());
    // A socket whose master is gone, left by a killed run: removed.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(dir.parent().unwrap(), PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700)).unwrap();
    let stale = dir.join("ffffffffffffffff");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    ssh_shim(xdg.path());

    let base = accepted(&tb);
    let hosts = ["-F", cfg, "-w", "host[1-4]", "-b"];
    let cmd = [&hosts[..], &["echo $SSH_CONNECTION"]].concat();
    let first = run(&tb, xdg.path(), &cmd);
    assert!(first.status.success());
    assert_eq!(settled(&tb, base + 4), base + 4, "one connection per host");
    assert!(!stale.exists(), "the stale socket was not removed");
    assert_eq!(sockets(&dir).len(), 4, "one master per host");
    assert_eq!(mode(xdg.path().join("swh-deploy").as_path()), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(ssh_calls(xdg.path()), 4, "one ssh per host");

    // Within the persist time: the same connections (same client ports),
    // no new one accepted, and no ssh process started: the sessions are
    // opened on the masters' sockets.
    let second = run(&tb, xdg.path(), &cmd);
    assert!(second.status.success());
    assert_eq!(first.stdout, second.stdout, "not the same connections");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accepted(&tb), base + 4, "the second run opened connections");
    assert_eq!(ssh_calls(xdg.path()), 4, "the second run started ssh");
    // A failing command: the same output and exit code as through ssh.
    let failing = run(
        &tb,
        xdg.path(),
        &[&hosts[..], &["-S", "echo out; echo err >&2; exit 7"]].concat(),
    );
    assert_eq!(failing.status.code(), Some(7));
    assert!(text(&failing.stdout).contains("host[1-4] (4)"));
    assert!(text(&failing.stdout).contains("\nout\n"));
    assert!(text(&failing.stderr).contains("err"));
    assert_eq!(ssh_calls(xdg.path()), 4);

    // --no-mux, or the site's `[ssh] mux = false`: an ssh client per host,
    // through the same masters (no new connection).
    let muxless = run(
        &tb,
        xdg.path(),
        &[&hosts[..], &["--no-mux"], &cmd[5..]].concat(),
    );
    assert!(muxless.status.success());
    assert_eq!(first.stdout, muxless.stdout, "not the same connections");
    assert_eq!(ssh_calls(xdg.path()), 8, "--no-mux: one ssh per host");
    let site_file = xdg.path().join("site-nomux.toml");
    std::fs::write(
        &site_file,
        format!("[site]\nname = \"loopback\"\n\n[ssh]\nconfig = \"{cfg}\"\nmux = false\n"),
    )
    .unwrap();
    let site_muxless = run(
        &tb,
        xdg.path(),
        &[
            "--site",
            site_file.to_str().unwrap(),
            "-w",
            "host[1-4]",
            "-b",
            "true",
        ],
    );
    assert!(site_muxless.status.success());
    assert_eq!(
        ssh_calls(xdg.path()),
        12,
        "[ssh] mux = false: one ssh per host"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accepted(&tb), base + 4, "--no-mux opened connections");

    // --no-reuse: fresh connections, none kept, the masters left alone.
    let fresh = run(
        &tb,
        xdg.path(),
        &[&hosts[..], &["--no-reuse", "true"]].concat(),
    );
    assert!(fresh.status.success());
    assert_eq!(settled(&tb, base + 8), base + 8);
    assert_eq!(sockets(&dir).len(), 4);
    assert_eq!(ssh_calls(xdg.path()), 16, "--no-reuse: one ssh per host");
    // The same from the site file.
    let site = xdg.path().join("site.toml");
    std::fs::write(
        &site,
        format!("[site]\nname = \"loopback\"\n\n[ssh]\nconfig = \"{cfg}\"\nreuse = false\n"),
    )
    .unwrap();
    let site = site.to_str().unwrap();
    let off = run(
        &tb,
        xdg.path(),
        &["--site", site, "-w", "host[1-4]", "-b", "true"],
    );
    assert!(off.status.success());
    assert_eq!(settled(&tb, base + 12), base + 12);
    // --no-reuse with --control-persist is a usage error.
    let both = run(
        &tb,
        xdg.path(),
        &[
            &hosts[..],
            &["--no-reuse", "--control-persist", "5", "true"],
        ]
        .concat(),
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(text(&both.stderr).contains("--no-reuse excludes --control-persist"));

    // A master killed (its socket left behind): its host gets a new
    // connection, the others keep theirs.
    let socket = &sockets(&dir)[0];
    let check = Command::new("ssh")
        .arg(format!("-oControlPath={}", socket.display()))
        .args(["-O", "check", "--", "x"])
        .output()
        .unwrap();
    let pid: i32 = text(&check.stderr)
        .split("pid=")
        .nth(1)
        .and_then(|p| p.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no master pid in {:?}", text(&check.stderr)));
    // SAFETY: kill(2) of the master this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_ok() {
        assert!(t.elapsed() < Duration::from_secs(5), "the master survived");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(socket.exists());
    let again = run(&tb, xdg.path(), &cmd);
    assert!(again.status.success());
    assert_eq!(settled(&tb, base + 13), base + 13);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accepted(&tb), base + 13, "more than one new connection");
    assert_eq!(sockets(&dir).len(), 4);
    // One ssh for the host whose master was killed, none for the others.
    assert_eq!(ssh_calls(xdg.path()), 21);
}

#[test]
fn a_control_dir_another_user_could_reach_is_refused_and_left_alone() {
    let xdg = tempfile::tempdir().unwrap();
    let cfg = xdg.path().join("ssh_config");
    std::fs::write(&cfg, "").unwrap();
    let ours = xdg.path().join("swh-deploy");
    let attempt = |what: &str| {
        let o = Command::new(bin())
            .args(["run", "-F", cfg.to_str().unwrap(), "-w", "host1", "true"])
            .env("XDG_RUNTIME_DIR", xdg.path())
            .env_remove("SWH_DEPLOY_SITE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.starts_with(&format!(
                "swh-deploy run: ssh control directory {}: refused: ",
                ours.display()
            )),
            "{what}: {err}"
        );
        assert!(err.contains(what), "{err}");
        assert!(err.contains("--no-reuse"), "{err}");
        assert!(!ours.join("ssh").exists(), "{what}: it was used");
    };
    // Open to others.
    std::fs::create_dir(&ours).unwrap();
    std::fs::set_permissions(&ours, PermissionsExt::from_mode(0o777)).unwrap();
    attempt("its mode is 0777");
    assert_eq!(mode(&ours), 0o777, "changed");
    std::fs::remove_dir(&ours).unwrap();
    // A symbolic link to somewhere else.
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &ours).unwrap();
    attempt("it is a symbolic link");
    std::fs::remove_file(&ours).unwrap();
    // Another user's (root only can make it here).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::create_dir(&ours).unwrap();
        std::fs::set_permissions(&ours, PermissionsExt::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&ours, Some(65534), Some(65534)).unwrap();
        attempt("it is owned by uid 65534");
    }
    // --no-reuse does not look at it: the run goes on (and fails to reach
    // host1, which the empty ssh_config does not name).
    let o = Command::new(bin())
        .args([
            "run",
            "-F",
            cfg.to_str().unwrap(),
            "--no-reuse",
            "-t",
            "1",
            "-w",
            "nonexistent.invalid",
            "true",
        ])
        .env("XDG_RUNTIME_DIR", xdg.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !text(&o.stderr).contains("control directory"),
        "{}",
        text(&o.stderr)
    );
}
