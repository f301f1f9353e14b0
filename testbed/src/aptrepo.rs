//! A real local apt repository with swh-like Debian packages.
//!
//! [`build`] writes, in a directory, a *flat* apt repository (`pool/`,
//! `Packages`, `Packages.gz`, `Release`) made with the real Debian tools
//! (`dpkg-deb --root-owner-group --build`, `dpkg-scanpackages
//! --multiversion`), holding, for each requested version, the two packages
//! the runbook upgrades:
//!
//! * [`STORAGE_PACKAGE`] (`python3-swh.storage`) ships [`STORAGE_UNIT`]
//!   (`gunicorn-swh-storage.service`), whose server answers `GET /` on port
//!   [`STORAGE_PORT`] (5002) with the real server's page, titled
//!   [`STORAGE_BANNER`] (`Software Heritage storage server`), plus the
//!   package version in a comment; like SWH's nginx front, it closes the
//!   connection without an answer when the `Host` header is not the host's
//!   own name (nginx's 444). The conffile is
//!   `/etc/softwareheritage/storage/storage.yml`.
//! * [`LOADER_GIT_PACKAGE`] (`python3-swh.loader.git`) ships the template
//!   unit [`WORKER_TEMPLATE_UNIT`] (`swh-worker@.service`, default instance
//!   [`LOADER_GIT_INSTANCE`]), a long-running worker writing a heartbeat
//!   with its version to `/run/swh-worker/<instance>.heartbeat`; the
//!   conffile `/etc/softwareheritage/loader_git.yml`.
//!
//! Their maintainer scripts are debhelper's `dh_installsystemd` snippets:
//! `postinst` enables the unit, and only when systemd runs
//! (`/run/systemd/system` exists) starts it on installation and restarts it
//! on upgrade (every running `swh-worker@` instance for the loader); chroot
//! hosts without systemd just get the unit enabled. `prerm` stops, `postrm`
//! masks/purges like debhelper does.
//!
//! The servers are small shell scripts standing for gunicorn and celery
//! (python3 is not in the hosts' root filesystem): `busybox httpd` for the
//! RPC server (its `GET /` is a CGI script checking the `Host` header), a
//! shell loop for the worker. Both read their conffile at
//! start-up and refuse to start when it lacks its main section, so a broken
//! configuration change is visible as a failed unit. The version
//! [`BROKEN_VERSION`] (`1.2-1~swh1`) installs fine but its services exit
//! with an error at start-up (for health-gate tests).
//!
//! Builds are deterministic (fixed mtimes, `SOURCE_DATE_EPOCH`) and cached:
//! a directory already holding the same build is reused as is. The file
//! templates live in `testbed/assets/packages/`.
//!
//! Hosts use the repository with the sources line of
//! [`AptRepo::sources_line`] (`deb [trusted=yes] URL ./`) once the
//! directory is served over HTTP (see `components::StaticHttp`).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::util::write_atomic;

/// Binary package standing for the storage RPC server.
pub const STORAGE_PACKAGE: &str = "python3-swh.storage";
/// Binary package standing for the git loader worker.
pub const LOADER_GIT_PACKAGE: &str = "python3-swh.loader.git";
/// Unit of the storage RPC server, shipped by [`STORAGE_PACKAGE`].
pub const STORAGE_UNIT: &str = "gunicorn-swh-storage.service";
/// Template unit of the workers, shipped by [`LOADER_GIT_PACKAGE`].
pub const WORKER_TEMPLATE_UNIT: &str = "swh-worker@.service";
/// Instance of [`WORKER_TEMPLATE_UNIT`] enabled by [`LOADER_GIT_PACKAGE`].
pub const LOADER_GIT_INSTANCE: &str = "loader_git";
/// Full unit name of the git loader worker (`swh-worker@loader_git.service`).
pub const LOADER_GIT_UNIT: &str = "swh-worker@loader_git.service";
/// TCP port the storage RPC server listens on (all addresses of its host).
pub const STORAGE_PORT: u16 = 5002;
/// Text the storage server's `GET /` answer contains: the title of the page
/// the real `swh.storage.api.server` answers, which SWH's monitoring checks.
pub const STORAGE_BANNER: &str = "Software Heritage storage server";
/// Conffile of [`STORAGE_PACKAGE`].
pub const STORAGE_CONFFILE: &str = "/etc/softwareheritage/storage/storage.yml";
/// Conffile of [`LOADER_GIT_PACKAGE`].
pub const LOADER_GIT_CONFFILE: &str = "/etc/softwareheritage/loader_git.yml";
/// Heartbeat file the loader_git worker rewrites every second with
/// `<unix time> <instance> <version> <pid>`.
pub const LOADER_GIT_HEARTBEAT: &str = "/run/swh-worker/loader_git.heartbeat";
/// The versions the test bed publishes by default, oldest first.
pub const VERSIONS: &[&str] = &["1.0-1~swh1", "1.1-1~swh1", "1.2-1~swh1"];
/// The version whose services fail at start-up.
pub const BROKEN_VERSION: &str = "1.2-1~swh1";
/// The package names [`build`] makes for each version.
pub const PACKAGES: &[&str] = &[LOADER_GIT_PACKAGE, STORAGE_PACKAGE];

/// Fixed modification time of every file in the packages (deterministic
/// builds): 2025-01-17 00:00:00 UTC.
const SOURCE_DATE_EPOCH: u64 = 1_737_072_000;
/// Name of the stamp file recording which build a directory holds.
const STAMP: &str = ".swh-testbed-aptrepo";
/// Bumped whenever the build recipe changes in a way the templates don't show.
const RECIPE_VERSION: &str = "aptrepo-3";

/// One file of a package: where it goes, its template, its mode.
struct FileSpec {
    /// Absolute path on the installed system (or `DEBIAN/<name>`).
    path: &'static str,
    /// Template text; `@VERSION@`, `@UPSTREAM@` and `@BROKEN@` are replaced.
    template: &'static str,
    /// Unix mode.
    mode: u32,
}

/// What one package is made of.
struct PackageSpec {
    name: &'static str,
    files: &'static [FileSpec],
    /// Replaces `@BROKEN@` in the broken version (failure at start-up).
    broken: &'static str,
}

macro_rules! asset {
    ($pkg:literal, $file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/packages/",
            $pkg,
            "/",
            $file
        ))
    };
}

const STORAGE: PackageSpec = PackageSpec {
    name: STORAGE_PACKAGE,
    files: &[
        FileSpec {
            path: "DEBIAN/control",
            template: asset!("python3-swh.storage", "control"),
            mode: 0o644,
        },
        FileSpec {
            path: "DEBIAN/conffiles",
            template: asset!("python3-swh.storage", "conffiles"),
            mode: 0o644,
        },
        FileSpec {
            path: "DEBIAN/postinst",
            template: asset!("python3-swh.storage", "postinst"),
            mode: 0o755,
        },
        FileSpec {
            path: "DEBIAN/prerm",
            template: asset!("python3-swh.storage", "prerm"),
            mode: 0o755,
        },
        FileSpec {
            path: "DEBIAN/postrm",
            template: asset!("python3-swh.storage", "postrm"),
            mode: 0o755,
        },
        FileSpec {
            path: "/etc/softwareheritage/storage/storage.yml",
            template: asset!("python3-swh.storage", "storage.yml"),
            mode: 0o644,
        },
        FileSpec {
            path: "/lib/systemd/system/gunicorn-swh-storage.service",
            template: asset!("python3-swh.storage", "gunicorn-swh-storage.service"),
            mode: 0o644,
        },
        FileSpec {
            path: "/usr/libexec/swh-storage/gunicorn-swh-storage",
            template: asset!("python3-swh.storage", "gunicorn-swh-storage"),
            mode: 0o755,
        },
        FileSpec {
            path: "/usr/share/swh/storage/www/cgi-bin/index.cgi",
            template: asset!("python3-swh.storage", "index.cgi"),
            mode: 0o755,
        },
    ],
    broken: "echo \"swh-storage $version: Traceback (most recent call last):\" >&2\n\
             echo \"ModuleNotFoundError: No module named 'swh.storage.proxies.buffer'\" >&2\n\
             exit 1",
};

const LOADER_GIT: PackageSpec = PackageSpec {
    name: LOADER_GIT_PACKAGE,
    files: &[
        FileSpec {
            path: "DEBIAN/control",
            template: asset!("python3-swh.loader.git", "control"),
            mode: 0o644,
        },
        FileSpec {
            path: "DEBIAN/conffiles",
            template: asset!("python3-swh.loader.git", "conffiles"),
            mode: 0o644,
        },
        FileSpec {
            path: "DEBIAN/postinst",
            template: asset!("python3-swh.loader.git", "postinst"),
            mode: 0o755,
        },
        FileSpec {
            path: "DEBIAN/prerm",
            template: asset!("python3-swh.loader.git", "prerm"),
            mode: 0o755,
        },
        FileSpec {
            path: "DEBIAN/postrm",
            template: asset!("python3-swh.loader.git", "postrm"),
            mode: 0o755,
        },
        FileSpec {
            path: "/etc/softwareheritage/loader_git.yml",
            template: asset!("python3-swh.loader.git", "loader_git.yml"),
            mode: 0o644,
        },
        FileSpec {
            path: "/lib/systemd/system/swh-worker@.service",
            template: asset!("python3-swh.loader.git", "swh-worker@.service"),
            mode: 0o644,
        },
        FileSpec {
            path: "/usr/libexec/swh-worker/swh-worker",
            template: asset!("python3-swh.loader.git", "swh-worker"),
            mode: 0o755,
        },
    ],
    broken: "echo \"swh-worker@$instance $version: Traceback (most recent call last):\" >&2\n\
             echo \"ImportError: cannot import name 'GitLoader' from 'swh.loader.git.loader'\" >&2\n\
             exit 1",
};

const SPECS: &[&PackageSpec] = &[&LOADER_GIT, &STORAGE];

/// A built flat apt repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptRepo {
    /// The repository's directory (holds `pool/`, `Packages`, `Packages.gz`,
    /// `Release`); serve it over HTTP as the root of the repository.
    pub dir: PathBuf,
    /// Every `(package name, version)` the repository holds, sorted.
    pub packages: Vec<(String, String)>,
}

impl AptRepo {
    /// The `sources.list` line of this repository once served at `url`
    /// (e.g. `http://10.x.y.1:8080`): `deb [trusted=yes] URL ./`.
    pub fn sources_line(&self, url: &str) -> String {
        format!("deb [trusted=yes] {} ./", url.trim_end_matches('/'))
    }

    /// Path of the `.deb` file of `package` at `version`, if the repository
    /// holds it.
    pub fn deb_path(&self, package: &str, version: &str) -> Option<PathBuf> {
        self.packages
            .iter()
            .any(|(n, v)| n == package && v == version)
            .then(|| self.dir.join(pool_file(package, version)))
    }

    /// The versions of `package` the repository holds, in build order.
    pub fn versions(&self, package: &str) -> Vec<&str> {
        self.packages
            .iter()
            .filter(|(n, _)| n == package)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Whether `version`'s services fail at start-up ([`BROKEN_VERSION`]).
pub fn is_broken(version: &str) -> bool {
    version == BROKEN_VERSION
}

/// The upstream part of a Debian version: `1.1-1~swh1` -> `1.1`.
pub fn upstream_version(version: &str) -> &str {
    let no_epoch = version.split_once(':').map_or(version, |(_, rest)| rest);
    no_epoch
        .rsplit_once('-')
        .map_or(no_epoch, |(upstream, _)| upstream)
}

/// Checks that `version` is a Debian version this module can package:
/// `[epoch:]upstream-revision`, upstream starting with a digit, only
/// `[A-Za-z0-9.+~]` in upstream and revision.
pub fn validate_version(version: &str) -> Result<()> {
    let no_epoch = match version.split_once(':') {
        Some((epoch, rest)) => {
            ensure!(
                !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()),
                "invalid Debian version {version:?}: epoch {epoch:?} is not a number"
            );
            rest
        }
        None => version,
    };
    let Some((upstream, revision)) = no_epoch.rsplit_once('-') else {
        bail!("invalid Debian version {version:?}: expected upstream-revision, e.g. 1.1-1~swh1");
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.~".contains(&b))
    };
    ensure!(
        ok(upstream) && upstream.as_bytes()[0].is_ascii_digit(),
        "invalid Debian version {version:?}: upstream part {upstream:?} must start with a digit and hold only [A-Za-z0-9.+~]"
    );
    ensure!(
        ok(revision),
        "invalid Debian version {version:?}: revision {revision:?} must hold only [A-Za-z0-9.+~]"
    );
    Ok(())
}

/// Builds (or reuses) in `dir` a flat apt repository holding
/// [`STORAGE_PACKAGE`] and [`LOADER_GIT_PACKAGE`] at each of `versions`
/// (e.g. [`VERSIONS`]).
///
/// `dir` is created if missing. When it already holds the same build (same
/// templates, same versions) nothing is redone; otherwise its `pool/`,
/// `Packages*` and `Release` are replaced. Not safe against a concurrent
/// build in the same directory: give each caller its own, or use
/// [`build_cached`].
pub fn build(dir: &Path, versions: &[&str]) -> Result<AptRepo> {
    ensure!(
        !versions.is_empty(),
        "apt repository {}: no version to build",
        dir.display()
    );
    for v in versions {
        validate_version(v).with_context(|| format!("apt repository {}", dir.display()))?;
    }
    let mut unique: Vec<&str> = Vec::new();
    for v in versions {
        if !unique.contains(v) {
            unique.push(v);
        }
    }
    let mut packages: Vec<(String, String)> = SPECS
        .iter()
        .flat_map(|spec| {
            unique
                .iter()
                .map(move |v| (spec.name.to_string(), v.to_string()))
        })
        .collect();
    packages.sort();
    let repo = AptRepo {
        dir: dir.to_path_buf(),
        packages,
    };

    let key = cache_key(&unique);
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = dir.join(STAMP);
    if fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str())
        && dir.join("Packages.gz").is_file()
        && repo
            .packages
            .iter()
            .all(|(n, v)| dir.join(pool_file(n, v)).is_file())
    {
        return Ok(repo);
    }

    let _ = fs::remove_file(&stamp);
    for old in ["pool", ".build"] {
        let p = dir.join(old);
        if p.exists() {
            fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    for old in ["Packages", "Packages.gz", "Release"] {
        let _ = fs::remove_file(dir.join(old));
    }
    fs::create_dir_all(dir.join("pool"))?;
    let staging_root = dir.join(".build");
    for spec in SPECS {
        for v in &unique {
            let staging = staging_root.join(format!("{}_{}", spec.name, v));
            stage_package(spec, v, &staging)?;
            let deb = dir.join(pool_file(spec.name, v));
            run(Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zxz", "--build"])
                .arg(&staging)
                .arg(&deb)
                .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH.to_string()))?;
        }
    }
    fs::remove_dir_all(&staging_root)
        .with_context(|| format!("removing {}", staging_root.display()))?;

    let scan = run(Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool", "/dev/null"])
        .current_dir(dir))?;
    let packages_path = dir.join("Packages");
    write_atomic(&packages_path, &scan, 0o644)?;
    let gz = crate::components::gzip(&scan)?;
    write_atomic(&dir.join("Packages.gz"), &gz, 0o644)?;
    write_atomic(&dir.join("Release"), release(&scan, &gz).as_bytes(), 0o644)?;
    write_atomic(&stamp, key.as_bytes(), 0o644)?;
    Ok(repo)
}

/// Like [`build`], in a shared per-machine cache directory keyed by the
/// build's inputs: `$SWH_TESTBED_CACHE/aptrepo-<key>` (default cache root
/// `/var/cache/swh-deploy-testbed`). Safe against concurrent callers: the
/// repository is built in a temporary directory and renamed into place.
/// The result must be treated as read-only.
pub fn build_cached(versions: &[&str]) -> Result<AptRepo> {
    let root = cache_root();
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let mut unique: Vec<&str> = Vec::new();
    for v in versions {
        if !unique.contains(v) {
            unique.push(v);
        }
    }
    let key = cache_key(&unique);
    let final_dir = root.join(format!("aptrepo-{}", &key[..16]));
    if final_dir.join(STAMP).is_file() {
        return build(&final_dir, versions);
    }
    let tmp = root.join(format!(
        ".aptrepo-{}.tmp-{}-{}",
        &key[..16],
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    let built = build(&tmp, versions);
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if fs::rename(&tmp, &final_dir).is_err() {
        // Someone else renamed theirs first: use it.
        let _ = fs::remove_dir_all(&tmp);
    }
    build(&final_dir, versions)
}

/// Root of the test bed's per-machine cache: `$SWH_TESTBED_CACHE`, or
/// `/var/cache/swh-deploy-testbed`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("SWH_TESTBED_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/swh-deploy-testbed"))
}

/// `pool/<name>_<version>_all.deb` (the epoch is dropped like dpkg-deb does).
fn pool_file(name: &str, version: &str) -> String {
    let no_epoch = version.split_once(':').map_or(version, |(_, rest)| rest);
    format!("pool/{name}_{no_epoch}_all.deb")
}

fn cache_key(versions: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.as_bytes());
    for spec in SPECS {
        h.update(spec.name.as_bytes());
        h.update(spec.broken.as_bytes());
        for f in spec.files {
            h.update(f.path.as_bytes());
            h.update(f.mode.to_le_bytes());
            h.update(f.template.as_bytes());
        }
    }
    for v in versions {
        h.update(b"\0");
        h.update(v.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn render(template: &str, spec: &PackageSpec, version: &str) -> String {
    let broken = if is_broken(version) { spec.broken } else { "" };
    template
        .replace("@VERSION@", version)
        .replace("@UPSTREAM@", upstream_version(version))
        .replace("@BROKEN@", broken)
}

/// Writes the package tree of `spec` at `version` in `staging`, with fixed
/// modes and mtimes, and its `DEBIAN/md5sums`.
fn stage_package(spec: &PackageSpec, version: &str, staging: &Path) -> Result<()> {
    if staging.exists() {
        fs::remove_dir_all(staging)?;
    }
    fs::create_dir_all(staging.join("DEBIAN"))?;
    let mut md5sums = String::new();
    for f in spec.files {
        let rel = f.path.trim_start_matches('/');
        let path = staging.join(rel);
        let content = render(f.template, spec, version);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, content.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))?;
        if !f.path.starts_with("DEBIAN/") {
            let _ = writeln!(
                md5sums,
                "{}  {}",
                hex(&Md5::digest(content.as_bytes())),
                rel
            );
        }
    }
    let md5_path = staging.join("DEBIAN/md5sums");
    fs::write(&md5_path, md5sums)?;
    fs::set_permissions(&md5_path, fs::Permissions::from_mode(0o644))?;
    fix_tree(staging)
}

/// Sets directories to 0755 and every mtime to [`SOURCE_DATE_EPOCH`].
fn fix_tree(dir: &Path) -> Result<()> {
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(SOURCE_DATE_EPOCH);
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            fix_tree(&path)?;
        } else {
            fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(epoch)?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    fs::File::open(dir)?.set_modified(epoch)?;
    Ok(())
}

/// A `Release` file for the flat repository (checksums of the indexes).
/// Its `Date` is fixed ([`SOURCE_DATE_EPOCH`]): apt warns without one, and
/// a date that never moves never goes backwards when the repository is
/// rebuilt with other versions.
fn release(packages: &[u8], packages_gz: &[u8]) -> String {
    let mut s = String::from(
        "Origin: swh-deploy-testbed\n\
         Label: swh-deploy-testbed\n\
         Suite: bookworm-swh\n\
         Codename: bookworm-swh\n\
         Date: Fri, 17 Jan 2025 00:00:00 UTC\n\
         Architectures: all amd64\n\
         Description: swh-deploy test bed packages (stand-ins for Software Heritage's)\n",
    );
    let files = [("Packages", packages), ("Packages.gz", packages_gz)];
    s.push_str("MD5Sum:\n");
    for (name, data) in files {
        let _ = writeln!(s, " {} {} {}", hex(&Md5::digest(data)), data.len(), name);
    }
    s.push_str("SHA256:\n");
    for (name, data) in files {
        let _ = writeln!(s, " {} {} {}", hex(&Sha256::digest(data)), data.len(), name);
    }
    s
}

/// Runs a command, returning its stdout; an error names the command and
/// carries its stderr.
fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}
