//! `swh-deploy doctor` through the real binary, against real tools (ssh -G,
//! ssh-keygen, kubectl's kubeconfig, git remotes, uv, the SQLite journal):
//! every check that can fail here fails first, each with its fix, then
//! passes once the fix is applied; a bad site file is located.

mod common;

use common::{swh_deploy, text, venv};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use swh_deploy_journal::{Journal, NewRun};

fn uv() -> PathBuf {
    venv().join("bin/uv")
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
}

fn doctor(dir: &Path, uv: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let command = |args: &[&str]| {
        let mut c = swh_deploy(&["doctor"]);
        c.args(args)
            .env("SWH_DEPLOY_SITE", dir.join("site.toml"))
            .env("SWH_DEPLOY_JOURNAL", dir.join("journal.sqlite"))
            .env("SWH_DEPLOY_UV", uv)
            .env("HOME", dir.join("home"))
            .env("KUBECONFIG", dir.join("kubeconfig"))
            .env("REGISTRY_AUTH_FILE", dir.join("auth.json"))
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_CONFIG")
            .env_remove("SWH_DEPLOY_APPS_DIR")
            .env_remove("SWH_DEPLOY_CHARTS_DIR");
        c
    };
    let out = command(args).output().unwrap();
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let j = command(&json_args).output().unwrap();
    assert_eq!(j.status.code(), out.status.code());
    (out, serde_json::from_slice(&j.stdout).unwrap())
}

fn check<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {j}"))
}

#[test]
fn doctor_reports_each_problem_with_its_fix_then_passes_once_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    std::fs::write(
        dir.join("ssh_config"),
        format!(
            "Host host*\n  Port 2222\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  IdentityFile {d}/id\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("site.toml"),
        format!(
            r#"[site]
default_environment = "staging"

[ssh]
config = "{d}/ssh_config"

[environments.staging]
kube_context = "doctor-test-staging"

[groups.rpc]
environment = "staging"
nodes = "host[1-2]"

[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.storage"]
groups = ["rpc"]

[apps]
checkout = "{d}/swh-apps"

[registry]
host = "registry.doctor.example"
prefix = "swh"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    // A run that left a compensation pending.
    let mut j = Journal::open(&dir.join("journal.sqlite")).unwrap();
    let run = j
        .start_run(&NewRun {
            command_line: vec!["swh-deploy".into(), "upgrade".into()],
            mode: "long-standing".into(),
            parameters: serde_json::json!({}),
        })
        .unwrap();
    let comp = j.add_compensation(run, "host2", "start-cron").unwrap();
    drop(j);

    let missing_uv = dir.join("no-such-uv");
    let (out, j) = doctor(dir, &missing_uv, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    eprintln!("{stdout}");
    assert_eq!(j["schema"], 1);
    assert_eq!(check(&j, "site")["ok"], true);
    for name in [
        "ssh identity",
        "known_hosts",
        "kube contexts",
        "registry credentials",
        "uv",
        "swh-apps remote",
        "compensations",
    ] {
        assert_eq!(check(&j, name)["ok"], false, "{name}: {j}");
        assert!(check(&j, name)["fix"].as_str().unwrap().len() > 5, "{name}");
    }
    assert_eq!(j["problems"], 7);
    assert!(
        stdout.contains("FAIL known_hosts: no host key known for host[1-2] (2 host(s))"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "FAIL kube contexts: not in the kubeconfig: doctor-test-staging (environment staging)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL compensations: 1 pending on host2 (start-cron)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("     fix: `swh-deploy recover`"),
        "{stdout}"
    );
    assert!(stdout.ends_with("7 problem(s)\n"), "{stdout}");

    // Apply each fix.
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.join("id")));
    let key = std::fs::read_to_string(dir.join("id.pub")).unwrap();
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    std::fs::write(
        dir.join("known_hosts"),
        format!("[host1]:2222 {k}\n[host2]:2222 {k}\n", k = key.join(" ")),
    )
    .unwrap();
    sh(Command::new("kubectl")
        .args([
            "config",
            "set-context",
            "doctor-test-staging",
            "--cluster=c",
            "--user=u",
        ])
        .env("KUBECONFIG", dir.join("kubeconfig")));
    std::fs::write(
        dir.join("auth.json"),
        r#"{"auths": {"registry.doctor.example": {"auth": "dTpw"}}}"#,
    )
    .unwrap();
    sh(Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(dir.join("swh-apps.git")));
    sh(Command::new("git")
        .args(["clone", "-q"])
        .arg(dir.join("swh-apps.git"))
        .arg(dir.join("swh-apps")));
    let mut j = Journal::open(&dir.join("journal.sqlite")).unwrap();
    j.complete_compensation(comp).unwrap();
    drop(j);

    let (out, j) = doctor(dir, &uv(), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(j["problems"], 0);
    assert!(stdout.ends_with("no problem found\n"), "{stdout}");
    assert!(
        stdout.contains("ok   known_hosts: 2 host(s) known"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "ok   ssh identity: key file {}",
            dir.join("id").display()
        )),
        "{stdout}"
    );

    // A ClusterShell config_dir without groups.conf nor groups.d/.
    let good = std::fs::read_to_string(dir.join("site.toml")).unwrap();
    std::fs::create_dir_all(dir.join("clush")).unwrap();
    std::fs::write(
        dir.join("site.toml"),
        format!(
            "{good}\n[clustershell]\nconfig_dir = \"{}/clush\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let (out, j) = doctor(dir, &uv(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(check(&j, "clustershell")["ok"], false, "{j}");
    assert_eq!(j["problems"], 1, "{j}");
    std::fs::write(
        dir.join("clush/groups.conf"),
        "[Main]\ndefault: local\n\n[local]\nmap: true\n",
    )
    .unwrap();
    let (out, j) = doctor(dir, &uv(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(check(&j, "clustershell")["ok"], true, "{j}");

    // A bad site file: located, one problem, exit 1.
    std::fs::write(dir.join("site.toml"), "[groups.rpc]\nnodes = 3\n").unwrap();
    let (out, j) = doctor(dir, &uv(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(check(&j, "site")["ok"], false);
    let detail = check(&j, "site")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("site.toml:2:"), "{detail}");

    // A journal that cannot be created.
    let out = Command::new(common::bin())
        .args(["doctor", "--site"])
        .arg(dir.join("site.toml"))
        .args(["--journal", "/proc/self/no/journal.sqlite"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("FAIL journal: /proc/self/no/journal.sqlite: cannot be created"),
        "{}",
        text(&out.stdout)
    );
}
