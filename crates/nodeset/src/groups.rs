//! Group resolution: the [`GroupResolver`] trait, ClusterShell's file-based
//! group sources ([`ClusterShellGroups`]: `groups.conf`, `groups.conf.d`,
//! `groups.d/*.yaml`, upcalls), and the group-aware operations of
//! ClusterShell's `nodeset` (regroup, groups of a node set).

use crate::error::{ErrorKind, GroupError, ParseError};
use crate::nodeset::NodeSet;
use crate::parser::{Engine, Failure};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Characters a group name may not hold (ClusterShell's
/// `ILLEGAL_GROUP_CHARS`).
const ILLEGAL_GROUP_CHARS: &[char] = &['@', ',', '!', '&', '^', '*'];

/// Where node groups come from. `source` is a group source name; `None`
/// means the resolver's default source.
///
/// Results are node-set strings (each may hold ranges, operators and
/// further `@group` references); the parser joins them with `,`.
pub trait GroupResolver {
    /// Names of the group sources, the default one first.
    fn sources(&self) -> Vec<String>;

    /// Nodes of `group` (empty when the group is unknown or empty).
    fn group_nodes(&self, group: &str, source: Option<&str>) -> Result<Vec<String>, GroupError>;

    /// Every node of the source; [`GroupError::NoUpcall`] when the source
    /// cannot tell (the parser then unites all groups).
    fn all_nodes(&self, source: Option<&str>) -> Result<Vec<String>, GroupError>;

    /// Names of the groups of the source.
    fn group_list(&self, source: Option<&str>) -> Result<Vec<String>, GroupError>;

    /// Whether the source can answer [`GroupResolver::node_groups`].
    fn has_node_groups(&self, _source: Option<&str>) -> bool {
        false
    }

    /// Groups `node` belongs to (reverse query).
    fn node_groups(&self, _node: &str, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        Err(GroupError::NoUpcall {
            upcall: "reverse".into(),
            source_name: source.unwrap_or_default().to_string(),
        })
    }
}

/// (source, upcall, argument) of a cached upcall result.
type UpcallKey = (String, String, String);

/// One group source of ClusterShell's configuration.
#[derive(Debug, Clone)]
enum Source {
    /// Groups listed in a YAML file of `groups.d` (`all` group = all nodes).
    File { groups: Vec<(String, String)> },
    /// External commands run through `sh -c` in `cfgdir`.
    Upcall {
        map: Option<String>,
        /// Every group and its nodes in one call (`group: nodes` lines);
        /// serves `map` and `list` when given.
        mapall: Option<String>,
        all: Option<String>,
        list: Option<String>,
        reverse: Option<String>,
        cfgdir: PathBuf,
    },
}

/// ClusterShell's configuration-file resolver (`GroupResolverConfig`):
/// `groups.conf` (`[Main]` `default`, `confdir`/`groupsdir`, `autodir`;
/// upcall sections, shared sections like `[a,b]`), the `*.conf` files of
/// each confdir and the `*.yaml` files of each autodir.
///
/// Upcalls run through `sh -c` in their configuration directory with
/// `$GROUP`, `$NODE`, `$SOURCE` and `$CFGDIR` substituted (values that are
/// not plain words are shell-quoted); results are cached for the process.
#[derive(Debug)]
pub struct ClusterShellGroups {
    sources: Vec<(String, Source)>,
    default: Option<String>,
    cache: RefCell<HashMap<UpcallKey, Result<String, GroupError>>>,
}

/// A parsed INI file as Python's `ConfigParser` reads it: sections in order,
/// keys lower-cased, later files overriding earlier ones.
#[derive(Debug, Default)]
struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Ini {
    fn read(&mut self, text: &str, path: &Path) -> Result<(), GroupError> {
        let mut current: Option<usize> = None;
        let mut last_key: Option<String> = None;
        for (lineno, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                if trimmed.is_empty() {
                    last_key = None;
                }
                continue;
            }
            if raw.starts_with(|c: char| c.is_whitespace()) {
                if let (Some(s), Some(k)) = (current, &last_key) {
                    if let Some(entry) = self.sections[s].1.iter_mut().find(|(key, _)| key == k) {
                        entry.1.push('\n');
                        entry.1.push_str(trimmed);
                        continue;
                    }
                }
            }
            if trimmed.starts_with('[') && trimmed.ends_with(']') {
                let name = trimmed[1..trimmed.len() - 1].to_string();
                current = Some(match self.sections.iter().position(|(n, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        self.sections.push((name, Vec::new()));
                        self.sections.len() - 1
                    }
                });
                last_key = None;
                continue;
            }
            let Some(s) = current else {
                return Err(GroupError::ConfigSyntax(format!(
                    "File contains no section headers.\nfile: '{}', line: {}\n{}",
                    path.display(),
                    lineno + 1,
                    py_repr_line(raw)
                )));
            };
            let cut = raw.find(['=', ':']);
            let Some(cut) = cut else {
                return Err(GroupError::ConfigSyntax(format!(
                    "Source contains parsing errors: '{}'\n\t[line {:2}]: {}",
                    path.display(),
                    lineno + 1,
                    py_repr_line(&format!("{raw}\n"))
                )));
            };
            let key = raw[..cut].trim().to_lowercase();
            let value = raw[cut + 1..].trim().to_string();
            let entries = &mut self.sections[s].1;
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(e) => e.1 = value,
                None => entries.push((key.clone(), value)),
            }
            last_key = Some(key);
        }
        Ok(())
    }

    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(n, _)| n == section)
            .and_then(|(_, kv)| kv.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.as_str())
    }
}

/// `string.Template.safe_substitute` with shell quoting of the values.
fn substitute(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let b = template.as_bytes();
    let mut i = 0;
    let ident_len = |s: &[u8]| {
        if s.first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            s.iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count()
        } else {
            0
        }
    };
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'$') {
                out.push('$');
                i += 2;
                continue;
            }
            let (name, consumed) = if b.get(i + 1) == Some(&b'{') {
                let n = ident_len(&b[i + 2..]);
                if n > 0 && b.get(i + 2 + n) == Some(&b'}') {
                    (&template[i + 2..i + 2 + n], n + 3)
                } else {
                    ("", 0)
                }
            } else {
                let n = ident_len(&b[i + 1..]);
                (&template[i + 1..i + 1 + n], n + 1)
            };
            if let Some((_, v)) = vars
                .iter()
                .find(|(k, _)| *k == name)
                .filter(|_| !name.is_empty())
            {
                out.push_str(
                    &shlex::try_quote(v)
                        .map(|c| c.into_owned())
                        .unwrap_or_default(),
                );
                i += consumed;
                continue;
            }
        }
        let ch = template[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn yaml_scalar(y: &yaml_rust2::Yaml) -> Option<String> {
    use yaml_rust2::Yaml;
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(if *b { "True".into() } else { "False".into() }),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

impl ClusterShellGroups {
    /// A resolver without any source.
    pub fn empty() -> ClusterShellGroups {
        ClusterShellGroups {
            sources: Vec::new(),
            default: None,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The `groups.conf` files ClusterShell reads, in order (later ones
    /// override earlier ones): `/etc/clustershell`,
    /// `~/.local/etc/clustershell`, `$XDG_CONFIG_HOME/clustershell` (or
    /// `~/.config/clustershell`), then `$CLUSTERSHELL_CFGDIR`.
    pub fn default_paths() -> Vec<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut paths = vec![PathBuf::from("/etc/clustershell/groups.conf")];
        if let Some(h) = &home {
            paths.push(h.join(".local/etc/clustershell/groups.conf"));
        }
        match std::env::var_os("XDG_CONFIG_HOME") {
            Some(x) => paths.push(PathBuf::from(x).join("clustershell/groups.conf")),
            None => {
                if let Some(h) = &home {
                    paths.push(h.join(".config/clustershell/groups.conf"));
                }
            }
        }
        if let Some(d) = std::env::var_os("CLUSTERSHELL_CFGDIR") {
            paths.push(PathBuf::from(d).join("groups.conf"));
        }
        paths
    }

    /// Loads the configuration from ClusterShell's search path.
    pub fn load_default() -> Result<ClusterShellGroups, ParseError> {
        Self::load(&Self::default_paths())
    }

    /// Loads `groups.conf` from a configuration directory.
    pub fn load_dir(dir: &Path) -> Result<ClusterShellGroups, ParseError> {
        Self::load(&[dir.join("groups.conf")])
    }

    /// Loads the given `groups.conf` files (missing ones are skipped; the
    /// directory of the last one read is `$CFGDIR`).
    pub fn load(files: &[PathBuf]) -> Result<ClusterShellGroups, ParseError> {
        Self::load_inner(files).map_err(GroupError::into_parse_error)
    }

    fn load_inner(files: &[PathBuf]) -> Result<ClusterShellGroups, GroupError> {
        let mut me = ClusterShellGroups::empty();
        let mut ini = Ini::default();
        let mut last: Option<&PathBuf> = None;
        for f in files {
            if let Ok(text) = std::fs::read_to_string(f) {
                ini.read(&text, f)?;
                last = Some(f);
            }
        }
        let Some(last) = last else {
            return Ok(me);
        };
        let cfgdir = last
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let cfgdir_s = cfgdir.to_string_lossy().to_string();
        let expand_dirs = |value: &str| -> Vec<PathBuf> {
            let words = shlex::split(value).unwrap_or_default();
            let mut seen: Vec<PathBuf> = Vec::new();
            for w in words {
                let p = w
                    .replace("${CFGDIR}", &cfgdir_s)
                    .replace("$CFGDIR", &cfgdir_s);
                let p = normpath(&p);
                if !seen.contains(&p) {
                    seen.push(p);
                }
            }
            seen
        };
        let confdir = ini
            .get("Main", "groupsdir")
            .or_else(|| ini.get("Main", "confdir"))
            .map(str::to_string);
        if let Some(confdir) = confdir {
            for dir in expand_dirs(&confdir) {
                if !dir.exists() {
                    continue;
                }
                if !dir.is_dir() {
                    return Err(GroupError::Config(format!(
                        "Defined confdir {} is not a directory",
                        dir.display()
                    )));
                }
                for f in sorted_glob(&dir, ".conf") {
                    let mut sub = Ini::default();
                    if let Ok(text) = std::fs::read_to_string(&f) {
                        sub.read(&text, &f)?;
                    }
                    me.sources_from_ini(&sub, &dir)?;
                }
            }
        }
        if let Some(autodir) = ini.get("Main", "autodir").map(str::to_string) {
            for dir in expand_dirs(&autodir) {
                if !dir.exists() {
                    continue;
                }
                if !dir.is_dir() {
                    return Err(GroupError::Config(format!(
                        "Defined autodir {} is not a directory",
                        dir.display()
                    )));
                }
                for f in sorted_glob(&dir, ".yaml") {
                    me.sources_from_yaml(&f)?;
                }
            }
        }
        me.sources_from_ini(&ini, &cfgdir)?;
        if let Some(def) = ini.get("Main", "default") {
            if me.sources.iter().any(|(n, _)| n == def) {
                me.default = Some(def.to_string());
            } else if !def.is_empty() {
                return Err(GroupError::Config(format!(
                    "Default group source not found: \"{def}\""
                )));
            }
        }
        if me.default.is_none() {
            me.default = me.sources.first().map(|(n, _)| n.clone());
        }
        Ok(me)
    }

    fn add_source(&mut self, name: String, source: Source) -> Result<(), GroupError> {
        if self.sources.iter().any(|(n, _)| *n == name) {
            // ClusterShell raises a ValueError here.
            return Err(GroupError::Config(format!(
                "GroupSource '{name}': name collision"
            )));
        }
        self.sources.push((name, source));
        Ok(())
    }

    fn sources_from_ini(&mut self, ini: &Ini, cfgdir: &Path) -> Result<(), GroupError> {
        for (section, kv) in &ini.sections {
            for name in section.split(',') {
                if name == "Main" {
                    continue;
                }
                let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                let map = get("map");
                if map.is_none() && get("mapall").is_none() {
                    return Err(GroupError::Config(format!(
                        "No option 'map' or 'mapall' in section: '{section}'"
                    )));
                }
                self.add_source(
                    name.to_string(),
                    Source::Upcall {
                        map,
                        mapall: get("mapall"),
                        all: get("all"),
                        list: get("list"),
                        reverse: get("reverse"),
                        cfgdir: cfgdir.to_path_buf(),
                    },
                )?;
            }
        }
        Ok(())
    }

    fn sources_from_yaml(&mut self, path: &Path) -> Result<(), GroupError> {
        use yaml_rust2::{Yaml, YamlLoader};
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
            Err(e) => return Err(GroupError::Config(format!("{}: {e}", path.display()))),
        };
        // A safe loader: tags that name anything but YAML's standard types
        // (`!!python/object/new:os.system`...) are refused, never applied.
        if let Some(msg) = unsafe_yaml_tag(&text) {
            return Err(GroupError::Config(format!("{}: {msg}", path.display())));
        }
        let docs = YamlLoader::load_from_str(&text)
            .map_err(|e| GroupError::Config(format!("{}: {e}", path.display())))?;
        let Some(Yaml::Hash(top)) = docs.into_iter().next() else {
            return Err(GroupError::Config(format!(
                "{}: invalid content (base is not a dict)",
                path.display()
            )));
        };
        for (src, groups) in top {
            let Yaml::String(src) = src else {
                return Err(GroupError::Config(format!(
                    "{}: group source {} not a string (add quotes?)",
                    path.display(),
                    yaml_scalar(&src).unwrap_or_default()
                )));
            };
            let Yaml::Hash(groups) = groups else {
                return Err(GroupError::Config(format!(
                    "{}: invalid content (group source '{src}' is not a dict)",
                    path.display()
                )));
            };
            let mut list = Vec::new();
            for (g, nodes) in groups {
                let Yaml::String(g) = g else {
                    return Err(GroupError::Config(format!(
                        "{}: {src}: group name {} not a string (add quotes?)",
                        path.display(),
                        yaml_scalar(&g).unwrap_or_default()
                    )));
                };
                let value = match &nodes {
                    Yaml::Array(items) => items
                        .iter()
                        .map(|i| yaml_scalar(i).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(","),
                    other => yaml_scalar(other).unwrap_or_default(),
                };
                list.push((g, value));
            }
            self.add_source(src, Source::File { groups: list })?;
        }
        Ok(())
    }

    /// Makes `name` the default source (`nodeset -s`).
    pub fn set_default_source(&mut self, name: &str) -> Result<(), ParseError> {
        if self.sources.iter().any(|(n, _)| n == name) {
            self.default = Some(name.to_string());
            Ok(())
        } else {
            Err(GroupError::UnknownSource(name.to_string()).into_parse_error())
        }
    }

    /// The default source name, if any.
    pub fn default_source(&self) -> Option<&str> {
        self.default.as_deref()
    }

    fn source(&self, name: Option<&str>) -> Result<(&str, &Source), GroupError> {
        let wanted = match name {
            Some(n) if !n.is_empty() => Some(n),
            _ => self.default.as_deref(),
        };
        wanted
            .and_then(|w| self.sources.iter().find(|(n, _)| n == w))
            .map(|(n, s)| (n.as_str(), s))
            .ok_or_else(|| {
                GroupError::UnknownSource(
                    name.filter(|n| !n.is_empty())
                        .unwrap_or("<default>")
                        .to_string(),
                )
            })
    }

    /// The `mapall` upcall's groups, in output order, duplicate lines
    /// united (ClusterShell 1.10's `mapall`).
    fn mapall(
        &self,
        source_name: &str,
        template: &String,
        cfgdir: &Path,
    ) -> Result<Vec<(String, String)>, GroupError> {
        let out = self.upcall(source_name, "mapall", Some(template), cfgdir, &[])?;
        let mut groups: Vec<(String, String)> = Vec::new();
        for line in out.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (group, nodes) = match line.split_once(':') {
                Some((g, n)) if !g.trim().is_empty() && g.split_whitespace().count() == 1 => {
                    (g.trim(), n.trim())
                }
                _ => {
                    return Err(GroupError::QueryFailed {
                        command: format!("mapall: invalid line '{line}' (expected 'group: nodes')"),
                        source_name: source_name.to_string(),
                    })
                }
            };
            match groups.iter_mut().find(|(g, _)| g == group) {
                Some((_, prev)) => {
                    if !nodes.is_empty() {
                        if !prev.is_empty() {
                            prev.push(',');
                        }
                        prev.push_str(nodes);
                    }
                }
                None => groups.push((group.to_string(), nodes.to_string())),
            }
        }
        Ok(groups)
    }

    fn upcall(
        &self,
        source_name: &str,
        kind: &str,
        template: Option<&String>,
        cfgdir: &Path,
        vars: &[(&str, &str)],
    ) -> Result<String, GroupError> {
        let Some(template) = template else {
            return Err(GroupError::NoUpcall {
                upcall: kind.to_string(),
                source_name: source_name.to_string(),
            });
        };
        let key = (
            source_name.to_string(),
            kind.to_string(),
            vars.first().map(|(_, v)| v.to_string()).unwrap_or_default(),
        );
        if let Some(hit) = self.cache.borrow().get(&key) {
            return hit.clone();
        }
        let cfgdir_s = cfgdir.to_string_lossy().to_string();
        let mut all_vars: Vec<(&str, &str)> = vars.to_vec();
        all_vars.push(("CFGDIR", &cfgdir_s));
        all_vars.push(("SOURCE", source_name));
        let cmdline = substitute(template, &all_vars);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmdline)
            .current_dir(cfgdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output();
        let result = match out {
            Ok(o) if o.status.success() => {
                Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            _ => Err(GroupError::QueryFailed {
                command: cmdline,
                source_name: source_name.to_string(),
            }),
        };
        self.cache.borrow_mut().insert(key, result.clone());
        result
    }

    fn raw_query(
        &self,
        what: &str,
        arg: &str,
        source: Option<&str>,
    ) -> Result<Vec<String>, GroupError> {
        let (name, src) = self.source(source)?;
        let raw: Vec<String> = match src {
            Source::File { groups } => match what {
                "map" => vec![groups
                    .iter()
                    .find(|(g, _)| g == arg)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()],
                "list" => groups.iter().map(|(g, _)| g.clone()).collect(),
                "all" => match groups.iter().find(|(g, _)| g == "all") {
                    Some((_, v)) => vec![v.clone()],
                    None => {
                        return Err(GroupError::NoUpcall {
                            upcall: "All groups info not available".into(),
                            source_name: name.to_string(),
                        })
                    }
                },
                _ => {
                    return Err(GroupError::NoUpcall {
                        upcall: "Not implemented".into(),
                        source_name: name.to_string(),
                    })
                }
            },
            Source::Upcall {
                map,
                mapall: Some(mapall),
                cfgdir,
                ..
            } if what == "map" || what == "list" => {
                let groups = self.mapall(name, mapall, cfgdir)?;
                if what == "list" {
                    vec![groups
                        .iter()
                        .map(|(g, _)| g.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")]
                } else {
                    match groups.iter().find(|(g, _)| g == arg) {
                        Some((_, nodes)) => vec![nodes.clone()],
                        None if map.is_some() => vec![self.upcall(
                            name,
                            "map",
                            map.as_ref(),
                            cfgdir,
                            &[("GROUP", arg)],
                        )?],
                        None => vec![String::new()],
                    }
                }
            }
            Source::Upcall {
                map,
                all,
                list,
                reverse,
                cfgdir,
                ..
            } => {
                let out = match what {
                    "map" => self.upcall(name, "map", map.as_ref(), cfgdir, &[("GROUP", arg)])?,
                    "list" => self.upcall(name, "list", list.as_ref(), cfgdir, &[])?,
                    "all" => self.upcall(name, "all", all.as_ref(), cfgdir, &[])?,
                    _ => {
                        self.upcall(name, "reverse", reverse.as_ref(), cfgdir, &[("NODE", arg)])?
                    }
                };
                vec![out]
            }
        };
        Ok(raw)
    }

    /// Splits raw results into whitespace-separated words, line by line.
    fn words(raw: Vec<String>) -> Vec<String> {
        raw.iter()
            .flat_map(|r| {
                r.lines()
                    .flat_map(|l| l.split_whitespace().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn checked_groups(raw: Vec<String>) -> Result<Vec<String>, GroupError> {
        let words = Self::words(raw);
        for w in &words {
            let bad: Vec<String> = ILLEGAL_GROUP_CHARS
                .iter()
                .filter(|c| w.contains(**c))
                .map(|c| c.to_string())
                .collect();
            if !bad.is_empty() {
                return Err(GroupError::IllegalChar(bad.join(" ")));
            }
        }
        Ok(words)
    }
}

fn normpath(p: &str) -> PathBuf {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    PathBuf::from(if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    })
}

fn sorted_glob(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix) && !n.starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl GroupResolver for ClusterShellGroups {
    fn sources(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sources.iter().map(|(n, _)| n.clone()).collect();
        if let Some(d) = &self.default {
            if let Some(pos) = v.iter().position(|n| n == d) {
                let d = v.remove(pos);
                v.insert(0, d);
            }
        }
        v
    }

    fn group_nodes(&self, group: &str, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        Ok(Self::words(self.raw_query("map", group, source)?))
    }

    fn all_nodes(&self, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        Ok(Self::words(self.raw_query("all", "", source)?))
    }

    fn group_list(&self, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        Self::checked_groups(self.raw_query("list", "", source)?)
    }

    fn has_node_groups(&self, source: Option<&str>) -> bool {
        matches!(
            self.source(source),
            Ok((
                _,
                Source::Upcall {
                    reverse: Some(_),
                    ..
                }
            ))
        )
    }

    fn node_groups(&self, node: &str, source: Option<&str>) -> Result<Vec<String>, GroupError> {
        Self::checked_groups(self.raw_query("reverse", node, source)?)
    }
}

/// For each group of `source` holding nodes of `ns`: (number of nodes of
/// `ns` in it, the group's nodes). ClusterShell's `NodeSet._groups2`.
fn groups_info(
    ns: &NodeSet,
    resolver: &dyn GroupResolver,
    source: Option<&str>,
) -> Result<BTreeMap<String, (usize, NodeSet)>, ParseError> {
    let engine = Engine::new(Some(resolver));
    let all_groups = match engine.grouplist_opt(source) {
        Ok(l) => Some(l),
        Err(Failure::Group(GroupError::NoUpcall { .. } | GroupError::QueryFailed { .. })) => None,
        Err(f) => return Err(f.at_top("")),
    };
    let n_groups = all_groups.as_ref().map_or(0, Vec::len);
    let mut members: Vec<(String, NodeSet)> = Vec::new();
    let use_reverse = resolver.has_node_groups(source) && (n_groups == 0 || n_groups >= ns.len());
    if !use_reverse {
        let Some(all_groups) = all_groups.filter(|l| !l.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        for grp in all_groups {
            let nodes = resolver.group_nodes(&grp, source).map_err(|e| match e {
                GroupError::QueryFailed { command, .. } => ParseError::other(
                    ErrorKind::External,
                    format!("Unable to map a group previously listed\n\tFailed command: {command}"),
                ),
                e => e.into_parse_error(),
            })?;
            let set = NodeSet::parse_with(&nodes.join(","), resolver)?;
            members.push((grp, set));
        }
    }
    let mut info: BTreeMap<String, (usize, NodeSet)> = BTreeMap::new();
    for node in ns.iter() {
        let groups: Vec<String> = if !members.is_empty() {
            members
                .iter()
                .filter(|(_, set)| set.contains(&node))
                .map(|(g, _)| g.clone())
                .collect()
        } else {
            resolver.node_groups(&node, source).map_err(|e| match e {
                GroupError::QueryFailed { command, .. } => ParseError::other(
                    ErrorKind::External,
                    format!("Group source query failed: {command}"),
                ),
                e => e.into_parse_error(),
            })?
        };
        for g in groups {
            if let Some(entry) = info.get_mut(&g) {
                entry.0 += 1;
            } else {
                let nodes = resolver
                    .group_nodes(&g, source)
                    .map_err(|e| Failure::Group(e).at_top(&g))?;
                let joined = nodes.join(",");
                let set = NodeSet::parse_with(&joined, resolver)?;
                info.insert(g, (1, set));
            }
        }
    }
    Ok(info)
}

fn group_key(source: Option<&str>, noprefix: bool, grp: &str) -> String {
    match source {
        Some(s) if !noprefix => format!("@{s}:{grp}"),
        _ => format!("@{grp}"),
    }
}

/// The groups of `source` that hold nodes of `ns`, keyed by `@group` (or
/// `@source:group` when `source` is given and `noprefix` is false), with
/// (all nodes of the group, nodes of `ns` in it). ClusterShell's
/// `NodeSet.groups`.
pub fn node_set_groups(
    ns: &NodeSet,
    resolver: &dyn GroupResolver,
    source: Option<&str>,
    noprefix: bool,
) -> Result<BTreeMap<String, (NodeSet, NodeSet)>, ParseError> {
    let info = groups_info(ns, resolver, source)?;
    let mut out = BTreeMap::new();
    for (grp, (_, nodes)) in info {
        let inside = ns.intersection(&nodes);
        out.insert(group_key(source, noprefix, &grp), (nodes, inside));
    }
    Ok(out)
}

/// `ns` folded with the groups of `source` it fully contains, largest
/// groups first (ClusterShell's `NodeSet.regroup`).
pub fn regroup(
    ns: &NodeSet,
    resolver: &dyn GroupResolver,
    source: Option<&str>,
    noprefix: bool,
) -> Result<String, ParseError> {
    let info = groups_info(ns, resolver, source)?;
    if info.is_empty() {
        return Ok(ns.to_string());
    }
    let mut fulls: Vec<(usize, &String)> = info
        .iter()
        .filter(|(_, (n, nodes))| *n == nodes.len())
        .map(|(g, (n, _))| (*n, g))
        .collect();
    fulls.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut rest = ns.clone();
    let mut regrouped = NodeSet::new();
    for (_, grp) in fulls {
        let nodes = &info[grp].1;
        if !nodes.is_subset(&rest) {
            continue;
        }
        regrouped.update(&NodeSet::parse(&group_key(source, noprefix, grp))?);
        rest.difference_update(nodes);
        if rest.is_empty() {
            return Ok(regrouped.to_string());
        }
    }
    if !regrouped.is_empty() {
        return Ok(format!("{regrouped},{rest}"));
    }
    Ok(rest.to_string())
}

/// The group names of `source`, expanded and in node-set order
/// (ClusterShell's `grouplist`).
pub fn group_names(
    resolver: &dyn GroupResolver,
    source: Option<&str>,
) -> Result<Vec<String>, ParseError> {
    // A failing list upcall is a group error here (`Group error: CMD`), as
    // in ClusterShell's grouplist(); only node-set parsing reports it as a
    // parse error.
    Engine::new(Some(resolver))
        .grouplist_opt(source)
        .map_err(|f| match f {
            crate::parser::Failure::Group(e) => e.into_parse_error(),
            f => f.at_top(""),
        })
}

/// Every node of `source` (or the default one), as ClusterShell's
/// `NodeSet.fromall`.
pub fn all_nodes(
    resolver: &dyn GroupResolver,
    source: Option<&str>,
) -> Result<NodeSet, ParseError> {
    let engine = Engine::new(Some(resolver));
    let list = match engine.all_nodes(source) {
        Ok(l) => l,
        Err(Failure::Group(e @ GroupError::UnknownSource(_))) => {
            let msg = match &e {
                GroupError::UnknownSource(s) => s.clone(),
                _ => String::new(),
            };
            return Err(ParseError::other(
                ErrorKind::External,
                format!("Group source error (GroupResolverSourceError: {msg})"),
            ));
        }
        Err(f) => return Err(f.at_top("")),
    };
    let mut ns = NodeSet::new();
    for item in list {
        ns.update(&NodeSet::parse_with(&item, resolver)?);
    }
    Ok(ns)
}

/// The first YAML tag of `text` that PyYAML's safe loader would refuse,
/// described as PyYAML does (`None` when every tag is a standard one or the
/// text does not parse: the loader reports that).
fn unsafe_yaml_tag(text: &str) -> Option<String> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
    use yaml_rust2::scanner::Marker;
    const SAFE: &[&str] = &[
        "null",
        "bool",
        "int",
        "float",
        "str",
        "seq",
        "map",
        "binary",
        "timestamp",
        "set",
        "omap",
        "pairs",
        "merge",
        "value",
    ];
    struct Check(Option<String>);
    impl MarkedEventReceiver for Check {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if self.0.is_some() {
                return;
            }
            let tag: Option<Tag> = match ev {
                Event::Scalar(_, _, _, t)
                | Event::SequenceStart(_, t)
                | Event::MappingStart(_, t) => t,
                _ => None,
            };
            let Some(tag) = tag else {
                return;
            };
            let standard = matches!(tag.handle.as_str(), "!!" | "tag:yaml.org,2002:")
                && SAFE.contains(&tag.suffix.as_str());
            if !standard {
                let full = if tag.handle == "!!" {
                    format!("tag:yaml.org,2002:{}", tag.suffix)
                } else {
                    format!("{}{}", tag.handle, tag.suffix)
                };
                self.0 = Some(format!(
                    "could not determine a constructor for the tag '{full}' (line {})",
                    mark.line()
                ));
            }
        }
    }
    let mut check = Check(None);
    let mut parser = Parser::new_from_str(text);
    let _ = parser.load(&mut check, true);
    check.0
}

/// Python's `repr()` of a configuration line, as configparser quotes it in
/// its errors (single quotes unless the line holds one).
fn py_repr_line(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_substitution_quotes_values() {
        assert_eq!(
            substitute(
                "echo $GROUP ${SOURCE} $$ $OTHER",
                &[("GROUP", "a"), ("SOURCE", "s")]
            ),
            "echo a s $ $OTHER"
        );
        assert_eq!(substitute("echo $GROUP", &[("GROUP", "a;b")]), "echo 'a;b'");
    }

    #[test]
    fn normpath_like_python() {
        assert_eq!(normpath("/etc/./a/../b/"), PathBuf::from("/etc/b"));
        assert_eq!(normpath("a//b"), PathBuf::from("a/b"));
    }
}
