//! Before a promotion (and with `chart show --check`): every image:tag an
//! environment's application would deploy must exist in the registry.

use crate::{ChartsRepo, Env, Error};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use swh_deploy_apps::registry::Registry;
use swh_deploy_site::Site;

/// What [`check_images`] found. Its `Display` is the lines to show (what
/// was and was not checked); [`ImageCheck::result`] refuses when images
/// are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCheck {
    /// The environment checked.
    pub env: Env,
    /// How many image uses its application has.
    pub uses: usize,
    /// The site's registry host; None when the site file has no
    /// `[registry]` (nothing was checked).
    pub host: Option<String>,
    /// How many image:tag uses on that registry were looked up.
    pub checked: usize,
    /// Registry hosts of images not on the site's registry (not checked).
    pub elsewhere: BTreeSet<String>,
    /// The missing ones: `image:tag (where the tag is set)`.
    pub missing: Vec<String>,
}

impl ImageCheck {
    /// `Err` naming every missing image when some are.
    pub fn result(&self) -> Result<(), Error> {
        if self.missing.is_empty() {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "{} would deploy {} image(s) missing from the registry {}:\n{}\n\
             push them (swh-deploy app build --push) or fix the values; nothing was changed",
            self.env,
            self.missing.len(),
            self.host.as_deref().unwrap_or_default(),
            self.missing
                .iter()
                .map(|m| format!("  {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        )))
    }
}

impl ImageCheck {
    /// The lines to show: what was and was not checked (none when images
    /// are missing and all were on the site's registry: the refusal of
    /// [`ImageCheck::result`] says it all).
    pub fn lines(&self) -> Vec<String> {
        let Some(host) = &self.host else {
            return vec![format!(
                "images not checked: no [registry] in the site file ({} image(s) in {})",
                self.uses, self.env
            )];
        };
        let mut lines = Vec::new();
        if !self.elsewhere.is_empty() {
            lines.push(format!(
                "images not checked (not on the site's registry {host}): {} image(s) on {}",
                self.uses - self.checked,
                self.elsewhere
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.missing.is_empty() {
            lines.push(format!(
                "images checked: {} image:tag(s) of {} exist in {host}",
                self.checked, self.env
            ));
        }
        lines
    }
}

impl fmt::Display for ImageCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// Looks up every image:tag `env`'s application would deploy from `rev`:
/// the images on the site's `[registry]` host by their tag list (with the
/// docker config's credentials); images on other hosts are counted as not
/// checked. Missing images are in the report ([`ImageCheck::result`]);
/// errors are failures to read the chart or to ask the registry.
pub fn check_images(
    repo: &ChartsRepo,
    site: Option<&Site>,
    rev: &str,
    env: Env,
) -> Result<ImageCheck, Error> {
    let uses = repo.images_at(rev, env)?;
    let mut report = ImageCheck {
        env,
        uses: uses.len(),
        host: None,
        checked: 0,
        elsewhere: BTreeSet::new(),
        missing: Vec::new(),
    };
    let Some(reg) = site.and_then(|s| s.registry.as_ref()) else {
        return Ok(report);
    };
    let host = reg.host.trim_end_matches('/');
    let registry = Registry::parse(&format!(
        "{}://{host}",
        if reg.insecure { "http" } else { "https" }
    ))
    .map_err(|e| Error::Command(e.to_string()))?;
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in &uses {
        let Some(path) = u.image.strip_prefix(host).and_then(|p| p.strip_prefix('/')) else {
            report
                .elsewhere
                .insert(u.image.split('/').next().unwrap_or_default().to_string());
            continue;
        };
        if !tags.contains_key(path) {
            let t = registry
                .tags(path, None)
                .map_err(|e| Error::Command(e.to_string()))?;
            tags.insert(path.to_string(), t);
        }
        report.checked += 1;
        if !tags[path].contains(&u.tag) {
            report
                .missing
                .push(format!("{}:{} ({})", u.image, u.tag, u.source));
        }
    }
    report.host = Some(host.to_string());
    Ok(report)
}

/// `chart show --check`: [`check_images`] for each of `branches` (at the
/// remote's head), in order. `on` gets each environment's report, then
/// its refusal or failure if any. Returns the branches that failed; an
/// error when a branch is not an environment's.
pub fn check_branches(
    repo: &ChartsRepo,
    site: Option<&Site>,
    branches: &[String],
    on: &mut dyn FnMut(Result<&ImageCheck, &Error>),
) -> Result<Vec<String>, Error> {
    let mut failed = Vec::new();
    for b in branches {
        let Some(env) = Env::ALL.into_iter().find(|x| x.branch() == b) else {
            return Err(Error::Input(format!(
                "--check: {b} is not an environment branch"
            )));
        };
        let rev = format!("{}/{b}", repo.remote());
        let result = check_images(repo, site, &rev, env).and_then(|check| {
            on(Ok(&check));
            check.result()
        });
        if let Err(e) = result {
            on(Err(&e));
            failed.push(b.clone());
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ImageCheck {
        ImageCheck {
            env: Env::Staging,
            uses: 3,
            host: Some("reg:5000".into()),
            checked: 2,
            elsewhere: ["docker.io".to_string()].into(),
            missing: vec![],
        }
    }

    #[test]
    fn all_present_says_what_was_and_was_not_checked() {
        let r = report();
        assert!(r.result().is_ok());
        assert_eq!(
            r.to_string(),
            "images not checked (not on the site's registry reg:5000): 1 image(s) on docker.io\n\
             images checked: 2 image:tag(s) of staging exist in reg:5000"
        );
    }

    #[test]
    fn missing_images_are_refused_by_name() {
        let mut r = report();
        r.elsewhere.clear();
        r.missing = vec!["reg:5000/swh/a:20250101.1 (swh_a_image_version)".into()];
        assert!(r.lines().is_empty());
        let e = r.result().unwrap_err().to_string();
        assert_eq!(
            e,
            "staging would deploy 1 image(s) missing from the registry reg:5000:\n  \
             reg:5000/swh/a:20250101.1 (swh_a_image_version)\n\
             push them (swh-deploy app build --push) or fix the values; nothing was changed"
        );
    }

    #[test]
    fn no_registry_means_not_checked() {
        let r = ImageCheck {
            host: None,
            checked: 0,
            elsewhere: BTreeSet::new(),
            ..report()
        };
        assert!(r.result().is_ok());
        assert_eq!(
            r.to_string(),
            "images not checked: no [registry] in the site file (3 image(s) in staging)"
        );
    }
}
