//! Helpers for the apps tests. The registry (Debian's docker-registry on
//! loopback) and the package index come from the test bed crate
//! (`swh_deploy_testbed::components`); here: registry API helpers to seed
//! tags, a small swh-apps remote with chosen apps, and the venv's uv.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Pushes a tiny manifest (empty config, no layers) as `name:tag` to the
/// registry at `url` through the distribution API.
pub fn put_tag(url: &str, name: &str, tag: &str) {
    put_tag_auth(url, name, tag, None)
}

/// [`put_tag`] with an `Authorization` header value.
pub fn put_tag_auth(url: &str, name: &str, tag: &str, auth: Option<&str>) {
    use sha2::Digest;
    let config = b"{}";
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(config));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let with = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| match auth {
        Some(a) => r.header("Authorization", a),
        None => r,
    };
    let r = with(agent.post(format!("{url}/v2/{name}/blobs/uploads/")))
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
        format!("{url}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = with(agent.put(format!("{location}{sep}digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .send(&config[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "blob upload");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let mut r = with(agent.put(format!("{url}/v2/{name}/manifests/{tag}")))
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
pub fn tags(url: &str, name: &str) -> Vec<String> {
    let mut r = ureq::get(format!("{url}/v2/{name}/tags/list"))
        .call()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
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
