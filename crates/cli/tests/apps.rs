//! `swh-deploy app` on the test bed's real components and on a fixture
//! tree shaped like the real swh-apps: two concurrent `app build --push`
//! of the same app on the same day (buildah, docker-registry on loopback,
//! the git remote), dependents pinned by URL or of an unknown module,
//! image-only apps and the base-image chain (`app dependents --image`),
//! freezing for a Python version with uv, and git errors that say what was
//! expected.

mod common;

use common::{git, json_doc, out_err as text, sh, uv};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use swh_deploy_testbed::components::{AppBaseImages, GitRemotes, PackageIndex, Registry};

/// `swh-deploy ARGS` with a private journal and uv cache, no site file.
fn swh_deploy(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::bin());
    c.args(args)
        .current_dir(root)
        .env("SWH_DEPLOY_JOURNAL", root.join("journal.sqlite"))
        .env("SWH_DEPLOY_UV", uv())
        .env("UV_CACHE_DIR", root.join("uv-cache"))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env_remove("SWH_DEPLOY_SITE")
        .env_remove("SWH_DEPLOY_APPS_DIR")
        .env_remove("SWH_DEPLOY_REGISTRY")
        .env_remove("SWH_DEPLOY_PYTHON_VERSION");
    c
}

#[test]
fn two_builds_on_the_same_day_get_different_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let reg = Registry::start(&root.join("registry")).unwrap();
    let remotes = GitRemotes::create(&root.join("remotes")).unwrap();
    let index = PackageIndex::start(&root.join("index")).unwrap();
    let containers = swh_deploy_testbed::components::write_containers_config(&root).unwrap();
    let clones: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| {
            let d = root.join(format!("swh-apps-{n}"));
            sh(Command::new("git")
                .args(["clone", "-q", &remotes.apps.url])
                .arg(&d));
            git(&d, &["config", "user.name", &format!("Sysadmin {n}")]);
            git(&d, &["config", "user.email", "sysadmin@example.invalid"]);
            d
        })
        .collect();
    // What swh-lister builds FROM (real images: swh-base, Python, uv).
    let images = AppBaseImages::push(
        &reg,
        &index.url(),
        &clones[0],
        &uv(),
        &containers,
        &root.join("scratch"),
    )
    .unwrap();
    eprintln!("base images: {}", images.summary());
    // uv behind a barrier: both builds freeze at the same moment, so that
    // they look for the next version at the same moment too (bounded
    // wait: 20 s).
    let barrier = root.join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    let uv_wrapper = root.join("uv-barrier");
    std::fs::write(
        &uv_wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = pip ]; then\n  touch '{b}'/arrived.$$\n  i=0\n  while [ \"$(ls '{b}' | wc -l)\" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\nfi\nexec '{uv}' \"$@\"\n",
            b = barrier.display(),
            uv = uv().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&uv_wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let registry = format!("{}/swh/infra/swh-apps", reg.url());
    let children: Vec<_> = clones
        .iter()
        .map(|d| {
            swh_deploy(
                &root,
                &[
                    "app",
                    "build",
                    "swh-lister",
                    "--push",
                    "--apps-dir",
                    d.to_str().unwrap(),
                    "--registry",
                    &registry,
                    "--index-url",
                    &index.url(),
                    "--uv",
                    uv_wrapper.to_str().unwrap(),
                ],
            )
            .envs(containers.iter().cloned())
            // A "still running" line per 3 s of silence (30 s by default).
            .env("SWH_DEPLOY_PROGRESS_EVERY", "3s")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let today = swh_deploy_apps::version::today_utc();
    let mut versions = Vec::new();
    for o in &outs {
        let (out, err) = text(o);
        assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
        // stderr is not a terminal: plain progress lines, each after the
        // time elapsed, saying what runs; no control characters.
        assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
        for step in [
            "] check that the branch is up to date with origin",
            "] freeze check: resolve apps/swh-lister/requirements.txt with uv",
            " with buildah (also tagged latest)",
            "/swh/infra/swh-apps/lister:latest with buildah",
            " and swh-lister-",
        ] {
            assert!(
                err.lines()
                    .any(|l| l.starts_with('[') && l.contains("s] ") && l.contains(step)),
                "{step}: {err}"
            );
        }
        // The image's build is long: said again while it runs.
        assert!(
            err.lines().any(|l| l.starts_with('[')
                && l.contains("s] still running: build ")
                && l.contains(" with buildah (also tagged latest) (")),
            "{err}"
        );
        let built = out
            .lines()
            .find_map(|l| l.strip_prefix("built "))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(built.contains("pushed with latest"), "{built}");
        let v = built.split(',').next().unwrap().rsplit(':').next().unwrap();
        versions.push(v.to_string());
    }
    versions.sort();
    assert_eq!(versions, vec![format!("{today}.1"), format!("{today}.2")]);
    // Both images are in the registry, under their own version.
    let tags = swh_deploy_apps::registry::Registry::parse(&registry)
        .unwrap()
        .tags("lister", None)
        .unwrap();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    for v in &versions {
        assert!(tags.contains(&v.as_str()), "{tags:?}");
    }
    // Both git tags are final (no placeholder left), on the remote branch's
    // history, and the remote branch has one build commit (the second
    // build's identical freeze was rebased away).
    for v in &versions {
        let tag = format!("swh-lister-{v}");
        assert_eq!(
            git(
                &remotes.apps.path,
                &["tag", "-l", "--format=%(contents:subject)", &tag]
            ),
            format!("{tag}: Bump new release")
        );
        git(
            &remotes.apps.path,
            &[
                "merge-base",
                "--is-ancestor",
                &format!("{tag}^{{commit}}"),
                "master",
            ],
        );
    }
    let subjects = git(&remotes.apps.path, &["log", "--format=%s", "-3", "master"]);
    let builds: Vec<&str> = subjects
        .lines()
        .filter(|s| s.starts_with(&format!("swh-lister-{today}.")))
        .collect();
    assert_eq!(builds.len(), 1, "{subjects}");
    // The build that lost the race says it took the next version.
    let all_err: String = outs.iter().map(|o| text(o).1).collect();
    assert!(all_err.contains(&format!("reserve {today}.2")), "{all_err}");
}

/// Writes `files` (path relative to `root`, content) under `root`.
fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

const REG_ARGS: &str = "ARG REGISTRY=container-registry.softwareheritage.org/swh/infra/swh-apps/\n";

/// A swh-apps tree shaped like the real one (its FROM lines as the real
/// Dockerfiles write them), committed on `main` with a bare remote.
fn real_shaped_tree(root: &Path) -> PathBuf {
    let work = root.join("swh-apps");
    let python_app = |base: &str, extra: &str| {
        format!(
            "{REG_ARGS}ARG base_image=${{REGISTRY}}{base}\nARG base_image_version=latest\n{extra}\
             FROM ${{base_image}}:${{base_image_version}}\nARG user=swh\n\
             COPY requirements-frozen.txt /tmp/requirements-frozen.txt\n"
        )
    };
    let rsvndump = "FROM ${REGISTRY}rsvndump-base:latest AS rsvndump_image\n\n";
    let files: Vec<(String, String)> = vec![
        (
            "apps/swh-base/Dockerfile".into(),
            "FROM python:3.11-bookworm\n\nARG userid=1000\nARG user=swh\n".into(),
        ),
        (
            "apps/swh-docs/Dockerfile".into(),
            "FROM debian:bookworm AS downloader\nARG swh_docs_publish_job_id=lastStableBuild\n\
             FROM nginx:alpine\nCOPY --from=downloader /tmp/docs /usr/share/nginx/html\n"
                .into(),
        ),
        (
            "utilities/rsvndump/Dockerfile".into(),
            "# Build rsvndump\nFROM debian:bullseye AS rsvndump\nARG VERSION=0.6.1\n".into(),
        ),
        ("apps/swh-loader-package/Dockerfile".into(), python_app("base", "")),
        (
            "apps/swh-loader-svn/Dockerfile".into(),
            python_app("base", rsvndump),
        ),
        (
            "apps/swh-loader-savecodenow/Dockerfile".into(),
            format!("# Deeply inspired from the Dockerfile of the swh-graph project\n{}", python_app("loader_package", rsvndump)),
        ),
        (
            "apps/swh-toolbox/Dockerfile".into(),
            python_app("loader_savecodenow", ""),
        ),
        (
            "apps/swh-graph/Dockerfile".into(),
            format!(
                "{REG_ARGS}ARG base_image=${{REGISTRY}}base\nARG base_image_version=latest\nARG RUST_VERSION=1.96\n\
                 FROM rust:${{RUST_VERSION}}-bookworm AS rust_build\nRUN cargo install swh-graph\n\
                 FROM ${{base_image}}:${{base_image_version}}\n\
                 COPY --from=rust_build /usr/local/cargo/bin/swh-graph* /usr/local/bin/\n"
            ),
        ),
        (
            "apps/swh-datasets/Dockerfile".into(),
            format!(
                "{REG_ARGS}ARG base_image=${{REGISTRY}}base\nARG base_image_version=latest\n\
                 FROM ${{REGISTRY}}graph:latest AS graph_build\nFROM rust:1.96-bookworm AS rust_build\n\
                 FROM ${{base_image}}:${{base_image_version}}\n"
            ),
        ),
    ];
    let mut files: Vec<(String, String)> = files;
    for (app, reqs, frozen) in [
        (
            "swh-loader-package",
            "swh.loader.core\n",
            "swh-loader-core==5.1.0\nswh-objstorage==4.0.0\n",
        ),
        (
            "swh-loader-svn",
            "swh.loader.svn\n",
            "swh-loader-svn==2.0.0\nswh-objstorage==3.9.0\n",
        ),
        (
            "swh-loader-savecodenow",
            "swh.loader.git\n",
            "swh-loader-git==3.0.0\n",
        ),
        ("swh-toolbox", "swh.objstorage\n", "swh-objstorage==4.1.0\n"),
        ("swh-graph", "swh.graph\n", "swh-graph==6.2.0\n"),
        ("swh-datasets", "swh.datasets\n", "swh-datasets==1.0.0\n"),
    ] {
        files.push((format!("apps/{app}/requirements.txt"), reqs.into()));
        files.push((format!("apps/{app}/requirements-frozen.txt"), frozen.into()));
    }
    // Pinned by URL, as swh-objstorage-benchmarking does.
    files.push((
        "apps/swh-objstorage-benchmarking/requirements.txt".into(),
        "swh.objstorage[azure,libcloud] @ git+https://gitlab.softwareheritage.org/swh/devel/swh-objstorage@keep-connection-pool\n".into(),
    ));
    files.push((
        "apps/swh-objstorage-benchmarking/requirements-frozen.txt".into(),
        "# This file was autogenerated by uv via the following command:\n\
         #    uv pip compile apps/swh-objstorage-benchmarking/requirements.txt -o apps/swh-objstorage-benchmarking/requirements-frozen.txt\n\
         swh-core==4.1.0\n    # via swh-objstorage\n\
         swh-objstorage @ git+https://gitlab.softwareheritage.org/swh/devel/swh-objstorage@3a0d4ac4234731ac16a0683f0e7c919c3f0c4112\n    \
         # via -r apps/swh-objstorage-benchmarking/requirements.txt\n"
            .into(),
    ));
    files.push((
        "apps/swh-objstorage-benchmarking/Dockerfile".into(),
        python_app("base", ""),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write_tree(&work, &refs);
    let remote = root.join("swh-apps.git");
    sh(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&remote));
    sh(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(&work));
    git(&work, &["config", "user.name", "Test"]);
    git(&work, &["config", "user.email", "test@example.invalid"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "initial"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(
        &work,
        &[
            "tag",
            "-a",
            "swh-base-20250117.1",
            "-m",
            "swh-base-20250117.1: Bump new release",
        ],
    );
    git(&work, &["push", "-q", "-u", "origin", "main", "--tags"]);
    work
}

#[test]
fn image_only_apps_and_the_base_image_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let work = real_shaped_tree(root);
    let dir = work.to_str().unwrap();
    let out = sh(&mut swh_deploy(root, &["app", "list", "--apps-dir", dir]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"swh-base\tbase\timage-only"), "{out}");
    assert!(lines.contains(&"swh-docs\tdocs\timage-only"), "{out}");
    assert!(
        lines.contains(&"rsvndump-base\trsvndump-base\timage-only"),
        "{out}"
    );
    assert!(lines.contains(&"swh-toolbox\ttoolbox\tpython app"), "{out}");
    assert_eq!(lines.len(), 10, "{out}");
    // --json: the same apps, with their kind and directory.
    let v = json_doc(&sh(&mut swh_deploy(
        root,
        &["app", "list", "--apps-dir", dir, "--json"],
    )));
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 10, "{v}");
    let base = apps.iter().find(|a| a["name"] == "swh-base").unwrap();
    assert_eq!(base["image"], "base");
    assert_eq!(base["kind"], "image-only");
    assert_eq!(base["rel_dir"], "apps/swh-base");
    let toolbox = apps.iter().find(|a| a["name"] == "swh-toolbox").unwrap();
    assert_eq!(toolbox["kind"], "python");

    // A new swh-base: every app built FROM it, directly or not, in build
    // order (loader_package before loader_savecodenow before toolbox,
    // graph before datasets).
    let out = sh(&mut swh_deploy(
        root,
        &["app", "dependents", "--image", "base", "--apps-dir", dir],
    ));
    let order: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    let pos = |a: &str| {
        order
            .iter()
            .position(|x| *x == a)
            .unwrap_or_else(|| panic!("{a}: {out}"))
    };
    assert_eq!(order.len(), 7, "{out}");
    assert!(
        pos("swh-loader-package") < pos("swh-loader-savecodenow"),
        "{out}"
    );
    assert!(pos("swh-loader-savecodenow") < pos("swh-toolbox"), "{out}");
    assert!(pos("swh-graph") < pos("swh-datasets"), "{out}");
    assert!(
        !order.contains(&"swh-docs") && !order.contains(&"swh-base"),
        "{out}"
    );
    assert!(
        out.contains(
            "swh-loader-savecodenow\tloader_savecodenow\tFROM rsvndump-base,loader_package"
        ),
        "{out}"
    );
    // The same by the app's name.
    let by_app = sh(&mut swh_deploy(
        root,
        &[
            "app",
            "dependents",
            "--image",
            "swh-base",
            "--apps-dir",
            dir,
        ],
    ));
    assert_eq!(by_app, out);
    // --json: the same apps in the same order, with what they build FROM.
    let v = json_doc(&sh(&mut swh_deploy(
        root,
        &[
            "app",
            "dependents",
            "--image",
            "base",
            "--apps-dir",
            dir,
            "--json",
        ],
    )));
    assert_eq!(v["image"], "base");
    let json_order: Vec<&str> = v["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["app"].as_str().unwrap())
        .collect();
    assert_eq!(json_order, order, "{v}");
    let save = &v["dependents"][pos("swh-loader-savecodenow")];
    assert_eq!(
        save["from"],
        serde_json::json!(["rsvndump-base", "loader_package"])
    );
    // rsvndump-base: the two loaders using it, and toolbox through
    // savecodenow.
    let out = sh(&mut swh_deploy(
        root,
        &[
            "app",
            "dependents",
            "--image",
            "rsvndump-base",
            "--apps-dir",
            dir,
        ],
    ));
    let order: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(
        order,
        vec!["swh-loader-savecodenow", "swh-loader-svn", "swh-toolbox"],
        "{out}"
    );
    // An image nothing builds nor builds FROM.
    let o = swh_deploy(
        root,
        &[
            "app",
            "dependents",
            "--image",
            "nonexistent",
            "--apps-dir",
            dir,
        ],
    )
    .output()
    .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).1.contains("no app of"), "{}", text(&o).1);

    // next-version and a build plan of image-only apps.
    let reg = Registry::start(&root.join("registry")).unwrap();
    let registry = format!("{}/swh/infra/swh-apps", reg.url());
    let today = swh_deploy_apps::version::today_utc();
    let next = |extra: &[&str]| {
        let mut args = vec![
            "app",
            "next-version",
            "swh-base",
            "--apps-dir",
            dir,
            "--registry",
            &registry,
        ];
        args.extend_from_slice(extra);
        sh(&mut swh_deploy(root, &args))
    };
    assert_eq!(next(&[]).trim(), format!("{today}.1"));
    let v = json_doc(&next(&["--json"]));
    assert_eq!(v["app"], "swh-base");
    assert_eq!(v["version"], format!("{today}.1"));
    let out = sh(&mut swh_deploy(
        root,
        &[
            "app",
            "build",
            "rsvndump-base",
            "--push",
            "--dry-run",
            "--apps-dir",
            dir,
            "--registry",
            &registry,
        ],
    ));
    assert!(
        out.contains(&format!(
            "-f utilities/rsvndump/Dockerfile --build-arg REGISTRY={}/swh/infra/swh-apps/ -t {}/swh/infra/swh-apps/rsvndump-base:{today}.1",
            reg.host(),
            reg.host()
        )),
        "{out}"
    );
    assert!(!out.contains("freeze"), "{out}");
    assert!(
        out.contains(&format!(
            "reserve {today}.1: push the placeholder tag rsvndump-base-{today}.1"
        )),
        "{out}"
    );
    // Nothing to freeze in an image-only app.
    let o = swh_deploy(root, &["app", "freeze", "swh-base", "--apps-dir", dir])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("swh-base is image-only"),
        "{}",
        text(&o).1
    );
}

#[test]
fn dependents_pinned_by_url_and_unknown_modules() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let work = real_shaped_tree(root);
    let dir = work.to_str().unwrap();
    let deps = |module: &str| {
        swh_deploy(
            root,
            &[
                "app",
                "dependents",
                "--module",
                module,
                "--version",
                "v4.1.0",
                "--apps-dir",
                dir,
            ],
        )
        .output()
        .unwrap()
    };
    let o = deps("swh.objstorage");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "swh-loader-package\t4.0.0",
            "swh-loader-svn\t3.9.0",
            "swh-objstorage-benchmarking\tgit+https://gitlab.softwareheritage.org/swh/devel/swh-objstorage@3a0d4ac4234731ac16a0683f0e7c919c3f0c4112\t(pinned by URL)",
        ],
        "{out}"
    );
    // --json: each pin as {"version": V} or {"url": U}, and every app
    // requiring the module.
    let v = json_doc(&sh(&mut swh_deploy(
        root,
        &[
            "app",
            "dependents",
            "--module",
            "swh.objstorage",
            "--version",
            "v4.1.0",
            "--apps-dir",
            dir,
            "--json",
        ],
    )));
    assert_eq!(v["module"], "swh.objstorage");
    assert_eq!(v["version"], "v4.1.0");
    assert_eq!(v["dependents"][0]["app"], "swh-loader-package");
    assert_eq!(v["dependents"][0]["pin"]["version"], "4.0.0");
    assert!(v["dependents"][2]["pin"]["url"]
        .as_str()
        .unwrap()
        .starts_with("git+https://"));
    assert!(v["requiring"].as_array().unwrap().len() >= 3, "{v}");
    // Every app requiring it is up to date: said, exit 0, no line.
    let o = swh_deploy(
        root,
        &[
            "app",
            "dependents",
            "--module",
            "swh-graph",
            "--version",
            "6.2.0",
            "--apps-dir",
            dir,
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success());
    assert_eq!(text(&o).0, "");
    assert!(
        text(&o)
            .1
            .contains("every app requiring swh-graph (swh-graph) pins 6.2.0"),
        "{}",
        text(&o).1
    );
    // No app requires it, or no name at all: an error, not silence.
    for m in ["swh.nonexistent", "", " "] {
        let o = deps(m);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{m:?}: {out}");
        assert_eq!(out, "");
        if m.trim().is_empty() {
            assert!(err.contains("empty module name"), "{err}");
        } else {
            assert!(
                err.contains("no app of") && err.contains("requires swh.nonexistent"),
                "{err}"
            );
        }
    }
}

#[test]
fn git_errors_say_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // An apps/ directory that is not a git clone.
    let plain = root.join("not-a-clone");
    write_tree(
        &plain,
        &[
            ("apps/swh-graph/requirements.txt", "swh.graph\n"),
            ("apps/swh-graph/Dockerfile", "FROM scratch\n"),
        ],
    );
    let o = swh_deploy(
        root,
        &[
            "app",
            "next-version",
            "swh-graph",
            "--apps-dir",
            plain.to_str().unwrap(),
            "--registry",
            "http://127.0.0.1:9/swh",
        ],
    )
    .env("GIT_CEILING_DIRECTORIES", root)
    .output()
    .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("not a git repository: {}", plain.display())),
        "{err}"
    );
    assert!(!err.contains("\"git\" \"-C\""), "{err}");
    // A clone whose remote is gone.
    let work = real_shaped_tree(root);
    std::fs::remove_dir_all(root.join("swh-apps.git")).unwrap();
    let o = swh_deploy(
        root,
        &[
            "app",
            "next-version",
            "swh-graph",
            "--apps-dir",
            work.to_str().unwrap(),
            "--registry",
            "http://127.0.0.1:9/swh",
        ],
    )
    .output()
    .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("cannot reach the git remote \"origin\""),
        "{err}"
    );
}

#[test]
fn freeze_for_a_python_version() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let index = PackageIndex::start(&root.join("index")).unwrap();
    // swh.model only below Python 3.11.1: freezing for 3.11 (3.11.0 for
    // uv) pins it, whatever the patch release of the interpreter (Debian
    // 12's is 3.11.2): the target, not the machine, decides the pins.
    index
        .publish(
            "swh.pyv",
            "1.0.0",
            &[
                "swh.core>=1.0.0",
                "swh.model>=1.0.0; python_full_version < \"3.11.1\"",
            ],
        )
        .unwrap();
    let work = root.join("swh-apps");
    write_tree(
        &work,
        &[
            ("apps/swh-pyv/requirements.txt", "swh.pyv\n"),
            ("apps/swh-pyv/Dockerfile", "FROM scratch\n"),
        ],
    );
    sh(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(&work));
    let dir = work.to_str().unwrap();
    let frozen = work.join("apps/swh-pyv/requirements-frozen.txt");
    let freeze = |extra: &[&str]| {
        let mut args = vec!["app", "freeze", "swh-pyv", "--apps-dir", dir, "--index-url"];
        let url = index.url();
        args.push(&url);
        args.extend_from_slice(extra);
        swh_deploy(root, &args).output().unwrap()
    };
    // Default: 3.11, as SWH; the version is in the header.
    let o = freeze(&[]);
    assert!(o.status.success(), "{}", text(&o).1);
    let t = std::fs::read_to_string(&frozen).unwrap();
    assert!(
        t.contains("uv pip compile --python-version 3.11 apps/swh-pyv/requirements.txt -o apps/swh-pyv/requirements-frozen.txt"),
        "{t}"
    );
    assert!(t.contains("swh-model==1.1.0"), "{t}");
    // The interpreter cannot target 3.12 (it is a 3.11): refused, the file
    // is untouched.
    let o = freeze(&["--python-version", "3.12", "--python", "3.11"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("cannot freeze for Python 3.12"), "{err}");
    assert_eq!(std::fs::read_to_string(&frozen).unwrap(), t);
    // An invalid version.
    let o = freeze(&["--python-version", "three"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("invalid Python version \"three\""),
        "{}",
        text(&o).1
    );
    // The swh-base image's Python is the default when there is one.
    write_tree(
        &work,
        &[("apps/swh-base/Dockerfile", "FROM python:3.12-bookworm\n")],
    );
    let o = freeze(&["--python", "3.11"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("cannot freeze for Python 3.12"),
        "{}",
        text(&o).1
    );
    // The site file's [apps] python_version, below the flag.
    let site = root.join("site.toml");
    std::fs::write(
        &site,
        format!(
            "[site]\nname = \"pyv\"\n\n[apps]\ncheckout = \"{dir}\"\npython_version = \"3.13\"\n"
        ),
    )
    .unwrap();
    let mut args = vec!["app", "freeze", "swh-pyv", "--index-url"];
    let url = index.url();
    args.push(&url);
    let o = swh_deploy(root, &args)
        .args(["--python", "3.11"])
        .env("SWH_DEPLOY_SITE", &site)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("cannot freeze for Python 3.13"),
        "{}",
        text(&o).1
    );
    args.extend(["--python-version", "3.11"]);
    let o = swh_deploy(root, &args)
        .env("SWH_DEPLOY_SITE", &site)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    // The environment sets it too.
    let mut args = vec!["app", "freeze", "swh-pyv", "--apps-dir", dir, "--index-url"];
    let url = index.url();
    args.push(&url);
    let o = swh_deploy(root, &args)
        .env("SWH_DEPLOY_PYTHON_VERSION", "3.11")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
}
