//! The engine driven through the exec transport: real local processes, no
//! network.

use std::time::{Duration, Instant};
use swh_deploy_fleet::{
    run, CancelToken, ExecTransport, HostResult, NoObserver, Observer, RunOptions, RunReport,
    Status, Stream,
};

fn hosts(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("node{i}")).collect()
}

fn exec(hosts: &[String], cmd: &str, options: &RunOptions) -> RunReport {
    run(
        &ExecTransport::new(),
        hosts,
        cmd,
        options,
        &mut NoObserver,
        &CancelToken::new(),
    )
    .unwrap()
}

#[test]
fn results_come_back_in_target_order_with_rc_and_streams() {
    let h = hosts(5);
    let r = exec(
        &h,
        "echo out %h; echo err %n >&2; exit %n",
        &RunOptions::default(),
    );
    assert_eq!(r.results.len(), 5);
    for (i, res) in r.results.iter().enumerate() {
        assert_eq!(res.host, h[i]);
        assert_eq!(res.status, Status::Exited(i as i32));
        assert_eq!(res.stdout, format!("out {}\n", h[i]).into_bytes());
        assert_eq!(res.stderr, format!("err {i}\n").into_bytes());
    }
    assert_eq!(r.max_rc_status(), 4);
    assert_eq!(r.failed().count(), 4);
}

#[derive(Default)]
struct Window {
    running: usize,
    max: usize,
    lines: Vec<(String, Stream, Vec<u8>)>,
    finished: usize,
}

impl Observer for Window {
    fn started(&mut self, _: usize, _: &str) {
        self.running += 1;
        self.max = self.max.max(self.running);
    }
    fn line(&mut self, _: usize, host: &str, stream: Stream, line: &[u8]) {
        self.lines.push((host.to_string(), stream, line.to_vec()));
    }
    fn finished(&mut self, _: &HostResult) {
        self.running -= 1;
        self.finished += 1;
    }
}

#[test]
fn the_window_never_exceeds_the_fanout_and_lines_stream_live() {
    let h = hosts(12);
    let mut w = Window::default();
    let opts = RunOptions {
        fanout: 3,
        ..RunOptions::default()
    };
    let r = run(
        &ExecTransport::new(),
        &h,
        "echo a; sleep 0.05; printf 'b\\r\\nc'",
        &opts,
        &mut w,
        &CancelToken::new(),
    )
    .unwrap();
    assert!(r.all_succeeded());
    assert_eq!(w.max, 3);
    assert_eq!(w.finished, 12);
    let node1: Vec<&[u8]> = w
        .lines
        .iter()
        .filter(|(host, s, _)| host == "node1" && *s == Stream::Stdout)
        .map(|(_, _, l)| l.as_slice())
        .collect();
    assert_eq!(node1, vec![&b"a"[..], b"b", b"c"]);
}

#[test]
fn command_timeout_kills_the_whole_process_group() {
    let h = hosts(3);
    let opts = RunOptions {
        command_timeout: Some(Duration::from_millis(500)),
        ..RunOptions::default()
    };
    let t = Instant::now();
    // node1 finishes; the others start a grandchild that would hold the
    // pipes open for 30 s if only the shell were killed.
    let r = exec(
        &h,
        "echo started; [ %n = 0 ] && exit 0; sleep 30 & wait",
        &opts,
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(r.results[0].status, Status::Exited(0));
    assert_eq!(r.results[1].status, Status::TimedOut);
    assert_eq!(r.results[1].stdout, b"started\n");
    assert!(r.results[2].timed_out());
    assert_eq!(r.max_rc_status(), 255);
    assert_eq!(r.results[1].display_rc(), None);
}

#[test]
fn cancel_stops_launching_and_kills_running_commands() {
    let h = hosts(10);
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        c2.cancel();
    });
    let opts = RunOptions {
        fanout: 2,
        ..RunOptions::default()
    };
    let t = Instant::now();
    let r = run(
        &ExecTransport::new(),
        &h,
        "[ %n = 0 ] && exit 0; sleep 30",
        &opts,
        &mut NoObserver,
        &cancel,
    )
    .unwrap();
    killer.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(r.cancelled);
    assert_eq!(r.results[0].status, Status::Exited(0));
    assert_eq!(r.results[1].status, Status::Cancelled { started: true });
    assert_eq!(r.results[2].status, Status::Cancelled { started: true });
    assert_eq!(r.results[9].status, Status::Cancelled { started: false });
    assert_eq!(r.incomplete().count(), 9);
}

#[test]
fn merged_stderr_keeps_the_order_the_host_wrote() {
    let h = hosts(1);
    let opts = RunOptions {
        merge_stderr: true,
        ..RunOptions::default()
    };
    let r = exec(&h, "echo 1; echo 2 >&2; echo 3", &opts);
    assert_eq!(r.results[0].stdout, b"1\n2\n3\n");
    assert!(r.results[0].stderr.is_empty());
}

#[test]
fn killed_by_a_signal_is_128_plus_signal() {
    let r = exec(&hosts(1), "kill -9 $$", &RunOptions::default());
    assert_eq!(r.results[0].status, Status::Exited(137));
}

#[test]
fn hosts_placeholder_runs_once_for_all() {
    let h = hosts(3);
    let opts = RunOptions {
        hosts_label: Some("node[1-3]".into()),
        ..RunOptions::default()
    };
    let count = std::env::temp_dir().join(format!("fleet-hosts-{}", std::process::id()));
    let _ = std::fs::remove_file(&count);
    let cmd = format!("echo %hosts; echo x >> {}", count.display());
    let r = exec(&h, &cmd, &opts);
    for res in &r.results {
        assert_eq!(res.stdout, b"node[1-3]\n");
        assert!(res.success());
    }
    assert_eq!(std::fs::read(&count).unwrap(), b"x\n");
    std::fs::remove_file(&count).unwrap();
}

#[test]
fn a_bad_pattern_fails_every_host_without_running_anything() {
    let r = exec(&hosts(2), "echo 100% sure", &RunOptions::default());
    for res in &r.results {
        assert!(
            matches!(res.status, Status::LaunchFailed(_)),
            "{:?}",
            res.status
        );
        assert!(String::from_utf8_lossy(&res.stderr).contains("use '%%'"));
    }
    assert_eq!(r.max_rc_status(), 255);
}

#[test]
fn json_line_has_the_documented_fields() {
    let r = exec(&hosts(1), "printf 'a\\n'; exit 3", &RunOptions::default());
    let v: serde_json::Value = serde_json::from_str(&r.results[0].to_json()).unwrap();
    assert_eq!(v["host"], "node1");
    assert_eq!(v["rc"], 3);
    assert_eq!(v["stdout"], "a\n");
    assert_eq!(v["unreachable"], false);
    assert_eq!(v["timed_out"], false);
    assert!(v["duration"].as_f64().unwrap() >= 0.0);
}

/// A simple command runs without `sh` in between (its parent is the engine's
/// process); anything with shell syntax or a shell built-in still goes
/// through `sh -c`, with the same results.
#[test]
fn simple_commands_run_without_a_shell() {
    let h = hosts(3);
    // `cat /proc/self/stat`: field 4 is the parent pid of `cat`.
    let parent_of_cat = |out: &[u8]| -> i32 {
        let text = String::from_utf8_lossy(out);
        let after = &text[text.rfind(')').unwrap() + 2..];
        after.split(' ').nth(1).unwrap().parse().unwrap()
    };
    let me = std::process::id() as i32;
    let direct = exec(&h, "cat /proc/self/stat", &RunOptions::default());
    for r in &direct.results {
        assert_eq!(r.status, Status::Exited(0));
        assert_eq!(parent_of_cat(&r.stdout), me, "cat should be our child");
    }
    // The same with shell syntax: the parent is the shell.
    let via_sh = exec(&h, "cat /proc/self/stat | cat", &RunOptions::default());
    for r in &via_sh.results {
        assert_ne!(parent_of_cat(&r.stdout), me, "a pipeline goes through sh");
    }
    // Built-ins keep the shell's behaviour (dash's echo prints "-e").
    let echo = exec(&h, "echo -e x", &RunOptions::default());
    let sh = std::process::Command::new("/bin/sh")
        .args(["-c", "echo -e x"])
        .output()
        .unwrap();
    for r in &echo.results {
        assert_eq!(r.stdout, sh.stdout);
    }
    // A program that is not in PATH: the shell's own message and 127.
    let missing = exec(&h, "no-such-program-here x", &RunOptions::default());
    for r in &missing.results {
        assert_eq!(r.status, Status::Exited(127));
        assert!(String::from_utf8_lossy(&r.stderr).contains("not found"));
    }
    // %h substitution still applies on the direct path.
    let subst = exec(&h, "basename /x/%h", &RunOptions::default());
    for (i, r) in subst.results.iter().enumerate() {
        assert_eq!(r.stdout, format!("{}\n", h[i]).into_bytes());
    }
}
