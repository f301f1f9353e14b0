//! Where the swh-apps pieces of a run are: the checkout, its remote, the
//! registry, the Python to freeze for and the uv program.
//!
//! Each answer is taken in one order: the value the caller passes
//! (a command-line flag, else its environment variable, both resolved by the
//! caller: this module reads no environment), else the site file's `[apps]`
//! or `[registry]`, else a default. `app`, `ship`, `where` and `doctor` use
//! the same functions, so they agree on where things are.

use crate::registry::Registry;
use crate::{check_python_version, AppsRepo, Error, PythonTarget};
use std::path::{Path, PathBuf};
use swh_deploy_site::Site;

/// The swh-apps checkout: `explicit` (`--apps-dir`, else
/// `$SWH_DEPLOY_APPS_DIR`), else the site file's `[apps] checkout`, else the
/// current directory.
pub fn apps_dir(explicit: Option<&Path>, site: Option<&Site>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| {
            site.and_then(|s| s.apps.as_ref())
                .map(|a| a.checkout.clone())
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The git remote of swh-apps: the site file's `[apps] remote`, else
/// `origin`.
pub fn apps_remote(site: Option<&Site>) -> String {
    site.and_then(|s| s.apps.as_ref())
        .map(|a| a.remote.clone())
        .unwrap_or_else(|| "origin".into())
}

/// Opens the checkout [`apps_dir`] names, with the remote [`apps_remote`]
/// names.
pub fn open_repo(explicit: Option<&Path>, site: Option<&Site>) -> Result<AppsRepo, Error> {
    Ok(AppsRepo::open(&apps_dir(explicit, site))?.with_remote(&apps_remote(site)))
}

/// The registry prefix as text: `explicit` (`--registry`, else
/// `$SWH_DEPLOY_REGISTRY`), else the site file's `[registry]`
/// (`http://HOST/PREFIX` when it is `insecure`); `None` when none is set.
pub fn registry_text(explicit: Option<&str>, site: Option<&Site>) -> Option<String> {
    explicit.map(String::from).or_else(|| {
        site.and_then(|s| s.registry.as_ref()).map(|r| {
            format!(
                "{}{}/{}",
                if r.insecure { "http://" } else { "" },
                r.host,
                r.prefix
            )
        })
    })
}

/// The registry ([`registry_text`], parsed); an input error when none is
/// set or it does not parse.
pub fn registry(explicit: Option<&str>, site: Option<&Site>) -> Result<Registry, Error> {
    let text = registry_text(explicit, site).ok_or_else(|| {
        Error::Input(
            "no registry: pass --registry, set SWH_DEPLOY_REGISTRY or add [registry] to the site file"
                .into(),
        )
    })?;
    Registry::parse(&text)
}

/// The Python version to freeze for, when one is asked: `explicit`
/// (`--python-version`, else `$SWH_DEPLOY_PYTHON_VERSION`), else the site
/// file's `[apps] python_version`. `None`: the checkout's own
/// ([`AppsRepo::python_target`]).
pub fn python_version(explicit: Option<&str>, site: Option<&Site>) -> Option<String> {
    explicit.map(String::from).or_else(|| {
        site.and_then(|s| s.apps.as_ref())
            .and_then(|a| a.python_version.clone())
    })
}

/// `repo` freezing for `version` ([`python_version`]) with the interpreter
/// `interpreter` (`--python`); `repo` unchanged when neither is given. An
/// input error when `version` is not `3.N` or `3.N.M`.
pub fn with_python(
    repo: AppsRepo,
    version: Option<String>,
    interpreter: Option<String>,
) -> Result<AppsRepo, Error> {
    if version.is_none() && interpreter.is_none() {
        return Ok(repo);
    }
    let mut target: PythonTarget = repo.python_target();
    if let Some(v) = version {
        check_python_version(&v)?;
        target.version = v;
    }
    target.interpreter = interpreter;
    Ok(repo.with_python(target))
}

/// The uv program: `explicit` (`--uv`, else `$SWH_DEPLOY_UV`), else `uv`
/// from `PATH`.
pub fn uv_program(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("uv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.toml");
        let text = format!("[groups.web]\nnodes = \"web1\"\n{extra}");
        Site::parse(&text, &path).unwrap()
    }

    #[test]
    fn apps_dir_is_the_explicit_one_then_the_site_then_the_current_directory() {
        let s = site("[apps]\ncheckout = \"/srv/swh-apps\"\nremote = \"upstream\"\n");
        assert_eq!(
            apps_dir(Some(Path::new("/x")), Some(&s)),
            PathBuf::from("/x")
        );
        assert_eq!(apps_dir(None, Some(&s)), PathBuf::from("/srv/swh-apps"));
        assert_eq!(apps_dir(None, None), PathBuf::from("."));
        assert_eq!(apps_remote(Some(&s)), "upstream");
        assert_eq!(apps_remote(None), "origin");
    }

    #[test]
    fn registry_is_the_explicit_one_then_the_site_and_missing_is_an_error() {
        let s =
            site("[registry]\nhost = \"127.0.0.1:5000\"\nprefix = \"swh/apps\"\ninsecure = true\n");
        let r = registry(None, Some(&s)).unwrap();
        assert_eq!(
            (r.scheme.as_str(), r.host.as_str(), r.prefix.as_str()),
            ("http", "127.0.0.1:5000", "swh/apps")
        );
        let r = registry(Some("reg.example.org/a/b"), Some(&s)).unwrap();
        assert_eq!(
            (r.scheme.as_str(), r.host.as_str()),
            ("https", "reg.example.org")
        );
        let e = registry(None, None).unwrap_err().to_string();
        assert!(e.starts_with("no registry: pass --registry"), "{e}");
        let e = registry(Some("bad host/x"), None).unwrap_err().to_string();
        assert!(e.contains("invalid registry"), "{e}");
    }

    #[test]
    fn python_version_is_the_explicit_one_then_the_site_and_is_checked() {
        let s = site("[apps]\ncheckout = \"/srv/swh-apps\"\npython_version = \"3.12\"\n");
        assert_eq!(
            python_version(Some("3.10"), Some(&s)).as_deref(),
            Some("3.10")
        );
        assert_eq!(python_version(None, Some(&s)).as_deref(), Some("3.12"));
        assert_eq!(python_version(None, None), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("apps")).unwrap();
        let repo = AppsRepo::open(dir.path()).unwrap();
        let r = with_python(
            repo.clone(),
            Some("3.12".into()),
            Some("/usr/bin/python3".into()),
        )
        .unwrap();
        assert_eq!(
            r.python_target(),
            PythonTarget {
                version: "3.12".into(),
                interpreter: Some("/usr/bin/python3".into())
            }
        );
        let e = with_python(repo, Some("2.7".into()), None).unwrap_err();
        assert!(e.to_string().contains("invalid Python version"), "{e}");
        assert_eq!(uv_program(None), PathBuf::from("uv"));
        assert_eq!(
            uv_program(Some(Path::new("/opt/uv"))),
            PathBuf::from("/opt/uv")
        );
    }
}
