//! The two files a chart release edits: `values-swh-application-versions.yaml`
//! (`<key>_image` and `<key>_image_version` per app) and `swh/Chart.yaml`
//! (`appVersion`).

use crate::yaml::{self, Entry, Pos, ScalarEdit, Style, Value, YamlError};
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;

/// Path of the image versions file inside a swh-charts checkout.
pub const VALUES_FILE: &str = "values-swh-application-versions.yaml";
/// Path of the chart description inside a swh-charts checkout.
pub const CHART_FILE: &str = "swh/Chart.yaml";

/// Suffix of the keys holding an image reference.
pub const IMAGE_SUFFIX: &str = "_image";
/// Suffix of the keys holding an image version.
pub const VERSION_SUFFIX: &str = "_image_version";

/// The values-file key of an app: the swh-apps directory name with `-` ->
/// `_` (`swh-loader-git` -> `swh_loader_git`).
pub fn app_key(app: &str) -> String {
    app.replace('-', "_")
}

/// Checks an image version: non-empty, only `[0-9A-Za-z._+-]`, so that it
/// can be single-quoted without escapes.
pub fn check_version(version: &str) -> Result<(), String> {
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
    {
        return Err(format!(
            "invalid image version {version:?}: expected something like 20250117.1"
        ));
    }
    Ok(())
}

/// One app's image and version as read from a values file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppImage {
    /// `<key>_image`, if present.
    pub image: Option<String>,
    /// `<key>_image_version`, if present.
    pub version: Option<String>,
}

/// Reads the apps of a values file: key (without suffix) -> image, version.
pub fn read_apps(text: &str) -> Result<BTreeMap<String, AppImage>, YamlError> {
    let (_, text) = split_bom(text)?;
    let entries = yaml::parse_mapping(text)?;
    let mut apps: BTreeMap<String, AppImage> = BTreeMap::new();
    for e in &entries {
        let Value::Scalar { text, .. } = &e.value else {
            continue;
        };
        if let Some(k) = e.key.strip_suffix(VERSION_SUFFIX) {
            apps.entry(k.to_string())
                .or_insert(AppImage {
                    image: None,
                    version: None,
                })
                .version = Some(text.clone());
        } else if let Some(k) = e.key.strip_suffix(IMAGE_SUFFIX) {
            apps.entry(k.to_string())
                .or_insert(AppImage {
                    image: None,
                    version: None,
                })
                .image = Some(text.clone());
        }
    }
    Ok(apps)
}

/// A requested version change for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bump {
    /// The app as the user named it (`swh-loader-git` or `swh_loader_git`).
    pub app: String,
    /// The new image version.
    pub version: String,
    /// The image reference to add when the app has no keys yet.
    pub add_image: Option<String>,
}

/// Parses `APP=VERSION` arguments and `--add [APP=]IMAGE` options into
/// bumps: `--add IMAGE` goes to the only APP, `--add APP=IMAGE` to that
/// APP. Errors quote the bad argument.
pub fn parse_bumps(apps: &[String], add: &[String]) -> Result<Vec<Bump>, Error> {
    let mut bumps = Vec::new();
    for a in apps {
        let Some((app, version)) = a.split_once('=') else {
            return Err(Error::Input(format!("{a:?}: expected APP=VERSION")));
        };
        if app.is_empty() {
            return Err(Error::Input(format!("{a:?}: empty app name")));
        }
        bumps.push(Bump {
            app: app.to_string(),
            version: version.to_string(),
            add_image: None,
        });
    }
    for spec in add {
        let (app, image) = match spec.split_once('=') {
            Some((a, i)) => (Some(a), i),
            None => (None, spec.as_str()),
        };
        let target = match app {
            Some(a) => bumps.iter_mut().find(|b| b.app == a),
            None if bumps.len() == 1 => bumps.first_mut(),
            None => {
                return Err(Error::Input(
                    "--add IMAGE needs exactly one APP=VERSION; use --add APP=IMAGE".into(),
                ))
            }
        };
        let Some(b) = target else {
            return Err(Error::Input(format!(
                "--add {spec}: no such APP among the APP=VERSION arguments"
            )));
        };
        b.add_image = Some(image.to_string());
    }
    Ok(bumps)
}

/// What one bump did to the values file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The values-file key prefix (`swh_loader_git`).
    pub key: String,
    /// The version before (None when the app was added).
    pub from: Option<String>,
    /// The version after.
    pub to: String,
}

/// Resolves an app name to its key prefix present in `entries`: the name
/// with `-` -> `_`, or, for an image name like `loader_git`, `swh_` + it.
fn resolve_key(entries: &[Entry], app: &str) -> Option<String> {
    let k = app_key(app);
    let has = |k: &str| {
        entries
            .iter()
            .any(|e| e.key == format!("{k}{VERSION_SUFFIX}"))
    };
    if has(&k) {
        return Some(k);
    }
    let prefixed = format!("swh_{k}");
    if has(&prefixed) {
        return Some(prefixed);
    }
    None
}

/// The UTF-8 byte-order mark, which some editors write at the start of a
/// file.
pub const BOM: char = '\u{feff}';

/// Splits a leading byte-order mark off `text` (YAML allows one at the start
/// of a document; the parser would read it as part of the first key).
/// Returns the mark (or "") and the rest. A byte-order mark anywhere else is
/// refused with its position, since it would silently become part of a key.
pub fn split_bom(text: &str) -> Result<(&str, &str), YamlError> {
    let (bom, body) = match text.strip_prefix(BOM) {
        Some(rest) => (&text[..BOM.len_utf8()], rest),
        None => ("", text),
    };
    for (i, line) in body.split_inclusive('\n').enumerate() {
        if let Some(col) = line.chars().position(|c| c == BOM) {
            return Err(YamlError {
                pos: Pos {
                    line: i + 1,
                    col: col + 1,
                },
                message: "a UTF-8 byte-order mark (U+FEFF) inside the file; \
                          only one at the very start is allowed: remove it"
                    .into(),
            });
        }
    }
    Ok((bom, body))
}

/// The result of [`edit_values`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesEdit {
    /// The new text of the file.
    pub text: String,
    /// The version changes (bumps to the version already there are no-ops
    /// and are not reported).
    pub changes: Vec<Change>,
    /// Where added keys went: at their sorted position, or appended at the
    /// end because the file's keys are not sorted (and why).
    pub notes: Vec<String>,
}

/// Applies `bumps` to the text of a values file. Returns the new text and
/// the changes (bumps to the version already there are no-ops and are not
/// reported). `file` names the file in errors. See [`edit_values`].
pub fn bump_values(
    file: &Path,
    text: &str,
    bumps: &[Bump],
) -> Result<(String, Vec<Change>), Error> {
    edit_values(file, text, bumps).map(|e| (e.text, e.changes))
}

/// The first pair of top-level keys out of byte order, if any.
fn unsorted_pair(entries: &[Entry]) -> Option<(&Entry, &Entry)> {
    entries
        .windows(2)
        .find(|w| w[0].key > w[1].key)
        .map(|w| (&w[0], &w[1]))
}

/// Applies `bumps` to the text of a values file, like [`bump_values`], and
/// says where added apps went. A leading UTF-8 byte-order mark is kept as
/// it is. Apps added with [`Bump::add_image`] are inserted at their sorted
/// position when the file's top-level keys are in byte (alphabetical)
/// order, as the real file has been since 2023-05, and appended at the end
/// otherwise; every other byte of the file is kept.
pub fn edit_values(file: &Path, text: &str, bumps: &[Bump]) -> Result<ValuesEdit, Error> {
    let at = |e: YamlError| Error::Yaml {
        file: file.to_path_buf(),
        pos: e.pos,
        message: e.message,
    };
    let (bom, text) = split_bom(text).map_err(at)?;
    let entries = yaml::parse_mapping(text).map_err(at)?;
    let mut edits = Vec::new();
    let mut additions = Vec::new();
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    for b in bumps {
        check_version(&b.version).map_err(|m| Error::Input(format!("{}: {m}", b.app)))?;
        let token = format!("'{}'", b.version);
        match resolve_key(&entries, &b.app) {
            Some(key) => {
                let vkey = format!("{key}{VERSION_SUFFIX}");
                let current = match yaml::scalar(&entries, &vkey) {
                    Some((v, _)) => v.to_string(),
                    None => String::new(),
                };
                if edits.iter().any(|e: &ScalarEdit| e.key == vkey) {
                    return Err(Error::Input(format!("app {} given twice", b.app)));
                }
                let style = yaml::scalar(&entries, &vkey).map(|(_, s)| s);
                if current == b.version && style == Some(Style::SingleQuoted) {
                    continue;
                }
                changes.push(Change {
                    key: key.clone(),
                    from: Some(current),
                    to: b.version.clone(),
                });
                edits.push(ScalarEdit {
                    key: vkey,
                    token,
                    expected: b.version.clone(),
                    expected_style: Style::SingleQuoted,
                });
            }
            None => {
                let Some(image) = &b.add_image else {
                    return Err(Error::Input(format!(
                        "{}: no key `{}{VERSION_SUFFIX}` for app {} (pass --add IMAGE to add it)",
                        file.display(),
                        app_key(&b.app),
                        b.app
                    )));
                };
                let key = app_key(&b.app);
                if entries
                    .iter()
                    .any(|e| e.key == format!("{key}{IMAGE_SUFFIX}"))
                {
                    return Err(Error::Input(format!(
                        "{}: app {} has `{key}{IMAGE_SUFFIX}` but no `{key}{VERSION_SUFFIX}`; fix the file by hand",
                        file.display(),
                        b.app
                    )));
                }
                if additions
                    .iter()
                    .any(|(k, _): &(String, String)| *k == format!("{key}{IMAGE_SUFFIX}"))
                {
                    return Err(Error::Input(format!("app {} given twice", b.app)));
                }
                if image.is_empty()
                    || !image.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':')
                    })
                {
                    return Err(Error::Input(format!("invalid image reference {image:?}")));
                }
                additions.push((format!("{key}{IMAGE_SUFFIX}"), image.clone()));
                additions.push((format!("{key}{VERSION_SUFFIX}"), token.clone()));
                changes.push(Change {
                    key: key.clone(),
                    from: None,
                    to: b.version.clone(),
                });
                edits.push(ScalarEdit {
                    key: format!("{key}{VERSION_SUFFIX}"),
                    token,
                    expected: b.version.clone(),
                    expected_style: Style::SingleQuoted,
                });
            }
        }
    }
    let existing: Vec<ScalarEdit> = edits
        .iter()
        .filter(|e| entries.iter().any(|x| x.key == e.key))
        .cloned()
        .collect();
    let edited = yaml::edit_scalars(text, &existing).map_err(at)?;
    if additions.is_empty() {
        return Ok(ValuesEdit {
            text: format!("{bom}{edited}"),
            changes,
            notes,
        });
    }
    let added: Vec<&str> = additions.iter().map(|(k, _)| k.as_str()).collect();
    let out = match unsorted_pair(&entries) {
        None => {
            let (out, placed) = yaml::insert_sorted(&edited, &entries, &additions);
            for (key, line) in placed {
                notes.push(format!(
                    "added `{key}` at line {line}, its sorted position (the file's keys are in alphabetical order)"
                ));
            }
            out
        }
        Some((a, b)) => {
            notes.push(format!(
                "appended {} at the end of the file: its keys are not in alphabetical order (`{}` at line {} comes after `{}` at line {})",
                added.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                b.key,
                b.key_pos.line,
                a.key,
                a.key_pos.line
            ));
            yaml::append_entries(&edited, &additions)
        }
    };
    let mut all = edits.clone();
    for (k, v) in additions.iter().filter(|(k, _)| k.ends_with(IMAGE_SUFFIX)) {
        all.push(ScalarEdit {
            key: k.clone(),
            token: v.clone(),
            expected: v.clone(),
            expected_style: Style::Plain,
        });
    }
    yaml::verify(&entries, &out, &all).map_err(at)?;
    Ok(ValuesEdit {
        text: format!("{bom}{out}"),
        changes,
        notes,
    })
}

/// Bumps the integer `appVersion` of a Chart.yaml text by one, keeping its
/// quoting. Returns the new text and the new appVersion.
pub fn bump_app_version(file: &Path, text: &str) -> Result<(String, u64), Error> {
    let at = |e: YamlError| Error::Yaml {
        file: file.to_path_buf(),
        pos: e.pos,
        message: e.message,
    };
    let (bom, text) = split_bom(text).map_err(at)?;
    let entries = yaml::parse_mapping(text).map_err(at)?;
    let Some(entry) = entries.iter().find(|e| e.key == "appVersion") else {
        return Err(at(YamlError {
            pos: Pos { line: 1, col: 1 },
            message: "no `appVersion` key".into(),
        }));
    };
    let Some((current, style)) = yaml::scalar(&entries, "appVersion") else {
        return Err(at(YamlError {
            pos: entry.value_pos,
            message: "`appVersion` is not a scalar".into(),
        }));
    };
    let n: u64 = current.parse().map_err(|_| {
        at(YamlError {
            pos: entry.value_pos,
            message: format!("`appVersion` is {current:?}, not an integer"),
        })
    })?;
    let next = n + 1;
    let token = match style {
        Style::Plain => next.to_string(),
        Style::SingleQuoted => format!("'{next}'"),
        Style::DoubleQuoted => format!("\"{next}\""),
        Style::Block => {
            return Err(at(YamlError {
                pos: entry.value_pos,
                message: "`appVersion` is a block scalar; refusing to edit it".into(),
            }))
        }
    };
    let edit = ScalarEdit {
        key: "appVersion".into(),
        token,
        expected: next.to_string(),
        expected_style: style,
    };
    let out = yaml::edit_scalars(text, &[edit]).map_err(at)?;
    Ok((format!("{bom}{out}"), next))
}

#[cfg(test)]
mod tests {
    use super::parse_bumps;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn app_version_pairs_and_add() {
        let b = parse_bumps(&s(&["swh-lister=20250101.1"]), &s(&["reg/lister"])).unwrap();
        assert_eq!(b[0].app, "swh-lister");
        assert_eq!(b[0].version, "20250101.1");
        assert_eq!(b[0].add_image.as_deref(), Some("reg/lister"));
        let b = parse_bumps(&s(&["a=1", "b=2"]), &s(&["b=127.0.0.1:5000/swh/b"])).unwrap();
        assert_eq!(b[0].add_image, None);
        assert_eq!(b[1].add_image.as_deref(), Some("127.0.0.1:5000/swh/b"));
        assert!(parse_bumps(&s(&["a=1", "b=2"]), &s(&["reg/x"])).is_err());
        assert!(parse_bumps(&s(&["a=1"]), &s(&["c=reg/c"])).is_err());
        assert_eq!(
            parse_bumps(&s(&["novalue"]), &[]).unwrap_err().to_string(),
            "\"novalue\": expected APP=VERSION"
        );
        assert_eq!(
            parse_bumps(&s(&["=1"]), &[]).unwrap_err().to_string(),
            "\"=1\": empty app name"
        );
    }
}
