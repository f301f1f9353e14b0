//! Real image builds: a Debian bookworm image with Python 3.11 made with
//! debootstrap (the test bed's `python_base_image`, cached per machine)
//! pushed to the loopback registry as `python:3.11-bookworm`, the
//! image-only app `swh-base` built FROM it (a user and a venv, as the real
//! one), and a python app whose Dockerfile has the shape of the real ones
//! (`ARG base_image=${REGISTRY}base`, `FROM ${base_image}:${...}`) installing
//! its frozen requirements from the local package index during the build,
//! all through `swh-deploy app build --push`. Build times are printed.

mod common;

use common::{git, sh, uv};
use std::process::Command;
use std::time::Instant;
use swh_deploy_testbed::components::{PackageIndex, Registry};

const SWH_BASE: &str =
    "# swh-deploy test bed: the real swh-base builds FROM python:3.11-bookworm\n\
# from Docker Hub and copies uv from ghcr.io/astral-sh/uv; here the image\n\
# comes from the test bed's registry and uv from the build context.\n\
ARG REGISTRY\n\
FROM ${REGISTRY}python:3.11-bookworm\n\n\
ARG userid=1000\n\
ARG groupid=1000\n\
ARG user=swh\n\
ARG workdir=/opt/${user}\n\
ARG venv=${workdir}/venv\n\
ARG configdir=/etc/${user}\n\n\
RUN groupadd -g ${groupid} ${user} && \\\n\
    useradd -u ${userid} -g ${groupid} -m -d ${workdir} ${user} && \\\n\
    mkdir ${configdir}\n\n\
USER ${user}\n\
RUN python3 -m venv ${venv}\n\
WORKDIR ${workdir}\n\n\
ENV VIRTUAL_ENV=${venv}\n\
ENV PATH=${venv}/bin:$PATH\n\n\
COPY uv /bin/uv\n\
# The package index of the test bed (uv reads /etc/uv/uv.toml).\n\
COPY uv.toml /etc/uv/uv.toml\n";

const LISTER: &str = "ARG REGISTRY=container-registry.softwareheritage.org/swh/infra/swh-apps/\n\
ARG base_image=${REGISTRY}base\n\
ARG base_image_version=latest\n\n\
FROM ${base_image}:${base_image_version}\n\n\
ARG user=swh\n\
ARG workdir=/opt/${user}\n\
ARG configdir=/etc/${user}\n\n\
COPY --chmod=0644 requirements-frozen.txt ${workdir}\n\
RUN uv pip sync --no-cache requirements-frozen.txt\n\n\
COPY --chmod=0755 entrypoint.sh ${workdir}\n\n\
USER ${user}\n\
ENV SWH_CONFIG_FILENAME=${configdir}/config.yml\n\
ENV SWH_WORKER_INSTANCE=lister\n\n\
ENTRYPOINT [\"/opt/swh/entrypoint.sh\"]\n";

#[test]
fn real_images_base_chain_and_frozen_requirements() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let reg = Registry::start(&root.join("registry")).unwrap();
    let index = PackageIndex::start(&root.join("index")).unwrap();
    let containers = swh_deploy_testbed::components::write_containers_config(&root).unwrap();
    let prefix = "swh/infra/swh-apps";

    let t = Instant::now();
    let (archive, built) = swh_deploy_testbed::components::python_base_image(&containers).unwrap();
    eprintln!(
        "python base image: {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        if built { "built" } else { "cached" }
    );
    let t = Instant::now();
    swh_deploy_testbed::components::push_archive(
        &archive,
        &reg,
        &format!("{prefix}/python"),
        "3.11-bookworm",
    )
    .unwrap();
    eprintln!(
        "python base image pushed: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // swh-apps with swh-base (image-only) and swh-lister (python app).
    let remote = root.join("swh-apps.git");
    let work = root.join("swh-apps");
    sh(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&remote));
    sh(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(&work));
    git(&work, &["config", "user.name", "Sysadmin"]);
    git(&work, &["config", "user.email", "sysadmin@example.invalid"]);
    let files = [
        ("apps/swh-base/Dockerfile", SWH_BASE.to_string()),
        (
            "apps/swh-base/uv.toml",
            format!("index-url = \"{}\"\n", index.url()),
        ),
        ("apps/swh-lister/Dockerfile", LISTER.to_string()),
        (
            "apps/swh-lister/requirements.txt",
            "swh.lister\n".to_string(),
        ),
        (
            "apps/swh-lister/entrypoint.sh",
            "#!/bin/bash\nset -e\nexec swh lister \"$@\"\n".to_string(),
        ),
    ];
    for (rel, content) in &files {
        let p = work.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        work.join("apps/swh-lister/entrypoint.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "swh-base and swh-lister"]);
    // uv in swh-base's build context (not committed: a 40 MB binary).
    std::fs::copy(uv(), work.join("apps/swh-base/uv")).unwrap();
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&work, &["push", "-q", "-u", "origin", "main"]);

    let registry = format!("{}/{prefix}", reg.url());
    let sd = |args: &[&str]| {
        let mut c = Command::new(common::bin());
        c.args(args)
            .args(["--apps-dir", work.to_str().unwrap()])
            .current_dir(&root)
            .env("SWH_DEPLOY_JOURNAL", root.join("journal.sqlite"))
            .env("SWH_DEPLOY_UV", uv())
            .env("UV_CACHE_DIR", root.join("uv-cache"))
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env_remove("SWH_DEPLOY_SITE")
            .envs(containers.iter().cloned());
        c
    };
    let today = swh_deploy_apps::version::today_utc();

    // A new swh-base: rebuild it, then what builds FROM it.
    let t = Instant::now();
    let out = sh(&mut sd(&[
        "app",
        "build",
        "swh-base",
        "--push",
        "--registry",
        &registry,
    ]));
    eprintln!(
        "swh-base built and pushed: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        out.contains(&format!("built {}/{prefix}/base:{today}.1", reg.host())),
        "{out}"
    );
    let out = sh(&mut sd(&["app", "dependents", "--image", "swh-base"]));
    assert_eq!(out, "swh-lister\tlister\tFROM base\n");

    let t = Instant::now();
    let out = sh(&mut sd(&[
        "app",
        "build",
        "swh-lister",
        "--push",
        "--registry",
        &registry,
        "--index-url",
        &index.url(),
    ]));
    eprintln!(
        "swh-lister frozen, built and pushed: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        out.contains(&format!("built {}/{prefix}/lister:{today}.1", reg.host())),
        "{out}"
    );
    let frozen =
        std::fs::read_to_string(work.join("apps/swh-lister/requirements-frozen.txt")).unwrap();
    assert!(frozen.contains("swh-lister==1.1.0"), "{frozen}");

    // The pushed image runs the frozen pins, installed in swh-base's venv,
    // as the swh user.
    let image = format!("{}/{prefix}/lister:{today}.1", reg.host());
    let c = sh(Command::new("buildah")
        .envs(containers.iter().cloned())
        .args([
            "from",
            "-q",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ]))
    .trim()
    .to_string();
    let run = |args: &[&str]| {
        let mut cmd = Command::new("buildah");
        cmd.envs(containers.iter().cloned())
            .args(["run", &c, "--"])
            .args(args);
        sh(&mut cmd)
    };
    let pins = run(&["uv", "pip", "freeze"]);
    let user = run(&["id", "-un"]);
    let _ = Command::new("buildah")
        .envs(containers.iter().cloned())
        .args(["rm", &c])
        .output();
    let normalized: Vec<String> = pins
        .lines()
        .map(|l| l.replace(['_', '.'], "-").to_lowercase())
        .collect();
    for pin in frozen
        .lines()
        .filter(|l| l.contains("=="))
        .map(|l| l.replace(['_', '.'], "-").to_lowercase())
    {
        let pin = pin.split("==").next().unwrap().to_string();
        assert!(
            normalized
                .iter()
                .any(|l| l.starts_with(&format!("{pin}=="))),
            "{pin} not in the image: {pins}"
        );
    }
    assert!(pins.contains("1.1.0"), "{pins}");
    assert_eq!(user.trim(), "swh");
}
