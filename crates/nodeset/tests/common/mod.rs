//! Shared helpers of the differential tests: finding ClusterShell in the
//! project's venv, a seeded random generator, and a group configuration
//! (YAML sources and an upcall source) written to a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv holding ClusterShell: `$SWH_DEPLOY_VENV`, else `<repo>/.venv`.
pub fn venv() -> PathBuf {
    match std::env::var_os("SWH_DEPLOY_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
    }
}

/// The venv's python when ClusterShell is importable. When it is not: fails
/// under CI (`CI=true`), otherwise prints why the test is skipped.
pub fn clustershell_python() -> Option<PathBuf> {
    let python = venv().join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import ClusterShell.NodeSet"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(python);
    }
    let msg = format!(
        "ClusterShell is not importable with {} (run scripts/install-deps or set SWH_DEPLOY_VENV)",
        python.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Writes a ClusterShell configuration into `dir` and returns the path of
/// its `groups.conf`: default source `site` (YAML), source `other` (YAML,
/// in a second file), source `up` (upcalls over a text file, in
/// `groups.conf.d`).
pub fn write_group_config(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("groups.d")).unwrap();
    std::fs::create_dir_all(dir.join("groups.conf.d")).unwrap();
    std::fs::write(
        dir.join("groups.conf"),
        "[Main]\n\
         default: site\n\
         confdir: $CFGDIR/groups.conf.d\n\
         autodir: $CFGDIR/groups.d\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("groups.conf.d/up.conf"),
        "[up]\n\
         map: sed -n 's/^$GROUP:\\(.*\\)/\\1/p' up.txt\n\
         all: sed -n 's/^all:\\(.*\\)/\\1/p' up.txt\n\
         list: sed -n 's/^\\([0-9A-Za-z_-]*\\):.*/\\1/p' up.txt\n\
         reverse: echo $NODE | sed -n 's/^node[1-4]$/ga/p'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("groups.conf.d/up.txt"),
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
         \x20 mixed: '@compute!@rack2'\n\
         \x20 cross: '@other:db,saam'\n\
         \x20 spaced: 'node1 node2\n    node3'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("groups.d/zother.yaml"),
        "other:\n\
         \x20 db: 'db[01-04]'\n\
         \x20 web: 'web[1-3]'\n\
         \x20 dc[1-2]: 'x[1-2]'\n",
    )
    .unwrap();
    dir.join("groups.conf")
}
