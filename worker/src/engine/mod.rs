//! [`LocalWorker`]: the solver's `Worker` over a local store, the build context and the
//! native executor.
//!
//! Results ([`FsRef`]) are filesystems: nothing (scratch), a committed snapshot (whose parent
//! chain is the whole filesystem), or a selection of the build context read in place.
//!
//! Key decisions:
//! - The content part of a cache key lives on the `Local` source vertex: its key is the
//!   checksum of exactly its selection (lowering makes one `Local` vertex per include set),
//!   so a COPY's key changes only when a file it copies changes. Image sources are keyed by
//!   their manifest digest.
//! - Blocking work (store transactions, file copies, the sandbox) runs on tokio's blocking
//!   pool; a RUN holds a cancel guard, so dropping the solve kills the sandbox.
//! - RUN mounts: a bind of a stage or image is its snapshot chain as overlay layers (the
//!   executor resolves `source=` inside them and discards writes); a bind of the context is
//!   first copied into a snapshot kept in the cache under the selection's checksum, so the
//!   client's directory is never exposed or written; secrets and ssh agent sockets are
//!   staged per step outside every snapshot (`cache_mount`, `ssh_forward`).
//! - A lookup that misses the store asks the caches imported with `--cache-from`
//!   ([`crate::cache_remote::ImportedCache`]), which fetch only that record's missing layers.

mod cache_mount;
mod context_source;
mod git_source;
mod http_source;
mod ssh_forward;

pub use context_source::ContextSource;
pub use git_source::{GitError, GitRequest, GitSource};
pub use http_source::{HttpError, HttpRequest, HttpSource};
pub use ssh_forward::SshForward;

use crate::context::{Context, ContextError, ContextOptions, Selection};
use crate::file::{self, LayeredView, SourceFs};
use crate::image::{self, find_image};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use strata_cache::{CacheValue, Lease, SnapshotId, Store};
use strata_executor::{
    CancelToken, Executor, MountSpec, Network, OutputSink, Rootfs, RunSpec, Security,
};
use strata_solver::op::{
    ExecOp, FileAction, FileOp, MountKind, NetworkMode, Op, SecurityMode, SourceOp,
};
use strata_solver::progress::{Progress, Stream};
use strata_solver::{BoxError, Digest, Graph, Job, VertexId, Worker};

/// A vertex's result.
#[derive(Debug, Clone)]
pub enum FsRef {
    /// The empty filesystem.
    Scratch,
    /// A committed snapshot and its parents.
    Snapshot(SnapshotId),
    /// A selection of a client directory.
    Context(Arc<ContextSelection>),
}

/// A walked selection of a context (what a `Local` source vertex yields).
#[derive(Debug)]
pub struct ContextSelection {
    context: Arc<Context>,
    selection: Selection,
}

/// Why the worker could not run an op.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The Dockerfile names a context this build was not given.
    #[error("no build context named {name:?} was provided")]
    UnknownContext {
        /// The context name.
        name: String,
    },
    /// A required secret the client did not provide (BuildKit's text).
    #[error("secret {id}: not found")]
    SecretNotFound {
        /// The secret id.
        id: String,
    },
    /// A required SSH agent the client did not forward (BuildKit's text).
    #[error("no SSH key {id:?} forwarded from the client")]
    SshNotFound {
        /// The agent id.
        id: String,
    },
    /// The client's SSH agent could not be forwarded into a step.
    #[error("ssh {id}: forwarding {path:?}: {source}")]
    Ssh {
        /// The agent id.
        id: String,
        /// The client's agent socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A cache mount could not be prepared for a step.
    #[error("cache mount {id}: {source}")]
    CacheMount {
        /// The cache id.
        id: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret could not be staged for a step.
    #[error("secret {id}: {source}")]
    Secret {
        /// The secret id.
        id: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A feature the graph uses that this worker does not run yet.
    #[error("{what} is not supported yet")]
    Unsupported {
        /// What.
        what: String,
    },
    /// An input of an unexpected kind (a graph built wrong).
    #[error("input {index} of this step is not a filesystem snapshot")]
    BadInput {
        /// Input position.
        index: usize,
    },
    /// The RUN process failed or could not start.
    #[error("{0}")]
    Exec(#[from] strata_executor::ExecError),
}

/// Where a secret's bytes come from (`--secret id=…,src=…|env=…`). The bytes are read only
/// when a step mounts the secret, and never enter the graph, a cache key, a layer or a log.
#[derive(Debug, Clone)]
pub enum Secret {
    /// A client file.
    File(PathBuf),
    /// A client environment variable.
    Env(String),
}

impl Secret {
    fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Secret::File(path) => std::fs::read(path),
            Secret::Env(var) => std::env::var(var).map(String::into_bytes).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("environment variable {var} is not set"),
                )
            }),
        }
    }
}

/// Where the worker keeps things and what the build was given.
#[derive(Debug)]
pub struct LocalWorker {
    store: Store,
    executor: Arc<Executor>,
    contexts: HashMap<String, Arc<Context>>,
    secrets: HashMap<String, Secret>,
    ssh: HashMap<String, PathBuf>,
    lease: Lease,
    empty_dir: PathBuf,
    platform: strata_oci::manifest::Platform,
    http: HttpSource,
    git: GitSource,
    imported: Option<Arc<crate::cache_remote::ImportedCache>>,
}

impl LocalWorker {
    /// A worker over `store`, running processes with `executor`, with the client's
    /// directories by name (`context` is the build context) and their `.dockerignore`
    /// patterns.
    pub fn new(
        store: Store,
        executor: Executor,
        contexts: Vec<(String, PathBuf, Vec<String>)>,
    ) -> Result<Self, BoxError> {
        let mut opened = HashMap::new();
        for (name, dir, excludes) in contexts {
            let options = ContextOptions::for_store(&store);
            opened.insert(name, Arc::new(Context::open_with(dir, &excludes, options)?));
        }
        let empty_dir = store.root().join("v1").join("executor").join("empty");
        std::fs::create_dir_all(&empty_dir)?;
        // Secrets and agent sockets a killed build left behind go now, not at some prune.
        StagedSecrets::clean_stale(&store.root().join("v1").join("executor").join("secrets"));
        let lease = store.lease();
        let http = HttpSource::new(store.lease());
        let git = GitSource::new(store.lease());
        Ok(Self {
            store,
            executor: Arc::new(executor),
            contexts: opened,
            secrets: HashMap::new(),
            ssh: HashMap::new(),
            lease,
            empty_dir,
            platform: image::host_platform(),
            http,
            git,
            imported: None,
        })
    }

    /// The secrets the client offers, by id.
    pub fn with_secrets(mut self, secrets: HashMap<String, Secret>) -> Self {
        self.secrets = secrets;
        self
    }

    /// The SSH agent sockets the client forwards (`--ssh default[=PATH]`), by id.
    pub fn with_ssh(mut self, agents: HashMap<String, PathBuf>) -> Self {
        self.ssh = agents;
        self
    }

    /// Caches imported with `--cache-from`: a lookup that misses the store asks them.
    pub fn with_cache_imports(mut self, imported: Arc<crate::cache_remote::ImportedCache>) -> Self {
        self.imported = Some(imported);
        self
    }

    /// The store results are kept in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn context(&self, name: &str) -> Result<Arc<Context>, EngineError> {
        self.contexts
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownContext { name: name.into() })
    }

    /// Records `snapshot` as the result of `key`.
    fn remember(&self, key: Digest, snapshot: &SnapshotId) -> Result<(), BoxError> {
        let value = CacheValue {
            snapshot: Some(snapshot.clone()),
            blobs: Vec::new(),
            payload: Vec::new(),
        };
        self.store.cache().put(&key.0, &value)?;
        Ok(())
    }

    fn lowerdirs(&self, fs: &FsRef) -> Result<Vec<PathBuf>, BoxError> {
        match fs {
            FsRef::Scratch => Ok(Vec::new()),
            FsRef::Snapshot(id) => Ok(self.store.snapshots().lowerdirs(id)?),
            FsRef::Context(_) => Err(Box::new(EngineError::BadInput { index: 0 })),
        }
    }

    fn parent(fs: &FsRef) -> Option<&SnapshotId> {
        match fs {
            FsRef::Snapshot(id) => Some(id),
            _ => None,
        }
    }
}

/// Selection of a `Local` source op.
fn selection_of(op: &SourceOp) -> Result<Selection, ContextError> {
    Selection::from_source(op).unwrap_or_else(|| Ok(Selection::all()))
}

impl Worker for LocalWorker {
    type Ref = FsRef;

    async fn content_key(
        &self,
        graph: &Graph,
        vertex: VertexId,
    ) -> Result<Option<Digest>, BoxError> {
        match &graph.vertex(vertex).op {
            Op::Source(op @ SourceOp::Local { name, .. }) => {
                let context = self.context(name)?;
                let selection = selection_of(op)?;
                let digest =
                    tokio::task::spawn_blocking(move || context.checksum(&selection)).await??;
                Ok(Some(digest))
            }
            Op::Source(SourceOp::Image { reference, .. }) => {
                // Lowering pins `name:tag@sha256:…` to the manifest it resolved: key on that.
                let manifest = match reference.rsplit_once('@') {
                    Some((_, digest)) => digest.to_string(),
                    None => find_image(&self.store, reference)
                        .map_err(|e| {
                            format!("{reference}: {e} (load it first: strata load -i IMAGE.tar)")
                        })?
                        .target
                        .manifest
                        .to_string(),
                };
                Ok(Some(Digest(*blake3::hash(manifest.as_bytes()).as_bytes())))
            }
            Op::Source(op @ SourceOp::Http { .. }) => Ok(Some(
                self.http.content_key(&self.store, http_request(op)).await?,
            )),
            Op::Source(op @ SourceOp::Git { .. }) => {
                Ok(Some(self.git.content_key(git_request(op)).await?))
            }
            _ => Ok(None),
        }
    }

    async fn load(
        &self,
        graph: &Graph,
        vertex: VertexId,
        key: Digest,
    ) -> Result<Option<FsRef>, BoxError> {
        match &graph.vertex(vertex).op {
            Op::Source(SourceOp::Scratch) => Ok(Some(FsRef::Scratch)),
            Op::Source(op @ SourceOp::Local { name, .. }) => {
                let context = self.context(name)?;
                let selection = selection_of(op)?;
                Ok(Some(FsRef::Context(Arc::new(ContextSelection {
                    context,
                    selection,
                }))))
            }
            _ => {
                if let Some(record) = self.store.cache().get(&key.0, Some(&self.lease))? {
                    if let Some(id) = record.value.snapshot {
                        if self.store.snapshots().get(&id)?.is_some() {
                            return Ok(Some(FsRef::Snapshot(id)));
                        }
                    }
                }
                // A local miss: an imported cache may have it (its layers are fetched now).
                match &self.imported {
                    Some(imported) => Ok(imported
                        .materialise(&self.store, &self.lease, &key.0)
                        .await
                        .map(FsRef::Snapshot)),
                    None => Ok(None),
                }
            }
        }
    }

    async fn execute(&self, job: Job<'_, FsRef>) -> Result<FsRef, BoxError> {
        let vertex = job.graph.vertex(job.vertex);
        match &vertex.op {
            Op::Source(SourceOp::Image { reference, .. }) => {
                let pinned = reference
                    .rsplit_once('@')
                    .map_or(reference.as_str(), |(_, d)| d);
                let (store, reference, platform, lease) = (
                    self.store.clone(),
                    pinned.to_string(),
                    self.platform.clone(),
                    self.store.lease(),
                );
                let unpacked = tokio::task::spawn_blocking(move || {
                    let unpacked = image::unpack_image(&store, &reference, &platform, &lease);
                    // The lease ends here; the cache record below keeps the chain.
                    unpacked
                })
                .await??;
                match unpacked.top {
                    Some(top) => {
                        self.remember(job.key, &top)?;
                        Ok(FsRef::Snapshot(top))
                    }
                    None => Ok(FsRef::Scratch),
                }
            }
            Op::Source(op @ SourceOp::Http { .. }) => {
                let id = self.http.snapshot(&self.store, http_request(op)).await?;
                self.remember(job.key, &id)?;
                Ok(FsRef::Snapshot(id))
            }
            // Reached without `load` when the cache is off (`--no-cache`).
            Op::Source(SourceOp::Scratch) => Ok(FsRef::Scratch),
            Op::Source(op @ SourceOp::Local { name, .. }) => {
                Ok(FsRef::Context(Arc::new(ContextSelection {
                    context: self.context(name)?,
                    selection: selection_of(op)?,
                })))
            }
            Op::Source(op @ SourceOp::Git { .. }) => {
                let id = self.git.snapshot(&self.store, git_request(op)).await?;
                self.remember(job.key, &id)?;
                Ok(FsRef::Snapshot(id))
            }
            Op::File(op) => self.file(op, &job).await,
            Op::Exec(op) => self.exec(op, &job, &vertex.meta.proxy_env).await,
            Op::Merge => self.file(&merge_as_copies(job.inputs.len()), &job).await,
            Op::Diff => Err(Box::new(EngineError::Unsupported {
                what: "diff".into(),
            })),
        }
    }
}

/// A merge (`COPY --link`) as file actions: each later input's whole filesystem copied onto
/// input 0, as it is (owners, modes, times, links kept). Overlay then shows the same tree a
/// merge of the layers would, and input 0's layers stay shared.
fn merge_as_copies(inputs: usize) -> FileOp {
    let actions = (1..inputs)
        .map(|source_input| FileAction::Copy {
            source_input,
            src: "/".into(),
            dest: "/".into(),
            owner: None,
            chmod: None,
            follow_symlinks: false,
            dir_contents_only: true,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            exclude: Vec::new(),
            parents: false,
            unpack: false,
            create_dest_path: true,
            mtime: None,
        })
        .collect();
    FileOp {
        has_base: true,
        actions,
    }
}

/// The fields of an `Http` source op.
fn http_request(op: &SourceOp) -> HttpRequest<'_> {
    match op {
        SourceOp::Http {
            url,
            checksum,
            filename,
            chmod,
        } => HttpRequest {
            url,
            checksum: checksum.as_deref(),
            filename,
            chmod: *chmod,
        },
        _ => unreachable!("http_request of a non-http source"),
    }
}

/// The fields of a `Git` source op.
fn git_request(op: &SourceOp) -> GitRequest<'_> {
    match op {
        SourceOp::Git {
            url,
            reference,
            keep_git_dir,
            checksum,
        } => GitRequest {
            url,
            reference,
            keep_git_dir: *keep_git_dir,
            checksum: checksum.as_deref(),
        },
        _ => unreachable!("git_request of a non-git source"),
    }
}

impl LocalWorker {
    async fn file(&self, op: &FileOp, job: &Job<'_, FsRef>) -> Result<FsRef, BoxError> {
        let base = if op.has_base {
            job.inputs.first().cloned().unwrap_or(FsRef::Scratch)
        } else {
            FsRef::Scratch
        };
        let lowerdirs = self.lowerdirs(&base)?;
        let parent = Self::parent(&base).cloned();
        // Each input as a readable filesystem.
        let mut sources: Vec<Box<dyn SourceFs>> = Vec::with_capacity(job.inputs.len());
        for input in &job.inputs {
            sources.push(match input {
                FsRef::Scratch => Box::new(LayeredView::scratch()),
                FsRef::Snapshot(id) => {
                    Box::new(LayeredView::chain(self.store.snapshots().lowerdirs(id)?))
                }
                FsRef::Context(sel) => {
                    let selected = sel.context.select(&sel.selection)?;
                    Box::new(ContextSource::new(sel.context.clone(), selected))
                }
            });
        }
        let (store, op, key) = (self.store.clone(), op.clone(), job.key);
        let lease = self.store.lease();
        let id = tokio::task::spawn_blocking(move || -> Result<SnapshotId, BoxError> {
            let prepared = store.snapshots().prepare(parent.as_ref(), &lease)?;
            let refs: Vec<&dyn SourceFs> = sources.iter().map(|s| s.as_ref()).collect();
            if let Err(e) = file::apply(&op, &prepared.diff(), &lowerdirs, &refs) {
                store.snapshots().abort(prepared)?;
                return Err(Box::new(e));
            }
            Ok(store.snapshots().commit_cached(prepared, &key.0)?.id)
        })
        .await??;
        Ok(FsRef::Snapshot(id))
    }

    async fn exec(
        &self,
        op: &ExecOp,
        job: &Job<'_, FsRef>,
        proxy_env: &[String],
    ) -> Result<FsRef, BoxError> {
        // The rootfs is mount 0; its input is absent for `FROM scratch` (then input 0 may be
        // a bind mount's source).
        let base = op
            .mounts
            .first()
            .and_then(|m| m.input)
            .and_then(|i| job.inputs.get(i))
            .cloned()
            .unwrap_or(FsRef::Scratch);
        let mut lowerdirs = self.lowerdirs(&base)?;
        if lowerdirs.is_empty() {
            lowerdirs.push(self.empty_dir.clone());
        }
        let parent = Self::parent(&base).cloned();
        let lease = self.store.lease();
        let mounts = self.exec_mounts(op, job, &lease).await?;
        self.run_exec(op, job, proxy_env, lowerdirs, parent, &lease, mounts)
            .await
    }

    /// The step's `--mount`s (all but the rootfs) as executor mounts, with what must live as
    /// long as the run (staged secrets, ssh relays).
    async fn exec_mounts(
        &self,
        op: &ExecOp,
        job: &Job<'_, FsRef>,
        lease: &Lease,
    ) -> Result<StepMounts, BoxError> {
        // Secret files live outside every snapshot, only for this step, then are removed.
        let staged = StagedSecrets::new(
            self.store
                .root()
                .join("v1")
                .join("executor")
                .join("secrets"),
        )?;
        let mut mounts = Vec::new();
        let mut secret_env = Vec::new();
        let mut relays = Vec::new();
        let mut locks = Vec::new();
        let mut locked_ids: Vec<String> = Vec::new();
        for mount in op.mounts.iter().skip(1) {
            mounts.push(match &mount.kind {
                MountKind::Tmpfs { size } => MountSpec::Tmpfs {
                    target: mount.target.clone(),
                    size: (*size > 0).then_some(*size),
                },
                MountKind::Cache {
                    id,
                    sharing,
                    mode,
                    uid,
                    gid,
                } => {
                    let new = !self.store.cache_mounts().path(id).exists();
                    let dir = self.store.cache_mounts().get_or_create(id, lease)?;
                    // A new cache starts as a copy of its `from=` filesystem.
                    let seed: Option<Box<dyn SourceFs>> =
                        match mount.input.and_then(|i| job.inputs.get(i)) {
                            Some(FsRef::Snapshot(id)) if new => Some(Box::new(LayeredView::chain(
                                self.store.snapshots().lowerdirs(id)?,
                            ))),
                            Some(FsRef::Context(sel)) if new => {
                                let selected = sel.context.select(&sel.selection)?;
                                Some(Box::new(ContextSource::new(sel.context.clone(), selected)))
                            }
                            _ => None,
                        };
                    let private = staged.dir.join(format!("cache-{}", locks.len()));
                    let sharing = (!locked_ids.contains(id)).then_some(*sharing);
                    locked_ids.push(id.clone());
                    let options = (mount.selector.clone(), sharing, *mode, *uid, *gid);
                    let prepared = tokio::task::spawn_blocking(move || {
                        let (source, sharing, mode, uid, gid) = options;
                        let options = cache_mount::CacheOptions {
                            sharing,
                            mode,
                            uid,
                            gid,
                            source: &source,
                        };
                        let fill = |root: &std::path::Path| -> std::io::Result<()> {
                            let Some(seed) = seed else { return Ok(()) };
                            let scratch = LayeredView::scratch();
                            let refs: Vec<&dyn SourceFs> = vec![&scratch, seed.as_ref()];
                            file::apply(&merge_as_copies(2), root, &[], &refs)
                                .map_err(std::io::Error::other)
                        };
                        cache_mount::prepare(&dir, new, options, fill, &private)
                    })
                    .await?
                    .map_err(|source| EngineError::CacheMount {
                        id: id.clone(),
                        source,
                    })?;
                    locks.push(prepared.lock);
                    MountSpec::Bind {
                        source: prepared.dir,
                        target: mount.target.clone(),
                        readonly: mount.readonly,
                    }
                }
                MountKind::Bind => {
                    let input = mount.input.and_then(|i| job.inputs.get(i));
                    let mut lowerdirs = match input {
                        None | Some(FsRef::Scratch) => Vec::new(),
                        Some(FsRef::Snapshot(id)) => self.store.snapshots().lowerdirs(id)?,
                        Some(FsRef::Context(sel)) => {
                            let id = self.stage_context(sel.clone()).await?;
                            self.store.snapshots().lowerdirs(&id)?
                        }
                    };
                    if lowerdirs.is_empty() {
                        lowerdirs.push(self.empty_dir.clone());
                    }
                    MountSpec::Layers {
                        lowerdirs,
                        source: mount.selector.clone(),
                        target: mount.target.clone(),
                        readonly: mount.readonly,
                    }
                }
                MountKind::Secret {
                    id,
                    env,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let Some(secret) = self.secrets.get(id) else {
                        if *required {
                            return Err(Box::new(EngineError::SecretNotFound { id: id.clone() }));
                        }
                        continue;
                    };
                    let bytes = secret.read().map_err(|source| EngineError::Secret {
                        id: id.clone(),
                        source,
                    })?;
                    if let Some(var) = env {
                        secret_env.push(format!("{var}={}", String::from_utf8_lossy(&bytes)));
                    }
                    if mount.target.is_empty() {
                        continue;
                    }
                    let file = staged
                        .stage(id, &bytes, *mode, *uid, *gid)
                        .map_err(|source| EngineError::Secret {
                            id: id.clone(),
                            source,
                        })?;
                    MountSpec::Bind {
                        source: file,
                        target: mount.target.clone(),
                        readonly: true,
                    }
                }
                MountKind::Ssh {
                    id,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let Some(agent) = self.ssh.get(id) else {
                        if *required {
                            return Err(Box::new(EngineError::SshNotFound { id: id.clone() }));
                        }
                        // BuildKit skips an optional agent the client did not forward.
                        continue;
                    };
                    let socket = staged.dir.join(format!("ssh-{}", relays.len()));
                    let relay =
                        SshForward::start(socket, agent, *mode, *uid, *gid).map_err(|source| {
                            EngineError::Ssh {
                                id: id.clone(),
                                path: agent.clone(),
                                source,
                            }
                        })?;
                    let spec = MountSpec::Bind {
                        source: relay.path().to_path_buf(),
                        target: mount.target.clone(),
                        readonly: true,
                    };
                    relays.push(relay);
                    spec
                }
            });
        }
        Ok(StepMounts {
            mounts,
            env: secret_env,
            _ssh: relays,
            _locks: locks,
            _staged: staged,
        })
    }

    /// A context selection copied into a snapshot, so a bind mount shows exactly the selected
    /// files and a step's writes can never reach the client's directory. The copy is kept in
    /// the cache under the selection's checksum: steps and builds binding the same files
    /// share it.
    async fn stage_context(&self, sel: Arc<ContextSelection>) -> Result<SnapshotId, BoxError> {
        let checked = sel.clone();
        let digest =
            tokio::task::spawn_blocking(move || checked.context.checksum(&checked.selection))
                .await??;
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"strata/bind-context/v1\0");
        hasher.update(&digest.0);
        let key = Digest(*hasher.finalize().as_bytes());
        if let Some(record) = self.store.cache().get(&key.0, Some(&self.lease))? {
            if let Some(id) = record.value.snapshot {
                if self.store.snapshots().get(&id)?.is_some() {
                    return Ok(id);
                }
            }
        }
        let (store, lease) = (self.store.clone(), self.store.lease());
        let id = tokio::task::spawn_blocking(move || -> Result<SnapshotId, BoxError> {
            let prepared = store.snapshots().prepare(None, &lease)?;
            let selected = sel.context.select(&sel.selection)?;
            let source = ContextSource::new(sel.context.clone(), selected);
            let scratch = LayeredView::scratch();
            let refs: Vec<&dyn SourceFs> = vec![&scratch, &source];
            if let Err(e) = file::apply(&merge_as_copies(2), &prepared.diff(), &[], &refs) {
                store.snapshots().abort(prepared)?;
                return Err(Box::new(e));
            }
            Ok(store.snapshots().commit(prepared, None)?.id)
        })
        .await??;
        self.remember(key, &id)?;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_exec(
        &self,
        op: &ExecOp,
        job: &Job<'_, FsRef>,
        proxy_env: &[String],
        lowerdirs: Vec<PathBuf>,
        parent: Option<SnapshotId>,
        lease: &Lease,
        step_mounts: StepMounts,
    ) -> Result<FsRef, BoxError> {
        let prepared = self.store.snapshots().prepare(parent.as_ref(), lease)?;
        let mut spec = RunSpec::new(
            Rootfs::Overlay {
                lowerdirs,
                upperdir: prepared.diff().to_path_buf(),
                workdir: prepared.work().to_path_buf(),
            },
            op.args.clone(),
        );
        spec.env = op.env.iter().chain(proxy_env).cloned().collect();
        spec.cwd = op.cwd.clone();
        spec.user = op.user.clone();
        spec.network = match op.network {
            NetworkMode::None => Network::None,
            NetworkMode::Default | NetworkMode::Host => Network::Host,
        };
        spec.security = match op.security {
            SecurityMode::Sandbox => Security::Sandbox,
            SecurityMode::Insecure => Security::Insecure,
        };
        if let Some(h) = &op.hostname {
            spec.hostname = h.clone();
        }
        spec.env.extend(step_mounts.env.iter().cloned());
        spec.mounts = step_mounts.mounts.clone();
        let executor = self.executor.clone();
        let cancel = CancelToken::new();
        let _guard = cancel.drop_guard();
        let progress = job.progress.clone();
        let args = op.args.clone();
        let status = tokio::task::spawn_blocking(move || {
            let mut sink = ProgressSink(progress);
            executor.run(&spec, &mut sink, &cancel)
        })
        .await?;
        // Secret files and ssh relays end with the process.
        drop(step_mounts);
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                self.store.snapshots().abort(prepared)?;
                return Err(Box::new(EngineError::Exec(e)));
            }
        };
        if let Err(e) = status.check(&args) {
            self.store.snapshots().abort(prepared)?;
            return Err(Box::new(EngineError::Exec(e)));
        }
        let record = self.store.snapshots().commit_cached(prepared, &job.key.0)?;
        Ok(FsRef::Snapshot(record.id))
    }
}

/// The mounts of one step and what backs them while it runs.
struct StepMounts {
    mounts: Vec<MountSpec>,
    /// `KEY=value` entries the mounts add (secrets given as environment variables).
    env: Vec<String>,
    /// Cache mount locks (`sharing=`), released after the step.
    _locks: Vec<cache_mount::CacheLock>,
    /// SSH agent relays (dropped before their sockets' directory).
    _ssh: Vec<SshForward>,
    /// Staged secret files and the ssh sockets' directory, removed when dropped.
    _staged: StagedSecrets,
}

/// Secret files staged for one step; removed when dropped.
struct StagedSecrets {
    dir: PathBuf,
}

impl StagedSecrets {
    fn new(parent: PathBuf) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Self { dir })
    }

    /// Removes the staging dirs under `parent` whose process (the pid in the name) is gone.
    fn clean_stale(parent: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(parent) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let alive = name
                .split('-')
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
                .is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
            if !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    fn stage(
        &self,
        id: &str,
        bytes: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let name: String = id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = self.dir.join(name);
        std::fs::write(&path, bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        Ok(path)
    }
}

impl Drop for StagedSecrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Streams a process's output into progress events.
struct ProgressSink(Progress);

impl OutputSink for ProgressSink {
    fn stdout(&mut self, data: &[u8]) {
        self.0.log(Stream::Stdout, data);
    }
    fn stderr(&mut self, data: &[u8]) {
        self.0.log(Stream::Stderr, data);
    }
}
