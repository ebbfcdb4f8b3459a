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

mod context_source;

pub use context_source::ContextSource;

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
    lease: Lease,
    empty_dir: PathBuf,
    platform: strata_oci::manifest::Platform,
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
        let lease = store.lease();
        Ok(Self {
            store,
            executor: Arc::new(executor),
            contexts: opened,
            secrets: HashMap::new(),
            lease,
            empty_dir,
            platform: image::host_platform(),
        })
    }

    /// The secrets the client offers, by id.
    pub fn with_secrets(mut self, secrets: HashMap<String, Secret>) -> Self {
        self.secrets = secrets;
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
                let Some(record) = self.store.cache().get(&key.0, Some(&self.lease))? else {
                    return Ok(None);
                };
                match record.value.snapshot {
                    Some(id) if self.store.snapshots().get(&id)?.is_some() => {
                        Ok(Some(FsRef::Snapshot(id)))
                    }
                    _ => Ok(None),
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
            Op::Source(other) => Err(Box::new(EngineError::Unsupported {
                what: source_name(other),
            })),
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

fn source_name(op: &SourceOp) -> String {
    match op {
        SourceOp::Git { .. } => "a git source".into(),
        SourceOp::Http { .. } => "ADD of a URL".into(),
        _ => "this source".into(),
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
            let record = store.snapshots().commit(prepared, None)?;
            let value = CacheValue {
                snapshot: Some(record.id.clone()),
                blobs: Vec::new(),
                payload: Vec::new(),
            };
            store.cache().put(&key.0, &value)?;
            Ok(record.id)
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
        let base = job.inputs.first().cloned().unwrap_or(FsRef::Scratch);
        let mut lowerdirs = self.lowerdirs(&base)?;
        if lowerdirs.is_empty() {
            lowerdirs.push(self.empty_dir.clone());
        }
        let parent = Self::parent(&base).cloned();
        let lease = self.store.lease();
        let prepared = self.store.snapshots().prepare(parent.as_ref(), &lease)?;
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
        // Secret files live outside every snapshot, only for this step, then are removed.
        let staged = StagedSecrets::new(
            self.store
                .root()
                .join("v1")
                .join("executor")
                .join("secrets"),
        )?;
        for mount in op.mounts.iter().skip(1) {
            spec.mounts.push(match &mount.kind {
                MountKind::Tmpfs { size } => MountSpec::Tmpfs {
                    target: mount.target.clone(),
                    size: (*size > 0).then_some(*size),
                },
                MountKind::Cache { id, .. } => MountSpec::Bind {
                    source: self.store.cache_mounts().get_or_create(id, &lease)?,
                    target: mount.target.clone(),
                    readonly: false,
                },
                MountKind::Bind => {
                    return Err(Box::new(EngineError::Unsupported {
                        what: "RUN --mount=type=bind".into(),
                    }))
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
                        spec.env
                            .push(format!("{var}={}", String::from_utf8_lossy(&bytes)));
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
                MountKind::Ssh { .. } => {
                    return Err(Box::new(EngineError::Unsupported {
                        what: "RUN --mount=type=ssh".into(),
                    }))
                }
            });
        }
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
        let record = self.store.snapshots().commit(prepared, None)?;
        self.remember(job.key, &record.id)?;
        Ok(FsRef::Snapshot(record.id))
    }
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
