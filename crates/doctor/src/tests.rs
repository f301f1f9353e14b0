use super::checks::*;
use super::*;
use std::path::Path;
use std::process::Command;

fn site(dir: &Path, extra: &str) -> Site {
    let text = format!("[site]\nname = \"t\"\n{extra}");
    Site::parse(&text, &dir.join("site.toml")).unwrap()
}

fn settings(dir: &Path) -> HostSettings {
    HostSettings {
        journal: Some(dir.join("journal.sqlite")),
        uv: dir.join("no-such-uv"),
        ..HostSettings::default()
    }
}

#[test]
fn a_site_that_cannot_be_loaded_is_the_one_site_problem() {
    let dir = tempfile::tempdir().unwrap();
    let err = Site::parse("[groups.rpc]\nnodes = 3\n", &dir.path().join("site.toml")).unwrap_err();
    let d = examine(Err(err), &settings(dir.path()));
    let names: Vec<&str> = d.checks.iter().map(|c| c.check).collect();
    assert_eq!(names, ["site", "journal"]);
    assert!(!d.checks[0].ok);
    assert!(
        d.checks[0].detail.contains("site.toml:2:"),
        "{:?}",
        d.checks[0]
    );
    assert_eq!((d.problems, d.exit()), (1, Exit::Failed));
    let text = d.render();
    assert!(text.starts_with("FAIL site: "), "{text}");
    assert!(
        text.contains("\n     fix: correct the site file (docs/site.md)"),
        "{text}"
    );
    assert!(text.ends_with("1 problem(s)\n"), "{text}");
}

#[test]
fn a_site_without_hosts_or_elastic_path_has_nothing_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = examine(Ok(site(dir.path(), "")), &settings(dir.path()));
    let names: Vec<&str> = d.checks.iter().map(|c| c.check).collect();
    // No [apps]: no uv check although uv is missing; no [registry], no
    // kube context: not listed.
    assert_eq!(
        names,
        [
            "site",
            "ssh identity",
            "known_hosts",
            "clustershell",
            "journal"
        ]
    );
    let known = &d.checks[2];
    assert_eq!(
        (known.ok, known.detail.as_str()),
        (true, "the site has no host")
    );
    let json = serde_json::to_string(&d).unwrap();
    assert!(
        json.starts_with("{\"schema\":1,\"checks\":[{\"check\":\"site\",\"ok\":true,"),
        "{json}"
    );
}

#[test]
fn clustershell_config_dir_needs_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let clush = dir.path().join("clush");
    std::fs::create_dir(&clush).unwrap();
    let s = site(
        dir.path(),
        &format!("[clustershell]\nconfig_dir = \"{}\"\n", clush.display()),
    );
    let c = clustershell(&s);
    assert!(!c.ok);
    assert!(
        c.detail.contains("has no groups.conf nor groups.d/"),
        "{c:?}"
    );
    std::fs::create_dir(clush.join("groups.d")).unwrap();
    assert!(clustershell(&s).ok);
    assert!(clustershell(&site(dir.path(), "")).ok);
}

#[test]
fn journal_not_created_yet_is_fine_and_pending_compensations_are_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/journal.sqlite");
    let c = journal(Some(&path));
    assert_eq!(c.len(), 1);
    assert!(c[0].ok && c[0].detail.contains("not created yet"), "{c:?}");
    let c = journal(Some(Path::new("/proc/self/no/journal.sqlite")));
    assert!(
        !c[0].ok
            && c[0]
                .detail
                .ends_with("cannot be created (its directory is not writable)")
    );

    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut j = swh_deploy_journal::Journal::open(&path).unwrap();
    let run = j
        .start_run(&swh_deploy_journal::NewRun {
            command_line: vec!["swh-deploy".into()],
            mode: "nominal".into(),
            parameters: serde_json::json!({}),
        })
        .unwrap();
    for h in ["host1", "host2"] {
        j.add_compensation(run, h, "start-puppet").unwrap();
    }
    drop(j);
    let c = journal(Some(&path));
    assert_eq!(c.len(), 2);
    assert!(c[0].ok);
    assert_eq!(c[1].check, "compensations");
    assert_eq!(
        c[1].detail,
        "2 pending on host[1-2] (start-puppet): puppet or cron may still be off"
    );
}

#[test]
fn uv_that_is_missing_or_failing_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let c = uv(&dir.path().join("no-such-uv"));
    assert!(!c.ok && c.detail.contains("(app freeze needs it)"), "{c:?}");
    let c = uv(Path::new("false"));
    assert!(
        !c.ok && c.detail.starts_with("uv --version failed"),
        "{c:?}"
    );
}

#[test]
fn known_hosts_names_follow_ssh_g() {
    let kv = parse_ssh_g("hostname 10.0.0.1\nport 2222\nHostKeyAlias none\n");
    assert_eq!(known_hosts_name(&kv, "web1"), "[10.0.0.1]:2222");
    let kv = parse_ssh_g("hostname 10.0.0.1\nport 22\nhostkeyalias web1.internal\n");
    assert_eq!(known_hosts_name(&kv, "web1"), "web1.internal");
    assert_eq!(known_hosts_name(&[], "web1"), "web1");
    assert_eq!(
        expand_home("~/.ssh/id", Some(Path::new("/home/a"))),
        Path::new("/home/a/.ssh/id")
    );
    assert_eq!(expand_home("~/.ssh/id", None), Path::new("~/.ssh/id"));
}

#[test]
fn git_remotes_are_reached_with_git_ls_remote() {
    let dir = tempfile::tempdir().unwrap();
    let sh = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&["init", "-q", "--bare", "apps.git"]);
    sh(&["clone", "-q", "apps.git", "apps"]);
    let c = git_remote("swh-apps remote", &dir.path().join("apps"), "origin");
    assert!(c.ok, "{c:?}");
    let c = git_remote("swh-apps remote", &dir.path().join("apps"), "upstream");
    assert!(
        !c.ok && c.detail.contains("git ls-remote upstream failed"),
        "{c:?}"
    );
    assert!(c.fix.unwrap().contains("with a remote named upstream"));
    // The site's [apps] remote, in the checkout $SWH_DEPLOY_APPS_DIR names.
    let s = site(dir.path(), "[apps]\ncheckout = \"/nonexistent\"\n");
    let host = HostSettings {
        apps_dir: Some(dir.path().join("apps")),
        ..HostSettings::default()
    };
    let c = git_remotes(&s, &host);
    assert_eq!(c.len(), 1);
    assert!(c[0].ok, "{c:?}");
}

#[test]
fn a_plain_http_registry_needs_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = site(
        dir.path(),
        "[registry]\nhost = \"127.0.0.1:5000\"\nprefix = \"swh\"\ninsecure = true\n",
    );
    let c = registry(&s).unwrap();
    assert!(c.ok && c.detail.contains("plain-HTTP"), "{c:?}");
    assert!(registry(&site(dir.path(), "")).is_none());
}
