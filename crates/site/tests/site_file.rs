//! Site files: the shipped examples parse, malformed files give the exact
//! `file:line:column: message`, and the site file is found in the documented
//! order.

use std::path::{Path, PathBuf};
use std::time::Duration;
use swh_deploy_site::{
    find_site_file_in, GroupMembers, Probe, ServiceKind, Site, SiteError, UnitName,
};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let site = Site::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!site.services.is_empty(), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected sandbox.toml and swh.toml, saw {seen}");
}

#[test]
fn sandbox_example_describes_the_test_bed() {
    let site = Site::load(&examples_dir().join("sandbox.toml")).unwrap();
    assert_eq!(site.name.as_deref(), Some("sandbox"));
    assert_eq!(site.default_environment.as_deref(), Some("staging"));
    assert_eq!(site.ssh.user.as_deref(), Some("root"));
    assert_eq!(site.ssh.connect_timeout, Duration::from_secs(5));
    assert_eq!(site.ssh.fanout, 32);
    let storage = site.service("storage").unwrap();
    assert_eq!(storage.kind, ServiceKind::Rpc);
    assert_eq!(storage.units[0].as_str(), "gunicorn-swh-storage");
    assert_eq!(storage.packages[0].as_str(), "python3-swh.storage");
    match &storage.health.probe {
        Probe::Http {
            port,
            path,
            expect,
            timeout,
        } => {
            assert_eq!(*port, 5002);
            assert_eq!(path, "/");
            assert_eq!(expect.as_deref(), Some("Software Heritage storage server"));
            assert_eq!(*timeout, Duration::from_secs(2));
        }
        other => panic!("unexpected probe {other:?}"),
    }
    assert_eq!(storage.health.interval, Duration::from_millis(500));
    let loader = site.service("loader-git").unwrap();
    assert_eq!(loader.units[0].as_str(), "swh-worker@loader_git");
    assert_eq!(loader.packages[0].as_str(), "python3-swh.loader.git");
    assert_eq!(
        site.group("@rpc").unwrap().members,
        GroupMembers::Nodes("host[1-2]".into())
    );
}

#[test]
fn swh_example_has_the_real_names() {
    let site = Site::load(&examples_dir().join("swh.toml")).unwrap();
    for g in ["swh-workers", "azure-workers", "staging-loader-workers"] {
        site.group(g).unwrap();
    }
    assert_eq!(
        site.group("azure-workers").unwrap().members,
        GroupMembers::Source {
            source: "local".into(),
            group: "azure-workers".into()
        }
    );
    let loaders = site.service("loaders").unwrap();
    let units: Vec<&str> = loaders.units.iter().map(UnitName::as_str).collect();
    assert_eq!(
        units,
        [
            "swh-worker@loader_git",
            "swh-worker@loader_mercurial",
            "swh-worker@loader_svn",
            "swh-worker@loader_npm"
        ]
    );
    let ports: Vec<(String, u16)> = site
        .services
        .values()
        .filter_map(|s| match s.health.probe {
            Probe::Http { port, .. } => Some((s.units[0].to_string(), port)),
            _ => None,
        })
        .collect();
    for expected in [
        ("gunicorn-swh-storage", 5002),
        ("gunicorn-swh-objstorage", 5003),
        ("gunicorn-swh-webapp", 5004),
        ("gunicorn-swh-vault", 5005),
        ("gunicorn-swh-deposit", 5006),
        ("gunicorn-swh-indexer-storage", 5007),
        ("gunicorn-swh-scheduler", 5008),
        ("gunicorn-swh-search", 5010),
        ("gunicorn-swh-counters", 5011),
    ] {
        assert!(
            ports.contains(&(expected.0.to_string(), expected.1)),
            "{expected:?} missing from {ports:?}"
        );
    }
    assert_eq!(
        site.environment("production")
            .unwrap()
            .kube_context
            .as_deref(),
        Some("archive-production-rke2")
    );
    assert_eq!(
        site.services_of_group("azure-workers")
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["indexer-journal-clients", "vault-cooker"]
    );
    assert_eq!(
        site.groups_in(Some("staging"))
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["staging-loader-workers", "staging-rpc", "staging-webapp"]
    );
}

const BASE: &str = r#"[environments.staging]

[groups.rpc]
environment = "staging"
nodes = "host[1-2]"
"#;

/// Parses `BASE` + `extra` as `bad.toml` and returns the error message.
fn error_of(extra: &str) -> String {
    let text = format!("{BASE}{extra}");
    match Site::parse(&text, Path::new("bad.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn wrong_type_is_located() {
    let msg = error_of(
        r#"
[services.storage]
kind = "rpc"
units = "gunicorn-swh-storage"
groups = ["rpc"]
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:9:9: invalid type: string \"gunicorn-swh-storage\", expected a sequence"
    );
}

#[test]
fn unknown_key_is_located() {
    let msg = error_of(
        r#"
[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
grups = ["rpc"]
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:10:1: unknown field `grups`, expected one of `kind`, `units`, `packages`, `groups`, `health`"
    );
}

#[test]
fn unknown_top_level_table_is_located() {
    let msg = error_of("\n[sevices.storage]\nkind = \"rpc\"\n");
    assert!(
        msg.starts_with("bad.toml:7:2: unknown field `sevices`, expected one of"),
        "{msg}"
    );
}

#[test]
fn bad_unit_name_is_located() {
    let msg = error_of(
        r#"
[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage", "gunicorn swh;reboot"]
groups = ["rpc"]
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:9:34: invalid systemd unit name `gunicorn swh;reboot`: character ' ' is not allowed (only ASCII letters, digits and `:-_.\\@`)"
    );
}

#[test]
fn bare_template_is_refused() {
    let msg = error_of(
        r#"
[services.workers]
kind = "worker"
units = ["swh-worker@"]
groups = ["rpc"]
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:9:10: unit `swh-worker@` is a bare template: give its instances, e.g. `swh-worker@{a,b}`"
    );
}

#[test]
fn bad_package_name_is_located() {
    let msg = error_of(
        r#"
[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
packages = ["python3-swh.Storage"]
groups = ["rpc"]
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:10:13: invalid Debian package name `python3-swh.Storage`: character 'S' is not allowed (only a-z, 0-9, `+`, `-` and `.`)"
    );
}

#[test]
fn duplicate_group_is_located() {
    let msg = error_of(
        r#"
[groups.rpc]
nodes = "host3"
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:7:9: duplicate key `rpc`: it is already defined above"
    );
}

#[test]
fn duplicate_group_in_a_service_is_located() {
    let msg = error_of(
        r#"
[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
groups = ["rpc", "@rpc"]
"#,
    );
    assert_eq!(msg, "bad.toml:10:18: duplicate group `rpc`");
}

#[test]
fn unknown_group_is_located() {
    let msg = error_of(
        r#"
[services.storage]
kind = "rpc"
units = ["gunicorn-swh-storage"]
groups = ["workers"]
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:10:11: unknown group `workers`, expected one of the [groups] tables (rpc)"
    );
}

#[test]
fn unknown_environment_is_located() {
    let msg = error_of("\n[groups.w]\nenvironment = \"prod\"\nnodes = \"w1\"\n");
    assert_eq!(
        msg,
        "bad.toml:8:15: unknown environment `prod`, expected one of the [environments] tables (staging)"
    );
}

#[test]
fn bad_kind_is_located() {
    let msg = error_of(
        r#"
[services.storage]
kind = "daemon"
units = ["gunicorn-swh-storage"]
groups = ["rpc"]
"#,
    );
    assert_eq!(
        msg,
        "bad.toml:8:8: unknown variant `daemon`, expected one of `worker`, `rpc`, `journal-client`"
    );
}

#[test]
fn health_check_errors_are_located() {
    let service = |health: &str| {
        format!(
            "\n[services.storage]\nkind = \"rpc\"\nunits = [\"gunicorn-swh-storage\"]\ngroups = [\"rpc\"]\nhealth = {health}\n"
        )
    };
    assert_eq!(
        error_of(&service(
            r#"{ check = "http", expect = "SWH Storage API server" }"#
        )),
        "bad.toml:11:20: an `http` health check needs `port` (e.g. 5002 for swh-storage)"
    );
    assert_eq!(
        error_of(&service(r#"{ check = "http", port = 70000 }"#)),
        "bad.toml:11:35: invalid port 70000: expected 1 to 65535"
    );
    assert_eq!(
        error_of(&service(r#"{ check = "systemd", port = 5002 }"#)),
        "bad.toml:11:38: `port` is not allowed for a `systemd` health check"
    );
    assert_eq!(
        error_of(&service(r#"{ check = "ping" }"#)),
        "bad.toml:11:20: unknown health check `ping`, expected `systemd`, `http` or `command`"
    );
    assert_eq!(
        error_of(&service(r#"{ check = "http", port = 5002, timeout = "5 s" }"#)),
        "bad.toml:11:51: invalid duration `5 s`: expected a number followed by `ms`, `s`, `m` or `h`"
    );
    assert_eq!(
        error_of(&service(r#"{ check = "command" }"#)),
        "bad.toml:11:20: a `command` health check needs `command` (a shell command, healthy when it exits 0)"
    );
}

#[test]
fn group_needs_nodes_or_source() {
    assert_eq!(
        error_of("\n[groups.w]\nenvironment = \"staging\"\n"),
        "bad.toml:7:1: group `w` needs `nodes` (a node set) or `source` (a ClusterShell group source)"
    );
    assert_eq!(
        error_of("\n[groups.w]\nnodes = \"w1\"\nsource = \"local\"\n"),
        "bad.toml:9:10: a group has either `nodes` (a node set) or `source` (a ClusterShell group source), not both"
    );
    assert_eq!(
        error_of("\n[groups.w]\nnodes = \"w1;reboot\"\n"),
        "bad.toml:8:9: invalid node set `w1;reboot`: character ';' is not allowed"
    );
}

#[test]
fn toml_syntax_error_is_located() {
    let msg = error_of("\n[services.storage\nkind = \"rpc\"\n");
    assert!(msg.starts_with("bad.toml:7:18: "), "{msg}");
}

#[test]
fn ssh_options_are_validated() {
    assert_eq!(
        error_of("\n[ssh]\nuser = \"root; rm\"\n"),
        "bad.toml:8:8: invalid user `root; rm`: expected a login name (a-z, 0-9, `_-.`, not starting with a digit or `-`)"
    );
    assert_eq!(
        error_of("\n[ssh]\noptions = [\"ProxyCommand\"]\n"),
        "bad.toml:8:12: invalid ssh option `ProxyCommand`: expected `Key=Value` (or `Key Value`) as for ssh -o"
    );
    assert_eq!(
        error_of("\n[ssh]\noptions = [\"ServerAliveInterval=5\", \"stricthostkeychecking=No\"]\n"),
        "bad.toml:8:37: `StrictHostKeyChecking=No` is refused: swh-deploy only talks to hosts whose keys are known (pin them in known_hosts; first contact with a new host is only with the command-line flag --accept-new-host-keys)"
    );
    assert_eq!(
        error_of("\n[ssh]\nfanout = 0\n"),
        "bad.toml:8:10: fanout must be at least 1"
    );
}

#[test]
fn relative_paths_are_relative_to_the_site_file() {
    let text = "[ssh]\nconfig = \"ssh_config\"\n[clustershell]\nconfig_dir = \"/etc/cs\"\n";
    let site = Site::parse(text, Path::new("/srv/site/swh-deploy.toml")).unwrap();
    assert_eq!(site.ssh.config, Some(PathBuf::from("/srv/site/ssh_config")));
    assert_eq!(site.clustershell.config_dir, Some(PathBuf::from("/etc/cs")));
}

#[test]
fn unknown_names_list_the_known_ones() {
    let site = Site::parse(BASE, Path::new("s.toml")).unwrap();
    assert_eq!(
        site.group("@workers").unwrap_err().to_string(),
        "no group `workers` in s.toml (known: rpc)"
    );
    assert_eq!(
        site.service("storage").unwrap_err().to_string(),
        "no service `storage` in s.toml (known: none)"
    );
}

#[test]
fn load_reports_unreadable_file() {
    let err = Site::load(Path::new("/nonexistent/site.toml")).unwrap_err();
    assert!(matches!(err, SiteError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with("cannot read site file /nonexistent/site.toml: "));
}

#[test]
fn site_file_search_order() {
    let dir = std::env::temp_dir().join(format!("swh-deploy-site-find-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cwd")).unwrap();
    let explicit = dir.join("explicit.toml");
    let env = dir.join("env.toml");
    let local = dir.join("cwd/swh-deploy.toml");
    let system = dir.join("system.toml");
    for f in [&explicit, &env, &local, &system] {
        std::fs::write(f, "").unwrap();
    }
    let cwd = dir.join("cwd");
    let find = |explicit: Option<&Path>, env: Option<&Path>| {
        find_site_file_in(
            explicit,
            env.map(|e| e.as_os_str().to_owned()),
            &cwd,
            &system,
        )
    };
    assert_eq!(find(Some(&explicit), Some(&env)).unwrap(), explicit);
    assert_eq!(find(None, Some(&env)).unwrap(), env);
    assert_eq!(find(None, None).unwrap(), local);
    std::fs::remove_file(&local).unwrap();
    assert_eq!(find(None, None).unwrap(), system);
    std::fs::remove_file(&system).unwrap();
    let err = find(None, None).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "no site file found: give one with --site FILE or SWH_DEPLOY_SITE, or create "
        ),
        "{err}"
    );
    assert!(err.contains("cwd/swh-deploy.toml"), "{err}");
    let missing = dir.join("missing.toml");
    assert_eq!(
        find(Some(&missing), None).unwrap_err().to_string(),
        format!(
            "site file {} (from --site) does not exist",
            missing.display()
        )
    );
    assert_eq!(
        find(None, Some(&missing)).unwrap_err().to_string(),
        format!(
            "site file {} (from SWH_DEPLOY_SITE) does not exist",
            missing.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_node_set_is_located() {
    let msg = error_of("\n[groups.w]\nnodes = \"w[1-3,5-2]\"\n");
    // The column is the faulty range's.
    assert_eq!(
        msg,
        "bad.toml:8:16: invalid node set `w[1-3,5-2]`: Parse error: bad range: \"invalid values in range : \"5-2\"\""
    );
}

#[test]
fn groups_resolve_through_the_site() {
    let site = Site::load(&examples_dir().join("sandbox.toml")).unwrap();
    assert_eq!(
        site.nodes("@rpc,@workers").unwrap().to_string(),
        "host[1-4]"
    );
    assert_eq!(site.nodes("@workers!host3").unwrap().to_string(), "host4");
    assert_eq!(site.nodes("@site:rpc").unwrap().to_string(), "host[1-2]");
    assert_eq!(site.group_hosts("@rpc").unwrap().len(), 2);
    assert!(site
        .group_hosts("nope")
        .unwrap_err()
        .to_string()
        .starts_with("no group `nope`"));
    let err = site.nodes("host[3-1]").unwrap_err().to_string();
    assert!(
        err.starts_with("invalid node set `host[3-1]`: Parse error: "),
        "{err}"
    );
}

#[test]
fn nested_groups_and_clustershell_sources() {
    let dir = std::env::temp_dir().join(format!("swh-deploy-site-cs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cs/groups.d")).unwrap();
    std::fs::write(
        dir.join("cs/groups.conf"),
        format!(
            "[Main]\ndefault: local\nautodir: {}\n",
            dir.join("cs/groups.d").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("cs/groups.d/local.yaml"),
        "local:\n    swh-workers: 'worker[01-03]'\n    azure: 'azw[1-2]'\n",
    )
    .unwrap();
    let text = r#"
[clustershell]
config_dir = "cs"

[groups.swh-workers]
source = "local"

[groups.azure-workers]
source = "local"
group = "azure"

[groups.all-workers]
nodes = "@swh-workers,@azure-workers"
"#;
    let site = Site::parse(text, &dir.join("site.toml")).unwrap();
    assert_eq!(
        site.group_hosts("swh-workers").unwrap().to_string(),
        "worker[01-03]"
    );
    assert_eq!(
        site.group_hosts("azure-workers").unwrap().to_string(),
        "azw[1-2]"
    );
    assert_eq!(
        site.group_hosts("all-workers").unwrap().to_string(),
        "azw[1-2],worker[01-03]"
    );
    // A group only ClusterShell knows still resolves, as for clush.
    assert_eq!(site.nodes("@local:azure").unwrap().to_string(), "azw[1-2]");
    assert_eq!(site.nodes("@azure").unwrap().to_string(), "azw[1-2]");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn release_section_is_read_and_its_urls_checked() {
    let text = format!(
        "{BASE}\n[release]\nindex_url = \"https://pypi.org/simple/\"\n\
         apt_url = \"https://debian.softwareheritage.org/\"\napt_suite = \"bookworm-swh\"\n"
    );
    let site = Site::parse(&text, Path::new("ok.toml")).unwrap();
    let r = site.release.unwrap();
    assert_eq!(r.index_url.as_deref(), Some("https://pypi.org/simple/"));
    assert_eq!(
        r.apt_url.as_deref(),
        Some("https://debian.softwareheritage.org/")
    );
    assert_eq!(r.apt_suite.as_deref(), Some("bookworm-swh"));
    assert!(Site::parse(BASE, Path::new("ok.toml"))
        .unwrap()
        .release
        .is_none());
    assert_eq!(
        error_of("\n[release]\nindex_url = \"pypi.org/simple\"\n"),
        "bad.toml:8:13: `pypi.org/simple` is not a URL: expected http://... or https://..."
    );
}

/// Every spelling of an option that weakens host authentication is refused
/// at its own line and column (the option's opening quote), whatever comes
/// before it on the line.
#[test]
fn ssh_options_weakening_host_keys_are_refused_in_every_spelling() {
    let refused = [
        "StrictHostKeyChecking=false",
        "StrictHostKeyChecking=no",
        "StrictHostKeyChecking no",
        "stricthostkeychecking = OFF",
        "STRICTHOSTKEYCHECKING=accept-new",
        "StrictHostKeyChecking\\task",
        "StrictHostKeyChecking=\\\"no\\\"",
        "StrictHostKeyChecking=0",
        "UserKnownHostsFile=/dev/null",
        "userknownhostsfile /tmp/known_hosts",
        "UserKnownHostsFile=~/.ssh/known_hosts /dev/null",
        "GlobalKnownHostsFile=/dev/null",
        "KnownHostsCommand=/bin/cat /tmp/keys",
        "CheckHostIP=yes",
        "checkhostip 1",
        "VerifyHostKeyDNS=true",
        "ProxyCommand=nc %h %p",
        "proxycommand sh -c id",
        "LocalCommand=id",
        "PermitLocalCommand=yes",
        "NoHostAuthenticationForLocalhost=yes",
    ];
    for opt in refused {
        // Line 9, after another (valid) option on line 8: the column is the
        // opening quote of the refused one.
        let text = format!("\n[ssh]\noptions = [\"Port=22\",\n  \"{opt}\"]\n");
        let e = error_of(&text);
        assert!(e.starts_with("bad.toml:9:3: `"), "{opt}: {e}");
        assert!(e.contains("refused"), "{opt}: {e}");
    }
    for ok in [
        "StrictHostKeyChecking=yes",
        "StrictHostKeyChecking true",
        "UserKnownHostsFile=~/.ssh/known_hosts ~/.ssh/swh_known_hosts",
        "GlobalKnownHostsFile /etc/ssh/ssh_known_hosts",
        "KexAlgorithms=curve25519-sha256",
        "Port 2222",
    ] {
        let text = format!("{BASE}\n[ssh]\noptions = [\"{ok}\"]\n");
        let site = Site::parse(&text, Path::new("ok.toml")).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(site.ssh.options, [ok.replace("\\t", "\t")]);
    }
}

#[test]
fn node_sets_name_only_host_names() {
    assert_eq!(
        error_of("\n[groups.evil]\nnodes = \"-oProxyCommand=id\"\n"),
        "bad.toml:8:10: invalid node set `-oProxyCommand=id`: `-oProxyCommand=id` is not a host name: character '=' is not allowed (RFC 1123: letters, digits, `-` and `.`)"
    );
    assert_eq!(
        error_of("\n[groups.evil]\nnodes = \"web[1-2],-x[1-3]\"\n"),
        "bad.toml:8:19: invalid node set `web[1-2],-x[1-3]`: `-x[1-3]` is not a host name: label `-x0` starts or ends with `-`"
    );
    let site = Site::parse(BASE, Path::new("s.toml")).unwrap();
    assert_eq!(
        site.nodes("host1,-oProxyCommand=id").unwrap_err().to_string(),
        "node set `host1,-oProxyCommand=id`: `-oProxyCommand=id` is not a host name: character '=' is not allowed (RFC 1123: letters, digits, `-` and `.`)"
    );
}

#[test]
fn clustershell_group_sources_name_only_host_names() {
    let dir = std::env::temp_dir().join(format!("swh-deploy-site-csbad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cs/groups.d")).unwrap();
    std::fs::write(
        dir.join("cs/groups.conf"),
        format!(
            "[Main]\ndefault: local\nautodir: {}\n",
            dir.join("cs/groups.d").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("cs/groups.d/local.yaml"),
        "local:\n    good: 'w[1-2]'\n    evil: 'w1,-oProxyCommand=id'\n",
    )
    .unwrap();
    let text = "[clustershell]\nconfig_dir = \"cs\"\n\n[groups.evil]\nsource = \"local\"\n\n[groups.good]\nsource = \"local\"\n";
    let site = Site::parse(text, &dir.join("site.toml")).unwrap();
    assert_eq!(site.group_hosts("good").unwrap().to_string(), "w[1-2]");
    let e = site.group_hosts("evil").unwrap_err().to_string();
    assert!(
        e.contains("ClusterShell group source `local`, group `evil`: `-oProxyCommand=id` is not a host name"),
        "{e}"
    );
    let e = site.nodes("@local:evil").unwrap_err();
    assert!(e.to_string().contains("group source `local`"), "{e}");
    // Typed, so that `site check` tells it from a source not available.
    assert!(
        matches!(&e, SiteError::NotAHostName { name, .. } if name == "-oProxyCommand=id"),
        "{e:?}"
    );
    let e = site.resolve_groups().unwrap_err();
    assert!(e.makes_site_unusable());
    let SiteError::UnusableGroup { group, source, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(group, "evil");
    assert!(matches!(**source, SiteError::NotAHostName { .. }));
    assert!(
        e.to_string().starts_with("group @evil (") && e.to_string().contains("site.toml:4:9): "),
        "{e}"
    );
    // A group whose source is not available here is not fatal.
    let text = "[clustershell]\nconfig_dir = \"cs\"\n\n[groups.good]\nsource = \"local\"\n\n[groups.gone]\nsource = \"nowhere\"\n";
    let site = Site::parse(text, &dir.join("site.toml")).unwrap();
    let groups = site.resolve_groups().unwrap();
    assert_eq!(groups["good"].as_ref().unwrap().to_string(), "w[1-2]");
    let gone = groups["gone"].as_ref().unwrap_err();
    assert!(!gone.makes_site_unusable(), "{gone:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn apps_python_version_is_read_and_checked() {
    let site = Site::parse(
        &format!("{BASE}\n[apps]\ncheckout = \"/src/swh-apps\"\npython_version = \"3.11\"\n"),
        Path::new("ok.toml"),
    )
    .unwrap();
    assert_eq!(site.apps.unwrap().python_version.as_deref(), Some("3.11"));
    let site = Site::parse(
        &format!("{BASE}\n[apps]\ncheckout = \"/src/swh-apps\"\n"),
        Path::new("ok.toml"),
    )
    .unwrap();
    assert_eq!(site.apps.unwrap().python_version, None);
    assert_eq!(
        error_of("\n[apps]\ncheckout = \"/src/swh-apps\"\npython_version = \"3.x\"\n"),
        "bad.toml:9:18: `3.x` is not a Python version: expected 3.N or 3.N.M (e.g. 3.11)"
    );
}

#[test]
fn a_huge_node_set_is_refused_before_it_is_expanded() {
    let text = "[environments.staging]\n\n[groups.rpc]\nenvironment = \"staging\"\nnodes = \"x[1-999999999]\"\n";
    let site = Site::parse(text, Path::new("huge.toml")).unwrap();
    let started = std::time::Instant::now();
    let err = site.group_hosts("rpc").unwrap_err().to_string();
    assert!(
        err.contains("names 999999999 hosts, more than the 100000"),
        "{err}"
    );
    let err = site.nodes("y[1-100001]").unwrap_err();
    assert!(err.to_string().contains("names 100001 hosts"), "{err}");
    assert!(
        matches!(&err, SiteError::TooManyHosts { count: 100001, .. }),
        "{err:?}"
    );
    let err = site.resolve_groups().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("group @rpc (huge.toml:3:9): node set `@site:rpc` names 999999999 hosts"),
        "{err}"
    );
    // At the limit, a set is planned as before.
    assert_eq!(
        site.nodes("z[1-100000]").unwrap().len(),
        swh_deploy_site::MAX_HOSTS
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn ssh_connection_reuse_is_on_unless_the_site_turns_it_off() {
    let site = Site::parse(BASE, Path::new("s.toml")).unwrap();
    assert!(site.ssh.reuse);
    let off = format!("{BASE}\n[ssh]\nreuse = false\n");
    assert!(!Site::parse(&off, Path::new("s.toml")).unwrap().ssh.reuse);
    let msg = error_of("\n[ssh]\nreuse = \"no\"\n");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn mux_sessions_are_on_unless_the_site_turns_them_off() {
    let site = Site::parse(BASE, Path::new("s.toml")).unwrap();
    assert!(site.ssh.mux);
    let off = format!("{BASE}\n[ssh]\nmux = false\n");
    let off = Site::parse(&off, Path::new("s.toml")).unwrap();
    assert!(!off.ssh.mux);
    assert!(off.ssh.reuse, "mux = false keeps the masters");
    let msg = error_of("\n[ssh]\nmux = 0\n");
    assert!(msg.contains("invalid type"), "{msg}");
}
