//! The node labels a chart requires: `nodeAffinity` requirements read from
//! Helm values files, checked against the nodes' labels.
//!
//! For each mapping key `nodeAffinity` anywhere in a values file, its
//! `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[]
//! .matchExpressions[]` are one [`Requirement`] of the section holding it
//! (the key path above `affinity`, e.g. `loaders`, `search.affinity` ->
//! `search`). As in Helm, a later values file replaces an earlier file's
//! requirement of the same section. As the scheduler does, the terms of a
//! requirement are ORed and the expressions of a term ANDed.

use crate::kube::Node;
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// Label key, e.g. `swh/loader`.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`.
    pub operator: String,
    /// Values (for `In`, `NotIn`, `Gt`, `Lt`).
    pub values: Vec<String>,
}

impl Expr {
    /// Whether a node with these labels satisfies the expression.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        let num = |s: &str| s.parse::<i64>().ok();
        match self.operator.as_str() {
            "In" => v.is_some_and(|v| self.values.contains(v)),
            "NotIn" => v.is_none_or(|v| !self.values.contains(v)),
            "Exists" => v.is_some(),
            "DoesNotExist" => v.is_none(),
            "Gt" => {
                matches!((v.and_then(|v| num(v)), self.values.first().and_then(|x| num(x))), (Some(a), Some(b)) if a > b)
            }
            "Lt" => {
                matches!((v.and_then(|v| num(v)), self.values.first().and_then(|x| num(x))), (Some(a), Some(b)) if a < b)
            }
            _ => false,
        }
    }

    /// Whether the expression asks for a label to be present (`In`,
    /// `Exists`, `Gt`, `Lt`): those are labels someone must set.
    pub fn requires_label(&self) -> bool {
        matches!(self.operator.as_str(), "In" | "Exists" | "Gt" | "Lt")
    }

    /// `swh/loader=true`, `swh/loader in (a, b)`, `!x`, ... (kubectl's
    /// selector syntax).
    pub fn display(&self) -> String {
        match (self.operator.as_str(), self.values.as_slice()) {
            ("In", [one]) => format!("{}={one}", self.key),
            ("In", vs) => format!("{} in ({})", self.key, vs.join(", ")),
            ("NotIn", vs) => format!("{} notin ({})", self.key, vs.join(", ")),
            ("Exists", _) => self.key.clone(),
            ("DoesNotExist", _) => format!("!{}", self.key),
            ("Gt", vs) => format!("{} > {}", self.key, vs.join(",")),
            ("Lt", vs) => format!("{} < {}", self.key, vs.join(",")),
            (op, vs) => format!("{} {op} ({})", self.key, vs.join(", ")),
        }
    }
}

/// The required node affinity of one values-file section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Section path, e.g. `loaders`.
    pub section: String,
    /// The values file it comes from.
    pub file: String,
    /// `nodeSelectorTerms`: ORed; each a list of ANDed expressions.
    pub terms: Vec<Vec<Expr>>,
}

fn walk(
    y: &Yaml,
    path: &mut Vec<String>,
    file: &str,
    out: &mut Vec<Requirement>,
) -> Result<(), Error> {
    match y {
        Yaml::Hash(h) => {
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                if key == "nodeAffinity" {
                    let terms = terms_of(v, path, file)?;
                    if !terms.is_empty() {
                        let mut p: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
                        if p.last() == Some(&"affinity") {
                            p.pop();
                        }
                        out.push(Requirement {
                            section: if p.is_empty() {
                                "(top level)".into()
                            } else {
                                p.join(".")
                            },
                            file: file.to_string(),
                            terms,
                        });
                    }
                    continue;
                }
                path.push(key);
                walk(v, path, file, out)?;
                path.pop();
            }
        }
        Yaml::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                walk(v, path, file, out)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn terms_of(v: &Yaml, path: &[String], file: &str) -> Result<Vec<Vec<Expr>>, Error> {
    let bad = |what: &str| Error::Input(format!("{file}: {}.nodeAffinity: {what}", path.join(".")));
    let req = &v["requiredDuringSchedulingIgnoredDuringExecution"];
    if req.is_badvalue() || req.is_null() {
        return Ok(Vec::new());
    }
    let Some(terms) = req["nodeSelectorTerms"].as_vec() else {
        return Err(bad(
            "requiredDuringSchedulingIgnoredDuringExecution without a nodeSelectorTerms list",
        ));
    };
    let mut out = Vec::new();
    for t in terms {
        let mut exprs = Vec::new();
        if let Some(list) = t["matchExpressions"].as_vec() {
            for e in list {
                let key = e["key"]
                    .as_str()
                    .ok_or_else(|| bad("a matchExpressions entry has no key"))?;
                let operator = e["operator"]
                    .as_str()
                    .ok_or_else(|| bad(&format!("expression on {key} has no operator")))?;
                let values = e["values"]
                    .as_vec()
                    .map(|vs| {
                        vs.iter()
                            .map(|v| match v {
                                Yaml::String(s) => s.clone(),
                                Yaml::Integer(i) => i.to_string(),
                                Yaml::Boolean(b) => b.to_string(),
                                Yaml::Real(r) => r.clone(),
                                other => format!("{other:?}"),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                exprs.push(Expr {
                    key: key.to_string(),
                    operator: operator.to_string(),
                    values,
                });
            }
        }
        out.push(exprs);
    }
    Ok(out)
}

/// Reads the requirements of one values file's text.
pub fn requirements_from_str(text: &str, file: &str) -> Result<Vec<Requirement>, Error> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| {
        let m = e.marker();
        Error::Input(format!("{file}:{}:{}: {}", m.line(), m.col() + 1, e.info()))
    })?;
    let mut out = Vec::new();
    for d in &docs {
        walk(d, &mut Vec::new(), file, &mut out)?;
    }
    Ok(out)
}

/// Reads values files in order; a later file's section replaces an earlier
/// one's (Helm's merge). Sorted by section.
pub fn requirements_from_files(files: &[&Path]) -> Result<Vec<Requirement>, Error> {
    let mut by_section: BTreeMap<String, Requirement> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::Input(format!("{}: {e}", f.display())))?;
        for r in requirements_from_str(&text, &f.display().to_string())? {
            by_section.insert(r.section.clone(), r);
        }
    }
    Ok(by_section.into_values().collect())
}

/// One required label (an expression that needs a label present) and the
/// nodes that satisfy it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCheck {
    /// The expression, e.g. `swh/loader=true`.
    pub expr: Expr,
    /// The sections requiring it.
    pub sections: Vec<String>,
    /// Nodes satisfying it (empty: no node can run these sections).
    pub nodes: Vec<String>,
}

/// For every label-requiring expression of the requirements (deduplicated),
/// the nodes satisfying it; then, per section, whether some node satisfies a
/// whole term. Returns (labels, unschedulable sections).
pub fn check(reqs: &[Requirement], nodes: &[Node]) -> (Vec<LabelCheck>, Vec<String>) {
    let mut labels: BTreeMap<String, LabelCheck> = BTreeMap::new();
    let mut unschedulable = Vec::new();
    for r in reqs {
        for t in &r.terms {
            for e in t.iter().filter(|e| e.requires_label()) {
                let c = labels.entry(e.display()).or_insert_with(|| LabelCheck {
                    expr: e.clone(),
                    sections: Vec::new(),
                    nodes: nodes
                        .iter()
                        .filter(|n| e.matches(&n.labels))
                        .map(|n| n.name.clone())
                        .collect(),
                });
                if !c.sections.contains(&r.section) {
                    c.sections.push(r.section.clone());
                }
            }
        }
        let ok = r
            .terms
            .iter()
            .any(|t| nodes.iter().any(|n| t.iter().all(|e| e.matches(&n.labels))));
        if !ok {
            unschedulable.push(r.section.clone());
        }
    }
    (labels.into_values().collect(), unschedulable)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &str = "loaders:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - key: \"swh/loader\"\n            operator: In\n            values:\n            - \"true\"\nreplayer:\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - key: node-role.kubernetes.io/etcd\n            operator: NotIn\n            values:\n            - \"true\"\nsearch:\n  rpc:\n    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n          nodeSelectorTerms:\n          - matchExpressions:\n            - key: swh/rpc\n              operator: In\n              values: [\"true\"]\n            - key: swh/large-scratch-fs\n              operator: Exists\n";

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn reads_sections_and_expressions() {
        let r = requirements_from_str(VALUES, "v.yaml").unwrap();
        let s: Vec<_> = r.iter().map(|r| r.section.as_str()).collect();
        assert_eq!(s, ["loaders", "replayer", "search.rpc"]);
        assert_eq!(r[0].terms[0][0].display(), "swh/loader=true");
        assert_eq!(r[2].terms[0].len(), 2);
        assert_eq!(r[2].terms[0][1].display(), "swh/large-scratch-fs");
    }

    #[test]
    fn check_reports_labels_without_nodes() {
        let r = requirements_from_str(VALUES, "v.yaml").unwrap();
        let nodes = [
            node("w1", &[("swh/loader", "true")]),
            node("w2", &[("swh/rpc", "true")]),
            node("w3", &[("swh/large-scratch-fs", "")]),
        ];
        let (labels, unsched) = check(&r, &nodes);
        let names: Vec<_> = labels
            .iter()
            .map(|l| (l.expr.display(), l.nodes.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("swh/large-scratch-fs".to_string(), vec!["w3".to_string()]),
                ("swh/loader=true".to_string(), vec!["w1".to_string()]),
                ("swh/rpc=true".to_string(), vec!["w2".to_string()]),
            ]
        );
        // Each label has a node, but no node has both of search.rpc's.
        assert_eq!(unsched, ["search.rpc"]);
        let (_, unsched) = check(
            &r,
            &[node(
                "w",
                &[
                    ("swh/loader", "true"),
                    ("swh/rpc", "true"),
                    ("swh/large-scratch-fs", "x"),
                ],
            )],
        );
        assert!(unsched.is_empty());
        // NotIn is satisfied by a node without the label.
        let (_, unsched) = check(&r[1..2], &[node("w", &[])]);
        assert!(unsched.is_empty());
    }

    #[test]
    fn later_files_replace_sections_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, VALUES).unwrap();
        std::fs::write(&b, VALUES.replace("swh/loader\"", "swh/loader-x\"")).unwrap();
        let r = requirements_from_files(&[&a, &b]).unwrap();
        assert_eq!(r[0].terms[0][0].key, "swh/loader-x");
        std::fs::write(&b, "a: [\n").unwrap();
        let e = requirements_from_files(&[&a, &b]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:", b.display())), "{e}");
    }
}
