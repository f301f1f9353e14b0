//! `swh-deploy ship MODULE VERSION` through the binary, on the test bed's
//! real components: the module, swh-apps and swh-charts bare git remotes,
//! the PyPI-style package index, the OCI registry (docker-registry),
//! buildah, uv, and the Kubernetes/Argo CD STAND-IN (the only stand-in)
//! following the swh-charts remote. The static side runs on 2 systemd hosts
//! with the test bed's apt repository (one test, root only).

mod common;

use common::{
    code, install, need_root, out_err as text, systemd_hosts, uv, SWH_ENVIRONMENTS, TOKEN_VAR, V10,
    V11,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use swh_deploy_journal::{Journal, RunStatus, StepStatus};
use swh_deploy_testbed::components::{http_get, AppBaseImages, GitRemotes, PackageIndex, Registry};
use swh_deploy_testbed::kube::{push_chart_version, Faults, KubeStandin, StandinOptions};

const DEPS: &[&str] = &["swh.core>=1.0.0", "swh.model>=1.0.0", "swh.storage>=1.0.0"];

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The elastic path's components, checkouts and site file in a temporary
/// directory; every process is stopped on drop.
struct Bed {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remotes: GitRemotes,
    index: PackageIndex,
    registry: Registry,
    standin: KubeStandin,
    /// The private buildah configuration's environment.
    containers: Vec<(&'static str, PathBuf)>,
}

impl Bed {
    fn new(extra_site: &str) -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let registry = Registry::start(&root.join("registry")).unwrap();
        let remotes = GitRemotes::create(&root.join("remotes")).unwrap();
        let index = PackageIndex::start(&root.join("index")).unwrap();
        let standin = KubeStandin::start(StandinOptions::swh(&remotes.charts.path)).unwrap();
        standin
            .write_kubeconfig(
                &root.join("kubeconfig"),
                &["archive-staging-rke2", "archive-production-rke2"],
            )
            .unwrap();
        for (url, dir) in [
            (&remotes.apps.url, "swh-apps"),
            (&remotes.charts.url, "swh-charts"),
            (&remotes.module.url, "swh-loader-git"),
        ] {
            git(&root, &["clone", "-q", url, dir]);
            git(&root.join(dir), &["config", "user.name", "Sysadmin"]);
            git(
                &root.join(dir),
                &["config", "user.email", "sysadmin@example.invalid"],
            );
        }
        let containers = swh_deploy_testbed::components::write_containers_config(&root).unwrap();
        std::fs::write(
            root.join("site.toml"),
            format!(
                "[site]\nname = \"ship-test\"\n\n\
                 [apps]\ncheckout = \"{}\"\n\n[charts]\ncheckout = \"{}\"\n\n\
                 [registry]\nhost = \"{}\"\nprefix = \"swh/infra/swh-apps\"\ninsecure = true\n\n\
                 {SWH_ENVIRONMENTS}\n\
                 [argocd]\nurl = \"{}\"\ntoken_env = \"{TOKEN_VAR}\"\n{extra_site}",
                root.join("swh-apps").display(),
                root.join("swh-charts").display(),
                registry.host(),
                standin.url()
            ),
        )
        .unwrap();
        Bed {
            _tmp: tmp,
            root,
            remotes,
            index,
            registry,
            standin,
            containers,
        }
    }

    /// Pushes what the apps build FROM (the Python image, uv, swh-base), for
    /// the tests whose ship builds a real image.
    fn push_base_images(&self) {
        let images = AppBaseImages::push(
            &self.registry,
            &self.index.url(),
            &self.root.join("swh-apps"),
            &uv(),
            &self.containers,
            &self.root.join("scratch"),
        )
        .unwrap();
        eprintln!("base images: {}", images.summary());
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let r = &self.root;
        let mut c = Command::new(common::bin());
        c.args(args)
            .env("SWH_DEPLOY_JOURNAL", r.join("journal.sqlite"))
            .env("SWH_DEPLOY_SITE", r.join("site.toml"))
            .env("SWH_DEPLOY_UV", uv())
            .envs(self.containers.iter().cloned())
            .env("UV_CACHE_DIR", r.join("uv-cache"))
            .env("KUBECONFIG", r.join("kubeconfig"))
            .env(TOKEN_VAR, self.standin.argocd_token())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("SWH_DEPLOY_INDEX_URL")
            .env_remove("SWH_DEPLOY_APT_URL")
            .env_remove("SWH_DEPLOY_APPS_DIR")
            .env_remove("SWH_DEPLOY_CHARTS_DIR")
            .env_remove("SWH_DEPLOY_REGISTRY");
        c
    }

    /// `swh-deploy ship swh.loader.git 1.2.0 --elastic --pypi INDEX ...`.
    fn ship(&self, extra: &[&str]) -> Output {
        let url = self.index.url();
        let mut args = vec![
            "ship",
            "swh.loader.git",
            "1.2.0",
            "--elastic",
            "--pypi",
            &url,
            "--interval",
            "100ms",
        ];
        args.extend_from_slice(extra);
        self.cmd(&args).output().unwrap()
    }

    fn repo(&self) -> String {
        self.root.join("swh-loader-git").display().to_string()
    }

    fn publish(&self) {
        self.index.publish("swh.loader.git", "1.2.0", DEPS).unwrap();
    }

    /// Every ref of the three remotes, and the registry's image tags.
    fn snapshot(&self) -> String {
        let mut s = String::new();
        for r in [
            &self.remotes.module,
            &self.remotes.apps,
            &self.remotes.charts,
        ] {
            s.push_str(&git(&r.path, &["for-each-ref"]));
            s.push('\n');
        }
        let tags = http_get(
            self.registry.addr(),
            "/v2/swh/infra/swh-apps/loader_git/tags/list",
            Duration::from_secs(10),
        )
        .unwrap();
        s.push_str(&tags.text());
        s
    }

    fn head(&self, branch: &str) -> String {
        git(&self.remotes.charts.path, &["rev-parse", branch])
    }

    fn values(&self, branch: &str) -> String {
        git(
            &self.remotes.charts.path,
            &[
                "show",
                &format!("{branch}:values-swh-application-versions.yaml"),
            ],
        )
    }

    fn journal(&self) -> Journal {
        Journal::open(&self.root.join("journal.sqlite")).unwrap()
    }
}

fn today_version(n: u32) -> String {
    format!("{}.{n}", swh_deploy_apps::version::today_utc())
}

#[test]
fn dry_run_prints_the_whole_plan_and_changes_nothing() {
    let bed = Bed::new(
        "\n[groups.rpc-staging]\nenvironment = \"staging\"\nnodes = \"storage-stg[1-2]\"\n\n\
         [groups.rpc-production]\nenvironment = \"production\"\nnodes = \"storage[1-4]\"\n\n\
         [groups.workers]\nenvironment = \"production\"\nnodes = \"worker[01-16]\"\n\n\
         [services.storage]\nkind = \"rpc\"\nunits = [\"gunicorn-swh-storage\"]\npackages = [\"python3-swh.storage\"]\n\
         groups = [\"rpc-staging\", \"rpc-production\"]\nhealth = { check = \"systemd\" }\n\n\
         [services.loader-git]\nkind = \"worker\"\nunits = [\"swh-worker@loader_git\"]\n\
         packages = [\"python3-swh.loader.git\", \"python3-swh.storage\"]\ngroups = [\"workers\", \"rpc-staging\"]\n\
         health = { check = \"systemd\" }\n",
    );
    let before = bed.snapshot();
    let repo = bed.repo();
    let o = bed.ship(&[
        "--static",
        "--repo",
        &repo,
        "--no-sign",
        "--apt",
        "http://127.0.0.1:9/debian",
        "--batch",
        "1,50%",
        "--dry-run",
    ]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    let today = today_version(1);
    let expect = [
        "ship swh.loader.git 1.2.0: 10 step(s)".to_string(),
        format!("  1. release tag: swh-deploy release tag 1.2.0 --repo {repo} --remote origin"),
        format!("git -C {repo} tag -a --no-sign -m 'Release v1.2.0' v1.2.0 "),
        format!("git -C {repo} push origin refs/tags/v1.2.0:refs/tags/v1.2.0"),
        "  2. release wait: swh-deploy release wait swh.loader.git 1.2.0 (--timeout 30m)".into(),
        "  3. upgrade staging: swh-deploy upgrade --env staging --mode nominal --service loader-git --batch 1,50%".into(),
        "hosts: storage-stg[1-2] (until python3-swh.loader.git is at 1.2.0)".into(),
        "  4. upgrade production: swh-deploy upgrade --env production --mode nominal --service loader-git --batch 1,50%".into(),
        "hosts: worker[01-16]".into(),
        "  5. app build: swh-deploy app build swh-loader-git --push --builder buildah".into(),
        "apps/swh-loader-git/requirements-frozen.txt: swh.loader.git 1.0.0 -> 1.2.0".into(),
        format!("image {}/swh/infra/swh-apps/loader_git:{today} (and latest), tag swh-loader-git-{today}", bed.registry.host()),
        format!("  6. chart bump: swh-deploy chart bump swh-loader-git={today} --module swh.loader.git --module-version v1.2.0"),
        "  7. chart promote: swh-deploy chart promote staging".into(),
        "  8. cluster wait: swh-deploy cluster wait staging".into(),
        "Argo CD application archive-staging-rke2-swh live at staging's head".into(),
        "  9. chart promote: swh-deploy chart promote production".into(),
        " 10. cluster wait: swh-deploy cluster wait production".into(),
        "dry run: nothing done".into(),
    ];
    let mut at = 0;
    for e in &expect {
        let Some(i) = out[at..].find(e.as_str()) else {
            panic!("{e:?} missing (in order) from:\n{out}");
        };
        at += i + e.len();
    }
    // The upgrade's own plan is shown under its step (batches, commands).
    assert!(
        out.contains("apt-get") && out.contains("swh-worker@loader_git"),
        "{out}"
    );
    // Only loader-git ships python3-swh.loader.git: storage is not upgraded.
    assert!(!out.contains("--service storage"), "{out}");
    assert_eq!(bed.snapshot(), before);
    assert!(!bed.root.join("journal.sqlite").exists());

    // Nothing chosen, no channel, a bad version, the checkout of another
    // module: exit 1, nothing done.
    let apps_checkout = bed.root.join("swh-apps").display().to_string();
    for (args, msg) in [
        (vec!["ship", "swh.loader.git", "1.2.0"], "--static"),
        (
            vec!["ship", "swh.loader.git", "1.2.0", "--elastic"],
            "--pypi",
        ),
        (
            vec![
                "ship",
                "swh.loader.git",
                "1.2.0-rc1",
                "--elastic",
                "--pypi",
                "http://127.0.0.1:9/simple/",
            ],
            "invalid release version",
        ),
        (
            vec![
                "ship",
                "swh.loader.git",
                "1.2.0",
                "--elastic",
                "--pypi",
                "http://127.0.0.1:9/simple/",
                "--repo",
                &apps_checkout,
            ],
            "is the checkout of swh.apps, not of swh.loader.git",
        ),
    ] {
        let o = bed.cmd(&args).output().unwrap();
        assert_eq!(code(&o), 1, "{args:?}: {:?}", text(&o));
        assert!(text(&o).1.contains(msg), "{args:?}: {:?}", text(&o));
    }
    assert!(!bed.root.join("journal.sqlite").exists());

    // Without [argocd] the promotions are not waited for, and the plan
    // says so.
    let site = std::fs::read_to_string(bed.root.join("site.toml")).unwrap();
    let cut = site.find("[argocd]").unwrap();
    let rest = &site[cut..];
    let after = rest.find("\n\n").map(|i| &rest[i..]).unwrap_or("");
    std::fs::write(
        bed.root.join("site.toml"),
        format!("{}{}", &site[..cut], after),
    )
    .unwrap();
    let o = bed.ship(&["--dry-run"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(
        out.contains("ship swh.loader.git 1.2.0: 5 step(s)"),
        "{out}"
    );
    assert!(
        out.contains("note: staging is not waited for: no [argocd] in")
            && out.contains("note: production is not waited for: no [argocd] in"),
        "{out}"
    );
    assert!(!out.contains("cluster wait"), "{out}");
}

#[test]
fn elastic_ship_waits_for_the_release_then_goes_to_production_and_reruns_as_done() {
    let bed = Bed::new("");
    bed.push_base_images();
    let repo = bed.repo();
    let prod_before = bed.head("production");

    // 1. The release is not on the index yet: the tag is made and pushed,
    // the wait times out (exit 6) and nothing is built or promoted.
    let o = bed.ship(&["--repo", &repo, "--no-sign", "--timeout", "1s"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 6, "{out}\n{err}");
    assert!(
        err.contains("step 2/8 (release wait) failed (exit 6)"),
        "{err}"
    );
    assert!(
        err.contains("continue with the same command")
            && err.contains("swh-deploy ship swh.loader.git 1.2.0 --elastic"),
        "{err}"
    );
    let head = git(&bed.root.join("swh-loader-git"), &["rev-parse", "HEAD"]);
    assert_eq!(
        git(&bed.remotes.module.path, &["rev-parse", "v1.2.0^{commit}"]),
        head
    );
    let today = swh_deploy_apps::version::today_utc().to_string();
    assert_eq!(
        git(
            &bed.remotes.apps.path,
            &["tag", "-l", &format!("swh-loader-git-{today}*")]
        ),
        "",
        "no app was built"
    );
    assert_eq!(bed.head("production"), prod_before);
    assert!(!bed.values("swh-next-version").contains(&today_version(1)));

    // 2. CI publishes it; the same command continues: the tag is already
    // done, everything else runs, production is live at the new image.
    // (published while the re-run waits for it)
    let child = bed
        .cmd(&[
            "ship",
            "swh.loader.git",
            "1.2.0",
            "--elastic",
            "--pypi",
            &bed.index.url(),
            "--interval",
            "100ms",
            "--repo",
            &repo,
            "--no-sign",
            "--timeout",
            "60s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    bed.publish();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(err.contains("not yet published"), "{err}");
    let version = today_version(1);
    assert!(
        out.contains("[1/8] release tag: already done: v1.2.0 is on origin at HEAD"),
        "{out}"
    );
    assert!(
        out.contains("[2/8] release wait: done: published after"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "built and pushed {}/swh/infra/swh-apps/loader_git:{version}",
            bed.registry.host()
        )),
        "{out}"
    );
    assert!(out.contains("production is live at"), "{out}");
    assert!(out.contains("7 step(s) done now, 1 already done"), "{out}");
    for branch in ["swh-next-version", "staging", "production"] {
        assert!(
            bed.values(branch)
                .contains(&format!("swh_loader_git_image_version: '{version}'")),
            "{branch}"
        );
    }
    assert_eq!(bed.head("production"), bed.head("swh-next-version"));
    assert_eq!(
        git(
            &bed.remotes.charts.path,
            &["log", "-1", "--format=%s", "production"]
        ),
        "v424: Release swh.loader.git v1.2.0"
    );
    let frozen = git(
        &bed.remotes.apps.path,
        &[
            "show",
            &format!("swh-loader-git-{version}:apps/swh-loader-git/requirements-frozen.txt"),
        ],
    );
    assert!(frozen.contains("swh-loader-git==1.2.0"), "{frozen}");

    // The journal: the ship runs, each step with its sub-runs.
    let j = bed.journal();
    let runs = j.runs(50).unwrap();
    let ships: Vec<_> = runs.iter().filter(|r| r.mode == "ship").collect();
    assert_eq!(ships.len(), 2);
    assert_eq!(ships[0].status, RunStatus::Succeeded);
    assert_eq!(ships[1].status, RunStatus::Failed);
    let d = j.run_details(ships[0].id).unwrap();
    let statuses: Vec<StepStatus> = d.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses[0], StepStatus::Skipped);
    assert!(
        statuses[1..].iter().all(|s| *s == StepStatus::Succeeded),
        "{statuses:?}"
    );
    let build = d
        .steps
        .iter()
        .find(|s| s.name.starts_with("app build"))
        .unwrap();
    let result = d.results.iter().find(|r| r.step == build.index).unwrap();
    let build_run = runs.iter().find(|r| r.mode == "app build").unwrap();
    assert!(
        result
            .stdout
            .contains(&format!("runs {} (app build, succeeded)", build_run.id)),
        "{}",
        result.stdout
    );
    let sub_modes: Vec<&str> = runs
        .iter()
        .filter(|r| r.id > ships[1].id && r.id < ships[0].id + 100 && r.mode != "ship")
        .map(|r| r.mode.as_str())
        .collect();
    for m in ["release wait", "app build", "chart bump", "chart promote"] {
        assert!(sub_modes.contains(&m), "{m}: {sub_modes:?}");
    }
    drop(j);

    // 3. Once more: everything is already done, nothing changes.
    let before = bed.snapshot();
    let o = bed.ship(&["--repo", &repo, "--no-sign", "--timeout", "30s"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert_eq!(out.matches(": already done: ").count(), 8, "{out}");
    assert!(out.contains("0 step(s) done now, 8 already done"), "{out}");
    // The plan names the image already built, not a new version.
    assert!(
        out.contains(&format!(
            "already built: tag swh-loader-git-{version} on origin"
        )) && out.contains(&format!("chart bump swh-loader-git={version} ")),
        "{out}"
    );
    assert!(
        out.contains(&format!("swh-next-version has swh_loader_git: {version}")),
        "{out}"
    );
    assert!(
        out.contains("production (archive-production-rke2-swh-cassandra) is live at"),
        "{out}"
    );
    assert_eq!(bed.snapshot(), before);
    let j = bed.journal();
    let runs = j.runs(50).unwrap();
    assert_eq!(runs[0].mode, "ship");
    assert_eq!(runs[1].mode, "chart promote", "no new sub-run");
    let d = j.run_details(runs[0].id).unwrap();
    assert!(d.steps.iter().all(|s| s.status == StepStatus::Skipped));
    // `history RUN --outputs` shows the steps, numbered as printed, with
    // their results.
    let o = bed
        .cmd(&["history", &runs[0].id.to_string(), "--outputs"])
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert!(
        out.contains("step 1 release tag: swh-deploy release tag 1.2.0")
            && out.contains("[ship] on v1.2.0: skipped")
            && out.contains("v1.2.0: already done: v1.2.0 is on origin at HEAD"),
        "{out}"
    );
    // --json: the plan and progress on stderr, how it ended on stdout.
    let o = bed.ship(&["--repo", &repo, "--no-sign", "--timeout", "30s", "--json"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    let v = common::json_doc(&out);
    assert_eq!(v["status"], "shipped");
    assert_eq!(v["module"], "swh.loader.git");
    assert_eq!(v["version"], "1.2.0");
    assert_eq!(
        (v["done_now"].clone(), v["already_done"].clone()),
        (0.into(), 8.into())
    );
    assert_eq!(err.matches(": already done: ").count(), 8, "{err}");
}

#[test]
fn degraded_staging_stops_before_production_and_a_rerun_continues() {
    let bed = Bed::new("");
    bed.push_base_images();
    bed.publish();
    let version = today_version(1);
    // The new image's rollout fails in the cluster.
    bed.standin.set_faults(Faults {
        degraded_versions: vec![version.clone()],
        ..Faults::default()
    });
    let prod_before = bed.head("production");
    let o = bed.ship(&["--timeout", "60s"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(
        out.contains("note: no --repo: v1.2.0 is not tagged by ship"),
        "{out}"
    );
    assert!(
        out.contains("[1/7] release wait: already done: published on pypi"),
        "{out}"
    );
    assert!(
        err.contains("step 5/7 (cluster wait) failed (exit 1)")
            && err.contains("ProgressDeadlineExceeded"),
        "{err}"
    );
    assert!(
        err.contains("swh-deploy ship swh.loader.git 1.2.0 --elastic"),
        "{err}"
    );
    assert!(bed.values("staging").contains(&format!("'{version}'")));
    assert_eq!(
        bed.head("production"),
        prod_before,
        "production was not touched"
    );

    // The fix: a hotfix commit on staging rolls out fine.
    bed.standin.set_faults(Faults::default());
    push_chart_version(
        &bed.remotes.charts.url,
        &bed.root.join("scratch"),
        "staging",
        "swh_counters",
        "20250113.2",
    )
    .unwrap();
    let o = bed.ship(&["--timeout", "60s"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    for done in [
        "[2/7] app build: already done: tag swh-loader-git-",
        "[3/7] chart bump: already done",
        "[4/7] chart promote: already done: staging has swh_loader_git",
    ] {
        assert!(out.contains(done), "{done}: {out}");
    }
    // (staging may already be live at the hotfix when the step starts)
    assert!(out.contains("[5/7] cluster wait: "), "{out}");
    assert!(out.contains("[6/7] chart promote: done"), "{out}");
    assert!(out.contains("[7/7] cluster wait: done"), "{out}");
    assert_eq!(bed.head("production"), bed.head("staging"));
    assert!(bed
        .values("production")
        .contains(&format!("swh_loader_git_image_version: '{version}'")));
}

/// The static and the elastic path in one ship: 2 systemd hosts (host1 in
/// staging, host2 in production) with the test bed's apt repository, then
/// the apps, the chart and Argo CD; a re-run finds everything done.
#[test]
fn static_and_elastic_ship_upgrades_staging_then_production_hosts() {
    if !need_root() {
        return;
    }
    let tb = systemd_hosts(2, false);
    let hosts: Vec<String> = tb.hosts().iter().map(|h| h.name.clone()).collect();
    let sh = |host: &str, cmd: &str| -> String {
        let o = tb
            .ssh_command(host, cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let at_v10: Vec<(&str, &str)> = hosts.iter().map(|h| (h.as_str(), V10)).collect();
    install(
        &tb,
        &at_v10,
        &["python3-swh.loader.git", "python3-swh.storage"],
    );
    let bed = Bed::new(&format!(
        "\n[ssh]\nconfig = \"{}\"\nuser = \"root\"\nconnect_timeout = \"3s\"\nfanout = 16\n\n\
         [groups.stg]\nenvironment = \"staging\"\nnodes = \"{}\"\n\n\
         [groups.prd]\nenvironment = \"production\"\nnodes = \"{},{}\"\n\n\
         [services.loader-git]\nkind = \"worker\"\nunits = [\"swh-worker@loader_git\"]\n\
         packages = [\"python3-swh.loader.git\"]\ngroups = [\"stg\", \"prd\"]\n\
         health = {{ check = \"systemd\", deadline = \"30s\", interval = \"500ms\" }}\n",
        tb.ssh_config_path().display(),
        hosts[0],
        hosts[0],
        hosts[1]
    ));
    bed.push_base_images();
    let apt = tb.apt_url().unwrap();
    let ship = |bed: &Bed, interval: &str| {
        bed.cmd(&[
            "ship",
            "swh.loader.git",
            "1.1",
            "--static",
            "--elastic",
            "--apt",
            &apt,
            "--pypi",
            &bed.index.url(),
            "--interval",
            interval,
            "--timeout",
            "60s",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    // 1. Ctrl-C while waiting for Argo CD (after the upgrade steps, whose
    // executor handled signals itself): the ship ends at once.
    let mut child = ship(&bed, "20s");
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("[7/9] cluster wait") {
                let _ = tx.send(());
            }
        }
        all
    });
    let waiting = rx.recv_timeout(Duration::from_secs(240));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(waiting.is_ok(), "never reached step 7:\n{out}\n{err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(libc::SIGINT),
        "the ship did not end on SIGINT:\n{out}\n{err}"
    );
    let order: Vec<usize> = [
        "[2/9] upgrade staging: done",
        "[3/9] upgrade production: done",
        "[4/9] app build: done",
        "[6/9] chart promote: done",
    ]
    .iter()
    .map(|l| out.find(l).unwrap_or_else(|| panic!("{l}: {out}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    // The image's build says what runs, after the time elapsed.
    assert!(
        err.lines().any(|l| l.starts_with('[')
            && l.contains("s] swh-deploy app build: build ")
            && l.contains(" with buildah (also tagged latest)")),
        "{err}"
    );
    // host1 (in staging and production) is upgraded once, in staging.
    assert!(
        out.contains(&format!(
            "upgrading {} only: {} already at 1.1",
            hosts[1], hosts[0]
        )),
        "{out}"
    );
    for h in &hosts {
        assert_eq!(
            sh(h, "dpkg-query -W -f='${Version}' python3-swh.loader.git"),
            V11,
            "{h}"
        );
        assert_eq!(sh(h, "systemctl is-active swh-worker@loader_git"), "active");
    }

    // 2. The same command continues to production.
    let o = ship(&bed, "100ms").wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(
        out.contains("(interrupted): steps already done are skipped"),
        "{out}"
    );
    for l in [
        "[2/9] upgrade staging: already done",
        "[6/9] chart promote: already done",
        "[9/9] cluster wait: ",
        "shipped swh.loader.git 1.1: ",
    ] {
        assert!(out.contains(l), "{l}: {out}");
    }
    assert!(bed
        .values("production")
        .contains("swh_loader_git_image_version: '"));
    assert_eq!(
        git(
            &bed.remotes.charts.path,
            &["log", "-1", "--format=%s", "production"]
        ),
        "v424: Release swh.loader.git v1.1"
    );
    // The upgrades are their own journal runs, named in the ship's steps.
    let j = bed.journal();
    let ships: Vec<_> = j
        .runs(50)
        .unwrap()
        .into_iter()
        .filter(|r| r.mode == "ship")
        .collect();
    assert_eq!(ships[1].status, RunStatus::Interrupted);
    assert_eq!(ships[0].status, RunStatus::Succeeded);
    let d = j.run_details(ships[1].id).unwrap();
    let up = d
        .steps
        .iter()
        .find(|s| s.name.starts_with("upgrade staging"))
        .unwrap();
    assert_eq!(up.hosts, hosts[0]);
    let r = d.results.iter().find(|r| r.step == up.index).unwrap();
    assert!(
        r.stdout.contains("runs ") && r.stdout.contains("succeeded"),
        "{}",
        r.stdout
    );
    let upgrades: Vec<_> = j
        .runs(50)
        .unwrap()
        .into_iter()
        .filter(|r| r.mode == "nominal")
        .collect();
    assert_eq!(upgrades.len(), 2, "one upgrade run per environment");
    let prod = j.run_details(upgrades[0].id).unwrap();
    assert!(
        !prod.results.is_empty() && prod.results.iter().all(|r| r.host == hosts[1]),
        "{:?}",
        prod.results.iter().map(|r| &r.host).collect::<Vec<_>>()
    );
    drop(j);

    // Again: every step is already done (hosts at 1.1 per `versions`).
    let before = bed.snapshot();
    let o = ship(&bed, "100ms").wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(out.contains("0 step(s) done now, 9 already done"), "{out}");
    assert!(
        out.contains("[3/9] upgrade production: already done: python3-swh.loader.git at 1.1 on "),
        "{out}"
    );
    assert_eq!(bed.snapshot(), before);
    drop(bed);
    drop(tb);
}

/// An upgrade step refused because its hosts are locked by another live run
/// (exit 4), or because a crashed run left compensations pending (exit 5):
/// the ship stops with the upgrade's exit code.
#[test]
fn a_static_step_refused_by_a_lock_exits_4_and_by_pending_compensations_5() {
    let tmp = tempfile::tempdir().unwrap();
    // ssh reaches nothing (connection refused at once): the hosts' versions
    // are unknown, so the upgrade step is not already done.
    let ssh_config = tmp.path().join("ssh_config");
    std::fs::write(&ssh_config, "Host *\n  HostName 127.0.0.1\n  Port 9\n").unwrap();
    let bed = Bed::new(&format!(
        "\n[ssh]\nconfig = \"{}\"\nconnect_timeout = \"2s\"\n\n\
         [groups.stg]\nenvironment = \"staging\"\nnodes = \"nohost[1-2]\"\n\n\
         [services.loader-git]\nkind = \"worker\"\nunits = [\"swh-worker@loader_git\"]\n\
         packages = [\"python3-swh.loader.git\"]\ngroups = [\"stg\"]\n",
        ssh_config.display()
    ));
    bed.publish();
    // Another run (this live test process) holds nohost2.
    let mut j = Journal::open(&bed.root.join("journal.sqlite")).unwrap();
    let other = j
        .start_run(&swh_deploy_journal::NewRun {
            command_line: vec!["swh-deploy".into(), "upgrade".into()],
            mode: "nominal".into(),
            parameters: serde_json::json!({}),
        })
        .unwrap();
    j.acquire_locks(other, &["nohost2".to_string()]).unwrap();
    let o = bed
        .cmd(&[
            "ship",
            "swh.loader.git",
            "1.2.0",
            "--static",
            "--pypi",
            &bed.index.url(),
            "--timeout",
            "10s",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 4, "{out}\n{err}");
    assert!(out.contains("[1/2] release wait: already done"), "{out}");
    assert!(
        err.contains("step 2/2 (upgrade staging) failed (exit 4)") && err.contains("nohost2"),
        "{err}"
    );
    let runs = j.runs(10).unwrap();
    let ship = runs.iter().find(|r| r.mode == "ship").unwrap();
    assert_eq!(ship.status, RunStatus::Failed);
    let d = j.run_details(ship.id).unwrap();
    assert_eq!(d.steps[1].status, StepStatus::Failed);
    assert_eq!(d.steps[1].hosts, "nohost[1-2]");

    // A crashed run left cron stopped on nohost1 (a pending compensation
    // and its stale lock): refused with exit 5 until `swh-deploy recover`.
    j.release_locks(other, None).unwrap();
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let hostname = ship.hostname.clone();
    j.set_identity("someone", dead, &hostname);
    let crashed = j
        .start_run(&swh_deploy_journal::NewRun {
            command_line: vec!["swh-deploy".into(), "upgrade".into()],
            mode: "long-standing".into(),
            parameters: serde_json::json!({}),
        })
        .unwrap();
    j.acquire_locks(crashed, &["nohost1".to_string()]).unwrap();
    j.add_compensation(crashed, "nohost1", "start-cron")
        .unwrap();
    let o = bed
        .cmd(&[
            "ship",
            "swh.loader.git",
            "1.2.0",
            "--static",
            "--pypi",
            &bed.index.url(),
            "--timeout",
            "10s",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 5, "{out}\n{err}");
    assert!(
        err.contains("step 2/2 (upgrade staging) failed (exit 5)") && err.contains("recover"),
        "{err}"
    );
}

/// The build's gate: uv must resolve the module at the release being
/// shipped; a newer release on the index stops the ship before building.
#[test]
fn a_newer_release_on_the_index_stops_the_build_before_anything_is_built() {
    let bed = Bed::new("");
    bed.publish();
    bed.index.publish("swh.loader.git", "1.3.0", DEPS).unwrap();
    let before = bed.snapshot();
    let frozen = bed
        .root
        .join("swh-apps/apps/swh-loader-git/requirements-frozen.txt");
    let frozen_before = std::fs::read_to_string(&frozen).unwrap();
    let o = bed.ship(&["--timeout", "30s"]);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}\n{err}");
    assert!(
        err.contains("step 2/7 (app build) failed (exit 1)")
            && err.contains("resolves swh.loader.git at 1.3.0 for apps/swh-loader-git, not 1.2.0"),
        "{err}"
    );
    assert_eq!(bed.snapshot(), before, "nothing pushed");
    assert_eq!(std::fs::read_to_string(&frozen).unwrap(), frozen_before);
    let j = bed.journal();
    assert!(
        !j.runs(10).unwrap().iter().any(|r| r.mode == "app build"),
        "no build started"
    );
}

/// A release that no app pins (about one real release in nine, e.g.
/// `v422: Release swh.export v1.8.0`): the elastic path builds nothing and
/// releases the chart with appVersion + 1 only, then promotes it; a re-run
/// finds it all done.
#[test]
fn a_release_no_app_pins_bumps_the_chart_release_only_to_production() {
    let bed = Bed::new("");
    bed.index.publish("swh.export", "1.8.0", &[]).unwrap();
    let before = bed.head("swh-next-version");
    let values_before = bed.values("swh-next-version");
    let url = bed.index.url();
    let args = [
        "ship",
        "swh.export",
        "1.8.0",
        "--elastic",
        "--pypi",
        &url,
        "--interval",
        "100ms",
        "--timeout",
        "60s",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let o = bed.cmd(&dry).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    for e in [
        "ship swh.export 1.8.0: 6 step(s)",
        "note: --elastic: no app of ",
        "pins swh.export: no image to build; the chart release only bumps swh/Chart.yaml's appVersion",
        "  2. chart bump: swh-deploy chart bump --release-only --module swh.export --module-version v1.8.0",
        "no image version change; commit \"vN: Release swh.export v1.8.0\" and push",
        "  3. chart promote: swh-deploy chart promote staging",
        "  6. cluster wait: swh-deploy cluster wait production",
    ] {
        assert!(out.contains(e), "{e:?} missing from:\n{out}");
    }
    assert!(!out.contains("app build"), "{out}");
    assert_eq!(bed.head("swh-next-version"), before);

    let o = bed.cmd(&args).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(out.contains("production is live at"), "{out}");
    let head = bed.head("swh-next-version");
    assert_eq!(
        git(
            &bed.remotes.charts.path,
            &["log", "-1", "--format=%B", &head]
        ),
        "v424: Release swh.export v1.8.0"
    );
    assert_eq!(
        git(
            &bed.remotes.charts.path,
            &["diff", "--name-only", &before, &head]
        ),
        "swh/Chart.yaml"
    );
    assert_eq!(
        git(
            &bed.remotes.charts.path,
            &["rev-list", "--count", &format!("{before}..{head}")]
        ),
        "1"
    );
    for branch in ["staging", "production"] {
        assert_eq!(bed.head(branch), head, "{branch}");
        assert_eq!(bed.values(branch), values_before, "{branch}");
    }
    let j = bed.journal();
    let runs = j.runs(50).unwrap();
    let bump = runs.iter().find(|r| r.mode == "chart bump").unwrap();
    let d = j.run_details(bump.id).unwrap();
    assert_eq!(
        d.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["bump appVersion 423 -> 424 on swh-next-version, commit \"v424: Release swh.export v1.8.0\", push"]
    );
    drop(j);

    // Again: every step already done, nothing changes.
    let snapshot = bed.snapshot();
    let o = bed.cmd(&args).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}\n{err}");
    assert!(out.contains("0 step(s) done now, 6 already done"), "{out}");
    assert!(
        out.contains(&format!(
            "[2/6] chart bump: already done: swh-next-version has the release commit {head} v424: Release swh.export v1.8.0"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "[5/6] chart promote: already done: production has the release commit {head}"
        )),
        "{out}"
    );
    assert_eq!(bed.snapshot(), snapshot);
}
