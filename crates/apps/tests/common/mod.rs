//! Real components for the apps tests: Debian's docker-registry on
//! loopback, a PEP 503 package index over HTTP on loopback, bare git
//! remotes, buildah with private vfs storage. Every process is stopped by a
//! guard's Drop, and every wait is bounded.
//!
//! (The test bed crate is to provide shared guards for the registry, git
//! remotes and package index; these local ones stand until it does.)

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a command, panicking with its stderr on failure; returns stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    sh(Command::new("git").arg("-C").arg(dir).args(args))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_http(url: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    loop {
        if let Ok(r) = agent.get(url).call() {
            if r.status().as_u16() < 500 {
                return;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{url}: server exited early: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_http_ok(port: u16, child: &mut Child) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_http(&format!("http://127.0.0.1:{port}/v2/"), child)
    }))
    .is_ok()
}

/// Debian's docker-registry serving `storage` on 127.0.0.1.
pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Registry {
    pub fn start(dir: &Path, storage: &Path, read_only: bool) -> Registry {
        let port = free_port();
        let config = dir.join(format!("registry-{port}.yml"));
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    readonly:\n      enabled: {read_only}\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("registry-{port}.log"))).unwrap();
        let mut cmd = Command::new("docker-registry");
        // docker-registry reads REGISTRY_* variables as configuration
        // overrides (REGISTRY_AUTH_FILE would become `auth`): drop them.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        if child.try_wait().map(|s| s.is_some()).unwrap_or(false) || !wait_http_ok(port, &mut child)
        {
            let text = std::fs::read_to_string(dir.join(format!("registry-{port}.log")))
                .unwrap_or_default();
            panic!("docker-registry on port {port} did not start: {text}");
        }
        Registry { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Pushes a tiny manifest (empty config, no layers) as `name:tag`.
    pub fn put_tag(&self, name: &str, tag: &str) {
        use sha2::Digest;
        let config = b"{}";
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(config));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let r = agent
            .post(format!("{}/v2/{name}/blobs/uploads/", self.url()))
            .send_empty()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "blob upload start");
        let location = r
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.url())
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = agent
            .put(format!("{location}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .send(&config[..])
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "blob upload");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
            config.len()
        );
        let mut r = agent
            .put(format!("{}/v2/{name}/manifests/{tag}", self.url()))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .send(manifest.as_bytes())
            .unwrap();
        let status = r.status().as_u16();
        assert_eq!(
            status,
            201,
            "manifest put: {}",
            r.body_mut().read_to_string().unwrap_or_default()
        );
    }

    /// All tags of `name` (single request, no pagination).
    pub fn tags(&self, name: &str) -> Vec<String> {
        let mut r = ureq::get(format!("{}/v2/{name}/tags/list", self.url()))
            .call()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PEP 503 "simple" index over HTTP on 127.0.0.1 (python3 -m http.server
/// over a directory of wheels and index pages).
pub struct PackageIndex {
    child: Child,
    pub port: u16,
    root: PathBuf,
}

/// Writes a minimal pure-Python wheel `name-version-py3-none-any.whl` with
/// the given `Requires-Dist` lines into `dir`; returns its file name.
pub fn make_wheel(dir: &Path, name: &str, version: &str, requires: &[&str]) -> String {
    let dist = name.replace(['-', '.'], "_");
    let file = format!("{dist}-{version}-py3-none-any.whl");
    let script = r#"
import sys, zipfile, hashlib, base64
out, dist, name, version = sys.argv[1:5]
requires = sys.argv[5:]
info = f"{dist}-{version}.dist-info"
files = {
    f"{dist}/__init__.py": f"__version__ = '{version}'\n",
    f"{info}/METADATA": "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n" + "".join("Requires-Dist: " + r + "\n" for r in requires),
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(out, "w") as z:
    for path, text in files.items():
        data = text.encode()
        z.writestr(path, data)
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={h},{len(data)}")
    record.append(f"{info}/RECORD,,")
    z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(dir.join(&file))
        .arg(&dist)
        .arg(name)
        .arg(version)
        .args(requires);
    sh(&mut cmd);
    file
}

impl PackageIndex {
    /// Serves `root`, which must hold `simple/<project>/index.html` pages
    /// (see [`PackageIndex::publish`]).
    pub fn start(root: &Path) -> PackageIndex {
        std::fs::create_dir_all(root.join("simple")).unwrap();
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("http.server did not start within 20 s");
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let port: u16 = line
            .split(" port ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner {line:?}"));
        wait_http(&format!("http://127.0.0.1:{port}/simple/"), &mut child);
        PackageIndex {
            child,
            port,
            root: root.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple/", self.port)
    }

    /// Builds a wheel and (re)writes its project page.
    pub fn publish(&self, name: &str, version: &str, requires: &[&str]) {
        let norm = name.to_lowercase().replace(['_', '.'], "-");
        let dir = self.root.join("simple").join(&norm);
        std::fs::create_dir_all(&dir).unwrap();
        make_wheel(&dir, name, version, requires);
        let mut links = String::from("<!DOCTYPE html>\n<html><body>\n");
        let mut wheels: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".whl"))
            .collect();
        wheels.sort();
        for w in wheels {
            links.push_str(&format!("<a href=\"{w}\">{w}</a>\n"));
        }
        links.push_str("</body></html>\n");
        std::fs::write(dir.join("index.html"), links).unwrap();
    }
}

impl Drop for PackageIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The uv of the project's venv ($SWH_DEPLOY_VENV, else <repo>/.venv), or
/// `uv` from PATH.
pub fn uv() -> PathBuf {
    let venv = std::env::var_os("SWH_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let p = venv.join("bin/uv");
    if p.exists() {
        p
    } else {
        PathBuf::from("uv")
    }
}

/// A bare swh-apps remote and a clone with the given apps
/// (`(dir, requirements.txt, Dockerfile)`), committed and pushed on `main`.
pub struct AppsBed {
    pub remote: PathBuf,
    pub work: PathBuf,
}

impl AppsBed {
    pub fn new(root: &Path, apps: &[(&str, &str, &str)]) -> AppsBed {
        let remote = root.join("swh-apps.git");
        let work = root.join("swh-apps");
        sh(Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&remote));
        sh(Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .arg(&work));
        git(&work, &["config", "user.name", "Test"]);
        git(&work, &["config", "user.email", "test@example.invalid"]);
        for (app, reqs, dockerfile) in apps {
            let d = work.join("apps").join(app);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("requirements.txt"), reqs).unwrap();
            std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
            std::fs::write(d.join("entrypoint.sh"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
        }
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "initial"]);
        git(
            &work,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        git(&work, &["push", "-q", "-u", "origin", "main"]);
        AppsBed { remote, work }
    }
}
