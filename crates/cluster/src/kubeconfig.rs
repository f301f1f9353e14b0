//! kubeconfig files: contexts -> cluster server, CA and user token.
//!
//! Read from `$KUBECONFIG` (colon-separated list; the first file defining a
//! name wins, as kubectl merges) or `~/.kube/config`. Supported: cluster
//! `server`, `certificate-authority-data`, `certificate-authority`,
//! `insecure-skip-tls-verify`; user `token`, `tokenFile`. Client
//! certificates and exec plugins are refused with a clear message.

use crate::http::ApiClient;
use crate::{Error, Secret};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

#[derive(Debug, Clone)]
struct Entry {
    file: PathBuf,
    body: Yaml,
}

/// The merged kubeconfig.
#[derive(Debug, Clone, Default)]
pub struct KubeConfig {
    files: Vec<PathBuf>,
    clusters: BTreeMap<String, Entry>,
    users: BTreeMap<String, Entry>,
    contexts: BTreeMap<String, Entry>,
    current: Option<String>,
}

/// A context resolved to what a client needs.
#[derive(Debug, Clone)]
pub struct Context {
    /// Context name.
    pub name: String,
    /// API server URL.
    pub server: String,
    /// PEM certificate authority, if any.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
    /// Bearer token, if any.
    pub token: Option<Secret>,
    /// Default namespace of the context.
    pub namespace: Option<String>,
}

impl Context {
    /// An API client for this context.
    pub fn client(&self) -> Result<ApiClient, Error> {
        ApiClient::new(
            &self.server,
            self.ca_pem.as_deref(),
            self.token.clone(),
            self.insecure_skip_tls_verify,
        )
        .map_err(|e| Error::Config(format!("context {}: {e}", self.name)))
    }
}

/// The kubeconfig files kubectl would read: `$KUBECONFIG` entries, else
/// `~/.kube/config`.
pub fn default_paths() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        let v = v.to_string_lossy().into_owned();
        let paths: Vec<PathBuf> = v
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    match std::env::var_os("HOME") {
        Some(h) => vec![PathBuf::from(h).join(".kube/config")],
        None => vec![PathBuf::from(".kube/config")],
    }
}

fn named(doc: &Yaml, list: &str, inner: &str, file: &Path, into: &mut BTreeMap<String, Entry>) {
    if let Some(items) = doc[list].as_vec() {
        for item in items {
            if let Some(name) = item["name"].as_str() {
                into.entry(name.to_string()).or_insert_with(|| Entry {
                    file: file.to_path_buf(),
                    body: item[inner].clone(),
                });
            }
        }
    }
}

impl KubeConfig {
    /// Reads the default files ([`default_paths`]); missing files in a
    /// `$KUBECONFIG` list are skipped, as kubectl does; none at all is an
    /// error.
    pub fn load_default() -> Result<KubeConfig, Error> {
        Self::load_paths(&default_paths())
    }

    /// Reads and merges these files.
    pub fn load_paths(paths: &[PathBuf]) -> Result<KubeConfig, Error> {
        let mut kc = KubeConfig::default();
        for p in paths {
            let text = match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::Config(format!("{}: {e}", p.display()))),
            };
            kc.add(&text, p)?;
        }
        if kc.files.is_empty() {
            return Err(Error::Config(format!(
                "no kubeconfig found (tried {}); set KUBECONFIG",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(kc)
    }

    /// Adds one file's text (later files do not override earlier names).
    pub fn add(&mut self, text: &str, file: &Path) -> Result<(), Error> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| {
            let m = e.marker();
            Error::Config(format!(
                "{}:{}:{}: {}",
                file.display(),
                m.line(),
                m.col() + 1,
                e.info()
            ))
        })?;
        self.files.push(file.to_path_buf());
        let Some(doc) = docs.first() else {
            return Ok(());
        };
        named(doc, "clusters", "cluster", file, &mut self.clusters);
        named(doc, "users", "user", file, &mut self.users);
        named(doc, "contexts", "context", file, &mut self.contexts);
        if self.current.is_none() {
            self.current = doc["current-context"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from);
        }
        Ok(())
    }

    /// The context names.
    pub fn context_names(&self) -> Vec<String> {
        self.contexts.keys().cloned().collect()
    }

    /// Resolves `name` (or the current context) to server, CA and token.
    pub fn context(&self, name: Option<&str>) -> Result<Context, Error> {
        let files = || {
            self.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = match name.or(self.current.as_deref()) {
            Some(n) => n.to_string(),
            None => {
                return Err(Error::Config(format!(
                    "no context given and no current-context in {}",
                    files()
                )))
            }
        };
        let ctx = self.contexts.get(&name).ok_or_else(|| {
            Error::Config(format!(
                "kube context {name:?} not found in {} (contexts: {})",
                files(),
                self.context_names().join(", ")
            ))
        })?;
        let cluster_name = ctx.body["cluster"].as_str().unwrap_or("");
        let cluster = self.clusters.get(cluster_name).ok_or_else(|| {
            Error::Config(format!(
                "{}: context {name}: cluster {cluster_name:?} not found",
                ctx.file.display()
            ))
        })?;
        let c = &cluster.body;
        let server = c["server"].as_str().ok_or_else(|| {
            Error::Config(format!(
                "{}: cluster {cluster_name}: no server",
                cluster.file.display()
            ))
        })?;
        let ca_pem = if let Some(data) = c["certificate-authority-data"].as_str() {
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| {
                        Error::Config(format!(
                            "{}: cluster {cluster_name}: certificate-authority-data: {e}",
                            cluster.file.display()
                        ))
                    })?,
            )
        } else if let Some(path) = c["certificate-authority"].as_str() {
            let p = relative_to(&cluster.file, path);
            Some(std::fs::read(&p).map_err(|e| {
                Error::Config(format!(
                    "{}: cluster {cluster_name}: certificate-authority {}: {e}",
                    cluster.file.display(),
                    p.display()
                ))
            })?)
        } else {
            None
        };
        let insecure = c["insecure-skip-tls-verify"].as_bool().unwrap_or(false);
        let user_name = ctx.body["user"].as_str().unwrap_or("");
        let token = match self.users.get(user_name) {
            None if user_name.is_empty() => None,
            None => {
                return Err(Error::Config(format!(
                    "{}: context {name}: user {user_name:?} not found",
                    ctx.file.display()
                )))
            }
            Some(u) => {
                let b = &u.body;
                if let Some(t) = b["token"].as_str() {
                    Some(Secret::new(t.trim()))
                } else if let Some(path) = b["tokenFile"].as_str() {
                    let p = relative_to(&u.file, path);
                    let t = std::fs::read_to_string(&p).map_err(|e| {
                        Error::Config(format!(
                            "{}: user {user_name}: tokenFile {}: {e}",
                            u.file.display(),
                            p.display()
                        ))
                    })?;
                    Some(Secret::new(t.trim()))
                } else if !b["exec"].is_badvalue() || !b["client-certificate-data"].is_badvalue() {
                    return Err(Error::Config(format!(
                        "{}: user {user_name}: only token and tokenFile authentication are supported (not exec plugins or client certificates)",
                        u.file.display()
                    )));
                } else {
                    None
                }
            }
        };
        Ok(Context {
            name: name.clone(),
            server: server.to_string(),
            ca_pem,
            insecure_skip_tls_verify: insecure,
            token,
            namespace: ctx.body["namespace"].as_str().map(String::from),
        })
    }
}

fn relative_to(file: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c1\n  cluster:\n    server: https://rancher.example.org/k8s/clusters/c-1\n    certificate-authority-data: LS0tLS1CRUdJTg==\n- name: c2\n  cluster:\n    server: http://127.0.0.1:6443\nusers:\n- name: u1\n  user:\n    token: kubeconfig-u-abc\n- name: u2\n  user:\n    tokenFile: tok\ncontexts:\n- name: archive-staging-rke2\n  context:\n    cluster: c1\n    user: u1\n    namespace: swh\n- name: local\n  context:\n    cluster: c2\n    user: u2\ncurrent-context: local\n";

    #[test]
    fn contexts_resolve_to_server_ca_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config");
        std::fs::write(&f, A).unwrap();
        std::fs::write(dir.path().join("tok"), "from-file\n").unwrap();
        let kc = KubeConfig::load_paths(std::slice::from_ref(&f)).unwrap();
        let c = kc.context(Some("archive-staging-rke2")).unwrap();
        assert_eq!(c.server, "https://rancher.example.org/k8s/clusters/c-1");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"-----BEGIN"[..]));
        assert_eq!(c.token.as_ref().unwrap().expose(), "kubeconfig-u-abc");
        assert_eq!(c.namespace.as_deref(), Some("swh"));
        assert!(!format!("{c:?}").contains("kubeconfig-u-abc"));
        let cur = kc.context(None).unwrap();
        assert_eq!(cur.name, "local");
        assert_eq!(cur.token.unwrap().expose(), "from-file");
        let e = kc.context(Some("nope")).unwrap_err().to_string();
        assert!(
            e.contains("\"nope\" not found") && e.contains("archive-staging-rke2"),
            "{e}"
        );
    }

    #[test]
    fn first_file_wins_and_missing_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "clusters:\n- name: c\n  cluster:\n    server: https://first\ncontexts:\n- name: x\n  context:\n    cluster: c\n").unwrap();
        std::fs::write(&b, "clusters:\n- name: c\n  cluster:\n    server: https://second\ncontexts:\n- name: y\n  context:\n    cluster: c\n").unwrap();
        let kc = KubeConfig::load_paths(&[dir.path().join("missing"), a, b]).unwrap();
        assert_eq!(kc.context(Some("y")).unwrap().server, "https://first");
        assert!(KubeConfig::load_paths(&[dir.path().join("missing")]).is_err());
    }

    #[test]
    fn bad_yaml_names_file_line_column() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "clusters:\n  - name: [unclosed\n").unwrap();
        let e = KubeConfig::load_paths(std::slice::from_ref(&a))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{}:", a.display())), "{e}");
    }

    #[test]
    fn exec_plugins_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "clusters:\n- name: c\n  cluster:\n    server: https://s\nusers:\n- name: u\n  user:\n    exec:\n      command: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n").unwrap();
        let kc = KubeConfig::load_paths(&[a]).unwrap();
        let e = kc.context(Some("x")).unwrap_err().to_string();
        assert!(e.contains("only token and tokenFile"), "{e}");
    }
}
