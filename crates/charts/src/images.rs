//! The images an environment deploys: the global `<key>_image` /
//! `<key>_image_version` pairs of [`crate::values::VALUES_FILE`] and the
//! per-deployment pins of the environment's other values files (a top-level
//! section with `imageVersion`, like swh-graph's `graph.imageVersion`, and
//! optionally its own `image`). Files are taken in the order of the Argo CD
//! application's `valueFiles`, a later file overriding an earlier one, as
//! Helm merges them.

use crate::values::{self, IMAGE_SUFFIX, VERSION_SUFFIX};
use crate::{ChartsRepo, Env, Error};
use std::collections::BTreeMap;
use yaml_rust2::{Yaml, YamlLoader};

/// One image:tag an environment uses, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// The image reference without tag (`host/path`).
    pub image: String,
    /// The tag.
    pub tag: String,
    /// Where the tag is set (`file: key`).
    pub source: String,
}

/// The values files of an environment's Argo CD application, relative to
/// the swh-charts checkout, in Helm's merge order (the application's
/// `valueFiles`, relative to `swh/`): first the image versions file, then
/// `swh/values/default.yaml` and the environment's files.
pub fn env_value_files(env: Env) -> &'static [&'static str] {
    match env {
        Env::NextVersion => &[
            "swh/values/default.yaml",
            "swh/values/staging/default.yaml",
            "swh/values/staging/next-version.yaml",
        ],
        Env::Staging => &[
            "swh/values/default.yaml",
            "swh/values/staging/default.yaml",
            "swh/values/staging/swh-cassandra.yaml",
        ],
        Env::Production => &[
            "swh/values/default.yaml",
            "swh/values/production/default.yaml",
            "swh/values/production/swh-cassandra.yaml",
        ],
    }
}

#[derive(Default)]
struct Pin {
    image: Option<(String, String)>,
    version: Option<(String, String)>,
}

impl ChartsRepo {
    /// The environment's values files present at `rev`, parsed, in merge
    /// order (`file`, first document).
    fn value_docs(&self, rev: &str, env: Env) -> Result<Vec<(String, Yaml)>, Error> {
        let mut files = vec![self.values_file.as_str()];
        files.extend(env_value_files(env).iter().copied());
        let mut docs = Vec::new();
        for file in files {
            let spec = format!("{rev}:{file}");
            if !self.git.succeeds(&["cat-file", "-e", &spec])? {
                continue;
            }
            let text = self.git.show_file(rev, file)?;
            let (_, body) = values::split_bom(&text).map_err(|e| Error::Yaml {
                file: spec.clone().into(),
                pos: e.pos,
                message: e.message,
            })?;
            let loaded = YamlLoader::load_from_str(body).map_err(|e| {
                Error::Input(format!(
                    "{spec}:{}:{}: {}",
                    e.marker().line(),
                    e.marker().col() + 1,
                    e.info()
                ))
            })?;
            if let Some(doc) = loaded.into_iter().next() {
                docs.push((file.to_string(), doc));
            }
        }
        Ok(docs)
    }

    /// The values `env`'s application gets from revision `rev`: its values
    /// files merged in order as Helm merges them (maps merged key by key,
    /// anything else replaced, `null` removing the key), flattened to
    /// dotted paths (`graph.imageVersion`) with their values.
    pub fn effective_values(&self, rev: &str, env: Env) -> Result<BTreeMap<String, String>, Error> {
        let mut merged = Yaml::Hash(Default::default());
        for (_, doc) in self.value_docs(rev, env)? {
            merge(&mut merged, doc);
        }
        let mut flat = BTreeMap::new();
        flatten("", &merged, &mut flat);
        Ok(flat)
    }

    /// The effective values change of `env`'s application between `old`
    /// and `new`: (path, value at `old`, value at `new`) for each path that
    /// differs.
    pub fn values_diff(
        &self,
        old: &str,
        new: &str,
        env: Env,
    ) -> Result<Vec<crate::VersionChange>, Error> {
        let a = self.effective_values(old, env)?;
        let b = self.effective_values(new, env)?;
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter_map(|k| {
                let (x, y) = (a.get(k).cloned(), b.get(k).cloned());
                (x != y).then(|| (k.clone(), x, y))
            })
            .collect())
    }
    /// Every image:tag that `env`'s application deploys from revision
    /// `rev`: one per global app with both keys, one per per-deployment
    /// `imageVersion` pin (whose image is the section's `image`, else the
    /// global `swh_<section>_image`, else `<section>_image`). A values file
    /// absent at `rev` is skipped; a pin whose image cannot be found is an
    /// error naming the file and the key.
    pub fn images_at(&self, rev: &str, env: Env) -> Result<Vec<ImageUse>, Error> {
        let mut globals: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut pins: BTreeMap<String, Pin> = BTreeMap::new();
        for (file, doc) in self.value_docs(rev, env)? {
            let Yaml::Hash(top) = doc else {
                continue;
            };
            for (k, v) in top {
                let Yaml::String(key) = k else { continue };
                let scalar = match &v {
                    Yaml::String(s) => Some(s.clone()),
                    Yaml::Integer(i) => Some(i.to_string()),
                    Yaml::Real(r) => Some(r.clone()),
                    _ => None,
                };
                if key.ends_with(IMAGE_SUFFIX) || key.ends_with(VERSION_SUFFIX) {
                    if let Some(s) = scalar {
                        globals.insert(key.clone(), (s, format!("{file}: {key}")));
                    }
                    continue;
                }
                let Yaml::Hash(section) = v else { continue };
                for (field, slot) in [("image", 0), ("imageVersion", 1)] {
                    let value = match section.get(&Yaml::String(field.into())) {
                        Some(Yaml::String(s)) => s.clone(),
                        Some(Yaml::Integer(i)) => i.to_string(),
                        Some(Yaml::Real(r)) => r.clone(),
                        _ => continue,
                    };
                    let pin = pins.entry(key.clone()).or_default();
                    let at = (value, format!("{file}: {key}.{field}"));
                    if slot == 0 {
                        pin.image = Some(at);
                    } else {
                        pin.version = Some(at);
                    }
                }
            }
        }
        let mut uses = Vec::new();
        for (key, (image, _)) in &globals {
            let Some(app) = key.strip_suffix(IMAGE_SUFFIX) else {
                continue;
            };
            if let Some((tag, source)) = globals.get(&format!("{app}{VERSION_SUFFIX}")) {
                uses.push(ImageUse {
                    image: image.clone(),
                    tag: tag.clone(),
                    source: source.clone(),
                });
            }
        }
        for (section, pin) in pins {
            let Some((tag, source)) = pin.version else {
                continue;
            };
            let key = values::app_key(&section);
            let image = pin
                .image
                .map(|(i, _)| i)
                .or_else(|| {
                    globals
                        .get(&format!("swh_{key}{IMAGE_SUFFIX}"))
                        .or_else(|| globals.get(&format!("{key}{IMAGE_SUFFIX}")))
                        .map(|(i, _)| i.clone())
                })
                .ok_or_else(|| {
                    Error::Input(format!(
                        "{rev}:{source}: no image for this pin ({section}.image, swh_{key}_image \
                         or {key}_image)"
                    ))
                })?;
            uses.push(ImageUse { image, tag, source });
        }
        Ok(uses)
    }
}

/// Helm's merge of a values file over the values so far.
fn merge(into: &mut Yaml, over: Yaml) {
    match (into, over) {
        (Yaml::Hash(a), Yaml::Hash(b)) => {
            for (k, v) in b {
                if v == Yaml::Null {
                    a.remove(&k);
                } else if let Some(old) = a.get_mut(&k) {
                    merge(old, v);
                } else {
                    a.insert(k, v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn scalar_text(y: &Yaml) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null => "null".into(),
        Yaml::Array(a) => format!(
            "[{}]",
            a.iter().map(scalar_text).collect::<Vec<_>>().join(", ")
        ),
        Yaml::Hash(h) => format!(
            "{{{}}}",
            h.iter()
                .map(|(k, v)| format!("{}: {}", scalar_text(k), scalar_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("{y:?}"),
    }
}

fn flatten(prefix: &str, y: &Yaml, out: &mut BTreeMap<String, String>) {
    match y {
        Yaml::Hash(h) if !h.is_empty() => {
            for (k, v) in h {
                let key = scalar_text(k);
                let path = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), scalar_text(y));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{flatten, merge};
    use std::collections::BTreeMap;
    use yaml_rust2::{Yaml, YamlLoader};

    fn doc(s: &str) -> Yaml {
        YamlLoader::load_from_str(s).unwrap().remove(0)
    }

    #[test]
    fn values_merge_as_helm_does() {
        let mut v = doc(
            "a: 1\ngraph:\n  imageVersion: '1'\n  sentry: {enabled: true}\nlist: [1, 2]\ngone: x\n",
        );
        merge(
            &mut v,
            doc("graph:\n  imageVersion: '2'\nlist: [3]\ngone: null\nnew: {k: v}\n"),
        );
        let mut flat = BTreeMap::new();
        flatten("", &v, &mut flat);
        let got: Vec<(&str, &str)> = flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("a", "1"),
                ("graph.imageVersion", "2"),
                ("graph.sentry.enabled", "true"),
                ("list", "[3]"),
                ("new.k", "v"),
            ]
        );
    }
}
