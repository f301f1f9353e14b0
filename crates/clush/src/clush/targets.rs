//! The hosts a run targets: `-w`, `-x`, `-g`, `-X`, `-a`, `--hostfile`,
//! `--pick`, resolved with ClusterShell's groups and the site's.

use super::options::RunRequest;
use super::ClushError;
use std::path::{Path, PathBuf};
use swh_deploy_site::Site;

/// `-g web,db` means `@web,@db`.
pub(super) fn group_expr(g: &str) -> String {
    g.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('@') {
                s.to_string()
            } else {
                format!("@{s}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The site file of `--site`, else `env_site` (`$SWH_DEPLOY_SITE`), if
/// any.
pub(super) fn site(args: &RunRequest, env_site: Option<&Path>) -> Result<Option<Site>, ClushError> {
    let path: PathBuf = match (&args.site, env_site) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p.to_path_buf(),
        (None, None) => return Ok(None),
    };
    Ok(Some(Site::load(&path).map_err(failed)?))
}

/// The hosts `args` name, with the site's groups before ClusterShell's.
pub(super) fn targets(
    args: &RunRequest,
    site: Option<&Site>,
) -> Result<swh_deploy_nodeset::NodeSet, ClushError> {
    use swh_deploy_nodeset::{ClusterShellGroups, GroupResolver};
    let mut clustershell = match (
        &args.groups_conf,
        site.and_then(|s| s.clustershell.config_dir.as_deref()),
    ) {
        (Some(file), _) => ClusterShellGroups::load(std::slice::from_ref(file)),
        (None, Some(dir)) => ClusterShellGroups::load_dir(dir),
        (None, None) => ClusterShellGroups::load_default(),
    }
    .map_err(|e| failed(format!("ClusterShell groups configuration: {e}")))?;
    if let Some(s) = &args.group_source {
        clustershell
            .set_default_source(s)
            .map_err(|e| failed(format!("-s {s:?}: {e}")))?;
    }
    // With a site and no -s, the site's groups come first.
    let resolver: Box<dyn GroupResolver + '_> = match site {
        Some(site) if args.group_source.is_none() => Box::new(
            swh_deploy_site::SiteGroups::with_clustershell(site, clustershell),
        ),
        _ => Box::new(clustershell),
    };
    targets_with(args, resolver.as_ref())
}

pub(super) fn targets_with(
    args: &RunRequest,
    resolver: &dyn swh_deploy_nodeset::GroupResolver,
) -> Result<swh_deploy_nodeset::NodeSet, ClushError> {
    use swh_deploy_nodeset::NodeSet;
    let parse = |what: &str, expr: &str| -> Result<NodeSet, ClushError> {
        NodeSet::parse_with(expr, resolver).map_err(|e| failed(format!("{what} {expr:?}: {e}")))
    };
    // clush's warning when a single node is also a local path (#225).
    let warn = |opt: &str, set: &NodeSet| {
        if set.len() == 1 && !args.quiet && Path::new(&set.to_string()).exists() {
            eprintln!(
                "Warning: using '-{opt} {set}' and local path '{set}' exists, was it expanded by \
                 the shell?"
            );
        }
    };
    let mut set = NodeSet::new();
    let mut excluded = Vec::new();
    for w in &args.nodes {
        let one = parse("-w", w)?;
        warn("w", &one);
        set.update(&one);
    }
    for x in &args.exclude {
        let one = parse("-x", x)?;
        warn("x", &one);
        excluded.push(one);
    }
    for f in &args.hostfiles {
        let text = std::fs::read_to_string(f)
            .map_err(|e| failed(format!("--hostfile {}: {e}", f.display())))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            for word in line.split_whitespace() {
                let what = format!("--hostfile {}:{}:", f.display(), i + 1);
                set.update(&parse(&what, word)?);
            }
        }
    }
    for g in &args.groups {
        set.update(&parse("-g", &group_expr(g))?);
    }
    if args.all {
        let all = swh_deploy_nodeset::all_nodes(resolver, args.group_source.as_deref())
            .map_err(|e| failed(format!("-a: {e}")))?;
        set.update(&all);
    }
    for x in &excluded {
        set.difference_update(x);
    }
    for g in &args.exclude_groups {
        set.difference_update(&parse("-X", &group_expr(g))?);
    }
    if let Some(n) = args.pick {
        set = pick(&set, n);
    }
    if set.is_empty() {
        return Err(ClushError::Usage("No node to run on.".into()));
    }
    Ok(set)
}

/// `n` nodes of `set` at random (all of them when it has no more).
pub(super) fn pick(set: &swh_deploy_nodeset::NodeSet, n: usize) -> swh_deploy_nodeset::NodeSet {
    use std::hash::{BuildHasher, Hasher};
    let mut nodes: Vec<String> = set.iter().collect();
    // A partial Fisher-Yates shuffle seeded by the standard library's
    // per-process random hasher keys.
    let state = std::collections::hash_map::RandomState::new();
    let k = n.min(nodes.len());
    for i in 0..k {
        let mut h = state.build_hasher();
        h.write_usize(i);
        let j = i + (h.finish() as usize) % (nodes.len() - i);
        nodes.swap(i, j);
    }
    let mut out = swh_deploy_nodeset::NodeSet::new();
    for node in &nodes[..k] {
        if let Ok(one) = swh_deploy_nodeset::NodeSet::parse(node) {
            out.update(&one);
        }
    }
    out
}

/// A failure of a run (exit 1), from a message.
fn failed(msg: impl std::fmt::Display) -> ClushError {
    ClushError::Failed(msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use swh_deploy_nodeset::{GroupError, GroupResolver, NodeSet};

    /// Two groups, `web` and `db`; every node is theirs.
    struct Groups;

    impl GroupResolver for Groups {
        fn sources(&self) -> Vec<String> {
            vec!["test".into()]
        }
        fn group_nodes(&self, group: &str, _: Option<&str>) -> Result<Vec<String>, GroupError> {
            Ok(match group {
                "web" => vec!["web[1-3]".into()],
                "db" => vec!["db[1-2]".into()],
                _ => vec![],
            })
        }
        fn all_nodes(&self, _: Option<&str>) -> Result<Vec<String>, GroupError> {
            Ok(vec!["web[1-3],db[1-2]".into()])
        }
        fn group_list(&self, _: Option<&str>) -> Result<Vec<String>, GroupError> {
            Ok(vec!["web".into(), "db".into()])
        }
    }

    fn request(f: impl FnOnce(&mut RunRequest)) -> RunRequest {
        let mut r = RunRequest {
            quiet: true,
            ..RunRequest::default()
        };
        f(&mut r);
        r
    }

    #[test]
    fn nodes_groups_and_exclusions() {
        let r = request(|r| {
            r.nodes = vec!["n[1-4]".into()];
            r.exclude = vec!["n2".into()];
            r.groups = vec!["web,@db".into()];
            r.exclude_groups = vec!["db".into()];
        });
        let set = targets_with(&r, &Groups).unwrap();
        assert_eq!(set.to_string(), "n[1,3-4],web[1-3]");
        let r = request(|r| {
            r.all = true;
            r.exclude = vec!["web2".into()];
        });
        assert_eq!(
            targets_with(&r, &Groups).unwrap().to_string(),
            "db[1-2],web[1,3]"
        );
    }

    #[test]
    fn hostfiles_name_their_line_and_nothing_is_a_usage_error() {
        let dir = std::env::temp_dir().join(format!("clush-hostfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hosts");
        std::fs::write(&file, "h1 h2 # comment\n\nh[5-6]\n").unwrap();
        let r = request(|r| r.hostfiles = vec![file.clone()]);
        assert_eq!(targets_with(&r, &Groups).unwrap().to_string(), "h[1-2,5-6]");
        std::fs::write(&file, "h1\nh[2\n").unwrap();
        let e = targets_with(&r, &Groups).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("--hostfile {}:2: \"h[2\": ", file.display())),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let r = request(|r| {
            r.nodes = vec!["h1".into()];
            r.exclude = vec!["h1".into()];
        });
        let e = targets_with(&r, &Groups).unwrap_err();
        assert!(
            matches!(&e, ClushError::Usage(m) if m == "No node to run on."),
            "{e:?}"
        );
    }

    #[test]
    fn pick_takes_distinct_nodes_of_the_set() {
        let set = NodeSet::parse("n[1-20]").unwrap();
        let picked = pick(&set, 5);
        assert_eq!(picked.len(), 5);
        let mut inter = picked.clone();
        inter.intersection_update(&set);
        assert_eq!(inter.len(), 5);
        assert_eq!(pick(&set, 50).len(), 20);
        assert_eq!(group_expr("a,@b,,c"), "@a,@b,@c");
    }
}
