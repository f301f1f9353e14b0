//! cgroups: one per container in each hierarchy, removed at `down`.

use crate::util;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cgroup hierarchies to give each container its own cgroup in.
pub(super) fn cgroup_roots() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        // Pure cgroup v2.
        out.push(base.to_path_buf());
        return out;
    }
    if let Ok(rd) = fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path();
            if p.join("cgroup.procs").exists()
                && !fs::symlink_metadata(&p)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(true)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Removes a cgroup directory tree (children first); cgroupfs only allows
/// rmdir of empty groups.
pub(super) fn remove_cgroup(cg: &Path) {
    if let Ok(rd) = fs::read_dir(cg) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = util::wait_for(Duration::from_secs(3), Duration::from_millis(50), || {
        (fs::remove_dir(cg).is_ok() || !cg.exists()).then_some(())
    });
}

/// Moves itself into the cgroups given as arguments, then execs the rest:
/// `sh -c CGROUP_EXEC sh N CG1..CGN PROGRAM ARGS...`.
pub(super) const CGROUP_EXEC: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs"; shift; n=$((n-1)); done
exec "$@"
"#;
