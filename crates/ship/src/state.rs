//! [`Ship`]: the options, the site and what the steps learn as they go.

use crate::{input, ShipError, ShipOptions};
use std::collections::BTreeMap;
use swh_deploy_apps::registry::Registry;
use swh_deploy_apps::{resolve, AppsRepo, FreezeOptions};
use swh_deploy_charts::values::app_key;
use swh_deploy_charts::ChartsRepo;
use swh_deploy_release::publish::Channel;
use swh_deploy_release::ReleaseVersion;
use swh_deploy_site::Site;

/// One ship: its options and site file, and the state its steps share.
#[derive(Debug)]
pub struct Ship {
    /// What to ship and how.
    pub options: ShipOptions,
    /// The site file.
    pub site: Site,
    /// The apps of the elastic path (those pinning the module).
    pub apps: Vec<String>,
    /// Image version of each app, once built or found built.
    pub images: BTreeMap<String, String>,
    /// The hosts of the current upgrade step not at the release (or not
    /// answering), found by its check.
    pub behind: Vec<String>,
    /// The chart release changes no image (no app pins the module):
    /// appVersion + 1 only.
    pub release_only: bool,
}

impl Ship {
    /// A ship of `options` on `site`, nothing learnt yet.
    pub fn new(options: ShipOptions, site: Site) -> Ship {
        Ship {
            options,
            site,
            apps: Vec::new(),
            images: BTreeMap::new(),
            behind: Vec::new(),
            release_only: false,
        }
    }

    /// The swh-apps checkout, with the site file's remote, freezing for
    /// the Python version given (or the site file's).
    pub(crate) fn apps_repo(&self) -> Result<AppsRepo, ShipError> {
        let repo = AppsRepo::open(&self.options.apps_dir)
            .map_err(input)?
            .with_remote(&self.apps_remote());
        let python =
            resolve::python_version(self.options.python_version.as_deref(), Some(&self.site));
        resolve::with_python(repo, python, None).map_err(input)
    }

    /// The swh-apps checkout's remote ([`resolve::apps_remote`]).
    pub(crate) fn apps_remote(&self) -> String {
        resolve::apps_remote(Some(&self.site))
    }

    /// The swh-charts checkout, with the site file's remote and values file.
    pub(crate) fn charts_repo(&self) -> Result<ChartsRepo, ShipError> {
        let mut repo = ChartsRepo::open(&self.options.charts_dir).map_err(input)?;
        if let Some(c) = &self.site.charts {
            repo = repo.with_remote(&c.remote).with_values_file(&c.values_file);
        }
        Ok(repo)
    }

    /// The registry ([`resolve::registry`]): as given, else the site
    /// file's `[registry]`.
    pub(crate) fn registry(&self) -> Result<Registry, ShipError> {
        resolve::registry(self.options.registry.as_deref(), Some(&self.site)).map_err(input)
    }

    /// How uv freezes the apps: from `--index-url`, else the PyPI channel,
    /// upgrading the pins.
    pub(crate) fn freeze_options(&self) -> FreezeOptions {
        let index = self.options.index_url.clone().or_else(|| {
            self.options.channels.iter().find_map(|c| match c {
                Channel::Pypi { index } => Some(index.clone()),
                _ => None,
            })
        });
        let mut index_args = Vec::new();
        if let Some(u) = index {
            index_args.extend(["--index-url".to_string(), u]);
        }
        FreezeOptions {
            uv: self.options.uv.clone(),
            index_args,
            upgrade: true,
        }
    }

    /// The built image versions as `key: version, ...`.
    pub(crate) fn images_text(&self) -> String {
        self.images
            .iter()
            .map(|(a, v)| format!("{}: {v}", app_key(a)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The chart branch of the environment `env` (its `chart_branch`, else
    /// its name).
    pub(crate) fn branch_of<'a>(&'a self, env: &'a str) -> &'a str {
        self.site
            .environments
            .get(env)
            .and_then(|e| e.chart_branch.as_deref())
            .unwrap_or(env)
    }
}

/// The pypi-style spelling of the release for pins (`1.2.0`).
pub(crate) fn pin_version(v: &ReleaseVersion) -> String {
    v.to_string().trim_start_matches('v').to_string()
}

/// Whether a pinned version (`1.2.0`, `1.2`) is the release.
pub(crate) fn pin_matches(pin: Option<&String>, v: &ReleaseVersion) -> bool {
    pin.and_then(|p| ReleaseVersion::parse(p).ok())
        .is_some_and(|p| p == *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_match_the_release_in_any_spelling() {
        let v = ReleaseVersion::parse("v1.2.0").unwrap();
        assert_eq!(pin_version(&v), "1.2.0");
        assert!(pin_matches(Some(&"1.2.0".to_string()), &v));
        assert!(pin_matches(Some(&"1.2".to_string()), &v));
        assert!(!pin_matches(Some(&"1.3.0".to_string()), &v));
        assert!(!pin_matches(Some(&"not a version".to_string()), &v));
        assert!(!pin_matches(None, &v));
    }
}
