//! `swh-deploy run` end to end: byte-for-byte against ClusterShell's clush
//! (exec worker and real ssh on the test bed's loopback fleet), exit codes,
//! timeouts, JSON, output directories and Ctrl-C.

mod common;

use common::{bin, skip, venv};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_testbed::{Options, Testbed};

fn clush() -> PathBuf {
    let c = venv().join("bin/clush");
    assert!(
        c.exists(),
        "{} missing: run scripts/install-deps",
        c.display()
    );
    c
}

fn output(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("spawn")
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Hosts with three different outputs and exit codes, stderr, a line
/// without newline, CRLF, an empty line and a host without output.
const MIXED: &str = "case %h in \
    node[12]|web0[1-5]) echo same; echo two;; \
    node3) echo diff; echo >&2 warn; exit 3;; \
    foo) printf 'x\\r\\n\\ny';; \
    web10) ;; \
    *) echo same; echo err >&2; echo two; exit 1;; esac; echo err%n >&2";

#[test]
fn exec_worker_output_matches_clush_byte_for_byte() {
    let nodes = "node[1-5],foo,web[01-10],x1y[1-3]";
    let modes: &[&[&str]] = &[
        &["-b"],
        &["-B"],
        &["-L"],
        &["-bL"],
        &["-BL"],
        &["-N", "-b"],
        &["-N", "-L"],
        &["-bS"],
        &["-S", "-L"],
        &["-b", "-x", "node[2-4]", "-f", "3"],
    ];
    for cmd in [MIXED, "echo %h %n; exit %n"] {
        for mode in modes {
            let mut ours = Command::new(bin());
            ours.args(["run", "-R", "exec", "-w", nodes])
                .args(*mode)
                .arg(cmd);
            let mut theirs = Command::new(clush());
            theirs
                .args(["-R", "exec", "-w", nodes])
                .args(*mode)
                .arg(cmd);
            let (a, b) = (output(ours), output(theirs));
            assert_eq!(
                a.stdout,
                b.stdout,
                "{mode:?} {cmd:?}\nours: {}\nclush: {}",
                show(&a),
                show(&b)
            );
            assert_eq!(
                a.status.code(),
                b.status.code(),
                "{mode:?} {cmd:?}\n{}",
                show(&a)
            );
        }
    }
}

#[test]
fn ssh_output_matches_clush_on_the_loopback_fleet() {
    let tb = Testbed::up(&Options {
        loopback: Some(8),
        ..Options::default()
    })
    .unwrap();
    tb.refuse("host7").unwrap();
    let cfg = tb.ssh_config_path();
    let cfg = cfg.to_str().unwrap();
    let cmd = "case $SSH_CONNECTION in *127.1.0.[12]\\ *) echo one; echo two;; \
               *127.1.0.3\\ *) echo other >&2; exit 3;; *127.1.0.8\\ *) exit 255;; \
               *) echo one; echo two; exit 1;; esac";
    for mode in [&["-bS"][..], &["-BS"], &["-LS"], &["-bLS"], &["-N", "-bS"]] {
        let mut ours = vec![bin(), "run", "-F", cfg, "-t", "3", "-w", "host[1-8]"];
        ours.extend(mode);
        ours.push(cmd);
        let opt = format!("-F {cfg}");
        let c = clush();
        let mut theirs = vec![
            c.to_str().unwrap(),
            "-o",
            &opt,
            "-t",
            "3",
            "-w",
            "host[1-8]",
        ];
        theirs.extend(mode);
        theirs.push(cmd);
        let a = output(tb.exec_command(&ours));
        let b = output(tb.exec_command(&theirs));
        assert_eq!(
            a.stdout,
            b.stdout,
            "{mode:?}\nours: {}\nclush: {}",
            show(&a),
            show(&b)
        );
        assert_eq!(a.status.code(), Some(255), "{}", show(&a));
        assert_eq!(a.status.code(), b.status.code());
        let err = String::from_utf8_lossy(&a.stderr);
        let refused = "ssh: connect to host 127.1.0.7 port 22: Connection refused";
        if mode.iter().any(|m| m.contains('B')) {
            // -B gathers ssh's message with the host's output, as clush does.
            let out = String::from_utf8_lossy(&a.stdout);
            assert!(
                out.contains("\nhost7\n---------------\nssh: connect to host"),
                "{out}"
            );
        } else {
            assert!(err.contains(refused), "{err}");
        }
        assert!(err.contains("swh-deploy: host7: unreachable"), "{err}");
        // host8's command exited 255 itself: an exit code, not unreachable.
        assert!(
            err.contains("swh-deploy: host8: exited with exit code 255"),
            "{err}"
        );
    }
    // The ssh settings and groups of a site file instead of flags: same
    // output as clush given them as flags.
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!(
            "[site]\nname = \"loopback\"\n\n[ssh]\nconfig = \"{cfg}\"\nconnect_timeout = \"3s\"\n\n\
             [groups.fleet]\nnodes = \"host[1-8]\"\n"
        ),
    )
    .unwrap();
    let site = site.to_str().unwrap();
    let a = output(tb.exec_command(&[bin(), "run", "--site", site, "-g", "fleet", "-bS", cmd]));
    let opt = format!("-F {cfg}");
    let c = clush();
    let b = output(tb.exec_command(&[
        c.to_str().unwrap(),
        "-o",
        &opt,
        "-t",
        "3",
        "-w",
        "host[1-8]",
        "-bS",
        cmd,
    ]));
    assert_eq!(
        a.stdout,
        b.stdout,
        "ours: {}\nclush: {}",
        show(&a),
        show(&b)
    );
    assert_eq!(a.status.code(), Some(255), "{}", show(&a));
}

#[test]
fn exit_status_is_zero_without_s_and_timeouts_are_255_with_it() {
    let run = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(["run", "-R", "exec", "-w", "n[1-3]"]).args(args);
        output(c)
    };
    let o = run(&["exit %n"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("swh-deploy: n2: exited with exit code 1"));
    let o = run(&["-S", "exit %n"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let t = Instant::now();
    let o = run(&[
        "-S",
        "-u",
        "0.5",
        "-b",
        "echo hi; [ %n = 1 ] && sleep 30; exit 0",
    ]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(255), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("swh-deploy: n2: command timeout"), "{err}");
    // clush leaves timed-out hosts out of the gathered output.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "---------------\nn[1,3] (2)\n---------------\nhi\n"
    );
}

#[test]
fn json_lines_and_output_directories() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err = dir.path().join("err");
    let mut c = Command::new(bin());
    c.args(["run", "-R", "exec", "-w", "n[1-2]", "--json", "--outdir"])
        .arg(&out)
        .arg("--errdir")
        .arg(&err)
        .arg("echo o%n; echo e%n >&2; exit %n");
    let o = output(c);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let mut seen = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        seen.push((
            v["host"].as_str().unwrap().to_string(),
            v["rc"].as_i64().unwrap(),
        ));
        assert_eq!(v["unreachable"], false);
        assert_eq!(v["timed_out"], false);
    }
    seen.sort();
    assert_eq!(seen, vec![("n1".to_string(), 0), ("n2".to_string(), 1)]);
    assert_eq!(std::fs::read_to_string(out.join("n2")).unwrap(), "o1\n");
    assert_eq!(std::fs::read_to_string(err.join("n1")).unwrap(), "e0\n");
}

#[test]
fn ctrl_c_kills_running_commands_and_names_the_incomplete_hosts() {
    let marker = format!("31.{}", std::process::id());
    let mut child = Command::new(bin())
        .args(["run", "-R", "exec", "-f", "2", "-b", "-w", "n[1-6]"])
        .arg(format!("echo hi; [ %n = 0 ] && exit 0; sleep {marker}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: kill(2) on the child we just started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = Instant::now();
    let o = loop {
        if let Some(_s) = child.try_wait().unwrap() {
            break child.wait_with_output().unwrap();
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("swh-deploy run did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(o.status.code(), Some(130), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "---------------\nn1\n---------------\nhi\n"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("swh-deploy: n[2-6] (5): did not complete (interrupted)"),
        "{err}"
    );
    // No `sleep` of ours survived.
    std::thread::sleep(Duration::from_millis(200));
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) {
            let s = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(!s.contains(&format!("sleep {marker}")), "left running: {s}");
        }
    }
}

/// Processes of ours whose command line contains `needle`.
fn running_with(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) {
            let s = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if s.contains(needle) {
                found.push((pid, s));
            }
        }
    }
    found
}

#[test]
fn kill_9_of_swh_deploy_does_not_leave_its_ssh_processes_running() {
    let tb = Testbed::up(&Options {
        loopback: Some(4),
        ..Options::default()
    })
    .unwrap();
    let cfg = tb.ssh_config_path();
    let marker = format!("sleep 32.{}", std::process::id());
    // Our ssh clients: argv[0] is ssh and the remote command is the marker
    // (the remote `sleep` processes, under the test bed's sshd, are not).
    let ssh_clients = || -> Vec<(i32, String)> {
        running_with(&marker)
            .into_iter()
            .filter(|(_, cmdline)| cmdline.split(' ').next().unwrap_or("").ends_with("ssh"))
            .collect()
    };
    let mut child = tb
        .exec_command(&[
            bin(),
            "run",
            "-F",
            cfg.to_str().unwrap(),
            "-w",
            "host[1-4]",
            &marker,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while ssh_clients().len() < 4 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the four ssh clients did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up itself
    child.wait().unwrap();
    let t = Instant::now();
    let left = loop {
        let left = ssh_clients();
        if left.is_empty() || t.elapsed() > Duration::from_secs(5) {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Leftovers of this test (and the remote sleeps) go in any case.
    for (pid, _) in running_with(&marker) {
        // SAFETY: kill(2) on a process of this test.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    assert!(left.is_empty(), "ssh left running after kill -9: {left:?}");
}

#[test]
fn site_groups_and_site_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        "[site]\nname = \"t\"\n\n[groups.web]\nnodes = \"n[1-3]\"\n\n[groups.db]\nnodes = \"db[1-2]\"\n",
    )
    .unwrap();
    // -g, @group in -w and -x, resolved from the site file.
    let mut c = Command::new(bin());
    c.args(["run", "--site"]).arg(&site).args([
        "-R", "exec", "-b", "-g", "web", "-w", "@db", "-x", "n2", "echo", "x",
    ]);
    let o = output(c);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "---------------\ndb[1-2],n[1,3] (4)\n---------------\nx\n"
    );
    // The same through $SWH_DEPLOY_SITE.
    let mut c = Command::new(bin());
    c.env("SWH_DEPLOY_SITE", &site)
        .args(["run", "-R", "exec", "-b", "-g", "db", "echo", "x"]);
    let o = output(c);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "---------------\ndb[1-2] (2)\n---------------\nx\n",
        "{}",
        show(&o)
    );
    // A broken site file: file:line:column, exit 1, nothing run.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[site]\nname = 3\n").unwrap();
    let mut c = Command::new(bin());
    c.args(["run", "--site"])
        .arg(&bad)
        .args(["-R", "exec", "-w", "n1", "echo", "ran"]);
    let o = output(c);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.toml:2:8:"),
        "{}",
        show(&o)
    );
}

/// The last stderr line without its program name (`PROG: error: ...`).
fn error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or("").to_string();
    match last.find(": error: ") {
        Some(i) => last[i..].to_string(),
        None => last,
    }
}

#[test]
fn options_are_parsed_as_clush_parses_them() {
    // Refused exactly as clush (optparse) refuses them: exit 2, same words,
    // nothing run.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for bad in [
        &["--bogus", "-w", "a"][..],
        &["-w", "a", "-z"],
        &["-bSz", "-w", "a"],
        &["--dshbak=1", "-w", "a"],
        &["-w", "a", "-f", "x"],
        &["-w", "a", "-f1.5"],
        &["-w", "a", "-t", "soon"],
        &["-w", "a", "--color=bad"],
        &["-w", "-x"],
        &["-w", "a", "-x", "a"],
        &["-w", "a", "--ver"],
        &["-w", "a", "-f"],
    ] {
        let mut ours = Command::new(bin());
        ours.args(["run", "-R", "exec"]).args(bad).arg(&touch);
        let mut theirs = Command::new(clush());
        theirs.args(["-R", "exec"]).args(bad).arg(&touch);
        let (a, b) = (output(ours), output(theirs));
        assert_eq!(a.status.code(), Some(2), "{bad:?}: {}", show(&a));
        assert_eq!(b.status.code(), Some(2), "{bad:?}: {}", show(&b));
        assert_eq!(error_line(&a), error_line(&b), "{bad:?}");
        assert!(a.stdout.is_empty());
        let err = String::from_utf8_lossy(&a.stderr);
        assert!(
            err.starts_with("Usage: swh-deploy run [options] command\n\nswh-deploy run: error: "),
            "{err}"
        );
    }
    assert!(!marker.exists(), "a refused command line ran the command");
    let o = output({
        let mut c = Command::new(bin());
        c.args(["run", "--bogus", "foo"]);
        c
    });
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().last(),
        Some("swh-deploy run: error: no such option: --bogus")
    );
    // An ambiguous prefix names the candidates (clush's and swh-deploy's).
    let o = output({
        let mut c = Command::new(bin());
        c.args(["run", "--co", "x", "-w", "a", "true"]);
        c
    });
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(
        "ambiguous option: --co (--color, --command_timeout, --conf, --connect_timeout, \
         --control-persist, --copy?)"
    ));
    // clush options that swh-deploy does not implement are refused by name.
    for opt in [
        "--diff",
        "-c",
        "--rcopy",
        "--topology=t",
        "--mode=x",
        "-d",
        "-r",
    ] {
        let o = output({
            let mut c = Command::new(bin());
            c.args(["run", "-R", "exec", "-w", "a", opt, "true"]);
            c
        });
        assert_eq!(o.status.code(), Some(2), "{opt}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("swh-deploy does not support it"),
            "{opt}: {}",
            show(&o)
        );
    }
    // Accepted: attached values, clusters, long prefixes, --opt=value, `--`.
    let same: &[(&[&str], &[&str])] = &[
        (
            &["-bS", "-whost[1-3]", "-f2", "-t5", "-u3"],
            &["-b", "-S", "-w", "host[1-3]"],
        ),
        (
            &["-bw", "host[1-3]", "--fan=2", "--command_t", "3"],
            &["-b", "-w", "host[1-3]"],
        ),
        (
            &["--dsh", "-w", "host[1-3]", "--work=exec"],
            &["-b", "-w", "host[1-3]"],
        ),
        (&["-Lwhost[1-3]", "-xhost2"], &["-L", "-w", "host[1,3]"]),
        (
            &["-LSw", "host[1-3]", "-O", "maxrc=no"],
            &["-L", "-w", "host[1-3]"],
        ),
    ];
    for (args, plain) in same {
        let run = |args: &[&str], cmd: &str| {
            let mut c = Command::new(bin());
            c.args(["run", "-R", "exec"]).args(args).arg(cmd);
            output(c)
        };
        let (a, b) = (
            run(args, "echo %h; exit %n"),
            run(plain, "echo %h; exit %n"),
        );
        assert_eq!(a.stdout, b.stdout, "{args:?}: {}", show(&a));
        assert_eq!(a.status.code(), b.status.code(), "{args:?}: {}", show(&a));
    }
    // `--` ends the options: what follows is the command, even `-S`.
    let o = output({
        let mut c = Command::new(bin());
        c.args(["run", "-R", "exec", "-w", "h", "--", "echo", "-S"]);
        c
    });
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "h: -S\n",
        "{}",
        show(&o)
    );
    // Options stop at the command's first word, as clush's do.
    let o = output({
        let mut c = Command::new(bin());
        c.args(["run", "-R", "exec", "-w", "h", "echo", "-b"]);
        c
    });
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "h: -b\n",
        "{}",
        show(&o)
    );
    let o = output({
        let mut c = Command::new(bin());
        c.args(["run", "--vers"]);
        c
    });
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("swh-deploy run {}\n", env!("CARGO_PKG_VERSION"))
    );
    // Installed under the name `clush`: clush's messages, word for word.
    let link = dir.path().join("clush");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    for args in [
        &["-w", "n[1-2]", "-b", "false"][..],
        &["-w", "n[1-2]", "-bq", "false"],
        &["-w", "n1", "exit 3"],
        &["-w", "n1", "-S", "-u", "1", "sleep 3"],
        &["-w", "n1", "-qS", "exit 3"],
        &["-w", "n[1-2]", "-b", "-u", "0", "-S", "exit 4"],
    ] {
        let mut ours = Command::new(&link);
        ours.args(["-R", "exec"]).args(args);
        let mut theirs = Command::new(clush());
        theirs.args(["-R", "exec"]).args(args);
        let (a, b) = (output(ours), output(theirs));
        assert_eq!(
            a.stderr,
            b.stderr,
            "{args:?}\nours: {}\nclush: {}",
            show(&a),
            show(&b)
        );
        assert_eq!(a.stdout, b.stdout, "{args:?}");
        assert_eq!(a.status.code(), b.status.code(), "{args:?}");
    }
}

/// ClusterShell 1.10.1's own `tests/CLIClushTest.py`, unchanged, with its
/// in-process `clush` call replaced by swh-deploy (as `clush`) in a
/// subprocess, and a private sshd on loopback for the tests that ssh to
/// this host and `localhost` (crates/cli/tests/peer/clush_peer.py). Every
/// test of an option swh-deploy supports must pass; the others are skipped
/// with the reason. The counts line (`peer CLIClushTest.py: N passed, ...`)
/// is printed in the test output.
#[test]
fn clustershell_peer_suite_cli_clush() {
    let venv = clush().parent().unwrap().parent().unwrap().to_path_buf();
    let python = venv.join("bin/python");
    let sdist = venv.join("peer/clustershell-1.10.1");
    assert!(
        sdist.join("tests/CLIClushTest.py").exists(),
        "{} missing: run scripts/install-deps",
        sdist.display()
    );
    // The private sshd logs in as root, in a private mount namespace.
    if !skip::need_root("the clush peer suite's private sshd logs in as root") {
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peer/clush_peer.py");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("out");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg("--bin")
        .arg(bin())
        .arg("--sdist")
        .arg(&sdist)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the clush peer adapter");
    // Bounded: the suite takes about 2 minutes on 2 cores (more when other
    // test bed tests run at the same time); nextest stops it at 15.
    let deadline = Instant::now() + Duration::from_secs(14 * 60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the clush peer suite did not finish in 14 minutes:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(&log).unwrap();
    print!("{out}");
    let summary = out
        .lines()
        .find(|l| l.starts_with("peer CLIClushTest.py: "))
        .expect("the adapter prints its counts");
    let count = |what: &str| -> usize {
        summary
            .split([':', ','])
            .find_map(|p| p.trim().strip_suffix(what))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {what} count in {summary:?}"))
    };
    assert!(status.success(), "{summary}");
    assert_eq!(count("failed"), 0, "{summary}");
    assert!(count("passed") > 0, "{summary}");
}

#[test]
fn hostfile_conf_file_and_option_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(["run", "-R", "exec"]).args(args);
        output(c)
    };
    // --hostfile: node sets separated by blanks and lines, # comments.
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "n[1-2] m1  # the first ones\n\nn3\n").unwrap();
    let h = hosts.to_str().unwrap();
    let o = run(&["--hostfile", h, "-w", "x1", "-b", "echo ok"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "---------------\nm1,n[1-3],x1 (5)\n---------------\nok\n",
        "{}",
        show(&o)
    );
    std::fs::write(&hosts, "n[1-2]\nn[3-\n").unwrap();
    let o = run(&["--hostfile", h, "echo ok"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("--hostfile {h}:2:")),
        "{}",
        show(&o)
    );
    // --conf: [Main] keys, flags win over them, -O wins over flags.
    let conf = dir.path().join("clush.conf");
    std::fs::write(
        &conf,
        "[Main]\nnode_count: no\nmaxrc = yes\n; comment\n[mode:x]\nssh_path: nope\n",
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    let o = run(&["--conf", c, "-w", "n[1-2]", "-b", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let o = run(&["--conf", c, "-w", "n[1-2]", "-b", "echo ok"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "---------------\nn[1-2]\n---------------\nok\n"
    );
    let o = run(&["--conf", c, "-O", "maxrc=no", "-S", "-w", "n1", "exit 3"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    std::fs::write(&conf, "[Main]\nfanout: 4\nssh_path: /usr/bin/other-ssh\n").unwrap();
    let o = run(&["--conf", c, "-w", "n1", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{c}:3: unknown or unsupported clush.conf key 'ssh_path'"
        )),
        "{err}"
    );
    // -O: unknown keys and bad values are refused, nothing runs.
    let o = run(&["-O", "bogus=1", "-w", "n1", "echo ran"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(o.stdout.is_empty());
    let o = run(&["-O", "maxrc=maybe", "-w", "n1", "echo ran"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let o = run(&["-O", "command_prefix=echo", "-w", "n1", "hello"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n1: hello\n");
}
