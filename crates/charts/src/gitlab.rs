//! The next-version environment's Argo CD Application is generated per
//! merge request (an ApplicationSet's pull-request generator names it
//! `swh-{branch}-{number}`): its name comes from the open merge request
//! `swh-next-version` -> `staging`, read from GitLab's API.

use crate::{Env, Error};
use swh_deploy_site::Site;

/// The next-version Application found through its merge request.
#[derive(Debug, Clone)]
pub struct NextVersionApp {
    /// The merge request's number (`iid`).
    pub iid: u64,
    /// The Application's name.
    pub application: String,
    /// The site with that name as the environment's `argocd_application`.
    pub site: Site,
}

impl std::fmt::Display for NextVersionApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "next-version: merge request !{}, Application {}",
            self.iid, self.application
        )
    }
}

/// The environment deployed from `branch` whose `argocd_application` has
/// `{number}`: its name and that template.
fn templated_environment(site: &Site, branch: &str) -> Option<(String, String)> {
    site.environments.iter().find_map(|(n, e)| {
        (e.chart_branch.as_deref() == Some(branch))
            .then_some(())
            .and(e.argocd_application.as_ref())
            .filter(|a| a.contains("{number}"))
            .map(|a| (n.clone(), a.clone()))
    })
}

/// The Application name of `template` for merge request `iid` of `branch`.
pub fn application_name(template: &str, branch: &str, iid: u64) -> String {
    template
        .replace("{branch}", branch)
        .replace("{number}", &iid.to_string())
}

/// For a promotion from swh-next-version whose environment's
/// `argocd_application` has `{number}`: the number of the open merge
/// request swh-next-version -> staging, read from `[charts]
/// merge_requests` (GitLab's API; `token` sent as `PRIVATE-TOKEN`, never
/// printed), and the site with that Application. None when there is
/// nothing to resolve; an error when no merge request is open.
pub fn next_version_application(
    site: Option<&Site>,
    from: Env,
    token: Option<&str>,
) -> Result<Option<NextVersionApp>, Error> {
    let Some(site) = site else { return Ok(None) };
    if from != Env::NextVersion {
        return Ok(None);
    }
    let branch = from.branch();
    let Some((name, template)) = templated_environment(site, branch) else {
        return Ok(None);
    };
    let api = site
        .charts
        .as_ref()
        .and_then(|c| c.merge_requests.as_deref())
        .ok_or_else(|| Error::Input(format!(
            "{}: environment {name}'s argocd_application {template:?} needs the merge request's number: set [charts] merge_requests (the GitLab project's API URL)",
            site.path.display()
        )))?
        .trim_end_matches('/');
    let url = format!(
        "{api}/merge_requests?state=opened&source_branch={branch}&target_branch={}",
        Env::Staging.branch()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.get(&url);
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req = req.header("PRIVATE-TOKEN", t);
    }
    let fail = |e: &dyn std::fmt::Display| Error::Command(format!("GET {url}: {e}"));
    let body = req
        .call()
        .map_err(|e| fail(&e))?
        .body_mut()
        .read_to_string()
        .map_err(|e| fail(&e))?;
    let mrs: serde_json::Value = serde_json::from_str(&body).map_err(|e| fail(&e))?;
    let Some(iid) = first_iid(&mrs) else {
        return Err(Error::Refused(format!(
            "refusing to promote from {branch}: no open merge request {branch} -> staging ({url}), so no next-version Application ({template}) to check; chart bump opens it, or pass --no-gate"
        )));
    };
    let application = application_name(&template, branch, iid);
    let mut site = site.clone();
    if let Some(e) = site.environments.get_mut(&name) {
        e.argocd_application = Some(application.clone());
    }
    Ok(Some(NextVersionApp {
        iid,
        application,
        site,
    }))
}

/// The `iid` of the first merge request of a GitLab list answer.
fn first_iid(mrs: &serde_json::Value) -> Option<u64> {
    mrs.as_array()
        .and_then(|a| a.first())
        .and_then(|m| m["iid"].as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SITE: &str = r#"
[environments.next-version]
chart_branch = "swh-next-version"
argocd_application = "swh-{branch}-{number}"
[environments.staging]
chart_branch = "staging"
argocd_application = "swh-staging"
"#;

    #[test]
    fn names_and_iids() {
        assert_eq!(
            application_name("swh-{branch}-{number}", "swh-next-version", 7),
            "swh-swh-next-version-7"
        );
        let v: serde_json::Value = serde_json::from_str(r#"[{"iid": 12}, {"iid": 3}]"#).unwrap();
        assert_eq!(first_iid(&v), Some(12));
        assert_eq!(first_iid(&serde_json::json!([])), None);
    }

    #[test]
    fn only_a_templated_next_version_needs_a_merge_request() {
        let site = Site::parse(SITE, Path::new("site.toml")).unwrap();
        assert!(next_version_application(Some(&site), Env::Staging, None)
            .unwrap()
            .is_none());
        assert!(next_version_application(None, Env::NextVersion, None)
            .unwrap()
            .is_none());
        // No [charts] merge_requests: refused before any request, naming
        // the setting.
        let e = next_version_application(Some(&site), Env::NextVersion, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("set [charts] merge_requests"), "{e}");
        assert_eq!(
            templated_environment(&site, "swh-next-version"),
            Some(("next-version".into(), "swh-{branch}-{number}".into()))
        );
    }
}
