//! `app build` end to end: uv freeze against a local index, buildah builds
//! (private vfs storage, chroot isolation) from a base image made locally
//! from scratch, Debian's docker-registry on loopback, real git remotes.
//! Covers a same-day collision with a registry tag, a failed image push and
//! a failed git push (neither leaves a tag behind), and --dry-run.

mod common;

use common::{git, put_tag, sh, tags, AppsBed};
use std::path::Path;
use std::process::Command;
use swh_deploy_apps::registry::Registry as RegistryRef;
use swh_deploy_apps::{AppsRepo, BuildOptions, Builder, FreezeOptions};
use swh_deploy_testbed::components::{PackageIndex, Registry};

const DOCKERFILE: &str = "ARG REGISTRY\n\
FROM ${REGISTRY}base:latest\n\
COPY requirements-frozen.txt /opt/swh/requirements-frozen.txt\n\
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /opt/swh/requirements-frozen.txt > /opt/swh/pins\"]\n";

/// Private buildah storage and config for this test process.
fn buildah_env(root: &Path) {
    for (var, value) in swh_deploy_testbed::components::write_containers_config(root).unwrap() {
        std::env::set_var(var, value);
    }
    std::env::set_var("UV_CACHE_DIR", root.join("uv-cache"));
}

/// A base image from scratch: the host's busybox and the libraries it
/// needs, pushed as `<prefix>/base:latest`.
fn push_base_image(registry: &Registry, prefix: &str) {
    let c = sh(Command::new("buildah").args(["from", "scratch"]));
    let busybox = "/bin/busybox";
    sh(Command::new("buildah").args(["copy", &c, busybox, "/bin/busybox"]));
    let ldd = Command::new("ldd").arg(busybox).output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        sh(Command::new("buildah").args(["copy", &c, lib, lib]));
    }
    sh(Command::new("buildah").args(["commit", "-q", &c, "localhost/swh-test-base"]));
    sh(Command::new("buildah").args(["rm", &c]));
    sh(Command::new("buildah").args([
        "push",
        "--tls-verify=false",
        "localhost/swh-test-base",
        &format!("docker://{}/{prefix}/base:latest", registry.host()),
    ]));
}

fn remote_tags(bed: &AppsBed) -> String {
    git(&bed.remote, &["tag", "-l"])
}

#[test]
fn build_push_tag_and_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let prefix = "swh/infra/swh-apps";
    // Started before buildah_env: docker-registry reads REGISTRY_* variables
    // (such as REGISTRY_AUTH_FILE) as configuration overrides.
    let reg = Registry::start(&root.join("registry")).unwrap();
    buildah_env(root);
    push_base_image(&reg, prefix);
    let index = PackageIndex::start(&root.join("index")).unwrap();
    index.publish("swh.core", "3.0.0", &[]).unwrap();
    index
        .publish("swh.graph", "6.2.0", &["swh.core>=3"])
        .unwrap();
    let bed = AppsBed::new(root, &[("swh-graph", "swh.graph\n", DOCKERFILE)]);
    let repo = AppsRepo::open(&bed.work).unwrap();
    let opts = |reg: &Registry, push: bool, dry_run: bool| BuildOptions {
        builder: Builder::Buildah,
        registry: RegistryRef::parse(&format!("{}/{prefix}", reg.url())).unwrap(),
        push,
        dry_run,
        freeze: FreezeOptions {
            uv: common::uv(),
            index_args: vec!["--index-url".into(), index.url()],
            upgrade: true,
        },
        page_size: None,
    };
    let day = 20250117;
    // Someone already pushed today's .1 by hand.
    put_tag(&reg.url(), &format!("{prefix}/graph"), "20250117.1");
    let mut log = Vec::new();

    // Dry run: a plan, nothing changed.
    let head = git(&bed.work, &["rev-parse", "HEAD"]);
    let plan = repo
        .build("swh-graph", day, &opts(&reg, true, true), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap();
    assert_eq!(plan.version.to_string(), "20250117.2");
    assert!(plan
        .steps
        .iter()
        .any(|s| s.command.first().map(String::as_str) == Some("buildah")
            && s.command
                .iter()
                .any(|a| a == &format!("REGISTRY={}/{prefix}/", reg.host()))));
    assert!(plan
        .steps
        .iter()
        .any(|s| s.what == "tag swh-graph-20250117.2 (replacing the placeholder)"));
    assert!(plan
        .steps
        .iter()
        .any(|s| s.what.starts_with("reserve 20250117.2")));
    assert!(!bed
        .work
        .join("apps/swh-graph/requirements-frozen.txt")
        .exists());
    assert_eq!(git(&bed.work, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        tags(&reg.url(), &format!("{prefix}/graph")),
        vec!["20250117.1"]
    );

    // The real thing.
    let out = repo
        .build("swh-graph", day, &opts(&reg, true, false), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap();
    assert!(out.pushed);
    assert_eq!(out.version.to_string(), "20250117.2");
    assert_eq!(out.pin_changes.len(), 2);
    assert_eq!(
        tags(&reg.url(), &format!("{prefix}/graph")),
        vec!["20250117.1", "20250117.2", "latest"]
    );
    assert_eq!(
        git(&bed.remote, &["log", "-1", "--format=%s", "main"]),
        "swh-graph-20250117.2: Build image"
    );
    assert_eq!(
        git(&bed.remote, &["show", "--name-only", "--format=", "main"]),
        "apps/swh-graph/requirements-frozen.txt"
    );
    assert_eq!(
        git(&bed.remote, &["cat-file", "-t", "swh-graph-20250117.2"]),
        "tag"
    );
    assert_eq!(
        git(
            &bed.remote,
            &[
                "tag",
                "-l",
                "--format=%(contents:subject)",
                "swh-graph-20250117.2"
            ]
        ),
        "swh-graph-20250117.2: Bump new release"
    );
    assert_eq!(
        git(&bed.remote, &["rev-parse", "swh-graph-20250117.2^{commit}"]),
        git(&bed.remote, &["rev-parse", "main"])
    );

    // Nothing new to freeze: no commit, next version, tag on the same commit.
    let main_before = git(&bed.remote, &["rev-parse", "main"]);
    let out = repo
        .build("swh-graph", day, &opts(&reg, true, false), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap();
    assert_eq!(out.version.to_string(), "20250117.3");
    assert!(out.commit.is_none());
    assert_eq!(git(&bed.remote, &["rev-parse", "main"]), main_before);
    assert!(remote_tags(&bed).contains("swh-graph-20250117.3"));

    // A failed image push (the registry cannot store uploads: its upload
    // directory for the image is a file): the build commit undone, the new
    // frozen file kept for the next try, no final tag; the version stays
    // reserved by its placeholder tag on the remote (an image may be in the
    // registry under it), so it is never reused.
    index
        .publish("swh.graph", "6.3.0", &["swh.core>=3"])
        .unwrap();
    let uploads = reg
        .dir()
        .join("storage/docker/registry/v2/repositories")
        .join(prefix)
        .join("graph/_uploads");
    std::fs::remove_dir_all(&uploads).unwrap();
    std::fs::write(&uploads, "not a directory").unwrap();
    let local_head = git(&bed.work, &["rev-parse", "HEAD"]);
    let e = repo
        .build("swh-graph", day, &opts(&reg, true, false), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap_err();
    assert!(e.to_string().contains("push"), "{e}");
    assert!(
        e.to_string()
            .contains("placeholder tag swh-graph-20250117.4 stays"),
        "{e}"
    );
    assert_eq!(git(&bed.work, &["tag", "-l", "swh-graph-20250117.4"]), "");
    let placeholder = |t: &str| {
        git(
            &bed.remote,
            &["tag", "-l", "--format=%(contents:subject)", t],
        )
    };
    assert!(
        placeholder("swh-graph-20250117.4").contains("Placeholder"),
        "{}",
        placeholder("swh-graph-20250117.4")
    );
    assert_eq!(git(&bed.work, &["rev-parse", "HEAD"]), local_head);
    assert!(
        std::fs::read_to_string(bed.work.join("apps/swh-graph/requirements-frozen.txt"))
            .unwrap()
            .contains("swh-graph==6.3.0")
    );

    // A remote refusing every push: the reservation fails, nothing is
    // built or pushed.
    std::fs::remove_file(&uploads).unwrap();
    let hook = bed.remote.join("hooks/pre-receive");
    use std::os::unix::fs::PermissionsExt;
    let set_hook = |script: &str| {
        std::fs::write(&hook, script).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    set_hook("#!/bin/sh\necho 'rejected by test hook' >&2\nexit 1\n");
    let images_before = tags(&reg.url(), &format!("{prefix}/graph"));
    let e = repo
        .build("swh-graph", day, &opts(&reg, true, false), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap_err();
    assert!(e.to_string().contains("rejected by test hook"), "{e}");
    assert!(e.to_string().contains("cannot reserve 20250117.5"), "{e}");
    assert_eq!(git(&bed.work, &["tag", "-l", "swh-graph-20250117.5"]), "");
    assert!(!remote_tags(&bed).contains("swh-graph-20250117.5"));
    assert_eq!(tags(&reg.url(), &format!("{prefix}/graph")), images_before);
    assert_eq!(git(&bed.work, &["rev-parse", "HEAD"]), local_head);

    // A remote refusing the branch only: the placeholder goes in, the
    // images are pushed, the final push fails; the placeholder stays.
    set_hook(
        "#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/*) echo 'branch rejected by test hook' >&2; exit 1;; esac; done\nexit 0\n",
    );
    let e = repo
        .build("swh-graph", day, &opts(&reg, true, false), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap_err();
    assert!(
        e.to_string().contains("branch rejected by test hook"),
        "{e}"
    );
    assert!(tags(&reg.url(), &format!("{prefix}/graph")).contains(&"20250117.5".to_string()));
    assert!(placeholder("swh-graph-20250117.5").contains("Placeholder"));
    assert_eq!(git(&bed.work, &["tag", "-l", "swh-graph-20250117.5"]), "");
    assert_eq!(git(&bed.work, &["rev-parse", "HEAD"]), local_head);
    std::fs::remove_file(&hook).unwrap();
    // Someone pushed to swh-apps meanwhile: refused before building anything.
    let other = root.join("other-clone");
    sh(Command::new("git")
        .args(["clone", "-q"])
        .arg(&bed.remote)
        .arg(&other));
    std::fs::write(other.join("README"), "hello\n").unwrap();
    git(&other, &["add", "README"]);
    git(
        &other,
        &[
            "-c",
            "user.name=O",
            "-c",
            "user.email=o@e.invalid",
            "commit",
            "-q",
            "-m",
            "readme",
        ],
    );
    git(&other, &["push", "-q", "origin", "main"]);
    let before_tags = tags(&reg.url(), &format!("{prefix}/graph"));
    let e = repo
        .build("swh-graph", day, &opts(&reg, true, false), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap_err();
    assert!(e.to_string().contains("pull first"), "{e}");
    assert_eq!(tags(&reg.url(), &format!("{prefix}/graph")), before_tags);
    git(&bed.work, &["pull", "-q", "--ff-only", "origin", "main"]);
    // The failed runs took .4 and .5 (placeholders); the retry takes .6
    // and its tag replaces nothing but its own placeholder.
    let out = repo
        .build("swh-graph", day, &opts(&reg, true, false), &mut |s| {
            log.push(s.to_string())
        })
        .unwrap();
    assert_eq!(out.version.to_string(), "20250117.6");
    assert_eq!(
        placeholder("swh-graph-20250117.6"),
        "swh-graph-20250117.6: Bump new release"
    );
    assert!(placeholder("swh-graph-20250117.4").contains("Placeholder"));
    assert!(out.commit.is_some());
    assert!(
        log.iter().any(|l| l.starts_with("push 127.0.0.1:")),
        "{log:?}"
    );
}
