//! Turning worker deployments off and on in a values file, as SWH does by
//! hand around a long migration (a commit setting `enabled: false`, later
//! reverted). swh-charts' templates deploy a group (`loaders`, `listers`,
//! `indexers`...) only when `<group>.enabled` is true, and each of its
//! `<group>.deployments.<name>` (the Deployment `loader-<name>`...) unless
//! that entry has `enabled: false`.
//!
//! [`set_enabled`] edits the text line by line: the `enabled:` line of the
//! target is rewritten (its comment kept), or inserted (with the missing
//! `deployments:` / `<name>:` levels) right below the parent key at the
//! indentation of its children; every other byte stays as it was. The
//! result is parsed again and must equal the original with that one value
//! set, else the edit is refused (flow-style mappings, anchors...).

use crate::Error;
use yaml_rust2::{Yaml, YamlLoader};

/// What to turn off or on: a whole group, or one deployment of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The top-level section, e.g. `loaders`.
    pub group: String,
    /// A deployment of `<group>.deployments`, e.g. `git`; `None`: the
    /// group's own `enabled`.
    pub deployment: Option<String>,
}

impl Target {
    /// Parses `GROUP` or `GROUP.DEPLOYMENT` (e.g. `loaders`,
    /// `loaders.git`).
    pub fn parse(s: &str) -> Result<Target, Error> {
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let (group, deployment) = match s.split_once('.') {
            Some((g, d)) => (g, Some(d)),
            None => (s, None),
        };
        if !ok(group) || deployment.is_some_and(|d| !ok(d)) {
            return Err(Error::Input(format!(
                "{s:?}: expected GROUP or GROUP.DEPLOYMENT (e.g. loaders, loaders.git)"
            )));
        }
        Ok(Target {
            group: group.to_string(),
            deployment: deployment.map(String::from),
        })
    }

    /// The key path of its `enabled` value.
    fn path(&self) -> Vec<&str> {
        let mut p = vec![self.group.as_str()];
        if let Some(d) = &self.deployment {
            p.push("deployments");
            p.push(d);
        }
        p.push("enabled");
        p
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.deployment {
            Some(d) => write!(f, "{}.deployments.{d}", self.group),
            None => f.write_str(&self.group),
        }
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Whether `line` is the mapping key `key` (`key:` alone, or with a value
/// or a comment after it).
fn key_of<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start_matches(' ').strip_prefix(key)?;
    let rest = rest.strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t', '\n', '\r'])).then_some(rest)
}

/// Finds `key` among the children of the block `lines[from..to]` whose
/// children are at indentation `child` (lines deeper belong to them).
fn find_child(lines: &[&str], from: usize, to: usize, child: usize, key: &str) -> Option<usize> {
    (from..to).find(|&i| {
        is_content(lines[i]) && indent(lines[i]) == child && key_of(lines[i], key).is_some()
    })
}

/// The end (exclusive) of the block of the key at line `at`: the next
/// content line not deeper than it.
fn block_end(lines: &[&str], at: usize) -> usize {
    let base = indent(lines[at]);
    (at + 1..lines.len())
        .find(|&i| is_content(lines[i]) && indent(lines[i]) <= base)
        .unwrap_or(lines.len())
}

/// The indentation of the children of the key at line `at` (its first
/// deeper content line), else its own plus 2.
fn child_indent(lines: &[&str], at: usize) -> usize {
    let end = block_end(lines, at);
    (at + 1..end)
        .find(|&i| is_content(lines[i]))
        .map(|i| indent(lines[i]))
        .unwrap_or(indent(lines[at]) + 2)
}

/// Equal as YAML data (mapping order ignored).
fn same(a: &Yaml, b: &Yaml) -> bool {
    match (a, b) {
        (Yaml::Hash(x), Yaml::Hash(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Yaml::Array(x), Yaml::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

fn lookup<'a>(doc: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    let mut cur = doc;
    for k in path {
        match cur {
            Yaml::Hash(h) => cur = h.get(&Yaml::String(k.to_string()))?,
            _ => return None,
        }
    }
    Some(cur)
}

fn set_path(doc: &mut Yaml, path: &[&str], value: bool) -> bool {
    let Yaml::Hash(h) = doc else { return false };
    let key = Yaml::String(path[0].to_string());
    if path.len() == 1 {
        h.insert(key, Yaml::Boolean(value));
        return true;
    }
    let child = h
        .entry(key)
        .or_insert_with(|| Yaml::Hash(Default::default()));
    if matches!(child, Yaml::Null) {
        *child = Yaml::Hash(Default::default());
    }
    set_path(child, &path[1..], value)
}

/// `text` with `target`'s `enabled` set to `value`, every other byte kept;
/// `None` when it already has that value. `file` names the file in errors.
pub fn set_enabled(
    text: &str,
    target: &Target,
    value: bool,
    file: &str,
) -> Result<Option<String>, Error> {
    let bad = |m: String| Error::Input(format!("{file}: {m}"));
    let parsed = YamlLoader::load_from_str(text).map_err(|e| bad(format!("not YAML: {e}")))?;
    let mut expected = parsed
        .into_iter()
        .next()
        .unwrap_or(Yaml::Hash(Default::default()));
    if matches!(expected, Yaml::Null) {
        expected = Yaml::Hash(Default::default());
    }
    let before = expected.clone();
    // The templates deploy a deployment entry unless it says `enabled:
    // false`: an absent one is already on.
    if value && target.deployment.is_some() && lookup(&before, &target.path()).is_none() {
        return Ok(None);
    }
    if !set_path(&mut expected, &target.path(), value) {
        return Err(bad(format!("{target}: not a mapping")));
    }
    if expected == before {
        return Ok(None);
    }
    let word = if value { "true" } else { "false" };
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut owned: Vec<String> = Vec::new();
    let path = target.path();
    // Walk down the path; `parent` is the line of the last key found.
    let mut parent: Option<usize> = None;
    let mut depth = 0;
    while depth < path.len() {
        let (from, to, child) = match parent {
            None => (0, lines.len(), 0),
            Some(p) => (p + 1, block_end(&lines, p), child_indent(&lines, p)),
        };
        match find_child(&lines, from, to, child, path[depth]) {
            Some(i) => {
                parent = Some(i);
                depth += 1;
            }
            None => break,
        }
    }
    let new_text = if depth == path.len() {
        // Rewrite the value of the `enabled:` line, every other byte kept.
        let i = parent.unwrap_or(0);
        let line = lines[i];
        let colon = line.find(':').map(|c| c + 1).unwrap_or(line.len());
        let value_start =
            colon + (line.len() - colon - line[colon..].trim_start_matches([' ', '\t']).len());
        let value_end = line[value_start..]
            .find([' ', '\t', '\n', '\r'])
            .map(|e| value_start + e)
            .unwrap_or(line.len());
        owned.push(format!(
            "{}{word}{}",
            &line[..value_start],
            &line[value_end..]
        ));
        lines[i] = owned.last().map(String::as_str).unwrap_or("");
        lines.concat()
    } else {
        // Insert the missing levels below the last key found (or at the
        // end of the file for a missing group).
        let (at, mut ind) = match parent {
            Some(p) => (p + 1, child_indent(&lines, p)),
            None => (lines.len(), 0),
        };
        let step = match parent {
            Some(p) if child_indent(&lines, p) > indent(lines[p]) => {
                child_indent(&lines, p) - indent(lines[p])
            }
            _ => 2,
        };
        let mut block = String::new();
        for (k, key) in path[depth..].iter().enumerate() {
            if k + depth == path.len() - 1 {
                block.push_str(&format!("{}{key}: {word}\n", " ".repeat(ind)));
            } else {
                block.push_str(&format!("{}{key}:\n", " ".repeat(ind)));
                ind += step;
            }
        }
        let mut out: String = lines[..at].concat();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
        out.push_str(&lines[at..].concat());
        out
    };
    let reparsed = YamlLoader::load_from_str(&new_text)
        .ok()
        .and_then(|d| d.into_iter().next());
    if !reparsed.as_ref().is_some_and(|r| same(r, &expected)) {
        return Err(bad(format!(
            "cannot set {target}.enabled by a line edit (flow-style mapping, anchors or unusual layout): edit it by hand"
        )));
    }
    Ok(Some(new_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &str = "\
# production workers
namespace: swh-cassandra

loaders:
  enabled: true   # all loaders
  deployments:
    git:
      queues:
      - swh.loader.git.tasks.UpdateGitRepository
      requestedMemory: 512Mi
    svn:
      enabled: true
      queues: [swh.loader.svn.tasks.LoadSvnRepository]

listers:
    deployments:
        github: {}
storage:
  enabled: true
";

    fn set(text: &str, t: &str, v: bool) -> Option<String> {
        set_enabled(text, &Target::parse(t).unwrap(), v, "f.yaml").unwrap()
    }

    #[test]
    fn rewrites_an_existing_enabled_line_keeping_its_comment() {
        let out = set(VALUES, "loaders", false).unwrap();
        assert_eq!(
            out,
            VALUES.replace(
                "  enabled: true   # all loaders",
                "  enabled: false   # all loaders"
            )
        );
        let out = set(VALUES, "loaders.svn", false).unwrap();
        assert_eq!(
            out,
            VALUES.replace(
                "    svn:\n      enabled: true",
                "    svn:\n      enabled: false"
            )
        );
        // Reverting gives the bytes back.
        assert_eq!(set(&out, "loaders.svn", true).unwrap(), VALUES);
    }

    #[test]
    fn inserts_a_missing_enabled_at_the_childrens_indentation() {
        let out = set(VALUES, "loaders.git", false).unwrap();
        assert_eq!(
            out,
            VALUES.replace(
                "    git:\n      queues:",
                "    git:\n      enabled: false\n      queues:"
            )
        );
        // Another indentation step (4), as the file has it.
        let out = set(VALUES, "listers", false).unwrap();
        assert_eq!(
            out,
            VALUES.replace(
                "listers:\n    deployments:",
                "listers:\n    enabled: false\n    deployments:"
            )
        );
        // Missing levels are created; a missing group goes at the end.
        let out = set(VALUES, "loaders.cvs", false).unwrap();
        assert!(
            out.contains("  deployments:\n    cvs:\n      enabled: false\n    git:"),
            "{out}"
        );
        let out = set(VALUES, "indexers", false).unwrap();
        assert_eq!(out, format!("{VALUES}indexers:\n  enabled: false\n"));
    }

    #[test]
    fn nothing_to_do_and_refusals() {
        assert_eq!(set(VALUES, "storage", true), None);
        // A deployment without `enabled` is deployed: already on.
        assert_eq!(set(VALUES, "loaders.git", true), None);
        // A flow-style mapping is not edited.
        let e = set_enabled(
            VALUES,
            &Target::parse("listers.github").unwrap(),
            false,
            "f.yaml",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.yaml: cannot set listers.deployments.github.enabled"),
            "{e}"
        );
    }

    #[test]
    fn on_swh_charts_own_values_only_one_line_changes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testbed/assets/swh-charts/values-default.yaml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        // `cookers` has a nested `sentry.enabled`, which must stay as it is.
        let out = set(&text, "cookers", false).unwrap();
        let added: Vec<&str> = out
            .lines()
            .filter(|l| !text.lines().any(|t| t == *l))
            .collect();
        assert_eq!(added, ["  enabled: false"]);
        assert_eq!(out.lines().count(), text.lines().count() + 1);
        assert_eq!(
            out.replacen("cookers:\n  enabled: false\n", "cookers:\n", 1),
            text
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("loaders.git").unwrap(),
            Target {
                group: "loaders".into(),
                deployment: Some("git".into())
            }
        );
        for bad in ["", ".x", "a.", "a b", "a.b.c", "a/b"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let flow = "loaders: {enabled: true}\n";
        let e = set_enabled(flow, &Target::parse("loaders").unwrap(), false, "f.yaml").unwrap_err();
        assert!(e.to_string().contains("edit it by hand"), "{e}");
    }
}
