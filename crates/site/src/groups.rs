//! Host groups as a node-set group source: `@name` in a node set given to
//! any command resolves to the site's `[groups.name]`.
//!
//! [`SiteGroups`] implements [`GroupResolver`]. Its default source is named
//! `site` and holds the site's groups: an inline group answers its node-set
//! expression (which may name other `@groups`), a group taken from a
//! ClusterShell group source answers `@source:group`, resolved in turn
//! through ClusterShell's configuration ([`ClusterShellGroups`], from the
//! site's `[clustershell] config_dir` or ClusterShell's own search path).
//! Groups the site does not define fall back to ClusterShell's default
//! source, so `@name` works as it does for clush.

use crate::{GroupMembers, Site, SiteError};
use std::collections::BTreeMap;
use std::sync::Mutex;
use swh_deploy_nodeset::{ClusterShellGroups, GroupError, GroupResolver, NodeSet};

/// The name of the site's own group source.
pub const SITE_SOURCE: &str = "site";

/// The site's groups, then ClusterShell's group sources.
pub struct SiteGroups<'a> {
    site: &'a Site,
    clustershell: ClusterShellGroups,
    /// The last name a ClusterShell group source answered that is not a
    /// host name (the node-set parser only keeps the error's text).
    refused: Mutex<Option<String>>,
}

impl<'a> SiteGroups<'a> {
    /// A resolver over `site`'s groups and ClusterShell's configuration.
    pub fn new(site: &'a Site) -> Result<SiteGroups<'a>, SiteError> {
        let loaded = match &site.clustershell.config_dir {
            Some(dir) => ClusterShellGroups::load_dir(dir),
            None => ClusterShellGroups::load_default(),
        };
        let clustershell = loaded.map_err(|e| SiteError::Unknown {
            message: format!(
                "{}: cannot load the ClusterShell group configuration: {e}",
                site.path.display()
            ),
        })?;
        Ok(SiteGroups::with_clustershell(site, clustershell))
    }

    /// A resolver over `site`'s groups and the given ClusterShell resolver.
    pub fn with_clustershell(site: &'a Site, clustershell: ClusterShellGroups) -> SiteGroups<'a> {
        SiteGroups {
            site,
            clustershell,
            refused: Mutex::new(None),
        }
    }

    /// Parses a node-set expression, resolving `@groups` through this
    /// resolver. A ClusterShell group source answering a name that is not a
    /// host name makes it [`SiteError::NotAHostName`]; other errors are
    /// [`SiteError::Unknown`]. The set is neither bounded nor checked
    /// further (see [`Site::nodes`]).
    pub fn parse(&self, expr: &str) -> Result<NodeSet, SiteError> {
        self.take_refused();
        NodeSet::parse_with(expr, self).map_err(|e| {
            let message = format!("invalid node set `{expr}`: {e}");
            match self.take_refused() {
                Some(name) => SiteError::NotAHostName { name, message },
                None => SiteError::Unknown { message },
            }
        })
    }

    fn take_refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The answer of a ClusterShell group source, refused when one of its
    /// node-set expressions names something that is not a host name (see
    /// [`crate::check_node_set_hosts`]); the error names the source and
    /// group.
    fn checked(
        &self,
        answer: Result<Vec<String>, GroupError>,
        group: &str,
        source: Option<&str>,
    ) -> Result<Vec<String>, GroupError> {
        let exprs = answer?;
        for expr in &exprs {
            if let Err(bad) = crate::check_node_set_hosts(expr) {
                *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(bad.name.clone());
                return Err(GroupError::Config(format!(
                    "ClusterShell group source `{}`, group `{group}`: `{}` is not a host name: {}",
                    source.unwrap_or("(default)"),
                    bad.name,
                    bad.reason
                )));
            }
        }
        Ok(exprs)
    }

    fn is_site(source: Option<&str>) -> bool {
        source.is_none() || source == Some(SITE_SOURCE)
    }
}

impl GroupResolver for SiteGroups<'_> {
    fn sources(&self) -> Vec<String> {
        let mut v = vec![SITE_SOURCE.to_owned()];
        v.extend(self.clustershell.sources());
        v
    }

    fn group_nodes(&self, group: &str, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        if Self::is_site(source) {
            if let Some(g) = self.site.groups.get(group) {
                return Ok(vec![match &g.members {
                    GroupMembers::Nodes(expr) => expr.clone(),
                    GroupMembers::Source { source, group } => format!("@{source}:{group}"),
                }]);
            }
            if source.is_none() && !self.clustershell.sources().is_empty() {
                return self.checked(self.clustershell.group_nodes(group, None), group, None);
            }
            return Ok(Vec::new());
        }
        self.checked(self.clustershell.group_nodes(group, source), group, source)
    }

    fn all_nodes(&self, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        if Self::is_site(source) {
            return Ok(self
                .site
                .groups
                .keys()
                .map(|name| format!("@{SITE_SOURCE}:{name}"))
                .collect());
        }
        self.clustershell.all_nodes(source)
    }

    fn group_list(&self, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        if Self::is_site(source) {
            return Ok(self.site.groups.keys().cloned().collect());
        }
        self.clustershell.group_list(source)
    }
}

/// The most hosts that one node set of a site may name. A site's groups and
/// the node sets given to `upgrade` are planned host by host, so a larger
/// set (`x[1-999999999]`, a typo of a range) is refused before any name is
/// expanded, instead of growing the process past its memory.
pub const MAX_HOSTS: usize = 100_000;

/// The words that end the error of a node set larger than [`MAX_HOSTS`]
/// ([`SiteError::TooManyHosts`]).
pub const TOO_MANY_HOSTS: &str = "a site may plan";

/// Refuses `set` (parsed from `expr`) when it names more than [`MAX_HOSTS`]
/// hosts; counting does not expand it.
pub fn bound_hosts(set: NodeSet, expr: &str) -> Result<NodeSet, SiteError> {
    if set.len() > MAX_HOSTS {
        return Err(SiteError::TooManyHosts {
            expr: expr.to_owned(),
            count: set.len(),
        });
    }
    Ok(set)
}

/// Refuses the first name of `hosts` that is not a host name; `what` says
/// where the set came from.
pub(crate) fn check_hosts(hosts: &NodeSet, what: &str) -> Result<(), SiteError> {
    for h in hosts.iter() {
        if let Err(reason) = crate::check_host_name(&h) {
            return Err(SiteError::NotAHostName {
                message: format!("{what}: `{h}` is not a host name: {reason}"),
                name: h,
            });
        }
    }
    Ok(())
}

impl Site {
    /// A node-set group resolver over this site's groups (see [`SiteGroups`]).
    pub fn resolver(&self) -> Result<SiteGroups<'_>, SiteError> {
        SiteGroups::new(self)
    }

    /// Parses a node-set expression (`host[1-3]`, `@swh-workers!worker03`),
    /// resolving `@groups` through the site. Every resulting name must be a
    /// host name ([`crate::check_host_name`]).
    pub fn nodes(&self, expr: &str) -> Result<NodeSet, SiteError> {
        let set = self.resolver()?.parse(expr)?;
        let set = bound_hosts(set, expr)?;
        check_hosts(&set, &format!("node set `{expr}`"))?;
        Ok(set)
    }

    /// Every group's hosts as resolved here, by group name: what `site
    /// check` shows. A group whose node set is unusable wherever it is
    /// resolved ([`SiteError::makes_site_unusable`]: a name that is not a
    /// host name, too many hosts) makes the whole site unusable:
    /// [`SiteError::UnusableGroup`]. A group that cannot be resolved here
    /// (its ClusterShell source is not available) is an `Err` in the map.
    pub fn resolve_groups(
        &self,
    ) -> Result<BTreeMap<String, Result<NodeSet, SiteError>>, SiteError> {
        let mut resolved = BTreeMap::new();
        for group in self.groups.values() {
            let nodes = self.nodes(&format!("@{SITE_SOURCE}:{}", group.name));
            match nodes {
                Err(e) if e.makes_site_unusable() => {
                    return Err(SiteError::UnusableGroup {
                        group: group.name.clone(),
                        defined_at: group.defined_at.clone(),
                        source: Box::new(e),
                    })
                }
                nodes => {
                    resolved.insert(group.name.clone(), nodes);
                }
            }
        }
        Ok(resolved)
    }

    /// The hosts of group `name` (with or without `@`).
    pub fn group_hosts(&self, name: &str) -> Result<NodeSet, SiteError> {
        let group = self.group(name)?;
        let hosts = self.nodes(&format!("@{SITE_SOURCE}:{}", group.name))?;
        if hosts.is_empty() {
            return Err(SiteError::Unknown {
                message: format!("group `{}` ({}) has no hosts", group.name, group.defined_at),
            });
        }
        Ok(hosts)
    }
}
