//! `chart bump`, `chart promote` and `chart show` against real git with a
//! bare remote.

use std::path::{Path, PathBuf};
use std::process::Command;
use swh_deploy_charts::values::{Bump, CHART_FILE, VALUES_FILE};
use swh_deploy_charts::{BumpRequest, ChartsRepo, Env, Error};

const REAL: &str = include_str!("data/values-swh-application-versions.yaml");
const REAL_CHART: &str = include_str!("data/Chart.yaml");

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn identity(dir: &Path) {
    git(dir, &["config", "user.name", "Test"]);
    git(dir, &["config", "user.email", "test@example.invalid"]);
}

/// A bare swh-charts remote with the three environment branches at one
/// commit holding the real files, and a clone of it.
struct Bed {
    _tmp: tempfile::TempDir,
    remote: PathBuf,
    work: PathBuf,
}

impl Bed {
    fn new() -> Bed {
        Bed::with(REAL, REAL_CHART, "v423: initial")
    }

    /// A bed whose branches hold `values` and `chart`, committed as
    /// `subject`.
    fn with(values: &str, chart: &str, subject: &str) -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("swh-charts.git");
        let work = tmp.path().join("swh-charts");
        let seed = tmp.path().join("seed");
        git(
            tmp.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "swh-next-version",
                remote.to_str().unwrap(),
            ],
        );
        git(
            tmp.path(),
            &[
                "init",
                "-q",
                "-b",
                "swh-next-version",
                seed.to_str().unwrap(),
            ],
        );
        identity(&seed);
        std::fs::create_dir_all(seed.join("swh")).unwrap();
        std::fs::write(seed.join(VALUES_FILE), values).unwrap();
        std::fs::write(seed.join(CHART_FILE), chart).unwrap();
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "-q", "-m", subject]);
        git(
            &seed,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        for b in ["swh-next-version", "staging", "production"] {
            git(
                &seed,
                &["push", "-q", "origin", &format!("HEAD:refs/heads/{b}")],
            );
        }
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                remote.to_str().unwrap(),
                work.to_str().unwrap(),
            ],
        );
        identity(&work);
        Bed {
            _tmp: tmp,
            remote,
            work,
        }
    }

    fn clone_other(&self, name: &str) -> PathBuf {
        let p = self._tmp.path().join(name);
        git(
            self._tmp.path(),
            &[
                "clone",
                "-q",
                self.remote.to_str().unwrap(),
                p.to_str().unwrap(),
            ],
        );
        identity(&p);
        p
    }

    fn remote_head(&self, branch: &str) -> String {
        git(&self.remote, &["rev-parse", branch])
    }
}

fn request(bumps: &[(&str, &str)]) -> BumpRequest {
    BumpRequest {
        bumps: bumps
            .iter()
            .map(|(a, v)| Bump {
                app: a.to_string(),
                version: v.to_string(),
                add_image: None,
            })
            .collect(),
        module: None,
        branch: "swh-next-version".into(),
        push: true,
        dry_run: false,
        release_only: false,
        body: false,
        again: false,
        merge_request: None,
    }
}

#[test]
fn bump_commits_and_pushes_a_one_line_change() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let mut req = request(&[("swh-loader-git", "20250201.1")]);
    req.module = Some(("swh.loader.git".into(), "v2.1.0".into()));
    let out = repo.bump(&req).unwrap();
    assert!(out.pushed);
    assert_eq!(out.app_version, 424);
    let head = bed.remote_head("swh-next-version");
    assert_eq!(Some(head.clone()), out.commit);
    assert_eq!(
        git(&bed.remote, &["log", "-1", "--format=%s", &head]),
        "v424: Release swh.loader.git v2.1.0"
    );
    let diff = git(
        &bed.remote,
        &[
            "diff",
            "--unified=0",
            "--no-color",
            &format!("{head}~1"),
            &head,
        ],
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            "-appVersion: 423",
            "+appVersion: 424",
            "-swh_loader_git_image_version: '20250117.1'",
            "+swh_loader_git_image_version: '20250201.1'",
        ]
    );
    // Staging and production did not move.
    assert_eq!(
        bed.remote_head("staging"),
        git(&bed.remote, &["rev-parse", &format!("{head}~1")])
    );
}

#[test]
fn bump_without_module_names_the_apps_and_dry_run_writes_nothing() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let mut req = request(&[("swh-lister", "20250202.2"), ("swh-web", "20250202.1")]);
    req.dry_run = true;
    let before = bed.remote_head("swh-next-version");
    let out = repo.bump(&req).unwrap();
    assert!(out.commit.is_none());
    assert!(out
        .message
        .starts_with("v424: Release swh_lister 20250202.2, swh_web 20250202.1"));
    assert_eq!(
        std::fs::read_to_string(bed.work.join(VALUES_FILE)).unwrap(),
        REAL
    );
    assert_eq!(bed.remote_head("swh-next-version"), before);
    req.dry_run = false;
    let out = repo.bump(&req).unwrap();
    assert_eq!(
        git(
            &bed.remote,
            &["log", "-1", "--format=%s", "swh-next-version"]
        ),
        out.message.lines().next().unwrap()
    );
}

#[test]
fn refused_bump_leaves_files_byte_identical() {
    let bed = Bed::new();
    // A duplicate key committed upstream.
    let broken = format!("{REAL}swh_lister_image_version: '20250101.1'\n");
    std::fs::write(bed.work.join(VALUES_FILE), &broken).unwrap();
    git(&bed.work, &["commit", "-q", "-am", "dup"]);
    git(&bed.work, &["push", "-q", "origin", "swh-next-version"]);
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let head = bed.remote_head("swh-next-version");
    let e = repo
        .bump(&request(&[("swh-lister", "20250301.1")]))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("duplicate key `swh_lister_image_version`"),
        "{e}"
    );
    assert!(e
        .to_string()
        .contains(&format!("{}:", bed.work.join(VALUES_FILE).display())));
    assert_eq!(
        std::fs::read(bed.work.join(VALUES_FILE)).unwrap(),
        broken.as_bytes()
    );
    assert_eq!(
        std::fs::read(bed.work.join(CHART_FILE)).unwrap(),
        REAL_CHART.as_bytes()
    );
    assert_eq!(bed.remote_head("swh-next-version"), head);
}

#[test]
fn missing_app_is_refused_with_its_name() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let head = bed.remote_head("swh-next-version");
    let e = repo
        .bump(&request(&[("swh-nothere", "20250301.1")]))
        .unwrap_err();
    assert!(e.to_string().contains("swh-nothere"), "{e}");
    assert_eq!(git(&bed.work, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read(bed.work.join(VALUES_FILE)).unwrap(),
        REAL.as_bytes()
    );
    assert_eq!(bed.remote_head("swh-next-version"), head);
}

#[test]
fn failed_push_undoes_the_local_commit() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    // Make sure the work clone has the branch checked out and is current.
    repo.bump(&request(&[("swh-lister", "20250202.1")]))
        .unwrap();
    let local_before = git(&bed.work, &["rev-parse", "HEAD"]);
    // Someone else pushes in between; the remote rejects a non-ff push via
    // a pre-receive hook that refuses everything, standing for a lost race.
    let hook = bed.remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'denied by test hook' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = repo
        .bump(&request(&[("swh-web", "20250202.1")]))
        .unwrap_err();
    assert!(e.to_string().contains("denied by test hook"), "{e}");
    assert_eq!(git(&bed.work, &["rev-parse", "HEAD"]), local_before);
    assert_eq!(git(&bed.work, &["status", "--porcelain"]), "");
    let apps = swh_deploy_charts::values::read_apps(
        &std::fs::read_to_string(bed.work.join(VALUES_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(apps["swh_web"].version.as_deref(), Some("20250123.1"));
}

#[test]
fn bump_refuses_a_dirty_work_tree() {
    let bed = Bed::new();
    std::fs::write(bed.work.join("stray"), "x").unwrap();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let e = repo
        .bump(&request(&[("swh-lister", "20250202.1")]))
        .unwrap_err();
    assert!(
        matches!(e, Error::Refused(_)) && e.to_string().contains("stray"),
        "{e}"
    );
}

#[test]
fn promote_fast_forwards_and_reports_changes() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let out = repo
        .bump(&request(&[("swh-loader-git", "20250201.1")]))
        .unwrap();
    let plan = repo.plan_promote(Env::Staging).unwrap();
    assert_eq!(
        plan.changes,
        vec![(
            "swh_loader_git".to_string(),
            Some("20250117.1".to_string()),
            Some("20250201.1".to_string())
        )]
    );
    assert_eq!(plan.commits.len(), 1);
    repo.push_promote(&plan).unwrap();
    assert_eq!(Some(bed.remote_head("staging")), out.commit);
    // Production is one step behind until promoted too.
    let overview = repo
        .show(
            &Env::ALL
                .iter()
                .map(|e| e.branch().to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert!(overview.differs("swh_loader_git"));
    assert!(!overview.differs("swh_lister"));
    assert_eq!(
        overview.apps["swh_loader_git"],
        vec![
            Some("20250201.1".into()),
            Some("20250201.1".into()),
            Some("20250117.1".into())
        ]
    );
    let one = repo.show(&["staging".to_string()]).unwrap();
    assert_eq!(one.envs, vec!["staging"]);
    assert_eq!(
        one.apps["swh_loader_git"],
        vec![Some("20250201.1".to_string())]
    );
    assert!(!one.differs("swh_loader_git"));
    assert!(repo.show(&["nope".to_string()]).is_err());
    let plan = repo.plan_promote(Env::Production).unwrap();
    repo.push_promote(&plan).unwrap();
    assert_eq!(Some(bed.remote_head("production")), out.commit);
    // Nothing left to promote.
    let plan = repo.plan_promote(Env::Production).unwrap();
    assert!(plan.new_head.is_none() && plan.changes.is_empty());
    assert!(repo.plan_promote(Env::NextVersion).is_err());
}

#[test]
fn promote_refuses_a_non_fast_forward() {
    let bed = Bed::new();
    // A hotfix committed directly on production (staging is rebased onto
    // by a promotion to staging; production is only fast-forwarded).
    let other = bed.clone_other("hotfix");
    git(&other, &["checkout", "-q", "production"]);
    std::fs::write(other.join("HOTFIX"), "x").unwrap();
    git(&other, &["add", "HOTFIX"]);
    git(&other, &["commit", "-q", "-m", "hotfix on production"]);
    git(&other, &["push", "-q", "origin", "production"]);
    let production = bed.remote_head("production");
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let e = repo.plan_promote(Env::Production).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Refused(_)), "{msg}");
    assert!(
        msg.contains("not a fast-forward") && msg.contains("hotfix on production"),
        "{msg}"
    );
    assert_eq!(bed.remote_head("production"), production);
}

fn log1(dir: &Path, format: &str, rev: &str) -> String {
    git(dir, &["log", "-1", &format!("--format={format}"), rev])
}

#[test]
fn commit_message_is_the_subject_only_unless_body_is_asked() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let mut req = request(&[
        ("swh-loader-git", "20250201.1"),
        ("swh-lister", "20250201.2"),
    ]);
    req.module = Some(("swh.loader.git".into(), "v2.1.0".into()));
    let out = repo.bump(&req).unwrap();
    assert_eq!(out.message, "v424: Release swh.loader.git v2.1.0");
    assert_eq!(
        log1(&bed.remote, "%B", "swh-next-version"),
        "v424: Release swh.loader.git v2.1.0"
    );
    assert_eq!(log1(&bed.remote, "%b", "swh-next-version"), "");
    // The changes are still reported to the caller.
    assert_eq!(out.changes.len(), 2);
    req.bumps[0].version = "20250202.1".into();
    req.bumps[1].version = "20250202.2".into();
    req.body = true;
    let out = repo.bump(&req).unwrap();
    assert_eq!(
        log1(&bed.remote, "%b", "swh-next-version"),
        "- swh_loader_git: 20250201.1 -> 20250202.1\n- swh_lister: 20250201.2 -> 20250202.2"
    );
    assert_eq!(
        out.message.lines().next(),
        Some("v425: Release swh.loader.git v2.1.0")
    );
}

#[test]
fn release_only_bumps_app_version_alone_then_is_already_done() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let mut req = request(&[]);
    req.release_only = true;
    req.module = Some(("swh.export".into(), "v1.8.0".into()));
    let before = bed.remote_head("swh-next-version");
    // Dry run: the plan, nothing written.
    req.dry_run = true;
    let out = repo.bump(&req).unwrap();
    assert!(out.release_only && out.has_work() && out.changes.is_empty());
    assert_eq!(out.message, "v424: Release swh.export v1.8.0");
    assert_eq!(out.commit, None);
    assert_eq!(bed.remote_head("swh-next-version"), before);
    assert_eq!(
        std::fs::read_to_string(bed.work.join(CHART_FILE)).unwrap(),
        REAL_CHART
    );
    // For real: one commit touching swh/Chart.yaml only, as v422 of the
    // real repository.
    req.dry_run = false;
    let out = repo.bump(&req).unwrap();
    let head = bed.remote_head("swh-next-version");
    assert_eq!(out.commit.as_deref(), Some(head.as_str()));
    assert!(out.pushed);
    assert_eq!(
        log1(&bed.remote, "%B", &head),
        "v424: Release swh.export v1.8.0"
    );
    assert_eq!(
        git(&bed.remote, &["diff", "--name-only", &before, &head]),
        CHART_FILE
    );
    assert_eq!(
        git(&bed.remote, &["show", &format!("{head}:{CHART_FILE}")]),
        REAL_CHART
            .replace("appVersion: 423", "appVersion: 424")
            .trim_end()
    );
    // Again: the branch has that release commit, nothing is done.
    let again = repo.bump(&req).unwrap();
    assert!(!again.has_work());
    assert_eq!(
        again.already,
        Some(format!("{head} v424: Release swh.export v1.8.0"))
    );
    assert_eq!(again.commit, None);
    assert_eq!(bed.remote_head("swh-next-version"), head);
    assert_eq!(
        repo.release_commit("swh-next-version", "swh.export", "v1.8.0")
            .unwrap(),
        again.already
    );
    assert_eq!(
        repo.release_commit("staging", "swh.export", "v1.8.0")
            .unwrap(),
        None
    );
    // Another version is another release.
    req.module = Some(("swh.export".into(), "v1.8.1".into()));
    let out = repo.bump(&req).unwrap();
    assert_eq!(out.message, "v425: Release swh.export v1.8.1");
}

#[test]
fn release_only_is_refused_with_apps_or_without_module() {
    let bed = Bed::new();
    let repo = ChartsRepo::open(&bed.work).unwrap();
    let head = bed.remote_head("swh-next-version");
    let mut req = request(&[("swh-lister", "20250202.1")]);
    req.release_only = true;
    req.module = Some(("swh.lister".into(), "v1.0.0".into()));
    assert!(repo
        .bump(&req)
        .unwrap_err()
        .to_string()
        .contains("no APP=VERSION"));
    let mut req = request(&[]);
    req.release_only = true;
    assert!(repo
        .bump(&req)
        .unwrap_err()
        .to_string()
        .contains("--module"));
    let req = request(&[]);
    assert!(repo
        .bump(&req)
        .unwrap_err()
        .to_string()
        .contains("--release-only"));
    let mut req = request(&[]);
    req.release_only = true;
    req.module = Some(("swh.export".into(), "v1.8.0\n\nbody".into()));
    assert!(repo
        .bump(&req)
        .unwrap_err()
        .to_string()
        .contains("invalid module version"));
    assert_eq!(bed.remote_head("swh-next-version"), head);
    assert_eq!(git(&bed.work, &["status", "--porcelain"]), "");
}

/// Real release commits of SoftwareHeritage/swh-charts replayed through
/// `bump`: from the files of the commit's parent, the same Chart.yaml and
/// values file byte for byte, the same subject, no body, the same files
/// touched. Data: `tests/data/replay/` (see its README).
#[test]
fn real_release_commits_are_replayed_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replay");
    let read = |name: String| std::fs::read_to_string(dir.join(name)).unwrap();
    // commit, subject, its parent's subject, whether it changed images
    for (commit, subject, parent, images) in [
        (
            "3a560845",
            "v423: Release swh.graph v6.4.0",
            "v422: Release swh.export v1.8.0",
            true,
        ),
        (
            "bb49c138",
            "v421: Release swh.indexer v3.8.1",
            "v420: Release swh.web v0.9.6",
            true,
        ),
        (
            "ff9fc935",
            "v422: Release swh.export v1.8.0",
            "Drop unused external services",
            false,
        ),
        (
            "7a4d9307",
            "v389: Release swh.loader.svn v2.2.1",
            "v388: Release swh.storage v2.8.1",
            false,
        ),
        (
            "dbd019c8",
            "v410: Release swh.web v0.9.4",
            "v409: Release swh.web v0.9.4",
            false,
        ),
    ] {
        let chart_before = read(format!("{commit}.Chart.before.yaml"));
        let chart_after = read(format!("{commit}.Chart.after.yaml"));
        let (values_before, values_after) = if images {
            (
                read(format!("{commit}.values.before.yaml")),
                read(format!("{commit}.values.after.yaml")),
            )
        } else {
            (REAL.to_string(), REAL.to_string())
        };
        let bed = Bed::with(&values_before, &chart_before, parent);
        let repo = ChartsRepo::open(&bed.work).unwrap();
        let (_, rest) = subject.split_once(": Release ").unwrap();
        let (module, version) = rest.split_once(' ').unwrap();
        let mut req = request(&[]);
        req.module = Some((module.into(), version.into()));
        if images {
            // The image versions the release set, as given to the tool.
            let a = swh_deploy_charts::values::read_apps(&values_before).unwrap();
            let b = swh_deploy_charts::values::read_apps(&values_after).unwrap();
            req.bumps = b
                .iter()
                .filter(|(k, v)| a.get(*k) != Some(*v))
                .map(|(k, v)| Bump {
                    app: k.replace('_', "-"),
                    version: v.version.clone().unwrap(),
                    add_image: None,
                })
                .collect();
            assert!(!req.bumps.is_empty(), "{commit}");
        } else {
            req.release_only = true;
        }
        let before = bed.remote_head("swh-next-version");
        let out = match repo.bump(&req) {
            Ok(out) if out.already.is_some() => {
                // v410 repeats v409's release: done once unless asked again.
                assert_eq!(commit, "dbd019c8", "{out:?}");
                req.again = true;
                repo.bump(&req).unwrap()
            }
            other => other.unwrap(),
        };
        let head = bed.remote_head("swh-next-version");
        assert_eq!(out.commit.as_deref(), Some(head.as_str()), "{commit}");
        assert_eq!(
            git(&bed.remote, &["log", "-1", "--format=%B", &head]),
            subject,
            "{commit}"
        );
        let show = |path: &str| {
            let o = Command::new("git")
                .arg("-C")
                .arg(&bed.remote)
                .args(["show", &format!("{head}:{path}")])
                .output()
                .unwrap();
            String::from_utf8(o.stdout).unwrap()
        };
        assert_eq!(show(CHART_FILE), chart_after, "{commit}: {CHART_FILE}");
        assert_eq!(show(VALUES_FILE), values_after, "{commit}: {VALUES_FILE}");
        let touched = git(&bed.remote, &["diff", "--name-only", &before, &head]);
        if images {
            assert_eq!(touched, format!("{CHART_FILE}\n{VALUES_FILE}"), "{commit}");
        } else {
            assert_eq!(touched, CHART_FILE, "{commit}");
        }
    }
}
