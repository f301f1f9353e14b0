//! **STAND-IN** for a Kubernetes API server and an Argo CD API server.
//!
//! No Kubernetes API server can run on the test machine, so this module
//! serves, on `127.0.0.1`, the real JSON shapes of the few endpoints
//! swh-deploy (and `kubectl get nodes`, `kubectl label`, `kubectl rollout
//! status`) use. It is **not** Kubernetes: there are no pods, no scheduler,
//! no admission, no real controllers. What it simulates:
//!
//! * discovery: `GET /api`, `/api/v1`, `/apis`, `/apis/apps/v1`, `/version`;
//! * nodes: `GET /api/v1/nodes[/{name}]`, `PATCH /api/v1/nodes/{name}` with
//!   `application/merge-patch+json` or `application/strategic-merge-patch+json`
//!   (labels only; a `null` value removes a label), as `kubectl label
//!   --overwrite` sends;
//! * deployments: `GET /apis/apps/v1/namespaces/{ns}/deployments[/{name}]`,
//!   with `?fieldSelector=metadata.name=X` and `?watch=true` (the watch
//!   stream `kubectl rollout status` reads);
//! * Argo CD: `GET /api/v1/applications/{name}[?refresh=hard]` with
//!   `status.sync`, `status.health`, `status.operationState`.
//!
//! Each Argo CD application tracks a branch of a bare git repository (the
//! test bed's `swh-charts.git`, [`crate::components::GitRemotes`]) with
//! automated sync: when the branch head moves, the application goes
//! `OutOfSync`, an operation runs (`Running`), then it is `Synced` at the new
//! revision; every deployment of the application's namespace gets a new
//! generation and its replicas roll over a few hundred milliseconds
//! (`Progressing` -> `Healthy`). Faults ([`Faults`]): a revision, or an image
//! version appearing in the revision's `values-swh-application-versions.yaml`,
//! makes the rollout stall and end with `ProgressDeadlineExceeded` (the
//! application is then `Degraded`).
//!
//! Every request needs `Authorization: Bearer <token>` (one token for the
//! Kubernetes API, one for Argo CD); anything else gets 401.

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an Argo CD sync operation stays `Running`.
const SYNC_DURATION: Duration = Duration::from_millis(150);
/// How long after a new generation the controller "observes" it.
const OBSERVE_DELAY: Duration = Duration::from_millis(50);
/// Time for each replica to be replaced.
const REPLICA_STEP: Duration = Duration::from_millis(80);
/// When a faulty rollout gives up (`ProgressDeadlineExceeded`).
const FAIL_AFTER: Duration = Duration::from_millis(300);
/// Simulation tick.
const TICK: Duration = Duration::from_millis(40);

/// A node of the stand-in cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The cluster holding it (served under `/k8s/clusters/<cluster>`,
    /// like Rancher; the kubeconfig names contexts after clusters).
    pub cluster: String,
    /// Node name, e.g. `rancher-node-staging-rke2-worker1`.
    pub name: String,
    /// Its labels at start (`kubernetes.io/hostname` is added).
    pub labels: BTreeMap<String, String>,
}

/// A deployment of the stand-in cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    /// The cluster holding it.
    pub cluster: String,
    /// Namespace, e.g. `swh`.
    pub namespace: String,
    /// Name, e.g. `loader-git`.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: u32,
}

/// An Argo CD application with automated sync on a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationSpec {
    /// Application name, e.g. `archive-staging-rke2-swh`.
    pub name: String,
    /// The branch of the charts repository it tracks (`spec.source.targetRevision`).
    pub branch: String,
    /// Destination namespace: the deployments it rolls.
    pub namespace: String,
}

/// Fault knobs: which syncs produce a failing rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Revisions (full commit ids) whose rollout fails.
    pub degraded_revisions: Vec<String>,
    /// Image versions (e.g. `20250117.9`): a revision whose
    /// `values-swh-application-versions.yaml` contains one fails its rollout.
    pub degraded_versions: Vec<String>,
}

/// What the stand-in serves.
#[derive(Debug, Clone, Default)]
pub struct StandinOptions {
    /// The bare git repository the applications track (`swh-charts.git`).
    pub charts_repo: PathBuf,
    /// Bearer token of the Kubernetes API.
    pub kube_token: String,
    /// Bearer token of the Argo CD API.
    pub argocd_token: String,
    /// Nodes.
    pub nodes: Vec<NodeSpec>,
    /// Deployments.
    pub deployments: Vec<DeploymentSpec>,
    /// Argo CD applications.
    pub applications: Vec<ApplicationSpec>,
    /// Fault knobs (can be changed later with [`KubeStandin::set_faults`]).
    pub faults: Faults,
}

impl StandinOptions {
    /// The swh-deploy test bed's usual clusters: `archive-staging-rke2`
    /// with nodes `rancher-node-staging-rke2-worker[1-3]` and namespace
    /// `swh`, `archive-production-rke2` with nodes `rancher-node-metal0[1-2]`
    /// and namespace `swh-cassandra`; nodes all labelled `swh/loader=true`,
    /// `swh/lister=true`, `swh/rpc=true` except that worker3 has no label;
    /// deployments `loader-git`, `lister`, `storage` (2 replicas) in `swh`
    /// and `swh-cassandra`; applications `archive-staging-rke2-swh`
    /// (branch `staging`, namespace `swh`) and
    /// `archive-production-rke2-swh-cassandra` (branch `production`,
    /// namespace `swh-cassandra`). Tokens are random.
    pub fn swh(charts_repo: &Path) -> StandinOptions {
        const STAGING: &str = "archive-staging-rke2";
        const PRODUCTION: &str = "archive-production-rke2";
        let labelled = |cluster: &str, name: &str| NodeSpec {
            cluster: cluster.to_string(),
            name: name.to_string(),
            labels: ["swh/loader", "swh/lister", "swh/rpc"]
                .iter()
                .map(|k| (k.to_string(), "true".to_string()))
                .collect(),
        };
        let mut nodes = vec![
            labelled(STAGING, "rancher-node-staging-rke2-worker1"),
            labelled(STAGING, "rancher-node-staging-rke2-worker2"),
            NodeSpec {
                cluster: STAGING.into(),
                name: "rancher-node-staging-rke2-worker3".into(),
                labels: BTreeMap::new(),
            },
        ];
        nodes.push(labelled(PRODUCTION, "rancher-node-metal01"));
        nodes.push(labelled(PRODUCTION, "rancher-node-metal02"));
        let mut deployments = Vec::new();
        for (cluster, ns) in [(STAGING, "swh"), (PRODUCTION, "swh-cassandra")] {
            for name in ["loader-git", "lister", "storage"] {
                deployments.push(DeploymentSpec {
                    cluster: cluster.into(),
                    namespace: ns.into(),
                    name: name.into(),
                    replicas: 2,
                });
            }
        }
        StandinOptions {
            charts_repo: charts_repo.to_path_buf(),
            kube_token: random_token(),
            argocd_token: random_token(),
            nodes,
            deployments,
            applications: vec![
                ApplicationSpec {
                    name: "archive-staging-rke2-swh".into(),
                    branch: "staging".into(),
                    namespace: "swh".into(),
                },
                ApplicationSpec {
                    name: "archive-production-rke2-swh-cassandra".into(),
                    branch: "production".into(),
                    namespace: "swh-cassandra".into(),
                },
            ],
            faults: Faults::default(),
        }
    }
}

/// A random hex token (from `/dev/urandom`).
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Debug)]
struct Node {
    cluster: String,
    labels: BTreeMap<String, String>,
    rv: u64,
    uid: String,
}

#[derive(Debug)]
struct Deployment {
    cluster: String,
    replicas: u32,
    generation: u64,
    observed: u64,
    status_replicas: u32,
    updated: u32,
    available: u32,
    progressing: (&'static str, &'static str, String),
    rollout: Option<(Instant, bool)>,
    revision: String,
    rv: u64,
    uid: String,
}

#[derive(Debug)]
struct Application {
    spec: ApplicationSpec,
    sync: &'static str,
    revision: String,
    health: &'static str,
    phase: &'static str,
    message: String,
    op_revision: String,
    op_started: Instant,
    started_at: String,
    finished_at: String,
    reconciled_at: String,
}

#[derive(Debug)]
struct State {
    rv: u64,
    nodes: BTreeMap<String, Node>,
    deployments: BTreeMap<(String, String), Deployment>,
    apps: BTreeMap<String, Application>,
    faults: Faults,
    requests: Vec<String>,
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    kube_token: String,
    argocd_token: String,
    charts_repo: PathBuf,
    addr: String,
    tls_addr: String,
}

/// The running **stand-in** (see the module documentation). Stopped on drop.
pub struct KubeStandin {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Holds the CA and server key/certificate; removed on drop.
    tls_dir: PathBuf,
    ca_pem: String,
}

impl std::fmt::Debug for KubeStandin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStandin")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl KubeStandin {
    /// Starts the stand-in on a free port of 127.0.0.1. The applications
    /// start `Synced` and `Healthy` at their branch's current head.
    pub fn start(opts: StandinOptions) -> Result<KubeStandin> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let tls_listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        let tls_addr = tls_listener.local_addr()?.to_string();
        let tls_dir = std::env::temp_dir().join(format!("kube-standin-{}", random_token()));
        let (tls_config, ca_pem) = match make_tls(&tls_dir) {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tls_dir);
                return Err(e);
            }
        };
        let now = Instant::now();
        let mut state = State {
            rv: 1000,
            nodes: BTreeMap::new(),
            deployments: BTreeMap::new(),
            apps: BTreeMap::new(),
            faults: opts.faults.clone(),
            requests: Vec::new(),
        };
        for n in &opts.nodes {
            let mut labels = n.labels.clone();
            labels.insert("kubernetes.io/hostname".into(), n.name.clone());
            labels.insert("kubernetes.io/os".into(), "linux".into());
            let rv = state.next_rv();
            state.nodes.insert(
                n.name.clone(),
                Node {
                    cluster: n.cluster.clone(),
                    labels,
                    rv,
                    uid: uid(&n.name),
                },
            );
        }
        for a in &opts.applications {
            let head = branch_head(&opts.charts_repo, &a.branch)?.with_context(|| {
                format!("no branch {} in {}", a.branch, opts.charts_repo.display())
            })?;
            let ts = rfc3339_now();
            state.apps.insert(
                a.name.clone(),
                Application {
                    spec: a.clone(),
                    sync: "Synced",
                    revision: head.clone(),
                    health: "Healthy",
                    phase: "Succeeded",
                    message: "successfully synced (all tasks run)".into(),
                    op_revision: head,
                    op_started: now,
                    started_at: ts.clone(),
                    finished_at: ts.clone(),
                    reconciled_at: ts,
                },
            );
        }
        for d in &opts.deployments {
            let revision = state
                .apps
                .values()
                .find(|a| a.spec.namespace == d.namespace)
                .map(|a| a.revision.clone())
                .unwrap_or_default();
            let rv = state.next_rv();
            state.deployments.insert(
                (d.namespace.clone(), d.name.clone()),
                Deployment {
                    cluster: d.cluster.clone(),
                    replicas: d.replicas,
                    generation: 1,
                    observed: 1,
                    status_replicas: d.replicas,
                    updated: d.replicas,
                    available: d.replicas,
                    progressing: (
                        "True",
                        "NewReplicaSetAvailable",
                        format!("ReplicaSet \"{}-1\" has successfully progressed.", d.name),
                    ),
                    rollout: None,
                    revision,
                    rv,
                    uid: uid(&format!("{}/{}", d.namespace, d.name)),
                },
            );
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
            kube_token: opts.kube_token.clone(),
            argocd_token: opts.argocd_token.clone(),
            charts_repo: opts.charts_repo.clone(),
            addr,
            tls_addr,
        });
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                tick(&s);
                std::thread::sleep(TICK);
            }
        }));
        let s = shared.clone();
        threads.push(std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                std::thread::spawn(move || serve_connection(&s, conn));
            }
        }));
        let s = shared.clone();
        threads.push(std::thread::spawn(move || {
            for conn in tls_listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                let Ok(tls) = rustls::ServerConnection::new(tls_config.clone()) else {
                    continue;
                };
                let s = s.clone();
                std::thread::spawn(move || {
                    serve_connection(&s, rustls::StreamOwned::new(tls, conn))
                });
            }
        }));
        Ok(KubeStandin {
            shared,
            threads,
            tls_dir,
            ca_pem,
        })
    }

    /// Plain-HTTP base URL, `http://127.0.0.1:PORT` (both APIs; what
    /// swh-deploy's site file points `[argocd] url` at in tests).
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// HTTPS base URL, `https://127.0.0.1:PORT` (both APIs; certificate
    /// signed by [`KubeStandin::ca_pem`], valid for `127.0.0.1` and
    /// `localhost`). kubectl only sends a token over TLS, so the kubeconfig
    /// points here.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.shared.tls_addr)
    }

    /// The PEM certificate of the CA that signed the HTTPS certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The Kubernetes API bearer token.
    pub fn kube_token(&self) -> &str {
        &self.shared.kube_token
    }

    /// The Argo CD API bearer token.
    pub fn argocd_token(&self) -> &str {
        &self.shared.argocd_token
    }

    /// Replaces the fault knobs (applies to the next syncs).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state.lock().unwrap().faults = faults;
    }

    /// A node's labels now.
    pub fn node_labels(&self, node: &str) -> Option<BTreeMap<String, String>> {
        let st = self.shared.state.lock().unwrap();
        st.nodes.get(node).map(|n| n.labels.clone())
    }

    /// The requests served so far, as `METHOD PATH` (query included),
    /// without headers (tokens are never recorded).
    pub fn requests(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Writes a kubeconfig with one context per name in `contexts`, each
    /// pointing at the cluster of that name on this server
    /// (`https://127.0.0.1:PORT/k8s/clusters/<name>`, as Rancher serves
    /// its clusters), with the CA and the Kubernetes token (file mode 0600).
    pub fn write_kubeconfig(&self, path: &Path, contexts: &[&str]) -> Result<()> {
        let mut y = String::from(
            "# Written by the swh-deploy test bed: a STAND-IN Kubernetes API server.\n\
             apiVersion: v1\nkind: Config\nclusters:\n",
        );
        for c in contexts {
            y.push_str(&format!(
                "- name: {c}\n  cluster:\n    server: {}/k8s/clusters/{c}\n    certificate-authority-data: {}\n",
                self.https_url(),
                base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
            ));
        }
        y.push_str("users:\n- name: standin\n  user:\n");
        y.push_str(&format!("    token: {}\n", self.shared.kube_token));
        y.push_str("contexts:\n");
        for c in contexts {
            y.push_str(&format!(
                "- name: {c}\n  context:\n    cluster: {c}\n    user: standin\n"
            ));
        }
        if let Some(c) = contexts.first() {
            y.push_str(&format!("current-context: {c}\n"));
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(y.as_bytes())?;
        Ok(())
    }

    /// Stops the server (also done on drop).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.shared.addr);
        let _ = TcpStream::connect(&self.shared.tls_addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.tls_dir);
    }
}

impl Drop for KubeStandin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes a CA and a server certificate for 127.0.0.1/localhost in `dir`
/// with the `openssl` command; returns the rustls server configuration and
/// the CA's PEM.
fn make_tls(dir: &Path) -> Result<(Arc<rustls::ServerConfig>, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "7",
                "-subj",
                "/CN=swh-deploy test bed kube-standin CA",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "7",
            "-extfile",
            "ext.cnf",
        ],
    ];
    for args in &steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("running openssl (Debian package openssl) for the stand-in's certificate")?;
        if !out.status.success() {
            bail!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .context("server.pem")?
        .collect::<Result<Vec<_>, _>>()
        .context("server.pem")?;
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).context("server.key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS server certificate")?;
    let ca = std::fs::read_to_string(dir.join("ca.pem"))?;
    Ok((Arc::new(config), ca))
}

fn uid(seed: &str) -> String {
    let h = seed.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        (h >> 48) & 0xffff,
        h & 0xffff_ffff_ffff
    )
}

/// The commit a branch of a bare repository points to (loose ref, then
/// packed-refs), without running git.
fn branch_head(repo: &Path, branch: &str) -> Result<Option<String>> {
    let loose = repo.join("refs/heads").join(branch);
    if let Ok(s) = std::fs::read_to_string(&loose) {
        return Ok(Some(s.trim().to_string()));
    }
    let packed = match std::fs::read_to_string(repo.join("packed-refs")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("reading {}/packed-refs: {e}", repo.display()),
    };
    let want = format!("refs/heads/{branch}");
    Ok(packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == want).then(|| sha.to_string())
    }))
}

/// Whether a revision's rollout must fail under `faults`.
fn faulty(repo: &Path, faults: &Faults, revision: &str) -> bool {
    if faults.degraded_revisions.iter().any(|r| r == revision) {
        return true;
    }
    if faults.degraded_versions.is_empty() {
        return false;
    }
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args([
            "show",
            &format!("{revision}:values-swh-application-versions.yaml"),
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            faults
                .degraded_versions
                .iter()
                .any(|v| text.contains(&format!("'{v}'")) || text.contains(&format!("\"{v}\"")))
        }
        _ => false,
    }
}

/// One step of the simulated controllers (Argo CD automated sync and the
/// deployment controller).
fn tick(s: &Shared) {
    let heads: Vec<(String, Option<String>)> = {
        let st = s.state.lock().unwrap();
        st.apps
            .values()
            .map(|a| {
                let head = branch_head(&s.charts_repo, &a.spec.branch).ok().flatten();
                (a.spec.name.clone(), head)
            })
            .collect()
    };
    let now = Instant::now();
    // Decide faults outside the lock (git show).
    let mut to_finish = Vec::new();
    {
        let mut st = s.state.lock().unwrap();
        for (name, head) in &heads {
            let Some(head) = head else { continue };
            let a = st.apps.get_mut(name).unwrap();
            if a.phase != "Running" && *head != a.revision && *head != a.op_revision {
                a.sync = "OutOfSync";
                a.phase = "Running";
                a.health = "Progressing";
                a.message = "one or more tasks are running".into();
                a.op_revision = head.clone();
                a.op_started = now;
                a.started_at = rfc3339_now();
                a.reconciled_at = a.started_at.clone();
            } else if a.phase == "Running" && now.duration_since(a.op_started) >= SYNC_DURATION {
                to_finish.push((name.clone(), a.op_revision.clone()));
            }
        }
    }
    let faults = s.state.lock().unwrap().faults.clone();
    let finished: Vec<(String, String, bool)> = to_finish
        .into_iter()
        .map(|(n, r)| {
            let f = faulty(&s.charts_repo, &faults, &r);
            (n, r, f)
        })
        .collect();
    let mut st = s.state.lock().unwrap();
    for (name, rev, fail) in finished {
        let ns = {
            let a = st.apps.get_mut(&name).unwrap();
            a.phase = "Succeeded";
            a.sync = "Synced";
            a.revision = rev.clone();
            a.message = "successfully synced (all tasks run)".into();
            a.finished_at = rfc3339_now();
            a.reconciled_at = a.finished_at.clone();
            a.spec.namespace.clone()
        };
        let keys: Vec<_> = st
            .deployments
            .keys()
            .filter(|(n, _)| *n == ns)
            .cloned()
            .collect();
        for k in keys {
            let rv = st.next_rv();
            let d = st.deployments.get_mut(&k).unwrap();
            d.generation += 1;
            d.rollout = Some((now, fail));
            d.revision = rev.clone();
            d.rv = rv;
        }
    }
    // Deployment controller.
    let keys: Vec<_> = st.deployments.keys().cloned().collect();
    for k in keys {
        let before = format!("{:?}", st.deployments[&k]);
        {
            let d = st.deployments.get_mut(&k).unwrap();
            if let Some((start, fail)) = d.rollout {
                let el = now.duration_since(start);
                if el >= OBSERVE_DELAY {
                    d.observed = d.generation;
                }
                let rs = format!("{}-{}", k.1, &d.revision[..d.revision.len().min(10)]);
                if fail {
                    d.status_replicas = d.replicas + 1;
                    d.updated = 1;
                    d.available = d.replicas;
                    if el >= FAIL_AFTER {
                        d.progressing = (
                            "False",
                            "ProgressDeadlineExceeded",
                            format!("ReplicaSet \"{rs}\" has timed out progressing."),
                        );
                        d.rollout = None;
                    } else {
                        d.progressing = (
                            "True",
                            "ReplicaSetUpdated",
                            format!("ReplicaSet \"{rs}\" is progressing."),
                        );
                    }
                } else {
                    let steps = (el.as_millis() / REPLICA_STEP.as_millis()) as u32;
                    let updated = steps.min(d.replicas);
                    d.updated = updated;
                    if updated < d.replicas {
                        d.status_replicas = d.replicas + 1;
                        d.available = d.replicas;
                        d.progressing = (
                            "True",
                            "ReplicaSetUpdated",
                            format!("ReplicaSet \"{rs}\" is progressing."),
                        );
                    } else {
                        d.status_replicas = d.replicas;
                        d.available = d.replicas;
                        d.progressing = (
                            "True",
                            "NewReplicaSetAvailable",
                            format!("ReplicaSet \"{rs}\" has successfully progressed."),
                        );
                        if d.observed == d.generation {
                            d.rollout = None;
                        }
                    }
                }
            }
        }
        if format!("{:?}", st.deployments[&k]) != before {
            let rv = st.next_rv();
            st.deployments.get_mut(&k).unwrap().rv = rv;
        }
    }
    // Application health from its deployments.
    let names: Vec<String> = st.apps.keys().cloned().collect();
    for name in names {
        let ns = st.apps[&name].spec.namespace.clone();
        if st.apps[&name].phase == "Running" {
            continue;
        }
        let mut health = "Healthy";
        for ((n, _), d) in &st.deployments {
            if *n != ns {
                continue;
            }
            if d.progressing.1 == "ProgressDeadlineExceeded" {
                health = "Degraded";
                break;
            }
            if d.rollout.is_some() || d.observed < d.generation {
                health = "Progressing";
            }
        }
        st.apps.get_mut(&name).unwrap().health = health;
    }
}

fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------
// JSON shapes

fn node_json(name: &str, n: &Node) -> Value {
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": n.uid,
            "resourceVersion": n.rv.to_string(),
            "creationTimestamp": "2025-01-17T14:00:00Z",
            "labels": n.labels,
        },
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "nodeInfo": {"kubeletVersion": "v1.30.4+rke2r1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "architecture": "amd64", "operatingSystem": "linux"},
        },
    })
}

fn deployment_json(ns: &str, name: &str, d: &Deployment) -> Value {
    let mut status = json!({
        "observedGeneration": d.observed,
        "replicas": d.status_replicas,
        "updatedReplicas": d.updated,
        "readyReplicas": d.available,
        "availableReplicas": d.available,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.",
             "lastUpdateTime": "2025-01-17T14:00:00Z", "lastTransitionTime": "2025-01-17T14:00:00Z"},
            {"type": "Progressing", "status": d.progressing.0, "reason": d.progressing.1,
             "message": d.progressing.2,
             "lastUpdateTime": "2025-01-17T14:00:00Z", "lastTransitionTime": "2025-01-17T14:00:00Z"},
        ],
    });
    if d.status_replicas > d.available {
        status["unavailableReplicas"] = json!(d.status_replicas - d.available);
    }
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": d.uid,
            "resourceVersion": d.rv.to_string(),
            "generation": d.generation,
            "creationTimestamp": "2025-01-17T14:00:00Z",
            "labels": {"app": name},
            "annotations": {"deployment.kubernetes.io/revision": d.generation.to_string(),
                            "swh-deploy.test/chart-revision": d.revision},
        },
        "spec": {
            "replicas": d.replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": format!("container-registry.softwareheritage.org/swh/infra/swh-apps/{}:latest", name.replace('-', "_"))}]},
            },
        },
        "status": status,
    })
}

fn application_json(a: &Application) -> Value {
    json!({
        "metadata": {"name": a.spec.name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://gitlab.softwareheritage.org/swh/infra/ci-cd/swh-charts.git",
                       "path": "swh", "targetRevision": a.spec.branch},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": a.spec.namespace},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
        },
        "status": {
            "sync": {"status": a.sync, "revision": a.revision,
                     "comparedTo": {"source": {"targetRevision": a.spec.branch, "path": "swh"}}},
            "health": {"status": a.health},
            "operationState": {
                "operation": {"sync": {"revision": a.op_revision}},
                "phase": a.phase,
                "message": a.message,
                "startedAt": a.started_at,
                "finishedAt": if a.phase == "Running" { Value::Null } else { json!(a.finished_at) },
                "syncResult": {"revision": a.op_revision},
            },
            "reconciledAt": a.reconciled_at,
        },
    })
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

// ---------------------------------------------------------------------------
// HTTP

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request<S: Read>(r: &mut BufReader<S>, stop: &AtomicBool) -> Option<Request> {
    let mut line = String::new();
    loop {
        match r.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => break,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if stop.load(Ordering::SeqCst) {
                    return None;
                }
                if !line.is_empty() {
                    continue;
                }
            }
            Err(_) => return None,
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect();
    Some(Request {
        method,
        path: path.to_string(),
        query,
        headers,
        body,
    })
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(w: &mut impl Write, code: u16, body: &Value) -> std::io::Result<()> {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        _ => "Error",
    };
    write!(
        w,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )?;
    w.flush()
}

fn serve_connection<S: Read + Write>(s: &Shared, conn: S) {
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r, &s.stop) {
        let w = r.get_mut();
        {
            let mut st = s.state.lock().unwrap();
            let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            st.requests.push(if q.is_empty() {
                format!("{} {}", req.method, req.path)
            } else {
                format!("{} {}?{}", req.method, req.path, q.join("&"))
            });
        }
        if req.query.get("watch").map(|v| v == "true" || v == "1") == Some(true) {
            if authorized(s, &req, &s.kube_token) {
                serve_watch(s, w, &req);
            } else {
                let _ = respond(w, 401, &status_json(401, "Unauthorized", "Unauthorized"));
            }
            return;
        }
        let (code, body) = handle(s, &req);
        if respond(w, code, &body).is_err() {
            return;
        }
    }
}

fn authorized(_s: &Shared, req: &Request, token: &str) -> bool {
    req.headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| !token.is_empty() && t.trim() == token)
        .unwrap_or(false)
}

/// Splits a Rancher-style `/k8s/clusters/<cluster>` prefix off a path.
fn split_cluster(path: &str) -> (Option<&str>, Vec<&str>) {
    let all: Vec<&str> = path.trim_matches('/').split('/').collect();
    match all.as_slice() {
        ["k8s", "clusters", c, rest @ ..] => (Some(*c), rest.to_vec()),
        _ => (None, all),
    }
}

fn handle(s: &Shared, req: &Request) -> (u16, Value) {
    let (cluster, segs) = split_cluster(&req.path);
    let in_cluster = |c: &str| cluster.is_none_or(|want| want == c);
    // Argo CD.
    if segs.len() >= 3 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "applications" {
        if !authorized(s, req, &s.argocd_token) {
            return (
                401,
                json!({"error": "invalid session: token is invalid", "code": 16,
                       "message": "invalid session: token is invalid"}),
            );
        }
        let st = s.state.lock().unwrap();
        return match (req.method.as_str(), segs.get(3)) {
            ("GET", Some(name)) => match st.apps.get(*name) {
                Some(a) => (200, application_json(a)),
                None => (
                    404,
                    json!({"error": format!("applications.argoproj.io \"{name}\" not found"), "code": 5,
                           "message": format!("applications.argoproj.io \"{name}\" not found")}),
                ),
            },
            ("GET", None) => (
                200,
                json!({"metadata": {}, "items": st.apps.values().map(application_json).collect::<Vec<_>>()}),
            ),
            _ => (405, json!({"error": "method not allowed", "code": 12})),
        };
    }
    // Like a real API server (RBAC role system:public-info-viewer),
    // `/version` and the health endpoints answer anonymous clients; the
    // gcloud kubectl dispatcher asks `/version` before anything else.
    let public = matches!(
        segs.as_slice(),
        ["version"] | ["healthz"] | ["livez"] | ["readyz"]
    );
    if !public && !authorized(s, req, &s.kube_token) {
        return (401, status_json(401, "Unauthorized", "Unauthorized"));
    }
    let host = s.addr.clone();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["version"]) => (
            200,
            json!({"major": "1", "minor": "30", "gitVersion": "v1.30.4+standin",
                   "platform": "linux/amd64", "goVersion": "go1.22.5", "compiler": "gc"}),
        ),
        ("GET", ["healthz"] | ["livez"] | ["readyz"]) => (200, json!("ok")),
        ("GET", ["api"]) => (
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}),
        ),
        ("GET", ["apis"]) => (
            200,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}),
        ),
        ("GET", ["api", "v1"]) => (
            200,
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node",
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["no"]},
                {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
                 "verbs": ["get", "list"], "shortNames": ["ns"]}]}),
        ),
        ("GET", ["apis", "apps", "v1"]) => (
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                 "shortNames": ["deploy"], "categories": ["all"]}]}),
        ),
        ("GET", ["api", "v1", "nodes"]) => {
            let st = s.state.lock().unwrap();
            let items: Vec<Value> = st
                .nodes
                .iter()
                .filter(|(_, x)| in_cluster(&x.cluster))
                .map(|(n, x)| node_json(n, x))
                .collect();
            (
                200,
                json!({"kind": "NodeList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
            )
        }
        ("GET", ["api", "v1", "nodes", name]) => {
            let st = s.state.lock().unwrap();
            match st.nodes.get(*name).filter(|n| in_cluster(&n.cluster)) {
                Some(n) => (200, node_json(name, n)),
                None => not_found("nodes", "", name),
            }
        }
        ("PATCH", ["api", "v1", "nodes", name]) => patch_node(s, req, cluster, name),
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments"]) => {
            let st = s.state.lock().unwrap();
            let only = field_selector_name(req);
            let items: Vec<Value> = st
                .deployments
                .iter()
                .filter(|((n, d), x)| {
                    n == ns && in_cluster(&x.cluster) && only.as_deref().is_none_or(|o| o == d)
                })
                .map(|((n, d), x)| deployment_json(n, d, x))
                .collect();
            (
                200,
                json!({"kind": "DeploymentList", "apiVersion": "apps/v1",
                       "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
            )
        }
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => {
            let st = s.state.lock().unwrap();
            match st
                .deployments
                .get(&(ns.to_string(), name.to_string()))
                .filter(|d| in_cluster(&d.cluster))
            {
                Some(d) => (200, deployment_json(ns, name, d)),
                None => not_found("deployments", "apps", name),
            }
        }
        _ => (
            404,
            status_json(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ),
    }
}

fn not_found(kind: &str, group: &str, name: &str) -> (u16, Value) {
    let what = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut v = status_json(404, "NotFound", &format!("{what} \"{name}\" not found"));
    v["details"] = json!({"name": name, "kind": kind, "group": group});
    (404, v)
}

fn field_selector_name(req: &Request) -> Option<String> {
    req.query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(String::from)
}

fn patch_node(s: &Shared, req: &Request, cluster: Option<&str>, name: &str) -> (u16, Value) {
    let ct = req
        .headers
        .get("content-type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    if ct != "application/merge-patch+json" && ct != "application/strategic-merge-patch+json" {
        return (
            415,
            status_json(
                415,
                "UnsupportedMediaType",
                &format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?}) [stand-in]"),
            ),
        );
    }
    let patch: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return (
                400,
                status_json(400, "BadRequest", &format!("invalid JSON: {e}")),
            )
        }
    };
    let mut st = s.state.lock().unwrap();
    if st
        .nodes
        .get(name)
        .is_none_or(|n| cluster.is_some_and(|c| c != n.cluster))
    {
        return not_found("nodes", "", name);
    }
    let rv = st.next_rv();
    let n = st.nodes.get_mut(name).unwrap();
    if let Some(labels) = patch
        .pointer("/metadata/labels")
        .and_then(|l| l.as_object())
    {
        for (k, v) in labels {
            match v {
                Value::Null => {
                    n.labels.remove(k);
                }
                Value::String(v) => {
                    n.labels.insert(k.clone(), v.clone());
                }
                other => {
                    return (
                        400,
                        status_json(
                            400,
                            "BadRequest",
                            &format!("label {k}: not a string: {other}"),
                        ),
                    )
                }
            }
        }
    }
    n.rv = rv;
    (200, node_json(name, n))
}

/// A watch on deployments: `ADDED`/`MODIFIED` events, one JSON object per
/// line, until the object's state settles or `timeoutSeconds` (at most 60 s).
fn serve_watch(s: &Shared, w: &mut impl Write, req: &Request) {
    let (cluster, segs) = split_cluster(&req.path);
    let cluster = cluster.map(String::from);
    let ns = match segs.as_slice() {
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] => ns.to_string(),
        _ => {
            let _ = respond(
                w,
                404,
                &status_json(404, "NotFound", "watch: not supported by the stand-in"),
            );
            return;
        }
    };
    let only = field_selector_name(req);
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(60)
        .min(60);
    let since: u64 = req
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .is_err()
    {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < deadline && !s.stop.load(Ordering::SeqCst) {
        let events: Vec<String> = {
            let st = s.state.lock().unwrap();
            st.deployments
                .iter()
                .filter(|((n, d), x)| {
                    *n == ns
                        && cluster.as_deref().is_none_or(|c| c == x.cluster)
                        && only.as_deref().is_none_or(|o| o == d)
                })
                .filter(|((_, d), x)| x.rv > since && sent.get(d.as_str()) != Some(&x.rv))
                .map(|((n, d), x)| {
                    (
                        d.clone(),
                        x.rv,
                        json!({"type": "MODIFIED", "object": deployment_json(n, d, x)}).to_string(),
                    )
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(d, rv, e)| {
                    sent.insert(d, rv);
                    e
                })
                .collect()
        };
        for e in events {
            let line = format!("{e}\n");
            if write!(w, "{:x}\r\n{line}\r\n", line.len()).is_err() || w.flush().is_err() {
                return;
            }
        }
        std::thread::sleep(TICK);
    }
    let _ = write!(w, "0\r\n\r\n");
    let _ = w.flush();
}

/// Blocks until SIGINT or SIGTERM arrives (both blocked, then `sigwait`).
pub fn wait_for_signal() {
    // SAFETY: plain libc calls on a local, initialised signal set; no
    // handler is installed, the signals are only blocked and then waited for.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}

/// Pushes one commit to `branch` of a swh-charts remote (`url`) setting
/// `<key>_image_version: '<version>'` in `values-swh-application-versions.yaml`
/// (e.g. key `swh_loader_git`), as a release would; returns the new commit.
/// Works in a fresh clone under `scratch`. For tests that make the stand-in's
/// Argo CD applications sync.
pub fn push_chart_version(
    url: &str,
    scratch: &Path,
    branch: &str,
    key: &str,
    version: &str,
) -> Result<String> {
    std::fs::create_dir_all(scratch)?;
    let clone = scratch.join(format!("push-{branch}-{}", random_token()));
    let git = |dir: &Path, args: &[&str]| -> Result<String> {
        let o = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args([
                "-c",
                "user.name=swh-deploy test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .output()
            .context("running git")?;
        if !o.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let c = clone.to_string_lossy().into_owned();
    git(scratch, &["clone", "-q", "-b", branch, url, &c])?;
    let f = clone.join("values-swh-application-versions.yaml");
    let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
    let prefix = format!("{key}_image_version:");
    if !text.lines().any(|l| l.starts_with(&prefix)) {
        bail!("{}: no {prefix} line", f.display());
    }
    let new: String = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix} '{version}'\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&f, new)?;
    git(&clone, &["commit", "-qam", &format!("{key} {version}")])?;
    git(&clone, &["push", "-q", "origin", branch])?;
    let head = git(&clone, &["rev-parse", "HEAD"])?;
    let _ = std::fs::remove_dir_all(&clone);
    Ok(head)
}
