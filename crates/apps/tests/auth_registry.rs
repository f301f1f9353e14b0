//! Tag listing against a registry that wants credentials (Debian's
//! docker-registry with htpasswd basic auth on loopback): the credentials
//! come from the docker config only, and never show in errors. Runs in its
//! own process (it sets DOCKER_CONFIG).

mod common;

use base64::Engine;
use common::put_tag_auth;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use swh_deploy_apps::registry::Registry as RegistryRef;

/// docker-registry with htpasswd auth (the test bed's guard has no auth
/// option); killed on drop.
struct AuthRegistry {
    child: Child,
    port: u16,
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, user: &str, password: &str) -> AuthRegistry {
    let hash = common::sh(Command::new("python3").args([
        "-W",
        "ignore",
        "-c",
        "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
        password,
    ]));
    std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             auth:\n  htpasswd:\n    realm: swh-test\n    path: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display(),
            dir.join("htpasswd").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("docker-registry");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reg = AuthRegistry { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            reg.child.try_wait().unwrap().is_none(),
            "docker-registry exited"
        );
        assert!(
            Instant::now() < deadline,
            "docker-registry did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reg.port = port;
    reg
}

#[test]
fn tags_with_basic_auth_from_docker_config() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = start(tmp.path(), "alice", "pw-Secret-1");
    let url = format!("http://127.0.0.1:{}", reg.port);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:pw-Secret-1")
    );
    for t in ["20250117.1", "20250117.2", "latest"] {
        put_tag_auth(&url, "swh/apps/graph", t, Some(&basic));
    }
    let r = RegistryRef::parse(&format!("{url}/swh/apps")).unwrap();
    std::env::remove_var("REGISTRY_AUTH_FILE");
    std::env::remove_var("XDG_RUNTIME_DIR");

    // No credentials: a clear error naming the host.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::env::set_var("DOCKER_CONFIG", &empty);
    let e = r.tags("graph", None).unwrap_err().to_string();
    assert!(
        e.contains("credentials") && e.contains(&format!("127.0.0.1:{}", reg.port)),
        "{e}"
    );

    // Wrong password: refused, and the password is not in the error.
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let write = |pw: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{pw}"));
        std::fs::write(
            docker.join("config.json"),
            format!(
                r#"{{"auths": {{"127.0.0.1:{}": {{"auth": "{auth}"}}}}}}"#,
                reg.port
            ),
        )
        .unwrap();
    };
    write("wrong-Secret-2");
    std::env::set_var("DOCKER_CONFIG", &docker);
    let e = r.tags("graph", None).unwrap_err().to_string();
    assert!(e.contains("401"), "{e}");
    assert!(!e.contains("wrong-Secret-2"), "{e}");

    // Right password, pages of one tag.
    write("pw-Secret-1");
    let mut tags = r.tags("graph", Some(1)).unwrap();
    tags.sort();
    assert_eq!(tags, vec!["20250117.1", "20250117.2", "latest"]);
}
