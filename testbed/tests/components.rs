//! Tests of the optional test bed components against the real tools:
//! docker-registry + skopeo, git, busybox httpd + uv/pip (the hosts' real
//! puppet agent and server: tests/puppet.rs).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use swh_deploy_testbed::components::{
    self, http_get, GitRemotes, PackageIndex, Registry, StaticHttp,
};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

fn process_gone(pid: u32) -> bool {
    // Reaped by stop(): no /proc entry at all (not even a zombie).
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("SWH_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    let p = venv.join("bin").join(tool);
    assert!(
        p.exists(),
        "{} missing: run scripts/install-deps (or set SWH_DEPLOY_VENV)",
        p.display()
    );
    p
}

#[test]
fn static_http_serves_a_directory_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("hello.txt"), "hello from the test bed\n").unwrap();
    let server = StaticHttp::start(tmp.path(), IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    assert!(server.addr().ip().is_loopback());
    let r = http_get(server.addr(), "/hello.txt", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from the test bed\n");
    let r = http_get(server.addr(), "/missing", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 404);
    let pid = server.pid().unwrap();
    let addr = server.addr();
    server.stop().unwrap();
    assert!(process_gone(pid));
    assert!(http_get(addr, "/hello.txt", Duration::from_secs(1)).is_err());
}

#[test]
fn static_http_serves_the_apt_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = swh_deploy_testbed::aptrepo::build(tmp.path(), &["1.0-1~swh1"]).unwrap();
    let server = StaticHttp::start(&repo.dir, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    let r = http_get(server.addr(), "/Packages", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fs::read(repo.dir.join("Packages")).unwrap());
    // apt itself, pointed at nothing but this repository.
    let state = tmp.path().join("apt");
    for d in ["lists/partial", "cache/archives/partial", "etc"] {
        fs::create_dir_all(state.join(d)).unwrap();
    }
    fs::write(
        state.join("etc/sources.list"),
        format!("{}\n", repo.sources_line(&server.url())),
    )
    .unwrap();
    let apt_opts = |cmd: &mut Command| {
        cmd.arg("-o")
            .arg(format!(
                "Dir::Etc::SourceList={}",
                state.join("etc/sources.list").display()
            ))
            .arg("-o")
            .arg("Dir::Etc::SourceParts=/nonexistent")
            .arg("-o")
            .arg(format!(
                "Dir::State::Lists={}",
                state.join("lists").display()
            ))
            .arg("-o")
            .arg(format!("Dir::Cache={}", state.join("cache").display()))
            .arg("-o")
            .arg("Acquire::Languages=none")
            .arg("-o")
            .arg("Debug::NoLocking=1");
    };
    let mut update = Command::new("apt-get");
    apt_opts(&mut update);
    let out = run(update.arg("update"));
    let (text, errors) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!text.contains("Err:"), "{text}");
    // No warning either (e.g. "Invalid 'Date' entry in Release file").
    assert!(!errors.contains("W:") && !errors.contains("E:"), "{errors}");
    let mut policy = Command::new("apt-cache");
    apt_opts(&mut policy);
    let out = stdout(policy.args(["policy", "python3-swh.storage"]));
    assert!(out.contains("Candidate: 1.0-1~swh1"), "{out}");
    drop(server);
}

/// docker-registry answers /v2/ on loopback, takes a push from skopeo of an
/// OCI layout, lists the tag, and is gone once dropped.
#[test]
fn registry_answers_and_accepts_a_push() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tmp.path().join("registry")).unwrap();
    assert!(registry.addr().ip().is_loopback());
    let r = http_get(registry.addr(), "/v2/", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("Docker-Distribution-Api-Version: registry/2.0")),
        "{:?}",
        r.headers
    );
    let config = fs::read_to_string(registry.dir().join("config.yml")).unwrap();
    assert!(
        config.contains(&format!("addr: '{}'", registry.host())),
        "{config}"
    );

    let layout = tmp.path().join("layout");
    let digest = components::write_oci_layout(&layout, "20250117.1", "loader_git").unwrap();
    let dest = format!("docker://{}/swh/loader_git:20250117.1", registry.host());
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--quiet",
        ])
        .arg(format!("oci:{}:20250117.1", layout.display()))
        .arg(&dest));
    let tags = http_get(
        registry.addr(),
        "/v2/swh/loader_git/tags/list",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(tags.status, 200);
    assert!(tags.text().contains("\"20250117.1\""), "{}", tags.text());
    let listed = stdout(
        Command::new("skopeo")
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}/swh/loader_git", registry.host())),
    );
    assert!(listed.contains("20250117.1"), "{listed}");
    let inspect = stdout(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(&dest),
    );
    assert_eq!(inspect.trim(), digest);

    let pid = registry.pid().unwrap();
    let addr = registry.addr();
    drop(registry);
    assert!(process_gone(pid));
    assert!(http_get(addr, "/v2/", Duration::from_secs(1)).is_err());
}

fn git(dir: &Path, args: &[&str]) -> String {
    stdout(
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1"),
    )
}

#[test]
fn git_remotes_clone_with_their_branches_tags_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let remotes = GitRemotes::create(&tmp.path().join("remotes")).unwrap();
    let work = tmp.path().join("clones");
    fs::create_dir_all(&work).unwrap();

    // Module: master, tags v1.0.0 and v1.1.0 (annotated), one commit after.
    git(&work, &["clone", "-q", &remotes.module.url, "module"]);
    let module = work.join("module");
    assert_eq!(git(&module, &["branch", "--show-current"]).trim(), "master");
    assert_eq!(git(&module, &["tag", "--list"]), "v1.0.0\nv1.1.0\n");
    assert_eq!(git(&module, &["cat-file", "-t", "v1.1.0"]).trim(), "tag");
    assert!(git(&module, &["describe", "--tags"]).starts_with("v1.1.0-1-g"));
    let pyproject = fs::read_to_string(module.join("pyproject.toml")).unwrap();
    assert!(
        pyproject.contains("name = \"swh.loader.git\""),
        "{pyproject}"
    );
    assert!(module.join("swh/loader/git/loader.py").is_file());

    // swh-apps: apps/<app>/{Dockerfile, entrypoint.sh, requirements*.txt}.
    git(&work, &["clone", "-q", &remotes.apps.url, "apps"]);
    let apps = work.join("apps");
    for (app, dist) in components::APPS {
        let d = apps.join("apps").join(app);
        for file in [
            "Dockerfile",
            "entrypoint.sh",
            "requirements.txt",
            "requirements-frozen.txt",
        ] {
            assert!(d.join(file).is_file(), "{app}/{file} missing");
        }
        assert_eq!(
            fs::read_to_string(d.join("requirements.txt")).unwrap(),
            format!("{dist}\n")
        );
        let frozen = fs::read_to_string(d.join("requirements-frozen.txt")).unwrap();
        assert!(
            frozen.contains(&format!("{}==1.0.0\n", components::normalize(dist))),
            "{frozen}"
        );
        assert!(frozen.contains("swh-core==1.0.0\n"), "{frozen}");
    }
    let loader_frozen =
        fs::read_to_string(apps.join("apps/swh-loader-git/requirements-frozen.txt")).unwrap();
    assert!(
        loader_frozen.contains("swh-storage==1.0.0\n"),
        "{loader_frozen}"
    );
    let lister_frozen =
        fs::read_to_string(apps.join("apps/swh-lister/requirements-frozen.txt")).unwrap();
    assert!(!lister_frozen.contains("swh-storage"), "{lister_frozen}");
    // Real-shaped images: the python apps build FROM the image-only
    // swh-base (tagged, no requirements), which builds FROM python.
    for (app, _) in components::APPS {
        let dockerfile =
            fs::read_to_string(apps.join("apps").join(app).join("Dockerfile")).unwrap();
        assert!(
            dockerfile.contains("ARG base_image=${REGISTRY}base\n")
                && dockerfile.contains("FROM ${base_image}:${base_image_version}\n")
                && dockerfile.contains("RUN uv pip sync --no-cache requirements-frozen.txt\n")
                && !dockerfile.contains("FROM scratch"),
            "{app}: {dockerfile}"
        );
    }
    let base = apps.join("apps").join(components::BASE_APP);
    let base_dockerfile = fs::read_to_string(base.join("Dockerfile")).unwrap();
    assert!(
        base_dockerfile.contains("FROM ${REGISTRY}python:3.11-bookworm\n"),
        "{base_dockerfile}"
    );
    assert!(!base.join("requirements.txt").exists());
    let base_tag = format!("{}-{}", components::BASE_APP, components::BASE_APP_VERSION);
    assert_eq!(git(&apps, &["cat-file", "-t", &base_tag]).trim(), "tag");
    let tag = "swh-loader-git-20250117.1";
    assert_eq!(git(&apps, &["cat-file", "-t", tag]).trim(), "tag");
    assert_eq!(
        git(&apps, &["tag", "-l", "--format=%(contents:subject)", tag]).trim(),
        format!("{tag}: Bump new release")
    );
    assert_eq!(
        git(&apps, &["log", "-1", "--format=%s", tag]).trim(),
        format!("{tag}: Build image")
    );

    // swh-charts: three branches on one commit, the real values file.
    let heads = git(&work, &["ls-remote", "--heads", &remotes.charts.url]);
    let mut commits = Vec::new();
    for b in components::CHART_BRANCHES {
        let line = heads
            .lines()
            .find(|l| l.ends_with(&format!("refs/heads/{b}")))
            .unwrap_or_else(|| panic!("no branch {b} in {heads}"));
        commits.push(line.split_whitespace().next().unwrap().to_string());
    }
    commits.dedup();
    assert_eq!(commits.len(), 1, "{heads}");
    git(
        &work,
        &[
            "clone",
            "-q",
            "-b",
            "staging",
            &remotes.charts.url,
            "charts",
        ],
    );
    let charts = work.join("charts");
    let chart = fs::read_to_string(charts.join("swh/Chart.yaml")).unwrap();
    assert!(chart.contains("appVersion: 423\n"), "{chart}");
    let values = fs::read_to_string(charts.join("values-swh-application-versions.yaml")).unwrap();
    assert!(
        values.contains("swh_loader_git_image_version: '20250117.1'\n"),
        "{values}"
    );
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/swh-charts/values-swh-application-versions.yaml");
    assert_eq!(values, fs::read_to_string(real).unwrap());
    for f in [
        "swh/values/default.yaml",
        "swh/values/production/default.yaml",
        "swh/values/staging/default.yaml",
    ] {
        assert!(charts.join(f).is_file(), "{f} missing");
    }

    // Deterministic: a second set of remotes has the same commits.
    let again = GitRemotes::create(&tmp.path().join("again")).unwrap();
    for (a, b) in [
        (&remotes.module, &again.module),
        (&remotes.apps, &again.apps),
        (&remotes.charts, &again.charts),
    ] {
        assert_eq!(
            git(&work, &["ls-remote", &a.url]),
            git(&work, &["ls-remote", &b.url])
        );
    }
    // And a non-empty directory is refused.
    let err = GitRemotes::create(&tmp.path().join("remotes")).unwrap_err();
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
}

fn uv(tmp: &Path) -> Command {
    let mut cmd = Command::new(venv_bin("uv"));
    cmd.env("UV_CACHE_DIR", tmp.join("uv-cache"))
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env_remove("UV_INDEX_URL")
        .env_remove("UV_EXTRA_INDEX_URL")
        .env_remove("UV_DEFAULT_INDEX")
        .env_remove("VIRTUAL_ENV")
        .current_dir(tmp);
    cmd
}

/// uv resolves, freezes and installs from the index; a version published
/// later is picked up; pip lists the versions.
#[test]
fn package_index_resolves_with_uv_and_pip() {
    let tmp = tempfile::tempdir().unwrap();
    let index = PackageIndex::start(&tmp.path().join("index")).unwrap();
    assert!(index.addr().ip().is_loopback());
    assert!(index
        .packages()
        .unwrap()
        .contains(&("swh-loader-git".to_string(), "1.1.0".to_string())));
    let python = venv_bin("python");
    fs::write(tmp.path().join("requirements.txt"), "swh.loader.git\n").unwrap();
    let compile = |out: &str| {
        run(uv(tmp.path())
            // --refresh: uv caches index pages like PyPI's (max-age); a
            // release published a second ago needs a refresh.
            .args(["pip", "compile", "--quiet", "--refresh", "--python"])
            .arg(&python)
            .args(["--index-url", &index.url()])
            .args(["requirements.txt", "-o", out]));
        fs::read_to_string(tmp.path().join(out)).unwrap()
    };
    let frozen = compile("frozen.txt");
    for pin in [
        "swh-core==1.1.0",
        "swh-model==1.1.0",
        "swh-storage==1.1.0",
        "swh-loader-git==1.1.0",
    ] {
        assert!(frozen.contains(pin), "{pin} not in {frozen}");
    }
    assert!(frozen.contains("# via -r requirements.txt"), "{frozen}");

    // A release published later is resolved at once.
    index
        .publish("swh.loader.git", "1.2.0", &["swh.storage>=1.1.0"])
        .unwrap();
    let frozen = compile("frozen2.txt");
    assert!(frozen.contains("swh-loader-git==1.2.0"), "{frozen}");

    // pip sees the versions (what `release wait` polls).
    let versions = stdout(
        Command::new(&python)
            .args(["-m", "pip", "index", "versions", "swh.loader.git"])
            .args(["--index-url", &index.url()])
            .args(["--disable-pip-version-check", "--no-cache-dir"]),
    );
    assert!(versions.contains("1.2.0, 1.1.0, 1.0.0"), "{versions}");

    // The wheels are real: uv installs one into a fresh venv and Python
    // imports it.
    let venv = tmp.path().join("venv");
    run(uv(tmp.path())
        .args(["venv", "--quiet", "--python"])
        .arg(&python)
        .arg(&venv));
    run(uv(tmp.path())
        .args(["pip", "install", "--quiet", "--python"])
        .arg(venv.join("bin/python"))
        .args(["--index-url", &index.url(), "swh.loader.git==1.1.0"]));
    let imported = stdout(Command::new(venv.join("bin/python")).args([
        "-c",
        "import swh.loader.git, swh.core; print(swh.loader.git.__version__, swh.core.__version__)",
    ]));
    assert_eq!(imported.trim(), "1.1.0 1.1.0");

    let pid_addr = index.addr();
    index.stop().unwrap();
    assert!(http_get(pid_addr, "/simple/", Duration::from_secs(1)).is_err());
}

/// The frozen requirements of the swh-apps remote are what uv freezes from
/// the index at 1.0.0 (same pins, same comments), so later freezes differ
/// exactly by the newer versions.
#[test]
fn apps_frozen_requirements_match_uv_output_on_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let index_dir = tmp.path().join("index");
    let index = PackageIndex::start(&index_dir).unwrap();
    // An index holding only 1.0.0: remove 1.1.0 wheels and re-publish pages.
    for entry in fs::read_dir(index_dir.join("files")).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().contains("-1.1.0-") {
            fs::remove_file(p).unwrap();
        }
    }
    index.publish("swh.core", "1.0.0", &[]).unwrap();
    let remotes = GitRemotes::create(&tmp.path().join("remotes")).unwrap();
    let apps = tmp.path().join("apps");
    git(
        tmp.path(),
        &["clone", "-q", &remotes.apps.url, apps.to_str().unwrap()],
    );
    let python = venv_bin("python");
    for (app, _) in components::APPS {
        let req = format!("apps/{app}/requirements.txt");
        let out = format!("apps/{app}/requirements-frozen.txt");
        let committed = fs::read_to_string(apps.join(&out)).unwrap();
        // The interpreter through UV_PYTHON, so that the header records
        // the command line a sysadmin types.
        run(uv(tmp.path())
            .current_dir(&apps)
            .env("UV_PYTHON", &python)
            .args(["pip", "compile", "--quiet"])
            .args(["--index-url", &index.url(), &req, "-o", &out]));
        let fresh = fs::read_to_string(apps.join(&out)).unwrap();
        assert_eq!(fresh, committed, "{app}");
    }
}
