//! The typed upgrade request: what the operator asked for, planned by one
//! function for a dry run and for a real run alike.
//!
//! An [`UpgradeRequest`] holds the operator's words (node sets, services,
//! environment) and typed options ([`Mode`], [`BatchSpec`], [`FailBudget`],
//! [`PackageName`]s). [`UpgradeRequest::plan`] checks the node sets typed on
//! the command line, resolves the selection against the site
//! ([`crate::select`]) and builds the [`Plan`] ([`crate::plan()`]):
//! `swh-deploy upgrade --dry-run` prints that plan, a real run
//! ([`crate::execute::start`]) stores it with the run and executes the same
//! plan, and `resume` rebuilds it from the stored request and compares.
//!
//! The request is stored in the journal as JSON with the options as the
//! strings the command line takes (`"mode": "long-standing"`, `"batch":
//! "1,50%"`); an empty `batch` or `max_fail`, as older runs stored when the
//! option was not given, reads as the default.

use crate::batch::{BatchSpec, FailBudget};
use crate::plan::{plan, Mode, Plan, PlanError, PlanRequest};
use crate::{select, SelectError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use swh_deploy_journal::RunId;
use swh_deploy_site::{PackageName, Site};
use swh_deploy_util::Exit;

/// What the operator asked for, as stored with the run so that `resume`
/// can rebuild the very same plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeRequest {
    /// The site file (absolute).
    pub site: PathBuf,
    /// `--env`.
    pub env: Option<String>,
    /// `-w NODES` and `@group` arguments (node-set expressions).
    pub nodes: Vec<String>,
    /// `--service`.
    pub services: Vec<String>,
    /// `--mode`.
    #[serde(with = "text")]
    pub mode: Mode,
    /// `--packages` (empty: a full `dist-upgrade`).
    pub packages: Vec<PackageName>,
    /// `--migration`.
    pub migration: Option<String>,
    /// `--reason`.
    pub reason: Option<String>,
    /// `--batch` (default: one batch of all hosts).
    #[serde(with = "text_or_default")]
    pub batch: BatchSpec,
    /// `--max-fail` (default: 0).
    #[serde(with = "text_or_default")]
    pub max_fail: FailBudget,
}

/// Why a request cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A node set typed on the command line names something that is not a
    /// host name.
    #[error("node set `{expr}` (command line): `{name}` is not a host name: {reason}")]
    NotAHostName {
        /// The node set as given.
        expr: String,
        /// The offending name.
        name: String,
        /// Why it is not a host name.
        reason: String,
    },
}

/// Why [`UpgradeRequest::plan`] failed; the messages are those the
/// operator sees.
#[derive(Debug, thiserror::Error)]
pub enum PlanRequestError {
    /// A node set of the request is not acceptable.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The selection could not be resolved against the site.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The plan cannot be made.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl PlanRequestError {
    /// The exit a request that cannot be planned means: [`Exit::Failed`]
    /// (bad input).
    pub fn exit(&self) -> Exit {
        Exit::Failed
    }
}

impl UpgradeRequest {
    /// A request for `site` (made absolute when it can be) with the
    /// defaults of the command line: nominal mode, all hosts in one batch,
    /// no failure allowed.
    pub fn new(site: &Site) -> UpgradeRequest {
        UpgradeRequest {
            site: std::fs::canonicalize(&site.path).unwrap_or_else(|_| site.path.clone()),
            env: None,
            nodes: Vec::new(),
            services: Vec::new(),
            mode: Mode::default(),
            packages: Vec::new(),
            migration: None,
            reason: None,
            batch: BatchSpec::default(),
            max_fail: FailBudget::default(),
        }
    }

    /// Checks the node sets of the request: each name they spell out must
    /// be a host name ssh cannot misread (names from the site and from
    /// ClusterShell group sources are checked as they are resolved).
    pub fn check_nodes(&self) -> Result<(), RequestError> {
        for expr in &self.nodes {
            if let Err(bad) = swh_deploy_site::check_node_set_hosts(expr) {
                return Err(RequestError::NotAHostName {
                    expr: expr.clone(),
                    name: bad.name,
                    reason: bad.reason,
                });
            }
        }
        Ok(())
    }

    /// Resolves the request against `site` into a [`PlanRequest`] for
    /// `run_id` (`None`: as for a dry run).
    pub fn plan_request(
        &self,
        site: &Site,
        run_id: Option<RunId>,
    ) -> Result<PlanRequest, PlanRequestError> {
        self.check_nodes()?;
        let selection = select(site, self.env.as_deref(), &self.nodes, &self.services)?;
        Ok(PlanRequest {
            mode: self.mode,
            targets: selection.targets,
            services: selection.services,
            packages: self.packages.clone(),
            migration: self.migration.clone(),
            reason: self.reason.clone(),
            batch: self.batch.clone(),
            max_fail: self.max_fail,
            run_id,
        })
    }

    /// The plan of the request for `run_id` (`None`: as for a dry run).
    /// The one planning function of an upgrade: `--dry-run` prints its
    /// result, a real run stores and executes it, `resume` compares it.
    pub fn plan(&self, site: &Site, run_id: Option<RunId>) -> Result<Plan, PlanRequestError> {
        Ok(plan(&self.plan_request(site, run_id)?)?)
    }
}

/// Serde as the `Display`/`FromStr` text.
mod text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Serde as the `Display`/`FromStr` text; the empty string is the default.
mod text_or_default {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        super::text::serialize(v, s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr + Default,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(T::default());
        }
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Site {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sandbox.toml");
        Site::load(&path).unwrap()
    }

    fn long_standing(site: &Site) -> UpgradeRequest {
        UpgradeRequest {
            services: vec!["storage".into()],
            mode: Mode::LongStanding,
            migration: Some("swh db upgrade storage".into()),
            batch: "1".parse().unwrap(),
            max_fail: "1".parse().unwrap(),
            ..UpgradeRequest::new(site)
        }
    }

    #[test]
    fn requests_are_planned_against_the_site() {
        let site = sandbox();
        let r = long_standing(&site);
        let p = r.plan(&site, Some(42)).unwrap();
        assert_eq!(p.hosts, ["host1", "host2"]);
        assert_eq!(p.batches.len(), 2);
        assert_eq!(p.prepare[1].actions[0].hosts().len(), 2);
        assert_eq!(p.max_fail, FailBudget::Count(1));
    }

    #[test]
    fn dry_run_and_real_run_plan_the_same() {
        // The dry run's plan (no run id) is the one a real run stores; the
        // run's own plan differs only by the run id in puppet's message.
        let site = sandbox();
        let r = long_standing(&site);
        let dry = r.plan(&site, None).unwrap();
        let stored = r.plan(&site, None).unwrap();
        assert_eq!(
            serde_json::to_value(&dry).unwrap(),
            serde_json::to_value(&stored).unwrap()
        );
        let mut run = r.plan(&site, Some(7)).unwrap();
        assert_eq!(run.hosts, dry.hosts);
        assert_eq!(run.batches, dry.batches);
        assert_eq!((run.run_id, dry.run_id), (Some(7), None));
        run.run_id = None;
        let text = |p: &Plan| serde_json::to_string(p).unwrap();
        assert!(
            text(&dry).contains("swh-deploy <run id>: "),
            "{}",
            text(&dry)
        );
        assert!(!text(&run).contains("<run id>"));
        assert_eq!(
            text(&run).replace("swh-deploy 7: ", "swh-deploy <run id>: "),
            text(&dry)
        );
        // The plan a request planned directly matches the PlanRequest path.
        let direct = plan(&r.plan_request(&site, None).unwrap()).unwrap();
        assert_eq!(text(&direct), text(&dry));
    }

    #[test]
    fn stored_requests_round_trip_and_read_older_ones() {
        let site = sandbox();
        let mut r = long_standing(&site);
        r.packages = vec!["python3-swh.storage".parse().unwrap()];
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["mode"], "long-standing");
        assert_eq!(v["batch"], "1");
        assert_eq!(v["max_fail"], "1");
        assert_eq!(v["packages"][0], "python3-swh.storage");
        let back: UpgradeRequest = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, r);
        // Runs recorded before the request was typed stored "" for an
        // option not given.
        let mut old = v;
        old["batch"] = "".into();
        old["max_fail"] = "".into();
        let back: UpgradeRequest = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(back.batch, BatchSpec::default());
        assert_eq!(back.max_fail, FailBudget::default());
        old["mode"] = "yolo".into();
        let err = serde_json::from_value::<UpgradeRequest>(old.clone()).unwrap_err();
        assert!(err.to_string().contains("invalid mode `yolo`"), "{err}");
        old["mode"] = "nominal".into();
        old["packages"] = serde_json::json!(["Bad_Name"]);
        assert!(serde_json::from_value::<UpgradeRequest>(old).is_err());
    }

    #[test]
    fn bad_requests_are_refused_with_the_operators_message() {
        let site = sandbox();
        let mut r = UpgradeRequest::new(&site);
        r.nodes = vec!["-oProxyCommand=x".into()];
        let err = r.plan(&site, None).unwrap_err();
        assert!(matches!(
            err,
            PlanRequestError::Request(RequestError::NotAHostName { .. })
        ));
        assert!(
            err.to_string()
                .starts_with("node set `-oProxyCommand=x` (command line): "),
            "{err}"
        );
        let r = UpgradeRequest {
            migration: Some("x".into()),
            services: vec!["storage".into()],
            ..UpgradeRequest::new(&site)
        };
        assert!(matches!(
            r.plan(&site, None).unwrap_err(),
            PlanRequestError::Plan(PlanError::MigrationNeedsLongStanding(Mode::Nominal))
        ));
        let r = UpgradeRequest::new(&site);
        assert!(matches!(
            r.plan(&site, None).unwrap_err(),
            PlanRequestError::Select(SelectError::NoTargets)
        ));
    }
}
