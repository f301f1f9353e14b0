//! The base images of a Dockerfile: which images of the swh-apps registry
//! a Dockerfile builds `FROM`, with the global `ARG`s substituted as the
//! real Dockerfiles write them:
//!
//! ```text
//! ARG REGISTRY=container-registry.softwareheritage.org/swh/infra/swh-apps/
//! ARG base_image=${REGISTRY}loader_package
//! ARG base_image_version=latest
//! FROM ${REGISTRY}rsvndump-base:latest AS rsvndump_image
//! FROM ${base_image}:${base_image_version}
//! ```
//!
//! gives `rsvndump-base` and `loader_package`. An image is "of the registry"
//! when its reference starts with `${REGISTRY}` (whatever value the build
//! gives it) or with the Dockerfile's own default value of `REGISTRY`.
//! Stage names (`FROM x AS stage` then `FROM stage`) and other registries'
//! images (`python:3.11-bookworm`, `rust:...`) are not listed.

use std::collections::BTreeMap;

/// The value `REGISTRY` takes while reading a Dockerfile, so that any
/// reference built from `${REGISTRY}` is recognised whatever its default.
const REGISTRY_MARK: &str = "registry.swh-deploy.invalid/";

/// An error at a line of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number (of the instruction's first line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The instructions of a Dockerfile: (first line number, text with
/// continuation lines joined), comments and blank lines left out.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_none()) {
            continue;
        }
        let (body, continued) = match line.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (line, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        if !entry.1.is_empty() && !body.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body);
        if !continued {
            out.extend(current.take());
        }
    }
    out.extend(current.take());
    out
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alt}` as
/// Docker does (an unknown variable is empty).
fn substitute(s: &str, args: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'$') {
            out.push('$');
            chars.next();
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut inner = String::new();
            let mut closed = false;
            let mut depth = 0usize;
            for c in chars.by_ref() {
                match c {
                    '}' if depth == 0 => {
                        closed = true;
                        break;
                    }
                    '}' => depth -= 1,
                    '{' => depth += 1,
                    _ => {}
                }
                inner.push(c);
            }
            if !closed {
                return Err(format!("unterminated ${{ in {s:?}"));
            }
            let (name, op) = match inner.find(":-").or_else(|| inner.find(":+")) {
                Some(i) => (&inner[..i], Some((&inner[i..i + 2], &inner[i + 2..]))),
                None => (inner.as_str(), None),
            };
            let value = args.get(name).filter(|v| !v.is_empty());
            match (op, value) {
                (None, v) => out.push_str(v.map(String::as_str).unwrap_or("")),
                (Some((":-", d)), None) => out.push_str(&substitute(d, args)?),
                (Some((":-", _)), Some(v)) => out.push_str(v),
                (Some((_, alt)), Some(_)) => out.push_str(&substitute(alt, args)?),
                (Some(_), None) => {}
            }
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(args.get(&name).map(String::as_str).unwrap_or(""));
            }
        }
    }
    Ok(out)
}

/// Splits `ARG a=1 b="two"` into (name, default) pairs.
fn arg_pairs(rest: &str) -> Vec<(String, Option<String>)> {
    rest.split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((n, v)) => (
                n.to_string(),
                Some(v.trim_matches('"').trim_matches('\'').to_string()),
            ),
            None => (w.to_string(), None),
        })
        .collect()
}

/// The name of an image reference without registry prefix, tag or digest,
/// if it is an image of the registry (`prefixes`, tried in order).
fn registry_image(reference: &str, prefixes: &[String]) -> Option<String> {
    let rest = prefixes
        .iter()
        .filter(|p| !p.is_empty())
        .find_map(|p| reference.strip_prefix(p.as_str()))?;
    let rest = rest.split('@').next().unwrap_or(rest);
    let name = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => &rest[..i],
        _ => rest,
    };
    (!name.is_empty()).then(|| name.to_string())
}

/// The images of the swh-apps registry that `text` (a Dockerfile) builds
/// FROM, in the order of their first FROM line, without duplicates.
pub fn registry_base_images(text: &str) -> Result<Vec<String>, ParseError> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut prefixes = vec![REGISTRY_MARK.to_string()];
    let mut stages: Vec<String> = Vec::new();
    let mut seen_from = false;
    let mut out: Vec<String> = Vec::new();
    for (line, ins) in instructions(text) {
        let err = |message: String| ParseError { line, message };
        let (word, rest) = ins.split_once(char::is_whitespace).unwrap_or((&ins, ""));
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            // Only the ARGs before the first FROM are in scope of FROM lines.
            "ARG" if !seen_from => {
                for (name, default) in arg_pairs(rest) {
                    if name == "REGISTRY" {
                        if let Some(d) = default {
                            let d = substitute(&d, &args).map_err(err)?;
                            prefixes.push(d);
                        }
                        args.insert(name, REGISTRY_MARK.to_string());
                    } else {
                        let v = match default {
                            Some(d) => substitute(&d, &args).map_err(err)?,
                            None => String::new(),
                        };
                        args.insert(name, v);
                    }
                }
            }
            "FROM" => {
                seen_from = true;
                let words: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let Some(image) = words.first() else {
                    return Err(err("FROM without an image".into()));
                };
                let image = substitute(image, &args).map_err(err)?;
                if let [_, kw, stage] = words.as_slice() {
                    if kw.eq_ignore_ascii_case("as") {
                        stages.push(stage.to_ascii_lowercase());
                    }
                }
                if stages
                    .iter()
                    .rev()
                    .skip(usize::from(words.len() == 3))
                    .any(|s| *s == image.to_ascii_lowercase())
                {
                    continue;
                }
                if let Some(name) = registry_image(&image, &prefixes) {
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_shapes() {
        // swh-loader-savecodenow, as the real file writes it.
        let savecodenow = "# Deeply inspired from the Dockerfile of the swh-graph project\n\
ARG REGISTRY=container-registry.softwareheritage.org/swh/infra/swh-apps/\n\n\
ARG base_image=${REGISTRY}loader_package\n\
ARG base_image_version=latest\n\n\
FROM ${REGISTRY}rsvndump-base:latest AS rsvndump_image\n\n\
FROM ${base_image}:${base_image_version}\n\
COPY --from=rsvndump_image /usr/local/bin/rsvndump /usr/local/bin/rsvndump\n\
ARG user=swh\n";
        assert_eq!(
            registry_base_images(savecodenow).unwrap(),
            vec!["rsvndump-base", "loader_package"]
        );
        // swh-datasets: another app's image as a build stage, the rust image
        // and a stage are not the registry's.
        let datasets = "ARG REGISTRY=container-registry.softwareheritage.org/swh/infra/swh-apps/\n\
ARG base_image=${REGISTRY}base\nARG base_image_version=latest\nARG RUST_VERSION=1.96\n\
FROM ${REGISTRY}graph:latest AS graph_build\n\
FROM rust:${RUST_VERSION}-bookworm AS rust_build\n\
FROM rust_build AS again\n\
FROM ${base_image}:${base_image_version}\n";
        assert_eq!(
            registry_base_images(datasets).unwrap(),
            vec!["graph", "base"]
        );
        // swh-base itself: FROM python, nothing of the registry.
        assert!(
            registry_base_images("FROM python:3.11-bookworm\nARG userid=1000\n")
                .unwrap()
                .is_empty()
        );
        // No default for REGISTRY, a literal prefix, continuation lines,
        // lowercase keywords, --platform, a digest.
        let t = "ARG REGISTRY\nfrom --platform=linux/amd64 \\\n  ${REGISTRY}base@sha256:abc as b\n\
FROM $REGISTRY/x/y:1\nFROM ${NOPE:-${REGISTRY}dflt}:2\n";
        assert_eq!(
            registry_base_images(t).unwrap(),
            vec!["base", "/x/y", "dflt"]
        );
        let e = registry_base_images("ARG A=${B\nFROM x\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("unterminated"), "{e:?}");
        assert_eq!(registry_base_images("\nFROM\n").unwrap_err().line, 2);
    }
}
