//! The golden root filesystem: a Debian bookworm tree made once per machine
//! with `debootstrap --variant=minbase`, customised, and cached under
//! `/var/cache/swh-deploy-testbed/golden-<hash>`. Every host mounts an
//! overlay over it, so the golden tree itself is never written to.
//!
//! The cache key is a stable hash of every input: suite, mirror, package
//! list, [`CUSTOMISATION_VERSION`] and the content of the asset directory
//! (`testbed/assets/rootfs/`, copied into the tree as is). A build happens
//! in a temporary directory under a lock and is renamed into place, so two
//! tests starting at once build it once, and a half-built tree is never used.

use crate::util::{self, fnv64, Lock};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where golden trees are cached.
pub const CACHE_DIR: &str = "/var/cache/swh-deploy-testbed";

/// The Debian suite of the hosts.
pub const SUITE: &str = "bookworm";

/// Bumped whenever [`customise`]'s effect changes (part of the cache key).
pub const CUSTOMISATION_VERSION: u32 = 1;

/// Packages installed on top of minbase (part of the cache key).
pub const PACKAGES: &[&str] = &[
    "openssh-server",
    "systemd",
    "systemd-sysv",
    "dbus",
    "cron",
    "busybox",
    "curl",
    "ca-certificates",
    "iproute2",
    "procps",
    "python3-minimal",
    "puppet-agent",
];

/// The inputs of a golden tree.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Debian suite (`bookworm`).
    pub suite: String,
    /// Debian mirror URL, from the machine's apt sources.
    pub mirror: String,
    /// Extra packages.
    pub packages: Vec<String>,
    /// Directory copied over the tree (skipped when absent).
    pub assets: PathBuf,
}

impl Spec {
    /// The default spec: bookworm, the machine's Debian mirror, [`PACKAGES`],
    /// assets from `$SWH_DEPLOY_TESTBED_ASSETS/rootfs` or this crate's
    /// `assets/rootfs`.
    pub fn default_for_machine() -> Result<Spec> {
        let assets = match std::env::var_os("SWH_DEPLOY_TESTBED_ASSETS") {
            Some(dir) => PathBuf::from(dir).join("rootfs"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/rootfs"),
        };
        Ok(Spec {
            suite: SUITE.into(),
            mirror: machine_mirror()?,
            packages: PACKAGES.iter().map(|s| s.to_string()).collect(),
            assets,
        })
    }

    /// The stable cache key of the plain debootstrap tree (suite, mirror,
    /// packages).
    pub fn base_key(&self) -> String {
        format!("{:016x}", self.base_hash())
    }

    fn base_hash(&self) -> u64 {
        let mut h = fnv64(b"swh-deploy-testbed golden", 0);
        for part in [&self.suite, &self.mirror] {
            h = fnv64(part.as_bytes(), h);
            h = fnv64(b"\0", h);
        }
        for p in &self.packages {
            h = fnv64(p.as_bytes(), h);
            h = fnv64(b"\0", h);
        }
        h
    }

    /// The stable cache key of this spec (16 hex digits).
    pub fn key(&self) -> Result<String> {
        let mut h = self.base_hash();
        h = fnv64(&CUSTOMISATION_VERSION.to_le_bytes(), h);
        if self.assets.is_dir() {
            let mut files = Vec::new();
            walk(&self.assets, &mut files)?;
            files.sort();
            for f in files {
                let rel = f.strip_prefix(&self.assets).unwrap_or(&f);
                let meta = fs::symlink_metadata(&f)?;
                h = fnv64(rel.to_string_lossy().as_bytes(), h);
                h = fnv64(&meta.permissions().mode().to_le_bytes(), h);
                if meta.is_file() {
                    h = fnv64(&fs::read(&f)?, h);
                } else if meta.file_type().is_symlink() {
                    h = fnv64(fs::read_link(&f)?.to_string_lossy().as_bytes(), h);
                }
                h = fnv64(b"\0", h);
            }
        }
        Ok(format!("{h:016x}"))
    }

    /// The cache path of this spec's tree.
    pub fn path(&self) -> Result<PathBuf> {
        Ok(Path::new(CACHE_DIR).join(format!("golden-{}", self.key()?)))
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        out.push(p.clone());
        if e.file_type()?.is_dir() {
            walk(&p, out)?;
        }
    }
    Ok(())
}

/// The first Debian mirror of the machine's apt sources
/// (`/etc/apt/sources.list.d/debian.sources`, else `/etc/apt/sources.list`).
pub fn machine_mirror() -> Result<String> {
    let deb822 = Path::new("/etc/apt/sources.list.d/debian.sources");
    if let Ok(text) = fs::read_to_string(deb822) {
        for line in text.lines() {
            if let Some(uris) = line.strip_prefix("URIs:") {
                if let Some(uri) = uris.split_whitespace().next() {
                    if !uri.contains("security") {
                        return Ok(uri.to_string());
                    }
                }
            }
        }
    }
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"deb") {
                if let Some(uri) = words.iter().skip(1).find(|w| !w.starts_with('[')) {
                    if !uri.contains("security") {
                        return Ok(uri.to_string());
                    }
                }
            }
        }
    }
    bail!(
        "no Debian mirror found in {} or /etc/apt/sources.list",
        deb822.display()
    )
}

/// Returns the golden tree for the machine's default spec, building it
/// first when absent.
pub fn ensure() -> Result<PathBuf> {
    ensure_spec(&Spec::default_for_machine()?)
}

/// Returns the golden tree for `spec`, building it first when absent.
pub fn ensure_spec(spec: &Spec) -> Result<PathBuf> {
    let path = spec.path()?;
    if path.join("etc/os-release").exists() {
        mark_used(&path);
        return Ok(path);
    }
    // debootstrap takes about 1-2 minutes on 2 cores; a parallel build waits.
    let _lock = Lock::acquire(
        &Path::new(CACHE_DIR).join("golden.lock"),
        Duration::from_secs(1200),
    )?;
    if path.join("etc/os-release").exists() {
        mark_used(&path);
        return Ok(path);
    }
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let tmp = Path::new(CACHE_DIR).join(format!("{name}.tmp"));
    if tmp.exists() {
        remove_tree(&tmp)?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = ensure_base(spec).and_then(|base| {
        util::run(
            util::cmd("cp")
                .arg("-a")
                .arg(format!("{}/.", base.display()))
                .arg(&tmp),
        )?;
        customise(spec, &tmp)
    });
    if let Err(e) = result {
        let _ = remove_tree(&tmp);
        return Err(e.context(format!("building golden rootfs {}", path.display())));
    }
    fs::rename(&tmp, &path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    let base = Path::new(CACHE_DIR).join(format!("base-{}", spec.base_key()));
    mark_used(&path);
    remove_unused(&[&path, &base]);
    Ok(path)
}

/// The plain debootstrap tree (`base-<key>`), built first when absent
/// (caller holds the lock). Kept so that a change of the customisation or
/// the assets only costs a copy, not a new debootstrap.
fn ensure_base(spec: &Spec) -> Result<PathBuf> {
    let name = format!("base-{}", spec.base_key());
    let path = Path::new(CACHE_DIR).join(&name);
    if path.join("etc/os-release").exists() {
        return Ok(path);
    }
    let tmp = Path::new(CACHE_DIR).join(format!("{name}.tmp"));
    if tmp.exists() {
        remove_tree(&tmp)?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let log = Path::new(CACHE_DIR).join(format!("{name}.log"));
    eprintln!(
        "testbed: building the base rootfs {} (debootstrap {} from {}, log {})",
        path.display(),
        spec.suite,
        spec.mirror,
        log.display()
    );
    if let Err(e) = debootstrap(spec, &tmp, &log) {
        let _ = remove_tree(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    Ok(path)
}

fn debootstrap(spec: &Spec, root: &Path, log: &Path) -> Result<()> {
    let logf = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut c = util::cmd("debootstrap");
    c.arg("--variant=minbase")
        .arg(format!("--include={}", spec.packages.join(",")))
        .arg(&spec.suite)
        .arg(root)
        .arg(&spec.mirror)
        .stdout(logf.try_clone()?)
        .stderr(logf);
    let shown = util::render(&c);
    let status = c
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status}); see {}", log.display());
    }
    Ok(())
}

/// Makes a fresh debootstrap tree into the golden tree: no apt sources
/// (each test bed writes its own), no host keys (each test bed brings its
/// own), no machine id, no timers or daemons that would reach out, and the
/// asset directory copied over it.
pub fn customise(spec: &Spec, root: &Path) -> Result<()> {
    let script = r#"
set -eu
rm -f /etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
printf 'Acquire::Languages "none";\n' > /etc/apt/apt.conf.d/99swh-deploy-testbed
apt-get clean
rm -rf /var/lib/apt/lists/*
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
for unit in puppet.service systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    getty@tty1.service systemd-pstore.service console-getty.service; do
  ln -sf /dev/null /etc/systemd/system/$unit
done
"#;
    util::run(
        util::cmd("chroot")
            .arg(root)
            .args(["/bin/sh", "-c", script]),
    )
    .context("customising the golden rootfs")?;
    if spec.assets.is_dir() {
        let mut src = spec.assets.clone().into_os_string();
        src.push("/.");
        util::run(
            util::cmd("cp")
                .args(["-r", "--preserve=mode,timestamps", "--no-dereference"])
                .arg(src)
                .arg(root),
        )
        .context("copying the rootfs assets")?;
    }
    Ok(())
}

/// Removes a directory tree, refusing when anything is mounted inside it.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    let mounted = util::mounts_under(dir);
    if !mounted.is_empty() {
        bail!(
            "not removing {}: still mounted: {}",
            dir.display(),
            mounted
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Records that `tree` was handed out now (`<tree>.used`, next to it: the
/// tree itself is an overlay's lower layer and is never written).
fn mark_used(tree: &Path) {
    let mut stamp = tree.as_os_str().to_owned();
    stamp.push(".used");
    let _ = fs::write(PathBuf::from(stamp), b"");
}

/// Removes other golden and base trees that no mount refers to and that
/// were not handed out in the last hour (older inputs; a test bed between
/// `ensure` and its mount keeps its tree).
fn remove_unused(keep: &[&Path]) {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Ok(rd) = fs::read_dir(CACHE_DIR) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("golden-") || name.starts_with("base-");
        if keep.contains(&p.as_path()) || !ours || !p.is_dir() {
            continue;
        }
        if mounts.contains(&p.to_string_lossy().into_owned()) {
            continue;
        }
        let stamp = Path::new(CACHE_DIR).join(format!("{name}.used"));
        let recent = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(3600));
        if recent {
            continue;
        }
        let _ = remove_tree(&p);
        let _ = fs::remove_file(stamp);
        let _ = fs::remove_file(Path::new(CACHE_DIR).join(format!("{name}.log")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(assets: &Path) -> Spec {
        Spec {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            packages: vec!["openssh-server".into()],
            assets: assets.to_path_buf(),
        }
    }

    #[test]
    fn key_follows_every_input_and_only_them() {
        let dir = tempfile::tempdir().unwrap();
        let assets = dir.path().join("rootfs");
        fs::create_dir_all(assets.join("etc/swh")).unwrap();
        fs::write(assets.join("etc/swh/motd"), "#!/bin/sh\n").unwrap();
        let s = spec(&assets);
        let k = s.key().unwrap();
        assert_eq!(k.len(), 16);
        assert_eq!(k, spec(&assets).key().unwrap(), "stable");
        // Asset content, mode, new files, packages, mirror: each changes it.
        fs::write(assets.join("etc/swh/motd"), "#!/bin/sh\nexit 0\n").unwrap();
        let k2 = s.key().unwrap();
        assert_ne!(k, k2);
        fs::set_permissions(
            assets.join("etc/swh/motd"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let k3 = s.key().unwrap();
        assert_ne!(k2, k3);
        fs::write(assets.join("extra"), "x").unwrap();
        let k4 = s.key().unwrap();
        assert_ne!(k3, k4);
        let mut other = spec(&assets);
        other.packages.push("cron".into());
        assert_ne!(other.key().unwrap(), k4);
        assert_ne!(other.base_key(), s.base_key());
        let mut other = spec(&assets);
        other.mirror = "http://mirror.invalid/debian".into();
        assert_ne!(other.key().unwrap(), k4);
        // The base (debootstrap) key ignores the assets.
        assert_eq!(s.base_key(), spec(&dir.path().join("none")).base_key());
        assert!(s
            .path()
            .unwrap()
            .to_string_lossy()
            .starts_with("/var/cache/swh-deploy-testbed/golden-"));
    }
}
