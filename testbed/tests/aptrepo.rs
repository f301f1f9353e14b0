//! Tests of the local apt repository: real dpkg-deb / dpkg-scanpackages
//! output, package contents, and a real install and upgrade with dpkg in a
//! throwaway root (an overlay over this machine's /usr, in private mount,
//! network and pid namespaces, so nothing leaks out).

use std::fs;
use std::path::Path;
use std::process::Command;

use swh_deploy_testbed::aptrepo::{self, AptRepo};

fn build_all(dir: &Path) -> AptRepo {
    aptrepo::build(dir, aptrepo::VERSIONS).expect("build the apt repository")
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `(Package, Version, Filename)` of every stanza of a Packages file.
fn stanzas(packages: &str) -> Vec<(String, String, String)> {
    packages
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let field = |name: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_else(|| panic!("no {name} in stanza {s}"))
                    .to_string()
            };
            (field("Package"), field("Version"), field("Filename"))
        })
        .collect()
}

#[test]
fn packages_index_lists_every_package_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_all(tmp.path());
    assert_eq!(repo.packages.len(), 6);
    let index = fs::read_to_string(tmp.path().join("Packages")).unwrap();
    let mut listed: Vec<(String, String)> = stanzas(&index)
        .into_iter()
        .map(|(p, v, f)| {
            assert!(tmp.path().join(&f).is_file(), "{f} listed but missing");
            (p, v)
        })
        .collect();
    listed.sort();
    let mut want = Vec::new();
    for p in [aptrepo::LOADER_GIT_PACKAGE, aptrepo::STORAGE_PACKAGE] {
        for v in aptrepo::VERSIONS {
            want.push((p.to_string(), v.to_string()));
        }
    }
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(repo.packages, want);

    // Packages.gz is the same index, and Release carries its checksums.
    let gz = stdout(
        Command::new("gzip")
            .arg("-dc")
            .arg(tmp.path().join("Packages.gz")),
    );
    assert_eq!(gz, index);
    let release = fs::read_to_string(tmp.path().join("Release")).unwrap();
    let sha = stdout(Command::new("sha256sum").arg(tmp.path().join("Packages")));
    let sha = sha.split_whitespace().next().unwrap();
    assert!(
        release.contains(&format!(" {sha} {} Packages\n", index.len())),
        "{release}"
    );
}

#[test]
fn packages_ship_units_conffiles_and_maintainer_scripts() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_all(tmp.path());
    for version in aptrepo::VERSIONS {
        let storage = repo
            .deb_path(aptrepo::STORAGE_PACKAGE, version)
            .expect("storage deb");
        let info = stdout(Command::new("dpkg-deb").arg("-I").arg(&storage));
        for needle in [
            format!("Package: {}", aptrepo::STORAGE_PACKAGE),
            format!("Version: {version}"),
            "conffiles".to_string(),
            "postinst".to_string(),
            "prerm".to_string(),
            "postrm".to_string(),
        ] {
            assert!(info.contains(&needle), "{needle} not in {info}");
        }
        let conffiles = stdout(
            Command::new("dpkg-deb")
                .arg("-I")
                .arg(&storage)
                .arg("conffiles"),
        );
        assert_eq!(conffiles.trim(), aptrepo::STORAGE_CONFFILE);
        let postinst = stdout(
            Command::new("dpkg-deb")
                .arg("-I")
                .arg(&storage)
                .arg("postinst"),
        );
        assert!(
            postinst.contains("[ -d /run/systemd/system ]"),
            "{postinst}"
        );
        assert!(postinst.contains("deb-systemd-helper enable"), "{postinst}");
        assert!(
            postinst.contains("deb-systemd-invoke $_dh_action"),
            "{postinst}"
        );
        let contents = stdout(Command::new("dpkg-deb").arg("-c").arg(&storage));
        for path in [
            "./lib/systemd/system/gunicorn-swh-storage.service",
            "./etc/softwareheritage/storage/storage.yml",
            "./usr/share/swh/storage/www/cgi-bin/index.cgi",
        ] {
            assert!(contents.contains(path), "{path} not in {contents}");
        }
        assert!(contents.contains("root/root"), "{contents}");

        let loader = repo
            .deb_path(aptrepo::LOADER_GIT_PACKAGE, version)
            .expect("loader deb");
        let contents = stdout(Command::new("dpkg-deb").arg("-c").arg(&loader));
        assert!(
            contents.contains("./lib/systemd/system/swh-worker@.service"),
            "{contents}"
        );
        let conffiles = stdout(
            Command::new("dpkg-deb")
                .arg("-I")
                .arg(&loader)
                .arg("conffiles"),
        );
        assert_eq!(conffiles.trim(), aptrepo::LOADER_GIT_CONFFILE);
        let postinst = stdout(
            Command::new("dpkg-deb")
                .arg("-I")
                .arg(&loader)
                .arg("postinst"),
        );
        assert!(postinst.contains("'swh-worker@*.service'"), "{postinst}");
        let unit = stdout(
            Command::new("sh")
                .arg("-c")
                .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -xOf - ./lib/systemd/system/swh-worker@.service")
                .arg("sh")
                .arg(&loader),
        );
        assert!(unit.contains("DefaultInstance=loader_git"), "{unit}");
    }
    assert!(repo.deb_path(aptrepo::STORAGE_PACKAGE, "9.9-1").is_none());
}

#[test]
fn builds_are_deterministic_and_cached() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ra = aptrepo::build(a.path(), &["1.0-1~swh1", "1.1-1~swh1"]).unwrap();
    let rb = aptrepo::build(b.path(), &["1.0-1~swh1", "1.1-1~swh1"]).unwrap();
    for (name, version) in &ra.packages {
        let da = fs::read(ra.deb_path(name, version).unwrap()).unwrap();
        let db = fs::read(rb.deb_path(name, version).unwrap()).unwrap();
        assert!(da == db, "{name} {version} differs between two builds");
    }
    assert_eq!(
        fs::read(a.path().join("Packages")).unwrap(),
        fs::read(b.path().join("Packages")).unwrap()
    );

    // Same inputs: reused as is (Packages not rewritten).
    let before = fs::metadata(a.path().join("Packages"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    aptrepo::build(a.path(), &["1.0-1~swh1", "1.1-1~swh1"]).unwrap();
    let after = fs::metadata(a.path().join("Packages"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // Other inputs: rebuilt, old versions gone.
    let rc = aptrepo::build(a.path(), &["1.1-1~swh1"]).unwrap();
    assert_eq!(rc.versions(aptrepo::STORAGE_PACKAGE), vec!["1.1-1~swh1"]);
    let index = fs::read_to_string(a.path().join("Packages")).unwrap();
    assert!(!index.contains("1.0-1~swh1"), "{index}");
    assert!(!a
        .path()
        .join("pool/python3-swh.storage_1.0-1~swh1_all.deb")
        .exists());
}

#[test]
fn build_cached_shares_one_directory() {
    let cache = tempfile::tempdir().unwrap();
    // SWH_TESTBED_CACHE is read by build_cached; this test binary has only
    // this test touching it.
    std::env::set_var("SWH_TESTBED_CACHE", cache.path());
    let r1 = aptrepo::build_cached(&["1.0-1~swh1"]).unwrap();
    let r2 = aptrepo::build_cached(&["1.0-1~swh1"]).unwrap();
    std::env::remove_var("SWH_TESTBED_CACHE");
    assert_eq!(r1, r2);
    assert!(r1.dir.starts_with(cache.path()));
    assert!(r1.dir.join("Packages.gz").is_file());
    let leftovers: Vec<_> = fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn invalid_versions_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["", "1.0", "x1.0-1", "1.0-1 ; rm", "a:1.0-1", "1.0-"] {
        let err = aptrepo::build(tmp.path(), &[bad]).unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid Debian version"),
            "{bad}: {err:#}"
        );
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    assert_eq!(aptrepo::upstream_version("1.1-1~swh1"), "1.1");
    assert_eq!(
        aptrepo::upstream_version("2:0.29.0-1~swh1~bpo12+1"),
        "0.29.0"
    );
    assert!(aptrepo::is_broken(aptrepo::BROKEN_VERSION));
    assert!(!aptrepo::is_broken("1.1-1~swh1"));
}

#[test]
fn sources_line_is_trusted_flat_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = aptrepo::build(tmp.path(), &["1.0-1~swh1"]).unwrap();
    assert_eq!(
        repo.sources_line("http://10.0.0.1:8080/"),
        "deb [trusted=yes] http://10.0.0.1:8080 ./"
    );
}

/// Installs 1.0 with real dpkg in a throwaway root (overlay over this
/// machine's /usr, whose dpkg status is copied so dependencies resolve),
/// edits a conffile, upgrades to 1.1 with the runbook's confold, starts
/// the storage server and the worker inside (private network namespace) and
/// checks their answers carry the version; then checks 1.2 fails to start.
#[test]
fn install_upgrade_and_run_in_a_throwaway_root() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_all(&tmp.path().join("repo"));
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let deb = |p: &str, v: &str| repo.deb_path(p, v).unwrap();
    let script = r##"
set -eu
W="$1"; S10="$2"; L10="$3"; S11="$4"; L11="$5"; S12="$6"; L12="$7"
R="$W/root"
mkdir -p "$R/usr" "$W/up" "$W/wk" "$R/etc" "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/tmp" "$R/run" "$R/dev" "$R/proc"
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$W/up,workdir=$W/wk" "$R/usr"
for l in bin sbin lib lib64; do ln -s "usr/$l" "$R/$l"; done
mount --bind /dev "$R/dev"
mount -t proc proc "$R/proc"
cp /var/lib/dpkg/status "$R/var/lib/dpkg/status"
: > "$R/var/lib/dpkg/available"
cp /etc/passwd /etc/group "$R/etc/"
ip link set lo up
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
dpkg --root="$R" --force-confold -i "$S10" "$L10" >"$W/dpkg.log" 2>&1 || { cat "$W/dpkg.log"; exit 1; }
echo "installed: $(dpkg-query --root="$R" -W -f='${Package}=${Version} ' python3-swh.storage python3-swh.loader.git)"
echo "enabled-storage: $(readlink "$R/etc/systemd/system/multi-user.target.wants/gunicorn-swh-storage.service" || echo none)"
echo "enabled-worker: $(readlink "$R/etc/systemd/system/multi-user.target.wants/swh-worker@loader_git.service" || echo none)"
echo "# local edit" >> "$R/etc/softwareheritage/storage/storage.yml"
dpkg --root="$R" --force-confdef --force-confold -i "$S11" "$L11" >"$W/dpkg.log" 2>&1 </dev/null || { cat "$W/dpkg.log"; exit 1; }
echo "upgraded: $(dpkg-query --root="$R" -W -f='${Package}=${Version} ' python3-swh.storage python3-swh.loader.git)"
echo "kept-edit: $(grep -c '# local edit' "$R/etc/softwareheritage/storage/storage.yml")"
echo "dpkg-dist: $(grep -c '1.1-1~swh1' "$R/etc/softwareheritage/storage/storage.yml.dpkg-dist")"
chroot "$R" /usr/libexec/swh-storage/gunicorn-swh-storage 2>"$W/storage.err" &
chroot "$R" env SWH_CONFIG_FILENAME=/etc/softwareheritage/loader_git.yml /usr/libexec/swh-worker/swh-worker loader_git 2>"$W/worker.err" &
i=0
until curl -fsS --max-time 2 -H "Host: $(uname -n):5002" http://127.0.0.1:5002/ >"$W/answer" 2>/dev/null; do
  i=$((i+1)); [ $i -lt 50 ] || { echo "storage server never answered"; cat "$W/storage.err"; exit 1; }
  sleep 0.1
done
echo "answer: $(tr '\n' ' ' <"$W/answer")"
rc=0; curl -sS --max-time 2 http://127.0.0.1:5002/ >"$W/other" 2>"$W/other.err" || rc=$?
echo "other-host: exit $rc $(wc -c <"$W/other") bytes $(tr '\n' ' ' <"$W/other.err")"
i=0
until [ -s "$R/run/swh-worker/loader_git.heartbeat" ]; do
  i=$((i+1)); [ $i -lt 50 ] || { echo "no heartbeat"; cat "$W/worker.err"; exit 1; }
  sleep 0.1
done
echo "heartbeat: $(cat "$R/run/swh-worker/loader_git.heartbeat")"
dpkg --root="$R" --force-confdef --force-confold -i "$S12" "$L12" >"$W/dpkg.log" 2>&1 </dev/null || { cat "$W/dpkg.log"; exit 1; }
echo "broken: $(dpkg-query --root="$R" -W -f='${Version} ' python3-swh.storage)"
set +e
timeout 5 chroot "$R" /usr/libexec/swh-storage/gunicorn-swh-storage 2>"$W/broken.err"
echo "broken-storage-exit: $?"
timeout 5 chroot "$R" /usr/libexec/swh-worker/swh-worker loader_git 2>>"$W/broken.err"
echo "broken-worker-exit: $?"
echo "broken-err: $(tr '\n' ' ' <"$W/broken.err")"
"##;
    // unshare --pid --fork: every process the script leaves behind dies
    // with it; --mount/--net: the overlay and port 5002 stay private.
    let out = Command::new("timeout")
        .args([
            "120",
            "unshare",
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
        ])
        .args(["sh", "-c", script, "sh"])
        .arg(&work)
        .arg(deb(aptrepo::STORAGE_PACKAGE, "1.0-1~swh1"))
        .arg(deb(aptrepo::LOADER_GIT_PACKAGE, "1.0-1~swh1"))
        .arg(deb(aptrepo::STORAGE_PACKAGE, "1.1-1~swh1"))
        .arg(deb(aptrepo::LOADER_GIT_PACKAGE, "1.1-1~swh1"))
        .arg(deb(aptrepo::STORAGE_PACKAGE, "1.2-1~swh1"))
        .arg(deb(aptrepo::LOADER_GIT_PACKAGE, "1.2-1~swh1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "install script failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .to_string()
    };
    let sorted = |s: String| {
        let mut v: Vec<String> = s.split_whitespace().map(String::from).collect();
        v.sort();
        v.join(" ")
    };
    assert_eq!(
        sorted(line("installed")),
        "python3-swh.loader.git=1.0-1~swh1 python3-swh.storage=1.0-1~swh1"
    );
    assert_eq!(
        line("enabled-storage"),
        "/lib/systemd/system/gunicorn-swh-storage.service"
    );
    assert_eq!(
        line("enabled-worker"),
        "/lib/systemd/system/swh-worker@.service"
    );
    assert_eq!(
        sorted(line("upgraded")),
        "python3-swh.loader.git=1.1-1~swh1 python3-swh.storage=1.1-1~swh1"
    );
    assert_eq!(line("kept-edit"), "1");
    assert_eq!(line("dpkg-dist"), "1");
    let answer = line("answer");
    assert!(answer.contains(aptrepo::STORAGE_BANNER), "{answer}");
    assert!(answer.contains("1.1-1~swh1"), "{answer}");
    assert!(
        answer.contains("<title>Software Heritage storage server</title>"),
        "{answer}"
    );
    // Another Host (here 127.0.0.1:5002): no answer at all, like nginx's 444
    // (curl exit 52, "Empty reply from server").
    let other = line("other-host");
    assert!(
        other.starts_with("exit 52 0 bytes") && other.contains("Empty reply"),
        "{other}"
    );
    let heartbeat = line("heartbeat");
    let fields: Vec<&str> = heartbeat.split_whitespace().collect();
    assert_eq!(
        fields.get(1..3),
        Some(&["loader_git", "1.1-1~swh1"][..]),
        "{heartbeat}"
    );
    assert_eq!(line("broken"), "1.2-1~swh1");
    assert_eq!(line("broken-storage-exit"), "1");
    assert_eq!(line("broken-worker-exit"), "1");
    assert!(line("broken-err").contains("Traceback"), "{text}");
}
