//! The one skip policy of the workspace's tests.
//!
//! A test that needs something this machine may lack (root for network
//! namespaces and systemd-nspawn, a tool that `scripts/install-deps`
//! installs, the Puppet server...) asks here first. Locally, when the need
//! is not met, it prints `SKIPPED: <test>: <reason>` on stderr and the test
//! returns; under CI (`CI` set to anything but empty, `0` or `false`, as
//! CI systems set `CI=true`) it panics with the reason instead: a test that
//! cannot run there is a failure, never a silent pass.
//!
//! ```no_run
//! use swh_deploy_testbed::skip;
//! if !skip::need_root("network namespaces, systemd-nspawn") {
//!     return;
//! }
//! ```

use std::path::Path;

/// True when the tests run under CI: `CI` is set and is neither empty,
/// `0` nor `false`.
pub fn under_ci() -> bool {
    ci_value(std::env::var_os("CI").as_deref().and_then(|v| v.to_str()))
}

fn ci_value(v: Option<&str>) -> bool {
    match v {
        None => false,
        Some(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"),
    }
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The current test's name (its thread's name under libtest and nextest).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

/// Skips the calling test because of `reason`: under CI, panics with it;
/// otherwise prints `SKIPPED: <test>: <reason>` on stderr. The caller
/// returns right after.
#[track_caller]
pub fn skip(reason: &str) {
    let msg = format!("{}: {reason}", test_name());
    if under_ci() {
        panic!("cannot run under CI: {msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

/// `ok` when the need is met; otherwise [`skip`]s with `reason` and returns
/// false (panics under CI).
#[track_caller]
pub fn need(ok: bool, reason: &str) -> bool {
    if !ok {
        skip(reason);
    }
    ok
}

/// True when running as root; otherwise skips (panics under CI) saying
/// what root is needed for (`why`, e.g. "network namespaces,
/// systemd-nspawn").
#[track_caller]
pub fn need_root(why: &str) -> bool {
    need(is_root(), &format!("needs root ({why})"))
}

/// True when root and Debian's puppetserver (scripts/install-deps) are
/// there: what the tests against the test bed's Puppet server need.
#[track_caller]
pub fn need_root_and_puppetserver() -> bool {
    need_root("network namespaces, systemd-nspawn")
        && need(
            Path::new("/usr/share/puppetserver/puppetserver.jar").exists(),
            "needs Debian's puppetserver (scripts/install-deps installs it)",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_any_value_but_empty_0_or_false() {
        assert!(!ci_value(None));
        for v in ["", "0", "false", "FALSE", " false "] {
            assert!(!ci_value(Some(v)), "{v:?}");
        }
        for v in ["true", "1", "yes", "TRUE"] {
            assert!(ci_value(Some(v)), "{v:?}");
        }
    }

    #[test]
    fn need_met_returns_true_and_never_panics() {
        assert!(need(true, "unused"));
    }

    #[test]
    fn a_skip_panics_under_ci_and_says_why() {
        // A child process of this very test binary, with CI set and unset:
        // the environment of this process is left alone.
        let exe = std::env::current_exe().unwrap();
        let run = |ci: Option<&str>| {
            let mut c = std::process::Command::new(&exe);
            c.args([
                "--exact",
                "skip::tests::child_skips",
                "--ignored",
                "--nocapture",
            ]);
            c.env("SWH_DEPLOY_SKIP_CHILD", "1");
            match ci {
                Some(v) => c.env("CI", v),
                None => c.env_remove("CI"),
            };
            c.output().unwrap()
        };
        let out = run(Some("true"));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("cannot run under CI: skip::tests::child_skips: needs a unicorn"),
            "{err}"
        );
        let out = run(None);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("SKIPPED: skip::tests::child_skips: needs a unicorn"),
            "{err}"
        );
    }

    #[test]
    #[ignore = "child process of a_skip_panics_under_ci_and_says_why"]
    fn child_skips() {
        if std::env::var_os("SWH_DEPLOY_SKIP_CHILD").is_none() {
            return;
        }
        assert!(!need(false, "needs a unicorn"));
    }
}
