//! `swh-deploy nodeset` against ClusterShell's `nodeset`, process against
//! process: same arguments, same standard input, same group configuration
//! (YAML sources, an upcall source); standard output and exit status must
//! be identical, and so must the first line of standard error (program name
//! aside).

mod common;

use common::{skip, venv};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// ClusterShell's `nodeset`, or `None` (skip) when it is not installed
/// outside CI; under CI a missing ClusterShell is a failure (`common::skip`).
fn clustershell_nodeset() -> Option<PathBuf> {
    let bin = venv().join("bin/nodeset");
    if bin.exists() {
        return Some(bin);
    }
    skip::skip(&format!(
        "ClusterShell's nodeset not found at {} (run scripts/install-deps)",
        bin.display()
    ));
    None
}

fn write_config(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("groups.d")).unwrap();
    std::fs::write(
        dir.join("groups.conf"),
        "[Main]\n\
         default: site\n\
         autodir: $CFGDIR/groups.d\n\
         \n\
         [up]\n\
         map: sed -n 's/^$GROUP:\\(.*\\)/\\1/p' up.txt\n\
         all: sed -n 's/^all:\\(.*\\)/\\1/p' up.txt\n\
         list: sed -n 's/^\\([0-9A-Za-z_-]*\\):.*/\\1/p' up.txt\n\
         reverse: echo $NODE | sed -n 's/^node[1-4]$/ga/p'\n\
         \n\
         [nolist]\n\
         map: echo x1\n\
         \n\
         [ma]\n\
         mapall: printf 'ga: m[1-3]\\ngb: m[4-5]\\nga: m9\\n'\n\
         \n\
         [mabad]\n\
         mapall: echo oops\n\
         \n\
         [mamap]\n\
         mapall: echo 'ga: m1'\n\
         map: echo m$GROUP\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("up.txt"),
        "ga: node[1-4]\ngb: node[3-6],@site:gpu\nall: node[1-8]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("groups.d/site.yaml"),
        "site:\n\
         \x20 compute: 'node[1-16]'\n\
         \x20 gpu: 'node[9-12],gpu[1-4]'\n\
         \x20 login: [login1, login2]\n\
         \x20 all: 'node[1-16],gpu[1-4],login[1-2],saam'\n\
         \x20 empty:\n\
         \x20 rack1: 'node[1-8]'\n\
         \x20 rack2: 'node[9-16]'\n\
         other:\n\
         \x20 db: 'db[01-04]'\n\
         \x20 web: 'web[1-3]'\n",
    )
    .unwrap();
    dir.join("groups.conf")
}

struct Outcome {
    status: i32,
    stdout: String,
    first_err: String,
}

fn run(program: &Path, pre: &[&str], args: &[&str], stdin: &str, home: &Path) -> Outcome {
    let mut child = Command::new(program)
        .args(pre)
        .args(args)
        .env("HOME", home)
        .env_remove("CLUSTERSHELL_CFGDIR")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    let out = child.wait_with_output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or("").to_string();
    // Drop the program name ("nodeset: " / "swh-deploy nodeset: ").
    let first = match first.split_once("nodeset: ") {
        Some((_, rest)) => rest.to_string(),
        None => first,
    };
    Outcome {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        first_err: first,
    }
}

#[test]
fn cli_matches_clustershell_nodeset() {
    let Some(cs) = clustershell_nodeset() else {
        return;
    };
    let ours = PathBuf::from(common::bin());
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path());
    let conf_s = conf.to_string_lossy().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["-f", "node[1-5],saam"], ""),
        (&["-e", "n[1-3],x[1-2]y[1-2]"], ""),
        (&["-c", "n[1-3],x"], ""),
        (&["-e", "-S", "\\n", "n[1-3]"], ""),
        (&["-e", "-S", ",", "n[01-03]"], ""),
        (&["-f"], "n1 n2\nn3 # n4 is a comment\nn5 n[7-8]\n"),
        (&["-f"], "n1\nn2"),
        (&["-c"], "a b c\n\n"),
        (&["-e"], ""),
        (&["-f"], "n[1-"),
        (
            &[
                "-f", "n[1-10]", "-x", "n[2-3]", "-i", "n[1-8]", "-X", "n[8-12]",
            ],
            "",
        ),
        (&["-f", "-x", "n2", "n[1-3]"], ""),
        (&["-f", "-i", "-", "n[1-5]"], "n2 n9\n"),
        (&["-f", "n[1-5]", "-x", "-"], "n3\n"),
        (&["-f", "n[1-3]", "-"], "m1 m2\n"),
        (&["-f", "-x", "n1"], ""),
        (&["-f", "a\nb[1-2]"], ""),
        (&["-l"], ""),
        (&["-ll"], ""),
        (&["-lll"], ""),
        (&["-l", "-s", "other"], ""),
        (&["-ll", "-s", "up"], ""),
        (&["-lll", "-G", "-s", "other"], ""),
        (&["-l", "node[1-4]"], ""),
        (&["-ll", "node[1-10]"], ""),
        (&["-lll", "-s", "other", "db[01-02]"], ""),
        (&["-L"], ""),
        (&["-LL"], ""),
        (&["-l", "-s", "nolist"], ""),
        (&["-r", "node[1-16],gpu[1-4]"], ""),
        (&["-r", "node[1-12],saam,login[1-2]"], ""),
        (&["-r", "-s", "other", "db[01-04],web[1-3]"], ""),
        (&["-r", "-G", "-s", "other", "db[01-04],web1"], ""),
        (&["-r", "-s", "up", "node[1-4]"], ""),
        (&["-r", "nothing[1-3]"], ""),
        (&["-a", "-f"], ""),
        (&["-a", "-c", "-s", "other"], ""),
        (&["-a", "-f", "-s", "up"], ""),
        (&["-f", "@compute!@rack2"], ""),
        (&["-e", "@@site"], ""),
        (&["-f", "node1*,@other:*"], ""),
        (&["-f", "@up:gb&@gpu"], ""),
        (&["-I", "0-2", "-f", "n[1-10]"], ""),
        (&["-I", "3,5-6", "-e", "n[1-10],m1"], ""),
        (&["-I", "0", "-f", "x[1-2]y[1-3]"], ""),
        (&["--axis", "1", "-f", "x[1-2]y[1-3]"], ""),
        (&["--axis", "2", "-f", "x[1-2]y[1-3],n[1-3]"], ""),
        (&["--axis", "-1", "-f", "x[1-2]y[1-3]"], ""),
        (&["--groupsources"], ""),
        (&["--groupsources", "-q"], ""),
        (&["-f", "n[5-3]"], ""),
        (&["-f", "n[1-2]]"], ""),
        (&["-f", "@nosuch:x"], ""),
        (&["-s", "nosuch", "-f", "a"], ""),
        (&["-f", "-c", "a"], ""),
        (&[], ""),
        (&["-e", "--axis", "1", "a"], ""),
        (&["-ll", "-s", "ma"], ""),
        (&["-f", "@ma:ga,@ma:nosuch"], ""),
        (&["-r", "-s", "ma", "m[1-5]"], ""),
        (&["-l", "-s", "mabad"], ""),
        (&["-f", "@mabad:x"], ""),
        (&["-f", "@mamap:ga,@mamap:7"], ""),
        (&["-ll", "-s", "mamap"], ""),
        (&["-l", "-s", "nolist"], ""),
    ];
    let mut failures = Vec::new();
    for (args, stdin) in cases {
        let theirs = run(&cs, &["--groupsconf", &conf_s], args, stdin, dir.path());
        let mine = run(
            &ours,
            &["nodeset", "--groupsconf", &conf_s],
            args,
            stdin,
            dir.path(),
        );
        let usage_error = theirs.status == 2;
        let same = theirs.status == mine.status
            && (usage_error
                || (theirs.stdout == mine.stdout && theirs.first_err == mine.first_err));
        if !same {
            failures.push(format!(
                "args {args:?} stdin {stdin:?}\n  clustershell: {} {:?} {:?}\n  ours:         {} {:?} {:?}",
                theirs.status, theirs.stdout, theirs.first_err, mine.status, mine.stdout, mine.first_err
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_errors_point_at_the_position() {
    let ours = PathBuf::from(common::bin());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&ours)
        .args(["nodeset", "-f", "ok[1-2],n[5-3]"])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // Not a terminal: ClusterShell's one line, nothing more.
    assert_eq!(
        err,
        "swh-deploy nodeset: Parse error: bad range: \"invalid values in range : \"5-3\"\"\n"
    );
    // On a terminal (script(1) gives a pty), a caret under the fault.
    let cmd = format!("{} nodeset -f 'ok[1-2],n[5-3]'", ours.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(err.contains("  ok[1-2],n[5-3]\n"), "{err}");
    assert!(err.contains("            ^ (column 11)"), "{err}");
}

/// ClusterShell 1.10.1's own `tests/CLINodesetTest.py` and
/// `NodeSetGroupTest.py`, unchanged, with the in-process CLI call (and, for
/// the second, the Python objects of group resolution) replaced by
/// `swh-deploy nodeset` as a subprocess (crates/cli/tests/peer/), and
/// `NodeSetTest.py` / `RangeSetTest.py` / `RangeSetNDTest.py` replayed
/// through set stand-ins running `swh-deploy nodeset`. No test may fail;
/// tests of the Python object API only are skipped with their reason. The adapter's summary lines (`peer SUITE: N passed, ...`) are
/// printed in the test output.
#[test]
fn clustershell_peer_suite_cli_nodeset() {
    let python = venv().join("bin/python");
    let tests = venv().join("peer/clustershell-1.10.1/tests");
    if !skip::need(
        python.exists() && tests.join("CLINodesetTest.py").exists(),
        &format!(
            "ClusterShell's test suite not found at {} (python {}; run scripts/install-deps)",
            tests.display(),
            python.display()
        ),
    ) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/nodeset_peer.py");
    let out = Command::new(&python)
        .arg(&script)
        .env("SWH_DEPLOY", common::bin())
        .env("CS_PEER_TESTS", &tests)
        .stdin(Stdio::null())
        .output()
        .expect("run the peer suite adapter");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    for suite in [
        "CLINodesetTest.py",
        "NodeSetGroupTest.py",
        "NodeSetTest.py (replay)",
        "RangeSetTest.py (replay)",
        "RangeSetNDTest.py (replay)",
    ] {
        let summary = stdout
            .lines()
            .find(|l| l.starts_with(&format!("peer {suite}:")))
            .expect("the adapter prints one summary line per suite");
        assert!(
            out.status.success() && summary.contains(" 0 failed"),
            "ClusterShell's {suite} fails against swh-deploy nodeset: {summary}"
        );
    }
}

/// Runs `program pre args` and returns (status, stdout, stderr) with the
/// program name normalised to `nodeset`.
fn run_full(program: &Path, pre: &[&str], args: &[&str], home: &Path) -> (i32, String, String) {
    let out = Command::new(program)
        .args(pre)
        .args(args)
        .env("HOME", home)
        .env_remove("CLUSTERSHELL_CFGDIR")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).replace("swh-deploy nodeset", "nodeset"),
    )
}

/// Options are parsed as ClusterShell's optparse does: unknown options are
/// refused (exit 2, same usage line and message), values attach to short
/// options, long options abbreviate, `--` ends the options; type errors of
/// option values and of `-O` formats give ClusterShell's messages.
#[test]
fn option_parsing_matches_clustershell_optparse() {
    let Some(cs) = clustershell_nodeset() else {
        return;
    };
    let ours = PathBuf::from(common::bin());
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path());
    let conf_s = conf.to_string_lossy().to_string();
    let cases: &[&[&str]] = &[
        &["-f", "--bogus", "foo"],
        &["-c", "--pick", "1", "foo[1-100]"],
        &["-c", "-a", "-d"],
        &["-c", "-a", "-q"],
        &["-I0", "-f", "n[1-5]"],
        &["-S:", "-e", "n[1-3]"],
        &["-eS:", "n[1-3]"],
        &["-eS", ":", "n[1-3]"],
        &["--fo", "n1", "n2"],
        &["--ex", "-", "n[1-3]"],
        &["--l"],
        &["--list-s"],
        &["-f", "--", "n1", "n2"],
        &["--", "-f", "a"],
        &["-f", "a", "-c"],
        &["--count=3", "a"],
        &["--index"],
        &["-c", "-I"],
        &["-cz", "a"],
        &["--split=x", "-f", "a"],
        &["--split=0x2", "-f", "a[1-4]"],
        &["--autostep=x", "-f", "a"],
        &["--autostep=5%", "-f", "a[1-9/2]"],
        &["-s", "", "-f", "a"],
        &["--groupsource=-x", "-f", "a"],
        &["-O", "%d", "-e", "a"],
        &["-O", "x", "-c", "a"],
        &["-O", "%s%s", "-f", "a"],
        &["-O", "%05d", "-c", "a[1-3]"],
        &["-O", "%", "-c", "a"],
        &["-O", "%y", "-c", "a"],
        &["--pick=-1", "-c", "a[1-3]"],
        &["--pick=0", "-c", "a[1-3]"],
        &["-S", "'''", "-e", "a", "b"],
        &["-S", "\\", "-e", "a", "b"],
        &["-S", "", "-e", "a", "b"],
        &["-R", "-a", "-c"],
        &["-R", "-s", "site", "-c", "1-3"],
        &["--split=2", "--contiguous", "-f", "a"],
        &["--index", "a1", "--pick", "1", "a[1-3]"],
        &["--index", "a[1-2]", "a[1-3]"],
        &["--index", "a7", "a[1-3]"],
        &["-R", "--index", "7", "1-3"],
        &["--completion", "-s", "site"],
        &["-R", "-f", "1-3", "-x", "2", "-X", "5"],
        &["-R", "-f", "3-1"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        let theirs = run_full(&cs, &["--groupsconf", &conf_s], args, dir.path());
        let mine = run_full(
            &ours,
            &["nodeset", "--groupsconf", &conf_s],
            args,
            dir.path(),
        );
        // `--pick` is random: only the count is compared (it is the output).
        if theirs != mine {
            failures.push(format!(
                "args {args:?}\n  clustershell: {theirs:?}\n  ours:         {mine:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // --version: ClusterShell's release is named; --help lists every long
    // option ClusterShell's help lists.
    let (status, out, _) = run_full(&ours, &["nodeset"], &["--version"], dir.path());
    assert_eq!(status, 0);
    assert!(out.contains("ClusterShell 1.10.1"), "{out}");
    let (_, theirs_help, _) = run_full(&cs, &[], &["--help"], dir.path());
    let (status, help, _) = run_full(&ours, &["nodeset"], &["--help"], dir.path());
    assert_eq!(status, 0);
    for word in theirs_help.split(|c: char| c.is_whitespace() || c == ',' || c == '=') {
        if word.starts_with("--") && word.len() > 2 {
            assert!(help.contains(word), "--help does not list {word}:\n{help}");
        }
    }
}

/// Huge node sets are counted, folded, combined, sliced and indexed as
/// ranges, under a 1 GiB address-space limit (a billion indexes would take
/// 16 GB expanded); what must expand past a limit stops with a clear error
/// and exit 1, never an abort.
#[test]
fn huge_node_sets_work_on_ranges_under_a_memory_limit() {
    let ours = PathBuf::from(common::bin());
    let cases: &[(&[&str], i32, &str)] = &[
        (&["-c", "x[1-999999999]"], 0, "999999999\n"),
        (
            &["-f", "x[1-999999999]", "-x", "x[500-600]"],
            0,
            "x[1-499,601-999999999]\n",
        ),
        (
            &["-c", "x[1-999999999]", "-i", "x[999999990-1000000010]"],
            0,
            "10\n",
        ),
        (&["-f", "x[1-999999999]", "-X", "x[2-999999999]"], 0, "x1\n"),
        (&["-c", "x[1-999999999]y[1-2],x1y3"], 0, "1999999999\n"),
        (
            &["-I", "5-7,999999990", "-f", "x[1-999999999]"],
            0,
            "x[6-8,999999991]\n",
        ),
        (
            &["--index", "x999999999", "x[1-999999999]"],
            0,
            "999999998\n",
        ),
        (
            &["--split", "2", "-f", "x[1-999999999]"],
            0,
            "x[1-500000000]\nx[500000001-999999999]\n",
        ),
        (
            &["--autostep", "3", "-f", "x[1-999999999]"],
            0,
            "x[1-999999999]\n",
        ),
        (&["--pick", "3", "-c", "x[1-999999999]"], 0, "3\n"),
        (
            &["-f", "n[99999999999999999998-100000000000000000001]"],
            0,
            "n[99999999999999999998-100000000000000000001]\n",
        ),
        (&["-c", "x[1-999999999/2]"], 1, ""),
        (&["-O", "%s-ib", "-f", "x[1-999999999]"], 1, ""),
    ];
    let mut failures = Vec::new();
    for (args, status, stdout) in cases {
        let out = Command::new("prlimit")
            .arg("--as=1073741824")
            .arg(&ours)
            .arg("nodeset")
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .expect("prlimit runs");
        let err = String::from_utf8_lossy(&out.stderr);
        let ok = out.status.code() == Some(*status)
            && String::from_utf8_lossy(&out.stdout) == *stdout
            && (*status == 0 || err.lines().count() == 1 && !err.contains("memory allocation"));
        if !ok {
            failures.push(format!(
                "{args:?}: {:?} {:?} {err:?}",
                out.status, out.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// YAML group files are read like PyYAML's safe loader (as ClusterShell
/// reads them): a tag naming a Python object, or any non-standard tag, is
/// refused with an error naming the file; standard tags (`!!str`) are fine.
#[test]
fn yaml_group_files_refuse_unsafe_tags() {
    let ours = PathBuf::from(common::bin());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("g")).unwrap();
    let conf = dir.path().join("groups.conf");
    std::fs::write(
        &conf,
        format!(
            "[Main]\ndefault: yaml\nautodir: {}\n",
            dir.path().join("g").display()
        ),
    )
    .unwrap();
    let yaml = dir.path().join("g/site.yaml");
    let conf_s = conf.to_string_lossy().to_string();
    for (body, tag) in [
        (
            "yaml:\n  foo: !!python/object/new:os.system [echo EXPLOIT]\n  bar: n[1-2]\n",
            "tag:yaml.org,2002:python/object/new:os.system",
        ),
        ("yaml:\n  foo: !custom n[1-2]\n", "!custom"),
        ("yaml: !!python/name:os.system\n", "python/name:os.system"),
    ] {
        std::fs::write(&yaml, body).unwrap();
        let (status, stdout, stderr) = run_full(
            &ours,
            &["nodeset", "--groupsconf", &conf_s],
            &["-l"],
            dir.path(),
        );
        assert_eq!(status, 1, "{body}: {stderr}");
        assert_eq!(stdout, "");
        assert!(
            stderr.contains(&*yaml.to_string_lossy()) && stderr.contains(tag),
            "{body}: {stderr}"
        );
    }
    std::fs::write(&yaml, "yaml:\n  foo: !!str n[1-2]\n").unwrap();
    let (status, stdout, _) = run_full(
        &ours,
        &["nodeset", "--groupsconf", &conf_s],
        &["-ll"],
        dir.path(),
    );
    assert_eq!((status, stdout.as_str()), (0, "@foo n[1-2]\n"));
}

/// Node names that are not UTF-8 (on standard input or in arguments) pass
/// through as the same bytes, as ClusterShell's surrogate escapes do.
#[test]
fn invalid_utf8_passes_through_as_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let Some(cs) = clustershell_nodeset() else {
        return;
    };
    let ours = PathBuf::from(common::bin());
    let dir = tempfile::tempdir().unwrap();
    let stdin: &[u8] = b"n\xff1 n\xff2 ok1\nn\xfe7 # c\xff\n";
    let raw = |args: &[&[u8]], prog: &Path, pre: &[&str]| {
        let mut child = Command::new(prog)
            .args(pre)
            .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
            .env("HOME", dir.path())
            .env("LANG", "C.UTF-8")
            .env_remove("CLUSTERSHELL_CFGDIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), out.stdout)
    };
    for args in [
        &[&b"-f"[..]][..],
        &[b"-e"],
        &[b"-c"],
        &[b"-f", b"-", b"x\xc3(1", b"x\xc3(2"],
        &[b"-e", b"-S", b":", b"n\xff[3-4]"],
    ] {
        let theirs = raw(args, &cs, &[]);
        let mine = raw(args, &ours, &["nodeset"]);
        assert_eq!(mine, theirs, "{args:?}");
    }
}
