//! **STAND-IN** for a Kubernetes API server and an Argo CD API server.
//!
//! No Kubernetes API server can run on the test machine, so this module
//! serves, on `127.0.0.1`, the real JSON shapes of the endpoints swh-deploy
//! and kubectl use (checked with the real kubectl in
//! `testbed/tests/kube_standin.rs`). It is **not** Kubernetes: there are no
//! pods, no scheduler, no admission, no real controllers. What it simulates:
//!
//! * discovery: `GET /api`, `/api/v1`, `/apis`, `/apis/apps/v1`,
//!   `/apis/argoproj.io/v1alpha1` (Argo CD's `Application` CRD), `/version`;
//!   namespaces (`GET /api/v1/namespaces[/{name}]`, which kubectl asks after
//!   a NotFound);
//! * nodes: `GET /api/v1/nodes[/{name}]` with `labelSelector` (`k=v`, `k==v`,
//!   `k!=v`, `k`, `!k`, `k in (..)`, `k notin (..)`) and `fieldSelector=
//!   metadata.name=X`; `PATCH /api/v1/nodes/{name}` with a JSON merge patch
//!   (RFC 7386, `kubectl label` and `patch --type merge`), a strategic merge
//!   patch (kubectl's default: maps merge, `spec.taints` merge by `key`,
//!   `$patch: replace|delete`) or a JSON patch (RFC 6902, `--type json`);
//!   labels, annotations and `spec` are kept; a stale `resourceVersion` is a
//!   409 Conflict, a non-string label a 422 naming the field, a no-op patch
//!   keeps the `resourceVersion`;
//! * deployments: `GET /apis/apps/v1[/namespaces/{ns}]/deployments[/{name}]`
//!   with the same selectors;
//! * Argo CD `Application` objects as the Kubernetes API serves them:
//!   `GET /apis/argoproj.io/v1alpha1[/namespaces/argocd]/applications[/{name}]`
//!   (`kubectl get applications.argoproj.io`, short names `app`, `apps`);
//! * watches (`?watch=true`) on nodes, deployments and applications, as
//!   `kubectl get --watch` and `kubectl rollout status` read them: `ADDED`
//!   for each object without a `resourceVersion`, then `MODIFIED` on each
//!   change, `ADDED`/`DELETED` when an object enters or leaves the label
//!   selector; at most 60 s (`timeoutSeconds`);
//! * Argo CD's API: `GET /api/v1/applications/{name}[?refresh=hard]` with
//!   `status.sync`, `status.health`, `status.operationState`;
//! * pods: `GET /api/v1[/namespaces/{ns}]/pods[/{name}]` with the same
//!   selectors (the toolbox pods, `app=swh-toolbox`, always `Running`);
//! * exec in a pod over the Kubernetes **WebSocket** exec protocol only
//!   (`GET .../pods/{name}/exec?command=..&stdout=true&stderr=true`,
//!   subprotocol `v4.channel.k8s.io` or `v5.channel.k8s.io`: channel 1 stdout, 2 stderr, 3 the
//!   `Status` with the exit code in `details.causes[reason=ExitCode]`), not
//!   SPDY (so Debian's kubectl 1.20, which execs over SPDY, cannot use it).
//!   No container runs: the only commands are SWH's database scripts,
//!   simulated: `check-<svc>-db-version.sh` exits 2 while `<svc>` is in
//!   [`Faults::pending_migrations`], else 0; `migrate-<svc>-db-version.sh`
//!   prints its progress and clears it, or fails (exit 1, error on stderr)
//!   while `<svc>` is in [`Faults::failing_migrations`]. Any other command
//!   is refused as the API server does for a missing executable.
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
//! application is then `Degraded`); worker groups turned off in the
//! revision's `swh/values/default.yaml` or `swh/values/<branch>/default.yaml`
//! (`<group>.enabled: false`, or `<group>.deployments.<entry>.enabled:
//! false` for the deployment `<group minus s>-<entry>`, e.g. `loader-git`)
//! are scaled to 0 replicas by the sync (real Argo CD, pruning, deletes
//! them), and back when turned on again; as in swh-charts' templates, a
//! group the values mention without `<group>.enabled: true` is off; a held image version keeps the rollout
//! half-way (`Progressing`, one replica updated) until it is released; an
//! application in [`Faults::unsynced_applications`] is not synced (automated
//! sync off, as when Argo CD is stuck): its deployments keep their images.
//!
//! A deployment's container image is the one its application's revision
//! sets (as swh-charts' templates do): `<key>_image:<key>_image_version`
//! from `values-swh-application-versions.yaml`, where `<key>` is `swh_` and
//! the deployment name with `-` -> `_` (`loader-git` -> `swh_loader_git`);
//! `<key>_image` defaults to SWH's registry path
//! (`container-registry.softwareheritage.org/swh/infra/swh-apps/loader_git`),
//! the version to `latest` when the file has no such key.
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
/// The namespace holding Argo CD's `Application` objects.
pub const ARGOCD_NAMESPACE: &str = "argocd";

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

/// A pod of the stand-in cluster (always `Running`; nothing runs in it
/// but the simulated database scripts, see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    /// The cluster holding it.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Name, e.g. `swh-toolbox-7d9c6b5f4-x2x9q`.
    pub name: String,
    /// Its labels, e.g. `app=swh-toolbox`.
    pub labels: BTreeMap<String, String>,
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
    /// Image versions whose rollout is held half-way while they are listed
    /// here: one replica is updated, then the deployment stays
    /// `Progressing` (`ReplicaSetUpdated`) until the version is removed from
    /// this list (with [`KubeStandin::set_faults`]); then it completes.
    pub held_versions: Vec<String>,
    /// Services (`storage`...) whose database needs a migration:
    /// `check-<svc>-db-version.sh` exits 2 until
    /// `migrate-<svc>-db-version.sh` succeeds (which removes it).
    pub pending_migrations: Vec<String>,
    /// Services whose `migrate-<svc>-db-version.sh` fails (exit 1).
    pub failing_migrations: Vec<String>,
    /// Applications whose automated sync is off: they stay at their
    /// revision (`OutOfSync` once the branch moves) and their deployments
    /// keep their images, until removed from this list.
    pub unsynced_applications: Vec<String>,
}

/// An Argo CD `ApplicationSet` with a `pullRequest` generator (GitLab),
/// as SWH's `swh-cassandra-next-version`: while a merge request of
/// `branch` is open in the project, an Application named after
/// `name_template` (`{branch}` and `{number}` replaced by the source branch
/// and the merge request's iid) tracks that branch with automated sync;
/// it is deleted once the merge request is no longer open. The merge
/// requests are read, every `requeue`, from a GitLab API (`GET
/// /api/v4/projects/:id/merge_requests?state=opened`; the test bed's
/// [`crate::gitlab::GitlabStandin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestGenerator {
    /// The GitLab API's address (`127.0.0.1:PORT`).
    pub api: std::net::SocketAddr,
    /// The project id (`'77'` for swh-charts).
    pub project: String,
    /// The source branch the generator keeps (`filters: branchMatch`,
    /// here an exact name).
    pub branch: String,
    /// The generated Application's name, e.g. `swh-{branch}-{number}`.
    pub name_template: String,
    /// The generated Application's destination namespace.
    pub namespace: String,
    /// How often the merge requests are read (`requeueAfterSeconds`).
    pub requeue: Duration,
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
    /// Pods.
    pub pods: Vec<PodSpec>,
    /// Argo CD applications.
    pub applications: Vec<ApplicationSpec>,
    /// Fault knobs (can be changed later with [`KubeStandin::set_faults`]).
    pub faults: Faults,
    /// ApplicationSets with a pull-request generator.
    pub pull_request_generators: Vec<PullRequestGenerator>,
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
    /// namespace `swh-cassandra`); a toolbox pod (`app=swh-toolbox`) in
    /// each of both namespaces. Tokens are random.
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
        let pods = [
            (STAGING, "swh", "swh-toolbox-7d9c6b5f4-x2x9q"),
            (PRODUCTION, "swh-cassandra", "swh-toolbox-5c8f7d6b9-k4m2p"),
        ]
        .iter()
        .map(|(cluster, ns, name)| PodSpec {
            cluster: cluster.to_string(),
            namespace: ns.to_string(),
            name: name.to_string(),
            labels: [("app".to_string(), "swh-toolbox".to_string())].into(),
        })
        .collect();
        StandinOptions {
            pods,
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
            pull_request_generators: Vec::new(),
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
    annotations: BTreeMap<String, String>,
    /// `spec` as last patched (`{}` at start; e.g. `unschedulable`, `taints`).
    spec: Value,
    rv: u64,
    uid: String,
}

#[derive(Debug)]
struct Deployment {
    cluster: String,
    replicas: u32,
    /// `spec.replicas` while its worker group is enabled.
    enabled_replicas: u32,
    generation: u64,
    observed: u64,
    status_replicas: u32,
    updated: u32,
    available: u32,
    progressing: (&'static str, &'static str, String),
    rollout: Option<(Instant, bool)>,
    /// Image versions of the revision being rolled out that are in
    /// [`Faults::held_versions`] at sync time (the rollout waits while one
    /// of them is still held).
    held: Vec<String>,
    revision: String,
    /// The container image (`registry/path/name:version`) the revision sets.
    image: String,
    rv: u64,
    uid: String,
}

#[derive(Debug)]
struct Pod {
    cluster: String,
    labels: BTreeMap<String, String>,
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
    rv: u64,
    uid: String,
    /// What its `resourceVersion` was last bumped for.
    print: String,
}

#[derive(Debug)]
struct State {
    rv: u64,
    nodes: BTreeMap<String, Node>,
    deployments: BTreeMap<(String, String), Deployment>,
    pods: BTreeMap<(String, String), Pod>,
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
    generators: Vec<PullRequestGenerator>,
    /// Per generator: when it last read the merge requests, and the
    /// Applications it made.
    generated: Mutex<Vec<(Option<Instant>, Vec<String>)>>,
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
        let (tls_config, ca_pem) = match crate::tls::server_tls(&tls_dir, "kube-standin") {
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
            pods: BTreeMap::new(),
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
                    annotations: BTreeMap::new(),
                    spec: json!({}),
                    rv,
                    uid: uid(&n.name),
                },
            );
        }
        for p in &opts.pods {
            let rv = state.next_rv();
            state.pods.insert(
                (p.namespace.clone(), p.name.clone()),
                Pod {
                    cluster: p.cluster.clone(),
                    labels: p.labels.clone(),
                    rv,
                    uid: uid(&format!("pod/{}/{}", p.namespace, p.name)),
                },
            );
        }
        for a in &opts.applications {
            let head = branch_head(&opts.charts_repo, &a.branch)?.with_context(|| {
                format!("no branch {} in {}", a.branch, opts.charts_repo.display())
            })?;
            let ts = rfc3339_now();
            let rv = state.next_rv();
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
                    rv,
                    uid: uid(&format!("argocd/{}", a.name)),
                    print: String::new(),
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
            let image = image_of(&chart_versions(&opts.charts_repo, &revision), &d.name);
            let rv = state.next_rv();
            state.deployments.insert(
                (d.namespace.clone(), d.name.clone()),
                Deployment {
                    cluster: d.cluster.clone(),
                    replicas: d.replicas,
                    enabled_replicas: d.replicas,
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
                    held: Vec::new(),
                    revision,
                    image,
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
            generators: opts.pull_request_generators.clone(),
            generated: Mutex::new(vec![(None, Vec::new()); opts.pull_request_generators.len()]),
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
                // One answer is one write: no Nagle delay before the next request.
                let _ = conn.set_nodelay(true);
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
                // One answer is one write: no Nagle delay before the next request.
                let _ = conn.set_nodelay(true);
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

    /// The fault knobs now (e.g. whether a migration is still pending).
    pub fn faults(&self) -> Faults {
        self.shared.state.lock().unwrap().faults.clone()
    }

    /// Deletes a pod (as `kubectl delete pod`, at once); whether it was
    /// there.
    pub fn remove_pod(&self, namespace: &str, name: &str) -> bool {
        let mut st = self.shared.state.lock().unwrap();
        st.pods
            .remove(&(namespace.to_string(), name.to_string()))
            .is_some()
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
    faults.degraded_revisions.iter().any(|r| r == revision)
        || !versions_in(repo, revision, &faults.degraded_versions).is_empty()
}

/// The revision's `values-swh-application-versions.yaml` (empty when it
/// has none).
fn chart_versions(repo: &Path, revision: &str) -> String {
    if revision.is_empty() {
        return String::new();
    }
    match Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args([
            "show",
            &format!("{revision}:values-swh-application-versions.yaml"),
        ])
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => String::new(),
    }
}

/// The image a deployment runs under the versions file `versions`
/// (`<key>_image:<key>_image_version`, see the module documentation).
fn image_of(versions: &str, deployment: &str) -> String {
    let key = format!("swh_{}", deployment.replace('-', "_"));
    let value = |suffix: &str| {
        let prefix = format!("{key}{suffix}:");
        versions.lines().find_map(|l| {
            let v = l.strip_prefix(&prefix)?.trim();
            let v = v.trim_matches(|c| c == '\'' || c == '"');
            (!v.is_empty()).then(|| v.to_string())
        })
    };
    let repo = value("_image").unwrap_or_else(|| {
        format!(
            "container-registry.softwareheritage.org/swh/infra/swh-apps/{}",
            deployment.replace('-', "_")
        )
    });
    let version = value("_image_version").unwrap_or_else(|| "latest".into());
    format!("{repo}:{version}")
}

/// Which of `versions` the revision's `values-swh-application-versions.yaml`
/// holds (as quoted YAML scalars).
fn versions_in(repo: &Path, revision: &str, versions: &[String]) -> Vec<String> {
    if versions.is_empty() {
        return Vec::new();
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
            versions
                .iter()
                .filter(|v| text.contains(&format!("'{v}'")) || text.contains(&format!("\"{v}\"")))
                .cloned()
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The values files of an application, parsed (the chart's
/// `swh/values.yaml`, `swh/values/default.yaml`, then
/// `swh/values/<branch>/default.yaml`; absent ones skipped).
type Values = Vec<yaml_rust2::Yaml>;

fn env_values(repo: &Path, revision: &str, branch: &str) -> Values {
    [
        "swh/values.yaml".to_string(),
        "swh/values/default.yaml".to_string(),
        format!("swh/values/{branch}/default.yaml"),
    ]
    .iter()
    .filter_map(|f| {
        let o = Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(["show", &format!("{revision}:{f}")])
            .output()
            .ok()?;
        if !o.status.success() {
            return None;
        }
        yaml_rust2::YamlLoader::load_from_str(&String::from_utf8_lossy(&o.stdout))
            .ok()?
            .into_iter()
            .next()
    })
    .collect()
}

/// Whether swh-charts' templates would render the deployment `name`
/// (`loader-git`: group `loaders`, entry `git`; `lister`: group
/// `listers`). As the real templates (`{{ if .Values.loaders.enabled }}`,
/// then each `deployments` entry unless it has `enabled: false`): a group
/// the values mention is rendered only when the merged `<group>.enabled`
/// is true (absent means off), and an entry unless the last file that says
/// so has `<group>.deployments.<entry>.enabled: false`. A deployment whose
/// group no values file mentions (the test bed's `storage`) stays.
fn deployment_enabled(values: &Values, name: &str) -> bool {
    let (prefix, entry) = name.split_once('-').unwrap_or((name, ""));
    let group = format!("{prefix}s");
    let mentioned = values
        .iter()
        .any(|v| !v[group.as_str()].is_badvalue() && !v[group.as_str()].is_null());
    if !mentioned {
        return true;
    }
    let mut enabled = false;
    for v in values {
        let g = &v[group.as_str()];
        if let Some(b) = g["enabled"].as_bool() {
            enabled = b;
        }
        if !entry.is_empty() {
            if let Some(false) = g["deployments"][entry]["enabled"].as_bool() {
                enabled = false;
            }
        }
    }
    enabled
}

/// One step of the simulated controllers (Argo CD automated sync and the
/// deployment controller).
/// Runs the pull-request generators that are due: creates the
/// Applications of newly opened merge requests (`OutOfSync`, so that the
/// next ticks sync them to their branch's head) and deletes those whose
/// merge request is no longer open. A failed read of the API keeps the
/// Applications as they are (as Argo CD does).
fn generate(s: &Shared) {
    for (i, g) in s.generators.iter().enumerate() {
        let due = {
            let gen = s.generated.lock().unwrap();
            gen[i].0.is_none_or(|t| t.elapsed() >= g.requeue)
        };
        if !due {
            continue;
        }
        let path = format!("/api/v4/projects/{}/merge_requests?state=opened", g.project);
        let wanted: Option<Vec<(String, String)>> =
            crate::components::http_get(g.api, &path, Duration::from_secs(2))
                .ok()
                .filter(|r| r.status == 200)
                .and_then(|r| serde_json::from_str::<Value>(&r.text()).ok())
                .and_then(|v| v.as_array().cloned())
                .map(|mrs| {
                    mrs.iter()
                        .filter(|m| m["source_branch"] == g.branch.as_str())
                        .filter_map(|m| {
                            let n = m["iid"].as_u64()?;
                            let name = g
                                .name_template
                                .replace("{branch}", &g.branch)
                                .replace("{number}", &n.to_string());
                            Some((name, g.branch.clone()))
                        })
                        .collect()
                });
        let mut gen = s.generated.lock().unwrap();
        gen[i].0 = Some(Instant::now());
        let Some(wanted) = wanted else { continue };
        let mut st = s.state.lock().unwrap();
        for old in gen[i].1.clone() {
            if !wanted.iter().any(|(n, _)| *n == old) {
                st.apps.remove(&old);
                gen[i].1.retain(|n| *n != old);
            }
        }
        for (name, branch) in wanted {
            if st.apps.contains_key(&name) {
                continue;
            }
            let ts = rfc3339_now();
            let rv = st.next_rv();
            st.apps.insert(
                name.clone(),
                Application {
                    spec: ApplicationSpec {
                        name: name.clone(),
                        branch,
                        namespace: g.namespace.clone(),
                    },
                    sync: "OutOfSync",
                    revision: String::new(),
                    health: "Missing",
                    phase: "",
                    message: String::new(),
                    op_revision: String::new(),
                    op_started: Instant::now(),
                    started_at: String::new(),
                    finished_at: String::new(),
                    reconciled_at: ts,
                    rv,
                    uid: uid(&format!("argocd/{name}")),
                    print: String::new(),
                },
            );
            gen[i].1.push(name);
        }
    }
}

fn tick(s: &Shared) {
    generate(s);
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
            let unsynced = st.faults.unsynced_applications.contains(name);
            let a = st.apps.get_mut(name).unwrap();
            if a.phase != "Running" && *head != a.revision && *head != a.op_revision {
                if unsynced {
                    a.sync = "OutOfSync";
                    continue;
                }
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
    let branches: BTreeMap<String, String> = {
        let st = s.state.lock().unwrap();
        st.apps
            .iter()
            .map(|(n, a)| (n.clone(), a.spec.branch.clone()))
            .collect()
    };
    type Finished = (String, String, bool, Vec<String>, Values, String);
    let finished: Vec<Finished> = to_finish
        .into_iter()
        .map(|(n, r)| {
            let f = faulty(&s.charts_repo, &faults, &r);
            let held = versions_in(&s.charts_repo, &r, &faults.held_versions);
            let values = env_values(&s.charts_repo, &r, &branches[&n]);
            let versions = chart_versions(&s.charts_repo, &r);
            (n, r, f, held, values, versions)
        })
        .collect();
    let mut st = s.state.lock().unwrap();
    for (name, rev, fail, held, values, versions) in finished {
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
            d.replicas = if deployment_enabled(&values, &k.1) {
                d.enabled_replicas
            } else {
                0
            };
            d.rollout = Some((now, fail));
            d.held = held.clone();
            d.revision = rev.clone();
            d.image = image_of(&versions, &k.1);
            d.rv = rv;
        }
    }
    // Deployment controller.
    let held_now = st.faults.held_versions.clone();
    let keys: Vec<_> = st.deployments.keys().cloned().collect();
    for k in keys {
        let before = deployment_fingerprint(&st.deployments[&k]);
        {
            let d = st.deployments.get_mut(&k).unwrap();
            // A held rollout stays one replica in until released.
            if let Some((_, fail)) = d.rollout {
                if !fail && d.held.iter().any(|v| held_now.contains(v)) {
                    d.rollout = Some((now - REPLICA_STEP, fail));
                }
            }
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
        if deployment_fingerprint(&st.deployments[&k]) != before {
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
    // A changed application gets a new resourceVersion (Kubernetes view).
    let names: Vec<String> = st.apps.keys().cloned().collect();
    for name in names {
        let a = &st.apps[&name];
        let print = format!(
            "{} {} {} {} {} {}",
            a.sync, a.revision, a.health, a.phase, a.op_revision, a.message
        );
        if print != a.print {
            let rv = st.next_rv();
            let a = st.apps.get_mut(&name).unwrap();
            a.print = print;
            a.rv = rv;
        }
    }
}

/// What a deployment's JSON shows (its `resourceVersion` changes with it).
fn deployment_fingerprint(d: &Deployment) -> String {
    format!(
        "{} {} {} {} {} {} {:?} {}",
        d.image,
        d.generation,
        d.observed,
        d.status_replicas,
        d.updated,
        d.available,
        d.progressing,
        d.revision
    )
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
            "annotations": n.annotations,
        },
        "spec": n.spec,
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
                "spec": {"containers": [{"name": name, "image": d.image}]},
            },
        },
        "status": status,
    })
}

fn pod_json(ns: &str, name: &str, p: &Pod) -> Value {
    let app = p
        .labels
        .get("app")
        .cloned()
        .unwrap_or_else(|| name.to_string());
    let image = format!(
        "container-registry.softwareheritage.org/swh/infra/swh-apps/{}:20250117.1",
        app.trim_start_matches("swh-").replace('-', "_")
    );
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": p.uid,
            "resourceVersion": p.rv.to_string(),
            "creationTimestamp": "2025-01-17T14:00:00Z",
            "labels": p.labels,
        },
        "spec": {"containers": [{"name": app, "image": image}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": "2025-01-17T14:00:00Z"}],
            "containerStatuses": [{"name": app, "image": image, "imageID": "", "ready": true,
                                   "started": true, "restartCount": 0,
                                   "state": {"running": {"startedAt": "2025-01-17T14:00:00Z"}}}],
            "startTime": "2025-01-17T14:00:00Z",
        },
    })
}

/// An Argo CD `Application` as the Kubernetes API serves it (custom
/// resource `applications.argoproj.io`, version `v1alpha1`).
fn application_object(a: &Application) -> Value {
    let mut v = application_json(a);
    v["apiVersion"] = json!("argoproj.io/v1alpha1");
    v["kind"] = json!("Application");
    v
}

/// An Argo CD `Application` (Argo CD's REST API answer; metadata as the
/// Kubernetes object's).
fn application_json(a: &Application) -> Value {
    json!({
        "metadata": {"name": a.spec.name, "namespace": ARGOCD_NAMESPACE, "uid": a.uid,
                     "resourceVersion": a.rv.to_string(), "generation": 1,
                     "creationTimestamp": "2025-01-17T14:00:00Z"},
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
    /// The query as sent (repeated keys, such as exec's `command`, kept).
    raw_query: String,
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
        raw_query: q.to_string(),
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
    let answer = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    w.write_all(answer.as_bytes())?;
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
        let (cluster, segs) = split_cluster(&req.path);
        let exec_target = match segs.as_slice() {
            ["api", "v1", "namespaces", ns, "pods", pod, "exec"] => {
                Some((cluster.map(String::from), ns.to_string(), pod.to_string()))
            }
            _ => None,
        };
        if let Some((cluster, ns, pod)) = exec_target {
            serve_exec(s, r.into_inner(), &req, cluster.as_deref(), &ns, &pod);
            return;
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

/// The exec subprotocols the stand-in speaks.
const EXEC_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// `.../pods/{pod}/exec`: the WebSocket exec protocol (see the module
/// documentation); one command, then the connection is closed.
fn serve_exec<S: Read + Write>(
    s: &Shared,
    mut conn: S,
    req: &Request,
    cluster: Option<&str>,
    ns: &str,
    pod: &str,
) {
    if !authorized(s, req, &s.kube_token) {
        let _ = respond(
            &mut conn,
            401,
            &status_json(401, "Unauthorized", "Unauthorized"),
        );
        return;
    }
    let exists = {
        let st = s.state.lock().unwrap();
        st.pods
            .get(&(ns.to_string(), pod.to_string()))
            .is_some_and(|p| cluster.is_none_or(|c| c == p.cluster))
    };
    if !exists {
        let (code, body) = not_found("pods", "", pod);
        let _ = respond(&mut conn, code, &body);
        return;
    }
    let header = |k: &str| req.headers.get(k).map(String::as_str).unwrap_or("");
    let offered: Vec<&str> = header("sec-websocket-protocol")
        .split(',')
        .map(str::trim)
        .collect();
    // The client's first protocol the stand-in speaks: v5 is v4 plus a
    // stdin-close channel (255) that a command without stdin never uses.
    let chosen = offered
        .iter()
        .find(|p| EXEC_PROTOCOLS.contains(p))
        .copied()
        .unwrap_or("");
    if !header("upgrade").eq_ignore_ascii_case("websocket")
        || header("sec-websocket-key").is_empty()
        || chosen.is_empty()
    {
        let _ = respond(
            &mut conn,
            400,
            &status_json(
                400,
                "BadRequest",
                "Upgrade request required: this stand-in speaks only the WebSocket exec protocols v5.channel.k8s.io and v4.channel.k8s.io (no SPDY)",
            ),
        );
        return;
    }
    let accept = tungstenite::handshake::derive_accept_key(header("sec-websocket-key").as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {chosen}\r\n\r\n"
    );
    if conn
        .write_all(answer.as_bytes())
        .and_then(|_| conn.flush())
        .is_err()
    {
        return;
    }
    let command: Vec<String> = req
        .raw_query
        .split('&')
        .filter_map(|p| p.strip_prefix("command="))
        .map(pct_decode)
        .collect();
    let (exit, stdout, stderr) = run_script(s, &command);
    let status = match exit {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        None => json!({"metadata": {}, "status": "Failure",
            "message": format!("Internal error occurred: error executing command in container: failed to exec in container: OCI runtime exec failed: exec failed: unable to start container process: exec: {:?}: executable file not found in $PATH: unknown", command.first().map(String::as_str).unwrap_or("")),
            "reason": "InternalError", "code": 500}),
    };
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(conn, tungstenite::protocol::Role::Server, None);
    let frame = |channel: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(channel);
        v.extend_from_slice(data);
        tungstenite::Message::binary(v)
    };
    for m in [
        frame(1, &stdout),
        frame(2, &stderr),
        frame(3, status.to_string().as_bytes()),
    ] {
        if ws.send(m).is_err() {
            return;
        }
    }
    // A normal closure (1000), as the API server ends a stream; kubectl
    // reports a close without a status code (1005) as an error.
    let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }));
    // Until the client's close answer (or the read timeout).
    while ws.read().is_ok() {}
}

/// The simulated database scripts: `(exit code, stdout, stderr)`, `None`
/// when the command does not exist.
fn run_script(s: &Shared, command: &[String]) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let name = command
        .first()
        .map(|c| c.rsplit('/').next().unwrap_or(c))
        .unwrap_or("");
    let svc_of = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("-db-version.sh"))
            .filter(|svc| !svc.is_empty())
            .map(String::from)
    };
    let mut st = s.state.lock().unwrap();
    if let Some(svc) = svc_of("check-") {
        if st.faults.pending_migrations.contains(&svc) {
            let out = format!(
                "swh.{svc}: database version 193, code version 194\nmigration needed: run migrate-{svc}-db-version.sh\n"
            );
            return (Some(2), out.into_bytes(), Vec::new());
        }
        let out = format!("swh.{svc}: database version 194, up to date\n");
        return (Some(0), out.into_bytes(), Vec::new());
    }
    if let Some(svc) = svc_of("migrate-") {
        if !st.faults.pending_migrations.contains(&svc) {
            let out = format!("swh.{svc}: database version 194, nothing to migrate\n");
            return (Some(0), out.into_bytes(), Vec::new());
        }
        let start = format!("swh.{svc}: migrating from version 193 to 194\n");
        if st.faults.failing_migrations.contains(&svc) {
            let err = format!(
                "ERROR: swh.{svc}: upgrade to 194 failed: canceling statement due to lock timeout\n"
            );
            return (Some(1), start.into_bytes(), err.into_bytes());
        }
        st.faults.pending_migrations.retain(|x| x != &svc);
        let out = format!(
            "{start}swh.{svc}: applied 194-add-index.sql\nswh.{svc}: database version 194\n"
        );
        return (Some(0), out.into_bytes(), Vec::new());
    }
    (None, Vec::new(), Vec::new())
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
                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
                {"name": "argoproj.io", "versions": [{"groupVersion": "argoproj.io/v1alpha1", "version": "v1alpha1"}],
                 "preferredVersion": {"groupVersion": "argoproj.io/v1alpha1", "version": "v1alpha1"}}]}),
        ),
        ("GET", ["api", "v1"]) => (
            200,
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node",
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["no"]},
                {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
                 "verbs": ["get", "list"], "shortNames": ["ns"]},
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["get", "list", "watch"], "shortNames": ["po"], "categories": ["all"]},
                {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions",
                 "verbs": ["create", "get"]}]}),
        ),
        ("GET", ["apis", "apps", "v1"]) => (
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                 "shortNames": ["deploy"], "categories": ["all"]}]}),
        ),
        // The CRD of Argo CD's Application, as the API server serves it
        // once `applications.argoproj.io` is installed.
        ("GET", ["apis", "argoproj.io", "v1alpha1"]) => (
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "argoproj.io/v1alpha1", "resources": [
                {"name": "applications", "singularName": "application", "namespaced": true, "kind": "Application",
                 "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                 "shortNames": ["app", "apps"]}]}),
        ),
        ("GET", ["api", "v1", "namespaces"]) => {
            let st = s.state.lock().unwrap();
            let items: Vec<Value> = namespaces(&st).iter().map(|n| namespace_json(n)).collect();
            (
                200,
                json!({"kind": "NamespaceList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
            )
        }
        ("GET", ["api", "v1", "namespaces", name]) => {
            let st = s.state.lock().unwrap();
            if namespaces(&st).iter().any(|n| n == name) {
                (200, namespace_json(name))
            } else {
                not_found("namespaces", "", name)
            }
        }
        ("GET", path) => match collection_of(path) {
            Some((kind, Some(name))) => get_one(s, &kind, cluster, name),
            Some((kind, None)) => list(s, req, &kind, cluster),
            None => not_found_path(),
        },
        ("PATCH", ["api", "v1", "nodes", name]) => patch_node(s, req, cluster, name),
        _ => not_found_path(),
    }
}

/// The namespaces: `default`, `kube-system`, Argo CD's and the
/// deployments' (kubectl asks for the namespace after a NotFound).
fn namespaces(st: &State) -> Vec<String> {
    let mut v: Vec<String> = ["default", "kube-system", ARGOCD_NAMESPACE]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (ns, _) in st.deployments.keys() {
        if !v.contains(ns) {
            v.push(ns.clone());
        }
    }
    v.sort();
    v
}

fn namespace_json(name: &str) -> Value {
    json!({"kind": "Namespace", "apiVersion": "v1",
           "metadata": {"name": name, "uid": uid(&format!("namespace/{name}")), "resourceVersion": "1",
                        "creationTimestamp": "2025-01-17T14:00:00Z",
                        "labels": {"kubernetes.io/metadata.name": name}},
           "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn not_found_path() -> (u16, Value) {
    (
        404,
        status_json(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    )
}

/// A collection served by the stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Collection {
    /// `/api/v1/nodes`.
    Nodes,
    /// `/apis/apps/v1[/namespaces/NS]/deployments`.
    Deployments(Option<String>),
    /// `/apis/argoproj.io/v1alpha1[/namespaces/NS]/applications`.
    Applications(Option<String>),
    /// `/api/v1[/namespaces/NS]/pods`.
    Pods(Option<String>),
}

impl Collection {
    fn kind(&self) -> &'static str {
        match self {
            Collection::Nodes => "Node",
            Collection::Deployments(_) => "Deployment",
            Collection::Applications(_) => "Application",
            Collection::Pods(_) => "Pod",
        }
    }
    fn api_version(&self) -> &'static str {
        match self {
            Collection::Nodes => "v1",
            Collection::Deployments(_) => "apps/v1",
            Collection::Applications(_) => "argoproj.io/v1alpha1",
            Collection::Pods(_) => "v1",
        }
    }
    /// `(resource, group)` for error messages.
    fn resource(&self) -> (&'static str, &'static str) {
        match self {
            Collection::Nodes => ("nodes", ""),
            Collection::Deployments(_) => ("deployments", "apps"),
            Collection::Applications(_) => ("applications", "argoproj.io"),
            Collection::Pods(_) => ("pods", ""),
        }
    }
}

/// The collection (and object name) a GET path names.
fn collection_of<'a>(segs: &[&'a str]) -> Option<(Collection, Option<&'a str>)> {
    let ns = |n: &str| Some(n.to_string());
    Some(match segs {
        ["api", "v1", "nodes"] => (Collection::Nodes, None),
        ["api", "v1", "nodes", name] => (Collection::Nodes, Some(*name)),
        ["api", "v1", "pods"] => (Collection::Pods(None), None),
        ["api", "v1", "namespaces", n, "pods"] => (Collection::Pods(ns(n)), None),
        ["api", "v1", "namespaces", n, "pods", name] => (Collection::Pods(ns(n)), Some(*name)),
        ["apis", "apps", "v1", "deployments"] => (Collection::Deployments(None), None),
        ["apis", "apps", "v1", "namespaces", n, "deployments"] => {
            (Collection::Deployments(ns(n)), None)
        }
        ["apis", "apps", "v1", "namespaces", n, "deployments", name] => {
            (Collection::Deployments(ns(n)), Some(*name))
        }
        ["apis", "argoproj.io", "v1alpha1", "applications"] => {
            (Collection::Applications(None), None)
        }
        ["apis", "argoproj.io", "v1alpha1", "namespaces", n, "applications"] => {
            (Collection::Applications(ns(n)), None)
        }
        ["apis", "argoproj.io", "v1alpha1", "namespaces", n, "applications", name] => {
            (Collection::Applications(ns(n)), Some(*name))
        }
        _ => return None,
    })
}

/// One object of a collection, as served.
struct Object {
    name: String,
    rv: u64,
    labels: BTreeMap<String, String>,
    json: Value,
}

/// The objects of `c` in `cluster` (Rancher path; `None`: all clusters).
/// Argo CD's applications are served in every cluster (the stand-in does
/// not model which cluster runs Argo CD).
fn objects(st: &State, c: &Collection, cluster: Option<&str>) -> Vec<Object> {
    let in_cluster = |x: &str| cluster.is_none_or(|want| want == x);
    match c {
        Collection::Nodes => st
            .nodes
            .iter()
            .filter(|(_, n)| in_cluster(&n.cluster))
            .map(|(name, n)| Object {
                name: name.clone(),
                rv: n.rv,
                labels: n.labels.clone(),
                json: node_json(name, n),
            })
            .collect(),
        Collection::Deployments(ns) => st
            .deployments
            .iter()
            .filter(|((n, _), d)| in_cluster(&d.cluster) && ns.as_ref().is_none_or(|w| w == n))
            .map(|((n, name), d)| Object {
                name: name.clone(),
                rv: d.rv,
                labels: [("app".to_string(), name.clone())].into(),
                json: deployment_json(n, name, d),
            })
            .collect(),
        Collection::Pods(ns) => st
            .pods
            .iter()
            .filter(|((n, _), p)| in_cluster(&p.cluster) && ns.as_ref().is_none_or(|w| w == n))
            .map(|((n, name), p)| Object {
                name: name.clone(),
                rv: p.rv,
                labels: p.labels.clone(),
                json: pod_json(n, name, p),
            })
            .collect(),
        Collection::Applications(ns) => {
            if ns.as_deref().is_some_and(|n| n != ARGOCD_NAMESPACE) {
                return Vec::new();
            }
            st.apps
                .iter()
                .map(|(name, a)| Object {
                    name: name.clone(),
                    rv: a.rv,
                    labels: BTreeMap::new(),
                    json: application_object(a),
                })
                .collect()
        }
    }
}

fn get_one(s: &Shared, c: &Collection, cluster: Option<&str>, name: &str) -> (u16, Value) {
    let st = s.state.lock().unwrap();
    match objects(&st, c, cluster)
        .into_iter()
        .find(|o| o.name == name)
    {
        Some(o) => (200, o.json),
        None => {
            let (kind, group) = c.resource();
            not_found(kind, group, name)
        }
    }
}

/// The `labelSelector` and `fieldSelector` (`metadata.name=X`) of a request.
struct Selectors {
    labels: Vec<Requirement>,
    name: Option<String>,
}

impl Selectors {
    fn of(req: &Request) -> Result<Selectors, (u16, Value)> {
        let labels = match req.query.get("labelSelector") {
            Some(l) => {
                parse_label_selector(l).map_err(|e| (400, status_json(400, "BadRequest", &e)))?
            }
            None => Vec::new(),
        };
        let name = match req.query.get("fieldSelector").map(String::as_str) {
            None | Some("") => None,
            Some(f) => match f
                .strip_prefix("metadata.name=")
                .or_else(|| f.strip_prefix("metadata.name=="))
            {
                Some(n) => Some(n.to_string()),
                None => {
                    return Err((
                        400,
                        status_json(
                            400,
                            "BadRequest",
                            &format!("field label not supported: {f} (the stand-in knows metadata.name only)"),
                        ),
                    ))
                }
            },
        };
        Ok(Selectors { labels, name })
    }

    fn matches(&self, o: &Object) -> bool {
        self.name.as_deref().is_none_or(|n| n == o.name)
            && self.labels.iter().all(|r| r.matches(&o.labels))
    }
}

fn list(s: &Shared, req: &Request, c: &Collection, cluster: Option<&str>) -> (u16, Value) {
    let sel = match Selectors::of(req) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let st = s.state.lock().unwrap();
    let items: Vec<Value> = objects(&st, c, cluster)
        .into_iter()
        .filter(|o| sel.matches(o))
        .map(|o| o.json)
        .collect();
    (
        200,
        json!({"kind": format!("{}List", c.kind()), "apiVersion": c.api_version(),
               "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    )
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
    /// `key=v`, `key==v`, `key in (v,...)`.
    In(String, Vec<String>),
    /// `key!=v`, `key notin (v,...)` (true when the key is absent).
    NotIn(String, Vec<String>),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        }
    }
}

/// Parses a label selector as the API server does (`k8s.io/apimachinery`
/// `labels.Parse`): comma-separated `key`, `!key`, `key=value`,
/// `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`.
fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let bad = |what: &str| format!("unable to parse requirement: {what} (label selector {s:?})");
    let key_ok = |k: &str| {
        !k.is_empty()
            && k.len() <= 317
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let value_ok = |v: &str| {
        v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    // Split at commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    let mut out = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            if s.trim().is_empty() {
                continue;
            }
            return Err(bad("empty requirement"));
        }
        let set = |op: &str| -> Option<Result<(String, Vec<String>), String>> {
            let (k, rest) = p.split_once(&format!(" {op} "))?;
            let rest = rest.trim();
            let inner = match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                Some(i) => i,
                None => return Some(Err(bad(&format!("{p}: expected ( values )")))),
            };
            let vs: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
            if !key_ok(k.trim()) || !vs.iter().all(|v| value_ok(v)) {
                return Some(Err(bad(p)));
            }
            Some(Ok((k.trim().to_string(), vs)))
        };
        if let Some(r) = set("notin") {
            let (k, vs) = r?;
            out.push(Requirement::NotIn(k, vs));
        } else if let Some(r) = set("in") {
            let (k, vs) = r?;
            out.push(Requirement::In(k, vs));
        } else if let Some(k) = p.strip_prefix('!') {
            if !key_ok(k.trim()) {
                return Err(bad(p));
            }
            out.push(Requirement::DoesNotExist(k.trim().to_string()));
        } else if let Some((k, v)) = p.split_once("!=") {
            if !key_ok(k.trim()) || !value_ok(v.trim()) {
                return Err(bad(p));
            }
            out.push(Requirement::NotIn(k.trim().into(), vec![v.trim().into()]));
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            if !key_ok(k.trim()) || !value_ok(v.trim()) {
                return Err(bad(p));
            }
            out.push(Requirement::In(k.trim().into(), vec![v.trim().into()]));
        } else if key_ok(p) {
            out.push(Requirement::Exists(p.to_string()));
        } else {
            return Err(bad(p));
        }
    }
    Ok(out)
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

/// How a PATCH body is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchKind {
    /// RFC 7386 (`application/merge-patch+json`).
    Merge,
    /// Kubernetes' strategic merge patch
    /// (`application/strategic-merge-patch+json`).
    Strategic,
    /// RFC 6902 (`application/json-patch+json`).
    Json,
}

fn patch_node(s: &Shared, req: &Request, cluster: Option<&str>, name: &str) -> (u16, Value) {
    let ct = req
        .headers
        .get("content-type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let kind = match ct.as_str() {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/json-patch+json" => PatchKind::Json,
        _ => {
            return (
                415,
                status_json(
                    415,
                    "UnsupportedMediaType",
                    &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?}) [stand-in]"),
                ),
            )
        }
    };
    let patch: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return (
                400,
                status_json(400, "BadRequest", &format!("invalid JSON: {e}")),
            )
        }
    };
    // As the API server words it: kubectl prints the causes.
    let invalid = |field: &str, msg: String| {
        let mut v = status_json(
            422,
            "Invalid",
            &format!("Node \"{name}\" is invalid: {field}: {msg}"),
        );
        v["details"] = json!({"name": name, "kind": "Node",
                              "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": field}]});
        (422, v)
    };
    let mut st = s.state.lock().unwrap();
    let Some(n) = st
        .nodes
        .get(name)
        .filter(|n| cluster.is_none_or(|c| c == n.cluster))
    else {
        return not_found("nodes", "", name);
    };
    let current = node_json(name, n);
    let mut patched = current.clone();
    match kind {
        PatchKind::Merge | PatchKind::Strategic if !patch.is_object() => {
            return (
                400,
                status_json(400, "BadRequest", "a merge patch must be a JSON object"),
            )
        }
        PatchKind::Merge => json_patch::merge(&mut patched, &patch),
        PatchKind::Strategic => {
            if let Err(e) = strategic_merge(&mut patched, &patch, "") {
                return (400, status_json(400, "BadRequest", &e));
            }
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = match serde_json::from_value(patch.clone()) {
                Ok(p) => p,
                Err(e) => {
                    return (
                        400,
                        status_json(400, "BadRequest", &format!("invalid JSON patch: {e}")),
                    )
                }
            };
            if let Err(e) = json_patch::patch(&mut patched, &ops) {
                return (
                    422,
                    status_json(422, "Invalid", &format!("the JSON patch failed: {e}")),
                );
            }
        }
    }
    // Optimistic concurrency: a resourceVersion in the patch must be current.
    let want_rv = patched.pointer("/metadata/resourceVersion").cloned();
    if want_rv != current.pointer("/metadata/resourceVersion").cloned() {
        let mut v = status_json(
            409,
            "Conflict",
            &format!("Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        );
        v["details"] = json!({"name": name, "kind": "nodes"});
        return (409, v);
    }
    if patched.pointer("/metadata/name") != Some(&json!(name)) {
        return invalid("metadata.name", "Invalid value: field is immutable".into());
    }
    let string_map = |field: &str| -> Result<BTreeMap<String, String>, (String, String)> {
        match patched.pointer(&format!("/metadata/{field}")) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k.clone(), v.clone())),
                    other => Err((
                        format!("metadata.{field}.{k}"),
                        format!("Invalid value: {other}: must be a string"),
                    )),
                })
                .collect(),
            Some(other) => Err((
                format!("metadata.{field}"),
                format!("Invalid value: {other}: must be a map"),
            )),
        }
    };
    let labels = match string_map("labels") {
        Ok(l) => l,
        Err((f, e)) => return invalid(&f, e),
    };
    let annotations = match string_map("annotations") {
        Ok(a) => a,
        Err((f, e)) => return invalid(&f, e),
    };
    let spec = match patched.get("spec") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return invalid("spec", format!("Invalid value: {other}: must be an object"))
        }
    };
    let changed = {
        let n = &st.nodes[name];
        n.labels != labels || n.annotations != annotations || n.spec != spec
    };
    // Like the API server, a patch that changes nothing keeps the
    // resourceVersion.
    if changed {
        let rv = st.next_rv();
        let n = st.nodes.get_mut(name).unwrap();
        n.labels = labels;
        n.annotations = annotations;
        n.spec = spec;
        n.rv = rv;
    }
    (200, node_json(name, &st.nodes[name]))
}

/// Kubernetes' strategic merge patch on a Node: a JSON merge patch (maps
/// merged, `null` deletes a key) where `$patch: replace` replaces a map,
/// `$patch: delete` deletes it, and the list `spec.taints` is merged by its
/// `key` (an element `{"key": K, "$patch": "delete"}` removes taint K);
/// other lists are replaced, as for Node's other list fields. Other `$`
/// directives are refused (not simulated by the stand-in).
fn strategic_merge(target: &mut Value, patch: &Value, path: &str) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut m = p.clone();
            m.remove("$patch");
            *target = Value::Object(m);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(format!("{path}: unknown patch type {other:?}")),
        None => {}
    }
    if let Some(k) = p.keys().find(|k| k.starts_with('$')) {
        return Err(format!(
            "{path}: directive {k} is not supported by the stand-in"
        ));
    }
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        let here = format!("{path}/{k}");
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) => {
                let mut sub = t.remove(k).unwrap_or(Value::Null);
                strategic_merge(&mut sub, v, &here)?;
                if !sub.is_null() {
                    t.insert(k.clone(), sub);
                }
            }
            Value::Array(items) if here == "/spec/taints" => {
                let mut list: Vec<Value> = t
                    .remove(k)
                    .and_then(|l| l.as_array().cloned())
                    .unwrap_or_default();
                for item in items {
                    let key = item
                        .get("key")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("{here}: an element has no \"key\""))?;
                    let pos = list
                        .iter()
                        .position(|e| e.get("key").and_then(Value::as_str) == Some(key));
                    if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                        if let Some(i) = pos {
                            list.remove(i);
                        }
                        continue;
                    }
                    match pos {
                        Some(i) => strategic_merge(&mut list[i], item, &here)?,
                        None => list.push(item.clone()),
                    }
                }
                t.insert(k.clone(), Value::Array(list));
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    Ok(())
}

/// A watch (`?watch=true`) on nodes, deployments or applications: JSON
/// events, one per line, until `timeoutSeconds` (at most 60 s) or the
/// client goes away. With a `resourceVersion`, the changes after it
/// (`MODIFIED`, or `ADDED`/`DELETED` when an object enters or leaves the
/// label selector); without one (or `0`), first an `ADDED` event per
/// object, as the API server does.
fn serve_watch(s: &Shared, w: &mut impl Write, req: &Request) {
    let (cluster, segs) = split_cluster(&req.path);
    let cluster = cluster.map(String::from);
    let c = match collection_of(&segs) {
        Some((c, None)) => c,
        _ => {
            let _ = respond(
                w,
                404,
                &status_json(404, "NotFound", "watch: not supported by the stand-in"),
            );
            return;
        }
    };
    let sel = match Selectors::of(req) {
        Ok(s) => s,
        Err((code, body)) => {
            let _ = respond(w, code, &body);
            return;
        }
    };
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
        || w.flush().is_err()
    {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    // What the client has seen: name -> (resourceVersion, matched).
    let mut seen: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    let mut first = true;
    while Instant::now() < deadline && !s.stop.load(Ordering::SeqCst) {
        let mut events = Vec::new();
        {
            let st = s.state.lock().unwrap();
            for o in objects(&st, &c, cluster.as_deref()) {
                let now_matches = sel.matches(&o);
                let event = if first && since == 0 {
                    now_matches.then_some("ADDED")
                } else if first {
                    // Objects not changed since the client's version are
                    // as it knows them; changed ones are modifications.
                    if o.rv <= since {
                        seen.insert(o.name.clone(), (o.rv, now_matches));
                        continue;
                    }
                    now_matches.then_some("MODIFIED")
                } else {
                    match seen.get(&o.name) {
                        Some((rv, _)) if *rv == o.rv => continue,
                        Some((_, true)) if now_matches => Some("MODIFIED"),
                        Some((_, true)) => Some("DELETED"),
                        _ if now_matches => Some("ADDED"),
                        _ => None,
                    }
                };
                seen.insert(o.name.clone(), (o.rv, now_matches));
                if let Some(t) = event {
                    events.push(json!({"type": t, "object": o.json}).to_string());
                }
            }
        }
        first = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_parse_and_match_like_the_api_server() {
        let l = labels(&[("swh/loader", "true"), ("tier", "a")]);
        let m = |s: &str| {
            parse_label_selector(s)
                .unwrap()
                .iter()
                .all(|r| r.matches(&l))
        };
        assert!(m("swh/loader=true"));
        assert!(m("swh/loader==true,tier"));
        assert!(m("tier in (a, b),!swh/lister"));
        assert!(m("swh/lister!=true"));
        assert!(m("tier notin (b,c)"));
        assert!(m(""));
        assert!(!m("tier notin (a)"));
        assert!(!m("swh/loader,!tier"));
        for bad in ["a b", "tier in a", "=x", "tier=(a)", "tier in (a,b", "a,,b"] {
            let e = parse_label_selector(bad).unwrap_err();
            assert!(e.contains("unable to parse requirement"), "{bad}: {e}");
        }
    }

    #[test]
    fn strategic_merge_merges_taints_by_key_and_honours_directives() {
        let mut node = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
                              "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}});
        strategic_merge(
            &mut node,
            &json!({"metadata": {"labels": {"b": null, "c": "3"}},
                    "spec": {"taints": [{"key": "y", "effect": "NoExecute"},
                                        {"key": "x", "value": "v"}]}}),
            "",
        )
        .unwrap();
        assert_eq!(node["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "x", "effect": "NoSchedule", "value": "v"},
                   {"key": "y", "effect": "NoExecute"}])
        );
        strategic_merge(
            &mut node,
            &json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}},
                    "spec": {"taints": [{"key": "x", "$patch": "delete"}]}}),
            "",
        )
        .unwrap();
        assert_eq!(node["metadata"]["labels"], json!({"z": "9"}));
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "y", "effect": "NoExecute"}])
        );
        let e =
            strategic_merge(&mut node, &json!({"spec": {"$retainKeys": ["a"]}}), "").unwrap_err();
        assert!(e.contains("not supported by the stand-in"), "{e}");
    }
}
