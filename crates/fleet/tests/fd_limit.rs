//! The fan-out against the open-file limit: the soft `RLIMIT_NOFILE` is
//! raised as far as the hosts in flight need, and a fan-out the hard limit
//! cannot hold is refused before anything starts. Each test lowers its own
//! process's limits (nextest runs each test in a process of its own; this
//! file holds one test so that `cargo test` does too).

use swh_deploy_fleet::transport::ExecTransport;
use swh_deploy_fleet::{run, CancelToken, NoObserver, RunError, RunOptions, Status};

fn limits() -> (u64, u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
    (l.rlim_cur, l.rlim_max)
}

fn set_limits(soft: u64, hard: u64) {
    let l = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) }, 0);
}

#[test]
fn the_soft_fd_limit_is_raised_for_the_fanout_and_a_fanout_the_hard_one_cannot_hold_is_refused() {
    let (_, hard) = limits();
    assert!(hard >= 1024, "hard limit {hard}: too low for this test");
    let hosts: Vec<String> = (1..=200).map(|i| format!("n{i}")).collect();
    let go = |fanout: usize| {
        run(
            &ExecTransport::new(),
            &hosts,
            "sleep 0.2",
            &RunOptions {
                fanout,
                ..RunOptions::default()
            },
            &mut NoObserver,
            &CancelToken::new(),
        )
    };
    // A soft limit of 64 cannot hold 100 hosts in flight: it is raised
    // (to what they need), and every host runs.
    set_limits(64, 1024);
    let r = go(100).unwrap();
    assert!(
        r.results.iter().all(|h| h.status == Status::Exited(0)),
        "{:?}",
        r.results.iter().find(|h| h.status != Status::Exited(0))
    );
    let (soft, _) = limits();
    assert!((864..=1024).contains(&soft), "soft limit now {soft}");
    // 200 in flight need 1664 > the hard 1024: refused, nothing run.
    match go(200) {
        Err(e @ RunError::FdLimit { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fan-out of 200") && msg.contains("1024") && msg.contains("-f"),
                "{msg}"
            );
        }
        other => panic!("not refused: {:?}", other.map(|r| r.results.len())),
    }
    // The fan-out counts only up to the hosts there are.
    let few: Vec<String> = hosts[..10].to_vec();
    let r = run(
        &ExecTransport::new(),
        &few,
        "true",
        &RunOptions {
            fanout: 100_000,
            ..RunOptions::default()
        },
        &mut NoObserver,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(r.results.len(), 10);
}
