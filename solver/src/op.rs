//! The operations a build graph is made of (Strata's "LLB"): sources, exec, file actions,
//! merge and diff.
//!
//! Ops are plain data: they say *what* to do, never how. Their serialized form is canonical
//! (field order fixed, maps ordered), because a vertex's identity is the digest of its op.
//! Nothing in an op may carry a host path, a wall-clock time or a random id.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A target platform, `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`…
    pub architecture: String,
    /// `v8` for arm64, empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// What a vertex does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Produces a filesystem from outside the graph.
    Source(SourceOp),
    /// Runs a process over its input filesystems.
    Exec(ExecOp),
    /// Copies, creates and removes files.
    File(FileOp),
    /// Stacks its inputs' filesystems in order (`COPY --link`).
    Merge,
    /// The changes that turn input 0 into input 1.
    Diff,
}

/// Where a source filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceOp {
    /// The empty filesystem (`FROM scratch`).
    Scratch,
    /// A base image, by reference (resolved to a digest for the cache key).
    Image {
        /// As written after expansion, e.g. `busybox:latest` or `name@sha256:…`.
        reference: String,
        /// Platform to select from an index.
        platform: Platform,
    },
    /// A directory the client provides: the build context or a named context.
    Local {
        /// `context`, `dockerfile`, or a named context.
        name: String,
        /// Only these paths (empty: everything).
        include: Vec<String>,
        /// `.dockerignore` patterns.
        exclude: Vec<String>,
        /// Paths whose symlinks are followed when selecting.
        follow_paths: Vec<String>,
    },
    /// A git repository.
    Git {
        /// Remote URL.
        url: String,
        /// Branch, tag or commit.
        reference: String,
        /// Keep `.git` in the result.
        keep_git_dir: bool,
        /// Expected commit (`ADD --checksum=` or `?checksum=`): the checkout must resolve to it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
    },
    /// A file downloaded over HTTP(S).
    Http {
        /// URL.
        url: String,
        /// Expected `sha256:…` digest, if pinned.
        checksum: Option<String>,
        /// Name of the file in the result.
        filename: String,
        /// Mode of the file.
        chmod: Option<u32>,
    },
}

/// Network access of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum NetworkMode {
    /// The builder's default (the host's network, as buildkitd with host networking).
    #[default]
    Default,
    /// Only loopback.
    None,
    /// The host's network.
    Host,
}

/// Sandbox strictness of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SecurityMode {
    /// Docker's default confinement.
    #[default]
    Sandbox,
    /// All capabilities, no seccomp (needs `--allow security.insecure`).
    Insecure,
}

/// Sharing mode of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum CacheSharing {
    /// Concurrent builds share the directory.
    #[default]
    Shared,
    /// Each concurrent user gets its own copy.
    Private,
    /// Users take turns.
    Locked,
}

/// What is mounted at a mount point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// An input's filesystem (or a path in it); the rootfs is a bind mount of input 0 at `/`.
    Bind,
    /// A persistent cache directory shared by id across builds.
    Cache {
        /// Cache id.
        id: String,
        /// Sharing mode.
        sharing: CacheSharing,
        /// Mode of the directory when created.
        mode: u32,
        /// Owner when created.
        uid: u32,
        /// Group when created.
        gid: u32,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Size limit in bytes (0: default).
        size: u64,
    },
    /// A secret given to the build; its bytes never enter the graph.
    Secret {
        /// Secret id.
        id: String,
        /// Also (or instead) exported as this environment variable.
        env: Option<String>,
        /// Fail when the secret is absent.
        required: bool,
        /// File mode.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// An SSH agent socket forwarded from the client.
    Ssh {
        /// Agent id (`default`).
        id: String,
        /// Fail when the agent is absent.
        required: bool,
        /// Socket mode.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// One mount of an exec op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Index into the vertex's inputs whose filesystem is mounted (bind mounts, and cache
    /// mounts seeded `from` a stage).
    pub input: Option<usize>,
    /// Path inside the input to mount (`source=`), `/` for the whole filesystem.
    pub selector: String,
    /// Mount point in the container; empty for a secret exposed only as an environment
    /// variable (`--mount=type=secret,id=x,env=X` without `target=`).
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// Whether changes under this mount are an output of the op (the rootfs is output 0).
    pub output: Option<usize>,
    /// The kind of mount.
    pub kind: MountKind,
}

/// Run a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=VALUE` in order.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// `user[:group]` as written, resolved in the rootfs by the executor.
    pub user: String,
    /// Network mode.
    pub network: NetworkMode,
    /// Security mode.
    pub security: SecurityMode,
    /// Hostname, when set.
    pub hostname: Option<String>,
    /// Mounts; the first one is the rootfs at `/`.
    pub mounts: Vec<Mount>,
}

/// Owner of a created file, as names or numbers resolved in the destination filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// User name or number.
    pub user: String,
    /// Group name or number; empty means the user's primary group.
    pub group: String,
}

/// A file mode to apply: octal or symbolic (`u+x`), as `--chmod` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chmod {
    /// `0755`.
    Octal(u32),
    /// `u=rwx,go=rx`.
    Symbolic(String),
}

/// One action of a file op. Paths are absolute in the destination; sources name an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileAction {
    /// Copy from input `source_input` into the destination filesystem.
    Copy {
        /// Which input to copy from.
        source_input: usize,
        /// Source path or wildcard pattern in that input.
        src: String,
        /// Destination path; a trailing `/` means "into this directory".
        dest: String,
        /// Owner of what is written.
        owner: Option<Owner>,
        /// Mode of what is written.
        chmod: Option<Chmod>,
        /// Follow a symlink named by `src` itself.
        follow_symlinks: bool,
        /// Copy a directory's contents rather than the directory.
        dir_contents_only: bool,
        /// `src` may contain wildcards.
        allow_wildcard: bool,
        /// A wildcard that matches nothing is no error.
        allow_empty_wildcard: bool,
        /// `--exclude` patterns.
        exclude: Vec<String>,
        /// `--parents`: keep the source's leading directories.
        parents: bool,
        /// Extract archives (ADD).
        unpack: bool,
        /// Create missing parent directories of `dest`.
        create_dest_path: bool,
        /// Mtime to set on everything written (seconds), if any.
        mtime: Option<i64>,
    },
    /// Create a directory.
    Mkdir {
        /// Path.
        path: String,
        /// Mode.
        mode: u32,
        /// Create missing parents.
        make_parents: bool,
        /// Owner.
        owner: Option<Owner>,
        /// Mtime to set (seconds; `SOURCE_DATE_EPOCH`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtime: Option<i64>,
    },
    /// Create a file with the given contents.
    Mkfile {
        /// Path.
        path: String,
        /// Contents (heredoc bodies).
        data: Vec<u8>,
        /// Mode.
        mode: u32,
        /// Owner.
        owner: Option<Owner>,
    },
    /// Remove a path.
    Rm {
        /// Path or pattern.
        path: String,
        /// Missing is no error.
        allow_not_found: bool,
        /// `path` may contain wildcards.
        allow_wildcard: bool,
    },
}

/// A sequence of file actions applied to input 0 (or to scratch when it has no input 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    /// Whether input 0 is the base the actions apply to (else they start from scratch).
    pub has_base: bool,
    /// Actions in order.
    pub actions: Vec<FileAction>,
}

/// Descriptive data about a vertex that does not change what it computes: it is not part of
/// the vertex's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VertexMeta {
    /// Progress name, e.g. `[build 2/4] RUN make`.
    pub name: String,
    /// Dockerfile lines (first, last) the vertex comes from.
    pub lines: Option<(usize, usize)>,
    /// Re-run even when cached (`--no-cache` for this vertex).
    pub ignore_cache: bool,
    /// Free-form labels (stage name, instruction) for progress and errors.
    pub labels: BTreeMap<String, String>,
    /// Proxy variables (`HTTP_PROXY=…`, `http_proxy=…`) the worker adds to an exec's
    /// environment. BuildKit keeps them out of cache keys, so they live here, not in the op.
    pub proxy_env: Vec<String>,
}
